"""Reverse side security regressions (issue #13): the cache key's scheme
comes from the listener, never from an absolute-form target (6); answers to
requests with Cookie or Authorization are not stored for others (10); the
static directory redirect cannot point at another host (17); dotfiles in
static roots are not served (20); identity and rewrite headers from untrusted
clients do not reach the application (18); cache fills in flight are bounded
by cache.memory (19).  Real sockets, real origins, real clients."""
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import gh
from test_a_console import ADMIN_PW, Console, users_file

HOST = "app.test"


def wait_for(cond, secs=5.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def raw(port, data, timeout=5.0):
    """Send one raw request, return (status, headers dict lower-cased, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        resp = gh.recv_response(s, timeout)
    finally:
        s.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hd = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hd[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hd, body


@pytest.fixture
def co():
    o = gh.CacheOrigin()
    yield o
    o.kill()


# ---- 6: the scheme of the cache key is the listener's ----

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    return {"ca": os.path.join(d, "ca.pem"), "cert": gh.make_cert(d, "app", [HOST])}


def test_absolute_https_target_on_plain_listener_cannot_fill_the_tls_entry(co, ports, pki):
    tport, pport, aport = ports[0], ports[1], ports[2]
    conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; }, { address = "127.0.0.1:%d"; } );
  certificates = ( { cert = "%s"; key = "%s"; default = true; } );
  cache = { memory = "16M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "%s" ]; routes = ( { path = "/"; upstream = "app"; cache = true; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };
""" % (tport, pport, pki["cert"][0], pki["cert"][1], co.port, HOST, aport)
    # the answer names the scheme the origin was told (X-Forwarded-Proto)
    co.script("/x", headers=[("Cache-Control", "max-age=60")],
              body=lambda r: ("proto=%s" % r.header("X-Forwarded-Proto")).encode())
    g = gh.Gatehouse(conf, extra_files={"users": users_file()}).start([tport, pport, aport])

    def tls_get():
        # HTTP/1.1: the checks below read header lines as HTTP/1 writes them
        # (TLS listeners offer h2 by default since issue 17, and curl takes it)
        rc, out, err = gh.curl("--http1.1", "--cacert", pki["ca"], "--resolve", "%s:%d:127.0.0.1" % (HOST, tport),
                               "-D", "-", "https://%s:%d/x" % (HOST, tport))
        assert rc == 0, err
        return out

    try:
        # a plain-HTTP client names the TLS site's URL in an absolute-form target
        attack = b"GET https://%s:%d/x HTTP/1.1\r\nHost: %s\r\n\r\n" % (HOST.encode(), tport,
                                                                           HOST.encode())
        st, h, b = raw(pport, attack)
        assert (st, b) == (200, b"proto=http")
        st, h, b = raw(pport, attack)
        assert (st, h.get("x-cache"), b) == (200, "HIT", b"proto=http")   # it was stored ...
        assert co.count("/x") == 1
        out = tls_get()                                   # ... but not for TLS clients
        assert out.endswith(b"proto=https"), out
        assert b"X-Cache: MISS" in out
        assert co.count("/x") == 2
        assert b"X-Cache: HIT" in tls_get()
        # purge by URL still finds the TLS entry
        c = Console(aport)
        assert c.login("admin", ADMIN_PW).status == 200
        r = c.post("/api/v1/cache/purge", {"url": "https://%s:%d/x" % (HOST, tport)})
        assert r.status == 200 and r.json["purged"] == 1
        assert b"X-Cache: MISS" in tls_get()
        assert co.count("/x") == 3
    finally:
        g.check_clean()


# ---- 10: web cache deception ----

def cache_conf(port, origin_port, static_route=""):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "16M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "%s" ]; routes = (
      { path = "/"; upstream = "app"; cache = { ttl = 60.0; }; }
      %s
  ); } );
};
""" % (port, origin_port, HOST, static_route)


@pytest.fixture
def cgw(co, ports):
    g = gh.Gatehouse(cache_conf(ports[0], co.port), workers=2).start([ports[0]])
    g.port = ports[0]
    yield g
    g.check_clean()


def who(r):
    """The origin's answer names the user the request came from."""
    return ("user=%s" % (r.header("Cookie") or r.header("Authorization") or "anonymous")).encode()


def get(g, path, headers=None):
    return gh.http_get(g.port, path, HOST, headers=headers)


