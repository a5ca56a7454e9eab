"""forward.parent (issue 14): plain requests and CONNECT chained to a parent
proxy (a second gatehouse with auth): absolute-form target, Basic
Proxy-Authorization, the target name resolved by the parent only, the
parent's address trusted (not checked against deny_destinations), the
client's target still checked, bypass_domains going direct, failover from
a dead parent with passive health, a parent's 403/407 to CONNECT as 502."""
import json
import subprocess
import time

import pytest

import gh

PARENT_ADDR = "127.0.0.9"


def parent_conf(port, cports="443"):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "%s:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %s ];
  auth: { realm = "Parent"; users_file = "@DIR@/users"; };
  policy = ( { name = "login"; action = "auth"; },
             { name = "parent-says-no"; action = "deny"; domains = [ "denied-by-parent.test" ]; },
             { name = "rest"; action = "allow"; } );
};
""" % (PARENT_ADDR, port, cports)


def child_conf(port, pport, auth='auth = "child:s3cret";', cports="443", fail_timeout=1):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16", "%s/32" ];
  connect_ports = [ %s ];
  policy = ( { name = "all"; action = "allow"; } );
  parent: { address = "%s:%d"; %s bypass_domains = [ ".direct.test" ]; fail_timeout = %s; };
};
""" % (port, PARENT_ADDR, cports, PARENT_ADDR, pport, auth, fail_timeout)


def start_pair(ports, auth='auth = "child:s3cret";', cports="443", dead=None, fail_timeout=1):
    """A parent and a child; with dead, the child lists a dead parent first."""
    parent = gh.Gatehouse(parent_conf(ports[1], cports), extra_files={
        "users": "child:%s\n" % gh.crypt_hash("s3cret", "$6$"),
        "hosts": gh.hosts_file(["only-parent.test", "denied-by-parent.test"])})
    parent.start()
    assert gh.wait_port(ports[1], host=PARENT_ADDR)
    text = child_conf(ports[0], ports[1], auth, cports, fail_timeout)
    if dead is not None:
        text = text.replace('address = "%s:%d";' % (PARENT_ADDR, ports[1]),
                            'address = [ "%s:%d", "%s:%d" ];' % (PARENT_ADDR, dead, PARENT_ADDR, ports[1]))
    child = gh.Gatehouse(text, extra_files={
        "hosts": gh.hosts_file(["www.direct.test"])}).start([ports[0]])
    return parent, child


def get(port, url):
    rc, out, err = gh.curl("-i", "-x", "http://127.0.0.1:%d" % port, url)
    head, _, body = out.partition(b"\r\n\r\n")
    st = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return st, body


def test_plain_get_through_parent(netns, origin, ports):
    parent, child = start_pair(ports)
    try:
        # only the parent can resolve this name: the child must not try
        st, body = get(ports[0], "http://only-parent.test:%d/echo?x=1" % origin.port)
        assert st == 200, body
        req = json.loads(body)
        hdrs = {k.lower(): v for k, v in req["headers"]}
        assert req["target"] == "/echo?x=1"
        assert hdrs["host"] == "only-parent.test:%d" % origin.port
        assert "proxy-authorization" not in hdrs
        pl = gh.access_line_for(parent, "only-parent.test")
        assert "child" in pl and "verdict=allow" in pl, pl
        cl = gh.access_line_for(child, "only-parent.test")
        assert "verdict=allow" in cl, cl
        # a denied literal target is refused by the child, never sent
        st, body = get(ports[0], "http://169.254.1.1/")
        assert st == 403
        assert not any("169.254.1.1" in l for l in parent.access_lines())
        # bypass_domains go direct (the child resolves them; the parent does not see them)
        st, body = get(ports[0], "http://www.direct.test:%d/echo" % origin.port)
        assert st == 200
        assert not any("www.direct.test" in l for l in parent.access_lines())
    finally:
        child.check_clean()
        parent.check_clean()


def test_parent_rejects_bad_auth(netns, origin, ports):
    # the parent's 407 is the gateway's failure: the client must not see a
    # challenge (its browser would ask the user for the parent's password)
    parent, child = start_pair(ports, auth='auth = "child:wrong";')
    try:
        rc, out, err = gh.curl("-i", "-x", "http://127.0.0.1:%d" % ports[0],
                               "http://only-parent.test:%d/echo" % origin.port)
        assert b" 502 " in out.split(b"\r\n")[0], out
        assert b"proxy-authenticate" not in out.lower()
        cl = gh.access_line_for(child, "only-parent.test")
        assert "parent proxy answered 407" in cl, cl
        assert origin.requests == []
    finally:
        child.check_clean()
        parent.check_clean()


def test_failover_to_live_parent(netns, origin, ports):
    dead = gh.free_port()
    parent, child = start_pair(ports, dead=dead, fail_timeout=4)
    try:
        for i in range(3):
            st, body = get(ports[0], "http://only-parent.test:%d/echo?n=%d" % (origin.port, i))
            assert st == 200, body
        assert len(origin.requests) == 3
        # the dead parent was reported once and then skipped (passive health)
        warns = [l for l in child.stderr().splitlines() if "cannot be reached" in l]
        assert len(warns) == 1, child.stderr()
        assert "%s:%d" % (PARENT_ADDR, dead) in warns[0]
        # after fail_timeout it is tried again (logged), fails again, and is reported again
        time.sleep(4.3)
        st, body = get(ports[0], "http://only-parent.test:%d/echo?n=again" % origin.port)
        assert st == 200, body
        err = child.stderr()
        assert "parent proxy %s:%d: tried again after 4 s" % (PARENT_ADDR, dead) in err, err
        assert len([l for l in err.splitlines() if "cannot be reached" in l]) == 2
    finally:
        child.check_clean()
        parent.check_clean()


