/*
 * Unit tests for forward/policy: every matcher, first-match-wins, default
 * deny, the implicit allow when no policy is configured, hours edges, compile
 * errors with FILE:LINE, deny_destinations, and that the compiled policy does
 * not point into the conf it came from.  The struct conf is built by hand
 * (only conf_err/conf_errors_* and conf_cidr_match are needed from conf/).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "conf_fixture.h"
#include "forward/domainset.h"
#include "forward/policy.h"


static struct sockaddr_storage sa_store[8];
static int sa_next;

static const struct sockaddr *sa(const char *addr)
{
	struct sockaddr_storage *ss = &sa_store[sa_next++ % 8];
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			abort();
	}
	return (const struct sockaddr *)ss;
}

static struct conf_fwd_rule rule(enum conf_action a, int line)
{
	struct conf_fwd_rule r;
	memset(&r, 0, sizeof(r));
	r.action = a;
	r.src.file = "test.conf";
	r.src.line = line;
	return r;
}

static void conf_init(struct conf *cf, struct conf_fwd_rule *rules, size_t n)
{
	memset(cf, 0, sizeof(*cf));
	cf->path = "test.conf";
	cf->forward.present = 1;
	cf->forward.policy = rules;
	cf->forward.npolicy = n;
	cf->forward.policy_present = 1;
}

static struct fwd_policy *compile(const struct conf *cf, struct conf_errors *errs)
{
	conf_errors_init(errs);
	return fwd_policy_compile(cf, errs);
}

static struct fwd_policy *compile_ok(const struct conf *cf)
{
	struct conf_errors errs;
	struct fwd_policy *p = compile(cf, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "unexpected compile error: %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	return p;
}

/* Compile expecting failure; returns 1 if some error contains want. */
static int compile_fails(const struct conf *cf, const char *want)
{
	struct conf_errors errs;
	struct fwd_policy *p = compile(cf, &errs);
	int found = 0;
	for (size_t i = 0; i < errs.n; i++)
		if (strstr(errs.msgs[i], want))
			found = 1;
	if (!found)
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "  (got error: %s)\n", errs.msgs[i]);
	conf_errors_free(&errs);
	if (p) {
		fwd_policy_free(p);
		return 0;
	}
	return found;
}

static struct fwd_matchdata *md;

static struct fwd_request req(const char *host)
{
	struct fwd_request rq;
	memset(&rq, 0, sizeof(rq));
	rq.client = sa("10.1.2.3");
	rq.scheme = FWD_SCHEME_HTTP;
	rq.method = "GET";
	rq.host = host;
	rq.port = 80;
	rq.md = md;
	return rq;
}

/* index of the winning rule, -1 for none */
static int eval(const struct fwd_policy *p, const struct fwd_request *rq)
{
	struct fwd_match why;
	const struct fwd_rule *r = fwd_policy_eval(p, rq, &why);
	if (!r)
		return why.rule_index == SIZE_MAX ? -1 : -2;
	if (fwd_rule_index(r) != why.rule_index)
		return -3;
	return (int)why.rule_index;
}

static struct tm at(int wday, int hour, int min)
{
	struct tm t;
	memset(&t, 0, sizeof(t));
	t.tm_wday = wday;
	t.tm_hour = hour;
	t.tm_min = min;
	t.tm_sec = 59;
	return t;
}

