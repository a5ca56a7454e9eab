/*
 * reverse/route: compiles reverse.sites into a host index plus per-site route
 * tables sorted longest-prefix-first, and answers "which site, which route"
 * without allocating.  Exact host names and wildcard suffixes (".example.com"
 * for "*.example.com") are kept in two arrays sorted by (length, bytes) and
 * found by binary search; a wildcard lookup tries each suffix of the host that
 * starts at a dot, left to right, so the first hit is the longest wildcard.
 * Everything the table exposes is copied into its own small arena.
 */
#include "core/http1.h"
#include "reverse/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_MAX 255   /* longest host name we look up (DNS limit 253 + slack) */

/* ---- a tiny private arena: the table owns copies of every string ---- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct rev_routes {
	uint32_t magic;
	struct rev_site *sites;
	size_t nsites;
	struct host_ent *exact;
	size_t nexact;
	struct host_ent *wild;      /* name is the suffix including the leading dot */
	size_t nwild;
	const struct rev_site *def;
	struct chunk *mem;
};

struct host_ent {
	const char *name;
	size_t len;
	const struct rev_site *site;
	const struct conf_src *src;
	size_t host_idx;            /* position in the site's hosts, for messages */
};

static void *ar_alloc(struct rev_routes *rt, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (n == 0)
		n = sizeof(max_align_t);
	struct chunk *c = rt->mem;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 8192 ? n : 8192;
		c = calloc(1, sizeof(*c) + cap);
		if (!c)
			abort();   /* only reached while compiling a config, before serving it */
		c->cap = cap;
		c->next = rt->mem;
		rt->mem = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static char *ar_strndup(struct rev_routes *rt, const char *s, size_t n)
{
	char *p = ar_alloc(rt, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *ar_strdup(struct rev_routes *rt, const char *s)
{
	return s ? ar_strndup(rt, s, strlen(s)) : NULL;
}

/* ---- host normalisation (shared by compile and lookup) ---- */

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/*
 * Copy host (minus port, brackets and one trailing dot) lower-cased into out
 * (at least HOST_MAX bytes).  Returns the length, or -1 if malformed/empty.
 * *had_port is set when a ":port" was present.
 */
static long host_normalize(const char *in, size_t len, char *out, int *had_port)
{
	size_t start = 0, end = len;
	*had_port = 0;
	if (len > 0 && in[0] == '[') {
		const char *rb = memchr(in, ']', len);
		if (!rb)
			return -1;
		start = 1;
		end = (size_t)(rb - in);
		size_t after = end + 1;
		if (after < len) {
			if (in[after] != ':')
				return -1;
			*had_port = 1;
			for (size_t i = after + 1; i < len; i++)
				if (in[i] < '0' || in[i] > '9')
					return -1;
		}
	} else {
		const char *colon = memchr(in, ':', len);
		/* exactly one colon: host:port; more: a bare IPv6 literal */
		if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - in) - 1)) {
			end = (size_t)(colon - in);
			*had_port = 1;
			for (size_t i = end + 1; i < len; i++)
				if (in[i] < '0' || in[i] > '9')
					return -1;
		}
	}
	if (end > start && in[end - 1] == '.')
		end--;
	if (end <= start || end - start > HOST_MAX)
		return -1;
	for (size_t i = start; i < end; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '@' || c == '[' || c == ']')
			return -1;
		out[i - start] = (char)lower(c);
	}
	return (long)(end - start);
}

static int ent_cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

static int ent_cmp(const void *pa, const void *pb)
{
	const struct host_ent *a = pa, *b = pb;
	return ent_cmp_key(a->name, a->len, b->name, b->len);
}