def test_all_parents_dead_502(netns, origin, ports):
    text = child_conf(ports[0], gh.free_port())
    child = gh.Gatehouse(text).start([ports[0]])
    try:
        st, body = get(ports[0], "http://only-parent.test:%d/echo" % origin.port)
        assert st in (502, 503), body
    finally:
        child.check_clean()


def tunnel_get(port, url):
    rc, out, err = gh.curl("-i", "-p", "-x", "http://127.0.0.1:%d" % port, url)
    return rc, out, err


def test_connect_through_parent(netns, origin, ports):
    parent, child = start_pair(ports, cports=str(origin.port))
    try:
        rc, out, err = tunnel_get(ports[0], "http://only-parent.test:%d/echo?t=1" % origin.port)
        assert rc == 0, err
        assert b"200 Connection established" in out
        body = out.split(b"\r\n\r\n")[-1]
        req = json.loads(body)
        assert req["target"] == "/echo?t=1"
        pl = gh.access_line_for(parent, "only-parent.test")
        assert "CONNECT" in pl and "child" in pl, pl
        # the parent refuses (403 by its policy): the client gets 502 naming it
        rc, out, err = tunnel_get(ports[0], "http://denied-by-parent.test:%d/" % origin.port)
        assert b" 502 " in out.split(b"\r\n")[0], out
        cl = gh.access_line_for(child, "denied-by-parent.test")
        assert "parent proxy refused CONNECT: HTTP/1.1 403" in cl, cl
        assert len(origin.requests) == 1
    finally:
        child.check_clean()
        parent.check_clean()


def test_connect_parent_407_is_502(netns, origin, ports):
    parent, child = start_pair(ports, auth='auth = "child:wrong";', cports=str(origin.port))
    try:
        rc, out, err = tunnel_get(ports[0], "http://only-parent.test:%d/echo" % origin.port)
        first = out.split(b"\r\n")[0]
        assert b" 502 " in first, out
        assert b"proxy-authenticate" not in out.lower()   # never the parent's challenge
        cl = gh.access_line_for(child, "only-parent.test")
        assert "parent proxy refused CONNECT: HTTP/1.1 407" in cl, cl
        assert origin.requests == []
    finally:
        child.check_clean()
        parent.check_clean()


def test_connect_failover(netns, origin, ports):
    parent, child = start_pair(ports, cports=str(origin.port), dead=gh.free_port())
    try:
        rc, out, err = tunnel_get(ports[0], "http://only-parent.test:%d/echo" % origin.port)
        assert rc == 0 and b"200 Connection established" in out, (out, err)
        assert len(origin.requests) == 1
    finally:
        child.check_clean()
        parent.check_clean()


def test_parent_is_own_listener_refused(netns, origin, ports):
    # a parent pointing back at ourselves would loop: refused, not followed
    text = child_conf(ports[0], ports[0]).replace('address = "%s:' % PARENT_ADDR, 'address = "127.0.0.1:')
    child = gh.Gatehouse(text).start([ports[0]])
    try:
        st, body = get(ports[0], "http://only-parent.test:%d/echo" % origin.port)
        assert st == 403
        assert 'rule="own_listener"' in gh.access_line_for(child, "only-parent.test")
    finally:
        child.check_clean()


@pytest.mark.parametrize("parent,msg", [
    ('address = "no-port.example";', "forward.parent.address"),
    ('address = [ ];', "forward.parent.address: must name at least one proxy"),
    ('address = "p.example:8080"; auth = "nocolon";', 'forward.parent.auth: must be "user:password"'),
    ('address = "p.example:8080"; fail_timeout = -1;', "forward.parent.fail_timeout"),
    ('auth = "a:b";', "forward.parent.address: required key is missing"),
    ('address = "p.example:8080"; via = "x";', "forward.parent.via: unknown key"),
])
def test_parent_config_errors(netns, ports, parent, msg):
    g = gh.Gatehouse("""
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  policy = ( { name = "all"; action = "allow"; } );
  parent: { %s };
};
""" % (ports[0], parent))
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    out = p.stderr + p.stdout
    assert p.returncode != 0
    assert "gatehouse.conf:" in out and msg in out, out


def test_connect_scripted_parent(netns, ports):
    """A minimal parent: 'HTTP/1.0 200' without a reason phrase, with the
    target's first bytes in the same segment; the CONNECT line, Host and
    Proxy-Authorization it receives are checked."""
    def script(sock, n):
        if n == 0:
            return b"HTTP/1.0 200\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        return b""
    sp = gh.ScriptOrigin(script)
    text = child_conf(ports[0], sp.port, cports="4443").replace(
        'address = "%s:%d"' % (PARENT_ADDR, sp.port), 'address = "127.0.0.1:%d"' % sp.port)
    child = gh.Gatehouse(text).start([ports[0]])
    try:
        rc, out, err = tunnel_get(ports[0], "http://target.example:4443/x")
        assert rc == 0, err
        assert out.endswith(b"hello"), out
        head = sp.heads[0].decode()
        lines = head.split("\r\n")
        assert lines[0] == "CONNECT target.example:4443 HTTP/1.1"
        assert "Host: target.example:4443" in lines
        assert "Proxy-Authorization: Basic Y2hpbGQ6czNjcmV0" in lines   # child:s3cret
    finally:
        child.check_clean()
        sp.stop()
