"""Test harness for Gatehouse integration tests.

Starts the real `gatehouse` binary on a generated config, real origin
servers on loopback, and talks to both with curl and raw sockets.  Only
loopback addresses are ever used.
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "build", "gatehouse"))
# ASan keeps freed memory in a quarantine (256 MiB by default): RSS bounds
# only mean something on the normal build.
SANITIZED = os.environ.get("GW_SANITIZED") == "1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer")


_given_ports = set()


def _port_range():
    """20000-32767, or its K-th of N slices when GW_PORT_SLICE="K/N" is set:
    tests/run.sh runs the normal and the sanitizer passes side by side, and
    each pass must pick its ports where the other never does."""
    lo, hi = 20000, 32768
    sl = os.environ.get("GW_PORT_SLICE", "")
    if sl:
        k, n = (int(x) for x in sl.split("/"))
        w = (hi - lo) // n
        lo, hi = lo + k * w, lo + (k + 1) * w
    return lo, hi


def free_port():
    """A port that is free now, below the kernel's ephemeral range (32768 and
    up on Linux): a port from bind(0) can be taken as the source port of any
    outgoing connection before the test's server binds it."""
    import random
    lo, hi = _port_range()
    for _ in range(1000):
        p = random.randrange(lo, hi)
        if p in _given_ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        _given_ports.add(p)
        return p
    raise RuntimeError("no free port in 20000-32767")


def wait_port(port, host="127.0.0.1", timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Gatehouse:
    """A running gatehouse process with its config, logs and ports."""

    def __init__(self, conf_text, workers=1, extra_files=None):
        self.dir = tempfile.mkdtemp(prefix="gh-test-")
        self.conf = os.path.join(self.dir, "gatehouse.conf")
        self.access = os.path.join(self.dir, "access.log")
        self.errlog = os.path.join(self.dir, "stderr.log")
        for name, data in (extra_files or {}).items():
            path = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb" if isinstance(data, bytes) else "w") as f:
                f.write(data)
        self.workers = workers
        self.write_conf(conf_text)
        self.proc = None

    def write_conf(self, conf_text):
        head = ('global: { workers = %d; user = ""; state_dir = "%s";\n'
                '  log: { error = "stderr"; level = "info"; access = "%s"; };\n'
                % (self.workers, self.dir, self.access))
        text = conf_text.replace("@GLOBAL@", head).replace("@DIR@", self.dir)
        if "global:" not in text:
            text = head + "};\n" + text
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, wait_ports=()):
        self.err = open(self.errlog, "wb")
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdout=self.err, stderr=self.err)
        for p in wait_ports:
            if not wait_port(p):
                self.stop()
                raise RuntimeError("gatehouse did not listen on %d:\n%s" % (p, self.stderr()))
        return self

    def stderr(self):
        try:
            with open(self.errlog, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def access_lines(self, wait=0.5):
        time.sleep(wait)  # the access log is flushed every 0.2 s
        try:
            with open(self.access) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, conf_text=None, settle=0.5):
        if conf_text is not None:
            self.write_conf(conf_text)
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(settle)

    def stop(self, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def check_clean(self):
        """Stop and assert a clean exit with no sanitizer report."""
        rc = self.stop()
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            assert m not in err, "sanitizer report:\n" + err[-6000:]
        assert rc == 0, "gatehouse exited %r:\n%s" % (rc, err[-4000:])


def curl(*args, timeout=30, input=None):
    """Run curl; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True,
                       timeout=timeout + 10, input=input)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def curl_status(*args, **kw):
    rc, out, err = curl("-o", "/dev/null", "-w", "%{http_code}", *args, **kw)
    return int(out or b"0")


def raw_exchange(port, data, read_timeout=3.0, shutdown=False):
    """Send raw bytes, read until the peer closes or read_timeout passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.sendall(data)
    if shutdown:
        s.shutdown(socket.SHUT_WR)
    chunks = []
    end = time.time() + read_timeout
    try:
        while time.time() < end:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return b"".join(chunks)


def recv_response(sock, timeout=5.0):
    """Read one response with a Content-Length body from a socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        if not b:
            return data
        data += b
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        b = sock.recv(65536)
        if not b:
            break
        body += b
    return head + b"\r\n\r\n" + body


def metrics(port):
    """/metrics on a login-free metrics_listen port, as {"name{labels}": value}."""
    out = {}
    for line in curl("http://127.0.0.1:%d/metrics" % port)[1].decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PeakRss:
    """Context manager sampling a process's RSS every 50 ms; .grow_kb after."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.start = self.peak = rss_kb(self.pid)
        self.done = threading.Event()
        self.t = threading.Thread(target=self._watch, daemon=True)
        self.t.start()
        return self

    def _watch(self):
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.done.set()
        self.t.join()
        self.grow_kb = self.peak - self.start


# ---------------------------------------------------------------- origin ----

def make_ca(dirpath):
    """A test CA in dirpath: returns (ca_cert_path, ca_key_path)."""
    key = os.path.join(dirpath, "ca.key")
    crt = os.path.join(dirpath, "ca.pem")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=Gatehouse Test CA"],
                       check=True, capture_output=True)
    return crt, key


