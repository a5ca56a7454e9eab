/*
 * core/h2_client: HTTP/2 toward upstream servers (protocol = "h2"), with
 * libnghttp2 as the client.  One session per upstream key (the pool key:
 * side, TLS settings, host:port) carries many exchanges at once, up to
 * the server's SETTINGS_MAX_CONCURRENT_STREAMS (and H2C_MAX_STREAMS);
 * more exchanges wait in the session's queue, and past that another
 * session is opened (at most H2C_MAX_SESS per key and worker).
 *
 * The seam with the upstream engine (core/upstream.c) is a translated
 * connection: each exchange gets a socket-less struct upconn (its h2s set)
 * that the engine drives exactly as a pooled HTTP/1.1 connection.  The
 * engine writes the HTTP/1.1 request head and framed body into u->out;
 * here the head is parsed back (the one strict parser) into a HEADERS
 * frame and the body is de-framed into DATA frames as the stream's window
 * allows (what is not taken stays in u->out: the sink's backpressure).
 * The response HEADERS become an HTTP/1.1 head (chunked unless a length
 * was given) and DATA its body, moved into u->in only while the engine
 * wants to read and u->in is small; the stream window is consumed only
 * then, so a slow client stops the origin through flow control.  So all
 * of the engine (1xx, filters, cache taps, retries, timeouts) applies
 * unchanged; trailers go beside it (rq->up_trailers) to the sink.
 */
#include "core/h2_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/dns.h"
#include "core/h2.h"
#include "core/heap.h"
#include "core/http1.h"
#include "core/http1_out.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/relay.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/status.h"
#include "core/tls.h"
#include "core/upstream.h"
#include "core/worker.h"

#include "core/conn_int.h"

#define H2C_MAGIC 0x68326331u
#define H2C_MAX_STREAMS 128         /* per session, even when the server allows more */
#define H2C_MAX_SESS 8              /* sessions per key and worker; then exchanges queue */
#define H2C_WINDOW (256 * 1024)     /* our stream window (response bytes in flight) */
#define H2C_IN_LOW (64 * 1024)      /* u->in below this: move more of the response in */
#define H2C_HEAD_MAX 65536          /* a response head (the engine's parser bounds it again) */
#define H2C_PING_IV 30.0            /* defaults of h2_ping_interval / h2_ping_timeout */
#define H2C_PING_TO 10.0

enum { S_CONNECT, S_TLS, S_OPEN, S_DEAD };

struct gw_h2_client_strm;

struct gw_h2_client {
	uint32_t magic;
	struct gw_worker *w;
	struct gw_pool *pool;
	struct gw_h2_client *next, *prev;      /* the worker's sessions (pool->h2c) */
	char key[POOL_KEY_MAX];
	char addr_str[64];
	int state, fd, rd_big, wr_on, got_settings, closing;
	SSL *ssl;
	nghttp2_session *ng;
	struct evbuffer *in, *out;
	struct event ev_rd, ev_wr, ev_to, ev_kick;
	struct gw_dns_result addrs;
	int addr_idx, last_err;
	double t_connect, idle_since;
	/* liveness (h2_ping_interval/_timeout): a session that received
	 * nothing for ping_iv is PINGed; no answer in ping_to closes it.
	 * While probed (ping_out) it takes no new exchanges.  Set by the
	 * request that opened it (a reload closes idle sessions). */
	double ping_iv, ping_to, last_rx, ping_sent;
	int ping_out;
	struct event ev_ping;
	struct gw_h2_client_strm *streams;   /* all, submitted or queued */
	int nactive, nqueued;
	int in_io;
	int *dead;                             /* set to 1 when freed (a callback's liveness flag) */
};

struct gw_h2_client_strm {
	struct gw_h2_client *s;                /* NULL once the session is gone */
	struct gw_h2_client_strm *next, *prev;
	struct upconn *vu;                     /* NULL once the engine let it go */
	int32_t id;                            /* 0: queued, not submitted */
	struct evbuffer *pend;                 /* translated response bytes not yet in vu->in */
	struct evbuffer *body;                 /* de-framed request body for DATA */
	struct evbuffer *hd;                   /* the response head being collected */
	struct xfer rx;                        /* the request body's framing in vu->out */
	size_t unconsumed;                     /* DATA bytes in pend not given back as window */
	int status, has_len, chunked, final, deferred, closed, ended, refused, hd_err;
	int in_trailers, trailers_n;
	int rechunk;                           /* content-length dropped for chunked (client_takes_trailers) */
	int req_eof;                           /* our END_STREAM went (or will, with the head) */
	uint64_t clen, got;                    /* the response's content-length (has_len) and DATA so far */
	struct gw_hdr *trailers;               /* (the exchange's arena) */
	uint32_t err_code;
	const char *fail;                      /* why the stream failed (static text) */
};

static void sess_io(struct gw_h2_client *s);
static void sess_kill(struct gw_h2_client *s, const char *why, int connect_stage);
static void connect_next(struct gw_h2_client *s);

/* ---- helpers ---- */

static void addr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
		snprintf(buf, cap, "%s:%u", host, ntohs(((const struct sockaddr_in *)sa)->sin_port));
	} else {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
		snprintf(buf, cap, "[%s]:%u", host, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	}
}

static void kick(struct gw_h2_client *s)
{
	if (s != NULL && s->state == S_OPEN)
		event_active(&s->ev_kick, EV_TIMEOUT, 0);
}

/* The engine's exchange of t may look at what the stream holds now. */
static void strm_wake(struct gw_h2_client_strm *t)
{
	if (t->vu != NULL)
		event_active(&t->vu->ev_rd, EV_READ, 0);
}

static void strm_unlink(struct gw_h2_client_strm *t)
{
	struct gw_h2_client *s = t->s;

	if (s == NULL)
		return;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		s->streams = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	if (t->id == 0)
		s->nqueued--;
	else if (!t->closed)
		s->nactive--;
	t->s = NULL;
	if (s->streams == NULL)
		s->idle_since = gw_mono_now();
}

static void strm_free(struct gw_h2_client_strm *t)
{
	strm_unlink(t);
	if (t->pend != NULL)
		evbuffer_free(t->pend);
	if (t->body != NULL)
		evbuffer_free(t->body);
	if (t->hd != NULL)
		evbuffer_free(t->hd);
	free(t);
}

static int sess_limit(const struct gw_h2_client *s)
{
	uint32_t m = s->got_settings && s->ng != NULL ?
	    nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) : 100;

	return m < H2C_MAX_STREAMS ? (int)m : H2C_MAX_STREAMS;
}