static char *write_tmp(const char *content)
{
	static char paths[8][32];
	static int n;
	char *path = paths[n++ % 8];
	strcpy(path, "/tmp/gw-test-pol-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		abort();
	close(fd);
	return path;
}

/* ---- cases ---- */

static void test_default_and_empty(void)
{
	BEGIN_CASE("no policy = implicit allow; empty policy = deny");
	struct conf cf;
	conf_init(&cf, NULL, 0);
	cf.forward.policy_present = 0;
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	struct fwd_request rq = req("example.com");
	struct fwd_match why;
	const struct fwd_rule *r = fwd_policy_eval(p, &rq, &why);
	CHECK(r && why.action == CONF_ACT_ALLOW, "default allow");
	CHECK(strcmp(why.rule_name, "default") == 0, "name %s", why.rule_name);
	CHECK(fwd_policy_nrules(p) == 1, "one implicit rule");
	fwd_policy_free(p);

	conf_init(&cf, NULL, 0);
	p = compile_ok(&cf);
	CHECK(p != NULL, "compile empty");
	r = fwd_policy_eval(p, &rq, &why);
	CHECK(r == NULL, "no match");
	CHECK(why.rule_index == SIZE_MAX && why.action == CONF_ACT_DENY, "deny");
	CHECK(strcmp(why.rule_name, "no matching rule") == 0, "name %s", why.rule_name);
	CHECK(fwd_policy_nrules(p) == 0, "zero rules");
	fwd_policy_free(p);
	END_CASE();
}

static void test_first_match_and_names(void)
{
	BEGIN_CASE("first match wins; unnamed rules are rule N");
	struct conf_fwd_rule rules[3] = { rule(CONF_ACT_DENY, 10), rule(CONF_ACT_AUTH, 11),
	                                  rule(CONF_ACT_ALLOW, 12) };
	rules[0].domains = STRS("blocked.test");
	rules[0].name = "no-blocked";
	rules[1].domains = STRS(".blocked.test", "auth.test");
	struct conf cf;
	conf_init(&cf, rules, 3);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	struct fwd_request rq = req("blocked.test");
	CHECK(eval(p, &rq) == 0, "first rule");
	rq.host = "www.blocked.test";
	CHECK(eval(p, &rq) == 1, "second rule");
	rq.host = "other.test";
	CHECK(eval(p, &rq) == 2, "catch-all");
	CHECK(fwd_policy_nrules(p) == 3, "nrules");
	CHECK(strcmp(fwd_policy_rule_name(p, 0), "no-blocked") == 0, "named");
	CHECK(strcmp(fwd_policy_rule_name(p, 1), "rule 2") == 0, "unnamed %s",
	    fwd_policy_rule_name(p, 1));
	CHECK(strcmp(fwd_policy_rule_name(p, 2), "rule 3") == 0, "unnamed 3");
	CHECK(fwd_policy_rule_name(p, 3) == NULL, "out of range");
	CHECK(fwd_policy_rule_action(p, 1) == CONF_ACT_AUTH, "action");
	struct fwd_match why;
	rq.host = "auth.test";
	const struct fwd_rule *r = fwd_policy_eval(p, &rq, &why);
	CHECK(r && why.action == CONF_ACT_AUTH && strcmp(fwd_rule_name(r), "rule 2") == 0 &&
	    fwd_rule_action(r) == CONF_ACT_AUTH, "auth verdict");
	CHECK(why.domain && strcmp(why.domain, "auth.test") == 0, "why domain");
	/* continue after a satisfied auth rule */
	r = fwd_policy_eval_from(p, &rq, why.rule_index + 1, &why);
	CHECK(r && why.rule_index == 2 && why.domain == NULL, "eval_from next rule");
	rq.host = "blocked.test";
	r = fwd_policy_eval_from(p, &rq, 1, &why);
	CHECK(r && why.rule_index == 1, "eval_from skips earlier rules");
	r = fwd_policy_eval_from(p, &rq, 3, &why);
	CHECK(r == NULL && why.rule_index == SIZE_MAX, "eval_from past the end");
	fwd_policy_free(p);
	END_CASE();
}

static void test_domains(void)
{
	BEGIN_CASE("domains: exact, *. subdomains only, . apex+subdomains, IPs");
	struct conf_fwd_rule rules[4] = { rule(CONF_ACT_DENY, 1), rule(CONF_ACT_DENY, 2),
	                                  rule(CONF_ACT_DENY, 3), rule(CONF_ACT_DENY, 4) };
	rules[0].domains = STRS("Exact.Test");
	rules[1].domains = STRS("*.star.test");
	rules[2].domains = STRS(".dot.test");
	rules[3].domains = STRS("192.0.2.1", "[2001:db8::1]", "::ffff:198.51.100.7");
	struct conf cf;
	conf_init(&cf, rules, 4);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	static const struct { const char *host; int want; } t[] = {
		{ "exact.test", 0 }, { "EXACT.TEST", 0 }, { "exact.test.", 0 },
		{ "www.exact.test", -1 }, { "xexact.test", -1 },
		{ "star.test", -1 }, { "a.star.test", 1 }, { "a.b.star.test", 1 },
		{ "A.Star.Test.", 1 }, { "xstar.test", -1 },
		{ "dot.test", 2 }, { "a.dot.test", 2 }, { "adot.test", -1 },
		{ "192.0.2.1", 3 }, { "192.0.2.10", -1 }, { "2001:db8::1", 3 },
		{ "[2001:DB8:0::1]", 3 }, { "1.2.3.4", -1 },
		/* canonical addresses (core/addr.h): mapped forms are the v4 */
		{ "[::ffff:192.0.2.1]", 3 }, { "::ffff:c000:201", 3 }, { "192.0.2.1.", 3 },
		{ "198.51.100.7", 3 }, { "[::ffff:198.51.100.7]", 3 },
		/* ambiguous literals match nothing (not even a later allow) */
		{ "3.4", -1 }, { "192.0.2.01", -1 }, { "0300.0.2.1", -1 }, { "3221225985", -1 },
		{ "0xc0.0.2.1", -1 },
		{ "", -1 }, { "test", -1 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct fwd_request rq = req(t[i].host);
		int got = eval(p, &rq);
		CHECK(got == t[i].want, "host '%s': got %d want %d", t[i].host, got, t[i].want);
	}
	struct fwd_request rq = req(NULL);
	CHECK(eval(p, &rq) == -1, "NULL host");
	fwd_policy_free(p);

	struct conf_fwd_rule bad = rule(CONF_ACT_DENY, 7);
	bad.domains = STRS("exa mple.com");
	conf_init(&cf, &bad, 1);
	CHECK(compile_fails(&cf, "test.conf:7: forward.policy.domains: rule 1: \"exa mple.com\""),
	    "bad domain");
	bad.domains = STRS("*.192.0.2.1");
	CHECK(compile_fails(&cf, "IP address"), "prefixed IP");
	bad.domains = STRS("192.0.2.01");
	CHECK(compile_fails(&cf, "ambiguous IPv4 address: a part with a leading zero"),
	    "ambiguous IP pattern refused");
	bad.domains = STRS("3.4");
	CHECK(compile_fails(&cf, "fewer than four parts"), "short numeric pattern refused");
	bad.domains = STRS("*");
	CHECK(compile_fails(&cf, "\"*\""), "lone star");
	bad.domains = STRS("");
	CHECK(compile_fails(&cf, "empty"), "empty domain");
	END_CASE();
}

static void test_clients_users_groups(void)
{
	BEGIN_CASE("clients, users, groups");
	struct conf_cidr nets[] = { cidr("10.0.0.0", 8), cidr("2001:db8::", 32) };
	struct conf_fwd_rule rules[3] = { rule(CONF_ACT_ALLOW, 1), rule(CONF_ACT_ALLOW, 2),
	                                  rule(CONF_ACT_ALLOW, 3) };
	rules[0].clients = (struct conf_cidrs){ nets, 2 };
	rules[0].users = STRS("alice");
	rules[1].groups = STRS("staff", "admins");
	rules[2].clients = (struct conf_cidrs){ nets + 1, 1 };
	struct conf cf;
	conf_init(&cf, rules, 3);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");

	struct fwd_request rq = req("x.test");
	rq.user = "alice";
	CHECK(eval(p, &rq) == 0, "alice from 10/8");
	rq.user = "Alice";
	CHECK(eval(p, &rq) == -1, "users are case-sensitive");
	rq.user = NULL;
	CHECK(eval(p, &rq) == -1, "unauthenticated never matches users");
	rq.user = "alice";
	rq.client = sa("192.168.1.1");
	CHECK(eval(p, &rq) == -1, "alice from elsewhere");
	rq.client = sa("::ffff:10.9.9.9");
	CHECK(eval(p, &rq) == 0, "v4-mapped client");
	rq.client = NULL;
	CHECK(eval(p, &rq) == -1, "no client address");

	const char *g1[] = { "users", "admins" };
	rq = req("x.test");
	rq.client = sa("192.168.1.1");
	rq.user = "bob";
	rq.groups = g1;
	rq.ngroups = 2;
	CHECK(eval(p, &rq) == 1, "any group");
	rq.ngroups = 1;
	CHECK(eval(p, &rq) == -1, "not in group");
	rq.ngroups = 0;
	CHECK(eval(p, &rq) == -1, "no groups");
	rq.client = sa("2001:db8:1::5");
	CHECK(eval(p, &rq) == 2, "v6 client");
	rq.client = sa("2001:db9::5");
	CHECK(eval(p, &rq) == -1, "v6 outside");
	fwd_policy_free(p);
	END_CASE();
}

/* A Kerberos principal: "alice" and "alice@CORP.TEST" both match it, and
 * "alice" matches only through user_short (a Basic user named
 * "alice@corp.test" is not "alice"). */
static void test_principal_short_name(void)
{
	BEGIN_CASE("principal and its short name");
	struct conf_fwd_rule rules[2] = { rule(CONF_ACT_ALLOW, 1), rule(CONF_ACT_ALLOW, 2) };
	rules[0].users = STRS("alice");
	rules[1].users = STRS("bob@CORP.TEST");
	struct conf cf;
	conf_init(&cf, rules, 2);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");

	struct fwd_request rq = req("x.test");
	rq.client = NULL;
	rq.user = "alice@CORP.TEST";
	rq.user_short = "alice";
	CHECK(eval(p, &rq) == 0, "short name matches the principal");
	rq.user_short = NULL;
	CHECK(eval(p, &rq) == -1, "no short name: the full name only");
	rq.user = "bob@CORP.TEST";
	rq.user_short = "bob";
	CHECK(eval(p, &rq) == 1, "full principal matches");
	rq.user = "bob";
	rq.user_short = NULL;
	CHECK(eval(p, &rq) == -1, "a rule's principal does not match the bare name");
	fwd_policy_free(p);
	END_CASE();
}

static void test_methods_ports_schemes(void)
{
	BEGIN_CASE("methods, ports, schemes");
	uint16_t ports[] = { 8080, 443 };
	struct conf_fwd_rule rules[3] = { rule(CONF_ACT_DENY, 1), rule(CONF_ACT_DENY, 2),
	                                  rule(CONF_ACT_ALLOW, 3) };
	rules[0].methods = STRS("post", "PUT");
	rules[1].ports = ports;
	rules[1].nports = 2;
	rules[1].schemes = STRS("http");
	rules[2].schemes = STRS("CONNECT");
	struct conf cf;
	conf_init(&cf, rules, 3);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	struct fwd_request rq = req("x.test");
	rq.method = "POST";
	CHECK(eval(p, &rq) == 0, "POST (config said post)");
	rq.method = "PUT";
	CHECK(eval(p, &rq) == 0, "PUT");
	rq.method = "put";
	CHECK(eval(p, &rq) == 0, "methods compare case-insensitively: put is PUT to the rule");
	rq.method = "pOsT";
	CHECK(eval(p, &rq) == 0, "pOsT is POST to the rule");
	rq.method = "GET";
	CHECK(eval(p, &rq) == -1, "GET port 80");
	rq.port = 8080;
	CHECK(eval(p, &rq) == 1, "GET 8080 http");
	rq.scheme = FWD_SCHEME_CONNECT;
	rq.method = "CONNECT";
	rq.port = 443;
	CHECK(eval(p, &rq) == 2, "CONNECT 443 is not http");
	rq.method = NULL;
	CHECK(eval(p, &rq) == 2, "NULL method: no methods matcher");
	fwd_policy_free(p);

	struct conf_fwd_rule bad = rule(CONF_ACT_DENY, 9);
	bad.schemes = STRS("https");
	conf_init(&cf, &bad, 1);
	CHECK(compile_fails(&cf, "unknown scheme \"https\""), "bad scheme");
	bad = rule(CONF_ACT_DENY, 9);
	bad.methods = STRS("GE T");
	conf_init(&cf, &bad, 1);
	CHECK(compile_fails(&cf, "not a method"), "bad method");
	END_CASE();
}

static void test_urls(void)
{
	BEGIN_CASE("urls: PCRE2 over the full URL; never for CONNECT");
	struct conf_fwd_rule rules[2] = { rule(CONF_ACT_DENY, 1), rule(CONF_ACT_ALLOW, 2) };
	rules[0].urls = STRS("^http://[^/]+/.*\\.exe$", "(?i)casino");
	struct conf cf;
	conf_init(&cf, rules, 2);
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL && fwd_policy_has_urls(p), "compile");
	struct fwd_request rq = req("dl.test");
	rq.url = "http://dl.test/files/setup.exe";
	struct fwd_match why;
	const struct fwd_rule *r = fwd_policy_eval(p, &rq, &why);
	CHECK(r && why.rule_index == 0, "exe denied");
	CHECK(why.url && strcmp(why.url, "^http://[^/]+/.*\\.exe$") == 0, "why url");
	rq.url = "http://dl.test/files/setup.exe.txt";
	CHECK(eval(p, &rq) == 1, "not .exe");
	rq.url = "http://x.test/?q=CASINO";
	CHECK(eval(p, &rq) == 0, "second regex, caseless");
	rq.url = "http://dl.test/a.exeXXXX";
	rq.url_len = strlen("http://dl.test/a.exe");
	CHECK(eval(p, &rq) == 0, "url_len respected");
	rq.url_len = 0;
	rq.url = "http://x.test/casino";
	rq.md = NULL;
	CHECK(eval(p, &rq) == 1, "no match block: urls do not match");
	rq.md = md;
	rq.scheme = FWD_SCHEME_CONNECT;
	CHECK(eval(p, &rq) == 1, "CONNECT never matches urls");
	rq.scheme = FWD_SCHEME_HTTP;
	rq.url = NULL;
	CHECK(eval(p, &rq) == 1, "no URL");
	fwd_policy_free(p);

	struct conf_fwd_rule bad[2] = { rule(CONF_ACT_DENY, 21), rule(CONF_ACT_DENY, 22) };
	bad[0].urls = STRS("ok", "abc(def");
	bad[1].urls = STRS("[z-a]");
	bad[1].name = "second";
	conf_init(&cf, bad, 2);
	CHECK(compile_fails(&cf, "test.conf:21: forward.policy.urls: rule 1: bad regex \"abc(def\": "
	    "missing closing parenthesis at offset 7"), "bad regex 1");
	CHECK(compile_fails(&cf, "test.conf:22: forward.policy.urls: second: bad regex"),
	    "bad regex 2 also reported");
	END_CASE();
}

static void test_url_normalise(void)
{
	BEGIN_CASE("fwd_url_normalise: what url rules see");
	static const struct { const char *in, *want; } t[] = {
		{ "http://h.test/a/b?q=1", "http://h.test/a/b?q=1" },
		{ "HTTP://H.Test/A", "http://h.test/A" },
		{ "http://h.test", "http://h.test/" },
		{ "http://h.test?x", "http://h.test/?x" },
		{ "http://h.test:80/x", "http://h.test/x" },
		{ "http://h.test:080/x", "http://h.test/x" },
		{ "http://h.test:8080/x", "http://h.test:8080/x" },
		{ "http://h.test./x", "http://h.test/x" },
		{ "http://h.test/a/../b", "http://h.test/b" },
		{ "http://h.test/a/./b/", "http://h.test/a/b/" },
		{ "http://h.test/../../b", "http://h.test/b" },
		{ "http://h.test/a/..", "http://h.test/" },
		{ "http://h.test/a/%2e%2E/x.exe", "http://h.test/x.exe" },
		{ "http://h.test/a/.%2e/x", "http://h.test/x" },
		{ "http://h.test/a/..;x=1/y", "http://h.test/y" },
		{ "http://h.test//a///b", "http://h.test/a/b" },
		{ "http://h.test/%7euser/%41%62", "http://h.test/~user/Ab" },
		{ "http://h.test/a%2fb%2F..%2f", "http://h.test/a%2Fb%2F..%2F" },
		{ "http://h.test/x?a=%2e%2e/%41&b=%3d", "http://h.test/x?a=../A&b=%3D" },
		{ "http://[::ffff:127.0.0.1]/", "http://127.0.0.1/" },
		{ "http://[2001:DB8:0::1]:81/", "http://[2001:db8::1]:81/" },
		{ "https://h.test/x", "https://h.test/x" },
		{ "https://h.test:443/x", "https://h.test/x" },
		{ "http://h.test/x?q=100%&r=%zz%4", "http://h.test/x?q=100%25&r=%25zz%254" },
		{ "http://h.test/?%%%", "http://h.test/?%25%25%25" },
	};
	static const struct { const char *in, *err; } bad[] = {
		{ "http://h.test/%zz", "invalid percent-escape" },
		{ "http://h.test/%4", "invalid percent-escape" },
		{ "http://h.test/%u0061dmin", "invalid percent-escape" },
		{ "http://0177.0.0.1/", "ambiguous IPv4 address" },
		{ "http://127.1/", "ambiguous IPv4 address" },
		{ "http://0x7f.0.0.1/", "ambiguous IPv4 address" },
		{ "http://u@h.test/", "userinfo" },
		{ "ftp://h.test/", "only http" },
		{ "h.test/x", "not an absolute URL" },
	};
	char out[512];
	size_t n;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *err = fwd_url_normalise(t[i].in, strlen(t[i].in), out, sizeof out, &n);
		CHECK(err == NULL && strcmp(out, t[i].want) == 0 && n == strlen(out),
		    "%s: got \"%s\" (%s), want \"%s\"", t[i].in, err ? "" : out, err ? err : "ok", t[i].want);
		char again[512];
		size_t n2;
		CHECK(err == NULL && fwd_url_normalise(out, n, again, sizeof again, &n2) == NULL &&
		    strcmp(again, out) == 0, "%s: not idempotent: %s", t[i].in, again);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = fwd_url_normalise(bad[i].in, strlen(bad[i].in), out, sizeof out, &n);
		CHECK(err != NULL && strstr(err, bad[i].err) != NULL, "%s: got %s", bad[i].in,
		    err ? err : out);
	}
	CHECK(fwd_url_normalise("http://h.test/abc", 17, out, 3 * 17 + FWD_URL_NORM_EXTRA - 1, &n) != NULL,
	    "too small a buffer is refused");
	/* a rule on the normalised URL is not bypassed by case, escapes or dots */
	struct conf_fwd_rule rules[2] = { rule(CONF_ACT_DENY, 1), rule(CONF_ACT_ALLOW, 2) };
	rules[0].urls = STRS("^http://h\\.test/admin/");
	struct conf cf;
	conf_init(&cf, rules, 2);
	struct fwd_policy *p = compile_ok(&cf);
	static const char *const evasions[] = { "HTTP://H.TEST/admin/x", "http://h.test/%61dmin/x",
	    "http://h.test/x/../admin/x", "http://h.test/%2e/admin/x", "http://h.test//admin/x",
	    "http://h.test:80/admin/x", "http://h.test./admin/x" };
	for (size_t i = 0; i < sizeof(evasions) / sizeof(evasions[0]); i++) {
		struct fwd_request rq = req("h.test");
		const char *err = fwd_url_normalise(evasions[i], strlen(evasions[i]), out, sizeof out, &n);
		rq.url = out;
		CHECK(err == NULL && eval(p, &rq) == 0, "%s evades the rule", evasions[i]);
	}
	fwd_policy_free(p);
	END_CASE();
}

