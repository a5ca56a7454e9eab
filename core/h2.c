/*
 * core/h2: HTTP/2 server connections over libnghttp2 (see core/h2.h).
 *
 * I/O follows nghttp2's rules (doc/programmers-guide.rst): bytes read are
 * fed with nghttp2_session_mem_recv, output is pulled with mem_send into
 * our buffer and written at once (EV_WRITE only when the kernel is full),
 * and neither is ever called from inside one of the session's callbacks:
 * gw_h2__io() only marks the connection when the session is busy, and the
 * work streams wait for (starting a request, pumping a body, resuming a
 * held upstream) runs after the session call returned.
 *
 * Each stream's request head is turned into an HTTP/1.1 head (pseudo-
 * headers to the request line and Host, cookies joined with "; ", framing
 * from content-length or, for a body of unknown length, chunked) and
 * parsed by the one strict parser (core/http1.c), so families see the same
 * struct gw_http_head either way and every HTTP/1 rule applies per stream.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS 128 (nghttp2 refuses streams
 * above it); a header list over global.limits.max_header_bytes or
 * max_headers is answered 431 without being kept (HPACK bombs); nghttp2's
 * own guards stay on (at most 8 CONTINUATION frames per HEADERS, the
 * RST_STREAM rate limit that ends rapid reset with GOAWAY, the queued
 * SETTINGS/PING ACK bound, its HTTP checks: pseudo-headers, connection-
 * specific fields, content-length against DATA); PING, SETTINGS, PRIORITY,
 * RST_STREAM and empty DATA frames beyond 1000 + 2 per request end the
 * connection with GOAWAY(ENHANCE_YOUR_CALM); flow control is ours (no
 * automatic WINDOW_UPDATE): request body bytes are acknowledged when the
 * upstream took them, so a slow upstream slows the client.  RFC 8441
 * (extended CONNECT) is not implemented and SETTINGS_ENABLE_CONNECT_PROTOCOL
 * is never sent.
 */
#include "core/h2.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/dns.h"
#include "core/heap.h"
#include "core/log.h"
#include "core/relay.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/worker.h"

#include "core/h2_int.h"
#include "core/strlit.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void h2_close(struct gw_h2 *h, enum gw_close_reason why);
static void linger(struct gw_h2 *h);

/* ---- timers ---- */

/* Stream s's timer ran out: what it was for decides. */
static void stream_timeout(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;
	enum h2_sto kind = s->to_kind;

	s->to_kind = STO_NONE;
	s->to_at = 0;
	switch (kind) {
	case STO_NONE:
		return;
	case STO_HEADER:
		gw_h2__reset(s, NGHTTP2_CANCEL, "request head timeout");
		break;
	case STO_BODY: {
		const char *why = rq != NULL && rq->body_slow ? "request body too slow" : "request body timeout";
		if (rq != NULL && !rq->resp_head_done && !s->resp_started) {
			if (rq->up != NULL)
				gw_upstream_detach(rq);
			gw_h2__respond_error(rq, 408, why);
		} else {
			gw_h2__reset(s, NGHTTP2_CANCEL, why);
		}
		break;
	}
	case STO_SEND:
		gw_h2__reset(s, NGHTTP2_CANCEL, "send timeout: the client's flow-control window stayed closed");
		break;
	case STO_TUNNEL:
		gw_h2__reset(s, NGHTTP2_CANCEL, "tunnel idle timeout");
		break;
	case STO_DNS:
		if (rq == NULL || rq->dnsq == NULL)
			return;
		gw_dns_cancel(rq->dnsq);
		rq->dnsq = NULL;
		gw_stat_add(&rq->w->stats->dns_failures, 1);
		gw_upstream_fail(rq, 504, "DNS timeout");
		break;
	}
}

/* The connection's stream timer: every stream whose deadline passed times
 * out (one at a time, the list looked at again after each: a timeout may
 * end other streams' requests), then the timer moves to the next one. */
static void sto_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2 *h = arg;
	double now = gw_mono_now(), next = 0;
	struct gw_h2s *s;

	(void)fd;
	(void)what;
	h->sto_at = 0;
	for (;;) {
		for (s = h->streams; s != NULL; s = s->next)
			if (s->to_kind != STO_NONE && s->to_at > 0 && s->to_at <= now + 0.001 && !s->closed)
				break;
		if (s == NULL || h->gone)
			break;
		stream_timeout(s);
	}
	for (s = h->streams; s != NULL && !h->gone; s = s->next)
		if (s->to_kind != STO_NONE && s->to_at > 0 && !s->closed && (next == 0 || s->to_at < next))
			next = s->to_at;
	if (next > 0 && !h->gone) {
		h->sto_at = next;
		set_timer(&h->ev_sto, next - now > 0.001 ? next - now : 0.001);
	}
	gw_h2__io(h);
}

/*
 * Streams do not have a libevent timer each: a busy connection re-arms its
 * streams' timers several times per request (head, then send), hundreds of
 * streams at once, and each event_add/event_del costs hundreds of
 * instructions.  A stream keeps its deadline; the connection keeps one
 * event at the earliest, moved only when a deadline comes before it (rare:
 * streams of one kind share the duration, so later ones expire later).  A
 * disarmed stream is only marked: the event finds nothing due and moves on.
 */
void gw_h2__stream_arm(struct gw_h2s *s, enum h2_sto kind, double secs)
{
	struct gw_h2 *h = s->h;
	double now;

	s->to_kind = kind;
	if (kind == STO_NONE || secs <= 0) {
		s->to_kind = STO_NONE;
		s->to_at = 0;
		return;
	}
	now = gw_mono_now();
	s->to_at = now + secs;
	if (h->sto_at == 0 || s->to_at < h->sto_at) {
		h->sto_at = s->to_at;
		set_timer(&h->ev_sto, secs);
	}
}

