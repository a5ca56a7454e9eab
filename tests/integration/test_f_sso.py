"""Forward single sign-on with Kerberos (Negotiate, RFC 4559) against a real
MIT KDC started here: curl --proxy-negotiate with a kinit ccache through the
proxy to a loopback origin; the principal on the connection (later requests
without a token), policy users matching "alice" and "alice@CORP.TEST", groups
from the groups file by the short name, the 407's schemes in order; faults:
malformed token, replay, a ticket for a principal the keytab does not hold,
a stale keytab, NTLM; configuration errors at -t."""
import base64
import os
import socket
import subprocess

import pytest

import gh
import sso_peers
from sso_peers import REALM, curl_env


@pytest.fixture(scope="module")
def kdc():
    k = sso_peers.Kdc()
    k.user("alice", "alicepw")
    k.user("bob", "bobpw")
    k.service("HTTP/localhost")
    k.service("HTTP/127.0.0.1")           # in the realm, not in the proxy's keytab
    k.keytab("HTTP/localhost", os.path.join(k.dir, "stale.keytab"))
    k.keytab("HTTP/localhost", os.path.join(k.dir, "proxy.keytab"))   # kvno + 1: stale.keytab is old
    saved = {n: os.environ.get(n) for n in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    os.environ["KRB5_CONFIG"] = k.env["KRB5_CONFIG"]     # gatehouse inherits these
    os.environ["KRB5RCACHEDIR"] = k.dir
    yield k
    for n, v in saved.items():
        if v is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = v
    k.stop()


def sso_conf(port, keytab, schemes='[ "negotiate", "basic" ]', principal="HTTP/localhost@" + REALM):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ 443, %%ORIGIN%% ];
  auth: {
    realm = "Corp"; schemes = %s;
    users_file = "@DIR@/users"; groups_file = "@DIR@/groups";
    kerberos: { keytab = "%s"; principal = "%s"; };
  };
  policy = (
    { name = "login"; action = "auth"; },
    { name = "alice-site"; action = "allow"; users = [ "alice" ]; domains = [ "alice.test" ]; },
    { name = "full-name"; action = "allow"; users = [ "bob@%s" ]; domains = [ "bob.test" ]; },
    { name = "staff-site"; action = "allow"; groups = [ "staff" ]; domains = [ "staff.test" ]; },
    { name = "members-only"; action = "deny"; domains = [ "alice.test", "bob.test", "staff.test" ]; },
    { name = "rest"; action = "allow"; }
  );
};
""" % (port, schemes, keytab, principal, REALM)


FILES = {"users": "alice:%s\n" % gh.crypt_hash("basicpw"),
         "groups": "staff: alice\n",
         "hosts": gh.hosts_file(["any.test", "alice.test", "bob.test", "staff.test"])}


def start(kdc, origin, keytab=None, **kw):
    port = gh.free_port()
    conf = sso_conf(port, keytab or os.path.join(kdc.dir, "proxy.keytab"), **kw)
    g = gh.Gatehouse(conf.replace("%ORIGIN%", str(origin.port)), extra_files=FILES).start([port])
    g.port = port
    return g


@pytest.fixture
def fwd(kdc, origin):
    g = start(kdc, origin)
    yield g
    g.check_clean()


def neg(env, g, url, *extra, host="localhost"):
    rc, out, err = curl_env(env, "-s", "-i", "--proxy-negotiate", "-U", ":", "-x",
                            "http://%s:%d" % (host, g.port), *extra, url)
    heads = out.split(b"\r\n\r\n")
    statuses = [int(h.split(b" ")[1]) for h in heads if h.startswith(b"HTTP/")]
    return statuses, out.decode("latin-1")


def raw(port, *reqs):
    """Send requests one after another on one connection; their status codes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    out = []
    try:
        for r in reqs:
            s.sendall(r.encode())
            resp = gh.recv_response(s)
            out.append(int(resp.split(b" ")[1]) if resp.startswith(b"HTTP/") else 0)
    finally:
        s.close()
    return out


def get(host, origin_port, token=None):
    pa = "Proxy-Authorization: %s\r\n" % token if token else ""
    return "GET http://%s:%d/echo HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, origin_port, host, pa)


def test_407_offers_schemes_in_order(fwd, origin):
    st, head = neg(dict(os.environ), fwd, "http://any.test:%d/echo" % origin.port)
    assert st[-1] == 407
    offers = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("proxy-authenticate:")]
    assert offers[:2] == ["Negotiate", 'Basic realm="Corp"'], head
    assert origin.requests == []


def test_negotiate_signs_in_with_kinit_ticket(kdc, fwd, origin):
    env = kdc.kinit("alice", "alicepw")
    st, out = neg(env, fwd, "http://any.test:%d/echo" % origin.port)
    assert st[-1] == 200, out
    assert len(origin.requests) == 1
    assert origin.requests[0].header("proxy-authorization") is None
    line = gh.access_line_for(fwd, "any.test")
    assert (" - alice@%s [" % REALM) in line and 'rule="rest"' in line, line


