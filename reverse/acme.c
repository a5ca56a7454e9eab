/*
 * reverse/acme: the ACME client (see acme.h).  The main thread keeps the
 * list of certificates to order (one record per acme = [...] entry, kept
 * for the process's life so specs may borrow their strings); one ACME
 * thread works through it: account (key in state_dir/acme/account.key),
 * new order, HTTP-01 answered by the reverse listeners through
 * acme_http01(), finalize with a CSR for a new EC key, download, write
 * state_dir/acme/NAME.crt and .key atomically, install as a core/tls live
 * certificate.  Renewal at renew_before before expiry, or one third of the
 * lifetime if that is shorter; failures back off (10 s doubling to an hour,
 * never sooner than the server's Retry-After) and keep the old certificate.
 * The thread blocks on the network, never a worker.
 */
#include "reverse/acme.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "core/log.h"
#include "core/tls.h"
#include "reverse/acme_int.h"
#include "reverse/rev_conf.h"

#define ACME_TIMEOUT 10            /* seconds per network step */
#define POLL_DEADLINE 120          /* seconds an authorization or order may take */
#define BACKOFF_FIRST 10
#define BACKOFF_MAX 3600

enum { ST_PLACEHOLDER, ST_ORDERING, ST_VALID, ST_FAILED };
static const char *const st_names[] = { "placeholder", "ordering", "valid", "failed" };

struct acme_cert {
	char *id;                  /* all names, joined by ',': the record's key */
	char **names;
	size_t n;
	char *crt, *key;           /* state_dir/acme/FIRST.crt, .key */
	X509 *ph_x;                /* placeholder, made once */
	EVP_PKEY *ph_k;
	int active;                /* listed by the current configuration */
	int state;
	char err[512];
	time_t not_after, next;
	int fails;
};

struct token {
	char *token, *keyauth;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct acme_cert **certs;
	size_t ncerts;
	struct token *tokens;
	size_t ntokens;
	/* the configuration the thread follows (copies) */
	char *directory, *email, *ca_file, *state_dir;
	double renew_before;
	int challenge;             /* CONF_ACME_* */
	int started, stop, cur_fd;
	pthread_t thread;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .cur_fd = -1 };

/* ---- records (main thread creates them; fields under g.lock) ---- */

static void cert_free(struct acme_cert *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	free(c->id);
	free(c->crt);
	free(c->key);
	X509_free(c->ph_x);
	EVP_PKEY_free(c->ph_k);
	free(c);
}

/* The record for names under state_dir, made when new.  g.lock held. */
static struct acme_cert *cert_get(char *const *names, size_t n, const char *state_dir)
{
	struct acme_cert *c, **nv;
	char *id = acme_join(names, n, "", ",");

	if (id == NULL)
		return NULL;
	for (size_t i = 0; i < g.ncerts; i++)
		if (strcmp(g.certs[i]->id, id) == 0) {
			free(id);
			return g.certs[i];
		}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		free(id);
		return NULL;
	}
	c->id = id;
	c->names = calloc(n, sizeof *c->names);
	if (c->names == NULL)
		goto fail;
	for (; c->n < n; c->n++)
		if ((c->names[c->n] = strdup(names[c->n])) == NULL)
			goto fail;
	if (asprintf(&c->crt, "%s/acme/%s.crt", state_dir, names[0]) < 0) {
		c->crt = NULL;
		goto fail;
	}
	if (asprintf(&c->key, "%s/acme/%s.key", state_dir, names[0]) < 0) {
		c->key = NULL;
		goto fail;
	}
	nv = realloc(g.certs, (g.ncerts + 1) * sizeof *g.certs);
	if (nv == NULL)
		goto fail;
	g.certs = nv;
	g.certs[g.ncerts++] = c;
	return c;
fail:
	cert_free(c);
	return NULL;
}

