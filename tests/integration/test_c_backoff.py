"""Forward sign-in backoff shared by an HA pair through a real redis-server
(issue 21): failed Basic sign-ins on node A make node B refuse the same
client unchecked (407 "Too many failed sign-ins", the local backoff's
answer); a success clears the record on both; Redis keys are keyed digests
that expire; with Redis killed each node still backs off on its own."""
import time

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file
from test_c_cluster import Redis, wait_for

PREFIX = "ghbo:"


@pytest.fixture(scope="module")
def redis():
    r = Redis().start()
    yield r
    r.stop()


def node_conf(fport, aport, redis_port):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  auth: { realm = "Pair"; users_file = "@DIR@/proxyusers"; };
  policy = ( { name = "login"; action = "auth"; }, { name = "rest"; action = "allow"; } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };
cluster: { redis = "127.0.0.1:%d"; redis_prefix = "%s"; token_file = "@DIR@/token"; };
""" % (fport, aport, redis_port, PREFIX)


def req(g, port, user, src="127.0.0.1"):
    rc, out, err = gh.curl("-s", "-i", "--interface", src, "-x", "http://127.0.0.1:%d" % g.fport,
                           "--proxy-user", user, "http://any.test:%d/echo" % port)
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return status, head.decode("latin-1"), body


def applied(g):
    return g.c.get("/api/v1/cluster").json["redis"]["backoff_applied"]


@pytest.fixture(scope="module")
def pair(redis):
    files = {"users": users_file(),
             "proxyusers": "erin:%s\ngus:%s\n" % (gh.crypt_hash("patient"), gh.crypt_hash("gusto")),
             "hosts": gh.hosts_file(["any.test"]), "token": "pair-secret-0123456789abcdef\n"}
    nodes = []
    try:
        for _ in range(2):
            fport, aport = gh.free_port(), gh.free_port()
            g = gh.Gatehouse(node_conf(fport, aport, redis.port), workers=2, extra_files=files)
            nodes.append(g)
            g.start([fport, aport])
            g.fport = fport
            g.c = Console(aport)
            assert g.c.login("admin", ADMIN_PW).status == 200
        assert wait_for(lambda: all(g.c.get("/api/v1/cluster").json["redis"]["up"] for g in nodes), 8), \
            [g.stderr()[-2000:] for g in nodes]
        yield nodes
    finally:
        for g in nodes:
            g.check_clean()


def test_failures_on_a_refuse_on_b(pair, redis, origin):
    a, b = pair
    # reach 5 failures on A (the 3rd starts 1 s, the 4th 2 s, the 5th 4 s): B gets 4 s of refusal
    for n, pause in ((3, 1.1), (1, 2.1), (1, 0)):
        for _ in range(n):
            assert req(a, origin.port, "erin:wrong")[0] == 407
        time.sleep(pause)
    # A refuses even the right password now (the local backoff, as before)
    st, head, body = req(a, origin.port, "erin:patient")
    assert st == 407 and b"Too many failed sign-ins" in body
    # B heard of it through Redis (counts 3, 4 and 5 announced): refuses unchecked, never having
    # seen a failure itself
    assert wait_for(lambda: applied(b) >= 3, 5), b.stderr()[-2000:]
    st, head, body = req(b, origin.port, "erin:patient")
    assert st == 407 and b"Too many failed sign-ins" in body, (st, head, body)
    assert "Retry-After:" in head
    assert wait_for(lambda: any("verdict=auth-backoff" in l for l in b.access_lines(0)), 3)
    # one key per client: a keyed digest, no address or name; it expires (the local forget time)
    keys = redis.cli("--scan", "--pattern", PREFIX + "ab:*").split()
    assert len(keys) == 1, keys
    assert len(keys[0]) == len(PREFIX) + 3 + 32 and "127" not in keys[0][len(PREFIX):] and "erin" not in keys[0]
    assert int(redis.cli("get", keys[0])) >= 5
    assert 0 < int(redis.cli("pttl", keys[0])) <= 300000
    # once the refusal is over, a success on A clears the record on B too
    time.sleep(4.1)
    before = applied(b)
    assert req(a, origin.port, "erin:patient")[0] == 200
    assert wait_for(lambda: redis.cli("exists", keys[0]).strip() == "0", 3)
    assert wait_for(lambda: applied(b) > before, 3)
    # B starts afresh: one failure is free, the right password passes (the 6th failure would refuse 8 s)
    assert req(b, origin.port, "erin:wrong")[0] == 407
    st, head, body = req(b, origin.port, "erin:patient")
    assert st == 200, (st, head, body)


def test_redis_killed_each_node_backs_off_alone(pair, redis, origin):
    a, b = pair
    redis.kill()
    try:
        assert wait_for(lambda: all(not g.c.get("/api/v1/cluster").json["redis"]["up"] for g in pair), 8)
        # a client neither node has a record of, a user not in either's cache of verified passwords
        src = "127.0.0.2"
        for _ in range(3):
            assert req(a, origin.port, "gus:wrong", src)[0] == 407
        st, _, body = req(a, origin.port, "gus:gusto", src)
        assert st == 407 and b"Too many failed sign-ins" in body
        # B did not hear of it: it has its own count, and backs off on its own
        for _ in range(3):
            assert req(b, origin.port, "gus:wrong", src)[0] == 407
        st, _, body = req(b, origin.port, "gus:gusto", src)
        assert st == 407 and b"Too many failed sign-ins" in body
        for g in pair:
            assert g.stderr().count("unreachable") == 1, g.stderr()[-3000:]
            assert "sign-in backoff count per node" in g.stderr()
    finally:
        redis.start()
