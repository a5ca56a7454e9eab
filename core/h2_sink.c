/*
 * core/h2_sink: an HTTP/2 stream as the upstream engine's sink (struct
 * gw_sink, core/upstream.h) and as the source of its request body; also
 * the stream's local answers (error pages, family responses, files).
 *
 * Response heads become HEADERS (lower-case names, no hop-by-hop fields,
 * no reason phrase); the body goes through the stream's buffer to
 * nghttp2's data source, which says DEFERRED while it is empty and is
 * resumed when more comes.  Backpressure per stream: above H2_STREAM_HIWAT
 * queued for a stream the sink says HOLD, and the upstream is resumed once
 * the client's flow-control window took half of it.  The request body is
 * acknowledged (WINDOW_UPDATE, nghttp2_session_consume) only when it moved
 * to the upstream, so the client can have at most its window in flight.
 *
 * Sink calls never run the connection's I/O themselves except on_error,
 * on_local and on_flush (which may end the exchange by contract): the
 * others, and on_flush of a small answer that came whole, only mark the
 * connection (gw_h2__kick), so the small answers of every stream completed
 * in one loop pass leave in one write.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/http1.h"
#include "core/http1_out.h"
#include "core/httpdate.h"
#include "core/log.h"
#include "core/relay.h"
#include "core/snapshot.h"
#include "core/status.h"
#include "core/upstream.h"

#include "core/h2.h"
#include "core/h2_int.h"
#include "core/strlit.h"

/* ---- response heads as nghttp2 name/value lists ---- */

struct nvlist {
	struct gw_req *rq;
	nghttp2_nv *v;
	size_t n, cap;
};

/* Add name: value (name lower-cased into the request's arena). */
static void nv_add(struct nvlist *l, const char *name, size_t nl, const char *value, size_t vl)
{
	char *lc;

	if (l->v == NULL || l->n >= l->cap)
		return;   /* (sized in advance; NULL: out of memory, rq->oom) */
	lc = gw_req_alloc(l->rq, nl + 1);
	if (lc == NULL)
		return;
	for (size_t i = 0; i < nl; i++)
		lc[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	lc[nl] = '\0';
	l->v[l->n++] = (nghttp2_nv){ (uint8_t *)lc, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE };
}

static void nv_start(struct nvlist *l, struct gw_req *rq, size_t more, int status)
{
	char *st;
	size_t n = 4 + more;

	for (const struct gw_hdr_edit *e = rq->resp_edits; e != NULL; e = e->next)
		n++;
	l->rq = rq;
	l->n = 0;
	l->cap = n;
	l->v = gw_req_alloc(rq, n * sizeof *l->v);
	st = gw_req_alloc(rq, 4);
	if (st != NULL) {
		status = status < 100 || status > 999 ? 500 : status;
		st[0] = (char)('0' + status / 100);
		st[1] = (char)('0' + status / 10 % 10);
		st[2] = (char)('0' + status % 10);
		st[3] = '\0';
		nv_add(l, ":status", 7, st, 3);
	}
}

/* The family's added response fields, in the order they were added
 * (framing and connection fields are the core's, as in gw_h1out_edits). */
static void nv_edits(struct nvlist *l)
{
	const struct gw_hdr_edit *stack[64];
	int n = 0;

	for (const struct gw_hdr_edit *e = l->rq->resp_edits; e != NULL && n < 64; e = e->next) {
		struct gw_hdr x = { .name = e->name, .name_len = (uint32_t)e->nlen };
		if (!e->del && !gw_h1out_framing(e->name, e->nlen) && !gw_h1out_hop_by_hop(&x))
			stack[n++] = e;
	}
	while (n-- > 0)
		nv_add(l, stack[n]->name, stack[n]->nlen, stack[n]->value, stack[n]->vlen);
}

static void nv_date(struct nvlist *l)
{
	const char *date;
	size_t dl = gw_httpdate_now(&date);
	char *d = gw_req_strndup(l->rq, date, dl);

	if (d != NULL)
		nv_add(l, "date", 4, d, dl);
}

static void nv_via(struct nvlist *l, int minor)
{
	const char *via = l->rq->snap->conf->global.via_name;
	char *v;
	size_t n;

	if (l->rq->no_via || via == NULL || via[0] == '\0')
		return;
	n = strlen(via);
	if ((v = gw_req_alloc(l->rq, n + 4)) == NULL)
		return;
	/* "1.<minor> <name>", not snprintf: every proxied answer has one */
	v[0] = '1';
	v[1] = '.';
	v[2] = (char)('0' + (minor >= 0 && minor <= 9 ? minor : 1));
	v[3] = ' ';
	memcpy(v + 4, via, n);
	nv_add(l, "via", 3, v, n + 4);
}

static int submit(struct gw_h2s *s, struct nvlist *l, int has_body)
{
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = gw_h2__data_read };

	if (l->rq->oom || l->v == NULL)
		return -1;
	if (has_body && s->out == NULL && (s->out = evbuffer_new()) == NULL)
		return -1;
	if (nghttp2_submit_response(s->h->ng, s->id, l->v, l->n, has_body ? &prd : NULL) != 0)
		return -1;
	s->resp_started = 1;
	l->rq->resp_head_done = 1;
	if (!has_body)
		s->out_eof = 1;
	return 0;
}

