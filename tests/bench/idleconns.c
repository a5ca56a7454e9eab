/*
 * idleconns: hold N idle keep-alive client connections to a server.
 *
 *   idleconns -p PORT -n N [-H HOST] [-u PATH] [-a]
 *
 * Opens N connections (at most 256 handshakes in flight), sends one GET on
 * each and reads its complete response (Content-Length), then leaves every
 * connection open and idle.  Prints "READY ok=N err=N" on stdout and keeps
 * the connections until stdin reaches EOF (or 300 s pass).  Raise
 * `ulimit -n` first.  -a: absolute-form target (forward proxy).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cn {
	int fd, st, in;
	long need;
	char buf[2048];
};

int main(int argc, char **argv)
{
	int port = 0, n = 10000, o, absf = 0;
	const char *host = "bench.test", *path = "/";
	while ((o = getopt(argc, argv, "p:n:H:u:a")) != -1) {
		switch (o) {
		case 'p': port = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'u': path = optarg; break;
		case 'a': absf = 1; break;
		default: return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	char req[512];
	int reqlen = absf ? snprintf(req, sizeof req, "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n", host, path, host)
	                  : snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
	struct cn *c = calloc(n, sizeof *c);
	int ep = epoll_create1(0), next = 0, inflight = 0, ok = 0, err = 0;
	time_t deadline = time(NULL) + 120;
	while ((ok + err < n) && time(NULL) < deadline) {
		while (next < n && inflight < 256) {
			struct cn *x = &c[next];
			x->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (x->fd < 0) {
				perror("socket");
				err++;
				next++;
				continue;
			}
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
			                         .sin_addr.s_addr = htonl(0x7f000001) };
			if (connect(x->fd, (void *)&a, sizeof a) && errno != EINPROGRESS) {
				close(x->fd);
				err++;
				next++;
				continue;
			}
			x->need = -1;
			struct epoll_event e = { .events = EPOLLOUT, .data.u32 = next };
			epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &e);
			next++;
			inflight++;
		}
		struct epoll_event ev[256];
		int k = epoll_wait(ep, ev, 256, 1000);
		for (int j = 0; j < k; j++) {
			struct cn *x = &c[ev[j].data.u32];
			int done = 0, bad = 0;
			if (x->st == 0) {
				if (write(x->fd, req, reqlen) != reqlen) {
					bad = 1;
				} else {
					x->st = 1;
					struct epoll_event e = { .events = EPOLLIN, .data.u32 = ev[j].data.u32 };
					epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
				}
			} else {
				ssize_t r = read(x->fd, x->buf + x->in, sizeof x->buf - 1 - x->in);
				if (r <= 0) {
					if (!(r < 0 && errno == EAGAIN))
						bad = 1;
				} else if (x->need < 0) {
					x->in += r;
					x->buf[x->in] = 0;
					char *e = strstr(x->buf, "\r\n\r\n");
					if (e) {
						char *cl = strcasestr(x->buf, "Content-Length:");
						if (!cl || cl > e)
							bad = 1;
						else
							x->need = atol(cl + 15) - (x->in - (e + 4 - x->buf));
					} else if (x->in >= (int)sizeof x->buf - 1) {
						bad = 1;
					}
				} else {
					x->need -= r;
				}
				if (!bad && x->need == 0)
					done = 1;
			}
			if (bad) {
				epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
				close(x->fd);
				x->fd = -1;
				err++;
				inflight--;
			} else if (done) {
				epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
				ok++;
				inflight--;
			}
		}
	}
	printf("READY ok=%d err=%d\n", ok, err);
	fflush(stdout);
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char b[64];
	time_t stop = time(NULL) + 300;
	while (time(NULL) < stop) {
		if (poll(&p, 1, 1000) > 0 && read(0, b, sizeof b) <= 0)
			break;
	}
	return 0;
}
