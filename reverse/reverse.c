/*
 * reverse: request decisions for published sites (see reverse.h).  Pure
 * lookups live in route.c, balance.c and static.c; this file glues them to
 * the core's request API.
 */
#include "reverse/reverse.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/events.h"
#include "core/counters.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/strlit.h"
#include "reverse/acme.h"
#include "reverse/balance.h"
#include "reverse/cache_glue.h"
#include "reverse/hcheck.h"
#include "reverse/ratelimit.h"
#include "reverse/route.h"
#include "reverse/rev_tls.h"
#include "reverse/servers.h"
#include "reverse/srvstate.h"
#include "reverse/static.h"

#define REV_DATA_MAGIC 0x52455644u   /* "REVD" */
#define RL_CLIENTS 65536             /* rate-limit buckets, all workers */

/* One upstream of a snapshot: the shared server states it uses. */
struct rev_up {
	const struct conf_rev_upstream *cu;
	size_t n;
	struct rev_srv **srv;          /* n references (servers.h) */
	int threshold;                 /* max_fails: passive ejection after this many failures; 0 = off */
	double fail_timeout;           /* seconds: failure window and ejection length */
	double slow_start;             /* seconds; 0 = off */
};

/* A proxied request's balancing state (gw_req_data(); the cache glue keeps
 * its own per-request state elsewhere).  Lives in the request's arena. */
struct rev_rq {
	int up;                        /* upstream index; -1 until proxied */
	int server;                    /* current server, -1 once released (or never picked) */
	uint32_t site;                 /* for the per-site counters: site index, or nsites */
	uint32_t slot;                 /* upstream index, or nups for a local answer */
	int attempts;
	uint64_t *tried;               /* REV_BITS_WORDS(n) words */
	const char *path;
	size_t path_len;
};

/* One worker's private state for one snapshot (only that worker touches it). */
struct rev_worker {
	struct rev_balancer **bal;     /* per upstream (NULL if it has no servers) */
	uint64_t *usable;              /* scratch, sized for the largest upstream */
	uint32_t *in_flight;
	double *wf;
};

struct rev_data {
	uint32_t magic;
	struct rev_routes *routes;
	const struct conf *cf;
	struct rev_up *ups;
	size_t nups, maxn;
	struct rev_rl *rl;             /* per-client rate limits: one table for all workers (NULL: no site limits) */
	struct rev_worker *w[GW_MAX_WORKERS];
	/* requests per (site or "none") x (upstream or "local") x status class,
	 * at site_idx() + class */
	size_t nsites;
	struct gw_counters site_ctr;
	/* main thread, while active */
	struct rev_hcheck **hc;
	size_t nhc;
	struct gw_dns *dns;            /* resolver on main_base for named servers' checks */
	size_t *strip_len;             /* lengths of reverse.strip_headers (looked up per header) */
};

/* The first of the 5 status-class counters of (site, upstream slot). */
static size_t site_idx(const struct rev_data *d, size_t site, size_t slot)
{
	return (site * (d->nups + 1) + slot) * 5;
}

/* The current generation's data (main thread only: console API). */
static struct rev_data *g_active;

static void hdr_val(const struct gw_http_head *h, const char *name, const char **v, size_t *len)
{
	const struct gw_hdr *x = gw_http1_find(h, name);

	*v = x ? x->value : NULL;
	*len = x ? x->value_len : 0;
}

/* Append c to a Location at loc[k] (room for 3), percent-encoding what a
 * browser might read as a separator or that does not belong in a header:
 * '\', controls, space, non-ASCII, '"'.  Returns the new length. */
static size_t loc_put(char *loc, size_t k, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";

	if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '"') {
		loc[k++] = '%';
		loc[k++] = hex[c >> 4];
		loc[k++] = hex[c & 15];
	} else {
		loc[k++] = (char)c;
	}
	return k;
}

/*
 * Location for a directory asked for without its trailing '/': the
 * normalised request path norm ("/a/b?q"; dot-segments resolved, slashes
 * merged) with '/' after the path.  Built from the normalised path, never the
 * raw one ("//evil.example/../sub" would be a scheme-relative URL to another
 * host); bytes a browser might read as a separator or that do not belong in
 * a header ('\', controls, space, non-ASCII, '"') are percent-encoded.  NULL
 * when the result would not be a same-origin absolute path ("/x", never "//"
 * or "/\").
 */
static char *dir_location(struct gw_req *rq, const char *norm, size_t nlen, size_t *outlen)
{
	const char *q = memchr(norm, '?', nlen);
	size_t base = q ? (size_t)(q - norm) : nlen, k = 0;
	char *loc = gw_req_alloc(rq, nlen * 3 + 2);

	if (loc == NULL)
		return NULL;   /* out of memory: the core answers 503 */
	for (size_t i = 0; i <= nlen; i++) {
		unsigned char c;
		if (i == base) {
			loc[k++] = '/';
			if (i == nlen)
				break;
		}
		if (i == nlen)
			break;
		c = (unsigned char)norm[i];
		k = loc_put(loc, k, c);
	}
	if (k < 2 || loc[0] != '/' || loc[1] == '/' || loc[1] == '\\')
		return NULL;
	*outlen = k;
	return loc;
}

