/*
 * reverse/acme_jose: the cryptography of the ACME client (see acme_int.h):
 * EC P-256 keys, the JWK and its RFC 7638 thumbprint, ES256 JWS (raw r||s,
 * each padded to 32 bytes: RFC 7518 3.4), CSRs, placeholder certificates,
 * and files written atomically.
 */
#include "reverse/acme_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

char *acme_b64url(const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *o = malloc(n / 3 * 4 + 5), *q = o;
	size_t i;

	if (o == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*q++ = tab[v >> 18];
		*q++ = tab[(v >> 12) & 63];
		*q++ = tab[(v >> 6) & 63];
		*q++ = tab[v & 63];
	}
	if (n - i == 1) {
		*q++ = tab[p[i] >> 2];
		*q++ = tab[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		*q++ = tab[p[i] >> 2];
		*q++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*q++ = tab[(p[i + 1] & 15) << 2];
	}
	*q = '\0';
	return o;
}

EVP_PKEY *acme_key_new(void)
{
	return EVP_EC_gen("P-256");
}

int acme_write_file(const char *path, const void *data, size_t n, int mode, char *err, size_t errlen)
{
	char tmp[4200];
	int fd;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

char *acme_key_pem(EVP_PKEY *k, size_t *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out = NULL;
	long l;

	if (b == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1 && (l = BIO_get_mem_data(b, &p)) > 0 &&
	    (out = malloc((size_t)l + 1)) != NULL) {
		memcpy(out, p, (size_t)l);
		out[l] = '\0';
		*n = (size_t)l;
	}
	BIO_free(b);
	return out;
}

EVP_PKEY *acme_key_load_or_create(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;
	char *pem;
	size_t n;

	if (f != NULL) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC) {
			ERR_clear_error();
			snprintf(err, errlen, "%s: not an EC P-256 private key", path);
			EVP_PKEY_free(k);
			return NULL;
		}
		return k;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	k = acme_key_new();
	pem = k != NULL ? acme_key_pem(k, &n) : NULL;
	if (pem == NULL || acme_write_file(path, pem, n, 0600, err, errlen) < 0) {
		if (pem == NULL)
			snprintf(err, errlen, "cannot generate a key");
		free(pem);
		EVP_PKEY_free(k);
		return NULL;
	}
	free(pem);
	return k;
}

char *acme_jwk(EVP_PKEY *k)
{
	unsigned char pt[65];
	size_t n = 0;
	char *x, *y, *out = NULL;

	/* the uncompressed point 04 || x || y: both coordinates at full width */
	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof pt, &n) != 1 ||
	    n != 65 || pt[0] != 4)
		return NULL;
	x = acme_b64url(pt + 1, 32);
	y = acme_b64url(pt + 33, 32);
	if (x != NULL && y != NULL &&
	    asprintf(&out, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y) < 0)
		out = NULL;
	free(x);
	free(y);
	return out;
}

char *acme_thumbprint(const char *jwk)
{
	unsigned char md[32];

	if (EVP_Digest(jwk, strlen(jwk), md, NULL, EVP_sha256(), NULL) != 1)
		return NULL;
	return acme_b64url(md, sizeof md);
}

/* ES256 over in: 64 bytes r || s into sig.  0, or -1. */
static int es256(EVP_PKEY *k, const char *in, unsigned char sig[64])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t dl = sizeof der;
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int rc = -1;

	if (m != NULL && EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSign(m, der, &dl, (const unsigned char *)in, strlen(in)) == 1 &&
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)dl)) != NULL) {
		ECDSA_SIG_get0(es, &r, &s);
		if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
			rc = 0;
	}
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(m);
	return rc;
}

char *acme_jws(EVP_PKEY *k, const char *jwk, const char *kid, const char *nonce, const char *url,
    const char *payload)
{
	json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url), *j;
	char *ph = NULL, *p64 = NULL, *pl64 = NULL, *signing = NULL, *s64 = NULL, *out = NULL;
	unsigned char sig[64];

	if (prot == NULL)
		return NULL;
	if (kid != NULL) {
		json_object_set_new(prot, "kid", json_string(kid));
	} else {
		j = json_loads(jwk, 0, NULL);
		if (j == NULL)
			goto done;
		json_object_set_new(prot, "jwk", j);
	}
	ph = json_dumps(prot, JSON_COMPACT);
	if (ph == NULL || (p64 = acme_b64url((const unsigned char *)ph, strlen(ph))) == NULL ||
	    (pl64 = acme_b64url((const unsigned char *)payload, strlen(payload))) == NULL ||
	    asprintf(&signing, "%s.%s", p64, pl64) < 0) {
		signing = NULL;
		goto done;
	}
	if (es256(k, signing, sig) < 0 || (s64 = acme_b64url(sig, sizeof sig)) == NULL)
		goto done;
	if (asprintf(&out, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p64, pl64, s64) < 0)
		out = NULL;