static const struct host_ent *ent_find(const struct host_ent *v, size_t n, const char *key, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ent_cmp_key(key, len, v[mid].name, v[mid].len);
		if (c == 0)
			return &v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- compile ---- */

static int route_cmp(const void *pa, const void *pb)
{
	const struct rev_route *a = pa, *b = pb;
	if (a->prefix_len != b->prefix_len)
		return a->prefix_len > b->prefix_len ? -1 : 1;
	return memcmp(a->prefix, b->prefix, a->prefix_len);
}

static const char *src_file(const struct conf_src *s)
{
	return s->file ? s->file : "?";
}

static void copy_cidrs(struct rev_routes *rt, struct conf_cidrs *dst, const struct conf_cidrs *src)
{
	dst->n = src->n;
	dst->v = NULL;
	if (src->n) {
		dst->v = ar_alloc(rt, src->n * sizeof(*src->v));
		memcpy(dst->v, src->v, src->n * sizeof(*src->v));
	}
}

/* Key paths in messages, as conf.c writes them: "reverse.sites.[0].routes.[1].path". */
#define KPMAX 80                /* "reverse.sites.[N].routes.[N]" */
#define KEYMAX (KPMAX + 32)     /* ... plus ".redirect_status" */

static const char *key(char *buf, const char *prefix, const char *name)
{
	snprintf(buf, KEYMAX, "%s.%s", prefix, name);
	return buf;
}

static int compile_route(struct rev_routes *rt, const struct conf *cf, const struct conf_rev_route *cr,
    const char *kp, struct rev_route *r, struct conf_errors *errs)
{
	const struct conf_reverse *rv = &cf->reverse;
	char k[KEYMAX];
	int ok = 1;
	memset(r, 0, sizeof(*r));
	r->upstream = -1;
	r->src_file = ar_strdup(rt, src_file(&cr->src));
	r->src_line = cr->src.line;
	if (!cr->path || cr->path[0] != '/') {
		conf_err(errs, src_file(&cr->src), cr->src.line, key(k, kp, "path"),
		    "route path must start with '/'");
		ok = 0;
	}
	r->prefix = ar_strdup(rt, cr->path ? cr->path : "");
	r->prefix_len = strlen(r->prefix);
	r->kind = (enum rev_route_kind)cr->kind;
	r->strip_prefix = cr->strip_prefix;
	r->dotfiles = cr->dotfiles;
	r->keep_path = cr->keep_path;
	r->max_body_bytes = cr->max_body_bytes;
	switch (cr->kind) {
	case CONF_ROUTE_UPSTREAM:
		for (size_t i = 0; cr->upstream && i < rv->nupstreams; i++) {
			if (rv->upstreams[i].name && strcmp(rv->upstreams[i].name, cr->upstream) == 0) {
				r->upstream = (int)i;
				break;
			}
		}
		if (r->upstream < 0) {
			conf_err(errs, src_file(&cr->src), cr->src.line, key(k, kp, "upstream"),
			    "unknown upstream \"%s\"", cr->upstream ? cr->upstream : "");
			ok = 0;
		}
		r->upstream_name = ar_strdup(rt, cr->upstream ? cr->upstream : "");
		break;
	case CONF_ROUTE_STATIC:
		if (!cr->static_dir || !cr->static_dir[0]) {
			conf_err(errs, src_file(&cr->src), cr->src.line, key(k, kp, "static"),
			    "empty static directory");
			ok = 0;
		}
		r->static_dir = ar_strdup(rt, cr->static_dir ? cr->static_dir : "");
		break;
	case CONF_ROUTE_REDIRECT:
		r->redirect_status = cr->redirect_status ? cr->redirect_status : 302;
		if (r->redirect_status != 301 && r->redirect_status != 302 && r->redirect_status != 303 &&
		    r->redirect_status != 307 && r->redirect_status != 308) {
			conf_err(errs, src_file(&cr->src), cr->src.line, key(k, kp, "redirect_status"),
			    "must be 301, 302, 303, 307 or 308 (got %d)", r->redirect_status);
			ok = 0;
		}
		if (!cr->redirect || !cr->redirect[0]) {
			conf_err(errs, src_file(&cr->src), cr->src.line, key(k, kp, "redirect"),
			    "empty redirect target");
			ok = 0;
		}
		r->redirect = ar_strdup(rt, cr->redirect ? cr->redirect : "");
		break;
	default:
		conf_err(errs, src_file(&cr->src), cr->src.line, kp, "route has no kind");
		ok = 0;
	}
	if (cr->nset_headers) {
		struct rev_header *h = ar_alloc(rt, cr->nset_headers * sizeof(*h));
		for (size_t i = 0; i < cr->nset_headers; i++) {
			const char *n = cr->set_headers[i].name ? cr->set_headers[i].name : "";
			const char *v = cr->set_headers[i].value ? cr->set_headers[i].value : "";
			h[i].name = ar_strdup(rt, n);
			h[i].name_len = strlen(n);
			h[i].value = ar_strdup(rt, v);
			h[i].value_len = strlen(v);
		}
		r->set_headers = h;
		r->nset_headers = cr->nset_headers;
	}
	return ok;
}

static int compile_site(struct rev_routes *rt, const struct conf *cf, const struct conf_rev_site *cs,
    size_t idx, struct rev_site *s, struct conf_errors *errs)
{
	int ok = 1;
	memset(s, 0, sizeof(*s));
	s->index = idx;
	s->is_default = cs->is_default;
	s->force_https = cs->force_https;
	s->rate_rps = cs->rate_rps;
	s->rate_burst = cs->rate_burst;
	s->src_file = ar_strdup(rt, src_file(&cs->src));
	s->src_line = cs->src.line;
	copy_cidrs(rt, &s->allow_clients, &cs->allow_clients);
	copy_cidrs(rt, &s->deny_clients, &cs->deny_clients);
	if (cs->hosts.n) {
		const char **hosts = ar_alloc(rt, cs->hosts.n * sizeof(*hosts));
		for (size_t i = 0; i < cs->hosts.n; i++) {
			char tmp[HOST_MAX];
			const char *h = cs->hosts.v[i] ? cs->hosts.v[i] : "";
			int had_port = 0;
			long n = host_normalize(h, strlen(h), tmp, &had_port);
			hosts[i] = n > 0 ? ar_strndup(rt, tmp, (size_t)n) : ar_strdup(rt, h);
		}
		s->hosts = hosts;
		s->nhosts = cs->hosts.n;
	}
	s->name = s->nhosts ? s->hosts[0] : "default";
	struct rev_route *routes = NULL;
	if (cs->nroutes) {
		routes = ar_alloc(rt, cs->nroutes * sizeof(*routes));
		for (size_t i = 0; i < cs->nroutes; i++) {
			char kp[KPMAX], k[KEYMAX];
			snprintf(kp, sizeof(kp), "reverse.sites.[%zu].routes.[%zu]", idx, i);
			if (!compile_route(rt, cf, &cs->routes[i], kp, &routes[i], errs))
				ok = 0;
			for (size_t j = 0; j < i; j++) {
				if (strcmp(routes[j].prefix, routes[i].prefix) == 0) {
					conf_err(errs, routes[i].src_file, routes[i].src_line, key(k, kp, "path"),
					    "route \"%s\" is already defined at line %d", routes[i].prefix,
					    routes[j].src_line);
					ok = 0;
					break;
				}
			}
		}
		qsort(routes, cs->nroutes, sizeof(*routes), route_cmp);
	}
	s->routes = routes;
	s->nroutes = cs->nroutes;
	return ok;
}

static void add_ent(struct rev_routes *rt, int wild, const char *name, size_t len, size_t si,
    size_t hi, const struct conf_src *src)
{
	struct host_ent *e = wild ? &rt->wild[rt->nwild++] : &rt->exact[rt->nexact++];
	e->name = ar_strndup(rt, name, len);
	e->len = len;
	e->site = &rt->sites[si];
	e->src = src;
	e->host_idx = hi;
}

/*
 * Sort v and drop duplicates: the same name twice in one site is harmless;
 * in two sites it is an error.
 */
static int dedup(struct host_ent *v, size_t *np, int wild, struct conf_errors *errs)
{
	int ok = 1;
	size_t n = *np, out = 0;
	qsort(v, n, sizeof(*v), ent_cmp);
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && ent_cmp(&v[out - 1], &v[i]) == 0) {
			if (v[out - 1].site != v[i].site) {
				/* report at the later site, naming the earlier one */
				const struct host_ent *a = &v[out - 1], *b = &v[i];
				if (a->site->index > b->site->index) {
					const struct host_ent *t = a;
					a = b;
					b = t;
				}
				char k[KEYMAX];
				snprintf(k, sizeof(k), "reverse.sites.[%zu].hosts.[%zu]", b->site->index,
				    b->host_idx);
				conf_err(errs, src_file(b->src), b->src->line, k,
				    "host \"%s%s\" is already served by reverse.sites.[%zu] (line %d)",
				    wild ? "*" : "", v[i].name, a->site->index, a->src->line);
				ok = 0;
			}
			continue;
		}
		v[out++] = v[i];
	}
	*np = out;
	return ok;
}

