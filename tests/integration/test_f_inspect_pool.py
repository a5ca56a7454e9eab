"""TLS inspection: an inspected connection keeps the origin connection it
verified for all its requests, and that connection closes with it, however
many clients inspect the same origin.  Before, the origin session went to the
shared pool after the first request, where more idle connections than the
per-key keepalive (32) were closed and the rest handed to whichever client
asked next: with 40 clients, 8 origin connections closed at once and later
requests crossed to other clients' sessions (made new ones under load: the
keep-alive bench's CPU per request doubled past 32 clients).
A real TLS origin (Python, threads) numbers its connections and answers
each request with that number; the clients are Python TLS sockets through
the proxy's CONNECT, each trusting the Gatehouse CA."""
import os
import socket
import ssl
import threading
import time

import pytest

import gh

CLIENTS = 40          # more than the pool's per-key keepalive (32)
HOST = "pool.test"

CONF = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d ];
  policy = ( { name = "all"; action = "allow"; } );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""


class CountingOrigin:
    """Numbers each accepted TLS connection, answers every request on it with
    "conn=N", and counts the connections the proxy closed."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lock = threading.Lock()
        self.accepted = 0
        self.closed = 0
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
            threading.Thread(target=self._one, args=(c, n), daemon=True).start()

    def _one(self, c, n):
        try:
            c.settimeout(60)
            s = self.ctx.wrap_socket(c, server_side=True)
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    body = b"conn=%d\n" % n
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()
            with self.lock:
                self.closed += 1

    def counts(self):
        with self.lock:
            return self.accepted, self.closed

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def ns():
    """A network namespace with only `lo` up, entered before the servers start."""
    n = gh.NetNS().enter()
    yield n
    n.exit()


@pytest.fixture(scope="module")
def env(ns, tmp_path_factory):
    assert gh.NetNS.inside()

    class E:
        pass
    e = E()
    d = str(tmp_path_factory.mktemp("pool"))
    ca, _ = gh.make_ca(d)
    crt, key = gh.make_cert(d, "origin", [HOST])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    e.origin = CountingOrigin(ctx)
    e.port = gh.free_port()
    e.g = gh.Gatehouse(CONF % {"port": e.port, "oport": e.origin.port, "ca": ca},
                       extra_files={"hosts": gh.hosts_file([HOST])})
    e.g.start([e.port])
    rc, pem, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt" % e.port)
    assert rc == 0 and b"BEGIN CERTIFICATE" in pem, err
    e.gwca = os.path.join(e.g.dir, "gatehouse-ca.pem")
    with open(e.gwca, "wb") as f:
        f.write(pem)
    yield e
    e.origin.stop()
    e.g.check_clean()


def inspected(e):
    """A CONNECT through the proxy, then TLS trusting only the Gatehouse CA."""
    s = socket.create_connection(("127.0.0.1", e.port), timeout=20)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), e.origin.port,
                                                                  HOST.encode(), e.origin.port))
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        assert d, "proxy closed during CONNECT: %r" % head
        head += d
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=e.gwca)
    return ctx.wrap_socket(s, server_hostname=HOST)


def get(t):
    """One keep-alive GET on t: the body (conn=N)."""
    t.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = t.recv(65536)
        assert d, "connection closed before a response: %r" % buf
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    n = int([x.split(b":")[1] for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        d = t.recv(65536)
        assert d, "body cut short"
        body += d
    return body.decode()


def wait_counts(e, accepted, closed, secs=20):
    end = time.time() + secs
    while time.time() < end and e.origin.counts() != (accepted, closed):
        time.sleep(0.05)
    return e.origin.counts()


def test_each_inspected_connection_keeps_its_origin_connection(env):
    e = env
    a0, c0 = e.origin.counts()
    clients, first = [], []
    for _ in range(CLIENTS):      # all open at once, each idle after its first request
        t = inspected(e)
        clients.append(t)
        first.append(get(t))
    assert len(set(first)) == CLIENTS, first   # one verified origin session per CONNECT
    assert wait_counts(e, a0 + CLIENTS, c0, secs=1) == (a0 + CLIENTS, c0), \
        "origin connections of open inspected clients were closed"
    for _ in range(3):            # later requests: on the client's own session
        for t, f in zip(clients, first):
            assert get(t) == f
    assert e.origin.counts() == (a0 + CLIENTS, c0)
    for t in clients:
        t.close()
    # and each origin connection closes with its client (as a tunnel's does)
    assert wait_counts(e, a0 + CLIENTS, c0 + CLIENTS) == (a0 + CLIENTS, c0 + CLIENTS)
