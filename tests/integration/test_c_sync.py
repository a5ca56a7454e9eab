"""Configuration sync between the two nodes of a pair (issue 21): a reload on
node A offers its main file to B over B's console API, signed with the
pair's token; B checks it like `gatehouse -t` and applies it, or refuses,
keeps its old configuration and says why; both consoles show it.  Each
node's own settings (listeners, console, cluster.peers) live in files the
main file @includes, which are not synced."""
import os
import signal

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file
from test_c_cluster import wait_for

TOKEN = "0123456789abcdef-pair-token\n"

MAIN = """@include "node.conf"
reverse: {
  @include "listeners.conf"
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "app.test" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
"""

NODE = """global: { workers = 1; user = ""; state_dir = "%(dir)s";
  log: { error = "stderr"; level = "info"; access = "%(dir)s/access.log"; }; };
admin: { listen = "127.0.0.1:%(aport)d"; users_file = "%(dir)s/users"; %(tls)s };
cluster: { peers = [ "127.0.0.1:%(peer)d" ]; token_file = "token"; };
"""


class Node(gh.Gatehouse):
    def __init__(self, main, lport, aport, peer, token=TOKEN, tls=""):
        self.lport, self.aport, self.peer, self.tls = lport, aport, peer, tls
        self._main = main
        super().__init__("", extra_files={"users": users_file(), "token": token})

    def write_conf(self, conf_text):
        with open(os.path.join(self.dir, "node.conf"), "w") as f:
            f.write(NODE % {"dir": self.dir, "aport": self.aport, "peer": self.peer, "tls": self.tls})
        with open(os.path.join(self.dir, "listeners.conf"), "w") as f:
            f.write('listeners = ( { address = "127.0.0.1:%d"; } );\n' % self.lport)
        self.set_main(self._main)

    def set_main(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def main(self):
        with open(self.conf) as f:
            return f.read()


def cluster(c):
    return c.get("/api/v1/cluster").json["sync"]


@pytest.fixture
def pair(origin, origin2):
    la, lb, aa, ab = (gh.free_port() for _ in range(4))
    a = Node(MAIN % origin.port, la, aa, ab)
    b = Node(MAIN % origin.port, lb, ab, aa)
    a.start([la, aa])
    b.start([lb, ab])
    for g in (a, b):
        g.c = Console(g.aport)
        assert g.c.login("admin", ADMIN_PW).status == 200
    yield a, b
    a.check_clean()
    b.check_clean()


def test_reload_on_a_reaches_b(pair, origin, origin2):
    a, b = pair
    # in step: both files are the same, each sees the other healthy
    # (peers are polled every 5 s)
    assert wait_for(lambda: all(p["reachable"] and p["healthy"] and not p["diverged"]
                                for g in (a, b) for p in cluster(g.c)["peers"]), 12)
    gen_b = b.c.get("/api/v1/reload").json["generation"]
    # A's change: the upstream moves to origin2
    a.set_main(MAIN % origin2.port)
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(a.c)["peers"][0]["last_result"] == "applied"), a.stderr()[-2000:]
    assert b.main() == a.main()
    assert b.c.get("/api/v1/reload").json["generation"] == gen_b + 1
    n2 = len(origin2.requests)
    assert gh.curl("-H", "Host: app.test", "http://127.0.0.1:%d/size/2" % b.lport)[1] == b"xx"
    assert len(origin2.requests) == n2 + 1              # B now routes as A does
    assert "applied the configuration offered by a peer" in b.stderr()
    p = cluster(a.c)["peers"][0]
    assert p["generation"] == gen_b + 1 and p["last_sync"] > 0
    # B's own files were not touched; B did not offer it back as a change
    assert '"127.0.0.1:%d"' % b.lport in open(os.path.join(b.dir, "listeners.conf")).read()
    assert wait_for(lambda: not cluster(a.c)["peers"][0]["diverged"] and not cluster(b.c)["peers"][0]["diverged"], 12)


