"""The console API behind the operator's day-one papercuts (issue 14): block
events paged and filtered on the server, the live tail parsed into fields
(combined and json access logs), a route's cache and rate-limit settings and
a list's entry count in the config, and changing one's own password (stored
hashed in the users file, other sessions ended, audited).  The pages that show
them are driven in Chromium by test_a_browser.py."""
import os
import re
import signal
import subprocess
import time

import gh
import test_a_console as tc

NEW_PW = "another long pass phrase"


def start(origin, ports, access_format="combined", extra_conf=None, files=None):
    conf = tc.console_conf(ports, origin.port)
    if extra_conf:
        conf = extra_conf(conf)
    g = gh.Gatehouse(conf, extra_files=dict({"users": tc.users_file(), "www/index.html": "<h1>hello</h1>\n"},
                                            **(files or {})))
    if access_format != "combined":
        text = open(g.conf).read().replace('access = "%s";' % g.access,
                                           'access = "%s"; access_format = "%s";' % (g.access, access_format), 1)
        open(g.conf, "w").write(text)
    g.start([ports[0], ports[1], ports[2]])
    return g


def curl(*args):
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "10"] + list(args), check=False)


def wait_tail(c, pred, timeout=5.0):
    end = time.time() + timeout
    while True:
        lines = c.get("/api/v1/tail").json["lines"]
        if pred(lines) or time.time() > end:
            return lines
        time.sleep(0.1)


def check_tail(g, ports):
    c = tc.Console(ports[2])
    assert c.login("admin", tc.ADMIN_PW).status == 200
    curl("-x", "http://127.0.0.1:%d" % ports[0], "http://www.games.example/x?q=1")
    curl("-A", 'odd "agent" \\ with spaces', "http://127.0.0.1:%d/missing-page" % ports[1])
    curl("http://127.0.0.1:%d/%s" % (ports[1], "long" * 200))
    lines = wait_tail(c, lambda ls: len(ls) >= 3)
    assert len(lines) >= 3, lines
    by = {}
    for l in lines:
        by.setdefault(l.get("target", "")[:30], l)
    den = [l for l in lines if l.get("verdict") == "deny"]
    assert den, lines
    d = den[0]
    assert d["client"] == "127.0.0.1" and d["status"] == 403 and d["rule"] == "no-games"
    assert d["method"] == "GET" and d["target"].startswith("http://www.games.example/x")
    assert d["family"] == "forward" and d["host"] == "www.games.example"
    assert abs(d["time"] - time.time()) < 60
    assert re.fullmatch(r"[0-9a-f]{16}", d["request_id"]), d
    assert "reason" in d
    nf = [l for l in lines if l.get("target") == "/missing-page"][0]
    assert nf["status"] == 404 and nf["family"] == "reverse" and nf["user_agent"] == 'odd "agent" \\ with spaces'
    assert nf["user"] == "" and nf["line"].startswith(("127.0.0.1", "{"))
    # a line cut at the tail's 512 bytes still gives what precedes the cut
    long = [l for l in lines if "longlong" in l["line"]][0]
    assert long["client"] == "127.0.0.1" and long["method"] == "GET"
    # the filters use the parsed fields
    f = c.get("/api/v1/tail?verdict=deny&family=forward&status=4xx&client=127.").json["lines"]
    assert f and all(l["verdict"] == "deny" and l["family"] == "forward" for l in f)
    assert c.get("/api/v1/tail?host=games.exa").json["lines"]
    assert not c.get("/api/v1/tail?verdict=nothing").json["lines"]
    return lines


def test_tail_parsed_combined(origin, ports):
    g = start(origin, ports)
    try:
        lines = check_tail(g, ports)
        assert all(l["line"].startswith("127.0.0.1 - ") for l in lines)
    finally:
        g.check_clean()


def test_tail_parsed_json(origin, ports):
    g = start(origin, ports, access_format="json")
    try:
        lines = check_tail(g, ports)
        assert all(l["line"].startswith("{") for l in lines)
    finally:
        g.check_clean()


