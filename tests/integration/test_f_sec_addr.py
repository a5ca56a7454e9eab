"""Forward side, security issue #13 items 3, 9 and 20: addresses are judged by
the one canonicaliser (core/addr).

- The unspecified address (0.0.0.0, [::], [::ffff:0.0.0.0]) and the other
  IPv6 forms of an IPv4 address, as a URL host, in CONNECT and as a DNS
  answer, are checked as the loopback address they reach: denied by the
  shipped-style deny_destinations, and never our own listeners or console.
- Ambiguous IPv4 literals (0177.0.0.1, 127.1, 0x7f.0.0.1, 2130706433,
  127.0.0.01) are refused with 400, whatever the policy.
- Policy rules see the normalised URL, canonical addresses and methods
  case-insensitively; the console's tester agrees.
- A WebSocket upgrade (a raw tunnel after its 101) keeps to
  forward.websocket_ports.

Every test runs in its own network namespace (netns fixture)."""
import json
import socket

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file


def status_of(port, request, timeout=10.0):
    """Send one raw request; returns (status, head+body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request.encode() if isinstance(request, str) else request)
        data = gh.recv_response(s, timeout)
    finally:
        s.close()
    parts = data.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), data


def get(port, url, host=None, method="GET", extra=""):
    h = host if host is not None else url.split("/")[2]
    return status_of(port, "%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n"
                     % (method, url, h, extra))


def connect(port, target):
    return status_of(port, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))


# names the hosts file maps to odd addresses (DNS answers)
ODD_ANSWERS = {
    "zero4.test": "0.0.0.0",
    "zero6.test": "::",
    "mapped0.test": "::ffff:0.0.0.0",
    "mapped.test": "::ffff:127.0.0.1",
    "compat.test": "::127.0.0.1",
    "nat64.test": "64:ff9b::7f00:1",
    "zero8.test": "0.1.2.3",
}

AMBIGUOUS = ["0177.0.0.1", "127.1", "0x7f.0.0.1", "2130706433", "127.0.0.01", "0x7f000001", "017700000001"]


def shipped_conf(fwd, rev, adm, origin_port, deny='"127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10"',
                 rev_addr=None, fwd_extra=""):
    """The shipped config's forward part (deny_destinations of loopback and
    link-local), a reverse listener and the console, CONNECT open to every
    port the test aims at."""
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(fwd)d"; } );
  allow_clients = [ "127.0.0.0/8", "::1/128" ];
  deny_destinations = [ %(deny)s ];
  connect_ports = [ 443, %(o)d, %(fwd)d, %(rev)d, %(adm)d ];
  %(extra)s
};
reverse: {
  listeners = ( { address = "%(rev_addr)s"; } );
  sites = ( { hosts = [ "localhost" ]; default = true;
              routes = ( { path = "/"; static = "@DIR@/www"; } ); } );
};
admin: {
  listen = "127.0.0.1:%(adm)d";
  users_file = "@DIR@/users";
};
""" % {"fwd": fwd, "rev": rev, "adm": adm, "o": origin_port, "deny": deny, "extra": fwd_extra,
       "rev_addr": rev_addr or "127.0.0.1:%d" % rev}


def hosts_text():
    return "".join("%s %s\n" % (a, n) for n, a in ODD_ANSWERS.items())


def start(conf, ports):
    g = gh.Gatehouse(conf, extra_files={"hosts": hosts_text(), "users": users_file(),
                                        "www/index.html": "<h1>reverse welcome</h1>\n"})
    g.start([ports[0], ports[1], ports[2]])
    return g


@pytest.fixture
def shipped(netns, origin, ports):
    g = start(shipped_conf(ports[0], ports[1], ports[2], origin.port), ports)
    g.fwd, g.rev, g.adm = ports[0], ports[1], ports[2]
    yield g
    g.check_clean()


def targets(g, origin):
    """(port, what) pairs: a loopback origin, our forward and reverse
    listeners, the console."""
    return [(origin.port, "origin"), (g.fwd, "forward listener"), (g.rev, "reverse listener"),
            (g.adm, "console")]


