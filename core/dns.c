/*
 * core/dns: per-worker resolver with an answer cache (see dns.h).
 * Traps handled here (notes/core-techniques.md section 5): evdns has no
 * cache; answers from the hosts file come back synchronously inside
 * evdns_getaddrinfo(); a silent server must fail fast (timeout/attempts set).
 */
#include "core/dns.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/log.h"

#define CACHE_SLOTS 512            /* power of two */
#define NEG_TTL 2.0

struct cache_ent {
	char *host;
	double expires;
	struct gw_dns_result res;      /* ports zero */
};

struct gw_dns {
	struct evdns_base *evdns;
	double ttl;
	struct cache_ent cache[CACHE_SLOTS];
};

struct gw_dns_query {
	struct gw_dns *d;
	struct evdns_getaddrinfo_request *req;
	gw_dns_cb cb;
	void *arg;
	uint16_t port;
	int in_call, sync_done, cancelled;
	struct gw_dns_result res;
	char host[256];
};

struct gw_dns *gw_dns_new(struct event_base *base, const struct conf_dns *cf)
{
	struct gw_dns *d = calloc(1, sizeof *d);
	char tmo[32];

	if (d == NULL)
		return NULL;
	d->ttl = cf->cache_ttl_max < 60.0 ? cf->cache_ttl_max : 60.0;
	d->evdns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE |
	    EVDNS_BASE_NAMESERVERS_NO_DEFAULT);
	if (d->evdns == NULL) {
		free(d);
		return NULL;
	}
	if (cf->servers.n == 0) {
		/* resolv.conf's nameservers and options, but our own hosts file */
		int r = evdns_base_resolv_conf_parse(d->evdns,
		    DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC, "/etc/resolv.conf");
		if (r != 0 && r != 6)
			gw_warn("dns: cannot use /etc/resolv.conf (error %d)", r);
	} else {
		for (size_t i = 0; i < cf->servers.n; i++)
			if (evdns_base_nameserver_ip_add(d->evdns, cf->servers.v[i]) != 0)
				gw_warn("dns: bad name server %s", cf->servers.v[i]);
	}
	if (cf->hosts_file != NULL && cf->hosts_file[0] != '\0' &&
	    evdns_base_load_hosts(d->evdns, cf->hosts_file) != 0)
		gw_warn("dns: cannot load hosts file %s", cf->hosts_file);
	snprintf(tmo, sizeof tmo, "%.3f", cf->timeout > 0 ? cf->timeout : 2.0);
	evdns_base_set_option(d->evdns, "timeout:", tmo);
	evdns_base_set_option(d->evdns, "attempts:", "2");
	return d;
}

void gw_dns_free(struct gw_dns *d)
{
	if (d == NULL)
		return;
	evdns_base_free(d->evdns, 1);
	for (int i = 0; i < CACHE_SLOTS; i++)
		free(d->cache[i].host);
	free(d);
}

static unsigned hash_host(const char *h)
{
	unsigned x = 2166136261u;

	for (; *h; h++) {
		unsigned char ch = (unsigned char)*h;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch + 32);
		x = (x ^ ch) * 16777619u;
	}
	return x;
}

static void set_port(struct gw_dns_result *r, uint16_t port)
{
	for (int i = 0; i < r->naddrs; i++) {
		struct sockaddr *sa = (struct sockaddr *)&r->addrs[i];
		if (sa->sa_family == AF_INET)
			((struct sockaddr_in *)sa)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	}
}

static void cache_put(struct gw_dns *d, const char *host, const struct gw_dns_result *r)
{
	struct cache_ent *e = &d->cache[hash_host(host) & (CACHE_SLOTS - 1)];
	char *copy = strdup(host);

	if (copy == NULL)
		return;
	free(e->host);
	e->host = copy;
	e->res = *r;
	e->expires = gw_mono_now() + (r->naddrs > 0 ? d->ttl : NEG_TTL);
}

static int cache_get(struct gw_dns *d, const char *host, struct gw_dns_result *r)
{
	struct cache_ent *e = &d->cache[hash_host(host) & (CACHE_SLOTS - 1)];

	if (e->host == NULL || strcasecmp(e->host, host) != 0 || e->expires < gw_mono_now())
		return 0;
	*r = e->res;
	return 1;
}

