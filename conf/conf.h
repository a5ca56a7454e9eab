/*
 * conf: the configuration subsystem.  Loads one libconfig file (with
 * @include resolved against the main file's directory), checks every key
 * against the schema (unknown keys, wrong types, out-of-range values are
 * errors reported as "FILE:LINE: key.path: message"), and produces an
 * immutable struct conf.
 *
 * Ownership: conf_load() returns a struct conf that owns all memory reachable
 * from it (one arena); conf_free() releases everything.  The struct is never
 * modified after conf_load() returns, so it may be read from any thread.
 *
 * The sides (forward/, reverse/) compile their part of the struct into their
 * own immutable data; errors found while compiling (a regex that does not
 * compile, an upstream name that does not exist) are reported through
 * conf_err() with the file and line recorded in the struct.
 */
#ifndef GW_CONF_H
#define GW_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"

/* ---- error list ---- */

struct conf_errors {
	char **msgs;       /* each "FILE:LINE: key: message" */
	size_t n, cap;
};

void conf_errors_init(struct conf_errors *e);
void conf_errors_free(struct conf_errors *e);
/* Append "file:line: key: <fmt>" (key may be NULL: then "file:line: <fmt>";
 * line <= 0: "file: ..."). */
void conf_err(struct conf_errors *e, const char *file, int line, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Where a setting came from. */
struct conf_src {
	const char *file;
	int line;
};

/* ---- value types ---- */

/* "host:port", "[v6]:port", "*:port".  host is "" for the wildcard; the port is
 * mandatory.  For numeric hosts, ss/sslen hold the socket address; for names
 * (upstream servers may use DNS names) is_name is set and ss is unset.
 * The wildcard "*" binds [::] with IPV6_V6ONLY off (dual stack). */
struct conf_addr {
	char *text;          /* as written */
	char *host;          /* without brackets; "" for "*" */
	uint16_t port;
	int is_name;
	struct sockaddr_storage ss;
	socklen_t sslen;
};

struct conf_cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t prefix;      /* prefix length */
	uint8_t addr[16];    /* network address, host bits zero */
};

struct conf_strs {
	char **v;
	size_t n;
};

struct conf_cidrs {
	struct conf_cidr *v;
	size_t n;
};

/* ---- global ---- */

struct conf_log {
	char *error;         /* "stderr", "syslog" or an absolute path */
	int level;           /* GW_LOG_DEBUG..GW_LOG_ERROR as in core/log.h: 0 debug, 1 info, 2 warn, 3 error */
	char *access;        /* absolute path, "stdout", "stderr", or "" = disabled */
	int access_json;     /* access_format: 0 combined, 1 json */
	int syslog_facility; /* access to syslog: facility number (local0 = 16) */
	char *syslog_tag;    /* access to syslog: APP-NAME */
};

struct conf_timeouts {
	double client_header, client_body, client_idle;
	double upstream_connect, upstream_response, upstream_idle;
	double tunnel_idle, shutdown_grace;
	double client_first_byte;  /* a new connection's first byte (and TLS: first request byte) */
	double client_body_min_rate;  /* bytes/s, average over the body after client_body s; 0 = off */
};

struct conf_limits {
	uint64_t max_header_bytes;
	uint64_t max_headers;
	uint64_t max_uri_bytes;
	uint64_t max_body_bytes;   /* 0 = unlimited */
};

struct conf_dns {
	struct conf_strs servers;  /* "ip" or "ip:port"; empty = resolv.conf */
	double cache_ttl_max;
	double timeout;            /* per attempt, default 2.0 */
	char *hosts_file;          /* default "/etc/hosts"; "" = none */
};

struct conf_global {
	int64_t workers;           /* 0 = one per CPU */
	char *user;                /* "" = do not change user */
	struct conf_src user_src;  /* where user was set (the main file, line 0, for the default) */
	int64_t max_connections;
	int64_t max_connections_per_client;   /* per IPv4 address / IPv6 /64; 0 = no limit */
	char *state_dir;
	char *via_name;            /* pseudonym in Via; default "gatehouse" */
	struct conf_log log;
	struct conf_timeouts timeouts;
	struct conf_limits limits;
	struct conf_dns dns;
};

/* ---- listeners (both sides) ---- */

