/*
 * Unit tests for reverse/balance: smooth weighted round robin sequence and
 * distribution, least_conn and random_two preferring idle servers, ip_hash
 * stability, weight shares and the consistent-hash remap bound, backups,
 * exclusion for retries, all-down, slow-start factors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "reverse/balance.h"

#define MAXS 16

static struct conf_rev_server srv[MAXS];
static char names[MAXS][48];

static struct conf_rev_upstream mk_up(enum conf_balance algo, const int64_t *weights, const int *backup, size_t n)
{
	struct conf_rev_upstream up;
	memset(&up, 0, sizeof(up));
	memset(srv, 0, sizeof(srv));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "10.0.0.%zu:8080", i + 1);
		srv[i].addr.text = names[i];
		srv[i].weight = weights ? weights[i] : 1;
		srv[i].backup = backup ? backup[i] : 0;
	}
	up.name = "app";
	up.balance = algo;
	up.servers = srv;
	up.nservers = n;
	return up;
}

static void client_v4(struct sockaddr_in *sa, uint32_t i)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(0x0a000000u + i * 2654435761u % 0xffffffu);
	sa->sin_port = htons((uint16_t)(1024 + i));
}

/* Count picks into cnt[] over n rounds. */
static void run(struct rev_balancer *b, const struct rev_pick_ctx *ctx, int rounds, int *cnt)
{
	for (int i = 0; i < rounds; i++) {
		int s = rev_balance_pick(b, ctx);
		if (s >= 0)
			cnt[s]++;
		else
			cnt[MAXS - 1]++;     /* -1 bucket */
	}
}

static int within(double got, double want, double tol)
{
	return got >= want - tol && got <= want + tol;
}

static void test_rr(void)
{
	BEGIN_CASE("smooth round robin 5,1,1 sequence");
	int64_t w[] = { 5, 1, 1 };
	struct conf_rev_upstream up = mk_up(CONF_BAL_ROUND_ROBIN, w, NULL, 3);
	struct rev_balancer *b = rev_balancer_new(&up, 1);
	static const int want[] = { 0, 0, 1, 0, 2, 0, 0 };
	char got[64] = "";
	int ok = 1;
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 7; i++) {
			int s = rev_balance_pick(b, NULL);
			if (s != want[i])
				ok = 0;
			if (round == 0)
				got[i] = (char)('a' + s);
		}
	CHECK(ok, "first round %s, want aabacaa", got);
	CHECK(rev_balancer_nservers(b) == 3, "nservers");
	rev_balancer_free(b);
	END_CASE();

	BEGIN_CASE("round robin distribution 3,2,1,0-weights");
	int64_t w2[] = { 3, 2, 1, 4 };
	up = mk_up(CONF_BAL_ROUND_ROBIN, w2, NULL, 4);
	b = rev_balancer_new(&up, 1);
	int cnt[MAXS] = { 0 };
	run(b, NULL, 1000, cnt);
	CHECK(cnt[0] == 300 && cnt[1] == 200 && cnt[2] == 100 && cnt[3] == 400, "%d %d %d %d", cnt[0], cnt[1],
	    cnt[2], cnt[3]);
	END_CASE();

	BEGIN_CASE("round robin skips unusable and excluded");
	uint64_t usable[1] = { 0 }, excl[1] = { 0 };
	rev_bits_set(usable, 0);
	rev_bits_set(usable, 2);
	rev_bits_set(usable, 3);
	struct rev_pick_ctx ctx = { .usable = usable };
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 800, cnt);
	CHECK(cnt[1] == 0 && cnt[0] == 300 && cnt[2] == 100 && cnt[3] == 400, "%d %d %d %d", cnt[0], cnt[1],
	    cnt[2], cnt[3]);
	rev_bits_set(excl, 3);
	ctx.excluded = excl;
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 400, cnt);
	CHECK(cnt[1] == 0 && cnt[3] == 0 && cnt[0] == 300 && cnt[2] == 100, "%d %d %d %d", cnt[0], cnt[1],
	    cnt[2], cnt[3]);
	rev_bits_clear(usable, 0);
	rev_bits_clear(usable, 2);
	CHECK(rev_balance_pick(b, &ctx) == -1, "only usable one is excluded");
	rev_balancer_free(b);
	END_CASE();

	BEGIN_CASE("slow start factor scales weight");
	int64_t w3[] = { 1, 1 };
	up = mk_up(CONF_BAL_ROUND_ROBIN, w3, NULL, 2);
	b = rev_balancer_new(&up, 1);
	double f[2] = { 1.0, 0.25 };
	ctx = (struct rev_pick_ctx){ .weight_factor = f };
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 1000, cnt);
	CHECK(cnt[0] == 800 && cnt[1] == 200, "%d %d", cnt[0], cnt[1]);
	f[1] = 0.0;
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 1000, cnt);
	CHECK(cnt[1] <= 1, "factor 0: (almost) nothing: %d", cnt[1]);
	uint64_t only1[1] = { 2 };
	ctx.usable = only1;
	CHECK(rev_balance_pick(b, &ctx) == 1, "factor 0 but the only server: still picked");
	rev_balancer_free(b);
	END_CASE();
}

