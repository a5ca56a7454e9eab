"""Forward groups and passwords from a directory: a real OpenLDAP slapd
started here (users, groups, nested groups, a posix group; memberOf from
slapo-dynlist, recursive) behind forward.auth.ldap.  Basic passwords checked
by binding as the user (basic_bind), groups by memberof / posix / ad_nested
(nesting expanded by the proxy: slapd has no in-chain rule), RFC 4515
escaping (no filter injection), the service bind, LDAPS and StartTLS with
certificate checks, failover between URIs, the cache (groups and passwords
outlive the directory), a directory that is down or hangs (503 "directory
unreachable", a log line, the proxy keeps serving), Kerberos principals
with directory groups, configuration errors at -t."""
import os
import subprocess
import time

import pytest

import gh
import sso_peers
from sso_peers import BASE, SVC_DN


@pytest.fixture(scope="module")
def slapd():
    s = sso_peers.Slapd()
    yield s
    s.close()


DOMAINS = ["open.test", "dev.test", "all.test", "unix.test", "unixd.test", "file.test", "any.test"]


def conf(port, ldap, schemes='[ "basic" ]', extra_auth=""):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  auth: {
    realm = "Corp"; schemes = %s; users_file = "@DIR@/users"; groups_file = "@DIR@/groups";
    %s
    ldap: { %s };
  };
  policy = (
    { name = "open"; action = "allow"; domains = [ "open.test" ]; },
    { name = "login"; action = "auth"; },
    { name = "devs-site"; action = "allow"; groups = [ "devs" ]; domains = [ "dev.test" ]; },
    { name = "all-by-dn"; action = "allow"; groups = [ "cn=everyone,ou=groups,%s" ]; domains = [ "all.test" ]; },
    { name = "unix-site"; action = "allow"; groups = [ "unix-devs" ]; domains = [ "unix.test" ]; },
    { name = "unix-d-site"; action = "allow"; groups = [ "unix-d" ]; domains = [ "unixd.test" ]; },
    { name = "file-site"; action = "allow"; groups = [ "filegroup" ]; domains = [ "file.test" ]; },
    { name = "members-only"; action = "deny"; domains = [ "dev.test", "all.test", "unix.test", "unixd.test",
                                                          "file.test" ]; },
    { name = "rest"; action = "allow"; }
  );
};
""" % (port, schemes, extra_auth, ldap, BASE)


def ldap_block(s, uris=None, **kw):
    keys = {"uris": uris or '[ "ldap://127.0.0.1:%d" ]' % s.port, "base": '"%s"' % BASE,
            "bind_dn": '"%s"' % SVC_DN, "bind_password_file": '"%s"' % s.pw_file, "basic_bind": "true",
            "timeout": "2.0"}
    keys.update(kw)
    return " ".join("%s = %s;" % (k, v) for k, v in keys.items() if v is not None)


# dave is only in the users file (his password there); he is in filegroup there
FILES = {"users": "dave:%s\n" % gh.crypt_hash("davepw"), "groups": "filegroup: dave\n",
         "hosts": gh.hosts_file(DOMAINS)}


def start(text, files=None):
    port = gh.free_port()
    g = gh.Gatehouse(text(port) if callable(text) else text % port, extra_files=files or FILES).start([port])
    g.port = port
    g.proxy = "http://127.0.0.1:%d" % port
    return g


@pytest.fixture
def fwd(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd)))
    yield g
    g.check_clean()


def st(g, host, origin, user=None, timeout=30):
    args = ["-x", g.proxy]
    if user is not None:
        args += ["--proxy-user", user]
    return gh.curl_status(*args, "http://%s:%d/echo" % (host, origin.port), timeout=timeout)


def test_basic_bind_and_memberof_groups(fwd, origin, slapd):
    assert st(fwd, "any.test", origin, "alice:alicepw") == 200
    assert st(fwd, "dev.test", origin, "alice:alicepw") == 200          # devs: direct
    assert st(fwd, "all.test", origin, "alice:alicepw") == 200          # everyone: 2 levels, by DN
    assert st(fwd, "dev.test", origin, "bob:bobpw") == 403
    assert st(fwd, "all.test", origin, "bob:bobpw") == 200
    assert st(fwd, "dev.test", origin, "carol:carolpw") == 403          # in no group
    lines = fwd.access_lines()
    assert any(" - alice [" in l and 'rule="all-by-dn"' in l for l in lines)
    # the users file and its groups keep working beside the directory
    assert st(fwd, "file.test", origin, "dave:davepw") == 200
    assert st(fwd, "file.test", origin, "alice:alicepw") == 403


@pytest.mark.parametrize("cred", ["alice:wrong", "nobody:alicepw", "alice:", "*:alicepw",
                                  "alice)(uid=*:alicepw", "*)(|(uid=*:x"])
def test_bad_passwords_and_injection(fwd, origin, slapd, cred):
    assert st(fwd, "any.test", origin, cred) == 407
    assert origin.requests == []
    line = gh.access_line_for(fwd, "any.test")
    assert "verdict=auth-failed" in line, line


def test_filter_values_are_escaped(fwd, origin, slapd):
    assert st(fwd, "any.test", origin, "a*b()\\:x") == 407
    log = slapd.log_text()
    assert "(uid=a\\2Ab\\28\\29\\5C)" in log or "(uid=a\\2ab\\28\\29\\5c)" in log, log[-3000:]


def test_posix_groups(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd, groups='"posix"')))
    try:
        assert st(g, "unix.test", origin, "alice:alicepw") == 200
        # alice's 5th posix group: the service account gets 2 entries per search
        # unless it pages (RFC 2696), as AD caps unpaged searches at MaxPageSize
        assert st(g, "unixd.test", origin, "alice:alicepw") == 200
        assert st(g, "unix.test", origin, "bob:bobpw") == 403
        assert st(g, "dev.test", origin, "alice:alicepw") == 403     # memberOf is not read in posix mode
    finally:
        g.check_clean()


def test_ad_nested_expands_nesting(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd, groups='"ad_nested"')))
    try:
        assert st(g, "all.test", origin, "alice:alicepw") == 200     # alice -> devs -> staff -> everyone
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "dev.test", origin, "bob:bobpw") == 403
        log = slapd.log_text()
        # the in-chain rule is asked first (what AD answers in one search); slapd
        # does not know the rule and logs the filter as "(?=undefined)" ...
        assert 'filter="(?=undefined)"' in log
        # ... slapd answers nothing, so the proxy walks the levels itself
        assert "(member=cn=staff,ou=groups,dc=corp,dc=test)" in log
    finally:
        g.check_clean()


def test_ldaps_and_starttls_with_ca(slapd, origin, tmp_path):
    for block in (ldap_block(slapd, uris='[ "ldaps://127.0.0.1:%d" ]' % slapd.tls_port, ca_file='"%s"' % slapd.ca),
                  ldap_block(slapd, starttls="true", ca_file='"%s"' % slapd.ca)):
        g = start(lambda p: conf(p, block))
        try:
            assert st(g, "dev.test", origin, "alice:alicepw") == 200
        finally:
            g.check_clean()
    assert "EXT oid=1.3.6.1.4.1.1466.20037" in slapd.log_text()     # StartTLS was used
    # a CA that did not sign the directory's certificate: no connection, 503
    other, _ = gh.make_ca(str(tmp_path))
    for block in (ldap_block(slapd, uris='[ "ldaps://127.0.0.1:%d" ]' % slapd.tls_port, ca_file='"%s"' % other),
                  ldap_block(slapd, starttls="true", ca_file='"%s"' % other)):
        g = start(lambda p: conf(p, block))
        try:
            assert st(g, "dev.test", origin, "alice:alicepw") == 503
            assert "directory unreachable" in g.stderr()
        finally:
            g.check_clean()


def test_ldaps_checks_the_server_name(slapd, origin):
    # the right CA, but the certificate names localhost and 127.0.0.1, not 127.0.0.2
    g = start(lambda p: conf(p, ldap_block(slapd, uris='[ "ldaps://127.0.0.2:%d" ]' % slapd.other_tls_port,
                                           ca_file='"%s"' % slapd.ca)))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 503
        assert "directory unreachable" in g.stderr()
    finally:
        g.check_clean()


def test_failover_to_the_second_uri(slapd, origin):
    dead = gh.free_port()
    g = start(lambda p: conf(p, ldap_block(slapd, uris='[ "ldap://127.0.0.1:%d", "ldap://127.0.0.1:%d" ]'
                                           % (dead, slapd.port))))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "all.test", origin, "bob:bobpw") == 200
    finally:
        g.check_clean()


def test_wrong_service_password(slapd, origin, tmp_path):
    bad = tmp_path / "bad.secret"
    bad.write_text("nope\n")
    g = start(lambda p: conf(p, ldap_block(slapd, bind_password_file='"%s"' % bad)))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 503
        assert "check forward.auth.ldap.bind_dn" in g.stderr()
        assert st(g, "open.test", origin) == 200          # what needs no sign-in still works
    finally:
        g.check_clean()


def test_directory_down_cache_keeps_users_working(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd, cache_ttl="0.5")))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        slapd.stop()
        try:
            time.sleep(0.6)    # the groups are stale now: the cached ones are used while it is down
            assert st(g, "dev.test", origin, "alice:alicepw") == 200
            # a user never seen: the password cannot be checked
            body = gh.curl("-x", g.proxy, "--proxy-user", "bob:bobpw", "http://dev.test:%d/" % origin.port)[1]
            assert st(g, "dev.test", origin, "bob:bobpw") == 503
            assert b"directory unreachable" in body
            err = g.stderr()
            assert "using the cached groups of alice" in err
            assert "directory unreachable: cannot check the password of \"bob\"" in err
            line = gh.access_line_for(g, "verdict=auth-busy")
            assert line and " 503 " in line and "dev.test" in line, line
        finally:
            slapd.start()
        assert st(g, "dev.test", origin, "bob:bobpw") == 403
    finally:
        g.check_clean()


@pytest.mark.parametrize("scheme,starttls", [("ldap", "false"), ("ldaps", "false"), ("ldap", "true")])
def test_hanging_directory_answers_503_and_never_blocks(slapd, origin, scheme, starttls):
    # a peer that accepts and never answers: the bind, the TLS handshake or StartTLS hangs
    hole = sso_peers.Blackhole()
    g = start(lambda p: conf(p, ldap_block(slapd, uris='[ "%s://127.0.0.1:%d" ]' % (scheme, hole.port),
                                           timeout="1.0", starttls=starttls, ca_file='"%s"' % slapd.ca)))
    try:
        import threading
        res = {}
        t = threading.Thread(target=lambda: res.update(s=st(g, "dev.test", origin, "alice:alicepw")))
        t0 = time.time()
        t.start()
        time.sleep(0.2)
        # the worker is not held: a request that needs no directory is answered meanwhile
        t1 = time.time()
        assert st(g, "open.test", origin) == 200
        assert time.time() - t1 < 0.9
        t.join(30)
        assert res["s"] == 503
        assert time.time() - t0 < 10
        assert "directory unreachable" in g.stderr()
    finally:
        g.check_clean()
        hole.close()


@pytest.mark.parametrize("ldap,msg", [
    ('base = "dc=x";', "forward.auth.ldap.uris: required key is missing"),
    ('uris = [ "http://x" ]; base = "dc=x";', 'must be "ldap://host[:port]"'),
    ('uris = [ "ldap://x" ]; base = "dc=x"; user_filter = "(uid=bob)";', 'must contain "%s"'),
    ('uris = [ "ldap://x" ]; base = "dc=x"; user_filter = "((uid=%s)";', "unbalanced parentheses"),
    ('uris = [ "ldap://x" ]; base = "dc=x"; user_filter = "(uid=%d)";', "may only appear as"),
    ('uris = [ "ldap://x" ]; base = "dc=x"; bind_dn = "cn=a";', "bind_dn and bind_password_file go together"),
    ('uris = [ "ldap://x" ]; base = "dc=x"; bind_dn = "cn=a"; bind_password_file = "/nonexistent/s";',
     "forward.auth.ldap: cannot open /nonexistent/s"),
    ('uris = [ "ldap://x" ]; base = "dc=x"; groups = "nested";', 'must be "memberof", "posix" or "ad_nested"'),
    ('uris = [ "ldap://x" ];', "forward.auth.ldap.base: required key is missing"),
])
def test_config_errors(tmp_path, ldap, msg):
    c = tmp_path / "g.conf"
    c.write_text('global: { user = ""; };\nforward: {\n  listeners = ( { address = "127.0.0.1:%d"; } );\n'
                 '  auth: { schemes = [ "basic" ];\n    ldap: { basic_bind = true; %s };\n  };\n'
                 '  policy = ( { action = "auth"; } );\n};\n' % (gh.free_port(), ldap))
    p = subprocess.run([gh.BIN, "-t", "-c", str(c)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and msg in p.stderr, p.stderr
    assert "g.conf:5: " in p.stderr or "g.conf:4: " in p.stderr, p.stderr


def test_basic_bind_needs_no_users_file(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd)).replace('users_file = "@DIR@/users"; ', ""))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "dev.test", origin, "alice:bad") == 407
    finally:
        g.check_clean()


def test_kerberos_principal_gets_directory_groups(slapd, origin):
    kdc = sso_peers.Kdc()
    saved = {n: os.environ.get(n) for n in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    try:
        kdc.user("alice", "alicepw")
        kdc.user("bob", "bobpw")
        kdc.service("HTTP/localhost")
        kt = kdc.keytab("HTTP/localhost", os.path.join(kdc.dir, "proxy.keytab"))
        os.environ["KRB5_CONFIG"] = kdc.env["KRB5_CONFIG"]
        os.environ["KRB5RCACHEDIR"] = kdc.dir
        krb = 'kerberos: { keytab = "%s"; };' % kt
        g = start(lambda p: conf(p, ldap_block(slapd, basic_bind="false"), schemes='[ "negotiate" ]',
                                 extra_auth=krb).replace('users_file = "@DIR@/users"; ', ""))
        try:
            def neg(user, pw, host):
                rc, out, err = sso_peers.curl_env(kdc.kinit(user, pw), "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                                  "--proxy-negotiate", "-U", ":", "-x", "http://localhost:%d" % g.port,
                                                  "http://%s:%d/echo" % (host, origin.port))
                return int(out or b"0")
            assert neg("alice", "alicepw", "dev.test") == 200     # alice@CORP.TEST -> uid=alice -> devs
            assert neg("bob", "bobpw", "dev.test") == 403
            assert neg("bob", "bobpw", "all.test") == 200
            assert any("alice@CORP.TEST" in l and 'rule="devs-site"' in l for l in g.access_lines())
        finally:
            g.check_clean()
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v
        kdc.stop()


def test_console_shows_directory_groups_and_their_source(slapd, origin):
    import hashlib
    import http.client
    import json
    token = "c0ffee" * 10
    adm = gh.free_port()
    files = dict(FILES, admin_users="admin:%s:admin:token_sha256=%s\n"
                 % (gh.crypt_hash("adminpw-long-enough"), hashlib.sha256(token.encode()).hexdigest()))
    g = start(lambda p: conf(p, ldap_block(slapd)) + 'admin: { listen = "127.0.0.1:%d"; '
              'users_file = "@DIR@/admin_users"; };\n' % adm, files)
    try:
        assert gh.wait_port(adm)

        def api(method, path, body=None):
            c = http.client.HTTPConnection("127.0.0.1", adm, timeout=10)
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            r = c.getresponse()
            data = json.loads(r.read())
            c.close()
            return r.status, data

        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "file.test", origin, "dave:davepw") == 200
        time.sleep(1.2)      # the signed-in users table is filled from finished requests
        code, fwd = api("GET", "/api/v1/forward")
        assert code == 200
        users = {u["user"]: u for u in fwd["users"]}
        a = users["alice"]
        assert "devs" in a["groups"] and "cn=everyone,ou=groups,%s" % BASE in a["groups"], a
        assert set(a["groups_from"]) == {"ldap memberof"}
        d = users["dave"]
        assert d["groups"][0] == "filegroup" and d["groups_from"][0] == "forward.auth.groups_file", d

        code, t = api("POST", "/api/v1/policy/test", {"url": "http://dev.test/", "user": "alice"})
        assert code == 200 and t["verdict"] == "allow" and t["rule"] == "devs-site", t
        assert "devs" in t["input"]["groups"] and t["input"]["groups_from"] == "ldap memberof", t
        code, t = api("POST", "/api/v1/policy/test", {"url": "http://dev.test/", "user": "carol"})
        assert t["verdict"] == "deny", t
        assert any("not cached yet" in n for n in t["notes"]), t
    finally:
        g.check_clean()


def test_console_sign_in_with_ldap_roles(slapd, origin):
    import http.client
    import json
    adm = gh.free_port()
    files = dict(FILES, admin_users="root:%s:admin\n" % gh.crypt_hash("root-password-long"))
    roles = ('admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/admin_users";\n'
             '  ldap_roles = { admin = "cn=devs,ou=groups,%s"; viewer = "staff"; }; };\n' % (adm, BASE))
    g = start(lambda p: conf(p, ldap_block(slapd, basic_bind="false")) + roles, files)
    try:
        assert gh.wait_port(adm)

        def login(user, pw):
            c = http.client.HTTPConnection("127.0.0.1", adm, timeout=15)
            c.request("POST", "/api/v1/login", body=json.dumps({"user": user, "password": pw}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, json.loads(body) if body else None

        st_, j = login("alice", "alicepw")            # devs (by DN) -> admin
        assert st_ == 200 and j["role"] == "admin", j
        st_, j = login("bob", "bobpw")                # staff (by name) -> viewer
        assert st_ == 200 and j["role"] == "viewer", j
        assert login("carol", "carolpw")[0] == 401   # in neither group
        assert login("alice", "wrong")[0] == 401
        st_, j = login("root", "root-password-long")  # the users file still works
        assert st_ == 200 and j["role"] == "admin"
    finally:
        g.check_clean()


def test_ldap_roles_needs_the_directory(tmp_path):
    c = tmp_path / "g.conf"
    c.write_text('global: { user = ""; };\nadmin: { listen = "127.0.0.1:%d";\n'
                 '  ldap_roles = { admin = "cn=a,dc=x"; }; };\n' % gh.free_port())
    p = subprocess.run([gh.BIN, "-t", "-c", str(c)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "g.conf:3: admin.ldap_roles: needs forward.auth.ldap" in p.stderr, p.stderr


def test_pooled_connection_and_negative_cache(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd, cache_ttl="0.2", negative_ttl="30.0")))
    try:
        before = slapd.log_text()
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        time.sleep(0.3)                                               # alice's groups expire: asked again
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "file.test", origin, "dave:davepw") == 200       # dave: users file only
        assert st(g, "file.test", origin, "dave:davepw") == 200
        time.sleep(0.3)
        log = slapd.log_text()[len(before):]
        # one service bind: the lookups share the pooled connection
        assert log.count('BIND dn="%s" method=128' % SVC_DN) == 1, log
        assert log.count('BIND dn="uid=alice,ou=people,%s" method=128' % BASE) == 1     # the password, once (cached)
        assert log.count('filter="(&(objectClass=person)(uid=alice))"') >= 3   # bind's search + 2 lookups
        # a user the directory does not know is asked once per negative_ttl
        assert log.count('filter="(&(objectClass=person)(uid=dave))"') == 1, log
    finally:
        g.check_clean()


def test_reload_with_the_directory(slapd, origin):
    g = start(lambda p: conf(p, ldap_block(slapd)))
    try:
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        g.reload()              # a new snapshot: its own directory threads, connections and cache
        assert st(g, "dev.test", origin, "alice:alicepw") == 200
        assert st(g, "dev.test", origin, "bob:bobpw") == 403
        g.reload()
        assert st(g, "all.test", origin, "bob:bobpw") == 200
        assert "reload" in g.stderr().lower()
    finally:
        g.check_clean()