/*
 * Add every host of every site to the exact / wildcard arrays.  Patterns:
 * "name" (exact), "*.name" (subdomains at any depth), ".name" (nginx: the name
 * itself and its subdomains).
 */
static int index_hosts(struct rev_routes *rt, const struct conf *cf, size_t nh, struct conf_errors *errs)
{
	int ok = 1;
	rt->exact = ar_alloc(rt, (nh ? nh : 1) * sizeof(*rt->exact));
	rt->wild = ar_alloc(rt, (nh ? nh : 1) * sizeof(*rt->wild));
	for (size_t si = 0; si < rt->nsites; si++) {
		const struct conf_rev_site *cs = &cf->reverse.sites[si];
		for (size_t i = 0; i < cs->hosts.n; i++) {
			const char *h = cs->hosts.v[i] ? cs->hosts.v[i] : "";
			char tmp[HOST_MAX];
			int had_port = 0, wild = 0;
			size_t hl = strlen(h);
			if (hl >= 2 && h[0] == '*' && h[1] == '.') {
				wild = 1;
				h += 1;       /* keep the dot: the stored suffix is ".example.com" */
				hl -= 1;
			} else if (hl >= 2 && h[0] == '.') {
				wild = 2;     /* ".example.com": suffix and exact */
			}
			long n = host_normalize(h, hl, tmp, &had_port);
			if (n <= 0 || had_port || memchr(tmp, '*', (size_t)n) || (wild && n < 2) ||
			    (wild && tmp[1] == '.') || (!wild && tmp[0] == '.')) {
				char k[KEYMAX];
				snprintf(k, sizeof(k), "reverse.sites.[%zu].hosts.[%zu]", si, i);
				conf_err(errs, src_file(&cs->src), cs->src.line, k,
				    "invalid host \"%s\" (want a name, an address, \"*.domain\" or "
				    "\".domain\"; no port)",
				    cs->hosts.v[i] ? cs->hosts.v[i] : "");
				ok = 0;
				continue;
			}
			add_ent(rt, wild != 0, tmp, (size_t)n, si, i, &cs->src);
			if (wild == 2)
				add_ent(rt, 0, tmp + 1, (size_t)n - 1, si, i, &cs->src);
		}
	}
	if (!dedup(rt->exact, &rt->nexact, 0, errs))
		ok = 0;
	if (!dedup(rt->wild, &rt->nwild, 1, errs))
		ok = 0;
	return ok;
}

