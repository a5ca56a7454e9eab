/*
 * core/conn: the connection engine.  A client connection reads request heads,
 * hands each parsed request to its family (struct gw_proto), then carries out
 * the decision: a local response, a file, a proxied exchange with an upstream
 * server, or a tunnel.  Bodies stream in both directions with backpressure:
 * a side is read only while the other side's pending output is below HIWAT.
 *
 * Design rules (DESIGN.md, notes/core-techniques.md):
 *   - raw events and large readv() reads, no bufferevents on the data path;
 *     writes happen at once and EV_WRITE is armed only when the kernel is full;
 *     plain tunnels move bulk bytes with splice(2) (see "splice(2) relay");
 *   - messages are re-serialised, never relayed as raw head bytes; bodies are
 *     decoded and re-encoded (chunk extensions and trailers are dropped);
 *   - requests on one client connection are answered in order (pipelining:
 *     the next head is parsed only after the previous response is written);
 *   - close is the only way out: conn_close() logs the request in flight,
 *     releases everything and frees the connection from a deferred event, so
 *     callers only need to check c->state == CS_CLOSED after a call that may
 *     close.
 */
#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/climit.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/dns.h"
#include "core/hist.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/status.h"
#include "core/tls.h"
#include "core/worker.h"

#define CONN_MAGIC 0x67776331u
#define UP_MAGIC 0x67777570u
#define HIWAT (256 * 1024)          /* stop reading the other side above this */
#define READ_MAX (256 * 1024)       /* bytes per read call */
#define READ_SMALL 900              /* ... after a small read: a 1 KiB chain (tcache) */
#define LINGER_SECS 2.0
#define SCRATCH_HDRS 4096
#define POOL_KEY_MAX 300
#define MAX_INTERIM 16              /* 1xx responses per request; one more is 502 */

/* ---- small per-request arena ---- */

#define ARENA_BLK 4000     /* bytes in a standard block (the worker keeps spares) */

struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	_Alignas(16) char data[];
};