/* 1 when the certificate in file crt names every one of names and key matches it. */
static int files_usable(const struct acme_cert *c)
{
	FILE *f = fopen(c->crt, "r");
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int ok = 0;

	if (f != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x != NULL && (f = fopen(c->key, "r")) != NULL) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x != NULL && k != NULL && X509_check_private_key(x, k) == 1) {
		ok = 1;
		for (size_t i = 0; i < c->n && ok; i++)
			ok = X509_check_host(x, c->names[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
	}
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(k);
	return ok;
}

int acme_server_spec(const struct conf *cf, const struct conf_rev_cert *ce, struct gw_tls_server_spec *s)
{
	struct acme_cert *c;
	int rc = 0;

	pthread_mutex_lock(&g.lock);
	c = cert_get(ce->acme.v, ce->acme.n, cf->global.state_dir);
	if (c == NULL) {
		rc = -1;
	} else if (files_usable(c)) {
		s->cert = c->crt;
		s->key = c->key;
	} else {
		if (c->ph_x == NULL && acme_placeholder(c->names, c->n, &c->ph_x, &c->ph_k) < 0)
			rc = -1;
		s->cert = s->key = NULL;
		s->mem_cert = c->ph_x;
		s->mem_key = c->ph_k;
	}
	if (c != NULL)
		s->live_id = c->id;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

/* ---- HTTP-01 tokens ---- */

long acme_http01(const char *token, size_t tlen, char *out, size_t outlen)
{
	long n = -1;

	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.ntokens; i++)
		if (strlen(g.tokens[i].token) == tlen && memcmp(g.tokens[i].token, token, tlen) == 0) {
			size_t l = strlen(g.tokens[i].keyauth);
			if (l < outlen) {
				memcpy(out, g.tokens[i].keyauth, l + 1);
				n = (long)l;
			}
			break;
		}
	pthread_mutex_unlock(&g.lock);
	return n;
}

static int token_add(const char *token, const char *keyauth)
{
	struct token *nt;
	int rc = -1;

	pthread_mutex_lock(&g.lock);
	nt = realloc(g.tokens, (g.ntokens + 1) * sizeof *g.tokens);
	if (nt != NULL) {
		g.tokens = nt;
		nt[g.ntokens].token = strdup(token);
		nt[g.ntokens].keyauth = strdup(keyauth);
		if (nt[g.ntokens].token != NULL && nt[g.ntokens].keyauth != NULL) {
			g.ntokens++;
			rc = 0;
		} else {
			free(nt[g.ntokens].token);
			free(nt[g.ntokens].keyauth);
		}
	}
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static void token_del(const char *token)
{
	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.ntokens; i++)
		if (strcmp(g.tokens[i].token, token) == 0) {
			free(g.tokens[i].token);
			free(g.tokens[i].keyauth);
			g.tokens[i] = g.tokens[--g.ntokens];
			break;
		}
	pthread_mutex_unlock(&g.lock);
}

/* ---- the ACME session (ACME thread only) ---- */

struct session {
	char *directory, *email, *ca_file;   /* copies of the configuration */
	char *new_nonce, *new_account, *new_order;
	EVP_PKEY *akey;
	char *jwk, *thumb, *kid;
	char nonce[256];
	long retry_after;          /* from the last error response; -1 = none */
	int challenge;             /* CONF_ACME_*, for this order */
};

static void session_clear(struct session *s)
{
	free(s->directory);
	free(s->email);
	free(s->ca_file);
	free(s->new_nonce);
	free(s->new_account);
	free(s->new_order);
	EVP_PKEY_free(s->akey);
	free(s->jwk);
	free(s->thumb);
	free(s->kid);
	memset(s, 0, sizeof *s);
}

static void set_fd(int fd)
{
	pthread_mutex_lock(&g.lock);
	g.cur_fd = fd;
	pthread_mutex_unlock(&g.lock);
}

/* Sleep secs unless stopped: 0, or -1 when the process stops. */
static int nap(long secs)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	pthread_mutex_lock(&g.lock);
	while (!g.stop && pthread_cond_timedwait(&g.cond, &g.lock, &ts) != ETIMEDOUT)
		;
	stop = g.stop;
	pthread_mutex_unlock(&g.lock);
	return stop ? -1 : 0;
}

