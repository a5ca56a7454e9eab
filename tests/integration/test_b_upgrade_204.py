"""Bug regressions found by the hardening suite: an h2c Upgrade must not open a
tunnel past routing (only WebSocket upgrades are tunnelled), and a 204 is
never relayed with a Content-Length (RFC 9110 8.6)."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gh  # noqa: E402


def _origin(answer):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    seen = bytearray()

    def serve(c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = c.recv(65536)
            if not b:
                return
            buf += b
        seen.extend(buf)
        answer(c, buf, seen)

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls, ls.getsockname()[1], seen


def _gw(rport, oport):
    return gh.Gatehouse("""
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = ( { name = "o"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { default = true; routes = ( { path = "/public/"; upstream = "o"; } ); } );
};""" % (rport, oport)).start([rport])


def test_h2c_upgrade_is_not_tunnelled_past_routing():
    """BUG 1: Gatehouse forwards `Upgrade: h2c` and, when the origin answers
    101, tunnels raw bytes: a request for a path with no route (/private/)
    then reaches the origin through the tunnel opened on /public/."""
    def answer(c, buf, seen):
        if b"upgrade: h2c" in buf.lower():
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            while True:
                b = c.recv(65536)
                if not b:
                    return
                seen.extend(b)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    ls, oport, seen = _origin(answer)
    rport = gh.free_port()
    g = _gw(rport, oport)
    try:
        s = socket.create_connection(("127.0.0.1", rport), timeout=3)
        s.sendall(b"GET /public/x HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                  b"Connection: Upgrade, HTTP2-Settings\r\n\r\n")
        time.sleep(0.3)
        resp = s.recv(4096)
        if resp.startswith(b"HTTP/1.1 101"):
            s.sendall(b"GET /private/secret HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
        assert b"/private/secret" not in seen, "tunnelled past routing: %r" % bytes(seen)
        assert b"upgrade: h2c" not in bytes(seen).lower()
    finally:
        g.stop()
        ls.close()


def test_204_response_content_length_is_not_relayed():
    """BUG 2 (minor): a 204 from the origin carrying Content-Length: 6 is
    relayed with that header (RFC 9110 8.6: a server MUST NOT send
    Content-Length in a 204); a downstream cache/proxy that trusts it desyncs."""
    ls, oport, seen = _origin(lambda c, buf, seen: c.sendall(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n"))
    rport = gh.free_port()
    g = _gw(rport, oport)
    try:
        resp = gh.raw_exchange(rport, b"GET /public/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = resp.split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 204")
        assert b"content-length" not in head, head
    finally:
        g.stop()
        ls.close()
