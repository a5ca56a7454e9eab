"""Upstreams spoken to in HTTP/2 (protocol = "h2", core/h2_client.c): gRPC end
to end with Debian's python3-grpcio (a real grpc server behind the reverse
TLS listener, a real grpc client in front: unary, server streaming, a
non-OK status in trailers, deadline, 1 MiB messages), multiplexing on one
upstream connection (an h2 origin on python3-h2 counts its connections),
trailers both ways, an origin that dies mid-stream, malformed upstream
responses, and an upstream that does not speak h2."""
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from concurrent import futures

import pytest

import gh

import grpc  # python3-grpcio (Debian): missing = the test fails
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


# ---- an HTTP/2 origin on python3-h2 (h2c with prior knowledge, or TLS+ALPN) ----

class H2Origin:
    """Serves each request on its own thread-less loop per connection.
    Paths: /echo (the body back, with the request's trailers echoed as
    x-req-trailer-*), /trailers (a body then trailers), /die (half a body,
    then the TCP connection closes), /badlen (content-length 10, 5 bytes),
    /conn (a connection-specific header), /big (1 MiB), anything else: the
    path.  Counts connections and the streams open at once."""

    def __init__(self, tls_cert=None):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.ctx = None
        if tls_cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls_cert)
            self.ctx.set_alpn_protocols(["h2"])
        self.conns = 0
        self.sent = 0        # response DATA bytes sent (all streams)
        self.unacked = 0     # request DATA bytes of /noack streams (never acknowledged)
        self.max_open = 0
        self.gone_away = False
        self.resets = 0      # RST_STREAM frames received
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            if self.ctx is not None:
                s = self.ctx.wrap_socket(s, server_side=True)
            c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False,
                                                                             validate_outbound_headers=False,
                                                                             normalize_outbound_headers=False))
            c.initiate_connection()
            c.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
            s.sendall(c.data_to_send())
            reqs = {}
            opened = set()
            pending = []
            ends = []   # /late-end streams: END_STREAM 0.3 s after their whole body
            s.settimeout(0.05)
            while True:
                # /slow answers come 0.3 s after their request, without
                # blocking the connection (the streams stay open meanwhile)
                now = time.monotonic()
                while pending and now - pending[0][0] >= 0.3:
                    _, sid, r = pending.pop(0)
                    self._answer(c, s, sid, r)
                    opened.discard(sid)
                while ends and now - ends[0][0] >= 0.3:
                    _, sid = ends.pop(0)
                    try:
                        c.end_stream(sid)
                    except h2.exceptions.ProtocolError:
                        pass   # (reset meanwhile)
                s.sendall(c.data_to_send())
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        reqs[ev.stream_id] = {"h": dict(ev.headers), "body": b"", "tr": {}}
                        opened.add(ev.stream_id)
                        with self.lock:
                            self.max_open = max(self.max_open, len(opened))
                    elif isinstance(ev, h2.events.DataReceived):
                        if reqs[ev.stream_id]["h"][b":path"] == b"/noack":
                            with self.lock:   # never given back: the sender must stop
                                self.unacked += len(ev.data)
                            continue
                        reqs[ev.stream_id]["body"] += ev.data
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        reqs[ev.stream_id]["tr"] = dict(ev.headers)
                    elif isinstance(ev, h2.events.StreamEnded):
                        r = reqs.pop(ev.stream_id)
                        with self.lock:
                            self.requests.append(r)
                        if r["h"][b":path"].startswith(b"/hang"):
                            continue   # never answered: the upstream response timeout
                        if r["h"][b":path"].startswith(b"/slow"):
                            pending.append((time.monotonic(), ev.stream_id, r))
                            continue
                        if r["h"][b":path"] == b"/late-end":
                            c.send_headers(ev.stream_id, [(":status", "200"), ("content-length", "5")])
                            c.send_data(ev.stream_id, b"hello")
                            ends.append((time.monotonic(), ev.stream_id))
                            continue
                        if self._answer(c, s, ev.stream_id, r) == "close":
                            s.sendall(c.data_to_send())
                            s.close()
                            return
                        opened.discard(ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        with self.lock:
                            self.resets += 1
                        opened.discard(ev.stream_id)
                        reqs.pop(ev.stream_id, None)
                s.sendall(c.data_to_send())
        except (OSError, h2.exceptions.ProtocolError, ssl.SSLError):
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _answer(self, c, s, sid, r):
        path = r["h"][b":path"].decode()
        if path == "/echo":
            hd = [(":status", "200")] + [("x-req-trailer-" + k.decode(), v.decode()) for k, v in r["tr"].items()]
            hd.append(("x-req-te", r["h"].get(b"te", b"-").decode()))
            c.send_headers(sid, hd)
            self._send(c, s, sid, r["body"], end=True)
        elif path == "/trailers":
            c.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            self._send(c, s, sid, b"body-before-trailers", end=False)
            c.send_headers(sid, [("x-checksum", "abc123"), ("x-final", "yes")], end_stream=True)
        elif path == "/goaway":
            # answered, then GOAWAY(last_stream_id=0) once: the streams
            # still open were never processed (refused) and close with it
            body = b"bye"
            c.send_headers(sid, [(":status", "200"), ("content-length", "3")])
            c.send_data(sid, body, end_stream=True)
            if not self.gone_away:
                self.gone_away = True
                c.close_connection(last_stream_id=0)
                return "close"
        elif path == "/die":
            c.send_headers(sid, [(":status", "200"), ("content-length", "100000")])
            c.send_data(sid, b"x" * 1000)
            return "close"
        elif path == "/badlen":
            c.send_headers(sid, [(":status", "200"), ("content-length", "10")])
            c.send_data(sid, b"12345", end_stream=True)
        elif path == "/conn":
            c.send_headers(sid, [(":status", "200"), ("connection", "keep-alive")], end_stream=True)
        elif path == "/huge":
            c.send_headers(sid, [(":status", "200"), ("content-length", str(64 << 20))])
            self._send(c, s, sid, b"h" * (64 << 20), end=True)
        elif path == "/big":
            c.send_headers(sid, [(":status", "200"), ("content-length", str(1 << 20))])
            self._send(c, s, sid, b"b" * (1 << 20), end=True)
        else:
            body = path.encode()
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
            self._send(c, s, sid, body, end=True)

    def _send(self, c, s, sid, data, end):
        """Send data within the flow-control windows, reading WINDOW_UPDATEs."""
        while data:
            w = min(c.local_flow_control_window(sid), c.max_outbound_frame_size, len(data))
            if w <= 0:
                s.sendall(c.data_to_send())
                try:
                    more = s.recv(65536)
                except socket.timeout:
                    continue
                if not more:
                    raise OSError("closed")
                c.receive_data(more)   # (window updates; other events are not expected here)
                continue
            c.send_data(sid, data[:w])
            data = data[w:]
            with self.lock:
                self.sent += w
            s.sendall(c.data_to_send())
        if end:
            c.end_stream(sid)
        s.sendall(c.data_to_send())

    def stop(self):
        self.stopping = True
        self.ls.close()


class H1Only:
    """An HTTP/1.1-only server: answers whatever comes (the h2c preface
    too) with an HTTP/1.1 505, as an HTTP/1 server does."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            try:
                s.settimeout(5)
                s.recv(65536)
                s.sendall(b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            s.close()

    def stop(self):
        self.ls.close()


# ---- a gRPC server (python3-grpcio), raw bytes: no generated code ----

def _unary(req, ctx):
    md = dict(ctx.invocation_metadata())
    return b"echo:" + req + b"|" + md.get("x-who", "").encode()


def _stream(req, ctx):
    for i in range(int(req or b"5")):
        yield b"msg-%d" % i


def _fail(req, ctx):
    ctx.set_trailing_metadata((("x-why", "because"),))
    ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")


def _fail_after_data(req, ctx):
    yield b"one"
    ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "out of beans")


def _slow(req, ctx):
    time.sleep(3)
    return b"late"


def _big(req, ctx):
    return req[::-1]


def grpc_server(tls_cert=None):
    h = grpc.method_handlers_generic_handler("gh.Tls" if tls_cert else "gh.Test", {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "FailLater": grpc.unary_stream_rpc_method_handler(_fail_after_data),
        "Slow": grpc.unary_unary_rpc_method_handler(_slow),
        "Big": grpc.unary_unary_rpc_method_handler(_big),
    })
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                      options=[("grpc.max_receive_message_length", 4 << 20),
                               ("grpc.max_send_message_length", 4 << 20)])
    srv.add_generic_rpc_handlers((h,))
    if tls_cert:
        with open(tls_cert[0], "rb") as c, open(tls_cert[1], "rb") as k:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = srv.add_secure_port("127.0.0.1:0", creds)
    else:
        port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    return srv, port


def conf(port, pport, mport, pki, ups):
    return """@GLOBAL@
  timeouts: { upstream_connect = 2; upstream_response = 2; };
};
admin: { listen = ""; metrics_listen = "127.0.0.1:%d"; };
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; }, { address = "127.0.0.1:%d"; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  upstreams = ( %s );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = (
      { path = "/gh.Test/"; upstream = "grpc"; max_body_bytes = 8388608; },
      { path = "/gh.Tls/"; upstream = "grpctls"; },
      { path = "/hc/"; upstream = "hc"; },
      { path = "/bp/"; upstream = "bp"; strip_prefix = true; },
      { path = "/bp2/"; upstream = "bp2"; strip_prefix = true; max_body_bytes = 0; },
      { path = "/h1/"; upstream = "h1"; strip_prefix = true; },
      { path = "/dead/"; upstream = "dead"; strip_prefix = true; },
      { path = "/tls/"; upstream = "h2tls"; strip_prefix = true; },
      { path = "/"; upstream = "h2o"; max_body_bytes = 8388608; } ); } );
};
""" % (mport, port, pport, pki[0], pki[1], ups)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    cert = gh.make_cert(d, "a", ["a.test"])
    ocert = gh.make_cert(d, "o", ["o.test"])
    srv, gport = grpc_server()
    srvtls, gtport = grpc_server(ocert)
    hco = H2Origin()
    bpo = H2Origin()
    bpo2 = H2Origin()   # (each backpressure test stalls its origin's connection)
    o = H2Origin()
    otls = H2Origin(tls_cert=ocert)
    h1 = H1Only()
    dead = gh.free_port()   # nothing listens there
    ups = """{ name = "grpc"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "grpctls"; protocol = "h2"; tls = true; sni = "o.test"; ca_file = "%s";
        servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "hc"; protocol = "h2"; health = { path = "/health-check"; interval = 0.5; timeout = 0.5; };
        servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "bp"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "bp2"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "h2o"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "h2tls"; protocol = "h2"; tls = true; sni = "o.test"; ca_file = "%s";
        servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "h1"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
      { name = "dead"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); }""" % (
        gport, os.path.join(d, "ca.pem"), gtport, hco.port, bpo.port, bpo2.port, o.port, os.path.join(d, "ca.pem"), otls.port,
        h1.port, dead)
    port, pport, mport = gh.free_port(), gh.free_port(), gh.free_port()
    g = gh.Gatehouse(conf(port, pport, mport, cert, ups)).start([port, pport, mport])
    g.port, g.pport, g.mport = port, pport, mport
    g.ca = os.path.join(d, "ca.pem")
    g.o, g.otls, g.hco, g.bpo, g.bpo2 = o, otls, hco, bpo, bpo2
    yield g
    g.check_clean()
    srv.stop(0)
    srvtls.stop(0)
    hco.stop()
    bpo.stop()
    bpo2.stop()
    o.stop()
    otls.stop()
    h1.stop()


def channel(g):
    with open(g.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel("127.0.0.1:%d" % g.port, creds,
                               options=[("grpc.ssl_target_name_override", "a.test"),
                                        ("grpc.default_authority", "a.test"),
                                        ("grpc.max_receive_message_length", 4 << 20),
                                        ("grpc.max_send_message_length", 4 << 20)])


def h2curl(g, path, *args, **kw):
    return gh.curl("--http2", "--cacert", g.ca, "--resolve", "a.test:%d:127.0.0.1" % g.port,
                   *args, "https://a.test:%d%s" % (g.port, path), **kw)[1]


# ---- gRPC ----

def test_grpc_unary_and_metadata(env):
    with channel(env) as ch:
        f = ch.unary_unary("/gh.Test/Unary")
        resp, call = f.with_call(b"hello", timeout=10, metadata=(("x-who", "tester"),))
        assert resp == b"echo:hello|tester"
        assert call.code() == grpc.StatusCode.OK
    lines = [l for l in env.access_lines() if "/gh.Test/Unary" in l]
    assert lines and "HTTP/2.0" in lines[-1] and " 200 " in lines[-1], lines


def test_grpc_server_streaming(env):
    with channel(env) as ch:
        f = ch.unary_stream("/gh.Test/Stream")
        got = list(f(b"7", timeout=10))
        assert got == [b"msg-%d" % i for i in range(7)]


def test_grpc_error_status_and_trailers(env):
    """A non-OK status: grpc-status/grpc-message (and custom trailing
    metadata) must reach the client, both as a trailers-only answer and
    as trailers after DATA."""
    with channel(env) as ch:
        with pytest.raises(grpc.RpcError) as ei:
            ch.unary_unary("/gh.Test/Fail")(b"x", timeout=10)
        e = ei.value
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED
        assert e.details() == "not for you"
        assert ("x-why", "because") in tuple(e.trailing_metadata())
        it = ch.unary_stream("/gh.Test/FailLater")(b"x", timeout=10)
        got = []
        with pytest.raises(grpc.RpcError) as ei:
            for m in it:
                got.append(m)
        assert got == [b"one"]
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ei.value.details() == "out of beans"


def test_grpc_deadline_exceeded(env):
    with channel(env) as ch:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            ch.unary_unary("/gh.Test/Slow")(b"x", timeout=0.8)
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2.5
        # the channel (and Gatehouse's upstream session) still work
        assert ch.unary_unary("/gh.Test/Unary")(b"again", timeout=10) == b"echo:again|"


def test_grpc_large_message(env):
    msg = bytes(range(256)) * 4096          # 1 MiB
    with channel(env) as ch:
        assert ch.unary_unary("/gh.Test/Big")(msg, timeout=20) == msg[::-1]


def test_grpc_over_tls_upstream(env):
    """The gRPC server itself on TLS: Gatehouse speaks h2 to it by ALPN,
    verifying its certificate (sni o.test against the test CA)."""
    with channel(env) as ch:
        assert ch.unary_unary("/gh.Tls/Unary")(b"sec", timeout=10) == b"echo:sec|"
        assert list(ch.unary_stream("/gh.Tls/Stream")(b"3", timeout=10)) == [b"msg-0", b"msg-1", b"msg-2"]
        with pytest.raises(grpc.RpcError) as ei:
            ch.unary_unary("/gh.Tls/Fail")(b"x", timeout=10)
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_checks_speak_h2(env):
    """Health checks of an h2 upstream go over HTTP/2 (the origin only
    speaks h2: it sees them as h2 streams), on a fresh connection each."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with env.hco.lock:
            seen = [r for r in env.hco.requests if r["h"][b":path"] == b"/health-check"]
        if len(seen) >= 2:
            break
        time.sleep(0.1)
    assert len(seen) >= 2
    assert seen[0]["h"][b":method"] == b"GET"
    assert h2curl(env, "/hc/ok", "-s") == b"/hc/ok"


