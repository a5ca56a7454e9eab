/*
 * forward/directory: the LDAP directory of forward.auth.ldap (OpenLDAP's
 * libldap; Active Directory or OpenLDAP servers): a user's groups, Basic
 * passwords checked by binding as the user, and the groups cache.
 *
 * Directory work never runs on a worker loop: libldap's synchronous calls,
 * bounded by forward.auth.ldap.timeout (LDAP_OPT_NETWORK_TIMEOUT for the
 * connect, LDAP_OPT_TIMEOUT and the search's own limit for each answer),
 * run on a small thread pool of the directory's own (two threads), so a
 * directory that hangs holds those threads and not the password hashing
 * of core/jobs.  Connections are pooled (one per thread, bound as bind_dn,
 * kept open), tried in the order of `uris` (an address that failed is
 * skipped for FWD_DIR_DOWN_SECS while another one works).  A Basic password
 * is checked on a connection of its own (bound as the user, then closed):
 * a pooled connection never changes identity.
 *
 * Values from users go into filters escaped per RFC 4515
 * (ldap_bv2escaped_filter_value): no filter injection.  Groups are
 * reported by name (the first RDN's value: "devs" of "cn=devs,ou=groups,
 * dc=corp,dc=example") and by DN, so policy `groups` may use either.
 *
 * The cache (any thread, one mutex): user -> groups for cache_ttl; a user
 * the directory does not know for negative_ttl.  An expired entry is kept:
 * when the directory cannot be reached its groups are used (stale).
 *
 * Ownership: one struct fwd_directory per config snapshot (the forward
 * data's); jobs are the caller's (embedded) except between submit and done.
 */
#ifndef GW_FORWARD_DIRECTORY_H
#define GW_FORWARD_DIRECTORY_H

#include <stddef.h>

#include "core/jobs.h"
#include "forward/auth.h"
#include "forward/fwd_conf.h"

#define FWD_DIR_DOWN_SECS 30.0     /* a URI that failed is tried last for this long */
#define FWD_DIR_MAX_GROUPS 1000    /* groups kept per user (nesting expanded up to this) */

struct fwd_directory;
struct gw_req;

/* From forward.auth.ldap c (present): reads bind_password_file; NULL with
 * a message in err when it cannot be read or is empty, or out of memory.
 * Connects to nothing yet (a directory that is down must not stop a start). */
struct fwd_directory *fwd_directory_new(const struct conf_fwd_ldap *c, char *err, size_t errlen);
/* Cancel the queued jobs (done gets -1), wait for the running ones (at
 * most the timeout), close the connections, free.  NULL is fine. */
void fwd_directory_free(struct fwd_directory *d);

enum fwd_dir_cache {
	FWD_DIR_MISS,      /* nothing cached: ask the directory */
	FWD_DIR_FRESH,     /* cached within its TTL */
	FWD_DIR_STALE,     /* cached, expired: ask again; usable if the directory is down */
};

/*
 * The cached groups of user at now: copies them into rq's arena (*groups,
 * *n; *n = 0 for a user the directory does not know: *known = 0).  Returns
 * what was found; the copy is made for FRESH and STALE.  rq NULL: only the
 * state (tests, the console).
 */
enum fwd_dir_cache fwd_directory_cached(struct fwd_directory *d, const char *user, double now,
    struct gw_req *rq, const char *const **groups, size_t *n, int *known);

/*
 * The cached groups of user (fresh or stale) for the console: a
 * NULL-terminated array of strings in one malloc'd block (free() it once),
 * *n of them, *stale set when expired; NULL when nothing is cached for
 * user (*known then tells a cached "not in the directory" apart: 0) or out
 * of memory.  Any thread.
 */
char **fwd_directory_groups_copy(struct fwd_directory *d, const char *user, double now, size_t *n,
    int *stale, int *known);

/* The kinds of directory work. */
enum fwd_dir_kind {
	FWD_DIR_GROUPS,    /* look up user's groups into the cache */
	FWD_DIR_BIND,      /* check pass by binding as user (found with user_filter) */
};

/*
 * One job.  The caller fills kind, user (and pass for BIND) and done, then
 * submits.  done(job, result) runs on a directory thread: 1 (GROUPS: found
 * and cached; BIND: the password is right), 0 (GROUPS: the directory does
 * not know the user, cached as such; BIND: unknown user or wrong password),
 * -2 (the directory cannot be reached, or answered an error: job->err),
 * -1 (cancelled).  done owns the job then, must not block, and must wipe
 * pass (OPENSSL_cleanse).
 */
struct fwd_directory_job {
	struct gw_job gj;                  /* private (the pool) */
	enum fwd_dir_kind kind;
	char user[FWD_AUTH_USER_MAX + 1];
	char pass[FWD_AUTH_PASS_MAX + 1];
	void (*done)(struct fwd_directory_job *job, int result);
	char err[300];
	double took;                       /* seconds the directory work took */
	struct fwd_directory *dir;         /* private */
	int result;                        /* private */
};

/* Queue job: 0, or -1 when the queue is full (done is then not called). */
int fwd_directory_submit(struct fwd_directory *d, struct fwd_directory_job *job);

/* Blocking forms of the jobs (tests, the console's sign-in on its own
 * thread): the same results as above. */
int fwd_directory_lookup(struct fwd_directory *d, const char *user, char *err, size_t errlen);
int fwd_directory_bind(struct fwd_directory *d, const char *user, const char *pass, char *err, size_t errlen);

/* "memberof", "posix" or "ad_nested": where the groups came from (the console). */
const char *fwd_directory_source(const struct fwd_directory *d);

/*
 * RFC 4515 filter for user: every "%s" of tmpl replaced by user escaped
 * ('*' '(' ')' '\\' NUL as \XX).  Returns a malloc'd string
 * or NULL (out of memory).  Pure.
 */
char *fwd_directory_filter(const char *tmpl, const char *user);

#endif