/* Submit queued streams while the server allows more. */
static void sess_fill(struct gw_h2_client *s)
{
	struct gw_h2_client_strm *t, *n;

	if (s->state != S_OPEN || s->closing)
		return;
	for (t = s->streams; t != NULL && s->nactive < sess_limit(s); t = n) {
		n = t->next;
		if (t->id == 0 && t->vu != NULL && t->vu->connecting) {
			struct gw_req *rq = t->vu->rq;
			t->vu->connecting = 0;
			snprintf(t->vu->addr_str, sizeof t->vu->addr_str, "%s", s->addr_str);
			memcpy(rq->upstream_str, s->addr_str, sizeof rq->upstream_str);
			/* the engine writes the head into vu->out: gw_h2_client_out submits */
			gw_upstream__ready(rq);
			return;   /* (the engine may have ended anything: again from the kick) */
		}
	}
}

/* ---- the engine's side ---- */

/* A family that vets addresses (on_resolved: the forward side) joins only
 * a session connected to one of the addresses it allowed this time. */
static int sess_vetted(const struct gw_h2_client *s, const struct gw_req *rq)
{
	if (rq->proto->on_resolved == NULL)
		return 1;
	return rq->addrs != NULL && s->addr_idx > 0 &&
	    gw_upstream__addr_vetted(rq->addrs, (const union gw_sa *)&s->addrs.addrs[s->addr_idx - 1]);
}

int gw_h2_client_attach(struct gw_req *rq, int may_open)
{
	struct gw_pool *p = rq->w->pool;
	struct gw_h2_client *s, *best = NULL;
	struct gw_h2_client_strm *t;
	struct upconn *vu;
	int nsess = 0;

	if (rq->dec != DEC_PROXY || rq->upgrade) {
		gw_upstream_fail(rq, 502, rq->upgrade ? "an upgrade (WebSocket) cannot go to an h2 upstream" :
		    "only proxied requests go to an h2 upstream");
		return 1;
	}
	if (rq->retried && !may_open)
		return 0;   /* a retry: a fresh connection (after DNS) */
	for (s = p->h2c; s != NULL; s = s->next) {
		/* a retry joins only a session still being opened (as fresh as
		 * its own would be: the refused streams of a GOAWAY go again on
		 * one new connection, not one each) */
		if (s->state == S_DEAD || s->closing || strcmp(s->key, rq->pool_key) != 0 ||
		    (rq->retried && s->state == S_OPEN) || !sess_vetted(s, rq))
			continue;
		if (s->ping_out)
			continue;   /* silent past its interval: not trusted until it answers */
		nsess++;
		if (s->nactive + s->nqueued < sess_limit(s)) {
			best = s;
			break;
		}
		if (best == NULL || s->nqueued < best->nqueued)
			best = s;
	}
	if (best != NULL && best->nactive + best->nqueued >= sess_limit(best) && nsess < H2C_MAX_SESS &&
	    may_open)
		best = NULL;   /* all full: a new connection rather than a queue */
	if (best == NULL && !may_open)
		return 0;
	if (best == NULL) {
		best = gw_h2_client__open(rq);
		if (best == NULL)
			return 1;   /* (failed the exchange) */
	}
	s = best;
	if ((t = calloc(1, sizeof *t)) == NULL || (vu = gw_upstream__virtual(rq)) == NULL) {
		free(t);
		gw_upstream_fail(rq, 503, NULL);
		return 1;
	}
	/* an HTTP/1.1 client's chunked trailers are kept as the body is
	 * de-chunked (it moves only once attached) for req_body_read */
	if (rq->h2s == NULL && rq->reqx.kind == GW_BODY_CHUNKED && !rq->reqx.done && rq->reqx.ck.tr == NULL)
		rq->reqx.ck.tr = gw_req_alloc(rq, GW_CHUNKED_TRAILER_MAX);
	t->vu = vu;
	vu->h2s = t;
	vu->connecting = 1;   /* until submitted: the engine writes nothing */
	vu->reused = s->state == S_OPEN;
	snprintf(vu->addr_str, sizeof vu->addr_str, "%s", s->addr_str);
	memcpy(rq->upstream_str, s->addr_str, sizeof rq->upstream_str);
	t->s = s;
	t->next = s->streams;
	if (t->next != NULL)
		t->next->prev = t;
	s->streams = t;
	s->nqueued++;
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_H2_STREAMS], 1);
	if (vu->reused)
		gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_REUSED], 1);
	if (s->state == S_OPEN)
		kick(s);   /* sess_fill from the loop, not under the caller */
	else if (s->state == S_CONNECT && s->fd < 0)
		connect_next(s);   /* (may fail rq at once: it is queued, so it learns) */
	return 1;
}

void gw_h2_client_gone(struct upconn *vu)
{
	struct gw_h2_client_strm *t = vu->h2s;
	struct gw_h2_client *s = t->s;

	vu->h2s = NULL;
	t->vu = NULL;
	if (s != NULL && t->id != 0 && !t->closed && s->ng != NULL && t->req_eof && t->final &&
	    (t->ended || (t->has_len && t->got >= t->clen))) {
		/* the whole response came (only END_STREAM may still be on its
		 * way): no RST_STREAM for a stream that ends by itself, which a
		 * server's rapid-reset guard would count; freed at its close */
		return;
	}
	if (s != NULL && t->id != 0 && !t->closed && s->ng != NULL) {
		/* the exchange ended before the stream: cancel it; the stream's
		 * unread share of the connection window is given back at close */
		nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, t->id, NGHTTP2_CANCEL);
		kick(s);
		return;   /* freed in on_stream_close */
	}
	if (s != NULL && t->unconsumed > 0 && s->ng != NULL && t->id != 0)
		nghttp2_session_consume_connection(s->ng, t->unconsumed);
	strm_free(t);
	if (s != NULL)
		kick(s);
}

/* Name the lowercase copy of a field name (arena). */
static uint8_t *lc_dup(struct gw_req *rq, const char *p, size_t n)
{
	uint8_t *d = gw_req_alloc(rq, n + 1);

	if (d != NULL)
		for (size_t i = 0; i < n; i++)
			d[i] = (uint8_t)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
	return d;
}

#define NV(n, nl, v, vl) (nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE }

static ssize_t req_body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg);

/* vu->out begins with the request head the engine wrote: parse it back and
 * submit it as HEADERS.  0 done (or waiting for more), -1 failed. */
