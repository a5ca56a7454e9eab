/*
 * reverse/cache: RFC 9111 decisions and the shared object store (see
 * cache.h).  Locking: one mutex per shard guards its hash chains, its LRU
 * list and the "linked" state of its objects; object contents never change
 * after publication, so readers need no lock once they hold a reference.
 * Byte and object totals are atomics so eviction can check the global
 * bound without taking every shard.
 */
#include "reverse/cache.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/httpdate.h"

#define COBJ_MAGIC 0x434f424au      /* "COBJ" */
#define MAX_STORED_HDRS 48           /* the core emits at most 64 header edits */
#define VARY_SIG_MAX 4096
#define FILL_FIRST_CAP 16384

/* ---- small parsing helpers ---- */

static int hdr_named(const struct gw_hdr *x, const char *name)
{
	size_t n = strlen(name);

	return x->name_len == n && strncasecmp(x->name, name, n) == 0;
}

static const struct gw_hdr *find_hdr(const struct gw_http_head *h, const char *name)
{
	for (size_t i = 0; i < h->nhdrs; i++)
		if (hdr_named(&h->hdrs[i], name))
			return &h->hdrs[i];
	return NULL;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* delta-seconds: digits only; -1 if malformed; saturates at 2^31. */
static int64_t delta_seconds(const char *p, size_t n)
{
	int64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v < 2147483648LL)
			v = v * 10 + (p[i] - '0');
	}
	return v > 2147483648LL ? 2147483648LL : v;
}

static void cc_directive(struct rev_cc *cc, const char *name, size_t nl, const char *val,
    size_t vl, int has_val, int is_request)
{
#define IS(s) (nl == sizeof(s) - 1 && strncasecmp(name, s, nl) == 0)
	int64_t d = has_val ? delta_seconds(val, vl) : -1;

	if (IS("no-store"))
		cc->flags |= REV_CC_NO_STORE;
	else if (IS("no-cache"))
		cc->flags |= REV_CC_NO_CACHE;
	else if (IS("private"))
		cc->flags |= REV_CC_PRIVATE;
	else if (IS("public"))
		cc->flags |= REV_CC_PUBLIC;
	else if (IS("must-revalidate"))
		cc->flags |= REV_CC_MUST_REVALIDATE;
	else if (IS("proxy-revalidate"))
		cc->flags |= REV_CC_PROXY_REVALIDATE;
	else if (IS("only-if-cached"))
		cc->flags |= REV_CC_ONLY_IF_CACHED;
	else if (IS("no-transform"))
		cc->flags |= REV_CC_NO_TRANSFORM;
	else if (IS("max-age"))
		cc->max_age = d < 0 ? 0 : (cc->max_age >= 0 && cc->max_age < d ? cc->max_age : d);
	else if (IS("s-maxage"))
		cc->s_maxage = d < 0 ? 0 : (cc->s_maxage >= 0 && cc->s_maxage < d ? cc->s_maxage : d);
	else if (IS("max-stale"))
		cc->max_stale = has_val ? (d < 0 ? 0 : d) : 2147483648LL;   /* no value: any staleness */
	else if (IS("min-fresh"))
		cc->min_fresh = d < 0 ? 0 : d;
	else if (IS("stale-while-revalidate") && !is_request)
		cc->stale_while_revalidate = d;
	else if (IS("stale-if-error"))
		cc->stale_if_error = d;
#undef IS
}

/* One Cache-Control field value: #( token [ "=" ( token / quoted-string ) ] ). */
static void cc_parse_value(struct rev_cc *cc, const char *p, size_t n, int is_request)
{
	size_t i = 0;

	while (i < n) {
		size_t ns, ne, vs = 0, ve = 0;
		int has_val = 0;
		while (i < n && (is_ows(p[i]) || p[i] == ','))
			i++;
		ns = i;
		while (i < n && p[i] != '=' && p[i] != ',' && !is_ows(p[i]))
			i++;
		ne = i;
		while (i < n && is_ows(p[i]))
			i++;
		if (i < n && p[i] == '=') {
			i++;
			while (i < n && is_ows(p[i]))
				i++;
			has_val = 1;
			if (i < n && p[i] == '"') {
				vs = ++i;
				while (i < n && p[i] != '"') {
					if (p[i] == '\\' && i + 1 < n)
						i++;
					i++;
				}
				ve = i;
				if (i < n)
					i++;
			} else {
				vs = i;
				while (i < n && p[i] != ',' && !is_ows(p[i]))
					i++;
				ve = i;
			}
		}
		if (ne > ns)
			cc_directive(cc, p + ns, ne - ns, p + vs, ve - vs, has_val, is_request);
		while (i < n && p[i] != ',')
			i++;
	}
}

void rev_cc_parse(const struct gw_http_head *h, int is_request, struct rev_cc *cc)
{
	int seen = 0;

	memset(cc, 0, sizeof *cc);
	cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = -1;
	cc->stale_while_revalidate = cc->stale_if_error = -1;
	for (size_t i = 0; i < h->nhdrs; i++) {
		if (!hdr_named(&h->hdrs[i], "cache-control"))
			continue;
		seen = 1;
		cc_parse_value(cc, h->hdrs[i].value, h->hdrs[i].value_len, is_request);
	}
	if (is_request && !seen) {
		const struct gw_hdr *p = find_hdr(h, "pragma");
		if (p != NULL && memmem(p->value, p->value_len, "no-cache", 8) != NULL)
			cc->flags |= REV_CC_NO_CACHE | REV_CC_PRAGMA_NO_CACHE;
	}
}

static double date_of(const struct gw_http_head *h, const char *name, double invalid)
{
	const struct gw_hdr *x = find_hdr(h, name);
	time_t t;

	if (x == NULL)
		return -1;
	if (gw_httpdate_parse(x->value, x->value_len, &t) != 0)
		return invalid;
	return (double)t;
}

