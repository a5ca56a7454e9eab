/*
 * tlsfloor: the CPU a full TLS handshake costs OpenSSL itself, each side,
 * without sockets, kernel or event loop: the floor under a proxy's cost per
 * new connection (an inspecting proxy pays both sides: server toward the
 * client, client toward the origin).
 *
 *   tlsfloor CAFILE CERT KEY NAME [-n N] [-t TICKETS] [-m]
 *
 * N times: a server SSL (CERT/KEY set per connection with SSL_use_*, as
 * Gatehouse does for a minted leaf) and a client SSL (verifying the chain
 * against CAFILE and NAME: a DNS name or an address literal) handshake over
 * a BIO pair, then one byte each way (so TICKETS NewSessionTickets are sent
 * and read).  Each side's thread CPU time is summed separately.
 * -m: the client accepts the chain without X509_verify_cert (what a
 * verified-chain memo hit saves; the handshake still checks
 * CertificateVerify).  Output: "server_us= client_us= setup_us= n=".
 * Build: gcc -O2 tlsfloor.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int skip_chain_check(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

/* One step of side s; 0 while it waits, 1 when done, -1 on error. */
static int step(SSL *s, int *done)
{
	int r;

	if (*done)
		return 1;
	r = SSL_do_handshake(s);
	if (r == 1)
		return *done = 1;
	return SSL_get_error(s, r) == SSL_ERROR_WANT_READ ? 0 : -1;
}

int main(int argc, char **argv)
{
	int n = 500, tickets = 2, memo = 0, o;
	const char *cafile, *certfile, *keyfile, *name;
	struct in6_addr ip;

	if (argc < 5)
		goto usage;
	cafile = argv[1];
	certfile = argv[2];
	keyfile = argv[3];
	name = argv[4];
	optind = 5;
	while ((o = getopt(argc, argv, "n:t:m")) != -1) {
		switch (o) {
		case 'n': n = atoi(optarg); break;
		case 't': tickets = atoi(optarg); break;
		case 'm': memo = 1; break;
		default: goto usage;
		}
	}
	if (n < 1)
		goto usage;
	FILE *f = fopen(certfile, "r");
	X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	f = fopen(keyfile, "r");
	EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method()), *cc = SSL_CTX_new(TLS_client_method());
	if (cert == NULL || key == NULL || sc == NULL || cc == NULL ||
	    SSL_CTX_load_verify_locations(cc, cafile, NULL) != 1) {
		fprintf(stderr, "tlsfloor: cannot load %s / %s / %s\n", cafile, certfile, keyfile);
		return 1;
	}
	SSL_CTX_set_num_tickets(sc, (size_t)tickets);
	SSL_CTX_set_session_id_context(sc, (const unsigned char *)"tlsfloor", 8);
	SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(cc, SSL_SESS_CACHE_OFF);
	if (memo)
		SSL_CTX_set_cert_verify_callback(cc, skip_chain_check, NULL);
	double ts = 0, tc = 0, tn = 0;
	for (int i = 0; i < n; i++) {
		double a = now_us();
		SSL *s = SSL_new(sc), *c = SSL_new(cc);
		BIO *b1, *b2;
		int ds = 0, dc = 0, rs = 0, rc = 0;
		char buf[16];
		if (s == NULL || c == NULL || SSL_use_certificate(s, cert) != 1 || SSL_use_PrivateKey(s, key) != 1 ||
		    BIO_new_bio_pair(&b1, 0, &b2, 0) != 1)
			goto fail;
		if (inet_pton(AF_INET, name, &ip) == 1 || inet_pton(AF_INET6, name, &ip) == 1) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c), name);
		} else {
			SSL_set_tlsext_host_name(c, name);
			SSL_set1_host(c, name);
		}
		SSL_set_bio(s, b1, b1);
		SSL_set_bio(c, b2, b2);
		SSL_set_accept_state(s);
		SSL_set_connect_state(c);
		tn += now_us() - a;
		while (!ds || !dc) {
			double t = now_us();
			rc = step(c, &dc);
			tc += now_us() - t;
			t = now_us();
			rs = step(s, &ds);
			ts += now_us() - t;
			if (rc < 0 || rs < 0)
				goto fail;
		}
		double t = now_us();
		if (SSL_write(c, "x", 1) != 1)   /* reads the tickets on its way */
			goto fail;
		tc += now_us() - t;
		t = now_us();
		if (SSL_read(s, buf, 1) != 1 || SSL_write(s, "y", 1) != 1)
			goto fail;
		ts += now_us() - t;
		t = now_us();
		if (SSL_read(c, buf, 1) != 1)
			goto fail;
		tc += now_us() - t;
		a = now_us();
		SSL_free(s);
		SSL_free(c);
		tn += now_us() - a;
		continue;
fail:
		fprintf(stderr, "tlsfloor: handshake %d failed\n", i);
		ERR_print_errors_fp(stderr);
		return 2;
	}
	printf("server_us=%.0f client_us=%.0f setup_us=%.0f n=%d tickets=%d memo=%d\n", ts / n, tc / n, tn / n, n,
	    tickets, memo);
	return 0;
usage:
	fprintf(stderr, "usage: tlsfloor CAFILE CERT KEY NAME [-n N] [-t TICKETS] [-m]\n");
	return 1;
}