def make_cert(dirpath, name, sans, days=30):
    """A leaf certificate for sans (DNS names) signed by the test CA in
    dirpath; returns (cert_path, key_path)."""
    ca, cakey = make_ca(dirpath)
    key = os.path.join(dirpath, name + ".key")
    csr = os.path.join(dirpath, name + ".csr")
    crt = os.path.join(dirpath, name + ".pem")
    ext = os.path.join(dirpath, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + sans[0]],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
                    "-out", crt, "-days", str(days), "-extfile", ext], check=True, capture_output=True)
    return crt, key


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method, self.target, self.version = method, target, version
        self.headers = headers          # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Origin:
    """A small HTTP/1.1 origin server on loopback with scripted behaviours.

    Paths: /echo (request as JSON), /size/N (N bytes, Content-Length),
    /chunked/N, /close/N (no length; close), /silent (never answers),
    /garbage, /reset-mid-body, /short-body (CL longer than the body),
    /stream/N (N bytes streamed), /upload (counts the body without keeping it),
    /status/N, /slow/S (answers after S seconds).  Every raw byte received is
    kept in self.raw; every parsed request in self.requests.
    """

    def __init__(self, port=None, tls=None):
        self.tls = tls          # an ssl.SSLContext: serve HTTPS
        self.port = port or free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(256)
        self.requests = []
        self.raw = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.threads = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve_tls if self.tls else self._serve, args=(c,),
                                 daemon=True)
            t.start()

    def _read_head(self, c, buf):
        while b"\r\n\r\n" not in buf:
            b = c.recv(65536)
            if not b:
                return None, buf
            with self.lock:
                self.raw += b
            buf += b
        i = buf.index(b"\r\n\r\n")
        return buf[:i].decode("latin-1"), buf[i + 4:]

    def _serve_tls(self, c):
        try:
            c.settimeout(5)
            c = self.tls.wrap_socket(c, server_side=True)
            c.settimeout(None)
        except OSError:
            c.close()
            return
        self._serve(c)

    def _serve(self, c):
        buf = b""
        try:
            while True:
                head, buf = self._read_head(c, buf)
                if head is None:
                    return
                lines = head.split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = [tuple(x.split(": ", 1)) for x in lines[1:] if ": " in x]
                req = Request(method, target, version, headers, b"")
                cl = req.header("Content-Length")
                te = req.header("Transfer-Encoding")
                count_only = target.startswith("/upload")
                nbytes = 0
                if te and "chunked" in te.lower():
                    body = bytearray()
                    while True:
                        while b"\r\n" not in buf:
                            buf += self._recv(c)
                        line, buf = buf.split(b"\r\n", 1)
                        n = int(line.split(b";")[0], 16)
                        if n == 0:
                            while b"\r\n" not in buf:
                                buf += self._recv(c)
                            _, buf = buf.split(b"\r\n", 1)
                            break
                        while len(buf) < n + 2:
                            buf += self._recv(c)
                        nbytes += n
                        if not count_only:
                            body += buf[:n]
                        buf = buf[n + 2:]
                    req.body = bytes(body)
                elif cl:
                    n = int(cl)
                    while nbytes < n:
                        if not buf:
                            buf = self._recv(c)
                        take = min(len(buf), n - nbytes)
                        if not count_only:
                            req.body += buf[:take]
                        nbytes += take
                        buf = buf[take:]
                req.nbytes = nbytes
                with self.lock:
                    self.requests.append(req)
                if not self._respond(c, req):
                    return
        except (OSError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _recv(self, c):
        b = c.recv(1 << 20)
        if not b:
            raise OSError("eof")
        if len(self.raw) < (1 << 20):
            with self.lock:
                self.raw += b
        return b

    def _respond(self, c, req):
        path = req.target
        if path.startswith("http://"):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        parts = path.split("?")[0].split("/")
        # skip route prefixes ("/api/echo" is "/echo")
        known = ("echo", "size", "status", "chunked", "close", "silent", "slow", "garbage",
                 "reset-mid-body", "short-body", "stream", "upload", "ws", "no-upgrade", "drop")
        while len(parts) > 2 and parts[1] not in known:
            del parts[1]
        close = (req.header("Connection") or "").lower() == "close"
        hdr_close = "Connection: close\r\n" if close else ""

        def send(status, body, extra=""):
            c.sendall(("HTTP/1.1 %s\r\nContent-Length: %d\r\n%s%s\r\n"
                       % (status, len(body), extra, hdr_close)).encode() + body)
            return not close

        if parts[1] == "echo":
            data = {"method": req.method, "target": req.target, "version": req.version,
                    "headers": req.headers, "body": req.body.decode("latin-1"),
                    "nbytes": req.nbytes}
            return send("200 OK", json.dumps(data).encode(), "Content-Type: application/json\r\n")
        if parts[1] == "size":
            return send("200 OK", b"x" * int(parts[2]))
        if parts[1] == "status":
            return send("%s X" % parts[2], b"status %s\n" % parts[2].encode())
        if parts[1] == "chunked":
            n = int(parts[2])
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + hdr_close.encode() + b"\r\n")
            left = n
            while left > 0:
                k = min(left, 1000)
                c.sendall(b"%x;ext=1\r\n" % k + b"y" * k + b"\r\n")
                left -= k
            c.sendall(b"0\r\nX-Trailer: t\r\n\r\n")
            return not close
        if parts[1] == "close":
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * int(parts[2]))
            return False
        if parts[1] == "silent":
            time.sleep(30)
            return False
        if parts[1] == "slow":
            time.sleep(float(parts[2]))
            return send("200 OK", b"slow done\n")
        if parts[1] == "garbage":
            c.sendall(b"this is not http\r\n\r\n")
            return False
        if parts[1] == "reset-mid-body":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 1000)
            time.sleep(0.1)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            return False
        if parts[1] == "short-body":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"s" * 100)
            c.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
            return False
        if parts[1] == "stream":
            n = int(parts[2])
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            block = b"s" * (1 << 20)
            left = n
            while left > 0:
                k = min(left, len(block))
                c.sendall(block[:k])
                left -= k
            return not close
        if parts[1] == "ws":
            # WebSocket-style upgrade, then echo raw bytes until EOF
            if (req.header("Upgrade") or "").lower() != "websocket":
                return send("400 Bad Request", b"upgrade expected\n")
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
            while True:
                b = c.recv(65536)
                if not b:
                    return False
                c.sendall(b)
        if parts[1] == "drop":
            # a keep-alive response, then the origin closes the idle connection
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % int(parts[2]) + b"d" * int(parts[2]))
            time.sleep(0.05)
            return False
        if parts[1] == "no-upgrade":
            return send("200 OK", b"plain answer\n")
        if parts[1] == "upload":
            return send("200 OK", b"%d" % req.nbytes)
        return send("404 Not Found", b"no such test path\n")


