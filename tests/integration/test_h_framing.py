"""Hardening: message framing can never be lost on the way through, and
interim (1xx) responses cannot make Gatehouse buffer without bound.

1. A Connection header that names Content-Length, Transfer-Encoding or Host
   (a forwarder drops what Connection names) is refused: a request with 400,
   an upstream's response with 502.  Before, the field was dropped and the
   body still streamed, so the origin read it as a second request (request
   smuggling) and a client read a response without framing (response
   splitting).  Operators cannot set framing fields with set_headers either.
2. 1xx responses are relayed as they come, under the body's backpressure,
   at most 16 per request (then 502 and the upstream is closed); when the
   client goes, the upstream goes.

Both listeners; forward-side tests run in their own network namespace.
"""
import socket
import subprocess
import time

import pytest

import gh

SMUG = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
MAX_INTERIM = 16          # core/conn.c MAX_INTERIM (documented in the README)


def conf(fport, rport, origin_port, timeouts="upstream_response = 3.0;", limits=""):
    return gh.both_doors_conf(fport, rport, origin_port,
                              "timeouts: { client_header = 3.0; client_body = 3.0; %s }; %s" % (timeouts, limits))


def start(ports, origin_port, **kw):
    fport, rport = ports[0], ports[1]
    g = gh.Gatehouse(conf(fport, rport, origin_port, **kw)).start([fport, rport])
    g.fport, g.rport = fport, rport
    return g


def target(listener, origin_port, path=b"/"):
    if listener == "forward":
        return b"http://127.0.0.1:%d%s" % (origin_port, path)
    return path


def port_of(g, listener):
    return g.fport if listener == "forward" else g.rport


