"""Hardening: broken origins, DNS failures, file-descriptor exhaustion, many
connections, slowloris, reload storms and SIGTERM under load.

Each test takes a few seconds at most.  Set GW_LONG=1 for the long variants
(10,000 concurrent connections instead of 2,000).
"""
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import gh

LONG = os.environ.get("GW_LONG") == "1"


def conf(fport, rport, upstream, timeouts="", dns="", connect_ports="443"):
    return """
@GLOBAL@ timeouts: { %s }; %s };
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [];
  connect_ports = [ %s ];
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; servers = ( { address = "%s"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; } ); } );
};
""" % (timeouts, dns, fport, connect_ports, rport, upstream)


FAST_TIMEOUTS = "client_header = 1.0; upstream_response = 1.0; upstream_connect = 1.0; client_idle = 5.0;"


class ScriptOrigin:
    """Loopback origin whose every connection runs handler(sock, head)."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.raw = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            self.raw += buf
            self.handler(c, buf)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.sock.close()


def rst(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


class FastOrigin:
    """One-thread selectors origin: answers every request head with a small
    keep-alive 200 (body "ok"), whatever the path.  Cheap at thousands of
    connections, unlike the thread-per-connection gh.Origin."""

    RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.count = 0
        self.stopped = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        bufs = {}
        while not self.stopped:
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    try:
                        c, _ = self.sock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    bufs[c] = b""
                    self.sel.register(c, selectors.EVENT_READ, 1)
                    continue
                c = key.fileobj
                try:
                    b = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    b = b""
                if not b:
                    self.sel.unregister(c)
                    bufs.pop(c, None)
                    c.close()
                    continue
                buf = bufs[c] + b
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    self.count += 1
                    try:
                        c.sendall(self.RESP)
                    except OSError:
                        pass
                bufs[c] = buf

    def stop(self):
        self.stopped = True
        self.t.join(2)
        self.sock.close()


class FakeDns:
    """UDP DNS server on loopback: mode "nxdomain" answers every query with
    NXDOMAIN at once, mode "swallow" reads queries and never answers."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                q, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1
            if self.mode == "nxdomain" and len(q) >= 12:
                # same id, QR=1 RD RA, RCODE=3; echo the question section
                self.sock.sendto(q[:2] + b"\x81\x83" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:], addr)

    def stop(self):
        self.sock.close()


class LimitedGatehouse(gh.Gatehouse):
    """gh.Gatehouse started with a given RLIMIT_NOFILE."""

    def start_limited(self, nofile, wait_ports=()):
        def pre():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.err = open(self.errlog, "wb")
        self.proc = subprocess.Popen([gh.BIN, "-c", self.conf], stdout=self.err, stderr=self.err,
                                     preexec_fn=pre)
        for p in wait_ports:
            if not gh.wait_port(p):
                self.stop()
                raise RuntimeError("gatehouse did not listen on %d:\n%s" % (p, self.stderr()))
        return self


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def start_gw(upstream, timeouts=FAST_TIMEOUTS, dns="", connect_ports="443"):
    fport, rport = gh.free_port(), gh.free_port()
    g = gh.Gatehouse(conf(fport, rport, upstream, timeouts, dns, connect_ports))
    g.start([fport, rport])
    g.fport, g.rport = fport, rport
    g.rurl = "http://127.0.0.1:%d" % rport
    g.proxy = "http://127.0.0.1:%d" % fport
    return g


# ------------------------------------------------------------ broken origins

def both(g, origin_port, path):
    """(reverse result, forward result) of curl for path: (rc, body, took)."""
    out = []
    for args in (["%s%s" % (g.rurl, path)],
                 ["-x", g.proxy, "http://127.0.0.1:%d%s" % (origin_port, path)]):
        t0 = time.time()
        rc, body, err = gh.curl("-w", "\n%{http_code}", *args, timeout=10)
        body, _, code = body.rpartition(b"\n")
        out.append((rc, int(code or b"0"), body, time.time() - t0))
    return out


