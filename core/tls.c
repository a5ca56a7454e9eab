/*
 * core/tls: server and client SSL_CTX sets per configuration generation
 * (see tls.h).  Traps from notes/core-techniques.md section 4: options and
 * ticket handling must sit on the context an SSL was created from (the
 * default one), not on the SNI-selected one; OpenSSL 3 reports a missing
 * close_notify as an error unless SSL_OP_IGNORE_UNEXPECTED_EOF is set.
 *
 * Every error names the file, line and key its spec carries, so the texts
 * are the side's own (the golden tests compare them byte for byte).
 */
#include "core/tls.h"
#include "core/tls_resume.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "core/log.h"

#define MAX_NAMES 64
#define TICKET_ROTATE_SECS (12 * 3600)

struct srv_cert {
	SSL_CTX *ctx;
	char *live_id;             /* gw_tls_live_install() may replace it; NULL = never */
	char *names[MAX_NAMES];    /* lower-case SAN DNS names (or CN) */
	int nnames;
	char *names_text;
	long not_after;
	unsigned char *ocsp;       /* DER OCSP response to staple, or NULL */
	long ocsp_len;
};

struct gw_tls_client {
	SSL_CTX *ctx;
	char *name;                /* NULL = unnamed */
	char *sni;
	int sni_host;              /* no sni: send the host connected to (a name) */
	struct gw_tls_resume *resume;   /* NULL: no session resumption */
	char id[GW_TLS_ID_LEN + 1];   /* gw_tls_client_id() */
};

/* Client certificates asked for under some SNI names (gw_tls_verify_spec). */
struct srv_verify {
	int id;
	char **hosts;
	size_t nhosts;
	X509_STORE *store;
	STACK_OF(X509_NAME) *names;    /* CA names sent in the CertificateRequest */
	int required;
	unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
	unsigned sidlen;
};

/* A listener's own policy, applied to each SSL accepted on it. */
struct lst_policy {
	const void *listener;
	int min_version;
	char *ciphers, *ciphersuites, *groups;
};

/* A certificate pinned to one listener (gw_tls_server_spec.listener). */
struct srv_pin {
	const void *listener;
	struct srv_cert sc;
};

struct gw_tls {
	struct srv_pin *pins;
	int npins;
	struct lst_policy *lpol;
	int nlpol;
	struct srv_verify *verifies;
	int nverifies;
	struct srv_cert *certs;
	int ncerts;
	int dflt;
	struct gw_tls_client *clients;
	int nclients;
	struct gw_tls_client **by_index;   /* [index] -> client, NULL when none */
	int nindex;
};

/* ---- session ticket keys: process-wide, survive reloads ---- */

struct ticket_key {
	unsigned char name[16], aes[32], hmac[32];
	time_t born;
};

static pthread_mutex_t tk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_key tk_cur, tk_prev;
static int tk_have;

static void tk_fresh(struct ticket_key *k)
{
	RAND_bytes(k->name, sizeof k->name);
	RAND_bytes(k->aes, sizeof k->aes);
	RAND_bytes(k->hmac, sizeof k->hmac);
	k->born = time(NULL);
}

static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv,
    EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	OSSL_PARAM params[3];
	int r = 1;

	pthread_mutex_lock(&tk_lock);
	if (!tk_have || time(NULL) - tk_cur.born > TICKET_ROTATE_SECS) {
		tk_prev = tk_cur;
		tk_fresh(&tk_cur);
		if (!tk_have)
			tk_prev = tk_cur;
		tk_have = 1;
	}
	if (enc) {
		k = tk_cur;
	} else if (memcmp(key_name, tk_cur.name, 16) == 0) {
		k = tk_cur;
		/* TLS 1.3 clients use a ticket once (RFC 8446 C.4; OpenSSL's,
		 * wrk's): with no new ticket after a resumption, their next
		 * connection is a full handshake.  OpenSSL renews by itself only
		 * with its built-in keys; a key callback has to ask. */
		if (SSL_version(s) == TLS1_3_VERSION)
			r = 2;
	} else if (memcmp(key_name, tk_prev.name, 16) == 0) {
		k = tk_prev;
		r = 2;   /* valid, but issue a new ticket with the current key */
	} else {
		pthread_mutex_unlock(&tk_lock);
		return 0;
	}
	pthread_mutex_unlock(&tk_lock);
	params[0] = OSSL_PARAM_construct_octet_string("key", k.hmac, sizeof k.hmac);
	params[1] = OSSL_PARAM_construct_utf8_string("digest", (char *)"sha256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(key_name, k.name, 16);
		if (RAND_bytes(iv, 16) <= 0 ||
		    !EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) ||
		    !EVP_MAC_CTX_set_params(hctx, params))
			return -1;
		return 1;
	}
	if (!EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) ||
	    !EVP_MAC_CTX_set_params(hctx, params))
		return -1;
	return r;
}

/* ---- server side ---- */

/* ---- ALPN: http/1.1, and h2 where the listener allows it ---- */

static int h2_idx = -1;
static pthread_once_t h2_once = PTHREAD_ONCE_INIT;