/* 1 if the comma list v contains the token tok (case-insensitive). */
static int list_has(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (is_ows(v[i]) || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && is_ows(v[e - 1]))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

void rev_resp_info(const struct gw_http_head *resp, struct rev_resp_info *ri)
{
	memset(ri, 0, sizeof *ri);
	ri->status = resp->status;
	rev_cc_parse(resp, 0, &ri->cc);
	ri->date = date_of(resp, "date", -1);
	ri->expires = date_of(resp, "expires", 0);
	ri->last_modified = date_of(resp, "last-modified", -1);
	for (size_t i = 0; i < resp->nhdrs; i++) {
		const struct gw_hdr *x = &resp->hdrs[i];
		if (hdr_named(x, "age")) {
			int64_t a = delta_seconds(x->value, x->value_len);
			ri->age = a < 0 ? 0 : (double)a;
		} else if (hdr_named(x, "etag")) {
			ri->has_etag = x->value_len > 0;
		} else if (hdr_named(x, "set-cookie") || hdr_named(x, "set-cookie2")) {
			ri->set_cookie = 1;
		} else if (hdr_named(x, "vary")) {
			if (list_has(x->value, x->value_len, "*"))
				ri->vary_star = 1;
		}
	}
}

int rev_cache_status_heuristic(int status)
{
	switch (status) {
	case 200: case 203: case 204: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return 1;
	}
	return 0;
}

double rev_cache_lifetime(const struct rev_resp_info *ri, double date, double default_ttl)
{
	const struct rev_cc *cc = &ri->cc;

	if (cc->s_maxage >= 0)
		return (double)cc->s_maxage;
	if (cc->max_age >= 0)
		return (double)cc->max_age;
	if (ri->expires >= 0) {
		double base = ri->date >= 0 ? ri->date : date;
		return ri->expires > base ? ri->expires - base : 0;
	}
	if (!rev_cache_status_heuristic(ri->status) && !(cc->flags & REV_CC_PUBLIC))
		return 0;
	if (default_ttl > 0)
		return default_ttl;
	if (ri->last_modified >= 0) {
		double base = ri->date >= 0 ? ri->date : date;
		if (base > ri->last_modified) {
			double h = (base - ri->last_modified) * REV_CACHE_HEURISTIC_FRACTION;
			return h > REV_CACHE_HEURISTIC_MAX ? REV_CACHE_HEURISTIC_MAX : h;
		}
	}
	return 0;
}

const char *const rev_nostore_names[] = { "ok", "method", "status", "request no-store",
	"no-store", "private", "authorization", "set-cookie", "vary *", "no freshness", "request cookie" };

enum rev_nostore rev_cache_storable(const struct gw_http_head *req, const struct rev_cc *req_cc,
    const struct rev_resp_info *ri, double lifetime)
{
	const struct rev_cc *cc = &ri->cc;
	int explicit_fresh = cc->max_age >= 0 || cc->s_maxage >= 0 || ri->expires >= 0;
	int validator = ri->has_etag || ri->last_modified >= 0;

	if (req->method != GW_M_GET)
		return REV_NOSTORE_METHOD;
	if (req_cc != NULL && (req_cc->flags & REV_CC_NO_STORE))
		return REV_NOSTORE_REQ_NO_STORE;
	if (ri->status < 200 || ri->status > 599 || ri->status == 206 || ri->status == 304)
		return REV_NOSTORE_STATUS;
	if (cc->flags & REV_CC_NO_STORE)
		return REV_NOSTORE_NO_STORE;
	if (cc->flags & REV_CC_PRIVATE)
		return REV_NOSTORE_PRIVATE;
	if (find_hdr(req, "authorization") != NULL &&
	    !(cc->flags & (REV_CC_PUBLIC | REV_CC_MUST_REVALIDATE)) && cc->s_maxage < 0)
		return REV_NOSTORE_AUTH;
	if (ri->set_cookie)
		return REV_NOSTORE_COOKIE;
	if (ri->vary_star)
		return REV_NOSTORE_VARY_STAR;
	if (!explicit_fresh && !rev_cache_status_heuristic(ri->status) && !(cc->flags & REV_CC_PUBLIC))
		return REV_NOSTORE_STATUS;
	if ((lifetime <= 0 || (cc->flags & REV_CC_NO_CACHE)) && !validator)
		return REV_NOSTORE_NO_FRESHNESS;
	/* web cache deception: the answer to a request with cookies is
	 * likely made for that user; stored only when the origin says it is
	 * for everyone.  Checked last, so a caller whose route opts in
	 * (cache.ignore_cookie) may treat this one reason as storable. */
	if (find_hdr(req, "cookie") != NULL && !(cc->flags & REV_CC_PUBLIC))
		return REV_NOSTORE_REQ_COOKIE;
	return REV_STORE_OK;
}

double rev_cache_initial_age(double age_value, double date, double request_time,
    double response_time)
{
	double apparent = date >= 0 && response_time > date ? response_time - date : 0;
	double delay = response_time > request_time ? response_time - request_time : 0;
	double corrected = age_value + delay;

	return apparent > corrected ? apparent : corrected;
}

size_t rev_cache_key(char *buf, size_t cap, int https, const char *host, size_t hlen,
    const char *path, size_t plen)
{
	const char *scheme = https ? "https://" : "http://";
	size_t sl = strlen(scheme), n = hlen, k;
	const char *colon = NULL;

	if (hlen == 0 || host == NULL)
		return 0;
	/* the port, if any, follows the last ':' outside brackets */
	for (size_t i = hlen; i > 0; i--) {
		if (host[i - 1] == ']')
			break;
		if (host[i - 1] == ':') {
			colon = host + i - 1;
			break;
		}
	}
	if (colon != NULL) {
		size_t pl = hlen - (size_t)(colon - host) - 1;
		if ((pl == 0) || (https && pl == 3 && memcmp(colon + 1, "443", 3) == 0) ||
		    (!https && pl == 2 && memcmp(colon + 1, "80", 2) == 0))
			n = (size_t)(colon - host);
	}
	if (plen == 0) {
		path = "/";
		plen = 1;
	}
	if (sl + n + plen + 1 > cap)
		return 0;
	memcpy(buf, scheme, sl);
	for (k = 0; k < n; k++)
		buf[sl + k] = (char)tolower((unsigned char)host[k]);
	memcpy(buf + sl + n, path, plen);
	buf[sl + n + plen] = '\0';
	return sl + n + plen;
}

size_t rev_cache_key_from_url(char *buf, size_t cap, const char *url)
{
	int https;
	const char *a, *p;

	if (url == NULL)
		return 0;
	if (strncasecmp(url, "http://", 7) == 0) {
		https = 0;
		a = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		https = 1;
		a = url + 8;
	} else {
		return 0;
	}
	p = a + strcspn(a, "/?#");
	if (p == a || *p == '#' || strchr(p, '#') != NULL || memchr(a, '@', (size_t)(p - a)) != NULL)
		return 0;
	if (*p == '?') {
		/* "http://h?q": the path is "/" */
		char tmp[8192];
		int n = snprintf(tmp, sizeof tmp, "/%s", p);
		if (n < 0 || (size_t)n >= sizeof tmp)
			return 0;
		return rev_cache_key(buf, cap, https, a, (size_t)(p - a), tmp, (size_t)n);
	}
	return rev_cache_key(buf, cap, https, a, (size_t)(p - a), p, strlen(p));
}

/* "*", or a list of entity-tags; weak comparison. */
int rev_cache_etag_match(const char *inm, size_t n, const char *etag, size_t el)
{
	size_t i = 0;

	if (etag != NULL && el >= 2 && etag[0] == 'W' && etag[1] == '/') {
		etag += 2;
		el -= 2;
	}
	while (i < n) {
		size_t s;
		while (i < n && (is_ows(inm[i]) || inm[i] == ','))
			i++;
		if (i >= n)
			break;
		if (inm[i] == '*')
			return 1;
		if (i + 1 < n && inm[i] == 'W' && inm[i + 1] == '/')
			i += 2;
		s = i;
		if (i < n && inm[i] == '"') {
			i++;
			while (i < n && inm[i] != '"')
				i++;
			if (i < n)
				i++;
		} else {
			while (i < n && inm[i] != ',' && !is_ows(inm[i]))
				i++;
		}
		if (etag != NULL && i - s == el && memcmp(inm + s, etag, el) == 0)
			return 1;
		while (i < n && inm[i] != ',')
			i++;
	}
	return 0;
}

/* ---- Vary ---- */

/* Lower-cased, comma-separated list of the names in every Vary field of
 * resp into out (cap); returns the length (0 = no Vary), -1 if too long. */
static long vary_names(const struct gw_http_head *resp, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < resp->nhdrs; i++) {
		const struct gw_hdr *x = &resp->hdrs[i];
		size_t j = 0;
		if (!hdr_named(x, "vary"))
			continue;
		while (j < x->value_len) {
			size_t s, e;
			while (j < x->value_len && (is_ows(x->value[j]) || x->value[j] == ','))
				j++;
			s = j;
			while (j < x->value_len && x->value[j] != ',' && !is_ows(x->value[j]))
				j++;
			e = j;
			if (e == s)
				continue;
			if (n + (e - s) + 2 > cap)
				return -1;
			if (n > 0)
				out[n++] = ',';
			for (size_t k = s; k < e; k++)
				out[n++] = (char)tolower((unsigned char)x->value[k]);
		}
	}
	if (n < cap)
		out[n] = '\0';
	return (long)n;
}

