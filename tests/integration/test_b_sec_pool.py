"""Security issue #13, items 2, 7 and 12: the upstream connection pool.

A pooled upstream connection is reused only under everything that made it
acceptable: the side (forward and reverse never share), the addresses the
forward side's destination checks allowed for this very request, the TLS
settings of the upstream (verify, CA, SNI), and, once it carried
connection-bound authentication (NTLM, Negotiate), the client connection
that made it.
"""
import http.client
import json
import os
import ssl
import threading
import time

import pytest

import gh


def conf(fport, rport, origin_port, deny='"169.254.0.0/16"', up_extra=""):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ %s ];
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); %s } );
  sites = ( { hosts = [ "app.test" ]; default = true; routes = ( { path = "/"; upstream = "app"; } ); } );
};
""" % (fport, deny, rport, origin_port, up_extra)


def persistent(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def get(conn, target, headers=None):
    conn.request("GET", target, headers=headers or {})
    r = conn.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


# ---- item 2: forward SSRF through the shared pool --------------------------

def test_forward_denied_destination_never_reuses_a_reverse_connection(netns, ports):
    """A reverse request pools a connection to an internal app on
    127.0.0.1:P; a forward request to http://127.0.0.1:P/ with loopback in
    deny_destinations must get 403 and reach nothing."""
    o = gh.KillableOrigin()
    g = gh.Gatehouse(conf(ports[0], ports[1], o.port, deny='"127.0.0.0/8", "::1/128"'))
    g.start([ports[0], ports[1]])
    try:
        rv = persistent(ports[1])
        st, _, body = get(rv, "/echo", {"Host": "app.test"})
        assert st == 200 and json.loads(body)["target"] == "/echo"
        rv.close()   # the upstream connection stays pooled
        assert o.hits() == 1
        fw = persistent(ports[0])
        for _ in range(3):   # every request is checked, not only a connection's first
            st, _, _ = get(fw, "http://127.0.0.1:%d/internal-secret" % o.port)
            assert st == 403
        fw.close()
        rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                               "http://127.0.0.1:%d" % ports[0], "http://127.0.0.1:%d/x" % o.port)
        assert out == b"403"
        assert o.hits() == 1, [r.target for r in o.requests]
        assert "deny_destinations" in (gh.access_line_for(g, "/internal-secret") or "")
        # the reverse side still reuses its own pooled connection
        st, _, _ = get(persistent(ports[1]), "/echo", {"Host": "app.test"})
        assert st == 200 and o.connections == 1
        g.check_clean()
    finally:
        g.stop()
        o.stop()


def test_reverse_never_reuses_a_forward_connection(netns, ports):
    """A forward request (loopback allowed here) pools a connection to the
    origin; a reverse request to the same host:port opens its own."""
    o = gh.KillableOrigin()
    g = gh.Gatehouse(conf(ports[0], ports[1], o.port))
    g.start([ports[0], ports[1]])
    try:
        fw = persistent(ports[0])
        st, _, _ = get(fw, "http://127.0.0.1:%d/echo" % o.port)
        assert st == 200
        fw.close()
        assert o.connections == 1
        st, _, _ = get(persistent(ports[1]), "/echo", {"Host": "app.test"})
        assert st == 200
        assert o.connections == 2, "the reverse request reused the forward side's connection"
        # each side reuses its own
        st, _, _ = get(persistent(ports[0]), "http://127.0.0.1:%d/echo" % o.port)
        assert st == 200
        st, _, _ = get(persistent(ports[1]), "/echo", {"Host": "app.test"})
        assert st == 200
        assert o.connections == 2
        g.check_clean()
    finally:
        g.stop()
        o.stop()


# ---- item 7: connection-bound authentication -------------------------------

class NtlmOrigin(gh.Origin):
    """An origin that binds authentication to the TCP connection, as IIS does
    with NTLM: a request without credentials on an unauthenticated connection
    gets 401 WWW-Authenticate: NTLM; "Authorization: NTLM <user>" signs the
    connection in; afterwards every request on it is served as that user."""

    def __init__(self, scheme="NTLM"):
        self.scheme = scheme
        self.users = {}     # id(connection) -> user, while it is open
        super().__init__()

    def _serve(self, c):
        try:
            super()._serve(c)
        finally:
            with self.lock:
                self.users.pop(id(c), None)   # ids are reused once c is gone

    def _respond(self, c, req):
        auth = req.header("Authorization")
        if auth and auth.split(" ", 1)[0].lower() == self.scheme.lower():
            with self.lock:
                self.users[id(c)] = auth.split(" ", 1)[1]
        with self.lock:
            user = self.users.get(id(c))
        if user is None:
            c.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: %s\r\n"
                      b"Content-Length: 0\r\n\r\n" % self.scheme.encode())
            return True
        body = ("hello %s" % user).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True


@pytest.mark.parametrize("side,scheme", [("forward", "NTLM"), ("forward", "Negotiate"),
                                         ("reverse", "NTLM")])
def test_connection_bound_auth_is_never_shared(netns, ports, side, scheme):
    o = NtlmOrigin(scheme)
    g = gh.Gatehouse(conf(ports[0], ports[1], o.port))
    g.start([ports[0], ports[1]])
    if side == "forward":
        port, target, hdrs = ports[0], "http://127.0.0.1:%d/doc" % o.port, {}
    else:
        port, target, hdrs = ports[1], "/doc", {"Host": "app.test"}
    try:
        alice = persistent(port)
        st, h, _ = get(alice, target, hdrs)
        assert st == 401 and h.get("www-authenticate") == scheme
        st, _, body = get(alice, target, dict(hdrs, Authorization="%s alice" % scheme))
        assert (st, body) == (200, b"hello alice")
        # alice's connection keeps its signed-in upstream connection
        st, _, body = get(alice, target, hdrs)
        assert (st, body) == (200, b"hello alice")
        # bob, on another client connection while alice's is open and after it closed
        for _ in range(2):
            bob = persistent(port)
            st, _, body = get(bob, target, hdrs)
            bob.close()
            assert body != b"hello alice", "bob was served as alice"
            assert st == 401
            alice.close()
        g.check_clean()
    finally:
        g.stop()
        o.stop()


# ---- item 12: the TLS pool and the upstream's TLS settings -----------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    other = str(tmp_path_factory.mktemp("other-ca"))
    origin = gh.make_cert(d, "origin", ["origin.test"])
    return {"ca": os.path.join(d, "ca.pem"), "origin": origin,
            "other_ca": gh.make_ca(other)[0]}


def tls_origin(pki):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki["origin"])
    names = []
    lock = threading.Lock()

    def sni(sock, name, c):
        with lock:
            names.append(name)
    ctx.sni_callback = sni
    o = gh.Origin(tls=ctx)
    o.sni_names = names
    return o


def two_upstreams(rport, origin_port, a, b, a_host="127.0.0.1", b_host="127.0.0.1"):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "a"; servers = ( { address = "%s:%d"; } ); %s },
                { name = "b"; servers = ( { address = "%s:%d"; } ); %s } );
  sites = ( { hosts = [ "a.test" ]; default = true; routes = ( { path = "/"; upstream = "a"; } ); },
            { hosts = [ "b.test" ]; routes = ( { path = "/"; upstream = "b"; } ); } );
};
""" % (rport, a_host, origin_port, a, b_host, origin_port, b)


