"""The admin console in a real browser: Debian's headless Chromium driven by
playwright-core (tests/browser/console.test.mjs) logs in, watches the charts
move under curl load, sees the forward page's top domains, signed-in users
and DLP hits, signs in once more with JavaScript off (the plain form), uses
the policy tester, purges the cache, pages and filters the block events,
reads the parsed log tail, reloads through a confirmation, changes its
password, is used at a phone's width (420 px), shows TLS inspection (counts,
minting, cache, hosts whose clients abort the handshake, the company CA
with its PEM and DER downloads, which curl then trusts), and takes
screenshots (into tests/browser/screenshots/ with GW_UPDATE_SCREENSHOTS=1,
else into the test's temporary directory)."""
import hashlib
import json
import os
import ssl
import subprocess

import gh
import test_a_console as tc

BROWSER_DIR = os.path.join(gh.ROOT, "tests", "browser")
NEW_PW = "a changed pass phrase 2"


def ensure_node_modules():
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True,
                       capture_output=True, timeout=600)


def test_console_in_chromium(origin, ports, tmp_path):
    assert os.path.exists("/usr/bin/chromium"), "chromium missing: run tests/deps.sh test"
    ensure_node_modules()
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "20", "-subj", "/CN=www.example.test",
                    "-addext", "subjectAltName=DNS:www.example.test"], check=True, capture_output=True)
    # proxy sign-in (a user to list) and DLP (hits to list) on the forward side
    fwd_extra = ('auth: { realm = "T"; users_file = "@DIR@/fwd.users"; groups_file = "@DIR@/fwd.groups"; };\n'
                 '  dlp: { action = "deny"; detectors = [ "credit_card" ]; };')
    conf = tc.console_conf(ports, origin.port, fwd_extra=fwd_extra).replace(
        "reverse: {", 'reverse: {\n  certificates = ( { cert = "%s"; key = "%s"; } );' % (crt, key), 1)
    conf = conf.replace('    { name = "no-games";',
                        '    { name = "intranet-login"; action = "auth"; urls = [ "/intranet/" ]; },\n'
                        '    { name = "no-games";', 1)
    # a list (its entry count is shown), a cached route and a site rate limit (shown per route)
    conf = conf.replace("  policy = (", '  lists = ( { name = "ads"; file = "@DIR@/ads.domains"; } );\n  policy = (', 1)
    conf = conf.replace('{ name = "default-allow";',
                        '{ name = "no-ads"; action = "deny"; lists = [ "ads" ]; },\n    { name = "default-allow";', 1)
    conf = conf.replace('reverse: {', 'reverse: {\n  cache: { memory = "16M"; };', 1)
    conf = conf.replace('routes = ( { path = "/"; static = "@DIR@/www"; },',
                        'rate_limit = { requests_per_second = 5000.0; burst = 20000; };\n'
                        '              routes = ( { path = "/"; static = "@DIR@/www"; },\n'
                        '                         { path = "/cached/"; upstream = "app";'
                        ' cache = { ttl = 60.0; stale_if_error = 300.0; }; },', 1)
    # TLS inspection (issue 16): a TLS origin with a test CA, reached by name
    # through the forward proxy; the company CA is generated in state_dir
    tls_ca, _ = gh.make_ca(str(tmp_path))
    tcrt, tkey = gh.make_cert(str(tmp_path), "secure.example.test", ["secure.example.test"])
    tctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tctx.load_cert_chain(tcrt, tkey)
    tls_origin = gh.Origin(tls=tctx)
    conf = conf.replace("connect_ports = [ 443, ", "connect_ports = [ 443, %d, " % tls_origin.port, 1)
    conf = conf.replace("  policy = (", '  inspect: { mode = "all"; upstream_ca_file = "%s";'
                        ' bypass_domains = [ ".bank.example" ]; };\n  policy = (' % tls_ca, 1)
    conf = '@GLOBAL@  dns: { hosts_file = "@DIR@/hosts"; };\n};\n' + conf
    g = gh.Gatehouse(conf, extra_files={"users": tc.users_file(), "www/index.html": "<h1>hello</h1>\n",
                                        "fwd.users": "alice:%s\n" % tc.crypt_hash("alice-pw"),
                                        "fwd.groups": "staff: alice\n",
                                        "ads.domains": "ads.example\ntracker.example\nads.example\n"
                                                       "pixel.example\nnot a domain\n",
                                        "hosts": gh.hosts_file(["secure.example.test"])})
    g.start([ports[0], ports[1], ports[2]])
    # the committed screenshots (README) change only when asked for
    shots = (os.path.join(BROWSER_DIR, "screenshots") if os.environ.get("GW_UPDATE_SCREENSHOTS") == "1"
             else str(tmp_path / "screenshots"))
    try:
        env = dict(os.environ, GH_CONSOLE="http://127.0.0.1:%d" % ports[2],
                   GH_REVERSE="http://127.0.0.1:%d" % ports[1],
                   GH_FORWARD="http://127.0.0.1:%d" % ports[0], GH_ORIGIN="http://127.0.0.1:%d" % origin.port,
                   GH_PROXY_USER="alice:alice-pw", GH_USER="admin",
                   GH_PASSWORD=tc.ADMIN_PW, GH_NEW_PASSWORD=NEW_PW,
                   GH_CONF=g.conf, GH_SHOTS=shots,
                   GH_TLS_PAGE="https://secure.example.test:%d/echo" % tls_origin.port)
        p = subprocess.run(["node", os.path.join(BROWSER_DIR, "console.test.mjs")], env=env,
                           capture_output=True, text=True, timeout=180)
        print(p.stdout)
        print(p.stderr)
        assert p.returncode == 0, p.stdout + p.stderr + g.stderr()[-3000:]
        res = [l for l in p.stdout.splitlines() if l.startswith("BROWSER-RESULT ")]
        result = json.loads(res[-1].split(" ", 1)[1])
        assert all(c["ok"] for c in result["checks"]) and len(result["checks"]) >= 50
        assert result["max_reverse_rps_seen"] > 0
        # the changed password is stored hashed in the users file the console reads, the
        # line's role and token kept, the other user untouched
        lines = open(os.path.join(g.dir, "users")).read().splitlines()
        admin = [l for l in lines if l.startswith("admin:")]
        assert len(admin) == 1 and admin[0].split(":")[1].startswith("$y$"), lines
        assert admin[0].endswith(":admin:token_sha256=%s" % tc.hashlib.sha256(tc.TOKEN.encode()).hexdigest())
        assert lines[0] == "# test users" and any(l.startswith("viewer:$5$") for l in lines)
        assert NEW_PW not in open(os.path.join(g.dir, "users")).read()
        # the viewer role downloads the inspection CA too (PEM and DER, one certificate, no key)
        v = tc.Console(ports[2])
        assert v.login("viewer", tc.VIEWER_PW).status == 200
        pem, der = v.get("/api/v1/inspect/ca.pem"), v.get("/api/v1/inspect/ca.der")
        assert pem.status == 200 and der.status == 200, (pem.status, der.status)
        assert pem.getheader("Content-Type") == "application/x-pem-file"
        assert der.getheader("Content-Type") == "application/pkix-cert"
        assert b"PRIVATE" not in pem.body and pem.body.count(b"BEGIN CERTIFICATE") == 1
        assert ssl.PEM_cert_to_DER_cert(pem.body.decode()) == der.body
        fp = v.get("/api/v1/config").json["forward"]["inspect"]["ca"]["fingerprint_sha256"]
        assert fp == ":".join("%02X" % b for b in hashlib.sha256(der.body).digest())
        assert tc.Console(ports[2]).get("/api/v1/inspect/ca.der").status == 401   # signed in only
    finally:
        tls_origin.stop()
        g.check_clean()
