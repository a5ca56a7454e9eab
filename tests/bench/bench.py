#!/usr/bin/env python3
"""Gatehouse benchmark driver (run it through tests/bench/run.sh).

Starts the origin (tests/bench/origin.c) and the load tools on CPU 0 and every
proxy on CPU 1 (taskset), then runs each scenario interleaved: contender A,
B, C, A, B, C, ... for ROUNDS rounds, and prints medians and Gatehouse/peer
ratios of the same run.  Results go to OUT/results.json and a Markdown table
to stdout (tests/bench/RESULTS.md is written from it by hand).

Environment: GATEHOUSE_BIN (default build-release/gatehouse in this tree), GATEHOUSE_BIN_B
(optional second binary, contender "gatehouse-B" in rev_1m_c4, fwd_icap_* and the CONNECT scenarios), BENCH_ROUNDS
(3), BENCH_SECS (5), BENCH_ONLY (comma list of scenario names), BENCH_OUT.
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GH = os.environ.get("GATEHOUSE_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build-release", "gatehouse"))
# A/B: a second Gatehouse binary (e.g. the tree before a change), run as the
# contender "gatehouse-B" in the 1 MiB and CONNECT scenarios, same rounds
GH_B = os.environ.get("GATEHOUSE_BIN_B", "")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = int(os.environ.get("BENCH_SECS", "5"))
ONLY = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
OUT = os.environ.get("BENCH_OUT") or tempfile.mkdtemp(prefix="gatehouse-bench-", dir="/var/tmp")
os.makedirs(OUT, exist_ok=True)
os.chmod(OUT, 0o777)
BIN = os.path.join(OUT, "bin")
CLK = os.sysconf("SC_CLK_TCK")

P_ORIGIN, P_SINK = 18080, 18090
P_GH_REV, P_GH_FWD, P_GHL_REV, P_GHL_FWD = 18101, 18102, 18111, 18112
P_NGINX, P_HAPROXY, P_SQUID, P_TINY = 18201, 18301, 18401, 18501
P_HAPROXY_BARE = 18311
P_GHC_REV, P_GHC_FWD, P_NGINX_CACHE, P_VARNISH = 18121, 18122, 18211, 18601
# (gatehouse-B was on 18131, gatehouse's TLS port: both bound it with
# SO_REUSEPORT and the kernel split h2load's and wrk's connections between
# the two, the plain listener failing the TLS ones: the "first slot" wrk
# errors and the h2 rounds where no request started and Gatehouse used no
# CPU.  The check below keeps every port and TLS port distinct.)
P_GHB_REV, P_GHB_FWD = 18105, 18106
P_ICAP, P_GHI_REV, P_GHI_FWD, P_SQUID_ICAP = 18701, 18145, 18146, 18411
TLS_OFF = 30        # each reverse proxy also listens with TLS on its port + TLS_OFF
_REV = (P_GH_REV, P_GHL_REV, P_NGINX, P_HAPROXY, P_HAPROXY_BARE, P_GHC_REV, P_NGINX_CACHE, P_GHB_REV, P_GHI_REV)
_ALL = _REV + tuple(x + TLS_OFF for x in _REV) + (P_ORIGIN, P_SINK, P_GH_FWD, P_GHL_FWD, P_SQUID, P_TINY,
                                                  P_GHC_FWD, P_VARNISH, P_GHB_FWD, P_ICAP, P_GHI_FWD, P_SQUID_ICAP)
assert len(set(_ALL)) == len(_ALL), sorted(x for x in _ALL if _ALL.count(x) > 1)
CERT, KEY, PEM = (os.path.join(OUT, n) for n in ("bench.crt", "bench.key", "bench.pem"))

PROCS = {}
RESULTS = {}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def build_tools():
    os.makedirs(BIN, exist_ok=True)
    for t in ("origin", "rateload", "connectload", "idleconns", "tlsload"):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", os.path.join(BIN, t),
                        os.path.join(HERE, t + ".c")] + (["-lssl", "-lcrypto"] if t == "tlsload" else []),
                       check=True)


def make_cert():
    """One ECDSA P-256 certificate shared by every TLS contender (HAProxy wants
    certificate and key in one file)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-subj", "/CN=bench.test", "-addext",
                    "subjectAltName=DNS:bench.test,IP:127.0.0.1", "-keyout", KEY, "-out", CERT],
                   check=True, capture_output=True)
    os.chmod(KEY, 0o644)
    with open(PEM, "w") as f:
        f.write(open(CERT).read() + open(KEY).read())


def subst(name, out=None, drop=None, **kw):
    """HERE/name with @KEY@ replaced, written to OUT/(out or name); lines
    ending with the marker drop are left out."""
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    if drop:
        text = "\n".join(l for l in text.split("\n") if not l.rstrip().endswith(drop))
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    path = os.path.join(OUT, out or name)
    with open(path, "w") as f:
        f.write(text)
    return path


