/*
 * reverse/balance: the four server-selection algorithms over a per-worker
 * balancer state.  Integer effective weights (configured weight x 1024 x
 * slow-start factor, at least 1) drive smooth round robin and the load
 * comparisons; ip_hash uses weighted rendezvous hashing (score = w / -ln(u),
 * u a per-(client, server) hash in (0,1)), which gives each server a share
 * proportional to its weight and moves only the clients of a server that goes
 * away.  ln() is computed here so the module does not need libm.
 */
#include "reverse/balance.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define WSCALE 1024

struct rev_balancer {
	uint32_t magic;
	enum conf_balance algo;
	size_t n;
	int64_t *weight;        /* configured weight x WSCALE */
	unsigned char *backup;
	uint64_t *seed;         /* ip_hash per-server seed */
	int64_t *cur;           /* smooth round robin current weights */
	size_t *cand;           /* scratch: candidate indices for one pick */
	uint64_t rng;           /* own random state when the ctx has none */
};

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t rev_balance_rand(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return mix64(*state);
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;
	h ^= 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

/* Natural log for x in (0, 1]: exponent from the bits, atanh series for the
 * mantissa (relative error ~1e-12, plenty for rendezvous scores). */
static double ln_unit(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof(bits));
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
	double m;
	memcpy(&m, &bits, sizeof(m));      /* m in [1, 2) */
	if (m > 1.4142135623730951) {      /* keep t small: m in [0.707, 1.414) */
		m *= 0.5;
		e++;
	}
	double t = (m - 1.0) / (m + 1.0), t2 = t * t, term = t, sum = 0.0;
	for (int k = 1; k <= 25; k += 2) {
		sum += term / k;
		term *= t2;
	}
	return 2.0 * sum + e * 0.69314718055994530942;
}

struct rev_balancer *rev_balancer_new(const struct conf_rev_upstream *up, uint64_t seed)
{
	if (!up || up->nservers == 0)
		return NULL;
	struct rev_balancer *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	size_t n = up->nservers;
	b->magic = REV_BALANCER_MAGIC;
	b->algo = up->balance;
	b->n = n;
	b->weight = calloc(n, sizeof(*b->weight));
	b->backup = calloc(n, sizeof(*b->backup));
	b->seed = calloc(n, sizeof(*b->seed));
	b->cur = calloc(n, sizeof(*b->cur));
	b->cand = calloc(n, sizeof(*b->cand));
	if (!b->weight || !b->backup || !b->seed || !b->cur || !b->cand) {
		rev_balancer_free(b);
		return NULL;
	}
	b->rng = mix64(seed ^ 0x5851f42d4c957f2dULL);
	for (size_t i = 0; i < n; i++) {
		const struct conf_rev_server *s = &up->servers[i];
		int64_t w = s->weight > 0 ? s->weight : 1;
		b->weight[i] = w * WSCALE;
		b->backup[i] = s->backup ? 1 : 0;
		/* Seed from the address text so a client keeps its server across
		 * reloads that reorder or add servers; duplicates get distinct seeds. */
		const char *t = s->addr.text ? s->addr.text : "";
		uint64_t dup = 0;
		for (size_t j = 0; j < i; j++) {
			const char *u = up->servers[j].addr.text ? up->servers[j].addr.text : "";
			if (strcmp(t, u) == 0)
				dup++;
		}
		b->seed[i] = hash_bytes(t, strlen(t), dup * 0x9e3779b97f4a7c15ULL);
	}
	return b;
}

void rev_balancer_free(struct rev_balancer *b)
{
	if (!b)
		return;
	if (b->magic != REV_BALANCER_MAGIC)
		abort();
	b->magic = 0;
	free(b->weight);
	free(b->backup);
	free(b->seed);
	free(b->cur);
	free(b->cand);
	free(b);
}

size_t rev_balancer_nservers(const struct rev_balancer *b)
{
	return b ? b->n : 0;
}

/* ---- helpers over the candidate set ---- */

static int is_cand(const struct rev_balancer *b, const struct rev_pick_ctx *ctx, size_t i, int backup)
{
	if (b->backup[i] != backup)
		return 0;
	if (ctx->usable && !rev_bits_test(ctx->usable, i))
		return 0;
	if (ctx->excluded && rev_bits_test(ctx->excluded, i))
		return 0;
	return 1;
}

static int64_t eff_weight(const struct rev_balancer *b, const struct rev_pick_ctx *ctx, size_t i)
{
	int64_t w = b->weight[i];
	if (ctx->weight_factor) {
		double f = ctx->weight_factor[i];
		if (!(f >= 0.0))        /* also catches NaN */
			f = 0.0;
		if (f < 1.0)
			w = (int64_t)((double)w * f);
	}
	return w > 0 ? w : 1;
}

static uint32_t load(const struct rev_pick_ctx *ctx, size_t i)
{
	return ctx->in_flight ? ctx->in_flight[i] : 0;
}