static void stream_arm(struct gw_h2s *s, enum h2_sto kind, double secs)
{
	if (kind == s->to_kind)
		return;
	gw_h2__stream_arm(s, kind, secs);
}

void gw_h2__stream_timer(struct gw_h2s *s)
{
	const struct conf_timeouts *t = &s->snap->conf->global.timeouts;
	struct gw_req *rq = s->rq;

	if (s->closed) {
		stream_arm(s, STO_NONE, 0);
	} else if (!s->started && !s->start_due) {
		stream_arm(s, STO_HEADER, t->client_header);
	} else if (s->to_kind == STO_DNS && rq != NULL && rq->dnsq != NULL) {
		return;   /* (on_dns ends it) */
	} else if (s->tunnel && rq != NULL && rq->tunnel) {
		stream_arm(s, STO_TUNNEL, t->tunnel_idle);   /* (progress sets STO_NONE first) */
	} else if (s->out != NULL && evbuffer_get_length(s->out) > 0) {
		stream_arm(s, STO_SEND, t->client_idle);
	} else if (rq != NULL && !s->in_done && !s->discard && !rq->reqx.done &&
	    (s->reading_body || (rq->up != NULL && s->up_ready && !s->in_paused))) {
		if (s->to_kind != STO_BODY)   /* (a pause, or its min-rate deadline) */
			stream_arm(s, STO_BODY, gw_req__body_timeout(rq, t));
	} else {
		stream_arm(s, STO_NONE, 0);
	}
}

/* The connection's timer: idle without streams (client_idle), or output
 * that the client does not take (client_idle again, as send timeout). */
static void conn_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2 *h = arg;

	(void)fd;
	(void)what;
	h2_close(h, h->c->to_kind == TO_LINGER ? h->why :
	    h->c->to_kind == TO_SEND ? GW_CLOSE_SEND_TIMEOUT : GW_CLOSE_IDLE_TIMEOUT);
}

static void conn_timer(struct gw_h2 *h, int progress)
{
	struct gw_conn *c = h->c;
	double idle = c->snap->conf->global.timeouts.client_idle;

	if (evbuffer_get_length(h->out) > 0) {
		if (progress || c->to_kind != TO_SEND) {
			c->to_kind = TO_SEND;
			set_timer(&h->ev_to, idle);
		}
	} else if (h->nstreams == 0) {
		if (c->to_kind != TO_IDLE) {
			c->to_kind = TO_IDLE;
			set_timer(&h->ev_to, idle);
		}
	} else if (c->to_kind != TO_BODY) {
		c->to_kind = TO_BODY;   /* (streams time themselves) */
		event_del(&h->ev_to);
	}
}

/* ---- streams ---- */

static void stream_free_head(struct gw_h2s *s)
{
	gw_heap_small_free(s->hdrs.p);
	gw_heap_small_free(s->cookie.p);
	gw_heap_small_free(s->pv.p);
	memset(&s->hdrs, 0, sizeof s->hdrs);
	memset(&s->cookie, 0, sizeof s->cookie);
	memset(&s->pv, 0, sizeof s->pv);
	memset(s->pv_off, 0, sizeof s->pv_off);
}

/* Append n bytes to t (grown by doubling; the head's size is bounded by
 * max_header_bytes before this is called; core/heap.c keeps freed blocks
 * for the next stream).  0, or -1 out of memory. */
static int h2_text_add(struct h2_text *t, const void *a, size_t n)
{
	if ((size_t)t->len + n > t->cap) {
		size_t cap = t->cap > 0 ? t->cap : 256;
		char *p;
		while (cap < (size_t)t->len + n)
			cap *= 2;
		if (cap > UINT32_MAX || (p = gw_heap_small_realloc(t->p, cap)) == NULL)
			return -1;
		t->p = p;
		t->cap = (uint32_t)cap;
	}
	memcpy(t->p + t->len, a, n);
	t->len += (uint32_t)n;
	return 0;
}

/* Pseudo-header or Host value k of s, NUL-terminated, or NULL. */
static const char *pv(const struct gw_h2s *s, enum h2_pv k)
{
	return s->pv_off[k] > 0 ? s->pv.p + s->pv_off[k] - 1 : NULL;
}

static size_t pv_len(const struct gw_h2s *s, enum h2_pv k)
{
	const char *v = pv(s, k);
	return v != NULL ? strlen(v) : 0;
}

static int pv_set(struct gw_h2s *s, enum h2_pv k, const uint8_t *v, size_t n)
{
	uint32_t off = s->pv.len + 1;

	if (h2_text_add(&s->pv, v, n) < 0 || h2_text_add(&s->pv, "", 1) < 0)
		return -1;
	s->pv_off[k] = off;
	return 0;
}

/* Stream s is over (closed by nghttp2, or its connection went): its
 * request is logged (unfinished unless the whole response went out), its
 * upstream released when clean, and s freed. */
