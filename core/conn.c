/*
 * core/conn: the HTTP/1 client connection.  It accepts, reads request heads,
 * hands each parsed request to its family (struct gw_proto), then carries out
 * the decision: a local response, a file, a proxied exchange with an upstream
 * server (core/upstream.c, which reports to the connection's sink in
 * core/conn_sink.c), or a tunnel.  Also here: defer/wake, lingering close,
 * drain (background requests are core/bgreq.c).  Bodies stream in
 * both directions with backpressure: a side is read only while the other
 * side's pending output is below HIWAT.
 *
 * Design rules (DESIGN.md, notes/core-techniques.md):
 *   - raw events and large readv() reads, no bufferevents on the data path;
 *     writes happen at once and EV_WRITE is armed only when the kernel is full;
 *     plain tunnels move bulk bytes with splice(2) (core/relay.c);
 *   - messages are re-serialised, never relayed as raw head bytes; bodies are
 *     decoded and re-encoded (chunk extensions and trailers are dropped);
 *   - requests on one client connection are answered in order (pipelining:
 *     the next head is parsed only after the previous response is written);
 *   - close is the only way out: gw_conn__close() logs the request in flight,
 *     releases everything and frees the connection from a deferred event, so
 *     callers only need to check c->state == CS_CLOSED after a call that may
 *     close.
 */
#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/check.h"
#include "core/climit.h"
#include "core/clock.h"
#include "core/dns.h"
#include "core/h2.h"
#include "core/hist.h"
#include "core/http1.h"
#include "core/httpdate.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/status.h"
#include "core/tls.h"
#include "core/worker.h"

#include "core/conn_int.h"
#include "core/strlit.h"

#define LINGER_SECS 2.0

static void client_wr_cb(evutil_socket_t fd, short what, void *arg);
static void finish_request(struct gw_conn *c);
static void handle_head(struct gw_conn *c);
static void dispatch(struct gw_conn *c, struct gw_req *rq);
static void buffer_body(struct gw_conn *c);

/* ---- timers and buffers ---- */

/* The TO_BODY timer (gw_req__body_timeout, core/req.c); rq->body_slow
 * tells client_to_cb which bound fired. */
static double body_timeout(struct gw_conn *c, const struct conf_timeouts *t)
{
	return c->rq != NULL ? gw_req__body_timeout(c->rq, t) : t->client_body;
}

void gw_conn__timer(struct gw_conn *c, enum cto kind)
{
	const struct conf_timeouts *t = TO(c);
	double s = 0;

	c->to_kind = kind;
	switch (kind) {
	case TO_IDLE: s = t->client_idle; break;
	case TO_HEADER: s = t->client_header; break;
	case TO_BODY: s = body_timeout(c, t); break;
	case TO_SEND: s = t->client_idle; break;
	case TO_TUNNEL: s = t->tunnel_idle; break;
	case TO_LINGER: s = LINGER_SECS; break;
	case TO_DNS: s = t->upstream_connect; break;
	case TO_PEEK: s = c->rq != NULL && c->rq->peek_timeout > 0 ? c->rq->peek_timeout : t->client_header; break;
	case TO_FIRST:
		/* a new connection that has sent nothing yet (on TLS: no byte of
		 * the handshake, then no byte of the first request); never longer
		 * than what it would otherwise get */
		s = c->state == CS_HANDSHAKE ? t->client_header : t->client_idle;
		if (t->client_first_byte < s)
			s = t->client_first_byte;
		break;
	}
	set_timer(&c->ev_to, s);
}

/* Arm (on) or disarm EV_WRITE on the client socket.  The event is made the
 * first time a write finds the kernel full (small responses never need it)
 * and kept until the connection is freed.  Returns -1 when out of memory. */
static int wr_enable(struct gw_conn *c, int on)
{
	if (on && !c->wr_on) {
		if (c->ev_wr == NULL &&
		    (c->ev_wr = event_new(c->w->base, c->fd, EV_WRITE | EV_PERSIST, client_wr_cb, c)) == NULL)
			return -1;
		event_add(c->ev_wr, NULL);
		c->wr_on = 1;
	} else if (!on && c->wr_on) {
		event_del(c->ev_wr);
		c->wr_on = 0;
	}
	return 0;
}

static struct evbuffer *buf_get(struct gw_pool *p)
{
	return p->nspare > 0 ? p->spare[--p->nspare] : evbuffer_new();
}

static void buf_put(struct gw_pool *p, struct evbuffer *b)
{
	if (p->nspare < SPARE_BUFS)
		p->spare[p->nspare++] = b;
	else
		evbuffer_free(b);
}

/* Give c its buffers (none while idle).  Returns -1 when out of memory. */
static int conn_bufs(struct gw_conn *c)
{
	if (c->in != NULL)
		return 0;
	c->in = buf_get(c->w->pool);
	c->out = buf_get(c->w->pool);
	if (c->in != NULL && c->out != NULL)
		return 0;
	if (c->in != NULL)
		buf_put(c->w->pool, c->in);
	if (c->out != NULL)
		buf_put(c->w->pool, c->out);
	c->in = c->out = NULL;
	return -1;
}

/* Between requests: hand the (empty) buffers back to the worker. */
static void conn_idle(struct gw_conn *c)
{
	if (c->in == NULL || evbuffer_get_length(c->in) > 0 || evbuffer_get_length(c->out) > 0)
		return;
	buf_put(c->w->pool, c->in);
	buf_put(c->w->pool, c->out);
	c->in = c->out = NULL;
}

/* ---- close, write, linger, local answers ---- */

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	if (c->in != NULL) {
		evbuffer_free(c->in);
		evbuffer_free(c->out);
	}
	if (c->ev_wr != NULL)
		event_free(c->ev_wr);
	if (c->fam_data != NULL && c->fam_data_free != NULL)
		c->fam_data_free(c->fam_data);
	gw_conn_bump__free(c);
	gw_snapshot_unref(c->snap);
	c->magic = 0;
	free(c);
}

