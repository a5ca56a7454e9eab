/*
 * forward/icap: ICAP client (RFC 3507) for the forward side; see icap.h.
 *
 * One exchange (struct fwd_icap_tx) per held response, on the request's
 * worker loop, non-blocking: connect (or take a pooled connection), an
 * OPTIONS first when this worker's view of the service is missing or
 * older than Options-TTL, then the RESPMOD: the ICAP head, the
 * encapsulated request and response heads, and the body in chunks as the
 * core's response filter hands it over: the first Preview bytes, then "0"
 * (more follows: wait for 100 Continue) or "0; ieof" (that was all).
 *
 * The original body is kept (up to max_body_bytes) until the verdict: a
 * 204, inside or outside the preview, sends it on as it came; a 200's
 * encapsulated response replaces the head (gw_req_filter_replace_head)
 * and its de-chunked body is emitted as it arrives.  While the body waits
 * (unsent to the service, or the 100 Continue not yet there) more than
 * HIWAT bytes, the filter holds the upstream (backpressure).
 *
 * A REQMOD exchange (an upload) is the same machine on a body the core
 * read whole before deciding: the request waits (gw_req_defer) and the
 * outcome (send it on, as it is or as the service rewrote it; answer with
 * the service's page; or fail) is handed back through gw_req_wake.
 *
 * Never touch a tx after tx_kick()/gw_req_filter_abort(): the request
 * may end inside them, and fwd_icap_done() frees the tx.
 *
 * What an answer means (OPTIONS, verdicts, a 200's body) is decided in
 * forward/icap_answer.c; the services themselves are compiled in
 * forward/icap_svc.c; the layouts they share are in forward/icap_int.h.
 */
#include "forward/icap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/dns.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/strlit.h"
#include "forward/fwd_conf.h"
#include "forward/icap_conf.h"
#include "forward/icap_int.h"
#include "forward/icap_msg.h"
#include "forward/icap_tls.h"

/* ---- per-worker service state and the pool ---- */

static struct icap_wsvc *wsvc(struct icap_svc *s, int w)
{
	if (s->w[w] == NULL && (s->w[w] = calloc(1, sizeof *s->w[w])) != NULL) {
		s->w[w]->preview = -1;
		s->w[w]->max_conns = DEFAULT_MAXCONN;
	}
	return s->w[w];
}

static unsigned share(const struct fwd_icap *ic, const struct icap_wsvc *ws)
{
	unsigned m = ws->max_conns / ic->nworkers;

	return m > 0 ? m : 1;
}

/* An idle connection that the server did not close meanwhile (its TLS
 * in *ssl), or -1. */
static int pool_take(struct icap_wsvc *ws, SSL **ssl)
{
	while (ws->nidle > 0) {
		struct icap_conn c = ws->idle[--ws->nidle];
		char b;
		ssize_t r = recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			*ssl = c.ssl;
			return c.fd;
		}
		SSL_free(c.ssl);   /* closed (or answering nothing asked; TLS: an alert): not usable */
		close(c.fd);
		ws->busy--;
	}
	return -1;
}

/* ---- the exchange ---- */

static void tx_rd(evutil_socket_t fd, short what, void *arg);
static void tx_wr(evutil_socket_t fd, short what, void *arg);
static void tx_to(evutil_socket_t fd, short what, void *arg);
static void tx_go(evutil_socket_t fd, short what, void *arg);
static void tx_begin_conn(struct fwd_icap_tx *tx);
static void tx_kick(struct fwd_icap_tx *tx);
static void conn_release(struct fwd_icap_tx *tx, int reuse);

/* Go on with the request: a held response is resumed; a waiting upload
 * is woken once its outcome is known.  Touch tx no more after it. */
static void tx_kick(struct fwd_icap_tx *tx)
{
	if (!tx->reqmod) {
		gw_req_resume(tx->rq);
	} else if (tx->decided && !tx->woken) {
		tx->woken = 1;
		gw_req_wake(tx->rq, tx->fin, tx);
	}
}

void fwd_icap_decide_req(struct fwd_icap_tx *tx, enum fwd_icap_outcome o)
{
	tx->outcome = o;
	tx->decided = 1;
}

/* This exchange's output: the next service's input in a chain, else the
 * client's (GW_FILTER_GO, or HOLD when the next one holds). */
int fwd_icap_out_emit(struct fwd_icap_tx *tx, const void *p, size_t n, int last)
{
	if (tx->next != NULL)
		return fwd_icap_filter(tx->next, p, n, last);
	gw_req_body_emit(tx->rq, p, n, last);
	return GW_FILTER_GO;
}

/* The same for src[0..n), moved (to the client) or handed on (a chain). */
void fwd_icap_out_emit_buffer(struct fwd_icap_tx *tx, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v;

	if (tx->next == NULL) {
		gw_req_body_emit_buffer(tx->rq, src, n, 0);
		return;
	}
	while (n > 0 && evbuffer_peek(src, -1, NULL, &v, 1) == 1) {
		size_t k = v.iov_len < n ? v.iov_len : n;
		fwd_icap_filter(tx->next, v.iov_base, k, 0);
		evbuffer_drain(src, k);
		n -= k;
	}
}

/* Can the output take no more now?  The next service's exchange when it
 * still holds what it got, else the client. */
static int out_full(struct fwd_icap_tx *tx)
{
	for (struct fwd_icap_tx *t = tx->next; t != NULL; t = t->next)
		if (!t->passing)
			return t->total - t->sent > HIWAT || evbuffer_get_length(t->out) > HIWAT;
	return gw_req_output_full(tx->rq);
}

static char *build_heads(struct gw_req *rq, const struct gw_http_head *resp, const char *raw, size_t rawlen,
    size_t *rql, size_t *rsl);
static struct fwd_icap_tx *tx_new(struct fwd_icap *ic, int svc, struct gw_req *rq, const char *server_ip);

/* At this exchange's verdict, in a chain: the next service's exchange,
 * on the response as this one leaves it (head res[0..rl)).  -1: out of
 * memory (nothing started). */
