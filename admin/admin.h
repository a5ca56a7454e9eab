/*
 * admin: the operator's console.  libmicrohttpd daemons (the console on
 * admin.listen, optionally /metrics alone on admin.metrics_listen) run in
 * external-event mode inside the main thread's event loop: their epoll fd
 * is one level-triggered libevent event and MHD_get_timeout() re-arms a
 * timer.  Handlers therefore run on the main thread and only read what the
 * main thread owns (core/control.h, the current snapshot); they never touch
 * a worker's connections.  Password hashing runs on the job pool (core/jobs.h).
 *
 * Main thread only.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

struct event_base;
struct gw_snapshot;

/*
 * Start the console for snapshot s (borrowed; the console re-reads the
 * current one through gw_control_snapshot()), and subscribe to reloads
 * (gw_control_subscribe): each new generation re-reads the users file and
 * restarts the daemons if their addresses or TLS files changed; a reload
 * asked for by SIGHUP is audited like a console reload.  Does nothing else
 * when the config has no admin section.  Returns 0, or -1 after logging
 * why (the gateway should go on without a console).
 */
int adm_start(struct event_base *base, const struct gw_snapshot *s);

/* Stop the daemons, answer the password checks under way, free everything. */
void adm_stop(void);

#endif
