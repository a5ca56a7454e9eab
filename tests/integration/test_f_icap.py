"""ICAP (issue 19): responses of the forward side go to a content scanner
over RESPMOD before the client sees them.  Real peers: c-icap with its echo
service and its virus_scan module backed by clamd, whose signature database
the test writes (EICAR's MD5).  The EICAR download is replaced by the
scanner's block page; clean files pass byte-identical (204, or 200 with the
same body); an ICAP server that is down fails open or closed per
bypass_on_error; oversize bodies follow on_oversize."""
import hashlib
import http.client
import json
import os
import subprocess

import pytest

import gh
import icap_peers

CLEAN_SMALL = b"hello, this is a small clean text file\n" * 10          # inside the 1024-byte preview
CLEAN_BIG = bytes((i * 7 + (i >> 9)) % 251 for i in range(300 * 1024))   # outside it


TOKEN = "feedfacecafe0123456789abcdef0123456789abcdef0123456789abcdef4567"


def conf(port, icap_port, dead_port, admin_port=None):
    adm = ('admin: { listen = "127.0.0.1:%d"; users_file = "@DIR@/users"; };' % admin_port
           if admin_port else "")
    return adm + """
forward: {
  listeners = ( { address = "127.0.0.1:%(P)d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  icap = (
    { name = "av"; uri = "icap://127.0.0.1:%(I)d/virus_scan"; method = "respmod";
      bypass_on_error = false; max_body_bytes = "32M"; on_oversize = "pass"; },
    { name = "echo"; uri = "icap://127.0.0.1:%(I)d/echo"; },
    { name = "small"; uri = "icap://127.0.0.1:%(I)d/echo"; max_body_bytes = "64K"; on_oversize = "block"; },
    { name = "small_pass"; uri = "icap://127.0.0.1:%(I)d/echo"; max_body_bytes = "64K"; on_oversize = "pass"; },
    { name = "av_up"; uri = "icap://127.0.0.1:%(I)d/virus_scan"; method = "reqmod"; },
    { name = "echo_up"; uri = "icap://127.0.0.1:%(I)d/echo"; method = "reqmod"; },
    { name = "up_down_open"; uri = "icap://127.0.0.1:%(D)d/x"; method = "reqmod"; bypass_on_error = true; },
    { name = "up_down_closed"; uri = "icap://127.0.0.1:%(D)d/x"; method = "reqmod"; },
    { name = "up_small"; uri = "icap://127.0.0.1:%(I)d/echo"; method = "reqmod"; max_body_bytes = "64K"; },
    { name = "down_open"; uri = "icap://127.0.0.1:%(D)d/x"; bypass_on_error = true; timeout = 5; },
    { name = "down_closed"; uri = "icap://127.0.0.1:%(D)d/x"; bypass_on_error = false; timeout = 5; }
  );
  icap_default = [ "av" ];
  policy = (
    { name = "echo"; action = "allow"; urls = [ "/via-echo/" ]; icap = [ "echo" ]; },
    { name = "small"; action = "allow"; urls = [ "/via-small/" ]; icap = [ "small" ]; },
    { name = "small-pass"; action = "allow"; urls = [ "/via-small-pass/" ]; icap = [ "small_pass" ]; },
    { name = "open"; action = "allow"; urls = [ "/down-open/" ]; icap = [ "down_open" ]; },
    { name = "closed"; action = "allow"; urls = [ "/down-closed/" ]; icap = [ "down_closed" ]; },
    { name = "up-av"; action = "allow"; urls = [ "/up-av/" ]; icap = [ "av_up" ]; },
    { name = "up-echo"; action = "allow"; urls = [ "/up-echo/" ]; icap = [ "echo_up", "echo" ]; },
    { name = "up-down-open"; action = "allow"; urls = [ "/up-down-open/" ]; icap = [ "up_down_open" ]; },
    { name = "up-down-closed"; action = "allow"; urls = [ "/up-down-closed/" ]; icap = [ "up_down_closed" ]; },
    { name = "up-small"; action = "allow"; urls = [ "/up-small/" ]; icap = [ "up_small" ]; },
    { name = "all"; action = "allow"; }
  );
};
""" % dict(P=port, I=icap_port, D=dead_port)


