/*
 * core/conn_bump: the client connection's side of TLS inspection (the
 * family decides; this moves the connection through the steps):
 *
 *   CONNECT --gw_req_peek--> "200 Connection established", CS_PEEK: the
 *   client's first bytes are read into c->in and shown to proto->on_peek
 *   (none is lost: a tunnel sends them on, the TLS server reads them first)
 *     -> gw_req_tunnel: the spliced tunnel of any CONNECT, minus its 200
 *     -> gw_req_tunnel + gw_req_upstream_tls + gw_req_tunnel_tls: the
 *        upstream engine connects and handshakes (verifying the origin);
 *        proto->on_tunnel_tls sees its session (or why it failed) and
 *        answers with gw_req_tls_serve (often after a deferred mint)
 *     -> gw_req_respond: nothing can be answered in HTTP any more: the
 *        connection is closed with the status and reason logged
 *   gw_req_tls_serve: the client connection becomes a TLS server (its
 *   session reads the bytes already buffered first), the CONNECT is logged
 *   and freed, the verified upstream session is pooled for the first
 *   request, and every request head read inside is made absolute-form
 *   (https://host:port/...) so the family judges the full URL.
 *
 * Friend of conn.c (core/conn_int.h); conn.c keeps the hooks to a few
 * lines: the CS_PEEK read, the TO_PEEK timer, the two decisions in
 * dispatch(), the head rewrite, and the sink's tunnel/error turns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/conn_int.h"
#include "core/h2_client.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/tls.h"

/* ---- the family's calls (core/proto.h) ---- */

void gw_req_peek(struct gw_req *rq, size_t max, double timeout)
{
	rq->dec = DEC_PEEK;
	rq->peek_max = max;
	rq->peek_timeout = timeout;
}

void gw_req_tunnel_tls(struct gw_req *rq)
{
	rq->tunnel_tls = 1;
}

void gw_req_tls_serve(struct gw_req *rq, SSL_CTX *ctx, X509 *cert, EVP_PKEY *key, const char *host,
    uint16_t port, const char *tag)
{
	gw_req_bump__free(rq);   /* a second call replaces the first */
	rq->srv_host = gw_req_strndup(rq, host, strlen(host));
	rq->srv_tag = gw_req_strndup(rq, tag != NULL ? tag : "", tag != NULL ? strlen(tag) : 0);
	rq->srv_port = port;
	if (rq->srv_host == NULL || rq->srv_tag == NULL)
		return;   /* rq->oom: fails with 503 (a close after the 200) */
	if (SSL_CTX_up_ref(ctx) == 1)
		rq->srv_ctx = ctx;
	if (X509_up_ref(cert) == 1)
		rq->srv_cert = cert;
	if (EVP_PKEY_up_ref(key) == 1)
		rq->srv_key = key;
	rq->dec = DEC_TLS_SERVE;
}

void gw_req_upstream_alpn(struct gw_req *rq, int h2, int h1, int h2_first)
{
	static const unsigned char l2[] = "\x02h2", l1[] = "\x08http/1.1";
	size_t n = 0;

	if (h2 && (h2_first || !h1)) {
		memcpy(rq->up_alpn, l2, 3);
		n = 3;
	}
	if (h1) {
		memcpy(rq->up_alpn + n, l1, 9);
		n += 9;
	}
	if (h2 && h1 && !h2_first) {
		memcpy(rq->up_alpn + n, l2, 3);
		n += 3;
	}
	rq->up_alpn_len = n;
}

int gw_req_upstream_alpn_h2(const SSL *up)
{
	return up != NULL && gw_tls_is_h2(up);
}

void gw_req_tls_serve_h2(struct gw_req *rq)
{
	rq->srv_h2 = 1;
}

int gw_req_conn_upstream_h2(const struct gw_req *rq)
{
	return rq->c != NULL && rq->c->bump_host != NULL && rq->c->bump_up_h2 && !gw_upstream__conn_bound(&rq->head);
}

const char *gw_req_conn_tag(const struct gw_req *rq)
{
	return rq->c != NULL && rq->c->bump_host != NULL ? rq->c->bump_tag : NULL;
}

void gw_req_bump__free(struct gw_req *rq)
{
	SSL_CTX_free(rq->srv_ctx);
	X509_free(rq->srv_cert);
	EVP_PKEY_free(rq->srv_key);
	rq->srv_ctx = NULL;
	rq->srv_cert = NULL;
	rq->srv_key = NULL;
}

