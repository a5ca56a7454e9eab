/*
 * core/bgreq: background requests (gw_req_spawn): requests without a client
 * connection, run through the family's on_request and the upstream engine
 * with a sink that keeps nothing (see below).
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/http1.h"
#include "core/http1_out.h"
#include "core/httpdate.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/relay.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/upstream.h"
#include "core/worker.h"

#include "core/conn_int.h"
#include "core/strlit.h"

#include <stdatomic.h>

/* ---- background requests (gw_req_spawn) ----
 *
 * A background request (e.g. the cache's stale-while-revalidate refresh) is
 * a request without a client connection, cloned from the request that
 * spawned it: same worker, snapshot (pinned by its own reference), family
 * and side, TCP peer and TLS-ness, and a private copy of the same request
 * head.  It takes the path a client's takes -- the family's on_request
 * (routing, balancer choice, forwarding headers, deferral), then the
 * upstream engine (retries, passive health, upstream TLS, pool, DNS,
 * timeouts, response parsing and the family's response hooks and taps) --
 * with a sink that keeps nothing: the body bytes pass the family's tap and
 * are dropped.  One timer bounds the whole exchange.  The worker's pool
 * lists them, and w->nconns counts them, so shutdown and worker stop end
 * them like connections (the family's on_done still runs).
 */

/* End rq: its upstream connection is released (pooled when clean), it is
 * logged and freed (gw_req__log_free), its snapshot reference dropped. */
static void bg_end(struct gw_req *rq)
{
	struct gw_worker *w = rq->w;
	struct gw_snapshot *snap = rq->snap;

	event_del(rq->ev_bg);
	if (rq->bg_prev != NULL)
		rq->bg_prev->bg_next = rq->bg_next;
	else
		w->pool->bg = rq->bg_next;
	if (rq->bg_next != NULL)
		rq->bg_next->bg_prev = rq->bg_prev;
	if (rq->up != NULL)
		gw_upstream_release(rq);
	gw_req__log_free(rq);
	gw_snapshot_unref(snap);
	w->nconns--;
	if (w->accept_paused && w->nconns < w->max_conns) {
		extern void gw_worker_resume_accept(struct gw_worker *w);
		gw_worker_resume_accept(w);
	}
}

/* Cut rq before its end (timeout, shutdown), as a client's close would. */
void gw_bgreq__cancel(struct gw_req *rq, enum gw_close_reason why)
{
	if (rq->up != NULL)
		gw_upstream_detach(rq);
	if (rq->status == 0)
		rq->status = 499;  /* ended before a response */
	if (rq->reason == NULL)
		rq->reason = gw_close_reason_names[why];
	bg_end(rq);
}

/* Fail rq with status (nothing is answered: it is logged so). */
static void bg_fail(struct gw_req *rq, int status, const char *reason)
{
	if (!rq->resp_head_done)
		rq->status = status;
	rq->reason = reason;
	bg_end(rq);
}

static int bg_on_interim(struct gw_req *rq, const struct gw_http_head *r)
{
	(void)rq;
	(void)r;
	return GW_SINK_GO;
}

static int bg_on_head(struct gw_req *rq, const struct gw_http_head *r)
{
	return gw_upstream_head_hook(rq, r) ? GW_SINK_LOCAL : GW_SINK_GO;
}

static int bg_on_body(struct gw_req *rq, struct evbuffer *src, int eof)
{
	size_t n;
	int r;

	/* (a background request has no request body: bodybuf is free) */
	if (rq->bodybuf == NULL && (rq->bodybuf = evbuffer_new()) == NULL)
		return GW_SINK_FAIL;
	r = gw_upstream_body_take(rq, src, rq->bodybuf, eof);
	n = evbuffer_get_length(rq->bodybuf);
	evbuffer_drain(rq->bodybuf, n);
	rq->bytes_out += n;
	if (r == -1)
		return GW_SINK_FAIL;
	if (r == -2) {
		if (rq->up != NULL)
			gw_upstream_detach(rq);
		bg_fail(rq, rq->status, "upstream closed mid-body");
		return GW_SINK_GONE;
	}
	return GW_SINK_GO;
}

static void bg_on_flush(struct gw_req *rq)
{
	if (gw_upstream_complete(rq)) {
		rq->finished = 1;
		bg_end(rq);
	}
}

static void bg_on_error(struct gw_req *rq, int status, const char *reason)
{
	if (reason == NULL)
		status = 503, reason = "out of memory";
	bg_fail(rq, status, reason);
}

/* The family answered by itself (rq->status is its status). */
static void bg_on_local(struct gw_req *rq)
{
	rq->finished = 1;
	bg_end(rq);
}