int fwd_icap_chain_next(struct fwd_icap_tx *tx, const char *res, size_t rl)
{
	const struct gw_http_head *h = gw_req_head(tx->rq);
	struct fwd_icap_tx *nx;
	int pos;

	if (tx->reqmod || tx->plan == NULL || tx->next != NULL)
		return 0;
	for (pos = tx->pos + 1; pos < tx->plan->n; pos++) {   /* (Transfer-Ignore skips a service) */
		const struct icap_wsvc *ws = tx->ic->s[tx->plan->svc[pos]].w[gw_req_worker(tx->rq)];
		if (h->path == NULL || ws == NULL || !ws->have_opts || !ws->ignore[0] ||
		    !fwd_icap_msg_ext_listed(ws->ignore, h->path, h->path_len))
			break;
	}
	if (pos >= tx->plan->n)
		return 0;
	if ((nx = tx_new(tx->ic, tx->plan->svc[pos], tx->rq, tx->server_ip)) == NULL)
		return -1;
	nx->plan = tx->plan;
	nx->pos = pos;
	nx->prev = tx;
	nx->heads = build_heads(tx->rq, NULL, res, rl, &nx->req_len, &nx->res_len);
	if (nx->out == NULL || nx->in == NULL || nx->orig == NULL || nx->heads == NULL) {
		fwd_icap_done(nx);
		return -1;
	}
	tx->next = nx;
	tx_begin_conn(nx);
	return 0;
}

static void emit_orig(struct fwd_icap_tx *tx)
{
	fwd_icap_out_emit_buffer(tx, tx->orig, evbuffer_get_length(tx->orig));   /* (a move to the client) */
}


/* Let the original through: what was held, and from now on what comes
 * (a chain: to the next service). */
void fwd_icap_pass_original(struct fwd_icap_tx *tx)
{
	if (tx->reqmod) {
		fwd_icap_decide_req(tx, FWD_ICAP_PROXY);
		return;
	}
	if (fwd_icap_chain_next(tx, tx->heads + tx->req_len, tx->res_len) < 0) {
		fwd_icap_local_page(tx, 503, "Service Unavailable", "The gateway is out of memory.");
		return;
	}
	tx->passing = 1;
	emit_orig(tx);
	if (tx->body_last && !tx->emitted_last) {
		tx->emitted_last = 1;
		fwd_icap_out_emit(tx, "", 0, 1);
	}
}

/* Answer with a page of our own instead of the response (the held head is
 * replaced), and drop the rest of the upstream's body. */
void fwd_icap_local_page(struct fwd_icap_tx *tx, int status, const char *title, const char *text)
{
	char head[256], body[1024];
	int hl, bl;

	if (tx->reqmod) {
		tx->page_status = status;
		snprintf(tx->page_type, sizeof tx->page_type, "text/html; charset=utf-8");
		evbuffer_drain(tx->reply, evbuffer_get_length(tx->reply));
		evbuffer_add_printf(tx->reply, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body>\n"
		    "<h1>%s</h1>\n<p>%s</p>\n<p>Request %s</p>\n</body></html>\n", status, title, title, text,
		    gw_req_id(tx->rq));
		fwd_icap_decide_req(tx, FWD_ICAP_RESPOND);
		return;
	}
	bl = snprintf(body, sizeof body, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body>\n"
	    "<h1>%s</h1>\n<p>%s</p>\n<p>Request %s</p>\n</body></html>\n", status, title, title, text,
	    gw_req_id(tx->rq));
	hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\n\r\n", status, title);
	tx->discard = 1;
	evbuffer_drain(tx->orig, evbuffer_get_length(tx->orig));
	if (gw_req_filter_replace_head(tx->rq, head, (size_t)hl) < 0) {
		gw_req_filter_abort(tx->rq, "ICAP: cannot answer with a page");
		return;
	}
	tx->emitted_last = 1;
	gw_req_body_emit(tx->rq, body, (size_t)bl, 1);
}

void fwd_icap_conn_close(struct fwd_icap_tx *tx)
{
	if (tx->have_ev) {
		event_del(&tx->ev_rd);
		event_del(&tx->ev_wr);
		tx->have_ev = 0;
	}
	if (tx->fd >= 0) {
		SSL_free(tx->ssl);
		tx->ssl = NULL;
		close(tx->fd);
		tx->fd = -1;
		tx->ws->busy--;
	}
}

/* A connection came free (or a slot for one): the first waiter takes it. */
void fwd_icap_wake_waiter(struct icap_wsvc *ws)
{
	struct fwd_icap_tx *t = ws->wait_head;

	if (t == NULL)
		return;
	ws->wait_head = t->wnext;
	if (ws->wait_head == NULL)
		ws->wait_tail = NULL;
	t->queued = 0;
	t->wnext = NULL;
	event_active(&t->ev_go, 0, 0);
}

/* Done with the exchange's connection: pool it (reuse) or close it. */
static void conn_release(struct fwd_icap_tx *tx, int reuse)
{
	if (tx->fd < 0)
		return;
	if (reuse && !tx->conn_close && tx->ws->nidle < IDLE_MAX && evbuffer_get_length(tx->in) == 0 &&
	    (tx->ssl == NULL || SSL_pending(tx->ssl) == 0)) {   /* (TLS: nothing decrypted left over either) */
		event_del(&tx->ev_rd);
		event_del(&tx->ev_wr);
		tx->have_ev = 0;
		tx->ws->idle[tx->ws->nidle].fd = tx->fd;
		tx->ws->idle[tx->ws->nidle].ssl = tx->ssl;
		tx->ws->idle[tx->ws->nidle++].uses = 0;
		tx->fd = -1;
		tx->ssl = NULL;
	} else {
		fwd_icap_conn_close(tx);
	}
	fwd_icap_wake_waiter(tx->ws);
}

/*
 * The exchange failed.  Before anything of the answer went to the client,
 * bypass_on_error decides: the original passes, or a 502 page; after (a
 * 200's body was being relayed), the client's response is cut.  Returns 1
 * when the caller must resume the request (and touch tx no more).
 */
