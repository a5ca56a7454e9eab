"""gatehouse -t checks what the start checks (except binding): the account
the start switches to, every file the configuration names (users, groups,
lists, certificates), with FILE:LINE errors and exit 1; what -t accepts
starts.  Also htpasswd's $apr1$ and {SHA} users lines (migrating from
Squid/Apache) and the per-line report of skipped users-file lines."""
import base64
import hashlib
import os
import re
import subprocess

import pytest

import gh


def check(g):
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr + p.stdout


def line_of(path, needle):
    with open(path) as f:
        for i, l in enumerate(f, 1):
            if needle in l:
                return i
    raise AssertionError("%r not in %s" % (needle, path))


def fwd_conf(port, glob_extra="", fwd_extra=""):
    return """global: { workers = 1; user = ""; state_dir = "@DIR@"; %s
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  %s
};
""" % (glob_extra, port, fwd_extra)


# ---- the account ----

def test_check_refuses_a_user_that_does_not_exist(ports):
    assert os.geteuid() == 0, "the start only switches user when run as root"
    g = gh.Gatehouse(fwd_conf(ports[0]).replace('user = "";', 'user = "gh-no-such-user";'),
                     extra_files={"hosts": gh.hosts_file(["a.test"])})
    rc, out = check(g)
    n = line_of(g.conf, "gh-no-such-user")
    assert rc == 1, out
    assert re.search(r"^%s:%d: global\.user: no such user \"gh-no-such-user\"" % (re.escape(g.conf), n),
                     out, re.M), out
    # the start refuses it too, before binding anything
    p = subprocess.run([gh.BIN, "-c", g.conf], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "global.user: no such user" in p.stderr
    assert "listening" not in p.stderr


def test_check_passes_then_start_works_as_that_user(origin, ports):
    """-t accepts user "nobody"; the start then drops to it and proxies."""
    g = gh.Gatehouse(fwd_conf(ports[0]).replace('user = "";', 'user = "nobody";'),
                     extra_files={"hosts": gh.hosts_file(["a.test"])})
    os.chmod(g.dir, 0o755)     # the workers read the hosts file as nobody
    rc, out = check(g)
    assert rc == 0 and "configuration OK" in out, out
    g.start([ports[0]])
    try:
        rc, body, _ = gh.curl("-s", "-x", "http://127.0.0.1:%d" % ports[0],
                              "http://a.test:%d/echo" % origin.port)
        assert rc == 0 and b'"target": "/echo"' in body, (body, g.stderr())
        assert "running as user nobody" in g.stderr()
    finally:
        g.stop()


# ---- files ----

CASES = {
    "users_file": ('auth: { users_file = "@DIR@/missing-users"; };', "users_file", "forward.auth",
                   "missing-users"),
    "groups_file": ('auth: { users_file = "@DIR@/users"; groups_file = "@DIR@/missing-groups"; };',
                    "groups_file", "forward.auth", "missing-groups"),
    "list_file": ('lists = ( { name = "ads"; file = "@DIR@/missing-list"; } );\n'
                  '  policy = ( { action = "deny"; lists = [ "ads" ]; }, { action = "allow"; } );',
                  "missing-list", "forward.lists.file", "missing-list"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_reports_each_missing_file(ports, case):
    extra, needle, key, name = CASES[case]
    g = gh.Gatehouse(fwd_conf(ports[0], fwd_extra=extra),
                     extra_files={"hosts": gh.hosts_file(["a.test"]), "users": "u:{SHA}" +
                                  base64.b64encode(hashlib.sha1(b"x").digest()).decode() + "\n"})
    rc, out = check(g)
    assert rc == 1, out
    n = line_of(g.conf, "auth:" if key == "forward.auth" else "name =")
    assert re.search(r"^%s:%d: %s: .*%s" % (re.escape(g.conf), n, re.escape(key), re.escape(name)),
                     out, re.M), out


# ---- htpasswd's $apr1$ and {SHA} ----

def apr1(password, salt):
    p = subprocess.run(["openssl", "passwd", "-apr1", "-salt", salt, password],
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def sha(password):
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


HT_USERS = {"ann": ("apr-secret", lambda p: apr1(p, "abcdefgh")),
            "abe": ("x" * 40, lambda p: apr1(p, "Q1")),          # long password, short salt
            "sam": ("sha-secret", sha)}


@pytest.fixture
def htfwd(origin, ports):
    users = "".join("%s:%s\n" % (u, mk(p)) for u, (p, mk) in HT_USERS.items())
    users += "zed:plaintext-password\n"           # line 4: cannot be checked
    users += "nocolon\n"                          # line 5
    users += "ann:%s\n" % sha("dup")              # line 6: duplicate
    extra = ('auth: { users_file = "@DIR@/users"; };\n'
             '  policy = ( { action = "auth"; }, { action = "allow"; } );')
    g = gh.Gatehouse(fwd_conf(ports[0], fwd_extra=extra),
                     extra_files={"hosts": gh.hosts_file(["a.test"]), "users": users})
    g.port = ports[0]
    yield g
    if g.proc is not None:
        g.check_clean()


def get(g, origin, cred):
    args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:%d" % g.port]
    if cred:
        args += ["--proxy-user", cred]
    rc, out, _ = gh.curl(*args, "http://a.test:%d/echo" % origin.port)
    return int(out or 0)


def test_htpasswd_apr1_and_sha_users_log_in(htfwd, origin):
    htfwd.start([htfwd.port])
    for u, (pw, _) in HT_USERS.items():
        assert get(htfwd, origin, "%s:%s" % (u, pw)) == 200, (u, htfwd.stderr())
        assert get(htfwd, origin, "%s:%s" % (u, pw + "x")) == 407, u
    # unknown users are checked against the file's most common method: still 407
    assert get(htfwd, origin, "nobody:apr-secret") == 407
    assert get(htfwd, origin, "zed:plaintext-password") == 407     # skipped line
    assert get(htfwd, origin, "ann:dup") == 407                    # the first line wins


def test_check_reports_skipped_users_lines(htfwd):
    rc, out = check(htfwd)
    users = os.path.join(htfwd.dir, "users")
    assert rc == 0, out                 # the start accepts them too: reported, not refused
    for n in (4, 5, 6):
        assert re.search(r"%s:%d: line skipped: " % (re.escape(users), n), out), out
    assert "3 line(s) skipped, first at line 4" in out
    assert not re.search(r"%s:[123]: " % re.escape(users), out), out


# ---- squidGuard/UT1 categories: domains and urls ----

UT1_DOMAINS = "# UT1 adult/domains\nblocked.test\nnot a domain\nexample.test/a/path\n"
UT1_URLS = ("# UT1 adult/urls\n"
            "ads.test/banners\n"                # 2
            "ads.test/x/\n"                     # 3
            "http://news.test/Sport/Live\n"     # 4: scheme accepted, case-insensitive
            "what is this\n"                    # 5: bad
            "localhost/x\n"                     # 6: bad (no dot: no category lists it)
            "/no/host\n")                       # 7: bad


@pytest.fixture
def ut1(origin, ports):
    extra = ('lists = ( { name = "adult"; domains = "@DIR@/adult/domains"; urls = "@DIR@/adult/urls"; } );\n'
             '  policy = ( { name = "ut1"; action = "deny"; lists = [ "adult" ]; },'
             ' { name = "rest"; action = "allow"; } );')
    g = gh.Gatehouse(fwd_conf(ports[0], fwd_extra=extra),
                     extra_files={"hosts": gh.hosts_file(["ads.test", "sub.ads.test", "news.test",
                                                          "blocked.test", "other.test"]),
                                  "adult/domains": UT1_DOMAINS, "adult/urls": UT1_URLS})
    g.port = ports[0]
    yield g
    if g.proc is not None:
        g.check_clean()


def status(g, url):
    return gh.curl_status("-x", "http://127.0.0.1:%d" % g.port, url)


def test_ut1_urls_file_blocks_under_its_prefixes_only(ut1, origin):
    ut1.start([ut1.port])
    o = origin.port
    blocked = ["http://ads.test:%d/banners" % o, "http://ads.test:%d/banners/big.gif" % o,
               "http://ads.test:%d/banners?id=1" % o, "http://sub.ads.test:%d/banners/1" % o,
               "http://ads.test:%d/x/y" % o, "http://ads.test:%d/%%62anners/a" % o,
               "http://news.test:%d/sport/live/today" % o, "http://blocked.test:%d/" % o]
    allowed = ["http://ads.test:%d/bannersX" % o, "http://ads.test:%d/other" % o,
               "http://ads.test:%d/x" % o, "http://ads.test:%d/" % o,
               "http://news.test:%d/sport" % o, "http://other.test:%d/banners" % o]
    for u in blocked:
        assert status(ut1, u) == 403, u
    assert origin.requests == []
    for i, u in enumerate(allowed):
        assert status(ut1, u) in (200, 404), u       # the origin answers (404: no such page)
        assert len(origin.requests) == i + 1, u
    # the block page names the list entry that matched
    rc, body, _ = gh.curl("-s", "-x", "http://127.0.0.1:%d" % ut1.port,
                          "http://sub.ads.test:%d/banners/big.gif" % o)
    assert b'adult' in body and b'ads.test/banners' in body, body


def test_ut1_bad_lines_reported_with_file_line(ut1):
    rc, out = check(ut1)
    assert rc == 0, out                  # skipped lines do not stop the start either
    d, u = os.path.join(ut1.dir, "adult/domains"), os.path.join(ut1.dir, "adult/urls")
    for f, n in ((d, 3), (d, 4), (u, 5), (u, 6), (u, 7)):
        assert re.search(r"%s:%d: list \"adult\": line skipped" % (re.escape(f), n), out), (f, n, out)
    for f, n in ((d, 2), (u, 2), (u, 3), (u, 4)):
        assert not re.search(r"%s:%d: " % (re.escape(f), n), out), (f, n, out)
    assert "%s: 2 line(s) skipped" % d in out and "%s: 3 line(s) skipped" % u in out
    # the same report at start
    ut1.start([ut1.port])
    assert re.search(r"%s:5: list \"adult\": line skipped" % re.escape(u), ut1.stderr())


def test_list_skipped_lines_capped(ports):
    bad = "".join("bad line %d\n" % i for i in range(25))
    extra = ('lists = ( { name = "big"; file = "@DIR@/big"; } );\n'
             '  policy = ( { action = "deny"; lists = [ "big" ]; }, { action = "allow"; } );')
    g = gh.Gatehouse(fwd_conf(ports[0], fwd_extra=extra),
                     extra_files={"hosts": gh.hosts_file(["a.test"]), "big": "ok.test\n" + bad})
    rc, out = check(g)
    f = os.path.join(g.dir, "big")
    assert rc == 0, out
    assert len(re.findall(r"%s:\d+: list \"big\": line skipped" % re.escape(f), out)) == 10, out
    assert "%s:2: " % f in out and "%s:11: " % f in out and "%s:12: " % f not in out
    assert "%s: 25 line(s) skipped (the first ones shown)" % f in out


# ---- files the dropped user reads; the console's TLS files ----

def test_check_warns_of_files_the_user_cannot_read(ports):
    """Run as root with user "nobody": the start reads the files as root, a
    reload and the workers' DNS read them as nobody.  Files readable by root
    only: -t says so, as warnings (the start itself works)."""
    extra = ('lists = ( { name = "ads"; file = "@DIR@/ads"; } );\n'
             '  policy = ( { action = "deny"; lists = [ "ads" ]; }, { action = "allow"; } );')
    g = gh.Gatehouse(fwd_conf(ports[0], fwd_extra=extra).replace('user = "";', 'user = "nobody";'),
                     extra_files={"hosts": gh.hosts_file(["a.test"]), "ads": "ads.test\n"})
    os.chmod(g.dir, 0o700)
    rc, out = check(g)
    assert rc == 0 and re.search(r'^warning: as user "nobody" .*%s: cannot open: Permission denied'
                                 % re.escape(g.conf), out, re.M), out
    os.chmod(g.dir, 0o755)
    for f in ("ads", "hosts"):
        os.chmod(os.path.join(g.dir, f), 0o600)
    rc, out = check(g)
    assert rc == 0 and "configuration OK (with the warnings above)" in out, out
    assert re.search(r'^warning: as user "nobody" .*%s:\d+: forward\.lists\.file: .*Permission denied'
                     % re.escape(g.conf), out, re.M), out
    assert re.search(r'global\.dns\.hosts_file: user "nobody" cannot read %s'
                     % re.escape(os.path.join(g.dir, "hosts")), out), out
    for f in ("ads", "hosts"):
        os.chmod(os.path.join(g.dir, f), 0o644)
    rc, out = check(g)
    assert rc == 0 and "warning" not in out and "configuration OK" in out, out


def admin_conf(port, aport, tls):
    return fwd_conf(port) + 'admin: { listen = "127.0.0.1:%d"; %s };\n' % (aport, tls)


def test_check_reads_the_console_tls_files(ports):
    g = gh.Gatehouse(admin_conf(ports[0], ports[1], ""), extra_files={"hosts": gh.hosts_file(["a.test"])})
    crt, key = gh.make_cert(g.dir, "console", ["console.test"])
    crt2, key2 = gh.make_cert(g.dir, "other", ["other.test"])
    for tls, msg in (('tls_cert = "%s"; tls_key = "%s";' % (crt, key2),
                      r"admin\.tls_key: %s does not match the certificate" % re.escape(key2)),
                     ('tls_cert = "%s/nope.pem"; tls_key = "%s";' % (g.dir, key),
                      r"admin\.tls_cert: %s/nope\.pem: No such file" % re.escape(g.dir)),
                     ('tls_cert = "%s"; tls_key = "%s";' % (key, key),
                      r"admin\.tls_cert: %s: no PEM certificate" % re.escape(key))):
        g.write_conf(admin_conf(ports[0], ports[1], tls))
        rc, out = check(g)
        assert rc == 1, (tls, out)
        assert re.search(r"^%s: %s" % (re.escape(g.conf), msg), out, re.M), out
    g.write_conf(admin_conf(ports[0], ports[1], 'tls_cert = "%s"; tls_key = "%s";' % (crt, key)))
    rc, out = check(g)
    assert rc == 0 and "configuration OK" in out, out


def test_check_warns_of_static_dirs_and_log_dirs(ports):
    conf = ("""global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/no-such-dir/access.log"; };
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  sites = ( { hosts = [ "localhost" ]; default = true;
              routes = ( { path = "/site/"; static = "@DIR@/wwww"; },
                         { path = "/"; static = "@DIR@/www"; } ); } );
};
""" % ports[0])
    g = gh.Gatehouse(conf, extra_files={"www/index.html": "hi"})
    rc, out = check(g)
    n = line_of(g.conf, "wwww")
    assert rc == 0 and "configuration OK (with the warnings above)" in out, out
    assert re.search(r'^warning: %s:%d: reverse route "/site/": static: %s/wwww: No such file'
                     % (re.escape(g.conf), n, re.escape(g.dir)), out, re.M), out
    assert "global.log.access: the directory of %s/no-such-dir/access.log does not exist" % g.dir in out
    assert out.count("warning: ") == 2, out
