/* core/stats: counter names, the family registry and the snapshot sum (see stats.h). */
#include "core/stats.h"

#include <string.h>

const char *const gw_close_reason_names[GW_CLOSE__N] = {
#define X(id, s) s,
	GW_CLOSE_REASONS(X)
#undef X
};

const char *const gw_fcounter_names[GW_FC__N] = {
#define X(id, s) s,
	GW_FAMILY_COUNTERS(X)
#undef X
};

static struct {
	const char *name, *short_name;
} families[GW_MAX_FAMILIES];
static int nfamilies;

int gw_stats_add_family(const char *name, const char *short_name)
{
	if (nfamilies >= GW_MAX_FAMILIES)
		return -1;
	families[nfamilies].name = name;
	families[nfamilies].short_name = short_name;
	return nfamilies++;
}

int gw_stats_nfamilies(void) { return nfamilies; }
const char *gw_stats_family_name(int f) { return families[f].name; }
const char *gw_stats_family_short(int f) { return families[f].short_name; }

void gw_stats_sum(struct gw_stats_shard *const *shards, int n, struct gw_stats_snapshot *out)
{
	memset(out, 0, sizeof *out);
	for (int i = 0; i < n; i++) {
		const struct gw_stats_shard *s = shards[i];
		for (int f = 0; f < GW_MAX_FAMILIES; f++)
			for (int k = 0; k < GW_FC__N; k++)
				out->fam[f][k] += atomic_load_explicit(&s->fam[f][k], memory_order_relaxed);
		for (int k = 0; k < GW_CLOSE__N; k++)
			out->close[k] += atomic_load_explicit(&s->close[k], memory_order_relaxed);
		for (int f = 0; f < GW_MAX_FAMILIES; f++) {
			uint64_t a = atomic_load_explicit(&s->conns_active[f], memory_order_relaxed);
			out->conns_active_fam[f] += a;
			out->conns_active += a;
		}
		out->dns_queries += atomic_load_explicit(&s->dns_queries, memory_order_relaxed);
		out->dns_cache_hits += atomic_load_explicit(&s->dns_cache_hits, memory_order_relaxed);
		out->dns_failures += atomic_load_explicit(&s->dns_failures, memory_order_relaxed);
	}
}
