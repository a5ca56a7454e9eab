"""HTTP/2 inside inspected TLS (issue #17, forward side): the origin's check
handshake is offered the client's ALPN (h2, http/1.1), the minted handshake
gives the client h2 when the origin chose h2 (or the client speaks nothing
else, or the origin failed: the block page per stream), and each stream is a
forward request judged by the whole policy with its full https:// URL and
the CONNECT's user.  The streams reach the origin over the forward side's
HTTP/1.1 pool; a stream's :authority must name the CONNECT's host and port
(421 otherwise).  Real peers: TLS origins from a test CA, curl --http2 and a
python3-h2 (hyperframe/hpack) client over a CONNECT socket."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.config  # python3-h2 (Debian): missing = the test fails
import h2.connection
import h2.events
import h2.exceptions
import hpack
import hyperframe.frame as hyperframe
import pytest

import gh
from test_f_inspect import ns  # noqa: F401 (the module's own network namespace, entered first)
from test_r_h2 import PREFACE, Raw


class AlpnOrigin(gh.Origin):
    """A TLS origin offering protos in ALPN (its preference first); records
    the protocol each connection chose.  HTTP/1.1 connections are gh.Origin's;
    h2 ones are served here on python3-h2 with the same paths (/echo as JSON,
    /size/N, /upload, /slow/S), each request kept in h2_requests."""

    def __init__(self, ctx, protos):
        ctx.set_alpn_protocols(protos)
        self.chosen = []
        self.h2_requests = []
        super().__init__(tls=ctx)

    def _serve_tls(self, c):
        try:
            c.settimeout(5)
            c = self.tls.wrap_socket(c, server_side=True)
        except OSError:
            c.close()
            return
        p = c.selected_alpn_protocol()
        with self.lock:
            self.chosen.append(p)
        if p == "h2":
            self._serve_h2(c)
            return
        c.settimeout(None)
        self._serve(c)

    def _serve_h2(self, s):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        reqs, pending = {}, []
        s.settimeout(0.05)
        try:
            while True:
                now = time.monotonic()
                for due, sid, body in [x for x in pending if x[0] <= now]:
                    pending.remove((due, sid, body))
                    conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
                    conn.send_data(sid, body, end_stream=True)
                s.sendall(conn.data_to_send())
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        reqs[ev.stream_id] = [[(k.decode(), v.decode()) for k, v in ev.headers], b""]
                    elif isinstance(ev, h2.events.DataReceived):
                        reqs[ev.stream_id][1] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        hdrs, body = reqs.pop(ev.stream_id)
                        d = dict(hdrs)
                        with self.lock:
                            self.h2_requests.append((d[":authority"], d[":path"], hdrs))
                        path = d[":path"]
                        part = path.split("?")[0].split("/")
                        while len(part) > 2 and part[1] not in ("echo", "size", "upload", "slow"):
                            del part[1]   # (route prefixes, as gh.Origin skips them)
                        if part[1] == "slow":
                            pending.append((time.monotonic() + float(part[2]), ev.stream_id, b"slow done\n"))
                            continue
                        st, out = "200", b"no such test path\n"
                        if part[1] == "echo":
                            out = json.dumps({"method": d[":method"], "target": path, "version": "HTTP/2",
                                              "headers": [[k, v] for k, v in hdrs if not k.startswith(":")],
                                              "authority": d[":authority"], "body": body.decode("latin-1")}).encode()
                        elif part[1] == "size":
                            out = b"x" * int(part[2])
                        elif part[1] == "upload":
                            out = b"%d" % len(body)
                        else:
                            st = "404"
                        conn.send_headers(ev.stream_id, [(":status", st), ("content-length", str(len(out)))])
                        conn.send_data(ev.stream_id, out, end_stream=True)
                s.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError, ssl.SSLError):
            return
        finally:
            s.close()


CONF = """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; };
  timeouts: { client_header = 3.0; upstream_connect = 3.0; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(port)d"; } %(more)s );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  connect_ports = [ %(ports)s ];
  auth: { users_file = "@DIR@/fwdusers"; groups_file = "@DIR@/groups"; };
  dlp: { detectors = [ "credit_card" ]; };
  policy = (
    { name = "staff-login"; action = "auth"; domains = [ "staff.test" ]; },
    { name = "not-for-interns"; action = "deny"; groups = [ "interns" ]; urls = [ "/intern-blocked" ]; },
    { name = "no-secret"; action = "deny"; urls = [ "^https://(h2|h1)\\\\.test(:[0-9]+)?/secret" ]; },
    { name = "no-delete"; action = "deny"; methods = [ "DELETE" ]; },
    { name = "all"; action = "allow"; }
  );
  inspect: { mode = "all"; upstream_ca_file = "%(ca)s"; };
};
"""

NAMES = ["h2.test", "h1.test", "staff.test", "other.test", "expired.test"]


class Env:
    pass


@pytest.fixture(scope="module")
def env(ns, tmp_path_factory):
    assert gh.NetNS.inside()
    e = Env()   # (odd :authority values reach the forward side: inside ns)
    d = str(tmp_path_factory.mktemp("inspect_h2"))
    e.ca, _ = gh.make_ca(d)

    def ctx(name, sans, days=30):
        crt, key = gh.make_cert(d, name, sans, days=days)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(crt, key)
        return c

    # h2.test offers h2 and http/1.1 (as real sites do), h1.test http/1.1 only
    e.h2o = AlpnOrigin(ctx("h2.test", ["h2.test", "staff.test", "other.test", "v.test"]), ["h2", "http/1.1"])
    e.h1o = AlpnOrigin(ctx("h1.test", ["h1.test"]), ["http/1.1"])
    e.expired = AlpnOrigin(ctx("expired.test", ["expired.test"], days=-1), ["h2", "http/1.1"])
    e.port = gh.free_port()
    ports = [e.h2o.port, e.h1o.port, e.expired.port]
    e.port2 = gh.free_port()   # a second listener, removed by a reload (GOAWAY)
    e.vals = {"port": e.port, "ports": ", ".join(map(str, ports)), "ca": e.ca,
              "more": ', { address = "127.0.0.1:%d"; }' % e.port2}
    e.conf = CONF % e.vals
    fwdusers = "".join("%s:%s\n" % (u, gh.crypt_hash(p)) for u, p in (("alice", "wonder"), ("ivan", "intern")))
    # v.test: two addresses, only the first has the origin
    hosts = gh.hosts_file(NAMES) + "127.0.0.1 v.test\n127.0.0.2 v.test\n"
    e.g = gh.Gatehouse(e.conf, extra_files={"hosts": hosts, "fwdusers": fwdusers,
                                            "groups": "interns: ivan\n"})
    e.g.start([e.port, e.port2])
    e.gwca = os.path.join(e.g.dir, "gatehouse-ca.pem")
    rc, pem, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt" % e.port)
    assert rc == 0 and b"BEGIN CERTIFICATE" in pem, err
    with open(e.gwca, "wb") as f:
        f.write(pem)
    yield e
    for o in (e.h2o, e.h1o, e.expired):
        o.stop()
    e.g.check_clean()


def curl(e, url, *args):
    """curl through the proxy trusting the Gatehouse CA; the last line of
    its output is the HTTP version and status (-w)."""
    rc, out, err = gh.curl("-sS", "--suppress-connect-headers", "-x", "http://127.0.0.1:%d" % e.port, "--cacert",
                           e.gwca, "-w", "\n%{http_version} %{http_code}", *args, url)
    body, _, tail = out.rpartition(b"\n")
    ver, _, code = tail.decode().partition(" ")
    return rc, body, ver, int(code or 0), err


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def log_line(e, needle, timeout=5.0):
    """The access log's last line with needle (the log may trail the client)."""
    def find():
        lines = [l for l in e.g.access_lines(wait=0) if needle in l]
        return lines[-1] if lines else None
    return wait_for(find, timeout)