/* The problem document of r (RFC 7807) as "type: detail" in err. */
static void problem(const struct acme_resp *r, const char *what, char *err, size_t errlen)
{
	json_t *j = r->body != NULL ? json_loads(r->body, 0, NULL) : NULL;
	const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
	const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;

	snprintf(err, errlen, "%s: HTTP %d%s%s%s%.300s", what, r->status, type ? " " : "", type ? type : "",
	    detail ? ": " : "", detail ? detail : "");
	json_decref(j);
}

static int is_problem(const struct acme_resp *r, const char *type)
{
	json_t *j = r->body != NULL ? json_loads(r->body, 0, NULL) : NULL;
	const char *t = j ? json_string_value(json_object_get(j, "type")) : NULL;
	int yes = t != NULL && strcmp(t, type) == 0;

	json_decref(j);
	return yes;
}

static int get_nonce(struct session *s, char *err, size_t errlen)
{
	struct acme_resp r;

	if (acme_http("HEAD", s->new_nonce, NULL, NULL, 0, s->ca_file, ACME_TIMEOUT, set_fd, &r, err, errlen) < 0)
		return -1;
	acme_resp_free(&r);
	if (r.nonce[0] == '\0') {
		snprintf(err, errlen, "newNonce: no Replay-Nonce (HTTP %d)", r.status);
		return -1;
	}
	memcpy(s->nonce, r.nonce, sizeof s->nonce);
	return 0;
}

/*
 * A signed POST of payload ("" = POST-as-GET) to url, with kid (jwk when
 * use_jwk).  badNonce is retried with the nonce the error carried (servers
 * reject some good nonces on purpose, RFC 8555 6.5).  An answer of 4xx/5xx
 * fills err from its problem document and returns -1 (r freed); 0 with *r.
 */
static int post(struct session *s, const char *url, const char *payload, int use_jwk, const char *what,
    struct acme_resp *r, char *err, size_t errlen)
{
	for (int attempt = 0; attempt < 6; attempt++) {
		char *jws;
		int rc;
		if (s->nonce[0] == '\0' && get_nonce(s, err, errlen) < 0)
			return -1;
		jws = acme_jws(s->akey, s->jwk, use_jwk ? NULL : s->kid, s->nonce, url, payload);
		s->nonce[0] = '\0';
		if (jws == NULL) {
			snprintf(err, errlen, "%s: cannot sign the request", what);
			return -1;
		}
		rc = acme_http("POST", url, "application/jose+json", jws, strlen(jws), s->ca_file, ACME_TIMEOUT,
		    set_fd, r, err, errlen);
		free(jws);
		if (rc < 0)
			return -1;
		memcpy(s->nonce, r->nonce, sizeof s->nonce);
		if (r->status < 400)
			return 0;
		s->retry_after = r->retry_after;
		if (r->status == 400 && is_problem(r, "urn:ietf:params:acme:error:badNonce")) {
			acme_resp_free(r);
			continue;
		}
		problem(r, what, err, errlen);
		acme_resp_free(r);
		return -1;
	}
	snprintf(err, errlen, "%s: the server refused 6 fresh nonces in a row", what);
	return -1;
}

/* r's body as a JSON object (NULL with err). */
static json_t *body_json(const struct acme_resp *r, const char *what, char *err, size_t errlen)
{
	json_t *j = r->body != NULL ? json_loads(r->body, 0, NULL) : NULL;

	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "%s: the answer is not a JSON object", what);
		return NULL;
	}
	return j;
}

static char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v != NULL ? strdup(v) : NULL;
}

