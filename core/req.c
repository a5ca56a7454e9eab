/*
 * core/req: the family API of core/proto.h, independent of how the request
 * arrived: accessors, the decisions (proxy, tunnel, respond, file, read the
 * body), header edits, log fields, memory from the request's arena, and the
 * request's life: gw_req__new when a head is parsed, gw_req__log_free at
 * its end (the family's end hooks, stats, latency and the access-log
 * record).  Deferral (gw_req_defer/wake) and background requests
 * (gw_req_spawn) act on the connection and live in core/conn.c.
 */
#include "core/proto.h"

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
#include "core/climit.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/dns.h"
#include "core/hist.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/status.h"
#include "core/tls.h"
#include "core/upstream.h"
#include "core/worker.h"

#include "core/conn_int.h"
#include "core/strlit.h"

/* ---- addresses ---- */

/* "a.b.c.d" for the 4 bytes at a, into buf; returns buf. */
static char *ipv4_fmt(const unsigned char *a, char *buf)
{
	char *o = buf;

	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (v >= 100)
			*o++ = (char)('0' + v / 100);
		if (v >= 10)
			*o++ = (char)('0' + v / 10 % 10);
		*o++ = (char)('0' + v % 10);
		*o++ = i < 3 ? '.' : '\0';
	}
	return buf;
}

/* An address's numeric form (IPv4-mapped IPv6 as IPv4) into buf
 * (INET6_ADDRSTRLEN bytes); returns buf. */
char *gw_req__sa_fmt(const union gw_sa *sa, char *buf)
{
	if (sa->sa.sa_family == AF_INET6) {
		const struct in6_addr *a = &sa->in6.sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return ipv4_fmt(&a->s6_addr[12], buf);
		if (inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN) == NULL)
			buf[0] = '\0';
		return buf;
	}
	return ipv4_fmt((const unsigned char *)&sa->in.sin_addr, buf);
}

static int wants_html(const struct gw_http_head *h)
{
	const struct gw_hdr *a = h->hdrs != NULL ? gw_http1_find(h, "accept") : NULL;

	return a != NULL && memmem(a->value, a->value_len, GW_STRLIT("text/html")) != NULL;
}

/* ---- the request API for families ---- */

const struct gw_http_head *gw_req_head(const struct gw_req *rq) { return &rq->head; }
const struct sockaddr *gw_req_client(const struct gw_req *rq)
{
	return rq->client != NULL ? &rq->client->sa : (const struct sockaddr *)rq->peer;
}

const struct sockaddr *gw_req_peer(const struct gw_req *rq) { return (const struct sockaddr *)rq->peer; }

int gw_req_set_client(struct gw_req *rq, const struct sockaddr *sa)
{
	size_t n = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : 0;

	if (n == 0)
		return -1;
	if (rq->client == NULL && (rq->client = gw_req_alloc(rq, sizeof *rq->client)) == NULL)
		return -1;
	memset(rq->client, 0, sizeof *rq->client);
	memcpy(rq->client, sa, n);
	rq->client_str[0] = '\0';     /* made again from the new address */
	return 0;
}

const char *gw_req_peer_str(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (rq->client == NULL)
		return gw_req_client_str(rq);
	if (m->peer_str == NULL && (m->peer_str = gw_req_alloc(m, INET6_ADDRSTRLEN)) == NULL)
		return "";
	if (m->peer_str[0] == '\0')
		gw_req__sa_fmt(rq->peer, m->peer_str);
	return m->peer_str;
}

/* Both made on first use, into the request (they are not kept per
 * connection: idle connections are many, and few requests ask). */
const char *gw_req_client_str(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (m->client_str[0] == '\0') {
		if (rq->client != NULL)
			gw_req__sa_fmt(rq->client, m->client_str);
		else if (rq->peer != NULL)
			gw_req__sa_fmt(rq->peer, m->client_str);
		else
			memcpy(m->client_str, "-", 2);   /* an exchange nobody asked for (health check) */
	}
	return m->client_str;
}