static int tx_fail(struct fwd_icap_tx *tx, const char *why)
{
	struct icap_svc *s = tx->s;

	gw_warn("forward: %s: ICAP service %s (%s): %s", gw_req_id(tx->rq), s->c->name, s->authority, why);
	atomic_store(&s->health, 0);
	bump(s, FWD_ICAP_C_ERRORS);
	fwd_icap_conn_close(tx);
	fwd_icap_wake_waiter(tx->ws);
	event_del(&tx->ev_to);
	evtimer_del(&tx->ev_flush);
	tx->resp_done = 1;
	if (tx->replying && !tx->reqmod) {
		gw_req_set_reason(tx->rq, "ICAP answer broke mid-body");
		gw_req_filter_abort(tx->rq, "ICAP answer broke mid-body");
		return 0;   /* (the request may be gone: the caller returns) */
	}
	if (s->c->bypass_on_error) {
		bump(s, FWD_ICAP_C_BYPASSED);
		gw_req_set_reason(tx->rq, "ICAP failed: bypassed");
		fwd_icap_pass_original(tx);
	} else {
		gw_req_set_reason(tx->rq, "ICAP failed: blocked");
		fwd_icap_local_page(tx, 502, "Content scan failed", tx->reqmod ?
		    "The content scanner could not check this upload, so it was not sent." :
		    "The content scanner could not check this response, so it was withheld.");
	}
	return 1;
}

/* src[off..off+n) as one chunk for the service: one copy, straight from
 * src's segments (src keeps it: a 204 may still send it on) */
static void add_chunk(struct evbuffer *o, struct evbuffer *src, size_t off, size_t n)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v[8];

	evbuffer_add_printf(o, "%zx\r\n", n);
	if (evbuffer_ptr_set(src, &pos, off, EVBUFFER_PTR_SET) == 0) {
		while (n > 0) {
			int k = evbuffer_peek(src, (ev_ssize_t)n, &pos, v, 8);
			size_t took = 0;
			if (k <= 0)
				break;
			for (int i = 0; i < k && i < 8 && took < n; i++) {
				size_t m = v[i].iov_len < n - took ? v[i].iov_len : n - took;
				evbuffer_add(o, v[i].iov_base, m);
				took += m;
			}
			n -= took;
			if (n > 0 && evbuffer_ptr_set(src, &pos, took, EVBUFFER_PTR_ADD) < 0)
				break;
		}
	}
	evbuffer_add(o, GW_STRLIT("\r\n"));
}

/* Queue what the state allows of the held body for the service. */
static void feed(struct fwd_icap_tx *tx)
{
	size_t have = evbuffer_get_length(tx->orig);
	/* bytes of orig already queued (orig keeps everything until the
	 * verdict; after a 200 it is drained as it goes) */
	size_t queued = (size_t)(tx->sent - (tx->total - have));

	if (tx->fd < 0 || tx->term_sent)
		return;
	if (tx->st == TX_PREVIEW) {
		if ((long)tx->total < tx->preview && !tx->body_last)
			return;
		size_t n = tx->total < (uint64_t)tx->preview ? (size_t)tx->total : (size_t)tx->preview;
		if (n > 0)
			add_chunk(tx->out, tx->orig, 0, n);
		tx->sent = n;
		if (tx->body_last && tx->total <= (uint64_t)tx->preview) {
			evbuffer_add(tx->out, GW_STRLIT("0; ieof\r\n\r\n"));
			tx->term_sent = tx->ieof = 1;
			tx->st = TX_SENT;
		} else {
			evbuffer_add(tx->out, GW_STRLIT("0\r\n\r\n"));
			tx->st = TX_WAIT100;
		}
	} else if (tx->st == TX_SEND) {
		if (have > queued)
			add_chunk(tx->out, tx->orig, queued, have - queued);
		tx->sent += have - queued;
		if (tx->verdict == 200 && !tx->reqmod)
			evbuffer_drain(tx->orig, have);   /* no 204 can come now */
		if (tx->body_last) {
			evbuffer_add(tx->out, GW_STRLIT("0\r\n\r\n"));
			tx->term_sent = 1;
			tx->st = TX_SENT;
		}
	}
	if (evbuffer_get_length(tx->out) > 0)
		event_add(&tx->ev_wr, NULL);
}

/* Send the RESPMOD head and heads (the body follows through feed()). */
static void send_respmod(struct fwd_icap_tx *tx)
{
	const struct gw_http_head *h = gw_req_head(tx->rq);
	const char *user = gw_req_user(tx->rq);

	tx->preview = tx->ws->preview;
	if (h->path != NULL && tx->ws->complete[0] && fwd_icap_msg_ext_listed(tx->ws->complete, h->path, h->path_len))
		tx->preview = -1;   /* Transfer-Complete: the whole body, no preview */
	evbuffer_add_printf(tx->out, "%s icap://%s/%s ICAP/1.0\r\nHost: %s\r\n",
	    tx->reqmod ? "REQMOD" : "RESPMOD", tx->s->authority, tx->s->c->service, tx->s->authority);
	if (tx->ws->allow204)
		evbuffer_add(tx->out, GW_STRLIT("Allow: 204\r\n"));
	if (tx->preview >= 0)
		evbuffer_add_printf(tx->out, "Preview: %ld\r\n", tx->preview);
	evbuffer_add_printf(tx->out, "X-Client-IP: %s\r\n", gw_req_client_str(tx->rq));
	if (tx->server_ip[0])
		evbuffer_add_printf(tx->out, "X-Server-IP: %s\r\n", tx->server_ip);
	if (user != NULL && strlen(user) <= 256) {
		unsigned char b64[400];
		int n = EVP_EncodeBlock(b64, (const unsigned char *)user, (int)strlen(user));
		evbuffer_add_printf(tx->out, "X-Authenticated-User: %.*s\r\n", n, b64);
	}
	if (tx->reqmod)
		evbuffer_add_printf(tx->out, "Encapsulated: req-hdr=0, req-body=%zu\r\n\r\n", tx->req_len);
	else
		evbuffer_add_printf(tx->out, "Encapsulated: req-hdr=0, res-hdr=%zu, res-body=%zu\r\n\r\n",
		    tx->req_len, tx->req_len + tx->res_len);
	evbuffer_add(tx->out, tx->heads, tx->req_len + tx->res_len);
	tx->sent = 0;
	tx->st = tx->preview >= 0 ? TX_PREVIEW : TX_SEND;
	feed(tx);
	event_add(&tx->ev_wr, NULL);
}

