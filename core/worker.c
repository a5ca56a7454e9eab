/*
 * core/worker: worker threads (see worker.h).  Each worker serves its own
 * SO_REUSEPORT listening sockets (core/listener.c); on a new snapshot it
 * keeps the listeners whose socket is unchanged (same fd, no rebind), opens
 * the new ones and closes those that went away, so established connections
 * never notice.
 */
#include "core/worker.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/conn.h"
#include "core/dns.h"
#include "core/heap.h"
#include "core/listener.h"
#include "core/proto.h"
#include "core/snapshot.h"

char gw_id_prefix[8];

#define TICK_SECS 0.2

void gw_timer_set(struct event *ev, double secs)
{
	struct event_base *base;
	const struct timeval *c;
	struct timeval tv;

	if (secs <= 0) {
		event_del(ev);
		return;
	}
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	/* (asked each time, not cached: a cached pointer would outlive a
	 * freed base; the base finds its few durations by a short scan) */
	if (tv.tv_usec == 0 && (base = event_get_base(ev)) != NULL &&
	    (c = event_base_init_common_timeout(base, &tv)) != NULL)
		event_add(ev, c);
	else
		event_add(ev, &tv);
}

/* conn.c resumes accepting when a connection ends below max_conns. */
void gw_worker_resume_accept(struct gw_worker *w)
{
	gw_listener_resume(w);
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_snapshot *s = atomic_exchange(&w->pending, NULL);

	(void)fd;
	(void)what;
	if (s != NULL) {
		struct gw_snapshot *old = w->snap;
		if (atomic_load(&w->stop)) {
			gw_snapshot_unref(s);
		} else {
			gw_listener_apply(w, s);
			w->snap = s;
			gw_pool_flush(w->pool);
			gw_snapshot_unref(old);
		}
	}
	if (atomic_load(&w->stop) == 1 && w->listeners != NULL) {
		gw_listener_close_all(w);
		gw_conn_drain_all(w);
	}
	if (atomic_load(&w->stop) == 2) {
		gw_listener_close_all(w);
		gw_conn_close_all(w);
		gw_pool_flush(w->pool);
		event_base_loopbreak(w->base);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	static __thread unsigned n;

	(void)fd;
	(void)what;
	gw_alog_flush(&w->alog);
	if (++n % 5 == 0)
		gw_pool_expire(w);
	if (atomic_load(&w->stop) && w->nconns == 0) {
		gw_pool_flush(w->pool);
		event_base_loopbreak(w->base);
	}
}

struct gw_worker *gw_worker_new(int id, struct gw_snapshot *snap, uint64_t max_conns)
{
	struct gw_worker *w = calloc(1, sizeof *w);
	struct timeval tick = { 0, (suseconds_t)(TICK_SECS * 1e6) };

	if (w == NULL)
		return NULL;
	w->id = id;
	w->max_conns = max_conns > 0 ? max_conns : 1;
	w->base = event_base_new();
	w->stats = aligned_alloc(64, (sizeof(struct gw_stats_shard) + 63) & ~(size_t)63);
	w->scratch = malloc(4096 * 32);
	w->pool = gw_pool_new();
	if (w->base == NULL || w->stats == NULL || w->scratch == NULL || w->pool == NULL)
		goto fail;
	memset(w->stats, 0, sizeof *w->stats);
	w->dns = gw_dns_new(w->base, &snap->conf->global.dns);
	if (w->dns == NULL)
		goto fail;
	w->ev_cmd = event_new(w->base, -1, 0, cmd_cb, w);
	w->ev_tick = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
	if (w->ev_cmd == NULL || w->ev_tick == NULL)
		goto fail;
	event_add(w->ev_tick, &tick);
	gw_alog_buf_init(&w->alog);
	gw_snapshot_ref(snap);
	w->snap = snap;
	gw_listener_apply(w, snap);
	return w;
fail:
	gw_worker_join_free(w);
	return NULL;
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;

	event_base_dispatch(w->base);
	gw_alog_flush(&w->alog);
	gw_heap_small_flush();
	atomic_store(&w->exited, 1);
	return NULL;
}

int gw_worker_start(struct gw_worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void gw_worker_post_snapshot(struct gw_worker *w, struct gw_snapshot *s)
{
	struct gw_snapshot *old;

	gw_snapshot_ref(s);
	old = atomic_exchange(&w->pending, s);
	if (old != NULL)
		gw_snapshot_unref(old);
	event_active(w->ev_cmd, EV_TIMEOUT, 0);
}

void gw_worker_post_stop(struct gw_worker *w)
{
	atomic_store(&w->stop, 1);
	event_active(w->ev_cmd, EV_TIMEOUT, 0);
}

void gw_worker_post_abort(struct gw_worker *w)
{
	atomic_store(&w->stop, 2);
	event_active(w->ev_cmd, EV_TIMEOUT, 0);
}

void gw_worker_join_free(struct gw_worker *w)
{
	struct gw_snapshot *p;

	if (w == NULL)
		return;
	if (w->thread && !atomic_load(&w->exited))
		pthread_join(w->thread, NULL);
	if (w->base != NULL) {
		struct timeval tenth = { 0, 100000 };
		gw_listener_close_all(w);
		gw_conn_close_all(w);
		/* run the deferred frees queued by closes, and wait (bounded) for
		 * requests whose family still owes a gw_req_wake() */
		event_base_loop(w->base, EVLOOP_NONBLOCK);
		for (int i = 0; i < 100 && w->ndeferred > 0; i++) {
			event_base_loopexit(w->base, &tenth);
			event_base_loop(w->base, EVLOOP_ONCE);
		}
		if (w->ndeferred > 0)
			gw_error("worker %d: %llu requests still wait for their family at exit", w->id,
			    (unsigned long long)w->ndeferred);
	}
	gw_pool_free(w->pool);
	gw_dns_free(w->dns);
	if (w->ev_cmd)
		event_free(w->ev_cmd);
	if (w->ev_tick)
		event_free(w->ev_tick);
	gw_alog_buf_free(&w->alog);
	p = atomic_exchange(&w->pending, NULL);
	if (p != NULL)
		gw_snapshot_unref(p);
	if (w->snap != NULL)
		gw_snapshot_unref(w->snap);
	if (w->base)
		event_base_free(w->base);
	free(w->stats);
	free(w->scratch);
	free(w);
}