/* n bytes, not zeroed (arena_alloc zeroes). */
static void *arena_raw(struct arena_blk **head, size_t n)
{
	struct arena_blk *b = *head;

	n = (n + 15) & ~(size_t)15;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLK ? n : ARENA_BLK;
		b = malloc(sizeof *b + cap);
		if (b == NULL)
			return NULL;
		b->next = *head;
		b->used = 0;
		b->cap = cap;
		*head = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static void *arena_alloc(struct arena_blk **head, size_t n)
{
	void *p = arena_raw(head, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

struct gw_pool;
static void arena_free(struct gw_pool *p, struct arena_blk *b);

/* ---- types ---- */

enum cstate { CS_HANDSHAKE, CS_HEAD, CS_BUSY, CS_TUNNEL, CS_LINGER, CS_CLOSED };
enum decision { DEC_NONE, DEC_PROXY, DEC_TUNNEL, DEC_RESPOND, DEC_FILE, DEC_DEFER, DEC_READBODY };
enum cto { TO_IDLE, TO_HEADER, TO_BODY, TO_SEND, TO_TUNNEL, TO_LINGER, TO_BG, TO_FIRST, TO_DNS };

struct xfer {
	/* optional observer of the decoded body bytes (response taps) */
	void (*tap)(void *arg, const char *p, size_t n);
	void *tap_arg;
	enum gw_body_kind kind;
	uint64_t remaining;
	struct gw_chunked ck;
	int out_chunked;           /* re-encode as chunked */
	int done;
	uint64_t moved;
};

struct hdr_edit {
	struct hdr_edit *next;
	const char *name;
	const char *value;
	size_t nlen, vlen;
	int del;
};

struct upconn;

union gw_sa {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct gw_req {
	struct gw_conn *c;
	struct arena_blk *arena;
	struct gw_pool *pool;      /* the worker's: takes the arena back */
	struct gw_http_head head;
	char *headbuf;             /* (arena) */
	char id[24];
	double start, start_mono;

	enum decision dec;
	char *up_host;
	uint16_t up_port;
	char *up_path;
	size_t up_path_len;
	char *pool_key;            /* pool_key_make(): "" = never pooled (arena) */
	int up_tls;                /* upstream index + 1 for TLS to the upstream, 0 = plain */
	unsigned keepalive;        /* gw_req_upstream_keepalive (default POOL_KEEPALIVE) */
	int status;
	int file_fd;
	uint64_t file_off, file_len;
	const char *content_type;
	char *body;                /* DEC_RESPOND body (arena) */
	const char *body_ref;      /* gw_req_respond_ref: body owned by the family */
	void (*body_cleanup)(const void *data, size_t len, void *arg);
	void *body_cleanup_arg;
	int finished;              /* the response was delivered in full */
	void *family_data;         /* gw_req_set_data */
	struct hdr_edit *req_edits, *resp_edits;
	int no_via;
	int log_no_query;          /* the access log leaves the query string (2: and the path) out */
	uint64_t max_body;
	const char *verdict, *rule, *user, *reason;
	char upstream_str[64];
	int m_site, m_up;          /* gw_hist slot + 1 (0 = unset): latency labels */
	double up_t0, up_sent;     /* mono: connect started, request sent (0 = recorded) */
	uint64_t bytes_in, bytes_out;
	double body_t0;            /* mono: start of the body rate window (0: not started) */
	uint64_t body_n0;          /* bytes_in at body_t0 */
	int body_slow;             /* the TO_BODY timer is the min-rate deadline */
	int parse_error;
	char client_str[INET6_ADDRSTRLEN];  /* gw_req_client_str, made on first use */
	union gw_sa *client;       /* gw_req_set_client (arena); NULL: the TCP peer */
	char *peer_str;            /* gw_req_peer_str once a client was set (arena) */
	union gw_sa *local;        /* gw_req_local, looked up on first use */

	struct gw_dns_query *dnsq;
	struct gw_dns_result *addrs;   /* the vetted addresses (arena, once resolved) */
	int addr_idx;
	int refused_status;
	int connect_err;           /* errno of the last failed connect */
	int sent_continue;
	int upgrade;               /* request asked for Upgrade and may be tunnelled */
	struct xfer reqx, respx;
	int resp_head_done;        /* final head sent to the client */
	int close_after;           /* close the client connection after this response */
	int linger;                /* unread request body: lingering close */
	int retried;
	int resp_http10;           /* upstream answered HTTP/1.0 */
	int resp_conn_close;       /* upstream said Connection: close */
	int resp_ended;            /* on_response_end was called */
	int interim;               /* 1xx responses read for this request (MAX_INTERIM) */
	/* gw_req_tunnel_via: the CONNECT sent to the parent ("host:port" and
	 * extra header lines, arena); tun_wait while its answer is awaited */
	char *tun_target, *tun_extra;
	size_t tun_extra_len;
	int tun_wait, tun_ok;

	/* gw_req_defer / gw_req_wake */
	struct event *ev_wake;     /* (arena) */
	void (*wake_fn)(struct gw_req *, void *);
	void *wake_arg;
	int deferred, orphan;
	struct gw_worker *wake_w;   /* the worker that waits (the conn may be gone) */
	/* gw_req_read_body: the buffered (de-chunked) body */
	struct evbuffer *bodybuf;
	uint64_t body_max;
	int reading_body;
	int body_complete;         /* bodybuf holds the whole body */
	int body_buffered;         /* the body went through bodybuf */
	double bg_timeout;         /* gw_req_spawn: the whole exchange is cut after this */
};

/*
 * Idle keep-alive connections are many: while idle a connection holds only
 * this struct (no buffers, no write event; notes/core-techniques.md 1).
 */
struct gw_conn {
	uint32_t magic;
	enum cstate state;
	int fd;
	enum cto to_kind;
	int lfd;                   /* the listening socket it came from */
	struct gw_worker *w;
	struct gw_snapshot *snap;
	const struct gw_proto *proto;
	void *side;
	struct event ev_rd, ev_to;   /* ev_to also carries the deferred free */
	struct event *ev_wr;       /* made when a write first finds the kernel full */
	struct evbuffer *in, *out; /* NULL while idle (conn_bufs, conn_idle) */
	SSL *ssl;                  /* TLS listener: the session; NULL = plain */
	struct gw_req *rq;
	struct upconn *up;
	struct tsplice *sp;        /* plain tunnel moving bulk data: its pipes */
	size_t parsed_len;         /* buffered head bytes at the last parse attempt */
	struct gw_conn *next, *prev;
	union gw_sa peer;          /* text made on demand (peer_fmt) */
	unsigned rd_on : 1, rd_armed : 1, wr_on : 1, rd_eof : 1, wr_shut : 1, head_started : 1;
	unsigned rd_big : 2;       /* buf_read's *big */
	unsigned up_paused : 1;    /* upstream reading paused: our output is full */
	unsigned bg : 1, bg_tls : 1;   /* socketless (gw_req_spawn); its parent was on TLS */
	unsigned unlisted : 1;     /* a reload removed its listener: close after this request */
	unsigned has_private : 1;  /* some upstream connection is private to it (pool_private) */
};

struct upconn {
	uint32_t magic;
	int fd;
	struct gw_worker *w;
	struct gw_conn *c;         /* attached client, NULL when pooled */
	struct event ev_rd, ev_wr, ev_to;
	struct evbuffer *in, *out;
	char key[POOL_KEY_MAX];
	char addr_str[64];
	double idle_since;
	int connecting, reused, eof, wr_shut, rd_on, rd_armed, rd_big, wr_on, got_bytes;
	SSL *ssl;                  /* TLS to the upstream; NULL = plain */
	int tls_hs;                /* TLS handshake in progress */
	int cl_paused;             /* client reading paused: our output is full */
	int family;
	union gw_sa peer;          /* the (vetted) address it is connected to */
	/* private to this client connection (connection-bound authentication,
	 * pool_private), NULL = shared; never a dangling pointer: conn_close()
	 * drops the pooled connections its client owns */
	const struct gw_conn *owner;
	unsigned kh;               /* key_hash32(key) */
	unsigned keepalive;        /* idle connections of its key that may be pooled */
	struct upconn *pnext, *pprev;
};

/* ---- pool ---- */

#define POOL_BUCKETS 256
/* idle connections per key and worker when the family says nothing (as
 * reverse.upstreams.keepalive's default) */
#define POOL_KEEPALIVE 32
/* idle counts per key hash: keys that share a slot share a bound, which
 * only costs reuse */
#define POOL_CSLOTS 4096

#define SPARE_BUFS 128
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_BLKS 0   /* keep use-after-free of request memory visible to ASan */
#else
#define SPARE_BLKS 32
#endif

struct gw_pool {
	struct upconn *b[POOL_BUCKETS];
	size_t n;
	uint32_t kcount[POOL_CSLOTS];   /* idle connections per key hash slot */
	/* empty evbuffers given back by idle client connections, for reuse */
	struct evbuffer *spare[SPARE_BUFS];
	int nspare;
	/* standard arena blocks of finished requests, for reuse (a malloc of
	 * this size is no tcache hit) */
	struct arena_blk *spare_blk;
	int nblk;
};

static void arena_free(struct gw_pool *p, struct arena_blk *b)
{
	while (b != NULL) {
		struct arena_blk *n = b->next;
		if (b->cap == ARENA_BLK && p->nblk < SPARE_BLKS) {
			b->next = p->spare_blk;
			p->spare_blk = b;
			p->nblk++;
		} else {
			free(b);
		}
		b = n;
	}
}

/* A standard arena block from the spares, or NULL (arena_raw makes one). */
static struct arena_blk *arena_spare(struct gw_pool *p)
{
	struct arena_blk *b = p->spare_blk;

	if (b != NULL) {
		p->spare_blk = b->next;
		p->nblk--;
		b->next = NULL;
		b->used = 0;
	}
	return b;
}

static void up_free(struct upconn *u);
static void up_rd_cb(evutil_socket_t fd, short what, void *arg);
static void up_wr_cb(evutil_socket_t fd, short what, void *arg);
static void up_to_cb(evutil_socket_t fd, short what, void *arg);
static void client_wr_cb(evutil_socket_t fd, short what, void *arg);

static unsigned key_hash32(const char *k)
{
	unsigned x = 2166136261u;

	while (*k)
		x = (x ^ (unsigned char)*k++) * 16777619u;
	return x;
}

struct gw_pool *gw_pool_new(void)
{
	return calloc(1, sizeof(struct gw_pool));
}

static void pool_unlink(struct gw_pool *p, struct upconn *u)
{
	unsigned h = u->kh % POOL_BUCKETS;

	if (u->pprev != NULL)
		u->pprev->pnext = u->pnext;
	else
		p->b[h] = u->pnext;
	if (u->pnext != NULL)
		u->pnext->pprev = u->pprev;
	u->pnext = u->pprev = NULL;
	p->n--;
	p->kcount[u->kh % POOL_CSLOTS]--;
}

void gw_pool_flush(struct gw_pool *p)
{
	for (int i = 0; i < POOL_BUCKETS; i++)
		while (p->b[i] != NULL) {
			struct upconn *u = p->b[i];
			pool_unlink(p, u);
			up_free(u);
		}
}

void gw_pool_free(struct gw_pool *p)
{
	if (p == NULL)
		return;
	gw_pool_flush(p);
	while (p->nspare > 0)
		evbuffer_free(p->spare[--p->nspare]);
	while (p->spare_blk != NULL) {
		struct arena_blk *b = p->spare_blk;
		p->spare_blk = b->next;
		free(b);
	}
	free(p);
}

void gw_pool_expire(struct gw_worker *w)
{
	struct gw_pool *p = w->pool;
	double limit = w->snap->conf->global.timeouts.upstream_idle;
	double now = gw_mono_now();

	for (int i = 0; i < POOL_BUCKETS; i++) {
		struct upconn *u = p->b[i];
		while (u != NULL) {
			struct upconn *n = u->pnext;
			if (now - u->idle_since > limit) {
				pool_unlink(p, u);
				up_free(u);
			}
			u = n;
		}
	}
}

static int addr_vetted(const struct gw_dns_result *v, const union gw_sa *a)
{
	for (int i = 0; i < v->naddrs; i++) {
		const union gw_sa *x = (const union gw_sa *)&v->addrs[i];
		if (x->sa.sa_family != a->sa.sa_family)
			continue;
		if (a->sa.sa_family == AF_INET ? x->in.sin_port == a->in.sin_port &&
		    x->in.sin_addr.s_addr == a->in.sin_addr.s_addr :
		    x->in6.sin6_port == a->in6.sin6_port &&
		    memcmp(&x->in6.sin6_addr, &a->in6.sin6_addr, 16) == 0)
			return 1;
	}
	return 0;
}

/*
 * An idle connection for client c under key (pool_key_make: side, TLS
 * settings, host:port), taken out of the pool, or NULL.  vetted, when not
 * NULL, are the addresses the family allowed for this request: a connection
 * to any other address is not used.  A connection private to another client
 * connection is never returned; one private to c is preferred (its
 * connection-bound authentication lives there).
 */
static struct upconn *pool_get(struct gw_worker *w, const char *key, const struct gw_conn *c,
    const struct gw_dns_result *vetted)
{
	struct gw_pool *p = w->pool;
	struct upconn *shared = NULL;

	if (key[0] == '\0')
		return NULL;
	for (struct upconn *u = p->b[key_hash32(key) % POOL_BUCKETS]; u != NULL; u = u->pnext) {
		if ((u->owner != NULL && u->owner != c) || strcmp(u->key, key) != 0 ||
		    (vetted != NULL && !addr_vetted(vetted, &u->peer)))
			continue;
		if (u->owner == c) {
			shared = u;
			break;
		}
		if (shared == NULL) {
			shared = u;
			if (!c->has_private)
				break;
		}
	}
	/* its idle timer is re-set or removed by upstream_ready() */
	if (shared != NULL)
		pool_unlink(p, shared);
	return shared;
}

/* Connection-bound authentication (NTLM, Negotiate, Kerberos) authenticates
 * the TCP connection, not the request (RFC 4559 and MS-NTHT; Squid, HAProxy
 * and nginx's ntlm module bind such a connection to its client): once an
 * upstream connection carried such a challenge or credentials, it serves
 * only the client connection that made it. */
static int conn_bound_scheme(const char *v, size_t n)
{
	static const char *const words[] = { "ntlm", "negotiate", "kerberos" };

	/* anywhere in the value (a challenge list may name several schemes):
	 * a false match only costs the sharing of one connection */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
			size_t wl = strlen(words[k]);
			if (n - i >= wl && strncasecmp(v + i, words[k], wl) == 0)
				return 1;
		}
	return 0;
}

static void pool_private(struct upconn *u, struct gw_conn *c)
{
	if (u->owner == NULL)
		gw_debug("upstream %s: connection-bound authentication: private to one client connection",
		    u->addr_str);
	u->owner = c;
	c->has_private = 1;
}

/* Did head (a request, or a 401/407 response) carry connection-bound
 * credentials or a challenge? */
static int head_conn_bound(const struct gw_http_head *h, const char *name, size_t nlen)
{
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (x->name_len == nlen && strncasecmp(x->name, name, nlen) == 0 &&
		    conn_bound_scheme(x->value, x->value_len))
			return 1;
	}
	return 0;
}

/* Close the pooled connections private to c (c is closing). */
static void pool_drop_owned(struct gw_pool *p, const struct gw_conn *c)
{
	for (int i = 0; i < POOL_BUCKETS; i++) {
		struct upconn *u = p->b[i];
		while (u != NULL) {
			struct upconn *n = u->pnext;
			if (u->owner == c) {
				pool_unlink(p, u);
				up_free(u);
			}
			u = n;
		}
	}
}

static void pool_put(struct gw_worker *w, struct upconn *u)
{
	struct gw_pool *p = w->pool;
	unsigned h = u->kh % POOL_BUCKETS;
	struct timeval tv;
	double t = w->snap->conf->global.timeouts.upstream_idle;

	/* a key that did not fit is never shared; idle connections are bounded
	 * per key (the family's keepalive) and per worker (its share of
	 * max_connections): past that the origin gets it closed, not kept */
	if (u->key[0] == '\0' || p->kcount[u->kh % POOL_CSLOTS] >= u->keepalive ||
	    p->n >= w->max_conns) {
		u->c = NULL;
		up_free(u);
		return;
	}
	u->c = NULL;
	u->idle_since = gw_mono_now();
	if (u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
	/* watch for the origin closing it */
	if (!u->rd_armed) {
		event_add(&u->ev_rd, NULL);
		u->rd_armed = 1;
	}
	u->rd_on = 1;
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	event_add(&u->ev_to, &tv);
	u->pnext = p->b[h];
	u->pprev = NULL;
	if (u->pnext != NULL)
		u->pnext->pprev = u;
	p->b[h] = u;
	p->n++;
	p->kcount[u->kh % POOL_CSLOTS]++;
}

/* ---- helpers ---- */

static void set_timer(struct event *ev, double secs)
{
	struct timeval tv;

	if (secs <= 0) {
		event_del(ev);
		return;
	}
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	event_add(ev, &tv);
}

static const struct conf_timeouts *TO(struct gw_conn *c)
{
	return &c->snap->conf->global.timeouts;
}

/*
 * The TO_BODY timer: client_body bounds the pause between body bytes, and
 * client_body_min_rate the average since the body started (after a grace of
 * client_body seconds), so a trickle of a byte per pause cannot hold the
 * connection (and an upstream one) forever.  The timer is cut to the moment
 * the average would fall under the rate if nothing more came; rq->body_slow
 * tells client_to_cb which bound fired.
 */
static double body_timeout(struct gw_conn *c, const struct conf_timeouts *t)
{
	struct gw_req *rq = c->rq;
	double now, due;

	if (rq == NULL)
		return t->client_body;
	rq->body_slow = 0;
	if (t->client_body_min_rate <= 0)
		return t->client_body;
	now = gw_mono_now();
	if (rq->body_t0 == 0) {
		rq->body_t0 = now;
		rq->body_n0 = rq->bytes_in;
	}
	due = rq->body_t0 + (double)(rq->bytes_in - rq->body_n0) / t->client_body_min_rate;
	if (due < rq->body_t0 + t->client_body)
		due = rq->body_t0 + t->client_body;
	if (due - now >= t->client_body)
		return t->client_body;
	rq->body_slow = 1;
	return due - now > 0.001 ? due - now : 0.001;
}

static void client_timer(struct gw_conn *c, enum cto kind)
{
	const struct conf_timeouts *t = TO(c);
	double s = 0;

	c->to_kind = kind;
	switch (kind) {
	case TO_IDLE: s = t->client_idle; break;
	case TO_HEADER: s = t->client_header; break;
	case TO_BODY: s = body_timeout(c, t); break;
	case TO_SEND: s = t->client_idle; break;
	case TO_TUNNEL: s = t->tunnel_idle; break;
	case TO_LINGER: s = LINGER_SECS; break;
	case TO_BG: s = c->rq != NULL ? c->rq->bg_timeout : 0; break;
	case TO_DNS: s = t->upstream_connect; break;
	case TO_FIRST:
		/* a new connection that has sent nothing yet (on TLS: no byte of
		 * the handshake, then no byte of the first request); never longer
		 * than what it would otherwise get */
		s = c->state == CS_HANDSHAKE ? t->client_header : t->client_idle;
		if (t->client_first_byte < s)
			s = t->client_first_byte;
		break;
	}
	set_timer(&c->ev_to, s);
}

/*
 * Want reads on a read event (on) or not; returns whether they are wanted
 * now (was_on: whether they were).  Arming is at once; disarming is lazy: the
 * event stays in epoll (*armed) until it fires unwanted and the callback
 * calls read_unwanted().  A keep-alive client waiting for its response and a
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
static int read_unwanted(struct event *ev, int on, int *armed)
{
	if (on || !*armed)
		return 0;
	event_del(ev);
	*armed = 0;
	return 1;
}

static void rd_enable(struct gw_conn *c, int on)
{
	int armed = c->rd_armed;

	c->rd_on = read_arm(&c->ev_rd, c->rd_on, &armed, c->rd_eof, c->ssl, on);
	c->rd_armed = armed;
}

static void up_rd_enable(struct upconn *u, int on)
{
	u->rd_on = read_arm(&u->ev_rd, u->rd_on, &u->rd_armed, u->eof, u->ssl, on);
}

/* Arm (on) or disarm EV_WRITE on the client socket.  The event is made the
 * first time a write finds the kernel full (small responses never need it)
 * and kept until the connection is freed.  Returns -1 when out of memory. */
static int wr_enable(struct gw_conn *c, int on)
{
	if (on && !c->wr_on) {
		if (c->ev_wr == NULL &&
		    (c->ev_wr = event_new(c->w->base, c->fd, EV_WRITE | EV_PERSIST, client_wr_cb, c)) == NULL)
			return -1;
		event_add(c->ev_wr, NULL);
		c->wr_on = 1;
	} else if (!on && c->wr_on) {
		event_del(c->ev_wr);
		c->wr_on = 0;
	}
	return 0;
}

static struct evbuffer *buf_get(struct gw_pool *p)
{
	return p->nspare > 0 ? p->spare[--p->nspare] : evbuffer_new();
}

static void buf_put(struct gw_pool *p, struct evbuffer *b)
{
	if (p->nspare < SPARE_BUFS)
		p->spare[p->nspare++] = b;
	else
		evbuffer_free(b);
}

/* Give c its buffers (none while idle).  Returns -1 when out of memory. */
static int conn_bufs(struct gw_conn *c)
{
	if (c->in != NULL)
		return 0;
	c->in = buf_get(c->w->pool);
	c->out = buf_get(c->w->pool);
	if (c->in != NULL && c->out != NULL)
		return 0;
	if (c->in != NULL)
		buf_put(c->w->pool, c->in);
	if (c->out != NULL)
		buf_put(c->w->pool, c->out);
	c->in = c->out = NULL;
	return -1;
}

/* Between requests: hand the (empty) buffers back to the worker. */
static void conn_idle(struct gw_conn *c)
{
	if (c->in == NULL || evbuffer_get_length(c->in) > 0 || evbuffer_get_length(c->out) > 0)
		return;
	buf_put(c->w->pool, c->in);
	buf_put(c->w->pool, c->out);
	c->in = c->out = NULL;
}

/* "a.b.c.d" for the 4 bytes at a, into buf; returns buf. */
static char *ipv4_fmt(const unsigned char *a, char *buf)
{
	char *o = buf;

	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (v >= 100)
			*o++ = (char)('0' + v / 100);
		if (v >= 10)
			*o++ = (char)('0' + v / 10 % 10);
		*o++ = (char)('0' + v % 10);
		*o++ = i < 3 ? '.' : '\0';
	}
	return buf;
}

/* An address's numeric form (IPv4-mapped IPv6 as IPv4) into buf
 * (INET6_ADDRSTRLEN bytes); returns buf. */
static char *sa_fmt(const union gw_sa *sa, char *buf)
{
	if (sa->sa.sa_family == AF_INET6) {
		const struct in6_addr *a = &sa->in6.sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return ipv4_fmt(&a->s6_addr[12], buf);
		if (inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN) == NULL)
			buf[0] = '\0';
		return buf;
	}
	return ipv4_fmt((const unsigned char *)&sa->in.sin_addr, buf);
}

/* The TCP peer's numeric address into buf; returns buf. */
static char *peer_fmt(const struct gw_conn *c, char *buf)
{
	return sa_fmt(&c->peer, buf);
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
static ssize_t io_read(int fd, SSL *ssl, struct evbuffer *buf, int *big)
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

/* Write from buf (draining what was written).  Returns bytes written, 0 if
 * the socket is full, -1 on error. */
static int io_write(int fd, SSL *ssl, struct evbuffer *buf)
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
static void io_shutdown(int fd, SSL *ssl)
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
enum { SP_C2U, SP_U2C };                /* client -> upstream, upstream -> client */
#define SPLICE_AFTER (64 * 1024)
#define PIPE_SIZE (256 * 1024)          /* as HIWAT; a bit less CPU than 64 KiB (RESULTS.md) */

struct tsplice {
	int r[2], w[2];            /* per direction: pipe ends, -1 = none */
	size_t held[2];            /* bytes in the pipe */
	unsigned failed : 2;       /* per direction: no pipe to be had, stay on evbuffers */
	unsigned full : 2;         /* per direction: the source is paused until the pipe drains */
};

static int sp_has(const struct gw_conn *c, int d)
{
	return c->sp != NULL && c->sp->r[d] >= 0;
}

static size_t sp_held(const struct gw_conn *c, int d)
{
	return c->sp != NULL ? c->sp->held[d] : 0;
}

static int sp_full(const struct gw_conn *c, int d)
{
	return c->sp != NULL && (c->sp->full & (1u << d));
}

static void sp_drop(struct tsplice *s, int d)
{
	if (s->r[d] >= 0) {
		close(s->r[d]);
		close(s->w[d]);
	}
	s->r[d] = s->w[d] = -1;
	s->held[d] = 0;
	s->full &= ~(1u << d);
}

static void sp_free(struct gw_conn *c)
{
	if (c->sp == NULL)
		return;
	sp_drop(c->sp, SP_C2U);
	sp_drop(c->sp, SP_U2C);
	free(c->sp);
	c->sp = NULL;
}

/* After an evbuffer read of n bytes in direction d of a tunnel: make d's
 * pipe if the read was big and neither side has TLS.  Failure only means d
 * stays on evbuffers. */
static void sp_maybe_make(struct gw_conn *c, int d, ssize_t n)
{
	struct tsplice *s = c->sp;
	int p[2];

	if (n < SPLICE_AFTER || c->ssl != NULL || c->bg || c->up == NULL || c->up->ssl != NULL)
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
static int sp_ready(const struct gw_conn *c, int d)
{
	if (!sp_has(c, d) || c->up == NULL)
		return 0;
	if (d == SP_C2U)
		return evbuffer_get_length(c->in) == 0 && evbuffer_get_length(c->up->out) == 0;
	return evbuffer_get_length(c->up->in) == 0 && evbuffer_get_length(c->out) == 0;
}

/* Socket -> pipe for direction d.  Returns as io_read: bytes, 0 at EOF, -1 on
 * error, -2 when nothing moved (then, with bytes already in the pipe, it is
 * taken as full and the source is paused until the pipe drains: splice
 * cannot tell an empty socket from a full pipe). */
static ssize_t sp_in(struct gw_conn *c, int d)
{
	struct tsplice *s = c->sp;
	int src = d == SP_C2U ? c->fd : c->up->fd;
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
static ssize_t sp_out(struct gw_conn *c, int d)
{
	struct tsplice *s = c->sp;
	int dst = d == SP_C2U ? c->up->fd : c->fd;
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

/* The current IMF-fixdate, formatted once a second per thread; its length. */
static size_t date_now(const char **out)
{
	static __thread time_t last;
	static __thread char cached[64];
	static __thread size_t len;
	time_t now = time(NULL);

	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	*out = cached;
	return len;
}

static int hdr_is(const struct gw_hdr *h, const char *name)
{
	size_t n = strlen(name);

	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Is header h named by any Connection header of head (hop-by-hop)? */
static int conn_listed(const struct gw_http_head *head, const struct gw_hdr *h)
{
	char name[128];

	if (!(head->flags & GW_HF_HAS_CONNECTION) || h->name_len >= sizeof name)
		return 0;
	memcpy(name, h->name, h->name_len);
	name[h->name_len] = '\0';
	for (size_t i = 0; i < head->nhdrs; i++) {
		const struct gw_hdr *c = &head->hdrs[i];
		if (hdr_is(c, "connection") && gw_http1_list_has(c->value, c->value_len, name))
			return 1;
	}
	return 0;
}

static int hop_by_hop(const struct gw_hdr *h)
{
	/* by length first: this runs for every header of every message */
	switch (h->name_len) {
	case 2: return strncasecmp(h->name, "te", 2) == 0;
	case 7: return strncasecmp(h->name, "trailer", 7) == 0 ||
	    strncasecmp(h->name, "upgrade", 7) == 0;
	case 10: return strncasecmp(h->name, "connection", 10) == 0 ||
	    strncasecmp(h->name, "keep-alive", 10) == 0;
	case 16: return strncasecmp(h->name, "proxy-connection", 16) == 0;
	case 17: return strncasecmp(h->name, "transfer-encoding", 17) == 0;
	default: return 0;
	}
}

/* Content-Length or Transfer-Encoding: the fields that frame a body. */
static int framing_hdr(const char *name, size_t len)
{
	return (len == 14 && strncasecmp(name, "content-length", 14) == 0) ||
	    (len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0);
}

static int edit_deleted(const struct hdr_edit *e, const struct gw_hdr *h)
{
	/* framing is the core's: no edit unframes a body (the writers check) */
	if (e == NULL || framing_hdr(h->name, h->name_len))
		return 0;
	for (; e != NULL; e = e->next)
		if (e->del && h->name_len == e->nlen && strncasecmp(h->name, e->name, e->nlen) == 0)
			return 1;
	return 0;
}

/*
 * Head builder: heads are assembled with memcpy in a stack buffer and added
 * to the evbuffer in one piece (printf-family formatting dominated the
 * per-request cost; see tests/bench/RESULTS.md).
 */
struct hb {
	struct evbuffer *dst;
	size_t len;
	char buf[4096];
};

static void hb_flush(struct hb *b)
{
	if (b->len > 0)
		evbuffer_add(b->dst, b->buf, b->len);
	b->len = 0;
}

static void hb_put(struct hb *b, const char *s, size_t n)
{
	if (b->len + n > sizeof b->buf) {
		hb_flush(b);
		if (n > sizeof b->buf) {
			evbuffer_add(b->dst, s, n);
			return;
		}
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

#define HB_LIT(b, lit) hb_put((b), (lit), sizeof(lit) - 1)

static void hb_str(struct hb *b, const char *s)
{
	hb_put(b, s, strlen(s));
}

static void hb_uint(struct hb *b, unsigned long long v, int base)
{
	char tmp[24];
	int i = (int)sizeof tmp;

	do {
		tmp[--i] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v > 0);
	hb_put(b, tmp + i, sizeof tmp - (size_t)i);
}

static void hb_hdr(struct hb *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
	hb_put(b, name, nlen);
	HB_LIT(b, ": ");
	hb_put(b, value, vlen);
	HB_LIT(b, "\r\n");
}

/* Append "<hex>\r\n", a chunk-size line, to dst. */
static void chunk_line(struct evbuffer *dst, size_t n)
{
	char tmp[24];
	int i = (int)sizeof tmp;

	tmp[--i] = '\n';
	tmp[--i] = '\r';
	do {
		tmp[--i] = "0123456789abcdef"[n & 15];
		n >>= 4;
	} while (n > 0);
	evbuffer_add(dst, tmp + i, sizeof tmp - (size_t)i);
}

static int edit_has(const struct hdr_edit *e, const char *name)
{
	for (; e != NULL; e = e->next)
		if (!e->del && strcasecmp(e->name, name) == 0)
			return 1;
	return 0;
}

/* "Via: 1.<minor> <name>" (RFC 9110 7.6.3), unless the family turned it off
 * or no name is configured. */
static void add_via(struct hb *b, const struct gw_req *rq, int minor, const char *via)
{
	if (rq->no_via || via == NULL || via[0] == '\0')
		return;
	HB_LIT(b, "Via: 1.");
	hb_uint(b, (unsigned)minor, 10);
	HB_LIT(b, " ");
	hb_str(b, via);
	HB_LIT(b, "\r\n");
}

static void add_edits(struct hb *b, const struct hdr_edit *e)
{
	/* edits are kept newest first; emit in the order they were added */
	const struct hdr_edit *stack[64];
	int n = 0;

	for (; e != NULL && n < 64; e = e->next) {
		struct gw_hdr x = { .name = e->name, .name_len = (uint32_t)e->nlen };
		/* framing and connection fields are the core's to write */
		if (!e->del && !framing_hdr(e->name, e->nlen) && !hop_by_hop(&x))
			stack[n++] = e;
	}
	while (n-- > 0)
		hb_hdr(b, stack[n]->name, stack[n]->nlen, stack[n]->value, stack[n]->vlen);
}

static int wants_html(const struct gw_http_head *h)
{
	const struct gw_hdr *a = h->hdrs != NULL ? gw_http1_find(h, "accept") : NULL;

	return a != NULL && memmem(a->value, a->value_len, "text/html", 9) != NULL;
}

static int client_keepalive(const struct gw_http_head *h)
{
	if (h->flags & GW_HF_CONN_CLOSE)
		return 0;
	if (h->version_minor >= 1)
		return 1;
	return (h->flags & GW_HF_CONN_KEEPALIVE) != 0;
}

/* ---- forward declarations ---- */

static void conn_close(struct gw_conn *c, enum gw_close_reason why);
static void conn_write(struct gw_conn *c);
static void finish_request(struct gw_conn *c);
static void handle_head(struct gw_conn *c);
static void proxy_start(struct gw_req *rq);
static void connect_next(struct gw_req *rq);
static void process_response(struct gw_conn *c);
static void pump_request_body(struct gw_conn *c);
static void tunnel_pump(struct gw_conn *c);
static void send_local(struct gw_req *rq);
static void up_detach_close(struct gw_conn *c);
static void up_handshake(struct upconn *u);
static void upstream_ready(struct gw_conn *c);
static int family_retry(struct gw_conn *c, int stage);
static void upstream_failed(struct gw_conn *c, int status, const char *reason);
static void dispatch(struct gw_conn *c, struct gw_req *rq);
static void body_setup(struct gw_req *rq);
static void buffer_body(struct gw_conn *c);
static void req_free(struct gw_req *rq);
static void resp_tap(void *arg, const char *p, size_t n);
static int edit_has(const struct hdr_edit *e, const char *name);
static int xfer_pump(struct xfer *x, struct evbuffer *src, struct evbuffer *dst);
static void bg_discard(struct gw_conn *c);

/* ---- the request API for families ---- */

const struct gw_http_head *gw_req_head(const struct gw_req *rq) { return &rq->head; }
const struct sockaddr *gw_req_client(const struct gw_req *rq)
{
	return rq->client != NULL ? &rq->client->sa : (const struct sockaddr *)&rq->c->peer;
}

const struct sockaddr *gw_req_peer(const struct gw_req *rq) { return (const struct sockaddr *)&rq->c->peer; }

int gw_req_set_client(struct gw_req *rq, const struct sockaddr *sa)
{
	size_t n = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : 0;

	if (n == 0)
		return -1;
	if (rq->client == NULL && (rq->client = gw_req_alloc(rq, sizeof *rq->client)) == NULL)
		return -1;
	memset(rq->client, 0, sizeof *rq->client);
	memcpy(rq->client, sa, n);
	rq->client_str[0] = '\0';     /* made again from the new address */
	return 0;
}

const char *gw_req_peer_str(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (rq->client == NULL)
		return gw_req_client_str(rq);
	if (m->peer_str == NULL && (m->peer_str = gw_req_alloc(m, INET6_ADDRSTRLEN)) == NULL)
		return "";
	if (m->peer_str[0] == '\0')
		peer_fmt(rq->c, m->peer_str);
	return m->peer_str;
}

/* Both made on first use, into the request (they are not kept per
 * connection: idle connections are many, and few requests ask). */
const char *gw_req_client_str(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (m->client_str[0] == '\0') {
		if (rq->client != NULL)
			sa_fmt(rq->client, m->client_str);
		else
			peer_fmt(rq->c, m->client_str);
	}
	return m->client_str;
}

const struct sockaddr *gw_req_local(const struct gw_req *rq)
{
	struct gw_req *m = (struct gw_req *)rq;

	if (m->local == NULL) {
		socklen_t len = sizeof *m->local;
		m->local = gw_req_alloc(m, sizeof *m->local);
		if (getsockname(rq->c->fd, &m->local->sa, &len) < 0)
			memset(m->local, 0, sizeof *m->local);
	}
	return &m->local->sa;
}
const char *gw_req_id(const struct gw_req *rq) { return rq->id; }
const struct conf *gw_req_conf(const struct gw_req *rq) { return rq->c->snap->conf; }
int gw_req_is_tls(const struct gw_req *rq) { return rq->c->ssl != NULL || rq->c->bg_tls; }
const char *gw_req_sni(const struct gw_req *rq)
{
	return rq->c->ssl ? SSL_get_servername(rq->c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

void gw_req_upstream_tls(struct gw_req *rq, int upstream)
{
	rq->up_tls = upstream + 1;
}

void gw_req_upstream_keepalive(struct gw_req *rq, unsigned n)
{
	rq->keepalive = n;
}

void *gw_req_alloc(struct gw_req *rq, size_t n)
{
	void *p = arena_alloc(&rq->arena, n);

	if (p == NULL)
		abort();  /* out of memory inside a request: nothing sane to do */
	return p;
}

char *gw_req_strndup(struct gw_req *rq, const char *s, size_t n)
{
	char *p = arena_raw(&rq->arena, n + 1);

	if (p == NULL)
		abort();  /* as gw_req_alloc */
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void gw_req_proxy(struct gw_req *rq, const char *host, size_t host_len, uint16_t port,
    const char *path, size_t path_len)
{
	rq->dec = DEC_PROXY;
	rq->up_host = gw_req_strndup(rq, host, host_len);
	rq->up_port = port;
	rq->keepalive = POOL_KEEPALIVE;
	if (path == NULL) {
		path = rq->head.path;
		path_len = rq->head.path_len;
		if (rq->head.flags & GW_HF_PATH_EMPTY) {
			/* "http://host" or "http://host?q": origin-form needs its "/"
			 * (RFC 9112 3.2.1), OPTIONS without a path means "*" */
			char *p = gw_req_alloc(rq, path_len + 2);
			if (rq->head.method == GW_M_OPTIONS && (path_len == 0 || path[0] != '?')) {
				p[0] = '*';
				path_len = 1;
			} else {
				p[0] = '/';
				if (path[0] == '?')
					memcpy(p + 1, path, path_len);
				path_len = path[0] == '?' ? path_len + 1 : 1;
			}
			rq->up_path = p;
			rq->up_path_len = path_len;
			return;
		}
	}
	rq->up_path = gw_req_strndup(rq, path, path_len);
	rq->up_path_len = path_len;
}

const char *gw_req_upstream_host(const struct gw_req *rq, uint16_t *port)
{
	*port = rq->up_port;
	return rq->up_host;
}

void gw_req_tunnel(struct gw_req *rq, const char *host, size_t host_len, uint16_t port)
{
	rq->dec = DEC_TUNNEL;
	rq->up_host = gw_req_strndup(rq, host, host_len);
	rq->up_port = port;
}

void gw_req_tunnel_via(struct gw_req *rq, const char *phost, size_t phost_len, uint16_t pport,
    const char *extra, size_t extra_len)
{
	int v6 = strchr(rq->up_host, ':') != NULL;
	size_t n = strlen(rq->up_host) + 10;

	rq->tun_target = gw_req_alloc(rq, n);
	snprintf(rq->tun_target, n, "%s%s%s:%u", v6 ? "[" : "", rq->up_host, v6 ? "]" : "", rq->up_port);
	rq->tun_extra = extra != NULL ? gw_req_strndup(rq, extra, extra_len) : NULL;
	rq->tun_extra_len = extra != NULL ? extra_len : 0;
	rq->up_host = gw_req_strndup(rq, phost, phost_len);
	rq->up_port = pport;
}

void gw_req_respond(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, const char *detail)
{
	char page[4096];

	rq->dec = DEC_RESPOND;
	rq->status = status;
	if (body == NULL) {
		int html = wants_html(&rq->head);
		len = gw_status_page(page, sizeof page, status, html, detail, rq->id);
		body = page;
		content_type = html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
		if (detail != NULL && rq->reason == NULL)
			rq->reason = gw_req_strndup(rq, detail, strlen(detail));
	}
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->file_len = len;
	rq->body = gw_req_strndup(rq, body, len);
}

void gw_req_respond_ref(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, void (*cleanup)(const void *data, size_t len, void *arg), void *arg)
{
	rq->dec = DEC_RESPOND;
	rq->status = status;
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->body = NULL;
	rq->body_ref = body;
	rq->file_len = len;
	rq->body_cleanup = cleanup;
	rq->body_cleanup_arg = arg;
}

void gw_req_respond_file(struct gw_req *rq, int status, const char *content_type,
    int fd, uint64_t offset, uint64_t len)
{
	rq->dec = DEC_FILE;
	rq->status = status;
	rq->content_type = content_type ? gw_req_strndup(rq, content_type, strlen(content_type)) : NULL;
	rq->file_fd = fd;
	rq->file_off = offset;
	rq->file_len = len;
}

static void edit_add(struct gw_req *rq, struct hdr_edit **list, const char *name,
    const char *value, size_t vlen, int del)
{
	/* the edit, its name and its value in one arena piece */
	size_t nlen = strlen(name);
	struct hdr_edit *e = arena_raw(&rq->arena, sizeof *e + nlen + 1 + (value ? vlen + 1 : 0));
	char *p;

	if (e == NULL)
		abort();  /* as gw_req_alloc */
	p = (char *)(e + 1);
	memcpy(p, name, nlen + 1);
	e->name = p;
	e->nlen = nlen;
	e->value = NULL;
	if (value != NULL) {
		memcpy(p + nlen + 1, value, vlen);
		p[nlen + 1 + vlen] = '\0';
		e->value = p + nlen + 1;
	}
	e->vlen = vlen;
	e->del = del;
	e->next = *list;
	*list = e;
}

void gw_req_hdr_del(struct gw_req *rq, const char *name) { edit_add(rq, &rq->req_edits, name, NULL, 0, 1); }
void gw_req_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t vlen) { edit_add(rq, &rq->req_edits, name, value, vlen, 0); }
void gw_req_resp_hdr_del(struct gw_req *rq, const char *name) { edit_add(rq, &rq->resp_edits, name, NULL, 0, 1); }
void gw_req_resp_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t vlen) { edit_add(rq, &rq->resp_edits, name, value, vlen, 0); }
void gw_req_no_via(struct gw_req *rq) { rq->no_via = 1; }
void gw_req_log_no_query(struct gw_req *rq) { rq->log_no_query = rq->log_no_query ? rq->log_no_query : 1; }
void gw_req_log_no_path(struct gw_req *rq) { rq->log_no_query = 2; }
void gw_req_set_max_body(struct gw_req *rq, uint64_t max) { rq->max_body = max; }
void gw_req_set_verdict(struct gw_req *rq, const char *verdict, const char *rule) { rq->verdict = verdict; rq->rule = rule; }
void gw_req_set_user(struct gw_req *rq, const char *user) { rq->user = user; }
const char *gw_req_verdict(const struct gw_req *rq) { return rq->verdict; }
const char *gw_req_user(const struct gw_req *rq) { return rq->user; }
void gw_req_set_reason(struct gw_req *rq, const char *reason) { rq->reason = reason; }
void gw_req_set_metric_site(struct gw_req *rq, const char *site)
{
	rq->m_site = gw_hist_slot(GW_HT_SITE, site) + 1;
}
void gw_req_set_metric_upstream(struct gw_req *rq, const char *upstream)
{
	rq->m_up = gw_hist_slot(GW_HT_UPSTREAM, upstream) + 1;
}

/* The upstream label: the family's (reverse: the upstream name), else the
 * family name (forward has no upstream names: one label). */
static int metric_up(struct gw_req *rq)
{
	if (rq->m_up == 0)
		rq->m_up = gw_hist_slot(GW_HT_UPSTREAM, rq->c->proto->name) + 1;
	return rq->m_up - 1;
}

/* ---- request lifecycle ---- */

static struct gw_req *req_new(struct gw_conn *c)
{
	struct arena_blk *a = arena_spare(c->w->pool);
	struct gw_req *rq = arena_alloc(&a, sizeof *rq);

	if (rq == NULL) {
		arena_free(c->w->pool, a);
		return NULL;
	}
	rq->arena = a;
	rq->pool = c->w->pool;
	rq->c = c;
	rq->start = gw_wall_now();
	rq->start_mono = gw_mono_now();
	rq->file_fd = -1;
	rq->max_body = c->snap->conf->global.limits.max_body_bytes;
	{
		/* "<6 hex process prefix><2 hex worker><8 hex sequence>" */
		static const char hex[] = "0123456789abcdef";
		uint64_t seq = ++c->w->req_seq;
		memcpy(rq->id, gw_id_prefix, 6);
		rq->id[6] = hex[(c->w->id >> 4) & 15];
		rq->id[7] = hex[c->w->id & 15];
		for (int i = 15; i >= 8; i--, seq >>= 4)
			rq->id[i] = hex[seq & 15];
		rq->id[16] = '\0';
	}
	return rq;
}

static void req_log_free(struct gw_conn *c, struct gw_req *rq)
{
	struct gw_access_rec r;
	const struct gw_http_head *h = &rq->head;
	const struct gw_hdr *ua = NULL, *ref = NULL;
	int fam = c->proto->family;
	int st = rq->status;

	if (c->proto->on_response_end != NULL && rq->dec == DEC_PROXY && rq->resp_head_done &&
	    rq->status != 101 && !rq->resp_ended)
		c->proto->on_response_end(rq, 0, c->side);
	if (c->proto->on_done != NULL && !rq->parse_error)
		c->proto->on_done(rq, c->side);
	/* counted whether or not anyone reads the log (/metrics may be all there is) */
	if (st >= 100 && st < 600)
		gw_stat_add(&c->w->stats->fam[fam][GW_FC_STATUS_1XX + st / 100 - 1], 1);
	gw_stat_add(&c->w->stats->fam[fam][GW_FC_BYTES_IN], rq->bytes_in);
	gw_stat_add(&c->w->stats->fam[fam][GW_FC_BYTES_OUT], rq->bytes_out);
	{
		double took = gw_mono_now() - rq->start_mono;
		gw_hist_observe(c->w->id, GW_H_REQ_FAMILY, fam, took);
		if (rq->m_site != 0)   /* the family gave a site label */
			gw_hist_observe(c->w->id, GW_H_REQ_SITE, rq->m_site - 1, took);
	}
	if (!gw_access_enabled() && !gw_tail_enabled())
		goto logged;   /* nobody reads the line: do not format it */
	{
		memset(&r, 0, sizeof r);
		if (!rq->parse_error) {
			ua = gw_http1_find(h, "user-agent");
			ref = gw_http1_find(h, "referer");
		}
		r.start = rq->start;
		r.duration = gw_mono_now() - rq->start_mono;
		r.client = gw_req_client_str(rq);
		r.peer = rq->client != NULL ? gw_req_peer_str(rq) : NULL;
		r.family = c->proto->name;
		r.method = h->method_str;
		r.method_len = h->method_len;
		r.target = h->target;
		r.target_len = h->target_len;
		if (rq->log_no_query && h->target != NULL) {
			const char *q = memchr(h->target, '?', h->target_len);
			if (q != NULL)
				r.target_len = (size_t)(q - h->target);
			/* h->path points into the target unless it is the static "/" */
			if (rq->log_no_query == 2 && h->path != NULL &&
			    (uintptr_t)h->path >= (uintptr_t)h->target &&
			    (uintptr_t)h->path < (uintptr_t)(h->target + h->target_len))
				r.target_len = (size_t)(h->path - h->target);
		}
		r.version_minor = h->version_minor;
		r.status = st;
		r.bytes_in = rq->bytes_in;
		r.bytes_out = rq->bytes_out;
		r.upstream = rq->upstream_str;
		r.user = rq->user;
		r.verdict = rq->verdict;
		r.rule = rq->rule;
		r.reason = rq->reason;
		r.request_id = rq->id;
		r.host = h->host_hdr ? h->host_hdr : h->host;
		r.host_len = h->host_hdr ? h->host_hdr_len : h->host_len;
		if (ua) { r.ua = ua->value; r.ua_len = ua->value_len; }
		if (ref) { r.referer = ref->value; r.referer_len = ref->value_len; }
		gw_access_log(&c->w->alog, &r);
	}
logged:
	if (rq->dnsq != NULL) {
		gw_dns_cancel(rq->dnsq);
		rq->dnsq = NULL;
	}
	if (rq->deferred) {
		rq->orphan = 1;    /* freed when its gw_req_wake() arrives */
		return;
	}
	req_free(rq);
}

static void req_free(struct gw_req *rq)
{
	if (rq->body_cleanup != NULL)
		rq->body_cleanup(rq->body_ref, rq->file_len, rq->body_cleanup_arg);
	if (rq->file_fd >= 0)
		close(rq->file_fd);
	if (rq->bodybuf != NULL)
		evbuffer_free(rq->bodybuf);
	arena_free(rq->pool, rq->arena);
}

/* ---- client connection ---- */

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->in != NULL) {
		evbuffer_free(c->in);
		evbuffer_free(c->out);
	}
	if (c->ev_wr != NULL)
		event_free(c->ev_wr);
	gw_snapshot_unref(c->snap);
	c->magic = 0;
	free(c);
}

static void conn_close(struct gw_conn *c, enum gw_close_reason why)
{
	struct gw_worker *w = c->w;

	if (c->state == CS_CLOSED)
		return;
	if (c->up != NULL)
		up_detach_close(c);
	if (c->has_private)
		pool_drop_owned(w->pool, c);
	sp_free(c);
	if (c->rq != NULL) {
		struct gw_req *rq = c->rq;
		if (rq->status == 0 || !rq->resp_head_done) {
			if (rq->status == 0)
				rq->status = 499;  /* closed before a response was sent */
		}
		if (rq->reason == NULL)
			rq->reason = gw_close_reason_names[why];
		c->rq = NULL;
		req_log_free(c, rq);
	}
	event_del(&c->ev_rd);
	if (c->ev_wr != NULL)
		event_del(c->ev_wr);
	event_del(&c->ev_to);
	if (c->ssl != NULL) {
		if (c->state != CS_HANDSHAKE && !c->wr_shut) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);   /* best effort close_notify */
		}
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	c->state = CS_CLOSED;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (!c->bg) {   /* (a background request is nobody's connection) */
		gw_stat_add(&w->stats->close[why], 1);
		gw_stat_sub(&w->stats->conns_active[c->proto->family], 1);
		gw_climit_release(&c->peer.sa);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	if (w->accept_paused && w->nconns < w->max_conns) {
		extern void gw_worker_resume_accept(struct gw_worker *w);
		gw_worker_resume_accept(w);
	}
	/* the timer event is free now: reuse it to free us from the loop */
	event_assign(&c->ev_to, w->base, -1, 0, conn_free_cb, c);
	event_active(&c->ev_to, EV_TIMEOUT, 0);
}

/* Write pending output; arms EV_WRITE when the kernel is full.  When all is
 * written, moves the state machine on. */
static void conn_write(struct gw_conn *c)
{
	if (c->bg)
		bg_discard(c);
	while (evbuffer_get_length(c->out) > 0) {
		int n = io_write(c->fd, c->ssl, c->out);
		if (n < 0) {
			conn_close(c, GW_CLOSE_CLIENT_ERROR);
			return;
		}
		if (c->rq != NULL)
			c->rq->bytes_out += (uint64_t)n;
		if (n == 0)
			break;
	}
	size_t left = evbuffer_get_length(c->out);
	if (left == 0 && sp_held(c, SP_U2C) > 0) {
		/* one splice: a short one means the socket is full */
		if (sp_out(c, SP_U2C) < 0) {
			conn_close(c, GW_CLOSE_CLIENT_ERROR);
			return;
		}
		left = sp_held(c, SP_U2C);
	}
	if (left > 0) {
		if (wr_enable(c, 1) < 0) {
			conn_close(c, GW_CLOSE_INTERNAL);
			return;
		}
		if (c->state == CS_BUSY && c->to_kind != TO_BODY)
			client_timer(c, TO_SEND);
	} else {
		wr_enable(c, 0);
	}
	/* backpressure release */
	if (left < HIWAT && c->up_paused && c->up != NULL && !sp_full(c, SP_U2C)) {
		c->up_paused = 0;
		up_rd_enable(c->up, 1);
		if (evbuffer_get_length(c->up->in) > 0) {
			if (c->state == CS_TUNNEL)
				tunnel_pump(c);
			else
				process_response(c);
			return;
		}
	}
	if (left == 0 && c->state == CS_BUSY && c->rq != NULL) {
		struct gw_req *rq = c->rq;
		int complete = (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE) ||
		    (rq->dec == DEC_PROXY && rq->resp_head_done && rq->respx.done);
		if (complete)
			finish_request(c);
	}
	if (left == 0 && c->state == CS_TUNNEL)
		tunnel_pump(c);
}

static void start_linger(struct gw_conn *c)
{
	io_shutdown(c->fd, c->ssl);
	c->wr_shut = 1;
	c->state = CS_LINGER;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	rd_enable(c, 1);
	client_timer(c, TO_LINGER);
	if (c->rd_eof)
		conn_close(c, GW_CLOSE_LOCAL_REPLY);
}

static void finish_request(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	int close_after = rq->close_after;
	int linger = rq->linger;
	enum gw_close_reason why = GW_CLOSE_NO_KEEPALIVE;

	if (c->up != NULL) {
		struct upconn *u = c->up;
		int reuse = rq->dec == DEC_PROXY && rq->respx.done && rq->reqx.done && !u->eof &&
		    !rq->resp_conn_close && !rq->resp_http10 && rq->respx.kind != GW_BODY_CLOSE &&
		    evbuffer_get_length(u->in) == 0 && evbuffer_get_length(u->out) == 0 &&
		    !atomic_load(&c->w->stop);
		c->up = NULL;
		u->c = NULL;
		if (reuse)
			pool_put(c->w, u);
		else
			up_free(u);
	}
	if (rq->parse_error || rq->dec == DEC_RESPOND)
		why = GW_CLOSE_LOCAL_REPLY;
	rq->finished = 1;
	c->rq = NULL;
	req_log_free(c, rq);
	if (atomic_load(&c->w->stop))
		close_after = 1, why = GW_CLOSE_SHUTDOWN;
	else if (c->unlisted)
		close_after = 1, why = GW_CLOSE_LISTENER_REMOVED;
	if (close_after) {
		if (linger)
			start_linger(c);
		else
			conn_close(c, why);
		return;
	}
	c->state = CS_HEAD;
	c->head_started = 0;
	c->parsed_len = 0;
	rd_enable(c, 1);
	client_timer(c, TO_IDLE);
	if (evbuffer_get_length(c->in) > 0 || c->rd_eof)
		event_active(&c->ev_rd, EV_READ, 0);   /* next pipelined request, from the loop */
	else
		conn_idle(c);
}

/* Send a locally generated response for rq (DEC_RESPOND or DEC_FILE). */
static void send_local(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	struct evbuffer *o = c->out;
	const char *date;
	int head_only = rq->head.method == GW_M_HEAD;
	struct hb hb;
	int has_body = rq->head.body == GW_BODY_CHUNKED ||
	    (rq->head.body == GW_BODY_LENGTH && rq->head.content_length > 0);

	if (rq->parse_error || !client_keepalive(&rq->head))
		rq->close_after = 1;
	if (has_body && !rq->reqx.done) {
		/* the body was never read: we cannot find the next request */
		rq->close_after = 1;
		rq->linger = 1;
	}
	hb.dst = o;
	hb.len = 0;
	HB_LIT(&hb, "HTTP/1.1 ");
	hb_uint(&hb, (unsigned)rq->status, 10);
	HB_LIT(&hb, " ");
	hb_str(&hb, gw_status_reason(rq->status));
	HB_LIT(&hb, "\r\n");
	if (!edit_has(rq->resp_edits, "date")) {
		size_t dl = date_now(&date);
		hb_hdr(&hb, "Date", 4, date, dl);
	}
	if (rq->status != 304 && rq->status != 204 && !(rq->status >= 100 && rq->status < 200)) {
		if (rq->content_type != NULL)
			hb_hdr(&hb, "Content-Type", 12, rq->content_type, strlen(rq->content_type));
		HB_LIT(&hb, "Content-Length: ");
		hb_uint(&hb, rq->file_len, 10);
		HB_LIT(&hb, "\r\n");
	}
	if (rq->status >= 400 && !rq->close_after && rq->body_ref == NULL &&
	    !edit_has(rq->resp_edits, "cache-control"))
		HB_LIT(&hb, "Cache-Control: no-store\r\n");   /* our own error pages */
	if (rq->body_ref != NULL)   /* a stored upstream response: it passed through us */
		add_via(&hb, rq, 1, c->snap->conf->global.via_name);
	add_edits(&hb, rq->resp_edits);
	if (rq->close_after)
		HB_LIT(&hb, "Connection: close\r\n");
	else if (rq->head.version_minor == 0)
		HB_LIT(&hb, "Connection: keep-alive\r\n");
	HB_LIT(&hb, "\r\n");
	hb_flush(&hb);
	if (!head_only && rq->status != 304 && rq->status != 204) {
		if (rq->dec == DEC_FILE) {
			if (rq->file_len > 0) {
				/* sendfile for plain sockets; TLS must see the bytes */
				struct evbuffer_file_segment *seg = evbuffer_file_segment_new(rq->file_fd,
				    (ev_off_t)rq->file_off, (ev_off_t)rq->file_len,
				    EVBUF_FS_CLOSE_ON_FREE | (c->ssl != NULL ? EVBUF_FS_DISABLE_SENDFILE : 0));
				if (seg != NULL && evbuffer_add_file_segment(o, seg, 0, -1) == 0) {
					rq->file_fd = -1;  /* owned by the segment now */
				} else {
					rq->close_after = 1;
				}
				if (seg != NULL)
					evbuffer_file_segment_free(seg);
			}
		} else if (rq->body_ref != NULL) {
			if (evbuffer_add_reference(o, rq->body_ref, rq->file_len, rq->body_cleanup,
			    rq->body_cleanup_arg) == 0)
				rq->body_cleanup = NULL;   /* the buffer calls it once sent */
		} else {
			evbuffer_add(o, rq->body, rq->file_len);
		}
	}
	rq->resp_head_done = 1;
	rd_enable(c, 0);
	conn_write(c);
}

/* Answer with a generated error page and close the connection afterwards. */
static void respond_error(struct gw_req *rq, int status, const char *reason)
{
	rq->resp_edits = NULL;
	gw_req_respond(rq, status, NULL, NULL, 0, NULL);
	if (reason != NULL)
		rq->reason = reason;
	if (status >= 400 && status != 404 && status != 403 && status != 407)
		rq->close_after = 1;
	send_local(rq);
}

/*
 * Tunnel an Upgrade only for WebSocket.  Other protocols (h2c in particular)
 * would carry further requests past routing, policy and DLP inside the
 * tunnel, so their Upgrade header is dropped and the exchange stays HTTP.
 */
static int upgrade_allowed(const struct gw_http_head *h)
{
	const struct gw_hdr *u;

	if (!(h->flags & GW_HF_UPGRADE) || !(h->flags & GW_HF_CONN_UPGRADE) || h->version_minor != 1)
		return 0;
	u = gw_http1_find(h, "upgrade");
	return u != NULL && u->value_len == 9 && strncasecmp(u->value, "websocket", 9) == 0;
}

/* Request body framing state from the head. */
static void body_setup(struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;

	rq->reqx.kind = h->body;
	rq->reqx.remaining = h->content_length;
	gw_chunked_init(&rq->reqx.ck);
	rq->reqx.out_chunked = h->body == GW_BODY_CHUNKED;
	rq->reqx.done = h->body == GW_BODY_NONE ||
	    (h->body == GW_BODY_LENGTH && h->content_length == 0);
}

/*
 * Append src to dst by copy.  xfer_pump() moves whole chains, and a client
 * read leaves its chain (1 KiB, or 256 KiB after a full one) however few
 * bytes it got: a held body trickled in small reads would take hundreds of
 * times its size (40 bodies of 6 KB sent a byte at a time: +36 MB).  Copies
 * fill chains that grow to 4 KiB, so a held body costs about its size.
 * Returns 0, or -1 when out of memory (src is then emptied all the same).
 */
static int append_copy(struct evbuffer *dst, struct evbuffer *src)
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

/* gw_req_read_body: collect the body into rq->bodybuf, then ask the family. */
static void buffer_body(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	size_t before = evbuffer_get_length(c->in), len;
	struct evbuffer *tmp = buf_get(c->w->pool);
	const char *data;
	int bad;

	if (tmp == NULL) {
		conn_close(c, GW_CLOSE_INTERNAL);
		return;
	}
	bad = xfer_pump(&rq->reqx, c->in, tmp) < 0;
	if (append_copy(rq->bodybuf, tmp) < 0) {
		buf_put(c->w->pool, tmp);
		conn_close(c, GW_CLOSE_INTERNAL);
		return;
	}
	buf_put(c->w->pool, tmp);
	if (bad) {
		rq->reading_body = 0;
		rq->close_after = 1;
		respond_error(rq, 400, "bad chunked request body");
		return;
	}
	rq->bytes_in += before - evbuffer_get_length(c->in);
	len = evbuffer_get_length(rq->bodybuf);
	if (!rq->reqx.done && len < rq->body_max) {
		if (c->rd_eof) {
			rq->reason = "client closed during request body";
			conn_close(c, GW_CLOSE_CLIENT_EOF);
		} else {
			client_timer(c, TO_BODY);
		}
		return;
	}
	rq->reading_body = 0;
	rq->body_buffered = 1;
	rq->body_complete = rq->reqx.done && (rq->body_max == 0 || len <= rq->body_max);
	rd_enable(c, 0);
	event_del(&c->ev_to);
	data = (const char *)evbuffer_pullup(rq->bodybuf, -1);
	rq->dec = DEC_NONE;
	c->proto->on_body(rq, data ? data : "", len < rq->body_max || rq->body_max == 0 ? len :
	    (size_t)rq->body_max, rq->body_complete, c->side);
	if (c->state != CS_CLOSED && c->rq == rq)
		dispatch(c, rq);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_req *rq = arg;
	struct gw_conn *c = rq->c;

	(void)fd;
	(void)what;
	rq->deferred = 0;
	rq->wake_w->ndeferred--;
	if (rq->orphan) {
		/* the client went away: let the family clean up, then free */
		rq->wake_fn(rq, rq->wake_arg);
		req_free(rq);
		return;
	}
	rq->dec = DEC_NONE;
	rq->wake_fn(rq, rq->wake_arg);
	if (c->state != CS_CLOSED && c->rq == rq)
		dispatch(c, rq);
}

void gw_req_defer(struct gw_req *rq)
{
	rq->dec = DEC_DEFER;
	rq->deferred = 1;
	rq->wake_w = rq->c->w;
	rq->wake_w->ndeferred++;
	if (rq->ev_wake == NULL)
		rq->ev_wake = gw_req_alloc(rq, sizeof *rq->ev_wake);
	event_assign(rq->ev_wake, rq->c->w->base, -1, 0, wake_cb, rq);
}

void gw_req_wake(struct gw_req *rq, void (*fn)(struct gw_req *, void *), void *arg)
{
	rq->wake_fn = fn;
	rq->wake_arg = arg;
	event_active(rq->ev_wake, EV_TIMEOUT, 0);   /* thread-safe (evthread_use_pthreads) */
}

int gw_req_alive(const struct gw_req *rq) { return !rq->orphan; }

void gw_req_read_body(struct gw_req *rq, uint64_t max)
{
	rq->dec = DEC_READBODY;
	rq->body_max = max;
}

int gw_req_worker(const struct gw_req *rq) { return rq->c->w->id; }
void gw_req_set_data(struct gw_req *rq, void *data) { rq->family_data = data; }
void *gw_req_data(const struct gw_req *rq) { return rq->family_data; }
int gw_req_body_sent(const struct gw_req *rq) { return rq->reqx.moved > 0 || rq->body_buffered; }
int gw_req_status(const struct gw_req *rq) { return rq->status; }

static void start_request(struct gw_conn *c, struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;
	int fam = c->proto->family;

	gw_stat_add(&c->w->stats->fam[fam][GW_FC_REQUESTS], 1);
	c->state = CS_BUSY;
	rd_enable(c, 0);
	event_del(&c->ev_to);

	if (h->flags & GW_HF_EXPECT_OTHER) {
		respond_error(rq, 417, "unsupported expectation");
		return;
	}
	if ((h->method == GW_M_OPTIONS || h->method == GW_M_TRACE) &&
	    (h->flags & GW_HF_MAX_FORWARDS) && h->max_forwards == 0) {
		/* RFC 9110 7.6.2: we are the final recipient */
		if (h->method == GW_M_OPTIONS) {
			gw_req_resp_hdr_add(rq, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT", 53);
			gw_req_respond(rq, 200, "text/plain", "", 0, NULL);
		} else {
			/* echo the request head, minus credentials and cookies */
			struct evbuffer *e = evbuffer_new();
			evbuffer_add_printf(e, "%.*s %.*s HTTP/1.%d\r\n", (int)h->method_len,
			    h->method_str, (int)h->target_len, h->target, h->version_minor);
			for (size_t i = 0; i < h->nhdrs; i++) {
				const struct gw_hdr *x = &h->hdrs[i];
				if (hdr_is(x, "authorization") || hdr_is(x, "proxy-authorization") ||
				    hdr_is(x, "cookie"))
					continue;
				evbuffer_add_printf(e, "%.*s: %.*s\r\n", (int)x->name_len, x->name,
				    (int)x->value_len, x->value);
			}
			size_t n = evbuffer_get_length(e);
			gw_req_respond(rq, 200, "message/http", (const char *)evbuffer_pullup(e, -1), n, NULL);
			evbuffer_free(e);
		}
		gw_req_set_verdict(rq, "local", "max-forwards");
		send_local(rq);
		return;
	}

	c->proto->on_request(rq, c->side);
	if (c->state == CS_CLOSED)
		return;
	dispatch(c, rq);
}

/* Carry out the family's decision for rq. */
static void dispatch(struct gw_conn *c, struct gw_req *rq)
{
	const struct gw_http_head *h = &rq->head;

	switch (rq->dec) {
	case DEC_NONE:
		gw_error("%s: family decided nothing for request %s", c->proto->name, rq->id);
		respond_error(rq, 500, "no decision");
		return;
	case DEC_DEFER:
		return;  /* gw_req_wake() continues */
	case DEC_RESPOND:
	case DEC_FILE:
		send_local(rq);
		return;
	case DEC_READBODY:
		if (h->body == GW_BODY_NONE || (h->body == GW_BODY_LENGTH && h->content_length == 0)) {
			rq->dec = DEC_NONE;
			rq->body_complete = 1;
			rq->reqx.done = 1;
			c->proto->on_body(rq, "", 0, 1, c->side);
			if (c->state != CS_CLOSED)
				dispatch(c, rq);
			return;
		}
		if (rq->bodybuf == NULL && (rq->bodybuf = evbuffer_new()) == NULL) {
			respond_error(rq, 500, "out of memory");
			return;
		}
		body_setup(rq);
		rq->reqx.out_chunked = 0;
		rq->reading_body = 1;
		rd_enable(c, 1);
		client_timer(c, TO_BODY);
		if ((h->flags & GW_HF_EXPECT_CONTINUE) && h->version_minor == 1 && !rq->sent_continue) {
			evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			rq->sent_continue = 1;
			conn_write(c);
			if (c->state == CS_CLOSED)
				return;
		}
		buffer_body(c);
		return;
	case DEC_PROXY:
		if (!rq->body_buffered && h->body == GW_BODY_LENGTH && rq->max_body > 0 &&
		    h->content_length > rq->max_body) {
			respond_error(rq, 413, "body over limit");
			return;
		}
		if (!rq->body_buffered) {
			body_setup(rq);
		} else if (!rq->body_complete) {
			/* the rest streams after the buffered part, framed as it came */
			rq->reqx.out_chunked = h->body == GW_BODY_CHUNKED;
		}
		rq->upgrade = upgrade_allowed(h);
		proxy_start(rq);
		return;
	case DEC_TUNNEL:
		rq->reqx.done = 1;
		proxy_start(rq);
		return;
	}
}

/*
 * A reload happened since this connection's last request: judge its next one
 * by the current generation (policy, routes, limits), as a new connection
 * would be.  Called between requests only, so nothing of the old generation
 * is in use.  A TLS session keeps its own reference to the SSL_CTX it was
 * made with, and renegotiation is off, so no callback reaches the old
 * generation's TLS data.  A family missing from the new generation keeps
 * the old one (its listeners are gone; this connection ends on its own).
 */
static void conn_adopt_snapshot(struct gw_conn *c)
{
	struct gw_snapshot *s = c->w->snap;

	if (c->unlisted)
		return;   /* closing after this request, on the rules it began with */
	for (int i = 0; i < s->nsides; i++) {
		if (s->sides[i]->proto == c->proto) {
			gw_snapshot_ref(s);
			gw_snapshot_unref(c->snap);
			c->snap = s;
			c->side = s->side_data[i];
			return;
		}
	}
}

/* p moved from [from, from + len) to to: where it points now (pointers
 * outside the range, like a static "/", stay). */
static const char *moved(const char *p, const char *from, size_t len, const char *to)
{
	uintptr_t a = (uintptr_t)p, f = (uintptr_t)from;

	return p != NULL && a >= f && a <= f + len ? to + (a - f) : p;
}

/* Point a head parsed from [from, from + len) into its copy at to (cheaper
 * than parsing the copy again). */
static void head_rebase(struct gw_http_head *h, const char *from, size_t len, const char *to)
{
	h->method_str = moved(h->method_str, from, len, to);
	h->target = moved(h->target, from, len, to);
	h->scheme = moved(h->scheme, from, len, to);
	h->host = moved(h->host, from, len, to);
	h->path = moved(h->path, from, len, to);
	h->reason = moved(h->reason, from, len, to);
	h->host_hdr = moved(h->host_hdr, from, len, to);
	for (size_t i = 0; i < h->nhdrs; i++) {
		h->hdrs[i].name = moved(h->hdrs[i].name, from, len, to);
		h->hdrs[i].value = moved(h->hdrs[i].value, from, len, to);
	}
}

/* Parse the next request head out of c->in. */
static void handle_head(struct gw_conn *c)
{
	const struct conf_limits *L;
	struct gw_http_limits lim;
	size_t len;
	const char *p;
	struct gw_http_head tmp;
	struct gw_hdr *scratch = (struct gw_hdr *)c->w->scratch;
	ssize_t r;
	struct gw_req *rq;
	int new_head = 0;

	if (!c->head_started && c->snap != c->w->snap)
		conn_adopt_snapshot(c);
	L = &c->snap->conf->global.limits;
	lim = (struct gw_http_limits){ (size_t)L->max_header_bytes, (size_t)L->max_headers,
		(size_t)L->max_uri_bytes };
	/* RFC 9112 2.2: ignore empty lines before a request-line */
	for (;;) {
		len = evbuffer_get_length(c->in);
		if (len < 2)
			break;
		p = (const char *)evbuffer_pullup(c->in, 2);
		if (p[0] != '\r' || p[1] != '\n')
			break;
		evbuffer_drain(c->in, 2);
	}
	len = evbuffer_get_length(c->in);
	if (len == 0) {
		if (c->rd_eof) {
			conn_close(c, GW_CLOSE_CLIENT_EOF);
			return;
		}
		if (c->head_started)
			return;
		/* only empty lines so far: they do not restart the wait (a CRLF
		 * every few seconds would otherwise hold the connection forever) */
		if (c->to_kind != TO_IDLE && c->to_kind != TO_FIRST)
			client_timer(c, TO_IDLE);
		return;
	}
	/* client_header runs from the first byte of a head; armed only when
	 * the head is not complete at once (start_request stops the timer) */
	if (!c->head_started) {
		c->head_started = 1;
		new_head = 1;
	}
	if (len > lim.max_header_bytes + 8)
		len = lim.max_header_bytes + 8;
	p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)len);
	/* the parser rescans from the start: against a byte-at-a-time client,
	 * try again only once a line ended or 1 KiB more arrived, or the limit
	 * is reached (len is capped there: waiting for 1 KiB more would wait
	 * for the header timeout, 408, instead of answering 431 now) */
	if (c->parsed_len > 0 && len > c->parsed_len && len - c->parsed_len < 1024 && !c->rd_eof &&
	    len < lim.max_header_bytes &&
	    memchr(p + c->parsed_len, '\n', len - c->parsed_len) == NULL) {
		rd_enable(c, 1);
		return;   /* (parsed_len > 0: not a new head, the timer runs) */
	}
	c->parsed_len = len;
	memset(&tmp, 0, sizeof tmp);
	tmp.hdrs = scratch;
	tmp.hdrs_cap = lim.max_headers < SCRATCH_HDRS ? lim.max_headers : SCRATCH_HDRS;
	if (lim.max_headers > SCRATCH_HDRS)
		lim.max_headers = SCRATCH_HDRS;
	r = gw_http1_parse_request(p, len, &lim, &tmp);
	if (r == 0) {
		if (c->rd_eof) {
			conn_close(c, GW_CLOSE_CLIENT_EOF);
			return;
		}
		if (len >= lim.max_header_bytes) {
			tmp.err_status = 431;
			tmp.err_reason = "request head too large";
			r = -1;
		} else {
			if (new_head)
				client_timer(c, TO_HEADER);
			rd_enable(c, 1);
			return;
		}
	}
	rq = req_new(c);
	if (rq == NULL) {
		conn_close(c, GW_CLOSE_INTERNAL);
		return;
	}
	c->rq = rq;
	if (r < 0) {
		rq->parse_error = 1;
		memset(&rq->head, 0, sizeof rq->head);
		gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_REQUESTS], 1);
		c->state = CS_BUSY;
		gw_debug("%s: bad request from %s: %d %s", c->proto->name, gw_req_client_str(rq),
		    tmp.err_status, tmp.err_reason);
		respond_error(rq, tmp.err_status ? tmp.err_status : 400, tmp.err_reason);
		return;
	}
	/* keep a private copy of the head and point the parse into it */
	rq->headbuf = arena_raw(&rq->arena, (size_t)r);
	struct gw_hdr *hdrs = gw_req_alloc(rq, (tmp.nhdrs + 1) * sizeof *hdrs);
	if (rq->headbuf == NULL) {
		conn_close(c, GW_CLOSE_INTERNAL);
		return;
	}
	memcpy(rq->headbuf, p, (size_t)r);
	memcpy(hdrs, scratch, tmp.nhdrs * sizeof *hdrs);
	tmp.hdrs = hdrs;
	tmp.hdrs_cap = tmp.nhdrs + 1;
	head_rebase(&tmp, p, (size_t)r, rq->headbuf);
	rq->head = tmp;
	evbuffer_drain(c->in, (size_t)r);
	c->parsed_len = 0;
	rq->bytes_in = (uint64_t)r;
	start_request(c, rq);
}

/* ---- bodies ---- */

/*
 * Move body bytes of x from src to dst, decoding chunked input and encoding
 * chunked output as x says.  Returns 0, or -1 on a framing error.
 * x->done is set at the end of the body.
 */
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

static int xfer_pump(struct xfer *x, struct evbuffer *src, struct evbuffer *dst)
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
				chunk_line(dst, n);
			xfer_tap(x, src, n);
			evbuffer_remove_buffer(src, dst, n);
			if (x->out_chunked)
				evbuffer_add(dst, "\r\n", 2);
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
					chunk_line(dst, dlen);
				xfer_tap(x, src, dlen);
				evbuffer_remove_buffer(src, dst, dlen);
				if (x->out_chunked)
					evbuffer_add(dst, "\r\n", 2);
				x->moved += dlen;
			}
			evbuffer_drain(src, (size_t)r - off - dlen);
			if (x->ck.done)
				x->done = 1;
		} else {
			x->done = 1;
		}
		if (x->done && x->out_chunked)
			evbuffer_add(dst, "0\r\n\r\n", 5);
	}
	return 0;
}