static void serve_static(struct gw_req *rq, const struct rev_route *rt, const char *path,
    size_t plen, const char *norm, size_t nlen)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct rev_static_file f;
	struct rev_static_req sr;
	struct rev_static_range rg;
	char etag[REV_STATIC_ETAG_MAX], lm[REV_HTTP_DATE_MAX], cr[64];
	size_t elen;
	int st;

	if (h->method != GW_M_GET && h->method != GW_M_HEAD) {
		gw_req_resp_hdr_add(rq, "Allow", GW_STRLIT("GET, HEAD"));
		gw_req_respond(rq, 405, NULL, NULL, 0, NULL);
		return;
	}
	st = rev_static_open_opt(rt->static_dir, path, plen, rt->dotfiles ? REV_STATIC_DOTFILES : 0,
	    &f);
	if (st == REV_STATIC_REDIRECT) {
		size_t ll = 0;
		char *loc = dir_location(rq, norm, nlen, &ll);
		if (loc == NULL) {
			gw_req_respond(rq, 404, NULL, NULL, 0, NULL);
			return;
		}
		gw_req_resp_hdr_add(rq, "Location", loc, ll);
		gw_req_respond(rq, 301, NULL, NULL, 0, NULL);
		return;
	}
	if (st != REV_STATIC_OK) {
		gw_req_respond(rq, st, NULL, NULL, 0, NULL);
		return;
	}
	elen = rev_static_etag(&f, etag, sizeof etag);
	rev_http_date(f.mtime.tv_sec, lm);
	memset(&sr, 0, sizeof sr);
	sr.is_get = h->method == GW_M_GET;
	sr.is_head = h->method == GW_M_HEAD;
	hdr_val(h, "if-match", &sr.if_match, &sr.if_match_len);
	hdr_val(h, "if-none-match", &sr.if_none_match, &sr.if_none_match_len);
	hdr_val(h, "if-modified-since", &sr.if_modified_since, &sr.if_modified_since_len);
	hdr_val(h, "if-unmodified-since", &sr.if_unmodified_since, &sr.if_unmodified_since_len);
	hdr_val(h, "if-range", &sr.if_range, &sr.if_range_len);
	hdr_val(h, "range", &sr.range, &sr.range_len);
	gw_req_resp_hdr_add(rq, "ETag", etag, elen);
	gw_req_resp_hdr_add(rq, "Last-Modified", lm, strlen(lm));
	gw_req_resp_hdr_add(rq, "Accept-Ranges", GW_STRLIT("bytes"));
	st = rev_static_conditional(&sr, etag, elen, f.mtime.tv_sec);
	if (st != 200) {
		close(f.fd);
		gw_req_respond(rq, st, NULL, st == 304 ? "" : NULL, 0, NULL);
		return;
	}
	st = rev_static_range(&sr, f.size, etag, elen, f.mtime.tv_sec, &rg);
	if (st == 416) {
		size_t n = rev_static_content_range(NULL, f.size, cr, sizeof cr);
		close(f.fd);
		gw_req_resp_hdr_add(rq, "Content-Range", cr, n);
		gw_req_respond(rq, 416, NULL, NULL, 0, NULL);
		return;
	}
	if (st == 206) {
		size_t n = rev_static_content_range(&rg, f.size, cr, sizeof cr);
		gw_req_resp_hdr_add(rq, "Content-Range", cr, n);
		gw_req_respond_file(rq, 206, f.content_type, f.fd, rg.first, rg.length);
		return;
	}
	gw_req_respond_file(rq, 200, f.content_type, f.fd, 0, f.size);
}

/* ---- forwarding headers ---- */

/* Append s[0..len) to v (cap bytes, kept NUL-terminated) at n; new length.
 * (memcpy rather than snprintf: this runs for every proxied request.) */
static size_t cat(char *v, size_t cap, size_t n, const char *src, size_t len)
{
	if (n + 1 >= cap)
		return n;
	if (len > cap - n - 1)
		len = cap - n - 1;
	memcpy(v + n, src, len);
	v[n + len] = '\0';
	return n + len;
}

/* Append value to v (cap bytes) at *n, quoting per RFC 7239 when needed. */
static void fwd_param(char *v, size_t cap, size_t *n, const char *key, const char *val,
    size_t vlen, int bracket)
{
	int token = !bracket;

	for (size_t i = 0; i < vlen && token; i++)
		token = gw_http1_tchar((unsigned char)val[i]);
	if (*n >= cap)
		return;
	if (*n > 0)
		*n = cat(v, cap, *n, GW_STRLIT(";"));
	*n = cat(v, cap, *n, key, strlen(key));
	*n = cat(v, cap, *n, GW_STRLIT("="));
	if (token) {
		*n = cat(v, cap, *n, val, vlen);
	} else {
		char q[300];
		size_t k = 0;
		if (bracket)
			q[k++] = '[';
		for (size_t i = 0; i < vlen && k + 4 < sizeof q; i++) {
			if (val[i] == '"' || val[i] == '\\')
				q[k++] = '\\';
			q[k++] = val[i];
		}
		if (bracket)
			q[k++] = ']';
		*n = cat(v, cap, *n, GW_STRLIT("\""));
		*n = cat(v, cap, *n, q, k);
		*n = cat(v, cap, *n, GW_STRLIT("\""));
	}
}

/* All values of a (possibly repeated) header joined by ", " into buf; length or 0. */
static size_t join_hdr(const struct gw_http_head *h, const char *name, char *buf, size_t cap)
{
	size_t n = 0, nl = strlen(name);

	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (x->name_len != nl || strncasecmp(x->name, name, nl) != 0)
			continue;
		if (n + x->value_len + 3 > cap)
			return 0;   /* too long to keep: start over */
		if (n > 0) {
			memcpy(buf + n, GW_STRLIT(", "));
			n += 2;
		}
		memcpy(buf + n, x->value, x->value_len);
		n += x->value_len;
	}
	return n;
}

/*
 * X-Forwarded-For/-Proto/-Host and RFC 7239 Forwarded.  From a client in
 * reverse.trusted_proxies, incoming X-Forwarded-For and Forwarded are
 * appended to and incoming X-Forwarded-Proto/-Host kept; from anyone else all
 * four are replaced (a client cannot forge its address or scheme).  A header
 * the route's set_headers names is left to set_headers (the operator wins;
 * gw_req_hdr_del only removes the client's headers, not ones added here).
 */
/* Does the route's set_headers set name (then it wins over ours)? */
static int route_sets(const struct rev_route *rt, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < rt->nset_headers; i++)
		if (rt->set_headers[i].name_len == nl &&
		    strncasecmp(rt->set_headers[i].name, name, nl) == 0)
			return 1;
	return 0;
}

static void add_forwarding_headers(struct gw_req *rq, const struct rev_data *d,
    const struct gw_http_head *h, const char *host, size_t hlen, const struct rev_route *rt,
    int trusted)
{
	const char *client = gw_req_peer_str(rq);   /* each hop appends who connected to it */
	int tls = gw_req_is_tls(rq);
	const char *proto = tls ? "https" : "http";
	char in[1024], v[1400], fw[600];
	size_t inl, n = 0, k = 0;

	inl = trusted ? join_hdr(h, "x-forwarded-for", in, sizeof in) : 0;
	if (inl > 0) {
		k = cat(v, sizeof v, 0, in, inl);
		k = cat(v, sizeof v, k, GW_STRLIT(", "));
	}
	k = cat(v, sizeof v, k, client, strlen(client));
	gw_req_hdr_del(rq, "x-forwarded-for");
	if (!route_sets(rt, "x-forwarded-for"))
		gw_req_hdr_add(rq, "X-Forwarded-For", v, k);

	if (!(trusted && gw_http1_find(h, "x-forwarded-proto") != NULL) &&
	    !route_sets(rt, "x-forwarded-proto")) {
		gw_req_hdr_del(rq, "x-forwarded-proto");
		gw_req_hdr_add(rq, "X-Forwarded-Proto", proto, strlen(proto));
	}
	if (!(trusted && gw_http1_find(h, "x-forwarded-host") != NULL) &&
	    !route_sets(rt, "x-forwarded-host")) {
		gw_req_hdr_del(rq, "x-forwarded-host");
		gw_req_hdr_add(rq, "X-Forwarded-Host", host, hlen);
	}

	fw[0] = '\0';
	fwd_param(fw, sizeof fw, &n, "for", client, strlen(client), strchr(client, ':') != NULL);
	fwd_param(fw, sizeof fw, &n, "proto", proto, strlen(proto), 0);
	if (hlen > 0 && hlen < 256)
		fwd_param(fw, sizeof fw, &n, "host", host, hlen, 0);
	inl = trusted ? join_hdr(h, "forwarded", in, sizeof in) : 0;
	k = 0;
	if (inl > 0) {
		k = cat(v, sizeof v, 0, in, inl);
		k = cat(v, sizeof v, k, GW_STRLIT(", "));
	}
	k = cat(v, sizeof v, k, fw, n);
	gw_req_hdr_del(rq, "forwarded");
	if (!route_sets(rt, "forwarded"))
		gw_req_hdr_add(rq, "Forwarded", v, k);

	gw_req_hdr_del(rq, "x-request-id");
	if (!route_sets(rt, "x-request-id"))
		gw_req_hdr_add(rq, "X-Request-Id", gw_req_id(rq), strlen(gw_req_id(rq)));
}

