"""Issue 14, forward side, day one for an operator: the 407 page says its
line once; the PAC fallback is a choice (fail-open DIRECT or fail-closed)
and can send private ranges and listed domains DIRECT; the block page can be
a company template with escaped placeholders."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

import gh


def auth_conf(port, extra=""):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  auth: { realm = "Day1"; users_file = "@DIR@/users"; };
  policy = ( { name = "login"; action = "auth"; }, { name = "rest"; action = "allow"; } );
  %s
};
""" % (port, extra)


def test_407_says_sign_in_once(netns, origin, ports):
    files = {"users": "alice:%s\n" % gh.crypt_hash("pw", "$6$"),
             "hosts": gh.hosts_file(["any.test"])}
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=files).start([ports[0]])
    try:
        proxy = "http://127.0.0.1:%d" % ports[0]
        for accept in ("text/html", "*/*"):
            rc, out, err = gh.curl("-i", "-x", proxy, "-H", "Accept: " + accept,
                                   "http://any.test:%d/echo" % origin.port)
            head, _, body = out.partition(b"\r\n\r\n")
            assert b" 407 " in head.split(b"\r\n")[0]
            assert body.count(b"Please sign in to use the proxy.") == 1, body
        # a wrong password still explains itself, also once
        rc, out, err = gh.curl("-i", "-x", proxy, "--proxy-user", "alice:wrong",
                               "http://any.test:%d/echo" % origin.port)
        body = out.partition(b"\r\n\r\n")[2]
        assert body.count(b"The user name or password is not correct.") == 1
        assert body.count(b"Please sign in to use the proxy.") == 1
    finally:
        g.check_clean()


# ---- PAC: fallback choice, private ranges ----

PAC_HARNESS = r"""
function isPlainHostName(h) { return h.indexOf(".") < 0 && h.indexOf(":") < 0; }
function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }
function shExpMatch(s, p) {
  var re = new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return re.test(s);
}
var resolved = [];
function dnsResolve(h) { resolved.push(h); return null; }
function ip4(a) { var p = a.split("."); return (((+p[0]) << 24) | ((+p[1]) << 16) | ((+p[2]) << 8) | (+p[3])) >>> 0; }
function isInNet(h, net, mask) {
  if (!/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(h)) { dnsResolve(h); return false; }
  return ((ip4(h) & ip4(mask)) >>> 0) == ((ip4(net) & ip4(mask)) >>> 0);
}
var hosts = %s;
var out = {};
hosts.forEach(function (h) { out[h] = FindProxyForURL("http://" + h + "/", h); });
out.__resolved = resolved;
console.log(JSON.stringify(out));
"""

PAC_HOSTS = ["intranet", "10.1.2.3", "10.255.0.1", "172.16.0.1", "172.31.255.255", "172.32.0.1",
             "192.168.7.7", "192.169.0.1", "127.0.0.2", "8.8.8.8", "fd12:3456::1", "2001:db8::1",
             "app.corp.test", "corp.test", "x.lab.test", "example.com", "10.example.com"]


def pac_conf(port, pac):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  policy = ( { name = "all"; action = "allow"; } );
  pac: { proxy = "gw.corp.test:3128"; direct = [ "*.corp.test", ".lab.test" ]; %s };
};
""" % (port, pac)


def run_pac(port):
    rc, pac, err = gh.curl("http://127.0.0.1:%d/proxy.pac" % port)
    assert rc == 0, err
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(pac.decode() + PAC_HARNESS % json.dumps(PAC_HOSTS))
    try:
        res = json.loads(subprocess.run(["node", f.name], capture_output=True, check=True).stdout)
    finally:
        os.unlink(f.name)
    return pac.decode(), res


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize("pac,fallback,private", [
    ("", "; DIRECT", False),                                     # today's behaviour stays the default
    ('fallback = "direct";', "; DIRECT", False),
    ('fallback = "none";', "", False),
    ('fallback = "none"; direct_private = true;', "", True),
    ('direct_private = true;', "; DIRECT", True),
])
def test_pac_fallback_and_private(netns, ports, pac, fallback, private):
    g = gh.Gatehouse(pac_conf(ports[0], pac)).start([ports[0]])
    try:
        text, res = run_pac(ports[0])
        proxy = "PROXY gw.corp.test:3128" + fallback
        private_set = {"10.1.2.3", "10.255.0.1", "172.16.0.1", "172.31.255.255", "192.168.7.7",
                       "fd12:3456::1"}
        want = {}
        for h in PAC_HOSTS:
            if h in ("intranet", "127.0.0.2", "app.corp.test", "x.lab.test"):
                want[h] = "DIRECT"
            elif private and h in private_set:
                want[h] = "DIRECT"
            else:
                want[h] = proxy
        resolved = res.pop("__resolved")
        assert res == want
        assert resolved == []   # names are never resolved to decide
        assert ("isInNet" in text) == private
        assert "DIRECT\";\n}" not in text or fallback   # no trailing DIRECT when failing closed
    finally:
        g.check_clean()


@pytest.mark.parametrize("pac,msg", [
    ('fallback = "maybe";', 'forward.pac.fallback: must be "none" or "direct"'),
    ('direct_private = "yes";', "forward.pac.direct_private: expected true or false"),
])
def test_pac_bad_keys(netns, ports, pac, msg):
    g = gh.Gatehouse(pac_conf(ports[0], pac))
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    assert p.returncode != 0
    assert msg in p.stderr + p.stdout
    assert "gatehouse.conf:" in p.stderr + p.stdout


# ---- block page template ----

TEMPLATE = """<!DOCTYPE html><html><body class="acme">
<h1>ACME says no</h1>
<p id="reason">{{reason}}</p><p id="rule">{{rule}}</p><p id="url">{{url}}</p>
<p id="id">{{request_id}}</p><p id="contact">{{contact}}</p><p id="client">{{client}}</p>
<p id="user">{{user}}</p><p id="time">{{time}}</p><p id="again">{{url}}</p>
</body></html>
"""


def block_conf(port, page='block_page = "@DIR@/block.html";'):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  block_contact = "Ask <helpdesk> & co";
  %s
  policy = ( { name = "no-bad"; action = "deny"; domains = [ "bad.test" ]; },
             { name = "rest"; action = "allow"; } );
};
""" % (port, page)


