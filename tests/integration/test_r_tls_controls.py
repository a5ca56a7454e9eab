"""The TLS controls auditors ask for on the reverse side: reverse.tls (minimum
version, TLS 1.2 ciphers, TLS 1.3 suites, groups) checked with sslscan and
openssl s_client; HSTS per site (only over TLS); client certificates per site
(required: a TLS alert; optional: a 403 page) chosen by SNI on a listener
shared with other sites, the verified subject and fingerprint passed upstream
in headers the client cannot forge."""
import hashlib
import json
import os
import shutil
import ssl
import subprocess

import pytest

import gh


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    partners = str(tmp_path_factory.mktemp("partners"))
    other = str(tmp_path_factory.mktemp("other"))
    return {
        "ca": os.path.join(d, "ca.pem"),
        "site": gh.make_cert(d, "site", ["www.test", "req.test", "opt.test"]),
        "partner_ca": gh.make_ca(partners)[0],
        "alice": gh.make_cert(partners, "alice", ["alice.partner"]),
        # a certificate from a CA the sites do not trust
        "mallory": gh.make_cert(other, "mallory", ["mallory.partner"]),
    }


def conf(port, pport, origin_port, pki, tls="", lport=None):
    extra = ("""{ address = "127.0.0.1:%d"; tls = true;
                  tls_policy = { min_version = "1.3"; ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"; }; },
                """ % lport) if lport else ""
    return """
reverse: {
  listeners = ( %s{ address = "127.0.0.1:%d"; tls = true; }, { address = "127.0.0.1:%d"; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  %s
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = (
    { hosts = [ "www.test" ]; hsts = "max-age=31536000; includeSubDomains";
      routes = ( { path = "/"; upstream = "o"; } ); },
    { hosts = [ "req.test" ]; client_ca = "%s"; client_verify = "required";
      routes = ( { path = "/"; upstream = "o"; } ); },
    { hosts = [ "opt.test" ]; client_ca = "%s"; client_verify = "optional";
      routes = ( { path = "/"; upstream = "o"; } ); }
  );
};
""" % (extra, port, pport, pki["site"][0], pki["site"][1], tls, origin_port, pki["partner_ca"],
       pki["partner_ca"])


POLICY = """tls: { min_version = "1.2"; ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
         ciphersuites = "TLS_AES_256_GCM_SHA384"; groups = "P-256"; };"""


@pytest.fixture(scope="module")
def env(pki):
    origin = gh.Origin()
    port, pport, lport = gh.free_port(), gh.free_port(), gh.free_port()
    g = gh.Gatehouse(conf(port, pport, origin.port, pki, POLICY, lport)).start([port, pport, lport])
    g.port, g.pport, g.lport = port, pport, lport
    yield g, origin
    g.check_clean()
    origin.stop()


# Every test runs over HTTP/1.1 and over HTTP/2 (TLS listeners offer h2 by
# default): the gate and the headers are per request, whatever the protocol.
PROTO = ["--http1.1"]


@pytest.fixture(autouse=True, params=["--http1.1", "--http2"])
def proto(request):
    PROTO[0] = request.param
    return request.param


def https(g, pki, host, path, *args):
    return gh.curl(PROTO[0], "--cacert", pki["ca"], "--resolve", "%s:%d:127.0.0.1" % (host, g.port),
                   "-D", "-", *args, "https://%s:%d%s" % (host, g.port, path))


def status(out):
    """The status code of a curl -D - answer, HTTP/1.1 or HTTP/2."""
    line = out.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") else None


