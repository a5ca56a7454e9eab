/*
 * admin/api_config: GET config, the running configuration of both sides
 * as JSON with its secrets redacted (DLP regexes, set_headers values), and
 * GET certificates, each reverse.certificates file read with OpenSSL
 * (names, issuer, validity, days left).
 */
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "conf/conf.h"
#include "core/control.h"
#include "core/snapshot.h"
#include "forward/domainset.h"
#include "forward/forward.h"
#include "forward/icap.h"
#include "forward/inspect.h"
#include "forward/inspect_ca.h"
#include "forward/policy.h"

static json_t *strs_json(const struct conf_strs *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_string(s->v[i]));
	return a;
}

static json_t *cidrs_json(const struct conf_cidrs *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n; i++) {
		char buf[INET6_ADDRSTRLEN + 8];
		const struct conf_cidr *c = &s->v[i];
		inet_ntop(c->family, c->addr, buf, sizeof buf);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "/%u", c->prefix);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *ports_json(const uint16_t *p, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(p[i]));
	return a;
}

static json_t *src_json(const struct conf_src *s)
{
	char buf[600];

	snprintf(buf, sizeof buf, "%s:%d", s->file ? s->file : "?", s->line);
	return json_string(buf);
}

static json_t *listeners_json(const struct conf_listener *l, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:b}", "address", l[i].addr.text, "tls", l[i].tls));
	return a;
}

static const struct fwd_policy *current_policy(const struct gw_snapshot *s)
{
	return fwd_side_policy(adm_fwd_side(s));
}

/* ---- GET config (secrets redacted) ---- */

/* forward.inspect for the console: mode, the CA to hand to clients (its
 * certificate only: PEM, SHA-256 fingerprint, expiry), counters, cache. */
static json_t *inspect_json(const struct conf *cf, const void *side)
{
	const struct conf_fwd_inspect *ic = &cf->forward.inspect;
	const struct fwd_ca *ca = fwd_side_ca(side);
	json_t *o, *ctr;
	size_t n = 0;

	if (!ic->present)
		return json_null();
	ctr = json_object();   /* (after the return above: it leaked there) */
	for (int k = 0; k < FWD_IC_COUNT; k++)
		json_object_set_new(ctr, fwd_inspect_counter_name((enum fwd_inspect_counter)k),
		    json_integer((json_int_t)fwd_inspect_counter((enum fwd_inspect_counter)k)));
	o = json_pack("{s:s,s:o,s:o,s:o,s:I,s:I,s:o}", "mode", ic->mode_all ? "all" : "off",
	    "bypass_domains", strs_json(&ic->bypass_domains), "bypass_lists", strs_json(&ic->bypass_lists),
	    "insecure_hosts", strs_json(&ic->insecure_hosts), "cert_cache", (json_int_t)ic->cert_cache,
	    "cached", (json_int_t)fwd_inspect_cached(fwd_side_inspect(side)), "counters", ctr);
	{
		/* hosts whose clients refuse the minted leaf: bypass candidates */
		char hosts[FWD_INSPECT_ABORT_HOSTS][256];
		uint64_t counts[FWD_INSPECT_ABORT_HOSTS];
		size_t k = fwd_inspect_aborts(hosts, counts, FWD_INSPECT_ABORT_HOSTS);
		json_t *ab = json_array();
		for (size_t i = 0; i < k; i++)
			json_array_append_new(ab, json_pack("{s:s,s:I}", "host", hosts[i], "aborts", (json_int_t)counts[i]));
		json_object_set_new(o, "handshake_aborts", ab);
	}
	if (ca != NULL) {
		const char *pem = fwd_ca_pem(ca, &n);
		json_object_set_new(o, "ca", json_pack("{s:s,s:s,s:I,s:s}", "fingerprint_sha256", fwd_ca_fingerprint(ca),
		    "pem", pem, "not_after", (json_int_t)fwd_ca_not_after(ca), "download", "/gatehouse-ca.crt"));
		/* the console's own copies (same certificate, no forward listener needed) */
		json_object_set_new(json_object_get(o, "ca"), "console_pem", json_string("/api/v1/inspect/ca.pem"));
		json_object_set_new(json_object_get(o, "ca"), "console_der", json_string("/api/v1/inspect/ca.der"));
	}
	return o;
}