def get_block(port, url, accept="text/html"):
    rc, out, err = gh.curl("-i", "--path-as-is", "-g", "-x", "http://127.0.0.1:%d" % port,
                           "-H", "Accept: " + accept, url)
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body.decode()


def test_block_page_template(netns, origin, ports):
    files = {"block.html": TEMPLATE, "hosts": gh.hosts_file(["bad.test", "good.test"])}
    g = gh.Gatehouse(block_conf(ports[0]), extra_files=files).start([ports[0]])
    try:
        url = 'http://bad.test:%d/x?q=<script>alert("x")</script>&a=\'1\'' % origin.port
        head, body = get_block(ports[0], url)
        assert " 403 " in head.split("\r\n")[0]
        assert "text/html" in head.lower()
        assert '<body class="acme">' in body and "<h1>ACME says no</h1>" in body
        assert "<script>" not in body and "{{" not in body
        esc = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;a=&#39;1&#39;"
        assert body.count(esc) == 2, body
        assert '<p id="rule">no-bad</p>' in body
        assert "bad.test" in body.split('<p id="reason">')[1].split("</p>")[0]
        assert '<p id="contact">Ask &lt;helpdesk&gt; &amp; co</p>' in body
        assert '<p id="client">127.0.0.1</p>' in body
        assert '<p id="user">-</p>' in body
        rid = body.split('<p id="id">')[1].split("</p>")[0]
        line = gh.access_line_for(g, "bad.test")
        assert rid and ("id=" + rid) in line
        # text clients keep the built-in text page
        head, body = get_block(ports[0], "http://bad.test:%d/" % origin.port, accept="*/*")
        assert "text/plain" in head.lower() and "ACME" not in body
        assert "Blocked by the web gateway" in body
        # allowed requests are untouched
        assert gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0],
                              "http://good.test:%d/echo" % origin.port) == 200
        # reload reads the file again
        with open(os.path.join(g.dir, "block.html"), "w") as f:
            f.write("<p>v2 {{rule}}</p>")
        g.reload()
        head, body = get_block(ports[0], "http://bad.test:%d/" % origin.port)
        assert body == "<p>v2 no-bad</p>"
    finally:
        g.check_clean()


def test_block_page_default_builtin(netns, origin, ports):
    g = gh.Gatehouse(block_conf(ports[0], page=""),
                     extra_files={"hosts": gh.hosts_file(["bad.test"])}).start([ports[0]])
    try:
        head, body = get_block(ports[0], "http://bad.test:%d/" % origin.port)
        assert "This page is blocked" in body and "Ask &lt;helpdesk&gt; &amp; co" in body
    finally:
        g.check_clean()


@pytest.mark.parametrize("files,page,msg", [
    ({}, "@DIR@/missing.html", "missing.html: No such file or directory"),
    ({"big.html": "x" * (64 * 1024 + 1)}, "@DIR@/big.html", "larger than 65536 bytes"),
    ({"bad.html": "<p>\n{{reason}} {{password}}</p>"}, "@DIR@/bad.html",
     'bad.html:2: unknown or unclosed placeholder "{{password}}</p>"'),
    ({"open.html": "<p>{{reason</p>"}, "@DIR@/open.html", "unknown or unclosed placeholder"),
    ({}, "@DIR@", "not a regular file"),
])
def test_block_page_errors(netns, ports, files, page, msg):
    g = gh.Gatehouse(block_conf(ports[0], 'block_page = "%s";' % page), extra_files=files)
    text = open(g.conf).read()
    line = [i + 1 for i, l in enumerate(text.splitlines()) if "block_page" in l][0]
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    out = p.stderr + p.stdout
    assert p.returncode != 0
    assert "gatehouse.conf:%d: forward.block_page: " % line in out, out
    assert msg in out, out


def test_block_page_bad_reload_keeps_old(netns, origin, ports):
    files = {"block.html": "<p>v1 {{rule}}</p>", "hosts": gh.hosts_file(["bad.test"])}
    g = gh.Gatehouse(block_conf(ports[0]), extra_files=files).start([ports[0]])
    try:
        os.unlink(os.path.join(g.dir, "block.html"))
        g.reload()
        assert "forward.block_page" in g.stderr()
        head, body = get_block(ports[0], "http://bad.test:%d/" % origin.port)
        assert body == "<p>v1 no-bad</p>"
    finally:
        g.check_clean()
