/*
 * forward/sso: the 407's schemes, Negotiate requests and the identity kept
 * on the client connection (see sso.h).
 *
 * Why the identity lives on the connection: proxies get Negotiate once per
 * connection (browsers send the token after a 407 and later requests on
 * that connection without Proxy-Authorization, as with NTLM), and a CONNECT
 * carries it into its tunnel.  It is a small malloc'd copy of the principal:
 * the connection may outlive the snapshot that accepted it, and its groups
 * are looked up again per request (cheap; a reload's groups apply at once).
 */
#include "forward/sso.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/log.h"
#include "core/proto.h"
#include "forward/auth.h"
#include "forward/directory.h"
#include "forward/negotiate.h"

#include <openssl/crypto.h>

#define SSO_MAGIC 0x53534f31u   /* "SSO1" */

struct fwd_sso {
	uint32_t magic;
	const struct fwd_auth_db *db;      /* borrowed */
	struct fwd_auth_cache *cache;      /* borrowed: Basic's */
	struct fwd_auth_backoff *backoff;  /* borrowed: Basic's */
	struct fwd_negotiate *neg;         /* NULL: Negotiate not offered */
	struct fwd_directory *dir;         /* NULL: no forward.auth.ldap */
	int basic_bind;
	int basic;
	/* Proxy-Authenticate values, in the configured order */
	char *challenge[CONF_SCHEME_COUNT];
	size_t challenge_len[CONF_SCHEME_COUNT];
	size_t nchallenges;
};

/* The identity on a client connection (gw_req_set_conn_data). */
struct conn_ident {
	uint32_t magic;
	char name[FWD_NEG_NAME_MAX];
};
#define IDENT_MAGIC 0x49444e54u   /* "IDNT" */

/* A Negotiate check in flight. */
struct neg_req {
	struct fwd_negotiate_job job;      /* first: the pool hands it back */
	struct fwd_sso *s;
	struct gw_req *rq;
	void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred);
	void *arg;
	double t0;
};

struct fwd_sso *fwd_sso_new(const struct conf_fwd_auth *au, const struct fwd_auth_db *db,
    struct fwd_auth_cache *cache, struct fwd_auth_backoff *backoff, struct conf_errors *errs)
{
	struct fwd_sso *s = calloc(1, sizeof *s);
	const struct conf_fwd_sso *c = &au->sso;
	char err[512];

	if (s == NULL)
		return NULL;
	s->magic = SSO_MAGIC;
	s->db = db;
	s->cache = cache;
	s->backoff = backoff;
	if (c->ldap.present) {
		if ((s->dir = fwd_directory_new(&c->ldap, err, sizeof err)) == NULL) {
			conf_err(errs, c->ldap.src.file, c->ldap.src.line, "forward.auth.ldap", "%s", err);
			goto fail;
		}
		s->basic_bind = c->ldap.basic_bind;
	}
	for (size_t i = 0; i < c->nschemes; i++) {
		char buf[300];
		int n;
		if (c->schemes[i] == CONF_SCHEME_NEGOTIATE) {
			s->neg = fwd_negotiate_new(c->kerberos.keytab, c->kerberos.principal, 2, err, sizeof err);
			if (s->neg == NULL) {
				conf_err(errs, c->kerberos.src.file, c->kerberos.src.line, "forward.auth.kerberos",
				    "%s: %s", c->kerberos.keytab, err);
				goto fail;
			}
			n = snprintf(buf, sizeof buf, "Negotiate");
		} else {
			s->basic = 1;
			n = snprintf(buf, sizeof buf, "Basic realm=\"%s\"", au->realm ? au->realm : "Gatehouse");
		}
		if (n < 0 || (size_t)n >= sizeof buf)
			n = (int)sizeof buf - 1;
		if ((s->challenge[s->nchallenges] = strndup(buf, (size_t)n)) == NULL)
			goto fail;
		s->challenge_len[s->nchallenges++] = (size_t)n;
	}
	return s;
fail:
	fwd_sso_free(s);
	return NULL;
}

