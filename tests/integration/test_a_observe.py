"""Console: what it shows of live traffic, moved by real traffic.  Top allowed
and blocked domains, signed-in proxy users and the DLP hit list
(GET /api/v1/forward), active connections per family (stats, samples,
/metrics), requests per reverse site and upstream in /metrics (parsed by
prometheus_client), and the sign-in form that works without JavaScript
(curl with a cookie jar, following the 303)."""
import json
import os
import re
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import gh
import test_a_console as tc

CARD = "4111 1111 1111 1111"


def observe_conf(ports, origin_port, dlp_action="deny"):
    fwd_extra = """
  auth: { realm = "T"; users_file = "@DIR@/fwd.users"; groups_file = "@DIR@/fwd.groups"; };
  dlp: { action = "%s"; detectors = [ "credit_card" ]; };
""" % dlp_action
    conf = tc.console_conf(ports, origin_port, fwd_extra=fwd_extra)
    conf = conf.replace('allow_clients = [ "127.0.0.1/32" ];', 'allow_clients = [ "127.0.0.0/8" ];', 1)
    conf = conf.replace('    { name = "no-games";',
                        '    { name = "login"; action = "auth"; urls = [ "/intranet/" ]; },\n'
                        '    { name = "no-games";', 1)
    return conf.replace("forward: {", '@GLOBAL@\n  dns: { hosts_file = "@DIR@/hosts"; };\n};\nforward: {', 1)


def start(ports, origin, workers=1, **kw):
    files = {"users": tc.users_file(), "www/index.html": "<h1>hello</h1>\n",
             "fwd.users": "alice:%s\nbob:%s\n" % (tc.crypt_hash("alice-pw"), tc.crypt_hash("bob-pw")),
             "fwd.groups": "staff: alice\n",
             "hosts": gh.hosts_file(["allowed.test", "other.test", "dlp.test"])}
    g = gh.Gatehouse(observe_conf(ports, origin.port, **kw), workers=workers, extra_files=files)
    g.start([ports[0], ports[1], ports[2]])
    g.fwd, g.rev, g.adm = ports[0], ports[1], ports[2]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    return g


@pytest.fixture
def gw(origin, ports):
    g = start(ports, origin)
    yield g
    g.check_clean()


@pytest.fixture
def admin(gw):
    c = tc.Console(gw.adm)
    assert c.login("admin", tc.ADMIN_PW).status == 200
    return c


def via_proxy(gw, url, *extra):
    return gh.curl_status("-x", gw.proxy, *extra, url, timeout=10)


def forward_view(admin, want, timeout=3.0):
    """GET /api/v1/forward until want(json) holds (on_done runs as the
    request ends, a hair after curl has its answer)."""
    end = time.time() + timeout
    while True:
        r = admin.get("/api/v1/forward")
        assert r.status == 200, r.body
        if want(r.json) or time.time() > end:
            return r


def test_forward_view_needs_login_any_role_read_only(gw):
    anon = tc.Console(gw.adm)
    assert anon.get("/api/v1/forward").status == 401
    v = tc.Console(gw.adm)
    assert v.login("viewer", tc.VIEWER_PW).status == 200
    r = v.get("/api/v1/forward")
    assert r.status == 200
    assert set(r.json) == {"top_allowed", "top_blocked", "users", "dlp"}
    assert r.json["top_allowed"] == [] and r.json["users"] == [] and r.json["dlp"] == {"total": 0, "hits": []}
    # read-only: POST is not a method of it (and still needs the CSRF token first)
    assert v.post("/api/v1/forward", csrf=False).status == 403
    assert v.post("/api/v1/forward").status == 405
    assert anon.get("/api/v1/forward", headers={"Authorization": "Bearer " + tc.TOKEN}).status == 200


