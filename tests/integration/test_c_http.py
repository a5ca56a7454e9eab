"""Forwarding rules shared by both sides, logs, DNS failover, privileges."""
import json
import os
import pwd
import signal
import socket
import time

import pytest

import gh


def conf(fport, rport, origin_port, extra_global="", hosts=None, access_format="combined"):
    g = ('global: { workers = 2; user = "%s"; state_dir = "@DIR@";\n'
         '  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; access_format = "%s"; };\n'
         '  dns: { hosts_file = "%s"; servers = [ "127.0.0.1:9" ]; timeout = 0.3; };\n  %s };\n'
         % ("", access_format, hosts or "/etc/hosts", extra_global))
    return g + """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [];
};
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "o"; } ); } );
};
""" % (fport, rport, origin_port)


def start(c, ports):
    g = gh.Gatehouse(c)
    g.write_conf(c)
    return g.start([ports[0], ports[1]])


def test_hop_by_hop_headers_removed(origin, ports):
    g = start(conf(ports[0], ports[1], origin.port), ports)
    try:
        rc, out, _ = gh.curl("-H", "Connection: X-Secret, keep-alive", "-H", "X-Secret: 1",
                             "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers",
                             "-H", "Proxy-Connection: keep-alive", "-H", "X-Kept: yes",
                             "http://127.0.0.1:%d/echo" % ports[1])
        hdrs = {k.lower(): v for k, v in json.loads(out)["headers"]}
        for h in ("x-secret", "keep-alive", "te", "proxy-connection", "connection"):
            assert h not in hdrs, h
        assert hdrs["x-kept"] == "yes"
        assert hdrs["via"] == "1.1 gatehouse"
    finally:
        g.check_clean()


def test_head_204_304_have_no_body_and_date_is_added(origin, ports):
    g = start(conf(ports[0], ports[1], origin.port), ports)
    try:
        s = socket.create_connection(("127.0.0.1", ports[1]), timeout=5)
        s.sendall(b"HEAD /size/100 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nGET /size/2 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        parts = data.split(b"HTTP/1.1 ")[1:]
        assert [p[:3] for p in parts] == [b"200", b"204", b"304", b"200"]
        assert b"Content-Length: 100" in parts[0] and parts[0].endswith(b"\r\n\r\n")
        assert parts[1].endswith(b"\r\n\r\n") and parts[2].endswith(b"\r\n\r\n")
        assert parts[3].endswith(b"\r\n\r\nxx")
        assert all(b"\r\nDate: " in p for p in parts)
    finally:
        g.check_clean()


def test_json_access_log(origin, ports):
    g = start(conf(ports[0], ports[1], origin.port, access_format="json"), ports)
    try:
        gh.curl("-A", 'agent "quoted"', "http://127.0.0.1:%d/size/5" % ports[1])
        lines = g.access_lines()
        rec = json.loads(lines[-1])
        assert rec["status"] == 200 and rec["family"] == "reverse" and rec["method"] == "GET"
        assert rec["target"] == "/size/5" and rec["user_agent"] == 'agent "quoted"'
        assert rec["upstream"] == "127.0.0.1:%d" % origin.port
        assert rec["bytes_out"] > 5 and len(rec["request_id"]) == 16
    finally:
        g.check_clean()


def test_error_page_names_request_id_in_log(ports, origin):
    g = start(conf(ports[0], ports[1], gh.free_port()), ports)
    try:
        rc, out, _ = gh.curl("-H", "Accept: text/html", "http://127.0.0.1:%d/x" % ports[1])
        assert b"<h1>502 Bad Gateway</h1>" in out
        rid = out.split(b"<code>")[1].split(b"</code>")[0].decode()
        assert any("id=" + rid in l for l in g.access_lines())
        rc, out, _ = gh.curl("http://127.0.0.1:%d/x" % ports[1])
        assert out.startswith(b"502 Bad Gateway\n") and b"request id: " in out
    finally:
        g.check_clean()


def test_dns_next_address_on_connect_failure(origin, ports, tmp_path):
    hosts = tmp_path / "hosts"
    # the first address refuses (nothing listens on 127.0.0.3), the second works
    hosts.write_text("127.0.0.3 multi.test\n127.0.0.1 multi.test\n")
    g = start(conf(ports[0], ports[1], origin.port, hosts=str(hosts)), ports)
    try:
        rc, out, err = gh.curl("-x", "http://127.0.0.1:%d" % ports[0],
                               "http://multi.test:%d/size/4" % origin.port)
        assert out == b"xxxx", err
    finally:
        g.check_clean()


def test_dns_timeout_is_bounded(ports, origin, tmp_path):
    # no hosts entry and a name server that never answers (UDP port 9 discards)
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    g = start(conf(ports[0], ports[1], origin.port, hosts=str(hosts)), ports)
    try:
        t0 = time.time()
        st = gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0], "http://nowhere.test/")
        assert st == 502
        assert time.time() - t0 < 3
    finally:
        g.check_clean()


def test_totals_logged_at_exit(origin, ports):
    g = start(conf(ports[0], ports[1], origin.port), ports)
    for _ in range(3):
        gh.curl("http://127.0.0.1:%d/size/1" % ports[1])
    g.check_clean()
    err = g.stderr()
    line = [l for l in err.splitlines() if "totals reverse:" in l][0]
    assert "requests=3" in line and "2xx=3" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user")
def test_drops_privileges_to_global_user(origin, ports):
    c = conf(ports[0], ports[1], origin.port).replace('user = "";', 'user = "nobody";', 1)
    g = gh.Gatehouse(c)
    g.write_conf(c)
    os.chmod(g.dir, 0o755)
    g.start([ports[1]])
    try:
        want = pwd.getpwnam("nobody").pw_uid
        for _ in range(50):   # sockets are bound first, then the user changes
            with open("/proc/%d/status" % g.proc.pid) as f:
                uid = [l for l in f if l.startswith("Uid:")][0].split()[1:]
            if all(int(u) == want for u in uid):
                break
            time.sleep(0.05)
        assert all(int(u) == want for u in uid)
        assert gh.curl("http://127.0.0.1:%d/size/1" % ports[1])[1] == b"x"
    finally:
        g.check_clean()


def test_absolute_form_without_path(origin, ports):
    g = start(conf(ports[0], ports[1], origin.port), ports)
    try:
        resp = gh.raw_exchange(ports[0], b"GET http://127.0.0.1:%d?q=1 HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n" % origin.port)
        assert resp.startswith(b"HTTP/1.1 404")   # the origin answered for "/?q=1"
        assert origin.requests[-1].target == "/?q=1"
    finally:
        g.check_clean()
