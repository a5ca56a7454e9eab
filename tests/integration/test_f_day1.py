"""Issue 14, forward side, day one for an operator: the 407 page says its
line once; the PAC fallback is a choice (fail-open DIRECT or fail-closed)
and can send private ranges and listed domains DIRECT; the block page can be
a company template with escaped placeholders."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

import gh


def auth_conf(port, extra=""):
    return """
@GLOBAL@
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  auth: { realm = "Day1"; users_file = "@DIR@/users"; };
  policy = ( { name = "login"; action = "auth"; }, { name = "rest"; action = "allow"; } );
  %s
};
""" % (port, extra)


def test_407_says_sign_in_once(netns, origin, ports):
    files = {"users": "alice:%s\n" % gh.crypt_hash("pw", "$6$"),
             "hosts": gh.hosts_file(["any.test"])}
    g = gh.Gatehouse(auth_conf(ports[0]), extra_files=files).start([ports[0]])
    try:
        proxy = "http://127.0.0.1:%d" % ports[0]
        for accept in ("text/html", "*/*"):
            rc, out, err = gh.curl("-i", "-x", proxy, "-H", "Accept: " + accept,
                                   "http://any.test:%d/echo" % origin.port)
            head, _, body = out.partition(b"\r\n\r\n")
            assert b" 407 " in head.split(b"\r\n")[0]
            assert body.count(b"Please sign in to use the proxy.") == 1, body
        # a wrong password still explains itself, also once
        rc, out, err = gh.curl("-i", "-x", proxy, "--proxy-user", "alice:wrong",
                               "http://any.test:%d/echo" % origin.port)
        body = out.partition(b"\r\n\r\n")[2]
        assert body.count(b"The user name or password is not correct.") == 1
        assert body.count(b"Please sign in to use the proxy.") == 1
    finally:
        g.check_clean()
