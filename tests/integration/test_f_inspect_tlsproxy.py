"""TLS inspection of CONNECTs that arrive over the HTTPS proxy listener
(forward.listeners[] tls = true): HTTP/1.1 CONNECT inside the proxy's TLS,
and CONNECT over HTTP/2 (RFC 9113 8.5, as Chrome sends it to an HTTPS
proxy).  The inspected session inside behaves as on a plain listener: the
minted certificate, per-request policy on full https:// URLs, users and
groups from the CONNECT's sign-in, DLP, block pages, the access log's
"inspected", bypass rules, the origin-verification block page.  Before
this, such a CONNECT was answered 500 (HTTP/1.1) or 501 (HTTP/2).

Real peers: TLS origins from a test CA (gh.Origin), curl --proxy https://
and a python3-h2 client doing TLS inside its CONNECT streams (ssl.MemoryBIO).
The module runs in its own network namespace (odd hellos reach the proxy)."""
import json
import os
import re
import socket
import ssl
import time

import h2.events  # python3-h2 (Debian): missing = the test fails
import pytest

import gh
from test_f_inspect import ns  # noqa: F401 (the module's network namespace, entered first)
from test_f_h2proxy import H2

CARD = "4111 1111 1111 1111"

CONF = """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
  timeouts: { client_header = 3.0; upstream_connect = 3.0; tunnel_idle = 20.0; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; tls = true; cert = "@DIR@/proxy.pem"; key = "@DIR@/proxy.key"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(ports)s ];
  auth: { users_file = "@DIR@/users"; groups_file = "@DIR@/groups"; };
  dlp: { action = "deny"; detectors = [ "credit_card" ]; };
  policy = (
    { name = "staff-login"; action = "auth"; domains = [ "staff.test" ]; },
    { name = "not-for-interns"; action = "deny"; groups = [ "interns" ]; urls = [ "/intern-blocked" ]; },
    { name = "no-secret"; action = "deny"; urls = [ "^https://(origin|staff)\\\\.test(:[0-9]+)?/secret" ]; },
    { name = "all"; action = "allow"; }
  );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; bypass_domains = [ "bypass.test" ]; };
};
"""

NAMES = ["origin.test", "staff.test", "bypass.test", "expired.test"]


class Env:
    pass


@pytest.fixture(scope="module")
def env(ns, tmp_path_factory):
    assert gh.NetNS.inside()
    e = Env()
    d = str(tmp_path_factory.mktemp("inspect_tlsproxy"))
    e.ca, _ = gh.make_ca(d)
    gh.make_cert(d, "proxy", ["localhost"])

    def origin(name, sans, days=30):
        crt, key = gh.make_cert(d, name, sans, days=days)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(crt, key)
        return gh.Origin(tls=c)

    e.o = origin("origin.test", ["origin.test", "staff.test", "bypass.test"])
    e.expired = origin("expired.test", ["expired.test"], days=-1)
    e.plain = gh.Origin()
    e.port = gh.free_port()
    users = "".join("%s:%s\n" % (u, gh.crypt_hash(p)) for u, p in (("alice", "wonder"), ("ivan", "intern")))
    conf = CONF % {"port": e.port, "ports": "%d, %d" % (e.o.port, e.expired.port), "ca": e.ca}
    e.g = gh.Gatehouse(conf, extra_files={"hosts": gh.hosts_file(NAMES), "users": users,
                                          "groups": "interns: ivan\n"})
    for n in ("proxy.pem", "proxy.key"):
        with open(os.path.join(d, n), "rb") as src, open(os.path.join(e.g.dir, n), "wb") as dst:
            dst.write(src.read())
    e.g.start([e.port])
    e.proxy = "https://localhost:%d" % e.port
    # the inspection CA, fetched over the TLS listener itself
    rc, pem, err = gh.curl("-sS", "--cacert", e.ca, "https://localhost:%d/gatehouse-ca.crt" % e.port)
    assert rc == 0 and b"BEGIN CERTIFICATE" in pem, err
    e.gwca = os.path.join(e.g.dir, "gatehouse-ca.pem")
    with open(e.gwca, "wb") as f:
        f.write(pem)
    e.lines = []
    yield e
    e.o.stop()
    e.expired.stop()
    e.plain.stop()
    e.g.check_clean()


