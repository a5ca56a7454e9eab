/*
 * reverse/ratelimit: fixed-size open-addressing table of token buckets (see
 * ratelimit.h).  No clock reads, one allocation and one getrandom(2) (the
 * hash key) at creation; one mutex around each take.
 */
#include "reverse/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RL_KEY 32
#define RL_PROBE 8

struct rl_slot {
	uint8_t used;
	uint8_t klen;
	uint8_t key[RL_KEY];
	double tokens;
	double stamp;      /* when tokens was computed */
	double rps, burst; /* of the last take (for the cluster's sync) */
	uint32_t pending;  /* tokens taken here since the last rev_rl_collect */
	uint64_t gseen;    /* the cluster-wide total this node last saw (rev_rl_remote) */
};

struct rev_rl {
	pthread_mutex_t lock;      /* the table is the whole process's: workers share it */
	size_t mask;
	uint64_t seed;     /* secret: nobody can aim addresses at a client's probe window */
	struct rl_slot *slots;
};

struct rev_rl *rev_rl_new(size_t cap)
{
	struct rev_rl *t = calloc(1, sizeof *t);
	size_t n = 64;

	if (t == NULL)
		return NULL;
	while (n < cap)
		n <<= 1;
	t->slots = calloc(n, sizeof *t->slots);
	if (t->slots == NULL) {
		free(t);
		return NULL;
	}
	t->mask = n - 1;
	pthread_mutex_init(&t->lock, NULL);
	if (getrandom(&t->seed, sizeof t->seed, 0) != (ssize_t)sizeof t->seed)
		t->seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;   /* not secret, still works */
	return t;
}

void rev_rl_free(struct rev_rl *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->slots);
	free(t);
}

static uint64_t hash(uint64_t seed, const uint8_t *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;   /* keyed FNV-1a, then a final mix */

	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static double refill(const struct rl_slot *s, double rps, double burst, double now)
{
	double t = s->tokens + (now - s->stamp) * rps;

	return t > burst ? burst : t;
}

static int take_locked(struct rev_rl *t, const void *key, size_t klen, double rps, double burst,
    double now, double *retry_after)
{
	struct rl_slot *s = NULL, *victim = NULL;
	double best = -1;
	size_t h;

	h = (size_t)hash(t->seed, key, klen);
	for (size_t i = 0; i < RL_PROBE; i++) {
		struct rl_slot *x = &t->slots[(h + i) & t->mask];
		if (!x->used) {
			if (victim == NULL || victim->used)
				victim = x;
			best = burst + 1;
			continue;
		}
		if (x->klen == klen && memcmp(x->key, key, klen) == 0) {
			s = x;
			break;
		}
		if (best <= burst) {
			double f = refill(x, rps, burst, now);
			if (f > best) {
				best = f;
				victim = x;
			}
		}
	}
	if (s == NULL) {
		s = victim;
		s->used = 1;
		s->klen = (uint8_t)klen;
		memcpy(s->key, key, klen);
		s->tokens = burst;
		s->stamp = now;
		s->pending = 0;
		s->gseen = 0;
	}
	s->rps = rps;
	s->burst = burst;
	s->tokens = refill(s, rps, burst, now);
	s->stamp = now;
	if (s->tokens >= 1 - 1e-9) {   /* float drift must not cost a token */
		s->tokens -= 1;
		s->pending++;
		return 1;
	}
	if (retry_after != NULL)
		*retry_after = (1 - s->tokens) / rps;
	return 0;
}

int rev_rl_take(struct rev_rl *t, const void *key, size_t klen, double rps, double burst,
    double now, double *retry_after)
{
	int ok;

	if (rps <= 0)
		return 1;
	if (burst < 1)
		burst = 1;
	if (klen > RL_KEY)
		klen = RL_KEY;
	/* a few probes under the lock: cheaper than a client getting a budget
	 * per worker (connections are spread over workers by the kernel) */
	pthread_mutex_lock(&t->lock);
	ok = take_locked(t, key, klen, rps, burst, now, retry_after);
	pthread_mutex_unlock(&t->lock);
	return ok;
}

size_t rev_rl_collect(struct rev_rl *t, struct rev_rl_delta *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i <= t->mask && n < max; i++) {
		struct rl_slot *s = &t->slots[i];
		if (!s->used || s->pending == 0)
			continue;
		memcpy(out[n].key, s->key, s->klen);
		out[n].klen = s->klen;
		out[n].taken = s->pending;
		out[n].rps = s->rps;
		out[n].burst = s->burst;
		s->pending = 0;
		n++;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

static struct rl_slot *find_locked(struct rev_rl *t, const void *key, size_t klen)
{
	size_t h = (size_t)hash(t->seed, key, klen);

	for (size_t i = 0; i < RL_PROBE; i++) {
		struct rl_slot *x = &t->slots[(h + i) & t->mask];
		if (x->used && x->klen == klen && memcmp(x->key, key, klen) == 0)
			return x;
	}
	return NULL;
}

uint64_t rev_rl_remote(struct rev_rl *t, const void *key, size_t klen, uint64_t total, uint64_t mine)
{
	struct rl_slot *s;
	uint64_t others = 0;

	if (klen > RL_KEY)
		klen = RL_KEY;
	pthread_mutex_lock(&t->lock);
	s = find_locked(t, key, klen);
	if (s != NULL) {
		/* total - mine is every take before ours; what the other nodes
		 * added is what this node had not seen of it.  A total below what
		 * we saw: the key expired and started again */
		uint64_t before = total >= mine ? total - mine : 0;
		others = before >= s->gseen ? before - s->gseen : before;
		s->gseen = total;
		s->tokens -= (double)others;
		/* a client that went over on several nodes at once owes at most
		 * one more burst: it is not shut out for longer than that */
		if (s->tokens < -s->burst)
			s->tokens = -s->burst;
	}
	pthread_mutex_unlock(&t->lock);
	return others;
}
