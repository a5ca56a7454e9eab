"""The HA pair's node-local parts (issue 21): /healthz for keepalived's track
script, drain/disable state kept across a restart (the server-state file in
state_dir), listeners on an address the box does not hold yet (freebind, for
a VRRP VIP), checked in a network namespace made by the test."""
import os
import signal
import subprocess
import threading
import time

import gh
from test_a_console import ADMIN_PW, Console, users_file

HOST = "app.test"


def conf(ports, o1, o2, mport, extra_global="", listen=None):
    return """
@GLOBAL@ timeouts: { shutdown_grace = 15.0; }; };
reverse: {
  listeners = ( { %s } );
  upstreams = ( { name = "app"; balance = "round_robin";
                  servers = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "app.test" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; metrics_listen = "127.0.0.1:%d"; };
""" % (listen or 'address = "127.0.0.1:%d";' % ports[0], o1, o2, ports[2], mport)


def healthz(port):
    c = Console(port)
    r = c.get("/healthz")
    return r.status, r.body


def test_healthz_ok_then_503_while_stopping(origin, origin2, ports):
    mport = gh.free_port()
    g = gh.Gatehouse(conf(ports, origin.port, origin2.port, mport), extra_files={"users": users_file()})
    g.start([ports[0], ports[2], mport])
    try:
        assert healthz(mport) == (200, b"ok\n")
        assert healthz(ports[2]) == (200, b"ok\n")        # the console answers it without login too
        assert Console(mport).get("/metrics").status == 200
        # a request in flight keeps the node in its grace period after SIGTERM
        res = {}

        def slow():
            res["r"] = gh.curl("-s", "-H", "Host: " + HOST, "http://127.0.0.1:%d/slow/3" % ports[0])
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.8)
        g.signal(signal.SIGTERM)
        deadline = time.time() + 2.5
        seen = None
        while time.time() < deadline:
            seen = healthz(mport)
            if seen[0] == 503:
                break
            time.sleep(0.05)
        assert seen == (503, b"stopping\n"), seen
        t.join(20)
        assert res["r"][1] == b"slow done\n"          # the in-flight request still finished
    finally:
        g.check_clean()


def state_file(g):
    return os.path.join(g.dir, "server-state")


def test_drain_and_disable_survive_a_restart(origin, origin2, ports):
    mport = gh.free_port()
    a1, a2 = "127.0.0.1:%d" % origin.port, "127.0.0.1:%d" % origin2.port
    g = gh.Gatehouse(conf(ports, origin.port, origin2.port, mport), extra_files={"users": users_file()})
    g.start([ports[0], ports[2]])
    try:
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        assert c.post("/api/v1/servers/drain", {"upstream": "app", "address": a2}).status == 200
        with open(state_file(g)) as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("#")]
        assert lines == ["app\t%s\tdraining" % a2]
    finally:
        g.check_clean()
    # a line for a server no longer configured and a malformed one are skipped, not fatal
    with open(state_file(g), "a") as f:
        f.write("app\t127.0.0.1:1\tdisabled\nnonsense line\napp\t%s\tsleeping\n" % a1)
    g.start([ports[0], ports[2]])
    try:
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        st = {s["address"]: s["state"] for s in c.get("/api/v1/upstreams").json["servers"]}
        assert st == {a1: "up", a2: "draining"}, st
        n2 = len(origin2.requests)
        for _ in range(6):
            rc, out, _ = gh.curl("-H", "Host: " + HOST, "http://127.0.0.1:%d/size/1" % ports[0])
            assert out == b"x"
        assert len(origin2.requests) == n2           # still drained after the restart
        err = g.stderr()
        assert "is no longer configured" in err and "expected upstream<TAB>address<TAB>state" in err
        assert 'state "sleeping" is not' in err
        # disable the other one, enable the drained one: the file follows
        assert c.post("/api/v1/servers/enable", {"upstream": "app", "address": a2}).status == 200
        assert c.post("/api/v1/servers/disable", {"upstream": "app", "address": a1}).status == 200
    finally:
        g.check_clean()
    g.start([ports[0], ports[2]])
    try:
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        st = {s["address"]: s["state"] for s in c.get("/api/v1/upstreams").json["servers"]}
        assert st == {a1: "disabled", a2: "up"}, st
    finally:
        g.check_clean()


VIP = "192.0.2.100"


def test_freebind_listener_waits_for_its_vip(netns, origin, origin2, ports):
    """Without freebind the start fails on an address the box lacks; with
    it gatehouse listens at once, and serves as soon as the address arrives
    (what keepalived does to the standby on failover)."""
    mport = gh.free_port()
    listen = 'address = "%s:%d";' % (VIP, ports[0])
    g = gh.Gatehouse(conf(ports, origin.port, origin2.port, mport, listen=listen),
                     extra_files={"users": users_file()})
    g.start()
    assert g.proc.wait(20) != 0
    g.stop()
    assert "cannot listen on %s:%d: Cannot assign requested address" % (VIP, ports[0]) in g.stderr()

    g = gh.Gatehouse(conf(ports, origin.port, origin2.port, mport, listen=listen + " freebind = true;"),
                     extra_files={"users": users_file()})
    g.start([ports[2], mport])
    try:
        assert healthz(mport) == (200, b"ok\n")
        rc, out, _ = gh.curl("-s", "--connect-timeout", "1", "-H", "Host: " + HOST,
                             "http://%s:%d/size/3" % (VIP, ports[0]))
        assert rc != 0                                   # not ours yet: nothing answers
        subprocess.run(["ip", "addr", "add", VIP + "/32", "dev", "lo"], check=True)
        rc, out, _ = gh.curl("-s", "-H", "Host: " + HOST, "http://%s:%d/size/3" % (VIP, ports[0]))
        assert (rc, out) == (0, b"xxx")
    finally:
        g.check_clean()


def test_rate_limit_is_one_budget_across_workers(origin, origin2, ports):
    """A client's connections land on several workers (SO_REUSEPORT hashes
    their source ports): they still share one bucket (was one per worker)."""
    mport = gh.free_port()
    text = conf(ports, origin.port, origin2.port, mport).replace(
        'hosts = [ "app.test" ];', 'hosts = [ "app.test" ]; rate_limit = { requests_per_second = 0.01; burst = 5.0; };')
    g = gh.Gatehouse(text, workers=4, extra_files={"users": users_file()})
    g.start([ports[0], ports[2]])
    try:
        codes = [gh.curl_status("-H", "Host: " + HOST, "http://127.0.0.1:%d/size/1" % ports[0])
                 for _ in range(24)]      # one connection each: spread over the 4 workers
        assert codes.count(200) == 5 and codes.count(429) == 19, codes
    finally:
        g.check_clean()