/* ---- local answers ---- */

void gw_h2__send_local(struct gw_req *rq)
{
	struct gw_h2s *s = rq->h2s;
	int head_only = rq->head.method == GW_M_HEAD;
	int bodyless = rq->status == 204 || rq->status == 304 || (rq->status >= 100 && rq->status < 200);
	struct nvlist l;
	char *len;

	if (s->closed || s->resp_started)
		return;
	if (rq->oom) {
		gw_h2_dispatch(rq);   /* (answers 503 once, then resets) */
		return;
	}
	s->discard = 1;   /* a request body not read by now is not wanted */
	nv_start(&l, rq, 6, rq->status);
	if (!gw_h1out_edit_has(rq->resp_edits, "date"))
		nv_date(&l);
	if (!bodyless) {
		if (rq->content_type != NULL)
			nv_add(&l, "content-type", 12, rq->content_type, strlen(rq->content_type));
		if ((len = gw_req_alloc(rq, 24)) != NULL) {
			snprintf(len, 24, "%llu", (unsigned long long)rq->file_len);
			nv_add(&l, "content-length", 14, len, strlen(len));
		}
	}
	if (rq->status >= 400 && rq->body_ref == NULL && !gw_h1out_edit_has(rq->resp_edits, "cache-control"))
		nv_add(&l, "cache-control", 13, "no-store", 8);   /* our own error pages */
	if (rq->body_ref != NULL)
		nv_via(&l, 1);   /* a stored upstream response: it passed through us */
	nv_edits(&l);
	if (!head_only && !bodyless && rq->file_len > 0) {
		int r = -1;
		if (s->out == NULL && (s->out = evbuffer_new()) == NULL) {
			rq->oom = 1;
		} else if (rq->dec == DEC_FILE) {
			struct evbuffer_file_segment *seg = evbuffer_file_segment_new(rq->file_fd,
			    (ev_off_t)rq->file_off, (ev_off_t)rq->file_len,
			    EVBUF_FS_CLOSE_ON_FREE | EVBUF_FS_DISABLE_SENDFILE);
			if (seg != NULL && (r = evbuffer_add_file_segment(s->out, seg, 0, -1)) == 0)
				rq->file_fd = -1;   /* owned by the segment now */
			if (seg != NULL)
				evbuffer_file_segment_free(seg);
		} else if (rq->body_ref != NULL) {
			if ((r = evbuffer_add_reference(s->out, rq->body_ref, rq->file_len, rq->body_cleanup,
			    rq->body_cleanup_arg)) == 0)
				rq->body_cleanup = NULL;   /* the buffer calls it once sent */
		} else {
			r = evbuffer_add(s->out, rq->body, rq->file_len);
		}
		if (r != 0)
			rq->oom = 1;
	}
	s->out_eof = 1;
	if (submit(s, &l, s->out != NULL && evbuffer_get_length(s->out) > 0) < 0) {
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "out of memory");
	}
	gw_h2__io(s->h);
}

