"""Reverse side: per-site protection and request hygiene: rate limit (429 +
Retry-After), allow/deny clients, force_https (308), forwarding headers from
trusted and untrusted clients (X-Forwarded-*, RFC 7239 Forwarded), per-route
max_body_bytes (413), set_headers, redirect routes, and dot-segment
normalisation before route lookup."""
import json
import time

import pytest

import gh


def conf(port, o1, o2, trusted="[]"):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  trusted_proxies = %s;
  upstreams = (
    { name = "app1"; servers = ( { address = "127.0.0.1:%d"; } ); },
    { name = "app2"; servers = ( { address = "127.0.0.1:%d"; } ); }
  );
  sites = (
    { hosts = [ "www.test" ];
      routes = (
        { path = "/"; upstream = "app1"; },
        { path = "/api/"; upstream = "app2"; set_headers = { X-App = "two"; X-Forwarded-Host = "fixed.test"; }; },
        { path = "/small/"; upstream = "app1"; max_body_bytes = 100; },
        { path = "/old/"; redirect = "https://new.test/"; redirect_status = 301; },
        { path = "/see/"; redirect = "https://other.test/"; redirect_status = 303; }
      );
    },
    { hosts = [ "limited.test" ]; rate_limit = { requests_per_second = 2.0; burst = 3.0; };
      routes = ( { path = "/"; upstream = "app1"; } ); },
    { hosts = [ "secure.test" ]; force_https = true; routes = ( { path = "/"; upstream = "app1"; } ); },
    { hosts = [ "private.test" ]; allow_clients = [ "127.0.0.0/8" ]; deny_clients = [ "127.0.0.9" ];
      routes = ( { path = "/"; upstream = "app1"; } ); },
    { hosts = [ "nobody.test" ]; allow_clients = [ "10.0.0.0/8" ];
      routes = ( { path = "/"; upstream = "app1"; } ); }
  );
};
""" % (port, trusted, o1, o2)


@pytest.fixture
def gw(origin, origin2, ports):
    g = gh.Gatehouse(conf(ports[0], origin.port, origin2.port)).start([ports[0]])
    g.port = ports[0]
    yield g
    g.check_clean()


def echo(g, path, host="www.test", **kw):
    st, h, body = gh.http_get(g.port, path, host, **kw)
    assert st == 200, (st, body)
    d = json.loads(body)
    d["h"] = {}
    for k, v in d["headers"]:
        d["h"].setdefault(k.lower(), []).append(v)
    return d


def test_rate_limit_429(gw, origin):
    sts = [gh.http_get(gw.port, "/echo", "limited.test")[:2] for _ in range(6)]
    codes = [s for s, _ in sts]
    assert codes[:3] == [200, 200, 200]          # the burst
    assert 429 in codes[3:]
    h = sts[codes.index(429)][1]
    assert h["retry-after"] in ("1", "2")
    # other sites and other clients are not limited
    assert gh.http_get(gw.port, "/echo", "www.test")[0] == 200
    assert gh.http_get(gw.port, "/echo", "limited.test", source="127.0.0.7")[0] == 200
    # refilled at 2 per second
    time.sleep(0.6)
    assert gh.http_get(gw.port, "/echo", "limited.test")[0] == 200


def test_allow_and_deny_clients(gw, origin):
    assert gh.http_get(gw.port, "/echo", "private.test")[0] == 200
    assert gh.http_get(gw.port, "/echo", "private.test", source="127.0.0.9")[0] == 403
    assert gh.http_get(gw.port, "/echo", "nobody.test")[0] == 403
    assert len(origin.requests) == 1


def test_force_https_308(gw, origin):
    st, h, _ = gh.http_get(gw.port, "/a/b?x=1", "secure.test:8080")
    assert st == 308
    assert h["location"] == "https://secure.test/a/b?x=1"
    st, h, _ = gh.http_get(gw.port, "/", "secure.test")
    assert st == 308 and h["location"] == "https://secure.test/"
    assert origin.requests == []


def test_untrusted_forwarding_headers_replaced(gw, origin):
    d = echo(gw, "/echo", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
                                   "X-Forwarded-Host": "evil.test", "Forwarded": "for=6.6.6.6"})
    h = d["h"]
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-forwarded-proto"] == ["http"]
    assert h["x-forwarded-host"] == ["www.test"]
    assert h["forwarded"] == ["for=127.0.0.1;proto=http;host=www.test"]
    assert len(h["x-request-id"][0]) == 16


def test_trusted_forwarding_headers_appended(origin, origin2, ports):
    g = gh.Gatehouse(conf(ports[0], origin.port, origin2.port, '[ "127.0.0.0/8" ]')).start([ports[0]])
    g.port = ports[0]
    try:
        d = echo(g, "/echo", host="www.test:81",
                 headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                          "X-Forwarded-Host": "public.test", "Forwarded": 'for="[2001:db8::1]";proto=https'})
        h = d["h"]
        assert h["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
        assert h["x-forwarded-proto"] == ["https"]
        assert h["x-forwarded-host"] == ["public.test"]
        assert h["forwarded"] == ['for="[2001:db8::1]";proto=https, for=127.0.0.1;proto=http;host="www.test:81"']
        # without incoming headers the proxy's own values are used
        h = echo(g, "/echo")["h"]
        assert h["x-forwarded-for"] == ["127.0.0.1"] and h["x-forwarded-proto"] == ["http"]
    finally:
        g.check_clean()


def test_set_headers_and_redirect_route(gw, origin2):
    h = echo(gw, "/api/echo")["h"]
    assert h["x-app"] == ["two"]
    assert h["x-forwarded-host"] == ["fixed.test"]       # the route's explicit value wins
    st, hd, _ = gh.http_get(gw.port, "/old/page", "www.test")
    assert st == 301 and hd["location"] == "https://new.test/"
    st, hd, _ = gh.http_get(gw.port, "/see/x", "www.test", method="POST", body=b"x")
    assert st == 303 and hd["location"] == "https://other.test/"   # documented, was refused at load


def test_route_max_body_413(gw, origin):
    st, _, _ = gh.http_get(gw.port, "/small/upload", "www.test", method="POST", body=b"x" * 1000)
    assert st == 413
    st, _, body = gh.http_get(gw.port, "/small/upload", "www.test", method="POST", body=b"x" * 100)
    assert st == 200 and body == b"100"
    # other routes keep the global limit
    st, _, body = gh.http_get(gw.port, "/upload", "www.test", method="POST", body=b"x" * 1000)
    assert st == 200 and body == b"1000"


def raw_get(g, target, host="www.test"):
    r = gh.raw_exchange(g.port, ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                 % (target, host)).encode())
    return int(r.split(b" ", 2)[1]), r


def test_dot_segments_normalised_before_routing(gw, origin, origin2):
    # "/api/../echo" must not be served by the /api/ route
    st, r = raw_get(gw, "/api/../echo")
    assert st == 200 and origin2.requests == []
    assert origin.requests[-1].target == "/echo"
    st, r = raw_get(gw, "/api/%2e%2e/echo?a=../b")
    assert st == 200 and origin2.requests == []
    assert origin.requests[-1].target == "/echo?a=../b"
    # and the other way round: into /api/ via dots
    st, r = raw_get(gw, "/x/./..//api/./echo")
    assert st == 200 and origin2.requests[-1].target == "/api/echo"
    # climbing above the root is refused
    st, r = raw_get(gw, "/../etc/passwd")
    assert st == 400
    st, r = raw_get(gw, "/a/%2e%2e/%2e%2e/x")
    assert st == 400
    st, r = raw_get(gw, "/bad%zzescape")
    assert st == 400


def test_rate_limit_counts_an_ipv6_client_by_its_64(netns, origin, origin2, ports):
    """One host owns its /64 (privacy addresses): rotating the low 64 bits
    must not give it a fresh bucket per address."""
    import http.client
    netns.v6_local()
    text = conf(ports[0], origin.port, origin2.port).replace(
        'address = "127.0.0.1:%d"; } );\n  trusted' % ports[0],
        'address = "[2001:db8::1]:%d"; } );\n  trusted' % ports[0])
    g = gh.Gatehouse(text).start()
    try:
        assert gh.wait_port(ports[0], "2001:db8::1"), g.stderr()

        def get(src):
            c = http.client.HTTPConnection("2001:db8::1", ports[0], timeout=10, source_address=(src, 0))
            try:
                c.request("GET", "/echo", headers={"Host": "limited.test"})
                return c.getresponse().status
            finally:
                c.close()
        # burst 3 at 2/s: six quick requests from six addresses of one /64
        codes = [get("2001:db8::%x" % (0x100 + i)) for i in range(6)]
        assert codes[:3] == [200, 200, 200] and codes.count(429) >= 2, codes
        # another /64 is another client
        assert get("2001:db8:0:1::5") == 200
    finally:
        g.check_clean()
