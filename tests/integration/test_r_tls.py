"""TLS termination (SNI certificate choice, versions, ALPN, reload), TLS to
upstream servers, and Upgrade/WebSocket tunnels."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import gh


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    a = gh.make_cert(d, "a", ["a.test"])
    b = gh.make_cert(d, "b", ["*.b.test", "b.test"])
    dflt = gh.make_cert(d, "default", ["default.test"])
    a2 = gh.make_cert(d, "a2", ["a.test", "new.a.test"])
    origin = gh.make_cert(d, "origin", ["origin.test"])
    return {"dir": d, "ca": os.path.join(d, "ca.pem"), "a": a, "b": b, "default": dflt,
            "a2": a2, "origin": origin}


def tls_conf(port, pport, origin_port, pki, a=None, up_tls="", extra_sites=""):
    a = a or pki["a"]
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; }, { address = "127.0.0.1:%d"; } );
  certificates = (
    { cert = "%s"; key = "%s"; },
    { cert = "%s"; key = "%s"; },
    { cert = "%s"; key = "%s"; default = true; }
  );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); %s } );
  sites = ( { hosts = [ "a.test", "*.b.test", "new.a.test" ]; default = true;
              routes = ( { path = "/"; upstream = "o"; } ); } %s );
};
""" % (port, pport, a[0], a[1], pki["b"][0], pki["b"][1], pki["default"][0], pki["default"][1],
       origin_port, up_tls, extra_sites)


def served_cert_cn(port, sni):
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-brief"]
    if sni:
        args += ["-servername", sni]
    else:
        args += ["-noservername"]
    p = subprocess.run(args, input=b"", capture_output=True, timeout=10)
    out = p.stdout.decode() + p.stderr.decode()
    for line in out.splitlines():
        if "Peer certificate:" in line:
            return line.split("CN", 1)[1].strip(" =")
    return out


@pytest.fixture
def tgw(origin, ports, pki):
    g = gh.Gatehouse(tls_conf(ports[0], ports[1], origin.port, pki)).start([ports[0], ports[1]])
    g.port, g.pport = ports[0], ports[1]
    yield g
    g.check_clean()


def https(g, pki, host, path, *args):
    return gh.curl("--cacert", pki["ca"], "--resolve", "%s:%d:127.0.0.1" % (host, g.port),
                   *args, "https://%s:%d%s" % (host, g.port, path))


def test_sni_chooses_certificate(tgw, pki):
    assert served_cert_cn(tgw.port, "a.test") == "a.test"
    assert served_cert_cn(tgw.port, "x.b.test") == "*.b.test"
    assert served_cert_cn(tgw.port, "unknown.test") == "default.test"
    assert served_cert_cn(tgw.port, None) == "default.test"


def test_https_request_verified_by_curl(tgw, pki, origin):
    rc, out, err = https(tgw, pki, "a.test", "/echo")
    assert rc == 0, err
    d = json.loads(out)
    hdrs = {k.lower(): v for k, v in d["headers"]}
    assert hdrs["x-forwarded-proto"] == "https"
    rc, out, err = https(tgw, pki, "x.y.b.test", "/size/3")
    assert rc != 0   # *.b.test covers one label only: curl refuses the name
    rc, out, err = https(tgw, pki, "x.b.test", "/size/3")
    assert rc == 0 and out == b"xxx"


def test_keepalive_and_big_body_over_tls(tgw, pki, origin):
    rc, out, err = https(tgw, pki, "a.test", "/size/3000000", "-o", "/dev/null", "-w", "%{size_download}")
    assert rc == 0 and out == b"3000000"
    url = "https://a.test:%d/size/2" % tgw.port
    rc, out, err = gh.curl("--cacert", pki["ca"], "--resolve", "a.test:%d:127.0.0.1" % tgw.port,
                           "-w", "%{num_connects}", url, url)
    assert out == b"xx1xx0"