static void send_options(struct fwd_icap_tx *tx)
{
	evbuffer_add_printf(tx->out, "OPTIONS icap://%s/%s ICAP/1.0\r\nHost: %s\r\n"
	    "Encapsulated: null-body=0\r\n\r\n", tx->s->authority, tx->s->c->service, tx->s->authority);
	tx->st = TX_OPTIONS;
	event_add(&tx->ev_wr, NULL);
}

static void arm(struct fwd_icap_tx *tx)
{
	event_assign(&tx->ev_rd, tx->base, tx->fd, EV_READ | EV_PERSIST, tx_rd, tx);
	event_assign(&tx->ev_wr, tx->base, tx->fd, EV_WRITE | EV_PERSIST, tx_wr, tx);
	tx->have_ev = 1;
	event_add(&tx->ev_rd, NULL);
}

/* The exchange has a connection: OPTIONS first when this worker's are
 * missing or stale, else the RESPMOD. */
static void on_conn(struct fwd_icap_tx *tx)
{
	arm(tx);
	if (!tx->ws->have_opts || gw_mono_now() >= tx->ws->opts_until)
		send_options(tx);
	else
		send_respmod(tx);
}

static void tx_dns_done(void *arg, const struct gw_dns_result *res);

/* icaps: one step of the handshake (from the connection's events); done,
 * the exchange goes on as over plain TCP. */
static void tls_step(struct fwd_icap_tx *tx)
{
	char err[200];
	int wr = 0, r = fwd_icap_tls_handshake(tx->ssl, &wr, err, sizeof err);

	if (r < 0) {
		if (tx_fail(tx, err))
			tx_kick(tx);
		return;
	}
	if (r == 0) {   /* (the events are persistent: the one it waits for) */
		if (wr) {
			event_del(&tx->ev_rd);
			event_add(&tx->ev_wr, NULL);
		} else {
			event_del(&tx->ev_wr);
			event_add(&tx->ev_rd, NULL);
		}
		return;
	}
	tx->handshaking = 0;
	event_del(&tx->ev_rd);
	event_del(&tx->ev_wr);
	on_conn(tx);
}

static void take_addr(struct fwd_icap_tx *tx, const struct gw_dns_result *res)
{
	memcpy(&tx->addr, &res->addrs[0], res->lens[0]);   /* (the first answer) */
	tx->addrlen = res->lens[0];
	tx->have_addr = 1;
}

/* Take a pooled connection, or connect (a name resolved first), or wait
 * for one. */
