/*
 * Unit tests for forward/decide: fwd_decide()'s checks in their order
 * (clients, the proxy itself, CONNECT ports, https without CONNECT,
 * WebSocket ports, IP-literal destinations and own listeners, credentials,
 * the URL, the policy with "auth" satisfied by a user) as one table of
 * facts -> verdict, stage, rule, status.  The struct conf is built by hand,
 * as in test_policy.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "conf_fixture.h"
#include "forward/decide.h"
#include "forward/policy.h"


static struct sockaddr_storage client_ss;

static const struct sockaddr *client(const char *addr)
{
	memset(&client_ss, 0, sizeof client_ss);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&client_ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&client_ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s4->sin_addr);
	}
	return (const struct sockaddr *)&client_ss;
}

static struct conf_fwd_rule rule(const char *name, enum conf_action a)
{
	struct conf_fwd_rule r;
	memset(&r, 0, sizeof(r));
	r.name = (char *)name;
	r.action = a;
	r.src.file = "test.conf";
	r.src.line = 1;
	return r;
}

struct row {
	const char *client, *method, *target;   /* target: "/..." "*" "host:port" or a URL */
	int websocket;
	enum fwd_cred cred;
	const char *user;
	const char *verdict, *stage, *rule;
	int status;
};

/* Facts as forward.c gathers them from a parsed request line. */
static void facts(const struct row *r, struct fwd_facts *f, char *host, char *buf, size_t cap)
{
	const char *t = r->target, *hs, *he;

	memset(f, 0, sizeof *f);
	f->client = client(r->client);
	f->method = r->method;
	f->connect = strcmp(r->method, "CONNECT") == 0;
	f->websocket = r->websocket;
	f->cred = r->cred;
	f->user = r->user;
	f->target = t;
	f->target_len = strlen(t);
	f->host = host;
	host[0] = '\0';
	f->md = NULL;
	f->url_buf = buf;
	f->url_cap = cap;
	if (t[0] == '/' || strcmp(t, "*") == 0) {
		f->form = t[0] == '/' ? GW_TF_ORIGIN : GW_TF_ASTERISK;
		f->path = t;
		f->path_len = strlen(t);
		return;
	}
	if (f->connect) {
		f->form = GW_TF_AUTHORITY;
		hs = t;
	} else {
		f->form = GW_TF_ABSOLUTE;
		f->https = strncmp(t, "https:", 6) == 0;
		hs = strstr(t, "://") + 3;
		f->port = f->https ? 443 : 80;
	}
	if (*hs == '[') {
		he = strchr(hs, ']');
		memcpy(host, hs + 1, (size_t)(he - hs - 1));
		host[he - hs - 1] = '\0';
		he++;
	} else {
		he = hs + strcspn(hs, ":/");
		memcpy(host, hs, (size_t)(he - hs));
		host[he - hs] = '\0';
	}
	f->host_len = strlen(host);
	if (*he == ':')
		f->port = (uint16_t)atoi(he + 1);
}