UNSPECIFIED = ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]", "[::ffff:127.0.0.1]", "[::127.0.0.1]",
               "[::ffff:0:127.0.0.1]", "0.1.2.3"]


def test_unspecified_url_host_denied(shipped, origin):
    for host in UNSPECIFIED:
        for port, what in targets(shipped, origin):
            st, data = get(shipped.fwd, "http://%s:%d/echo?u" % (host, port))
            assert st == 403, (host, what, data[:300])
    assert origin.requests == [], "a request reached the loopback origin"
    line = gh.access_line_for(shipped, "0.0.0.0")
    assert line and "verdict=deny" in line and 'rule="deny_destinations"' in line, line


def test_unspecified_connect_denied(shipped, origin):
    for host in UNSPECIFIED:
        for port, what in targets(shipped, origin):
            st, data = connect(shipped.fwd, "%s:%d" % (host, port))
            assert st == 403, (host, what, data[:300])
    assert origin.connections == 0, "a tunnel reached the loopback origin"


def test_odd_dns_answers_denied(shipped, origin):
    """Names whose answer is the unspecified address, a mapped, compatible
    or NAT64 form of loopback, or 0.0.0.0/8."""
    for name in ODD_ANSWERS:
        for port, what in targets(shipped, origin):
            st, data = get(shipped.fwd, "http://%s:%d/echo?dns" % (name, port))
            assert st == 403, (name, what, data[:300])
            st, data = connect(shipped.fwd, "%s:%d" % (name, port))
            assert st == 403, ("CONNECT", name, what, data[:300])
    assert origin.requests == [] and origin.connections == 0
    line = gh.access_line_for(shipped, "zero4.test")
    assert line and 'rule="deny_destinations"' in line, line


def test_refusals_hold_memory_flat(shipped, origin):
    """2,000 refused requests (literals, names, CONNECT, ambiguous) leave
    RSS where it was: a refusal keeps nothing."""
    before = gh.rss_kb(shipped.proc.pid)
    with gh.PeakRss(shipped.proc.pid) as peak:
        for i in range(250):
            for host in ["0.0.0.0", "[::]", "zero4.test", "0177.0.0.1"]:
                st, _ = get(shipped.fwd, "http://%s:%d/echo?%d" % (host, origin.port, i))
                assert st in (400, 403)
                st, _ = connect(shipped.fwd, "%s:%d" % (host, shipped.adm))
                assert st in (400, 403)
    after = gh.rss_kb(shipped.proc.pid)
    print("rss before %d KiB, after %d KiB, peak %d KiB" % (before, after, peak.peak))
    assert gh.SANITIZED or (peak.peak < 64 * 1024 and after - before < 8 * 1024), (before, after, peak.peak)


def test_ambiguous_ipv4_refused_400(shipped, origin):
    for host in AMBIGUOUS:
        st, data = get(shipped.fwd, "http://%s:%d/echo?amb" % (host, origin.port))
        assert st == 400, (host, data[:300])
        st, data = connect(shipped.fwd, "%s:%d" % (host, origin.port))
        assert st == 400, ("CONNECT", host, data[:300])
        # in Host too (absolute-form: the Host field must still be valid)
        st, data = get(shipped.fwd, "http://mapped.test:%d/echo?amb" % origin.port, host=host)
        assert st == 400, ("Host", host, data[:300])
    assert origin.requests == [] and origin.connections == 0
    # a clear reason in the log
    err = shipped.stderr() + "".join(shipped.access_lines())
    assert "ambiguous IPv4 address" in err, err[-3000:]