def status_of(resp):
    return int(resp[9:12]) if resp[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") and resp[9:12].isdigit() else None


# ------------------------------------------------- 1. request side (smuggling)

def _chunked(b):
    return b"%x\r\n" % len(b) + b + b"\r\n0\r\n\r\n"


CL = b"Content-Length: %d\r\n" % len(SMUG)
REQ_VECTORS = [
    ("conn-content-length", b"1.1", b"Connection: content-length\r\n" + CL, SMUG),
    ("conn-close-content-length", b"1.1", b"Connection: close, content-length\r\n" + CL, SMUG),
    ("conn-upper-after-cl", b"1.1", CL + b"CONNECTION: CONTENT-LENGTH\r\n", SMUG),
    ("second-connection-header", b"1.1", b"Connection: keep-alive\r\nConnection: x-a,\tContent-Length\r\n" + CL, SMUG),
    ("http10-keepalive-content-length", b"1.0", b"Connection: keep-alive, content-length\r\n" + CL, SMUG),
    ("conn-transfer-encoding", b"1.1", b"Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n",
     _chunked(SMUG)),
    ("conn-host", b"1.1", b"Connection: host\r\n" + CL, SMUG),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,version,lines,body", REQ_VECTORS, ids=[v[0] for v in REQ_VECTORS])
def test_connection_naming_framing_field_is_refused(netns, origin, ports, listener, vid, version, lines, body):
    """The request is refused with 400 and Connection: close, and the origin
    sees no request at all (before: the field was dropped and the body,
    streamed unframed, reached the origin as a second request)."""
    g = start(ports, origin.port)
    try:
        raw = (b"POST %s HTTP/%s\r\nHost: x\r\n" % (target(listener, origin.port, b"/echo"), version) +
               lines + b"\r\n" + body)
        resp = gh.raw_exchange(port_of(g, listener), raw, read_timeout=3.0)
        time.sleep(0.1)
        head = resp.split(b"\r\n\r\n", 1)[0]
        assert status_of(resp) == 400, resp[:400]
        assert b"\r\nConnection: close" in head, head
        assert resp.count(b"HTTP/1.1 ") == 1, resp[:600]
        assert b"smuggled" not in bytes(origin.raw), bytes(origin.raw)[:600]
        assert origin.requests == [], [r.target for r in origin.requests]
        assert any("Connection names" in line for line in g.access_lines()) or \
            "Connection names" in g.stderr()
    finally:
        g.check_clean()


LEGIT = [
    # HTTP/1.0 keep-alive with a body: framed by its Content-Length, kept alive
    ("http10-keepalive-cl", b"1.0", b"Connection: keep-alive\r\nContent-Length: 5\r\n", b"hello"),
    ("close-cl", b"1.1", b"Connection: close\r\nContent-Length: 5\r\n", b"hello"),
    # several Connection headers: every named field goes, the body stays framed
    ("two-connection-headers", b"1.1",
     b"Connection: x-a\r\nX-A: 1\r\nX-B: 2\r\nConnection: X-B, x-content-length\r\nX-Content-Length: 9\r\n"
     b"X-C: 3\r\nContent-Length: 5\r\n", b"hello"),
    ("chunked-keepalive", b"1.1", b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n", _chunked(b"hello")),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,version,lines,body", LEGIT, ids=[v[0] for v in LEGIT])
def test_legit_connection_combinations(netns, origin, ports, listener, vid, version, lines, body):
    """Control: ordinary Connection uses still work; fields named by any
    Connection header are dropped, and the body arrives framed; the
    connection stays open unless close was asked (a second request works)."""
    g = start(ports, origin.port)
    try:
        s = socket.create_connection(("127.0.0.1", port_of(g, listener)), timeout=5)
        raw = (b"POST %s HTTP/%s\r\nHost: x\r\n" % (target(listener, origin.port, b"/echo"), version) +
               lines + b"\r\n" + body)
        s.sendall(raw)
        resp = gh.recv_response(s)
        assert status_of(resp) == 200, resp[:400]
        assert len(origin.requests) == 1
        req = origin.requests[0]
        assert req.body == b"hello"
        names = {k.lower() for k, _ in req.headers}
        assert not names & {"connection", "x-a", "x-b", "x-content-length"}, req.headers
        assert ("content-length" in names) != ("transfer-encoding" in names), req.headers
        if vid == "two-connection-headers":
            assert req.header("X-C") == "3"
        if b"close" not in lines:
            s.sendall(b"GET %s HTTP/%s\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
                      % (target(listener, origin.port, b"/size/3"), version))
            assert gh.recv_response(s).endswith(b"\r\n\r\nxxx")
        s.close()
    finally:
        g.check_clean()


def test_set_headers_cannot_touch_framing(tmp_path):
    """An operator's set_headers delete+add of Content-Length replaced the
    client's framing while the body still streamed; such keys are now
    configuration errors (FILE:LINE), the ordinary ones still load."""
    base = """
reverse: {
  listeners = ( { address = "127.0.0.1:1"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:9"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; set_headers: { %s }; } ); } );
};
global: { user = ""; };
"""
    for key, bad in (('Content-Length = "0";', True), ('Transfer-Encoding = "chunked";', True),
                     ('connection = "content-length";', True), ('Upgrade = "h2c";', True),
                     ('X-Env = "demo"; Host = "app.internal";', False)):
        f = tmp_path / "g.conf"
        f.write_text(base % key)
        p = subprocess.run([gh.BIN, "-t", "-c", str(f)], capture_output=True, text=True, timeout=20)
        out = p.stdout + p.stderr
        if bad:
            assert p.returncode == 1, (key, out)
            assert "%s:5: reverse.sites.[0].routes.[0].set_headers.%s: a framing or hop-by-hop header" \
                % (f, key.split(" ")[0]) in out, out
        else:
            assert p.returncode == 0, (key, out)


# ------------------------------------------------ 1. response side (splitting)

RESP_VECTORS = [
    ("conn-content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello"),
    ("second-connection-header", b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: Content-Length\r\n"
     b"Content-Length: 5\r\n\r\nhello"),
    ("conn-transfer-encoding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: transfer-encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("interim-conn-content-length", b"HTTP/1.1 103 Early Hints\r\nConnection: content-length\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,first", RESP_VECTORS, ids=[v[0] for v in RESP_VECTORS])
def test_response_connection_naming_framing_field_is_502(netns, ports, listener, vid, first):
    """The client gets 502 with Connection: close, none of the origin's body
    and no second response on its connection (before: the head went out
    without framing and the next response ran into the first body)."""
    o = gh.ScriptOrigin(lambda c, n: c.sendall(first if n == 0 else
                                             b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"))
    g = start(ports, o.port)
    try:
        req = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target(listener, o.port)
        resp = gh.raw_exchange(port_of(g, listener), req + req, read_timeout=3.0)
        head = resp.split(b"\r\n\r\n", 1)[0]
        assert status_of(resp) == 502, resp[:400]
        assert b"\r\nConnection: close" in head, head
        assert b"hello" not in resp and b"POISON" not in resp, resp
        assert resp.count(b"HTTP/1.1 ") == 1, resp
        assert len(o.heads) == 1
    finally:
        g.check_clean()
        o.stop()


# ------------------------------------------------- 4. interim (1xx) responses

HINT = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"


def _flood(cap=128 << 20):
    """103s as fast as the socket takes them, up to cap bytes (so an
    unfixed build cannot eat the machine), then silence."""
    batch = HINT * 1024

    def script(c, n):
        sent = 0
        while sent < cap:
            c.sendall(batch)
            sent += len(batch)
        time.sleep(30)
    return script


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_interim_flood_is_cut(netns, ports, listener, version):
    """An origin streaming 103 Early Hints forever: the client gets at most
    16 of them (none for HTTP/1.0) and then a 502 with Connection: close, the
    upstream connection is closed at once (long before upstream_response),
    and RSS stays bounded (before: 6 GB within the response timeout)."""
    o = gh.ScriptOrigin(_flood())
    g = start(ports, o.port, timeouts="upstream_response = 20.0;")
    try:
        with gh.PeakRss(g.proc.pid) as m:
            t0 = time.monotonic()
            req = b"GET %s HTTP/%s\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" % (
                target(listener, o.port), version)
            resp = gh.raw_exchange(port_of(g, listener), req, read_timeout=10.0)
            took = time.monotonic() - t0
            for _ in range(50):
                if o.send_failed_at is not None:
                    break
                time.sleep(0.1)
        assert took < 8.0, took
        hints = resp.count(b"HTTP/1.1 103 ")
        assert hints == (MAX_INTERIM if version == b"1.1" else 0), hints
        final = resp[resp.rfind(b"HTTP/1.1 "):]
        assert final.startswith(b"HTTP/1.1 502 "), resp[-400:]
        assert b"\r\nConnection: close" in final.split(b"\r\n\r\n", 1)[0]
        assert o.send_failed_at is not None and o.send_failed_at - t0 < 8.0, "upstream left open"
        assert gh.SANITIZED or m.grow_kb < 20 * 1024, "RSS grew %d KiB" % m.grow_kb
        assert "too many interim" in g.stderr() or any("too many interim" in x for x in g.access_lines())
    finally:
        g.check_clean()
        o.stop()


@pytest.mark.parametrize("listener", ["reverse", "forward"])
def test_client_gone_closes_interim_upstream(netns, ports, listener):
    """The client leaves after the first 103 while the origin sends one
    every 0.5 s: the upstream is closed within a few of them (the relay
    write fails), not after 16 (8 s) nor at upstream_response (20 s)."""
    def script(c, n):
        for _ in range(100):
            c.sendall(HINT)
            time.sleep(0.5)
    o = gh.ScriptOrigin(script)
    g = start(ports, o.port, timeouts="upstream_response = 20.0;")
    try:
        s = socket.create_connection(("127.0.0.1", port_of(g, listener)), timeout=1.5)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target(listener, o.port))
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
        except socket.timeout:
            pass
        s.close()
        left = time.monotonic()
        for _ in range(100):
            if o.send_failed_at is not None:
                break
            time.sleep(0.1)
        assert o.send_failed_at is not None, "upstream still open 10 s after the client left"
        assert o.send_failed_at - left < 4.0, o.send_failed_at - left
        assert got.startswith(b"HTTP/1.1 103 "), "the first 103 was not relayed as it came: %r" % got
    finally:
        g.check_clean()
        o.stop()


@pytest.mark.parametrize("listener", ["reverse", "forward"])
def test_interim_backpressure_slow_client(netns, ports, listener):
    """15 legitimate 103s of ~1.5 MB each (28 MB in all) to a client that
    reads nothing for 2 s: Gatehouse stops reading the origin once the
    client's output is full (the origin cannot finish sending) and its RSS
    stays far below the total; then the client reads all 15 and the 200."""
    n_hints, link = MAX_INTERIM - 1, b"</" + b"a" * (1500 * 1024) + b">; rel=preload"
    big = b"HTTP/1.1 103 Early Hints\r\nLink: " + link + b"\r\n\r\n"

    o = None

    def script(c, n):
        for _ in range(n_hints):
            c.sendall(big)
        o.sent_all_at = time.monotonic()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    o = gh.ScriptOrigin(script)
    g = start(ports, o.port, timeouts="upstream_response = 30.0; client_idle = 30.0;",
              limits="limits: { max_header_bytes = 1048576; };")
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", port_of(g, listener)))
        with gh.PeakRss(g.proc.pid) as m:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target(listener, o.port))
            time.sleep(2.0)
            stalled = o.sent_all_at is None
        assert stalled, "the origin sent everything while the client read nothing: no backpressure"
        assert gh.SANITIZED or m.grow_kb < 12 * 1024, "RSS grew %d KiB" % m.grow_kb
        s.settimeout(20)
        data = bytearray()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
        s.close()
        assert data.count(b"HTTP/1.1 103 Early Hints\r\nLink: </aaa") == n_hints
        assert data.endswith(b"\r\n\r\nhello") and b"HTTP/1.1 200 OK\r\n" in data, bytes(data[-300:])
    finally:
        g.check_clean()
        o.stop()


def test_cache_never_stores_fields_named_by_a_second_connection_header(ports):
    """The reverse cache drops, like the relay, the fields named by every
    Connection header of a response, not only the first one: a hit must not
    serve a hop-by-hop field the origin meant for the proxy alone."""
    o = gh.ScriptOrigin(lambda c, n: c.sendall(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nConnection: keep-alive\r\n"
        b"Connection: x-secret\r\nX-Secret: for-the-proxy\r\nContent-Length: 2\r\n\r\nok"))
    rport = ports[1]
    text = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "4M"; max_object = "1M"; x_cache_header = true; };
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; cache = true; } ); } );
};
""" % (rport, o.port)
    g = gh.Gatehouse(text).start([rport])
    try:
        req = b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        miss = gh.raw_exchange(rport, req)
        hit = gh.raw_exchange(rport, req)
        assert miss.endswith(b"\r\n\r\nok") and hit.endswith(b"\r\n\r\nok"), (miss, hit)
        assert b"X-Cache: HIT" in hit, hit
        assert len(o.heads) == 1
        assert b"x-secret" not in miss.lower() and b"x-secret" not in hit.lower(), (miss, hit)
    finally:
        g.check_clean()
        o.stop()


def test_set_headers_host_with_absolute_form_sends_one_host(origin, ports):
    """Reverse route with set_headers Host and a client using absolute-form:
    the origin gets exactly one Host, the configured one (before: the
    target's authority and the configured Host, two Host fields)."""
    import json
    rport = ports[1]
    text = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "pub.example" ];
              routes = ( { path = "/"; upstream = "o"; set_headers: { Host = "app.internal"; }; } ); } );
};
""" % (rport, origin.port)
    g = gh.Gatehouse(text).start([rport])
    try:
        for t in (b"/echo", b"http://pub.example/echo"):
            resp = gh.raw_exchange(rport, b"GET %s HTTP/1.1\r\nHost: pub.example\r\nConnection: close\r\n\r\n" % t)
            assert resp.startswith(b"HTTP/1.1 200"), resp[:300]
            hosts = [v for k, v in json.loads(resp.split(b"\r\n\r\n", 1)[1])["headers"] if k.lower() == "host"]
            assert hosts == ["app.internal"], (t, hosts)
    finally:
        g.check_clean()