def test_answer_to_cookie_request_not_served_to_others(cgw, co):
    # the attacker makes the victim fetch /account/x.css; the route has a ttl
    co.script("/account/x.css", body=who)
    st, h, b = get(cgw, "/account/x.css", {"Cookie": "sid=alice"})
    assert (st, b) == (200, b"user=sid=alice")
    st, h, b = get(cgw, "/account/x.css")
    assert b == b"user=anonymous", b
    assert co.count("/account/x.css") == 2
    # an anonymous answer is stored and may serve cookie requests too
    st, h, b = get(cgw, "/account/x.css", {"Cookie": "sid=bob"})
    assert (h.get("x-cache"), b) == ("HIT", b"user=anonymous")


def test_answer_to_authorization_request_not_served_to_others(cgw, co):
    co.script("/me", body=who)
    assert get(cgw, "/me", {"Authorization": "Basic YWxpY2U6eA=="})[2] == b"user=Basic YWxpY2U6eA=="
    st, h, b = get(cgw, "/me")
    assert b == b"user=anonymous"
    assert co.count("/me") == 2
    # RFC 9111 3.5: s-maxage (or public, must-revalidate) allows storing
    co.script("/shared", headers=[("Cache-Control", "s-maxage=60")], body=who)
    get(cgw, "/shared", {"Authorization": "Basic YWxpY2U6eA=="})
    assert get(cgw, "/shared")[1].get("x-cache") == "HIT"


def test_cookie_request_stored_when_public(cgw, co):
    co.script("/pub", headers=[("Cache-Control", "public, max-age=60")], body=b"same for all")
    get(cgw, "/pub", {"Cookie": "sid=alice"})
    st, h, b = get(cgw, "/pub")
    assert (h.get("x-cache"), b) == ("HIT", b"same for all")
    assert co.count("/pub") == 1


def test_cookie_request_stored_when_route_opts_in(co, ports):
    # cache.ignore_cookie: the operator says these never depend on cookies
    g = gh.Gatehouse(cache_conf(ports[0], co.port, ', { path = "/static/"; upstream = "app"; '
                                'cache = { ttl = 60.0; ignore_cookie = true; }; }')).start([ports[0]])
    g.port = ports[0]
    try:
        co.script("/static/app.js", body=b"js")
        get(g, "/static/app.js", {"Cookie": "sid=alice"})
        assert get(g, "/static/app.js")[1].get("x-cache") == "HIT"
        assert co.count("/static/app.js") == 1
        co.script("/acct", body=who)               # other routes keep the rule
        get(g, "/acct", {"Cookie": "sid=alice"})
        assert get(g, "/acct")[2] == b"user=anonymous"
    finally:
        g.check_clean()


def test_cookie_request_does_not_refresh_shared_entry_with_its_304(cgw, co):
    # a 304 to a user's request would merge that user's header fields into
    # the entry everyone gets: a request with Cookie revalidates nothing
    co.script("/r", headers=lambda r: [("Cache-Control", "max-age=1"), ("X-User", who(r).decode())],
              etag='"r1"', body=b"page")
    assert get(cgw, "/r")[1]["x-user"] == "user=anonymous"
    time.sleep(1.3)                                   # stale now
    st, h, b = get(cgw, "/r", {"Cookie": "sid=alice"})
    assert (b, h["x-user"]) == (b"page", "user=sid=alice")
    assert co.last("/r").header("If-None-Match") is None
    st, h, b = get(cgw, "/r")
    assert h["x-user"] == "user=anonymous", h
    assert co.count("/r") == 3


def test_cookie_request_not_stored_collapsed_waiters_go_to_origin(cgw, co):
    # a cookie request leading a key must not hand its answer to the ones
    # waiting behind it (collapsed forwarding)
    co.script("/slow", body=who, delay=0.8)
    out = []
    t = threading.Thread(target=lambda: out.append(get(cgw, "/slow", {"Cookie": "sid=alice"})))
    t.start()
    time.sleep(0.3)
    st, h, b = get(cgw, "/slow")
    t.join(10)
    assert out[0][2] == b"user=sid=alice"
    assert b == b"user=anonymous"


# ---- 17 and 20: static routes ----

