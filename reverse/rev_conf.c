/*
 * reverse/rev_conf: reads the reverse section (reverse.*) into struct
 * conf_reverse with the engine's key readers (conf/keys.h): listeners,
 * certificates, trusted proxies, strip_headers, upstreams (servers, health,
 * TLS), the cache, and sites with their routes; rev_conf_check then checks
 * that every route's upstream exists.  The reverse compiler
 * (reverse/reverse.c) turns it into the side's immutable data.
 */
#include "reverse/rev_conf.h"
#include "conf/keys.h"
#include "reverse/rev_conf_tls.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct conf_reverse *rev_of(struct conf_ctx *x)
{
	return conf_section(x);
}

/* ---- reverse ---- */

static const char *const k_reverse[] = { "listeners", "certificates", "trusted_proxies", "upstreams",
    "sites", "cache", "strip_headers", "tls", "acme", NULL };
static const char *const k_cache[] = { "memory", "max_object", "x_cache_header", NULL };
static const char *const k_route_cache[] = { "ttl", "stale_if_error", "ignore_set_cookie",
    "ignore_cookie", NULL };
static const char *const k_cert[] = { "cert", "key", "ocsp", "default", "acme", NULL };
static const char *const k_upstream[] = { "name", "balance", "servers", "health", "keepalive", "tls",
    "ca_file", "sni", "tls_verify", "max_fails", "fail_timeout", "protocol", "h2_ping_interval", "h2_ping_timeout", NULL };
static const char *const k_server[] = { "address", "weight", "backup", "max_conns", NULL };
static const char *const k_health[] = { "path", "interval", "timeout", "rise", "fall", "expect_status",
    "slow_start", NULL };
static const char *const k_site[] = { "hosts", "default", "force_https", "allow_clients",
    "deny_clients", "rate_limit", "routes", "hsts", "client_ca", "client_verify", NULL };
static const char *const k_rate[] = { "requests_per_second", "burst", NULL };
static const char *const k_route[] = { "path", "upstream", "static", "redirect", "redirect_status",
    "strip_prefix", "set_headers", "max_body_bytes", "cache", "dotfiles", "keep_path", NULL };

static void read_certs(struct conf_ctx *x, config_setting_t *r)
{
	struct conf_reverse *rv = rev_of(x);
	config_setting_t *l = conf_get_glist(x, r, "reverse", "certificates");
	char ep[CONF_KP];
	unsigned i, n;
	int have_default = -1;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->certificates = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*rv->certificates));
	for (i = 0; i < n; i++) {
		struct conf_rev_cert *ce = &rv->certificates[rv->ncertificates];
		config_setting_t *e = conf_glist_elem(x, l, "reverse.certificates", i, k_cert, ep);
		int ok = 1;
		if (!e)
			continue;
		memset(ce, 0, sizeof(*ce));   /* the slot may hold a rejected element */
		ce->src = conf_src_of(x, e);
		if (conf_member(e, "acme")) {
			if (rev_conf_tls_cert_acme(x, e, ep, ce) < 0)
				ok = 0;
		} else if (conf_get_path(x, e, ep, "cert", 0, &ce->cert) != 1) {
			if (!conf_member(e, "cert"))
				conf_missing(x, e, ep, "cert");
			ok = 0;
		}
		if (!conf_member(e, "acme") && conf_get_path(x, e, ep, "key", 0, &ce->key) != 1) {
			if (!conf_member(e, "key"))
				conf_missing(x, e, ep, "key");
			ok = 0;
		}
		if (conf_get_path(x, e, ep, "ocsp", 0, &ce->ocsp) < 0)
			ok = 0;
		if (conf_get_bool(x, e, ep, "default", &ce->is_default) == 1 && ce->is_default) {
			if (have_default >= 0) {
				char p[CONF_KP];
				conf_kp_child(p, ep, "default");
				conf_serr(x, conf_member(e, "default"), p,
				    "only one certificate may be the default (reverse.certificates.[%d] is)",
				    have_default);
				ok = 0;
			} else {
				have_default = (int)i;
			}
		}
		if (ok)
			rv->ncertificates++;
	}
}

