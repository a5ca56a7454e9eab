/*
 * core/tls: OpenSSL contexts for one configuration generation, built from
 * specs the sides hand in (a side compiles its own keys into specs; this
 * module names no side and no configuration key of its own: the key an
 * error names comes from the spec).
 *
 * Server side: one SSL_CTX per server spec (certificate), chosen per
 * connection by SNI (exact SAN name first, then a wildcard SAN, else the
 * default certificate).  TLS 1.2 and 1.3 only, modern ciphers, ALPN
 * "http/1.1", session tickets whose keys live for the process (rotated every
 * 12 hours, the previous key still accepted) so resumption survives reloads,
 * a new ticket on every TLS 1.3 resumption (clients use a ticket once),
 * optional OCSP stapling from a DER file.
 *
 * Client side (connections the gateway makes, such as re-encryption to
 * upstream servers): one SSL_CTX per client spec, verifying the peer's
 * certificate against ca_file (or the system store) and its name (sni, else
 * the address connected to) unless verify is off.  A client context is found
 * by its name or by the number its side gave it.
 *
 * Ownership: struct gw_tls belongs to a snapshot; SSL objects made from it
 * hold their own references to the contexts, so connections outlive a reload.
 * Specs are borrowed: gw_tls_new() copies what the set keeps.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct conf_errors;
struct gw_tls;
struct gw_tls_client;

/* A server-side TLS policy; members left 0/NULL keep the defaults (TLS 1.2
 * and 1.3, ECDHE with AES-GCM or ChaCha20, OpenSSL's suites and groups).
 * The side checks the strings when it reads them. */
struct gw_tls_policy {
	int min_version;           /* TLS1_2_VERSION, TLS1_3_VERSION; 0 = 1.2 */
	const char *ciphers;       /* TLS 1.2 cipher list */
	const char *ciphersuites;  /* TLS 1.3 suites */
	const char *groups;        /* "X25519:P-256" */
};

/* A server certificate.  Errors about it read "file:line: key_name: ...". */
struct gw_tls_server_spec {
	const char *cert;          /* PEM file: the certificate, then its chain */
	const char *key;           /* PEM private key file */
	const char *ocsp;          /* DER OCSP response to staple; NULL = none */
	int is_default;            /* served without SNI or on no match (else the first) */
	struct gw_tls_policy policy;   /* all 0 = defaults */
	X509 *mem_cert;            /* with cert NULL: this certificate and key instead of files */
	EVP_PKEY *mem_key;         /* (borrowed; the context takes its own references) */
	const char *live_id;       /* not NULL: gw_tls_live_install(live_id, ...) replaces this
	                            * certificate for new handshakes, without a reload */
	const void *listener;      /* not NULL: pinned to this listener (gw_tls_server_ssl_on's
	                            * key): served there whatever the SNI, never by SNI on
	                            * others, and its sessions resume only there (a forward
	                            * proxy listener's own certificate) */
	const char *file;          /* where it was configured */
	int line;
	const char *key_name;      /* the side's key, as its errors have always named it */
};

/* A client context.  Errors about its CA read "file:line: key_name: ...". */
struct gw_tls_client_spec {
	const char *name;          /* for gw_tls_client_find(); NULL = unnamed */
	int index;                 /* for gw_tls_client_at() (>= 0), e.g. an upstream's
	                            * position in its side's list; -1 = none */
	int verify;                /* check the peer's certificate and name */
	const char *ca_file;       /* trust anchors (PEM); NULL = the system store */
	const char *sni;           /* name sent and checked; NULL = none */
	int sni_host;              /* without sni: send the host connected to as SNI
	                            * (a DNS name; forward inspection) */
	int resume;                /* cache sessions per host and address and offer
	                            * them again (core/tls_resume.c) */
	const char *file;
	int line;
	const char *key_name;      /* the side's key for the CA file */
};

/* A listener that serves TLS and so needs a server certificate: without any
 * server spec, "file:line: key_name: tls = true needs <needs>". */
struct gw_tls_listener_spec {
	const char *file;
	int line;
	const char *key_name;      /* the side's listeners key */
	const char *needs;         /* the side's certificates key (what to configure) */
	const void *listener;      /* the side's listener (its struct conf_listener), the key
	                            * of gw_tls_server_ssl_on(); NULL = none */
	int has_policy;            /* policy replaces the certificates' for this listener */
	struct gw_tls_policy policy;
};

/* Client certificates asked for in the handshake when the client's SNI is
 * one of hosts (exact, or "*.x" for one label), checked against ca_file:
 * required = a missing or bad certificate ends the handshake with an
 * alert; else the handshake goes on and the side decides (the result is
 * gw_tls_client_cert()).  Each gets its own session id context, so a
 * session made under one (or none) is never resumed under another.
 * Errors about the CA file read "file:line: key_name: ...". */
struct gw_tls_verify_spec {
	int id;                    /* the side's number for it (>= 0), e.g. its site index */
	char *const *hosts;
	size_t nhosts;
	const char *ca_file;
	int required;
	const char *file;
	int line;
	const char *key_name;
};

/* What the sides hand in: growable arrays, filled by the add functions
 * below (each side's struct gw_side.tls hook adds its own). */
struct gw_tls_specs {
	struct gw_tls_server_spec *servers;
	size_t nservers;
	struct gw_tls_client_spec *clients;
	size_t nclients;
	struct gw_tls_listener_spec *listeners;
	size_t nlisteners;
	struct gw_tls_verify_spec *verifies;
	size_t nverifies;
	size_t cap_servers, cap_clients, cap_listeners, cap_verifies;
};