# ---- forward-side helpers (added for test_f_*: auth, hosts files) ----

def crypt_hash(password, prefix="$6$", cost=0):
    """A crypt(3) hash of password made by the system's libcrypt:
    prefix "$2y$" (bcrypt; cost = log2 rounds), "$6$" (sha512), "$y$" (yescrypt)."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(prefix.encode(), cost, None, 0)
    h = lib.crypt(password.encode(), setting)
    assert h and not h.startswith(b"*"), "libcrypt cannot make %r" % prefix
    return h.decode()


def hosts_file(names, addr="127.0.0.1"):
    """Text of a hosts file mapping every name in names to addr."""
    return "".join("%s %s\n" % (addr, n) for n in names)


def access_line_for(g, needle, wait=0.5):
    """The last access-log line of g that contains needle (or None)."""
    lines = [l for l in g.access_lines(wait) if needle in l]
    return lines[-1] if lines else None


class KillableOrigin(Origin):
    """An Origin that can be killed like a crashed server (listening socket
    and every open connection closed, so pooled upstream connections die too)
    and started again on the same port.  /health answers health_status (200
    by default).  hits() counts requests other than health checks."""

    def __init__(self, port=None, tls=None):
        self.conns = set()
        self.health_status = 200
        self.name = ""
        super().__init__(port, tls)

    def _serve(self, c):
        with self.lock:
            self.conns.add(c)
        try:
            super()._serve(c)
        finally:
            with self.lock:
                self.conns.discard(c)

    def _respond(self, c, req):
        if req.target.startswith("/health"):
            body = b"ok\n"
            c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (self.health_status, len(body))
                      + body)
            return True
        if req.target.startswith("/whoami"):
            body = self.name.encode() or str(self.port).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return True
        return super()._respond(c, req)

    def hits(self, prefix=None):
        with self.lock:
            return sum(1 for r in self.requests if not r.target.startswith("/health")
                       and (prefix is None or r.target.startswith(prefix)))

    def health_checks(self):
        with self.lock:
            return sum(1 for r in self.requests if r.target.startswith("/health"))

    def kill(self):
        self.stopped = True
        try:
            # wakes the accept() blocked in the other thread (close alone
            # leaves it accepting on Linux)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.stop()
        self.t.join(2)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def revive(self):
        """Listen again on the same port after kill()."""
        self.stopped = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(256)
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()


def http_get(port, path, host, source=None, method="GET", body=None, headers=None, timeout=10):
    """One request on a new connection (optionally from a source address such
    as 127.0.0.5); returns (status, headers dict lower-cased, body bytes)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        h = {"Host": host}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


