/*
 * test_auth: unit tests for the pure parts of forward/auth (users and groups
 * file parsing, Basic credentials, the verified-credentials cache, per-client
 * backoff, crypt verification and the pool), forward/pac and forward/block.
 */
#include "forward/auth.h"
#include "forward/block.h"
#include "forward/pac.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char *mkhash(const char *pass, const char *prefix, unsigned long cost)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;

	if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof setting) == NULL)
		return NULL;
	memset(&cd, 0, sizeof cd);
	const char *h = crypt_r(pass, setting, &cd);
	return h && h[0] != '*' ? strdup(h) : NULL;
}

static void test_db(void)
{
	char *h1 = mkhash("pw1", "$6$", 0), *h2 = mkhash("pw2", "$2y$", 4), *h3 = mkhash("pw3", "$y$", 0);
	char users[2048], err[128];
	size_t first, n;
	struct fwd_auth_db *db;

	BEGIN_CASE("db: users and groups files");
	CHECK(h1 && h2 && h3, "libcrypt made the hashes");
	snprintf(users, sizeof users,
	    "# comment\r\n\r\n  alice:%s\r\nbob:%s:extra htpasswd field\n"
	    "carol:%s\nnocolon\n:emptyname\nmd5:$apr1$abc$def\nsha:{SHA}xyz=\nalice:%s\n"
	    "sp ace:%s\n",
	    h1, h2, h3, h2, h1);
	const char *groups = "staff: alice bob\nops:carol,alice , ghost\n# x\nbad line\n"
	    "staff: alice\n";
	db = fwd_auth_db_parse(users, strlen(users), groups, strlen(groups), err, sizeof err);
	CHECK(db != NULL, "parsed: %s", err);
	CHECK(fwd_auth_db_nusers(db) == 3, "3 users, got %zu", fwd_auth_db_nusers(db));
	n = fwd_auth_db_skipped(db, 0, &first);
	CHECK(n == 6 && first == 6, "6 skipped users lines from line 6: %zu %zu", n, first);
	n = fwd_auth_db_skipped(db, 1, &first);
	CHECK(n == 1 && first == 4, "1 skipped groups line (4): %zu %zu", n, first);
	long a = fwd_auth_db_find(db, "alice"), b = fwd_auth_db_find(db, "bob"), c = fwd_auth_db_find(db, "carol");
	CHECK(a >= 0 && b >= 0 && c >= 0, "found");
	CHECK(fwd_auth_db_find(db, "Alice") < 0 && fwd_auth_db_find(db, "ghost") < 0, "case-sensitive");
	CHECK(strcmp(fwd_auth_db_hash(db, a), h1) == 0, "first alice wins");
	CHECK(strcmp(fwd_auth_db_hash(db, b), h2) == 0, "htpasswd extra field dropped");
	const char *const *g = fwd_auth_db_groups(db, a, &n);
	CHECK(n == 2 && strcmp(g[0], "staff") == 0 && strcmp(g[1], "ops") == 0,
	    "alice in staff, ops once each: %zu", n);
	g = fwd_auth_db_groups(db, c, &n);
	CHECK(n == 1 && strcmp(g[0], "ops") == 0, "carol in ops");
	g = fwd_auth_db_groups(db, b, &n);
	CHECK(n == 1 && strcmp(g[0], "staff") == 0, "bob in staff");
	fwd_auth_db_free(db);
	CHECK(fwd_auth_db_load("/nonexistent/users", NULL, err, sizeof err) == NULL &&
	    strstr(err, "cannot open") != NULL, "missing file: %s", err);
	db = fwd_auth_db_parse("", 0, NULL, 0, err, sizeof err);
	CHECK(db != NULL && fwd_auth_db_nusers(db) == 0, "empty file");
	fwd_auth_db_free(db);
	END_CASE();

	BEGIN_CASE("verify: bcrypt, sha512, yescrypt, wrong, unknown");
	CHECK(fwd_auth_verify("pw1", h1) == 1, "sha512");
	CHECK(fwd_auth_verify("pw2", h2) == 1, "bcrypt");
	CHECK(fwd_auth_verify("pw3", h3) == 1, "yescrypt");
	CHECK(fwd_auth_verify("pw1 ", h1) == 0 && fwd_auth_verify("", h2) == 0, "wrong");
	CHECK(fwd_auth_verify("pw1", NULL) == 0, "unknown user");
	CHECK(fwd_auth_verify("pw1", "$6$") == 0 && fwd_auth_verify("x", "garbage") == 0, "bad hash");
	END_CASE();
	free(h1);
	free(h2);
	free(h3);
}