static void h2_idx_make(void)
{
	h2_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void gw_tls_allow_h2(SSL *s)
{
	pthread_once(&h2_once, h2_idx_make);
	if (h2_idx >= 0)
		SSL_set_ex_data(s, h2_idx, (void *)1);
}

int gw_tls_is_h2(const SSL *s)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(s, &p, &n);
	return n == 2 && memcmp(p, "h2", 2) == 0;
}

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	static const unsigned char both[] = "\x02h2\x08http/1.1";   /* ours first: h2 preferred */
	int h2 = h2_idx >= 0 && SSL_get_ex_data(s, h2_idx) != NULL;

	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, h2 ? both : h11,
	    h2 ? sizeof both - 1 : sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;   /* nothing in common: carry on without ALPN */
	return SSL_TLSEXT_ERR_OK;
}

void gw_tls_ctx_alpn(SSL_CTX *ctx)
{
	pthread_once(&h2_once, h2_idx_make);   /* (h2_idx for alpn_cb) */
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
}

static int name_matches(const char *pattern, const char *host)
{
	if (strcasecmp(pattern, host) == 0)
		return 2;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(host, '.');
		/* one label only, as certificate wildcards do */
		if (dot != NULL && dot != host && strcasecmp(dot + 1, pattern + 2) == 0)
			return 1;
	}
	return 0;
}

/* ---- contexts a side replaces at run time: process-wide, by name ----
 * Live certificates (gw_tls_live_install) and TLS-ALPN-01 challenge
 * certificates (gw_tls_acme_challenge_set), each a set of (name, context)
 * under one lock; names compare without case. */

struct named_ctx {
	char *name;
	SSL_CTX *ctx;
};

struct ctx_set {
	struct named_ctx *v;
	size_t n;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ctx_set live, chals;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void set_clear(struct ctx_set *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].name);
		SSL_CTX_free(st->v[i].ctx);
	}
	free(st->v);
	st->v = NULL;
	st->n = 0;
}

static void live_free_all(void)
{
	pthread_mutex_lock(&live_lock);
	set_clear(&live);
	set_clear(&chals);
	pthread_mutex_unlock(&live_lock);
}

static void live_atexit(void)
{
	atexit(live_free_all);
}

/* name's context in st, with a reference for the caller; NULL = none. */
static SSL_CTX *set_get(struct ctx_set *st, const char *name)
{
	SSL_CTX *c = NULL;

	pthread_mutex_lock(&live_lock);
	for (size_t i = 0; i < st->n; i++)
		if (strcasecmp(st->v[i].name, name) == 0) {
			c = st->v[i].ctx;
			SSL_CTX_up_ref(c);
			break;
		}
	pthread_mutex_unlock(&live_lock);
	return c;
}

/* Make ctx (its reference taken over, freed on failure) name's in st.  0, or -1. */
static int set_put(struct ctx_set *st, const char *name, SSL_CTX *ctx)
{
	struct named_ctx *nv;
	char *nn;

	pthread_once(&live_once, live_atexit);
	pthread_mutex_lock(&live_lock);
	for (size_t i = 0; i < st->n; i++)
		if (strcasecmp(st->v[i].name, name) == 0) {
			SSL_CTX_free(st->v[i].ctx);
			st->v[i].ctx = ctx;
			pthread_mutex_unlock(&live_lock);
			return 0;
		}
	nv = realloc(st->v, (st->n + 1) * sizeof *st->v);
	nn = strdup(name);
	if (nv != NULL)
		st->v = nv;
	if (nv == NULL || nn == NULL) {
		pthread_mutex_unlock(&live_lock);
		free(nn);
		SSL_CTX_free(ctx);
		return -1;
	}
	st->v[st->n].name = nn;
	st->v[st->n].ctx = ctx;
	st->n++;
	pthread_mutex_unlock(&live_lock);
	return 0;
}

static void set_del(struct ctx_set *st, const char *name)
{
	pthread_mutex_lock(&live_lock);
	for (size_t i = 0; i < st->n; i++)
		if (strcasecmp(st->v[i].name, name) == 0) {
			free(st->v[i].name);
			SSL_CTX_free(st->v[i].ctx);
			st->v[i] = st->v[--st->n];
			break;
		}
	if (st->n == 0)
		set_clear(st);
	pthread_mutex_unlock(&live_lock);
}

/* ---- client certificates (per SNI name) ---- */

static void ssl_errors(char *buf, size_t len);

static int vx_idx = -1;        /* SSL ex_data: the verify spec's id + 1 */
static int ax_idx = -1;        /* SSL ex_data: non-NULL = a TLS-ALPN-01 validation */
static pthread_once_t vx_once = PTHREAD_ONCE_INIT;

static void vx_init(void)
{
	vx_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ax_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- TLS-ALPN-01 challenge certificates (RFC 8737): process-wide ---- */


static const unsigned char acme_tls1[] = "\x0a" "acme-tls/1";

static int acme_alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)s;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, acme_tls1, sizeof acme_tls1 - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

int gw_tls_acme_challenge_set(const char *name, X509 *x, EVP_PKEY *k)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_alpn_select_cb(ctx, acme_alpn_cb, NULL);
	return set_put(&chals, name, ctx);
}