def test_grpc_many_concurrent_calls(env):
    with channel(env) as ch:
        f = ch.unary_unary("/gh.Test/Unary")
        futs = [f.future(b"n%d" % i, timeout=15) for i in range(40)]
        assert sorted(x.result() for x in futs) == sorted(b"echo:n%d|" % i for i in range(40))


# ---- plain HTTP/2 origins (python3-h2) ----

def test_multiplexed_on_one_upstream_connection(env):
    """30 concurrent client requests (HTTP/2 and HTTP/1.1 clients) share one
    upstream HTTP/2 connection: the origin sees 1 connection (or very few)
    and several streams open at once."""
    o = env.o
    before, resets = o.conns, o.resets
    procs = []
    for i in range(15):
        procs.append(subprocess.Popen(["curl", "-s", "--http2", "--cacert", env.ca, "--resolve",
                                       "a.test:%d:127.0.0.1" % env.port,
                                       "https://a.test:%d/slow-%d" % (env.port, i)], stdout=subprocess.PIPE))
        procs.append(subprocess.Popen(["curl", "-s", "http://127.0.0.1:%d/slow-h1-%d" % (env.pport, i),
                                       "-H", "Host: a.test"], stdout=subprocess.PIPE))
    outs = [p.communicate(timeout=30)[0] for p in procs]
    assert sorted(outs) == sorted([b"/slow-%d" % i for i in range(15)] + [b"/slow-h1-%d" % i for i in range(15)])
    assert o.conns - before <= 2, "the origin saw %d connections" % (o.conns - before)
    assert o.max_open >= 2, "streams were not multiplexed"
    assert o.resets == resets, "complete responses must not be cancelled (RST_STREAM)"
    m = gh.metrics(env.mport)
    assert m['gatehouse_upstream_h2_streams_total{family="reverse"}'] >= 30, m