static void stream_end(struct gw_h2s *s, uint32_t code, int session_alive)
{
	struct gw_h2 *h = s->h;
	struct gw_req *rq = s->rq;

	s->to_kind = STO_NONE;
	if (rq != NULL) {
		int complete = s->sent_end;   /* (a reset after the end changes nothing) */
		if (complete && h->reset_budget < H2_RESET_BUDGET)
			h->reset_budget++;
		if (rq->up != NULL) {
			if (complete && gw_upstream_complete(rq) && rq->reqx.done)
				gw_upstream_release(rq);
			else
				gw_upstream_detach(rq);
		}
		if (!complete) {
			if (rq->status == 0 || !rq->resp_head_done)
				rq->status = rq->status ? rq->status : 499;
			if (rq->reason == NULL)
				rq->reason = code == NGHTTP2_NO_ERROR ? "stream closed before the response ended" :
				    "stream reset";
		}
		rq->finished = complete;
		s->rq = NULL;
		gw_req__log_free(rq);
	}
	if (s->in != NULL) {
		/* what was received but never passed on still holds part of
		 * the connection's window */
		if (session_alive && evbuffer_get_length(s->in) > 0)
			nghttp2_session_consume_connection(h->ng, evbuffer_get_length(s->in));
		evbuffer_free(s->in);
	}
	if (s->out != NULL)
		evbuffer_free(s->out);
	if (s->trail != NULL)
		evbuffer_free(s->trail);
	stream_free_head(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	h->nstreams--;
	gw_snapshot_unref(s->snap);
	gw_heap_small_free(s);
}

void gw_h2__reset(struct gw_h2s *s, uint32_t code, const char *reason)
{
	if (s->rq != NULL && reason != NULL)
		s->rq->reason = reason;
	if (s->rq != NULL && s->rq->up != NULL)
		gw_upstream_detach(s->rq);
	s->discard = 1;
	stream_arm(s, STO_NONE, 0);
	if (!s->closed)
		nghttp2_submit_rst_stream(s->h->ng, NGHTTP2_FLAG_NONE, s->id, code);
}

/* A reload happened: new streams follow the current generation (as a new
 * HTTP/1 request on a kept-alive connection does, core/conn.c). */
static void adopt_snapshot(struct gw_conn *c)
{
	struct gw_snapshot *s = c->w->snap;

	if (c->unlisted || s == c->snap)
		return;
	for (int i = 0; i < s->nsides; i++)
		if (s->sides[i]->proto == c->proto) {
			gw_snapshot_ref(s);
			gw_snapshot_unref(c->snap);
			c->snap = s;
			c->side = s->side_data[i];
			return;
		}
}

/* ---- request heads ---- */

static int cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct gw_h2 *h = arg;
	struct gw_conn *c = h->c;
	struct gw_h2s *s;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = gw_heap_small_calloc(sizeof *s);   /* (freed in stream_end) */
	if (s == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* RST_STREAM */
	adopt_snapshot(c);
	s->h = h;
	s->id = frame->hd.stream_id;
	s->snap = c->snap;
	s->side = c->side;
	gw_snapshot_ref(s->snap);
	s->next = h->streams;
	if (s->next != NULL)
		s->next->prev = s;
	h->streams = s;
	h->nstreams++;
	h->requests++;
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_H2_STREAMS], 1);
	nghttp2_session_set_stream_user_data(ng, s->id, s);
	gw_h2__stream_timer(s);
	return 0;
}

