/*
 * core/control: the control plane of the main thread.  It loads, validates
 * and compiles configuration generations (struct gw_snapshot) from the
 * registered sides, publishes them to the workers (reload), stops the
 * workers, and answers what the console reads (summed stats, the current
 * generation, the last reload).  core/main.c wires and boots it.
 *
 * Main thread only.  (The event and tail rings the console also reads are
 * core/events.h.)
 */
#ifndef GW_CONTROL_H
#define GW_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "core/stats.h"

struct gw_snapshot;
struct gw_side;
struct event_base;
struct conf_errors;

/* ---- wiring and life cycle (core/main.c) ---- */

/* Remember the configuration file that reloads read; the start time. */
void gw_control_init(const char *conf_path);
/*
 * Register a side (a family and its part of each snapshot), before the
 * first gw_control_load().  Its protocol becomes a stats family: the next
 * index, stored in side->proto->family, named side->proto->name.  Sides
 * compile, listen and appear in stats in the order they were added.
 * Returns 0, or -1 when GW_MAX_SIDES are in.
 */
int gw_control_add_side(const struct gw_side *side);

#define GW_CONTROL_MAX_SUBS 8
/*
 * Reload subscribers (the console): fn(rc, s, arg) runs on the main thread
 * after every reload attempt, SIGHUP's or gw_control_reload()'s, once it
 * is over: rc 0 and s the new generation, now serving and announced; or
 * rc -1 and s the generation that goes on serving (the attempt was
 * refused).  A reload refused because a stop has begun is not told.
 * Returns 0, or -1 when GW_CONTROL_MAX_SUBS are in.
 */
int gw_control_subscribe(void (*fn)(int rc, const struct gw_snapshot *s, void *arg), void *arg);
/* Load, validate and compile a snapshot from path (no sockets).  NULL on
 * error (errors appended to errs).  The caller owns the reference. */
struct gw_snapshot *gw_control_load(const char *path, struct conf_errors *errs);
/*
 * Make s (its reference is taken over) the first generation: open its
 * listeners, one socket per worker.  base is the main loop (sides' timers,
 * the stop watch).  Returns 0, or -1 with errs (s is then released).
 */
int gw_control_begin(struct gw_snapshot *s, struct event_base *base, int nworkers,
    struct conf_errors *errs);
/* Start the workers on the first generation and activate the sides.
 * Returns 0, or -1 after logging which worker did not start. */
int gw_control_start_workers(void);
/*
 * Stop gracefully (why: "SIGTERM"): no more accepting, in-flight requests
 * get global.timeouts.shutdown_grace, then the rest is closed; the main
 * loop breaks once every worker has exited.  While already stopping, hurry
 * ends the grace period now.
 */
void gw_control_stop(const char *why, int hurry);
/* After the main loop: deactivate the sides, join and free the workers,
 * log the totals, release the generation. */
void gw_control_shutdown(void);

/* ---- what the console reads ---- */

/* The current configuration generation (valid until the next reload). */
const struct gw_snapshot *gw_control_snapshot(void);
/* Sum every worker's counters. */
void gw_control_stats(struct gw_stats_snapshot *out);
int gw_control_nworkers(void);
double gw_control_started_at(void);          /* wall clock */
const char *gw_control_config_path(void);

/* Reload now, as SIGHUP does.  Returns 0 on success, -1 if the new config
 * was refused (the old one keeps serving) or a stop has begun; details via
 * gw_control_last_reload. */
int gw_control_reload(void);
/* The last reload attempt: ok (1/0), when (wall clock, 0 = never),
 * generation now serving, and the error lines of a failed attempt. */
void gw_control_last_reload(int *ok, double *when, uint64_t *generation,
    const char *const **errors, size_t *nerrors);
/* Reloads since start (SIGHUP or console) that succeeded and that failed. */
void gw_control_reload_counts(uint64_t *ok, uint64_t *failed);
/* 1 once a stop has begun (SIGTERM/SIGINT: the grace period, then closing), else 0. */
int gw_control_stopping(void);

#endif