static int submit_head(struct gw_h2_client_strm *t)
{
	struct upconn *vu = t->vu;
	struct gw_req *rq = vu->rq;
	struct gw_h2_client *s = t->s;
	const struct conf_limits *L = &rq->snap->conf->global.limits;
	struct gw_http_limits lim = { (size_t)L->max_header_bytes * 2 + 4096, (size_t)L->max_headers + 16,
		(size_t)L->max_uri_bytes + 16 };
	struct gw_http_head h;
	size_t len = evbuffer_get_length(vu->out), n = 0;
	const char *auth = NULL, *p;
	size_t auth_len = 0;
	nghttp2_nv *nv;
	nghttp2_data_provider prd = { .source.ptr = t, .read_callback = req_body_read };
	ssize_t r;
	int te = 0;

	if (evbuffer_search(vu->out, "\r\n\r\n", 4, NULL).pos < 0)
		return 0;   /* (the engine writes the head in one go: not reached) */
	if (len > lim.max_header_bytes + 8)
		len = lim.max_header_bytes + 8;
	p = (const char *)evbuffer_pullup(vu->out, (ev_ssize_t)len);
	memset(&h, 0, sizeof h);
	h.hdrs = gw_req_alloc(rq, lim.max_headers * sizeof *h.hdrs);
	h.hdrs_cap = lim.max_headers;
	if (h.hdrs == NULL || p == NULL)
		return -1;
	r = gw_http1_parse_request(p, len, &lim, &h);
	if (r <= 0)
		return -1;
	if ((nv = gw_req_alloc(rq, (h.nhdrs + 5) * sizeof *nv)) == NULL)
		return -1;
	nv[n++] = NV(":method", 7, h.method_str, h.method_len);
	nv[n++] = NV(":scheme", 7, rq->up_tls ? "https" : "http", rq->up_tls ? 5 : 4);
	nv[n++] = NV(":path", 5, h.target, h.target_len);
	n++;   /* :authority, once Host is found (pseudo-headers come first) */
	for (size_t i = 0; i < h.nhdrs; i++) {
		const struct gw_hdr *x = &h.hdrs[i];
		if (gw_h1out_hdr_is(x, "host")) {
			auth = x->value;
			auth_len = x->value_len;
			continue;
		}
		if (gw_h1out_hop_by_hop(x))
			continue;   /* connection-specific: never in HTTP/2 (RFC 9113 8.2.2) */
		uint8_t *nm = lc_dup(rq, x->name, x->name_len);
		if (nm == NULL)
			return -1;
		nv[n++] = NV(nm, x->name_len, x->value, x->value_len);
	}
	if (auth == NULL) {
		auth = rq->up_host;
		auth_len = strlen(rq->up_host);
	}
	nv[3] = NV(":authority", 10, auth, auth_len);
	/* gRPC needs "te: trailers", which the HTTP/1 writer drops as a
	 * hop-by-hop field: pass it when the client sent it */
	for (size_t i = 0; i < rq->head.nhdrs && !te; i++) {
		const struct gw_hdr *x = &rq->head.hdrs[i];
		if (gw_h1out_hdr_is(x, "te") && x->value_len >= 8 && memmem(x->value, x->value_len, "trailers", 8))
			te = 1;
	}
	if (te)
		nv[n++] = NV("te", 2, "trailers", 8);
	t->rx.kind = h.body;
	t->rx.remaining = h.content_length;
	gw_chunked_init(&t->rx.ck);
	t->rx.done = h.body == GW_BODY_NONE || (h.body == GW_BODY_LENGTH && h.content_length == 0);
	t->req_eof = t->rx.done;
	if (!t->rx.done && (t->body = evbuffer_new()) == NULL)
		return -1;
	int32_t id = nghttp2_submit_request(s->ng, NULL, nv, n, t->rx.done ? NULL : &prd, t);
	if (id < 0)
		return -1;
	evbuffer_drain(vu->out, (size_t)r);
	t->id = id;
	s->nqueued--;
	s->nactive++;
	return 0;
}

void gw_h2_client_out(struct upconn *vu)
{
	struct gw_h2_client_strm *t = vu->h2s;
	struct gw_h2_client *s = t->s;

	if (s == NULL || s->state != S_OPEN || t->closed)
		return;   /* (the exchange learns it from the stream's end) */
	if (t->id == 0) {
		if (submit_head(t) < 0) {
			t->fail = "cannot send the request as HTTP/2";
			t->closed = 1;
			strm_unlink(t);
			strm_wake(t);
			return;
		}
	} else if (t->deferred) {
		t->deferred = 0;
		nghttp2_session_resume_data(s->ng, t->id);
	}
	kick(s);
}

/* An HTTP/1.1 client's chunked trailer lines (kept by the decoder, which
 * checked their syntax) as fields: names lower-cased for HTTP/2, values
 * without surrounding whitespace (the exchange's arena).  Returns how many. */
static int h1_trailers(struct gw_req *rq, struct gw_hdr *out, int max)
{
	const char *p = rq->reqx.ck.tr, *end = p + rq->reqx.ck.tr_len;
	int n = 0;

	if (p == NULL || !rq->reqx.ck.done)
		return 0;
	while (p < end && n < max) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon, *v, *ve;
		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL)
			break;   /* (the decoder refuses such a line) */
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		uint8_t *nm = lc_dup(rq, p, (size_t)(colon - p));
		if (nm == NULL)
			break;
		out[n].name = (const char *)nm;
		out[n].name_len = (uint32_t)(colon - p);
		out[n].value = v;
		out[n].value_len = (uint32_t)(ve - v);
		n++;
		p = eol + 2;
	}
	return n;
}

/* The request body for DATA frames: de-framed from vu->out as the window
 * allows (what stays there holds the sink back). */
