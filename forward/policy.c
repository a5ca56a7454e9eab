/*
 * forward/policy: compiles forward.policy (+ lists, deny_destinations, ...)
 * into immutable data and evaluates it.  See policy.h for the semantics.
 *
 * Layout: everything the compiled policy owns (names, patterns, rule arrays)
 * lives in one private bump arena freed at once, plus the pcre2 codes and
 * the domain sets, which have their own destructors.  Nothing points into the
 * struct conf it was compiled from, so a snapshot's policy can outlive or
 * predecease the conf.
 *
 * Evaluation normalises the host once into a stack buffer (lower-case, no
 * trailing dot, canonical text for IP literals) and then tries the rules in
 * order, cheapest matchers first and regexes last.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "forward/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pcre2.h>

#include "core/addr.h"
#include "core/http1.h"

#include "core/log.h"
#include "forward/domainset.h"
#include "forward/urlset.h"

#define POLICY_MAGIC 0x706f6c69u   /* "poli" */
#define HOST_MAX 253

/* ---- private arena ---- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	alignas(max_align_t) unsigned char data[];
};

struct arena {
	struct chunk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 16384 ? n : 16384;
		struct chunk *c = malloc(sizeof(*c) + cap);
		if (!c)
			abort();   /* compile runs before/outside the loop: fatal is allowed */
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	memset(p, 0, n);
	return p;
}

static char *arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = arena_alloc(a, n);
	memcpy(d, s, n);
	return d;
}

static void arena_free(struct arena *a)
{
	struct chunk *c = a->head;
	while (c) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
}

/* ---- compiled data ---- */

enum dom_kind { DOM_EXACT, DOM_SUB, DOM_APEX_SUB };

struct dom_pat {
	const char *text;      /* as written */
	const char *name;      /* normalised: lower-case, no prefix; canonical IP text */
	size_t len;
	enum dom_kind kind;
};

struct hours_pat {
	const char *text;
	uint8_t days;          /* bit tm_wday (0 = Sunday) */
	uint16_t start, end;   /* minutes since midnight, [start, end) */
};

struct plist {
	const char *name;
	struct fwd_domainset *set;   /* NULL: the list has only urls */
	struct fwd_urlset *urls;     /* NULL: no urls file */
};

struct regex {
	const char *text;
	pcre2_code *code;
};

#define SCHEME_BIT(s) (1u << (s))

struct fwd_rule {
	size_t index;
	const char *name;
	enum conf_action action;
	struct conf_cidrs clients;
	const char **users;
	size_t nusers;
	const char **groups;
	size_t ngroups;
	struct dom_pat *doms;
	size_t ndoms;
	const struct plist **lists;
	size_t nlists;
	struct regex *urls;
	size_t nurls;
	const char **methods;
	size_t nmethods;
	uint16_t *ports;
	size_t nports;
	struct hours_pat *hours;
	size_t nhours;
	unsigned schemes;      /* SCHEME_BIT mask; 0 = any */
};

struct fwd_policy {
	uint32_t magic;
	struct arena arena;
	struct fwd_rule *rules;
	size_t nrules;
	struct plist *lists;
	size_t nlists;
	struct conf_cidrs deny_destinations;
	struct conf_cidrs allow_clients;
	uint16_t *connect_ports;
	size_t nconnect_ports;
	uint16_t *websocket_ports;
	size_t nwebsocket_ports;
	int has_urls;
};

/* ---- helpers ---- */

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/*
 * Normalise a host (or domain pattern body) into out (size HOST_MAX + 1):
 * lower-case, without one trailing dot; IP literals (v6 with or without
 * brackets) canonical (core/addr.h: "::ffff:10.1.2.3" is "10.1.2.3") in
 * inet_ntop form.  Returns the length, or 0 if empty/too long, or 0 with
 * *err set for a literal core/addr refuses ("10.1.2.03", "127.1", "[1::x]").
 * *is_ip is set for IP literals.
 */