static int name_is(const uint8_t *n, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(n, lit, len) == 0;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
    const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct gw_h2s *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	const struct conf_limits *L;
	int r = 0;

	(void)flags;
	(void)arg;
	if (s != NULL && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_HEADERS)
		return gw_h2__req_trailer(s, name, nl, value, vl);
	if (s == NULL || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	L = &s->snap->conf->global.limits;
	s->hdr_bytes += nl + vl + 4;
	s->nhdrs++;
	if (s->hdr_err)
		return 0;
	if (s->hdr_bytes > (size_t)L->max_header_bytes || s->nhdrs > (size_t)L->max_headers) {
		/* an HPACK bomb or a plain big head: nothing more is kept */
		s->hdr_err = 431;
		stream_free_head(s);
		return 0;
	}
	if (nl > 0 && name[0] == ':') {
		enum h2_pv k;
		if (name_is(name, nl, ":method"))
			k = H2_PV_METHOD;
		else if (name_is(name, nl, ":path"))
			k = H2_PV_PATH;
		else if (name_is(name, nl, ":scheme"))
			k = H2_PV_SCHEME;
		else if (name_is(name, nl, ":authority"))
			k = H2_PV_AUTHORITY;
		else
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* (nghttp2 refuses others first) */
		return pv_set(s, k, value, vl) == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (name_is(name, nl, "cookie")) {
		/* RFC 9113 8.2.3: one HTTP/1 Cookie field, crumbs joined by "; " */
		if (s->cookie.len > 0)
			r |= h2_text_add(&s->cookie, "; ", 2);
		r |= h2_text_add(&s->cookie, value, vl);
		return r == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (name_is(name, nl, "host")) {
		if (pv(s, H2_PV_HOST) != NULL) {
			s->hdr_err = 400;   /* two Host fields */
			return 0;
		}
		return pv_set(s, H2_PV_HOST, value, vl) == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	r |= h2_text_add(&s->hdrs, name, nl);
	r |= h2_text_add(&s->hdrs, ": ", 2);
	r |= h2_text_add(&s->hdrs, value, vl);
	r |= h2_text_add(&s->hdrs, "\r\n", 2);
	return r == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* Body framing of the request as the stream carries it: raw DATA bytes
 * (content-length known, or until END_STREAM), re-framed for the upstream
 * by the engine's writer (chunked when the length is unknown). */
static void body_setup(struct gw_req *rq)
{
	const struct gw_http_head *hd = &rq->head;

	rq->reqx.kind = hd->body == GW_BODY_LENGTH ? GW_BODY_LENGTH :
	    hd->body == GW_BODY_CHUNKED ? GW_BODY_CLOSE : GW_BODY_NONE;
	rq->reqx.remaining = hd->content_length;
	rq->reqx.out_chunked = hd->body == GW_BODY_CHUNKED;
	rq->reqx.done = hd->body == GW_BODY_NONE || (hd->body == GW_BODY_LENGTH && hd->content_length == 0);
}

/* Does the field text t (lines "name: value\r\n", names lower case as
 * HTTP/2 has them) carry a content-length? */
static int has_content_length(const struct h2_text *t)
{
	static const char k[] = "content-length: ";

	if (t->len >= sizeof k - 1 && memcmp(t->p, k, sizeof k - 1) == 0)
		return 1;
	return t->len > 0 && memmem(t->p, t->len, "\r\ncontent-length: ", sizeof k + 1) != NULL;
}

/* The HTTP/1.1 head of stream s, built in rq's arena (*out, *outlen):
 * returns 0, or a status to answer.  Plain copies: this runs for every
 * request of every HTTP/2 client. */
static int head_text(struct gw_h2s *s, struct gw_req *rq, char **out, size_t *outlen)
{
	const char *method = pv(s, H2_PV_METHOD), *path = pv(s, H2_PV_PATH), *scheme = pv(s, H2_PV_SCHEME);
	const char *authority = pv(s, H2_PV_AUTHORITY), *hosthdr = pv(s, H2_PV_HOST);
	const char *host = authority != NULL ? authority : hosthdr;
	int connect = method != NULL && strcmp(method, "CONNECT") == 0;
	/* a proxy's stream for an http:// URL: absolute-form, as HTTP/1
	 * proxy requests are (https is the proxy's own: PAC, CA download) */
	int proxy = s->h->c->proto->proxy, absolute = proxy && !connect && authority != NULL &&
	    scheme != NULL && strcmp(scheme, "http") == 0;
	/* a body without content-length: chunked to the parser, which then
	 * frames it so for the upstream (nghttp2 refused transfer-encoding).
	 * END_STREAM may be here already (DATA in the same read as HEADERS,
	 * as gRPC clients send): that body still needs its framing */
	int chunked = (!s->in_done || (s->in != NULL && evbuffer_get_length(s->in) > 0)) && !(proxy && connect) &&
	    !has_content_length(&s->hdrs);
	const char *target = connect ? (host != NULL ? host : "") : path;
	size_t ml = pv_len(s, H2_PV_METHOD), tl, hl = host != NULL ? strlen(host) : 0, n;
	char *b, *p;

	if (method == NULL || (!connect && path == NULL))
		return 400;   /* (nghttp2 checks this before) */
	if (authority != NULL && hosthdr != NULL && strcasecmp(authority, hosthdr) != 0)
		return 400;   /* RFC 9113 8.3.1: Host must name what :authority names */
	tl = strlen(target);
	n = ml + 1 + (absolute ? 7 + hl : 0) + tl + 11 + (host != NULL ? 6 + hl + 2 : 0) + s->hdrs.len +
	    (s->cookie.len > 0 ? 8 + s->cookie.len + 2 : 0) + (chunked ? 28 : 0) + 2;
	if ((b = p = gw_arena_raw(&rq->arena, n)) == NULL)
		return 503;
#define PUT(a, k) (memcpy(p, (a), (k)), p += (k))
	PUT(method, ml);
	*p++ = ' ';
	if (absolute) {
		PUT("http://", 7);
		PUT(authority, hl);
	}
	PUT(target, tl);
	PUT(" HTTP/1.1\r\n", 11);
	if (host != NULL) {
		PUT("Host: ", 6);
		PUT(host, hl);
		PUT("\r\n", 2);
	}
	if (s->hdrs.len > 0)
		PUT(s->hdrs.p, s->hdrs.len);
	if (s->cookie.len > 0) {
		PUT("Cookie: ", 8);
		PUT(s->cookie.p, s->cookie.len);
		PUT("\r\n", 2);
	}
	if (chunked)
		PUT("Transfer-Encoding: chunked\r\n", 28);
	PUT("\r\n", 2);
#undef PUT
	*out = b;
	*outlen = (size_t)(p - b);
	return 0;
}

/* The request head of s is complete: make its request and hand it to the
 * family (from the I/O loop, outside the session). */
static void stream_start(struct gw_h2s *s)
{
	struct gw_h2 *h = s->h;
	struct gw_conn *c = h->c;
	const struct conf_limits *L = &s->snap->conf->global.limits;
	struct gw_http_limits lim = { (size_t)L->max_header_bytes + 1024, s->nhdrs + 4,
		(size_t)L->max_uri_bytes };
	struct gw_req *rq;
	int st = s->hdr_err;
	size_t len = 0;

	s->start_due = 0;
	s->started = 1;
	rq = gw_req__new(c);
	if (rq == NULL) {
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, NULL);
		return;
	}
	rq->snap = s->snap;   /* (c's may be newer by now) */
	rq->side = s->side;
	rq->max_body = s->snap->conf->global.limits.max_body_bytes;
	rq->sink = &gw_h2_sink;
	rq->sink_arg = s;
	rq->h2s = s;
	s->rq = rq;
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_REQUESTS], 1);
	if (st == 0)
		st = head_text(s, rq, &rq->headbuf, &len);
	stream_free_head(s);
	if (st == 0) {
		rq->head.hdrs = gw_req_alloc(rq, lim.max_headers * sizeof *rq->head.hdrs);
		rq->head.hdrs_cap = lim.max_headers;
		if (rq->head.hdrs == NULL)
			st = 503;
		else if (gw_http1_parse_request(rq->headbuf, len, &lim, &rq->head) != (ssize_t)len)
			st = rq->head.err_status ? rq->head.err_status : 400;
		rq->bytes_in = len;
	}
	if (st != 0) {
		rq->parse_error = 1;
		memset(&rq->head, 0, sizeof rq->head);
		rq->oom = 0;
		gw_h2__respond_error(rq, st, st == 431 ? "request head too large" :
		    st == 503 ? "out of memory" : "bad request head");
		return;
	}
	if (c->bump_host != NULL) {   /* inside an inspected CONNECT (core/conn_bump.c) */
		const char *why;
		if ((st = gw_conn_bump__stream(c, rq, &why)) != 0) {
			gw_h2__respond_error(rq, st, why);
			return;
		}
	}
	body_setup(rq);
	if (rq->head.flags & GW_HF_EXPECT_OTHER) {
		gw_h2__respond_error(rq, 417, "unsupported expectation");
		return;
	}
	if ((rq->head.method == GW_M_OPTIONS || rq->head.method == GW_M_TRACE) &&
	    (rq->head.flags & GW_HF_MAX_FORWARDS) && rq->head.max_forwards == 0) {
		/* RFC 9110 7.6.2: we are the final recipient (as for HTTP/1,
		 * core/conn.c); a TRACE is not echoed over HTTP/2 */
		gw_req_set_verdict(rq, "local", "max-forwards");
		if (rq->head.method == GW_M_TRACE) {
			gw_h2__respond_error(rq, 405, "TRACE is not echoed over HTTP/2");
			return;
		}
		gw_req_resp_hdr_add(rq, "Allow", GW_STRLIT("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"));
		gw_req_respond(rq, 200, "text/plain", "", 0, NULL);
		gw_h2__send_local(rq);
		return;
	}
	c->proto->on_request(rq, rq->side);
	gw_h2_dispatch(rq);
}

void gw_h2_dispatch(struct gw_req *rq)
{
	struct gw_h2s *s = rq->h2s;
	struct gw_h2 *h = s->h;
	const struct gw_http_head *hd = &rq->head;

	if (rq->oom) {
		if (rq->oom_503 || rq->resp_head_done) {
			gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "out of memory");
		} else {
			gw_error("%s: request %s: out of memory", rq->proto->name, rq->id);
			rq->oom = 0;
			rq->oom_503 = 1;
			gw_h2__respond_error(rq, 503, "out of memory");
		}
		gw_h2__io(h);
		return;
	}
	switch (rq->dec) {
	case DEC_NONE:
		gw_error("%s: family decided nothing for request %s", rq->proto->name, rq->id);
		gw_h2__respond_error(rq, 500, "no decision");
		break;
	case DEC_DEFER:
		return;   /* gw_req_wake() continues (core/conn.c wake_cb) */
	case DEC_RESPOND:
	case DEC_FILE:
		gw_h2__send_local(rq);
		break;
	case DEC_READBODY:
		if (rq->reqx.done) {
			rq->dec = DEC_NONE;
			rq->body_complete = 1;
			rq->proto->on_body(rq, "", 0, 1, rq->side);
			gw_h2_dispatch(rq);
			return;
		}
		if (rq->bodybuf == NULL && (rq->bodybuf = evbuffer_new()) == NULL) {
			gw_h2__respond_error(rq, 503, "out of memory");
			break;
		}
		rq->reqx.out_chunked = 0;   /* kept as it is: the family reads it */
		s->reading_body = 1;
		gw_h2__pump_body(s);
		return;
	case DEC_PROXY:
		if (!rq->body_buffered && hd->body == GW_BODY_LENGTH && rq->max_body > 0 &&
		    hd->content_length > rq->max_body) {
			gw_h2__respond_error(rq, 413, "body over limit");
			break;
		}
		if (rq->body_buffered && !rq->body_complete)
			rq->reqx.out_chunked = hd->body == GW_BODY_CHUNKED;   /* the rest streams after it */
		rq->upgrade = 0;   /* no Upgrade over HTTP/2 (RFC 9113 8.6) */
		gw_upstream_start(rq);
		break;
	case DEC_TUNNEL:
		if (rq->proto->proxy) {
			gw_h2_tunnel__start(rq);   /* RFC 9113 8.5 (core/h2_tunnel.c) */
			break;
		}
		/* fall through */
	case DEC_TLS_SERVE:
		gw_h2__respond_error(rq, 501, "CONNECT over HTTP/2 is not supported on this listener");
		break;
	case DEC_PEEK:
		/* inspected on a connection of its own (core/conn_nest.c) */
		gw_conn_nest__h2(rq);
		break;
	}
	/* (rq and s may be gone now: an answer may have been sent in full
	 * and the stream closed; run_streams sets the timers) */
	gw_h2__io(h);
}

/* ---- the session's callbacks ---- */

/* A client that floods: GOAWAY(ENHANCE_YOUR_CALM), then close. */
static int abuse(struct gw_h2 *h, nghttp2_session *ng, const char *what)
{
	char who[INET6_ADDRSTRLEN];

	gw_warn("HTTP/2 client %s: too many %s (%llu requests): GOAWAY", peer_fmt(h->c, who), what,
	    (unsigned long long)h->requests);
	nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
	h->fatal = 1;
	h->why = GW_CLOSE_BAD_REQUEST;
	return 0;
}

/* Frames that ask work of us without carrying a request: a client that
 * sends many more of them than requests is flooding (nginx, HAProxy and
 * h2o judge the same way). */
static int cb_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *arg)
{
	struct gw_h2 *h = arg;

	switch (hd->type) {
	case NGHTTP2_PING:
	case NGHTTP2_SETTINGS:
		if (!(hd->flags & NGHTTP2_FLAG_ACK))
			h->ctrl_frames++;
		break;
	case NGHTTP2_PRIORITY:
	case NGHTTP2_RST_STREAM:
		h->ctrl_frames++;
		break;
	case NGHTTP2_DATA:
		if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM))
			h->ctrl_frames++;
		break;
	default:
		break;
	}
	if (h->ctrl_frames > 1000 + 2 * h->requests && !h->fatal)
		return abuse(h, ng, "control frames");
	return 0;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct gw_h2 *h = arg;
	struct gw_h2s *s = frame->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id) : NULL;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (s != NULL && end && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
		s->in_done = 1;
		/* an h2 upstream holds its END_STREAM for the client's trailers:
		 * the end (after a body that had a content-length) lets it go */
		if (s->rq != NULL && s->rq->up_h2 && s->rq->up != NULL)
			event_active(&s->rq->up->ev_wr, EV_WRITE, 0);
	}
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (s == NULL)
			break;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && !s->started)
			s->start_due = 1;
		gw_h2__stream_timer(s);
		break;
	case NGHTTP2_RST_STREAM:
		gw_stat_add(&h->c->w->stats->fam[h->c->proto->family][GW_FC_H2_RESETS], 1);
		if (s == NULL || s->sent_end)
			break;
		if (s->rq != NULL && s->rq->reason == NULL)
			s->rq->reason = "client reset the stream";
		/* rapid reset (CVE-2023-44487): each stream the client cancels
		 * before its answer costs budget, each answered one gives some
		 * back (h2o's rule); an empty budget ends the connection */
		if (--h->reset_budget <= 0 && !h->fatal)
			return abuse(h, ng, "streams reset before their response");
		break;
	case NGHTTP2_PING:
		if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && h->draining && !h->final_goaway)
			event_active(&h->ev_goaway, EV_TIMEOUT, 0);   /* a round trip later */
		break;
	default:
		break;
	}
	return 0;
}

