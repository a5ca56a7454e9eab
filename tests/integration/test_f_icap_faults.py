"""ICAP (issue 19) faults: an ICAP peer that misbehaves.  This is fault
injection (a small Python ICAP server whose service path picks the fault):
garbage, wrong chunk framing in the 200's body, an ICAP head or an
encapsulated HTTP head longer than allowed, a 200 whose body is cut off, a
reset mid-answer, a server that never answers (timeout); and a client that
disconnects while its download is held.  Each ends in a clear outcome
(502 page, or the client's connection cut once a replacement began), the
proxy keeps serving, and the ICAP connection of an abandoned exchange is
closed."""
import socket
import subprocess
import threading
import time

import pytest

import gh

BODY = b"just some clean text for the scanner\n" * 200


class BadIcap:
    def __init__(self):
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.closed = []          # services whose connection the client closed
        self.seen = []            # (mode, method, what the proxy sent) of the modes that record
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_msg(c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b"null-body" in head:
            return head, rest

        def term(b):   # end of the last chunk: "0" or "0; ieof" (the test bodies never hold them)
            ends = [b.find(t) + len(t) for t in (b"\r\n0\r\n\r\n", b"\r\n0; ieof\r\n\r\n") if t in b]
            return min(ends) if ends else -1
        while term(rest) < 0:
            d = c.recv(65536)
            if not d:
                return None, rest
            rest += d
        end = term(rest)
        # the whole message (head, heads and body as sent) for the modes that look at it
        return head + b"\r\n\r\n" + rest[:end], rest[end:]

    def _serve(self, c):
        buf = b""
        served = 0
        try:
            while True:
                head, buf = self._read_msg(c, buf)
                if head is None:
                    return
                line = head.split(b"\r\n", 1)[0].decode()
                method, uri = line.split()[:2]
                mode = uri.rsplit("/", 1)[1]
                if method == "OPTIONS":
                    with self.lock:
                        self.seen.append((mode, "OPTIONS", b""))
                    extra = b"Preview: 10\r\nAllow: 204\r\n" if mode == "preview" else \
                        b"Max-Connections: 1\r\n" if mode == "maxconn" else \
                        b"Preview: 10\r\nAllow: 204\r\nTransfer-Preview: *\r\nTransfer-Ignore: jpg, png\r\n" \
                        b"Transfer-Complete: exe\r\n" if mode == "xfer" else b""
                    ttl = b"1" if mode == "preview" else b"60"
                    c.sendall(b"ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nISTag: \"bad-1\"\r\n" + extra +
                              b"Options-TTL: " + ttl + b"\r\nEncapsulated: null-body=0\r\n\r\n")
                    continue
                if mode == "preview":
                    buf = self.preview(c, head, buf)
                    continue
                if mode == "xfer":          # records what came, 204 (inside the preview, or after all)
                    with self.lock:
                        self.seen.append((mode, "RESPMOD", head))
                    c.sendall(b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n")
                    continue
                if mode == "dropsecond":    # a kept connection that dies under its second request
                    served += 1
                    with self.lock:
                        self.seen.append((mode, "RESPMOD", b"%d" % served))
                    if served == 2:
                        return
                    c.sendall(b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n")
                    continue
                if mode == "maxconn":       # slow 204s on a kept connection, counting overlap
                    with self.lock:
                        self.active += 1
                        self.max_active = max(self.max_active, self.active)
                    time.sleep(0.3)
                    with self.lock:
                        self.active -= 1
                    c.sendall(b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n")
                    continue
                self.fault(c, mode)
                return
        except OSError:
            return
        finally:
            c.close()

    def preview(self, c, head, rest):
        """Preview: 10.  A body within it comes with ieof (answer 204 at
        once); a longer one waits for our 100 Continue, then comes whole."""
        _, _, first = head.partition(b"\r\n\r\n")
        got = head
        if b"0; ieof\r\n\r\n" not in head and not head.endswith(b"0; ieof"):
            c.sendall(b"ICAP/1.0 100 Continue\r\n\r\n")
            while b"0\r\n\r\n" not in rest:
                d = c.recv(65536)
                if not d:
                    return b""
                rest += d
            got += b"|CONTINUED|" + rest[:rest.index(b"0\r\n\r\n") + 5]
            rest = rest[rest.index(b"0\r\n\r\n") + 5:]
        with self.lock:
            self.seen.append(("preview", "RESPMOD", got))
        c.sendall(b"ICAP/1.0 204 No Content\r\nISTag: \"bad-1\"\r\nEncapsulated: null-body=0\r\n\r\n")
        return rest

    def fault(self, c, mode):
        res_hdr = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
        ok = b"ICAP/1.0 200 OK\r\nISTag: \"bad-1\"\r\nEncapsulated: res-hdr=0, res-body=%d\r\n\r\n" % len(res_hdr)
        if mode == "garbage":
            c.sendall(b"HELLO THIS IS NOT ICAP\r\n\r\n")
        elif mode == "badchunk":
            c.sendall(ok + res_hdr + b"zz\r\nxyz\r\n0\r\n\r\n")
        elif mode == "longhead":
            c.sendall(b"ICAP/1.0 200 OK\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n")
        elif mode == "longenc":
            c.sendall(b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=40000\r\n\r\n"
                      + b"HTTP/1.1 200 OK\r\nX-Pad: " + b"b" * 39000)
        elif mode == "truncated":
            c.sendall(ok + res_hdr + b"1000\r\n" + b"partial" * 10)
            time.sleep(0.2)
        elif mode == "reset":
            c.sendall(b"ICAP/1.0 200 OK\r\nISTag: \"bad")
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif mode == "slow":
            c.settimeout(30)
            try:
                d = c.recv(1)             # until the proxy gives up and closes
            except OSError:
                d = b"?"
            with self.lock:
                self.closed.append((mode, d))
        elif mode == "endless":
            c.sendall(ok + res_hdr)
            chunk = b"10000\r\n" + b"e" * 0x10000 + b"\r\n"
            c.settimeout(20)
            try:
                while True:
                    c.sendall(chunk)
            except OSError:
                pass
        elif mode == "204late":
            c.sendall(b"ICAP/1.0 204 No Content\r\nISTag: \"bad-1\"\r\nEncapsulated: null-body=0\r\n\r\n")


MODES = ("garbage", "badchunk", "longhead", "longenc", "truncated", "reset", "slow", "204late", "preview",
         "endless", "maxconn", "dropsecond", "xfer")


EXTRA = """,
    { name = "rq_badchunk"; uri = "icap://127.0.0.1:%d/badchunk"; method = "reqmod"; timeout = 20; },
    { name = "rq_truncated"; uri = "icap://127.0.0.1:%d/truncated"; method = "reqmod"; timeout = 20; },
    { name = "held"; uri = "icap://127.0.0.1:%d/slow"; timeout = 20; }"""


def conf(port, icap_port):
    svcs = ",\n".join('{ name = "%s"; uri = "icap://127.0.0.1:%d/%s"; timeout = %s; }'
                      % (m, icap_port, m, "1.5" if m == "slow" else "10") for m in MODES)
    rules = "\n".join('{ name = "%s"; action = "allow"; urls = [ "/%s/" ]; icap = [ "%s" ]; },' % (m, m, m)
                      for m in MODES)
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = ( %s );
  policy = ( %s
    { name = "rq-badchunk"; action = "allow"; urls = [ "/rq-badchunk/" ]; icap = [ "rq_badchunk" ]; },
    { name = "rq-truncated"; action = "allow"; urls = [ "/rq-truncated/" ]; icap = [ "rq_truncated" ]; },
    { name = "held"; action = "allow"; urls = [ "/held/" ]; icap = [ "held" ]; },
    { name = "all"; action = "allow"; } );
};
""" % (port, svcs + EXTRA % (icap_port, icap_port, icap_port), rules)


@pytest.fixture(scope="module")
def env():
    bad = BadIcap()
    origin = gh.CacheOrigin()
    for m in MODES:
        origin.script("/%s/f.txt" % m, headers=[("Content-Type", "text/plain")], body=BODY)
    origin.script("/plain.txt", body=BODY)
    origin.script("/held/f.txt", body=BODY)
    for f in ("a.jpg", "a.exe", "a.txt"):
        origin.script("/xfer/" + f, body=BODY)
    origin.script("/preview/tiny.txt", body=b"tiny!")
    origin.script("/204late/chunked.txt", body=BODY, chunked=True)
    origin.script("/204late/chunked.txt?open", body=BODY, chunked=True)
    port = gh.free_port()
    g = gh.Gatehouse(conf(port, bad.port))
    g.start(wait_ports=[port])
    yield g, port, origin, bad
    origin.stop()
    g.check_clean()


def fetch(env, path):
    g, port, origin, _ = env
    p = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
                        "http://127.0.0.1:%d%s" % (origin.port, path)], capture_output=True, timeout=60)
    body, _, code = p.stdout.rpartition(b"\n")
    return p.returncode, int(code or 0), body


@pytest.mark.parametrize("mode,why", [
    ("garbage", "malformed answer"),
    ("longhead", "answer head too long"),
    ("longenc", "with a bad Encapsulated head"),
    ("reset", "connection reset"),
    ("slow", "timed out"),
])
def test_fault_before_the_answer_fails_closed(env, mode, why):
    rc, code, body = fetch(env, "/%s/f.txt" % mode)
    assert rc == 0 and code == 502, (mode, rc, code, body[:300])
    assert b"Content scan failed" in body and BODY[:50] not in body
    err = env[0].stderr()
    assert "ICAP service %s" % mode in err and why in err, err[-2000:]
    rc, code, body = fetch(env, "/plain.txt")        # still serving
    assert code == 200 and body == BODY


@pytest.mark.parametrize("mode", ["badchunk", "truncated"])
def test_broken_replacement_body_cuts_the_client(env, mode):
    rc, code, body = fetch(env, "/%s/f.txt" % mode)
    # the replacement began (200 head and maybe bytes): the client must see
    # an incomplete response (curl error), never a short body as complete
    assert rc != 0, (mode, rc, code, body[:200])
    assert BODY not in body
    rc, code, body = fetch(env, "/plain.txt")
    assert code == 200 and body == BODY


def test_204_after_the_whole_body(env):
    rc, code, body = fetch(env, "/204late/f.txt")
    assert rc == 0 and code == 200 and body == BODY


def test_client_gone_while_held(env):
    g, port, origin, bad = env
    with bad.lock:
        bad.closed.clear()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET http://127.0.0.1:%d/held/f.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
              % (origin.port, origin.port))
    time.sleep(0.5)
    s.close()
    # the held exchange is abandoned: its ICAP connection closed at once
    # (well before the service's 20 s timeout)
    end = time.time() + 5.0
    while time.time() < end:
        with bad.lock:
            if any(d == b"" for _, d in bad.closed):
                break
        time.sleep(0.05)
    with bad.lock:
        assert any(d == b"" for _, d in bad.closed), bad.closed
    rc, code, body = fetch(env, "/plain.txt")
    assert code == 200 and body == BODY


def test_preview_ieof_100_continue_and_options_ttl(env):
    g, port, origin, bad = env
    with bad.lock:
        bad.seen.clear()
    rc, code, body = fetch(env, "/preview/tiny.txt")
    assert code == 200 and body == b"tiny!"
    rc, code, body = fetch(env, "/preview/f.txt")
    assert code == 200 and body == BODY
    with bad.lock:
        seen = [x for x in bad.seen if x[0] == "preview"]
    assert [m for _, m, _ in seen] == ["OPTIONS", "RESPMOD", "RESPMOD"], seen
    tiny, big = seen[1][2], seen[2][2]
    assert b"Allow: 204\r\n" in tiny and b"Preview: 10\r\n" in tiny and b"X-Client-IP: 127.0.0.1\r\n" in tiny
    assert b"X-Server-IP: 127.0.0.1\r\n" in tiny
    # the whole body inside the preview: one chunk, then "0; ieof"
    assert tiny.endswith(b"\r\n5\r\ntiny!\r\n0; ieof\r\n\r\n"), tiny[-80:]
    # a longer one: 10 bytes, "0", and the rest only after our 100 Continue
    pre, _, rest = big.partition(b"|CONTINUED|")
    assert pre.endswith(b"\r\na\r\n" + BODY[:10] + b"\r\n0\r\n\r\n"), pre[-60:]
    assert rest.startswith(b"%x\r\n" % (len(BODY) - 10) + BODY[10:20])
    # Options-TTL: 1: the next exchange after a second asks OPTIONS again
    import time as _t
    _t.sleep(1.3)
    rc, code, body = fetch(env, "/preview/tiny.txt")
    assert code == 200 and body == b"tiny!"
    with bad.lock:
        assert [m for mm, m, _ in bad.seen if mm == "preview"].count("OPTIONS") == 2, bad.seen


def test_scan_memory_bound(env):
    """Held responses share forward.dlp.max_scan_memory: a chunked one reserves
    max_body_bytes; without room it is refused (503) or, with bypass_on_error,
    passed unscanned; one that fits is still scanned."""
    _, _, origin, bad = env
    port = gh.free_port()
    g = gh.Gatehouse("""
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  dlp: { enabled = false; max_scan_bytes = "1K"; max_scan_memory = "64K"; };
  icap = ( { name = "closed"; uri = "icap://127.0.0.1:%d/204late"; max_body_bytes = "1M"; },
           { name = "open"; uri = "icap://127.0.0.1:%d/204late"; max_body_bytes = "1M";
             bypass_on_error = true; } );
  policy = ( { name = "o"; action = "allow"; urls = [ "[?]open" ]; icap = [ "open" ]; },
             { name = "c"; action = "allow"; icap = [ "closed" ]; } );
};
""" % (port, bad.port, bad.port))
    g.start(wait_ports=[port])
    try:
        e = (g, port, origin, bad)
        rc, code, body = fetch(e, "/204late/f.txt")             # Content-Length 7400: fits
        assert code == 200 and body == BODY
        rc, code, body = fetch(e, "/204late/chunked.txt")       # 1M + slack: no room
        assert code == 503
        rc, code, body = fetch(e, "/204late/chunked.txt?open")
        assert code == 200 and body == BODY
        assert "passed unscanned" in gh.access_line_for(g, "chunked.txt?open")
    finally:
        g.check_clean()


def test_endless_answer_to_a_slow_client_is_bounded(env):
    """A 200 whose body never ends, to a client that does not read: the
    service is read no faster than the client takes (memory stays bounded)."""
    g, port, origin, bad = env
    before = gh.rss_kb(g.proc.pid)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET http://127.0.0.1:%d/endless/f.txt HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
    time.sleep(2.0)
    grown = gh.rss_kb(g.proc.pid) - before
    got = s.recv(65536)
    s.close()
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    if not gh.SANITIZED:
        assert grown < 16 * 1024, "RSS grew by %d kB" % grown
    rc, code, body = fetch(env, "/plain.txt")
    assert code == 200 and body == BODY


def test_max_connections_respected(env):
    """OPTIONS said Max-Connections: 1: parallel downloads wait for the one
    connection (pooled, persistent) instead of opening more."""
    g, port, origin, bad = env
    assert fetch(env, "/maxconn/f.txt")[1] == 200        # learns the OPTIONS
    with bad.lock:
        bad.max_active = 0
    out = []
    ts = [threading.Thread(target=lambda: out.append(fetch(env, "/maxconn/f.txt"))) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [(c, b == BODY) for _, c, b in out] == [(200, True)] * 3
    assert bad.max_active == 1


def test_pooled_connection_dead_under_the_request_is_retried_once(env):
    g, port, origin, bad = env
    with bad.lock:
        bad.seen.clear()
    for _ in range(2):
        rc, code, body = fetch(env, "/dropsecond/f.txt")
        assert code == 200 and body == BODY
    with bad.lock:
        tries = [x[2] for x in bad.seen if x[0] == "dropsecond" and x[1] == "RESPMOD"]
    # first on a new connection; the second on the pooled one (dropped), then on a new one
    assert tries == [b"1", b"2", b"1"], tries


def test_transfer_ignore_and_complete(env):
    """OPTIONS' Transfer-Ignore (jpg, png): not sent at all; Transfer-Complete
    (exe): sent whole, without Preview; others with the preview."""
    g, port, origin, bad = env
    with bad.lock:
        bad.seen.clear()
    for f in ("a.txt", "a.jpg", "a.exe", "a.txt"):
        rc, code, body = fetch(env, "/xfer/" + f)
        assert code == 200 and body == BODY, f
    with bad.lock:
        seen = [x for x in bad.seen if x[0] == "xfer"]
    assert [x[1] for x in seen] == ["OPTIONS", "RESPMOD", "RESPMOD", "RESPMOD"], seen
    heads = [x[2] for x in seen[1:]]
    assert b"/xfer/a.txt" in heads[0] and b"Preview: 10" in heads[0]
    assert b"/xfer/a.exe" in heads[1] and b"Preview:" not in heads[1]
    assert heads[1].endswith(b"\r\n0\r\n\r\n") and BODY[-50:] in heads[1]   # the whole body
    assert b"/xfer/a.txt" in heads[2]


def test_authenticated_user_sent_base64(env):
    """A user signed in to the proxy is named to the service: X-Authenticated-User,
    base64 (c-icap's RemoteProxyUserHeaderEncoded default)."""
    import base64
    _, _, origin, bad = env
    port = gh.free_port()
    g = gh.Gatehouse("""
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  auth: { users_file = "@DIR@/users"; };
  icap = ( { name = "x"; uri = "icap://127.0.0.1:%d/xfer"; } );
  icap_default = [ "x" ];
  policy = ( { name = "login"; action = "auth"; }, { name = "all"; action = "allow"; } );
};
""" % (port, bad.port), extra_files={"users": "alice:%s\n" % gh.crypt_hash("s3cret")})
    g.start(wait_ports=[port])
    try:
        with bad.lock:
            bad.seen.clear()
        p = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-U", "alice:s3cret", "-o", "-",
                            "http://127.0.0.1:%d/xfer/a.txt" % origin.port], capture_output=True, timeout=30)
        assert p.stdout == BODY
        with bad.lock:
            heads = [x[2] for x in bad.seen if x[0] == "xfer" and x[1] == "RESPMOD"]
        assert heads and b"X-Authenticated-User: " + base64.b64encode(b"alice") + b"\r\n" in heads[0]
    finally:
        g.check_clean()


@pytest.mark.parametrize("mode", ["badchunk", "truncated"])
def test_upload_answer_broken_mid_body_fails_closed(env, mode):
    """REQMOD: the service's page breaks mid-body: the upload is not sent and
    the client gets the 502 page at once (not after the exchange's timeout)."""
    g, port, origin, bad = env
    t0 = time.time()
    p = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
                        "--data-binary", "@-", "http://127.0.0.1:%d/rq-%s/up" % (origin.port, mode)],
                       input=BODY, capture_output=True, timeout=60)
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"502" and b"could not check this upload" in body, p.stdout[-300:]
    assert time.time() - t0 < 10
    assert origin.count("/rq-%s/up" % mode) == 0
