"""ICAP chaining (issue 19): a rule's icap list with two respmod services
runs them in order, each on the previous one's output, against the real
c-icap (echo, which answers 200 and 204 in turn, and virus_scan backed by
clamd with the test's EICAR signature).  A clean file passes both services
byte-identical; EICAR is blocked whichever place the scanner has; a block
ends the chain (the service after it never sees the response); a first
service that is down and may be bypassed leaves the response to the next."""
import os
import time

import pytest

import gh
import icap_peers
from test_f_icap_faults import BadIcap

CLEAN = bytes((i * 11 + (i >> 7)) % 251 for i in range(300 * 1024))


def conf(port, icap_port, dead_port, stub_port):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%(P)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = (
    { name = "av"; uri = "icap://127.0.0.1:%(I)d/virus_scan"; },
    { name = "echo"; uri = "icap://127.0.0.1:%(I)d/echo"; },
    { name = "gone"; uri = "icap://127.0.0.1:%(D)d/x"; bypass_on_error = true; timeout = 5; },
    { name = "stub"; uri = "icap://127.0.0.1:%(S)d/xfer"; }
  );
  policy = (
    { name = "echo-av"; action = "allow"; urls = [ "/echo-av/" ]; icap = [ "echo", "av" ]; },
    { name = "av-echo"; action = "allow"; urls = [ "/av-echo/" ]; icap = [ "av", "echo" ]; },
    { name = "gone-av"; action = "allow"; urls = [ "/gone-av/" ]; icap = [ "gone", "av" ]; },
    { name = "echo-stub"; action = "allow"; urls = [ "/echo-stub/" ]; icap = [ "echo", "stub" ]; },
    { name = "all"; action = "allow"; }
  );
};
""" % dict(P=port, I=icap_port, D=dead_port, S=stub_port)


@pytest.fixture(scope="module")
def env():
    peers = icap_peers.IcapPeers().start()
    origin = g = stub = None
    try:
        origin = gh.CacheOrigin()
        stub = BadIcap()
        for pre in ("/echo-av", "/av-echo", "/gone-av", "/echo-stub"):
            origin.script(pre + "/eicar.com", headers=[("Content-Type", "application/octet-stream")],
                          body=icap_peers.EICAR)
            origin.script(pre + "/clean.bin", headers=[("Content-Type", "application/octet-stream")],
                          body=CLEAN)
            origin.script(pre + "/a.jpg", headers=[("Content-Type", "image/jpeg")], body=CLEAN)
            origin.script(pre + "/clean-chunked.bin", headers=[("Content-Type", "application/octet-stream")],
                          body=CLEAN, chunked=True)
        port = gh.free_port()
        g = gh.Gatehouse(conf(port, peers.port, gh.free_port(), stub.port))
        g.start(wait_ports=[port])
        g.stub = stub
        yield g, port, origin, peers
    finally:
        if stub is not None:
            stub.sock.close()
        icap_peers.stop_all(origin, g, peers)


def get(env, path):
    return icap_peers.proxied_get(env[1], env[2].port, path)


def reason_of(g, path):
    """The access line of the last request for path (polled: it may trail)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in g.access_lines(wait=0) if path in ln]
        if lines and "reason=" in lines[-1]:
            return lines[-1]
        assert time.monotonic() < deadline, lines[-2:]
        time.sleep(0.1)


def icap_log(peers):
    with open(os.path.join(peers.dir, "access.log"), errors="replace") as f:
        return f.read().splitlines()


def services_seen(peers, before):
    """c-icap's access lines since before: how many named echo, virus_scan."""
    new = icap_log(peers)[before:]
    return sum(" RESPMOD echo " in ln for ln in new), sum(" RESPMOD virus_scan " in ln for ln in new)


def wait_seen(peers, before, want):
    deadline = time.monotonic() + 10
    while services_seen(peers, before) != want:
        assert time.monotonic() < deadline, (services_seen(peers, before), want, icap_log(peers)[before:])
        time.sleep(0.1)


def test_clean_file_passes_both_services_identical(env):
    g, _, _, peers = env
    # echo first: its 200 (the body echoed) and its 204 (the original) each
    # go on to virus_scan, which must see the whole body both times
    for path in ("/echo-av/clean.bin", "/echo-av/clean-chunked.bin") * 2:
        before = len(icap_log(peers))
        code, body = get(env, path)
        assert code == 200 and body == CLEAN, (path, code, len(body))
        wait_seen(peers, before, (1, 1))
        line = reason_of(g, path)
        assert "ICAP echo: " in line and "; ICAP av: " in line, line
    for path in ("/av-echo/clean.bin", "/av-echo/clean-chunked.bin"):
        before = len(icap_log(peers))
        code, body = get(env, path)
        assert code == 200 and body == CLEAN, (path, code, len(body))
        wait_seen(peers, before, (1, 1))


def test_eicar_blocked_in_either_place(env):
    g, _, _, peers = env
    for _ in range(2):   # (echo 200 and 204 in turn before the scanner)
        before = len(icap_log(peers))
        code, body = get(env, "/echo-av/eicar.com")
        assert code == 403 and b"VIRUS FOUND" in body and icap_peers.EICAR not in body, (code, body[:300])
        wait_seen(peers, before, (1, 1))
        assert "ICAP av: eicar.com.UNOFFICIAL" in reason_of(g, "/echo-av/eicar.com")


def test_block_ends_the_chain(env):
    g, _, _, peers = env
    before = len(icap_log(peers))
    code, body = get(env, "/av-echo/eicar.com")
    assert code == 403 and b"VIRUS FOUND" in body, (code, body[:300])
    wait_seen(peers, before, (0, 1))   # echo never got the response
    time.sleep(0.3)
    assert services_seen(peers, before) == (0, 1)
    line = reason_of(g, "/av-echo/eicar.com")
    assert "ICAP av: eicar.com.UNOFFICIAL" in line and "ICAP echo" not in line, line


def test_bypassed_first_service_leaves_it_to_the_next(env):
    g, _, _, peers = env
    code, body = get(env, "/gone-av/eicar.com")
    assert code == 403 and b"VIRUS FOUND" in body, (code, body[:300])
    code, body = get(env, "/gone-av/clean.bin")
    assert code == 200 and body == CLEAN


def test_transfer_ignore_of_a_later_service(env):
    """The second service's Transfer-Ignore (jpg) skips it in the chain:
    the first one still scans, the client gets the file whole."""
    g, _, _, peers = env
    code, body = get(env, "/echo-stub/clean.bin")   # (the stub's OPTIONS are learnt)
    assert code == 200 and body == CLEAN
    with g.stub.lock:
        sent = [x for x in g.stub.seen if x[0] == "xfer" and x[1] == "RESPMOD"]
    assert len(sent) == 1 and b"/echo-stub/clean.bin" in sent[0][2], sent
    # what echo left (its 200's head, or the original's after its 204) reached the stub
    assert b"HTTP/1.1 200" in sent[0][2]
    before = len(icap_log(peers))
    code, body = get(env, "/echo-stub/a.jpg")
    assert code == 200 and body == CLEAN
    wait_seen(peers, before, (1, 0))
    with g.stub.lock:
        assert len([x for x in g.stub.seen if x[0] == "xfer" and x[1] == "RESPMOD"]) == 1, g.stub.seen
