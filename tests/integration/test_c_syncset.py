"""Configuration sync of a set of files (issue 21, cluster.sync_dir): each
node's main file is its own (listeners, console, cluster section; it may be
read-only, as /etc/gatehouse is under the packaged unit) and @includes the
shared configuration from cluster.sync_dir, next to the lists and users
files it names.  A reload on A offers the whole directory to B, which
checks it as -t does with the new files in place and keeps it, or puts its
old set back (all or none) and says why."""
import os
import time
import signal

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file
from test_c_cluster import wait_for

TOKEN = "0123456789abcdef-set-token\n"

MAIN = """global: { workers = 1; user = ""; state_dir = "%(dir)s";
  log: { error = "stderr"; level = "info"; access = "%(dir)s/access.log"; };
  dns: { hosts_file = "hosts"; }; };
admin: { listen = "127.0.0.1:%(aport)d"; users_file = "users"; };
cluster: { peers = [ "127.0.0.1:%(peer)d" ]; token_file = "token"; sync_dir = "cluster"; };
@include "cluster/shared.conf"
"""

SHARED = """forward: {
  @include "fwd-listeners.conf"
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  lists = ( { name = "bad"; file = "cluster/bad.domains"; } );
  auth: { realm = "Pair"; users_file = "cluster/fwd-users"; };
  policy = ( { name = "block"; action = "deny"; lists = [ "bad" ]; },
             { name = "login"; action = "auth"; }, { name = "rest"; action = "allow"; } );
};
"""


class Node(gh.Gatehouse):
    def __init__(self, fport, aport, peer, users):
        self.fport, self.aport, self.peer = fport, aport, peer
        super().__init__("", extra_files={
            "users": users_file(), "token": TOKEN, "hosts": gh.hosts_file(["ok.test", "bad.test", "worse.test"]),
            "fwd-listeners.conf": 'listeners = ( { address = "127.0.0.1:%d"; } );\n' % fport,
            "cluster/shared.conf": SHARED, "cluster/bad.domains": "bad.test\n", "cluster/fwd-users": users})

    def write_conf(self, conf_text):
        with open(self.conf, "w") as f:
            f.write(MAIN % {"dir": self.dir, "aport": self.aport, "peer": self.peer})

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)

    def get(self, url, user):
        return gh.curl_status("-x", "http://127.0.0.1:%d" % self.fport, "--proxy-user", user, url)


def cluster(c):
    return c.get("/api/v1/cluster").json["sync"]


def sets(g):
    return sorted(n for n in os.listdir(g.dir) if n.startswith("cluster"))


@pytest.fixture
def pair():
    users = "erin:%s\n" % gh.crypt_hash("patient")
    fa, fb, aa, ab = (gh.free_port() for _ in range(4))
    a, b = Node(fa, aa, ab, users), Node(fb, ab, aa, users)
    try:
        for g in (a, b):
            g.start([g.fport, g.aport])
            g.c = Console(g.aport)
            assert g.c.login("admin", ADMIN_PW).status == 200
        yield a, b
    finally:
        for g in (a, b):
            if g.proc is not None:
                g.check_clean()


def test_the_set_reaches_b(pair, origin):
    a, b = pair
    ok = "http://ok.test:%d/size/1" % origin.port
    worse = "http://worse.test:%d/size/1" % origin.port
    assert wait_for(lambda: all(p["reachable"] and not p["diverged"] for g in (a, b)
                                for p in cluster(g.c)["peers"]), 12)
    assert b.get(worse, "fay:fairy") == 407              # B: no fay, worse.test not listed
    main_b = b.read("gatehouse.conf")
    gen_b = b.c.get("/api/v1/reload").json["generation"]
    # A: a new list entry and a new user, in two files beside the shared one
    a.write("cluster/bad.domains", "bad.test\nworse.test\n")
    a.write("cluster/fwd-users", a.read("cluster/fwd-users") + "fay:%s\n" % gh.crypt_hash("fairy"))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(a.c)["peers"][0]["last_result"] == "applied"), a.stderr()[-2000:]
    assert b.c.get("/api/v1/reload").json["generation"] == gen_b + 1
    # B serves with both files: fay signs in, worse.test is blocked
    assert b.get(ok, "fay:fairy") == 200
    assert b.get(worse, "fay:fairy") == 403
    for name in ("cluster/shared.conf", "cluster/bad.domains", "cluster/fwd-users"):
        assert b.read(name) == a.read(name), name
    # B's own files are untouched; its sync_dir is now a link to the set in use, the old set is gone
    assert b.read("gatehouse.conf") == main_b
    assert b.read("fwd-listeners.conf") == 'listeners = ( { address = "127.0.0.1:%d"; } );\n' % b.fport
    assert os.path.islink(b.path("cluster")) and len(sets(b)) == 2, sets(b)
    assert "applied the configuration offered by a peer" in b.stderr()
    assert wait_for(lambda: not cluster(a.c)["peers"][0]["diverged"] and not cluster(b.c)["peers"][0]["diverged"],
                    12)

    # a second change: the link moves again, still one set kept
    link = os.readlink(b.path("cluster"))
    a.write("cluster/bad.domains", "bad.test\n")
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(a.c)["peers"][0]["generation"] == gen_b + 2), a.stderr()[-2000:]
    assert os.readlink(b.path("cluster")) != link and len(sets(b)) == 2, sets(b)
    assert b.get(worse, "fay:fairy") == 200

    # and back: B's own change is read through its link and reaches A
    b.write("cluster/bad.domains", "bad.test\nok.test\n")
    b.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(b.c)["peers"][0]["last_result"] == "applied"), b.stderr()[-2000:]
    assert a.read("cluster/bad.domains") == "bad.test\nok.test\n" and os.path.islink(a.path("cluster"))
    assert a.get(ok, "fay:fairy") == 403


