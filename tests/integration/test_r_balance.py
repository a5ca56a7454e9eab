"""Reverse side: load balancing (each algorithm's distribution, consistent
hashing's remap bound, backups, max_conns), retries on another server,
active health checks (down/up transitions), passive ejection and all-down."""
import re
import threading
import time

import pytest

import gh

HOST = "app.test"


def conf(port, servers, balance="round_robin", health="", extra_up=""):
    srv = ", ".join('{ address = "127.0.0.1:%d"; %s }' % (p, opts) for p, opts in servers)
    return """
reverse: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  upstreams = (
    { name = "app"; balance = "%s"; servers = ( %s ); %s %s }
  );
  sites = ( { hosts = [ "%s" ]; routes = ( { path = "/"; upstream = "app"; } ); } );
};
""" % (port, balance, srv, health, extra_up, HOST)


@pytest.fixture
def origins():
    os_ = [gh.KillableOrigin() for _ in range(3)]
    yield os_
    for o in os_:
        o.kill()


def start(text, port):
    g = gh.Gatehouse(text).start([port])
    g.port = port
    return g


def run(g, n, path="/echo", source=None, method="GET", body=None):
    st = []
    for _ in range(n):
        st.append(gh.http_get(g.port, path, HOST, source=source, method=method, body=body)[0])
    return st


def test_round_robin_weights(origins, ports):
    a, b, c = origins
    g = start(conf(ports[0], [(a.port, "weight = 2;"), (b.port, ""), (c.port, "")]), ports[0])
    try:
        assert run(g, 400) == [200] * 400
        # smooth weighted round robin is exact: 2:1:1
        assert (a.hits(), b.hits(), c.hits()) == (200, 100, 100)
    finally:
        g.check_clean()


def test_least_conn_avoids_busy_server(origins, ports):
    a, b, _ = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, "")], "least_conn"), ports[0])
    try:
        slow = threading.Thread(target=gh.http_get, args=(g.port, "/slow/2", HOST))
        slow.start()
        time.sleep(0.5)
        busy, idle = (a, b) if a.hits() == 1 else (b, a)
        assert busy.hits() == 1 and idle.hits() == 0
        # while one request is in flight on `busy`, every new one goes to `idle`
        assert run(g, 10) == [200] * 10
        assert idle.hits() == 10 and busy.hits() == 1
        slow.join()
        # all idle again: alternate (ties follow round robin)
        assert run(g, 10) == [200] * 10
        assert busy.hits() >= 5 and idle.hits() >= 14
    finally:
        g.check_clean()


def test_random_two_distribution(origins, ports):
    a, b, c = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, ""), (c.port, "")], "random_two"), ports[0])
    try:
        assert run(g, 300) == [200] * 300
        print("random_two over 3 equal servers, 300 requests:", [o.hits() for o in origins])
        for o in origins:
            assert 60 <= o.hits() <= 140, [x.hits() for x in origins]
    finally:
        g.check_clean()


def client_map(g, clients, origins):
    """Which origin serves each client address (asserting it is stable)."""
    m = {}
    for src in clients:
        seen = set()
        for _ in range(2):
            st, _, body = gh.http_get(g.port, "/whoami", HOST, source=src)
            assert st == 200
            seen.add(body.decode())
        assert len(seen) == 1, "client %s moved between requests: %s" % (src, seen)
        m[src] = seen.pop()
    return m


def test_ip_hash_sticky_and_remap_bound(origins, ports):
    a, b, c = origins
    for o in origins:
        o.name = "o%d" % o.port
    clients = ["127.0.0.%d" % i for i in range(2, 62)]      # 60 client addresses
    servers = [(a.port, ""), (b.port, ""), (c.port, "")]
    g = start(conf(ports[0], servers, "ip_hash"), ports[0])
    try:
        before = client_map(g, clients, origins)
        counts = {o.name: list(before.values()).count(o.name) for o in origins}
        assert all(8 <= n <= 32 for n in counts.values()), counts
        # remove c: only c's clients move
        g.reload(conf(ports[0], servers[:2], "ip_hash"))
        after = client_map(g, clients, origins)
        moved = [s for s in clients if before[s] != after[s]]
        print("ip_hash: 60 clients over 3 servers %s; removing one moved %d" % (counts, len(moved)))
        assert all(before[s] == c.name for s in moved)
        assert len(moved) == counts[c.name]
        # add it back: exactly the same mapping as at first
        g.reload(conf(ports[0], servers, "ip_hash"))
        assert client_map(g, clients, origins) == before
    finally:
        g.check_clean()


