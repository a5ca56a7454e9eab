"""Reverse side, issue 14 (day one for an operator): passive ejection settings
(max_fails / fail_timeout) and their log lines, redirect routes keeping the
path, raw path forwarding, 431 for an over-long header line however it
arrives, and the real client behind a trusted load balancer."""
import re
import socket
import subprocess
import time

import pytest

import gh

HOST = "app.test"


def conf(port, servers, extra_up="", routes=None, site_extra="", rev_extra=""):
    srv = ", ".join('{ address = "127.0.0.1:%d"; }' % p for p in servers)
    routes = routes or '{ path = "/"; upstream = "app"; }'
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  %s
  upstreams = (
    { name = "app"; servers = ( %s ); %s }
  );
  sites = ( { hosts = [ "%s" ]; %s routes = ( %s ); } );
};
""" % (port, rev_extra, srv, extra_up, HOST, site_extra, routes)


def start(text, port):
    g = gh.Gatehouse(text).start([port])
    g.port = port
    return g


def run(g, n, path="/echo"):
    return [gh.http_get(g.port, path, HOST)[0] for _ in range(n)]


def check_t(text):
    g = gh.Gatehouse(text)
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# ---- 1. passive ejection: max_fails / fail_timeout ----

@pytest.fixture
def two():
    os_ = [gh.KillableOrigin() for _ in range(2)]
    yield os_
    for o in os_:
        o.kill()


def test_passive_ejection_configured_and_both_edges_logged(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 2; fail_timeout = 2.0;"), ports[0])
    try:
        assert run(g, 4) == [200] * 4
        b.kill()
        # refused connects are retried on a; the second failure ejects b
        assert run(g, 4) == [200] * 4
        log = g.stderr()
        assert re.search(r"upstream app server 127\.0\.0\.1:%d: ejected for 2 s after 2 failures "
                         r"within 2 s" % b.port, log), log
        b.revive()
        t0 = time.monotonic()
        before = b.hits()
        assert run(g, 6) == [200] * 6
        if time.monotonic() - t0 < 1.5:             # still inside the ejection: b gets nothing
            assert b.hits() == before
        assert "back in rotation" not in g.stderr()
        time.sleep(max(0, 2.3 - (time.monotonic() - t0)))
        assert run(g, 6) == [200] * 6
        assert b.hits() > before
        log = g.stderr()
        assert re.search(r"upstream app server 127\.0\.0\.1:%d: back in rotation" % b.port, log), log
        assert log.count("back in rotation") == 1
    finally:
        g.check_clean()


def test_max_fails_zero_never_ejects(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 0;"), ports[0])
    try:
        b.kill()
        assert run(g, 12) == [200] * 12
        assert "ejected" not in g.stderr()
    finally:
        g.check_clean()


def test_failures_outside_fail_timeout_do_not_add_up(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 2; fail_timeout = 0.5;"), ports[0])
    try:
        b.kill()
        # round robin: every second request tries b first; space them wider than the window
        for _ in range(3):
            assert run(g, 2) == [200] * 2
            time.sleep(0.8)
        assert "ejected" not in g.stderr()
    finally:
        g.check_clean()


@pytest.mark.parametrize("key,msg", [
    ("max_fails = -1;", r"max_fails: must be between 0 and 1000"),
    ("max_fails = 5000;", r"max_fails: must be between 0 and 1000"),
    ("fail_timeout = 0.0;", r"fail_timeout: must be between 0\.1 and 86400"),
    ("fail_timeout = \"x\";", r"fail_timeout: expected a number"),
])
def test_passive_ejection_config_errors(ports, key, msg):
    rc, out = check_t(conf(ports[0], [ports[1]], key))
    assert rc != 0 and re.search(r"gatehouse\.conf:\d+: reverse\.upstreams\.?\[0\]\." + msg, out), out


def raw_request(port, data, timeout=10):
    """Send data on a new connection; return the answer head (bytes) once read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\r\n\r\n")[0]
    finally:
        s.close()


