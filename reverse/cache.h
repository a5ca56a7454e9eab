/*
 * reverse/cache: the shared in-memory HTTP cache of the reverse side
 * (RFC 9111), pure part: no libevent, no core request API.  cache_glue.c
 * connects it to the request hooks.
 *
 * Two halves:
 *   - RFC logic over parsed heads (struct gw_http_head from core/http1):
 *     Cache-Control parsing, storability, freshness lifetime, age, Vary
 *     and conditional-request matching.  Stateless functions, table-tested.
 *   - The store (struct rev_cstore): objects shared by all worker threads,
 *     sharded by key hash with one mutex per shard, bounded in bytes with
 *     LRU eviction (exact LRU with one shard, per-shard LRU otherwise),
 *     objects over max_object refused.  Objects are refcounted and
 *     immutable once published: a hit being sent survives eviction, purge
 *     and replacement; a 304 refresh publishes a new object that shares the
 *     body of the old one.
 *
 * Keys are "scheme://host[:port]path?query" with the host lower-cased and
 * the scheme's default port dropped (rev_cache_key()).  Every variant (Vary)
 * of a key is its own object in the same hash chain.
 *
 * Times are seconds (double) on the wall clock (Date and Expires are wall
 * clock too); the caller passes "now" so tests control time.
 */
#ifndef GW_REV_CACHE_H
#define GW_REV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/http1.h"

/* ---- Cache-Control ---- */

#define REV_CC_NO_STORE          0x0001u
#define REV_CC_NO_CACHE          0x0002u   /* also qualified no-cache="f" (treated as plain) */
#define REV_CC_PRIVATE           0x0004u   /* also qualified private="f" (not stored) */
#define REV_CC_PUBLIC            0x0008u
#define REV_CC_MUST_REVALIDATE   0x0010u
#define REV_CC_PROXY_REVALIDATE  0x0020u
#define REV_CC_ONLY_IF_CACHED    0x0040u
#define REV_CC_NO_TRANSFORM      0x0080u
#define REV_CC_PRAGMA_NO_CACHE   0x0100u   /* request Pragma: no-cache without Cache-Control */

struct rev_cc {
	unsigned flags;            /* REV_CC_* */
	/* delta-seconds; -1 = absent.  A malformed value of max-age or
	 * s-maxage counts as 0 (stale: RFC 9111 4.2.1 errs on the safe side). */
	int64_t max_age, s_maxage, max_stale, min_fresh;
	int64_t stale_while_revalidate, stale_if_error;
};

/* Parse every Cache-Control field of h (all of them, as one list).  For a
 * request head, Pragma: no-cache counts when there is no Cache-Control. */
void rev_cc_parse(const struct gw_http_head *h, int is_request, struct rev_cc *cc);

/* ---- what a response says about caching ---- */

struct rev_resp_info {
	int status;
	struct rev_cc cc;
	double date;               /* Date; -1 absent or invalid */
	double expires;            /* Expires; -1 absent; an invalid value is 0 (already expired) */
	double last_modified;      /* -1 absent */
	double age;                /* Age header value, 0 absent */
	int has_etag;
	int set_cookie;
	int vary_star;             /* Vary: * */
};

void rev_resp_info(const struct gw_http_head *resp, struct rev_resp_info *ri);

/* Heuristic freshness: this fraction of (Date - Last-Modified), capped. */
#define REV_CACHE_HEURISTIC_FRACTION 0.1
#define REV_CACHE_HEURISTIC_MAX 86400.0

/* 1 if status is cacheable by default (RFC 9110 15.1: heuristically). */
int rev_cache_status_heuristic(int status);

/*
 * Freshness lifetime (RFC 9111 4.2.1) for a shared cache: s-maxage, else
 * max-age, else Expires - Date, else default_ttl (> 0: the route's ttl)
 * for a heuristically cacheable status, else the Last-Modified heuristic
 * for such a status (or any status with "public"), else 0.  date is the
 * Date value to use (the response time when the response had none).
 */
double rev_cache_lifetime(const struct rev_resp_info *ri, double date, double default_ttl);

/* Why a response is not stored (0 = storable). */
enum rev_nostore {
	REV_STORE_OK = 0,
	REV_NOSTORE_METHOD,        /* not GET */
	REV_NOSTORE_STATUS,        /* 206, 304, 1xx, or not cacheable without explicit freshness */
	REV_NOSTORE_REQ_NO_STORE,
	REV_NOSTORE_NO_STORE,
	REV_NOSTORE_PRIVATE,
	REV_NOSTORE_AUTH,          /* request had Authorization; response not public/s-maxage/must-revalidate */
	REV_NOSTORE_COOKIE,        /* Set-Cookie */
	REV_NOSTORE_VARY_STAR,
	REV_NOSTORE_NO_FRESHNESS,  /* lifetime 0 and no validator: nothing to reuse */
	REV_NOSTORE_REQ_COOKIE     /* request had Cookie; response not public (always the last check) */
};

extern const char *const rev_nostore_names[];

/*
 * May the response to req be stored (RFC 9111 3)?  lifetime is what
 * rev_cache_lifetime() gave.  Returns REV_STORE_OK or the reason.
 * Beyond RFC 9111: a response to a request carrying Cookie is stored only
 * when it is explicitly "public" (REV_NOSTORE_REQ_COOKIE, returned only when
 * every other check passed); Authorization follows RFC 9111 3.5 (public,
 * s-maxage or must-revalidate).
 */
enum rev_nostore rev_cache_storable(const struct gw_http_head *req, const struct rev_cc *req_cc,
    const struct rev_resp_info *ri, double lifetime);