static void test_backup(void)
{
	enum conf_balance algos[] = { CONF_BAL_ROUND_ROBIN, CONF_BAL_LEAST_CONN, CONF_BAL_IP_HASH,
		CONF_BAL_RANDOM_TWO };
	for (size_t a = 0; a < 4; a++) {
		BEGIN_CASE("backup only when primaries are down / all down");
		int64_t w[] = { 1, 1, 1, 1 };
		int bk[] = { 0, 1, 0, 1 };
		struct conf_rev_upstream up = mk_up(algos[a], w, bk, 4);
		struct rev_balancer *b = rev_balancer_new(&up, 7);
		uint64_t rng = 42, usable[1] = { 0xf };
		struct sockaddr_in cl;
		int cnt[MAXS] = { 0 };
		for (uint32_t i = 0; i < 400; i++) {
			client_v4(&cl, i);
			struct rev_pick_ctx ctx = { .usable = usable, .rng = &rng, .client = (struct sockaddr *)&cl };
			int s = rev_balance_pick(b, &ctx);
			cnt[s < 0 ? MAXS - 1 : s]++;
		}
		CHECK(cnt[1] == 0 && cnt[3] == 0 && cnt[0] > 100 && cnt[2] > 100, "algo %zu: %d %d %d %d", a,
		    cnt[0], cnt[1], cnt[2], cnt[3]);
		usable[0] = 0xf & ~(1u << 0) & ~(1u << 2);   /* primaries down */
		memset(cnt, 0, sizeof(cnt));
		for (uint32_t i = 0; i < 400; i++) {
			client_v4(&cl, i);
			struct rev_pick_ctx ctx = { .usable = usable, .rng = &rng, .client = (struct sockaddr *)&cl };
			int s = rev_balance_pick(b, &ctx);
			cnt[s < 0 ? MAXS - 1 : s]++;
		}
		CHECK(cnt[0] == 0 && cnt[2] == 0 && cnt[1] > 100 && cnt[3] > 100, "algo %zu backups: %d %d %d %d",
		    a, cnt[0], cnt[1], cnt[2], cnt[3]);
		/* one primary up again: backups idle */
		rev_bits_set(usable, 2);
		struct rev_pick_ctx ctx = { .usable = usable, .rng = &rng, .client = (struct sockaddr *)&cl };
		CHECK(rev_balance_pick(b, &ctx) == 2, "algo %zu: primary back", a);
		/* primary excluded (retry): fall to a backup */
		uint64_t excl[1] = { 1u << 2 };
		ctx.excluded = excl;
		int s = rev_balance_pick(b, &ctx);
		CHECK(s == 1 || s == 3, "algo %zu: retry goes to backup: %d", a, s);
		usable[0] = 0;
		CHECK(rev_balance_pick(b, &ctx) == -1, "algo %zu: all down", a);
		ctx.usable = NULL;
		excl[0] = 0xf;
		CHECK(rev_balance_pick(b, &ctx) == -1, "algo %zu: all excluded", a);
		rev_balancer_free(b);
		END_CASE();
	}
}