/* Copy v (n bytes) to out without the whitespace around its commas or at
 * its ends (RFC 9111 4.1: values that differ only so match); returns the
 * length written, at most n. */
static size_t vary_value(char *out, const char *v, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (is_ows(v[i])) {
			size_t j = i;
			while (j < n && is_ows(v[j]))
				j++;
			if (k == 0 || out[k - 1] == ',' || j == n || v[j] == ',') {
				i = j - 1;
				continue;
			}
		}
		out[k++] = v[i];
	}
	return k;
}

/*
 * The request's values for the names list: for each name, every field of
 * that name joined by "," (whitespace around commas removed), then a NUL;
 * an absent header is "\1".  Returns the length or -1 if it does not fit.
 */
static long vary_sig(const char *names, const struct gw_http_head *req, char *out, size_t cap)
{
	size_t n = 0;
	const char *p = names;

	while (p != NULL && *p != '\0') {
		const char *e = strchr(p, ',');
		size_t nl = e ? (size_t)(e - p) : strlen(p);
		int found = 0;
		for (size_t i = 0; i < req->nhdrs; i++) {
			const struct gw_hdr *x = &req->hdrs[i];
			if (x->name_len != nl || strncasecmp(x->name, p, nl) != 0)
				continue;
			if (n + x->value_len + 2 > cap)
				return -1;
			if (found)
				out[n++] = ',';
			n += vary_value(out + n, x->value, x->value_len);
			found = 1;
		}
		if (n + 2 > cap)
			return -1;
		if (!found)
			out[n++] = '\1';
		out[n++] = '\0';
		p = e ? e + 1 : NULL;
	}
	return (long)n;
}

/* ---- objects ---- */

struct rev_cbody {
	_Atomic uint32_t refs;
	size_t len, cap;
	char *data;
};

