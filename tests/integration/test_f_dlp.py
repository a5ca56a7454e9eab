"""Forward DLP on uploads: request bodies and query strings of plain-HTTP
requests are held and scanned before the origin sees anything.  Valid card
blocked (origin saw nothing), Luhn-invalid passes, IBAN, custom pattern,
form decoding, a card split across chunks, oversize deny/allow, action log
(redacted only)."""
import base64
import gzip
import socket
import time
import zlib

import pytest

import gh

CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"


def dlp_conf(port, action="deny", oversize="deny", max_scan="4k", extra=""):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  block_contact = "Call security";
  policy = ( { name = "all"; action = "allow"; } );
  dlp: {
    action = "%s";
    oversize = "%s";
    max_scan_bytes = "%s";
    detectors = [ "credit_card", "iban", "us_ssn" ];
    patterns = ( { name = "codename"; regex = "(?i)\\\\bbluebird\\\\b"; } );
    %s
  };
};
""" % (port, action, oversize, max_scan, extra)


def start(ports, workers=1, **kw):
    g = gh.Gatehouse(dlp_conf(ports[0], **kw), workers=workers).start([ports[0]])
    g.port = ports[0]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    return g


@pytest.fixture
def fwd(ports):
    g = start(ports)
    yield g
    g.check_clean()


def post(fwd, origin, data, ctype="text/plain", path="/echo", *extra):
    rc, out, err = gh.curl("-s", "-o", "-", "-w", "\n%{http_code}", "-x", fwd.proxy,
                           "-H", "Content-Type: " + ctype, "--data-binary", "@-", *extra,
                           "http://127.0.0.1:%d%s" % (origin.port, path), input=data)
    body, _, code = out.rpartition(b"\n")
    return int(code or b"0"), body


def test_valid_card_blocked_origin_sees_nothing(fwd, origin):
    st, body = post(fwd, origin, ("order for %s thanks" % CARD).encode())
    assert st == 403
    assert b"credit_card" in body and b"1111" in body
    assert CARD.encode() not in body and b"4111" not in body
    assert b"Call security" in body
    time.sleep(0.2)
    assert origin.connections == 0 and len(origin.raw) == 0 and origin.requests == []
    line = gh.access_line_for(fwd, "/echo")
    assert "verdict=deny" in line and "dlp credit_card" in line and "4111" not in line
    assert "4111" not in fwd.stderr()


def test_luhn_invalid_passes(fwd, origin):
    st, body = post(fwd, origin, b"number 4111 1111 1111 1112 here")
    assert st == 200
    assert origin.requests[0].body == b"number 4111 1111 1111 1112 here"


def test_iban_blocked(fwd, origin):
    st, body = post(fwd, origin, ("pay to %s please" % IBAN).encode())
    assert st == 403 and b"iban" in body
    assert origin.requests == []


def test_ssn_blocked(fwd, origin):
    st, body = post(fwd, origin, b"ssn: 123-45-6789")
    assert st == 403 and b"us_ssn" in body


def test_custom_pattern(fwd, origin):
    st, body = post(fwd, origin, b"the Bluebird launch is monday")
    assert st == 403 and b"codename" in body
    st, body = post(fwd, origin, b"bluebirds are nice")
    assert st == 200


def test_form_urlencoded_is_decoded(fwd, origin):
    st, body = post(fwd, origin, b"name=x&cc=4111%201111%201111%201111&go=1",
                    "application/x-www-form-urlencoded")
    assert st == 403 and b"credit_card" in body


def test_multipart_scanned_as_is(fwd, origin):
    data = (b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nIBAN " + IBAN.encode() + b"\r\n--XyZ--\r\n")
    st, body = post(fwd, origin, data, "multipart/form-data; boundary=XyZ")
    assert st == 403 and b"iban" in body


def test_query_string_scanned(fwd, origin):
    st = gh.curl_status("-x", fwd.proxy, "http://127.0.0.1:%d/echo?q=4111111111111111" % origin.port)
    assert st == 403
    st = gh.curl_status("-x", fwd.proxy, "http://127.0.0.1:%d/echo?q=4111111111111112" % origin.port)
    assert st == 200


def test_card_split_across_chunks(fwd, origin):
    s = socket.create_connection(("127.0.0.1", fwd.port), timeout=5)
    s.sendall(b"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
              % origin.port)
    for part in [b"card: 4111 11", b"11 1111 ", b"1111 end"]:
        s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        time.sleep(0.15)     # separate reads on the proxy side
    s.sendall(b"0\r\n\r\n")
    resp = gh.recv_response(s)
    s.close()
    assert resp.startswith(b"HTTP/1.1 403"), resp[:200]
    assert b"credit_card" in resp
    assert origin.connections == 0 and len(origin.raw) == 0


def test_clean_chunked_body_forwarded(fwd, origin):
    rc, out, err = gh.curl("-x", fwd.proxy, "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                           "http://127.0.0.1:%d/echo" % origin.port, input=b"hello " * 300)
    assert rc == 0 and b'"nbytes": 1800' in out


def test_oversize_denied(fwd, origin):
    st, body = post(fwd, origin, b"a" * 5000)
    assert st == 403 and b"larger than" in body
    assert origin.connections == 0


def test_oversize_allowed(origin, ports):
    g = start(ports, oversize="allow")
    try:
        st, body = post(g, origin, b"a" * 5000, path="/upload")
        assert st == 200 and body == b"5000"
        # a secret within the scanned part is still caught
        st, body = post(g, origin, (CARD + " " + "a" * 5000).encode())
        assert st == 403
    finally:
        g.check_clean()


def test_action_log_forwards_and_logs_redacted(origin, ports):
    g = start(ports, action="log")
    try:
        st, body = post(g, origin, ("card %s" % CARD).encode())
        assert st == 200
        assert origin.requests[0].body == ("card %s" % CARD).encode()
        err = g.stderr()
        assert "credit_card ****-****-****-1111" in err and "4111" not in err
        line = gh.access_line_for(g, "/echo")
        assert "verdict=allow" in line and "dlp-log credit_card" in line and "4111" not in line
    finally:
        g.check_clean()


def test_dlp_overhead_reported(fwd, origin, ports):
    """Not an assertion on speed: prints the scan cost of a 3 KiB body for the report."""
    data = b"lorem ipsum dolor sit amet 1234 " * 100
    t0 = time.time()
    for _ in range(20):
        st, _ = post(fwd, origin, data, path="/upload")
        assert st == 200
    print("dlp: 20 uploads of %d bytes in %.3f s" % (len(data), time.time() - t0))


# ---- issue 13 item 8: oversize = "allow" with a chunked body ----

@pytest.mark.parametrize("split", [False, True])
def test_oversize_allow_chunked_body_is_terminated(netns, origin, ports, split):
    """A chunked upload over max_scan_bytes that arrives whole before the
    cut: the origin must get the whole body and its terminating chunk, and
    the upstream connection must stay in step for the next request (before
    the fix the last chunk never went out: the origin waited, the client
    got a 504, or the half-sent connection was pooled)."""
    g = start(ports, oversize="allow")
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        body = b"x" * 6000
        req = (b"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n" % origin.port)
        req += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        if split:               # the cut comes first, the rest streams after the scan
            s.sendall(req[:len(req) - 1000])
            time.sleep(0.3)
            s.sendall(req[len(req) - 1000:])
        else:                   # one write: the whole body is there before the cut
            s.sendall(req)
        try:
            resp = gh.recv_response(s, timeout=4)
        except socket.timeout:
            pytest.fail("no response: the origin is still waiting for the last chunk")
        assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
        assert b'"nbytes": 6000' in resp
        assert origin.requests[0].body == body
        # the terminating chunk reached the origin
        assert origin.raw.rstrip(b"\r\n").endswith(b"\r\n0") or b"\r\n0\r\n\r\n" in origin.raw
        # the next request on the same client connection takes the pooled
        # upstream connection and is answered in step
        s.sendall(b"GET http://127.0.0.1:%d/echo?n=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % origin.port)
        resp = gh.recv_response(s, timeout=4)
        assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
        assert b'"target": "/echo?n=2"' in resp
        assert origin.connections == 1
        assert [r.method for r in origin.requests] == ["POST", "GET"]
        s.close()
    finally:
        g.check_clean()


# ---- issue 13 item 5: a process-wide budget for bodies held for scanning ----

def test_scan_memory_budget(netns, origin, ports):
    """60 concurrent 4 MiB uploads, each held one KiB short of its end so
    that all are in the scan buffer at once, against max_scan_memory = 16M:
    at most 4 are held, the others get 503 with Retry-After at once, RSS
    stays far below 60 x 4 MiB, the held ones are scanned correctly when
    they end (a card at the very end is caught), and once they are done
    the budget is free again.  Before the fix all 60 were held (~240 MiB)."""
    import select
    n, size = 60, 4 << 20
    g = start(ports, workers=2, max_scan="4M", extra='max_scan_memory = "16M";')
    socks = []
    try:
        with gh.PeakRss(g.proc.pid) as m:
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
                s.sendall(b"POST http://127.0.0.1:%d/upload/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                          % (origin.port, i, size))
                try:
                    s.sendall(b"a" * (size - 1024))
                except OSError:
                    pass        # refused early: the proxy may stop reading it
                socks.append(s)
            time.sleep(0.5)
            answered = {}
            for i, s in enumerate(socks):
                if select.select([s], [], [], 0.05)[0]:
                    answered[i] = gh.recv_response(s, timeout=5)
            held = [i for i in range(n) if i not in answered]
            busy = [i for i, r in answered.items() if r.startswith(b"HTTP/1.1 503")]
            assert len(held) <= 4, "%d uploads held at once over a 16M budget" % len(held)
            assert len(held) >= 1 and len(busy) == n - len(held), \
                {i: r[:80] for i, r in answered.items()}
            assert all(b"Retry-After: 2" in answered[i] for i in busy)
            # the held uploads end now; odd ones carry a card in the last bytes
            for i in held:
                tail = (b"x" * 1000 + b" 4111 1111 1111 1111" if i % 2 else b"b" * 1020).ljust(1024, b" ")
                socks[i].sendall(tail)
            for i in held:
                r = gh.recv_response(socks[i], timeout=10)
                if i % 2:
                    assert r.startswith(b"HTTP/1.1 403") and b"credit_card" in r, r[:200]
                else:
                    assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"%d" % size), r[:200]
        print("scan budget: %d held, %d refused, RSS grew %d KiB (start %d KiB)"
              % (len(held), len(busy), m.grow_kb, m.start))
        if not gh.SANITIZED:
            assert m.grow_kb < 64 * 1024, "RSS grew %d KiB" % m.grow_kb
        for s in socks:
            s.close()
        socks = []
        # the budget is free again: a later upload is scanned, not refused
        st, body = post(g, origin, ("late %s" % CARD).encode())
        assert st == 403 and b"credit_card" in body
        st, body = post(g, origin, b"a" * 3000, path="/upload")
        assert st == 200 and body == b"3000"
    finally:
        for s in socks:
            s.close()
        g.check_clean()


# ---- issue 13 item 15: what DLP did not read ----

@pytest.fixture
def fwdn(netns, ports):
    """The DLP proxy inside the test's network namespace (list after netns, origin)."""
    g = start(ports)
    yield g
    g.check_clean()


