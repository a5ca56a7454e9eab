"""ACME (RFC 8555) certificates against a real ACME server, Debian's pebble:
issuance by HTTP-01 answered by the reverse listener, the chain trusted
through pebble's root, renewal of a short-lived certificate while a client
stays connected, a restart serving the saved certificate at once, an order
failing validation (clear error, old certificate kept), and pebble down at
start (placeholder served, retried later).

pebble rejects 25 % of good nonces here (PEBBLE_WFE_NONCEREJECT), so the
badNonce retry runs in every order.  pebble 2.4 reuses valid authorizations
half the time whatever PEBBLE_AUTHZREUSE says; Gatehouse deactivates its
authorizations once a certificate is issued, so every renewal proves its
names again."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

import gh
from test_a_console import ADMIN_PW, VIEWER_PW, Console, users_file

LIFETIME = 30          # seconds: renewal at two thirds of it


def wait_listen(port, timeout=10):
    assert gh.wait_port(port, timeout=timeout), "nothing listens on %d" % port


class Pebble:
    def __init__(self, d, http_port, tls_port, dns_port, port=None):
        self.dir, self.port, self.mport = d, port or gh.free_port(), gh.free_port()
        self.cert = os.path.join(d, "pebble-tls.pem")
        key = os.path.join(d, "pebble-tls.key")
        if not os.path.exists(self.cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", self.cert, "-days", "30", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        cfg = os.path.join(d, "pebble-%d.json" % self.port)
        with open(cfg, "w") as f:
            json.dump({"pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % self.mport,
                "certificate": self.cert, "privateKey": key,
                "httpPort": http_port, "tlsPort": tls_port,
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": LIFETIME}}, f)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0",
                   PEBBLE_WFE_NONCEREJECT="25")
        assert shutil.which("pebble"), "pebble is required (tests/deps.sh)"
        self.log = open(os.path.join(d, "pebble-%d.log" % self.port), "wb")
        self.proc = subprocess.Popen(["pebble", "-config", cfg, "-strict=false",
                                      "-dnsserver", "127.0.0.1:%d" % dns_port],
                                     stdout=self.log, stderr=self.log)
        wait_listen(self.port)
        wait_listen(self.mport)
        self.directory = "https://127.0.0.1:%d/dir" % self.port

    def root(self, path):
        """pebble's root (regenerated at each start) in a file: trusts the issued chains."""
        ctx = ssl.create_default_context(cafile=self.cert)
        with urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % self.mport, context=ctx, timeout=10) as r:
            data = r.read()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("acme"))
    assert shutil.which("pebble-challtestsrv"), "pebble-challtestsrv is required (tests/deps.sh)"
    http_port, tls_port, dns_port, dns_mgmt = gh.free_port(), gh.free_port(), gh.free_port(), gh.free_port()
    # DNS only: every name is 127.0.0.1 unless a test says otherwise
    cts_log = open(os.path.join(d, "challtestsrv.log"), "wb")
    cts = subprocess.Popen(["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                            "-dns01", "127.0.0.1:%d" % dns_port, "-http01", "", "-https01", "",
                            "-tlsalpn01", "", "-management", "127.0.0.1:%d" % dns_mgmt],
                           stdout=cts_log, stderr=cts_log)
    wait_listen(dns_mgmt)
    p = Pebble(d, http_port, tls_port, dns_port)
    env = {"dir": d, "pebble": p, "http_port": http_port, "tls_port": tls_port, "dns_port": dns_port,
           "dns_mgmt": dns_mgmt, "root": p.root(os.path.join(d, "root.pem"))}
    yield env
    p.stop()
    cts.terminate()
    cts.wait(10)
    cts_log.close()


def dns_set(env, name, addr):
    req = urllib.request.Request("http://127.0.0.1:%d/add-a" % env["dns_mgmt"], method="POST",
                                 data=json.dumps({"host": name + ".", "addresses": [addr]}).encode())
    urllib.request.urlopen(req, timeout=5).read()


