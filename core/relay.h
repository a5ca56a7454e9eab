/*
 * core/relay: byte movers shared by the client and upstream ends (see
 * relay.c): reads, writes, lazy read arming, splice pipes, body framing.
 */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/http1.h"

struct event;
struct evbuffer;
struct gw_conn;
struct upconn;

/* A body on its way through: how it is framed on the way in (kind,
 * remaining, ck) and out (out_chunked), and who watches it (tap). */
struct xfer {
	/* optional observer of the decoded body bytes (response taps) */
	void (*tap)(void *arg, const char *p, size_t n);
	void *tap_arg;
	enum gw_body_kind kind;
	uint64_t remaining;
	struct gw_chunked ck;
	int out_chunked;           /* re-encode as chunked */
	/* trailer fields for the last chunk when re-encoding (an h2
	 * upstream's, core/h2_client.c; valid checked fields, arena) */
	const struct gw_hdr *trailers;
	int ntrailers;
	int done;
	uint64_t moved;
};

/* Move body bytes of x from src to dst, decoding chunked input and encoding
 * chunked output as x says.  Returns 0, or -1 on a framing error; x->done
 * is set at the end of the body. */
int gw_relay_xfer_pump(struct xfer *x, struct evbuffer *src, struct evbuffer *dst);
/* Append src to dst by copy (src is emptied); 0, or -1 out of memory. */
int gw_relay_append_copy(struct evbuffer *dst, struct evbuffer *src);
/* Drop what was added to b after its first keep bytes; 0, or -1 out of memory. */
int gw_relay_truncate(struct evbuffer *b, size_t keep);

/* Read from fd (through ssl when set) into buf; *big is the read-size state
 * kept per endpoint.  Returns bytes read, 0 on EOF, -1 on error, -2 when
 * nothing is available now. */
ssize_t gw_relay_read(int fd, SSL *ssl, struct evbuffer *buf, int *big);
/* After a read callback's gw_relay_read returned n: whether OpenSSL may hold
 * whole records read ahead that epoll cannot see (so the callback should
 * run again at once).  Only after a read that got bytes: when nothing came
 * (-2), what it holds is at most part of a record (SSL_has_pending counts
 * that too), the socket's next bytes wake the read, and re-activating
 * would run the callback forever without the loop ever polling again (a
 * peer that stops mid-record would spin its worker and stall the rest). */
int gw_relay_ssl_more(SSL *ssl, ssize_t n);
/* Write from buf (draining what was written).  Returns bytes written, 0 if
 * the socket is full, -1 on error. */
int gw_relay_write(int fd, SSL *ssl, struct evbuffer *buf);
/* Half-close our sending side (TLS: close_notify first). */
void gw_relay_shutdown(int fd, SSL *ssl);

/* Lazy read arming of the client (c) and upstream (u) read events: arming
 * is at once, disarming waits until the event fires unwanted, when the
 * callback's gw_relay_read_unwanted() disarms it (returns 1: do nothing). */
void gw_relay_rd_enable(struct gw_conn *c, int on);
void gw_relay_up_rd_enable(struct upconn *u, int on);
int gw_relay_read_unwanted(struct event *ev, int on, int *armed);

/* splice(2) pipes of a plain tunnel, per direction d (see relay.c). */
enum { SP_C2U, SP_U2C };                /* client -> upstream, upstream -> client */
struct tsplice {
	int r[2], w[2];            /* per direction: pipe ends, -1 = none */
	size_t held[2];            /* bytes in the pipe */
	unsigned failed : 2;       /* per direction: no pipe to be had, stay on evbuffers */
	unsigned full : 2;         /* per direction: the source is paused until the pipe drains */
};
/* Bytes in d's pipe. */
size_t gw_relay_sp_held(const struct gw_conn *c, int d);
/* Is d's source paused until its pipe drains? */
int gw_relay_sp_full(const struct gw_conn *c, int d);
/* Close d's pipe. */
void gw_relay_sp_drop(struct tsplice *s, int d);
/* Close both pipes and free c->sp. */
void gw_relay_sp_free(struct gw_conn *c);
/* After an evbuffer read of n bytes in d: make d's pipe if worth it. */
void gw_relay_sp_maybe_make(struct gw_conn *c, int d, ssize_t n);
/* Should d read into its pipe now (rather than into evbuffers)? */
int gw_relay_sp_ready(const struct gw_conn *c, int d);
/* Socket -> pipe for d; returns as gw_relay_read. */
ssize_t gw_relay_sp_in(struct gw_conn *c, int d);
/* Pipe -> socket for d: bytes moved, 0 if the socket is full, -1 on error. */
ssize_t gw_relay_sp_out(struct gw_conn *c, int d);

#endif
