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
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-P", os.path.join(self.dir, "kdc.pid")], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not gh.wait_port(self.port):
            self.stop()
            raise RuntimeError("krb5kdc did not listen on %d" % self.port)

    def stop_kdc(self):
        """Stop krb5kdc only (start() brings it back with the same realm)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

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


def curl_env(env, *args, timeout=30, wrap=()):
    """curl with the given environment (a ccache from Kdc.kinit), run
    through wrap (e.g. ["faketime", "-f", "+10m"]) if given."""
    p = subprocess.run([*wrap, "curl", "-sS", "--max-time", str(timeout), *args], capture_output=True,
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


BASE = "dc=corp,dc=test"
SVC_DN = "cn=gatehouse,ou=svc," + BASE

LDIF = """dn: %(b)s
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: ou=people,%(b)s
objectClass: organizationalUnit
ou: people

dn: ou=groups,%(b)s
objectClass: organizationalUnit
ou: groups

dn: ou=posix,%(b)s
objectClass: organizationalUnit
ou: posix

dn: ou=svc,%(b)s
objectClass: organizationalUnit
ou: svc

dn: %(svc)s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: gatehouse
userPassword: svcpw

dn: uid=alice,ou=people,%(b)s
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: alicepw

dn: uid=bob,ou=people,%(b)s
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: bobpw

dn: uid=carol,ou=people,%(b)s
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carolpw

dn: cn=devs,ou=groups,%(b)s
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,%(b)s

dn: cn=staff,ou=groups,%(b)s
objectClass: groupOfNames
cn: staff
member: cn=devs,ou=groups,%(b)s
member: uid=bob,ou=people,%(b)s

dn: cn=everyone,ou=groups,%(b)s
objectClass: groupOfNames
cn: everyone
member: cn=staff,ou=groups,%(b)s

dn: cn=unix-devs,ou=posix,%(b)s
objectClass: posixGroup
cn: unix-devs
gidNumber: 5001
memberUid: alice

dn: cn=unix-a,ou=posix,%(b)s
objectClass: posixGroup
cn: unix-a
gidNumber: 5002
memberUid: alice

dn: cn=unix-b,ou=posix,%(b)s
objectClass: posixGroup
cn: unix-b
gidNumber: 5003
memberUid: alice

dn: cn=unix-c,ou=posix,%(b)s
objectClass: posixGroup
cn: unix-c
gidNumber: 5004
memberUid: alice

dn: cn=unix-d,ou=posix,%(b)s
objectClass: posixGroup
cn: unix-d
gidNumber: 5005
memberUid: alice
""" % {"b": BASE, "svc": SVC_DN}


def leaf_cert(d, ca, cakey, name):
    """A server certificate for localhost and 127.0.0.1 signed by ca."""
    key, csr, crt, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=localhost"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
                    "-out", crt, "-days", "5", "-extfile", ext], check=True, capture_output=True)
    return crt, key


class Slapd:
    """OpenLDAP slapd for dc=corp,dc=test on 127.0.0.1: plain (port, with
    StartTLS) and LDAPS (tls_port), its certificate from a CA of its own
    (ca); users alice, bob, carol; groups devs (alice) in staff (+ bob) in
    everyone; posix groups unix-devs, unix-a .. unix-d (alice).  The service
    account (SVC_DN) gets at most 2 entries from a search that is not paged
    (slapd `limits`): more need paged results (RFC 2696), as on AD.  memberOf comes from
    slapo-dynlist, recursive (the trailing '*'), like AD's nested view."""

    def __init__(self):
        need("slapd", "slapadd")
        self.dir = tempfile.mkdtemp(prefix="gh-slapd-")
        d = self.dir
        self.port, self.tls_port = gh.free_port(), gh.free_port()
        # also LDAPS on 127.0.0.2, a name the certificate does not carry
        self.other_tls_port = gh.free_port()
        self.ca, cakey = gh.make_ca(d)
        cert, key = leaf_cert(d, self.ca, cakey, "ldap")
        os.makedirs(os.path.join(d, "db"))
        self.conf = os.path.join(d, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write("""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/dyngroup.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload dynlist
pidfile %(d)s/slapd.pid
argsfile %(d)s/slapd.args
TLSCACertificateFile %(ca)s
TLSCertificateFile %(cert)s
TLSCertificateKeyFile %(key)s
database mdb
maxsize 10485760
suffix "%(b)s"
rootdn "cn=admin,%(b)s"
rootpw adminpw
directory %(d)s/db
limits dn.exact="%(svc)s" size.soft=2 size.hard=2 size.pr=unlimited size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%(svc)s" read by self read by anonymous auth by * none
overlay dynlist
dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames*
""" % {"svc": SVC_DN, "d": d, "ca": self.ca, "cert": cert, "key": key, "b": BASE})
        ldif = os.path.join(d, "data.ldif")
        with open(ldif, "w") as f:
            f.write(LDIF)
        p = subprocess.run(["slapadd", "-f", self.conf, "-l", ldif], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        self.pw_file = os.path.join(d, "svc.secret")
        with open(self.pw_file, "w") as f:
            f.write("svcpw\n")
        self.proc = None
        self.start()

    def start(self):
        # -d 256 (stats): every operation and the filter it searched for, in self.log
        self.log = os.path.join(self.dir, "slapd.log")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["slapd", "-d", "256", "-f", self.conf, "-h",
                                      "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/ ldaps://127.0.0.2:%d/"
                                      % (self.port, self.tls_port, self.other_tls_port)],
                                     stdout=self.logf, stderr=self.logf)
        if not (gh.wait_port(self.port) and gh.wait_port(self.tls_port)):
            self.stop()
            raise RuntimeError("slapd did not listen")

    def stop(self):
        """Stop slapd (its data stays: start() again brings it back)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()
        self.proc = None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Blackhole:
    """A TCP port that accepts and never answers: a directory that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                return

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()