def test_blocks_paged_and_filtered(origin, ports):
    g = start(origin, ports)
    try:
        c = tc.Console(ports[2])
        assert c.login("admin", tc.ADMIN_PW).status == 200
        fwd = "http://127.0.0.1:%d" % ports[0]
        curl("-x", fwd, *["http://www.games.example/n/%d" % i for i in range(60)])
        curl("-x", fwd, "http://dl.example.org/tool.exe")
        end = time.time() + 5
        while c.get("/api/v1/forward/blocks").json["total"] < 61 and time.time() < end:
            time.sleep(0.1)
        r = c.get("/api/v1/forward/blocks").json
        assert r["total"] == 61 and r["offset"] == 0 and r["limit"] == 25 and len(r["blocks"]) == 25
        # newest first, parsed
        b = r["blocks"][0]
        assert b["url"] == "http://dl.example.org/tool.exe" and b["rule"] == "no-exe" and b["host"] == "dl.example.org"
        assert b["client"] == "127.0.0.1" and b["user"] == "" and re.fullmatch(r"[0-9a-f]{16}", b["request_id"])
        assert [x["url"] for x in r["blocks"][1:3]] == ["http://www.games.example/n/59", "http://www.games.example/n/58"]
        # pages
        p3 = c.get("/api/v1/forward/blocks?offset=50&limit=25").json
        assert len(p3["blocks"]) == 11 and p3["blocks"][-1]["url"] == "http://www.games.example/n/0"
        assert len(c.get("/api/v1/forward/blocks?limit=100000").json["blocks"]) == 61   # capped at 200
        assert c.get("/api/v1/forward/blocks?offset=1000").json["blocks"] == []
        # filter: host, rule, client; case-insensitive
        assert c.get("/api/v1/forward/blocks?q=DL.EXAMPLE").json["total"] == 1
        assert c.get("/api/v1/forward/blocks?q=no-games&limit=5").json["total"] == 60
        assert c.get("/api/v1/forward/blocks?q=127.0.0.1").json["total"] == 61
        assert c.get("/api/v1/forward/blocks?q=nobody-matches").json == dict(
            c.get("/api/v1/forward/blocks?q=nobody-matches").json, total=0, blocks=[])
    finally:
        g.check_clean()


def test_config_shows_route_cache_rate_limit_and_list_counts(origin, ports):
    def conf(t):
        t = t.replace("  policy = (", '  lists = ( { name = "ads"; file = "@DIR@/ads.domains"; } );\n  policy = (', 1)
        t = t.replace('{ name = "default-allow";', '{ name = "no-ads"; action = "deny"; lists = [ "ads" ]; },\n'
                      '    { name = "default-allow";', 1)
        t = t.replace("reverse: {", 'reverse: {\n  cache: { memory = "16M"; };', 1)
        return t.replace('routes = ( { path = "/"; static = "@DIR@/www"; },',
                         'rate_limit = { requests_per_second = 50.0; burst = 100; };\n'
                         'routes = ( { path = "/"; static = "@DIR@/www"; },\n'
                         '{ path = "/c/"; upstream = "app"; cache = { ttl = 30.0; ignore_set_cookie = true; }; },', 1)
    g = start(origin, ports, extra_conf=conf,
              files={"ads.domains": "# ads\nads.example\nADS.example.\ntracker.example\nbad domain here\n"})
    try:
        c = tc.Console(ports[2])
        assert c.login("admin", tc.ADMIN_PW).status == 200
        cf = c.get("/api/v1/config").json
        site = cf["reverse"]["sites"][0]
        assert site["rate_limit"] == {"requests_per_second": 50.0, "burst": 100.0}
        routes = {r["path"]: r for r in site["routes"]}
        assert routes["/c/"]["cache"] == {"ttl": 30.0, "stale_if_error": -1.0, "ignore_set_cookie": True,
                                          "ignore_cookie": False}
        assert routes["/app/"]["cache"] is None and routes["/"]["cache"] is None
        lst = cf["forward"]["lists"][0]
        assert lst["name"] == "ads" and lst["entries"] == 2 and lst["invalid_lines"] == 1
        assert set(cf["forward"]["counters"]) >= {"blocks", "auth_ok", "dlp_hits"}
    finally:
        g.check_clean()


