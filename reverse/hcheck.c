/*
 * reverse/hcheck: one active health checker per server (see hcheck.h).  A
 * small state machine on raw libevent events: idle (timer) -> connecting
 * (EV_WRITE) -> reading the status line (EV_READ) -> idle.  A timeout event
 * bounds each check.  Nothing here blocks.
 */
#include "reverse/hcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/dns.h"
#include "core/log.h"

#define HC_MAGIC 0x48434b52u   /* "HCKR" */

struct rev_hcheck {
	uint32_t magic;
	struct event_base *base;
	struct rev_srv *srv;
	const struct conf_rev_upstream *up;
	const struct conf_rev_server *sv;
	struct event *ev_tick, *ev_io, *ev_to;
	struct gw_dns *dns;            /* main-thread resolver for named servers; NULL = none */
	struct gw_dns_query *dq;       /* pending resolution */
	int fd;
	int sending;
	int64_t started_ms;
	size_t got;
	char buf[256];
	char req[1200];
	size_t req_len;
};

static void tick_cb(evutil_socket_t fd, short what, void *arg);
static void io_cb(evutil_socket_t fd, short what, void *arg);
static void to_cb(evutil_socket_t fd, short what, void *arg);

static void schedule(struct rev_hcheck *hc, double secs)
{
	struct timeval tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	evtimer_add(hc->ev_tick, &tv);
}

static void finish(struct rev_hcheck *hc, int ok, int status, const char *err)
{
	double lat = (double)(rev_now_ms() - hc->started_ms);

	event_del(hc->ev_io);
	event_del(hc->ev_to);
	if (hc->dq != NULL) {
		gw_dns_cancel(hc->dq);
		hc->dq = NULL;
	}
	if (hc->fd >= 0) {
		close(hc->fd);
		hc->fd = -1;
	}
	rev_srv_check_result(hc->srv, ok, status, lat, err, (int)hc->up->health.rise,
	    (int)hc->up->health.fall);
	schedule(hc, hc->up->health.interval);
}

static void connect_to(struct rev_hcheck *hc, const struct sockaddr *sa, socklen_t len)
{
	char msg[64];

	hc->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (hc->fd < 0) {
		snprintf(msg, sizeof msg, "socket: %s", strerror(errno));
		finish(hc, 0, -1, msg);
		return;
	}
	if (connect(hc->fd, sa, len) < 0 && errno != EINPROGRESS) {
		snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
		finish(hc, 0, -1, msg);
		return;
	}
	event_assign(hc->ev_io, hc->base, hc->fd, EV_WRITE | EV_PERSIST, io_cb, hc);
	event_add(hc->ev_io, NULL);
}

