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
 * It drives the client connection through the gw_conn__* friends of
 * core/conn_int.h (close, write, local answers, the tunnel pump), as nginx's
 * ngx_http_upstream.c finalizes requests.
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
#include "core/control.h"
#include "core/dns.h"
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

#define MAX_INTERIM 16              /* 1xx responses per request; one more is 502 */

static void up_rd_cb(evutil_socket_t fd, short what, void *arg);
static void up_wr_cb(evutil_socket_t fd, short what, void *arg);
static void up_to_cb(evutil_socket_t fd, short what, void *arg);
static void connect_next(struct gw_req *rq);
static void up_handshake(struct upconn *u);
static void upstream_ready(struct gw_conn *c);
static int family_retry(struct gw_conn *c, int stage);
static void resp_tap(void *arg, const char *p, size_t n);

/* ---- pool ---- */

static unsigned key_hash32(const char *k)
{
	unsigned x = 2166136261u;

	while (*k)
		x = (x ^ (unsigned char)*k++) * 16777619u;
	return x;
}

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
	p->n--;
	p->kcount[u->kh % POOL_CSLOTS]--;
}

void gw_pool_flush(struct gw_pool *p)
{
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

/*
 * An idle connection for client c under key (pool_key_make: side, TLS
 * settings, host:port), taken out of the pool, or NULL.  vetted, when not
 * NULL, are the addresses the family allowed for this request: a connection
 * to any other address is not used.  A connection private to another client
 * connection is never returned; one private to c is preferred (its
 * connection-bound authentication lives there).
 */
static struct upconn *pool_get(struct gw_worker *w, const char *key, const struct gw_conn *c,
    const struct gw_dns_result *vetted)
{
	struct gw_pool *p = w->pool;
	struct upconn *shared = NULL;

	if (key[0] == '\0')
		return NULL;
	for (struct upconn *u = p->b[key_hash32(key) % POOL_BUCKETS]; u != NULL; u = u->pnext) {
		if ((u->owner != NULL && u->owner != c) || strcmp(u->key, key) != 0 ||
		    (vetted != NULL && !addr_vetted(vetted, &u->peer)))
			continue;
		if (u->owner == c) {
			shared = u;
			break;
		}
		if (shared == NULL) {
			shared = u;
			if (!c->has_private)
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

static void pool_private(struct upconn *u, struct gw_conn *c)
{
	if (u->owner == NULL)
		gw_debug("upstream %s: connection-bound authentication: private to one client connection",
		    u->addr_str);
	u->owner = c;
	c->has_private = 1;
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

/* Close the pooled connections private to c (c is closing). */
void gw_upstream__drop_owned(struct gw_pool *p, const struct gw_conn *c)
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
	 * max_connections): past that the origin gets it closed, not kept */
	if (u->key[0] == '\0' || p->kcount[u->kh % POOL_CSLOTS] >= u->keepalive ||
	    p->n >= w->max_conns) {
		u->c = NULL;
		gw_upstream__free(u);
		return;
	}
	u->c = NULL;
	u->idle_since = gw_mono_now();
	if (u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
	/* watch for the origin closing it */
	if (!u->rd_armed) {
		event_add(&u->ev_rd, NULL);
		u->rd_armed = 1;
	}
	u->rd_on = 1;
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
	u->kh = key_hash32(u->key);
	event_assign(&u->ev_rd, w->base, fd, EV_READ | EV_PERSIST, up_rd_cb, u);
	event_assign(&u->ev_wr, w->base, fd, EV_WRITE | EV_PERSIST, up_wr_cb, u);
	event_assign(&u->ev_to, w->base, -1, 0, up_to_cb, u);
	return u;
}

void gw_upstream__free(struct upconn *u)
{
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

void gw_upstream__detach(struct gw_conn *c)
{
	struct upconn *u = c->up;

	c->up = NULL;
	u->c = NULL;
	gw_upstream__free(u);
}

void gw_upstream__write(struct upconn *u)
{
	struct gw_conn *c = u->c;

	if (u->connecting)
		return;
	if (u->tls_hs)
		return;
	while (evbuffer_get_length(u->out) > 0) {
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
	size_t left = evbuffer_get_length(u->out);
	if (c != NULL && left == 0 && gw_relay_sp_held(c, SP_C2U) > 0) {
		if (gw_relay_sp_out(c, SP_C2U) < 0) {
			/* as above; what the client sends from now on is dropped by
			 * the evbuffer path (the pipe cannot be drained unread) */
			u->eof = 1;
			c->sp->failed |= 1u << SP_C2U;
			gw_relay_sp_drop(c->sp, SP_C2U);
			gw_relay_up_rd_enable(u, 1);
			event_active(&u->ev_rd, EV_READ, 0);
		}
		left = gw_relay_sp_held(c, SP_C2U);
	}
	if (c != NULL && c->state == CS_BUSY && c->rq != NULL && !c->rq->reqx.done) {
		/* sending the request body: a stalled upstream is timed out */
		if (left > 0)
			set_timer(&u->ev_to, TO(c)->upstream_response);
		else
			event_del(&u->ev_to);
	}
	if (left > 0 && !u->wr_on) {
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
	} else if (left == 0 && u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
	if (c != NULL && left < HIWAT && u->cl_paused && !gw_relay_sp_full(c, SP_C2U)) {
		u->cl_paused = 0;
		if (c->state == CS_TUNNEL) {
			gw_relay_rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				gw_conn__tunnel_pump(c);
		} else if (c->rq != NULL && !c->rq->reqx.done) {
			c->rq->body_t0 = 0;   /* body rate: a new window (gw_upstream__pump_body) */
			gw_relay_rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				gw_upstream__pump_body(c);
		}
		return;
	}
	if (c != NULL && c->state == CS_TUNNEL && left == 0)
		gw_conn__tunnel_pump(c);
}

/* ---- retries and failures ---- */

/*
 * Offer the family a retry (e.g. on another server) after an upstream
 * failure at stage.  Returns 1 if the request was restarted.
 */
static int family_retry(struct gw_conn *c, int stage)
{
	struct gw_req *rq = c->rq;
	enum decision was;

	/* a tunnel may be retried elsewhere only while nothing was sent
	 * (e.g. the next parent proxy after a failed connect) */
	if (rq == NULL || c->proto->on_upstream_error == NULL || rq->resp_head_done ||
	    (rq->dec != DEC_PROXY && !(rq->dec == DEC_TUNNEL && stage == GW_UPFAIL_CONNECT)) ||
	    c->state != CS_BUSY)
		return 0;
	if (stage != GW_UPFAIL_CONNECT && gw_req_body_sent(rq))
		return 0;
	was = rq->dec;
	/* ask first: on "no", the caller may still relay the origin's answer,
	 * which lives in the upstream connection's buffer */
	rq->dec = DEC_NONE;
	if (!c->proto->on_upstream_error(rq, stage, c->side) || rq->dec == DEC_NONE) {
		rq->dec = was;
		return 0;
	}
	if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE) {
		/* the family answers instead (e.g. a stale cached copy) */
		if (c->up != NULL)
			gw_upstream__detach(c);
		gw_conn__send_local(rq);
		return 1;
	}
	if (rq->dec != was) {
		rq->dec = was;
		return 0;
	}
	if (c->up != NULL)
		gw_upstream__detach(c);
	rq->addr_idx = 0;
	rq->connect_err = 0;
	rq->retried = 1;   /* a fresh connection, not the pool */
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	gw_upstream__start(rq);
	return 1;
}

/* Fail the request with status (502/504) if nothing was sent to the client
 * yet, else cut the connection. */
void gw_upstream__failed(struct gw_conn *c, int status, const char *reason)
{
	struct gw_req *rq = c->rq;

	if (reason == NULL)
		reason = "out of memory";   /* its copy failed; the answer is a 503 (rq->oom) */
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	if (c->up != NULL)
		gw_upstream__detach(c);
	if (rq == NULL) {
		gw_conn__close(c, GW_CLOSE_UPSTREAM_ERROR);
		return;
	}
	gw_info("%s: request %s from %s: upstream %s: %s", c->proto->name, rq->id, gw_req_client_str(rq),
	    rq->upstream_str[0] ? rq->upstream_str : (rq->up_host ? rq->up_host : "-"), reason);
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

/* ---- request out ---- */

/*
 * Write rq's head to u->out.  Returns 0, or -1 when the head would not frame
 * the body (the invariant below): then nothing must be sent on u.
 */
static int send_request_head(struct gw_req *rq, struct upconn *u)
{
	const struct gw_http_head *h = &rq->head;
	struct evbuffer *o = u->out;
	const char *via = rq->c->snap->conf->global.via_name;
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
		gw_h1out_via(&hb, h->version_minor, via);
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
static void upstream_ready(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;

	if (rq->dec == DEC_TUNNEL && rq->tun_target != NULL && !rq->tun_ok) {
		/* through a parent: ask it first; parent_answer() goes on */
		evbuffer_add_printf(u->out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", rq->tun_target,
		    rq->tun_target);
		if (rq->tun_extra_len > 0)
			evbuffer_add(u->out, rq->tun_extra, rq->tun_extra_len);
		evbuffer_add(u->out, GW_STRLIT("\r\n"));
		rq->tun_wait = 1;
		set_timer(&u->ev_to, TO(c)->upstream_response);
		gw_relay_up_rd_enable(u, 1);
		gw_upstream__write(u);
		return;
	}
	if (rq->dec == DEC_TUNNEL) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		rq->status = 200;
		rq->resp_head_done = 1;
		gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_TUNNELS], 1);
		evbuffer_add(c->out, ok, sizeof ok - 1);
		c->state = CS_TUNNEL;
		gw_conn__timer(c, TO_TUNNEL);
		gw_relay_rd_enable(c, 1);
		gw_relay_up_rd_enable(u, 1);
		gw_conn__write(c);
		if (c->state == CS_TUNNEL)
			gw_conn__tunnel_pump(c);
		return;
	}
	if ((rq->head.flags & GW_HF_EXPECT_CONTINUE) && !rq->reqx.done &&
	    rq->head.version_minor == 1 && !rq->sent_continue) {
		evbuffer_add(c->out, GW_STRLIT("HTTP/1.1 100 Continue\r\n\r\n"));
		rq->sent_continue = 1;
	}
	if (u->owner == NULL && head_conn_bound(&rq->head, GW_STRLIT("authorization")))
		pool_private(u, c);
	rq->up_sent = gw_mono_now();   /* first-byte time runs from here */
	if (send_request_head(rq, u) < 0) {
		gw_error("%s: request %s: not sent: its body would go upstream without framing",
		    c->proto->name, rq->id);
		gw_upstream__detach(c);   /* with the head bytes: none of it is sent */
		gw_conn__respond_error(rq, 500, "request body without framing");
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
		set_timer(&u->ev_to, TO(c)->upstream_response);
	else if (u->reused)
		event_del(&u->ev_to);
	if (!rq->reqx.done) {
		gw_relay_rd_enable(c, 1);
		gw_conn__timer(c, TO_BODY);
		gw_upstream__pump_body(c);
		if (c->state == CS_CLOSED || c->up != u)
			return;
	}
	gw_upstream__write(u);
	if (evbuffer_get_length(c->out) > 0)
		gw_conn__write(c);
}

void gw_upstream__pump_body(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	size_t before = evbuffer_get_length(c->in);

	if (u == NULL || rq == NULL || rq->reqx.done)
		return;
	if (gw_relay_xfer_pump(&rq->reqx, c->in, u->out) < 0) {
		rq->close_after = 1;
		if (!rq->resp_head_done) {
			gw_upstream__detach(c);
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
			gw_upstream__detach(c);
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

/* ---- connect, DNS ---- */

static void on_connected(struct gw_conn *c)
{
	struct upconn *u = c->up;
	struct gw_req *rq = c->rq;

	u->connecting = 0;
	event_del(&u->ev_wr);
	u->wr_on = 0;
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_CONNECTS], 1);
	if (rq->up_t0 > 0) {
		gw_hist_observe(c->w->id, GW_H_UP_CONNECT, gw_req__metric_up(rq), gw_mono_now() - rq->up_t0);
		rq->up_t0 = 0;
	}
	if (rq->up_tls > 0) {
		u->ssl = gw_tls_upstream_ssl(c->snap->tls, rq->up_tls - 1, rq->up_host);
		if (u->ssl == NULL || SSL_set_fd(u->ssl, u->fd) != 1) {
			gw_upstream__detach(c);
			gw_upstream__failed(c, 502, "upstream TLS: cannot create a session");
			return;
		}
		SSL_set_connect_state(u->ssl);
		u->tls_hs = 1;
		up_handshake(u);   /* the connect timer keeps running until it completes */
		return;
	}
	event_del(&u->ev_to);
	upstream_ready(c);
}

static void connect_next(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
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
		struct upconn *u = up_new(c->w, fd, rq->pool_key);
		if (u == NULL) {
			close(fd);
			last_err = ENOMEM;
			break;
		}
		snprintf(u->addr_str, sizeof u->addr_str, "%s", rq->upstream_str);
		memcpy(&u->peer, sa, rq->addrs->lens[i] < sizeof u->peer ? rq->addrs->lens[i] : sizeof u->peer);
		u->keepalive = rq->keepalive;
		u->c = c;
		c->up = u;
		if (r == 0) {
			on_connected(c);
			return;
		}
		u->connecting = 1;
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
		set_timer(&u->ev_to, TO(c)->upstream_connect);
		return;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "cannot connect: %s", last_err ? strerror(last_err) : "no address");
	if (family_retry(c, GW_UPFAIL_CONNECT))
		return;
	gw_upstream__failed(c, last_err == ETIMEDOUT ? 504 : 502, gw_req_strndup(rq, msg, strlen(msg)));
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
	struct gw_conn *c = rq->c;
	size_t hl = strlen(rq->up_host);
	const char *tid = rq->up_tls ? gw_tls_upstream_id(c->snap->tls, rq->up_tls - 1) : "";
	size_t tl = strlen(tid);
	char *k = rq->pool_key = gw_req_alloc(rq, hl + tl + 12);
	unsigned port = rq->up_port;
	char num[8];
	int i = (int)sizeof num;

	if (k == NULL)
		return;   /* rq->oom: gw_upstream__start fails the request */
	if (hl + tl + 11 >= POOL_KEY_MAX) {
		k[0] = '\0';
		return;
	}
	*k++ = (char)('0' + c->proto->family);
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
	struct gw_conn *c = rq->c;
	struct upconn *u;

	if (rq->dec != DEC_PROXY || rq->upgrade || rq->retried ||
	    (u = pool_get(c->w, rq->pool_key, c, vetted)) == NULL)
		return 0;
	u->c = c;
	u->reused = 1;
	u->got_bytes = 0;
	u->keepalive = rq->keepalive;
	c->up = u;
	memcpy(rq->upstream_str, u->addr_str, sizeof rq->upstream_str);
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_REUSED], 1);
	upstream_ready(c);
	return 1;
}

static void resolved(struct gw_req *rq, const struct gw_dns_result *res)
{
	struct gw_conn *c = rq->c;
	int n = 0;

	rq->refused_status = 0;
	if (res->naddrs == 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "cannot resolve %s: %s", rq->up_host, res->error);
		gw_stat_add(&c->w->stats->dns_failures, 1);
		gw_upstream__failed(c, 502, gw_req_strndup(rq, msg, strlen(msg)));
		return;
	}
	if (rq->addrs == NULL && (rq->addrs = gw_req_alloc(rq, sizeof *rq->addrs)) == NULL) {
		gw_conn__oom(rq);
		return;
	}
	memset(rq->addrs, 0, sizeof *rq->addrs);
	for (int i = 0; i < res->naddrs; i++) {
		int st = 0;
		if (c->proto->on_resolved != NULL)
			st = c->proto->on_resolved(rq, (const struct sockaddr *)&res->addrs[i], c->side);
		if (rq->dec == DEC_RESPOND) {
			/* the family refused with its own page */
			gw_conn__send_local(rq);
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
		gw_conn__respond_error(rq, rq->refused_status, "destination address not allowed");
		return;
	}
	if (c->proto->on_resolved != NULL && pool_reuse(rq, rq->addrs))
		return;
	connect_next(rq);
}

static void dns_done(void *arg, const struct gw_dns_result *res)
{
	struct gw_req *rq = arg;

	rq->dnsq = NULL;
	if (rq->c->to_kind == TO_DNS)
		event_del(&rq->c->ev_to);
	resolved(rq, res);
}

void gw_upstream__start(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	struct gw_dns_result res;
	int r;

	if (!rq->oom)
		pool_key_make(rq);
	if (rq->oom) {   /* the decision (host, path, CONNECT line) or the key lacks parts */
		gw_conn__oom(rq);
		return;
	}
	/* a family that vets addresses (on_resolved) takes a pooled connection
	 * only after its checks passed, from resolved() */
	if (c->proto->on_resolved == NULL && pool_reuse(rq, NULL))
		return;
	gw_stat_add(&c->w->stats->dns_queries, 1);
	r = gw_dns_resolve(c->w->dns, rq->up_host, rq->up_port, &res, dns_done, rq, &rq->dnsq);
	if (r == 0) {
		/* evdns's own timeout does not cover a query waiting in its queue
		 * (over 64 in flight): upstream_connect bounds the resolution too
		 * (client_to_cb).  A background request keeps its TO_BG bound. */
		if (c->to_kind != TO_BG)
			gw_conn__timer(c, TO_DNS);
		return;  /* dns_done() continues */
	}
	resolved(rq, &res);
}

/* ---- response in ---- */

/* Start over on a fresh connection after a pooled one failed before answering. */
static int retry_fresh(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;

	if (rq == NULL || u == NULL || !u->reused || u->got_bytes || rq->retried ||
	    rq->head.body != GW_BODY_NONE || rq->resp_head_done)
		return 0;
	rq->retried = 1;
	gw_upstream__detach(c);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	rq->sent_continue = 0;
	gw_debug("request %s: pooled upstream connection closed; retrying on a new one", rq->id);
	gw_upstream__start(rq);
	return 1;
}

static void resp_tap(void *arg, const char *p, size_t n)
{
	struct gw_req *rq = arg;

	rq->c->proto->on_response_body(rq, p, n, rq->c->side);
}

/* Relay the final response head.  Returns 1 when the family chose in
 * on_response_head to answer by itself instead (nothing was written); -1
 * when the head would not frame the body (the invariant below; nothing was
 * written, the caller fails the exchange). */
static int relay_response_head(struct gw_conn *c, const struct gw_http_head *r)
{
	struct gw_req *rq = c->rq;
	struct evbuffer *o = c->out;
	const char *via = c->snap->conf->global.via_name;
	int to_http10 = rq->head.version_minor == 0;
	const char *date;
	struct gw_h1out hb;
	size_t before;
	int framing = 0;           /* framing fields written */

	rq->status = r->status;
	rq->resp_http10 = r->version_minor == 0;
	rq->resp_conn_close = (r->flags & GW_HF_CONN_CLOSE) != 0 ||
	    (rq->resp_http10 && !(r->flags & GW_HF_CONN_KEEPALIVE));
	rq->respx.kind = r->body;
	rq->respx.remaining = r->content_length;
	gw_chunked_init(&rq->respx.ck);
	rq->respx.done = r->body == GW_BODY_NONE || (r->body == GW_BODY_LENGTH && r->content_length == 0);
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

	if (c->proto->on_response_head != NULL) {
		c->proto->on_response_head(rq, r, c->side);
		if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE || rq->oom)
			return 1;   /* (out of memory: send_local answers 503) */
	}
	if (c->proto->on_response_body != NULL) {
		rq->respx.tap = resp_tap;
		rq->respx.tap_arg = rq;
	}
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
		if (r->status == 204 && gw_h1out_hdr_is(x, "content-length"))
			continue;   /* RFC 9110 8.6: never on a 204 */
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
	if (rq->respx.out_chunked) {
		GW_H1OUT_LIT(&hb, "Transfer-Encoding: chunked\r\n");
		framing++;
	}
	/* The writer's invariant, checked always: a body goes to the client
	 * with exactly one framing field, or delimited by the close of the
	 * connection (announced: Connection: close below); a Content-Length
	 * body always with its Content-Length.  Else the client would read
	 * the body, or the next response, as something else. */
	if (framing > 1 || (framing == 0 && ((r->body == GW_BODY_LENGTH && r->content_length > 0) ||
	    ((r->body == GW_BODY_CHUNKED || r->body == GW_BODY_CLOSE) && !rq->close_after)))) {
		gw_error("%s: request %s: response not relayed: its body would go to the client "
		    "without framing", c->proto->name, rq->id);
		hb.len = 0;
		if (gw_relay_truncate(o, before) < 0)
			gw_conn__close(c, GW_CLOSE_INTERNAL);
		return -1;
	}
	if (rq->close_after)
		GW_H1OUT_LIT(&hb, "Connection: close\r\n");
	else if (to_http10)
		GW_H1OUT_LIT(&hb, "Connection: keep-alive\r\n");
	GW_H1OUT_LIT(&hb, "\r\n");
	gw_h1out_flush(&hb);
	rq->resp_head_done = 1;
	return 0;
}

/* Handle bytes from the upstream: heads (1xx, 101, final), then the body. */
void gw_upstream__response(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	const struct conf_limits *L = &c->snap->conf->global.limits;

	if (rq == NULL || u == NULL)
		return;
	while (!rq->resp_head_done) {
		struct gw_http_limits lim = { (size_t)L->max_header_bytes * 2, SCRATCH_HDRS,
			(size_t)L->max_uri_bytes };
		struct gw_http_head r;
		size_t len = evbuffer_get_length(u->in);
		const char *p;

		if (len > 0 && rq->up_sent > 0) {
			gw_hist_observe(c->w->id, GW_H_UP_FIRST_BYTE, gw_req__metric_up(rq), gw_mono_now() - rq->up_sent);
			rq->up_sent = 0;
		}
		ssize_t n;

		if (len == 0) {
			if (u->eof) {
				if (retry_fresh(c) || family_retry(c, GW_UPFAIL_RESET))
					return;
				gw_upstream__failed(c, 502, "upstream closed the connection before answering");
			} else if (evbuffer_get_length(c->out) > 0) {
				gw_conn__write(c);   /* interim responses relayed above */
			}
			return;
		}
		if (len > lim.max_header_bytes + 8)
			len = lim.max_header_bytes + 8;
		p = (const char *)evbuffer_pullup(u->in, (ev_ssize_t)len);
		memset(&r, 0, sizeof r);
		r.hdrs = (struct gw_hdr *)c->w->scratch;
		r.hdrs_cap = SCRATCH_HDRS;
		n = gw_http1_parse_response(p, len, &lim, rq->head.method, &r);
		if (n == 0) {
			if (u->eof)
				gw_upstream__failed(c, 502, "upstream closed the connection inside the response head");
			else if (len >= lim.max_header_bytes)
				gw_upstream__failed(c, 502, "upstream response head too large");
			else if (evbuffer_get_length(c->out) > 0)
				gw_conn__write(c);   /* interim responses relayed above */
			return;
		}
		if (n < 0) {
			gw_upstream__failed(c, 502, r.err_reason ? r.err_reason : "invalid response head");
			return;
		}
		if (r.status >= 100 && r.status < 200 && r.status != 101) {
			/* interim response: passed on to HTTP/1.1 clients as it comes
			 * (never a 100: ours went out already, or the client did not
			 * ask), under the same backpressure as a body, and at most
			 * MAX_INTERIM per request: an origin that streams 1xx forever
			 * must hold neither our memory nor the connection */
			if (++rq->interim > MAX_INTERIM) {
				gw_upstream__failed(c, 502, "too many interim (1xx) responses");
				return;
			}
			if (rq->head.version_minor == 1 && r.status != 100) {
				evbuffer_add_printf(c->out, "HTTP/1.1 %d %.*s\r\n", r.status,
				    (int)r.reason_len, r.reason);
				for (size_t i = 0; i < r.nhdrs; i++)
					if (!gw_h1out_hop_by_hop(&r.hdrs[i]) && !gw_h1out_conn_listed(&r, &r.hdrs[i]))
						evbuffer_add_printf(c->out, "%.*s: %.*s\r\n",
						    (int)r.hdrs[i].name_len, r.hdrs[i].name,
						    (int)r.hdrs[i].value_len, r.hdrs[i].value);
				evbuffer_add(c->out, GW_STRLIT("\r\n"));
			}
			evbuffer_drain(u->in, (size_t)n);
			if (evbuffer_get_length(c->out) >= HIWAT) {
				/* gw_conn__write() reads on once the client took it */
				gw_relay_up_rd_enable(u, 0);
				c->up_paused = 1;
				gw_conn__write(c);
				return;
			}
			continue;
		}
		if (r.status == 101) {
			if (!rq->upgrade) {
				gw_upstream__failed(c, 502, "upstream switched protocols without an Upgrade request");
				return;
			}
			/* relay the 101 and become a tunnel */
			rq->status = 101;
			evbuffer_add(c->out, GW_STRLIT("HTTP/1.1 101 Switching Protocols\r\n"));
			for (size_t i = 0; i < r.nhdrs; i++) {
				const struct gw_hdr *x = &r.hdrs[i];
				/* hop-by-hop as in any head, but Upgrade (named by
				 * Connection: upgrade) goes on with the tunnel; no
				 * framing fields: what follows is not HTTP */
				if (((gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(&r, x)) && !gw_h1out_hdr_is(x, "upgrade")) ||
				    gw_h1out_hdr_is(x, "content-length"))
					continue;
				evbuffer_add_printf(c->out, "%.*s: %.*s\r\n", (int)x->name_len, x->name,
				    (int)x->value_len, x->value);
			}
			evbuffer_add(c->out, GW_STRLIT("Connection: upgrade\r\n\r\n"));
			evbuffer_drain(u->in, (size_t)n);
			rq->resp_head_done = 1;
			rq->reqx.done = 1;
			event_del(&u->ev_to);
			gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_TUNNELS], 1);
			c->state = CS_TUNNEL;
			gw_conn__timer(c, TO_TUNNEL);
			gw_relay_rd_enable(c, 1);
			gw_conn__write(c);
			if (c->state == CS_TUNNEL)
				gw_conn__tunnel_pump(c);
			return;
		}
		if ((r.status == 401 && head_conn_bound(&r, GW_STRLIT("www-authenticate"))) ||
		    (r.status == 407 && head_conn_bound(&r, GW_STRLIT("proxy-authenticate"))))
			pool_private(u, c);
		if ((r.status == 502 || r.status == 503) && !gw_req_body_sent(rq) &&
		    (rq->head.method == GW_M_GET || rq->head.method == GW_M_HEAD ||
		    rq->head.method == GW_M_OPTIONS || rq->head.method == GW_M_PUT ||
		    rq->head.method == GW_M_DELETE || rq->head.method == GW_M_TRACE) &&
		    family_retry(c, GW_UPFAIL_STATUS))
			return;
		int relayed = relay_response_head(c, &r);
		if (relayed < 0) {
			if (c->state != CS_CLOSED)
				gw_upstream__failed(c, 502, "response body without framing");
			return;
		}
		if (relayed) {
			/* answered locally: release the upstream, pooled if it is clean */
			int reuse = r.body == GW_BODY_NONE && !(r.flags & GW_HF_CONN_CLOSE) &&
			    r.version_minor == 1 && rq->reqx.done;
			evbuffer_drain(u->in, (size_t)n);
			reuse = reuse && evbuffer_get_length(u->in) == 0 && !u->eof;
			c->up = NULL;
			u->c = NULL;
			if (reuse)
				gw_upstream__pool_put(c->w, u);
			else
				gw_upstream__free(u);
			rq->resp_head_done = 0;
			gw_conn__send_local(rq);
			return;
		}
		evbuffer_drain(u->in, (size_t)n);
	}
	event_del(&u->ev_to);
	if (!rq->respx.done) {
		if (gw_relay_xfer_pump(&rq->respx, u->in, c->out) < 0) {
			gw_upstream__failed(c, 502, "invalid chunked response body");
			return;
		}
		if (!rq->respx.done && u->eof) {
			if (rq->respx.kind == GW_BODY_CLOSE) {
				rq->respx.done = 1;
				if (rq->respx.out_chunked)
					evbuffer_add(c->out, GW_STRLIT("0\r\n\r\n"));
			} else {
				gw_conn__write(c);
				if (c->state != CS_CLOSED) {
					rq->reason = "upstream closed mid-body";
					gw_conn__close(c, GW_CLOSE_UPSTREAM_ERROR);
				}
				return;
			}
		}
		if (!rq->respx.done)
			set_timer(&u->ev_to, TO(c)->upstream_response);
	}
	if (rq->respx.done) {
		gw_relay_up_rd_enable(u, 0);   /* (the timer went above) */
		if (!rq->resp_ended && c->proto->on_response_end != NULL) {
			/* the whole body came from the upstream: a cache can
			 * commit now, not after the last write to the client
			 * (a request on another worker must not miss it) */
			rq->resp_ended = 1;
			c->proto->on_response_end(rq, 1, c->side);
		}
	} else if (evbuffer_get_length(c->out) >= HIWAT) {
		gw_relay_up_rd_enable(u, 0);
		c->up_paused = 1;
	}
	gw_conn__write(c);
}

/* ---- TLS handshake ---- */

static void up_handshake(struct upconn *u)
{
	struct gw_conn *c = u->c;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(u->ssl);
	if (r == 1) {
		u->tls_hs = 0;
		event_del(&u->ev_wr);
		u->wr_on = 0;
		event_del(&u->ev_to);
		if (!u->rd_armed) {
			event_add(&u->ev_rd, NULL);
			u->rd_armed = 1;
		}
		u->rd_on = 1;
		upstream_ready(c);
		return;
	}
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
		if (!u->rd_armed) {
			event_add(&u->ev_rd, NULL);
			u->rd_armed = 1;
		}
		u->rd_on = 1;
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
		struct gw_req *rq = c->rq;
		char buf[200], msg[300];
		long vr = SSL_get_verify_result(u->ssl);
		ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
		ERR_clear_error();
		if (vr != X509_V_OK)
			snprintf(msg, sizeof msg, "upstream TLS: certificate verification failed: %s",
			    X509_verify_cert_error_string(vr));
		else
			snprintf(msg, sizeof msg, "upstream TLS handshake failed: %s", buf);
		gw_upstream__detach(c);
		if (family_retry(c, GW_UPFAIL_CONNECT))
			return;
		gw_upstream__failed(c, 502, gw_req_strndup(rq, msg, strlen(msg)));
	}
}