def lines(e):
    """Every access-log line so far (the file is read whole: no line is lost
    between calls)."""
    try:
        with open(e.g.access, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_line(e, pred, timeout=10.0):
    """The first access-log line for which pred holds, polled (the log is
    written by another thread); None after timeout."""
    end = time.monotonic() + timeout
    while True:
        for line in lines(e):
            if pred(line):
                return line
        if time.monotonic() > end:
            return None
        time.sleep(0.1)


def pcurl(e, url, *args, cacert=None, input=None):
    """curl through the HTTPS proxy trusting cacert (default: the inspection
    CA only): (rc, status, body, stderr)."""
    rc, out, err = gh.curl("-sS", "-o", "-", "-w", "\n%{http_code}", "--proxy", e.proxy, "--proxy-cacert", e.ca,
                           "--cacert", cacert or e.gwca, *args, url, input=input)
    body, _, code = out.rpartition(b"\n")
    return rc, int(code or b"0"), body, err


def origin_saw(e, path):
    return [r for r in e.o.requests if r.target == path]


def other_proxy(e, conf, files, port, more_ports=()):
    """Another Gatehouse with the module's proxy certificate, started; the
    inspection CA it serves (fetched over its TLS listener) written beside
    it.  Returns (g, that CA's path)."""
    g = gh.Gatehouse(conf, extra_files=files)
    for n in ("proxy.pem", "proxy.key"):
        with open(os.path.join(e.g.dir, n), "rb") as src, open(os.path.join(g.dir, n), "wb") as dst:
            dst.write(src.read())
    g.start([port, *more_ports])
    rc, pem, err = gh.curl("-sS", "--cacert", e.ca, "https://localhost:%d/gatehouse-ca.crt" % port)
    if rc != 0 or b"BEGIN CERTIFICATE" not in pem:
        g.stop()
        raise AssertionError("no inspection CA from the proxy: " + err)
    gwca = os.path.join(g.dir, "gatehouse-ca.pem")
    with open(gwca, "wb") as f:
        f.write(pem)
    return g, gwca


# ---- HTTP/1.1 CONNECT over the TLS listener ----

def test_h1_connect_inspected(env):
    e = env
    url = "https://origin.test:%d/echo?h1-inspected" % e.o.port
    rc, st, body, err = pcurl(e, url, "-v")
    # curl trusts only the inspection CA: the certificate it saw was minted
    assert rc == 0 and st == 200, err
    assert json.loads(body)["target"] == "/echo?h1-inspected"
    assert re.search(r"issuer: .*Gatehouse", err, re.I), err
    assert len(origin_saw(e, "/echo?h1-inspected")) == 1
    inner = wait_line(e, lambda l: '"GET https://origin.test:%d/echo?h1-inspected HTTP/1.1" 200' % e.o.port in l)
    assert inner is not None
    # the CONNECT's line: one, "inspected" (the outer relay is not logged)
    conn = [l for l in lines(e) if '"CONNECT origin.test:%d HTTP/1.1" 200' % e.o.port in l]
    assert len(conn) >= 1 and all("inspected" in l for l in conn), conn


def test_h1_connect_counted_once(env):
    e = env
    before = [l for l in lines(e) if "CONNECT origin.test:%d" % e.o.port in l]
    rc, st, body, err = pcurl(e, "https://origin.test:%d/size/5" % e.o.port)
    assert rc == 0 and st == 200 and body == b"xxxxx", err
    assert wait_line(e, lambda l: '"GET https://origin.test:%d/size/5 HTTP/1.1" 200' % e.o.port in l)
    # curl ended: both lines are written by now; exactly one more CONNECT line
    end = time.monotonic() + 5
    while True:
        after = [l for l in lines(e) if "CONNECT origin.test:%d" % e.o.port in l]
        if len(after) > len(before) or time.monotonic() > end:
            break
        time.sleep(0.1)
    time.sleep(0.3)   # (a second line, if one came, would trail the first)
    after = [l for l in lines(e) if "CONNECT origin.test:%d" % e.o.port in l]
    assert len(after) == len(before) + 1, after[len(before):]


def test_h1_url_rule_block_page(env):
    e = env
    rc, st, body, err = pcurl(e, "https://origin.test:%d/secret/x" % e.o.port)
    assert rc == 0 and st == 403, err
    assert b"no-secret" in body
    assert origin_saw(e, "/secret/x") == []
    line = wait_line(e, lambda l: '"GET https://origin.test:%d/secret/x HTTP/1.1" 403' % e.o.port in l)
    assert line is not None and 'rule="no-secret"' in line, line


def test_h1_dlp_post_blocked(env):
    e = env
    rc, st, body, err = pcurl(e, "https://origin.test:%d/upload-dlp" % e.o.port, "--data-binary", "@-",
                              input=("pay %s now" % CARD).encode())
    assert rc == 0 and st == 403, err
    assert b"credit_card" in body and CARD.encode() not in body
    assert origin_saw(e, "/upload-dlp") == []
    # a clean POST goes through
    rc, st, body, err = pcurl(e, "https://origin.test:%d/echo" % e.o.port, "--data-binary", "hello")
    assert rc == 0 and st == 200 and json.loads(body)["body"] == "hello", err


def test_h1_basic_user_and_group_inside(env):
    e = env
    base = "https://staff.test:%d" % e.o.port
    # no credentials: 407 to the CONNECT (curl fails the proxy CONNECT)
    rc, st, body, err = pcurl(e, base + "/echo")
    assert rc != 0 and "407" in err, err
    rc, st, body, err = pcurl(e, base + "/echo?alice", "--proxy-user", "alice:wonder")
    assert rc == 0 and st == 200, err
    # the CONNECT's credentials are never forwarded into the inspected session
    hdrs = [h[0].lower() for h in json.loads(body)["headers"]]
    assert "proxy-authorization" not in hdrs
    line = wait_line(e, lambda l: "/echo?alice HTTP/1.1\" 200" in l)
    assert line is not None and "alice" in line, line
    # the group rule per request inside: ivan (interns) is blocked, alice not
    rc, st, body, err = pcurl(e, base + "/intern-blocked", "--proxy-user", "ivan:intern")
    assert rc == 0 and st == 403 and b"not-for-interns" in body, (st, body[:300], err)
    assert origin_saw(e, "/intern-blocked") == []
    rc, st, body, err = pcurl(e, base + "/intern-blocked", "--proxy-user", "alice:wonder")
    assert rc == 0 and st != 403, (st, err)
    assert len(origin_saw(e, "/intern-blocked")) == 1
    line = wait_line(e, lambda l: "staff.test" in l and "/intern-blocked" in l and " 403 " in l)
    assert line is not None and "ivan" in line, line


def test_h1_bypass_tunnels_uninspected(env):
    e = env
    # the origin's own certificate (the test CA): not inspected
    rc, st, body, err = pcurl(e, "https://bypass.test:%d/echo?bypass" % e.o.port, cacert=e.ca)
    assert rc == 0 and st == 200, err
    rc, st, body, err = pcurl(e, "https://bypass.test:%d/echo?bypass2" % e.o.port)
    assert rc != 0   # the inspection CA does not verify the origin's certificate
    line = wait_line(e, lambda l: '"CONNECT bypass.test:%d HTTP/1.1" 200' % e.o.port in l)
    assert line is not None and "inspected" not in line, line


def test_h1_large_bodies_inspected_and_bypassed(env):
    e = env
    n = 4 * 1024 * 1024
    rc, st, body, err = pcurl(e, "https://origin.test:%d/size/%d" % (e.o.port, n))
    assert rc == 0 and st == 200 and len(body) == n, err
    # the bypassed tunnel's bytes cross the socketpair (spliced when bulk)
    rc, st, body, err = pcurl(e, "https://bypass.test:%d/size/%d" % (e.o.port, n), cacert=e.ca)
    assert rc == 0 and st == 200 and len(body) == n, err
    up = os.urandom(3 * 1024 * 1024)
    rc, st, body, err = pcurl(e, "https://origin.test:%d/upload" % e.o.port, "--data-binary", "@-", input=up)
    assert rc == 0 and st == 200 and body == b"%d" % len(up), (st, body[:200], err)


def test_h1_origin_problem_block_page(env):
    e = env
    rc, st, body, err = pcurl(e, "https://expired.test:%d/echo" % e.expired.port)
    assert rc == 0 and st == 502, err   # the minted leaf is trusted: the page is readable
    assert b"has expired" in body, body[:1500]
    assert e.expired.requests == []


def test_h1_client_closes_mid_handshake(env):
    e = env
    ctx = ssl.create_default_context(cafile=e.ca)
    for cut in (0, 30):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", e.port), timeout=10), server_hostname="localhost")
        s.sendall(b"CONNECT origin.test:%d HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % (e.o.port, e.o.port))
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)
            assert b, head
            head += b
        assert head.startswith(b"HTTP/1.1 200"), head
        # the start of a ClientHello (or nothing), then gone
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="origin.test")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        if cut:
            s.sendall(out.read()[:cut])
        s.close()
    # each is logged (the hello never came whole) and the proxy serves on
    assert wait_line(e, lambda l: '"CONNECT origin.test:%d HTTP/1.1" 408' % e.o.port in l) is not None
    rc, st, body, err = pcurl(e, "https://origin.test:%d/size/2" % e.o.port)
    assert rc == 0 and st == 200 and body == b"xx", err


