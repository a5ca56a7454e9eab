/* Unit tests for reverse/cache: Cache-Control parsing, freshness lifetime,
 * age (RFC 9111 4.2.3), storability per directive, keys, ETag matching,
 * Vary variants, LRU eviction at the memory bound, oversize refusal,
 * 304 refresh, purge, and references surviving eviction. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "conf/conf.h"
#include "reverse/cache.h"
#include "reverse/static.h"

#define T0 1700000000.0   /* a fixed "now" */

/* A head from "Name: value" lines (at most 16). */
struct head {
	struct gw_http_head h;
	struct gw_hdr x[16];
};

static void mkhead(struct head *hd, enum gw_method m, int status, const char *const *lines)
{
	memset(hd, 0, sizeof *hd);
	hd->h.method = m;
	hd->h.status = status;
	hd->h.hdrs = hd->x;
	hd->h.hdrs_cap = 16;
	for (size_t i = 0; lines != NULL && lines[i] != NULL && i < 16; i++) {
		const char *c = strchr(lines[i], ':');
		struct gw_hdr *x = &hd->x[hd->h.nhdrs++];
		x->name = lines[i];
		x->name_len = (uint32_t)(c - lines[i]);
		x->value = c + 2;
		x->value_len = (uint32_t)strlen(c + 2);
	}
	hd->h.body = GW_BODY_LENGTH;
}

static const char *date_at(double t, char *buf)
{
	rev_http_date((time_t)t, buf);
	return buf;
}

/* ---- Cache-Control ---- */

static void test_cc(void)
{
	static const struct {
		const char *v;
		int req;
		unsigned flags;
		int64_t max_age, s_maxage, max_stale, swr, sie;
	} t[] = {
		{ "max-age=60", 0, 0, 60, -1, -1, -1, -1 },
		{ "public, max-age=60, s-maxage=120", 0, REV_CC_PUBLIC, 60, 120, -1, -1, -1 },
		{ "no-store", 0, REV_CC_NO_STORE, -1, -1, -1, -1, -1 },
		{ "No-Cache, MUST-REVALIDATE", 0, REV_CC_NO_CACHE | REV_CC_MUST_REVALIDATE, -1, -1, -1, -1, -1 },
		{ "private=\"x-a, x-b\", max-age=5", 0, REV_CC_PRIVATE, 5, -1, -1, -1, -1 },
		{ "no-cache=\"set-cookie\"", 0, REV_CC_NO_CACHE, -1, -1, -1, -1, -1 },
		{ "proxy-revalidate", 0, REV_CC_PROXY_REVALIDATE, -1, -1, -1, -1, -1 },
		{ "max-age=abc", 0, 0, 0, -1, -1, -1, -1 },            /* invalid: stale */
		{ "max-age=\"30\"", 0, 0, 30, -1, -1, -1, -1 },
		{ "max-age=99999999999", 0, 0, 2147483648LL, -1, -1, -1, -1 },
		{ "max-age=10, max-age=20", 0, 0, 10, -1, -1, -1, -1 }, /* conflicting: least */
		{ "stale-while-revalidate=30, stale-if-error=300", 0, 0, -1, -1, -1, 30, 300 },
		{ "max-stale", 1, 0, -1, -1, 2147483648LL, -1, -1 },
		{ "max-stale=10, only-if-cached", 1, REV_CC_ONLY_IF_CACHED, -1, -1, 10, -1, -1 },
		{ "max-age=0", 1, 0, 0, -1, -1, -1, -1 },
		{ "  ,, foo=bar , no-transform", 0, REV_CC_NO_TRANSFORM, -1, -1, -1, -1, -1 },
	};
	char line[256];

	BEGIN_CASE("cache-control parsing");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct head hd;
		const char *l[] = { line, NULL };
		struct rev_cc cc;
		snprintf(line, sizeof line, "Cache-Control: %s", t[i].v);
		mkhead(&hd, GW_M_GET, 200, l);
		rev_cc_parse(&hd.h, t[i].req, &cc);
		CHECK(cc.flags == t[i].flags, "%s: flags %#x", t[i].v, cc.flags);
		CHECK(cc.max_age == t[i].max_age, "%s: max-age %lld", t[i].v, (long long)cc.max_age);
		CHECK(cc.s_maxage == t[i].s_maxage, "%s: s-maxage", t[i].v);
		CHECK(cc.max_stale == t[i].max_stale, "%s: max-stale %lld", t[i].v, (long long)cc.max_stale);
		CHECK(cc.stale_while_revalidate == t[i].swr, "%s: swr", t[i].v);
		CHECK(cc.stale_if_error == t[i].sie, "%s: sie", t[i].v);
	}
	{
		struct head hd;
		const char *l[] = { "Cache-Control: max-age=5", "Cache-Control: no-cache", NULL };
		const char *p[] = { "Pragma: no-cache", NULL };
		struct rev_cc cc;
		mkhead(&hd, GW_M_GET, 200, l);
		rev_cc_parse(&hd.h, 0, &cc);
		CHECK(cc.max_age == 5 && (cc.flags & REV_CC_NO_CACHE), "two fields are one list");
		mkhead(&hd, GW_M_GET, 0, p);
		rev_cc_parse(&hd.h, 1, &cc);
		CHECK(cc.flags & REV_CC_NO_CACHE, "request Pragma: no-cache");
	}
	END_CASE();
}

