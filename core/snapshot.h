/*
 * core/snapshot: one immutable, reference-counted configuration generation:
 * the loaded struct conf, each family's compiled data, and the listening
 * sockets to serve.  Built and validated on the main thread; published to
 * workers by handoff (see worker.h); every connection pins the snapshot it
 * was accepted under, so a reload never changes a live request.
 */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "conf/conf.h"

struct gw_proto;
struct event_base;
struct gw_tls;
struct gw_tls_specs;

#define GW_MAX_WORKERS 64
#define GW_MAX_SIDES 2

/* One listening address; fds[i] is worker i's SO_REUSEPORT socket. */
struct gw_lspec {
	const struct conf_listener *cl;
	const struct gw_proto *proto;
	int side;                  /* index into side_data */
	int fds[GW_MAX_WORKERS];
};

/* How a family plugs into snapshots: compile its data from the config. */
struct gw_side {
	const struct gw_proto *proto;
	/* Compile; returns 0 (and *data) or -1 after appending errors. */
	int (*compile)(const struct conf *cf, struct conf_errors *errs, void **data);
	void (*free)(void *data);
	/* The family's listeners in cf. */
	const struct conf_listener *(*listeners)(const struct conf *cf, size_t *n);
	/* Add the family's TLS specs in cf to sp (core/tls.h); 0, or -1 when
	 * out of memory.  NULL: the family has no TLS. */
	int (*tls)(const struct conf *cf, struct gw_tls_specs *sp);
	/* Main thread: this data became the current generation (start health
	 * checks, timers on main_base), or stopped being current.  Both may
	 * be NULL; data may be NULL when the family is not configured. */
	void (*activate)(void *data, struct event_base *main_base);
	void (*deactivate)(void *data);
};

struct gw_snapshot {
	_Atomic int refs;
	uint64_t generation;
	double loaded_at;
	struct conf *conf;
	const struct gw_side *sides[GW_MAX_SIDES];
	void *side_data[GW_MAX_SIDES];
	int nsides;
	struct gw_lspec *listeners;
	size_t nlisteners;
	struct gw_tls *tls;        /* TLS contexts of this generation */
};

static inline void gw_snapshot_ref(struct gw_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drop a reference; the last one frees the conf and side data (not the
 * listener fds, which belong to workers once handed over). */
void gw_snapshot_unref(struct gw_snapshot *s);

#endif