/* ---- upstream side ---- */

static struct upconn *up_new(struct gw_worker *w, int fd, const char *key)
{
	struct upconn *u = calloc(1, sizeof *u);

	if (u == NULL)
		return NULL;
	u->magic = UP_MAGIC;
	u->fd = fd;
	u->w = w;
	u->in = evbuffer_new();
	u->out = evbuffer_new();
	if (u->in == NULL || u->out == NULL) {
		if (u->in) evbuffer_free(u->in);
		if (u->out) evbuffer_free(u->out);
		free(u);
		return NULL;
	}
	memcpy(u->key, key, strlen(key) + 1);   /* pool keys fit (pool_key_make) */
	u->kh = key_hash32(u->key);
	event_assign(&u->ev_rd, w->base, fd, EV_READ | EV_PERSIST, up_rd_cb, u);
	event_assign(&u->ev_wr, w->base, fd, EV_WRITE | EV_PERSIST, up_wr_cb, u);
	event_assign(&u->ev_to, w->base, -1, 0, up_to_cb, u);
	return u;
}

static void up_free(struct upconn *u)
{
	event_del(&u->ev_rd);
	event_del(&u->ev_wr);
	event_del(&u->ev_to);
	if (u->ssl != NULL) {
		if (!u->tls_hs && !u->wr_shut && !u->eof) {
			ERR_clear_error();
			(void)SSL_shutdown(u->ssl);
		}
		ERR_clear_error();
		SSL_free(u->ssl);
	}
	if (u->fd >= 0)
		close(u->fd);
	evbuffer_free(u->in);
	evbuffer_free(u->out);
	u->magic = 0;
	free(u);
}