/* Directory, account key and account: 0, or -1 with err. */
static int session_open(struct session *s, const char *state_dir, char *err, size_t errlen)
{
	struct acme_resp r;
	json_t *j, *pl;
	char path[4200], *payload;
	int rc;

	if (s->kid != NULL)
		return 0;
	if (acme_http("GET", s->directory, NULL, NULL, 0, s->ca_file, ACME_TIMEOUT, set_fd, &r, err, errlen) < 0)
		return -1;
	if (r.status != 200) {
		problem(&r, "directory", err, errlen);
		acme_resp_free(&r);
		return -1;
	}
	j = body_json(&r, "directory", err, errlen);
	acme_resp_free(&r);
	if (j == NULL)
		return -1;
	free(s->new_nonce);
	free(s->new_account);
	free(s->new_order);
	s->new_nonce = jstr(j, "newNonce");
	s->new_account = jstr(j, "newAccount");
	s->new_order = jstr(j, "newOrder");
	json_decref(j);
	if (s->new_nonce == NULL || s->new_account == NULL || s->new_order == NULL) {
		snprintf(err, errlen, "directory %s lacks newNonce, newAccount or newOrder", s->directory);
		return -1;
	}
	snprintf(path, sizeof path, "%s/acme", state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/acme/account.key", state_dir);
	if (s->akey == NULL && (s->akey = acme_key_load_or_create(path, err, errlen)) == NULL)
		return -1;
	if (s->jwk == NULL && ((s->jwk = acme_jwk(s->akey)) == NULL || (s->thumb = acme_thumbprint(s->jwk)) == NULL)) {
		snprintf(err, errlen, "cannot make the account's JWK");
		return -1;
	}
	pl = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (pl != NULL && s->email != NULL) {
		char mail[600];
		snprintf(mail, sizeof mail, "mailto:%s", s->email);
		json_object_set_new(pl, "contact", json_pack("[s]", mail));
	}
	payload = pl != NULL ? json_dumps(pl, JSON_COMPACT) : NULL;
	json_decref(pl);
	if (payload == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = post(s, s->new_account, payload, 1, "newAccount", &r, err, errlen);
	free(payload);
	if (rc < 0)
		return -1;
	if (r.location[0] == '\0') {
		snprintf(err, errlen, "newAccount: no account URL (Location) in the answer");
		acme_resp_free(&r);
		return -1;
	}
	s->kid = strdup(r.location);
	acme_resp_free(&r);
	return s->kid != NULL ? 0 : -1;
}

/* POST-as-GET url until its "status" is not one of the waiting ones;
 * returns the object (NULL with err). */
static json_t *poll_status(struct session *s, const char *url, const char *what, const char *wait1,
    const char *wait2, char *err, size_t errlen)
{
	time_t deadline = time(NULL) + POLL_DEADLINE;

	for (;;) {
		struct acme_resp r;
		json_t *j;
		const char *st;
		long delay;
		if (post(s, url, "", 0, what, &r, err, errlen) < 0)
			return NULL;
		j = body_json(&r, what, err, errlen);
		delay = r.retry_after;
		acme_resp_free(&r);
		if (j == NULL)
			return NULL;
		st = json_string_value(json_object_get(j, "status"));
		if (st == NULL || (strcmp(st, wait1) != 0 && (wait2 == NULL || strcmp(st, wait2) != 0)))
			return j;
		json_decref(j);
		if (time(NULL) >= deadline) {
			snprintf(err, errlen, "%s: still %s after %d s", what, st, POLL_DEADLINE);
			return NULL;
		}
		/* the server's pace, within reason: never a tight loop */
		if (nap(delay < 1 ? 1 : delay > 10 ? 10 : delay) < 0) {
			snprintf(err, errlen, "stopped");
			return NULL;
		}
	}
}

/* The error a failed authorization carries (its challenge's), into err. */
static void authz_error(json_t *a, const char *name, char *err, size_t errlen)
{
	json_t *ch = json_object_get(a, "challenges"), *c;
	size_t i;

	json_array_foreach(ch, i, c) {
		json_t *e = json_object_get(c, "error");
		if (e != NULL) {
			const char *t = json_string_value(json_object_get(e, "type"));
			const char *d = json_string_value(json_object_get(e, "detail"));
			snprintf(err, errlen, "validation of %s failed: %s%s%.300s", name, t ? t : "",
			    d ? ": " : "", d ? d : "");
			return;
		}
	}
	snprintf(err, errlen, "validation of %s failed (authorization %s)", name,
	    json_string_value(json_object_get(a, "status")) ? json_string_value(json_object_get(a, "status")) : "?");
}

/* Answer a challenge: HTTP-01 through the token table the reverse
 * listeners read, TLS-ALPN-01 through core/tls's challenge certificates.
 * 0, or -1. */
static int publish(const struct session *s, const char *name, const char *token, const char *keyauth)
{
	X509 *x;
	EVP_PKEY *k;
	int rc;

	if (s->challenge == CONF_ACME_HTTP01)
		return token_add(token, keyauth);
	if (acme_alpn_cert(name, keyauth, &x, &k) < 0)
		return -1;
	rc = gw_tls_acme_challenge_set(name, x, k);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

static void unpublish(const struct session *s, const char *name, const char *token)
{
	if (s->challenge == CONF_ACME_HTTP01)
		token_del(token);
	else
		gw_tls_acme_challenge_clear(name);
}

/* Get authorization url valid: answer its challenge if need be. */
static int authorize(struct session *s, const char *url, char *err, size_t errlen)
{
	const char *want = s->challenge == CONF_ACME_HTTP01 ? "http-01" : "tls-alpn-01";
	struct acme_resp r;
	json_t *a, *ch, *c, *http = NULL;
	const char *st, *name;
	char *token = NULL, *curl = NULL, *keyauth = NULL;
	size_t i;
	int rc = -1;

	if (post(s, url, "", 0, "authorization", &r, err, errlen) < 0)
		return -1;
	a = body_json(&r, "authorization", err, errlen);
	acme_resp_free(&r);
	if (a == NULL)
		return -1;
	st = json_string_value(json_object_get(a, "status"));
	name = json_string_value(json_object_get(json_object_get(a, "identifier"), "value"));
	if (st != NULL && strcmp(st, "valid") == 0) {
		json_decref(a);        /* reused (RFC 8555 7.1.3): nothing to prove */
		return 0;
	}
	if (st == NULL || strcmp(st, "pending") != 0) {
		authz_error(a, name ? name : "?", err, errlen);
		json_decref(a);
		return -1;
	}
	ch = json_object_get(a, "challenges");
	json_array_foreach(ch, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t != NULL && strcmp(t, want) == 0)
			http = c;
	}
	if (name == NULL || http == NULL || (token = jstr(http, "token")) == NULL ||
	    (curl = jstr(http, "url")) == NULL ||
	    strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(token)) {
		snprintf(err, errlen, "authorization for %s offers no usable %s challenge", name ? name : "?", want);
		goto out;
	}
	if (asprintf(&keyauth, "%s.%s", token, s->thumb) < 0) {
		keyauth = NULL;
		goto out;
	}
	if (publish(s, name, token, keyauth) < 0) {
		snprintf(err, errlen, "cannot prepare the %s answer for %s", want, name);
		goto out;
	}
	if (post(s, curl, "{}", 0, "challenge", &r, err, errlen) == 0) {
		json_t *done;
		acme_resp_free(&r);
		done = poll_status(s, url, "authorization", "pending", "processing", err, errlen);
		if (done != NULL) {
			st = json_string_value(json_object_get(done, "status"));
			if (st != NULL && strcmp(st, "valid") == 0)
				rc = 0;
			else
				authz_error(done, name ? name : "?", err, errlen);
			json_decref(done);
		}
	}
	unpublish(s, name, token);
out:
	json_decref(a);
	free(token);
	free(curl);
	free(keyauth);
	return rc;
}

/* Order, prove, finalize, download and install c's certificate. */
static int issue(struct session *s, struct acme_cert *c, const char *state_dir, char *err, size_t errlen)
{
	struct acme_resp r;
	json_t *ids = json_array(), *o = NULL, *pl, *az = NULL, *v;
	char *payload = NULL, *order_url = NULL, *finalize = NULL, *cert_url = NULL, *csr = NULL;
	char *keypem = NULL;
	EVP_PKEY *k = NULL;
	size_t i, kn;
	const char *st;
	int rc = -1;

	if (session_open(s, state_dir, err, errlen) < 0)
		goto out;
	for (i = 0; i < c->n && ids != NULL; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", c->names[i]));
	pl = json_pack("{s:O}", "identifiers", ids);
	payload = pl != NULL ? json_dumps(pl, JSON_COMPACT) : NULL;
	json_decref(pl);
	if (payload == NULL || post(s, s->new_order, payload, 0, "newOrder", &r, err, errlen) < 0)
		goto out;
	order_url = r.location[0] ? strdup(r.location) : NULL;
	o = body_json(&r, "newOrder", err, errlen);
	acme_resp_free(&r);
	if (o == NULL)
		goto out;
	finalize = jstr(o, "finalize");
	if (order_url == NULL || finalize == NULL) {
		snprintf(err, errlen, "newOrder: the answer lacks the order URL or finalize");
		goto out;
	}
	az = json_incref(json_object_get(o, "authorizations"));
	json_array_foreach(az, i, v) {
		if (!json_is_string(v) || authorize(s, json_string_value(v), err, errlen) < 0)
			goto out;
	}
	json_decref(o);
	o = poll_status(s, order_url, "order", "pending", NULL, err, errlen);
	if (o == NULL)
		goto out;
	st = json_string_value(json_object_get(o, "status"));
	if (st == NULL || strcmp(st, "ready") != 0) {
		snprintf(err, errlen, "order is %s, not ready, after its authorizations", st ? st : "?");
		goto out;
	}
	k = acme_key_new();
	csr = k != NULL ? acme_csr(k, c->names, c->n) : NULL;
	free(payload);
	payload = NULL;
	if (csr == NULL || asprintf(&payload, "{\"csr\":\"%s\"}", csr) < 0) {
		payload = NULL;
		snprintf(err, errlen, "cannot make the CSR");
		goto out;
	}
	if (post(s, finalize, payload, 0, "finalize", &r, err, errlen) < 0)
		goto out;
	acme_resp_free(&r);
	json_decref(o);
	o = poll_status(s, order_url, "order", "processing", "ready", err, errlen);
	if (o == NULL)
		goto out;
	cert_url = jstr(o, "certificate");
	st = json_string_value(json_object_get(o, "status"));
	if (st == NULL || strcmp(st, "valid") != 0 || cert_url == NULL) {
		snprintf(err, errlen, "order ended %s without a certificate", st ? st : "?");
		goto out;
	}
	if (post(s, cert_url, "", 0, "certificate", &r, err, errlen) < 0)
		goto out;
	if (r.body == NULL || strstr(r.body, "-----BEGIN CERTIFICATE-----") == NULL) {
		snprintf(err, errlen, "certificate: the answer is not a PEM chain (%s)", r.ctype);
		acme_resp_free(&r);
		goto out;
	}
	keypem = acme_key_pem(k, &kn);
	/* key first: a crash between the two leaves a chain that does not
	 * match, which files_usable() refuses, rather than a served mismatch */
	if (keypem == NULL || acme_write_file(c->key, keypem, kn, 0600, err, errlen) < 0 ||
	    acme_write_file(c->crt, r.body, r.len, 0644, err, errlen) < 0) {
		acme_resp_free(&r);
		goto out;
	}
	acme_resp_free(&r);
	if (gw_tls_live_install(c->id, c->crt, c->key, err, errlen) < 0)
		goto out;
	rc = 0;
	/* give the proofs back (RFC 8555 7.5.2): the next renewal proves the
	 * names again, so a broken challenge path shows a third of the
	 * lifetime before expiry, not when a reused authorization runs out */
	json_array_foreach(az, i, v) {
		char e2[256];
		if (json_is_string(v) &&
		    post(s, json_string_value(v), "{\"status\":\"deactivated\"}", 0, "deactivate", &r, e2,
		    sizeof e2) == 0)
			acme_resp_free(&r);
	}
out:
	json_decref(az);
	json_decref(ids);
	json_decref(o);
	free(payload);
	free(order_url);
	free(finalize);
	free(cert_url);
	free(csr);
	free(keypem);
	EVP_PKEY_free(k);
	return rc;
}

/* When c's certificate (not_before nb, not_after na) is due for renewal. */
static time_t renew_at(time_t nb, time_t na, double renew_before_days)
{
	double before = renew_before_days * 86400.0, third = (double)(na - nb) / 3.0;

	return na - (time_t)(before < third ? before : third);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void *acme_main(void *arg)
{
	struct session s = { 0 };

	(void)arg;
	pthread_mutex_lock(&g.lock);
	while (!g.stop) {
		struct acme_cert *c = NULL;
		time_t now = time(NULL), nb = 0, na = 0;
		char err[512] = "", *state_dir;
		double rb;
		int rc;
		for (size_t i = 0; i < g.ncerts; i++)
			if (g.certs[i]->active && (c == NULL || g.certs[i]->next < c->next))
				c = g.certs[i];
		if (c == NULL || c->next > now) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += c == NULL ? 3600 : (c->next - now < 3600 ? c->next - now : 3600);
			pthread_cond_timedwait(&g.cond, &g.lock, &ts);
			continue;
		}
		if (s.directory == NULL || strcmp(s.directory, g.directory) != 0 ||
		    (s.ca_file == NULL) != (g.ca_file == NULL) || (s.ca_file && strcmp(s.ca_file, g.ca_file) != 0) ||
		    (s.email == NULL) != (g.email == NULL) || (s.email && strcmp(s.email, g.email) != 0)) {
			session_clear(&s);
			s.directory = dup_or_null(g.directory);
			s.email = dup_or_null(g.email);
			s.ca_file = dup_or_null(g.ca_file);
		}
		state_dir = dup_or_null(g.state_dir);
		rb = g.renew_before;
		s.challenge = g.challenge;
		c->state = ST_ORDERING;
		pthread_mutex_unlock(&g.lock);

		s.retry_after = -1;
		gw_info("acme: ordering a certificate for %s from %s", c->id, s.directory);
		rc = s.directory != NULL && state_dir != NULL ? issue(&s, c, state_dir, err, sizeof err) : -1;
		if (rc == 0 && acme_cert_times(c->crt, &nb, &na) < 0) {
			snprintf(err, sizeof err, "%s: cannot read the certificate just written", c->crt);
			rc = -1;
		}
		free(state_dir);
		pthread_mutex_lock(&g.lock);
		if (rc == 0) {
			c->state = ST_VALID;
			c->err[0] = '\0';
			c->fails = 0;
			c->not_after = na;
			c->next = renew_at(nb, na, rb);
			gw_info("acme: certificate for %s installed, valid until %ld, renewal at %ld", c->id, (long)na,
			    (long)c->next);
		} else {
			long delay = BACKOFF_FIRST;
			for (int i = 0; i < c->fails && delay < BACKOFF_MAX; i++)
				delay *= 2;
			if (delay > BACKOFF_MAX)
				delay = BACKOFF_MAX;
			if (s.retry_after > delay)
				delay = s.retry_after > 86400 ? 86400 : s.retry_after;
			c->fails++;
			c->state = c->not_after > 0 ? ST_VALID : ST_FAILED;
			snprintf(c->err, sizeof c->err, "%s", err[0] ? err : "failed");
			c->next = time(NULL) + delay;
			gw_warn("acme: order for %s failed: %s; %s; next try in %ld s", c->id, c->err,
			    c->not_after > 0 ? "the current certificate stays" : "the placeholder stays", delay);
		}
	}
	pthread_mutex_unlock(&g.lock);
	session_clear(&s);
	return NULL;
}

static void acme_stop(void)
{
	pthread_mutex_lock(&g.lock);
	g.stop = 1;
	if (g.cur_fd >= 0)
		shutdown(g.cur_fd, SHUT_RDWR);
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	if (g.started)
		pthread_join(g.thread, NULL);
	for (size_t i = 0; i < g.ncerts; i++)
		cert_free(g.certs[i]);
	free(g.certs);
	for (size_t i = 0; i < g.ntokens; i++) {
		free(g.tokens[i].token);
		free(g.tokens[i].keyauth);
	}
	free(g.tokens);
	free(g.directory);
	free(g.email);
	free(g.ca_file);
	free(g.state_dir);
}

static void replace(char **dst, const char *src)
{
	free(*dst);
	*dst = dup_or_null(src);
}

void acme_activate(const struct conf *cf)
{
	const struct conf_reverse *r = &cf->reverse;
	time_t now = time(NULL);
	int any = 0;

	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.ncerts; i++)
		g.certs[i]->active = 0;
	for (size_t i = 0; r->present && r->acme.present && i < r->ncertificates; i++) {
		const struct conf_rev_cert *ce = &r->certificates[i];
		struct acme_cert *c;
		time_t nb, na;
		if (ce->acme.n == 0 || (c = cert_get(ce->acme.v, ce->acme.n, cf->global.state_dir)) == NULL)
			continue;
		c->active = any = 1;
		if (c->state == ST_ORDERING || c->not_after > 0 || c->fails > 0)
			continue;              /* known already: keep its plan */
		if (files_usable(c) && acme_cert_times(c->crt, &nb, &na) == 0) {
			c->state = ST_VALID;
			c->not_after = na;
			c->next = renew_at(nb, na, r->acme.renew_before);
		} else {
			c->state = ST_PLACEHOLDER;
			snprintf(c->err, sizeof c->err, "no certificate yet: a self-signed placeholder is served "
			    "until the first order completes");
			c->next = now;
		}
	}
	if (any) {
		replace(&g.directory, r->acme.directory);
		replace(&g.email, r->acme.email);
		replace(&g.ca_file, r->acme.ca_file);
		replace(&g.state_dir, cf->global.state_dir);
		g.renew_before = r->acme.renew_before;
		g.challenge = r->acme.challenge;
	}
	if (any && !g.started) {
		if (pthread_create(&g.thread, NULL, acme_main, NULL) == 0) {
			g.started = 1;
			atexit(acme_stop);
		} else {
			gw_error("acme: cannot start the ACME thread: %s", strerror(errno));
		}
	}
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

size_t acme_orders_info(struct acme_order_info *out, size_t max)
{
	size_t k = 0;

	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.ncerts && k < max; i++) {
		const struct acme_cert *c = g.certs[i];
		char *names;
		if (!c->active)
			continue;
		names = acme_join(c->names, c->n, "", ", ");
		snprintf(out[k].names, sizeof out[k].names, "%s", names ? names : c->id);
		free(names);
		out[k].state = st_names[c->state];
		snprintf(out[k].last_error, sizeof out[k].last_error, "%s", c->err);
		out[k].not_after = c->not_after;
		out[k].next = c->next;
		k++;
	}
	pthread_mutex_unlock(&g.lock);
	return k;
}

int acme_renew_now(const char *name)
{
	int rc = -1;

	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.ncerts; i++)
		if (g.certs[i]->active && strcmp(g.certs[i]->names[0], name) == 0) {
			if (g.certs[i]->state != ST_ORDERING)
				g.certs[i]->next = time(NULL);
			rc = 0;
		}
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	return rc;
}
