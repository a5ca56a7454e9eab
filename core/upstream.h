/*
 * core/upstream: the upstream engine's public part.  An exchange (a
 * struct gw_req the family sent to a server: gw_req_proxy, gw_req_tunnel,
 * gw_req_tunnel_via) is driven by the engine through DNS (the family vets
 * each address), the pool or a new connect, upstream TLS, the request out,
 * the response in, and the family's retries; it reports what happens to
 * the exchange's sink, never to a client connection.  The HTTP/1 client
 * connection (core/conn.c) is one sink; a future HTTP/2 stream, ICAP, a
 * health check or a background request are others.
 *
 * Also the per-worker pool of idle upstream connections (the worker makes,
 * expires and frees it).
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stddef.h>

struct evbuffer;
struct gw_http_head;
struct gw_pool;
struct gw_req;
struct gw_worker;
struct upconn;

/* What sink calls return to the engine. */
enum {
	GW_SINK_GO = 0,     /* carry on */
	GW_SINK_HOLD = 1,   /* stop reading the upstream until gw_upstream_resume() */
	GW_SINK_LOCAL = 2,  /* on_head: the family answers by itself; nothing was written */
	GW_SINK_FAIL = -1,  /* could not take it: the engine fails the exchange (502) */
	GW_SINK_GONE = -2   /* the sink ended the exchange: the engine touches nothing more */
};

/*
 * The sink of an exchange: how the engine reports.  Called on the
 * exchange's worker loop, with the struct gw_req (its sink_arg says which
 * sink instance).  After a call that may end the exchange the engine
 * returns at once (GW_SINK_GONE, or any call documented "may end").
 * Members marked (opt) may be NULL.
 */
struct gw_sink {
	/* ---- the response ---- */
	/* A 1xx interim response (not 101).  GO, or HOLD (the engine stops
	 * reading and calls on_flush). */
	int (*on_interim)(struct gw_req *rq, const struct gw_http_head *r);
	/* The final response head (r valid only during the call).  The sink
	 * runs gw_upstream_head_hook (the family's on_response_head) when it
	 * sees fit, sets rq->respx's output framing, and writes the head.  GO
	 * (the engine marks the head done; the body follows), LOCAL (the
	 * family answers instead: the engine releases the upstream and calls
	 * on_local), FAIL (502) or GONE. */
	int (*on_head)(struct gw_req *rq, const struct gw_http_head *r);
	/* Body bytes: src is the upstream's buffer (or, for a filtered
	 * response, what the filter emitted); the sink moves what it takes
	 * with gw_upstream_body_take (core sinks: gw_relay_xfer_pump on
	 * GW_SINK_XFER(rq), which also frames for the client): the source's
	 * framing is stripped, the on_response_body tap runs, no copy.  eof:
	 * nothing follows src (the upstream closed, or the filter's last
	 * emit).  GO, HOLD (output full: stop reading until
	 * gw_upstream_resume), FAIL (bad framing: 502) or GONE. */
	int (*on_body)(struct gw_req *rq, struct evbuffer *src, int eof);
	/* Nothing more to hand over for now (the response may be complete:
	 * rq->respx.done): write what is queued.  May end the exchange. */
	void (*on_flush)(struct gw_req *rq);
	/* The exchange failed (the engine counted, logged and released the
	 * upstream): answer status, or cut the exchange if the response
	 * began.  reason NULL: out of memory.  Ends the exchange. */
	void (*on_error)(struct gw_req *rq, int status, const char *reason);
	/* The family answers by itself (rq->dec is DEC_RESPOND or DEC_FILE). */
	void (*on_local)(struct gw_req *rq);

	/* ---- the request side and tunnels (opt: NULL for an exchange
	 * without a request body source or a client to tunnel to) ---- */
	/* The request head went out; the request body (rq->reqx not done)
	 * may be sent now: the source pumps it into rq->up->out and calls
	 * gw_upstream__write.  GO or GONE (ended, or its upstream released). */
	int (*on_ready)(struct gw_req *rq);
	/* gw_upstream__write wrote what it could of u's output: the source
	 * arms the write (gw_upstream__arm_write), resumes its own reading
	 * when the upstream took enough, pumps a tunnel. */
	void (*on_sent)(struct gw_req *rq, struct upconn *u);
	/* The exchange became a tunnel (CONNECT: r NULL; 101: the upstream's
	 * head, valid during the call); the sink moves bytes from now on. */
	void (*on_tunnel)(struct gw_req *rq, const struct gw_http_head *r);
	/* A tunnel's upstream is readable. */
	void (*on_tunnel_rd)(struct gw_req *rq, struct upconn *u);
	/* Resolution started (waiting 1) or ended (0): bound it if wished. */
	void (*on_dns)(struct gw_req *rq, int waiting);
	/* A retry on a fresh connection: drop what was queued for the client
	 * but not sent (a 100 Continue). */
	void (*on_retry)(struct gw_req *rq);
	/* (opt) 1 while the client's output is full (the sink held the
	 * body): gw_req_output_full() for a response filter whose source is
	 * not the upstream (it then waits before producing more). */
	int (*on_full)(struct gw_req *rq);
};

