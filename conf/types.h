/*
 * conf/types: the value types and helpers of the configuration engine that
 * every section shares: the error list, where a setting came from, addresses,
 * CIDR sets, string lists, listeners, the text parsers and the arena every
 * loaded configuration lives in.  Side-neutral: the sides' own section types
 * are in forward/fwd_conf.h, reverse/rev_conf.h and admin/adm_conf.h.
 */
#ifndef GW_CONF_TYPES_H
#define GW_CONF_TYPES_H

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

/* ---- listeners (both sides) ---- */

struct conf_listener {
	struct conf_addr addr;
	int tls;
	int64_t max_connections_per_client;   /* -1 = global.max_connections_per_client */
	int http2;                 /* TLS: offer h2 in ALPN (reverse; default on) */
	int h2c;                   /* plain: HTTP/2 with prior knowledge (default off) */
	int freebind;              /* IP_FREEBIND: bind an address the box does not hold (yet): a VRRP VIP */
	char *cert, *key;          /* forward TLS listener: its own certificate (PEM chain) and key */
	struct conf_src src;
};

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
