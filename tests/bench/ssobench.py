#!/usr/bin/env python3
"""Single sign-on cost (issue 18): an authenticated small forward GET whose
user and directory groups are cached, against the same GET anonymous, CPU
per request of the proxy; and the latency of the first request of a user
(a directory bind and a groups lookup, then the policy).

Contenders, interleaved like bench.py (whose helpers this reuses), each on
CPU 1 with one worker; wrk and the origin on CPU 0:
  gatehouse       forward with forward.auth.ldap (basic_bind, groups
                  memberof, cache_ttl 300) against a real slapd started
                  here; every request carries Basic credentials (the worst
                  case: a Negotiate connection carries none after its first
                  request); the policy allows only group "devs"
  gatehouse-anon  the same binary, no auth
  squid           Debian's Squid, anonymous (a reference peer)
The table's GH/peer column for gatehouse-anon is the ratio the issue bounds
(authenticated / anonymous CPU per request <= 1.2).

    GATEHOUSE_BIN=build-release/gatehouse python3 tests/bench/ssobench.py
"""
import base64
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import bench as B          # noqa: E402
import sso_peers           # noqa: E402

P_AUTH, P_ANON = 18701, 18702


def gh_conf(tag, port, auth):
    d = os.path.join(B.OUT, tag)
    os.makedirs(d, exist_ok=True)
    extra = ""
    if auth:
        extra = """  auth: { schemes = [ "basic" ];
    ldap: { uris = [ "ldap://127.0.0.1:%d" ]; base = "%s"; bind_dn = "%s"; bind_password_file = "%s";
            basic_bind = true; groups = "memberof"; cache_ttl = 300.0; };
  };
  policy = ( { name = "login"; action = "auth"; },
             { name = "devs"; action = "allow"; groups = [ "devs" ]; },
             { name = "rest"; action = "deny"; } );
""" % (auth.port, sso_peers.BASE, sso_peers.SVC_DN, auth.pw_file)
    text = """global: { workers = 1; user = ""; state_dir = "%s"; max_connections = 100000;
  max_connections_per_client = 0;
  log: { error = "%s/error.log"; level = "warn"; access = ""; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ ];
%s};
""" % (d, d, port, extra)
    path = os.path.join(d, "gatehouse.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def first_request_ms(port, user):
    """curl's total time of one request (ms) and its status."""
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-x",
                        "http://127.0.0.1:%d" % port, "--proxy-user", user,
                        "http://127.0.0.1:%d/" % B.P_ORIGIN], capture_output=True, text=True, timeout=30)
    code, t = p.stdout.split()
    return int(code), float(t) * 1000


def main():
    B.build_tools()
    slapd = sso_peers.Slapd()
    try:
        B.start("origin", [os.path.join(B.BIN, "origin"), str(B.P_ORIGIN), str(B.P_SINK)], B.P_ORIGIN, cpu="0")
        B.start("gatehouse", [B.GH, "-c", gh_conf("gh_auth", P_AUTH, slapd)], P_AUTH)
        B.start("gatehouse_anon", [B.GH, "-c", gh_conf("gh_anon", P_ANON, None)], P_ANON)
        B.start_squid()
        time.sleep(1)
        # first requests of users never seen: directory bind + groups lookup
        firsts = [first_request_ms(P_AUTH, u) for u in ("alice:alicepw", "bob:bobpw", "carol:carolpw")]
        cached = [first_request_ms(P_AUTH, "alice:alicepw") for _ in range(5)]
        B.log("first request of a user (bind + groups, ms):", firsts)
        B.log("the same user again (cached, ms):", cached)
        assert firsts[0][0] == 200 and firsts[1][0] == 403, firsts     # bob is not in devs

        env = {"WRK_PATH": "http://127.0.0.1:%d/" % B.P_ORIGIN, "WRK_HOST": "127.0.0.1:%d" % B.P_ORIGIN}
        auth_env = dict(env, WRK_AUTH="Basic " + base64.b64encode(b"alice:alicepw").decode())
        k = ["rps", "cpu_us_per_req", "p50", "p99"]

        def run(c, warm):
            r = B.wrk(c[2], 50, 1 if warm else B.SECS, "/", auth_env if c[0] == "gatehouse" else env)
            r["rps"] = r["req"] / r["dur"]
            return r
        B.interleave("fwd_sso_cached_c50", [("gatehouse", "gatehouse", P_AUTH),
                                            ("gatehouse-anon", "gatehouse_anon", P_ANON),
                                            ("squid", "squid", B.P_SQUID)], run, "req/s", k)
        B.print_table()
        print("\nfirst request of a new user through gatehouse (directory bind + groups lookup + policy): "
              "%s ms; cached: median %.1f ms" % (", ".join("%.1f" % t for _, t in firsts),
                                                sorted(t for _, t in cached)[2]))
    finally:
        for n in list(B.PROCS):
            B.stop(n)
        slapd.close()


if __name__ == "__main__":
    main()
