/*
 * core/upstream: the upstream engine.  For a request its family sent to a
 * server (gw_req_proxy, gw_req_tunnel, gw_req_tunnel_via) it resolves the
 * name (the family vets each address: on_resolved), takes an idle pooled
 * connection or connects anew (TLS to the upstream when the family asked),
 * writes the request head and body, reads the interim and final response
 * heads and relays the body to the client connection, and offers the
 * family a retry when a stage fails.  The per-worker pool of idle
 * connections is here too, keyed by everything that made one acceptable
 * (side, upstream TLS settings, host:port; see pool_key_make).
 *
 * It knows no client connection: it reports to the exchange's sink
 * (struct gw_sink, core/upstream.h: interim and final heads, body bytes
 * with backpressure, errors, tunnels), which the HTTP/1 connection
 * (core/conn.c) implements, as nginx's ngx_http_upstream.c reports to
 * ngx_http_request.c through the request's handlers.
 */
#include "core/upstream.h"

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
#include "core/h2_client.h"
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
#include "core/strhash.h"
#include "core/strlit.h"

#define MAX_INTERIM 16              /* 1xx responses per request; one more is 502 */

static void up_rd_cb(evutil_socket_t fd, short what, void *arg);
static void up_wr_cb(evutil_socket_t fd, short what, void *arg);
static void up_to_cb(evutil_socket_t fd, short what, void *arg);
static void connect_next(struct gw_req *rq);
static void up_handshake(struct upconn *u);
static void upstream_ready(struct gw_req *rq);
static int family_retry(struct gw_req *rq, int stage);
static void upstream_failed(struct gw_req *rq, int status, const char *reason);
static void resp_tap(void *arg, const char *p, size_t n);
static void filter_pump(struct gw_req *rq);

/* ---- pool ---- */

struct gw_pool *gw_pool_new(void)
{
	return calloc(1, sizeof(struct gw_pool));
}

static void pool_unlink(struct gw_pool *p, struct upconn *u)
{
	unsigned h = u->kh % POOL_BUCKETS;

	if (u->pprev != NULL)
		u->pprev->pnext = u->pnext;
	else
		p->b[h] = u->pnext;
	if (u->pnext != NULL)
		u->pnext->pprev = u->pprev;
	u->pnext = u->pprev = NULL;
	if (u->owner != NULL && u->owner->idle == u)
		u->owner->idle = NULL;
	p->n--;
	p->kcount[u->kh % POOL_CSLOTS]--;
}

void gw_pool_flush(struct gw_pool *p)
{
	gw_h2_client_expire(p, 0, 1);
	for (int i = 0; i < POOL_BUCKETS; i++)
		while (p->b[i] != NULL) {
			struct upconn *u = p->b[i];
			pool_unlink(p, u);
			gw_upstream__free(u);
		}
}

void gw_pool_free(struct gw_pool *p)
{
	if (p == NULL)
		return;
	gw_h2_client_expire(p, 0, 2);
	gw_pool_flush(p);
	while (p->nspare > 0)
		evbuffer_free(p->spare[--p->nspare]);
	gw_arena_spares_clear(&p->blks);
	free(p);
}

void gw_pool_expire(struct gw_worker *w)
{
	struct gw_pool *p = w->pool;
	double limit = w->snap->conf->global.timeouts.upstream_idle;
	double now = gw_mono_now();

	gw_h2_client_expire(p, limit, 0);
	for (int i = 0; i < POOL_BUCKETS; i++) {
		struct upconn *u = p->b[i];
		while (u != NULL) {
			struct upconn *n = u->pnext;
			if (now - u->idle_since > limit) {
				pool_unlink(p, u);
				gw_upstream__free(u);
			}
			u = n;
		}
	}
}

static int addr_vetted(const struct gw_dns_result *v, const union gw_sa *a)
{
	for (int i = 0; i < v->naddrs; i++) {
		const union gw_sa *x = (const union gw_sa *)&v->addrs[i];
		if (x->sa.sa_family != a->sa.sa_family)
			continue;
		if (a->sa.sa_family == AF_INET ? x->in.sin_port == a->in.sin_port &&
		    x->in.sin_addr.s_addr == a->in.sin_addr.s_addr :
		    x->in6.sin6_port == a->in6.sin6_port &&
		    memcmp(&x->in6.sin6_addr, &a->in6.sin6_addr, 16) == 0)
			return 1;
	}
	return 0;
}

/* Arm u's read event and want reads: an idle pooled connection (to see
 * the origin close it) and a TLS handshake waiting for the origin.  Not
 * gw_relay_up_rd_enable: no EOF or pending-TLS-bytes handling is wanted
 * here. */
static void watch_read(struct upconn *u)
{
	if (!u->rd_armed) {
		event_add(&u->ev_rd, NULL);
		u->rd_armed = 1;
	}
	u->rd_on = 1;
}

/*
 * An idle connection for owner c (the client connection, NULL for a
 * one-off exchange) under key (pool_key_make: side, TLS settings,
 * host:port), taken out of the pool, or NULL.  vetted, when not NULL, are
 * the addresses the family allowed for this request: a connection to any
 * other address is not used.  A connection private to another client
 * connection is never returned; one private to c is preferred (its
 * connection-bound authentication lives there).
 */
static struct upconn *pool_get(struct gw_worker *w, const char *key, const struct gw_upowner *c,
    const struct gw_dns_result *vetted)
{
	struct gw_pool *p = w->pool;
	struct upconn *shared = NULL;

	if (key[0] == '\0')
		return NULL;
	if (c != NULL && (shared = c->idle) != NULL && strcmp(shared->key, key) == 0 &&
	    (vetted == NULL || addr_vetted(vetted, &shared->peer))) {
		pool_unlink(p, shared);
		return shared;
	}
	shared = NULL;
	for (struct upconn *u = p->b[gw_strhash(key) % POOL_BUCKETS]; u != NULL; u = u->pnext) {
		if ((u->owner != NULL && u->owner != c) || strcmp(u->key, key) != 0 ||
		    (vetted != NULL && !addr_vetted(vetted, &u->peer)))
			continue;
		if (u->owner == c) {
			shared = u;
			break;
		}
		if (shared == NULL) {
			shared = u;
			if (c == NULL || !c->has_private)
				break;
		}
	}
	/* its idle timer is re-set or removed by upstream_ready() */
	if (shared != NULL)
		pool_unlink(p, shared);
	return shared;
}

/* Connection-bound authentication (NTLM, Negotiate, Kerberos) authenticates
 * the TCP connection, not the request (RFC 4559 and MS-NTHT; Squid, HAProxy
 * and nginx's ntlm module bind such a connection to its client): once an
 * upstream connection carried such a challenge or credentials, it serves
 * only the client connection that made it. */
static int conn_bound_scheme(const char *v, size_t n)
{
	static const char *const words[] = { "ntlm", "negotiate", "kerberos" };

	/* anywhere in the value (a challenge list may name several schemes):
	 * a false match only costs the sharing of one connection */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
			size_t wl = strlen(words[k]);
			if (n - i >= wl && strncasecmp(v + i, words[k], wl) == 0)
				return 1;
		}
	return 0;
}

