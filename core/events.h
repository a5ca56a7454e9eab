/*
 * core/events: two small rings the console reads: notable events (block
 * pages, DLP hits, health changes, admin actions) and the most recent
 * access-log lines (the live tail).  Any thread may push; the console reads
 * on the main thread.
 */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include <stddef.h>
#include <stdint.h>

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