int main(void)
{
	struct conf_cidr allow[] = { cidr("10.0.0.0", 8), cidr("2001:db8::", 32) };
	struct conf_cidr deny[] = { cidr("169.254.0.0", 16) };
	struct conf_cidr lab[] = { cidr("10.9.0.0", 16) };
	uint16_t cports[] = { 443, 8443, 3128 }, wports[] = { 80 };
	struct conf_fwd_rule rules[4];
	struct conf_listener ls[1];
	struct conf cf;
	struct conf_errors errs;
	struct fwd_policy *p;
	struct fwd_decider dc;
	struct sockaddr_in *l4 = (struct sockaddr_in *)&ls[0].addr.ss;

	memset(&cf, 0, sizeof cf);
	memset(ls, 0, sizeof ls);
	cf.path = "test.conf";
	cf.forward.present = 1;
	cf.forward.allow_clients = (struct conf_cidrs){ allow, 2 };
	cf.forward.deny_destinations = (struct conf_cidrs){ deny, 1 };
	cf.forward.connect_ports = cports;
	cf.forward.nconnect_ports = 3;
	cf.forward.websocket_ports = wports;
	cf.forward.nwebsocket_ports = 1;
	ls[0].addr.host = "10.0.0.1";
	ls[0].addr.port = 3128;
	l4->sin_family = AF_INET;
	l4->sin_port = htons(3128);
	inet_pton(AF_INET, "10.0.0.1", &l4->sin_addr);
	cf.forward.listeners = ls;
	cf.forward.nlisteners = 1;
	cf.forward.auth.present = 1;
	rules[0] = rule("lab", CONF_ACT_DENY);
	rules[0].clients = (struct conf_cidrs){ lab, 1 };
	rules[1] = rule("login", CONF_ACT_AUTH);
	rules[1].domains = STRS("intra.example");
	rules[2] = rule("no-games", CONF_ACT_DENY);
	rules[2].domains = STRS(".games.example");
	rules[3] = rule("default", CONF_ACT_ALLOW);
	cf.forward.policy = rules;
	cf.forward.npolicy = 4;
	cf.forward.policy_present = 1;
	conf_errors_init(&errs);
	p = fwd_policy_compile(&cf, &errs);
	if (p == NULL) {
		fprintf(stderr, "policy does not compile\n");
		return 1;
	}
	fwd_decider_init(&dc, p, &cf);

	static const struct row rows[] = {
		{ "192.0.2.1", "GET", "http://a.example/", 0, FWD_CRED_NONE, NULL, "deny", "allow_clients", "allow_clients", 403 },
		{ "192.0.2.1", "GET", "/proxy.pac", 0, FWD_CRED_NONE, NULL, "deny", "allow_clients", "allow_clients", 403 },
		{ "10.1.1.1", "GET", "/proxy.pac", 0, FWD_CRED_NONE, NULL, "local", "local", "pac", 404 },
		{ "10.1.1.1", "POST", "/proxy.pac", 0, FWD_CRED_NONE, NULL, "local", "local", NULL, 400 },
		{ "10.1.1.1", "OPTIONS", "*", 0, FWD_CRED_NONE, NULL, "local", "local", NULL, 400 },
		{ "10.1.1.1", "CONNECT", "a.example:25", 0, FWD_CRED_NONE, NULL, "deny", "connect_ports", "connect_ports", 403 },
		{ "10.1.1.1", "CONNECT", "a.example:8443", 0, FWD_CRED_NONE, NULL, "allow", "policy", "default", 200 },
		{ "10.1.1.1", "GET", "https://a.example/", 0, FWD_CRED_NONE, NULL, "local", "scheme", NULL, 501 },
		{ "10.1.1.1", "GET", "http://a.example:81/", 1, FWD_CRED_NONE, NULL, "deny", "websocket_ports", "websocket_ports", 403 },
		{ "10.1.1.1", "GET", "http://a.example/", 1, FWD_CRED_NONE, NULL, "allow", "policy", "default", 200 },
		{ "10.1.1.1", "GET", "http://169.254.169.254/", 0, FWD_CRED_NONE, NULL, "deny", "destination", "deny_destinations", 403 },
		{ "10.1.1.1", "GET", "http://10.0.0.1:3128/", 0, FWD_CRED_NONE, NULL, "deny", "destination", "own_listener", 403 },
		{ "10.1.1.1", "CONNECT", "[::ffff:10.0.0.1]:3128", 0, FWD_CRED_NONE, NULL, "deny", "destination", "own_listener", 403 },
		{ "10.1.1.1", "GET", "http://10.0.0.1:3129/", 0, FWD_CRED_NONE, NULL, "allow", "policy", "default", 200 },
		/* the destination goes before the credentials, they before the URL */
		{ "10.1.1.1", "GET", "http://169.254.1.1/", 0, FWD_CRED_GIVEN, NULL, "deny", "destination", "deny_destinations", 403 },
		{ "10.1.1.1", "GET", "http://a.example/%zz", 0, FWD_CRED_GIVEN, NULL, "verify", "credentials", NULL, 0 },
		{ "10.1.1.1", "GET", "http://a.example/%zz", 0, FWD_CRED_NONE, NULL, "local", "url", NULL, 400 },
		{ "10.9.1.1", "GET", "http://a.example/", 0, FWD_CRED_NONE, NULL, "deny", "policy", "lab", 403 },
		{ "2001:db8::5", "GET", "http://www.games.example/", 0, FWD_CRED_NONE, NULL, "deny", "policy", "no-games", 403 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_NONE, NULL, "auth", "policy", "login", 407 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_OK, "alice", "allow", "policy", "default", 200 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_BAD, NULL, "auth-failed", "policy", "login", 407 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_BACKOFF, NULL, "auth-backoff", "policy", "login", 407 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_BUSY, NULL, "auth-busy", "policy", "login", 503 },
		{ "10.1.1.1", "GET", "http://intra.example/", 0, FWD_CRED_THROTTLED, NULL, "auth-throttled", "policy", "login", 429 },
		{ "10.1.1.1", "GET", "http://www.games.example/", 0, FWD_CRED_OK, "alice", "deny", "policy", "no-games", 403 },
	};
	char host[256], buf[512];
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct fwd_facts f;
		struct fwd_verdict v;
		char name[160];
		snprintf(name, sizeof name, "%s %s %s from %s", r->method, r->target, r->user ? r->user : "-",
		    r->client);
		BEGIN_CASE(name);
		facts(r, &f, host, buf, sizeof buf);
		CHECK(fwd_decide(&dc, &f, &v) == 0, "decides");
		CHECK(strcmp(fwd_verdict_name(v.verdict), r->verdict) == 0, "verdict %s", fwd_verdict_name(v.verdict));
		CHECK(strcmp(fwd_stage_name(v.stage), r->stage) == 0, "stage %s", fwd_stage_name(v.stage));
		CHECK((r->rule == NULL && v.rule == NULL) || (r->rule && v.rule && strcmp(r->rule, v.rule) == 0),
		    "rule %s", v.rule ? v.rule : "(none)");
		CHECK(v.status == r->status, "status %d", v.status);
		/* a block page and a local answer say why (a 407 asks to sign in) */
		CHECK((v.verdict != FWD_V_DENY && v.verdict != FWD_V_LOCAL) || v.status == 200 ||
		    v.reason[0] != '\0', "a refusal says why");
		END_CASE();
	}

	BEGIN_CASE("explain: an allow says why only when asked");
	{
		struct row r = { "10.1.1.1", "GET", "http://a.example/", 0, FWD_CRED_NONE, NULL, "allow", "policy", "default", 200 };
		struct fwd_facts f;
		struct fwd_verdict v;
		facts(&r, &f, host, buf, sizeof buf);
		fwd_decide(&dc, &f, &v);
		CHECK(v.reason[0] == '\0' && v.url != NULL && strcmp(v.url, "http://a.example/") == 0, "quiet");
		f.explain = 1;
		fwd_decide(&dc, &f, &v);
		CHECK(strstr(v.reason, "default") != NULL, "%s", v.reason);
		f.url_cap = 8;   /* too small a work space is refused, not overrun */
		fwd_decide(&dc, &f, &v);
		CHECK(v.stage == FWD_STAGE_URL && v.status == 400, "no room");
	}
	END_CASE();

	BEGIN_CASE("a decider that is not one");
	{
		struct fwd_decider bad = dc;
		struct row r = { "10.1.1.1", "GET", "http://a.example/", 0, FWD_CRED_NONE, NULL, NULL, NULL, NULL, 0 };
		struct fwd_facts f;
		struct fwd_verdict v;
		facts(&r, &f, host, buf, sizeof buf);
		bad.magic = 0;
		CHECK(fwd_decide(&bad, &f, &v) < 0 && v.verdict == FWD_V_DENY && v.status == 500, "magic");
		CHECK(fwd_decide(NULL, &f, &v) < 0, "NULL");
	}
	END_CASE();

	fwd_policy_free(p);
	conf_errors_free(&errs);
	return check_done();
}
