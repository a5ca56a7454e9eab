# Varnish (Debian's 7.1) for the rev_cache_hit scenario of tests/bench/run.sh.
# @ORIGIN@ is substituted.  bench.py starts varnishd by hand in the
# foreground on loopback (no systemd), malloc storage, one thread pool,
# pinned to CPU 1 like every proxy; see bench.py start_varnish().  The
# origin's answer has no Cache-Control: give it the same hour of freshness
# the other contenders get from their config.  Everything else is the
# built-in VCL.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN@";
}

sub vcl_backend_response {
    set beresp.ttl = 1h;
}