/* expect_status: 200, "200" or "200-399". */
static void read_status(struct conf_ctx *x, config_setting_t *h, const char *hp, struct conf_rev_health *he)
{
	config_setting_t *s = conf_member(h, "expect_status");
	char p[CONF_KP];
	int a, b;

	if (!s)
		return;
	conf_kp_child(p, hp, "expect_status");
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *t = config_setting_get_string(s);
		char tail;
		int n = sscanf(t, "%3d-%3d%c", &a, &b, &tail);
		if (n == 1) {
			if (sscanf(t, "%3d%c", &a, &tail) != 1) {
				conf_serr(x, s, p, "expected a status or range such as \"200-399\"");
				return;
			}
			b = a;
		} else if (n != 2) {
			conf_serr(x, s, p, "expected a status or range such as \"200-399\"");
			return;
		}
	} else {
		long long v;
		if (conf_check_int(x, s, p, 100, 599, &v) != 1)
			return;
		a = b = (int)v;
	}
	if (a < 100 || b > 599 || a > b) {
		conf_serr(x, s, p, "statuses must be between 100 and 599, low to high");
		return;
	}
	he->status_min = a;
	he->status_max = b;
}

static void read_upstreams(struct conf_ctx *x, config_setting_t *r)
{
	static const char *const balances[] = { "round_robin", "least_conn", "ip_hash", "random_two", NULL };
	static const char *const protocols[] = { "http1.1", "h2", NULL };
	struct conf_reverse *rv = rev_of(x);
	config_setting_t *l = conf_get_glist(x, r, "reverse", "upstreams");
	char ep[CONF_KP], p[CONF_KP], sp[CONF_KP], hp[CONF_KP];
	unsigned i, n, j, m;
	size_t k;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->upstreams = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*rv->upstreams));
	for (i = 0; i < n; i++) {
		struct conf_rev_upstream *u = &rv->upstreams[rv->nupstreams];
		config_setting_t *e = conf_glist_elem(x, l, "reverse.upstreams", i, k_upstream, ep), *sl, *h;
		struct conf_rev_health *he = &u->health;
		int ok = 1, bal = 0, proto = 0;
		if (!e)
			continue;
		memset(u, 0, sizeof(*u));   /* the slot may hold a rejected element */
		u->src = conf_src_of(x, e);
		u->keepalive = 32;
		u->tls_verify = 1;
		u->max_fails = -1;
		u->fail_timeout = 10.0;
		u->h2_ping_interval = 30.0;
		u->h2_ping_timeout = 10.0;
		he->path = conf_arena_strdup(conf_ctx_arena(x), "/");
		he->status_min = 200;
		he->status_max = 399;
		he->interval = 2.0;
		he->timeout = 1.0;
		he->rise = 2;
		he->fall = 3;
		he->slow_start = 0;
		switch (conf_get_text(x, e, ep, "name", 0, &u->name)) {
		case 0:
			conf_missing(x, e, ep, "name");
			ok = 0;
			break;
		case 1:
			conf_kp_child(p, ep, "name");
			if (conf_chk_token(x, u->name)) {
				conf_serr(x, conf_member(e, "name"), p, "must be a token (letters, digits, '-', '.', '_')");
				ok = 0;
				break;
			}
			for (k = 0; k < rv->nupstreams; k++) {
				if (strcmp(rv->upstreams[k].name, u->name) == 0) {
					conf_serr(x, conf_member(e, "name"), p, "upstream \"%s\" is already defined at line %d",
					    u->name, rv->upstreams[k].src.line);
					ok = 0;
				}
			}
			break;
		default:
			ok = 0;
		}
		if (conf_get_enum(x, e, ep, "balance", balances, &bal) == 1)
			u->balance = (enum conf_balance)bal;
		conf_get_int(x, e, ep, "keepalive", 0, 100000, &u->keepalive);
		if (conf_get_enum(x, e, ep, "protocol", protocols, &proto) == 1)
			u->h2 = proto == 1;
		/* 0 = no PINGs (an idle session is then only closed by upstream_idle) */
		if (conf_get_num(x, e, ep, "h2_ping_interval", 0, 86400, &u->h2_ping_interval) == 1 &&
		    u->h2_ping_interval > 0 && u->h2_ping_interval < 0.1) {
			conf_kp_child(p, ep, "h2_ping_interval");
			conf_serr(x, conf_member(e, "h2_ping_interval"), p, "must be 0 (off) or at least 0.1 seconds");
		}
		conf_get_num(x, e, ep, "h2_ping_timeout", 0.1, 3600, &u->h2_ping_timeout);
		conf_get_bool(x, e, ep, "tls", &u->tls);
		conf_get_path(x, e, ep, "ca_file", 0, &u->ca_file);
		if (conf_get_text(x, e, ep, "sni", 0, &u->sni) == 1 && conf_chk_host(x, u->sni)) {
			conf_kp_child(p, ep, "sni");
			conf_serr(x, conf_member(e, "sni"), p, "not a valid host name");
		}
		conf_get_bool(x, e, ep, "tls_verify", &u->tls_verify);
		conf_get_int(x, e, ep, "max_fails", 0, 1000, &u->max_fails);
		conf_get_num(x, e, ep, "fail_timeout", 0.1, 86400, &u->fail_timeout);

		conf_kp_child(sp, ep, "servers");
		sl = conf_get_glist(x, e, ep, "servers");
		if (!sl && !conf_member(e, "servers"))
			conf_missing(x, e, ep, "servers");
		m = sl ? (unsigned)config_setting_length(sl) : 0;
		if (sl && m == 0)
			conf_serr(x, sl, sp, "needs at least one server");
		u->servers = conf_arena_alloc(conf_ctx_arena(x), (m ? m : 1) * sizeof(*u->servers));
		for (j = 0; j < m; j++) {
			struct conf_rev_server *sv = &u->servers[u->nservers];
			char sep[CONF_KP];
			config_setting_t *se = conf_glist_elem(x, sl, sp, j, k_server, sep);
			if (!se)
				continue;
			memset(sv, 0, sizeof(*sv));   /* the slot may hold a rejected element */
			sv->src = conf_src_of(x, se);
			sv->weight = 1;
			switch (conf_get_addr(x, se, sep, "address", 1, &sv->addr)) {
			case 0:
				conf_missing(x, se, sep, "address");
				continue;
			case 1:
				break;
			default:
				continue;
			}
			conf_get_int(x, se, sep, "weight", 1, 1000, &sv->weight);
			conf_get_bool(x, se, sep, "backup", &sv->backup);
			conf_get_int(x, se, sep, "max_conns", 0, 1000000, &sv->max_conns);
			u->nservers++;
		}

		conf_kp_child(hp, ep, "health");
		if ((h = conf_get_group(x, e, ep, "health", k_health))) {
			he->present = 1;
			he->src = conf_src_of(x, h);
			if (conf_get_text(x, h, hp, "path", 0, &he->path) == 1 && he->path[0] != '/') {
				conf_kp_child(p, hp, "path");
				conf_serr(x, conf_member(h, "path"), p, "must start with '/'");
			}
			conf_get_num(x, h, hp, "interval", 0.1, 3600, &he->interval);
			if (conf_get_num(x, h, hp, "timeout", 0.1, 3600, &he->timeout) == 1 &&
			    he->timeout > he->interval) {
				conf_kp_child(p, hp, "timeout");
				conf_serr(x, conf_member(h, "timeout"), p, "must not be longer than interval (%g)", he->interval);
			}
			conf_get_int(x, h, hp, "rise", 1, 100, &he->rise);
			conf_get_int(x, h, hp, "fall", 1, 100, &he->fall);
			read_status(x, h, hp, he);
			conf_get_num(x, h, hp, "slow_start", 0, 3600, &he->slow_start);
		}
		if (ok)
			rv->nupstreams++;
	}
}