static void test_least_conn(void)
{
	BEGIN_CASE("least_conn prefers idle, weighted");
	int64_t w[] = { 1, 1, 1 };
	struct conf_rev_upstream up = mk_up(CONF_BAL_LEAST_CONN, w, NULL, 3);
	struct rev_balancer *b = rev_balancer_new(&up, 1);
	uint32_t infl[3] = { 5, 0, 3 };
	struct rev_pick_ctx ctx = { .in_flight = infl };
	CHECK(rev_balance_pick(b, &ctx) == 1, "idle one");
	/* simulate: each pick adds a request in flight */
	for (int i = 0; i < 8; i++) {
		int s = rev_balance_pick(b, &ctx);
		infl[s]++;
	}
	/* 16 in flight over 3 servers, never taking from the busy one first */
	CHECK(infl[0] >= 5 && infl[0] <= 6 && infl[1] >= 5 && infl[1] <= 6 && infl[2] >= 5 && infl[2] <= 6,
	    "levelled: %u %u %u", infl[0], infl[1], infl[2]);
	rev_balancer_free(b);

	int64_t w2[] = { 3, 1 };
	up = mk_up(CONF_BAL_LEAST_CONN, w2, NULL, 2);
	b = rev_balancer_new(&up, 1);
	uint32_t in2[2] = { 0, 0 };
	ctx.in_flight = in2;
	for (int i = 0; i < 40; i++)
		in2[rev_balance_pick(b, &ctx)]++;
	CHECK(in2[0] == 30 && in2[1] == 10, "weighted in-flight 3:1: %u %u", in2[0], in2[1]);
	in2[0] = 3;
	in2[1] = 2;   /* ratios 1.0 vs 2.0 */
	CHECK(rev_balance_pick(b, &ctx) == 0, "lower in_flight/weight");
	END_CASE();

	BEGIN_CASE("least_conn ties: weighted round robin");
	uint32_t zero[2] = { 0, 0 };
	ctx.in_flight = zero;
	int cnt[MAXS] = { 0 };
	run(b, &ctx, 400, cnt);
	CHECK(cnt[0] == 300 && cnt[1] == 100, "all idle follows weights: %d %d", cnt[0], cnt[1]);
	rev_balancer_free(b);
	END_CASE();
}

static void test_random_two(void)
{
	BEGIN_CASE("random_two prefers idle");
	int64_t w[] = { 1, 1, 1, 1, 1 };
	struct conf_rev_upstream up = mk_up(CONF_BAL_RANDOM_TWO, w, NULL, 5);
	struct rev_balancer *b = rev_balancer_new(&up, 1);
	uint64_t rng = 12345;
	uint32_t infl[5] = { 10, 10, 0, 10, 10 };
	struct rev_pick_ctx ctx = { .in_flight = infl, .rng = &rng };
	int cnt[MAXS] = { 0 };
	run(b, &ctx, 10000, cnt);
	/* the idle server wins whenever it is one of the two: 1 - C(4,2)/C(5,2) = 40% */
	CHECK(within(cnt[2] / 10000.0, 0.40, 0.03), "idle share %d", cnt[2]);
	/* the busiest server is never chosen when anything else is drawn with it */
	infl[0] = 100;
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 10000, cnt);
	CHECK(cnt[0] == 0, "busiest never: %d", cnt[0]);
	/* dynamic: picks add load; the spread stays even */
	uint32_t dyn[5] = { 0 };
	ctx.in_flight = dyn;
	for (int i = 0; i < 1000; i++)
		dyn[rev_balance_pick(b, &ctx)]++;
	uint32_t mn = dyn[0], mx = dyn[0];
	for (int i = 1; i < 5; i++) {
		mn = dyn[i] < mn ? dyn[i] : mn;
		mx = dyn[i] > mx ? dyn[i] : mx;
	}
	CHECK(mx - mn <= 3, "power of two keeps load within a few: min %u max %u", mn, mx);
	END_CASE();

	BEGIN_CASE("random_two deterministic with caller rng");
	uint64_t r1 = 99, r2 = 99;
	uint32_t z[5] = { 0 };
	int same = 1;
	for (int i = 0; i < 100; i++) {
		struct rev_pick_ctx c1 = { .in_flight = z, .rng = &r1 }, c2 = { .in_flight = z, .rng = &r2 };
		if (rev_balance_pick(b, &c1) != rev_balance_pick(b, &c2))
			same = 0;
	}
	CHECK(same, "same seed, same picks");
	rev_balancer_free(b);
	END_CASE();

	BEGIN_CASE("random_two weights when idle");
	int64_t w2[] = { 4, 1 };
	up = mk_up(CONF_BAL_RANDOM_TWO, w2, NULL, 2);
	b = rev_balancer_new(&up, 1);
	/* two servers, both always drawn: ties go to the first drawn (weighted 4:1) */
	memset(cnt, 0, sizeof(cnt));
	ctx = (struct rev_pick_ctx){ .rng = &rng };
	run(b, &ctx, 10000, cnt);
	CHECK(within(cnt[0] / 10000.0, 0.8, 0.03), "4:1 -> %d", cnt[0]);
	rev_balancer_free(b);
	int64_t w3[] = { 1, 2, 3, 4 };
	up = mk_up(CONF_BAL_RANDOM_TWO, w3, NULL, 4);
	b = rev_balancer_new(&up, 1);
	memset(cnt, 0, sizeof(cnt));
	run(b, &ctx, 1, cnt);
	CHECK(cnt[MAXS - 1] == 0, "picks something");
	/* own rng when ctx has none */
	CHECK(rev_balance_pick(b, NULL) >= 0, "NULL ctx");
	rev_balancer_free(b);
	END_CASE();
}

