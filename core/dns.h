/*
 * core/dns: per-worker asynchronous name resolution over evdns with a small
 * answer cache.  evdns_getaddrinfo() reports no TTL, so answers are kept for
 * global.dns.cache_ttl_max seconds (bounded to 60 s) and failures for 2 s.
 * Numeric hosts and cached names are answered synchronously.
 */
#ifndef GW_DNS_H
#define GW_DNS_H

#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct gw_dns;
struct gw_dns_query;
struct conf_dns;

#define GW_DNS_MAX_ADDRS 8

struct gw_dns_result {
	int naddrs;
	struct sockaddr_storage addrs[GW_DNS_MAX_ADDRS];
	socklen_t lens[GW_DNS_MAX_ADDRS];
	const char *error;         /* static text when naddrs == 0 */
};

typedef void (*gw_dns_cb)(void *arg, const struct gw_dns_result *res);

struct gw_dns *gw_dns_new(struct event_base *base, const struct conf_dns *cf);
void gw_dns_free(struct gw_dns *d);

/*
 * Resolve host (NUL-terminated) for port.  If the answer is known now,
 * fills *res and returns 1 (cb is never called).  Otherwise returns 0 and
 * calls cb(arg, res) later, exactly once, unless cancelled first with
 * gw_dns_cancel(*q).  Returns -1 (res filled with the error) on immediate
 * failure.
 */
int gw_dns_resolve(struct gw_dns *d, const char *host, uint16_t port,
    struct gw_dns_result *res, gw_dns_cb cb, void *arg, struct gw_dns_query **q);
void gw_dns_cancel(struct gw_dns_query *q);

#endif
