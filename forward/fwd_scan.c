/*
 * forward scan: DLP on requests and the scan memory, moved out of
 * forward/forward.c.  fwd_scan_head() scans the path, the query and the
 * header values; an upload is held (gw_req_read_body, up to
 * dlp.max_scan_bytes within the process-wide dlp.max_scan_memory that
 * fwd_scan_reserve() accounts) and scanned in fwd_scan_on_body(), each in
 * the views of forward/dlp_body.h.  The request's data slot (auth_req,
 * scan_hold, rq_icap) is read and written here.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/events.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/strlit.h"
#include "forward/dlp.h"
#include "forward/dlp_body.h"
#include "forward/fwd_int.h"
#include "forward/observe.h"

/*
 * Scan memory: bodies held for scanning, in bytes, summed over every worker
 * and configuration generation.  A request reserves what its held body can
 * reach before gw_req_read_body() (forward.dlp.max_scan_memory bounds the
 * sum; over it the upload gets 503 with Retry-After), trims the reservation
 * to what is really held once the body is scanned, and gives it back in
 * on_done(), after which the core frees the buffer.
 */
_Atomic uint64_t fwd_scan_held;

/* The request's family data slot holds an auth_req while the request waits
 * for the auth pool, and a scan_hold after fwd_rq_decide() reserved scan memory;
 * the two never overlap (auth_wake() clears the slot before fwd_rq_decide()).  A
 * scan_hold is stored with the low bit set to tell them apart (both are
 * aligned allocations). */
struct scan_hold {
	uint64_t bytes;
};
#define HOLD_TAG ((uintptr_t)1)


struct rq_icap *fwd_scan_icap_of(struct gw_req *rq)
{
	uintptr_t v = (uintptr_t)gw_req_data(rq);

	return (v & FWD_ICAP_TAG) ? (struct rq_icap *)(v & ~FWD_ICAP_TAG) : NULL;
}

/* The data slot as the rest of this file sees it (through rq_icap). */
void *fwd_scan_slot_get(struct gw_req *rq)
{
	struct rq_icap *ri = fwd_scan_icap_of(rq);

	return ri != NULL ? ri->inner : gw_req_data(rq);
}

static void slot_set(struct gw_req *rq, void *v)
{
	struct rq_icap *ri = fwd_scan_icap_of(rq);

	if (ri != NULL)
		ri->inner = v;
	else
		gw_req_set_data(rq, v);
}

struct scan_hold *fwd_scan_hold_of(void *slot)
{
	return ((uintptr_t)slot & HOLD_TAG) ? (struct scan_hold *)((uintptr_t)slot & ~HOLD_TAG) : NULL;
}

uint64_t fwd_dlp_scan_memory(void)
{
	return atomic_load_explicit(&fwd_scan_held, memory_order_relaxed);
}

/* Bytes the held body of h can reach with a cut at max + 1. */
uint64_t fwd_scan_need(const struct gw_http_head *h, uint64_t max)
{
	if (h->body == GW_BODY_LENGTH)
		return h->content_length < max + 1 ? h->content_length : max + 1;
	return max + 1 + FWD_SCAN_SLACK;
}

/* Reserve want bytes (at most the whole budget) for rq: 0, or -1 when the
 * budget is spent (nothing reserved). */
int fwd_scan_reserve(struct gw_req *rq, const struct fwd_data *d, uint64_t want)
{
	uint64_t limit = d->cf->forward.dlp.max_scan_memory;
	uint64_t cur = atomic_load_explicit(&fwd_scan_held, memory_order_relaxed);
	struct scan_hold *sh;

	if (want > limit)
		want = limit;   /* conf/ keeps limit >= max_scan_bytes: one upload always fits */
	do {
		if (cur + want > limit)
			return -1;
	} while (!atomic_compare_exchange_weak_explicit(&fwd_scan_held, &cur, cur + want,
	    memory_order_relaxed, memory_order_relaxed));
	sh = gw_req_alloc(rq, sizeof *sh);
	if (sh == NULL) {
		atomic_fetch_sub_explicit(&fwd_scan_held, want, memory_order_relaxed);
		return -1;
	}
	sh->bytes = want;
	slot_set(rq, (void *)((uintptr_t)sh | HOLD_TAG));
	return 0;
}

