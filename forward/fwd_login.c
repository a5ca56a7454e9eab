/*
 * forward login: Proxy-Authorization for the forward side, moved out of
 * forward/forward.c.  Negotiate and LDAP binds go to forward/sso.c; Basic
 * against the users file is the verified-credentials cache, else the
 * verification pool (forward/auth.h) behind the per-client backoff: the
 * request is deferred, auth_done() runs on a pool thread and hands it
 * back to its worker, where auth_wake() decides it with the outcome.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/events.h"
#include "core/log.h"
#include "core/proto.h"
#include "forward/auth.h"
#include "forward/decide.h"
#include "forward/fwd_int.h"
#include "forward/sso.h"

/* A users-file user (index ui) as a signed-in who. */
const struct fwd_who *fwd_login_db_who(const struct fwd_data *d, long ui, struct fwd_who *who)
{
	memset(who, 0, sizeof *who);
	who->user = fwd_auth_db_name(d->db, ui);
	who->groups = fwd_auth_db_groups(d->db, ui, &who->ngroups);
	who->groups_from = "forward.auth.groups_file";
	return who;
}

/* Worker thread: a Negotiate check's outcome (forward/sso.c). */
static void sso_resume(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred)
{
	if (cred == FWD_CRED_OK || cred == FWD_CRED_BAD)
		fwd_count(rq, cred == FWD_CRED_OK ? FWD_C_AUTH_OK : FWD_C_AUTH_FAIL);
	else if (cred == FWD_CRED_BACKOFF || cred == FWD_CRED_THROTTLED)
		fwd_count(rq, FWD_C_AUTH_BACKOFF);
	fwd_rq_decide(rq, arg, who, cred, 0);
}

/* Worker thread: a directory lookup's outcome (forward/sso.c). */
void fwd_login_dir_resume(struct gw_req *rq, void *arg, const struct fwd_who *who, enum fwd_cred cred)
{
	fwd_rq_decide(rq, arg, who, cred, 0);
}

/* Worker thread: the verification finished. */
static void auth_wake(struct gw_req *rq, void *arg)
{
	struct auth_req *ar = arg;
	struct fwd_who who;

	gw_req_set_data(rq, NULL);
	if (gw_req_alive(rq)) {
		struct fwd_data *d = ar->d;
		if (ar->result == 1) {
			fwd_count(rq, FWD_C_AUTH_OK);
			gw_debug("forward: auth: %s verified in %.1f ms", gw_req_id(rq),
			    (gw_mono_now() - ar->t0) * 1000);
			fwd_rq_decide(rq, d, fwd_login_db_who(d, ar->ui, &who), FWD_CRED_OK, 0);
		} else if (ar->result == 0) {
			fwd_count(rq, FWD_C_AUTH_FAIL);
			fwd_rq_decide(rq, d, NULL, FWD_CRED_BAD, ar->wait);
		} else if (ar->result <= -2) {
			fwd_count(rq, FWD_C_AUTH_BACKOFF);
			fwd_rq_decide(rq, d, NULL, ar->result == -2 ? FWD_CRED_BACKOFF : FWD_CRED_THROTTLED, ar->wait);
		} else {
			fwd_rq_decide(rq, d, NULL, FWD_CRED_BUSY, 0);
		}
	}
	OPENSSL_cleanse(ar, sizeof *ar);
	free(ar);
}

/* Pool thread: record the outcome, then hand the request back to its worker. */
static void auth_done(struct fwd_auth_job *job, int result)
{
	struct auth_req *ar = (struct auth_req *)job;
	struct fwd_data *d = ar->d;
	const struct sockaddr *client = (const struct sockaddr *)&ar->client;

	ar->result = ar->ui < 0 && result == 1 ? 0 : result;
	if (ar->result == 1)
		fwd_auth_cache_put(d->cache, ar->user, job->pass, gw_mono_now());
	if (ar->began) {   /* (a job that joined another one was not charged) */
		char who[INET6_ADDRSTRLEN] = "?", user[FWD_AUTH_USER_MAX + 1];
		unsigned n = 0;
		ar->wait = fwd_auth_backoff_end(d->backoff, client, ar->user, ar->result == 1, gw_mono_now(), &n);
		if (ar->result != 0)
			goto wake;
		if (client->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)client)->sin_addr, who, sizeof who);
		else if (client->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)client)->sin6_addr, who, sizeof who);
		fwd_printable(user, 64, ar->user);
		if (ar->wait > 0)
			gw_warn("forward: auth: %u failed sign-ins from %s (last as \"%s\"): its credentials "
			    "are refused unchecked for %.0f s", n, who, user, ar->wait);
		else
			gw_info("forward: auth: failed sign-in from %s as \"%s\" (%u)", who, user, n);
		gw_event_push("auth", "failed sign-in from %s as \"%s\" (%u in a row%s)", who, user, n,
		    ar->wait > 0 ? ", backing off" : "");
	}
