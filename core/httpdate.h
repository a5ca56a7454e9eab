/*
 * core/httpdate: HTTP-date (RFC 9110 5.6.7) formatting and parsing, the one
 * implementation for the core's Date header, static files and the cache.
 */
#ifndef GW_HTTPDATE_H
#define GW_HTTPDATE_H

#include <stddef.h>
#include <time.h>

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for t into buf
 * (GW_HTTPDATE_MAX bytes); returns the length (29).  A t gmtime_r cannot
 * take formats as the epoch. */
#define GW_HTTPDATE_MAX 30
size_t gw_httpdate_fmt(time_t t, char *buf);

/* Parse an HTTP-date in any of the three RFC 9110 formats (IMF-fixdate,
 * RFC 850, asctime), ignoring surrounding blanks.  Returns 0 and sets *out,
 * or -1 if s is not a valid date (including impossible days such as
 * 31 Apr or 29 Feb of a common year). */
int gw_httpdate_parse(const char *s, size_t len, time_t *out);

/* The current time as an IMF-fixdate in *out (per-thread, formatted once a
 * second; valid until the thread's next call); returns its length. */
size_t gw_httpdate_now(const char **out);

#endif
