/*
 * core/log: error and access logs.  Both keep a stable file descriptor number
 * for their lifetime; a reopen (SIGUSR1, logrotate) opens the new file and
 * dup2()s it over the old number, so worker threads never see a closed or
 * reused descriptor.
 */
#include "core/log.h"

#include "core/addr.h"
#include "core/clock.h"
#include "core/events.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int err_level = GW_LOG_INFO;
static int err_fd = 2;             /* stable number */
static int err_syslog;
static char *err_path;              /* file target, for reopen */

static int acc_fd = -1;
static int acc_json;
static char *acc_path;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/*
 * The access log sent to syslog (global.log.access = "syslog:..."): one
 * RFC 5424 message per line, "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID
 * access - MSG".  Workers hand their buffered lines over when they flush
 * (every 0.2 s), never waiting on the network: datagrams (udp, unix) go out
 * with MSG_DONTWAIT, one line each, cut at SL_MSG_MAX; TCP frames (RFC 6587
 * octet counting, "LEN SP MSG") queue in a bounded buffer drained by
 * non-blocking sends on later flushes.  A line that does not fit, or that the
 * kernel refuses at once, is dropped and counted (/metrics).  A lost TCP
 * connection is retried with backoff (0.5 s doubling to 30 s); queued frames
 * wait for it, a partly sent frame is dropped (the receiver saw half a frame
 * on the old connection, never on the new one).
 */
#define SL_MSG_MAX 4096
#define SL_PEND_MAX (512 * 1024)

static struct {
	pthread_mutex_t mu;            /* everything below but the counters */
	_Atomic int on;                /* the access log goes to syslog */
	int transport;                 /* GW_SYSLOG_* */
	struct sockaddr_storage sa;
	socklen_t salen;
	char *target;
	int fd, connecting;
	double next_try, backoff;
	char *pend;                    /* TCP: queued frames, SL_PEND_MAX */
	size_t plen, psent;            /* psent: bytes of pend[0]'s frame already sent */
	_Atomic size_t pending;        /* plen, read without the lock */
	int pri;
	char tag[49], host[256];
	_Atomic uint64_t sent, dropped;
} sl = { .mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .pri = 16 * 8 + 6 };