/* Is the TCP peer one of reverse.trusted_proxies? */
static int client_trusted(struct gw_req *rq, const struct rev_data *d)
{
	return d->cf->reverse.trusted_proxies.n > 0 &&
	    conf_cidr_match(&d->cf->reverse.trusted_proxies, gw_req_peer(rq));
}

/*
 * One element of X-Forwarded-For ("1.2.3.4", "1.2.3.4:80", "[::1]:80",
 * "::1") or the for= of one Forwarded element (quoted or not) as an
 * address into ss.  Strict (inet_pton): "127.1", names, "unknown" and
 * obfuscated identifiers are not addresses.  Returns 0 or -1.
 */
static int fwd_elem_addr(const char *e, size_t n, int forwarded, struct sockaddr_storage *ss)
{
	char t[INET6_ADDRSTRLEN + 8];
	const char *c;

	if (forwarded) {
		/* for=... among ';'-separated pairs */
		const char *f = NULL;
		for (size_t i = 0; i + 4 <= n; i++)
			if ((i == 0 || e[i - 1] == ';' || e[i - 1] == ' ') && strncasecmp(e + i, GW_STRLIT("for=")) == 0) {
				f = e + i + 4;
				break;
			}
		if (f == NULL)
			return -1;
		n -= (size_t)(f - e);
		e = f;
		for (size_t i = 0; i < n; i++)
			if (e[i] == ';') {
				n = i;
				break;
			}
	}
	while (n > 0 && (e[0] == ' ' || e[0] == '\t' || e[0] == '"')) {
		e++;
		n--;
	}
	while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t' || e[n - 1] == '"'))
		n--;
	if (n > 0 && e[0] == '[') {
		c = memchr(e, ']', n);
		if (c == NULL)
			return -1;
		n = (size_t)(c - e) - 1;
		e++;
	} else if ((c = memchr(e, ':', n)) != NULL && memchr(c + 1, ':', n - (size_t)(c + 1 - e)) == NULL) {
		n = (size_t)(c - e);           /* IPv4 with a port */
	}
	if (n == 0 || n >= sizeof t)
		return -1;
	memcpy(t, e, n);
	t[n] = '\0';
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, t, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, t, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return 0;
	}
	return -1;
}

/*
 * Behind a trusted proxy, the client is the first address from the right of
 * X-Forwarded-For (else Forwarded for=) that is not itself in
 * trusted_proxies (nginx realip with real_ip_recursive on); when all are
 * trusted, the leftmost.  It becomes the request's client (rate limit,
 * allow/deny_clients, ip_hash, logs); the peer stays gw_req_peer.  A list
 * that cannot be read from the right (an element that is no address before
 * an untrusted one is found, or over 4 KiB) leaves the client the peer.
 */
static void real_client(struct gw_req *rq, const struct rev_data *d, const struct gw_http_head *h)
{
	char list[4096];
	struct sockaddr_storage ss;
	int forwarded = 0, have = 0;
	size_t n, e;

	/* Forwarded only when there is no X-Forwarded-For at all: a list too
	 * long to keep (join_hdr's 0) must not hand the choice to the other
	 * header, which the client may have sent past the proxy untouched */
	if (gw_http1_find(h, "x-forwarded-for") != NULL) {
		n = join_hdr(h, "x-forwarded-for", list, sizeof list);
	} else {
		n = join_hdr(h, "forwarded", list, sizeof list);
		forwarded = 1;
	}
	for (e = n; e > 0; ) {
		size_t b = e;
		while (b > 0 && list[b - 1] != ',')
			b--;
		if (fwd_elem_addr(list + b, e - b, forwarded, &ss) != 0)
			return;
		have = 1;
		if (!conf_cidr_match(&d->cf->reverse.trusted_proxies, (const struct sockaddr *)&ss))
			break;
		e = b > 0 ? b - 1 : 0;
	}
	if (have)
		gw_req_set_client(rq, (const struct sockaddr *)&ss);
}

/* The reverse.strip_headers entry for a header name, or NULL. */
static const char *strip_listed(const struct rev_data *d, const char *name, size_t nl)
{
	const struct conf_strs *sh = &d->cf->reverse.strip_headers;

	for (size_t k = 0; k < sh->n; k++)
		if (d->strip_len[k] == nl && strncasecmp(sh->v[k], name, nl) == 0)
			return sh->v[k];
	return NULL;
}

/*
 * A client not in trusted_proxies cannot speak for a proxy in front of us:
 * drop the identity and rewrite headers of reverse.strip_headers it sent
 * (X-Real-IP, X-Original-URL, ...).  Only names present get a delete edit.
 * X-Forwarded-For/-Proto/-Host and Forwarded are replaced by
 * add_forwarding_headers(); a route's set_headers are applied afterwards and
 * win.
 */
static void strip_untrusted(struct gw_req *rq, const struct rev_data *d,
    const struct gw_http_head *h)
{
	for (size_t i = 0; i < h->nhdrs; i++) {
		const char *name = strip_listed(d, h->hdrs[i].name, h->hdrs[i].name_len);
		if (name != NULL)
			gw_req_hdr_del(rq, name);
	}
}

/* Does the request pass on a header that makes an application serve another
 * path than the target (IIS URL Rewrite, Symfony: X-Original-URL,
 * X-Rewrite-URL)?  Then the cache's key would not name what was served. */
static int passes_rewrite(const struct rev_data *d, const struct gw_http_head *h, int trusted)
{
	static const char *const names[] = { "x-original-url", "x-rewrite-url", NULL };

	for (int i = 0; names[i] != NULL; i++)
		if (gw_http1_find(h, names[i]) != NULL &&
		    (trusted || strip_listed(d, names[i], strlen(names[i])) == NULL))
			return 1;
	return 0;
}