# ---- reverse cache helpers (added for test_r_cache) ----

class CacheOrigin(KillableOrigin):
    """A KillableOrigin with scripted responses per exact request target, for
    cache tests.  script(target, ...) sets what target answers: status,
    headers (list of (name, value)), body, an optional delay, chunked (no
    Content-Length), and validators: etag / last_modified answer 304 (with
    headers_304) to a matching If-None-Match / If-Modified-Since.  headers
    and body may be callables taking the Request (e.g. for Vary).  count(t)
    says how many requests for target t reached the origin; last(t) is the
    last one.  Other targets behave as in Origin."""

    def __init__(self, port=None, tls=None):
        self.scripts = {}
        super().__init__(port, tls)

    def script(self, target, status=200, headers=(), body=b"body", delay=0.0, chunked=False,
               etag=None, last_modified=None, headers_304=(), trickle=0.0):
        """trickle: send a Content-Length body one byte per trickle seconds."""
        with self.lock:
            self.scripts[target] = dict(status=status, headers=headers, body=body, delay=delay,
                                        chunked=chunked, etag=etag, last_modified=last_modified,
                                        headers_304=list(headers_304), trickle=trickle)

    def count(self, target):
        with self.lock:
            return sum(1 for r in self.requests if r.target == target)

    def last(self, target):
        with self.lock:
            rs = [r for r in self.requests if r.target == target]
        return rs[-1] if rs else None

    def _respond(self, c, req):
        with self.lock:
            s = self.scripts.get(req.target)
        if s is None:
            return super()._respond(c, req)
        if s["delay"]:
            time.sleep(s["delay"])
        close = (req.header("Connection") or "").lower() == "close"
        hdrs = list(s["headers"](req) if callable(s["headers"]) else s["headers"])
        if s["etag"]:
            hdrs.append(("ETag", s["etag"]))
        if s["last_modified"]:
            hdrs.append(("Last-Modified", s["last_modified"]))
        inm, ims = req.header("If-None-Match"), req.header("If-Modified-Since")
        if (inm is not None and s["etag"] and (inm.strip() == "*" or s["etag"] in inm)) or \
           (inm is None and ims is not None and s["last_modified"] and ims == s["last_modified"]):
            head = "HTTP/1.1 304 Not Modified\r\n" + "".join(
                "%s: %s\r\n" % h for h in hdrs + s["headers_304"])
            c.sendall((head + ("Connection: close\r\n" if close else "") + "\r\n").encode())
            return not close
        body = s["body"](req) if callable(s["body"]) else s["body"]
        head = "HTTP/1.1 %s\r\n" % (s["status"] if isinstance(s["status"], str) else "%d X" % s["status"])
        head += "".join("%s: %s\r\n" % h for h in hdrs)
        if close:
            head += "Connection: close\r\n"
        if s["chunked"]:
            c.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                c.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            c.sendall(b"0\r\n\r\n")
        elif s["trickle"]:
            c.sendall((head + "Content-Length: %d\r\n\r\n" % len(body)).encode())
            for i in range(len(body)):
                time.sleep(s["trickle"])
                c.sendall(body[i:i + 1])
        else:
            c.sendall((head + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
        return not close


def http_date(t=None):
    """An IMF-fixdate for t (default now)."""
    import email.utils
    return email.utils.formatdate(time.time() if t is None else t, usegmt=True)


# ---- network namespaces for forward-side attack tests ----------------------
#
# A forward proxy connects wherever it is told; one parsing bug and a test's
# odd address leaves the machine.  Tests that feed the forward side attacks,
# odd addresses or odd names run inside a network namespace made for the test
# with only `lo` up: there, a connection to anything but loopback fails with
# ENETUNREACH.  The calling thread gets a new namespace of its own with
# unshare(2) (namespaces are per thread) and goes home with setns(2);
# sockets, threads and processes made in between (origins, gatehouse, curl)
# live in it, and it goes away with the last of them.  No named namespace
# (`ip netns add`) is made: `ip -n`/`ip netns exec` remount / and /sys, which
# fails where / is not a mount point (a chroot).  Use the `netns` fixture,
# listed FIRST in the test's arguments so that it is set up before any origin
# fixture.

_CLONE_NEWNET = 0x40000000
_ns_seq = [0]
_HOME_NS = os.readlink("/proc/self/ns/net")   # the namespace the tests started in


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def _ns_call(fn, *args):
    import ctypes
    if fn(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (fn.__name__, os.strerror(e)))


class NetNS:
    """A fresh network namespace with only loopback up, entered by the
    calling thread until exit()."""

    def __init__(self):
        _ns_seq[0] += 1
        self.name = "gwt-%d-%d" % (os.getpid(), _ns_seq[0])
        self.home = None

    def enter(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _ns_call(_libc().unshare, _CLONE_NEWNET)
        except BaseException:
            os.close(self.home)
            self.home = None
            raise
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        except BaseException:
            self.exit()
            raise
        _given_ports.clear()   # a new port space
        return self

    def exit(self):
        if self.home is not None:
            _ns_call(_libc().setns, self.home, _CLONE_NEWNET)
            os.close(self.home)
            self.home = None

    def v6_local(self):
        """Make 2001:db8::/48 local (any address in it can be bound as a
        client source); 2001:db8::1 is configured for servers.  Run from the
        thread inside the namespace."""
        assert NetNS.inside()
        for cmd in (["ip", "-6", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"],
                    ["ip", "-6", "route", "add", "local", "2001:db8::/48", "dev", "lo"],
                    ["sysctl", "-qw", "net.ipv6.ip_nonlocal_bind=1"]):
            subprocess.run(cmd, check=True)

    @staticmethod
    def inside():
        """True when the calling thread is not in the host's namespace."""
        return os.readlink("/proc/thread-self/ns/net") != _HOME_NS

    def __enter__(self):
        return self.enter()

    def __exit__(self, *exc):
        self.exit()


class ScriptOrigin:
    """A keep-alive loopback origin run by a script: after each request head
    on a connection it calls script(sock, n), n counting the requests of that
    connection (a request body is left unread); bytes it returns are sent.
    .heads: every request head; .conns: connections accepted;
    .send_failed_at: time.monotonic() when a send failed (the proxy closed
    the connection); .sent_all_at: free for scripts to set."""

    def __init__(self, script):
        self.script = script
        self.heads = []
        self.conns = 0
        self.send_failed_at = None
        self.sent_all_at = None
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
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
        buf, n = b"", 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    b = c.recv(65536)
                    if not b:
                        return
                    buf += b
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                try:
                    out = self.script(c, n)
                    if out:
                        c.sendall(out)
                except OSError:
                    self.send_failed_at = time.monotonic()
                    return
                n += 1
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def both_doors_conf(fport, rport, origin_port, global_extra=""):
    """A forward listener (loopback clients, no destination denied) and a
    reverse listener routing everything to one origin; global_extra goes into
    the global group (e.g. "timeouts: { upstream_response = 2.0; };")."""
    return """
@GLOBAL@ %s };
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
""" % (global_extra, fport, rport, origin_port)