def test_own_listener_and_console_by_any_name(netns, origin, ports):
    """With loopback allowed (deny_destinations = []), 0.0.0.0 / [::] still
    cannot reach our own listeners or the console, and a listener on
    0.0.0.0 counts as every local address; the origin stays reachable."""
    g = start(shipped_conf(ports[0], ports[1], ports[2], origin.port, deny="",
                           rev_addr="0.0.0.0:%d" % ports[1]), ports)
    try:
        for url in ["http://0.0.0.0:%d/" % ports[0], "http://[::ffff:0.0.0.0]:%d/" % ports[0],
                    "http://0.0.0.0:%d/" % ports[2], "http://[::ffff:0.0.0.0]:%d/api/v1/session" % ports[2],
                    "http://0.0.0.0:%d/" % ports[1], "http://127.0.0.1:%d/" % ports[1],
                    "http://zero4.test:%d/" % ports[2], "http://mapped0.test:%d/" % ports[0]]:
            st, data = get(ports[0], url)
            assert st == 403, (url, data[:400])
        for target in ["0.0.0.0:%d" % ports[2], "[::ffff:0.0.0.0]:%d" % ports[0], "127.0.0.1:%d" % ports[1]]:
            st, data = connect(ports[0], target)
            assert st == 403, (target, data[:300])
        line = gh.access_line_for(g, "0.0.0.0:%d" % ports[2])
        assert line and 'rule="own_listener"' in line, line
        # not over-blocking: 0.0.0.0 is 127.0.0.1 here, where the origin is
        st, data = get(ports[0], "http://0.0.0.0:%d/echo?ok" % origin.port)
        assert st == 200, data[:300]
        # the console's tester gives the proxy's answers
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        for url, verdict, rule in [("http://0.0.0.0:%d/" % ports[2], "deny", "own_listener"),
                                   ("http://[::ffff:0.0.0.0]:%d/" % ports[0], "deny", "own_listener"),
                                   ("http://127.0.0.1:%d/" % ports[1], "deny", "own_listener"),
                                   ("0.0.0.0:%d" % ports[0], "deny", "own_listener"),
                                   ("http://0.0.0.0:%d/echo" % origin.port, "allow", "default")]:
            body = {"url": url, "client": "127.0.0.1"}
            if "://" not in url:
                body["method"] = "CONNECT"
            r = c.post("/api/v1/policy/test", body)
            assert r.status == 200 and (r.json["verdict"], r.json["rule"]) == (verdict, rule), (url, r.json)
    finally:
        g.check_clean()


def bypass_conf(fwd, rev, adm, o, o2):
    return shipped_conf(fwd, rev, adm, o, deny='"169.254.0.0/16"', fwd_extra="""
  policy = (
    { name = "no-admin"; action = "deny"; urls = [ "^http://[^/]+/admin/" ]; },
    { name = "no-post"; action = "deny"; methods = [ "POST" ]; },
    { name = "no-ip"; action = "deny"; domains = [ "127.0.0.1" ]; ports = [ %d ]; },
    { name = "rest"; action = "allow"; }
  );""" % o2)