static int cb_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *arg)
{
	struct gw_h2s *s = nghttp2_session_get_stream_user_data(ng, id);

	(void)flags;
	(void)arg;
	if (s == NULL || s->discard || s->closed) {
		nghttp2_session_consume(ng, id, len);   /* dropped: the window reopens */
		return 0;
	}
	if ((s->in == NULL && (s->in = evbuffer_new()) == NULL) || evbuffer_add(s->in, data, len) < 0) {
		nghttp2_session_consume(ng, id, len);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (s->to_kind == STO_BODY)
		s->to_kind = STO_NONE;   /* progress: the body timer starts again */
	return 0;
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
	struct gw_h2s *s = nghttp2_session_get_stream_user_data(ng, id);

	(void)arg;
	if (s == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	s->closed = 1;
	stream_end(s, code, 1);
	return 0;
}

static int cb_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct gw_h2 *h = arg;
	struct gw_h2s *s;

	if (frame->hd.type == NGHTTP2_GOAWAY) {
		gw_stat_add(&h->c->w->stats->fam[h->c->proto->family][GW_FC_H2_GOAWAYS], 1);
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	s->sent_end = 1;
	if (!s->in_done && !s->tunnel) {   /* (a tunnel's END_STREAM is a half-close) */
		/* answered before the request body ended: the rest is not
		 * wanted (RFC 9113 8.1) */
		s->discard = 1;
		if (s->in != NULL && evbuffer_get_length(s->in) > 0) {
			nghttp2_session_consume(ng, s->id, evbuffer_get_length(s->in));
			evbuffer_drain(s->in, evbuffer_get_length(s->in));
		}
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

/* ---- I/O ---- */

/* Work that waits outside the session: starts, bodies, held upstreams. */
static void run_streams(struct gw_h2 *h)
{
	struct gw_h2s *s = h->streams, *next;

	for (; s != NULL && !h->gone; s = next) {
		next = s->next;
		if (s->closed)
			continue;
		if (s->start_due) {
			stream_start(s);
			h->again = 1;
			continue;
		}
		if (s->rq == NULL)
			continue;
		if (s->tunnel) {
			gw_h2_tunnel__run(s);
			if (!s->closed)
				gw_h2__stream_timer(s);
			continue;
		}
		if ((s->reading_body || (s->up_ready && !s->in_paused)) && !s->rq->reqx.done &&
		    ((s->in != NULL && evbuffer_get_length(s->in) > 0) || s->in_done))
			gw_h2__pump_body(s);
		else if (s->discard && s->in != NULL && evbuffer_get_length(s->in) > 0) {
			nghttp2_session_consume(h->ng, s->id, evbuffer_get_length(s->in));
			evbuffer_drain(s->in, evbuffer_get_length(s->in));
		}
		if (s->rq != NULL && s->up_held)
			gw_h2__resume_held(s);
		if (!s->closed)
			gw_h2__stream_timer(s);
	}
}

/* Pull frames from the session into h->out (up to HIWAT). */
static void session_send(struct gw_h2 *h)
{
	while (evbuffer_get_length(h->out) < HIWAT) {
		const uint8_t *d;
		size_t before = evbuffer_get_length(h->out);
		ssize_t n = nghttp2_session_mem_send(h->ng, &d);
		if (n < 0) {
			gw_debug("HTTP/2 send: %s", nghttp2_strerror((int)n));
			h->fatal = 1;
			h->why = GW_CLOSE_INTERNAL;
			return;
		}
		if (n == 0 && evbuffer_get_length(h->out) == before)
			return;   /* (a DATA frame written by gw_h2__send_data returns 0 too) */
		if (n > 0 && evbuffer_add(h->out, d, (size_t)n) < 0) {
			h->fatal = 1;
			h->why = GW_CLOSE_INTERNAL;
			return;
		}
	}
}

/* Write h->out; 1 when something was written, -1 when the connection broke. */
static int conn_write(struct gw_h2 *h)
{
	struct gw_conn *c = h->c;
	int progress = 0;

	while (evbuffer_get_length(h->out) > 0) {
		int n = gw_relay_write(c->fd, c->ssl, h->out);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		progress = 1;
	}
	if (evbuffer_get_length(h->out) > 0 && !h->wr_on) {
		event_add(&h->ev_wr, NULL);
		h->wr_on = 1;
	} else if (evbuffer_get_length(h->out) == 0 && h->wr_on) {
		event_del(&h->ev_wr);
		h->wr_on = 0;
	}
	return progress;
}

void gw_h2__io(struct gw_h2 *h)
{
	int rounds = 0, wrote = 0, r;

	if (h->gone)
		return;
	if (h->busy) {
		h->again = 1;
		return;
	}
	if (h->lingering)
		return;
	h->busy = 1;
	do {
		h->again = 0;
		run_streams(h);
		if (h->gone)
			return;
		session_send(h);
		if (h->gone)
			return;
		r = conn_write(h);
		if (r < 0) {
			h->busy = 0;
			h2_close(h, GW_CLOSE_CLIENT_ERROR);
			return;
		}
		wrote |= r;
		/* written out and more to say: another round */
		if (r > 0 && evbuffer_get_length(h->out) == 0 && nghttp2_session_want_write(h->ng))
			h->again = 1;
	} while (h->again && ++rounds < 64);
	h->busy = 0;
	/* stopped by the round cap with more to do (a kick that came while
	 * busy, or frames still wanting out): go on after the loop's other
	 * events instead of waiting for the peer's next byte, which, with the
	 * output empty and no write event armed, might never come */
	if (h->again && !h->fatal)
		event_active(&h->ev_kick, EV_TIMEOUT, 0);
	if (h->fatal && (evbuffer_get_length(h->out) == 0 || !wrote)) {
		linger(h);
		return;
	}
	if (evbuffer_get_length(h->out) == 0 && !nghttp2_session_want_read(h->ng) &&
	    !nghttp2_session_want_write(h->ng)) {
		h2_close(h, h->draining ? GW_CLOSE_SHUTDOWN : GW_CLOSE_NO_KEEPALIVE);
		return;
	}
	if (h->draining && h->final_goaway && h->nstreams == 0 && evbuffer_get_length(h->out) == 0) {
		h2_close(h, GW_CLOSE_SHUTDOWN);
		return;
	}
	/* a client that does not read: stop reading it too (what it sends
	 * would only queue more answers) */
	if (evbuffer_get_length(h->out) >= HIWAT && !h->rd_off) {
		event_del(&h->ev_rd);
		h->rd_off = 1;
	} else if (evbuffer_get_length(h->out) < HIWAT && h->rd_off) {
		event_add(&h->ev_rd, NULL);
		h->rd_off = 0;
	}
	conn_timer(h, wrote);
}

/*
 * After GOAWAY for an error: half-close and read (dropping it) what the
 * client still sends, for LINGER_SECS at most.  Closing at once with its
 * bytes unread would reset the connection, and the client might never
 * see the GOAWAY that says why.
 */
static void linger(struct gw_h2 *h)
{
	struct gw_conn *c = h->c;

	if (h->lingering)
		return;
	h->lingering = 1;
	gw_relay_shutdown(c->fd, c->ssl);
	c->wr_shut = 1;
	evbuffer_drain(h->in, evbuffer_get_length(h->in));
	if (h->rd_off) {
		event_add(&h->ev_rd, NULL);
		h->rd_off = 0;
	}
	c->to_kind = TO_LINGER;
	set_timer(&h->ev_to, LINGER_SECS);
}

static void feed(struct gw_h2 *h)
{
	h->busy = 1;
	while (evbuffer_get_length(h->in) > 0 && !h->fatal && !h->gone) {
		struct evbuffer_iovec v;
		ssize_t r;

		if (evbuffer_peek(h->in, -1, NULL, &v, 1) < 1)
			break;
		r = nghttp2_session_mem_recv(h->ng, v.iov_base, v.iov_len);
		if (r < 0) {
			char who[INET6_ADDRSTRLEN];
			gw_debug("HTTP/2 client %s: %s", peer_fmt(h->c, who), nghttp2_strerror((int)r));
			h->fatal = 1;
			h->why = r == NGHTTP2_ERR_FLOODED ? GW_CLOSE_BAD_REQUEST : GW_CLOSE_CLIENT_ERROR;
			evbuffer_drain(h->in, evbuffer_get_length(h->in));
			break;
		}
		evbuffer_drain(h->in, (size_t)r);
	}
	h->busy = 0;
}

static void rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2 *h = arg;
	struct gw_conn *c = h->c;
	ssize_t n;

	(void)fd;
	(void)what;
	if (h->gone)
		return;
	n = gw_relay_read(c->fd, c->ssl, h->in, &h->rd_big);
	if (h->lingering) {
		evbuffer_drain(h->in, evbuffer_get_length(h->in));
		if (n == 0 || n == -1)
			h2_close(h, h->why);
		else if (gw_relay_ssl_more(c->ssl, n))
			event_active(&h->ev_rd, EV_READ, 0);
		return;
	}
	if (n == 0 || n == -1) {
		h2_close(h, n == 0 ? GW_CLOSE_CLIENT_EOF : GW_CLOSE_CLIENT_ERROR);
		return;
	}
	feed(h);
	gw_h2__io(h);
	if (!h->gone && !h->rd_off && gw_relay_ssl_more(c->ssl, n))
		event_active(&h->ev_rd, EV_READ, 0);
}

static void wr_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_h2__io(arg);
}

void gw_h2__kick(struct gw_h2 *h)
{
	if (h->gone)
		return;
	if (h->busy)
		h->again = 1;
	else
		event_active(&h->ev_kick, EV_TIMEOUT, 0);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_h2__io(arg);
}

static void free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	free(arg);
}

/* Graceful stop, second step: the real last stream id. */
static void goaway_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2 *h = arg;

	(void)fd;
	(void)what;
	if (h->gone || h->final_goaway)
		return;
	h->final_goaway = 1;
	nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
	    NGHTTP2_NO_ERROR, NULL, 0);
	gw_h2__io(h);
}

