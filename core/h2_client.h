/*
 * core/h2_client: HTTP/2 toward upstream servers (an upstream with
 * protocol = "h2").  The upstream engine (core/upstream.c) calls these at
 * its seam: an exchange whose rq->up_h2 is set is attached to a shared
 * session instead of an HTTP/1.1 connection, through a socket-less struct
 * upconn whose bytes are translated (see core/h2_client.c).
 */
#ifndef GW_H2_CLIENT_H
#define GW_H2_CLIENT_H

struct gw_pool;
struct gw_req;
struct upconn;
struct gw_h2_client;

/* Put rq (its pool key made) on a session for its key: one with room, or
 * (may_open: rq->addrs resolved and vetted) a new one.  Returns 1 when rq
 * was taken (queued, or failed through its sink), 0 when there is no
 * session to join yet (the caller resolves, then calls again with
 * may_open). */
int gw_h2_client_attach(struct gw_req *rq, int may_open);
/* The engine wrote into vu->out (the head, body bytes): send them. */
void gw_h2_client_out(struct upconn *vu);
/* The engine reads vu: move what the stream received into vu->in.  -1 when
 * the exchange was ended here (vu is freed), else 0. */
int gw_h2_client_pull(struct upconn *vu);
/* vu is being freed: cancel its stream (RST_STREAM CANCEL) if open. */
void gw_h2_client_gone(struct upconn *vu);
/* Close sessions without streams idle over limit seconds (all 1: every
 * idle one; 2: every session, streams failed: the pool is freed). */
void gw_h2_client_expire(struct gw_pool *p, double limit, int all);

/* TLS inspection (core/conn_bump.c): the origin's verified check session
 * u (idle, its TLS done, ALPN h2) becomes an open session under its pool
 * key, its address the one the CONNECT vetted.  0: u was taken (freed);
 * -1: nothing changed (the caller frees u). */
struct gw_worker;
int gw_h2_client_adopt(struct gw_worker *w, struct upconn *u);

/* internal: a new session for rq's key and addresses (not yet connecting)
 * or NULL (rq failed). */
struct gw_h2_client *gw_h2_client__open(struct gw_req *rq);

#endif