static size_t norm_host(const char *h, size_t len, char *out, int *is_ip, const char **err)
{
	struct gw_addr a;

	*is_ip = 0;
	*err = NULL;
	if (len == 0 || len > HOST_MAX + 2)
		return 0;
	if ((*err = gw_addr_parse_host(h, len, &a, is_ip)) != NULL)
		return 0;
	if (*is_ip) {
		gw_addr_canon(&a);
		gw_addr_format(&a, out, HOST_MAX + 1);
		return strlen(out);
	}
	if (h[len - 1] == '.')
		len--;
	if (len == 0 || len > HOST_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		out[i] = lower(h[i]);
	out[len] = '\0';
	return len;
}

static int valid_pattern_name(const char *s, size_t len)
{
	size_t lab = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++lab > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return lab > 0;
}

static const char *parse_domain(struct arena *a, const char *text, struct dom_pat *out)
{
	char buf[HOST_MAX + 1];
	const char *s = text;
	int is_ip;
	out->text = arena_strdup(a, text);
	out->kind = DOM_EXACT;
	if (s[0] == '*' && s[1] == '.') {
		out->kind = DOM_SUB;
		s += 2;
	} else if (s[0] == '.') {
		out->kind = DOM_APEX_SUB;
		s += 1;
	}
	const char *aerr;
	size_t len = norm_host(s, strlen(s), buf, &is_ip, &aerr);
	if (aerr != NULL)
		return aerr;
	if (len == 0)
		return "empty or over-long domain pattern";
	if (is_ip) {
		if (out->kind != DOM_EXACT)
			return "an IP address cannot have a \"*.\" or \".\" prefix";
	} else if (!valid_pattern_name(buf, len)) {
		return "not a domain name (expected \"example.com\", \"*.example.com\" or \".example.com\")";
	}
	out->name = arena_strdup(a, buf);
	out->len = len;
	return NULL;
}

static int dom_match(const struct dom_pat *d, const char *h, size_t hlen)
{
	if (hlen == d->len)
		return d->kind != DOM_SUB && memcmp(h, d->name, hlen) == 0;
	if (hlen > d->len && d->kind != DOM_EXACT)
		return h[hlen - d->len - 1] == '.' && memcmp(h + hlen - d->len, d->name, d->len) == 0;
	return 0;
}

/* ---- URL normalisation ---- */

static int unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ?
	    (c | 0x20) - 'a' + 10 : -1;
}

/* Copy s[0..n) to o with escapes normalised: %XX of an unreserved character
 * decoded, any other %XX kept with upper-case hex.  A '%' not followed by
 * two hex digits: -1, or with lenient "%25" (at most 3 * n bytes written).
 * Returns the length written. */
static long copy_escapes(const char *s, size_t n, char *o, int lenient)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			o[k++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			if (!lenient)
				return -1;
			memcpy(o + k, "%25", 3);
			k += 3;
			continue;
		}
		unsigned char c = (unsigned char)(hi * 16 + lo);
		if (unreserved(c)) {
			o[k++] = (char)c;
		} else {
			o[k++] = '%';
			o[k++] = "0123456789ABCDEF"[hi];
			o[k++] = "0123456789ABCDEF"[lo];
		}
		i += 2;
	}
	return (long)k;
}

/* Is seg[0..n) "." or ".." (also "..;x", which Tomcat and others read as
 * ".."): returns 1 or 2, else 0. */
static int dot_segment(const char *seg, size_t n)
{
	const char *semi = memchr(seg, ';', n);

	if (semi != NULL)
		n = (size_t)(semi - seg);
	if (n == 1 && seg[0] == '.')
		return 1;
	if (n == 2 && seg[0] == '.' && seg[1] == '.')
		return 2;
	return 0;
}

/* Resolve dot-segments of the absolute path p[0..n) (escapes already
 * normalised) into o, and merge empty segments ("//" -> "/"): RFC 3986
 * 5.2.4 plus what servers such as nginx (merge_slashes) do.  Returns the
 * length (at least 1, "/"). */
static size_t resolve_path(const char *p, size_t n, char *o)
{
	size_t k = 0, i = 0;
	int trailing = 1;

	while (i < n) {
		if (p[i] == '/') {
			i++;
			continue;
		}
		size_t st = i;
		while (i < n && p[i] != '/')
			i++;
		int d = dot_segment(p + st, i - st);
		if (d == 2) {
			while (k > 0 && o[k - 1] != '/')
				k--;
			if (k > 0)
				k--;   /* the slash before it */
		}
		if (d != 0) {
			trailing = 1;
			continue;
		}
		o[k++] = '/';
		memcpy(o + k, p + st, i - st);
		k += i - st;
		trailing = i < n;   /* "/a/" keeps its slash */
	}
	if (trailing || k == 0)
		o[k++] = '/';
	return k;
}

