/*
 * reverse/rev_conf: the reverse section of the configuration (reverse.*):
 * its types, as conf_load() leaves them in struct conf's reverse member, and
 * its reader and cross-checks, which the configuration engine calls through
 * the section table (conf/sections.c).
 */
#ifndef GW_REV_CONF_H
#define GW_REV_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "conf/types.h"

struct conf_ctx;
struct config_setting_t;

enum conf_balance { CONF_BAL_ROUND_ROBIN, CONF_BAL_LEAST_CONN, CONF_BAL_IP_HASH, CONF_BAL_RANDOM_TWO };

struct conf_rev_cert {
	struct conf_strs acme;     /* acme = [ names ]: obtained from reverse.acme (then no cert/key) */
	char *cert;
	char *key;
	char *ocsp;                /* optional DER OCSP response file; NULL = none */
	int is_default;
	struct conf_src src;
};

struct conf_rev_server {
	struct conf_addr addr;
	int64_t weight;            /* default 1, 1..1000 */
	int backup;
	int64_t max_conns;         /* 0 = unlimited */
	struct conf_src src;
};

struct conf_rev_health {
	int present;
	char *path;
	int status_min, status_max;  /* expected status range, default 200..399 */
	double interval, timeout;
	int64_t rise, fall;
	double slow_start;         /* seconds; 0 = off */
	struct conf_src src;
};

struct conf_rev_upstream {
	char *name;
	enum conf_balance balance;
	struct conf_rev_server *servers;
	size_t nservers;
	struct conf_rev_health health;
	int64_t keepalive;         /* idle pooled connections per worker, default 32 */
	int tls;
	char *ca_file;             /* NULL = system default store */
	char *sni;                 /* NULL = none */
	int tls_verify;            /* default 1 */
	int64_t max_fails;         /* passive ejection threshold; -1 = unset (health.fall, else 3); 0 = off */
	double fail_timeout;       /* seconds, default 10: failure window and ejection length */
	int h2;                    /* protocol = "h2" (default "http1.1") */
	double h2_ping_interval;   /* h2: PING a session silent this long (s), default 30; 0 = off */
	double h2_ping_timeout;    /* h2: close it when the PING is not answered in this (s), default 10 */
	struct conf_src src;
};

/* set_headers: { X-Name = "value"; ... } (a libconfig group; names are as
 * written, values have no control characters).  reverse/route.h: set on the
 * request sent upstream. */
struct conf_hdr_set {
	char *name;
	char *value;
};

enum conf_route_kind { CONF_ROUTE_UPSTREAM, CONF_ROUTE_STATIC, CONF_ROUTE_REDIRECT };

struct conf_rev_route {
	char *path;                /* prefix, starts with '/' */
	enum conf_route_kind kind;
	char *upstream;            /* kind UPSTREAM: upstream name */
	char *static_dir;          /* kind STATIC: directory */
	char *redirect;            /* kind REDIRECT: target URL */
	int redirect_status;       /* 301, 302, 307, 308; default 302 */
	int strip_prefix;
	struct conf_hdr_set *set_headers;
	size_t nset_headers;
	uint64_t max_body_bytes;   /* 0 = global limit */
	/* cache = true | { ttl = 60.0; stale_if_error = 300.0; ignore_set_cookie = true; }:
	 * responses of an upstream route may be stored in reverse.cache (which must exist) */
	int cache;
	double cache_ttl;          /* freshness when the origin gives none; 0 = heuristic only */
	double cache_stale_if_error;   /* seconds; -1 = the origin's stale-if-error */
	int cache_ignore_set_cookie;   /* store responses with Set-Cookie (never the cookie) */
	int cache_ignore_cookie;   /* store responses to requests with Cookie (default: only "public") */
	int dotfiles;              /* kind STATIC: serve names starting with '.' (default 0: 404) */
	int keep_path;             /* kind REDIRECT: append the request's path and query to redirect */
	struct conf_src src;
};

