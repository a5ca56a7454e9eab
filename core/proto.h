/*
 * core/proto: the contract between the connection core and a listener family
 * (forward/ or reverse/).  The core parses a request and hands it to the
 * family's on_request(); the family decides (it is the only place the two
 * sides differ) by calling exactly one of gw_req_proxy(), gw_req_tunnel(),
 * gw_req_respond() or gw_req_respond_file() before returning.  The core then
 * moves the bytes.  Families never see sockets.
 *
 * A struct gw_req lives from the parsed request head until its access-log
 * line is written; it belongs to the core.  Strings passed to gw_req_*
 * functions are copied into the request's arena unless noted.
 */
#ifndef GW_PROTO_H
#define GW_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/http1.h"

struct gw_req;
struct conf;
struct ssl_st;       /* OpenSSL's SSL, SSL_CTX, X509, EVP_PKEY */
struct ssl_ctx_st;
struct x509_st;
struct evp_pkey_st;

struct gw_proto {
	const char *name;          /* "forward" / "reverse": log family */
	int family;                /* stats family index: set by gw_control_add_side() */
	/* A proxy's family (forward): over HTTP/2, a stream with :scheme http
	 * is an absolute-form request for :authority, and a CONNECT stream
	 * that the family lets through becomes a tunnel (RFC 9113 8.5,
	 * core/h2_tunnel.c).  0: streams are origin-form, CONNECT gets 501. */
	int proxy;
	/* Decide what to do with a request.  side is this family's compiled
	 * data from the connection's config snapshot. */
	void (*on_request)(struct gw_req *rq, void *side);
	/* Each resolved upstream address before connecting: 0 to allow, or
	 * a status (403) to refuse the address (the request fails with that
	 * status when no address is left).  To refuse the whole request with
	 * its own page, the family calls gw_req_respond() here instead.
	 * May be NULL. */
	int (*on_resolved)(struct gw_req *rq, const struct sockaddr *sa, void *side);
	/* The upstream's final response head is about to be relayed; the
	 * family may add or remove response headers.  May be NULL. */
	void (*on_response_head)(struct gw_req *rq, const struct gw_http_head *resp, void *side);
	/* Request finished (logged right after).  May be NULL. */
	void (*on_done)(struct gw_req *rq, void *side);
	/* After gw_req_read_body(): the (de-chunked) body, complete or cut at
	 * the limit the family gave.  Must decide, like on_request.  May be
	 * NULL if the family never calls gw_req_read_body(). */
	void (*on_body)(struct gw_req *rq, const char *data, size_t len, int complete, void *side);
	/*
	 * The upstream failed before a usable response: stage says how.  The
	 * family may call gw_req_proxy() again (e.g. another server) and
	 * return 1 to retry; return 0 to let the core answer 502/504 (or, for
	 * GW_UPFAIL_STATUS, relay the origin's response).  May be NULL.
	 */
	int (*on_upstream_error)(struct gw_req *rq, int stage, void *side);
	/* The proxied response body as it streams to the client (decoded
	 * bytes, in order; e.g. to store it in a cache).  May be NULL. */
	void (*on_response_body)(struct gw_req *rq, const char *data, size_t len, void *side);
	/*
	 * A filter that may hold and replace the proxied response body (e.g.
	 * ICAP, rewriting), beside the observing on_response_body.  Active
	 * for a request only once the family called gw_req_filter_response()
	 * in on_response_head.  Called with each run of the body as it comes,
	 * without the upstream's framing (after on_response_body saw it);
	 * last = 1 exactly once, with the final run (n may be 0).  Nothing
	 * reaches the client unless the filter passes it on with
	 * gw_req_body_emit() (any bytes, now or later; the last emit says
	 * last).  Returns GW_FILTER_GO for more, or GW_FILTER_HOLD: the core
	 * stops reading the upstream and calls the filter no more until
	 * gw_req_resume() (which also sends what was emitted meanwhile).
	 * The response then goes to the client without Content-Length
	 * (chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones).
	 * May be NULL.
	 */
	int (*on_response_filter)(struct gw_req *rq, const char *p, size_t n, int last, void *side);
	/* The proxied response ended: complete = 1 as soon as the whole body
	 * has come from the upstream (it may still be on its way to the
	 * client), else 0 when the request ends without it.  Called once,
	 * before on_done.  May be NULL. */
	void (*on_response_end)(struct gw_req *rq, int complete, void *side);
	/* TLS inspection (see gw_req_peek below).  After gw_req_peek(): the
	 * bytes the client sent after the 200 so far (p[0..n), at most the max
	 * given), final = 1 when no more will come (the max was reached, the
	 * client closed or was silent for the timeout).  Decide as on_request
	 * does, or return without a decision to wait for more (not when
	 * final).  May be NULL if the family never peeks. */
	void (*on_peek)(struct gw_req *rq, const unsigned char *p, size_t n, int final, void *side);
	/* After gw_req_tunnel_tls(): the upstream's TLS session once its
	 * handshake succeeded (up; err NULL), or up NULL and err saying why the
	 * upstream failed (connect, handshake, certificate).  Must call
	 * gw_req_tls_serve(), gw_req_respond() (the client is closed) or
	 * gw_req_defer().  May be NULL likewise. */
	void (*on_tunnel_tls)(struct gw_req *rq, struct ssl_st *up, const char *err, void *side);
	/* A client of an inspected connection (gw_req_tls_serve to host) broke
	 * off the TLS handshake: it does not trust the minted certificate
	 * (e.g. an application with a pinned key).  May be NULL. */
	void (*on_tls_abort)(const char *host, void *side);
	/* An inspected CONNECT over TLS or HTTP/2 moves to a connection of its
	 * own (core/conn_nest.c), which gets a copy of the outer connection's
	 * gw_req_set_conn_data (its sign-in) made here, with *free_fn for it;
	 * NULL: none (out of memory, or nothing to carry).  May be NULL. */
	void *(*conn_data_dup)(const void *data, void (**free_fn)(void *data));
};

