"""TLS inspection (forward.inspect): the company CA made at the first start
(never by -t, never overwritten, key 0600), served at /gatehouse-ca.crt on the
forward listener (PEM and DER, never the key), and refused when broken."""
import os
import stat
import subprocess

import pytest

import gh


def conf(port, inspect='mode = "all";'):
    return """
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
  policy = ( { name = "all"; action = "allow"; } );
  inspect: { %s };
};
""" % (port, inspect)


def fingerprint(pem_path):
    out = subprocess.run(["openssl", "x509", "-in", pem_path, "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1]


def test_ca_made_at_start_served_never_overwritten():
    port = gh.free_port()
    g = gh.Gatehouse(conf(port))
    crt = os.path.join(g.dir, "inspect-ca.pem")
    key = os.path.join(g.dir, "inspect-ca.key")
    # -t checks only: it writes no CA
    r = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(crt) and not os.path.exists(key)
    g.start([port])
    try:
        assert os.path.exists(crt) and os.path.exists(key)
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        fp = fingerprint(crt)
        assert fp.replace(":", "") in g.stderr().replace(":", ""), g.stderr()
        text = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-text"], check=True,
                              capture_output=True, text=True).stdout
        assert "CA:TRUE" in text and "prime256v1" in text and "Certificate Sign" in text
        # served as PEM (the file's certificate) and DER, never the key
        rc, out, err = gh.curl("-sS", "-i", "http://127.0.0.1:%d/gatehouse-ca.crt" % port)
        head, body = out.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0]
        assert b"content-type: application/x-x509-ca-cert" in head.lower()
        assert body == open(crt, "rb").read()
        assert b"PRIVATE" not in body
        rc, der, err = gh.curl("-sS", "http://127.0.0.1:%d/gatehouse-ca.crt?der" % port)
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256"],
                             input=der, check=True, capture_output=True).stdout.decode()
        assert out.strip().split("=", 1)[1] == fp
        line = gh.access_line_for(g, "gatehouse-ca.crt")
        assert line is not None and 'verdict=local rule="ca"' in line
    finally:
        g.check_clean()
    # a second start loads the same CA: nothing is made again
    mtime = os.stat(key).st_mtime_ns
    g.start([port])
    try:
        assert fingerprint(crt) == fp and os.stat(key).st_mtime_ns == mtime
        assert "made a new CA" not in g.stderr()
    finally:
        g.check_clean()


def test_ca_not_served_without_inspect():
    port = gh.free_port()
    g = gh.Gatehouse(conf(port).replace("inspect: {  };", "").replace('inspect: { mode = "all"; };', ""))
    g.start([port])
    try:
        assert gh.curl_status("http://127.0.0.1:%d/gatehouse-ca.crt" % port) == 404
    finally:
        g.check_clean()


@pytest.mark.parametrize("case", ["half", "notca", "mismatch"])
def test_ca_problems_are_config_errors(case, tmp_path):
    port = gh.free_port()
    d = str(tmp_path)
    ca, cakey = gh.make_ca(d)
    leaf, leafkey = gh.make_cert(d, "leaf", ["leaf.test"])
    other = os.path.join(d, "other.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    other], check=True, capture_output=True)
    if case == "half":
        spec, want = 'ca_cert = "%s"; ca_key = "%s/missing.key";' % (ca, d), "missing while"
    elif case == "notca":
        spec, want = 'ca_cert = "%s"; ca_key = "%s";' % (leaf, leafkey), "not a CA certificate"
    else:
        spec, want = 'ca_cert = "%s"; ca_key = "%s";' % (ca, other), "does not match"
    g = gh.Gatehouse(conf(port, 'mode = "all"; ' + spec))
    r = subprocess.run([gh.BIN, "-t", "-c", g.conf], capture_output=True, text=True)
    assert r.returncode != 0
    assert "gatehouse.conf:" in r.stderr and "forward.inspect: " in r.stderr and want in r.stderr, r.stderr