def test_verifying_upstream_never_reuses_an_unverified_connection(pki, ports):
    """Upstream a does not verify; upstream b verifies with a CA that did not
    sign the origin's certificate: b fails with 502 even while a's
    connection to the same host:port is pooled."""
    o = tls_origin(pki)
    lax = 'tls = true; tls_verify = false;'
    strict = 'tls = true; ca_file = "%s"; sni = "origin.test";' % pki["other_ca"]
    g = gh.Gatehouse(two_upstreams(ports[0], o.port, lax, strict)).start([ports[0]])
    try:
        st, _, _ = gh.http_get(ports[0], "/echo", "a.test")
        assert st == 200
        for _ in range(2):
            st, _, _ = gh.http_get(ports[0], "/echo", "b.test")
            assert st == 502
        assert len(o.requests) == 1
        st, _, _ = gh.http_get(ports[0], "/echo", "a.test")
        assert st == 200 and len(o.requests) == 2
        g.check_clean()
    finally:
        g.stop()
        o.stop()


def test_tls_upstreams_with_other_sni_do_not_share(pki, ports):
    o = tls_origin(pki)
    a = 'tls = true; tls_verify = false; sni = "one.test";'
    b = 'tls = true; tls_verify = false; sni = "two.test";'
    g = gh.Gatehouse(two_upstreams(ports[0], o.port, a, b)).start([ports[0]])
    try:
        assert gh.http_get(ports[0], "/echo", "a.test")[0] == 200
        assert gh.http_get(ports[0], "/echo", "b.test")[0] == 200
        assert o.sni_names == ["one.test", "two.test"]
        # each still reuses its own pooled connection
        assert gh.http_get(ports[0], "/echo", "a.test")[0] == 200
        assert gh.http_get(ports[0], "/echo", "b.test")[0] == 200
        assert o.sni_names == ["one.test", "two.test"] and o.connections == 2
        g.check_clean()
    finally:
        g.stop()
        o.stop()


