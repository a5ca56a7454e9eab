"""Real ICAP peers for the tests: clamd with a signature database the test
writes (the MD5 of the EICAR test string: nothing is downloaded) and
c-icap with its echo service and the virus_scan module backed by that
clamd over its UNIX socket.  Both from Debian packages (tests/deps.sh);
started under a temp dir on their own loopback port, stopped by stop()."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import gh

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
C_ICAP_LIB = "/usr/lib/x86_64-linux-gnu/c_icap"


def _need(binary):
    path = shutil.which(binary) or (os.path.exists(binary) and binary)
    assert path, "%s is missing: install the ICAP peers (tests/deps.sh)" % binary
    return path


class IcapPeers:
    def __init__(self, with_clamd=True):
        self.dir = tempfile.mkdtemp(prefix="gh-icap-")
        self.port = gh.free_port()
        self.procs = []
        self.with_clamd = with_clamd

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()      # (nothing of a failed start stays running)
            raise

    def _start(self):
        T = self.dir
        if self.with_clamd:
            clamd = _need("clamd")
            sigtool = _need("sigtool")
            with open(os.path.join(T, "eicar.com"), "wb") as f:
                f.write(EICAR)
            os.mkdir(os.path.join(T, "db"))
            hdb = subprocess.run([sigtool, "--md5", os.path.join(T, "eicar.com")], check=True,
                                 capture_output=True).stdout
            with open(os.path.join(T, "db", "test.hdb"), "wb") as f:
                f.write(hdb)
            with open(os.path.join(T, "clamd.conf"), "w") as f:
                f.write("LocalSocket %s/clamd.sock\nDatabaseDirectory %s/db\nForeground yes\n"
                        "LogFile %s/clamd.log\nPidFile %s/clamd.pid\nUser root\n" % (T, T, T, T))
            self.procs.append(subprocess.Popen([clamd, "--config-file=%s/clamd.conf" % T],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            end = time.time() + 60
            while not os.path.exists(os.path.join(T, "clamd.sock")):
                assert time.time() < end and self.procs[-1].poll() is None, \
                    "clamd did not start: %s" % self._log("clamd.log")
                time.sleep(0.1)
        cicap = _need("c-icap")
        conf = ("PidFile %(T)s/c-icap.pid\nCommandsSocket %(T)s/c-icap.ctl\nTmpDir %(T)s\n"
                "ServerLog %(T)s/server.log\nAccessLog %(T)s/access.log\nPort 127.0.0.1:%(P)d\n"
                "StartServers 1\nMaxServers 2\nThreadsPerChild 10\nMinSpareThreads 2\n"
                "MaxSpareThreads 20\nTimeout 300\nMaxKeepAliveRequests 100\nKeepAliveTimeout 600\n"
                "ModulesDir %(L)s\nServicesDir %(L)s\nTemplateDir /usr/share/c_icap/templates/\n"
                "TemplateDefaultLanguage en\nLoadMagicFile /etc/c-icap/c-icap.magic\n"
                "RemoteProxyUsers on\nRemoteProxyUserHeader X-Authenticated-User\n"
                "RemoteProxyUserHeaderEncoded on\nService echo srv_echo.so\n"
                % dict(T=T, P=self.port, L=C_ICAP_LIB))
        if self.with_clamd:
            conf += ("Module common clamd_mod.so\nclamd_mod.ClamdSocket %(T)s/clamd.sock\n"
                     "Service virus_scan virus_scan.so\n"
                     "virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE\n"
                     "virus_scan.SendPercentData 0\nvirus_scan.StartSendPercentDataAfter 32M\n"
                     "virus_scan.MaxObjectSize 32M\nvirus_scan.DefaultEngine clamd\n"
                     "virus_scan.Allow204Responces on\n" % dict(T=T))
        with open(os.path.join(T, "c-icap.conf"), "w") as f:
            f.write(conf)
        self.icap = subprocess.Popen([cicap, "-f", "%s/c-icap.conf" % T, "-N", "-D", "-d", "1"],
                                     stdout=open(os.path.join(T, "c-icap.out"), "wb"),
                                     stderr=subprocess.STDOUT)
        self.procs.append(self.icap)
        if not gh.wait_port(self.port, timeout=20):
            self.stop()
            raise AssertionError("c-icap did not listen: %s" % self._log("c-icap.out"))
        return self

    def _log(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []


def stop_all(origin, g, peers):
    """A module fixture's end: the origin, Gatehouse (checked clean: no
    sanitizer report, no crash), then the peers, whatever failed first."""
    try:
        if origin is not None:
            origin.stop()
        if g is not None:
            g.check_clean()
    finally:
        peers.stop()


def proxied_get(port, origin_port, path):
    """curl through the forward proxy on port: (status, body)."""
    out = subprocess.run(["curl", "-s", "-x", "127.0.0.1:%d" % port, "-o", "-", "-w", "\n%{http_code}",
                          "http://127.0.0.1:%d%s" % (origin_port, path)],
                         capture_output=True, timeout=60).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body
