/*
 * forward/icap internals: the layouts the files of the ICAP client share
 * (only for forward/icap*.c).  forward/icap.c runs the exchanges (the pool,
 * the RESPMOD/REQMOD state machine and the hooks); forward/icap_svc.c
 * compiles a snapshot's services and answers the console's questions about
 * them.  Moved out of icap.c unchanged.
 */
#ifndef GW_FWD_ICAP_INT_H
#define GW_FWD_ICAP_INT_H

#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/http1.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "forward/icap.h"
#include "forward/icap_conf.h"

#define HIWAT (256 * 1024)            /* body bytes waiting for the service before we hold */
#define READ_AT_ONCE (32 * 1024)      /* bytes per read of the service's socket, at most */
#define FLUSH_AT (32 * 1024)          /* a 200's body reaches the client in batches of this */
#define FLUSH_WAIT_US 1000            /* ... or after this long (microseconds) */
#define IDLE_MAX 16                   /* idle connections kept per worker and service */
#define DEFAULT_MAXCONN 100u          /* before OPTIONS said (c-icap's MaxServers*Threads is more) */

struct icap_conn {
	int fd;
	SSL *ssl;                  /* icaps: its TLS (NULL plain) */
	unsigned uses;
};

struct icap_tx_q;

/* One worker's view of a service (touched only on that worker). */
struct icap_wsvc {
	int have_opts;
	double opts_until;         /* gw_mono_now() when OPTIONS are stale */
	long preview;              /* -1: none */
	int allow204;
	unsigned max_conns;
	char ignore[256], complete[256];   /* Transfer-Ignore / -Complete lists */
	struct icap_conn idle[IDLE_MAX];
	int nidle;
	unsigned busy;             /* connections in use */
	struct fwd_icap_tx *wait_head, *wait_tail;   /* waiting for a connection */
};

struct icap_svc {
	const struct conf_fwd_icap *c;
	SSL_CTX *tls;              /* icaps: the client context (NULL plain, or the CA failed) */
	char tls_err[160];         /* why it failed */
	struct sockaddr_storage sa;
	socklen_t salen;
	char authority[80];
	struct icap_wsvc *w[GW_MAX_WORKERS];
	_Atomic uint64_t n[FWD_ICAP_C_COUNT];
	_Atomic int health;
	_Atomic unsigned istag_gen;
	char istag[72];            /* written by any worker: read with istag_gen (seqlock) */
};

/* A list's services of one method, run in order (respmod: each on the
 * previous one's output; reqmod: one). */
#define CHAIN_MAX FWD_ICAP_CHAIN_MAX
struct icap_plan {
	int n;
	int svc[CHAIN_MAX];
};

struct fwd_icap {
	size_t n;
	struct icap_svc *s;
	unsigned nworkers;
	struct icap_plan *plans;   /* room for every list of the snapshot (see fwd_icap_plan) */
	size_t nplans, plans_cap;
};

enum tx_state {
	TX_WAIT,      /* for a connection */
	TX_CONNECT,   /* connecting */
	TX_OPTIONS,   /* OPTIONS sent, reading its answer */
	TX_PREVIEW,   /* RESPMOD head sent; the preview goes when there is enough body */
	TX_WAIT100,   /* preview sent without ieof: waiting for 100 or a final answer */
	TX_SEND,      /* the body goes as it comes */
	TX_SENT       /* all sent: waiting for the answer */
};