static void h2_close(struct gw_h2 *h, enum gw_close_reason why)
{
	if (!h->gone)
		gw_conn__close(h->c, why);   /* (calls gw_h2_conn_gone) */
}

void gw_h2_conn_gone(struct gw_conn *c, enum gw_close_reason why)
{
	struct gw_h2 *h = c->h2;

	if (h == NULL || h->gone)
		return;
	h->gone = 1;
	while (h->streams != NULL) {
		struct gw_h2s *s = h->streams;
		if (s->rq != NULL && s->rq->reason == NULL)
			s->rq->reason = gw_close_reason_names[why];
		stream_end(s, NGHTTP2_CANCEL, 0);
	}
	event_del(&h->ev_rd);
	event_del(&h->ev_wr);
	event_del(&h->ev_to);
	event_del(&h->ev_sto);
	event_del(&h->ev_goaway);
	event_del(&h->ev_kick);
	nghttp2_session_del(h->ng);
	evbuffer_free(h->in);
	evbuffer_free(h->out);
	c->h2 = NULL;
	/* callers up the stack may still look at h->gone */
	event_active(&h->ev_free, EV_TIMEOUT, 0);
}

void gw_h2_drain(struct gw_conn *c)
{
	struct gw_h2 *h = c->h2;
	static const struct timeval rtt_max = { 1, 0 };

	if (h == NULL || h->gone || h->draining)
		return;
	h->draining = 1;
	/* RFC 9113 6.8: announce first, then the real last stream id once
	 * what the client sent meanwhile has arrived (the PING's ACK, or a
	 * second at most) */
	nghttp2_submit_shutdown_notice(h->ng);
	nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, NULL);
	event_add(&h->ev_goaway, &rtt_max);
	gw_h2__io(h);
}

