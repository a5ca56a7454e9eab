/*
 * Unit tests for forward/topk (Space-Saving heavy hitters): exact counts
 * while the table has room, case folding, eviction of the smallest count
 * with its error bound, the guarantee count - err <= true <= count under a
 * skewed random stream, merging tables (sums, and the bound for names a full
 * table dropped), ordering, and forward/observe's users and DLP ring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward/observe.h"
#include "forward/topk.h"

static void add(struct fwd_topk *t, const char *name, int times)
{
	for (int i = 0; i < times; i++)
		fwd_topk_add(t, name, strlen(name));
}

static const struct fwd_topk_item *find(const struct fwd_topk_item *it, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(it[i].name, name) == 0)
			return &it[i];
	return NULL;
}

static void test_exact_while_room(void)
{
	struct fwd_topk *t = calloc(1, sizeof *t);
	const struct fwd_topk *one[1] = { t };
	struct fwd_topk_item it[8];
	size_t n;

	BEGIN_CASE("exact counts while the table has room, case folded, ordered");
	add(t, "a.example", 3);
	add(t, "B.Example", 5);
	add(t, "b.example", 1);
	add(t, "c.example", 3);
	n = fwd_topk_merge(one, 1, it, 8);
	CHECK(n == 3, "n=%zu", n);
	CHECK(strcmp(it[0].name, "b.example") == 0 && it[0].count == 6 && it[0].err == 0, "%s %llu",
	    it[0].name, (unsigned long long)it[0].count);
	/* ties by name */
	CHECK(strcmp(it[1].name, "a.example") == 0 && strcmp(it[2].name, "c.example") == 0, "%s %s",
	    it[1].name, it[2].name);
	n = fwd_topk_merge(one, 1, it, 1);
	CHECK(n == 1 && strcmp(it[0].name, "b.example") == 0, "max respected");
	END_CASE();
	free(t);
}

static void test_eviction(void)
{
	struct fwd_topk *t = calloc(1, sizeof *t);
	const struct fwd_topk *one[1] = { t };
	struct fwd_topk_item it[FWD_TOPK_SLOTS];
	char name[32];
	size_t n;

	BEGIN_CASE("a full table replaces the smallest count; the error bound says so");
	for (int i = 0; i < FWD_TOPK_SLOTS; i++) {
		snprintf(name, sizeof name, "n%d.test", i);
		add(t, name, i == 7 ? 1 : 2);   /* n7 has the smallest count */
	}
	add(t, "new.test", 1);
	n = fwd_topk_merge(one, 1, it, FWD_TOPK_SLOTS);
	CHECK(n == FWD_TOPK_SLOTS, "n=%zu", n);
	CHECK(find(it, n, "n7.test") == NULL, "n7 evicted");
	const struct fwd_topk_item *x = find(it, n, "new.test");
	CHECK(x != NULL && x->count == 2 && x->err == 1, "new: %llu/%llu", x ? (unsigned long long)x->count : 0,
	    x ? (unsigned long long)x->err : 0);
	/* a long name is cut but still counted as itself */
	char longname[300];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	add(t, longname, 10);
	n = fwd_topk_merge(one, 1, it, 1);
	CHECK(n == 1 && strlen(it[0].name) == FWD_TOPK_NAME - 1 && it[0].count >= 10, "long name");
	END_CASE();
	free(t);
}

static void test_guarantee_random(void)
{
	enum { NAMES = 2000, ADDS = 200000 };
	struct fwd_topk *t[2] = { calloc(1, sizeof(struct fwd_topk)), calloc(1, sizeof(struct fwd_topk)) };
	const struct fwd_topk *tabs[2] = { t[0], t[1] };
	unsigned *truth = calloc(NAMES, sizeof *truth);
	struct fwd_topk_item it[FWD_TOPK_SLOTS * 2];
	unsigned seed = 12345, bad = 0;
	size_t n;
	char name[32];

	BEGIN_CASE("count - err <= true <= count, heavy hitters kept (two tables merged)");
	for (int i = 0; i < ADDS; i++) {
		/* skewed: name k with probability ~ 1/(k+1) (Zipf-ish) */
		unsigned r, k;
		seed = seed * 1103515245u + 12345u;
		r = (seed >> 8) % 100000u;
		k = (unsigned)((double)NAMES * ((double)r / 100000.0) * ((double)r / 100000.0) * ((double)r / 100000.0));
		if (k >= NAMES)
			k = NAMES - 1;
		truth[k]++;
		snprintf(name, sizeof name, "d%u.example", k);
		fwd_topk_add(t[i & 1], name, strlen(name));
	}
	n = fwd_topk_merge(tabs, 2, it, FWD_TOPK_SLOTS * 2);
	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)atoi(it[i].name + 1);
		if (!(it[i].count - it[i].err <= truth[k] && truth[k] <= it[i].count))
			bad++;
	}
	CHECK(bad == 0, "%u names outside their bounds", bad);
	/* every name above N / slots (per table) must be there */
	for (unsigned k = 0; k < NAMES; k++) {
		if (truth[k] <= ADDS / FWD_TOPK_SLOTS)
			continue;
		snprintf(name, sizeof name, "d%u.example", k);
		CHECK(find(it, n, name) != NULL, "heavy %s (%u) missing", name, truth[k]);
	}
	CHECK(strcmp(it[0].name, "d0.example") == 0, "top is %s", it[0].name);
	END_CASE();
	free(truth);
	free(t[0]);
	free(t[1]);
}

