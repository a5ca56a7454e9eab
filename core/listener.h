/*
 * core/listener: the listening-socket registry, kept across reloads.  For
 * every configured address (family, address, TLS) the main thread opens one
 * SO_REUSEPORT socket per worker; a reload reuses the sockets of addresses
 * that did not change (no close, no rebind), so established connections and
 * the kernel backlog survive it.  Each worker then serves its column of the
 * snapshot's sockets (core/worker.c).
 *
 * Main thread only.
 */
#ifndef GW_LISTENER_H
#define GW_LISTENER_H

struct gw_snapshot;
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

/* Forget the registry (at exit; the sockets are the workers' to close). */
void gw_listener_free(void);

#endif