static void pool_private(struct upconn *u, struct gw_req *rq)
{
	if (rq->owner == NULL) {
		/* nobody to keep it for (a one-off exchange): never pooled */
		u->keepalive = 0;
		return;
	}
	if (u->owner == NULL)
		gw_debug("upstream %s: connection-bound authentication: private to one client connection",
		    u->addr_str);
	u->owner = rq->owner;
	rq->owner->has_private = 1;
}

/* Did head (a request, or a 401/407 response) carry connection-bound
 * credentials or a challenge? */
static int head_conn_bound(const struct gw_http_head *h, const char *name, size_t nlen)
{
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (x->name_len == nlen && strncasecmp(x->name, name, nlen) == 0 &&
		    conn_bound_scheme(x->value, x->value_len))
			return 1;
	}
	return 0;
}

/* Does a request's Authorization name a connection-bound scheme as its
 * scheme (the value's first token)?  Stricter than head_conn_bound, where a
 * false match only costs sharing: here it refuses the request, and a Bearer
 * token may hold "ntlm" anywhere. */
static int creds_conn_bound(const struct gw_http_head *h)
{
	static const char *const words[] = { "ntlm", "negotiate", "kerberos" };

	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		size_t b = 0, e;
		if (x->name_len != 13 || strncasecmp(x->name, "authorization", 13) != 0)
			continue;
		while (b < x->value_len && (x->value[b] == ' ' || x->value[b] == '\t'))
			b++;
		for (e = b; e < x->value_len && x->value[e] != ' ' && x->value[e] != '\t'; e++)
			;
		for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
			if (e - b == strlen(words[k]) && strncasecmp(x->value + b, words[k], e - b) == 0)
				return 1;
	}
	return 0;
}

void gw_upstream_drop_owned(struct gw_pool *p, const struct gw_upowner *c)
{
	for (int i = 0; i < POOL_BUCKETS; i++) {
		struct upconn *u = p->b[i];
		while (u != NULL) {
			struct upconn *n = u->pnext;
			if (u->owner == c) {
				pool_unlink(p, u);
				gw_upstream__free(u);
			}
			u = n;
		}
	}
}

