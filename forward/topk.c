/* forward/topk: Space-Saving heavy hitters (see topk.h). */
#include "forward/topk.h"

#include <stdlib.h>
#include <string.h>

#define ONES 0x0101010101010101ull

/* The eight bytes of w with ASCII 'A'..'Z' lower-cased, all at once. */
static uint64_t lower8(uint64_t w)
{
	uint64_t low7 = w & (0x7f * ONES);
	uint64_t ge_a = low7 + (0x80 - 'A') * ONES;     /* high bit set where byte >= 'A' */
	uint64_t gt_z = low7 + (0x7f - 'Z') * ONES;     /* high bit set where byte > 'Z' */
	uint64_t upper = (ge_a ^ gt_z) & ~w & (0x80 * ONES);

	return w | upper >> 2;
}

/* A hash of the lower-cased name, eight bytes per step (this runs for every
 * forward request: byte-wise FNV cost three times as many instructions). */
static uint64_t hash_lc(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ lower8(w)) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	if (n > 0) {
		w = 0;
		memcpy(&w, s, n);
		h = (h ^ lower8(w)) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h * 0x9e3779b97f4a7c15ull;
}

static void set_name(char *dst, const char *s, size_t n)
{
	if (n >= FWD_TOPK_NAME)
		n = FWD_TOPK_NAME - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	dst[n] = '\0';
}

void fwd_topk_add(struct fwd_topk *t, const char *name, size_t len)
{
	uint64_t h = hash_lc(name, len), minc = UINT64_MAX;
	uint32_t min = 0, used = t->used;

	/* the name, in one pass over the hashes; only on a miss in a full
	 * table, a second pass for the smallest count */
	for (uint32_t i = 0; i < used; i++)
		if (t->hash[i] == h) {
			t->count[i]++;
			return;
		}
	if (used == FWD_TOPK_SLOTS)
		for (uint32_t i = 0; i < used; i++)
			if (t->count[i] < minc) {
				minc = t->count[i];
				min = i;
			}
	if (t->used < FWD_TOPK_SLOTS) {
		min = t->used++;
		t->count[min] = 0;
		t->err[min] = 0;
	} else {
		t->err[min] = t->count[min];
	}
	t->hash[min] = h;
	t->count[min]++;
	set_name(t->name[min], name, len);
}

struct ent {
	uint64_t hash, count, err;
	const char *name;
	size_t table;
};

static int by_hash(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int by_count(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->name, y->name);
}

size_t fwd_topk_merge(const struct fwd_topk *const *t, size_t n, struct fwd_topk_item *out, size_t max)
{
	size_t total = 0, ng = 0, k;
	uint64_t *tmin = calloc(n ? n : 1, sizeof *tmin), min_sum = 0;
	struct ent *e;

	if (tmin == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		total += t[i]->used;
	e = calloc(total ? total : 1, sizeof *e);
	if (e == NULL) {
		free(tmin);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const struct fwd_topk *x = t[i];
		uint64_t m = UINT64_MAX;
		for (uint32_t s = 0; s < x->used; s++) {
			e[ng++] = (struct ent){ x->hash[s], x->count[s], x->err[s], x->name[s], i };
			if (x->count[s] < m)
				m = x->count[s];
		}
		/* only a full table may have dropped a name */
		tmin[i] = x->used == FWD_TOPK_SLOTS ? m : 0;
		min_sum += tmin[i];
	}
	qsort(e, ng, sizeof *e, by_hash);
	/* fold each run of one hash into its first entry */
	k = 0;
	for (size_t i = 0; i < ng;) {
		struct ent g = e[i];
		uint64_t present_min = tmin[g.table];
		size_t j = i + 1;
		for (; j < ng && e[j].hash == g.hash; j++) {
			g.count += e[j].count;
			g.err += e[j].err;
			present_min += tmin[e[j].table];
		}
		g.count += min_sum - present_min;
		g.err += min_sum - present_min;
		e[k++] = g;
		i = j;
	}
	qsort(e, k, sizeof *e, by_count);
	if (k > max)
		k = max;
	for (size_t i = 0; i < k; i++) {
		memcpy(out[i].name, e[i].name, FWD_TOPK_NAME);
		out[i].count = e[i].count;
		out[i].err = e[i].err;
	}
	free(e);
	free(tmin);
	return k;
}