struct rev_cobj {
	uint32_t magic;
	_Atomic uint32_t refs;
	struct rev_cobj *hnext, *lprev, *lnext;
	uint64_t hash;
	unsigned shard;
	int linked;                /* in the table (shard lock) */
	size_t charge;
	char *key;
	size_t key_len;
	char *vnames;              /* NULL: no Vary */
	char *vsig;
	size_t vsig_len;
	struct rev_chdr *hdrs;
	struct rev_cbody *body;
	struct rev_cobj_view v;
	size_t blob_len;
};

struct shard {
	pthread_mutex_t mu;
	struct rev_cobj **b;
	size_t nb, n;
	struct rev_cobj *lru_head, *lru_tail;   /* head: most recently used */
	char pad[64];
};

struct rev_cstore {
	_Atomic uint64_t memory, max_object;
	_Atomic uint64_t bytes, objects, evictions, purged, stored;
	_Atomic unsigned evict_cursor;
	unsigned nshards;
	struct shard *sh;
};

static uint64_t hash_key(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static void body_put(struct rev_cbody *b)
{
	if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) {
		free(b->data);
		free(b);
	}
}

void rev_cobj_get(struct rev_cobj *o)
{
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void rev_cobj_put(struct rev_cobj *o)
{
	if (o == NULL)
		return;
	if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
		o->magic = 0;
		body_put(o->body);
		free(o);
	}
}

void rev_cobj_view(const struct rev_cobj *o, struct rev_cobj_view *v)
{
	*v = o->v;
	v->body = o->body != NULL && o->body->data != NULL ? o->body->data : "";
	v->body_len = o->body ? o->body->len : 0;
}

double rev_cobj_age(const struct rev_cobj *o, double now)
{
	double resident = now > o->v.response_time ? now - o->v.response_time : 0;

	return o->v.initial_age + resident;
}

/* Hop-by-hop and fields a cache must not store or must set itself
 * (RFC 9111 3.1, including the proxy-specific authentication fields). */
static int skip_stored(const struct gw_hdr *x, const struct gw_http_head *h)
{
	static const char *const names[] = { "connection", "keep-alive", "proxy-connection", "te",
		"trailer", "transfer-encoding", "upgrade", "content-length", "age", "set-cookie",
		"set-cookie2", "x-cache", "proxy-authenticate", "proxy-authentication-info", NULL };
	char nm[128];

	for (int i = 0; names[i] != NULL; i++)
		if (hdr_named(x, names[i]))
			return 1;
	/* fields named by Connection are hop-by-hop too: by every Connection
	 * header, as the core's relay drops them */
	if (h == NULL || x->name_len >= sizeof nm)
		return 0;
	memcpy(nm, x->name, x->name_len);
	nm[x->name_len] = '\0';
	for (size_t i = 0; i < h->nhdrs; i++)
		if (hdr_named(&h->hdrs[i], "connection") &&
		    list_has(h->hdrs[i].value, h->hdrs[i].value_len, nm))
			return 1;
	return 0;
}

/* Freshness-relevant settings of an object from its (merged) headers. */
static void obj_times(struct rev_cobj *o, const struct rev_resp_info *ri, double lifetime,
    double request_time, double response_time, double sie_override)
{
	o->v.response_time = response_time;
	o->v.initial_age = rev_cache_initial_age(ri->age, ri->date, request_time, response_time);
	o->v.lifetime = lifetime;
	o->v.swr = ri->cc.stale_while_revalidate >= 0 ? (double)ri->cc.stale_while_revalidate : -1;
	o->v.sie = sie_override >= 0 ? sie_override :
	    (ri->cc.stale_if_error >= 0 ? (double)ri->cc.stale_if_error : -1);
	o->v.no_cache = (ri->cc.flags & REV_CC_NO_CACHE) != 0;
	o->v.no_stale = (ri->cc.flags & (REV_CC_MUST_REVALIDATE | REV_CC_PROXY_REVALIDATE)) != 0 ||
	    ri->cc.s_maxage >= 0;
	o->v.last_modified = ri->last_modified;
}

/*
 * One allocation: the object, its header array and a blob with the key,
 * Vary names and signature, and header names/values.  hdrs[0..n) are
 * copied; date_text (may be NULL) is appended as a Date field.
 */
static struct rev_cobj *obj_build(const char *key, int status, const struct gw_hdr *hdrs,
    size_t n, const char *date_text, const char *vnames, const char *vsig, size_t vsig_len)
{
	size_t kl = strlen(key), vl = vnames ? strlen(vnames) + 1 : 0, blob = kl + 1 + vl + vsig_len;
	size_t nh = n + (date_text != NULL);
	struct rev_cobj *o;
	char *p;

	if (nh > MAX_STORED_HDRS)
		return NULL;
	for (size_t i = 0; i < n; i++)
		blob += hdrs[i].name_len + 1 + hdrs[i].value_len + 1;
	if (date_text != NULL)
		blob += 5 + strlen(date_text) + 1;
	o = calloc(1, sizeof *o + nh * sizeof(struct rev_chdr) + blob);
	if (o == NULL)
		return NULL;
	o->magic = COBJ_MAGIC;
	atomic_init(&o->refs, 1);
	o->hdrs = (struct rev_chdr *)(o + 1);
	p = (char *)(o->hdrs + nh);
	o->blob_len = blob;
	o->key = p;
	o->key_len = kl;
	memcpy(p, key, kl + 1);
	p += kl + 1;
	if (vnames != NULL) {
		o->vnames = p;
		memcpy(p, vnames, vl);
		p += vl;
		o->vsig = p;
		o->vsig_len = vsig_len;
		memcpy(p, vsig, vsig_len);
		p += vsig_len;
	}
	for (size_t i = 0; i < n; i++) {
		o->hdrs[i].name = p;
		memcpy(p, hdrs[i].name, hdrs[i].name_len);
		p[hdrs[i].name_len] = '\0';
		p += hdrs[i].name_len + 1;
		o->hdrs[i].value = p;
		o->hdrs[i].value_len = hdrs[i].value_len;
		memcpy(p, hdrs[i].value, hdrs[i].value_len);
		p[hdrs[i].value_len] = '\0';
		p += hdrs[i].value_len + 1;
	}
	if (date_text != NULL) {
		o->hdrs[n].name = p;
		memcpy(p, "Date", 5);
		p += 5;
		o->hdrs[n].value = p;
		o->hdrs[n].value_len = strlen(date_text);
		memcpy(p, date_text, o->hdrs[n].value_len + 1);
	}
	o->hash = hash_key(key, kl);
	o->v.status = status;
	o->v.hdrs = o->hdrs;
	o->v.nhdrs = nh;
	o->v.key = o->key;
	o->v.last_modified = -1;
	for (size_t i = 0; i < nh; i++) {
		if (strcasecmp(o->hdrs[i].name, "etag") == 0) {
			o->v.etag = o->hdrs[i].value;
			o->v.etag_len = o->hdrs[i].value_len;
		}
	}
	return o;
}