def test_h1_client_post_body_and_h2_client_big_bodies(env):
    body = os.urandom(300000)
    out = gh.curl("-s", "--data-binary", "@-", "-H", "Host: a.test", "-H", "Content-Type: application/x",
                  "http://127.0.0.1:%d/echo" % env.pport, input=body)[1]
    assert out == body
    out = h2curl(env, "/echo", "-s", "--data-binary", "@-", input=body)
    assert out == body
    out = h2curl(env, "/big", "-s")
    assert out == b"b" * (1 << 20)


def test_response_trailers_to_h2_client(env):
    """Trailers from the h2 origin reach an h2 client (HEADERS after DATA)."""
    out = subprocess.run(["nghttp", "-v", "--no-verify-peer", "https://127.0.0.1:%d/trailers" % env.port,
                          "-H", ":authority: a.test"], capture_output=True, timeout=20).stdout.decode()
    assert "body-before-trailers" in out
    assert "x-checksum: abc123" in out and "x-final: yes" in out, out[-3000:]


def test_request_trailers_to_h2_upstream(env):
    """An h2 client's request trailers go on to the h2 origin; te: trailers too."""
    ctx = ssl.create_default_context(cafile=env.ca)
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=10), server_hostname="a.test")
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":path", "/echo"), (":scheme", "https"), (":authority", "a.test"),
                       ("te", "trailers")])
    c.send_data(1, b"payload")
    c.send_headers(1, [("x-sum", "42")], end_stream=True)
    s.sendall(c.data_to_send())
    headers, body, done = {}, b"", False
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                headers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    assert done and body == b"payload"
    assert headers.get(b"x-req-trailer-x-sum") == b"42", headers
    assert headers.get(b"x-req-te") == b"trailers", headers


