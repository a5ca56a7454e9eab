/*
 * reverse/acme: certificates from an ACME server (RFC 8555) for the
 * reverse.certificates entries with acme = [ names ].  One ACME thread per
 * process orders, renews and installs them (core/tls live certificates: no
 * reload); the reverse listeners answer its HTTP-01 challenges; until the
 * first certificate arrives a self-signed placeholder is served.  Keys and
 * chains live in global.state_dir/acme/, so a restart serves them at once.
 */
#ifndef GW_ACME_H
#define GW_ACME_H

#include <stddef.h>
#include <time.h>

struct conf;
struct conf_rev_cert;
struct gw_tls_server_spec;

/* Fill the certificate (files from state_dir when they hold a certificate
 * for every name, else the in-memory placeholder) and live_id of s for
 * entry ce.  Main thread (configuration load, -t included: nothing is
 * written).  0, or -1 when out of memory. */
int acme_server_spec(const struct conf *cf, const struct conf_rev_cert *ce, struct gw_tls_server_spec *s);

/* The configuration cf is now current: order what it lists (starting the
 * ACME thread the first time), forget what it no longer lists.  Main thread. */
void acme_activate(const struct conf *cf);

/* The HTTP-01 answer (the key authorization) for token, copied to out: its
 * length, or -1 when no order waits on that token.  Any thread. */
long acme_http01(const char *token, size_t tlen, char *out, size_t outlen);

/* For the console: one row per ordered certificate. */
struct acme_order_info {
	char names[512];           /* "a.example, b.example" */
	const char *state;         /* "placeholder", "ordering", "valid", "failed" */
	char last_error[512];      /* "" = none */
	time_t not_after;          /* 0 = no certificate yet */
	time_t next;               /* next renewal or retry; 0 = none planned */
};
size_t acme_orders_info(struct acme_order_info *out, size_t max);
/* Order the certificate whose first name is name now.  0, or -1 when there
 * is none. */
int acme_renew_now(const char *name);

#endif
