"""Reverse proxy through the core: sites by Host, routes by longest prefix,
static files, absolute-form handling."""
import json
import os

import pytest

import gh


def rev_conf(port, o1, o2, www):
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = (
    { name = "app1"; servers = ( { address = "127.0.0.1:%d"; } ); },
    { name = "app2"; servers = ( { address = "127.0.0.1:%d"; } ); }
  );
  sites = (
    { hosts = [ "www.example.test", "*.apps.test" ];
      routes = (
        { path = "/"; upstream = "app1"; },
        { path = "/api/"; upstream = "app2"; },
        { path = "/api/v2/"; upstream = "app1"; strip_prefix = true; },
        { path = "/static/"; static = "%s"; strip_prefix = true; }
      );
    },
    { hosts = [ "other.test" ]; routes = ( { path = "/"; upstream = "app2"; } ); }
  );
};
""" % (port, o1, o2, www)


@pytest.fixture
def rev(origin, origin2, ports, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<h1>index</h1>\n")
    (www / "style.css").write_text("body{}\n")
    (www / "data.bin").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "secret.txt").write_text("secret\n")
    os.symlink(str(tmp_path / "secret.txt"), str(www / "escape.txt"))
    g = gh.Gatehouse(rev_conf(ports[0], origin.port, origin2.port, www)).start([ports[0]])
    g.port = ports[0]
    g.url = "http://127.0.0.1:%d" % ports[0]
    yield g
    g.check_clean()


def get(g, path, host, *args):
    return gh.curl("-H", "Host: " + host, *args, g.url + path)


def test_host_and_prefix_routing(rev, origin, origin2):
    rc, out, _ = get(rev, "/echo", "www.example.test")
    assert json.loads(out)["target"] == "/echo" and len(origin.requests) == 1
    rc, out, _ = get(rev, "/api/echo", "www.example.test")
    assert json.loads(out)["target"] == "/api/echo" and len(origin2.requests) == 1
    # longest prefix + strip_prefix
    rc, out, _ = get(rev, "/api/v2/echo?x=1", "www.example.test")
    assert json.loads(out)["target"] == "/echo?x=1" and len(origin.requests) == 2


def test_wildcard_case_and_port_ignored(rev, origin):
    rc, out, _ = get(rev, "/echo", "A.B.APPS.test:8080")
    d = json.loads(out)
    hdrs = {k.lower(): v for k, v in d["headers"]}
    assert hdrs["host"] == "A.B.APPS.test:8080"          # Host kept
    assert hdrs["x-forwarded-host"] == "A.B.APPS.test:8080"
    assert hdrs["x-forwarded-for"] == "127.0.0.1"
    assert hdrs["x-forwarded-proto"] == "http"
    assert len(hdrs["x-request-id"]) == 16


def test_unknown_host_404(rev, origin):
    st = gh.curl_status("-H", "Host: nobody.test", rev.url + "/echo")
    assert st == 404
    assert origin.requests == []


def test_absolute_form_only_for_configured_hosts(rev, origin, origin2):
    resp = gh.raw_exchange(rev.port, b"GET http://evil.test/echo HTTP/1.1\r\nHost: www.example.test\r\n"
                           b"Connection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 404")
    assert origin.requests == [] and origin2.requests == []
    # a configured authority wins over Host
    resp = gh.raw_exchange(rev.port, b"GET http://other.test/echo HTTP/1.1\r\nHost: www.example.test\r\n"
                           b"Connection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200") and len(origin2.requests) == 1


def test_static_files(rev):
    rc, out, _ = get(rev, "/static/style.css", "www.example.test", "-i")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"200 OK" in head and b"Content-Type: text/css" in head and body == b"body{}\n"
    rc, out, _ = get(rev, "/static/", "www.example.test")
    assert out == b"<h1>index</h1>\n"
    rc, out, _ = get(rev, "/static/data.bin", "www.example.test", "-r", "10-19")
    assert out == bytes(range(10, 20))


def test_static_traversal_refused(rev):
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/escape.txt",
                 "/static/..%2fsecret.txt"):
        rc, out, _ = gh.curl("--path-as-is", "-H", "Host: www.example.test", "-w", "%{http_code}",
                             rev.url + path)
        assert b"secret" not in out, path
        assert out[-3:] in (b"400", b"404"), (path, out)


def test_static_conditional_304(rev):
    rc, out, _ = get(rev, "/static/style.css", "www.example.test", "-i")
    etag = [l for l in out.split(b"\r\n") if l.lower().startswith(b"etag:")][0].split(b": ", 1)[1]
    st = gh.curl_status("-H", "Host: www.example.test", "-H", "If-None-Match: " + etag.decode(),
                        rev.url + "/static/style.css")
    assert st == 304
