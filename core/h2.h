/*
 * core/h2: HTTP/2 server connections (libnghttp2 does the framing, HPACK and
 * flow control).  A client connection (core/conn.c) that negotiated "h2" by
 * ALPN, or sent the HTTP/2 preface on an h2c listener, is handed over here;
 * each stream becomes a struct gw_req that goes through its family's
 * on_request and the upstream engine exactly like an HTTP/1 request, with
 * the stream as the exchange's sink (core/h2_sink.c).  The connection stays
 * a struct gw_conn (accounting, shutdown, per-client limits); only its
 * bytes are moved by this module from the hand-over on.
 */
#ifndef GW_H2_H
#define GW_H2_H

#include <stddef.h>

#include "core/stats.h"

struct evbuffer;
struct gw_conn;
struct gw_req;

/* Run c as HTTP/2 from now on (its TLS handshake chose h2, or the h2c
 * preface came first): pre holds bytes already read (NULL: none; they are
 * taken).  On failure c is closed. */
void gw_h2_start(struct gw_conn *c, struct evbuffer *pre);
/* h2c listener, before the first request: 1 when c->in starts with the
 * HTTP/2 preface (h2 took c over) or may still become it (wait for more
 * bytes); 0 for HTTP/1 (and from then on this is not asked again). */
int gw_h2c_sniff(struct gw_conn *c);
/* gw_conn__close() of an HTTP/2 connection: every stream still open ends
 * (logged, its upstream exchange cut) and the session is freed. */
void gw_h2_conn_gone(struct gw_conn *c, enum gw_close_reason why);
/* Graceful stop (shutdown, reload removed the listener): GOAWAY with the
 * last stream id; streams in flight finish, then the connection closes. */
void gw_h2_drain(struct gw_conn *c);
/* A stream's deferred request woke (gw_req_wake): carry out its decision. */
void gw_h2_dispatch(struct gw_req *rq);

/* The HTTP/2 client's request trailers of rq (an h2 stream's request)
 * into out (at most max; pointers valid while the stream lives), for an
 * h2 upstream (core/h2_client.c).  Returns how many (0: none, or rq is
 * not from an HTTP/2 client). */
struct gw_hdr;
int gw_h2_req_trailers(struct gw_req *rq, struct gw_hdr *out, int max);
/* True once rq's HTTP/2 client stream sent END_STREAM (or rq is not an
 * HTTP/2 client's): its request trailers, if any, are all there. */
int gw_h2_req_ended(const struct gw_req *rq);

#endif