void gw_conn__close(struct gw_conn *c, enum gw_close_reason why)
{
	struct gw_worker *w = c->w;

	if (c->state == CS_CLOSED)
		return;
	if (c->h2 != NULL)
		gw_h2_conn_gone(c, why);   /* its streams end first */
	if (conn_up(c) != NULL)
		gw_upstream_detach(c->rq);
	if (c->upo.has_private)
		gw_upstream_drop_owned(w->pool, &c->upo);
	gw_relay_sp_free(c);
	if (c->rq != NULL) {
		struct gw_req *rq = c->rq;
		if (rq->status == 0 || !rq->resp_head_done) {
			if (rq->status == 0)
				rq->status = 499;  /* closed before a response was sent */
		}
		if (rq->reason == NULL)
			rq->reason = gw_close_reason_names[why];
		c->rq = NULL;
		gw_req__log_free(rq);
	}
	event_del(&c->ev_rd);
	if (c->ev_wr != NULL)
		event_del(c->ev_wr);
	event_del(&c->ev_to);
	if (c->ssl != NULL) {
		if (c->state != CS_HANDSHAKE && !c->wr_shut) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);   /* best effort close_notify */
		}
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	c->state = CS_CLOSED;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	gw_stat_add(&w->stats->close[why], 1);
	gw_stat_sub(&w->stats->conns_active[c->proto->family], 1);
	gw_climit_release(&c->peer.sa);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	if (w->accept_paused && w->nconns < w->max_conns) {
		extern void gw_worker_resume_accept(struct gw_worker *w);
		gw_worker_resume_accept(w);
	}
	/* the timer event is free now: reuse it to free us from the loop */
	event_assign(&c->ev_to, w->base, -1, 0, conn_free_cb, c);
	event_active(&c->ev_to, EV_TIMEOUT, 0);
}

/* Write pending output; arms EV_WRITE when the kernel is full.  When all is
 * written, moves the state machine on. */
void gw_conn__write(struct gw_conn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = gw_relay_write(c->fd, c->ssl, c->out);
		if (n < 0) {
			gw_conn__close(c, GW_CLOSE_CLIENT_ERROR);
			return;
		}
		if (c->rq != NULL)
			c->rq->bytes_out += (uint64_t)n;
		if (n == 0)
			break;
	}
	size_t left = evbuffer_get_length(c->out);
	if (left == 0 && gw_relay_sp_held(c, SP_U2C) > 0) {
		/* one splice: a short one means the socket is full */
		if (gw_relay_sp_out(c, SP_U2C) < 0) {
			gw_conn__close(c, GW_CLOSE_CLIENT_ERROR);
			return;
		}
		left = gw_relay_sp_held(c, SP_U2C);
	}
	if (left > 0) {
		if (wr_enable(c, 1) < 0) {
			gw_conn__close(c, GW_CLOSE_INTERNAL);
			return;
		}
		if (c->state == CS_BUSY && c->to_kind != TO_BODY)
			gw_conn__timer(c, TO_SEND);
	} else {
		wr_enable(c, 0);
	}
	/* backpressure release */
	if (left < HIWAT && c->up_paused && conn_up(c) != NULL && !gw_relay_sp_full(c, SP_U2C)) {
		struct upconn *u = conn_up(c);
		c->up_paused = 0;
		if (c->state != CS_TUNNEL && (evbuffer_get_length(u->in) > 0 || c->rq->filtering)) {
			gw_upstream_resume(c->rq);   /* (reads on, hands over what waits) */
			return;
		}
		gw_relay_up_rd_enable(u, 1);
		if (evbuffer_get_length(u->in) > 0) {
			gw_conn__tunnel_pump(c);
			return;
		}
	}
	if (left == 0 && c->state == CS_BUSY && c->rq != NULL) {
		struct gw_req *rq = c->rq;
		int complete = (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE) ||
		    (rq->dec == DEC_PROXY && rq->resp_head_done && GW_SINK_XFER(rq)->done);
		if (complete)
			finish_request(c);
	}
	if (left == 0 && c->state == CS_TUNNEL)
		gw_conn__tunnel_pump(c);
}

static void start_linger(struct gw_conn *c)
{
	gw_relay_shutdown(c->fd, c->ssl);
	c->wr_shut = 1;
	c->state = CS_LINGER;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	gw_relay_rd_enable(c, 1);
	gw_conn__timer(c, TO_LINGER);
	if (c->rd_eof)
		gw_conn__close(c, GW_CLOSE_LOCAL_REPLY);
}

static void finish_request(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	int close_after = rq->close_after;
	int linger = rq->linger;
	enum gw_close_reason why = GW_CLOSE_NO_KEEPALIVE;

	if (rq->up != NULL)
		gw_upstream_release(rq);
	if (rq->parse_error || rq->dec == DEC_RESPOND)
		why = GW_CLOSE_LOCAL_REPLY;
	rq->finished = 1;
	c->rq = NULL;
	gw_req__log_free(rq);
	if (atomic_load(&c->w->stop))
		close_after = 1, why = GW_CLOSE_SHUTDOWN;
	else if (c->unlisted)
		close_after = 1, why = GW_CLOSE_LISTENER_REMOVED;
	if (close_after) {
		if (linger)
			start_linger(c);
		else
			gw_conn__close(c, why);
		return;
	}
	c->state = CS_HEAD;
	c->head_started = 0;
	c->parsed_len = 0;
	gw_relay_rd_enable(c, 1);
	gw_conn__timer(c, TO_IDLE);
	if (evbuffer_get_length(c->in) > 0 || c->rd_eof)
		event_active(&c->ev_rd, EV_READ, 0);   /* next pipelined request, from the loop */
	else
		conn_idle(c);
}

