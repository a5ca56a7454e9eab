/*
 * forward/urlset: squidGuard/UT1 `urls` lists (see urlset.h).
 *
 * Layout: one pool of NUL-terminated "host\0path\0" pairs (lower-case,
 * normalised) and an array of entries sorted by (host, path).  A lookup
 * tries each suffix of the request host (at '.' boundaries) and, for each,
 * each prefix of the request path that ends at a boundary: one binary search
 * per (suffix, prefix), so a host with thousands of paths costs no more than
 * one with a single path.
 */
#include "forward/urlset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "forward/policy.h"
#include "forward/readfile.h"

#define URLSET_MAX_LINE 4096     /* longer lines are skipped as invalid */

struct uent {
	uint32_t host, path;        /* offsets into pool */
	uint32_t hlen, plen;
	uint32_t text;              /* "host/path" as shown in logs */
};

struct fwd_urlset {
	char *pool;
	size_t pool_len, pool_cap;
	struct uent *ents;
	size_t n, cap;
	size_t invalid;
	size_t invalid_lines[FWD_URLSET_NOTES];
};

static int pool_add(struct fwd_urlset *s, const char *p, size_t n, uint32_t *off)
{
	if (s->pool_len + n + 1 > UINT32_MAX)
		return -1;
	if (s->pool_len + n + 1 > s->pool_cap) {
		size_t nc = s->pool_cap ? s->pool_cap * 2 : 4096;
		while (nc < s->pool_len + n + 1)
			nc *= 2;
		char *np = realloc(s->pool, nc);
		if (np == NULL)
			return -1;
		s->pool = np;
		s->pool_cap = nc;
	}
	memcpy(s->pool + s->pool_len, p, n);
	s->pool[s->pool_len + n] = '\0';
	*off = (uint32_t)s->pool_len;
	s->pool_len += n + 1;
	return 0;
}

static void bad_line(struct fwd_urlset *s, size_t line)
{
	if (s->invalid < FWD_URLSET_NOTES)
		s->invalid_lines[s->invalid] = line;
	s->invalid++;
}

/* The host of a normalised URL rest "host[:port]/..." without the port. */
static size_t host_len(const char *h, size_t n)
{
	size_t e = 0;

	if (n > 0 && h[0] == '[') {
		while (e < n && h[e] != ']')
			e++;
		return e < n ? e + 1 : 0;
	}
	while (e < n && h[e] != ':' && h[e] != '/' && h[e] != '?')
		e++;
	return e;
}

/* After "scheme://": where the host starts in a normalised URL, or NULL. */
static const char *after_scheme(const char *u, size_t len, size_t *rest)
{
	const char *p = memchr(u, ':', len < 8 ? len : 8);

	if (p == NULL || (size_t)(p - u) + 3 > len || p[1] != '/' || p[2] != '/')
		return NULL;
	*rest = len - (size_t)(p + 3 - u);
	return p + 3;
}

/* One list line (trimmed, no comment) -> an entry; -1 invalid, -2 no memory. */
static int add_line(struct fwd_urlset *s, const char *l, size_t n)
{
	char in[URLSET_MAX_LINE + 16], out[3 * (URLSET_MAX_LINE + 16) + FWD_URL_NORM_EXTRA];
	size_t ol, rl, hl, k;
	const char *r;

	if (n > 8 && strncasecmp(l, "https://", 8) == 0)
		l += 8, n -= 8;
	else if (n > 7 && strncasecmp(l, "http://", 7) == 0)
		l += 7, n -= 7;
	if (n == 0 || n > URLSET_MAX_LINE || l[0] == '/')
		return -1;
	for (k = 0; k < n; k++)
		if ((unsigned char)l[k] <= 0x20 || l[k] == 0x7f || l[k] == '@')
			return -1;
	memcpy(in, "http://", 7);
	memcpy(in + 7, l, n);
	if (fwd_url_normalise(in, n + 7, out, sizeof out, &ol) != NULL ||
	    (r = after_scheme(out, ol, &rl)) == NULL)
		return -1;
	hl = host_len(r, rl);
	if (hl == 0 || (r[0] != '[' && memchr(r, '.', hl) == NULL))
		return -1;    /* "localhost/x", "garbage": not what a category lists */
	const char *path = r + hl;
	size_t pl = rl - hl;
	if (pl > 0 && *path == ':')
		while (pl > 0 && *path != '/' && *path != '?')
			path++, pl--;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		struct uent *ne = realloc(s->ents, nc * sizeof *ne);
		if (ne == NULL)
			return -2;
		s->ents = ne;
		s->cap = nc;
	}
	for (k = 0; k < pl; k++)
		((char *)path)[k] = (char)((path[k] >= 'A' && path[k] <= 'Z') ? path[k] + 32 : path[k]);
	struct uent *e = &s->ents[s->n];
	char text[sizeof out];
	memcpy(text, r, hl);
	memcpy(text + hl, path, pl);
	if (pool_add(s, r, hl, &e->host) < 0 || pool_add(s, path, pl, &e->path) < 0 ||
	    pool_add(s, text, hl + pl, &e->text) < 0)
		return -2;
	e->hlen = (uint32_t)hl;
	e->plen = (uint32_t)pl;
	s->n++;
	return 0;
}

static const struct fwd_urlset *sort_set;

static int ent_cmp(const void *a, const void *b)
{
	const struct uent *x = a, *y = b;
	int c = strcmp(sort_set->pool + x->host, sort_set->pool + y->host);

	return c ? c : strcmp(sort_set->pool + x->path, sort_set->pool + y->path);
}

