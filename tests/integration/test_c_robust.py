"""Core robustness: timeouts, broken origins, strict parsing, big bodies,
reload and shutdown."""
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

import gh


def conf(fport, rport, origin_port, timeouts=""):
    return """
@GLOBAL@ timeouts: { %s }; };
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [];
  connect_ports = [ 443 ];
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; } ); } );
};
""" % (timeouts, fport, rport, origin_port)


@pytest.fixture
def gw(origin, ports):
    g = gh.Gatehouse(conf(ports[0], ports[1], origin.port,
                          "client_header = 1.0; upstream_response = 1.5; client_idle = 5.0;"))
    g.start([ports[0], ports[1]])
    g.fport, g.rport = ports[0], ports[1]
    g.rurl = "http://127.0.0.1:%d" % ports[1]
    yield g
    g.check_clean()


@pytest.fixture
def gw_bulk(origin, ports):
    """For the 1 GiB transfers: the default send timeout (client_idle), since
    a loaded machine can starve curl for more than the 5 s of `gw`, and these
    tests are about memory, not timeouts."""
    g = gh.Gatehouse(conf(ports[0], ports[1], origin.port, ""))
    g.start([ports[0], ports[1]])
    g.rurl = "http://127.0.0.1:%d" % ports[1]
    yield g
    g.check_clean()


def test_slowloris_closed_by_client_header(gw):
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    data = b""
    while True:
        try:
            b = s.recv(4096)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
        s.sendall(b"X-a: b\r\n") if False else None
    took = time.time() - t0
    assert 0.8 < took < 3.0
    assert data.startswith(b"HTTP/1.1 408")


def test_slowloris_trickle_still_closed(gw):
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    t0 = time.time()
    closed = False
    for i in range(40):
        try:
            s.sendall(b"X-%d: y\r\n" % i if i else b"GET / HTTP/1.1\r\nHost: x\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.1)
    assert closed or time.time() - t0 < 5
    s.settimeout(2)
    try:
        data = s.recv(4096)
        assert data == b"" or data.startswith(b"HTTP/1.1 408")
    except (ConnectionResetError, socket.timeout):
        pass


def test_origin_silent_gives_504(gw):
    t0 = time.time()
    st = gh.curl_status(gw.rurl + "/silent")
    assert st == 504
    assert time.time() - t0 < 4


def test_origin_garbage_gives_502(gw):
    assert gh.curl_status(gw.rurl + "/garbage") == 502


def test_origin_refused_gives_502_fast(ports, origin):
    dead = gh.free_port()
    g = gh.Gatehouse(conf(ports[0], ports[1], dead)).start([ports[1]])
    try:
        t0 = time.time()
        assert gh.curl_status("http://127.0.0.1:%d/" % ports[1]) == 502
        assert time.time() - t0 < 1.0
    finally:
        g.check_clean()


def test_origin_reset_mid_body(gw):
    rc, out, err = gh.curl(gw.rurl + "/reset-mid-body")
    assert rc != 0  # the client sees a truncated transfer, never a complete one
    assert len(out) < 100000


def test_origin_short_body(gw):
    rc, out, err = gh.curl(gw.rurl + "/short-body")
    assert rc == 18 and len(out) == 100   # curl: partial file


def test_gateway_keeps_serving_after_errors(gw):
    for p in ("/garbage", "/reset-mid-body", "/short-body"):
        gh.curl(gw.rurl + p)
    rc, out, _ = gh.curl(gw.rurl + "/size/3")
    assert out == b"xxx"


@pytest.mark.parametrize("raw,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET http://u:p@x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
], ids=lambda v: None if isinstance(v, bytes) else str(v))
def test_malformed_requests_rejected(gw, origin, raw, status):
    resp = gh.raw_exchange(gw.rport, raw)
    assert resp.startswith(b"HTTP/1.1 %d" % status), resp[:200]
    assert b"Connection: close" in resp
    assert origin.requests == []


def test_smuggling_no_second_request_reaches_origin(gw, origin):
    # CL.TE: a proxy that used CL would forward the smuggled request in the body
    raw = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    gh.raw_exchange(gw.rport, raw)
    time.sleep(0.2)
    assert b"/smuggled" not in bytes(origin.raw)
    assert origin.requests == []


def test_chunked_request_with_bad_framing(gw, origin):
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"zz\r\nhello\r\n0\r\n\r\n")
    resp = gh.raw_exchange(gw.rport, raw)
    assert resp.startswith(b"HTTP/1.1 400")


def test_big_download_streams_with_bounded_memory(gw_bulk):
    gw = gw_bulk
    size = 1 << 30
    with gh.PeakRss(gw.proc.pid) as m:
        rc, out, err = gh.curl("-o", "/dev/null", "-w", "%{size_download}",
                               gw.rurl + "/stream/%d" % size, timeout=120)
    assert rc == 0, err
    assert int(out) == size
    print("1 GiB download: RSS %d kB -> peak %d kB (+%d kB)" % (m.start, m.peak, m.grow_kb))
    assert gh.SANITIZED or m.grow_kb < 10 * 1024


