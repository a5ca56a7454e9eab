/*
 * core/log: the error log (levels; stderr, syslog or a file) and the access
 * log (one line per completed request, "combined" or "json").
 *
 * The error log is written with one write(2) per line, so lines from several
 * threads never interleave.  The access log is buffered per worker thread
 * (struct gw_alog_buf, owned by the worker) and flushed when the buffer fills
 * or by the worker's timer; both files are reopened on SIGUSR1.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Configure the error log: target is "stderr", "syslog" or a file path.
 * Returns 0, or -1 with errno set when the file cannot be opened (the
 * previous target stays in use).  Main thread only. */
int gw_log_open(const char *target, int level);
/* Configure the access log: path ("" = off, "stdout", "stderr", or a syslog
 * target "syslog:unix:PATH", "syslog:udp:HOST:PORT", "syslog:tcp:HOST:PORT",
 * see gw_addr_parse_syslog), format. */
int gw_log_access_open(const char *path, int json);
/* Syslog facility (0..23, LOG_LOCAL0 >> 3 = 16) and APP-NAME of the access
 * log's syslog messages.  Main thread, before gw_log_access_open. */
void gw_log_syslog_options(int facility, const char *tag);
/* Lines sent to and dropped on the way to syslog since start; *on: the
 * access log goes to syslog now.  Any thread. */
void gw_log_syslog_counts(uint64_t *sent, uint64_t *dropped, int *on);
/* Reopen both log files (SIGUSR1).  Main thread only. */
void gw_log_reopen(void);
void gw_log_close(void);

void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_logv(int level, const char *fmt, va_list ap);
int gw_log_enabled(int level);

#define gw_debug(...) do { if (gw_log_enabled(GW_LOG_DEBUG)) gw_log(GW_LOG_DEBUG, __VA_ARGS__); } while (0)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

/* One access log record; strings need not be NUL-terminated (ptr + len). */
struct gw_access_rec {
	double start;              /* wall clock, seconds */
	double duration;           /* seconds */
	const char *client;        /* numeric address */
	const char *peer;          /* TCP peer when the client is another (a trusted proxy's); else NULL */
	const char *family;        /* "forward" / "reverse" */
	const char *method; size_t method_len;
	const char *target; size_t target_len;
	int version_minor;
	int http2;                 /* came over HTTP/2: logged as HTTP/2.0 */
	int status;
	uint64_t bytes_in, bytes_out;
	const char *upstream;      /* "" when none */
	int upstream_h2;           /* that upstream exchange was an HTTP/2 stream */
	const char *user;          /* "" or "-" when none */
	const char *verdict;       /* "" when none */
	const char *rule;          /* "" when none */
	const char *reason;        /* close/error reason, "" when none */
	const char *request_id;
	const char *host; size_t host_len;
	const char *ua; size_t ua_len;
	const char *referer; size_t referer_len;
};

/* Per-thread access log buffer. */
struct gw_alog_buf {
	char *data;
	size_t len, cap;
};

void gw_alog_buf_init(struct gw_alog_buf *b);
void gw_alog_buf_free(struct gw_alog_buf *b);
/* Format rec into b (flushing when it is nearly full). */
void gw_access_log(struct gw_alog_buf *b, const struct gw_access_rec *rec);
/* Write out whatever b holds. */
void gw_alog_flush(struct gw_alog_buf *b);
int gw_access_enabled(void);

#endif
