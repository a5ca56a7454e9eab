/*
 * forward/inspect_ca: loading or generating the inspection CA, and minting
 * leaf certificates with it (see inspect_ca.h for the contract).  Minting
 * avoids what it can of OpenSSL 3.0's slow provider look-ups: the digest is
 * fetched once per CA and extensions are built from native structures.
 */
#include "forward/inspect_ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>


struct fwd_ca {
	X509 *cert;
	EVP_PKEY *key;
	EVP_PKEY *leaf_key;
	EVP_MD *sha256;
	X509_NAME *issuer;             /* the CA's subject (a leaf's issuer) */
	ASN1_OCTET_STRING *skid;       /* the CA's subject key id, or NULL */
	char *pem;
	size_t pem_len;
	unsigned char *der;
	size_t der_len;
	char fp[3 * 32];
	time_t not_after;
};

static void set_err(char *err, size_t cap, const char *fmt, const char *a, const char *b)
{
	char ossl[160] = "";
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, ossl, sizeof ossl);
	ERR_clear_error();
	snprintf(err, cap, fmt, a, b != NULL ? b : ossl);
}

static int exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 || errno != ENOENT;
}

/* mkdir -p for the parent directory of path (mode 0700 for what is made). */
static int make_parents(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

/* Write data to a new file (never an existing one) with mode. */
static int write_new(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	const char *p = data;

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(path);
			errno = e;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (e == NULL)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* A random positive serial of 127 bits. */
static int random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof b) != 1)
		return -1;
	b[0] &= 0x7f;
	b[0] |= 0x40;   /* full length: never a shorter encoding */
	bn = BN_bin2bn(b, sizeof b, NULL);
	if (bn == NULL)
		return -1;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

/* Make a new CA at cert_path / key_path (neither exists). */
static int generate(const char *cert_path, const char *key_path, char *err, size_t cap)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	X509_NAME *nm;
	char host[128] = "gatehouse", cn[200];
	char *kp, *cp;
	long kn, cn_len;
	int rc = -1;

	if (k == NULL || x == NULL || kb == NULL || cb == NULL) {
		set_err(err, cap, "%s: cannot generate a CA: %s", cert_path, NULL);
		goto out;
	}
	(void)gethostname(host, sizeof host - 1);
	snprintf(cn, sizeof cn, "Gatehouse inspection CA (%.100s)", host);
	nm = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || random_serial(x) < 0 ||
	    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)"Gatehouse", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) == NULL ||
	    X509_set_pubkey(x, k) != 1 ||
	    add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(x, k, EVP_sha256()) == 0) {
		set_err(err, cap, "%s: cannot generate a CA: %s", cert_path, NULL);
		goto out;
	}
	if (PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) != 1 || PEM_write_bio_X509(cb, x) != 1) {
		set_err(err, cap, "%s: cannot encode the CA: %s", cert_path, NULL);
		goto out;
	}
	kn = BIO_get_mem_data(kb, &kp);
	cn_len = BIO_get_mem_data(cb, &cp);
	if (make_parents(key_path) < 0 || make_parents(cert_path) < 0 ||
	    write_new(key_path, kp, (size_t)kn, 0600) < 0) {
		snprintf(err, cap, "%s: cannot create: %s", key_path, strerror(errno));
		goto out;
	}
	if (write_new(cert_path, cp, (size_t)cn_len, 0644) < 0) {
		snprintf(err, cap, "%s: cannot create: %s", cert_path, strerror(errno));
		unlink(key_path);   /* ours, made a moment ago: no half CA is left */
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(kb);
	BIO_free(cb);
	return rc;
}

static X509 *read_cert(const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL) {
		set_err(err, cap, "%s: %s", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		set_err(err, cap, "%s: not a PEM certificate: %s", path, NULL);
	return x;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL) {
		set_err(err, cap, "%s: %s", path, strerror(errno));
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		set_err(err, cap, "%s: not a PEM private key (or it is encrypted): %s", path, NULL);
	return k;
}

/* The encodings and fingerprint the console and /gatehouse-ca.crt serve. */
static int encodings(struct fwd_ca *ca)
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char md[32], *p;
	unsigned int mdn = 0;
	char *bp;
	long n;
	int dn;

	if (b == NULL || PEM_write_bio_X509(b, ca->cert) != 1) {
		BIO_free(b);
		return -1;
	}
	n = BIO_get_mem_data(b, &bp);
	ca->pem = malloc((size_t)n + 1);
	if (ca->pem != NULL) {
		memcpy(ca->pem, bp, (size_t)n);
		ca->pem[n] = '\0';
		ca->pem_len = (size_t)n;
	}
	BIO_free(b);
	dn = i2d_X509(ca->cert, NULL);
	if (ca->pem == NULL || dn <= 0 || (ca->der = malloc((size_t)dn)) == NULL)
		return -1;
	p = ca->der;
	ca->der_len = (size_t)i2d_X509(ca->cert, &p);
	if (X509_digest(ca->cert, ca->sha256, md, &mdn) != 1)
		return -1;
	for (unsigned i = 0; i < mdn; i++)
		snprintf(ca->fp + 3 * i, 4, "%02X%s", md[i], i + 1 < mdn ? ":" : "");
	return 0;
}

