/*
 * forward/icap_answer: what an ICAP service answered, taken in (see icap.h):
 * the OPTIONS it offers, a RESPMOD or REQMOD verdict (204, a 200's
 * encapsulated head, a threat named in its header fields) and a 200's
 * de-chunked body relayed as it arrives.  forward/icap.c reads the bytes
 * (tx_rd) and runs the exchange; these functions decide what the answer
 * means for it.  Moved out of icap.c unchanged (only the exported names
 * gained their prefix).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/proto.h"
#include "forward/icap_int.h"
#include "forward/icap_msg.h"

static void set_istag(struct icap_svc *s, const char *v, size_t n)
{
	if (n >= sizeof s->istag)
		n = sizeof s->istag - 1;
	if (strlen(s->istag) == n && memcmp(s->istag, v, n) == 0)
		return;
	atomic_fetch_add(&s->istag_gen, 1);
	memcpy(s->istag, v, n);
	s->istag[n] = '\0';
	atomic_fetch_add(&s->istag_gen, 1);
}

/* The OPTIONS answer: what this worker knows of the service from now. */
int fwd_icap_answer_options(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h)
{
	struct icap_wsvc *ws = tx->ws;
	const char *v;
	size_t n;
	long ttl, mc;

	if (h->status != 200)
		return -1;
	v = fwd_icap_msg_get(h, "Methods", &n);
	if (v == NULL || !gw_http1_list_has(v, n, tx->reqmod ? "REQMOD" : "RESPMOD"))
		return -2;
	ws->preview = fwd_icap_msg_num(h, "Preview", -1);
	ws->allow204 = (v = fwd_icap_msg_get(h, "Allow", &n)) != NULL && gw_http1_list_has(v, n, "204");
	ttl = fwd_icap_msg_num(h, "Options-TTL", 3600);
	mc = fwd_icap_msg_num(h, "Max-Connections", (long)DEFAULT_MAXCONN);
	ws->max_conns = mc > 0 ? (unsigned)mc : 1;
	ws->opts_until = gw_mono_now() + (double)(ttl > 0 ? ttl : 1);
	ws->ignore[0] = ws->complete[0] = '\0';
	if ((v = fwd_icap_msg_get(h, "Transfer-Ignore", &n)) != NULL && n < sizeof ws->ignore)
		memcpy(ws->ignore, v, n), ws->ignore[n] = '\0';
	if ((v = fwd_icap_msg_get(h, "Transfer-Complete", &n)) != NULL && n < sizeof ws->complete)
		memcpy(ws->complete, v, n), ws->complete[n] = '\0';
	if ((v = fwd_icap_msg_get(h, "ISTag", &n)) != NULL)
		set_istag(tx->s, v, n);
	ws->have_opts = 1;
	return 0;
}

/* Does the rewritten request go where the original went?  Method and
 * request target byte for byte, and (origin-form: the target's authority
 * is the Host field) the Host field case-blind.  The policy decided for
 * that target only. */
static int same_target(const struct gw_http_head *o, const struct gw_http_head *q)
{
	if (o->method_len != q->method_len || memcmp(o->method_str, q->method_str, o->method_len) != 0 ||
	    o->target_len != q->target_len || memcmp(o->target, q->target, o->target_len) != 0)
		return 0;
	if (o->target_form == GW_TF_ABSOLUTE)
		return 1;   /* (the core sends Host from the target) */
	return (o->host_hdr == NULL) == (q->host_hdr == NULL) && (o->host_hdr == NULL ||
	    (o->host_hdr_len == q->host_hdr_len && strncasecmp(o->host_hdr, q->host_hdr, o->host_hdr_len) == 0));
}

/* A REQMOD 200 read whole: its response goes to the client (a block
 * page), or its request goes on in place of the client's: the service's
 * header fields and body (gw_req_rewrite), to the target the policy
 * allowed; a request the service sent elsewhere is not sent (502). */