/* ---- the store ---- */

struct rev_cstore *rev_cstore_new(uint64_t memory, uint64_t max_object, unsigned nshards)
{
	struct rev_cstore *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	if (nshards == 0)
		nshards = 1;
	s->nshards = nshards;
	s->sh = calloc(nshards, sizeof *s->sh);
	if (s->sh == NULL) {
		free(s);
		return NULL;
	}
	for (unsigned i = 0; i < nshards; i++) {
		pthread_mutex_init(&s->sh[i].mu, NULL);
		s->sh[i].nb = 256;
		s->sh[i].b = calloc(s->sh[i].nb, sizeof *s->sh[i].b);
		if (s->sh[i].b == NULL) {
			s->nshards = i + 1;
			rev_cstore_free(s);
			return NULL;
		}
	}
	atomic_init(&s->memory, memory);
	atomic_init(&s->max_object, max_object);
	return s;
}

void rev_cstore_free(struct rev_cstore *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->nshards; i++) {
		struct shard *h = &s->sh[i];
		for (size_t k = 0; h->b != NULL && k < h->nb; k++) {
			struct rev_cobj *o = h->b[k], *nx;
			for (; o != NULL; o = nx) {
				nx = o->hnext;
				o->linked = 0;
				rev_cobj_put(o);
			}
		}
		free(h->b);
		pthread_mutex_destroy(&h->mu);
	}
	free(s->sh);
	free(s);
}

void rev_cstore_set_limits(struct rev_cstore *s, uint64_t memory, uint64_t max_object)
{
	atomic_store(&s->memory, memory);
	atomic_store(&s->max_object, max_object);
}

uint64_t rev_cstore_max_object(const struct rev_cstore *s)
{
	return atomic_load(&s->max_object);
}

static struct shard *shard_of(struct rev_cstore *s, uint64_t hash)
{
	return &s->sh[(hash >> 48) % s->nshards];
}

static void lru_unlink(struct shard *h, struct rev_cobj *o)
{
	if (o->lprev)
		o->lprev->lnext = o->lnext;
	else
		h->lru_head = o->lnext;
	if (o->lnext)
		o->lnext->lprev = o->lprev;
	else
		h->lru_tail = o->lprev;
	o->lprev = o->lnext = NULL;
}

static void lru_push(struct shard *h, struct rev_cobj *o)
{
	o->lprev = NULL;
	o->lnext = h->lru_head;
	if (h->lru_head)
		h->lru_head->lprev = o;
	h->lru_head = o;
	if (h->lru_tail == NULL)
		h->lru_tail = o;
}

/* Remove o from the table (shard locked); the caller puts the table's reference. */
static void unlink_obj(struct rev_cstore *s, struct shard *h, struct rev_cobj *o)
{
	struct rev_cobj **pp = &h->b[o->hash % h->nb];

	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == o) {
			*pp = o->hnext;
			break;
		}
	}
	o->hnext = NULL;
	lru_unlink(h, o);
	o->linked = 0;
	h->n--;
	atomic_fetch_sub(&s->bytes, o->charge);
	atomic_fetch_sub(&s->objects, 1);
}

static void grow(struct shard *h)
{
	size_t nb = h->nb * 2;
	struct rev_cobj **b = calloc(nb, sizeof *b);

	if (b == NULL)
		return;
	for (size_t i = 0; i < h->nb; i++) {
		struct rev_cobj *o = h->b[i], *nx;
		for (; o != NULL; o = nx) {
			nx = o->hnext;
			o->hnext = b[o->hash % nb];
			b[o->hash % nb] = o;
		}
	}
	free(h->b);
	h->b = b;
	h->nb = nb;
}

static int vary_matches(const struct rev_cobj *o, const struct gw_http_head *req)
{
	char sig[VARY_SIG_MAX];
	long n;

	if (o->vnames == NULL)
		return 1;
	n = vary_sig(o->vnames, req, sig, sizeof sig);
	return n >= 0 && (size_t)n == o->vsig_len && memcmp(sig, o->vsig, (size_t)n) == 0;
}

struct rev_cobj *rev_cstore_lookup(struct rev_cstore *s, const char *key,
    const struct gw_http_head *req)
{
	size_t kl = strlen(key);
	uint64_t hash = hash_key(key, kl);
	struct shard *h = shard_of(s, hash);
	struct rev_cobj *o, *hit = NULL;

	pthread_mutex_lock(&h->mu);
	for (o = h->b[hash % h->nb]; o != NULL; o = o->hnext) {
		if (o->hash != hash || o->key_len != kl || memcmp(o->key, key, kl) != 0)
			continue;
		if (!vary_matches(o, req))
			continue;
		hit = o;
		rev_cobj_get(o);
		lru_unlink(h, o);
		lru_push(h, o);
		break;
	}
	pthread_mutex_unlock(&h->mu);
	return hit;
}