done:
	json_decref(prot);
	free(ph);
	free(p64);
	free(pl64);
	free(signing);
	free(s64);
	return out;
}

char *acme_join(char *const *v, size_t n, const char *prefix, const char *sep)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(prefix) + strlen(v[i]) + strlen(sep);
	s = malloc(len);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, sep);
		strcat(s, prefix);
		strcat(s, v[i]);
	}
	return s;
}

char *acme_csr(EVP_PKEY *k, char *const *names, size_t n)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *nm = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext = NULL;
	char *sans = acme_join(names, n, "DNS:", ","), *out = NULL;
	unsigned char *der = NULL;
	int dl;

	if (r == NULL || nm == NULL || exts == NULL || sans == NULL ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(r, nm) != 1 || X509_REQ_set_pubkey(r, k) != 1 ||
	    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans)) == NULL ||
	    sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto done;
	ext = NULL;                   /* the stack owns it */
	if (X509_REQ_add_extensions(r, exts) != 1 || X509_REQ_sign(r, k, EVP_sha256()) <= 0 ||
	    (dl = i2d_X509_REQ(r, &der)) <= 0)
		goto done;
	out = acme_b64url(der, (size_t)dl);
done:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(nm);
	X509_REQ_free(r);
	free(sans);
	return out;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

int acme_cert_times(const char *path, time_t *nb, time_t *na)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL)
		return -1;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		ERR_clear_error();
		return -1;
	}
	*nb = asn1_time(X509_get0_notBefore(x));
	*na = asn1_time(X509_get0_notAfter(x));
	X509_free(x);
	return *na > 0 ? 0 : -1;
}

/* A self-signed certificate for names (CN the first, all dNSName SANs)
 * with a new key, valid an hour before to a day after now; O = org when not
 * NULL; extra (may be NULL) added as it is.  0, or -1. */
static int self_signed(char *const *names, size_t n, const char *org, X509_EXTENSION *extra, X509 **xo,
    EVP_PKEY **ko)
{
	EVP_PKEY *k = acme_key_new();
	X509 *x = X509_new();
	X509_NAME *nm;
	X509_EXTENSION *ext = NULL;
	char *sans = acme_join(names, n, "DNS:", ",");
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int ok = 0;

	if (k == NULL || x == NULL || sans == NULL || RAND_bytes(serial, sizeof serial) != 1)
		goto done;
	serial[0] &= 0x7f;
	nm = X509_get_subject_name(x);
	if ((bn = BN_bin2bn(serial, sizeof serial, NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_set_version(x, 2) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0) != 1 ||
	    (org != NULL &&
	    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0) != 1) ||
	    X509_set_issuer_name(x, nm) != 1 || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || X509_set_pubkey(x, k) != 1 ||
	    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans)) == NULL ||
	    X509_add_ext(x, ext, -1) != 1 || (extra != NULL && X509_add_ext(x, extra, -1) != 1) ||
	    X509_sign(x, k, EVP_sha256()) <= 0)
		goto done;
	ok = 1;
done:
	ERR_clear_error();
	X509_EXTENSION_free(ext);
	BN_free(bn);
	free(sans);
	if (!ok) {
		X509_free(x);
		EVP_PKEY_free(k);
		return -1;
	}
	*xo = x;
	*ko = k;
	return 0;
}

int acme_placeholder(char *const *names, size_t n, X509 **x, EVP_PKEY **k)
{
	return self_signed(names, n, "Gatehouse placeholder (ACME certificate pending)", NULL, x, k);
}

int acme_alpn_cert(const char *name, const char *keyauth, X509 **x, EVP_PKEY **k)
{
	/* id-pe-acmeIdentifier, critical, holding the DER OCTET STRING of
	 * SHA-256(keyAuthorization) (RFC 8737 3) */
	unsigned char der[2 + 32];
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	char *names[1] = { (char *)name };
	int rc = -1;

	der[0] = 0x04;
	der[1] = 32;
	if (oid != NULL && os != NULL &&
	    EVP_Digest(keyauth, strlen(keyauth), der + 2, NULL, EVP_sha256(), NULL) == 1 &&
	    ASN1_OCTET_STRING_set(os, der, sizeof der) == 1 &&
	    X509_EXTENSION_create_by_OBJ(&ext, oid, 1, os) != NULL)
		rc = self_signed(names, 1, NULL, ext, x, k);
	ERR_clear_error();
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	return rc;
}
