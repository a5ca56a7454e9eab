/*
 * forward proxying: what happens to an allowed request, moved out of
 * forward/forward.c.  Header hygiene first (the proxy's own credentials
 * out; forward.anonymize: identity headers, Referer across sites, Via;
 * else X-Forwarded-For), then gw_req_proxy() to the target, or to a
 * forward.parent picked with passive health (an address that failed to
 * connect is skipped for fail_timeout), with forward.parent.auth added once.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/addr.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/strlit.h"
#include "forward/decide.h"
#include "forward/fwd_int.h"
#include "forward/inspect.h"

/* The registrable part of a host, approximately (no public-suffix list):
 * the last two labels, or three when the last is a 2-letter country code and
 * the second-to-last is a common second-level label (co.uk, com.au, ...). */
static void site_of(const char *h, size_t n, const char **s, size_t *sn)
{
	static const char *const sld[] = { "co", "com", "net", "org", "gov", "ac", "edu", "or", "ne",
	    "go", "gv", "ltd", "plc", "nic", NULL };
	size_t dots[3] = { 0, 0, 0 };
	int nd = 0;

	while (n > 0 && h[n - 1] == '.')
		n--;
	for (size_t i = n; i-- > 0 && nd < 3;)
		if (h[i] == '.')
			dots[nd++] = i;
	*s = h;
	*sn = n;
	if (nd < 2)
		return;   /* one or two labels: the host itself */
	size_t keep = dots[1] + 1;   /* start of the last two labels */
	if (n - dots[0] - 1 == 2 && nd >= 2) {
		size_t l2 = dots[0] - dots[1] - 1;
		for (int i = 0; sld[i]; i++)
			if (strlen(sld[i]) == l2 && strncasecmp(h + dots[1] + 1, sld[i], l2) == 0) {
				keep = nd >= 3 ? dots[2] + 1 : 0;
				break;
			}
	}
	*s = h + keep;
	*sn = n - keep;
}

/* An IP literal (core/addr.h), or something an address parser would read as
 * one: compared exactly, never by its "site". */
static int is_ip_literal(const char *h, size_t n)
{
	int ip;

	return gw_addr_parse_host(h, n, NULL, &ip) != NULL || ip;
}

/* 1 if the Referer value points at the same site as the request host. */
static int same_site_referer(const struct gw_http_head *h, const char *v, size_t n)
{
	const char *p = memmem(v, n, GW_STRLIT("://")), *hs, *he;
	const char *a, *b;
	size_t an, bn;

	if (p == NULL || h->host == NULL)
		return 0;
	hs = p + 3;
	he = hs;
	while (he < v + n && *he != '/' && *he != '?' && *he != '#')
		he++;
	/* drop userinfo and port */
	const char *at = memchr(hs, '@', (size_t)(he - hs));
	if (at != NULL)
		hs = at + 1;
	if (hs < he && *hs == '[') {
		const char *rb = memchr(hs, ']', (size_t)(he - hs));
		if (rb == NULL)
			return 0;
		hs++;
		he = rb;
	} else {
		const char *colon = memchr(hs, ':', (size_t)(he - hs));
		if (colon != NULL)
			he = colon;
	}
	if (is_ip_literal(hs, (size_t)(he - hs)) || is_ip_literal(h->host, h->host_len))
		return (size_t)(he - hs) == h->host_len && strncasecmp(hs, h->host, h->host_len) == 0;
	site_of(hs, (size_t)(he - hs), &a, &an);
	site_of(h->host, h->host_len, &b, &bn);
	return an == bn && an > 0 && strncasecmp(a, b, an) == 0;
}

/* Client-identifying fields removed by forward.anonymize, beside Via,
 * X-Forwarded-For, Forwarded and From. */
static const char *const identity_headers[] = { "x-real-ip", "x-client-ip", "true-client-ip",
    "cf-connecting-ip", "x-cluster-client-ip", "client-ip", "x-originating-ip", "x-remote-ip",
    "x-remote-addr", "x-forwarded", "forwarded-for", "x-forwarded-host", "x-forwarded-server",
    "x-proxyuser-ip", NULL };

