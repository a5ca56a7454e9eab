"""icaps:// (issue 19): ICAP over TLS.  The real c-icap (echo) speaks plain
ICAP, so the test puts its own TLS terminator in front of it (a Python
relay with a certificate from the test CA for icaps.test): Gatehouse
verifies the server against the service's ca_file and the uri's host name,
and downloads pass byte-identical through the TLS connection (pooled, echo
200 and 204 in turn).  A server whose certificate the CA file does not
vouch for is an ICAP failure: 502, with the reason logged."""
import os
import socket
import ssl
import threading
import time

import pytest

import gh
import icap_peers

BODY = bytes((i * 7 + (i >> 5)) % 241 for i in range(150 * 1024))


class TlsRelay:
    """TLS on port, relayed as plain TCP to 127.0.0.1:target."""

    def __init__(self, cert, key, target):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.target = target
        self.accepted = 0
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(32)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()
            return
        self.accepted += 1
        u = socket.create_connection(("127.0.0.1", self.target))

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):   # (shutdown: a recv blocked in the other thread ends too)
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass
                try:
                    s.close()
                except OSError:
                    pass
        threading.Thread(target=pump, args=(u, t), daemon=True).start()
        pump(t, u)

    def stop(self):
        self.sock.close()


def conf(port, relay_port, ca, other_ca):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; servers = [ "127.0.0.1:9" ]; timeout = 0.3; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(P)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = (
    { name = "tls"; uri = "icaps://icaps.test:%(R)d/echo"; ca_file = "%(CA)s"; },
    { name = "untrusted"; uri = "icaps://icaps.test:%(R)d/echo"; ca_file = "%(OCA)s"; timeout = 10; }
  );
  policy = (
    { name = "tls"; action = "allow"; urls = [ "/tls/" ]; icap = [ "tls" ]; },
    { name = "untrusted"; action = "allow"; urls = [ "/untrusted/" ]; icap = [ "untrusted" ]; },
    { name = "all"; action = "allow"; }
  );
};
""" % dict(P=port, R=relay_port, CA=ca, OCA=other_ca)


@pytest.fixture(scope="module")
def env():
    peers = icap_peers.IcapPeers(with_clamd=False).start()
    origin = g = relay = None
    try:
        pki, other = os.path.join(peers.dir, "pki"), os.path.join(peers.dir, "other")
        os.makedirs(pki)
        os.makedirs(other)
        cert, key = gh.make_cert(pki, "icaps", ["icaps.test"])
        other_ca, _ = gh.make_ca(other)
        relay = TlsRelay(cert, key, peers.port)
        origin = gh.CacheOrigin()
        for pre in ("/tls", "/untrusted"):
            origin.script(pre + "/f.bin", headers=[("Content-Type", "application/octet-stream")], body=BODY)
        port = gh.free_port()
        g = gh.Gatehouse(conf(port, relay.port, os.path.join(pki, "ca.pem"), other_ca),
                         extra_files={"hosts": gh.hosts_file(["icaps.test"])})
        g.start(wait_ports=[port])
        yield g, port, origin, peers, relay
    finally:
        if relay is not None:
            relay.stop()
        icap_peers.stop_all(origin, g, peers)


def get(env, path):
    return icap_peers.proxied_get(env[1], env[2].port, path)


def test_downloads_pass_through_icaps(env):
    g, _, _, peers, relay = env
    for _ in range(4):   # (echo: 200 and 204 in turn; the TLS connection pooled)
        code, body = get(env, "/tls/f.bin")
        assert code == 200 and body == BODY, (code, len(body))
    assert relay.accepted >= 1
    deadline = time.monotonic() + 10
    while True:
        lines = g.access_lines(wait=0)
        done = [ln for ln in lines if "/tls/f.bin" in ln and "ICAP tls: " in ln]
        if len(done) >= 4:
            break
        assert time.monotonic() < deadline, lines[-4:]
        time.sleep(0.1)
    assert any("modified (200)" in ln for ln in done) and any("unchanged (204)" in ln for ln in done), done


def test_untrusted_server_fails_closed(env):
    g, _, _, _, _ = env
    code, body = get(env, "/untrusted/f.bin")
    assert code == 502 and b"Content scan failed" in body and BODY not in body, (code, body[:300])
    deadline = time.monotonic() + 10
    while "certificate is not trusted" not in g.stderr():
        assert time.monotonic() < deadline, g.stderr()[-2000:]
        time.sleep(0.1)
