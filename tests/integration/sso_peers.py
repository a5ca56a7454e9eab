"""Real identity peers for the single sign-on tests: an MIT KDC with a
throwaway realm (krb5kdc, kdb5_util, kadmin.local from Debian's krb5-kdc and
krb5-admin-server) and a client side (kinit from krb5-user), all under a
temp dir, on a loopback port, with no system file read or written.

A missing binary fails the test (CI installs them with tests/deps.sh)."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import gh

REALM = "CORP.TEST"


def need(*names):
    for n in names:
        path = shutil.which(n) or shutil.which(n, path="/usr/sbin:/usr/bin:/sbin:/bin")
        assert path, "%s is not installed (tests/deps.sh test installs it)" % n


class Kdc:
    """An MIT KDC for realm CORP.TEST on 127.0.0.1:<free port>.

    env: the environment for krb5 tools and for gatehouse (KRB5_CONFIG;
    KRB5RCACHEDIR so the replay cache is the test's own)."""

    def __init__(self):
        need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
        self.dir = tempfile.mkdtemp(prefix="gh-kdc-")
        self.port = gh.free_port()
        d = self.dir
        with open(os.path.join(d, "krb5.conf"), "w") as f:
            f.write("""[libdefaults]
  default_realm = %(r)s
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
[realms]
  %(r)s = {
    kdc = 127.0.0.1:%(p)d
  }
""" % {"r": REALM, "p": self.port})
        with open(os.path.join(d, "kdc.conf"), "w") as f:
            f.write("""[kdcdefaults]
  kdc_ports = %(p)d
  kdc_tcp_ports = %(p)d
[realms]
  %(r)s = {
    database_name = %(d)s/principal
    key_stash_file = %(d)s/stash
    acl_file = %(d)s/kadm5.acl
    max_life = 10h 0m 0s
  }
[logging]
  kdc = FILE:%(d)s/kdc.log
""" % {"r": REALM, "p": self.port, "d": d})
        open(os.path.join(d, "kadm5.acl"), "w").close()
        self.env = dict(os.environ, KRB5_CONFIG=os.path.join(d, "krb5.conf"),
                        KRB5_KDC_PROFILE=os.path.join(d, "kdc.conf"), KRB5RCACHEDIR=d,
                        KRB5_TRACE="/dev/null")
        self.run("kdb5_util", "create", "-s", "-r", REALM, "-P", "masterpw")
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-P", os.path.join(d, "kdc.pid")], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not gh.wait_port(self.port):
            self.stop()
            raise RuntimeError("krb5kdc did not listen on %d" % self.port)

    def run(self, *cmd, input=None):
        p = subprocess.run(list(cmd), env=self.env, capture_output=True, input=input, timeout=30)
        assert p.returncode == 0, "%s: %s %s" % (cmd, p.stdout, p.stderr)
        return p.stdout.decode(errors="replace")

    def kadmin(self, q):
        return self.run("kadmin.local", "-r", REALM, "-q", q)

    def user(self, name, password):
        self.kadmin("addprinc -pw %s %s" % (password, name))

    def service(self, name):
        self.kadmin("addprinc -randkey %s" % name)

    def keytab(self, name, path):
        """Export name's keys to path (re-randomises them: earlier keytabs go stale)."""
        self.kadmin("ktadd -k %s %s" % (path, name))
        return path

    def kinit(self, user, password):
        """A client ccache for user; returns the env to run curl with."""
        cc = os.path.join(self.dir, "cc_%s" % user)
        env = dict(self.env, KRB5CCNAME="FILE:" + cc)
        p = subprocess.run(["kinit", user], env=env, input=(password + "\n").encode(),
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return env

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def curl_env(env, *args, timeout=30):
    """curl with the given environment (a ccache from Kdc.kinit)."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True,
                       timeout=timeout + 10, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def fresh_token(env, host="localhost"):
    """A Negotiate token for HTTP/<host> that no acceptor has seen yet: curl
    asks a throwaway proxy that answers 407 Negotiate and keeps the token
    of the retry (so it is not in anyone's replay cache)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    got = []

    def serve():
        srv.settimeout(15)
        try:
            while not got:
                c, _ = srv.accept()
                c.settimeout(10)
                buf = b""
                try:
                    while not got:
                        while b"\r\n\r\n" not in buf:
                            b = c.recv(65536)
                            if not b:
                                raise ConnectionError
                            buf += b
                        head, buf = buf.split(b"\r\n\r\n", 1)
                        for line in head.split(b"\r\n"):
                            if line.lower().startswith(b"proxy-authorization:"):
                                got.append(line.split(b":", 1)[1].strip().decode())
                        if got:
                            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        else:
                            c.sendall(b"HTTP/1.1 407 Sign in\r\nProxy-Authenticate: Negotiate\r\n"
                                      b"Content-Length: 0\r\n\r\n")
                except (ConnectionError, socket.timeout):
                    pass
                c.close()
        except socket.timeout:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    curl_env(env, "-o", "/dev/null", "--proxy-negotiate", "-U", ":", "-x", "http://%s:%d" % (host, port),
             "http://token.test/")
    t.join(20)
    srv.close()
    assert got and got[0].startswith("Negotiate "), "curl sent no Negotiate token"
    return got[0]