static void hygiene(struct gw_req *rq, struct fwd_data *d)
{
	const struct gw_http_head *h = gw_req_head(rq);

	/* credentials for us are never forwarded */
	gw_req_hdr_del(rq, "proxy-authorization");
	gw_req_hdr_del(rq, "proxy-authenticate");
	if (d->cf->forward.anonymize) {
		gw_req_no_via(rq);
		gw_req_hdr_del(rq, "via");
		gw_req_hdr_del(rq, "x-forwarded-for");
		gw_req_hdr_del(rq, "forwarded");
		gw_req_hdr_del(rq, "from");
		/* what other proxies and client software add to name the client:
		 * anonymity means none of it leaves (the reverse side strips the
		 * same family from untrusted clients, reverse.strip_headers) */
		for (const char *const *n = identity_headers; *n != NULL; n++)
			gw_req_hdr_del(rq, *n);
		for (size_t i = 0; i < h->nhdrs; i++) {
			const struct gw_hdr *x = &h->hdrs[i];
			if (x->name_len > 6 && strncasecmp(x->name, "proxy-", 6) == 0)
				gw_req_hdr_del(rq, gw_req_strndup(rq, x->name, x->name_len));
		}
		const struct gw_hdr *ref = gw_http1_find(h, "referer");
		if (ref != NULL && !same_site_referer(h, ref->value, ref->value_len))
			gw_req_hdr_del(rq, "referer");
		return;
	}
	const struct gw_hdr *xff = gw_http1_find(h, "x-forwarded-for");
	const char *client = gw_req_client_str(rq);
	size_t cl = strlen(client), n = 0;
	char v[512];
	/* memcpy, not snprintf: this runs for every forwarded request */
	if (xff != NULL && xff->value_len < 400) {
		memcpy(v, xff->value, xff->value_len);
		memcpy(v + xff->value_len, GW_STRLIT(", "));
		n = xff->value_len + 2;
	}
	memcpy(v + n, client, cl);   /* cl < INET6_ADDRSTRLEN: fits */
	n += cl;
	gw_req_hdr_del(rq, "x-forwarded-for");
	gw_req_hdr_add(rq, "X-Forwarded-For", v, n);
}

/* Does a request go through forward.parent?  Not without it, not for a
 * bypass_domains host.  Pure on the config, so on_resolved() gives the
 * same answer as fwd_proxy() and fwd_rq_decide(). */
int fwd_proxy_via_parent(const struct fwd_data *d, const struct gw_http_head *h)
{
	const struct conf_fwd_parent *pp = &d->cf->forward.parent;

	return pp->present && pp->naddrs > 0 && h->host != NULL &&
	    !fwd_host_listed(&pp->bypass, h->host, h->host_len);
}

/* The first parent from index from on that is not being skipped; when all
 * of them are, the first one from there (trying beats refusing).  Returns
 * naddrs when from is past the end. */
size_t fwd_proxy_parent_pick(const struct fwd_data *d, size_t from)
{
	size_t n = d->cf->forward.parent.naddrs;
	double now = gw_mono_now();

	for (size_t i = from; i < n; i++) {
		double until = atomic_load(&d->parent_down[i]);
		if (until > now)
			continue;
		/* the end of a skip is logged once (the thread that clears it) */
		if (until > 0 && atomic_compare_exchange_strong(&d->parent_down[i], &until, 0.0))
			gw_info("forward: parent proxy %s: tried again after %g s (fail_timeout)",
			    d->cf->forward.parent.addrs[i].text, d->cf->forward.parent.fail_timeout);
		return i;
	}
	return from;
}

/* Send rq to parent i: a plain request in absolute-form as the client sent
 * it (RFC 9112 3.2.2), a CONNECT as a CONNECT to the parent first; the
 * parent resolves the target's name. */
void fwd_proxy_to_parent(struct gw_req *rq, struct fwd_data *d, size_t i)
{
	const struct gw_http_head *h = gw_req_head(rq);
	const struct conf_addr *pa = &d->cf->forward.parent.addrs[i];

	if (h->method == GW_M_CONNECT) {
		char extra[sizeof d->parent_auth + 24];
		int n = d->parent_auth_len == 0 ? 0 : snprintf(extra, sizeof extra,
		    "Proxy-Authorization: %s\r\n", d->parent_auth);
		gw_req_tunnel(rq, h->host, h->host_len, h->port);
		gw_req_tunnel_via(rq, pa->host, strlen(pa->host), pa->port, n > 0 ? extra : NULL,
		    n > 0 ? (size_t)n : 0);
		return;
	}
	gw_req_proxy(rq, pa->host, strlen(pa->host), pa->port, h->target, h->target_len);
}

void fwd_proxy(struct gw_req *rq, struct fwd_data *d)
{
	const struct gw_http_head *h = gw_req_head(rq);

	hygiene(rq, d);
	if (fwd_proxy_via_parent(d, h)) {
		/* added once: header edits stay through a failover */
		if (d->parent_auth_len > 0)
			gw_req_hdr_add(rq, "Proxy-Authorization", d->parent_auth, d->parent_auth_len);
		fwd_proxy_to_parent(rq, d, fwd_proxy_parent_pick(d, 0));
		return;
	}
	gw_req_proxy(rq, h->host, h->host_len, h->port, NULL, 0);
	if (d->insp != NULL && gw_req_conn_tag(rq) != NULL) {
		gw_req_upstream_tls(rq, fwd_inspect_upstream_tls(d->insp, h->host, h->host_len));
		if (gw_req_conn_upstream_h2(rq))   /* the origin chose h2 for the CONNECT */
			gw_req_upstream_h2(rq);
		gw_req_set_reason(rq, "inspected");
	}
}