static void reqmod_answered(struct fwd_icap_tx *tx)
{
	size_t n = evbuffer_get_length(tx->reply);
	const char *body;

	if (!tx->req_reply) {
		fwd_icap_decide_req(tx, FWD_ICAP_RESPOND);
		return;
	}
	if (!same_target(gw_req_head(tx->rq), &tx->qh)) {
		gw_warn("forward: %s: ICAP service %s changed the request's method or target to %.*s %.*s: "
		    "not sent", gw_req_id(tx->rq), tx->s->c->name, (int)tx->qh.method_len, tx->qh.method_str,
		    (int)(tx->qh.target_len < 200 ? tx->qh.target_len : 200), tx->qh.target);
		gw_req_set_reason(tx->rq, "ICAP: the service changed the request's target (not sent)");
		fwd_icap_local_page(tx, 502, "Upload not sent", "The content scanner sent this request to another "
		    "target; the gateway only sends a request where its policy allowed it.");
		return;
	}
	body = n > 0 ? (const char *)evbuffer_pullup(tx->reply, -1) : "";
	if (body == NULL || gw_req_rewrite(tx->rq, tx->qh.hdrs, tx->qh.nhdrs, body, n) < 0) {
		gw_warn("forward: %s: ICAP service %s: the rewritten request (%zu body bytes) cannot be sent",
		    gw_req_id(tx->rq), tx->s->c->name, n);
		gw_req_set_reason(tx->rq, "ICAP: the rewritten request cannot be sent (body limit or memory)");
		fwd_icap_local_page(tx, 502, "Upload not sent", "The content scanner changed this upload into one the "
		    "gateway cannot send.");
		return;
	}
	evbuffer_drain(tx->reply, n);   /* (the core has its copy) */
	fwd_icap_decide_req(tx, FWD_ICAP_PROXY);
}

/* How long a rewritten request body may be: max_body_bytes, and at most
 * REWRITE_GROWTH more than the upload.  The upload's scan memory was
 * reserved for one copy while this exchange held two (the core's and
 * orig, drained when the 200 came): the rewritten body takes orig's place
 * and so the exchange holds what it held before, plus the growth. */
static uint64_t rewrite_max(const struct fwd_icap_tx *tx)
{
	uint64_t m = tx->s->c->max_body_bytes, g = tx->total + REWRITE_GROWTH;

	return g < m ? g : m;
}

/* A REQMOD 200's rewritten body passed rewrite_max(): not sent, and not
 * bypassed either (the service answered; its answer is not ours to drop). */
void fwd_icap_answer_oversize(struct fwd_icap_tx *tx)
{
	gw_warn("forward: %s: ICAP service %s rewrote the upload (%llu bytes) over %llu bytes (max_body_bytes, "
	    "or 64 KiB more than the upload): not sent", gw_req_id(tx->rq), tx->s->c->name,
	    (unsigned long long)tx->total, (unsigned long long)rewrite_max(tx));
	bump(tx->s, FWD_ICAP_C_OVERSIZE);
	fwd_icap_conn_close(tx);
	fwd_icap_wake_waiter(tx->ws);
	event_del(&tx->ev_to);
	tx->resp_done = 1;
	tx->replying = 0;
	gw_req_set_reason(tx->rq, "ICAP: the rewritten upload is too large (not sent)");
	fwd_icap_local_page(tx, 502, "Upload not sent", "The content scanner changed this upload into one larger "
	    "than the gateway holds for scanning.");
}

/* Relay what there is of a 200's encapsulated body.  0 fine, -1 framing
 * (or a page over REPLY_MAX), -2 a rewritten request body over
 * rewrite_max(). */
int fwd_icap_answer_relay(struct fwd_icap_tx *tx)
{
	for (;;) {
		struct evbuffer_iovec v;
		size_t off = 0, dl = 0;
		ssize_t used;

		/* one segment at a time (the decoder keeps partial framing):
		 * the data spans move out of tx->in, no pullup, no copy */
		if (tx->ck.done || evbuffer_peek(tx->in, -1, NULL, &v, 1) != 1 || v.iov_len == 0)
			break;
		used = gw_chunked_decode(&tx->ck, v.iov_base, v.iov_len, &off, &dl);
		if (used < 0)
			return -1;
		if (used == 0)
			break;
		evbuffer_drain(tx->in, off);
		if (dl > 0 && tx->reqmod) {
			if (tx->req_reply && evbuffer_get_length(tx->reply) + dl > rewrite_max(tx))
				return -2;
			if (!tx->req_reply && evbuffer_get_length(tx->reply) + dl > REPLY_MAX)
				return -1;
			evbuffer_remove_buffer(tx->in, tx->reply, dl);
		} else if (dl > 0) {
			fwd_icap_out_emit_buffer(tx, tx->in, dl);
		}
		evbuffer_drain(tx->in, (size_t)used - off - dl);
	}
	if (tx->ck.done && tx->reqmod)
		reqmod_answered(tx);
	else if (tx->ck.done) {
		tx->emitted_last = 1;
		fwd_icap_out_emit(tx, "", 0, 1);
	}
	return 0;
}