/* Keep at most keep bytes of rq's reservation (0: give it all back). */
void fwd_scan_trim(struct gw_req *rq, uint64_t keep)
{
	struct scan_hold *sh = fwd_scan_hold_of(fwd_scan_slot_get(rq));

	if (sh == NULL || sh->bytes <= keep)
		return;
	atomic_fetch_sub_explicit(&fwd_scan_held, sh->bytes - keep, memory_order_relaxed);
	sh->bytes = keep;
}

/* fwd_req_url() without path and query (scheme and authority, then "/..."):
 * what is shown of a URL in which DLP found something. */
static const char *req_origin(struct gw_req *rq, const struct gw_http_head *h)
{
	if (h->target_form == GW_TF_ABSOLUTE && h->path != NULL &&
	    (uintptr_t)h->path > (uintptr_t)h->target &&
	    (uintptr_t)h->path <= (uintptr_t)(h->target + h->target_len)) {
		size_t n = (size_t)(h->path - h->target);
		char *s = gw_req_alloc(rq, n + 5);
		if (s == NULL)
			return "-";
		memcpy(s, h->target, n);
		memcpy(s + n, "/...", 5);
		return s;
	}
	return fwd_req_url(rq, h);   /* host:port only */
}

/* A detector hit: log (redacted), tell the console; returns 1 when the
 * request was blocked (action deny).  where: "URL path...", "query
 * string...", "header NAME...", "request body..."; a hit in the path keeps
 * path and query out of the logs, the console and the block page, a hit
 * in the query its query. */
static int dlp_hit(struct gw_req *rq, struct fwd_data *d, const struct fwd_dlp_hit *hit,
    const char *where)
{
	const struct gw_http_head *h = gw_req_head(rq);
	const struct conf_fwd_dlp *cd = &d->cf->forward.dlp;
	int in_url = strncmp(where, GW_STRLIT("URL")) == 0;
	const char *shown = in_url ? req_origin(rq, h) : fwd_req_url(rq, h);
	char url[120], det[64], what[200], wh[64];

	fwd_count(rq, FWD_C_DLP_HITS);
	if (in_url)
		gw_req_log_no_path(rq);   /* the access log (and the console's tail) too */
	else if (strncmp(where, GW_STRLIT("query string")) == 0)
		gw_req_log_no_query(rq);
	fwd_printable_url(url, sizeof url, shown);
	fwd_printable(det, sizeof det, hit->detector);
	fwd_printable(wh, sizeof wh, where);
	snprintf(what, sizeof what, "%s %s in the %s", det, hit->redacted, wh);
	gw_info("forward: dlp: %s %s from %s: %s (%s)", gw_req_id(rq), url, gw_req_client_str(rq),
	    what, cd->action_deny ? "blocked" : "logged");
	gw_event_push("dlp", "%s %s: %s (%s, id %s)", gw_req_client_str(rq), url, what,
	    cd->action_deny ? "blocked" : "logged", gw_req_id(rq));
	{
		struct fwd_obs_dlp e;
		memset(&e, 0, sizeof e);
		e.time = gw_wall_now();
		snprintf(e.client, sizeof e.client, "%s", gw_req_client_str(rq));
		fwd_printable(e.user, sizeof e.user, gw_req_user(rq));
		fwd_printable_url(e.url, sizeof e.url, shown);
		fwd_printable(e.host, sizeof e.host, fwd_host_lc(rq, h));
		snprintf(e.detector, sizeof e.detector, "%s", det);
		snprintf(e.match, sizeof e.match, "%s", hit->redacted);
		snprintf(e.where, sizeof e.where, "%s", wh);
		e.deny = cd->action_deny;
		snprintf(e.request_id, sizeof e.request_id, "%s", gw_req_id(rq));
		fwd_obs_dlp_push(&e);
	}
	if (cd->action_deny) {
		char reason[256], rule[120];
		snprintf(reason, sizeof reason, "data-loss prevention: %s", what);
		snprintf(rule, sizeof rule, "dlp %s %s", det, hit->redacted);
		fwd_deny_url(rq, d, fwd_rq_strdup(rq, rule), reason, shown);
		return 1;
	}
	char rule[120];
	snprintf(rule, sizeof rule, "dlp-log %s %s", det, hit->redacted);
	gw_req_set_verdict(rq, "allow", fwd_rq_strdup(rq, rule));
	return 0;
}

