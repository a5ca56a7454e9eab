/*
 * inspectload: new inspected connections (or keep-alive requests) per second
 * through a forward proxy.
 *
 *   inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N] [-k REQS]
 *
 * CONNS connections, PARALLEL of them open at a time; each connection: TCP
 * connect to 127.0.0.1:PROXYPORT, "CONNECT HOST:PORT", wait for the 200, a
 * full TLS handshake (a fresh SSL, no session offered, SNI = HOST unless HOST
 * is an address literal) verifying the proxy's minted leaf against CAFILE, one
 * small "GET /" with Connection: close read to EOF, close.  -N: check the
 * chain only, not the name (Squid mints a leaf for an address literal without
 * an iPAddress SAN; the client-side check costs the proxy nothing either way).
 * -k REQS (keep-alive mode): each connection carries REQS GETs over its one TLS
 * session instead, one at a time (no pipelining: the next request is written
 * once the previous response was read in full, by its Content-Length or its
 * chunked framing); every response must be a 200 and keep the connection.
 * Output: "conns=.. ok=.. err=.. secs=.. rate=../s": without -k ok/err count
 * connections, with -k requests (answered 200 in full, or not: a refused
 * CONNECT or failed handshake counts all REQS of its connection as failed,
 * never as requests; a connection that ends early fails the rest of its
 * REQS), plus "conn_err=" (connections that failed before their first GET).
 *
 * Cheap on purpose, so that the CPU it shares with the origin is not what
 * limits the proxy under test: one thread and one epoll loop (no thread per
 * connection, no context switch per response), every buffer inside the
 * connection's slot (nothing allocated per request or per connection apart
 * from OpenSSL's SSL), one SSL_CTX, TLS 1.3 with AES-128-GCM offered first.
 * The leaf's chain and name are verified in full the first time a leaf is
 * seen; a later leaf byte-for-byte equal to one that passed (SHA-256 over its
 * DER, same HOST for the whole run) is accepted without re-verifying the
 * chain.  The handshake itself stays full either way: a fresh key exchange,
 * and the proxy's CertificateVerify signature still checked by OpenSSL.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx;
static const char *host = "127.0.0.1";
static int pport, oport, epfd;
static long total = 1000;
static int noname, host_is_ip;
static long kreqs;		/* -k: GETs per connection; 0 = one with Connection: close */
static long started, ok, err, conn_err, reported;
static struct sockaddr_in proxy_sa;
static char connect_req[512], get_req[512];
static int connect_len, get_len;

/* Leaves already verified in full for HOST (successes only). */
static unsigned char seen[16][32];
static int nseen;

enum st { ST_TCP, ST_HEAD, ST_HS, ST_REQ, ST_RESP, ST_EOF };
enum ph { PH_HEAD, PH_BODY, PH_CSIZE, PH_CDATA, PH_CEND, PH_TRAIL };

struct conn {
	int fd;
	unsigned want;		/* epoll events registered */
	enum st st;
	enum ph ph;
	SSL *ssl;
	long done;		/* requests answered on this connection */
	long left;		/* body or chunk bytes still to skip */
	int status, chunked, closing;
	long cl;
	int off, len;		/* unread bytes in b[off..len) */
	char b[16384];
};

static struct conn *slots;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *what)
{
	if (reported++ == 0)
		fprintf(stderr, "inspectload: %s\n", what);
}

static int verify_leaf(X509_STORE_CTX *x, void *arg)
{
	unsigned char md[32];
	unsigned int n = 0;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	int i;

	(void)arg;
	if (leaf && X509_digest(leaf, EVP_sha256(), md, &n) && n == sizeof md)
		for (i = 0; i < nseen; i++)
			if (!memcmp(seen[i], md, sizeof md))
				return 1;	/* this exact leaf passed for HOST before */
	if (X509_verify_cert(x) != 1)
		return 0;
	if (n == sizeof md && nseen < (int)(sizeof seen / sizeof seen[0]))
		memcpy(seen[nseen++], md, sizeof md);
	return 1;
}

