"""TLS inspection: single-flight minting.  Concurrent first CONNECTs to the
same new host wait for one minting instead of each minting its own leaf.

The race is made reliable without any hook in the product: the company CA
has an RSA-4096 key (a real-world CA choice; one signature takes several
milliseconds, ~100x an EC P-256 one), and the origin holds every TLS
handshake until all N upstream connections have arrived, so Gatehouse
finishes the N origin handshakes within a moment of each other while the
first minting is still signing.  /metrics must then count one minted
certificate and at least one wait, and every client verifies the leaf it
got against the RSA CA."""
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import gh
from test_f_inspect_resume import ns  # noqa: F401 (the module's netns fixture)

N = 8
ROUNDS = 5
HOSTS = ["slow%d.test" % k for k in range(ROUNDS)]

CONF = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  timeouts: { client_header = 10.0; upstream_connect = 10.0; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d ];
  policy = ( { name = "all"; action = "allow"; } );
  inspect: { mode = "all"; ca_cert = "%(cacert)s"; ca_key = "%(cakey)s"; upstream_ca_file = "%(ca)s"; };
};
admin: { listen = "127.0.0.1:%(adm)d"; users_file = "@DIR@/users"; metrics_listen = "127.0.0.1:%(met)d"; };
"""


class BarrierOrigin:
    """A TLS origin that starts no handshake before `n` connections are
    waiting (or 20 s passed since the first), then serves each one
    ("200 ok"); later connections are served at once."""

    def __init__(self, ctx, n):
        self.ctx = ctx
        self.n = n
        self.arm()
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
                c.settimeout(None)
                if self.released:
                    threading.Thread(target=self._one, args=(c,), daemon=True).start()
                    continue
                self.waiting.append(c)
                self.first = self.first or time.monotonic()
            except socket.timeout:
                pass
            except OSError:
                return
            if not self.released and self.first is not None and \
                    (len(self.waiting) >= self.n or time.monotonic() - self.first > 20):
                self.released = True
                for w in self.waiting:
                    threading.Thread(target=self._one, args=(w,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(30)
            s = self.ctx.wrap_socket(c, server_side=True)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            s.close()
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def arm(self):
        """Hold handshakes again until n more connections wait."""
        self.waiting = []
        self.first = None
        self.released = False

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def env(ns, tmp_path_factory):
    assert gh.NetNS.inside()

    class E:
        pass
    e = E()
    d = str(tmp_path_factory.mktemp("mint"))
    # the company CA: RSA-4096 (slow to sign with)
    e.cacert, e.cakey = os.path.join(d, "rsa-ca.pem"), os.path.join(d, "rsa-ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-keyout", e.cakey, "-out", e.cacert,
                    "-days", "30", "-subj", "/CN=Gatehouse Slow Test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    os.chmod(e.cakey, 0o600)
    # the origins' CA and the origin
    e.upca, _ = gh.make_ca(d)
    crt, key = gh.make_cert(d, "origin", HOSTS)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    e.origin = BarrierOrigin(ctx, N)
    e.port, e.adm, e.met = gh.free_port(), gh.free_port(), gh.free_port()
    e.g = gh.Gatehouse(CONF % {"port": e.port, "oport": e.origin.port, "ca": e.upca, "cacert": e.cacert,
                               "cakey": e.cakey, "adm": e.adm, "met": e.met},
                       extra_files={"hosts": gh.hosts_file(HOSTS), "users": ""})
    e.g.start([e.port, e.met])
    yield e
    e.origin.stop()
    e.g.check_clean()


def test_concurrent_first_connects_share_one_minting(env):
    """Each round: N concurrent first CONNECTs to a new host.  Every round
    mints exactly one certificate, the other N-1 waited for it or (arriving
    after it was made) found it cached; and at least one round saw waiters.
    How many arrive while the first is still signing depends on how the
    loaded machine schedules the origin's handshakes, so a round without a
    waiter is tried again with another host, up to ROUNDS times: a proxy
    whose waiters minted their own would never count a wait (and would
    mint more than one per round)."""
    m0 = gh.metrics(env.met)
    assert m0.get('gatehouse_forward_inspect_total{event="minted"}', 0) == 0
    get = lambda m, ev: m.get('gatehouse_forward_inspect_total{event="%s"}' % ev, 0)
    prev, waits_seen = m0, 0
    for k, host in enumerate(HOSTS):
        env.origin.arm()
        procs = [subprocess.Popen(["curl", "-sS", "-m", "60", "--suppress-connect-headers",
                                   "-x", "http://127.0.0.1:%d" % env.port, "--cacert", env.cacert,
                                   "https://%s:%d/n%d" % (host, env.origin.port, i)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(N)]
        outs = [p.communicate(timeout=90) for p in procs]
        # every client verified its minted leaf against the RSA CA and got the page
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0 and out == b"ok\n", (p.returncode, out, err)
        assert env.origin.released and len(env.origin.waiting) == N
        m = gh.metrics(env.met)
        assert get(m, "inspected") - get(prev, "inspected") == N
        # one certificate for the N first CONNECTs to this host
        assert get(m, "minted") - get(prev, "minted") == 1, m
        waits = get(m, "mint_waits") - get(prev, "mint_waits")
        hits = get(m, "cache_hits") - get(prev, "cache_hits")
        assert waits + hits == N - 1, m
        assert m["gatehouse_forward_inspect_cached_certs"] == k + 1
        prev, waits_seen = m, waits_seen + waits
        if waits_seen >= 1:
            break
    assert waits_seen >= 1, "no round had a CONNECT waiting for a minting in progress: %r" % prev