def static_gw(ports, tmp_path, extra_route=""):
    root = tmp_path / "www"
    for rel, data in {"index.html": "home", "sub/index.html": "sub", "a.txt": "a",
                      ".git/config": "[core] secret", ".env": "DB_PASSWORD=x",
                      ".htpasswd": "u:hash", "sub/.env": "nested", ".well-known/security.txt": "sec"
                      }.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  sites = ( { hosts = [ "%s" ]; routes = (
      { path = "/"; static = "%s"; },
      { path = "/files/"; static = "%s"; strip_prefix = true; }
      %s
  ); } );
};
""" % (ports[0], HOST, root, root, extra_route.replace("@ROOT@", str(root)))
    g = gh.Gatehouse(conf).start([ports[0]])
    g.port = ports[0]
    return g


@pytest.fixture
def sgw(ports, tmp_path):
    g = static_gw(ports, tmp_path)
    yield g
    g.check_clean()


def req(port, target):
    return raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("target,want", [
    (b"//evil.example/../sub", "/sub/"),
    (b"///evil.example/../sub", "/sub/"),
    (b"//evil.example/%2e%2e/sub", "/sub/"),
    (b"/./evil.example/../sub?x=//y", "/sub/?x=//y"),
    (b"/sub", "/sub/"),
    (b"/files//evil.example/../sub", "/files/sub/"),
])
def test_directory_redirect_stays_on_this_site(sgw, target, want):
    st, h, b = req(sgw.port, target)
    assert st == 301, (st, b)
    loc = h["location"]
    assert loc == want
    assert not loc.startswith("//") and "://" not in loc.split("?")[0] and "\\" not in loc


@pytest.mark.parametrize("path", [b"/.git/config", b"/.env", b"/.htpasswd", b"/sub/.env",
                                  b"/%2egit/config", b"/%2Eenv", b"/files/.env", b"/.git/",
                                  b"/sub/%2e%65nv"])
def test_dotfiles_not_served(sgw, path):
    st, h, b = req(sgw.port, path)
    assert st == 404, (path, st, b)


def test_dotfiles_opt_in_and_well_known(ports, tmp_path):
    g = static_gw(ports, tmp_path, ', { path = "/open/"; static = "@ROOT@"; strip_prefix = true; '
                  'dotfiles = true; }')
    try:
        assert req(g.port, b"/.well-known/security.txt")[2] == b"sec"
        assert req(g.port, b"/open/.env")[2] == b"DB_PASSWORD=x"
        assert req(g.port, b"/open/.git/config")[2] == b"[core] secret"
        assert req(g.port, b"/a.txt")[2] == b"a"
        assert req(g.port, b"/.env")[0] == 404
    finally:
        g.check_clean()


def check_conf(text):
    d = gh.Gatehouse(text)
    p = subprocess.run([gh.BIN, "-t", "-c", d.conf], capture_output=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_config_errors_for_new_keys(ports):
    rc, out = check_conf("""
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  strip_headers = [ "X-Real-IP", "Content-Length", "bad name" ];
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:1"; } ); } );
  sites = ( { hosts = [ "a.test" ]; routes = ( { path = "/"; upstream = "app"; dotfiles = true; } ); } );
};
""" % ports[0])
    assert rc == 1
    assert "reverse.strip_headers.[1]: frames or routes the request" in out, out
    assert "reverse.strip_headers.[2]: not a valid header name" in out, out
    assert "dotfiles: only applies to a static route" in out, out
    rc, out = check_conf("""
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  strip_headers = [];
  cache = { memory = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:1"; } ); } );
  sites = ( { hosts = [ "a.test" ]; routes = (
      { path = "/"; upstream = "app"; cache = { ignore_cookie = true; }; } ); } );
};
""" % ports[0])
    assert rc == 0, out


# ---- 18: identity and rewrite headers from untrusted clients ----

SPOOF = {"X-Real-IP": "10.6.6.6", "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin",
         "X-Forwarded-Port": "1", "X-Client-IP": "10.6.6.6", "True-Client-IP": "10.6.6.6",
         "CF-Connecting-IP": "10.6.6.6", "X-Cluster-Client-IP": "10.6.6.6",
         "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
         "X-Forwarded-Prefix": "/evil", "X-Forwarded-Scheme": "https", "X-Original-Host": "evil.example",
         "X-Host": "evil.example", "X-Forwarded-Server": "evil.example", "X-Forwarded-Ssl": "on"}


def hdr_conf(port, origin_port, extra=""):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  trusted_proxies = [ "127.0.0.2/32" ];
  %s
  cache = { memory = "16M"; max_object = "1M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "%s" ]; routes = (
      { path = "/"; upstream = "app"; },
      { path = "/set/"; upstream = "app"; set_headers: { X-Real-IP = "from-route"; }; },
      { path = "/c/"; upstream = "app"; cache = true; }
  ); } );
};
""" % (port, extra, origin_port, HOST)