/* Headers only the core writes (message framing and the connection). */
static int core_owned_header(const char *name)
{
	static const char *const owned[] = { "content-length", "transfer-encoding", "connection",
		"keep-alive", "proxy-connection", "te", "trailer", "upgrade", NULL };

	for (int i = 0; owned[i] != NULL; i++)
		if (strcasecmp(name, owned[i]) == 0)
			return 1;
	return 0;
}

static void read_set_headers(struct conf_ctx *x, config_setting_t *e, const char *ep,
    struct conf_rev_route *ro)
{
	config_setting_t *g = conf_member(e, "set_headers");
	char p[CONF_KP], hp[CONF_KP];
	unsigned i, n;

	if (!g)
		return;
	conf_kp_child(p, ep, "set_headers");
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		conf_serr(x, g, p, "expected a group of header = \"value\" pairs { X-Name = \"value\"; }");
		return;
	}
	n = (unsigned)config_setting_length(g);
	ro->set_headers = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*ro->set_headers));
	for (i = 0; i < n; i++) {
		config_setting_t *h = config_setting_get_elem(g, i);
		const char *name = config_setting_name(h);
		char *nm;
		conf_kp_child(hp, p, name);
		nm = conf_arena_strdup(conf_ctx_arena(x), name);
		if (conf_chk_token(x, nm)) {
			conf_serr(x, h, hp, "not a valid header name");
			continue;
		}
		if (core_owned_header(nm)) {
			/* the core frames the body and runs the connection: an edit of
			 * these would send a body the next hop reads differently */
			conf_serr(x, h, hp, "a framing or hop-by-hop header: only Gatehouse sets it");
			continue;
		}
		if (config_setting_type(h) != CONFIG_TYPE_STRING) {
			conf_serr(x, h, hp, "expected a string");
			continue;
		}
		if (conf_has_ctl(config_setting_get_string(h))) {
			conf_serr(x, h, hp, "must not contain control characters");
			continue;
		}
		ro->set_headers[ro->nset_headers].name = nm;
		ro->set_headers[ro->nset_headers].value = conf_arena_strdup(conf_ctx_arena(x), config_setting_get_string(h));
		ro->nset_headers++;
	}
}