static void up_detach_close(struct gw_conn *c)
{
	struct upconn *u = c->up;

	c->up = NULL;
	u->c = NULL;
	up_free(u);
}

static void up_write(struct upconn *u)
{
	struct gw_conn *c = u->c;

	if (u->connecting)
		return;
	if (u->tls_hs)
		return;
	while (evbuffer_get_length(u->out) > 0) {
		int n = io_write(u->fd, u->ssl, u->out);
		if (n < 0) {
			/* the origin went away while we were sending: the response
			 * path reports it (it may already have answered) */
			u->eof = 1;
			evbuffer_drain(u->out, evbuffer_get_length(u->out));
			up_rd_enable(u, 1);
			event_active(&u->ev_rd, EV_READ, 0);
			break;
		}
		if (n == 0)
			break;
	}
	size_t left = evbuffer_get_length(u->out);
	if (c != NULL && left == 0 && sp_held(c, SP_C2U) > 0) {
		if (sp_out(c, SP_C2U) < 0) {
			/* as above; what the client sends from now on is dropped by
			 * the evbuffer path (the pipe cannot be drained unread) */
			u->eof = 1;
			c->sp->failed |= 1u << SP_C2U;
			sp_drop(c->sp, SP_C2U);
			up_rd_enable(u, 1);
			event_active(&u->ev_rd, EV_READ, 0);
		}
		left = sp_held(c, SP_C2U);
	}
	if (c != NULL && c->state == CS_BUSY && c->rq != NULL && !c->rq->reqx.done) {
		/* sending the request body: a stalled upstream is timed out */
		if (left > 0)
			set_timer(&u->ev_to, TO(c)->upstream_response);
		else
			event_del(&u->ev_to);
	}
	if (left > 0 && !u->wr_on) {
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
	} else if (left == 0 && u->wr_on) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
	}
	if (c != NULL && left < HIWAT && u->cl_paused && !sp_full(c, SP_C2U)) {
		u->cl_paused = 0;
		if (c->state == CS_TUNNEL) {
			rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				tunnel_pump(c);
		} else if (c->rq != NULL && !c->rq->reqx.done) {
			c->rq->body_t0 = 0;   /* body rate: a new window (pump_request_body) */
			rd_enable(c, 1);
			if (evbuffer_get_length(c->in) > 0)
				pump_request_body(c);
		}
		return;
	}
	if (c != NULL && c->state == CS_TUNNEL && left == 0)
		tunnel_pump(c);
}