def test_top_domains_counted_from_real_traffic(gw, admin, origin):
    o = origin.port
    for i in range(5):
        assert via_proxy(gw, "http://allowed.test:%d/echo?a%d" % (o, i)) == 200
    for i in range(2):
        assert via_proxy(gw, "http://Other.TEST:%d/echo?b%d" % (o, i)) == 200
    for i in range(3):
        assert via_proxy(gw, "http://www.games.example/p%d" % i) == 403
    assert via_proxy(gw, "http://allowed.test:%d/setup.exe" % o) == 403          # rule no-exe
    assert via_proxy(gw, "http://169.254.1.1/") == 403                              # deny_destinations
    r = forward_view(admin, lambda j: sum(t["count"] for t in j["top_blocked"]) >= 5)
    top_a = {t["domain"]: (t["count"], t["error"]) for t in r.json["top_allowed"]}
    top_b = {t["domain"]: (t["count"], t["error"]) for t in r.json["top_blocked"]}
    # exact while fewer domains than the table holds; host names are lower-cased
    assert top_a == {"allowed.test": (5, 0), "other.test": (2, 0)}, top_a
    assert top_b == {"www.games.example": (3, 0), "allowed.test": (1, 0), "169.254.1.1": (1, 0)}, top_b
    assert [t["domain"] for t in r.json["top_allowed"]] == ["allowed.test", "other.test"]
    assert r.json["top_blocked"][0]["domain"] == "www.games.example"
    # CONNECT tunnels count for their host once they end
    assert via_proxy(gw, "http://127.0.0.1:%d/echo?t" % o, "-p") == 200
    r = forward_view(admin, lambda j: any(t["domain"] == "127.0.0.1" for t in j["top_allowed"]))
    assert {t["domain"]: t["count"] for t in r.json["top_allowed"]}["127.0.0.1"] == 1


def test_more_domains_than_the_table_keeps_the_heavy_hitters(origin, ports):
    # two workers, 150 distinct blocked names (more than the 64 slots of each
    # worker's table) and two heavy ones: the heavy ones stay on top, and
    # every reported count bounds the truth: count - error <= true <= count
    g = start(ports, origin, workers=2)
    try:
        adm = tc.Console(ports[2])
        assert adm.login("admin", tc.ADMIN_PW).status == 200
        urls = ["http://n%d.games.example/" % i for i in range(150)]
        urls += ["http://heavy.games.example/%d" % i for i in range(60)]
        urls += ["http://second.games.example/%d" % i for i in range(30)]
        # many connections so both workers see traffic
        for k in range(0, len(urls), 10):
            gh.curl("-s", "-o", "/dev/null", "-x", "http://127.0.0.1:%d" % ports[0], *urls[k:k + 10])
        r = forward_view(adm, lambda j: j["top_blocked"] and j["top_blocked"][0]["count"] >= 60, timeout=5)
        top = r.json["top_blocked"]
        assert len(top) == 20
        assert top[0]["domain"] == "heavy.games.example" and top[1]["domain"] == "second.games.example"
        truth = {"heavy.games.example": 60, "second.games.example": 30}
        for t in top:
            real = truth.get(t["domain"], 1)
            assert t["count"] - t["error"] <= real <= t["count"], t
    finally:
        g.check_clean()


def test_signed_in_users(gw, admin, origin):
    o = origin.port
    for i in range(3):
        assert via_proxy(gw, "http://allowed.test:%d/echo?u%d" % (o, i), "--proxy-user", "alice:alice-pw") == 200
    assert via_proxy(gw, "http://allowed.test:%d/echo?u9" % o, "--proxy-user", "alice:alice-pw",
                     "--interface", "127.0.0.2") == 200
    assert via_proxy(gw, "http://www.games.example/", "--proxy-user", "bob:bob-pw") == 403
    # a wrong password is nobody; no credentials is nobody
    assert via_proxy(gw, "http://allowed.test:%d/intranet/x" % o, "--proxy-user", "bob:nope") == 407
    assert via_proxy(gw, "http://allowed.test:%d/echo?anon" % o) == 200
    t0 = time.time()
    r = forward_view(admin, lambda j: sum(u["requests"] for u in j["users"]) == 5)
    users = {u["user"]: u for u in r.json["users"]}
    assert set(users) == {"alice", "bob"}, r.json["users"]
    a = users["alice"]
    assert a["requests"] == 4 and sorted(a["clients"]) == ["127.0.0.1", "127.0.0.2"]
    assert users["bob"]["requests"] == 1 and users["bob"]["clients"] == ["127.0.0.1"]
    assert t0 - 30 < a["last_seen"] <= time.time() and a["first_seen"] <= a["last_seen"]
    # most recently seen first
    assert r.json["users"][0]["user"] == "bob"
    # the block event names the user too
    ev = admin.get("/api/v1/events?kind=block").json["events"]
    assert any(" user=bob verdict=deny rule=\"no-games\"" in e["text"] for e in ev), ev