struct rev_routes *rev_routes_compile(const struct conf *cf, struct conf_errors *errs)
{
	struct rev_routes *rt = calloc(1, sizeof(*rt));
	if (!rt)
		abort();
	rt->magic = REV_ROUTES_MAGIC;
	int ok = 1;
	const struct conf_reverse *rv = &cf->reverse;
	size_t nsites = rv->present ? rv->nsites : 0;
	size_t nh = 0;
	if (nsites) {
		rt->sites = ar_alloc(rt, nsites * sizeof(*rt->sites));
		rt->nsites = nsites;
		for (size_t i = 0; i < nsites; i++) {
			const struct conf_rev_site *cs = &rv->sites[i];
			if (!compile_site(rt, cf, cs, i, &rt->sites[i], errs))
				ok = 0;
			nh += 2 * cs->hosts.n;   /* ".name" makes two entries */
			if (cs->is_default) {
				if (rt->def) {
					char k[KEYMAX];
					snprintf(k, sizeof(k), "reverse.sites.[%zu].default", i);
					conf_err(errs, src_file(&cs->src), cs->src.line, k,
					    "only one site may be the default (reverse.sites.[%zu] is, line %d)",
					    rt->def->index, rt->def->src_line);
					ok = 0;
				} else {
					rt->def = &rt->sites[i];
				}
			} else if (cs->hosts.n == 0) {
				char k[KEYMAX];
				snprintf(k, sizeof(k), "reverse.sites.[%zu]", i);
				conf_err(errs, src_file(&cs->src), cs->src.line, k,
				    "needs hosts, or default = true");
				ok = 0;
			}
		}
	}
	if (!index_hosts(rt, cf, nh, errs))
		ok = 0;
	if (!ok) {
		rev_routes_free(rt);
		return NULL;
	}
	return rt;
}

void rev_routes_free(struct rev_routes *rt)
{
	if (!rt)
		return;
	if (rt->magic != REV_ROUTES_MAGIC)
		abort();
	rt->magic = 0;
	struct chunk *c = rt->mem;
	while (c) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	free(rt);
}

size_t rev_routes_nsites(const struct rev_routes *rt)
{
	return rt ? rt->nsites : 0;
}