static void test_merge_bounds(void)
{
	struct fwd_topk *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	const struct fwd_topk *tabs[2] = { a, b };
	struct fwd_topk_item it[4];
	char name[32];
	size_t n;

	BEGIN_CASE("merge: sums; a name missing from a full table gets that table's minimum as error");
	add(a, "both.test", 4);
	add(b, "both.test", 6);
	add(a, "only-a.test", 9);
	for (int i = 0; i < FWD_TOPK_SLOTS - 1; i++) {
		snprintf(name, sizeof name, "fill%d.test", i);
		add(b, name, 3);        /* b is full, its smallest count is 3 */
	}
	n = fwd_topk_merge(tabs, 2, it, 2);
	CHECK(n == 2, "n=%zu", n);
	CHECK(strcmp(it[0].name, "only-a.test") == 0 && it[0].count == 12 && it[0].err == 3, "%s %llu %llu",
	    it[0].name, (unsigned long long)it[0].count, (unsigned long long)it[0].err);
	CHECK(strcmp(it[1].name, "both.test") == 0 && it[1].count == 10 && it[1].err == 0, "%s %llu %llu",
	    it[1].name, (unsigned long long)it[1].count, (unsigned long long)it[1].err);
	CHECK(fwd_topk_merge(tabs, 0, it, 4) == 0, "no tables");
	END_CASE();
	free(a);
	free(b);
}

static void test_observe(void)
{
	struct fwd_topk_item it[4];
	struct fwd_obs_user u[4];
	struct fwd_obs_dlp e, out[3];
	uint64_t total = 0;
	size_t n;

	BEGIN_CASE("observe: per-worker tables merged; users merged across workers; DLP ring newest first");
	fwd_obs_request(0, FWD_OBS_ALLOWED, "a.test", 6, NULL, "10.0.0.1", 0);
	fwd_obs_request(1, FWD_OBS_ALLOWED, "A.TEST", 6, "alice", "10.0.0.2", 100);
	fwd_obs_request(1, FWD_OBS_BLOCKED, "bad.test", 8, "alice", "10.0.0.2", 101);
	fwd_obs_request(0, 0, NULL, 0, "alice", "10.0.0.1", 102);
	fwd_obs_request(0, 0, NULL, 0, "bob", "10.0.0.3", 99);
	fwd_obs_request(-1, FWD_OBS_ALLOWED, "x.test", 6, NULL, "10.0.0.1", 0);   /* no such worker */
	n = fwd_obs_top(FWD_OBS_ALLOWED, it, 4);
	CHECK(n == 1 && strcmp(it[0].name, "a.test") == 0 && it[0].count == 2, "allowed %zu", n);
	n = fwd_obs_top(FWD_OBS_BLOCKED, it, 4);
	CHECK(n == 1 && strcmp(it[0].name, "bad.test") == 0 && it[0].count == 1, "blocked %zu", n);
	n = fwd_obs_users(u, 4);
	CHECK(n == 2 && strcmp(u[0].name, "alice") == 0 && u[0].requests == 3 && u[0].nclients == 2 &&
	    u[0].first_seen == 100 && u[0].last_seen == 102, "alice: n=%zu req=%llu", n,
	    (unsigned long long)u[0].requests);
	CHECK(n == 2 && strcmp(u[1].name, "bob") == 0 && u[1].requests == 1, "bob");
	for (int i = 0; i < FWD_OBS_DLP + 2; i++) {
		memset(&e, 0, sizeof e);
		snprintf(e.request_id, sizeof e.request_id, "id%d", i);
		fwd_obs_dlp_push(&e);
	}
	n = fwd_obs_dlp_recent(out, 3, &total);
	CHECK(n == 3 && total == FWD_OBS_DLP + 2 && strcmp(out[0].request_id, "id257") == 0 &&
	    strcmp(out[2].request_id, "id255") == 0, "dlp ring %zu %s", n, out[0].request_id);
	END_CASE();
}

int main(void)
{
	test_exact_while_room();
	test_eviction();
	test_guarantee_random();
	test_merge_bounds();
	test_observe();
	return check_done();
}
