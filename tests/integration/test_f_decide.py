"""Forward side: the proxy and the console's policy tester decide alike
(issue #15).  Both run forward's one decision function, fwd_decide()
(forward/decide.c); this test holds them to it from the outside.

One table of cases (clients of different subnets and families, users and
groups from the proxy-auth files, a domain list, URL patterns, methods,
CONNECT to allowed and refused ports, https:// URLs without CONNECT,
WebSocket upgrades, requests aimed at gatehouse's own listeners and
console, requests to the proxy itself, hours rules that hold now and that
do not) goes through both paths over real sockets:
  (a) as real requests through the forward proxy, from the row's client
      address, to an origin the test runs on loopback: the status from the
      response, the verdict and rule from the (JSON) access log;
  (b) through the console's tester API (POST /api/v1/policy/test over
      HTTPS, signed in),
and each path must give the row's verdict, rule and status.  Every row
that differs is listed at once.

What only a request can tell (the addresses a name resolves to) is not
the tester's: it answers for the name and says so in its notes, while the
proxy refuses a name that resolves to its own listener after DNS.

The test runs in its own network namespace (netns fixture): it feeds the
forward side odd addresses and names."""
import json
import os
import re
import socket
import subprocess
import time

import gh
from test_a_console import ADMIN_PW, Console, users_file

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
PW = {"alice": "alice-pw", "bob": "bob-pw"}


def hours_now():
    """An hours string that holds now (today, a window of at least an hour
    either side) and one that does not (every other day).  Near midnight,
    wait for the next day first: the table takes under a minute."""
    t = time.localtime()
    left = 86400 - (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec)
    if left < 300:
        time.sleep(left + 2)
        t = time.localtime()
    today = DAYS[t.tm_wday]
    start, end = max(0, t.tm_hour - 1), min(24, t.tm_hour + 2)
    return ("%s %02d:00-%02d:00" % (today, start, end),
            ",".join(d for d in DAYS if d != today))


def conf(p, o, o2, now_in, now_out):
    return """
global: { workers = 1; user = ""; state_dir = "@DIR@";
  log: { error = "stderr"; level = "info"; access = "@DIR@/access.log"; access_format = "json"; };
  dns: { hosts_file = "@DIR@/hosts"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:%(F)d"; }, { address = "[2001:db8::1]:%(F)d"; } );
  allow_clients = [ "127.0.0.0/16", "127.20.0.0/16", "2001:db8::/64" ];
  deny_destinations = [ "169.254.0.0/16", "127.66.0.0/16" ];
  connect_ports = [ 443, %(O)d, %(F)d, %(A)d ];
  websocket_ports = [ %(O)d ];
  auth: { realm = "T"; users_file = "@DIR@/fwd.users"; groups_file = "@DIR@/fwd.groups"; };
  lists = ( { name = "ads"; file = "@DIR@/ads.domains"; } );
  pac: { proxy = "127.0.0.1:%(F)d"; };
  policy = (
    { name = "lab-no-news"; action = "deny"; clients = [ "127.20.0.0/16" ]; domains = [ "news.test" ]; },
    { name = "v6-no-shop"; action = "deny"; clients = [ "2001:db8::/64" ]; domains = [ ".shop.test" ]; },
    { name = "login"; action = "auth"; urls = [ "^http://intra\\\\.test(:[0-9]+)?/intranet/" ]; },
    { name = "staff-wiki"; action = "allow"; groups = [ "staff" ]; domains = [ "wiki.test" ]; },
    { name = "no-wiki"; action = "deny"; domains = [ "wiki.test" ]; },
    { name = "bob-files"; action = "allow"; users = [ "bob" ]; domains = [ "files.test" ]; },
    { name = "no-files"; action = "deny"; domains = [ "files.test" ]; },
    { name = "no-ads"; action = "deny"; lists = [ "ads" ]; },
    { name = "no-exe"; action = "deny"; urls = [ "\\\\.exe$" ]; },
    { name = "no-delete"; action = "deny"; methods = [ "DELETE" ]; },
    { name = "no-odd-port"; action = "deny"; ports = [ %(O2)d ]; },
    { name = "games-closed-now"; action = "deny"; domains = [ "games.test" ]; hours = "%(IN)s"; },
    { name = "social-closed-other-days"; action = "deny"; domains = [ "social.test" ]; hours = "%(OUT)s"; },
    { name = "no-chat-tunnels"; action = "deny"; domains = [ "chat.test" ]; schemes = [ "connect" ]; },
    { name = "default"; action = "allow"; }
  );
};
reverse: {
  listeners = ( { address = "127.0.0.1:%(R)d"; } );
  sites = ( { hosts = [ "localhost" ]; default = true; routes = ( { path = "/"; static = "@DIR@/www"; } ); } );
};
admin: {
  listen = "127.0.0.1:%(A)d";
  users_file = "@DIR@/users";
  tls_cert = "@DIR@/console.crt";
  tls_key = "@DIR@/console.key";
};
""" % dict(F=p[0], R=p[1], A=p[2], O=o, O2=o2, IN=now_in, OUT=now_out)


