/*
 * reverse/cache_glue: request-level cache decisions (see cache_glue.h).
 *
 * One request's path through the cache:
 *   on_request   -> lookup: fresh -> HIT (or 304 to a matching conditional);
 *                   stale but usable (max-stale, stale-while-revalidate
 *                   window) -> STALE; else go to the origin (conditional
 *                   when the stale entry has validators), or wait behind an
 *                   identical miss already in flight (collapsed forwarding).
 *   response head-> 304 to our conditional: refresh the entry, answer from
 *                   it (REVALIDATED); 5xx with a stale entry inside its
 *                   stale-if-error window: answer STALE; else MISS, and
 *                   start storing when the response is storable.
 *   body / end   -> copy decoded bytes; commit when the whole body reached
 *                   the client; wake the waiters.
 * stale-while-revalidate: a request served STALE inside the entry's window
 * also starts one background refresh of the key (start_refresh): a copy of
 * the request made by the core (gw_req_spawn) that runs through reverse.c
 * like any request, unless the key is already being fetched.  Its on_request
 * here never answers from the cache: it revalidates the entry (conditional
 * when it has validators), and its response head / body / end go through the
 * same hooks as above -- 304 refreshes, a storable response replaces, a 5xx
 * or an upstream failure leaves the entry as it is.  Its own response goes
 * nowhere.  The first request after the window revalidates in the foreground.
 */
#include "reverse/cache_glue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/jobs.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "reverse/cache.h"
#include "reverse/route.h"
#include "reverse/static.h"

#define MAP_BUCKETS 256
#define KEY_MAX (8192 + 320)
#define CQ_MAGIC 0x43514d47u        /* "CQMG" */
#define PASS_SLOTS 4096              /* keys recently found uncacheable */
#define PASS_TTL 10.0                /* ... are not collapsed for this long */
#define SWEEP_INTERVAL 0.1           /* how often waiters past their deadline are let go */

enum cmode {
	CM_NONE,
	CM_BYPASS,                 /* not cacheable by request: proxied untouched */
	CM_FETCH,                  /* miss or revalidation: watching the response */
	CM_HEAD,                   /* HEAD miss: proxied, labelled, not stored */
	CM_WAIT,                   /* parked behind an identical miss */
	CM_INVALIDATE              /* unsafe method: purge the key on success */
};

struct inflight;

/* Per-request cache state (in the request's arena). */
struct cq {
	uint32_t magic;
	struct cq *next;           /* worker map chain */
	struct gw_req *rq;
	int worker;
	enum cmode mode;
	char *key;
	const struct conf_rev_route *cr;
	struct rev_cc req_cc;
	double request_time;
	struct rev_cobj *stale;    /* reference: entry to revalidate / serve on error */
	int conditional;           /* we sent our own validators */
	struct rev_cfill *fill;
	struct inflight *leader;   /* this request is the one origin fetch for key */
	int waited;                /* woke up from collapsed forwarding once */
	int refresh;               /* a background stale-while-revalidate refresh */
	int refresh_ok;            /* ... and the origin answered it usably (< 500, whole body) */
	double deadline;           /* CM_WAIT: go to the origin after this (monotonic) */
	struct cq *wnext;          /* waiter list */
	void *side;
	void (*restart)(struct gw_req *, void *);
};

struct inflight {
	struct inflight *next;
	struct cq *waiters;
	char key[];
};

