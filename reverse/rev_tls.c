/*
 * reverse/rev_tls: compile reverse.certificates, the TLS settings of
 * reverse.upstreams and reverse's TLS listeners into core/tls specs (see
 * rev_tls.h).  The key names here are the ones the errors have always shown.
 */
#include "reverse/rev_tls.h"

#include "conf/conf.h"
#include "core/tls.h"

int rev_tls_specs(const struct conf *cf, struct gw_tls_specs *sp)
{
	const struct conf_reverse *r = &cf->reverse;

	if (!r->present)
		return 0;
	for (size_t i = 0; i < r->ncertificates; i++) {
		const struct conf_rev_cert *c = &r->certificates[i];
		struct gw_tls_server_spec s = {
			.cert = c->cert, .key = c->key, .ocsp = c->ocsp, .is_default = c->is_default,
			.file = c->src.file, .line = c->src.line, .key_name = "reverse.certificates",
		};
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
	for (size_t i = 0; i < r->nlisteners; i++) {
		const struct conf_listener *l = &r->listeners[i];
		struct gw_tls_listener_spec ls = {
			.file = l->src.file, .line = l->src.line, .key_name = "reverse.listeners",
			.needs = "reverse.certificates",
		};
		if (l->tls && gw_tls_specs_add_listener(sp, &ls) < 0)
			return -1;
	}
	return 0;
}