static void tx_begin_conn(struct fwd_icap_tx *tx)
{
	SSL *ssl = NULL;
	int fd = pool_take(tx->ws, &ssl), one = 1;

	if (fd >= 0) {
		tx->ssl = ssl;
		tx->fd = fd;
		tx->reused = 1;
		on_conn(tx);
		return;
	}
	if (tx->ws->busy >= share(tx->ic, tx->ws)) {
		tx->st = TX_WAIT;
		tx->queued = 1;
		if (tx->ws->wait_tail != NULL)
			tx->ws->wait_tail->wnext = tx;
		else
			tx->ws->wait_head = tx;
		tx->ws->wait_tail = tx;
		return;
	}
	if (!tx->have_addr) {   /* a name: the worker's resolver (cached; tx_dns_done) */
		struct gw_dns_result res;
		int r = gw_dns_resolve(gw_req_dns(tx->rq), tx->s->c->host, tx->s->c->port, &res, tx_dns_done, tx,
		    &tx->dnsq);
		if (r == 0) {
			tx->st = TX_WAIT;
			return;
		}
		if (r < 0 || res.naddrs == 0) {
			tx->dns_err = res.error != NULL ? res.error : "no address";
			event_active(&tx->ev_go, EV_TIMEOUT, 0);   /* fails in tx_go */
			return;
		}
		take_addr(tx, &res);
	}
	tx->reused = 0;
	fd = socket(tx->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tx->sock_err = errno;
		event_active(&tx->ev_go, EV_TIMEOUT, 0);   /* fails in tx_go (not inside the filter) */
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	tx->fd = fd;
	tx->ws->busy++;
	if (connect(fd, (struct sockaddr *)&tx->addr, tx->addrlen) < 0 && errno != EINPROGRESS) {
		tx->sock_err = errno;
		event_active(&tx->ev_go, EV_TIMEOUT, 0);
		return;
	}
	tx->st = TX_CONNECT;
	event_assign(&tx->ev_rd, tx->base, tx->fd, EV_READ | EV_PERSIST, tx_rd, tx);
	event_assign(&tx->ev_wr, tx->base, tx->fd, EV_WRITE | EV_PERSIST, tx_wr, tx);
	tx->have_ev = 1;
	event_add(&tx->ev_wr, NULL);
}

/* A pooled connection died before any answer: once more on a fresh one
 * (nothing reached the client; the held body is still whole). */
static int tx_retry(struct fwd_icap_tx *tx)
{
	if (!tx->reused || tx->retried || tx->verdict != 0 || evbuffer_get_length(tx->orig) != tx->total)
		return 0;
	tx->retried = 1;
	fwd_icap_conn_close(tx);
	evbuffer_drain(tx->out, evbuffer_get_length(tx->out));
	evbuffer_drain(tx->in, evbuffer_get_length(tx->in));
	tx->term_sent = tx->ieof = 0;
	tx->sent = 0;
	tx_begin_conn(tx);
	return 1;
}

/* The worker's resolver answered a name (tx_begin_conn). */
static void tx_dns_done(void *arg, const struct gw_dns_result *res)
{
	struct fwd_icap_tx *tx = arg;

	tx->dnsq = NULL;
	if (res->naddrs == 0) {
		tx->dns_err = res->error != NULL ? res->error : "no address";
		tx_go(-1, 0, tx);
		return;
	}
	take_addr(tx, res);
	tx_begin_conn(tx);
}

static void tx_go(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;

	(void)fd;
	(void)what;
	if (tx->dns_err != NULL) {   /* the name did not resolve (tx_begin_conn) */
		char why[160];
		snprintf(why, sizeof why, "cannot resolve %s: %s", tx->s->c->host, tx->dns_err);
		tx->dns_err = NULL;
		if (tx_fail(tx, why))
			tx_kick(tx);
		return;
	}
	if (tx->sock_err) {   /* a socket error in tx_begin_conn */
		char why[128];
		snprintf(why, sizeof why, "cannot connect: %s", strerror(tx->sock_err));
		tx->sock_err = 0;
		if (tx_fail(tx, why))
			tx_kick(tx);
		return;
	}
	tx_begin_conn(tx);
}

/* Out of the queue of exchanges waiting for a connection. */
static void unqueue(struct fwd_icap_tx *tx)
{
	struct fwd_icap_tx **pp = &tx->ws->wait_head, *prev = NULL;

	if (!tx->queued)
		return;
	for (; *pp != NULL && *pp != tx; prev = *pp, pp = &(*pp)->wnext)
		;
	if (*pp == tx) {
		*pp = tx->wnext;
		if (tx->ws->wait_tail == tx)
			tx->ws->wait_tail = prev;
	}
	tx->queued = 0;
}

static void dns_cancel(struct fwd_icap_tx *tx)
{
	if (tx->dnsq != NULL) {
		gw_dns_cancel(tx->dnsq);
		tx->dnsq = NULL;
	}
}

static void tx_bp(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;

	(void)fd;
	(void)what;
	event_del(&tx->ev_bp);   /* (woken: the fallback timer is not needed) */
	if (tx->fd >= 0 && tx->have_ev) {
		event_add(&tx->ev_rd, NULL);
		if (tx->ssl != NULL && SSL_pending(tx->ssl) > 0)
			event_active(&tx->ev_rd, EV_READ, 0);
	}   /* (tx_rd pauses again while still full) */
}

static void tx_to(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;

	(void)fd;
	(void)what;
	unqueue(tx);
	dns_cancel(tx);
	if (tx_fail(tx, "timed out (timeout)"))
		tx_kick(tx);
}

static void tx_wr(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;
	int err = 0;
	socklen_t el = sizeof err;

	(void)what;
	if (tx->st == TX_CONNECT) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			char why[128];
			snprintf(why, sizeof why, "cannot connect: %s", strerror(err ? err : errno));
			if (tx_fail(tx, why))
				tx_kick(tx);
			return;
		}
		event_del(&tx->ev_wr);
		if (tx->s->c->tls) {   /* icaps: the handshake first */
			if (tx->s->tls == NULL || (tx->ssl = fwd_icap_tls_new(tx->s->tls, fd, tx->s->c->host)) == NULL) {
				if (tx_fail(tx, tx->s->tls == NULL ? tx->s->tls_err : "TLS: out of memory"))
					tx_kick(tx);
				return;
			}
			tx->handshaking = 1;
			tls_step(tx);
			return;
		}
		on_conn(tx);
		return;
	}
	if (tx->handshaking) {
		tls_step(tx);
		return;
	}
	while (evbuffer_get_length(tx->out) > 0) {
		int n = tx->ssl != NULL ? fwd_icap_tls_write(tx->ssl, tx->out) : evbuffer_write(tx->out, fd);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			if (tx_retry(tx))
				return;
			if (tx->resp_done)
				return;   /* (answered: what it did not read does not matter) */
			if (tx_fail(tx, "connection lost while sending"))
				tx_kick(tx);
			return;
		}
	}
	event_del(&tx->ev_wr);
	if (tx->resp_done && tx->term_sent) {
		conn_release(tx, 1);
		return;
	}
	if (tx->held && (tx->total - tx->sent) < HIWAT / 4 && tx->st != TX_WAIT100 && tx->st != TX_PREVIEW) {
		tx->held = 0;
		if (tx->prev != NULL)   /* (a chain: the previous one's relay may read on) */
			event_active(&tx->prev->ev_bp, EV_TIMEOUT, 0);
		tx_kick(tx);
	}
}

/* One read of what the service sent: bytes, 0 at EOF, -1 (errno).  Not
 * evbuffer_read(): it asks the kernel first how much is there (an ioctl
 * per read, and c-icap's echo writes 4 KiB at a time). */