void gw_upstream__pool_put(struct gw_worker *w, struct upconn *u)
{
	struct gw_pool *p = w->pool;
	unsigned h = u->kh % POOL_BUCKETS;
	struct timeval tv;
	double t = w->snap->conf->global.timeouts.upstream_idle;

	/* a key that did not fit is never shared; idle connections are bounded
	 * per key (the family's keepalive) and per worker (its share of
	 * max_connections): past that the origin gets it closed, not kept.
	 * A private one is bounded by its client connection instead (closed
	 * with it): under the per-key cap, more clients than keepalive would
	 * lose theirs (an inspected connection its origin session, NTLM its
	 * authentication) and make a new one for every request. */
	if (u->key[0] == '\0' || p->n >= w->max_conns ||
	    (u->owner == NULL && p->kcount[u->kh % POOL_CSLOTS] >= u->keepalive)) {
		u->rq = NULL;
		gw_upstream__free(u);
		return;
	}
	u->rq = NULL;
	u->idle_since = gw_mono_now();
	if (u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
	watch_read(u);   /* for the origin closing it */
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	event_add(&u->ev_to, &tv);
	u->pnext = p->b[h];
	u->pprev = NULL;
	if (u->pnext != NULL)
		u->pnext->pprev = u;
	p->b[h] = u;
	p->n++;
	p->kcount[u->kh % POOL_CSLOTS]++;
	if (u->owner != NULL)
		u->owner->idle = u;
}

/* ---- upstream connections ---- */

static struct upconn *up_new(struct gw_worker *w, int fd, const char *key)
{
	struct upconn *u = calloc(1, sizeof *u);

	if (u == NULL)
		return NULL;
	u->magic = UP_MAGIC;
	u->fd = fd;
	u->w = w;
	u->in = evbuffer_new();
	u->out = evbuffer_new();
	if (u->in == NULL || u->out == NULL) {
		if (u->in) evbuffer_free(u->in);
		if (u->out) evbuffer_free(u->out);
		free(u);
		return NULL;
	}
	memcpy(u->key, key, strlen(key) + 1);   /* pool keys fit (pool_key_make) */
	u->kh = gw_strhash(u->key);
	/* (fd -1: an HTTP/2 stream's connection, woken by event_active) */
	event_assign(&u->ev_rd, w->base, fd, fd >= 0 ? EV_READ | EV_PERSIST : 0, up_rd_cb, u);
	event_assign(&u->ev_wr, w->base, fd, fd >= 0 ? EV_WRITE | EV_PERSIST : 0, up_wr_cb, u);
	event_assign(&u->ev_to, w->base, -1, 0, up_to_cb, u);
	return u;
}

void gw_upstream__free(struct upconn *u)
{
	if (u->h2s != NULL)
		gw_h2_client_gone(u);
	if (u->dead != NULL)
		*u->dead = 1;
	event_del(&u->ev_rd);
	event_del(&u->ev_wr);
	event_del(&u->ev_to);
	if (u->ssl != NULL) {
		if (!u->tls_hs && !u->wr_shut && !u->eof) {
			ERR_clear_error();
			(void)SSL_shutdown(u->ssl);
		}
		ERR_clear_error();
		SSL_free(u->ssl);
	}
	if (u->fd >= 0)
		close(u->fd);
	evbuffer_free(u->in);
	evbuffer_free(u->out);
	u->magic = 0;
	free(u);
}

void gw_upstream_detach(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	rq->up = NULL;
	u->rq = NULL;
	gw_upstream__free(u);
}

void gw_upstream__arm_write(struct upconn *u, size_t left)
{
	if (left > 0 && !u->wr_on) {
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
	} else if (left == 0 && u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
}

void gw_upstream__write(struct upconn *u)
{
	struct gw_req *rq = u->rq;

	if (u->connecting)
		return;
	if (u->tls_hs)
		return;
	if (u->h2s != NULL)
		gw_h2_client_out(u);   /* an HTTP/2 stream takes what its window allows */
	while (u->h2s == NULL && evbuffer_get_length(u->out) > 0) {
		int n = gw_relay_write(u->fd, u->ssl, u->out);
		if (n < 0) {
			/* the origin went away while we were sending: the response
			 * path reports it (it may already have answered) */
			u->eof = 1;
			evbuffer_drain(u->out, evbuffer_get_length(u->out));
			gw_relay_up_rd_enable(u, 1);
			event_active(&u->ev_rd, EV_READ, 0);
			break;
		}
		if (n == 0)
			break;
	}
	if (rq != NULL && rq->sink->on_sent != NULL) {
		rq->sink->on_sent(rq, u);   /* a source: backpressure, splice, tunnel */
		return;
	}
	gw_upstream__arm_write(u, evbuffer_get_length(u->out));
}

/* Detach rq's upstream connection: pooled when reuse, else closed. */
static void up_let_go(struct gw_req *rq, int reuse)
{
	struct upconn *u = rq->up;

	rq->up = NULL;
	u->rq = NULL;
	if (reuse)
		gw_upstream__pool_put(rq->w, u);
	else
		gw_upstream__free(u);
}

/* ---- retries and failures ---- */

/*
 * Offer the family a retry (e.g. on another server) after an upstream
 * failure at stage.  Returns 1 if the request was restarted.
 */
static int family_retry(struct gw_req *rq, int stage)
{
	enum decision was;

	/* a tunnel may be retried elsewhere only while nothing was sent
	 * (e.g. the next parent proxy after a failed connect) */
	if (rq->proto->on_upstream_error == NULL || rq->resp_head_done ||
	    (rq->dec != DEC_PROXY && !(rq->dec == DEC_TUNNEL && stage == GW_UPFAIL_CONNECT)) ||
	    rq->tunnel)
		return 0;
	if (stage != GW_UPFAIL_CONNECT && gw_req_body_sent(rq))
		return 0;
	was = rq->dec;
	/* ask first: on "no", the caller may still relay the origin's answer,
	 * which lives in the upstream connection's buffer */
	rq->dec = DEC_NONE;
	if (!rq->proto->on_upstream_error(rq, stage, rq->side) || rq->dec == DEC_NONE) {
		rq->dec = was;
		return 0;
	}
	if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE) {
		/* the family answers instead (e.g. a stale cached copy) */
		if (rq->up != NULL)
			gw_upstream_detach(rq);
		rq->sink->on_local(rq);
		return 1;
	}
	if (rq->dec != was) {
		rq->dec = was;
		return 0;
	}
	if (rq->up != NULL)
		gw_upstream_detach(rq);
	rq->addr_idx = 0;
	rq->connect_err = 0;
	rq->retried = 1;   /* a fresh connection, not the pool */
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	gw_upstream_start(rq);
	return 1;
}

/* Fail the exchange with status (502/504): count, log, release the
 * upstream; the sink answers or cuts (on_error). */
static void upstream_failed(struct gw_req *rq, int status, const char *reason)
{
	if (reason == NULL)
		reason = "out of memory";   /* its copy failed; the answer is a 503 (rq->oom) */
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	if (rq->up != NULL)
		gw_upstream_detach(rq);
	gw_info("%s: request %s from %s: upstream %s: %s", rq->proto->name, rq->id, gw_req_client_str(rq),
	    rq->upstream_str[0] ? rq->upstream_str : (rq->up_host ? rq->up_host : "-"), reason);
	rq->sink->on_error(rq, status, reason);
}

void gw_upstream_fail(struct gw_req *rq, int status, const char *reason)
{
	upstream_failed(rq, status, reason);
}

void gw_upstream__stage_failed(struct gw_req *rq, int stage, int status, const char *reason)
{
	if (!family_retry(rq, stage))
		upstream_failed(rq, status, reason);
}

struct upconn *gw_upstream__virtual(struct gw_req *rq)
{
	struct upconn *u = up_new(rq->w, -1, "");   /* (key "": never pooled) */

	if (u == NULL)
		return NULL;
	u->rq = rq;
	rq->up = u;
	return u;
}

/* ---- request out ---- */

/*
 * Write rq's head to u->out.  Returns 0, or -1 when the head would not frame
 * the body (the invariant below): then nothing must be sent on u.
 */
static int send_request_head(struct gw_req *rq, struct upconn *u)
{
	const struct gw_http_head *h = &rq->head;
	struct evbuffer *o = u->out;
	const char *via = rq->snap->conf->global.via_name;
	int framing = 0;           /* framing fields written */
	struct gw_h1out hb;

	hb.dst = o;
	hb.len = 0;
	gw_h1out_put(&hb, h->method_str, h->method_len);
	GW_H1OUT_LIT(&hb, " ");
	gw_h1out_put(&hb, rq->up_path, rq->up_path_len);
	GW_H1OUT_LIT(&hb, " HTTP/1.1\r\n");
	if (h->target_form == GW_TF_ABSOLUTE && !gw_h1out_edit_has(rq->req_edits, "host")) {
		/* RFC 9112 3.2.2: the target's authority replaces Host (a
		 * family's Host edit replaces both: one Host, never two) */
		int v6 = memchr(h->host, ':', h->host_len) != NULL;
		int dflt = (h->port == 80 && h->scheme_len == 4) || (h->port == 443 && h->scheme_len == 5);
		GW_H1OUT_LIT(&hb, "Host: ");
		if (v6)
			GW_H1OUT_LIT(&hb, "[");
		gw_h1out_put(&hb, h->host, h->host_len);
		if (v6)
			GW_H1OUT_LIT(&hb, "]");
		if (!dflt) {
			GW_H1OUT_LIT(&hb, ":");
			gw_h1out_uint(&hb, h->port, 10);
		}
		GW_H1OUT_LIT(&hb, "\r\n");
	}
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(h, x) || gw_h1out_edit_deleted(rq->req_edits, x))
			continue;
		if (h->target_form == GW_TF_ABSOLUTE && gw_h1out_hdr_is(x, "host"))
			continue;
		if (rq->body_complete && gw_h1out_hdr_is(x, "content-length"))
			continue;
		if (rq->sent_continue && gw_h1out_hdr_is(x, "expect"))
			continue;
		if (gw_h1out_hdr_is(x, "max-forwards") && (h->method == GW_M_OPTIONS || h->method == GW_M_TRACE) &&
		    (h->flags & GW_HF_MAX_FORWARDS)) {
			GW_H1OUT_LIT(&hb, "Max-Forwards: ");
			gw_h1out_uint(&hb, h->max_forwards - 1, 10);
			GW_H1OUT_LIT(&hb, "\r\n");
			continue;
		}
		framing += gw_h1out_hdr_is(x, "content-length");
		gw_h1out_hdr(&hb, x->name, x->name_len, x->value, x->value_len);
	}
	if (!rq->no_via)
		gw_h1out_via(&hb, rq->h2s != NULL ? GW_H1OUT_VIA_H2 : h->version_minor, via);
	gw_h1out_edits(&hb, rq->req_edits);
	if (rq->body_complete && (h->body != GW_BODY_NONE)) {
		GW_H1OUT_LIT(&hb, "Content-Length: ");
		gw_h1out_uint(&hb, evbuffer_get_length(rq->bodybuf), 10);
		GW_H1OUT_LIT(&hb, "\r\n");
		framing++;
	} else if (rq->reqx.out_chunked) {
		GW_H1OUT_LIT(&hb, "Transfer-Encoding: chunked\r\n");
		framing++;
	}
	/* The writer's invariant, checked always (it costs a compare): body
	 * bytes never go out without exactly one framing field, else the
	 * origin reads them as the next request (parser, set_headers and edits
	 * keep it true; this is the last line). */
	if (framing > 1 || (framing == 0 && (h->body == GW_BODY_CHUNKED ||
	    (h->body == GW_BODY_LENGTH && h->content_length > 0))))
		return -1;
	if (rq->upgrade) {
		const struct gw_hdr *up = gw_http1_find(h, "upgrade");
		GW_H1OUT_LIT(&hb, "Connection: upgrade\r\n");
		gw_h1out_hdr(&hb, "Upgrade", 7, up->value, up->value_len);
	}
	GW_H1OUT_LIT(&hb, "\r\n");
	gw_h1out_flush(&hb);
	return 0;
}

