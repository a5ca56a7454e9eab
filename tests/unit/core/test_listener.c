/*
 * tests/unit/core/test_listener.c: the seams of core/control and
 * core/listener without a running gateway.  Registered sides become stats
 * families in order, with the names JSON and /metrics print; the socket
 * registry hands an unchanged address the very sockets of the last
 * generation, opens one socket per worker for a new one, and when a build
 * fails closes only what that build opened; /healthz's listening check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check.h"
#include "conf/conf.h"
#include "core/control.h"
#include "core/listener.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/stats.h"

#define NW 2

static struct conf_listener cur[4];
static size_t ncur;

static const struct conf_listener *fake_listeners(const struct conf *cf, size_t *n)
{
	(void)cf;
	*n = ncur;
	return cur;
}

static struct gw_proto p_one = { .name = "one", .family = -1 };
static struct gw_proto p_two = { .name = "two", .family = -1 };
static const struct gw_side side_one = { .proto = &p_one, .short_name = "o", .listeners = fake_listeners };
static const struct gw_side side_two = { .proto = &p_two, .short_name = "t", .listeners = fake_listeners };

/* A loopback port nobody listens on (bound and released). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void set_addr(struct conf_listener *cl, void *arena, int port)
{
	char text[64];

	snprintf(text, sizeof text, "127.0.0.1:%d", port);
	memset(cl, 0, sizeof *cl);
	if (conf_parse_addr(text, 0, &cl->addr, arena) != NULL)
		abort();
	cl->src.file = "test.conf";
	cl->src.line = 7;
}

static struct gw_snapshot *snap_new(void)
{
	struct gw_snapshot *s = calloc(1, sizeof *s);

	s->nsides = 1;
	s->sides[0] = &side_two;
	return s;
}

static void snap_free(struct gw_snapshot *s)
{
	free(s->listeners);
	free(s);
}

static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static int is_listening(int fd, int port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int acc = 0;
	socklen_t alen = sizeof acc;

	return getsockname(fd, (struct sockaddr *)&a, &len) == 0 && ntohs(a.sin_port) == port &&
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == 0 && acc == 1;
}

int main(void)
{
	void *arena = conf_arena_new();
	struct conf_errors errs;
	int port1 = free_port(), port2 = free_port(), port3 = free_port();
	struct gw_snapshot *s1, *s2, *s3, *s4;
	int blocker;

	BEGIN_CASE("sides become stats families in order");
	CHECK(gw_stats_nfamilies() == 0, "%d families before any side", gw_stats_nfamilies());
	CHECK(gw_control_add_side(&side_one) == 0 && gw_control_add_side(&side_two) == 0, "add");
	CHECK(p_one.family == 0 && p_two.family == 1, "families %d %d", p_one.family, p_two.family);
	CHECK(gw_stats_nfamilies() == 2, "%d families", gw_stats_nfamilies());
	CHECK(strcmp(gw_stats_family_name(0), "one") == 0 && strcmp(gw_stats_family_name(1), "two") == 0,
	    "names %s %s", gw_stats_family_name(0), gw_stats_family_name(1));
	CHECK(strcmp(gw_stats_family_short(1), "t") == 0, "short %s", gw_stats_family_short(1));
	for (int i = 2; i < GW_MAX_FAMILIES; i++)
		CHECK(gw_stats_add_family("more", "m") == i, "family %d", i);
	CHECK(gw_control_add_side(&side_one) == -1, "a side past GW_MAX_FAMILIES is refused");
	CHECK(gw_stats_nfamilies() == GW_MAX_FAMILIES, "%d families", gw_stats_nfamilies());
	END_CASE();

	BEGIN_CASE("stats sum: every family's row, every worker");
	{
		struct gw_stats_shard *sh[NW];
		struct gw_stats_snapshot st;
		for (int w = 0; w < NW; w++) {
			sh[w] = aligned_alloc(64, (sizeof **sh + 63) & ~(size_t)63);
			memset(sh[w], 0, sizeof **sh);
			gw_stat_add(&sh[w]->fam[GW_MAX_FAMILIES - 1][GW_FC_REQUESTS], 5);
			gw_stat_add(&sh[w]->conns_active[1], 2);
		}
		gw_stats_sum(sh, NW, &st);
		CHECK(st.fam[GW_MAX_FAMILIES - 1][GW_FC_REQUESTS] == 10 && st.fam[0][GW_FC_REQUESTS] == 0, "requests");
		CHECK(st.conns_active_fam[1] == 4 && st.conns_active == 4, "active %llu",
		    (unsigned long long)st.conns_active);
		for (int w = 0; w < NW; w++)
			free(sh[w]);
	}
	END_CASE();

	BEGIN_CASE("a new address: one listening socket per worker");
	conf_errors_init(&errs);
	ncur = 1;
	set_addr(&cur[0], arena, port1);
	s1 = snap_new();
	CHECK(port1 > 0 && port2 > 0 && port3 > 0, "ports");
	CHECK(gw_listener_build(s1, NW, &errs) == 0 && errs.n == 0, "build: %zu errors", errs.n);
	CHECK(s1->nlisteners == 1 && s1->listeners[0].proto == &p_two && s1->listeners[0].side == 0, "spec");
	CHECK(s1->listeners[0].fds[0] != s1->listeners[0].fds[1], "a socket per worker");
	for (int w = 0; w < NW; w++)
		CHECK(is_listening(s1->listeners[0].fds[w], port1), "worker %d's socket listens", w);
	gw_listener_commit(s1);
	END_CASE();

	BEGIN_CASE("a reload keeps an unchanged address's sockets and adds the new");
	ncur = 2;
	set_addr(&cur[1], arena, port2);
	s2 = snap_new();
	CHECK(gw_listener_build(s2, NW, &errs) == 0 && errs.n == 0, "build: %zu errors", errs.n);
	CHECK(s2->nlisteners == 2, "%zu listeners", s2->nlisteners);
	CHECK(memcmp(s2->listeners[0].fds, s1->listeners[0].fds, sizeof(int) * NW) == 0, "same sockets");
	for (int w = 0; w < NW; w++)
		CHECK(is_listening(s2->listeners[1].fds[w], port2), "new socket %d listens", w);
	gw_listener_commit(s2);
	END_CASE();

	BEGIN_CASE("a failed build closes only the sockets it opened");
	blocker = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port3),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		CHECK(bind(blocker, (struct sockaddr *)&a, sizeof a) == 0 && listen(blocker, 1) == 0, "blocker");
	}
	/* the serving two, a new address that opens fine, one whose port is taken */
	ncur = 3;
	set_addr(&cur[1], arena, free_port());
	set_addr(&cur[2], arena, port3);
	s3 = snap_new();
	CHECK(gw_listener_build(s3, NW, &errs) == -1, "build fails");
	CHECK(s3->nlisteners == 0, "no listeners left");
	CHECK(errs.n == 1 && strstr(errs.msgs[0], "test.conf:7: listeners: cannot listen on 127.0.0.1:") != NULL,
	    "error: %s", errs.n ? errs.msgs[0] : "(none)");
	for (int w = 0; w < NW; w++) {
		CHECK(is_open(s2->listeners[0].fds[w]) && is_open(s2->listeners[1].fds[w]),
		    "the serving generation's sockets stay open");
		CHECK(!is_open(s3->listeners[1].fds[w]), "the build's new socket %d is closed", w);
	}
	close(blocker);
	END_CASE();

	BEGIN_CASE("after the failure the registry still serves the old sockets");
	ncur = 2;
	set_addr(&cur[0], arena, port1);
	set_addr(&cur[1], arena, port2);
	s4 = snap_new();
	CHECK(gw_listener_build(s4, NW, &errs) == 0, "build");
	CHECK(memcmp(s4->listeners[0].fds, s2->listeners[0].fds, sizeof(int) * NW) == 0 &&
	    memcmp(s4->listeners[1].fds, s2->listeners[1].fds, sizeof(int) * NW) == 0, "same sockets");
	END_CASE();

	BEGIN_CASE("/healthz's check: every socket listening, else the first that is not");
	{
		char why[200] = "";
		struct gw_lspec keep = s4->listeners[1];
		int plain = socket(AF_INET, SOCK_STREAM, 0);   /* open, never listening */
		CHECK(gw_listener_accepting(s4, NW, why, sizeof why) == 1, "all listen");
		s4->listeners[1].fds[1] = plain;
		CHECK(gw_listener_accepting(s4, NW, why, sizeof why) == 0, "one does not");
		CHECK(strstr(why, "listener 127.0.0.1:") != NULL && strstr(why, "(worker 1) is not accepting") != NULL,
		    "why: %s", why);
		s4->listeners[1].fds[1] = -1;
		CHECK(gw_listener_accepting(s4, NW, why, sizeof why) == 0, "a closed one neither");
		s4->listeners[1] = keep;
		close(plain);
	}
	END_CASE();

	for (size_t i = 0; i < s2->nlisteners; i++)
		for (int w = 0; w < NW; w++)
			close(s2->listeners[i].fds[w]);
	snap_free(s1);
	snap_free(s2);
	snap_free(s3);
	snap_free(s4);
	gw_listener_free();
	conf_errors_free(&errs);
	conf_arena_free(arena);
	return check_done();
}