/* ---- freshness lifetime ---- */

static void test_lifetime(void)
{
	char d0[32], dm1[32], dm1000[32], dp100[32], dbad[64] = "Expires: not a date";
	char date[64], exp[64], lm[64], lmold[64];
	struct {
		int status;
		const char *h[4];
		double ttl;
		double want;
	} t[] = {
		{ 200, { "Cache-Control: max-age=60" }, 0, 60 },
		{ 200, { "Cache-Control: max-age=60, s-maxage=5" }, 0, 5 },      /* s-maxage wins */
		{ 200, { date, exp }, 0, 100 },                                    /* Expires - Date */
		{ 200, { "Cache-Control: max-age=7", exp }, 0, 7 },              /* max-age beats Expires */
		{ 200, { date, dbad }, 0, 0 },                                     /* invalid Expires: expired */
		{ 200, { date, lm }, 0, 100 },                                     /* 10% of 1000 s */
		{ 200, { date, lmold }, 0, REV_CACHE_HEURISTIC_MAX },              /* capped */
		{ 200, { date, lm }, 30, 30 },                                     /* the route's ttl first */
		{ 404, { date, lm }, 0, 100 },                                     /* 404 heuristic too */
		{ 302, { date, lm }, 0, 0 },                                       /* 302: no heuristics */
		{ 302, { date, lm, "Cache-Control: public" }, 0, 100 },          /* unless public */
		{ 302, { "Cache-Control: max-age=9" }, 0, 9 },
		{ 200, { date }, 0, 0 },                                           /* nothing to go on */
		{ 500, { date, lm }, 40, 0 },                                      /* ttl only for default-cacheable */
	};

	snprintf(date, sizeof date, "Date: %s", date_at(T0, d0));
	snprintf(exp, sizeof exp, "Expires: %s", date_at(T0 + 100, dp100));
	snprintf(lm, sizeof lm, "Last-Modified: %s", date_at(T0 - 1000, dm1000));
	snprintf(lmold, sizeof lmold, "Last-Modified: %s", date_at(T0 - 1e8, dm1));
	BEGIN_CASE("freshness lifetime");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct head hd;
		const char *l[5] = { t[i].h[0], t[i].h[1], t[i].h[2], t[i].h[3], NULL };
		struct rev_resp_info ri;
		double got;
		mkhead(&hd, GW_M_GET, t[i].status, l);
		rev_resp_info(&hd.h, &ri);
		got = rev_cache_lifetime(&ri, T0, t[i].ttl);
		CHECK(got > t[i].want - 0.5 && got < t[i].want + 0.5, "row %zu: lifetime %g, want %g",
		    i, got, t[i].want);
	}
	END_CASE();
}

/* ---- age ---- */

static void test_age(void)
{
	static const struct {
		double age_value, date, req, resp, want;
	} t[] = {
		{ 0, T0, T0, T0, 0 },                  /* fresh from the origin */
		{ 0, T0 - 10, T0, T0, 10 },            /* apparent age from Date */
		{ 30, T0, T0, T0, 30 },                /* Age from an upstream cache */
		{ 30, T0 - 50, T0 - 2, T0, 50 },       /* max(apparent 50, 30 + delay 2) */
		{ 5, T0, T0 - 3, T0, 8 },              /* corrected age: Age + response delay */
		{ 0, T0 + 100, T0, T0, 0 },            /* origin clock ahead: no negative age */
		{ 0, -1, T0 - 1, T0, 1 },              /* no Date: the delay only */
	};

	BEGIN_CASE("initial age (RFC 9111 4.2.3)");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		double got = rev_cache_initial_age(t[i].age_value, t[i].date, t[i].req, t[i].resp);
		CHECK(got > t[i].want - 0.001 && got < t[i].want + 0.001, "row %zu: %g want %g", i, got,
		    t[i].want);
	}
	END_CASE();
}