def test_tls_upstream_with_alpn_h2(env):
    before = env.otls.conns
    for i in range(3):
        assert h2curl(env, "/tls/t%d" % i, "-s") == b"/t%d" % i
    assert env.otls.conns - before == 1


def test_origin_dies_mid_stream(env):
    """The origin closes its connection in the middle of a body: the client
    gets an error (a reset stream / cut transfer), not a hang; the next
    request works on a new upstream connection."""
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-s", "--http2", "--cacert", env.ca, "--resolve", "a.test:%d:127.0.0.1" % env.port,
                        "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                        "https://a.test:%d/die" % env.port], capture_output=True, timeout=20)
    assert time.monotonic() - t0 < 10
    assert r.returncode != 0, r
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.test",
                        "http://127.0.0.1:%d/die" % env.pport], capture_output=True, timeout=20)
    assert r.returncode != 0, r   # HTTP/1.1 client: the chunked/length body is cut
    assert h2curl(env, "/after-die", "-s") == b"/after-die"


@pytest.mark.parametrize("path", ["/badlen", "/conn"])
def test_bad_upstream_response_is_502_or_cut(env, path):
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.test",
                        "http://127.0.0.1:%d%s" % (env.pport, path)], capture_output=True, timeout=20)
    code = r.stdout.decode()
    if path == "/conn":
        assert code == "502", r     # nothing was relayed: a clear 502
    else:
        assert r.returncode != 0 or code == "502", r   # the head went out: the body is cut
    assert h2curl(env, "/still-fine", "-s") == b"/still-fine"