void gw_h2__respond_error(struct gw_req *rq, int status, const char *reason)
{
	rq->resp_edits = NULL;
	gw_req_respond(rq, status, NULL, NULL, 0, NULL);
	if (reason != NULL)
		rq->reason = reason;
	gw_h2__send_local(rq);
}

/* ---- the response body: nghttp2's data source ---- */

/* The h2 upstream's response trailers (rq->up_trailers, core/h2_client.c)
 * as a HEADERS frame with END_STREAM after the last DATA.  0 when
 * submitted. */
int gw_h2__trailers(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;
	nghttp2_nv nv[GW_TRAILERS_MAX];
	size_t n = 0;

	for (int i = 0; i < rq->up_trailers_n && n < GW_TRAILERS_MAX; i++) {
		const struct gw_hdr *x = &rq->up_trailers[i];
		nv[n++] = (nghttp2_nv){ (uint8_t *)x->name, (uint8_t *)x->value, x->name_len, x->value_len,
			NGHTTP2_NV_FLAG_NONE };
	}
	return nghttp2_submit_trailer(s->h->ng, s->id, nv, n) == 0 ? 0 : -1;
}

/* The body is not copied into nghttp2's buffer: the data source only says
 * how much goes into the next DATA frame (NO_COPY), and gw_h2__send_data
 * copies those bytes once, from the stream's buffer to the connection's
 * output right behind the frame header. */
ssize_t gw_h2__data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct gw_h2s *s = src->ptr;
	size_t have = s->out != NULL ? evbuffer_get_length(s->out) : 0, n = have < len ? have : len;

	(void)ng;
	(void)id;
	(void)buf;
	(void)arg;
	if (n == 0 && !s->out_eof) {
		s->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;   /* resumed by on_body */
	}
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (n == have && s->out_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->rq != NULL && s->rq->up_trailers_n > 0 && gw_h2__trailers(s) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;   /* the trailers end it */
	}
	return (ssize_t)n;
}

