/*
 * forward/inspect: TLS inspection of CONNECT tunnels (forward.inspect), the
 * forward side's part; the core moves the connection through the steps
 * (core/conn_bump.c, the gw_req_peek family of core/proto.h).
 *
 *   1. an allowed CONNECT (not through forward.parent) is answered 200 and
 *      its ClientHello read with the own parser (forward/inspect_hello.h);
 *      garbage, SSLv2/3, TLS < 1.2, over 16 KiB or a timeout: closed with
 *      the reason logged; the TLS name (SNI), when it names another host,
 *      must pass the policy too (deny if either is denied);
 *   2. fwd_decide_inspect() (forward/decide.h): tunnel as before, or
 *   3. connect and handshake upstream first (SNI = the CONNECT host, ALPN
 *      http/1.1, chain and name verified against upstream_ca_file; hosts in
 *      insecure_hosts unverified, each use logged), then mint a leaf for
 *      the client (forward/inspect_ca.h) mirroring the origin's names and
 *      validity, on the job pool (core/jobs.h) with one minting per
 *      certificate at a time and an LRU cache of cert_cache leaves;
 *   4. the client's TLS server gets the leaf; requests inside are judged
 *      by the forward side like any other, with their full https:// URL and
 *      the CONNECT's signed-in user (the connection's tag).  An origin that
 *      failed (certificate expired, wrong name, untrusted, TLS < 1.2, reset,
 *      stalled, not TLS) is not hidden: the client still gets a minted
 *      leaf, and every request a 502 page naming the problem.
 *
 * The compiled part (struct fwd_inspect) belongs to one configuration
 * generation: its CA, TLS server context and certificate cache.
 */
#ifndef GW_FORWARD_INSPECT_H
#define GW_FORWARD_INSPECT_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct conf_errors;
struct fwd_ca;
struct fwd_decider;
struct fwd_auth_db;
struct fwd_match;
struct fwd_matchdata;
struct gw_req;
struct gw_tls_specs;
struct ssl_st;

struct fwd_inspect;

/* Counters (per process), for the console and /metrics. */
#define FWD_INSPECT_COUNTERS(X) \
	X(INSPECTED, "inspected")              /* CONNECTs turned TLS servers */ \
	X(TUNNELLED, "tunnelled")              /* peeked, then tunnelled (bypass, rule) */ \
	X(REFUSED, "hello_refused")            /* closed on the ClientHello (not TLS, old, big, timeout) */ \
	X(ORIGIN_ERRORS, "origin_errors")      /* upstream failed: the block page was served */ \
	X(MINTED, "minted")                    /* leaves signed */ \
	X(CACHE_HITS, "cache_hits")            /* leaves found in the cache */ \
	X(MINT_WAITS, "mint_waits")            /* requests that waited for another's minting */ \
	X(MINT_US, "mint_us_total")            /* microseconds spent minting */ \
	X(INSECURE, "insecure_uses")           /* insecure_hosts connections */

enum fwd_inspect_counter {
#define X(id, s) FWD_IC_##id,
	FWD_INSPECT_COUNTERS(X)
#undef X
	FWD_IC_COUNT
};

/* What inspection needs of the forward side's compiled data. */
struct fwd_inspect_ctx {
	const struct fwd_decider *dc;
	const struct fwd_auth_db *db;    /* NULL without forward.auth */
	struct fwd_matchdata *md;        /* the worker's match block (fwd_decide) */
};

/*
 * Compile forward.inspect of cf with the loaded CA ca (borrowed: it must
 * outlive the result).  NULL when inspection is off (mode "off" or no
 * section), or on error (appended to errs; *failed set).
 */
struct fwd_inspect *fwd_inspect_new(const struct conf *cf, struct fwd_ca *ca, struct conf_errors *errs,
    int *failed);
void fwd_inspect_free(struct fwd_inspect *in);

/* The forward side's TLS client specs (upstream verification; the
 * insecure_hosts context): the gw_side.tls hook.  0 or -1 (no memory). */
int fwd_inspect_tls_specs(const struct conf *cf, struct gw_tls_specs *sp);

/* An allowed CONNECT (rule m matched): answer and peek (gw_req_peek) when
 * inspection is on; 0 when it is off (the caller tunnels as before). */
int fwd_inspect_connect(struct fwd_inspect *in, struct gw_req *rq, const struct fwd_match *m);

/* proto->on_peek and proto->on_tunnel_tls for the forward side. */
void fwd_inspect_on_peek(struct fwd_inspect *in, const struct fwd_inspect_ctx *x, struct gw_req *rq,
    const unsigned char *p, size_t n, int final);
void fwd_inspect_on_tunnel_tls(struct fwd_inspect *in, struct gw_req *rq, struct ssl_st *up, const char *err);

/*
 * A request read inside an inspected connection (gw_req_conn_tag(rq) is
 * tag): *user is the CONNECT's signed-in user (NULL: none; points into
 * tag's copy in the request); returns NULL, or the origin's problem to
 * answer with (the block page).
 */
const char *fwd_inspect_inner(struct gw_req *rq, const char *tag, const char **user);
/* The upstream TLS context number for an inspected request to host. */
int fwd_inspect_upstream_tls(const struct fwd_inspect *in, const char *host, size_t n);

/* A client broke off the handshake with a leaf for host (proto->on_tls_abort):
 * counted per host in a small table of the most frequent (process-wide). */
void fwd_inspect_abort(const char *host);
/* The table: up to cap hosts and their counts, most first; returns how many. */
#define FWD_INSPECT_ABORT_HOSTS 32
size_t fwd_inspect_aborts(char (*hosts)[256], uint64_t *counts, size_t cap);

/* 1 if slot (gw_req_data) is inspection's per-request state. */
int fwd_inspect_owns_slot(const void *slot);

uint64_t fwd_inspect_counter(enum fwd_inspect_counter c);
const char *fwd_inspect_counter_name(enum fwd_inspect_counter c);
/* Leaves in in's cache now (0 for NULL). */
size_t fwd_inspect_cached(const struct fwd_inspect *in);

#endif
