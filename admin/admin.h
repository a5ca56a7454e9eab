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
 * current one through gw_control_snapshot()).  Does nothing but remember
 * base when the config has no admin section.  Returns 0, or -1 after
 * logging why (the gateway should go on without a console).
 */
int adm_start(struct event_base *base, const struct gw_snapshot *s);

/* s became the current generation: re-read the users file, and restart the
 * daemons (deferred to the next loop turn) if their addresses or TLS files
 * changed.  Safe to call from inside a console request (POST reload). */
void adm_reconfigure(const struct gw_snapshot *s);

/* A reload asked for by SIGHUP ended with rc (0, or -1 if refused): audit
 * it like a console reload. */
void adm_signal_reload(int rc);

/* Stop the daemons, answer the password checks under way, free everything. */
void adm_stop(void);

#endif