def test_b_refuses_the_whole_set(pair, origin):
    a, b = pair
    worse = "http://worse.test:%d/size/1" % origin.port
    assert wait_for(lambda: all(p["reachable"] for g in (a, b) for p in cluster(g.c)["peers"]), 12)
    before = {n: b.read("cluster/" + n) for n in ("shared.conf", "bad.domains", "fwd-users")}
    gen_b = b.c.get("/api/v1/reload").json["generation"]
    # a change to a list (fine) and a groups file only A has (outside the set): B must refuse both
    a.write("groups-a-only", "staff: erin\n")
    a.write("cluster/bad.domains", "bad.test\nworse.test\n")
    a.write("cluster/shared.conf", SHARED.replace('users_file = "cluster/fwd-users";',
                                                 'users_file = "cluster/fwd-users"; groups_file = "groups-a-only";'))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: cluster(a.c)["peers"][0]["last_result"].startswith("refused")), a.stderr()[-2000:]
    res = cluster(a.c)["peers"][0]["last_result"]
    assert "groups-a-only" in res, res
    # none of it on B: every file, the configuration and the set directories as before
    for n, text in before.items():
        assert b.read("cluster/" + n) == text, n
    assert b.c.get("/api/v1/reload").json["generation"] == gen_b
    assert b.get(worse, "erin:patient") == 200
    assert sets(b) == ["cluster"] or (len(sets(b)) == 2 and os.path.islink(b.path("cluster"))), sets(b)
    assert not any(n.endswith(".link") for n in os.listdir(b.dir))
    assert cluster(b.c)["received"]["result"].startswith("refused")
    assert wait_for(lambda: cluster(a.c)["peers"][0]["diverged"] and cluster(b.c)["peers"][0]["diverged"], 12)


def signed_post(g, body):
    import hashlib
    import hmac
    import time
    t = int(time.time())
    path = "/api/v1/cluster/files"
    sig = hmac.new(TOKEN.strip().encode(), b"%d\nPOST %s\n" % (t, path.encode()) + body, hashlib.sha256).hexdigest()
    rc, out, err = gh.curl("-s", "-X", "POST", "-H", "X-Gatehouse-Cluster: t=%d;sig=%s" % (t, sig),
                           "--data-binary", "@-", "http://127.0.0.1:%d%s" % (g.aport, path), input=body)
    return out


def test_hostile_sets_are_refused(pair):
    a, b = pair
    listing = sorted(os.listdir(b.dir))
    gen_b = b.c.get("/api/v1/reload").json["generation"]
    for name in (b"../escape.conf", b"/tmp/abs.conf", b".hidden", b"a/../../x", b"a//b", b"dir/"):
        out = signed_post(b, b"GHSET1\n3 " + name + b"\nabc")
        assert b"refused file name" in out, (name, out)
    for body, want in ((b"GHSET1\n99 x\nabc", b"malformed"), (b"GHSET1\nx y\n", b"malformed"),
                       (b"GHSET1\n\n3 x\nabc", b"malformed"), (b"GHSET1\n -3 x\nabc", b"malformed"),
                       (b"GHSET1\n+3 x\nabc", b"malformed"),
                       (b"not a set", b"not a set of configuration files")):
        assert want in signed_post(b, body), body
    # unsigned: 401 before anything is looked at
    rc, out, err = gh.curl("-s", "-w", "%{http_code}", "-X", "POST", "--data-binary", "GHSET1\n",
                           "http://127.0.0.1:%d/api/v1/cluster/files" % b.aport)
    assert out.endswith(b"401")
    assert sorted(os.listdir(b.dir)) == listing and not os.path.exists(os.path.join(os.path.dirname(b.dir),
                                                                                    "escape.conf"))
    assert b.c.get("/api/v1/reload").json["generation"] == gen_b


