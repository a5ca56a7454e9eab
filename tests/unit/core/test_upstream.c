/*
 * Unit tests for core/upstream: the upstream engine driven through a test
 * sink (no client connection) against a real origin on 127.0.0.1 (a thread
 * with blocking sockets, answering each request with the bytes the case
 * set), on the test's own event_base: interim and final heads, a
 * Content-Length and a chunked body (de-framed by gw_upstream_body_take),
 * backpressure (the sink holds, then resumes), an origin that closes
 * without answering, a close-delimited body, and a dead port.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "conf/conf.h"
#include "core/http1.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/upstream.h"

/* ---- the origin: one thread, one connection at a time ---- */

static int g_lfd;
static uint16_t g_port;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_resp;           /* what the next connection gets (NULL: closed unanswered) */
static size_t g_resp_len;
static char g_seen[4096];      /* the last request head the origin read */

static void *origin_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(g_lfd, NULL, NULL);
		char buf[4096];
		size_t got = 0;

		if (fd < 0)
			return NULL;
		while (got < sizeof buf - 1) {
			ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n") != NULL)
				break;
		}
		pthread_mutex_lock(&g_mu);
		memcpy(g_seen, buf, got);
		g_seen[got] = '\0';
		for (size_t off = 0; g_resp != NULL && off < g_resp_len;) {
			ssize_t n = send(fd, g_resp + off, g_resp_len - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		pthread_mutex_unlock(&g_mu);
		close(fd);
	}
}

static void origin_answer(const char *resp, size_t len)
{
	pthread_mutex_lock(&g_mu);
	free(g_resp);
	g_resp = NULL;
	if (resp != NULL) {
		g_resp = malloc(len);
		memcpy(g_resp, resp, len);
	}
	g_resp_len = len;
	pthread_mutex_unlock(&g_mu);
}

/* ---- the test sink ---- */

struct tsink {
	struct event_base *base;
	struct gw_req *rq;
	int interim, status, ended, errored, err_status;
	char reason[200];
	struct evbuffer *body;
	int hold_once;             /* hold after the first body bytes, resume from a timer */
	int held;
	struct event *ev_resume;
};

static int t_on_interim(struct gw_req *rq, const struct gw_http_head *r)
{
	struct tsink *t = gw_req_data(rq);

	t->interim = r->status;
	return GW_SINK_GO;
}

static int t_on_head(struct gw_req *rq, const struct gw_http_head *r)
{
	struct tsink *t = gw_req_data(rq);

	t->status = r->status;
	return gw_upstream_head_hook(rq, r) ? GW_SINK_LOCAL : GW_SINK_GO;
}

static int t_on_body(struct gw_req *rq, struct evbuffer *src, int eof)
{
	struct tsink *t = gw_req_data(rq);
	int r = gw_upstream_body_take(rq, src, t->body, eof);

	if (r == -1)
		return GW_SINK_FAIL;
	if (r == -2) {
		snprintf(t->reason, sizeof t->reason, "cut");
		t->errored = 1;
		gw_upstream_req_free(rq);
		t->rq = NULL;
		event_base_loopbreak(t->base);
		return GW_SINK_GONE;
	}
	if (r == 0 && t->hold_once && !t->held) {
		struct timeval tv = { 0, 20000 };
		t->held = 1;
		evtimer_add(t->ev_resume, &tv);
		return GW_SINK_HOLD;
	}
	return GW_SINK_GO;
}

static void t_on_flush(struct gw_req *rq)
{
	struct tsink *t = gw_req_data(rq);

	if (gw_upstream_complete(rq)) {
		t->ended = 1;
		gw_upstream_req_free(rq);
		t->rq = NULL;
		event_base_loopbreak(t->base);
	}
}

static void t_on_error(struct gw_req *rq, int status, const char *reason)
{
	struct tsink *t = gw_req_data(rq);

	t->errored = 1;
	t->err_status = status;
	snprintf(t->reason, sizeof t->reason, "%s", reason ? reason : "(oom)");
	gw_upstream_req_free(rq);
	t->rq = NULL;
	event_base_loopbreak(t->base);
}