def test_upstream_not_speaking_h2_is_502(env):
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Host: a.test",
                        "http://127.0.0.1:%d/h1/x" % env.pport], capture_output=True, timeout=20)
    assert r.stdout.decode().endswith("\n502"), r
    deadline = time.monotonic() + 5
    while "does not speak HTTP/2" not in env.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "does not speak HTTP/2: it answered the h2c preface in HTTP/1" in env.stderr()


def test_dead_upstream_is_fast_502(env):
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.test",
                        "http://127.0.0.1:%d/dead/x" % env.pport], capture_output=True, timeout=20)
    assert r.stdout == b"502"
    assert time.monotonic() - t0 < 3


def test_upstream_response_timeout_is_504(env):
    """An h2 origin that never answers a stream: 504 after upstream_response
    (2 s), for several streams at once, and the shared session goes on."""
    procs = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.test",
                               "http://127.0.0.1:%d/hang-%d" % (env.pport, i)], stdout=subprocess.PIPE)
             for i in range(5)]
    t0 = time.monotonic()
    codes = [p.communicate(timeout=30)[0] for p in procs]
    assert codes == [b"504"] * 5
    assert time.monotonic() - t0 < 8
    assert h2curl(env, "/after-hang", "-s") == b"/after-hang"


def test_h2_client_gets_upstream_errors(env):
    """An HTTP/2 client's stream whose h2 upstream fails before answering
    gets the 502/504 page on its stream (the stream ends while the error is
    being answered: it must not be touched after; this was a use after free
    under ASan), and its connection goes on."""
    r = subprocess.run(["curl", "-s", "--http2", "--cacert", env.ca, "--resolve", "a.test:%d:127.0.0.1" % env.port,
                        "-w", " %{http_code}", "https://a.test:%d/dead/x" % env.port,
                        "https://a.test:%d/hang-h2" % env.port, "https://a.test:%d/after" % env.port],
                       capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert out.count(" 502") == 1 and out.count(" 504") == 1 and out.endswith("/after 200"), out


def test_response_backpressure_to_a_client_that_does_not_read(env):
    """A 64 MiB response to an HTTP/1.1 client that reads nothing: the h2
    origin is stopped by flow control (Gatehouse gives its window back only
    as the client takes bytes), so it sends a few MiB at most, and
    Gatehouse holds little."""
    before = env.bpo.sent
    rss0 = gh.rss_kb(env.proc.pid)
    s = socket.create_connection(("127.0.0.1", env.pport))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /bp/huge HTTP/1.1\r\nHost: a.test\r\n\r\n")
    # the response starts; then 2 s in which an unbounded relay would take
    # all 64 MiB (a loaded machine only makes it less)
    deadline = time.monotonic() + 10
    while env.bpo.sent == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2)
    sent = env.bpo.sent - before
    assert 0 < sent < 12 << 20, "the origin sent %d bytes to a client that reads nothing" % sent
    assert gh.rss_kb(env.proc.pid) - rss0 < 40 << 10
    s.close()


