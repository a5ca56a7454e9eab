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
	CHECK(fwd_auth_db_dummy(db) == NULL, "no users, no dummy");
	fwd_auth_db_free(db);
	END_CASE();

	BEGIN_CASE("db: unknown users are checked against the most common method and cost");
	char *b5a = mkhash("x", "$2y$", 5), *b5b = mkhash("y", "$2y$", 5), *b6 = mkhash("z", "$2y$", 6);
	snprintf(users, sizeof users, "a:%s\nb:%s\nc:%s\nd:%s\ne:%s\n", h1, b6, b5a, h3, b5b);
	db = fwd_auth_db_parse(users, strlen(users), NULL, 0, err, sizeof err);
	CHECK(db != NULL && fwd_auth_db_dummy(db) != NULL && strncmp(fwd_auth_db_dummy(db), "$2y$05$", 7) == 0,
	    "bcrypt cost 5 (2 of 5 users): %s", db ? fwd_auth_db_dummy(db) : "-");
	fwd_auth_db_free(db);
	free(b5a);
	free(b5b);
	free(b6);
	END_CASE();

	BEGIN_CASE("verify: bcrypt, sha512, yescrypt, wrong, unknown");
	CHECK(fwd_auth_verify("pw1", h1) == 1, "sha512");
	CHECK(fwd_auth_verify("pw2", h2) == 1, "bcrypt");
	CHECK(fwd_auth_verify("pw3", h3) == 1, "yescrypt");
	CHECK(fwd_auth_verify("pw1 ", h1) == 0 && fwd_auth_verify("", h2) == 0, "wrong");
	CHECK(fwd_auth_verify("pw1", NULL) == 0, "unknown user");
	CHECK(fwd_auth_verify("pw1", "$6$") == 0 && fwd_auth_verify("x", "garbage") == 0, "bad hash");
	END_CASE();

	BEGIN_CASE("verify: htpasswd $apr1$ (Apache MD5) and {SHA}; their dummy");
	/* vectors: Apache's documented example, and openssl passwd -apr1 */
	CHECK(fwd_auth_verify("myPassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/") == 1, "apr1 example");
	CHECK(fwd_auth_verify("", "$apr1$12345678$sHuPAw7VA9xjRbJz7zKV7/") == 1, "apr1 empty password");
	CHECK(fwd_auth_verify("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "$apr1$Q1$vMAAKZrGBdnRxYpusSeoA1") == 1,
	    "apr1 40-byte password, 2-byte salt");
	CHECK(fwd_auth_verify("myPasswore", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/") == 0, "apr1 wrong");
	CHECK(fwd_auth_verify("myPassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA") == 0, "apr1 cut");
	CHECK(fwd_auth_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=") == 1, "sha");
	CHECK(fwd_auth_verify("Secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=") == 0, "sha wrong");
	snprintf(users, sizeof users, "b:$apr1$Q1$vMAAKZrGBdnRxYpusSeoA1\na:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
	    "c:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n");   /* 2 of 3 are {SHA}: one method, no salt */
	db = fwd_auth_db_parse(users, strlen(users), NULL, 0, err, sizeof err);
	CHECK(db != NULL && fwd_auth_db_nusers(db) == 3 && fwd_auth_db_skipped(db, 0, NULL) == 0, "all 3 kept");
	CHECK(db != NULL && fwd_auth_db_dummy(db) != NULL && strncmp(fwd_auth_db_dummy(db), "{SHA}", 5) == 0,
	    "dummy of a mostly-{SHA} file is {SHA}: %s", db ? fwd_auth_db_dummy(db) : "-");
	CHECK(db != NULL && fwd_auth_verify("secret", fwd_auth_db_dummy(db)) >= 0, "dummy verifies");
	fwd_auth_db_free(db);
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

/* One whole check of user from c at t: begin, then end with ok; the end's
 * delay (or -1 if not GO), its count in *n. */
static double attempt(struct fwd_auth_backoff *b, const void *c, const char *user, double t, int ok,
    unsigned *n)
{
	double w;

	if (fwd_auth_backoff_begin(b, (const struct sockaddr *)c, user, t, &w) != FWD_AUTH_GO)
		return -1;
	return fwd_auth_backoff_end(b, (const struct sockaddr *)c, user, ok, t, n);
}

static struct sockaddr_in v4(unsigned host)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	a.sin_addr.s_addr = htonl(0x0a000000u | host);   /* 10.x.y.z */
	return a;
}

static void test_backoff(void)
{
	struct fwd_auth_backoff *b = fwd_auth_backoff_new(64);
	struct sockaddr_in a = v4(1), o = v4(2);
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 }, v6b = { .sin6_family = AF_INET6 };
	unsigned n;
	double d, w;

	inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
	inet_pton(AF_INET6, "2001:db8::2", &v6b.sin6_addr);
	BEGIN_CASE("backoff: free failures, doubling, cap, reset");
	d = attempt(b, &a, "u", 10, 0, &n);
	CHECK(d == 0 && n == 1, "1st free");
	d = attempt(b, &a, "u", 11, 0, &n);
	CHECK(d == 0 && n == 2, "2nd free");
	d = attempt(b, &a, "u", 12, 0, &n);
	CHECK(d == 1 && n == 3, "3rd: 1 s (%g)", d);
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&a, "u", 12.5, &w) == FWD_AUTH_WAIT && w == 0.5,
	    "waits");
	CHECK(attempt(b, &o, "u", 12.5, 0, &n) == 0 && n == 1, "other client unaffected");
	d = attempt(b, &a, "u", 13, 0, &n);
	CHECK(d == 2 && n == 4, "4th: 2 s");
	for (double t = 15; t < 1000; t += 61)
		d = attempt(b, &a, "u", t, 0, &n);
	CHECK(d == FWD_AUTH_MAX_DELAY, "capped: %g", d);
	CHECK(attempt(b, &a, "u", 2000, 1, &n) == 0 && n == 0, "success refunds and clears");
	CHECK(attempt(b, &a, "u", 2001, 0, &n) == 0 && n == 1, "counting again from 1");
	attempt(b, &o, "u", 3000, 0, &n);
	attempt(b, &o, "u", 3001, 0, &n);
	attempt(b, &o, "u", 3001 + FWD_AUTH_FORGET_AFTER + 1, 0, &n);
	CHECK(n == 1, "quiet period resets the count: %u", n);
	/* IPv6 clients are keyed by their /64 */
	attempt(b, &v6, "u", 4000, 0, &n);
	attempt(b, &v6b, "u", 4000, 0, &n);
	CHECK(n == 2, "same /64 counts together: %u", n);
	fwd_auth_backoff_free(b);
	END_CASE();

	BEGIN_CASE("backoff: charged before the check, bounded in flight per client and user");
	b = fwd_auth_backoff_new(64);
	struct sockaddr_in c1 = v4(11), c2 = v4(12), c3 = v4(13);
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c1, "x", 1, &w) == FWD_AUTH_GO, "1st");
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c1, "y", 1, &w) == FWD_AUTH_GO, "2nd");
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c1, "z", 1, &w) == FWD_AUTH_BUSY, "3rd in flight");
	fwd_auth_backoff_end(b, (struct sockaddr *)&c1, "x", 0, 1, &n);
	CHECK(n == 2, "both charged at begin: %u", n);
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c1, "x", 1, &w) == FWD_AUTH_GO, "3rd");
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c1, "w", 1, &w) == FWD_AUTH_WAIT && w == 1,
	    "the 3rd charge started the backoff before any end");
	fwd_auth_backoff_end(b, (struct sockaddr *)&c1, "y", 1, 1, &n);
	fwd_auth_backoff_end(b, (struct sockaddr *)&c1, "x", 0, 1, &n);
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&c2, "root", 2, &w) == FWD_AUTH_GO &&
	    fwd_auth_backoff_begin(b, (struct sockaddr *)&c3, "root", 2, &w) == FWD_AUTH_GO, "two as root");
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&o, "root", 2, &w) == FWD_AUTH_BUSY,
	    "a third as root from elsewhere waits");
	fwd_auth_backoff_end(b, (struct sockaddr *)&c2, "root", 0, 2, NULL);
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&o, "root", 2, &w) == FWD_AUTH_GO, "then it may");
	fwd_auth_backoff_free(b);
	END_CASE();

	BEGIN_CASE("backoff: other addresses cannot flush a record");
	b = fwd_auth_backoff_new(16);
	struct sockaddr_in victim = v4(99);
	for (int i = 0; i < 3; i++)
		attempt(b, &victim, "v", 10, 0, &n);
	int busy = 0;
	for (unsigned i = 0; i < 2000; i++) {
		struct sockaddr_in x = v4(1000 + i);
		for (int k = 0; k < 3; k++)   /* each makes its own record live */
			busy += attempt(b, &x, "v", 10.5, 0, &n) < 0;
	}
	CHECK(fwd_auth_backoff_begin(b, (struct sockaddr *)&victim, "v", 10.6, &w) == FWD_AUTH_WAIT,
	    "the victim is still backing off");
	CHECK(busy > 0, "a full table refuses new addresses (%d)", busy);
	CHECK(attempt(b, &victim, "v", 12, 1, &n) == 0, "its own backoff over: checked");
	fwd_auth_backoff_free(b);
	END_CASE();

	BEGIN_CASE("backoff shared by a pair: same keys on both nodes, counts and resets carried");
	struct fwd_auth_backoff *na = fwd_auth_backoff_new(64), *nb = fwd_auth_backoff_new(64);
	struct fwd_auth_backoff *nc = fwd_auth_backoff_new(64);
	struct fwd_auth_bo_delta dl[8], dc[8];
	fwd_auth_backoff_share(na, "secret-of-the-pair", "gh:");
	fwd_auth_backoff_share(nb, "secret-of-the-pair", "gh:");
	fwd_auth_backoff_share(nc, "another-secret!!", "gh:");
	CHECK(fwd_auth_backoff_collect(b = fwd_auth_backoff_new(16), dl, 8) == 0, "unshared: nothing to collect");
	fwd_auth_backoff_free(b);
	b = fwd_auth_backoff_new(16);
	fwd_auth_backoff_share(b, "", "gatehouse:");       /* no cluster.token_file: a fixed namespace */
	attempt(b, &a, "u", 5, 0, &n);
	CHECK(fwd_auth_backoff_collect(b, dl, 8) == 1 && dl[0].added == 1, "shared without a secret too");
	fwd_auth_backoff_free(b);
	attempt(na, &a, "u", 10, 0, &n);
	attempt(na, &a, "u", 10, 0, &n);
	attempt(nc, &a, "u", 10, 0, &n);
	CHECK(fwd_auth_backoff_collect(na, dl, 8) == 1 && dl[0].added == 2 && !dl[0].reset, "two failures out");
	CHECK(fwd_auth_backoff_collect(na, dl + 1, 7) == 0, "and only once");
	CHECK(fwd_auth_backoff_collect(nc, dc, 8) == 1 && memcmp(dc[0].key, dl[0].key, 16) != 0,
	    "another secret, another key");
	/* the pair's count (2 here + 1 elsewhere) reaches B, which never saw the client */
	CHECK(fwd_auth_backoff_remote(nb, dl[0].key, 3, 0, 20) == 1, "B raised");
	CHECK(fwd_auth_backoff_begin(nb, (struct sockaddr *)&a, "u", 20.5, &w) == FWD_AUTH_WAIT && w == 0.5,
	    "B refuses the client unchecked (%g)", w);
	CHECK(fwd_auth_backoff_remote(nb, dl[0].key, 2, 0, 20.6) == 0, "a lower count changes nothing");
	CHECK(fwd_auth_backoff_begin(nb, (struct sockaddr *)&o, "u", 20.6, &w) == FWD_AUTH_GO, "others pass");
	fwd_auth_backoff_end(nb, (struct sockaddr *)&o, "u", 0, 20.6, NULL);
	/* B's 4th failure: 2 s, and it is collected as one added */
	d = attempt(nb, &a, "u", 22, 0, &n);
	CHECK(d == 2 && n == 4, "B counts on from the pair's count (%g, %u)", d, n);
	/* a success on A after it knew of failures: reset out, and B clears */
	fwd_auth_backoff_remote(na, dl[0].key, 4, 0, 22);
	CHECK(attempt(na, &a, "u", 30, 1, &n) == 0 && n == 0, "A: success");
	CHECK(fwd_auth_backoff_collect(na, dl, 8) == 1 && dl[0].reset && dl[0].added == 0, "reset out");
	fwd_auth_backoff_collect(nb, dc, 8);
	CHECK(fwd_auth_backoff_remote(nb, dl[0].key, 0, 1, 30) == 1, "B cleared");
	CHECK(attempt(nb, &a, "u", 30.1, 0, &n) == 0 && n == 1, "B counts from 1 again (%u)", n);
	/* a success nobody else knew of needs no message */
	attempt(nc, &o, "u", 40, 1, &n);
	CHECK(fwd_auth_backoff_collect(nc, dc, 8) == 0, "a plain success stays local");
	fwd_auth_backoff_free(na);
	fwd_auth_backoff_free(nb);
	fwd_auth_backoff_free(nc);
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
	END_CASE();

	BEGIN_CASE("pool: identical checks join the one in flight");
	char *slow = mkhash("pw", "$2y$", 10);
	memset(&rec, 0, sizeof rec);
	pthread_mutex_init(&rec.mu, NULL);
	p = fwd_auth_pool_new(1, 100);
	struct fwd_auth_job *js[4];
	int joined = 0;
	for (int i = 0; i < 4; i++) {
		js[i] = calloc(1, sizeof *js[i]);
		js[i]->hash = i < 3 ? slow : h;
		snprintf(js[i]->pass, sizeof js[i]->pass, "%s", i == 2 ? "other" : "pw");
		js[i]->done = on_done;
	}
	CHECK(fwd_auth_pool_submit(p, js[0]) == 0, "first queued");
	joined += fwd_auth_pool_join(p, js[1]);
	CHECK(joined == 1, "same hash and password: joined");
	CHECK(fwd_auth_pool_join(p, js[2]) == 0 && fwd_auth_pool_submit(p, js[2]) == 0, "other password: own check");
	CHECK(fwd_auth_pool_join(p, js[3]) == 0 && fwd_auth_pool_submit(p, js[3]) == 0, "other hash: own check");
	for (int i = 0; i < 500 && rec.ok + rec.bad + rec.cancelled < 4; i++)
		usleep(10000);
	CHECK(rec.ok == 3 && rec.bad == 1, "every waiter got its answer: ok %d bad %d", rec.ok, rec.bad);
	fwd_auth_pool_free(p);
	free(slow);
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