static int sock_read(struct evbuffer *b, int fd)
{
	struct evbuffer_iovec v[2];
	struct iovec io[2];
	int nv = evbuffer_reserve_space(b, READ_AT_ONCE, v, 2);
	ssize_t n;
	size_t left;

	if (nv <= 0)
		return -1;
	for (int i = 0; i < nv; i++)
		io[i].iov_base = v[i].iov_base, io[i].iov_len = v[i].iov_len;
	n = readv(fd, io, nv);
	if (n <= 0) {
		evbuffer_commit_space(b, v, 0);
		return (int)n;
	}
	left = (size_t)n;
	for (int i = 0; i < nv; i++) {
		v[i].iov_len = v[i].iov_len < left ? v[i].iov_len : left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(b, v, nv);
	return (int)n;
}

/* The client's share of a 200 body goes out in batches of FLUSH_AT bytes
 * (c-icap's echo sends 4 KiB pieces: one client write each, before);
 * what is short of it goes out at the answer's end, when the client's
 * output drains, or after FLUSH_WAIT at the latest. */
static void tx_flush(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;

	(void)fd;
	(void)what;
	tx->unflushed = 0;
	if (!tx->resp_done)   /* (ended or failed: flushed, or nothing to go on) */
		tx_kick(tx);
}

/* After relaying: 1 when the client should get it now. */
static int flush_now(struct fwd_icap_tx *tx, size_t relayed)
{
	static const struct timeval wait = { 0, FLUSH_WAIT_US };

	if (tx->reqmod || tx->next != NULL || tx->ck.done)
		goto now;
	tx->unflushed += relayed;
	if (tx->unflushed < FLUSH_AT) {
		if (!evtimer_pending(&tx->ev_flush, NULL))
			evtimer_add(&tx->ev_flush, &wait);
		return 0;
	}
now:
	tx->unflushed = 0;
	evtimer_del(&tx->ev_flush);
	return 1;
}

static void tx_rd(evutil_socket_t fd, short what, void *arg)
{
	struct fwd_icap_tx *tx = arg;
	struct fwd_icap_msg h;
	int n, r, resume = 0;

	(void)what;
	if (tx->replying && !tx->reqmod && out_full(tx)) {
		/* the client is slow: read the service no faster than it takes
		 * (the core does not call us when it drains, so look again soon) */
		static const struct timeval again = { 0, 10 * 1000 };
		event_del(&tx->ev_rd);
		if (tx->next == NULL)
			gw_req_output_wake(tx->rq, &tx->ev_bp);   /* at once when it drains (HTTP/1) */
		event_add(&tx->ev_bp, &again);            /* (else look again soon) */
		return;
	}
	if (tx->handshaking) {
		tls_step(tx);
		return;
	}
	n = tx->ssl != NULL ? fwd_icap_tls_read(tx->ssl, tx->in, 64 * 1024) : sock_read(tx->in, fd);
	if (tx->ssl != NULL && SSL_pending(tx->ssl) > 0)
		event_active(&tx->ev_rd, EV_READ, 0);   /* (decrypted bytes the socket will not signal) */
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 && evbuffer_get_length(tx->in) == 0 && tx->verdict == 0 && tx_retry(tx))
		return;
	for (;;) {
		if (tx->replying) {
			size_t had = evbuffer_get_length(tx->in);
			int rr = fwd_icap_answer_relay(tx);
			if (rr == -2) {
				fwd_icap_answer_oversize(tx);
				tx_kick(tx);
				return;
			}
			if (rr < 0) {
				/* (a response: cut, tx may be gone; an upload: decided) */
				if (tx_fail(tx, "bad chunk framing in the answer's body"))
					tx_kick(tx);
				return;
			}
			resume = flush_now(tx, had - evbuffer_get_length(tx->in));
			if (tx->ck.done) {
				tx->replying = 0;
				tx->resp_done = 1;
				atomic_store(&tx->s->health, 1);
				event_del(&tx->ev_to);
				conn_release(tx, tx->term_sent && evbuffer_get_length(tx->out) == 0);
				break;
			}
			if (n <= 0) {
				if (tx_fail(tx, n == 0 ? "the service closed the connection mid-answer" :
				    "connection reset mid-answer"))
					tx_kick(tx);
				return;
			}
			break;
		}
		if (tx->resp_done) {
			if (n <= 0 || evbuffer_get_length(tx->in) > 0) {
				fwd_icap_conn_close(tx);   /* closed, or more than was asked */
				fwd_icap_wake_waiter(tx->ws);
			}
			break;
		}
		r = fwd_icap_msg_parse((const char *)evbuffer_pullup(tx->in, -1), evbuffer_get_length(tx->in), &h);
		if (r < 0 || (r == 0 && n <= 0)) {
			const char *why = r < 0 ? (evbuffer_get_length(tx->in) >= ICAP_HEAD_MAX ?
			    "answer head too long" : "malformed answer") :
			    n == 0 ? "the service closed the connection without answering" : "connection reset";
			if (tx_fail(tx, why))
				resume = 1;
			goto out;
		}
		if (r == 0)
			break;
		if (tx->st == TX_OPTIONS) {
			int k = fwd_icap_answer_options(tx, &h);
			if (k < 0) {
				char why[96];
				snprintf(why, sizeof why, k == -1 ? "OPTIONS answered %d" :
				    "OPTIONS: the service does not offer this method (status %d)", h.status);
				if (tx_fail(tx, why))
					resume = 1;
				goto out;
			}
			atomic_store(&tx->s->health, 1);
			{
				size_t cl;
				const char *cv = fwd_icap_msg_get(&h, "Connection", &cl);
				tx->conn_close = cv != NULL && gw_http1_list_has(cv, cl, "close");
			}
			evbuffer_drain(tx->in, h.len);
			if (tx->conn_close) {   /* a fresh connection for the RESPMOD */
				tx->conn_close = 0;
				fwd_icap_conn_close(tx);
				tx_begin_conn(tx);
				return;
			}
			send_respmod(tx);
			continue;
		}
		if (h.status == 100) {
			evbuffer_drain(tx->in, h.len);
			if (tx->st != TX_WAIT100) {
				if (tx_fail(tx, "100 Continue not asked for"))
					resume = 1;
				goto out;
			}
			tx->st = TX_SEND;
			feed(tx);
			continue;
		}
		r = fwd_icap_answer_took(tx, &h);
		if (r == 0) {
			if (n <= 0) {
				if (tx_fail(tx, "the service closed mid-answer"))
					resume = 1;
				goto out;
			}
			break;   /* (the head is read again with the rest) */
		}
		if (r < 0) {
			char why[64];
			snprintf(why, sizeof why, "answered %d%s", h.status, h.status == 200 ?
			    " with a bad Encapsulated head" : "");
			if (tx_fail(tx, why))
				resume = 1;
			goto out;
		}
		resume = 1;
		if (tx->resp_done) {
			atomic_store(&tx->s->health, 1);
			event_del(&tx->ev_to);
			/* 204 after the whole body, or inside the preview: the
			 * connection is clean; else what we still owe is dropped */
			if ((tx->term_sent && evbuffer_get_length(tx->out) == 0) || tx->st == TX_WAIT100)
				conn_release(tx, 1);
			else if (!tx->term_sent)
				fwd_icap_conn_close(tx), fwd_icap_wake_waiter(tx->ws);
			break;
		}
	}
out:
	if (resume || tx->held) {
		tx->held = 0;
		tx_kick(tx);
	}
}

/* ---- the hooks ---- */

