/*
 * Unit tests for conf/: the shipped default config, a config with every key
 * (tests/config/good/full.conf), defaults, the text parsers, CIDR matching
 * and the libconfig integer traps.  Runs from the project root.
 */
#include "conf/conf.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cwd[4096];

static void print_errs(const struct conf_errors *e)
{
	size_t i;
	for (i = 0; i < e->n; i++)
		fprintf(stderr, "  %s\n", e->msgs[i]);
}

/* Writes text to a temp file and loads it; *errs gets the errors. */
static struct conf *load_text(const char *text, struct conf_errors *errs)
{
	char path[] = "/tmp/gw-conf-test-XXXXXX";
	int fd = mkstemp(path);
	struct conf *c;
	FILE *f;

	if (fd < 0)
		abort();
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	conf_errors_init(errs);
	c = conf_load(path, errs);
	unlink(path);
	return c;
}

/* 1 if loading text fails with exactly one error whose text contains want. */
static int fails_with(const char *text, const char *want)
{
	struct conf_errors e;
	struct conf *c = load_text(text, &e);
	int ok = !c && e.n == 1 && strstr(e.msgs[0], want) != NULL;

	if (!ok) {
		fprintf(stderr, "  want one error containing \"%s\", got %zu:\n", want, e.n);
		print_errs(&e);
	}
	conf_free(c);
	conf_errors_free(&e);
	return ok;
}

static int loads(const char *text)
{
	struct conf_errors e;
	struct conf *c = load_text(text, &e);
	int ok = c != NULL;

	if (!ok)
		print_errs(&e);
	conf_free(c);
	conf_errors_free(&e);
	return ok;
}

static int in_path(const char *got, const char *rel)
{
	char want[8192];
	snprintf(want, sizeof(want), "%s/%s", cwd, rel);
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "  path %s, want %s\n", got, want);
		return 0;
	}
	return 1;
}

static void test_shipped(void)
{
	struct conf_errors e;
	struct conf *c;

	BEGIN_CASE("shipped default config");
	conf_errors_init(&e);
	c = conf_load("conf/gatehouse.conf", &e);
	CHECK(c != NULL, "conf/gatehouse.conf does not load");
	print_errs(&e);
	if (c) {
		CHECK(strcmp(c->global.user, "") == 0, "user %s", c->global.user);
		CHECK(strcmp(c->global.log.error, "stderr") == 0, "error log");
		CHECK(strcmp(c->global.log.access, "stdout") == 0, "access log");
		CHECK(c->forward.present && c->forward.nlisteners == 1, "forward listeners");
		CHECK(c->forward.nlisteners == 1 && strcmp(c->forward.listeners[0].addr.text, "127.0.0.1:3128") == 0,
		    "forward listener");
		CHECK(c->forward.allow_clients.n == 2, "allow_clients");
		CHECK(c->forward.nconnect_ports == 1 && c->forward.connect_ports[0] == 443, "connect_ports");
		CHECK(c->forward.websocket_ports == NULL && c->forward.nwebsocket_ports == 0,
		    "websocket_ports absent: connect_ports and 80 (forward/policy.c)");
		CHECK(c->forward.policy_present && c->forward.npolicy >= 1 &&
		    c->forward.policy[c->forward.npolicy - 1].action == CONF_ACT_ALLOW, "policy ends in allow");
		CHECK(!c->forward.auth.present && !c->forward.dlp.present && !c->forward.pac.present, "optional off");
		CHECK(c->reverse.present && c->reverse.nlisteners == 1 && c->reverse.listeners[0].addr.port == 8080,
		    "reverse listener");
		CHECK(c->reverse.nsites == 1 && c->reverse.sites[0].is_default, "default site");
		CHECK(c->reverse.nsites == 1 && c->reverse.sites[0].nroutes == 1 &&
		    c->reverse.sites[0].routes[0].kind == CONF_ROUTE_STATIC &&
		    in_path(c->reverse.sites[0].routes[0].static_dir, "conf/www"), "static route");
		CHECK(c->admin.present && c->admin.listen_enabled && c->admin.listen.port == 9090, "admin");
		CHECK(in_path(c->dir, "conf"), "dir");
		CHECK(access("conf/www/index.html", R_OK) == 0, "welcome page");
	}
	conf_free(c);
	conf_errors_free(&e);
	END_CASE();
}