/* Evict the least recently used object of the next shard that has one
 * (keep is spared).  1 if one went, 0 if nothing is left to evict. */
static int evict_one(struct rev_cstore *s, const struct rev_cobj *keep)
{
	for (unsigned idle = 0; idle < s->nshards; idle++) {
		unsigned i = atomic_fetch_add(&s->evict_cursor, 1) % s->nshards;
		struct shard *h = &s->sh[i];
		struct rev_cobj *v;
		pthread_mutex_lock(&h->mu);
		v = h->lru_tail;
		if (v != NULL && v == keep)
			v = v->lprev;
		if (v != NULL) {
			unlink_obj(s, h, v);
			atomic_fetch_add(&s->evictions, 1);
		}
		pthread_mutex_unlock(&h->mu);
		if (v != NULL) {
			rev_cobj_put(v);
			return 1;
		}
	}
	return 0;
}

/* Evict least recently used objects until the bytes fit (keep is spared). */
static void enforce(struct rev_cstore *s, const struct rev_cobj *keep)
{
	while (atomic_load(&s->bytes) > atomic_load(&s->memory) && evict_one(s, keep))
		;
}

/*
 * Charge n bytes of a fill in progress to the store's bytes, evicting stored
 * objects (LRU) to make room.  -1 when even an empty store has no room (the
 * rest is held by other fills): the caller stops storing.  So bytes, stored
 * plus being stored, never pass memory.
 */
static int reserve(struct rev_cstore *s, uint64_t n)
{
	for (;;) {
		uint64_t cur = atomic_load(&s->bytes);
		if (cur + n <= atomic_load(&s->memory)) {
			if (atomic_compare_exchange_weak(&s->bytes, &cur, cur + n))
				return 0;
			continue;
		}
		if (!evict_one(s, NULL))
			return -1;
	}
}

/* Insert o (one reference handed to the table), replacing the same
 * variant of its key and variants made under another Vary list. */
static int publish(struct rev_cstore *s, struct rev_cobj *o)
{
	struct shard *h = shard_of(s, o->hash);
	struct rev_cobj *old[16];
	size_t nold = 0;
	int same_list, same_variant;

	if (o->charge > atomic_load(&s->memory)) {
		rev_cobj_put(o);
		return -1;
	}
	pthread_mutex_lock(&h->mu);
	for (struct rev_cobj *x = h->b[o->hash % h->nb], *nx; x != NULL; x = nx) {
		nx = x->hnext;
		if (x->hash != o->hash || x->key_len != o->key_len ||
		    memcmp(x->key, o->key, o->key_len) != 0)
			continue;
		same_list = (x->vnames == NULL && o->vnames == NULL) ||
		    (x->vnames != NULL && o->vnames != NULL && strcmp(x->vnames, o->vnames) == 0);
		same_variant = same_list && x->vsig_len == o->vsig_len &&
		    (o->vsig_len == 0 || memcmp(x->vsig, o->vsig, o->vsig_len) == 0);
		if (!same_list || same_variant) {
			if (nold < 16) {
				unlink_obj(s, h, x);
				old[nold++] = x;
			}
		}
	}
	if (h->n + 1 > h->nb)
		grow(h);
	o->hnext = h->b[o->hash % h->nb];
	h->b[o->hash % h->nb] = o;
	lru_push(h, o);
	o->linked = 1;
	h->n++;
	atomic_fetch_add(&s->bytes, o->charge);
	atomic_fetch_add(&s->objects, 1);
	atomic_fetch_add(&s->stored, 1);
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < nold; i++)
		rev_cobj_put(old[i]);
	enforce(s, o);
	return 0;
}

/* ---- filling ---- */

/* A fill's bytes (object and headers at once, body bytes as they are
 * stored) are charged to the store as they come (reserve()), not at commit:
 * many slow fills in flight cannot pass reverse.cache.memory together. */
struct rev_cfill {
	struct rev_cstore *s;
	struct rev_cobj *o;
	struct rev_cbody *b;
	uint64_t max;
	uint64_t charged;          /* bytes reserved in s->bytes */
};

struct rev_cfill *rev_cfill_begin(struct rev_cstore *s, const char *key,
    const struct gw_http_head *req, const struct gw_http_head *resp,
    const struct rev_resp_info *ri, double lifetime, double request_time,
    double response_time, int64_t expect_len, double sie_override)
{
	uint64_t max = atomic_load(&s->max_object);
	struct gw_hdr keep[MAX_STORED_HDRS];
	size_t nk = 0;
	char names[512], sig[VARY_SIG_MAX], date[GW_HTTPDATE_MAX];
	long nl, sl = 0;
	struct rev_cfill *f;

	if (expect_len >= 0 && (uint64_t)expect_len > max)
		return NULL;
	nl = vary_names(resp, names, sizeof names);
	if (nl < 0)
		return NULL;
	if (nl > 0 && (sl = vary_sig(names, req, sig, sizeof sig)) < 0)
		return NULL;
	for (size_t i = 0; i < resp->nhdrs; i++) {
		if (skip_stored(&resp->hdrs[i], resp))
			continue;
		if (nk >= MAX_STORED_HDRS)
			return NULL;
		keep[nk++] = resp->hdrs[i];
	}
	if (ri->date < 0)
		gw_httpdate_fmt((time_t)response_time, date);
	f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->o = obj_build(key, resp->status, keep, nk, ri->date < 0 ? date : NULL,
	    nl > 0 ? names : NULL, sig, (size_t)sl);
	f->b = calloc(1, sizeof *f->b);
	if (f->o == NULL || f->b == NULL) {
		rev_cobj_put(f->o);
		free(f->b);
		free(f);
		return NULL;
	}
	atomic_init(&f->b->refs, 1);
	f->s = s;
	f->max = max;
	if (reserve(s, sizeof *f->o + f->o->v.nhdrs * sizeof(struct rev_chdr) + f->o->blob_len +
	    REV_COBJ_OVERHEAD) < 0) {
		rev_cfill_abort(f);
		return NULL;
	}
	f->charged = sizeof *f->o + f->o->v.nhdrs * sizeof(struct rev_chdr) + f->o->blob_len +
	    REV_COBJ_OVERHEAD;
	f->b->cap = expect_len >= 0 ? (size_t)expect_len : 0;
	if (f->b->cap > 0 && (f->b->data = malloc(f->b->cap)) == NULL) {
		rev_cfill_abort(f);
		return NULL;
	}
	obj_times(f->o, ri, lifetime, request_time, response_time, sie_override);
	return f;
}

