"""Latency histograms in /metrics (request duration per family and per reverse
site, upstream connect and first-byte time per upstream), parsed by
prometheus_client, and the p50/p95 the console's stats API derives from them."""
import time

from prometheus_client.parser import text_string_to_metric_families

import gh
import test_a_console as tc
import test_a_observe as to

N = 8


def hist(text, name, label, value):
    """(buckets [(le, count)], sum, count) of one labelled series."""
    buckets, total, count = [], None, None
    for f in text_string_to_metric_families(text):
        if f.name != name:
            continue
        assert f.type == "histogram", f.type
        for s in f.samples:
            if s.labels.get(label) != value:
                continue
            if s.name == name + "_bucket":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == name + "_sum":
                total = s.value
            elif s.name == name + "_count":
                count = s.value
    return buckets, total, count


def check_series(text, name, label, value, n, lo, hi):
    buckets, total, count = hist(text, name, label, value)
    assert buckets, (name, value, text[-3000:])
    les = [b[0] for b in buckets]
    counts = [b[1] for b in buckets]
    assert les == sorted(les) and les[-1] == float("inf"), les
    assert counts == sorted(counts), counts           # cumulative, monotonic
    assert count == n and counts[-1] == n, (name, value, count, counts)
    assert lo * n <= total <= hi * n, (name, value, total)
    return dict(buckets)


def test_latency_histograms_and_console_percentiles(netns, origin, ports):
    g = to.start(ports, origin)
    try:
        admin = tc.Console(g.adm)
        assert admin.login("admin", tc.ADMIN_PW).status == 200
        base = "http://127.0.0.1:%d" % g.rev
        t0 = time.monotonic()
        for i in range(N):
            assert gh.curl_status(base + "/app/slow/0.05?%d" % i, "-H", "Host: localhost") == 200
            assert gh.curl_status("http://allowed.test:%d/slow/0.05?%d" % (origin.port, i),
                                  "-x", g.proxy) == 200
        wall = time.monotonic() - t0
        assert gh.curl_status(base + "/", "-H", "Host: unknown.example") == 404   # no site
        time.sleep(0.2)
        text = admin.get("/metrics").body.decode()
        hi = wall / N + 1.0          # generous on a loaded machine
        for fam in ("reverse", "forward"):
            b = check_series(text, "gatehouse_request_duration_seconds", "family", fam,
                             N + (1 if fam == "reverse" else 0), 0.04, hi)
            assert b[0.025] <= 1 and b[0.1] >= 1, (fam, b)   # the 50 ms sit above 25 ms
        b = check_series(text, "gatehouse_site_request_duration_seconds", "site", "localhost", N, 0.045, hi)
        assert b[0.025] == 0, b
        check_series(text, "gatehouse_site_request_duration_seconds", "site", "(unknown)", 1, 0, hi)
        # first byte: the origin waits 50 ms before answering
        b = check_series(text, "gatehouse_upstream_first_byte_seconds", "upstream", "app", N, 0.045, hi)
        assert b[0.025] == 0, b
        check_series(text, "gatehouse_upstream_first_byte_seconds", "upstream", "forward", N, 0.045, hi)
        # connects: pooled connections are reused, so at least one, at most N, all fast
        for up in ("app", "forward"):
            buckets, total, count = hist(text, "gatehouse_upstream_connect_seconds", "upstream", up)
            assert 1 <= count <= N and total < count * 1.0, (up, count, total)
        # label sets are bounded by the configuration
        sites = {s.labels["site"] for f in text_string_to_metric_families(text)
                 if f.name == "gatehouse_site_request_duration_seconds" for s in f.samples}
        assert sites == {"localhost", "(unknown)"}, sites
        # the console shows p50/p95 from the same buckets
        st = admin.get("/api/v1/stats").json
        lat = st["families"]["reverse"]["latency"]
        assert lat["count"] == N + 1 and 0.025 <= lat["p50"] <= 0.1 and lat["p50"] <= lat["p95"] <= hi, lat
        site = st["families"]["reverse"]["site_latency"]["localhost"]
        assert site["count"] == N and 0.025 <= site["p50"] <= 0.1, site
        fl = st["families"]["forward"]["latency"]
        assert fl["count"] == N and 0.025 <= fl["p50"] <= 0.1, fl
        page = admin.get("/").body.decode() + admin.get("/app.js").body.decode()
        assert 'id="ov-lat"' in page and "latency" in page
        g.check_clean()
    finally:
        g.stop()