/* GET inspect/ca.pem and inspect/ca.der: the company CA's certificate as a
 * download for the console's users (viewer role is enough: it is public,
 * the forward listener serves it too).  The key is never reachable here. */
enum MHD_Result adm_api_inspect_ca(struct MHD_Connection *c, int der)
{
	const struct fwd_ca *ca = fwd_side_ca(adm_fwd_side(gw_control_snapshot()));
	const char *const hdrs[] = { "Content-Disposition",
		der ? "attachment; filename=\"gatehouse-ca.der\"" : "attachment; filename=\"gatehouse-ca.crt\"",
		"Cache-Control", "no-store", NULL };
	const void *body;
	size_t n = 0;

	if (ca == NULL)
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "TLS inspection has no CA (forward.inspect is not configured)");
	body = der ? (const void *)fwd_ca_der(ca, &n) : (const void *)fwd_ca_pem(ca, &n);
	if (body == NULL || n == 0)
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the CA certificate cannot be encoded");
	return adm_send_hdrs(c, MHD_HTTP_OK, der ? "application/pkix-cert" : "application/x-pem-file",
	    body, n, 0, hdrs);
}

static json_t *policy_json(const struct conf *cf, const struct fwd_policy *p, const void *side)
{
	json_t *a = json_array();
	const struct conf_forward *fw = &cf->forward;
	size_t nr = p != NULL ? fwd_policy_nrules(p) : 0;

	for (size_t i = 0; i < nr; i++) {
		json_t *r = json_pack("{s:I,s:s,s:s,s:I}", "index", (json_int_t)i, "name", fwd_policy_rule_name(p, i),
		    "action", fwd_action_name(fwd_policy_rule_action(p, i)),
		    "hits", (json_int_t)fwd_rule_hits(side, i));
		if (fw->policy_present && i < fw->npolicy) {
			const struct conf_fwd_rule *cr = &fw->policy[i];
			json_t *m = json_object();
#define STRS(k) if (cr->k.n) json_object_set_new(m, #k, strs_json(&cr->k))
			if (cr->clients.n)
				json_object_set_new(m, "clients", cidrs_json(&cr->clients));
			STRS(users); STRS(groups); STRS(domains); STRS(lists); STRS(urls); STRS(methods);
			STRS(hours); STRS(schemes);
#undef STRS
			if (cr->nports)
				json_object_set_new(m, "ports", ports_json(cr->ports, cr->nports));
			json_object_set_new(r, "match", m);
			json_object_set_new(r, "source", src_json(&cr->src));
		} else {
			json_object_set_new(r, "match", json_object());
		}
		json_array_append_new(a, r);
	}
	return a;
}

/* forward.icap: each service as configured, with its health, last ISTag
 * and verdict counts. */
static json_t *icap_json(const struct conf_forward *fw, const struct fwd_icap *ic)
{
	json_t *a = json_array();

	for (size_t i = 0; i < fw->nicap && ic != NULL && i < fwd_icap_count(ic); i++) {
		const struct conf_fwd_icap *c = &fw->icap[i];
		json_t *ctr = json_object();
		char istag[80];
		int h = fwd_icap_health(ic, i, istag, sizeof istag);

		for (int k = 0; k < FWD_ICAP_C_COUNT; k++)
			json_object_set_new(ctr, fwd_icap_counter_name((enum fwd_icap_counter)k),
			    json_integer((json_int_t)fwd_icap_counter(ic, i, (enum fwd_icap_counter)k)));
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:b,s:I,s:s,s:s,s:s,s:o}", "name", c->name,
		    "uri", c->uri, "method", c->reqmod ? "reqmod" : "respmod", "bypass_on_error",
		    c->bypass_on_error, "max_body_bytes", (json_int_t)c->max_body_bytes,
		    "on_oversize", c->oversize_block ? "block" : "pass",
		    "health", h < 0 ? "unknown" : h ? "up" : "failing", "istag", istag, "counters", ctr));
	}
	return a;
}