/* What on_response_filter returns. */
enum { GW_FILTER_GO = 0, GW_FILTER_HOLD = 1 };

/* Stages for on_upstream_error. */
enum gw_upfail {
	GW_UPFAIL_CONNECT,     /* connect refused, unreachable or timed out: nothing was sent */
	GW_UPFAIL_RESET,       /* closed or reset before any response byte */
	GW_UPFAIL_STATUS,      /* answered 502 or 503 (asked only for idempotent methods
	                        * whose body was not sent) */
	GW_UPFAIL_TIMEOUT      /* no response head within upstream_response */
};

/* ---- what the family can read ---- */

const struct gw_http_head *gw_req_head(const struct gw_req *rq);
const struct sockaddr *gw_req_client(const struct gw_req *rq);
const char *gw_req_client_str(const struct gw_req *rq);     /* numeric address */
/*
 * The effective client is the TCP peer unless the family set another one
 * (the reverse side: the address a trusted proxy forwarded for).  After
 * gw_req_set_client(rq, sa) (AF_INET or AF_INET6; copied; 0, or -1 for
 * another family or no memory), gw_req_client/_str give sa for the rest of
 * the request, the access log names it as the client and the peer beside it
 * (peer=); gw_req_peer/_str always give the TCP peer.
 */
int gw_req_set_client(struct gw_req *rq, const struct sockaddr *sa);
const struct sockaddr *gw_req_peer(const struct gw_req *rq);
const char *gw_req_peer_str(const struct gw_req *rq);
const struct sockaddr *gw_req_local(const struct gw_req *rq);
const char *gw_req_id(const struct gw_req *rq);
const struct conf *gw_req_conf(const struct gw_req *rq);
int gw_req_is_tls(const struct gw_req *rq);
/*
 * Allocate n zeroed bytes (gw_req_strndup: a NUL-terminated copy of n bytes
 * of s) that live as long as the request.  NULL when out of memory: the
 * request is then marked and fails with 503 at its next step (the process
 * lives), so a caller only has to stop using the result, typically by
 * returning without a decision.  Header edits and decisions that cannot
 * keep what they were given mark the request the same way.
 */