def conf(env, names, directory=None, extra_certs="", admin_port=None, alpn=False):
    adm = 'admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };' % admin_port if admin_port else ""
    text = adm + """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; tls = true; } );
  acme: { directory = "%s"; email = "ops@example.com"; ca_file = "%s"; renew_before = 30.0; };
  certificates = ( { acme = [ %s ]; } %s );
  sites = ( { hosts = [ %s ]; routes = ( { path = "/"; redirect = "https://example.com/"; } ); } );
};
""" % (env["http_port"], env["tls_port"], directory or env["pebble"].directory, env["pebble"].cert,
       ", ".join('"%s"' % n for n in names), extra_certs, ", ".join('"%s"' % n for n in names))
    if alpn:   # no plain listener: only the TLS handshake can prove the name
        text = text.replace('{ address = "127.0.0.1:%d"; }, ' % env["http_port"], "")
        text = text.replace('renew_before = 30.0;', 'renew_before = 30.0; challenge = "tls-alpn-01";')
    return text


def served(env, name, timeout=10):
    """(issuer CN, serial, verified by pebble's root) of what the TLS listener serves for name."""
    ctx = ssl.create_default_context(cafile=env["root"])
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", env["tls_port"]), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            der = t.getpeercert(binary_form=True)
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-serial", "-subject"],
                       input=der, capture_output=True, check=True)
    out = p.stdout.decode()
    return out


def wait_issued(env, name, timeout=30, not_serial=None):
    deadline = time.time() + timeout
    out = ""
    while time.time() < deadline:
        out = served(env, name)
        if "Pebble Intermediate" in out and (not_serial is None or not_serial not in out):
            return out
        time.sleep(0.3)
    raise AssertionError("no certificate from pebble for %s: %s" % (name, out))


def wait_log(g, text, count=1, timeout=10):
    # the ACME thread writes the files (which the loop then serves) before it
    # logs, so the log line may trail the first handshake on a new certificate
    deadline = time.time() + timeout
    while g.stderr().count(text) < count:
        assert time.time() < deadline, g.stderr()
        time.sleep(0.1)


def serial(out):
    return [l for l in out.splitlines() if l.startswith("serial=")][0]


def https_ok(env, name):
    return gh.curl("--cacert", env["root"], "--resolve", "%s:%d:127.0.0.1" % (name, env["tls_port"]),
                   "-o", "/dev/null", "-w", "%{http_code}", "https://%s:%d/" % (name, env["tls_port"]))


def test_issue_by_http01_renew_and_restart(acme):
    env = acme
    names = ["www.acme.test", "shop.acme.test"]
    g = gh.Gatehouse(conf(env, names)).start([env["http_port"], env["tls_port"]])
    try:
        # the first handshakes may still get the placeholder (its subject says why)
        first = served(env, "www.acme.test")
        assert "Pebble" in first or "Gatehouse placeholder (ACME certificate pending)" in first, first
        out = wait_issued(env, "shop.acme.test")
        # the chain verifies against pebble's root, for each name
        for n in names:
            rc, code, err = https_ok(env, n)
            assert rc == 0 and code == b"302", err
        acme_dir = os.path.join(g.dir, "acme")
        assert sorted(os.listdir(acme_dir)) == ["account.key", "www.acme.test.crt", "www.acme.test.key"]
        assert oct(os.stat(os.path.join(acme_dir, "www.acme.test.key")).st_mode & 0o777) == "0o600"
        wait_log(g, "acme: certificate for www.acme.test,shop.acme.test installed")

        # a client connected before the renewal keeps its connection
        ctx = ssl.create_default_context(cafile=env["root"])
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env["tls_port"]), timeout=10),
                            server_hostname="www.acme.test")
        s.sendall(b"GET /a HTTP/1.1\r\nHost: www.acme.test\r\n\r\n")
        assert gh.recv_response(s).startswith(b"HTTP/1.1 302")
        renewed = wait_issued(env, "www.acme.test", timeout=LIFETIME, not_serial=serial(out))
        assert serial(renewed) != serial(out)
        s.sendall(b"GET /b HTTP/1.1\r\nHost: www.acme.test\r\n\r\n")
        assert gh.recv_response(s).startswith(b"HTTP/1.1 302")
        s.close()
        wait_log(g, "acme: certificate for www.acme.test,shop.acme.test installed", count=2)
        saved = {f: open(os.path.join(acme_dir, f), "rb").read() for f in os.listdir(acme_dir)}
    finally:
        g.check_clean()

    # a restart serves the saved certificate from its first handshake, even
    # with the ACME server unreachable
    dead = "https://127.0.0.1:%d/dir" % gh.free_port()
    g2 = gh.Gatehouse(conf(env, names, directory=dead),
                      extra_files={"acme/" + f: b for f, b in saved.items()})
    g2.start([env["http_port"], env["tls_port"]])
    try:
        out = served(env, "shop.acme.test")
        assert "Pebble Intermediate" in out and "placeholder" not in out, out
        rc, code, err = https_ok(env, "www.acme.test")
        assert rc == 0 and code == b"302", err
    finally:
        g2.check_clean()