int gw_h2__send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
    nghttp2_data_source *src, void *arg)
{
	struct gw_h2 *h = arg;
	struct gw_h2s *s = src->ptr;
	struct evbuffer_iovec v;

	(void)ng;
	(void)frame;   /* (no padding is ever chosen: padlen is 0) */
	/* one contiguous piece with its header (a header in a chain of its
	 * own would become a TLS record of its own) */
	if (evbuffer_reserve_space(h->out, (ev_ssize_t)(9 + len), &v, 1) < 1 || v.iov_len < 9 + len)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	memcpy(v.iov_base, framehd, 9);
	if (len > 0 && evbuffer_remove(s->out, (char *)v.iov_base + 9, len) != (int)len)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	v.iov_len = 9 + len;
	if (evbuffer_commit_space(h->out, &v, 1) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (s->rq != NULL)
		s->rq->bytes_out += len;
	if (s->to_kind == STO_SEND)
		s->to_kind = STO_NONE;   /* progress: the send timer starts again */
	if (s->up_held)
		h->again = 1;            /* (gw_h2__resume_held, after the session call) */
	return 0;
}

void gw_h2__resume_held(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;

	if (!s->up_held || rq == NULL || (s->out != NULL && evbuffer_get_length(s->out) >= H2_STREAM_HIWAT / 2))
		return;
	s->up_held = 0;
	if (rq->up != NULL)
		gw_upstream_resume(rq);
}

/* ---- the request body ---- */

/* One field of the client's request trailers (they may come before the
 * stream's request exists): kept on the stream as name NUL value NUL for an
 * h2 upstream (gw_h2_req_trailers); an HTTP/1 upstream gets none.  Past
 * GW_TRAILERS_MAX fields or max_header_bytes they are dropped, not the
 * stream. */
int gw_h2__req_trailer(struct gw_h2s *s, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
	size_t max = (size_t)s->snap->conf->global.limits.max_header_bytes;
	int r = 0;

	if (s->trail == NULL && (s->trail = evbuffer_new()) == NULL)
		return 0;
	if (evbuffer_get_length(s->trail) + nl + vl + 2 > max || s->ntrail >= GW_TRAILERS_MAX)
		return 0;
	r |= evbuffer_add(s->trail, name, nl);
	r |= evbuffer_add(s->trail, "", 1);
	r |= evbuffer_add(s->trail, value, vl);
	r |= evbuffer_add(s->trail, "", 1);
	if (r == 0)
		s->ntrail++;
	return 0;
}

int gw_h2_req_trailers(struct gw_req *rq, struct gw_hdr *out, int max)
{
	struct gw_h2s *s = rq->h2s;
	size_t len;
	const char *p, *end;
	int n = 0;

	if (s == NULL || s->trail == NULL || (len = evbuffer_get_length(s->trail)) == 0 ||
	    (p = (const char *)evbuffer_pullup(s->trail, -1)) == NULL)
		return 0;
	end = p + len;
	while (p < end && n < max) {
		size_t nl = strlen(p), vl = strlen(p + nl + 1);
		out[n].name = p;
		out[n].name_len = (uint32_t)nl;
		out[n].value = p + nl + 1;
		out[n].value_len = (uint32_t)vl;
		n++;
		p += nl + vl + 2;
	}
	return n;
}

int gw_h2_req_ended(const struct gw_req *rq)
{
	return rq->h2s == NULL || rq->h2s->in_done;
}

/* gw_req_read_body: collect the body into rq->bodybuf, then ask the family. */
static void read_body(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;
	size_t before = s->in != NULL ? evbuffer_get_length(s->in) : 0, len;
	const char *data;

	if (before > 0) {
		(void)gw_relay_xfer_pump(&rq->reqx, s->in, rq->bodybuf);   /* (raw bytes: cannot fail) */
		nghttp2_session_consume(s->h->ng, s->id, before - evbuffer_get_length(s->in));
		rq->bytes_in += before - evbuffer_get_length(s->in);
		gw_h2__kick(s->h);
		if (s->to_kind == STO_BODY)
			s->to_kind = STO_NONE;
	}
	if (!rq->reqx.done && s->in_done && (s->in == NULL || evbuffer_get_length(s->in) == 0))
		rq->reqx.done = 1;   /* (a length short of content-length: nghttp2 reset it) */
	len = evbuffer_get_length(rq->bodybuf);
	if (!rq->reqx.done && len < rq->body_max)
		return;
	s->reading_body = 0;
	rq->body_buffered = 1;
	rq->body_complete = rq->reqx.done && (rq->body_max == 0 || len <= rq->body_max);
	data = (const char *)evbuffer_pullup(rq->bodybuf, -1);
	rq->dec = DEC_NONE;
	rq->proto->on_body(rq, data ? data : "", len < rq->body_max || rq->body_max == 0 ? len :
	    (size_t)rq->body_max, rq->body_complete, rq->side);
	gw_h2_dispatch(rq);
}

void gw_h2__pump_body(struct gw_h2s *s)
{
	struct gw_req *rq = s->rq;
	struct upconn *u;
	size_t before, moved;

	if (rq == NULL || rq->reqx.done || s->discard)
		return;
	if (s->reading_body) {
		read_body(s);
		return;
	}
	u = rq->up;
	if (u == NULL || u->connecting || u->tls_hs || !s->up_ready)
		return;
	if (evbuffer_get_length(u->out) >= HIWAT) {
		s->in_paused = 1;
		rq->body_t0 = 0;   /* the upstream is slow, not the client: a new rate window */
		return;
	}
	before = s->in != NULL ? evbuffer_get_length(s->in) : 0;
	if (before > 0) {
		(void)gw_relay_xfer_pump(&rq->reqx, s->in, u->out);   /* (raw bytes: cannot fail) */
		moved = before - evbuffer_get_length(s->in);
		if (moved > 0) {
			/* the upstream has it: the client may send as much again */
			nghttp2_session_consume(s->h->ng, s->id, moved);
			rq->bytes_in += moved;
			gw_h2__kick(s->h);
			if (s->to_kind == STO_BODY)
				s->to_kind = STO_NONE;
		}
	}
	if (rq->max_body > 0 && rq->reqx.moved > rq->max_body) {
		if (!s->resp_started) {
			gw_upstream_detach(rq);
			gw_h2__respond_error(rq, 413, "body over limit");
		} else {
			gw_h2__reset(s, NGHTTP2_CANCEL, "body over limit");
		}
		return;
	}
	if (!rq->reqx.done && s->in_done && (s->in == NULL || evbuffer_get_length(s->in) == 0)) {
		if (rq->reqx.kind != GW_BODY_CLOSE) {
			/* shorter than its content-length: nghttp2 resets such a
			 * stream first; never let the upstream wait for the rest */
			gw_h2__reset(s, NGHTTP2_PROTOCOL_ERROR, "request body shorter than its content-length");
			return;
		}
		rq->reqx.done = 1;
		if (rq->reqx.out_chunked)
			evbuffer_add(u->out, GW_STRLIT("0\r\n\r\n"));
	}
	if (rq->reqx.done && !rq->resp_head_done)
		set_timer(&u->ev_to, RTO(rq)->upstream_response);
	if (evbuffer_get_length(u->out) >= HIWAT) {
		s->in_paused = 1;
		rq->body_t0 = 0;
	}
	gw_upstream__write(u);
}

/* ---- the sink ---- */

static int s_on_interim(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_h2s *s = rq->sink_arg;
	struct nvlist l;

	nv_start(&l, rq, r->nhdrs, r->status);
	for (size_t i = 0; i < r->nhdrs; i++)
		if (!gw_h1out_hop_by_hop(&r->hdrs[i]) && !gw_h1out_conn_listed(r, &r->hdrs[i]))
			nv_add(&l, r->hdrs[i].name, r->hdrs[i].name_len, r->hdrs[i].value, r->hdrs[i].value_len);
	if (!rq->oom && l.v != NULL)
		(void)nghttp2_submit_headers(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NULL, l.v, l.n, NULL);
	return GW_SINK_GO;
}

static int s_on_head(struct gw_req *rq, const struct gw_http_head *r)
{
	struct gw_h2s *s = rq->sink_arg;
	struct nvlist l;

	if (gw_upstream_head_hook(rq, r))
		return GW_SINK_LOCAL;
	rq->respx.out_chunked = 0;   /* DATA frames carry the body as it is */
	nv_start(&l, rq, r->nhdrs + 2, r->status);
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct gw_hdr *x = &r->hdrs[i];
		if (gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(r, x) || gw_h1out_edit_deleted(rq->resp_edits, x))
			continue;
		if ((r->status == 204 || rq->filtering) && gw_h1out_hdr_is(x, "content-length"))
			continue;   /* never on a 204; a filter's length is unknown */
		nv_add(&l, x->name, x->name_len, x->value, x->value_len);
	}
	if (!(r->flags & GW_HF_HAS_DATE))
		nv_date(&l);
	nv_via(&l, r->version_minor);
	nv_edits(&l);
	if (submit(s, &l, !rq->respx.done || rq->filtering) < 0) {
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "out of memory");
		return GW_SINK_GONE;
	}
	return GW_SINK_GO;
}