/* Send a locally generated response for rq (DEC_RESPOND or DEC_FILE). */
void gw_conn__send_local(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	struct evbuffer *o = c->out;
	const char *date;
	int head_only = rq->head.method == GW_M_HEAD;
	struct gw_h1out hb;
	int has_body = rq->head.body == GW_BODY_CHUNKED ||
	    (rq->head.body == GW_BODY_LENGTH && rq->head.content_length > 0);

	if (rq->oom) {   /* the answer may lack parts (its body, a header) */
		gw_conn__oom(rq);
		return;
	}
	if (rq->parse_error || !gw_h1out_keepalive(&rq->head))
		rq->close_after = 1;
	if (has_body && !rq->reqx.done) {
		/* the body was never read: we cannot find the next request */
		rq->close_after = 1;
		rq->linger = 1;
	}
	hb.dst = o;
	hb.len = 0;
	GW_H1OUT_LIT(&hb, "HTTP/1.1 ");
	gw_h1out_uint(&hb, (unsigned)rq->status, 10);
	GW_H1OUT_LIT(&hb, " ");
	gw_h1out_str(&hb, gw_status_reason(rq->status));
	GW_H1OUT_LIT(&hb, "\r\n");
	if (!gw_h1out_edit_has(rq->resp_edits, "date")) {
		size_t dl = gw_httpdate_now(&date);
		gw_h1out_hdr(&hb, "Date", 4, date, dl);
	}
	if (rq->status != 304 && rq->status != 204 && !(rq->status >= 100 && rq->status < 200)) {
		if (rq->content_type != NULL)
			gw_h1out_hdr(&hb, "Content-Type", 12, rq->content_type, strlen(rq->content_type));
		GW_H1OUT_LIT(&hb, "Content-Length: ");
		gw_h1out_uint(&hb, rq->file_len, 10);
		GW_H1OUT_LIT(&hb, "\r\n");
	}
	if (rq->status >= 400 && !rq->close_after && rq->body_ref == NULL &&
	    !gw_h1out_edit_has(rq->resp_edits, "cache-control"))
		GW_H1OUT_LIT(&hb, "Cache-Control: no-store\r\n");   /* our own error pages */
	if (rq->body_ref != NULL && !rq->no_via)   /* a stored upstream response: it passed through us */
		gw_h1out_via(&hb, 1, c->snap->conf->global.via_name);
	gw_h1out_edits(&hb, rq->resp_edits);
	if (rq->close_after)
		GW_H1OUT_LIT(&hb, "Connection: close\r\n");
	else if (rq->head.version_minor == 0)
		GW_H1OUT_LIT(&hb, "Connection: keep-alive\r\n");
	GW_H1OUT_LIT(&hb, "\r\n");
	gw_h1out_flush(&hb);
	if (!head_only && rq->status != 304 && rq->status != 204) {
		if (rq->dec == DEC_FILE) {
			if (rq->file_len > 0) {
				/* sendfile for plain sockets; TLS must see the bytes */
				struct evbuffer_file_segment *seg = evbuffer_file_segment_new(rq->file_fd,
				    (ev_off_t)rq->file_off, (ev_off_t)rq->file_len,
				    EVBUF_FS_CLOSE_ON_FREE | (c->ssl != NULL ? EVBUF_FS_DISABLE_SENDFILE : 0));
				if (seg != NULL && evbuffer_add_file_segment(o, seg, 0, -1) == 0) {
					rq->file_fd = -1;  /* owned by the segment now */
				} else {
					rq->close_after = 1;
				}
				if (seg != NULL)
					evbuffer_file_segment_free(seg);
			}
		} else if (rq->body_ref != NULL) {
			if (evbuffer_add_reference(o, rq->body_ref, rq->file_len, rq->body_cleanup,
			    rq->body_cleanup_arg) == 0)
				rq->body_cleanup = NULL;   /* the buffer calls it once sent */
		} else {
			evbuffer_add(o, rq->body, rq->file_len);
		}
	}
	rq->resp_head_done = 1;
	gw_relay_rd_enable(c, 0);
	gw_conn__write(c);
}

/* Answer with a generated error page and close the connection afterwards. */
void gw_conn__respond_error(struct gw_req *rq, int status, const char *reason)
{
	rq->resp_edits = NULL;
	gw_req_respond(rq, status, NULL, NULL, 0, NULL);
	if (reason != NULL)
		rq->reason = reason;
	if (status >= 400 && status != 404 && status != 403 && status != 407)
		rq->close_after = 1;
	gw_conn__send_local(rq);
}

/* ---- bodies, defer/wake, start and dispatch ---- */

void gw_conn__oom(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;

	if (rq->oom_503 || rq->resp_head_done) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	gw_error("%s: request %s: out of memory", c->proto->name, rq->id);
	rq->oom = 0;
	rq->oom_503 = 1;   /* if the page cannot be made either: close */
	gw_conn__respond_error(rq, 503, "out of memory");
}

/*
 * Tunnel an Upgrade only for WebSocket.  Other protocols (h2c in particular)
 * would carry further requests past routing, policy and DLP inside the
 * tunnel, so their Upgrade header is dropped and the exchange stays HTTP.
 */
static int upgrade_allowed(const struct gw_http_head *h)
{
	const struct gw_hdr *u;

	if (!(h->flags & GW_HF_UPGRADE) || !(h->flags & GW_HF_CONN_UPGRADE) || h->version_minor != 1)
		return 0;
	u = gw_http1_find(h, "upgrade");
	return u != NULL && u->value_len == 9 && strncasecmp(u->value, "websocket", 9) == 0;
}

/* Request body framing state from the head. */
static void body_setup(struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;

	rq->reqx.kind = h->body;
	rq->reqx.remaining = h->content_length;
	gw_chunked_init(&rq->reqx.ck);
	rq->reqx.out_chunked = h->body == GW_BODY_CHUNKED;
	rq->reqx.done = h->body == GW_BODY_NONE ||
	    (h->body == GW_BODY_LENGTH && h->content_length == 0);
}

