"""HTTP/2 on the reverse side (core/h2.c): ALPN h2 on TLS listeners, h2c with
prior knowledge on plain listeners that ask for it, every stream a request
through the reverse side, bodies both ways with flow control, and the known
HTTP/2 attacks (with a raw frame client built on Debian's python3-h2 stack:
hyperframe + hpack), against real curl, nghttp and h2load."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

import gh

import hpack  # python3-hpack and python3-hyperframe come with python3-h2: missing = the test fails
import hyperframe.frame as hyperframe

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_conf(port, pport, hport, origin_port, pki, extra_listener="", mport=0):
    return """@GLOBAL@
  timeouts: { client_idle = 3; client_body = 3; client_header = 3; };
};
admin: { listen = ""; metrics_listen = "%s"; };
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; },
                { address = "127.0.0.1:%d"; },
                { address = "127.0.0.1:%d"; h2c = true; } %s );
  certificates = ( { cert = "%s"; key = "%s"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = ( { path = "/"; upstream = "o"; } ); } );
};
""" % ("127.0.0.1:%d" % mport if mport else "", port, pport, hport, extra_listener, pki[0], pki[1], origin_port)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    cert = gh.make_cert(d, "a", ["a.test"])
    o = gh.Origin()
    port, pport, hport, mport = gh.free_port(), gh.free_port(), gh.free_port(), gh.free_port()
    g = gh.Gatehouse(h2_conf(port, pport, hport, o.port, cert, mport=mport)).start([port, pport, hport, mport])
    g.port, g.pport, g.hport, g.mport = port, pport, hport, mport
    g.ca = os.path.join(d, "ca.pem")
    g.origin = o
    yield g
    g.check_clean()
    o.stop()


def h2curl(g, path, *args, **kw):
    return gh.curl("--http2", "--cacert", g.ca, "--resolve", "a.test:%d:127.0.0.1" % g.port,
                   *args, "https://a.test:%d%s" % (g.port, path), **kw)


# ---- a raw HTTP/2 client: frames as the test writes them ----

class Raw:
    def __init__(self, g, tls=True, settings=None):
        s = socket.create_connection(("127.0.0.1", g.port if tls else g.hport), timeout=5)
        if tls:
            ctx = ssl.create_default_context(cafile=g.ca)
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="a.test")
            assert s.selected_alpn_protocol() == "h2"
        self.s = s
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.buf = b""
        self.closed = False
        self.window_updates = True    # give back what DATA took (a reading client)
        self.frames = []
        self.server_settings = {}
        sf = hyperframe.SettingsFrame(0)
        sf.settings = settings or {}
        s.sendall(PREFACE + sf.serialize())

    def send(self, *frames):
        self.s.sendall(b"".join(f.serialize() for f in frames))

    def headers(self, sid, path="/size/1", method="GET", extra=(), end_stream=True, end_headers=True,
                authority="a.test"):
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)]
        f = hyperframe.HeadersFrame(sid)
        f.data = self.enc.encode(hdrs + list(extra))
        if end_headers:
            f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def data(self, sid, payload, end_stream=True):
        f = hyperframe.DataFrame(sid)
        f.data = payload
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def read(self, timeout=5.0, until=None):
        """Read frames until until(frame) is true, the peer closes, or timeout."""
        end = time.time() + timeout
        got = []
        while time.time() < end and not self.closed:
            while len(self.buf) >= 9:
                f, length = hyperframe.Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                if isinstance(f, (hyperframe.HeadersFrame, hyperframe.PushPromiseFrame)):
                    f.headers = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                                 for k, v in self.dec.decode(f.data)]
                if isinstance(f, hyperframe.SettingsFrame) and "ACK" not in f.flags:
                    self.server_settings.update(f.settings)
                    ack = hyperframe.SettingsFrame(0)
                    ack.flags.add("ACK")
                    try:
                        self.s.sendall(ack.serialize())
                    except OSError:
                        pass
                if isinstance(f, hyperframe.DataFrame) and f.flow_controlled_length and self.window_updates:
                    wu = hyperframe.WindowUpdateFrame(0)
                    wu.window_increment = f.flow_controlled_length
                    wu2 = hyperframe.WindowUpdateFrame(f.stream_id)
                    wu2.window_increment = f.flow_controlled_length
                    try:
                        self.send(wu, wu2)
                    except OSError:
                        pass
                got.append(f)
                self.frames.append(f)
                if until is not None and until(f):
                    return got
            self.s.settimeout(max(0.05, end - time.time()))
            try:
                b = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                b = b""
            if not b:
                self.closed = True
                break
            self.buf += b
        return got

    def response(self, sid, timeout=5.0):
        """(status, headers, body, rst_code) of stream sid."""
        status, hdrs, body, rst = None, [], b"", None
        done = lambda f: f.stream_id == sid and ("END_STREAM" in f.flags or isinstance(f, hyperframe.RstStreamFrame))
        seen = [x for x in self.frames if x.stream_id == sid]
        # an end read earlier (while waiting for another stream) is not
        # waited for again: that wait ran out its whole timeout, and a few
        # of them let the connection pass client_idle (the gateway closed it)
        if not any(done(x) for x in seen):
            seen += self.read(timeout, done)
        for f in seen:
            if f.stream_id != sid:
                continue
            if isinstance(f, hyperframe.HeadersFrame):
                d = dict(f.headers)
                if ":status" in d and not d[":status"].startswith("1"):
                    status, hdrs = int(d[":status"]), f.headers
            elif isinstance(f, hyperframe.DataFrame):
                body += f.data
            elif isinstance(f, hyperframe.RstStreamFrame):
                rst = f.error_code
        return status, hdrs, body, rst

    def goaway(self, timeout=10.0):
        for f in self.frames + self.read(timeout, lambda f: isinstance(f, hyperframe.GoAwayFrame)):
            if isinstance(f, hyperframe.GoAwayFrame):
                return f
        return None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- step 1: real clients ----

def test_curl_http2_get_post_and_log(env):
    rc, out, err = h2curl(env, "/echo", "-H", "X-Test: one", "-w", "\n%{http_version}")
    assert rc == 0, err
    body, ver = out.rsplit(b"\n", 1)
    assert ver == b"2"
    d = json.loads(body)
    hdrs = {k.lower(): v for k, v in d["headers"]}
    assert d["version"] == "HTTP/1.1"                  # pooled HTTP/1.1 to the upstream
    assert hdrs["host"] == "a.test:%d" % env.port      # from :authority
    assert hdrs["x-test"] == "one"
    assert hdrs["x-forwarded-proto"] == "https"
    assert hdrs["via"] == "2 gatehouse"                # received over HTTP/2 (RFC 9110 7.6.3)
    rc, out, err = h2curl(env, "/echo", "--data-binary", "hello=world")
    d = json.loads(out)
    assert d["method"] == "POST" and d["body"] == "hello=world"
    assert ["content-length", "11"] in [[k.lower(), v] for k, v in d["headers"]]
    line = gh.access_line_for(env, '"POST /echo HTTP/2.0" 200')
    assert line is not None, env.access_lines()


def test_cookies_joined_and_host_checked(env):
    r = Raw(env)
    r.send(r.headers(1, "/echo", extra=[("cookie", "a=1"), ("cookie", "b=2"), ("accept", "*/*")]))
    st, hdrs, body, rst = r.response(1)
    assert st == 200, (st, rst)
    got = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert got["cookie"] == "a=1; b=2"
    # a Host that names something else than :authority is malformed
    r.send(r.headers(3, "/echo", extra=[("host", "evil.test")]))
    st, hdrs, body, rst = r.response(3)
    assert st == 400, (st, rst)
    r.close()


def test_h2c_prior_knowledge_only_where_enabled(env):
    rc, out, err = gh.curl("--http2-prior-knowledge", "-w", "\n%{http_version}", "-H", "Host: a.test",
                           "http://127.0.0.1:%d/size/5" % env.hport)
    assert rc == 0, err
    assert out == b"xxxxx\n2"
    # off by default: the preface is not HTTP/1 either
    st = gh.curl_status("--http2-prior-knowledge", "-H", "Host: a.test", "http://127.0.0.1:%d/size/5" % env.pport)
    assert st != 200
    # the Upgrade: h2c dance stays refused: the answer is HTTP/1.1
    rc, out, err = gh.curl("--http2", "-w", "\n%{http_version}", "-H", "Host: a.test",
                           "http://127.0.0.1:%d/size/3" % env.hport)
    assert out == b"xxx\n1.1"


def test_many_concurrent_streams_h2load(env):
    p = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "50", "-t", "1",
                        "https://127.0.0.1:%d/size/100" % env.port],
                       capture_output=True, text=True, timeout=120)
    assert "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded" in p.stdout, p.stdout
    assert "status codes: 2000 2xx" in p.stdout
    assert "h2" in p.stdout   # "Application protocol: h2"


def test_large_bodies_both_ways(env, tmp_path):
    rc, out, err = h2curl(env, "/stream/6000000", "-o", "/dev/null", "-w", "%{size_download} %{http_version}")
    assert rc == 0, err
    assert out == b"6000000 2"
    big = tmp_path / "up.bin"
    big.write_bytes(os.urandom(1 << 20) * 8)
    rc, out, err = h2curl(env, "/upload", "--data-binary", "@%s" % big)
    assert rc == 0 and out == b"%d" % (8 << 20), (out, err)
    # a body of unknown length (no content-length): chunked to the upstream
    rc, out, err = h2curl(env, "/upload", "-T", "-", input=b"z" * 3000000)
    assert rc == 0 and out == b"3000000", (out, err)
    ups = [r for r in env.origin.requests if r.target == "/upload" and r.header("Transfer-Encoding")]
    assert ups and ups[-1].header("Transfer-Encoding") == "chunked"


def test_nghttp_settings_no_extended_connect(env):
    p = subprocess.run(["nghttp", "-nv", "https://127.0.0.1:%d/size/10" % env.port],
                       capture_output=True, text=True, timeout=30)
    out = p.stdout
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128" in out, out
    # RFC 8441 is not implemented: never advertised
    assert "0x08" not in out and "ENABLE_CONNECT_PROTOCOL" not in out
    assert ":status: 200" in out


# ---- step 2: limits and attacks ----

def test_max_concurrent_streams(env):
    r = Raw(env)
    # 130 requests whose bodies are still to come: 128 streams may be open
    for sid in range(1, 261, 2):
        r.send(r.headers(sid, "/upload", method="POST", extra=[("content-length", "2")], end_stream=False))
    refused = [f for f in r.read(1.0, lambda f: False) if isinstance(f, hyperframe.RstStreamFrame)]
    assert r.server_settings.get(3) == 128
    assert sorted(f.stream_id for f in refused) == [257, 259], [(f.stream_id, f.error_code) for f in refused]
    assert all(f.error_code in (1, 7) for f in refused)    # PROTOCOL_ERROR / REFUSED_STREAM
    # the open ones are served once their bodies come
    for sid in (1, 3, 255):
        r.send(r.data(sid, b"ok"))
        st, hdrs, body, rst = r.response(sid)
        assert st == 200 and body == b"2", (sid, st, rst)
    r.close()


def test_rapid_reset_ends_in_goaway(env):
    r = Raw(env)
    frames = []
    for sid in range(1, 2 * 3000, 2):
        rst = hyperframe.RstStreamFrame(sid)
        rst.error_code = 8   # CANCEL
        frames += [r.headers(sid, "/size/1"), rst]
        if len(frames) >= 200:
            try:
                r.send(*frames)
            except OSError:
                break
            frames = []
    ga = r.goaway(10)
    assert ga is not None, "no GOAWAY after 3000 HEADERS+RST_STREAM pairs"
    r.close()
    # the gateway serves the next client as usual
    rc, out, err = h2curl(env, "/size/4")
    assert rc == 0 and out == b"xxxx", err


def test_continuation_flood_is_cut(env):
    r = Raw(env)
    first = r.headers(1, "/size/1", end_headers=False)
    frames = [first]
    for i in range(40):
        c = hyperframe.ContinuationFrame(1)
        c.data = r.enc.encode([("x-c%d" % i, "v")])
        frames.append(c)
    try:
        r.send(*frames)
    except OSError:
        pass
    r.read(5)
    assert r.closed or r.goaway(1) is not None
    assert not any(isinstance(f, hyperframe.HeadersFrame) and f.stream_id == 1 for f in r.frames)
    r.close()


def test_hpack_bomb_bounded_by_max_header_bytes(env):
    r = Raw(env)
    big = "b" * 4000
    # one 4 KB entry in the dynamic table, then referenced 40 times: 160 KB
    # of header list from ~4 KB on the wire (max_header_bytes: 64 KiB)
    r.send(r.headers(1, "/echo", extra=[("x-bomb", big)] * 40))
    st, hdrs, body, rst = r.response(1)
    assert st == 431, (st, rst)
    # the connection (and its HPACK state) goes on
    r.send(r.headers(3, "/size/2"))
    st, hdrs, body, rst = r.response(3)
    assert st == 200 and body == b"xx"
    r.close()


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "empty-data"])
def test_control_frame_floods_end_in_goaway(env, kind):
    r = Raw(env)
    if kind == "empty-data":
        r.send(r.headers(1, "/upload", method="POST", end_stream=False))
    frames = []
    for i in range(5000):
        if kind == "ping":
            f = hyperframe.PingFrame(0)
            f.opaque_data = b"%08d" % i
        elif kind == "settings":
            f = hyperframe.SettingsFrame(0)
        elif kind == "priority":
            f = hyperframe.PriorityFrame(2 * i + 1)
            f.depends_on = 0
            f.stream_weight = 15
        else:
            f = r.data(1, b"", end_stream=False)
        frames.append(f)
    try:
        r.send(*frames)
    except OSError:
        pass
    ga = r.goaway(10)
    assert ga is not None, kind
    r.read(5)
    assert r.closed, kind
    r.close()


def test_zero_window_stall_is_timed_out(env):
    # the client never opens its window: the stream cannot send its body;
    # client_idle (3 s here) still ends it
    r = Raw(env, settings={4: 0})   # SETTINGS_INITIAL_WINDOW_SIZE = 0
    t0 = time.time()
    r.send(r.headers(1, "/size/100000"))
    got = r.read(12, lambda f: isinstance(f, hyperframe.RstStreamFrame) or isinstance(f, hyperframe.GoAwayFrame))
    took = time.time() - t0
    assert any(isinstance(f, hyperframe.HeadersFrame) and f.stream_id == 1 for f in r.frames)
    assert got and isinstance(got[-1], (hyperframe.RstStreamFrame, hyperframe.GoAwayFrame)), r.frames
    assert 2 <= took < 12
    assert gh.access_line_for(env, "send timeout") is not None
    r.close()


@pytest.mark.parametrize("hdrs", [
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test")],                    # no :path
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"), (":foo", "x")],
    [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a.test"), ("X-Upper", "1")],
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"), ("connection", "keep-alive")],
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"), ("te", "gzip")],
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"),
     ("transfer-encoding", "chunked")],
    [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"), ("upgrade", "h2c")],
    [(":method", "GET"), ("x-a", "1"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")],
], ids=["no-path", "unknown-pseudo", "uppercase", "connection", "te", "transfer-encoding", "upgrade",
        "pseudo-after-regular"])
def test_malformed_requests_are_reset(env, hdrs):
    before = len(env.origin.requests)
    r = Raw(env)
    f = hyperframe.HeadersFrame(1)
    f.data = r.enc.encode(hdrs)
    f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    r.send(f)
    st, h, body, rst = r.response(1)
    assert st is None and rst == 1, (st, rst)    # RST_STREAM(PROTOCOL_ERROR)
    r.send(r.headers(3, "/size/1"))
    assert r.response(3)[0] == 200
    r.close()
    assert len(env.origin.requests) == before + 1


@pytest.mark.parametrize("chunks", [[b"x" * 11], [b"x" * 10, b"y"], [b"x" * 9]], ids=["one-frame", "extra-frame", "short"])
def test_content_length_mismatch_not_relayed(env, chunks):
    r = Raw(env)
    env.origin.raw.clear()
    r.send(r.headers(1, "/echo", method="POST", extra=[("content-length", "10")], end_stream=False))
    for i, c in enumerate(chunks):
        r.send(r.data(1, c, end_stream=i == len(chunks) - 1))
    st, h, body, rst = r.response(1)
    assert rst == 1 or st == 400, (st, rst, body)
    time.sleep(0.3)
    raw = bytes(env.origin.raw)
    # never a byte past content-length, never a complete short body
    assert b"y" not in raw.split(b"\r\n\r\n", 1)[-1] and b"x" * 11 not in raw
    if chunks == [b"x" * 9]:
        assert not [q for q in env.origin.requests if q.target == "/echo" and q.body == b"x" * 9]
    r.send(r.headers(3, "/size/1"))
    assert r.response(3)[0] == 200
    r.close()


def test_http2_off_per_listener_and_config_errors(env, tmp_path):
    cert = (os.path.join(os.path.dirname(env.ca), "a.pem"), os.path.join(os.path.dirname(env.ca), "a.key"))
    port = gh.free_port()
    conf = h2_conf(env.port, env.pport, env.hport, env.origin.port, cert)
    # a second process: every listener on ports of its own (the module's
    # gatehouse holds env's; another process's address is refused)
    off = h2_conf(port, gh.free_port(), gh.free_port(), env.origin.port, cert).replace(
        '{ address = "127.0.0.1:%d"; tls = true; },' % port,
        '{ address = "127.0.0.1:%d"; tls = true; http2 = false; },' % port)
    assert "http2 = false" in off
    g = gh.Gatehouse(off).start([port])
    try:
        ctx = ssl.create_default_context(cafile=env.ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                             server_hostname="a.test") as t:
            assert t.selected_alpn_protocol() == "http/1.1"
    finally:
        g.check_clean()
    # on the module's TLS listener, a client offering only http/1.1 gets it
    ctx = ssl.create_default_context(cafile=env.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=5),
                         server_hostname="a.test") as t:
        assert t.selected_alpn_protocol() == "http/1.1"
    for bad, msg in (('{ address = "127.0.0.1:%d"; },' % env.pport, "http2: needs tls = true"),
                     ('{ address = "127.0.0.1:%d"; tls = true; },' % env.port, "h2c: only for plain listeners")):
        key = "http2 = true;" if "http2" in msg else "h2c = true;"
        text = conf.replace(bad, bad.replace("}", key + " }"))
        b = gh.Gatehouse(text)
        p = subprocess.run([gh.BIN, "-t", "-c", b.conf], capture_output=True, text=True)
        assert p.returncode == 1, p.stderr
        assert re.search(re.escape(b.conf) + r":\d+: reverse\.listeners\.\[\d\]\." + msg.replace(".", r"\."), p.stderr), \
            p.stderr


# ---- step 3: graceful stop, reloads, counters ----

def small_gw(env, origin_port=None, extra=""):
    cert = (os.path.join(os.path.dirname(env.ca), "a.pem"), os.path.join(os.path.dirname(env.ca), "a.key"))
    p = [gh.free_port() for _ in range(3)]
    conf = h2_conf(p[0], p[1], p[2], origin_port or env.origin.port, cert)
    g = gh.Gatehouse(conf).start(p)
    g.port, g.pport, g.hport, g.ca, g.cert = p[0], p[1], p[2], env.ca, cert
    return g


def drain_and_finish(g, r, trigger):
    r.send(r.headers(1, "/slow/1.5"))
    time.sleep(0.3)
    trigger()
    ga = r.read(5, lambda f: isinstance(f, hyperframe.GoAwayFrame) and f.last_stream_id < 2 ** 31 - 1)
    goaways = [f for f in r.frames if isinstance(f, hyperframe.GoAwayFrame)]
    assert goaways, r.frames
    assert goaways[-1].last_stream_id == 1 and goaways[-1].error_code == 0, goaways
    st, hdrs, body, rst = r.response(1, timeout=5)
    assert st == 200 and body == b"slow done\n", (st, rst)   # the stream in flight finished
    r.read(5)
    assert r.closed                                          # then the connection closed


def test_goaway_on_shutdown_stream_in_flight_finishes(env):
    g = small_gw(env)
    r = Raw(g)
    try:
        drain_and_finish(g, r, lambda: g.signal(signal.SIGTERM))
        assert g.proc.wait(10) == 0
        assert gh.access_line_for(g, '"GET /slow/1.5 HTTP/2.0" 200') is not None
    finally:
        r.close()
        g.check_clean()


def test_reload_goaway_when_listener_removed_and_new_rules_otherwise(env, origin2):
    g = small_gw(env)
    r = Raw(g)
    try:
        r.send(r.headers(1, "/echo"))
        assert r.response(1)[0] == 200
        # the listener stays: the connection goes on under the new rules
        conf = h2_conf(g.port, g.pport, g.hport, origin2.port, g.cert)
        g.reload(conf)
        r.send(r.headers(3, "/echo"))
        assert r.response(3)[0] == 200
        assert [q.target for q in origin2.requests] == ["/echo"]
        assert not [f for f in r.frames if isinstance(f, hyperframe.GoAwayFrame)]
        r2 = Raw(g)
        gone = conf.replace('{ address = "127.0.0.1:%d"; tls = true; },' % g.port, "")
        drain_and_finish(g, r2, lambda: g.reload(gone, settle=0))
        r2.close()
    finally:
        r.close()
        g.check_clean()


def test_h2_counters_in_metrics(env):
    rc, out, err = h2curl(env, "/size/1")
    m = gh.metrics(env.mport)
    assert m['gatehouse_h2_connections_total{family="reverse"}'] >= 1
    assert m['gatehouse_h2_streams_total{family="reverse"}'] >= 1
    assert m['gatehouse_h2_resets_received_total{family="reverse"}'] >= 100   # the rapid reset test
    assert m['gatehouse_h2_goaways_sent_total{family="reverse"}'] >= 1


def test_reverse_features_per_stream(env, tmp_path):
    """Cache with collapsed forwarding across streams of one connection, a
    static file, a redirect: each stream is an ordinary reverse request."""
    co = gh.CacheOrigin()
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.txt").write_bytes(b"F" * 300000)
    cert = (os.path.join(os.path.dirname(env.ca), "a.pem"), os.path.join(os.path.dirname(env.ca), "a.key"))
    port = gh.free_port()
    conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  cache = { memory = "16M"; max_object = "1M"; x_cache_header = true; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = (
      { path = "/c/"; upstream = "app"; cache = true; },
      { path = "/www/"; static = "%s"; },
      { path = "/go/"; redirect = "https://elsewhere.test/"; redirect_status = 301; }
  ); } );
};
""" % (port, cert[0], cert[1], co.port, str(tmp_path))
    g = gh.Gatehouse(conf).start([port])
    g.port, g.ca = port, env.ca
    try:
        co.script("/c/slow", headers=[("Cache-Control", "max-age=60")], body=b"S" * 5000, delay=1.0)
        r = Raw(g)
        for sid in range(1, 20, 2):
            r.send(r.headers(sid, "/c/slow"))
        res = [r.response(sid, timeout=10) for sid in range(1, 20, 2)]
        assert all(st == 200 and body == b"S" * 5000 for st, h, body, rst in res), [x[0] for x in res]
        assert co.count("/c/slow") == 1
        assert sorted(dict(h).get("x-cache") for st, h, body, rst in res).count("MISS") == 1
        r.send(r.headers(21, "/www/f.txt"))
        st, h, body, rst = r.response(21, timeout=10)
        assert st == 200 and body == b"F" * 300000
        r.send(r.headers(23, "/go/x"))
        st, h, body, rst = r.response(23)
        assert st == 301 and dict(h)["location"].startswith("https://elsewhere.test/")
        r.send(r.headers(25, "/www/f.txt", method="HEAD"))
        st, h, body, rst = r.response(25)
        assert st == 200 and body == b"" and dict(h)["content-length"] == "300000"
        r.close()
    finally:
        g.check_clean()
        co.kill()


