"""HTTP/2 upstream gaps (core/h2_client.c): PING liveness of idle upstream
sessions (an origin that stops answering on its open connection, as after
a dropped route: no FIN), the access log naming the upstream protocol, and
trailers the gateway relays (or drops) between HTTP/1.1 / HTTP/2 clients
and h2 upstreams.  The origin is python3-h2 on loopback; clients are curl,
nghttp and python3-h2."""
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import gh

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class Origin:
    """An h2c origin (prior knowledge).  Counts connections and PINGs.
    freeze(): every connection open now stops reading and writing while
    staying open (its peer 'vanished'); new connections are served.
    Paths: /echo (the request body back; its trailers as x-req-trailer-*
    response headers, and x-req-cl its content-length), /cltr (a body with
    content-length, then trailers: allowed and forbidden ones), anything
    else: the path as the body (with content-length)."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = 0
        self.pings = 0
        self.requests = []
        self.frozen = set()     # connection numbers that no longer answer
        self.unread = {}        # frozen connection -> frame types waiting in its socket
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self):
        with self.lock:
            self.frozen.update(range(1, self.conns + 1))

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._serve, args=(s, n), daemon=True).start()

    def _serve(self, s, n):
        try:
            c = h2.connection.H2Connection(config=h2.config.H2Configuration(
                client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False))
            c.initiate_connection()
            s.sendall(c.data_to_send())
            reqs = {}
            s.settimeout(0.05)
            while not self.stopping:
                with self.lock:
                    frozen = n in self.frozen
                if frozen:
                    # holds the socket: no FIN, no answer; notes the
                    # frame types that arrive without reading them
                    try:
                        b = s.recv(65536, socket.MSG_PEEK)
                    except socket.timeout:
                        b = b""
                    types, i = set(), 0
                    while i + 9 <= len(b):
                        types.add(b[i + 3])
                        i += 9 + int.from_bytes(b[i:i + 3], "big")
                    with self.lock:
                        self.unread[n] = types
                    time.sleep(0.05)
                    continue
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.PingReceived):
                        with self.lock:
                            self.pings += 1
                    elif isinstance(ev, h2.events.RequestReceived):
                        reqs[ev.stream_id] = {"h": dict(ev.headers), "body": b"", "tr": []}
                    elif isinstance(ev, h2.events.DataReceived):
                        reqs[ev.stream_id]["body"] += ev.data
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        reqs[ev.stream_id]["tr"] = list(ev.headers)
                    elif isinstance(ev, h2.events.StreamEnded):
                        r = reqs.pop(ev.stream_id)
                        with self.lock:
                            self.requests.append(r)
                        self._answer(c, ev.stream_id, r)
                s.sendall(c.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            s.close()

    def _answer(self, c, sid, r):
        path = r["h"][b":path"].decode()
        if path.startswith("/echo"):
            hd = [(":status", "200"), ("content-length", str(len(r["body"])))]
            hd += [("x-req-trailer-" + k.decode(), v.decode()) for k, v in r["tr"]]
            hd.append(("x-req-cl", r["h"].get(b"content-length", b"-").decode()))
            c.send_headers(sid, hd)
            c.send_data(sid, r["body"], end_stream=True)
        elif path.startswith("/cltr"):
            c.send_headers(sid, [(":status", "200"), ("content-length", "11"), ("content-type", "text/plain")])
            c.send_data(sid, b"hello world")
            c.send_headers(sid, [("x-checksum", "c0ffee"), ("set-cookie", "a=b"), ("authorization", "x"),
                                 ("x-final", "yes")], end_stream=True)
        else:
            body = path.encode()
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
            c.send_data(sid, body, end_stream=True)

    def stop(self):
        self.stopping = True
        self.ls.close()


CONF = """@GLOBAL@
  timeouts: { upstream_connect = 2; upstream_response = 3; };
};
reverse: {
  listeners = ( { address = "127.0.0.1:%(port)d"; h2c = true; } );
  upstreams = (
    { name = "ping"; protocol = "h2"; h2_ping_interval = 0.5; h2_ping_timeout = 1;
      servers = ( { address = "127.0.0.1:%(po)d"; } ); },
    { name = "probe"; protocol = "h2"; h2_ping_interval = 0.5; h2_ping_timeout = 8;
      servers = ( { address = "127.0.0.1:%(pp)d"; } ); },
    { name = "noping"; protocol = "h2"; h2_ping_interval = 0;
      servers = ( { address = "127.0.0.1:%(pn)d"; } ); },
    { name = "tr"; protocol = "h2"; servers = ( { address = "127.0.0.1:%(pt)d"; } ); },
    { name = "h1"; servers = ( { address = "127.0.0.1:%(p1)d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = (
      { path = "/ping/"; upstream = "ping"; },
      { path = "/noping/"; upstream = "noping"; },
      { path = "/probe/"; upstream = "probe"; },
      { path = "/h1/"; upstream = "h1"; },
      { path = "/"; upstream = "tr"; } ); } );
};
"""


@pytest.fixture(scope="module")
def env():
    po, pn, pt, pp = Origin(), Origin(), Origin(), Origin()
    o1 = gh.Origin()
    port = gh.free_port()
    g = gh.Gatehouse(CONF % {"port": port, "po": po.port, "pn": pn.port, "pt": pt.port, "pp": pp.port, "p1": o1.port})
    g.start([port])
    g.port, g.po, g.pn, g.pt, g.pp, g.o1 = port, po, pn, pt, pp, o1
    yield g
    g.check_clean()
    for o in (po, pn, pt, pp):
        o.stop()
    o1.stop()


def get(g, path, *args, timeout=20):
    return gh.curl("-s", "-S", "-m", "15", *args, "http://127.0.0.1:%d%s" % (g.port, path), timeout=timeout)


def wait_for(cond, timeout=15.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---- PING liveness ----

def test_idle_session_answering_pings_is_kept(env):
    """A live origin answers the PINGs of an idle session: the session is
    kept (one connection) through several intervals."""
    o = env.po
    rc, out, err = get(env, "/ping/a")
    assert rc == 0 and out == b"/ping/a", err
    before = o.pings
    assert wait_for(lambda: o.pings >= before + 3, timeout=15), (before, o.pings)
    rc, out, err = get(env, "/ping/b")
    assert rc == 0 and out == b"/ping/b", err
    assert o.conns == 1


def test_vanished_peer_found_by_ping(env):
    """The origin stops answering on its open connection (no FIN): the
    unanswered PING closes the session, and the next request goes to a new
    connection at once instead of hanging on the dead one."""
    o = env.po
    rc, out, err = get(env, "/ping/warm")
    assert rc == 0, err
    conns = o.conns
    o.freeze()
    assert wait_for(lambda: "no answer to PING within 1.0 s" in env.stderr(), timeout=15), env.stderr()[-2000:]
    t0 = time.monotonic()
    rc, out, err = get(env, "/ping/after")
    assert rc == 0 and out == b"/ping/after", err
    assert time.monotonic() - t0 < 2.5
    assert o.conns == conns + 1


def test_session_being_probed_takes_no_new_request(env):
    """While a silent session's PING is unanswered (its timeout here is
    8 s), a new request does not join it: it opens a new connection and
    is answered at once."""
    o = env.pp
    rc, out, err = get(env, "/probe/warm")
    assert rc == 0, err
    o.freeze()
    # a PING (frame type 6) reached the frozen connection, unanswered
    assert wait_for(lambda: 6 in o.unread.get(1, ()), timeout=15), o.unread
    t0 = time.monotonic()
    rc, out, err = get(env, "/probe/after")
    assert rc == 0 and out == b"/probe/after", err
    assert time.monotonic() - t0 < 2.5
    assert o.conns == 2


def test_without_ping_the_dead_session_hangs(env):
    """The control: with h2_ping_interval = 0 the same vanished peer keeps
    its session, so the request is queued on it and waits out the
    upstream response timeout (504)."""
    o = env.pn
    rc, out, err = get(env, "/noping/warm")
    assert rc == 0, err
    o.freeze()
    time.sleep(2.0)   # (what the PING test needed to find it: nothing happens here)
    t0 = time.monotonic()
    rc, out, err = get(env, "/noping/after", "-o", "/dev/null", "-w", "%{http_code}")
    assert out == b"504", (out, err)
    assert time.monotonic() - t0 >= 2.5
    assert o.conns == 1


def test_bad_ping_keys_are_config_errors(tmp_path):
    for bad, msg in (('h2_ping_interval = 0.01;', "h2_ping_interval: must be 0 (off) or at least 0.1 seconds"),
                     ('h2_ping_interval = -1;', "h2_ping_interval"),
                     ('h2_ping_timeout = 0;', "h2_ping_timeout"),
                     ('h2_ping_timeout = "x";', "h2_ping_timeout")):
        p = tmp_path / "g.conf"
        p.write_text('reverse: {\n  listeners = ( { address = "127.0.0.1:1"; } );\n'
                     '  upstreams = ( { name = "u"; protocol = "h2";\n    %s\n'
                     '    servers = ( { address = "127.0.0.1:2"; } ); } );\n'
                     '  sites = ( { hosts = [ "a" ]; routes = ( { path = "/"; upstream = "u"; } ); } );\n};\n' % bad)
        r = subprocess.run([gh.BIN, "-t", "-c", str(p)], capture_output=True, text=True, timeout=20)
        assert r.returncode != 0, bad
        assert "%s:4: " % p in r.stderr and msg in r.stderr, (bad, r.stderr)


# ---- access log: the upstream protocol ----

def test_access_log_names_the_upstream_protocol(env):
    rc, out, err = get(env, "/log-h2")
    assert rc == 0, err
    rc, out, err = get(env, "/h1/log-h1")
    assert rc == 0, err
    assert wait_for(lambda: gh.access_line_for(env, "/h1/log-h1", wait=0) is not None)
    assert wait_for(lambda: gh.access_line_for(env, "/log-h2", wait=0) is not None)
    l2 = gh.access_line_for(env, "/log-h2", wait=0)
    l1 = gh.access_line_for(env, "/h1/log-h1", wait=0)
    assert l2.endswith(' upproto=h2'), l2
    assert "upproto" not in l1 and l1.endswith('host="127.0.0.1:%d"' % env.port), l1


# ---- trailers ----

def h2c_exchange(g, path, headers=(), body=None, trailers=None, pause=0.0):
    """One request over h2c (prior knowledge) with python3-h2: the body,
    then after pause seconds the trailers (a separate write).  Returns
    (response headers, body, response trailers)."""
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST" if body is not None else "GET"), (":path", path), (":scheme", "http"),
                       (":authority", "a.test")] + list(headers), end_stream=body is None)
    if body is not None:
        c.send_data(1, body, end_stream=trailers is None)
    s.sendall(c.data_to_send())
    if trailers is not None:
        time.sleep(pause)
        c.send_headers(1, trailers, end_stream=True)
        s.sendall(c.data_to_send())
    hd, data, tr, done = {}, b"", {}, False
    end = time.monotonic() + 15
    while not done and time.monotonic() < end:
        b = s.recv(65536)
        if not b:
            break
        for ev in c.receive_data(b):
            if isinstance(ev, h2.events.ResponseReceived):
                hd = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.TrailersReceived):
                tr = dict(ev.headers)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    assert done, (hd, data)
    return hd, data, tr


def test_h2_request_trailers_after_a_content_length_body(env):
    """An h2 client sends content-length, the whole body, and its trailers
    only later: the h2 upstream's END_STREAM waits for them, so they
    arrive; a field not allowed in trailers (authorization) is dropped."""
    hd, data, tr = h2c_exchange(env, "/echo/cl", headers=[("content-length", "7"), ("te", "trailers")],
                                body=b"payload", trailers=[("x-sum", "42"), ("authorization", "Basic eDp5")],
                                pause=0.5)
    assert hd.get(b":status") == b"200" and data == b"payload", (hd, data)
    assert hd.get(b"x-req-trailer-x-sum") == b"42", hd
    assert hd.get(b"x-req-cl") == b"7", hd
    assert b"x-req-trailer-authorization" not in hd, hd
    r = env.pt.requests[-1]
    assert r["tr"] == [(b"x-sum", b"42")], r["tr"]


def test_response_trailers_with_content_length(env):
    """The h2 origin answers with content-length + trailers.  An HTTP/1.1
    client that said TE: trailers gets the body chunked with the allowed
    trailers in the last chunk (set-cookie and authorization trailers
    dropped, never headers; a content-length trailer nghttp2 itself refuses
    as malformed); one that did not keeps the content-length and
    gets none; an h2 client gets them as HEADERS."""
    rc, out, err = gh.curl("-s", "-S", "--raw", "-D", "-", "-H", "TE: trailers", "--http1.1",
                           "http://127.0.0.1:%d/cltr" % env.port)
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), out
    assert b"content-length" not in head.lower(), out
    assert body == b"b\r\nhello world\r\n0\r\nx-checksum: c0ffee\r\nx-final: yes\r\n\r\n", out
    rc, out, err = gh.curl("-s", "-S", "--raw", "-D", "-", "--http1.1", "http://127.0.0.1:%d/cltr" % env.port)
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"content-length: 11" in head.lower() and body == b"hello world", out
    hd, data, tr = h2c_exchange(env, "/cltr")
    assert data == b"hello world" and hd.get(b"content-length") == b"11", hd
    assert tr == {b"x-checksum": b"c0ffee", b"x-final": b"yes"}, tr


def test_http1_chunked_request_trailers_to_h2_upstream(env):
    """An HTTP/1.1 client's chunked body with trailers (a gRPC-web style
    client): the allowed trailers reach the h2 upstream as a trailer
    HEADERS frame (names lower-cased), Authorization and Content-Length
    trailers are dropped and never become headers."""
    req = (b"POST /echo/ck HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"3\r\npay\r\n4\r\nload\r\n0\r\nX-Grpc-Sum:  42 \r\nAuthorization: Basic eDp5\r\n"
           b"Content-Length: 99\r\nx-final: yes\r\n\r\n")
    out = gh.raw_exchange(env.port, req, read_timeout=10, shutdown=False)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), out
    assert body == b"payload", out
    low = head.lower()
    assert b"x-req-trailer-x-grpc-sum: 42\r\n" in low and b"x-req-trailer-x-final: yes" in low, out
    assert b"x-req-trailer-authorization" not in low and b"x-req-trailer-content-length" not in low, out
    assert b"x-req-cl: -" in low, out
    r = [x for x in env.pt.requests if x["h"][b":path"] == b"/echo/ck"][-1]
    assert r["tr"] == [(b"x-grpc-sum", b"42"), (b"x-final", b"yes")], r["tr"]
    assert b"authorization" not in r["h"], r["h"]


def test_json_access_log_names_the_upstream_protocol(env):
    """access_format = "json": upstream_protocol is "h2", "http1.1", or ""
    when the request went to no upstream (a redirect)."""
    port = gh.free_port()
    conf = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; access_format = "json"; };
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "tr"; protocol = "h2"; servers = ( { address = "127.0.0.1:%d"; } ); },
    { name = "h1"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = (
      { path = "/h1/"; upstream = "h1"; strip_prefix = true; },
      { path = "/go/"; redirect = "https://elsewhere.test/"; },
      { path = "/"; upstream = "tr"; } ); } );
};
""" % (port, env.pt.port, env.o1.port)
    g = gh.Gatehouse(conf).start([port])
    try:
        for p, st in (("/j-h2", b"200"), ("/h1/size/3", b"200"), ("/go/j-none", b"302")):
            rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d%s" % (port, p))
            assert out == st, (p, out, err)
        got = {}
        def three():
            for l in g.access_lines(wait=0):
                d = json.loads(l)
                got[d["target"]] = d.get("upstream_protocol")
            return len(got) >= 3
        assert wait_for(three), got
        assert got == {"/j-h2": "h2", "/h1/size/3": "http1.1", "/go/j-none": ""}, got
    finally:
        g.check_clean()
