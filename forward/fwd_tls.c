/*
 * forward/fwd_tls: compile the forward side's TLS settings into core/tls
 * specs (see fwd_tls.h).  A forward TLS listener's certificate is pinned to
 * that listener: it is what the proxy presents there whatever SNI a client
 * sends (clients name the proxy, not a site), and it is never chosen by SNI
 * on a reverse listener.
 */
#include "forward/fwd_tls.h"

#include "conf/conf.h"
#include "core/tls.h"
#include "forward/inspect.h"

int fwd_tls_specs(const struct conf *cf, struct gw_tls_specs *sp)
{
	const struct conf_forward *fw = &cf->forward;

	if (!fw->present)
		return 0;
	for (size_t i = 0; i < fw->nlisteners; i++) {
		const struct conf_listener *l = &fw->listeners[i];
		struct gw_tls_server_spec s = {
			.cert = l->cert, .key = l->key, .listener = l,
			.file = l->src.file, .line = l->src.line, .key_name = "forward.listeners",
		};
		if (l->tls && gw_tls_specs_add_server(sp, &s) < 0)
			return -1;
	}
	return fwd_inspect_tls_specs(cf, sp);
}