static void test_full(void)
{
	struct conf_errors e;
	struct conf *c;
	const struct conf_forward *f;
	const struct conf_reverse *r;

	BEGIN_CASE("full config: every key");
	conf_errors_init(&e);
	c = conf_load("tests/config/good/full.conf", &e);
	CHECK(c != NULL, "full.conf does not load");
	print_errs(&e);
	if (!c) {
		conf_errors_free(&e);
		END_CASE();
		return;
	}
	CHECK(c->global.workers == 4 && strcmp(c->global.user, "nobody") == 0, "workers/user");
	CHECK(c->global.max_connections == 5000, "max_connections");
	CHECK(c->global.max_connections_per_client == 300, "max_connections_per_client");
	CHECK(in_path(c->global.state_dir, "tests/config/good/state"), "state_dir");
	CHECK(strcmp(c->global.via_name, "gw1") == 0, "via_name");
	CHECK(in_path(c->global.log.error, "tests/config/good/logs/error.log"), "log.error");
	CHECK(c->global.log.level == 0 && strcmp(c->global.log.access, "") == 0 && c->global.log.access_json == 1,
	    "log");
	CHECK(c->global.timeouts.client_header == 5.0 && c->global.timeouts.client_body == 15.5 &&
	    c->global.timeouts.client_idle == 20.0 && c->global.timeouts.upstream_connect == 2.0 &&
	    c->global.timeouts.upstream_response == 45.0 && c->global.timeouts.upstream_idle == 30.0 &&
	    c->global.timeouts.tunnel_idle == 600.0 && c->global.timeouts.shutdown_grace == 0.0 &&
	    c->global.timeouts.client_first_byte == 3.5, "timeouts");
	CHECK(c->global.limits.max_header_bytes == 65536 && c->global.limits.max_headers == 50 &&
	    c->global.limits.max_uri_bytes == 4096 && c->global.limits.max_body_bytes == 5000000000ull, "limits");
	CHECK(c->global.dns.servers.n == 3 && strcmp(c->global.dns.servers.v[2], "[2620:fe::fe]:53") == 0, "dns");
	CHECK(c->global.dns.cache_ttl_max == 120.0 && c->global.dns.timeout == 1.5 &&
	    strcmp(c->global.dns.hosts_file, "") == 0, "dns values");

	f = &c->forward;
	CHECK(f->present && f->nlisteners == 2, "fwd listeners");
	CHECK(f->nlisteners == 2 && strcmp(f->listeners[0].addr.host, "") == 0 &&
	    f->listeners[0].addr.ss.ss_family == AF_INET6 && f->listeners[1].addr.port == 3129, "fwd addr");
	CHECK(f->nlisteners == 2 && f->listeners[0].max_connections_per_client == -1 &&
	    f->listeners[1].max_connections_per_client == 4000, "fwd listener max_connections_per_client");
	CHECK(f->allow_clients.n == 3 && f->allow_clients.v[2].prefix == 32, "allow_clients");
	CHECK(f->deny_destinations.n == 1, "deny_destinations");
	CHECK(f->nconnect_ports == 2 && f->connect_ports[1] == 8443, "connect_ports");
	CHECK(f->websocket_ports != NULL && f->nwebsocket_ports == 3 && f->websocket_ports[2] == 8080,
	    "websocket_ports");
	CHECK(f->anonymize == 1 && strcmp(f->block_contact, "Call the helpdesk on 1234") == 0, "anonymize");
	CHECK(f->auth.present && strcmp(f->auth.realm, "Corp Proxy") == 0 &&
	    strcmp(f->auth.users_file, "/etc/gatehouse/users") == 0 &&
	    in_path(f->auth.groups_file, "tests/config/good/groups") && f->auth.cache_ttl == 30.0, "auth");
	CHECK(f->nlists == 2 && strcmp(f->lists[0].name, "malware") == 0 &&
	    in_path(f->lists[0].file, "tests/config/good/lists/malware.domains"), "lists");
	CHECK(f->policy_present && f->npolicy == 5, "policy count %zu", f->npolicy);
	if (f->npolicy == 5) {
		const struct conf_fwd_rule *p = f->policy;
		CHECK(strcmp(p[0].name, "block-malware") == 0 && p[0].action == CONF_ACT_DENY && p[0].lists.n == 2,
		    "rule 0");
		CHECK(p[1].name == NULL && p[1].domains.n == 2 && strcmp(p[1].domains.v[0], "*.games.example") == 0 &&
		    p[1].groups.n == 1 && p[1].hours.n == 1, "rule 1");
		CHECK(p[2].methods.n == 2 && strcmp(p[2].methods.v[0], "GET") == 0 && p[2].nports == 2 &&
		    p[2].ports[1] == 8080 && p[2].schemes.n == 1 && p[2].clients.n == 1 && p[2].users.n == 1 &&
		    p[2].urls.n == 1 && p[2].hours.n == 2, "rule 2");
		CHECK(p[3].action == CONF_ACT_AUTH && strcmp(p[3].schemes.v[0], "connect") == 0, "rule 3");
		CHECK(p[4].action == CONF_ACT_ALLOW, "rule 4");
		CHECK(p[0].src.line == 56 && strstr(p[0].src.file, "full.conf") != NULL, "src %s:%d",
		    p[0].src.file, p[0].src.line);
	}
	CHECK(f->dlp.present && !f->dlp.enabled && !f->dlp.action_deny && !f->dlp.oversize_deny &&
	    f->dlp.max_scan_bytes == 8u * 1024 * 1024 && f->dlp.detectors.n == 3 && f->dlp.npatterns == 1 &&
	    strcmp(f->dlp.patterns[0].regex, "(?i)\\bbluebird\\b") == 0, "dlp");
	CHECK(f->pac.present && strcmp(f->pac.proxy, "gatehouse.corp.example:3128") == 0 && f->pac.direct.n == 2,
	    "pac");

	r = &c->reverse;
	CHECK(r->present && r->nlisteners == 2 && !r->listeners[0].tls && r->listeners[1].tls, "rev listeners");
	CHECK(r->nlisteners == 2 && r->listeners[0].max_connections_per_client == -1 &&
	    r->listeners[1].max_connections_per_client == 0, "rev listener max_connections_per_client");
	CHECK(r->ncertificates == 2 && r->certificates[0].is_default &&
	    in_path(r->certificates[0].ocsp, "tests/config/good/tls/example.ocsp") &&
	    r->certificates[1].ocsp == NULL && !r->certificates[1].is_default, "certificates");
	CHECK(r->trusted_proxies.n == 2 && r->trusted_proxies.v[1].family == AF_INET6, "trusted_proxies");
	CHECK(r->nupstreams == 2, "upstreams");
	if (r->nupstreams == 2) {
		const struct conf_rev_upstream *u = &r->upstreams[0];
		CHECK(strcmp(u->name, "app") == 0 && u->balance == CONF_BAL_LEAST_CONN && u->nservers == 2, "up 0");
		CHECK(u->nservers == 2 && u->servers[0].weight == 5 && u->servers[0].max_conns == 100 &&
		    !u->servers[0].addr.is_name && u->servers[1].addr.is_name && u->servers[1].backup &&
		    u->servers[1].weight == 1, "servers");
		CHECK(u->health.present && strcmp(u->health.path, "/healthz") == 0 && u->health.interval == 5.0 &&
		    u->health.timeout == 2.5 && u->health.rise == 3 && u->health.fall == 4 &&
		    u->health.status_min == 200 && u->health.status_max == 299 && u->health.slow_start == 30.0,
		    "health");
		CHECK(u->keepalive == 8 && u->tls && in_path(u->ca_file, "tests/config/good/tls/ca.pem") &&
		    strcmp(u->sni, "app.internal") == 0 && !u->tls_verify, "upstream tls");
		u = &r->upstreams[1];
		CHECK(u->balance == CONF_BAL_RANDOM_TWO && u->keepalive == 32 && u->tls_verify && !u->health.present &&
		    u->health.status_min == 200 && u->health.status_max == 399 && u->health.rise == 2 &&
		    u->health.fall == 3 && u->health.interval == 2.0 && u->health.timeout == 1.0 &&
		    strcmp(u->health.path, "/") == 0, "upstream defaults");
	}
	CHECK(r->nsites == 2, "sites");
	if (r->nsites == 2) {
		const struct conf_rev_site *s = &r->sites[0];
		CHECK(s->hosts.n == 2 && strcmp(s->hosts.v[0], "www.example.com") == 0 && !s->is_default &&
		    s->force_https && s->allow_clients.n == 2 && s->deny_clients.n == 1 && s->rate_rps == 50.0 &&
		    s->rate_burst == 100.0, "site 0");
		CHECK(s->nroutes == 3, "routes");
		if (s->nroutes == 3) {
			CHECK(s->routes[0].kind == CONF_ROUTE_UPSTREAM && strcmp(s->routes[0].upstream, "app") == 0 &&
			    s->routes[0].strip_prefix && s->routes[0].nset_headers == 2 &&
			    strcmp(s->routes[0].set_headers[1].name, "X-Frame-Options") == 0 &&
			    strcmp(s->routes[0].set_headers[1].value, "DENY") == 0 &&
			    s->routes[0].max_body_bytes == 10u * 1024 * 1024, "route 0");
			CHECK(s->routes[1].kind == CONF_ROUTE_REDIRECT && s->routes[1].redirect_status == 301 &&
			    strcmp(s->routes[1].redirect, "https://new.example.com/") == 0, "route 1");
			CHECK(s->routes[2].kind == CONF_ROUTE_STATIC &&
			    in_path(s->routes[2].static_dir, "tests/config/good/www") &&
			    s->routes[2].redirect_status == 302, "route 2");
		}
		CHECK(r->sites[1].is_default && r->sites[1].hosts.n == 0, "default site");
	}
	CHECK(c->admin.present && c->admin.listen.port == 9191 && c->admin.metrics_enabled &&
	    c->admin.metrics_listen.ss.ss_family == AF_INET6 &&
	    in_path(c->admin.users_file, "tests/config/good/admin.users") &&
	    in_path(c->admin.tls_cert, "tests/config/good/admin.pem") &&
	    strcmp(c->admin.tls_key, "/etc/gatehouse/admin.key") == 0, "admin (included)");
	conf_free(c);
	conf_errors_free(&e);
	END_CASE();
}