static int pick_for(struct rev_balancer *b, const struct sockaddr *sa, const uint64_t *usable)
{
	struct rev_pick_ctx ctx = { .client = sa, .usable = usable };
	return rev_balance_pick(b, &ctx);
}

static void test_ip_hash(void)
{
	enum { CLIENTS = 10000 };
	static int before[CLIENTS];
	struct sockaddr_in cl;

	BEGIN_CASE("ip_hash stable per client, port ignored");
	struct conf_rev_upstream up = mk_up(CONF_BAL_IP_HASH, NULL, NULL, 5);
	struct rev_balancer *b = rev_balancer_new(&up, 1);
	int stable = 1;
	for (uint32_t i = 0; i < 1000; i++) {
		client_v4(&cl, i);
		int s = pick_for(b, (struct sockaddr *)&cl, NULL);
		cl.sin_port = htons(60000);
		for (int k = 0; k < 3; k++)
			if (pick_for(b, (struct sockaddr *)&cl, NULL) != s)
				stable = 0;
	}
	CHECK(stable, "same server every time");
	/* a second balancer (another worker) agrees */
	struct rev_balancer *b2 = rev_balancer_new(&up, 999);
	int agree = 1;
	for (uint32_t i = 0; i < 1000; i++) {
		client_v4(&cl, i);
		if (pick_for(b, (struct sockaddr *)&cl, NULL) != pick_for(b2, (struct sockaddr *)&cl, NULL))
			agree = 0;
	}
	CHECK(agree, "workers agree");
	rev_balancer_free(b2);
	END_CASE();

	BEGIN_CASE("ip_hash v4-mapped v6 = v4; v6 clients spread");
	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	int same = 1;
	for (uint32_t i = 0; i < 200; i++) {
		client_v4(&cl, i);
		s6.sin6_addr.s6_addr[10] = 0xff;
		s6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6.sin6_addr.s6_addr[12], &cl.sin_addr, 4);
		if (pick_for(b, (struct sockaddr *)&cl, NULL) != pick_for(b, (struct sockaddr *)&s6, NULL))
			same = 0;
	}
	CHECK(same, "mapped");
	int cnt[MAXS] = { 0 };
	for (uint32_t i = 0; i < 5000; i++) {
		memset(&s6.sin6_addr, 0, 16);
		s6.sin6_addr.s6_addr[0] = 0x20;
		s6.sin6_addr.s6_addr[1] = 0x01;
		memcpy(&s6.sin6_addr.s6_addr[8], &i, sizeof(i));
		cnt[pick_for(b, (struct sockaddr *)&s6, NULL)]++;
	}
	int even = 1;
	for (int i = 0; i < 5; i++)
		if (!within(cnt[i] / 5000.0, 0.2, 0.04))
			even = 0;
	CHECK(even, "v6 spread %d %d %d %d %d", cnt[0], cnt[1], cnt[2], cnt[3], cnt[4]);
	rev_balancer_free(b);
	END_CASE();

	BEGIN_CASE("ip_hash shares follow weights");
	int64_t w[] = { 1, 2, 3, 4 };
	up = mk_up(CONF_BAL_IP_HASH, w, NULL, 4);
	b = rev_balancer_new(&up, 1);
	memset(cnt, 0, sizeof(cnt));
	for (uint32_t i = 0; i < CLIENTS; i++) {
		client_v4(&cl, i);
		cnt[pick_for(b, (struct sockaddr *)&cl, NULL)]++;
	}
	int ok = 1;
	for (int i = 0; i < 4; i++)
		if (!within(cnt[i] / (double)CLIENTS, (i + 1) / 10.0, 0.02))
			ok = 0;
	CHECK(ok, "1:2:3:4 -> %d %d %d %d", cnt[0], cnt[1], cnt[2], cnt[3]);
	rev_balancer_free(b);
	END_CASE();

	static const size_t Ns[] = { 4, 5, 10 };
	for (size_t k = 0; k < 3; k++) {
		size_t n = Ns[k];
		BEGIN_CASE("ip_hash remap when one of N goes away");
		up = mk_up(CONF_BAL_IP_HASH, NULL, NULL, n);
		b = rev_balancer_new(&up, 1);
		for (uint32_t i = 0; i < CLIENTS; i++) {
			client_v4(&cl, i);
			before[i] = pick_for(b, (struct sockaddr *)&cl, NULL);
		}
		/* (a) server n-1 unusable: only its clients move */
		uint64_t usable[1] = { ((uint64_t)1 << n) - 1 };
		size_t victim = n / 2;
		rev_bits_clear(usable, victim);
		int moved = 0, wrong = 0;
		for (uint32_t i = 0; i < CLIENTS; i++) {
			client_v4(&cl, i);
			int s = pick_for(b, (struct sockaddr *)&cl, usable);
			if (s != before[i]) {
				moved++;
				if (before[i] != (int)victim)
					wrong++;
			}
		}
		CHECK(wrong == 0, "N=%zu: clients of other servers moved: %d", n, wrong);
		CHECK(moved <= CLIENTS * 1.5 / n, "N=%zu: moved %d > 1.5/N", n, moved);
		CHECK(moved >= CLIENTS * 0.5 / n, "N=%zu: moved %d suspiciously few", n, moved);
		rev_balancer_free(b);

		/* (b) the server removed from the config (a reload): same bound, since
		 * seeds come from the address text, not the position */
		up = mk_up(CONF_BAL_IP_HASH, NULL, NULL, n);
		memmove(&srv[victim], &srv[victim + 1], (n - victim - 1) * sizeof(srv[0]));
		up.nservers = n - 1;
		b = rev_balancer_new(&up, 1);
		moved = 0;
		for (uint32_t i = 0; i < CLIENTS; i++) {
			client_v4(&cl, i);
			int s = pick_for(b, (struct sockaddr *)&cl, NULL);
			int orig = s >= (int)victim ? s + 1 : s;     /* index in the old list */
			if (orig != before[i])
				moved++;
		}
		CHECK(moved <= CLIENTS * 1.5 / n, "N=%zu reload: moved %d > 1.5/N", n, moved);
		rev_balancer_free(b);
		END_CASE();
	}

	BEGIN_CASE("ip_hash without client address: round robin");
	up = mk_up(CONF_BAL_IP_HASH, NULL, NULL, 3);
	b = rev_balancer_new(&up, 1);
	memset(cnt, 0, sizeof(cnt));
	run(b, NULL, 300, cnt);
	CHECK(cnt[0] == 100 && cnt[1] == 100 && cnt[2] == 100, "%d %d %d", cnt[0], cnt[1], cnt[2]);
	rev_balancer_free(b);
	END_CASE();
}

