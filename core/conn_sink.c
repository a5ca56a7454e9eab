/*
 * core/conn_sink: the HTTP/1 client connection as the upstream engine's
 * sink (struct gw_sink, core/upstream.h) for its one request at a time:
 * interim and final response heads written as HTTP/1 (http1_out), the body
 * framed for the client with backpressure (c->up_paused, released by
 * gw_conn__write through gw_upstream_resume), errors answered or cut, the
 * request body pumped from the client (the source side), and tunnels
 * (CONNECT, 101) handed to the connection's tunnel pump.  The connection
 * itself is core/conn.c.
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


/* Move request body bytes from the client to the upstream. */
void gw_conn_sink__pump_body(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = rq != NULL ? rq->up : NULL;
	size_t before = evbuffer_get_length(c->in);

	if (u == NULL || rq == NULL || rq->reqx.done)
		return;
	if (gw_relay_xfer_pump(&rq->reqx, c->in, u->out) < 0) {
		rq->close_after = 1;
		if (!rq->resp_head_done) {
			gw_upstream_detach(rq);
			gw_conn__respond_error(rq, 400, "bad chunked request body");
		} else {
			gw_conn__close(c, GW_CLOSE_BAD_REQUEST);
		}
		return;
	}
	rq->bytes_in += before - evbuffer_get_length(c->in);
	if (rq->max_body > 0 && rq->reqx.moved > rq->max_body) {
		rq->close_after = 1;
		if (!rq->resp_head_done) {
			gw_upstream_detach(rq);
			gw_conn__respond_error(rq, 413, "body over limit");
		} else {
			gw_conn__close(c, GW_CLOSE_BAD_REQUEST);
		}
		return;
	}
	if (rq->reqx.done) {
		gw_relay_rd_enable(c, 0);
		event_del(&c->ev_to);
		if (!rq->resp_head_done)
			set_timer(&u->ev_to, TO(c)->upstream_response);
	} else if (c->rd_eof) {
		rq->reason = "client closed during request body";
		gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
		return;
	} else if (evbuffer_get_length(u->out) >= HIWAT) {
		gw_relay_rd_enable(c, 0);
		u->cl_paused = 1;
		/* the upstream is slow, not the client: the rate window
		 * starts again when reading resumes */
		rq->body_t0 = 0;
		gw_conn__timer(c, TO_BODY);
	} else {
		gw_conn__timer(c, TO_BODY);
	}
	gw_upstream__write(u);
}

static int h1_on_interim(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_conn *c = rq->sink_arg;

	/* passed on to HTTP/1.1 clients only */
	if (rq->head.version_minor == 1) {
		evbuffer_add_printf(c->out, "HTTP/1.1 %d %.*s\r\n", r->status,
		    (int)r->reason_len, r->reason);
		for (size_t i = 0; i < r->nhdrs; i++)
			if (!gw_h1out_hop_by_hop(&r->hdrs[i]) && !gw_h1out_conn_listed(r, &r->hdrs[i]))
				evbuffer_add_printf(c->out, "%.*s: %.*s\r\n",
				    (int)r->hdrs[i].name_len, r->hdrs[i].name,
				    (int)r->hdrs[i].value_len, r->hdrs[i].value);
		evbuffer_add(c->out, GW_STRLIT("\r\n"));
	}
	if (evbuffer_get_length(c->out) >= HIWAT) {
		c->up_paused = 1;   /* gw_conn__write() resumes once the client took it */
		return GW_SINK_HOLD;
	}
	return GW_SINK_GO;
}

/* Write the final head r to o as HTTP/1 for this client (kind, clen: the
 * body the client gets).  GO, FAIL (it would go out without framing:
 * nothing written) or GONE. */
static int h1_head_write(struct gw_req *rq, struct gw_conn *c, const struct gw_http_head *r,
    struct evbuffer *o, enum gw_body_kind kind, uint64_t clen)
{
	const char *via = c->snap->conf->global.via_name;
	int to_http10 = rq->head.version_minor == 0;
	const char *date;
	struct gw_h1out hb;
	size_t before;
	int framing = 0;           /* framing fields written */