static void test_defaults(void)
{
	struct conf_errors e;
	struct conf *c;

	BEGIN_CASE("defaults: empty file");
	c = load_text("# nothing\n", &e);
	CHECK(c != NULL, "empty file must load");
	if (c) {
		const struct conf_global *g = &c->global;
		CHECK(g->workers == 0 && strcmp(g->user, "gatehouse") == 0 && g->max_connections == 100000 &&
		    g->max_connections_per_client == 1000 &&
		    strcmp(g->state_dir, "/var/lib/gatehouse") == 0 && strcmp(g->via_name, "gatehouse") == 0, "global");
		CHECK(strcmp(g->log.error, "stderr") == 0 && g->log.level == 1 &&
		    strcmp(g->log.access, "/var/log/gatehouse/access.log") == 0 && g->log.access_json == 0, "log");
		CHECK(g->timeouts.client_header == 10 && g->timeouts.client_body == 30 && g->timeouts.client_idle == 60 &&
		    g->timeouts.upstream_connect == 5 && g->timeouts.upstream_response == 60 &&
		    g->timeouts.upstream_idle == 60 && g->timeouts.tunnel_idle == 300 &&
		    g->timeouts.shutdown_grace == 30 && g->timeouts.client_first_byte == 10, "timeouts");
		CHECK(g->limits.max_header_bytes == 32768 && g->limits.max_headers == 100 &&
		    g->limits.max_uri_bytes == 8192 && g->limits.max_body_bytes == 0, "limits");
		CHECK(g->dns.servers.n == 0 && g->dns.cache_ttl_max == 300 && g->dns.timeout == 2.0 &&
		    strcmp(g->dns.hosts_file, "/etc/hosts") == 0, "dns");
		CHECK(!c->forward.present && !c->reverse.present && !c->admin.present && !c->admin.listen_enabled,
		    "sections off");
		CHECK(c->admin.listen.port == 9090 && strcmp(c->admin.listen.text, "127.0.0.1:9090") == 0, "admin dflt");
	}
	conf_free(c);
	conf_errors_free(&e);
	END_CASE();

	BEGIN_CASE("defaults: empty sections");
	c = load_text("global: {}; forward: {}; reverse: {}; admin: {};\n", &e);
	CHECK(c != NULL, "empty sections must load");
	print_errs(&e);
	if (c) {
		const struct conf_forward *f = &c->forward;
		CHECK(f->present && f->nlisteners == 0 && !f->policy_present && f->allow_clients.n == 5 &&
		    f->deny_destinations.n == 4 && f->nconnect_ports == 1 && f->connect_ports[0] == 443 &&
		    !f->anonymize && strcmp(f->block_contact, "") == 0, "forward");
		CHECK(!f->auth.present && f->auth.cache_ttl == 60.0 && !f->dlp.present &&
		    f->dlp.max_scan_bytes == 16u * 1024 * 1024 && f->dlp.action_deny && f->dlp.oversize_deny, "fwd opt");
		CHECK(c->reverse.present && c->reverse.nlisteners == 0 && c->reverse.nsites == 0, "reverse");
		CHECK(c->admin.present && c->admin.listen_enabled && c->admin.listen.port == 9090 &&
		    !c->admin.metrics_enabled && c->admin.tls_cert == NULL &&
		    strcmp(c->admin.users_file, "/etc/gatehouse/admin.users") == 0, "admin");
	}
	conf_free(c);
	conf_errors_free(&e);
	END_CASE();

	BEGIN_CASE("defaults: dlp, auth, route, site");
	c = load_text("forward: { auth: { users_file = \"u\"; }; dlp: {}; };\n"
	    "reverse: { sites = ( { hosts = [\"a\"]; rate_limit: { requests_per_second = 5; };\n"
	    "  routes = ( { path = \"/\"; redirect = \"/x\"; } ); } ); };\n"
	    "admin: { listen = \"\"; };\n", &e);
	CHECK(c != NULL, "must load");
	print_errs(&e);
	if (c) {
		CHECK(c->forward.auth.present && strcmp(c->forward.auth.realm, "Gatehouse") == 0 &&
		    c->forward.auth.groups_file == NULL, "auth");
		CHECK(c->forward.dlp.present && c->forward.dlp.enabled && c->forward.dlp.action_deny, "dlp");
		CHECK(c->reverse.sites[0].rate_rps == 5 && c->reverse.sites[0].rate_burst == 5, "rate");
		CHECK(c->reverse.sites[0].routes[0].redirect_status == 302, "redirect_status");
		CHECK(c->admin.present && !c->admin.listen_enabled, "admin off");
	}
	conf_free(c);
	conf_errors_free(&e);
	END_CASE();
}