void *gw_req_alloc(struct gw_req *rq, size_t n);
char *gw_req_strndup(struct gw_req *rq, const char *s, size_t n);

/* ---- decisions (exactly one per request) ---- */

/*
 * Proxy to host:port (a DNS name or numeric address, copied) with the
 * origin-form path (copied; NULL = the request's own path).  A pooled
 * upstream connection is reused only for the same listener family, host:port
 * and upstream TLS settings; with on_resolved, only after the addresses were
 * vetted and only to one of them; never across client connections once it
 * carried connection-bound authentication (NTLM, Negotiate).
 */
void gw_req_proxy(struct gw_req *rq, const char *host, size_t host_len, uint16_t port,
    const char *path, size_t path_len);
/* After gw_req_proxy(): speak TLS to the upstream, with the client context
 * of reverse.upstreams[upstream] (verification, SNI as configured). */
void gw_req_upstream_tls(struct gw_req *rq, int upstream);
/* After gw_req_proxy(): speak HTTP/2 to the upstream (TLS with ALPN h2, or
 * h2c with prior knowledge when plain), on a session shared by the
 * worker's exchanges to the same server (core/h2_client.c). */
void gw_req_upstream_h2(struct gw_req *rq);
/* An h2 upstream's liveness probe: PING a session that received nothing
 * for interval seconds (0 = never), close it when the answer takes longer
 * than timeout.  Not called: 30 s and 10 s. */
void gw_req_upstream_h2_ping(struct gw_req *rq, double interval, double timeout);
/* After gw_req_proxy(): at most n idle connections of this upstream's pool
 * key are kept per worker (0 = none; default 32).  Every worker also keeps
 * no more idle upstream connections than its share of max_connections. */
void gw_req_upstream_keepalive(struct gw_req *rq, unsigned n);
/* After gw_req_proxy(): the host it names (as copied) and its port in
 * *port; NULL before any gw_req_proxy()/gw_req_tunnel().  For
 * on_upstream_error(): which server failed. */
const char *gw_req_upstream_host(const struct gw_req *rq, uint16_t *port);
/* CONNECT: open a tunnel to host:port; the core answers 200 once connected. */
void gw_req_tunnel(struct gw_req *rq, const char *host, size_t host_len, uint16_t port);
/*
 * After gw_req_tunnel(): reach its host:port through the proxy at
 * phost:pport instead.  The core connects to the parent (the name resolved
 * and vetted by on_resolved as for any upstream), sends "CONNECT host:port"
 * with extra (complete "Name: value\r\n" lines, copied; may be NULL), and
 * answers the client 200 only once the parent answered 2xx; another answer,
 * none within upstream_response, or a head over 16 KiB is 502 (504 for the
 * timeout) with the parent's status line as the logged reason.
 */
void gw_req_tunnel_via(struct gw_req *rq, const char *phost, size_t phost_len, uint16_t pport,
    const char *extra, size_t extra_len);
/*
 * Answer locally.  body NULL: the standard error page for status (HTML or
 * text by the client's Accept), with detail (may be NULL) as an extra line.
 * Otherwise body[0..len) is copied and sent with content_type.
 */
void gw_req_respond(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, const char *detail);
/*
 * Answer with a body the family owns (no copy, e.g. a cached object):
 * cleanup(body, len, arg) runs once the core no longer needs it (it may be
 * NULL).  Headers come from gw_req_resp_hdr_add(); a "Date" added there
 * replaces the core's own.
 */
void gw_req_respond_ref(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, void (*cleanup)(const void *data, size_t len, void *arg),
    void *arg);