/* The upstream connection is ready: send the request or open the tunnel. */
static void upstream_ready(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	if (rq->dec == DEC_TUNNEL && rq->tun_target != NULL && !rq->tun_ok) {
		/* through a parent: ask it first; parent_answer() goes on */
		evbuffer_add_printf(u->out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", rq->tun_target,
		    rq->tun_target);
		if (rq->tun_extra_len > 0)
			evbuffer_add(u->out, rq->tun_extra, rq->tun_extra_len);
		evbuffer_add(u->out, GW_STRLIT("\r\n"));
		rq->tun_wait = 1;
		set_timer(&u->ev_to, RTO(rq)->upstream_response);
		gw_relay_up_rd_enable(u, 1);
		gw_upstream__write(u);
		return;
	}
	if (rq->dec == DEC_TUNNEL) {
		rq->status = 200;
		rq->resp_head_done = 1;
		rq->tunnel = 1;
		gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_TUNNELS], 1);
		gw_relay_up_rd_enable(u, 1);
		rq->sink->on_tunnel(rq, NULL);
		return;
	}
	if ((rq->head.flags & GW_HF_EXPECT_CONTINUE) && !rq->reqx.done &&
	    rq->head.version_minor == 1 && !rq->sent_continue) {
		static const struct gw_http_head cont = { .status = 100, .reason = "Continue",
			.reason_len = 8, .version_minor = 1 };
		(void)rq->sink->on_interim(rq, &cont);
		rq->sent_continue = 1;
	}
	if (u->owner == NULL && head_conn_bound(&rq->head, GW_STRLIT("authorization")))
		pool_private(u, rq);
	rq->up_sent = gw_mono_now();   /* first-byte time runs from here */
	if (send_request_head(rq, u) < 0) {
		gw_error("%s: request %s: not sent: its body would go upstream without framing",
		    rq->proto->name, rq->id);
		gw_upstream_detach(rq);   /* with the head bytes: none of it is sent */
		rq->sink->on_error(rq, 500, "request body without framing");
		return;
	}
	if (rq->body_buffered) {
		size_t n = evbuffer_get_length(rq->bodybuf);
		if (n > 0 && rq->reqx.out_chunked)
			gw_h1out_chunk_line(u->out, n);
		evbuffer_add_buffer(u->out, rq->bodybuf);
		if (n > 0 && rq->reqx.out_chunked)
			evbuffer_add(u->out, GW_STRLIT("\r\n"));
		/* a body cut at the family's limit may still have been read to
		 * its end while buffering (chunks decoded without re-framing):
		 * gw_relay_xfer_pump() will not run again to end the chunked stream, so
		 * end it here or the upstream waits (and a pooled connection
		 * desyncs) */
		if (rq->reqx.done && rq->reqx.out_chunked)
			evbuffer_add(u->out, GW_STRLIT("0\r\n\r\n"));
		rq->reqx.moved += n;
	}
	gw_relay_up_rd_enable(u, 1);
	/* upstream_response counts from the end of the request (a long upload
	 * is paced by client_body and by write progress instead); this also
	 * replaces a pooled connection's idle timer */
	if (rq->reqx.done)
		set_timer(&u->ev_to, RTO(rq)->upstream_response);
	else if (u->reused)
		event_del(&u->ev_to);
	if (!rq->reqx.done && rq->sink->on_ready(rq) == GW_SINK_GONE)
		return;
	gw_upstream__write(u);
	rq->sink->on_flush(rq);
}

int gw_upstream__local(struct gw_req *rq, int fd, const char *what)
{
	struct upconn *u = up_new(rq->w, fd, "");

	if (u == NULL)
		return -1;
	u->rq = rq;
	rq->up = u;
	snprintf(u->addr_str, sizeof u->addr_str, "%s", what);
	snprintf(rq->upstream_str, sizeof rq->upstream_str, "%s", what);
	/* as upstream_ready's tunnel, not counted as one: the exchange on
	 * the other end is (core/conn_nest.c) */
	rq->dec = DEC_TUNNEL;
	rq->status = 200;
	rq->resp_head_done = 1;
	rq->tunnel = 1;
	gw_relay_up_rd_enable(u, 1);
	rq->sink->on_tunnel(rq, NULL);
	return 0;
}

void gw_upstream__ready(struct gw_req *rq)
{
	upstream_ready(rq);
}

/* ---- connect, DNS ---- */

static void on_connected(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	u->connecting = 0;
	event_del(&u->ev_wr);
	u->wr_on = 0;
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_CONNECTS], 1);
	if (rq->up_t0 > 0) {
		gw_hist_observe(rq->w->id, GW_H_UP_CONNECT, gw_req__metric_up(rq), gw_mono_now() - rq->up_t0);
		rq->up_t0 = 0;
	}
	if (rq->up_tls > 0) {
		u->ssl = gw_tls_upstream_ssl(rq->snap->tls, rq->up_tls - 1, rq->up_host);
		if (u->ssl == NULL || SSL_set_fd(u->ssl, u->fd) != 1 ||
		    (rq->up_alpn_len > 0 && SSL_set_alpn_protos(u->ssl, rq->up_alpn, (unsigned)rq->up_alpn_len) != 0)) {
			gw_upstream_detach(rq);
			upstream_failed(rq, 502, "upstream TLS: cannot create a session");
			return;
		}
		gw_tls_upstream_resume(rq->snap->tls, rq->up_tls - 1, u->ssl, rq->up_host, rq->upstream_str);
		SSL_set_connect_state(u->ssl);
		u->tls_hs = 1;
		up_handshake(u);   /* the connect timer keeps running until it completes */
		return;
	}
	event_del(&u->ev_to);
	upstream_ready(rq);
}