wake:
	OPENSSL_cleanse(job->pass, sizeof job->pass);
	gw_req_wake(ar->rq, auth_wake, ar);
}

/* Credentials present and the policy can use them: returns 1 when the
 * request was decided or deferred, 0 to go on without a user. */
int fwd_login_check(struct gw_req *rq, struct fwd_data *d, const struct gw_hdr *pa)
{
	char user[FWD_AUTH_USER_MAX + 1], pass[FWD_AUTH_PASS_MAX + 1];
	const struct sockaddr *client = gw_req_client(rq);
	double now = gw_mono_now();
	enum fwd_auth_gate gate;
	long ui;
	struct auth_req *ar;
	struct fwd_who who;

	if (fwd_sso_negotiate(d->sso, rq, pa, sso_resume, d))
		return 1;
	if (!fwd_sso_basic(d->sso) || fwd_auth_parse_basic(pa->value, pa->value_len, user, pass) < 0) {
		fwd_count(rq, FWD_C_AUTH_FAIL);
		fwd_rq_decide(rq, d, NULL, FWD_CRED_BAD, 0);
		return 1;
	}
	ui = fwd_auth_db_find(d->db, user);
	/* not in the users file: the directory (forward.auth.ldap.basic_bind) */
	if (ui < 0 && fwd_sso_basic_bind(d->sso, rq, user, pass, sso_resume, d)) {
		OPENSSL_cleanse(pass, sizeof pass);
		return 1;
	}
	if (ui >= 0 && fwd_auth_cache_check(d->cache, user, pass, now)) {
		OPENSSL_cleanse(pass, sizeof pass);
		fwd_count(rq, FWD_C_AUTH_CACHED);
		fwd_rq_decide(rq, d, fwd_login_db_who(d, ui, &who), FWD_CRED_OK, 0);
		return 1;
	}
	ar = calloc(1, sizeof *ar);
	if (ar == NULL) {
		OPENSSL_cleanse(pass, sizeof pass);
		fwd_rq_decide(rq, d, NULL, FWD_CRED_BUSY, 0);
		return 1;
	}
	ar->d = d;
	ar->rq = rq;
	ar->ui = ui;
	ar->t0 = now;
	/* an unknown user is checked against a real entry's hash (same method
	 * and cost, result ignored): timing does not tell who exists */
	ar->job.hash = ui >= 0 ? fwd_auth_db_hash(d->db, ui) : fwd_auth_db_dummy(d->db);
	ar->job.done = auth_done;
	memcpy(ar->job.pass, pass, sizeof pass);
	OPENSSL_cleanse(pass, sizeof pass);
	memcpy(ar->user, user, sizeof user);
	if (client != NULL)
		memcpy(&ar->client, client, client->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	/* defer first: the pool may finish (and wake) before submit returns */
	gw_req_defer(rq);   /* auth_done -> gw_req_wake -> auth_wake */
	gw_req_set_data(rq, ar);   /* for on_done(): cancel if the client leaves */
	/* the same credentials being checked already (a browser's parallel
	 * requests after a sign-in): share that answer, uncharged */
	if (fwd_auth_pool_join(d->pool, &ar->job))
		return 1;
	/* counted before the check, bounded in flight per client and user */
	gate = fwd_auth_backoff_begin(d->backoff, client, user, now, &ar->wait);
	if (gate != FWD_AUTH_GO) {
		OPENSSL_cleanse(ar->job.pass, sizeof ar->job.pass);
		ar->result = gate == FWD_AUTH_WAIT ? -2 : -3;
		gw_req_wake(rq, auth_wake, ar);
		return 1;
	}
	ar->began = 1;
	if (fwd_auth_pool_submit(d->pool, &ar->job) < 0) {
		/* queue full: the deferred request still needs its wake */
		OPENSSL_cleanse(ar->job.pass, sizeof ar->job.pass);
		fwd_auth_backoff_end(d->backoff, client, ar->user, 0, now, NULL);
		ar->result = -1;
		gw_req_wake(rq, auth_wake, ar);
	}
	return 1;
}