/*
 * RFC 9111 4.2.3: corrected_initial_age from the response's Age and Date
 * (date < 0: none), the time the request was sent and the time the response
 * arrived.  Current age = initial + (now - response_time).
 */
double rev_cache_initial_age(double age_value, double date, double request_time,
    double response_time);

/* Build the primary key into buf (cap bytes, NUL-terminated).  Returns the
 * length, or 0 if it does not fit or host is empty. */
size_t rev_cache_key(char *buf, size_t cap, int https, const char *host, size_t hlen,
    const char *path, size_t plen);

/* The key of an absolute URL "http[s]://host[:port]/path?query" (a missing
 * path is "/"); 0 if malformed or too long. */
size_t rev_cache_key_from_url(char *buf, size_t cap, const char *url);

/* Weak comparison of an If-None-Match list against etag (RFC 9110 13.1.2;
 * "*" matches).  1 on a match. */
int rev_cache_etag_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len);

/* ---- the store ---- */

struct rev_cstore;
struct rev_cobj;
struct rev_cfill;

/* Read-only view of a stored object (valid while a reference is held). */
struct rev_chdr {
	const char *name;          /* NUL-terminated, as the origin wrote it */
	const char *value;
	size_t value_len;
};

struct rev_cobj_view {
	int status;
	const struct rev_chdr *hdrs;
	size_t nhdrs;
	const char *body;
	size_t body_len;
	const char *etag;          /* NULL if none */
	size_t etag_len;
	double last_modified;      /* -1 none */
	double response_time;
	double initial_age;        /* corrected_initial_age */
	double lifetime;
	double swr, sie;           /* stale-while-revalidate / stale-if-error windows; -1 none */
	int no_cache;              /* always revalidate */
	int no_stale;              /* must-revalidate, proxy-revalidate or s-maxage */
	const char *key;
};

/* nshards: 1 for exact LRU (tests), 16 for the daemon.  NULL on ENOMEM. */
struct rev_cstore *rev_cstore_new(uint64_t memory, uint64_t max_object, unsigned nshards);
/* Frees every object not referenced; referenced ones die with their last put. */
void rev_cstore_free(struct rev_cstore *s);
/* New bounds (a reload); shrinking evicts at the next store. */
void rev_cstore_set_limits(struct rev_cstore *s, uint64_t memory, uint64_t max_object);
uint64_t rev_cstore_max_object(const struct rev_cstore *s);

/*
 * Find the variant of key that matches req's Vary-named headers; returns a
 * new reference (rev_cobj_put()) or NULL.  The object moves to the head of
 * its LRU list.
 */
struct rev_cobj *rev_cstore_lookup(struct rev_cstore *s, const char *key,
    const struct gw_http_head *req);
void rev_cobj_get(struct rev_cobj *o);
void rev_cobj_put(struct rev_cobj *o);
void rev_cobj_view(const struct rev_cobj *o, struct rev_cobj_view *v);
/* Current age (RFC 9111 4.2.3) at now. */
double rev_cobj_age(const struct rev_cobj *o, double now);

/*
 * Start filling an object for key from the response head resp (to request
 * req; the Vary values are taken from req).  expect_len: the body length if
 * known, else -1; over max_object returns NULL at once.  sie_override >= 0
 * replaces the response's stale-if-error window.  Headers are copied
 * (hop-by-hop, Proxy-Authenticate, Proxy-Authentication-Info, Content-Length,
 * Age, Set-Cookie and X-Cache left out; a Date is added when the response had
 * none).  NULL when not storable by size or on ENOMEM.
 */
struct rev_cfill *rev_cfill_begin(struct rev_cstore *s, const char *key,
    const struct gw_http_head *req, const struct gw_http_head *resp,
    const struct rev_resp_info *ri, double lifetime, double request_time,
    double response_time, int64_t expect_len, double sie_override);
/* Append body bytes.  -1 once the object would pass max_object (the fill
 * is then dead: abort it). */
int rev_cfill_data(struct rev_cfill *f, const char *p, size_t n);
/* Publish (replacing the same variant of key) and evict down to the memory
 * bound.  Consumes f.  Returns 0, or -1 if the object did not fit. */
int rev_cfill_commit(struct rev_cfill *f);
void rev_cfill_abort(struct rev_cfill *f);

/*
 * A 304 arrived for old (RFC 9111 4.3.4): publish a copy with the 304's
 * header fields replacing the stored ones of the same name, sharing old's
 * body, with new times.  Returns a new reference to the new object, or NULL
 * on ENOMEM (old stays).  When the merged Cache-Control has no-store or
 * private, nothing is published and old leaves the table: the copy returned
 * answers this request only.
 */
struct rev_cobj *rev_cstore_refresh(struct rev_cstore *s, struct rev_cobj *old,
    const struct gw_http_head *resp304, double request_time, double response_time,
    double default_ttl, double sie_override);

/* Remove every variant of key; returns how many. */
int rev_cstore_purge_key(struct rev_cstore *s, const char *key);
/*
 * Remove objects by "host" (all of that host, both schemes, any port) or
 * "host/path-prefix", optionally starting with "http://" or "https://" to
 * restrict the scheme.  Returns how many.
 */
int rev_cstore_purge_prefix(struct rev_cstore *s, const char *prefix);

struct rev_cstore_stats {
	uint64_t objects, bytes, memory, max_object, evictions, purged, stored;
};
void rev_cstore_stats(struct rev_cstore *s, struct rev_cstore_stats *out);

/* Per-object accounting overhead added to header + body bytes. */
#define REV_COBJ_OVERHEAD 256

#endif