def connect(e, host, port, auth=None, via=None):
    s = socket.create_connection(("127.0.0.1", via or e.port), timeout=10)
    extra = b""
    if auth:
        import base64
        extra = b"Proxy-Authorization: Basic " + base64.b64encode(auth.encode()) + b"\r\n"
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n" % (host.encode(), port, host.encode(), port, extra))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        assert b, head
        head += b
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


class BumpedRaw(Raw):
    """test_r_h2's raw HTTP/2 client, over TLS inside a CONNECT (ALPN: alpn)."""

    def __init__(self, e, host, port, alpn=("h2",), settings=None, via=None, sni=None):
        s = connect(e, host, port, via=via)
        ctx = ssl.create_default_context(cafile=e.gwca)
        ctx.set_alpn_protocols(list(alpn))
        s = ctx.wrap_socket(s, server_hostname=sni or host)
        self.alpn = s.selected_alpn_protocol()
        self.s = s
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.buf = b""
        self.closed = False
        self.window_updates = True
        self.frames = []
        self.server_settings = {}
        if self.alpn == "h2":
            sf = hyperframe.SettingsFrame(0)
            sf.settings = settings or {}
            s.sendall(PREFACE + sf.serialize())

    def get(self, sid, path, authority, **kw):
        self.send(self.headers(sid, path, authority=authority, **kw))
        return self.response(sid)