const char *fwd_url_normalise(const char *url, size_t len, char *out, size_t cap, size_t *outlen)
{
	const char *host, *err;
	size_t hlen, k, as, ae, ps;
	uint16_t port, defport;
	char hbuf[HOST_MAX + 1];
	int is_ip;
	long m;

	*outlen = 0;
	if (url == NULL || cap < 3 * len + FWD_URL_NORM_EXTRA)
		return "URL too long to normalise";
	for (k = 0; k < len && (isalnum((unsigned char)url[k]) || url[k] == '+' || url[k] == '-' ||
	    url[k] == '.'); k++)
		;
	if (k == 0 || len - k < 3 || memcmp(url + k, "://", 3) != 0)
		return "not an absolute URL";
	if (k == 4 && strncasecmp(url, "http", 4) == 0)
		defport = 80;
	else if (k == 5 && strncasecmp(url, "https", 5) == 0)
		defport = 443;
	else
		return "only http:// and https:// URLs";
	as = k + 3;
	for (ae = as; ae < len && url[ae] != '/' && url[ae] != '?'; ae++)
		;
	if ((err = gw_http1_parse_authority(url + as, ae - as, defport, &host, &hlen, &port)) != NULL)
		return err;
	/* the authority parser took the brackets off an IPv6 literal */
	hlen = norm_host(host, hlen, hbuf, &is_ip, &err);
	if (err != NULL)
		return err;
	if (hlen == 0)
		return "empty or over-long host";
	for (size_t i = 0; i < k; i++)
		out[i] = lower(url[i]);
	memcpy(out + k, "://", 3);
	k += 3;
	int v6 = is_ip && memchr(hbuf, ':', hlen) != NULL;
	if (v6)
		out[k++] = '[';
	memcpy(out + k, hbuf, hlen);
	k += hlen;
	if (v6)
		out[k++] = ']';
	if (port != defport)
		k += (size_t)snprintf(out + k, 8, ":%u", (unsigned)port);
	/* path: escapes first (so "%2e%2e" is ".."), then dot-segments; the
	 * escape-normalised copy goes to the end of out (it is never longer
	 * than the raw path), the resolved path from out + k */
	for (ps = ae; ps < len && url[ps] != '?'; ps++)
		;
	{
		char *tmp = out + cap - (ps - ae);
		if ((m = copy_escapes(url + ae, ps - ae, tmp, 0)) < 0)
			return "invalid percent-escape in the URL path";
		k += resolve_path(tmp, (size_t)m, out + k);
	}
	if (ps < len) {
		out[k++] = '?';
		/* a bare '%' in a query is common (browsers send "?q=100%" as
		 * typed) and routes nothing: kept, as "%25" */
		k += (size_t)copy_escapes(url + ps + 1, len - ps - 1, out + k, 1);
	}
	out[k] = '\0';
	*outlen = k;
	return NULL;
}

/* ---- hours ---- */

static const char *const day_names[7][2] = {
	{ "sun", "sunday" }, { "mon", "monday" }, { "tue", "tuesday" }, { "wed", "wednesday" },
	{ "thu", "thursday" }, { "fri", "friday" }, { "sat", "saturday" },
};

static int parse_day(const char *s, size_t len)
{
	for (int d = 0; d < 7; d++)
		for (int k = 0; k < 2; k++)
			if (strlen(day_names[d][k]) == len && strncasecmp(s, day_names[d][k], len) == 0)
				return d;
	return -1;
}

/* "HH:MM" -> minutes; allow24: accept "24:00".  -1 on error. */
static int parse_hhmm(const char *s, size_t len, int allow24)
{
	size_t i = 0;
	int h = 0, m;
	while (i < len && i < 2 && isdigit((unsigned char)s[i]))
		h = h * 10 + (s[i++] - '0');
	if (i == 0 || i >= len || s[i] != ':' || len - i != 3)
		return -1;
	if (!isdigit((unsigned char)s[i + 1]) || !isdigit((unsigned char)s[i + 2]))
		return -1;
	m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	if (m > 59 || h > 24 || (h == 24 && (!allow24 || m != 0)))
		return -1;
	return h * 60 + m;
}

static const char *parse_days(const char *s, size_t len, uint8_t *days)
{
	*days = 0;
	size_t i = 0;
	while (i <= len) {
		size_t j = i;
		while (j < len && s[j] != ',')
			j++;
		const char *dash = memchr(s + i, '-', j - i);
		int a, b;
		if (dash) {
			a = parse_day(s + i, (size_t)(dash - (s + i)));
			b = parse_day(dash + 1, (size_t)(s + j - dash - 1));
		} else {
			a = b = parse_day(s + i, j - i);
		}
		if (a < 0 || b < 0)
			return "bad day (expected Mon..Sun, a range like Mon-Fri, or a comma list)";
		for (int d = a;; d = (d + 1) % 7) {   /* ranges may wrap: Fri-Mon */
			*days |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		i = j + 1;
	}
	return NULL;
}

static const char *parse_hours(const char *text, struct hours_pat *out)
{
	int have_days = 0, have_time = 0;
	out->days = 0x7f;
	out->start = 0;
	out->end = 24 * 60;
	const char *s = text;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		const char *e = s;
		while (*e && *e != ' ' && *e != '\t')
			e++;
		size_t len = (size_t)(e - s);
		if (isdigit((unsigned char)*s)) {
			if (have_time++)
				return "more than one time range (use several hours strings)";
			const char *dash = memchr(s, '-', len);
			if (!dash)
				return "bad time range (expected HH:MM-HH:MM)";
			int a = parse_hhmm(s, (size_t)(dash - s), 0);
			int b = parse_hhmm(dash + 1, (size_t)(e - dash - 1), 1);
			if (a < 0 || b < 0)
				return "bad time range (expected HH:MM-HH:MM, 00:00..24:00)";
			if (a >= b)
				return "time range ends before it starts (write an overnight window as two strings)";
			out->start = (uint16_t)a;
			out->end = (uint16_t)b;
		} else {
			if (have_days++)
				return "more than one day list (use commas: Mon-Fri,Sun)";
			const char *err = parse_days(s, len, &out->days);
			if (err)
				return err;
		}
		s = e;
	}
	if (!have_days && !have_time)
		return "empty hours (expected e.g. \"Mon-Fri 09:00-17:00\")";
	return NULL;
}