# ---- CONNECT over HTTP/2 ----

class Inner:
    """TLS inside an h2 CONNECT stream (ssl.MemoryBIO over its DATA)."""

    def __init__(self, c, sid, host, cafile, alpn=None):
        self.c, self.sid = c, sid
        ctx = ssl.create_default_context(cafile=cafile)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        self.got = 0

    def _feed(self):
        d = self.c.st[self.sid]["data"]
        if len(d) > self.got:
            self.inc.write(bytes(d[self.got:]))
            self.got = len(d)

    def _flush(self):
        d = self.out.read()
        if d:
            self.c.send(self.sid, d)

    def handshake(self, timeout=10):
        end = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
            have = self.got
            self.c.pump(lambda: len(self.c.st[self.sid]["data"]) > have or self.c.done(self.sid),
                        timeout=max(0.1, end - time.monotonic()))
            if self.c.done(self.sid) and len(self.c.st[self.sid]["data"]) == have:
                raise ConnectionError("stream ended during the handshake")
            self._feed()

    def request(self, req, timeout=10):
        """Send req, read until the response (Content-Length framed) is whole."""
        self.obj.write(req)
        self._flush()
        buf = b""
        end = time.monotonic() + timeout
        while True:
            try:
                while True:
                    buf += self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    return head, body[:int(m.group(1))]
            have = self.got
            self.c.pump(lambda: len(self.c.st[self.sid]["data"]) > have or self.c.done(self.sid),
                        timeout=max(0.1, end - time.monotonic()))
            self._feed()
            if self.c.done(self.sid) and self.inc.pending == 0:
                try:
                    buf += self.obj.read(65536)
                except ssl.SSLError:
                    pass
                raise ConnectionError("stream ended: %r" % buf[:300])


