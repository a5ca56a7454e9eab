/*
 * Unit tests for reverse/route: host lookup (exact, wildcard depth and
 * length, default, ports, case, IPv6), longest-prefix routes, strip_prefix
 * paths and the compile-time errors.  The struct conf is built by hand so the
 * test needs only route.c (conf_load may not exist yet).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "reverse/route.h"

/*
 * Fallbacks for the conf error list so this test links before conf/conf.c
 * implements it; the real (strong) definitions win when they are linked in.
 */
__attribute__((weak)) void conf_errors_init(struct conf_errors *e)
{
	memset(e, 0, sizeof(*e));
}

__attribute__((weak)) void conf_errors_free(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	memset(e, 0, sizeof(*e));
}

__attribute__((weak)) void conf_err(struct conf_errors *e, const char *file, int line, const char *key,
    const char *fmt, ...)
{
	char msg[512], full[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(full, sizeof(full), "%s:%d: %s: %s", file, line, key, msg);
	else
		snprintf(full, sizeof(full), "%s:%d: %s", file, line, msg);
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 8;
		e->msgs = realloc(e->msgs, e->cap * sizeof(*e->msgs));
	}
	e->msgs[e->n++] = strdup(full);
}

/* ---- building a config by hand ---- */

static struct conf_rev_route mk_route(const char *path, enum conf_route_kind kind, const char *arg, int line)
{
	struct conf_rev_route r;
	memset(&r, 0, sizeof(r));
	r.path = (char *)path;
	r.kind = kind;
	if (kind == CONF_ROUTE_UPSTREAM)
		r.upstream = (char *)arg;
	else if (kind == CONF_ROUTE_STATIC)
		r.static_dir = (char *)arg;
	else
		r.redirect = (char *)arg;
	r.src.file = "test.conf";
	r.src.line = line;
	return r;
}

static struct conf_rev_site mk_site(char **hosts, size_t nhosts, struct conf_rev_route *routes, size_t nroutes,
    int line)
{
	struct conf_rev_site s;
	memset(&s, 0, sizeof(s));
	s.hosts.v = hosts;
	s.hosts.n = nhosts;
	s.routes = routes;
	s.nroutes = nroutes;
	s.src.file = "test.conf";
	s.src.line = line;
	return s;
}

static struct conf_rev_upstream ups[2];
static struct conf_hdr_set hdrs[1];
static char *h0[] = { "www.example.com", "*.example.com" };
static char *h1[] = { "*.shop.example.com", "shop.example.com", "[::1]", "10.0.0.1", "2001:db8::5" };
static char *h2[] = { "*.com", ".example.net", "example.net", "*.example.net" };
static struct conf_rev_route r0[4], r1[1], r3[1];
static struct conf_rev_site sites[4];

static void build(struct conf *cf, int with_default)
{
	memset(cf, 0, sizeof(*cf));
	memset(ups, 0, sizeof(ups));
	ups[0].name = "app";
	ups[1].name = "other";
	hdrs[0].name = "X-Site";
	hdrs[0].value = "zero";
	r0[0] = mk_route("/", CONF_ROUTE_STATIC, "/srv/www", 10);
	r0[1] = mk_route("/api/", CONF_ROUTE_UPSTREAM, "app", 11);
	r0[1].strip_prefix = 1;
	r0[1].set_headers = hdrs;
	r0[1].nset_headers = 1;
	r0[1].max_body_bytes = 1024;
	r0[2] = mk_route("/api", CONF_ROUTE_UPSTREAM, "other", 12);
	r0[3] = mk_route("/old", CONF_ROUTE_REDIRECT, "https://new.example.com/", 13);
	r0[3].redirect_status = 308;
	r1[0] = mk_route("/", CONF_ROUTE_UPSTREAM, "other", 20);
	r3[0] = mk_route("/", CONF_ROUTE_REDIRECT, "https://www.example.com/", 30);
	sites[0] = mk_site(h0, 2, r0, 4, 9);
	sites[0].force_https = 1;
	sites[0].rate_rps = 5;
	sites[0].rate_burst = 10;
	sites[1] = mk_site(h1, 5, r1, 1, 19);
	sites[2] = mk_site(h2, 4, NULL, 0, 25);
	sites[3] = mk_site(NULL, 0, r3, 1, 29);
	sites[3].is_default = 1;
	cf->reverse.present = 1;
	cf->reverse.upstreams = ups;
	cf->reverse.nupstreams = 2;
	cf->reverse.sites = sites;
	cf->reverse.nsites = with_default ? 4 : 3;
}