# ---- ALPN mirrored; h2 inside ----

def test_h2_inside_when_the_origin_chose_h2(env):
    """h2 on both sides: the origin's verified check session (ALPN h2, the
    client offered it) carries the streams; no other connection is made."""
    o = env.h2o
    n0, r0 = len(o.chosen), len(o.h2_requests)
    base = "https://h2.test:%d" % o.port
    rc, body, ver, code, err = curl(env, base + "/echo?a=1", "--http2")
    assert rc == 0 and code == 200 and ver == "2", (rc, ver, code, err)
    req = json.loads(body)
    assert req["target"] == "/echo?a=1" and req["version"] == "HTTP/2"
    assert req["authority"] == "h2.test:%d" % o.port
    assert o.chosen[n0:] == ["h2"], o.chosen[n0:]
    assert [p for _, p, _ in o.h2_requests[r0:]] == ["/echo?a=1"]
    line = log_line(env, base + "/echo?a=1")
    assert line is not None and "HTTP/2.0" in line and "inspected" in line and "GET" in line, line
    conn = log_line(env, "CONNECT h2.test:%d" % o.port)
    assert conn is not None and "inspected" in conn, conn


def test_connection_bound_credentials_go_over_http11(env):
    """NTLM binds the TCP connection: such a stream goes to the origin over
    an HTTP/1.1 connection of its own, not the shared h2 session."""
    o = env.h2o
    n0 = len(o.chosen)
    rc, body, ver, code, err = curl(env, "https://h2.test:%d/echo?ntlm=1" % o.port, "--http2",
                                    "-H", "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==")
    assert (ver, code) == ("2", 200), (ver, code, err)
    req = json.loads(body)
    assert req["version"] == "HTTP/1.1" and req["target"] == "/echo?ntlm=1", req
    assert "http/1.1" in o.chosen[n0:], o.chosen[n0:]


def test_http11_client_and_h1_origin_stay_http11(env):
    # a client offering only http/1.1: the origin is offered http/1.1 only
    o = env.h2o
    n0 = len(o.chosen)
    rc, body, ver, code, err = curl(env, "https://h2.test:%d/echo" % o.port, "--http1.1")
    assert rc == 0 and code == 200 and ver == "1.1", (ver, code, err)
    assert wait_for(lambda: len(o.chosen) > n0) and "h2" not in o.chosen[n0:], o.chosen[n0:]
    # an origin without h2: a client offering both gets http/1.1 (mirrored)
    rc, body, ver, code, err = curl(env, "https://h1.test:%d/echo" % env.h1o.port, "--http2")
    assert rc == 0 and code == 200 and ver == "1.1", (ver, code, err)
    assert json.loads(body)["target"] == "/echo"