void gw_conn_bump__free(struct gw_conn *c)
{
	free(c->bump_host);
	free(c->bump_tag);
	c->bump_host = c->bump_tag = NULL;
}

/* ---- the steps ---- */

/* The family refused after the 200 (gw_req_respond): close, logged with its
 * status and reason. */
static void refuse(struct gw_conn *c, struct gw_req *rq)
{
	if (rq->reason == NULL)
		rq->reason = "refused after CONNECT";
	gw_conn__close(c, GW_CLOSE_LOCAL_REPLY);
}

void gw_conn_bump__decided(struct gw_conn *c, struct gw_req *rq)
{
	if (rq->oom) {
		rq->status = 503;
		rq->reason = "out of memory";
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	switch (rq->dec) {
	case DEC_RESPOND:
	case DEC_FILE:
		refuse(c, rq);
		return;
	case DEC_NONE:
	case DEC_PEEK:
	case DEC_READBODY:
	case DEC_PROXY:
		gw_error("%s: no usable decision after CONNECT %s", c->proto->name, rq->id);
		rq->reason = "no decision";
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	case DEC_TUNNEL:
	case DEC_DEFER:
	case DEC_TLS_SERVE:
		gw_conn__dispatch(c, rq);
		return;
	}
}

void gw_conn_bump__start(struct gw_conn *c, struct gw_req *rq)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	if (c->proto->on_peek == NULL) {
		gw_conn__respond_error(rq, 500, "cannot inspect here");
		return;
	}
	if (c->ssl != NULL) {   /* an HTTPS proxy listener: core/conn_nest.c */
		gw_conn_nest__h1(c, rq);
		return;
	}
	evbuffer_add(c->out, ok, sizeof ok - 1);
	gw_conn_bump__peek_begin(c, rq);
}

void gw_conn_bump__peek_begin(struct gw_conn *c, struct gw_req *rq)
{
	rq->peeked = 1;
	rq->status = 200;
	rq->resp_head_done = 1;
	c->state = CS_PEEK;
	gw_conn__timer(c, TO_PEEK);
	gw_relay_rd_enable(c, 1);
	gw_conn__write(c);
	if (c->state == CS_PEEK && (evbuffer_get_length(c->in) > 0 || c->rd_eof))
		event_active(&c->ev_rd, EV_READ, 0);
}

static void peek(struct gw_conn *c, int final)
{
	struct gw_req *rq = c->rq;
	size_t n = evbuffer_get_length(c->in);
	const unsigned char *p = (const unsigned char *)"";

	if (n >= rq->peek_max || c->rd_eof)
		final = 1;
	if (n > rq->peek_max)
		n = rq->peek_max;
	if (n == 0 && !final)
		return;
	if (n > 0)
		p = evbuffer_pullup(c->in, (ev_ssize_t)n);
	rq->dec = DEC_NONE;
	c->proto->on_peek(rq, p, n, final, c->side);
	if (c->state == CS_CLOSED || c->rq != rq)
		return;
	if (rq->dec == DEC_NONE && !final && !rq->oom) {
		gw_relay_rd_enable(c, 1);   /* wait for more */
		return;
	}
	event_del(&c->ev_to);
	gw_relay_rd_enable(c, 0);
	c->state = CS_BUSY;
	gw_conn_bump__decided(c, rq);
}

void gw_conn_bump__peek(struct gw_conn *c)
{
	peek(c, 0);
}

void gw_conn_bump__peek_timeout(struct gw_conn *c)
{
	if (c->rq != NULL && c->state == CS_PEEK)
		peek(c, 1);
}

void gw_conn_bump__tunnel(struct gw_req *rq)
{
	struct gw_conn *c = rq->sink_arg;

	if (!rq->tunnel_tls || c->proto->on_tunnel_tls == NULL) {
		/* a plain tunnel: the client's bytes so far go first (tunnel_pump) */
		c->state = CS_TUNNEL;
		gw_conn__timer(c, TO_TUNNEL);
		gw_relay_rd_enable(c, 1);
		gw_conn__tunnel_pump(c);
		return;
	}
	/* nothing is relayed: the origin's bytes wait (a TLS 1.3 ticket) */
	gw_relay_up_rd_enable(rq->up, 0);
	rq->dec = DEC_NONE;
	c->proto->on_tunnel_tls(rq, rq->up->ssl, NULL, c->side);
	if (c->state == CS_CLOSED || c->rq != rq)
		return;
	gw_conn_bump__decided(c, rq);
}