	before = evbuffer_get_length(o);
	hb.dst = o;
	hb.len = 0;
	GW_H1OUT_LIT(&hb, "HTTP/1.1 ");
	gw_h1out_uint(&hb, (unsigned)r->status, 10);
	GW_H1OUT_LIT(&hb, " ");
	gw_h1out_put(&hb, r->reason, r->reason_len);
	GW_H1OUT_LIT(&hb, "\r\n");
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct gw_hdr *x = &r->hdrs[i];
		if (gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(r, x) || gw_h1out_edit_deleted(rq->resp_edits, x))
			continue;
		if ((r->status == 204 || rq->filtering) && gw_h1out_hdr_is(x, "content-length"))
			continue;   /* RFC 9110 8.6: never on a 204; a filter's length is unknown */
		framing += gw_h1out_hdr_is(x, "content-length");
		gw_h1out_hdr(&hb, x->name, x->name_len, x->value, x->value_len);
	}
	if (!(r->flags & GW_HF_HAS_DATE)) {
		size_t dl = gw_httpdate_now(&date);
		gw_h1out_hdr(&hb, "Date", 4, date, dl);
	}
	if (!rq->no_via)
		gw_h1out_via(&hb, r->version_minor, via);
	gw_h1out_edits(&hb, rq->resp_edits);
	if (rq->respx.out_chunked || rq->fx.out_chunked) {
		GW_H1OUT_LIT(&hb, "Transfer-Encoding: chunked\r\n");
		framing++;
	}
	/* The writer's invariant, checked always: a body goes to the client
	 * with exactly one framing field, or delimited by the close of the
	 * connection (announced: Connection: close below); a Content-Length
	 * body always with its Content-Length.  Else the client would read
	 * the body, or the next response, as something else. */
	if (framing > 1 || (framing == 0 && ((kind == GW_BODY_LENGTH && clen > 0) ||
	    ((kind == GW_BODY_CHUNKED || kind == GW_BODY_CLOSE) && !rq->close_after)))) {
		gw_error("%s: request %s: response not relayed: its body would go to the client "
		    "without framing", c->proto->name, rq->id);
		hb.len = 0;
		if (gw_relay_truncate(o, before) < 0) {
			gw_conn__close(c, GW_CLOSE_INTERNAL);
			return GW_SINK_GONE;
		}
		return GW_SINK_FAIL;
	}
	if (rq->close_after)
		GW_H1OUT_LIT(&hb, "Connection: close\r\n");
	else if (to_http10)
		GW_H1OUT_LIT(&hb, "Connection: keep-alive\r\n");
	GW_H1OUT_LIT(&hb, "\r\n");
	gw_h1out_flush(&hb);
	return GW_SINK_GO;
}

/*
 * A held head (gw_req_filter_hold_head) goes out with the filter's first
 * bytes: the upstream's as rendered, or the filter's replacement, written
 * now with the same framing (the filter's output).  GO, FAIL or GONE.
 */
static int h1_head_release(struct gw_req *rq, struct gw_conn *c)
{
	struct gw_http_limits lim = { rq->filt_newhead_len, SCRATCH_HDRS, rq->filt_newhead_len };
	struct gw_http_head r;

	rq->filt_hold_head = 0;
	if (rq->reqx.done)
		gw_relay_rd_enable(c, 0);   /* (as for any response: writes see a gone client) */
	if (rq->filt_newhead == NULL)
		return evbuffer_add_buffer(c->out, rq->filt_head) < 0 ? GW_SINK_FAIL : GW_SINK_GO;
	memset(&r, 0, sizeof r);
	r.hdrs = (struct gw_hdr *)rq->w->scratch;
	r.hdrs_cap = SCRATCH_HDRS;
	if (gw_http1_parse_response(rq->filt_newhead, rq->filt_newhead_len, &lim, rq->head.method, &r) < 0)
		return GW_SINK_FAIL;   /* (parsed once already in gw_req_filter_replace_head) */
	rq->status = r.status;
	return h1_head_write(rq, c, &r, c->out, GW_BODY_CLOSE, 0);
}

/* The final response head, as HTTP/1 for this client. */
static int h1_on_head(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_conn *c = rq->sink_arg;
	struct evbuffer *o = c->out;
	int to_http10 = rq->head.version_minor == 0;
	enum gw_body_kind kind = r->body;   /* the body the client gets */
	uint64_t clen = r->content_length;

	if (!gw_h1out_keepalive(&rq->head))
		rq->close_after = 1;
	if (r->body == GW_BODY_CHUNKED || r->body == GW_BODY_CLOSE) {
		if (to_http10)
			rq->close_after = 1;
		else
			rq->respx.out_chunked = 1;
	}
	if (!rq->reqx.done)
		rq->close_after = 1;  /* answered before the body ended: cannot resync */

	if (gw_upstream_head_hook(rq, r))
		return GW_SINK_LOCAL;
	if (rq->filtering) {
		/* the filter's output: a body of unknown length, chunked to an
		 * HTTP/1.1 client, close-delimited to an HTTP/1.0 one (and the
		 * upstream's body comes without its framing) */
		rq->respx.out_chunked = 0;
		kind = GW_BODY_CLOSE;
		clen = 0;
		if (to_http10)
			rq->close_after = 1;
		else
			rq->fx.out_chunked = 1;
	}
	if (rq->filt_hold_head) {
		/* nothing is written until the filter decides: read the client
		 * meanwhile, or its leaving would go unseen (conn.c, CS_BUSY) */
		if (rq->reqx.done && !c->rd_eof)
			gw_relay_rd_enable(c, 1);
		return h1_head_write(rq, c, r, rq->filt_head, kind, clen);   /* h1_head_release() sends it */
	}
	return h1_head_write(rq, c, r, o, kind, clen);   /* (GO: the engine marks the head done) */
}