def location(port, target):
    head = raw_request(port, b"GET " + target + b" HTTP/1.1\r\nHost: " + HOST.encode()
                       + b"\r\nConnection: close\r\n\r\n")
    st = int(head.split(b" ")[1])
    m = re.search(rb"\r\nLocation: ([^\r\n]*)", head, re.I)
    return st, m.group(1) if m else None, head


# ---- 2. redirect routes: keep_path ----

REDIRECTS = """
  { path = "/"; upstream = "app"; },
  { path = "/old/"; redirect = "https://new.example"; redirect_status = 301; keep_path = true; },
  { path = "/slash/"; redirect = "https://new.example/"; keep_path = true; },
  { path = "/strip/"; redirect = "https://new.example/base/"; keep_path = true; strip_prefix = true; },
  { path = "/rel/"; redirect = "/"; keep_path = true; strip_prefix = true; },
  { path = "/plain/"; redirect = "https://new.example/fixed"; }
"""


def test_redirect_keep_path(two, ports):
    a, _ = two
    g = start(conf(ports[0], [a.port], routes=REDIRECTS), ports[0])
    try:
        # nginx's return 301 https://host$request_uri: the full path (with the
        # route's prefix) and the query, as the client sent them
        assert location(ports[0], b"/old/a/b%7E?x=1&y=%2F")[:2] == \
            (301, b"https://new.example/old/a/b%7E?x=1&y=%2F")
        assert location(ports[0], b"/slash/x")[:2] == (302, b"https://new.example/slash/x")
        assert location(ports[0], b"/strip/x/y?q")[:2] == (302, b"https://new.example/base/x/y?q")
        assert location(ports[0], b"/strip/")[:2] == (302, b"https://new.example/base/")
        assert location(ports[0], b"/plain/x?q")[:2] == (302, b"https://new.example/fixed")
        # "//" in the path: normalising merged it, so the normalised form follows the host
        assert location(ports[0], b"/old//evil.example/x")[:2] == \
            (301, b"https://new.example/old/evil.example/x")
        # after a relative target, no scheme-relative "//host" and no "/\\"
        st, loc, _ = location(ports[0], b"/rel///evil.example/x")
        assert (st, loc) == (302, b"/evil.example/x")
        st, loc, _ = location(ports[0], b"/rel/\\evil.example")
        assert st == 302 and loc == b"/%5Cevil.example"
        # quotes are encoded (raw non-ASCII, controls and '#' never get this far: the
        # request line parser refuses them; an escaped one stays escaped)
        st, loc, head = location(ports[0], b"/old/%C3%A9\"x")
        assert st == 301 and loc == b"https://new.example/old/%C3%A9%22x", head
        # CR/LF never reach the header: the request line parser refuses them
        st, loc, head = location(ports[0], b"/old/a%0d%0aSet-Cookie:%20x=1")
        assert b"\r\nSet-Cookie" not in head
        assert st == 301 and loc == b"https://new.example/old/a%0d%0aSet-Cookie:%20x=1"
    finally:
        g.check_clean()


def test_keep_path_config_errors(ports):
    rc, out = check_t(conf(ports[0], [ports[1]],
                           routes='{ path = "/"; upstream = "app"; keep_path = true; }'))
    assert rc != 0 and re.search(r"gatehouse\.conf:\d+: \S*keep_path: only applies to a redirect route",
                                 out), out
    rc, out = check_t(conf(ports[0], [ports[1]], routes='{ path = "/"; redirect = "/x"; keep_path = 1; }'))
    assert rc != 0 and re.search(r"gatehouse\.conf:\d+: \S*keep_path: ", out), out


# ---- 3. the path sent upstream is the client's ----

def last_target(o):
    with o.lock:
        return o.requests[-1].target