/* gw_req_read_body: collect the body into rq->bodybuf, then ask the family. */
static void buffer_body(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	size_t before = evbuffer_get_length(c->in), len;
	struct evbuffer *tmp = buf_get(c->w->pool);
	const char *data;
	int bad;

	if (tmp == NULL) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	bad = gw_relay_xfer_pump(&rq->reqx, c->in, tmp) < 0;
	if (gw_relay_append_copy(rq->bodybuf, tmp) < 0) {
		buf_put(c->w->pool, tmp);
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	buf_put(c->w->pool, tmp);
	if (bad) {
		rq->reading_body = 0;
		rq->close_after = 1;
		gw_conn__respond_error(rq, 400, "bad chunked request body");
		return;
	}
	rq->bytes_in += before - evbuffer_get_length(c->in);
	len = evbuffer_get_length(rq->bodybuf);
	if (!rq->reqx.done && len < rq->body_max) {
		if (c->rd_eof) {
			rq->reason = "client closed during request body";
			gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
		} else {
			gw_conn__timer(c, TO_BODY);
		}
		return;
	}
	rq->reading_body = 0;
	rq->body_buffered = 1;
	rq->body_complete = rq->reqx.done && (rq->body_max == 0 || len <= rq->body_max);
	gw_relay_rd_enable(c, 0);
	event_del(&c->ev_to);
	data = (const char *)evbuffer_pullup(rq->bodybuf, -1);
	rq->dec = DEC_NONE;
	c->proto->on_body(rq, data ? data : "", len < rq->body_max || rq->body_max == 0 ? len :
	    (size_t)rq->body_max, rq->body_complete, c->side);
	if (c->state != CS_CLOSED && c->rq == rq)
		dispatch(c, rq);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_req *rq = arg;
	struct gw_conn *c = rq->c;

	(void)fd;
	(void)what;
	rq->deferred = 0;
	rq->wake_w->ndeferred--;
	if (rq->orphan) {
		/* the client went away: let the family clean up, then free */
		rq->wake_fn(rq, rq->wake_arg);
		gw_req__free(rq);
		return;
	}
	rq->dec = DEC_NONE;
	if (rq->bg) {   /* a background request: no connection */
		rq->wake_fn(rq, rq->wake_arg);
		gw_bgreq__dispatch(rq);
		return;
	}
	if (rq->h2s != NULL) {   /* an HTTP/2 stream's request (core/h2.c) */
		rq->wake_fn(rq, rq->wake_arg);
		gw_h2_dispatch(rq);
		return;
	}
	GW_CHECK_OBJ(c, CONN_MAGIC);   /* not orphaned: its connection still lives */
	rq->wake_fn(rq, rq->wake_arg);
	if (c->state != CS_CLOSED && c->rq == rq)
		dispatch(c, rq);
}

void gw_req_defer(struct gw_req *rq)
{
	rq->dec = DEC_DEFER;
	rq->deferred = 1;
	rq->wake_w = rq->w;
	rq->wake_w->ndeferred++;
	if (rq->ev_wake == NULL)
		rq->ev_wake = gw_req_alloc(rq, sizeof *rq->ev_wake);
	if (rq->ev_wake != NULL)
		event_assign(rq->ev_wake, rq->w->base, -1, 0, wake_cb, rq);
	/* else rq->oom: gw_req_wake uses a one-shot event, wake_cb answers 503 */
}

void gw_req_wake(struct gw_req *rq, void (*fn)(struct gw_req *, void *), void *arg)
{
	static const struct timeval now;

	rq->wake_fn = fn;
	rq->wake_arg = arg;
	if (rq->ev_wake != NULL)
		event_active(rq->ev_wake, EV_TIMEOUT, 0);   /* thread-safe (evthread_use_pthreads) */
	else if (event_base_once(rq->wake_w->base, -1, EV_TIMEOUT, wake_cb, rq, &now) < 0)
		gw_error("request %s: out of memory: its wake-up is lost", rq->id);
}

static void start_request(struct gw_conn *c, struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;
	int fam = c->proto->family;

	gw_stat_add(&c->w->stats->fam[fam][GW_FC_REQUESTS], 1);
	c->state = CS_BUSY;
	gw_relay_rd_enable(c, 0);
	event_del(&c->ev_to);

	if (h->flags & GW_HF_EXPECT_OTHER) {
		gw_conn__respond_error(rq, 417, "unsupported expectation");
		return;
	}
	if ((h->method == GW_M_OPTIONS || h->method == GW_M_TRACE) &&
	    (h->flags & GW_HF_MAX_FORWARDS) && h->max_forwards == 0) {
		/* RFC 9110 7.6.2: we are the final recipient */
		if (h->method == GW_M_OPTIONS) {
			gw_req_resp_hdr_add(rq, "Allow", GW_STRLIT("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT"));
			gw_req_respond(rq, 200, "text/plain", "", 0, NULL);
		} else {
			/* echo the request head, minus credentials and cookies */
			struct evbuffer *e = evbuffer_new();
			evbuffer_add_printf(e, "%.*s %.*s HTTP/1.%d\r\n", (int)h->method_len,
			    h->method_str, (int)h->target_len, h->target, h->version_minor);
			for (size_t i = 0; i < h->nhdrs; i++) {
				const struct gw_hdr *x = &h->hdrs[i];
				if (gw_h1out_hdr_is(x, "authorization") || gw_h1out_hdr_is(x, "proxy-authorization") ||
				    gw_h1out_hdr_is(x, "cookie"))
					continue;
				evbuffer_add_printf(e, "%.*s: %.*s\r\n", (int)x->name_len, x->name,
				    (int)x->value_len, x->value);
			}
			size_t n = evbuffer_get_length(e);
			gw_req_respond(rq, 200, "message/http", (const char *)evbuffer_pullup(e, -1), n, NULL);
			evbuffer_free(e);
		}
		gw_req_set_verdict(rq, "local", "max-forwards");
		gw_conn__send_local(rq);
		return;
	}

	c->proto->on_request(rq, c->side);
	if (c->state == CS_CLOSED)
		return;
	dispatch(c, rq);
}

/* Carry out the family's decision for rq. */
static void dispatch(struct gw_conn *c, struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;

	if (rq->peeked && rq->dec != DEC_TUNNEL && rq->dec != DEC_DEFER && rq->dec != DEC_TLS_SERVE) {
		gw_conn_bump__decided(c, rq);   /* after the 200 of an inspected CONNECT */
		return;
	}
	if (rq->oom) {   /* the family's decision may lack parts */
		gw_conn__oom(rq);
		return;
	}
	switch (rq->dec) {
	case DEC_NONE:
		gw_error("%s: family decided nothing for request %s", c->proto->name, rq->id);
		gw_conn__respond_error(rq, 500, "no decision");
		return;
	case DEC_DEFER:
		return;  /* gw_req_wake() continues */
	case DEC_RESPOND:
	case DEC_FILE:
		gw_conn__send_local(rq);
		return;
	case DEC_READBODY:
		if (h->body == GW_BODY_NONE || (h->body == GW_BODY_LENGTH && h->content_length == 0)) {
			rq->dec = DEC_NONE;
			rq->body_complete = 1;
			rq->reqx.done = 1;
			c->proto->on_body(rq, "", 0, 1, c->side);
			if (c->state != CS_CLOSED)
				dispatch(c, rq);
			return;
		}
		if (rq->bodybuf == NULL && (rq->bodybuf = evbuffer_new()) == NULL) {
			gw_conn__respond_error(rq, 500, "out of memory");
			return;
		}
		body_setup(rq);
		rq->reqx.out_chunked = 0;
		rq->reading_body = 1;
		gw_relay_rd_enable(c, 1);
		gw_conn__timer(c, TO_BODY);
		if ((h->flags & GW_HF_EXPECT_CONTINUE) && h->version_minor == 1 && !rq->sent_continue) {
			evbuffer_add(c->out, GW_STRLIT("HTTP/1.1 100 Continue\r\n\r\n"));
			rq->sent_continue = 1;
			gw_conn__write(c);
			if (c->state == CS_CLOSED)
				return;
		}
		buffer_body(c);
		return;
	case DEC_PROXY:
		if (!rq->body_buffered && h->body == GW_BODY_LENGTH && rq->max_body > 0 &&
		    h->content_length > rq->max_body) {
			gw_conn__respond_error(rq, 413, "body over limit");
			return;
		}
		if (!rq->body_buffered) {
			body_setup(rq);
		} else if (!rq->body_complete) {
			/* the rest streams after the buffered part, framed as it came */
			rq->reqx.out_chunked = h->body == GW_BODY_CHUNKED;
		}
		rq->upgrade = upgrade_allowed(h);
		gw_upstream_start(rq);
		return;
	case DEC_TUNNEL:
		rq->reqx.done = 1;
		gw_upstream_start(rq);
		return;
	case DEC_PEEK:
		gw_conn_bump__start(c, rq);
		return;
	case DEC_TLS_SERVE:
		gw_conn_bump__serve(c, rq);
		return;
	}
}

void gw_conn__dispatch(struct gw_conn *c, struct gw_req *rq)
{
	dispatch(c, rq);
}

/* ---- request heads ---- */

/*
 * A reload happened since this connection's last request: judge its next one
 * by the current generation (policy, routes, limits), as a new connection
 * would be.  Called between requests only, so nothing of the old generation
 * is in use.  A TLS session keeps its own reference to the SSL_CTX it was
 * made with, and renegotiation is off, so no callback reaches the old
 * generation's TLS data.  A family missing from the new generation keeps
 * the old one (its listeners are gone; this connection ends on its own).
 */
static void conn_adopt_snapshot(struct gw_conn *c)
{
	struct gw_snapshot *s = c->w->snap;

	if (c->unlisted)
		return;   /* closing after this request, on the rules it began with */
	for (int i = 0; i < s->nsides; i++) {
		if (s->sides[i]->proto == c->proto) {
			gw_snapshot_ref(s);
			gw_snapshot_unref(c->snap);
			c->snap = s;
			c->side = s->side_data[i];
			return;
		}
	}
}

/* p moved from [from, from + len) to to: where it points now (pointers
 * outside the range, like a static "/", stay). */
static const char *moved(const char *p, const char *from, size_t len, const char *to)
{
	uintptr_t a = (uintptr_t)p, f = (uintptr_t)from;

	return p != NULL && a >= f && a <= f + len ? to + (a - f) : p;
}

/* Point a head parsed from [from, from + len) into its copy at to (cheaper
 * than parsing the copy again). */
static void head_rebase(struct gw_http_head *h, const char *from, size_t len, const char *to)
{
	h->method_str = moved(h->method_str, from, len, to);
	h->target = moved(h->target, from, len, to);
	h->scheme = moved(h->scheme, from, len, to);
	h->host = moved(h->host, from, len, to);
	h->path = moved(h->path, from, len, to);
	h->reason = moved(h->reason, from, len, to);
	h->host_hdr = moved(h->host_hdr, from, len, to);
	for (size_t i = 0; i < h->nhdrs; i++) {
		h->hdrs[i].name = moved(h->hdrs[i].name, from, len, to);
		h->hdrs[i].value = moved(h->hdrs[i].value, from, len, to);
	}
}

/* Parse the next request head out of c->in. */
static void handle_head(struct gw_conn *c)
{
	const struct conf_limits *L;
	struct gw_http_limits lim;
	size_t len;
	const char *p;
	struct gw_http_head tmp;
	struct gw_hdr *scratch = (struct gw_hdr *)c->w->scratch;
	ssize_t r;
	struct gw_req *rq;
	int new_head = 0;

	if (!c->head_started && c->snap != c->w->snap)
		conn_adopt_snapshot(c);
	L = &c->snap->conf->global.limits;
	lim = (struct gw_http_limits){ (size_t)L->max_header_bytes, (size_t)L->max_headers,
		(size_t)L->max_uri_bytes };
	/* RFC 9112 2.2: ignore empty lines before a request-line */
	for (;;) {
		len = evbuffer_get_length(c->in);
		if (len < 2)
			break;
		p = (const char *)evbuffer_pullup(c->in, 2);
		if (p[0] != '\r' || p[1] != '\n')
			break;
		evbuffer_drain(c->in, 2);
	}
	len = evbuffer_get_length(c->in);
	if (len > 0 && c->h2c_ok && gw_h2c_sniff(c))
		return;   /* HTTP/2 with prior knowledge (core/h2.c) */
	if (len == 0) {
		if (c->rd_eof) {
			gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
			return;
		}
		if (c->head_started)
			return;
		/* only empty lines so far: they do not restart the wait (a CRLF
		 * every few seconds would otherwise hold the connection forever) */
		if (c->to_kind != TO_IDLE && c->to_kind != TO_FIRST)
			gw_conn__timer(c, TO_IDLE);
		return;
	}
	/* client_header runs from the first byte of a head; armed only when
	 * the head is not complete at once (start_request stops the timer) */
	if (!c->head_started) {
		c->head_started = 1;
		new_head = 1;
	}
	if (len > lim.max_header_bytes + 8)
		len = lim.max_header_bytes + 8;
	p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)len);
	/* the parser rescans from the start: against a byte-at-a-time client,
	 * try again only once a line ended or 1 KiB more arrived, or the limit
	 * is reached (len is capped there: waiting for 1 KiB more would wait
	 * for the header timeout, 408, instead of answering 431 now) */
	if (c->parsed_len > 0 && len > c->parsed_len && len - c->parsed_len < 1024 && !c->rd_eof &&
	    len < lim.max_header_bytes &&
	    memchr(p + c->parsed_len, '\n', len - c->parsed_len) == NULL) {
		gw_relay_rd_enable(c, 1);
		return;   /* (parsed_len > 0: not a new head, the timer runs) */
	}
	c->parsed_len = len;
	memset(&tmp, 0, sizeof tmp);
	tmp.hdrs = scratch;
	tmp.hdrs_cap = lim.max_headers < SCRATCH_HDRS ? lim.max_headers : SCRATCH_HDRS;
	if (lim.max_headers > SCRATCH_HDRS)
		lim.max_headers = SCRATCH_HDRS;
	r = gw_http1_parse_request(p, len, &lim, &tmp);
	if (r == 0) {
		if (c->rd_eof) {
			gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
			return;
		}
		if (len >= lim.max_header_bytes) {
			tmp.err_status = 431;
			tmp.err_reason = "request head too large";
			r = -1;
		} else {
			if (new_head)
				gw_conn__timer(c, TO_HEADER);
			gw_relay_rd_enable(c, 1);
			return;
		}
	}
	rq = gw_req__new(c);
	if (rq == NULL) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	c->rq = rq;
	if (r < 0) {
		rq->parse_error = 1;
		memset(&rq->head, 0, sizeof rq->head);
		gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_REQUESTS], 1);
		c->state = CS_BUSY;
		gw_debug("%s: bad request from %s: %d %s", c->proto->name, gw_req_client_str(rq),
		    tmp.err_status, tmp.err_reason);
		gw_conn__respond_error(rq, tmp.err_status ? tmp.err_status : 400, tmp.err_reason);
		return;
	}
	/* keep a private copy of the head and point the parse into it */
	rq->headbuf = gw_arena_raw(&rq->arena, (size_t)r);
	struct gw_hdr *hdrs = gw_req_alloc(rq, (tmp.nhdrs + 1) * sizeof *hdrs);
	if (rq->headbuf == NULL || hdrs == NULL) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	memcpy(rq->headbuf, p, (size_t)r);
	memcpy(hdrs, scratch, tmp.nhdrs * sizeof *hdrs);
	tmp.hdrs = hdrs;
	tmp.hdrs_cap = tmp.nhdrs + 1;
	head_rebase(&tmp, p, (size_t)r, rq->headbuf);
	rq->head = tmp;
	evbuffer_drain(c->in, (size_t)r);
	c->parsed_len = 0;
	rq->bytes_in = (uint64_t)r;
	if (c->bump_host != NULL) {   /* inside an inspected CONNECT */
		const char *bad;
		if (gw_conn_bump__absolute(c, rq, &bad) < 0) {
			gw_conn__close(c, GW_CLOSE_INTERNAL);
			return;
		}
		if (bad != NULL) {
			gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_REQUESTS], 1);
			c->state = CS_BUSY;
			gw_conn__respond_error(rq, 400, bad);
			return;
		}
	}
	start_request(c, rq);
}