/* The heads the service sees: the client's request, the origin's response. */
static char *build_heads(struct gw_req *rq, const struct gw_http_head *resp, const char *raw, size_t rawlen,
    size_t *rql, size_t *rsl)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct evbuffer *b = evbuffer_new();
	char *out = NULL;

	if (b == NULL)
		return NULL;
	evbuffer_add_printf(b, "%.*s %.*s HTTP/1.1\r\n", (int)h->method_len, h->method_str,
	    (int)h->target_len, h->target);
	for (size_t i = 0; i < h->nhdrs; i++) {
		/* credentials for the proxy are not the service's (it gets the
		 * user as X-Authenticated-User); nor may a rewritten request
		 * carry them back */
		if (h->hdrs[i].name_len == 19 && strncasecmp(h->hdrs[i].name, "proxy-authorization", 19) == 0)
			continue;
		evbuffer_add_printf(b, "%.*s: %.*s\r\n", (int)h->hdrs[i].name_len, h->hdrs[i].name,
		    (int)h->hdrs[i].value_len, h->hdrs[i].value);
	}
	evbuffer_add(b, GW_STRLIT("\r\n"));
	*rql = evbuffer_get_length(b);
	if (resp != NULL) {
		evbuffer_add_printf(b, "HTTP/1.1 %d %.*s\r\n", resp->status, (int)resp->reason_len, resp->reason);
		for (size_t i = 0; i < resp->nhdrs; i++)
			evbuffer_add_printf(b, "%.*s: %.*s\r\n", (int)resp->hdrs[i].name_len, resp->hdrs[i].name,
			    (int)resp->hdrs[i].value_len, resp->hdrs[i].value);
		evbuffer_add(b, GW_STRLIT("\r\n"));
	} else if (raw != NULL) {
		evbuffer_add(b, raw, rawlen);   /* (a chain: the previous service's result, as it gave it) */
	}
	*rsl = evbuffer_get_length(b) - *rql;
	if ((out = malloc(*rql + *rsl)) != NULL)
		evbuffer_copyout(b, out, *rql + *rsl);
	evbuffer_free(b);
	return out;
}

/* A tx for rq on service svc (its timeout armed); NULL out of memory. */
static struct fwd_icap_tx *tx_new(struct fwd_icap *ic, int svc, struct gw_req *rq, const char *server_ip)
{
	struct icap_svc *s = &ic->s[svc];
	struct fwd_icap_tx *tx;
	struct timeval tv;

	if (wsvc(s, gw_req_worker(rq)) == NULL || (tx = calloc(1, sizeof *tx)) == NULL)
		return NULL;
	tx->ic = ic;
	tx->s = s;
	tx->ws = s->w[gw_req_worker(rq)];
	tx->rq = rq;
	tx->fd = -1;
	tx->base = gw_req_base(rq);
	snprintf(tx->server_ip, sizeof tx->server_ip, "%s", server_ip ? server_ip : "");
	if (!s->c->host_is_name) {
		memcpy(&tx->addr, &s->sa, s->salen);
		tx->addrlen = s->salen;
		tx->have_addr = 1;
	}
	tx->out = evbuffer_new();
	tx->in = evbuffer_new();
	tx->orig = evbuffer_new();
	event_assign(&tx->ev_to, tx->base, -1, 0, tx_to, tx);
	event_assign(&tx->ev_go, tx->base, -1, 0, tx_go, tx);
	event_assign(&tx->ev_bp, tx->base, -1, 0, tx_bp, tx);
	evtimer_assign(&tx->ev_flush, tx->base, tx_flush, tx);
	tv.tv_sec = (time_t)s->c->timeout;
	tv.tv_usec = (suseconds_t)((s->c->timeout - (double)tv.tv_sec) * 1e6);
	event_add(&tx->ev_to, &tv);
	return tx;
}

void fwd_icap_respmod(struct fwd_icap *ic, int plan, struct gw_req *rq, const struct gw_http_head *resp,
    const char *server_ip, struct fwd_icap_tx **txp)
{
	const struct icap_plan *pl = &ic->plans[plan];
	const struct gw_http_head *h = gw_req_head(rq);
	struct fwd_icap_tx *tx;
	int pos, svc = -1;

	if (resp->body == GW_BODY_NONE || (resp->body == GW_BODY_LENGTH && resp->content_length == 0))
		return;   /* nothing to scan */
	/* the first service of the chain that takes this response (one
	 * passing it unscanned leaves it to the next) */
	for (pos = 0; pos < pl->n; pos++) {
		struct icap_svc *s = &ic->s[pl->svc[pos]];
		struct icap_wsvc *ws;
		if (resp->body == GW_BODY_LENGTH && resp->content_length > s->c->max_body_bytes) {
			bump(s, FWD_ICAP_C_OVERSIZE);
			if (s->c->oversize_block) {
				gw_req_set_reason(rq, "ICAP: response over max_body_bytes");
				gw_req_respond(rq, 403, NULL, NULL, 0, "The response is too large to be scanned for "
				    "malware, and the gateway is set to withhold such responses.");
				return;
			}
			continue;
		}
		if (h->path != NULL && (ws = s->w[gw_req_worker(rq)]) != NULL && ws->have_opts &&
		    ws->ignore[0] && fwd_icap_msg_ext_listed(ws->ignore, h->path, h->path_len))
			continue;   /* Transfer-Ignore */
		svc = pl->svc[pos];
		break;
	}
	if (svc < 0)
		return;
	if ((tx = tx_new(ic, svc, rq, server_ip)) == NULL)
		goto oom;
	tx->plan = pl;
	tx->pos = pos;
	tx->heads = build_heads(rq, resp, NULL, 0, &tx->req_len, &tx->res_len);
	*txp = tx;   /* (fwd_icap_done frees it from now on) */
	if (tx->out == NULL || tx->in == NULL || tx->orig == NULL || tx->heads == NULL ||
	    gw_req_filter_response(rq) < 0 || gw_req_filter_hold_head(rq) < 0)
		goto oom;
	tx_begin_conn(tx);
	return;
oom:
	gw_req_set_reason(rq, "ICAP: out of memory");
	gw_req_respond(rq, 503, NULL, NULL, 0, NULL);
}