def test_upstream_gets_raw_path(two, ports):
    a, _ = two
    routes = """{ path = "/"; upstream = "app"; },
      { path = "/api/"; upstream = "app"; strip_prefix = true; },
      { path = "/~svc/"; upstream = "app"; strip_prefix = true; },
      { path = "/a%2Fb/"; upstream = "app"; strip_prefix = true; }"""
    g = start(conf(ports[0], [a.port], routes=routes), ports[0])
    try:
        cases = [
            ("/%7Euser", "/%7Euser"),                  # was "/~user"
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2fb", "/a%2fb"),                      # hex case as sent
            ("/x?sig=%2B%2F", "/x?sig=%2B%2F"),
            ("/x%41y?sig=%2b", "/x%41y?sig=%2b"),
            # strip_prefix: the prefix matched on the normalised path, cut from the raw one
            ("/api/%7Eu/x%2Fy?s=%2B", "/%7Eu/x%2Fy?s=%2B"),
            ("/%61pi/v%31", "/v%31"),                  # "/%61pi/" is "/api/"
            ("/%7Esvc/a", "/a"),
            ("/~svc/%7E", "/%7E"),
            ("/a%2fb/c%7E", "/c%7E"),
            # normalising did more than decode: the normalised form is sent
            ("/api/x/../y%7E", "/y~"),
            ("//x/%7E", "/x/~"),
            ("/z/./%7E", "/z/~"),
        ]
        for sent, want in cases:
            n = len(a.requests)
            gh.http_get(ports[0], sent, HOST)
            assert len(a.requests) == n + 1, sent
            assert last_target(a) == want, (sent, last_target(a))
        # refusals stay
        assert gh.http_get(ports[0], "/%2e%2e/x", HOST)[0] == 400
        assert gh.http_get(ports[0], "/a%zz", HOST)[0] == 400
        assert gh.http_get(ports[0], "/a/../../x", HOST)[0] == 400
    finally:
        g.check_clean()


# ---- 4. an over-long header line: 431 as soon as the limit is passed ----

LIMIT = 32768          # global.limits.max_header_bytes (the default)


def send_long_header(port, first, mode, budget=6.0):
    """Send `first` then one header line of 128 KiB (mode "one": one write;
    "kib": 1 KiB pieces; "trickle": 1 KiB pieces to near the limit, then one
    byte at a time to just over it) and stop sending once an answer came.
    Returns (status, seconds from the first byte to the answer)."""
    import select
    s = socket.create_connection(("127.0.0.1", port), timeout=budget + 20)
    t0 = time.monotonic()
    line = first + b"X-Long: " + b"a" * (128 * 1024) + b"\r\n\r\n"
    if mode == "one":
        pieces = [line]
    elif mode == "kib":
        pieces = [first] + [line[i:i + 1024] for i in range(len(first), len(line), 1024)]
    else:
        near = LIMIT - 1500
        pieces = [first] + [line[i:min(i + 1024, near)] for i in range(len(first), near, 1024)]
        pieces += [line[i:i + 1] for i in range(near, LIMIT + 64)]
    got = b""
    try:
        for pc in pieces:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            try:
                s.sendall(pc)
            except OSError:
                break
            if mode != "one":
                time.sleep(0.0005 if len(pc) == 1 else 0.002)
        while b"\r\n" not in got and time.monotonic() - t0 < budget + 20:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    dt = time.monotonic() - t0
    st = int(got.split(b" ")[1]) if got.startswith(b"HTTP/1.1 ") else 0
    return st, dt


@pytest.mark.parametrize("mode", ["one", "kib", "trickle"])
def test_long_header_line_431_promptly_both_listeners(netns, mode, ports):
    origin = gh.Origin()
    g = gh.Gatehouse(gh.both_doors_conf(ports[0], ports[1], origin.port,
                                        'timeouts: { client_header = 20.0; };'))
    g.start([ports[0], ports[1]])
    try:
        for port, first in ((ports[1], b"GET / HTTP/1.1\r\nHost: app.test\r\n"),
                            (ports[0], b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                             % (origin.port, origin.port))):
            t0 = time.monotonic()
            st, dt = send_long_header(port, first, mode)
            # the trickle itself takes ~1.5 s of sending; the header timeout is 20 s
            assert (st, dt < 8.0) == (431, True), (port, mode, st, dt)
            print("%s port %d: 431 after %.2f s" % (mode, port, time.monotonic() - t0))
    finally:
        g.check_clean()
        origin.stop()


