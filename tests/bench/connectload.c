/*
 * connectload: CONNECT tunnel benchmark.
 *
 *   connectload -p PROXY_PORT -t TARGET_PORT -m setup|bulk -d SECONDS [-c CONNS] [-D]
 *
 * setup: CONNS concurrent loops of: connect to the proxy, send
 *        "CONNECT 127.0.0.1:TARGET HTTP/1.1", read the 2xx head, close.
 *        Prints tunnels/s.
 * bulk:  CONNS tunnels; after the 2xx the client sends "S" so the origin
 *        sink (tests/bench/origin.c SINK_PORT) streams bytes, which are read
 *        and discarded for SECONDS.  Prints MB/s (1 MB = 1e6 bytes).
 * -D:    direct: connect to TARGET_PORT with no proxy and no CONNECT
 *        (the baseline).
 * Output: one line "mode=.. conns=.. ok=.. err=.. rate=../s MBps=..".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, HEAD, STREAM };

struct cn {
	int fd, st, in;
	char buf[1024];
};

static int pport, tport, direct, bulk, ep;
static char req[256];
static int reqlen;
static long ok, err;
static unsigned long long bytes;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void start(struct cn *c, int idx)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(direct ? tport : pport),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	c->in = 0;
	c->st = CONNECTING;
	if (connect(c->fd, (void *)&a, sizeof a) && errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		err++;
		return;
	}
	struct epoll_event e = { .events = EPOLLOUT, .data.u32 = idx };
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void finish(struct cn *c, int good)
{
	if (good)
		ok++;
	else
		err++;
	close(c->fd);
	c->fd = -1;
}

static void tunnel_up(struct cn *c, int idx)
{
	if (!bulk) {
		finish(c, 1);
		return;
	}
	if (write(c->fd, "S", 1) != 1) {
		finish(c, 0);
		return;
	}
	c->st = STREAM;
	struct epoll_event e = { .events = EPOLLIN, .data.u32 = idx };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

int main(int argc, char **argv)
{
	int nc = 16, o;
	double dur = 5;
	while ((o = getopt(argc, argv, "p:t:m:d:c:D")) != -1) {
		switch (o) {
		case 'p': pport = atoi(optarg); break;
		case 't': tport = atoi(optarg); break;
		case 'm': bulk = !strcmp(optarg, "bulk"); break;
		case 'd': dur = atof(optarg); break;
		case 'c': nc = atoi(optarg); break;
		case 'D': direct = 1; break;
		default: return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	reqlen = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	                  tport, tport);
	ep = epoll_create1(0);
	struct cn *c = calloc(nc, sizeof *c);
	static char junk[262144];
	double t0 = now(), end = t0 + dur;
	for (int i = 0; i < nc; i++)
		start(&c[i], i);
	while (now() < end) {
		struct epoll_event ev[256];
		int n = epoll_wait(ep, ev, 256, 100);
		for (int k = 0; k < n; k++) {
			int i = ev[k].data.u32;
			struct cn *x = &c[i];
			if (x->fd < 0)
				continue;
			if (x->st == CONNECTING) {
				int e = 0;
				socklen_t l = sizeof e;
				getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &e, &l);
				if (e) {
					finish(x, 0);
				} else if (direct) {
					tunnel_up(x, i);
				} else {
					if (write(x->fd, req, reqlen) != reqlen) {
						finish(x, 0);
					} else {
						x->st = HEAD;
						struct epoll_event ee = { .events = EPOLLIN, .data.u32 = i };
						epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ee);
					}
				}
			} else if (x->st == HEAD) {
				ssize_t r = read(x->fd, x->buf + x->in, sizeof x->buf - 1 - x->in);
				if (r <= 0) {
					if (r < 0 && errno == EAGAIN)
						continue;
					finish(x, 0);
				} else {
					x->in += r;
					x->buf[x->in] = 0;
					if (strstr(x->buf, "\r\n\r\n")) {
						if (!strncmp(x->buf, "HTTP/1.", 7) && x->buf[9] == '2')
							tunnel_up(x, i);
						else
							finish(x, 0);
					} else if (x->in >= (int)sizeof x->buf - 1) {
						finish(x, 0);
					}
				}
			} else {
				for (;;) {
					ssize_t r = read(x->fd, junk, sizeof junk);
					if (r > 0) {
						bytes += r;
						continue;
					}
					if (r < 0 && errno == EAGAIN)
						break;
					finish(x, 0);
					break;
				}
			}
			if (x->fd < 0 && now() < end)
				start(x, i);
		}
	}
	double el = now() - t0;
	if (bulk)
		for (int i = 0; i < nc; i++)
			if (c[i].fd >= 0)
				finish(&c[i], 1);
	printf("mode=%s conns=%d ok=%ld err=%ld rate=%.0f/s MBps=%.1f\n", bulk ? "bulk" : "setup", nc,
	       ok, err, ok / el, bytes / el / 1e6);
	return 0;
}