/* The access log's reason=: "ICAP <service>: <what>". */
static void log_verdict(struct fwd_icap_tx *tx, const char *what)
{
	const char *pre = tx->prev != NULL ? tx->prev->note : NULL;   /* (a chain: each says) */
	size_t n = (pre != NULL ? strlen(pre) + 2 : 0) + strlen(tx->s->c->name) + strlen(what) + 8;
	char *note = gw_req_alloc(tx->rq, n);

	if (note != NULL) {
		snprintf(note, n, "%s%sICAP %s: %s", pre != NULL ? pre : "", pre != NULL ? "; " : "",
		    tx->s->c->name, what);
		tx->note = note;
		gw_req_set_reason(tx->rq, note);
	}
}

/* A 200 naming what the service found: counted, logged (the Threat). */
static int note_threat(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h)
{
	const char *t;
	size_t tn;

	if ((t = fwd_icap_msg_get(h, "X-Infection-Found", &tn)) != NULL ||
	    fwd_icap_msg_num(h, "X-Violations-Found", 0) > 0) {
		const char *th = t != NULL ? memmem(t, tn, "Threat=", 7) : NULL;
		char *note;
		bump(tx->s, FWD_ICAP_C_INFECTED);
		if (th != NULL) {
			size_t left = (size_t)(t + tn - th - 7), k = 0, cap;
			const char *semi = memchr(th + 7, ';', left);
			k = semi != NULL ? (size_t)(semi - th - 7) : left;
			if (k > 128)
				k = 128;
			cap = k + strlen(tx->s->c->name) + 16;
			note = gw_req_alloc(tx->rq, cap);
			if (note != NULL) {
				int at = snprintf(note, cap, "ICAP %s: ", tx->s->c->name);
				for (size_t i = 0; i < k && at >= 0 && (size_t)at + 1 < cap; i++) {
					unsigned char ch = (unsigned char)th[7 + i];
					note[at++] = ch > ' ' && ch < 127 && ch != '"' && ch != '\\' ? (char)ch : '_';
				}
				note[at] = '\0';
				gw_req_set_reason(tx->rq, note);
			}
		} else {
			gw_req_set_reason(tx->rq, "ICAP: violation found");
		}
		gw_warn("forward: %s: ICAP service %s found %.*s", gw_req_id(tx->rq), tx->s->c->name,
		    t != NULL ? (int)tn : 10, t != NULL ? t : "violations");
		return 1;
	}
	bump(tx->s, FWD_ICAP_C_MODIFIED);
	log_verdict(tx, "modified (200)");
	return 0;
}


/* A REQMOD 200: a response for the client (res-hdr) or the request
 * (req-hdr), each with a body or null-body.  As took_answer. */
static int took_reqmod_200(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h, const char *v, size_t n)
{
	long rh = fwd_icap_msg_encap(v, n, "res-hdr"), qh = fwd_icap_msg_encap(v, n, "req-hdr");
	long rb, nb = fwd_icap_msg_encap(v, n, "null-body");
	struct gw_hdr hdrs[64];
	struct gw_http_head r;
	struct gw_http_limits lim = { ICAP_HEAD_MAX, 64, ICAP_HEAD_MAX };
	const char *p;

	tx->req_reply = rh < 0 && qh == 0;
	rb = fwd_icap_msg_encap(v, n, tx->req_reply ? "req-body" : "res-body");
	if ((rh != 0 && qh != 0) || (rh == 0 && qh >= 0) || (rb < 0) == (nb < 0))
		return -1;
	if (rb < 0)
		rb = nb;
	if (rb > ICAP_HEAD_MAX || rb < 12)
		return -1;
	if (evbuffer_get_length(tx->in) < h->len + (size_t)rb)
		return 0;
	tx->verdict = 200;
	p = (const char *)evbuffer_pullup(tx->in, (ev_ssize_t)(h->len + (size_t)rb)) + h->len;
	if (!tx->req_reply) {
		const struct gw_hdr *ct;
		memset(&r, 0, sizeof r);
		r.hdrs = hdrs;
		r.hdrs_cap = 64;
		if (gw_http1_parse_response(p, (size_t)rb, &lim, GW_M_GET, &r) != (ssize_t)rb)
			return -1;
		tx->page_status = r.status;
		ct = gw_http1_find(&r, "content-type");
		snprintf(tx->page_type, sizeof tx->page_type, "%.*s", ct ? (int)ct->value_len : 9,
		    ct ? ct->value : "text/html");
		note_threat(tx, h);
	} else {
		/* the request as the service wants it sent: its fields are
		 * copied by gw_req_rewrite() once the body is whole */
		char *q = gw_req_alloc(tx->rq, (size_t)rb);
		struct gw_http_limits ql = { ICAP_HEAD_MAX, QHDRS_MAX, ICAP_HEAD_MAX };
		size_t ql_len;
		if (q == NULL)
			return -1;
		ql_len = fwd_icap_msg_strip_framing(q, p, (size_t)rb);
		memset(&tx->qh, 0, sizeof tx->qh);
		tx->qh.hdrs = gw_req_alloc(tx->rq, QHDRS_MAX * sizeof *tx->qh.hdrs);
		tx->qh.hdrs_cap = QHDRS_MAX;
		if (tx->qh.hdrs == NULL || gw_http1_parse_request(q, ql_len, &ql, &tx->qh) != (ssize_t)ql_len)
			return -1;
		bump(tx->s, FWD_ICAP_C_MODIFIED);
		log_verdict(tx, "request returned (200)");
	}
	evbuffer_drain(tx->in, h->len + (size_t)rb);
	tx->discard = 1;
	/* the core still holds the client's body: our copy of what went out
	 * is not needed any more (the answer's body takes its place) */
	evbuffer_drain(tx->orig, (size_t)(tx->sent - (tx->total - evbuffer_get_length(tx->orig))));
	if (nb >= 0 && rb == nb) {
		tx->resp_done = 1;
		reqmod_answered(tx);
	} else {
		tx->replying = 1;
		gw_chunked_init(&tx->ck);
	}
	return 1;
}