def test_change_own_password(origin, ports):
    g = start(origin, ports)
    users = os.path.join(g.dir, "users")
    before = open(users).read().splitlines()
    try:
        c, other, viewer = tc.Console(ports[2]), tc.Console(ports[2]), tc.Console(ports[2])
        assert c.login("admin", tc.ADMIN_PW).status == 200
        assert other.login("admin", tc.ADMIN_PW).status == 200
        assert viewer.login("viewer", tc.VIEWER_PW).status == 200
        url = "/api/v1/account/password"
        ok_body = {"current": tc.ADMIN_PW, "new": NEW_PW}
        assert c.get(url).status == 405
        # CSRF like every POST; a bearer token (no session, no password) cannot change it
        assert c.post(url, ok_body, csrf=False).status == 403
        assert c.request("POST", url, ok_body, cookie=False,
                         headers={"Authorization": "Bearer " + tc.TOKEN}).status == 403
        assert c.post(url, {"current": tc.ADMIN_PW}).status == 400
        assert c.post(url, {"current": tc.ADMIN_PW, "new": "short-11chr"}).status == 400
        assert c.post(url, {"current": tc.ADMIN_PW, "new": tc.ADMIN_PW}).status == 400
        r = c.post(url, {"current": "wrong password", "new": NEW_PW})
        assert r.status == 403 and "wrong" in r.json["error"]
        assert open(users).read().splitlines() == before
        r = c.post(url, ok_body)
        assert r.status == 200 and r.json["ended_sessions"] == 1, r.json
        # this session lives, the user's other session ended, another user's did not
        assert c.get("/api/v1/session").status == 200
        assert other.get("/api/v1/session").status == 401
        assert viewer.get("/api/v1/session").status == 200
        after = open(users).read().splitlines()
        assert after[0] == before[0] and after[2] == before[2]          # comment and viewer kept
        f = after[1].split(":")
        assert f[0] == "admin" and f[1].startswith("$y$") and f[2:] == before[1].split(":")[2:]
        assert NEW_PW not in open(users).read() and not os.path.exists(users + ".new")
        assert tc.Console(ports[2]).login("admin", tc.ADMIN_PW).status == 401
        assert tc.Console(ports[2]).login("admin", NEW_PW).status == 200
        audit = c.get("/api/v1/audit").json["audit"]
        pc = [a for a in audit if a["action"] == "password change"]
        assert [a["outcome"] for a in pc][:2] == ["ok", "failed"] and "ended 1 other session" in pc[0]["detail"]
        # the users file is what a reload reads: the new password survives it
        g.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert tc.Console(ports[2]).login("admin", NEW_PW).status == 200
        # a viewer may change its own password too
        assert viewer.post(url, {"current": tc.VIEWER_PW, "new": NEW_PW + "!"}).status == 200
        assert tc.Console(ports[2]).login("viewer", NEW_PW + "!").status == 200
    finally:
        g.check_clean()


def test_wrong_current_password_is_rate_limited(origin, ports):
    g = start(origin, ports)
    try:
        c = tc.Console(ports[2])
        assert c.login("admin", tc.ADMIN_PW).status == 200
        st = [c.post("/api/v1/account/password", {"current": "guess %d" % i, "new": NEW_PW}).status
              for i in range(6)]
        assert st[:5] == [403] * 5 and st[5] == 429, st
        # the limit is the sign-in's: the right password is not even checked now
        assert c.post("/api/v1/account/password", {"current": tc.ADMIN_PW, "new": NEW_PW}).status == 429
        assert tc.Console(ports[2]).login("admin", tc.ADMIN_PW).status == 429
    finally:
        g.check_clean()


