/*
 * core/relay: the byte movers both ends of an exchange share.  Reads
 * (readv into evbuffers, or SSL_read draining what OpenSSL holds), writes
 * done at once, half-close, the lazy arming of read events, the splice(2)
 * pipes of plain tunnels, and the body framing pump (xfer: decode chunked
 * or length-delimited bodies, re-encode as the other side needs, show the
 * bytes to a tap).  Leaves: nothing here calls back into the connection or
 * the upstream engine; the state they act on is in core/conn_int.h.
 */
#include "core/relay.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/conn_int.h"
#include "core/http1_out.h"
#include "core/log.h"
#include "core/strlit.h"

/*
 * Want reads on a read event (on) or not; returns whether they are wanted
 * now (was_on: whether they were).  Arming is at once; disarming is lazy: the
 * event stays in epoll (*armed) until it fires unwanted and the callback
 * calls gw_relay_read_unwanted().  A keep-alive client waiting for its response and a
 * pooled upstream connection send nothing, so a request costs no epoll_ctl
 * DEL/ADD pair per side.  At EOF the event is removed at once.  Bytes OpenSSL
 * already holds are invisible to epoll, so wanting reads again activates.
 */
static int read_arm(struct event *ev, int was_on, int *armed, int eof, SSL *ssl, int on)
{
	if (on && !eof) {
		if (!*armed) {
			event_add(ev, NULL);
			*armed = 1;
		}
		if (!was_on && ssl != NULL && SSL_has_pending(ssl))
			event_active(ev, EV_READ, 0);
		return 1;
	}
	if (eof && *armed) {
		event_del(ev);
		*armed = 0;
	}
	return 0;
}

/* In a read callback: if reads are not wanted, the event fired only because
 * it is still armed (read_arm): disarm it now; returns 1 if so. */
int gw_relay_read_unwanted(struct event *ev, int on, int *armed)
{
	if (on || !*armed)
		return 0;
	event_del(ev);
	*armed = 0;
	return 1;
}

void gw_relay_rd_enable(struct gw_conn *c, int on)
{
	int armed = c->rd_armed;

	c->rd_on = read_arm(&c->ev_rd, c->rd_on, &armed, c->rd_eof, c->ssl, on);
	c->rd_armed = armed;
}

void gw_relay_up_rd_enable(struct upconn *u, int on)
{
	int was = u->rd_on;

	u->rd_on = read_arm(&u->ev_rd, u->rd_on, &u->rd_armed, u->eof, u->ssl, on);
	/* an HTTP/2 stream's connection (fd -1) has no socket to wake the
	 * read: look at what the stream holds (core/h2_client.c) */
	if (u->fd < 0 && u->rd_on && !was)
		event_active(&u->ev_rd, EV_READ, 0);
}

/*
 * Read from fd into buf: up to READ_MAX bytes when *big, else READ_SMALL
 * (each read reserves a fresh buffer chain, and a 256 KiB one costs more
 * in malloc/free than a small request's whole parse).  *big becomes whether
 * this read was not small, or READ_ERR_PENDING.  Returns bytes read, 0 on
 * EOF, -1 on error, -2 when nothing is available now.
 */
#define READ_ERR_PENDING 2

static ssize_t buf_read(struct evbuffer *buf, int fd, int *big)
{
	struct evbuffer_iovec v[2];
	int was_big = *big;

	if (was_big == READ_ERR_PENDING) {
		*big = 0;
		return -1;   /* the error the read after a full small read met */
	}
	int nv = evbuffer_reserve_space(buf, was_big ? READ_MAX : READ_SMALL, v, 2);
	struct iovec iov[2];
	ssize_t n;

	if (nv <= 0)
		return -1;
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	do
		n = readv(fd, iov, nv);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		evbuffer_commit_space(buf, v, 0);
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -1;
	}
	*big = n >= READ_SMALL;
	size_t left = (size_t)n;
	for (int i = 0; i < nv; i++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(buf, v, nv);
	if (*big && !was_big) {
		/* a full small read: take the rest now; an error is kept for the
		 * next call (the kernel reports it only once), EOF repeats itself */
		ssize_t m = buf_read(buf, fd, big);
		if (m > 0)
			n += m;
		*big = m == -1 ? READ_ERR_PENDING : 1;
	}
	return n;
}

/* Like buf_read, through TLS when ssl is set.  Reads until the TLS layer
 * holds nothing more: what it holds, level-triggered epoll cannot see, and
 * what is still in the socket, epoll reports (so no read(2) ends in EAGAIN
 * after a request that came in one piece). */
