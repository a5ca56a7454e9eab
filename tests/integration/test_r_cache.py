"""Reverse side: the shared HTTP cache (RFC 9111).  Every Cache-Control
directive, Expires, Age, heuristic freshness, Vary, revalidation with 304,
client conditionals, stale-while-revalidate (stale answers at once, one
background refresh per key: 304, 200, 5xx, origin down, shutdown),
stale-if-error (origin down and 5xx), collapsed forwarding, eviction at the memory bound, oversize
pass-through, HEAD from a GET entry, invalidation by unsafe methods,
X-Cache on/off, the Set-Cookie opt-in, the hit/miss/stale/bytes metrics.
Origins count the requests that reach them.  Purge through the admin API is
tested in test_a_servers.py::test_cache_purge."""
import socket
import threading
import re
import time

import pytest

import gh

HOST = "app.test"


def conf(port, origin_port, memory="16M", max_object="1M", xcache="true"):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "%s"; max_object = "%s"; x_cache_header = %s; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "%s" ]; routes = (
      { path = "/"; upstream = "app"; cache = true; },
      { path = "/ttl/"; upstream = "app"; cache = { ttl = 2.0; stale_if_error = 30.0; }; },
      { path = "/sc/"; upstream = "app"; cache = { ignore_set_cookie = true; }; },
      { path = "/plain/"; upstream = "app"; }
  ); } );
};
""" % (port, memory, max_object, xcache, origin_port, HOST)


@pytest.fixture
def co():
    o = gh.CacheOrigin()
    yield o
    o.kill()


@pytest.fixture
def gw(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port), workers=2).start([ports[0]])
    g.port = ports[0]
    yield g
    g.check_clean()


def get(g, path, headers=None, method="GET"):
    return gh.http_get(g.port, path, HOST, method=method, headers=headers)


def xc(h):
    return h.get("x-cache")


def wait_for(cond, secs=5.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def timed_get(g, path):
    t0 = time.monotonic()
    r = get(g, path)
    return r, time.monotonic() - t0


def concurrently(n, fn):
    """Run fn() in n threads at once; returns the results that came back."""
    results = []
    ts = [threading.Thread(target=lambda: results.append(fn())) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    return results


# ---- freshness ----

def test_max_age_hit_and_age(gw, co):
    co.script("/a", headers=[("Cache-Control", "max-age=60"), ("Content-Type", "text/x-a")], body=b"A1")
    st, h, b = get(gw, "/a")
    assert (st, xc(h), b) == (200, "MISS", b"A1")
    time.sleep(1.1)
    st, h, b = get(gw, "/a")
    assert (st, xc(h), b) == (200, "HIT", b"A1")
    assert h["content-type"] == "text/x-a"
    assert int(h["age"]) >= 1
    assert "date" in h
    assert co.count("/a") == 1


def test_origin_age_counts(gw, co):
    co.script("/aged", headers=[("Cache-Control", "max-age=60"), ("Age", "50")])
    get(gw, "/aged")
    st, h, _ = get(gw, "/aged")
    assert xc(h) == "HIT" and int(h["age"]) >= 50


def test_max_age_expires(gw, co):
    co.script("/short", headers=[("Cache-Control", "max-age=1")])
    get(gw, "/short")
    assert xc(get(gw, "/short")[1]) == "HIT"
    time.sleep(1.3)
    assert xc(get(gw, "/short")[1]) == "MISS"
    assert co.count("/short") == 2


def test_s_maxage_wins_over_max_age(gw, co):
    co.script("/s", headers=[("Cache-Control", "max-age=0, s-maxage=60")])
    get(gw, "/s")
    assert xc(get(gw, "/s")[1]) == "HIT"
    assert co.count("/s") == 1


def test_expires(gw, co):
    now = time.time()
    co.script("/exp", headers=[("Date", gh.http_date(now)), ("Expires", gh.http_date(now + 60))])
    co.script("/exp-past", headers=[("Date", gh.http_date(now)), ("Expires", gh.http_date(now - 60))])
    co.script("/exp-bad", headers=[("Expires", "0")])
    for p in ("/exp", "/exp-past", "/exp-bad"):
        get(gw, p)
        get(gw, p)
    assert (co.count("/exp"), co.count("/exp-past"), co.count("/exp-bad")) == (1, 2, 2)


def test_heuristic_freshness_only_where_allowed(gw, co):
    lm = gh.http_date(time.time() - 10000)
    co.script("/h200", headers=[("Last-Modified", lm)])
    co.script("/h302", status=302, headers=[("Last-Modified", lm), ("Location", "/x")])
    co.script("/h200-none")
    for p in ("/h200", "/h302", "/h200-none"):
        get(gw, p)
        get(gw, p)
    # 200 with Last-Modified: 10% of its age; 302 is not heuristically cacheable
    assert (co.count("/h200"), co.count("/h302"), co.count("/h200-none")) == (1, 2, 2)


def test_route_ttl_when_origin_gives_none(gw, co):
    co.script("/ttl/x")
    get(gw, "/ttl/x")
    assert xc(get(gw, "/ttl/x")[1]) == "HIT"
    time.sleep(2.3)
    assert xc(get(gw, "/ttl/x")[1]) == "MISS"
    assert co.count("/ttl/x") == 2


def test_other_cacheable_statuses(gw, co):
    co.script("/gone", status=404, headers=[("Cache-Control", "max-age=60")], body=b"nope")
    co.script("/moved", status=301, headers=[("Cache-Control", "max-age=60"), ("Location", "/new")])
    co.script("/err", status=500, headers=[("Cache-Control", "max-age=60")])
    co.script("/partial", status=206, headers=[("Cache-Control", "max-age=60"),
                                               ("Content-Range", "bytes 0-3/10")])
    for p in ("/gone", "/moved", "/err", "/partial"):
        get(gw, p)
        st, h, b = get(gw, p)
    st, h, b = get(gw, "/gone")
    assert (st, xc(h), b) == (404, "HIT", b"nope")
    st, h, _ = get(gw, "/moved")
    assert (st, h["location"]) == (301, "/new")
    # 500 with explicit freshness is storable (RFC 9111 3); 206 never
    assert (co.count("/gone"), co.count("/moved"), co.count("/err"), co.count("/partial")) == (1, 1, 1, 2)


# ---- directives that forbid or limit storing ----

@pytest.mark.parametrize("cc,stored", [
    ("no-store", False),
    ("private, max-age=60", False),
    ('private="x-user", max-age=60', False),
    ("public, max-age=60", True),
    ("max-age=60, no-transform", True),
])
def test_response_directives(gw, co, cc, stored):
    co.script("/d", headers=[("Cache-Control", cc)])
    get(gw, "/d")
    h = get(gw, "/d")[1]
    assert co.count("/d") == (1 if stored else 2)
    assert xc(h) == ("HIT" if stored else "MISS")


def test_set_cookie_not_stored(gw, co):
    co.script("/cookie", headers=[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")])
    get(gw, "/cookie")
    get(gw, "/cookie")
    assert co.count("/cookie") == 2


def test_set_cookie_opt_in_stores_without_the_cookie(gw, co):
    # cache = { ignore_set_cookie = true; }: stored all the same; the client
    # that fetched it gets its cookie, hits never do
    co.script("/sc/c", headers=[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")], body=b"SC")
    st, h, b = get(gw, "/sc/c")
    assert (st, xc(h), b, h.get("set-cookie")) == (200, "MISS", b"SC", "s=1")
    st, h, b = get(gw, "/sc/c")
    assert (st, xc(h), b) == (200, "HIT", b"SC") and "set-cookie" not in h
    assert co.count("/sc/c") == 1


def test_proxy_authentication_fields_not_stored(gw, co):
    # RFC 9111 3.1: fields specific to the proxy that forwarded the request
    co.script("/pa", headers=[("Cache-Control", "max-age=60"), ("Proxy-Authenticate", "Basic"),
                              ("Proxy-Authentication-Info", "x=1"), ("X-Kept", "k")])
    get(gw, "/pa")
    st, h, _ = get(gw, "/pa")
    assert (st, xc(h), h.get("x-kept")) == (200, "HIT", "k")
    assert "proxy-authenticate" not in h and "proxy-authentication-info" not in h


def test_hop_by_hop_fields_not_stored(gw, co):
    co.script("/hop", headers=[("Cache-Control", "max-age=60"), ("Connection", "X-Hop"),
                               ("X-Hop", "1"), ("Keep-Alive", "timeout=5"), ("X-End", "e")])
    get(gw, "/hop")
    st, h, _ = get(gw, "/hop")
    assert (st, xc(h), h.get("x-end")) == (200, "HIT", "e")
    assert "x-hop" not in h and "keep-alive" not in h


def test_authorization_needs_public(gw, co):
    auth = {"Authorization": "Basic dTpw"}
    co.script("/auth", headers=[("Cache-Control", "max-age=60")])
    co.script("/auth-pub", headers=[("Cache-Control", "public, max-age=60")])
    co.script("/auth-s", headers=[("Cache-Control", "s-maxage=60")])
    for p in ("/auth", "/auth-pub", "/auth-s"):
        get(gw, p, auth)
        get(gw, p, auth)
    assert (co.count("/auth"), co.count("/auth-pub"), co.count("/auth-s")) == (2, 1, 1)


def test_no_cache_always_revalidates(gw, co):
    co.script("/nc", headers=[("Cache-Control", "no-cache")], etag='"v1"', body=b"NC")
    get(gw, "/nc")
    st, h, b = get(gw, "/nc")
    assert (st, xc(h), b) == (200, "REVALIDATED", b"NC")
    assert co.last("/nc").header("If-None-Match") == '"v1"'
    assert co.count("/nc") == 2


def test_must_revalidate_never_served_stale(gw, co):
    co.script("/mr", headers=[("Cache-Control", "max-age=1, must-revalidate, stale-if-error=60")])
    co.script("/pr", headers=[("Cache-Control", "max-age=1, proxy-revalidate, stale-if-error=60")])
    co.script("/sie", headers=[("Cache-Control", "max-age=1, stale-if-error=60")])
    for p in ("/mr", "/pr", "/sie"):
        get(gw, p)
    time.sleep(1.3)
    co.kill()
    assert get(gw, "/mr")[0] == 502
    assert get(gw, "/pr")[0] == 502
    st, h, _ = get(gw, "/sie")
    assert (st, xc(h)) == (200, "STALE")


# ---- request directives ----

def test_request_no_cache_and_max_age_0_revalidate(gw, co):
    co.script("/rq", headers=[("Cache-Control", "max-age=60")], etag='"e"')
    get(gw, "/rq")
    h = get(gw, "/rq", {"Cache-Control": "no-cache"})[1]
    assert xc(h) == "REVALIDATED" and co.last("/rq").header("If-None-Match") == '"e"'
    h = get(gw, "/rq", {"Cache-Control": "max-age=0"})[1]
    assert xc(h) == "REVALIDATED"
    h = get(gw, "/rq", {"Pragma": "no-cache"})[1]
    assert xc(h) == "REVALIDATED"
    assert xc(get(gw, "/rq")[1]) == "HIT"
    assert co.count("/rq") == 4


def test_request_min_fresh(gw, co):
    co.script("/mf", headers=[("Cache-Control", "max-age=60")], body=b"M")
    get(gw, "/mf")
    assert xc(get(gw, "/mf", {"Cache-Control": "min-fresh=30"})[1]) == "HIT"
    assert xc(get(gw, "/mf", {"Cache-Control": "min-fresh=120"})[1]) == "MISS"
    assert co.count("/mf") == 2


def test_request_no_store_bypasses(gw, co):
    co.script("/ns", headers=[("Cache-Control", "max-age=60")])
    get(gw, "/ns", {"Cache-Control": "no-store"})
    get(gw, "/ns")
    assert co.count("/ns") == 2
    assert xc(get(gw, "/ns")[1]) == "HIT"


def test_only_if_cached(gw, co):
    co.script("/oic", headers=[("Cache-Control", "max-age=60")])
    assert get(gw, "/oic", {"Cache-Control": "only-if-cached"})[0] == 504
    get(gw, "/oic")
    # committed before the last byte left for the client: the next request,
    # on either worker, finds it at once
    assert get(gw, "/oic", {"Cache-Control": "only-if-cached"})[0] == 200
    assert co.count("/oic") == 1


def test_stored_before_the_client_has_it(gw, co):
    # on_response_end commits when the origin's body is complete, before the
    # last write to the client: a request right after the response, on
    # either of the two workers, is a HIT every time
    for i in range(20):
        co.script("/imm%d" % i, headers=[("Cache-Control", "max-age=60")], body=b"b%d" % i)
        assert get(gw, "/imm%d" % i)[0] == 200
        st, h, b = get(gw, "/imm%d" % i, {"Cache-Control": "only-if-cached"})
        assert (st, xc(h), b) == (200, "HIT", b"b%d" % i), i
        assert co.count("/imm%d" % i) == 1


def test_one_store_for_all_workers(gw, co):
    # the worker that fetched and stored is not the only one that hits: the
    # request id's characters 6-7 name the worker (core/conn.c), and each
    # get() is a new connection, spread over the two workers by the kernel
    co.script("/shared", headers=[("Cache-Control", "max-age=60")], body=b"one copy")
    for _ in range(30):
        assert get(gw, "/shared")[2] == b"one copy"
    assert co.count("/shared") == 1
    hit, fetched = set(), []
    for line in gw.access_lines():
        if '"GET /shared ' in line:
            worker = re.search(r" id=(\S+)", line).group(1)[6:8]
            (hit.add if " verdict=cache_hit " in line else fetched.append)(worker)
    assert len(fetched) == 1 and hit - set(fetched), (fetched, hit)


def test_max_stale(gw, co):
    co.script("/mxs", headers=[("Cache-Control", "max-age=1")])
    get(gw, "/mxs")
    time.sleep(1.3)
    h = get(gw, "/mxs", {"Cache-Control": "max-stale=30"})[1]
    assert xc(h) == "STALE" and co.count("/mxs") == 1


# ---- revalidation ----

def test_revalidation_round_trip_with_etag(gw, co):
    co.script("/rv", headers=[("Cache-Control", "max-age=1"), ("X-Version", "1")], etag='"v1"',
              body=b"payload", headers_304=[("Cache-Control", "max-age=60"), ("X-Version", "2")])
    get(gw, "/rv")
    time.sleep(1.3)
    st, h, b = get(gw, "/rv")
    assert (st, xc(h), b) == (200, "REVALIDATED", b"payload")
    assert co.last("/rv").header("If-None-Match") == '"v1"'
    assert h["x-version"] == "2" and h["etag"] == '"v1"'      # 304 refreshed the stored headers
    st, h, b = get(gw, "/rv")
    assert (xc(h), b, h["x-version"]) == ("HIT", b"payload", "2")
    assert co.count("/rv") == 2


def test_revalidation_304_with_no_store_drops_entry(gw, co):
    # the origin's 304 now says no-store (or private): this answer is served
    # from the entry one last time, and the entry is gone
    for p, cc in (("/rvn", "no-store"), ("/rvp", "private")):
        co.script(p, headers=[("Cache-Control", "max-age=1")], etag='"n"', body=b"N",
                  headers_304=[("Cache-Control", cc)])
        get(gw, p)
        time.sleep(1.1)
        st, h, b = get(gw, p)
        assert (st, xc(h), b) == (200, "REVALIDATED", b"N"), p
        st, h, b = get(gw, p)
        assert (st, xc(h), b) == (200, "MISS", b"N"), p
        assert co.count(p) == 3


def test_revalidation_with_last_modified(gw, co):
    lm = gh.http_date(time.time() - 3600)
    co.script("/lm", headers=[("Cache-Control", "max-age=1")], last_modified=lm, body=b"L")
    get(gw, "/lm")
    time.sleep(1.3)
    st, h, b = get(gw, "/lm")
    assert (xc(h), b) == ("REVALIDATED", b"L")
    assert co.last("/lm").header("If-Modified-Since") == lm


def test_changed_content_replaces_entry(gw, co):
    co.script("/chg", headers=[("Cache-Control", "max-age=1")], etag='"v1"', body=b"old")
    get(gw, "/chg")
    time.sleep(1.3)
    co.script("/chg", headers=[("Cache-Control", "max-age=60")], etag='"v2"', body=b"new")
    st, h, b = get(gw, "/chg")
    assert (xc(h), b) == ("MISS", b"new")
    assert get(gw, "/chg")[2] == b"new" and co.count("/chg") == 2


def test_client_conditionals_answered_from_cache(gw, co):
    lm = gh.http_date(time.time() - 3600)
    co.script("/cond", headers=[("Cache-Control", "max-age=60")], etag='"c1"', last_modified=lm)
    get(gw, "/cond")
    st, h, b = get(gw, "/cond", {"If-None-Match": 'W/"c1"'})
    assert (st, b, h["etag"]) == (304, b"", '"c1"')
    assert get(gw, "/cond", {"If-None-Match": '"other"'})[0] == 200
    assert get(gw, "/cond", {"If-Modified-Since": lm})[0] == 304
    assert get(gw, "/cond", {"If-Modified-Since": gh.http_date(time.time() - 7200)})[0] == 200
    assert co.count("/cond") == 1
    # the origin never sees the client's own validators on a miss
    co.script("/cond2", headers=[("Cache-Control", "max-age=60")], etag='"c2"', body=b"full")
    st, _, b = get(gw, "/cond2", {"If-None-Match": '"c2"'})
    assert (st, b) == (200, b"full") and co.last("/cond2").header("If-None-Match") is None


# ---- stale-while-revalidate / stale-if-error ----

def test_swr_background_304_refreshes_entry(gw, co):
    co.script("/swr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30"),
                               ("X-Gen", "1")], etag='"s"', body=b"one")
    get(gw, "/swr")
    first = co.last("/swr")
    time.sleep(1.3)
    # the refresh takes the origin 1 s: the client must not wait for it
    co.script("/swr", headers=[("Cache-Control", "max-age=60, stale-while-revalidate=30")],
              etag='"s"', body=b"unused", delay=1.0, headers_304=[("X-Gen", "2")])
    (st, h, b), dt = timed_get(gw, "/swr")
    assert (st, xc(h), b, h.get("x-gen")) == (200, "STALE", b"one", "1")
    assert dt < 0.5, dt
    assert wait_for(lambda: co.count("/swr") == 2)
    refresh = co.last("/swr")
    assert refresh.header("If-None-Match") == '"s"'
    # the same upstream request a client's would be (forwarding headers)
    assert refresh.header("X-Forwarded-For") == first.header("X-Forwarded-For") == "127.0.0.1"
    assert refresh.header("Host") == HOST
    # stale answers meanwhile, then the refreshed entry: fresh, new headers, same body
    assert wait_for(lambda: xc(get(gw, "/swr")[1]) == "HIT")
    st, h, b = get(gw, "/swr")
    assert (st, xc(h), b, h.get("x-gen")) == (200, "HIT", b"one", "2")
    assert co.count("/swr") == 2            # one refresh, however many stale answers
    # logged as the cache's own request
    assert sum('"GET /swr ' in l and "verdict=cache_refresh" in l for l in gw.access_lines()) == 1


def test_swr_background_200_replaces_entry(gw, co):
    co.script("/swr2", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
              etag='"a"', body=b"old")
    get(gw, "/swr2")
    time.sleep(1.3)
    co.script("/swr2", headers=[("Cache-Control", "max-age=60")], etag='"b"', body=b"new",
              delay=1.0)
    (st, h, b), dt = timed_get(gw, "/swr2")
    assert (st, xc(h), b) == (200, "STALE", b"old") and dt < 0.5, dt
    assert wait_for(lambda: get(gw, "/swr2")[2] == b"new")
    st, h, b = get(gw, "/swr2")
    assert (st, xc(h), b, h.get("etag")) == (200, "HIT", b"new", '"b"')
    assert co.count("/swr2") == 2
    assert sum('"GET /swr2 ' in l and "verdict=cache_refresh" in l for l in gw.access_lines()) == 1
    assert co.last("/swr2").header("If-None-Match") == '"a"'


def test_swr_concurrent_stale_requests_one_refresh(gw, co):
    co.script("/swrc", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
              last_modified=gh.http_date(time.time() - 100), body=b"c")
    get(gw, "/swrc")
    time.sleep(1.3)
    co.script("/swrc", headers=[("Cache-Control", "max-age=60")],
              last_modified=co.scripts["/swrc"]["last_modified"], body=b"c", delay=1.0)
    results = concurrently(10, lambda: timed_get(gw, "/swrc"))
    assert len(results) == 10
    assert all((st, xc(h), b) == (200, "STALE", b"c") for (st, h, b), _ in results)
    assert max(dt for _, dt in results) < 1.0
    assert wait_for(lambda: xc(get(gw, "/swrc")[1]) == "HIT")
    assert co.count("/swrc") == 2
    assert co.last("/swrc").header("If-Modified-Since") == co.scripts["/swrc"]["last_modified"]


def test_swr_refresh_errors_leave_entry(gw, co):
    # a 5xx to the refresh: the entry stays, and the next stale answer may try again
    co.script("/swr5", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
              etag='"5"', body=b"five")
    get(gw, "/swr5")
    time.sleep(1.3)
    co.script("/swr5", status=503, body=b"bad")
    assert get(gw, "/swr5")[2] == b"five"
    assert wait_for(lambda: co.count("/swr5") == 2)
    time.sleep(0.2)
    st, h, b = get(gw, "/swr5")
    assert (st, xc(h), b) == (200, "STALE", b"five")
    assert wait_for(lambda: co.count("/swr5") == 3)


def test_swr_origin_down_then_stale_if_error(gw, co):
    co.script("/swrd", headers=[("Cache-Control",
                                 "max-age=1, stale-while-revalidate=2, stale-if-error=60")],
              etag='"d"', body=b"kept")
    get(gw, "/swrd")
    time.sleep(1.3)
    co.kill()
    st, h, b = get(gw, "/swrd")             # inside the window: the refresh fails quietly
    assert (st, xc(h), b) == (200, "STALE", b"kept")
    time.sleep(0.5)
    st, h, b = get(gw, "/swrd")
    assert (st, xc(h), b) == (200, "STALE", b"kept")
    time.sleep(2.0)                         # past the window: stale-if-error still applies
    st, h, b = get(gw, "/swrd")
    assert (st, xc(h), b) == (200, "STALE", b"kept")


def test_swr_past_window_revalidates_in_foreground(gw, co):
    co.script("/swrw", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=1")],
              etag='"w"')
    get(gw, "/swrw")
    time.sleep(2.3)
    assert xc(get(gw, "/swrw")[1]) == "REVALIDATED"
    assert co.count("/swrw") == 2


metrics = gh.metrics


def start_with_metrics(co, ports, head="", workers=1):
    """The cache gateway on ports[0] with a login-free /metrics on ports[2]."""
    g = gh.Gatehouse(head + conf(ports[0], co.port) + 'admin: { listen = "127.0.0.1:%d"; '
                     'users_file = "@DIR@/users"; metrics_listen = "127.0.0.1:%d"; };\n'
                     % (ports[1], ports[2]),
                     workers=workers, extra_files={"users": "u:%s:viewer\n" % gh.crypt_hash("pw")})
    g.start([ports[0], ports[2]])
    g.port = ports[0]
    return g


def test_swr_refreshes_counted_and_not_connections(co, ports):
    # /metrics counts background refreshes and the failed ones; a refresh in
    # flight is not a client connection in the active-connections gauge
    mport = ports[2]
    g = start_with_metrics(co, ports, workers=2)
    try:
        co.script("/mr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
                  etag='"m"', body=b"m")
        get(g, "/mr")
        time.sleep(1.3)
        co.script("/mr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
                  etag='"m"', delay=1.5)
        assert xc(get(g, "/mr")[1]) == "STALE"
        time.sleep(0.5)                     # the refresh now waits on the origin
        m = metrics(mport)
        assert m['gatehouse_connections_active{family="reverse"}'] == 0, m
        assert m["gatehouse_cache_refreshes_total"] == 1
        assert wait_for(lambda: metrics(mport)['gatehouse_cache_requests_total{result="revalidated"}'] == 1)
        time.sleep(1.3)                     # refreshed by a 304; stale again after max-age=1
        co.script("/mr", status=503, body=b"bad")
        assert xc(get(g, "/mr")[1]) == "STALE"
        assert wait_for(lambda: metrics(mport)["gatehouse_cache_refresh_failures_total"] == 1)
        m = metrics(mport)
        assert m["gatehouse_cache_refreshes_total"] == 2
        assert m['gatehouse_cache_requests_total{result="revalidated"}'] == 1
    finally:
        g.check_clean()


def test_hit_miss_stale_bytes_in_metrics(co, ports):
    g = start_with_metrics(co, ports)
    try:
        co.script("/cm", headers=[("Cache-Control", "max-age=1")], body=b"x" * 1000)
        assert xc(get(g, "/cm")[1]) == "MISS"
        assert xc(get(g, "/cm")[1]) == "HIT"
        assert xc(get(g, "/cm")[1]) == "HIT"
        time.sleep(1.3)
        assert xc(get(g, "/cm", {"Cache-Control": "max-stale=30"})[1]) == "STALE"
        m = metrics(ports[2])
        assert [m['gatehouse_cache_requests_total{result="%s"}' % r]
                for r in ("hit", "miss", "stale", "revalidated")] == [2, 1, 1, 0]
        assert m["gatehouse_cache_objects"] == 1 and m["gatehouse_cache_bytes"] > 1000
        assert m["gatehouse_cache_served_bytes_total"] == 3000      # 2 hits + 1 stale
        get(g, "/cm", {"Cache-Control": "max-stale=30"}, method="HEAD")   # no body: not counted
        assert metrics(ports[2])["gatehouse_cache_served_bytes_total"] == 3000
    finally:
        g.check_clean()


def test_swr_refresh_cut_after_its_own_timeout(co, ports):
    # a refresh whose origin trickles its body (each byte inside
    # upstream_response) is cut after upstream_connect + upstream_response in
    # all; it counts as failed and the entry stays
    mport = ports[2]
    g = start_with_metrics(co, ports, head='@GLOBAL@ timeouts = { upstream_connect = 0.5; '
                           'upstream_response = 1.0; }; };\n')
    try:
        co.script("/tr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
                  body=b"kept")
        get(g, "/tr")
        time.sleep(1.3)
        co.script("/tr", headers=[("Cache-Control", "max-age=60")], body=b"0123456789",
                  trickle=0.4)
        assert (get(g, "/tr")[2], metrics(mport)["gatehouse_cache_refreshes_total"]) == (b"kept", 1)
        t0 = time.monotonic()
        assert wait_for(lambda: metrics(mport)["gatehouse_cache_refresh_failures_total"] == 1, 6)
        assert 1.0 < time.monotonic() - t0 < 3.5
        st, h, b = get(g, "/tr")
        assert (st, xc(h), b) == (200, "STALE", b"kept")
        assert any("background request timeout" in l for l in g.access_lines()), g.access_lines()
    finally:
        g.check_clean()


def test_swr_refresh_cancelled_at_shutdown(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port), workers=1).start([ports[0]])
    g.port = ports[0]
    co.script("/swrs", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
              etag='"x"')
    get(g, "/swrs")
    time.sleep(1.3)
    co.script("/swrs", headers=[("Cache-Control", "max-age=60")], etag='"x"', delay=5.0)
    assert xc(get(g, "/swrs")[1]) == "STALE"
    assert wait_for(lambda: co.count("/swrs") == 2)
    t0 = time.monotonic()
    g.check_clean()                         # the refresh in flight does not hold the exit
    assert time.monotonic() - t0 < 3.0


def test_stale_if_error_origin_down(gw, co):
    co.script("/down", headers=[("Cache-Control", "max-age=1, stale-if-error=60")], body=b"kept")
    co.script("/down-nosie", headers=[("Cache-Control", "max-age=1")], body=b"kept")
    get(gw, "/down")
    get(gw, "/down-nosie")
    time.sleep(1.3)
    co.kill()
    st, h, b = get(gw, "/down")
    assert (st, xc(h), b) == (200, "STALE", b"kept")
    assert get(gw, "/down-nosie")[0] == 502
    # a client may accept a stale answer on error for its own request
    # (RFC 5861 4), within the window it names
    st, h, b = get(gw, "/down-nosie", {"Cache-Control": "stale-if-error=60"})
    assert (st, xc(h), b) == (200, "STALE", b"kept")
    assert get(gw, "/down-nosie", {"Cache-Control": "stale-if-error=0"})[0] == 502


def test_stale_if_error_on_5xx(gw, co):
    co.script("/e5", headers=[("Cache-Control", "max-age=1, stale-if-error=60")], body=b"good")
    get(gw, "/e5")
    time.sleep(1.3)
    for status in (500, 502, 503, 504):
        co.script("/e5", status=status, body=b"bad")
        st, h, b = get(gw, "/e5")
        assert (st, xc(h), b) == (200, "STALE", b"good"), status
    co.script("/e5", status=404, body=b"gone")
    assert get(gw, "/e5")[0] == 404


def test_stale_if_error_route_override(gw, co):
    co.script("/ttl/sie", headers=[("Cache-Control", "max-age=1")], body=b"route")
    get(gw, "/ttl/sie")
    time.sleep(1.3)
    co.kill()
    st, h, b = get(gw, "/ttl/sie")
    assert (st, xc(h), b) == (200, "STALE", b"route")


# ---- Vary ----

def test_vary_variants(gw, co):
    co.script("/v", headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
              body=lambda r: (r.header("Accept-Encoding") or "none").encode())
    assert get(gw, "/v", {"Accept-Encoding": "gzip"})[2] == b"gzip"
    assert get(gw, "/v", {"Accept-Encoding": "br"})[2] == b"br"
    st, h, b = get(gw, "/v", {"Accept-Encoding": "gzip"})
    assert (xc(h), b) == ("HIT", b"gzip")
    st, h, b = get(gw, "/v", {"Accept-Encoding": "br"})
    assert (xc(h), b) == ("HIT", b"br")
    assert get(gw, "/v")[2] == b"identity"      # http.client sends Accept-Encoding: identity
    assert co.count("/v") == 3


def test_vary_values_match_modulo_whitespace_and_field_lines(gw, co):
    # RFC 9111 4.1: whitespace around commas and split field lines do not
    # make another variant; a different order does
    co.script("/vl", headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
              body=lambda r: (r.header("Accept-Language") or "-").encode())
    assert xc(get(gw, "/vl", {"Accept-Language": "en, fr"})[1]) == "MISS"
    for v in ("en,fr", "en ,\tfr"):
        st, h, b = get(gw, "/vl", {"Accept-Language": v})
        assert (xc(h), b) == ("HIT", b"en, fr"), v
    raw = gh.raw_exchange(gw.port, b"GET /vl HTTP/1.1\r\nHost: app.test\r\nAccept-Language: en\r\n"
                          b"Accept-Language: fr\r\nConnection: close\r\n\r\n")
    assert b"X-Cache: HIT" in raw and raw.endswith(b"en, fr")
    assert xc(get(gw, "/vl", {"Accept-Language": "fr, en"})[1]) == "MISS"
    assert co.count("/vl") == 2


def test_vary_star_never_served(gw, co):
    co.script("/vs", headers=[("Cache-Control", "max-age=60"), ("Vary", "*")])
    for _ in range(3):
        assert xc(get(gw, "/vs")[1]) == "MISS"
    assert co.count("/vs") == 3


# ---- collapsed forwarding ----

def test_collapsed_forwarding(gw, co):
    co.script("/slow", headers=[("Cache-Control", "max-age=60")], body=b"S" * 5000, delay=1.0)
    results = concurrently(10, lambda: get(gw, "/slow"))
    assert len(results) == 10
    assert all(st == 200 and b == b"S" * 5000 for st, _, b in results)
    assert co.count("/slow") == 1
    assert sorted(xc(h) for _, h, _ in results).count("MISS") == 1


# ---- size bounds ----

def test_eviction_at_memory_bound(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port, memory="256k", max_object="64k"), workers=1)
    g.start([ports[0]])
    g.port = ports[0]
    try:
        for i in range(10):
            co.script("/big/%d" % i, headers=[("Cache-Control", "max-age=60")], body=b"%d" % i * 40000)
            get(g, "/big/%d" % i)
        # the last ones are still there, the first ones were evicted
        assert xc(get(g, "/big/9")[1]) == "HIT"
        assert xc(get(g, "/big/8")[1]) == "HIT"
        st, h, b = get(g, "/big/0")
        assert (xc(h), b) == ("MISS", b"0" * 40000)
        assert co.count("/big/0") == 2 and co.count("/big/9") == 1
    finally:
        g.check_clean()


def test_oversize_passed_through(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port, memory="1M", max_object="64k"), workers=1)
    g.start([ports[0]])
    g.port = ports[0]
    try:
        body = bytes(range(256)) * 400          # 102400 bytes
        co.script("/huge", headers=[("Cache-Control", "max-age=60")], body=body)
        co.script("/huge-chunked", headers=[("Cache-Control", "max-age=60")], body=body, chunked=True)
        co.script("/fits", headers=[("Cache-Control", "max-age=60")], body=body[:60000], chunked=True)
        for p in ("/huge", "/huge-chunked"):
            for _ in range(2):
                st, h, b = get(g, p)
                assert (st, xc(h), b) == (200, "MISS", body)
            assert co.count(p) == 2
        get(g, "/fits")
        st, h, b = get(g, "/fits")
        assert (xc(h), b) == ("HIT", body[:60000])
    finally:
        g.check_clean()


# ---- methods, headers ----

def test_head_served_from_get_entry(gw, co):
    co.script("/hd", headers=[("Cache-Control", "max-age=60")], body=b"0123456789")
    get(gw, "/hd")
    st, h, b = get(gw, "/hd", method="HEAD")
    assert (st, xc(h), b, h["content-length"]) == (200, "HIT", b"", "10")
    assert co.count("/hd") == 1


def test_head_miss_labelled_not_stored_stale_if_error(gw, co):
    co.script("/hm", headers=[("Cache-Control", "max-age=1, stale-if-error=60")], body=b"HM")
    st, h, b = get(gw, "/hm", method="HEAD")
    assert (st, xc(h), b) == (200, "MISS", b"")
    assert xc(get(gw, "/hm")[1]) == "MISS"           # the HEAD stored nothing
    time.sleep(1.3)
    co.kill()
    st, h, b = get(gw, "/hm", method="HEAD")
    assert (st, xc(h), b, h["content-length"]) == (200, "STALE", b"", "2")
    assert co.count("/hm") == 2


def test_unsafe_method_invalidates(gw, co):
    co.script("/inv", headers=[("Cache-Control", "max-age=60")])
    get(gw, "/inv")
    assert xc(get(gw, "/inv")[1]) == "HIT"
    assert gh.http_get(gw.port, "/inv", HOST, method="POST", body=b"x")[0] == 200
    assert xc(get(gw, "/inv")[1]) == "MISS"
    assert co.count("/inv") == 3


def test_unknown_methods_invalidate_safe_ones_do_not(gw, co):
    # RFC 9111 4.4: methods not known to be safe count as unsafe
    co.script("/inv2", headers=[("Cache-Control", "max-age=60")])
    get(gw, "/inv2")
    assert gh.http_get(gw.port, "/inv2", HOST, method="OPTIONS")[0] == 200
    assert xc(get(gw, "/inv2")[1]) == "HIT"
    assert gh.http_get(gw.port, "/inv2", HOST, method="PROPPATCH", body=b"x")[0] == 200
    assert xc(get(gw, "/inv2")[1]) == "MISS"
    co.script("/inv2", status=404)
    assert gh.http_get(gw.port, "/inv2", HOST, method="DELETE")[0] == 404   # an error: kept
    st, h, _ = get(gw, "/inv2")
    assert (st, xc(h), co.count("/inv2")) == (200, "HIT", 5)


def test_unsafe_method_invalidates_location_same_origin_only(gw, co):
    for p in ("/la", "/lb", "/lc"):
        co.script(p, headers=[("Cache-Control", "max-age=60")], body=p.encode())
        get(gw, p)
    # the same path under another origin (port) must survive
    other = "%s:8080" % HOST
    assert gh.http_get(gw.port, "/lc", other)[2] == b"/lc"
    assert xc(gh.http_get(gw.port, "/lc", other)[1]) == "HIT"
    co.script("/new", status=201, headers=[("Location", "/la"),
                                           ("Content-Location", "http://APP.test:80/lb#top")])
    assert gh.http_get(gw.port, "/new", HOST, method="POST", body=b"x")[0] == 201
    co.script("/new2", status=303, headers=[("Location", "http://%s/lc" % other)])
    assert gh.http_get(gw.port, "/new2", HOST, method="POST", body=b"x")[0] == 303
    assert [xc(get(gw, p)[1]) for p in ("/la", "/lb", "/lc")] == ["MISS", "MISS", "HIT"]
    assert xc(gh.http_get(gw.port, "/lc", other)[1]) == "HIT"


def test_range_requests_bypass_and_206_not_stored(gw, co):
    co.script("/rg", headers=[("Cache-Control", "max-age=60")], body=b"0123456789")
    get(gw, "/rg")
    co.script("/rg", status=206, headers=[("Cache-Control", "max-age=60"),
                                          ("Content-Range", "bytes 0-1/10")], body=b"01")
    st, h, b = get(gw, "/rg", {"Range": "bytes=0-1"})
    assert (st, b) == (206, b"01") and co.last("/rg").header("Range") == "bytes=0-1"
    st, h, b = get(gw, "/rg")
    assert (st, xc(h), b) == (200, "HIT", b"0123456789")
    assert co.count("/rg") == 2


def test_streamed_to_the_first_client_while_stored(gw, co):
    # the origin trickles 10 bytes over ~3 s: the first client sees the head
    # and the first bytes at once, and the whole object is stored
    co.script("/tk", headers=[("Cache-Control", "max-age=60")], body=b"0123456789", trickle=0.3)
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        t0 = time.monotonic()
        s.sendall(b"GET /tk HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) == 0:
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        first = time.monotonic() - t0
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    assert first < 1.5, first
    assert got.endswith(b"0123456789") and b"X-Cache: MISS" in got
    st, h, b = get(gw, "/tk")
    assert (st, xc(h), b) == (200, "HIT", b"0123456789") and co.count("/tk") == 1


def test_uncached_route_untouched(gw, co):
    co.script("/plain/p", headers=[("Cache-Control", "max-age=60")])
    for _ in range(2):
        assert "x-cache" not in get(gw, "/plain/p")[1]
    assert co.count("/plain/p") == 2


def test_x_cache_header_off(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port, xcache="false"), workers=1).start([ports[0]])
    g.port = ports[0]
    try:
        co.script("/q", headers=[("Cache-Control", "max-age=60")])
        get(g, "/q")
        st, h, _ = get(g, "/q")
        assert st == 200 and "x-cache" not in h and "age" in h
        assert co.count("/q") == 1
    finally:
        g.check_clean()


def test_keys_host_case_and_query(gw, co):
    co.script("/k?a=1", headers=[("Cache-Control", "max-age=60")], body=b"one")
    co.script("/k?a=2", headers=[("Cache-Control", "max-age=60")], body=b"two")
    assert get(gw, "/k?a=1")[2] == b"one"
    assert get(gw, "/k?a=2")[2] == b"two"
    st, h, b = gh.http_get(gw.port, "/k?a=1", "APP.test:80")
    assert (st, b) == (200, b"one") and co.count("/k?a=1") == 1


def test_collapsed_waiters_time_out(gw, co):
    # the first fetch takes longer than the waiters' 5 s patience: the
    # waiter goes to the origin itself
    co.script("/glacial", headers=[("Cache-Control", "max-age=60")], body=b"G", delay=6.5)
    out = []
    t = threading.Thread(target=lambda: out.append(get(gw, "/glacial")))
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    st, h, b = gh.http_get(gw.port, "/glacial", HOST, timeout=20)
    waited = time.time() - t0
    t.join(20)
    assert (st, b) == (200, b"G") and out and out[0][0] == 200
    assert 5.0 <= waited < 13.5, waited
    assert co.count("/glacial") == 2


def test_uncacheable_key_not_serialised(gw, co):
    # once a key's response says it cannot be stored, concurrent requests
    # for it go to the origin in parallel (hit-for-pass), not one by one
    co.script("/priv", headers=[("Cache-Control", "private")], body=b"P", delay=1.0)
    get(gw, "/priv")
    results = []
    ts = [threading.Thread(target=lambda: results.append(get(gw, "/priv"))) for _ in range(5)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert [r[0] for r in results] == [200] * 5
    assert time.time() - t0 < 1.7        # collapsed, they would take 2 s
    assert co.count("/priv") == 6


def test_empty_bodies(gw, co):
    co.script("/e204", status=204, headers=[("Cache-Control", "max-age=60")], body=b"")
    co.script("/e200", headers=[("Cache-Control", "max-age=60")], body=b"")
    for p, st in (("/e204", 204), ("/e200", 200)):
        get(gw, p)
        s, h, b = get(gw, p)
        assert (s, xc(h), b) == (st, "HIT", b"")
        assert co.count(p) == 1


def test_cached_404_keeps_its_cache_control(gw, co):
    co.script("/g404", status=404, headers=[("Cache-Control", "max-age=60")], body=b"nope")
    req = b"GET /g404 HTTP/1.1\r\nHost: app.test\r\n\r\n"
    raw = gh.raw_exchange(gw.port, req + req + req[:-2] + b"Connection: close\r\n\r\n").decode("latin-1")
    assert raw.count("X-Cache: HIT") == 2
    assert "no-store" not in raw


def test_cache_survives_reload_and_takes_new_settings(co, ports):
    g = gh.Gatehouse(conf(ports[0], co.port), workers=1).start([ports[0]])
    g.port = ports[0]
    try:
        co.script("/rl", headers=[("Cache-Control", "max-age=60")], body=b"R")
        get(g, "/rl")
        assert xc(get(g, "/rl")[1]) == "HIT"
        g.reload(conf(ports[0], co.port, xcache="false"))
        st, h, b = get(g, "/rl")
        assert (st, b, "x-cache" in h) == (200, b"R", False)
        assert co.count("/rl") == 1
    finally:
        g.check_clean()