def test_issue_by_tls_alpn01(acme):
    env = acme
    g = gh.Gatehouse(conf(env, ["alpn.acme.test"], alpn=True)).start([env["tls_port"]])
    try:
        assert not gh.wait_port(env["http_port"], timeout=0.2)
        wait_issued(env, "alpn.acme.test")
        rc, code, err = https_ok(env, "alpn.acme.test")
        assert rc == 0 and code == b"302", err
        # a hello offering acme-tls/1 with no validation under way gets the
        # ordinary certificate, and no protocol
        ctx = ssl.create_default_context(cafile=env["root"])
        ctx.set_alpn_protocols(["acme-tls/1"])
        with socket.create_connection(("127.0.0.1", env["tls_port"]), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="alpn.acme.test") as t:
                assert t.selected_alpn_protocol() is None
    finally:
        g.check_clean()


def test_reload_adds_a_certificate(acme):
    env = acme
    g = gh.Gatehouse(conf(env, ["one.acme.test"])).start([env["http_port"], env["tls_port"]])
    try:
        wait_issued(env, "one.acme.test")
        g.reload(conf(env, ["one.acme.test"], extra_certs=', { acme = [ "two.acme.test" ]; }').replace(
            'hosts = [ "one.acme.test" ]', 'hosts = [ "one.acme.test", "two.acme.test" ]'))
        assert "generation 2 loaded" in g.stderr()
        wait_issued(env, "two.acme.test")
        # one.acme.test keeps its certificate across the reload (no placeholder)
        assert "Pebble Intermediate" in served(env, "one.acme.test")
    finally:
        g.check_clean()


def test_failed_validation_keeps_the_old_certificate(acme):
    env = acme
    g = gh.Gatehouse(conf(env, ["keep.acme.test"])).start([env["http_port"], env["tls_port"]])
    try:
        wait_issued(env, "keep.acme.test")
        # from now on pebble looks for keep.acme.test where nothing listens
        dns_set(env, "keep.acme.test", "127.0.0.2")
        deadline = time.time() + LIFETIME + 10
        while "acme: order for keep.acme.test failed: validation" not in g.stderr() and time.time() < deadline:
            time.sleep(0.5)
        err = g.stderr()
        line = [l for l in err.splitlines() if "acme: order for keep.acme.test failed: validation" in l]
        assert line, err
        assert "acme: order for keep.acme.test failed: validation of keep.acme.test failed: " \
               "urn:ietf:params:acme:error:connection" in line[0], err
        assert "the current certificate stays; next try in " in line[0], err
        # the certificate served is still the last one issued
        crt = os.path.join(g.dir, "acme", "keep.acme.test.crt")
        saved = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-serial"], capture_output=True,
                               text=True, check=True).stdout.strip()
        out = served(env, "keep.acme.test")
        assert "Pebble Intermediate" in out and serial(out) == saved, (out, saved)
    finally:
        g.check_clean()
        dns_set(env, "keep.acme.test", "127.0.0.1")