/* ---- storability ---- */

static void test_storable(void)
{
	static const struct {
		enum gw_method m;
		const char *req[3];
		int status;
		const char *resp[4];
		enum rev_nostore want;
	} t[] = {
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: max-age=60" }, REV_STORE_OK },
		{ GW_M_POST, { NULL }, 200, { "Cache-Control: max-age=60" }, REV_NOSTORE_METHOD },
		{ GW_M_HEAD, { NULL }, 200, { "Cache-Control: max-age=60" }, REV_NOSTORE_METHOD },
		{ GW_M_GET, { "Cache-Control: no-store" }, 200, { "Cache-Control: max-age=60" }, REV_NOSTORE_REQ_NO_STORE },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: no-store, max-age=60" }, REV_NOSTORE_NO_STORE },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: private, max-age=60" }, REV_NOSTORE_PRIVATE },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: max-age=60", "Set-Cookie: a=b" }, REV_NOSTORE_COOKIE },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: max-age=60", "Vary: *" }, REV_NOSTORE_VARY_STAR },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: max-age=60", "Vary: Accept, *" }, REV_NOSTORE_VARY_STAR },
		{ GW_M_GET, { "Authorization: Basic eA==" }, 200, { "Cache-Control: max-age=60" }, REV_NOSTORE_AUTH },
		{ GW_M_GET, { "Authorization: Basic eA==" }, 200, { "Cache-Control: public, max-age=60" }, REV_STORE_OK },
		{ GW_M_GET, { "Authorization: Basic eA==" }, 200, { "Cache-Control: s-maxage=60" }, REV_STORE_OK },
		{ GW_M_GET, { "Authorization: Basic eA==" }, 200, { "Cache-Control: must-revalidate, max-age=9" }, REV_STORE_OK },
		{ GW_M_GET, { NULL }, 206, { "Cache-Control: max-age=60" }, REV_NOSTORE_STATUS },
		{ GW_M_GET, { NULL }, 304, { "Cache-Control: max-age=60" }, REV_NOSTORE_STATUS },
		{ GW_M_GET, { NULL }, 302, { "ETag: \"a\"" }, REV_NOSTORE_STATUS },     /* not by default */
		{ GW_M_GET, { NULL }, 302, { "Cache-Control: max-age=60" }, REV_STORE_OK },
		{ GW_M_GET, { NULL }, 404, { "ETag: \"a\"" }, REV_STORE_OK },           /* by default + validator */
		{ GW_M_GET, { NULL }, 200, { "Content-Type: text/plain" }, REV_NOSTORE_NO_FRESHNESS },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: no-cache", "ETag: \"v1\"" }, REV_STORE_OK },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: no-cache" }, REV_NOSTORE_NO_FRESHNESS },
		{ GW_M_GET, { NULL }, 200, { "Cache-Control: max-age=0", "ETag: \"v1\"" }, REV_STORE_OK },
		/* web cache deception: a cookie request's answer only when public */
		{ GW_M_GET, { "Cookie: sid=a" }, 200, { "Cache-Control: max-age=60" }, REV_NOSTORE_REQ_COOKIE },
		{ GW_M_GET, { "Cookie: sid=a" }, 200, { "Cache-Control: public, max-age=60" }, REV_STORE_OK },
		{ GW_M_GET, { "Cookie: sid=a" }, 200, { "Cache-Control: s-maxage=60" }, REV_NOSTORE_REQ_COOKIE },
		{ GW_M_GET, { "Cookie: sid=a" }, 200, { "Cache-Control: private, max-age=60" }, REV_NOSTORE_PRIVATE },
		{ GW_M_GET, { "Cookie: sid=a" }, 200, { "Content-Type: text/plain" }, REV_NOSTORE_NO_FRESHNESS },
	};

	BEGIN_CASE("storability per directive");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct head rq, rs;
		const char *lq[4] = { t[i].req[0], t[i].req[1], t[i].req[2], NULL };
		const char *ls[5] = { t[i].resp[0], t[i].resp[1], t[i].resp[2], t[i].resp[3], NULL };
		struct rev_resp_info ri;
		struct rev_cc qcc;
		enum rev_nostore got;
		mkhead(&rq, t[i].m, 0, lq);
		mkhead(&rs, GW_M_GET, t[i].status, ls);
		rev_cc_parse(&rq.h, 1, &qcc);
		rev_resp_info(&rs.h, &ri);
		got = rev_cache_storable(&rq.h, &qcc, &ri, rev_cache_lifetime(&ri, T0, 0));
		CHECK(got == t[i].want, "row %zu: %s, want %s", i, rev_nostore_names[got],
		    rev_nostore_names[t[i].want]);
	}
	END_CASE();
}