static void connect_next(struct gw_req *rq)
{
	int last_err = rq->connect_err;

	while (rq->addr_idx < rq->addrs->naddrs) {
		int i = rq->addr_idx++;
		const struct sockaddr *sa = (const struct sockaddr *)&rq->addrs->addrs[i];
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;

		if (fd < 0) {
			last_err = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		char host[INET6_ADDRSTRLEN];
		uint16_t port;
		if (sa->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
			snprintf(rq->upstream_str, sizeof rq->upstream_str, "%s:%u", host, port);
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
			port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
			snprintf(rq->upstream_str, sizeof rq->upstream_str, "[%s]:%u", host, port);
		}
		rq->up_t0 = gw_mono_now();
		int r = connect(fd, sa, rq->addrs->lens[i]);
		if (r < 0 && errno != EINPROGRESS) {
			last_err = errno;
			close(fd);
			continue;
		}
		struct upconn *u = up_new(rq->w, fd, rq->pool_key);
		if (u == NULL) {
			close(fd);
			last_err = ENOMEM;
			break;
		}
		snprintf(u->addr_str, sizeof u->addr_str, "%s", rq->upstream_str);
		memcpy(&u->peer, sa, rq->addrs->lens[i] < sizeof u->peer ? rq->addrs->lens[i] : sizeof u->peer);
		u->keepalive = rq->keepalive;
		u->rq = rq;
		rq->up = u;
		if (r == 0) {
			on_connected(rq);
			return;
		}
		u->connecting = 1;
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
		set_timer(&u->ev_to, RTO(rq)->upstream_connect);
		return;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "cannot connect: %s", last_err ? strerror(last_err) : "no address");
	if (family_retry(rq, GW_UPFAIL_CONNECT))
		return;
	upstream_failed(rq, last_err == ETIMEDOUT ? 504 : 502, gw_req_strndup(rq, msg, strlen(msg)));
}

/*
 * The pool key of rq's upstream (arena): the side (forward and reverse never
 * share), the TLS settings (gw_tls_upstream_id: verify, CA, SNI) and
 * host:port, as "<family>p|host:port" or "<family>t<tls id>|host:port".
 * Without snprintf: this runs for every proxied request; built each time, a
 * retry may change the target.  A key longer than upconn keeps is "" (never
 * pooled), never cut: a cut key could match another host.
 */
static void pool_key_make(struct gw_req *rq)
{
	size_t hl = strlen(rq->up_host);
	const char *tid = rq->up_tls ? gw_tls_upstream_id(rq->snap->tls, rq->up_tls - 1) : "";
	size_t tl = strlen(tid);
	char *k = rq->pool_key = gw_req_alloc(rq, hl + tl + 12);
	unsigned port = rq->up_port;
	char num[8];
	int i = (int)sizeof num;

	if (k == NULL)
		return;   /* rq->oom: gw_upstream_start fails the request */
	if (hl + tl + 11 >= POOL_KEY_MAX) {
		k[0] = '\0';
		return;
	}
	*k++ = (char)('0' + rq->proto->family);
	*k++ = rq->up_tls ? 't' : 'p';
	memcpy(k, tid, tl);
	k += tl;
	*k++ = '|';
	memcpy(k, rq->up_host, hl);
	k += hl;
	*k++ = ':';
	do
		num[--i] = (char)('0' + port % 10);
	while ((port /= 10) > 0);
	memcpy(k, num + i, sizeof num - (size_t)i);
	k[sizeof num - (size_t)i] = '\0';
}

/* Send rq on a pooled connection if one fits (pool_get; vetted: the
 * addresses the family allowed, NULL = any): 1 if so. */
static int pool_reuse(struct gw_req *rq, const struct gw_dns_result *vetted)
{
	struct upconn *u;

	if (rq->dec != DEC_PROXY || rq->upgrade || rq->retried || rq->up_h2 ||
	    (u = pool_get(rq->w, rq->pool_key, rq->owner, vetted)) == NULL)
		return 0;
	u->rq = rq;
	u->reused = 1;
	u->got_bytes = 0;
	u->keepalive = rq->keepalive;
	rq->up = u;
	memcpy(rq->upstream_str, u->addr_str, sizeof rq->upstream_str);
	gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_UPSTREAM_REUSED], 1);
	upstream_ready(rq);
	return 1;
}

static void resolved(struct gw_req *rq, const struct gw_dns_result *res)
{
	int n = 0;

	rq->refused_status = 0;
	if (res->naddrs == 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "cannot resolve %s: %s", rq->up_host, res->error);
		gw_stat_add(&rq->w->stats->dns_failures, 1);
		upstream_failed(rq, 502, gw_req_strndup(rq, msg, strlen(msg)));
		return;
	}
	if (rq->addrs == NULL && (rq->addrs = gw_req_alloc(rq, sizeof *rq->addrs)) == NULL) {
		rq->sink->on_error(rq, 503, NULL);
		return;
	}
	memset(rq->addrs, 0, sizeof *rq->addrs);
	for (int i = 0; i < res->naddrs; i++) {
		int st = 0;
		if (rq->proto->on_resolved != NULL)
			st = rq->proto->on_resolved(rq, (const struct sockaddr *)&res->addrs[i], rq->side);
		if (rq->dec == DEC_RESPOND) {
			/* the family refused with its own page */
			rq->sink->on_local(rq);
			return;
		}
		if (st != 0) {
			rq->refused_status = st;
			continue;
		}
		rq->addrs->addrs[n] = res->addrs[i];
		rq->addrs->lens[n++] = res->lens[i];
	}
	rq->addrs->naddrs = n;
	rq->addr_idx = 0;
	if (n == 0) {
		rq->sink->on_error(rq, rq->refused_status, "destination address not allowed");
		return;
	}
	if (rq->up_h2) {
		(void)gw_h2_client_attach(rq, 1);   /* protocol = "h2": a shared session */
		return;
	}
	if (rq->proto->on_resolved != NULL && pool_reuse(rq, rq->addrs))
		return;
	connect_next(rq);
}

static void dns_done(void *arg, const struct gw_dns_result *res)
{
	struct gw_req *rq = arg;

	rq->dnsq = NULL;
	if (rq->sink->on_dns != NULL)
		rq->sink->on_dns(rq, 0);
	resolved(rq, res);
}

void gw_upstream_start(struct gw_req *rq)
{
	struct gw_dns_result res;
	int r;

	if (!rq->oom)
		pool_key_make(rq);
	if (rq->oom) {   /* the decision (host, path, CONNECT line) or the key lacks parts */
		rq->sink->on_error(rq, 503, NULL);
		return;
	}
	/* an HTTP/2 upstream connection carries many clients' streams at once:
	 * it cannot be made private to one client, so credentials that bind the
	 * connection (pool_private) would authenticate everyone's streams */
	if (rq->up_h2 && creds_conn_bound(&rq->head)) {
		gw_upstream_fail(rq, 502, "connection-bound authentication (NTLM, Negotiate) cannot go over a "
		    "shared HTTP/2 upstream connection (protocol = \"http1.1\" keeps it private to one client)");
		return;
	}
	/* a family that vets addresses (on_resolved) takes a pooled connection
	 * only after its checks passed, from resolved() */
	if (rq->proto->on_resolved == NULL && (rq->up_h2 ? gw_h2_client_attach(rq, 0) : pool_reuse(rq, NULL)))
		return;
	gw_stat_add(&rq->w->stats->dns_queries, 1);
	r = gw_dns_resolve(rq->w->dns, rq->up_host, rq->up_port, &res, dns_done, rq, &rq->dnsq);
	if (r == 0) {
		/* evdns's own timeout does not cover a query waiting in its queue
		 * (over 64 in flight): upstream_connect bounds the resolution too
		 * (the sink's on_dns: the HTTP/1 connection's TO_DNS). */
		if (rq->sink->on_dns != NULL)
			rq->sink->on_dns(rq, 1);
		return;  /* dns_done() continues */
	}
	resolved(rq, &res);
}

