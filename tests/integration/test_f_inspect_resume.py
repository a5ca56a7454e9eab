"""TLS inspection: the origin handshake of an inspected CONNECT resumes the
session verified before for the same host and address (TLS 1.3 tickets of a
Python TLS origin that reports SSLSocket.session_reused), never for another
name, and never across a reload: a reload whose trust store no longer trusts
the origin refuses it (no cached session carries the old trust over), and
after the trust comes back the first handshake is a full one again.
An origin that never resumes (no tickets) makes every handshake a full one,
where the verified-chain memo may skip the chain check: it must never
accept any certificate other than the very chain verified for that name."""
import os
import shutil
import socket
import ssl
import threading

import pytest

import gh

NAMES = ["a.test", "b.test"]

CONF = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  timeouts: { client_header = 2.0; upstream_connect = 2.0; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d, %(fport)d ];
  policy = ( { name = "all"; action = "allow"; } );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""


class ResumeOrigin:
    """A TLS 1.3 origin (tickets on): each connection's session_reused is
    recorded and answered as the body of every request on it."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.reused = []
        self.port = gh.free_port()
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
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(10)
            s = self.ctx.wrap_socket(c, server_side=True)
            self.reused.append(s.session_reused)
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    body = b"reused=%d\n" % s.session_reused
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def ns():
    """Like test_f_inspect.py's: a network namespace with only `lo` up,
    entered before the module's servers start."""
    n = gh.NetNS().enter()
    yield n
    n.exit()


@pytest.fixture(scope="module")
def env(ns, tmp_path_factory):
    assert gh.NetNS.inside()

    class E:
        pass
    e = E()
    d = str(tmp_path_factory.mktemp("resume"))
    other = str(tmp_path_factory.mktemp("otherca"))
    e.ca_good, _ = gh.make_ca(d)
    e.ca_other, _ = gh.make_ca(other)
    e.trust = os.path.join(d, "trust.pem")
    shutil.copy(e.ca_good, e.trust)
    crt, key = gh.make_cert(d, "origin", NAMES)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    e.origin = ResumeOrigin(ctx)
    e.port = gh.free_port()
    e.full_ctx = {}
    for what, cd, sans in (("good", d, ["a.test"]), ("untrusted", other, ["a.test"]), ("wrongname", d, ["c.test"])):
        crt, key = gh.make_cert(cd, "full-" + what, sans)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(crt, key)
        c.minimum_version = ssl.TLSVersion.TLSv1_3
        c.num_tickets = 0   # nothing to resume with: full handshakes only
        e.full_ctx[what] = c
    e.full = ResumeOrigin(e.full_ctx["good"])
    e.port = gh.free_port()
    e.g = gh.Gatehouse(CONF % {"port": e.port, "oport": e.origin.port, "fport": e.full.port, "ca": e.trust},
                       extra_files={"hosts": gh.hosts_file(NAMES)})
    e.g.start([e.port])
    rc, pem, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt" % e.port)
    e.gwca = os.path.join(e.g.dir, "gatehouse-ca.pem")
    with open(e.gwca, "wb") as f:
        f.write(pem)
    yield e
    e.origin.stop()
    e.full.stop()
    e.g.check_clean()


def get(e, host, port=None):
    """One new inspected CONNECT (its own curl): (curl exit, body)."""
    rc, out, err = gh.curl("-sS", "--suppress-connect-headers", "-x", "http://127.0.0.1:%d" % e.port,
                           "--cacert", e.gwca, "https://%s:%d/" % (host, port or e.origin.port))
    return rc, out.decode(errors="replace") + err


def test_second_connect_resumes_same_origin_only(env):
    assert get(env, "a.test") == (0, "reused=0\n")
    # a new CONNECT to the same host and address: the origin handshake resumed
    assert get(env, "a.test") == (0, "reused=1\n")
    assert get(env, "a.test") == (0, "reused=1\n")
    # another name at the same address: verified on its own, a full handshake
    assert get(env, "b.test") == (0, "reused=0\n")
    assert get(env, "b.test") == (0, "reused=1\n")


def test_reload_with_changed_trust_never_resumes(env):
    assert get(env, "a.test")[0] == 0
    assert get(env, "a.test") == (0, "reused=1\n")
    # the trust store no longer holds the origin's CA: a session cached under
    # the old trust must not let the next CONNECT in
    shutil.copy(env.ca_other, env.trust)
    n = len(env.origin.reused)
    env.g.reload()
    rc, out = get(env, "a.test")
    assert rc == 0 and out.startswith("502 ") and "certificate is not trusted" in out, out
    assert "reused=" not in out, out
    assert True not in env.origin.reused[n:], env.origin.reused[n:]
    # trust restored: the first handshake of the new generation is a full one,
    # the next resumes again
    shutil.copy(env.ca_good, env.trust)
    env.g.reload()
    assert get(env, "a.test") == (0, "reused=0\n")
    assert get(env, "a.test") == (0, "reused=1\n")


def test_full_handshakes_accept_only_the_chain_verified(env):
    o = env.full
    o.ctx = env.full_ctx["good"]
    n = len(o.reused)
    for _ in range(3):   # the first verifies the chain, the next ones meet it again
        assert get(env, "a.test", o.port) == (0, "reused=0\n")
    # same name, same address, a certificate the trust store does not vouch
    # for (another CA of the same name): refused, though a chain for a.test
    # at this address passed a moment ago
    o.ctx = env.full_ctx["untrusted"]
    rc, out = get(env, "a.test", o.port)
    assert rc == 0 and out.startswith("502 ") and "reused=" not in out, out
    # a trusted certificate for another name: refused as such
    o.ctx = env.full_ctx["wrongname"]
    rc, out = get(env, "a.test", o.port)
    assert rc == 0 and out.startswith("502 ") and "another name" in out, out
    # the verified certificate again: accepted
    o.ctx = env.full_ctx["good"]
    assert get(env, "a.test", o.port) == (0, "reused=0\n")
    assert True not in o.reused[n:]
