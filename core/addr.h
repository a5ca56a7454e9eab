/*
 * core/addr: the one IP address canonicaliser.  Every place that turns text
 * into an address, or decides what an address is (the HTTP authority parser,
 * DNS, deny_destinations and the own-listener check, policy domain rules,
 * CIDRs in the config, the console's policy tester) goes through here, so
 * that one address cannot be read two ways.
 *
 * Text (gw_addr_parse_host): an IPv4 literal is exactly four decimal parts
 * 0..255 without leading zeros ("127.0.0.1"), optionally with one trailing
 * dot.  A host whose last label looks numeric (digits only, or "0x" hex) but
 * is not that form is AMBIGUOUS and refused: inet_aton(), browsers (WHATWG
 * URL) and libevent read "0177.0.0.1", "127.1", "2130706433" and
 * "0x7f.0.0.1" differently (octal, fewer parts, one number, hex), so there is
 * no single address they mean.  An IPv6 literal is what inet_pton(AF_INET6)
 * takes (no zone id), with or without brackets.  Anything else is a name.
 *
 * Canonical form (gw_addr_canon): an IPv6 address that carries an IPv4
 * address the kernel connects to as IPv4 becomes that IPv4 address:
 *   ::ffff:a.b.c.d      IPv4-mapped (RFC 4291 2.5.5.2)
 *   ::ffff:0:a.b.c.d    IPv4-translated (RFC 2765)
 *   ::a.b.c.d           IPv4-compatible (RFC 4291 2.5.5.1, deprecated), but
 *                       not :: and ::1, which stay IPv6.
 *
 * Where it goes (gw_addr_reached): connect() to an unspecified address
 * reaches this host (Linux routes 0.0.0.0 to 127.0.0.1 and :: to ::1), so
 * 0.0.0.0/8 counts as 127.0.0.1 and :: as ::1 in every destination check.
 *
 * Embedded IPv4 (gw_addr_embedded_v4): NAT64 64:ff9b::/96 (RFC 6052 well-
 * known prefix) and 6to4 2002::/16 (RFC 3056) carry an IPv4 address that a
 * translator or relay may deliver to; destination checks deny such an
 * address when either it or its IPv4 address is denied.  Not mapped: the
 * NAT64 local-use prefix 64:ff9b:1::/48 (its layout depends on the
 * operator's prefix length) and Teredo 2001::/32 (needs a Teredo client on
 * this host); write them into deny_destinations if the network uses them.
 *
 * Pure, no allocation, thread-safe.
 */
#ifndef GW_CORE_ADDR_H
#define GW_CORE_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address: family AF_INET (a[0..3], network order) or AF_INET6 (a[0..15]). */
struct gw_addr {
	int family;
	uint8_t a[16];
};

/*
 * Classify host s[0..n) as written in a URL authority or a config (without
 * port; an IPv6 literal with or without brackets).  Returns NULL and sets
 * *is_ip: 1 with *out the address as written (not canonicalised), 0 for a
 * name (out untouched).  Returns a static reason for an ambiguous IPv4
 * literal or a malformed IPv6 literal (also for an empty host).  out may be
 * NULL.
 */
const char *gw_addr_parse_host(const char *s, size_t n, struct gw_addr *out, int *is_ip);

/* Put a into canonical form in place (see above: mapped, translated and
 * compatible IPv6 become IPv4). */
void gw_addr_canon(struct gw_addr *a);

/* The canonical address of sa (AF_INET/AF_INET6).  Returns 0, or -1 for
 * another family (out zeroed). */
int gw_addr_from_sa(const struct sockaddr *sa, struct gw_addr *out);

/* 1 if a (canonical) is unspecified: 0.0.0.0/8 or ::. */
int gw_addr_is_unspecified(const struct gw_addr *a);

/* Replace an unspecified a (canonical) by the loopback address that a
 * connect() to it reaches: 0.0.0.0/8 -> 127.0.0.1, :: -> ::1. */
void gw_addr_reached(struct gw_addr *a);

/* If a (canonical IPv6) embeds an IPv4 destination (NAT64 well-known
 * prefix, 6to4), store it in *v4 and return 1; else 0. */
int gw_addr_embedded_v4(const struct gw_addr *a, struct gw_addr *v4);

/* 1 if the first prefix bits of a equal those of net (same family). */
int gw_addr_in_prefix(const struct gw_addr *a, int family, const uint8_t *net, unsigned prefix);

/* Text of a (inet_ntop form, IPv6 without brackets) into buf (at least 46
 * bytes); returns buf. */
char *gw_addr_format(const struct gw_addr *a, char *buf, size_t cap);

/* Fill *ss with a and port; returns the sockaddr's length. */
socklen_t gw_addr_to_sa(const struct gw_addr *a, uint16_t port, struct sockaddr_storage *ss);

/*
 * A syslog target "syslog:unix:/abs/path", "syslog:udp:HOST:PORT" or
 * "syslog:tcp:HOST:PORT" (HOST a numeric IPv4 address or a bracketed IPv6
 * one: no name lookups in the log path).  Returns NULL with *transport
 * (GW_SYSLOG_UNIX/UDP/TCP) and ss/len filled (a sockaddr_un for unix), or a
 * static reason.
 */
enum { GW_SYSLOG_UNIX, GW_SYSLOG_UDP, GW_SYSLOG_TCP };
const char *gw_addr_parse_syslog(const char *s, int *transport, struct sockaddr_storage *ss, socklen_t *len);

#endif