/* ---- response in ---- */

/* Start over on a fresh connection after a pooled one failed before answering. */
static int retry_fresh(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	if (u == NULL || !u->reused || u->got_bytes || rq->retried ||
	    rq->head.body != GW_BODY_NONE || rq->resp_head_done)
		return 0;
	rq->retried = 1;
	gw_upstream_detach(rq);
	if (rq->sink->on_retry != NULL)
		rq->sink->on_retry(rq);
	rq->sent_continue = 0;
	gw_debug("request %s: pooled upstream connection closed; retrying on a new one", rq->id);
	gw_upstream_start(rq);
	return 1;
}

static void response_ended(struct gw_req *rq)
{
	if (!rq->resp_ended && rq->proto->on_response_end != NULL) {
		/* the whole body came from the upstream: a cache can
		 * commit now, not after the last write to the client
		 * (a request on another worker must not miss it) */
		rq->resp_ended = 1;
		rq->proto->on_response_end(rq, 1, rq->side);
	}
}

/*
 * The body of a filtered response (on_response_filter): from the upstream
 * (without its framing) to rq->filt_in, from there through the filter
 * (unless it holds), and what the filter emitted (rq->filt_out) to the
 * sink, as a close-delimited body that ends with the filter's last emit.
 */
static void filter_pump(struct gw_req *rq)
{
	struct upconn *u = rq->up;
	int st;

	if (!rq->respx.done) {
		if (gw_relay_xfer_pump(&rq->respx, u->in, rq->filt_in) < 0) {
			upstream_failed(rq, 502, "invalid chunked response body");
			return;
		}
		if (!rq->respx.done && u->eof) {
			if (rq->respx.kind != GW_BODY_CLOSE) {
				upstream_failed(rq, 502, "upstream closed mid-body");
				return;
			}
			rq->respx.done = 1;
		}
	}
	while (!rq->filt_held && !rq->filt_last_given) {
		struct evbuffer_iovec v;
		size_t left = evbuffer_get_length(rq->filt_in), n = 0;
		int last;

		if (left > 0 && evbuffer_peek(rq->filt_in, -1, NULL, &v, 1) == 1)
			n = v.iov_len;
		if (n == 0 && !rq->respx.done)
			break;
		last = rq->respx.done && n == left;
		st = rq->proto->on_response_filter(rq, n > 0 ? v.iov_base : "", n, last, rq->side);
		evbuffer_drain(rq->filt_in, n);
		rq->filt_last_given |= last;
		rq->filt_held = st == GW_FILTER_HOLD;
	}
	if (rq->respx.done) {
		gw_relay_up_rd_enable(u, 0);
		response_ended(rq);
	} else if (rq->filt_held) {
		gw_relay_up_rd_enable(u, 0);   /* gw_req_resume() reads on */
		event_del(&u->ev_to);          /* (nothing is awaited from the upstream) */
	} else {
		set_timer(&u->ev_to, RTO(rq)->upstream_response);
	}
	st = rq->sink->on_body(rq, rq->filt_out, rq->filt_last_emitted);
	if (st == GW_SINK_GONE)
		return;
	if (st == GW_SINK_FAIL) {
		upstream_failed(rq, 502, "response body not taken");
		return;
	}
	if (st == GW_SINK_HOLD)
		gw_relay_up_rd_enable(u, 0);   /* the sink resumes (gw_upstream_resume) */
	rq->sink->on_flush(rq);
}

int gw_req_filter_response(struct gw_req *rq)
{
	if (rq->respx.done || rq->proto->on_response_filter == NULL)
		return 0;   /* no body to filter (or no filter) */
	if ((rq->filt_in == NULL && (rq->filt_in = evbuffer_new()) == NULL) ||
	    (rq->filt_out == NULL && (rq->filt_out = evbuffer_new()) == NULL))
		return -1;
	rq->filtering = 1;
	rq->fx.kind = GW_BODY_CLOSE;   /* its end: the filter's last emit */
	return 0;
}

void gw_req_body_emit(struct gw_req *rq, const void *p, size_t n, int last)
{
	if (n > 0 && evbuffer_add(rq->filt_out, p, n) < 0)
		rq->oom = 1;
	rq->filt_last_emitted |= last;
}

void gw_req_body_emit_buffer(struct gw_req *rq, struct evbuffer *src, size_t n, int last)
{
	if (n > 0 && (size_t)evbuffer_remove_buffer(src, rq->filt_out, n) != n)
		rq->oom = 1;
	rq->filt_last_emitted |= last;
}

void gw_req_resume(struct gw_req *rq)
{
	rq->filt_held = 0;
	if (rq->up != NULL)
		gw_upstream_resume(rq);
}

static void resp_tap(void *arg, const char *p, size_t n)
{
	struct gw_req *rq = arg;

	rq->proto->on_response_body(rq, p, n, rq->side);
}

int gw_upstream_head_hook(struct gw_req *rq, const struct gw_http_head *r)
{
	if (rq->proto->on_response_head != NULL) {
		rq->proto->on_response_head(rq, r, rq->side);
		if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE || rq->oom)
			return 1;   /* (out of memory: send_local answers 503) */
	}
	if (rq->proto->on_response_body != NULL) {
		rq->respx.tap = resp_tap;
		rq->respx.tap_arg = rq;
	}
	return 0;
}

/* Set up rq->respx and the response fields of rq from the final head r
 * (the sink adds its own output framing in on_head). */
static void response_begin(struct gw_req *rq, const struct gw_http_head *r)
{
	rq->status = r->status;
	rq->resp_http10 = r->version_minor == 0;
	rq->resp_conn_close = (r->flags & GW_HF_CONN_CLOSE) != 0 ||
	    (rq->resp_http10 && !(r->flags & GW_HF_CONN_KEEPALIVE));
	rq->respx.kind = r->body;
	rq->respx.remaining = r->content_length;
	gw_chunked_init(&rq->respx.ck);
	rq->respx.done = r->body == GW_BODY_NONE || (r->body == GW_BODY_LENGTH && r->content_length == 0);
}