/* ---- per-worker state ---- */

static void worker_free(struct rev_worker *w, size_t nups)
{
	if (w == NULL)
		return;
	for (size_t i = 0; w->bal != NULL && i < nups; i++)
		rev_balancer_free(w->bal[i]);
	free(w->bal);
	free(w->usable);
	free(w->in_flight);
	free(w->wf);
	free(w);
}

/* The calling worker's state, created on first use by that worker. */
static struct rev_worker *worker_get(struct rev_data *d, const struct gw_req *rq)
{
	int id = gw_req_worker(rq);
	struct rev_worker *w;
	size_t m = d->maxn ? d->maxn : 1;

	if (id < 0 || id >= GW_MAX_WORKERS)
		return NULL;
	if (d->w[id] != NULL)
		return d->w[id];
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->bal = calloc(d->nups ? d->nups : 1, sizeof *w->bal);
	w->usable = calloc(REV_BITS_WORDS(m), sizeof *w->usable);
	w->in_flight = calloc(m, sizeof *w->in_flight);
	w->wf = calloc(m, sizeof *w->wf);
	if (w->bal == NULL || w->usable == NULL || w->in_flight == NULL ||
	    w->wf == NULL) {
		worker_free(w, d->nups);
		return NULL;
	}
	for (size_t i = 0; i < d->nups; i++) {
		if (d->ups[i].n == 0)
			continue;
		w->bal[i] = rev_balancer_new(d->ups[i].cu, 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1));
		if (w->bal[i] == NULL) {
			worker_free(w, d->nups);
			return NULL;
		}
	}
	d->w[id] = w;
	return w;
}

/* ---- balancing ---- */

/* The end of a passive ejection is not an event anyone waits for: the first
 * balancing pass that sees it over reports it (once, rev_srv_back()). */
static void log_back(struct rev_srv *s, const struct rev_up *up, int64_t now)
{
	if (!rev_srv_back(s, now))
		return;
	gw_info("upstream %s server %s: back in rotation (passive ejection of %g s over)",
	    s->upstream, s->address, up->fail_timeout);
	gw_event_push("health", "%s %s: back after passive ejection", s->upstream, s->address);
}

/*
 * Choose a server of upstream ui for this request (not in tried), and count
 * it in flight.  max_conns is a global limit per server (all workers): the
 * in-flight counter is incremented first and undone if that went over.
 * Returns the index or -1 when no server can take it.
 */
static int pick_server(struct rev_data *d, struct rev_worker *w, struct gw_req *rq, int ui,
    const uint64_t *tried)
{
	struct rev_up *up = &d->ups[ui];
	int64_t now = rev_now_ms();
	struct rev_pick_ctx ctx;
	int ramp = 0;

	if (up->n == 0 || w->bal[ui] == NULL)
		return -1;
	/* Pass 0 honours passive ejection; if that leaves nothing, pass 1
	 * ignores it (every server up by health/admin but ejected: trying one
	 * beats answering 503 for the whole cooldown). */
	for (int pass = 0, any = 0; pass < 2 && !any; pass++) {
		memset(w->usable, 0, REV_BITS_WORDS(up->n) * sizeof *w->usable);
		for (size_t i = 0; i < up->n; i++) {
			struct rev_srv *s = up->srv[i];
			int64_t mc = up->cu->servers[i].max_conns;
			if (pass == 0)
				log_back(s, up, now);
			w->in_flight[i] = atomic_load_explicit(&s->in_flight, memory_order_relaxed);
			if (pass == 0 ? !rev_srv_usable(s, now) :
			    atomic_load_explicit(&s->state, memory_order_acquire) != REV_SRV_UP)
				continue;
			if (mc > 0 && w->in_flight[i] >= (uint64_t)mc)
				continue;
			if (tried != NULL && rev_bits_test(tried, i))
				continue;
			rev_bits_set(w->usable, i);
			any = 1;
			w->wf[i] = up->slow_start > 0 ? rev_srv_weight_factor(s, up->slow_start, now) : 1.0;
			if (w->wf[i] < 1.0)
				ramp = 1;
		}
	}
	memset(&ctx, 0, sizeof ctx);
	ctx.usable = w->usable;
	ctx.excluded = tried;
	ctx.in_flight = w->in_flight;
	ctx.weight_factor = ramp ? w->wf : NULL;
	ctx.client = gw_req_client(rq);
	for (;;) {
		int i = rev_balance_pick(w->bal[ui], &ctx);
		int64_t mc;
		uint32_t old;
		if (i < 0)
			return -1;
		mc = up->cu->servers[i].max_conns;
		old = atomic_fetch_add_explicit(&up->srv[i]->in_flight, 1, memory_order_relaxed);
		if (mc > 0 && old >= (uint64_t)mc) {
			atomic_fetch_sub_explicit(&up->srv[i]->in_flight, 1, memory_order_relaxed);
			rev_bits_clear(w->usable, (size_t)i);
			continue;
		}
		atomic_fetch_add_explicit(&up->srv[i]->requests, 1, memory_order_relaxed);
		return i;
	}
}

static void proxy_to(struct gw_req *rq, const struct rev_data *d, const struct rev_rq *r)
{
	const struct conf_rev_upstream *cu = d->ups[r->up].cu;
	const struct conf_addr *a = &cu->servers[r->server].addr;

	gw_req_proxy(rq, a->host, strlen(a->host), a->port, r->path, r->path_len);
	gw_req_upstream_keepalive(rq, (unsigned)cu->keepalive);
	if (cu->tls)
		gw_req_upstream_tls(rq, r->up);
	if (cu->h2) {
		gw_req_upstream_h2(rq);
		gw_req_upstream_h2_ping(rq, cu->h2_ping_interval, cu->h2_ping_timeout);
	}
}

/* The request no longer occupies its server (failed attempt or done). */
static void release(struct rev_data *d, struct rev_rq *r)
{
	if (r->server < 0)
		return;
	atomic_fetch_sub_explicit(&d->ups[r->up].srv[r->server]->in_flight, 1, memory_order_relaxed);
	r->server = -1;
}

static void no_server(struct gw_req *rq, const char *upname)
{
	gw_req_set_verdict(rq, "no_server", upname);
	gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("1"));
	gw_req_respond(rq, 503, NULL, NULL, 0, "No server of this application is available.");
}