static int h1_on_body(struct gw_req *rq, struct evbuffer *src, int eof)
{
	struct gw_conn *c = rq->sink_arg;
	struct xfer *x = GW_SINK_XFER(rq);

	if (rq->filt_hold_head && (evbuffer_get_length(src) > 0 || eof)) {
		int st = h1_head_release(rq, c);
		if (st != GW_SINK_GO)
			return st;
	}
	if (gw_relay_xfer_pump(x, src, c->out) < 0)
		return GW_SINK_FAIL;
	if (!x->done && eof) {
		if (x->kind == GW_BODY_CLOSE) {
			x->done = 1;
			if (x->out_chunked)
				evbuffer_add(c->out, GW_STRLIT("0\r\n\r\n"));
		} else {
			gw_conn__write(c);
			if (c->state != CS_CLOSED) {
				rq->reason = "upstream closed mid-body";
				gw_conn__close(c, GW_CLOSE_UPSTREAM_ERROR);
			}
			return GW_SINK_GONE;
		}
	}
	if (!x->done && evbuffer_get_length(c->out) >= HIWAT) {
		c->up_paused = 1;   /* gw_conn__write() resumes once the client took it */
		return GW_SINK_HOLD;
	}
	return GW_SINK_GO;
}

static int h1_on_full(struct gw_req *rq)
{
	struct gw_conn *c = rq->sink_arg;

	return c->out != NULL && evbuffer_get_length(c->out) >= HIWAT;
}

static void h1_on_flush(struct gw_req *rq)
{
	gw_conn__write(rq->sink_arg);
}

static void h1_on_error(struct gw_req *rq, int status, const char *reason)
{
	struct gw_conn *c = rq->sink_arg;

	if (rq->peeked) {   /* the 200 went out: only TLS or a close can follow */
		gw_conn_bump__error(rq, status, reason);
		return;
	}
	if (reason == NULL) {
		gw_conn__oom(rq);
		return;
	}
	if (rq->resp_head_done || c->state == CS_TUNNEL) {
		rq->reason = reason;
		gw_conn__close(c, status == 504 ? GW_CLOSE_UPSTREAM_TIMEOUT : GW_CLOSE_UPSTREAM_ERROR);
		return;
	}
	if (!rq->reqx.done)
		rq->close_after = 1;
	c->state = CS_BUSY;
	gw_conn__respond_error(rq, status, reason);
}

static int h1_on_ready(struct gw_req *rq)
{
	struct gw_conn *c = rq->sink_arg;
	struct upconn *u = rq->up;

	gw_relay_rd_enable(c, 1);
	gw_conn__timer(c, TO_BODY);
	gw_conn_sink__pump_body(c);
	if (c->state == CS_CLOSED || c->rq != rq || rq->up != u)
		return GW_SINK_GONE;
	return GW_SINK_GO;
}

static void h1_on_sent(struct gw_req *rq, struct upconn *u)
{
	struct gw_conn *c = rq->sink_arg;
	size_t left = evbuffer_get_length(u->out);

	if (left == 0 && gw_relay_sp_held(c, SP_C2U) > 0) {
		if (gw_relay_sp_out(c, SP_C2U) < 0) {
			/* as in gw_upstream__write; what the client sends from now
			 * on is dropped by the evbuffer path (the pipe cannot be
			 * drained unread) */
			u->eof = 1;
			c->sp->failed |= 1u << SP_C2U;
			gw_relay_sp_drop(c->sp, SP_C2U);
			gw_relay_up_rd_enable(u, 1);
			event_active(&u->ev_rd, EV_READ, 0);
		}
		left = gw_relay_sp_held(c, SP_C2U);
	}
	if (c->state == CS_BUSY && c->rq != NULL && !c->rq->reqx.done) {
		/* sending the request body: a stalled upstream is timed out */
		if (left > 0)
			set_timer(&u->ev_to, TO(c)->upstream_response);
		else
			event_del(&u->ev_to);
	}
	gw_upstream__arm_write(u, left);
	if (left < HIWAT && u->cl_paused && !gw_relay_sp_full(c, SP_C2U)) {
		u->cl_paused = 0;
		if (c->state == CS_TUNNEL) {
			gw_relay_rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				gw_conn__tunnel_pump(c);
		} else if (c->rq != NULL && !c->rq->reqx.done) {
			c->rq->body_t0 = 0;   /* body rate: a new window (pump_body) */
			gw_relay_rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				gw_conn_sink__pump_body(c);
		}
		return;
	}
	if (c->state == CS_TUNNEL && left == 0)
		gw_conn__tunnel_pump(c);
}

