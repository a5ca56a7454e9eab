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
#include "forward/negotiate.h"

#define SSO_MAGIC 0x53534f31u   /* "SSO1" */

struct fwd_sso {
	uint32_t magic;
	const struct fwd_auth_db *db;      /* borrowed */
	struct fwd_negotiate *neg;         /* NULL: Negotiate not offered */
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
    struct conf_errors *errs)
{
	struct fwd_sso *s = calloc(1, sizeof *s);
	const struct conf_fwd_sso *c = &au->sso;
	char err[512];

	if (s == NULL)
		return NULL;
	s->magic = SSO_MAGIC;
	s->db = db;
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
	who->user = gw_req_strndup(rq, name, strlen(name));
	who->user_short = at != NULL && at > name ? gw_req_strndup(rq, name, (size_t)(at - name)) : NULL;
	if (who->user == NULL || (at != NULL && at > name && who->user_short == NULL))
		return -1;
	ui = fwd_auth_db_find(s->db, who->user_short != NULL ? who->user_short : who->user);
	if (ui >= 0) {
		who->groups = fwd_auth_db_groups(s->db, ui, &who->ngroups);
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