void gw_tls_acme_challenge_clear(const char *name)
{
	set_del(&chals, name);
}

/* A validator's hello offers acme-tls/1 alone (RFC 8737 3): the challenge
 * context for host, with a reference; NULL = an ordinary hello, or no
 * challenge waits for host. */
static SSL_CTX *acme_hello(SSL *s, const char *host)
{
	const unsigned char *p;
	size_t len;

	if (!SSL_client_hello_get0_ext(s, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) ||
	    len != sizeof acme_tls1 + 1 || p[0] != 0 || p[1] != sizeof acme_tls1 - 1 ||
	    memcmp(p + 2, acme_tls1, sizeof acme_tls1 - 1) != 0)
		return NULL;
	return set_get(&chals, host);
}

/* optional: the handshake goes on whatever the certificate; the verdict
 * stays in SSL_get_verify_result() for the side */
static int verify_optional_cb(int preverify, X509_STORE_CTX *x)
{
	(void)preverify;
	(void)x;
	return 1;
}

/*
 * If host is one of a verify spec's names (exact first, then a wildcard),
 * ask for a client certificate under that spec's CA.  Called from the SNI
 * callback after the certificate's context is chosen: SSL_set_SSL_CTX()
 * replaces the verify store and resets the session id context, so both are
 * set after it.  The per-spec session id context keeps a session made
 * without a client certificate (another site, or none) from being resumed
 * here (nginx's CVE-2014-3616 class).
 */
