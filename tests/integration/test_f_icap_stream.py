"""ICAP (issue 19) with large bodies, against the real c-icap: the response
is relayed to the client while the origin is still sending it (echo's 200
streams back, echo's 204 in the preview lets the original go on), so the
client holds the first part of a download whose origin has not sent the
rest yet; and the whole body arrives byte-identical."""
import socket
import threading
import time

import pytest

import gh
import icap_peers

PART = bytes((i * 13 + (i >> 8)) % 253 for i in range(200 * 1024))   # before the origin waits
REST = bytes((i * 5 + 1) % 251 for i in range(300 * 1024))           # after it


def conf(port, icap_port):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%(P)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = ( { name = "echo"; uri = "icap://127.0.0.1:%(I)d/echo"; max_body_bytes = "4M"; } );
  icap_default = [ "echo" ];
};
""" % dict(P=port, I=icap_port)


class Gate:
    """The origin sends PART, then waits until the client holds all of it
    (or 20 s), then REST; .early says the client had PART first."""

    def __init__(self):
        self.client_has_part = threading.Event()
        self.early = []

    def script(self, c, n):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % (len(PART) + len(REST)) + PART)
        self.early.append(self.client_has_part.wait(20))
        self.client_has_part.clear()
        return REST


@pytest.fixture(scope="module")
def env():
    peers = icap_peers.IcapPeers(with_clamd=False).start()
    g = origin = None
    try:
        gate = Gate()
        origin = gh.ScriptOrigin(gate.script)
        port = gh.free_port()
        g = gh.Gatehouse(conf(port, peers.port))
        g.start(wait_ports=[port])
        yield g, port, origin, gate
    finally:
        icap_peers.stop_all(origin, g, peers)


def fetch(port, origin_port, gate):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"GET http://127.0.0.1:%d/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                  % (origin_port, origin_port))
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(65536)
            assert b, buf
            buf += b
        head, body = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        chunked = b"transfer-encoding: chunked" in head.lower()
        raw = body
        deadline = time.monotonic() + 30
        while True:
            data = dechunk(raw) if chunked else (raw, len(raw) >= len(PART) + len(REST))
            if len(data[0]) >= len(PART) and not gate.client_has_part.is_set():
                gate.client_has_part.set()
            if data[1]:
                return data[0]
            assert time.monotonic() < deadline, len(data[0])
            b = s.recv(65536)
            assert b, "closed after %d bytes" % len(data[0])
            raw += b
    finally:
        s.close()


def dechunk(raw):
    """(body so far, complete) of a chunked body."""
    out, i = b"", 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return out, False
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            return out, raw.find(b"\r\n", j + 2) >= 0
        if len(raw) < j + 2 + size + 2:
            return out + raw[j + 2:j + 2 + size], False
        out += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def test_large_body_streams_through_echo_200_and_204(env):
    g, port, origin, gate = env
    # c-icap 0.5's echo answers 200 (echoed as it reads) and 204 (in the
    # preview) in turn: four downloads see both; each must reach the client
    # in part before the origin sends the rest
    for i in range(4):
        body = fetch(port, origin.port, gate)
        assert body == PART + REST, (i, len(body))
    assert gate.early == [True] * 4, gate.early
    deadline = time.monotonic() + 10   # (the log line may trail the response)
    while True:
        lines = g.access_lines(wait=0)
        if (any("ICAP echo: modified (200)" in ln for ln in lines) and
                any("ICAP echo: unchanged (204)" in ln for ln in lines)):
            break
        assert time.monotonic() < deadline, lines[-4:]
        time.sleep(0.1)