def test_policy_per_stream(env):
    """One h2 connection, several streams: each judged by the whole policy
    on its full URL (urls, methods), the block page served on its stream."""
    base = "https://h2.test:%d" % env.h2o.port
    rc, out, err = gh.curl("-sS", "--suppress-connect-headers", "-x", "http://127.0.0.1:%d" % env.port,
                           "--cacert", env.gwca, "--http2", "-w", "[%{http_version} %{http_code} %{num_connects}]",
                           base + "/echo?x=1", base + "/secret/y", base + "/size/3")
    assert rc == 0, err
    tags = re.findall(rb"\[(\S+) (\d+) (\d+)\]", out)
    assert [(v, c) for v, c, _ in tags] == [(b"2", b"200"), (b"2", b"403"), (b"2", b"200")], out[-600:]
    assert [n for _, _, n in tags][1:] == [b"0", b"0"], tags   # all on the first connection
    assert b"no-secret" in out and b"xxx" in out
    line = log_line(env, base + "/secret/y")
    assert line is not None and "verdict=deny" in line and "no-secret" in line and "HTTP/2.0" in line, line
    rc, body, ver, code, err = curl(env, base + "/echo", "--http2", "-X", "DELETE")
    assert (ver, code) == ("2", 403) and b"no-delete" in body, body[:300]


def test_dlp_on_h2_upload(env):
    base = "https://h2.test:%d" % env.h2o.port
    n0 = len(env.h2o.requests)
    rc, body, ver, code, err = curl(env, base + "/upload", "--http2", "--data-binary", "card=4111 1111 1111 1111")
    assert (ver, code) == ("2", 403), (ver, code, body[:300], err)
    line = log_line(env, base + "/upload")
    assert line is not None and "dlp" in line and "HTTP/2.0" in line, line
    assert not any(r.target == "/upload" for r in env.h2o.requests[n0:])
    rc, body, ver, code, err = curl(env, base + "/upload", "--http2", "--data-binary", "card=nothing here")
    assert (ver, code) == ("2", 200) and body == b"17", (ver, code, body)


def test_user_and_group_carried_per_stream(env):
    """Basic on the CONNECT: every stream carries that user; a group rule on a
    path blocks ivan (interns) and not alice."""
    base = "https://staff.test:%d" % env.h2o.port
    rc, body, ver, code, err = curl(env, base + "/intern-blocked/echo", "--http2", "--proxy-user", "ivan:intern")
    assert (ver, code) == ("2", 403) and b"not-for-interns" in body, (ver, code, body[:300], err)
    line = log_line(env, base + "/intern-blocked/echo")
    assert line is not None and " ivan " in line and "HTTP/2.0" in line, line
    rc, body, ver, code, err = curl(env, base + "/intern-blocked/echo", "--http2", "--proxy-user", "alice:wonder")
    assert (ver, code) == ("2", 200), (ver, code, body[:300], err)
    assert wait_for(lambda: (l := log_line(env, base + "/intern-blocked/echo")) and " alice " in l)
    # no credentials: the CONNECT itself is refused (407), nothing inspected
    rc, body, ver, code, err = curl(env, base + "/echo", "--http2")
    assert code in (0, 407) and rc != 0