static const struct rev_site *find(const struct rev_routes *rt, const char *h)
{
	return rev_site_find(rt, h, strlen(h));
}

static const struct rev_route *route(const struct rev_site *s, const char *p)
{
	return rev_route_find(s, p, strlen(p));
}

static int has_err(const struct conf_errors *e, const char *needle)
{
	for (size_t i = 0; i < e->n; i++)
		if (strstr(e->msgs[i], needle))
			return 1;
	return 0;
}

static void dump_errs(const struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "  err: %s\n", e->msgs[i]);
}

int main(void)
{
	struct conf cf;
	struct conf_errors errs;
	conf_errors_init(&errs);
	build(&cf, 1);
	struct rev_routes *rt = rev_routes_compile(&cf, &errs);
	if (!rt) {
		dump_errs(&errs);
		fprintf(stderr, "compile failed\n");
		return 1;
	}
	/* the table must not point into the config */
	const struct rev_site *S0 = rev_routes_site(rt, 0), *S1 = rev_routes_site(rt, 1);
	const struct rev_site *S2 = rev_routes_site(rt, 2), *S3 = rev_routes_site(rt, 3);

	BEGIN_CASE("sites in order");
	CHECK(rev_routes_nsites(rt) == 4, "%zu", rev_routes_nsites(rt));
	CHECK(S0 && S0->index == 0 && S3 && S3->index == 3 && S3->is_default, "indices");
	CHECK(rev_routes_site(rt, 4) == NULL, "past the end");
	CHECK(S0 && strcmp(S0->name, "www.example.com") == 0, "name %s", S0 ? S0->name : "");
	CHECK(S3 && strcmp(S3->name, "default") == 0, "default name");
	CHECK(S0 && S0->force_https == 1 && S0->rate_rps == 5 && S0->rate_burst == 10, "site fields");
	END_CASE();

	BEGIN_CASE("exact hosts");
	CHECK(find(rt, "www.example.com") == S0, "www");
	CHECK(find(rt, "shop.example.com") == S1, "shop exact beats *.example.com");
	CHECK(find(rt, "10.0.0.1") == S1, "ipv4");
	END_CASE();

	BEGIN_CASE("case and port ignored");
	CHECK(find(rt, "WWW.Example.COM") == S0, "case");
	CHECK(find(rt, "www.example.com:8080") == S0, "port");
	CHECK(find(rt, "WWW.EXAMPLE.COM:443") == S0, "case+port");
	CHECK(find(rt, "www.example.com.") == S0, "trailing dot");
	CHECK(find(rt, "www.example.com.:80") == S0, "trailing dot + port");
	CHECK(find(rt, "www.example.com:") == S0, "empty port");
	CHECK(find(rt, "10.0.0.1:8443") == S1, "ipv4 port");
	CHECK(find(rt, "[::1]") == S1, "v6");
	CHECK(find(rt, "[::1]:443") == S1, "v6 port");
	CHECK(find(rt, "[2001:DB8::5]:80") == S1, "v6 configured without brackets");
	CHECK(find(rt, "2001:db8::5") == S1, "bare v6");
	END_CASE();

	BEGIN_CASE("wildcards");
	CHECK(find(rt, "a.example.com") == S0, "one level");
	CHECK(find(rt, "a.b.c.example.com") == S0, "any depth");
	CHECK(find(rt, "x.shop.example.com") == S1, "longest wildcard wins");
	CHECK(find(rt, "y.x.Shop.Example.com") == S1, "longest wildcard wins, depth, case");
	CHECK(find(rt, "example.com") == S2, "*.example.com does not match example.com; *.com does");
	CHECK(find(rt, "foo.com") == S2, "*.com");
	CHECK(find(rt, ".example.com") == S2, "empty label: only the shorter wildcard");
	CHECK(find(rt, "com") == S3, "bare com: default");
	CHECK(find(rt, "xexample.com") == S2, "no dot boundary: not *.example.com");
	CHECK(find(rt, "example.net") == S2 && find(rt, "a.b.example.net") == S2, ".example.net");
	CHECK(find(rt, "xexample.net") == S3, ".example.net needs a dot boundary");
	END_CASE();

	BEGIN_CASE("unknown, empty and malformed hosts");
	CHECK(find(rt, "foo.org") == S3, "unknown -> default");
	CHECK(rev_site_find_configured(rt, "foo.org", 7) == NULL, "configured-only: NULL");
	CHECK(rev_site_find_configured(rt, "a.example.com:1", 15) == S0, "configured-only: wildcard");
	CHECK(find(rt, "") == S3, "empty");
	CHECK(find(rt, "www.example.com:abc") == S3, "bad port");
	CHECK(find(rt, "[::1") == S3, "unclosed bracket");
	CHECK(find(rt, "[::1]x") == S3, "junk after bracket");
	CHECK(find(rt, "www.example.com/x") == S3, "slash");
	CHECK(find(rt, "user@www.example.com") == S3, "userinfo");
	CHECK(rev_site_find(rt, NULL, 0) == S3, "NULL host -> default");
	char longhost[400];
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost + sizeof(longhost) - 12, ".example.com", 12);
	CHECK(rev_site_find(rt, longhost, sizeof(longhost)) == S3, "too long");
	/* not NUL-terminated: only the first len bytes count */
	const char buf[] = "www.example.comXXXX";
	CHECK(rev_site_find(rt, buf, 15) == S0, "length respected");
	CHECK(rev_site_find(rt, "www.example.com.evil", 15) == S0, "length respected 2");
	END_CASE();

	BEGIN_CASE("longest prefix");
	const struct rev_route *r;
	r = route(S0, "/api/x?q=1");
	CHECK(r && strcmp(r->prefix, "/api/") == 0, "/api/x -> /api/: %s", r ? r->prefix : "-");
	r = route(S0, "/api/");
	CHECK(r && strcmp(r->prefix, "/api/") == 0, "/api/ -> /api/");
	r = route(S0, "/api");
	CHECK(r && strcmp(r->prefix, "/api") == 0, "/api -> /api");
	r = route(S0, "/apix");
	CHECK(r && strcmp(r->prefix, "/api") == 0, "/apix -> /api (plain string prefix)");
	r = route(S0, "/api?next=/api/x");
	CHECK(r && strcmp(r->prefix, "/api") == 0, "query ignored");
	r = route(S0, "/api#/api/");
	CHECK(r && strcmp(r->prefix, "/api") == 0, "fragment ignored");
	r = route(S0, "/ap");
	CHECK(r && strcmp(r->prefix, "/") == 0, "/ap -> /");
	r = route(S0, "/");
	CHECK(r && r->kind == REV_ROUTE_STATIC && strcmp(r->static_dir, "/srv/www") == 0, "/ static");
	CHECK(route(S0, "api") == NULL, "no leading slash: no route");
	CHECK(route(S0, "") == NULL, "empty");
	CHECK(route(S2, "/") == NULL, "site without routes");
	CHECK(route(NULL, "/") == NULL, "NULL site");
	CHECK(rev_route_find(S0, "/api/xyz", 4) && strcmp(rev_route_find(S0, "/api/xyz", 4)->prefix, "/api") == 0,
	    "length respected");
	END_CASE();

	BEGIN_CASE("route fields");
	r = route(S0, "/api/v1");
	CHECK(r && r->kind == REV_ROUTE_UPSTREAM && r->upstream == 0 && strcmp(r->upstream_name, "app") == 0,
	    "upstream 0");
	CHECK(r && r->strip_prefix == 1 && r->max_body_bytes == 1024, "strip, max body");
	CHECK(r && r->nset_headers == 1 && strcmp(r->set_headers[0].name, "X-Site") == 0 &&
	    r->set_headers[0].name_len == 6 && strcmp(r->set_headers[0].value, "zero") == 0 &&
	    r->set_headers[0].value_len == 4, "set_headers");
	r = route(S0, "/apix");
	CHECK(r && r->upstream == 1, "upstream 1");
	r = route(S0, "/old/page");
	CHECK(r && r->kind == REV_ROUTE_REDIRECT && r->redirect_status == 308 &&
	    strcmp(r->redirect, "https://new.example.com/") == 0, "redirect");
	CHECK(r && r->upstream == -1 && r->static_dir == NULL, "redirect has no upstream");
	r = route(S3, "/x");
	CHECK(r && r->kind == REV_ROUTE_REDIRECT && r->redirect_status == 302, "default status 302");
	CHECK(r && strcmp(r->src_file, "test.conf") == 0 && r->src_line == 30, "source");
	END_CASE();

	BEGIN_CASE("strip_prefix paths");
	char out[64];
	long n;
	r = route(S0, "/api/x?q=1");
	n = rev_route_upstream_path(r, "/api/x?q=1", 10, out, sizeof(out));
	CHECK(n == 6 && strcmp(out, "/x?q=1") == 0, "%ld %s", n, out);
	n = rev_route_upstream_path(r, "/api/", 5, out, sizeof(out));
	CHECK(n == 1 && strcmp(out, "/") == 0, "%ld %s", n, out);
	n = rev_route_upstream_path(r, "/api/a/b/", 9, out, sizeof(out));
	CHECK(n == 5 && strcmp(out, "/a/b/") == 0, "%ld %s", n, out);
	n = rev_route_upstream_path(r, "/api", 4, out, sizeof(out));
	CHECK(n == -1, "prefix does not match: %ld", n);
	n = rev_route_upstream_path(r, "/api/x", 6, out, 2);
	CHECK(n == -1, "small buffer");
	n = rev_route_upstream_path(r, "/api/x", 6, out, 3);
	CHECK(n == 2 && strcmp(out, "/x") == 0, "exact buffer");
	/* a strip_prefix route without trailing slash */
	struct rev_route copy = *route(S0, "/apix");
	copy.strip_prefix = 1;
	n = rev_route_upstream_path(&copy, "/api", 4, out, sizeof(out));
	CHECK(n == 1 && strcmp(out, "/") == 0, "/api -> /: %s", out);
	n = rev_route_upstream_path(&copy, "/api?q", 6, out, sizeof(out));
	CHECK(n == 3 && strcmp(out, "/?q") == 0, "/api?q -> /?q: %s", out);
	n = rev_route_upstream_path(&copy, "/api/x", 6, out, sizeof(out));
	CHECK(n == 2 && strcmp(out, "/x") == 0, "/api/x -> /x: %s", out);
	n = rev_route_upstream_path(&copy, "/apix", 5, out, sizeof(out));
	CHECK(n == 2 && strcmp(out, "/x") == 0, "/apix -> /x: %s", out);
	/* without strip_prefix: unchanged */
	r = route(S0, "/apix");
	n = rev_route_upstream_path(r, "/apix?a=b", 9, out, sizeof(out));
	CHECK(n == 9 && strcmp(out, "/apix?a=b") == 0, "unchanged: %s", out);
	END_CASE();

	BEGIN_CASE("raw upstream paths");
	{
		/* raw target, its normalised form, strip_prefix route or not, expected, raw used */
		static const struct { const char *raw, *norm; int strip; const char *want; int used; } t[] = {
			{ "/api/%7Euser", "/api/~user", 0, "/api/%7Euser", 1 },
			{ "/api/a%2fb?s=%2B", "/api/a%2Fb?s=%2B", 0, "/api/a%2fb?s=%2B", 1 },
			{ "/api/%7Ex", "/api/~x", 1, "/%7Ex", 1 },
			{ "/%61pi/x", "/api/x", 1, "/x", 1 },
			{ "/ap%69/x", "/api/x", 1, "/x", 1 },
			{ "/api/", "/api/", 1, "/", 1 },
			{ "/api/a/../%7E", "/api/~", 1, "/~", 0 },
			{ "/api//x%7E", "/api/x~", 1, "/x~", 0 },
			{ "/api/x/./y", "/api/x/y", 0, "/api/x/y", 0 },
		};
		struct rev_route c2 = *route(S0, "/api/");
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			int used = -1;
			c2.strip_prefix = t[i].strip;
			n = rev_route_upstream_path_raw(&c2, t[i].raw, strlen(t[i].raw), t[i].norm,
			    strlen(t[i].norm), out, sizeof out, &used);
			CHECK(n == (long)strlen(t[i].want) && strcmp(out, t[i].want) == 0 && used == t[i].used,
			    "%s: %ld %s %d", t[i].raw, n, out, used);
		}
		/* a prefix ending inside an escape the normaliser kept: ambiguous */
		c2.prefix = "/a%2";
		c2.prefix_len = 4;
		c2.strip_prefix = 1;
		int used = -1;
		n = rev_route_upstream_path_raw(&c2, "/a%2fb", 6, "/a%2Fb", 6, out, sizeof out, &used);
		CHECK(n == 3 && strcmp(out, "/Fb") == 0 && used == 0, "inside an escape: %ld %s %d", n, out, used);
	}
	END_CASE();

	BEGIN_CASE("table independent of the config");
	/* scribble over the config: the compiled table keeps its copies */
	const struct rev_route *api = route(S0, "/api/");
	hdrs[0].value = "changed";
	r0[1].path = "/zzz/";
	CHECK(api && strcmp(api->set_headers[0].value, "zero") == 0, "header copied");
	CHECK(route(S0, "/api/x") == api, "prefix copied");
	END_CASE();
	rev_routes_free(rt);

	BEGIN_CASE("no default site");
	build(&cf, 0);
	rt = rev_routes_compile(&cf, &errs);
	CHECK(rt != NULL, "compiles");
	CHECK(rt && find(rt, "foo.org") == NULL, "unknown -> NULL");
	CHECK(rt && find(rt, "") == NULL, "empty -> NULL");
	CHECK(rt && find(rt, "www.example.com") == rev_routes_site(rt, 0), "known still found");
	rev_routes_free(rt);
	END_CASE();

	BEGIN_CASE("empty reverse config");
	struct conf empty;
	memset(&empty, 0, sizeof(empty));
	rt = rev_routes_compile(&empty, &errs);
	CHECK(rt != NULL && rev_routes_nsites(rt) == 0, "empty table");
	CHECK(rt && find(rt, "www.example.com") == NULL, "nothing found");
	rev_routes_free(rt);
	rev_routes_free(NULL);
	CHECK(errs.n == 0, "no errors so far (%zu)", errs.n);
	END_CASE();

	BEGIN_CASE("compile errors");
	build(&cf, 1);
	static char *bad_hosts[] = { "www.*.com", "a.example.org:8080", "*.", "www.example.com", "*.example.com",
		"", ".", "..x", ".shop.example.com" };
	static struct conf_rev_route bad_routes[5];
	bad_routes[0] = mk_route("/a", CONF_ROUTE_UPSTREAM, "nope", 41);
	bad_routes[1] = mk_route("/a", CONF_ROUTE_STATIC, "/srv", 42);
	bad_routes[2] = mk_route("b", CONF_ROUTE_STATIC, "/srv", 43);
	bad_routes[3] = mk_route("/c", CONF_ROUTE_REDIRECT, "https://x/", 44);
	bad_routes[3].redirect_status = 304;   /* conf refuses it too; compile must not rely on that */
	bad_routes[4] = mk_route("/d", CONF_ROUTE_STATIC, "", 45);
	static struct conf_rev_site bad_sites[6];
	memcpy(bad_sites, sites, sizeof(sites));
	bad_sites[4] = mk_site(bad_hosts, 9, bad_routes, 5, 40);
	bad_sites[5] = mk_site(NULL, 0, NULL, 0, 50);
	bad_sites[5].is_default = 1;
	cf.reverse.sites = bad_sites;
	cf.reverse.nsites = 6;
	rt = rev_routes_compile(&cf, &errs);
	CHECK(rt == NULL, "refused");
	CHECK(has_err(&errs, "test.conf:41: reverse.sites.[4].routes.[0].upstream: unknown upstream \"nope\""), "unknown upstream");
	CHECK(has_err(&errs, "test.conf:42: reverse.sites.[4].routes.[1].path: route \"/a\" is already defined at line 41"), "duplicate route");
	CHECK(has_err(&errs, "test.conf:43: reverse.sites.[4].routes.[2].path: route path must start with '/'"), "path without slash");
	CHECK(has_err(&errs, "test.conf:44: reverse.sites.[4].routes.[3].redirect_status: must be 301"), "redirect status");
	CHECK(has_err(&errs, "test.conf:45: reverse.sites.[4].routes.[4].static: empty"), "empty static dir");
	CHECK(has_err(&errs, "reverse.sites.[4].hosts.[0]: invalid host \"www.*.com\""), "star inside");
	CHECK(has_err(&errs, "invalid host \"a.example.org:8080\""), "port in host");
	CHECK(has_err(&errs, "invalid host \"*.\""), "bare wildcard");
	CHECK(has_err(&errs, "invalid host \"\""), "empty host");
	CHECK(has_err(&errs, "invalid host \".\""), "dot");
	CHECK(has_err(&errs, "invalid host \"..x\""), "dot dot");
	CHECK(has_err(&errs, "hosts.[8]: host \"shop.example.com\" is already served by reverse.sites.[1] (line 19)"), ".name clashes exact");
	CHECK(has_err(&errs, "hosts.[8]: host \"*.shop.example.com\" is already served by reverse.sites.[1] (line 19)"), ".name clashes wild");
	CHECK(has_err(&errs, "test.conf:40: reverse.sites.[4].hosts.[3]: host \"www.example.com\" is already served by reverse.sites.[0] (line 9)"),
	    "duplicate exact host");
	CHECK(has_err(&errs, "reverse.sites.[4].hosts.[4]: host \"*.example.com\" is already served by reverse.sites.[0]"), "duplicate wildcard");
	CHECK(has_err(&errs, "test.conf:50: reverse.sites.[5].default: only one site may be the default (reverse.sites.[3] is, line 29)"), "two defaults");
	if (check_case_failed)
		dump_errs(&errs);
	END_CASE();

	BEGIN_CASE("site without hosts and not default");
	conf_errors_free(&errs);
	conf_errors_init(&errs);
	build(&cf, 1);
	sites[2].hosts.n = 0;
	rt = rev_routes_compile(&cf, &errs);
	CHECK(rt == NULL && has_err(&errs, "test.conf:25: reverse.sites.[2]: needs hosts, or default = true"),
	    "refused");
	END_CASE();
	conf_errors_free(&errs);
	return check_done();
}