def req_status(fwd, method, url, *extra):
    return gh.curl_status("-x", fwd.proxy, "-X", method, *extra, url)


def test_url_path_scanned_any_method(netns, origin, fwdn):
    """A card in the path, plain or percent-encoded, is caught on GET,
    DELETE and HEAD (before: only the query string was read); the access
    log and the console keep the path out."""
    base = "http://127.0.0.1:%d" % origin.port
    for method, path in [("GET", "/acct/4111111111111111/view"),
                         ("DELETE", "/acct/4111%201111%201111%201111"),
                         ("GET", "/qq/" + base64.urlsafe_b64encode(b"card 4111 1111 1111 1111").decode())]:
        st = req_status(fwdn, method, base + path)
        assert st == 403, (method, path, st)
    rc, out, err = gh.curl("-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-x", fwdn.proxy,
                           base + "/4111-1111-1111-1111")
    assert out == b"403"
    assert origin.requests == []
    assert req_status(fwdn, "GET", base + "/echo/order/12345") == 200
    lines = [x for x in fwdn.access_lines() if "verdict=deny" in x]
    assert len(lines) == 4 and all("4111" not in x and "acct" not in x for x in lines), lines
    assert "4111" not in fwdn.stderr()


def test_header_values_scanned(netns, origin, fwdn):
    url = "http://127.0.0.1:%d/echo" % origin.port
    rc, out, err = gh.curl("-s", "-x", fwdn.proxy, "-H", "X-Data: 4111 1111 1111 1111", url)
    assert b"credit_card" in out and b"header X-Data" in out, out[:300]
    assert req_status(fwdn, "GET", url, "-H", "X-Data: " + base64.b64encode(b"ssn 123-45-6789").decode()) == 403
    assert req_status(fwdn, "GET", url, "-H", "Cookie: a=1; acct=DE89370400440532013000") == 403
    assert req_status(fwdn, "GET", url, "-H", "X-Tag: Bluebird") == 403
    assert origin.requests == []
    assert req_status(fwdn, "GET", url, "-H", "X-Data: order 12345", "-H", "Cookie: sid=abc123") == 200
    # the proxy's own credentials are not read (they never leave it)
    assert req_status(fwdn, "GET", url, "-H", "Proxy-Authorization: Basic " +
                      base64.b64encode(b"u:4111111111111111").decode()) == 200