void fwd_sso_free(struct fwd_sso *s)
{
	if (s == NULL)
		return;
	/* queued accepts are cancelled: their requests are orphans by now (a
	 * live request pins the snapshot) and get woken with -1 */
	fwd_negotiate_free(s->neg);
	fwd_directory_free(s->dir);
	for (size_t i = 0; i < s->nchallenges; i++)
		free(s->challenge[i]);
	s->magic = 0;
	free(s);
}

void fwd_sso_challenge(const struct fwd_sso *s, struct gw_req *rq)
{
	for (size_t i = 0; s != NULL && i < s->nchallenges; i++)
		gw_req_resp_hdr_add(rq, "Proxy-Authenticate", s->challenge[i], s->challenge_len[i]);
}

int fwd_sso_basic(const struct fwd_sso *s)
{
	return s == NULL || s->basic;
}

/* who for principal name (copied into rq's arena): the short name is the
 * part before the last '@'; groups from the groups file by that name. */
static int who_of(const struct fwd_sso *s, struct gw_req *rq, const char *name, struct fwd_who *who)
{
	const char *at = strrchr(name, '@');
	long ui;

	memset(who, 0, sizeof *who);
	who->dir_done = s->dir == NULL;
	who->user = gw_req_strndup(rq, name, strlen(name));
	who->user_short = at != NULL && at > name ? gw_req_strndup(rq, name, (size_t)(at - name)) : NULL;
	if (who->user == NULL || (at != NULL && at > name && who->user_short == NULL))
		return -1;
	ui = fwd_auth_db_find(s->db, who->user_short != NULL ? who->user_short : who->user);
	if (ui >= 0) {
		who->groups = fwd_auth_db_groups(s->db, ui, &who->ngroups);
		who->nfile = who->ngroups;
		who->groups_from = "forward.auth.groups_file";
	}
	return 0;
}

int fwd_sso_conn_who(const struct fwd_sso *s, struct gw_req *rq, struct fwd_who *who)
{
	const struct conn_ident *id = gw_req_conn_data(rq);

	/* a connection signed in under an earlier configuration keeps its
	 * identity only while Negotiate is still offered */
	if (s == NULL || s->neg == NULL || id == NULL || id->magic != IDENT_MAGIC)
		return 0;
	return who_of(s, rq, id->name, who) == 0;
}

static void ident_free(void *p)
{
	struct conn_ident *id = p;

	id->magic = 0;
	free(id);
}

void *fwd_sso_conn_dup(const void *data, void (**free_fn)(void *data))
{
	const struct conn_ident *id = data;
	struct conn_ident *n;

	if (id == NULL || id->magic != IDENT_MAGIC || (n = malloc(sizeof *n)) == NULL)
		return NULL;
	*n = *id;
	*free_fn = ident_free;
	return n;
}

static const char *client_of(struct gw_req *rq)
{
	const char *c = gw_req_client_str(rq);

	return c != NULL ? c : "?";
}

/* Worker thread: the accept finished (or was cancelled). */
static void neg_wake(struct gw_req *rq, void *arg)
{
	struct neg_req *nr = arg;
	struct fwd_who who;
	struct conn_ident *id;

	if (!gw_req_alive(rq))
		goto out;
	if (nr->job.result < 0) {
		nr->resume(rq, nr->arg, NULL, FWD_CRED_BUSY);
		goto out;
	}
	if (nr->job.result == 0) {
		gw_info("forward: auth: %s: Negotiate from %s refused: %s", gw_req_id(rq), client_of(rq), nr->job.err);
		gw_event_push("auth", "Negotiate from %s refused: %s", client_of(rq), nr->job.err);
		nr->resume(rq, nr->arg, NULL, FWD_CRED_BAD);
		goto out;
	}
	gw_debug("forward: auth: %s: Negotiate accepted for %s in %.1f ms", gw_req_id(rq), nr->job.name,
	    (gw_mono_now() - nr->t0) * 1000);
	if ((id = calloc(1, sizeof *id)) != NULL) {
		id->magic = IDENT_MAGIC;
		memcpy(id->name, nr->job.name, sizeof id->name);
		gw_req_set_conn_data(rq, id, ident_free);
	}
	if (who_of(nr->s, rq, nr->job.name, &who) < 0)
		nr->resume(rq, nr->arg, NULL, FWD_CRED_BUSY);
	else
		nr->resume(rq, nr->arg, &who, FWD_CRED_OK);
out:
	free(nr);
}

