/*
 * core/stats: per-worker counters.  Each worker owns one 64-byte aligned
 * shard and is its only writer (relaxed load + relaxed store, no locked
 * instruction); the main thread sums relaxed loads into a snapshot.  Every
 * counter is named once, in GW_COUNTERS, and expands into the enum, the names
 * used by JSON and /metrics, and the shard layout.
 */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Close reasons: why a client connection ended. */
#define GW_CLOSE_REASONS(X) \
	X(CLIENT_EOF, "client_eof") \
	X(CLIENT_ERROR, "client_error") \
	X(NO_KEEPALIVE, "no_keepalive") \
	X(IDLE_TIMEOUT, "idle_timeout") \
	X(HEADER_TIMEOUT, "header_timeout") \
	X(BODY_TIMEOUT, "body_timeout") \
	X(SEND_TIMEOUT, "send_timeout") \
	X(BAD_REQUEST, "bad_request") \
	X(LOCAL_REPLY, "local_reply") \
	X(UPSTREAM_ERROR, "upstream_error") \
	X(UPSTREAM_TIMEOUT, "upstream_timeout") \
	X(TUNNEL_DONE, "tunnel_done") \
	X(TUNNEL_IDLE, "tunnel_idle") \
	X(SHUTDOWN, "shutdown") \
	X(LISTENER_REMOVED, "listener_removed") \
	X(INTERNAL, "internal") \
	X(FIRST_BYTE_TIMEOUT, "first_byte_timeout") \
	X(CLIENT_LIMIT, "client_limit") \
	X(BODY_TOO_SLOW, "body_too_slow")

enum gw_close_reason {
#define X(id, s) GW_CLOSE_##id,
	GW_CLOSE_REASONS(X)
#undef X
	GW_CLOSE__N
};

/* Per family counters (a family is a registered protocol: forward, reverse). */
#define GW_FAMILY_COUNTERS(X) \
	X(CONN_ACCEPTED, "connections_accepted") \
	X(REQUESTS, "requests") \
	X(STATUS_1XX, "responses_1xx") \
	X(STATUS_2XX, "responses_2xx") \
	X(STATUS_3XX, "responses_3xx") \
	X(STATUS_4XX, "responses_4xx") \
	X(STATUS_5XX, "responses_5xx") \
	X(BYTES_IN, "bytes_in") \
	X(BYTES_OUT, "bytes_out") \
	X(TUNNELS, "tunnels") \
	X(UPSTREAM_CONNECTS, "upstream_connects") \
	X(UPSTREAM_REUSED, "upstream_reused") \
	X(UPSTREAM_ERRORS, "upstream_errors") \
	X(H2_CONNS, "h2_connections") \
	X(H2_STREAMS, "h2_streams") \
	X(H2_RESETS, "h2_resets_received") \
	X(H2_GOAWAYS, "h2_goaways_sent") \
	X(UPSTREAM_H2_STREAMS, "upstream_h2_streams")

enum gw_fcounter {
#define X(id, s) GW_FC_##id,
	GW_FAMILY_COUNTERS(X)
#undef X
	GW_FC__N
};

/*
 * Families are not known to the core: each side registers its protocol at
 * start (gw_stats_add_family, through gw_control_add_side) and gets the
 * index its counters use.  Rows are reserved for GW_MAX_FAMILIES.
 */
#define GW_MAX_FAMILIES 4

struct gw_stats_shard {
	_Alignas(64) _Atomic uint64_t fam[GW_MAX_FAMILIES][GW_FC__N];
	_Atomic uint64_t close[GW_CLOSE__N];
	_Atomic uint64_t conns_active[GW_MAX_FAMILIES];   /* gauges, owner writes */
	_Atomic uint64_t dns_queries, dns_cache_hits, dns_failures;
};

/* Owner-thread increment (single writer). */
static inline void gw_stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

static inline void gw_stat_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
	    memory_order_relaxed);
}

struct gw_stats_snapshot {
	uint64_t fam[GW_MAX_FAMILIES][GW_FC__N];
	uint64_t close[GW_CLOSE__N];
	uint64_t conns_active;                  /* all families */
	uint64_t conns_active_fam[GW_MAX_FAMILIES];
	uint64_t dns_queries, dns_cache_hits, dns_failures;
};

extern const char *const gw_close_reason_names[GW_CLOSE__N];
extern const char *const gw_fcounter_names[GW_FC__N];

/*
 * Register a family: name labels its counters in JSON and /metrics
 * ("forward"), short_name the console's compact rate columns ("fwd"); both
 * are borrowed for the life of the process.  Main thread, before any worker
 * starts.  Returns the family's index (0, 1, ... in the order of the calls),
 * or -1 when GW_MAX_FAMILIES are registered.
 */
int gw_stats_add_family(const char *name, const char *short_name);
/* Families registered so far, and family f's names (any thread once the
 * workers run: the table does not change after start). */
int gw_stats_nfamilies(void);
const char *gw_stats_family_name(int f);
const char *gw_stats_family_short(int f);

/* Sum shards[0..n) into out (any thread). */
void gw_stats_sum(struct gw_stats_shard *const *shards, int n, struct gw_stats_snapshot *out);

#endif
