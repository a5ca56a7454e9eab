/*
 * reverse/rev_tls: reverse's TLS settings as core/tls specs: one server
 * spec per reverse.certificates entry, one client spec per upstream with
 * tls = true (named by the upstream, numbered by its index in
 * reverse.upstreams, which is the number reverse.c hands to
 * gw_req_upstream_tls()), and one listener spec per reverse listener with
 * tls = true.  The errors core/tls.c reports name reverse's keys.
 */
#ifndef REV_TLS_H
#define REV_TLS_H

struct conf;
struct gw_tls_specs;

/* Add reverse's specs from cf to sp (nothing when reverse is absent).  The
 * specs borrow cf's strings.  0, or -1 when out of memory.  This is
 * rev_side's gw_side.tls hook. */
int rev_tls_specs(const struct conf *cf, struct gw_tls_specs *sp);

#endif
