/*
 * reverse/rev_conf_tls: the reverse section's TLS controls, read for
 * reverse/rev_conf.c: reverse.tls (the server-side TLS policy) and a site's
 * hsts, client_ca and client_verify.  Errors go through the conf engine as
 * "FILE:LINE: key: what is wrong".
 */
#ifndef GW_REV_CONF_TLS_H
#define GW_REV_CONF_TLS_H

#include <libconfig.h>

struct conf_ctx;
struct conf_rev_tls;
struct conf_rev_site;
struct conf_rev_acme;
struct conf_rev_cert;
struct conf_reverse;

/* reverse.tls (r is the reverse group) into *t (zeroed by the caller). */
void rev_conf_tls_read(struct conf_ctx *x, config_setting_t *r, struct conf_rev_tls *t);
/* Each reverse listener's tls_policy group (the same keys as reverse.tls;
 * TLS listeners only) into rv->listener_tls, by the listeners' positions.
 * Call after the listeners are read. */
void rev_conf_tls_listeners(struct conf_ctx *x, config_setting_t *r, struct conf_reverse *rv);
/* The TLS keys of site element e (key path ep): hsts, client_ca, client_verify.
 * Call after the site's hosts are read. */
void rev_conf_tls_site(struct conf_ctx *x, config_setting_t *e, const char *ep, struct conf_rev_site *si);

/* reverse.acme (read before the certificates). */
void rev_conf_tls_acme(struct conf_ctx *x, config_setting_t *r, struct conf_rev_acme *a);
/* A certificates element e with acme = [ names ]: the names (host names, no
 * wildcard: HTTP-01 cannot prove one), no cert or key beside them, and
 * reverse.acme configured.  0, or -1 (reported). */
int rev_conf_tls_cert_acme(struct conf_ctx *x, config_setting_t *e, const char *ep, struct conf_rev_cert *ce);

#endif