int fwd_icap_reqmod(struct fwd_icap *ic, int plan, struct gw_req *rq, const char *body, size_t len,
    int complete, struct fwd_icap_tx **txp, void (*fin)(struct gw_req *rq, void *arg))
{
	int svc = ic->plans[plan].svc[0];   /* (a reqmod list has one) */
	struct icap_svc *s = &ic->s[svc];
	struct fwd_icap_tx *tx;
	size_t rsl;

	if (!complete || len > s->c->max_body_bytes) {
		bump(s, FWD_ICAP_C_OVERSIZE);
		if (!s->c->oversize_block) {
			gw_req_set_reason(rq, "ICAP: upload over max_body_bytes: sent unscanned");
			return 1;
		}
		gw_req_set_reason(rq, "ICAP: upload over max_body_bytes");
		gw_req_respond(rq, 403, NULL, NULL, 0, "The upload is too large to be scanned, and the "
		    "gateway is set to refuse such uploads.");
		return 2;
	}
	if ((tx = tx_new(ic, svc, rq, NULL)) == NULL)
		goto oom;
	*txp = tx;   /* (fwd_icap_done frees it from now on) */
	tx->reqmod = 1;
	tx->fin = fin;
	tx->reply = evbuffer_new();
	tx->heads = build_heads(rq, NULL, NULL, 0, &tx->req_len, &rsl);
	if (tx->out == NULL || tx->in == NULL || tx->orig == NULL || tx->reply == NULL || tx->heads == NULL ||
	    evbuffer_add(tx->orig, body, len) < 0)
		goto oom;
	tx->total = len;
	tx->body_last = 1;
	gw_req_defer(rq);
	tx_begin_conn(tx);
	return 0;
oom:
	gw_req_set_reason(rq, "ICAP: out of memory");
	gw_req_respond(rq, 503, NULL, NULL, 0, NULL);
	return 2;
}

enum fwd_icap_outcome fwd_icap_outcome(struct fwd_icap_tx *tx, int *status, const char **ctype,
    const char **body, size_t *len)
{
	if (tx->outcome == FWD_ICAP_RESPOND) {
		*status = tx->page_status >= 200 && tx->page_status <= 599 ? tx->page_status : 403;
		*ctype = tx->page_type[0] ? tx->page_type : "text/html";
		*len = evbuffer_get_length(tx->reply);
		*body = *len > 0 ? (const char *)evbuffer_pullup(tx->reply, -1) : "";
	}
	return tx->outcome;
}

/* p[0..n) as one chunk for the service, not kept for a 204. */
static void chunk_direct(struct fwd_icap_tx *tx, const char *p, size_t n)
{
	evbuffer_add_printf(tx->out, "%zx\r\n", n);
	evbuffer_add(tx->out, p, n);
	evbuffer_add(tx->out, GW_STRLIT("\r\n"));
	tx->sent += n;
}

int fwd_icap_filter(struct fwd_icap_tx *tx, const char *p, size_t n, int last)
{
	if (tx->passing) {
		tx->emitted_last |= last;
		return fwd_icap_out_emit(tx, p, n, last);
	}
	tx->total += n;
	tx->body_last |= last;
	if (tx->discard) {
		if (tx->fd >= 0 && !tx->term_sent && tx->st == TX_SEND) {
			/* the service still reads the body (its answer is what the
			 * client gets): straight to it, nothing kept for a 204 */
			if (n > 0 && evbuffer_get_length(tx->orig) == 0 && !tx->reqmod) {
				chunk_direct(tx, p, n);
			} else {
				evbuffer_add(tx->orig, p, n);
			}
			feed(tx);
			if (evbuffer_get_length(tx->out) > HIWAT) {
				tx->held = 1;   /* the service is slower than the origin: tx_wr resumes */
				return GW_FILTER_HOLD;
			}
		}
		return GW_FILTER_GO;
	}
	if (tx->verdict == 0 && tx->total > tx->s->c->max_body_bytes) {
		bump(tx->s, FWD_ICAP_C_OVERSIZE);
		fwd_icap_conn_close(tx);
		fwd_icap_wake_waiter(tx->ws);
		event_del(&tx->ev_to);
		tx->resp_done = 1;
		if (tx->s->c->oversize_block) {
			gw_req_set_reason(tx->rq, "ICAP: response over max_body_bytes");
			fwd_icap_local_page(tx, 403, "Too large to scan", "The response is too large to be scanned for "
			    "malware, and the gateway is set to withhold such responses.");
		} else {
			gw_req_set_reason(tx->rq, "ICAP: over max_body_bytes: passed unscanned");
			evbuffer_add(tx->orig, p, n);
			fwd_icap_pass_original(tx);
		}
		return GW_FILTER_GO;
	}
	if (n > 0 && tx->verdict == 200 && !tx->reqmod && tx->st == TX_SEND && tx->fd >= 0 && !tx->term_sent &&
	    evbuffer_get_length(tx->orig) == 0) {
		/* answered 200 (its message replaces this one, no 204 can come):
		 * nothing is kept, the body goes straight to the service (one
		 * copy instead of two, and no held chains) */
		chunk_direct(tx, p, n);
	} else if (n > 0 && evbuffer_add(tx->orig, p, n) < 0) {
		gw_req_filter_abort(tx->rq, "ICAP: out of memory");   /* (the core stops at once) */
		return GW_FILTER_HOLD;
	}
	feed(tx);
	if (tx->total - tx->sent > HIWAT || evbuffer_get_length(tx->out) > HIWAT) {
		tx->held = 1;
		return GW_FILTER_HOLD;
	}
	return GW_FILTER_GO;
}

void fwd_icap_done(struct fwd_icap_tx *tx)
{
	if (tx == NULL)
		return;
	fwd_icap_done(tx->next);   /* (a chain ends with its first) */
	unqueue(tx);
	dns_cancel(tx);
	gw_req_output_wake(tx->rq, NULL);
	/* a connection still busy with this exchange cannot be reused (the
	 * service may still answer); an idle-clean one went back already */
	fwd_icap_conn_close(tx);
	fwd_icap_wake_waiter(tx->ws);
	event_del(&tx->ev_to);
	event_del(&tx->ev_go);
	event_del(&tx->ev_bp);
	event_del(&tx->ev_flush);
	if (tx->out)
		evbuffer_free(tx->out);
	if (tx->in)
		evbuffer_free(tx->in);
	if (tx->orig)
		evbuffer_free(tx->orig);
	if (tx->reply)
		evbuffer_free(tx->reply);
	free(tx->heads);
	free(tx);
}