void gw_conn_bump__error(struct gw_req *rq, int status, const char *reason)
{
	struct gw_conn *c = rq->sink_arg;

	rq->status = status;
	if (rq->tunnel_tls && c->proto->on_tunnel_tls != NULL && c->state == CS_BUSY && !rq->tunnel) {
		rq->dec = DEC_NONE;
		c->proto->on_tunnel_tls(rq, NULL, reason != NULL ? reason : "out of memory", c->side);
		if (c->state == CS_CLOSED || c->rq != rq)
			return;
		gw_conn_bump__decided(c, rq);
		return;
	}
	rq->reason = reason != NULL ? reason : "out of memory";
	gw_conn__close(c, status == 504 ? GW_CLOSE_UPSTREAM_TIMEOUT : GW_CLOSE_UPSTREAM_ERROR);
}

/*
 * The server session's read side: the bytes the client already sent (its
 * ClientHello, read while peeking), then the socket itself.  Not
 * BIO_f_buffer: it reads ahead into a buffer of its own, where epoll cannot
 * see the next request waiting (OpenSSL's SSL_has_pending neither).
 */
struct prefix {
	int fd;
	size_t n, off;
	unsigned char data[];
};

static int prefix_read(BIO *b, char *out, size_t len, size_t *got)
{
	struct prefix *px = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	*got = 0;
	if (px->off < px->n) {
		size_t k = px->n - px->off < len ? px->n - px->off : len;
		memcpy(out, px->data + px->off, k);
		px->off += k;
		*got = k;
		return 1;
	}
	r = read(px->fd, out, len);
	if (r > 0) {
		*got = (size_t)r;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return 0;
}

static long prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct prefix *px = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_PENDING:
		return px != NULL ? (long)(px->n - px->off) : 0;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int prefix_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *prefix_method;
static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;

static void prefix_method_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gatehouse peeked prefix");

	if (m != NULL && (BIO_meth_set_read_ex(m, prefix_read) != 1 || BIO_meth_set_ctrl(m, prefix_ctrl) != 1 ||
	    BIO_meth_set_destroy(m, prefix_destroy) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	prefix_method = m;
}

/* The server session, reading the bytes the client already sent first. */
static SSL *server_ssl(struct gw_conn *c, struct gw_req *rq)
{
	SSL *s = SSL_new(rq->srv_ctx);
	size_t n = evbuffer_get_length(c->in);
	struct prefix *px;
	BIO *rd, *wr;

	if (s == NULL || SSL_use_certificate(s, rq->srv_cert) != 1 || SSL_use_PrivateKey(s, rq->srv_key) != 1)
		goto fail;
	if (n == 0) {
		if (SSL_set_fd(s, c->fd) != 1)
			goto fail;
		return s;
	}
	pthread_once(&prefix_once, prefix_method_make);
	if (prefix_method == NULL || (px = malloc(sizeof *px + n)) == NULL)
		goto fail;
	px->fd = c->fd;
	px->n = n;
	px->off = 0;
	evbuffer_remove(c->in, px->data, n);
	rd = BIO_new(prefix_method);
	wr = BIO_new_socket(c->fd, BIO_NOCLOSE);
	if (rd == NULL || wr == NULL) {
		free(px);
		BIO_free(rd);
		BIO_free(wr);
		goto fail;
	}
	BIO_set_data(rd, px);
	BIO_set_init(rd, 1);
	SSL_set_bio(s, rd, wr);
	return s;
fail:
	ERR_clear_error();
	SSL_free(s);
	return NULL;
}

void gw_conn_bump__serve(struct gw_conn *c, struct gw_req *rq)
{
	struct upconn *u = rq->up;
	SSL *s;

	if (rq->srv_ctx == NULL || rq->srv_cert == NULL || rq->srv_key == NULL ||
	    (s = server_ssl(c, rq)) == NULL) {
		rq->reason = "cannot start the TLS server";
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	free(c->bump_host);
	free(c->bump_tag);
	c->bump_host = strdup(rq->srv_host);
	c->bump_tag = strdup(rq->srv_tag);
	c->bump_port = rq->srv_port;
	c->ssl = s;
	if (rq->srv_h2)
		gw_tls_allow_h2(s);   /* the handshake's ALPN: core/tls.c; h2 runs core/h2.c */
	if (c->bump_host == NULL || c->bump_tag == NULL) {
		gw_conn__close(c, GW_CLOSE_INTERNAL);
		return;
	}
	/* the verified origin session serves the first request (its pool
	 * key is the one gw_req_proxy + gw_req_upstream_tls make) */
	if (u != NULL) {
		int reuse = u->ssl != NULL && !u->tls_hs && !u->eof && u->key[0] != '\0' &&
		    evbuffer_get_length(u->in) == 0 && evbuffer_get_length(u->out) == 0;
		rq->up = NULL;
		u->rq = NULL;
		if (u->keepalive == 0)   /* a tunnel's connection is never pooled otherwise */
			u->keepalive = POOL_KEEPALIVE;
		/* an origin that chose h2: its session serves the streams over
		 * HTTP/2 (core/h2_client.c), never the HTTP/1.1 pool */
		c->bump_up_h2 = u->ssl != NULL && gw_tls_is_h2(u->ssl);
		if (reuse && c->bump_up_h2 && gw_h2_client_adopt(c->w, u) == 0) {
			u = NULL;   /* (taken) */
		} else if (reuse && !c->bump_up_h2) {
			/* private to this client connection: its requests keep the
			 * session verified for it (no pool churn past keepalive when
			 * many clients inspect one origin), and it closes with the
			 * client, as a tunnel */
			u->owner = &c->upo;
			c->upo.has_private = 1;
			gw_upstream__pool_put(c->w, u);
		} else {
			gw_upstream__free(u);
		}
	}
	c->rq = NULL;
	rq->finished = 1;
	gw_req__log_free(rq);
	SSL_set_accept_state(s);
	c->state = CS_HANDSHAKE;
	gw_conn__timer(c, TO_HEADER);   /* the handshake is bounded as a head is */
	gw_relay_rd_enable(c, 1);
	event_active(&c->ev_rd, EV_READ, 0);
}

int gw_conn_bump__absolute(struct gw_conn *c, struct gw_req *rq, const char **bad)
{
	struct gw_http_head *h = &rq->head;
	size_t hl = strlen(c->bump_host);
	int v6 = strchr(c->bump_host, ':') != NULL, n;
	char *t;

	*bad = NULL;
	if (h->target_form != GW_TF_ORIGIN) {
		/* an absolute URL could name another host than the one inspected */
		*bad = "inside an inspected connection only origin-form requests are served";
		return 0;
	}
	t = gw_req_alloc(rq, hl + h->target_len + 24);
	if (t == NULL)
		return -1;
	n = sprintf(t, "https://%s%s%s", v6 ? "[" : "", c->bump_host, v6 ? "]" : "");
	if (c->bump_port != 443)
		n += sprintf(t + n, ":%u", c->bump_port);
	memcpy(t + n, h->target, h->target_len);
	t[(size_t)n + h->target_len] = '\0';
	h->path = t + n;
	h->path_len = h->target_len;
	h->target = t;
	h->target_len = (size_t)n + h->target_len;
	h->target_form = GW_TF_ABSOLUTE;
	h->scheme = t;
	h->scheme_len = 5;
	h->host = t + 8 + v6;
	h->host_len = hl;
	h->port = c->bump_port;
	return 0;
}

int gw_conn_bump__stream(struct gw_conn *c, struct gw_req *rq, const char **why)
{
	const struct gw_http_head *h = &rq->head;
	const char *host, *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
	size_t hl;
	uint16_t port;

	*why = NULL;
	if (h->host_hdr == NULL ||
	    gw_http1_parse_authority(h->host_hdr, h->host_hdr_len, 443, &host, &hl, &port) != NULL) {
		*why = "inside an inspected connection a request needs a valid :authority";
		return 400;
	}
	/* a browser coalesces the streams of hosts the (mirrored) certificate
	 * covers onto one connection: only the CONNECT's own host (or the TLS
	 * name, judged with it) is served here; 421 makes it open another */
	if (port != c->bump_port || !((hl == strlen(c->bump_host) && strncasecmp(host, c->bump_host, hl) == 0) ||
	    (sni != NULL && hl == strlen(sni) && strncasecmp(host, sni, hl) == 0))) {
		*why = "misdirected: this inspected connection serves only its CONNECT's host and port";
		return 421;
	}
	if (gw_conn_bump__absolute(c, rq, why) < 0) {
		*why = "out of memory";
		return 503;
	}
	return *why != NULL ? 400 : 0;
}
