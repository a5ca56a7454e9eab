/*
 * forward/fwd_tls: the forward side's TLS specs for core/tls: the HTTPS
 * proxy listeners' own certificates (forward.listeners[] tls/cert/key) and
 * the inspection's upstream client contexts (forward/inspect.c).
 */
#ifndef FWD_TLS_H
#define FWD_TLS_H

struct conf;
struct gw_tls_specs;

/* The forward side's struct gw_side.tls hook: 0, or -1 when out of memory. */
int fwd_tls_specs(const struct conf *cf, struct gw_tls_specs *sp);

#endif