def test_b_refuses_a_bad_config_and_both_show_it(pair, origin):
    a, b = pair
    before = b.main()
    gen_b = b.c.get("/api/v1/reload").json["generation"]
    # valid for A, not for B: a users file only A has
    with open(os.path.join(a.dir, "fwd-users"), "w") as f:
        f.write("u:%s\n" % gh.crypt_hash("pw"))
    bad = (MAIN % origin.port) + 'forward: { listeners = ( { address = "127.0.0.1:%d"; } );\n' \
        '  auth: { users_file = "fwd-users"; }; };\n' % gh.free_port()
    a.set_main(bad)
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(a.c)["peers"][0]["last_result"].startswith("refused")), a.stderr()[-2000:]
    res = cluster(a.c)["peers"][0]["last_result"]
    assert "fwd-users" in res, res
    assert b.main() == before                                   # B keeps its file ...
    assert b.c.get("/api/v1/reload").json["generation"] == gen_b   # ... and its configuration
    assert cluster(b.c)["received"]["result"].startswith("refused")
    assert "refused the configuration offered by a peer" in b.stderr()
    assert not os.path.exists(b.conf + ".sync")
    # and the pair is flagged as diverged on both consoles
    assert wait_for(lambda: cluster(a.c)["peers"][0]["diverged"] and cluster(b.c)["peers"][0]["diverged"], 12)


def test_wrong_token_is_refused(origin):
    la, lb, aa, ab = (gh.free_port() for _ in range(4))
    a = Node(MAIN % origin.port, la, aa, ab)
    b = Node(MAIN % origin.port, lb, ab, aa, token="another-token-of-b-0000\n")
    a.start([la, aa])
    b.start([lb, ab])
    try:
        c = Console(aa)
        assert c.login("admin", ADMIN_PW).status == 200
        before = b.main()
        a.set_main((MAIN % origin.port) + "# a comment\n")
        a.signal(signal.SIGHUP)
        assert wait_for(lambda: cluster(c)["peers"][0]["last_result"].startswith("not authorized"))
        assert "wrong signature" in cluster(c)["peers"][0]["last_result"]
        assert wait_for(lambda: "cluster token" in cluster(c)["peers"][0]["state_error"], 12)   # the polls too
        assert "wrong signature" in cluster(c)["peers"][0]["last_result"]                 # still there
        assert b.main() == before
        # an unsigned call gets 401 too, and a replayed old signature as well
        r = Console(ab).request("POST", "/api/v1/cluster/sync", body="x")
        assert r.status == 401 and b"signature" in r.body
        r = Console(ab).request("GET", "/api/v1/cluster/state",
                                headers={"X-Gatehouse-Cluster": "t=1000;sig=" + "0" * 64})
        assert r.status == 401 and b"too old" in r.body
    finally:
        a.check_clean()
        b.check_clean()


def test_sync_over_https_consoles(origin, origin2, tmp_path):
    """When the consoles serve HTTPS, the nodes talk HTTPS to each other."""
    import subprocess
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "30", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    tls = 'tls_cert = "%s"; tls_key = "%s";' % (crt, key)
    la, lb, aa, ab = (gh.free_port() for _ in range(4))
    a = Node(MAIN % origin.port, la, aa, ab, tls=tls)
    b = Node(MAIN % origin.port, lb, ab, aa, tls=tls)
    a.start([la, aa])
    b.start([lb, ab])
    try:
        ca = Console(aa, https=True)
        assert ca.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: cluster(ca)["peers"][0]["healthy"], 12)
        a.set_main(MAIN % origin2.port)
        a.signal(signal.SIGHUP)
        assert wait_for(lambda: cluster(ca)["peers"][0]["last_result"] == "applied"), a.stderr()[-2000:]
        assert b.main() == a.main()
    finally:
        a.check_clean()
        b.check_clean()
