/*
 * reverse: the reverse-proxy family (inbound side).  Plugs into the core as
 * a struct gw_side: compiles reverse.* into the route table and decides
 * each request: which site (Host), which route (longest path prefix), and
 * then an upstream server (balancer, health, retries), a static file or a
 * redirect.
 *
 * The console API below is main-thread only (the console runs in the main
 * event loop).  It works on the current configuration generation; server
 * state (health, admin state, counters) is kept across reloads for every
 * server whose upstream name and address text stay the same.
 */
#ifndef GW_REVERSE_H
#define GW_REVERSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/snapshot.h"

extern const struct gw_side rev_side;

/* Server states (values of rev_server_info.state/admin and of the state
 * argument of rev_server_set_admin_state). */
#define REV_STATE_UP 0          /* admin: enabled */
#define REV_STATE_DOWN 1        /* health checks failing (never an admin state) */
#define REV_STATE_DRAINING 2    /* no new requests; in-flight ones finish */
#define REV_STATE_DISABLED 3    /* no new requests */

struct rev_server_info {
	char upstream[64];
	char address[128];
	int state;                 /* effective: REV_STATE_* */
	int health_up;             /* active checks say up (1 without checks) */
	int admin;                 /* REV_STATE_UP (enabled), _DRAINING or _DISABLED */
	int ejected;               /* passively ejected right now (failures) */
	int weight, backup;
	int64_t max_conns;         /* 0 = unlimited */
	uint32_t in_flight;        /* requests in flight, all workers */
	double weight_factor;      /* slow-start ramp, 0..1 */
	int checked;               /* active health checks run for it */
	int last_status;           /* last check: HTTP status; 0 = TCP-only ok; -1 = failed */
	char last_error[64];       /* last check failure ("" when fine) */
	double last_latency_ms;
	double last_check;         /* wall clock, 0 = never */
	double last_change;        /* wall clock of the last state change */
	uint64_t checks_ok, checks_failed;
	uint64_t requests, failures, ejections;
};

/*
 * Copy the state of every server of every upstream of the current generation
 * (upstreams and servers in config order) into out[0..max); returns the
 * total number of servers (call with max = 0 to size the array).  Returns 0
 * when the reverse side is not configured.  Main thread.
 */
size_t rev_servers_info(struct rev_server_info *out, size_t max);

/*
 * Set a server's admin state: REV_STATE_UP (enable), REV_STATE_DRAINING or
 * REV_STATE_DISABLED.  upstream is the upstream name, address the server's
 * address exactly as configured ("10.0.0.10:8080").  Logged and pushed as a
 * "health" event.  Returns 0, -1 for an unknown server, -2 for a bad state.
 * Main thread.
 */
int rev_server_set_admin_state(const char *upstream, const char *address, int state);

/* The current generation's per-client rate-limit table (reverse/ratelimit.h;
 * NULL when no site has rate_limit), for the cluster's sync.  Valid until the
 * next reload.  Main thread. */
struct rev_rl *rev_rate_table(void);

/* Requests the current generation answered for one site and upstream, by
 * status class (1xx..5xx).  site is the site's first host name ("(none)":
 * no site matched); upstream the upstream's name ("(none)": answered
 * without one: static, redirect, error).  Strings borrowed from the current
 * generation (valid until the next reload). */
struct rev_site_requests {
	const char *site;
	const char *upstream;
	uint64_t classes[5];
};

/*
 * Fill out[0..max) with one entry per site and each upstream its routes
 * use, plus one per site for local answers, in config order; returns the
 * total number of entries (max = 0 sizes the array).  Counters restart at
 * each configuration generation; bounded by the configuration, never by
 * traffic.  Main thread.
 */
size_t rev_site_requests(struct rev_site_requests *out, size_t max);

/* "up", "down", "draining", "disabled"; parse also accepts "enabled". */
const char *rev_state_name(int state);
int rev_state_parse(const char *name);

#endif