/* Pool thread: hand the answer back to the request's worker. */
static void neg_done(struct fwd_negotiate_job *job, int result)
{
	struct neg_req *nr = (struct neg_req *)job;

	nr->job.result = result;
	gw_req_wake(nr->rq, neg_wake, nr);
}

static void refuse(struct gw_req *rq, const char *why,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg)
{
	gw_info("forward: auth: %s: Negotiate from %s refused: %s", gw_req_id(rq), client_of(rq), why);
	gw_event_push("auth", "Negotiate from %s refused: %s", client_of(rq), why);
	resume(rq, arg, NULL, FWD_CRED_BAD);
}

int fwd_sso_negotiate(struct fwd_sso *s, struct gw_req *rq, const struct gw_hdr *pa,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg)
{
	unsigned char *tok = NULL;
	size_t toklen = 0;
	struct neg_req *nr;
	int neg = fwd_negotiate_parse(pa->value, pa->value_len, &tok, &toklen);

	if (fwd_negotiate_is_ntlm(pa->value, pa->value_len, tok, toklen)) {
		free(tok);
		refuse(rq, "client offered NTLM (no Kerberos ticket for the proxy's name?), which is not "
		    "accepted", resume, arg);
		return 1;
	}
	if (!neg)
		return 0;
	if (s == NULL || s->neg == NULL) {
		free(tok);
		refuse(rq, "Negotiate is not offered (forward.auth.schemes)", resume, arg);
		return 1;
	}
	if (tok == NULL) {
		refuse(rq, "malformed token (empty, not base64, or over 64 KiB)", resume, arg);
		return 1;
	}
	if ((nr = calloc(1, sizeof *nr)) == NULL) {
		free(tok);
		resume(rq, arg, NULL, FWD_CRED_BUSY);
		return 1;
	}
	nr->s = s;
	nr->rq = rq;
	nr->resume = resume;
	nr->arg = arg;
	nr->t0 = gw_mono_now();
	nr->job.tok = tok;
	nr->job.toklen = toklen;
	nr->job.done = neg_done;
	/* defer first: the pool may finish (and wake) before submit returns */
	gw_req_defer(rq);
	if (fwd_negotiate_submit(s->neg, &nr->job) < 0) {
		free(nr->job.tok);
		nr->job.tok = NULL;
		nr->job.result = -1;
		gw_req_wake(rq, neg_wake, nr);
	}
	return 1;
}

/* ---- the directory: groups and Basic binds ---- */

int fwd_sso_directory(const struct fwd_sso *s)
{
	return s != NULL && s->dir != NULL;
}

struct fwd_directory *fwd_sso_dir(const struct fwd_sso *s)
{
	return s != NULL ? s->dir : NULL;
}

/* A directory job in flight for a request. */
struct dir_req {
	struct fwd_directory_job job;      /* first: the pool hands it back */
	struct fwd_sso *s;
	struct gw_req *rq;
	void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred);
	void *arg;
	struct fwd_who who;                /* GROUPS: the user so far (strings in rq's arena) */
	struct sockaddr_storage client;    /* BIND: for the backoff */
	double wait;
	int began;
};

/* who's groups file list and the directory's dgroups[0..dn), in rq's arena. */
static int merge(struct gw_req *rq, struct fwd_who *who, const char *const *dgroups, size_t dn,
    const char *from)
{
	const char **v;

	who->dir_done = 1;
	if (dn == 0)
		return 0;
	if ((v = gw_req_alloc(rq, (who->ngroups + dn) * sizeof *v)) == NULL)
		return -1;
	for (size_t i = 0; i < who->ngroups; i++)
		v[i] = who->groups[i];
	for (size_t i = 0; i < dn; i++)
		v[who->ngroups + i] = dgroups[i];
	who->nfile = who->ngroups;
	who->groups = v;
	who->ngroups += dn;
	who->groups_from = from;
	return 0;
}

static const char *dir_user(const struct fwd_who *who)
{
	return who->user_short != NULL ? who->user_short : who->user;
}

