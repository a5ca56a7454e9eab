/*
 * core/h2_tunnel: CONNECT over HTTP/2 (RFC 9113 8.5) on a proxy's listener
 * (struct gw_proto.proxy): the family decided the CONNECT stream like an
 * HTTP/1 CONNECT (policy, auth, ports; its refusals are ordinary HEADERS
 * answers), the upstream engine connects (directly or through a parent),
 * and from then on the stream's DATA carries the tunnel's bytes both ways.
 *
 * - Client to upstream: DATA waits in the stream's buffer and is moved to
 *   the upstream's output (at most HIWAT queued there); only bytes moved
 *   are acknowledged (WINDOW_UPDATE), so a slow target slows the client.
 * - Upstream to client: bytes read go to the stream's output through
 *   nghttp2's data source; above H2_STREAM_HIWAT queued the upstream is not
 *   read until the client's window took half of it.
 * - END_STREAM from the client is a half-close: the upstream's write side
 *   is shut once everything before it was written; the upstream's EOF
 *   ends our side of the stream (END_STREAM).  The stream closes when both
 *   did, or with RST_STREAM from either peer.
 * - A failure to connect is answered 502 (or as the engine says); a
 *   broken upstream connection once the tunnel is up resets the stream
 *   with CONNECT_ERROR.  tunnel_idle bounds a tunnel without bytes either
 *   way.  Other streams of the connection are not affected by any of it.
 * - An inspected CONNECT (core/conn_nest.c) tunnels the same way to a local
 *   socket, the inner connection that inspects it.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <string.h>

#include "conf/conf.h"
#include "core/relay.h"
#include "core/upstream.h"

#include "core/h2_int.h"

/* Progress either way: tunnel_idle starts again. */
static void progress(struct gw_h2s *s)
{
	if (s->to_kind == STO_TUNNEL)
		s->to_kind = STO_NONE;
}

static void t_on_tunnel(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_h2s *s = rq->sink_arg;
	static const nghttp2_nv ok[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = gw_h2__data_read };

	(void)r;   /* (a 101 never happens to a CONNECT) */
	if ((s->out == NULL && (s->out = evbuffer_new()) == NULL) ||
	    nghttp2_submit_response(s->h->ng, s->id, ok, 1, &prd) != 0) {
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "out of memory");
		gw_h2__kick(s->h);
		return;
	}
	s->resp_started = 1;
	s->tunnel = 1;   /* from now on (a refusal before it ends the stream as any answer) */
	rq->resp_head_done = 1;
	progress(s);
	gw_h2__kick(s->h);   /* the client's early DATA moves in run */
}

static void t_on_tunnel_rd(struct gw_req *rq, struct upconn *u)
{
	struct gw_h2s *s = rq->sink_arg;
	ssize_t n;

	if (gw_relay_read_unwanted(&u->ev_rd, u->rd_on, &u->rd_armed))
		return;
	if (u->eof || !u->rd_on || s->discard)
		return;
	n = gw_relay_read(u->fd, u->ssl, u->in, &u->rd_big);
	if (n == -1) {
		u->eof = 1;
		gw_relay_up_rd_enable(u, 0);
		gw_h2__reset(s, NGHTTP2_CONNECT_ERROR, "tunnel: the target's connection broke");
		gw_h2__kick(s->h);
		return;
	}
	if (n == 0) {
		u->eof = 1;
		gw_relay_up_rd_enable(u, 0);
		s->out_eof = 1;   /* END_STREAM after what is queued */
		if (s->tun_up_shut && rq->reason == NULL)
			rq->reason = "tunnel_done";
	} else if (n > 0) {
		u->got_bytes = 1;
		progress(s);
	}
	if (evbuffer_get_length(u->in) > 0)
		evbuffer_add_buffer(s->out, u->in);
	if (s->deferred && (evbuffer_get_length(s->out) > 0 || s->out_eof)) {
		s->deferred = 0;
		nghttp2_session_resume_data(s->h->ng, s->id);
	}
	if (!u->eof && evbuffer_get_length(s->out) >= H2_STREAM_HIWAT) {
		s->tun_up_held = 1;   /* run resumes it once the client took half */
		gw_relay_up_rd_enable(u, 0);
	}
	gw_h2__kick(s->h);
	/* records read ahead into OpenSSL (a parent over TLS), unseen by epoll */
	if (!u->eof && u->rd_on && gw_relay_ssl_more(u->ssl, n))
		event_active(&u->ev_rd, EV_READ, 0);
}

