/*
 * forward internals: what the files of the forward side share and nobody
 * else may see (only for the forward/ sources).  forward/forward.c holds the
 * request flow (fwd_rq_decide, proxying, the gw_proto callbacks and the
 * per-snapshot data); forward/fwd_login.c checks Proxy-Authorization;
 * forward/fwd_scan.c holds bodies for scanning and runs DLP on requests;
 * forward/fwd_proxy.c cleans the headers and sends a request on.
 * Each function here was a static of forward.c before the split: the
 * prefix is the only change.
 */
#ifndef GW_FWD_INT_H
#define GW_FWD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/proto.h"
#include "core/snapshot.h"
#include "forward/auth.h"
#include "forward/decide.h"
#include "forward/forward.h"
#include "forward/sso.h"

#define FWD_MAGIC 0x46574431u   /* "FWD1" */

struct fwd_data {
	uint32_t magic;
	struct fwd_policy *policy;
	const struct conf *cf;
	struct fwd_decider dc;    /* what fwd_decide() reads: policy, cf, auth */
	/* auth (all NULL when forward.auth is absent) */
	struct fwd_auth_db *db;
	struct fwd_auth_cache *cache;
	struct fwd_auth_backoff *backoff;
	struct fwd_auth_pool *pool;
	struct fwd_sso *sso;      /* schemes offered, Negotiate (forward/sso.h) */
	/* DLP: NULL when off or without detectors */
	struct fwd_dlp *dlp;
	/* per worker, made on its first scan: scans run to the end within one
	 * callback, so a worker never needs two at once */
	struct fwd_dlp_views *views[GW_MAX_WORKERS];
	/* forward.parent: per address, until when (gw_mono_now) it is skipped
	 * after a failed connect (passive health; a reload starts afresh) */
	_Atomic double *parent_down;
	/* forward.parent.auth as a Proxy-Authorization value ("" = none) */
	char parent_auth[700];
	size_t parent_auth_len;
	/* forward.inspect's CA; NULL without forward.inspect */
	struct fwd_ca *ca;
	/* TLS inspection; NULL when off */
	struct fwd_inspect *insp;
	/* PAC text; NULL without forward.pac */
	char *pac;
	size_t pac_len;
	/* ICAP (forward.icap): NULL without services; the respmod plan (a chain) of
	 * each rule (-1 none; fwd_icap_plan) and of forward.icap_default */
	struct fwd_icap *icap;
	int *rule_resp, def_resp;
	int *rule_req, def_req;   /* the same for reqmod */
	/* hit counters of rules 0..nrules-1, then of "no match" (see hit_slot) */
	size_t nrules;
	struct hit_slot **hits;
};

/* A Basic check waiting for the auth pool (fwd_login.c), in the request's
 * data slot until auth_wake(); on_done() cancels it when the client left. */
struct auth_req {
	struct fwd_auth_job job;    /* first: the pool hands it back */
	struct fwd_data *d;
	struct gw_req *rq;
	long ui;
	int result;                 /* 1 ok, 0 bad, -1 cancelled, -2 backing off, -3 too many in flight */
	int began;                  /* fwd_auth_backoff_begin said GO: _end is owed */
	double wait, t0;
	struct sockaddr_storage client;
	char user[FWD_AUTH_USER_MAX + 1];
};

/* Count event c on rq's worker (the process-wide forward counters). */
void fwd_count(struct gw_req *rq, enum fwd_counter c);

/* Printable, bounded copy of s (NULL: "") into out[cap] for events and
 * the error log: control and non-ASCII bytes become '?'. */
void fwd_printable(char *out, size_t cap, const char *s);

/* Decide rq with who is signed in (NULL: nobody) and act on the verdict
 * (forward.c; cred: what happened to the credentials, wait: the backoff
 * left).  Answers, defers or proxies rq; d is borrowed. */
void fwd_rq_decide(struct gw_req *rq, struct fwd_data *d, const struct fwd_who *who, enum fwd_cred cred,
    double wait);

/* A users-file user (index ui of d's users file) as a signed-in who,
 * filled into *who (borrowing d's strings); returns who. */
const struct fwd_who *fwd_login_db_who(const struct fwd_data *d, long ui, struct fwd_who *who);

/* Worker thread: a directory lookup's outcome (a fwd_sso_groups callback;
 * arg is the struct fwd_data): decides rq again. */
void fwd_login_dir_resume(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred);

/* Credentials pa present and the policy can use them (Negotiate, Basic
 * against the users file or the directory): returns 1 when the request
 * was decided or deferred (it resumes in fwd_rq_decide()), 0 to go on
 * without a user. */
int fwd_login_check(struct gw_req *rq, struct fwd_data *d, const struct gw_hdr *pa);