/* route cache = true | false | { ttl = ...; stale_if_error = ...; ignore_set_cookie = ...; } */
static void read_route_cache(struct conf_ctx *x, config_setting_t *e, const char *ep,
    struct conf_rev_route *ro, int upstream_route)
{
	config_setting_t *c = conf_member(e, "cache");
	char p[CONF_KP];

	ro->cache_stale_if_error = -1;
	if (!c)
		return;
	conf_kp_child(p, ep, "cache");
	if (config_setting_type(c) == CONFIG_TYPE_BOOL) {
		ro->cache = config_setting_get_bool(c) ? 1 : 0;
	} else if (config_setting_type(c) == CONFIG_TYPE_GROUP) {
		conf_check_keys(x, c, p, k_route_cache);
		ro->cache = 1;
		conf_get_num(x, c, p, "ttl", 0, 31536000, &ro->cache_ttl);
		conf_get_num(x, c, p, "stale_if_error", 0, 31536000, &ro->cache_stale_if_error);
		conf_get_bool(x, c, p, "ignore_set_cookie", &ro->cache_ignore_set_cookie);
		conf_get_bool(x, c, p, "ignore_cookie", &ro->cache_ignore_cookie);
	} else {
		conf_serr(x, c, p, "expected true, false or a group { ttl = ...; stale_if_error = ...; }");
		return;
	}
	if (!ro->cache)
		return;
	if (!upstream_route)
		conf_serr(x, c, p, "only applies to an upstream route");
	else if (!rev_of(x)->cache.present)
		conf_serr(x, c, p, "needs reverse.cache = { memory = ...; } to be configured");
}

