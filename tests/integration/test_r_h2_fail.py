"""HTTP/2 streams whose upstream cannot be reached: the 502 ends the stream
inside the engine's failure call (the client had sent END_STREAM), and the
sink must not touch the freed stream afterwards (a use-after-free that
crashed the worker); the connection serves the next streams."""
import time

import gh


def test_h2_dead_upstream_502_then_next_stream(tmp_path):
    d = str(tmp_path)
    crt, key = gh.make_cert(d, "site", ["site.test"])
    dead, port = gh.free_port(), gh.free_port()
    g = gh.Gatehouse("""
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "site.test" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
""" % (port, crt, key, dead)).start([port])
    try:
        url = "https://site.test:%d/x" % port
        # two streams on one connection (curl reuses it), each a 502
        rc, out, err = gh.curl("-sk", "--http2", "--resolve", "site.test:%d:127.0.0.1" % port,
                               "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{http_version}\\n", url, url)
        assert rc == 0 and out.split() == [b"502", b"2", b"502", b"2"], (rc, out, err)
        # (the log is written by another thread: poll)
        end = time.monotonic() + 10
        while len([l for l in g.access_lines(wait=0.1) if '"GET /x HTTP/2.0" 502' in l]) < 2:
            assert time.monotonic() < end, g.access_lines()
    finally:
        g.check_clean()


def test_h2_body_without_length_in_the_same_read_is_relayed(tmp_path, origin):
    """HEADERS without content-length, then DATA with END_STREAM, in one
    write: the whole body is there before the head is made; it was dropped
    (the upstream got a POST without a body)."""
    from test_f_h2proxy import H2
    d = str(tmp_path)
    crt, key = gh.make_cert(d, "site", ["localhost"])
    port = gh.free_port()
    g = gh.Gatehouse("""
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; tls = true; } );
  certificates = ( { cert = "%s"; key = "%s"; } );
  upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:%d"; } ); } );
  sites = ( { hosts = [ "localhost" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
""" % (port, crt, key, origin.port)).start([port])
    c = H2(port, d + "/ca.pem")
    try:
        sid = c.c.get_next_available_stream_id()
        c.s(sid)
        c.c.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
                               (":path", "/echo")])
        c.c.send_data(sid, b"0123456789" * 10, end_stream=True)
        c.flush()   # one write
        c.pump(lambda: c.done(sid))
        assert c.status(sid) == 200
        assert b'"nbytes": 100' in c.st[sid]["data"], c.st[sid]["data"]
    finally:
        c.close()
        g.check_clean()
