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
 *
 * A verifying context also remembers chains it verified (the verified-chain
 * memo): a full handshake that presents, for the same host and address, the
 * very certificates (SHA-256 over their DER) that passed X509_verify_cert
 * under this context, within VERIFIED_TTL and before the earliest notAfter
 * of the verified chain, is accepted without building and checking the chain
 * again (an ECDSA verification and OpenSSL 3's store look-ups, ~90 us of a
 * ~500 us client handshake, measured).  The handshake itself still proves
 * that the server holds the leaf's key (CertificateVerify).  Only successes
 * are remembered; the upstream contexts check no revocation lists, so the
 * answer for the same chain, name and trust store can only change with time,
 * which the expiry bound covers.  Like the sessions, the memo dies with the
 * context (a reload or trust change starts cold).
 */
#include "core/tls_resume.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strhash.h"

#define RESUME_SLOTS 1024
#define RESUME_KEY 320
#define VERIFIED_SLOTS 1024
#define VERIFIED_TTL 300            /* seconds a verified chain is believed */
#define VERIFIED_MAX_CERTS 10       /* longer chains are always verified */

struct slot {
	char key[RESUME_KEY];
	SSL_SESSION *sess;
};

struct vslot {
	char key[RESUME_KEY];           /* host|addr; "" = empty */
	unsigned char md[32];           /* SHA-256 over the presented chain's DER */
	time_t until;
};

struct gw_tls_resume {
	pthread_mutex_t mu;         /* workers are threads sharing the context */
	int verify;                 /* the context checks peers: store verified only */
	EVP_MD *sha256;             /* fetched once (not per handshake) */
	struct slot slots[RESUME_SLOTS];
	struct vslot verified[VERIFIED_SLOTS];
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

/* SHA-256 over the DER of the leaf and the certificates sent with it. */
static int chain_digest(const struct gw_tls_resume *r, X509_STORE_CTX *x, unsigned char md[32])
{
	STACK_OF(X509) *more = X509_STORE_CTX_get0_untrusted(x);
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	int n = more != NULL ? sk_X509_num(more) : 0, ok;
	EVP_MD_CTX *h;

	if (leaf == NULL || n > VERIFIED_MAX_CERTS || (h = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(h, r->sha256, NULL) == 1;
	for (int i = -1; ok && i < n; i++) {
		unsigned char *der = NULL;
		int len = i2d_X509(i < 0 ? leaf : sk_X509_value(more, i), &der);
		ok = len > 0 && EVP_DigestUpdate(h, der, (size_t)len) == 1;
		OPENSSL_free(der);
	}
	ok = ok && EVP_DigestFinal_ex(h, md, NULL) == 1;
	EVP_MD_CTX_free(h);
	return ok ? 0 : -1;
}

/* The earliest notAfter of the verified chain (trust anchor included). */
static time_t chain_not_after(X509_STORE_CTX *x)
{
	STACK_OF(X509) *ch = X509_STORE_CTX_get0_chain(x);
	time_t min = 0;

	for (int i = 0; ch != NULL && i < sk_X509_num(ch); i++) {
		struct tm tm;
		const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(ch, i));
		if (na == NULL || ASN1_TIME_to_tm(na, &tm) != 1)
			return 0;
		time_t t = timegm(&tm);
		if (min == 0 || t < min)
			min = t;
	}
	return min;
}

/* Replaces X509_verify_cert for a verifying context's handshakes. */
static int verify_memo(X509_STORE_CTX *x, void *arg)
{
	struct gw_tls_resume *r = arg;
	SSL *s = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	const char *key = s != NULL ? SSL_get_ex_data(s, ssl_idx) : NULL;
	unsigned char md[32];
	struct vslot *v;
	time_t now = time(NULL), until;
	int ok;

	if (key == NULL || chain_digest(r, x, md) < 0) {
		ERR_clear_error();
		return X509_verify_cert(x);
	}
	v = &r->verified[gw_strhash(key) % VERIFIED_SLOTS];
	pthread_mutex_lock(&r->mu);
	ok = v->until > now && strcmp(v->key, key) == 0 && memcmp(v->md, md, sizeof md) == 0;
	pthread_mutex_unlock(&r->mu);
	if (ok) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 1;
	}
	ok = X509_verify_cert(x);
	if (ok != 1 || X509_STORE_CTX_get_error(x) != X509_V_OK)
		return ok;
	until = chain_not_after(x);
	if (until == 0)
		return ok;
	if (until > now + VERIFIED_TTL)
		until = now + VERIFIED_TTL;
	pthread_mutex_lock(&r->mu);
	strcpy(v->key, key);   /* fits: checked in gw_tls_resume_offer */
	memcpy(v->md, md, sizeof md);
	v->until = until;
	pthread_mutex_unlock(&r->mu);
	return ok;
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
	if (r->verify && (r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) != NULL)
		SSL_CTX_set_cert_verify_callback(ctx, verify_memo, r);
	ERR_clear_error();   /* no SHA-256: every chain is verified in full */
	return r;
}

void gw_tls_resume_free(struct gw_tls_resume *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < RESUME_SLOTS; i++)
		SSL_SESSION_free(r->slots[i].sess);
	EVP_MD_free(r->sha256);
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