static void read_routes(struct conf_ctx *x, config_setting_t *site, const char *sp, struct conf_rev_site *si)
{
	config_setting_t *l = conf_get_glist(x, site, sp, "routes");
	char lp[CONF_KP], ep[CONF_KP], p[CONF_KP];
	unsigned i, n;
	size_t k;

	if (!l) {
		if (!conf_member(site, "routes"))
			conf_missing(x, site, sp, "routes");
		return;
	}
	conf_kp_child(lp, sp, "routes");
	n = (unsigned)config_setting_length(l);
	if (n == 0)
		conf_serr(x, l, lp, "needs at least one route");
	si->routes = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*si->routes));
	for (i = 0; i < n; i++) {
		struct conf_rev_route *ro = &si->routes[si->nroutes];
		config_setting_t *e = conf_glist_elem(x, l, lp, i, k_route, ep);
		int ok = 1, kinds = 0;
		int64_t st;
		if (!e)
			continue;
		memset(ro, 0, sizeof(*ro));   /* the slot may hold a rejected element */
		ro->src = conf_src_of(x, e);
		ro->redirect_status = 302;
		switch (conf_get_text(x, e, ep, "path", 0, &ro->path)) {
		case 0:
			conf_missing(x, e, ep, "path");
			ok = 0;
			break;
		case 1:
			conf_kp_child(p, ep, "path");
			if (ro->path[0] != '/' || strchr(ro->path, ' ')) {
				conf_serr(x, conf_member(e, "path"), p, "must start with '/' and contain no spaces");
				ok = 0;
				break;
			}
			for (k = 0; k < si->nroutes; k++) {
				if (strcmp(si->routes[k].path, ro->path) == 0) {
					conf_serr(x, conf_member(e, "path"), p, "route \"%s\" is already defined at line %d",
					    ro->path, si->routes[k].src.line);
					ok = 0;
				}
			}
			break;
		default:
			ok = 0;
		}
		if (conf_member(e, "upstream")) {
			kinds++;
			ro->kind = CONF_ROUTE_UPSTREAM;
			if (conf_get_text(x, e, ep, "upstream", 0, &ro->upstream) != 1)
				ok = 0;
		}
		if (conf_member(e, "static")) {
			kinds++;
			ro->kind = CONF_ROUTE_STATIC;
			if (conf_get_path(x, e, ep, "static", 0, &ro->static_dir) != 1)
				ok = 0;
		}
		if (conf_member(e, "redirect")) {
			kinds++;
			ro->kind = CONF_ROUTE_REDIRECT;
			if (conf_get_text(x, e, ep, "redirect", 0, &ro->redirect) != 1) {
				ok = 0;
			} else if (ro->redirect[0] != '/' && strncmp(ro->redirect, "http://", 7) != 0 &&
			    strncmp(ro->redirect, "https://", 8) != 0) {
				conf_kp_child(p, ep, "redirect");
				conf_serr(x, conf_member(e, "redirect"), p, "must be an http:// or https:// URL or start with '/'");
				ok = 0;
			}
		}
		if (kinds != 1) {
			conf_serr(x, e, ep, kinds ? "give only one of upstream, static or redirect"
			    : "needs one of upstream, static or redirect");
			ok = 0;
		}
		switch (conf_get_int(x, e, ep, "redirect_status", INT_MIN, INT_MAX, &st)) {
		case 1:
			conf_kp_child(p, ep, "redirect_status");
			if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308) {
				conf_serr(x, conf_member(e, "redirect_status"), p, "must be 301, 302, 303, 307 or 308");
				ok = 0;
			} else if (ro->kind != CONF_ROUTE_REDIRECT || kinds != 1) {
				conf_serr(x, conf_member(e, "redirect_status"), p, "only applies to a redirect route");
				ok = 0;
			}
			ro->redirect_status = (int)st;
			break;
		case -1:
			ok = 0;
			break;
		}
		conf_get_bool(x, e, ep, "strip_prefix", &ro->strip_prefix);
		if (conf_get_bool(x, e, ep, "dotfiles", &ro->dotfiles) == 1 && kinds == 1 &&
		    ro->kind != CONF_ROUTE_STATIC) {
			conf_kp_child(p, ep, "dotfiles");
			conf_serr(x, conf_member(e, "dotfiles"), p, "only applies to a static route");
			ok = 0;
		}
		if (conf_get_bool(x, e, ep, "keep_path", &ro->keep_path) == 1 && kinds == 1 &&
		    ro->kind != CONF_ROUTE_REDIRECT) {
			conf_kp_child(p, ep, "keep_path");
			conf_serr(x, conf_member(e, "keep_path"), p, "only applies to a redirect route");
			ok = 0;
		}
		read_set_headers(x, e, ep, ro);
		conf_get_size(x, e, ep, "max_body_bytes", 0, CONF_TB, &ro->max_body_bytes);
		read_route_cache(x, e, ep, ro, kinds == 1 && ro->kind == CONF_ROUTE_UPSTREAM);
		if (ok)
			si->nroutes++;
	}
}