const struct rev_site *rev_routes_site(const struct rev_routes *rt, size_t i)
{
	return rt && i < rt->nsites ? &rt->sites[i] : NULL;
}

/* ---- lookup ---- */

const struct rev_site *rev_site_find_configured(const struct rev_routes *rt, const char *host,
    size_t len)
{
	if (!rt || rt->magic != REV_ROUTES_MAGIC || !host)
		return NULL;
	char key[HOST_MAX];
	int had_port;
	long n = host_normalize(host, len, key, &had_port);
	if (n <= 0)
		return NULL;
	const struct host_ent *e = ent_find(rt->exact, rt->nexact, key, (size_t)n);
	if (e)
		return e->site;
	/* suffixes starting at each dot, longest first; the host must keep a label before it */
	for (long i = 1; i < n; i++) {
		if (key[i] != '.')
			continue;
		e = ent_find(rt->wild, rt->nwild, key + i, (size_t)(n - i));
		if (e)
			return e->site;
	}
	return NULL;
}

const struct rev_site *rev_site_find(const struct rev_routes *rt, const char *host, size_t len)
{
	if (!rt || rt->magic != REV_ROUTES_MAGIC)
		return NULL;
	const struct rev_site *s = rev_site_find_configured(rt, host, len);
	return s ? s : rt->def;
}

static size_t path_part_len(const char *target, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (target[i] == '?' || target[i] == '#')
			return i;
	return len;
}

const struct rev_route *rev_route_find(const struct rev_site *site, const char *target, size_t len)
{
	if (!site || !target)
		return NULL;
	size_t plen = path_part_len(target, len);
	/* routes are sorted longest first: the first hit is the longest prefix */
	for (size_t i = 0; i < site->nroutes; i++) {
		const struct rev_route *r = &site->routes[i];
		if (r->prefix_len <= plen && memcmp(r->prefix, target, r->prefix_len) == 0)
			return r;
	}
	return NULL;
}

long rev_route_upstream_path(const struct rev_route *r, const char *target, size_t len,
    char *buf, size_t bufsz)
{
	if (!r || !target || !buf)
		return -1;
	size_t plen = path_part_len(target, len);
	if (r->prefix_len > plen || memcmp(r->prefix, target, r->prefix_len) != 0)
		return -1;
	const char *rest = target;
	size_t restlen = len;
	int slash = 0;
	if (r->strip_prefix) {
		rest = target + r->prefix_len;
		restlen = len - r->prefix_len;
		slash = (restlen == 0 || rest[0] != '/');
	}
	size_t need = (size_t)slash + restlen;
	if (need + 1 > bufsz)
		return -1;
	if (slash)
		buf[0] = '/';
	memcpy(buf + slash, rest, restlen);
	buf[need] = '\0';
	return (long)need;
}

/* ---- path normalisation ---- */

static int unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexeq(char a, char b)
{
	return gw_hexval(a) >= 0 && gw_hexval(a) == gw_hexval(b);
}

/*
 * Walk the path parts of raw and its normalised form in step, each raw octet
 * or escape against what rev_path_normalize() made of it.  Returns 0 when
 * normalising only decoded unreserved escapes or changed hex case; then
 * *cut (when mark <= the normalised path length) is the raw offset that
 * corresponds to normalised offset mark.  -1 otherwise (dot-segments, "//",
 * or mark inside a kept escape).
 */
static int raw_walk(const char *raw, size_t rl, const char *norm, size_t nl, size_t mark, size_t *cut)
{
	size_t i = 0, o = 0;

	*cut = (size_t)-1;
	while (i < rl && o < nl) {
		if (o == mark)
			*cut = i;
		if (raw[i] == '%' && i + 2 < rl && gw_hexval(raw[i + 1]) >= 0 && gw_hexval(raw[i + 2]) >= 0) {
			int v = gw_hexval(raw[i + 1]) * 16 + gw_hexval(raw[i + 2]);
			if (unreserved(v)) {
				if (norm[o] != (char)v)
					return -1;
				o++;
			} else {
				if (o + 3 > nl || norm[o] != '%' || !hexeq(raw[i + 1], norm[o + 1]) ||
				    !hexeq(raw[i + 2], norm[o + 2]))
					return -1;
				if (mark > o && mark < o + 3)
					return -1;
				o += 3;
			}
			i += 3;
			continue;
		}
		if (raw[i] != norm[o])
			return -1;
		i++;
		o++;
	}
	if (i != rl || o != nl)
		return -1;
	if (o == mark)
		*cut = i;
	return *cut == (size_t)-1 && mark <= nl ? -1 : 0;
}