static int open_append(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Point *fdp at path; keeps the descriptor number once one is ours. */
static int attach(int *fdp, const char *path, int owned)
{
	int fd;

	if (strcmp(path, "stderr") == 0)
		fd = dup(2);
	else if (strcmp(path, "stdout") == 0)
		fd = dup(1);
	else
		fd = open_append(path);
	if (fd < 0)
		return -1;
	if (owned && *fdp > 2) {
		if (dup2(fd, *fdp) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		close(fd);
	} else {
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		*fdp = fd;
	}
	return 0;
}

int gw_log_open(const char *target, int level)
{
	atomic_store(&err_level, level);
	if (strcmp(target, "syslog") == 0) {
		if (!err_syslog)
			openlog("gatehouse", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		err_syslog = 1;
		free(err_path);
		err_path = NULL;
		return 0;
	}
	if (attach(&err_fd, target, err_fd > 2) < 0)
		return -1;
	err_syslog = 0;
	free(err_path);
	err_path = strdup(target);
	return 0;
}

/* TCP: drop the frames sent in full from the queue, so that it starts at a
 * frame (lock held); psent is then within the first frame. */
static void sl_drop_sent(void)
{
	size_t off = 0;

	if (sl.psent == 0)
		return;
	while (off < sl.psent) {
		size_t flen = 0, i = off;
		while (i < sl.plen && sl.pend[i] != ' ')
			flen = flen * 10 + (size_t)(sl.pend[i++] - '0');
		if (i + 1 + flen > sl.psent)
			break;
		off = i + 1 + flen;
		atomic_fetch_add_explicit(&sl.sent, 1, memory_order_relaxed);
	}
	memmove(sl.pend, sl.pend + off, sl.plen - off);
	sl.plen -= off;
	sl.psent -= off;
	atomic_store(&sl.pending, sl.plen);
}

/* Close the syslog socket (lock held); TCP: the frames sent in full are
 * done, a partly sent one is dropped (never sent twice). */
static void sl_disconnect(double backoff_from)
{
	if (sl.fd >= 0)
		close(sl.fd);
	sl.fd = -1;
	sl.connecting = 0;
	sl_drop_sent();
	if (sl.psent > 0 && sl.plen > 0) {
		size_t flen = 0, i = 0;
		while (i < sl.plen && sl.pend[i] != ' ')
			flen = flen * 10 + (size_t)(sl.pend[i++] - '0');
		flen += i + 1;
		if (flen > sl.plen)
			flen = sl.plen;
		memmove(sl.pend, sl.pend + flen, sl.plen - flen);
		sl.plen -= flen;
		atomic_store(&sl.pending, sl.plen);
		atomic_fetch_add_explicit(&sl.dropped, 1, memory_order_relaxed);
	}
	sl.psent = 0;
	sl.backoff = sl.backoff <= 0 ? 0.5 : sl.backoff * 2 > 30 ? 30 : sl.backoff * 2;
	sl.next_try = backoff_from + sl.backoff;
}

/* Open the socket when none is (lock held): non-blocking, never waits. */
static void sl_connect(double now)
{
	int fam = sl.sa.ss_family;

	if (sl.fd >= 0 || now < sl.next_try)
		return;
	sl.fd = socket(fam, (sl.transport == GW_SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (sl.fd < 0) {
		sl_disconnect(now);
		return;
	}
	if (connect(sl.fd, (const struct sockaddr *)&sl.sa, sl.salen) < 0) {
		if (errno != EINPROGRESS || sl.transport != GW_SYSLOG_TCP) {
			sl_disconnect(now);
			return;
		}
		sl.connecting = 1;
		return;
	}
	sl.backoff = 0;
}

/* TCP: send what is queued, as far as the kernel takes it now (lock held). */
static void sl_pump(double now)
{
	sl_connect(now);
	if (sl.fd < 0)
		return;
	if (sl.connecting) {
		struct pollfd p = { .fd = sl.fd, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof err;
		if (poll(&p, 1, 0) <= 0)
			return;
		if (getsockopt(sl.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			sl_disconnect(now);
			return;
		}
		sl.connecting = 0;
		sl.backoff = 0;
	} else if (sl.plen > sl.psent) {
		/* a receiver never talks: readable means it closed (or reset);
		 * frames sent now would vanish, so reconnect first */
		struct pollfd p = { .fd = sl.fd, .events = POLLIN | POLLRDHUP };
		if (poll(&p, 1, 0) > 0) {
			sl_disconnect(now);
			return;
		}
	}
	while (sl.plen > sl.psent) {
		ssize_t w = send(sl.fd, sl.pend + sl.psent, sl.plen - sl.psent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			sl_disconnect(now);
			return;
		}
		sl.psent += (size_t)w;
	}
	sl_drop_sent();
}

/* Send or queue the lines of data[0..len) (each ends in '\n'). */
static void sl_send_lines(const char *data, size_t len)
{
	char head[400], ts[40];
	struct timeval tv;
	struct tm tm;
	size_t hl, off = 0;
	double now = gw_mono_now();

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&sl.mu);
	if (!atomic_load(&sl.on)) {        /* a reload moved the log away meanwhile */
		pthread_mutex_unlock(&sl.mu);
		return;
	}
	hl = (size_t)snprintf(head, sizeof head, "<%d>1 %s.%03dZ %s %s %d access - ", sl.pri, ts,
	    (int)(tv.tv_usec / 1000), sl.host, sl.tag, (int)getpid());
	if (hl >= sizeof head)
		hl = sizeof head - 1;
	if (sl.transport != GW_SYSLOG_TCP)
		sl_connect(now);
	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t ml = (nl != NULL ? (size_t)(nl - (data + off)) : len - off);
		const char *m = data + off;
		off += ml + 1;
		if (hl + ml > SL_MSG_MAX)
			ml = SL_MSG_MAX - hl;   /* a datagram or frame this long is cut */
		if (sl.transport != GW_SYSLOG_TCP) {
			struct iovec iov[2] = { { head, hl }, { (void *)m, ml } };
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
			if (sl.fd >= 0 && sendmsg(sl.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
				atomic_fetch_add_explicit(&sl.sent, 1, memory_order_relaxed);
				continue;
			}
			atomic_fetch_add_explicit(&sl.dropped, 1, memory_order_relaxed);
			/* a unix socket whose daemon restarted: connect again later */
			if (sl.fd >= 0 && sl.transport == GW_SYSLOG_UNIX &&
			    (errno == ECONNREFUSED || errno == ENOTCONN || errno == ENOENT))
				sl_disconnect(now);
			continue;
		}
		{
			char pfx[24];
			int pl = snprintf(pfx, sizeof pfx, "%zu ", hl + ml);
			if (sl.pend == NULL)
				sl.pend = malloc(SL_PEND_MAX);
			if (sl.pend == NULL || sl.plen + (size_t)pl + hl + ml > SL_PEND_MAX) {
				atomic_fetch_add_explicit(&sl.dropped, 1, memory_order_relaxed);
				continue;
			}
			memcpy(sl.pend + sl.plen, pfx, (size_t)pl);
			memcpy(sl.pend + sl.plen + pl, head, hl);
			memcpy(sl.pend + sl.plen + pl + hl, m, ml);
			sl.plen += (size_t)pl + hl + ml;
		}
	}
	if (sl.transport == GW_SYSLOG_TCP) {
		atomic_store(&sl.pending, sl.plen);
		sl_pump(now);
	}
	pthread_mutex_unlock(&sl.mu);
}

void gw_log_syslog_options(int facility, const char *tag)
{
	pthread_mutex_lock(&sl.mu);
	sl.pri = (facility >= 0 && facility <= 23 ? facility : 16) * 8 + 6;   /* severity: informational */
	snprintf(sl.tag, sizeof sl.tag, "%s", tag != NULL && tag[0] ? tag : "gatehouse");
	if (gethostname(sl.host, sizeof sl.host) != 0 || sl.host[0] == '\0')
		snprintf(sl.host, sizeof sl.host, "-");
	sl.host[sizeof sl.host - 1] = '\0';
	pthread_mutex_unlock(&sl.mu);
}

void gw_log_syslog_counts(uint64_t *sent, uint64_t *dropped, int *on)
{
	*sent = atomic_load_explicit(&sl.sent, memory_order_relaxed);
	*dropped = atomic_load_explicit(&sl.dropped, memory_order_relaxed);
	*on = atomic_load(&sl.on);
}

/* Point the access log at a syslog target (or away from one: target NULL). */
static int sl_open(const char *target)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int tr;

	if (target != NULL && gw_addr_parse_syslog(target, &tr, &ss, &len) != NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&sl.mu);
	if (target == NULL || sl.target == NULL || strcmp(sl.target, target) != 0) {
		if (sl.fd >= 0)
			close(sl.fd);
		sl.fd = -1;
		sl.connecting = 0;
		sl.plen = sl.psent = 0;
		atomic_store(&sl.pending, 0);
		sl.next_try = 0;
		sl.backoff = 0;
		free(sl.target);
		sl.target = NULL;
		if (target != NULL) {
			sl.target = strdup(target);
			sl.transport = tr;
			sl.sa = ss;
			sl.salen = len;
			if (sl.host[0] == '\0' && gethostname(sl.host, sizeof sl.host) != 0)
				snprintf(sl.host, sizeof sl.host, "-");
			if (sl.tag[0] == '\0')
				snprintf(sl.tag, sizeof sl.tag, "gatehouse");
		}
	}
	atomic_store(&sl.on, target != NULL);
	pthread_mutex_unlock(&sl.mu);
	return 0;
}

int gw_log_access_open(const char *path, int json)
{
	acc_json = json;
	if (path != NULL && strncmp(path, "syslog:", 7) == 0) {
		/* the file descriptor (if any) stays open: a worker may be writing
		 * to it right now; it is unused until the access log is a file again */
		free(acc_path);
		acc_path = NULL;
		return sl_open(path);
	}
	(void)sl_open(NULL);
	if (path == NULL || path[0] == '\0') {
		if (acc_fd > 2)
			close(acc_fd);
		acc_fd = -1;
		free(acc_path);
		acc_path = NULL;
		return 0;
	}
	if (acc_path != NULL && strcmp(acc_path, path) == 0)
		return 0;
	if (attach(&acc_fd, path, acc_fd > 2) < 0)
		return -1;
	free(acc_path);
	acc_path = strdup(path);
	return 0;
}

void gw_log_reopen(void)
{
	if (err_path != NULL && attach(&err_fd, err_path, 1) < 0)
		gw_error("cannot reopen error log %s: %s", err_path, strerror(errno));
	if (acc_path != NULL && attach(&acc_fd, acc_path, 1) < 0)
		gw_error("cannot reopen access log %s: %s", acc_path, strerror(errno));
	gw_info("log files reopened");
}

void gw_log_close(void)
{
	if (acc_fd > 2)
		close(acc_fd);
	acc_fd = -1;
	free(acc_path);
	acc_path = NULL;
	(void)sl_open(NULL);
	pthread_mutex_lock(&sl.mu);
	free(sl.pend);
	sl.pend = NULL;
	pthread_mutex_unlock(&sl.mu);
	free(err_path);
	err_path = NULL;
	if (err_syslog)
		closelog();
}

int gw_log_enabled(int level)
{
	return level >= atomic_load_explicit(&err_level, memory_order_relaxed);
}

int gw_access_enabled(void)
{
	return acc_fd >= 0 || atomic_load_explicit(&sl.on, memory_order_relaxed);
}

void gw_logv(int level, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n;
	int r;

	if (!gw_log_enabled(level))
		return;
	if (err_syslog) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
		vsyslog(prio[level & 3], fmt, ap);
		return;
	}
	{
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof line - n, ".%03d [%s] ", (int)(tv.tv_usec / 1000),
		    level_names[level & 3]);
		n += (size_t)r;
	}
	r = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	(void)!write(err_fd, line, n);
}

void gw_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gw_logv(level, fmt, ap);
	va_end(ap);
}

/* ---- access log ---- */

#define ALOG_CAP 65536

void gw_alog_buf_init(struct gw_alog_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void gw_alog_buf_free(struct gw_alog_buf *b)
{
	gw_alog_flush(b);
	free(b->data);
	b->data = NULL;
	b->cap = 0;
}

void gw_alog_flush(struct gw_alog_buf *b)
{
	size_t off = 0;

	if (atomic_load_explicit(&sl.on, memory_order_relaxed)) {
		if (b->len > 0)
			sl_send_lines(b->data, b->len);
		else if (atomic_load_explicit(&sl.pending, memory_order_relaxed) > 0 &&
		    pthread_mutex_trylock(&sl.mu) == 0) {
			/* queued TCP frames drain on the flush timer too; a busy lock
			 * means another worker is draining */
			sl_pump(gw_mono_now());
			pthread_mutex_unlock(&sl.mu);
		}
		b->len = 0;
		return;
	}
	while (off < b->len && acc_fd >= 0) {
		ssize_t w = write(acc_fd, b->data + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	b->len = 0;
}

/* How put_esc escapes: inside a JSON string, inside a combined-format
 * "quoted" field, or as a bare combined field (space-separated, so a space
 * is escaped too: one field never splits into two). */
enum esc_mode { ESC_QUOTED, ESC_JSON, ESC_BARE };

/* Append s[0..len) escaped for mode: combined writes \" \\ and \xHH for
 * control and non-ASCII octets, JSON \" \\ and \u00HH. */
static void put_esc(struct gw_alog_buf *b, const char *s, size_t len, enum esc_mode mode)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len && b->len + 8 < b->cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || (ch == ' ' && mode == ESC_BARE)) {
			if (mode == ESC_JSON && ch != '"' && ch != '\\') {
				memcpy(b->data + b->len, "\\u00", 4);
				b->data[b->len + 4] = hex[ch >> 4];
				b->data[b->len + 5] = hex[ch & 15];
				b->len += 6;
			} else if (mode == ESC_JSON) {
				b->data[b->len++] = '\\';
				b->data[b->len++] = (char)ch;
			} else {
				b->data[b->len++] = '\\';
				b->data[b->len++] = 'x';
				b->data[b->len++] = hex[ch >> 4];
				b->data[b->len++] = hex[ch & 15];
			}
		} else {
			b->data[b->len++] = (char)ch;
		}
	}
}

static void put(struct gw_alog_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct gw_alog_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (r > 0)
		b->len += (size_t)r < b->cap - b->len ? (size_t)r : b->cap - b->len - 1;
}

/* A quoted field: "" (json) or "-" (combined) when empty. */
static void put_str(struct gw_alog_buf *b, const char *s, size_t len, int json)
{
	if (s == NULL || len == 0) {
		put(b, json ? "\"\"" : "\"-\"");
		return;
	}
	put(b, "\"");
	put_esc(b, s, len, json ? ESC_JSON : ESC_QUOTED);
	put(b, "\"");
}

/* A NUL-terminated quoted field (NULL = empty). */
static void put_cstr(struct gw_alog_buf *b, const char *s, int json)
{
	put_str(b, s, s != NULL ? strlen(s) : 0, json);
}

/* A bare combined field: "-" when empty, else escaped with no space left. */
static void put_bare(struct gw_alog_buf *b, const char *s)
{
	if (s == NULL || s[0] == '\0')
		put(b, "-");
	else
		put_esc(b, s, strlen(s), ESC_BARE);
}

void gw_access_log(struct gw_alog_buf *b, const struct gw_access_rec *r)
{
	char ts[64];
	struct tm tm;
	time_t t = (time_t)r->start;
	const char *user = r->user && r->user[0] ? r->user : "-";

	if (b->data == NULL) {
		b->data = malloc(ALOG_CAP);
		if (b->data == NULL)
			return;
		b->cap = ALOG_CAP;
	}
	if (b->cap - b->len < 6144)
		gw_alog_flush(b);
	size_t start = b->len;
	localtime_r(&t, &tm);
	/* every field that is not a number goes through put_esc: names come from
	 * the configuration and the client, reasons carry peer-supplied text */
	if (acc_json) {
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S%z", &tm);
		put(b, "{\"time\":\"%s\",\"client\":", ts);
		put_cstr(b, r->client, 1);
		put(b, ",\"family\":");
		put_cstr(b, r->family, 1);
		put(b, ",\"method\":");
		put_str(b, r->method, r->method_len, 1);
		put(b, ",\"target\":");
		put_str(b, r->target, r->target_len, 1);
		put(b, ",\"host\":");
		put_str(b, r->host, r->host_len, 1);
		put(b, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration\":%.6f,"
		    "\"upstream\":", r->status,
		    (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out, r->duration);
		put_cstr(b, r->upstream, 1);
		put(b, ",\"upstream_protocol\":\"%s\"", r->upstream == NULL || r->upstream[0] == '\0' ? "" :
		    r->upstream_h2 ? "h2" : "http1.1");
		put(b, ",\"user\":");
		put_cstr(b, user, 1);
		put(b, ",\"verdict\":");
		put_cstr(b, r->verdict, 1);
		put(b, ",\"rule\":");
		put_cstr(b, r->rule, 1);
		put(b, ",\"reason\":");
		put_cstr(b, r->reason, 1);
		put(b, ",\"request_id\":");
		put_cstr(b, r->request_id, 1);
		put(b, ",\"user_agent\":");
		put_str(b, r->ua, r->ua_len, 1);
		put(b, ",\"referer\":");
		put_str(b, r->referer, r->referer_len, 1);
		if (r->peer != NULL) {
			put(b, ",\"peer\":");
			put_cstr(b, r->peer, 1);
		}
		put(b, "}\n");
	} else {
		/* combined, then our fields: family, duration, upstream, verdict,
		 * rule, request id, bytes in, reason, host (the Host header, else
		 * the target's; combined has none, and the console filters on it),
		 * upproto=h2 when the upstream exchange was an HTTP/2 stream.
		 * Bare fields escape spaces, free text is quoted: a line always
		 * splits into the same fields (shlex, or a regex on "..."/\S+). */
		strftime(ts, sizeof ts, "%d/%b/%Y:%H:%M:%S %z", &tm);
		put_bare(b, r->client);
		put(b, " - ");
		put_bare(b, user);
		put(b, " [%s] \"", ts);
		put_esc(b, r->method, r->method_len, ESC_BARE);
		put(b, " ");
		put_esc(b, r->target, r->target_len, ESC_BARE);
		put(b, " HTTP/%d.%d\" %d %llu ", r->http2 ? 2 : 1, r->http2 ? 0 : r->version_minor, r->status,
		    (unsigned long long)r->bytes_out);
		put_str(b, r->referer, r->referer_len, 0);
		put(b, " ");
		put_str(b, r->ua, r->ua_len, 0);
		put(b, " ");
		put_bare(b, r->family);
		put(b, " %.3f up=", r->duration);
		put_bare(b, r->upstream);
		put(b, " verdict=");
		put_bare(b, r->verdict);
		put(b, " rule=");
		put_cstr(b, r->rule, 0);
		put(b, " id=");
		put_bare(b, r->request_id);
		put(b, " in=%llu reason=", (unsigned long long)r->bytes_in);
		put_cstr(b, r->reason, 0);
		put(b, " host=");
		put_str(b, r->host, r->host_len, 0);
		/* only for h2 upstreams: a line without it went over HTTP/1.1, and
		 * lines that had no such field keep their shape (added, not renamed) */
		if (r->upstream_h2 && r->upstream != NULL && r->upstream[0])
			put(b, " upproto=h2");
		if (r->peer != NULL) {
			put(b, " peer=");
			put_bare(b, r->peer);
		}
		put(b, "\n");
	}
	/* the console's live tail sees every line, even with no access file */
	if (b->len > start)
		gw_tail_push(b->data + start, b->len - start - 1);
	if (!gw_access_enabled())
		b->len = start;
}