def test_large_sets_only_from_a_peer_address(pair):
    """The set endpoint takes bodies above the console's 64 KiB only from a
    configured peer's address with a fresh signature header: anyone else is
    cut at 64 KiB (413) before the signature can be checked, so an
    unauthenticated client cannot make the console hold megabytes."""
    a, b = pair
    body = b"GHSET1\n" + b"x" * (100 * 1024)
    hdr = "X-Gatehouse-Cluster: t=%d;sig=%s" % (int(time.time()), "0" * 64)
    url = "http://127.0.0.1:%d/api/v1/cluster/files" % b.aport
    for src, want in (("127.0.0.2", b"413"), ("127.0.0.1", b"401")):
        rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", src, "-X", "POST",
                               "-H", hdr, "--data-binary", "@-", url, input=body)
        assert out == want, (src, out, err)
    # a stale signature header from the peer's address: cut at 64 KiB too
    stale = "X-Gatehouse-Cluster: t=%d;sig=%s" % (int(time.time()) - 3600, "0" * 64)
    rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", stale,
                           "--data-binary", "@-", url, input=body)
    assert out == b"413", out


def test_sync_dir_config_errors(tmp_path):
    import subprocess
    for text, want in (('cluster: { sync_dir = "/"; };', "cluster.sync_dir"),
                       ('cluster: { sync_dir = 3; };', "cluster.sync_dir")):
        p = tmp_path / "g.conf"
        p.write_text('reverse: { listeners = ( { address = "127.0.0.1:1"; } ); };\n' + text + "\n")
        r = subprocess.run([gh.BIN, "-t", "-c", str(p)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and want in r.stderr and "g.conf:2" in r.stderr, r.stderr


class PackagedNode(Node):
    """The packaged unit's layout: the node's own files in etc/ (read-only to
    the daemon, as /etc/gatehouse under ProtectSystem=strict: a read-only
    bind mount in a mount namespace of its own), the shared set in
    var/cluster (writable, as /var/lib/gatehouse)."""

    def __init__(self, fport, aport, peer, users, ro):
        self.ro = ro
        shared = SHARED.replace('"cluster/', '"../var/cluster/')
        self.fport, self.aport, self.peer = fport, aport, peer
        gh.Gatehouse.__init__(self, "", extra_files={
            "etc/users": users_file(), "etc/token": TOKEN,
            "etc/hosts": gh.hosts_file(["ok.test", "bad.test", "worse.test"]),
            "etc/fwd-listeners.conf": 'listeners = ( { address = "127.0.0.1:%d"; } );\n' % fport,
            "var/cluster/shared.conf": shared, "var/cluster/bad.domains": "bad.test\n",
            "var/cluster/fwd-users": users})

    def write_conf(self, conf_text):
        self.conf = os.path.join(self.dir, "etc", "gatehouse.conf")
        os.makedirs(os.path.dirname(self.conf), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(MAIN.replace('sync_dir = "cluster"', 'sync_dir = "../var/cluster"').replace(
                '@include "cluster/shared.conf"', '@include "../var/cluster/shared.conf"')
                % {"dir": os.path.join(self.dir, "var"), "aport": self.aport, "peer": self.peer})

    def start(self, wait_ports=()):
        import subprocess
        if not self.ro:
            return super().start(wait_ports)
        etc = os.path.join(self.dir, "etc")
        self.err = open(self.errlog, "wb")
        # unshare and sh exec into gatehouse: self.proc is the daemon itself
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                      'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3"',
                                      "sh", etc, gh.BIN, self.conf], stdout=self.err, stderr=self.err)
        for p in wait_ports:
            assert gh.wait_port(p), self.stderr()
        return self


def test_set_reaches_a_node_whose_main_file_is_read_only(origin):
    users = "erin:%s\n" % gh.crypt_hash("patient")
    fa, fb, aa, ab = (gh.free_port() for _ in range(4))
    a, b = PackagedNode(fa, aa, ab, users, False), PackagedNode(fb, ab, aa, users, True)
    try:
        for g in (a, b):
            g.start([g.fport, g.aport])
            g.c = Console(g.aport)
            assert g.c.login("admin", ADMIN_PW).status == 200
        # B's etc/ is read-only where B runs (its mount namespace, seen through /proc/PID/root)
        with pytest.raises(OSError) as e:
            open("/proc/%d/root%s/etc/probe" % (b.proc.pid, b.dir), "w")
        assert e.value.errno == 30                       # EROFS
        worse = "http://worse.test:%d/size/1" % origin.port
        assert b.get(worse, "erin:patient") == 200
        gen_b = b.c.get("/api/v1/reload").json["generation"]
        a.write("var/cluster/bad.domains", "bad.test\nworse.test\n")
        a.signal(signal.SIGHUP)
        assert wait_for(lambda: cluster(a.c)["peers"][0]["last_result"] == "applied"), \
            (cluster(a.c), b.stderr()[-2000:])
        assert b.c.get("/api/v1/reload").json["generation"] == gen_b + 1
        assert b.get(worse, "erin:patient") == 403
        assert os.path.islink(b.path("var/cluster"))
    finally:
        for g in (a, b):
            if g.proc is not None:
                g.check_clean()
