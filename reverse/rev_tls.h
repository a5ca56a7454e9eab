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

#include <stddef.h>

struct conf;
struct conf_rev_site;
struct gw_req;
struct gw_tls_specs;

/* Add reverse's specs from cf to sp (nothing when reverse is absent).  The
 * specs borrow cf's strings.  0, or -1 when out of memory.  This is
 * rev_side's gw_side.tls hook. */
int rev_tls_specs(const struct conf *cf, struct gw_tls_specs *sp);

/* A request for site cs (number index in reverse.sites): adds the site's
 * HSTS header on TLS, and when the site has client_ca answers 403 unless the
 * connection's handshake verified a client certificate for this site.
 * 1 when answered. */
int rev_tls_site_gate(struct gw_req *rq, const struct conf_rev_site *cs, size_t index);
/* For a request going upstream: removes the client's X-Client-Cert-Subject
 * and X-Client-Cert-Fingerprint, then sets them from the verified client
 * certificate (RFC 2253 subject, SHA-256 hex) on a client_ca site. */
void rev_tls_client_headers(struct gw_req *rq, const struct conf_rev_site *cs, size_t index);

/* An ACME HTTP-01 request (RFC 8555 8.3): GET path
 * /.well-known/acme-challenge/TOKEN for a token the ACME client waits on is
 * answered with its key authorization, before any site, route, redirect or
 * client check.  1 when answered. */
int rev_tls_acme_challenge(struct gw_req *rq, const char *path, size_t len);

#endif
