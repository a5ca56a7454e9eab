/*
 * reverse/hcheck: active health checks of upstream servers, run on the main
 * thread's event base (started by the reverse side's activate hook, stopped
 * by deactivate).  Each checked server gets one struct rev_hcheck: every
 * health.interval seconds "GET health.path HTTP/1.1" sent as an exchange
 * of the core's upstream engine (TLS upstreams over TLS, with the
 * upstream's verification and SNI, as proxied requests) and its response
 * head read within health.timeout; the status must be in health's expected
 * range.
 * Results feed rev_srv_check_result() (rise/fall, logging, events).
 * Servers configured by DNS name are resolved before each check with a
 * core/dns resolver on the main loop (global.dns settings, hosts file
 * included); a resolution failure is a failed check.
 */
#ifndef GW_REV_HCHECK_H
#define GW_REV_HCHECK_H

#include "conf/conf.h"
#include "reverse/servers.h"

struct event_base;
struct gw_dns;
struct rev_hcheck;

/* Start checking srv (server sv of upstream up) on base; the first check
 * runs after first_delay seconds.  dns resolves named servers (NULL: they
 * are not checked).  up, sv and dns must outlive the checker.  NULL on
 * failure (logged). */
struct rev_hcheck *rev_hcheck_start(struct event_base *base, struct gw_dns *dns,
    struct rev_srv *srv, const struct conf_rev_upstream *up, const struct conf_rev_server *sv,
    double first_delay);
/* Stop and free (NULL is fine).  Main thread. */
void rev_hcheck_stop(struct rev_hcheck *hc);

#endif