static void test_size(void)
{
	static const struct { const char *in; int ok; uint64_t v; } t[] = {
		{ "0", 1, 0 }, { "123", 1, 123 }, { "64k", 1, 65536 }, { "64K", 1, 65536 },
		{ "256M", 1, 256ull << 20 }, { "256m", 1, 256ull << 20 }, { "1G", 1, 1ull << 30 },
		{ "10g", 1, 10ull << 30 }, { "18446744073709551615", 1, UINT64_MAX },
		{ "18446744073709551616", 0, 0 }, { "17179869184G", 0, 0 }, { "", 0, 0 }, { "k", 0, 0 },
		{ "-1", 0, 0 }, { "1.5M", 0, 0 }, { "64kb", 0, 0 }, { " 64k", 0, 0 }, { "64 k", 0, 0 },
		{ "1T", 0, 0 }, { "0x10", 0, 0 },
	};
	size_t i;

	BEGIN_CASE("conf_parse_size");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t v = 7;
		const char *msg = conf_parse_size(t[i].in, &v);
		CHECK((msg == NULL) == t[i].ok, "\"%s\": %s", t[i].in, msg ? msg : "accepted");
		if (t[i].ok)
			CHECK(v == t[i].v, "\"%s\" = %llu", t[i].in, (unsigned long long)v);
	}
	END_CASE();
}