def test_origin_refuses_both_listeners():
    dead = gh.free_port()
    g = start_gw("127.0.0.1:%d" % dead)
    try:
        for rc, code, body, took in both(g, dead, "/x"):
            assert code == 502 and took < 2.0, (rc, code, body, took)
    finally:
        g.check_clean()


def test_origin_resets_mid_head():
    o = ScriptOrigin(lambda c, head: (c.sendall(b"HTTP/1.1 200 OK\r\nContent-Le"), time.sleep(0.05), rst(c)))
    g = start_gw("127.0.0.1:%d" % o.port)
    try:
        for rc, code, body, took in both(g, o.port, "/h"):
            assert code == 502 and took < 2, (rc, code, body, took)
        assert gh.curl_status(g.rurl + "/again") == 502   # still serving
    finally:
        g.check_clean()
        o.stop()


def test_origin_resets_mid_body():
    def h(c, head):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 3000)
        time.sleep(0.05)
        rst(c)
    o = ScriptOrigin(h)
    g = start_gw("127.0.0.1:%d" % o.port)
    try:
        for rc, code, body, took in both(g, o.port, "/b"):
            # the head was already relayed: the client must see a truncated
            # transfer (curl 18/56), never a complete one
            assert code == 200 and rc in (18, 56) and len(body) < 100000, (rc, code, len(body))
    finally:
        g.check_clean()
        o.stop()


def test_origin_stalls_forever_gives_504_within_upstream_response():
    hold = threading.Event()
    o = ScriptOrigin(lambda c, head: hold.wait(20))
    g = start_gw("127.0.0.1:%d" % o.port)
    try:
        for rc, code, body, took in both(g, o.port, "/stall"):
            assert code == 504 and 0.8 < took < 3.5, (rc, code, body, took)
    finally:
        hold.set()
        g.check_clean()
        o.stop()


def test_origin_sends_garbage():
    o = ScriptOrigin(lambda c, head: c.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n"))
    g = start_gw("127.0.0.1:%d" % o.port)
    try:
        for rc, code, body, took in both(g, o.port, "/g"):
            assert code == 502, (rc, code, body)
    finally:
        g.check_clean()
        o.stop()


def test_origin_content_length_longer_than_body():
    def h(c, head):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"s" * 100)
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
    o = ScriptOrigin(h)
    g = start_gw("127.0.0.1:%d" % o.port)
    try:
        for rc, code, body, took in both(g, o.port, "/short"):
            assert rc == 18 and body == b"s" * 100, (rc, code, body[:50])
    finally:
        g.check_clean()
        o.stop()


# ------------------------------------------------------------------- DNS

def dns_conf(port):
    return 'dns: { servers = [ "127.0.0.1:%d" ]; timeout = 0.5; hosts_file = ""; };' % port


def test_dns_failure_gives_502_quickly(origin):
    d = FakeDns("nxdomain")
    g = start_gw("127.0.0.1:%d" % origin.port, dns=dns_conf(d.port))
    try:
        t0 = time.time()
        st = gh.curl_status("-x", g.proxy, "http://no-such-host.test:%d/" % origin.port)
        assert st == 502 and time.time() - t0 < 1.5, st
        assert d.queries >= 1
    finally:
        g.check_clean()
        d.stop()


def test_dns_timeout_answers_within_2s(origin):
    d = FakeDns("swallow")
    g = start_gw("127.0.0.1:%d" % origin.port, dns=dns_conf(d.port))
    try:
        t0 = time.time()
        st = gh.curl_status("-x", g.proxy, "http://slow-dns.test:%d/" % origin.port)
        took = time.time() - t0
        assert st in (502, 504) and took < 3.0, (st, took)
        assert d.queries >= 1
        # still serving IP-literal traffic afterwards
        assert gh.curl_status("-x", g.proxy, "http://127.0.0.1:%d/size/1" % origin.port) == 200
    finally:
        g.check_clean()
        d.stop()


# ------------------------------------------------------ fd exhaustion