struct conf_rev_site {
	struct conf_strs hosts;    /* lower-cased; "*.example.com" wildcards */
	int is_default;
	int force_https;
	struct conf_cidrs allow_clients;   /* empty = all */
	struct conf_cidrs deny_clients;
	double rate_rps;           /* rate_limit.requests_per_second; 0 = off */
	double rate_burst;
	struct conf_rev_route *routes;
	size_t nroutes;
	char *hsts;                /* Strict-Transport-Security value sent over TLS; NULL = none */
	char *client_ca;           /* PEM CA file for client certificates; NULL = none asked */
	int client_verify;         /* CONF_CLIENT_VERIFY_* (REQUIRED when client_ca is set alone) */
	struct conf_src src;
};

enum { CONF_CLIENT_VERIFY_NONE, CONF_CLIENT_VERIFY_REQUIRED, CONF_CLIENT_VERIFY_OPTIONAL };

/* reverse.tls: the TLS policy of the reverse listeners (rev_conf_tls.c);
 * unset members keep core/tls.c's defaults. */
struct conf_rev_tls {
	int present;
	int min_version;           /* TLS1_2_VERSION or TLS1_3_VERSION; 0 = default (1.2) */
	char *ciphers;             /* TLS 1.2 cipher list; NULL = default */
	char *ciphersuites;        /* TLS 1.3 suites; NULL = default */
	char *groups;              /* key exchange groups; NULL = default */
};

/* reverse.cache: the shared in-memory HTTP cache (reverse/cache.h). */
struct conf_rev_cache {
	int present;
	uint64_t memory;           /* bytes, default 256M */
	uint64_t max_object;       /* bytes, default 8M; larger responses are not stored */
	int x_cache_header;        /* X-Cache: HIT|MISS|STALE|REVALIDATED; default 1 */
	struct conf_src src;
};

enum { CONF_ACME_HTTP01, CONF_ACME_TLSALPN01 };

/* reverse.acme: the ACME (RFC 8555) server certificates with acme = [...] come from. */
struct conf_rev_acme {
	int present;
	char *directory;           /* https:// URL of the directory */
	char *email;               /* account contact; NULL = none */
	char *ca_file;             /* trust for the ACME server; NULL = system store */
	double renew_before;       /* days before expiry (default 30; at most a third of the lifetime) */
	int challenge;             /* CONF_ACME_HTTP01 (default) or CONF_ACME_TLSALPN01 */
	struct conf_src src;
};

struct conf_reverse {
	int present;
	struct conf_listener *listeners;
	size_t nlisteners;
	struct conf_rev_cert *certificates;
	size_t ncertificates;
	struct conf_cidrs trusted_proxies;
	/* removed from requests of clients not in trusted_proxies; default:
	 * X-Real-IP, X-Original-URL, X-Rewrite-URL, X-Forwarded-Host/-Proto/-Port,
	 * X-Client-IP, True-Client-IP, CF-Connecting-IP, X-Cluster-Client-IP,
	 * X-Forwarded-Server/-Prefix/-Scheme/-Ssl, Front-End-Https, X-Original-Host,
	 * X-Host (conf.c read_strip_headers) */
	struct conf_strs strip_headers;
	struct conf_rev_upstream *upstreams;
	size_t nupstreams;
	struct conf_rev_site *sites;
	size_t nsites;
	struct conf_rev_cache cache;
	struct conf_rev_tls tls;
	/* per listener (same index as listeners): its tls_policy, whose keys
	 * override reverse.tls's; NULL = reverse.tls alone */
	struct conf_rev_tls **listener_tls;
	struct conf_rev_acme acme;
};

/* The reverse section's reader and cross-checks (conf/keys.h struct conf_section). */
void rev_conf_read(struct conf_ctx *x, struct config_setting_t *root);
void rev_conf_check(struct conf_ctx *x, struct config_setting_t *root);

#endif