/* An owner of private upstream connections (connection-bound
 * authentication binds an upstream connection to one client
 * connection): embedded in it, pointed to by its exchanges' rq->owner. */
struct gw_upowner {
	unsigned has_private;   /* some pooled connection is private to it */
	struct upconn *idle;    /* its private connection pooled last, NULL when none
	                         * is pooled: found without walking the bucket (an
	                         * inspected origin's bucket holds every client's) */
};

/* Start the exchange rq (its w, snap, proto, side, sink set; the family's
 * decision made): resolve, vet, connect or reuse, send, receive. */
void gw_upstream_start(struct gw_req *rq);
/* The sink took enough after a HOLD: read the upstream again (and hand
 * over what is already buffered). */
void gw_upstream_resume(struct gw_req *rq);
/* For a sink's on_head: run the family's on_response_head (and install
 * its on_response_body tap; it may turn the response filter on).  Returns
 * 1 when the family chose to answer by itself instead (or ran out of
 * memory): the sink writes nothing and returns GW_SINK_LOCAL. */
int gw_upstream_head_hook(struct gw_req *rq, const struct gw_http_head *r);
/* For an on_body that keeps the bytes as they are (no framing of its
 * own): move the body from src to dst without the upstream's framing
 * (the family's on_response_body tap sees them).  1: the body is complete;
 * 0: more to come; -1: bad framing (return GW_SINK_FAIL); -2: the upstream
 * closed mid-body (end the exchange). */
int gw_upstream_body_take(struct gw_req *rq, struct evbuffer *src, struct evbuffer *dst, int eof);
/* The final head came and the whole body (if any) was handed over. */
int gw_upstream_complete(const struct gw_req *rq);
/* Fail the exchange from outside the engine (e.g. the sink's DNS bound):
 * counts, logs, releases the upstream, and calls on_error. */
void gw_upstream_fail(struct gw_req *rq, int status, const char *reason);
/* Close and detach rq's upstream connection (not pooled). */
void gw_upstream_detach(struct gw_req *rq);
/* The exchange is over (rq->up not NULL): pool its upstream connection
 * if the exchange left it clean and reusable, else close it. */
void gw_upstream_release(struct gw_req *rq);
/* Close the pooled connections private to owner (it is going away). */
void gw_upstream_drop_owned(struct gw_pool *p, const struct gw_upowner *owner);

/* ---- exchanges without a client connection (health checks, tests) ---- */
struct event_base;
struct gw_dns;
struct gw_proto;
struct gw_snapshot;

/* What the engine needs of a worker, for a loop that is not one (e.g. the
 * main thread's): base, resolver (NULL: numeric hosts only), an empty
 * pool that keeps no connection, counters, head scratch.  NULL when out
 * of memory.  Free it after its exchanges. */
struct gw_worker *gw_upstream_loop_new(struct event_base *base, struct gw_dns *dns);
void gw_upstream_loop_free(struct gw_worker *w);
/* A one-off exchange on w for the raw request head (a complete HTTP/1
 * request head without a body; its Host is sent as is, no Via is added)
 * under snap's settings; proto gives the stats family and log name (its
 * hooks should be NULL: the engine calls them with side NULL).  The
 * caller then names the server with gw_req_proxy (and gw_req_upstream_tls)
 * and starts it with gw_upstream_start; every outcome reaches the sink,
 * after which (or to cancel) the caller frees it with
 * gw_upstream_req_free.  NULL when the head does not parse or memory
 * lacks.  The engine reads snap while the exchange runs. */
struct gw_req *gw_upstream_req_new(struct gw_worker *w, struct gw_snapshot *snap,
    const struct gw_proto *proto, const struct gw_sink *sink, void *sink_arg,
    const char *head, size_t len);
/* Cancel what is under way (DNS, the upstream connection) and free rq. */
void gw_upstream_req_free(struct gw_req *rq);

/* Per-worker upstream connection pool (also holds the worker's spare
 * buffers and arena blocks). */
struct gw_pool *gw_pool_new(void);
void gw_pool_flush(struct gw_pool *p);        /* close all idle connections */
void gw_pool_free(struct gw_pool *p);
void gw_pool_expire(struct gw_worker *w);     /* close connections idle too long */

#endif
