/*
 * inspectload: new inspected connections (or keep-alive requests) per second
 * through a forward proxy.
 *
 *   inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N] [-k REQS]
 *
 * PARALLEL threads share CONNS connections; each connection: TCP connect to
 * 127.0.0.1:PROXYPORT, "CONNECT HOST:PORT", wait for the 200, a full TLS
 * handshake (a fresh SSL, no session offered, SNI = HOST unless HOST is an
 * address literal) verifying the proxy's minted leaf against CAFILE, one small
 * "GET /" with Connection: close read to EOF, close.  One process for all of
 * them, so the rate measures the proxy, not process start-up (curl per
 * connection did).  -N: check the chain only, not the name (Squid mints a
 * leaf for an address literal without an iPAddress SAN; the client-side
 * check costs the proxy nothing either way).
 * -k REQS (keep-alive mode): each connection carries REQS GETs over its one TLS
 * session instead, one at a time (no pipelining: the next request is written
 * once the previous response was read in full, by its Content-Length or its
 * chunked framing); every response must be a 200 and keep the connection.
 * Output: "conns=.. ok=.. err=.. secs=.. rate=../s": without -k ok/err count
 * connections, with -k requests (answered 200 in full, or not: a refused
 * CONNECT or failed handshake counts all REQS of its connection as failed,
 * never as requests; a connection that ends early fails the rest of its
 * REQS), plus "conn_err=" (connections that failed before their first GET).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx;
static const char *host = "127.0.0.1";
static int pport, oport;
static long total = 1000;
static int noname;
static long kreqs;		/* -k: GETs per connection; 0 = one with Connection: close */
static atomic_long next, ok, err, conn_err, reported;

/* A buffered reader over one TLS session (keep-alive responses are framed by
 * their headers, not by EOF). */
struct rd {
	SSL *ssl;
	char b[16384];
	int off, len;
};