/* ---- tunnel pump ---- */

void gw_conn__tunnel_pump(struct gw_conn *c)
{
	struct upconn *u = conn_up(c);
	struct gw_req *rq = c->rq;
	size_t n;

	if (u == NULL || c->state != CS_TUNNEL)
		return;
	n = evbuffer_get_length(c->in);
	if (n > 0) {
		evbuffer_remove_buffer(c->in, u->out, n);
		if (rq != NULL)
			rq->bytes_in += n;
	}
	n = evbuffer_get_length(u->in);
	if (n > 0)
		evbuffer_remove_buffer(u->in, c->out, n);
	/* half-close: pass an EOF on once everything before it is written */
	if (c->rd_eof && evbuffer_get_length(u->out) == 0 && gw_relay_sp_held(c, SP_C2U) == 0 && !u->wr_shut) {
		gw_relay_shutdown(u->fd, u->ssl);
		u->wr_shut = 1;
	}
	if (u->eof && evbuffer_get_length(c->out) == 0 && gw_relay_sp_held(c, SP_U2C) == 0 && !c->wr_shut) {
		gw_relay_shutdown(c->fd, c->ssl);
		c->wr_shut = 1;
	}
	if (c->wr_shut && u->wr_shut) {
		gw_conn__close(c, GW_CLOSE_TUNNEL_DONE);
		return;
	}
	if (evbuffer_get_length(u->out) >= HIWAT || gw_relay_sp_full(c, SP_C2U)) {
		gw_relay_rd_enable(c, 0);
		u->cl_paused = 1;
	} else if (!u->cl_paused) {
		gw_relay_rd_enable(c, 1);
	}
	if (evbuffer_get_length(c->out) >= HIWAT || gw_relay_sp_full(c, SP_U2C)) {
		gw_relay_up_rd_enable(u, 0);
		c->up_paused = 1;
	} else if (!c->up_paused) {
		gw_relay_up_rd_enable(u, 1);
	}
	if (evbuffer_get_length(u->out) > 0 || gw_relay_sp_held(c, SP_C2U) > 0)
		gw_upstream__write(u);
	if (c->state == CS_TUNNEL && conn_up(c) == u &&
	    (evbuffer_get_length(c->out) > 0 || gw_relay_sp_held(c, SP_U2C) > 0)) {
		gw_conn__write(c);
	}
}

