/*
 * forward/icap_conf: reads forward.icap (the ICAP services) and
 * forward.icap_default, and checks the service lists that policy rules
 * name (icap = [ ... ]); part of the forward section's reader
 * (forward/fwd_conf.c).
 */
#ifndef GW_ICAP_CONF_H
#define GW_ICAP_CONF_H

#include <libconfig.h>

#include "conf/types.h"

struct conf_ctx;

/* Read forward.icap and forward.icap_default of group f (before the
 * policy, whose rules name the services). */
void fwd_icap_conf_read(struct conf_ctx *x, config_setting_t *f);
/* Respmod services one list may chain, at most. */
#define FWD_ICAP_CHAIN_MAX 8
/* Check a list of service names (setting s at key path p): each defined
 * in forward.icap and named once, at most FWD_ICAP_CHAIN_MAX respmod
 * services (run in order, a chain) and one reqmod service.  1 fine, 0
 * reported. */
int fwd_icap_names_ok(struct conf_ctx *x, const config_setting_t *s, const char *p,
    const struct conf_strs *names);

#endif
