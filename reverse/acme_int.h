/*
 * reverse/acme_int: what the ACME client's files share (not for the rest of
 * the reverse side, which uses reverse/acme.h): the blocking HTTPS client
 * the ACME thread talks to the server with (acme_http.c), and JOSE, keys,
 * CSRs and certificate files (acme_jose.c).  All of it runs on the ACME
 * thread, except acme_jose_placeholder (main thread, at configuration load).
 */
#ifndef GW_ACME_INT_H
#define GW_ACME_INT_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* ---- acme_http.c ---- */

struct acme_resp {
	int status;
	char *body;                /* NUL-terminated (malloc); NULL = none */
	size_t len;
	char nonce[256];           /* Replay-Nonce; "" = none */
	char location[1024];       /* Location; "" = none */
	char ctype[128];           /* Content-Type */
	long retry_after;          /* seconds (Retry-After as delta or HTTP-date); -1 = none */
};

/* The connection an HTTPS exchange is using, so a stop can cut it. */
struct acme_http_cut {
	int fd;                    /* -1 = none; written under the owner's lock */
};

/*
 * One HTTPS exchange with url (https://host[:port]/path): method, an
 * optional body with its content type.  ca_file (NULL = the system store)
 * verifies the server and its name.  Each step is bounded by timeout_s.
 * 0 with *r filled (free with acme_resp_free), or -1 with err.
 */
int acme_http(const char *method, const char *url, const char *ctype, const char *body, size_t blen,
    const char *ca_file, int timeout_s, void (*set_fd)(int fd), struct acme_resp *r, char *err, size_t errlen);
void acme_resp_free(struct acme_resp *r);

/* ---- acme_jose.c ---- */

/* base64url without padding (RFC 7515 2); malloc'd. */
char *acme_b64url(const unsigned char *p, size_t n);
/* The n strings of v, each after prefix, separated by sep (malloc'd). */
char *acme_join(char *const *v, size_t n, const char *prefix, const char *sep);
/* A new EC P-256 key. */
EVP_PKEY *acme_key_new(void);
/* The key in PEM file path, or a new one written there (0600, atomically). */
EVP_PKEY *acme_key_load_or_create(const char *path, char *err, size_t errlen);
/* The JWK of the key's public half, members in RFC 7638 order, no spaces:
 * {"crv":"P-256","kty":"EC","x":"..","y":".."} (malloc'd). */
char *acme_jwk(EVP_PKEY *k);
/* base64url(SHA-256(jwk)): the RFC 7638 thumbprint (malloc'd). */
char *acme_thumbprint(const char *jwk);
/* The flattened JWS (RFC 7515 7.2.2) of payload ("" = POST-as-GET),
 * ES256, with protected header alg, nonce, url and either jwk (kid NULL)
 * or kid.  malloc'd JSON, NULL on failure. */
char *acme_jws(EVP_PKEY *k, const char *jwk, const char *kid, const char *nonce, const char *url,
    const char *payload);
/* A DER CSR for names (CN = the first, every name a dNSName SAN), signed by
 * k, base64url (malloc'd). */
char *acme_csr(EVP_PKEY *k, char *const *names, size_t n);
/* Write data to path by a temporary file and rename (mode for the file).
 * 0, or -1 with err. */
int acme_write_file(const char *path, const void *data, size_t n, int mode, char *err, size_t errlen);
/* Key as PEM (malloc'd, *n its length). */
char *acme_key_pem(EVP_PKEY *k, size_t *n);
/* notBefore/notAfter of the first certificate of PEM file path: 0, or -1. */
int acme_cert_times(const char *path, time_t *nb, time_t *na);
/* A self-signed certificate for names, valid a day, with a new key. */
int acme_placeholder(char *const *names, size_t n, X509 **x, EVP_PKEY **k);
/* The TLS-ALPN-01 answer for name (RFC 8737 3): self-signed, that dNSName,
 * the critical acmeIdentifier extension over SHA-256(keyauth). */
int acme_alpn_cert(const char *name, const char *keyauth, X509 **x, EVP_PKEY **k);

#endif
