/*
 * forward/decide: the forward proxy's decision about a request, pure over
 * the compiled configuration (see decide.h for the order of the checks).
 * The texts are the ones the proxy has always sent and logged: they reach
 * block pages, the access log's reason= and the console's tester.
 */
#include "forward/decide.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "core/addr.h"
#include "forward/domainset.h"
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

#define DECIDER_MAGIC 0x46444331u   /* "FDC1" */

void fwd_decider_init(struct fwd_decider *dc, const struct fwd_policy *p, const struct conf *cf)
{
	memset(dc, 0, sizeof *dc);
	dc->magic = DECIDER_MAGIC;
	dc->policy = p;
	dc->cf = cf;
	dc->auth_db = cf->forward.auth.present;
	for (size_t i = 0; i < cf->forward.npolicy; i++) {
		const struct conf_fwd_rule *r = &cf->forward.policy[i];
		if (r->action == CONF_ACT_AUTH || r->users.n > 0 || r->groups.n > 0)
			dc->auth_used = 1;   /* (conf/ refuses "auth" without forward.auth) */
	}
}

const char *fwd_verdict_name(enum fwd_verdict_kind k)
{
	static const char *const names[] = {
#define X(id, s) s,
		FWD_VERDICTS(X)
#undef X
	};
	return (unsigned)k < FWD_V_COUNT ? names[k] : "?";
}

const char *fwd_stage_name(enum fwd_stage s)
{
	static const char *const names[] = {
#define X(id, str) str,
		FWD_STAGES(X)
#undef X
	};
	return (unsigned)s < FWD_STAGE_COUNT ? names[s] : "?";
}

