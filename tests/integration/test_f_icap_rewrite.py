"""ICAP (issue 19) REQMOD rewrites: a 200 that carries a modified HTTP
*request* is sent to the origin in place of the client's: the service's
header fields (through the proxy's own hygiene: no proxy credentials leave)
and its body, framed by the proxy (one Content-Length of the new length,
never Transfer-Encoding beside it), to the target the policy allowed.  A
service that changes the target, sends a body over max_body_bytes, or
breaks its chunking gets a 502 and the origin receives nothing.  The peer
is a Python ICAP service (Debian's c-icap modules have no request
rewriter: srv_echo returns the request unchanged, virus_scan blocks,
srv_ex206 is a 206 example; urlcheck/contentfiltering block or filter
responses)."""
import re
import subprocess
import threading

import pytest

import gh
from test_f_icap_faults import BadIcap

SECRET = b"card=4111111111111111 and some more text\n" * 50


def dechunk(b):
    out = b""
    while True:
        line, _, b = b.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            return out
        out, b = out + b[:n], b[n + 2:]


def rewritten(body):
    return body.replace(b"4111111111111111", b"[redacted]") + b"-- rewritten by icap\n"


class Rewriter(BadIcap):
    """REQMOD modes: rewrite (new body, a header added, a stale
    Content-Length and a Transfer-Encoding left in the head, a
    Proxy-Authorization smuggled in), retarget (another host), big (a body
    over the service's max_body_bytes), badchunk (the new body's chunking
    broken mid-way)."""

    def fault(self, c, mode):
        if mode not in ("rewrite", "retarget", "big", "badbody", "nullbody", "rehost"):
            return super().fault(c, mode)
        # the whole REQMOD message came in the head _read_msg returned: fetch it again
        msg = self.tls.msg
        ihead, _, encap = msg.partition(b"\r\n\r\n")
        off = int(re.search(rb"req-body=(\d+)", ihead).group(1))
        qhead, body = encap[:off], dechunk(encap[off:])
        with self.lock:
            self.seen.append((mode, "REQMOD", qhead + body))
        lines = qhead.rstrip(b"\r\n").split(b"\r\n")
        if mode == "retarget":
            lines[0] = re.sub(rb"//127\.0\.0\.1:\d+/", b"//127.0.0.2:9/", lines[0])
        if mode == "rehost":
            lines = [b"Host: elsewhere.test" if x.lower().startswith(b"host:") else x for x in lines]
        lines.insert(1, b"X-Icap-Scanned: yes")
        lines.insert(2, b"Proxy-Authorization: Basic c21ndWdnbGVkOng=")
        # hop-by-hop fields (and one the Connection field names), and one
        # forward.anonymize removes
        lines[3:3] = [b"Connection: X-Hop", b"X-Hop: 1", b"Keep-Alive: timeout=5", b"X-Real-IP: 10.9.9.9",
                      b"Via: 1.1 icap-smuggled"]
        if not any(x.lower().startswith(b"transfer-encoding") for x in lines):
            lines.append(b"Transfer-Encoding: chunked")   # beside a stale Content-Length, if any
        nh = b"\r\n".join(lines) + b"\r\n\r\n"
        if mode == "nullbody":      # the service keeps the head and drops the body
            c.sendall(b"ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, null-body=%d\r\n\r\n" % len(nh) + nh)
            return
        nb = rewritten(body) if mode != "big" else b"x" * 100000
        chunks = [b"%x\r\n" % len(nb[i:i + 700]) + nb[i:i + 700] + b"\r\n" for i in range(0, len(nb), 700)]
        # badbody: two good chunks, then a chunk-size line that is not hex
        enc = b"".join(chunks[:2]) + b"zz\r\nbroken\r\n0\r\n\r\n" if mode == "badbody" else \
            b"".join(chunks) + b"0\r\n\r\n"
        c.sendall(b"ICAP/1.0 200 OK\r\nISTag: \"rw-1\"\r\nEncapsulated: req-hdr=0, req-body=%d\r\n\r\n"
                  % len(nh) + nh + enc)

    tls = threading.local()   # the message each connection's thread read last

    @staticmethod
    def _read_msg(c, buf):
        head, rest = BadIcap._read_msg(c, buf)
        Rewriter.tls.msg = head
        return head, rest