static int watch(struct conn *c, unsigned ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->want == ev)
		return 0;
	if (epoll_ctl(epfd, c->want ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e))
		return -1;
	c->want = ev;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);	/* one close_notify, no wait for the peer's */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);	/* also leaves the epoll set */
	c->fd = -1;
	c->want = 0;
	ERR_clear_error();
}

static int conn_open(struct conn *c)
{
	int one = 1;

	c->st = ST_TCP;
	c->done = 0;
	c->off = c->len = 0;
	c->want = 0;
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&proxy_sa, sizeof proxy_sa) < 0 && errno != EINPROGRESS)
		return -1;
	return watch(c, EPOLLOUT);
}

/* Where an SSL call that did not finish wants to go on. */
static int ssl_wait(struct conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return watch(c, EPOLLIN);
	case SSL_ERROR_WANT_WRITE:
		return watch(c, EPOLLOUT);
	default:
		return -1;
	}
}

static int find_crlf(struct conn *c, int from)
{
	char *e = memmem(c->b + from, c->len - from, "\r\n", 2);
	return e ? (int)(e - c->b) : -1;
}

/* Consumes buffered response bytes; 1 when a whole response was read (its
 * verdict in c->status/c->closing), 0 when more bytes are needed, -1 on bad
 * framing. */
static int parse(struct conn *c)
{
	for (;;) {
		int e;

		switch (c->ph) {
		case PH_HEAD: {
			char *end = memmem(c->b + c->off, c->len - c->off, "\r\n\r\n", 4);
			char *p, *q;

			if (!end)
				return c->off == 0 && c->len == (int)sizeof c->b ? -1 : 0;
			*end = 0;
			p = c->b + c->off;
			c->off = end + 4 - c->b;
			if (sscanf(p, "HTTP/1.%*d %d", &c->status) != 1)
				return -1;
			if (c->status >= 100 && c->status < 200)
				continue;	/* an interim answer precedes the real one */
			c->cl = -1;
			c->chunked = c->closing = 0;
			for (q = strstr(p, "\r\n"); q; q = strstr(q, "\r\n")) {
				q += 2;
				if (!strncasecmp(q, "content-length:", 15))
					c->cl = atol(q + 15);
				else if (!strncasecmp(q, "transfer-encoding:", 18) && strcasestr(q, "chunked"))
					c->chunked = 1;
				else if (!strncasecmp(q, "connection:", 11) && !strncasecmp(q + 11 + strspn(q + 11, " \t"), "close", 5))
					c->closing = 1;
			}
			if (c->chunked) {
				c->ph = PH_CSIZE;
			} else if (c->cl >= 0) {
				c->left = c->cl;
				c->ph = PH_BODY;
			} else {
				return -1;	/* framed by EOF: cannot carry a next request */
			}
			break;
		}
		case PH_BODY:
		case PH_CDATA: {
			long k = c->len - c->off < c->left ? c->len - c->off : c->left;

			c->off += k;
			c->left -= k;
			if (c->left)
				return 0;
			if (c->ph == PH_BODY) {
				c->ph = PH_HEAD;
				return 1;
			}
			c->ph = PH_CEND;
			break;
		}
		case PH_CSIZE: {
			char *endp;

			if ((e = find_crlf(c, c->off)) < 0)
				return c->off == 0 && c->len == (int)sizeof c->b ? -1 : 0;
			c->b[e] = 0;
			c->left = strtol(c->b + c->off, &endp, 16);
			if (endp == c->b + c->off || c->left < 0)
				return -1;
			c->off = e + 2;
			c->ph = c->left ? PH_CDATA : PH_TRAIL;
			break;
		}
		case PH_CEND:
			if (c->len - c->off < 2)
				return 0;
			if (memcmp(c->b + c->off, "\r\n", 2))
				return -1;
			c->off += 2;
			c->ph = PH_CSIZE;
			break;
		case PH_TRAIL:	/* trailers, up to the empty line */
			if ((e = find_crlf(c, c->off)) < 0)
				return c->off == 0 && c->len == (int)sizeof c->b ? -1 : 0;
			if (e == c->off) {
				c->off += 2;
				c->ph = PH_HEAD;
				return 1;
			}
			c->off = e + 2;
			break;
		}
	}
}