static int asn1_time_to_t(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

struct fwd_ca *fwd_ca_load(const char *cert_path, const char *key_path, int create, int *created,
    char *err, size_t errlen)
{
	struct fwd_ca *ca;
	int has_c = exists(cert_path), has_k = exists(key_path);
	BASIC_CONSTRAINTS *bc;
	int is_ca;

	if (created != NULL)
		*created = 0;
	if (!has_c && !has_k) {
		if (!create) {
			snprintf(err, errlen, "%s: missing (a CA is made there at the start)", cert_path);
			return NULL;
		}
		if (generate(cert_path, key_path, err, errlen) < 0)
			return NULL;
		if (created != NULL)
			*created = 1;
	} else if (has_c != has_k) {
		snprintf(err, errlen, "%s: missing while %s exists (give both, or neither to have a CA made)",
		    has_c ? key_path : cert_path, has_c ? cert_path : key_path);
		return NULL;
	}
	ca = calloc(1, sizeof *ca);
	if (ca == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((ca->cert = read_cert(cert_path, err, errlen)) == NULL ||
	    (ca->key = read_key(key_path, err, errlen)) == NULL)
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: does not match the certificate %s", key_path, cert_path);
		goto fail;
	}
	bc = X509_get_ext_d2i(ca->cert, NID_basic_constraints, NULL, NULL);
	is_ca = bc != NULL && bc->ca;
	BASIC_CONSTRAINTS_free(bc);
	if (!is_ca) {
		snprintf(err, errlen, "%s: not a CA certificate (basicConstraints CA:TRUE is needed)", cert_path);
		goto fail;
	}
	if (asn1_time_to_t(X509_get0_notAfter(ca->cert), &ca->not_after) < 0 || ca->not_after <= time(NULL)) {
		snprintf(err, errlen, "%s: the CA certificate has expired", cert_path);
		goto fail;
	}
	ca->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ca->leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ca->issuer = X509_NAME_dup(X509_get_subject_name(ca->cert));
	if (ca->sha256 == NULL || ca->leaf_key == NULL || ca->issuer == NULL ||
	    encodings(ca) < 0) {
		set_err(err, errlen, "%s: cannot set up minting: %s", cert_path, NULL);
		goto fail;
	}
	{
		const ASN1_OCTET_STRING *sk = X509_get0_subject_key_id(ca->cert);
		if (sk != NULL && (ca->skid = ASN1_OCTET_STRING_dup(sk)) == NULL)
			goto fail;
	}
	ERR_clear_error();
	return ca;
fail:
	fwd_ca_free(ca);
	return NULL;
}

void fwd_ca_free(struct fwd_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	EVP_MD_free(ca->sha256);
	X509_NAME_free(ca->issuer);
	ASN1_OCTET_STRING_free(ca->skid);
	free(ca->pem);
	free(ca->der);
	free(ca);
}

const char *fwd_ca_pem(const struct fwd_ca *ca, size_t *len)
{
	*len = ca->pem_len;
	return ca->pem;
}

const unsigned char *fwd_ca_der(const struct fwd_ca *ca, size_t *len)
{
	*len = ca->der_len;
	return ca->der;
}

const char *fwd_ca_fingerprint(const struct fwd_ca *ca)
{
	return ca->fp;
}

time_t fwd_ca_not_after(const struct fwd_ca *ca)
{
	return ca->not_after;
}

EVP_PKEY *fwd_ca_leaf_key(const struct fwd_ca *ca)
{
	return ca->leaf_key;
}

X509 *fwd_ca_cert(const struct fwd_ca *ca)
{
	return ca->cert;
}

/* ---- minting ---- */

/* A DNS name as a SAN may carry: LDH labels, a leading "*." wildcard. */
static int dns_name_ok(const char *s)
{
	size_t n = strlen(s), lab = 0;

	if (n == 0 || n > 253)
		return 0;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
			continue;
		}
		if (!(ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z')) || ++lab > 63)
			return 0;
	}
	return lab > 0;
}

static int is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static GENERAL_NAME *san_of(const char *name)
{
	GENERAL_NAME *g = NULL;
	unsigned char ip[16];
	int iplen = 0;

	if (inet_pton(AF_INET, name, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ip) == 1)
		iplen = 16;
	if (iplen > 0) {
		ASN1_OCTET_STRING *o = ASN1_OCTET_STRING_new();
		if (o == NULL || ASN1_OCTET_STRING_set(o, ip, iplen) != 1 || (g = GENERAL_NAME_new()) == NULL) {
			ASN1_OCTET_STRING_free(o);
			return NULL;
		}
		GENERAL_NAME_set0_value(g, GEN_IPADD, o);
		return g;
	}
	if (!dns_name_ok(name))
		return NULL;
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	if (s == NULL || ASN1_STRING_set(s, name, (int)strlen(name)) != 1 || (g = GENERAL_NAME_new()) == NULL) {
		ASN1_IA5STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(g, GEN_DNS, s);
	return g;
}

static int set_time(ASN1_TIME *t, time_t v)
{
	return ASN1_TIME_set(t, v) != NULL ? 0 : -1;
}

X509 *fwd_ca_mint(const struct fwd_ca *ca, const struct fwd_mint_spec *spec, time_t now, char *err,
    size_t errlen)
{
	X509 *x = NULL;
	GENERAL_NAMES *gens = NULL;
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	AUTHORITY_KEYID *akid = NULL;
	time_t nb = now - 3600, na = now + (time_t)FWD_MINT_MAX_DAYS * 86400;
	const char *cn;
	X509_NAME *subj;

	if (spec->nnames == 0 || spec->nnames > FWD_MINT_MAX_NAMES) {
		snprintf(err, errlen, "%s names for the certificate", spec->nnames == 0 ? "no" : "too many");
		return NULL;
	}
	if (spec->origin_not_before > nb)
		nb = spec->origin_not_before;
	if (spec->origin_not_after != 0 && spec->origin_not_after < na)
		na = spec->origin_not_after;
	if (na <= now || na <= nb) {
		snprintf(err, errlen, "the origin's certificate is not valid now");
		return NULL;
	}
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		goto oom;
	for (size_t i = 0; i < spec->nnames; i++) {
		GENERAL_NAME *g = san_of(spec->names[i]);
		if (g == NULL) {
			snprintf(err, errlen, "\"%.200s\" is neither a DNS name nor an address", spec->names[i]);
			goto fail;
		}
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			goto oom;
		}
	}
	/* no address in the CN: name checks fall back to the CN when there is
	 * no dNSName, and an address must only match as an iPAddress */
	cn = spec->cn != NULL ? spec->cn : spec->names[0];
	if (is_ip(cn) || strlen(cn) > 64)
		cn = "";
	if ((x = X509_new()) == NULL)
		goto oom;
	subj = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || random_serial(x) < 0 || X509_set_issuer_name(x, ca->issuer) != 1 ||
	    (cn[0] != '\0' &&
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1) ||
	    set_time(X509_getm_notBefore(x), nb) < 0 || set_time(X509_getm_notAfter(x), na) < 0)
		goto oom;
	/* X509_PUBKEY_set0_param() would be ~150 us cheaper, but leaves the
	 * certificate without a decoded key, which SSL_use_certificate() needs */
	if (X509_set_pubkey(x, ca->leaf_key) != 1)
		goto oom;
	if ((bc = BASIC_CONSTRAINTS_new()) == NULL || (ku = ASN1_BIT_STRING_new()) == NULL ||
	    ASN1_BIT_STRING_set_bit(ku, 0, 1) != 1 ||     /* digitalSignature */
	    (eku = sk_ASN1_OBJECT_new_null()) == NULL || !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
		goto oom;
	bc->ca = 0;
	if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, cn[0] == '\0', X509V3_ADD_DEFAULT) != 1)
		goto oom;
	if (ca->skid != NULL) {
		if ((akid = AUTHORITY_KEYID_new()) == NULL || (akid->keyid = ASN1_OCTET_STRING_dup(ca->skid)) == NULL ||
		    X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) != 1)
			goto oom;
	}
	if (X509_sign(x, ca->key, ca->sha256) == 0)
		goto oom;
	GENERAL_NAMES_free(gens);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku);   /* the OIDs are static */
	AUTHORITY_KEYID_free(akid);
	return x;
oom:
	set_err(err, errlen, "%s: %s", "cannot make the certificate", NULL);
fail:
	X509_free(x);
	GENERAL_NAMES_free(gens);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku);
	AUTHORITY_KEYID_free(akid);
	ERR_clear_error();
	return NULL;
}