/* Worker thread: a GROUPS lookup finished. */
static void groups_wake(struct gw_req *rq, void *arg)
{
	struct dir_req *dr = arg;
	const char *const *g;
	size_t n;
	int known;
	enum fwd_dir_cache st;

	if (!gw_req_alive(rq))
		goto out;
	st = fwd_directory_cached(dr->s->dir, dir_user(&dr->who), gw_mono_now(), rq, &g, &n, &known);
	if (dr->job.result >= 0 && st != FWD_DIR_MISS) {
		gw_debug("forward: auth: %s: %zu directory groups of %s in %.1f ms", gw_req_id(rq), n, dr->who.user,
		    dr->job.took * 1000);
	} else if (st == FWD_DIR_STALE) {
		gw_warn("forward: auth: %s: directory unreachable (%s): using the cached groups of %s", gw_req_id(rq),
		    dr->job.result == -1 ? "cancelled" : dr->job.err, dr->who.user);
	} else {
		gw_warn("forward: auth: %s: directory unreachable: no groups for %s: %s", gw_req_id(rq), dr->who.user,
		    dr->job.result == -1 ? "lookup cancelled or queue full" : dr->job.err);
		gw_event_push("auth", "directory unreachable: no groups for %s: %s", dr->who.user,
		    dr->job.result == -1 ? "lookup cancelled" : dr->job.err);
		dr->resume(rq, dr->arg, NULL, FWD_CRED_DIR_DOWN);
		goto out;
	}
	if (merge(rq, &dr->who, g, n, fwd_directory_source(dr->s->dir)) < 0)
		dr->resume(rq, dr->arg, NULL, FWD_CRED_BUSY);
	else
		dr->resume(rq, dr->arg, &dr->who, FWD_CRED_OK);
out:
	free(dr);
}

/* Directory thread: hand the answer back to the request's worker. */
static void dir_done(struct fwd_directory_job *job, int result)
{
	struct dir_req *dr = (struct dir_req *)job;

	dr->job.result = result;
	gw_req_wake(dr->rq, groups_wake, dr);
}

int fwd_sso_groups(struct fwd_sso *s, struct gw_req *rq, struct fwd_who *who,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg)
{
	const char *const *g;
	size_t n;
	int known;
	struct dir_req *dr;
	const char *user = dir_user(who);

	if (fwd_directory_cached(s->dir, user, gw_mono_now(), rq, &g, &n, &known) == FWD_DIR_FRESH)
		return merge(rq, who, g, n, fwd_directory_source(s->dir)) == 0;
	if ((dr = calloc(1, sizeof *dr)) == NULL || strlen(user) >= sizeof dr->job.user) {
		free(dr);
		who->dir_done = 1;   /* no groups from the directory for this request */
		return 1;
	}
	dr->s = s;
	dr->rq = rq;
	dr->resume = resume;
	dr->arg = arg;
	dr->who = *who;
	dr->job.kind = FWD_DIR_GROUPS;
	memcpy(dr->job.user, user, strlen(user) + 1);
	dr->job.done = dir_done;
	gw_req_defer(rq);
	if (fwd_directory_submit(s->dir, &dr->job) < 0) {
		dr->job.result = -1;
		gw_req_wake(rq, groups_wake, dr);
	}
	return 0;
}

