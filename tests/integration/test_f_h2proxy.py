"""HTTP/2 on the HTTPS proxy listener (ALPN h2): absolute requests from
:scheme/:authority/:path with the forward policy per stream, and CONNECT
over HTTP/2 (RFC 9113 8.5): decided like an HTTP/1 CONNECT (auth per stream,
407/403 as HEADERS), then DATA carries the tunnel both ways with flow
control, END_STREAM is a half-close, a broken target connection is
RST_STREAM(CONNECT_ERROR), tunnel_idle applies, a reset tunnel leaves the
others alone.  With TLS inspection on, a CONNECT stream is inspected
(test_f_inspect_tlsproxy.py), never tunnelled uninspected.  Client: python3-h2 over ssl (curl 7.88 has no
--proxy-http2)."""
import base64
import os
import socket
import ssl
import threading
import time

import pytest

import h2.config
import h2.connection
import h2.events
import h2.settings

import gh
from test_f_tlsproxy import certs, log_line, tls_origin

CONNECT_ERROR = 0xa
PROTOCOL_ERROR = 0x1


def conf(port, connect_ports, extra="", mport=0, http2=""):
    return """
admin: { listen = ""; metrics_listen = "127.0.0.1:%d"; };
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
  timeouts: { tunnel_idle = 3.0; upstream_connect = 3.0; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; cert = "@DIR@/proxy.pem"; key = "@DIR@/proxy.key"; %s } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16", "10.9.9.9/32" ];
  dlp: { action = "deny"; detectors = [ "credit_card" ]; };
  connect_ports = [ 443, %s ];
  pac: { proxy = "gw.corp.test:3129"; };
  auth: { realm = "H2 Realm"; users_file = "@DIR@/users"; };
  policy = (
    { name = "no-games"; action = "deny"; domains = [ "games.test" ]; },
    { name = "login"; action = "auth"; domains = [ "private.test" ]; },
    { name = "rest"; action = "allow"; }
  );
  %s
};
""" % (mport, port, http2, ", ".join(str(p) for p in connect_ports), extra)


class Echo:
    """A loopback TCP server: echoes what it gets; "DIE" resets the
    connection (SO_LINGER 0); "BIG n" sends n bytes, counting what the
    kernel took in self.sent."""

    def __init__(self):
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self.conns = 0
        self.sent = 0
        self.eofs = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    self.eofs += 1
                    c.sendall(b"BYE")
                    c.shutdown(socket.SHUT_WR)
                    return
                if d.startswith(b"DIE"):
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    c.close()
                    return
                if d.startswith(b"BIG "):
                    n = int(d.split()[1])
                    chunk = b"b" * 65536
                    while n > 0:
                        k = c.send(chunk[:min(n, len(chunk))])
                        self.sent += k
                        n -= k
                    continue
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


