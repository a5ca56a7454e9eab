/*
 * core/conn_nest: TLS inspection of a CONNECT that did not arrive on a
 * plain TCP connection: over a TLS proxy listener (an HTTPS proxy) in
 * HTTP/1.1, or on an HTTP/2 stream (RFC 9113 8.5).  The peek, the origin's
 * check handshake and the minted TLS server (core/conn_bump.c) need a
 * connection of their own, read from a socket; here the CONNECT gets one:
 *
 *   socketpair(AF_UNIX): one end becomes a new plain client connection of
 *   the same listener and family (its peer the outer's), and the CONNECT's
 *   request (its head, id, the family's state: signed-in user, decision,
 *   inspection plan) moves to it as it is, already decided (DEC_PEEK), so
 *   nothing is judged twice and no credentials are replayed; from there
 *   it runs exactly the plain listener's path (peek, bypass or inspect,
 *   h1 or h2 inside, block pages, DLP, access log).
 *   The outer connection or stream gets a fresh request in the CONNECT's
 *   place: a tunnel to the other end (its "200", the TLS or DATA framing,
 *   flow control, half-close, tunnel_idle as for any CONNECT).  That relay
 *   is neither logged nor counted (nest_relay): the CONNECT's line and
 *   counts are the inner connection's, once, as on a plain listener.
 *
 * Either side closing closes the other (EOF on the socketpair).  The inner
 * connection counts against the worker's max_conns and the per-client
 * limit like any connection; over them the CONNECT is answered 503.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/conn_int.h"
#include "core/h2_int.h"
#include "core/log.h"

/* The inner connection (on sv[0]); *relay is the outer's end.  NULL when a
 * limit or the system refused (nothing is left open then). */
static struct gw_conn *inner_new(const struct gw_conn *o, struct gw_req *rq, int *relay)
{
	struct gw_conn *ic;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		gw_warn("%s: request %s: socketpair for inspection: %s", rq->proto->name, rq->id, strerror(errno));
		return NULL;
	}
	ic = gw_conn__nested(o, rq->snap, rq->side, sv[0]);
	if (ic == NULL) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	*relay = sv[1];
	return ic;
}

/* rq leaves where it came from for ic (the same worker, so its arena and
 * every event it holds stay valid). */
static void move(struct gw_req *rq, const struct gw_conn *o, struct gw_conn *ic)
{
	(void)gw_req_local(rq);   /* the listener's address, not the socketpair's */
	/* the outer connection's sign-in (Negotiate is per connection): its
	 * requests inside are judged as that connection's would be */
	if (o->fam_data != NULL && rq->proto->conn_data_dup != NULL)
		ic->fam_data = rq->proto->conn_data_dup(o->fam_data, &ic->fam_data_free);
	rq->c = ic;
	rq->sink = &gw_conn_sink;
	rq->sink_arg = ic;
	rq->owner = &ic->upo;
	rq->peer = &ic->peer;
	rq->h2s = NULL;
	ic->rq = rq;
}

/* A fresh request for the outer side's relay (outer's sink is set by the caller). */
static struct gw_req *relay_new(struct gw_conn *c, const struct gw_req *rq)
{
	struct gw_req *r = gw_req__new(c);

	if (r == NULL)
		return NULL;
	r->snap = rq->snap;
	r->side = rq->side;
	r->nest_relay = 1;
	return r;
}

void gw_conn_nest__h1(struct gw_conn *c, struct gw_req *rq)
{
	struct gw_conn *ic;
	struct gw_req *r;
	int fd;

	if ((ic = inner_new(c, rq, &fd)) == NULL) {
		gw_conn__respond_error(rq, 503, "cannot inspect: too many connections");
		return;
	}
	if ((r = relay_new(c, rq)) == NULL) {
		close(fd);
		gw_conn__close(ic, GW_CLOSE_INTERNAL);
		gw_conn__respond_error(rq, 503, "out of memory");
		return;
	}
	move(rq, c, ic);
	c->rq = r;
	r->reqx.done = 1;
	if (gw_upstream__local(r, fd, "inspection") < 0) {   /* (else its 200 is out or queued) */
		close(fd);
		rq->reason = "out of memory";
		gw_conn__close(ic, GW_CLOSE_INTERNAL);
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	if (ic->state == CS_BUSY)
		gw_conn_bump__peek_begin(ic, rq);
}

void gw_conn_nest__h2(struct gw_req *rq)
{
	struct gw_h2s *s = rq->h2s;
	struct gw_conn *c = s->h->c, *ic;
	struct gw_req *r;
	int fd;

	if ((ic = inner_new(c, rq, &fd)) == NULL) {
		gw_h2__respond_error(rq, 503, "cannot inspect: too many connections");
		return;
	}
	if ((r = relay_new(c, rq)) == NULL) {
		close(fd);
		gw_conn__close(ic, GW_CLOSE_INTERNAL);
		gw_h2__respond_error(rq, 503, "out of memory");
		return;
	}
	r->max_body = rq->max_body;
	r->sink = &gw_h2_sink;
	r->sink_arg = s;
	r->h2s = s;
	move(rq, c, ic);
	rq->nest_h2 = 1;
	s->rq = r;
	if (gw_h2_tunnel__nest(r, fd) < 0) {
		close(fd);
		rq->reason = "out of memory";
		gw_conn__close(ic, GW_CLOSE_INTERNAL);
		gw_h2__reset(s, NGHTTP2_INTERNAL_ERROR, "out of memory");
		return;
	}
	if (ic->state == CS_BUSY)
		gw_conn_bump__peek_begin(ic, rq);
}