static void test_addr(void)
{
	static const struct { const char *in; int allow_name, ok, family, is_name; const char *host; int port; } t[] = {
		{ "127.0.0.1:80", 0, 1, AF_INET, 0, "127.0.0.1", 80 },
		{ "[::1]:8080", 0, 1, AF_INET6, 0, "::1", 8080 },
		{ "*:3128", 0, 1, AF_INET6, 0, "", 3128 },
		{ "localhost:9090", 0, 1, AF_INET, 0, "localhost", 9090 },
		{ "LocalHost:1", 0, 1, AF_INET, 0, "LocalHost", 1 },
		{ "app.internal:8080", 1, 1, 0, 1, "app.internal", 8080 },
		{ "app.internal:8080", 0, 0, 0, 0, NULL, 0 },
		{ "10.0.0.1:65535", 1, 1, AF_INET, 0, "10.0.0.1", 65535 },
		{ "10.0.0.1:65536", 0, 0, 0, 0, NULL, 0 },
		{ "10.0.0.1:0", 0, 0, 0, 0, NULL, 0 },
		{ "10.0.0.1", 0, 0, 0, 0, NULL, 0 },
		{ "10.0.0.1:", 0, 0, 0, 0, NULL, 0 },
		{ "10.0.0.1:8o", 0, 0, 0, 0, NULL, 0 },
		{ ":80", 0, 0, 0, 0, NULL, 0 },
		{ "::1:80", 0, 0, 0, 0, NULL, 0 },
		{ "[::1]80", 0, 0, 0, 0, NULL, 0 },
		{ "[::1:80", 0, 0, 0, 0, NULL, 0 },
		{ "[10.0.0.1]:80", 0, 0, 0, 0, NULL, 0 },
		{ "[zz]:80", 0, 0, 0, 0, NULL, 0 },
		{ "*:80", 1, 0, 0, 0, NULL, 0 },
		{ "bad_host!:80", 1, 0, 0, 0, NULL, 0 },
		{ "-bad.example:80", 1, 0, 0, 0, NULL, 0 },
		{ "", 0, 0, 0, 0, NULL, 0 },
		{ "1.2.3.4:99999999999999999999", 0, 0, 0, 0, NULL, 0 },
	};
	void *a = conf_arena_new();
	size_t i;

	BEGIN_CASE("conf_parse_addr");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct conf_addr ad;
		const char *msg = conf_parse_addr(t[i].in, t[i].allow_name, &ad, a);
		CHECK((msg == NULL) == t[i].ok, "\"%s\" (names %d): %s", t[i].in, t[i].allow_name,
		    msg ? msg : "accepted");
		if (!msg && t[i].ok) {
			CHECK(strcmp(ad.host, t[i].host) == 0 && ad.port == t[i].port && ad.is_name == t[i].is_name &&
			    strcmp(ad.text, t[i].in) == 0, "\"%s\": host %s port %u", t[i].in, ad.host, ad.port);
			if (!t[i].is_name) {
				CHECK(ad.ss.ss_family == t[i].family, "\"%s\" family", t[i].in);
				CHECK(ad.sslen == (t[i].family == AF_INET ? sizeof(struct sockaddr_in)
				    : sizeof(struct sockaddr_in6)), "\"%s\" sslen", t[i].in);
				if (t[i].family == AF_INET)
					CHECK(ntohs(((struct sockaddr_in *)&ad.ss)->sin_port) == t[i].port, "port");
				else
					CHECK(ntohs(((struct sockaddr_in6 *)&ad.ss)->sin6_port) == t[i].port, "port");
			}
		}
	}
	{
		struct conf_addr ad;
		conf_parse_addr("localhost:1", 0, &ad, a);
		CHECK(((struct sockaddr_in *)&ad.ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK), "localhost = 127.0.0.1");
		conf_parse_addr("*:1", 0, &ad, a);
		CHECK(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ad.ss)->sin6_addr), "* = [::]");
	}
	conf_arena_free(a);
	END_CASE();
}

