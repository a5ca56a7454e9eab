"""ICAP server addresses by name (issue 19): a service's uri may name its
server; the name is resolved by the worker's resolver (core/dns.c, with
global.dns: hosts_file, servers, its cache) when a connection is opened,
like an upstream's.  A name that does not resolve is an ICAP failure of
that exchange, handled per bypass_on_error (502 page, or passed unscanned),
and logged as "cannot resolve NAME".  Real c-icap echo behind the name."""
import os
import time

import pytest

import gh
import icap_peers

BODY = bytes((i * 3 + (i >> 6)) % 247 for i in range(120 * 1024))


def conf(port, icap_port):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; servers = [ "127.0.0.1:9" ]; timeout = 0.3; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(P)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = (
    { name = "named"; uri = "icap://icap-a.test:%(I)d/echo"; },
    { name = "nx_closed"; uri = "icap://nx.test:%(I)d/echo"; timeout = 10; },
    { name = "nx_open"; uri = "icap://nx.test:%(I)d/echo"; bypass_on_error = true; timeout = 10; }
  );
  policy = (
    { name = "named"; action = "allow"; urls = [ "/named/" ]; icap = [ "named" ]; },
    { name = "closed"; action = "allow"; urls = [ "/nx-closed/" ]; icap = [ "nx_closed" ]; },
    { name = "open"; action = "allow"; urls = [ "/nx-open/" ]; icap = [ "nx_open" ]; },
    { name = "all"; action = "allow"; }
  );
};
""" % dict(P=port, I=icap_port)


@pytest.fixture(scope="module")
def env():
    peers = icap_peers.IcapPeers(with_clamd=False).start()
    origin = g = None
    try:
        origin = gh.CacheOrigin()
        for pre in ("/named", "/nx-closed", "/nx-open"):
            origin.script(pre + "/f.bin", headers=[("Content-Type", "application/octet-stream")], body=BODY)
        port = gh.free_port()
        g = gh.Gatehouse(conf(port, peers.port), extra_files={"hosts": gh.hosts_file(["icap-a.test"])})
        g.start(wait_ports=[port])
        yield g, port, origin, peers
    finally:
        icap_peers.stop_all(origin, g, peers)


def get(env, path):
    return icap_peers.proxied_get(env[1], env[2].port, path)


def respmods(peers):
    with open(os.path.join(peers.dir, "access.log"), errors="replace") as f:
        return sum(" RESPMOD echo " in ln for ln in f)


def test_named_server_is_resolved_and_used(env):
    g, _, _, peers = env
    before = respmods(peers)
    for _ in range(4):   # (echo: 200 and 204 in turn)
        code, body = get(env, "/named/f.bin")
        assert code == 200 and body == BODY, (code, len(body))
    deadline = time.monotonic() + 10
    while respmods(peers) < before + 4:   # the exchanges reached c-icap behind the name
        assert time.monotonic() < deadline, respmods(peers) - before
        time.sleep(0.1)


def test_name_that_does_not_resolve_fails_per_bypass(env):
    g, _, _, _ = env
    code, body = get(env, "/nx-closed/f.bin")
    assert code == 502 and b"Content scan failed" in body and BODY not in body, (code, body[:300])
    code, body = get(env, "/nx-open/f.bin")
    assert code == 200 and body == BODY
    deadline = time.monotonic() + 10
    while "cannot resolve nx.test" not in g.stderr():
        assert time.monotonic() < deadline, g.stderr()[-2000:]
        time.sleep(0.1)
    # the proxy goes on serving the named service
    code, body = get(env, "/named/f.bin")
    assert code == 200 and body == BODY