static void read_sites(struct conf_ctx *x, config_setting_t *r)
{
	struct conf_reverse *rv = rev_of(x);
	config_setting_t *l = conf_get_glist(x, r, "reverse", "sites");
	char ep[CONF_KP], p[CONF_KP], rp[CONF_KP];
	unsigned i, n;
	int have_default = -1;
	size_t j, k, h;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->sites = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*rv->sites));
	for (i = 0; i < n; i++) {
		struct conf_rev_site *si = &rv->sites[rv->nsites];
		config_setting_t *e = conf_glist_elem(x, l, "reverse.sites", i, k_site, ep), *rl;
		int hr;
		if (!e)
			continue;
		memset(si, 0, sizeof(*si));   /* the slot may hold a rejected element */
		si->src = conf_src_of(x, e);
		hr = conf_get_strs(x, e, ep, "hosts", 0, conf_chk_host, &si->hosts);
		for (h = 0; h < si->hosts.n; h++) {
			for (j = 0; j < rv->nsites; j++) {
				for (k = 0; k < rv->sites[j].hosts.n; k++) {
					if (strcmp(rv->sites[j].hosts.v[k], si->hosts.v[h]) == 0) {
						char hp[CONF_KP];
						conf_kp_child(p, ep, "hosts");
						conf_kp_elem(hp, p, (unsigned)h);
						conf_serr(x, config_setting_get_elem(conf_member(e, "hosts"), (unsigned)h), hp,
						    "host \"%s\" is already served by reverse.sites.[%zu]",
						    si->hosts.v[h], j);
					}
				}
			}
		}
		if (conf_get_bool(x, e, ep, "default", &si->is_default) == 1 && si->is_default) {
			if (have_default >= 0) {
				conf_kp_child(p, ep, "default");
				conf_serr(x, conf_member(e, "default"), p,
				    "only one site may be the default (reverse.sites.[%d] is)", have_default);
			} else {
				have_default = (int)i;
			}
		}
		if (si->hosts.n == 0 && !si->is_default && hr >= 0)
			conf_serr(x, e, ep, "needs hosts, or default = true");
		conf_get_bool(x, e, ep, "force_https", &si->force_https);
		conf_get_cidrs(x, e, ep, "allow_clients", &si->allow_clients);
		conf_get_cidrs(x, e, ep, "deny_clients", &si->deny_clients);
		conf_kp_child(rp, ep, "rate_limit");
		if ((rl = conf_get_group(x, e, ep, "rate_limit", k_rate))) {
			if (conf_get_num(x, rl, rp, "requests_per_second", 0, 1e6, &si->rate_rps) == 0)
				conf_missing(x, rl, rp, "requests_per_second");
			if (conf_get_num(x, rl, rp, "burst", 0, 1e6, &si->rate_burst) == 0)
				si->rate_burst = si->rate_rps < 1 ? 1 : si->rate_rps;
		}
		read_routes(x, e, ep, si);
		rev_conf_tls_site(x, e, ep, si);
		rv->nsites++;
	}
}