static void dns_cb(void *arg, const struct gw_dns_result *res)
{
	struct rev_hcheck *hc = arg;
	char msg[64];

	hc->dq = NULL;
	if (res->naddrs == 0) {
		snprintf(msg, sizeof msg, "dns: %s", res->error ? res->error : "no address");
		finish(hc, 0, -1, msg);
		return;
	}
	connect_to(hc, (const struct sockaddr *)&res->addrs[0], res->lens[0]);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rev_hcheck *hc = arg;
	const struct conf_addr *a = &hc->sv->addr;
	struct gw_dns_result res;
	struct timeval tv;

	(void)fd;
	(void)what;
	hc->started_ms = rev_now_ms();
	hc->got = 0;
	hc->sending = 1;
	tv.tv_sec = (time_t)hc->up->health.timeout;
	tv.tv_usec = (suseconds_t)((hc->up->health.timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(hc->ev_to, &tv);
	if (!a->is_name) {
		connect_to(hc, (const struct sockaddr *)&a->ss, a->sslen);
		return;
	}
	/* the timeout covers the resolution too */
	switch (gw_dns_resolve(hc->dns, a->host, a->port, &res, dns_cb, hc, &hc->dq)) {
	case 0:
		return;                 /* dns_cb continues */
	case 1:
		hc->dq = NULL;
		dns_cb(hc, &res);
		return;
	default:
		hc->dq = NULL;
		dns_cb(hc, &res);
		return;
	}
}

/* Parse "HTTP/1.x NNN" at the start of buf; 0 = need more, -1 = not HTTP. */
static int parse_status(const char *b, size_t n)
{
	if (n < 12)
		return memchr(b, '\n', n) ? -1 : 0;
	if (memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ' || b[9] < '1' || b[9] > '5' ||
	    b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
		return -1;
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rev_hcheck *hc = arg;
	char msg[64];
	ssize_t n;
	int st;

	(void)what;
	if (hc->sending) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			snprintf(msg, sizeof msg, "connect: %s", strerror(err));
			finish(hc, 0, -1, msg);
			return;
		}
		if (hc->up->tls) {
			finish(hc, 1, 0, NULL);   /* TCP check for TLS upstreams */
			return;
		}
		n = send(fd, hc->req, hc->req_len, MSG_NOSIGNAL);
		if (n != (ssize_t)hc->req_len) {
			snprintf(msg, sizeof msg, "send: %s", n < 0 ? strerror(errno) : "short write");
			finish(hc, 0, -1, msg);
			return;
		}
		hc->sending = 0;
		event_del(hc->ev_io);
		event_assign(hc->ev_io, hc->base, hc->fd, EV_READ | EV_PERSIST, io_cb, hc);
		event_add(hc->ev_io, NULL);
		return;
	}
	n = recv(fd, hc->buf + hc->got, sizeof hc->buf - hc->got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		snprintf(msg, sizeof msg, "%s", n < 0 ? strerror(errno) : "closed before a status line");
		finish(hc, 0, -1, msg);
		return;
	}
	hc->got += (size_t)n;
	st = parse_status(hc->buf, hc->got);
	if (st == 0 && hc->got < sizeof hc->buf)
		return;
	if (st <= 0) {
		finish(hc, 0, -1, "not an HTTP response");
		return;
	}
	if (st >= hc->up->health.status_min && st <= hc->up->health.status_max)
		finish(hc, 1, st, NULL);
	else {
		snprintf(msg, sizeof msg, "status %d", st);
		finish(hc, 0, st, msg);
	}
}

static void to_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rev_hcheck *hc = arg;

	(void)fd;
	(void)what;
	finish(hc, 0, -1, "timeout");
}

struct rev_hcheck *rev_hcheck_start(struct event_base *base, struct gw_dns *dns,
    struct rev_srv *srv, const struct conf_rev_upstream *up, const struct conf_rev_server *sv,
    double first_delay)
{
	struct rev_hcheck *hc;
	const char *host;
	int n;

	if (sv->addr.is_name && dns == NULL) {
		gw_warn("upstream %s server %s: no resolver; no active health check "
		    "(passive ejection only)", up->name, sv->addr.text);
		return NULL;
	}
	hc = calloc(1, sizeof *hc);
	if (hc == NULL)
		return NULL;
	hc->magic = HC_MAGIC;
	hc->base = base;
	hc->dns = dns;
	hc->srv = rev_srv_get(srv->upstream, srv->address);   /* own reference */
	hc->up = up;
	hc->sv = sv;
	hc->fd = -1;
	host = up->sni != NULL ? up->sni : sv->addr.text;
	n = snprintf(hc->req, sizeof hc->req,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-health\r\nAccept: */*\r\n"
	    "Connection: close\r\n\r\n", up->health.path, host);
	hc->ev_tick = evtimer_new(base, tick_cb, hc);
	hc->ev_io = event_new(base, -1, 0, io_cb, hc);
	hc->ev_to = evtimer_new(base, to_cb, hc);
	if (hc->srv == NULL || n <= 0 || (size_t)n >= sizeof hc->req || hc->ev_tick == NULL ||
	    hc->ev_io == NULL || hc->ev_to == NULL) {
		gw_warn("upstream %s server %s: cannot start health checks", up->name, sv->addr.text);
		rev_hcheck_stop(hc);
		return NULL;
	}
	hc->req_len = (size_t)n;
	schedule(hc, first_delay);
	return hc;
}

void rev_hcheck_stop(struct rev_hcheck *hc)
{
	if (hc == NULL)
		return;
	if (hc->ev_tick)
		event_free(hc->ev_tick);
	if (hc->ev_io)
		event_free(hc->ev_io);
	if (hc->ev_to)
		event_free(hc->ev_to);
	if (hc->dq != NULL)
		gw_dns_cancel(hc->dq);
	if (hc->fd >= 0)
		close(hc->fd);
	rev_srv_put(hc->srv);
	hc->magic = 0;
	free(hc);
}