/* ---- keys and validators ---- */

static void test_keys(void)
{
	static const struct {
		int https;
		const char *host, *path, *want;
	} t[] = {
		{ 0, "WWW.Example.COM", "/a?b=1", "http://www.example.com/a?b=1" },
		{ 0, "example.com:80", "/", "http://example.com/" },
		{ 0, "example.com:8080", "/", "http://example.com:8080/" },
		{ 1, "example.com:443", "/x", "https://example.com/x" },
		{ 1, "example.com:80", "/x", "https://example.com:80/x" },
		{ 0, "[::1]:80", "/", "http://[::1]/" },
		{ 0, "[::1]", "/", "http://[::1]/" },
		{ 0, "example.com:", "/", "http://example.com/" },
	};
	static const struct {
		const char *url, *want;
	} u[] = {
		{ "http://Example.com/a/b?c", "http://example.com/a/b?c" },
		{ "https://example.com:443", "https://example.com/" },
		{ "http://example.com?q=1", "http://example.com/?q=1" },
		{ "ftp://example.com/", NULL },
		{ "http:///x", NULL },
		{ "http://u@example.com/", NULL },
	};
	static const struct {
		const char *inm, *etag;
		int want;
	} e[] = {
		{ "\"a\"", "\"a\"", 1 },
		{ "W/\"a\"", "\"a\"", 1 },
		{ "\"a\"", "W/\"a\"", 1 },
		{ "\"b\", \"a\"", "\"a\"", 1 },
		{ "*", "\"z\"", 1 },
		{ "\"b\"", "\"a\"", 0 },
		{ "\"ab\"", "\"a\"", 0 },
		{ "", "\"a\"", 0 },
	};
	char buf[256];

	BEGIN_CASE("keys, URLs and ETag matching");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t n = rev_cache_key(buf, sizeof buf, t[i].https, t[i].host, strlen(t[i].host),
		    t[i].path, strlen(t[i].path));
		CHECK(n > 0 && strcmp(buf, t[i].want) == 0, "key %zu: %s", i, n ? buf : "(none)");
	}
	CHECK(rev_cache_key(buf, 10, 0, "example.com", 11, "/", 1) == 0, "too long");
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		size_t n = rev_cache_key_from_url(buf, sizeof buf, u[i].url);
		if (u[i].want == NULL)
			CHECK(n == 0, "url %s refused", u[i].url);
		else
			CHECK(n > 0 && strcmp(buf, u[i].want) == 0, "url %s: %s", u[i].url, n ? buf : "-");
	}
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
		CHECK(rev_cache_etag_match(e[i].inm, strlen(e[i].inm), e[i].etag, strlen(e[i].etag)) ==
		    e[i].want, "etag %zu", i);
	END_CASE();
}

/* ---- the store ---- */

/* Store body under key for a request with lines lq and response lines ls. */
static int put(struct rev_cstore *s, const char *key, const char *const *lq, const char *const *ls,
    const char *body, double now)
{
	struct head rq, rs;
	struct rev_resp_info ri;
	struct rev_cfill *f;

	mkhead(&rq, GW_M_GET, 0, lq);
	mkhead(&rs, GW_M_GET, 200, ls);
	rev_resp_info(&rs.h, &ri);
	f = rev_cfill_begin(s, key, &rq.h, &rs.h, &ri, rev_cache_lifetime(&ri, now, 0), now, now,
	    -1, -1);
	if (f == NULL)
		return -2;
	if (rev_cfill_data(f, body, strlen(body)) < 0) {
		rev_cfill_abort(f);
		return -3;
	}
	return rev_cfill_commit(f);
}

static struct rev_cobj *get(struct rev_cstore *s, const char *key, const char *const *lq)
{
	struct head rq;

	mkhead(&rq, GW_M_GET, 0, lq);
	return rev_cstore_lookup(s, key, &rq.h);
}