def h2_connect(e, c, host, port, extra=()):
    sid = c.connect("%s:%d" % (host, port), extra)
    c.pump(lambda: c.st[sid]["headers"] is not None or c.done(sid))
    return sid


def test_h2_connect_inspected_two_streams(env):
    e = env
    c = H2(e.port, e.ca)
    try:
        a = h2_connect(e, c, "origin.test", e.o.port)
        b = h2_connect(e, c, "origin.test", e.o.port)
        assert c.status(a) == 200 and c.status(b) == 200
        ia = Inner(c, a, "origin.test", e.gwca)   # verifies: minted by the inspection CA
        ib = Inner(c, b, "origin.test", e.gwca)
        ia.handshake()
        ib.handshake()
        assert "Gatehouse" in str(ia.obj.getpeercert()["issuer"])
        host = b"origin.test:%d" % e.o.port
        head, body = ia.request(b"GET /echo?h2-a HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert json.loads(body)["target"] == "/echo?h2-a"
        # the other stream, independently: a block page inside
        head, body = ib.request(b"GET /secret/h2 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403"), head
        assert b"no-secret" in body
        assert origin_saw(e, "/secret/h2") == []
        # and a DLP upload on the first
        post = ("card %s" % CARD).encode()
        head, body = ia.request(b"POST /upload-h2 HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: %d\r\n\r\n"
                                % len(post) + post)
        assert head.startswith(b"HTTP/1.1 403") and b"credit_card" in body, head
        assert origin_saw(e, "/upload-h2") == []
        assert len(origin_saw(e, "/echo?h2-a")) == 1
        # a large body through the stream's flow control, both ways
        head, body = ib.request(b"GET /size/2000000 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", timeout=60)
        assert head.startswith(b"HTTP/1.1 200") and len(body) == 2000000, head
        line = wait_line(e, lambda l: '"CONNECT origin.test:%d HTTP/2.0" 200' % e.o.port in l)
        assert line is not None and "inspected" in line, line
        line = wait_line(e, lambda l: '"GET https://origin.test:%d/secret/h2 HTTP/1.1" 403' % e.o.port in l)
        assert line is not None and 'rule="no-secret"' in line, line
    finally:
        c.close()


def test_h2_connect_h2_inside(env):
    e = env
    c = H2(e.port, e.ca)
    try:
        a = h2_connect(e, c, "origin.test", e.o.port)
        assert c.status(a) == 200
        ia = Inner(c, a, "origin.test", e.gwca, alpn=["h2"])   # h2 only: served h2 inside
        ia.handshake()
        assert ia.obj.selected_alpn_protocol() == "h2"
        import h2.config
        import h2.connection
        inner = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        inner.initiate_connection()
        inner.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                               (":authority", "origin.test:%d" % e.o.port), (":path", "/echo?h2-in-h2")],
                           end_stream=True)
        ia.obj.write(inner.data_to_send())
        ia._flush()
        status, body, done = None, b"", False
        end = time.monotonic() + 10
        while not done:
            assert time.monotonic() < end, "no answer inside"
            try:
                while True:
                    for ev in inner.receive_data(ia.obj.read(65536)):
                        if isinstance(ev, h2.events.ResponseReceived):
                            status = dict(ev.headers)[b":status"]
                        elif isinstance(ev, h2.events.DataReceived):
                            body += ev.data
                        elif isinstance(ev, h2.events.StreamEnded):
                            done = True
            except ssl.SSLWantReadError:
                pass
            d = inner.data_to_send()
            if d:
                ia.obj.write(d)
                ia._flush()
            if not done:
                have = ia.got
                c.pump(lambda: len(c.st[a]["data"]) > have or c.done(a), timeout=2)
                ia._feed()
        assert status == b"200" and json.loads(body)["target"] == "/echo?h2-in-h2"
        line = wait_line(e, lambda l: '"GET https://origin.test:%d/echo?h2-in-h2 HTTP/2.0" 200' % e.o.port in l)
        assert line is not None
    finally:
        c.close()


