/*
 * core/tls: OpenSSL contexts for one configuration generation.
 *
 * Server side: one SSL_CTX per configured certificate (reverse.certificates),
 * chosen per connection by SNI (exact SAN name first, then a wildcard SAN,
 * else the default certificate).  TLS 1.2 and 1.3 only, modern ciphers, ALPN
 * "http/1.1", session tickets whose keys live for the process (rotated every
 * 12 hours, the previous key still accepted) so resumption survives reloads,
 * a new ticket on every TLS 1.3 resumption (clients use a ticket once),
 * optional OCSP stapling from a DER file.
 *
 * Client side (re-encryption to upstream servers): one SSL_CTX per upstream
 * with tls = true, verifying the server certificate against ca_file (or the
 * system store) and its name (sni, else the server's address) unless
 * tls_verify = false.
 *
 * Ownership: struct gw_tls belongs to a snapshot; SSL objects made from it
 * hold their own references to the contexts, so connections outlive a reload.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <openssl/ssl.h>

struct conf;
struct conf_errors;
struct gw_tls;

/* Build every context of cf.  NULL with errors appended (a certificate or
 * key that cannot be read, a key that does not match its certificate).
 * Returns an empty (non-NULL) object when nothing needs TLS. */
struct gw_tls *gw_tls_new(const struct conf *cf, struct conf_errors *errs);
void gw_tls_free(struct gw_tls *t);

/* 1 if a TLS listener can be served (some certificate is configured). */
int gw_tls_has_server(const struct gw_tls *t);
/* New server-side SSL for an accepted connection (NULL on failure). */
SSL *gw_tls_server_ssl(struct gw_tls *t);
/* New client-side SSL towards upstream index i (NULL if that upstream has
 * no TLS).  It sends the upstream's configured sni, if any.  When it
 * verifies, the certificate must name the configured sni, or without one
 * host (the server's address as configured: a DNS name or an IP literal;
 * NULL = no name check). */
SSL *gw_tls_upstream_ssl(struct gw_tls *t, int upstream, const char *host);
/* Does upstream i use TLS? */
int gw_tls_upstream_enabled(const struct gw_tls *t, int upstream);
/* The TLS settings a connection to upstream i is made under (verify, CA
 * file path and contents, SNI) as GW_TLS_ID_LEN hex digits, equal for equal
 * settings across upstreams and reloads: part of the upstream pool key.
 * "" when upstream i has no TLS.  Owned by t. */
#define GW_TLS_ID_LEN 32
const char *gw_tls_upstream_id(const struct gw_tls *t, int upstream);

/* Names (SANs) and expiry of server certificate i, for the console. */
int gw_tls_ncerts(const struct gw_tls *t);
const char *gw_tls_cert_names(const struct gw_tls *t, int i);   /* "a.example, *.b.example" */
long gw_tls_cert_not_after(const struct gw_tls *t, int i);      /* time_t */

#endif
