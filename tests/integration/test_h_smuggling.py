"""Hardening: request-smuggling and parser-differential vectors, sent to BOTH
listeners (reverse: origin-form; forward: absolute-form to a loopback origin).

Each REJECT vector ends with a smuggled "GET /smuggled" request.  The client
must get the listed 4xx/5xx with Connection: close, and the origin (which
records every raw byte) must see no request at all, so no second request can
ever reach it.  AMBIGUOUS vectors may be accepted or rejected (RFC 9110/9112
leave the choice), but if accepted exactly one request must arrive, framed as
the proxy understood it.
"""
import time

import pytest

import gh


def conf(fport, rport, origin_port):
    return gh.both_doors_conf(fport, rport, origin_port,
                              "timeouts: { client_header = 2.0; client_body = 2.0; upstream_response = 2.0; };")


@pytest.fixture(scope="module")
def env():
    o = gh.Origin()
    fport, rport = gh.free_port(), gh.free_port()
    g = gh.Gatehouse(conf(fport, rport, o.port)).start([fport, rport])
    g.fport, g.rport, g.origin = fport, rport, o
    yield g
    g.check_clean()
    o.stop()


SMUG = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
REJECT = (400, 501, 413, 414, 431)

# (id, head-after-request-line, body, allowed statuses)
# The request line is "POST <T> HTTP/1.1\r\n" with <T> "/" or the absolute URL.
REJECT_VECTORS = [
    ("cl-te", b"Host: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-cl", b"Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n",
     b"2c\r\n" + SMUG[:44] + b"\r\n0\r\n\r\n", REJECT),
    ("te-dup-chunked-x", b"Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-x-then-chunked-cl", b"Host: x\r\nTransfer-Encoding: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
     b"0\r\n\r\n" + SMUG, REJECT),
    ("te-space-before-colon", b"Host: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-xchunked", b"Host: x\r\nTransfer-Encoding: xchunked\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-chunked-x", b"Host: x\r\nTransfer-Encoding: chunkedx\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-vtab", b"Host: x\r\nTransfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-chunked-identity", b"Host: x\r\nTransfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-quoted", b"Host: x\r\nTransfer-Encoding: \"chunked\"\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-obs-fold", b"Host: x\r\nTransfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("te-bare-lf-name", b"Host: x\r\nX: y\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUG, REJECT),
    ("cl-dup-differ", b"Host: x\r\nContent-Length: 0\r\nContent-Length: 37\r\n", SMUG, REJECT),
    ("cl-list-differ", b"Host: x\r\nContent-Length: 0, 37\r\n", SMUG, REJECT),
    ("cl-plus", b"Host: x\r\nContent-Length: +37\r\n", SMUG, REJECT),
    ("cl-hex", b"Host: x\r\nContent-Length: 0x25\r\n", SMUG, REJECT),
    ("cl-negative", b"Host: x\r\nContent-Length: -1\r\n", SMUG, REJECT),
    ("cl-overflow", b"Host: x\r\nContent-Length: 18446744073709551653\r\n", SMUG, REJECT),
    ("cl-space-before-colon", b"Host: x\r\nContent-Length : 37\r\n", SMUG, REJECT),
    ("cl-space-inside", b"Host: x\r\nContent-Length: 3 7\r\n", SMUG, REJECT),
    ("obs-fold", b"Host: x\r\nX: a\r\n b\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("obs-fold-tab", b"Host: x\r\nX: a\r\n\tContent-Length: 37\r\n", SMUG, REJECT),
    ("bare-lf-end", b"Host: x\nContent-Length: 0\n\n", SMUG, REJECT),
    ("bare-cr", b"Host: x\rContent-Length: 37\r\n", SMUG, REJECT),
    ("nul-in-value", b"Host: x\r\nX: a\x00b\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("nul-in-name", b"Host: x\r\nX\x00Y: a\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("ctl-in-value", b"Host: x\r\nX: a\x01b\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("chunk-size-huge", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"ffffffffffffffffff1\r\nx\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-size-2^64", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"10000000000000000\r\nx\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-size-hex-prefix", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-size-negative", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-size-leading-space", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b" 5\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-size-empty", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-data-too-long", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-missing-crlf", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello0\r\n\r\n" + SMUG, REJECT),
    ("chunk-bare-lf-size", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-ext-bare-lf", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5;a=b\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-ext-quoted-crlf", b"Host: x\r\nTransfer-Encoding: chunked\r\n",
     b"5;a=\"x\r\n0\r\n\r\n" + SMUG + b"\"\r\nhello\r\n0\r\n\r\n", REJECT),
    ("chunk-ext-huge", b"Host: x\r\nTransfer-Encoding: chunked\r\n",
     b"5;" + b"a" * 100000 + b"\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("chunk-ext-nul", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5;a\x00=b\r\nhello\r\n0\r\n\r\n" + SMUG, REJECT),
    ("last-chunk-bad-trailer", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"0\r\nX\x00: y\r\n\r\n" + SMUG, REJECT),
    ("host-dup", b"Host: x\r\nHost: y\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-space", b"Host: a b\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-userinfo", b"Host: u@x\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-slash", b"Host: x/y\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-bad-port", b"Host: x:99999\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-port-letters", b"Host: x:8o\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-unclosed-v6", b"Host: [::1\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("host-missing", b"Content-Length: 0\r\n", SMUG, REJECT),
    ("header-name-space", b"Host: x\r\nX Y: z\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("header-no-colon", b"Host: x\r\nXYZ\r\nContent-Length: 0\r\n", SMUG, REJECT),
    ("header-leading-space", b"Host: x\r\n Content-Length: 37\r\n", SMUG, REJECT),
]


def request_line(env, listener, method=b"POST", path=b"/"):
    if listener == "forward":
        return b"%s http://127.0.0.1:%d%s HTTP/1.1\r\n" % (method, env.origin.port, path)
    return b"%s %s HTTP/1.1\r\n" % (method, path)


def port_of(env, listener):
    return env.fport if listener == "forward" else env.rport


def fresh(env):
    o = env.origin
    with o.lock:
        o.requests.clear()
        o.raw.clear()


def check_rejected(env, listener, raw, allowed):
    fresh(env)
    resp = gh.raw_exchange(port_of(env, listener), raw, read_timeout=3.0)
    time.sleep(0.05)
    status = int(resp[9:12]) if resp.startswith(b"HTTP/1.1 ") and resp[9:12].isdigit() else None
    head = resp.split(b"\r\n\r\n", 1)[0]
    assert status in allowed, "got %r" % resp[:300]
    assert b"\r\nConnection: close" in head, head
    assert resp.count(b"HTTP/1.1 ") == 1, "a second response: %r" % resp[:600]
    assert b"smuggled" not in bytes(env.origin.raw), bytes(env.origin.raw)[:600]
    assert env.origin.requests == [], [r.target for r in env.origin.requests]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,head,body,allowed", REJECT_VECTORS, ids=[v[0] for v in REJECT_VECTORS])
def test_vector_rejected(env, listener, vid, head, body, allowed):
    if listener == "forward" and vid.startswith("host-") and vid != "host-dup":
        # RFC 9112 3.2.2: with an absolute-form target a proxy ignores Host and
        # replaces it, so accepting is as correct as rejecting; either way at
        # most one request reaches the origin, carrying the target's authority.
        fresh(env)
        raw = request_line(env, listener, b"GET", b"/echo") + head + b"Connection: close\r\n\r\n"
        resp = gh.raw_exchange(env.fport, raw)
        time.sleep(0.05)
        assert resp.count(b"HTTP/1.1 ") == 1, resp[:600]
        if int(resp[9:12]) in REJECT:
            assert env.origin.requests == []
        else:
            assert resp.startswith(b"HTTP/1.1 200"), resp[:300]
            assert len(env.origin.requests) == 1
            assert env.origin.requests[0].header("Host") == "127.0.0.1:%d" % env.origin.port
        return
    check_rejected(env, listener, request_line(env, listener) + head + b"\r\n" + body, allowed)


LINE_VECTORS = [
    ("double-space", b"GET  %s HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("trailing-space", b"GET %s HTTP/1.1 \r\nHost: x\r\n\r\n"),
    ("tab-separator", b"GET\t%s\tHTTP/1.1\r\nHost: x\r\n\r\n"),
    ("lowercase-version", b"GET %s http/1.1\r\nHost: x\r\n\r\n"),
    ("nul-in-target", b"GET %s\x00x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("nul-in-method", b"G\x00ET %s HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("space-in-target", b"GET %s x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bare-lf-line", b"GET %s HTTP/1.1\nHost: x\r\n\r\n"),
    ("http09", b"GET %s\r\n\r\n"),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,tmpl", LINE_VECTORS, ids=[v[0] for v in LINE_VECTORS])
def test_request_line_vector_rejected(env, listener, vid, tmpl):
    target = (b"http://127.0.0.1:%d/" % env.origin.port) if listener == "forward" else b"/"
    check_rejected(env, listener, (tmpl % target) + SMUG, REJECT)


ABSOLUTE_TRICKS = [
    ("userinfo", b"GET http://u:p@127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("at-in-authority", b"GET http://evil.test@127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("single-slash", b"GET http:/127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-port", b"GET http://127.0.0.1:%d0000/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("backslash", b"GET http://127.0.0.1:%d\\@evil.test/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("space-in-host", b"GET http://127.0.0.1 :%d/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("unknown-scheme", b"GET gopher://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,tmpl", ABSOLUTE_TRICKS, ids=[v[0] for v in ABSOLUTE_TRICKS])
def test_absolute_form_tricks_rejected(env, listener, vid, tmpl):
    check_rejected(env, listener, (tmpl % env.origin.port) + SMUG, REJECT)


def test_absolute_form_host_mismatch_uses_target_authority(env):
    """Forward: the request-target's authority wins over a lying Host header,
    and the origin receives one request whose Host is that authority."""
    fresh(env)
    raw = (b"GET http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n"
           % env.origin.port)
    resp = gh.raw_exchange(env.fport, raw)
    assert resp.startswith(b"HTTP/1.1 200"), resp[:300]
    assert len(env.origin.requests) == 1
    assert env.origin.requests[0].header("Host") == "127.0.0.1:%d" % env.origin.port
    assert env.origin.raw.count(b"Host:") == 1


AMBIGUOUS = [
    # RFC 9110 8.6: identical duplicate Content-Length values may be accepted as one.
    ("cl-dup-same", b"Host: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    ("cl-list-same", b"Host: x\r\nContent-Length: 5, 5\r\n", b"hello"),
    ("te-uppercase", b"Host: x\r\nTransfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("te-tab-ows", b"Host: x\r\nTransfer-Encoding:\tchunked\t\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-normal", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5;name=value;q=\"a b\"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-trailer", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    ("chunk-size-uppercase-hex", b"Host: x\r\nTransfer-Encoding: chunked\r\n", b"A\r\nhellohello\r\n0\r\n\r\n"),
    ("http10-te-chunked", None, b"5\r\nhello\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("listener", ["reverse", "forward"])
@pytest.mark.parametrize("vid,head,body", AMBIGUOUS, ids=[v[0] for v in AMBIGUOUS])
def test_ambiguous_vector_one_request_at_most(env, listener, vid, head, body):
    fresh(env)
    if head is None:   # HTTP/1.0 with chunked: RFC 9112 6.1 says treat framing as faulty and close
        line = request_line(env, listener, path=b"/echo").replace(b"HTTP/1.1", b"HTTP/1.0")
        raw = line + b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    else:
        raw = request_line(env, listener, path=b"/echo") + head + b"Connection: close\r\n\r\n" + body
    resp = gh.raw_exchange(port_of(env, listener), raw)
    time.sleep(0.05)
    assert resp.count(b"HTTP/1.") == 1 or resp.startswith(b"HTTP/1.1 200"), resp[:600]
    status = int(resp[9:12])
    if status in REJECT:
        assert env.origin.requests == []
        return
    assert status == 200, resp[:300]
    reqs = env.origin.requests
    assert len(reqs) == 1, [r.target for r in reqs]
    assert reqs[0].body == b"hello" or reqs[0].body == b"hellohello"
    assert bytes(env.origin.raw).count(b" HTTP/1.1\r\n") == 1


def test_pipelined_after_rejected_is_never_forwarded(env):
    """A valid request pipelined behind a rejected one is dropped with the
    connection, on both listeners."""
    for listener in ("reverse", "forward"):
        bad = request_line(env, listener, b"GET") + b"Host: x\r\nHost: y\r\n\r\n"
        good = request_line(env, listener, b"GET", b"/smuggled") + b"Host: x\r\n\r\n"
        check_rejected(env, listener, bad + good, REJECT)


def test_clean_request_still_works(env):
    """Sanity: the same harness sends a clean request through both listeners."""
    for listener in ("reverse", "forward"):
        fresh(env)
        raw = request_line(env, listener, b"POST", b"/echo") + \
            b"Host: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        resp = gh.raw_exchange(port_of(env, listener), raw)
        assert resp.startswith(b"HTTP/1.1 200"), resp[:300]
        assert len(env.origin.requests) == 1 and env.origin.requests[0].body == b"hello"


# ------------------------------------------- response side (upstream desync)

def KeepAliveScriptOrigin(script):
    """Keep-alive origin: for the n-th request on a connection, sends
    script(n) (bytes, or a callable taking the socket)."""
    def run(c, n):
        out = script(n)
        return out(c) if callable(out) else out
    return gh.ScriptOrigin(run)


CLEAN = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean"
POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"


def _late(c):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    time.sleep(0.05)
    c.sendall(POISON)     # unsolicited, while the connection idles in the pool


RESPONSE_DESYNC = [
    ("extra-bytes-after-content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + POISON),
    ("204-with-body", b"HTTP/1.1 204 No Content\r\n\r\n" + POISON),
    ("304-with-body", b"HTTP/1.1 304 Not Modified\r\n\r\n" + POISON),
    ("unsolicited-bytes-while-pooled", _late),
    ("cl-and-te", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\nok\r\n0\r\n\r\n" + POISON),
]


@pytest.mark.parametrize("vid,first", RESPONSE_DESYNC, ids=[v[0] for v in RESPONSE_DESYNC])
def test_response_desync_never_reaches_next_client(ports, vid, first):
    """Bytes an origin sends beyond (or outside) a response must never be
    served to the next client that reuses the pooled upstream connection."""
    o = KeepAliveScriptOrigin(lambda n: first if n == 0 else CLEAN)
    fport, rport = ports[0], ports[1]
    g = gh.Gatehouse(conf(fport, rport, o.port)).start([fport, rport])
    try:
        for listener, port, target in (("reverse", rport, b"/"),
                                       ("forward", fport, b"http://127.0.0.1:%d/" % o.port)):
            req = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target
            first_resp = gh.raw_exchange(port, req, read_timeout=2)
            time.sleep(0.3)
            second = gh.raw_exchange(port, req, read_timeout=2)
            # let late bytes of this listener's connections land before the
            # next listener reuses the pool (bytes arriving after a request
            # was sent are indistinguishable from its response)
            time.sleep(0.3)
            assert b"POISON" not in first_resp and b"POISON" not in second, (listener, first_resp, second)
            assert second.startswith(b"HTTP/1.1 "), (listener, second)
            assert second.count(b"HTTP/1.1 ") == 1, (listener, second)
    finally:
        g.check_clean()
        o.stop()


def test_response_desync_control_pool_is_reused(ports):
    """Control for the test above: with clean responses the second client
    request does reuse the pooled upstream connection (one origin connection
    per listener), so the desync vectors really exercise a reused connection."""
    o = KeepAliveScriptOrigin(lambda n: CLEAN)
    fport, rport = ports[0], ports[1]
    g = gh.Gatehouse(conf(fport, rport, o.port)).start([fport, rport])
    try:
        req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for _ in range(3):
            assert gh.raw_exchange(rport, req, read_timeout=2).endswith(b"clean")
            time.sleep(0.1)
        assert o.conns == 1
    finally:
        g.check_clean()
        o.stop()


def test_late_response_after_504_is_never_served_to_the_next_request(ports):
    """An origin that answers after upstream_response expired: the client got
    504, and the late bytes (a response to a request that is over) must not
    become the response to the next request, whoever sends it."""
    calls = []

    def slow(c):
        time.sleep(1.5)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLATE-1")

    def script(n):
        calls.append(n)
        return slow if len(calls) == 1 else CLEAN
    o = KeepAliveScriptOrigin(script)
    fport, rport = ports[0], ports[1]
    text = conf(fport, rport, o.port).replace("upstream_response = 2.0;", "upstream_response = 1.0;")
    g = gh.Gatehouse(text).start([fport, rport])
    try:
        req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert gh.raw_exchange(rport, req, read_timeout=3).startswith(b"HTTP/1.1 504")
        time.sleep(0.8)       # the late response has arrived by now
        for port, r in ((rport, req), (fport, req.replace(b"GET /", b"GET http://127.0.0.1:%d/" % o.port))):
            resp = gh.raw_exchange(port, r, read_timeout=3)
            assert b"LATE-1" not in resp and resp.endswith(b"clean"), resp
    finally:
        g.check_clean()
        o.stop()