static int hours_match(const struct hours_pat *h, const struct tm *t)
{
	if (t->tm_wday < 0 || t->tm_wday > 6 || t->tm_hour < 0 || t->tm_hour > 23 ||
	    t->tm_min < 0 || t->tm_min > 59)
		return 0;
	int m = t->tm_hour * 60 + t->tm_min;
	return (h->days & (1u << t->tm_wday)) && m >= h->start && m < h->end;
}

/* ---- compile ---- */

static void copy_cidrs(struct arena *a, struct conf_cidrs *dst, const struct conf_cidrs *src)
{
	dst->n = src->n;
	dst->v = NULL;
	if (src->n) {
		dst->v = arena_alloc(a, src->n * sizeof(*src->v));
		memcpy(dst->v, src->v, src->n * sizeof(*src->v));
	}
}

static const char **copy_strs(struct arena *a, const struct conf_strs *src, int upper)
{
	if (!src->n)
		return NULL;
	const char **v = arena_alloc(a, src->n * sizeof(*v));
	for (size_t i = 0; i < src->n; i++) {
		char *d = arena_strdup(a, src->v[i] ? src->v[i] : "");
		if (upper)
			for (char *c = d; *c; c++)
				*c = (char)toupper((unsigned char)*c);
		v[i] = d;
	}
	return v;
}

static const char *src_file(const struct conf_src *s)
{
	return s->file ? s->file : "?";
}

static void compile_rule(struct fwd_policy *p, const struct conf_fwd_rule *cr, size_t idx,
    struct fwd_rule *r, struct conf_errors *errs, size_t *nerr)
{
	struct arena *a = &p->arena;
	const char *file = src_file(&cr->src);
	int line = cr->src.line;
	char namebuf[32];

	r->index = idx;
	if (cr->name && cr->name[0]) {
		r->name = arena_strdup(a, cr->name);
	} else {
		snprintf(namebuf, sizeof(namebuf), "rule %zu", idx + 1);
		r->name = arena_strdup(a, namebuf);
	}
	r->action = cr->action;
	copy_cidrs(a, &r->clients, &cr->clients);
	r->users = copy_strs(a, &cr->users, 0);
	r->nusers = cr->users.n;
	r->groups = copy_strs(a, &cr->groups, 0);
	r->ngroups = cr->groups.n;
	r->methods = copy_strs(a, &cr->methods, 1);
	r->nmethods = cr->methods.n;
	if (cr->nports) {
		r->ports = arena_alloc(a, cr->nports * sizeof(*r->ports));
		memcpy(r->ports, cr->ports, cr->nports * sizeof(*r->ports));
		r->nports = cr->nports;
	}

	if (cr->domains.n) {
		r->doms = arena_alloc(a, cr->domains.n * sizeof(*r->doms));
		for (size_t i = 0; i < cr->domains.n; i++) {
			const char *d = cr->domains.v[i] ? cr->domains.v[i] : "";
			const char *err = parse_domain(a, d, &r->doms[r->ndoms]);
			if (err) {
				conf_err(errs, file, line, "forward.policy.domains", "%s: \"%s\": %s",
				    r->name, d, err);
				(*nerr)++;
			} else {
				r->ndoms++;
			}
		}
	}

	if (cr->lists.n) {
		r->lists = arena_alloc(a, cr->lists.n * sizeof(*r->lists));
		for (size_t i = 0; i < cr->lists.n; i++) {
			const char *ln = cr->lists.v[i] ? cr->lists.v[i] : "";
			const struct plist *found = NULL;
			for (size_t k = 0; k < p->nlists; k++)
				if (strcmp(p->lists[k].name, ln) == 0)
					found = &p->lists[k];
			if (!found) {
				conf_err(errs, file, line, "forward.policy.lists",
				    "%s: unknown list \"%s\" (not in forward.lists)", r->name, ln);
				(*nerr)++;
			} else {
				r->lists[r->nlists++] = found;
			}
		}
	}

