"""Forward proxy through the core: absolute-form requests, bodies, keep-alive,
pipelining, CONNECT tunnels, client and port restrictions."""
import json
import socket
import time

import pytest

import gh


def fwd_conf(port, allow='"127.0.0.0/8"', connect_ports="443", extra=""):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ %s ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %s ];
  %s
};
""" % (port, allow, connect_ports, extra)


@pytest.fixture
def fwd(origin, ports):
    g = gh.Gatehouse(fwd_conf(ports[0], connect_ports="443, %d" % origin.port)).start([ports[0]])
    g.port = ports[0]
    g.proxy = "http://127.0.0.1:%d" % ports[0]
    yield g
    g.check_clean()


def test_get_through_proxy(fwd, origin):
    rc, out, err = gh.curl("-x", fwd.proxy, "http://127.0.0.1:%d/echo" % origin.port)
    assert rc == 0, err
    d = json.loads(out)
    assert d["method"] == "GET"
    assert d["target"] == "/echo"          # origin-form upstream
    hdrs = {k.lower(): v for k, v in d["headers"]}
    assert hdrs["host"] == "127.0.0.1:%d" % origin.port
    assert hdrs["via"] == "1.1 gatehouse"
    assert hdrs["x-forwarded-for"] == "127.0.0.1"
    assert "proxy-connection" not in hdrs


def test_response_has_via_and_access_log(fwd, origin):
    rc, out, err = gh.curl("-i", "-x", fwd.proxy, "http://127.0.0.1:%d/size/10" % origin.port)
    assert rc == 0
    assert b"Via: 1.1 gatehouse" in out
    lines = [l for l in fwd.access_lines() if "/size/10" in l]
    assert len(lines) == 1
    assert " 200 " in lines[0] and "forward" in lines[0] and "verdict=allow" in lines[0]
    assert "up=127.0.0.1:%d" % origin.port in lines[0]


def test_post_content_length(fwd, origin):
    rc, out, err = gh.curl("-x", fwd.proxy, "--data-binary", "hello world",
                           "http://127.0.0.1:%d/echo" % origin.port)
    d = json.loads(out)
    assert d["method"] == "POST" and d["body"] == "hello world"


def test_post_chunked_is_rechunked(fwd, origin):
    rc, out, err = gh.curl("-x", fwd.proxy, "-H", "Transfer-Encoding: chunked", "--data-binary",
                           "@-", "http://127.0.0.1:%d/echo" % origin.port, input=b"a" * 70000)
    d = json.loads(out)
    assert d["nbytes"] == 70000
    hdrs = {k.lower(): v for k, v in d["headers"]}
    assert hdrs["transfer-encoding"] == "chunked"


def test_chunked_response_relayed(fwd, origin):
    rc, out, err = gh.curl("-x", fwd.proxy, "http://127.0.0.1:%d/chunked/5000" % origin.port)
    assert rc == 0 and out == b"y" * 5000


def test_close_delimited_response_rechunked_for_http11(fwd, origin):
    rc, out, err = gh.curl("-i", "-x", fwd.proxy, "http://127.0.0.1:%d/close/3000" % origin.port)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    rc, out, err = gh.curl("-x", fwd.proxy, "http://127.0.0.1:%d/close/3000" % origin.port)
    assert out == b"z" * 3000


def test_http10_client_never_gets_chunked(fwd, origin):
    req = b"GET http://127.0.0.1:%d/chunked/2000 HTTP/1.0\r\n\r\n" % origin.port
    resp = gh.raw_exchange(fwd.port, req)
    head, body = resp.split(b"\r\n\r\n", 1)
    assert b"chunked" not in head.lower()
    assert body == b"y" * 2000


def test_keepalive_client_and_upstream_reuse(fwd, origin):
    url = "http://127.0.0.1:%d/size/5" % origin.port
    rc, out, err = gh.curl("-x", fwd.proxy, "-w", "%{num_connects}\n", url, url, url)
    # three answers over one client connection
    assert out.count(b"xxxxx") == 3
    assert out == b"xxxxx1\nxxxxx0\nxxxxx0\n"
    # and one pooled upstream connection
    assert origin.connections == 1


def test_pipelined_requests_answered_in_order(fwd, origin):
    reqs = b"".join(b"GET http://127.0.0.1:%d/size/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    % (origin.port, n) for n in (3, 1, 2))
    reqs += b"GET http://127.0.0.1:%d/size/4 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % origin.port
    resp = gh.raw_exchange(fwd.port, reqs)
    bodies = [p.split(b"\r\n\r\n", 1)[1][:4] for p in resp.split(b"HTTP/1.1 200")[1:]]
    assert len(bodies) == 4
    assert [b.count(b"x") for b in bodies] == [3, 1, 2, 4]


def test_connect_tunnel(fwd, origin):
    rc, out, err = gh.curl("-p", "-x", fwd.proxy, "http://127.0.0.1:%d/size/7" % origin.port)
    assert rc == 0, err
    assert out == b"xxxxxxx"


def test_connect_tunnel_raw_halfclose(fwd, origin):
    s = socket.create_connection(("127.0.0.1", fwd.port), timeout=5)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (origin.port, origin.port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length" not in head.lower() and b"transfer-encoding" not in head.lower()
    s.sendall(b"GET /size/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    assert data.endswith(b"xxx")


def test_connect_port_not_allowed(fwd, origin):
    resp = gh.raw_exchange(fwd.port, b"CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n",
                           read_timeout=2)
    assert resp.startswith(b"HTTP/1.1 403")
    assert b"port 25" in resp


def test_client_not_allowed(origin, ports):
    g = gh.Gatehouse(fwd_conf(ports[0], allow='"10.0.0.0/8"')).start([ports[0]])
    try:
        st = gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0], "http://127.0.0.1:%d/size/1" % origin.port)
        assert st == 403
        assert origin.requests == []
        assert any("allow_clients" in l and " 403 " in l for l in g.access_lines())
    finally:
        g.check_clean()


def test_deny_destination_after_dns(origin, ports):
    conf = fwd_conf(ports[0]).replace('"169.254.0.0/16"', '"127.0.0.0/8", "::1/128"')
    g = gh.Gatehouse(conf).start([ports[0]])
    try:
        # "localhost" resolves (hosts file) to a denied address
        st = gh.curl_status("-x", "http://127.0.0.1:%d" % ports[0], "http://localhost:%d/size/1" % origin.port)
        assert st == 403
        assert origin.requests == []
    finally:
        g.check_clean()


def test_never_proxies_to_itself(fwd):
    st = gh.curl_status("-x", fwd.proxy, "http://127.0.0.1:%d/" % fwd.port)
    assert st == 403


def test_origin_form_to_proxy_is_400(fwd):
    resp = gh.raw_exchange(fwd.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400")


def test_dns_failure_gives_502(fwd):
    st = gh.curl_status("-x", fwd.proxy, "http://no-such-host.invalid/")
    assert st == 502


def test_expect_100_continue(fwd, origin):
    rc, out, err = gh.curl("-v", "-x", fwd.proxy, "-H", "Expect: 100-continue", "--data-binary",
                           "@-", "http://127.0.0.1:%d/echo" % origin.port, input=b"b" * 2000)
    assert "100 Continue" in err
    assert json.loads(out)["nbytes"] == 2000


def test_max_forwards_zero_answered_locally(fwd, origin):
    resp = gh.raw_exchange(fwd.port, b"OPTIONS http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n"
                           b"Max-Forwards: 0\r\nConnection: close\r\n\r\n" % origin.port)
    assert resp.startswith(b"HTTP/1.1 200") and b"Allow:" in resp
    assert origin.requests == []
    resp = gh.raw_exchange(fwd.port, b"OPTIONS http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: x\r\n"
                           b"Max-Forwards: 5\r\nConnection: close\r\n\r\n" % origin.port)
    d = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert dict((k.lower(), v) for k, v in d["headers"])["max-forwards"] == "4"