static void test_basic(void)
{
	char u[FWD_AUTH_USER_MAX + 1], p[FWD_AUTH_PASS_MAX + 1];
	static const struct { const char *in; int rc; const char *user, *pass; } t[] = {
		{ "Basic YWxpY2U6c2VjcmV0", 0, "alice", "secret" },
		{ "basic   YWxpY2U6c2VjcmV0  ", 0, "alice", "secret" },
		{ "BASIC YWxpY2U6czpl", 0, "alice", "s:e" },               /* alice:s:e */
		{ "Basic YWxpY2U6", 0, "alice", "" },                      /* alice: */
		{ "Basic YQ==", -1, NULL, NULL },                          /* no colon */
		{ "Basic OnB3", -1, NULL, NULL },                          /* empty user */
		{ "Basic YWxpY2U6c2VjcmV0=", -1, NULL, NULL },             /* bad length */
		{ "Basic YWxp=2U6", -1, NULL, NULL },                      /* '=' inside */
		{ "Basic !!!!", -1, NULL, NULL },
		{ "Bearer YWxpY2U6c2VjcmV0", -1, NULL, NULL },
		{ "Basic", -1, NULL, NULL },
		{ "Basic ", -1, NULL, NULL },
		{ "BasicYWxpY2U6c2VjcmV0", -1, NULL, NULL },
		{ "Basic AWE6Yg==", -1, NULL, NULL },                      /* \x01a:b control in user */
	};

	BEGIN_CASE("Basic credentials parser");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = fwd_auth_parse_basic(t[i].in, strlen(t[i].in), u, p);
		CHECK(rc == t[i].rc, "%s: rc %d", t[i].in, rc);
		if (rc == 0 && t[i].rc == 0)
			CHECK(strcmp(u, t[i].user) == 0 && strcmp(p, t[i].pass) == 0, "%s: %s/%s", t[i].in, u, p);
	}
	END_CASE();
}

static void test_cache(void)
{
	struct fwd_auth_cache *c = fwd_auth_cache_new(16, 10.0);
	char user[32];

	BEGIN_CASE("cache: put, check, ttl, forget, eviction");
	CHECK(c != NULL, "made");
	CHECK(!fwd_auth_cache_check(c, "alice", "pw", 100), "empty");
	fwd_auth_cache_put(c, "alice", "pw", 100);
	CHECK(fwd_auth_cache_check(c, "alice", "pw", 105), "hit");
	CHECK(!fwd_auth_cache_check(c, "alice", "pw2", 105), "other password");
	CHECK(!fwd_auth_cache_check(c, "alic", "epw", 105), "user/password boundary");
	CHECK(!fwd_auth_cache_check(c, "bob", "pw", 105), "other user");
	CHECK(!fwd_auth_cache_check(c, "alice", "pw", 110.5), "expired");
	CHECK(!fwd_auth_cache_check(c, "alice", "pw", 105), "expired entry dropped");
	fwd_auth_cache_put(c, "alice", "pw", 200);
	fwd_auth_cache_put(c, "bob", "pw", 200);
	fwd_auth_cache_forget(c, "alice");
	CHECK(!fwd_auth_cache_check(c, "alice", "pw", 201) && fwd_auth_cache_check(c, "bob", "pw", 201),
	    "forget one user");
	/* many users in a tiny table: bounded, the latest are there */
	for (int i = 0; i < 200; i++) {
		snprintf(user, sizeof user, "u%d", i);
		fwd_auth_cache_put(c, user, "pw", 300 + i * 0.001);
	}
	CHECK(fwd_auth_cache_check(c, "u199", "pw", 301), "latest kept");
	fwd_auth_cache_free(c);
	c = fwd_auth_cache_new(16, 0);
	fwd_auth_cache_put(c, "a", "b", 1);
	CHECK(!fwd_auth_cache_check(c, "a", "b", 1), "ttl 0 = no cache");
	fwd_auth_cache_free(c);
	END_CASE();
}