def test_tls_versions_and_alpn(tgw):
    def handshake(version):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = version
        ctx.maximum_version = version
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", tgw.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="a.test") as t:
                return t.version(), t.selected_alpn_protocol()
    # http2 is on by default for TLS listeners (issue 17): h2 is chosen
    # when offered, http/1.1 for clients that offer only that
    assert handshake(ssl.TLSVersion.TLSv1_3) == ("TLSv1.3", "h2")
    assert handshake(ssl.TLSVersion.TLSv1_2) == ("TLSv1.2", "h2")
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_1)


def test_plain_and_tls_listeners_side_by_side(tgw, origin):
    rc, out, err = gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/echo" % tgw.pport)
    hdrs = {k.lower(): v for k, v in json.loads(out)["headers"]}
    assert hdrs["x-forwarded-proto"] == "http"


def test_reload_swaps_certificate_keeping_open_connection(tgw, pki, origin, ports):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tgw.port), timeout=5),
                        server_hostname="a.test")
    s.sendall(b"GET /size/1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert gh.recv_response(s).endswith(b"x")
    tgw.reload(tls_conf(tgw.port, tgw.pport, origin.port, pki, a=pki["a2"]))
    assert "generation 2 loaded" in tgw.stderr()
    # the open connection still works
    s.sendall(b"GET /size/2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert gh.recv_response(s).endswith(b"xx")
    s.close()
    # new connections get the new certificate
    rc, out, err = https(tgw, pki, "new.a.test", "/size/1")
    assert rc == 0, err


def test_bad_key_is_a_config_error(tmp_path, pki, origin, ports):
    conf = tls_conf(ports[0], ports[1], origin.port, pki, a=(pki["a"][0], pki["b"][1]))
    g = gh.Gatehouse(conf)
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    assert p.returncode == 1
    assert "does not match the certificate in %s" % pki["a"][0] in p.stderr
    assert g.conf + ":" in p.stderr


def test_upstream_tls_verified(pki, ports):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki["origin"])
    o = gh.Origin(tls=ctx)
    try:
        good = 'tls = true; ca_file = "%s"; sni = "origin.test";' % pki["ca"]
        g = gh.Gatehouse(tls_conf(ports[0], ports[1], o.port, pki, up_tls=good)).start([ports[1]])
        try:
            rc, out, err = gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/echo" % ports[1])
            assert rc == 0 and json.loads(out)["method"] == "GET"
            # pooled: a second request reuses the TLS connection
            gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/size/1" % ports[1])
            assert o.connections == 1
        finally:
            g.check_clean()
        bad = 'tls = true; ca_file = "%s"; sni = "wrong.test";' % pki["ca"]
        g = gh.Gatehouse(tls_conf(ports[0], ports[1], o.port, pki, up_tls=bad)).start([ports[1]])
        try:
            st = gh.curl_status("-H", "Host: a.test", "http://127.0.0.1:%d/echo" % ports[1])
            assert st == 502
            assert "certificate verification failed" in g.stderr()
        finally:
            g.check_clean()
    finally:
        o.stop()


def ws_exchange(sock):
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"upgrade" in head.lower()
    for msg in (b"hello", b"x" * 100000):
        sock.sendall(msg)
        got = b""
        while len(got) < len(msg):
            got += sock.recv(65536)
        assert got == msg


def test_websocket_tunnel_plain_and_tls(tgw, pki, origin):
    s = socket.create_connection(("127.0.0.1", tgw.pport), timeout=5)
    ws_exchange(s)
    s.close()
    ctx = ssl.create_default_context(cafile=pki["ca"])
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tgw.port), timeout=5),
                        server_hostname="a.test")
    ws_exchange(t)
    t.close()