/* Handle bytes from the upstream: heads (1xx, 101, final), then the body. */
static void upstream_response(struct gw_req *rq)
{
	struct upconn *u = rq->up;
	const struct conf_limits *L = &rq->snap->conf->global.limits;
	int st;

	while (!rq->resp_head_done) {
		struct gw_http_limits lim = { (size_t)L->max_header_bytes * 2, SCRATCH_HDRS,
			(size_t)L->max_uri_bytes };
		struct gw_http_head r;
		size_t len = evbuffer_get_length(u->in);
		const char *p;

		if (len > 0 && rq->up_sent > 0) {
			gw_hist_observe(rq->w->id, GW_H_UP_FIRST_BYTE, gw_req__metric_up(rq), gw_mono_now() - rq->up_sent);
			rq->up_sent = 0;
		}
		ssize_t n;

		if (len == 0) {
			if (u->eof) {
				if (retry_fresh(rq) || family_retry(rq, GW_UPFAIL_RESET))
					return;
				upstream_failed(rq, 502, "upstream closed the connection before answering");
			} else {
				rq->sink->on_flush(rq);   /* interim responses relayed above */
			}
			return;
		}
		if (len > lim.max_header_bytes + 8)
			len = lim.max_header_bytes + 8;
		p = (const char *)evbuffer_pullup(u->in, (ev_ssize_t)len);
		memset(&r, 0, sizeof r);
		r.hdrs = (struct gw_hdr *)rq->w->scratch;
		r.hdrs_cap = SCRATCH_HDRS;
		n = gw_http1_parse_response(p, len, &lim, rq->head.method, &r);
		if (n == 0) {
			if (u->eof)
				upstream_failed(rq, 502, "upstream closed the connection inside the response head");
			else if (len >= lim.max_header_bytes)
				upstream_failed(rq, 502, "upstream response head too large");
			else
				rq->sink->on_flush(rq);   /* interim responses relayed above */
			return;
		}
		if (n < 0) {
			upstream_failed(rq, 502, r.err_reason ? r.err_reason : "invalid response head");
			return;
		}
		if (r.status >= 100 && r.status < 200 && r.status != 101) {
			/* interim response: passed on by the sink as it comes, under
			 * the same backpressure as a body, and at most MAX_INTERIM per
			 * request: an origin that streams 1xx forever must hold
			 * neither our memory nor the connection */
			if (++rq->interim > MAX_INTERIM) {
				upstream_failed(rq, 502, "too many interim (1xx) responses");
				return;
			}
			/* never a 100: ours went out already (upstream_ready), or
			 * the client did not ask */
			st = r.status != 100 ? rq->sink->on_interim(rq, &r) : GW_SINK_GO;
			evbuffer_drain(u->in, (size_t)n);
			if (st == GW_SINK_HOLD) {
				/* the sink resumes (gw_upstream_resume) once it wrote */
				gw_relay_up_rd_enable(u, 0);
				rq->sink->on_flush(rq);
				return;
			}
			continue;
		}
		if (r.status == 101) {
			if (!rq->upgrade) {
				upstream_failed(rq, 502, "upstream switched protocols without an Upgrade request");
				return;
			}
			/* relay the 101 and become a tunnel */
			rq->status = 101;
			rq->resp_head_done = 1;
			rq->reqx.done = 1;
			rq->tunnel = 1;
			event_del(&u->ev_to);
			gw_stat_add(&rq->w->stats->fam[rq->proto->family][GW_FC_TUNNELS], 1);
			rq->sink->on_tunnel(rq, &r);   /* (drains the head: r points into u->in) */
			return;
		}
		if ((r.status == 401 && head_conn_bound(&r, GW_STRLIT("www-authenticate"))) ||
		    (r.status == 407 && head_conn_bound(&r, GW_STRLIT("proxy-authenticate"))))
			pool_private(u, rq);
		if ((r.status == 502 || r.status == 503) && !gw_req_body_sent(rq) &&
		    (rq->head.method == GW_M_GET || rq->head.method == GW_M_HEAD ||
		    rq->head.method == GW_M_OPTIONS || rq->head.method == GW_M_PUT ||
		    rq->head.method == GW_M_DELETE || rq->head.method == GW_M_TRACE) &&
		    family_retry(rq, GW_UPFAIL_STATUS))
			return;
		response_begin(rq, &r);
		st = rq->sink->on_head(rq, &r);
		if (st == GW_SINK_GONE)
			return;
		if (st == GW_SINK_FAIL) {
			upstream_failed(rq, 502, "response body without framing");
			return;
		}
		if (st == GW_SINK_LOCAL) {
			/* answered locally: release the upstream, pooled if it is clean */
			int reuse = r.body == GW_BODY_NONE && !(r.flags & GW_HF_CONN_CLOSE) &&
			    r.version_minor == 1 && rq->reqx.done;
			evbuffer_drain(u->in, (size_t)n);
			up_let_go(rq, reuse && evbuffer_get_length(u->in) == 0 && !u->eof);
			rq->resp_head_done = 0;
			rq->sink->on_local(rq);
			return;
		}
		rq->resp_head_done = 1;
		evbuffer_drain(u->in, (size_t)n);
	}
	event_del(&u->ev_to);
	if (rq->filtering) {
		filter_pump(rq);
		return;
	}
	st = GW_SINK_GO;
	if (!rq->respx.done) {
		st = rq->sink->on_body(rq, u->in, u->eof);
		if (st == GW_SINK_GONE)
			return;
		if (st == GW_SINK_FAIL) {
			upstream_failed(rq, 502, "invalid chunked response body");
			return;
		}
		if (!rq->respx.done)
			set_timer(&u->ev_to, RTO(rq)->upstream_response);
	}
	if (rq->respx.done) {
		gw_relay_up_rd_enable(u, 0);   /* (the timer went above) */
		response_ended(rq);
	} else if (st == GW_SINK_HOLD) {
		gw_relay_up_rd_enable(u, 0);   /* the sink resumes (gw_upstream_resume) */
	}
	rq->sink->on_flush(rq);
}

int gw_upstream_body_take(struct gw_req *rq, struct evbuffer *src, struct evbuffer *dst, int eof)
{
	struct xfer *x = GW_SINK_XFER(rq);

	if (gw_relay_xfer_pump(x, src, dst) < 0)
		return -1;
	if (!x->done && eof) {
		if (x->kind != GW_BODY_CLOSE)
			return -2;
		x->done = 1;
	}
	return x->done;
}

int gw_upstream_complete(const struct gw_req *rq)
{
	return rq->resp_head_done && GW_SINK_XFER(rq)->done;
}

void gw_upstream_resume(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	if (rq->filt_wake != NULL) {   /* (the client drained: the filter's source reads on) */
		event_active(rq->filt_wake, EV_TIMEOUT, 0);
		rq->filt_wake = NULL;
	}
	if (!rq->respx.done && !rq->filt_held)
		gw_relay_up_rd_enable(u, 1);
	if (rq->filtering && rq->resp_head_done)
		filter_pump(rq);   /* (what the filter emitted meanwhile goes out too) */
	else if (evbuffer_get_length(u->in) > 0)
		upstream_response(rq);
}

/* ---- TLS handshake ---- */