def post_raw(fwd, origin, data, *headers):
    args = []
    for h in headers:
        args += ["-H", h]
    rc, out, err = gh.curl("-s", "-o", "-", "-w", "\n%{http_code}", "-x", fwd.proxy, *args,
                           "--data-binary", "@-", "http://127.0.0.1:%d/echo" % origin.port, input=data)
    body, _, code = out.rpartition(b"\n")
    return int(code or b"0"), body


def test_compressed_bodies_inflated(netns, origin, fwdn):
    secret = b"invoice for card 4111 1111 1111 1111, thanks"
    raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bodies = {"gzip": gzip.compress(secret), "x-gzip": gzip.compress(secret),
              "deflate": zlib.compress(secret),
              "Deflate": raw_deflate.compress(secret) + raw_deflate.flush()}
    for coding, data in bodies.items():
        st, body = post_raw(fwdn, origin, data, "Content-Type: text/plain", "Content-Encoding: " + coding)
        assert st == 403 and b"credit_card" in body and b"inflated" in body, (coding, st, body[:300])
    # two gzip members are one body
    st, _ = post_raw(fwdn, origin, gzip.compress(b"hello ") + gzip.compress(b"ssn 123-45-6789"),
                     "Content-Encoding: gzip")
    assert st == 403
    assert origin.requests == []
    # a clean compressed body reaches the origin as sent
    clean = gzip.compress(b"nothing to see " * 50)
    st, body = post_raw(fwdn, origin, clean, "Content-Encoding: gzip")
    assert st == 200 and origin.requests[-1].body == clean
    # what cannot be read whole is handled like an oversize body (deny here)
    st, body = post_raw(fwdn, origin, b"\x1f\x8b\x08\x00garbage", "Content-Encoding: gzip")
    assert st == 403 and b"cannot be scanned" in body
    st, body = post_raw(fwdn, origin, b"opaque", "Content-Encoding: br")
    assert st == 403 and b"cannot be scanned" in body
    st, body = post_raw(fwdn, origin, gzip.compress(gzip.compress(secret)), "Content-Encoding: gzip, gzip")
    assert st == 403