static int rd_fill(struct rd *r)
{
	int n;

	if (r->off == r->len)
		r->off = r->len = 0;
	if (r->len == (int)sizeof r->b) {
		if (r->off == 0)
			return -1;	/* a line longer than the buffer */
		memmove(r->b, r->b + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if ((n = SSL_read(r->ssl, r->b + r->len, sizeof r->b - r->len)) <= 0)
		return -1;
	r->len += n;
	return 0;
}

/* One CRLF-terminated line into out (NUL-terminated, CRLF dropped). */
static int rd_line(struct rd *r, char *out, int max)
{
	for (;;) {
		char *e = memchr(r->b + r->off, '\n', r->len - r->off);
		if (e) {
			int n = e - (r->b + r->off);
			if (n > 0 && e[-1] == '\r')
				n--;
			if (n >= max)
				return -1;
			memcpy(out, r->b + r->off, n);
			out[n] = 0;
			r->off = e + 1 - r->b;
			return 0;
		}
		if (rd_fill(r))
			return -1;
	}
}

static int rd_skip(struct rd *r, long n)
{
	while (n > 0) {
		if (r->off == r->len && rd_fill(r))
			return -1;
		long k = r->len - r->off < n ? r->len - r->off : n;
		r->off += k;
		n -= k;
	}
	return 0;
}

/* Reads one whole response; 0 when it was a 200 that leaves the connection
 * open for the next request. */
static int response(struct rd *r)
{
	char line[8192];
	long cl = -1;
	int status, chunked = 0, closing = 0;

	do {	/* 1xx interim answers precede the real one */
		if (rd_line(r, line, sizeof line) || sscanf(line, "HTTP/1.%*d %d", &status) != 1)
			return -1;
		for (;;) {
			if (rd_line(r, line, sizeof line))
				return -1;
			if (!line[0])
				break;
			if (!strncasecmp(line, "content-length:", 15))
				cl = atol(line + 15);
			else if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line, "chunked"))
				chunked = 1;
			else if (!strncasecmp(line, "connection:", 11) && strcasestr(line, "close"))
				closing = 1;
		}
	} while (status >= 100 && status < 200);
	if (chunked) {
		for (;;) {
			char *end;
			long sz;
			if (rd_line(r, line, sizeof line))
				return -1;
			sz = strtol(line, &end, 16);
			if (end == line || sz < 0)
				return -1;
			if (sz == 0)
				break;
			if (rd_skip(r, sz) || rd_line(r, line, sizeof line) || line[0])
				return -1;
		}
		do {	/* trailers, up to the empty line */
			if (rd_line(r, line, sizeof line))
				return -1;
		} while (line[0]);
	} else if (cl >= 0) {
		if (rd_skip(r, cl))
			return -1;
	} else {
		return -1;	/* framed by EOF: cannot carry a next request */
	}
	return status == 200 && !closing ? 0 : -1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One connection; 0 when the whole exchange succeeded. */
static int one(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(pport) };
	char buf[4096];
	int fd, n, got = 0, rc = -1, one = 1;
	SSL *ssl = NULL;
	struct in_addr a;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		goto out;
	n = snprintf(buf, sizeof buf, "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host, oport, host, oport);
	if (write(fd, buf, n) != n)
		goto out;
	/* the proxy says nothing more until the client speaks: read the head only */
	while (got < (int)sizeof buf - 1) {
		if ((n = read(fd, buf + got, 1)) <= 0)
			goto out;
		got += n;
		if (got >= 4 && !memcmp(buf + got - 4, "\r\n\r\n", 4))
			break;
	}
	buf[got] = 0;
	if (strncmp(buf, "HTTP/1.1 200", 12) && strncmp(buf, "HTTP/1.0 200", 12))
		goto out;
	if (!(ssl = SSL_new(ctx)))
		goto out;
	SSL_set_fd(ssl, fd);
	if (inet_pton(AF_INET, host, &a) != 1) {
		SSL_set_tlsext_host_name(ssl, host);
		if (!noname)
			X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), host, 0);
	} else if (!noname) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);   /* an iPAddress SAN */
	}
	if (SSL_connect(ssl) != 1 || SSL_get_verify_result(ssl) != X509_V_OK) {
		if (atomic_fetch_add(&reported, 1) == 0)
			fprintf(stderr, "inspectload: handshake: %s\n",
			    X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		goto out;
	}
	if (kreqs) {
		struct rd *r = calloc(1, sizeof *r);
		long i;

		if (!r)
			goto out;
		r->ssl = ssl;
		rc = 0;
		for (i = 0; i < kreqs; i++) {
			n = snprintf(buf, sizeof buf, "GET /?%ld HTTP/1.1\r\nHost: %s:%d\r\n\r\n", i, host, oport);
			if (SSL_write(ssl, buf, n) != n || response(r))
				break;
			atomic_fetch_add(&ok, 1);
		}
		if (i < kreqs) {
			atomic_fetch_add(&err, kreqs - i);
			if (atomic_fetch_add(&reported, 1) == 0)
				fprintf(stderr, "inspectload: request %ld of a connection failed\n", i + 1);
		}
		free(r);
		goto out;
	}
	n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", host, oport);
	if (SSL_write(ssl, buf, n) != n)
		goto out;
	got = 0;	/* the status line is in the first read: check it there */
	while ((n = SSL_read(ssl, buf + got, got ? (int)sizeof buf - got : 12)) > 0)
		if ((got += n) == (int)sizeof buf)
			got = 12;	/* the rest of the body: read to EOF, kept out of the status */
	if (got >= 12 && !strncmp(buf, "HTTP/1.1 200", 12))
		rc = 0;
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
	ERR_clear_error();
	return rc;
}

static void *loop(void *arg)
{
	(void)arg;
	while (atomic_fetch_add(&next, 1) < total) {
		if (one() == 0) {
			if (!kreqs)
				atomic_fetch_add(&ok, 1);	/* with -k, one() counted its requests */
		} else {
			atomic_fetch_add(&conn_err, 1);
			atomic_fetch_add(&err, kreqs ? kreqs : 1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *ca = NULL;
	int par = 4, o;
	pthread_t th[256];
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
	if (!pport || !oport || !ca || par < 1 || par > 256 || total < 1 || kreqs < 0)
		goto usage;
	signal(SIGPIPE, SIG_IGN);	/* a peer that closes fails the request, not the process */
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		fprintf(stderr, "inspectload: cannot load %s\n", ca);
		return 1;
	}
	t0 = now();
	for (int i = 0; i < par; i++)
		pthread_create(&th[i], NULL, loop, NULL);
	for (int i = 0; i < par; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	printf("conns=%ld ok=%ld err=%ld conn_err=%ld secs=%.3f rate=%.1f/s\n", total, (long)ok, (long)err,
	       (long)conn_err, t1 - t0, ok / (t1 - t0));
	return err ? 2 : 0;
usage:
	fprintf(stderr, "usage: inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N] [-k REQS]\n");
	return 1;
}