static int body_is(struct rev_cobj *o, const char *want)
{
	struct rev_cobj_view v;

	if (o == NULL)
		return 0;
	rev_cobj_view(o, &v);
	return v.body_len == strlen(want) && memcmp(v.body, want, v.body_len) == 0;
}

static const char *const MAXAGE[] = { "Cache-Control: max-age=60", "Content-Type: text/plain", NULL };

static void test_vary(void)
{
	struct rev_cstore *s = rev_cstore_new(1 << 20, 1 << 16, 4);
	const char *const vary[] = { "Cache-Control: max-age=60", "Vary: Accept-Encoding, Accept-Language", NULL };
	const char *const gz[] = { "Accept-Encoding: gzip", NULL };
	const char *const gz_en[] = { "Accept-Encoding: gzip", "Accept-Language: en", NULL };
	const char *const br[] = { "accept-encoding: br", NULL };
	const char *const none[] = { NULL };
	const char *const gz2[] = { "Accept-Encoding: gzip", "Accept-Encoding: br", NULL };
	struct rev_cobj *o;

	BEGIN_CASE("Vary: one variant per value set");
	CHECK(put(s, "http://h/v", gz, vary, "GZ", T0) == 0, "store gz");
	CHECK(put(s, "http://h/v", br, vary, "BR", T0) == 0, "store br");
	CHECK(put(s, "http://h/v", none, vary, "ID", T0) == 0, "store identity");
	o = get(s, "http://h/v", gz);
	CHECK(body_is(o, "GZ"), "gz variant");
	rev_cobj_put(o);
	o = get(s, "http://h/v", br);
	CHECK(body_is(o, "BR"), "br variant (header name case-insensitive)");
	rev_cobj_put(o);
	o = get(s, "http://h/v", none);
	CHECK(body_is(o, "ID"), "no header is a value set too");
	rev_cobj_put(o);
	CHECK(get(s, "http://h/v", gz_en) == NULL, "another Accept-Language: miss");
	CHECK(get(s, "http://h/v", gz2) == NULL, "gzip,br is not gzip");
	CHECK(put(s, "http://h/v", gz, vary, "GZ2", T0) == 0, "replace gz");
	o = get(s, "http://h/v", gz);
	CHECK(body_is(o, "GZ2"), "same variant replaced");
	rev_cobj_put(o);
	{
		struct rev_cstore_stats st;
		rev_cstore_stats(s, &st);
		CHECK(st.objects == 3, "three variants: %llu", (unsigned long long)st.objects);
	}
	/* a response without Vary replaces every variant */
	CHECK(put(s, "http://h/v", gz, MAXAGE, "PLAIN", T0) == 0, "store without Vary");
	o = get(s, "http://h/v", br);
	CHECK(body_is(o, "PLAIN"), "no Vary: any request matches");
	rev_cobj_put(o);
	{
		struct rev_cstore_stats st;
		rev_cstore_stats(s, &st);
		CHECK(st.objects == 1, "variants replaced: %llu", (unsigned long long)st.objects);
	}
	END_CASE();
	rev_cstore_free(s);
}

