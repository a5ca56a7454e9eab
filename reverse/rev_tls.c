/*
 * reverse/rev_tls: compile reverse.certificates, the TLS settings of
 * reverse.upstreams and reverse's TLS listeners into core/tls specs (see
 * rev_tls.h).  The key names here are the ones the errors have always shown.
 */
#include "reverse/rev_tls.h"

#include <string.h>

#include "conf/conf.h"
#include "core/proto.h"
#include "core/strlit.h"
#include "core/tls.h"
#include "reverse/acme.h"

int rev_tls_specs(const struct conf *cf, struct gw_tls_specs *sp)
{
	const struct conf_reverse *r = &cf->reverse;

	struct gw_tls_policy pol = {
		.min_version = r->tls.min_version, .ciphers = r->tls.ciphers,
		.ciphersuites = r->tls.ciphersuites, .groups = r->tls.groups,
	};

	if (!r->present)
		return 0;
	for (size_t i = 0; i < r->ncertificates; i++) {
		const struct conf_rev_cert *c = &r->certificates[i];
		struct gw_tls_server_spec s = {
			.cert = c->cert, .key = c->key, .ocsp = c->ocsp, .is_default = c->is_default,
			.policy = pol, .file = c->src.file, .line = c->src.line,
			.key_name = "reverse.certificates",
		};
		if (c->acme.n > 0 && acme_server_spec(cf, c, &s) < 0)
			return -1;
		if (gw_tls_specs_add_server(sp, &s) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->nupstreams; i++) {
		const struct conf_rev_upstream *u = &r->upstreams[i];
		struct gw_tls_client_spec c = {
			.name = u->name, .index = (int)i, .verify = u->tls_verify, .ca_file = u->ca_file,
			.sni = u->sni, .file = u->src.file, .line = u->src.line,
			.key_name = "reverse.upstreams.ca_file",
		};
		if (u->tls && gw_tls_specs_add_client(sp, &c) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->nsites; i++) {
		const struct conf_rev_site *si = &r->sites[i];
		struct gw_tls_verify_spec v = {
			.id = (int)i, .hosts = si->hosts.v, .nhosts = si->hosts.n, .ca_file = si->client_ca,
			.required = si->client_verify == CONF_CLIENT_VERIFY_REQUIRED,
			.file = si->src.file, .line = si->src.line, .key_name = "reverse.sites.client_ca",
		};
		if (si->client_ca != NULL && gw_tls_specs_add_verify(sp, &v) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->nlisteners; i++) {
		const struct conf_listener *l = &r->listeners[i];
		const struct conf_rev_tls *lp = r->listener_tls != NULL ? r->listener_tls[i] : NULL;
		struct gw_tls_listener_spec ls = {
			.file = l->src.file, .line = l->src.line, .key_name = "reverse.listeners",
			.needs = "reverse.certificates", .listener = l, .has_policy = lp != NULL,
		};
		if (lp != NULL) {
			/* the listener's keys over reverse.tls's */
			ls.policy.min_version = lp->min_version ? lp->min_version : r->tls.min_version;
			ls.policy.ciphers = lp->ciphers ? lp->ciphers : r->tls.ciphers;
			ls.policy.ciphersuites = lp->ciphersuites ? lp->ciphersuites : r->tls.ciphersuites;
			ls.policy.groups = lp->groups ? lp->groups : r->tls.groups;
		}
		if (l->tls && gw_tls_specs_add_listener(sp, &ls) < 0)
			return -1;
	}
	return 0;
}

int rev_tls_site_gate(struct gw_req *rq, const struct conf_rev_site *cs, size_t index)
{
	char subject[1024], fp[65];

	if (cs->hsts != NULL && gw_req_is_tls(rq)) {
		/* ours replaces the application's: one policy per site */
		gw_req_resp_hdr_del(rq, "strict-transport-security");
		gw_req_resp_hdr_add(rq, "Strict-Transport-Security", cs->hsts, strlen(cs->hsts));
	}
	if (cs->client_ca == NULL || gw_req_is_background(rq))
		return 0;
	/* checked per request, not only in the handshake: the Host header may
	 * name this site on a connection whose SNI chose another (or none) */
	if (gw_tls_client_cert(gw_req_client_ssl(rq), (int)index, subject, sizeof subject, fp))
		return 0;
	gw_req_set_verdict(rq, "client_cert", cs->hosts.n > 0 ? cs->hosts.v[0] : NULL);
	gw_req_respond(rq, 403, NULL, NULL, 0,
	    "This site needs a valid client certificate, sent when connecting to its name.");
	return 1;
}

void rev_tls_client_headers(struct gw_req *rq, const struct conf_rev_site *cs, size_t index)
{
	char subject[1024], fp[65];

	/* never the client's own: only what the handshake verified */
	gw_req_hdr_del(rq, "x-client-cert-subject");
	gw_req_hdr_del(rq, "x-client-cert-fingerprint");
	if (cs->client_ca == NULL ||
	    !gw_tls_client_cert(gw_req_client_ssl(rq), (int)index, subject, sizeof subject, fp))
		return;
	gw_req_hdr_add(rq, "X-Client-Cert-Subject", subject, strlen(subject));
	gw_req_hdr_add(rq, "X-Client-Cert-Fingerprint", fp, strlen(fp));
}

int rev_tls_acme_challenge(struct gw_req *rq, const char *path, size_t len)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	char ka[512];
	long n;

	if (len <= sizeof prefix - 1 || memcmp(path, prefix, sizeof prefix - 1) != 0)
		return 0;
	n = acme_http01(path + sizeof prefix - 1, len - (sizeof prefix - 1), ka, sizeof ka);
	if (n < 0)
		return 0;              /* not ours: the site may serve its own */
	gw_req_set_verdict(rq, "acme_challenge", NULL);
	gw_req_respond(rq, 200, "application/octet-stream", ka, (size_t)n, NULL);
	return 1;
}