static ssize_t req_body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct gw_h2_client_strm *t = src->ptr;
	size_t have;

	(void)ng;
	(void)id;
	(void)arg;
	if (t->vu == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* (a cancel is under way) */
	if (evbuffer_get_length(t->body) < len && evbuffer_get_length(t->vu->out) > 0 && !t->rx.done) {
		if (gw_relay_xfer_pump(&t->rx, t->vu->out, t->body) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		event_active(&t->vu->ev_wr, EV_WRITE, 0);   /* the sink may send more (on_sent) */
	}
	have = evbuffer_get_length(t->body);
	/* a body with a content-length is whole at its last byte, but an
	 * HTTP/2 client's trailers come after it: END_STREAM waits for the
	 * client's (core/h2.c wakes the exchange then) */
	struct gw_req *rq = t->vu->rq;
	int hold = t->rx.done && rq != NULL && !gw_h2_req_ended(rq);
	if (have == 0 && (!t->rx.done || hold)) {
		t->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (have > len)
		have = len;
	if (have > 0)
		evbuffer_remove(t->body, buf, have);
	if (t->rx.done && !hold && evbuffer_get_length(t->body) == 0) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		t->req_eof = 1;
		struct gw_hdr tr[GW_TRAILERS_MAX];
		int k = rq == NULL ? 0 : rq->h2s != NULL ? gw_h2_req_trailers(rq, tr, GW_TRAILERS_MAX) :
		    h1_trailers(rq, tr, GW_TRAILERS_MAX), m = 0;
		nghttp2_nv nv[GW_TRAILERS_MAX];
		/* the HTTP/2 client's trailers (core/h2.c keeps them) */
		for (int i = 0; i < k; i++)
			if (!gw_http1_trailer_forbidden(tr[i].name, tr[i].name_len))
				nv[m++] = NV(tr[i].name, tr[i].name_len, tr[i].value, tr[i].value_len);
		if (m > 0 && nghttp2_submit_trailer(ng, id, nv, (size_t)m) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)have;
}

/* ---- the response: nghttp2 callbacks ---- */

static struct gw_h2_client_strm *strm_of(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static int cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
	struct gw_h2_client_strm *t = strm_of(ng, f->hd.stream_id);

	(void)arg;
	if (t == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	t->status = 0;
	t->has_len = 0;
	t->in_trailers = t->final;   /* HEADERS after the final head: trailers */
	if (t->hd == NULL && (t->hd = evbuffer_new()) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	evbuffer_drain(t->hd, evbuffer_get_length(t->hd));
	return 0;
}

/* An HTTP/1.1 client that said "TE: trailers" gets a response with a
 * content-length as chunked, so the h2 upstream's trailers can follow in
 * the last chunk (RFC 9110 6.5: a client that says nothing may not read
 * them; it keeps the content-length and gets no trailers).  Not through a
 * response filter (core/upstream.c re-frames a body it changes) and not
 * for an HTTP/2 client (its trailers go as HEADERS anyway). */
static int client_takes_trailers(const struct gw_req *rq)
{
	if (rq == NULL || rq->h2s != NULL || rq->head.version_minor < 1)
		return 0;
	for (size_t i = 0; i < rq->head.nhdrs; i++) {
		const struct gw_hdr *x = &rq->head.hdrs[i];
		if (gw_h1out_hdr_is(x, "te") && gw_http1_list_has(x->value, x->value_len, "trailers"))
			return 1;
	}
	return 0;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
    const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct gw_h2_client_strm *t = strm_of(ng, f->hd.stream_id);
	int r = 0;

	(void)flags;
	(void)arg;
	if (t == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (t->in_trailers) {
		struct gw_req *rq = t->vu != NULL ? t->vu->rq : NULL;
		if (rq == NULL)
			return 0;
		if (t->trailers == NULL && (t->trailers = gw_req_alloc(rq, GW_TRAILERS_MAX * sizeof *t->trailers)) == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (gw_http1_trailer_forbidden((const char *)name, nl))
			return 0;   /* (RFC 9110 6.5.1: never a header, never relayed) */
		if (t->trailers_n >= GW_TRAILERS_MAX) {
			t->hd_err = 1;
			return 0;
		}
		struct gw_hdr *x = &t->trailers[t->trailers_n];
		x->name = gw_req_strndup(rq, (const char *)name, nl);
		x->value = gw_req_strndup(rq, (const char *)value, vl);
		if (x->name == NULL || x->value == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		x->name_len = (uint32_t)nl;
		x->value_len = (uint32_t)vl;
		t->trailers_n++;
		return 0;
	}
	if (nl == 7 && memcmp(name, ":status", 7) == 0) {
		t->status = vl == 3 ? (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0') : 0;
		return 0;
	}
	if (nl > 0 && name[0] == ':')
		return 0;   /* (nghttp2 refuses unknown pseudo-headers in responses) */
	if (evbuffer_get_length(t->hd) + nl + vl + 4 > H2C_HEAD_MAX) {
		t->hd_err = 1;
		return 0;
	}
	if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
		t->has_len = 1;   /* (one valid value: nghttp2 checked it) */
		t->clen = strtoull((const char *)value, NULL, 10);
		if (t->vu != NULL && client_takes_trailers(t->vu->rq)) {
			t->rechunk = 1;   /* chunked instead: trailers may follow the body */
			return 0;
		}
	}
	/* names and values were checked by nghttp2 (no CR, LF, NUL; lowercase
	 * tokens): the line cannot split */
	r |= evbuffer_add(t->hd, name, nl);
	r |= evbuffer_add(t->hd, ": ", 2);
	r |= evbuffer_add(t->hd, value, vl);
	r |= evbuffer_add(t->hd, "\r\n", 2);
	return r == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* A field nghttp2 would drop (a connection-specific one such as
 * "connection", or a malformed name or value): RFC 9113 8.2.2 makes the
 * message malformed, so the stream is reset and the exchange fails (502). */
static int cb_invalid_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
    const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct gw_h2_client_strm *t = strm_of(ng, f->hd.stream_id);

	(void)name;
	(void)nl;
	(void)value;
	(void)vl;
	(void)flags;
	(void)arg;
	if (t != NULL && t->fail == NULL)
		t->fail = "upstream sent a malformed or connection-specific header field";
	return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* RST_STREAM */
}

/* A response HEADERS frame came whole: its HTTP/1.1 form into pend. */
static int head_done(nghttp2_session *ng, struct gw_h2_client_strm *t, int end)
{
	struct gw_req *rq = t->vu != NULL ? t->vu->rq : NULL;
	const char *reason;
	int r = 0;

	if (t->hd_err) {
		t->fail = t->in_trailers ? "upstream sent too many trailer fields" :
		    "upstream response head too large";
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, t->id, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	if (t->in_trailers) {
		if (rq != NULL) {
			rq->up_trailers = t->trailers;   /* for an HTTP/2 client (core/h2_sink.c) */
			rq->up_trailers_n = t->trailers_n;
			/* an HTTP/1.1 client gets them in its chunked body's last
			 * chunk (not through a response filter: its body differs) */
			rq->respx.trailers = t->trailers;
			rq->respx.ntrailers = t->trailers_n;
		}
		return 0;
	}
	if (t->pend == NULL && (t->pend = evbuffer_new()) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	reason = gw_status_reason(t->status);
	r |= evbuffer_add_printf(t->pend, "HTTP/1.1 %03d %s\r\n", t->status, reason ? reason : "Status") < 0;
	r |= evbuffer_add_buffer(t->pend, t->hd);
	if (t->status >= 200) {
		int bodyless = t->status == 204 || t->status == 304 ||
		    (rq != NULL && rq->head.method == GW_M_HEAD);
		t->final = 1;
		if ((!t->has_len || t->rechunk) && !bodyless) {
			if (end) {
				r |= evbuffer_add(t->pend, "content-length: 0\r\n", 19);
			} else {
				r |= evbuffer_add(t->pend, "transfer-encoding: chunked\r\n", 28);
				t->chunked = 1;
			}
		}
	}
	r |= evbuffer_add(t->pend, "\r\n", 2);
	strm_wake(t);
	return r == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
	struct gw_h2_client *s = arg;
	struct gw_h2_client_strm *t;

	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) {
			s->got_settings = 1;
			kick(s);   /* more streams may be allowed now */
		}
		return 0;
	case NGHTTP2_GOAWAY:
		/* no new streams here; the ones above last-stream-id come back
		 * closed with REFUSED_STREAM (retried on a fresh connection) */
		s->closing = 1;
		return 0;
	case NGHTTP2_HEADERS:
		if ((t = strm_of(ng, f->hd.stream_id)) == NULL)
			return 0;
		if (head_done(ng, t, (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && t->status >= 200)
			t->ended = 1;
		if (t->in_trailers)
			t->ended = 1;
		return 0;
	case NGHTTP2_DATA:
		if ((t = strm_of(ng, f->hd.stream_id)) != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			t->ended = 1;
		return 0;
	default:
		return 0;
	}
}

static int cb_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *arg)
{
	struct gw_h2_client_strm *t = strm_of(ng, id);
	int r = 0;

	(void)flags;
	(void)arg;
	if (t == NULL || t->vu == NULL || t->pend == NULL || !t->final) {
		nghttp2_session_consume(ng, id, len);   /* nobody reads it */
		return 0;
	}
	if (t->chunked)
		gw_h1out_chunk_line(t->pend, len);
	r |= evbuffer_add(t->pend, data, len);
	if (t->chunked)
		r |= evbuffer_add(t->pend, "\r\n", 2);
	t->unconsumed += len;
	t->got += len;
	strm_wake(t);
	return r == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static const char *h2_err_text(uint32_t e)
{
	switch (e) {
	case NGHTTP2_PROTOCOL_ERROR: return "upstream h2 stream reset: PROTOCOL_ERROR (malformed response?)";
	case NGHTTP2_INTERNAL_ERROR: return "upstream h2 stream reset: INTERNAL_ERROR";
	case NGHTTP2_FLOW_CONTROL_ERROR: return "upstream h2 stream reset: FLOW_CONTROL_ERROR";
	case NGHTTP2_REFUSED_STREAM: return "upstream h2 stream refused";
	case NGHTTP2_CANCEL: return "upstream h2 stream reset: CANCEL";
	case NGHTTP2_ENHANCE_YOUR_CALM: return "upstream h2 stream reset: ENHANCE_YOUR_CALM";
	default: return "upstream h2 stream reset";
	}
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *arg)
{
	struct gw_h2_client *s = arg;
	struct gw_h2_client_strm *t = strm_of(ng, id);

	if (t == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	/* its DATA not yet taken by the exchange: the connection's share of
	 * the window comes back now (the bytes wait in pend) */
	if (t->unconsumed > 0)
		nghttp2_session_consume_connection(ng, t->unconsumed);
	t->unconsumed = 0;
	s->nactive--;
	t->closed = 1;
	t->err_code = err;
	if (t->vu == NULL) {
		strm_free(t);
		kick(s);
		return 0;
	}
	if (t->ended && err == NGHTTP2_NO_ERROR && t->fail == NULL) {
		if (t->chunked && t->pend != NULL)
			evbuffer_add(t->pend, "0\r\n\r\n", 5);
	} else if (t->fail == NULL) {
		t->refused = err == NGHTTP2_REFUSED_STREAM && !t->final;
		t->fail = h2_err_text(err);
		if (err == NGHTTP2_NO_ERROR)
			t->fail = "upstream h2 stream ended early";
	}
	strm_unlink(t);   /* (t->closed: not counted as active twice) */
	strm_wake(t);
	kick(s);
	return 0;
}

/* ---- the response: into the engine ---- */

int gw_h2_client_pull(struct upconn *vu)
{
	struct gw_h2_client_strm *t = vu->h2s;
	struct gw_req *rq = vu->rq;

	if (t->pend != NULL && evbuffer_get_length(t->pend) > 0 && vu->rd_on &&
	    evbuffer_get_length(vu->in) < H2C_IN_LOW) {
		evbuffer_add_buffer(vu->in, t->pend);
		vu->got_bytes = 1;
		if (t->unconsumed > 0 && t->s != NULL && t->s->ng != NULL && !t->closed) {
			nghttp2_session_consume(t->s->ng, t->id, t->unconsumed);
			kick(t->s);
		}
		t->unconsumed = 0;
	}
	if (t->fail != NULL && (t->pend == NULL || evbuffer_get_length(t->pend) == 0)) {
		if (t->refused) {
			/* nothing was processed: the engine's retry on a fresh
			 * connection (or the family's) applies as for a pooled
			 * HTTP/1 connection closed before answering */
			vu->eof = 1;
			vu->got_bytes = 0;
			return 0;
		}
		gw_upstream__stage_failed(rq, GW_UPFAIL_RESET, 502, t->fail);
		return -1;
	}
	return 0;
}

/* ---- sessions: connect, TLS, I/O ---- */

static ssize_t cb_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct gw_h2_client *s = arg;

	(void)ng;
	(void)flags;
	if (evbuffer_get_length(s->out) > 256 * 1024)
		return NGHTTP2_ERR_WOULDBLOCK;
	return evbuffer_add(s->out, data, len) == 0 ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static void sess_free(struct gw_h2_client *s)
{
	struct gw_pool *p = s->pool;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (p->h2c == s)
		p->h2c = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	event_del(&s->ev_rd);
	event_del(&s->ev_wr);
	event_del(&s->ev_to);
	event_del(&s->ev_kick);
	event_del(&s->ev_ping);
	if (s->dead != NULL)
		*s->dead = 1;
	if (s->ng != NULL)
		nghttp2_session_del(s->ng);
	if (s->ssl != NULL) {
		ERR_clear_error();
		SSL_free(s->ssl);
	}
	if (s->fd >= 0)
		close(s->fd);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	s->magic = 0;
	free(s);
}

/*
 * The session ends (why: for the log and the exchanges).  Queued
 * exchanges: connect_stage 1 (the connection never opened) fails them as
 * a connect failure (the family may retry elsewhere), 2 (the pool is
 * being freed) fails them plainly; else they start over once (a new
 * session).  Submitted streams fail when their exchange next reads.
 */
static void sess_kill(struct gw_h2_client *s, const char *why, int connect_stage)
{
	int status = s->last_err == ETIMEDOUT ? 504 : 502;

	if (s->state == S_DEAD)
		return;
	gw_debug("h2 upstream %s: session ends: %s", s->addr_str[0] ? s->addr_str : s->key, why);
	s->state = S_DEAD;
	while (s->streams != NULL) {
		struct gw_h2_client_strm *t = s->streams;
		int queued = t->id == 0;
		strm_unlink(t);
		if (t->vu == NULL) {
			strm_free(t);
			continue;
		}
		if (s->ng != NULL && t->id != 0)
			nghttp2_session_set_stream_user_data(s->ng, t->id, NULL);
		/* (why may be the caller's stack: each exchange keeps a copy) */
		const char *mine = gw_req_strndup(t->vu->rq, why, strlen(why));
		if (queued) {
			struct gw_req *rq = t->vu->rq;
			if (s->addr_str[0] != '\0')
				memcpy(rq->upstream_str, s->addr_str, sizeof rq->upstream_str);
			gw_upstream_detach(rq);   /* frees t (gw_h2_client_gone) */
			if (connect_stage == 2) {
				gw_upstream_fail(rq, 502, mine);
			} else if (connect_stage || rq->retried) {
				gw_upstream__stage_failed(rq, GW_UPFAIL_CONNECT, status, mine);
			} else {
				rq->retried = 1;
				gw_upstream_start(rq);
			}
			continue;
		}
		t->closed = 1;
		t->unconsumed = 0;
		if (t->fail == NULL)
			t->fail = mine != NULL ? mine : "upstream HTTP/2 connection lost";
		strm_wake(t);
	}
	sess_free(s);
}

static void sess_want_write(struct gw_h2_client *s, int on)
{
	if (on && !s->wr_on) {
		event_add(&s->ev_wr, NULL);
		s->wr_on = 1;
	} else if (!on && s->wr_on) {
		event_del(&s->ev_wr);
		s->wr_on = 0;
	}
}

/* Feed what came in, send what nghttp2 has, write it out.  Never from
 * inside an nghttp2 callback (the kick event defers). */
static void sess_io(struct gw_h2_client *s)
{
	int dead = 0;

	if (s->state != S_OPEN || s->in_io)
		return;
	s->in_io = 1;
	while (evbuffer_get_length(s->in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(s->in, -1, NULL, &v, 1) < 1)
			break;
		ssize_t r = nghttp2_session_mem_recv(s->ng, v.iov_base, v.iov_len);
		if (r < 0) {
			s->in_io = 0;
			sess_kill(s, nghttp2_strerror((int)r), 0);
			return;
		}
		evbuffer_drain(s->in, (size_t)r);
	}
	if (nghttp2_session_send(s->ng) != 0) {
		s->in_io = 0;
		sess_kill(s, "cannot send to the upstream (HTTP/2)", 0);
		return;
	}
	while (evbuffer_get_length(s->out) > 0) {
		int n = gw_relay_write(s->fd, s->ssl, s->out);
		if (n < 0) {
			dead = 1;
			break;
		}
		if (n == 0)
			break;
		if (evbuffer_get_length(s->out) < 128 * 1024 && nghttp2_session_want_write(s->ng)) {
			if (nghttp2_session_send(s->ng) != 0) {
				dead = 1;
				break;
			}
		}
	}
	s->in_io = 0;
	if (dead) {
		sess_kill(s, "upstream connection lost (write)", 0);
		return;
	}
	sess_want_write(s, evbuffer_get_length(s->out) > 0);
	if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng) &&
	    evbuffer_get_length(s->out) == 0) {
		sess_kill(s, s->closing ? "upstream sent GOAWAY" : "upstream session over", 0);
		return;
	}
	if (s->streams == NULL && s->w->max_conns == 0) {
		sess_kill(s, "done (this loop keeps no idle connection)", 0);
		return;
	}
	sess_fill(s);
}

/* ---- liveness: PING a silent session ---- */

static void ping_arm(struct gw_h2_client *s, double after)
{
	struct timeval tv;

	if (s->ping_iv <= 0)
		return;
	if (after < 0.01)
		after = 0.01;
	tv.tv_sec = (time_t)after;
	tv.tv_usec = (suseconds_t)((after - (double)tv.tv_sec) * 1e6);
	event_add(&s->ev_ping, &tv);
}

/* Bytes came from the peer: it is there (whatever frame they carry, an
 * answered PING among them). */
static void ping_heard(struct gw_h2_client *s)
{
	s->last_rx = gw_mono_now();
	if (s->ping_out) {
		s->ping_out = 0;
		ping_arm(s, s->ping_iv);
		kick(s);   /* (exchanges may join it again) */
	}
}

static void sess_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2_client *s = arg;
	double now = gw_mono_now();

	GW_CHECK_OBJ(s, H2C_MAGIC);
	(void)fd;
	(void)what;
	if (s->state != S_OPEN)
		return;
	if (s->ping_out) {
		if (now - s->ping_sent < s->ping_to) {
			ping_arm(s, s->ping_to - (now - s->ping_sent));
			return;
		}
		/* the peer vanished without a FIN (a dropped route, a frozen
		 * host): queued exchanges start over on a new connection,
		 * submitted ones fail (their request may have been processed) */
		gw_warn("h2 upstream %s: no answer to PING within %.1f s: connection closed", s->addr_str, s->ping_to);
		sess_kill(s, "upstream did not answer an HTTP/2 PING", 0);
		return;
	}
	if (now - s->last_rx < s->ping_iv) {
		ping_arm(s, s->ping_iv - (now - s->last_rx));
		return;
	}
	if (nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL) != 0) {
		sess_kill(s, "cannot send an HTTP/2 PING", 0);
		return;
	}
	s->ping_out = 1;
	s->ping_sent = now;
	ping_arm(s, s->ping_to);
	sess_io(s);
}

static void open_done(struct gw_h2_client *s)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2C_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2C_HEAD_MAX * 2 },
	};

	event_del(&s->ev_to);
	s->state = S_OPEN;
	nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
	nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, 4 * H2C_WINDOW);
	event_add(&s->ev_rd, NULL);
	s->last_rx = gw_mono_now();
	ping_arm(s, s->ping_iv);
	for (struct gw_h2_client_strm *t = s->streams; t != NULL; t = t->next)
		if (t->vu != NULL)
			t->vu->reused = 0;   /* (a first use, not a shared one: no silent retry) */
	sess_io(s);
}

static void sess_tls(struct gw_h2_client *s)
{
	const unsigned char *alpn = NULL;
	unsigned alen = 0;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		SSL_get0_alpn_selected(s->ssl, &alpn, &alen);
		if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
			sess_kill(s, "upstream does not speak HTTP/2: it did not choose h2 in TLS ALPN", 1);
			return;
		}
		sess_want_write(s, 0);
		event_del(&s->ev_rd);
		open_done(s);
		return;
	}
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		sess_want_write(s, 0);
		event_add(&s->ev_rd, NULL);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		sess_want_write(s, 1);
		return;
	}
	long vr = SSL_get_verify_result(s->ssl);
	ERR_clear_error();
	sess_kill(s, vr != X509_V_OK ? "upstream TLS: certificate verification failed" :
	    "upstream TLS handshake failed", 1);
}

