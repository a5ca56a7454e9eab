/*
 * reverse/servers: the live state of every upstream server, shared by the
 * main thread (active health checks, the console) and the workers (balancing,
 * passive failure counting, in-flight counts).
 *
 * One struct rev_srv exists per (upstream name, server address text).  It is
 * reference-counted by the compiled snapshots that use it, so a reload that
 * keeps a server keeps its health, admin state, counters and in-flight count;
 * a server that disappears from the config is freed with the last snapshot
 * using it.  The registry is protected by a mutex (lookup at compile time on
 * the main thread, release from whichever thread frees a snapshot); the hot
 * fields are atomics, read by workers without locking.
 *
 * State model:
 *   health  up/down, written by the main thread from active checks (rise/fall)
 *   admin   enabled/draining/disabled, written by the console (main thread)
 *   state   the published effective state: admin if not enabled, else health
 *   ejected_until  passive ejection: a worker that saw max_fails failures
 *           (connect error, reset, timeout) within fail_timeout seconds, with
 *           no success in between, sets it to now + fail_timeout; the server
 *           is unusable until then (nginx's max_fails / fail_timeout).
 * A usable server (state up, not ejected) that recently became usable again
 * has its weight ramped over slow_start seconds (rev_srv_weight_factor).
 *
 * The pure helpers (rev_hcount_step, rev_slow_start_factor, rev_passive_*)
 * take everything as arguments and are unit-tested in tests/unit/reverse.
 */
#ifndef GW_REV_SERVERS_H
#define GW_REV_SERVERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Effective states, as published (also REV_ADMIN_* values for admin). */
enum rev_srv_state {
	REV_SRV_UP = 0,
	REV_SRV_DOWN = 1,
	REV_SRV_DRAINING = 2,
	REV_SRV_DISABLED = 3
};

/* Passive ejection defaults (upstream keys max_fails / fail_timeout). */
#define REV_PASSIVE_FAILS 3        /* used when max_fails is unset and there is no health group; else health.fall */
#define REV_PASSIVE_COOLDOWN 10.0  /* seconds (fail_timeout default) */

#define REV_SRV_MAGIC 0x53525652u  /* "RVRS" */

struct rev_srv {
	uint32_t magic;
	/* ---- identity (immutable) ---- */
	char *upstream;            /* upstream name */
	char *address;             /* address text as configured */
	/* ---- published to workers ---- */
	_Atomic int state;         /* enum rev_srv_state */
	_Atomic int admin;         /* REV_SRV_UP (= enabled), REV_SRV_DRAINING, REV_SRV_DISABLED */
	_Atomic int health_up;     /* 1 up, 0 down (1 when no active checks) */
	_Atomic int64_t usable_since_ms;   /* monotonic ms when it last became usable (0 = start) */
	_Atomic int64_t ejected_until_ms;  /* passive ejection end (monotonic ms; 0 = none) */
	_Atomic int fails;         /* passive failures in the current window */
	_Atomic int64_t fail_since_ms;     /* that window's first failure (monotonic ms) */
	_Atomic int ejected;       /* 1 from an ejection until rev_srv_back() reports its end */
	_Atomic uint32_t in_flight;        /* requests in flight, all workers */
	_Atomic uint64_t requests, failures, ejections;
	/* ---- main thread only (health checker, console) ---- */
	int ok_run, fail_run;      /* consecutive check results */
	int last_status;           /* last check: HTTP status, 0 = connect/TCP-only ok, -1 = failed */
	char last_error[64];       /* last check failure reason ("" when fine) */
	double last_latency_ms;
	double last_check;         /* wall clock; 0 = never */
	double last_change;        /* wall clock of the last state change */
	uint64_t checks_ok, checks_failed;
	/* ---- registry ---- */
	int refs;                  /* under the registry mutex */
	struct rev_srv *next;
};

/* Monotonic milliseconds (CLOCK_MONOTONIC) and wall-clock seconds. */
int64_t rev_now_ms(void);
double rev_wall(void);

/*
 * The shared state for (upstream, address), created (up, enabled) if new;
 * adds a reference.  NULL on allocation failure.  Any thread.
 */
struct rev_srv *rev_srv_get(const char *upstream, const char *address);
/* Drop a reference (NULL is fine).  Any thread. */
void rev_srv_put(struct rev_srv *s);

/* Worker side: may a new request go to s right now (state up and not ejected)? */
int rev_srv_usable(const struct rev_srv *s, int64_t now_ms);
/* Slow-start weight factor 0..1 for s at now (1 when slow_start <= 0). */
double rev_srv_weight_factor(const struct rev_srv *s, double slow_start, int64_t now_ms);
/*
 * A request to s failed (connect/reset/timeout) or succeeded.  On failure,
 * when max_fails failures fell within fail_timeout seconds (a success resets
 * the count), s is ejected for fail_timeout seconds; returns 1 exactly once
 * per ejection (the caller logs it).  max_fails <= 0: never ejects.
 */
int rev_srv_failed(struct rev_srv *s, int max_fails, double fail_timeout, int64_t now_ms);
/* Returns 1 exactly once after an ejection has ended (the caller logs "back"). */
int rev_srv_back(struct rev_srv *s, int64_t now_ms);
void rev_srv_succeeded(struct rev_srv *s);

/*
 * Main thread: record an active check result (ok, status or -1, latency,
 * error text or NULL) with rise/fall; publishes and logs a change.  Returns
 * 1 when the health state changed.
 */
int rev_srv_check_result(struct rev_srv *s, int ok, int status, double latency_ms,
    const char *error, int rise, int fall);
/* Main thread: the upstream has no active checks (any more): health up. */
void rev_srv_health_reset(struct rev_srv *s);
/* Main thread: set the admin state (REV_SRV_UP = enable, DRAINING, DISABLED);
 * publishes and logs a change.  Returns 0, or -1 for a bad state. */
int rev_srv_set_admin(struct rev_srv *s, int admin);

/* ---- pure parts (unit-tested) ---- */

/* Rise/fall counting.  *up is the current health (1/0); ok_run/fail_run the
 * consecutive counts.  Returns 1 when *up changed. */
int rev_hcount_step(int *up, int *ok_run, int *fail_run, int ok, int rise, int fall);
/* Effective state from health and admin. */
int rev_state_effective(int health_up, int admin);
/* Slow start: factor for a server usable since `since` (ms; 0 = since
 * start-up: no ramp), at now, over slow_start seconds. */
double rev_slow_start_factor(int64_t since_ms, int64_t now_ms, double slow_start);
/* Name of a state ("up", "down", "draining", "disabled"); "?" otherwise. */
const char *rev_state_name(int state);
/* Parse a state name; -1 if unknown. */
int rev_state_parse(const char *name);

#endif
