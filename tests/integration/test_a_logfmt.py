"""Access-log lines split into the same fields whatever a request carries: a
block reason with spaces and quotes, a user agent and referer with quotes and
backslashes.  Combined format quotes free text (\\xHH escapes) and escapes
spaces in bare fields; JSON escapes every string field."""
import json
import re
import shlex
import time

import gh

RULE = 'say "hi" now'
UA = 'agent "quoted" \\ back'
REF = 'http://ref.test/a b"c'

COMBINED = re.compile(
    r'^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) HTTP/1\.\d" (\d+) (\d+) "([^"]*)" "([^"]*)" (\S+) ([\d.]+) '
    r'up=(\S+) verdict=(\S+) rule="([^"]*)" id=(\S+) in=(\d+) reason="([^"]*)" host="([^"]*)"$')


def conf(port, fmt):
    return """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; access_format = "%s"; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  policy = (
    { name = "%s"; action = "deny"; domains = [ "blocked.test" ]; },
    { name = "default"; action = "allow"; }
  );
};
""" % (fmt, port, RULE.replace('"', '\\"'))


def run(fmt, ports):
    g = gh.Gatehouse(conf(ports[0], fmt), extra_files={"hosts": gh.hosts_file(["blocked.test"])})
    g.start([ports[0]])
    try:
        rc, out, err = gh.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                               "http://127.0.0.1:%d" % ports[0], "-A", UA, "-e", REF,
                               "http://blocked.test/x")
        assert out == b"403", (out, g.stderr())
        line = gh.access_line_for(g, "blocked.test")
        assert line is not None, g.access_lines()
        g.check_clean()
        return line
    finally:
        g.stop()


def test_combined_free_text_is_quoted(netns, ports):
    line = run("combined", ports)
    reason = 'rule "%s" (deny): domain "blocked.test"' % RULE
    m = COMBINED.match(line)
    assert m is not None, line
    assert m.group(13) == "deny" and m.group(14) == RULE.replace('"', "\\x22"), line
    assert m.group(17) == reason.replace('"', "\\x22"), line
    assert m.group(9) == UA.replace("\\", "\\x5c").replace('"', "\\x22"), line
    assert m.group(8) == REF.replace('"', "\\x22"), line
    # shlex sees one token per field: reason="..." stays one word
    words = shlex.split(line.replace("\\", "\\\\"))
    assert ("reason=" + reason.replace('"', "\\x22")) in words, words
    assert words[-1] == 'host=blocked.test', words


def test_json_free_text_is_escaped(netns, ports):
    line = run("json", ports)
    d = json.loads(line)
    assert d["reason"] == 'rule "%s" (deny): domain "blocked.test"' % RULE, d
    assert d["rule"] == RULE and d["user_agent"] == UA and d["referer"] == REF and d["verdict"] == "deny", d


def test_audit_user_cannot_forge_log_lines(netns, origin, ports):
    # a sign-in name is attacker-chosen: it must not start a new error-log line
    # or pose as another field of the audit line
    import test_a_console as tc
    g = gh.Gatehouse(tc.console_conf(ports, origin.port),
                     extra_files={"users": tc.users_file(), "www/index.html": "x\n"})
    g.start([ports[0], ports[1], ports[2]])
    try:
        c = tc.Console(ports[2])
        r = c.request("POST", "/api/v1/login", {"user": "eve outcome=ok\n2026 [error] FORGED", "password": "x"},
                      cookie=False)
        assert r.status in (401, 429), r.status
        time.sleep(0.3)
        err = g.stderr()
        assert "FORGED" in err and not any(l.startswith("2026 [error] FORGED") for l in err.splitlines()), err
        assert "user=eve\\x20outcome\\x3dok\\x0a2026\\x20[error]\\x20FORGED client=" in err, err
        g.check_clean()
    finally:
        g.stop()
