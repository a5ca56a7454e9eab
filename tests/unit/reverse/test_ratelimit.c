/* Unit tests for reverse/ratelimit: token buckets, refill, Retry-After,
 * separate clients and eviction when the table is full. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "reverse/ratelimit.h"

static void test_bucket(void)
{
	struct rev_rl *t = rev_rl_new(64);
	uint32_t k1 = 1, k2 = 2;
	double ra = 0;
	int pass = 0;

	BEGIN_CASE("burst then refill");
	CHECK(t != NULL, "new");
	for (int i = 0; i < 10; i++)
		pass += rev_rl_take(t, &k1, 4, 2, 5, 100.0, &ra);
	CHECK(pass == 5, "burst 5 of 10 pass: %d", pass);
	CHECK(ra > 0.49 && ra < 0.51, "retry after 1/rps: %g", ra);
	CHECK(rev_rl_take(t, &k2, 4, 2, 5, 100.0, &ra) == 1, "other client has its own bucket");
	CHECK(rev_rl_take(t, &k1, 4, 2, 5, 100.49, &ra) == 0, "not yet");
	CHECK(rev_rl_take(t, &k1, 4, 2, 5, 100.5, &ra) == 1, "one token after 0.5 s");
	CHECK(rev_rl_take(t, &k1, 4, 2, 5, 100.5, &ra) == 0, "and only one");
	pass = 0;
	for (int i = 0; i < 10; i++)
		pass += rev_rl_take(t, &k1, 4, 2, 5, 1000.0, &ra);
	CHECK(pass == 5, "refill caps at burst: %d", pass);
	CHECK(rev_rl_take(t, &k1, 4, 0, 5, 1000.0, &ra) == 1, "rps 0: off");
	END_CASE();
	rev_rl_free(t);
}

static void test_rate(void)
{
	struct rev_rl *t = rev_rl_new(64);
	uint32_t k = 7;
	int pass = 0;

	BEGIN_CASE("sustained rate");
	/* 100 requests per second for 10 s at 10 rps, burst 1: about 100 pass */
	for (int i = 0; i < 1000; i++)
		pass += rev_rl_take(t, &k, 4, 10, 1, 50.0 + i * 0.01, NULL);
	CHECK(pass >= 99 && pass <= 101, "about 100 pass: %d", pass);
	END_CASE();
	rev_rl_free(t);
}

static void test_eviction(void)
{
	struct rev_rl *t = rev_rl_new(64);
	uint32_t k;
	int ok = 1;

	BEGIN_CASE("full table evicts, never fails");
	for (k = 0; k < 10000; k++)
		ok &= rev_rl_take(t, &k, 4, 1, 1, 10.0 + k * 1e-6, NULL);
	CHECK(ok, "every new client passes its first request");
	k = 9999;
	CHECK(rev_rl_take(t, &k, 4, 1, 1, 10.02, NULL) == 0, "the latest client is still tracked");
	END_CASE();
	rev_rl_free(t);
}

/* The cluster's sync: what this node took is collected once; the other
 * nodes' takes (from the shared counter's total) are charged to the bucket;
 * a counter that expired and started again is not mistaken for a debt. */
static void test_cluster_sync(void)
{
	struct rev_rl *t = rev_rl_new(64);
	struct rev_rl_delta d[4];
	uint32_t k = 7, other = 8;
	double ra;

	for (int i = 0; i < 3; i++)
		CHECK(rev_rl_take(t, &k, 4, 0.01, 6, 100.0, &ra) == 1, "take");
	CHECK(rev_rl_collect(t, d, 4) == 1 && d[0].taken == 3 && d[0].klen == 4 && d[0].burst == 6,
	    "one bucket with 3 taken");
	CHECK(rev_rl_collect(t, d, 4) == 0, "collected once");
	/* the cluster counter is now 5: 2 were the other node's */
	CHECK(rev_rl_remote(t, &k, 4, 5, 3) == 2, "2 charged");
	CHECK(rev_rl_take(t, &k, 4, 0.01, 6, 100.0, &ra) == 1, "6 - 3 - 2 = 1 left");
	CHECK(rev_rl_take(t, &k, 4, 0.01, 6, 100.0, &ra) == 0, "then none");
	CHECK(rev_rl_collect(t, d, 4) == 1 && d[0].taken == 1, "the last take");
	CHECK(rev_rl_remote(t, &k, 4, 6, 1) == 0, "nobody else took any");
	/* the counter expired: it restarts at our 1 take plus 1 of the other node */
	CHECK(rev_rl_take(t, &k, 4, 0.01, 6, 1000.0, &ra) == 1, "refilled later");
	CHECK(rev_rl_collect(t, d, 4) == 1, "collected");
	CHECK(rev_rl_remote(t, &k, 4, 2, 1) == 1, "a restarted counter: only what is in it");
	CHECK(rev_rl_remote(t, &other, 4, 50, 0) == 0, "a client not held here: nothing to charge");
	END_CASE();
	rev_rl_free(t);
}

int main(void)
{
	test_bucket();
	test_rate();
	test_eviction();
	test_cluster_sync();
	return check_done();
}
