/*
 * core/conn_int.h: the core-private layouts of a client connection
 * (struct gw_conn), its request (struct gw_req), its upstream connection
 * (struct upconn) and the worker's pool, and the friend calls the pieces of
 * the connection engine make on each other (HAProxy's -t.h role, Varnish's
 * FOO__bar friends).  Only conn.c, req.c, upstream.c and relay.c include it;
 * everything else sees struct gw_req through core/proto.h (conn_sink.c and
 * bgreq.c, the connection's sink and background requests, include it too).
 *
 * The pieces: conn.c (the HTTP/1 client connection), req.c (the family API
 * of proto.h and the request's life), upstream.c (the upstream engine),
 * relay.c (byte movers), on top of the leaves http1_out.c, arena.c and
 * httpdate.c.  upstream.c reports to the connection only through the sink
 * of core/upstream.h (conn.c implements it); conn.c calls the engine's
 * entry points there and the few gw_upstream__* internals declared here.
 */
#ifndef GW_CONN_INT_H
#define GW_CONN_INT_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"
#include "core/arena.h"
#include "core/http1.h"
#include "core/http1_out.h"
#include "core/proto.h"
#include "core/relay.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/upstream.h"
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

enum cstate { CS_HANDSHAKE, CS_HEAD, CS_BUSY, CS_TUNNEL, CS_LINGER, CS_CLOSED, CS_PEEK };
enum decision { DEC_NONE, DEC_PROXY, DEC_TUNNEL, DEC_RESPOND, DEC_FILE, DEC_DEFER, DEC_READBODY, DEC_PEEK,
	DEC_TLS_SERVE };
enum cto { TO_IDLE, TO_HEADER, TO_BODY, TO_SEND, TO_TUNNEL, TO_LINGER, TO_FIRST, TO_DNS, TO_PEEK };

struct upconn;