MODES = ("rewrite", "retarget", "big", "badbody", "nullbody")


def conf(port, icap_port, anonymize=False):
    svcs = ",\n".join('{ name = "%s"; uri = "icap://127.0.0.1:%d/%s"; method = "reqmod"; timeout = 10; '
                      'max_body_bytes = "64K"; }' % (m, icap_port, m) for m in MODES)
    svcs += ',\n{ name = "grow"; uri = "icap://127.0.0.1:%d/big"; method = "reqmod"; max_body_bytes = "1M"; }' \
        % icap_port
    rules = "\n".join('{ name = "%s"; action = "allow"; urls = [ "/%s/" ]; icap = [ "%s" ]; },' % (m, m, m)
                      for m in MODES + ("grow",))
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];%s
  deny_destinations = [ "169.254.0.0/16" ];
  icap = ( %s );
  policy = ( %s
    { name = "all"; action = "allow"; } );
};
""" % (port, "\n  anonymize = true;" if anonymize else "", svcs, rules)


@pytest.fixture(scope="module")
def env():
    icap = Rewriter()
    origin = gh.CacheOrigin()
    for p in ("/rewrite/up-cl", "/rewrite/up-chunked", "/rewrite/up-cl2", "/rewrite/up-chunked2", "/nullbody/up"):
        origin.script(p, body=b"stored\n")
    port = gh.free_port()
    g = gh.Gatehouse(conf(port, icap.port))
    g.start(wait_ports=[port])
    yield g, port, origin, icap
    origin.stop()
    g.check_clean()


def upload(env, path, body, chunked=False):
    g, port, origin, _ = env
    cmd = ["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
           "-U", "alice:pw", "--data-binary", "@-", "http://127.0.0.1:%d%s" % (origin.port, path)]
    if chunked:
        cmd[1:1] = ["-H", "Transfer-Encoding: chunked"]
    p = subprocess.run(cmd, input=body, capture_output=True, timeout=60)
    out, _, code = p.stdout.rpartition(b"\n")
    return int(code or 0), out


@pytest.mark.parametrize("chunked", [False, True])
def test_rewritten_request_reaches_the_origin_with_its_body_and_framing(env, chunked):
    g, port, origin, icap = env
    path = "/rewrite/up-%s" % ("chunked" if chunked else "cl")
    code, out = upload(env, path, SECRET, chunked)
    assert code == 200, out[-500:]
    got = origin.last(path)
    assert got is not None and got.body == rewritten(SECRET)
    assert b"4111111111111111" not in got.body
    names = [k.lower() for k, _ in got.headers]
    assert names.count("content-length") == 1 and "transfer-encoding" not in names, got.headers
    assert int(got.header("Content-Length")) == len(rewritten(SECRET))
    assert got.header("X-Icap-Scanned") == "yes"             # the service's field is sent
    assert got.header("Proxy-Authorization") is None        # the proxy's hygiene still applies
    assert got.header("X-Forwarded-For") == "127.0.0.1"
    for hop in ("X-Hop", "Keep-Alive", "Connection"):
        assert got.header(hop) in (None, "close", "keep-alive"), (hop, got.headers)
    assert got.header("X-Hop") is None and got.header("Keep-Alive") is None
    assert got.header("X-Real-IP") == "10.9.9.9"            # (not anonymising here: see below)
    # the service saw the client's original body
    with icap.lock:
        seen = [x[2] for x in icap.seen if x[0] == "rewrite"]
    assert seen and seen[-1].endswith(SECRET)
    # the proxy credentials are the proxy's: the service gets the user as X-Authenticated-User only
    assert b"proxy-authorization" not in seen[-1].lower() and b"YWxpY2U6cHc=" not in seen[-1]
    # the client's connection and the proxy go on: a second one works too
    code, _ = upload(env, path + "2", b"small 4111111111111111\n")
    assert code == 200 and origin.last(path + "2").body == rewritten(b"small 4111111111111111\n")


@pytest.mark.parametrize("chunked", [False, True])
def test_rewritten_to_no_body(env, chunked):
    """A 200 whose request has null-body: the origin gets the request with
    Content-Length: 0 (not the client's length, nor chunked framing)."""
    _, _, origin, _ = env
    code, _ = upload(env, "/nullbody/up", SECRET, chunked)
    assert code == 200
    got = origin.last("/nullbody/up")
    names = [k.lower() for k, _ in got.headers]
    assert got.body == b"" and got.header("Content-Length") == "0" and names.count("content-length") == 1
    assert "transfer-encoding" not in names and got.header("X-Icap-Scanned") == "yes"


@pytest.mark.parametrize("mode,size,why", [
    ("retarget", 2050, b"another target"),
    ("big", 60000, b"larger than the gateway holds"),     # 100000 bytes back: over max_body_bytes (64K)
    ("grow", 2050, b"larger than the gateway holds"),     # the same, under 1M but 64 KiB over the upload
    ("badbody", 2050, b"could not check this upload"),
])
def test_rewrite_refused_sends_nothing(env, mode, size, why):
    g, port, origin, icap = env
    path = "/%s/up" % mode
    code, out = upload(env, path, (SECRET * 40)[:size])
    assert code == 502 and why in out, out[-300:]
    assert origin.count(path) == 0
    with origin.lock:
        assert not any(r.target.endswith(":9/%s/up" % mode) or "127.0.0.2" in (r.header("Host") or "")
                       for r in origin.requests)



def test_rewritten_fields_go_through_anonymize(env):
    """forward.anonymize applies to what the service wrote as it does to
    what the client sent: its X-Real-IP and Via do not leave, nor does any
    X-Forwarded-For."""
    _, _, origin, icap = env
    port = gh.free_port()
    g = gh.Gatehouse(conf(port, icap.port, anonymize=True))
    g.start(wait_ports=[port])
    try:
        code, _ = upload((g, port, origin, icap), "/rewrite/up-cl", SECRET)
        assert code == 200
        got = origin.last("/rewrite/up-cl")
        assert got.body == rewritten(SECRET) and got.header("X-Icap-Scanned") == "yes"
        for name in ("X-Real-IP", "Via", "X-Forwarded-For", "Proxy-Authorization"):
            assert got.header(name) is None, (name, got.headers)
    finally:
        g.check_clean()


def test_real_c_icap_echo_request_goes_through_the_rewrite(env):
    """c-icap's srv_echo answers REQMOD with a 200 carrying the request back
    (and 204 in turn): the 200 takes the rewrite path (its fields and body
    replace the client's) and the origin gets the same body, framed once
    (Content-Length, never Transfer-Encoding beside it), for a chunked upload
    too."""
    import icap_peers
    _, _, origin, _ = env
    peers = icap_peers.IcapPeers(with_clamd=False).start()
    port = gh.free_port()
    g = None
    try:
        text = conf(port, peers.port).replace("/rewrite\"", "/echo\"")
        g = gh.Gatehouse(text)
        g.start(wait_ports=[port])
        body = bytes(range(256)) * 200   # (under the services' 64K)
        for i in range(4):
            path = "/rewrite/up-%s" % ("chunked" if i % 2 else "cl")
            code, _ = upload((g, port, origin, None), path, body, chunked=bool(i % 2))
            assert code == 200
            got = origin.last(path)
            names = [k.lower() for k, _ in got.headers]
            assert got.body == body and names.count("content-length") == 1 and "transfer-encoding" not in names
            assert got.header("X-Icap-Scanned") is None
        lines = [ln for ln in g.access_lines(0.5) if "/rewrite/up-" in ln]
        assert any("ICAP rewrite: request returned (200)" in ln for ln in lines), lines
        assert any("ICAP rewrite: unchanged (204)" in ln for ln in lines), lines
    finally:
        try:
            if g is not None:
                g.check_clean()
        finally:
            peers.stop()


def inspect_conf():
    """test_f_inspect_icap's configuration with the uploads rule's service
    on this module's rewriter, and a rule whose service changes Host."""
    import test_f_inspect_icap
    text = test_f_inspect_icap.CONF
    for a, b in (('/virus_scan"; method = "reqmod"', '/rewrite"; method = "reqmod"'),
                 ('{ name = "av"; uri = "icap://127.0.0.1:%(icap)d/virus_scan"; method = "respmod"; }',
                  '{ name = "rehost"; uri = "icap://127.0.0.1:%(icap)d/rehost"; method = "reqmod"; }'),
                 ('icap_default = [ "av" ];', ''),
                 ('{ name = "all";', '{ name = "rehost"; action = "allow"; urls = [ "/rehost" ]; '
                                     'icap = [ "rehost" ]; },\n    { name = "all";')):
        assert a in text, a
        text = text.replace(a, b)
    return text


def test_rewrite_inside_inspected_https(env, tmp_path):
    """Inside an inspected CONNECT the rewritten upload reaches the TLS
    origin the same way; a service that changes the Host field does not
    move the request: the inspected request's target is absolute-form
    (https://origin.test:PORT/...), whose authority the origin gets as Host
    (a changed absolute-form target is refused: test_rewrite_refused_...)."""
    import os
    import ssl
    icap = env[3]
    d = str(tmp_path)
    ca, _ = gh.make_ca(d)
    crt, key = gh.make_cert(d, "origin.test", ["origin.test"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    origin = gh.CacheOrigin(tls=ctx)
    origin.script("/up", body=b"stored\n")
    origin.script("/rehost", body=b"stored\n")
    port = gh.free_port()
    g = gh.Gatehouse(inspect_conf() % {"port": port, "oport": origin.port, "icap": icap.port, "ca": ca},
                     extra_files={"hosts": gh.hosts_file(["origin.test"])})
    try:
        g.start([port])
        rc, pem, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt" % port)
        assert rc == 0 and b"BEGIN CERTIFICATE" in pem, err
        gwca = os.path.join(g.dir, "gatehouse-ca.pem")
        with open(gwca, "wb") as f:
            f.write(pem)

        def post(path):
            out = subprocess.run(["curl", "-sS", "--http1.1", "--suppress-connect-headers", "-x",
                                  "http://127.0.0.1:%d" % port, "--cacert", gwca, "-o", "-", "-w", "\n%{http_code}",
                                  "--data-binary", "@-", "https://origin.test:%d%s" % (origin.port, path)],
                                 input=SECRET, capture_output=True, timeout=60)
            body, _, code = out.stdout.rpartition(b"\n")
            return int(code), body, out.stderr
        code, body, err = post("/up")
        assert code == 200 and body == b"stored\n", (code, body, err)
        got = origin.last("/up")
        names = [k.lower() for k, _ in got.headers]
        assert got.body == rewritten(SECRET) and names.count("content-length") == 1
        assert "transfer-encoding" not in names and got.header("X-Icap-Scanned") == "yes"
        code, body, err = post("/rehost")
        with origin.lock:
            hosts = [r.header("Host") or "" for r in origin.requests]
        assert not any("elsewhere" in h for h in hosts), hosts
        # (the inspected request's target is absolute-form: its authority is the Host sent)
        assert code == 200 and origin.last("/rehost").header("Host") == "origin.test:%d" % origin.port, \
            (code, body)
    finally:
        origin.stop()
        g.check_clean()