/* Answer with len bytes of file fd from offset (the core takes ownership of fd).
 * For HEAD only the head is sent. */
void gw_req_respond_file(struct gw_req *rq, int status, const char *content_type,
    int fd, uint64_t offset, uint64_t len);

/*
 * TLS inspection of a CONNECT (the core's part; the family decides):
 *
 *   gw_req_peek(rq, max, timeout)   instead of deciding in on_request: the
 *       core answers "200 Connection established" at once and hands the
 *       client's first bytes to proto->on_peek (kept: a tunnel or the TLS
 *       server gets them all).  From then on no HTTP answer can be sent: a
 *       gw_req_respond() closes the connection, its status and detail
 *       logged.
 *   gw_req_tunnel_tls(rq)           after gw_req_tunnel() + gw_req_upstream_tls()
 *       from on_peek: once the upstream's TLS handshake is done (or it
 *       failed), proto->on_tunnel_tls decides instead of the bytes being
 *       spliced.
 *   gw_req_tls_serve(rq, ctx, cert, key, host, port, tag)   from
 *       on_tunnel_tls (or a wake after it): the client connection becomes
 *       a TLS server (an SSL from ctx with cert and key: references taken),
 *       the CONNECT ends (its log line), a verified upstream session is
 *       pooled for the first request, and every request read inside is
 *       made absolute-form "https://host:port/..." before on_request;
 *       gw_req_conn_tag() gives them tag (copied).
 */
void gw_req_peek(struct gw_req *rq, size_t max, double timeout);
void gw_req_tunnel_tls(struct gw_req *rq);
void gw_req_tls_serve(struct gw_req *rq, struct ssl_ctx_st *ctx, struct x509_st *cert,
    struct evp_pkey_st *key, const char *host, uint16_t port, const char *tag);
/*
 * HTTP/2 inside inspection (ALPN mirrored):
 *   gw_req_upstream_alpn(rq, h2, h1, h2_first)   from on_peek, before the
 *       upstream handshake: it offers those of h2 and http/1.1 (h2 first
 *       when h2_first) instead of its context's http/1.1; none: unchanged.
 *   gw_req_upstream_alpn_h2(up)   in on_tunnel_tls: the origin chose h2.
 *       That session is then never pooled for the HTTP/1.1 requests inside.
 *   gw_req_tls_serve_h2(rq)       with gw_req_tls_serve: the client's
 *       handshake chooses h2 when offered (else http/1.1); its connection
 *       then runs core/h2.c, each stream a request as gw_req_tls_serve says,
 *       its :authority the CONNECT's host (or the TLS name) and port or 421.
 */
void gw_req_upstream_alpn(struct gw_req *rq, int h2, int h1, int h2_first);
int gw_req_upstream_alpn_h2(const struct ssl_st *up);
void gw_req_tls_serve_h2(struct gw_req *rq);
/* In a request read inside an inspected connection whose origin chose h2:
 * 1 when it may go to the origin over HTTP/2 (gw_req_upstream_h2, on the
 * verified check session while it lasts, else a new one to the vetted
 * addresses); 0 for HTTP/1.1 (also for connection-bound credentials:
 * NTLM, Negotiate need a connection of their own). */
int gw_req_conn_upstream_h2(const struct gw_req *rq);
/* The tag of the inspected connection rq was read on (NULL: not one). */
const char *gw_req_conn_tag(const struct gw_req *rq);

/*
 * Decide later.  on_request (or on_body) may call gw_req_defer() instead of
 * deciding, e.g. while a password is verified on another thread.  Exactly
 * one gw_req_wake() must follow, from any thread: fn(rq, arg) then runs on
 * the request's worker thread and must decide (or, when gw_req_alive() says
 * the client went away meanwhile, only clean up arg; the core then frees
 * the request).
 */
void gw_req_defer(struct gw_req *rq);
void gw_req_wake(struct gw_req *rq, void (*fn)(struct gw_req *rq, void *arg), void *arg);
int gw_req_alive(const struct gw_req *rq);