static void read_cache(struct conf_ctx *x, config_setting_t *r)
{
	struct conf_rev_cache *ca = &rev_of(x)->cache;
	config_setting_t *g = conf_get_group(x, r, "reverse", "cache", k_cache);

	ca->memory = 256ull << 20;
	ca->max_object = 8ull << 20;
	ca->x_cache_header = 1;
	if (!g)
		return;
	ca->present = 1;
	ca->src = conf_src_of(x, g);
	conf_get_size(x, g, "reverse.cache", "memory", 65536, CONF_TB, &ca->memory);
	if (conf_get_size(x, g, "reverse.cache", "max_object", 1, CONF_TB, &ca->max_object) == 1 &&
	    ca->max_object > ca->memory)
		conf_serr(x, conf_member(g, "max_object"), "reverse.cache.max_object",
		    "must not be larger than reverse.cache.memory");
	conf_get_bool(x, g, "reverse.cache", "x_cache_header", &ca->x_cache_header);
}

/* A header a client's request may lose: any field but the ones that frame
 * or route the message. */
static const char *chk_strip_header(struct conf_ctx *x, char *v)
{
	static const char *const never[] = { "host", "content-length", "transfer-encoding",
		"connection", NULL };

	if (conf_chk_token(x, v))
		return "not a valid header name";
	for (int i = 0; never[i] != NULL; i++)
		if (strcasecmp(v, never[i]) == 0)
			return "frames or routes the request: it cannot be stripped";
	return NULL;
}

static void read_strip_headers(struct conf_ctx *x, config_setting_t *r)
{
	static const char *const dflt[] = { "X-Real-IP", "X-Original-URL", "X-Rewrite-URL",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Client-IP",
		"True-Client-IP", "CF-Connecting-IP", "X-Cluster-Client-IP", "X-Forwarded-Server",
		"X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "Front-End-Https",
		"X-Original-Host", "X-Host" };
	struct conf_strs *sh = &rev_of(x)->strip_headers;

	if (conf_get_strs(x, r, "reverse", "strip_headers", 0, chk_strip_header, sh) != 0)
		return;
	sh->n = sizeof dflt / sizeof dflt[0];
	sh->v = conf_arena_alloc(conf_ctx_arena(x), sh->n * sizeof(char *));
	for (size_t i = 0; i < sh->n; i++)
		sh->v[i] = conf_arena_strdup(conf_ctx_arena(x), dflt[i]);
}

void rev_conf_read(struct conf_ctx *x, config_setting_t *root)
{
	struct conf_reverse *rv = rev_of(x);
	config_setting_t *r = conf_get_group(x, root, "", "reverse", k_reverse);

	if (!r)
		return;
	rv->present = 1;
	conf_read_listeners(x, r, "reverse", 1, &rv->listeners, &rv->nlisteners);
	conf_bind_listeners(x, "reverse", rv->listeners, rv->nlisteners);
	rev_conf_tls_listeners(x, r, rv);
	rev_conf_tls_acme(x, r, &rv->acme);
	read_certs(x, r);
	rev_conf_tls_read(x, r, &rv->tls);
	conf_get_cidrs(x, r, "reverse", "trusted_proxies", &rv->trusted_proxies);
	read_strip_headers(x, r);
	read_upstreams(x, r);
	read_cache(x, r);
	read_sites(x, r);
}

/* Route upstream names must exist (after all upstreams are read). */
void rev_conf_check(struct conf_ctx *x, config_setting_t *root)
{
	struct conf_reverse *rv = rev_of(x);
	size_t i, j, k;

	(void)root;
	for (i = 0; i < rv->nsites; i++) {
		for (j = 0; j < rv->sites[i].nroutes; j++) {
			struct conf_rev_route *ro = &rv->sites[i].routes[j];
			if (ro->kind != CONF_ROUTE_UPSTREAM || !ro->upstream)
				continue;
			for (k = 0; k < rv->nupstreams; k++)
				if (strcmp(rv->upstreams[k].name, ro->upstream) == 0)
					break;
			if (k == rv->nupstreams) {
				char p[CONF_KP];
				snprintf(p, sizeof(p), "reverse.sites.[%zu].routes.[%zu].upstream", i, j);
				conf_cerr(x, ro->src.file, ro->src.line, p,
				    "no upstream named \"%s\" in reverse.upstreams", ro->upstream);
			}
		}
	}
}