/* A final answer (204 or 200) was read; returns 1 to resume, -1 failed (resume). */
int fwd_icap_answer_took(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h)
{
	const char *v;
	size_t n;
	long rh, rb, nb;

	if ((v = fwd_icap_msg_get(h, "ISTag", &n)) != NULL)
		set_istag(tx->s, v, n);
	if ((v = fwd_icap_msg_get(h, "Connection", &n)) != NULL && gw_http1_list_has(v, n, "close"))
		tx->conn_close = 1;
	if (h->status == 204) {
		evbuffer_drain(tx->in, h->len);
		log_verdict(tx, "unchanged (204)");
		tx->verdict = 204;
		tx->resp_done = 1;
		bump(tx->s, FWD_ICAP_C_PASS204);
		fwd_icap_pass_original(tx);
		return 1;
	}
	if (h->status != 200)
		return -1;
	v = fwd_icap_msg_get(h, "Encapsulated", &n);
	if (v == NULL)
		return -1;
	if (tx->reqmod)
		return took_reqmod_200(tx, h, v, n);
	rh = fwd_icap_msg_encap(v, n, "res-hdr");
	rb = fwd_icap_msg_encap(v, n, "res-body");
	nb = fwd_icap_msg_encap(v, n, "null-body");
	if (rh != 0 || (rb < 0) == (nb < 0) || fwd_icap_msg_encap(v, n, "req-hdr") != -1 || fwd_icap_msg_encap(v, n, "req-body") != -1)
		return -1;   /* a RESPMOD answer: res-hdr first at 0, then res-body or null-body */
	if (rb < 0)
		rb = nb;
	if (rb > ICAP_HEAD_MAX || rb < 12)
		return -1;
	if (evbuffer_get_length(tx->in) < h->len + (size_t)rb)
		return 0;   /* the encapsulated head is still coming */
	tx->verdict = 200;
	{
		const char *eh = (const char *)evbuffer_pullup(tx->in, (ev_ssize_t)(h->len + (size_t)rb)) + h->len;
		/* (h points into tx->in: all before the drain) */
		if (gw_req_filter_replace_head(tx->rq, eh, (size_t)rb) < 0)
			return -1;
		/* a block ends a chain; else the next service gets this message */
		if (!note_threat(tx, h) && !(nb >= 0 && rb == nb) && fwd_icap_chain_next(tx, eh, (size_t)rb) < 0)
			return -1;
	}
	evbuffer_drain(tx->in, h->len + (size_t)rb);
	/* no 204 can come now: what the service has of the body is not kept */
	evbuffer_drain(tx->orig, (size_t)(tx->sent - (tx->total - evbuffer_get_length(tx->orig))));
	if (nb >= 0 && rb == nb) {
		tx->resp_done = 1;
		tx->emitted_last = 1;
		gw_req_body_emit(tx->rq, "", 0, 1);
	} else {
		tx->replying = 1;
		gw_chunked_init(&tx->ck);
	}
	tx->discard = 1;   /* the upstream's body no longer goes to the client */
	return 1;
}
