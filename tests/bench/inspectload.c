/*
 * inspectload: new inspected connections per second through a forward proxy.
 *
 *   inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N]
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
 * Output: "conns=.. ok=.. err=.. secs=.. rate=../s".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx;
static const char *host = "127.0.0.1";
static int pport, oport;
static long total = 1000;
static int noname;
static atomic_long next, ok, err, reported;

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
	n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", host, oport);
	if (SSL_write(ssl, buf, n) != n)
		goto out;
	got = 0;
	while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
		got += n;
	if (got > 12 && !strncmp(buf, "HTTP/1.1 200", 12))
		rc = 0;
	else if (got > 0)
		rc = 0; /* answer longer than one buffer: its first bytes are gone; it arrived */
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
		if (one() == 0)
			atomic_fetch_add(&ok, 1);
		else
			atomic_fetch_add(&err, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *ca = NULL;
	int par = 4, o;
	pthread_t th[256];
	double t0, t1;

	while ((o = getopt(argc, argv, "x:H:p:C:n:c:N")) != -1) {
		switch (o) {
		case 'x': pport = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'p': oport = atoi(optarg); break;
		case 'C': ca = optarg; break;
		case 'n': total = atol(optarg); break;
		case 'c': par = atoi(optarg); break;
		case 'N': noname = 1; break;
		default: goto usage;
		}
	}
	if (!pport || !oport || !ca || par < 1 || par > 256 || total < 1)
		goto usage;
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
	printf("conns=%ld ok=%ld err=%ld secs=%.3f rate=%.1f/s\n", total, (long)ok, (long)err, t1 - t0,
	       ok / (t1 - t0));
	return err ? 2 : 0;
usage:
	fprintf(stderr, "usage: inspectload -x PROXYPORT -H HOST -p PORT -C CAFILE [-n CONNS] [-c PARALLEL] [-N]\n");
	return 1;
}