# ---- 5. behind a load balancer: the real client ----

LB_CONF = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  trusted_proxies = [ "127.0.0.1/32", "127.0.0.5/32" ];
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = (
    { hosts = [ "app.test" ]; rate_limit = { requests_per_second = 0.01; burst = 2.0; };
      routes = ( { path = "/"; upstream = "app"; } ); },
    { hosts = [ "inner.test" ]; allow_clients = [ "10.0.0.0/8" ]; deny_clients = [ "10.9.0.0/16" ];
      routes = ( { path = "/"; upstream = "app"; } ); }
  );
};
"""


def test_real_client_behind_trusted_proxy(two, ports):
    a, _ = two
    g = gh.Gatehouse(LB_CONF % (ports[0], a.port)).start([ports[0]])
    try:
        def get(host, xff=None, source=None, fwd=None):
            h = {}
            if xff is not None:
                h["X-Forwarded-For"] = xff
            if fwd is not None:
                h["Forwarded"] = fwd
            return gh.http_get(ports[0], "/echo", host, source=source, headers=h)[0]

        # six clients behind the balancer at 127.0.0.1: six buckets of 2
        for i in range(1, 7):
            assert [get(HOST, "10.0.0.%d" % i) for _ in range(2)] == [200, 200], i
        assert get(HOST, "10.0.0.1") == 429            # client 1's own bucket is empty
        # recursive: trusted hops on the right are skipped ("198.51.100.7" is the
        # client's own claim, left of the first untrusted address: ignored)
        assert [get(HOST, "198.51.100.7, 10.0.0.8, 127.0.0.5") for _ in range(2)] == [200, 200]
        assert get(HOST, "10.0.0.8") == 429
        # Forwarded for= when there is no X-Forwarded-For
        assert [get(HOST, fwd='for="[2001:db8::1]:4711";proto=https') for _ in range(2)] == [200, 200]
        assert get(HOST, fwd="for=\"[2001:db8::1]\"") == 429
        # an untrusted peer's X-Forwarded-For is ignored: one bucket for 127.0.0.2
        assert [get(HOST, "10.1.0.%d" % i, source="127.0.0.2") for i in range(3)] == [200, 200, 429]
        # allow_clients / deny_clients apply to the real client
        assert get("inner.test", "10.0.0.3") == 200
        assert get("inner.test", "192.0.2.1") == 403
        assert get("inner.test", "10.9.0.1") == 403
        assert get("inner.test", "10.0.0.3", source="127.0.0.2") == 403
        assert get("inner.test", "not-an-address, 10.0.0.3") == 200
        assert get("inner.test", "10.0.0.3, bogus") == 403  # unreadable from the right: the peer
        # an X-Forwarded-For over 4 KiB leaves the client the peer; it must not
        # hand the choice to a Forwarded header the client sent past the proxy
        assert get("inner.test", "10.0.0.3, " * 420 + "192.0.2.1", fwd="for=10.0.0.3") == 403
        # the upstream gets the list with the balancer appended (each hop adds its peer)
        with a.lock:
            xff = [r.header("X-Forwarded-For") for r in a.requests[-2:]]
        assert xff == ["10.0.0.3, 127.0.0.1", "not-an-address, 10.0.0.3, 127.0.0.1"], xff
        lines = g.access_lines(wait=0.6)
        mine = [l for l in lines if "inner.test" in l]
        assert mine[0].startswith("10.0.0.3 - ") and mine[0].endswith(" peer=127.0.0.1"), mine[0]
        assert mine[3].startswith("127.0.0.2 - ") and "peer=" not in mine[3], mine[3]
        assert any(l.startswith("2001:db8::1 - ") and l.endswith(" peer=127.0.0.1") for l in lines)
    finally:
        g.check_clean()