def gh_conf(tag, rev, fwd, access, cache=False, fwd_extra=""):
    d = os.path.join(OUT, tag)
    os.makedirs(d, exist_ok=True)
    # cache: the whole site cached, an hour of freshness for the origin's
    # Cache-Control-less answers (as nginx-cache.conf and varnish.vcl give)
    cache_conf = 'cache = { memory = "256M"; max_object = "1M"; };' if cache else ""
    route_cache = " cache = { ttl = 3600.0; };" if cache else ""
    # max_connections_per_client = 0: the load generators are every client, from one address.
    # keepalive 1024 (nginx.conf too): HAProxy keeps every idle origin connection
    # (pool-max-conn -1), so none of the three closes them under 500 requests in flight
    text = """global: { workers = 1; user = ""; state_dir = "%s"; max_connections = 100000;
  max_connections_per_client = 0;
  log: { error = "%s/error.log"; level = "warn"; access = "%s"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ ];
  connect_ports = [ %d ];
  %s
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; }, { address = "127.0.0.1:%d"; tls = true; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  %s
  upstreams = ( { name = "origin"; servers = ( { address = "127.0.0.1:%d"; } ); keepalive = 1024; } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "origin";%s } ); } );
};
""" % (d, d, access, fwd, P_SINK, fwd_extra, rev, rev + TLS_OFF, CERT, KEY, cache_conf, P_ORIGIN, route_cache)
    path = os.path.join(d, "gatehouse.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def start(name, argv, port, cpu="1", **kw):
    errf = open(os.path.join(OUT, name + ".out"), "wb")
    p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=errf, stderr=errf,
                         preexec_fn=raise_nofile, **kw)
    PROCS[name] = p
    if port and not wait_port(port):
        raise SystemExit("%s did not listen on %d; see %s" % (name, port, errf.name))
    return p


def raise_nofile():
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))   # root may raise the hard limit
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop(name):
    p = PROCS.pop(name, None)
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_gatehouse(tag, rev, fwd, access="", cache=False, binary=None, fwd_extra=""):
    conf = gh_conf(tag, rev, fwd, access, cache, fwd_extra)
    start(tag, [binary or GH, "-c", conf], rev)
    wait_port(fwd)