	if (cr->urls.n) {
		r->urls = arena_alloc(a, cr->urls.n * sizeof(*r->urls));
		for (size_t i = 0; i < cr->urls.n; i++) {
			const char *rx = cr->urls.v[i] ? cr->urls.v[i] : "";
			int ec;
			PCRE2_SIZE eoff;
			pcre2_code *code = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, 0, &ec,
			    &eoff, NULL);
			if (!code) {
				PCRE2_UCHAR msg[256];
				if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
					snprintf((char *)msg, sizeof(msg), "error %d", ec);
				conf_err(errs, file, line, "forward.policy.urls",
				    "%s: bad regex \"%s\": %s at offset %zu", r->name, rx, (char *)msg,
				    (size_t)eoff);
				(*nerr)++;
				continue;
			}
			/* JIT failure (no JIT on this CPU, or out of executable memory)
			 * leaves the interpreter, which is correct, just slower. */
			(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
			r->urls[r->nurls].text = arena_strdup(a, rx);
			r->urls[r->nurls].code = code;
			r->nurls++;
			p->has_urls = 1;
		}
	}

	if (cr->hours.n) {
		r->hours = arena_alloc(a, cr->hours.n * sizeof(*r->hours));
		for (size_t i = 0; i < cr->hours.n; i++) {
			const char *h = cr->hours.v[i] ? cr->hours.v[i] : "";
			const char *err = parse_hours(h, &r->hours[r->nhours]);
			if (err) {
				conf_err(errs, file, line, "forward.policy.hours", "%s: \"%s\": %s",
				    r->name, h, err);
				(*nerr)++;
			} else {
				r->hours[r->nhours++].text = arena_strdup(a, h);
			}
		}
	}

	for (size_t i = 0; i < cr->schemes.n; i++) {
		const char *s = cr->schemes.v[i] ? cr->schemes.v[i] : "";
		if (strcasecmp(s, "http") == 0) {
			r->schemes |= SCHEME_BIT(FWD_SCHEME_HTTP);
		} else if (strcasecmp(s, "connect") == 0) {
			r->schemes |= SCHEME_BIT(FWD_SCHEME_CONNECT);
		} else {
			conf_err(errs, file, line, "forward.policy.schemes",
			    "%s: unknown scheme \"%s\" (expected \"http\" or \"connect\")", r->name, s);
			(*nerr)++;
		}
	}

	for (size_t i = 0; i < r->nmethods; i++) {
		const char *m = r->methods[i];
		int ok = m[0] != '\0';
		for (const char *c = m; *c && ok; c++)   /* RFC 9110 token */
			ok = isalnum((unsigned char)*c) || strchr("!#$%&'*+-.^_`|~", *c);
		if (!ok) {
			conf_err(errs, file, line, "forward.policy.methods",
			    "%s: \"%s\" is not a method name", r->name, cr->methods.v[i]);
			(*nerr)++;
		}
	}
}

/* Lines of a list that are no entry: logged as "FILE:LINE: ..." (the first
 * few, then a total), at every load and so by -t, which runs the same load. */
static void report_skipped(const struct conf_fwd_list *cl, const struct fwd_domainset *set,
    const struct fwd_urlset *us)
{
	size_t n = fwd_domainset_invalid(set, NULL), k, line;

	for (k = 0; (line = fwd_domainset_invalid_line(set, k)) != 0; k++)
		gw_warn("%s:%zu: list \"%s\": line skipped: not a domain or an IP address%s", cl->file,
		    line, cl->name, cl->urls == NULL ? " (a host/path belongs in a \"urls\" file)" : "");
	if (n > 0)
		gw_warn("forward.lists: %s: %zu line(s) skipped%s", cl->file, n,
		    n > k ? " (the first ones shown)" : "");
	n = fwd_urlset_invalid(us);
	for (k = 0; (line = fwd_urlset_invalid_line(us, k)) != 0; k++)
		gw_warn("%s:%zu: list \"%s\": line skipped: not a host/path URL prefix", cl->urls, line,
		    cl->name);
	if (n > 0)
		gw_warn("forward.lists: %s: %zu line(s) skipped%s", cl->urls, n,
		    n > k ? " (the first ones shown)" : "");
}