/*
 * Offer the family a retry (e.g. on another server) after an upstream
 * failure at stage.  Returns 1 if the request was restarted.
 */
static int family_retry(struct gw_conn *c, int stage)
{
	struct gw_req *rq = c->rq;
	enum decision was;

	/* a tunnel may be retried elsewhere only while nothing was sent
	 * (e.g. the next parent proxy after a failed connect) */
	if (rq == NULL || c->proto->on_upstream_error == NULL || rq->resp_head_done ||
	    (rq->dec != DEC_PROXY && !(rq->dec == DEC_TUNNEL && stage == GW_UPFAIL_CONNECT)) ||
	    c->state != CS_BUSY)
		return 0;
	if (stage != GW_UPFAIL_CONNECT && gw_req_body_sent(rq))
		return 0;
	was = rq->dec;
	/* ask first: on "no", the caller may still relay the origin's answer,
	 * which lives in the upstream connection's buffer */
	rq->dec = DEC_NONE;
	if (!c->proto->on_upstream_error(rq, stage, c->side) || rq->dec == DEC_NONE) {
		rq->dec = was;
		return 0;
	}
	if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE) {
		/* the family answers instead (e.g. a stale cached copy) */
		if (c->up != NULL)
			up_detach_close(c);
		send_local(rq);
		return 1;
	}
	if (rq->dec != was) {
		rq->dec = was;
		return 0;
	}
	if (c->up != NULL)
		up_detach_close(c);
	rq->addr_idx = 0;
	rq->connect_err = 0;
	rq->retried = 1;   /* a fresh connection, not the pool */
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	proxy_start(rq);
	return 1;
}

/* Fail the request with status (502/504) if nothing was sent to the client
 * yet, else cut the connection. */
static void upstream_failed(struct gw_conn *c, int status, const char *reason)
{
	struct gw_req *rq = c->rq;

	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_ERRORS], 1);
	if (c->up != NULL)
		up_detach_close(c);
	if (rq == NULL) {
		conn_close(c, GW_CLOSE_UPSTREAM_ERROR);
		return;
	}
	gw_info("%s: request %s from %s: upstream %s: %s", c->proto->name, rq->id, gw_req_client_str(rq),
	    rq->upstream_str[0] ? rq->upstream_str : (rq->up_host ? rq->up_host : "-"), reason);
	if (rq->resp_head_done || c->state == CS_TUNNEL) {
		rq->reason = reason;
		conn_close(c, status == 504 ? GW_CLOSE_UPSTREAM_TIMEOUT : GW_CLOSE_UPSTREAM_ERROR);
		return;
	}
	if (!rq->reqx.done)
		rq->close_after = 1;
	c->state = CS_BUSY;
	respond_error(rq, status, reason);
}

/*
 * Write rq's head to u->out.  Returns 0, or -1 when the head would not frame
 * the body (the invariant below): then nothing must be sent on u.
 */