def test_gzip_bomb_capped(netns, origin, ports):
    """100 MB of zeros in 100 KB of gzip against max_scan_bytes = 1M: the
    inflater stops at 1 MiB (deny: oversize; allow: forwarded unscanned),
    quickly and without the memory of the decoded body."""
    bomb = gzip.compress(b"\0" * (100 << 20), 9)
    for oversize, want in (("deny", 403), ("allow", 200)):
        g = start(ports, oversize=oversize, max_scan="1M")
        try:
            with gh.PeakRss(g.proc.pid) as m:
                t0 = time.time()
                st, body = post_raw(g, origin, bomb, "Content-Encoding: gzip")
                took = time.time() - t0
            assert st == want, body[:300]
            if want == 403:
                assert b"decoded larger" in body
            print("gzip bomb (%d bytes): %s in %.3f s, RSS +%d KiB" % (len(bomb), st, took, m.grow_kb))
            if not gh.SANITIZED:
                assert m.grow_kb < 16 * 1024
        finally:
            g.check_clean()
    assert len(origin.requests) == 1 and origin.requests[0].body == bomb


def test_gzip_ratio_capped(netns, origin, ports):
    """A small body must not buy a large scan on the worker's loop: 8 MiB of
    zeros in 8 KB of gzip, under max_scan_bytes = 16M, stops at 1 MiB (over
    100x its size) and is handled as oversize; ordinary gzip text passes."""
    bomb = gzip.compress(b"\0" * (8 << 20), 9)
    g = start(ports, oversize="deny", max_scan="16M")
    try:
        st, body = post_raw(g, origin, bomb, "Content-Encoding: gzip")
        assert st == 403 and b"compression bomb" in body, body[:300]
        text = gzip.compress(b"".join(b"line %d of an ordinary log upload\n" % i for i in range(40000)))
        st, body = post_raw(g, origin, text, "Content-Encoding: gzip")
        assert st == 200, body[:300]
    finally:
        g.check_clean()