def test_backup_only_when_primaries_unusable(origins, ports):
    a, b, _ = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, "backup = true;")]), ports[0])
    try:
        assert run(g, 10) == [200] * 10
        assert a.hits() == 10 and b.hits() == 0
        a.kill()
        # connect refused -> retried on the backup; then a is ejected (3 failures)
        assert run(g, 10) == [200] * 10
        assert b.hits() == 10
        assert "ejected" in g.stderr()
    finally:
        g.check_clean()


def test_retry_on_dead_server_no_client_errors(origins, ports):
    a, b, c = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, ""), (c.port, "")]), ports[0])
    try:
        assert run(g, 6) == [200] * 6
        b.kill()
        # GET and POST alike: a refused connect is retried on another server
        assert run(g, 12) == [200] * 12
        assert run(g, 6, "/upload", method="POST", body=b"x" * 1000) == [200] * 6
        assert b.hits() == 2
        log = g.stderr()
        assert re.search(r"upstream app server 127\.0\.0\.1:%d: ejected" % b.port, log), log
    finally:
        g.check_clean()


def test_retry_on_503_only_idempotent(origins, ports):
    a, b, _ = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, "")]), ports[0])
    try:
        st, _, _ = gh.http_get(g.port, "/status/503", HOST)
        # both said 503: the client gets a 503 (Gatehouse's own page until
        # the core fix described in the report, reverse.c CORE-WORKAROUND;
        # the origin's afterwards)
        assert st == 503
        assert a.hits() == 1 and b.hits() == 1   # retried once, on the other server
        st, _, _ = gh.http_get(g.port, "/status/503", HOST, method="POST", body=b"abc")
        assert st == 503                         # POST: not retried, relayed as is
        assert a.hits() + b.hits() == 3
        # still serving normally
        st, _, _ = gh.http_get(g.port, "/echo", HOST)
        assert st == 200
    finally:
        g.check_clean()


HEALTH = 'health: { path = "/health"; interval = 0.2; timeout = 0.2; rise = 2; fall = 2; };'


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_health_transitions(origins, ports):
    a, b, _ = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, "")], health=HEALTH), ports[0])
    try:
        assert wait_for(lambda: a.health_checks() >= 2 and b.health_checks() >= 2, 3)
        assert run(g, 10) == [200] * 10
        t0 = time.time()
        b.kill()
        down = "server 127.0.0.1:%d: up -> down" % b.port
        assert wait_for(lambda: down in g.stderr(), 5), g.stderr()
        detect = time.time() - t0
        print("dead server detected in %.2f s" % detect)
        assert detect < 2.0
        hits = b.hits()
        assert run(g, 20) == [200] * 20          # no client errors, nothing to b
        assert b.hits() == hits
        # it comes back on the same port: after `rise` good checks, traffic returns
        t0 = time.time()
        b.revive()
        up = "server 127.0.0.1:%d: down -> up" % b.port
        assert wait_for(lambda: up in g.stderr(), 5), g.stderr()
        print("recovered server back in %.2f s" % (time.time() - t0))
        assert run(g, 10) == [200] * 10
        assert b.hits() >= hits + 4
        # an unexpected status counts as a failure too
        a.health_status = 500
        assert wait_for(lambda: "server 127.0.0.1:%d: up -> down (health check failed 2 times: status 500)"
                        % a.port in g.stderr(), 5), g.stderr()
    finally:
        g.check_clean()


def test_all_down_503(origins, ports):
    a, b, _ = origins
    g = start(conf(ports[0], [(a.port, ""), (b.port, "")], health=HEALTH), ports[0])
    try:
        a.kill()
        b.kill()
        assert wait_for(lambda: g.stderr().count("up -> down") == 2, 5), g.stderr()
        st, h, body = gh.http_get(g.port, "/echo", HOST)
        assert st == 503 and h.get("retry-after") == "1"
        assert b"503" in body
        a.revive()
        assert wait_for(lambda: "127.0.0.1:%d: down -> up" % a.port in g.stderr(), 5)
        assert run(g, 3) == [200] * 3
    finally:
        g.check_clean()


def test_health_state_kept_across_reload(origins, ports):
    a, b, _ = origins
    text = conf(ports[0], [(a.port, ""), (b.port, "")], health=HEALTH)
    g = start(text, ports[0])
    try:
        b.kill()
        assert wait_for(lambda: "127.0.0.1:%d: up -> down" % b.port in g.stderr(), 5)
        g.reload(text + "\n# touched\n")
        # still down right after the reload: no request reaches the dead server
        assert run(g, 10) == [200] * 10
        assert g.stderr().count("127.0.0.1:%d: up -> down" % b.port) == 1
        assert "127.0.0.1:%d: down -> up" % b.port not in g.stderr()
    finally:
        g.check_clean()