/*
 * Read the request body before deciding: the core reads and de-chunks up
 * to max bytes, then calls proto->on_body().  If the family then proxies,
 * the buffered bytes are sent first and the rest (if the body was longer)
 * streams after them.
 */
void gw_req_read_body(struct gw_req *rq, uint64_t max);
/*
 * After a whole body was read (on_body with complete set, before the
 * request is proxied): send hdrs[0..n) (copied) as the request's header
 * fields and body[0..len) as its body instead, e.g. what a content
 * adapter (ICAP REQMOD) rewrote.  The request line and target stay; the
 * fields go through the family's header edits and the core's hop-by-hop
 * rules as the client's would; framing is the core's (Content-Length of
 * len; the fields' own Content-Length/Transfer-Encoding are not sent).
 * 0, or -1 (no whole buffered body, already sent, len over the request's
 * body limit, out of memory: the request is then unchanged or, if the body
 * could not be copied, must not be proxied).
 */
struct gw_hdr;
int gw_req_rewrite(struct gw_req *rq, const struct gw_hdr *hdrs, size_t n, const char *body, size_t len);

/* The response filter (on_response_filter): gw_req_filter_response() turns
 * it on for rq (from on_response_head; 0, or -1 when out of memory: then
 * the response is not filtered); the filter passes bytes on with
 * gw_req_body_emit() (last: nothing follows); gw_req_resume() ends a
 * GW_FILTER_HOLD (on rq's worker, e.g. from a gw_req_wake()-like event). */
int gw_req_filter_response(struct gw_req *rq);
void gw_req_body_emit(struct gw_req *rq, const void *p, size_t n, int last);
/* The same for the first n bytes of src, moved (whole chains, no copy). */
struct evbuffer;
void gw_req_body_emit_buffer(struct gw_req *rq, struct evbuffer *src, size_t n, int last);
void gw_req_resume(struct gw_req *rq);
/*
 * With the filter on (in on_response_head, after gw_req_filter_response):
 * the response head is held too, and goes to the client with the filter's
 * first emit that carries bytes (or its last), so that the filter may
 * still replace it: gw_req_filter_replace_head() gives a complete HTTP/1.x
 * response head (copied; parsed as an upstream's; its framing fields are
 * dropped: the body is the filter's output) to send instead.  Both return
 * 0, or -1 (no filter, head already sent, head not parsable, no memory).
 */
int gw_req_filter_hold_head(struct gw_req *rq);
int gw_req_filter_replace_head(struct gw_req *rq, const char *head, size_t len);
/* The filter cannot finish a response it began (e.g. its source broke
 * mid-body): the exchange fails, the client connection is cut, so the
 * client never takes a truncated body for a whole one. */
void gw_req_filter_abort(struct gw_req *rq, const char *reason);
/* 1 while the client's side of rq cannot take more now: a filter whose
 * bytes come from elsewhere than the upstream (e.g. an ICAP server)
 * waits (and looks again later) instead of emitting without bound. */
int gw_req_output_full(const struct gw_req *rq);
/* Once the client's side of rq took what was full (HTTP/1 sink), ev is
 * made active (once; the filter's own event, never run inside the core's
 * call).  NULL forgets it (the filter ends). */
struct event;
void gw_req_output_wake(struct gw_req *rq, struct event *ev);
/* The event loop of rq's worker (a filter's own I/O runs on it). */
struct event_base;
struct event_base *gw_req_base(const struct gw_req *rq);
/* The resolver of rq's worker (core/dns.h; a family's own connections). */
struct gw_dns;
struct gw_dns *gw_req_dns(const struct gw_req *rq);

/* One pointer of the family's own per-request state (NULL until set). */
void gw_req_set_data(struct gw_req *rq, void *data);
void *gw_req_data(const struct gw_req *rq);
/*
 * One pointer of the family's own per-connection state: what was
 * authenticated on the connection (Negotiate authenticates a connection,
 * not a request: browsers send the token once after a 407 and later
 * requests on that connection without it).  data is owned by the
 * connection from then on; free_fn(data) runs when the connection is freed
 * or the data replaced.  A request without a client connection (background
 * requests) keeps nothing: free_fn runs at once.  NULL until set.
 */