def test_dlp_hit_list_redacted(gw, admin, origin, ports):
    o = origin.port
    rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", gw.proxy,
                           "--proxy-user", "alice:alice-pw", "--data-binary", "order for %s thanks" % CARD,
                           "http://dlp.test:%d/upload" % o)
    assert out == b"403"
    assert via_proxy(gw, "http://dlp.test:%d/echo?card=%s" % (o, CARD.replace(" ", ""))) == 403
    time.sleep(0.2)
    assert origin.requests == []          # deny: the origin received nothing
    r = forward_view(admin, lambda j: j["dlp"]["total"] == 2)
    d = r.json["dlp"]
    assert d["total"] == 2 and len(d["hits"]) == 2
    q, body = d["hits"]                   # newest first
    assert body["user"] == "alice" and body["client"] == "127.0.0.1" and body["where"] == "request body"
    assert body["detector"] == "credit_card" and body["action"] == "deny"
    assert body["host"] == "dlp.test" and body["url"] == "http://dlp.test:%d/upload" % o
    assert body["match"].endswith("1111") and "4111" not in body["match"]
    assert q["user"] is None and q["where"] == "query string" and q["match"].endswith("1111")
    # never the raw number, anywhere in the answer: a query string is left out of the URL
    assert q["url"] == "http://dlp.test:%d/echo?.." % o
    assert b"4111" not in r.body
    assert b"4111" not in admin.get("/api/v1/events").body and "4111" not in gw.stderr()
    # /metrics counts them (and the scanned body), never with the match
    m = admin.get("/metrics").body.decode()
    assert metric_samples(m)[("gatehouse_forward_events_total", (("event", "dlp_hits"),))] == 2
    assert metric_samples(m)[("gatehouse_forward_events_total", (("event", "dlp_scanned"),))] >= 1
    # the scan memory the uploads reserved is given back when they end
    assert metric_samples(m)[("gatehouse_forward_dlp_scan_memory_bytes", ())] == 0
    assert metric_samples(m)[("gatehouse_forward_events_total", (("event", "dlp_busy"),))] == 0
    assert "4111" not in m
    # nor in the access log and the console's tail, which log that request without its query
    line = gh.access_line_for(gw, "/echo")
    assert "GET http://dlp.test:%d/echo HTTP/1.1" % o in line and "4111" not in line, line
    assert b"4111" not in admin.get("/api/v1/tail").body
    # the request id is the access log's
    line = gh.access_line_for(gw, "/upload")
    assert "id=%s" % body["request_id"] in line, (line, body)
    # blocked DLP requests count among the blocked domains
    top_b = {t["domain"]: t["count"] for t in r.json["top_blocked"]}
    assert top_b.get("dlp.test") == 2
    # action "log" after a reload: forwarded, listed as "log"; the list survives reloads
    gw.reload(observe_conf(ports, o, dlp_action="log"))
    rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", gw.proxy,
                           "--data-binary", "pay %s" % CARD, "http://dlp.test:%d/upload" % o)
    assert out == b"200" and len(origin.requests) == 1
    r = forward_view(admin, lambda j: j["dlp"]["total"] == 3)
    d = r.json["dlp"]
    assert d["total"] == 3 and d["hits"][0]["action"] == "log" and d["hits"][1]["action"] == "deny"
    assert b"4111" not in r.body


def metric_samples(text):
    out = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_active_connections_per_family(gw, admin):
    held = []
    try:
        held.append(socket.create_connection(("127.0.0.1", gw.fwd)))
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", gw.rev)))
        end = time.time() + 3
        while time.time() < end:
            s = admin.get("/api/v1/stats").json
            fam = s["families"]
            if fam["forward"]["active_connections"] == 1 and fam["reverse"]["active_connections"] == 2:
                break
            time.sleep(0.1)
        assert fam["forward"]["active_connections"] == 1 and fam["reverse"]["active_connections"] == 2, fam
        assert s["active_connections"] == 3
        assert s["columns"][10:] == ["fwd_active", "rev_active"]
        time.sleep(1.3)                  # the sampler takes one per second
        row = admin.get("/api/v1/stats").json["samples"][-1]
        assert row[9] == 3 and row[10] == 1 and row[11] == 2, row
        m = metric_samples(admin.get("/metrics").body.decode())
        assert m[("gatehouse_connections_active", (("family", "forward"),))] == 1
        assert m[("gatehouse_connections_active", (("family", "reverse"),))] == 2
    finally:
        for s in held:
            s.close()
    end = time.time() + 3
    while time.time() < end:
        fam = admin.get("/api/v1/stats").json["families"]
        if fam["forward"]["active_connections"] == 0 and fam["reverse"]["active_connections"] == 0:
            break
        time.sleep(0.1)
    assert fam["forward"]["active_connections"] == 0 and fam["reverse"]["active_connections"] == 0