/* ---- TLS handshake ---- */

static void client_handshake(struct gw_conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1 && gw_tls_is_h2(c->ssl)) {
		gw_h2_start(c, NULL);   /* ALPN chose h2 (core/h2.c) */
		return;
	}
	if (r == 1) {
		c->state = CS_HEAD;
		wr_enable(c, 0);
		gw_relay_rd_enable(c, 1);
		gw_conn__timer(c, TO_FIRST);   /* now for the first request byte */
		/* application data may already sit in OpenSSL's buffer */
		event_active(&c->ev_rd, EV_READ, 0);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		wr_enable(c, 0);
		gw_relay_rd_enable(c, 1);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (wr_enable(c, 1) == 0)
			return;
	} else {
		if (gw_log_enabled(GW_LOG_DEBUG)) {
			char buf[256], who[INET6_ADDRSTRLEN];
			ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
			gw_debug("TLS handshake with %s failed: %s", peer_fmt(c, who), buf);
		}
		if (c->bump_host != NULL && c->proto->on_tls_abort != NULL)   /* inspected CONNECT */
			c->proto->on_tls_abort(c->bump_host, c->side);
	}
	ERR_clear_error();
	gw_conn__close(c, GW_CLOSE_CLIENT_ERROR);
}

/* ---- event callbacks ---- */

