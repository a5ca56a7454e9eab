"""Reverse side, issue 14 (day one for an operator): passive ejection settings
(max_fails / fail_timeout) and their log lines, redirect routes keeping the
path, raw path forwarding, 431 for an over-long header line however it
arrives, and the real client behind a trusted load balancer."""
import re
import socket
import subprocess
import time

import pytest

import gh

HOST = "app.test"


def conf(port, servers, extra_up="", routes=None, site_extra="", rev_extra=""):
    srv = ", ".join('{ address = "127.0.0.1:%d"; }' % p for p in servers)
    routes = routes or '{ path = "/"; upstream = "app"; }'
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  %s
  upstreams = (
    { name = "app"; servers = ( %s ); %s }
  );
  sites = ( { hosts = [ "%s" ]; %s routes = ( %s ); } );
};
""" % (port, rev_extra, srv, extra_up, HOST, site_extra, routes)


def start(text, port):
    g = gh.Gatehouse(text).start([port])
    g.port = port
    return g


def run(g, n, path="/echo"):
    return [gh.http_get(g.port, path, HOST)[0] for _ in range(n)]


def check_t(text):
    g = gh.Gatehouse(text)
    p = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# ---- 1. passive ejection: max_fails / fail_timeout ----

@pytest.fixture
def two():
    os_ = [gh.KillableOrigin() for _ in range(2)]
    yield os_
    for o in os_:
        o.kill()


def test_passive_ejection_configured_and_both_edges_logged(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 2; fail_timeout = 2.0;"), ports[0])
    try:
        assert run(g, 4) == [200] * 4
        b.kill()
        # refused connects are retried on a; the second failure ejects b
        assert run(g, 4) == [200] * 4
        log = g.stderr()
        assert re.search(r"upstream app server 127\.0\.0\.1:%d: ejected for 2 s after 2 failures "
                         r"within 2 s" % b.port, log), log
        b.revive()
        t0 = time.monotonic()
        before = b.hits()
        assert run(g, 6) == [200] * 6
        if time.monotonic() - t0 < 1.5:             # still inside the ejection: b gets nothing
            assert b.hits() == before
        assert "back in rotation" not in g.stderr()
        time.sleep(max(0, 2.3 - (time.monotonic() - t0)))
        assert run(g, 6) == [200] * 6
        assert b.hits() > before
        log = g.stderr()
        assert re.search(r"upstream app server 127\.0\.0\.1:%d: back in rotation" % b.port, log), log
        assert log.count("back in rotation") == 1
    finally:
        g.check_clean()


def test_max_fails_zero_never_ejects(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 0;"), ports[0])
    try:
        b.kill()
        assert run(g, 12) == [200] * 12
        assert "ejected" not in g.stderr()
    finally:
        g.check_clean()


def test_failures_outside_fail_timeout_do_not_add_up(two, ports):
    a, b = two
    g = start(conf(ports[0], [a.port, b.port], "max_fails = 2; fail_timeout = 0.5;"), ports[0])
    try:
        b.kill()
        # round robin: every second request tries b first; space them wider than the window
        for _ in range(3):
            assert run(g, 2) == [200] * 2
            time.sleep(0.8)
        assert "ejected" not in g.stderr()
    finally:
        g.check_clean()


@pytest.mark.parametrize("key,msg", [
    ("max_fails = -1;", r"max_fails: must be between 0 and 1000"),
    ("max_fails = 5000;", r"max_fails: must be between 0 and 1000"),
    ("fail_timeout = 0.0;", r"fail_timeout: must be between 0\.1 and 86400"),
    ("fail_timeout = \"x\";", r"fail_timeout: expected a number"),
])
def test_passive_ejection_config_errors(ports, key, msg):
    rc, out = check_t(conf(ports[0], [ports[1]], key))
    assert rc != 0 and re.search(r"gatehouse\.conf:\d+: reverse\.upstreams\.?\[0\]\." + msg, out), out