static void up_handshake(struct upconn *u)
{
	struct gw_req *rq = u->rq;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(u->ssl);
	if (r == 1) {
		u->tls_hs = 0;
		event_del(&u->ev_wr);
		u->wr_on = 0;
		event_del(&u->ev_to);
		watch_read(u);
		upstream_ready(rq);
		return;
	}
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
		watch_read(u);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (!u->wr_on) {
			event_add(&u->ev_wr, NULL);
			u->wr_on = 1;
		}
		return;
	}
	{
		char buf[200], msg[300];
		long vr = SSL_get_verify_result(u->ssl);
		ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
		ERR_clear_error();
		if (vr != X509_V_OK)
			snprintf(msg, sizeof msg, "upstream TLS: certificate verification failed: %s",
			    X509_verify_cert_error_string(vr));
		else
			snprintf(msg, sizeof msg, "upstream TLS handshake failed: %s", buf);
		gw_upstream_detach(rq);
		if (family_retry(rq, GW_UPFAIL_CONNECT))
			return;
		upstream_failed(rq, 502, gw_req_strndup(rq, msg, strlen(msg)));
	}
}

#define PARENT_HEAD_MAX (16 * 1024)

/* ---- event callbacks ---- */

/* The parent's answer to our CONNECT (gw_req_tunnel_via): 2xx opens the
 * tunnel (bytes after its head are the target's); anything else is 502. */
static void parent_answer(struct gw_req *rq)
{
	struct upconn *u = rq->up;
	struct evbuffer_ptr end = evbuffer_search(u->in, "\r\n\r\n", 4, NULL);
	char line[80], *reason;
	size_t n;
	int status = 0;

	if (end.pos < 0) {
		if (evbuffer_get_length(u->in) > PARENT_HEAD_MAX)
			upstream_failed(rq, 502, "parent proxy: CONNECT answer head too large");
		else if (u->eof)
			upstream_failed(rq, 502, "parent proxy closed without answering CONNECT");
		return;
	}
	n = evbuffer_copyout(u->in, line, sizeof line - 1) > 0 ? strcspn(line, "\r") : 0;
	line[n < sizeof line ? n : sizeof line - 1] = '\0';
	if (n >= 12 && strncmp(line, GW_STRLIT("HTTP/1.")) == 0 && line[8] == ' ')
		status = atoi(line + 9);
	evbuffer_drain(u->in, (size_t)end.pos + 4);
	rq->tun_wait = 0;
	event_del(&u->ev_to);
	if (status < 200 || status > 299) {
		char msg[120];
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
				*p = '?';
		snprintf(msg, sizeof msg, "parent proxy refused CONNECT: %s", line[0] ? line : "no status");
		reason = gw_req_strndup(rq, msg, strlen(msg));
		upstream_failed(rq, 502, reason);
		return;
	}
	rq->tun_ok = 1;
	upstream_ready(rq);
}

static void up_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_req *rq;
	ssize_t n = 0;
	int dead = 0;

	GW_CHECK_OBJ(u, UP_MAGIC);
	rq = u->rq;
	(void)fd;
	(void)what;
	if (rq != NULL && u->tls_hs) {
		up_handshake(u);
		return;
	}
	if (rq != NULL && rq->tunnel) {
		rq->sink->on_tunnel_rd(rq, u);   /* the sink moves tunnel bytes */
		return;
	}
	if (rq != NULL && gw_relay_read_unwanted(&u->ev_rd, u->rd_on, &u->rd_armed))
		return;
	if (rq == NULL && u->ssl != NULL) {
		/* pooled TLS: session tickets arrive after the handshake; only
		 * application data or a close makes the connection unusable */
		char b;
		int r;
		ERR_clear_error();
		r = SSL_read(u->ssl, &b, 1);
		if (r <= 0 && SSL_get_error(u->ssl, r) == SSL_ERROR_WANT_READ) {
			ERR_clear_error();
			return;
		}
		ERR_clear_error();
	}
	if (rq == NULL) {
		/* pooled: any byte or EOF means it is no longer usable */
		pool_unlink(u->w->pool, u);
		gw_upstream__free(u);
		return;
	}
	if (u->h2s != NULL) {
		if (gw_h2_client_pull(u) < 0)
			return;   /* (the exchange ended: u is gone) */
	} else if (!u->eof && u->rd_on) {
		n = gw_relay_read(u->fd, u->ssl, u->in, &u->rd_big);
		if (n == 0 || n == -1) {
			u->eof = 1;
			gw_relay_up_rd_enable(u, 0);
		} else if (n > 0) {
			u->got_bytes = 1;
		}
	}
	u->dead = &dead;   /* (gw_upstream__free sets it) */
	if (rq->tun_wait)
		parent_answer(rq);
	else
		upstream_response(rq);
	if (dead)
		return;
	u->dead = NULL;
	/* gw_relay_read stopped at READ_MAX with records read ahead into OpenSSL,
	 * where epoll cannot see them (the client side: end of client_rd_cb) */
	if (u->rq != NULL && u->rd_on && !u->eof && gw_relay_ssl_more(u->ssl, n))
		event_active(&u->ev_rd, EV_READ, 0);
}

static void up_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_req *rq;

	GW_CHECK_OBJ(u, UP_MAGIC);
	rq = u->rq;
	(void)fd;
	(void)what;
	if (u->connecting && u->h2s == NULL) {   /* (an h2 stream: its session connects) */
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			gw_debug("connect to %s failed: %s", u->addr_str, strerror(err));
			rq->connect_err = err;
			gw_upstream_detach(rq);
			connect_next(rq);
			return;
		}
		on_connected(rq);
		return;
	}
	if (u->tls_hs) {
		up_handshake(u);
		return;
	}
	gw_upstream__write(u);
}

static void up_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_req *rq;

	GW_CHECK_OBJ(u, UP_MAGIC);
	rq = u->rq;
	(void)fd;
	(void)what;
	if (rq == NULL) {
		pool_unlink(u->w->pool, u);
		gw_upstream__free(u);
		return;
	}
	if (u->connecting || u->tls_hs) {
		gw_upstream_detach(rq);
		rq->connect_err = ETIMEDOUT;
		if (rq->addrs != NULL && rq->addr_idx < rq->addrs->naddrs) {
			connect_next(rq);
			return;
		}
		if (family_retry(rq, GW_UPFAIL_CONNECT))
			return;
		upstream_failed(rq, 504, "upstream connect timeout");
		return;
	}
	if (family_retry(rq, GW_UPFAIL_TIMEOUT))
		return;
	upstream_failed(rq, 504, "upstream response timeout");
}

void gw_upstream_release(struct gw_req *rq)
{
	struct upconn *u = rq->up;

	up_let_go(rq, rq->dec == DEC_PROXY && rq->respx.done && rq->reqx.done && !u->eof &&
	    !rq->resp_conn_close && !rq->resp_http10 && rq->respx.kind != GW_BODY_CLOSE &&
	    evbuffer_get_length(u->in) == 0 && evbuffer_get_length(u->out) == 0 &&
	    !atomic_load(&rq->w->stop));
}

int gw_upstream__conn_bound(const struct gw_http_head *h)
{
	return creds_conn_bound(h);
}

int gw_upstream__addr_vetted(const struct gw_dns_result *v, const union gw_sa *a)
{
	return addr_vetted(v, a);
}