static void client_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	ssize_t n = 0;

	GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	if (c->state == CS_CLOSED)
		return;
	if (c->state == CS_HANDSHAKE) {
		if (c->to_kind == TO_FIRST)   /* the first handshake bytes: client_header from here */
			gw_conn__timer(c, TO_HEADER);
		client_handshake(c);
		return;
	}
	{
		int armed = c->rd_armed;
		int unwanted = gw_relay_read_unwanted(&c->ev_rd, c->rd_on, &armed);
		c->rd_armed = armed;
		if (unwanted)
			return;
	}
	if (conn_bufs(c) < 0) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	if (c->rd_on || (what & EV_READ)) {
		if (!c->rd_eof && c->rd_on) {
			if (c->state == CS_TUNNEL && gw_relay_sp_ready(c, SP_C2U)) {
				n = gw_relay_sp_in(c, SP_C2U);
			} else {
				int big = c->rd_big;
				n = gw_relay_read(c->fd, c->ssl, c->in, &big);
				c->rd_big = big;
				if (c->state == CS_TUNNEL)
					gw_relay_sp_maybe_make(c, SP_C2U, n);
			}
			if (n == 0) {
				c->rd_eof = 1;
				gw_relay_rd_enable(c, 0);
			} else if (n == -1) {
				if (c->state == CS_TUNNEL) {
					c->rd_eof = 1;
					gw_relay_rd_enable(c, 0);
				} else {
					gw_conn__close(c, GW_CLOSE_CLIENT_ERROR);
					return;
				}
			}
		}
	}
	switch (c->state) {
	case CS_HEAD:
		handle_head(c);
		break;
	case CS_BUSY:
		if (c->rq != NULL && c->rq->reading_body)
			buffer_body(c);
		else if (c->rq != NULL && !c->rq->reqx.done && c->rq->up != NULL && !c->rq->up->connecting)
			gw_conn_sink__pump_body(c);
		else if (c->rd_eof && c->rq != NULL && !c->rq->resp_head_done &&
		    evbuffer_get_length(c->in) == 0 && !c->rq->reqx.done) {
			gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
		}
		else if (c->rq != NULL && c->rq->filt_hold_head) {
			/* a response held by its filter (h1_on_head reads on for
			 * this): a client that leaves meanwhile is seen here, as
			 * no write would tell; pipelined bytes wait for the end */
			if (c->rd_eof && evbuffer_get_length(c->in) == 0) {
				c->rq->reason = "client closed while the response was held";
				gw_conn__close(c, GW_CLOSE_CLIENT_EOF);
			} else if (evbuffer_get_length(c->in) > 0) {
				gw_relay_rd_enable(c, 0);
			}
		}
		break;
	case CS_TUNNEL:
		gw_conn__timer(c, TO_TUNNEL);
		gw_conn__tunnel_pump(c);
		break;
	case CS_PEEK:
		gw_conn_bump__peek(c);
		break;
	case CS_LINGER:
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		if (c->rd_eof)
			gw_conn__close(c, GW_CLOSE_LOCAL_REPLY);
		break;
	case CS_HANDSHAKE:
	case CS_CLOSED:
		break;
	}
	if (c->state != CS_CLOSED && c->rd_on && gw_relay_ssl_more(c->ssl, n))
		event_active(&c->ev_rd, EV_READ, 0);
}

static void client_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	if (c->state == CS_CLOSED)
		return;
	if (c->state == CS_HANDSHAKE) {
		client_handshake(c);
		return;
	}
	if (c->state == CS_TUNNEL)
		gw_conn__timer(c, TO_TUNNEL);
	else if (c->to_kind == TO_SEND)
		gw_conn__timer(c, TO_SEND);
	gw_conn__write(c);
}

static void client_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	switch (c->to_kind) {
	case TO_IDLE:
		gw_conn__close(c, GW_CLOSE_IDLE_TIMEOUT);
		return;
	case TO_HEADER:
		if (c->state == CS_HEAD && c->rq == NULL) {
			struct gw_req *rq = conn_bufs(c) == 0 ? gw_req__new(c) : NULL;
			if (rq == NULL) {
				gw_conn__close(c, GW_CLOSE_HEADER_TIMEOUT);
				return;
			}
			c->rq = rq;
			rq->parse_error = 1;
			c->state = CS_BUSY;
			gw_stat_add(&c->w->stats->close[GW_CLOSE_HEADER_TIMEOUT], 1);
			gw_conn__respond_error(rq, 408, "request head timeout");
			return;
		}
		gw_conn__close(c, GW_CLOSE_HEADER_TIMEOUT);
		return;
	case TO_BODY: {
		int slow = c->rq != NULL && c->rq->body_slow;

		if (c->rq != NULL && !c->rq->resp_head_done) {
			if (c->rq->up != NULL)
				gw_upstream_detach(c->rq);
			c->rq->close_after = 1;
			if (slow)
				gw_stat_add(&c->w->stats->close[GW_CLOSE_BODY_TOO_SLOW], 1);
			gw_conn__respond_error(c->rq, 408, slow ? "request body too slow" : "request body timeout");
			return;
		}
		if (slow)
			c->rq->reason = "request body too slow";
		gw_conn__close(c, slow ? GW_CLOSE_BODY_TOO_SLOW : GW_CLOSE_BODY_TIMEOUT);
		return;
	}
	case TO_SEND:
		gw_conn__close(c, GW_CLOSE_SEND_TIMEOUT);
		return;
	case TO_TUNNEL:
		gw_conn__close(c, GW_CLOSE_TUNNEL_IDLE);
		return;
	case TO_LINGER:
		gw_conn__close(c, GW_CLOSE_LOCAL_REPLY);
		return;
	case TO_FIRST:
		gw_conn__close(c, GW_CLOSE_FIRST_BYTE_TIMEOUT);
		return;
	case TO_PEEK:
		gw_conn_bump__peek_timeout(c);
		return;
	case TO_DNS:
		if (c->rq == NULL || c->rq->dnsq == NULL)
			return;
		gw_dns_cancel(c->rq->dnsq);
		c->rq->dnsq = NULL;
		gw_stat_add(&c->w->stats->dns_failures, 1);
		gw_upstream_fail(c->rq, 504, "DNS timeout");
		return;
	}
}

/* ---- accept, drain ---- */

/* Enter c in its worker's connection list (gw_conn__close() takes it out). */
static void conn_link(struct gw_worker *w, struct gw_conn *c)
{
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	gw_stat_add(&w->stats->conns_active[c->proto->family], 1);
}