struct fwd_policy *fwd_policy_compile(const struct conf *cf, struct conf_errors *errs)
{
	const struct conf_forward *fw = &cf->forward;
	size_t nerr = 0;
	struct fwd_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		conf_err(errs, cf->path ? cf->path : "?", 0, "forward", "out of memory");
		return NULL;
	}
	p->magic = POLICY_MAGIC;
	struct arena *a = &p->arena;

	/* lists: each file loaded once, shared by every rule naming it */
	if (fw->nlists) {
		p->lists = arena_alloc(a, fw->nlists * sizeof(*p->lists));
		for (size_t i = 0; i < fw->nlists; i++) {
			const struct conf_fwd_list *cl = &fw->lists[i];
			const char *file = src_file(&cl->src);
			const char *name = cl->name ? cl->name : "";
			int dup = 0;
			for (size_t k = 0; k < p->nlists; k++)
				dup |= strcmp(p->lists[k].name, name) == 0;
			if (dup || !name[0]) {
				conf_err(errs, file, cl->src.line, "forward.lists.name",
				    dup ? "duplicate list name \"%s\"" : "empty list name%s", name);
				nerr++;
				continue;
			}
			char err[512];
			struct fwd_domainset *set = NULL;
			struct fwd_urlset *us = NULL;
			if (cl->file != NULL && (set = fwd_domainset_load(cl->file, err, sizeof(err))) == NULL) {
				conf_err(errs, file, cl->src.line, "forward.lists.file", "list \"%s\": %s",
				    name, err);
				nerr++;
				continue;
			}
			if (cl->urls != NULL && (us = fwd_urlset_load(cl->urls, err, sizeof(err))) == NULL) {
				conf_err(errs, file, cl->src.line, "forward.lists.urls", "list \"%s\": %s",
				    name, err);
				fwd_domainset_free(set);
				nerr++;
				continue;
			}
			report_skipped(cl, set, us);
			p->lists[p->nlists].name = arena_strdup(a, name);
			p->lists[p->nlists].set = set;
			p->lists[p->nlists].urls = us;
			p->nlists++;
		}
	}

	size_t nrules = fw->policy_present ? fw->npolicy : 1;
	p->rules = arena_alloc(a, nrules * sizeof(*p->rules));
	if (fw->policy_present) {
		for (size_t i = 0; i < fw->npolicy; i++)
			compile_rule(p, &fw->policy[i], i, &p->rules[i], errs, &nerr);
	} else {
		p->rules[0].index = 0;
		p->rules[0].name = "default";
		p->rules[0].action = CONF_ACT_ALLOW;
	}
	p->nrules = nrules;

	copy_cidrs(a, &p->deny_destinations, &fw->deny_destinations);
	copy_cidrs(a, &p->allow_clients, &fw->allow_clients);
	if (fw->nconnect_ports) {
		p->connect_ports = arena_alloc(a, fw->nconnect_ports * sizeof(*p->connect_ports));
		memcpy(p->connect_ports, fw->connect_ports,
		    fw->nconnect_ports * sizeof(*p->connect_ports));
		p->nconnect_ports = fw->nconnect_ports;
	}
	/* websocket_ports absent: where CONNECT may go, and 80 (ws:// itself) */
	{
		size_t n = fw->websocket_ports != NULL ? fw->nwebsocket_ports : fw->nconnect_ports + 1;
		p->websocket_ports = arena_alloc(a, (n ? n : 1) * sizeof(*p->websocket_ports));
		if (fw->websocket_ports != NULL) {
			if (n)
				memcpy(p->websocket_ports, fw->websocket_ports, n * sizeof(*p->websocket_ports));
		} else {
			if (fw->nconnect_ports)
				memcpy(p->websocket_ports, fw->connect_ports,
				    fw->nconnect_ports * sizeof(*p->websocket_ports));
			p->websocket_ports[n - 1] = 80;
		}
		p->nwebsocket_ports = n;
	}

	if (nerr) {
		fwd_policy_free(p);
		return NULL;
	}
	return p;
}

void fwd_policy_free(struct fwd_policy *p)
{
	if (!p)
		return;
	if (p->magic != POLICY_MAGIC)
		abort();
	for (size_t i = 0; i < p->nrules; i++)
		for (size_t k = 0; k < p->rules[i].nurls; k++)
			pcre2_code_free(p->rules[i].urls[k].code);
	for (size_t i = 0; i < p->nlists; i++) {
		fwd_domainset_free(p->lists[i].set);
		fwd_urlset_free(p->lists[i].urls);
	}
	p->magic = 0;
	arena_free(&p->arena);
	free(p);
}

/* ---- evaluate ---- */

static void why_clear(struct fwd_match *why)
{
	memset(why, 0, sizeof(*why));
}

