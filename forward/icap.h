/*
 * forward/icap: the ICAP (RFC 3507) client of the forward side.  A
 * snapshot's services (forward.icap) are compiled into a struct fwd_icap;
 * each worker keeps, per service, the OPTIONS it learnt (refreshed after
 * Options-TTL) and a pool of idle persistent connections within its share
 * of Max-Connections.  A RESPMOD exchange runs beside one proxied response
 * on the request's worker loop: the response (head and body) is held by
 * the core's response filter while the body streams to the service
 * (Preview, ieof, 100 Continue); a 204 lets the original go on unchanged,
 * a 200 replaces it with the service's message.  Failures follow the
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

/* The services of fw (NULL with none, or out of memory: *oom set). */
struct fwd_icap *fwd_icap_new(const struct conf_forward *fw, int *oom);
/* Any thread, once no request uses the snapshot: closes idle connections. */
void fwd_icap_free(struct fwd_icap *ic);
/* Index of the service named name, or -1. */
int fwd_icap_find(const struct fwd_icap *ic, const char *name);
/* Whether service i is a reqmod one. */
int fwd_icap_is_reqmod(const struct fwd_icap *ic, int i);

/*
 * From on_response_head: send the response of rq (head resp) to RESPMOD
 * service svc.  server_ip: numeric address of the origin ("" unknown).
 * Turns the response filter on and holds the head; *txp then receives the
 * exchange, which fwd_icap_filter() feeds and fwd_icap_done() ends.  A
 * response without a body is not sent (nothing to scan); one whose
 * Content-Length is over max_body_bytes is passed or answered with 403
 * here (on_oversize).  Nothing is set in *txp then.
 */
void fwd_icap_respmod(struct fwd_icap *ic, int svc, struct gw_req *rq, const struct gw_http_head *resp,
    const char *server_ip, struct fwd_icap_tx **txp);
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