struct fwd_icap_tx {
	struct fwd_icap *ic;
	struct icap_svc *s;
	struct icap_wsvc *ws;
	struct gw_req *rq;
	struct event_base *base;
	enum tx_state st;
	int fd;
	SSL *ssl;                   /* icaps: the connection's TLS */
	int handshaking;
	int reused, retried, have_ev;
	struct event ev_rd, ev_wr, ev_to, ev_go;
	struct event ev_bp;         /* replaying a 200 to a full client: look again later */
	struct event ev_flush;      /* a 200's body short of FLUSH_AT waits at most FLUSH_WAIT_US */
	size_t unflushed;           /* relayed to the client's output, not yet flushed */
	struct evbuffer *out, *in, *orig;
	char *heads;                /* encapsulated req-hdr + res-hdr */
	size_t req_len, res_len;
	char server_ip[48];
	uint64_t total, sent;       /* body bytes seen, and queued to the service */
	long preview;               /* this exchange's preview size, -1 none */
	int body_last, term_sent, ieof;
	int verdict;                /* 0 pending, 204, 200 */
	int passing;                /* original relayed: the filter emits what comes */
	int discard;                /* the answer is complete: the filter drops what comes */
	int replying, resp_done, conn_close, emitted_last, held;
	struct gw_chunked ck;
	struct fwd_icap_tx *wnext;
	int queued;
	/* a chain (respmod): the plan, this exchange's place in it, the next
	 * service's exchange (started at this one's verdict: it reads this
	 * one's output), the previous one's; the access log's note so far */
	const struct icap_plan *plan;
	int pos;
	struct fwd_icap_tx *next, *prev;
	const char *note;
	int sock_err;               /* socket()/connect() failed at once: tx_go reports it */
	/* the server's address: the service's, or (a name) what the worker's
	 * resolver answered for this exchange */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int have_addr;
	struct gw_dns_query *dnsq;
	const char *dns_err;        /* resolving failed at once: tx_go reports it */
	/* REQMOD: the request waits (gw_req_defer) for the outcome; fin runs
	 * through gw_req_wake once it is decided */
	int reqmod, decided, woken, req_reply;
	enum fwd_icap_outcome outcome;
	int page_status;
	char page_type[128];
	struct evbuffer *reply;     /* a 200's encapsulated body (REQMOD) */
	struct gw_http_head qh;     /* a REQMOD 200's request head (parsed, in rq's arena) */
	void (*fin)(struct gw_req *rq, void *arg);
};

#define REPLY_MAX (1024 * 1024)   /* a REQMOD answer's page kept at most (a request body: max_body_bytes) */
#define REWRITE_GROWTH (64 * 1024) /* a rewritten request body is at most this longer than the upload */
#define QHDRS_MAX 128              /* header fields of a rewritten request, at most */

/* bump a service's counter (any worker) */
static inline void bump(struct icap_svc *s, enum fwd_icap_counter c)
{
	atomic_fetch_add_explicit(&s->n[c], 1, memory_order_relaxed);
}

struct evbuffer;
struct fwd_icap_msg;

/* forward/icap.c: the exchange's steps the answers take (each was a
 * static there; see its comment in icap.c) */
void fwd_icap_decide_req(struct fwd_icap_tx *tx, enum fwd_icap_outcome o);
int fwd_icap_out_emit(struct fwd_icap_tx *tx, const void *p, size_t n, int last);
void fwd_icap_out_emit_buffer(struct fwd_icap_tx *tx, struct evbuffer *src, size_t n);
int fwd_icap_chain_next(struct fwd_icap_tx *tx, const char *res, size_t rl);
void fwd_icap_pass_original(struct fwd_icap_tx *tx);
void fwd_icap_local_page(struct fwd_icap_tx *tx, int status, const char *title, const char *text);
void fwd_icap_conn_close(struct fwd_icap_tx *tx);
void fwd_icap_wake_waiter(struct icap_wsvc *ws);

/* forward/icap_answer.c */
/* The OPTIONS answer h taken into this worker's view of the service: 0,
 * -1 not 200, -2 the method is not offered. */
int fwd_icap_answer_options(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h);
/* A rewritten upload over its limit: decided per on_oversize. */
void fwd_icap_answer_oversize(struct fwd_icap_tx *tx);
/* Relay what there is of a 200's body: 0, -1 framing (or a page over
 * REPLY_MAX), -2 a rewritten request body over its limit. */
int fwd_icap_answer_relay(struct fwd_icap_tx *tx);
/* A final answer head h (204 or 200): 1 to resume, 0 need more, -1 failed. */
int fwd_icap_answer_took(struct fwd_icap_tx *tx, const struct fwd_icap_msg *h);

#endif