ssize_t gw_relay_read(int fd, SSL *ssl, struct evbuffer *buf, int *big)
{
	size_t total = 0;

	if (ssl == NULL)
		return buf_read(buf, fd, big);
	while (total < READ_MAX) {
		struct evbuffer_iovec v;
		int n, e;

		if (evbuffer_reserve_space(buf, 16384, &v, 1) < 1)
			return -1;
		ERR_clear_error();
		n = SSL_read(ssl, v.iov_base, (int)(v.iov_len > 65536 ? 65536 : v.iov_len));
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(buf, &v, 1);
			total += (size_t)n;
			if (!SSL_has_pending(ssl))
				break;
			continue;
		}
		evbuffer_commit_space(buf, &v, 0);
		e = SSL_get_error(ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN)
			return total ? (ssize_t)total : 0;
		ERR_clear_error();
		return total ? (ssize_t)total : -1;
	}
	return total ? (ssize_t)total : -2;
}

int gw_relay_ssl_more(SSL *ssl, ssize_t n)
{
	return ssl != NULL && n > 0 && SSL_has_pending(ssl);
}

/* Write from buf (draining what was written).  Returns bytes written, 0 if
 * the socket is full, -1 on error. */
int gw_relay_write(int fd, SSL *ssl, struct evbuffer *buf)
{
	struct evbuffer_iovec v;
	int n;

	if (ssl == NULL) {
		n = evbuffer_write(buf, fd);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
		return n;
	}
	if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1)
		return 0;
	if (v.iov_len < 16384 && evbuffer_get_length(buf) > v.iov_len) {
		/* one TLS record for a head and the start of its body */
		size_t want = evbuffer_get_length(buf) < 16384 ? evbuffer_get_length(buf) : 16384;
		v.iov_base = evbuffer_pullup(buf, (ev_ssize_t)want);
		v.iov_len = want;
	}
	ERR_clear_error();
	n = SSL_write(ssl, v.iov_base, (int)(v.iov_len > 65536 ? 65536 : v.iov_len));
	if (n > 0) {
		evbuffer_drain(buf, (size_t)n);
		return n;
	}
	n = SSL_get_error(ssl, n);
	if (n == SSL_ERROR_WANT_WRITE || n == SSL_ERROR_WANT_READ)
		return 0;
	ERR_clear_error();
	return -1;
}

/* Half-close our sending side (TLS: close_notify first). */
void gw_relay_shutdown(int fd, SSL *ssl)
{
	if (ssl != NULL) {
		ERR_clear_error();
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	shutdown(fd, SHUT_WR);
}

/*
 * ---- splice(2) relay for plain tunnels ----
 *
 * A tunnel with no TLS on either side moves bulk bytes socket -> pipe ->
 * socket, never copying them through user space.  A direction gets its pipe
 * lazily, after one evbuffer read of at least SPLICE_AFTER bytes, so the many
 * small tunnels of a browser do not pay two fds per direction.  Ordering
 * rule: a direction's bytes are either in evbuffers or in its pipe, never
 * both; the pipe is filled only while the source's input and the
 * destination's output evbuffers are empty (bytes read with the CONNECT head,
 * or a 101's leftovers, go first), and the evbuffer path reads only while the
 * pipe is empty.  A pipe that could not be made (EMFILE), or only a small
 * one (the pipe page quota), leaves the direction on evbuffers.
 */
#define SPLICE_AFTER (64 * 1024)
#define PIPE_SIZE (256 * 1024)          /* as HIWAT; a bit less CPU than 64 KiB (RESULTS.md) */

static int sp_has(const struct gw_conn *c, int d)
{
	return c->sp != NULL && c->sp->r[d] >= 0;
}

size_t gw_relay_sp_held(const struct gw_conn *c, int d)
{
	return c->sp != NULL ? c->sp->held[d] : 0;
}

int gw_relay_sp_full(const struct gw_conn *c, int d)
{
	return c->sp != NULL && (c->sp->full & (1u << d));
}

void gw_relay_sp_drop(struct tsplice *s, int d)
{
	if (s->r[d] >= 0) {
		close(s->r[d]);
		close(s->w[d]);
	}
	s->r[d] = s->w[d] = -1;
	s->held[d] = 0;
	s->full &= ~(1u << d);
}

void gw_relay_sp_free(struct gw_conn *c)
{
	if (c->sp == NULL)
		return;
	gw_relay_sp_drop(c->sp, SP_C2U);
	gw_relay_sp_drop(c->sp, SP_U2C);
	free(c->sp);
	c->sp = NULL;
}

/* After an evbuffer read of n bytes in direction d of a tunnel: make d's
 * pipe if the read was big and neither side has TLS.  Failure only means d
 * stays on evbuffers. */
void gw_relay_sp_maybe_make(struct gw_conn *c, int d, ssize_t n)
{
	struct tsplice *s = c->sp;
	int p[2];

	if (n < SPLICE_AFTER || c->ssl != NULL || conn_up(c) == NULL || conn_up(c)->ssl != NULL)
		return;
	if (s != NULL && (s->r[d] >= 0 || (s->failed & (1u << d))))
		return;
	if (s == NULL) {
		if ((s = calloc(1, sizeof *s)) == NULL)
			return;
		s->r[0] = s->r[1] = s->w[0] = s->w[1] = -1;
		c->sp = s;
	}
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
		s->failed |= 1u << d;
		gw_debug("tunnel: no pipe (%s): staying on buffers", strerror(errno));
		return;
	}
	/* over the user's pipe page quota (fs.pipe-user-pages-soft) the resize
	 * fails, and new pipes even get 2 pages: too small to beat evbuffers */
	int sz = fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
	if (sz < 0)
		sz = fcntl(p[1], F_GETPIPE_SZ);
	if (sz < 64 * 1024) {
		close(p[0]);
		close(p[1]);
		s->failed |= 1u << d;
		gw_debug("tunnel: pipe of %d bytes (page quota): staying on buffers", sz);
		return;
	}
	s->r[d] = p[0];
	s->w[d] = p[1];
}