/* <0 if a is less loaded than b relative to weight, 0 equal, >0 more. */
static int load_cmp(const struct rev_pick_ctx *ctx, size_t a, int64_t wa, size_t b, int64_t wb)
{
	/* in_flight < 2^32, weights < 2^31: products fit in unsigned 64 bits */
	uint64_t l = (uint64_t)load(ctx, a) * (uint64_t)wb;
	uint64_t r = (uint64_t)load(ctx, b) * (uint64_t)wa;
	return l < r ? -1 : l > r;
}

/* Smooth weighted round robin among cand[] (indices). */
static int swrr(struct rev_balancer *b, const struct rev_pick_ctx *ctx, const size_t *cand, size_t nc)
{
	int64_t total = 0;
	size_t best = cand[0];
	for (size_t k = 0; k < nc; k++) {
		size_t i = cand[k];
		int64_t w = eff_weight(b, ctx, i);
		b->cur[i] += w;
		total += w;
		if (b->cur[i] > b->cur[best])
			best = i;
	}
	b->cur[best] -= total;
	return (int)best;
}

static int pick_least_conn(struct rev_balancer *b, const struct rev_pick_ctx *ctx, size_t *cand, size_t nc)
{
	size_t best = cand[0];
	int64_t bw = eff_weight(b, ctx, best);
	size_t nt = 0;
	for (size_t k = 0; k < nc; k++) {
		size_t i = cand[k];
		int64_t w = eff_weight(b, ctx, i);
		int c = load_cmp(ctx, i, w, best, bw);
		if (c < 0) {
			best = i;
			bw = w;
			nt = 0;
		}
		if (c <= 0)
			cand[nt++] = i;     /* compact the tie set in place (nt <= k) */
	}
	return swrr(b, ctx, cand, nt);
}

static uint64_t client_hash(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return hash_bytes(&s4->sin_addr, 4, 4);
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const uint8_t *a = s6->sin6_addr.s6_addr;
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(a, v4mapped, 12) == 0)
		return hash_bytes(a + 12, 4, 4);
	return hash_bytes(a, 16, 6);
}

static int pick_ip_hash(const struct rev_balancer *b, const struct rev_pick_ctx *ctx, const size_t *cand,
    size_t nc, uint64_t ch)
{
	int best = -1;
	double best_score = 0.0;
	for (size_t k = 0; k < nc; k++) {
		size_t i = cand[k];
		uint64_t h = mix64(ch ^ b->seed[i]);
		double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);  /* (0,1) */
		double score = (double)eff_weight(b, ctx, i) / -ln_unit(u);
		if (best < 0 || score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}

/* One weighted random draw among cand[] skipping index skip (SIZE_MAX: none). */
static size_t draw(const struct rev_balancer *b, const struct rev_pick_ctx *ctx, uint64_t *rng,
    const size_t *cand, size_t nc, uint64_t total, size_t skip)
{
	uint64_t r = rev_balance_rand(rng) % total;
	size_t last = cand[0];
	for (size_t k = 0; k < nc; k++) {
		size_t i = cand[k];
		if (i == skip)
			continue;
		uint64_t w = (uint64_t)eff_weight(b, ctx, i);
		last = i;
		if (r < w)
			return i;
		r -= w;
	}
	return last;
}

static int pick_random_two(struct rev_balancer *b, const struct rev_pick_ctx *ctx, const size_t *cand,
    size_t nc)
{
	if (nc == 1)
		return (int)cand[0];
	uint64_t *rng = ctx->rng ? ctx->rng : &b->rng;
	uint64_t total = 0;
	for (size_t k = 0; k < nc; k++)
		total += (uint64_t)eff_weight(b, ctx, cand[k]);
	size_t a = draw(b, ctx, rng, cand, nc, total, SIZE_MAX);
	int64_t wa = eff_weight(b, ctx, a);
	size_t c = draw(b, ctx, rng, cand, nc, total - (uint64_t)wa, a);
	int64_t wc = eff_weight(b, ctx, c);
	return load_cmp(ctx, c, wc, a, wa) < 0 ? (int)c : (int)a;
}

int rev_balance_pick(struct rev_balancer *b, const struct rev_pick_ctx *ctx)
{
	static const struct rev_pick_ctx empty;
	if (!b || b->magic != REV_BALANCER_MAGIC)
		return -1;
	if (!ctx)
		ctx = &empty;
	size_t *cand = b->cand, nc = 0;
	for (int backup = 0; backup <= 1 && nc == 0; backup++)
		for (size_t i = 0; i < b->n; i++)
			if (is_cand(b, ctx, i, backup))
				cand[nc++] = i;
	int r = -1;
	if (nc > 0) {
		switch (b->algo) {
		case CONF_BAL_LEAST_CONN:
			r = pick_least_conn(b, ctx, cand, nc);
			break;
		case CONF_BAL_IP_HASH:
			if (ctx->client && (ctx->client->sa_family == AF_INET ||
			    ctx->client->sa_family == AF_INET6))
				r = pick_ip_hash(b, ctx, cand, nc, client_hash(ctx->client));
			else
				r = swrr(b, ctx, cand, nc);
			break;
		case CONF_BAL_RANDOM_TWO:
			r = pick_random_two(b, ctx, cand, nc);
			break;
		case CONF_BAL_ROUND_ROBIN:
		default:
			r = swrr(b, ctx, cand, nc);
			break;
		}
	}
	return r;
}