def test_verified_connection_not_reused_after_ca_file_changes(pki, ports, tmp_path):
    """A reload that changes the CA file's bytes (same path) flushes the idle
    pool; a request in flight across the reload must not put its connection,
    verified under the old CA, back for the new configuration's requests."""
    o = tls_origin(pki)
    ca = str(tmp_path / "ca.pem")
    with open(pki["ca"]) as f, open(ca, "w") as t:
        t.write(f.read())
    up = 'tls = true; ca_file = "%s"; sni = "origin.test";' % ca
    g = gh.Gatehouse(two_upstreams(ports[0], o.port, up, up)).start([ports[0]])
    try:
        assert gh.http_get(ports[0], "/echo", "a.test")[0] == 200
        assert gh.http_get(ports[0], "/echo", "b.test")[0] == 200
        assert o.connections == 1   # same settings: shared
        slow = []
        t = threading.Thread(target=lambda: slow.append(gh.http_get(ports[0], "/slow/1.5", "a.test")[0]))
        t.start()
        deadline = time.time() + 5
        while not any(r.target == "/slow/1.5" for r in o.requests) and time.time() < deadline:
            time.sleep(0.02)
        with open(pki["other_ca"]) as f, open(ca, "w") as t2:
            t2.write(f.read())
        g.reload()
        t.join(10)
        assert slow == [200]
        assert gh.http_get(ports[0], "/echo", "a.test")[0] == 502
        g.check_clean()
    finally:
        g.stop()
        o.stop()


def test_verifying_upstream_without_sni_checks_the_server_address(pki, ports):
    """tls_verify without sni used to check the chain only: any certificate
    the CA signed passed.  Now the certificate must name the server's
    configured address: a DNS name, or an IP literal (its IP addresses)."""
    o = tls_origin(pki)
    up = 'tls = true; ca_file = "%s";' % pki["ca"]
    text = ('@GLOBAL@ dns: { hosts_file = "@DIR@/hosts"; }; };\n' +
            two_upstreams(ports[0], o.port, up, up, b_host="origin.test"))
    g = gh.Gatehouse(text, extra_files={"hosts": gh.hosts_file(["origin.test"])}).start([ports[0]])
    try:
        # the origin's certificate names origin.test, not 127.0.0.1
        assert gh.http_get(ports[0], "/echo", "a.test")[0] == 502
        assert gh.http_get(ports[0], "/echo", "b.test")[0] == 200
        assert len(o.requests) == 1
        assert "certificate verification failed" in g.stderr()
        g.check_clean()
    finally:
        g.stop()
        o.stop()


def test_pool_keeps_at_most_keepalive_idle_connections(ports):
    """reverse.upstreams.keepalive bounds the idle connections kept per
    worker: after 6 concurrent requests, 2 stay pooled and 4 are closed."""
    o = gh.KillableOrigin()
    g = gh.Gatehouse(conf(gh.free_port(), ports[1], o.port, up_extra="keepalive = 2;"))
    g.start([ports[1]])

    def wave():
        res = []
        ts = [threading.Thread(target=lambda: res.append(gh.http_get(ports[1], "/slow/0.5", "app.test")[0]))
              for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        return res
    try:
        assert wave() == [200] * 6
        assert o.connections == 6
        deadline = time.time() + 5
        while len(o.conns) > 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(o.conns) == 2, "idle upstream connections kept: %d" % len(o.conns)
        assert wave() == [200] * 6
        assert o.connections == 10   # 2 reused, 4 new
        g.check_clean()
    finally:
        g.stop()
        o.stop()