def test_fd_exhaustion_survives_and_recovers(origin):
    fport, rport = gh.free_port(), gh.free_port()
    g = LimitedGatehouse(conf(fport, rport, "127.0.0.1:%d" % origin.port,
                              "client_header = 30.0; client_idle = 30.0;"))
    g.start_limited(64, [fport, rport])
    socks = []
    try:
        for _ in range(150):   # many more than 64
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", rport))
            except OSError:
                s.close()
                break
            socks.append(s)
        time.sleep(0.5)
        assert g.proc.poll() is None, g.stderr()[-2000:]
        assert fd_count(g.proc.pid) <= 64
        # no busy loop on EMFILE: the process must mostly sleep
        c0 = proc_cpu_s(g.proc.pid)
        time.sleep(1.0)
        spent = proc_cpu_s(g.proc.pid) - c0
        assert spent < 0.6, "gatehouse burned %.2f CPU-s in 1 s while out of fds" % spent
        # a new request now waits or fails, but nothing crashes
        gh.curl_status("http://127.0.0.1:%d/size/1" % rport, timeout=1)
        assert g.proc.poll() is None
        for s in socks:
            s.close()
        socks = []
        t0 = time.time()
        while time.time() - t0 < 5:
            if gh.curl_status("http://127.0.0.1:%d/size/3" % rport, timeout=2) == 200:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no recovery after fds were released:\n" + g.stderr()[-2000:])
        for _ in range(20):
            assert gh.curl_status("http://127.0.0.1:%d/size/3" % rport, timeout=2) == 200
    finally:
        for s in socks:
            s.close()
        g.check_clean()


# ------------------------------------------------ many concurrent clients