def test_short_and_full_names_and_groups(kdc, fwd, origin):
    alice, bob = kdc.kinit("alice", "alicepw"), kdc.kinit("bob", "bobpw")
    assert neg(alice, fwd, "http://alice.test:%d/echo" % origin.port)[0][-1] == 200   # users = ["alice"]
    assert neg(bob, fwd, "http://alice.test:%d/echo" % origin.port)[0][-1] == 403
    assert neg(bob, fwd, "http://bob.test:%d/echo" % origin.port)[0][-1] == 200       # "bob@CORP.TEST"
    assert neg(alice, fwd, "http://staff.test:%d/echo" % origin.port)[0][-1] == 200   # groups file, short name
    assert neg(bob, fwd, "http://staff.test:%d/echo" % origin.port)[0][-1] == 403
    lines = fwd.access_lines()
    assert any('rule="staff-site"' in l and "alice@" in l for l in lines)
    assert any('rule="full-name"' in l and "bob@" in l for l in lines)


def test_identity_stays_on_the_connection(kdc, fwd, origin):
    tok = sso_peers.fresh_token(kdc.kinit("alice", "alicepw"))
    # the token once, then requests on that connection without it
    assert raw(fwd.port, get("any.test", origin.port, tok), get("any.test", origin.port),
               get("alice.test", origin.port)) == [200, 200, 200]
    # another connection has no identity
    assert raw(fwd.port, get("any.test", origin.port)) == [407]
    lines = [l for l in fwd.access_lines() if "alice@" in l]
    assert len(lines) == 3


def test_connect_tunnel_with_negotiate(kdc, fwd, origin):
    env = kdc.kinit("alice", "alicepw")
    rc, out, err = curl_env(env, "-p", "--proxy-negotiate", "-U", ":", "-x", "http://localhost:%d" % fwd.port,
                            "http://any.test:%d/size/5" % origin.port)
    assert rc == 0 and out == b"xxxxx", err
    line = gh.access_line_for(fwd, "CONNECT")
    assert "alice@" in line, line


def test_replayed_token_is_refused(kdc, fwd, origin):
    tok = sso_peers.fresh_token(kdc.kinit("alice", "alicepw"))
    assert raw(fwd.port, get("any.test", origin.port, tok)) == [200]
    assert raw(fwd.port, get("any.test", origin.port, tok)) == [407]
    assert "replay" in fwd.stderr().lower()
    line = gh.access_line_for(fwd, "any.test")
    assert "verdict=auth-failed" in line


@pytest.mark.parametrize("value,why", [
    ("Negotiate", "malformed"),
    ("Negotiate !!!!", "malformed"),
    ("Negotiate " + base64.b64encode(b"\x60\x82garbage-not-a-gss-token" * 4).decode(), "accept"),
    ("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==", "NTLM"),
    ("Negotiate " + base64.b64encode(b"\xa1\x0a" + b"NTLMSSP\x00\x01\x00\x00\x00").decode(), "NTLM"),
])
def test_bad_tokens_get_407_and_a_log_line(fwd, origin, value, why):
    assert raw(fwd.port, get("any.test", origin.port, value)) == [407]
    assert origin.requests == []
    err = fwd.stderr()
    assert "Negotiate from 127.0.0.1 refused" in err and why in err, err[-2000:]


def test_ticket_for_another_principal(kdc, fwd, origin):
    # curl names the proxy 127.0.0.1: a ticket for HTTP/127.0.0.1, which the keytab lacks
    env = kdc.kinit("alice", "alicepw")
    st, out = neg(env, fwd, "http://any.test:%d/echo" % origin.port, host="127.0.0.1")
    assert st[-1] == 407 and origin.requests == []
    assert "refused: accept" in fwd.stderr()


def test_stale_keytab(kdc, origin):
    g = start(kdc, origin, keytab=os.path.join(kdc.dir, "stale.keytab"))
    try:
        env = kdc.kinit("alice", "alicepw")
        st, out = neg(env, g, "http://any.test:%d/echo" % origin.port)
        assert st[-1] == 407 and origin.requests == []
        assert "refused: accept" in g.stderr()
    finally:
        g.check_clean()


def test_reload_keeps_signed_in_connections(kdc, fwd, origin):
    tok = sso_peers.fresh_token(kdc.kinit("alice", "alicepw"))
    s = socket.create_connection(("127.0.0.1", fwd.port), timeout=10)
    try:
        s.sendall(get("any.test", origin.port, tok).encode())
        assert gh.recv_response(s).startswith(b"HTTP/1.1 200")
        fwd.reload()          # a new acceptor; the connection keeps its principal
        s.sendall(get("alice.test", origin.port).encode())
        assert gh.recv_response(s).startswith(b"HTTP/1.1 200")
    finally:
        s.close()
    env = kdc.kinit("alice", "alicepw")
    assert neg(env, fwd, "http://any.test:%d/echo" % origin.port)[0][-1] == 200