static void t_on_local(struct gw_req *rq)
{
	t_on_error(rq, 0, "local");
}

static const struct gw_sink tsink_ops = {
	.on_interim = t_on_interim,
	.on_head = t_on_head,
	.on_body = t_on_body,
	.on_flush = t_on_flush,
	.on_error = t_on_error,
	.on_local = t_on_local,
};

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tsink *t = arg;

	(void)fd;
	(void)what;
	if (t->rq != NULL)
		gw_upstream_resume(t->rq);
}

static const struct gw_proto tproto = { .name = "test", .family = 0 };

/* ---- a response filter (on_response_filter): upper-cases the body, holds
 * once (resumed from a timer, having emitted meanwhile), and ends it with
 * "!" ---- */

static struct event *g_filt_ev;
static struct gw_req *g_filt_rq;
static int g_filt_calls, g_filt_holds, g_filt_lasts;

static void f_on_response_head(struct gw_req *rq, const struct gw_http_head *r, void *side)
{
	(void)r;
	(void)side;
	gw_req_filter_response(rq);
}

static void filt_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	gw_req_body_emit(g_filt_rq, "<", 1, 0);   /* emitted while held: goes out on resume */
	gw_req_resume(g_filt_rq);
}

static int f_on_response_filter(struct gw_req *rq, const char *p, size_t n, int last, void *side)
{
	char buf[4096];

	(void)side;
	g_filt_calls++;
	for (size_t off = 0; off < n; off += sizeof buf) {
		size_t k = n - off < sizeof buf ? n - off : sizeof buf;
		for (size_t i = 0; i < k; i++)
			buf[i] = (char)(p[off + i] >= 'a' && p[off + i] <= 'z' ? p[off + i] - 32 : p[off + i]);
		gw_req_body_emit(rq, buf, k, 0);
	}
	if (last) {
		g_filt_lasts++;
		gw_req_body_emit(rq, "!", 1, 1);
		return GW_FILTER_GO;
	}
	if (g_filt_holds == 0) {
		struct timeval tv = { 0, 20000 };
		g_filt_holds++;
		g_filt_rq = rq;
		evtimer_add(g_filt_ev, &tv);
		return GW_FILTER_HOLD;
	}
	return GW_FILTER_GO;
}

static const struct gw_proto fproto = {
	.name = "test-filter",
	.family = 0,
	.on_response_head = f_on_response_head,
	.on_response_filter = f_on_response_filter,
};

/* Run one exchange GET /x to port; the sink's record in *t. */
static void run_as(const struct gw_proto *proto, struct event_base *base, struct gw_worker *w,
    struct gw_snapshot *snap, uint16_t port, struct tsink *t, int hold_once)
{
	static const char head[] = "GET /x HTTP/1.1\r\nHost: origin.test\r\n\r\n";
	struct timeval limit = { 5, 0 };

	memset(t, 0, sizeof *t);
	t->base = base;
	t->body = evbuffer_new();
	t->hold_once = hold_once;
	t->ev_resume = evtimer_new(base, resume_cb, t);
	t->rq = gw_upstream_req_new(w, snap, proto, &tsink_ops, NULL, head, sizeof head - 1);
	if (t->rq == NULL)
		return;
	gw_req_set_data(t->rq, t);
	gw_req_proxy(t->rq, "127.0.0.1", 9, port, NULL, 0);
	gw_upstream_start(t->rq);
	if (t->rq != NULL) {
		event_base_loopexit(base, &limit);
		event_base_dispatch(base);
	}
	if (t->rq != NULL) {   /* timed out: cancel */
		gw_upstream_req_free(t->rq);
		t->rq = NULL;
	}
	event_free(t->ev_resume);
}

static void run(struct event_base *base, struct gw_worker *w, struct gw_snapshot *snap,
    uint16_t port, struct tsink *t, int hold_once)
{
	run_as(&tproto, base, w, snap, port, t, hold_once);
}

