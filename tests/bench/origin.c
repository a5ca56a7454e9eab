/*
 * origin: a tiny single-threaded epoll HTTP/1.1 origin for benchmarks.
 *
 *   origin HTTP_PORT [SINK_PORT]
 *
 * HTTP_PORT (127.0.0.1): keep-alive, pipelining-safe, GET/HEAD only, no
 * request bodies.  "/1m" (any path containing "1m") answers 1 MiB, anything
 * else a 100-byte body.  "Connection: close" in the request is honoured.
 * The 1 MiB body lives in one static buffer and is written with writev
 * (head + body) continuing on EPOLLOUT, so the origin does no copying.
 *
 * SINK_PORT (optional, 127.0.0.1): raw TCP for CONNECT benches.  The first
 * byte received selects the mode: 'S' = source (the origin sends bytes
 * forever until the peer closes), anything else = discard everything.
 *
 * Not part of the test suite; built by tests/bench/run.sh.
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
#include <sys/uio.h>
#include <unistd.h>

#define BIG (1 << 20)
#define SMALL 100
#define INBUF 16384
#define MAXFD 200000

enum { T_HTTP = 1, T_SINK, T_LISTEN_HTTP, T_LISTEN_SINK };

struct c {
	int type;
	int in;             /* bytes in buf */
	int close_after;    /* close once output drained */
	int source;         /* sink port: source mode */
	const char *out;    /* pending output: head part then body */
	size_t outlen;
	const char *out2;
	size_t out2len;
	char head[256];
	char buf[INBUF];
};

static struct c *conns[MAXFD];
static char *bigbody, *smallbody, *blast;
static int ep;

static int listen_on(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (void *)&a, sizeof a) || listen(s, 4096)) {
		perror("bind/listen");
		exit(1);
	}
	return s;
}

static void drop(int fd)
{
	free(conns[fd]);
	conns[fd] = NULL;
	close(fd);
}

static void arm(int fd, unsigned ev)
{
	struct epoll_event e = { .events = ev, .data.fd = fd };
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

/* returns -1 if the connection was dropped, 1 if output still pending */
static int flush(int fd, struct c *c)
{
	while (c->outlen || c->out2len) {
		struct iovec v[2] = { { (void *)c->out, c->outlen }, { (void *)c->out2, c->out2len } };
		ssize_t n = writev(fd, c->outlen ? v : v + 1, c->outlen ? 2 : 1);
		if (n < 0) {
			if (errno == EAGAIN) {
				arm(fd, EPOLLIN | EPOLLOUT);
				return 1;
			}
			drop(fd);
			return -1;
		}
		size_t k = n;
		if (k >= c->outlen) {
			k -= c->outlen;
			c->outlen = 0;
			c->out2 += k;
			c->out2len -= k;
		} else {
			c->out += k;
			c->outlen -= k;
		}
	}
	if (c->close_after) {
		drop(fd);
		return -1;
	}
	arm(fd, EPOLLIN);
	return 0;
}

static void http_io(int fd, struct c *c, unsigned ev)
{
	if ((ev & EPOLLOUT) && (c->outlen || c->out2len)) {
		if (flush(fd, c))
			return;
	}
	for (;;) {
		/* serve complete heads already buffered */
		while (!c->outlen && !c->out2len) {
			char *e = memmem(c->buf, c->in, "\r\n\r\n", 4);
			if (!e)
				break;
			size_t hl = e + 4 - c->buf;
			char *sp = memchr(c->buf, ' ', hl);
			char *sp2 = sp ? memchr(sp + 1, ' ', hl - (sp + 1 - c->buf)) : NULL;
			int big = sp && sp2 && memmem(sp, sp2 - sp, "1m", 2) != NULL;
			int head_only = c->buf[0] == 'H';
			int cl = memmem(c->buf, hl, "onnection: close", 16) != NULL ||
			         memmem(c->buf, hl, "onnection: Close", 16) != NULL;
			size_t blen = big ? BIG : SMALL;
			int n = snprintf(c->head, sizeof c->head,
			    "HTTP/1.1 200 OK\r\nServer: o\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %zu\r\n%s\r\n", blen, cl ? "Connection: close\r\n" : "");
			c->out = c->head;
			c->outlen = n;
			c->out2 = big ? bigbody : smallbody;
			c->out2len = head_only ? 0 : blen;
			c->close_after = cl;
			memmove(c->buf, c->buf + hl, c->in - hl);
			c->in -= hl;
			if (flush(fd, c))
				return;
		}
		if (c->outlen || c->out2len)
			return;
		if (c->in == INBUF) {   /* head too large */
			drop(fd);
			return;
		}
		ssize_t n = read(fd, c->buf + c->in, INBUF - c->in);
		if (n > 0) {
			c->in += n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		drop(fd);
		return;
	}
}

static void sink_io(int fd, struct c *c, unsigned ev)
{
	static char junk[262144];
	if (!c->source) {
		for (;;) {
			ssize_t n = read(fd, junk, sizeof junk);
			if (n > 0) {
				if (c->in == 0 && junk[0] == 'S') {
					c->source = 1;
					break;
				}
				c->in = 1;
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				return;
			drop(fd);
			return;
		}
		arm(fd, EPOLLIN | EPOLLOUT);
	}
	(void)ev;
	for (;;) {
		ssize_t n = write(fd, blast, 262144);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			drop(fd);
			return;
		}
	}
	/* source mode: also notice the peer closing */
	for (;;) {
		ssize_t n = read(fd, junk, sizeof junk);
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			drop(fd);
			return;
		}
		if (n < 0)
			break;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: origin HTTP_PORT [SINK_PORT]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	bigbody = malloc(BIG);
	memset(bigbody, 'b', BIG);
	smallbody = malloc(SMALL);
	memset(smallbody, 's', SMALL);
	blast = malloc(262144);
	memset(blast, 'x', 262144);
	ep = epoll_create1(0);
	int lh = listen_on(atoi(argv[1])), ls = argc > 2 ? listen_on(atoi(argv[2])) : -1;
	struct epoll_event e = { .events = EPOLLIN, .data.fd = lh };
	epoll_ctl(ep, EPOLL_CTL_ADD, lh, &e);
	if (ls >= 0) {
		e.data.fd = ls;
		epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
	}
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lh || fd == ls) {
				for (;;) {
					int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
					if (c < 0)
						break;
					if (c >= MAXFD) {
						close(c);
						continue;
					}
					int one = 1;
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					conns[c] = calloc(1, sizeof(struct c));
					conns[c]->type = fd == lh ? T_HTTP : T_SINK;
					struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
				continue;
			}
			struct c *c = conns[fd];
			if (!c)
				continue;
			if (c->type == T_HTTP)
				http_io(fd, c, evs[i].events);
			else
				sink_io(fd, c, evs[i].events);
		}
	}
}
