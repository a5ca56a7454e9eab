/*
 * core/worker: one event loop thread.  A worker owns its event_base, its
 * resolver, its listening sockets (SO_REUSEPORT, one per address per worker),
 * its client connections, its upstream connection pool, its stats shard and
 * its access-log buffer.  A connection lives and dies on one worker.
 *
 * The main thread talks to a worker only through gw_worker_post_*(): it sets
 * an atomic field and activates the worker's command event (safe because
 * evthread_use_pthreads() runs before any base is created).
 */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/log.h"
#include "core/stats.h"

struct event_base;
struct event;
struct gw_snapshot;
struct gw_dns;
struct gw_wlistener;
struct gw_conn;
struct gw_pool;

struct gw_worker {
	int id;
	pthread_t thread;
	struct event_base *base;
	struct gw_dns *dns;
	struct gw_snapshot *snap;              /* current; only this worker changes it */
	struct gw_snapshot *_Atomic pending;   /* handed over by main */
	_Atomic int stop;                      /* 1: graceful stop requested */
	_Atomic int exited;
	struct event *ev_cmd;
	struct event *ev_tick;                 /* 1 s housekeeping: log flush, pool idle */
	struct gw_stats_shard *stats;
	struct gw_alog_buf alog;
	struct gw_wlistener *listeners;
	struct gw_conn *conns;                 /* all live client connections */
	uint64_t nconns;
	uint64_t max_conns;                    /* this worker's share of max_connections */
	int accept_paused;
	struct gw_pool *pool;
	uint64_t req_seq;
	uint64_t ndeferred;                    /* requests waiting for gw_req_wake() */
	unsigned char *scratch;                /* read buffer for heads */
};

/* Create worker id with the first snapshot (a reference is taken). */
struct gw_worker *gw_worker_new(int id, struct gw_snapshot *snap, uint64_t max_conns);
int gw_worker_start(struct gw_worker *w);
/* Hand a new snapshot over (takes a reference on the worker's behalf). */
void gw_worker_post_snapshot(struct gw_worker *w, struct gw_snapshot *s);
/* Ask for a graceful stop: close listeners, finish in-flight work, exit. */
void gw_worker_post_stop(struct gw_worker *w);
/* Ask for an immediate stop (grace period over). */
void gw_worker_post_abort(struct gw_worker *w);
/* Worker thread: accept again after a connection ended below the worker's
 * share of max_connections (core/listener.c pauses accepting at it). */
void gw_worker_resume_accept(struct gw_worker *w);
/* Arm ev to fire in secs (<= 0: disarm).  Whole-second durations, the
 * configured timeouts, use libevent's common timeouts on ev's base (one
 * queue per duration: adding and deleting are O(1) where the heap is
 * O(log n) with thousands of upstream connections armed); other
 * durations, and any past libevent's 256 per base, use the heap.  Call
 * from the thread that runs ev's base. */
void gw_timer_set(struct event *ev, double secs);
void gw_worker_join_free(struct gw_worker *w);

/* Process-wide random prefix for request ids (set once at start). */
extern char gw_id_prefix[8];

#endif