int rev_cfill_data(struct rev_cfill *f, const char *p, size_t n)
{
	struct rev_cbody *b = f->b;

	if (b->len + n > f->max)
		return -1;
	/* charged as stored (the pages of a larger buffer not yet written are
	 * not resident: a known length is allocated at once, lazily backed) */
	if (reserve(f->s, n) < 0)
		return -1;         /* no room: this one is not stored */
	f->charged += n;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : FILL_FIRST_CAP;
		char *d;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > f->max)
			cap = (size_t)f->max;
		d = realloc(b->data, cap);
		if (d == NULL)
			return -1;         /* the caller aborts f: that returns the charge */
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void rev_cfill_abort(struct rev_cfill *f)
{
	if (f == NULL)
		return;
	if (f->charged > 0)
		atomic_fetch_sub(&f->s->bytes, f->charged);
	rev_cobj_put(f->o);
	body_put(f->b);
	free(f);
}

int rev_cfill_commit(struct rev_cfill *f)
{
	struct rev_cstore *s = f->s;
	struct rev_cobj *o = f->o;
	struct rev_cbody *b = f->b;

	if (b->cap > b->len && b->len > 0) {
		char *d = realloc(b->data, b->len);
		if (d != NULL) {
			b->data = d;
			b->cap = b->len;
		}
	}
	o->body = b;
	o->charge = sizeof *o + o->v.nhdrs * sizeof(struct rev_chdr) + o->blob_len + b->cap +
	    REV_COBJ_OVERHEAD;
	/* the object's own charge replaces the fill's (publish() adds it) */
	atomic_fetch_sub(&s->bytes, f->charged);
	free(f);
	return publish(s, o);
}

/* ---- refresh (304) ---- */

/* Take o out of the table if it is still there. */
static void unpublish(struct rev_cstore *s, struct rev_cobj *o)
{
	struct shard *h = shard_of(s, o->hash);
	int was_linked = 0;

	pthread_mutex_lock(&h->mu);
	if (o->linked) {
		unlink_obj(s, h, o);
		was_linked = 1;
	}
	pthread_mutex_unlock(&h->mu);
	if (was_linked)
		rev_cobj_put(o);   /* the table's reference */
}

struct rev_cobj *rev_cstore_refresh(struct rev_cstore *s, struct rev_cobj *old,
    const struct gw_http_head *resp304, double request_time, double response_time,
    double default_ttl, double sie_override)
{
	struct gw_hdr merged[MAX_STORED_HDRS];
	struct gw_http_head mh;
	struct rev_resp_info ri;
	struct rev_cobj *o;
	size_t n = 0;
	int has_date;

	/* stored fields not in the 304, then the 304's own fields */
	for (size_t i = 0; i < old->v.nhdrs; i++) {
		const struct rev_chdr *c = &old->hdrs[i];
		struct gw_hdr x = { c->name, c->value, (uint32_t)strlen(c->name), (uint32_t)c->value_len };
		int replaced = 0;
		for (size_t k = 0; k < resp304->nhdrs && !replaced; k++)
			if (!skip_stored(&resp304->hdrs[k], resp304) &&
			    resp304->hdrs[k].name_len == x.name_len &&
			    strncasecmp(resp304->hdrs[k].name, x.name, x.name_len) == 0)
				replaced = 1;
		if (!replaced && n < MAX_STORED_HDRS)
			merged[n++] = x;
	}
	for (size_t k = 0; k < resp304->nhdrs; k++) {
		if (skip_stored(&resp304->hdrs[k], resp304) || n >= MAX_STORED_HDRS)
			continue;
		merged[n++] = resp304->hdrs[k];
	}
	memset(&mh, 0, sizeof mh);
	mh.status = old->v.status;
	mh.hdrs = merged;
	mh.nhdrs = n;
	mh.hdrs_cap = MAX_STORED_HDRS;
	rev_resp_info(&mh, &ri);
	/* the Age of the 304 (merged view has none: Age is not stored) */
	for (size_t k = 0; k < resp304->nhdrs; k++) {
		if (hdr_named(&resp304->hdrs[k], "age")) {
			int64_t a = delta_seconds(resp304->hdrs[k].value, resp304->hdrs[k].value_len);
			ri.age = a < 0 ? 0 : (double)a;
		}
	}
	has_date = find_hdr(resp304, "date") != NULL;
	if (!has_date) {
		/* the stored Date is stale now: the refresh happened at response_time */
		char date[GW_HTTPDATE_MAX];
		size_t w = 0;
		for (size_t i = 0; i < n; i++)
			if (!hdr_named(&merged[i], "date"))
				merged[w++] = merged[i];
		n = w;
		gw_httpdate_fmt((time_t)response_time, date);
		ri.date = -1;
		o = obj_build(old->key, old->v.status, merged, n, date, old->vnames, old->vsig,
		    old->vsig_len);
	} else {
		o = obj_build(old->key, old->v.status, merged, n, NULL, old->vnames, old->vsig,
		    old->vsig_len);
	}
	if (o == NULL)
		return NULL;
	obj_times(o, &ri, rev_cache_lifetime(&ri, response_time, default_ttl), request_time,
	    response_time, sie_override);
	o->body = old->body;
	if (o->body != NULL) {
		atomic_fetch_add(&o->body->refs, 1);
		o->charge = sizeof *o + o->v.nhdrs * sizeof(struct rev_chdr) + o->blob_len +
		    o->body->cap + REV_COBJ_OVERHEAD;
	}
	rev_cobj_get(o);          /* the caller's reference */
	if (ri.cc.flags & (REV_CC_NO_STORE | REV_CC_PRIVATE)) {
		/* the origin no longer allows storing it: this answer is the
		 * last one from the entry */
		unpublish(s, old);
		rev_cobj_put(o);
	} else if (publish(s, o) < 0) {
		/* did not fit: the caller still gets the refreshed copy to send */
	}
	return o;
}