def s_client(port, *args):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "www.test", *args], input=b"", capture_output=True, timeout=15)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def test_sslscan_shows_only_the_configured_versions_and_ciphers(env):
    g, _ = env
    assert shutil.which("sslscan"), "sslscan is required (tests/deps.sh)"
    p = subprocess.run(["sslscan", "--no-colour", "--sni-name=www.test", "127.0.0.1:%d" % g.port],
                       capture_output=True, text=True, timeout=120)
    out = p.stdout
    accepted = [l.split() for l in out.splitlines() if l.startswith(("Preferred", "Accepted"))]
    assert sorted((a[1], a[4]) for a in accepted) == [
        ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"), ("TLSv1.3", "TLS_AES_256_GCM_SHA384")], out
    for v in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert "%s     disabled" % v in out or "%s   disabled" % v in out, out
    # groups: only P-256 (secp256r1) is offered
    groups = [l for l in out.splitlines() if "bits" in l and ("secp" in l or "x25519" in l or "x448" in l)]
    assert groups and all("secp256r1" in l for l in groups), out


def test_openssl_refuses_what_the_policy_leaves_out(env):
    g, _ = env
    rc, out = s_client(g.port, "-tls1_1")
    assert rc != 0
    rc, out = s_client(g.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert rc != 0 and "handshake failure" in out, out
    rc, out = s_client(g.port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    assert rc != 0, out
    rc, out = s_client(g.port, "-tls1_3", "-groups", "X25519")
    assert rc != 0, out
    rc, out = s_client(g.port, "-tls1_3")
    assert rc == 0 and "TLS_AES_256_GCM_SHA384" in out, out


def test_listener_policy_overrides_the_global_one(env):
    g, _ = env
    rc, out = s_client(g.lport, "-tls1_2")
    assert rc != 0, out                        # min_version 1.3 there
    rc, out = s_client(g.lport, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384")
    assert rc != 0, out                        # the global suite is not the listener's
    rc, out = s_client(g.lport, "-tls1_3", "-groups", "X25519")
    assert rc != 0, out                        # groups: the global P-256, inherited
    rc, out = s_client(g.lport, "-tls1_3")
    assert rc == 0 and "TLS_CHACHA20_POLY1305_SHA256" in out, out
    rc, out = s_client(g.port, "-tls1_2")      # the other listener keeps the global policy
    assert rc == 0 and "ECDHE-ECDSA-AES256-GCM-SHA384" in out, out


def test_hsts_only_over_tls(env, pki):
    g, _ = env
    rc, out, err = https(g, pki, "www.test", "/echo", "-o", "/dev/null")
    assert rc == 0, err
    assert b"strict-transport-security: max-age=31536000; includesubdomains" in out.lower(), out
    rc, out, err = gh.curl("-D", "-", "-o", "/dev/null", "-H", "Host: www.test",
                           "http://127.0.0.1:%d/echo" % g.pport)
    assert rc == 0 and out.startswith(b"HTTP/1.1 200") and b"strict-transport" not in out.lower(), out


def echoed_headers(out):
    body = out.split(b"\r\n\r\n", 1)[1]
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def fingerprint(cert):
    der = ssl.PEM_cert_to_DER_cert(open(cert).read())
    return hashlib.sha256(der).hexdigest()


FORGED = ("-H", "X-Client-Cert-Subject: CN=admin", "-H", "X-Client-Cert-Fingerprint: 00")


@pytest.mark.parametrize("host", ["req.test", "opt.test"])
def test_client_cert_verified_and_passed_upstream(env, pki, host):
    g, _ = env
    rc, out, err = https(g, pki, host, "/echo", "--cert", pki["alice"][0], "--key", pki["alice"][1], *FORGED)
    assert rc == 0 and status(out) == 200, err
    h = echoed_headers(out)
    assert h["x-client-cert-subject"] == "CN=alice.partner"
    assert h["x-client-cert-fingerprint"] == fingerprint(pki["alice"][0])


def test_required_site_ends_the_handshake_without_a_good_cert(env, pki):
    g, _ = env
    rc, out, err = https(g, pki, "req.test", "/echo")
    assert rc in (35, 55, 56), (rc, err)    # a TLS alert: no HTTP answer at all (55: h2 sent its preface first)
    assert b"HTTP/" not in out
    rc, out, err = https(g, pki, "req.test", "/echo", "--cert", pki["mallory"][0], "--key", pki["mallory"][1])
    assert rc in (35, 55, 56) and b"HTTP/" not in out, (rc, err)


def test_optional_site_answers_403_without_a_good_cert(env, pki, ):
    g, origin = env
    n = len(origin.requests)
    rc, out, err = https(g, pki, "opt.test", "/echo", *FORGED)
    assert rc == 0 and status(out) == 403, out
    rc, out, err = https(g, pki, "opt.test", "/echo", "--cert", pki["mallory"][0], "--key", pki["mallory"][1])
    assert rc == 0 and status(out) == 403, out
    assert len(origin.requests) == n          # nothing reached the origin


def test_other_sites_on_the_listener_ask_no_certificate_and_forged_headers_go(env, pki):
    g, _ = env
    rc, out, err = https(g, pki, "www.test", "/echo", *FORGED)
    assert rc == 0 and status(out) == 200, err
    h = echoed_headers(out)
    assert "x-client-cert-subject" not in h and "x-client-cert-fingerprint" not in h
    rc, out = s_client(g.port, "-tls1_3")
    assert "Acceptable client certificate CA names" not in out, out
    # over plain HTTP a client_ca site is never served
    rc, out, err = gh.curl("-D", "-", "-H", "Host: opt.test", "http://127.0.0.1:%d/echo" % g.pport)
    assert out.startswith(b"HTTP/1.1 403"), out


def test_host_header_cannot_borrow_another_sites_handshake(env, pki):
    """SNI www.test (no certificate asked), then Host: opt.test: 403, even
    with a certificate the partner CA signed (it was never asked for)."""
    g, _ = env
    rc, out, err = gh.curl(PROTO[0], "--cacert", pki["ca"], "--resolve", "www.test:%d:127.0.0.1" % g.port,
                           "-D", "-", "-H", "Host: opt.test", "--cert", pki["alice"][0], "--key", pki["alice"][1],
                           "https://www.test:%d/echo" % g.port)
    assert rc == 0 and status(out) == 403, out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_session_from_another_site_is_not_resumed_on_a_client_cert_site(env, pki, tmp_path, version):
    g, _ = env
    sess = str(tmp_path / "s.pem")
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % g.port, version, "-ign_eof"]
    p = subprocess.run(args + ["-servername", "www.test", "-sess_out", sess],
                       input=b"GET / HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=15)
    assert os.path.getsize(sess) > 0, p.stdout
    p = subprocess.run(args + ["-servername", "req.test", "-sess_in", sess],
                       input=b"GET /echo HTTP/1.1\r\nHost: req.test\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=15)
    out = p.stdout.decode(errors="replace")
    assert "Reused" not in out and "HTTP/1.1 200" not in out, out


BAD = [
    ('tls: { min_version = "1.1"; };', 'reverse.tls.min_version: TLS 1.1 is not offered (deprecated by RFC 8996); use "1.2" or "1.3"'),
    ('tls: { min_version = "2"; };', 'reverse.tls.min_version: must be "1.2" or "1.3"'),
    ('tls: { ciphers = "NOPE-CIPHER"; };', 'reverse.tls.ciphers: "NOPE-CIPHER" is not a TLS 1.2 cipher or cipher class OpenSSL knows'),
    # OpenSSL alone would take the list and drop the typo
    ('tls: { ciphers = "ECDHE+AESGCM:!aNULL:ECDHE-RSA-AES128-GCM-SHA265"; };', 'reverse.tls.ciphers: "ECDHE-RSA-AES128-GCM-SHA265" is not a TLS 1.2 cipher or cipher class OpenSSL knows'),
    ('tls: { ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_FOO"; };', 'reverse.tls.ciphersuites: "TLS_FOO" is not a TLS 1.3 suite OpenSSL knows (such as "TLS_AES_256_GCM_SHA384")'),
    ('tls: { groups = "X25519:P-999"; };', 'reverse.tls.groups: "X25519:P-999" is not a list of groups OpenSSL knows (such as "X25519:P-256")'),
    ('tls: { min_versions = "1.2"; };', 'reverse.tls.min_versions: unknown key'),
]


@pytest.mark.parametrize("text,err", BAD, ids=[b[0] for b in BAD])
def test_bad_policy_is_a_file_line_error_at_check(pki, tmp_path, text, err):
    path = tmp_path / "g.conf"
    path.write_text(conf(gh.free_port(), gh.free_port(), 1, pki, text))
    p = subprocess.run([gh.BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["%s:5: %s" % (path, err)], p.stderr


def test_listener_policy_errors_at_check(pki, tmp_path):
    path = tmp_path / "g.conf"
    text = """reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls_policy = { min_version = "1.3"; }; },
                { address = "127.0.0.1:%d"; tls = true; tls_policy = { groups = "P-999"; size = 1; }; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
};
""" % (gh.free_port(), gh.free_port(), pki["site"][0], pki["site"][1])
    path.write_text(text)
    p = subprocess.run([gh.BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "%s:2: reverse.listeners.[0].tls_policy: only applies to a TLS listener (tls = true)" % path,
        "%s:3: reverse.listeners.[1].tls_policy.size: unknown key" % path,
        '%s:3: reverse.listeners.[1].tls_policy.groups: "P-999" is not a list of groups OpenSSL knows '
        '(such as "X25519:P-256")' % path], p.stderr


def test_client_ca_errors_at_check(pki, tmp_path):
    path = tmp_path / "g.conf"
    bad_ca = tmp_path / "empty.pem"
    bad_ca.write_text("")
    text = conf(gh.free_port(), gh.free_port(), 1, pki).replace(pki["partner_ca"], str(bad_ca), 1)
    path.write_text(text)
    p = subprocess.run([gh.BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.startswith("%s:10: reverse.sites.client_ca: %s: no CA certificate could be read" %
                               (path, bad_ca)), p.stderr