union gw_sa {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct gw_req {
	struct gw_conn *c;         /* the HTTP/1 client connection (not seen by upstream.c) */
	/* the exchange's context, all upstream.c knows of who asked: the
	 * worker, the snapshot, the family, its side, and the sink it reports
	 * to (conn_sink.c's gw_conn_sink with sink_arg = the connection) */
	struct gw_worker *w;
	struct gw_snapshot *snap;
	const struct gw_proto *proto;
	void *side;
	const struct gw_sink *sink;
	void *sink_arg;
	struct gw_upowner *owner;  /* may own private upstream connections; NULL = never */
	struct upconn *up;         /* the upstream connection of this exchange, or NULL */
	int tunnel;                /* the exchange became a tunnel (sink->on_tunnel) */
	struct gw_arena_blk *arena;
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
	struct gw_hdr_edit *req_edits, *resp_edits;
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
	int oom;                   /* an arena allocation failed: the request fails with 503 */
	int oom_503;               /* ... and that 503 is under way (a second failure closes) */
	int resp_http10;           /* upstream answered HTTP/1.0 */
	int resp_conn_close;       /* upstream said Connection: close */
	int resp_ended;            /* on_response_end was called */
	int interim;               /* 1xx responses read for this request (MAX_INTERIM) */
	/* gw_req_tunnel_via: the CONNECT sent to the parent ("host:port" and
	 * extra header lines, arena); tun_wait while its answer is awaited */
	char *tun_target, *tun_extra;
	size_t tun_extra_len;
	int tun_wait, tun_ok;
	/* protocol = "h2" (gw_req_upstream_h2): the exchange goes on an HTTP/2
	 * session (core/h2_client.c); trailers beside the body: the h2
	 * upstream's response trailers for the sink (arena, at most
	 * GW_TRAILERS_MAX; an HTTP/2 client's request trailers stay on its
	 * stream: gw_h2_req_trailers) */
	int up_h2;
	double up_ping_iv, up_ping_to;   /* gw_req_upstream_h2_ping: 0 = defaults, iv < 0 = off */
	struct gw_hdr *up_trailers;
	int up_trailers_n;

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
	/* who asked: the TCP peer (the connection's, or a background
	 * request's copy of its parent's), and whether on TLS */
	const union gw_sa *peer;
	int tls;
	/* gw_req_spawn: a background request (no client connection); the
	 * worker's list of them (struct gw_pool), its whole-exchange bound */
	int bg;
	struct gw_req *bg_next, *bg_prev;
	struct event *ev_bg;       /* (arena) */
	double bg_timeout;
	/* on_response_filter (gw_req_filter_response): the de-framed body
	 * waiting for the filter, what it emitted, and the sink's side of
	 * the framing (a close-delimited body: its end is the last emit) */
	int filtering, filt_held, filt_last_given, filt_last_emitted;
	struct evbuffer *filt_in, *filt_out;
	struct event *filt_wake;   /* gw_req_output_wake: made active once the client drains */
	/* gw_req_filter_hold_head: the sink keeps the rendered head in
	 * filt_head until the filter's first emit (or last); filt_newhead
	 * (arena copy) replaces it when the filter gave one */
	int filt_hold_head;
	struct evbuffer *filt_head;
	char *filt_newhead;
	size_t filt_newhead_len;
	struct xfer fx;
	/* an HTTP/2 stream's request (core/h2.c): its stream, NULL for HTTP/1 */
	struct gw_h2s *h2s;
	/* TLS inspection (core/conn_bump.c): gw_req_peek (the 200 went out
	 * and the client's first bytes are looked at), gw_req_tunnel_tls (the
	 * upstream's TLS handshake goes to on_tunnel_tls), gw_req_tls_serve
	 * (references held until the request is freed; strings in the arena) */
	int peeked, tunnel_tls;
	size_t peek_max;
	double peek_timeout;
	SSL_CTX *srv_ctx;
	X509 *srv_cert;
	EVP_PKEY *srv_key;
	char *srv_host, *srv_tag;
	uint16_t srv_port;
	int srv_h2;                     /* gw_req_tls_serve_h2: the client may get h2 */
	unsigned char up_alpn[12];      /* gw_req_upstream_alpn: the upstream handshake's */
	size_t up_alpn_len;             /* ALPN list (0: its context's, http/1.1) */
	/* a CONNECT inspected inside a TLS connection or an HTTP/2 stream
	 * (core/conn_nest.c): nest_relay marks the outer exchange that only
	 * carries its bytes (neither logged nor counted: the CONNECT moved to
	 * the inner connection is); nest_h2: that CONNECT came on a stream */
	int nest_relay, nest_h2;
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
	struct tsplice *sp;        /* plain tunnel moving bulk data: its pipes */
	size_t parsed_len;         /* buffered head bytes at the last parse attempt */
	struct gw_conn *next, *prev;
	union gw_sa peer;          /* text made on demand (peer_fmt) */
	unsigned rd_on : 1, rd_armed : 1, wr_on : 1, rd_eof : 1, wr_shut : 1, head_started : 1;
	unsigned rd_big : 2;       /* buf_read's *big */
	unsigned up_paused : 1;    /* upstream reading paused: our output is full */
	unsigned unlisted : 1;     /* a reload removed its listener: close after this request */
	unsigned h2c_ok : 1;       /* h2c listener: the first bytes may be the HTTP/2 preface */
	struct gw_h2 *h2;          /* HTTP/2 (core/h2.c) runs this connection; NULL = HTTP/1 */
	struct gw_upowner upo;     /* owner of private upstream connections (pool_private) */
	void *fam_data;            /* gw_req_set_conn_data (freed with the connection) */
	void (*fam_data_free)(void *);
	/* an inspected CONNECT turned TLS server (core/conn_bump.c): the
	 * authority its requests go to, the family's tag (malloc'd) */
	char *bump_host, *bump_tag;
	uint16_t bump_port;
	int bump_up_h2;                 /* the origin's check handshake chose h2 */
};

/* The body framing a sink reads (src of its on_body): the upstream's, or,
 * for a filtered response, the filter's output (close-delimited). */
#define GW_SINK_XFER(rq) ((rq)->filtering ? &(rq)->fx : &(rq)->respx)

/* The client connection's upstream connection (that of its request). */
static inline struct upconn *conn_up(const struct gw_conn *c)
{
	return c->rq != NULL ? c->rq->up : NULL;
}

struct upconn {
	uint32_t magic;
	int fd;
	struct gw_worker *w;
	struct gw_req *rq;         /* the exchange it serves, NULL when pooled */
	int *dead;                 /* set to 1 when freed (a callback's liveness flag) */
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
	struct gw_upowner *owner;
	unsigned kh;               /* key_hash32(key) */
	unsigned keepalive;        /* idle connections of its key that may be pooled */
	struct upconn *pnext, *pprev;
	/* an HTTP/2 stream's translated connection (core/h2_client.c): no
	 * socket (fd -1), never pooled; NULL for a real connection */
	struct gw_h2_client_strm *h2s;
};

#define GW_TRAILERS_MAX 32

#define POOL_BUCKETS 256
/* idle connections per key and worker when the family says nothing (as
 * reverse.upstreams.keepalive's default) */
#define POOL_KEEPALIVE 32
/* idle counts per key hash: keys that share a slot share a bound, which
 * only costs reuse */
#define POOL_CSLOTS 4096

#define SPARE_BUFS 128

struct gw_pool {
	struct upconn *b[POOL_BUCKETS];
	size_t n;
	uint32_t kcount[POOL_CSLOTS];   /* idle connections per key hash slot */
	/* empty evbuffers given back by idle client connections, for reuse */
	struct evbuffer *spare[SPARE_BUFS];
	int nspare;
	/* standard arena blocks of finished requests, for reuse (a malloc of
	 * this size is no tcache hit) */
	struct gw_arena_spares blks;
	/* the worker's background requests (gw_req_spawn, core/conn.c) */
	struct gw_req *bg;
	/* the worker's HTTP/2 upstream sessions (core/h2_client.c) */
	struct gw_h2_client *h2c;
};

/* ---- small helpers of both ends ---- */

static inline void set_timer(struct event *ev, double secs)
{
	gw_timer_set(ev, secs);   /* (core/worker.c: common timeouts) */
}

static inline const struct conf_timeouts *TO(struct gw_conn *c)
{
	return &c->snap->conf->global.timeouts;
}

static inline const struct conf_timeouts *RTO(const struct gw_req *rq)
{
	return &rq->snap->conf->global.timeouts;
}

/* ---- friend calls ---- */

/* conn.c: the client connection. */
/* The only way out: logs the request in flight, releases everything and
 * frees c from a deferred event; callers check c->state == CS_CLOSED. */
void gw_conn__close(struct gw_conn *c, enum gw_close_reason why);
/* Write pending output (EV_WRITE when the kernel is full), then move the
 * state machine on (finish the request, release backpressure, pump a tunnel). */
void gw_conn__write(struct gw_conn *c);
/* (Re)arm c's timer for kind. */
void gw_conn__timer(struct gw_conn *c, enum cto kind);
/* Carry out the family's decision for rq (conn.c's dispatch). */
void gw_conn__dispatch(struct gw_conn *c, struct gw_req *rq);

/* conn_bump.c: an inspected CONNECT (peek, upstream TLS, TLS server). */
void gw_conn_bump__start(struct gw_conn *c, struct gw_req *rq);   /* DEC_PEEK */
void gw_conn_bump__peek(struct gw_conn *c);                       /* CS_PEEK: bytes came */
void gw_conn_bump__peek_timeout(struct gw_conn *c);               /* TO_PEEK */
void gw_conn_bump__tunnel(struct gw_req *rq);    /* sink on_tunnel of a peeked CONNECT */
void gw_conn_bump__error(struct gw_req *rq, int status, const char *reason);  /* ... on_error */
void gw_conn_bump__serve(struct gw_conn *c, struct gw_req *rq);   /* DEC_TLS_SERVE */
/* A request head read inside an inspected connection: made absolute-form
 * (https://host:port + its origin-form target).  0, or -1 out of memory;
 * *bad set (and the head left) for a head in another form. */
int gw_conn_bump__absolute(struct gw_conn *c, struct gw_req *rq, const char **bad);
/* An HTTP/2 stream's head inside one (core/h2.c): its :authority must be
 * the CONNECT's host (or TLS name) and port (else 421), then as above.
 * 0, or the status to answer with *why. */
int gw_conn_bump__stream(struct gw_conn *c, struct gw_req *rq, const char **why);
/* conn_nest.c: an inspected CONNECT (DEC_PEEK) that came over TLS (c->ssl)
 * or on an HTTP/2 stream: it moves to a new plain client connection on one
 * end of a socketpair, which peeks and inspects as on a plain listener; the
 * outer connection or stream tunnels to the other end.  Answers the
 * CONNECT (503) itself when that cannot be made. */
void gw_conn_nest__h1(struct gw_conn *c, struct gw_req *rq);
void gw_conn_nest__h2(struct gw_req *rq);
/* conn.c: that inner connection on fd (outer's peer, listener and family;
 * counted against max_conns and the per-client limit); NULL when over a
 * limit or out of memory (fd is the caller's then). */
struct gw_conn *gw_conn__nested(const struct gw_conn *o, struct gw_snapshot *snap, void *side, int fd);
/* conn_bump.c: c takes rq (DEC_PEEK, its 200 sent by the outer side) and
 * peeks at the client's first bytes. */
void gw_conn_bump__peek_begin(struct gw_conn *c, struct gw_req *rq);
/* upstream.c: rq's tunnel to fd, a local socket (what names it in the
 * log); the sink's on_tunnel runs.  -1 out of memory (fd is the caller's). */
int gw_upstream__local(struct gw_req *rq, int fd, const char *what);
/* upstream.c: h carries credentials that bind the connection (NTLM ...). */
int gw_upstream__conn_bound(const struct gw_http_head *h);
/* upstream.c: a is one of v's addresses (address and port). */
int gw_upstream__addr_vetted(const struct gw_dns_result *v, const union gw_sa *a);
/* What the family decided after the 200 (dispatch() hands over all but a
 * tunnel, a deferral and the TLS server, which it carries out). */
void gw_conn_bump__decided(struct gw_conn *c, struct gw_req *rq);
void gw_conn_bump__free(struct gw_conn *c);
void gw_req_bump__free(struct gw_req *rq);

/* Send rq's local response (DEC_RESPOND or DEC_FILE). */
void gw_conn__send_local(struct gw_req *rq);
/* Answer rq with a generated error page (closing after it for most statuses). */
void gw_conn__respond_error(struct gw_req *rq, int status, const char *reason);
/* conn_sink.c: the HTTP/1 connection's sink (struct gw_sink), the sink
 * of its requests. */
extern const struct gw_sink gw_conn_sink;
/* Move request body bytes from the client to the upstream. */
void gw_conn_sink__pump_body(struct gw_conn *c);

/* bgreq.c: background requests (gw_req_spawn). */
/* Carry out the family's decision for a background request (also after
 * its gw_req_wake). */
void gw_bgreq__dispatch(struct gw_req *rq);
/* Cut a background request before its end (timeout, shutdown). */
void gw_bgreq__cancel(struct gw_req *rq, enum gw_close_reason why);
/* Move tunnel bytes both ways, with half-close and backpressure. */
void gw_conn__tunnel_pump(struct gw_conn *c);
/* rq ran out of memory (rq->oom): answer 503 if nothing was sent yet and
 * the page can be made, else close the connection (GW_CLOSE_INTERNAL). */
void gw_conn__oom(struct gw_req *rq);

/* req.c: the request's life. */
/* A new request on c (arena from the worker's spares), or NULL. */
struct gw_req *gw_req__new(struct gw_conn *c);
/* A new request without a client connection (background), or NULL. */
struct gw_req *gw_req__new_bare(struct gw_worker *w, struct gw_snapshot *snap,
    const struct gw_proto *proto, void *side);
/* Run the family's end hooks, count and log rq, then free it (or leave it
 * to gw_req_wake when deferred). */
void gw_req__log_free(struct gw_req *rq);
/* Free rq and everything it holds. */
void gw_req__free(struct gw_req *rq);
/* The TO_BODY timer's length for rq's body (client_body, or sooner under
 * client_body_min_rate: then rq->body_slow is set). */
double gw_req__body_timeout(struct gw_req *rq, const struct conf_timeouts *t);
/* rq's upstream latency label (a gw_hist slot). */
int gw_req__metric_up(struct gw_req *rq);
/* An address's numeric form (IPv4-mapped IPv6 as IPv4) into buf
 * (INET6_ADDRSTRLEN bytes); returns buf. */
char *gw_req__sa_fmt(const union gw_sa *sa, char *buf);

/* The TCP peer's numeric address into buf; returns buf. */
static inline char *peer_fmt(const struct gw_conn *c, char *buf)
{
	return gw_req__sa_fmt(&c->peer, buf);
}

/* upstream.c: the upstream engine's internals the HTTP/1 connection
 * (its sink, in conn.c) uses for tunnels and for the request body it
 * pumps itself; the engine's entry points are in core/upstream.h. */
/* Write pending bytes to the upstream; then, for an exchange whose sink
 * has on_sent, hands over to it (backpressure release, tunnel pumping). */
void gw_upstream__write(struct upconn *u);
/* Arm or disarm u's write event for left bytes still to send. */
void gw_upstream__arm_write(struct upconn *u, size_t left);
/* Free an upstream connection (not pooled). */
void gw_upstream__free(struct upconn *u);
/* Pool u as idle (or close it when over the bounds). */
void gw_upstream__pool_put(struct gw_worker *w, struct upconn *u);
/* For core/h2_client.c: a socket-less connection for rq (rq->up), its
 * bytes translated to an HTTP/2 stream; NULL out of memory. */
struct upconn *gw_upstream__virtual(struct gw_req *rq);
/* ... rq's connection is ready: the engine sends the request. */
void gw_upstream__ready(struct gw_req *rq);
/* ... rq failed at stage (GW_UPFAIL_*): the family's retry, else status. */
void gw_upstream__stage_failed(struct gw_req *rq, int stage, int status, const char *reason);

#endif