@pytest.fixture(scope="module")
def env():
    peers = icap_peers.IcapPeers().start()
    origin = g = None
    try:
        origin = gh.CacheOrigin()
        for pre in ("/up-av", "/up-echo", "/up-down-open", "/up-down-closed", "/up-small", "", "/via-echo",
                    "/via-small", "/via-small-pass", "/down-open", "/down-closed"):
            origin.script(pre + "/eicar.com", headers=[("Content-Type", "application/octet-stream")],
                          body=icap_peers.EICAR)
            origin.script(pre + "/small.txt", headers=[("Content-Type", "text/plain")], body=CLEAN_SMALL)
            origin.script(pre + "/big.bin", headers=[("Content-Type", "application/octet-stream")],
                          body=CLEAN_BIG)
            origin.script(pre + "/up", body=b"stored\n")
            origin.script(pre + "/big-chunked.bin", headers=[("Content-Type", "application/octet-stream")],
                          body=CLEAN_BIG, chunked=True)
        port, dead, adm = gh.free_port(), gh.free_port(), gh.free_port()
        users = "admin:%s:admin:token_sha256=%s\n" % (gh.crypt_hash("pw-not-used"),
                                                       hashlib.sha256(TOKEN.encode()).hexdigest())
        g = gh.Gatehouse(conf(port, peers.port, dead, adm), extra_files={"users": users})
        g.start(wait_ports=[port, adm])
        g.adm = adm
        yield g, port, origin, peers
    finally:
        try:
            if origin is not None:
                origin.stop()
            if g is not None:
                g.check_clean()
        finally:
            peers.stop()


def get(env, path, *extra):
    g, port, origin, _ = env
    out = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
                          *extra, "http://127.0.0.1:%d%s" % (origin.port, path)],
                         capture_output=True, timeout=60).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


def test_eicar_blocked_with_the_scanners_page(env):
    code, body = get(env, "/eicar.com")
    assert code == 403, body[:500]
    assert b"VIRUS FOUND" in body and b"eicar.com.UNOFFICIAL" in body
    assert icap_peers.EICAR not in body
    line = gh.access_line_for(env[0], "/eicar.com")
    assert "ICAP av: eicar.com.UNOFFICIAL" in line, line


def test_clean_files_pass_byte_identical(env):
    for path, want in (("/small.txt", CLEAN_SMALL), ("/big.bin", CLEAN_BIG),
                       ("/big-chunked.bin", CLEAN_BIG)):
        for _ in range(2):
            code, body = get(env, path)
            assert code == 200 and body == want, (path, code, len(body))
    # c-icap saw the exchanges (its access log names the service)
    with open(os.path.join(env[3].dir, "access.log")) as f:
        log = f.read()
    assert "virus_scan" in log


def test_echo_alternating_200_204_is_identical(env):
    # c-icap 0.5's echo answers bodies 200 (echoed) and 204 in turn
    for _ in range(4):
        code, body = get(env, "/via-echo/big.bin")
        assert code == 200 and body == CLEAN_BIG
        code, body = get(env, "/via-echo/small.txt")
        assert code == 200 and body == CLEAN_SMALL
        code, body = get(env, "/via-echo/big-chunked.bin")
        assert code == 200 and body == CLEAN_BIG
    code, body = get(env, "/via-echo/big.bin", "-I")             # HEAD: no body, nothing to scan
    assert code == 200 and body.startswith(b"HTTP/1.1 200")
    code, body = get(env, "/via-echo/eicar.com")   # echo does not scan
    assert code == 200 and body == icap_peers.EICAR


def test_http10_client_gets_the_block_page(env):
    code, body = get(env, "/eicar.com", "-0")
    assert code == 403 and b"VIRUS FOUND" in body


def test_icap_down_fails_open_or_closed(env):
    code, body = get(env, "/down-open/big.bin")
    assert code == 200 and body == CLEAN_BIG
    code, body = get(env, "/down-closed/big.bin")
    assert code == 502 and CLEAN_BIG[:100] not in body
    assert b"Content scan failed" in body
    err = env[0].stderr()
    assert "ICAP service down_closed" in err and "cannot connect" in err


def test_oversize_pass_and_block(env):
    # Content-Length over max_body_bytes: decided at the head
    code, body = get(env, "/via-small/big.bin")
    assert code == 403
    code, body = get(env, "/via-small-pass/big.bin")
    assert code == 200 and body == CLEAN_BIG
    # chunked: found while the body streams
    code, body = get(env, "/via-small/big-chunked.bin")
    assert code == 403 and b"too large to be scanned" in body
    code, body = get(env, "/via-small-pass/big-chunked.bin")
    assert code == 200 and body == CLEAN_BIG


