/*
 * forward/sso: single sign-on on the forward side, the part between the
 * request and the mechanisms: which schemes a 407 offers (forward.auth.
 * schemes, in order), Negotiate requests (forward/negotiate.h accepts the
 * token on the job pool; the request is deferred meanwhile), and the
 * identity kept on the client connection once a token was accepted
 * (browsers send it once per connection, then requests without it).
 *
 * Who is signed in is a struct fwd_who: the user as authenticated ("alice"
 * from Basic, "alice@CORP.EXAMPLE" from Kerberos), the short name policy
 * `users` also match ("alice"), and the groups with where each list came
 * from.  forward.c decides with it (forward/decide.h).
 *
 * Ownership: struct fwd_sso belongs to the forward data of one snapshot;
 * the connection's identity is a malloc'd copy owned by the connection
 * (core/proto.h gw_req_set_conn_data), so it outlives a reload safely.
 */
#ifndef GW_FORWARD_SSO_H
#define GW_FORWARD_SSO_H

#include <stddef.h>

#include "core/http1.h"
#include "forward/decide.h"
#include "forward/fwd_conf.h"

struct gw_req;
struct fwd_auth_db;
struct fwd_auth_cache;
struct fwd_auth_backoff;
struct conf_errors;

/* Who is signed in.  Strings borrowed (the request's arena, the db). */
struct fwd_who {
	const char *user;              /* as authenticated, logged */
	const char *user_short;        /* a principal's name without "@REALM"; NULL for Basic users */
	const char *const *groups;
	size_t ngroups;
	size_t nfile;                  /* groups[0..nfile) from the groups file, the rest from the directory */
	const char *groups_from;       /* "forward.auth.groups_file", "ldap memberof", ... (the console) */
	int dir_done;                  /* the directory's groups were added (or there is none) */
};

struct fwd_sso;

/*
 * The SSO part of forward.auth au (present): the Negotiate acceptor when
 * "negotiate" is offered, the challenges.  db: the users/groups files
 * (borrowed; groups of a principal's short name are taken from it);
 * cache and backoff: the Basic ones (borrowed: passwords checked by binding
 * to the directory are cached and throttled like the users file's).  NULL
 * with the error reported to errs at forward.auth.kerberos's line.
 */
struct fwd_sso *fwd_sso_new(const struct conf_fwd_auth *au, const struct fwd_auth_db *db,
    struct fwd_auth_cache *cache, struct fwd_auth_backoff *backoff, struct conf_errors *errs);
void fwd_sso_free(struct fwd_sso *s);

/* Add the Proxy-Authenticate fields of a 407 to rq, one per scheme in the
 * configured order ("Negotiate", "Basic realm=..."). */
void fwd_sso_challenge(const struct fwd_sso *s, struct gw_req *rq);

/* 1 if Basic is offered (a Basic Proxy-Authorization is checked). */
int fwd_sso_basic(const struct fwd_sso *s);

/*
 * rq's client connection carries an identity from an earlier accepted
 * token: fills *who (strings in rq's arena; groups from the db) and
 * returns 1; else 0.
 */
int fwd_sso_conn_who(const struct fwd_sso *s, struct gw_req *rq, struct fwd_who *who);
/* A copy of a connection's sign-in (gw_req_set_conn_data) for the
 * connection an inspected CONNECT moves to (struct gw_proto.conn_data_dup). */
void *fwd_sso_conn_dup(const void *data, void (**free_fn)(void *data));

/*
 * resume: where a Negotiate check hands its outcome, on rq's worker: who
 * (cred FWD_CRED_OK) or NULL (FWD_CRED_BAD, FWD_CRED_BUSY); arg: the
 * caller's.  A Proxy-Authorization value pa: 0 if it is not Negotiate (nor NTLM): the
 * caller checks it (Basic).  Otherwise 1: rq is answered through resume,
 * at once (a malformed token, NTLM, Negotiate not offered: logged, BAD)
 * or, after gw_req_defer(), from the accept on the job pool.  An accepted
 * principal is also kept on rq's connection.
 */
int fwd_sso_negotiate(struct fwd_sso *s, struct gw_req *rq, const struct gw_hdr *pa,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg);

/* 1 if signed-in users get groups from the directory (forward.auth.ldap). */
int fwd_sso_directory(const struct fwd_sso *s);
/* That directory (NULL: none; s may be NULL). */
struct fwd_directory *fwd_sso_dir(const struct fwd_sso *s);

/*
 * Add the directory's groups of who (by user_short, else user) to *who
 * (a new list in rq's arena: the groups file's first) and set dir_done.
 * Returns 1 when done at once (cached: go on with *who), 0 when rq was
 * deferred: resume then gets the completed who and FWD_CRED_OK, or NULL
 * and FWD_CRED_DIR_DOWN when the directory cannot be reached and nothing
 * is cached for the user (a stale entry is used instead, logged).
 */
int fwd_sso_groups(struct fwd_sso *s, struct gw_req *rq, struct fwd_who *who,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg);

/*
 * Basic credentials of a user the users file does not have, when
 * forward.auth.ldap.basic_bind is on: 0 if not (the caller goes on), else
 * 1 and rq is answered through resume: from the Basic cache at once, or
 * after binding to the directory as the user (deferred): FWD_CRED_OK with
 * who, BAD (wrong or empty password, unknown user), BACKOFF/THROTTLED (the
 * per-client backoff), DIR_DOWN (the directory cannot be reached).  pass is
 * copied (the caller wipes its own).
 */
int fwd_sso_basic_bind(struct fwd_sso *s, struct gw_req *rq, const char *user, const char *pass,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg);

#endif