struct wstats {
	_Alignas(64) _Atomic uint64_t hits, misses, stale, revalidated, collapsed, bypass;
	_Atomic uint64_t refreshes, refresh_failures, served_bytes;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;   /* store creation, inflight table */
static struct rev_cstore *_Atomic g_store;
static _Atomic uint64_t g_memory, g_max_object;             /* limits last applied */
static _Atomic int g_xcache = 1;
static struct inflight *g_inflight[64];
/* "hit-for-pass": hashes of keys whose last response could not be stored
 * (by the response's own rules or size), so concurrent requests for them
 * are not serialised behind each other.  g_mu. */
static struct {
	uint64_t hash;
	double until;
} g_pass[PASS_SLOTS];
static struct gw_jobs_every *g_sweeper;                    /* main thread (activate) */
static struct wstats g_ws[GW_MAX_WORKERS];
static struct cq *g_map[GW_MAX_WORKERS][MAP_BUCKETS];       /* each row: its worker only */

static void stat_inc(int w, _Atomic uint64_t *c)
{
	(void)w;
	/* single writer per worker row: plain relaxed add */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

#define WS(q) (&g_ws[(q)->worker])

/* ---- per-worker request map ---- */

static size_t bucket_of(const struct gw_req *rq)
{
	uintptr_t p = (uintptr_t)rq;

	return (size_t)((p >> 4) ^ (p >> 13)) & (MAP_BUCKETS - 1);
}

static struct cq *map_find(const struct gw_req *rq, int unlink)
{
	int w = gw_req_worker(rq);
	struct cq **pp;

	if (w < 0 || w >= GW_MAX_WORKERS)
		return NULL;
	for (pp = &g_map[w][bucket_of(rq)]; *pp != NULL; pp = &(*pp)->next) {
		struct cq *q = *pp;
		if (q->rq == rq) {
			if (unlink) {
				*pp = q->next;
				q->next = NULL;
			}
			return q;
		}
	}
	return NULL;
}

/* ---- collapsed forwarding ---- */

static uint64_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ull;
	return h | 1;
}

static size_t key_slot(const char *key)
{
	return (size_t)(key_hash(key) % 64);
}

/* g_mu held. */
static int pass_check(uint64_t h, double now)
{
	return g_pass[(h >> 7) % PASS_SLOTS].hash == h && g_pass[(h >> 7) % PASS_SLOTS].until > now;
}

static void pass_mark(const char *key, int on)
{
	uint64_t h = key_hash(key);

	pthread_mutex_lock(&g_mu);
	if (on) {
		g_pass[(h >> 7) % PASS_SLOTS].hash = h;
		g_pass[(h >> 7) % PASS_SLOTS].until = gw_mono_now() + PASS_TTL;
	} else if (g_pass[(h >> 7) % PASS_SLOTS].hash == h) {
		g_pass[(h >> 7) % PASS_SLOTS].hash = 0;
	}
	pthread_mutex_unlock(&g_mu);
}

static void wake_fn(struct gw_req *rq, void *arg)
{
	struct cq *q = arg;

	if (!gw_req_alive(rq))
		return;   /* client gone: rev_cache_done already ran; the core frees rq */
	q->mode = CM_NONE;
	q->waited = 1;
	q->restart(rq, q->side);
}

/* Wake a list of waiters (taken out of the table; no lock held). */
static void wake_list(struct cq *w)
{
	while (w != NULL) {
		struct cq *nx = w->wnext;
		w->wnext = NULL;
		gw_req_wake(w->rq, wake_fn, w);
		w = nx;
	}
}

/* The in-flight fetch of key, or NULL.  g_mu held. */
static struct inflight *inflight_find(const char *key)
{
	struct inflight *f;

	for (f = g_inflight[key_slot(key)]; f != NULL; f = f->next)
		if (strcmp(f->key, key) == 0)
			break;
	return f;
}

/* Enter key (kl bytes) as fetched now; NULL on ENOMEM.  g_mu held. */
static struct inflight *inflight_add(const char *key, size_t kl)
{
	struct inflight *f = malloc(sizeof *f + kl + 1);

