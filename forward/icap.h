/*
 * forward/icap: the ICAP (RFC 3507) client of the forward side.  A
 * snapshot's services (forward.icap) are compiled into a struct fwd_icap;
 * each worker keeps, per service, the OPTIONS it learnt (refreshed after
 * Options-TTL) and a pool of idle persistent connections within its share
 * of Max-Connections.  A RESPMOD exchange runs beside one proxied response
 * on the request's worker loop: the response (head and body) is held by
 * the core's response filter while the body streams to the service
 * (Preview, ieof, 100 Continue); a 204 lets the original go on unchanged,
 * a 200 replaces it with the service's message.  A REQMOD 200 with a
 * response answers the client; one with a request sends that request's
 * header fields and body to the origin, to the target the policy allowed
 * (a changed method or target is refused with 502).  Failures follow the
 * service's bypass_on_error (fail open or closed), bodies over
 * max_body_bytes its on_oversize.
 */
#ifndef GW_FWD_ICAP_H
#define GW_FWD_ICAP_H

#include <stddef.h>
#include <stdint.h>

struct conf_forward;
struct gw_http_head;
struct gw_req;
struct fwd_icap;
struct fwd_icap_tx;

/* The services of fw for a process of workers worker threads (0: one per
 * CPU; each keeps its share of a service's Max-Connections).  NULL with
 * none, or out of memory (*oom set). */
struct fwd_icap *fwd_icap_new(const struct conf_forward *fw, long workers, int *oom);
/* Any thread, once no request uses the snapshot: closes idle connections. */
void fwd_icap_free(struct fwd_icap *ic);
/* Index of the service named name, or -1. */
int fwd_icap_find(const struct fwd_icap *ic, const char *name);
/*
 * The services of a list of names (a rule's icap, icap_default) of one
 * method (reqmod 0/1) as a plan: its id, or -1 with none.  A respmod plan
 * is a chain: the services in list order, each on the previous one's
 * output (a 204 passes on what it got, a 200 its message; a block, i.e.
 * a 200 naming a threat or violation, or a page of the gateway's own,
 * ends it).  A reqmod plan has one service.  Only while the snapshot is
 * built (at most one plan per list and method is stored).
 */
struct conf_strs;
int fwd_icap_plan(struct fwd_icap *ic, const struct conf_strs *names, int reqmod);

/*
 * From on_response_head: send the response of rq (head resp) to RESPMOD
 * plan (fwd_icap_plan) plan.  server_ip: numeric address of the origin ("" unknown).
 * Turns the response filter on and holds the head; *txp then receives the
 * exchange, which fwd_icap_filter() feeds and fwd_icap_done() ends.  A
 * response without a body is not sent (nothing to scan); one whose
 * Content-Length is over max_body_bytes is passed or answered with 403
 * here (on_oversize).  Nothing is set in *txp then.
 */
void fwd_icap_respmod(struct fwd_icap *ic, int plan, struct gw_req *rq, const struct gw_http_head *resp,
    const char *server_ip, struct fwd_icap_tx **txp);
/* What a REQMOD exchange decided. */
enum fwd_icap_outcome {
	FWD_ICAP_PROXY = 0,   /* send the request on: as it is, or as the service
	                       * rewrote it (its header fields and body, already
	                       * in place through gw_req_rewrite) */
	FWD_ICAP_RESPOND      /* answer with the page fwd_icap_outcome() gives */
};
/*
 * From on_body: send the upload of rq (body[0..len), complete or cut at
 * the limit the caller read) to REQMOD plan plan.  Returns 0: the
 * request is deferred and fin(rq, tx) runs once decided (gw_req_wake;
 * it reads fwd_icap_outcome() and decides); 1: send it on now (over
 * max_body_bytes with on_oversize "pass"); 2: answered already (403 over
 * max_body_bytes, or 503 out of memory).  *txp receives the exchange
 * (fwd_icap_done frees it).
 */
int fwd_icap_reqmod(struct fwd_icap *ic, int plan, struct gw_req *rq, const char *body, size_t len,
    int complete, struct fwd_icap_tx **txp, void (*fin)(struct gw_req *rq, void *arg));
/* The outcome, and for FWD_ICAP_RESPOND the page (valid until
 * fwd_icap_done): status, content type, body. */
enum fwd_icap_outcome fwd_icap_outcome(struct fwd_icap_tx *tx, int *status, const char **ctype,
    const char **body, size_t *len);
/* max_body_bytes of plan (a chain: the sum, each exchange holds its
 * own), and whether every service of it has bypass_on_error. */
uint64_t fwd_icap_max_body(const struct fwd_icap *ic, int plan);
int fwd_icap_bypassable(const struct fwd_icap *ic, int plan);

/* on_response_filter for a request with an exchange (GW_FILTER_GO/HOLD). */
int fwd_icap_filter(struct fwd_icap_tx *tx, const char *p, size_t n, int last);
/* The request ended (on_done): cancel what is under way, free tx.  For
 * the access log: what the verdict was ("icap=...") in *note (static or
 * request-owned), set before it is freed. */
void fwd_icap_done(struct fwd_icap_tx *tx);

/* sa as a numeric address for X-Server-IP (into buf; "" when not IP). */
struct sockaddr;
void fwd_icap_addr_str(const struct sockaddr *sa, char *buf, size_t cap);

/* ---- for the console (any thread; relaxed reads) ---- */
#define FWD_ICAP_COUNTERS(X) \
	X(PASS204, "pass_204")       /* the service answered 204: original relayed */ \
	X(MODIFIED, "modified")      /* a 200: the service's message relayed */ \
	X(INFECTED, "infected")      /* a 200 naming a threat (X-Infection-Found / X-Violations-Found) */ \
	X(ERRORS, "errors")          /* the exchange failed (down, timeout, protocol) */ \
	X(BYPASSED, "bypassed")      /* failed and passed (bypass_on_error) */ \
	X(OVERSIZE, "oversize")      /* over max_body_bytes */

enum fwd_icap_counter {
#define X(id, s) FWD_ICAP_C_##id,
	FWD_ICAP_COUNTERS(X)
#undef X
	FWD_ICAP_C_COUNT
};
size_t fwd_icap_count(const struct fwd_icap *ic);
const char *fwd_icap_name(const struct fwd_icap *ic, size_t i);
uint64_t fwd_icap_counter(const struct fwd_icap *ic, size_t i, enum fwd_icap_counter c);
const char *fwd_icap_counter_name(enum fwd_icap_counter c);
/* Health of service i: 1 when its last exchange or OPTIONS went well, 0
 * after a failure, -1 before any; its last ISTag into buf ("" none). */
int fwd_icap_health(const struct fwd_icap *ic, size_t i, char *istag, size_t cap);

#endif