static void test_misc(void)
{
	BEGIN_CASE("many servers (more than one mask word)");
	enum { N = 100 };
	static struct conf_rev_server many[N];
	static char nm[N][48];
	struct conf_rev_upstream up;
	memset(&up, 0, sizeof(up));
	for (int i = 0; i < N; i++) {
		snprintf(nm[i], sizeof(nm[i]), "10.1.0.%d:80", i);
		many[i].addr.text = nm[i];
		many[i].weight = 1;
	}
	up.servers = many;
	up.nservers = N;
	up.balance = CONF_BAL_ROUND_ROBIN;
	struct rev_balancer *b = rev_balancer_new(&up, 1);
	uint64_t usable[REV_BITS_WORDS(N)] = { 0 };
	rev_bits_set(usable, 70);
	rev_bits_set(usable, 99);
	struct rev_pick_ctx ctx = { .usable = usable };
	int a = rev_balance_pick(b, &ctx), c = rev_balance_pick(b, &ctx);
	CHECK((a == 70 && c == 99) || (a == 99 && c == 70), "%d %d", a, c);
	rev_balancer_free(b);
	END_CASE();

	BEGIN_CASE("bad input");
	memset(&up, 0, sizeof(up));
	CHECK(rev_balancer_new(&up, 1) == NULL, "no servers");
	CHECK(rev_balancer_new(NULL, 1) == NULL, "NULL");
	CHECK(rev_balance_pick(NULL, NULL) == -1, "NULL balancer");
	rev_balancer_free(NULL);
	END_CASE();
}

int main(void)
{
	test_rr();
	test_backup();
	test_least_conn();
	test_random_two();
	test_ip_hash();
	test_misc();
	return check_done();
}
