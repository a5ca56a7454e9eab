/*
 * forward/fwd_conf: the forward section of the configuration (forward.*):
 * its types, as conf_load() leaves them in struct conf's forward member, and
 * its reader, which the configuration engine calls through the section table
 * (conf/sections.c).  Key names and messages are the contract of
 * conf/gatehouse.conf.
 */
#ifndef GW_FWD_CONF_H
#define GW_FWD_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "conf/types.h"
#include "forward/sso_conf.h"

struct conf_ctx;
struct config_setting_t;

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
	int inspect;               /* inspect = false: tunnel what it matches (0); absent or true: 1 */
	struct conf_src src;
	/* icap: names from forward.icap (at most one respmod and one reqmod
	 * service); icap_set: the key was given (else forward.icap_default) */
	struct conf_strs icap;
	int icap_set;
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
	struct conf_fwd_sso sso;   /* schemes, kerberos (forward/sso_conf.h) */
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

/* forward.icap: one ICAP (RFC 3507) service; uri "icap://ADDR[:PORT]/SERVICE"
 * with a numeric address (default port 1344). */
struct conf_fwd_icap {
	char *name;
	struct conf_src src;
	char *uri;
	char *host;                /* numeric (without brackets) or a DNS name */
	int host_is_name;          /* resolved per connection (core/dns.c) */
	struct sockaddr_storage sa;   /* the address when not a name ("localhost": 127.0.0.1) */
	socklen_t salen;
	uint16_t port;
	char *service;             /* the path after the authority, without '/' */
	int tls;                   /* icaps:// (port 11344 by default) */
	char *ca_file;             /* icaps: the CAs trusted for the server (NULL: the system's) */
	int reqmod;                /* method: "respmod" (0, default) | "reqmod" (1) */
	int bypass_on_error;       /* default 0: an ICAP failure blocks (fail closed) */
	uint64_t max_body_bytes;   /* default 32M: bodies held for the verdict up to this */
	int oversize_block;        /* on_oversize: "pass" (0) | "block" (1, default) */
	double timeout;            /* seconds for a whole ICAP exchange (default 30) */
};

/* forward.inspect: TLS inspection of CONNECT tunnels (forward/inspect.h). */
struct conf_fwd_inspect {
	int present;
	int mode_all;              /* mode: "off" (0, the default) | "all" (1) */
	char *ca_cert, *ca_key;    /* NULL: state_dir/inspect-ca.pem and .key; both files
	                            * missing: a CA is generated there at the start */
	char *upstream_ca_file;    /* trust store for origins; NULL ("") = the system's */
	struct conf_strs bypass_domains;   /* host patterns never inspected */
	struct conf_strs bypass_lists;     /* forward.lists names never inspected */
	struct conf_strs insecure_hosts;   /* host patterns whose certificate errors are accepted */
	int64_t cert_cache;        /* minted certificates kept (LRU), default 10000 */
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
	struct conf_fwd_icap *icap;
	size_t nicap;
	struct conf_strs icap_default;   /* services for allowed traffic without a rule's icap */
	struct conf_fwd_inspect inspect;
};

/* The forward section's reader (conf/keys.h struct conf_section). */
void fwd_conf_read(struct conf_ctx *x, struct config_setting_t *root);

#endif