static void test_cidr(void)
{
	static const struct { const char *in; const char *err; int family, prefix; } t[] = {
		{ "10.0.0.0/8", NULL, AF_INET, 8 },
		{ "0.0.0.0/0", NULL, AF_INET, 0 },
		{ "192.168.1.7", NULL, AF_INET, 32 },
		{ "::1/128", NULL, AF_INET6, 128 },
		{ "::1", NULL, AF_INET6, 128 },
		{ "fe80::/10", NULL, AF_INET6, 10 },
		{ "::/0", NULL, AF_INET6, 0 },
		{ "::ffff:10.0.0.0/104", NULL, AF_INET, 8 },
		{ "10.1.2.3/8", "host bits set; did you mean 10.0.0.0/8?", 0, 0 },
		{ "fe80::1/10", "host bits set; did you mean fe80::/10?", 0, 0 },
		{ "10.0.0.0/33", "prefix length must be between 0 and 32", 0, 0 },
		{ "::/129", "prefix length must be between 0 and 128", 0, 0 },
		{ "10.0.0.0/", "missing prefix length after '/'", 0, 0 },
		{ "10.0.0.0/x", "prefix length is not a number", 0, 0 },
		{ "10.0.0/8", "not an IP address or CIDR (e.g. \"10.0.0.0/8\")", 0, 0 },
		{ "010.0.0.0/8", "not an IP address or CIDR (e.g. \"10.0.0.0/8\")", 0, 0 },
		{ "0x0a.0.0.0/8", "not an IP address or CIDR (e.g. \"10.0.0.0/8\")", 0, 0 },
		{ "example.com", "not an IP address or CIDR (e.g. \"10.0.0.0/8\")", 0, 0 },
		{ "", "empty address; expected \"10.0.0.0/8\", \"::1/128\" or an address", 0, 0 },
		{ "10.0.0.0/99999999999999999999", "prefix length must be between 0 and 32", 0, 0 },
	};
	size_t i;

	BEGIN_CASE("conf_parse_cidr");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct conf_cidr c;
		const char *msg = conf_parse_cidr(t[i].in, &c);
		if (t[i].err) {
			CHECK(msg && strcmp(msg, t[i].err) == 0, "\"%s\": got \"%s\"", t[i].in, msg ? msg : "accepted");
		} else {
			CHECK(!msg, "\"%s\": %s", t[i].in, msg);
			CHECK(!msg && c.family == t[i].family && c.prefix == t[i].prefix, "\"%s\": family %d prefix %d",
			    t[i].in, c.family, c.prefix);
		}
	}
	END_CASE();
}