static void h1_on_tunnel(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_conn *c = rq->sink_arg;

	if (r == NULL && rq->peeked) {   /* answered before the client's first bytes */
		gw_conn_bump__tunnel(rq);
		return;
	}
	if (r == NULL) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		evbuffer_add(c->out, ok, sizeof ok - 1);
	} else {
		evbuffer_add(c->out, GW_STRLIT("HTTP/1.1 101 Switching Protocols\r\n"));
		for (size_t i = 0; i < r->nhdrs; i++) {
			const struct gw_hdr *x = &r->hdrs[i];
			/* hop-by-hop as in any head, but Upgrade (named by
			 * Connection: upgrade) goes on with the tunnel; no
			 * framing fields: what follows is not HTTP */
			if (((gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(r, x)) && !gw_h1out_hdr_is(x, "upgrade")) ||
			    gw_h1out_hdr_is(x, "content-length"))
				continue;
			evbuffer_add_printf(c->out, "%.*s: %.*s\r\n", (int)x->name_len, x->name,
			    (int)x->value_len, x->value);
		}
		evbuffer_add(c->out, GW_STRLIT("Connection: upgrade\r\n\r\n"));
		evbuffer_drain(rq->up->in, r->head_len);
	}
	c->state = CS_TUNNEL;
	gw_conn__timer(c, TO_TUNNEL);
	gw_relay_rd_enable(c, 1);
	gw_conn__write(c);
	if (c->state == CS_TUNNEL)
		gw_conn__tunnel_pump(c);
}

static void h1_on_tunnel_rd(struct gw_req *rq, struct upconn *u)
{
	struct gw_conn *c = rq->sink_arg;
	ssize_t n = 0;

	if (gw_relay_read_unwanted(&u->ev_rd, u->rd_on, &u->rd_armed))
		return;
	if (!u->eof && u->rd_on) {
		if (gw_relay_sp_ready(c, SP_U2C)) {
			n = gw_relay_sp_in(c, SP_U2C);
		} else {
			n = gw_relay_read(u->fd, u->ssl, u->in, &u->rd_big);
			gw_relay_sp_maybe_make(c, SP_U2C, n);
		}
		if (n == 0 || n == -1) {
			u->eof = 1;
			gw_relay_up_rd_enable(u, 0);
		} else if (n > 0) {
			u->got_bytes = 1;
		}
	}
	gw_conn__timer(c, TO_TUNNEL);
	gw_conn__tunnel_pump(c);
	/* gw_relay_read stopped at READ_MAX with records read ahead into OpenSSL,
	 * where epoll cannot see them (as at the end of client_rd_cb) */
	if (c->state != CS_CLOSED && conn_up(c) == u && u->rd_on && !u->eof && gw_relay_ssl_more(u->ssl, n))
		event_active(&u->ev_rd, EV_READ, 0);
}

static void h1_on_dns(struct gw_req *rq, int waiting)
{
	struct gw_conn *c = rq->sink_arg;

	/* evdns's own timeout does not cover a query waiting in its queue
	 * (over 64 in flight): upstream_connect bounds the resolution too
	 * (client_to_cb) */
	if (waiting)
		gw_conn__timer(c, TO_DNS);
	else if (!waiting && c->to_kind == TO_DNS)
		event_del(&c->ev_to);
}

static void h1_on_retry(struct gw_req *rq)
{
	struct gw_conn *c = rq->sink_arg;

	evbuffer_drain(c->out, evbuffer_get_length(c->out));
}

const struct gw_sink gw_conn_sink = {
	.on_interim = h1_on_interim,
	.on_head = h1_on_head,
	.on_body = h1_on_body,
	.on_flush = h1_on_flush,
	.on_error = h1_on_error,
	.on_local = gw_conn__send_local,
	.on_ready = h1_on_ready,
	.on_sent = h1_on_sent,
	.on_tunnel = h1_on_tunnel,
	.on_tunnel_rd = h1_on_tunnel_rd,
	.on_dns = h1_on_dns,
	.on_retry = h1_on_retry,
	.on_full = h1_on_full,
};