struct conf_listener {
	struct conf_addr addr;
	int tls;
	int64_t max_connections_per_client;   /* -1 = global.max_connections_per_client */
	struct conf_src src;
};

/* ---- forward ---- */

enum conf_action { CONF_ACT_ALLOW, CONF_ACT_DENY, CONF_ACT_AUTH };

struct conf_fwd_list {
	char *name;
	char *file;                /* domains (key "file" or "domains"); NULL: only urls */
	struct conf_src src;
	char *urls;                /* squidGuard/UT1 "urls" file (host/path prefixes); NULL: none */
};

struct conf_fwd_rule {
	char *name;                /* NULL when not given ("rule N" is made by the compiler) */
	enum conf_action action;
	struct conf_cidrs clients;
	/* matchers: an absent key matches anything (n == 0); empty lists are refused.
	 * methods are upper-cased, schemes lower-cased ("http" | "connect"), domains
	 * lower-cased; hours strings are validated "[DAYS] [HH:MM-HH:MM]" (a single
	 * string in the file becomes a one-element list); lists name forward.lists. */
	struct conf_strs users, groups, domains, lists, urls, methods, hours, schemes;
	uint16_t *ports;
	size_t nports;
	struct conf_src src;
};

struct conf_fwd_pattern {
	char *name;
	char *regex;
	struct conf_src src;
};

struct conf_fwd_dlp {
	int present;
	int enabled;               /* default 1 (when the dlp section is present) */
	int action_deny;           /* action: "deny" (1) | "log" (0) */
	int oversize_deny;         /* oversize: "deny" (1) | "allow" (0); default deny */
	uint64_t max_scan_bytes;
	/* process-wide bound on bodies held for scanning; default 256M */
	uint64_t max_scan_memory;
	struct conf_strs detectors;    /* "credit_card", "iban", "us_ssn" */
	struct conf_fwd_pattern *patterns;
	size_t npatterns;
	struct conf_src src;
};

struct conf_fwd_auth {
	int present;
	char *realm;
	char *users_file;
	char *groups_file;
	double cache_ttl;          /* verified-credential cache TTL, default 60.0 */
	struct conf_src src;
};

/* The placeholders forward.block_page may use, as "{{name}}" (checked at
 * load; each value is HTML-escaped when substituted). */
#define CONF_BLOCK_PLACEHOLDERS(X) \
	X(reason) X(rule) X(url) X(request_id) X(contact) X(client) X(user) X(time)
#define CONF_BLOCK_PAGE_MAX (64 * 1024)   /* bytes of template read */

/* forward.parent: plain requests go to a parent proxy (absolute-form, with
 * Proxy-Authorization when auth is set); the first reachable address in
 * order is used, one that failed is skipped for a while. */
struct conf_fwd_parent {
	int present;
	struct conf_addr *addrs;   /* address: "host:port" or a list, in failover order */
	size_t naddrs;
	char *auth;                /* "user:password" or NULL */
	struct conf_strs bypass;   /* bypass_domains: host patterns that go direct */
	double fail_timeout;       /* seconds a parent that failed to connect is skipped (10) */
	struct conf_src src;
};

struct conf_fwd_pac {
	int present;
	char *proxy;               /* "host:port" the PAC file points browsers at */
	struct conf_strs direct;   /* host patterns sent DIRECT */
	int fallback_none;         /* fallback = "none": no "; DIRECT" (0, the default: "direct") */
	int direct_private;        /* direct_private: private/loopback IPv4 and ULA literals go DIRECT */
	struct conf_src src;
};

struct conf_forward {
	int present;               /* the forward group exists */
	struct conf_listener *listeners;
	size_t nlisteners;
	struct conf_cidrs allow_clients;       /* key absent: loopback + RFC 1918; [] = nobody */
	struct conf_cidrs deny_destinations;   /* key absent: 127/8, ::1, 169.254/16, fe80::/10 */
	uint16_t *connect_ports;               /* key absent: 443 */
	size_t nconnect_ports;
	uint16_t *websocket_ports;             /* WebSocket upgrades (a tunnel after 101) only to
	                                        * these ports; key absent: NULL = connect_ports
	                                        * and 80; [] = no WebSocket */
	size_t nwebsocket_ports;
	int anonymize;
	char *block_contact;       /* operator contact line on block pages; "" = none */
	char *block_page;          /* forward.block_page template path; NULL = the built-in page */
	char *block_page_text;     /* its contents (NUL-terminated), read at load/reload */
	size_t block_page_len;
	struct conf_fwd_auth auth;
	struct conf_fwd_list *lists;
	size_t nlists;
	struct conf_fwd_rule *policy;
	size_t npolicy;
	int policy_present;        /* no policy given: allow (clients are still limited by allow_clients) */
	struct conf_fwd_dlp dlp;
	struct conf_fwd_pac pac;
	struct conf_fwd_parent parent;
};