static void proxy_upstream(struct gw_req *rq, struct rev_data *d, const struct rev_route *rt,
    const char *path, size_t plen)
{
	struct rev_up *up = &d->ups[rt->upstream];
	struct rev_worker *w = worker_get(d, rq);
	struct rev_rq *r;
	int i;

	if (w == NULL) {
		gw_req_respond(rq, 503, NULL, NULL, 0, NULL);
		return;
	}
	r = gw_req_data(rq);           /* set by decide() */
	r->up = rt->upstream;
	r->tried = gw_req_alloc(rq, REV_BITS_WORDS(up->n ? up->n : 1) * sizeof(uint64_t));
	if (r->tried == NULL)
		return;   /* out of memory: the core answers 503 */
	i = pick_server(d, w, rq, rt->upstream, NULL);
	if (i < 0) {
		if (rev_cache_stale_on_error(rq))
			return;
		no_server(rq, up->cu->name);
		return;
	}
	r->server = i;
	r->attempts = 1;
	rev_bits_set(r->tried, (size_t)i);
	r->path = gw_req_strndup(rq, path, plen);
	r->path_len = plen;
	for (size_t k = 0; k < rt->nset_headers; k++) {
		char name[256];
		size_t nl = rt->set_headers[k].name_len < sizeof name - 1 ?
		    rt->set_headers[k].name_len : sizeof name - 1;
		memcpy(name, rt->set_headers[k].name, nl);   /* not snprintf: every request */
		name[nl] = '\0';
		gw_req_hdr_del(rq, name);
		gw_req_hdr_add(rq, name, rt->set_headers[k].value, rt->set_headers[k].value_len);
	}
	proxy_to(rq, d, r);
}

static int idempotent(enum gw_method m)
{
	return m == GW_M_GET || m == GW_M_HEAD || m == GW_M_OPTIONS || m == GW_M_PUT ||
	    m == GW_M_DELETE || m == GW_M_TRACE;
}

static const char *const stage_names[] = { "connect failed", "reset before answering",
	"answered 502/503", "response timeout" };

static int on_upstream_error(struct gw_req *rq, int stage, void *side)
{
	struct rev_data *d = side;
	struct rev_worker *w = worker_get(d, rq);
	struct rev_rq *r = gw_req_data(rq);
	struct rev_up *up;
	int failed_server, i;

	if (r == NULL || r->up < 0 || w == NULL)
		return rev_cache_stale_on_error(rq);
	up = &d->ups[r->up];
	failed_server = r->server;
	if (failed_server >= 0 && stage != GW_UPFAIL_STATUS) {
		struct rev_srv *s = up->srv[failed_server];
		if (rev_srv_failed(s, up->threshold, up->fail_timeout, rev_now_ms())) {
			gw_warn("upstream %s server %s: ejected for %g s after %d failures within %g s "
			    "(max_fails; last: %s)", s->upstream, s->address, up->fail_timeout, up->threshold,
			    up->fail_timeout, stage_names[stage & 3]);
			gw_event_push("health", "%s %s: ejected for %g s after %d failures (%s)",
			    s->upstream, s->address, up->fail_timeout, up->threshold,
			    stage_names[stage & 3]);
		}
	}
	/* one retry at most, on another server */
	i = -1;
	if (r->attempts < 2 && stage != GW_UPFAIL_TIMEOUT &&
	    (stage == GW_UPFAIL_CONNECT ||
	    (idempotent(gw_req_head(rq)->method) && !gw_req_body_sent(rq))))
		i = pick_server(d, w, rq, r->up, r->tried);
	if (i < 0 && rev_cache_stale_on_error(rq))
		return 1;                      /* answered from the cache */
	if (i < 0)
		return 0;
	release(d, r);
	r->server = i;
	r->attempts++;
	rev_bits_set(r->tried, (size_t)i);
	gw_debug("request %s: upstream %s server %s %s; retrying on %s", gw_req_id(rq),
	    up->cu->name, failed_server >= 0 ? up->srv[failed_server]->address : "?",
	    stage_names[stage & 3], up->srv[i]->address);
	proxy_to(rq, d, r);
	return 1;
}

/* Count the answer for its site and upstream (see rev_data.site_ctr). */
static void count_site(struct rev_data *d, const struct gw_req *rq, const struct rev_rq *r)
{
	int st = gw_req_status(rq);
	size_t site = r != NULL ? r->site : d->nsites, slot = r != NULL ? r->slot : d->nups;

	if (st >= 100 && st <= 599)
		gw_counters_add(&d->site_ctr, gw_req_worker(rq), site_idx(d, site, slot) + (size_t)(st / 100 - 1));
}

static void on_done(struct gw_req *rq, void *side)
{
	struct rev_data *d = side;
	struct rev_rq *r = gw_req_data(rq);
	int st;

	rev_cache_done(rq);
	count_site(d, rq, r);
	if (r == NULL)
		return;
	gw_req_set_data(rq, NULL);
	if (r->server >= 0) {
		st = gw_req_status(rq);
		/* a response came from this server (core-made 502/504 and client
		 * aborts are neither success nor failure here) */
		if (st > 0 && st != 499 && st != 502 && st != 504)
			rev_srv_succeeded(d->ups[r->up].srv[r->server]);
		release(d, r);
	}
}

/* ---- request decisions ---- */

static int rate_limited(struct gw_req *rq, struct rev_data *d, const struct rev_site *site)
{
	const struct sockaddr *sa = gw_req_client(rq);
	unsigned char key[20];
	size_t kl = 4;
	double retry = 1;
	char ra[32];
	uint32_t si = (uint32_t)site->index;

	if (site->rate_rps <= 0 || d->rl == NULL)
		return 0;
	memcpy(key, &si, 4);
	if (sa->sa_family == AF_INET) {
		memcpy(key + 4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		kl += 4;
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			memcpy(key + 4, a + 12, 4);
			kl += 4;
		} else {
			/* one host owns its whole /64 (SLAAC, privacy addresses):
			 * keyed by the full address, a client had 2^64 buckets */
			memcpy(key + 4, a, 8);
			kl += 8;
		}
	}
	if (rev_rl_take(d->rl, key, kl, site->rate_rps, site->rate_burst, gw_mono_now(), &retry))
		return 0;
	snprintf(ra, sizeof ra, "%.0f", ceil(retry) < 1 ? 1.0 : ceil(retry));
	gw_req_set_verdict(rq, "rate_limit", site->name);
	gw_req_resp_hdr_add(rq, "Retry-After", ra, strlen(ra));
	gw_req_respond(rq, 429, NULL, NULL, 0, NULL);
	return 1;
}