static int send_request_head(struct gw_req *rq, struct upconn *u)
{
	const struct gw_http_head *h = &rq->head;
	struct evbuffer *o = u->out;
	const char *via = rq->c->snap->conf->global.via_name;
	int framing = 0;           /* framing fields written */
	struct hb hb;

	hb.dst = o;
	hb.len = 0;
	hb_put(&hb, h->method_str, h->method_len);
	HB_LIT(&hb, " ");
	hb_put(&hb, rq->up_path, rq->up_path_len);
	HB_LIT(&hb, " HTTP/1.1\r\n");
	if (h->target_form == GW_TF_ABSOLUTE && !edit_has(rq->req_edits, "host")) {
		/* RFC 9112 3.2.2: the target's authority replaces Host (a
		 * family's Host edit replaces both: one Host, never two) */
		int v6 = memchr(h->host, ':', h->host_len) != NULL;
		int dflt = (h->port == 80 && h->scheme_len == 4) || (h->port == 443 && h->scheme_len == 5);
		HB_LIT(&hb, "Host: ");
		if (v6)
			HB_LIT(&hb, "[");
		hb_put(&hb, h->host, h->host_len);
		if (v6)
			HB_LIT(&hb, "]");
		if (!dflt) {
			HB_LIT(&hb, ":");
			hb_uint(&hb, h->port, 10);
		}
		HB_LIT(&hb, "\r\n");
	}
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (hop_by_hop(x) || conn_listed(h, x) || edit_deleted(rq->req_edits, x))
			continue;
		if (h->target_form == GW_TF_ABSOLUTE && hdr_is(x, "host"))
			continue;
		if (rq->body_complete && hdr_is(x, "content-length"))
			continue;
		if (rq->sent_continue && hdr_is(x, "expect"))
			continue;
		if (hdr_is(x, "max-forwards") && (h->method == GW_M_OPTIONS || h->method == GW_M_TRACE) &&
		    (h->flags & GW_HF_MAX_FORWARDS)) {
			HB_LIT(&hb, "Max-Forwards: ");
			hb_uint(&hb, h->max_forwards - 1, 10);
			HB_LIT(&hb, "\r\n");
			continue;
		}
		framing += hdr_is(x, "content-length");
		hb_hdr(&hb, x->name, x->name_len, x->value, x->value_len);
	}
	add_via(&hb, rq, h->version_minor, via);
	add_edits(&hb, rq->req_edits);
	if (rq->body_complete && (h->body != GW_BODY_NONE)) {
		HB_LIT(&hb, "Content-Length: ");
		hb_uint(&hb, evbuffer_get_length(rq->bodybuf), 10);
		HB_LIT(&hb, "\r\n");
		framing++;
	} else if (rq->reqx.out_chunked) {
		HB_LIT(&hb, "Transfer-Encoding: chunked\r\n");
		framing++;
	}
	/* The writer's invariant, checked always (it costs a compare): body
	 * bytes never go out without exactly one framing field, else the
	 * origin reads them as the next request (parser, set_headers and edits
	 * keep it true; this is the last line). */
	if (framing > 1 || (framing == 0 && (h->body == GW_BODY_CHUNKED ||
	    (h->body == GW_BODY_LENGTH && h->content_length > 0))))
		return -1;
	if (rq->upgrade) {
		const struct gw_hdr *up = gw_http1_find(h, "upgrade");
		HB_LIT(&hb, "Connection: upgrade\r\n");
		hb_hdr(&hb, "Upgrade", 7, up->value, up->value_len);
	}
	HB_LIT(&hb, "\r\n");
	hb_flush(&hb);
	return 0;
}

/* The upstream connection is ready: send the request or open the tunnel. */
static void upstream_ready(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;

	if (rq->dec == DEC_TUNNEL && rq->tun_target != NULL && !rq->tun_ok) {
		/* through a parent: ask it first; parent_answer() goes on */
		evbuffer_add_printf(u->out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", rq->tun_target,
		    rq->tun_target);
		if (rq->tun_extra_len > 0)
			evbuffer_add(u->out, rq->tun_extra, rq->tun_extra_len);
		evbuffer_add(u->out, "\r\n", 2);
		rq->tun_wait = 1;
		set_timer(&u->ev_to, TO(c)->upstream_response);
		up_rd_enable(u, 1);
		up_write(u);
		return;
	}
	if (rq->dec == DEC_TUNNEL) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		rq->status = 200;
		rq->resp_head_done = 1;
		gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_TUNNELS], 1);
		evbuffer_add(c->out, ok, sizeof ok - 1);
		c->state = CS_TUNNEL;
		client_timer(c, TO_TUNNEL);
		rd_enable(c, 1);
		up_rd_enable(u, 1);
		conn_write(c);
		if (c->state == CS_TUNNEL)
			tunnel_pump(c);
		return;
	}
	if ((rq->head.flags & GW_HF_EXPECT_CONTINUE) && !rq->reqx.done &&
	    rq->head.version_minor == 1 && !rq->sent_continue) {
		evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		rq->sent_continue = 1;
	}
	if (u->owner == NULL && head_conn_bound(&rq->head, "authorization", 13))
		pool_private(u, c);
	rq->up_sent = gw_mono_now();   /* first-byte time runs from here */
	if (send_request_head(rq, u) < 0) {
		gw_error("%s: request %s: not sent: its body would go upstream without framing",
		    c->proto->name, rq->id);
		up_detach_close(c);   /* with the head bytes: none of it is sent */
		respond_error(rq, 500, "request body without framing");
		return;
	}
	if (rq->body_buffered) {
		size_t n = evbuffer_get_length(rq->bodybuf);
		if (n > 0 && rq->reqx.out_chunked)
			chunk_line(u->out, n);
		evbuffer_add_buffer(u->out, rq->bodybuf);
		if (n > 0 && rq->reqx.out_chunked)
			evbuffer_add(u->out, "\r\n", 2);
		/* a body cut at the family's limit may still have been read to
		 * its end while buffering (chunks decoded without re-framing):
		 * xfer_pump() will not run again to end the chunked stream, so
		 * end it here or the upstream waits (and a pooled connection
		 * desyncs) */
		if (rq->reqx.done && rq->reqx.out_chunked)
			evbuffer_add(u->out, "0\r\n\r\n", 5);
		rq->reqx.moved += n;
	}
	up_rd_enable(u, 1);
	/* upstream_response counts from the end of the request (a long upload
	 * is paced by client_body and by write progress instead); this also
	 * replaces a pooled connection's idle timer */
	if (rq->reqx.done)
		set_timer(&u->ev_to, TO(c)->upstream_response);
	else if (u->reused)
		event_del(&u->ev_to);
	if (!rq->reqx.done) {
		rd_enable(c, 1);
		client_timer(c, TO_BODY);
		pump_request_body(c);
		if (c->state == CS_CLOSED || c->up != u)
			return;
	}
	up_write(u);
	if (evbuffer_get_length(c->out) > 0)
		conn_write(c);
}

static void pump_request_body(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	size_t before = evbuffer_get_length(c->in);

	if (u == NULL || rq == NULL || rq->reqx.done)
		return;
	if (xfer_pump(&rq->reqx, c->in, u->out) < 0) {
		rq->close_after = 1;
		if (!rq->resp_head_done) {
			up_detach_close(c);
			respond_error(rq, 400, "bad chunked request body");
		} else {
			conn_close(c, GW_CLOSE_BAD_REQUEST);
		}
		return;
	}
	rq->bytes_in += before - evbuffer_get_length(c->in);
	if (rq->max_body > 0 && rq->reqx.moved > rq->max_body) {
		rq->close_after = 1;
		if (!rq->resp_head_done) {
			up_detach_close(c);
			respond_error(rq, 413, "body over limit");
		} else {
			conn_close(c, GW_CLOSE_BAD_REQUEST);
		}
		return;
	}
	if (rq->reqx.done) {
		rd_enable(c, 0);
		event_del(&c->ev_to);
		if (!rq->resp_head_done)
			set_timer(&u->ev_to, TO(c)->upstream_response);
	} else if (c->rd_eof) {
		rq->reason = "client closed during request body";
		conn_close(c, GW_CLOSE_CLIENT_EOF);
		return;
	} else if (evbuffer_get_length(u->out) >= HIWAT) {
		rd_enable(c, 0);
		u->cl_paused = 1;
		/* the upstream is slow, not the client: the rate window
		 * starts again when reading resumes */
		rq->body_t0 = 0;
		client_timer(c, TO_BODY);
	} else {
		client_timer(c, TO_BODY);
	}
	up_write(u);
}

static void on_connected(struct gw_conn *c)
{
	struct upconn *u = c->up;
	struct gw_req *rq = c->rq;

	u->connecting = 0;
	event_del(&u->ev_wr);
	u->wr_on = 0;
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_CONNECTS], 1);
	if (rq->up_t0 > 0) {
		gw_hist_observe(c->w->id, GW_H_UP_CONNECT, metric_up(rq), gw_mono_now() - rq->up_t0);
		rq->up_t0 = 0;
	}
	if (rq->up_tls > 0) {
		u->ssl = gw_tls_upstream_ssl(c->snap->tls, rq->up_tls - 1, rq->up_host);
		if (u->ssl == NULL || SSL_set_fd(u->ssl, u->fd) != 1) {
			up_detach_close(c);
			upstream_failed(c, 502, "upstream TLS: cannot create a session");
			return;
		}
		SSL_set_connect_state(u->ssl);
		u->tls_hs = 1;
		up_handshake(u);   /* the connect timer keeps running until it completes */
		return;
	}
	event_del(&u->ev_to);
	upstream_ready(c);
}

static void connect_next(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	int last_err = rq->connect_err;

	while (rq->addr_idx < rq->addrs->naddrs) {
		int i = rq->addr_idx++;
		const struct sockaddr *sa = (const struct sockaddr *)&rq->addrs->addrs[i];
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;

		if (fd < 0) {
			last_err = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		char host[INET6_ADDRSTRLEN];
		uint16_t port;
		if (sa->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
			snprintf(rq->upstream_str, sizeof rq->upstream_str, "%s:%u", host, port);
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
			port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
			snprintf(rq->upstream_str, sizeof rq->upstream_str, "[%s]:%u", host, port);
		}
		rq->up_t0 = gw_mono_now();
		int r = connect(fd, sa, rq->addrs->lens[i]);
		if (r < 0 && errno != EINPROGRESS) {
			last_err = errno;
			close(fd);
			continue;
		}
		struct upconn *u = up_new(c->w, fd, rq->pool_key);
		if (u == NULL) {
			close(fd);
			last_err = ENOMEM;
			break;
		}
		snprintf(u->addr_str, sizeof u->addr_str, "%s", rq->upstream_str);
		memcpy(&u->peer, sa, rq->addrs->lens[i] < sizeof u->peer ? rq->addrs->lens[i] : sizeof u->peer);
		u->keepalive = rq->keepalive;
		u->c = c;
		c->up = u;
		if (r == 0) {
			on_connected(c);
			return;
		}
		u->connecting = 1;
		event_add(&u->ev_wr, NULL);
		u->wr_on = 1;
		set_timer(&u->ev_to, TO(c)->upstream_connect);
		return;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "cannot connect: %s", last_err ? strerror(last_err) : "no address");
	if (family_retry(c, GW_UPFAIL_CONNECT))
		return;
	upstream_failed(c, last_err == ETIMEDOUT ? 504 : 502, gw_req_strndup(rq, msg, strlen(msg)));
}

/*
 * The pool key of rq's upstream (arena): the side (forward and reverse never
 * share), the TLS settings (gw_tls_upstream_id: verify, CA, SNI) and
 * host:port, as "<family>p|host:port" or "<family>t<tls id>|host:port".
 * Without snprintf: this runs for every proxied request; built each time, a
 * retry may change the target.  A key longer than upconn keeps is "" (never
 * pooled), never cut: a cut key could match another host.
 */
static void pool_key_make(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	size_t hl = strlen(rq->up_host);
	const char *tid = rq->up_tls ? gw_tls_upstream_id(c->snap->tls, rq->up_tls - 1) : "";
	size_t tl = strlen(tid);
	char *k = rq->pool_key = gw_req_alloc(rq, hl + tl + 12);
	unsigned port = rq->up_port;
	char num[8];
	int i = (int)sizeof num;

	if (hl + tl + 11 >= POOL_KEY_MAX) {
		k[0] = '\0';
		return;
	}
	*k++ = (char)('0' + c->proto->family);
	*k++ = rq->up_tls ? 't' : 'p';
	memcpy(k, tid, tl);
	k += tl;
	*k++ = '|';
	memcpy(k, rq->up_host, hl);
	k += hl;
	*k++ = ':';
	do
		num[--i] = (char)('0' + port % 10);
	while ((port /= 10) > 0);
	memcpy(k, num + i, sizeof num - (size_t)i);
	k[sizeof num - (size_t)i] = '\0';
}

/* Send rq on a pooled connection if one fits (pool_get; vetted: the
 * addresses the family allowed, NULL = any): 1 if so. */
static int pool_reuse(struct gw_req *rq, const struct gw_dns_result *vetted)
{
	struct gw_conn *c = rq->c;
	struct upconn *u;

	if (rq->dec != DEC_PROXY || rq->upgrade || rq->retried ||
	    (u = pool_get(c->w, rq->pool_key, c, vetted)) == NULL)
		return 0;
	u->c = c;
	u->reused = 1;
	u->got_bytes = 0;
	u->keepalive = rq->keepalive;
	c->up = u;
	memcpy(rq->upstream_str, u->addr_str, sizeof rq->upstream_str);
	gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_UPSTREAM_REUSED], 1);
	upstream_ready(c);
	return 1;
}

static void resolved(struct gw_req *rq, const struct gw_dns_result *res)
{
	struct gw_conn *c = rq->c;
	int n = 0;

	rq->refused_status = 0;
	if (res->naddrs == 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "cannot resolve %s: %s", rq->up_host, res->error);
		gw_stat_add(&c->w->stats->dns_failures, 1);
		upstream_failed(c, 502, gw_req_strndup(rq, msg, strlen(msg)));
		return;
	}
	if (rq->addrs == NULL)
		rq->addrs = gw_req_alloc(rq, sizeof *rq->addrs);
	memset(rq->addrs, 0, sizeof *rq->addrs);
	for (int i = 0; i < res->naddrs; i++) {
		int st = 0;
		if (c->proto->on_resolved != NULL)
			st = c->proto->on_resolved(rq, (const struct sockaddr *)&res->addrs[i], c->side);
		if (rq->dec == DEC_RESPOND) {
			/* the family refused with its own page */
			send_local(rq);
			return;
		}
		if (st != 0) {
			rq->refused_status = st;
			continue;
		}
		rq->addrs->addrs[n] = res->addrs[i];
		rq->addrs->lens[n++] = res->lens[i];
	}
	rq->addrs->naddrs = n;
	rq->addr_idx = 0;
	if (n == 0) {
		respond_error(rq, rq->refused_status, "destination address not allowed");
		return;
	}
	if (c->proto->on_resolved != NULL && pool_reuse(rq, rq->addrs))
		return;
	connect_next(rq);
}

static void dns_done(void *arg, const struct gw_dns_result *res)
{
	struct gw_req *rq = arg;

	rq->dnsq = NULL;
	if (rq->c->to_kind == TO_DNS)
		event_del(&rq->c->ev_to);
	resolved(rq, res);
}

static void proxy_start(struct gw_req *rq)
{
	struct gw_conn *c = rq->c;
	struct gw_dns_result res;
	int r;

	pool_key_make(rq);
	/* a family that vets addresses (on_resolved) takes a pooled connection
	 * only after its checks passed, from resolved() */
	if (c->proto->on_resolved == NULL && pool_reuse(rq, NULL))
		return;
	gw_stat_add(&c->w->stats->dns_queries, 1);
	r = gw_dns_resolve(c->w->dns, rq->up_host, rq->up_port, &res, dns_done, rq, &rq->dnsq);
	if (r == 0) {
		/* evdns's own timeout does not cover a query waiting in its queue
		 * (over 64 in flight): upstream_connect bounds the resolution too
		 * (client_to_cb).  A background request keeps its TO_BG bound. */
		if (c->to_kind != TO_BG)
			client_timer(c, TO_DNS);
		return;  /* dns_done() continues */
	}
	resolved(rq, &res);
}

/* Start over on a fresh connection after a pooled one failed before answering. */
static int retry_fresh(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;

	if (rq == NULL || u == NULL || !u->reused || u->got_bytes || rq->retried ||
	    rq->head.body != GW_BODY_NONE || rq->resp_head_done)
		return 0;
	rq->retried = 1;
	up_detach_close(c);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	rq->sent_continue = 0;
	gw_debug("request %s: pooled upstream connection closed; retrying on a new one", rq->id);
	proxy_start(rq);
	return 1;
}

static void resp_tap(void *arg, const char *p, size_t n)
{
	struct gw_req *rq = arg;

	rq->c->proto->on_response_body(rq, p, n, rq->c->side);
}

/* Drop what was added to b after its first keep bytes (nothing of it was
 * written yet).  Returns 0, or -1 out of memory. */
static int buf_truncate(struct evbuffer *b, size_t keep)
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

/* Relay the final response head.  Returns 1 when the family chose in
 * on_response_head to answer by itself instead (nothing was written); -1
 * when the head would not frame the body (the invariant below; nothing was
 * written, the caller fails the exchange). */