int gw_h2c_sniff(struct gw_conn *c)
{
	size_t len = evbuffer_get_length(c->in), n = len < 24 ? len : 24;
	const unsigned char *p = evbuffer_pullup(c->in, (ev_ssize_t)n);

	if (p == NULL || memcmp(p, h2_preface, n) != 0) {
		c->h2c_ok = 0;
		return 0;
	}
	if (n < 24) {
		gw_relay_rd_enable(c, 1);
		return 1;   /* maybe: wait for the rest of the preface */
	}
	gw_h2_start(c, c->in);
	return 1;
}

void gw_h2_start(struct gw_conn *c, struct evbuffer *pre)
{
	const struct conf_limits *L = &c->snap->conf->global.limits;
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	struct gw_h2 *h = calloc(1, sizeof *h);
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)L->max_header_bytes },
		{ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
	};
	int ok;

	c->h2c_ok = 0;
	if (h == NULL || nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
		free(h);
		h = NULL;
		goto fail;
	}
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, cb_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
	nghttp2_session_callbacks_set_send_data_callback(cbs, gw_h2__send_data);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	ok = nghttp2_session_server_new3(&h->ng, cbs, h, opt, gw_heap_nghttp2_mem()) == 0;
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	h->in = evbuffer_new();
	h->out = evbuffer_new();
	if (!ok || h->in == NULL || h->out == NULL ||
	    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0 ||
	    (pre != NULL && evbuffer_add_buffer(h->in, pre) != 0)) {
		if (ok)
			nghttp2_session_del(h->ng);
		if (h->in != NULL)
			evbuffer_free(h->in);
		if (h->out != NULL)
			evbuffer_free(h->out);
		free(h);
		h = NULL;
		goto fail;
	}
	h->c = c;
	h->reset_budget = H2_RESET_BUDGET;
	c->h2 = h;
	c->state = CS_BUSY;
	c->to_kind = TO_FIRST;
	/* the connection's own events rest from now on */
	event_del(&c->ev_rd);
	if (c->ev_wr != NULL)
		event_del(c->ev_wr);
	c->wr_on = 0;
	event_del(&c->ev_to);
	event_assign(&h->ev_rd, c->w->base, c->fd, EV_READ | EV_PERSIST, rd_cb, h);
	event_assign(&h->ev_wr, c->w->base, c->fd, EV_WRITE | EV_PERSIST, wr_cb, h);
	event_assign(&h->ev_to, c->w->base, -1, 0, conn_to_cb, h);
	event_assign(&h->ev_sto, c->w->base, -1, 0, sto_cb, h);
	event_assign(&h->ev_free, c->w->base, -1, 0, free_cb, h);
	event_assign(&h->ev_goaway, c->w->base, -1, 0, goaway_cb, h);
	event_assign(&h->ev_kick, c->w->base, -1, 0, kick_cb, h);
	event_add(&h->ev_rd, NULL);
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_H2_CONNS], 1);
	if (evbuffer_get_length(h->in) > 0)
		feed(h);
	gw_h2__io(h);
	if (!h->gone && c->ssl != NULL && SSL_has_pending(c->ssl))
		event_active(&h->ev_rd, EV_READ, 0);
	return;
fail:
	gw_error("HTTP/2: out of memory for a new connection");
	gw_conn__close(c, GW_CLOSE_INTERNAL);
}