def test_slow_reader_holds_the_upstream(env):
    """A client that takes nothing past its first window: the stream holds
    the upstream (HOLD) instead of buffering a 200 MB response."""
    r = Raw(env)
    r.window_updates = False
    r.send(r.headers(1, "/stream/200000000"))
    r.read(3)
    got = sum(len(f.data) for f in r.frames if isinstance(f, hyperframe.DataFrame) and f.stream_id == 1)
    assert 0 < got <= 65535
    if not gh.SANITIZED:
        assert gh.rss_kb(env.proc.pid) < 80 * 1024, gh.rss_kb(env.proc.pid)
    r.close()
    # the gateway lets the stream and its upstream go with the connection
    rc, out, err = h2curl(env, "/size/3")
    assert out == b"xxx"


def test_chromium_loads_a_published_page_over_h2(env, tmp_path):
    """Debian's headless Chromium loads a page and its subresources (script,
    images) from a static site and an upstream through the TLS listener:
    every request is HTTP/2 in the access log."""
    assert os.path.exists("/usr/bin/chromium"), "chromium missing: run tests/deps.sh test"
    cert = (os.path.join(os.path.dirname(env.ca), "a.pem"), os.path.join(os.path.dirname(env.ca), "a.key"))
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(
        "<html><body><h1 id=t>static</h1>" + "".join('<img src="/www/i%d.gif">' % i for i in range(6)) +
        '<script src="/www/app.js"></script></body></html>')
    (www / "app.js").write_text(
        "fetch('/size/7').then(r => r.text()).then(t => {"
        " document.getElementById('t').textContent = 'loaded ' + t.length; });")
    gif = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
    for i in range(6):
        (www / ("i%d.gif" % i)).write_bytes(gif)
    port = gh.free_port()
    conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = (
      { path = "/www/"; static = "%s"; }, { path = "/"; upstream = "o"; } ); } );
};
""" % (port, cert[0], cert[1], env.origin.port, str(tmp_path))
    g = gh.Gatehouse(conf).start([port])
    try:
        prof = tmp_path / "profile"
        p = subprocess.run(["/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--ignore-certificate-errors", "--user-data-dir=%s" % prof,
                            "--host-resolver-rules=MAP a.test 127.0.0.1", "--virtual-time-budget=5000",
                            "--dump-dom", "https://a.test:%d/www/index.html" % port],
                           capture_output=True, text=True, timeout=90)
        assert "loaded 7" in p.stdout, (p.stdout[-2000:], p.stderr[-2000:])
        lines = g.access_lines()
        for path in ["/www/index.html", "/www/app.js", "/size/7"] + ["/www/i%d.gif" % i for i in range(6)]:
            assert any('"GET %s HTTP/2.0" 200' % path in l for l in lines), (path, lines)
        assert not any("HTTP/1.1\"" in l for l in lines), lines
    finally:
        g.check_clean()


def test_trickled_request_body_is_cut_at_min_rate(env):
    """client_body_min_rate (1024 B/s by default) holds per stream: a body
    trickled at 20 B/s is answered 408 after the client_body grace (3 s),
    although each pause is shorter than client_body."""
    r = Raw(env)
    r.send(r.headers(1, "/upload", method="POST", extra=[("content-length", "100000")], end_stream=False))
    t0 = time.time()
    st = None
    while time.time() - t0 < 10 and st is None:
        try:
            r.send(r.data(1, b"t" * 10, end_stream=False))
        except OSError:
            break
        for f in r.read(0.5, lambda f: f.stream_id == 1 and isinstance(f, (hyperframe.HeadersFrame,
                                                                            hyperframe.RstStreamFrame))):
            if isinstance(f, hyperframe.HeadersFrame):
                st = int(dict(f.headers)[":status"])
            elif isinstance(f, hyperframe.RstStreamFrame):
                st = -f.error_code
    assert st == 408, st
    assert 2.5 <= time.time() - t0 < 8
    assert gh.access_line_for(env, "request body too slow") is not None
    r.close()


def test_stalled_header_block_is_timed_out(env):
    """HEADERS without END_HEADERS and then nothing: the stream's head timer
    (client_header, 3 s here) ends it; with a stream open the connection's
    idle timer is off, so nothing else would."""
    r = Raw(env)
    # the server's SETTINGS first: its ACK may not come inside the block
    r.read(5, lambda f: isinstance(f, hyperframe.SettingsFrame) and "ACK" not in f.flags)
    r.read(0.3, lambda f: False)
    t0 = time.time()
    r.send(r.headers(1, "/size/1", end_headers=False))
    got = r.read(12, lambda f: isinstance(f, (hyperframe.RstStreamFrame, hyperframe.GoAwayFrame)))
    took = time.time() - t0
    assert r.closed or any(isinstance(f, (hyperframe.RstStreamFrame, hyperframe.GoAwayFrame)) for f in got), r.frames
    assert 2 <= took < 12, took
    r.close()


def test_stream_timers_fire_each_at_its_own_deadline(env):
    """Streams share one connection timer (core/h2.c): three stalled bodies
    started 1 s apart are each answered 408 about client_body (3 s) after
    their own start, in order; a fourth stream in between is served."""
    r = Raw(env)
    starts, ends = {}, {}
    for i, sid in enumerate((1, 3, 5)):
        if i:
            r.read(1.0, lambda f: False)
        starts[sid] = time.time()
        r.send(r.headers(sid, "/upload", method="POST", extra=[("content-length", "10")], end_stream=False))
    r.send(r.headers(7, "/size/3"))
    assert r.response(7)[0] == 200
    deadline = time.time() + 12
    while time.time() < deadline and len(ends) < 3 and not r.closed:
        for f in r.read(0.2, lambda f: False):
            if f.stream_id in starts and f.stream_id not in ends and \
                    isinstance(f, (hyperframe.HeadersFrame, hyperframe.RstStreamFrame)):
                st = int(dict(f.headers)[":status"]) if isinstance(f, hyperframe.HeadersFrame) else -f.error_code
                ends[f.stream_id] = (st, time.time())
    assert sorted(ends) == [1, 3, 5], (ends, r.frames)
    for sid in (1, 3, 5):
        st, t = ends[sid]
        assert st == 408, (sid, st)
        assert 2.5 <= t - starts[sid] < 6, (sid, t - starts[sid])
    assert ends[1][1] <= ends[3][1] <= ends[5][1]
    r.close()


def test_expect_100_continue_over_h2(env):
    """The engine's 100 Continue reaches an HTTP/2 client as an interim
    HEADERS frame; the body follows and the upstream gets no Expect."""
    r = Raw(env)
    r.send(r.headers(1, "/echo", method="POST", extra=[("content-length", "5"), ("expect", "100-continue")],
                     end_stream=False))
    got = r.read(5, lambda f: isinstance(f, hyperframe.HeadersFrame) and f.stream_id == 1)
    heads = [dict(f.headers) for f in got if isinstance(f, hyperframe.HeadersFrame)]
    assert heads and heads[-1][":status"] == "100", heads
    r.send(r.data(1, b"hello"))
    st, h, body, rst = r.response(1)
    assert st == 200, (st, rst)
    d = json.loads(body)
    assert d["body"] == "hello"
    assert "expect" not in [k.lower() for k, v in d["headers"]]
    r.close()


def test_max_forwards_zero_answered_here(env):
    before = len(env.origin.requests)
    r = Raw(env)
    r.send(r.headers(1, "*", method="OPTIONS", extra=[("max-forwards", "0")]))
    st, h, body, rst = r.response(1)
    assert st == 200 and "GET" in dict(h)["allow"], (st, rst)
    r.send(r.headers(3, "/echo", method="TRACE", extra=[("max-forwards", "0")]))
    assert r.response(3)[0] == 405
    r.send(r.headers(5, "/echo", method="OPTIONS", extra=[("max-forwards", "3")]))
    st, h, body, rst = r.response(5)
    assert st == 200, (st, rst)
    assert {k.lower(): v for k, v in json.loads(body)["headers"]}["max-forwards"] == "2"   # one hop less
    r.close()
    assert len(env.origin.requests) == before + 1


@pytest.mark.parametrize("path,authority", [
    ("http://b.test/size/1", "a.test"),      # absolute-form smuggled in :path
    ("size/1", "a.test"),                    # no leading slash
    ("*", "a.test"),                         # asterisk for GET
    ("/size/1", "user@a.test"),              # userinfo in :authority (RFC 9113 8.3.1)
], ids=["absolute-path", "relative-path", "asterisk-get", "userinfo"])
def test_odd_path_and_authority_never_reach_the_origin(env, path, authority):
    """RFC 9113 8.3.1: :path of an http(s) request starts with "/" (or is
    "*" for OPTIONS), :authority carries no userinfo.  Anything else is
    refused (400 or a stream reset), never rebuilt into a request line the
    parser would read another way (an absolute-form naming another host)."""
    before = len(env.origin.requests)
    r = Raw(env)
    r.send(r.headers(1, path, authority=authority))
    st, h, body, rst = r.response(1)
    assert st == 400 or rst is not None, (st, rst)
    r.send(r.headers(3, "/size/1"))
    assert r.response(3)[0] == 200
    r.close()
    assert len(env.origin.requests) == before + 1
