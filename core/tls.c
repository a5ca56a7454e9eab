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

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
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
	char id[GW_TLS_ID_LEN + 1];   /* gw_tls_client_id() */
};

struct gw_tls {
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

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";

	(void)s;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof h11 - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;   /* no h2 here: carry on without ALPN */
	return SSL_TLSEXT_ERR_OK;
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

static int sni_cb(SSL *s, int *al, void *arg)
{
	struct gw_tls *t = arg;
	const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	int best = -1, best_score = 0;

	(void)al;
	if (host == NULL)
		return SSL_TLSEXT_ERR_OK;      /* default certificate */
	for (int i = 0; i < t->ncerts && best_score < 2; i++)
		for (int j = 0; j < t->certs[i].nnames; j++) {
			int sc = name_matches(t->certs[i].names[j], host);
			if (sc > best_score) {
				best_score = sc;
				best = i;
			}
		}
	if (best >= 0 && best != t->dflt)
		SSL_set_SSL_CTX(s, t->certs[best].ctx);
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
	/* send the chain the file gives, as it is: otherwise OpenSSL tries to
	 * build one (an X509_verify_cert) on every full handshake */
	SSL_CTX_set_mode(sc->ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (SSL_CTX_use_certificate_chain_file(sc->ctx, c->cert) != 1) {
		ssl_errors(err, sizeof err);
		conf_err(errs, c->file, c->line, c->key_name, "%s: %s", c->cert, err);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(sc->ctx, c->key, SSL_FILETYPE_PEM) != 1) {
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
	SSL_CTX_set_alpn_select_cb(sc->ctx, alpn_cb, NULL);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(sc->ctx, ticket_cb);
	SSL_CTX_set_num_tickets(sc->ctx, 1);
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

/* ---- the set ---- */

struct gw_tls *gw_tls_new(const struct gw_tls_specs *sp, struct conf_errors *errs)
{
	struct gw_tls *t = calloc(1, sizeof *t);
	int bad = 0;

	if (t == NULL)
		return NULL;
	if (sp->nservers > 0) {
		t->certs = calloc(sp->nservers, sizeof *t->certs);
		if (t->certs == NULL)
			goto fail;
		t->ncerts = (int)sp->nservers;
		for (size_t i = 0; i < sp->nservers; i++) {
			if (load_server_cert(t, &t->certs[i], &sp->servers[i], errs) < 0)
				bad = 1;
			if (sp->servers[i].is_default)
				t->dflt = (int)i;
		}
		if (!bad) {
			SSL_CTX *d = t->certs[t->dflt].ctx;
			SSL_CTX_set_tlsext_servername_callback(d, sni_cb);
			SSL_CTX_set_tlsext_servername_arg(d, t);
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
	for (size_t i = 0; i < sp->nlisteners; i++)
		if (t->ncerts == 0) {
			const struct gw_tls_listener_spec *l = &sp->listeners[i];
			conf_err(errs, l->file, l->line, l->key_name, "tls = true needs %s", l->needs);
			bad = 1;
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
	for (int i = 0; i < t->ncerts; i++) {
		SSL_CTX_free(t->certs[i].ctx);
		for (int j = 0; j < t->certs[i].nnames; j++)
			free(t->certs[i].names[j]);
		free(t->certs[i].names_text);
		free(t->certs[i].ocsp);
	}
	free(t->certs);
	for (int i = 0; i < t->nclients; i++) {
		SSL_CTX_free(t->clients[i].ctx);
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

const char *gw_tls_upstream_id(const struct gw_tls *t, int i)
{
	return gw_tls_client_id(gw_tls_client_at(t, i));
}

int gw_tls_ncerts(const struct gw_tls *t) { return t ? t->ncerts : 0; }
const char *gw_tls_cert_names(const struct gw_tls *t, int i) { return t->certs[i].names_text ? t->certs[i].names_text : ""; }
long gw_tls_cert_not_after(const struct gw_tls *t, int i) { return t->certs[i].not_after; }