def test_h2_only_client_is_inspected(env):
    """A client offering ALPN h2 alone (tunnelled uninspected before): it
    gets the Gatehouse leaf and h2 even from an http/1.1-only origin, the
    streams translated to HTTP/1.1."""
    r = BumpedRaw(env, "h1.test", env.h1o.port)
    try:
        assert r.alpn == "h2"
        issuer = r.s.getpeercert()["issuer"]
        assert "Gatehouse" in repr(issuer), issuer
        st, hdrs, body, rst = r.get(1, "/echo?only=h2", "h1.test:%d" % env.h1o.port)
        assert st == 200, (st, rst)
        assert json.loads(body)["target"] == "/echo?only=h2"
        st, hdrs, body, rst = r.get(3, "/secret/z", "h1.test:%d" % env.h1o.port)
        assert st == 403 and b"no-secret" in body, (st, body[:200])
    finally:
        r.close()
    line = log_line(env, "https://h1.test:%d/echo?only=h2" % env.h1o.port)
    assert line is not None and "HTTP/2.0" in line and "inspected" in line, line


def test_authority_must_be_the_connects(env):
    """Trust boundary: a stream's :authority naming another host or port than
    the CONNECT's gets 421 and reaches nobody; an http scheme or a CONNECT
    inside is refused."""
    o = env.h2o
    good = "h2.test:%d" % o.port
    n0 = len(o.requests)
    r = BumpedRaw(env, "h2.test", o.port)
    try:
        assert r.alpn == "h2"
        for sid, auth in ((1, "other.test:%d" % o.port), (3, "h2.test:%d" % env.h1o.port), (5, "h2.test"),
                          (7, "127.0.0.1:%d" % o.port)):
            st, hdrs, body, rst = r.get(sid, "/echo?bad=%d" % sid, auth)
            assert st == 421, (auth, st, rst)
        st, hdrs, body, rst = r.get(9, "/echo?ok=1", good)
        assert st == 200 and json.loads(body)["target"] == "/echo?ok=1", (st, rst)
        # the same host in another case is the same host
        st, hdrs, body, rst = r.get(11, "/echo?ok=2", good.upper())
        assert st == 200, (st, rst)
        # :scheme http inside TLS: an absolute http:// URL, never sent on
        r.send(_headers(r, 13, [(":method", "GET"), (":scheme", "http"), (":authority", good),
                                          (":path", "/echo?http=1")]))
        st, hdrs, body, rst = r.response(13)
        assert st == 400 or rst is not None, (st, rst)
        # CONNECT inside an inspected h2 connection: to another host 421,
        # to its own host 400 (only origin-form requests are served inside)
        for sid, auth, want in ((15, "h1.test:%d" % env.h1o.port, 421), (17, good, 400)):
            r.send(_headers(r, sid, [(":method", "CONNECT"), (":authority", auth)], end_stream=False))
            st, hdrs, body, rst = r.response(sid)
            assert st == want or rst is not None, (auth, st, rst)
    finally:
        r.close()
    targets = [q.target for q in o.requests[n0:]] + [q.target for q in env.h1o.requests]
    assert not any("bad=" in t or "http=1" in t for t in targets), targets
    line = log_line(env, "echo?bad=1")
    assert line is not None and " 421 " in line, line


def test_authority_may_be_the_tls_name_but_goes_to_the_connects_host(env):
    """A client that CONNECTs to one name and sends another as its TLS name
    (both judged by the policy) may use that TLS name as :authority; the
    request still goes to the CONNECT's host and port only."""
    o = env.h2o
    r = BumpedRaw(env, "h2.test", o.port, sni="other.test")
    assert r.alpn == "h2"
    try:
        st, hdrs, body, rst = r.get(1, "/echo?sni=1", "other.test:%d" % o.port)
        assert st == 200, (st, rst)
        assert json.loads(body)["authority"] == "h2.test:%d" % o.port
    finally:
        r.close()
    line = log_line(env, "https://h2.test:%d/echo?sni=1" % o.port)
    assert line is not None and "HTTP/2.0" in line, line


def _headers(r, sid, hdrs, end_stream=True):
    f = hyperframe.HeadersFrame(sid)
    f.data = r.enc.encode(hdrs)
    f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f


