/*
 * reverse/hcheck: one active health checker per server (see hcheck.h).
 * Each check is an exchange of the core's upstream engine (core/upstream.h)
 * with a status sink: no client connection, the engine connects (TLS to
 * the upstream as the proxied requests do), sends the request head and
 * reads the response head; the sink keeps the status and the engine
 * closes the connection.  A timeout event bounds each check.  Nothing here
 * blocks.
 */
#include "reverse/hcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "core/control.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/strlit.h"
#include "core/tls.h"
#include "core/upstream.h"
#include "core/worker.h"
#include "reverse/servers.h"

#define HC_MAGIC 0x48434b52u   /* "HCKR" */

struct rev_hcheck {
	uint32_t magic;
	struct event_base *base;
	struct rev_srv *srv;
	const struct conf_rev_upstream *up;
	const struct conf_rev_server *sv;
	struct event *ev_tick, *ev_to;
	struct gw_dns *dns;            /* main-thread resolver for named servers; NULL = none */
	struct gw_req *rq;             /* the check under way, or NULL */
	int status;                    /* its response status (0: none yet) */
	int64_t started_ms;
	char host[256];                 /* the server's name or numeric address */
	uint16_t port;
	char req[1200];
	size_t req_len;
};

/* The checks' engine context on the main loop, shared by all checkers
 * (main thread only; its resolver is set per check). */
static struct gw_worker *g_loop;
static int g_loop_refs;

/* Exchanges of health checks: no family hooks; their counters land in the
 * checks' own stats shard (gw_upstream_loop_new), which no total sums, so
 * any family index is as good: 0. */
static const struct gw_proto hc_proto = {
	.name = "health",
	.family = 0,
};

static void tick_cb(evutil_socket_t fd, short what, void *arg);
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

	event_del(hc->ev_to);
	if (hc->rq != NULL) {
		gw_upstream_req_free(hc->rq);
		hc->rq = NULL;
	}
	rev_srv_check_result(hc->srv, ok, status, lat, err, (int)hc->up->health.rise,
	    (int)hc->up->health.fall);
	schedule(hc, hc->up->health.interval);
}

/* ---- the status sink ---- */

static int hc_on_interim(struct gw_req *rq, const struct gw_http_head *r)
{
	(void)rq;
	(void)r;
	return GW_SINK_GO;
}

/* The status is all a check needs: the engine releases the connection
 * (its pool keeps none) and calls on_local. */
static int hc_on_head(struct gw_req *rq, const struct gw_http_head *r)
{
	struct rev_hcheck *hc = gw_req_data(rq);

	hc->status = r->status;
	return GW_SINK_LOCAL;
}

static int hc_on_body(struct gw_req *rq, struct evbuffer *src, int eof)
{
	(void)rq;
	(void)src;
	(void)eof;
	return GW_SINK_FAIL;   /* (never: on_head ends the exchange) */
}

static void hc_on_flush(struct gw_req *rq)
{
	(void)rq;
}

static void hc_on_local(struct gw_req *rq)
{
	struct rev_hcheck *hc = gw_req_data(rq);
	int st = hc->status;
	char msg[64];

	if (st >= hc->up->health.status_min && st <= hc->up->health.status_max) {
		finish(hc, 1, st, NULL);
		return;
	}
	snprintf(msg, sizeof msg, "status %d", st);
	finish(hc, 0, st, msg);
}

static void hc_on_error(struct gw_req *rq, int status, const char *reason)
{
	struct rev_hcheck *hc = gw_req_data(rq);
	char msg[200];

	(void)status;
	if (reason == NULL)
		reason = "out of memory";
	/* in a check's words, as before the engine ran them: "connect: <why>",
	 * "dns: <why>", "timeout" */
	if (strncmp(reason, GW_STRLIT("cannot connect: ")) == 0)
		snprintf(msg, sizeof msg, "connect: %s", reason + sizeof "cannot connect: " - 1);
	else if (strncmp(reason, GW_STRLIT("cannot resolve ")) == 0 && strstr(reason, ": ") != NULL)
		snprintf(msg, sizeof msg, "dns: %s", strstr(reason, ": ") + 2);
	else if (strcmp(reason, "upstream connect timeout") == 0 ||
	    strcmp(reason, "upstream response timeout") == 0)
		snprintf(msg, sizeof msg, "timeout");
	else
		snprintf(msg, sizeof msg, "%s", reason);
	finish(hc, 0, -1, msg);
}

