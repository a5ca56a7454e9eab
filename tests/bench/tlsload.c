/*
 * tlsload: full TLS handshakes per second (no session resumption).
 *
 *   tlsload -p PORT -d SECONDS [-c CONNS] [-1]
 *
 * CONNS concurrent loops of: connect, a full handshake with a fresh SSL and
 * no session to offer (no ticket, no PSK: the server must sign), send
 * "GET / HTTP/1.1" with "Connection: close", read the answer to EOF, close.
 * wrk cannot do this: it resumes the previous connection's session.
 * -1: TLS 1.2 only (default: TLS 1.3).  The certificate is not verified
 * (the cost measured is the server's).
 * Output: one line "conns=.. ok=.. err=.. rate=../s".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, HANDSHAKE, SENDING, READING };

struct cn {
	int fd, st, sent;
	SSL *ssl;
};

static const char req[] = "GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n";
static SSL_CTX *ctx;
static int port, ep;
static long ok, err;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void watch(struct cn *c, unsigned ev, int op)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	epoll_ctl(ep, op, c->fd, &e);
}

static void start(struct cn *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->st = CONNECTING;
	c->sent = 0;
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, "bench.test");
	SSL_set_connect_state(c->ssl);
	if (connect(c->fd, (void *)&a, sizeof a) && errno != EINPROGRESS) {
		perror("connect");
		exit(1);
	}
	watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void finish(struct cn *c, int good)
{
	if (good)
		ok++;
	else
		err++;
	SSL_free(c->ssl);
	close(c->fd);
	start(c);
}

/* Drive one connection as far as it goes; returns when it must wait. */
static void step(struct cn *c)
{
	char buf[4096];
	int r;

	for (;;) {
		ERR_clear_error();
		switch (c->st) {
		case CONNECTING:
			c->st = HANDSHAKE;
			continue;
		case HANDSHAKE:
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				c->st = SENDING;
				continue;
			}
			break;
		case SENDING:
			r = SSL_write(c->ssl, req + c->sent, (int)sizeof req - 1 - c->sent);
			if (r > 0) {
				c->sent += r;
				if (c->sent == (int)sizeof req - 1)
					c->st = READING;
				continue;
			}
			break;
		default:
			r = SSL_read(c->ssl, buf, sizeof buf);
			if (r > 0)
				continue;
			if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ||
			    (SSL_get_error(c->ssl, r) == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
				finish(c, 1);      /* EOF after the answer */
				return;
			}
			break;
		}
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			watch(c, EPOLLIN, EPOLL_CTL_MOD);
			return;
		case SSL_ERROR_WANT_WRITE:
			watch(c, EPOLLOUT, EPOLL_CTL_MOD);
			return;
		default:
			finish(c, 0);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	int conns = 50, secs = 5, tls12 = 0, opt;
	struct epoll_event evs[256];
	struct cn *cs;
	double t0, end;

	while ((opt = getopt(argc, argv, "p:d:c:1")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'd': secs = atoi(optarg); break;
		case 'c': conns = atoi(optarg); break;
		case '1': tls12 = 1; break;
		default:
			fprintf(stderr, "usage: tlsload -p PORT -d SECONDS [-c CONNS] [-1]\n");
			return 2;
		}
	}
	if (port <= 0) {
		fprintf(stderr, "usage: tlsload -p PORT -d SECONDS [-c CONNS] [-1]\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_min_proto_version(ctx, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	ep = epoll_create1(0);
	cs = calloc((size_t)conns, sizeof *cs);
	for (int i = 0; i < conns; i++)
		start(&cs[i]);
	t0 = now();
	end = t0 + secs;
	while (now() < end) {
		int n = epoll_wait(ep, evs, 256, 100);

		for (int i = 0; i < n; i++)
			step(evs[i].data.ptr);
	}
	printf("conns=%d ok=%ld err=%ld rate=%.1f/s\n", conns, ok, err, ok / (now() - t0));
	return 0;
}