/* Matchers in cost order; fills why's detail fields. */
static int rule_matches(const struct fwd_rule *r, const struct fwd_request *rq, const char *host,
    size_t hostlen, int host_is_ip, struct fwd_match *why)
{
	if (r->schemes && !(r->schemes & SCHEME_BIT(rq->scheme)))
		return 0;
	if (r->nports) {
		size_t i;
		for (i = 0; i < r->nports && r->ports[i] != rq->port; i++)
			;
		if (i == r->nports)
			return 0;
	}
	if (r->nmethods) {
		size_t i;
		if (!rq->method)
			return 0;
		/* case-insensitive on purpose: "post" is another method to RFC 9110,
		 * but many servers treat it as POST; it must not slip past a rule */
		for (i = 0; i < r->nmethods && strcasecmp(r->methods[i], rq->method) != 0; i++)
			;
		if (i == r->nmethods)
			return 0;
	}
	if (r->clients.n && (!rq->client || !conf_cidr_match(&r->clients, rq->client)))
		return 0;
	if (r->nusers) {
		size_t i;
		if (!rq->user)
			return 0;
		for (i = 0; i < r->nusers && strcmp(r->users[i], rq->user) != 0 &&
		    (rq->user_short == NULL || strcmp(r->users[i], rq->user_short) != 0); i++)
			;
		if (i == r->nusers)
			return 0;
	}
	if (r->ngroups) {
		int found = 0;
		for (size_t i = 0; i < r->ngroups && !found; i++)
			for (size_t k = 0; k < rq->ngroups && !found; k++)
				found = rq->groups[k] && strcmp(r->groups[i], rq->groups[k]) == 0;
		if (!found)
			return 0;
	}
	if (r->nhours) {
		const struct hours_pat *hit = NULL;
		if (!rq->local_time)
			return 0;
		for (size_t i = 0; i < r->nhours && !hit; i++)
			if (hours_match(&r->hours[i], rq->local_time))
				hit = &r->hours[i];
		if (!hit)
			return 0;
		why->hours = hit->text;
	}
	if (r->ndoms) {
		const struct dom_pat *hit = NULL;
		if (hostlen == 0)
			return 0;
		for (size_t i = 0; i < r->ndoms && !hit; i++)
			if (dom_match(&r->doms[i], host, hostlen) &&
			    (!host_is_ip || r->doms[i].kind == DOM_EXACT))
				hit = &r->doms[i];
		if (!hit)
			return 0;
		why->domain = hit->text;
	}
	if (r->nlists) {
		const struct plist *hit = NULL;
		const char *entry = NULL;
		if (hostlen == 0)
			return 0;
		for (size_t i = 0; i < r->nlists && !hit; i++)
			if (fwd_domainset_match(r->lists[i]->set, host, hostlen, &entry) ||
			    (r->lists[i]->urls != NULL && rq->url != NULL &&
			    fwd_urlset_match(r->lists[i]->urls, rq->url, rq->url_len ? rq->url_len :
			    strlen(rq->url), &entry)))
				hit = r->lists[i];
		if (!hit)
			return 0;
		why->list = hit->name;
		why->list_entry = entry;
	}
	if (r->nurls) {
		const struct regex *hit = NULL;
		if (rq->scheme == FWD_SCHEME_CONNECT || !rq->url || !rq->md)
			return 0;
		size_t ulen = rq->url_len ? rq->url_len : strlen(rq->url);
		for (size_t i = 0; i < r->nurls && !hit; i++)
			if (pcre2_match(r->urls[i].code, (PCRE2_SPTR)rq->url, ulen, 0, 0,
			    (pcre2_match_data *)rq->md, NULL) >= 0)
				hit = &r->urls[i];
		if (!hit)
			return 0;
		why->url = hit->text;
	}
	return 1;
}

const struct fwd_rule *fwd_policy_eval_from(const struct fwd_policy *p,
    const struct fwd_request *rq, size_t first, struct fwd_match *why)
{
	struct fwd_match scratch;
	char host[HOST_MAX + 1];
	size_t hostlen = 0;
	int is_ip = 0;

	if (!why)
		why = &scratch;
	why_clear(why);
	why->rule_index = SIZE_MAX;
	why->rule_name = "no matching rule";
	why->action = CONF_ACT_DENY;
	if (!p || p->magic != POLICY_MAGIC || !rq)
		return NULL;
	/* An over-long or empty host matches no domains/lists pattern; such a
	 * host cannot be resolved either, and the HTTP layer rejects it. */
	if (rq->host) {
		const char *aerr;
		hostlen = norm_host(rq->host, strlen(rq->host), host, &is_ip, &aerr);
		if (aerr != NULL) {
			/* an address parsers disagree on matches no rule, not even a
			 * catch-all allow (the HTTP parser refuses it before us) */
			why->rule_name = "invalid host address";
			return NULL;
		}
	}

	for (size_t i = first; i < p->nrules; i++) {
		const struct fwd_rule *r = &p->rules[i];
		if (rule_matches(r, rq, host, hostlen, is_ip, why)) {
			why->rule_index = r->index;
			why->rule_name = r->name;
			why->action = r->action;
			return r;
		}
		why->hours = why->domain = why->url = why->list = why->list_entry = NULL;
	}
	return NULL;
}

const struct fwd_rule *fwd_policy_eval(const struct fwd_policy *p, const struct fwd_request *rq,
    struct fwd_match *why)
{
	return fwd_policy_eval_from(p, rq, 0, why);
}