def test_h2_connect_auth_bypass_and_origin_problem(env):
    e = env
    c = H2(e.port, e.ca)
    try:
        # staff.test needs a sign-in: 407 on the stream, then Basic per stream
        x = h2_connect(e, c, "staff.test", e.o.port)
        assert c.status(x) == 407
        import base64
        cred = ("proxy-authorization", "Basic " + base64.b64encode(b"ivan:intern").decode())
        y = h2_connect(e, c, "staff.test", e.o.port, [cred])
        assert c.status(y) == 200
        iy = Inner(c, y, "staff.test", e.gwca)
        iy.handshake()
        host = b"staff.test:%d" % e.o.port
        head, body = iy.request(b"GET /intern-blocked HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403") and b"not-for-interns" in body, head
        head, body = iy.request(b"GET /echo?ivan-h2 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        line = wait_line(e, lambda l: "/echo?ivan-h2 HTTP/1.1\" 200" in l)
        assert line is not None and "ivan" in line, line
        # bypassed: the origin's own certificate, through the stream
        z = h2_connect(e, c, "bypass.test", e.o.port)
        assert c.status(z) == 200
        iz = Inner(c, z, "bypass.test", e.ca)
        iz.handshake()
        head, body = iz.request(b"GET /echo?bypass-h2 HTTP/1.1\r\nHost: bypass.test\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        # an origin that fails verification: the block page, as on a plain listener
        v = h2_connect(e, c, "expired.test", e.expired.port)
        assert c.status(v) == 200
        iv = Inner(c, v, "expired.test", e.gwca)
        iv.handshake()
        head, body = iv.request(b"GET /echo HTTP/1.1\r\nHost: expired.test\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 502") and b"has expired" in body, head
        assert e.expired.requests == []
    finally:
        c.close()


def test_h2_client_goes_mid_handshake(env):
    e = env
    c = H2(e.port, e.ca)
    a = h2_connect(e, c, "origin.test", e.o.port)
    assert c.status(a) == 200
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="origin.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    c.send(a, out.read()[:40])
    b = h2_connect(e, c, "origin.test", e.o.port)   # and one with nothing sent
    assert c.status(b) == 200
    c.close()
    line = wait_line(e, lambda l: '"CONNECT origin.test:%d HTTP/2.0" 408' % e.o.port in l)
    assert line is not None, lines(e)[-5:]
    # the proxy serves on
    rc, st, body, err = pcurl(e, "https://origin.test:%d/size/3" % e.o.port)
    assert rc == 0 and st == 200 and body == b"xxx", err


# ---- a Negotiate (Kerberos) sign-in on the CONNECT, carried inside ----

NEG_CONF = """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; tls = true; cert = "@DIR@/proxy.pem"; key = "@DIR@/proxy.key"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d ];
  auth: { realm = "Corp"; schemes = [ "negotiate" ];
    kerberos: { keytab = "%(keytab)s"; principal = "HTTP/localhost@%(realm)s"; }; };
  policy = (
    { name = "login"; action = "auth"; },
    { name = "not-for-alice"; action = "deny"; users = [ "alice" ]; urls = [ "/alice-blocked" ]; },
    { name = "rest"; action = "allow"; }
  );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""


def test_h1_negotiate_signin_carried_inside(env):
    import sso_peers
    e = env
    k = sso_peers.Kdc()
    g = None
    saved = {n: os.environ.get(n) for n in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    try:
        k.user("alice", "alicepw")
        k.service("HTTP/localhost")
        keytab = os.path.join(k.dir, "proxy.keytab")
        k.keytab("HTTP/localhost", keytab)
        os.environ["KRB5_CONFIG"] = k.env["KRB5_CONFIG"]   # gatehouse inherits these
        os.environ["KRB5RCACHEDIR"] = k.dir
        port = gh.free_port()
        g, gwca = other_proxy(e, NEG_CONF % {"port": port, "oport": e.o.port, "keytab": keytab,
                                             "realm": sso_peers.REALM, "ca": e.ca},
                              {"hosts": gh.hosts_file(NAMES)}, port)
        alice = k.kinit("alice", "alicepw")

        def neg(path):
            rc, out, err = sso_peers.curl_env(alice, "-s", "-o", "-", "-w", "\n%{http_code}", "--proxy-negotiate",
                                              "-U", ":", "--proxy", "https://localhost:%d" % port, "--proxy-cacert",
                                              e.ca, "--cacert", gwca, "https://origin.test:%d%s" % (e.o.port, path))
            body, _, code = out.rpartition(b"\n")
            return rc, int(code or b"0"), body, err

        rc, st, body, err = neg("/echo?negotiated")
        assert rc == 0 and st == 200, err
        assert json.loads(body)["target"] == "/echo?negotiated"
        # the inner requests carry the CONNECT's Kerberos identity: the
        # per-user rule applies inside (without it they would be 407)
        rc, st, body, err = neg("/alice-blocked")
        assert rc == 0 and st == 403 and b"not-for-alice" in body, (st, body[:300], err)
        assert origin_saw(e, "/alice-blocked") == []
        end = time.monotonic() + 10
        line = None
        while line is None and time.monotonic() < end:
            line = next((l for l in g.access_lines(wait=0.1) if "/echo?negotiated HTTP/1.1\" 200" in l), None)
        assert line is not None and ("alice@%s" % sso_peers.REALM) in line, line
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v
        if g is not None:
            g.check_clean()
        k.stop()


@pytest.mark.parametrize("alpn", ["http/1.1", "h2"])
def test_partial_tls_record_does_not_stall_the_worker(env, alpn):
    """A client that stops in the middle of a TLS record: OpenSSL holds the
    part (read ahead) and SSL_has_pending says so; the worker must wait for
    the socket, not spin on it (it then never polled again: every other
    client of the worker stalled, this nested inspection's first).  On an
    HTTP/1.1 connection and on an HTTP/2 one (its preface cut)."""
    e = env
    s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context(cafile=e.ca)
    ctx.set_alpn_protocols([alpn])
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            d = s.recv(65536)
            assert d, "proxy closed during the handshake"
            inc.write(d)
    s.sendall(out.read())
    assert obj.selected_alpn_protocol() == alpn
    if alpn == "h2":
        import h2.config
        import h2.connection
        hc = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        hc.initiate_connection()
        obj.write(hc.data_to_send())
        s.sendall(out.read()[:20])
        try:
            rc, st, body, err = pcurl(e, "https://origin.test:%d/size/4" % e.o.port, "--max-time", "10")
            assert rc == 0 and st == 200 and body == b"xxxx", err
        finally:
            s.close()
        return
    obj.write(b"GET http://origin.test:%d/size/6 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % (e.plain.port, e.plain.port))
    rec = out.read()
    s.sendall(rec[:len(rec) // 2])
    try:
        # the single worker serves another client meanwhile (and its inspection)
        rc, st, body, err = pcurl(e, "https://origin.test:%d/size/4" % e.o.port, "--max-time", "10")
        assert rc == 0 and st == 200 and body == b"xxxx", err
        s.sendall(rec[len(rec) // 2:])
        got = b""
        end = time.monotonic() + 10
        while b"xxxxxx" not in got and time.monotonic() < end:
            try:
                got += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            d = s.recv(65536)
            if not d:
                break
            inc.write(d)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"xxxxxx"), got
    finally:
        s.close()


def test_h2_inner_end_ends_the_stream_only(env):
    """The inner connection closing (here: no ClientHello within
    client_header, 408) ends its CONNECT stream; the proxy connection and
    its other streams go on."""
    e = env
    c = H2(e.port, e.ca)
    try:
        a = h2_connect(e, c, "origin.test", e.o.port)
        assert c.status(a) == 200
        c.pump(lambda: c.done(a), timeout=15)
        assert c.st[a]["data"] == bytearray()
        b = h2_connect(e, c, "origin.test", e.o.port)
        assert c.status(b) == 200
        ib = Inner(c, b, "origin.test", e.gwca)
        ib.handshake()
        head, body = ib.request(b"GET /echo?after-408 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % e.o.port)
        assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        c.close()


LIMIT_CONF = """
admin: { listen = ""; metrics_listen = "127.0.0.1:%(mport)d"; };
@GLOBAL@
  max_connections_per_client = 2;
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; tls = true; cert = "@DIR@/proxy.pem"; key = "@DIR@/proxy.key"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d ];
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""


def test_counted_once_and_inner_connection_limited(env):
    """/metrics: an inspected CONNECT over the TLS listener and one request
    inside are two requests received and answered, one check tunnel (as on
    a plain listener: the carrying tunnel is not counted).  The inner
    connection counts against max_connections_per_client: the proxy
    connection plus one inspected stream fill 2, the next stream gets 503."""
    e = env
    port, mport = gh.free_port(), gh.free_port()
    g, gwca = other_proxy(e, LIMIT_CONF % {"port": port, "mport": mport, "oport": e.o.port, "ca": e.ca},
                          {"hosts": gh.hosts_file(NAMES)}, port, [mport])

    def m(name):
        return gh.metrics(mport).get('gatehouse_%s{family="forward"}' % name, 0)

    def m2xx():
        return gh.metrics(mport).get('gatehouse_requests_total{family="forward",class="2xx"}', 0)

    def settle(pred, timeout=10):
        end = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < end, "metrics: condition not met"
            time.sleep(0.1)

    try:
        settle(lambda: m("connections_active") == 0 and m2xx() == 1)
        rx, ok, tun = m("requests_received_total"), m2xx(), m("tunnels_total")
        rc, out, err = gh.curl("-sS", "--proxy", "https://localhost:%d" % port, "--proxy-cacert", e.ca,
                               "--cacert", gwca, "https://origin.test:%d/size/3" % e.o.port)
        assert rc == 0 and out == b"xxx", err
        settle(lambda: m("connections_active") == 0 and m2xx() >= ok + 2)
        time.sleep(0.5)   # (a third count, if one came, would trail the others)
        assert m("requests_received_total") == rx + 2
        assert m2xx() == ok + 2
        assert m("tunnels_total") == tun + 1
        # the limit: the proxy connection is 1, an inspected stream's inner 2
        c = H2(port, e.ca)
        try:
            a = h2_connect(e, c, "origin.test", e.o.port)
            assert c.status(a) == 200
            b = h2_connect(e, c, "origin.test", e.o.port)
            assert c.status(b) == 503
            ia = Inner(c, a, "origin.test", gwca)
            ia.handshake()
            head, body = ia.request(b"GET /size/2 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % e.o.port)
            assert head.startswith(b"HTTP/1.1 200") and body == b"xx", head
        finally:
            c.close()
    finally:
        g.check_clean()


def spki_b64(der_cert):
    import base64
    import hashlib
    import subprocess
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"], input=der_cert,
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_chromium_through_the_https_proxy(env):
    """Debian's Chromium with --proxy-server=https://...: it speaks HTTP/2 to
    the proxy, so its CONNECTs are streams; the inspected page and the block
    page load (test_f_inspect's browser script)."""
    import subprocess
    import test_a_browser as tb
    e = env
    assert os.path.exists("/usr/bin/chromium"), "chromium missing: run tests/deps.sh test"
    tb.ensure_node_modules()
    # the keys Chromium is told to accept: the proxy's, and the minted leaves' (one shared key)
    ctx = ssl.create_default_context(cafile=e.ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", e.port), timeout=10), server_hostname="localhost")
    proxy_spki = spki_b64(s.getpeercert(binary_form=True))
    s.close()
    c = H2(e.port, e.ca)
    try:
        a = h2_connect(e, c, "origin.test", e.o.port)
        ia = Inner(c, a, "origin.test", e.gwca)
        ia.handshake()
        leaf_spki = spki_b64(ia.obj.getpeercert(binary_form=True))
    finally:
        c.close()
    base = "https://origin.test:%d" % e.o.port
    envv = dict(os.environ, GH_FORWARD="localhost:%d" % e.port, GH_PROXY_SCHEME="https",
                GH_SPKI=leaf_spki + "," + proxy_spki, GH_PAGE=base + "/echo", GH_BLOCKED=base + "/secret/chromium")
    p = subprocess.run(["node", os.path.join(tb.BROWSER_DIR, "inspect.test.mjs")], env=envv,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    line = wait_line(e, lambda l: base + "/secret/chromium" in l)
    assert line is not None and "Chrom" in line and "no-secret" in line, line
    line = wait_line(e, lambda l: '"CONNECT origin.test:%d HTTP/2.0" 200' % e.o.port in l and "Chrom" in l)
    assert line is not None and "inspected" in line, line


def test_zz_reload_mid_connection(env):
    """A reload: the next request inside an open inspected session (over an
    HTTP/2 CONNECT stream) is judged by the new rules.  (Last in the module:
    it changes the configuration.)"""
    e = env
    c = H2(e.port, e.ca)
    try:
        a = h2_connect(e, c, "origin.test", e.o.port)
        assert c.status(a) == 200
        ia = Inner(c, a, "origin.test", e.gwca)
        ia.handshake()
        host = b"origin.test:%d" % e.o.port
        head, body = ia.request(b"GET /echo?before-reload HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        with open(e.g.conf) as f:
            old = f.read()
        new = old.replace('{ name = "all"; action = "allow"; }',
                          '{ name = "new-rule"; action = "deny"; urls = [ "/after-reload" ]; },\n'
                          '    { name = "all"; action = "allow"; }')
        assert new != old
        with open(e.g.conf, "w") as f:
            f.write(new)
        e.g.reload(settle=0)
        deadline = time.monotonic() + 10
        while True:   # (the reload is applied a little after the signal)
            head, body = ia.request(b"GET /echo/after-reload HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 403") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 403") and b"new-rule" in body, head
    finally:
        c.close()
