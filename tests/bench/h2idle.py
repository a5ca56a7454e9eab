#!/usr/bin/python3
"""Memory per idle HTTP/2 connection (issue 17): N TLS connections that
negotiated h2 and exchanged SETTINGS, then sit idle; the server's RSS growth
divided by N.  Gatehouse (reverse TLS listener, http2 on by default) and
nginx (`listen ... ssl http2`) with the same ECDSA certificate, one worker
each, in the same run.  Loopback only.

    /usr/bin/python3 tests/bench/h2idle.py [N]   (GATEHOUSE_BIN, default build/gatehouse)
"""
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "build", "gatehouse"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening" % port)


def hold(port, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    conns = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                            server_hostname="bench.test")
        assert s.selected_alpn_protocol() == "h2"
        s.sendall(PREFACE)
        s.recv(65536)              # the server's SETTINGS (and maybe more)
        s.sendall(SETTINGS_ACK)
        conns.append(s)
    return conns


def measure(name, pid, port):
    hold(port, 20)                 # warm: lazily built state exists
    time.sleep(0.5)
    before = rss_kb(pid)
    conns = hold(port, N)
    time.sleep(1.0)
    after = rss_kb(pid)
    for s in conns:
        s.close()
    per = (after - before) * 1024 / N
    print("%-10s %d idle h2 connections: RSS %d kB -> %d kB: %.0f bytes/connection" % (name, N, before, after, per))
    return per


def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    d = tempfile.mkdtemp(prefix="h2idle-")
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench.test"], check=True,
                   capture_output=True)
    gport, nport = 28441, 28442
    with open(os.path.join(d, "g.conf"), "w") as f:
        f.write('global: { workers = 1; user = ""; state_dir = "%s"; max_connections_per_client = 0;\n'
                '  log: { error = "%s/g.err"; level = "warn"; access = ""; }; };\n'
                'reverse: { listeners = ( { address = "127.0.0.1:%d"; tls = true; } );\n'
                '  certificates = ( { cert = "%s"; key = "%s"; } );\n'
                '  sites = ( { default = true; routes = ( { path = "/"; redirect = "https://x.test/"; } ); } ); };\n'
                % (d, d, gport, crt, key))
    with open(os.path.join(d, "n.conf"), "w") as f:
        f.write("daemon off; master_process off; worker_processes 1; pid %s/n.pid; error_log %s/n.err error;\n"
                "events { worker_connections 20000; }\n"
                "http { access_log off; client_body_temp_path %s/b; proxy_temp_path %s/p;\n"
                "  keepalive_timeout 120s; http2_idle_timeout 120s;\n"
                "  server { listen 127.0.0.1:%d ssl http2; ssl_certificate %s; ssl_certificate_key %s;\n"
                "    ssl_protocols TLSv1.2 TLSv1.3; location / { return 302 https://x.test/; } } }\n"
                % (d, d, d, d, nport, crt, key))
    g = subprocess.Popen([BIN, "-c", os.path.join(d, "g.conf")])
    n = subprocess.Popen(["nginx", "-c", os.path.join(d, "n.conf")], stderr=subprocess.DEVNULL)
    try:
        wait_port(gport)
        wait_port(nport)
        measure("gatehouse", g.pid, gport)
        measure("nginx", n.pid, nport)
    finally:
        g.terminate()
        n.terminate()
        g.wait(30)
        n.wait(30)
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