void gw_tls_specs_init(struct gw_tls_specs *sp);
/* Free the arrays (not the strings, which stay the caller's). */
void gw_tls_specs_free(struct gw_tls_specs *sp);
/* Append a copy of the spec (its strings are borrowed until gw_tls_new()
 * has run).  0, or -1 when out of memory. */
int gw_tls_specs_add_server(struct gw_tls_specs *sp, const struct gw_tls_server_spec *s);
int gw_tls_specs_add_client(struct gw_tls_specs *sp, const struct gw_tls_client_spec *c);
int gw_tls_specs_add_listener(struct gw_tls_specs *sp, const struct gw_tls_listener_spec *l);
int gw_tls_specs_add_verify(struct gw_tls_specs *sp, const struct gw_tls_verify_spec *v);

/* Build every context of sp.  NULL with errors appended (a certificate or
 * key that cannot be read, a key that does not match its certificate, a CA
 * file that cannot be read, a TLS listener without a certificate), in that
 * order and each group in spec order.  Returns an empty (non-NULL) set when
 * sp holds nothing. */
struct gw_tls *gw_tls_new(const struct gw_tls_specs *sp, struct conf_errors *errs);
void gw_tls_free(struct gw_tls *t);

/* 1 if a TLS listener can be served (some certificate is configured). */
int gw_tls_has_server(const struct gw_tls *t);
/* New server-side SSL for an accepted connection (NULL on failure). */
SSL *gw_tls_server_ssl(struct gw_tls *t);
/* The same for a connection accepted on listener (the spec's listener
 * key): with that listener's policy when its spec has one. */
SSL *gw_tls_server_ssl_on(struct gw_tls *t, const void *listener);

/* 1 when server-side connection s asked for a client certificate under
 * verify spec id (its SNI chose it) and the client presented one that
 * verified; then subject (RFC 2253, at most slen - 1 bytes) and fp (the
 * certificate's SHA-256, lower-case hex) are filled in.  0 otherwise (s may
 * be NULL: a plain connection). */
int gw_tls_client_cert(SSL *s, int id, char *subject, size_t slen, char fp[65]);

/* The client context named name, or the one given number index; NULL when
 * there is none (t may be NULL).  Owned by t. */
const struct gw_tls_client *gw_tls_client_find(const struct gw_tls *t, const char *name);
const struct gw_tls_client *gw_tls_client_at(const struct gw_tls *t, int index);
/* New client-side SSL from client context c (NULL on failure).  It sends
 * c's sni, if any.  When it verifies, the certificate must name that sni,
 * or without one host (the address connected to as configured: a DNS name
 * or an IP literal; NULL = no name check). */
SSL *gw_tls_client_ssl(const struct gw_tls_client *c, const char *host);
/* The settings a connection made from c is accepted under (verify, CA file
 * path and contents, SNI) as GW_TLS_ID_LEN hex digits, equal for equal
 * settings across contexts and reloads: part of a connection pool key. */
#define GW_TLS_ID_LEN 32
const char *gw_tls_client_id(const struct gw_tls_client *c);

/* The same by number (the index a side gave its client spec; an upstream's
 * position in its list), as core/conn.c calls them: NULL / "" when client i
 * does not exist (a plain upstream). */
SSL *gw_tls_upstream_ssl(struct gw_tls *t, int upstream, const char *host);
/* For a context made with spec.resume: offer s the session last verified for
 * host at addr ("ip:port") under this generation, and keep the one s gets.
 * No-op for other contexts. */
void gw_tls_upstream_resume(struct gw_tls *t, int upstream, SSL *s, const char *host, const char *addr);
const char *gw_tls_upstream_id(const struct gw_tls *t, int upstream);

/* ALPN h2 (core/h2.c): offer h2 before http/1.1 on server session s (its
 * listener allows HTTP/2); after the handshake, whether h2 was chosen. */
void gw_tls_allow_h2(SSL *s);
int gw_tls_is_h2(const SSL *s);
/* Server sessions of ctx choose ALPN as the listeners' do: h2 when the
 * session was allowed it (gw_tls_allow_h2) and the client offers it, else
 * http/1.1 when offered, else no ALPN (TLS inspection's minted sessions). */
void gw_tls_ctx_alpn(SSL_CTX *ctx);
/* Install cert (PEM chain, leaf first) and key files as the live certificate
 * id: every generation's server certificate whose spec has that live_id is
 * served from it by SNI from the next handshake on (connections already up
 * keep theirs).  Any thread.  0, or -1 with err filled in (the previous
 * live certificate, if any, stays). */
int gw_tls_live_install(const char *id, const char *cert, const char *key, char *err, size_t errlen);

/* TLS-ALPN-01 (RFC 8737): until cleared, a hello whose SNI is name and
 * whose ALPN list is "acme-tls/1" alone gets certificate x with key k (the
 * context takes references) and acme-tls/1, on every TLS listener; other
 * hellos are not affected.  Any thread.  0, or -1. */
int gw_tls_acme_challenge_set(const char *name, X509 *x, EVP_PKEY *k);
void gw_tls_acme_challenge_clear(const char *name);

/* Names (SANs) and expiry of server certificate i, for the console. */
int gw_tls_ncerts(const struct gw_tls *t);
const char *gw_tls_cert_names(const struct gw_tls *t, int i);   /* "a.example, *.b.example" */
long gw_tls_cert_not_after(const struct gw_tls *t, int i);      /* time_t */

#endif