void gw_req_set_conn_data(struct gw_req *rq, void *data, void (*free_fn)(void *data));
void *gw_req_conn_data(const struct gw_req *rq);

/* Worker index of the request's thread (0..N-1), for per-worker counters. */
int gw_req_worker(const struct gw_req *rq);
/* 1 once any request body byte was sent upstream. */
int gw_req_body_sent(const struct gw_req *rq);
/* The response status sent or being sent (0 before). */
int gw_req_status(const struct gw_req *rq);
/* SNI name the client sent on a TLS listener (NULL if none). */
const char *gw_req_sni(const struct gw_req *rq);
/* The client's TLS connection (server side), for what core/tls.h reads
 * from it (gw_tls_client_cert()); NULL on a plain connection and for a
 * background request. */
struct ssl_st *gw_req_client_ssl(const struct gw_req *rq);

/*
 * Background request: a copy of rq (same head, listener family, config
 * snapshot, worker, client address and TLS-ness) that runs from the event
 * loop soon after, independent of rq and its client, and whose response goes
 * nowhere: the family sees it through its usual hooks (on_request,
 * on_response_head/body/end, on_done) and tells it apart with
 * gw_req_is_background().  Before returning to the loop the caller may
 * attach state to it (gw_req_alloc, header edits).  It ends like any request
 * (on_done runs once); the whole exchange is cut after timeout seconds, and
 * at shutdown like a client connection.  NULL when the worker is stopping or
 * out of memory.  Only for requests without a body.
 */
struct gw_req *gw_req_spawn(struct gw_req *rq, double timeout);
int gw_req_is_background(const struct gw_req *rq);

/* ---- request and response header edits ---- */

/* Remove every header named name that the client sent from the request
 * sent upstream (headers added with gw_req_hdr_add() stay). */
void gw_req_hdr_del(struct gw_req *rq, const char *name);
/* Add a header to the request sent upstream. */
void gw_req_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t value_len);
/* Remove a header from the proxied response. */
void gw_req_resp_hdr_del(struct gw_req *rq, const char *name);
/* Add a header to the response (proxied or local). */
void gw_req_resp_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t value_len);
/* Do not add Via to the request nor the response (anonymising). */
void gw_req_no_via(struct gw_req *rq);
/* Body limit for this request in bytes (0 = unlimited); default from global.limits. */
void gw_req_set_max_body(struct gw_req *rq, uint64_t max);

/* ---- what is logged ---- */

/* verdict ("allow", "deny", ...) and rule name: static or request-owned strings. */
void gw_req_set_verdict(struct gw_req *rq, const char *verdict, const char *rule);
void gw_req_set_user(struct gw_req *rq, const char *user);
/* What gw_req_set_verdict() and gw_req_set_user() stored (NULL if nothing). */
const char *gw_req_verdict(const struct gw_req *rq);
const char *gw_req_user(const struct gw_req *rq);
/* Log the request target without its query string (it held something
 * sensitive, e.g. what DLP caught). */
void gw_req_log_no_query(struct gw_req *rq);
/* The same without its path either: scheme and authority only. */
void gw_req_log_no_path(struct gw_req *rq);
/* The access log's reason= field (static or request-owned string). */
void gw_req_set_reason(struct gw_req *rq, const char *reason);
/* Labels of the latency histograms (core/hist.h): a site and an upstream
 * name; configured names only (the label set must stay bounded).  Unset:
 * the request is not in the per-site histogram, and its upstream label is
 * the family name. */
void gw_req_set_metric_site(struct gw_req *rq, const char *site);
void gw_req_set_metric_upstream(struct gw_req *rq, const char *upstream);

#endif
