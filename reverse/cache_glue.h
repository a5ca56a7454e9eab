/*
 * reverse/cache_glue: connects the shared HTTP cache (reverse/cache.h) to
 * the core's request hooks for routes with `cache = true`.  reverse.c calls
 * it from a handful of places (see each function); everything else about
 * caching lives here.
 *
 * Per-request state lives in the request's arena and is found again through
 * a per-worker map keyed by the struct gw_req pointer (the core's single
 * gw_req_set_data() slot is left to reverse.c).
 *
 * Threads: the store is shared by all workers; per-request state is touched
 * only by the request's worker; collapsed-forwarding waiters are woken with
 * gw_req_wake() from whichever thread finishes the first request, or from
 * the sweeper (a periodic job on core/jobs.h's pool, started by the reverse
 * side's activate hook) once they waited REV_CACHE_COLLAPSE_WAIT.
 */
#ifndef GW_REV_CACHE_GLUE_H
#define GW_REV_CACHE_GLUE_H

#include <stddef.h>
#include <stdint.h>

struct gw_req;
struct gw_http_head;
struct conf;
struct event_base;
struct rev_site;
struct rev_route;

/* Concurrent misses for one key wait this long for the first one. */
#define REV_CACHE_COLLAPSE_WAIT 5.0

/*
 * on_request, once an upstream route is chosen and before any header of the
 * upstream request is edited.  Returns 1 when the cache took the request:
 * it was answered from the cache (HIT, STALE, 304, 504 for only-if-cached)
 * or parked behind an identical miss (collapsed forwarding) -- on_request
 * must return at once.  Returns 0 to proxy as usual (the cache may have
 * edited conditional headers and watches the response).  When a parked
 * request wakes up and cannot be served from the cache, restart(rq, side)
 * is called on the request's worker to run on_request again (this function
 * then returns 0 for it).  Does nothing for routes without cache.  A STALE
 * answer inside stale-while-revalidate also starts a background refresh
 * (gw_req_spawn); background requests come back here and are never answered
 * from the cache (they revalidate the entry and return 0).
 */
int rev_cache_request(struct gw_req *rq, const struct conf *cf, const struct rev_site *site,
    const struct rev_route *rt, void *side, void (*restart)(struct gw_req *rq, void *side));

/* struct gw_proto hooks (they ignore requests the cache does not watch). */
void rev_cache_on_response_head(struct gw_req *rq, const struct gw_http_head *resp, void *side);
void rev_cache_on_response_body(struct gw_req *rq, const char *data, size_t len, void *side);
void rev_cache_on_response_end(struct gw_req *rq, int complete, void *side);

/*
 * The origin cannot answer (on_upstream_error after retries, or no server
 * is available): if a stale copy may be served under stale-if-error, answer
 * with it and return 1.  Otherwise 0.
 */
int rev_cache_stale_on_error(struct gw_req *rq);

/* on_done: release the request's cache state.  Always call it. */
void rev_cache_done(struct gw_req *rq);

/*
 * Main thread, from the reverse side's activate / deactivate hooks: start
 * the sweeper (waiters past their deadline go to the origin themselves; a
 * timer on base hands the sweep to the job pool) when cf has a cache or a
 * store exists; stop it (deactivate, and at exit).  cf may be NULL.
 */
void rev_cache_activate(const struct conf *cf, struct event_base *base);
void rev_cache_deactivate(void);

/* ---- console / metrics (any thread) ---- */

struct rev_cache_stats {
	int enabled;               /* reverse.cache configured (a store exists) */
	uint64_t hits;             /* answered from a fresh entry (also 304s to conditionals) */
	uint64_t misses;           /* went to the origin on a cached route */
	uint64_t stale;            /* answered stale (stale-while-revalidate, stale-if-error, max-stale) */
	uint64_t revalidated;      /* origin answered 304: entry refreshed and served */
	uint64_t collapsed;        /* requests that waited for an identical miss */
	uint64_t bypass;           /* not cacheable by request (no-store, Range, methods) */
	uint64_t refreshes;        /* background stale-while-revalidate refreshes started */
	uint64_t refresh_failures; /* ... that got no usable answer (error, 5xx, cut short) */
	uint64_t served_bytes;     /* body bytes answered from the cache (HIT, STALE, REVALIDATED) */
	uint64_t objects, bytes;   /* stored now (bytes include per-object overhead) */
	uint64_t memory, max_object;
	uint64_t evictions, purged, stored;
};
void rev_cache_stats(struct rev_cache_stats *out);

/*
 * Purge (console: POST /api/v1/cache/purge).  url: "http[s]://host[:port]/path?query",
 * every variant; returns how many objects were removed (0 also when the
 * cache is off), -1 for a malformed URL.  host_prefix: "host" (all of it),
 * "host/path-prefix", optionally with "http://" or "https://"; returns how
 * many.  Objects being sent finish sending.
 */
int rev_cache_purge_url(const char *url);
int rev_cache_purge_prefix(const char *host_prefix);

#endif