/* n bytes of "abc...zabc..." (malloc) */
static char *letters(size_t n)
{
	char *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
	return p;
}

/* The origin's next answer: a 200 with body (n bytes) in chunks of cl. */
static void chunked_answer(const char *body, size_t n, size_t cl)
{
	char *r = malloc(n + n / cl * 16 + 256);
	size_t len = (size_t)sprintf(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");

	for (size_t off = 0; off < n; off += cl) {
		size_t k = n - off < cl ? n - off : cl;
		len += (size_t)sprintf(r + len, "%zx\r\n", k);
		memcpy(r + len, body + off, k);
		len += k;
		memcpy(r + len, "\r\n", 2);
		len += 2;
	}
	len += (size_t)sprintf(r + len, "0\r\n\r\n");
	origin_answer(r, len);
	free(r);
}

static int body_is(struct tsink *t, const char *want, size_t len)
{
	return evbuffer_get_length(t->body) == len &&
	    memcmp(evbuffer_pullup(t->body, -1), want, len) == 0;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	pthread_t th;
	struct event_base *base = event_base_new();
	struct gw_worker *w = gw_upstream_loop_new(base, NULL);
	struct conf *cf = calloc(1, sizeof *cf);
	struct gw_snapshot snap;
	struct tsink t;

	memset(&snap, 0, sizeof snap);
	cf->global.via_name = "test";
	cf->global.timeouts.upstream_connect = 5;
	cf->global.timeouts.upstream_response = 5;
	cf->global.timeouts.upstream_idle = 5;
	cf->global.limits.max_header_bytes = 65536;
	cf->global.limits.max_uri_bytes = 8192;
	snap.conf = cf;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g_lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (base == NULL || w == NULL || g_lfd < 0 || bind(g_lfd, (struct sockaddr *)&sa, sl) < 0 ||
	    listen(g_lfd, 16) < 0 || getsockname(g_lfd, (struct sockaddr *)&sa, &sl) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	g_port = ntohs(sa.sin_port);
	pthread_create(&th, NULL, origin_main, NULL);

	BEGIN_CASE("interim, head, Content-Length body, end");
	{
		static const char r[] = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
		origin_answer(r, sizeof r - 1);
		run(base, w, &snap, g_port, &t, 0);
		CHECK(t.interim == 103, "interim %d", t.interim);
		CHECK(t.status == 200, "status %d", t.status);
		CHECK(body_is(&t, "hello", 5), "body of %zu bytes", evbuffer_get_length(t.body));
		CHECK(t.ended && !t.errored, "ended %d errored %d (%s)", t.ended, t.errored, t.reason);
		CHECK(strncmp(g_seen, "GET /x HTTP/1.1\r\nHost: origin.test\r\n", 36) == 0,
		    "request seen: %s", g_seen);
		evbuffer_free(t.body);
	}
	END_CASE();

	BEGIN_CASE("chunked 600 KB body under backpressure: hold, resume, all bytes");
	{
		size_t n = 600 * 1024;
		char *want = letters(n);
		chunked_answer(want, n, 4096);
		run(base, w, &snap, g_port, &t, 1);
		CHECK(t.status == 200, "status %d", t.status);
		CHECK(t.held, "the sink never held");
		CHECK(body_is(&t, want, n), "body of %zu bytes, want %zu", evbuffer_get_length(t.body), n);
		CHECK(t.ended && !t.errored, "ended %d errored %d (%s)", t.ended, t.errored, t.reason);
		evbuffer_free(t.body);
		free(want);
	}
	END_CASE();

	BEGIN_CASE("a response filter holds and replaces the body (chunked in, 200 KB)");
	{
		size_t n = 200 * 1024, o = 0;
		char *in = letters(n), *want = malloc(n + 2);
		chunked_answer(in, n, 1000);
		g_filt_ev = evtimer_new(base, filt_resume_cb, NULL);
		run_as(&fproto, base, w, &snap, g_port, &t, 0);
		CHECK(t.status == 200, "status %d", t.status);
		CHECK(g_filt_holds == 1 && g_filt_lasts == 1 && g_filt_calls >= 2, "holds %d lasts %d calls %d",
		    g_filt_holds, g_filt_lasts, g_filt_calls);
		CHECK(t.ended && !t.errored, "ended %d errored %d (%s)", t.ended, t.errored, t.reason);
		{
			/* upper case, with the "<" emitted while held somewhere
			 * inside, and "!" at the end */
			size_t got = evbuffer_get_length(t.body);
			const char *b = (const char *)evbuffer_pullup(t.body, -1);
			for (size_t i = 0; i < n; i++)
				want[i] = (char)(in[i] - 32);
			CHECK(got == n + 2 && b[got - 1] == '!', "body of %zu bytes, want %zu", got, n + 2);
			for (size_t i = 0; got == n + 2 && i < got - 1; i++) {
				if (b[i] == '<')
					continue;
				if (b[i] != want[o++]) {
					CHECK(0, "byte %zu differs", i);
					break;
				}
			}
			CHECK(o == n, "%zu body bytes matched, want %zu", o, n);
		}
		event_free(g_filt_ev);
		evbuffer_free(t.body);
		free(in);
		free(want);
	}
	END_CASE();

	BEGIN_CASE("a close-delimited body ends at the close");
	{
		static const char r[] = "HTTP/1.1 500 Broken\r\n\r\nsome text";
		origin_answer(r, sizeof r - 1);
		run(base, w, &snap, g_port, &t, 0);
		CHECK(t.status == 500, "status %d", t.status);
		CHECK(body_is(&t, "some text", 9), "body of %zu bytes", evbuffer_get_length(t.body));
		CHECK(t.ended && !t.errored, "ended %d errored %d (%s)", t.ended, t.errored, t.reason);
		evbuffer_free(t.body);
	}
	END_CASE();

	BEGIN_CASE("a Content-Length body cut by the close");
	{
		static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
		origin_answer(r, sizeof r - 1);
		run(base, w, &snap, g_port, &t, 0);
		CHECK(t.status == 200, "status %d", t.status);
		CHECK(t.errored && strcmp(t.reason, "cut") == 0 && !t.ended, "errored %d (%s)", t.errored, t.reason);
		evbuffer_free(t.body);
	}
	END_CASE();

	BEGIN_CASE("the origin closes without answering: on_error 502");
	{
		origin_answer(NULL, 0);
		run(base, w, &snap, g_port, &t, 0);
		CHECK(t.errored && t.err_status == 502, "errored %d status %d", t.errored, t.err_status);
		CHECK(strcmp(t.reason, "upstream closed the connection before answering") == 0, "reason %s", t.reason);
		CHECK(t.status == 0 && !t.ended, "status %d ended %d", t.status, t.ended);
		evbuffer_free(t.body);
	}
	END_CASE();

	BEGIN_CASE("a dead port: on_error 502, cannot connect");
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in d = { .sin_family = AF_INET };
		socklen_t dl = sizeof d;
		d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(fd, (struct sockaddr *)&d, dl);
		getsockname(fd, (struct sockaddr *)&d, &dl);
		close(fd);   /* bound, never listened: refused */
		run(base, w, &snap, ntohs(d.sin_port), &t, 0);
		CHECK(t.errored && t.err_status == 502, "errored %d status %d", t.errored, t.err_status);
		CHECK(strncmp(t.reason, "cannot connect: ", 16) == 0, "reason %s", t.reason);
		evbuffer_free(t.body);
	}
	END_CASE();

	shutdown(g_lfd, SHUT_RDWR);
	close(g_lfd);
	pthread_join(th, NULL);
	origin_answer(NULL, 0);
	gw_upstream_loop_free(w);
	event_base_free(base);
	free(cf);
	return check_done();
}