static void test_lru(void)
{
	/* each object is 1000 body bytes + ~660 of headers and overhead: 4 fit in 7000 */
	struct rev_cstore *s = rev_cstore_new(7000, 4000, 1);
	char body[1001], key[64];
	const char *const none[] = { NULL };
	struct rev_cstore_stats st;
	struct rev_cobj *o, *held;

	memset(body, 'b', 1000);
	body[1000] = '\0';
	BEGIN_CASE("LRU eviction at the memory bound");
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof key, "http://h/%d", i);
		CHECK(put(s, key, none, MAXAGE, body, T0) == 0, "store %d", i);
	}
	rev_cstore_stats(s, &st);
	CHECK(st.bytes <= 7000, "bound kept: %llu", (unsigned long long)st.bytes);
	CHECK(st.objects == 4, "four fit: %llu", (unsigned long long)st.objects);
	/* touch 0: 1 is now the least recently used */
	rev_cobj_put(get(s, "http://h/0", none));
	held = get(s, "http://h/2", none);   /* a hit being sent */
	CHECK(put(s, "http://h/4", none, MAXAGE, body, T0) == 0, "store 4");
	rev_cstore_stats(s, &st);
	CHECK(st.bytes <= 7000 && st.evictions == 1, "one evicted: bytes %llu ev %llu",
	    (unsigned long long)st.bytes, (unsigned long long)st.evictions);
	CHECK((o = get(s, "http://h/1", none)) == NULL, "LRU victim was 1");
	rev_cobj_put(o);
	CHECK((o = get(s, "http://h/0", none)) != NULL, "recently used 0 kept");
	rev_cobj_put(o);
	for (int i = 5; i < 12; i++) {
		snprintf(key, sizeof key, "http://h/%d", i);
		put(s, key, none, MAXAGE, body, T0);
	}
	rev_cstore_stats(s, &st);
	CHECK(st.bytes <= 7000, "bound kept: %llu", (unsigned long long)st.bytes);
	CHECK(body_is(held, body), "evicted object still readable while referenced");
	rev_cobj_put(held);
	END_CASE();

	BEGIN_CASE("oversize objects are refused");
	{
		struct head rq, rs;
		struct rev_resp_info ri;
		struct rev_cfill *f;
		char big[5000];
		memset(big, 'x', sizeof big);
		mkhead(&rq, GW_M_GET, 0, none);
		mkhead(&rs, GW_M_GET, 200, MAXAGE);
		rev_resp_info(&rs.h, &ri);
		CHECK(rev_cfill_begin(s, "http://h/big", &rq.h, &rs.h, &ri, 60, T0, T0, 4001, -1) == NULL,
		    "Content-Length over max_object: not even started");
		f = rev_cfill_begin(s, "http://h/big", &rq.h, &rs.h, &ri, 60, T0, T0, -1, -1);
		CHECK(f != NULL, "unknown length: started");
		CHECK(rev_cfill_data(f, big, 3000) == 0, "3000 fit");
		CHECK(rev_cfill_data(f, big, 1001) < 0, "4001 do not");
		rev_cfill_abort(f);
		f = rev_cfill_begin(s, "http://h/big", &rq.h, &rs.h, &ri, 60, T0, T0, 4000, -1);
		CHECK(f != NULL && rev_cfill_data(f, big, 4000) == 0, "exactly max_object");
		CHECK(rev_cfill_commit(f) == 0, "stored");
		CHECK((o = get(s, "http://h/big", none)) != NULL, "found");
		rev_cobj_put(o);
		rev_cstore_set_limits(s, 3000, 2000);
		CHECK(rev_cfill_begin(s, "http://h/b2", &rq.h, &rs.h, &ri, 60, T0, T0, 2500, -1) == NULL,
		    "new max_object applies");
	}
	END_CASE();
	rev_cstore_free(s);
}

static void test_refresh(void)
{
	struct rev_cstore *s = rev_cstore_new(1 << 20, 1 << 16, 2);
	const char *const none[] = { NULL };
	const char *const r1[] = { "Cache-Control: max-age=10", "ETag: \"v1\"", "X-Old: keep",
		"X-Changed: before", "Connection: x-hop", "X-Hop: no", "Content-Length: 4", NULL };
	const char *const r304[] = { "Cache-Control: max-age=100", "X-Changed: after", "Age: 3", NULL };
	struct rev_cobj *o, *n;
	struct rev_cobj_view v;
	struct head h304;
	int old = 0, changed = 0, hop = 0, cl = 0, date = 0;

	BEGIN_CASE("304 refreshes the stored headers (RFC 9111 4.3.4)");
	CHECK(put(s, "http://h/r", none, r1, "BODY", T0) == 0, "store");
	o = get(s, "http://h/r", none);
	rev_cobj_view(o, &v);
	CHECK(v.etag != NULL && v.etag_len == 4, "etag kept");
	CHECK(v.lifetime == 10, "lifetime 10");
	mkhead(&h304, GW_M_GET, 304, r304);
	n = rev_cstore_refresh(s, o, &h304.h, T0 + 50, T0 + 50, 0, -1);
	CHECK(n != NULL, "refreshed");
	rev_cobj_view(n, &v);
	for (size_t i = 0; i < v.nhdrs; i++) {
		old += strcmp(v.hdrs[i].name, "X-Old") == 0;
		changed += strcmp(v.hdrs[i].name, "X-Changed") == 0 && strcmp(v.hdrs[i].value, "after") == 0;
		changed -= strcmp(v.hdrs[i].name, "X-Changed") == 0 && strcmp(v.hdrs[i].value, "before") == 0;
		hop += strcmp(v.hdrs[i].name, "X-Hop") == 0 || strcmp(v.hdrs[i].name, "Connection") == 0;
		cl += strcasecmp(v.hdrs[i].name, "content-length") == 0 || strcasecmp(v.hdrs[i].name, "age") == 0;
		date += strcmp(v.hdrs[i].name, "Date") == 0;
	}
	CHECK(old == 1 && changed == 1 && hop == 0 && cl == 0 && date == 1,
	    "merge: old %d changed %d hop %d cl %d date %d", old, changed, hop, cl, date);
	CHECK(v.lifetime == 100, "new lifetime %g", v.lifetime);
	CHECK(rev_cobj_age(n, T0 + 50) > 2.9 && rev_cobj_age(n, T0 + 50) < 3.1, "age from the 304: %g",
	    rev_cobj_age(n, T0 + 50));
	CHECK(body_is(n, "BODY") && body_is(o, "BODY"), "body shared");
	rev_cobj_put(o);
	o = get(s, "http://h/r", none);
	CHECK(o == n, "the table holds the refreshed copy");
	rev_cobj_put(o);
	rev_cobj_put(n);
	END_CASE();
	rev_cstore_free(s);
}

