/*
 * core/control: what the main thread offers the admin console.  All of it
 * is main-thread only (the console runs in the main event loop), except
 * the event ring, which any thread may push to.
 */
#ifndef GW_CONTROL_H
#define GW_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "core/stats.h"

struct gw_snapshot;
struct event_base;

/* The current configuration generation (valid until the next reload). */
const struct gw_snapshot *gw_control_snapshot(void);
/* Sum every worker's counters. */
void gw_control_stats(struct gw_stats_snapshot *out);
int gw_control_nworkers(void);
double gw_control_started_at(void);          /* wall clock */
const char *gw_control_config_path(void);

/* Reload now, as SIGHUP does.  Returns 0 on success, -1 if the new config
 * was refused (the old one keeps serving); details via gw_control_last_reload. */
int gw_control_reload(void);
/* The last reload attempt: ok (1/0), when (wall clock, 0 = never),
 * generation now serving, and the error lines of a failed attempt. */
void gw_control_last_reload(int *ok, double *when, uint64_t *generation,
    const char *const **errors, size_t *nerrors);
/* Reloads since start (SIGHUP or console) that succeeded and that failed. */
void gw_control_reload_counts(uint64_t *ok, uint64_t *failed);

/* ---- recent events (block pages, DLP hits, health changes, ...) ---- */

#define GW_EVENT_TEXT 240

struct gw_event {
	double time;
	char kind[16];             /* "block", "dlp", "auth", "health", "admin", ... */
	char text[GW_EVENT_TEXT];  /* one line, already redacted */
};

/* Any thread.  text is cut at GW_EVENT_TEXT - 1 bytes. */
void gw_event_push(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copy up to max most recent events, newest first, with seq > after (0 =
 * all); returns how many; *last_seq gets the newest sequence number. */
size_t gw_event_recent(struct gw_event *out, size_t max, uint64_t after, uint64_t *last_seq);

/* ---- recent access-log lines (the console's live tail) ---- */

#define GW_TAIL_LINE 512
/* Whether the console reads the tail (lines are not even formatted when
 * neither the tail nor an access-log file wants them). */
void gw_tail_enable(int on);
int gw_tail_enabled(void);
/* Any thread: remember one formatted access-log line (without newline). */
void gw_tail_push(const char *line, size_t len);
/* Copy up to max lines with seq > after, oldest first; returns count. */
size_t gw_tail_recent(char (*out)[GW_TAIL_LINE], size_t max, uint64_t after, uint64_t *last_seq);

#endif