def test_big_upload_streams_with_bounded_memory(gw_bulk):
    gw = gw_bulk
    size = 1 << 30
    with gh.PeakRss(gw.proc.pid) as m:
        p = subprocess.Popen(["curl", "-sS", "--max-time", "120", "-T", "-", "-H", "Expect:",
                              gw.rurl + "/upload"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        block = b"u" * (1 << 20)
        for _ in range(size >> 20):
            p.stdin.write(block)
        p.stdin.close()
        out = p.stdout.read()
        p.wait()
    assert out == b"%d" % size
    print("1 GiB upload: RSS %d kB -> peak %d kB (+%d kB)" % (m.start, m.peak, m.grow_kb))
    assert gh.SANITIZED or m.grow_kb < 10 * 1024


def test_reload_under_load_zero_failures(gw, origin):
    stop = threading.Event()
    results = {"ok": 0, "bad": 0}

    def load():
        while not stop.is_set():
            rc, out, err = gh.curl(gw.rurl + "/size/100", timeout=10)
            if rc == 0 and out == b"x" * 100:
                results["ok"] += 1
            else:
                results["bad"] += 1
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(5):
        time.sleep(0.3)
        gw.reload(settle=0.1)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert results["bad"] == 0, results
    assert results["ok"] > 20
    assert gw.stderr().count("loaded") >= 5


def test_reload_with_bad_config_keeps_serving(gw, origin):
    good = open(gw.conf).read()
    with open(gw.conf, "w") as f:
        f.write(good + "\nbogus_section: { x = 1; };\n")
    gw.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gh.curl(gw.rurl + "/size/2")[1] == b"xx"
    err = gw.stderr()
    assert "reload failed" in err and "bogus_section" in err
    with open(gw.conf, "w") as f:
        f.write(good)


@pytest.mark.parametrize("tail,why", [
    # libconfig's scanner exit()s on a directory; the NUL hid the @include from
    # the guard that refuses it (found by fuzz_config)
    (b"\n\x00\n@include \"\"\n", "a NUL byte in the file"),
    (b"\n@include \"\"\n", "not a regular file"),
    (b"\nx = \"unterminated\n", "syntax"),
])
def test_reload_with_hostile_config_bytes_keeps_serving(gw, origin, tail, why):
    good = open(gw.conf, "rb").read()
    with open(gw.conf, "wb") as f:
        f.write(good + tail)
    try:
        gw.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gw.proc.poll() is None, "gatehouse exited on a bad config"
        assert gh.curl(gw.rurl + "/size/2")[1] == b"xx"
        err = gw.stderr()
        assert "reload failed" in err and why in err, err[-2000:]
    finally:
        with open(gw.conf, "wb") as f:
            f.write(good)


def test_reload_adds_and_removes_listener_without_dropping_connections(gw, origin, ports):
    # an open keep-alive connection survives a reload that removes the forward listener
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    s.sendall(b"GET /size/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).endswith(b"x")
    new = open(gw.conf).read().replace("127.0.0.1:%d" % gw.fport, "127.0.0.1:%d" % ports[2])
    with open(gw.conf, "w") as f:
        f.write(new)
    gw.signal(signal.SIGHUP)
    assert gh.wait_port(ports[2], timeout=3)
    time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gw.fport), timeout=1)
    s.sendall(b"GET /size/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).endswith(b"xx")
    s.close()


def test_reload_removing_a_listener_closes_its_connections(gw, origin, ports):
    # as nginx's old workers on reload: an idle keep-alive client of the
    # removed listener is closed at once; one with a request under way gets
    # its answer with Connection: close, then the close; the other
    # listener's clients are untouched
    fwd = "GET http://127.0.0.1:%d/size/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (
        origin.port, origin.port)
    idle = socket.create_connection(("127.0.0.1", gw.fport), timeout=5)
    idle.sendall(fwd.encode())
    assert gh.recv_response(idle).endswith(b"\r\n\r\nx")
    busy = socket.create_connection(("127.0.0.1", gw.fport), timeout=5)
    busy.sendall(("GET http://127.0.0.1:%d/slow/1.0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                  % (origin.port, origin.port)).encode())
    other = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    other.sendall(b"GET /size/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert gh.recv_response(other).endswith(b"\r\n\r\nx")
    time.sleep(0.2)
    t0 = time.time()
    gw.reload(open(gw.conf).read().replace("127.0.0.1:%d" % gw.fport, "127.0.0.1:%d" % ports[2]),
              settle=0)
    idle.settimeout(3)
    assert idle.recv(1) == b"" and time.time() - t0 < 2.0
    resp = gh.recv_response(busy, timeout=5)
    assert resp.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close\r\n" in resp
    assert resp.endswith(b"slow done\n")
    busy.settimeout(3)
    assert busy.recv(1) == b""
    other.sendall(b"GET /size/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert gh.recv_response(other).endswith(b"\r\n\r\nxx")
    for s in (idle, busy, other):
        s.close()


def test_reload_moves_open_keepalive_connection_to_new_routes(gw, origin, origin2):
    # the next request on a connection opened before the reload follows the
    # new route (here: to another upstream server)
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    s.sendall(b"GET /size/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).endswith(b"x")
    n1, n2 = len(origin.requests), len(origin2.requests)
    gw.reload(open(gw.conf).read().replace("127.0.0.1:%d" % origin.port,
                                           "127.0.0.1:%d" % origin2.port))
    s.sendall(b"GET /size/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).endswith(b"xx")
    assert len(origin.requests) == n1 and len(origin2.requests) == n2 + 1
    s.close()


def test_sigterm_lets_inflight_finish(origin, ports):
    g = gh.Gatehouse(conf(ports[0], ports[1], origin.port, "shutdown_grace = 5.0;")).start([ports[1]])
    res = {}

    def slow():
        res["r"] = gh.curl("http://127.0.0.1:%d/slow/1" % ports[1])
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    g.signal(signal.SIGTERM)
    time.sleep(0.2)
    # no new connections once stopping
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports[1]), timeout=1)
    t.join()
    assert res["r"][1] == b"slow done\n"
    g.proc.wait(10)
    assert time.time() - t0 < 4
    g.check_clean()


def test_sigterm_grace_expires(origin, ports):
    g = gh.Gatehouse(conf(ports[0], ports[1], origin.port,
                          "shutdown_grace = 0.5; upstream_response = 30.0;")).start([ports[1]])
    t = threading.Thread(target=lambda: gh.curl("http://127.0.0.1:%d/silent" % ports[1]))
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    g.signal(signal.SIGTERM)
    g.proc.wait(10)
    assert time.time() - t0 < 3
    t.join()
    g.check_clean()


def test_usr1_reopens_access_log(gw, origin):
    import os
    gh.curl(gw.rurl + "/size/1")
    time.sleep(0.5)
    os.rename(gw.access, gw.access + ".1")
    gw.signal(signal.SIGUSR1)
    time.sleep(0.2)
    gh.curl(gw.rurl + "/size/2")
    lines = gw.access_lines()
    assert len(lines) == 1 and "/size/2" in lines[0]


def test_idle_keepalive_connection_resumes(gw):
    """An idle keep-alive connection gives its buffers back between requests
    (and makes its write event only when a write first blocks): keep-alive,
    split heads, pipelining, a large slow-read response and the header and
    idle timeouts must all behave as on a fresh connection."""
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=5)
    get = b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(get % 3)
    assert gh.recv_response(s).endswith(b"\r\n\r\nxxx")
    time.sleep(0.3)                       # idle: no buffers now
    s.sendall(b"GET /size/4 HTTP/1.1\r\n")   # a head split across reads
    time.sleep(0.3)
    s.sendall(b"Host: x\r\n\r\n")
    assert gh.recv_response(s).endswith(b"\r\n\r\nxxxx")
    time.sleep(1.5)                       # idle past client_header, within client_idle
    s.sendall((get % 1) + (get % 2))      # pipelined pair, answered in order
    data = b""
    while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"xx"):
        b = s.recv(65536)
        assert b, data
        data += b
    assert data.startswith(b"HTTP/1.1 200") and b"\r\n\r\nx" in data and data.endswith(b"\r\n\r\nxx")
    # a response larger than the socket buffers, read slowly: EV_WRITE needed
    big = 8 << 20
    s.sendall(get % big)
    time.sleep(0.5)
    resp = gh.recv_response(s, timeout=10)
    assert resp.endswith(b"x" * 16) and len(resp.split(b"\r\n\r\n", 1)[1]) == big
    time.sleep(0.3)
    s.sendall(get % 5)
    assert gh.recv_response(s).endswith(b"\r\n\r\nxxxxx")
    # a head larger than the small first read (READ_SMALL), twice in one send
    big_head = b"GET /size/6 HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 3000 + b"\r\n\r\n"
    s.sendall(big_head + big_head)
    data = b""
    while data.count(b"xxxxxx") < 2:
        b = s.recv(65536)
        assert b, data
        data += b
    assert data.count(b"HTTP/1.1 200") == 2
    # a head started after an idle spell is still bound by client_header
    time.sleep(0.3)
    t0 = time.time()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    resp = gh.recv_response(s)
    assert resp.startswith(b"HTTP/1.1 408") and 0.8 < time.time() - t0 < 3.0
    s.close()
    # and an untouched idle connection is closed by client_idle (5 s)
    s = socket.create_connection(("127.0.0.1", gw.rport), timeout=20)
    s.sendall(get % 1)
    assert gh.recv_response(s).endswith(b"\r\n\r\nx")
    t0 = time.time()
    s.settimeout(20)   # (recv_response left 5 s: it raced client_idle on a loaded machine)
    assert s.recv(1) == b""
    assert 4.0 < time.time() - t0 < 15.0   # slack for a loaded machine
    s.close()