def test_policy_bypasses_closed(netns, origin, origin2, ports):
    g = start(bypass_conf(ports[0], ports[1], ports[2], origin.port, origin2.port), ports)
    o, o2 = origin.port, origin2.port
    try:
        # url rules see the normalised URL
        for url in ["http://127.0.0.1:%d/admin/x" % o, "HTTP://127.0.0.1:%d/admin/x" % o,
                    "http://127.0.0.1:%d/%%61dmin/x" % o, "http://127.0.0.1:%d/x/../admin/x" % o,
                    "http://127.0.0.1:%d/%%2e%%2E/admin/x" % o, "http://127.0.0.1:%d//admin/x" % o,
                    "http://127.0.0.1:%d/x/..;/admin/x" % o]:
            st, data = get(ports[0], url, host="127.0.0.1:%d" % o)
            assert st == 403 and b"no-admin" in data, (url, data[:400])
        for path in ["/x%zz", "/%u0061dmin/x", "/x%4"]:
            st, data = get(ports[0], "http://127.0.0.1:%d%s" % (o, path), host="127.0.0.1:%d" % o)
            assert st == 400 and b"percent-escape" in data, (path, data[:400])
        # a bare '%' in the query is what browsers send as typed: fine
        st, data = get(ports[0], "http://127.0.0.1:%d/echo?q=100%%" % o)
        assert st == 200, data[:300]
        # methods compare case-insensitively
        for m in ["POST", "post", "pOsT"]:
            st, data = get(ports[0], "http://127.0.0.1:%d/echo?m" % o, method=m, extra="Content-Length: 0\r\n")
            assert st == 403 and b"no-post" in data, (m, data[:400])
        # IP-literal domain rules see the canonical address
        for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]"]:
            st, data = get(ports[0], "http://%s:%d/echo?ip" % (host, o2))
            assert st == 403 and b"no-ip" in data, (host, data[:400])
        st, data = get(ports[0], "http://127.0.0.01:%d/echo?ip" % o2)
        assert st == 400, data[:300]
        assert origin2.requests == []
        assert [r for r in origin.requests if "admin" in r.target] == []
        # the rest still goes through
        st, data = get(ports[0], "http://127.0.0.1:%d/echo?fine" % o)
        assert st == 200, data[:300]

        # the console's tester agrees
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        for url, method, rule in [("HTTP://127.0.0.1:%d/%%61dmin/x" % o, "GET", "no-admin"),
                                  ("http://127.0.0.1:%d/x/../admin/" % o, "GET", "no-admin"),
                                  ("http://127.0.0.1:%d/echo" % o, "post", "no-post"),
                                  ("http://[::ffff:127.0.0.1]:%d/" % o2, "GET", "no-ip"),
                                  ("http://127.0.0.1:%d/echo" % o, "GET", "rest")]:
            r = c.post("/api/v1/policy/test", {"url": url, "method": method, "client": "127.0.0.1"})
            assert r.status == 200 and r.json["rule"] == rule, (url, method, r.status, r.json)
        for url in ["http://0177.0.0.1/", "http://127.1/", "http://h.test/%zz"]:
            r = c.post("/api/v1/policy/test", {"url": url, "client": "127.0.0.1"})
            assert r.status == 400 and "error" in r.json, (url, r.status, r.json)
        r = c.post("/api/v1/policy/test", {"url": "http://0.0.0.0:%d/" % o, "client": "127.0.0.1"})
        assert r.status == 200 and r.json["verdict"] == "allow"   # 169.254/16 only here
    finally:
        g.check_clean()


WS_REQ = ("GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def ws_status(proxy_port, origin_port):
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    try:
        s.sendall((WS_REQ % (origin_port, origin_port)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            b = s.recv(65536)
            if not b:
                break
            data += b
        st = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
        echoed = None
        if st == 101:
            s.sendall(b"raw bytes through the tunnel")
            echoed = s.recv(65536)
        return st, data, echoed
    finally:
        s.close()


def test_websocket_keeps_to_websocket_ports(netns, origin, ports):
    # connect_ports = [443, ...]: the origin's port is not among them (the
    # test's ports are), so by default a WebSocket to it is refused
    conf = shipped_conf(ports[0], ports[1], ports[2], ports[3], deny='"169.254.0.0/16"')
    g = start(conf, ports)
    try:
        st, data, _ = ws_status(ports[0], origin.port)
        assert st == 403 and b"websocket_ports" in data, data[:400]
        assert origin.requests == []
        # a plain request to the same port is not a tunnel and goes through
        st, data = get(ports[0], "http://127.0.0.1:%d/echo?plain" % origin.port)
        assert st == 200, data[:300]
    finally:
        g.check_clean()
    conf = shipped_conf(ports[0], ports[1], ports[2], ports[3], deny='"169.254.0.0/16"',
                        fwd_extra="websocket_ports = [ %d ];" % origin.port)
    g = start(conf, ports)
    try:
        st, data, echoed = ws_status(ports[0], origin.port)
        assert st == 101 and echoed == b"raw bytes through the tunnel", (data[:300], echoed)
    finally:
        g.check_clean()
