"""Listening sockets and other processes: Gatehouse's listeners use
SO_REUSEPORT (one socket per worker), and so may another process of the same
user (a second Gatehouse, HAProxy): the kernel would then spread connections
over both, silently.  A listener address another process holds is refused at
start and at reload (the old configuration keeps serving); the process's own
addresses may change family or TLS across a reload."""
import os
import signal
import socket
import subprocess
import time

import gh


def rev_conf(origin_port, listeners, tls_files=None):
    certs = ""
    if tls_files:
        certs = 'certificates = ( { cert = "%s"; key = "%s"; } );' % tls_files
    return """@GLOBAL@ };
reverse: {
  listeners = ( %s );
  %s
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; } ); } );
};
""" % (", ".join(listeners), certs, origin_port)


def squatter(port):
    """Another process's listening socket on port, with SO_REUSEPORT."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def test_start_refuses_an_address_another_process_listens_on(origin, ports):
    sq = squatter(ports[0])
    try:
        g = gh.Gatehouse(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0]]))
        g.start()
        try:
            rc = g.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        err = g.stderr()
        g.stop()
        assert rc not in (None, 0), err
        assert "cannot listen on 127.0.0.1:%d: another process listens there" % ports[0] in err, err
    finally:
        sq.close()
    # the same configuration starts once the address is free
    g = gh.Gatehouse(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0]]))
    g.start(wait_ports=[ports[0]])
    try:
        assert gh.curl_status("http://127.0.0.1:%d/size/2" % ports[0]) == 200
    finally:
        g.stop()


def test_reload_refuses_it_and_keeps_serving(origin, ports):
    g = gh.Gatehouse(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0]]))
    g.start(wait_ports=[ports[0]])
    sq = squatter(ports[1])
    try:
        g.reload(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0],
                                        '{ address = "127.0.0.1:%d"; }' % ports[1]]), settle=1.0)
        err = g.stderr()
        assert "cannot listen on 127.0.0.1:%d: another process listens there" % ports[1] in err, err
        assert "reload failed" in err, err
        assert gh.curl_status("http://127.0.0.1:%d/size/2" % ports[0]) == 200
        # nothing of ours was left on the squatter's port: all its
        # connections still reach it
        for _ in range(8):
            c = socket.create_connection(("127.0.0.1", ports[1]), timeout=2)
            a, _ = sq.accept()
            a.close()
            c.close()
    finally:
        sq.close()
        rc = g.stop()
    assert rc == 0, g.stderr()


def test_reload_may_turn_its_own_listener_to_tls(origin, ports, tmp_path):
    """Our own sockets on the address are not "another process"."""
    crt, key = str(tmp_path / "c.pem"), str(tmp_path / "c.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=a.test"],
                   check=True, capture_output=True)
    g = gh.Gatehouse(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0]], (crt, key)))
    g.start(wait_ports=[ports[0]])
    try:
        assert gh.curl_status("http://127.0.0.1:%d/size/2" % ports[0]) == 200
        g.reload(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; tls = true; }' % ports[0]], (crt, key)),
                 settle=1.0)
        assert "reload failed" not in g.stderr(), g.stderr()
        deadline = time.time() + 5
        st = None
        while time.time() < deadline and st != 200:
            st = gh.curl_status("-k", "https://127.0.0.1:%d/size/2" % ports[0])
        assert st == 200, g.stderr()
    finally:
        g.stop()


def test_reload_from_any_address_to_one_on_the_same_port(netns, origin, ports):
    """Our own socket on 0.0.0.0:P conflicts with a probe of 127.0.0.1:P:
    a port this process listens on is not probed (inside a namespace with
    only lo, where 0.0.0.0 reaches nothing else)."""
    g = gh.Gatehouse(rev_conf(origin.port, ['{ address = "0.0.0.0:%d"; }' % ports[0]]))
    g.start(wait_ports=[ports[0]])
    try:
        assert gh.curl_status("http://127.0.0.1:%d/size/2" % ports[0]) == 200
        g.reload(rev_conf(origin.port, ['{ address = "127.0.0.1:%d"; }' % ports[0]]), settle=1.0)
        assert "reload failed" not in g.stderr(), g.stderr()
        assert gh.curl_status("http://127.0.0.1:%d/size/2" % ports[0]) == 200
    finally:
        rc = g.stop()
    assert rc == 0, g.stderr()