def test_metrics_requests_by_site_and_upstream(gw, admin, origin):
    base = "http://127.0.0.1:%d" % gw.rev
    for i in range(4):
        assert gh.curl_status(base + "/app/echo?%d" % i, "-H", "Host: localhost") == 200
    assert gh.curl_status(base + "/app/status/503", "-H", "Host: localhost") == 503
    for i in range(3):
        assert gh.curl_status(base + "/") == 200                       # static, site "localhost"
    assert gh.curl_status(base + "/nothing-here") == 404
    assert gh.curl_status(base + "/", "-H", "Host: unknown.example") == 404   # no site
    time.sleep(0.2)
    m = metric_samples(admin.get("/metrics").body.decode())

    def site(s, up, cls):
        return m[("gatehouse_site_requests_total", (("class", cls), ("site", s), ("upstream", up)))]
    assert site("localhost", "app", "2xx") == 4
    assert site("localhost", "app", "5xx") == 1
    assert site("localhost", "(none)", "2xx") == 3
    assert site("localhost", "(none)", "4xx") == 1
    assert site("(none)", "(none)", "4xx") == 1
    # bounded by the config: one site, one upstream; nothing for made-up hosts
    labels = {(k[1][1][1], k[1][2][1]) for k in m if k[0] == "gatehouse_site_requests_total"}
    assert labels == {("localhost", "app"), ("localhost", "(none)"), ("(none)", "(none)")}
    # the family totals agree
    assert m[("gatehouse_requests_total", (("class", "2xx"), ("family", "reverse")))] == 7
    # the console's API says the same (GET sites, any role)
    v = tc.Console(gw.adm)
    assert v.login("viewer", tc.VIEWER_PW).status == 200
    sites = {(x["site"], x["upstream"]): x["requests"] for x in v.get("/api/v1/sites").json["sites"]}
    assert sites[("localhost", "app")] == {"1xx": 0, "2xx": 4, "3xx": 0, "4xx": 0, "5xx": 1}
    assert sites[("(none)", "(none)")]["4xx"] == 1 and len(sites) == 3
    assert tc.Console(gw.adm).get("/api/v1/sites").status == 401


# ---- the sign-in form without JavaScript ----

def curl_jar(jar, *args):
    return gh.curl("-c", jar, "-b", jar, *args)


