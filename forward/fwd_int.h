/*
 * forward internals: what the files of the forward side share and nobody
 * else may see (only for the forward/ sources).  forward/forward.c holds the
 * request flow (fwd_rq_decide, proxying, the gw_proto callbacks and the
 * per-snapshot data); forward/fwd_login.c checks Proxy-Authorization.
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

#endif