/* "what" or "what (view)" into buf. */
static const char *where_of(char *buf, size_t cap, const char *what, const char *view)
{
	snprintf(buf, cap, view != NULL && *view ? "%s (%s)" : "%s", what, view);
	return buf;
}

/* This worker's views on d's engine, made on first use and freed with d
 * (a scan runs to its end within one callback: one per worker is enough).
 * NULL on out of memory. */
static struct fwd_dlp_views *views_of(struct gw_req *rq, struct fwd_data *d)
{
	int w = gw_req_worker(rq);

	if (w < 0 || w >= GW_MAX_WORKERS)
		return NULL;
	if (d->views[w] == NULL)
		d->views[w] = fwd_dlp_views_new(d->dlp);
	return d->views[w];
}

/* Proxy-Authorization is the proxy's own credential, removed before
 * forwarding; Host is the destination (see fwd_scan_head()). */
static int dlp_skip_header(const struct gw_hdr *x)
{
	return (x->name_len == 19 && strncasecmp(x->name, "proxy-authorization", 19) == 0) ||
	    (x->name_len == 4 && strncasecmp(x->name, "host", 4) == 0);
}

/*
 * DLP on what a request carries in its head, whatever the method: the
 * path and the query, and every header value but Proxy-Authorization (the
 * proxy's own credentials, removed before forwarding) and Host.  Cookie is
 * scanned: a page can write what it likes into a cookie.  The destination
 * host (URL authority, Host, CONNECT) is not: it is what the policy judges
 * and what every log names, so a hit there could not be kept out of them.
 * Returns 1 when rq was answered.
 */
int fwd_scan_head(struct gw_req *rq, struct fwd_data *d)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct fwd_dlp_views *v = views_of(rq, d);
	struct fwd_dlp_hit hit;
	const char *view = "", *p, *q;
	char where[64], what[48];
	size_t plen, pn;

	if (v == NULL) {
		fwd_deny(rq, d, "dlp", "data-loss prevention: out of memory while scanning");
		return 1;
	}
	/* the path (h->path: path and query, after the authority), and the
	 * query apart, so that a hit there hides only the query */
	p = h->path != NULL ? h->path : "";
	plen = h->path != NULL ? h->path_len : 0;
	q = memchr(p, '?', plen);
	pn = q != NULL ? (size_t)(q - p) : plen;
	if (fwd_dlp_views_buffer(v, p, pn, &hit, &view) == 1)
		return dlp_hit(rq, d, &hit, where_of(where, sizeof where, "URL path", view));
	if (q != NULL && fwd_dlp_views_buffer(v, q + 1, plen - pn - 1, &hit, &view) == 1)
		return dlp_hit(rq, d, &hit, where_of(where, sizeof where, "query string", view));
	/* the values as one stream, NUL between them (no detector and no view
	 * reads across a NUL): one pass per request, not one per header */
	fwd_dlp_views_reset(v);
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (dlp_skip_header(x))
			continue;
		if (fwd_dlp_views_feed(v, x->value, x->value_len) || fwd_dlp_views_feed(v, "", 1))
			break;
	}
	if (!fwd_dlp_views_finish(v))
		return 0;
	hit = *fwd_dlp_views_hit(v, &view);
	snprintf(what, sizeof what, "headers");
	/* which one: only after a hit, the values again one by one (a custom
	 * pattern spanning two of them stays "headers") */
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (!dlp_skip_header(x) && fwd_dlp_views_buffer(v, x->value, x->value_len, NULL, NULL) == 1) {
			snprintf(what, sizeof what, "header %.*s", (int)(x->name_len < 32 ? x->name_len : 32),
			    x->name);
			break;
		}
	}
	return dlp_hit(rq, d, &hit, where_of(where, sizeof where, what, view));
}

