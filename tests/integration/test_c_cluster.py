"""Two gatehouse nodes sharing state through a real redis-server (issue 21):
one rate budget for a client alternating between the nodes, drain/disable
and cache purges applied on both, and the fallback when Redis dies (local
limits, logged once, shown in the console) with the catch-up when it is
back.  redis-server is Debian's, started by the test on a loopback port."""
import shutil
import subprocess
import tempfile
import time

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file

HOST = "app.test"


class Redis:
    def __init__(self, port=None):
        self.port = port or gh.free_port()
        self.dir = tempfile.mkdtemp(prefix="gh-redis-")
        self.proc = None
        self.auth = []

    def start(self, *extra):
        # FileNotFoundError when redis-server is missing: the test fails, it is not skipped
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir, *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert gh.wait_port(self.port), "redis-server did not start"
        return self

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *self.auth, *args], capture_output=True,
                              text=True, timeout=10).stdout

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis():
    r = Redis().start()
    yield r
    r.stop()


def node_conf(lport, aport, o1, o2, co_port, redis_port, prefix):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "16M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; } ); },
                { name = "c"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "app.test" ]; rate_limit = { requests_per_second = 0.05; burst = 6.0; };
              routes = ( { path = "/"; upstream = "app"; } ); },
            { hosts = [ "cache.test" ]; routes = ( { path = "/"; upstream = "c"; cache = true; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };
cluster: { redis = "127.0.0.1:%d"; redis_prefix = "%s"; };
""" % (lport, o1, o2, co_port, aport, redis_port, prefix)


class Pair:
    def __init__(self, redis, origin, origin2, co, prefix):
        self.nodes = []
        for _ in range(2):
            lport, aport = gh.free_port(), gh.free_port()
            g = gh.Gatehouse(node_conf(lport, aport, origin.port, origin2.port, co.port, redis.port, prefix),
                             workers=2, extra_files={"users": users_file()})
            g.start([lport, aport])
            g.lport, g.aport = lport, aport
            g.c = Console(aport)
            assert g.c.login("admin", ADMIN_PW).status == 200
            self.nodes.append(g)

    def wait_up(self, up=True, timeout=8):
        end = time.time() + timeout
        while time.time() < end:
            if all(g.c.get("/api/v1/cluster").json["redis"]["up"] == up for g in self.nodes):
                return True
            time.sleep(0.1)
        return False

    def stop(self):
        for g in self.nodes:
            g.check_clean()


def get(g, path):
    """A request to node g (or to the reverse port g) for the rate-limited site."""
    port = g if isinstance(g, int) else g.lport
    return gh.curl_status("-H", "Host: " + HOST, "http://127.0.0.1:%d%s" % (port, path))


def state_of(g, addr):
    return [s for s in g.c.get("/api/v1/upstreams").json["servers"] if s["address"] == addr][0]["state"]


def wait_for(fn, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.05)
    return False


def test_pair_shares_rate_budget_drain_and_purge(redis, origin, origin2):
    co = gh.CacheOrigin()
    pair = Pair(redis, origin, origin2, co, "ghtest1:")
    a, b = pair.nodes
    try:
        assert pair.wait_up(), [g.stderr()[-2000:] for g in pair.nodes]
        # one client alternating between the nodes: one budget of 6, not 6 per node
        codes = []
        for i in range(24):
            codes.append(get(pair.nodes[i % 2], "/size/1"))
            time.sleep(0.25)   # the nodes sync every 0.1 s
        ok = codes.count(200)
        assert 6 <= ok <= 8, codes                          # alone, each node would allow 6 (12)
        assert set(codes) <= {200, 429}
        keys = redis.cli("--scan", "--pattern", "ghtest1:rl:*").split()
        assert len(keys) == 1 and 0 < int(redis.cli("pttl", keys[0])) <= 2000 * 120 + 1000
        st = a.c.get("/api/v1/cluster").json["redis"]
        assert st["rate_limit_syncs"] > 0 and st["rate_limit_charged"] > 0 and not st["fallback"]
        assert "gatehouse_cluster_redis_up 1" in a.c.get("/metrics").body.decode()

        # drain on A: B follows (pub/sub); enable on B: A follows
        a2 = "127.0.0.1:%d" % origin2.port
        assert a.c.post("/api/v1/servers/drain", {"upstream": "app", "address": a2}).status == 200
        assert wait_for(lambda: state_of(b, a2) == "draining"), b.stderr()[-2000:]
        assert "set to draining by the pair" in b.stderr()
        assert redis.cli("hget", "ghtest1:servers", "app\t" + a2).strip() == "draining"
        assert b.c.post("/api/v1/servers/enable", {"upstream": "app", "address": a2}).status == 200
        assert wait_for(lambda: state_of(a, a2) == "up")

        # a purge on A empties B's cache too
        co.script("/p", headers=[("Cache-Control", "max-age=60")], body=b"cached")
        for g in (a, b):
            for _ in range(2):
                assert gh.curl("-H", "Host: cache.test", "http://127.0.0.1:%d/p" % g.lport)[1] == b"cached"
        assert co.count("/p") == 2                       # one fill per node, then hits
        assert b.c.get("/api/v1/cache").json["objects"] == 1
        r = a.c.post("/api/v1/cache/purge", {"host_prefix": "cache.test"})
        assert r.status == 200 and r.json["purged"] == 1
        assert wait_for(lambda: b.c.get("/api/v1/cache").json["objects"] == 0), b.stderr()[-2000:]
        assert "cache purge of prefix cache.test from the pair: 1 removed" in b.stderr()
        assert gh.curl("-H", "Host: cache.test", "http://127.0.0.1:%d/p" % b.lport)[1] == b"cached"
        assert co.count("/p") == 3                       # B fetched it again
    finally:
        pair.stop()
        co.stop()


def test_redis_dies_then_returns(redis, origin, origin2):
    co = gh.CacheOrigin()
    pair = Pair(redis, origin, origin2, co, "ghtest2:")
    a, b = pair.nodes
    try:
        assert pair.wait_up()
        redis.kill()
        assert pair.wait_up(False), [g.stderr()[-2000:] for g in pair.nodes]
        st = a.c.get("/api/v1/cluster").json["redis"]
        assert st["fallback"] and st["last_error"] and st["outages"] == 1
        assert "gatehouse_cluster_redis_up 0" in a.c.get("/metrics").body.decode()
        # limits go on per node: A alone allows its burst of 6, then 429
        codes = [get(a, "/size/1") for _ in range(9)]
        assert codes == [200] * 6 + [429] * 3, codes
        # a drain while Redis is away waits in the queue
        a2 = "127.0.0.1:%d" % origin2.port
        assert a.c.post("/api/v1/servers/drain", {"upstream": "app", "address": a2}).status == 200
        assert a.c.get("/api/v1/cluster").json["redis"]["queued"] == 1
        time.sleep(2.5)           # several reconnection attempts: still one log line per node
        for g in pair.nodes:
            assert g.stderr().count("unreachable") == 1, g.stderr()[-3000:]
        assert state_of(b, a2) == "up"
        redis.start()
        assert pair.wait_up(True, timeout=10), [g.stderr()[-2000:] for g in pair.nodes]
        assert wait_for(lambda: state_of(b, a2) == "draining"), b.stderr()[-2000:]
        assert "reachable again" in a.stderr()
        assert a.c.get("/api/v1/cluster").json["redis"]["queued"] == 0
    finally:
        pair.stop()
        co.stop()


def test_cluster_config_errors(tmp_path):
    for text, want in (('cluster: { redis = "localhost-ish:6379"; };', "cluster.redis"),
                       ('cluster: { redis = "*:6379"; };', 'give the Redis server as "ip:port"'),
                       ('cluster: { redis_prefix = "a b"; };', "no spaces in a key prefix"),
                       ('cluster: { sentinel = "x"; };', "sentinel"),
                       ('cluster: { peers = [ "127.0.0.1:9090" ]; };', "set cluster.token_file too"),
                       ('cluster: { peers = [ "peer.example:9090" ]; token_file = "t"; };', "peer.example"),
                       ('cluster: { token_file = "nope"; };', "cannot read"),
                       ('cluster: { token_file = "short"; };', "at least 16 characters")):
        p = tmp_path / "g.conf"
        (tmp_path / "short").write_text("abc\n")
        (tmp_path / "t").write_text("0123456789abcdef0123\n")
        p.write_text('reverse: { listeners = ( { address = "127.0.0.1:1"; } ); };\n' + text + "\n")
        r = subprocess.run([gh.BIN, "-t", "-c", str(p)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and want in r.stderr and "g.conf:2" in r.stderr, r.stderr


def test_redis_that_does_not_answer(redis, origin, origin2):
    """hiredis 0.14 has no timeouts of its own: a Redis that accepts but never
    answers (a black hole) and one that stops answering (SIGSTOP) are both
    given up after 2 s, and requests never wait for it."""
    import signal
    import socket
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)                 # the kernel completes the handshakes; nobody reads
    co = gh.CacheOrigin()
    lport, aport = gh.free_port(), gh.free_port()
    g = gh.Gatehouse(node_conf(lport, aport, origin.port, origin2.port, co.port, hole.getsockname()[1],
                               "ghtest3:"), workers=2, extra_files={"users": users_file()})
    g.start([lport, aport])
    try:
        c = Console(aport)
        assert c.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: "no connection within 2 s" in g.stderr(), 6), g.stderr()[-2000:]
        t = time.time()
        assert [get(lport, "/size/1") for _ in range(7)] == [200] * 6 + [429]
        assert time.time() - t < 3
        st = c.get("/api/v1/cluster").json["redis"]
        assert st["fallback"] and st["outages"] == 1
    finally:
        g.check_clean()
        hole.close()
    # a Redis that stops answering once connected
    g = gh.Gatehouse(node_conf(lport, aport, origin.port, origin2.port, co.port, redis.port, "ghtest4:"),
                     workers=2, extra_files={"users": users_file()})
    g.start([lport, aport])
    try:
        c = Console(aport)
        assert c.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: c.get("/api/v1/cluster").json["redis"]["up"], 8)
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            t = time.time()
            codes = [get(lport, "/size/1") for _ in range(3)]       # counts to sync: commands wait
            assert codes == [200] * 3 and time.time() - t < 2
            assert wait_for(lambda: "no answer within 2 s" in g.stderr(), 6), g.stderr()[-2000:]
            assert c.get("/api/v1/cluster").json["redis"]["fallback"]
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: c.get("/api/v1/cluster").json["redis"]["up"], 8)
    finally:
        g.check_clean()
        co.stop()


def test_redis_with_a_password(origin, origin2):
    r = Redis().start("--requirepass", "s3cret-redis-pw")
    r.auth = ["--no-auth-warning", "-a", "s3cret-redis-pw"]
    co = gh.CacheOrigin()
    try:
        for pw, want_up in (("s3cret-redis-pw", True), ("wrong-pw", False)):
            lport, aport = gh.free_port(), gh.free_port()
            text = node_conf(lport, aport, origin.port, origin2.port, co.port, r.port, "ghtest5:").replace(
                'redis_prefix = "ghtest5:";', 'redis_prefix = "ghtest5:"; redis_password_file = "@DIR@/redis.pw";')
            g = gh.Gatehouse(text, extra_files={"users": users_file(), "redis.pw": pw + "\n"})
            g.start([lport, aport])
            try:
                c = Console(aport)
                assert c.login("admin", ADMIN_PW).status == 200
                if want_up:
                    assert wait_for(lambda: c.get("/api/v1/cluster").json["redis"]["up"], 8), g.stderr()[-2000:]
                    assert get(lport, "/size/1") == 200
                    assert wait_for(lambda: r.cli("--scan", "--pattern", "ghtest5:rl:*").split() != [], 5)
                else:
                    assert wait_for(lambda: "AUTH refused" in c.get("/api/v1/cluster").json["redis"]["last_error"], 8)
                    assert get(lport, "/size/1") == 200            # local limits meanwhile
            finally:
                g.check_clean()
    finally:
        co.stop()
        r.stop()