/* Fill v with a final answer; reason is a format (NULL: ""). */
__attribute__((format(printf, 6, 7)))
static int answer(struct fwd_verdict *v, enum fwd_verdict_kind k, enum fwd_stage st, const char *rule,
    int status, const char *fmt, ...)
{
	va_list ap;

	v->verdict = k;
	v->stage = st;
	v->rule = rule;
	v->status = status;
	v->reason[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(v->reason, sizeof v->reason, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* /proxy.pac or /wpad.dat, with any query. */
static int is_pac_path(const char *p, size_t n)
{
	if (p == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '?') {
			n = i;
			break;
		}
	return (n == 10 && memcmp(p, "/proxy.pac", 10) == 0) ||
	    (n == 9 && memcmp(p, "/wpad.dat", 9) == 0);
}

/* /gatehouse-ca.crt, with any query. */
static int is_ca_path(const char *p, size_t n)
{
	static const char ca[] = "/gatehouse-ca.crt";

	if (p == NULL || n < sizeof ca - 1 || memcmp(p, ca, sizeof ca - 1) != 0)
		return 0;
	return n == sizeof ca - 1 || p[sizeof ca - 1] == '?';
}

/* A request to the proxy itself: the PAC file, the inspection CA, or 400. */
static int local_answer(const struct fwd_decider *dc, const struct fwd_facts *f, struct fwd_verdict *v)
{
	if (f->form == GW_TF_ORIGIN && is_ca_path(f->path, f->path_len) &&
	    (strcmp(f->method, "GET") == 0 || strcmp(f->method, "HEAD") == 0)) {
		if (!dc->cf->forward.inspect.present)
			return answer(v, FWD_V_LOCAL, FWD_STAGE_LOCAL, "ca", 404,
			    "TLS inspection is not configured (forward.inspect).");
		return answer(v, FWD_V_LOCAL, FWD_STAGE_LOCAL, "ca", 200, NULL);
	}
	if (f->form == GW_TF_ORIGIN && is_pac_path(f->path, f->path_len) &&
	    (strcmp(f->method, "GET") == 0 || strcmp(f->method, "HEAD") == 0)) {
		if (!dc->cf->forward.pac.present)
			return answer(v, FWD_V_LOCAL, FWD_STAGE_LOCAL, "pac", 404,
			    "No PAC file is configured (forward.pac).");
		return answer(v, FWD_V_LOCAL, FWD_STAGE_LOCAL, "pac", 200, NULL);
	}
	return answer(v, FWD_V_LOCAL, FWD_STAGE_LOCAL, NULL, 400,
	    "This is a proxy: configure it in your browser rather than opening it as a site.");
}

/* An IP-literal target is checked against deny_destinations and our own
 * listeners at once, before credentials, policy and any upstream
 * connection (pooled or not); names are checked after DNS.  Returns 1
 * when v says it is refused. */
static int literal_refused(const struct fwd_decider *dc, const struct fwd_facts *f, struct fwd_verdict *v)
{
	struct sockaddr_storage ss;
	struct gw_addr a;
	const char *rule;
	int is_ip;

	if (f->host == NULL || gw_addr_parse_host(f->host, f->host_len, &a, &is_ip) != NULL || !is_ip)
		return 0;   /* a name (the parser refused ambiguous literals) */
	gw_addr_canon(&a);
	gw_addr_to_sa(&a, f->port, &ss);
	v->reason[0] = '\0';
	if ((rule = fwd_dest_check(dc->policy, dc->cf, (const struct sockaddr *)&ss, v->reason,
	    sizeof v->reason)) == NULL)
		return 0;
	v->verdict = FWD_V_DENY;
	v->stage = FWD_STAGE_DESTINATION;
	v->rule = rule;
	v->status = 403;
	return 1;
}

/* The policy, an "auth" rule satisfied by a signed-in user. */
static int policy_answer(const struct fwd_decider *dc, const struct fwd_facts *f, struct fwd_verdict *v)
{
	struct fwd_request fr;
	struct fwd_match *why = &v->match;
	const struct fwd_rule *rule;
	size_t first = 0;

	memset(&fr, 0, sizeof fr);
	if (f->cred == FWD_CRED_OK && f->user != NULL) {
		fr.user = f->user;
		fr.user_short = f->user_short;
		fr.groups = f->groups;
		fr.ngroups = f->ngroups;
	}
	fr.client = f->client;
	fr.scheme = f->connect ? FWD_SCHEME_CONNECT : FWD_SCHEME_HTTP;
	fr.method = f->method;
	fr.host = f->host;
	fr.port = f->port;
	fr.url = v->url;
	fr.url_len = v->url_len;
	fr.local_time = f->local_time;
	fr.md = f->md;
	for (;;) {
		rule = fwd_policy_eval_from(dc->policy, &fr, first, why);
		/* an "auth" rule is satisfied by an authenticated user */
		if (rule != NULL && why->action == CONF_ACT_AUTH && fr.user != NULL) {
			first = why->rule_index + 1;
			continue;
		}
		break;
	}
	v->stage = FWD_STAGE_POLICY;
	v->rule = why->rule_name;
	v->reason[0] = '\0';
	if (rule != NULL && why->action == CONF_ACT_AUTH) {
		if (!dc->auth_db) {
			/* policy asks for a login but forward.auth is not configured:
			 * conf/ should refuse this; never let it through */
			return answer(v, FWD_V_DENY, FWD_STAGE_POLICY, why->rule_name, 403,
			    "this rule requires sign-in, but no user database is configured");
		}
		switch (f->cred) {
		case FWD_CRED_BAD:
			v->verdict = FWD_V_AUTH_FAILED, v->status = 407;
			break;
		case FWD_CRED_BACKOFF:
			v->verdict = FWD_V_AUTH_BACKOFF, v->status = 407;
			break;
		case FWD_CRED_BUSY:
			v->verdict = FWD_V_AUTH_BUSY, v->status = 503;
			break;
		case FWD_CRED_DIR_DOWN:
			v->verdict = FWD_V_AUTH_BUSY, v->status = 503;
			snprintf(v->reason, sizeof v->reason, "The directory that checks sign-ins and groups "
			    "cannot be reached (directory unreachable); please try again shortly.");
			return 0;
		case FWD_CRED_THROTTLED:   /* not a 407: that would make a browser ask again */
			v->verdict = FWD_V_AUTH_THROTTLED, v->status = 429;
			break;
		default:
			v->verdict = FWD_V_AUTH, v->status = 407;
			break;
		}
		if (f->explain)
			fwd_match_format(why, v->reason, sizeof v->reason);
		return 0;
	}
	if (rule == NULL || why->action != CONF_ACT_ALLOW) {
		v->verdict = FWD_V_DENY;
		v->status = 403;
		fwd_match_format(why, v->reason, sizeof v->reason);   /* only a block says why */
		return 0;
	}
	v->verdict = FWD_V_ALLOW;
	v->status = 200;
	if (f->explain)
		fwd_match_format(why, v->reason, sizeof v->reason);
	return 0;
}

int fwd_decide(const struct fwd_decider *dc, const struct fwd_facts *f, struct fwd_verdict *v)
{
	const struct fwd_policy *p;

	if (v == NULL)
		return -1;
	memset(&v->match, 0, sizeof v->match);
	v->match.rule_index = SIZE_MAX;
	v->url = NULL;
	v->url_len = 0;
	if (dc == NULL || dc->magic != DECIDER_MAGIC || f == NULL) {
		answer(v, FWD_V_DENY, FWD_STAGE_CLIENTS, NULL, 500, "internal error: no forward configuration");
		return -1;
	}
	p = dc->policy;
	if (!fwd_client_allowed(p, f->client))
		return answer(v, FWD_V_DENY, FWD_STAGE_CLIENTS, "allow_clients", 403,
		    "your address may not use this proxy (forward.allow_clients)");
	if (f->form == GW_TF_ORIGIN || f->form == GW_TF_ASTERISK)
		return local_answer(dc, f, v);
	if (f->connect) {
		if (!fwd_connect_port_allowed(p, f->port))
			return answer(v, FWD_V_DENY, FWD_STAGE_CONNECT_PORTS, "connect_ports", 403,
			    "CONNECT to port %u is not allowed (forward.connect_ports)", f->port);
	} else if (f->https && !f->inspected) {
		return answer(v, FWD_V_LOCAL, FWD_STAGE_SCHEME, NULL, 501,
		    "https:// URLs must be requested with CONNECT.");
	} else if (f->websocket && !fwd_websocket_port_allowed(p, f->port)) {
		/* after its 101 a WebSocket is a raw tunnel, as CONNECT is */
		return answer(v, FWD_V_DENY, FWD_STAGE_WEBSOCKET_PORTS, "websocket_ports", 403,
		    "WebSocket to port %u is not allowed (forward.websocket_ports)", f->port);
	}
	if (literal_refused(dc, f, v))
		return 0;
	if (f->cred == FWD_CRED_GIVEN && dc->auth_used && dc->auth_db)
		return answer(v, FWD_V_VERIFY, FWD_STAGE_CREDENTIALS, NULL, 0, NULL);
	if (!f->connect) {
		/* rules see the normalised URL: "HTTP://H/%2e%2e/x.exe" is
		 * "http://h/x.exe" to them, as to the origin */
		const char *uerr = f->url_buf == NULL || f->url_cap < 3 * f->target_len + FWD_URL_NORM_EXTRA ?
		    "no room for the normalised URL" :
		    fwd_url_normalise(f->target, f->target_len, f->url_buf, f->url_cap, &v->url_len);
		if (uerr != NULL) {
			v->url_len = 0;
			return answer(v, FWD_V_LOCAL, FWD_STAGE_URL, NULL, 400, "%s", uerr);
		}
		v->url = f->url_buf;
	}
	return policy_answer(dc, f, v);
}

int fwd_host_listed(const struct conf_strs *l, const char *host, size_t n)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *p = l->v[i];
		size_t pn = strlen(p);
		int sub = p[0] == '*' || p[0] == '.';
		const char *dom = p[0] == '*' ? p + 1 : p;     /* ".name" */
		size_t dn = strlen(dom);

		if (!sub) {
			if (pn == n && strncasecmp(p, host, n) == 0)
				return 1;
			continue;
		}
		if (p[0] == '.' && n == dn - 1 && strncasecmp(dom + 1, host, n) == 0)
			return 1;
		if (n > dn && strncasecmp(host + n - dn, dom, dn) == 0)
			return 1;
	}
	return 0;
}

/* One name against the bypass keys: 1 (why set) when it is bypassed. */
static int name_bypassed(const struct fwd_decider *dc, const char *host, size_t n, char *why, size_t cap)
{
	const struct conf_fwd_inspect *in = &dc->cf->forward.inspect;
	const char *entry = NULL;

	if (n == 0)
		return 0;
	if (fwd_host_listed(&in->bypass_domains, host, n)) {
		snprintf(why, cap, "%.*s is in forward.inspect.bypass_domains", (int)(n < 255 ? n : 255), host);
		return 1;
	}
	for (size_t i = 0; i < in->bypass_lists.n; i++) {
		const struct fwd_domainset *set = fwd_policy_list(dc->policy, in->bypass_lists.v[i]);
		if (set != NULL && fwd_domainset_match(set, host, n, &entry)) {
			snprintf(why, cap, "%.*s is in list \"%s\" (forward.inspect.bypass_lists)",
			    (int)(n < 255 ? n : 255), host, in->bypass_lists.v[i]);
			return 1;
		}
	}
	return 0;
}

int fwd_decide_inspect(const struct fwd_decider *dc, const char *host, const char *sni,
    const struct fwd_match *m, char *why, size_t cap)
{
	const struct conf_fwd_inspect *in;

	why[0] = '\0';
	if (dc == NULL || dc->magic != DECIDER_MAGIC) {
		snprintf(why, cap, "no forward configuration");
		return 0;
	}
	in = &dc->cf->forward.inspect;
	if (!in->present || !in->mode_all) {
		snprintf(why, cap, "inspection is off (forward.inspect.mode)");
		return 0;
	}
	if (m != NULL && m->rule_index < dc->cf->forward.npolicy &&
	    !dc->cf->forward.policy[m->rule_index].inspect) {
		snprintf(why, cap, "rule %s says inspect = false", m->rule_name ? m->rule_name : "?");
		return 0;
	}
	if (host != NULL && name_bypassed(dc, host, strlen(host), why, cap)) {
		char why2[300];
		if (sni == NULL || sni[0] == '\0' || strcasecmp(sni, host) == 0 ||
		    name_bypassed(dc, sni, strlen(sni), why2, sizeof why2))
			return 0;
		snprintf(why, cap, "inspected: the CONNECT host is bypassed but the TLS name %.255s is not", sni);
		return 1;
	}
	snprintf(why, cap, "inspected (forward.inspect.mode = \"all\")");
	return 1;
}