/* force_https: 308 to https://host/target (the plain listener's port dropped). */
static void redirect_https(struct gw_req *rq, const struct gw_http_head *h, const char *host,
    size_t hlen)
{
	size_t n = hlen;
	char *loc;
	int k;

	if (n > 0 && host[0] == '[') {
		const char *e = memchr(host, ']', hlen);
		n = e ? (size_t)(e - host) + 1 : hlen;
	} else {
		const char *c = memchr(host, ':', hlen);
		n = c ? (size_t)(c - host) : hlen;
	}
	loc = gw_req_alloc(rq, n + h->path_len + 16);
	if (loc == NULL)
		return;   /* out of memory: the core answers 503 */
	k = snprintf(loc, n + h->path_len + 16, "https://%.*s%.*s", (int)n, host,
	    (int)h->path_len, h->path);
	gw_req_set_verdict(rq, "force_https", NULL);
	gw_req_resp_hdr_add(rq, "Location", loc, (size_t)k);
	gw_req_respond(rq, 308, NULL, NULL, 0, NULL);
}

/*
 * A redirect route's answer.  keep_path appends path (the request's path and
 * query as sent, after strip_prefix: see rev_route_upstream_path_raw) to the
 * target, without doubling the '/' between them (nginx's
 * "return 301 https://host$request_uri").  The path is the client's, so it
 * is made safe for a Location header: controls, space, non-ASCII, '"' and
 * '\' percent-encoded (no header splitting, no "/\" a browser reads as
 * "//"), and after a relative target ("/", "/new") a leading run of '/' is
 * merged so the result is never a scheme-relative "//host" URL.  After an
 * absolute target a "//" only follows the configured host: harmless.
 */
static void redirect_route(struct gw_req *rq, const struct rev_route *rt, const char *path,
    size_t plen)
{
	size_t tl = strlen(rt->redirect), k;
	char *loc;

	if (!rt->keep_path) {
		gw_req_resp_hdr_add(rq, "Location", rt->redirect, tl);
		gw_req_respond(rq, rt->redirect_status, NULL, NULL, 0, NULL);
		return;
	}
	if (tl > 0 && rt->redirect[tl - 1] == '/')
		tl--;                          /* path starts with '/' */
	loc = gw_req_alloc(rq, tl + plen * 3 + 2);
	if (loc == NULL)
		return;   /* out of memory: the core answers 503 */
	memcpy(loc, rt->redirect, tl);
	k = tl;
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '/' && k > 0 && loc[k - 1] == '/' && k == tl + 1 && rt->redirect[0] == '/')
			continue;              /* relative target: "/" + "//evil" is not "//evil" */
		k = loc_put(loc, k, c);
	}
	if (k == 0)
		loc[k++] = '/';
	gw_req_resp_hdr_add(rq, "Location", loc, k);
	gw_req_respond(rq, rt->redirect_status, NULL, NULL, 0, NULL);
}

static void decide(struct gw_req *rq, void *side, int first);

static void on_request(struct gw_req *rq, void *side)
{
	decide(rq, side, 1);
}

/* The cache glue runs a request again after it waited for an identical one
 * (collapsed forwarding): the rate limit was already charged. */
static void restart(struct gw_req *rq, void *side)
{
	decide(rq, side, 0);
}

static void decide(struct gw_req *rq, void *side, int first)
{
	struct rev_data *d = side;
	const struct gw_http_head *h = gw_req_head(rq);
	const struct rev_site *site;
	const struct rev_route *rt;
	struct rev_rq *r;
	const char *host;
	size_t hlen;
	char norm[8192 + 16], path[8192 + 16];
	long nlen, plen;
	int trusted;

	if (h->target_form == GW_TF_AUTHORITY || h->method == GW_M_CONNECT) {
		gw_req_respond(rq, 405, NULL, NULL, 0, "CONNECT is not served here.");
		return;
	}
	if (h->target_form == GW_TF_ASTERISK) {
		gw_req_resp_hdr_add(rq, "Allow", GW_STRLIT("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"));
		gw_req_respond(rq, 200, "text/plain", "", 0, NULL);
		return;
	}
	if (rev_tls_acme_challenge(rq, h->path, h->path_len))
		return;
	trusted = client_trusted(rq, d);   /* the TCP peer's trust: set_client does not change it */
	if (trusted)
		real_client(rq, d, h);
	if (h->target_form == GW_TF_ABSOLUTE) {
		/* never an open proxy: only hosts we publish */
		host = h->host;
		hlen = h->host_len;
		site = rev_site_find_configured(d->routes, host, hlen);
	} else {
		host = h->host_hdr ? h->host_hdr : "";
		hlen = h->host_hdr ? h->host_hdr_len : 0;
		site = rev_site_find(d->routes, host, hlen);
	}
	if (site == NULL) {
		/* the latency label of requests for no site (a name lookup: only
		 * on this path, not on every request) */
		gw_req_set_metric_site(rq, "(unknown)");
		gw_req_set_verdict(rq, "no_site", NULL);
		gw_req_respond(rq, 404, NULL, NULL, 0, NULL);
		return;
	}
	r = gw_req_data(rq);           /* set already when the cache glue restarts us */
	if (r == NULL) {
		r = gw_req_alloc(rq, sizeof *r);
		if (r == NULL)
			return;   /* out of memory: the core answers 503 */
		r->up = r->server = -1;
		r->site = (uint32_t)site->index;
		r->slot = (uint32_t)d->nups;
		gw_req_set_data(rq, r);
	}
	gw_req_set_metric_site(rq, site->name);
	if ((site->allow_clients.n > 0 && !conf_cidr_match(&site->allow_clients, gw_req_client(rq))) ||
	    (site->deny_clients.n > 0 && conf_cidr_match(&site->deny_clients, gw_req_client(rq)))) {
		gw_req_set_verdict(rq, "deny", site->name);
		gw_req_respond(rq, 403, NULL, NULL, 0, NULL);
		return;
	}
	if (first && !gw_req_is_background(rq) && rate_limited(rq, d, site))   /* cache refreshes are ours */
		return;
	if (rev_tls_site_gate(rq, &d->cf->reverse.sites[site->index], site->index))
		return;
	if (site->force_https && !gw_req_is_tls(rq)) {
		redirect_https(rq, h, host, hlen);
		return;
	}
	/* routes match the normalised path: "/api/../admin" is "/admin" */
	nlen = rev_path_normalize(h->path, h->path_len, norm, sizeof norm);
	if (nlen == -2) {
		gw_req_respond(rq, 414, NULL, NULL, 0, NULL);
		return;
	}
	if (nlen < 0) {
		gw_req_set_verdict(rq, "bad_path", site->name);
		gw_req_respond(rq, 400, NULL, NULL, 0, "The request path is not valid.");
		return;
	}
	rt = rev_route_find(site, norm, (size_t)nlen);
	if (rt == NULL) {
		gw_req_set_verdict(rq, "no_route", site->name);
		gw_req_respond(rq, 404, NULL, NULL, 0, NULL);
		return;
	}
	gw_req_set_verdict(rq, "route", rt->prefix);
	if (rt->kind == REV_ROUTE_UPSTREAM) {
		r->slot = (uint32_t)rt->upstream;
		gw_req_set_metric_upstream(rq, d->ups[rt->upstream].cu->name);
	}
	if (rt->max_body_bytes > 0)
		gw_req_set_max_body(rq, rt->max_body_bytes);
	/* static lookups use the normalised path; what goes upstream or after a
	 * redirect target is what the client sent, where that is equivalent */
	if (rt->kind == REV_ROUTE_STATIC) {
		plen = rev_route_upstream_path(rt, norm, (size_t)nlen, path, sizeof path);
	} else {
		int raw_used;
		plen = rev_route_upstream_path_raw(rt, h->path, h->path_len, norm, (size_t)nlen, path,
		    sizeof path, &raw_used);
	}
	if (plen < 0) {
		gw_req_respond(rq, 414, NULL, NULL, 0, NULL);
		return;
	}
	switch (rt->kind) {
	case REV_ROUTE_REDIRECT:
		redirect_route(rq, rt, path, (size_t)plen);
		return;
	case REV_ROUTE_STATIC:
		serve_static(rq, rt, path, (size_t)plen, norm, (size_t)nlen);
		return;
	case REV_ROUTE_UPSTREAM:
		if (!trusted)
			strip_untrusted(rq, d, h);
		rev_tls_client_headers(rq, &d->cf->reverse.sites[site->index], site->index);
		/* a rewrite header that goes to the application (a trusted
		 * proxy's, or one strip_headers does not list): such a request
		 * neither reads nor fills the cache */
		if (!passes_rewrite(d, h, trusted) &&
		    rev_cache_request(rq, d->cf, site, rt, side, restart))
			return;                /* answered from the cache, or waiting */
		add_forwarding_headers(rq, d, h, host, hlen, rt, trusted);
		proxy_upstream(rq, d, rt, path, (size_t)plen);
		return;
	}
}