/* The core pumps a whole read (<= 256 KiB) into the body buffer, and the
 * read that brought the head may carry as much body again: a chunked body's
 * buffer can pass the limit given to gw_req_read_body() by this much. */
#define FWD_SCAN_SLACK (512u * 1024)

/* A request that goes to ICAP: its state in the data slot, tagged with
 * FWD_ICAP_TAG, holding what the slot held otherwise (inner: a scan_hold). */
struct rq_icap {
	void *inner;
	int resp, req;             /* respmod and reqmod services (-1 none) */
	struct fwd_icap_tx *tx;    /* the response's exchange */
	struct fwd_icap_tx *rtx;   /* the upload's */
	struct fwd_data *d;
	uint64_t held;             /* scan memory reserved for the held response */
	char server_ip[48];
};
#define FWD_ICAP_TAG ((uintptr_t)2)

/* Bodies held for scanning (DLP, REQMOD, held RESPMOD responses), in
 * bytes, over every worker and generation (forward/fwd_scan.c). */
extern _Atomic uint64_t fwd_scan_held;

struct scan_hold;

/* rq's ICAP state (the data slot tagged FWD_ICAP_TAG), or NULL. */
struct rq_icap *fwd_scan_icap_of(struct gw_req *rq);

/* The data slot as forward/ sees it (through rq_icap when there is one). */
void *fwd_scan_slot_get(struct gw_req *rq);

/* The scan_hold in a data slot value, or NULL when it holds something else. */
struct scan_hold *fwd_scan_hold_of(void *slot);

/* Bytes the held body of h can reach with a cut at max + 1. */
uint64_t fwd_scan_need(const struct gw_http_head *h, uint64_t max);

/* Reserve want bytes of scan memory (at most the whole budget) for rq, in
 * its data slot: 0, or -1 when the budget is spent (nothing reserved). */
int fwd_scan_reserve(struct gw_req *rq, const struct fwd_data *d, uint64_t want);

/* Keep at most keep bytes of rq's reservation (0: give it all back). */
void fwd_scan_trim(struct gw_req *rq, uint64_t keep);

/* DLP on rq's head (path, query, header values): returns 1 when rq was
 * answered (blocked), 0 to go on. */
int fwd_scan_head(struct gw_req *rq, struct fwd_data *d);

/* The gw_proto on_body callback (side: the struct fwd_data): DLP on the
 * held upload, then fwd_proxy_upload(). */
void fwd_scan_on_body(struct gw_req *rq, const char *data, size_t len, int complete, void *side);

/* Request-owned copy of s (NULL on out of memory). */
char *fwd_rq_strdup(struct gw_req *rq, const char *s);

/* Lower-cased request-owned copy of h's target host (NULL on out of memory). */
char *fwd_host_lc(struct gw_req *rq, const struct gw_http_head *h);

/* What the request asked for, for block pages and events (request-owned;
 * "-" on out of memory). */
const char *fwd_req_url(struct gw_req *rq, const struct gw_http_head *h);

/* fwd_printable() for a URL shown to the console: its query string is left out. */
void fwd_printable_url(char *out, size_t cap, const char *url);

/* Answer rq 403 with the block page naming url and reason (rule: the
 * access log's rule=, borrowed for rq's life); log it, tell the console. */
void fwd_deny_url(struct gw_req *rq, struct fwd_data *d, const char *rule, const char *reason,
    const char *url);

/* fwd_deny_url() with the request's own URL. */
void fwd_deny(struct gw_req *rq, struct fwd_data *d, const char *rule, const char *reason);

/* After DLP (if any): the upload (data, len; complete: the whole body) to
 * the reqmod service, else proxied. */
void fwd_proxy_upload(struct gw_req *rq, struct fwd_data *d, const char *data, size_t len, int complete);

/* Header hygiene (the proxy's own credentials out; forward.anonymize, else
 * X-Forwarded-For), then rq proxied: to a parent (forward.parent) or to
 * its target, inspected when it came inside an inspected CONNECT
 * (forward/fwd_proxy.c). */
void fwd_proxy(struct gw_req *rq, struct fwd_data *d);

/* 1 when a request for h goes through forward.parent (pure on the config,
 * so every caller gives the same answer), else 0. */
int fwd_proxy_via_parent(const struct fwd_data *d, const struct gw_http_head *h);

/* The first parent from index from on that is not being skipped after a
 * failed connect; when all are, the one at from.  naddrs when from is past
 * the end. */
size_t fwd_proxy_parent_pick(const struct fwd_data *d, size_t from);

/* Send rq to parent i (absolute-form, or a CONNECT to the parent first). */
void fwd_proxy_to_parent(struct gw_req *rq, struct fwd_data *d, size_t i);

#endif