# names the hosts file maps to 127.0.0.1, where the origin listens
NAMES = ["www.test", "news.test", "shop.test", "www.shop.test", "intra.test", "wiki.test", "files.test",
         "games.test", "social.test", "chat.test", "self.test"]


def table(F, R, A, O, O2):
    """(id, client, proxy request, tester input, expected (verdict, rule, status)).
    A proxy request is (method, target, user or None, extra header lines);
    a tester input holds url, method, user and websocket as the console's
    form sends them.  Allowed plain requests end in /echo (the origin's 200)
    and allowed CONNECTs go to the origin's port."""
    L, L2, V6, NO = "127.0.0.1", "127.20.0.7", "2001:db8::5", "127.30.0.9"
    WS = "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    rows = []

    def row(client, method, target, expect, user=None, extra="", tmethod=None, turl=None, tuser=None,
            ws=False):
        n = len(rows) + 1
        target = target.replace("@N@", "r%d" % n)
        t = {"url": turl if turl is not None else target, "client": client}
        if tmethod is not None:
            t["method"] = tmethod
        elif turl is None:
            t["method"] = method
        if user is not None or tuser is not None:
            t["user"] = tuser if tuser is not None else user
        if ws:
            t["websocket"] = True
        rows.append((n, client, (method, target, user, extra), t, expect))

    allow = ("allow", "default", 200)
    # who may use the proxy at all: before everything else
    row(NO, "GET", "http://www.test:%d/@N@/echo" % O, ("deny", "allow_clients", 403))
    row(NO, "CONNECT", "www.test:%d" % O, ("deny", "allow_clients", 403))
    row(NO, "GET", "/proxy.pac", ("deny", "allow_clients", 403))
    row(L, "GET", "http://www.test:%d/@N@/echo" % O, allow)
    row(L2, "GET", "http://www.test:%d/@N@/echo" % O, allow)
    row(V6, "GET", "http://www.test:%d/@N@/echo" % O, allow)
    # clients rules: by subnet and family
    row(L2, "GET", "http://news.test:%d/@N@/echo" % O, ("deny", "lab-no-news", 403))
    row(L, "GET", "http://news.test:%d/@N@/echo" % O, allow)
    row(V6, "GET", "http://www.shop.test:%d/@N@/echo" % O, ("deny", "v6-no-shop", 403))
    row(V6, "CONNECT", "shop.test:%d" % O, ("deny", "v6-no-shop", 403))
    row(L, "GET", "http://www.shop.test:%d/@N@/echo" % O, allow)
    # requests to the proxy itself (origin-form, "*")
    row(L, "GET", "/proxy.pac", ("local", "pac", 200))
    row(L, "HEAD", "/wpad.dat?x=1", ("local", "pac", 200))
    row(L, "POST", "/proxy.pac", ("local", "", 400))
    row(L, "GET", "/@N@/index.html", ("local", "", 400))
    row(L, "OPTIONS", "*", ("local", "", 400))
    # CONNECT ports; https:// without CONNECT
    row(L, "CONNECT", "www.test:%d" % O, allow)
    row(L, "CONNECT", "www.test:%d" % O2, ("deny", "connect_ports", 403))
    row(L, "CONNECT", "www.test:25", ("deny", "connect_ports", 403))
    row(L, "CONNECT", "127.0.0.1:%d" % R, ("deny", "connect_ports", 403))
    row(L, "CONNECT", "www.test:%d" % O, allow, tmethod="", turl="https://www.test:%d/" % O)
    row(L, "GET", "https://www.test:%d/@N@/echo" % O, ("local", "", 501))
    row(L, "GET", "https://www.test/@N@/", ("local", "", 501))
    row(L, "POST", "https://chat.test/@N@/", ("local", "", 501))
    row(NO, "GET", "https://www.test/@N@/", ("deny", "allow_clients", 403))
    # WebSocket upgrades (a raw tunnel after the 101)
    row(L, "GET", "http://www.test:%d/@N@/echo" % O, allow, extra=WS, ws=True)
    row(L, "GET", "http://www.test:%d/@N@/ws" % O2, ("deny", "websocket_ports", 403), extra=WS, ws=True)
    # our own listeners, the console, deny_destinations: IP literals before DNS
    row(L, "GET", "http://127.0.0.1:%d/@N@" % F, ("deny", "own_listener", 403))
    row(L, "GET", "http://[::ffff:127.0.0.1]:%d/@N@" % F, ("deny", "own_listener", 403))
    row(L, "GET", "http://0.0.0.0:%d/@N@" % A, ("deny", "own_listener", 403))
    row(L, "GET", "http://127.0.0.1:%d/@N@" % R, ("deny", "own_listener", 403))
    row(L, "GET", "http://[2001:db8::1]:%d/@N@" % F, ("deny", "own_listener", 403))
    row(L, "CONNECT", "127.0.0.1:%d" % A, ("deny", "own_listener", 403))
    row(L, "CONNECT", "127.0.0.1:%d" % F, ("deny", "own_listener", 403))
    row(L, "GET", "http://127.66.0.1:%d/@N@/echo" % O, ("deny", "deny_destinations", 403))
    row(L, "GET", "http://169.254.1.1/@N@", ("deny", "deny_destinations", 403))
    row(L, "GET", "http://127.0.0.1:%d/@N@/echo" % O, allow)
    # users and groups (forward.auth users and groups files)
    row(L, "GET", "http://intra.test:%d/intranet/@N@/echo" % O, ("auth", "login", 407))
    row(L, "GET", "http://intra.test:%d/intranet/@N@/echo" % O, allow, user="alice")
    row(L, "GET", "http://intra.test:%d/intranet/@N@/echo" % O, allow, user="bob")
    row("127.0.7.1", "GET", "http://intra.test:%d/intranet/@N@/echo" % O, ("auth-failed", "login", 407),
        user="mallory")
    row(L, "GET", "http://intra.test:%d/@N@/echo" % O, allow)
    row(L, "GET", "http://wiki.test:%d/@N@/echo" % O, ("allow", "staff-wiki", 200), user="alice")
    row(L, "GET", "http://wiki.test:%d/@N@/echo" % O, ("deny", "no-wiki", 403), user="bob")
    row(L, "GET", "http://wiki.test:%d/@N@/echo" % O, ("deny", "no-wiki", 403))
    row("127.0.7.2", "GET", "http://wiki.test:%d/@N@/echo" % O, ("deny", "no-wiki", 403), user="mallory")
    row(L, "CONNECT", "wiki.test:%d" % O, ("allow", "staff-wiki", 200), user="alice")
    row(L, "GET", "http://files.test:%d/@N@/echo" % O, ("allow", "bob-files", 200), user="bob")
    row(L, "GET", "http://files.test:%d/@N@/echo" % O, ("deny", "no-files", 403), user="alice")
    # the domain list
    row(L, "GET", "http://ads.test/@N@/", ("deny", "no-ads", 403))
    row(L, "GET", "http://banner.ads.test/@N@/x.gif", ("deny", "no-ads", 403))
    row(L, "CONNECT", "cdn.ads.test:443", ("deny", "no-ads", 403))
    # URL patterns on the normalised URL, and a URL the proxy cannot read
    row(L, "GET", "http://www.test:%d/@N@/setup.exe" % O, ("deny", "no-exe", 403))
    row(L, "GET", "http://www.test:%d/@N@/x/../setup.exe" % O, ("deny", "no-exe", 403))
    row(L, "GET", "http://www.test:%d/@N@/echo?f=a.exe" % O, ("deny", "no-exe", 403))
    row(L, "GET", "http://www.test:%d/@N@/%%zz" % O, ("local", "", 400))
    # methods (compared case-insensitively by the policy)
    row(L, "DELETE", "http://www.test:%d/@N@/echo" % O, ("deny", "no-delete", 403))
    row(L, "delete", "http://www.test:%d/@N@/echo" % O, ("deny", "no-delete", 403))
    row(L, "POST", "http://www.test:%d/@N@/echo" % O, allow)
    # ports of plain requests
    row(L, "GET", "http://www.test:%d/@N@/echo" % O2, ("deny", "no-odd-port", 403))
    # hours: a rule that holds now, one that does not
    row(L, "GET", "http://games.test:%d/@N@/echo" % O, ("deny", "games-closed-now", 403))
    row(L, "CONNECT", "games.test:%d" % O, ("deny", "games-closed-now", 403))
    row(L, "GET", "http://social.test:%d/@N@/echo" % O, allow)
    # schemes
    row(L, "CONNECT", "chat.test:%d" % O, ("deny", "no-chat-tunnels", 403))
    row(L, "CONNECT", "chat.test:%d" % O, ("deny", "no-chat-tunnels", 403), tmethod="",
        turl="https://chat.test:%d/" % O)
    row(L, "GET", "http://chat.test:%d/@N@/echo" % O, allow)
    return rows