/* Should direction d read into its pipe now (rather than into evbuffers)? */
int gw_relay_sp_ready(const struct gw_conn *c, int d)
{
	if (!sp_has(c, d) || conn_up(c) == NULL)
		return 0;
	if (d == SP_C2U)
		return evbuffer_get_length(c->in) == 0 && evbuffer_get_length(conn_up(c)->out) == 0;
	return evbuffer_get_length(conn_up(c)->in) == 0 && evbuffer_get_length(c->out) == 0;
}

/* Socket -> pipe for direction d.  Returns as gw_relay_read: bytes, 0 at EOF, -1 on
 * error, -2 when nothing moved (then, with bytes already in the pipe, it is
 * taken as full and the source is paused until the pipe drains: splice
 * cannot tell an empty socket from a full pipe). */
ssize_t gw_relay_sp_in(struct gw_conn *c, int d)
{
	struct tsplice *s = c->sp;
	int src = d == SP_C2U ? c->fd : conn_up(c)->fd;
	ssize_t n;

	do
		n = splice(src, NULL, s->w[d], NULL, READ_MAX, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		s->held[d] += (size_t)n;
		if (d == SP_C2U && c->rq != NULL)
			c->rq->bytes_in += (uint64_t)n;
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		if (s->held[d] > 0)
			s->full |= 1u << d;
		return -2;
	}
	return -1;
}

/* Pipe -> socket for direction d.  Returns bytes moved, 0 if the socket is
 * full, -1 on error. */
ssize_t gw_relay_sp_out(struct gw_conn *c, int d)
{
	struct tsplice *s = c->sp;
	int dst = d == SP_C2U ? conn_up(c)->fd : c->fd;
	ssize_t n;

	if (s == NULL || s->held[d] == 0)
		return 0;
	do
		n = splice(s->r[d], NULL, dst, NULL, s->held[d], SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	s->held[d] -= (size_t)n;
	if (s->held[d] == 0)
		s->full &= ~(1u << d);
	if (d == SP_U2C && c->rq != NULL)
		c->rq->bytes_out += (uint64_t)n;
	return n;
}

/*
 * Append src to dst by copy.  gw_relay_xfer_pump() moves whole chains, and a client
 * read leaves its chain (1 KiB, or 256 KiB after a full one) however few
 * bytes it got: a held body trickled in small reads would take hundreds of
 * times its size (40 bodies of 6 KB sent a byte at a time: +36 MB).  Copies
 * fill chains that grow to 4 KiB, so a held body costs about its size.
 * Returns 0, or -1 when out of memory (src is then emptied all the same).
 */
int gw_relay_append_copy(struct evbuffer *dst, struct evbuffer *src)
{
	struct evbuffer_iovec v[16];
	int n, rc = 0;

	while ((n = evbuffer_peek(src, -1, NULL, v, 16)) > 0) {
		size_t done = 0;
		for (int i = 0; i < n && i < 16; i++) {
			if (rc == 0 && evbuffer_add(dst, v[i].iov_base, v[i].iov_len) < 0)
				rc = -1;
			done += v[i].iov_len;
		}
		evbuffer_drain(src, done);
	}
	return rc;
}

/* Show the first n bytes of src to x's tap before they move. */
static void xfer_tap(struct xfer *x, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr pos;
	size_t left = n;

	if (x->tap == NULL || n == 0)
		return;
	evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET);
	while (left > 0) {
		int nv = evbuffer_peek(src, (ev_ssize_t)left, &pos, v, 16);
		if (nv <= 0)
			break;
		for (int i = 0; i < nv && i < 16 && left > 0; i++) {
			size_t k = v[i].iov_len < left ? v[i].iov_len : left;
			x->tap(x->tap_arg, v[i].iov_base, k);
			left -= k;
			evbuffer_ptr_set(src, &pos, k, EVBUFFER_PTR_ADD);
		}
	}
}

