"""Core: the one off-loop job pool (core/jobs).  With forward auth, the
console and the reverse cache all configured, the process runs its main
thread, its workers and the two job threads, and no thread more appears when
a proxy sign-in is checked, a console sign-in is checked, a cached route is
used (the cache sweeper is a job, started at boot) or the configuration is
reloaded; the answers are those of before (200 / 407 through the proxy,
200 / 401 at the console, MISS then HIT), also when proxy and console
sign-ins are checked at the same time; the process stops cleanly."""
import http.client
import json
import os
import threading

import gh

WORKERS = 2
JOB_THREADS = 2     # core/jobs.h GW_JOBS_THREADS
HOST = "app.test"


def conf(ports, cache_port, realm="Jobs"):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  auth: { realm = "%s"; users_file = "@DIR@/users"; cache_ttl = 0.0; };
  policy = ( { name = "login"; action = "auth"; }, { name = "rest"; action = "allow"; } );
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "4M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "%s" ]; routes = ( { path = "/"; upstream = "app"; cache = true; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/admin.users"; };
""" % (ports[0], realm, ports[1], cache_port, HOST, ports[2])


def threads(g):
    return len(os.listdir("/proc/%d/task" % g.proc.pid))


def proxy_status(g, port, origin_port, user):
    rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:%d" % port,
                           "--proxy-user", user, "http://any.test:%d/echo" % origin_port)
    return int(out or 0)


def console_login(port, user, pw):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("POST", "/api/v1/login", json.dumps({"user": user, "password": pw}),
              {"Content-Type": "application/json"})
    st = c.getresponse().status
    c.close()
    return st


def test_one_pool_for_auth_console_and_cache(origin, ports):
    co = gh.CacheOrigin()
    files = {"users": "alice:%s\nbob:%s\n" % (gh.crypt_hash("wonderland", "$2y$", 5),
                                             gh.crypt_hash("builder", "$6$", 0)),
             "admin.users": "admin:%s:admin\n" % gh.crypt_hash("console pass 1", "$6$", 0),
             "hosts": gh.hosts_file(["any.test"])}
    g = gh.Gatehouse(conf(ports, co.port), workers=WORKERS, extra_files=files)
    try:
        g.start([ports[0], ports[1], ports[2]])
        n0 = threads(g)
        assert n0 == 1 + WORKERS + JOB_THREADS, n0

        assert proxy_status(g, ports[0], origin.port, "alice:wonderland") == 200
        assert proxy_status(g, ports[0], origin.port, "alice:wrong") == 407
        assert console_login(ports[2], "admin", "console pass 1") == 200
        assert console_login(ports[2], "admin", "nope") == 401
        co.script("/c", headers=[("Cache-Control", "max-age=60")], body=b"cached")
        r1 = gh.http_get(ports[1], "/c", HOST)
        r2 = gh.http_get(ports[1], "/c", HOST)
        assert (r1[0], r2[0]) == (200, 200)
        assert co.count("/c") == 1, "the second one is a hit"
        assert threads(g) == n0, "no thread started lazily"

        # proxy and console sign-ins checked at once share the pool and all get their answers
        out = {}
        ts = [threading.Thread(target=lambda i=i: out.__setitem__(
                  "p%d" % i, proxy_status(g, ports[0], origin.port,
                                          "bob:builder" if i % 2 else "alice:wonderland")))
              for i in range(4)]
        ts += [threading.Thread(target=lambda: out.__setitem__("c", console_login(ports[2], "admin",
                                                                                  "console pass 1")))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert out.get("c") == 200, out
        # (2 checks in flight per client address: a third may be told 429 to retry)
        assert all(out.get("p%d" % i) in (200, 429) for i in range(4)), out
        assert any(out.get("p%d" % i) == 200 for i in range(4)), out

        # a reload replaces forward's verifications (a new port on the same pool)
        g.reload(conf(ports, co.port, realm="Jobs2"), settle=1.0)
        assert proxy_status(g, ports[0], origin.port, "bob:builder") == 200
        assert proxy_status(g, ports[0], origin.port, "bob:x") == 407
        assert threads(g) == n0
    finally:
        g.check_clean()
        co.kill()
