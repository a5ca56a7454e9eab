"""Forward proxy authentication: Basic credentials against an htpasswd users
file (bcrypt, sha512, yescrypt), groups, 407 with Proxy-Authenticate, users
and groups in policy rules and the access log, the verified-credentials
cache (measured), per-client backoff after repeated failures."""
import json
import time

import pytest

import gh

USERS = {"alice": ("wonderland", "$2y$", 5), "bob": ("builder", "$6$", 0),
         "carol": ("singer", "$y$", 0), "dave": ("slowhash", "$2y$", 12),
         "erin": ("patient", "$6$", 0)}


def auth_conf(port, ttl=60.0):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  auth: { realm = "Test Realm"; users_file = "@DIR@/users"; groups_file = "@DIR@/groups"; cache_ttl = %s; };
  policy = (
    { name = "open"; action = "allow"; domains = [ "open.test" ]; },
    { name = "login"; action = "auth"; },
    { name = "staff-site"; action = "allow"; groups = [ "staff" ]; domains = [ "staff.test" ]; },
    { name = "carol-site"; action = "allow"; users = [ "carol" ]; domains = [ "carol.test" ]; },
    { name = "members-only"; action = "deny"; domains = [ "staff.test", "carol.test" ]; },
    { name = "rest"; action = "allow"; }
  );
};
""" % (port, ttl)


@pytest.fixture(scope="module")
def files():
    users = "# users\n" + "".join("%s:%s\n" % (u, gh.crypt_hash(p, pre, cost))
                                  for u, (p, pre, cost) in USERS.items())
    users += "broken line without colon\nmallory:{SHA}notsupported=\n"
    groups = "staff: alice bob\n# comment\nothers: carol, nobody\n"
    return {"users": users, "groups": groups,
            "hosts": gh.hosts_file(["open.test", "staff.test", "carol.test", "any.test"])}


@pytest.fixture
def fwd(origin, ports, files):
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=files).start([ports[0]])
    g.port = ports[0]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    yield g
    g.check_clean()


def req(fwd, url, user=None, *extra):
    args = ["-s", "-i", "-x", fwd.proxy]
    if user:
        args += ["--proxy-user", user]
    rc, out, err = gh.curl(*args, *extra, url)
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return status, head.decode("latin-1"), body


def test_missing_credentials_407(fwd, origin):
    st, head, body = req(fwd, "http://any.test:%d/echo" % origin.port)
    assert st == 407
    assert 'Proxy-Authenticate: Basic realm="Test Realm"' in head
    assert origin.requests == []
    line = gh.access_line_for(fwd, "any.test")
    assert 'verdict=auth rule="login"' in line


def test_open_rule_needs_no_login(fwd, origin):
    st, head, body = req(fwd, "http://open.test:%d/echo" % origin.port)
    assert st == 200


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])   # bcrypt, sha512, yescrypt
def test_good_credentials_each_hash(fwd, origin, user):
    st, head, body = req(fwd, "http://any.test:%d/echo" % origin.port, "%s:%s" % (user, USERS[user][0]))
    assert st == 200, head
    d = json.loads(body)
    names = [k.lower() for k, v in d["headers"]]
    assert "proxy-authorization" not in names
    line = gh.access_line_for(fwd, "any.test")
    assert (" - %s [" % user) in line and 'rule="rest"' in line


def test_bad_password_and_unknown_user(fwd, origin):
    st, head, _ = req(fwd, "http://any.test:%d/echo" % origin.port, "alice:wrong")
    assert st == 407 and 'Proxy-Authenticate: Basic realm="Test Realm"' in head
    st, head, _ = req(fwd, "http://any.test:%d/echo" % origin.port, "nobody:wonderland")
    assert st == 407
    st, head, _ = req(fwd, "http://any.test:%d/echo" % origin.port, "mallory:x")   # skipped hash
    assert st == 407
    assert origin.requests == []
    lines = [l for l in fwd.access_lines() if "any.test" in l]
    assert len(lines) == 3 and all("verdict=auth-failed" in l for l in lines)
    assert "skipped" in fwd.stderr()


def test_groups_and_users_matchers(fwd, origin):
    url = "http://staff.test:%d/echo" % origin.port
    assert req(fwd, url, "alice:wonderland")[0] == 200
    assert req(fwd, url, "bob:builder")[0] == 200
    assert req(fwd, url, "carol:singer")[0] == 403         # not in staff
    url = "http://carol.test:%d/echo" % origin.port
    assert req(fwd, url, "carol:singer")[0] == 200
    st, head, body = req(fwd, url, "alice:wonderland")
    assert st == 403 and b"members-only" in body
    lines = fwd.access_lines()
    assert any('rule="staff-site"' in l and " - bob [" in l for l in lines)
    assert any('rule="carol-site"' in l and " - carol [" in l for l in lines)


def test_tunnel_requires_auth(origin, ports, files):
    conf = auth_conf(ports[0]).replace("allow_clients", "connect_ports = [ %d ];\n  allow_clients" % origin.port)
    g = gh.Gatehouse(conf, extra_files=files).start([ports[0]])
    try:
        proxy = "http://127.0.0.1:%d" % ports[0]
        rc, out, err = gh.curl("-p", "-x", proxy, "http://any.test:%d/size/4" % origin.port)
        assert rc != 0 and "407" in err
        rc, out, err = gh.curl("-p", "-x", proxy, "--proxy-user", "bob:builder",
                               "http://any.test:%d/size/4" % origin.port)
        assert rc == 0 and out == b"xxxx", err
    finally:
        g.check_clean()


def timed(fwd, url, user):
    rc, out, err = gh.curl("-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-x", fwd.proxy,
                           "--proxy-user", user, url)
    code, t = out.decode().split()
    return int(code), float(t)


def test_cache_makes_second_request_fast(fwd, origin):
    url = "http://any.test:%d/size/1" % origin.port
    st, cold = timed(fwd, url, "dave:slowhash")     # bcrypt cost 12: ~0.2-0.4 s
    assert st == 200
    warm = []
    for _ in range(5):
        st, t = timed(fwd, url, "dave:slowhash")
        assert st == 200
        warm.append(t)
    cached = min(warm)
    print("auth latency: cold %.1f ms, cached %.1f ms" % (cold * 1000, cached * 1000))
    assert cold > 0.05
    assert cached < cold / 4
    # a wrong password for a cached user is still verified (and refused)
    st, t = timed(fwd, url, "dave:other")
    assert st == 407


def test_cache_ttl_expires(origin, ports, files):
    g = gh.Gatehouse(auth_conf(ports[0], ttl=0.5), extra_files=files).start([ports[0]])
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    try:
        url = "http://any.test:%d/size/1" % origin.port
        st, cold = timed(g, url, "dave:slowhash")
        st, warm = timed(g, url, "dave:slowhash")
        time.sleep(0.7)
        st2, again = timed(g, url, "dave:slowhash")
        assert st == st2 == 200
        assert warm < cold / 4 and again > warm * 3
    finally:
        g.check_clean()


def test_backoff_after_repeated_failures(fwd, origin):
    url = "http://any.test:%d/echo" % origin.port
    # warm the cache for alice first: cached credentials are not slowed down
    assert req(fwd, url, "alice:wonderland")[0] == 200
    for _ in range(3):
        assert req(fwd, url, "erin:wrong")[0] == 407
    # the third failure starts a 1 s refusal: even the right password is not checked
    st, head, body = req(fwd, url, "erin:patient")
    assert st == 407
    assert "Retry-After: 1" in head and b"Too many failed sign-ins" in body
    assert req(fwd, url, "alice:wonderland")[0] == 200
    time.sleep(1.2)
    assert req(fwd, url, "erin:patient")[0] == 200
    lines = fwd.access_lines()
    assert any("verdict=auth-backoff" in l for l in lines)
    assert "failed sign-ins from 127.0.0.1" in fwd.stderr()


def test_malformed_authorization(fwd, origin):
    for value in ["Basic !!!notbase64", "Bearer abc", "Basic " + "QQ==", "Basic"]:
        st, head, _ = req(fwd, "http://any.test:%d/echo" % origin.port, None,
                          "-H", "Proxy-Authorization: " + value)
        assert st == 407, value
        assert "Proxy-Authenticate" in head


def slow_files(files):
    f = dict(files)
    f["users"] = files["users"] + "slow:%s\n" % gh.crypt_hash("slowpw", "$2y$", 13)
    return f


def test_client_leaves_during_verification(origin, ports, files):
    import socket
    import base64
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=slow_files(files)).start([ports[0]])
    try:
        cred = base64.b64encode(b"slow:slowpw")
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", ports[0]), timeout=5)
            s.sendall(b"GET http://any.test:%d/echo HTTP/1.1\r\nHost: any.test\r\n"
                      b"Proxy-Authorization: Basic %s\r\n\r\n" % (origin.port, cred))
            time.sleep(0.05)
            s.close()          # gone while the pool is still hashing
        time.sleep(0.3)
        # the proxy still answers (cached or not) after the orphans are woken
        st = gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0], "--proxy-user", "bob:builder",
                            "http://any.test:%d/size/1" % origin.port)
        assert st == 200
    finally:
        g.check_clean()


def test_stop_during_verification(origin, ports, files):
    import socket
    import base64
    import signal
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=slow_files(files)).start([ports[0]])
    cred = base64.b64encode(b"slow:slowpw")
    socks = []
    for _ in range(4):          # more than the pool's two threads: some stay queued
        s = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
        s.sendall(b"GET http://any.test:%d/echo HTTP/1.1\r\nHost: any.test\r\n"
                  b"Proxy-Authorization: Basic %s\r\n\r\n" % (origin.port, cred))
        socks.append(s)
    time.sleep(0.1)
    g.signal(signal.SIGTERM)
    g.check_clean()
    for s in socks:
        s.close()


def test_reload_keeps_serving_and_rereads_users(origin, ports, files):
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=files).start([ports[0]])
    try:
        proxy = "http://127.0.0.1:%d" % ports[0]
        url = "http://any.test:%d/size/1" % origin.port
        assert gh.curl_status("-x", proxy, "--proxy-user", "bob:builder", url) == 200
        with open(g.dir + "/users", "a") as f:
            f.write("frank:%s\n" % gh.crypt_hash("newpw", "$6$"))
        g.reload()
        assert gh.curl_status("-x", proxy, "--proxy-user", "frank:newpw", url) == 200
        assert gh.curl_status("-x", proxy, "--proxy-user", "bob:builder", url) == 200
    finally:
        g.check_clean()


def test_auth_then_dlp_on_the_body(origin, ports, files):
    text = auth_conf(ports[0]).replace(
        "policy = (",
        'dlp: { action = "deny"; max_scan_bytes = "64k"; detectors = [ "credit_card" ]; };\n  policy = (')
    g = gh.Gatehouse(text, extra_files=files).start([ports[0]])
    try:
        proxy = "http://127.0.0.1:%d" % ports[0]
        url = "http://any.test:%d/echo" % origin.port
        rc, out, err = gh.curl("-x", proxy, "--proxy-user", "bob:builder", "--data-binary", "@-", url,
                               input=b"x" * 3000 + b" 4111-1111-1111-1111")
        assert b"credit_card" in out and origin.requests == []
        rc, out, err = gh.curl("-x", proxy, "--proxy-user", "bob:builder", "--data-binary", "@-", url,
                               input=b"y" * 3000)
        d = json.loads(out)
        assert d["nbytes"] == 3000
        line = gh.access_line_for(g, "any.test")
        assert " - bob [" in line
    finally:
        g.check_clean()


def test_verification_does_not_stall_the_worker(origin, ports, files):
    import socket
    import base64
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=slow_files(files)).start([ports[0]])   # 1 worker
    try:
        cred = base64.b64encode(b"slow:slowpw")
        s = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
        t0 = time.time()
        s.sendall(b"GET http://any.test:%d/size/2 HTTP/1.1\r\nHost: any.test\r\n"
                  b"Proxy-Authorization: Basic %s\r\n\r\n" % (origin.port, cred))
        time.sleep(0.02)
        # while the pool hashes (bcrypt cost 13), the same worker keeps answering
        g.proxy = "http://127.0.0.1:%d" % ports[0]
        t1 = time.time()
        st = gh.curl_status("-x", g.proxy, "http://open.test:%d/size/1" % origin.port)
        fast = time.time() - t1
        resp = gh.recv_response(s)
        slow = time.time() - t0
        s.close()
        assert st == 200 and resp.startswith(b"HTTP/1.1 200")
        print("open request %.1f ms while a verification took %.1f ms" % (fast * 1000, slow * 1000))
        assert fast < slow / 3
    finally:
        g.check_clean()