def seen(origin, source, path="/echo", headers=None):
    st, h, b = gh.http_get(gw_port[0], path, HOST, source=source, headers=headers or SPOOF)
    assert st == 200, b
    return {k.lower(): v for k, v in json.loads(b)["headers"]}


gw_port = [0]


@pytest.fixture
def hgw(origin, ports):
    g = gh.Gatehouse(hdr_conf(ports[0], origin.port)).start([ports[0]])
    gw_port[0] = ports[0]
    yield g
    g.check_clean()


def test_untrusted_client_identity_headers_stripped(hgw, origin):
    h = seen(origin, "127.0.0.1")
    for name in ("x-real-ip", "x-original-url", "x-rewrite-url", "x-forwarded-port", "x-client-ip",
                 "true-client-ip", "cf-connecting-ip", "x-cluster-client-ip", "x-forwarded-prefix",
                 "x-forwarded-scheme", "x-original-host", "x-host", "x-forwarded-server",
                 "x-forwarded-ssl"):
        assert name not in h, (name, h)
    # Gatehouse's own forwarding headers, not the client's
    assert h["x-forwarded-host"] == HOST and h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-for"] == "127.0.0.1"


def test_trusted_proxy_identity_headers_pass(hgw, origin):
    h = seen(origin, "127.0.0.2")
    for name, v in SPOOF.items():
        assert h[name.lower()] == v, (name, h)
    assert h["x-forwarded-for"] == "127.0.0.2"


def test_route_set_headers_wins_over_strip(hgw, origin):
    h = seen(origin, "127.0.0.1", "/set/echo")
    assert h["x-real-ip"] == "from-route"


def test_trusted_rewrite_header_bypasses_cache(origin, ports):
    co = gh.CacheOrigin()
    g = gh.Gatehouse(hdr_conf(ports[0], co.port)).start([ports[0]])
    try:
        co.script("/c/p", headers=[("Cache-Control", "max-age=60")],
                  body=lambda r: ("url=%s" % r.header("X-Original-URL")).encode())
        rw = {"X-Original-URL": "/admin"}
        # untrusted: stripped, so the key names what is served
        assert gh.http_get(ports[0], "/c/p", HOST, headers=rw)[2] == b"url=None"
        st, h, b = gh.http_get(ports[0], "/c/p", HOST, headers=rw)
        assert (h.get("x-cache"), b) == ("HIT", b"url=None")
        # trusted: passed on, and neither served from nor stored in the cache
        for _ in range(2):
            st, h, b = gh.http_get(ports[0], "/c/p", HOST, source="127.0.0.2", headers=rw)
            assert b == b"url=/admin" and h.get("x-cache") is None
        assert gh.http_get(ports[0], "/c/p", HOST)[2] == b"url=None"
        assert co.count("/c/p") == 3
    finally:
        g.check_clean()
        co.kill()


def test_strip_headers_configurable(origin, ports):
    g = gh.Gatehouse(hdr_conf(ports[0], origin.port, 'strip_headers = [ "X-Internal-User" ];'))
    g.start([ports[0]])
    gw_port[0] = ports[0]
    try:
        h = seen(origin, "127.0.0.1", headers={"X-Internal-User": "root", "X-Real-IP": "1.2.3.4"})
        assert "x-internal-user" not in h and h["x-real-ip"] == "1.2.3.4"
        # X-Original-URL is not listed: it reaches the application, so the
        # cache keeps out of it even for an untrusted client
        rw = {"X-Original-URL": "/admin"}
        for _ in range(2):
            st, hd, b = gh.http_get(ports[0], "/c/echo", HOST, headers=rw)
            assert hd.get("x-cache") is None and b"/admin" in b
    finally:
        g.check_clean()


# ---- 19: cache fills in flight are charged to cache.memory ----

