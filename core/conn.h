/*
 * core/conn: client connections (internal to core).
 * The worker accepts, then hands each socket to gw_conn_accept(); from then
 * on the connection belongs to the conn module until gw_conn_close().
 */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <sys/socket.h>

#include "core/upstream.h"   /* the pool, for the worker */

struct gw_worker;
struct gw_lspec;
struct gw_snapshot;

/* Take ownership of fd accepted on lspec under snapshot snap. */
void gw_conn_accept(struct gw_worker *w, int fd, const struct sockaddr *peer, socklen_t plen,
    const struct gw_lspec *lspec, struct gw_snapshot *snap);
/* Graceful stop: close idle connections now, others after their request. */
void gw_conn_drain_all(struct gw_worker *w);
/* Immediate stop: close everything. */
void gw_conn_close_all(struct gw_worker *w);
/* A reload removed the listening socket lfd: close its idle connections now
 * and the others after their current request (tunnels run on). */
void gw_conn_listener_gone(struct gw_worker *w, int lfd);

#endif