static int match(const struct conf_cidrs *set, const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		abort();
	return conf_cidr_match(set, (struct sockaddr *)&ss);
}

static void test_cidr_match(void)
{
	static const char *const nets[] = { "10.0.0.0/8", "192.168.1.7", "fd00::/8", "172.16.0.0/12",
	    "::ffff:100.64.0.0/106" };
	struct conf_cidr v[5];
	struct conf_cidrs set = { v, 5 }, none = { NULL, 0 };
	struct sockaddr_un_fake { sa_family_t f; char pad[30]; } unix_sa = { AF_UNIX, { 0 } };
	size_t i;

	BEGIN_CASE("conf_cidr_match");
	for (i = 0; i < 5; i++)
		CHECK(conf_parse_cidr(nets[i], &v[i]) == NULL, "%s", nets[i]);
	CHECK(match(&set, "10.1.2.3"), "v4 in /8");
	CHECK(!match(&set, "11.1.2.3"), "v4 outside");
	CHECK(match(&set, "192.168.1.7") && !match(&set, "192.168.1.8"), "host route");
	CHECK(match(&set, "172.31.255.255") && !match(&set, "172.32.0.0"), "/12 edges");
	CHECK(match(&set, "::ffff:10.9.9.9"), "v4-mapped v6 client counts as v4");
	CHECK(!match(&set, "::ffff:11.9.9.9"), "v4-mapped outside");
	CHECK(match(&set, "fd12::1") && !match(&set, "fe80::1"), "v6");
	CHECK(match(&set, "::a00:1") && match(&set, "::ffff:0:a00:1"),
	    "v4-compatible and v4-translated count as v4 (core/addr canonical form)");
	CHECK(!match(&set, "::1") && !match(&set, "::"), ":: and ::1 stay v6");
	CHECK(match(&set, "100.64.0.1") && match(&set, "::ffff:100.127.255.255") && !match(&set, "100.128.0.0"),
	    "mapped CIDR matches v4 clients");
	CHECK(!match(&none, "10.0.0.1"), "empty set");
	CHECK(!conf_cidr_match(&set, (struct sockaddr *)&unix_sa), "AF_UNIX");
	{
		struct conf_cidr all;
		struct conf_cidrs s1 = { &all, 1 };
		conf_parse_cidr("0.0.0.0/0", &all);
		CHECK(match(&s1, "1.2.3.4") && match(&s1, "::ffff:1.2.3.4") && !match(&s1, "::1"), "0/0");
	}
	END_CASE();
}

static void test_int_traps(void)
{
	BEGIN_CASE("integer overflow traps");
	CHECK(fails_with("global: { limits: { max_body_bytes = 10000000000; }; };\n",
	    "global.limits.max_body_bytes: 10000000000 does not fit in a 32-bit integer"), "wrapped size");
	CHECK(loads("global: { limits: { max_body_bytes = 10000000000L; }; };\n"), "L suffix");
	CHECK(loads("global: { limits: { max_body_bytes = \"10G\"; }; };\n"), "string");
	CHECK(fails_with("global: { max_connections = 4294967396; };\n",
	    "global.max_connections: must be between 1 and 10000000"), "wrapped to 100");
	CHECK(fails_with("global: { workers = 0x100000004; };\n", "global.workers: must be between 0 and 1024"),
	    "hex wraps to 4");
	CHECK(fails_with("global: { workers = -4294967295; };\n", "global.workers: must be between 0 and 1024"),
	    "negative wraps to 1");
	CHECK(fails_with("forward: { connect_ports = [ 443, 4294967739 ]; };\n",
	    "forward.connect_ports.[1]: must be between 1 and 65535"), "array element wraps to 443");
	CHECK(fails_with("global: { timeouts: { client_idle = 4294967306; }; };\n",
	    "global.timeouts.client_idle: must be between 0.001 and 86400"), "duration wraps to 10");
	CHECK(fails_with("global: { max_connections = 99999999999999999999999; };\n",
	    "global.max_connections: must be between 1 and 10000000"), "beyond int64");
	CHECK(fails_with("global: { limits: { max_body_bytes = -1; }; };\n",
	    "global.limits.max_body_bytes: must be between 0 and"), "negative size");
	CHECK(fails_with("global: { limits: { max_body_bytes = 5000000000000L; }; };\n",
	    "must be between 0 and 1099511627776"), "too large int64");
	/* not fooled: big literals in comments, strings, names, floats */
	CHECK(fails_with("# 10000000000\nglobal: { workers = 2; /* 4294967298 */ via_name = \"x4294967298\";\n"
	    "timeouts: { client_idle = 1.0e10; }; };\n", "global.timeouts.client_idle: must be between"),
	    "only the float out of range is reported");
	CHECK(loads("# workers = 4294967298\nglobal: { workers = 2; // 4294967298\n"
	    "user = \"4294967298\"; };\n"), "comments and strings");
	CHECK(loads("global: { workers = 2; timeouts: { client_idle = 5.0; tunnel_idle = 4.294967298e3; }; };\n"),
	    "float mantissa");
	CHECK(fails_with("global: { workers = 2147483647; };\n", "global.workers: must be between 0 and 1024"),
	    "in range for int but not for workers");
	END_CASE();
}