static void test_backoff(void)
{
	struct fwd_auth_backoff *b = fwd_auth_backoff_new(64);
	struct sockaddr_in a = { .sin_family = AF_INET }, o = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	unsigned n;
	double d;

	inet_pton(AF_INET, "10.0.0.1", &a.sin_addr);
	inet_pton(AF_INET, "10.0.0.2", &o.sin_addr);
	inet_pton(AF_INET6, "::a00:1", &v6.sin6_addr);
	BEGIN_CASE("backoff: free failures, doubling, cap, reset");
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&a, 0) == 0, "clean");
	d = fwd_auth_backoff_fail(b, (struct sockaddr *)&a, 10, &n);
	CHECK(d == 0 && n == 1, "1st free");
	d = fwd_auth_backoff_fail(b, (struct sockaddr *)&a, 11, &n);
	CHECK(d == 0 && n == 2, "2nd free");
	d = fwd_auth_backoff_fail(b, (struct sockaddr *)&a, 12, &n);
	CHECK(d == 1 && n == 3, "3rd: 1 s (%g)", d);
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&a, 12.5) == 0.5, "waits");
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&o, 12.5) == 0, "other client unaffected");
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&v6, 12.5) == 0, "v6 is another key");
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&a, 13) == 0, "over");
	d = fwd_auth_backoff_fail(b, (struct sockaddr *)&a, 13, &n);
	CHECK(d == 2, "4th: 2 s");
	for (int i = 0; i < 20; i++)
		d = fwd_auth_backoff_fail(b, (struct sockaddr *)&a, 14, &n);
	CHECK(d == FWD_AUTH_MAX_DELAY, "capped: %g", d);
	fwd_auth_backoff_ok(b, (struct sockaddr *)&a);
	CHECK(fwd_auth_backoff_wait(b, (struct sockaddr *)&a, 15) == 0, "success clears");
	fwd_auth_backoff_fail(b, (struct sockaddr *)&o, 100, &n);
	fwd_auth_backoff_fail(b, (struct sockaddr *)&o, 101, &n);
	fwd_auth_backoff_fail(b, (struct sockaddr *)&o, 101 + FWD_AUTH_FORGET_AFTER + 1, &n);
	CHECK(n == 1, "quiet period resets the count: %u", n);
	fwd_auth_backoff_free(b);
	END_CASE();
}

struct done_rec {
	pthread_mutex_t mu;
	int ok, bad, cancelled;
};
static struct done_rec rec = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 };

static void on_done(struct fwd_auth_job *j, int result)
{
	pthread_mutex_lock(&rec.mu);
	if (result == 1)
		rec.ok++;
	else if (result == 0)
		rec.bad++;
	else
		rec.cancelled++;
	pthread_mutex_unlock(&rec.mu);
	free(j);
}

static void test_pool(void)
{
	char *h = mkhash("pw", "$2y$", 8);
	struct fwd_auth_pool *p = fwd_auth_pool_new(2, 100);
	int submitted = 0;

	BEGIN_CASE("pool: verifies off-thread; free cancels the queue");
	CHECK(p != NULL && h != NULL, "made");
	for (int i = 0; i < 40; i++) {
		struct fwd_auth_job *j = calloc(1, sizeof *j);
		j->hash = h;
		snprintf(j->pass, sizeof j->pass, "%s", i % 2 ? "pw" : "nope");
		j->done = on_done;
		if (fwd_auth_pool_submit(p, j) == 0)
			submitted++;
		else
			free(j);
	}
	CHECK(submitted == 40, "queued");
	usleep(20000);
	fwd_auth_pool_free(p);
	CHECK(rec.ok + rec.bad + rec.cancelled == 40, "every job got done once: %d %d %d", rec.ok,
	    rec.bad, rec.cancelled);
	CHECK(rec.cancelled > 0, "free cancelled the queued ones (%d)", rec.cancelled);
	CHECK(rec.ok <= 20 && rec.bad <= 20, "results");
	p = fwd_auth_pool_new(1, 1);
	struct fwd_auth_job *j1 = calloc(1, sizeof *j1), *j2 = calloc(1, sizeof *j2), *j3 = calloc(1, sizeof *j3);
	j1->hash = j2->hash = j3->hash = h;
	j1->done = j2->done = j3->done = on_done;
	fwd_auth_pool_submit(p, j1);
	int r2 = fwd_auth_pool_submit(p, j2), r3 = fwd_auth_pool_submit(p, j3);
	CHECK(r2 == -1 || r3 == -1, "queue bound");
	if (r2 < 0)
		free(j2);
	if (r3 < 0)
		free(j3);
	fwd_auth_pool_free(p);
	free(h);
	END_CASE();
}