class SlowBigOrigin:
    """Answers GET /big/N with a storable body of SIZE bytes: the first half at
    once, the rest after release() -- so every fill is open at the same time.
    Even N: Content-Length; odd N: chunked."""
    SIZE = 1536 * 1024

    def __init__(self):
        self.port = gh.free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(512)
        self.go = threading.Event()
        self.half = threading.Semaphore(0)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            n = int(buf.split(b" ", 2)[1].rsplit(b"/", 1)[1])
            body = bytes([65 + n % 26]) * self.SIZE
            chunked = n % 2 == 1
            head = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n"
            head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else \
                b"Content-Length: %d\r\n\r\n" % self.SIZE

            def part(p):
                return b"%x\r\n%s\r\n" % (len(p), p) if chunked else p
            c.sendall(head)
            mid = self.SIZE // 2
            for i in range(0, mid, 65536):
                c.sendall(part(body[i:min(i + 65536, mid)]))
            self.half.release()
            if n < 1000:                  # /big/1000 and up: no pause
                self.go.wait(60)
            for i in range(mid, self.SIZE, 65536):
                c.sendall(part(body[i:i + 65536]))
            if chunked:
                c.sendall(b"0\r\n\r\n")
            c.recv(1)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.go.set()
        self.sock.close()


def metrics(port):
    out = {}
    for line in gh.curl("http://127.0.0.1:%d/metrics" % port, timeout=5)[1].decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def fetch_all(port, n):
    """GET /big/n on a fresh connection; returns the body length and whether it is right."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(b"GET /big/%d HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % n)
        data = bytearray()
        while True:
            d = s.recv(262144)
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        out, rest = bytearray(), body
        while rest:
            ln, _, rest = rest.partition(b"\r\n")
            k = int(ln, 16)
            if k == 0:
                break
            out += rest[:k]
            rest = rest[k + 2:]
        body = bytes(out)
    return len(body), body == bytes([65 + n % 26]) * SlowBigOrigin.SIZE


def test_fills_in_flight_bounded_by_cache_memory(ports):
    n_fills, memory = 120, 16 << 20
    o = SlowBigOrigin()
    conf = """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  cache = { memory = "16M"; max_object = "2M"; };
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); keepalive = 0; } );
  sites = ( { hosts = [ "app.test" ]; routes = ( { path = "/"; upstream = "app"; cache = true; } ); } );
};
admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; metrics_listen = "127.0.0.1:%d"; };
""" % (ports[0], o.port, ports[1], ports[2])
    g = gh.Gatehouse(conf, workers=2, extra_files={"users": "u:%s:viewer\n" % gh.crypt_hash("pw")})
    g.start([ports[0], ports[2]])
    results, seen_bytes = [], []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                seen_bytes.append(metrics(ports[2]).get("gatehouse_cache_bytes", 0))
            except Exception:
                pass
            time.sleep(0.1)
    try:
        fetch_all(ports[0], 1000)                     # warm up the workers
        with gh.PeakRss(g.proc.pid) as rss:
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            ts = [threading.Thread(target=lambda i=i: results.append(fetch_all(ports[0], i)))
                  for i in range(n_fills)]
            for t in ts:
                t.start()
            end = time.monotonic() + 60
            got = sum(o.half.acquire(timeout=max(0.1, end - time.monotonic()))
                      for _ in range(n_fills))
            assert got == n_fills                     # every fill is open, half received
            time.sleep(1.0)
            o.go.set()
            for t in ts:
                t.join(120)
            stop.set()
            sampler.join(5)
        # every client got its whole response, stored or not
        assert len(results) == n_fills and all(ok for _, ok in results), \
            [r for r in results if not r[1]][:3]
        assert seen_bytes and max(seen_bytes) <= memory, max(seen_bytes)
        m = metrics(ports[2])
        assert m["gatehouse_cache_bytes"] <= memory
        # aborted fills gave their charge back: what is left is stored objects
        assert m["gatehouse_cache_bytes"] <= m["gatehouse_cache_objects"] * (SlowBigOrigin.SIZE + 8192)
        print("peak RSS growth %d kB, max cache bytes %d, objects %d" %
              (rss.grow_kb, max(seen_bytes), m["gatehouse_cache_objects"]))
        if not gh.SANITIZED:
            # 120 x 1.5 MB would be 180 MB of bodies; the budget is 16 MB
            assert rss.grow_kb < 64 * 1024, rss.grow_kb
    finally:
        stop.set()
        o.stop()
        g.check_clean()