def test_origin_failing_its_check_gets_block_page_per_stream(env):
    """The origin's certificate has expired: an h2-only client gets h2 and the
    block page on every stream (a client also offering http/1.1 gets
    http/1.1 as the origin chose nothing: test_f_inspect's block pages)."""
    base = "https://expired.test:%d" % env.expired.port
    r = BumpedRaw(env, "expired.test", env.expired.port)
    try:
        assert r.alpn == "h2"
        for sid, path in ((1, "/a"), (3, "/b")):
            st, hdrs, body, rst = r.get(sid, path, "expired.test:%d" % env.expired.port)
            assert st == 502 and b"certificate has expired" in body, (st, rst, body[:300])
    finally:
        r.close()
    line = log_line(env, base + "/b")
    assert line is not None and "HTTP/2.0" in line and " 502 " in line, line
    rc, body, ver, code, err = curl(env, base + "/c", "--http2")
    assert (ver, code) == ("1.1", 502), (ver, code, err)


def test_chromium_speaks_h2_inside(env):
    """Debian's Chromium through the proxy (test_f_inspect's browser script):
    the inspected page and the block page, both over HTTP/2 inside."""
    import base64
    import hashlib
    import test_a_browser as tb
    assert os.path.exists("/usr/bin/chromium"), "chromium missing: run tests/deps.sh test"
    tb.ensure_node_modules()
    r = BumpedRaw(env, "h2.test", env.h2o.port)
    leaf = r.s.getpeercert(binary_form=True)
    r.close()
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"], input=leaf,
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    base = "https://h2.test:%d" % env.h2o.port
    envv = dict(os.environ, GH_FORWARD="127.0.0.1:%d" % env.port,
                GH_SPKI=base64.b64encode(hashlib.sha256(der).digest()).decode(),
                GH_PAGE=base + "/echo", GH_BLOCKED=base + "/secret/chromium")
    p = subprocess.run(["node", os.path.join(tb.BROWSER_DIR, "inspect.test.mjs")], env=envv,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    line = log_line(env, base + "/secret/chromium")
    assert line is not None and "Chrom" in line and "HTTP/2.0" in line and "no-secret" in line, line


# ---- faults ----

def test_preface_garbage_and_proxy_lives(env):
    s = connect(env, "h2.test", env.h2o.port)
    ctx = ssl.create_default_context(cafile=env.gwca)
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(s, server_hostname="h2.test")
    assert s.selected_alpn_protocol() == "h2"
    s.sendall(b"GET / HTTP/1.1\r\nHost: h2.test\r\n\r\n" + b"\x00" * 64)
    s.settimeout(5)
    got, eof = b"", False
    t0 = time.monotonic()
    try:
        while True:
            b = s.recv(65536)
            if not b:
                eof = True
                break
            got += b
    except (OSError, ssl.SSLError) as ex:
        eof = not isinstance(ex, socket.timeout)
    # no HTTP/1 answer: the server's SETTINGS, then the connection is
    # closed (nghttp2 drops a bad client magic without a GOAWAY)
    assert eof and time.monotonic() - t0 < 4.5, got
    assert b"HTTP/1.1" not in got and (got == b"" or got[3] == 4), got[:40]
    rc, body, ver, code, err = curl(env, "https://h2.test:%d/size/2" % env.h2o.port, "--http2")
    assert (ver, code, body) == ("2", 200, b"xx"), (ver, code, err)


def test_rapid_reset_inside_ends_in_goaway(env):
    r = BumpedRaw(env, "h2.test", env.h2o.port)
    frames = []
    auth = "h2.test:%d" % env.h2o.port
    for sid in range(1, 2 * 3000, 2):
        rst = hyperframe.RstStreamFrame(sid)
        rst.error_code = 8   # CANCEL
        frames += [r.headers(sid, "/size/1", authority=auth), rst]
        if len(frames) >= 200:
            try:
                r.send(*frames)
            except OSError:
                break
            frames = []
    ga = r.goaway(10)
    assert ga is not None, "no GOAWAY after 3000 HEADERS+RST_STREAM pairs inside the inspected connection"
    r.close()
    rc, body, ver, code, err = curl(env, "https://h2.test:%d/size/4" % env.h2o.port, "--http2")
    assert (ver, code, body) == ("2", 200, b"xxxx"), (ver, code, err)


def test_h2_upstream_session_only_for_vetted_addresses(env):
    """A stream never rides an h2 session to an address the forward side no
    longer allows: v.test resolves to 127.0.0.1 (the origin) and 127.0.0.2
    (nothing listens); once a reload denies 127.0.0.1, a new stream on the
    same inspected connection goes to 127.0.0.2 (502), not over the session
    the CONNECT's check opened.  (Here the reload's new TLS context already
    keys another session; sess_vetted in core/h2_client.c also holds when
    only DNS changes.)  The configuration is restored at the end."""
    o = env.h2o
    auth = "v.test:%d" % o.port
    r = BumpedRaw(env, "v.test", o.port)
    try:
        st, hdrs, body, rst = r.get(1, "/echo?vet=0", auth)
        assert st == 200 and json.loads(body)["version"] == "HTTP/2", (st, rst)
        env.g.reload(env.conf.replace('"169.254.0.0/16" ]', '"169.254.0.0/16", "127.0.0.1/32" ]'))
        sid, deadline = 3, time.monotonic() + 10
        while True:
            st, hdrs, body, rst = r.get(sid, "/echo?vet=%d" % sid, auth)
            if st != 200 or time.monotonic() > deadline:
                break
            sid += 2
            time.sleep(0.1)
        assert st == 502, (st, body[:300])
        assert not any(p == "/echo?vet=%d" % sid for _, p, _ in o.h2_requests)
    finally:
        r.close()
        env.g.reload(env.conf)
    assert wait_for(lambda: curl(env, "https://h2.test:%d/size/1" % o.port, "--http2")[3] == 200)


def test_reload_mid_connection(env):
    """A reload: the next stream on an open inspected h2 connection is judged
    by the new rules; a reload that removes its listener sends GOAWAY and the
    stream in flight still finishes.  (Last in the module: it changes the
    configuration.)"""
    auth = "h2.test:%d" % env.h2o.port
    r = BumpedRaw(env, "h2.test", env.h2o.port)
    r2 = BumpedRaw(env, "h2.test", env.h2o.port, via=env.port2)
    try:
        assert r.get(1, "/echo?before=1", auth)[0] == 200
        assert r2.get(1, "/echo?before=2", auth)[0] == 200
        conf = env.conf.replace('{ name = "all"; action = "allow"; }',
                                '{ name = "new-rule"; action = "deny"; urls = [ "/after-reload" ]; },\n'
                                '    { name = "all"; action = "allow"; }')
        assert conf != env.conf
        env.g.reload(conf)
        sid, deadline = 3, time.monotonic() + 10
        while True:   # (the reload is applied a little after the signal)
            st, hdrs, body, rst = r.get(sid, "/after-reload", auth)
            sid += 2
            if st == 403 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert st == 403 and b"new-rule" in body, (st, body[:300])
        # a slow answer in flight while its listener goes: GOAWAY, then the answer
        r2.send(r2.headers(3, "/slow/1", authority=auth))
        time.sleep(0.2)
        gone = env.conf.replace(env.vals["more"], "").replace('{ name = "all"; action = "allow"; }',
                                                               '{ name = "new-rule"; action = "deny"; urls = '
                                                               '[ "/after-reload" ]; },\n    { name = "all"; '
                                                               'action = "allow"; }')
        env.g.reload(gone, settle=0)
        ga = r2.goaway(10)
        assert ga is not None, "no GOAWAY when the listener went"
        st, hdrs, body, rst = r2.response(3, timeout=10)
        assert st == 200 and body == b"slow done\n", (st, rst)
    finally:
        r.close()
        r2.close()
    rc, body, ver, code, err = curl(env, "https://h2.test:%d/size/5" % env.h2o.port, "--http2")
    assert (ver, code, body) == ("2", 200, b"xxxxx"), (ver, code, err)
