"""PAC file served by the forward listener (/proxy.pac, /wpad.dat), checked by
running FindProxyForURL under node; header anonymity on and off."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

import gh


def conf(port, anonymize="false", pac=True):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  anonymize = %s;
  policy = ( { name = "all"; action = "allow"; } );
  %s
};
""" % (port, anonymize,
       'pac: { proxy = "gw.corp.test:3128"; direct = [ "*.corp.test", ".intra.test", "exact.test", "10.1.2.3" ]; };'
       if pac else "")


def start(ports, **kw):
    g = gh.Gatehouse(conf(ports[0], **kw)).start([ports[0]])
    g.port = ports[0]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    return g


@pytest.fixture
def fwd(ports):
    g = start(ports)
    yield g
    g.check_clean()


def test_pac_served(fwd):
    for path in ("/proxy.pac", "/wpad.dat"):
        rc, out, err = gh.curl("-i", "http://127.0.0.1:%d%s" % (fwd.port, path))
        head, body = out.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0]
        assert b"content-type: application/x-ns-proxy-autoconfig" in head.lower()
        text = body.decode()
        assert "function FindProxyForURL(url, host)" in text
        assert 'return "PROXY gw.corp.test:3128; DIRECT";' in text
        assert 'shExpMatch(host, "*.corp.test")' in text
        assert 'dnsDomainIs(host, ".intra.test")' in text
    lines = [l for l in fwd.access_lines() if "proxy.pac" in l or "wpad.dat" in l]
    assert len(lines) == 2 and all('verdict=local rule="pac"' in l for l in lines)


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_pac_logic_under_node(fwd):
    rc, pac, err = gh.curl("http://127.0.0.1:%d/proxy.pac" % fwd.port)
    harness = pac.decode() + r"""
function isPlainHostName(h) { return h.indexOf(".") < 0; }
function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }
function shExpMatch(s, p) {
  var re = new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return re.test(s);
}
var hosts = ["intranet", "a.corp.test", "A.B.CORP.TEST", "corp.test", "intra.test", "x.intra.test",
             "exact.test", "www.exact.test", "10.1.2.3", "127.0.0.1", "localhost", "example.com"];
var out = {};
hosts.forEach(function (h) { out[h] = FindProxyForURL("http://" + h + "/", h); });
console.log(JSON.stringify(out));
"""
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(harness)
    try:
        res = json.loads(subprocess.run(["node", f.name], capture_output=True, check=True).stdout)
    finally:
        os.unlink(f.name)
    proxy = "PROXY gw.corp.test:3128; DIRECT"
    assert res == {"intranet": "DIRECT", "a.corp.test": "DIRECT", "A.B.CORP.TEST": "DIRECT",
                   "corp.test": proxy, "intra.test": "DIRECT", "x.intra.test": "DIRECT",
                   "exact.test": "DIRECT", "www.exact.test": proxy, "10.1.2.3": "DIRECT",
                   "127.0.0.1": "DIRECT", "localhost": "DIRECT", "example.com": proxy}


def test_no_pac_configured_404(ports):
    g = start(ports, pac=False)
    try:
        st = gh.curl_status("http://127.0.0.1:%d/proxy.pac" % ports[0])
        assert st == 404
        st = gh.curl_status("http://127.0.0.1:%d/other" % ports[0])
        assert st == 400
    finally:
        g.check_clean()


SENT = [("Via", "1.1 inner-proxy"), ("X-Forwarded-For", "10.1.1.1"), ("Forwarded", "for=10.1.1.1"),
        ("From", "alice@corp.test"), ("Proxy-Foo", "secret"), ("X-Keep", "yes"),
        ("X-Real-IP", "10.1.1.1"), ("X-Client-IP", "10.1.1.1"), ("True-Client-IP", "10.1.1.1"),
        ("CF-Connecting-IP", "10.1.1.1"), ("X-Cluster-Client-IP", "10.1.1.1"),
        ("X-Originating-IP", "10.1.1.1"), ("X-Forwarded-Host", "intranet.corp.test")]
IDENTITY = ("x-real-ip", "x-client-ip", "true-client-ip", "cf-connecting-ip", "x-cluster-client-ip",
            "x-originating-ip", "x-forwarded-host")


def send(g, origin, referer):
    args = ["-x", g.proxy]
    for k, v in SENT + [("Referer", referer)]:
        args += ["-H", "%s: %s" % (k, v)]
    rc, out, err = gh.curl("-i", *args, "http://127.0.0.1:%d/echo" % origin.port)
    head, body = out.split(b"\r\n\r\n", 1)
    d = json.loads(body)
    return head.decode("latin-1"), {k.lower(): v for k, v in d["headers"]}


def test_anonymize_on(origin, ports):
    g = start(ports, anonymize="true")
    try:
        head, h = send(g, origin, "http://other.example/page")
        for name in ("via", "x-forwarded-for", "forwarded", "from", "proxy-foo", "referer") + IDENTITY:
            assert name not in h, (name, h)
        assert h["x-keep"] == "yes"
        assert "127.0.0.1" not in json.dumps(h).replace("127.0.0.1:%d" % origin.port, "")
        assert "\nvia:" not in head.lower()
        # same-site Referer is kept (same host, other port and path)
        head, h = send(g, origin, "http://127.0.0.1:9/previous?x=1")
        assert h["referer"] == "http://127.0.0.1:9/previous?x=1"
    finally:
        g.check_clean()


def test_anonymize_off(fwd, origin):
    head, h = send(fwd, origin, "http://other.example/page")
    assert h["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
    assert h["via"].endswith("1.1 gatehouse")
    assert h["from"] == "alice@corp.test" and h["referer"] == "http://other.example/page"
    assert all(h[name] for name in IDENTITY)   # anonymize off: passed as sent
    assert "via: 1.1 gatehouse" in head.lower()


def test_anonymize_same_site_by_registrable_domain(origin, ports):
    text = conf(ports[0], anonymize="true").replace(
        "forward: {", '@GLOBAL@\n  dns: { hosts_file = "@DIR@/hosts"; };\n};\nforward: {', 1)
    g = gh.Gatehouse(text, extra_files={"hosts": gh.hosts_file(["www.site.test", "shop.example.co.uk"])})
    g.start([ports[0]])
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    try:
        def referer_seen(host, ref):
            rc, out, err = gh.curl("-x", g.proxy, "-H", "Referer: " + ref,
                                   "http://%s:%d/echo" % (host, origin.port))
            h = {k.lower(): v for k, v in json.loads(out)["headers"]}
            return h.get("referer")
        assert referer_seen("www.site.test", "https://img.site.test/a.png") == "https://img.site.test/a.png"
        assert referer_seen("www.site.test", "http://SITE.TEST:8080/") == "http://SITE.TEST:8080/"
        assert referer_seen("www.site.test", "http://evilsite.test/") is None
        assert referer_seen("www.site.test", "http://site.test.evil.example/") is None
        assert referer_seen("shop.example.co.uk", "http://www.example.co.uk/") == "http://www.example.co.uk/"
        assert referer_seen("shop.example.co.uk", "http://other.co.uk/") is None
        assert referer_seen("www.site.test", "not a url") is None
    finally:
        g.check_clean()