static json_t *forward_json(const struct conf *cf, const struct fwd_policy *p, const void *side)
{
	const struct conf_forward *fw = &cf->forward;
	json_t *lists = json_array(), *pats = json_array(), *o;

	for (size_t i = 0; i < fw->nlists; i++) {
		/* entries as compiled (distinct), and the lines skipped as invalid */
		const struct fwd_domainset *ds = p != NULL ? fwd_policy_list(p, fw->lists[i].name) : NULL;
		size_t first_bad = 0, bad = fwd_domainset_invalid(ds, &first_bad);
		json_array_append_new(lists, json_pack("{s:s,s:s,s:o,s:I,s:I}", "name", fw->lists[i].name,
		    "file", fw->lists[i].file, "source", src_json(&fw->lists[i].src),
		    "entries", (json_int_t)fwd_domainset_count(ds), "invalid_lines", (json_int_t)bad));
	}
	for (size_t i = 0; i < fw->dlp.npatterns; i++)   /* the regex may name what it protects */
		json_array_append_new(pats, json_pack("{s:s,s:s}", "name", fw->dlp.patterns[i].name,
		    "regex", "(redacted)"));
	o = json_pack("{s:b,s:o,s:o,s:o,s:o,s:b,s:o,s:o}",
	    "present", fw->present,
	    "listeners", listeners_json(fw->listeners, fw->nlisteners),
	    "allow_clients", cidrs_json(&fw->allow_clients),
	    "deny_destinations", cidrs_json(&fw->deny_destinations),
	    "connect_ports", ports_json(fw->connect_ports, fw->nconnect_ports),
	    "anonymize", fw->anonymize,
	    "lists", lists,
	    "policy", policy_json(cf, p, side));
	{
		json_t *ctr = json_object();
		for (int k = 0; k < FWD_C_COUNT; k++)
			json_object_set_new(ctr, fwd_counter_name((enum fwd_counter)k),
			    json_integer((json_int_t)fwd_side_counter(side, (enum fwd_counter)k)));
		json_object_set_new(o, "counters", ctr);
		json_object_set_new(o, "inspect", inspect_json(cf, side));
		json_object_set_new(o, "no_match_hits", json_integer((json_int_t)fwd_rule_hits(side,
		    p != NULL ? fwd_policy_nrules(p) : 0)));
	}
	json_object_set_new(o, "auth", fw->auth.present ? json_pack("{s:s,s:s,s:s}",
	    "realm", adm_s_or(fw->auth.realm, ""), "users_file", adm_s_or(fw->auth.users_file, ""),
	    "groups_file", adm_s_or(fw->auth.groups_file, "")) : json_null());
	json_object_set_new(o, "dlp", fw->dlp.present ? json_pack("{s:b,s:s,s:I,s:o,s:o}",
	    "enabled", fw->dlp.enabled, "action", fw->dlp.action_deny ? "deny" : "log",
	    "max_scan_bytes", (json_int_t)fw->dlp.max_scan_bytes, "detectors", strs_json(&fw->dlp.detectors),
	    "patterns", pats) : (json_decref(pats), json_null()));
	json_object_set_new(o, "icap", icap_json(fw, fwd_side_icap(side)));
	json_object_set_new(o, "pac", fw->pac.present ? json_pack("{s:s,s:o}", "proxy", adm_s_or(fw->pac.proxy, ""),
	    "direct", strs_json(&fw->pac.direct)) : json_null());
	return o;
}

static const char *const balance_names[] = { "round_robin", "least_conn", "ip_hash", "random_two" };