/* ---- purge ---- */

/* Purge: unlink o (h->mu held) and push it on a list of unlinked objects,
 * reusing its chain link; the list is released after the lock is dropped. */
static struct rev_cobj *unlink_onto(struct rev_cstore *s, struct shard *h, struct rev_cobj *o,
    struct rev_cobj *list)
{
	unlink_obj(s, h, o);
	o->hnext = list;
	return o;
}

static void put_unlinked(struct rev_cobj *list)
{
	while (list != NULL) {
		struct rev_cobj *nx = list->hnext;
		list->hnext = NULL;
		rev_cobj_put(list);
		list = nx;
	}
}

int rev_cstore_purge_key(struct rev_cstore *s, const char *key)
{
	size_t kl = strlen(key);
	uint64_t hash = hash_key(key, kl);
	struct shard *h = shard_of(s, hash);
	struct rev_cobj *gone = NULL;
	int n = 0;

	pthread_mutex_lock(&h->mu);
	for (struct rev_cobj *o = h->b[hash % h->nb], *nx; o != NULL; o = nx) {
		nx = o->hnext;
		if (o->hash != hash || o->key_len != kl || memcmp(o->key, key, kl) != 0)
			continue;
		gone = unlink_onto(s, h, o, gone);
		n++;
	}
	pthread_mutex_unlock(&h->mu);
	put_unlinked(gone);
	atomic_fetch_add(&s->purged, (uint64_t)n);
	return n;
}

/* Does key ("scheme://authority/path") fall under prefix (see cache.h)? */
static int prefix_match(const char *key, const char *scheme, size_t scl, const char *host,
    size_t hl, int host_has_port, const char *path, size_t pl)
{
	const char *a = strstr(key, "://"), *p, *colon;
	size_t al, kh;

	if (a == NULL)
		return 0;
	if (scl > 0 && ((size_t)(a - key) != scl || strncmp(key, scheme, scl) != 0))
		return 0;
	a += 3;
	p = strchr(a, '/');
	al = p ? (size_t)(p - a) : strlen(a);
	kh = al;
	if (!host_has_port) {
		colon = memrchr(a, ':', al);
		if (colon != NULL && memchr(colon, ']', al - (size_t)(colon - a)) == NULL)
			kh = (size_t)(colon - a);
	}
	if (kh != hl || strncasecmp(a, host, hl) != 0)
		return 0;
	return pl == 0 || (p != NULL && strncmp(p, path, pl) == 0);
}

int rev_cstore_purge_prefix(struct rev_cstore *s, const char *prefix)
{
	const char *scheme = "", *host = prefix, *path, *sl;
	size_t scl = 0, hl, pl;
	int n = 0, has_port;

	if (prefix == NULL || prefix[0] == '\0')
		return 0;
	if (strncasecmp(prefix, "http://", 7) == 0) {
		scheme = "http";
		scl = 4;
		host = prefix + 7;
	} else if (strncasecmp(prefix, "https://", 8) == 0) {
		scheme = "https";
		scl = 5;
		host = prefix + 8;
	}
	sl = strchr(host, '/');
	hl = sl ? (size_t)(sl - host) : strlen(host);
	path = sl ? sl : "";
	pl = strlen(path);
	if (hl == 0)
		return 0;
	has_port = memchr(host, ':', hl) != NULL && host[0] != '[';
	if (host[0] == '[' && memchr(host, ']', hl) != NULL)
		has_port = ((const char *)memchr(host, ']', hl))[1] == ':';
	for (unsigned i = 0; i < s->nshards; i++) {
		struct shard *h = &s->sh[i];
		struct rev_cobj *gone = NULL;
		pthread_mutex_lock(&h->mu);
		for (size_t b = 0; b < h->nb; b++) {
			for (struct rev_cobj *o = h->b[b], *nx; o != NULL; o = nx) {
				nx = o->hnext;
				if (!prefix_match(o->key, scheme, scl, host, hl, has_port, path, pl))
					continue;
				gone = unlink_onto(s, h, o, gone);
				n++;
			}
		}
		pthread_mutex_unlock(&h->mu);
		put_unlinked(gone);
	}
	atomic_fetch_add(&s->purged, (uint64_t)n);
	return n;
}

void rev_cstore_stats(struct rev_cstore *s, struct rev_cstore_stats *out)
{
	memset(out, 0, sizeof *out);
	if (s == NULL)
		return;
	out->objects = atomic_load(&s->objects);
	out->bytes = atomic_load(&s->bytes);
	out->memory = atomic_load(&s->memory);
	out->max_object = atomic_load(&s->max_object);
	out->evictions = atomic_load(&s->evictions);
	out->purged = atomic_load(&s->purged);
	out->stored = atomic_load(&s->stored);
}