#define PARENT_HEAD_MAX (16 * 1024)

/* ---- event callbacks ---- */

/* The parent's answer to our CONNECT (gw_req_tunnel_via): 2xx opens the
 * tunnel (bytes after its head are the target's); anything else is 502. */
static void parent_answer(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	struct evbuffer_ptr end = evbuffer_search(u->in, "\r\n\r\n", 4, NULL);
	char line[80], *reason;
	size_t n;
	int status = 0;

	if (end.pos < 0) {
		if (evbuffer_get_length(u->in) > PARENT_HEAD_MAX)
			gw_upstream__failed(c, 502, "parent proxy: CONNECT answer head too large");
		else if (u->eof)
			gw_upstream__failed(c, 502, "parent proxy closed without answering CONNECT");
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
		gw_upstream__failed(c, 502, reason);
		return;
	}
	rq->tun_ok = 1;
	upstream_ready(c);
}

static void up_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_conn *c;
	ssize_t n;

	GW_CHECK_OBJ(u, UP_MAGIC);
	c = u->c;
	if (c != NULL)
		GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	if (c != NULL && u->tls_hs) {
		up_handshake(u);
		return;
	}
	if (c != NULL && gw_relay_read_unwanted(&u->ev_rd, u->rd_on, &u->rd_armed))
		return;
	if (c == NULL && u->ssl != NULL) {
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
	if (c == NULL) {
		/* pooled: any byte or EOF means it is no longer usable */
		pool_unlink(u->w->pool, u);
		gw_upstream__free(u);
		return;
	}
	if (!u->eof && u->rd_on) {
		if (c->state == CS_TUNNEL && gw_relay_sp_ready(c, SP_U2C)) {
			n = gw_relay_sp_in(c, SP_U2C);
		} else {
			n = gw_relay_read(u->fd, u->ssl, u->in, &u->rd_big);
			if (c->state == CS_TUNNEL)
				gw_relay_sp_maybe_make(c, SP_U2C, n);
		}
		if (n == 0 || n == -1) {
			u->eof = 1;
			gw_relay_up_rd_enable(u, 0);
		} else if (n > 0) {
			u->got_bytes = 1;
		}
	}
	if (c->state == CS_TUNNEL) {
		gw_conn__timer(c, TO_TUNNEL);
		gw_conn__tunnel_pump(c);
	} else if (c->rq != NULL && c->rq->tun_wait) {
		parent_answer(c);
	} else {
		gw_upstream__response(c);
	}
	/* gw_relay_read stopped at READ_MAX with records read ahead into OpenSSL,
	 * where epoll cannot see them (the client side: end of client_rd_cb) */
	if (c->state != CS_CLOSED && c->up == u && u->ssl != NULL && u->rd_on && !u->eof &&
	    SSL_has_pending(u->ssl))
		event_active(&u->ev_rd, EV_READ, 0);
}