/* Over max_connections_per_client: say so in the log at most every 10 s
 * (process-wide), not once per refused connection of a flood. */
static void client_limit_warn(const struct gw_conn *c, uint64_t limit)
{
	static _Atomic int64_t last;
	int64_t now = (int64_t)gw_mono_now(), prev = atomic_load(&last);
	char who[INET6_ADDRSTRLEN];

	if (now - prev < 10 || !atomic_compare_exchange_strong(&last, &prev, now))
		return;
	gw_warn("client %s holds max_connections_per_client (%llu) connections: its new connections are "
	    "closed at once (counted as close reason client_limit)", peer_fmt(c, who),
	    (unsigned long long)limit);
}

void gw_conn_accept(struct gw_worker *w, int fd, const struct sockaddr *peer, socklen_t plen,
    const struct gw_lspec *lspec, struct gw_snapshot *snap)
{
	struct gw_conn *c = calloc(1, sizeof *c);
	int64_t limit = lspec->cl->max_connections_per_client;
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	if (plen > sizeof c->peer)
		plen = sizeof c->peer;
	memcpy(&c->peer, peer, plen);
	/* per-client cap, counted across all workers (core/climit.h): over it
	 * the connection is closed before it costs anything (no buffer, no
	 * TLS handshake); no response, since none can be sent before a
	 * handshake or without reading the request first */
	if (limit < 0)
		limit = snap->conf->global.max_connections_per_client;
	if (gw_climit_take(&c->peer.sa, (uint64_t)limit) == 0) {
		client_limit_warn(c, (uint64_t)limit);
		gw_stat_add(&w->stats->close[GW_CLOSE_CLIENT_LIMIT], 1);
		free(c);
		close(fd);
		return;
	}
	c->magic = CONN_MAGIC;
	c->fd = fd;
	c->lfd = lspec->fds[w->id];
	c->w = w;
	c->snap = snap;
	gw_snapshot_ref(snap);
	c->proto = lspec->proto;
	c->side = snap->side_data[lspec->side];
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	event_assign(&c->ev_rd, w->base, fd, EV_READ | EV_PERSIST, client_rd_cb, c);
	event_assign(&c->ev_to, w->base, -1, 0, client_to_cb, c);
	c->state = CS_HEAD;
	if (lspec->cl->tls) {
		c->ssl = gw_tls_server_ssl_on(snap->tls, lspec->cl);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			if (c->ssl != NULL)
				SSL_free(c->ssl);
			gw_snapshot_unref(snap);
			gw_climit_release(&c->peer.sa);
			free(c);
			close(fd);
			return;
		}
		SSL_set_accept_state(c->ssl);
		c->state = CS_HANDSHAKE;
		if (lspec->cl->http2)
			gw_tls_allow_h2(c->ssl);
	}
	c->h2c_ok = !lspec->cl->tls && lspec->cl->h2c;
	conn_link(w, c);
	gw_stat_add(&w->stats->fam[c->proto->family][GW_FC_CONN_ACCEPTED], 1);
	gw_relay_rd_enable(c, 1);
	gw_conn__timer(c, TO_FIRST);
}

struct gw_conn *gw_conn__nested(const struct gw_conn *o, struct gw_snapshot *snap, void *side, int fd)
{
	struct gw_conn *c;
	int64_t limit = snap->conf->global.max_connections_per_client;

	if (o->w->nconns >= o->w->max_conns || (c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->peer = o->peer;
	if (gw_climit_take(&c->peer.sa, (uint64_t)limit) == 0) {
		client_limit_warn(c, (uint64_t)limit);
		gw_stat_add(&o->w->stats->close[GW_CLOSE_CLIENT_LIMIT], 1);
		free(c);
		return NULL;
	}
	c->magic = CONN_MAGIC;
	c->fd = fd;
	c->lfd = o->lfd;   /* a reload that removes the listener reaches it too */
	c->w = o->w;
	c->snap = snap;
	gw_snapshot_ref(snap);
	c->proto = o->proto;
	c->side = side;
	event_assign(&c->ev_rd, c->w->base, fd, EV_READ | EV_PERSIST, client_rd_cb, c);
	event_assign(&c->ev_to, c->w->base, -1, 0, client_to_cb, c);
	c->state = CS_BUSY;
	conn_link(c->w, c);
	if (conn_bufs(c) < 0) {
		c->fd = -1;   /* (the caller closes fd) */
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return NULL;
	}
	return c;
}

/* An idle keep-alive client: no request under way and no byte of the next. */
static int conn_between_requests(const struct gw_conn *c)
{
	return c->state == CS_HEAD && !c->head_started &&
	    (c->in == NULL || evbuffer_get_length(c->in) == 0);
}

void gw_conn_drain_all(struct gw_worker *w)
{
	struct gw_conn *c = w->conns;

	while (c != NULL) {
		struct gw_conn *n = c->next;
		/* idle clients: nobody waits for them (HTTP/2: GOAWAY) */
		if (c->h2 != NULL)
			gw_h2_drain(c);
		else if (conn_between_requests(c))
			gw_conn__close(c, GW_CLOSE_SHUTDOWN);
		c = n;
	}
	/* background requests: nobody waits for them either */
	while (w->pool->bg != NULL)
		gw_bgreq__cancel(w->pool->bg, GW_CLOSE_SHUTDOWN);
}

void gw_conn_listener_gone(struct gw_worker *w, int lfd)
{
	struct gw_conn *c = w->conns;

	while (c != NULL) {
		struct gw_conn *n = c->next;
		/* as nginx's old workers do on reload: idle keep-alive clients
		 * go now, a request under way is answered with Connection: close,
		 * tunnels run on (they have no request boundary to stop at) */
		if (c->lfd == lfd) {
			c->unlisted = 1;
			if (c->h2 != NULL)
				gw_h2_drain(c);
			else if (conn_between_requests(c))
				gw_conn__close(c, GW_CLOSE_LISTENER_REMOVED);
			else if (c->rq != NULL && !c->rq->resp_head_done)
				c->rq->close_after = 1;
		}
		c = n;
	}
}

void gw_conn_close_all(struct gw_worker *w)
{
	while (w->conns != NULL)
		gw_conn__close(w->conns, GW_CLOSE_SHUTDOWN);
	while (w->pool->bg != NULL)
		gw_bgreq__cancel(w->pool->bg, GW_CLOSE_SHUTDOWN);
}
