/*
 * forward/decide: what the forward proxy decides about a request, as pure
 * functions over the compiled configuration (see decide.h).
 */
#include "forward/decide.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "core/addr.h"
#include "forward/policy.h"

/* Is sa one of our own listening addresses (forward, reverse or console)?
 * Both sides are canonical (core/addr.h); a destination 0.0.0.0 or :: is the
 * loopback address it reaches, and a listener on 0.0.0.0 or [::] (or "*")
 * takes every local address. */
int fwd_own_listener(const struct conf *cf, const struct sockaddr *sa)
{
	uint16_t port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
	    : ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	const struct conf_addr *addrs[64];
	struct gw_addr dst, la;
	size_t n = 0;

	if (gw_addr_from_sa(sa, &dst) < 0)
		return 0;
	gw_addr_reached(&dst);
	for (size_t i = 0; i < cf->forward.nlisteners && n < 60; i++)
		addrs[n++] = &cf->forward.listeners[i].addr;
	for (size_t i = 0; i < cf->reverse.nlisteners && n < 62; i++)
		addrs[n++] = &cf->reverse.listeners[i].addr;
	if (cf->admin.listen_enabled)
		addrs[n++] = &cf->admin.listen;
	if (cf->admin.metrics_enabled)
		addrs[n++] = &cf->admin.metrics_listen;
	for (size_t i = 0; i < n; i++) {
		if (addrs[i]->port != port)
			continue;
		if (addrs[i]->host[0] == '\0')
			return 1;  /* wildcard: every local address */
		if (gw_addr_from_sa((const struct sockaddr *)&addrs[i]->ss, &la) < 0)
			continue;
		if (gw_addr_is_unspecified(&la))
			return 1;  /* 0.0.0.0 or [::]: every local address too */
		if (la.family == dst.family && memcmp(la.a, dst.a, sizeof la.a) == 0)
			return 1;
	}
	return 0;
}

/* The destination checks for one address (after DNS, and before it for an
 * IP literal): returns the rule that refuses sa ("deny_destinations" or
 * "own_listener") with the reason in why, or NULL. */
const char *fwd_dest_check(const struct fwd_policy *p, const struct conf *cf, const struct sockaddr *sa,
    char *why, size_t cap)
{
	const char *rule, *what;
	char a[INET6_ADDRSTRLEN] = "?";
	struct gw_addr ga;

	/* this runs for every proxied request: the address is only formatted
	 * when it is refused */
	if (fwd_dest_denied(p, sa)) {
		rule = "deny_destinations";
		what = "";
	} else if (fwd_own_listener(cf, sa)) {
		rule = "own_listener";
		what = "our own listener ";
	} else {
		return NULL;
	}
	if (gw_addr_from_sa(sa, &ga) == 0)
		gw_addr_format(&ga, a, sizeof a);
	snprintf(why, cap, "resolves to %s%s", what, a);
	return rule;
}
