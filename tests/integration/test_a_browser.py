"""The admin console in a real browser: Debian's headless Chromium driven by
playwright-core (tests/browser/console.test.mjs) logs in, watches the charts
move under curl load, sees the forward page's top domains, signed-in users
and DLP hits, signs in once more with JavaScript off (the plain form), uses
the policy tester, purges the cache, reloads, and takes
screenshots (into tests/browser/screenshots/ with GW_UPDATE_SCREENSHOTS=1,
else into the test's temporary directory)."""
import json
import os
import subprocess

import gh
import test_a_console as tc

BROWSER_DIR = os.path.join(gh.ROOT, "tests", "browser")


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
    g = gh.Gatehouse(conf, extra_files={"users": tc.users_file(), "www/index.html": "<h1>hello</h1>\n",
                                        "fwd.users": "alice:%s\n" % tc.crypt_hash("alice-pw"),
                                        "fwd.groups": "staff: alice\n"})
    g.start([ports[0], ports[1], ports[2]])
    # the committed screenshots (README) change only when asked for
    shots = (os.path.join(BROWSER_DIR, "screenshots") if os.environ.get("GW_UPDATE_SCREENSHOTS") == "1"
             else str(tmp_path / "screenshots"))
    try:
        env = dict(os.environ, GH_CONSOLE="http://127.0.0.1:%d" % ports[2],
                   GH_REVERSE="http://127.0.0.1:%d" % ports[1],
                   GH_FORWARD="http://127.0.0.1:%d" % ports[0], GH_ORIGIN="http://127.0.0.1:%d" % origin.port,
                   GH_PROXY_USER="alice:alice-pw", GH_USER="admin",
                   GH_PASSWORD=tc.ADMIN_PW, GH_CONF=g.conf, GH_SHOTS=shots)
        p = subprocess.run(["node", os.path.join(BROWSER_DIR, "console.test.mjs")], env=env,
                           capture_output=True, text=True, timeout=180)
        print(p.stdout)
        print(p.stderr)
        assert p.returncode == 0, p.stdout + p.stderr + g.stderr()[-3000:]
        res = [l for l in p.stdout.splitlines() if l.startswith("BROWSER-RESULT ")]
        result = json.loads(res[-1].split(" ", 1)[1])
        assert all(c["ok"] for c in result["checks"]) and len(result["checks"]) >= 28
        assert result["max_reverse_rps_seen"] > 0
    finally:
        g.check_clean()