static const struct gw_sink bg_sink = {
	.on_interim = bg_on_interim,
	.on_head = bg_on_head,
	.on_body = bg_on_body,
	.on_flush = bg_on_flush,
	.on_error = bg_on_error,
	.on_local = bg_on_local,
};

/* Carry out the family's decision for a background request. */
void gw_bgreq__dispatch(struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;

	if (rq->oom) {
		bg_fail(rq, 503, "out of memory");
		return;
	}
	switch (rq->dec) {
	case DEC_NONE:
		gw_error("%s: family decided nothing for request %s", rq->proto->name, rq->id);
		bg_fail(rq, 500, "no decision");
		return;
	case DEC_DEFER:
		return;  /* gw_req_wake() continues */
	case DEC_RESPOND:
	case DEC_FILE:
		bg_on_local(rq);
		return;
	case DEC_READBODY:
		if (h->body != GW_BODY_NONE && !(h->body == GW_BODY_LENGTH && h->content_length == 0))
			break;
		rq->dec = DEC_NONE;
		rq->body_complete = 1;
		rq->reqx.done = 1;
		rq->proto->on_body(rq, "", 0, 1, rq->side);
		gw_bgreq__dispatch(rq);
		return;
	case DEC_PROXY:
		if (h->body != GW_BODY_NONE)
			break;
		rq->reqx.done = 1;
		gw_upstream_start(rq);
		return;
	case DEC_TUNNEL:
	case DEC_PEEK:
	case DEC_TLS_SERVE:
		break;
	}
	bg_fail(rq, 500, "not for a background request");
}

/* The start (from the loop: the spawner is inside its own on_request),
 * then the whole exchange's timeout. */
static void bg_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_req *rq = arg;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (rq->bg == 2) {
		rq->reason = "background request timeout";
		gw_bgreq__cancel(rq, GW_CLOSE_UPSTREAM_TIMEOUT);
		return;
	}
	rq->bg = 2;
	tv.tv_sec = (time_t)rq->bg_timeout;
	tv.tv_usec = (suseconds_t)((rq->bg_timeout - (double)tv.tv_sec) * 1e6);
	event_add(rq->ev_bg, &tv);
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_REQUESTS], 1);
	rq->proto->on_request(rq, rq->side);
	gw_bgreq__dispatch(rq);
}

struct gw_req *gw_req_spawn(struct gw_req *parent, double timeout)
{
	struct gw_worker *w = parent->w;
	const struct conf_limits *L = &parent->snap->conf->global.limits;
	struct gw_http_limits lim = { (size_t)L->max_header_bytes, parent->head.nhdrs + 1,
		(size_t)L->max_uri_bytes };
	size_t len = parent->head.head_len;
	struct gw_req *rq;
	union gw_sa *peer;

	if (atomic_load(&w->stop) || parent->parse_error || parent->headbuf == NULL || len == 0)
		return NULL;
	rq = gw_req__new_bare(w, parent->snap, parent->proto, parent->side);
	if (rq == NULL)
		return NULL;
	rq->sink = &bg_sink;
	rq->sink_arg = rq;
	rq->bg = 1;
	rq->tls = parent->tls;
	rq->bg_timeout = timeout;
	/* a pristine parse of the raw head (the family may have rewritten the
	 * parent's), the parent's TCP peer and local address (there is no
	 * socket to ask) */
	rq->headbuf = gw_arena_raw(&rq->arena, len);
	rq->head.hdrs = gw_req_alloc(rq, lim.max_headers * sizeof *rq->head.hdrs);
	rq->head.hdrs_cap = lim.max_headers;
	rq->local = gw_req_alloc(rq, sizeof *rq->local);
	rq->peer = peer = gw_req_alloc(rq, sizeof *peer);
	rq->ev_bg = gw_req_alloc(rq, sizeof *rq->ev_bg);
	if (rq->headbuf == NULL || rq->head.hdrs == NULL || rq->local == NULL || peer == NULL ||
	    rq->ev_bg == NULL) {
		gw_req__free(rq);
		return NULL;
	}
	memcpy(rq->local, gw_req_local(parent), sizeof *rq->local);
	memcpy(peer, parent->peer, sizeof *peer);
	memcpy(rq->headbuf, parent->headbuf, len);
	if (gw_http1_parse_request(rq->headbuf, len, &lim, &rq->head) != (ssize_t)len) {
		gw_req__free(rq);
		return NULL;
	}
	rq->bytes_in = len;
	gw_snapshot_ref(rq->snap);
	rq->bg_next = w->pool->bg;
	if (rq->bg_next != NULL)
		rq->bg_next->bg_prev = rq;
	w->pool->bg = rq;
	w->nconns++;
	event_assign(rq->ev_bg, w->base, -1, 0, bg_ev_cb, rq);
	event_active(rq->ev_bg, EV_TIMEOUT, 0);
	return rq;
}