class H2:
    """A python3-h2 client over TLS (ALPN h2) to the proxy."""

    def __init__(self, port, ca, auto_ack=True):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        normalize_outbound_headers=False, validate_inbound_headers=False)
        self.c = h2.connection.H2Connection(cfg)
        self.c.initiate_connection()
        self.auto_ack = auto_ack
        self.st = {}
        self.remote_settings = {}
        self.terminated = None
        self.flush()

    def flush(self):
        d = self.c.data_to_send()
        if d:
            self.sock.sendall(d)

    def s(self, sid):
        return self.st.setdefault(sid, {"headers": None, "data": bytearray(), "ended": False, "reset": None})

    def open(self, headers, end=False):
        sid = self.c.get_next_available_stream_id()
        self.s(sid)
        self.c.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def connect(self, authority, extra=()):
        return self.open([(":method", "CONNECT"), (":authority", authority)] + list(extra))

    def get(self, scheme, authority, path, extra=()):
        return self.open([(":method", "GET"), (":scheme", scheme), (":authority", authority),
                          (":path", path)] + list(extra), end=True)

    def send(self, sid, data, end=False):
        self.c.send_data(sid, data, end_stream=end)
        self.flush()

    def send_all(self, sid, data, end=False, timeout=30):
        """Send data as flow control allows (waiting for WINDOW_UPDATEs)."""
        view = memoryview(data)
        while len(view) > 0:
            self.pump(lambda: self.c.local_flow_control_window(sid) > 0, timeout=timeout)
            n = min(len(view), self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            self.c.send_data(sid, bytes(view[:n]))
            self.flush()
            view = view[n:]
        if end:
            self.send(sid, b"", end=True)

    def status(self, sid):
        h = self.st[sid]["headers"]
        return int(dict(h)[b":status"]) if h else None

    def done(self, sid):
        x = self.st[sid]
        return x["ended"] or x["reset"] is not None

    def pump(self, until, timeout=10.0):
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("h2 client: condition not met; streams %r" %
                                   {k: (v["headers"], len(v["data"]), v["ended"], v["reset"])
                                    for k, v in self.st.items()})
            self.sock.settimeout(min(left, 1.0))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not d:
                raise ConnectionError("proxy closed the connection")
            for ev in self.c.receive_data(d):
                self.event(ev)
            self.flush()

    def event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            self.s(ev.stream_id)["headers"] = ev.headers
        elif isinstance(ev, h2.events.DataReceived):
            self.s(ev.stream_id)["data"] += ev.data
            if self.auto_ack:
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                self.unacked = getattr(self, "unacked", []) + [(ev.flow_controlled_length, ev.stream_id)]
        elif isinstance(ev, h2.events.StreamEnded):
            self.s(ev.stream_id)["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            self.s(ev.stream_id)["reset"] = ev.error_code
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.terminated = ev
            self.goaways = getattr(self, "goaways", []) + [ev.last_stream_id]
            if ev.error_code == 0:
                # a graceful GOAWAY: streams up to last_stream_id go on
                # (RFC 9113 6.8); python3-h2 4.1 would refuse to send on them
                self.c.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    def ack_all(self):
        for n, sid in getattr(self, "unacked", []):
            try:
                self.c.acknowledge_received_data(n, sid)
            except Exception:
                pass
        self.unacked = []
        self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def start(tmp_path, extra="", http2=""):
    d = str(tmp_path)
    ca = certs(d)
    echo = Echo()
    plain = gh.Origin()
    tlso = tls_origin(d)
    dead = gh.free_port()   # nobody listens: (in this test's own namespace)
    port, mport = gh.free_port(), gh.free_port()
    files = {"users": "alice:%s\n" % gh.crypt_hash("wonderland"),
             "hosts": gh.hosts_file(["origin.test", "games.test", "private.test", "bypass.test"])}
    g = gh.Gatehouse(conf(port, (echo.port, plain.port, tlso.port, dead), extra, mport, http2),
                     extra_files=files)
    for n in ("proxy.pem", "proxy.key"):
        with open(os.path.join(d, n), "rb") as src, open(os.path.join(g.dir, n), "wb") as dst:
            dst.write(src.read())
    g.start([port])
    g.port, g.mport, g.ca, g.echo, g.plain, g.tlso, g.dead = port, mport, ca, echo, plain, tlso, dead
    return g


def stop(g):
    g.echo.stop()
    g.plain.stop()
    g.tlso.stop()
    g.check_clean()


@pytest.fixture
def px(netns, tmp_path):
    """The proxy (in the test's own namespace) and an h2 client to it."""
    g = start(tmp_path)
    g.client = H2(g.port, g.ca)
    yield g
    g.client.close()
    stop(g)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_h2_requests_policy_auth_pac(netns, px):
    g, c = px, px.client
    origin = "origin.test:%d" % g.plain.port
    a = c.get("http", origin, "/echo")
    b = c.get("http", "games.test:%d" % g.plain.port, "/x")
    p1 = c.get("http", "private.test:%d" % g.plain.port, "/echo")
    cred = base64.b64encode(b"alice:wonderland").decode()
    p2 = c.get("http", "private.test:%d" % g.plain.port, "/echo", [("proxy-authorization", "Basic " + cred)])
    pac = c.get("https", "localhost:%d" % g.port, "/proxy.pac")
    c.pump(lambda: all(c.done(x) for x in (a, b, p1, p2, pac)))
    # never SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8)
    assert 0x8 not in c.remote_settings and c.remote_settings.get(0x3) == 128
    assert c.status(a) == 200 and b'"target": "/echo"' in c.st[a]["data"]
    assert b'"Via", "2 gatehouse"' in c.st[a]["data"]
    assert c.status(b) == 403 and b"no-games" in c.st[b]["data"]
    assert c.status(p1) == 407
    assert (b"proxy-authenticate", b'Basic realm="H2 Realm"') in c.st[p1]["headers"]
    assert c.status(p2) == 200
    assert c.status(pac) == 200 and b"FindProxyForURL" in c.st[pac]["data"]
    line = log_line(g, '"GET http://%s/echo HTTP/2.0" 200' % origin)
    assert line is not None and 'verdict=allow rule="rest"' in line
    assert log_line(g, '"GET http://private.test:%d/echo HTTP/2.0" 407' % g.plain.port) is not None


def test_h2_connect_tunnels(netns, px):
    g, c = px, px.client
    # a tunnel to a plain origin carries an HTTP/1.1 exchange
    t = c.connect("origin.test:%d" % g.plain.port)
    c.pump(lambda: c.status(t) is not None)
    assert c.status(t) == 200 and (b"content-length", b"0") not in c.st[t]["headers"]
    c.send(t, b"GET /size/5 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
    c.pump(lambda: c.st[t]["data"].endswith(b"xxxxx"))
    assert c.st[t]["data"].startswith(b"HTTP/1.1 200")
    # DATA sent before the 200 waits (within the stream window) for the tunnel
    early = c.connect("origin.test:%d" % g.echo.port)
    c.send(early, b"early bytes")
    c.pump(lambda: bytes(c.st[early]["data"]) == b"early bytes")
    assert c.status(early) == 200
    # END_STREAM is a half-close: the target sees EOF and still answers
    e = c.connect("origin.test:%d" % g.echo.port)
    c.pump(lambda: c.status(e) == 200)
    c.send(e, b"hello ")
    c.pump(lambda: bytes(c.st[e]["data"]) == b"hello ")
    c.send(e, b"world", end=True)
    c.pump(lambda: c.done(e))
    assert c.st[e]["ended"] and c.st[e]["reset"] is None
    assert bytes(c.st[e]["data"]) == b"hello worldBYE"
    # many concurrent tunnels on one connection; one reset leaves the others
    ids = [c.connect("origin.test:%d" % g.echo.port) for _ in range(20)]
    c.pump(lambda: all(c.status(x) == 200 for x in ids))
    c.c.reset_stream(ids[3], 0x8)   # CANCEL
    c.flush()
    for i, x in enumerate(ids):
        if i != 3:
            c.send(x, b"tunnel-%d" % i)
    c.pump(lambda: all(bytes(c.st[x]["data"]) == b"tunnel-%d" % i for i, x in enumerate(ids) if i != 3))
    for i, x in enumerate(ids):
        if i != 3:
            c.send(x, b"", end=True)
    c.pump(lambda: all(c.done(x) for i, x in enumerate(ids) if i != 3))
    assert all(c.st[x]["reset"] is None for i, x in enumerate(ids) if i != 3)
    # a TLS session inside the tunnel (the client's own TLS to the origin)
    s = c.connect("origin.test:%d" % g.tlso.port)
    c.pump(lambda: c.status(s) == 200)
    ctx = ssl.create_default_context(cafile=g.ca)
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inb, outb, server_hostname="origin.test")
    got = 0

    def step():
        # what TLS wrote goes into the stream; what came back feeds TLS
        nonlocal got
        d = outb.read()
        if d:
            c.send(s, d)
        if len(c.st[s]["data"]) == got:
            c.pump(lambda: len(c.st[s]["data"]) > got)
        inb.write(bytes(c.st[s]["data"][got:]))
        got = len(c.st[s]["data"])
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            step()
    tls.write(b"GET /size/3000 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
    body = b""
    while not body.endswith(b"x" * 3000):
        try:
            body += tls.read(65536)
        except ssl.SSLWantReadError:
            step()
    assert body.startswith(b"HTTP/1.1 200")
    line = log_line(g, '"CONNECT origin.test:%d HTTP/2.0" 200' % g.echo.port)
    assert line is not None and "tunnel_done" in line


def test_h2_connect_refusals_and_failures(netns, px):
    g, c = px, px.client
    # CONNECT with :path or :scheme: PROTOCOL_ERROR (RFC 9113 8.5)
    bad1 = c.connect("origin.test:%d" % g.echo.port, [(":path", "/")])
    bad2 = c.connect("origin.test:%d" % g.echo.port, [(":scheme", "https")])
    denied = c.connect("games.test:%d" % g.echo.port)        # policy
    port = c.connect("origin.test:25")                         # connect_ports
    dst = c.connect("10.9.9.9:%d" % g.echo.port)               # deny_destinations
    auth = c.connect("private.test:%d" % g.echo.port)          # auth
    dead = c.connect("origin.test:%d" % g.dead)                # nobody listens
    noport = c.connect("origin.test")                          # host without a port
    good = c.connect("origin.test:%d" % g.echo.port)
    allids = (bad1, bad2, denied, port, dst, auth, dead, noport)
    c.pump(lambda: all(c.done(x) for x in allids) and c.status(good) == 200)
    assert c.st[bad1]["reset"] == PROTOCOL_ERROR and c.st[bad2]["reset"] == PROTOCOL_ERROR
    assert c.status(denied) == 403 and b"no-games" in c.st[denied]["data"]
    assert c.status(port) == 403 and c.status(dst) == 403
    assert c.status(auth) == 407
    assert c.status(dead) == 502
    assert c.status(noport) == 400 or c.st[noport]["reset"] == PROTOCOL_ERROR
    # only the good one reached the target (its accept thread may trail the 200)
    assert wait_for(lambda: g.echo.conns >= 1) and g.echo.conns == 1
    # the target breaks the connection mid-tunnel: CONNECT_ERROR
    c.send(good, b"DIE")
    c.pump(lambda: c.done(good))
    assert c.st[good]["reset"] == CONNECT_ERROR
    # the connection goes on
    ok = c.connect("origin.test:%d" % g.echo.port)
    c.pump(lambda: c.status(ok) == 200)
    c.send(ok, b"still here")
    c.pump(lambda: bytes(c.st[ok]["data"]) == b"still here")
    # tunnel_idle (3 s here): a tunnel without bytes either way is reset
    t0 = time.monotonic()
    c.pump(lambda: c.done(ok), timeout=15)
    assert c.st[ok]["reset"] is not None and time.monotonic() - t0 >= 2.0
    assert log_line(g, '"CONNECT origin.test:%d HTTP/2.0" 502' % g.dead) is not None, g.access_lines()


def test_h2_tunnel_backpressure(netns, tmp_path):
    """The client does not open its window: the proxy stops reading the
    target (what the target could send stays bounded), then all of it
    arrives once the client reads."""
    g = start(tmp_path)
    c = H2(g.port, g.ca, auto_ack=False)
    try:
        total = 24 << 20
        t = c.connect("origin.test:%d" % g.echo.port)
        c.pump(lambda: c.status(t) == 200)
        c.send(t, b"BIG %d" % total)
        c.pump(lambda: len(c.st[t]["data"]) >= 65535 - 100)
        sent = -1
        while sent != g.echo.sent:   # until the target is stuck
            sent = g.echo.sent
            time.sleep(0.5)
        assert len(c.st[t]["data"]) <= 65535
        assert g.echo.sent < total // 2, g.echo.sent
        c.auto_ack = True
        c.ack_all()
        c.pump(lambda: len(c.st[t]["data"]) >= total, timeout=120)
        assert len(c.st[t]["data"]) == total
    finally:
        c.close()
        stop(g)


def test_h2_connect_with_inspection_never_tunnelled_uninspected(netns, tmp_path):
    # (was: refused with 501; inspected streams now work, see
    # test_f_inspect_tlsproxy.py.)  Bytes that are no ClientHello on an
    # inspected stream end it: nothing reaches the target uninspected, even
    # for a bypass_domains name (the bypass is decided on the ClientHello too)
    g = start(tmp_path, extra='inspect: { mode = "all"; bypass_domains = [ "bypass.test" ]; };')
    c = H2(g.port, g.ca)
    try:
        x = c.connect("origin.test:%d" % g.tlso.port)
        y = c.connect("bypass.test:%d" % g.echo.port)
        c.pump(lambda: c.status(x) is not None and c.status(y) is not None)
        assert c.status(x) == 200 and c.status(y) == 200
        c.send(x, b"GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        c.send(y, b"HELLO echo\r\n\r\n")
        c.pump(lambda: c.done(x) and c.done(y))
        line = log_line(g, '"CONNECT origin.test:%d HTTP/2.0" 400' % g.tlso.port)
        assert line is not None and "client hello" in line, line
        assert g.tlso.connections == 0 and g.echo.conns == 0
        assert bytes(c.st[y]["data"]) == b""
        # plain requests on the same connection are served
        z = c.get("http", "origin.test:%d" % g.plain.port, "/size/4")
        c.pump(lambda: c.done(z))
        assert c.status(z) == 200 and bytes(c.st[z]["data"]) == b"xxxx"
    finally:
        c.close()
        stop(g)


def test_h2_bodies_dlp_upload_counters(netns, px):
    g, c = px, px.client
    origin = "origin.test:%d" % g.plain.port
    # a request body over h2 through the proxy; DLP reads it per stream
    post = [(":method", "POST"), (":scheme", "http"), (":authority", origin), (":path", "/echo")]
    a = c.open(post)
    c.send_all(a, b"a" * 200000, end=True)
    b = c.open(post)
    c.send(b, b"pay 4111 1111 1111 1111 now", end=True)
    c.pump(lambda: c.done(a) and c.done(b))
    assert c.status(a) == 200 and b'"nbytes": 200000' in c.st[a]["data"]
    assert c.status(b) == 403 and b"credit_card" in c.st[b]["data"]
    assert len(g.plain.requests) == 1
    # 4 MB up a tunnel and back (the echo target): the window reopens as
    # the target takes the bytes, and every byte arrives in order
    t = c.connect("origin.test:%d" % g.echo.port)
    c.pump(lambda: c.status(t) == 200)
    data = bytes(range(256)) * (16 << 10)
    c.send_all(t, data)
    c.pump(lambda: len(c.st[t]["data"]) >= len(data), timeout=60)
    assert bytes(c.st[t]["data"]) == data
    m = gh.metrics(g.mport)
    assert m['gatehouse_h2_connections_total{family="forward"}'] >= 1
    assert m['gatehouse_h2_streams_total{family="forward"}'] >= 3
    assert m['gatehouse_tunnels_total{family="forward"}'] >= 1


def test_h2_upload_into_stalled_target_is_flow_controlled(netns, tmp_path):
    """A target that never reads: the proxy queues at most its own buffer
    plus the stream window; the client's window stays closed."""
    g = start(tmp_path)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.bind(("127.0.0.1", g.dead))   # the configured dead port, now listening and never reading
    stuck.listen(1)
    c = H2(g.port, g.ca)
    try:
        t = c.connect("origin.test:%d" % g.dead)
        c.pump(lambda: c.status(t) == 200)
        sent, chunk = 0, b"s" * 16384
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if c.c.local_flow_control_window(t) < len(chunk):
                try:
                    c.pump(lambda: c.c.local_flow_control_window(t) >= len(chunk), timeout=3)
                except TimeoutError:
                    break   # the window stayed closed: flow control holds the client
            c.send(t, chunk)
            sent += len(chunk)
        assert time.monotonic() < end, "the proxy kept taking data from the client"
        # bounded by kernel buffers + the proxy's queue (HIWAT) + one window
        assert sent < 16 << 20, sent
        print("stalled after %d bytes" % sent)
        if not c.done(t):   # (tunnel_idle may have reset it by now)
            c.c.reset_stream(t, 0x8)
            c.flush()
        ok = c.get("http", "origin.test:%d" % g.plain.port, "/size/2")
        c.pump(lambda: c.done(ok))
        assert c.status(ok) == 200
    finally:
        c.close()
        stuck.close()
        stop(g)


def test_h2_off_on_forward_tls_listener(netns, tmp_path):
    g = start(tmp_path, http2="http2 = false;")
    try:
        ctx = ssl.create_default_context(cafile=g.ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", g.port), timeout=5),
                            server_hostname="localhost")
        assert s.selected_alpn_protocol() == "http/1.1"
        s.close()
    finally:
        stop(g)


def test_h2_connect_through_a_parent(netns, tmp_path):
    """A CONNECT stream chained to a parent proxy (a second gatehouse): the
    tunnel works through it; the parent's refusal is a 502 to the stream."""
    pport = gh.free_port()
    g = None
    parent = gh.Gatehouse("""
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ @ECHO@ ];
  policy = ( { name = "parent-no"; action = "deny"; domains = [ "bypass.test" ]; },
             { name = "rest"; action = "allow"; } );
};
""" % pport)
    try:
        g = start(tmp_path, extra='parent: { address = "127.0.0.1:%d"; };' % pport)
        parent.write_conf(open(parent.conf).read().replace("@ECHO@", str(g.echo.port)))
        parent.start([pport])
        c = H2(g.port, g.ca)
        try:
            t = c.connect("127.0.0.1:%d" % g.echo.port)
            n = c.connect("bypass.test:%d" % g.echo.port)
            c.pump(lambda: c.status(t) is not None and c.done(n))
            assert c.status(t) == 200 and c.status(n) == 502
            c.send(t, b"via the parent", end=True)
            c.pump(lambda: c.done(t))
            assert bytes(c.st[t]["data"]) == b"via the parentBYE" and c.st[t]["reset"] is None
        finally:
            c.close()
        assert log_line(parent, '"CONNECT 127.0.0.1:%d HTTP/1.1" 200' % g.echo.port) is not None
    finally:
        if g is not None:
            stop(g)
        parent.check_clean()


def test_h2_tunnel_survives_graceful_stop_notice(netns, tmp_path):
    """SIGTERM with a tunnel open: GOAWAY tells the client, the tunnel in
    flight still carries bytes both ways, and once it ends the process
    exits cleanly."""
    import signal
    g = start(tmp_path)
    c = H2(g.port, g.ca)
    try:
        t = c.connect("origin.test:%d" % g.echo.port)
        c.pump(lambda: c.status(t) == 200)
        g.signal(signal.SIGTERM)
        # the notice (2^31-1), then the real last stream id after a PING
        c.pump(lambda: t in getattr(c, "goaways", []))
        c.send(t, b"after goaway")
        c.pump(lambda: bytes(c.st[t]["data"]) == b"after goaway")
        c.send(t, b"", end=True)
        c.pump(lambda: c.done(t))
        assert c.st[t]["reset"] is None and bytes(c.st[t]["data"]) == b"after goawayBYE"
        assert wait_for(lambda: g.proc.poll() is not None, timeout=15)
    finally:
        c.close()
        stop(g)


def test_h2_odd_path_and_authority_never_reach_a_target(netns, px):
    """A proxy stream's :path and :authority are rebuilt into an
    absolute-form request line: a :path that is not origin-form ("@host",
    an absolute URL, no leading slash) or an :authority with userinfo could
    make that line name another host than :authority does.  Each is refused
    (400 or a reset) and reaches no origin, the denied games.test least of
    all; a plain request on the same connection still works."""
    g, c = px, px.client
    o = "origin.test:%d" % g.plain.port
    games = "games.test:%d" % g.plain.port
    before = len(g.plain.requests)
    odd = [c.get("http", o, "@" + games + "/x"), c.get("http", o, "http://" + games + "/x"),
           c.get("http", o, "x"), c.get("http", "x@" + games, "/x"), c.get("http", o + "@" + games, "/x")]
    c.pump(lambda: all(c.done(x) for x in odd))
    for sid in odd:
        assert c.status(sid) == 400 or c.st[sid]["reset"] is not None, (sid, c.status(sid), c.st[sid])
    ok = c.get("http", o, "/echo")
    c.pump(lambda: c.done(ok))
    assert c.status(ok) == 200
    assert len(g.plain.requests) == before + 1
