/*
 * core/listener: the listening-socket registry, kept across reloads.  For
 * every configured address (family, address, TLS) the main thread opens one
 * SO_REUSEPORT socket per worker; a reload reuses the sockets of addresses
 * that did not change (no close, no rebind), so established connections and
 * the kernel backlog survive it.
 *
 * Each worker serves its column of the snapshot's sockets with its own
 * listeners, and stops accepting while it holds its share of
 * global.max_connections (new connections wait in the kernel backlog).
 *
 * gw_listener_build/commit/free: main thread.  The others: the worker's
 * own thread.
 */
#ifndef GW_LISTENER_H
#define GW_LISTENER_H

#include <stddef.h>

struct gw_snapshot;
struct gw_worker;
struct conf_errors;

/*
 * Fill s->listeners from the listeners of s's sides: registry sockets for
 * unchanged addresses, nworkers new sockets for each new one.  Returns 0, or
 * -1 (errors appended to errs as "FILE:LINE: listeners: ..."); on failure
 * only the sockets this call opened are closed and s has no listeners.
 */
int gw_listener_build(struct gw_snapshot *s, int nworkers, struct conf_errors *errs);

/* s was published: the registry becomes exactly s's listeners (the sockets
 * now belong to the workers, which close those that went away). */
void gw_listener_commit(const struct gw_snapshot *s);

/*
 * Main thread, for /healthz: 1 when every socket of s (the serving
 * generation, nworkers columns) is in the listening state (SO_ACCEPTCONN);
 * else 0 with why naming the first one that is not.  Only while no stop
 * has begun (stopping workers close their sockets).
 */
int gw_listener_accepting(const struct gw_snapshot *s, int nworkers, char *why, size_t whylen);

/* Forget the registry (at exit; the sockets are the workers' to close). */
void gw_listener_free(void);

/* ---- each worker's listeners (its own thread) ---- */

/*
 * Serve s's listeners on worker w (socket fds[w->id] of each): a listener
 * whose socket is unchanged is kept as it is, a new socket gets a listener
 * (disabled while accepting is paused), and the listeners of sockets that
 * went away are closed after their connections heard (gw_conn_listener_gone).
 */
void gw_listener_apply(struct gw_worker *w, const struct gw_snapshot *s);
/* Close all of w's listeners (stopping). */
void gw_listener_close_all(struct gw_worker *w);
/* Accept again on all of w's listeners (below its connection share); does
 * nothing once a stop was asked. */
void gw_listener_resume(struct gw_worker *w);

#endif