static void test_hours(void)
{
	BEGIN_CASE("hours: ranges, boundaries, day ranges and wrap-around");
	struct conf_fwd_rule rules[1] = { rule(CONF_ACT_DENY, 1) };
	struct conf cf;
	conf_init(&cf, rules, 1);
	struct fwd_request rq = req("x.test");
	struct tm t;
	rq.local_time = &t;

	rules[0].hours = STRS("Mon-Fri 09:00-17:00");
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	static const struct { int wd, h, m, want; } a[] = {
		{ 1, 9, 0, 0 }, { 1, 8, 59, -1 }, { 3, 12, 0, 0 }, { 5, 16, 59, 0 },
		{ 5, 17, 0, -1 }, { 1, 17, 0, -1 }, { 6, 10, 0, -1 }, { 0, 10, 0, -1 },
		{ 1, 0, 0, -1 }, { 5, 23, 59, -1 },
	};
	for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++) {
		t = at(a[i].wd, a[i].h, a[i].m);
		CHECK(eval(p, &rq) == a[i].want, "wday %d %02d:%02d", a[i].wd, a[i].h, a[i].m);
	}
	struct fwd_match why;
	t = at(2, 10, 0);
	fwd_policy_eval(p, &rq, &why);
	CHECK(why.hours && strcmp(why.hours, "Mon-Fri 09:00-17:00") == 0, "why hours");
	rq.local_time = NULL;
	CHECK(eval(p, &rq) == -1, "no time given: hours never match");
	rq.local_time = &t;
	fwd_policy_free(p);

	rules[0].hours = STRS("Sat-Sun");
	p = compile_ok(&cf);
	for (int wd = 0; wd < 7; wd++) {
		t = at(wd, 3, 0);
		CHECK(eval(p, &rq) == ((wd == 0 || wd == 6) ? 0 : -1), "Sat-Sun wday %d", wd);
	}
	fwd_policy_free(p);

	rules[0].hours = STRS("fri-MONDAY 00:00-24:00");
	p = compile_ok(&cf);
	CHECK(p != NULL, "compile wrap");
	for (int wd = 0; wd < 7; wd++) {
		t = at(wd, 23, 59);
		int want = (wd == 5 || wd == 6 || wd == 0 || wd == 1) ? 0 : -1;
		CHECK(eval(p, &rq) == want, "Fri-Mon wday %d", wd);
	}
	fwd_policy_free(p);

	rules[0].hours = STRS("Mon,Wed 12:00-13:00", "Sun", "22:00-24:00");
	p = compile_ok(&cf);
	CHECK(p != NULL, "compile multi");
	t = at(3, 12, 30);
	CHECK(eval(p, &rq) == 0, "Wed lunch");
	t = at(2, 12, 30);
	CHECK(eval(p, &rq) == -1, "Tue lunch");
	t = at(0, 4, 0);
	CHECK(eval(p, &rq) == 0, "Sunday all day");
	t = at(4, 22, 0);
	CHECK(eval(p, &rq) == 0, "every day late");
	t = at(4, 21, 59);
	CHECK(eval(p, &rq) == -1, "every day not yet late");
	t = at(4, 23, 59);
	fwd_policy_eval(p, &rq, &why);
	CHECK(why.hours && strcmp(why.hours, "22:00-24:00") == 0, "why hours 3");
	fwd_policy_free(p);

	rules[0].hours = STRS("9:30-10:00");
	p = compile_ok(&cf);
	CHECK(p != NULL, "one-digit hour");
	t = at(1, 9, 30);
	CHECK(eval(p, &rq) == 0, "9:30");
	t = at(1, 9, 29);
	CHECK(eval(p, &rq) == -1, "9:29");
	fwd_policy_free(p);

	static const char *const bad[] = {
		"Mon-Fri 17:00-09:00", "Funday", "Mon-Fri 25:00-26:00", "", "9-17",
		"Mon-Fri 09:00-17:00 10:00-11:00", "Mon Tue", "Mon-Fri 09:60-10:00",
		"24:00-24:00", "Mon-", ",Mon", "09:00-17:00x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_fwd_rule br = rule(CONF_ACT_DENY, 33);
		br.hours = (struct conf_strs){ (char **)&bad[i], 1 };
		conf_init(&cf, &br, 1);
		CHECK(compile_fails(&cf, "test.conf:33: forward.policy.hours: rule 1:"),
		    "bad hours '%s' accepted", bad[i]);
	}
	END_CASE();
}

