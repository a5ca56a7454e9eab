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

/* A server certificate.  Errors about it read "file:line: key_name: ...". */
struct gw_tls_server_spec {
	const char *cert;          /* PEM file: the certificate, then its chain */
	const char *key;           /* PEM private key file */
	const char *ocsp;          /* DER OCSP response to staple; NULL = none */
	int is_default;            /* served without SNI or on no match (else the first) */
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
	size_t cap_servers, cap_clients, cap_listeners;
};

void gw_tls_specs_init(struct gw_tls_specs *sp);
/* Free the arrays (not the strings, which stay the caller's). */
void gw_tls_specs_free(struct gw_tls_specs *sp);
/* Append a copy of the spec (its strings are borrowed until gw_tls_new()
 * has run).  0, or -1 when out of memory. */
int gw_tls_specs_add_server(struct gw_tls_specs *sp, const struct gw_tls_server_spec *s);
int gw_tls_specs_add_client(struct gw_tls_specs *sp, const struct gw_tls_client_spec *c);
int gw_tls_specs_add_listener(struct gw_tls_specs *sp, const struct gw_tls_listener_spec *l);

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
const char *gw_tls_upstream_id(const struct gw_tls *t, int upstream);

/* Names (SANs) and expiry of server certificate i, for the console. */
int gw_tls_ncerts(const struct gw_tls *t);
const char *gw_tls_cert_names(const struct gw_tls *t, int i);   /* "a.example, *.b.example" */
long gw_tls_cert_not_after(const struct gw_tls *t, int i);      /* time_t */

#endif
