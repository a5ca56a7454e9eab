/* core/stats: counter names and the snapshot sum (see stats.h). */
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

const char *const gw_family_names[GW_NFAMILIES] = { "forward", "reverse" };

void gw_stats_sum(struct gw_stats_shard *const *shards, int n, struct gw_stats_snapshot *out)
{
	memset(out, 0, sizeof *out);
	for (int i = 0; i < n; i++) {
		const struct gw_stats_shard *s = shards[i];
		for (int f = 0; f < GW_NFAMILIES; f++)
			for (int k = 0; k < GW_FC__N; k++)
				out->fam[f][k] += atomic_load_explicit(&s->fam[f][k], memory_order_relaxed);
		for (int k = 0; k < GW_CLOSE__N; k++)
			out->close[k] += atomic_load_explicit(&s->close[k], memory_order_relaxed);
		for (int f = 0; f < GW_NFAMILIES; f++) {
			uint64_t a = atomic_load_explicit(&s->conns_active[f], memory_order_relaxed);
			out->conns_active_fam[f] += a;
			out->conns_active += a;
		}
		out->dns_queries += atomic_load_explicit(&s->dns_queries, memory_order_relaxed);
		out->dns_cache_hits += atomic_load_explicit(&s->dns_cache_hits, memory_order_relaxed);
		out->dns_failures += atomic_load_explicit(&s->dns_failures, memory_order_relaxed);
	}
}