def form_token(html):
    m = re.search(rb'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, html[:400]
    return m.group(1).decode()


def test_login_form_without_javascript(gw, tmp_path):
    jar = str(tmp_path / "jar")
    url = "http://127.0.0.1:%d" % gw.adm
    rc, page, _ = curl_jar(jar, "-D", str(tmp_path / "h"), url + "/login")
    hdrs = open(tmp_path / "h").read()
    assert rc == 0 and b'<form id="login-form" method="post" action="/login"' in page
    assert "Content-Security-Policy: default-src 'none'" in hdrs and "X-Frame-Options: DENY" in hdrs
    assert re.search(r"Set-Cookie: gh_login=[0-9a-f]{64}; Path=/login; HttpOnly; SameSite=Strict", hdrs)
    tok = form_token(page)
    # the form posts, the answer is a 303 to / with the session cookie
    rc, out, _ = curl_jar(jar, "-D", str(tmp_path / "h2"), "-o", "/dev/null", "--data-urlencode", "csrf=" + tok,
                          "--data-urlencode", "user=admin", "--data-urlencode", "password=" + tc.ADMIN_PW,
                          url + "/login")
    h2 = open(tmp_path / "h2").read()
    assert h2.startswith("HTTP/1.1 303") and re.search(r"(?i)^Location: /\r?$", h2, re.M), h2
    assert re.search(r"Set-Cookie: gh_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict", h2)
    # the jar is signed in: the dashboard and the API answer
    rc, out, _ = curl_jar(jar, "-w", "\n%{http_code}", url + "/")
    assert out.endswith(b"\n200") and b'id="tab-overview"' in out
    rc, out, _ = curl_jar(jar, url + "/api/v1/session")
    assert json.loads(out)["user"] == "admin"
    audit = tc.Console(gw.adm).get("/api/v1/audit", headers={"Authorization": "Bearer " + tc.TOKEN}).json["audit"]
    assert any(a["action"] == "login" and a["outcome"] == "ok" and a["detail"] == "form" for a in audit)


def test_login_form_follow_redirect_and_failures(gw, tmp_path):
    jar = str(tmp_path / "jar")
    url = "http://127.0.0.1:%d" % gw.adm
    # a browser without JavaScript: post the form, follow the redirect (-L keeps POST->GET on 303)
    tok = form_token(curl_jar(jar, url + "/login")[1])
    rc, out, _ = curl_jar(jar, "-L", "-w", "\n%{http_code} %{url_effective} %{num_redirects}",
                          "--data-urlencode", "csrf=" + tok, "--data-urlencode", "user=viewer",
                          "--data-urlencode", "password=" + tc.VIEWER_PW, url + "/login")
    assert out.endswith(("\n200 %s/ 1" % url).encode()), out[-200:]
    assert json.loads(curl_jar(jar, url + "/api/v1/session")[1])["role"] == "viewer"
    # a wrong password: 303 back to the form, which says so
    jar2 = str(tmp_path / "jar2")
    tok = form_token(curl_jar(jar2, url + "/login")[1])
    rc, out, _ = curl_jar(jar2, "-L", "-w", "\n%{http_code} %{url_effective}", "--data-urlencode", "csrf=" + tok,
                          "--data-urlencode", "user=admin", "--data-urlencode", "password=wrong", url + "/login")
    assert out.endswith(("\n200 %s/login?e=wrong" % url).encode()) and b"Wrong user name or password." in out
    assert curl_jar(jar2, "-o", "/dev/null", "-w", "%{http_code}", url + "/api/v1/session")[1] == b"401"
    # no token, or a token that is not the cookie's: refused before any password check
    rc, out, _ = gh.curl("-w", "\n%{http_code}", "--data-urlencode", "user=admin",
                         "--data-urlencode", "password=" + tc.ADMIN_PW, url + "/login")
    assert out.endswith(b"\n403") and b"expired" in out
    rc, out, _ = curl_jar(jar2, "-w", "\n%{http_code}", "--data-urlencode", "csrf=" + "0" * 64,
                          "--data-urlencode", "user=admin", "--data-urlencode", "password=" + tc.ADMIN_PW,
                          url + "/login")
    assert out.endswith(b"\n403")
    assert "login user=- client=127.0.0.1 outcome=denied" in gw.stderr()
    # the same rate limit as the JSON login: 5 failures, then 429 with Retry-After
    for _ in range(4):
        tok = form_token(curl_jar(jar2, url + "/login")[1])
        curl_jar(jar2, "--data-urlencode", "csrf=" + tok, "--data-urlencode", "user=admin",
                 "--data-urlencode", "password=bad", url + "/login")
    tok = form_token(curl_jar(jar2, url + "/login")[1])
    rc, out, _ = curl_jar(jar2, "-D", str(tmp_path / "h"), "--data-urlencode", "csrf=" + tok,
                          "--data-urlencode", "user=admin", "--data-urlencode", "password=" + tc.ADMIN_PW,
                          url + "/login")
    h = open(tmp_path / "h").read()
    assert h.startswith("HTTP/1.1 429") and re.search(r"Retry-After: \d+", h) and b"Too many" in out
    # the JavaScript login (JSON) is unchanged, and JSON is not taken at /login
    assert tc.Console(gw.adm).login("admin", tc.ADMIN_PW).status == 429       # same client, throttled
    r = tc.Console(gw.adm).request("POST", "/login", {"user": "admin", "password": tc.ADMIN_PW})
    assert r.status == 403