static const struct gw_sink hc_sink = {
	.on_interim = hc_on_interim,
	.on_head = hc_on_head,
	.on_body = hc_on_body,
	.on_flush = hc_on_flush,
	.on_error = hc_on_error,
	.on_local = hc_on_local,
};

/* The index of upstream up's TLS client context in t, or -1. */
static int tls_index(const struct gw_tls *t, const char *name)
{
	const struct gw_tls_client *want = gw_tls_client_find(t, name), *c;

	for (int i = 0; want != NULL && (c = gw_tls_client_at(t, i)) != NULL; i++)
		if (c == want)
			return i;
	return -1;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rev_hcheck *hc = arg;
	struct gw_snapshot *snap = (struct gw_snapshot *)gw_control_snapshot();
	struct gw_req *rq;
	struct timeval tv;
	int tls = -1;

	(void)fd;
	(void)what;
	hc->started_ms = rev_now_ms();
	hc->status = 0;
	tv.tv_sec = (time_t)hc->up->health.timeout;
	tv.tv_usec = (suseconds_t)((hc->up->health.timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(hc->ev_to, &tv);   /* the timeout covers the resolution too */
	if (snap == NULL) {
		finish(hc, 0, -1, "no configuration");
		return;
	}
	if (hc->up->tls && (tls = tls_index(snap->tls, hc->up->name)) < 0) {
		finish(hc, 0, -1, "no TLS context for the upstream");
		return;
	}
	g_loop->dns = hc->dns;   /* (read by the engine when the exchange starts) */
	rq = gw_upstream_req_new(g_loop, snap, &hc_proto, &hc_sink, NULL, hc->req, hc->req_len);
	if (rq == NULL) {
		finish(hc, 0, -1, "cannot make the request");
		return;
	}
	gw_req_set_data(rq, hc);
	gw_req_proxy(rq, hc->host, strlen(hc->host), hc->port, hc->up->health.path,
	    strlen(hc->up->health.path));
	if (tls >= 0)
		gw_req_upstream_tls(rq, tls);
	if (hc->up->h2) {
		gw_req_upstream_h2(rq);   /* checked in the protocol it is spoken to in */
		gw_req_upstream_h2_ping(rq, hc->up->h2_ping_interval, hc->up->h2_ping_timeout);
	}
	hc->rq = rq;
	gw_upstream_start(rq);   /* (may finish at once: every outcome reaches the sink) */
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
	if (g_loop == NULL && (g_loop = gw_upstream_loop_new(base, NULL)) == NULL) {
		gw_warn("upstream %s server %s: cannot start health checks", up->name, sv->addr.text);
		return NULL;
	}
	g_loop_refs++;
	hc = calloc(1, sizeof *hc);
	if (hc == NULL) {
		if (--g_loop_refs == 0) {
			gw_upstream_loop_free(g_loop);
			g_loop = NULL;
		}
		return NULL;
	}
	hc->magic = HC_MAGIC;
	hc->base = base;
	hc->dns = dns;
	hc->srv = rev_srv_get(srv->upstream, srv->address);   /* own reference */
	hc->up = up;
	hc->sv = sv;
	hc->port = sv->addr.port;
	snprintf(hc->host, sizeof hc->host, "%s", sv->addr.host != NULL ? sv->addr.host : "");
	host = up->sni != NULL ? up->sni : sv->addr.text;
	n = snprintf(hc->req, sizeof hc->req,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-health\r\nAccept: */*\r\n"
	    "Connection: close\r\n\r\n", up->health.path, host);
	hc->ev_tick = evtimer_new(base, tick_cb, hc);
	hc->ev_to = evtimer_new(base, to_cb, hc);
	if (hc->srv == NULL || n <= 0 || (size_t)n >= sizeof hc->req || hc->ev_tick == NULL ||
	    hc->ev_to == NULL || hc->host[0] == '\0') {
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
	if (hc->rq != NULL)
		gw_upstream_req_free(hc->rq);
	if (hc->ev_tick)
		event_free(hc->ev_tick);
	if (hc->ev_to)
		event_free(hc->ev_to);
	rev_srv_put(hc->srv);
	hc->magic = 0;
	free(hc);
	if (--g_loop_refs == 0) {
		gw_upstream_loop_free(g_loop);
		g_loop = NULL;
	}
}