def test_slow_start_ramps_weight(origins, ports):
    a, b, _ = origins
    health = ('health: { path = "/health"; interval = 0.2; timeout = 0.2; rise = 1; fall = 1; '
              'slow_start = 4.0; };')
    g = start(conf(ports[0], [(a.port, ""), (b.port, "")], health=health), ports[0])
    try:
        b.kill()
        assert wait_for(lambda: "127.0.0.1:%d: up -> down" % b.port in g.stderr(), 5)
        b.revive()
        assert wait_for(lambda: "127.0.0.1:%d: down -> up" % b.port in g.stderr(), 5)
        h0 = b.hits()
        run(g, 40)                      # during the first ~second: a small share
        early = b.hits() - h0
        time.sleep(4)
        h1 = b.hits()
        run(g, 40)                      # ramp done: half
        late = b.hits() - h1
        print("slow_start: recovered server got %d/40 at once, %d/40 after the ramp" % (early, late))
        assert early < 12 and 18 <= late <= 22, (early, late)
    finally:
        g.check_clean()


def test_max_conns_limit(origins, ports):
    a, _, _ = origins
    g = start(conf(ports[0], [(a.port, "max_conns = 1;")]), ports[0])
    try:
        slow = threading.Thread(target=gh.http_get, args=(g.port, "/slow/1.5", HOST))
        slow.start()
        time.sleep(0.4)
        st, h, _ = gh.http_get(g.port, "/echo", HOST)
        assert st == 503                 # the only server is at max_conns
        slow.join()
        assert gh.http_get(g.port, "/echo", HOST)[0] == 200
    finally:
        g.check_clean()


def test_health_checks_named_server(origins, ports):
    a, b, _ = origins
    text = conf(ports[0], [(a.port, "")], health=HEALTH).replace(
        'servers = ( { address = "127.0.0.1:%d";  } );' % a.port,
        'servers = ( { address = "127.0.0.1:%d"; }, { address = "app.internal:%d"; } );'
        % (a.port, b.port))
    assert "app.internal" in text
    text = '@GLOBAL@ dns: { hosts_file = "@DIR@/hosts"; }; };\n' + text
    g = gh.Gatehouse(text, extra_files={"hosts": "127.0.0.1 app.internal\n"}).start([ports[0]])
    g.port = ports[0]
    try:
        assert wait_for(lambda: b.health_checks() >= 2, 3), g.stderr()
        assert run(g, 10) == [200] * 10
        assert b.hits() == 5
        b.kill()
        assert wait_for(lambda: "server app.internal:%d: up -> down" % b.port in g.stderr(), 5)
        assert run(g, 6) == [200] * 6
        b.revive()
        assert wait_for(lambda: "server app.internal:%d: down -> up" % b.port in g.stderr(), 5)
    finally:
        g.check_clean()


def test_sole_server_ejected_is_still_tried(origins, ports):
    a = origins[0]
    g = start(conf(ports[0], [(a.port, "")]), ports[0])
    try:
        a.kill()
        assert run(g, 4) == [502] * 4            # refused; ejected after 3
        assert "ejected" in g.stderr()
        a.revive()
        # no 503 for the whole cooldown: with nothing else left it is tried
        assert run(g, 3) == [200] * 3
    finally:
        g.check_clean()


def test_health_check_hostile_origins(ports):
    """Health checks are exchanges of the upstream engine, so an origin
    cannot steer them past the engine's bounds: one that answers /health
    with an endless stream of 100 Continue is marked down (at most
    MAX_INTERIM interim answers, then the check fails) instead of holding
    the check; one that answers 200 with a 1 GB body stays up and its body
    is not read (the check ends at the head and closes the connection)."""
    def storm(sock, n):
        try:
            for _ in range(200):
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                time.sleep(0.001)
        except OSError:
            pass
        time.sleep(5)
        return b""

    sent = [0]

    def endless(sock, n):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        chunk = b"x" * 65536
        while sent[0] < 64 * 1024 * 1024:   # a reader of the body would take it all
            sock.sendall(chunk)             # OSError once the check closed it
            sent[0] += len(chunk)
        return b""

    s, e = gh.ScriptOrigin(storm), gh.ScriptOrigin(endless)
    g = start(conf(ports[0], [(s.port, ""), (e.port, "")], health=HEALTH), ports[0])
    try:
        down = "127.0.0.1:%d: up -> down (health check failed 2 times" % s.port
        assert wait_for(lambda: down in g.stderr(), 10), g.stderr()
        assert wait_for(lambda: e.send_failed_at is not None and len(e.heads) >= 3, 10), \
            (len(e.heads), sent[0])
        assert sent[0] < 16 * 1024 * 1024, sent[0]
        assert "127.0.0.1:%d: up -> down" % e.port not in g.stderr()
        assert all(x.startswith(b"GET /health ") for x in e.heads)
    finally:
        g.check_clean()
        s.stop()
        e.stop()