static void test_lists(void)
{
	BEGIN_CASE("lists: named domain sets, why has list + entry; errors");
	char *f1 = write_tmp("# malware\r\nevil.test\r\n192.0.2.66\r\n");
	char *f2 = write_tmp("ads.test\n");
	struct conf_fwd_list lists[2] = {
		{ "malware", f1, { "test.conf", 3 }, NULL },
		{ "ads", f2, { "test.conf", 4 }, NULL },
	};
	struct conf_fwd_rule rules[2] = { rule(CONF_ACT_DENY, 5), rule(CONF_ACT_ALLOW, 6) };
	rules[0].lists = STRS("ads", "malware");
	rules[0].name = "blocklists";
	struct conf cf;
	conf_init(&cf, rules, 2);
	cf.forward.lists = lists;
	cf.forward.nlists = 2;
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	CHECK(fwd_domainset_count(fwd_policy_list(p, "malware")) == 2, "list accessor");
	CHECK(fwd_policy_list(p, "nope") == NULL, "unknown list accessor");
	CHECK(fwd_policy_nlists(p) == 2 && strcmp(fwd_policy_list_name(p, 1), "ads") == 0 &&
	    fwd_policy_list_name(p, 2) == NULL, "list iteration");
	struct fwd_request rq = req("cdn.EVIL.test");
	struct fwd_match why;
	const struct fwd_rule *r = fwd_policy_eval(p, &rq, &why);
	CHECK(r && why.rule_index == 0, "list hit");
	CHECK(why.list && strcmp(why.list, "malware") == 0, "why list");
	CHECK(why.list_entry && strcmp(why.list_entry, "evil.test") == 0, "why entry");
	char buf[256];
	fwd_match_format(&why, buf, sizeof(buf));
	CHECK(strcmp(buf, "rule \"blocklists\" (deny): list malware entry \"evil.test\"") == 0,
	    "format: %s", buf);
	rq.host = "ads.test.";
	CHECK(eval(p, &rq) == 0, "other list");
	rq.host = "192.0.2.66";
	CHECK(eval(p, &rq) == 0, "IP entry");
	rq.host = "good.test";
	r = fwd_policy_eval(p, &rq, &why);
	CHECK(r && why.rule_index == 1 && why.list == NULL && why.list_entry == NULL,
	    "miss clears why");
	fwd_policy_free(p);

	/* unknown list name, missing file, duplicate name: all reported */
	struct conf_fwd_list bad_lists[3] = {
		{ "malware", f1, { "test.conf", 3 }, NULL },
		{ "gone", "/nonexistent/gw.list", { "test.conf", 4 }, NULL },
		{ "malware", f2, { "test.conf", 5 }, NULL },
	};
	rules[0].lists = STRS("malware", "typo");
	cf.forward.lists = bad_lists;
	cf.forward.nlists = 3;
	CHECK(compile_fails(&cf, "test.conf:5: forward.policy.lists: blocklists: unknown list \"typo\""),
	    "unknown list");
	CHECK(compile_fails(&cf, "test.conf:4: forward.lists.file: list \"gone\": cannot open "
	    "/nonexistent/gw.list"), "missing file");
	CHECK(compile_fails(&cf, "test.conf:5: forward.lists.name: duplicate list name \"malware\""),
	    "duplicate");
	unlink(f1);
	unlink(f2);
	END_CASE();
}

