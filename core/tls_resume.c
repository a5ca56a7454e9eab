/*
 * Client-side TLS session cache for upstream handshakes (see tls_resume.h).
 *
 * OpenSSL's client cache is told not to store internally; the new-session
 * callback keeps a session only when the handshake it came from verified the
 * peer (or the context does not verify at all, so the session is as good as a
 * full handshake under the same context).  A cache belongs to one client
 * context, so sessions of the verifying and the insecure context never mix,
 * and it dies with the gw_tls generation (reload = a cold cache).  Slots are
 * a fixed, direct-mapped table: a new session for a key replaces the old
 * one, a hash collision evicts; memory is bounded by the slot count.
 */
#include "core/tls_resume.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strhash.h"

#define RESUME_SLOTS 1024
#define RESUME_KEY 320

struct slot {
	char key[RESUME_KEY];
	SSL_SESSION *sess;
};

struct gw_tls_resume {
	pthread_mutex_t mu;         /* workers are threads sharing the context */
	int verify;                 /* the context checks peers: store verified only */
	struct slot slots[RESUME_SLOTS];
};

static int ctx_idx = -1, ssl_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void free_key(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

static void make_idx(void)
{
	ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_key);
}

/* OpenSSL hands over a reference when we return 1. */
static int on_new_session(SSL *s, SSL_SESSION *sess)
{
	struct gw_tls_resume *r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ctx_idx);
	const char *key = SSL_get_ex_data(s, ssl_idx);

	if (r == NULL || key == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	/* never keep what was not verified under this context's rules */
	if (r->verify && SSL_get_verify_result(s) != X509_V_OK)
		return 0;
	struct slot *sl = &r->slots[gw_strhash(key) % RESUME_SLOTS];
	pthread_mutex_lock(&r->mu);
	SSL_SESSION *old = sl->sess;
	strcpy(sl->key, key);   /* fits: checked in gw_tls_resume_offer */
	sl->sess = sess;
	pthread_mutex_unlock(&r->mu);
	SSL_SESSION_free(old);
	return 1;
}

struct gw_tls_resume *gw_tls_resume_new(SSL_CTX *ctx)
{
	struct gw_tls_resume *r;

	pthread_once(&idx_once, make_idx);
	if (ctx_idx < 0 || ssl_idx < 0 || (r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->verify = (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0;
	if (SSL_CTX_set_ex_data(ctx, ctx_idx, r) != 1) {
		gw_tls_resume_free(r);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	return r;
}

void gw_tls_resume_free(struct gw_tls_resume *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < RESUME_SLOTS; i++)
		SSL_SESSION_free(r->slots[i].sess);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int gw_tls_resume_offer(struct gw_tls_resume *r, SSL *s, const char *host, const char *addr)
{
	size_t hl = strlen(host), al = strlen(addr);
	char *key;

	if (r == NULL)
		return 0;
	if (hl + al + 2 > RESUME_KEY || (key = malloc(hl + al + 2)) == NULL)
		return -1;
	memcpy(key, host, hl);
	key[hl] = '|';
	memcpy(key + hl + 1, addr, al + 1);
	if (SSL_set_ex_data(s, ssl_idx, key) != 1) {
		free(key);
		return -1;
	}
	struct slot *sl = &r->slots[gw_strhash(key) % RESUME_SLOTS];
	SSL_SESSION *sess = NULL;
	pthread_mutex_lock(&r->mu);
	if (sl->sess != NULL && strcmp(sl->key, key) == 0 && SSL_SESSION_up_ref(sl->sess) == 1)
		sess = sl->sess;
	pthread_mutex_unlock(&r->mu);
	if (sess != NULL) {
		/* SSL_set_session takes its own reference */
		if (SSL_set_session(s, sess) != 1)
			ERR_clear_error();
		SSL_SESSION_free(sess);
	}
	return 0;
}