static void verify_select(struct gw_tls *t, SSL *s, const char *host)
{
	struct srv_verify *v = NULL;
	int best = 0;

	for (int i = 0; i < t->nverifies && best < 2; i++)
		for (size_t j = 0; j < t->verifies[i].nhosts; j++) {
			int sc = name_matches(t->verifies[i].hosts[j], host);
			if (sc > best) {
				best = sc;
				v = &t->verifies[i];
			}
		}
	if (v == NULL)
		return;
	SSL_set_ex_data(s, vx_idx, (void *)(intptr_t)(v->id + 1));
	SSL_set1_verify_cert_store(s, v->store);
	SSL_set_client_CA_list(s, SSL_dup_CA_list(v->names));
	SSL_set_session_id_context(s, v->sid, v->sidlen);
	SSL_set_verify(s, SSL_VERIFY_PEER | (v->required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
	    v->required ? NULL : verify_optional_cb);
}

int gw_tls_client_cert(SSL *s, int id, char *subject, size_t slen, char fp[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	X509 *x;
	BIO *b;
	long n;

	if (s == NULL || vx_idx < 0 || (intptr_t)SSL_get_ex_data(s, vx_idx) != (intptr_t)id + 1)
		return 0;
	x = SSL_get0_peer_certificate(s);
	if (x == NULL || SSL_get_verify_result(s) != X509_V_OK)
		return 0;
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		return 0;
	for (unsigned i = 0; i < mdlen; i++) {
		fp[2 * i] = hex[md[i] >> 4];
		fp[2 * i + 1] = hex[md[i] & 15];
	}
	fp[64] = '\0';
	subject[0] = '\0';
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return 0;
	/* RFC 2253 escapes controls and non-ASCII bytes (\XX), so the text
	 * is safe in a header; the loop below is a second guard */
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
	n = BIO_read(b, subject, (int)slen - 1);
	BIO_free(b);
	subject[n > 0 ? n : 0] = '\0';
	for (char *p = subject; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return 1;
}

/*
 * The client hello callback runs before OpenSSL looks up a TLS 1.2 session
 * (the SNI callback runs after it): the session id context must be the
 * site's by then, or a session from a site that asked no certificate would
 * be resumed on one that requires it.  So the SNI is read here from the raw
 * extension (RFC 6066 3: list length, then type 0, length, name).
 */
static int client_hello_cb(SSL *s, int *al, void *arg)
{
	struct gw_tls *t = arg;
	SSL_CTX *ac;
	const unsigned char *p;
	size_t len, nlen;
	char host[256];

	(void)al;
	if (!SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) || len < 5 ||
	    (((size_t)p[0] << 8) | p[1]) != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name)
		return SSL_CLIENT_HELLO_SUCCESS;
	nlen = ((size_t)p[3] << 8) | p[4];
	if (nlen == 0 || nlen >= sizeof host || nlen > len - 5 || memchr(p + 5, 0, nlen) != NULL)
		return SSL_CLIENT_HELLO_SUCCESS;   /* OpenSSL itself refuses it later */
	memcpy(host, p + 5, nlen);
	host[nlen] = '\0';
	/* the ALPN callback cannot change the certificate and the SNI
	 * callback cannot see the ALPN list: a validator is told apart here */
	if ((ac = acme_hello(s, host)) != NULL) {
		SSL_set_SSL_CTX(s, ac);
		SSL_CTX_free(ac);
		SSL_set_ex_data(s, ax_idx, (void *)1);
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	verify_select(t, s, host);
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int load_verify(struct srv_verify *v, const struct gw_tls_verify_spec *vs, struct conf_errors *errs)
{
	char err[256];

	v->id = vs->id;
	v->required = vs->required;
	v->hosts = calloc(vs->nhosts ? vs->nhosts : 1, sizeof *v->hosts);
	if (v->hosts == NULL)
		return -1;
	for (size_t i = 0; i < vs->nhosts; i++) {
		if ((v->hosts[i] = strdup(vs->hosts[i])) == NULL)
			return -1;
		v->nhosts++;
	}
	v->sidlen = (unsigned)snprintf((char *)v->sid, sizeof v->sid, "gw-verify-%d", vs->id);
	v->store = X509_STORE_new();
	if (v->store == NULL || X509_STORE_load_file(v->store, vs->ca_file) != 1 ||
	    (v->names = SSL_load_client_CA_file(vs->ca_file)) == NULL) {
		ssl_errors(err, sizeof err);
		conf_err(errs, vs->file, vs->line, vs->key_name, "%s: no CA certificate could be read (%s)",
		    vs->ca_file, err);
		return -1;
	}
	return 0;
}

/* Serve certificate i: its live replacement when it has one. */
static void use_cert(struct gw_tls *t, SSL *s, int i)
{
	SSL_CTX *lc = t->certs[i].live_id != NULL ? set_get(&live, t->certs[i].live_id) : NULL;

	if (lc != NULL) {
		SSL_set_SSL_CTX(s, lc);        /* takes its own reference */
		SSL_CTX_free(lc);
	} else if (i != t->dflt) {
		SSL_set_SSL_CTX(s, t->certs[i].ctx);
	}
}

static int sni_cb(SSL *s, int *al, void *arg)
{
	struct gw_tls *t = arg;
	const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	int best = -1, best_score = 0;

	(void)al;
	if (ax_idx >= 0 && SSL_get_ex_data(s, ax_idx) != NULL)
		return SSL_TLSEXT_ERR_OK;      /* a TLS-ALPN-01 validation: its certificate is set */
	if (host == NULL) {
		use_cert(t, s, t->dflt);       /* the default certificate */
		return SSL_TLSEXT_ERR_OK;
	}
	for (int i = 0; i < t->ncerts && best_score < 2; i++)
		for (int j = 0; j < t->certs[i].nnames; j++) {
			int sc = name_matches(t->certs[i].names[j], host);
			if (sc > best_score) {
				best_score = sc;
				best = i;
			}
		}
	use_cert(t, s, best >= 0 ? best : t->dflt);
	/* again: SSL_set_SSL_CTX() replaced the verify store */
	verify_select(t, s, host);
	return SSL_TLSEXT_ERR_OK;
}

static int ocsp_cb(SSL *s, void *arg)
{
	struct gw_tls *t = arg;
	SSL_CTX *ctx = SSL_get_SSL_CTX(s);

	for (int i = 0; i < t->ncerts; i++)
		if (t->certs[i].ctx == ctx && t->certs[i].ocsp != NULL) {
			unsigned char *copy = OPENSSL_malloc((size_t)t->certs[i].ocsp_len);
			if (copy == NULL)
				return SSL_TLSEXT_ERR_NOACK;
			memcpy(copy, t->certs[i].ocsp, (size_t)t->certs[i].ocsp_len);
			SSL_set_tlsext_status_ocsp_resp(s, copy, t->certs[i].ocsp_len);
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;
}

static void ssl_errors(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static void add_name(struct srv_cert *sc, const char *name, size_t len)
{
	char *n;

	if (sc->nnames >= MAX_NAMES || len == 0)
		return;
	n = malloc(len + 1);
	if (n == NULL)
		return;
	for (size_t i = 0; i < len; i++)
		n[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	n[len] = '\0';
	sc->names[sc->nnames++] = n;
}

static void cert_names(struct srv_cert *sc, X509 *x)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t tl = 0;

	if (sans != NULL) {
		for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
			if (g->type == GEN_DNS)
				add_name(sc, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
				    (size_t)ASN1_STRING_length(g->d.dNSName));
		}
		GENERAL_NAMES_free(sans);
	}
	if (sc->nnames == 0) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
		if (n > 0)
			add_name(sc, cn, (size_t)n);
	}
	for (int i = 0; i < sc->nnames; i++)
		tl += strlen(sc->names[i]) + 2;
	sc->names_text = calloc(1, tl + 1);
	if (sc->names_text != NULL)
		for (int i = 0; i < sc->nnames; i++) {
			if (i > 0)
				strcat(sc->names_text, ", ");
			strcat(sc->names_text, sc->names[i]);
		}
	{
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
			sc->not_after = (long)timegm(&tm);
	}
}

static void base_options(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!SHA1");
	/* one read(2) takes a whole record, not its 5-byte header first; the
	 * record layer may then hold bytes epoll cannot see: conn.c checks
	 * SSL_has_pending() wherever it would otherwise wait for the socket */
	SSL_CTX_set_read_ahead(ctx, 1);
}

/* The side checked the strings; a failure here is reported all the same. */
static int apply_policy(SSL_CTX *ctx, const struct gw_tls_policy *p, const struct gw_tls_server_spec *c,
    struct conf_errors *errs)
{
	char err[256];

	if ((p->min_version != 0 && SSL_CTX_set_min_proto_version(ctx, p->min_version) != 1) ||
	    (p->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, p->ciphers) != 1) ||
	    (p->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, p->ciphersuites) != 1) ||
	    (p->groups != NULL && SSL_CTX_set1_groups_list(ctx, p->groups) != 1)) {
		ssl_errors(err, sizeof err);
		conf_err(errs, c->file, c->line, c->key_name, "TLS policy: %s", err);
		return -1;
	}
	return 0;
}

/* What every server context has, whoever loads its certificate. */
static void server_callbacks(SSL_CTX *ctx)
{
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_num_tickets(ctx, 1);
}

int gw_tls_live_install(const char *id, const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	base_options(ctx);
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_errors(err, errlen);
		SSL_CTX_free(ctx);
		return -1;
	}
	server_callbacks(ctx);
	if (set_put(&live, id, ctx) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_server_cert(struct gw_tls *t, struct srv_cert *sc, const struct gw_tls_server_spec *c,
    struct conf_errors *errs)
{
	char err[256];
	X509 *x;

	sc->ctx = SSL_CTX_new(TLS_server_method());
	if (sc->ctx == NULL) {
		conf_err(errs, c->file, c->line, c->key_name, "cannot create a TLS context");
		return -1;
	}
	base_options(sc->ctx);
	if (apply_policy(sc->ctx, &c->policy, c, errs) < 0)
		return -1;
	/* send the chain the file gives, as it is: otherwise OpenSSL tries to
	 * build one (an X509_verify_cert) on every full handshake */
	SSL_CTX_set_mode(sc->ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (c->live_id != NULL && (sc->live_id = strdup(c->live_id)) == NULL) {
		conf_err(errs, c->file, c->line, c->key_name, "out of memory");
		return -1;
	}
	if (c->cert == NULL) {
		if (SSL_CTX_use_certificate(sc->ctx, c->mem_cert) != 1 ||
		    SSL_CTX_use_PrivateKey(sc->ctx, c->mem_key) != 1) {
			ssl_errors(err, sizeof err);
			conf_err(errs, c->file, c->line, c->key_name, "%s", err);
			return -1;
		}
	} else if (SSL_CTX_use_certificate_chain_file(sc->ctx, c->cert) != 1) {
		ssl_errors(err, sizeof err);
		conf_err(errs, c->file, c->line, c->key_name, "%s: %s", c->cert, err);
		return -1;
	}
	if (c->cert != NULL && SSL_CTX_use_PrivateKey_file(sc->ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			conf_err(errs, c->file, c->line, c->key_name,
			    "%s does not match the certificate in %s", c->key, c->cert);
			return -1;
		}
		ssl_errors(err, sizeof err);
		conf_err(errs, c->file, c->line, c->key_name, "%s: %s", c->key, err);
		return -1;
	}
	if (SSL_CTX_check_private_key(sc->ctx) != 1) {
		ERR_clear_error();
		conf_err(errs, c->file, c->line, c->key_name,
		    "%s does not match the certificate in %s", c->key, c->cert);
		return -1;
	}
	x = SSL_CTX_get0_certificate(sc->ctx);
	if (x != NULL)
		cert_names(sc, x);
	server_callbacks(sc->ctx);
	if (c->ocsp != NULL) {
		FILE *f = fopen(c->ocsp, "rb");
		long n = -1;
		if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
		    fseek(f, 0, SEEK_SET) == 0 && (sc->ocsp = malloc((size_t)n)) != NULL &&
		    fread(sc->ocsp, 1, (size_t)n, f) == (size_t)n) {
			sc->ocsp_len = n;
		} else {
			free(sc->ocsp);
			sc->ocsp = NULL;
			conf_err(errs, c->file, c->line, c->key_name, "%s: cannot read OCSP response",
			    c->ocsp);
			if (f != NULL)
				fclose(f);
			return -1;
		}
		fclose(f);
		SSL_CTX_set_tlsext_status_cb(sc->ctx, ocsp_cb);
		SSL_CTX_set_tlsext_status_arg(sc->ctx, t);
	}
	return 0;
}

static SSL_CTX *client_ctx(const struct gw_tls_client_spec *u, struct conf_errors *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char err[256];

	if (ctx == NULL)
		return NULL;
	base_options(ctx);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (u->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (u->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL) != 1 :
		    SSL_CTX_set_default_verify_paths(ctx) != 1) {
			ssl_errors(err, sizeof err);
			conf_err(errs, u->file, u->line, u->key_name, "%s: %s",
			    u->ca_file ? u->ca_file : "system store", err);
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

/*
 * What a connection made from client spec u is accepted under: the verify switch, the
 * CA file's path and bytes (a reload that changes the file changes it) and
 * the SNI name, as the first 16 bytes of their SHA-256 in hex.  The upstream
 * pool keys TLS connections with it, so a connection made under one setting
 * never serves another.  The file was read once already by client_ctx(); a
 * read error here only leaves its bytes out.
 */
static void client_identity(const struct gw_tls_client_spec *u, char out[GW_TLS_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	char buf[8192];
	size_t n;

	memset(out, '0', GW_TLS_ID_LEN);
	out[GW_TLS_ID_LEN] = '\0';
	if (m == NULL || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1)
		goto done;
	n = (size_t)snprintf(buf, sizeof buf, "verify=%d", u->verify ? 1 : 0);
	EVP_DigestUpdate(m, buf, n + 1);
	/* each field with its terminating NUL, so fields cannot run together */
	EVP_DigestUpdate(m, "sni=", 4);
	if (u->sni != NULL)
		EVP_DigestUpdate(m, u->sni, strlen(u->sni) + 1);
	else
		EVP_DigestUpdate(m, u->sni_host ? "\0\1" : "\0\0", 2);   /* unlike any name */
	EVP_DigestUpdate(m, "ca=", 3);
	if (u->verify && u->ca_file != NULL) {
		FILE *f = fopen(u->ca_file, "rb");
		EVP_DigestUpdate(m, u->ca_file, strlen(u->ca_file) + 1);
		if (f != NULL) {
			while ((n = fread(buf, 1, sizeof buf, f)) > 0)
				EVP_DigestUpdate(m, buf, n);
			fclose(f);
		}
	}
	if (EVP_DigestFinal_ex(m, md, &mdlen) != 1 || mdlen * 2 < GW_TLS_ID_LEN)
		goto done;
	for (int i = 0; i < GW_TLS_ID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
done:
	EVP_MD_CTX_free(m);
}

/* ---- specs ---- */

void gw_tls_specs_init(struct gw_tls_specs *sp)
{
	memset(sp, 0, sizeof *sp);
}

void gw_tls_specs_free(struct gw_tls_specs *sp)
{
	free(sp->servers);
	free(sp->clients);
	free(sp->listeners);
	free(sp->verifies);
	gw_tls_specs_init(sp);
}

/* Append the size-byte item to *arr (n items, room for *cap). */
static int spec_push(void *arr, size_t *n, size_t *cap, size_t size, const void *item)
{
	char **a = arr;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		char *na = realloc(*a, ncap * size);
		if (na == NULL)
			return -1;
		*a = na;
		*cap = ncap;
	}
	memcpy(*a + *n * size, item, size);
	(*n)++;
	return 0;
}

int gw_tls_specs_add_server(struct gw_tls_specs *sp, const struct gw_tls_server_spec *s)
{
	return spec_push(&sp->servers, &sp->nservers, &sp->cap_servers, sizeof *s, s);
}

int gw_tls_specs_add_client(struct gw_tls_specs *sp, const struct gw_tls_client_spec *c)
{
	return spec_push(&sp->clients, &sp->nclients, &sp->cap_clients, sizeof *c, c);
}

int gw_tls_specs_add_listener(struct gw_tls_specs *sp, const struct gw_tls_listener_spec *l)
{
	return spec_push(&sp->listeners, &sp->nlisteners, &sp->cap_listeners, sizeof *l, l);
}

int gw_tls_specs_add_verify(struct gw_tls_specs *sp, const struct gw_tls_verify_spec *v)
{
	return spec_push(&sp->verifies, &sp->nverifies, &sp->cap_verifies, sizeof *v, v);
}

/* ---- the set ---- */

/* Keep listener spec l's policy (checked on a scratch context first, so a
 * bad one is a configuration error, not a refused connection).  0, or -1. */
static int keep_listener_policy(struct gw_tls *t, const struct gw_tls_listener_spec *l,
    struct conf_errors *errs)
{
	struct lst_policy *p = &t->lpol[t->nlpol];
	struct gw_tls_server_spec probe = { .file = l->file, .line = l->line, .key_name = l->key_name };
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	int bad;

	if (c == NULL)
		return -1;
	bad = apply_policy(c, &l->policy, &probe, errs) < 0;
	SSL_CTX_free(c);
	if (bad)
		return -1;
	p->listener = l->listener;
	p->min_version = l->policy.min_version;
	if ((l->policy.ciphers != NULL && (p->ciphers = strdup(l->policy.ciphers)) == NULL) ||
	    (l->policy.ciphersuites != NULL && (p->ciphersuites = strdup(l->policy.ciphersuites)) == NULL) ||
	    (l->policy.groups != NULL && (p->groups = strdup(l->policy.groups)) == NULL)) {
		free(p->ciphers);
		free(p->ciphersuites);
		return -1;
	}
	t->nlpol++;
	return 0;
}

static void srv_cert_free(struct srv_cert *sc)
{
	SSL_CTX_free(sc->ctx);
	free(sc->live_id);
	for (int j = 0; j < sc->nnames; j++)
		free(sc->names[j]);
	free(sc->names_text);
	free(sc->ocsp);
}

/* The certificates pinned to a listener: contexts of their own, without
 * the SNI callbacks of the shared set, each with a session id context of
 * its own so that a session is resumed only on its listener.  0, or -1. */
static int load_pins(struct gw_tls *t, const struct gw_tls_specs *sp, struct conf_errors *errs)
{
	size_t n = 0;
	int bad = 0;

	for (size_t i = 0; i < sp->nservers; i++)
		n += sp->servers[i].listener != NULL;
	if (n == 0)
		return 0;
	if ((t->pins = calloc(n, sizeof *t->pins)) == NULL)
		return -1;
	for (size_t i = 0; i < sp->nservers; i++) {
		const struct gw_tls_server_spec *c = &sp->servers[i];
		struct srv_pin *p = &t->pins[t->npins];
		char sid[32];
		if (c->listener == NULL)
			continue;
		p->listener = c->listener;
		t->npins++;
		if (load_server_cert(t, &p->sc, c, errs) < 0) {
			bad = 1;
			continue;
		}
		snprintf(sid, sizeof sid, "gw-pin-%d", t->npins);
		SSL_CTX_set_session_id_context(p->sc.ctx, (const unsigned char *)sid, (unsigned)strlen(sid));
	}
	return bad ? -1 : 0;
}

struct gw_tls *gw_tls_new(const struct gw_tls_specs *sp, struct conf_errors *errs)
{
	struct gw_tls *t = calloc(1, sizeof *t);
	int bad = 0;

	if (t == NULL)
		return NULL;
	pthread_once(&vx_once, vx_init);
	/* registered before any user of the live sets (the ACME client's stop
	 * handler, which joins its thread) so it runs after them */
	pthread_once(&live_once, live_atexit);
	if (sp->nverifies > 0) {
		t->verifies = calloc(sp->nverifies, sizeof *t->verifies);
		if (t->verifies == NULL)
			goto fail;
		t->nverifies = (int)sp->nverifies;
		for (size_t i = 0; i < sp->nverifies; i++)
			if (load_verify(&t->verifies[i], &sp->verifies[i], errs) < 0)
				bad = 1;
	}
	if (load_pins(t, sp, errs) < 0)
		bad = 1;
	if (sp->nservers > (size_t)t->npins) {
		t->certs = calloc(sp->nservers, sizeof *t->certs);
		if (t->certs == NULL)
			goto fail;
		for (size_t i = 0; i < sp->nservers; i++) {
			if (sp->servers[i].listener != NULL)
				continue;   /* (load_pins) */
			if (load_server_cert(t, &t->certs[t->ncerts], &sp->servers[i], errs) < 0)
				bad = 1;
			if (sp->servers[i].is_default)
				t->dflt = t->ncerts;
			t->ncerts++;
		}
		if (!bad) {
			SSL_CTX *d = t->certs[t->dflt].ctx;
			SSL_CTX_set_tlsext_servername_callback(d, sni_cb);
			SSL_CTX_set_tlsext_servername_arg(d, t);
			SSL_CTX_set_client_hello_cb(d, client_hello_cb, t);
		}
	}
	if (sp->nclients > 0) {
		int maxi = -1;
		t->clients = calloc(sp->nclients, sizeof *t->clients);
		if (t->clients == NULL)
			goto fail;
		t->nclients = (int)sp->nclients;
		for (size_t i = 0; i < sp->nclients; i++) {
			const struct gw_tls_client_spec *u = &sp->clients[i];
			struct gw_tls_client *c = &t->clients[i];
			if (u->index > maxi)
				maxi = u->index;
			c->ctx = client_ctx(u, errs);
			c->sni_host = u->sni_host;
			if (c->ctx == NULL)
				bad = 1;
			else if (u->resume && (c->resume = gw_tls_resume_new(c->ctx)) == NULL)
				goto fail;
			if ((u->name != NULL && (c->name = strdup(u->name)) == NULL) ||
			    (u->sni != NULL && (c->sni = strdup(u->sni)) == NULL))
				goto fail;
			client_identity(u, c->id);
		}
		if (maxi >= 0) {
			t->by_index = calloc((size_t)maxi + 1, sizeof *t->by_index);
			if (t->by_index == NULL)
				goto fail;
			t->nindex = maxi + 1;
			for (int i = 0; i < t->nclients; i++)
				if (sp->clients[i].index >= 0 && t->by_index[sp->clients[i].index] == NULL)
					t->by_index[sp->clients[i].index] = &t->clients[i];
		}
	}
	if (sp->nlisteners > 0 && (t->lpol = calloc(sp->nlisteners, sizeof *t->lpol)) == NULL)
		goto fail;
	for (size_t i = 0; i < sp->nlisteners; i++) {
		const struct gw_tls_listener_spec *l = &sp->listeners[i];
		if (t->ncerts == 0) {
			conf_err(errs, l->file, l->line, l->key_name, "tls = true needs %s", l->needs);
			bad = 1;
		} else if (l->has_policy && keep_listener_policy(t, l, errs) < 0) {
			bad = 1;
		}
	}
	if (bad)
		goto fail;
	return t;
fail:
	gw_tls_free(t);
	return NULL;
}

void gw_tls_free(struct gw_tls *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->nlpol; i++) {
		free(t->lpol[i].ciphers);
		free(t->lpol[i].ciphersuites);
		free(t->lpol[i].groups);
	}
	free(t->lpol);
	for (int i = 0; i < t->nverifies; i++) {
		for (size_t j = 0; j < t->verifies[i].nhosts; j++)
			free(t->verifies[i].hosts[j]);
		free(t->verifies[i].hosts);
		X509_STORE_free(t->verifies[i].store);
		sk_X509_NAME_pop_free(t->verifies[i].names, X509_NAME_free);
	}
	free(t->verifies);
	for (int i = 0; i < t->ncerts; i++)
		srv_cert_free(&t->certs[i]);
	free(t->certs);
	for (int i = 0; i < t->npins; i++)
		srv_cert_free(&t->pins[i].sc);
	free(t->pins);
	for (int i = 0; i < t->nclients; i++) {
		SSL_CTX_free(t->clients[i].ctx);
		gw_tls_resume_free(t->clients[i].resume);
		free(t->clients[i].name);
		free(t->clients[i].sni);
	}
	free(t->clients);
	free(t->by_index);
	free(t);
}

int gw_tls_has_server(const struct gw_tls *t) { return t != NULL && t->ncerts > 0; }

SSL *gw_tls_server_ssl(struct gw_tls *t)
{
	if (!gw_tls_has_server(t))
		return NULL;
	return SSL_new(t->certs[t->dflt].ctx);
}

SSL *gw_tls_server_ssl_on(struct gw_tls *t, const void *listener)
{
	SSL *s;

	for (int i = 0; t != NULL && i < t->npins; i++)
		if (t->pins[i].listener == listener)
			return t->pins[i].sc.ctx != NULL ? SSL_new(t->pins[i].sc.ctx) : NULL;
	s = gw_tls_server_ssl(t);

	for (int i = 0; s != NULL && i < t->nlpol; i++) {
		const struct lst_policy *p = &t->lpol[i];
		if (p->listener != listener)
			continue;
		/* SSL-level settings: an SNI switch of context keeps them */
		if ((p->min_version != 0 && SSL_set_min_proto_version(s, p->min_version) != 1) ||
		    (p->ciphers != NULL && SSL_set_cipher_list(s, p->ciphers) != 1) ||
		    (p->ciphersuites != NULL && SSL_set_ciphersuites(s, p->ciphersuites) != 1) ||
		    (p->groups != NULL && SSL_set1_groups_list(s, p->groups) != 1)) {
			ERR_clear_error();
			SSL_free(s);
			return NULL;
		}
		break;
	}
	return s;
}


const struct gw_tls_client *gw_tls_client_find(const struct gw_tls *t, const char *name)
{
	if (t == NULL || name == NULL)
		return NULL;
	for (int i = 0; i < t->nclients; i++)
		if (t->clients[i].name != NULL && strcmp(t->clients[i].name, name) == 0)
			return &t->clients[i];
	return NULL;
}

const struct gw_tls_client *gw_tls_client_at(const struct gw_tls *t, int i)
{
	return t != NULL && i >= 0 && i < t->nindex ? t->by_index[i] : NULL;
}

SSL *gw_tls_client_ssl(const struct gw_tls_client *c, const char *host)
{
	SSL *s;
	int verify;

	if (c == NULL)
		return NULL;
	s = SSL_new(c->ctx);
	if (s == NULL)
		return NULL;
	verify = (SSL_CTX_get_verify_mode(c->ctx) & SSL_VERIFY_PEER) != 0;
	if (c->sni != NULL) {
		SSL_set_tlsext_host_name(s, c->sni);
		if (verify && SSL_set1_host(s, c->sni) != 1)
			goto fail;
	} else if (host != NULL) {
		struct in6_addr ip;
		if (c->sni_host && inet_pton(AF_INET, host, &ip) != 1 && inet_pton(AF_INET6, host, &ip) != 1)
			SSL_set_tlsext_host_name(s, host);
		if (!verify)
			return s;
		/* without a name to check, any certificate the CA (or the system
		 * store) signed would pass: check the server's own address, as
		 * nginx's proxy_ssl_verify does (an IP literal against the
		 * certificate's IP addresses) */
		X509_VERIFY_PARAM *vp = SSL_get0_param(s);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 && SSL_set1_host(s, host) != 1)
			goto fail;
	}
	return s;
fail:
	SSL_free(s);
	return NULL;
}

const char *gw_tls_client_id(const struct gw_tls_client *c) { return c != NULL ? c->id : ""; }

SSL *gw_tls_upstream_ssl(struct gw_tls *t, int i, const char *host)
{
	return gw_tls_client_ssl(gw_tls_client_at(t, i), host);
}

void gw_tls_upstream_resume(struct gw_tls *t, int i, SSL *s, const char *host, const char *addr)
{
	const struct gw_tls_client *c = gw_tls_client_at(t, i);

	if (c != NULL && c->resume != NULL && host != NULL && addr != NULL)
		(void)gw_tls_resume_offer(c->resume, s, host, addr);   /* failing: a full handshake */
}

const char *gw_tls_upstream_id(const struct gw_tls *t, int i)
{
	return gw_tls_client_id(gw_tls_client_at(t, i));
}

int gw_tls_ncerts(const struct gw_tls *t) { return t ? t->ncerts : 0; }
const char *gw_tls_cert_names(const struct gw_tls *t, int i) { return t->certs[i].names_text ? t->certs[i].names_text : ""; }
long gw_tls_cert_not_after(const struct gw_tls *t, int i) { return t->certs[i].not_after; }
