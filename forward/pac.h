/*
 * forward/pac: the proxy auto-configuration file served at /proxy.pac and
 * /wpad.dat on the forward listeners, generated once per config snapshot
 * from forward.pac.  Pure: text in, text out.
 *
 * The generated FindProxyForURL(url, host):
 *   - plain host names (no dot) go DIRECT, as do "localhost", 127.0.0.0/8
 *     and ::1 (a proxy never helps with those and our deny_destinations
 *     refuses loopback anyway);
 *   - forward.pac.direct patterns go DIRECT: "example.com" exactly,
 *     "*.example.com" subdomains only (shExpMatch), ".example.com" the domain
 *     and its subdomains (dnsDomainIs), IP literals exactly; host names are
 *     compared lower-cased;
 *   - with forward.pac.direct_private, private address literals go DIRECT:
 *     IPv4 10/8, 172.16/12, 192.168/16, 127/8 (isInNet, only on literals so
 *     the browser never resolves a name just to choose) and IPv6 fc00::/7;
 *   - everything else: "PROXY <forward.pac.proxy>; DIRECT" (fallback =
 *     "direct", the default) or "PROXY <forward.pac.proxy>" (fallback =
 *     "none").
 * Fallback choice: browsers try the entries in order, so DIRECT is only
 * used when the proxy cannot be reached at all.  "direct" keeps people
 * working when Gatehouse is down, at the price of unfiltered access during
 * the outage; it stays the default because every PAC file served before the
 * key existed said so, and silently failing closed on upgrade would take a
 * company offline.  "none" fails closed (what compliance usually wants);
 * clients can still ignore the PAC file, so also block outbound 80/443 at
 * the firewall.
 */
#ifndef GW_FORWARD_PAC_H
#define GW_FORWARD_PAC_H

#include <stddef.h>

#include "conf/conf.h"

/*
 * Build the PAC text for pc (pc->proxy is "host:port").  Returns a malloc'd
 * NUL-terminated string (length in *len), or NULL on out of memory or when
 * a pattern or the proxy contains a character that is not allowed in a
 * host name (conf/ already refuses those).
 */
char *fwd_pac_build(const struct conf_fwd_pac *pc, size_t *len);

#endif