def post(env, path, data, *extra):
    g, port, origin, _ = env
    out = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
                          "--data-binary", "@-", "-H", "Content-Type: application/octet-stream", *extra,
                          "http://127.0.0.1:%d%s" % (origin.port, path)],
                         input=data, capture_output=True, timeout=60).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


def test_upload_scanned_by_reqmod(env):
    origin = env[2]
    before = origin.count("/up-av/up")
    code, body = post(env, "/up-av/up", icap_peers.EICAR)
    assert code == 403 and b"VIRUS FOUND" in body, body[:300]
    assert origin.count("/up-av/up") == before     # never reached the origin
    line = gh.access_line_for(env[0], "POST http://127.0.0.1:%d/up-av/up" % origin.port)
    assert "ICAP av_up: eicar.com.UNOFFICIAL" in line, line
    for data in (CLEAN_SMALL, CLEAN_BIG):
        code, body = post(env, "/up-av/up", data)
        assert code == 200 and body == b"stored\n"
        assert origin.last("/up-av/up").body == data
    # chunked upload
    code, body = post(env, "/up-av/up", CLEAN_BIG, "-H", "Transfer-Encoding: chunked")
    assert code == 200 and origin.last("/up-av/up").body == CLEAN_BIG


def test_upload_through_echo_200_and_204(env):
    # echo answers the upload 200 (the same request) and 204 in turn: both go on unchanged;
    # the response then goes through the respmod echo of the same rule
    origin = env[2]
    for _ in range(3):
        code, body = post(env, "/up-echo/up", CLEAN_BIG)
        assert code == 200 and body == b"stored\n"
        assert origin.last("/up-echo/up").body == CLEAN_BIG


def api(env, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", env[0].adm, timeout=10)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_console_metrics_and_policy_tester_name_the_services(env):
    get(env, "/eicar.com")
    get(env, "/small.txt")
    get(env, "/down-closed/big.bin")
    st, data = api(env, "GET", "/api/v1/config")
    assert st == 200
    svcs = {s["name"]: s for s in json.loads(data)["forward"]["icap"]}
    av = svcs["av"]
    assert av["health"] == "up" and av["istag"].startswith('"CI0001'), av
    assert av["counters"]["infected"] >= 1 and av["counters"]["pass_204"] >= 1, av
    assert svcs["down_closed"]["health"] == "failing" and svcs["down_closed"]["counters"]["errors"] >= 1
    st, data = api(env, "GET", "/metrics")
    text = data.decode()
    assert 'gatehouse_icap_verdicts_total{service="av",outcome="infected"}' in text
    assert 'gatehouse_icap_up{service="av"} 1' in text
    origin = env[2]
    for path, want in (("/via-echo/x", ["echo"]), ("/x", ["av"]), ("/up-echo/x", ["echo_up", "echo"])):
        st, data = api(env, "POST", "/api/v1/policy/test",
                       {"url": "http://127.0.0.1:%d%s" % (origin.port, path), "client": "127.0.0.1"})
        assert st == 200 and json.loads(data)["icap"] == want, data
    # the access log names the service and its verdict
    line = gh.access_line_for(env[0], "/small.txt")
    assert 'reason="ICAP av: unchanged (204)"' in line, line


def test_upload_faults_and_oversize(env):
    origin = env[2]
    code, body = post(env, "/up-down-open/up", CLEAN_BIG)          # fail open: sent unscanned
    assert code == 200 and origin.last("/up-down-open/up").body == CLEAN_BIG
    before = origin.count("/up-down-closed/up")
    code, body = post(env, "/up-down-closed/up", CLEAN_BIG)        # fail closed: 502, not sent
    assert code == 502 and b"could not check this upload" in body
    assert origin.count("/up-down-closed/up") == before
    before = origin.count("/up-small/up")
    code, body = post(env, "/up-small/up", CLEAN_BIG)              # over max_body_bytes: block
    assert code == 403 and origin.count("/up-small/up") == before
    code, body = post(env, "/up-small/up", CLEAN_SMALL)
    assert code == 200 and origin.last("/up-small/up").body == CLEAN_SMALL


def test_reload_keeps_scanning(env):
    # a reload compiles new services (pools and OPTIONS start afresh); the old
    # snapshot's pooled connections are closed once no request uses it
    g = env[0]
    for _ in range(2):
        g.reload()
        code, body = get(env, "/eicar.com")
        assert code == 403 and b"VIRUS FOUND" in body
        code, body = get(env, "/big.bin")
        assert code == 200 and body == CLEAN_BIG
    assert g.proc.poll() is None