const struct sockaddr *gw_req_local(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (m->local == NULL) {
		static const union gw_sa none;   /* out of memory: no address */
		socklen_t len = sizeof *m->local;
		m->local = gw_req_alloc(m, sizeof *m->local);
		if (m->local == NULL)
			return &none.sa;
		if (rq->c == NULL || getsockname(rq->c->fd, &m->local->sa, &len) < 0)
			memset(m->local, 0, sizeof *m->local);
	}
	return &m->local->sa;
}
const char *gw_req_id(const struct gw_req *rq) { return rq->id; }
const struct conf *gw_req_conf(const struct gw_req *rq) { return rq->snap->conf; }
int gw_req_is_tls(const struct gw_req *rq) { return rq->tls; }
const char *gw_req_sni(const struct gw_req *rq)
{
	return rq->c != NULL && rq->c->ssl ? SSL_get_servername(rq->c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

struct ssl_st *gw_req_client_ssl(const struct gw_req *rq)
{
	return rq->c != NULL ? rq->c->ssl : NULL;
}

void gw_req_upstream_tls(struct gw_req *rq, int upstream)
{
	rq->up_tls = upstream + 1;
}

void gw_req_upstream_h2(struct gw_req *rq)
{
	rq->up_h2 = 1;
}

void gw_req_upstream_h2_ping(struct gw_req *rq, double interval, double timeout)
{
	rq->up_ping_iv = interval > 0 ? interval : -1;
	rq->up_ping_to = timeout;
}

void gw_req_upstream_keepalive(struct gw_req *rq, unsigned n)
{
	rq->keepalive = n;
}

void *gw_req_alloc(struct gw_req *rq, size_t n)
{
	void *p = gw_arena_alloc(&rq->arena, n);

	if (p == NULL)
		rq->oom = 1;   /* the request fails with 503 (gw_conn__oom) */
	return p;
}

char *gw_req_strndup(struct gw_req *rq, const char *s, size_t n)
{
	char *p = gw_arena_raw(&rq->arena, n + 1);

	if (p == NULL) {
		rq->oom = 1;   /* as gw_req_alloc */
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void gw_req_proxy(struct gw_req *rq, const char *host, size_t host_len, uint16_t port,
    const char *path, size_t path_len)
{
	rq->dec = DEC_PROXY;
	rq->up_host = gw_req_strndup(rq, host, host_len);
	rq->up_port = port;
	rq->keepalive = POOL_KEEPALIVE;
	rq->up_h2 = 0;   /* (a retry on another upstream says again) */
	rq->up_ping_iv = rq->up_ping_to = 0;
	if (path == NULL) {
		path = rq->head.path;
		path_len = rq->head.path_len;
		if (rq->head.flags & GW_HF_PATH_EMPTY) {
			/* "http://host" or "http://host?q": origin-form needs its "/"
			 * (RFC 9112 3.2.1), OPTIONS without a path means "*" */
			char *p = gw_req_alloc(rq, path_len + 2);
			if (p == NULL)
				return;   /* rq->oom: fails with 503 */
			if (rq->head.method == GW_M_OPTIONS && (path_len == 0 || path[0] != '?')) {
				p[0] = '*';
				path_len = 1;
			} else {
				p[0] = '/';
				if (path[0] == '?')
					memcpy(p + 1, path, path_len);
				path_len = path[0] == '?' ? path_len + 1 : 1;
			}
			rq->up_path = p;
			rq->up_path_len = path_len;
			return;
		}
	}
	rq->up_path = gw_req_strndup(rq, path, path_len);
	rq->up_path_len = path_len;
}

const char *gw_req_upstream_host(const struct gw_req *rq, uint16_t *port)
{
	*port = rq->up_port;
	return rq->up_host;
}

void gw_req_tunnel(struct gw_req *rq, const char *host, size_t host_len, uint16_t port)
{
	rq->dec = DEC_TUNNEL;
	rq->up_host = gw_req_strndup(rq, host, host_len);
	rq->up_port = port;
}

void gw_req_tunnel_via(struct gw_req *rq, const char *phost, size_t phost_len, uint16_t pport,
    const char *extra, size_t extra_len)
{
	int v6;
	size_t n;

	if (rq->up_host == NULL) {   /* gw_req_tunnel ran out of memory (rq->oom) */
		rq->oom = 1;
		return;
	}
	v6 = strchr(rq->up_host, ':') != NULL;
	n = strlen(rq->up_host) + 10;
	rq->tun_target = gw_req_alloc(rq, n);
	if (rq->tun_target == NULL)
		return;   /* rq->oom: fails with 503 */
	snprintf(rq->tun_target, n, "%s%s%s:%u", v6 ? "[" : "", rq->up_host, v6 ? "]" : "", rq->up_port);
	rq->tun_extra = extra != NULL ? gw_req_strndup(rq, extra, extra_len) : NULL;
	rq->tun_extra_len = extra != NULL ? extra_len : 0;
	rq->up_host = gw_req_strndup(rq, phost, phost_len);
	rq->up_port = pport;
}

void gw_req_respond(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, const char *detail)
{
	char page[4096];

	rq->dec = DEC_RESPOND;
	rq->status = status;
	if (body == NULL) {
		int html = wants_html(&rq->head);
		len = gw_status_page(page, sizeof page, status, html, detail, rq->id);
		body = page;
		content_type = html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
		if (detail != NULL && rq->reason == NULL)
			rq->reason = gw_req_strndup(rq, detail, strlen(detail));
	}
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->file_len = len;
	rq->body = gw_req_strndup(rq, body, len);
}

void gw_req_respond_ref(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, void (*cleanup)(const void *data, size_t len, void *arg), void *arg)
{
	rq->dec = DEC_RESPOND;
	rq->status = status;
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->body = NULL;
	rq->body_ref = body;
	rq->file_len = len;
	rq->body_cleanup = cleanup;
	rq->body_cleanup_arg = arg;
}

void gw_req_respond_file(struct gw_req *rq, int status, const char *content_type,
    int fd, uint64_t offset, uint64_t len)
{
	rq->dec = DEC_FILE;
	rq->status = status;
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->file_fd = fd;
	rq->file_off = offset;
	rq->file_len = len;
}

static void edit_add(struct gw_req *rq, struct gw_hdr_edit **list, const char *name,
    const char *value, size_t vlen, int del)
{
	/* the edit, its name and its value in one arena piece */
	size_t nlen;
	struct gw_hdr_edit *e;
	char *p;

	/* a name or value a family could not allocate: the request fails */
	if (name == NULL || (value == NULL && vlen > 0)) {
		rq->oom = 1;
		return;
	}
	nlen = strlen(name);
	e = gw_arena_raw(&rq->arena, sizeof *e + nlen + 1 + (value ? vlen + 1 : 0));
	if (e == NULL) {
		rq->oom = 1;   /* as gw_req_alloc */
		return;
	}
	p = (char *)(e + 1);
	memcpy(p, name, nlen + 1);
	e->name = p;
	e->nlen = nlen;
	e->value = NULL;
	if (value != NULL) {
		memcpy(p + nlen + 1, value, vlen);
		p[nlen + 1 + vlen] = '\0';
		e->value = p + nlen + 1;
	}
	e->vlen = vlen;
	e->del = del;
	e->next = *list;
	*list = e;
}

void gw_req_hdr_del(struct gw_req *rq, const char *name) { edit_add(rq, &rq->req_edits, name, NULL, 0, 1); }
void gw_req_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t vlen) { edit_add(rq, &rq->req_edits, name, value, vlen, 0); }
void gw_req_resp_hdr_del(struct gw_req *rq, const char *name) { edit_add(rq, &rq->resp_edits, name, NULL, 0, 1); }
void gw_req_resp_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t vlen) { edit_add(rq, &rq->resp_edits, name, value, vlen, 0); }
void gw_req_no_via(struct gw_req *rq) { rq->no_via = 1; }
void gw_req_log_no_query(struct gw_req *rq) { rq->log_no_query = rq->log_no_query ? rq->log_no_query : 1; }
void gw_req_log_no_path(struct gw_req *rq) { rq->log_no_query = 2; }
void gw_req_set_max_body(struct gw_req *rq, uint64_t max) { rq->max_body = max; }
void gw_req_set_verdict(struct gw_req *rq, const char *verdict, const char *rule) { rq->verdict = verdict; rq->rule = rule; }
void gw_req_set_user(struct gw_req *rq, const char *user) { rq->user = user; }
const char *gw_req_verdict(const struct gw_req *rq) { return rq->verdict; }
const char *gw_req_user(const struct gw_req *rq) { return rq->user; }
void gw_req_set_reason(struct gw_req *rq, const char *reason) { rq->reason = reason; }
void gw_req_set_metric_site(struct gw_req *rq, const char *site)
{
	rq->m_site = gw_hist_slot(GW_HT_SITE, site) + 1;
}
void gw_req_set_metric_upstream(struct gw_req *rq, const char *upstream)
{
	rq->m_up = gw_hist_slot(GW_HT_UPSTREAM, upstream) + 1;
}

/* The upstream label: the family's (reverse: the upstream name), else the
 * family name (forward has no upstream names: one label). */
int gw_req__metric_up(struct gw_req *rq)
{
	if (rq->m_up == 0)
		rq->m_up = gw_hist_slot(GW_HT_UPSTREAM, rq->proto->name) + 1;
	return rq->m_up - 1;
}

/*
 * The TO_BODY bound of a request body (HTTP/1 connection or HTTP/2
 * stream): client_body bounds the pause between body bytes, and
 * client_body_min_rate the average since the body started (after a grace
 * of client_body seconds), so a trickle of a byte per pause cannot hold the
 * exchange (and an upstream connection) forever.  The timer is cut to the
 * moment the average would fall under the rate if nothing more came;
 * rq->body_slow says which bound it is.
 */
double gw_req__body_timeout(struct gw_req *rq, const struct conf_timeouts *t)
{
	double now, due;

	rq->body_slow = 0;
	if (t->client_body_min_rate <= 0)
		return t->client_body;
	now = gw_mono_now();
	if (rq->body_t0 == 0) {
		rq->body_t0 = now;
		rq->body_n0 = rq->bytes_in;
	}
	due = rq->body_t0 + (double)(rq->bytes_in - rq->body_n0) / t->client_body_min_rate;
	if (due < rq->body_t0 + t->client_body)
		due = rq->body_t0 + t->client_body;
	if (due - now >= t->client_body)
		return t->client_body;
	rq->body_slow = 1;
	return due - now > 0.001 ? due - now : 0.001;
}

/* ---- request lifecycle ---- */

struct gw_req *gw_req__new_bare(struct gw_worker *w, struct gw_snapshot *snap,
    const struct gw_proto *proto, void *side)
{
	struct gw_arena_blk *a = gw_arena_spare(&w->pool->blks);
	struct gw_req *rq = gw_arena_alloc(&a, sizeof *rq);

	if (rq == NULL) {
		gw_arena_free(&w->pool->blks, a);
		return NULL;
	}
	rq->arena = a;
	rq->pool = w->pool;
	rq->w = w;
	rq->snap = snap;
	rq->proto = proto;
	rq->side = side;
	rq->start = gw_wall_now();
	rq->start_mono = gw_mono_now();
	rq->file_fd = -1;
	rq->max_body = snap->conf->global.limits.max_body_bytes;
	{
		/* "<6 hex process prefix><2 hex worker><8 hex sequence>" */
		static const char hex[] = "0123456789abcdef";
		uint64_t seq = ++w->req_seq;
		memcpy(rq->id, gw_id_prefix, 6);
		rq->id[6] = hex[(w->id >> 4) & 15];
		rq->id[7] = hex[w->id & 15];
		for (int i = 15; i >= 8; i--, seq >>= 4)
			rq->id[i] = hex[seq & 15];
		rq->id[16] = '\0';
	}
	return rq;
}

struct gw_req *gw_req__new(struct gw_conn *c)
{
	struct gw_req *rq = gw_req__new_bare(c->w, c->snap, c->proto, c->side);

	if (rq == NULL)
		return NULL;
	rq->c = c;
	rq->sink = &gw_conn_sink;
	rq->sink_arg = c;
	rq->owner = &c->upo;
	rq->peer = &c->peer;
	rq->tls = c->ssl != NULL;
	return rq;
}

void gw_req__log_free(struct gw_req *rq)
{
	struct gw_access_rec r;
	const struct gw_http_head *h = &rq->head;
	const struct gw_hdr *ua = NULL, *ref = NULL;
	int fam = rq->proto->family;
	int st = rq->status;

	if (rq->nest_relay) {   /* the CONNECT it carried is logged (core/conn_nest.c) */
		gw_req__free(rq);
		return;
	}
	if (rq->proto->on_response_end != NULL && rq->dec == DEC_PROXY && rq->resp_head_done &&
	    rq->status != 101 && !rq->resp_ended)
		rq->proto->on_response_end(rq, 0, rq->side);
	if (rq->proto->on_done != NULL && !rq->parse_error)
		rq->proto->on_done(rq, rq->side);
	/* counted whether or not anyone reads the log (/metrics may be all there is) */
	if (st >= 100 && st < 600)
		gw_stat_add(&rq->w->stats->fam[fam][GW_FC_STATUS_1XX + st / 100 - 1], 1);
	gw_stat_add(&rq->w->stats->fam[fam][GW_FC_BYTES_IN], rq->bytes_in);
	gw_stat_add(&rq->w->stats->fam[fam][GW_FC_BYTES_OUT], rq->bytes_out);
	{
		double took = gw_mono_now() - rq->start_mono;
		gw_hist_observe(rq->w->id, GW_H_REQ_FAMILY, fam, took);
		if (rq->m_site != 0)   /* the family gave a site label */
			gw_hist_observe(rq->w->id, GW_H_REQ_SITE, rq->m_site - 1, took);
	}
	if (!gw_access_enabled() && !gw_tail_enabled())
		goto logged;   /* nobody reads the line: do not format it */
	{
		memset(&r, 0, sizeof r);
		if (!rq->parse_error) {
			ua = gw_http1_find(h, "user-agent");
			ref = gw_http1_find(h, "referer");
		}
		r.start = rq->start;
		r.duration = gw_mono_now() - rq->start_mono;
		r.client = gw_req_client_str(rq);
		r.peer = rq->client != NULL ? gw_req_peer_str(rq) : NULL;
		r.family = rq->proto->name;
		r.method = h->method_str;
		r.method_len = h->method_len;
		r.target = h->target;
		r.target_len = h->target_len;
		if (rq->log_no_query && h->target != NULL) {
			const char *q = memchr(h->target, '?', h->target_len);
			if (q != NULL)
				r.target_len = (size_t)(q - h->target);
			/* h->path points into the target unless it is the static "/" */
			if (rq->log_no_query == 2 && h->path != NULL &&
			    (uintptr_t)h->path >= (uintptr_t)h->target &&
			    (uintptr_t)h->path < (uintptr_t)(h->target + h->target_len))
				r.target_len = (size_t)(h->path - h->target);
		}
		r.version_minor = h->version_minor;
		r.http2 = rq->h2s != NULL || rq->nest_h2;
		r.status = st;
		r.bytes_in = rq->bytes_in;
		r.bytes_out = rq->bytes_out;
		r.upstream = rq->upstream_str;
		r.upstream_h2 = rq->up_h2;
		r.user = rq->user;
		r.verdict = rq->verdict;
		r.rule = rq->rule;
		r.reason = rq->reason;
		r.request_id = rq->id;
		r.host = h->host_hdr ? h->host_hdr : h->host;
		r.host_len = h->host_hdr ? h->host_hdr_len : h->host_len;
		if (ua) { r.ua = ua->value; r.ua_len = ua->value_len; }
		if (ref) { r.referer = ref->value; r.referer_len = ref->value_len; }
		gw_access_log(&rq->w->alog, &r);
	}
logged:
	if (rq->dnsq != NULL) {
		gw_dns_cancel(rq->dnsq);
		rq->dnsq = NULL;
	}
	if (rq->deferred) {
		rq->orphan = 1;    /* freed when its gw_req_wake() arrives */
		return;
	}
	gw_req__free(rq);
}

void gw_req__free(struct gw_req *rq)
{
	if (rq->body_cleanup != NULL)
		rq->body_cleanup(rq->body_ref, rq->file_len, rq->body_cleanup_arg);
	if (rq->file_fd >= 0)
		close(rq->file_fd);
	if (rq->bodybuf != NULL)
		evbuffer_free(rq->bodybuf);
	if (rq->filt_in != NULL)
		evbuffer_free(rq->filt_in);
	if (rq->filt_out != NULL)
		evbuffer_free(rq->filt_out);
	if (rq->filt_head != NULL)
		evbuffer_free(rq->filt_head);
	gw_req_bump__free(rq);
	gw_arena_free(&rq->pool->blks, rq->arena);
}

int gw_req_alive(const struct gw_req *rq) { return !rq->orphan; }

void gw_req_read_body(struct gw_req *rq, uint64_t max)
{
	rq->dec = DEC_READBODY;
	rq->body_max = max;
}

/* (for a content adapter: see proto.h) */
int gw_req_rewrite(struct gw_req *rq, const struct gw_hdr *hdrs, size_t n, const char *body, size_t len)
{
	struct gw_http_head *h = &rq->head;
	struct gw_hdr *nh;

	/* only a whole buffered body not yet sent can be replaced: its
	 * framing (Content-Length) is then the core's, from len */
	if (!rq->body_buffered || !rq->body_complete || rq->up != NULL ||
	    h->body == GW_BODY_NONE || (rq->max_body > 0 && len > rq->max_body))
		return -1;
	if ((nh = gw_req_alloc(rq, (n + 1) * sizeof *nh)) == NULL)
		return -1;
	h->host_hdr = NULL;
	h->host_hdr_len = 0;
	for (size_t i = 0; i < n; i++) {
		char *nm = gw_req_strndup(rq, hdrs[i].name, hdrs[i].name_len);
		char *v = gw_req_strndup(rq, hdrs[i].value, hdrs[i].value_len);
		if (nm == NULL || v == NULL)
			return -1;   /* (the head is unchanged until the swap below) */
		nh[i] = (struct gw_hdr){ nm, v, hdrs[i].name_len, hdrs[i].value_len };
	}
	if (evbuffer_drain(rq->bodybuf, evbuffer_get_length(rq->bodybuf)) < 0 ||
	    evbuffer_add(rq->bodybuf, body, len) < 0)
		return -1;
	h->hdrs = nh;
	h->nhdrs = n;
	h->hdrs_cap = n + 1;
	/* what the writer derives from the fields: Host, and whether a
	 * Connection field names more hop-by-hop fields (the client-side
	 * flags, close/keep-alive, stay the client's) */
	h->flags &= ~GW_HF_HAS_CONNECTION;
	for (size_t i = 0; i < n; i++) {
		if (nh[i].name_len == 4 && strncasecmp(nh[i].name, "host", 4) == 0) {
			h->host_hdr = nh[i].value;
			h->host_hdr_len = nh[i].value_len;
		}
		if (nh[i].name_len == 10 && strncasecmp(nh[i].name, "connection", 10) == 0)
			h->flags |= GW_HF_HAS_CONNECTION;
	}
	if (h->body == GW_BODY_LENGTH)
		h->content_length = len;
	return 0;
}

int gw_req_worker(const struct gw_req *rq) { return rq->w->id; }
struct event_base *gw_req_base(const struct gw_req *rq) { return rq->w->base; }
struct gw_dns *gw_req_dns(const struct gw_req *rq) { return rq->w->dns; }
void gw_req_set_data(struct gw_req *rq, void *data) { rq->family_data = data; }
void *gw_req_data(const struct gw_req *rq) { return rq->family_data; }

void gw_req_set_conn_data(struct gw_req *rq, void *data, void (*free_fn)(void *data))
{
	struct gw_conn *c = rq->c;

	if (c == NULL) {
		if (data != NULL && free_fn != NULL)
			free_fn(data);
		return;
	}
	if (c->fam_data != NULL && c->fam_data_free != NULL)
		c->fam_data_free(c->fam_data);
	c->fam_data = data;
	c->fam_data_free = free_fn;
}

void *gw_req_conn_data(const struct gw_req *rq)
{
	return rq->c != NULL ? rq->c->fam_data : NULL;
}
int gw_req_body_sent(const struct gw_req *rq) { return rq->reqx.moved > 0 || rq->body_buffered; }
int gw_req_status(const struct gw_req *rq) { return rq->status; }

int gw_req_is_background(const struct gw_req *rq) { return rq->bg; }

/* ---- the response filter's head and output (core/proto.h; the filter
 * itself is pumped in core/upstream.c) ---- */

int gw_req_filter_hold_head(struct gw_req *rq)
{
	if (!rq->filtering || rq->resp_head_done)
		return -1;
	if (rq->filt_head == NULL && (rq->filt_head = evbuffer_new()) == NULL)
		return -1;
	rq->filt_hold_head = 1;
	return 0;
}

int gw_req_filter_replace_head(struct gw_req *rq, const char *head, size_t len)
{
	struct gw_http_limits lim = { len, SCRATCH_HDRS, len };
	struct gw_http_head r;

	if (!rq->filt_hold_head || len == 0)
		return -1;
	memset(&r, 0, sizeof r);
	r.hdrs = (struct gw_hdr *)rq->w->scratch;
	r.hdrs_cap = SCRATCH_HDRS;
	if (gw_http1_parse_response(head, len, &lim, rq->head.method, &r) != (ssize_t)len)
		return -1;   /* (not exactly one complete head) */
	if ((rq->filt_newhead = gw_req_alloc(rq, len)) == NULL)
		return -1;
	memcpy(rq->filt_newhead, head, len);
	rq->filt_newhead_len = len;
	return 0;
}

int gw_req_output_full(const struct gw_req *rq)
{
	return rq->sink->on_full != NULL && rq->sink->on_full((struct gw_req *)rq);
}

void gw_req_output_wake(struct gw_req *rq, struct event *ev)
{
	rq->filt_wake = ev;
}

void gw_req_filter_abort(struct gw_req *rq, const char *reason)
{
	if (rq->up != NULL)
		gw_upstream_fail(rq, 502, reason);
}