static int s_on_body(struct gw_req *rq, struct evbuffer *src, int eof)
{
	struct gw_h2s *s = rq->sink_arg;
	struct xfer *x = GW_SINK_XFER(rq);

	if (gw_relay_xfer_pump(x, src, s->out) < 0)
		return GW_SINK_FAIL;
	if (!x->done && eof) {
		if (x->kind != GW_BODY_CLOSE) {
			gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "upstream closed mid-body");
			return GW_SINK_GONE;
		}
		x->done = 1;
	}
	if (x->done)
		s->out_eof = 1;
	if (s->deferred && (evbuffer_get_length(s->out) > 0 || s->out_eof)) {
		s->deferred = 0;
		nghttp2_session_resume_data(s->h->ng, s->id);
	}
	if (!x->done && evbuffer_get_length(s->out) >= H2_STREAM_HIWAT) {
		s->up_held = 1;   /* gw_h2__resume_held once the client took half */
		return GW_SINK_HOLD;
	}
	return GW_SINK_GO;
}

static void s_on_flush(struct gw_req *rq)
{
	struct gw_h2s *s = rq->sink_arg;

	/* the whole response came: the upstream connection can serve
	 * others while the client drains the rest */
	if (rq->up != NULL && gw_upstream_complete(rq) && rq->reqx.done)
		gw_upstream_release(rq);
	/* a small answer that came whole is written once the loop has run
	 * every upstream that is ready: the answers of many streams share
	 * TLS records and one write instead of one each (the contract
	 * allows, does not require, ending the exchange here).  A body
	 * still coming, or one already flowing, is written at once. */
	if (rq->respx.done && rq->bytes_out == 0 && (s->out == NULL || evbuffer_get_length(s->out) <= H2_SMALL_ANSWER))
		gw_h2__kick(s->h);
	else
		gw_h2__io(s->h);
}