long rev_route_upstream_path_raw(const struct rev_route *r, const char *raw, size_t raw_len,
    const char *norm, size_t nlen, char *buf, size_t bufsz, int *raw_used)
{
	size_t rl, nl = path_part_len(norm, nlen), cut = 0, restlen, need;
	const char *hash, *rest;
	int slash = 0;

	*raw_used = 0;
	if (!r || !raw || !norm || !buf)
		return -1;
	hash = memchr(raw, '#', raw_len);
	if (hash)
		raw_len = (size_t)(hash - raw);
	rl = path_part_len(raw, raw_len);
	if (raw_walk(raw, rl, norm, nl, r->strip_prefix ? r->prefix_len : 0, &cut) != 0 ||
	    r->prefix_len > nl || memcmp(r->prefix, norm, r->prefix_len) != 0)
		return rev_route_upstream_path(r, norm, nlen, buf, bufsz);
	rest = raw;
	restlen = raw_len;
	if (r->strip_prefix) {
		rest = raw + cut;
		restlen = raw_len - cut;
		slash = (restlen == 0 || rest[0] != '/');
	}
	need = (size_t)slash + restlen;
	if (need + 1 > bufsz)
		return rev_route_upstream_path(r, norm, nlen, buf, bufsz);
	if (slash)
		buf[0] = '/';
	memcpy(buf + slash, rest, restlen);
	buf[need] = '\0';
	*raw_used = 1;
	return (long)need;
}

long rev_path_normalize(const char *target, size_t len, char *buf, size_t bufsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0, o = 0, qs;

	if (len == 0 || target[0] != '/' || bufsz < 2)
		return bufsz < 2 ? -2 : -1;
	for (qs = 0; qs < len && target[qs] != '?' && target[qs] != '#'; qs++)
		;
	/* segment by segment: o is the output length, always ending after a '/' */
	buf[o++] = '/';
	i = 1;
	while (i <= qs) {
		/* decode one segment into buf at o (after the last '/') */
		size_t seg = o;
		while (i < qs && target[i] != '/') {
			char c = target[i];
			if (c == '\0')
				return -1;
			if (c == '%') {
				int h1, h2, v;
				if (i + 2 >= qs)
					return -1;
				h1 = gw_hexval(target[i + 1]);
				h2 = gw_hexval(target[i + 2]);
				if (h1 < 0 || h2 < 0)
					return -1;
				v = h1 * 16 + h2;
				if (unreserved(v)) {
					if (o + 1 >= bufsz)
						return -2;
					buf[o++] = (char)v;
				} else {
					if (o + 3 >= bufsz)
						return -2;
					buf[o++] = '%';
					buf[o++] = hex[h1];
					buf[o++] = hex[h2];
				}
				i += 3;
				continue;
			}
			if (o + 1 >= bufsz)
				return -2;
			buf[o++] = c;
			i++;
		}
		/* target[i] is '/' or i == qs: the segment buf[seg..o) is complete */
		if (o - seg == 1 && buf[seg] == '.') {
			o = seg;                      /* "." : drop */
		} else if (o - seg == 2 && buf[seg] == '.' && buf[seg + 1] == '.') {
			if (seg == 1)
				return -1;                /* above the root */
			o = seg - 1;                  /* back over the '/' before the segment */
			while (o > 0 && buf[o - 1] != '/')
				o--;
		} else if (o == seg) {
			/* empty segment ("//"): merged */
		} else if (i < qs) {
			if (o + 1 >= bufsz)
				return -2;
			buf[o++] = '/';
		} else {
			break;                        /* the last segment, no trailing '/' */
		}
		if (i >= qs)
			break;
		i++;                                  /* past the '/' */
	}
	/* the query, unchanged; a fragment is dropped */
	if (qs < len && target[qs] == '?') {
		const char *f = memchr(target + qs, '#', len - qs);
		size_t ql = f ? (size_t)(f - (target + qs)) : len - qs;
		if (o + ql >= bufsz)
			return -2;
		memcpy(buf + o, target + qs, ql);
		o += ql;
	}
	buf[o] = '\0';
	return (long)o;
}