/* Advances one connection as far as it can go without blocking; 1 when it
 * finished (successfully or not: the counters say), 0 when it waits, -1 when
 * it failed. */
static int step(struct conn *c)
{
	int n, r;

	for (;;) {
		switch (c->st) {
		case ST_TCP:
			if (send(c->fd, connect_req, connect_len, MSG_NOSIGNAL) != connect_len)
				return -1;	/* a fresh socket takes these few bytes whole */
			c->st = ST_HEAD;
			if (watch(c, EPOLLIN))
				return -1;
			break;
		case ST_HEAD:
			/* the proxy says nothing more until the client speaks */
			n = recv(c->fd, c->b + c->len, sizeof c->b - 1 - c->len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n <= 0)
				return -1;
			c->len += n;
			c->b[c->len] = 0;
			if (!strstr(c->b, "\r\n\r\n"))
				return c->len < (int)sizeof c->b - 1 ? 0 : -1;
			if (strncmp(c->b, "HTTP/1.1 200", 12) && strncmp(c->b, "HTTP/1.0 200", 12))
				return -1;
			if ((int)(strstr(c->b, "\r\n\r\n") + 4 - c->b) != c->len)
				return -1;	/* bytes before our ClientHello */
			c->off = c->len = 0;
			if (!(c->ssl = SSL_new(ctx)) || !SSL_set_fd(c->ssl, c->fd))
				return -1;
			if (!host_is_ip) {
				SSL_set_tlsext_host_name(c->ssl, host);
				if (!noname)
					X509_VERIFY_PARAM_set1_host(SSL_get0_param(c->ssl), host, 0);
			} else if (!noname) {
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);   /* an iPAddress SAN */
			}
			c->st = ST_HS;
			break;
		case ST_HS:
			if ((r = SSL_connect(c->ssl)) != 1) {
				if (ssl_wait(c, r) == 0)
					return 0;
				report(SSL_get_verify_result(c->ssl) != X509_V_OK ?
				    X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)) : "handshake failed");
				return -1;
			}
			c->st = ST_REQ;
			break;
		case ST_REQ:
			if ((r = SSL_write(c->ssl, get_req, get_len)) != get_len)
				return r > 0 ? -1 : ssl_wait(c, r);
			c->st = kreqs ? ST_RESP : ST_EOF;
			c->ph = PH_HEAD;
			/* the answer cannot be there yet: wait instead of a read that fails */
			return watch(c, EPOLLIN);
		case ST_RESP:
			if (c->off == c->len)
				c->off = c->len = 0;
			else if (c->len == (int)sizeof c->b && c->off) {
				memmove(c->b, c->b + c->off, c->len - c->off);
				c->len -= c->off;
				c->off = 0;
			}
			if ((r = SSL_read(c->ssl, c->b + c->len, sizeof c->b - c->len)) <= 0)
				return ssl_wait(c, r) ? -1 : 0;
			c->len += r;
			while ((r = parse(c)) == 1) {
				if (c->status != 200 || c->closing)
					return -1;
				ok++;
				if (++c->done == kreqs)
					return 1;
				if (c->off != c->len)
					return -1;	/* bytes nobody asked for (we never pipeline) */
				c->st = ST_REQ;
			}
			if (r < 0)
				return -1;
			break;
		case ST_EOF:	/* without -k: the status line, then the rest to EOF */
			r = SSL_read(c->ssl, c->b + c->len, c->len < 12 ? 12 - c->len : (int)sizeof c->b - c->len);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return ssl_wait(c, r);
				/* the end, with or without close_notify */
				if (c->len < 12 || strncmp(c->b, "HTTP/1.1 200", 12))
					return -1;
				ok++;
				return 1;
			}
			c->len += r;
			if (c->len == (int)sizeof c->b)
				c->len = 12;	/* the rest of the body: kept out of the status */
			break;
		}
	}
}