def test_upgrade_refused_by_origin_stays_http(tgw, origin):
    s = socket.create_connection(("127.0.0.1", tgw.pport), timeout=5)
    s.sendall(b"GET /no-upgrade HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\n\r\n")
    time.sleep(0.3)
    first = gh.recv_response(s)
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"plain answer\n")
    s.sendall(b"GET /size/2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert gh.recv_response(s).endswith(b"xx")


def test_force_https_and_forwarded_proto_over_tls(origin, ports, pki):
    extra = ', { hosts = [ "secure.b.test" ]; force_https = true; routes = ( { path = "/"; upstream = "o"; } ); }'
    g = gh.Gatehouse(tls_conf(ports[0], ports[1], origin.port, pki, extra_sites=extra)).start(
        [ports[0], ports[1]])
    g.port = ports[0]
    try:
        rc, out, err = https(g, pki, "secure.b.test", "/echo?q=1")
        assert rc == 0, err
        h = {k.lower(): v for k, v in json.loads(out)["headers"]}
        assert h["x-forwarded-proto"] == "https"
        assert h["forwarded"] == 'for=127.0.0.1;proto=https;host="secure.b.test:%d"' % g.port
        rc, out, err = gh.curl("-i", "-H", "Host: secure.b.test:%d" % ports[1],
                               "http://127.0.0.1:%d/echo?q=1" % ports[1])
        assert out.startswith(b"HTTP/1.1 308")
        assert b"\r\nLocation: https://secure.b.test/echo?q=1\r\n" in out
    finally:
        g.check_clean()


def two_tls_origins(pki, ports, every):
    """Two TLS origins as servers of upstream "o" (verified: CA, SNI
    origin.test) with health checks every `every` s (rise 1, fall 2), and the
    gateway started on them."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki["origin"])
    o1, o2 = gh.KillableOrigin(tls=ctx), gh.KillableOrigin(tls=ctx)
    up = ('tls = true; ca_file = "%s"; sni = "origin.test"; '
          'health: { path = "/health"; interval = %s; timeout = %s; rise = 1; fall = 2; };'
          % (pki["ca"], every, every))
    text = tls_conf(ports[0], ports[1], o1.port, pki, up_tls=up).replace(
        'servers = ( { address = "127.0.0.1:%d"; } );' % o1.port,
        'servers = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; } );' % (o1.port, o2.port))
    return o1, o2, gh.Gatehouse(text).start([ports[1]])


def test_upstream_tls_health_tcp_check(pki, ports):
    o1, o2, g = two_tls_origins(pki, ports, 0.2)
    try:
        url = "http://127.0.0.1:%d/echo" % ports[1]
        assert [gh.curl_status("-H", "Host: a.test", url) for _ in range(4)] == [200] * 4
        assert o1.hits() == 2 and o2.hits() == 2
        o2.kill()
        end = time.time() + 5
        while "127.0.0.1:%d: up -> down" % o2.port not in g.stderr() and time.time() < end:
            time.sleep(0.05)
        assert "127.0.0.1:%d: up -> down (health check failed 2 times: connect:" % o2.port in g.stderr()
        assert [gh.curl_status("-H", "Host: a.test", url) for _ in range(6)] == [200] * 6
        assert o2.hits() == 2
    finally:
        g.check_clean()
        o1.kill()
        o2.kill()


def test_session_resumption_survives_reload(tgw, pki, origin):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # session objects are simplest to reuse in 1.2

    def connect(session=None):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tgw.port), timeout=5),
                            server_hostname="a.test", session=session)
        s.sendall(b"GET /size/1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert gh.recv_response(s).endswith(b"x")
        return s
    s1 = connect()
    sess = s1.session
    s1.close()
    s2 = connect(sess)
    assert s2.session_reused
    s2.close()
    # ticket keys belong to the process, not the configuration generation
    tgw.reload()
    s3 = connect(sess)
    assert s3.session_reused
    s3.close()


def test_tls13_resumption_issues_a_new_ticket(tgw, pki, origin):
    """A TLS 1.3 client uses each ticket once (RFC 8446 C.4): a resumed
    connection must carry a new ticket, or the client's next connection is a
    full handshake (wrk -H "Connection: close" alternated full and resumed)."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    tickets = []

    def msg_cb(conn, direction, version, content_type, msg_type, data):
        if direction == "read" and msg_type == ssl._TLSMessageType.NEWSESSION_TICKET:
            tickets.append(bytes(data))
    ctx._msg_callback = msg_cb

    def connect(session=None):
        del tickets[:]
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tgw.port), timeout=5),
                            server_hostname="a.test", session=session)
        s.sendall(b"GET /size/1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert gh.recv_response(s).endswith(b"x")   # the ticket came before the response
        sess, reused, got = s.session, s.session_reused, len(tickets)
        s.close()
        return sess, reused, got
    sess, reused, got = connect()
    assert not reused and got == 1
    seen = {sess.id}
    for _ in range(3):
        sess, reused, got = connect(sess)
        assert reused
        assert got == 1, "no new ticket on a resumed TLS 1.3 connection"
        assert sess.id not in seen      # the client holds the new ticket, not the used one
        seen.add(sess.id)


def test_ocsp_stapling_from_file(pki, origin, ports, tmp_path):
    d = str(tmp_path)
    index = os.path.join(d, "index.txt")
    with open(index, "w") as f:
        pass
    resp = os.path.join(d, "a.ocsp.der")
    p = subprocess.run(["openssl", "ocsp", "-index", index, "-rsigner", pki["ca"], "-rkey",
                        os.path.join(pki["dir"], "ca.key"), "-CA", pki["ca"], "-issuer", pki["ca"],
                        "-cert", pki["a"][0], "-respout", resp, "-ndays", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and os.path.getsize(resp) > 0, p.stderr
    conf = tls_conf(ports[0], ports[1], origin.port, pki).replace(
        '{ cert = "%s"; key = "%s"; },' % pki["a"], '{ cert = "%s"; key = "%s"; ocsp = "%s"; },'
        % (pki["a"][0], pki["a"][1], resp), 1)
    g = gh.Gatehouse(conf).start([ports[0]])
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % ports[0],
                              "-servername", "a.test", "-status"], input=b"", capture_output=True,
                             timeout=10).stdout.decode(errors="replace")
        assert "OCSP Response Status: successful" in out
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % ports[0],
                              "-servername", "x.b.test", "-status"], input=b"", capture_output=True,
                             timeout=10).stdout.decode(errors="replace")
        assert "OCSP response: no response sent" in out
    finally:
        g.check_clean()