static struct gw_proto rev_proto = {   /* .family: set by gw_control_add_side() */
	.name = "reverse",
	.on_request = on_request,
	.on_done = on_done,
	.on_upstream_error = on_upstream_error,
	.on_response_head = rev_cache_on_response_head,
	.on_response_body = rev_cache_on_response_body,
	.on_response_end = rev_cache_on_response_end,
};

/* ---- snapshot plumbing ---- */

static void side_free(void *data)
{
	struct rev_data *d = data;

	if (d == NULL)
		return;
	for (int i = 0; i < GW_MAX_WORKERS; i++)
		worker_free(d->w[i], d->nups);
	rev_rl_free(d->rl);
	gw_counters_free(&d->site_ctr);
	for (size_t i = 0; i < d->nups; i++) {
		for (size_t k = 0; d->ups[i].srv != NULL && k < d->ups[i].n; k++)
			rev_srv_put(d->ups[i].srv[k]);
		free(d->ups[i].srv);
	}
	free(d->ups);
	free(d->hc);
	free(d->strip_len);
	rev_routes_free(d->routes);
	d->magic = 0;
	free(d);
}

static int compile(const struct conf *cf, struct conf_errors *errs, void **data)
{
	struct rev_data *d;
	struct rev_routes *rt;
	size_t nu;

	*data = NULL;
	if (!cf->reverse.present)
		return 0;
	rt = rev_routes_compile(cf, errs);
	if (rt == NULL)
		return -1;
	d = calloc(1, sizeof *d);
	nu = cf->reverse.nupstreams;
	if (d == NULL || (d->ups = calloc(nu ? nu : 1, sizeof *d->ups)) == NULL) {
		free(d);
		rev_routes_free(rt);
		return -1;
	}
	d->magic = REV_DATA_MAGIC;
	d->routes = rt;
	d->cf = cf;
	d->nups = nu;
	if ((d->strip_len = calloc(cf->reverse.strip_headers.n + 1, sizeof *d->strip_len)) == NULL)
		goto fail;
	for (size_t k = 0; k < cf->reverse.strip_headers.n; k++)
		d->strip_len[k] = strlen(cf->reverse.strip_headers.v[k]);
	d->nsites = rev_routes_nsites(rt);
	for (size_t i = 0; i < d->nsites && d->rl == NULL; i++)
		if (rev_routes_site(rt, i)->rate_rps > 0 && (d->rl = rev_rl_new(RL_CLIENTS)) == NULL)
			goto fail;
	d->site_ctr.n = (d->nsites + 1) * (nu + 1) * 5;
	for (size_t i = 0; i < nu; i++) {
		const struct conf_rev_upstream *cu = &cf->reverse.upstreams[i];
		struct rev_up *u = &d->ups[i];
		u->cu = cu;
		u->threshold = cu->max_fails >= 0 ? (int)cu->max_fails :
		    cu->health.present ? (int)cu->health.fall : REV_PASSIVE_FAILS;
		u->fail_timeout = cu->fail_timeout;
		u->slow_start = cu->health.present ? cu->health.slow_start : 0;
		u->srv = calloc(cu->nservers ? cu->nservers : 1, sizeof *u->srv);
		if (u->srv == NULL)
			goto fail;
		for (size_t k = 0; k < cu->nservers; k++) {
			u->srv[k] = rev_srv_get(cu->name, cu->servers[k].addr.text);
			if (u->srv[k] == NULL)
				goto fail;
			u->n = k + 1;
		}
		if (cu->nservers > d->maxn)
			d->maxn = cu->nservers;
	}
	*data = d;
	return 0;
fail:
	conf_err(errs, cf->path, 0, "reverse", "out of memory");
	side_free(d);
	return -1;
}

static const struct conf_listener *listeners(const struct conf *cf, size_t *n)
{
	*n = cf->reverse.present ? cf->reverse.nlisteners : 0;
	return cf->reverse.listeners;
}

static int restore_admin_state(const char *upstream, const char *address, int state, void *arg)
{
	(void)arg;
	return rev_server_set_admin_state(upstream, address, state) == 0 ? 0 : -1;
}