def test_request_backpressure_to_an_origin_that_does_not_read(env):
    """A 64 MiB upload toward an h2 origin that never gives window back:
    Gatehouse sends it only what the windows allow (64 KiB) and stops
    reading the client, whose sending stalls well short of 64 MiB."""
    s = socket.create_connection(("127.0.0.1", env.pport))
    s.sendall(b"POST /bp2/noack HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
    s.setblocking(False)
    chunk = b"u" * 65536
    pushed, idle_since = 0, time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and time.monotonic() - idle_since < 1.0:
        if select.select([s], [], [], 0)[0]:
            # an answer: the stalled upload met upstream_response (504), and
            # what the client sends from now on is drained for the close
            break
        try:
            pushed += s.send(chunk)
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            break   # (the stalled upload met upstream_response: 504 and close)
    assert pushed < 32 << 20, "Gatehouse took %d bytes for an origin that reads nothing" % pushed
    deadline = time.monotonic() + 10   # (a loaded machine may still be on its way)
    while env.bpo2.unacked == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    s.close()
    with env.bpo2.lock:
        assert 0 < env.bpo2.unacked <= 65535, env.bpo2.unacked


def test_goaway_refused_streams_are_retried(env):
    """The origin answers one stream, then sends GOAWAY(last-stream-id 0)
    and closes: the GET streams open on that connection were refused (not
    processed), so they are sent again on a new connection and succeed."""
    o = H2Origin()
    port = gh.free_port()
    g = gh.Gatehouse("""@GLOBAL@ timeouts: { upstream_response = 5; }; };
reverse: { listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = ( { path = "/"; upstream = "o"; } ); } ); };
""" % (port, o.port)).start([port])
    try:
        assert gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/warm" % port)[1] == b"/warm"
        procs = [subprocess.Popen(["curl", "-s", "-H", "Host: a.test", "http://127.0.0.1:%d/slow-g%d" % (port, i)],
                                  stdout=subprocess.PIPE) for i in range(5)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:   # the five are open on the origin's connection
            with o.lock:
                n = len([r for r in o.requests if r["h"][b":path"].startswith(b"/slow-g")])
            if n == 5:
                break
            time.sleep(0.02)
        assert gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/goaway" % port)[1] == b"bye"
        outs = sorted(p.communicate(timeout=30)[0] for p in procs)
        assert outs == sorted(b"/slow-g%d" % i for i in range(5))
        assert o.conns == 2
    finally:
        g.check_clean()
        o.stop()


def test_response_trailers_to_h1_client_in_last_chunk(env):
    """An HTTP/1.1 client gets the h2 origin's trailers in the last chunk of
    its chunked body."""
    out = gh.curl("--raw", "-H", "Host: a.test", "http://127.0.0.1:%d/trailers" % env.pport)[1]
    assert b"body-before-trailers" in out
    assert out.endswith(b"\r\n0\r\nx-checksum: abc123\r\nx-final: yes\r\n\r\n"), out


def test_complete_response_is_not_cancelled(env):
    """The whole body (its content-length) came but END_STREAM comes later:
    the exchange is over for Gatehouse, yet it must not RST_STREAM a stream
    that ends by itself (a server's rapid-reset guard counts those)."""
    before = env.o.resets
    for i in range(3):
        assert h2curl(env, "/late-end", "-s") == b"hello"
        assert gh.curl("-H", "Host: a.test", "http://127.0.0.1:%d/late-end" % env.pport)[1] == b"hello"
    time.sleep(0.5)   # (the last END_STREAMs go out 0.3 s after their bodies; a reset would be in by now)
    assert env.o.resets == before
    assert h2curl(env, "/after-late", "-s") == b"/after-late"


def test_connection_bound_credentials_not_sent_over_shared_h2(env):
    """An h2 upstream connection carries many clients' streams: NTLM or
    Negotiate credentials, which authenticate the connection (an HTTP/1.1
    upstream connection that carried them serves only its client), would
    authenticate everyone's streams there.  They get a 502 naming the
    reason and reach no origin; per-request schemes (Basic) go through."""
    o = env.o
    before = len(o.requests)
    for scheme in ("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==", "Negotiate YIIBBgYGKwYB"):
        out = h2curl(env, "/ntlm", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: " + scheme)
        assert out == b"502", (scheme, out)
        rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.test",
                               "-H", "Authorization: " + scheme, "http://127.0.0.1:%d/ntlm-h1" % env.pport)
        assert out == b"502", (scheme, out)
    assert len(o.requests) == before
    out = h2curl(env, "/basic", "-s", "-H", "Authorization: Basic YTpi")
    assert out == b"/basic"
    # only the scheme counts: a bearer token may hold "ntlm" anywhere
    out = h2curl(env, "/bearer", "-s", "-H", "Authorization: Bearer eyJhbGntlmNegotiatekerberos")
    assert out == b"/bearer"
    assert "connection-bound authentication (NTLM, Negotiate) cannot go over a shared" in env.stderr()