/* The last chunk of a re-encoded body, with x's trailer fields if any. */
static void last_chunk(const struct xfer *x, struct evbuffer *dst)
{
	if (x->ntrailers == 0) {
		evbuffer_add(dst, GW_STRLIT("0\r\n\r\n"));
		return;
	}
	evbuffer_add(dst, GW_STRLIT("0\r\n"));
	for (int i = 0; i < x->ntrailers; i++) {
		evbuffer_add(dst, x->trailers[i].name, x->trailers[i].name_len);
		evbuffer_add(dst, GW_STRLIT(": "));
		evbuffer_add(dst, x->trailers[i].value, x->trailers[i].value_len);
		evbuffer_add(dst, GW_STRLIT("\r\n"));
	}
	evbuffer_add(dst, GW_STRLIT("\r\n"));
}

/*
 * Move body bytes of x from src to dst, decoding chunked input and encoding
 * chunked output as x says.  Returns 0, or -1 on a framing error.
 * x->done is set at the end of the body.
 */
int gw_relay_xfer_pump(struct xfer *x, struct evbuffer *src, struct evbuffer *dst)
{
	while (!x->done && evbuffer_get_length(src) > 0) {
		if (x->kind == GW_BODY_LENGTH) {
			size_t n = evbuffer_get_length(src);
			if (n > x->remaining)
				n = (size_t)x->remaining;
			xfer_tap(x, src, n);
			evbuffer_remove_buffer(src, dst, n);
			x->remaining -= n;
			x->moved += n;
			if (x->remaining == 0)
				x->done = 1;
		} else if (x->kind == GW_BODY_CLOSE) {
			size_t n = evbuffer_get_length(src);
			if (x->out_chunked)
				gw_h1out_chunk_line(dst, n);
			xfer_tap(x, src, n);
			evbuffer_remove_buffer(src, dst, n);
			if (x->out_chunked)
				evbuffer_add(dst, GW_STRLIT("\r\n"));
			x->moved += n;
		} else if (x->kind == GW_BODY_CHUNKED) {
			struct evbuffer_iovec v;
			size_t off = 0, dlen = 0;
			ssize_t r;
			if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
				break;
			r = gw_chunked_decode(&x->ck, v.iov_base, v.iov_len, &off, &dlen);
			if (r < 0)
				return -1;
			if (r == 0) {
				/* framing split across buffer chains: make it contiguous */
				size_t have = evbuffer_get_length(src);
				if (have <= v.iov_len)
					break;
				size_t want = v.iov_len + 4096 < have ? v.iov_len + 4096 : have;
				const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)want);
				r = gw_chunked_decode(&x->ck, p, want, &off, &dlen);
				if (r < 0)
					return -1;
				if (r == 0)
					break;
			}
			evbuffer_drain(src, off);
			if (dlen > 0) {
				if (x->out_chunked)
					gw_h1out_chunk_line(dst, dlen);
				xfer_tap(x, src, dlen);
				evbuffer_remove_buffer(src, dst, dlen);
				if (x->out_chunked)
					evbuffer_add(dst, GW_STRLIT("\r\n"));
				x->moved += dlen;
			}
			evbuffer_drain(src, (size_t)r - off - dlen);
			if (x->ck.done)
				x->done = 1;
		} else {
			x->done = 1;
		}
		if (x->done && x->out_chunked)
			last_chunk(x, dst);
	}
	return 0;
}

/* Drop what was added to b after its first keep bytes (nothing of it was
 * written yet).  Returns 0, or -1 out of memory. */
int gw_relay_truncate(struct evbuffer *b, size_t keep)
{
	struct evbuffer *t;

	if (keep == 0) {
		evbuffer_drain(b, evbuffer_get_length(b));
		return 0;
	}
	if ((t = evbuffer_new()) == NULL)
		return -1;
	evbuffer_remove_buffer(b, t, keep);
	evbuffer_drain(b, evbuffer_get_length(b));
	evbuffer_add_buffer(b, t);
	evbuffer_free(t);
	return 0;
}