static void connect_next(struct gw_h2_client *s);

static void connected(struct gw_h2_client *s)
{
	gw_stat_add(&s->w->stats->fam[s->key[0] - '0'][GW_FC_UPSTREAM_CONNECTS], 1);
	if (s->ssl != NULL) {
		SSL_set_fd(s->ssl, s->fd);
		SSL_set_connect_state(s->ssl);
		s->state = S_TLS;
		sess_tls(s);
		return;
	}
	sess_want_write(s, 0);
	open_done(s);
}

static void sess_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2_client *s = arg;
	ssize_t n;
	int dead = 0;

	GW_CHECK_OBJ(s, H2C_MAGIC);
	(void)fd;
	(void)what;
	if (s->state == S_TLS) {
		sess_tls(s);
		return;
	}
	n = gw_relay_read(s->fd, s->ssl, s->in, &s->rd_big);
	if (n == 0 || n == -1) {
		sess_kill(s, s->got_settings ? "upstream closed the HTTP/2 connection" :
		    "upstream does not speak HTTP/2: it closed the connection without a SETTINGS frame", 0);
		return;
	}
	if (n > 0 && !s->got_settings && evbuffer_get_length(s->in) >= 5) {
		char b[5];
		evbuffer_copyout(s->in, b, 5);
		if (memcmp(b, "HTTP/", 5) == 0) {
			sess_kill(s, "upstream does not speak HTTP/2: it answered the h2c preface in HTTP/1", 0);
			return;
		}
	}
	if (n > 0)
		ping_heard(s);
	s->dead = &dead;
	sess_io(s);
	if (dead)
		return;
	s->dead = NULL;
	/* records OpenSSL read ahead are invisible to epoll */
	if (s->state == S_OPEN && gw_relay_ssl_more(s->ssl, n))
		event_active(&s->ev_rd, EV_READ, 0);
}