def request_bytes(method, target, user, extra):
    if method == "CONNECT":
        host = target
    elif target.startswith("/") or target == "*":
        host = "proxy.test"
    else:
        host = target.split("/")[2]
    auth = ""
    if user is not None:
        import base64
        auth = "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(
            ("%s:%s" % (user, PW.get(user, "not-a-password"))).encode()).decode()
    body = "Content-Length: 0\r\n" if method in ("POST", "delete", "DELETE") else ""
    close = "" if method == "CONNECT" else \
        "Connection: Upgrade, close\r\n" if "Upgrade:" in extra else "Connection: close\r\n"
    return ("%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n" % (method, target, host, auth, extra, body, close)).encode()


def through_proxy(client, port, data):
    """Send one request from client; the response's status (the whole
    response is read; of a tunnel, the head only)."""
    fam = socket.AF_INET6 if ":" in client else socket.AF_INET
    dst = "2001:db8::1" if fam == socket.AF_INET6 else "127.0.0.1"
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(15)
    try:
        s.bind((client, 0))
        s.connect((dst, port))
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length: *(\d+)", head)
        if data.startswith(b"HEAD") or (data.startswith(b"CONNECT") and buf.startswith(b"HTTP/1.1 200")):
            pass   # no body; a tunnel is closed at once
        elif m:
            while len(body) < int(m.group(1)):
                b = s.recv(65536)
                if not b:
                    break
                body += b
        else:
            while s.recv(65536):
                pass
    finally:
        s.close()
    parts = buf.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def new_log_line(g, before, timeout=10.0):
    """The one access-log line written after the first `before` lines."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(g.access) as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        if len(lines) > before:
            assert len(lines) == before + 1, lines[before:]
            return json.loads(lines[before])
        time.sleep(0.05)
    raise AssertionError("no access-log line after %d lines" % before)


def log_count(g):
    try:
        with open(g.access) as f:
            return len(f.read().splitlines())
    except OSError:
        return 0


def test_proxy_and_tester_decide_alike(netns, origin, origin2, ports):
    netns.v6_local()
    now_in, now_out = hours_now()
    F, R, A = ports[0], ports[1], ports[2]
    O, O2 = origin.port, origin2.port
    d = os.path.join(os.environ.get("TMPDIR", "/tmp"), "gh-decide-%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/k.pem",
                    "-out", d + "/c.pem", "-days", "30", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True)
    files = {"users": users_file(), "www/index.html": "x",
             "console.crt": open(d + "/c.pem").read(), "console.key": open(d + "/k.pem").read(),
             "fwd.users": "".join("%s:%s\n" % (u, gh.crypt_hash(p)) for u, p in PW.items()),
             "fwd.groups": "staff: alice\nothers: bob\n",
             "ads.domains": "ads.test\n",
             "hosts": gh.hosts_file(NAMES)}
    g = gh.Gatehouse(conf(ports, O, O2, now_in, now_out), extra_files=files).start([F, R, A])
    try:
        c = Console(A, https=True)
        assert c.login("admin", ADMIN_PW).status == 200
        rows = table(F, R, A, O, O2)
        assert len(rows) >= 50, len(rows)
        wrong, seen = [], set()
        for n, client, (method, target, user, extra), tin, expect in rows:
            before = log_count(g)
            status = through_proxy(client, F, request_bytes(method, target, user, extra))
            line = new_log_line(g, before)
            rule = line.get("rule") or ""
            proxy = (line.get("verdict") or "", "" if rule == "-" else rule, status)
            r = c.post("/api/v1/policy/test", tin)
            j = r.json or {}
            if "verdict" in j:
                tester = (j["verdict"], j["rule"], j["status"])
                seen.add(j["stage"])
                # a URL the proxy cannot read is an error in the tester's form too
                if r.status != (400 if j["stage"] == "url" else 200):
                    tester += ("HTTP %d" % r.status,)
            else:
                tester = ("error", j.get("error"), r.status)
            if proxy != expect or tester != expect:
                wrong.append("row %d %s %s %s from %s: expected %s, proxy %s, tester %s (%s)" % (
                    n, method, target, user or "-", client, expect, proxy, tester, j.get("why")))
        assert not wrong, "%d of %d rows differ:\n%s" % (len(wrong), len(rows), "\n".join(wrong))
        # every stage of fwd_decide() but "verify" (which the tester never meets) was taken
        assert seen == {"allow_clients", "local", "connect_ports", "scheme", "websocket_ports",
                        "destination", "url", "policy"}, seen

        # what only the request can tell: a name resolving to our own listener
        before = log_count(g)
        st = through_proxy("127.0.0.1", F, request_bytes("GET", "http://self.test:%d/x" % F, None, ""))
        line = new_log_line(g, before)
        assert (st, line["verdict"], line["rule"]) == (403, "deny", "own_listener"), (st, line)
        r = c.post("/api/v1/policy/test", {"url": "http://self.test:%d/x" % F, "client": "127.0.0.1"})
        assert (r.json["verdict"], r.json["rule"]) == ("allow", "default"), r.json
        assert any("resolve" in n and "own listeners" in n for n in r.json["notes"]), r.json
        # and the password: the tester takes a known user as signed in and says so
        r = c.post("/api/v1/policy/test", {"url": "http://wiki.test/", "client": "127.0.0.1", "user": "alice"})
        assert r.json["input"]["groups"] == ["staff"] and r.json["rule"] == "staff-wiki", r.json
        assert any("password is not checked" in n for n in r.json["notes"]), r.json
    finally:
        g.check_clean()