def test_cache_refresh_over_tls_both_sides(pki, ports):
    """stale-while-revalidate behind a TLS listener, to a TLS upstream: the
    background refresh keeps the https cache key and forwarding headers of the
    client's request and speaks verified TLS to the upstream."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki["origin"])
    o = gh.CacheOrigin(tls=ctx)
    up = 'tls = true; ca_file = "%s"; sni = "origin.test";' % pki["ca"]
    text = tls_conf(ports[0], ports[1], o.port, pki, up_tls=up)
    text = text.replace('routes = ( { path = "/"; upstream = "o"; } );',
                        'routes = ( { path = "/"; upstream = "o"; cache = true; } );')
    text = text.replace("reverse: {", 'reverse: {\n  cache = { memory = "16M"; };', 1)
    g = gh.Gatehouse(text).start([ports[0]])

    def get():
        rc, out, err = gh.curl("-D", "-", "--cacert", pki["ca"], "--resolve",
                               "a.test:%d:127.0.0.1" % ports[0], "https://a.test:%d/swr" % ports[0])
        assert rc == 0, err
        head, _, body = out.partition(b"\r\n\r\n")
        h = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        return {k.lower(): v for k, v in h.items()}.get("x-cache"), body

    try:
        o.script("/swr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
                 etag='"t1"', body=b"one")
        assert get() == ("MISS", b"one")
        time.sleep(1.3)
        o.script("/swr", headers=[("Cache-Control", "max-age=60")], etag='"t2"', body=b"two")
        assert get() == ("STALE", b"one")
        end = time.monotonic() + 5
        while get() != ("HIT", b"two") and time.monotonic() < end:
            time.sleep(0.05)
        assert get() == ("HIT", b"two")
        assert o.count("/swr") == 2
        refresh = o.last("/swr")
        assert refresh.header("If-None-Match") == '"t1"'
        assert refresh.header("X-Forwarded-Proto") == "https"
    finally:
        g.check_clean()
        o.kill()


class _Tls13Client:
    """A TLS 1.3 client over memory BIOs: the test decides which records
    share a TCP segment (the gateway reads ahead whole records, so bytes can
    sit in OpenSSL where epoll cannot see them)."""

    def __init__(self, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="a.test")
        while True:
            try:
                self.obj.do_handshake()
                break          # our Finished is still in self.out, unsent
            except ssl.SSLWantReadError:
                if self.out.pending:
                    self.sock.sendall(self.out.read())
                self.inc.write(self.sock.recv(65536))

    def send_segment(self, *records):
        """Each argument one TLS record; all of them (and an unsent
        Finished) in one send(2)."""
        for r in records:
            self.obj.write(r)
        self.sock.sendall(self.out.read())

    def read_all(self):
        """Plaintext until the server closes."""
        got = bytearray()
        while True:
            try:
                d = self.obj.read(65536)
                if not d:
                    break      # close_notify
                got += d
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            d = self.sock.recv(65536)
            if not d:
                break
            self.inc.write(d)
        self.sock.close()
        return bytes(got)


def _req(path, close=False, body=b""):
    head = "%s %s HTTP/1.1\r\nHost: a.test\r\n" % ("POST" if body else "GET", path)
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def _bodies(raw):
    """The bodies of consecutive Content-Length responses."""
    out = []
    while raw:
        head, rest = raw.split(b"\r\n\r\n", 1)
        n = int([ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                 if ln.lower().startswith(b"content-length:")][0])
        out.append(rest[:n])
        raw = rest[n:]
    return out


def test_requests_hidden_in_the_tls_layer_are_served(tgw, pki, origin):
    # requests in the same segment as the client's Finished
    c = _Tls13Client(tgw.port, pki["ca"])
    c.send_segment(_req("/size/3"), _req("/size/5", close=True))
    assert _bodies(c.read_all()) == [b"xxx", b"xxxxx"]
    # three pipelined requests in one record, after the handshake
    c = _Tls13Client(tgw.port, pki["ca"])
    c.send_segment()
    time.sleep(0.2)
    c.send_segment(_req("/size/1") + _req("/size/2") + _req("/size/4", close=True))
    assert _bodies(c.read_all()) == [b"x", b"xx", b"xxxx"]
    # an upload larger than one read call (256 KiB) and a request after it,
    # in one segment: the gateway stops reading mid-way with records left
    # in OpenSSL's buffer, and must come back for them unprompted
    body = b"u" * (600 * 1024)
    c = _Tls13Client(tgw.port, pki["ca"])
    c.send_segment(*[_req("/upload", body=body)[i:i + 16384]
                     for i in range(0, len(body) + 100, 16384)] + [_req("/size/2", close=True)])
    assert _bodies(c.read_all()) == [b"%d" % len(body), b"xx"]


def _served_chain(port, sni, ca):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", sni,
                        "-showcerts", "-CAfile", ca, "-verify_return_error"],
                       input=b"", capture_output=True, timeout=10)
    out = p.stdout.decode()
    return out.count("-----BEGIN CERTIFICATE-----"), "Verify return code: 0 (ok)" in out


def test_certificate_chain_sent_as_the_file_gives_it(origin, ports, pki, tmp_path):
    """The gateway sends the chain in the certificate file, no more and no
    less (it does not build one per handshake): a leaf signed by an
    intermediate verifies against the root only if the file carries the
    intermediate."""
    d = str(tmp_path)

    def signed(name, subj, issuer, issuer_key, ext):
        key, csr, crt, extf = (os.path.join(d, name + x) for x in (".key", ".csr", ".pem", ".ext"))
        with open(extf, "w") as f:
            f.write(ext)
        for argv in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", subj],
                     ["x509", "-req", "-in", csr, "-CA", issuer, "-CAkey", issuer_key, "-CAcreateserial",
                      "-out", crt, "-days", "30", "-extfile", extf]):
            subprocess.run(["openssl"] + argv, check=True, capture_output=True)
        return crt, key

    ca, cakey = gh.make_ca(pki["dir"])
    icrt, ik = signed("int", "/CN=Gatehouse Test Intermediate", ca, cakey,
                      "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    lcrt, lk = signed("leaf", "/CN=a.test", icrt, ik, "subjectAltName=DNS:a.test\n")
    full = os.path.join(d, "full.pem")
    with open(full, "w") as f:
        f.write(open(lcrt).read() + open(icrt).read())
    for cert, want in ((full, (2, True)), (lcrt, (1, False))):
        g = gh.Gatehouse(tls_conf(ports[0], ports[1], origin.port, pki, a=(cert, lk))).start([ports[0]])
        try:
            assert _served_chain(ports[0], "a.test", ca) == want
        finally:
            g.check_clean()


def test_big_responses_from_a_tls_upstream_to_a_slow_client(pki, ports):
    """Responses over TLS from the origin, to a client that pauses before
    reading: the gateway stops and resumes reading the origin (backpressure);
    every byte must come, without waiting for a timeout.  (A read call takes
    at most 256 KiB, so records read ahead can be left in OpenSSL where epoll
    cannot see them; up_rd_cb wakes itself for them.  This Python origin
    rarely lands a response's last record exactly there, so the test
    exercises that path without being sure to catch its absence.)"""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki["origin"])
    o = gh.Origin(tls=ctx)
    try:
        up = 'tls = true; ca_file = "%s"; sni = "origin.test";' % pki["ca"]
        g = gh.Gatehouse(tls_conf(ports[0], ports[1], o.port, pki, up_tls=up) +
                         "@GLOBAL@ timeouts = { upstream_response = 20.0; }; };\n").start([ports[1]])
        try:
            for n in (262144, 262144 + 100, 300000, 524288 + 17, 1000000, 3000000):
                for pause in (0, 0.3):
                    s = socket.create_connection(("127.0.0.1", ports[1]), timeout=10)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
                    s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % n)
                    time.sleep(pause)
                    t0, got = time.monotonic(), b""
                    while True:
                        d = s.recv(1 << 18)
                        if not d:
                            break
                        got += d
                    s.close()
                    head, body = got.split(b"\r\n\r\n", 1)
                    assert head.startswith(b"HTTP/1.1 200") and len(body) == n, (n, pause, head)
                    assert time.monotonic() - t0 < 5, (n, pause)
        finally:
            g.check_clean()
    finally:
        o.stop()


def test_upstream_tls_health_http_check(pki, ports):
    """A TLS upstream gets a real HTTP health check (an exchange of the
    upstream engine over TLS, with the upstream's CA and SNI): a server
    whose /health answers 500 over TLS is marked down although it accepts
    connections, and up again once /health answers 200."""
    o1, o2, g = two_tls_origins(pki, ports, 0.3)
    try:
        url = "http://127.0.0.1:%d/echo" % ports[1]
        down = "127.0.0.1:%d: up -> down (health check failed 2 times: status 500" % o2.port
        up_again = "127.0.0.1:%d: down -> up" % o2.port
        end = time.time() + 5
        while o2.health_checks() < 2 and time.time() < end:
            time.sleep(0.05)
        assert o2.health_checks() >= 2       # the checks reach the TLS origin as HTTP requests
        o2.health_status = 500
        end = time.time() + 10
        while down not in g.stderr() and time.time() < end:
            time.sleep(0.05)
        assert down in g.stderr()
        before = o2.hits()
        assert [gh.curl_status("-H", "Host: a.test", url) for _ in range(6)] == [200] * 6
        assert o2.hits() == before           # all went to o1
        o2.health_status = 200
        end = time.time() + 10
        while up_again not in g.stderr() and time.time() < end:
            time.sleep(0.05)
        assert up_again in g.stderr()
        assert [gh.curl_status("-H", "Host: a.test", url) for _ in range(6)] == [200] * 6
        assert o2.hits() > before            # o2 serves again
    finally:
        g.check_clean()
        o1.kill()
        o2.kill()