static void test_combined(void)
{
	BEGIN_CASE("all matchers together (CONFIG.md example)");
	char *f = write_tmp("malware.test\n");
	struct conf_fwd_list lists[1] = { { "malware", f, { "gh.conf", 2 }, NULL } };
	struct conf_fwd_rule rules[4] = { rule(CONF_ACT_DENY, 10), rule(CONF_ACT_DENY, 11),
	                                  rule(CONF_ACT_DENY, 12), rule(CONF_ACT_ALLOW, 13) };
	rules[0].lists = STRS("malware");
	rules[1].domains = STRS("*.games.example");
	rules[1].groups = STRS("staff");
	rules[1].hours = STRS("Mon-Fri 09:00-17:00");
	rules[2].urls = STRS("^http://[^/]+/.*\\.exe$");
	struct conf cf;
	conf_init(&cf, rules, 4);
	cf.forward.lists = lists;
	cf.forward.nlists = 1;
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	const char *staff[] = { "staff" };
	struct tm t = at(2, 10, 0);
	struct fwd_request rq = req("www.games.example");
	rq.user = "carol";
	rq.groups = staff;
	rq.ngroups = 1;
	rq.local_time = &t;
	rq.url = "http://www.games.example/";
	struct fwd_match why;
	CHECK(fwd_policy_eval(p, &rq, &why) && why.rule_index == 1, "staff at work");
	char buf[256];
	fwd_match_format(&why, buf, sizeof(buf));
	CHECK(strcmp(buf, "rule \"rule 2\" (deny): domain \"*.games.example\", hours "
	    "\"Mon-Fri 09:00-17:00\"") == 0, "format %s", buf);
	t = at(2, 17, 0);
	CHECK(eval(p, &rq) == 3, "after hours");
	t = at(2, 10, 0);
	rq.ngroups = 0;
	CHECK(eval(p, &rq) == 3, "not staff");
	rq.ngroups = 1;
	rq.host = "games.example";
	CHECK(eval(p, &rq) == 3, "apex not covered by *.");
	rq.host = "a.malware.test";
	CHECK(eval(p, &rq) == 0, "list first");
	rq.host = "x.test";
	rq.url = "http://x.test/a.exe";
	CHECK(eval(p, &rq) == 2, "url rule");
	fwd_policy_free(p);
	unlink(f);
	END_CASE();
}