static void test_purge(void)
{
	struct rev_cstore *s = rev_cstore_new(1 << 20, 1 << 16, 8);
	const char *const none[] = { NULL };
	const char *const gz[] = { "Accept-Encoding: gzip", NULL };
	const char *const vary[] = { "Cache-Control: max-age=60", "Vary: Accept-Encoding", NULL };
	static const char *const keys[] = { "http://a.test/x", "http://a.test/img/1", "http://a.test/img/2",
		"https://a.test/img/3", "http://a.test:8080/img/4", "http://a.testing/img/5", "http://b.test/x" };
	struct rev_cobj *held;
	struct rev_cstore_stats st;
	int n;

	BEGIN_CASE("purge by key (all variants) and by host prefix");
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CHECK(put(s, keys[i], none, MAXAGE, "x", T0) == 0, "store %s", keys[i]);
	CHECK(put(s, "http://b.test/v", none, vary, "id", T0) == 0, "variant 1");
	CHECK(put(s, "http://b.test/v", gz, vary, "gz", T0) == 0, "variant 2");
	held = get(s, "http://b.test/v", gz);
	CHECK(rev_cstore_purge_key(s, "http://b.test/v") == 2, "both variants purged");
	CHECK(get(s, "http://b.test/v", gz) == NULL, "gone");
	CHECK(body_is(held, "gz"), "a purged object being sent stays valid");
	rev_cobj_put(held);
	n = rev_cstore_purge_prefix(s, "a.test/img/");
	CHECK(n == 4, "host/path prefix, both schemes, any port: %d", n);
	CHECK((held = get(s, "http://a.testing/img/5", none)) != NULL, "other host kept");
	rev_cobj_put(held);
	CHECK((held = get(s, "http://a.test/x", none)) != NULL, "other path kept");
	rev_cobj_put(held);
	CHECK(rev_cstore_purge_prefix(s, "https://b.test") == 0, "scheme restricts");
	CHECK(rev_cstore_purge_prefix(s, "http://B.test") == 1, "host is case-insensitive");
	CHECK(rev_cstore_purge_prefix(s, "a.test") == 1, "whole host");
	CHECK(rev_cstore_purge_prefix(s, "") == 0, "empty prefix purges nothing");
	rev_cstore_stats(s, &st);
	CHECK(st.objects == 1 && st.purged == 8, "left %llu purged %llu", (unsigned long long)st.objects,
	    (unsigned long long)st.purged);
	END_CASE();
	rev_cstore_free(s);
}