static void activate(void *data, struct event_base *base)
{
	struct rev_data *d = data;
	size_t total = 0, k = 0;
	static int state_loaded;

	g_active = d;
	rev_cache_activate(d != NULL ? d->cf : NULL, base);
	if (d == NULL)
		return;
	if (!state_loaded) {
		/* drained/disabled servers stay so across a restart */
		state_loaded = 1;
		rev_srvstate_load(d->cf->global.state_dir, restore_admin_state, NULL);
	}
	acme_activate(d->cf);
	for (size_t i = 0; i < d->nups; i++)
		total += d->ups[i].cu->health.present ? d->ups[i].n : 0;
	for (size_t i = 0; i < d->nups; i++) {
		/* health removed from the config: do not leave a server down */
		if (d->ups[i].cu->health.present)
			continue;
		for (size_t s = 0; s < d->ups[i].n; s++)
			rev_srv_health_reset(d->ups[i].srv[s]);
	}
	if (total == 0)
		return;
	d->hc = calloc(total, sizeof *d->hc);
	if (d->hc == NULL)
		return;
	for (size_t i = 0; i < d->nups && d->dns == NULL; i++)
		for (size_t s = 0; d->ups[i].cu->health.present && s < d->ups[i].n; s++)
			if (d->ups[i].cu->servers[s].addr.is_name) {
				d->dns = gw_dns_new(base, &d->cf->global.dns);
				break;
			}
	for (size_t i = 0; i < d->nups; i++) {
		const struct conf_rev_upstream *cu = d->ups[i].cu;
		if (!cu->health.present)
			continue;
		for (size_t s = 0; s < d->ups[i].n; s++) {
			/* spread the first checks over the first interval (at most 1 s) */
			double first = 0.05 + (cu->health.interval < 1 ? cu->health.interval : 1.0) *
			    (double)k / (double)total;
			d->hc[k++] = rev_hcheck_start(base, d->dns, d->ups[i].srv[s], cu, &cu->servers[s], first);
		}
	}
	d->nhc = k;
}

static void deactivate(void *data)
{
	struct rev_data *d = data;

	rev_cache_deactivate();   /* (the next activate starts it again) */
	if (d == NULL)
		return;
	if (g_active == d)
		g_active = NULL;
	for (size_t i = 0; i < d->nhc; i++)
		rev_hcheck_stop(d->hc[i]);
	free(d->hc);
	d->hc = NULL;
	d->nhc = 0;
	gw_dns_free(d->dns);
	d->dns = NULL;
}

const struct gw_side rev_side = {
	.proto = &rev_proto,
	.short_name = "rev",
	.compile = compile,
	.free = side_free,
	.listeners = listeners,
	.tls = rev_tls_specs,
	.activate = activate,
	.deactivate = deactivate,
};

/* ---- console API (reverse.h) ---- */

size_t rev_servers_info(struct rev_server_info *out, size_t max)
{
	struct rev_data *d = g_active;
	int64_t now = rev_now_ms();
	size_t n = 0;

	if (d == NULL)
		return 0;
	for (size_t i = 0; i < d->nups; i++) {
		const struct rev_up *u = &d->ups[i];
		for (size_t k = 0; k < u->n; k++, n++) {
			const struct rev_srv *s = u->srv[k];
			const struct conf_rev_server *sv = &u->cu->servers[k];
			struct rev_server_info *o;
			if (n >= max || out == NULL)
				continue;
			o = &out[n];
			memset(o, 0, sizeof *o);
			snprintf(o->upstream, sizeof o->upstream, "%s", s->upstream);
			snprintf(o->address, sizeof o->address, "%s", s->address);
			o->state = atomic_load(&s->state);
			o->health_up = atomic_load(&s->health_up);
			o->admin = atomic_load(&s->admin);
			o->ejected = atomic_load(&s->ejected_until_ms) > now;
			o->weight = (int)sv->weight;
			o->backup = sv->backup;
			o->max_conns = sv->max_conns;
			o->in_flight = atomic_load(&s->in_flight);
			o->weight_factor = u->slow_start > 0 ? rev_srv_weight_factor(s, u->slow_start, now) : 1;
			o->checked = u->cu->health.present && !sv->addr.is_name;
			o->last_status = s->last_status;
			snprintf(o->last_error, sizeof o->last_error, "%s", s->last_error);
			o->last_latency_ms = s->last_latency_ms;
			o->last_check = s->last_check;
			o->last_change = s->last_change;
			o->checks_ok = s->checks_ok;
			o->checks_failed = s->checks_failed;
			o->requests = atomic_load(&s->requests);
			o->failures = atomic_load(&s->failures);
			o->ejections = atomic_load(&s->ejections);
		}
	}
	return n;
}

/* Rewrite the server state file with every configured server not enabled. */
static void save_admin_state(const struct rev_data *d)
{
	size_t total = 0, n = 0;
	struct rev_srvstate_ent *v;

	for (size_t i = 0; i < d->nups; i++)
		total += d->ups[i].n;
	v = calloc(total ? total : 1, sizeof *v);
	if (v == NULL) {
		gw_error("server state: out of memory; the file is not updated");
		return;
	}
	for (size_t i = 0; i < d->nups; i++)
		for (size_t k = 0; k < d->ups[i].n; k++) {
			int a = atomic_load(&d->ups[i].srv[k]->admin);
			if (a == REV_SRV_UP)
				continue;
			v[n].upstream = d->ups[i].srv[k]->upstream;
			v[n].address = d->ups[i].srv[k]->address;
			v[n++].state = a;
		}
	rev_srvstate_save(d->cf->global.state_dir, v, n);
	free(v);
}

int rev_server_set_admin_state(const char *upstream, const char *address, int state)
{
	struct rev_data *d = g_active;

	if (state != REV_SRV_UP && state != REV_SRV_DRAINING && state != REV_SRV_DISABLED)
		return -2;
	if (d == NULL || upstream == NULL || address == NULL)
		return -1;
	for (size_t i = 0; i < d->nups; i++) {
		if (strcmp(d->ups[i].cu->name, upstream) != 0)
			continue;
		for (size_t k = 0; k < d->ups[i].n; k++)
			if (strcmp(d->ups[i].srv[k]->address, address) == 0) {
				int rc = rev_srv_set_admin(d->ups[i].srv[k], state);
				if (rc == 0)
					save_admin_state(d);
				return rc;
			}
	}
	return -1;
}

struct rev_rl *rev_rate_table(void)
{
	return g_active != NULL ? g_active->rl : NULL;
}

size_t rev_site_requests(struct rev_site_requests *out, size_t max)
{
	struct rev_data *d = g_active;
	size_t n = 0;

	if (d == NULL)
		return 0;
	for (size_t site = 0; site <= d->nsites; site++) {
		const struct rev_site *st = site < d->nsites ? rev_routes_site(d->routes, site) : NULL;
		for (size_t slot = 0; slot <= d->nups; slot++) {
			int used = slot == d->nups;     /* every site may answer locally */
			struct rev_site_requests *o;
			for (size_t k = 0; st != NULL && k < st->nroutes && !used; k++)
				used = st->routes[k].upstream == (int)slot;
			if (!used)
				continue;
			if (n++ >= max || out == NULL)
				continue;
			o = &out[n - 1];
			memset(o, 0, sizeof *o);
			o->site = st != NULL ? st->name : "(none)";
			o->upstream = slot < d->nups ? d->ups[slot].cu->name : "(none)";
			for (size_t c = 0; c < 5; c++)
				o->classes[c] = gw_counters_sum(&d->site_ctr, site_idx(d, site, slot) + c);
		}
	}
	return n;
}