static void next_conn(struct conn *c)
{
	while (started < total) {
		started++;
		if (conn_open(c) == 0)
			return;
		conn_close(c);
		conn_err++;
		err += kreqs ? kreqs : 1;
		report("cannot connect to the proxy");
	}
}

int main(int argc, char **argv)
{
	const char *ca = NULL;
	int par = 4, o, live;
	struct in_addr a;
	struct epoll_event ev[256];
	double t0, t1;

	while ((o = getopt(argc, argv, "x:H:p:C:n:c:Nk:")) != -1) {
		switch (o) {
		case 'x': pport = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'p': oport = atoi(optarg); break;
		case 'C': ca = optarg; break;
		case 'n': total = atol(optarg); break;
		case 'c': par = atoi(optarg); break;
		case 'N': noname = 1; break;
		case 'k': kreqs = atol(optarg); break;
		default: goto usage;
		}
	}
	if (!pport || !oport || !ca || par < 1 || par > 4096 || total < 1 || kreqs < 0 || strlen(host) > 255)
		goto usage;
	signal(SIGPIPE, SIG_IGN);	/* a peer that closes fails the request, not the process */
	host_is_ip = inet_pton(AF_INET, host, &a) == 1;
	proxy_sa.sin_family = AF_INET;
	proxy_sa.sin_port = htons(pport);
	inet_pton(AF_INET, "127.0.0.1", &proxy_sa.sin_addr);
	connect_len = snprintf(connect_req, sizeof connect_req, "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
	    host, oport, host, oport);
	get_len = snprintf(get_req, sizeof get_req, kreqs ? "GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" :
	    "GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", host, oport);
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_read_ahead(ctx, 1);	/* one read per record, not header then body */
	SSL_CTX_set_cert_verify_callback(ctx, verify_leaf, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		fprintf(stderr, "inspectload: cannot load %s\n", ca);
		return 1;
	}
	if ((epfd = epoll_create1(0)) < 0 || !(slots = calloc(par, sizeof *slots))) {
		perror("inspectload");
		return 1;
	}
	t0 = now();
	live = 0;
	for (int i = 0; i < par; i++) {
		slots[i].fd = -1;
		next_conn(&slots[i]);
		live += slots[i].fd >= 0;
	}
	while (live) {
		int n = epoll_wait(epfd, ev, sizeof ev / sizeof ev[0], 60000);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "inspectload: %s\n", n ? strerror(errno) : "no progress in 60 s");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;
			int r;

			if (c->fd < 0)
				continue;
			if ((r = step(c)) == 0)
				continue;
			if (r < 0) {
				if (kreqs) {
					err += kreqs - c->done;
					if (!c->done && c->st != ST_RESP)
						conn_err++;
					if (c->done || c->st == ST_RESP)
						report("a request of a connection failed");
				} else {
					err++;
					conn_err++;
				}
				report("a connection failed");
			}
			conn_close(c);
			next_conn(c);
			if (c->fd < 0)
				live--;
		}
	}
	t1 = now();
	for (int i = 0; i < par; i++)	/* left open by a stalled loop: failed */
		if (slots[i].fd >= 0) {
			err += kreqs ? kreqs - slots[i].done : 1;
			conn_close(&slots[i]);
		}
	err += (total - started) * (kreqs ? kreqs : 1);		/* never started: the loop stalled */
	printf("conns=%ld ok=%ld err=%ld conn_err=%ld secs=%.3f rate=%.1f/s\n", total, ok, err,
	       conn_err, t1 - t0, ok / (t1 - t0));
	return err ? 2 : 0;
usage:
	fprintf(stderr, "usage: inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N] [-k REQS]\n");
	return 1;
}