static int relay_response_head(struct gw_conn *c, const struct gw_http_head *r)
{
	struct gw_req *rq = c->rq;
	struct evbuffer *o = c->out;
	const char *via = c->snap->conf->global.via_name;
	int to_http10 = rq->head.version_minor == 0;
	const char *date;
	struct hb hb;
	size_t before;
	int framing = 0;           /* framing fields written */

	rq->status = r->status;
	rq->resp_http10 = r->version_minor == 0;
	rq->resp_conn_close = (r->flags & GW_HF_CONN_CLOSE) != 0 ||
	    (rq->resp_http10 && !(r->flags & GW_HF_CONN_KEEPALIVE));
	rq->respx.kind = r->body;
	rq->respx.remaining = r->content_length;
	gw_chunked_init(&rq->respx.ck);
	rq->respx.done = r->body == GW_BODY_NONE || (r->body == GW_BODY_LENGTH && r->content_length == 0);
	if (!client_keepalive(&rq->head))
		rq->close_after = 1;
	if (r->body == GW_BODY_CHUNKED || r->body == GW_BODY_CLOSE) {
		if (to_http10)
			rq->close_after = 1;
		else
			rq->respx.out_chunked = 1;
	}
	if (!rq->reqx.done)
		rq->close_after = 1;  /* answered before the body ended: cannot resync */

	if (c->proto->on_response_head != NULL) {
		c->proto->on_response_head(rq, r, c->side);
		if (rq->dec == DEC_RESPOND || rq->dec == DEC_FILE)
			return 1;
	}
	if (c->proto->on_response_body != NULL) {
		rq->respx.tap = resp_tap;
		rq->respx.tap_arg = rq;
	}
	before = evbuffer_get_length(o);
	hb.dst = o;
	hb.len = 0;
	HB_LIT(&hb, "HTTP/1.1 ");
	hb_uint(&hb, (unsigned)r->status, 10);
	HB_LIT(&hb, " ");
	hb_put(&hb, r->reason, r->reason_len);
	HB_LIT(&hb, "\r\n");
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct gw_hdr *x = &r->hdrs[i];
		if (hop_by_hop(x) || conn_listed(r, x) || edit_deleted(rq->resp_edits, x))
			continue;
		if (r->status == 204 && hdr_is(x, "content-length"))
			continue;   /* RFC 9110 8.6: never on a 204 */
		framing += hdr_is(x, "content-length");
		hb_hdr(&hb, x->name, x->name_len, x->value, x->value_len);
	}
	if (!(r->flags & GW_HF_HAS_DATE)) {
		size_t dl = date_now(&date);
		hb_hdr(&hb, "Date", 4, date, dl);
	}
	add_via(&hb, rq, r->version_minor, via);
	add_edits(&hb, rq->resp_edits);
	if (rq->respx.out_chunked) {
		HB_LIT(&hb, "Transfer-Encoding: chunked\r\n");
		framing++;
	}
	/* The writer's invariant, checked always: a body goes to the client
	 * with exactly one framing field, or delimited by the close of the
	 * connection (announced: Connection: close below); a Content-Length
	 * body always with its Content-Length.  Else the client would read
	 * the body, or the next response, as something else. */
	if (framing > 1 || (framing == 0 && ((r->body == GW_BODY_LENGTH && r->content_length > 0) ||
	    ((r->body == GW_BODY_CHUNKED || r->body == GW_BODY_CLOSE) && !rq->close_after)))) {
		gw_error("%s: request %s: response not relayed: its body would go to the client "
		    "without framing", c->proto->name, rq->id);
		hb.len = 0;
		if (buf_truncate(o, before) < 0)
			conn_close(c, GW_CLOSE_INTERNAL);
		return -1;
	}
	if (rq->close_after)
		HB_LIT(&hb, "Connection: close\r\n");
	else if (to_http10)
		HB_LIT(&hb, "Connection: keep-alive\r\n");
	HB_LIT(&hb, "\r\n");
	hb_flush(&hb);
	rq->resp_head_done = 1;
	return 0;
}

/* Handle bytes from the upstream: heads (1xx, 101, final), then the body. */
static void process_response(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	const struct conf_limits *L = &c->snap->conf->global.limits;

	if (rq == NULL || u == NULL)
		return;
	while (!rq->resp_head_done) {
		struct gw_http_limits lim = { (size_t)L->max_header_bytes * 2, SCRATCH_HDRS,
			(size_t)L->max_uri_bytes };
		struct gw_http_head r;
		size_t len = evbuffer_get_length(u->in);
		const char *p;

		if (len > 0 && rq->up_sent > 0) {
			gw_hist_observe(c->w->id, GW_H_UP_FIRST_BYTE, metric_up(rq), gw_mono_now() - rq->up_sent);
			rq->up_sent = 0;
		}
		ssize_t n;

		if (len == 0) {
			if (u->eof) {
				if (retry_fresh(c) || family_retry(c, GW_UPFAIL_RESET))
					return;
				upstream_failed(c, 502, "upstream closed the connection before answering");
			} else if (evbuffer_get_length(c->out) > 0) {
				conn_write(c);   /* interim responses relayed above */
			}
			return;
		}
		if (len > lim.max_header_bytes + 8)
			len = lim.max_header_bytes + 8;
		p = (const char *)evbuffer_pullup(u->in, (ev_ssize_t)len);
		memset(&r, 0, sizeof r);
		r.hdrs = (struct gw_hdr *)c->w->scratch;
		r.hdrs_cap = SCRATCH_HDRS;
		n = gw_http1_parse_response(p, len, &lim, rq->head.method, &r);
		if (n == 0) {
			if (u->eof)
				upstream_failed(c, 502, "upstream closed the connection inside the response head");
			else if (len >= lim.max_header_bytes)
				upstream_failed(c, 502, "upstream response head too large");
			else if (evbuffer_get_length(c->out) > 0)
				conn_write(c);   /* interim responses relayed above */
			return;
		}
		if (n < 0) {
			upstream_failed(c, 502, r.err_reason ? r.err_reason : "invalid response head");
			return;
		}
		if (r.status >= 100 && r.status < 200 && r.status != 101) {
			/* interim response: passed on to HTTP/1.1 clients as it comes
			 * (never a 100: ours went out already, or the client did not
			 * ask), under the same backpressure as a body, and at most
			 * MAX_INTERIM per request: an origin that streams 1xx forever
			 * must hold neither our memory nor the connection */
			if (++rq->interim > MAX_INTERIM) {
				upstream_failed(c, 502, "too many interim (1xx) responses");
				return;
			}
			if (rq->head.version_minor == 1 && r.status != 100) {
				evbuffer_add_printf(c->out, "HTTP/1.1 %d %.*s\r\n", r.status,
				    (int)r.reason_len, r.reason);
				for (size_t i = 0; i < r.nhdrs; i++)
					if (!hop_by_hop(&r.hdrs[i]) && !conn_listed(&r, &r.hdrs[i]))
						evbuffer_add_printf(c->out, "%.*s: %.*s\r\n",
						    (int)r.hdrs[i].name_len, r.hdrs[i].name,
						    (int)r.hdrs[i].value_len, r.hdrs[i].value);
				evbuffer_add(c->out, "\r\n", 2);
			}
			evbuffer_drain(u->in, (size_t)n);
			if (evbuffer_get_length(c->out) >= HIWAT) {
				/* conn_write() reads on once the client took it */
				up_rd_enable(u, 0);
				c->up_paused = 1;
				conn_write(c);
				return;
			}
			continue;
		}
		if (r.status == 101) {
			if (!rq->upgrade) {
				upstream_failed(c, 502, "upstream switched protocols without an Upgrade request");
				return;
			}
			/* relay the 101 and become a tunnel */
			rq->status = 101;
			evbuffer_add(c->out, "HTTP/1.1 101 Switching Protocols\r\n", 34);
			for (size_t i = 0; i < r.nhdrs; i++) {
				const struct gw_hdr *x = &r.hdrs[i];
				/* hop-by-hop as in any head, but Upgrade (named by
				 * Connection: upgrade) goes on with the tunnel; no
				 * framing fields: what follows is not HTTP */
				if (((hop_by_hop(x) || conn_listed(&r, x)) && !hdr_is(x, "upgrade")) ||
				    hdr_is(x, "content-length"))
					continue;
				evbuffer_add_printf(c->out, "%.*s: %.*s\r\n", (int)x->name_len, x->name,
				    (int)x->value_len, x->value);
			}
			evbuffer_add(c->out, "Connection: upgrade\r\n\r\n", 23);
			evbuffer_drain(u->in, (size_t)n);
			rq->resp_head_done = 1;
			rq->reqx.done = 1;
			event_del(&u->ev_to);
			gw_stat_add(&c->w->stats->fam[c->proto->family][GW_FC_TUNNELS], 1);
			c->state = CS_TUNNEL;
			client_timer(c, TO_TUNNEL);
			rd_enable(c, 1);
			conn_write(c);
			if (c->state == CS_TUNNEL)
				tunnel_pump(c);
			return;
		}
		if ((r.status == 401 && head_conn_bound(&r, "www-authenticate", 16)) ||
		    (r.status == 407 && head_conn_bound(&r, "proxy-authenticate", 18)))
			pool_private(u, c);
		if ((r.status == 502 || r.status == 503) && !gw_req_body_sent(rq) &&
		    (rq->head.method == GW_M_GET || rq->head.method == GW_M_HEAD ||
		    rq->head.method == GW_M_OPTIONS || rq->head.method == GW_M_PUT ||
		    rq->head.method == GW_M_DELETE || rq->head.method == GW_M_TRACE) &&
		    family_retry(c, GW_UPFAIL_STATUS))
			return;
		int relayed = relay_response_head(c, &r);
		if (relayed < 0) {
			if (c->state != CS_CLOSED)
				upstream_failed(c, 502, "response body without framing");
			return;
		}
		if (relayed) {
			/* answered locally: release the upstream, pooled if it is clean */
			int reuse = r.body == GW_BODY_NONE && !(r.flags & GW_HF_CONN_CLOSE) &&
			    r.version_minor == 1 && rq->reqx.done;
			evbuffer_drain(u->in, (size_t)n);
			reuse = reuse && evbuffer_get_length(u->in) == 0 && !u->eof;
			c->up = NULL;
			u->c = NULL;
			if (reuse)
				pool_put(c->w, u);
			else
				up_free(u);
			rq->resp_head_done = 0;
			send_local(rq);
			return;
		}
		evbuffer_drain(u->in, (size_t)n);
	}
	event_del(&u->ev_to);
	if (!rq->respx.done) {
		if (xfer_pump(&rq->respx, u->in, c->out) < 0) {
			upstream_failed(c, 502, "invalid chunked response body");
			return;
		}
		if (!rq->respx.done && u->eof) {
			if (rq->respx.kind == GW_BODY_CLOSE) {
				rq->respx.done = 1;
				if (rq->respx.out_chunked)
					evbuffer_add(c->out, "0\r\n\r\n", 5);
			} else {
				conn_write(c);
				if (c->state != CS_CLOSED) {
					rq->reason = "upstream closed mid-body";
					conn_close(c, GW_CLOSE_UPSTREAM_ERROR);
				}
				return;
			}
		}
		if (!rq->respx.done)
			set_timer(&u->ev_to, TO(c)->upstream_response);
	}
	if (rq->respx.done) {
		up_rd_enable(u, 0);   /* (the timer went above) */
		if (!rq->resp_ended && c->proto->on_response_end != NULL) {
			/* the whole body came from the upstream: a cache can
			 * commit now, not after the last write to the client
			 * (a request on another worker must not miss it) */
			rq->resp_ended = 1;
			c->proto->on_response_end(rq, 1, c->side);
		}
	} else if (evbuffer_get_length(c->out) >= HIWAT) {
		up_rd_enable(u, 0);
		c->up_paused = 1;
	}
	conn_write(c);
}

static void tunnel_pump(struct gw_conn *c)
{
	struct upconn *u = c->up;
	struct gw_req *rq = c->rq;
	size_t n;

	if (u == NULL || c->state != CS_TUNNEL)
		return;
	n = evbuffer_get_length(c->in);
	if (n > 0) {
		evbuffer_remove_buffer(c->in, u->out, n);
		if (rq != NULL)
			rq->bytes_in += n;
	}
	n = evbuffer_get_length(u->in);
	if (n > 0)
		evbuffer_remove_buffer(u->in, c->out, n);
	/* half-close: pass an EOF on once everything before it is written */
	if (c->rd_eof && evbuffer_get_length(u->out) == 0 && sp_held(c, SP_C2U) == 0 && !u->wr_shut) {
		io_shutdown(u->fd, u->ssl);
		u->wr_shut = 1;
	}
	if (u->eof && evbuffer_get_length(c->out) == 0 && sp_held(c, SP_U2C) == 0 && !c->wr_shut) {
		io_shutdown(c->fd, c->ssl);
		c->wr_shut = 1;
	}
	if (c->wr_shut && u->wr_shut) {
		conn_close(c, GW_CLOSE_TUNNEL_DONE);
		return;
	}
	if (evbuffer_get_length(u->out) >= HIWAT || sp_full(c, SP_C2U)) {
		rd_enable(c, 0);
		u->cl_paused = 1;
	} else if (!u->cl_paused) {
		rd_enable(c, 1);
	}
	if (evbuffer_get_length(c->out) >= HIWAT || sp_full(c, SP_U2C)) {
		up_rd_enable(u, 0);
		c->up_paused = 1;
	} else if (!c->up_paused) {
		up_rd_enable(u, 1);
	}
	if (evbuffer_get_length(u->out) > 0 || sp_held(c, SP_C2U) > 0)
		up_write(u);
	if (c->state == CS_TUNNEL && c->up == u &&
	    (evbuffer_get_length(c->out) > 0 || sp_held(c, SP_U2C) > 0)) {
		conn_write(c);
	}
}

/* ---- TLS handshakes ---- */

static void client_handshake(struct gw_conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->state = CS_HEAD;
		wr_enable(c, 0);
		rd_enable(c, 1);
		client_timer(c, TO_FIRST);   /* now for the first request byte */
		/* application data may already sit in OpenSSL's buffer */
		event_active(&c->ev_rd, EV_READ, 0);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		wr_enable(c, 0);
		rd_enable(c, 1);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (wr_enable(c, 1) == 0)
			return;
	} else if (gw_log_enabled(GW_LOG_DEBUG)) {
		char buf[256], who[INET6_ADDRSTRLEN];
		ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
		gw_debug("TLS handshake with %s failed: %s", peer_fmt(c, who), buf);
	}
	ERR_clear_error();
	conn_close(c, GW_CLOSE_CLIENT_ERROR);
}

static void up_handshake(struct upconn *u)
{
	struct gw_conn *c = u->c;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(u->ssl);
	if (r == 1) {
		u->tls_hs = 0;
		event_del(&u->ev_wr);
		u->wr_on = 0;
		event_del(&u->ev_to);
		if (!u->rd_armed) {
			event_add(&u->ev_rd, NULL);
			u->rd_armed = 1;
		}
		u->rd_on = 1;
		upstream_ready(c);
		return;
	}
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		event_del(&u->ev_wr);
		u->wr_on = 0;
		if (!u->rd_armed) {
			event_add(&u->ev_rd, NULL);
			u->rd_armed = 1;
		}
		u->rd_on = 1;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (!u->wr_on) {
			event_add(&u->ev_wr, NULL);
			u->wr_on = 1;
		}
		return;
	}
	{
		struct gw_req *rq = c->rq;
		char buf[200], msg[300];
		long vr = SSL_get_verify_result(u->ssl);
		ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
		ERR_clear_error();
		if (vr != X509_V_OK)
			snprintf(msg, sizeof msg, "upstream TLS: certificate verification failed: %s",
			    X509_verify_cert_error_string(vr));
		else
			snprintf(msg, sizeof msg, "upstream TLS handshake failed: %s", buf);
		up_detach_close(c);
		if (family_retry(c, GW_UPFAIL_CONNECT))
			return;
		upstream_failed(c, 502, gw_req_strndup(rq, msg, strlen(msg)));
	}
}

/* ---- event callbacks ---- */

static void client_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	ssize_t n = 0;

	(void)fd;
	if (c->state == CS_CLOSED)
		return;
	if (c->state == CS_HANDSHAKE) {
		if (c->to_kind == TO_FIRST)   /* the first handshake bytes: client_header from here */
			client_timer(c, TO_HEADER);
		client_handshake(c);
		return;
	}
	{
		int armed = c->rd_armed;
		int unwanted = read_unwanted(&c->ev_rd, c->rd_on, &armed);
		c->rd_armed = armed;
		if (unwanted)
			return;
	}
	if (conn_bufs(c) < 0) {
		conn_close(c, GW_CLOSE_INTERNAL);
		return;
	}
	if (c->rd_on || (what & EV_READ)) {
		if (!c->rd_eof && c->rd_on) {
			if (c->state == CS_TUNNEL && sp_ready(c, SP_C2U)) {
				n = sp_in(c, SP_C2U);
			} else {
				int big = c->rd_big;
				n = io_read(c->fd, c->ssl, c->in, &big);
				c->rd_big = big;
				if (c->state == CS_TUNNEL)
					sp_maybe_make(c, SP_C2U, n);
			}
			if (n == 0) {
				c->rd_eof = 1;
				rd_enable(c, 0);
			} else if (n == -1) {
				if (c->state == CS_TUNNEL) {
					c->rd_eof = 1;
					rd_enable(c, 0);
				} else {
					conn_close(c, GW_CLOSE_CLIENT_ERROR);
					return;
				}
			}
		}
	}
	switch (c->state) {
	case CS_HEAD:
		handle_head(c);
		break;
	case CS_BUSY:
		if (c->rq != NULL && c->rq->reading_body)
			buffer_body(c);
		else if (c->rq != NULL && !c->rq->reqx.done && c->up != NULL && !c->up->connecting)
			pump_request_body(c);
		else if (c->rd_eof && c->rq != NULL && !c->rq->resp_head_done &&
		    evbuffer_get_length(c->in) == 0 && !c->rq->reqx.done) {
			conn_close(c, GW_CLOSE_CLIENT_EOF);
		}
		break;
	case CS_TUNNEL:
		client_timer(c, TO_TUNNEL);
		tunnel_pump(c);
		break;
	case CS_LINGER:
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		if (c->rd_eof)
			conn_close(c, GW_CLOSE_LOCAL_REPLY);
		break;
	case CS_HANDSHAKE:
	case CS_CLOSED:
		break;
	}
	if (c->state != CS_CLOSED && c->ssl != NULL && c->rd_on && SSL_has_pending(c->ssl))
		event_active(&c->ev_rd, EV_READ, 0);
}