static json_t *reverse_json(const struct conf *cf)
{
	const struct conf_reverse *rv = &cf->reverse;
	json_t *certs = json_array(), *ups = json_array(), *sites = json_array();

	for (size_t i = 0; i < rv->ncertificates; i++)
		json_array_append_new(certs, json_pack("{s:s?,s:s?,s:b,s:o}", "cert", rv->certificates[i].cert,
		    "key", rv->certificates[i].key, "default", rv->certificates[i].is_default,
		    "acme", strs_json(&rv->certificates[i].acme)));
	for (size_t i = 0; i < rv->nupstreams; i++) {
		const struct conf_rev_upstream *u = &rv->upstreams[i];
		json_t *servers = json_array();
		for (size_t k = 0; k < u->nservers; k++)
			json_array_append_new(servers, json_pack("{s:s,s:I,s:b,s:I}", "address", u->servers[k].addr.text,
			    "weight", (json_int_t)u->servers[k].weight, "backup", u->servers[k].backup,
			    "max_conns", (json_int_t)u->servers[k].max_conns));
		json_array_append_new(ups, json_pack("{s:s,s:s,s:o,s:I,s:b,s:o,s:o}", "name", u->name,
		    "balance", balance_names[u->balance < 4 ? u->balance : 0], "servers", servers,
		    "keepalive", (json_int_t)u->keepalive, "tls", u->tls,
		    "health", u->health.present ? json_pack("{s:s,s:f,s:f,s:I,s:I}", "path", adm_s_or(u->health.path, ""),
		    "interval", u->health.interval, "timeout", u->health.timeout, "rise", (json_int_t)u->health.rise,
		    "fall", (json_int_t)u->health.fall) : json_null(),
		    "source", src_json(&u->src)));
	}
	for (size_t i = 0; i < rv->nsites; i++) {
		const struct conf_rev_site *st = &rv->sites[i];
		json_t *routes = json_array();
		for (size_t k = 0; k < st->nroutes; k++) {
			const struct conf_rev_route *r = &st->routes[k];
			json_t *hs = json_array();
			const char *kind = r->kind == CONF_ROUTE_UPSTREAM ? "upstream" :
			    r->kind == CONF_ROUTE_STATIC ? "static" : "redirect";
			const char *target = r->kind == CONF_ROUTE_UPSTREAM ? r->upstream :
			    r->kind == CONF_ROUTE_STATIC ? r->static_dir : r->redirect;
			for (size_t h = 0; h < r->nset_headers; h++)   /* values may carry credentials */
				json_array_append_new(hs, json_pack("{s:s,s:s}", "name", r->set_headers[h].name,
				    "value", "(redacted)"));
			json_array_append_new(routes, json_pack("{s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:I}", "path", r->path,
			    "kind", kind, "target", adm_s_or(target, ""), "strip_prefix", r->strip_prefix,
			    "set_headers", hs, "source", src_json(&r->src),
			    /* route.cache; null when the route is not cached */
			    "cache", r->cache ? json_pack("{s:f,s:f,s:b,s:b}", "ttl", r->cache_ttl,
			    "stale_if_error", r->cache_stale_if_error, "ignore_set_cookie", r->cache_ignore_set_cookie,
			    "ignore_cookie", r->cache_ignore_cookie) : json_null(),
			    "max_body_bytes", (json_int_t)r->max_body_bytes));
		}
		json_array_append_new(sites, json_pack("{s:o,s:b,s:b,s:o,s:o,s:f,s:o,s:o}", "hosts", strs_json(&st->hosts),
		    "default", st->is_default, "force_https", st->force_https,
		    "allow_clients", cidrs_json(&st->allow_clients), "deny_clients", cidrs_json(&st->deny_clients),
		    "rate_rps", st->rate_rps, "routes", routes, "source", src_json(&st->src)));
		/* the site's rate limit applies to each of its routes */
		json_object_set_new(json_array_get(sites, json_array_size(sites) - 1), "rate_limit",
		    st->rate_rps > 0 ? json_pack("{s:f,s:f}", "requests_per_second", st->rate_rps,
		    "burst", st->rate_burst) : json_null());
	}
	return json_pack("{s:b,s:o,s:o,s:o,s:o,s:o}", "present", rv->present,
	    "listeners", listeners_json(rv->listeners, rv->nlisteners), "certificates", certs,
	    "trusted_proxies", cidrs_json(&rv->trusted_proxies), "upstreams", ups, "sites", sites);
}