static void fill_result(struct gw_dns_result *r, int err, struct evutil_addrinfo *ai)
{
	memset(r, 0, sizeof *r);
	if (err != 0) {
		r->error = err == EVUTIL_EAI_NONAME ? "name not found" :
		    err == EVUTIL_EAI_CANCEL ? "cancelled" : "name resolution failed";
		return;
	}
	/* IPv4 first: loopback test origins and most internal servers */
	for (int pass = 0; pass < 2; pass++)
		for (struct evutil_addrinfo *p = ai; p != NULL && r->naddrs < GW_DNS_MAX_ADDRS; p = p->ai_next) {
			int fam = pass == 0 ? AF_INET : AF_INET6;
			struct gw_addr a;
			if (p->ai_family != fam || gw_addr_from_sa(p->ai_addr, &a) < 0)
				continue;
			/* canonical: an AAAA answer ::ffff:127.0.0.1 is 127.0.0.1 to
			 * every check after us and to connect() */
			r->lens[r->naddrs] = gw_addr_to_sa(&a, 0, &r->addrs[r->naddrs]);
			r->naddrs++;
		}
	if (r->naddrs == 0)
		r->error = "no addresses";
}

static void on_answer(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct gw_dns_query *q = arg;

	fill_result(&q->res, err, ai);
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	if (q->cancelled) {
		if (!q->in_call)
			free(q);
		return;
	}
	if (err != EVUTIL_EAI_CANCEL)
		cache_put(q->d, q->host, &q->res);
	if (q->in_call) {
		q->sync_done = 1;
		return;
	}
	set_port(&q->res, q->port);
	q->cb(q->arg, &q->res);
	free(q);
}

/* A literal is answered at once, in canonical form (core/addr.h: a mapped
 * ::ffff:a.b.c.d is a.b.c.d).  Returns 1 for an address, 0 for a name, -1
 * (res->error set) for an ambiguous or malformed literal: "0177.0.0.1" must
 * never reach evdns, whose evutil_inet_pton() would read it as 177.0.0.1. */
static int numeric(const char *host, uint16_t port, struct gw_dns_result *res)
{
	struct gw_addr a;
	int is_ip;
	const char *err;

	memset(res, 0, sizeof *res);
	err = gw_addr_parse_host(host, strlen(host), &a, &is_ip);
	if (err != NULL) {
		res->error = err;
		return -1;
	}
	if (!is_ip)
		return 0;
	gw_addr_canon(&a);
	res->lens[0] = gw_addr_to_sa(&a, port, &res->addrs[0]);
	res->naddrs = 1;
	return 1;
}

int gw_dns_resolve(struct gw_dns *d, const char *host, uint16_t port,
    struct gw_dns_result *res, gw_dns_cb cb, void *arg, struct gw_dns_query **qp)
{
	struct evutil_addrinfo hints;
	struct gw_dns_query *q;
	int r;

	*qp = NULL;
	if ((r = numeric(host, port, res)) != 0)
		return r;
	if (strlen(host) >= sizeof q->host) {
		memset(res, 0, sizeof *res);
		res->error = "name too long";
		return -1;
	}
	if (cache_get(d, host, res)) {
		set_port(res, port);
		return res->naddrs > 0 ? 1 : -1;
	}
	q = calloc(1, sizeof *q);
	if (q == NULL) {
		memset(res, 0, sizeof *res);
		res->error = "out of memory";
		return -1;
	}
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->port = port;
	strcpy(q->host, host);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	q->in_call = 1;
	q->req = evdns_getaddrinfo(d->evdns, host, NULL, &hints, on_answer, q);
	q->in_call = 0;
	if (q->sync_done) {
		*res = q->res;
		set_port(res, port);
		free(q);
		return res->naddrs > 0 ? 1 : -1;
	}
	if (q->req == NULL) {
		memset(res, 0, sizeof *res);
		res->error = "resolver error";
		free(q);
		return -1;
	}
	*qp = q;
	return 0;
}

void gw_dns_cancel(struct gw_dns_query *q)
{
	if (q == NULL)
		return;
	q->cancelled = 1;
	evdns_getaddrinfo_cancel(q->req);
}