static void t_on_sent(struct gw_req *rq, struct upconn *u)
{
	struct gw_h2s *s = rq->sink_arg;
	size_t left = evbuffer_get_length(u->out);

	gw_upstream__arm_write(u, left);
	if (left < HIWAT && ((s->in != NULL && evbuffer_get_length(s->in) > 0) || s->in_done))
		gw_h2__kick(s->h);   /* more to move, or the half-close to pass on */
}

static void t_on_error(struct gw_req *rq, int status, const char *reason)
{
	struct gw_h2s *s = rq->sink_arg;
	struct gw_h2 *h = s->h;   /* (the answer may end s: the connection stays) */

	if (reason == NULL)
		status = 503, reason = "out of memory";
	if (s->resp_started)
		gw_h2__reset(s, NGHTTP2_CONNECT_ERROR, reason);
	else
		gw_h2__respond_error(rq, status, reason);
	gw_h2__io(h);
}

/* The stream sink with the tunnel's calls (the rest, DNS bounds and local
 * answers, as for any stream). */
static struct gw_sink tsink;
static pthread_once_t tsink_once = PTHREAD_ONCE_INIT;

static void tsink_init(void)
{
	tsink = gw_h2_sink;
	tsink.on_tunnel = t_on_tunnel;
	tsink.on_tunnel_rd = t_on_tunnel_rd;
	tsink.on_sent = t_on_sent;
	tsink.on_error = t_on_error;
	tsink.on_ready = NULL;   /* (no request head goes upstream) */
}

void gw_h2_tunnel__start(struct gw_req *rq)
{
	pthread_once(&tsink_once, tsink_init);
	rq->sink = &tsink;
	rq->reqx.done = 1;   /* no request body: DATA is the tunnel's */
	gw_upstream_start(rq);
}

int gw_h2_tunnel__nest(struct gw_req *rq, int fd)
{
	pthread_once(&tsink_once, tsink_init);
	rq->sink = &tsink;
	rq->reqx.done = 1;
	return gw_upstream__local(rq, fd, "inspection");
}

void gw_h2_tunnel__run(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;
	struct upconn *u = rq->up;
	size_t n, room;

	if (!rq->tunnel || u == NULL || s->discard)
		return;   /* not connected yet (DATA waits, within its window), or over */
	n = s->in != NULL ? evbuffer_get_length(s->in) : 0;
	room = evbuffer_get_length(u->out) < HIWAT ? HIWAT - evbuffer_get_length(u->out) : 0;
	if (n > room)
		n = room;
	if (n > 0 && !u->wr_shut) {
		evbuffer_remove_buffer(s->in, u->out, n);
		nghttp2_session_consume(s->h->ng, s->id, n);   /* the client may send as much again */
		rq->bytes_in += n;
		progress(s);
		gw_upstream__write(u);
		if (s->rq != rq || rq->up != u)
			return;
	}
	if (s->in_done && (s->in == NULL || evbuffer_get_length(s->in) == 0) &&
	    evbuffer_get_length(u->out) == 0 && !s->tun_up_shut) {
		gw_relay_shutdown(u->fd, u->ssl);   /* the client's END_STREAM */
		u->wr_shut = 1;
		s->tun_up_shut = 1;
		if (u->eof && rq->reason == NULL)
			rq->reason = "tunnel_done";
	}
	if (s->tun_up_held && !u->eof && evbuffer_get_length(s->out) < H2_STREAM_HIWAT / 2) {
		s->tun_up_held = 0;
		gw_relay_up_rd_enable(u, 1);
	}
}