static void test_independent_of_conf(void)
{
	BEGIN_CASE("compiled policy does not point into the conf");
	struct conf_fwd_rule *rules = calloc(1, sizeof(*rules));
	rules[0] = rule(CONF_ACT_DENY, 1);
	char *name = strdup("temp"), *dom = strdup(".copy.test"), *rx = strdup("copy"),
	    *hr = strdup("Mon"), *user = strdup("dave");
	rules[0].name = name;
	rules[0].domains = (struct conf_strs){ &dom, 1 };
	rules[0].urls = (struct conf_strs){ &rx, 1 };
	rules[0].hours = (struct conf_strs){ &hr, 1 };
	rules[0].users = (struct conf_strs){ &user, 1 };
	struct conf_cidr *dd = malloc(sizeof(*dd));
	*dd = cidr("127.0.0.0", 8);
	struct conf cf;
	conf_init(&cf, rules, 1);
	cf.forward.deny_destinations = (struct conf_cidrs){ dd, 1 };
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	memset(name, 'X', 4);
	memset(dom, 'X', 10);
	memset(rx, 'X', 4);
	memset(hr, 'X', 3);
	memset(user, 'X', 4);
	memset(dd, 0xff, sizeof(*dd));
	free(name);
	free(dom);
	free(rx);
	free(hr);
	free(user);
	free(dd);
	free(rules);
	struct tm t = at(1, 1, 1);
	struct fwd_request rq = req("copy.test");
	rq.url = "http://copy.test/";
	rq.user = "dave";
	rq.local_time = &t;
	struct fwd_match why;
	CHECK(fwd_policy_eval(p, &rq, &why) != NULL, "still matches");
	CHECK(strcmp(why.rule_name, "temp") == 0, "name copied");
	CHECK(fwd_dest_denied(p, sa("127.0.0.1")), "cidrs copied");
	fwd_policy_free(p);
	END_CASE();
}

