/*
 * core/upstream: the upstream engine's public part, the per-worker pool of
 * idle upstream connections (the worker makes, expires and frees it).  The
 * engine itself (connect, send, receive, retry) is driven by the client
 * connection through the friend calls of core/conn_int.h.
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

struct gw_pool;
struct gw_worker;

/* Per-worker upstream connection pool (also holds the worker's spare
 * buffers and arena blocks). */
struct gw_pool *gw_pool_new(void);
void gw_pool_flush(struct gw_pool *p);        /* close all idle connections */
void gw_pool_free(struct gw_pool *p);
void gw_pool_expire(struct gw_worker *w);     /* close connections idle too long */

#endif
