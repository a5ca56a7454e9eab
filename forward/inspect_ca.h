/*
 * forward/inspect_ca: the company CA of TLS inspection (forward.inspect) and
 * the leaf certificates it signs for inspected origins.
 *
 *   - fwd_ca_load() reads ca_cert/ca_key, or, when both files are missing
 *     and creation is allowed (a start, not -t), makes an EC P-256 CA there
 *     (key file 0600, created exclusively: an existing file is never
 *     overwritten).  The certificate must be a CA (basicConstraints CA:TRUE)
 *     and the key must match it.
 *   - One EC P-256 key pair per loaded CA serves every leaf (no per-host key
 *     generation); a mint costs one ECDSA signature plus OpenSSL 3.0's
 *     X509_set_pubkey (~170 us; the cheaper X509_PUBKEY_set0_param leaves
 *     no decoded key in the certificate, which the TLS server needs).
 *   - fwd_ca_mint() is thread-safe (the CA is immutable after loading) and
 *     runs on the job pool.
 *
 * Ownership: a struct fwd_ca belongs to the forward side's compiled data of
 * one configuration generation; minted X509s belong to the caller.
 */
#ifndef GW_FORWARD_INSPECT_CA_H
#define GW_FORWARD_INSPECT_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

struct fwd_ca;

#define FWD_MINT_MAX_DAYS 397      /* a leaf's validity at most (the CA/B limit less a day) */
#define FWD_MINT_MAX_NAMES 64      /* names mirrored into a leaf's SAN at most */

/*
 * Load the CA from cert_path and key_path (PEM).  Both missing and create:
 * generate one there first (create_dirs the parent directories, mode 0700,
 * if missing).  NULL with a message in err on failure (unreadable, not a
 * CA, key does not match, one of the two files missing, cannot write).
 * *created (may be NULL) says whether it was generated now.
 */
struct fwd_ca *fwd_ca_load(const char *cert_path, const char *key_path, int create, int *created,
    char *err, size_t errlen);
void fwd_ca_free(struct fwd_ca *ca);

/* The CA certificate as PEM / DER (owned by ca), its SHA-256 fingerprint as
 * "AB:CD:..." and its notAfter (time_t). */
const char *fwd_ca_pem(const struct fwd_ca *ca, size_t *len);
const unsigned char *fwd_ca_der(const struct fwd_ca *ca, size_t *len);
const char *fwd_ca_fingerprint(const struct fwd_ca *ca);
time_t fwd_ca_not_after(const struct fwd_ca *ca);
/* The leaves' shared private key (owned by ca; for SSL_use_PrivateKey). */
EVP_PKEY *fwd_ca_leaf_key(const struct fwd_ca *ca);
X509 *fwd_ca_cert(const struct fwd_ca *ca);

/*
 * What a leaf says: its subject CN (NULL: the first name; an address is
 * never a CN), its SANs (DNS
 * names, or IP literals, which become iPAddress SANs: never a dNSName for an
 * address) and the validity of the origin's own certificate (0 = unknown).
 */
struct fwd_mint_spec {
	const char *cn;
	const char *const *names;
	size_t nnames;
	time_t origin_not_before, origin_not_after;
};

/*
 * A new leaf for spec signed by ca at time now: random 127-bit serial,
 * notBefore = max(now - 1 h, origin's), notAfter = min(now + 397 days,
 * origin's), basicConstraints CA:FALSE, keyUsage digitalSignature, EKU
 * serverAuth, SAN as given, authority key id of the CA.  NULL with err set
 * when spec has no names, too many, a name that is neither a DNS name nor
 * an address, or the origin's validity has already ended.
 */
X509 *fwd_ca_mint(const struct fwd_ca *ca, const struct fwd_mint_spec *spec, time_t now, char *err,
    size_t errlen);

#endif