static void test_dest_clients_ports(void)
{
	BEGIN_CASE("deny_destinations, allow_clients, connect_ports helpers");
	struct conf_cidr deny[] = { cidr("127.0.0.0", 8), cidr("::1", 128), cidr("169.254.0.0", 16),
	                            cidr("fe80::", 10) };
	struct conf_cidr allow[] = { cidr("10.0.0.0", 8) };
	uint16_t cports[] = { 443, 8443 };
	struct conf cf;
	conf_init(&cf, NULL, 0);
	cf.forward.deny_destinations = (struct conf_cidrs){ deny, 4 };
	cf.forward.allow_clients = (struct conf_cidrs){ allow, 1 };
	cf.forward.connect_ports = cports;
	cf.forward.nconnect_ports = 2;
	struct fwd_policy *p = compile_ok(&cf);
	CHECK(p != NULL, "compile");
	CHECK(fwd_dest_denied(p, sa("127.0.0.1")), "loopback");
	CHECK(fwd_dest_denied(p, sa("127.255.1.2")), "loopback /8");
	CHECK(fwd_dest_denied(p, sa("::1")), "v6 loopback");
	CHECK(fwd_dest_denied(p, sa("::ffff:127.0.0.1")), "v4-mapped loopback");
	/* the address a connect() reaches (core/addr.h) */
	CHECK(fwd_dest_denied(p, sa("0.0.0.0")), "0.0.0.0 is this host");
	CHECK(fwd_dest_denied(p, sa("0.1.2.3")), "0.0.0.0/8 is this host");
	CHECK(fwd_dest_denied(p, sa("::")), ":: is this host");
	CHECK(fwd_dest_denied(p, sa("::ffff:0.0.0.0")), "mapped 0.0.0.0");
	CHECK(fwd_dest_denied(p, sa("::127.0.0.1")), "v4-compatible loopback");
	CHECK(fwd_dest_denied(p, sa("::ffff:0:127.0.0.1")), "v4-translated loopback");
	CHECK(fwd_dest_denied(p, sa("64:ff9b::127.0.0.1")), "NAT64 of loopback");
	CHECK(fwd_dest_denied(p, sa("64:ff9b::a9fe:a9fe")), "NAT64 of metadata");
	CHECK(fwd_dest_denied(p, sa("2002:7f00:1::1")), "6to4 of loopback");
	CHECK(!fwd_dest_denied(p, sa("64:ff9b::5db8:d822")), "NAT64 of a public v4");
	CHECK(!fwd_dest_denied(p, sa("2002:5db8:d822::1")), "6to4 of a public v4");
	fwd_policy_free(p);
	/* an operator who lists 0.0.0.0/8 and ::/128 (but not loopback) */
	struct conf_cidr deny0[] = { cidr("0.0.0.0", 8), cidr("::", 128) };
	cf.forward.deny_destinations = (struct conf_cidrs){ deny0, 2 };
	p = compile_ok(&cf);
	CHECK(p && fwd_dest_denied(p, sa("0.0.0.0")) && fwd_dest_denied(p, sa("0.9.9.9")) &&
	    fwd_dest_denied(p, sa("::")) && fwd_dest_denied(p, sa("::ffff:0.0.0.0")) &&
	    fwd_dest_denied(p, sa("64:ff9b::1")), "the unspecified address as written");
	CHECK(p && !fwd_dest_denied(p, sa("127.0.0.1")), "loopback not listed here");
	fwd_policy_free(p);
	cf.forward.deny_destinations = (struct conf_cidrs){ deny, 4 };
	p = compile_ok(&cf);
	CHECK(fwd_dest_denied(p, sa("169.254.169.254")), "metadata");
	CHECK(fwd_dest_denied(p, sa("fe80::1")), "link-local v6");
	CHECK(!fwd_dest_denied(p, sa("93.184.216.34")), "public v4");
	CHECK(!fwd_dest_denied(p, sa("2606:2800::1")), "public v6");
	CHECK(!fwd_dest_denied(p, NULL), "NULL address");
	CHECK(fwd_client_allowed(p, sa("10.2.3.4")), "client allowed");
	CHECK(!fwd_client_allowed(p, sa("11.2.3.4")), "client refused");
	CHECK(fwd_connect_port_allowed(p, 443) && fwd_connect_port_allowed(p, 8443), "ports");
	CHECK(!fwd_connect_port_allowed(p, 22), "port 22");
	CHECK(fwd_websocket_port_allowed(p, 443) && fwd_websocket_port_allowed(p, 8443) &&
	    fwd_websocket_port_allowed(p, 80), "websocket_ports absent: connect_ports and 80");
	CHECK(!fwd_websocket_port_allowed(p, 22) && !fwd_websocket_port_allowed(p, 8080),
	    "websocket elsewhere refused");
	fwd_policy_free(p);
	uint16_t wports[] = { 8080 };
	cf.forward.websocket_ports = wports;
	cf.forward.nwebsocket_ports = 1;
	p = compile_ok(&cf);
	CHECK(p != NULL && fwd_websocket_port_allowed(p, 8080) && !fwd_websocket_port_allowed(p, 80) &&
	    !fwd_websocket_port_allowed(p, 443), "websocket_ports given: only those");
	fwd_policy_free(p);
	cf.forward.nwebsocket_ports = 0;
	p = compile_ok(&cf);
	CHECK(p != NULL && !fwd_websocket_port_allowed(p, 80), "websocket_ports = []: none");
	fwd_policy_free(p);
	END_CASE();
}