def start_nginx(tag="nginx", port=P_NGINX, conf_name="nginx.conf", **extra):
    d = os.path.join(OUT, tag)
    os.makedirs(d, exist_ok=True)
    conf = subst(conf_name, DIR=d, PORT=port, TLSPORT=port + TLS_OFF, CERT=CERT, KEY=KEY,
                 ORIGIN=P_ORIGIN, ACCESS="off", **extra)
    os.rename(conf, os.path.join(d, "nginx.conf"))
    start(tag, ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")], port)


# nginx's proxy_cache directory: on tmpfs (memory-backed), removed at the end
NGINX_CACHE_DIR = os.path.join("/dev/shm", "gatehouse-bench-" + os.path.basename(OUT))


def start_varnish():
    """varnishd by hand: foreground, loopback, malloc storage, one thread pool."""
    vcl = subst("varnish.vcl", ORIGIN=P_ORIGIN)
    work = os.path.join(OUT, "varnish")
    os.makedirs(work, exist_ok=True)
    start("varnish", ["varnishd", "-F", "-a", "127.0.0.1:%d" % P_VARNISH, "-f", vcl,
                      "-s", "malloc,256m", "-n", work, "-p", "thread_pools=1"], P_VARNISH)


def cache_status(port):
    """The cache-status headers of one request (a hit check for the log)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        return " ".join("%s=%s" % (k, v) for k, v in r.getheaders()
                        if k.lower() in ("x-cache", "x-varnish", "age"))
    finally:
        c.close()


def start_haproxy(tag="haproxy", port=P_HAPROXY, bare=False):
    """bare: without the forwarding fields Gatehouse adds by default (the
    lines of haproxy.cfg marked "# fwd"): HAProxy doing less per request."""
    conf = subst("haproxy.cfg", out=tag + ".cfg", drop="# fwd" if bare else None, PORT=port,
                 TLSPORT=port + TLS_OFF, PEM=PEM, ORIGIN=P_ORIGIN)
    start(tag, ["haproxy", "-db", "-f", conf], port)


def start_squid():
    conf = subst("squid.conf", DIR=OUT, PORT=P_SQUID)
    start("squid", ["squid", "-N", "-f", conf], P_SQUID)


def start_icap_pair():
    """c-icap with its echo service (CPU 0, beside the origin), and Gatehouse
    and Squid each sending every response to it over RESPMOD (preview on,
    persistent connections, fail closed)."""
    d = os.path.join(OUT, "c-icap")
    os.makedirs(d, exist_ok=True)
    lib = "/usr/lib/x86_64-linux-gnu/c_icap"
    with open(os.path.join(d, "c-icap.conf"), "w") as f:
        f.write("PidFile %s/c-icap.pid\nCommandsSocket %s/c-icap.ctl\nTmpDir %s\nServerLog %s/server.log\n"
                "AccessLog /dev/null\nPort 127.0.0.1:%d\nStartServers 1\nMaxServers 1\n"
                "ThreadsPerChild 128\nMinSpareThreads 8\nMaxSpareThreads 128\nTimeout 300\n"
                "MaxKeepAliveRequests 100000\nKeepAliveTimeout 600\nMaxMemObject 2097152\n"
                "ModulesDir %s\nServicesDir %s\nTemplateDir /usr/share/c_icap/templates/\n"
                "LoadMagicFile /etc/c-icap/c-icap.magic\nService echo srv_echo.so\n"
                % (d, d, d, d, P_ICAP, lib, lib))
    start("c-icap", ["c-icap", "-f", os.path.join(d, "c-icap.conf"), "-N"], P_ICAP, cpu="0")
    start_gatehouse("gatehouse_icap", P_GHI_REV, P_GHI_FWD, fwd_extra=(
        'icap = ( { name = "echo"; uri = "icap://127.0.0.1:%d/echo"; max_body_bytes = "4M"; } );\n'
        '  icap_default = [ "echo" ];' % P_ICAP))
    if GH_B:   # A/B: the second binary on the same service
        start_gatehouse("gatehouse_icap_b", P_GHI_REV + 10, P_GHI_FWD + 10, binary=GH_B, fwd_extra=(
            'icap = ( { name = "echo"; uri = "icap://127.0.0.1:%d/echo"; max_body_bytes = "4M"; } );\n'
            '  icap_default = [ "echo" ];' % P_ICAP))
    conf = subst("squid-icap.conf", DIR=OUT, PORT=P_SQUID_ICAP, ICAP=P_ICAP)
    start("squid_icap", ["squid", "-N", "-f", conf], P_SQUID_ICAP)


def start_tinyproxy():
    conf = subst("tinyproxy.conf", DIR=OUT, PORT=P_TINY)
    start("tinyproxy", ["tinyproxy", "-d", "-c", conf], P_TINY)


def proc_tree(pid):
    """pid and its descendants (varnishd's manager forks the cache process)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(kids.get(x, []))
    return out


TREE_CPU = {"varnish", "c-icap"}   # contenders whose work runs in a child process


def cpu_s(name):
    p = PROCS.get(name)
    if not p:
        return 0.0
    total = 0
    for pid in (proc_tree(p.pid) if name in TREE_CPU else [p.pid]):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK


def rss_kb(name):
    with open("/proc/%d/status" % PROCS[name].pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(name):
    return len(os.listdir("/proc/%d/fd" % PROCS[name].pid))


def wrk(port, conns, secs, path="/", env=None, scheme="http"):
    e = dict(os.environ)
    e.update(env or {})
    argv = ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--timeout", "5s",
            "-s", os.path.join(HERE, "bench.lua"), "%s://127.0.0.1:%d%s" % (scheme, port, path)]
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=secs + 60)
    m = re.search(r"^STATS (.*)$", p.stdout, re.M)
    if not m:
        log("wrk failed:", p.stdout, p.stderr)
        return {"req": 0, "bytes": 0, "dur": 1, "err": 1, "p50": 0, "p99": 0}
    v = [int(x) for x in m.group(1).split()]
    lat = [int(x) for x in re.search(r"^LAT (.*)$", p.stdout, re.M).group(1).split()]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    return {"req": v[0], "bytes": v[1], "dur": v[2] / 1e6, "err": sum(v[3:]) +
            (int(non2xx.group(1)) if non2xx else 0), "p50": lat[0], "p99": lat[1]}


def h2load(port, conns, streams, secs, path="/"):
    """h2load (nghttp2-client) over TLS with ALPN h2: -c conns, -m streams per connection."""
    # one TLS 1.3 suite for all: h2load offers AES-128 first, nginx follows the
    # client's order, HAProxy and Gatehouse their own (AES-256 first), and wrk
    # (rev_tls_1m_c4, the HTTP/1.1 baseline) gets AES-256 too
    argv = ["taskset", "-c", "0", "h2load", "-t", "1", "-c", str(conns), "-m", str(streams),
            "--tls13-ciphers=TLS_AES_256_GCM_SHA384",
            "-D", str(secs), "--warm-up-time", "1", "https://127.0.0.1:%d%s" % (port, path)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s, ([\d.]+)([KMG]?)B/s", p.stdout)
    n = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  p.stdout)
    if not m or not n or "h2" not in p.stdout:
        log("h2load failed (exit %d):" % p.returncode, p.stdout[:300], "...", p.stdout[-800:], p.stderr[-400:])
        return {"req": 0, "rps": 0, "MBps": 0, "err": 1}
    scale = {"": 1e-6, "K": 1e-3, "M": 1, "G": 1e3}[m.group(4)]
    # what was really negotiated, so a run shows the contenders were alike
    tls = " ".join(x.group(1).strip() for x in re.finditer(r"^(?:TLS Protocol|Cipher|Server Temp Key): (.*)$",
                                                           p.stdout, re.M))
    if tls:
        H2_TLS.setdefault(port, set()).add(tls)
    return {"req": int(n.group(1)), "rps": float(m.group(2)), "MBps": float(m.group(3)) * scale,
            "err": int(n.group(2)) + int(n.group(3))}


H2_TLS = {}   # port -> the TLS parameters h2load reported


def h2load_runner(conns, streams, path="/"):
    def run(c, warm):
        return h2load(c[2], conns, streams, 1 if warm else SECS, path)
    return run


def tool(name, *args, timeout=120):
    p = subprocess.run(["taskset", "-c", "0", os.path.join(BIN, name)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    out = p.stdout.strip().splitlines()
    return dict(kv.split("=", 1) for kv in (out[-1].split() if out else []) if "=" in kv)


def interleave(scenario, contenders, run_one, unit, keys):
    """contenders: list of (label, procname or None, port/args); run_one -> dict."""
    if ONLY and scenario not in ONLY:
        return
    log("== %s" % scenario)
    samples = {c[0]: [] for c in contenders}
    for c in contenders:                      # warm-up, not recorded
        run_one(c, warm=True)
    for r in range(ROUNDS):
        for c in contenders:
            label, proc = c[0], c[1]
            c0 = cpu_s(proc) if proc else 0
            res = run_one(c, warm=False)
            res["cpu"] = (cpu_s(proc) - c0) if proc else 0
            if res.get("req"):
                res["cpu_us_per_req"] = res["cpu"] / res["req"] * 1e6
            samples[label].append(res)
            log("  r%d %-12s %s" % (r, label, " ".join("%s=%s" % (k, round(res.get(k, 0), 2))
                                                       for k in keys)))
    med = {}
    for label, rs in samples.items():
        med[label] = {k: statistics.median([x.get(k, 0) for x in rs]) for k in keys}
        med[label]["range"] = {k: (min(x.get(k, 0) for x in rs), max(x.get(k, 0) for x in rs))
                               for k in keys}
        med[label]["errors"] = sum(x.get("err", 0) for x in rs)
    RESULTS[scenario] = {"unit": unit, "keys": keys, "median": med, "samples": samples}


def wrk_runner(conns, path="/", env=None, scheme="http"):
    def run(c, warm):
        r = wrk(c[2], conns, 1 if warm else SECS, path, env, scheme)
        r["rps"] = r["req"] / r["dur"]
        r["MBps"] = r["bytes"] / r["dur"] / 1e6
        return r
    return run


def main():
    build_tools()
    make_cert()
    log("output in", OUT)
    start("origin", [os.path.join(BIN, "origin"), str(P_ORIGIN), str(P_SINK)], P_ORIGIN, cpu="0")
    start_gatehouse("gatehouse", P_GH_REV, P_GH_FWD)
    start_gatehouse("gatehouse_log", P_GHL_REV, P_GHL_FWD,
                    access=os.path.join(OUT, "gatehouse_log", "access.log"))
    if GH_B:
        start_gatehouse("gatehouse_b", P_GHB_REV, P_GHB_FWD, binary=GH_B)
    start_nginx()
    start_haproxy()
    start_haproxy("haproxy_bare", P_HAPROXY_BARE, bare=True)
    start_squid()
    start_tinyproxy()
    time.sleep(1)

    rev = [("direct", None, P_ORIGIN), ("gatehouse", "gatehouse", P_GH_REV),
           ("nginx", "nginx", P_NGINX), ("haproxy", "haproxy", P_HAPROXY)]
    gh_b_rev = [("gatehouse-B", "gatehouse_b", P_GHB_REV)] if GH_B else []
    rev_log = rev[:2] + gh_b_rev + [("gatehouse+log", "gatehouse_log", P_GHL_REV)] + rev[2:]
    k_small = ["rps", "cpu_us_per_req", "p50", "p99"]
    interleave("rev_ka_c50", rev_log, wrk_runner(50), "req/s", k_small)
    interleave("rev_ka_c500", rev, wrk_runner(500), "req/s", k_small)
    rev_b = rev[:2] + gh_b_rev + rev[2:]
    interleave("rev_1m_c4", rev_b, wrk_runner(4, "/1m"), "MB/s", ["MBps", "cpu", "p50", "p99"])
    interleave("rev_close_c50", rev, wrk_runner(50, env={"WRK_CLOSE": "1"}), "req/s", k_small)
    # TLS termination, same certificate everywhere: keep-alive requests over
    # TLS, then one request per connection (wrk resumes each new connection
    # with the TLS 1.3 ticket of the previous one on its slot: one full
    # handshake per slot, then resumptions, as long as the server renews the
    # ticket).
    rev_tls = [(c[0], c[1], c[2] + TLS_OFF) for c in rev[1:]]
    interleave("rev_tls_ka_c50", rev_tls, wrk_runner(50, scheme="https"), "req/s", k_small)
    interleave("rev_tls_new_c50", rev_tls, wrk_runner(50, env={"WRK_CLOSE": "1"}, scheme="https"),
               "req/s", k_small)

    # HTTP/2 (issue 17): h2load with ALPN h2 against each TLS listener (nginx
    # "listen ... ssl http2", HAProxy "alpn h2,http/1.1", Gatehouse's default
    # http2 = true): small responses multiplexed, then 1 MiB responses, the
    # latter beside Gatehouse's own HTTP/1.1 over TLS (rev_tls_1m_c4, wrk).
    rev_tls_b = rev_tls[:1] + [(c[0], c[1], c[2] + TLS_OFF) for c in gh_b_rev] + rev_tls[1:]
    # and HAProxy without the forwarding fields (it then does less than the others)
    interleave("rev_h2_c50_m10", rev_tls_b + [("haproxy-bare", "haproxy_bare", P_HAPROXY_BARE + TLS_OFF)],
               h2load_runner(50, 10), "req/s", k_small[:2])
    interleave("rev_h2_1m_c4", rev_tls_b, h2load_runner(4, 1, "/1m"), "MB/s", ["MBps", "cpu"])
    interleave("rev_tls_1m_c4", rev_tls_b[:1 + len(gh_b_rev)], wrk_runner(4, "/1m", scheme="https"), "MB/s",
               ["MBps", "cpu"])
    for c in rev_tls_b:
        if c[2] in H2_TLS:
            log("  h2 TLS %-12s %s" % (c[0], " | ".join(sorted(H2_TLS[c[2]]))))
    if "profile_h2" in ONLY:
        profile_h2()

    # Full handshakes: tlsload offers no session (wrk would resume), so
    # every connection costs the server an ECDHE and a signature.
    def tls_full_run(c, warm):
        r = tool("tlsload", "-p", c[2], "-d", 1 if warm else SECS, "-c", 50, timeout=60)
        return {"rps": float(r.get("rate", "0/s").rstrip("/s")), "req": int(r.get("ok", 0)),
                "err": int(r.get("err", 1))}
    interleave("rev_tls_full_c50", rev_tls, tls_full_run, "handshakes/s", ["rps", "cpu_us_per_req"])

    # Cache hits: Gatehouse's in-memory cache vs nginx proxy_cache (tmpfs) and
    # Varnish (malloc); "direct" is the origin itself, uncached.
    if not ONLY or "rev_cache_hit" in ONLY:
        start_gatehouse("gatehouse_cache", P_GHC_REV, P_GHC_FWD, cache=True)
        start_nginx("nginx_cache", P_NGINX_CACHE, "nginx-cache.conf", CACHE=NGINX_CACHE_DIR)
        start_varnish()
        cached = [("direct", None, P_ORIGIN), ("gatehouse", "gatehouse_cache", P_GHC_REV),
                  ("nginx", "nginx_cache", P_NGINX_CACHE), ("varnish", "varnish", P_VARNISH)]
        interleave("rev_cache_hit", cached, wrk_runner(50), "req/s", k_small)
        for label, _, port in cached[1:]:
            log("  hit check %-10s %s" % (label, cache_status(port)))
        for n in ("gatehouse_cache", "nginx_cache", "varnish"):
            stop(n)

    fwd_env = {"WRK_PATH": "http://127.0.0.1:%d/" % P_ORIGIN, "WRK_HOST": "127.0.0.1:%d" % P_ORIGIN}
    fwd = [("direct", None, P_ORIGIN), ("gatehouse", "gatehouse", P_GH_FWD),
           ("squid", "squid", P_SQUID), ("tinyproxy", "tinyproxy", P_TINY)]
    fwd[2:2] = [("gatehouse-B", "gatehouse_b", P_GHB_FWD)] if GH_B else []
    interleave("fwd_ka_c50", fwd, wrk_runner(50, env=fwd_env), "req/s", k_small)

    # RESPMOD through c-icap's echo: small responses (the 0.5.x echo service
    # answers bodies 200 and 204 in turn: both proxies get the same mix) and
    # 1 MiB ones; "fwd-plain" is the same Gatehouse path without ICAP.
    if not ONLY or any(x.startswith("fwd_icap") for x in ONLY):
        start_icap_pair()
        icap = [("gatehouse", "gatehouse_icap", P_GHI_FWD), ("squid", "squid_icap", P_SQUID_ICAP),
                ("fwd-plain", "gatehouse", P_GH_FWD)]
        icap[1:1] = [("gatehouse-B", "gatehouse_icap_b", P_GHI_FWD + 10)] if GH_B else []
        def icap_runner(inner):
            # the shared c-icap's CPU per request too: whether the service is
            # the ceiling, and how much work each proxy gives it
            def run(c, warm):
                c0 = cpu_s("c-icap")
                r = inner(c, warm)
                if r.get("req"):
                    r["icap_us_per_req"] = (cpu_s("c-icap") - c0) / r["req"] * 1e6
                return r
            return run
        interleave("fwd_icap_small_c50", icap, icap_runner(wrk_runner(50, env=fwd_env)), "req/s",
                   k_small + ["icap_us_per_req"])
        env_1m = {"WRK_PATH": "http://127.0.0.1:%d/1m" % P_ORIGIN, "WRK_HOST": "127.0.0.1:%d" % P_ORIGIN}
        interleave("fwd_icap_1m_c4", icap, icap_runner(wrk_runner(4, env=env_1m)), "MB/s",
                   ["MBps", "cpu", "cpu_us_per_req", "p50", "p99", "icap_us_per_req"])
        # the latency ICAP adds per request, without queueing: one
        # connection, one request at a time (p50 against fwd-plain's)
        interleave("fwd_icap_lat_c1", icap, icap_runner(wrk_runner(1, env=fwd_env)), "req/s",
                   ["rps", "p50", "p99", "icap_us_per_req"])
        for n in ("gatehouse_icap", "gatehouse_icap_b", "squid_icap", "c-icap"):
            stop(n)

    def rate_run(c, warm):
        r = tool("rateload", "-p", c[2], "-r", 1000, "-d", 2 if warm else 8, "-c", 50,
                 timeout=60)
        return {"p50": float(r.get("p50_us", 0)), "p99": float(r.get("p99_us", 0)),
                "p999": float(r.get("p999_us", 0)), "req": int(r.get("ok", 0)),
                "err": int(r.get("err", 1))}
    interleave("rev_latency_1000rps", rev, rate_run, "µs", ["p50", "p99", "p999"])

    conn = [("direct", None, None), ("gatehouse", "gatehouse", P_GH_FWD)]
    conn += [("gatehouse-B", "gatehouse_b", P_GHB_FWD)] if GH_B else []
    conn += [("squid", "squid", P_SQUID), ("tinyproxy", "tinyproxy", P_TINY)]

    def connect_run(mode, conns):
        def run(c, warm):
            args = ["-t", P_SINK, "-m", mode, "-d", 1 if warm else SECS, "-c", conns]
            args += ["-D"] if c[2] is None else ["-p", c[2]]
            r = tool("connectload", *args, timeout=60)
            ok = int(r.get("ok", 0))
            return {"rate": float(r.get("rate", "0/s").rstrip("/s")), "MBps": float(r.get("MBps", 0)),
                    "req": ok, "err": int(r.get("err", 1))}
        return run
    interleave("connect_setup_c16", conn, connect_run("setup", 16), "tunnels/s", ["rate", "cpu"])
    interleave("connect_bulk_c4", conn, connect_run("bulk", 4), "MB/s", ["MBps", "cpu"])

    # Idle keep-alive connection memory: a fresh process per measurement.
    if not ONLY or "idle_rss_10k" in ONLY:
        log("== idle_rss_10k")
        for n in ("gatehouse", "gatehouse_log", "gatehouse_b", "nginx", "haproxy", "haproxy_bare", "squid", "tinyproxy"):
            stop(n)
        samples = {"gatehouse": [], "nginx": []}   # haproxy: maxconn < 10,000 here
        for r in range(2):
            for label in samples:
                if label == "gatehouse":
                    start_gatehouse("gatehouse", P_GH_REV, P_GH_FWD)
                elif label == "nginx":
                    start_nginx()
                else:
                    start_haproxy()
                port = {"gatehouse": P_GH_REV, "nginx": P_NGINX, "haproxy": P_HAPROXY}[label]
                # warm: one request so lazily-built per-worker state exists
                wrk(port, 10, 1)
                time.sleep(0.5)
                before = rss_kb(label)
                p = subprocess.Popen(["taskset", "-c", "0", os.path.join(BIN, "idleconns"), "-p",
                                      str(port), "-n", "10000"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
                line = p.stdout.readline().strip()
                time.sleep(1.0)
                after = rss_kb(label)
                fds = fd_count(label)
                p.stdin.close()
                p.wait(30)
                ok = int(re.search(r"ok=(\d+)", line).group(1)) if "ok=" in line else 0
                per = (after - before) * 1024 / max(ok, 1)
                samples[label].append({"bytes_per_conn": per, "ok": ok, "rss_before_kb": before,
                                       "rss_after_kb": after, "fds": fds})
                log("  r%d %-10s %s ok=%d before=%dkB after=%dkB -> %.0f B/conn fds=%d" %
                    (r, label, line, ok, before, after, per, fds))
                stop(label)
                time.sleep(1)
        RESULTS["idle_rss_10k"] = {"unit": "bytes/conn", "keys": ["bytes_per_conn"], "median": {
            k: {"bytes_per_conn": statistics.median(x["bytes_per_conn"] for x in v),
                "range": {"bytes_per_conn": (min(x["bytes_per_conn"] for x in v),
                                             max(x["bytes_per_conn"] for x in v))},
                "errors": sum(10000 - x["ok"] for x in v)}
            for k, v in samples.items()}, "samples": samples}

    inspect_scenarios()   # TLS inspection vs Squid ssl-bump (its own block below)
    if not ONLY or "profile" in ONLY:
        profile()
    for n in list(PROCS):
        stop(n)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(RESULTS, f, indent=1, default=str)
    print_table()


# ---- TLS inspection (issue 16): Gatehouse forward.inspect vs Squid ssl-bump ----
# Self-contained: its own TLS origin (nginx on CPU 0, two server blocks: one
# that resumes TLS sessions, one that never does), one CA for both proxies'
# minting (EC P-256), Gatehouse with forward.inspect, and two Squids with the
# same CA: "squid" = "ssl_bump bump all" (client-first: it mints from the
# CONNECT name and sends the requests over pooled origin connections, no
# origin handshake per client connection) and "squid-stare" = "stare all;
# bump all" (server-first: an origin handshake per client connection and the
# origin's certificate mimicked, the work Gatehouse always does).
#   fwd_inspect_ka       small GETs over inspected keep-alive connections:
#                        inspectload -k (one epoll loop, INSPECT_KA_CONNS
#                        connections open at once, each one TLS session
#                        carrying INSPECT_KA / INSPECT_KA_CONNS GETs one after
#                        another, every response a 200 read in full): req/s,
#                        CPU per request.  (One curl with N URLs, used before,
#                        was the bottleneck at ~1,000 req/s; 4 blocking
#                        threads then left the proxy at half a core.)
# The origin is named (ORIGIN_NAME, in both proxies' hosts files), so every
# client checks the leaf's name: Squid's client-first leaf for an address
# literal has no iPAddress SAN, and a failed check had let an earlier script
# time refused handshakes as "requests".
#   fwd_inspect_new_full new CONNECTs with full TLS handshakes on both sides
#                        (the origin never resumes; the leaf cached after the
#                        warm-up): tests/bench/inspectload.c, INSPECT_NEW
#                        connections, INSPECT_NEW_PAR open at once
#   fwd_inspect_new      the same, the origin resuming sessions (as most do)
# Every round also reports how much of a core the proxy used (core: its CPU
# seconds / wall seconds) and how busy CPU 0 was (cpu0: the load tool, the
# origin, and anything else the machine ran there): a proxy well under 1.0
# with cpu0 at 1.0 was limited by the load side, not by its own CPU.
P_INS_ORIGIN, P_INS_ORIGIN_FULL, P_INS_GH, P_INS_GH_B, P_INS_SQUID, P_INS_SQUID_STARE = \
    18801, 18802, 18811, 18812, 18821, 18822
ORIGIN_NAME = "origin.inspect.test"
INSPECT_KA = int(os.environ.get("BENCH_INSPECT_KA", "60000"))
INSPECT_KA_CONNS = int(os.environ.get("BENCH_INSPECT_KA_CONNS", "64"))
INSPECT_NEW = int(os.environ.get("BENCH_INSPECT_NEW", "2000"))
INSPECT_NEW_PAR = int(os.environ.get("BENCH_INSPECT_NEW_PAR", "16"))


def inspect_scenarios():
    names = ("fwd_inspect_ka", "fwd_inspect_new_full", "fwd_inspect_new")
    if ONLY and not any(n in ONLY for n in names):
        return
    d = os.path.join(OUT, "inspect")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)   # Squid runs as user proxy
    subprocess.run(["gcc", "-O2", "-Wall", "-o", os.path.join(BIN, "inspectload"),
                    os.path.join(HERE, "inspectload.c"), "-lssl", "-lcrypto", "-lpthread"], check=True)

    def ossl(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True)
    f = {n: os.path.join(d, n) for n in ("oca.pem", "oca.key", "o.pem", "o.key", "o.csr", "o.ext",
                                         "ca.pem", "ca.key", "hosts")}
    with open(f["hosts"], "w") as x:
        x.write("127.0.0.1 %s\n" % ORIGIN_NAME)
    ca_args = ["-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f["oca.key"],
         "-out", f["oca.pem"], "-subj", "/CN=Bench Origin CA", *ca_args)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f["ca.key"],
         "-out", f["ca.pem"], "-subj", "/CN=Bench Inspection CA", *ca_args)
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f["o.key"],
         "-out", f["o.csr"], "-subj", "/CN=" + ORIGIN_NAME)
    with open(f["o.ext"], "w") as x:
        x.write("subjectAltName=DNS:%s,IP:127.0.0.1\n" % ORIGIN_NAME)
    ossl("x509", "-req", "-in", f["o.csr"], "-CA", f["oca.pem"], "-CAkey", f["oca.key"], "-CAcreateserial",
         "-out", f["o.pem"], "-days", "30", "-extfile", f["o.ext"])
    for k in ("ca.key", "o.key"):
        os.chmod(f[k], 0o644)
    with open(os.path.join(d, "nginx.conf"), "w") as x:
        srv = ("server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s; %s"
               "keepalive_requests 10000000; location / { return 200 \"0123456789\\n\"; } }\n")
        x.write("daemon off; master_process off; worker_processes 1; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                "events { worker_connections 4096; }\nhttp { access_log off;\n" % (d, d) +
                srv % (P_INS_ORIGIN, f["o.pem"], f["o.key"], "") +
                srv % (P_INS_ORIGIN_FULL, f["o.pem"], f["o.key"], "ssl_session_cache off; ssl_session_tickets off; ") +
                "}\n")
    start("inspect_origin", ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")], P_INS_ORIGIN, cpu="0")
    for tag, port, binary in (("gatehouse_inspect", P_INS_GH, GH), ("gatehouse_inspect_b", P_INS_GH_B, GH_B)):
        if not binary:
            continue
        gconf = os.path.join(d, tag + ".conf")
        with open(gconf, "w") as x:
            x.write('global: { workers = 1; user = ""; state_dir = "%s"; max_connections_per_client = 0;\n'
                    '  log: { error = "%s/%s.err"; level = "warn"; access = ""; };\n'
                    '  dns: { hosts_file = "%s"; }; };\n'
                    'forward: { listeners = ( { address = "127.0.0.1:%d"; } ); allow_clients = [ "127.0.0.0/8" ];\n'
                    '  deny_destinations = [ ]; connect_ports = [ %d, %d ];\n'
                    '  inspect: { mode = "all"; ca_cert = "%s"; ca_key = "%s"; upstream_ca_file = "%s"; }; };\n'
                    % (d, d, tag, f["hosts"], port, P_INS_ORIGIN, P_INS_ORIGIN_FULL, f["ca.pem"], f["ca.key"],
                       f["oca.pem"]))
        start(tag, [binary, "-c", gconf], port)
    db = os.path.join(d, "ssl_db")
    subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", db, "-M", "16MB"], check=True,
                   capture_output=True)
    subprocess.run(["chown", "-R", "proxy:", db], check=False)
    for tag, port, bump in (("squid_inspect", P_INS_SQUID, "ssl_bump bump all"),
                            ("squid_stare", P_INS_SQUID_STARE, "ssl_bump stare all\nssl_bump bump all")):
        sd = os.path.join(d, tag)
        os.makedirs(sd, exist_ok=True)
        os.chmod(sd, 0o777)
        with open(os.path.join(sd, "squid.conf"), "w") as x:
            x.write("http_port 127.0.0.1:%d ssl-bump tls-cert=%s tls-key=%s generate-host-certificates=on "
                    "dynamic_cert_mem_cache_size=16MB\nsslcrtd_program /usr/lib/squid/security_file_certgen -s %s "
                    "-M 16MB\nsslcrtd_children 5 startup=1 idle=1\n%s\ntls_outgoing_options cafile=%s\n"
                    "http_access allow localhost\nhttp_access deny all\ncache deny all\naccess_log none\n"
                    "cache_log %s/cache.log\npid_filename %s/squid.pid\ncoredump_dir %s\nworkers 1\n"
                    "max_filedescriptors 40000\nshutdown_lifetime 1 seconds\nhosts_file %s\n"
                    % (port, f["ca.pem"], f["ca.key"], db, bump, f["oca.pem"], sd, sd, sd, f["hosts"]))
        start(tag, ["squid", "-N", "-f", os.path.join(sd, "squid.conf")], port)
    contenders = [("gatehouse", "gatehouse_inspect", P_INS_GH), ("squid", "squid_inspect", P_INS_SQUID),
                  ("squid-stare", "squid_stare", P_INS_SQUID_STARE)]
    contenders[1:1] = [("gatehouse-B", "gatehouse_inspect_b", P_INS_GH_B)] if GH_B else []

    def cpu0_busy():
        """CPU 0's busy and total jiffies (/proc/stat): the load side's share of its core."""
        with open("/proc/stat") as x:
            for line in x:
                if line.startswith("cpu0 "):
                    v = [int(n) for n in line.split()[1:]]
                    return sum(v) - v[3] - v[4], sum(v)
        return 0, 1

    def measured(c, args):
        """One inspectload run, plus how much of a core the proxy (core) and the
        whole of CPU 0 (cpu0: the load tool, the origin, anyone else) used."""
        b0, t0, p0, w0 = *cpu0_busy(), cpu_s(c[1]), time.time()
        r = tool("inspectload", "-x", c[2], "-H", ORIGIN_NAME, "-C", f["ca.pem"], *args, timeout=600)
        b1, t1, p1, w1 = *cpu0_busy(), cpu_s(c[1]), time.time()
        return {"rps": float(r.get("rate", "0/s").rstrip("/s")), "req": int(r.get("ok", 0)),
                "err": int(r.get("err", 1)), "core": (p1 - p0) / max(w1 - w0, 1e-6),
                "cpu0": (b1 - b0) / max(t1 - t0, 1)}

    def ka_run(c, warm):
        n = 1 if warm else INSPECT_KA_CONNS
        return measured(c, ["-p", P_INS_ORIGIN, "-n", n, "-c", n, "-k", 10 if warm else INSPECT_KA // n])

    def new_runner(oport):
        def run(c, warm):
            return measured(c, ["-p", oport, "-n", 50 if warm else INSPECT_NEW, "-c", INSPECT_NEW_PAR])
        return run
    keys = ["rps", "cpu_us_per_req", "core", "cpu0"]
    interleave("fwd_inspect_ka", contenders, ka_run, "req/s", keys)
    interleave("fwd_inspect_new_full", contenders, new_runner(P_INS_ORIGIN_FULL), "conn/s", keys)
    interleave("fwd_inspect_new", contenders, new_runner(P_INS_ORIGIN), "conn/s", keys)
    for n in ("gatehouse_inspect", "gatehouse_inspect_b", "squid_inspect", "squid_stare", "inspect_origin"):
        stop(n)


def profile():
    """perf record (flat, 499 Hz) of Gatehouse under wrk -c50: reverse, then forward."""
    log("== profile")
    for n in ("gatehouse",):
        stop(n)
    start_gatehouse("gatehouse", P_GH_REV, P_GH_FWD)
    fwd_env = {"WRK_PATH": "http://127.0.0.1:%d/" % P_ORIGIN, "WRK_HOST": "127.0.0.1:%d" % P_ORIGIN}
    for side, port, env in (("reverse", P_GH_REV, None), ("forward", P_GH_FWD, fwd_env)):
        data = os.path.join(OUT, "perf-%s.data" % side)
        rec = subprocess.Popen(["perf", "record", "-F", "499", "-p", str(PROCS["gatehouse"].pid),
                                "-o", data, "--", "sleep", "6"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wrk(port, 50, 8, "/", env)
        rec.wait(30)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                              "--sort", "dso,symbol", "--percent-limit", "0.7"],
                             capture_output=True, text=True)
        text = "\n".join(l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#"))
        with open(os.path.join(OUT, "perf-%s.txt" % side), "w") as f:
            f.write(text + "\n")
        log("-- perf top, %s (self %%):\n%s" % (side, "\n".join(text.splitlines()[:30])))
    stop("gatehouse")


def profile_h2():
    """perf record (call graphs, 999 Hz) of Gatehouse under h2load -c50 -m10
    (only with BENCH_ONLY=profile_h2): perf-h2.txt, self and children."""
    log("== profile_h2")
    data = os.path.join(OUT, "perf-h2.data")
    rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(PROCS["gatehouse"].pid),
                            "-o", data, "--", "sleep", "6"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    h2load(P_GH_REV + TLS_OFF, 50, 10, 8)
    rec.wait(30)
    for mode, extra in (("self", ["--no-children"]), ("children", ["--children"])):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none", "--sort", "dso,symbol",
                              "--percent-limit", "0.5"] + extra, capture_output=True, text=True)
        text = "\n".join(l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#"))
        with open(os.path.join(OUT, "perf-h2-%s.txt" % mode), "w") as f:
            f.write(text + "\n")
        log("-- perf, h2 (%s %%):\n%s" % (mode, "\n".join(text.splitlines()[:45])))


BETTER_LOW = {"cpu_us_per_req", "p50", "p99", "p999", "cpu", "bytes_per_conn"}


def print_table():
    print("| Scenario | Metric | " + " | ".join(["contender", "median", "range", "GH/peer"]) + " |")
    print("|---|---|---|---|---|---|")
    for sc, r in RESULTS.items():
        med = r["median"]
        gh = med.get("gatehouse", {})
        for k in r["keys"]:
            for label, m in med.items():
                ratio = ""
                if label not in ("gatehouse", "gatehouse+log") and gh.get(k) and m.get(k):
                    ratio = "%.2f" % (gh[k] / m[k])
                lo, hi = m["range"][k]
                print("| %s | %s | %s | %.1f | %.1f–%.1f | %s |" % (sc, k, label, m[k], lo, hi, ratio))
            print("| | | | | | |")
        errs = {l: m["errors"] for l, m in med.items() if m["errors"]}
        if errs:
            print("| %s | errors | %s | | | |" % (sc, errs))


if __name__ == "__main__":
    try:
        main()
    finally:
        for n in list(PROCS):
            stop(n)
        subprocess.run(["rm", "-rf", NGINX_CACHE_DIR])