def test_basic_still_works_beside_negotiate(fwd, origin):
    rc = gh.curl_status("-x", "http://127.0.0.1:%d" % fwd.port, "--proxy-user", "alice:basicpw",
                        "http://staff.test:%d/echo" % origin.port)
    assert rc == 200


def test_negotiate_only_without_users_file(kdc, origin):
    port = gh.free_port()
    conf = sso_conf(port, os.path.join(kdc.dir, "proxy.keytab"), schemes='[ "negotiate" ]')
    conf = conf.replace('users_file = "@DIR@/users"; ', "")
    g = gh.Gatehouse(conf.replace("%ORIGIN%", str(origin.port)), extra_files=FILES).start([port])
    g.port = port
    try:
        st, head = neg(kdc.kinit("alice", "alicepw"), g, "http://any.test:%d/echo" % origin.port)
        assert st[-1] == 200
        resp = gh.raw_exchange(port, get("any.test", origin.port).encode(), read_timeout=2)
        assert resp.startswith(b"HTTP/1.1 407") and b"Proxy-Authenticate: Negotiate\r\n" in resp
        assert b"Basic" not in resp.split(b"\r\n\r\n")[0]
        # Basic credentials are not checked when Basic is not offered
        assert gh.curl_status("-x", "http://127.0.0.1:%d" % port, "--proxy-user", "alice:basicpw",
                              "http://any.test:%d/echo" % origin.port) == 407
    finally:
        g.check_clean()


def test_clock_skew_is_refused(kdc, fwd, origin):
    env = kdc.kinit("alice", "alicepw")
    # the service ticket first (real time): only the authenticator is late
    subprocess.run(["kvno", "HTTP/localhost"], env=env, capture_output=True, timeout=30, check=True)
    sso_peers.need("faketime")
    rc, out, err = curl_env(env, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy-negotiate", "-U", ":",
                            "-x", "http://localhost:%d" % fwd.port, "http://any.test:%d/echo" % origin.port,
                            wrap=["faketime", "-f", "+10m"])
    assert out == b"407", (out, err)
    assert origin.requests == []
    assert "skew" in fwd.stderr().lower()


def test_kdc_down_signed_in_users_keep_working(kdc, fwd, origin):
    env = kdc.kinit("alice", "alicepw")
    subprocess.run(["kvno", "HTTP/localhost"], env=env, capture_output=True, timeout=30, check=True)
    kdc.stop_kdc()
    try:
        # the proxy needs no KDC: it accepts tickets with its keytab
        st, out = neg(env, fwd, "http://any.test:%d/echo" % origin.port)
        assert st[-1] == 200, out
        # a user without a ticket cannot get one: curl gets 407 (and says so)
        fresh = dict(env, KRB5CCNAME="FILE:" + os.path.join(kdc.dir, "cc_none"))
        st, out = neg(fresh, fwd, "http://any.test:%d/echo" % origin.port)
        assert st[-1] == 407
    finally:
        kdc.start()


@pytest.mark.parametrize("auth,msg", [
    ('schemes = [ "ntlm" ]; users_file = "u";', 'forward.auth.schemes.[0]: "ntlm" is not offered'),
    ('schemes = [ "negotiate" ];', '"negotiate" needs a forward.auth.kerberos section'),
    ('schemes = [ "basic", "basic" ]; users_file = "u";', '"basic" is listed twice'),
    ('schemes = [ ]; users_file = "u";', "must name at least one scheme"),
    ('schemes = [ "negotiate" ]; kerberos: { principal = "HTTP/x"; };', "forward.auth.kerberos.keytab: required"),
    ('schemes = [ "negotiate" ]; kerberos: { keytab = "/nonexistent/k.keytab"; };',
     "forward.auth.kerberos: /nonexistent/k.keytab: cannot use the keytab"),
    ('schemes = [ "negotiate" ]; kerberos: { keytab = "@KT@"; principal = "HTTP/other@CORP.TEST"; };',
     "forward.auth.kerberos: "),
])
def test_config_errors(kdc, tmp_path, auth, msg):
    conf = tmp_path / "g.conf"
    (tmp_path / "u").write_text("alice:%s\n" % gh.crypt_hash("x"))
    conf.write_text('global: { user = ""; };\nforward: {\n  listeners = ( { address = "127.0.0.1:%d"; } );\n'
                    '  auth: { %s };\n  policy = ( { action = "auth"; } );\n};\n'
                    % (gh.free_port(), auth.replace("@KT@", os.path.join(kdc.dir, "proxy.keytab"))))
    p = subprocess.run([gh.BIN, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert msg in p.stderr, p.stderr
    assert "g.conf:4: " in p.stderr or "g.conf:" in p.stderr