def test_base64_bodies_decoded(netns, origin, fwdn):
    b64 = base64.b64encode(b"card 4111 1111 1111 1111 exp 12/29").decode()
    mime = base64.encodebytes(b"x" * 100 + b" iban DE89 3704 0044 0532 0130 00 " + b"y" * 100).decode()
    cases = [(b64, "text/plain"),
             ('{"name": "report.txt", "data": "%s"}' % b64, "application/json"),
             (mime, "text/plain"),
             ("file=" + base64.b64encode(b"ssn 123-45-6789!!").decode().replace("+", "%2B")
              .replace("/", "%2F").replace("=", "%3D"), "application/x-www-form-urlencoded")]
    for text, ctype in cases:
        st, body = post(fwdn, origin, text.encode(), ctype)
        assert st == 403 and b"base64-decoded" in body, (text, st, body[:300])
    assert origin.requests == []
    clean = base64.b64encode(b"just a harmless attachment, order 12345").decode()
    st, body = post(fwdn, origin, ('{"data": "%s"}' % clean).encode(), "application/json")
    assert st == 200


def test_form_data_without_form_type(netns, origin, fwdn):
    """Form encoding is decoded whatever the Content-Type says (the origin
    may parse it as a form all the same)."""
    for data, ctype in [(b"cc=4111%201111%201111%201111", "text/plain"),
                        (b"cc=4111+1111+1111+1111&x=1", "application/octet-stream"),
                        (b"iban=DE89%203704%200044%200532%200130%2000", "application/json")]:
        st, body = post(fwdn, origin, data, ctype)
        assert st == 403 and b"percent-decoded" in body, (data, st, body[:300])
    assert origin.requests == []


def test_trickled_uploads_held_compactly(netns, origin, ports):
    """Held bodies cost about their size however they arrive: 40 uploads
    sent one byte per segment (each read of the proxy gets a few bytes)
    used to keep one read buffer (1 KiB and up) per read: +36 MB for 240 KB
    of body, beyond what max_scan_memory counts.  Then they end and are
    scanned correctly."""
    n, size = 40, 6000
    g = start(ports, max_scan="1M")
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"POST http://127.0.0.1:%d/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: %d\r\n\r\n" % (origin.port, size + 20))
            socks.append(s)
        time.sleep(0.2)
        with gh.PeakRss(g.proc.pid) as m:
            for k in range(size):
                for s in socks:
                    s.send(b"a")
                if k % 50 == 0:
                    time.sleep(0.001)
            time.sleep(0.3)
        print("trickled uploads: RSS +%d KiB for %d KB of held bodies" % (m.grow_kb, n * size // 1000))
        if not gh.SANITIZED:
            assert m.grow_kb < 8 * 1024, "RSS grew %d KiB" % m.grow_kb
        for i, s in enumerate(socks):
            s.sendall(b" 4111 1111 1111 1111" if i % 2 else b" " * 20)
        for i, s in enumerate(socks):
            r = gh.recv_response(s, timeout=10)
            assert r.startswith(b"HTTP/1.1 403" if i % 2 else b"HTTP/1.1 200"), r[:100]
            if not i % 2:
                assert r.endswith(b"%d" % (size + 20))
    finally:
        for s in socks:
            s.close()
        g.check_clean()