static void client_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CS_CLOSED)
		return;
	if (c->state == CS_HANDSHAKE) {
		client_handshake(c);
		return;
	}
	if (c->state == CS_TUNNEL)
		client_timer(c, TO_TUNNEL);
	else if (c->to_kind == TO_SEND)
		client_timer(c, TO_SEND);
	conn_write(c);
}

static void client_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->to_kind) {
	case TO_IDLE:
		conn_close(c, GW_CLOSE_IDLE_TIMEOUT);
		return;
	case TO_HEADER:
		if (c->state == CS_HEAD && c->rq == NULL) {
			struct gw_req *rq = conn_bufs(c) == 0 ? req_new(c) : NULL;
			if (rq == NULL) {
				conn_close(c, GW_CLOSE_HEADER_TIMEOUT);
				return;
			}
			c->rq = rq;
			rq->parse_error = 1;
			c->state = CS_BUSY;
			gw_stat_add(&c->w->stats->close[GW_CLOSE_HEADER_TIMEOUT], 1);
			respond_error(rq, 408, "request head timeout");
			return;
		}
		conn_close(c, GW_CLOSE_HEADER_TIMEOUT);
		return;
	case TO_BODY: {
		int slow = c->rq != NULL && c->rq->body_slow;

		if (c->rq != NULL && !c->rq->resp_head_done) {
			if (c->up != NULL)
				up_detach_close(c);
			c->rq->close_after = 1;
			if (slow)
				gw_stat_add(&c->w->stats->close[GW_CLOSE_BODY_TOO_SLOW], 1);
			respond_error(c->rq, 408, slow ? "request body too slow" : "request body timeout");
			return;
		}
		if (slow)
			c->rq->reason = "request body too slow";
		conn_close(c, slow ? GW_CLOSE_BODY_TOO_SLOW : GW_CLOSE_BODY_TIMEOUT);
		return;
	}
	case TO_SEND:
		conn_close(c, GW_CLOSE_SEND_TIMEOUT);
		return;
	case TO_TUNNEL:
		conn_close(c, GW_CLOSE_TUNNEL_IDLE);
		return;
	case TO_LINGER:
		conn_close(c, GW_CLOSE_LOCAL_REPLY);
		return;
	case TO_BG:
		if (c->rq != NULL)
			c->rq->reason = "background request timeout";
		conn_close(c, GW_CLOSE_UPSTREAM_TIMEOUT);
		return;
	case TO_FIRST:
		conn_close(c, GW_CLOSE_FIRST_BYTE_TIMEOUT);
		return;
	case TO_DNS:
		if (c->rq == NULL || c->rq->dnsq == NULL)
			return;
		gw_dns_cancel(c->rq->dnsq);
		c->rq->dnsq = NULL;
		gw_stat_add(&c->w->stats->dns_failures, 1);
		upstream_failed(c, 504, "DNS timeout");
		return;
	}
}

#define PARENT_HEAD_MAX (16 * 1024)

/* The parent's answer to our CONNECT (gw_req_tunnel_via): 2xx opens the
 * tunnel (bytes after its head are the target's); anything else is 502. */
static void parent_answer(struct gw_conn *c)
{
	struct gw_req *rq = c->rq;
	struct upconn *u = c->up;
	struct evbuffer_ptr end = evbuffer_search(u->in, "\r\n\r\n", 4, NULL);
	char line[80], *reason;
	size_t n;
	int status = 0;

	if (end.pos < 0) {
		if (evbuffer_get_length(u->in) > PARENT_HEAD_MAX)
			upstream_failed(c, 502, "parent proxy: CONNECT answer head too large");
		else if (u->eof)
			upstream_failed(c, 502, "parent proxy closed without answering CONNECT");
		return;
	}
	n = evbuffer_copyout(u->in, line, sizeof line - 1) > 0 ? strcspn(line, "\r") : 0;
	line[n < sizeof line ? n : sizeof line - 1] = '\0';
	if (n >= 12 && strncmp(line, "HTTP/1.", 7) == 0 && line[8] == ' ')
		status = atoi(line + 9);
	evbuffer_drain(u->in, (size_t)end.pos + 4);
	rq->tun_wait = 0;
	event_del(&u->ev_to);
	if (status < 200 || status > 299) {
		char msg[120];
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
				*p = '?';
		snprintf(msg, sizeof msg, "parent proxy refused CONNECT: %s", line[0] ? line : "no status");
		reason = gw_req_strndup(rq, msg, strlen(msg));
		upstream_failed(c, 502, reason);
		return;
	}
	rq->tun_ok = 1;
	upstream_ready(c);
}

static void up_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_conn *c = u->c;
	ssize_t n;

	(void)fd;
	(void)what;
	if (c != NULL && u->tls_hs) {
		up_handshake(u);
		return;
	}
	if (c != NULL && read_unwanted(&u->ev_rd, u->rd_on, &u->rd_armed))
		return;
	if (c == NULL && u->ssl != NULL) {
		/* pooled TLS: session tickets arrive after the handshake; only
		 * application data or a close makes the connection unusable */
		char b;
		int r;
		ERR_clear_error();
		r = SSL_read(u->ssl, &b, 1);
		if (r <= 0 && SSL_get_error(u->ssl, r) == SSL_ERROR_WANT_READ) {
			ERR_clear_error();
			return;
		}
		ERR_clear_error();
	}
	if (c == NULL) {
		/* pooled: any byte or EOF means it is no longer usable */
		pool_unlink(u->w->pool, u);
		up_free(u);
		return;
	}
	if (!u->eof && u->rd_on) {
		if (c->state == CS_TUNNEL && sp_ready(c, SP_U2C)) {
			n = sp_in(c, SP_U2C);
		} else {
			n = io_read(u->fd, u->ssl, u->in, &u->rd_big);
			if (c->state == CS_TUNNEL)
				sp_maybe_make(c, SP_U2C, n);
		}
		if (n == 0 || n == -1) {
			u->eof = 1;
			up_rd_enable(u, 0);
		} else if (n > 0) {
			u->got_bytes = 1;
		}
	}
	if (c->state == CS_TUNNEL) {
		client_timer(c, TO_TUNNEL);
		tunnel_pump(c);
	} else if (c->rq != NULL && c->rq->tun_wait) {
		parent_answer(c);
	} else {
		process_response(c);
	}
	/* io_read stopped at READ_MAX with records read ahead into OpenSSL,
	 * where epoll cannot see them (the client side: end of client_rd_cb) */
	if (c->state != CS_CLOSED && c->up == u && u->ssl != NULL && u->rd_on && !u->eof &&
	    SSL_has_pending(u->ssl))
		event_active(&u->ev_rd, EV_READ, 0);
}

static void up_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_conn *c = u->c;

	(void)fd;
	(void)what;
	if (u->connecting) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			struct gw_req *rq = c->rq;
			gw_debug("connect to %s failed: %s", u->addr_str, strerror(err));
			rq->connect_err = err;
			up_detach_close(c);
			connect_next(rq);
			return;
		}
		on_connected(c);
		return;
	}
	if (u->tls_hs) {
		up_handshake(u);
		return;
	}
	up_write(u);
}

static void up_to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct gw_conn *c = u->c;

	(void)fd;
	(void)what;
	if (c == NULL) {
		pool_unlink(u->w->pool, u);
		up_free(u);
		return;
	}
	if (u->connecting || u->tls_hs) {
		struct gw_req *rq = c->rq;
		up_detach_close(c);
		rq->connect_err = ETIMEDOUT;
		if (rq->addrs != NULL && rq->addr_idx < rq->addrs->naddrs) {
			connect_next(rq);
			return;
		}
		if (family_retry(c, GW_UPFAIL_CONNECT))
			return;
		upstream_failed(c, 504, "upstream connect timeout");
		return;
	}
	if (family_retry(c, GW_UPFAIL_TIMEOUT))
		return;
	upstream_failed(c, 504, "upstream response timeout");
}

/* ---- accept, drain ---- */

/* Enter c in its worker's connection list (conn_close() takes it out). */
static void conn_link(struct gw_worker *w, struct gw_conn *c)
{
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	if (!c->bg)
		gw_stat_add(&w->stats->conns_active[c->proto->family], 1);
}

/* Over max_connections_per_client: say so in the log at most every 10 s
 * (process-wide), not once per refused connection of a flood. */
static void client_limit_warn(const struct gw_conn *c, uint64_t limit)
{
	static _Atomic int64_t last;
	int64_t now = (int64_t)gw_mono_now(), prev = atomic_load(&last);
	char who[INET6_ADDRSTRLEN];

	if (now - prev < 10 || !atomic_compare_exchange_strong(&last, &prev, now))
		return;
	gw_warn("client %s holds max_connections_per_client (%llu) connections: its new connections are "
	    "closed at once (counted as close reason client_limit)", peer_fmt(c, who),
	    (unsigned long long)limit);
}

void gw_conn_accept(struct gw_worker *w, int fd, const struct sockaddr *peer, socklen_t plen,
    const struct gw_lspec *lspec, struct gw_snapshot *snap)
{
	struct gw_conn *c = calloc(1, sizeof *c);
	int64_t limit = lspec->cl->max_connections_per_client;
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	if (plen > sizeof c->peer)
		plen = sizeof c->peer;
	memcpy(&c->peer, peer, plen);
	/* per-client cap, counted across all workers (core/climit.h): over it
	 * the connection is closed before it costs anything (no buffer, no
	 * TLS handshake); no response, since none can be sent before a
	 * handshake or without reading the request first */
	if (limit < 0)
		limit = snap->conf->global.max_connections_per_client;
	if (gw_climit_take(&c->peer.sa, (uint64_t)limit) == 0) {
		client_limit_warn(c, (uint64_t)limit);
		gw_stat_add(&w->stats->close[GW_CLOSE_CLIENT_LIMIT], 1);
		free(c);
		close(fd);
		return;
	}
	c->magic = CONN_MAGIC;
	c->fd = fd;
	c->lfd = lspec->fds[w->id];
	c->w = w;
	c->snap = snap;
	gw_snapshot_ref(snap);
	c->proto = lspec->proto;
	c->side = snap->side_data[lspec->side];
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	event_assign(&c->ev_rd, w->base, fd, EV_READ | EV_PERSIST, client_rd_cb, c);
	event_assign(&c->ev_to, w->base, -1, 0, client_to_cb, c);
	c->state = CS_HEAD;
	if (lspec->cl->tls) {
		c->ssl = gw_tls_server_ssl(snap->tls);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			if (c->ssl != NULL)
				SSL_free(c->ssl);
			gw_snapshot_unref(snap);
			gw_climit_release(&c->peer.sa);
			free(c);
			close(fd);
			return;
		}
		SSL_set_accept_state(c->ssl);
		c->state = CS_HANDSHAKE;
	}
	conn_link(w, c);
	gw_stat_add(&w->stats->fam[c->proto->family][GW_FC_CONN_ACCEPTED], 1);
	rd_enable(c, 1);
	client_timer(c, TO_FIRST);
}

/* An idle keep-alive client: no request under way and no byte of the next. */
static int conn_between_requests(const struct gw_conn *c)
{
	return c->state == CS_HEAD && !c->head_started &&
	    (c->in == NULL || evbuffer_get_length(c->in) == 0);
}

void gw_conn_drain_all(struct gw_worker *w)
{
	struct gw_conn *c = w->conns;

	while (c != NULL) {
		struct gw_conn *n = c->next;
		/* idle clients, and background requests: nobody waits for them */
		if (c->bg || conn_between_requests(c))
			conn_close(c, GW_CLOSE_SHUTDOWN);
		c = n;
	}
}

void gw_conn_listener_gone(struct gw_worker *w, int lfd)
{
	struct gw_conn *c = w->conns;

	while (c != NULL) {
		struct gw_conn *n = c->next;
		/* as nginx's old workers do on reload: idle keep-alive clients
		 * go now, a request under way is answered with Connection: close,
		 * tunnels run on (they have no request boundary to stop at) */
		if (c->lfd == lfd && !c->bg) {
			c->unlisted = 1;
			if (conn_between_requests(c))
				conn_close(c, GW_CLOSE_LISTENER_REMOVED);
			else if (c->rq != NULL && !c->rq->resp_head_done)
				c->rq->close_after = 1;
		}
		c = n;
	}
}

void gw_conn_close_all(struct gw_worker *w)
{
	while (w->conns != NULL)
		conn_close(w->conns, GW_CLOSE_SHUTDOWN);
}

/* ---- background requests (gw_req_spawn) ----
 *
 * A background request (e.g. the cache's stale-while-revalidate refresh) runs
 * on a connection without a socket, cloned from the request that spawned it:
 * same worker, snapshot (pinned by its own reference), listener family,
 * addresses and TLS-ness, and a private copy of the same request head.  Why
 * not a separate HTTP client (a core/fetch.c on the upstream code): this way
 * the request takes exactly the path a client's takes -- the family's
 * routing, balancer choice, retries and passive health, forwarding headers,
 * upstream TLS, pool, DNS, timeouts, response parsing and response taps --
 * with no second copy of any of it.  The connection differs only in where
 * its bytes go: conn_write() drops them (bg_discard), it never reads (rd_eof
 * from the start, so after its one request it closes like a client that hung
 * up), it has no descriptor to close, and TO_BG bounds the whole exchange.
 * It is an ordinary member of the worker's connection list, so shutdown and
 * worker stop close it like any other (the family's on_done still runs).
 */

static void bg_discard(struct gw_conn *c)
{
	size_t n = evbuffer_get_length(c->out);

	evbuffer_drain(c->out, n);   /* also releases referenced bodies */
	if (c->rq != NULL)
		c->rq->bytes_out += n;
}

static void bg_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	struct gw_req *rq = c->rq;

	(void)fd;
	(void)what;
	start_request(c, rq);
	/* start_request() cleared the client timer; nothing else arms it on a
	 * socketless connection until the request ends */
	if (c->state == CS_BUSY && c->rq == rq)
		client_timer(c, TO_BG);
}

struct gw_req *gw_req_spawn(struct gw_req *parent, double timeout)
{
	struct gw_conn *p = parent->c, *c;
	struct gw_worker *w = p->w;
	const struct conf_limits *L = &p->snap->conf->global.limits;
	struct gw_http_limits lim = { (size_t)L->max_header_bytes, parent->head.nhdrs + 1,
		(size_t)L->max_uri_bytes };
	size_t len = parent->head.head_len;
	struct gw_req *rq;

	if (atomic_load(&w->stop) || parent->parse_error || parent->headbuf == NULL || len == 0)
		return NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (c->in == NULL || c->out == NULL)
		goto fail;
	c->magic = CONN_MAGIC;
	c->fd = -1;
	c->w = w;
	c->snap = p->snap;
	c->proto = p->proto;
	c->side = p->side;
	c->peer = p->peer;
	c->bg = 1;
	c->bg_tls = p->ssl != NULL || p->bg_tls;
	c->rd_eof = 1;
	c->state = CS_BUSY;
	event_assign(&c->ev_rd, w->base, -1, 0, client_rd_cb, c);
	event_assign(&c->ev_to, w->base, -1, 0, client_to_cb, c);
	/* the start event; never a write event (conn_write never waits) */
	c->ev_wr = event_new(w->base, -1, 0, bg_start_cb, c);
	if (c->ev_wr == NULL)
		goto fail;
	rq = req_new(c);
	if (rq == NULL)
		goto fail;
	/* a pristine parse of the raw head (the family may have rewritten the
	 * parent's), and the parent's local address (there is no socket to ask) */
	rq->headbuf = arena_raw(&rq->arena, len);
	rq->head.hdrs = gw_req_alloc(rq, lim.max_headers * sizeof *rq->head.hdrs);
	rq->head.hdrs_cap = lim.max_headers;
	rq->local = gw_req_alloc(rq, sizeof *rq->local);
	if (rq->headbuf == NULL || rq->head.hdrs == NULL || rq->local == NULL) {
		req_free(rq);
		goto fail;
	}
	memcpy(rq->local, gw_req_local(parent), sizeof *rq->local);
	memcpy(rq->headbuf, parent->headbuf, len);
	if (gw_http1_parse_request(rq->headbuf, len, &lim, &rq->head) != (ssize_t)len) {
		req_free(rq);
		goto fail;
	}
	rq->bytes_in = len;
	rq->bg_timeout = timeout;
	c->rq = rq;
	gw_snapshot_ref(c->snap);
	conn_link(w, c);
	/* from the loop: the caller is usually inside its own on_request */
	event_active(c->ev_wr, EV_TIMEOUT, 0);
	return rq;
fail:
	if (c->ev_wr != NULL)
		event_free(c->ev_wr);
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c);
	return NULL;
}

int gw_req_is_background(const struct gw_req *rq) { return rq->c->bg; }