/* Worker thread: a BIND finished. */
static void bind_wake(struct gw_req *rq, void *arg)
{
	struct dir_req *dr = arg;
	struct fwd_who who;

	if (!gw_req_alive(rq))
		goto out;
	switch (dr->job.result) {
	case 1:
		memset(&who, 0, sizeof who);
		who.user = gw_req_strndup(rq, dr->job.user, strlen(dr->job.user));
		if (who.user == NULL) {
			dr->resume(rq, dr->arg, NULL, FWD_CRED_BUSY);
			break;
		}
		gw_debug("forward: auth: %s: %s signed in by a directory bind in %.1f ms", gw_req_id(rq), who.user,
		    dr->job.took * 1000);
		dr->resume(rq, dr->arg, &who, FWD_CRED_OK);
		break;
	case 0:
		gw_info("forward: auth: %s: failed sign-in from %s as \"%s\" (directory: %s)", gw_req_id(rq),
		    client_of(rq), dr->job.user, dr->job.err);
		gw_event_push("auth", "failed sign-in from %s as \"%s\" (directory)", client_of(rq), dr->job.user);
		dr->resume(rq, dr->arg, NULL, FWD_CRED_BAD);
		break;
	default:
		gw_warn("forward: auth: %s: directory unreachable: cannot check the password of \"%s\": %s",
		    gw_req_id(rq), dr->job.user, dr->job.result == -1 ? "cancelled or queue full" : dr->job.err);
		gw_event_push("auth", "directory unreachable: cannot check the password of \"%s\"", dr->job.user);
		dr->resume(rq, dr->arg, NULL, FWD_CRED_DIR_DOWN);
		break;
	}
out:
	free(dr);
}

/* Directory thread: charge or refund the attempt, cache a good password. */
static void bind_done(struct fwd_directory_job *job, int result)
{
	struct dir_req *dr = (struct dir_req *)job;

	dr->job.result = result;
	if (result == 1)
		fwd_auth_cache_put(dr->s->cache, job->user, job->pass, gw_mono_now());
	if (dr->began)   /* a directory that is down is not the client's failure */
		fwd_auth_backoff_end(dr->s->backoff, (const struct sockaddr *)&dr->client, job->user, result != 0,
		    gw_mono_now(), NULL);
	OPENSSL_cleanse(job->pass, sizeof job->pass);
	gw_req_wake(dr->rq, bind_wake, dr);
}

int fwd_sso_basic_bind(struct fwd_sso *s, struct gw_req *rq, const char *user, const char *pass,
    void (*resume)(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred), void *arg)
{
	const struct sockaddr *client = gw_req_client(rq);
	double now = gw_mono_now();
	struct fwd_who who;
	struct dir_req *dr;
	enum fwd_auth_gate gate;

	if (s == NULL || s->dir == NULL || !s->basic_bind)
		return 0;
	if (pass[0] == '\0') {   /* an unauthenticated bind would succeed (RFC 4513 5.1.2) */
		gw_info("forward: auth: %s: failed sign-in from %s as \"%s\": empty password", gw_req_id(rq),
		    client_of(rq), user);
		resume(rq, arg, NULL, FWD_CRED_BAD);
		return 1;
	}
	if (fwd_auth_cache_check(s->cache, user, pass, now)) {
		memset(&who, 0, sizeof who);
		if ((who.user = gw_req_strndup(rq, user, strlen(user))) == NULL)
			resume(rq, arg, NULL, FWD_CRED_BUSY);
		else
			resume(rq, arg, &who, FWD_CRED_OK);
		return 1;
	}
	if ((dr = calloc(1, sizeof *dr)) == NULL) {
		resume(rq, arg, NULL, FWD_CRED_BUSY);
		return 1;
	}
	gate = fwd_auth_backoff_begin(s->backoff, client, user, now, &dr->wait);
	if (gate != FWD_AUTH_GO) {
		free(dr);
		resume(rq, arg, NULL, gate == FWD_AUTH_WAIT ? FWD_CRED_BACKOFF : FWD_CRED_THROTTLED);
		return 1;
	}
	dr->began = 1;
	dr->s = s;
	dr->rq = rq;
	dr->resume = resume;
	dr->arg = arg;
	if (client != NULL)
		memcpy(&dr->client, client, client->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		    sizeof(struct sockaddr_in));
	dr->job.kind = FWD_DIR_BIND;
	snprintf(dr->job.user, sizeof dr->job.user, "%s", user);
	snprintf(dr->job.pass, sizeof dr->job.pass, "%s", pass);
	dr->job.done = bind_done;
	gw_req_defer(rq);
	if (fwd_directory_submit(s->dir, &dr->job) < 0) {
		OPENSSL_cleanse(dr->job.pass, sizeof dr->job.pass);
		fwd_auth_backoff_end(s->backoff, client, user, 1, now, NULL);
		dr->job.result = -1;
		gw_req_wake(rq, bind_wake, dr);
	}
	return 1;
}