def test_password_changed_in_the_file_ends_sessions_at_reload(origin, ports):
    g = start(origin, ports)
    users = os.path.join(g.dir, "users")
    try:
        a, v = tc.Console(ports[2]), tc.Console(ports[2])
        assert a.login("admin", tc.ADMIN_PW).status == 200
        assert v.login("viewer", tc.VIEWER_PW).status == 200
        text = open(users).read().splitlines()
        text[2] = "viewer:%s:viewer" % tc.crypt_hash(NEW_PW, "-5")
        open(users, "w").write("\n".join(text) + "\n")
        g.proc.send_signal(signal.SIGHUP)
        end = time.time() + 5
        while v.get("/api/v1/session").status != 401 and time.time() < end:
            time.sleep(0.1)
        assert v.get("/api/v1/session").status == 401
        assert a.get("/api/v1/session").status == 200       # unchanged user: signed in still
        assert tc.Console(ports[2]).login("viewer", NEW_PW).status == 200
    finally:
        g.check_clean()


def test_tail_reason_with_spaces_reads_whole(ports):
    # the upstream is down: reason "cannot connect: ..." has spaces (written bare by the
    # combined format before it was quoted, quoted after; both read whole), then host="..."
    for fmt in ("combined", "json"):
        dead = gh.free_port()
        conf = tc.console_conf(ports, dead)
        g = gh.Gatehouse(conf, extra_files={"users": tc.users_file(), "www/index.html": "x"})
        if fmt == "json":
            text = open(g.conf).read().replace('access = "%s";' % g.access,
                                               'access = "%s"; access_format = "json";' % g.access, 1)
            open(g.conf, "w").write(text)
        g.start([ports[1], ports[2]])
        try:
            c = tc.Console(ports[2])
            assert c.login("admin", tc.ADMIN_PW).status == 200
            curl("-H", "Host: localhost", "http://127.0.0.1:%d/app/x" % ports[1])
            lines = wait_tail(c, lambda ls: any(l["status"] == 502 for l in ls))
            l = [x for x in lines if x["status"] == 502][0]
            assert l["reason"].startswith("cannot connect: ") and " " in l["reason"][16:], (fmt, l)
            assert l["host"] == "localhost" and l["rule"] == "/app/" and l["verdict"] == "route", l
        finally:
            g.check_clean()


def test_password_change_that_cannot_be_stored_changes_nothing(origin, ports):
    g = start(origin, ports)
    users = os.path.join(g.dir, "users")
    before = open(users).read()
    try:
        c = tc.Console(ports[2])
        assert c.login("admin", tc.ADMIN_PW).status == 200
        os.mkdir(users + ".new")          # the file beside it cannot be made (EISDIR, even as root)
        r = c.post("/api/v1/account/password", {"current": tc.ADMIN_PW, "new": NEW_PW})
        assert r.status == 500 and "cannot write" in r.json["error"], r.json
        assert open(users).read() == before and os.path.isdir(users + ".new")
        assert tc.Console(ports[2]).login("admin", tc.ADMIN_PW).status == 200
        assert tc.Console(ports[2]).login("admin", NEW_PW).status == 401
        assert c.get("/api/v1/audit").json["audit"][2]["outcome"] == "failed"
        os.rmdir(users + ".new")
        # the user's line is gone from the file (not yet reloaded): refused, nothing written
        open(users, "w").write("\n".join(l for l in before.splitlines() if not l.startswith("admin:")) + "\n")
        r = c.post("/api/v1/account/password", {"current": tc.ADMIN_PW, "new": NEW_PW})
        assert r.status == 500 and "not in" in r.json["error"], r.json
        assert "admin:" not in open(users).read() and not os.path.exists(users + ".new")
    finally:
        g.check_clean()