struct fwd_urlset *fwd_urlset_from_buffer(const char *buf, size_t len, char *err, size_t errlen)
{
	struct fwd_urlset *s = calloc(1, sizeof *s);
	size_t pos = 0, line = 0;

	if (s == NULL)
		goto oom;
	while (pos < len) {
		const char *ls = buf + pos, *nl = memchr(ls, '\n', len - pos), *le = nl ? nl : buf + len;
		pos = (size_t)(le - buf) + 1;
		line++;
		const char *h = memchr(ls, '#', (size_t)(le - ls));
		if (h != NULL)
			le = h;
		while (ls < le && (*ls == ' ' || *ls == '\t'))
			ls++;
		while (le > ls && (le[-1] == ' ' || le[-1] == '\t' || le[-1] == '\r'))
			le--;
		if (ls == le)
			continue;
		int rc = add_line(s, ls, (size_t)(le - ls));
		if (rc == -2)
			goto oom;
		if (rc < 0)
			bad_line(s, line);
	}
	/* sort, drop duplicates (single-threaded build: the static is fine) */
	sort_set = s;
	if (s->n > 1)
		qsort(s->ents, s->n, sizeof *s->ents, ent_cmp);
	sort_set = NULL;
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++)
		if (w == 0 || strcmp(s->pool + s->ents[i].host, s->pool + s->ents[w - 1].host) != 0 ||
		    strcmp(s->pool + s->ents[i].path, s->pool + s->ents[w - 1].path) != 0)
			s->ents[w++] = s->ents[i];
	s->n = w;
	return s;
oom:
	fwd_urlset_free(s);
	if (err && errlen)
		snprintf(err, errlen, "out of memory");
	return NULL;
}

struct fwd_urlset *fwd_urlset_load(const char *path, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf = fwd_read_file(path, &len, err, errlen);
	struct fwd_urlset *s;

	if (buf == NULL)
		return NULL;
	s = fwd_urlset_from_buffer(buf, len, err, errlen);
	free(buf);
	return s;
}

/* Compare key (host h[0..hl), path p[0..pl), the path case-folded) with e. */
static int key_cmp(const struct fwd_urlset *s, const char *h, size_t hl, const char *p, size_t pl,
    const struct uent *e)
{
	const char *eh = s->pool + e->host, *ep = s->pool + e->path;
	size_t i;

	for (i = 0; i < hl && i < e->hlen; i++)
		if (h[i] != eh[i])
			return (unsigned char)h[i] < (unsigned char)eh[i] ? -1 : 1;
	if (hl != e->hlen)
		return hl < e->hlen ? -1 : 1;
	for (i = 0; i < pl && i < e->plen; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 'A' && c <= 'Z')
			c += 32;
		if (c != (unsigned char)ep[i])
			return c < (unsigned char)ep[i] ? -1 : 1;
	}
	return pl == e->plen ? 0 : pl < e->plen ? -1 : 1;
}

static const struct uent *find(const struct fwd_urlset *s, const char *h, size_t hl, const char *p,
    size_t pl)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(s, h, hl, p, pl, &s->ents[mid]);
		if (c == 0)
			return &s->ents[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The longest entry of host h[0..hl) that is a boundary prefix of p[0..pl). */
static const struct uent *match_host(const struct fwd_urlset *s, const char *h, size_t hl,
    const char *p, size_t pl)
{
	const struct uent *e;

	if ((e = find(s, h, hl, p, pl)) != NULL)
		return e;
	for (size_t b = pl; b-- > 0;) {
		if (p[b] == '/' && (e = find(s, h, hl, p, b + 1)) != NULL)
			return e;            /* "/ads/" under "/ads/x" */
		if ((p[b] == '/' || p[b] == '?') && b > 0 && (e = find(s, h, hl, p, b)) != NULL)
			return e;            /* "/ads" under "/ads/x" and "/ads?x" */
	}
	return NULL;
}

int fwd_urlset_match(const struct fwd_urlset *s, const char *url, size_t len,
    const char **matched_entry)
{
	const char *r, *p;
	size_t rl, hl, pl;
	int is_ip;

	if (s == NULL || url == NULL || s->n == 0 || (r = after_scheme(url, len, &rl)) == NULL)
		return 0;
	hl = host_len(r, rl);
	if (hl == 0)
		return 0;
	p = r + hl;
	pl = rl - hl;
	while (pl > 0 && *p != '/' && *p != '?')
		p++, pl--;   /* the port */
	is_ip = r[0] == '[';
	if (!is_ip) {   /* all digits and dots: an IPv4 literal (within hl, not up to a NUL) */
		size_t k = 0;
		while (k < hl && ((r[k] >= '0' && r[k] <= '9') || r[k] == '.'))
			k++;
		is_ip = k == hl;
	}
	for (size_t off = 0; off < hl;) {
		const struct uent *e = match_host(s, r + off, hl - off, p, pl);
		if (e != NULL) {
			if (matched_entry)
				*matched_entry = s->pool + e->text;
			return 1;
		}
		if (is_ip)
			break;
		const char *dot = memchr(r + off, '.', hl - off);
		if (dot == NULL)
			break;
		off = (size_t)(dot - r) + 1;
	}
	return 0;
}

size_t fwd_urlset_count(const struct fwd_urlset *s) { return s ? s->n : 0; }
size_t fwd_urlset_invalid(const struct fwd_urlset *s) { return s ? s->invalid : 0; }

size_t fwd_urlset_invalid_line(const struct fwd_urlset *s, size_t k)
{
	return s && k < s->invalid && k < FWD_URLSET_NOTES ? s->invalid_lines[k] : 0;
}

void fwd_urlset_free(struct fwd_urlset *s)
{
	if (s == NULL)
		return;
	free(s->pool);
	free(s->ents);
	free(s);
}