/* The body's Content-Encoding as DLP can read it: several header lines
 * are stacked codings. */
static enum fwd_coding body_coding(const struct gw_http_head *h)
{
	enum fwd_coding c = FWD_CODING_IDENTITY;

	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		enum fwd_coding one;
		if (x->name_len != 16 || strncasecmp(x->name, "content-encoding", 16) != 0)
			continue;
		one = fwd_dlp_coding(x->value, x->value_len);
		if (one == FWD_CODING_IDENTITY)
			continue;
		if (c != FWD_CODING_IDENTITY)
			return FWD_CODING_OTHER;
		c = one;
	}
	return c;
}

void fwd_scan_on_body(struct gw_req *rq, const char *data, size_t len, int complete, void *side)
{
	struct fwd_data *d = side;
	const struct conf_fwd_dlp *cd;
	struct fwd_dlp_views *v;
	struct fwd_dlp_hit hit;
	const char *view = "", *why = "";
	char where[64];

	if (d->dlp == NULL) {
		fwd_proxy_upload(rq, d, data, len, complete);
		return;
	}
	cd = &d->cf->forward.dlp;
	/* what stays held is this body (cut at max_scan_bytes + 1), until it
	 * has gone upstream or been dropped with the request */
	if (complete)
		fwd_scan_trim(rq, len);
	fwd_count(rq, FWD_C_DLP_SCANNED);
	v = views_of(rq, d);
	if (v == NULL) {
		fwd_deny(rq, d, "dlp", "data-loss prevention: out of memory while scanning");
		return;
	}
	/* the core buffered the whole body (or its first max_scan_bytes + 1):
	 * the views are streaming, so a secret split across chunks or reads
	 * of the client is found all the same */
	switch (fwd_dlp_scan_body(v, data, len, complete, body_coding(gw_req_head(rq)), cd->max_scan_bytes,
	    &hit, &view, &why)) {
	case FWD_DLP_BODY_NOMEM:
		fwd_deny(rq, d, "dlp", "data-loss prevention: out of memory while scanning");
		return;
	case FWD_DLP_BODY_HIT:
		if (dlp_hit(rq, d, &hit, where_of(where, sizeof where, "request body", view)))
			return;
		break;
	case FWD_DLP_BODY_PARTIAL:
		fwd_count(rq, FWD_C_DLP_OVERSIZE);
		if (cd->oversize_deny) {
			char reason[200];
			if (strcmp(why, "larger than max_scan_bytes") == 0)
				snprintf(reason, sizeof reason, "data-loss prevention: the request body is larger "
				    "than the %llu bytes that can be scanned", (unsigned long long)cd->max_scan_bytes);
			else
				snprintf(reason, sizeof reason, "data-loss prevention: the request body cannot be "
				    "scanned: %s (limit %llu bytes)", why, (unsigned long long)cd->max_scan_bytes);
			fwd_deny(rq, d, "dlp oversize", reason);
			return;
		}
		gw_info("forward: dlp: %s: request body not scanned whole (%s) passed (oversize = allow)",
		    gw_req_id(rq), why);
		break;
	case FWD_DLP_BODY_CLEAN:
		break;
	}
	fwd_proxy_upload(rq, d, data, len, complete);
}
