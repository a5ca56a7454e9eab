"""Time bounds on a request (issue #13 class review): a request body that
trickles in below global.timeouts.client_body_min_rate is cut (408, close
reason body_too_slow) on the streamed and the DLP-held path, while a steady
upload is not; a DNS query that never gets an answer is bounded by
upstream_connect (504 "DNS timeout") even when the resolver's own timeout is
long."""
import socket
import time

import pytest

import gh
from test_h_faults import FakeDns


def conf(ports, timeouts, dns="", dlp=False):
    dlp_text = """dlp: { action = "deny"; oversize = "allow"; max_scan_bytes = "64k";
                 detectors = [ "credit_card" ]; };""" if dlp else ""
    return """
@GLOBAL@ timeouts: { %s }; %s };
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [];
  policy = ( { name = "all"; action = "allow"; } );
  %s
};
admin: { metrics_listen = "127.0.0.1:%d"; };
""" % (timeouts, dns, ports[0], dlp_text, ports[1])


def start(ports, timeouts, **kw):
    g = gh.Gatehouse(conf(ports, timeouts, **kw)).start([ports[0], ports[1]])
    g.port, g.mport = ports[0], ports[1]
    return g


def upload(port, origin_port, total, step, gap, limit):
    """POST total bytes through the proxy, step bytes every gap seconds, for
    at most limit seconds; returns (first response bytes or b"", seconds)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.01)
    t0 = time.time()
    s.sendall(b"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
              b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (origin_port, origin_port, total))
    sent, resp = 0, b""
    try:
        while time.time() - t0 < limit:
            if sent < total:
                n = min(step, total - sent)
                try:
                    s.sendall(b"x" * n)
                except OSError:
                    break
                sent += n
            end = time.time() + gap
            while time.time() < end:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    b = b""
                if not b:
                    return resp, time.time() - t0
                resp += b
                if sent >= total and b"\r\n\r\n" in resp:
                    return resp, time.time() - t0
            if resp and sent < total:
                return resp, time.time() - t0
        return resp, time.time() - t0
    finally:
        s.close()


@pytest.mark.parametrize("dlp", [False, True], ids=["streamed", "dlp_held"])
def test_slow_body_is_cut_by_min_rate_steady_upload_is_not(netns, origin, ports, dlp):
    # grace = client_body = 1.0 s; 2 bytes every 0.4 s (5 B/s) never pauses
    # 1 s, so only the default 1024 B/s average bound can end it
    g = start(ports, "client_body = 1.0; client_idle = 30.0;", dlp=dlp)
    try:
        resp, took = upload(g.port, origin.port, 100000, 2, 0.4, 8.0)
        assert resp.startswith(b"HTTP/1.1 408"), (resp[:200], took)
        assert 0.9 < took < 4.0, took
        # steady 5000 B/s (500 B every 0.1 s) for about 3 s: far above the rate
        resp, took = upload(g.port, origin.port, 15000, 500, 0.1, 15.0)
        assert resp.startswith(b"HTTP/1.1 200"), (resp[:200], took)
        assert took > 2.5, took
        m = gh.metrics(g.mport)
        assert m.get('gatehouse_connections_closed_total{reason="body_too_slow"}') == 1, \
            {k: v for k, v in m.items() if "closed" in k}
    finally:
        g.check_clean()


def test_min_rate_zero_keeps_only_the_pause_bound(netns, origin, ports):
    g = start(ports, "client_body = 1.0; client_body_min_rate = 0;")
    try:
        resp, took = upload(g.port, origin.port, 100000, 2, 0.4, 3.0)
        assert resp == b"" and took >= 3.0, (resp[:200], took)
    finally:
        g.check_clean()


def test_dns_that_never_answers_is_bounded_by_upstream_connect(netns, origin, ports):
    # evdns alone would wait 30 s x 2 attempts: only the new bound can answer
    d = FakeDns("swallow")   # reads every query, never answers
    g = start(ports, "upstream_connect = 1.5;",
              dns='dns: { servers = [ "127.0.0.1:%d" ]; timeout = 30.0; hosts_file = ""; };' % d.port)
    try:
        t0 = time.time()
        rc, out, err = gh.curl("-s", "-o", "-", "-w", "\n%{http_code}", "-x", "http://127.0.0.1:%d" % g.port,
                               "http://never-answers.test:%d/" % origin.port, timeout=10)
        took = time.time() - t0
        body, _, code = out.rpartition(b"\n")
        assert code == b"504" and 1.3 < took < 5.0, (rc, code, took)
        assert d.queries >= 1
        m = gh.metrics(g.mport)
        assert m.get("gatehouse_dns_failures_total") == 1, m.get("gatehouse_dns_failures_total")
        # the worker still serves, and a second query is bounded the same way
        assert gh.curl_status("-x", "http://127.0.0.1:%d" % g.port,
                              "http://127.0.0.1:%d/size/1" % origin.port) == 200
        t0 = time.time()
        assert gh.curl_status("-x", "http://127.0.0.1:%d" % g.port,
                              "http://other.test:%d/" % origin.port) == 504
        assert time.time() - t0 < 5.0
    finally:
        g.check_clean()
        d.stop()
