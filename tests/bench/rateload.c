/*
 * rateload: open-loop fixed-rate HTTP/1.1 load generator with latency
 * percentiles (what wrk2 does; wrk2 is not packaged in Debian).
 *
 *   rateload -p PORT -r RATE -d SECONDS [-c CONNS] [-u PATH] [-H HOST] [-a]
 *
 * Request i is *scheduled* at t0 + i/RATE.  It is sent on the first idle
 * keep-alive connection at or after that time; its latency is measured from
 * the scheduled time to the last byte of the response, so a stalled server
 * is charged for the requests queued behind it (no coordinated omission).
 * -a sends the absolute-form target http://HOST/PATH (forward proxies).
 * Responses must carry Content-Length.  Prints one line:
 *   sent=N ok=N err=N rate=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
 *   idle_closed=N unanswered=N
 * idle_closed: keep-alive connections the server closed while idle;
 * unanswered: errors where the connection closed before any response byte
 * (a client would retry those: RFC 9112 9.3.1).
 * The first second is warm-up and not recorded.
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

struct cn {
	int fd;
	int busy;
	double sched;   /* scheduled time of the in-flight request */
	int in;
	char buf[8192];
	long need;      /* body bytes still expected, -1 = head not complete */
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int port, ep;
static char req[1024];
static int reqlen;

static int dial(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	if (connect(s, (void *)&a, sizeof a)) {
		close(s);
		return -1;
	}
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(s, F_SETFL, O_NONBLOCK);
	return s;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	double rate = 1000, dur = 10;
	int nc = 50, absf = 0, o;
	const char *path = "/", *host = "bench.test";
	while ((o = getopt(argc, argv, "p:r:d:c:u:H:a")) != -1) {
		switch (o) {
		case 'p': port = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'c': nc = atoi(optarg); break;
		case 'u': path = optarg; break;
		case 'H': host = optarg; break;
		case 'a': absf = 1; break;
		default: return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (absf)
		reqlen = snprintf(req, sizeof req, "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n", host, path, host);
	else
		reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
	ep = epoll_create1(0);
	struct cn *c = calloc(nc, sizeof *c);
	for (int i = 0; i < nc; i++) {
		c[i].fd = dial();
		if (c[i].fd < 0) {
			perror("connect");
			return 1;
		}
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e);
	}
	long total = (long)(rate * dur), warm = (long)rate, sent = 0, ok = 0, err = 0, nl = 0, idle_closed = 0, unanswered = 0;
	double *lat = malloc(sizeof(double) * (total + 1));
	double t0 = now() + 0.01;
	int *idle = malloc(sizeof(int) * nc), nidle = nc;
	for (int i = 0; i < nc; i++)
		idle[i] = i;
	long done = 0;
	double hard_end = t0 + dur + 10;
	while (done < total && now() < hard_end) {
		double t = now();
		/* send every request whose time has come, while connections are idle */
		while (sent < total && t0 + sent / rate <= t && nidle > 0) {
			int i = idle[--nidle];
			if (c[i].fd < 0) {
				c[i].fd = dial();
				if (c[i].fd < 0) {
					err++; done++; sent++;
					idle[nidle++] = i;
					continue;
				}
				struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
				epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e);
			}
			c[i].sched = t0 + sent / rate;
			c[i].busy = 1;
			c[i].in = 0;
			c[i].need = -1;
			sent++;
			if (write(c[i].fd, req, reqlen) != reqlen) {
				close(c[i].fd);
				c[i].fd = -1;
				c[i].busy = 0;
				err++; done++;
				idle[nidle++] = i;
			}
		}
		/* sleep until the next scheduled send with ns precision (epoll_pwait2):
		 * a ms timeout would either spin or send late */
		double next = sent < total && nidle > 0 ? t0 + sent / rate : now() + 0.05;
		double wait = next - now();
		if (wait < 0)
			wait = 0;
		struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
		struct epoll_event ev[256];
		int n = epoll_pwait2(ep, ev, 256, &ts, NULL);
		for (int k = 0; k < n; k++) {
			struct cn *x = &c[ev[k].data.u32];
			int fail = 0, fin = 0;
			for (;;) {
				ssize_t r = read(x->fd, x->buf + x->in, sizeof x->buf - 1 - x->in);
				if (r <= 0) {
					if (r < 0 && errno == EAGAIN)
						break;
					fail = 1;
					break;
				}
				if (x->need < 0) {
					x->in += r;
					x->buf[x->in] = 0;
					char *e = strstr(x->buf, "\r\n\r\n");
					if (!e) {
						if (x->in == (int)sizeof x->buf - 1) { fail = 1; break; }
						continue;
					}
					char *cl = strcasestr(x->buf, "\r\nContent-Length:");
					if (!cl || cl > e || strncmp(x->buf + 9, "200", 3)) { fail = 1; break; }
					cl += 2;
					x->need = atol(cl + 15) - (x->in - (e + 4 - x->buf));
					x->in = 0;
				} else {
					x->need -= r;
				}
				if (x->need == 0) { fin = 1; break; }
				if (x->need < 0) { fail = 1; break; }
			}
			if (!x->busy)
				fail = 1;
			if (fin) {
				double l = now() - x->sched;
				ok++; done++;
				if (x->sched >= t0 + warm / rate)
					lat[nl++] = l;
				x->busy = 0;
				idle[nidle++] = ev[k].data.u32;
			} else if (fail) {
				epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
				close(x->fd);
				x->fd = -1;
				if (x->busy) {
					if (x->need < 0 && x->in == 0)
						unanswered++;   /* closed before any response byte */
					err++; done++;
					x->busy = 0;
					idle[nidle++] = ev[k].data.u32;
				} else {
					/* closed while idle (it is in idle[] already): redialled
					 * when next used */
					idle_closed++;
				}
			}
		}
	}
	qsort(lat, nl, sizeof(double), cmpd);
#define P(q) (nl ? lat[(long)((nl - 1) * (q))] * 1e6 : 0)
	printf("sent=%ld ok=%ld err=%ld rate=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
	    "idle_closed=%ld unanswered=%ld\n", sent, ok, err + (total - done), rate, P(0.5), P(0.9), P(0.99),
	    P(0.999), nl ? lat[nl - 1] * 1e6 : 0, idle_closed, unanswered);
	return 0;
}