static void s_on_error(struct gw_req *rq, int status, const char *reason)
{
	struct gw_h2s *s = rq->sink_arg;
	struct gw_h2 *h = s->h;   /* the answer may end (free) s: the connection stays */

	if (reason == NULL)
		status = 503, reason = "out of memory";
	if (s->resp_started) {
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, reason);
		gw_h2__io(h);
	} else {
		/* (it runs the connection's I/O itself: the answer may go out
		 * whole and the stream be freed, so s is not touched after) */
		gw_h2__respond_error(rq, status, reason);
	}
}

static int s_on_ready(struct gw_req *rq)
{
	struct gw_h2s *s = rq->sink_arg;
	struct upconn *u = rq->up;

	s->up_ready = 1;
	gw_h2__pump_body(s);
	if (s->rq != rq || rq->up != u || s->discard)
		return GW_SINK_GONE;
	gw_h2__stream_timer(s);
	return GW_SINK_GO;
}

static void s_on_sent(struct gw_req *rq, struct upconn *u)
{
	struct gw_h2s *s = rq->sink_arg;
	size_t left = evbuffer_get_length(u->out);

	if (!rq->reqx.done) {
		/* sending the request body: a stalled upstream is timed out */
		if (left > 0)
			set_timer(&u->ev_to, RTO(rq)->upstream_response);
		else
			event_del(&u->ev_to);
	}
	gw_upstream__arm_write(u, left);
	if (left < HIWAT && s->in_paused) {
		s->in_paused = 0;
		gw_h2__pump_body(s);
	}
}

static void s_on_dns(struct gw_req *rq, int waiting)
{
	struct gw_h2s *s = rq->sink_arg;

	/* evdns's own timeout does not cover a query waiting in its queue:
	 * upstream_connect bounds the resolution (as for HTTP/1) */
	if (waiting)
		gw_h2__stream_arm(s, STO_DNS, RTO(rq)->upstream_connect);
	else if (s->to_kind == STO_DNS)
		gw_h2__stream_arm(s, STO_NONE, 0);
}

const struct gw_sink gw_h2_sink = {
	.on_interim = s_on_interim,
	.on_head = s_on_head,
	.on_body = s_on_body,
	.on_flush = s_on_flush,
	.on_error = s_on_error,
	.on_local = gw_h2__send_local,
	.on_ready = s_on_ready,
	.on_sent = s_on_sent,
	.on_dns = s_on_dns,
};