def test_pebble_down_at_start_then_up_and_the_console(acme):
    """The console shows why the placeholder is served; "renew now" (admin
    only, audited) orders at once instead of waiting out the backoff."""
    env = acme
    port, aport = gh.free_port(), gh.free_port()
    directory = "https://127.0.0.1:%d/dir" % port
    g = gh.Gatehouse(conf(env, ["late.acme.test", "late2.acme.test"], directory=directory, admin_port=aport),
                     extra_files={"users": users_file()}).start([env["http_port"], env["tls_port"], aport])
    p = None
    try:
        out = served(env, "late.acme.test")
        assert "O = Gatehouse placeholder (ACME certificate pending)" in out, out
        deadline = time.time() + 10
        while "acme: order for late.acme.test,late2.acme.test failed" not in g.stderr() and time.time() < deadline:
            time.sleep(0.2)
        err = g.stderr()
        assert "acme: order for late.acme.test,late2.acme.test failed: cannot connect to 127.0.0.1:%d" % port \
            in err, err
        assert "the placeholder stays; next try in 10 s" in err
        admin, viewer = Console(aport), Console(aport)
        assert admin.login("admin", ADMIN_PW).status == 200 and viewer.login("viewer", VIEWER_PW).status == 200
        orders = admin.get("/api/v1/certificates").json["acme"]
        assert len(orders) == 1 and orders[0]["names"] == "late.acme.test, late2.acme.test"
        assert orders[0]["state"] == "failed" and "not_after" not in orders[0]
        assert orders[0]["last_error"].startswith("cannot connect to 127.0.0.1:%d" % port), orders
        assert orders[0]["next"] > time.time()

        p = Pebble(env["dir"], env["http_port"], env["tls_port"], env["dns_port"], port=port)
        root = p.root(os.path.join(env["dir"], "root2.pem"))
        assert viewer.post("/api/v1/certificates/renew", {"name": "late.acme.test"}).status == 403
        assert admin.post("/api/v1/certificates/renew", {"name": "nope.test"}).status == 404
        t0 = time.time()
        r = admin.post("/api/v1/certificates/renew", {"name": "late.acme.test"})
        assert r.status == 200, r.body
        wait_issued(dict(env, root=root), "late2.acme.test", timeout=30)
        assert time.time() - t0 < 10 or "next try in 10 s" not in err
        deadline = time.time() + 10     # served first, then the record (the proofs are given back between)
        while True:
            orders = admin.get("/api/v1/certificates").json
            o = orders["acme"][0]
            if o["state"] == "valid" or time.time() > deadline:
                break
            time.sleep(0.2)
        assert o["state"] == "valid" and o["last_error"] == "" and o["not_after"] > time.time(), o
        c = orders["certificates"][0]
        assert c["acme"] == ["late.acme.test", "late2.acme.test"] and c["names"] == ["late.acme.test", "late2.acme.test"]
        audit = admin.get("/api/v1/audit").json["audit"]
        mine = [(e["user"], e["outcome"]) for e in audit if e.get("action") == "certificate renew"]
        assert ("viewer", "denied") in mine and ("admin", "ok") in mine and ("admin", "failed") in mine, audit
    finally:
        g.check_clean()
        if p is not None:
            p.stop()


def test_acme_config_errors(tmp_path):
    path = tmp_path / "g.conf"
    path.write_text("""reverse: {
  acme: { directory = "http://acme.example/dir"; email = "nobody"; renew_before = 0; size = 1;
          challenge = "dns-01"; };
  certificates = ( { acme = [ "*.example.com", "10.0.0.1" ]; },
                   { acme = [ "a.example.com" ]; cert = "x.pem"; key = "x.key"; } );
};
""")
    p = subprocess.run([gh.BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "%s:2: reverse.acme.size: unknown key" % path,
        "%s:2: reverse.acme.directory: must be an https:// URL (the ACME server's directory)" % path,
        "%s:2: reverse.acme.email: not an e-mail address" % path,
        "%s:2: reverse.acme.renew_before: must be between 0.001 and 365" % path,
        '%s:3: reverse.acme.challenge: must be "http-01" or "tls-alpn-01"' % path,
        "%s:4: reverse.certificates.[0].acme.[0]: a wildcard needs DNS-01, which Gatehouse does not answer" % path,
        "%s:4: reverse.certificates.[0].acme.[1]: an IP address: give a DNS name" % path,
        "%s:5: reverse.certificates.[1]: give either acme or cert and key" % path,
    ], p.stderr
    path.write_text('reverse: { certificates = ( { acme = [ "a.example.com" ]; } ); };\n')
    p = subprocess.run([gh.BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    assert p.stderr.splitlines() == [
        '%s:1: reverse.certificates.[0].acme: needs reverse.acme { directory = "https://..."; }' % path], p.stderr