static void up_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_conn *c;

	GW_CHECK_OBJ(u, UP_MAGIC);
	c = u->c;
	if (c != NULL)
		GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	if (u->connecting) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			struct gw_req *rq = c->rq;
			gw_debug("connect to %s failed: %s", u->addr_str, strerror(err));
			rq->connect_err = err;
			gw_upstream__detach(c);
			connect_next(rq);
			return;
		}
		on_connected(c);
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
	struct gw_conn *c;

	GW_CHECK_OBJ(u, UP_MAGIC);
	c = u->c;
	if (c != NULL)
		GW_CHECK_OBJ(c, CONN_MAGIC);
	(void)fd;
	(void)what;
	if (c == NULL) {
		pool_unlink(u->w->pool, u);
		gw_upstream__free(u);
		return;
	}
	if (u->connecting || u->tls_hs) {
		struct gw_req *rq = c->rq;
		gw_upstream__detach(c);
		rq->connect_err = ETIMEDOUT;
		if (rq->addrs != NULL && rq->addr_idx < rq->addrs->naddrs) {
			connect_next(rq);
			return;
		}
		if (family_retry(c, GW_UPFAIL_CONNECT))
			return;
		gw_upstream__failed(c, 504, "upstream connect timeout");
		return;
	}
	if (family_retry(c, GW_UPFAIL_TIMEOUT))
		return;
	gw_upstream__failed(c, 504, "upstream response timeout");
}
