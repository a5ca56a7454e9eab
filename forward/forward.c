/*
 * forward: decisions for the explicit proxy.  Absolute-form http:// requests
 * and CONNECT tunnels from clients in forward.allow_clients are checked
 * against the compiled policy (before DNS), then every resolved address is
 * checked against forward.deny_destinations and Gatehouse's own listeners
 * (after DNS) before the core connects.
 */
#include "forward/forward.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "core/proto.h"
#include "forward/policy.h"

struct fwd_data {
	struct fwd_policy *policy;
	const struct conf *cf;
};

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *p)
{
	fwd_matchdata_free(p);
}

static void md_init(void)
{
	pthread_key_create(&md_key, md_free);
}

/* This thread's PCRE2 match block (created once per worker thread). */
static struct fwd_matchdata *thread_md(void)
{
	struct fwd_matchdata *md;

	pthread_once(&md_once, md_init);
	md = pthread_getspecific(md_key);
	if (md == NULL) {
		md = fwd_matchdata_new();
		pthread_setspecific(md_key, md);
	}
	return md;
}

static void deny(struct gw_req *rq, int status, const char *rule, const char *detail)
{
	gw_req_set_verdict(rq, "deny", rule);
	gw_req_respond(rq, status, NULL, NULL, 0, detail);
}

/* Lower-cased NUL-terminated copy of the target host. */
static char *host_lc(struct gw_req *rq, const struct gw_http_head *h)
{
	char *s = gw_req_strndup(rq, h->host, h->host_len);

	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return s;
}

static void on_request(struct gw_req *rq, void *side)
{
	struct fwd_data *d = side;
	const struct gw_http_head *h = gw_req_head(rq);
	const struct conf_forward *cf = &d->cf->forward;
	struct fwd_request fr;
	struct fwd_match why;
	const struct fwd_rule *rule;
	char because[512];
	struct tm tm;
	time_t now = time(NULL);
	char *url = NULL;
	const char *method;

	if (!fwd_client_allowed(d->policy, gw_req_client(rq))) {
		deny(rq, 403, "allow_clients", "Your address may not use this proxy.");
		return;
	}
	if (h->target_form == GW_TF_ORIGIN || h->target_form == GW_TF_ASTERISK) {
		gw_req_set_verdict(rq, "local", NULL);
		gw_req_respond(rq, 400, NULL, NULL, 0,
		    "This is a proxy: configure it in your browser rather than opening it as a site.");
		return;
	}
	if (h->method == GW_M_CONNECT) {
		if (!fwd_connect_port_allowed(d->policy, h->port)) {
			snprintf(because, sizeof because, "CONNECT to port %u is not allowed.", h->port);
			deny(rq, 403, "connect_ports", gw_req_strndup(rq, because, strlen(because)));
			return;
		}
	} else if (h->scheme_len != 4) {
		gw_req_set_verdict(rq, "local", NULL);
		gw_req_respond(rq, 501, NULL, NULL, 0, "https:// URLs must be requested with CONNECT.");
		return;
	}
	memset(&fr, 0, sizeof fr);
	localtime_r(&now, &tm);
	fr.client = gw_req_client(rq);
	fr.scheme = h->method == GW_M_CONNECT ? FWD_SCHEME_CONNECT : FWD_SCHEME_HTTP;
	method = gw_req_strndup(rq, h->method_str, h->method_len);
	fr.method = method;
	fr.host = host_lc(rq, h);
	fr.port = h->port;
	if (h->method != GW_M_CONNECT) {
		url = gw_req_strndup(rq, h->target, h->target_len);
		fr.url = url;
		fr.url_len = h->target_len;
	}
	fr.local_time = &tm;
	fr.md = thread_md();
	rule = fwd_policy_eval(d->policy, &fr, &why);
	fwd_match_format(&why, because, sizeof because);
	if (rule == NULL || why.action != CONF_ACT_ALLOW) {
		const char *name = gw_req_strndup(rq, why.rule_name, strlen(why.rule_name));
		char detail[600];
		snprintf(detail, sizeof detail, "Blocked by %s.", because);
		if (rule != NULL && why.action == CONF_ACT_AUTH) {
			/* authentication is not available yet: refuse, clearly */
			const char *realm = cf->auth.present && cf->auth.realm ? cf->auth.realm : "Gatehouse";
			char hdr[300];
			int n = snprintf(hdr, sizeof hdr, "Basic realm=\"%s\"", realm);
			gw_req_resp_hdr_add(rq, "Proxy-Authenticate", hdr, (size_t)n);
			gw_req_set_verdict(rq, "auth", name);
			gw_req_respond(rq, 407, NULL, NULL, 0, "Proxy authentication is required.");
			return;
		}
		deny(rq, 403, name, gw_req_strndup(rq, detail, strlen(detail)));
		return;
	}
	gw_req_set_verdict(rq, "allow", gw_req_strndup(rq, why.rule_name, strlen(why.rule_name)));
	if (h->method == GW_M_CONNECT) {
		gw_req_tunnel(rq, h->host, h->host_len, h->port);
		return;
	}
	gw_req_hdr_del(rq, "proxy-authorization");
	gw_req_hdr_del(rq, "proxy-authenticate");
	if (cf->anonymize) {
		gw_req_no_via(rq);
		gw_req_hdr_del(rq, "via");
		gw_req_hdr_del(rq, "x-forwarded-for");
		gw_req_hdr_del(rq, "forwarded");
		gw_req_hdr_del(rq, "from");
		gw_req_hdr_del(rq, "referer");
	} else {
		const struct gw_hdr *xff = gw_http1_find(h, "x-forwarded-for");
		char v[512];
		int n;
		if (xff != NULL && xff->value_len < 400)
			n = snprintf(v, sizeof v, "%.*s, %s", (int)xff->value_len, xff->value,
			    gw_req_client_str(rq));
		else
			n = snprintf(v, sizeof v, "%s", gw_req_client_str(rq));
		gw_req_hdr_del(rq, "x-forwarded-for");
		gw_req_hdr_add(rq, "X-Forwarded-For", v, (size_t)n);
	}
	gw_req_proxy(rq, h->host, h->host_len, h->port, NULL, 0);
}

