"""Admin console: authentication, sessions, roles, CSRF, security headers,
the JSON API, reload with errors, the policy tester against the real proxy,
/metrics through a real Prometheus parser, the generated first password,
the metrics-only listener and HTTPS."""
import hashlib
import http.client
import json
import os
import re
import ssl
import subprocess
import time

import pytest

import gh

ADMIN_PW = "correct horse battery"
VIEWER_PW = "viewer-pass-1"
TOKEN = "f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef0123"


def crypt_hash(pw, kind="-6"):
    p = subprocess.run(["openssl", "passwd", kind, "-stdin"], input=pw.encode(), capture_output=True,
                       check=True)
    return p.stdout.decode().strip()


def users_file():
    return ("# test users\nadmin:%s:admin:token_sha256=%s\nviewer:%s:viewer\n"
            % (crypt_hash(ADMIN_PW), hashlib.sha256(TOKEN.encode()).hexdigest(),
               crypt_hash(VIEWER_PW, "-5")))


def console_conf(ports, origin_port, admin_extra="", fwd_extra="", users="@DIR@/users"):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.1/32" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ 443, %d ];
  policy = (
    { name = "no-games"; action = "deny"; domains = [ ".games.example" ]; },
    { name = "no-exe"; action = "deny"; urls = [ "\\\\.exe$" ]; },
    { name = "no-delete"; action = "deny"; methods = [ "DELETE" ]; },
    { name = "office-hours-social"; action = "deny"; domains = [ "*.social.example" ];
      hours = "Mon-Fri 09:00-17:00"; },
    { name = "default-allow"; action = "allow"; }
  );
  %s
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; weight = 2; } ); } );
  sites = ( { hosts = [ "localhost", "127.0.0.1" ];
              routes = ( { path = "/"; static = "@DIR@/www"; },
                         { path = "/app/"; upstream = "app"; set_headers = { X-Api-Key = "s3cret-value"; }; } ); } );
};
admin: {
  listen = "127.0.0.1:%d";
  users_file = "%s";
  %s
};
""" % (ports[0], origin_port, fwd_extra, ports[1], origin_port, ports[2], users, admin_extra)


class Console:
    """A small HTTP client for the console with a session cookie and CSRF token."""

    def __init__(self, port, https=False):
        self.port, self.https = port, https
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, cookie=True):
        if self.https:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        r.body = data
        try:
            r.json = json.loads(data) if data else None
        except ValueError:
            r.json = None
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, csrf=True, headers=None, **kw):
        h = dict(headers or {})
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        return self.request("POST", path, body=body if body is not None else {}, headers=h, **kw)

    def login(self, user, pw):
        r = self.request("POST", "/api/v1/login", {"user": user, "password": pw}, cookie=False)
        if r.status == 200:
            m = re.match(r"gh_session=([0-9a-f]{64});", r.getheader("Set-Cookie"))
            self.cookie = "gh_session=" + m.group(1)
            self.csrf = r.json["csrf"]
        return r


@pytest.fixture
def gw(origin, ports):
    g = gh.Gatehouse(console_conf(ports, origin.port),
                     extra_files={"users": users_file(), "www/index.html": "<h1>hello</h1>\n"})
    g.start([ports[0], ports[1], ports[2]])
    g.fwd, g.rev, g.adm = ports[0], ports[1], ports[2]
    yield g
    g.check_clean()


@pytest.fixture
def admin(gw):
    c = Console(gw.adm)
    assert c.login("admin", ADMIN_PW).status == 200
    return c


GET_ENDPOINTS = ["session", "stats", "events", "forward", "tail", "config", "certificates", "audit", "reload",
                 "upstreams", "sites", "cache", "forward/blocks"]
POST_ENDPOINTS = ["reload", "policy/test", "logout", "servers/drain", "cache/purge", "account/password"]


def test_auth_required_on_every_endpoint(gw):
    c = Console(gw.adm)
    for ep in GET_ENDPOINTS:
        r = c.get("/api/v1/" + ep)
        assert r.status == 401, ep
        assert r.getheader("WWW-Authenticate", "").startswith("Bearer")
    for ep in POST_ENDPOINTS:
        assert c.post("/api/v1/" + ep, {"url": "http://x/"}).status == 401, ep
    assert c.get("/metrics").status == 401
    r = c.get("/")
    assert r.status == 302 and r.getheader("Location") == "/login"
    # a made-up session cookie is no session
    c.cookie = "gh_session=" + "ab" * 32
    assert c.get("/api/v1/stats").status == 401
    # the login page and its assets are public
    r = c.get("/login")
    assert r.status == 200 and b"login-form" in r.body
    assert c.get("/app.js").status == 200 and c.get("/app.css").status == 200


def test_security_headers_everywhere(gw, admin):
    anon = Console(gw.adm)
    for r in (anon.get("/login"), anon.get("/app.js"), anon.get("/api/v1/stats"), admin.get("/"),
              admin.get("/api/v1/stats"), admin.get("/api/v1/config"), admin.get("/metrics")):
        csp = r.getheader("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.getheader("X-Frame-Options") == "DENY"
        assert r.getheader("X-Content-Type-Options") == "nosniff"
        assert r.getheader("Referrer-Policy") == "no-referrer"
        assert r.getheader("Cache-Control") == "no-store"
    # the pages carry no inline script
    page = admin.get("/").body.decode()
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    # nothing loaded from outside: every src/href is local
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_login_cookie_flags_and_logout(gw):
    c = Console(gw.adm)
    r = c.login("admin", ADMIN_PW)
    assert r.status == 200 and r.json["role"] == "admin" and len(r.json["csrf"]) == 64
    sc = r.getheader("Set-Cookie")
    assert "HttpOnly" in sc and "SameSite=Strict" in sc and "Secure" not in sc
    assert c.get("/api/v1/session").json["user"] == "admin"
    assert c.post("/api/v1/logout").status == 200
    assert c.get("/api/v1/session").status == 401
    audit = Console(gw.adm).get("/api/v1/audit", headers={"Authorization": "Bearer " + TOKEN}).json
    actions = [(a["action"], a["outcome"], a["user"]) for a in audit["audit"]]
    assert ("logout", "ok", "admin") in actions and ("login", "ok", "admin") in actions


def test_session_idle_expiry(origin, ports):
    conf = console_conf(ports, origin.port, admin_extra="session_idle = 2.0;")
    g = gh.Gatehouse(conf, extra_files={"users": users_file(), "www/index.html": "x"}).start([ports[2]])
    try:
        c = Console(ports[2])
        assert c.login("admin", ADMIN_PW).json["idle_timeout"] == 2.0
        for _ in range(3):            # each request restarts the idle clock: 3.6 s in all
            time.sleep(1.2)
            assert c.get("/api/v1/session").status == 200
        time.sleep(2.5)
        assert c.get("/api/v1/session").status == 401
        assert c.post("/api/v1/reload").status == 401
        # the bearer token is no session: it does not expire
        assert c.get("/api/v1/session", cookie=False, headers={"Authorization": "Bearer " + TOKEN}).status == 200
    finally:
        g.check_clean()
    # out of range: refused with FILE:LINE
    bad = gh.Gatehouse(console_conf(ports, origin.port, admin_extra="session_idle = 0.5;"),
                       extra_files={"users": users_file(), "www/index.html": "x"})
    p = subprocess.run([gh.BIN, "-t", "-c", bad.conf], capture_output=True, text=True)
    assert p.returncode != 0 and re.search(r"gatehouse\.conf:\d+: admin\.session_idle: must be between 1 and 86400",
                                           p.stderr + p.stdout), p.stderr


def test_wrong_password_then_rate_limit(gw):
    c = Console(gw.adm)
    assert c.login("admin", "wrong").status == 401
    assert c.login("nobody", "wrong").status == 401
    for _ in range(3):
        assert c.login("admin", "still wrong").status == 401
    r = c.login("admin", ADMIN_PW)   # right password, but this client is throttled
    assert r.status == 429 and int(r.getheader("Retry-After")) > 0
    assert c.cookie is None
    err = gw.stderr()
    assert "admin audit: login user=admin client=127.0.0.1 outcome=failed" in err
    assert "outcome=throttled" in err
    # the audit log in the API has them too (bearer tokens are not rate limited)
    a = c.get("/api/v1/audit", headers={"Authorization": "Bearer " + TOKEN}).json["audit"]
    assert sum(1 for e in a if e["action"] == "login" and e["outcome"] == "failed") == 5


def test_roles_viewer_cannot_reload(gw):
    v = Console(gw.adm)
    r = v.login("viewer", VIEWER_PW)
    assert r.status == 200 and r.json["role"] == "viewer"
    assert v.get("/api/v1/stats").status == 200
    assert v.get("/api/v1/config").status == 200
    r = v.post("/api/v1/reload")
    assert r.status == 403 and "admin role" in r.json["error"]
    # the viewer may use the (read-only) policy tester
    assert v.post("/api/v1/policy/test", {"url": "http://a.games.example/", "client": "127.0.0.1"}).status == 200
    a = Console(gw.adm)
    a.login("admin", ADMIN_PW)
    assert a.post("/api/v1/reload").status == 200


def test_csrf_enforced(gw, admin):
    assert admin.post("/api/v1/reload", csrf=False).status == 403
    assert admin.post("/api/v1/reload", csrf=False, headers={"X-CSRF-Token": "0" * 64}).status == 403
    assert admin.post("/api/v1/policy/test", {"url": "http://x.example/"}, csrf=False).status == 403
    # a form field works as well as the header
    r = admin.request("POST", "/api/v1/reload", body="csrf=" + admin.csrf,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200
    assert admin.post("/api/v1/reload").status == 200
    # another session's token is no good
    other = Console(gw.adm)
    other.login("viewer", VIEWER_PW)
    assert admin.post("/api/v1/reload", csrf=False, headers={"X-CSRF-Token": other.csrf}).status == 403


def test_bearer_token(gw):
    c = Console(gw.adm)
    h = {"Authorization": "Bearer " + TOKEN}
    r = c.get("/api/v1/stats", headers=h)
    assert r.status == 200 and r.json["generation"] == 1
    assert c.get("/metrics", headers=h).status == 200
    # no cookie, so no CSRF needed; role from the users file (admin)
    assert c.post("/api/v1/reload", headers=h, csrf=False).status == 200
    assert c.get("/api/v1/stats", headers={"Authorization": "Bearer " + "0" * 64}).status == 401


def test_reload_with_broken_config_shows_errors(gw, admin, origin, ports):
    good = gw.conf and open(gw.conf).read()
    assert gh.curl_status("http://127.0.0.1:%d/" % gw.rev) == 200
    broken = good.replace('policy = (', 'no_such_key = 1;\n  policy = (', 1)
    broken = broken.replace('weight = 2;', 'weight = 5000;', 1)
    with open(gw.conf, "w") as f:
        f.write(broken)
    lines = broken.split("\n")
    bad1 = next(i for i, l in enumerate(lines, 1) if "no_such_key" in l)
    bad2 = next(i for i, l in enumerate(lines, 1) if "weight = 5000" in l)
    r = admin.post("/api/v1/reload")
    assert r.status == 422 and r.json["ok"] is False and r.json["generation"] == 1
    errs = "\n".join(r.json["errors"])
    assert "gatehouse.conf:%d:" % bad1 in errs, errs
    assert "gatehouse.conf:%d:" % bad2 in errs, errs
    # the old config keeps serving, and the console says so
    assert gh.curl_status("http://127.0.0.1:%d/" % gw.rev) == 200
    cfg = admin.get("/api/v1/config").json
    assert cfg["generation"] == 1 and cfg["last_reload"]["ok"] is False
    assert len(cfg["last_reload"]["errors"]) == len(r.json["errors"])
    assert "reload user=admin client=127.0.0.1 outcome=failed" in gw.stderr()
    with open(gw.conf, "w") as f:
        f.write(good)
    r = admin.post("/api/v1/reload")
    assert r.status == 200 and r.json["generation"] == 2 and r.json["errors"] == []
    m = admin.get("/metrics").body.decode()
    assert 'gatehouse_config_reloads_total{result="failure"} 1' in m
    assert 'gatehouse_config_reloads_total{result="success"} 1' in m


def test_sighup_reload_audited_and_counted(gw, admin):
    good = open(gw.conf).read()
    # a refused SIGHUP reload, then a good one within the same second
    gw.reload(good.replace("policy = (", "no_such_key = 1;\n  policy = (", 1), settle=0.2)
    gw.reload(good, settle=0.3)
    m = admin.get("/metrics").body.decode()
    assert 'gatehouse_config_reloads_total{result="failure"} 1' in m
    assert 'gatehouse_config_reloads_total{result="success"} 1' in m
    # the console's reload counts the same way, at once
    assert admin.post("/api/v1/reload").status == 200
    assert 'gatehouse_config_reloads_total{result="success"} 2' in admin.get("/metrics").body.decode()
    audit = admin.get("/api/v1/audit").json["audit"]        # newest first
    got = [(a["action"], a["user"], a["client"], a["outcome"]) for a in audit if a["action"] != "login"]
    assert got == [("reload", "admin", "127.0.0.1", "ok"), ("config change", "admin", "127.0.0.1", "ok"),
                   ("reload", "-", "SIGHUP", "ok"), ("config change", "-", "SIGHUP", "ok"),
                   ("reload", "-", "SIGHUP", "failed")], got
    assert audit[1]["detail"] == "generation=3 file=%s" % gw.conf
    assert audit[4]["detail"] == "generation=1 errors=1"
    err = gw.stderr()
    assert "admin audit: reload user=- client=SIGHUP outcome=failed generation=1 errors=1" in err
    assert "admin audit: config change user=- client=SIGHUP outcome=ok generation=2" in err


def access_decision(gw, needle):
    for _ in range(20):
        for line in reversed(gw.access_lines(wait=0.25)):
            if needle in line:
                m = re.search(r' verdict=(\S+) rule=(?:"([^"]*)"|(\S+))', line)
                return m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
    raise AssertionError("no access-log line with " + needle)


def test_policy_tester_agrees_with_proxy(gw, admin, origin):
    proxy = "http://127.0.0.1:%d" % gw.fwd
    o = origin.port
    cases = [
        # (curl args, tester input, access-log needle)
        (["http://www.games.example/play"], {"url": "http://www.games.example/play"}, "www.games.example/play"),
        (["http://127.0.0.1:%d/setup.exe" % o], {"url": "http://127.0.0.1:%d/setup.exe" % o}, "/setup.exe"),
        (["-X", "DELETE", "http://127.0.0.1:%d/echo?d" % o],
         {"url": "http://127.0.0.1:%d/echo?d" % o, "method": "DELETE"}, "/echo?d"),
        (["http://www.social.example/feed"], {"url": "http://www.social.example/feed"}, "www.social.example/feed"),
        (["http://127.0.0.1:%d/echo?ok" % o], {"url": "http://127.0.0.1:%d/echo?ok" % o}, "/echo?ok"),
        (["-p", "http://127.0.0.1:%d/echo?tunnel" % o],
         {"url": "127.0.0.1:%d" % o, "method": "CONNECT"}, "CONNECT 127.0.0.1:%d" % o),
        (["-p", "http://127.0.0.1:8/x"], {"url": "127.0.0.1:8", "method": "CONNECT"}, "CONNECT 127.0.0.1:8 "),
        (["--interface", "127.0.0.2", "http://127.0.0.1:%d/echo?other" % o],
         {"url": "http://127.0.0.1:%d/echo?other" % o, "client": "127.0.0.2"}, "/echo?other"),
    ]
    seen = set()
    for args, test_in, needle in cases:
        gh.curl("-x", proxy, *args, timeout=5)
        real = access_decision(gw, needle)
        body = dict(test_in)
        body.setdefault("client", "127.0.0.1")
        r = admin.post("/api/v1/policy/test", body)
        assert r.status == 200, r.body
        mine = (r.json["verdict"], r.json["rule"])
        assert mine == real, (needle, mine, real, r.json)
        seen.add(real)
    # the cases cover allow and deny by rule, port and client
    assert ("allow", "default-allow") in seen and ("deny", "no-games") in seen
    assert ("deny", "connect_ports") in seen and ("deny", "allow_clients") in seen
    r = admin.post("/api/v1/policy/test", {"url": "http://x.games.example/"})
    assert r.json["match"]["domain"] == ".games.example" and r.json["rule_index"] == 0
    # an explicit time decides hours rules (2026-11-30 is a Monday)
    at = {"url": "http://www.social.example/", "client": "127.0.0.1"}
    assert admin.post("/api/v1/policy/test", dict(at, time="2026-11-30T10:00")).json["rule"] == \
        "office-hours-social"
    assert admin.post("/api/v1/policy/test", dict(at, time="2026-11-29T10:00")).json["rule"] == "default-allow"
    assert admin.post("/api/v1/policy/test", {"url": "ftp://x/"}).status == 400
    # per-rule hits, as the proxy counted them
    pol = {r["name"]: r for r in admin.get("/api/v1/config").json["forward"]["policy"]}
    assert pol["no-games"]["hits"] >= 1 and pol["no-exe"]["hits"] >= 1
    from prometheus_client.parser import text_string_to_metric_families
    hits = {}
    for f in text_string_to_metric_families(admin.get("/metrics").body.decode()):
        for smp in f.samples:
            if smp.name == "gatehouse_policy_rule_hits_total":
                hits[smp.labels["rule"]] = smp.value
    assert hits["no-games"] >= 1 and hits["default-allow"] >= 2 and "(no match)" in hits


def rule_hits(admin):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for f in text_string_to_metric_families(admin.get("/metrics").body.decode()):
        for smp in f.samples:
            if smp.name == "gatehouse_policy_rule_hits_total":
                out[(smp.labels["rule"], smp.labels["action"])] = smp.value
            elif smp.name == "gatehouse_forward_events_total" and smp.labels["event"] == "blocks":
                out["blocks"] = smp.value
    return out


def test_rule_hits_carry_across_a_reload(gw, admin, origin, ports):
    """Counters a reload keeps: a rule kept (same name and action) keeps its
    count, a renamed one starts at 0, the forward events go on."""
    proxy = "http://127.0.0.1:%d" % gw.fwd
    for url in ("http://www.games.example/", "http://www.games.example/2",
                "http://127.0.0.1:%d/setup.exe" % origin.port):
        assert gh.curl("-x", proxy, "-o", "/dev/null", "-w", "%{http_code}", url)[1] == b"403"
    before = rule_hits(admin)
    assert before[("no-games", "deny")] == 2 and before[("no-exe", "deny")] == 1
    assert before["blocks"] == 3
    conf = console_conf(ports, origin.port).replace('name = "no-exe"', 'name = "no-binaries"')
    gw.reload(conf)
    assert admin.get("/api/v1/config").json["generation"] == 2
    after = rule_hits(admin)
    assert after[("no-games", "deny")] == 2 and after[("no-binaries", "deny")] == 0
    assert ("no-exe", "deny") not in after and after["blocks"] == 3
    assert gh.curl("-x", proxy, "-o", "/dev/null", "-w", "%{http_code}", "http://x.games.example/")[1] == b"403"
    assert rule_hits(admin)[("no-games", "deny")] == 3


def test_metrics_parse_with_prometheus_client(gw, admin):
    from prometheus_client.parser import text_string_to_metric_families
    for _ in range(3):
        assert gh.curl_status("http://127.0.0.1:%d/" % gw.rev) == 200
    gh.curl_status("http://127.0.0.1:%d/missing" % gw.rev)
    r = admin.get("/metrics")
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    samples = {}
    for f in fams.values():
        for s in f.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("gatehouse_requests_total", (("class", "2xx"), ("family", "reverse")))] >= 3
    assert samples[("gatehouse_requests_total", (("class", "4xx"), ("family", "reverse")))] >= 1
    assert samples[("gatehouse_build_info", (("version", "0.1.0"),))] == 1
    assert fams["gatehouse_requests"].type == "counter"
    for name in ("gatehouse_connections_active", "gatehouse_connections_closed", "gatehouse_received_bytes",
                 "gatehouse_sent_bytes", "gatehouse_upstream_errors", "gatehouse_config_reloads",
                 "gatehouse_config_generation"):
        assert name in fams, name
    assert samples[("gatehouse_sent_bytes_total", (("family", "reverse"),))] > 0


def test_stats_events_tail_api(gw, admin):
    for _ in range(5):
        gh.curl_status("http://127.0.0.1:%d/" % gw.rev)
    gh.curl_status("http://127.0.0.1:%d/nope" % gw.rev)
    time.sleep(2.3)
    s = admin.get("/api/v1/stats").json
    assert s["families"]["reverse"]["requests"] >= 6 and s["generation"] == 1
    cols = s["columns"]
    assert cols[2] == "rev_rps" and len(s["samples"]) >= 2
    assert sum(row[2] for row in s["samples"]) > 0          # the sampler saw the traffic
    later = admin.get("/api/v1/stats?since=%d" % s["seq"]).json
    assert len(later["samples"]) <= 1
    t = admin.get("/api/v1/tail?status=404").json
    assert t["lines"] and all(l["status"] == 404 for l in t["lines"])
    assert any("/nope" in l["line"] for l in t["lines"])
    assert admin.get("/api/v1/tail?client=10.").json["lines"] == []
    assert len(admin.get("/api/v1/tail?status=2xx").json["lines"]) >= 5
    ev = admin.get("/api/v1/events?kind=admin").json["events"]
    assert any("login user=admin" in e["text"] for e in ev)
    cfg = admin.get("/api/v1/config").json
    route = cfg["reverse"]["sites"][0]["routes"][1]
    assert route["set_headers"] == [{"name": "X-Api-Key", "value": "(redacted)"}]
    assert b"s3cret-value" not in admin.get("/api/v1/config").body
    assert [r["name"] for r in cfg["forward"]["policy"]][:2] == ["no-games", "no-exe"]
    assert admin.get("/api/v1/nothing").status == 404
    assert admin.request("PUT", "/api/v1/stats").status == 405


def test_tail_filters_by_host_status_and_client(gw, admin, origin):
    rev = "http://127.0.0.1:%d" % gw.rev
    # origin-form reverse requests: the host is in the Host header only
    for _ in range(2):
        gh.curl("-H", "Host: localhost", rev + "/?by-name")
    gh.curl(rev + "/localhost-in-path")                       # Host: 127.0.0.1, 404
    gh.curl("-x", "http://127.0.0.1:%d" % gw.fwd, "http://www.games.example/x")
    time.sleep(0.3)
    t = admin.get("/api/v1/tail?host=localhost").json["lines"]
    assert len(t) == 2 and all(l["host"] == "localhost" and "by-name" in l["line"] for l in t), t
    assert gh.access_line_for(gw, "by-name").endswith(' host="localhost"')
    t = admin.get("/api/v1/tail?host=games.example").json["lines"]
    assert len(t) == 1 and t[0]["status"] == 403 and t[0]["host"] == "www.games.example", t
    t = admin.get("/api/v1/tail?host=127.0.0.1&status=404&client=127.0.0.").json["lines"]
    assert [l["host"] for l in t] == ["127.0.0.1:%d" % gw.rev] and "localhost-in-path" in t[0]["line"], t
    assert admin.get("/api/v1/tail?host=localhost&status=4xx").json["lines"] == []
    assert admin.get("/api/v1/tail?host=localhost&client=10.").json["lines"] == []


def test_certificates(origin, ports, tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "20", "-subj", "/CN=www.example.test",
                    "-addext", "subjectAltName=DNS:www.example.test,DNS:example.test"],
                   check=True, capture_output=True)
    conf = console_conf(ports, origin.port).replace(
        "reverse: {", 'reverse: {\n  certificates = ( { cert = "%s"; key = "%s"; } );' % (crt, key), 1)
    g = gh.Gatehouse(conf, extra_files={"users": users_file(), "www/index.html": "x"})
    g.start([ports[2]])
    try:
        c = Console(ports[2])
        r = c.get("/api/v1/certificates", headers={"Authorization": "Bearer " + TOKEN})
        certs = r.json["certificates"]
        assert len(certs) == 1
        assert certs[0]["subject_cn"] == "www.example.test"
        assert certs[0]["names"] == ["www.example.test", "example.test"]
        assert certs[0]["days_left"] in (19, 20)
    finally:
        g.check_clean()


def test_generated_password_printed_once(origin, ports):
    conf = console_conf(ports, origin.port, users="@DIR@/absent.users")
    g = gh.Gatehouse(conf, extra_files={"www/index.html": "x"})
    g.start([ports[2]])
    try:
        m = re.findall(r'generated password for user "admin": (\S+) ', g.stderr())
        assert len(m) == 1
        pw = m[0]
        path = os.path.join(g.dir, "admin.users")
        assert os.stat(path).st_mode & 0o777 == 0o600
        text = open(path).read()
        assert pw not in text and "admin:$y$" in text
        c = Console(ports[2])
        assert c.login("admin", pw).status == 200
        assert c.get("/api/v1/session").json["role"] == "admin"
    finally:
        g.check_clean()
    # a second start uses the stored hash and prints nothing
    g.start([ports[2]])
    try:
        assert "generated password" not in g.stderr()
        assert Console(ports[2]).login("admin", pw).status == 200
    finally:
        g.check_clean()


def test_metrics_listen_without_login(origin, ports):
    mport = gh.free_port()
    conf = console_conf(ports, origin.port, admin_extra='metrics_listen = "127.0.0.1:%d";' % mport)
    g = gh.Gatehouse(conf, extra_files={"users": users_file(), "www/index.html": "x"})
    g.start([ports[2], mport])
    try:
        gh.curl_status("http://127.0.0.1:%d/" % ports[1])
        m = Console(mport)
        r = m.get("/metrics")
        assert r.status == 200 and b"gatehouse_requests_total" in r.body
        assert m.get("/api/v1/stats").status == 404 and m.get("/").status == 404
        assert Console(ports[2]).get("/metrics").status == 401   # the console's copy needs login
    finally:
        g.check_clean()


def test_https_console(origin, ports, tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "30", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    conf = console_conf(ports, origin.port, admin_extra='tls_cert = "%s"; tls_key = "%s";' % (crt, key))
    g = gh.Gatehouse(conf, extra_files={"users": users_file(), "www/index.html": "x"})
    g.start([ports[2]])
    try:
        c = Console(ports[2], https=True)
        r = c.login("admin", ADMIN_PW)
        assert r.status == 200
        assert "Secure" in r.getheader("Set-Cookie")
        r = c.get("/api/v1/stats")
        assert r.status == 200 and r.getheader("Strict-Transport-Security")
        # plain HTTP on the TLS port gets nothing useful
        rc, out, _ = gh.curl("http://127.0.0.1:%d/api/v1/stats" % ports[2], timeout=3)
        assert b"generation" not in out
    finally:
        g.check_clean()


def test_console_that_cannot_bind_does_not_stop_gateway(origin, ports):
    import socket
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", ports[2]))
    blocker.listen(1)
    try:
        g = gh.Gatehouse(console_conf(ports, origin.port), extra_files={"users": users_file(), "www/index.html": "x"})
        g.start([ports[1]])
        try:
            want = "admin console: cannot listen on 127.0.0.1:%d" % ports[2]
            for _ in range(50):
                if want in g.stderr():
                    break
                time.sleep(0.1)
            assert want in g.stderr()
            assert "gateway runs without it" in g.stderr()
            assert gh.curl_status("http://127.0.0.1:%d/" % ports[1]) == 200
        finally:
            g.check_clean()
    finally:
        blocker.close()


def test_reload_moves_console_and_rereads_users(gw, admin, ports):
    # a new user in the users file works after a reload (SIGHUP), without a restart
    with open(os.path.join(gw.dir, "users"), "a") as f:
        f.write("carol:%s:viewer\n" % crypt_hash("carol-pw"))
    assert Console(gw.adm).login("carol", "carol-pw").status == 401
    gw.reload()
    assert Console(gw.adm).login("carol", "carol-pw").status == 200
    assert admin.get("/api/v1/session").status == 200       # sessions survive a reload
    # admin.listen changes: the console moves to the new address
    new = gh.free_port()
    text = open(gw.conf).read().replace('listen = "127.0.0.1:%d"' % gw.adm, 'listen = "127.0.0.1:%d"' % new)
    with open(gw.conf, "w") as f:
        f.write(text)
    r = admin.post("/api/v1/reload")        # asked on the old address, answered there
    assert r.status == 200
    assert gh.wait_port(new)
    moved = Console(new)
    moved.cookie, moved.csrf = admin.cookie, admin.csrf
    assert moved.get("/api/v1/config").json["admin"]["listen"] == "127.0.0.1:%d" % new
    time.sleep(0.2)
    with pytest.raises(OSError):
        admin.get("/api/v1/session")
    # removing a user ends that user's sessions
    c2 = Console(new)
    assert c2.login("carol", "carol-pw").status == 200
    # (the other lines stay as they are: a changed hash ends that user's sessions too)
    path = os.path.join(gw.dir, "users")
    kept = [l for l in open(path).read().splitlines(True) if not l.startswith("carol:")]
    with open(path, "w") as f:
        f.write("".join(kept))
    gw.reload()
    assert c2.get("/api/v1/session").status == 401
    assert moved.get("/api/v1/session").status == 200


def test_policy_tester_agrees_with_proxy_auth_and_groups(origin, ports):
    fwd_extra = ('auth: { realm = "T"; users_file = "@DIR@/fwd.users"; groups_file = "@DIR@/fwd.groups"; };'
                 .replace("@DIR@", "@DIR@"))
    conf = console_conf(ports, origin.port, fwd_extra=fwd_extra).replace(
        '    { name = "no-games";',
        '    { name = "login"; action = "auth"; urls = [ "/intranet/" ]; },\n'
        '    { name = "staff-only"; action = "allow"; groups = [ "staff" ]; urls = [ "/staff/" ]; },\n'
        '    { name = "no-staff"; action = "deny"; urls = [ "/staff/" ]; },\n'
        '    { name = "no-games";', 1)
    files = {"users": users_file(), "www/index.html": "x",
             "fwd.users": "alice:%s\nbob:%s\n" % (crypt_hash("alice-pw"), crypt_hash("bob-pw")),
             "fwd.groups": "staff: alice\nothers: bob\n"}
    g = gh.Gatehouse(conf, extra_files=files).start([ports[0], ports[2]])
    try:
        adm = Console(ports[2])
        assert adm.login("admin", ADMIN_PW).status == 200
        proxy = "http://127.0.0.1:%d" % ports[0]
        base = "http://127.0.0.1:%d" % origin.port
        cases = [("/intranet/echo?1", None), ("/intranet/echo?2", "alice"), ("/staff/echo?3", "alice"),
                 ("/staff/echo?4", "bob"), ("/staff/echo?5", None)]
        seen = set()
        for path, user in cases:
            args = ["-x", proxy, base + path]
            if user:
                args = ["--proxy-user", "%s:%s-pw" % (user, user)] + args
            gh.curl(*args, timeout=5)
            real = access_decision(g, path)
            body = {"url": base + path, "client": "127.0.0.1"}
            if user:
                body["user"] = user
            r = adm.post("/api/v1/policy/test", body)
            mine = (r.json["verdict"], r.json["rule"])
            assert mine == real, (path, user, mine, real, r.json)
            seen.add(real)
        assert ("auth", "login") in seen and ("allow", "staff-only") in seen and ("deny", "no-staff") in seen
        r = adm.post("/api/v1/policy/test", {"url": base + "/staff/x", "user": "alice"})
        assert r.json["input"]["groups"] == ["staff"]
        assert r.json["input"]["groups_from"] == "forward.auth.groups_file"
    finally:
        g.check_clean()