static void test_pac(void)
{
	char *dv[] = { "*.corp.example", ".intra.example", "exact.example", "10.1.2.3", "[::1]" };
	struct conf_fwd_pac pc = { .present = 1, .proxy = "gw.example:3128", .direct = { dv, 5 } };
	size_t len;
	char *s = fwd_pac_build(&pc, &len);

	BEGIN_CASE("pac: generated FindProxyForURL");
	CHECK(s != NULL && strlen(s) == len, "built");
	CHECK(strstr(s, "function FindProxyForURL(url, host) {") != NULL, "function");
	CHECK(strstr(s, "isPlainHostName(host)") != NULL, "plain names direct");
	CHECK(strstr(s, "shExpMatch(host, \"*.corp.example\")") != NULL, "wildcard");
	CHECK(strstr(s, "host == \"intra.example\" || dnsDomainIs(host, \".intra.example\")") != NULL, "dot");
	CHECK(strstr(s, "host == \"exact.example\")") != NULL, "exact");
	CHECK(strstr(s, "host == \"[::1]\" || host == \"::1\"") != NULL, "v6");
	CHECK(strstr(s, "return \"PROXY gw.example:3128; DIRECT\";\n}\n") != NULL, "fallback");
	free(s);
	char *bad[] = { "evil\"); alert(1); (\"" };
	struct conf_fwd_pac pb = { .present = 1, .proxy = "gw.example:3128", .direct = { bad, 1 } };
	CHECK(fwd_pac_build(&pb, &len) == NULL, "unsafe pattern refused");
	END_CASE();
}

static void test_block(void)
{
	struct fwd_block b = { .url = "http://x.example/<script>?a=1&b=2", .reason = "rule \"r<1>\" (deny)",
	    .request_id = "abc123", .contact = "Call <helpdesk> & co", .when = 0 };
	char buf[8192];
	size_t n;

	BEGIN_CASE("block page: html escaped, text plain");
	n = fwd_block_render(buf, sizeof buf, 1, &b);
	CHECK(n == strlen(buf), "length");
	CHECK(strstr(buf, "http://x.example/&lt;script&gt;?a=1&amp;b=2") != NULL, "url escaped");
	CHECK(strstr(buf, "<script>") == NULL, "no raw markup");
	CHECK(strstr(buf, "rule &quot;r&lt;1&gt;&quot; (deny)") != NULL, "reason escaped");
	CHECK(strstr(buf, "abc123") != NULL && strstr(buf, "Call &lt;helpdesk&gt; &amp; co") != NULL,
	    "id and contact");
	n = fwd_block_render(buf, sizeof buf, 0, &b);
	CHECK(strstr(buf, "URL: http://x.example/<script>?a=1&b=2\n") != NULL, "text url");
	CHECK(strstr(buf, "Request id: abc123\n") != NULL && strstr(buf, "Call <helpdesk> & co") != NULL,
	    "text id, contact");
	b.contact = "";
	b.reason = "line\nbreak";
	n = fwd_block_render(buf, sizeof buf, 0, &b);
	CHECK(strstr(buf, "line?break") != NULL, "control characters neutralised");
	n = fwd_block_render(buf, 40, 1, &b);
	CHECK(n < 40 && strlen(buf) == n, "cut safely");
	CHECK(fwd_block_wants_html("text/html,application/xhtml+xml;q=0.9", 38), "browser");
	CHECK(!fwd_block_wants_html("*/*", 3) && fwd_block_wants_html("application/XHTML+xml", 21),
	    "curl vs xhtml");
	END_CASE();
}

int main(void)
{
	test_db();
	test_basic();
	test_cache();
	test_backoff();
	test_pool();
	test_pac();
	test_block();
	return check_done();
}