const char *fwd_action_name(enum conf_action a)
{
	switch (a) {
	case CONF_ACT_ALLOW: return "allow";
	case CONF_ACT_DENY: return "deny";
	case CONF_ACT_AUTH: return "auth";
	}
	return "?";
}

int fwd_match_format(const struct fwd_match *w, char *buf, size_t len)
{
	size_t off = 0;
	int n = snprintf(buf, len, "rule \"%s\" (%s)", w->rule_name ? w->rule_name : "?",
	    fwd_action_name(w->action));
	if (n < 0)
		return n;
	off = (size_t)n;
#define APPEND(...) do { \
		int k_ = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, __VA_ARGS__); \
		if (k_ > 0) \
			off += (size_t)k_; \
	} while (0)
	const char *sep = ": ";
	if (w->list) {
		APPEND("%slist %s entry \"%s\"", sep, w->list, w->list_entry ? w->list_entry : "");
		sep = ", ";
	}
	if (w->domain) {
		APPEND("%sdomain \"%s\"", sep, w->domain);
		sep = ", ";
	}
	if (w->url) {
		APPEND("%surl \"%s\"", sep, w->url);
		sep = ", ";
	}
	if (w->hours)
		APPEND("%shours \"%s\"", sep, w->hours);
#undef APPEND
	return (int)off;
}

/* ---- accessors ---- */

size_t fwd_policy_nrules(const struct fwd_policy *p)
{
	return p ? p->nrules : 0;
}

const char *fwd_policy_rule_name(const struct fwd_policy *p, size_t i)
{
	return p && i < p->nrules ? p->rules[i].name : NULL;
}

enum conf_action fwd_policy_rule_action(const struct fwd_policy *p, size_t i)
{
	return p && i < p->nrules ? p->rules[i].action : CONF_ACT_DENY;
}

size_t fwd_rule_index(const struct fwd_rule *r)
{
	return r->index;
}

const char *fwd_rule_name(const struct fwd_rule *r)
{
	return r->name;
}

enum conf_action fwd_rule_action(const struct fwd_rule *r)
{
	return r->action;
}

int fwd_policy_has_urls(const struct fwd_policy *p)
{
	return p ? p->has_urls : 0;
}

const struct fwd_domainset *fwd_policy_list(const struct fwd_policy *p, const char *name)
{
	if (!p || !name)
		return NULL;
	for (size_t i = 0; i < p->nlists; i++)
		if (strcmp(p->lists[i].name, name) == 0)
			return p->lists[i].set;
	return NULL;
}

size_t fwd_policy_nlists(const struct fwd_policy *p)
{
	return p ? p->nlists : 0;
}

const char *fwd_policy_list_name(const struct fwd_policy *p, size_t i)
{
	return p && i < p->nlists ? p->lists[i].name : NULL;
}

int fwd_dest_denied(const struct fwd_policy *p, const struct sockaddr *sa)
{
	struct gw_addr a, v4;

	if (!p || !sa || !p->deny_destinations.n || gw_addr_from_sa(sa, &a) < 0)
		return 0;
	/* as written ("0.0.0.0/8" may be listed) and as the address connect()
	 * reaches: 0.0.0.0 and :: are this host */
	if (conf_cidr_match_addr(&p->deny_destinations, &a))
		return 1;
	gw_addr_reached(&a);
	if (conf_cidr_match_addr(&p->deny_destinations, &a))
		return 1;
	/* NAT64 / 6to4: denied when the IPv4 address inside is */
	if (gw_addr_embedded_v4(&a, &v4)) {
		if (conf_cidr_match_addr(&p->deny_destinations, &v4))
			return 1;
		gw_addr_reached(&v4);
		return conf_cidr_match_addr(&p->deny_destinations, &v4);
	}
	return 0;
}

int fwd_client_allowed(const struct fwd_policy *p, const struct sockaddr *sa)
{
	return p && sa && p->allow_clients.n && conf_cidr_match(&p->allow_clients, sa);
}

static int port_in(const uint16_t *v, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == port)
			return 1;
	return 0;
}

int fwd_connect_port_allowed(const struct fwd_policy *p, uint16_t port)
{
	return p && port_in(p->connect_ports, p->nconnect_ports, port);
}

int fwd_websocket_port_allowed(const struct fwd_policy *p, uint16_t port)
{
	return p && port_in(p->websocket_ports, p->nwebsocket_ports, port);
}

struct fwd_matchdata *fwd_matchdata_new(void)
{
	/* one ovector pair is enough: we only ask "does it match" */
	return (struct fwd_matchdata *)pcre2_match_data_create(1, NULL);
}

void fwd_matchdata_free(struct fwd_matchdata *md)
{
	pcre2_match_data_free((pcre2_match_data *)md);
}