/* reverse.cache and route cache keys: values and defaults. */
static void test_conf(void)
{
	static const char text[] =
	    "reverse: {\n"
	    "  cache = { memory = \"1M\"; max_object = 4096; x_cache_header = false; };\n"
	    "  upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9\"; } ); } );\n"
	    "  sites = ( { hosts = [ \"a.test\" ]; routes = (\n"
	    "    { path = \"/\"; upstream = \"app\"; cache = true; },\n"
	    "    { path = \"/t/\"; upstream = \"app\"; cache = { ttl = 60.0; stale_if_error = 300;\n"
	    "      ignore_set_cookie = true; }; },\n"
	    "    { path = \"/n/\"; upstream = \"app\"; }\n"
	    "  ); } );\n"
	    "};\n";
	static const char dflt[] = "reverse: { cache = { }; };\n";
	char path[] = "/tmp/test_cache_conf_XXXXXX";
	struct conf_errors e;
	struct conf *c;
	FILE *f;
	int fd;

	BEGIN_CASE("config: reverse.cache and route cache");
	conf_errors_init(&e);
	fd = mkstemp(path);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	CHECK(f != NULL, "temp file");
	if (f == NULL) {
		END_CASE();
		return;
	}
	fputs(text, f);
	fclose(f);
	c = conf_load(path, &e);
	CHECK(c != NULL, "loads: %s", e.n ? e.msgs[0] : "");
	if (c != NULL) {
		const struct conf_rev_site *si = &c->reverse.sites[0];
		CHECK(c->reverse.cache.present && c->reverse.cache.memory == 1048576 &&
		    c->reverse.cache.max_object == 4096 && !c->reverse.cache.x_cache_header, "cache group");
		CHECK(si->routes[0].cache && si->routes[0].cache_ttl == 0 &&
		    si->routes[0].cache_stale_if_error == -1 && !si->routes[0].cache_ignore_set_cookie,
		    "cache = true");
		CHECK(si->routes[1].cache && si->routes[1].cache_ttl == 60 &&
		    si->routes[1].cache_stale_if_error == 300 && si->routes[1].cache_ignore_set_cookie,
		    "cache = { ttl; stale_if_error; ignore_set_cookie; }");
		CHECK(!si->routes[2].cache, "no cache key: off");
		conf_free(c);
	}
	f = fopen(path, "w");
	fputs(dflt, f);
	fclose(f);
	c = conf_load(path, &e);
	CHECK(c != NULL && c->reverse.cache.present && c->reverse.cache.memory == 256ull << 20 &&
	    c->reverse.cache.max_object == 8ull << 20 && c->reverse.cache.x_cache_header, "defaults");
	conf_free(c);
	unlink(path);
	conf_errors_free(&e);
	END_CASE();
}

/* Fills in flight are charged to the memory bound as their bytes come: many
 * open fills cannot hold more than memory together; a fill that finds no room
 * fails (the caller stops storing) and gives its charge back. */
static void test_fill_budget(void)
{
	struct rev_cstore *s = rev_cstore_new(65536, 65536, 4);
	const char *const none[] = { NULL };
	struct rev_cfill *f[16];
	struct rev_cstore_stats st;
	struct head rq, rs;
	struct rev_resp_info ri;
	char chunk[4096], key[64];
	int dead = 0, over = 0;

	memset(chunk, 'c', sizeof chunk);
	BEGIN_CASE("fills in flight are bounded by memory");
	CHECK(put(s, "http://h/old", none, MAXAGE, "old", T0) == 0, "an object to evict");
	mkhead(&rq, GW_M_GET, 0, none);
	mkhead(&rs, GW_M_GET, 200, MAXAGE);
	rev_resp_info(&rs.h, &ri);
	for (int i = 0; i < 16; i++) {
		snprintf(key, sizeof key, "http://h/f%d", i);
		f[i] = rev_cfill_begin(s, key, &rq.h, &rs.h, &ri, 60, T0, T0, -1, -1);
	}
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 16; i++) {
			if (f[i] == NULL)
				continue;
			if (rev_cfill_data(f[i], chunk, sizeof chunk) < 0) {
				rev_cfill_abort(f[i]);
				f[i] = NULL;
				dead++;
			}
			rev_cstore_stats(s, &st);
			if (st.bytes > 65536)
				over = 1;
		}
	}
	CHECK(!over, "bytes never above memory");
	CHECK(dead > 0, "fills without room stopped: %d", dead);
	CHECK(get(s, "http://h/old", none) == NULL, "stored objects evicted for fills first");
	for (int i = 0; i < 16; i++)
		if (f[i] != NULL && rev_cfill_commit(f[i]) != 0)
			CHECK(0, "commit %d", i);
	rev_cstore_stats(s, &st);
	CHECK(st.bytes <= 65536 && st.objects > 0, "committed: %llu bytes, %llu objects",
	    (unsigned long long)st.bytes, (unsigned long long)st.objects);
	CHECK(rev_cstore_purge_prefix(s, "h") == (int)st.objects, "purge all");
	rev_cstore_stats(s, &st);
	CHECK(st.bytes == 0, "aborted fills gave their charge back: %llu", (unsigned long long)st.bytes);
	END_CASE();
	rev_cstore_free(s);
}

int main(void)
{
	test_conf();
	test_cc();
	test_lifetime();
	test_age();
	test_storable();
	test_keys();
	test_vary();
	test_lru();
	test_refresh();
	test_purge();
	test_fill_budget();
	return check_done();
}