static void sess_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2_client *s = arg;

	GW_CHECK_OBJ(s, H2C_MAGIC);
	(void)fd;
	(void)what;
	if (s->state == S_CONNECT) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			s->last_err = err;
			connect_next(s);
			return;
		}
		connected(s);
		return;
	}
	if (s->state == S_TLS) {
		sess_tls(s);
		return;
	}
	sess_io(s);
}

static void sess_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2_client *s = arg;

	GW_CHECK_OBJ(s, H2C_MAGIC);
	(void)fd;
	(void)what;
	s->last_err = ETIMEDOUT;
	if (s->state == S_CONNECT) {
		connect_next(s);
		return;
	}
	sess_kill(s, "upstream connect timeout", 1);
}

static void sess_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_h2_client *s = arg;

	GW_CHECK_OBJ(s, H2C_MAGIC);
	(void)fd;
	(void)what;
	sess_io(s);
}

static void connect_next(struct gw_h2_client *s)
{
	char msg[160];

	if (s->fd >= 0) {
		event_del(&s->ev_rd);
		event_del(&s->ev_wr);
		s->wr_on = 0;
		close(s->fd);
		s->fd = -1;
	}
	while (s->addr_idx < s->addrs.naddrs) {
		int i = s->addr_idx++;
		const struct sockaddr *sa = (const struct sockaddr *)&s->addrs.addrs[i];
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, r;
		struct timeval tv;

		if (fd < 0) {
			s->last_err = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		addr_str(sa, s->addr_str, sizeof s->addr_str);
		r = connect(fd, sa, s->addrs.lens[i]);
		if (r < 0 && errno != EINPROGRESS) {
			s->last_err = errno;
			close(fd);
			continue;
		}
		s->fd = fd;
		event_assign(&s->ev_rd, s->w->base, fd, EV_READ | EV_PERSIST, sess_rd_cb, s);
		event_assign(&s->ev_wr, s->w->base, fd, EV_WRITE | EV_PERSIST, sess_wr_cb, s);
		tv.tv_sec = (time_t)s->t_connect;
		tv.tv_usec = (suseconds_t)((s->t_connect - (double)tv.tv_sec) * 1e6);
		event_add(&s->ev_to, &tv);   /* connect and TLS handshake */
		if (r == 0) {
			connected(s);
			return;
		}
		sess_want_write(s, 1);
		return;
	}
	snprintf(msg, sizeof msg, "cannot connect: %s", s->last_err == ETIMEDOUT ? "upstream connect timeout" :
	    s->last_err ? strerror(s->last_err) : "no address");
	sess_kill(s, msg, 1);
}

/* The callbacks and options all sessions share, made once for the process
 * (kept for its life). */
static nghttp2_session_callbacks *h2c_cbs;
static nghttp2_option *h2c_opt;
static pthread_once_t h2c_once = PTHREAD_ONCE_INIT;

static void h2c_setup(void)
{
	nghttp2_session_callbacks *c;

	if (nghttp2_session_callbacks_new(&c) != 0)
		return;
	nghttp2_session_callbacks_set_send_callback(c, cb_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(c, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(c, cb_header);
	nghttp2_session_callbacks_set_on_invalid_header_callback(c, cb_invalid_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(c, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, cb_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(c, cb_stream_close);
	if (nghttp2_option_new(&h2c_opt) != 0) {
		nghttp2_session_callbacks_del(c);
		h2c_opt = NULL;
		return;
	}
	/* window updates only once the exchange took the bytes */
	nghttp2_option_set_no_auto_window_update(h2c_opt, 1);
	nghttp2_option_set_max_continuations(h2c_opt, 8);
	h2c_cbs = c;
}

struct gw_h2_client *gw_h2_client__open(struct gw_req *rq)
{
	struct gw_pool *p = rq->w->pool;
	struct gw_h2_client *s;

	pthread_once(&h2c_once, h2c_setup);
	if (h2c_cbs == NULL || h2c_opt == NULL)
		goto oom;
	if (rq->addrs == NULL || rq->addrs->naddrs == 0) {
		gw_upstream_fail(rq, 502, "no address");
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL)
		goto oom;
	s->magic = H2C_MAGIC;
	s->w = rq->w;
	s->pool = p;
	s->fd = -1;
	snprintf(s->key, sizeof s->key, "%s", rq->pool_key);
	s->addrs = *rq->addrs;
	s->t_connect = RTO(rq)->upstream_connect > 0 ? RTO(rq)->upstream_connect : 10;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	event_assign(&s->ev_to, s->w->base, -1, 0, sess_to_cb, s);
	event_assign(&s->ev_kick, s->w->base, -1, 0, sess_kick_cb, s);
	event_assign(&s->ev_ping, s->w->base, -1, 0, sess_ping_cb, s);
	s->ping_iv = rq->up_ping_iv < 0 ? 0 : rq->up_ping_iv > 0 ? rq->up_ping_iv : H2C_PING_IV;
	s->ping_to = rq->up_ping_to > 0 ? rq->up_ping_to : H2C_PING_TO;
	event_assign(&s->ev_rd, s->w->base, -1, 0, sess_rd_cb, s);
	event_assign(&s->ev_wr, s->w->base, -1, 0, sess_wr_cb, s);
	if (s->in == NULL || s->out == NULL || nghttp2_session_client_new3(&s->ng, h2c_cbs, s, h2c_opt, gw_heap_nghttp2_mem()) != 0) {
		s->ng = NULL;
		goto fail;
	}
	if (rq->up_tls > 0) {
		static const unsigned char alpn[] = "\x02h2";
		s->ssl = gw_tls_upstream_ssl(rq->snap->tls, rq->up_tls - 1, rq->up_host);
		if (s->ssl == NULL || SSL_set_alpn_protos(s->ssl, alpn, 3) != 0)
			goto fail;
	}
	s->next = p->h2c;
	if (s->next != NULL)
		s->next->prev = s;
	p->h2c = s;
	s->state = S_CONNECT;   /* gw_h2_client_attach connects once rq is queued */
	return s;
fail:
	if (s->ng != NULL)
		nghttp2_session_del(s->ng);
	if (s->ssl != NULL)
		SSL_free(s->ssl);
	if (s->in != NULL)
		evbuffer_free(s->in);
	if (s->out != NULL)
		evbuffer_free(s->out);
	free(s);
oom:
	gw_upstream_fail(rq, 502, "cannot start an HTTP/2 session to the upstream");
	return NULL;
}

/* ---- the pool's side ---- */

void gw_h2_client_expire(struct gw_pool *p, double limit, int all)
{
	double now = gw_mono_now();
	struct gw_h2_client *s = p->h2c, *n;

	for (; s != NULL; s = n) {
		n = s->next;
		if (all == 2 || (s->streams == NULL && (all || now - s->idle_since > limit))) {
			if (s->state == S_OPEN && s->ng != NULL && all != 2) {
				nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
				    nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR, NULL, 0);
				(void)nghttp2_session_send(s->ng);
				(void)gw_relay_write(s->fd, s->ssl, s->out);
			}
			sess_kill(s, all == 2 ? "the worker stops" : "idle", all == 2 ? 2 : 0);
		}
	}
}

/* ---- adopting a verified session (TLS inspection) ---- */

int gw_h2_client_adopt(struct gw_worker *w, struct upconn *u)
{
	struct gw_pool *p = w->pool;
	struct gw_h2_client *s;
	size_t plen = u->peer.sa.sa_family == AF_INET6 ? sizeof u->peer.in6 : sizeof u->peer.in;
	int dead = 0;

	pthread_once(&h2c_once, h2c_setup);
	if (h2c_cbs == NULL || h2c_opt == NULL || u->fd < 0 || u->ssl == NULL || u->key[0] == '\0' ||
	    (s = calloc(1, sizeof *s)) == NULL)
		return -1;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	if (s->in == NULL || s->out == NULL || nghttp2_session_client_new3(&s->ng, h2c_cbs, s, h2c_opt, gw_heap_nghttp2_mem()) != 0) {
		if (s->in != NULL)
			evbuffer_free(s->in);
		if (s->out != NULL)
			evbuffer_free(s->out);
		free(s);
		return -1;
	}
	s->magic = H2C_MAGIC;
	s->w = w;
	s->pool = p;
	snprintf(s->key, sizeof s->key, "%s", u->key);
	snprintf(s->addr_str, sizeof s->addr_str, "%s", u->addr_str);
	/* its one address: the one the CONNECT vetted (sess_vetted) */
	memcpy(&s->addrs.addrs[0], &u->peer, plen);
	s->addrs.lens[0] = (socklen_t)plen;
	s->addrs.naddrs = 1;
	s->addr_idx = 1;
	s->t_connect = 10;
	s->idle_since = gw_mono_now();
	/* the socket and the TLS session move over; u is freed without them */
	event_del(&u->ev_rd);
	event_del(&u->ev_wr);
	event_del(&u->ev_to);
	s->fd = u->fd;
	s->ssl = u->ssl;
	u->fd = -1;
	u->ssl = NULL;
	gw_upstream__free(u);
	event_assign(&s->ev_to, w->base, -1, 0, sess_to_cb, s);
	event_assign(&s->ev_kick, w->base, -1, 0, sess_kick_cb, s);
	event_assign(&s->ev_ping, w->base, -1, 0, sess_ping_cb, s);
	s->ping_iv = H2C_PING_IV;   /* (no upstream block: the defaults) */
	s->ping_to = H2C_PING_TO;
	event_assign(&s->ev_rd, w->base, s->fd, EV_READ | EV_PERSIST, sess_rd_cb, s);
	event_assign(&s->ev_wr, w->base, s->fd, EV_WRITE | EV_PERSIST, sess_wr_cb, s);
	s->next = p->h2c;
	if (s->next != NULL)
		s->next->prev = s;
	p->h2c = s;
	gw_debug("upstream %s: the inspected origin chose h2: its verified session carries the streams", s->addr_str);
	s->dead = &dead;
	open_done(s);   /* our preface and SETTINGS; the origin's may wait in OpenSSL */
	if (dead)
		return 0;   /* (it ended at once: this loop keeps no idle connection) */
	s->dead = NULL;
	if (s->state == S_OPEN && SSL_has_pending(s->ssl))
		event_active(&s->ev_rd, EV_READ, 0);
	return 0;
}