/* ---- reverse ---- */

enum conf_balance { CONF_BAL_ROUND_ROBIN, CONF_BAL_LEAST_CONN, CONF_BAL_IP_HASH, CONF_BAL_RANDOM_TWO };

struct conf_rev_cert {
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
	struct conf_src src;
};

/* reverse.cache: the shared in-memory HTTP cache (reverse/cache.h). */
struct conf_rev_cache {
	int present;
	uint64_t memory;           /* bytes, default 256M */
	uint64_t max_object;       /* bytes, default 8M; larger responses are not stored */
	int x_cache_header;        /* X-Cache: HIT|MISS|STALE|REVALIDATED; default 1 */
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
};

/* ---- admin ---- */

struct conf_admin {
	int present;               /* no admin section: present = 0 and listen_enabled = 0 */
	struct conf_addr listen;   /* default 127.0.0.1:9090; text "" = console off */
	int listen_enabled;        /* section present and listen != "" */
	struct conf_addr metrics_listen;
	int metrics_enabled;
	char *users_file;
	char *tls_cert, *tls_key;  /* NULL = plain HTTP */
	double session_idle;       /* a console session ends after this long without a request */
	int64_t max_conns_per_client;   /* console connections one client address may hold */
	double client_timeout;     /* a console connection idle this long is closed (seconds) */
};

/* ---- the whole file ---- */

struct conf {
	char *path;                /* the main file as given */
	char *dir;                 /* absolute directory of the main file; relative paths in the
	                              file (lists, static dirs, certs, ...) are resolved against it */
	struct conf_global global;
	struct conf_forward forward;
	struct conf_reverse reverse;
	struct conf_admin admin;
	void *arena;               /* private: owns every string and array above */
};

/*
 * Load and validate path.  On success returns the config (errs untouched).
 * On any error returns NULL and appends every error found (it keeps going
 * after the first one where it can) to errs.
 */
struct conf *conf_load(const char *path, struct conf_errors *errs);

/* Free a config returned by conf_load (NULL is fine). */
void conf_free(struct conf *c);

/*
 * Helpers shared with the sides' compilers; text parsers return NULL on
 * success or a message (static, or for conf_parse_cidr's "host bits set;
 * did you mean 10.0.0.0/8?" a thread-local buffer valid until the next call).
 *
 * conf_parse_addr: arena is required (text and host are copied into it);
 * "localhost" is 127.0.0.1 (is_name 0); "*" is refused when allow_name (it is
 * only for listening addresses); names are refused unless allow_name.
 * conf_parse_cidr: a bare address is a host route (/32, /128); host bits set
 * is an error; "::ffff:a.b.c.d/n" (n >= 96) is stored as the v4 network.
 * conf_parse_size: digits with an optional k/K, m/M, g/G suffix (1024-based).
 */
const char *conf_parse_addr(const char *text, int allow_name, struct conf_addr *out, void *arena);
const char *conf_parse_cidr(const char *text, struct conf_cidr *out);
/* 1 if the address (AF_INET/AF_INET6 sockaddr) is in the set.  The address
 * is canonicalised first (core/addr.h: IPv4-mapped, -translated and
 * -compatible IPv6 count as IPv4). */
int conf_cidr_match(const struct conf_cidrs *set, const struct sockaddr *sa);
/* The same for an address already canonical (gw_addr_canon). */
int conf_cidr_match_addr(const struct conf_cidrs *set, const struct gw_addr *a);
const char *conf_parse_size(const char *text, uint64_t *out);   /* "64k", "256M", "1G", "123" */

/* Arena allocation used by conf and by the sides for per-snapshot data. */
void *conf_arena_new(void);
void *conf_arena_alloc(void *arena, size_t n);   /* zeroed; aborts on OOM */
char *conf_arena_strdup(void *arena, const char *s);
void conf_arena_free(void *arena);

#endif
