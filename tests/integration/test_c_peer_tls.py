"""Peer TLS verification between the consoles of a pair (issue 21,
cluster.peer_ca): with HTTPS consoles, a node that has the CA of its
peer's certificate talks to it (and says "verified"); a node given another
CA refuses the peer before sending anything, and its console shows why."""
import os
import signal
import subprocess

import gh
from test_a_console import ADMIN_PW, Console
from test_c_cluster import wait_for
from test_c_sync import MAIN, Node, cluster


def ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=" + name], check=True,
                   capture_output=True)
    return crt, key


def leaf(d, ca_crt, ca_key, san):
    key, csr, crt, ext = (os.path.join(d, "console" + x) for x in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=console"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", crt, "-days", "30", "-extfile", ext], check=True, capture_output=True)
    return crt, key


class TlsNode(Node):
    def __init__(self, main, lport, aport, peer, tls, peer_ca):
        self.peer_ca = peer_ca
        super().__init__(main, lport, aport, peer, tls=tls)

    def write_conf(self, conf_text):
        super().write_conf(conf_text)
        p = os.path.join(self.dir, "node.conf")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace('token_file = "token";', 'token_file = "token"; peer_ca = "%s";' % self.peer_ca))


def test_peer_certificate_verified_or_refused(origin, origin2, tmp_path):
    d = str(tmp_path)
    good, good_key = ca(d, "pair-ca")
    wrong, _ = ca(d, "other-ca")
    crt, key = leaf(d, good, good_key, "IP:127.0.0.1")
    tls = 'tls_cert = "%s"; tls_key = "%s";' % (crt, key)
    la, lb, aa, ab = (gh.free_port() for _ in range(4))
    a = TlsNode(MAIN % origin.port, la, aa, ab, tls, good)     # A trusts the CA of B's certificate
    b = TlsNode(MAIN % origin.port, lb, ab, aa, tls, wrong)    # B was given another CA
    try:
        a.start([la, aa])
        b.start([lb, ab])
        ca_, cb = Console(aa, https=True), Console(ab, https=True)
        for c in (ca_, cb):
            assert c.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: cluster(ca_)["peers"][0]["healthy"], 12), a.stderr()[-2000:]
        assert cluster(ca_)["peers"][0]["tls"] == "verified"
        # B refuses A: shown on B's console, logged
        assert wait_for(lambda: cluster(cb)["peers"][0]["tls"] == "refused", 12), b.stderr()[-2000:]
        p = cluster(cb)["peers"][0]
        assert not p["reachable"] and not p["healthy"]
        assert "certificate not verified with cluster.peer_ca" in p["state_error"], p
        assert "refused: certificate not verified" in b.stderr()
        # A -> B works
        a.set_main(MAIN % origin2.port)
        a.signal(signal.SIGHUP)
        assert wait_for(lambda: cluster(ca_)["peers"][0]["last_result"] == "applied"), a.stderr()[-2000:]
        assert b.main() == a.main()
        # B -> A is never sent: A keeps its file
        before = a.main()
        b.set_main((MAIN % origin.port) + "# changed on B\n")
        b.signal(signal.SIGHUP)
        assert wait_for(lambda: cluster(cb)["peers"][0]["last_result"].startswith("not sent: certificate"),
                        10), cluster(cb)
        assert a.main() == before
    finally:
        a.check_clean()
        b.check_clean()


def test_peer_certificate_for_another_address_is_refused(origin, tmp_path):
    d = str(tmp_path)
    good, good_key = ca(d, "pair-ca")
    crt, key = leaf(d, good, good_key, "IP:127.0.0.2,DNS:console.test")     # right CA, wrong address
    tls = 'tls_cert = "%s"; tls_key = "%s";' % (crt, key)
    la, lb, aa, ab = (gh.free_port() for _ in range(4))
    a = TlsNode(MAIN % origin.port, la, aa, ab, tls, good)
    b = TlsNode(MAIN % origin.port, lb, ab, aa, tls, good)
    try:
        a.start([la, aa])
        b.start([lb, ab])
        c = Console(aa, https=True)
        assert c.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: cluster(c)["peers"][0]["tls"] == "refused", 12), a.stderr()[-2000:]
        assert "IP address mismatch" in cluster(c)["peers"][0]["state_error"], cluster(c)["peers"][0]
    finally:
        a.check_clean()
        b.check_clean()


def test_peer_ca_config_errors(tmp_path):
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    (tmp_path / "t").write_text("0123456789abcdef0123\n")
    for text, want in (('cluster: { peer_ca = "nope.pem"; };', "cannot read"),
                       ('cluster: { peer_ca = "empty.pem"; };', "no PEM certificate")):
        p = tmp_path / "g.conf"
        p.write_text('reverse: { listeners = ( { address = "127.0.0.1:1"; } ); };\n' + text + "\n")
        r = subprocess.run([gh.BIN, "-t", "-c", str(p)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and want in r.stderr and "g.conf:2" in r.stderr and "cluster.peer_ca" in r.stderr, \
            r.stderr
