"""ICAP on inspected HTTPS (issues 16 and 19 together): inside an inspected
CONNECT every request is a forward request with its https:// URL, so its
response goes to the RESPMOD service and its upload to the REQMOD one, as on
plain HTTP.  Real peers: c-icap's virus_scan backed by clamd (the EICAR
signature written by the test), a TLS origin with a test CA, curl trusting
the Gatehouse CA."""
import os
import ssl
import subprocess

import pytest

import gh
import icap_peers

CLEAN = bytes((i * 13 + (i >> 7)) % 251 for i in range(200 * 1024))

CONF = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(oport)d ];
  icap = (
    { name = "av"; uri = "icap://127.0.0.1:%(icap)d/virus_scan"; method = "respmod"; },
    { name = "av_up"; uri = "icap://127.0.0.1:%(icap)d/virus_scan"; method = "reqmod"; }
  );
  icap_default = [ "av" ];
  policy = (
    { name = "uploads"; action = "allow"; urls = [ "/up" ]; icap = [ "av_up" ]; },
    { name = "all"; action = "allow"; }
  );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    peers = icap_peers.IcapPeers().start()
    origin = g = None
    try:
        d = str(tmp_path_factory.mktemp("inspect-icap"))
        ca, _ = gh.make_ca(d)
        crt, key = gh.make_cert(d, "origin.test", ["origin.test"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        origin = gh.CacheOrigin(tls=ctx)
        origin.script("/eicar.com", headers=[("Content-Type", "application/octet-stream")], body=icap_peers.EICAR)
        origin.script("/clean.bin", headers=[("Content-Type", "application/octet-stream")], body=CLEAN)
        origin.script("/up", body=b"stored\n")
        port = gh.free_port()
        g = gh.Gatehouse(CONF % {"port": port, "oport": origin.port, "icap": peers.port, "ca": ca},
                         extra_files={"hosts": gh.hosts_file(["origin.test"])})
        g.start([port])
        gwca = os.path.join(g.dir, "gatehouse-ca.pem")
        rc, pem, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt" % port)
        assert rc == 0 and b"BEGIN CERTIFICATE" in pem, err
        with open(gwca, "wb") as f:
            f.write(pem)
        yield g, port, origin, gwca
    finally:
        try:
            if origin is not None:
                origin.stop()
            if g is not None:
                g.check_clean()
        finally:
            peers.stop()


def https(env, path, *args):
    g, port, origin, gwca = env
    out = subprocess.run(["curl", "-sS", "--http1.1", "--suppress-connect-headers", "-x", "http://127.0.0.1:%d" % port,
                          "--cacert", gwca, "-o", "-", "-w", "\n%{http_code}", *args,
                          "https://origin.test:%d%s" % (origin.port, path)],
                         capture_output=True, timeout=60)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body, out.stderr


def test_eicar_over_inspected_https_gets_the_scanners_page(env):
    code, body, err = https(env, "/eicar.com")
    assert code == 403, (body[:300], err)
    assert b"VIRUS FOUND" in body and icap_peers.EICAR not in body
    line = gh.access_line_for(env[0], "https://origin.test:%d/eicar.com" % env[2].port)
    assert line is not None and "ICAP av: eicar.com.UNOFFICIAL" in line, line


def test_clean_download_over_inspected_https_is_byte_identical(env):
    for _ in range(2):
        code, body, err = https(env, "/clean.bin")
        assert code == 200 and body == CLEAN, (code, len(body), err)


def test_eicar_upload_over_inspected_https_never_reaches_the_origin(env):
    origin = env[2]
    n = len([r for r in origin.requests if r.target == "/up"])
    code, body, err = https(env, "/up", "--data-binary", icap_peers.EICAR)
    assert code == 403 and b"VIRUS FOUND" in body, (code, body[:300], err)
    assert len([r for r in origin.requests if r.target == "/up"]) == n
    code, body, err = https(env, "/up", "--data-binary", b"a clean upload\n")
    assert code == 200 and body == b"stored\n", (code, body, err)
    ups = [r for r in origin.requests if r.target == "/up"]
    assert len(ups) == n + 1 and ups[-1].body == b"a clean upload\n"