/* Is sa one of our own listening addresses (forward, reverse or console)? */
static int is_own_listener(const struct conf *cf, const struct sockaddr *sa)
{
	uint16_t port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
	    : ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	const struct conf_addr *addrs[64];
	size_t n = 0;

	for (size_t i = 0; i < cf->forward.nlisteners && n < 60; i++)
		addrs[n++] = &cf->forward.listeners[i].addr;
	for (size_t i = 0; i < cf->reverse.nlisteners && n < 62; i++)
		addrs[n++] = &cf->reverse.listeners[i].addr;
	if (cf->admin.listen_enabled)
		addrs[n++] = &cf->admin.listen;
	if (cf->admin.metrics_enabled)
		addrs[n++] = &cf->admin.metrics_listen;
	for (size_t i = 0; i < n; i++) {
		const struct sockaddr *la = (const struct sockaddr *)&addrs[i]->ss;
		if (addrs[i]->port != port)
			continue;
		if (addrs[i]->host[0] == '\0')
			return 1;  /* wildcard: every local address */
		if (la->sa_family == AF_INET && sa->sa_family == AF_INET &&
		    memcmp(&((const struct sockaddr_in *)la)->sin_addr,
		    &((const struct sockaddr_in *)sa)->sin_addr, 4) == 0)
			return 1;
		if (la->sa_family == AF_INET6 && sa->sa_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)la)->sin6_addr,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0)
			return 1;
	}
	return 0;
}

static int on_resolved(struct gw_req *rq, const struct sockaddr *sa, void *side)
{
	struct fwd_data *d = side;

	if (fwd_dest_denied(d->policy, sa)) {
		gw_req_set_verdict(rq, "deny", "deny_destinations");
		return 403;
	}
	if (is_own_listener(d->cf, sa)) {
		gw_req_set_verdict(rq, "deny", "own_listener");
		return 403;
	}
	return 0;
}

static const struct gw_proto fwd_proto = {
	.name = "forward",
	.family = 0,
	.on_request = on_request,
	.on_resolved = on_resolved,
};

static int compile(const struct conf *cf, struct conf_errors *errs, void **data)
{
	struct fwd_data *d;
	struct fwd_policy *p;

	*data = NULL;
	if (!cf->forward.present)
		return 0;
	p = fwd_policy_compile(cf, errs);
	if (p == NULL)
		return -1;
	d = calloc(1, sizeof *d);
	if (d == NULL) {
		fwd_policy_free(p);
		return -1;
	}
	d->policy = p;
	d->cf = cf;
	*data = d;
	return 0;
}

static void side_free(void *data)
{
	struct fwd_data *d = data;

	fwd_policy_free(d->policy);
	free(d);
}

static const struct conf_listener *listeners(const struct conf *cf, size_t *n)
{
	*n = cf->forward.present ? cf->forward.nlisteners : 0;
	return cf->forward.listeners;
}

const struct gw_side fwd_side = {
	.proto = &fwd_proto,
	.compile = compile,
	.free = side_free,
	.listeners = listeners,
};