	if (f == NULL)
		return NULL;
	memcpy(f->key, key, kl + 1);
	f->waiters = NULL;
	f->next = g_inflight[key_slot(key)];
	g_inflight[key_slot(key)] = f;
	return f;
}

/* This request no longer leads its key: wake the ones waiting for it. */
static void release_leader(struct cq *q)
{
	struct inflight *f = q->leader, **pp;
	struct cq *w = NULL;

	if (f == NULL)
		return;
	q->leader = NULL;
	pthread_mutex_lock(&g_mu);
	for (pp = &g_inflight[key_slot(f->key)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	w = f->waiters;
	pthread_mutex_unlock(&g_mu);
	free(f);
	wake_list(w);
}

/* Waiters past their deadline go to the origin themselves.  A job pool
 * thread, every SWEEP_INTERVAL (rev_cache_activate). */
static void sweep(void *arg)
{
	struct cq *expired = NULL;
	double now = gw_mono_now();

	(void)arg;
	pthread_mutex_lock(&g_mu);
	for (size_t i = 0; i < 64; i++) {
		for (struct inflight *f = g_inflight[i]; f != NULL; f = f->next) {
			struct cq **pp = &f->waiters;
			while (*pp != NULL) {
				struct cq *w = *pp;
				if (w->deadline <= now) {
					*pp = w->wnext;
					w->wnext = expired;
					expired = w;
				} else {
					pp = &w->wnext;
				}
			}
		}
	}
	pthread_mutex_unlock(&g_mu);
	wake_list(expired);
}

void rev_cache_activate(const struct conf *cf, struct event_base *base)
{
	/* a store left from a generation with a cache may still have waiters */
	if (g_sweeper != NULL || ((cf == NULL || !cf->reverse.cache.present) && atomic_load(&g_store) == NULL))
		return;
	g_sweeper = gw_jobs_every_new(gw_jobs_shared(), base, SWEEP_INTERVAL, sweep, NULL);
	if (g_sweeper == NULL)
		gw_error("reverse cache: cannot start the sweeper: requests waiting for an identical miss "
		    "wait for it to end");
}

void rev_cache_deactivate(void)
{
	gw_jobs_every_free(g_sweeper);
	g_sweeper = NULL;
}

/* ---- the store ---- */

static struct rev_cstore *store_for(const struct conf *cf)
{
	struct rev_cstore *s = atomic_load(&g_store);
	const struct conf_rev_cache *cc = &cf->reverse.cache;

	if (s != NULL && atomic_load_explicit(&g_memory, memory_order_relaxed) == cc->memory &&
	    atomic_load_explicit(&g_max_object, memory_order_relaxed) == cc->max_object &&
	    atomic_load_explicit(&g_xcache, memory_order_relaxed) == cc->x_cache_header)
		return s;
	pthread_mutex_lock(&g_mu);
	s = atomic_load(&g_store);
	if (s == NULL) {
		s = rev_cstore_new(cc->memory, cc->max_object, 16);
		if (s != NULL) {
			atomic_store(&g_store, s);
			gw_info("reverse cache: %llu bytes, objects up to %llu bytes",
			    (unsigned long long)cc->memory, (unsigned long long)cc->max_object);
		}
	} else {
		rev_cstore_set_limits(s, cc->memory, cc->max_object);
	}
	atomic_store(&g_xcache, cc->x_cache_header);
	atomic_store(&g_memory, cc->memory);
	atomic_store(&g_max_object, cc->max_object);
	pthread_mutex_unlock(&g_mu);
	return s;
}

static const struct conf_rev_route *conf_route(const struct conf *cf, const struct rev_site *site,
    const struct rev_route *rt)
{
	const struct conf_rev_site *cs;

	if (site->index >= cf->reverse.nsites)
		return NULL;
	cs = &cf->reverse.sites[site->index];
	for (size_t i = 0; i < cs->nroutes; i++)
		if (strcmp(cs->routes[i].path, rt->prefix) == 0)
			return &cs->routes[i];
	return NULL;
}

/*
 * The primary key of rq.  The scheme is always the listener's (TLS or not),
 * never the scheme of an absolute-form target: "GET https://site/x" sent to
 * the plain listener is a plain-HTTP request and must not fill or read the
 * entry TLS clients get (it is keyed "http://site:443/x").
 */
static size_t make_key(struct gw_req *rq, const struct gw_http_head *h, char *buf, size_t cap)
{
	char tmp[320];
	int k;

	if (h->path == NULL)
		return 0;
	if (h->target_form == GW_TF_ABSOLUTE) {
		k = snprintf(tmp, sizeof tmp, memchr(h->host, ':', h->host_len) ? "[%.*s]:%u" : "%.*s:%u",
		    (int)h->host_len, h->host, (unsigned)h->port);
		if (k < 0 || (size_t)k >= sizeof tmp)
			return 0;
		return rev_cache_key(buf, cap, gw_req_is_tls(rq), tmp, (size_t)k, h->path,
		    h->path_len);
	}
	if (h->host_hdr == NULL)
		return 0;
	return rev_cache_key(buf, cap, gw_req_is_tls(rq), h->host_hdr, h->host_hdr_len, h->path,
	    h->path_len);
}

/* ---- answering from a stored object ---- */

static void release_obj(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	rev_cobj_put(arg);
}

/* Does the client's conditional GET/HEAD match the stored 200? */
static int client_not_modified(const struct gw_http_head *h, const struct rev_cobj_view *v)
{
	const struct gw_hdr *inm = gw_http1_find(h, "if-none-match"), *ims;
	time_t t;

	if (v->status != 200)
		return 0;
	if (inm != NULL)
		return v->etag != NULL &&
		    rev_cache_etag_match(inm->value, inm->value_len, v->etag, v->etag_len);
	ims = gw_http1_find(h, "if-modified-since");
	if (ims == NULL || v->last_modified < 0 ||
	    rev_http_date_parse(ims->value, ims->value_len, &t) != 0)
		return 0;
	return v->last_modified <= (double)t;
}

/* Fields a 304 carries (RFC 9110 15.4.5). */
static int in_304(const char *name)
{
	static const char *const keep[] = { "cache-control", "content-location", "date", "etag",
		"expires", "vary", "last-modified", NULL };

	for (int i = 0; keep[i] != NULL; i++)
		if (strcasecmp(name, keep[i]) == 0)
			return 1;
	return 0;
}

static void serve(struct gw_req *rq, struct cq *q, struct rev_cobj *o, const char *label,
    const char *verdict)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct rev_cobj_view v;
	double age;
	char ab[32];
	int st, n;

	rev_cobj_view(o, &v);
	age = rev_cobj_age(o, gw_wall_now());
	st = client_not_modified(h, &v) ? 304 : v.status;
	gw_req_resp_hdr_del(rq, "x-cache");
	for (size_t i = 0; i < v.nhdrs; i++) {
		if (st == 304 && !in_304(v.hdrs[i].name))
			continue;
		gw_req_resp_hdr_add(rq, v.hdrs[i].name, v.hdrs[i].value, v.hdrs[i].value_len);
	}
	/* integer formatting: "%.0f" was 5% of a cache hit's instructions;
	 * RFC 9111 5.1 caps Age at 2^31 */
	n = snprintf(ab, sizeof ab, "%llu", (unsigned long long)(age < 0 ? 0 :
	    age > 2147483648.0 ? 2147483648.0 : age));
	gw_req_resp_hdr_add(rq, "Age", ab, (size_t)n);
	if (atomic_load(&g_xcache))
		gw_req_resp_hdr_add(rq, "X-Cache", label, strlen(label));
	gw_req_set_verdict(rq, verdict, q->cr ? q->cr->path : NULL);
	if (st != 304 && h->method != GW_M_HEAD)
		atomic_fetch_add_explicit(&WS(q)->served_bytes, v.body_len, memory_order_relaxed);
	rev_cobj_get(o);   /* released by the core through release_obj */
	gw_req_respond_ref(rq, st, NULL, v.body, v.body_len, release_obj, o);
}

/* May the stale entry q->stale be served because the origin failed? */
static int stale_if_error_ok(const struct cq *q)
{
	struct rev_cobj_view v;
	double window, staleness;

	if (q->stale == NULL)
		return 0;
	rev_cobj_view(q->stale, &v);
	if (v.no_stale || v.no_cache)
		return 0;
	if (q->cr != NULL && q->cr->cache_stale_if_error >= 0) {
		window = q->cr->cache_stale_if_error;    /* the operator's word is final */
	} else {
		/* the origin's, or the client's for its own request (RFC 5861 4) */
		window = v.sie;
		if (q->req_cc.stale_if_error >= 0 && (double)q->req_cc.stale_if_error > window)
			window = (double)q->req_cc.stale_if_error;
	}
	if (window < 0)
		return 0;
	staleness = rev_cobj_age(q->stale, gw_wall_now()) - v.lifetime;
	return staleness <= window;
}

/* ---- on_request ---- */

static struct cq *cq_get(struct gw_req *rq, int *fresh)
{
	struct cq *q = map_find(rq, 0);
	int w = gw_req_worker(rq);

	*fresh = 0;
	if (q != NULL)
		return q;
	if (w < 0 || w >= GW_MAX_WORKERS)
		return NULL;
	q = gw_req_alloc(rq, sizeof *q);
	if (q == NULL)
		return NULL;   /* out of memory: the core answers 503 */
	q->magic = CQ_MAGIC;
	q->rq = rq;
	q->worker = w;
	q->next = g_map[w][bucket_of(rq)];
	g_map[w][bucket_of(rq)] = q;
	*fresh = 1;
	return q;
}

/* ---- stale-while-revalidate ---- */

/*
 * rq was just answered from the stale entry of q->key inside its
 * stale-while-revalidate window: refresh the entry in the background.  The
 * refresh is a copy of rq (gw_req_spawn: same route, balancer, upstream TLS
 * and forwarding headers as rq would get) that rev_cache_request() turns into
 * a conditional request with the entry's validators; its 304 refreshes the
 * entry, a storable response replaces it, a 5xx or a failure leaves it (see
 * the response hooks).  One fetch per key at a time: the refresh leads the
 * key in the collapsed-forwarding table, so a key already being fetched or
 * refreshed is not refreshed again.  The refresh pins its own config
 * snapshot, is cut after upstream_connect + upstream_response, and ends
 * through rev_cache_done() like any request (also at shutdown).
 */
static void start_refresh(struct gw_req *rq, const struct cq *q)
{
	const struct conf_timeouts *t = &gw_req_conf(rq)->global.timeouts;
	struct inflight *f;
	struct gw_req *bg;
	struct cq *r;
	int fresh_q;

	pthread_mutex_lock(&g_mu);
	f = inflight_find(q->key) == NULL ? inflight_add(q->key, strlen(q->key)) : NULL;
	pthread_mutex_unlock(&g_mu);
	if (f == NULL)
		return;
	bg = gw_req_spawn(rq, t->upstream_connect + t->upstream_response);
	r = bg != NULL ? cq_get(bg, &fresh_q) : NULL;
	if (r == NULL) {
		struct cq none = { .leader = f };
		release_leader(&none);
		return;
	}
	r->leader = f;
	stat_inc(r->worker, &WS(r)->refreshes);
}

int rev_cache_request(struct gw_req *rq, const struct conf *cf, const struct rev_site *site,
    const struct rev_route *rt, void *side, void (*restart)(struct gw_req *rq, void *side))
{
	const struct gw_http_head *h = gw_req_head(rq);
	const struct conf_rev_route *cr;
	struct rev_cstore *s;
	struct rev_cobj *o;
	struct cq *q;
	char key[KEY_MAX];
	size_t kl;
	int fresh_q;
	double now;

	if (cf == NULL || !cf->reverse.cache.present || site == NULL || rt == NULL)
		return 0;
	cr = conf_route(cf, site, rt);
	if (cr == NULL || !cr->cache || (s = store_for(cf)) == NULL)
		return 0;
	q = cq_get(rq, &fresh_q);
	if (q == NULL)
		return 0;
	q->cr = cr;
	q->side = side;
	q->restart = restart;
	q->refresh = gw_req_is_background(rq);
	if (q->stale != NULL) {            /* woken after waiting: look again */
		rev_cobj_put(q->stale);
		q->stale = NULL;
	}
	kl = make_key(rq, h, key, sizeof key);
	if (kl == 0) {
		q->mode = CM_BYPASS;
		return 0;
	}
	if (h->method != GW_M_GET && h->method != GW_M_HEAD) {
		/* RFC 9111 4.4: a successful unsafe request invalidates the URI;
		 * methods not known to be safe (GW_M_OTHER) count as unsafe */
		if (h->method != GW_M_OPTIONS && h->method != GW_M_TRACE && h->method != GW_M_CONNECT) {
			q->key = gw_req_strndup(rq, key, kl);
			q->mode = q->key != NULL ? CM_INVALIDATE : CM_BYPASS;   /* NULL: 503 */
		} else {
			q->mode = CM_BYPASS;
		}
		stat_inc(q->worker, &WS(q)->bypass);
		return 0;
	}
	rev_cc_parse(h, 1, &q->req_cc);
	if ((q->req_cc.flags & REV_CC_NO_STORE) || gw_http1_find(h, "range") != NULL ||
	    gw_http1_find(h, "if-match") != NULL || gw_http1_find(h, "if-unmodified-since") != NULL ||
	    gw_http1_find(h, "if-range") != NULL) {
		q->mode = CM_BYPASS;
		stat_inc(q->worker, &WS(q)->bypass);
		return 0;
	}
	q->key = gw_req_strndup(rq, key, kl);
	if (q->key == NULL) {
		q->mode = CM_BYPASS;   /* out of memory: the core answers 503 */
		return 0;
	}
	now = gw_wall_now();
	o = rev_cstore_lookup(s, key, h);
	if (o != NULL && q->refresh) {
		q->stale = o;              /* revalidate it whatever its state now */
	} else if (o != NULL) {
		struct rev_cobj_view v;
		double age = rev_cobj_age(o, now), staleness;
		int fresh, validate, swr;
		rev_cobj_view(o, &v);
		fresh = age < v.lifetime;
		if (q->req_cc.max_age >= 0 && age > (double)q->req_cc.max_age)
			fresh = 0;
		if (q->req_cc.min_fresh >= 0 && v.lifetime - age < (double)q->req_cc.min_fresh)
			fresh = 0;
		validate = v.no_cache || (q->req_cc.flags & REV_CC_NO_CACHE);
		if (fresh && !validate) {
			stat_inc(q->worker, &WS(q)->hits);
			serve(rq, q, o, "HIT", "cache_hit");
			rev_cobj_put(o);
			return 1;
		}
		staleness = age - v.lifetime;
		swr = v.swr >= 0 && staleness < v.swr && q->req_cc.max_age < 0;
		if (!fresh && !validate && !v.no_stale &&
		    ((q->req_cc.max_stale >= 0 && staleness <= (double)q->req_cc.max_stale) || swr)) {
			stat_inc(q->worker, &WS(q)->stale);
			serve(rq, q, o, "STALE", "cache_stale");
			rev_cobj_put(o);
			if (swr && h->method == GW_M_GET && h->body == GW_BODY_NONE &&
			    !(h->flags & GW_HF_UPGRADE))
				start_refresh(rq, q);
			return 1;
		}
		q->stale = o;
	}
	if ((q->req_cc.flags & REV_CC_ONLY_IF_CACHED) && !q->refresh) {
		gw_req_set_verdict(rq, "cache_only", cr->path);
		gw_req_respond(rq, 504, NULL, NULL, 0, "Not in the cache (only-if-cached).");
		return 1;
	}
	if (h->method == GW_M_HEAD) {
		/* a HEAD miss is proxied as it is and not stored (a stale entry
		 * may still answer it under stale-if-error) */
		q->mode = CM_HEAD;
		stat_inc(q->worker, &WS(q)->misses);
		return 0;
	}
	/* collapsed forwarding: one origin fetch per key at a time (a refresh
	 * already leads its key: start_refresh entered it) */
	if (!q->waited && !q->refresh) {
		struct inflight *f;
		int pass;
		pthread_mutex_lock(&g_mu);
		pass = pass_check(key_hash(q->key), gw_mono_now());
		f = pass ? NULL : inflight_find(q->key);
		if (f != NULL) {
			if (q->stale != NULL) {    /* looked up again on wake-up */
				rev_cobj_put(q->stale);
				q->stale = NULL;
			}
			q->mode = CM_WAIT;
			q->deadline = gw_mono_now() + REV_CACHE_COLLAPSE_WAIT;
			gw_req_defer(rq);
			q->wnext = f->waiters;
			f->waiters = q;
			pthread_mutex_unlock(&g_mu);
			stat_inc(q->worker, &WS(q)->collapsed);
			return 1;
		}
		q->leader = pass ? NULL : inflight_add(q->key, kl);
		pthread_mutex_unlock(&g_mu);
	}
	q->mode = CM_FETCH;
	q->request_time = now;
	if (q->refresh)
		gw_req_set_verdict(rq, "cache_refresh", cr->path);
	else
		stat_inc(q->worker, &WS(q)->misses);
	/* we want a full response to store: the client's validators are
	 * answered from the stored copy, ours go to the origin */
	gw_req_hdr_del(rq, "if-none-match");
	gw_req_hdr_del(rq, "if-modified-since");
	/* a 304 would merge its header fields into the shared entry; one made
	 * for a user (Cookie, Authorization) must not: such a request fetches
	 * in full, and the answer is stored only when it may be (storable()) */
	if (q->stale != NULL && gw_http1_find(h, "authorization") == NULL &&
	    (cr->cache_ignore_cookie || gw_http1_find(h, "cookie") == NULL)) {
		struct rev_cobj_view v;
		rev_cobj_view(q->stale, &v);
		if (v.etag != NULL) {
			gw_req_hdr_add(rq, "If-None-Match", v.etag, v.etag_len);
			q->conditional = 1;
		} else if (v.last_modified >= 0) {
			char d[REV_HTTP_DATE_MAX];
			size_t dl = rev_http_date((time_t)v.last_modified, d);
			gw_req_hdr_add(rq, "If-Modified-Since", d, dl);
			q->conditional = 1;
		}
	}
	return 0;
}

/* ---- response hooks ---- */

/* Length of the "scheme://authority" part of a key. */
static size_t key_origin_len(const char *key)
{
	const char *a = strstr(key, "://");

	return a == NULL ? 0 : (size_t)(a + 3 - key) + strcspn(a + 3, "/");
}

/*
 * RFC 9111 4.4: after a successful unsafe request, the URIs in Location and
 * Content-Location are invalidated too, but only those with the target's
 * origin.  An absolute URL or an absolute path counts (a fragment is cut);
 * other relative references are left alone.
 */
static void invalidate_related(struct rev_cstore *s, const struct cq *q,
    const struct gw_http_head *resp)
{
	static const char *const names[] = { "location", "content-location", NULL };
	size_t ol = key_origin_len(q->key);

	if (ol == 0)
		return;
	for (int i = 0; names[i] != NULL; i++) {
		const struct gw_hdr *x = gw_http1_find(resp, names[i]);
		char url[KEY_MAX], key[KEY_MAX];
		const char *hash;
		size_t n;
		int k;

		if (x == NULL || x->value_len == 0)
			continue;
		hash = memchr(x->value, '#', x->value_len);
		n = hash != NULL ? (size_t)(hash - x->value) : x->value_len;
		if (x->value[0] == '/' && (n < 2 || x->value[1] != '/'))
			k = snprintf(url, sizeof url, "%.*s%.*s", (int)ol, q->key, (int)n, x->value);
		else
			k = snprintf(url, sizeof url, "%.*s", (int)n, x->value);
		if (k < 0 || (size_t)k >= sizeof url ||
		    rev_cache_key_from_url(key, sizeof key, url) == 0)
			continue;
		if (strncmp(key, q->key, ol) != 0 || key[ol] != '/' || strcmp(key, q->key) == 0)
			continue;
		rev_cstore_purge_key(s, key);
	}
}

static struct cq *watched(struct gw_req *rq)
{
	struct cq *q = map_find(rq, 0);

	return q != NULL && q->magic == CQ_MAGIC ? q : NULL;
}

void rev_cache_on_response_head(struct gw_req *rq, const struct gw_http_head *resp, void *side)
{
	struct cq *q = watched(rq);
	struct rev_cstore *s = atomic_load(&g_store);
	struct rev_resp_info ri;
	double now, lifetime;
	enum rev_nostore ns;
	int64_t expect;

	(void)side;
	if (q == NULL || s == NULL)
		return;
	if (q->refresh)
		q->refresh_ok = resp->status < 500;
	if (q->mode == CM_INVALIDATE) {
		if (resp->status < 400) {
			rev_cstore_purge_key(s, q->key);
			invalidate_related(s, q, resp);
		}
		return;
	}
	if (q->mode == CM_HEAD) {
		if (q->stale != NULL && (resp->status == 500 || resp->status == 502 ||
		    resp->status == 503 || resp->status == 504) && stale_if_error_ok(q)) {
			stat_inc(q->worker, &WS(q)->stale);
			serve(rq, q, q->stale, "STALE", "cache_stale");
		} else {
			gw_req_resp_hdr_del(rq, "x-cache");
			if (atomic_load(&g_xcache))
				gw_req_resp_hdr_add(rq, "X-Cache", "MISS", 4);
		}
		return;
	}
	if (q->mode != CM_FETCH)
		return;
	now = gw_wall_now();
	if (q->stale != NULL && q->conditional && resp->status == 304) {
		struct rev_cobj *n = rev_cstore_refresh(s, q->stale, resp, q->request_time, now,
		    q->cr->cache_ttl, q->cr->cache_stale_if_error);
		stat_inc(q->worker, &WS(q)->revalidated);
		serve(rq, q, n ? n : q->stale, "REVALIDATED",
		    q->refresh ? "cache_refresh" : "cache_revalidated");   /* the log tells them apart */
		rev_cobj_put(n);
		release_leader(q);
		return;
	}
	if (q->refresh && resp->status >= 500) {
		release_leader(q);         /* the entry stays as it is */
		return;
	}
	if (q->stale != NULL && (resp->status == 500 || resp->status == 502 || resp->status == 503 ||
	    resp->status == 504) && stale_if_error_ok(q)) {
		stat_inc(q->worker, &WS(q)->stale);
		serve(rq, q, q->stale, "STALE", "cache_stale");
		release_leader(q);
		return;
	}
	gw_req_resp_hdr_del(rq, "x-cache");
	if (atomic_load(&g_xcache))
		gw_req_resp_hdr_add(rq, "X-Cache", "MISS", 4);
	rev_resp_info(resp, &ri);
	if (q->cr->cache_ignore_set_cookie)
		ri.set_cookie = 0;         /* stored all the same, never with the cookie */
	lifetime = rev_cache_lifetime(&ri, now, q->cr->cache_ttl);
	ns = rev_cache_storable(gw_req_head(rq), &q->req_cc, &ri, lifetime);
	if (ns == REV_NOSTORE_REQ_COOKIE && q->cr->cache_ignore_cookie)
		ns = REV_STORE_OK;         /* the operator says: cookies never change these answers */
	if (ns == REV_STORE_OK) {
		expect = resp->body == GW_BODY_LENGTH ? (int64_t)resp->content_length :
		    resp->body == GW_BODY_NONE ? 0 : -1;
		q->fill = rev_cfill_begin(s, q->key, gw_req_head(rq), resp, &ri, lifetime,
		    q->request_time, now, expect, q->cr->cache_stale_if_error);
	} else {
		gw_debug("request %s: response not stored: %s", gw_req_id(rq), rev_nostore_names[ns]);
	}
	/* the response itself forbids storing (not the request): stop collapsing */
	if (ns != REV_STORE_OK && ns != REV_NOSTORE_METHOD && ns != REV_NOSTORE_REQ_NO_STORE &&
	    ns != REV_NOSTORE_AUTH && ns != REV_NOSTORE_REQ_COOKIE)
		pass_mark(q->key, 1);
	if (q->fill == NULL)
		release_leader(q);   /* nothing will be stored: the waiters go on their own */
}

void rev_cache_on_response_body(struct gw_req *rq, const char *data, size_t len, void *side)
{
	struct cq *q;

	(void)side;
	if ((q = watched(rq)) == NULL || q->fill == NULL)
		return;
	if (rev_cfill_data(q->fill, data, len) < 0) {
		/* over max_object: keep streaming, stop storing */
		rev_cfill_abort(q->fill);
		q->fill = NULL;
		pass_mark(q->key, 1);
		release_leader(q);
	}
}

void rev_cache_on_response_end(struct gw_req *rq, int complete, void *side)
{
	struct cq *q;

	(void)side;
	if ((q = watched(rq)) == NULL)
		return;
	if (!complete)
		q->refresh_ok = 0;
	if (q->fill != NULL) {
		if (!complete)
			rev_cfill_abort(q->fill);
		else if (rev_cfill_commit(q->fill) == 0)
			pass_mark(q->key, 0);     /* stored: collapse again */
		q->fill = NULL;
	}
	release_leader(q);
}

int rev_cache_stale_on_error(struct gw_req *rq)
{
	struct cq *q = watched(rq);

	if (q == NULL || (q->mode != CM_FETCH && q->mode != CM_HEAD) || q->refresh ||
	    !stale_if_error_ok(q))
		return 0;
	stat_inc(q->worker, &WS(q)->stale);
	serve(rq, q, q->stale, "STALE", "cache_stale");
	release_leader(q);
	return 1;
}

void rev_cache_done(struct gw_req *rq)
{
	struct cq *q = map_find(rq, 1);

	if (q == NULL)
		return;
	if (q->mode == CM_WAIT)
		return;   /* still in a waiter list: its wake-up finds the request dead */
	if (q->refresh && !q->refresh_ok)
		stat_inc(q->worker, &WS(q)->refresh_failures);
	if (q->fill != NULL) {
		rev_cfill_abort(q->fill);
		q->fill = NULL;
	}
	release_leader(q);
	if (q->stale != NULL) {
		rev_cobj_put(q->stale);
		q->stale = NULL;
	}
	q->magic = 0;
}

/* ---- console ---- */

void rev_cache_stats(struct rev_cache_stats *out)
{
	struct rev_cstore *s = atomic_load(&g_store);
	struct rev_cstore_stats ss;

	memset(out, 0, sizeof *out);
	for (int i = 0; i < GW_MAX_WORKERS; i++) {
		out->hits += atomic_load_explicit(&g_ws[i].hits, memory_order_relaxed);
		out->misses += atomic_load_explicit(&g_ws[i].misses, memory_order_relaxed);
		out->stale += atomic_load_explicit(&g_ws[i].stale, memory_order_relaxed);
		out->revalidated += atomic_load_explicit(&g_ws[i].revalidated, memory_order_relaxed);
		out->collapsed += atomic_load_explicit(&g_ws[i].collapsed, memory_order_relaxed);
		out->bypass += atomic_load_explicit(&g_ws[i].bypass, memory_order_relaxed);
		out->refreshes += atomic_load_explicit(&g_ws[i].refreshes, memory_order_relaxed);
		out->served_bytes += atomic_load_explicit(&g_ws[i].served_bytes, memory_order_relaxed);
		out->refresh_failures += atomic_load_explicit(&g_ws[i].refresh_failures,
		    memory_order_relaxed);
	}
	if (s == NULL)
		return;
	rev_cstore_stats(s, &ss);
	out->enabled = 1;
	out->objects = ss.objects;
	out->bytes = ss.bytes;
	out->memory = ss.memory;
	out->max_object = ss.max_object;
	out->evictions = ss.evictions;
	out->purged = ss.purged;
	out->stored = ss.stored;
}

int rev_cache_purge_url(const char *url)
{
	struct rev_cstore *s = atomic_load(&g_store);
	char key[KEY_MAX];
	int n;

	if (rev_cache_key_from_url(key, sizeof key, url) == 0)
		return -1;
	n = s != NULL ? rev_cstore_purge_key(s, key) : 0;
	gw_info("reverse cache: purged %d object(s) of %s", n, key);
	gw_event_push("cache", "purged %d object(s) of %s", n, key);
	return n;
}

int rev_cache_purge_prefix(const char *host_prefix)
{
	struct rev_cstore *s = atomic_load(&g_store);
	int n;

	if (host_prefix == NULL || host_prefix[0] == '\0')
		return 0;
	n = s != NULL ? rev_cstore_purge_prefix(s, host_prefix) : 0;
	gw_info("reverse cache: purged %d object(s) under %.200s", n, host_prefix);
	gw_event_push("cache", "purged %d object(s) under %.200s", n, host_prefix);
	return n;
}
