"""Forward policy through the real proxy: every matcher (clients, domains exact /
wildcard / dot, lists, urls, methods, ports, hours, schemes), allow/deny,
the resolved-address check, per-rule verdicts in the access log, and the
block page (HTML and text)."""
import datetime
import json
import re
import socket

import pytest

import gh

NAMES = ["exact.test", "www.exact.test", "a.wild.test", "wild.test", "dot.test", "x.dot.test",
         "listed.test", "deep.sub.listed.test", "notlisted.test", "hours.test", "clientsdeny.test",
         "tunnel.test", "open.test", "esc.test"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def policy_conf(port, origin_port, origin2_port, contact="Questions? helpdesk@example.test <ext 42>"):
    today = datetime.datetime.now().weekday()
    other = DAYS[(today + 3) % 7]
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ 443, %(o1)d ];
  block_contact = "%(contact)s";
  lists = ( { name = "badlist"; file = "@DIR@/bad.list"; } );
  policy = (
    { name = "clients-other"; action = "deny"; clients = [ "10.0.0.0/8" ]; },
    { name = "clients-local"; action = "deny"; clients = [ "127.0.0.0/8" ]; domains = [ "clientsdeny.test" ]; },
    { name = "list-bad"; action = "deny"; lists = [ "badlist" ]; },
    { name = "dom-exact"; action = "deny"; domains = [ "exact.test" ]; },
    { name = "dom-wild"; action = "deny"; domains = [ "*.wild.test" ]; },
    { name = "dom-dot"; action = "deny"; domains = [ ".dot.test" ]; },
    { name = "url-exe"; action = "deny"; urls = [ "^http://[^/]+/.*\\\\.exe$" ]; },
    { name = "no-delete"; action = "deny"; methods = [ "DELETE" ]; },
    { name = "port-two"; action = "deny"; ports = [ %(o2)d ]; },
    { name = "hours-other-day"; action = "deny"; domains = [ "hours.test" ]; hours = "%(other)s"; },
    { name = "hours-all-day"; action = "allow"; domains = [ "hours.test" ]; hours = [ "Mon-Sun 00:00-24:00" ]; },
    { name = "hours-fallback"; action = "deny"; domains = [ "hours.test" ]; },
    { name = "no-tunnel"; action = "deny"; schemes = [ "connect" ]; domains = [ "tunnel.test" ]; },
    { name = "esc<b>"; action = "deny"; domains = [ "esc.test" ]; },
    { name = "default"; action = "allow"; }
  );
};
""" % {"port": port, "o1": origin_port, "o2": origin2_port, "other": other, "contact": contact}


@pytest.fixture
def fwd(origin, origin2, ports):
    files = {"hosts": gh.hosts_file(NAMES),
             "bad.list": "# test list\nlisted.test\n10.9.9.9\n\nbad.example # comment\n"}
    g = gh.Gatehouse(policy_conf(ports[0], origin.port, origin2.port), extra_files=files)
    g.start([ports[0]])
    g.port = ports[0]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    yield g
    g.check_clean()


def get(fwd, url, *extra):
    rc, out, err = gh.curl("-s", "-o", "-", "-w", "\n%{http_code}", "-x", fwd.proxy, *extra, url)
    body, _, code = out.rpartition(b"\n")
    return int(code or b"0"), body


def assert_blocked(fwd, origin, url, rule, *extra):
    n = len(origin.requests)
    st, body = get(fwd, url, *extra)
    assert st == 403, (url, st, body[:300])
    assert ("rule \"%s\"" % rule).encode() in body, body
    assert len(origin.requests) == n
    line = gh.access_line_for(fwd, url.split("//", 1)[1].split("/", 1)[0])
    assert line is not None and "verdict=deny" in line and ('rule="%s"' % rule) in line, line
    return body


def test_allowed_by_default_rule(fwd, origin):
    st, body = get(fwd, "http://open.test:%d/echo" % origin.port)
    assert st == 200
    line = gh.access_line_for(fwd, "open.test")
    assert 'verdict=allow rule="default"' in line


def test_clients_matcher(fwd, origin):
    # clients-other (10/8) never matches loopback; clients-local does
    assert_blocked(fwd, origin, "http://clientsdeny.test:%d/echo" % origin.port, "clients-local")


def test_domains_exact(fwd, origin):
    assert_blocked(fwd, origin, "http://exact.test:%d/echo" % origin.port, "dom-exact")
    st, _ = get(fwd, "http://www.exact.test:%d/echo" % origin.port)
    assert st == 200   # exact only: the subdomain is not matched


def test_domains_wildcard_subdomains_only(fwd, origin):
    assert_blocked(fwd, origin, "http://a.wild.test:%d/echo" % origin.port, "dom-wild")
    st, _ = get(fwd, "http://wild.test:%d/echo" % origin.port)
    assert st == 200


def test_domains_dot_matches_domain_and_subdomains(fwd, origin):
    assert_blocked(fwd, origin, "http://dot.test:%d/echo" % origin.port, "dom-dot")
    assert_blocked(fwd, origin, "http://x.dot.test:%d/echo" % origin.port, "dom-dot")


def test_list_matches_entry_and_subdomains(fwd, origin):
    body = assert_blocked(fwd, origin, "http://deep.sub.listed.test:%d/echo" % origin.port, "list-bad")
    assert b"list badlist" in body and b"listed.test" in body
    st, _ = get(fwd, "http://notlisted.test:%d/echo" % origin.port)
    assert st == 200


def test_urls_regex(fwd, origin):
    assert_blocked(fwd, origin, "http://open.test:%d/echo/setup.exe" % origin.port, "url-exe")
    st, _ = get(fwd, "http://open.test:%d/echo/setup.exe.txt" % origin.port)
    assert st == 200


def test_methods(fwd, origin):
    assert_blocked(fwd, origin, "http://open.test:%d/echo" % origin.port, "no-delete", "-X", "DELETE")
    st, _ = get(fwd, "http://open.test:%d/echo" % origin.port, "-X", "PUT", "-d", "x")
    assert st == 200


def test_ports(fwd, origin, origin2):
    assert_blocked(fwd, origin2, "http://open.test:%d/echo" % origin2.port, "port-two")


def test_hours(fwd, origin):
    # "other day" never matches today; the all-day rule does
    st, _ = get(fwd, "http://hours.test:%d/echo" % origin.port)
    assert st == 200
    line = gh.access_line_for(fwd, "hours.test")
    assert 'rule="hours-all-day"' in line


def test_schemes_connect(fwd, origin):
    rc, out, err = gh.curl("-p", "-x", fwd.proxy, "http://tunnel.test:%d/size/3" % origin.port)
    assert rc != 0 and "403" in err
    rc, out, err = gh.curl("-p", "-x", fwd.proxy, "http://open.test:%d/size/3" % origin.port)
    assert rc == 0 and out == b"xxx"


def test_rule_hits_in_events_of_access_log(fwd, origin):
    for _ in range(3):
        get(fwd, "http://exact.test:%d/echo" % origin.port)
    lines = [l for l in fwd.access_lines() if 'rule="dom-exact"' in l]
    assert len(lines) == 3


def test_block_page_html(fwd, origin):
    st, body = get(fwd, "http://exact.test:%d/echo?a=<x>" % origin.port, "-H",
                   "Accept: text/html,application/xhtml+xml")
    assert st == 403
    text = body.decode()
    assert text.startswith("<!DOCTYPE html>")
    assert "http://exact.test:%d/echo?a=&lt;x&gt;" % origin.port in text
    assert "<x>" not in text
    assert "rule &quot;dom-exact&quot;" in text
    assert "helpdesk@example.test &lt;ext 42&gt;" in text
    m = re.search(r"<th>Request id</th><td>([^<]+)</td>", text)
    assert m
    line = gh.access_line_for(fwd, "exact.test")
    assert "id=%s" % m.group(1) in line
    assert re.search(r"<th>Time</th><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text)


def test_block_page_text_and_escaping(fwd, origin):
    rc, out, err = gh.curl("-i", "-x", fwd.proxy, "http://esc.test:%d/echo" % origin.port)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"403" in head.split(b"\r\n")[0]
    assert b"content-type: text/plain" in head.lower()
    text = body.decode()
    assert "URL: http://esc.test:%d/echo" % origin.port in text
    assert 'Reason: rule "esc<b>" (deny)' in text
    assert "Request id: " in text
    assert "Questions? helpdesk@example.test <ext 42>" in text
    st, body = get(fwd, "http://esc.test:%d/echo" % origin.port, "-H", "Accept: text/html")
    assert b"esc&lt;b&gt;" in body and b"esc<b>" not in body


def test_block_page_for_connect_port(fwd):
    resp = gh.raw_exchange(fwd.port, b"CONNECT open.test:25 HTTP/1.1\r\nHost: open.test:25\r\n\r\n",
                           read_timeout=2)
    assert resp.startswith(b"HTTP/1.1 403")
    assert b"open.test:25" in resp and b"port 25" in resp


def test_resolved_address_denied(origin, ports):
    conf = """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "127.0.0.0/8" ];
  policy = ( { name = "all"; action = "allow"; } );
};
""" % ports[0]
    g = gh.Gatehouse(conf, extra_files={"hosts": gh.hosts_file(["innocent.test"])}).start([ports[0]])
    try:
        st = gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0],
                            "http://innocent.test:%d/echo" % origin.port)
        assert st == 403
        assert origin.requests == [] and origin.connections == 0
        line = gh.access_line_for(g, "innocent.test")
        assert "verdict=deny" in line and 'rule="deny_destinations"' in line
    finally:
        g.check_clean()


def test_block_page_long_url_is_cut(fwd, origin):
    url = "http://exact.test:%d/%s" % (origin.port, "<" * 6000)
    st, body = get(fwd, url, "-H", "Accept: text/html")
    assert st == 403
    assert body.rstrip().endswith(b"</html>") and b"..." in body
    assert body.count(b"&lt;") < 1100


def test_reload_applies_new_policy_to_open_keepalive_connection(fwd, origin, ports):
    """A client that keeps its connection open across a reload is judged by
    the new policy from its next request on (nginx and HAProxy get there by
    closing old connections; Gatehouse moves them to the new generation)."""
    s = socket.create_connection(("127.0.0.1", fwd.port), timeout=5)
    req = ("GET http://open.test:%d/echo HTTP/1.1\r\nHost: open.test:%d\r\n\r\n" %
           (origin.port, origin.port)).encode()

    def ask():
        s.sendall(req)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            head += chunk
        h, _, body = head.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", h).group(1))
        while len(body) < n:
            body += s.recv(65536)
        return int(h.split()[1])

    assert ask() == 200
    text = open(fwd.conf).read().replace(
        '{ name = "default"; action = "allow"; }',
        '{ name = "open-now-denied"; action = "deny"; domains = [ "open.test" ]; },\n'
        '    { name = "default"; action = "allow"; }')
    fwd.reload(text)
    assert "open-now-denied" in open(fwd.conf).read()
    assert ask() == 403
    line = gh.access_line_for(fwd, "open.test")
    assert 'rule="open-now-denied"' in line, line
    s.close()
