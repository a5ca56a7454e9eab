"""The access log sent to syslog (global.log.access = "syslog:udp:..." /
"syslog:tcp:..."): RFC 5424 messages with the configured facility and tag,
one datagram per line over UDP, octet-counted frames (RFC 6587) over TCP, a
dead or stalled TCP receiver never slows requests down (the lines are
dropped and counted in /metrics), and the connection comes back."""
import http.client
import json
import re
import socket
import threading
import time

import gh

HEAD = re.compile(r'^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) access - (.*)$', re.S)


def conf(ports, origin_port, target, fmt):
    return """
global: { workers = 2; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "%s"; access_format = "%s";
         syslog_facility = "local3"; syslog_tag = "gwtest"; };
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "localhost" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
admin: { metrics_listen = "127.0.0.1:%d"; };
""" % (target, fmt, ports[0], origin_port, ports[1])


def start(ports, origin, target, fmt="json"):
    g = gh.Gatehouse(conf(ports, origin.port, target, fmt))
    g.start([ports[0], ports[1]])
    return g


class TcpReceiver:
    """Accepts one connection at a time and splits octet-counted frames."""

    def __init__(self, port=None, read=True):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not read:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(4)
        self.read, self.frames, self.bad, self.conns = read, [], [], []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.read:
                threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            while True:
                m = re.match(rb"(\d+) ", buf)
                if m is None:
                    if buf and not re.match(rb"\d*$", buf):
                        self.bad.append(buf)
                    break
                n = int(m.group(1))
                if len(buf) < m.end() + n:
                    break
                self.frames.append(buf[m.end():m.end() + n].decode())
                buf = buf[m.end() + n:]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes the accept() thread: the port is free
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def requests(port, n, path="/echo", pad=0):
    """n keep-alive requests; the slowest one's duration."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    worst = 0
    for i in range(n):
        t = time.monotonic()
        conn.request("GET", "%s?i=%d&pad=%s" % (path, i, "p" * pad), headers={"Host": "localhost"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        worst = max(worst, time.monotonic() - t)
    conn.close()
    return worst


def syslog_counts(port):
    m = gh.metrics(port)
    return (m['gatehouse_access_log_syslog_lines_total{result="sent"}'],
            m['gatehouse_access_log_syslog_lines_total{result="dropped"}'])


def test_udp_json_rfc5424(origin, ports):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    g = start(ports, origin, "syslog:udp:127.0.0.1:%d" % rx.getsockname()[1])
    try:
        requests(ports[0], 3, path='/echo/a"b')
        got = []
        while len(got) < 3:
            got.append(rx.recv(65536).decode())
        for i, d in enumerate(sorted(got, key=lambda x: json.loads(HEAD.match(x).group(6))["target"])):
            m = HEAD.match(d)
            assert m is not None, d
            assert m.group(1) == str(19 * 8 + 6) and m.group(4) == "gwtest", d   # local3.info
            assert int(m.group(5)) == g.proc.pid and m.group(3) == socket.gethostname()
            rec = json.loads(m.group(6))                                    # one line, valid JSON
            assert rec["target"].startswith('/echo/a"b?i=%d' % i) and rec["status"] == 200, rec
            assert "\n" not in d
        assert syslog_counts(ports[1]) == (3, 0)
        # a line over the cap is cut to one datagram of at most 4096 bytes
        requests(ports[0], 1, pad=6000)
        d = rx.recv(65536)
        assert len(d) == 4096 and HEAD.match(d.decode()), len(d)
        g.check_clean()
    finally:
        g.stop()
        rx.close()


def test_tcp_octet_counting_and_reconnect(origin, ports):
    rx = TcpReceiver()
    g = start(ports, origin, "syslog:tcp:127.0.0.1:%d" % rx.port, fmt="combined")
    try:
        requests(ports[0], 5)
        assert wait_for(lambda: len(rx.frames) >= 5), rx.frames
        for f in rx.frames:
            m = HEAD.match(f)
            assert m is not None and m.group(1) == "158", f
            assert ' up=127.0.0.1:%d ' % origin.port in m.group(6) and m.group(6).endswith('host="localhost"'), f
        assert not rx.bad
        # the receiver dies: requests stay fast, nothing is lost while the queue holds
        port = rx.port
        rx.close()
        worst = requests(ports[0], 20)
        assert worst < 1.0, worst
        time.sleep(0.5)
        rx = TcpReceiver(port)
        assert wait_for(lambda: len(rx.frames) >= 20, timeout=20), len(rx.frames)
        assert all(HEAD.match(f) for f in rx.frames) and not rx.bad
        g.check_clean()
    finally:
        g.stop()
        rx.close()


def test_dead_tcp_receiver_never_stalls_requests(origin, ports):
    # nothing listens there: every connect is refused, lines queue then drop
    dead = gh.free_port()
    g = start(ports, origin, "syslog:tcp:127.0.0.1:%d" % dead)
    try:
        t = time.monotonic()
        worst = requests(ports[0], 300, pad=3500)
        took = time.monotonic() - t
        assert worst < 1.0 and took < 30, (worst, took)
        time.sleep(0.5)
        sent, dropped = syslog_counts(ports[1])
        assert sent == 0 and dropped >= 300 - 140, (sent, dropped)   # the queue holds 512 KiB
        g.check_clean()
    finally:
        g.stop()


def test_stalled_tcp_receiver_never_stalls_requests(origin, ports):
    # accepts, never reads: the kernel buffers fill, then our queue, then drops
    rx = TcpReceiver(read=False)
    g = start(ports, origin, "syslog:tcp:127.0.0.1:%d" % rx.port)
    try:
        worst = requests(ports[0], 2500, pad=3500)
        assert worst < 1.0, worst
        time.sleep(0.5)
        sent, dropped = syslog_counts(ports[1])
        assert dropped > 0, (sent, dropped)
        g.check_clean()
    finally:
        g.stop()
        rx.close()


def test_syslog_target_validated(ports):
    for target, msg in (("syslog:udp:localhost:514", "numeric"), ("syslog:tcp:127.0.0.1", "HOST:PORT"),
                        ("syslog:unix:dev/log", "absolute"), ("syslog:smoke:1.2.3.4:5", "expected")):
        g = gh.Gatehouse('global: { workers = 1; user = ""; state_dir = "@DIR@"; log: { access = "%s"; }; };\n'
                         'reverse: { listeners = ( { address = "127.0.0.1:%d"; } ); sites = ( { hosts = [ "a" ]; '
                         'routes = ( { path = "/"; static = "@DIR@"; } ); } ); };\n' % (target, ports[0]))
        out = gh.subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
        assert out.returncode != 0 and "global.log.access" in out.stderr and msg in out.stderr, out.stderr
    g = gh.Gatehouse('global: { workers = 1; user = ""; state_dir = "@DIR@"; log: { syslog_tag = "a b"; }; };\n')
    out = gh.subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    assert out.returncode != 0 and "global.log.syslog_tag" in out.stderr, out.stderr


def test_unix_datagram_socket(origin, ports, tmp_path):
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    g = start(ports, origin, "syslog:unix:" + path, fmt="combined")
    try:
        requests(ports[0], 2)
        for _ in range(2):
            m = HEAD.match(rx.recv(65536).decode())
            assert m is not None and m.group(1) == "158" and m.group(6).startswith("127.0.0.1 - - ["), m
        assert syslog_counts(ports[1]) == (2, 0)
        g.check_clean()
    finally:
        g.stop()
        rx.close()


def test_reload_moves_the_log_between_file_and_syslog(origin, ports):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    target = "syslog:udp:127.0.0.1:%d" % rx.getsockname()[1]
    g = start(ports, origin, "@DIR@/access.log")
    try:
        requests(ports[0], 1, path="/echo/file1")
        time.sleep(0.5)              # flushed (a line still buffered goes where the log goes now)
        g.reload(conf(ports, origin.port, target, "json"))
        requests(ports[0], 1, path="/echo/syslog")
        assert json.loads(HEAD.match(rx.recv(65536).decode()).group(6))["target"].startswith("/echo/syslog")
        time.sleep(0.5)
        g.reload(conf(ports, origin.port, "@DIR@/access.log", "json"))
        requests(ports[0], 1, path="/echo/file2")
        lines = g.access_lines()
        assert any("/echo/file1" in l for l in lines) and any("/echo/file2" in l for l in lines), lines
        assert not any("/echo/syslog" in l for l in lines), lines
        g.check_clean()
    finally:
        g.stop()
        rx.close()