def test_many_concurrent_client_connections():
    n = 10000 if LONG else 2000
    if raise_nofile(n + 200) < n + 100:
        pytest.skip("RLIMIT_NOFILE too low for %d connections" % n)
    o = FastOrigin()
    # the n clients all come from 127.0.0.1: no per-client cap ("dns" is the
    # global section's free text)
    g = start_gw("127.0.0.1:%d" % o.port, timeouts="client_idle = 30.0; client_header = 30.0;",
                 dns="max_connections_per_client = 0;")
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", g.rport), timeout=5)
            socks.append(s)
        sel = selectors.DefaultSelector()
        for s in socks:
            s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [b""])
        done, end = 0, time.time() + (60 if LONG else 20)
        while done < n and time.time() < end:
            for key, _ in sel.select(0.5):
                try:
                    b = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                key.data[0] += b
                if not b or key.data[0].endswith(b"\r\n\r\nok"):
                    assert b, "connection closed before its response"
                    assert key.data[0].startswith(b"HTTP/1.1 200")
                    sel.unregister(key.fileobj)
                    done += 1
        assert done == n, "%d of %d answered" % (done, n)
        assert g.proc.poll() is None
        # every connection is still open and usable (keep-alive)
        for s in socks[:: max(1, n // 50)]:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()
        g.check_clean()
        o.stop()


# ------------------------------------------------------------ slowloris

def test_slowloris_50_clients_do_not_hurt_normal_traffic():
    o = FastOrigin()
    g = start_gw("127.0.0.1:%d" % o.port, timeouts="client_header = 2.0; client_idle = 10.0;")
    stop = threading.Event()
    loris = []

    def drip():
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", g.rport), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            loris.append(s)
        i = 0
        while not stop.is_set():
            for s in loris:
                try:
                    s.sendall(b"X-%d: y\r\n" % i)
                except OSError:
                    pass
            i += 1
            stop.wait(0.1)
    t = threading.Thread(target=drip, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        lat = []
        conn = http.client.HTTPConnection("127.0.0.1", g.rport, timeout=5)
        end = time.time() + 2.5
        while time.time() < end:
            t0 = time.time()
            conn.request("GET", "/n")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b"ok"
            lat.append(time.time() - t0)
            time.sleep(0.01)
        lat.sort()
        assert len(lat) > 20
        # bounded, with room for a loaded 2-CPU test machine (client_header is 2 s)
        assert lat[len(lat) // 2] < 0.25 and lat[-1] < 3.0, (lat[len(lat) // 2], lat[-1])
        # the slow heads were cut off by client_header (408 or close), not kept forever
        time.sleep(0.5)
        closed = 0
        for s in loris:
            s.settimeout(0.2)
            try:
                d = s.recv(4096)
                closed += (d == b"" or d.startswith(b"HTTP/1.1 408"))
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
            except socket.timeout:
                pass
        assert closed == 50, closed
        assert g.proc.poll() is None
    finally:
        stop.set()
        t.join(5)
        for s in loris:
            s.close()
        g.check_clean()
        o.stop()


# ----------------------------------------------------- reload storm

def test_reload_every_200ms_under_load_zero_failures():
    o = FastOrigin()
    g = start_gw("127.0.0.1:%d" % o.port)
    stop = threading.Event()
    stats = {"ok": 0, "fail": []}
    lock = threading.Lock()

    def keepalive_client():
        conn = http.client.HTTPConnection("127.0.0.1", g.rport, timeout=5)
        while not stop.is_set():
            try:
                conn.request("GET", "/k")
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and body == b"ok"
            except Exception as e:  # noqa: BLE001
                ok = False
                body = repr(e)
            with lock:
                if ok:
                    stats["ok"] += 1
                else:
                    stats["fail"].append(body)

    def new_conn_client():
        while not stop.is_set():
            try:
                resp = gh.raw_exchange(g.rport, b"GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                       read_timeout=5)
                ok = resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"ok")
            except OSError as e:
                ok, resp = False, repr(e)
            with lock:
                if ok:
                    stats["ok"] += 1
                else:
                    stats["fail"].append(resp)

    ts = [threading.Thread(target=f, daemon=True) for f in (keepalive_client, keepalive_client,
                                                             new_conn_client, new_conn_client)]
    for t in ts:
        t.start()
    try:
        for _ in range(15):
            g.reload(settle=0.2)
            assert g.proc.poll() is None
        stop.set()
        for t in ts:
            t.join(10)
        assert stats["fail"] == [], stats["fail"][:5]
        assert stats["ok"] > 30, stats
        assert "reload" in g.stderr().lower()
    finally:
        stop.set()
        g.check_clean()
        o.stop()


# -------------------------------------------------- SIGTERM under load

def test_sigterm_under_load_loses_no_completed_response(origin):
    g = start_gw("127.0.0.1:%d" % origin.port,
                 timeouts="shutdown_grace = 5.0; upstream_response = 5.0;")
    stop = threading.Event()
    res = {"complete": 0, "truncated": [], "nohead": 0}
    lock = threading.Lock()
    size = 200000

    def client():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", g.rport), timeout=5)
            except OSError:
                time.sleep(0.02)
                continue
            try:
                while not stop.is_set():
                    s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        b = s.recv(65536)
                        if not b:
                            raise EOFError
                        buf += b
                    head, body = buf.split(b"\r\n\r\n", 1)
                    cl = int([l.split(b":")[1] for l in head.split(b"\r\n")
                              if l.lower().startswith(b"content-length:")][0])
                    try:
                        while len(body) < cl:
                            b = s.recv(65536)
                            if not b:
                                break
                            body += b
                    except OSError:
                        pass
                    with lock:
                        if len(body) == cl == size and head.startswith(b"HTTP/1.1 200"):
                            res["complete"] += 1
                        else:
                            res["truncated"].append((head[:40], len(body)))
                    if b"connection: close" in head.lower():
                        break
            except (EOFError, OSError):
                with lock:
                    res["nohead"] += 1
            finally:
                s.close()

    ts = [threading.Thread(target=client, daemon=True) for _ in range(6)]
    for t in ts:
        t.start()
    try:
        time.sleep(1.0)
        before = res["complete"]
        g.signal(signal.SIGTERM)
        rc = g.proc.wait(10)
        stop.set()
        for t in ts:
            t.join(10)
        assert before > 3, res
        assert res["truncated"] == [], res["truncated"][:5]
        assert rc == 0, g.stderr()[-2000:]
    finally:
        stop.set()
        g.check_clean()