static void test_format_nomatch(void)
{
	BEGIN_CASE("fwd_match_format for no match and truncation");
	struct conf cf;
	conf_init(&cf, NULL, 0);
	struct fwd_policy *p = compile_ok(&cf);
	struct fwd_request rq = req("x.test");
	struct fwd_match why;
	CHECK(fwd_policy_eval(p, &rq, &why) == NULL, "deny");
	char buf[64];
	fwd_match_format(&why, buf, sizeof(buf));
	CHECK(strcmp(buf, "rule \"no matching rule\" (deny)") == 0, "format %s", buf);
	char tiny[8];
	int n = fwd_match_format(&why, tiny, sizeof(tiny));
	CHECK(n > 8 && strlen(tiny) == 7, "truncates safely");
	CHECK(fwd_policy_eval(p, &rq, NULL) == NULL, "why may be NULL");
	CHECK(fwd_policy_eval(NULL, &rq, &why) == NULL && why.rule_index == SIZE_MAX, "NULL policy");
	fwd_policy_free(p);
	fwd_policy_free(NULL);
	END_CASE();
}

int main(void)
{
	md = fwd_matchdata_new();
	test_default_and_empty();
	test_first_match_and_names();
	test_domains();
	test_clients_users_groups();
	test_principal_short_name();
	test_methods_ports_schemes();
	test_urls();
	test_url_normalise();
	test_hours();
	test_lists();
	test_combined();
	test_independent_of_conf();
	test_dest_clients_ports();
	test_format_nomatch();
	fwd_matchdata_free(md);
	return check_done();
}