static void test_misc_errors(void)
{
	struct conf_errors e;
	struct conf *c;

	BEGIN_CASE("missing file, all errors collected, auto-convert");
	conf_errors_init(&e);
	c = conf_load("tests/config/does-not-exist.conf", &e);
	CHECK(!c && e.n == 1 && strcmp(e.msgs[0],
	    "tests/config/does-not-exist.conf: cannot open: No such file or directory") == 0, "%s",
	    e.n ? e.msgs[0] : "-");
	conf_errors_free(&e);
	c = load_text("global: { workers = \"x\"; user = 5; bogus = 1; };\nnope: {};\n", &e);
	CHECK(!c && e.n == 4, "want 4 errors, got %zu", e.n);
	conf_errors_free(&e);
	CHECK(loads("global: { timeouts: { client_idle = 7; }; dns: { cache_ttl_max = 5; }; };\n"),
	    "int accepted as duration");
	CHECK(fails_with("global: { workers = 2.0; };\n", "global.workers: expected an integer"), "float as int");
	CHECK(fails_with("forward: { allow_clients = [ \"10.1.0.0/8\" ]; };\n",
	    "forward.allow_clients.[0]: host bits set; did you mean 10.0.0.0/8?"), "cidr message");
	CHECK(fails_with("forward: { policy = ( { action = \"auth\"; } ); };\n",
	    "forward.policy.[0].action: \"auth\" needs a forward.auth section"), "auth without auth");
	CHECK(fails_with("forward: { policy = ( { action = \"deny\"; hours = \"Fri-Mon 22:00-06:00\"; } ); };\n",
	    "the time range must end after it starts"), "overnight");
	CHECK(loads("forward: { policy = ( { action = \"deny\"; hours = [ \"Fri-Mon\", \"monday 00:00-24:00\","
	    " \"09:00-17:00\", \"Sat,Sun\" ]; } ); };\n"), "hours forms");
	CHECK(fails_with("forward: { policy = ( { action = \"deny\"; hours = \"Mon-Fri 9:00-17:00\"; } ); };\n",
	    "bad time range"), "H:MM");
	CHECK(fails_with("forward: { policy = ( { action = \"deny\"; hours = \"Mon-Fri 09:00-24:01\"; } ); };\n",
	    "bad time range"), "24:01");
	CHECK(fails_with("forward: { policy = ( { action = \"deny\"; methods = [ \"GE T\" ]; } ); };\n",
	    "not a valid HTTP method"), "method");
	CHECK(fails_with("admin: { tls_cert = \"a.pem\"; };\n", "admin.tls_cert: set both tls_cert and tls_key, or neither"),
	    "admin tls pair");
	CHECK(fails_with("admin: { listen = \"*:9090\"; metrics_listen = \"127.0.0.1:9090\"; };\n",
	    "admin.metrics_listen: \"127.0.0.1:9090\" conflicts with admin.listen (\"*:9090\")"), "admin overlap");
	CHECK(loads("forward: { listeners = ( { address = \"127.0.0.1:3128\"; } ); };\n"
	    "reverse: { listeners = ( { address = \"127.0.0.2:3128\"; } ); };\n"), "different IPs, same port");
	END_CASE();
}

int main(void)
{
	if (!getcwd(cwd, sizeof(cwd)))
		return 2;
	test_shipped();
	test_full();
	test_defaults();
	test_size();
	test_addr();
	test_cidr();
	test_cidr_match();
	test_int_traps();
	test_misc_errors();
	return check_done();
}