json_t *adm_api_config(void)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	const struct conf *cf = s->conf;
	const struct conf_global *g = &cf->global;
	static const char *const levels[] = { "debug", "info", "warn", "error" };

	return json_pack("{s:s,s:I,s:f,s:s,s:{s:I,s:I,s:s,s:{s:s,s:s,s:s,s:s},s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f},"
	    "s:{s:I,s:I,s:I,s:I}},s:o,s:o,s:{s:s,s:s,s:s,s:b},s:o}",
	    "path", adm_s_or(cf->path, ""), "generation", (json_int_t)s->generation, "loaded_at", s->loaded_at,
	    "version", GW_VERSION,
	    "global", "workers", (json_int_t)g->workers, "max_connections", (json_int_t)g->max_connections,
	    "state_dir", adm_s_or(g->state_dir, ""),
	    "log", "error", adm_s_or(g->log.error, ""), "level", levels[g->log.level & 3], "access", adm_s_or(g->log.access, ""),
	    "access_format", g->log.access_json ? "json" : "combined",
	    "timeouts", "client_header", g->timeouts.client_header, "client_body", g->timeouts.client_body,
	    "client_idle", g->timeouts.client_idle, "upstream_connect", g->timeouts.upstream_connect,
	    "upstream_response", g->timeouts.upstream_response, "tunnel_idle", g->timeouts.tunnel_idle,
	    "shutdown_grace", g->timeouts.shutdown_grace,
	    "limits", "max_header_bytes", (json_int_t)g->limits.max_header_bytes,
	    "max_headers", (json_int_t)g->limits.max_headers, "max_uri_bytes", (json_int_t)g->limits.max_uri_bytes,
	    "max_body_bytes", (json_int_t)g->limits.max_body_bytes,
	    "forward", forward_json(cf, current_policy(s), adm_fwd_side(s)),
	    "reverse", reverse_json(cf),
	    "admin", "listen", cf->admin.listen_enabled ? cf->admin.listen.text : "",
	    "metrics_listen", cf->admin.metrics_enabled ? cf->admin.metrics_listen.text : "",
	    "users_file", adm_s_or(cf->admin.users_file, ""), "https", cf->admin.tls_cert != NULL,
	    "last_reload", adm_last_reload_json());
}

/* ---- GET certificates ---- */

static json_t *cert_json(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	json_t *o, *names;
	char cn[256] = "", issuer[256] = "";
	GENERAL_NAMES *gens;
	struct tm tm;
	int days = 0, secs = 0;

	if (f == NULL)
		return json_pack("{s:s,s:s}", "file", path, "error", "cannot open the file");
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		return json_pack("{s:s,s:s}", "file", path, "error", "no PEM certificate in the file");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
	X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, issuer, sizeof issuer);
	names = json_array();
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type == GEN_DNS)
			json_array_append_new(names, json_stringn((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
			    (size_t)ASN1_STRING_length(gn->d.dNSName)));
	}
	GENERAL_NAMES_free(gens);
	o = json_pack("{s:s,s:s,s:s,s:o}", "file", path, "subject_cn", cn, "issuer_cn", issuer, "names", names);
	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1)
		json_object_set_new(o, "not_before", json_real((double)timegm(&tm)));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		json_object_set_new(o, "not_after", json_real((double)timegm(&tm)));
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1)
		json_object_set_new(o, "days_left", json_integer(days));
	X509_free(x);
	return o;
}

json_t *adm_api_certificates(void)
{
	const struct conf_reverse *rv = &gw_control_snapshot()->conf->reverse;
	json_t *a = json_array();

	for (size_t i = 0; i < rv->ncertificates; i++) {
		const struct conf_rev_cert *ce = &rv->certificates[i];
		char path[4200];
		json_t *o;
		if (ce->acme.n > 0)   /* the file the ACME client keeps (may not exist yet) */
			snprintf(path, sizeof path, "%s/acme/%s.crt", gw_control_snapshot()->conf->global.state_dir,
			    ce->acme.v[0]);
		o = cert_json(ce->acme.n > 0 ? path : ce->cert);
		json_object_set_new(o, "key", ce->key != NULL ? json_string(ce->key) : json_null());
		json_object_set_new(o, "default", json_boolean(ce->is_default));
		if (ce->acme.n > 0)
			json_object_set_new(o, "acme", strs_json(&ce->acme));
		json_array_append_new(a, o);
	}
	return json_pack("{s:o,s:o}", "certificates", a, "acme", adm_api_acme_orders());
}
