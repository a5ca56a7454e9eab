"""Console controls over live traffic: drain / disable / enable an upstream
server (takes effect at once, no reload), the upstream state view, cache
purge, and their audit entries and metrics."""
import threading
import time

import pytest

import gh
from test_a_console import ADMIN_PW, VIEWER_PW, Console, crypt_hash, users_file

HOST = "app.test"


def conf(ports, o1, o2, cache=False):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  %s
  upstreams = ( { name = "app"; balance = "round_robin";
                  servers = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "app.test" ]; routes = ( { path = "/"; upstream = "app"; %s } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };
""" % (ports[0], 'cache = { memory = "16M"; max_object = "1M"; };' if cache else "", o1, o2,
       "cache = true;" if cache else "", ports[2])


@pytest.fixture
def gw(origin, origin2, ports):
    g = gh.Gatehouse(conf(ports, origin.port, origin2.port), extra_files={"users": users_file()})
    g.start([ports[0], ports[2]])
    g.rev, g.adm = ports[0], ports[2]
    g.c = Console(g.adm)
    assert g.c.login("admin", ADMIN_PW).status == 200
    yield g
    g.check_clean()


def spread(g, n=20):
    for _ in range(n):
        rc, out, _ = gh.curl("-H", "Host: " + HOST, "http://127.0.0.1:%d/size/1" % g.rev)
        assert out == b"x"


def test_upstream_view_lists_servers(gw, origin, origin2):
    r = gw.c.get("/api/v1/upstreams")
    assert r.status == 200
    addrs = sorted(s["address"] for s in r.json["servers"])
    assert addrs == sorted(["127.0.0.1:%d" % origin.port, "127.0.0.1:%d" % origin2.port])
    assert all(s["state"] == "up" for s in r.json["servers"])


def test_drain_takes_effect_immediately_and_enable_restores(gw, origin, origin2):
    spread(gw)
    assert len(origin.requests) == 10 and len(origin2.requests) == 10
    a2 = "127.0.0.1:%d" % origin2.port
    r = gw.c.post("/api/v1/servers/drain", {"upstream": "app", "address": a2})
    assert r.status == 200
    assert [s for s in r.json["servers"] if s["address"] == a2][0]["state"] == "draining"
    spread(gw)
    assert len(origin2.requests) == 10          # no new requests while draining
    assert len(origin.requests) == 30
    assert gw.c.post("/api/v1/servers/enable", {"upstream": "app", "address": a2}).status == 200
    spread(gw)
    assert len(origin2.requests) == 20
    audit = gw.c.get("/api/v1/audit").json["audit"]
    assert any(e.get("action") == "drain" and e.get("outcome") == "ok" for e in audit)
    assert any(e["action"] == "enable" and e["outcome"] == "ok" and e["user"] == "admin" and
               e["client"] == "127.0.0.1" and e["detail"] == "app " + a2 for e in audit)
    assert "admin audit: enable user=admin client=127.0.0.1 outcome=ok app %s" % a2 in gw.stderr()


def test_server_in_the_path(gw, origin, origin2):
    a2 = "127.0.0.1:%d" % origin2.port
    r = gw.c.post("/api/v1/servers/app/%s/drain" % a2, None)
    assert r.status == 200
    assert [s for s in r.json["servers"] if s["address"] == a2][0]["state"] == "draining"
    spread(gw, 4)
    assert len(origin2.requests) == 0 and len(origin.requests) == 4
    assert gw.c.post("/api/v1/servers/app/%s/enable" % a2, None).status == 200
    spread(gw, 4)
    assert len(origin2.requests) == 2
    assert gw.c.post("/api/v1/servers/app/127.0.0.1:1/disable", None).status == 404   # no such server
    assert gw.c.post("/api/v1/servers/nope/%s/drain" % a2, None).status == 404
    assert gw.c.post("/api/v1/servers/app/%s/explode" % a2, None).status == 404
    assert gw.c.post("/api/v1/servers/app%s/drain" % a2, None).status == 404
    audit = gw.c.get("/api/v1/audit").json["audit"]
    assert any(e["action"] == "drain" and e["outcome"] == "ok" and e["detail"] == "app " + a2
               for e in audit)


def test_draining_lets_inflight_finish(gw, origin, origin2):
    res = {}
    a1 = "127.0.0.1:%d" % origin.port
    # round robin: the first request goes to the first server
    t = threading.Thread(target=lambda: res.setdefault("r", gh.curl(
        "-H", "Host: " + HOST, "http://127.0.0.1:%d/slow/1" % gw.rev)))
    t.start()
    time.sleep(0.3)
    assert gw.c.post("/api/v1/servers/drain", {"upstream": "app", "address": a1}).status == 200
    t.join()
    assert res["r"][1] == b"slow done\n"


def test_disable_and_metrics(gw, origin, origin2):
    a1 = "127.0.0.1:%d" % origin.port
    assert gw.c.post("/api/v1/servers/disable", {"upstream": "app", "address": a1}).status == 200
    spread(gw, 6)
    assert len(origin.requests) == 0 and len(origin2.requests) == 6
    m = gw.c.get("/metrics").body.decode()
    assert 'gatehouse_upstream_server_up{upstream="app",server="%s",state="disabled"} 0' % a1 in m


def test_server_controls_need_admin_role_and_csrf(gw, origin):
    a1 = "127.0.0.1:%d" % origin.port
    viewer = Console(gw.adm)
    assert viewer.login("viewer", VIEWER_PW).status == 200
    assert viewer.post("/api/v1/servers/drain", {"upstream": "app", "address": a1}).status == 403
    assert gw.c.post("/api/v1/servers/drain", {"upstream": "app", "address": a1},
                     csrf=False).status == 403
    assert gw.c.post("/api/v1/servers/drain", {"upstream": "app", "address": "10.9.9.9:1"}).status == 404
    assert gw.c.post("/api/v1/servers/drain", {"upstream": "app"}).status == 400


def test_cache_purge(ports):
    co = gh.CacheOrigin()
    c_conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "16M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "app.test" ]; routes = ( { path = "/"; upstream = "app"; cache = true; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };
""" % (ports[0], co.port, ports[2])
    g = gh.Gatehouse(c_conf, extra_files={"users": users_file()}).start([ports[0], ports[2]])
    try:
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).status == 200
        co.script("/p", headers=[("Cache-Control", "max-age=60")], body=b"cached")
        url = "http://127.0.0.1:%d/p" % ports[0]
        for _ in range(3):
            assert gh.curl("-H", "Host: " + HOST, url)[1] == b"cached"
        assert co.count("/p") == 1
        assert c.get("/api/v1/cache").json["hits"] >= 2
        r = c.post("/api/v1/cache/purge", {"url": "http://app.test/p"})
        assert r.status == 200 and r.json["purged"] == 1
        assert gh.curl("-H", "Host: " + HOST, url)[1] == b"cached"
        assert co.count("/p") == 2
        r = c.post("/api/v1/cache/purge", {"host_prefix": "app.test"})
        assert r.status == 200 and r.json["purged"] == 1
        assert c.post("/api/v1/cache/purge", {}).status == 400
        assert any(e.get("action") == "cache purge" for e in c.get("/api/v1/audit").json["audit"])
        m = c.get("/metrics").body.decode()
        assert 'gatehouse_cache_requests_total{result="hit"}' in m
    finally:
        g.check_clean()
        co.stop()
