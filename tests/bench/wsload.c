/*
 * wsload: WebSocket echo origin and client load for the soak test.
 *
 *   wsload -s PORT                       echo origin: answers an Upgrade with
 *                                        101 (correct Sec-WebSocket-Accept),
 *                                        then echoes every frame unmasked
 *   wsload -p PORT -c CONNS -d SECONDS [-n MSGS] [-w MS]
 *                                        CONNS threads, each looping: connect,
 *                                        upgrade, send MSGS masked text frames
 *                                        and check each echo byte for byte,
 *                                        close (opcode 8), wait MS, reconnect
 *
 * The client prints one line: sessions=N msgs=N err=N.  Payloads are under
 * 126 bytes, so frames use the 7-bit length form only.  One thread per
 * connection on both sides: this is a soak driver, not a benchmark.
 * Build: gcc -O2 -pthread -o wsload wsload.c -lcrypto
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int port, msgs = 20, pause_ms;
static double deadline;
static atomic_long n_sessions, n_msgs, n_err;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	size_t put = 0;
	while (put < n) {
		ssize_t r = write(fd, (const char *)p + put, n - put);
		if (r <= 0)
			return -1;
		put += (size_t)r;
	}
	return 0;
}

/* Reads an HTTP head (up to CRLFCRLF) into buf; returns its length or -1. */
static int read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		if (read(fd, buf + n, 1) != 1)
			return -1;
		n++;
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) {
			buf[n] = '\0';
			return (int)n;
		}
	}
	return -1;
}

static void accept_key(const char *key, size_t klen, char out[32])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char md[SHA_DIGEST_LENGTH];
	char cat[128];
	if (klen > sizeof cat - sizeof guid)
		klen = sizeof cat - sizeof guid;
	memcpy(cat, key, klen);
	memcpy(cat + klen, guid, sizeof guid - 1);
	SHA1((unsigned char *)cat, klen + sizeof guid - 1, md);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

/* One frame: returns opcode, payload in p (len in *len), or -1. */
static int read_frame(int fd, unsigned char *p, size_t *len)
{
	unsigned char h[2], mask[4] = { 0 };
	size_t i, n;
	if (read_full(fd, h, 2))
		return -1;
	n = h[1] & 0x7f;
	if (n >= 126)
		return -1;
	if ((h[1] & 0x80) && read_full(fd, mask, 4))
		return -1;
	if (n && read_full(fd, p, n))
		return -1;
	for (i = 0; i < n; i++)
		p[i] ^= mask[i % 4];
	*len = n;
	return h[0] & 0x0f;
}

static int write_frame(int fd, int op, const unsigned char *p, size_t n, int masked)
{
	unsigned char f[2 + 4 + 125];
	size_t i, off = 2;
	f[0] = (unsigned char)(0x80 | op);
	f[1] = (unsigned char)((masked ? 0x80 : 0) | n);
	if (masked) {
		uint32_t m = (uint32_t)random();
		memcpy(f + 2, &m, 4);
		off = 6;
	}
	for (i = 0; i < n; i++)
		f[off + i] = masked ? p[i] ^ f[2 + i % 4] : p[i];
	return write_full(fd, f, off + n);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char head[4096], acc[32], resp[256];
	unsigned char p[126];
	size_t n;
	const char *k;
	int op, rl;
	if (read_head(fd, head, sizeof head) < 0 || (k = strcasestr(head, "\nSec-WebSocket-Key:")) == NULL)
		goto out;
	k += 19;
	while (*k == ' ')
		k++;
	accept_key(k, strcspn(k, "\r\n"), acc);
	rl = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
	if (write_full(fd, resp, (size_t)rl))
		goto out;
	while ((op = read_frame(fd, p, &n)) >= 0) {
		if (write_frame(fd, op, p, n, 0) || op == 8)
			break;
	}
out:
	close(fd);
	return NULL;
}

static int server(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (void *)&a, sizeof a) || listen(s, 128)) {
		perror("wsload: bind");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		pthread_t t;
		if (c < 0)
			continue;
		if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) != 0) {
			close(c);
			continue;
		}
		pthread_detach(t);
	}
}

static int session(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, i, ok = -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(0x7f000001) };
	struct timeval tv = { .tv_sec = 10 };
	static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
	char head[4096], acc[32], req[512];
	unsigned char msg[100], echo[126];
	size_t n;
	int rl;
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(s, (void *)&a, sizeof a))
		goto out;
	rl = snprintf(req, sizeof req, "GET /ws HTTP/1.1\r\nHost: soak.test\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key);
	if (write_full(s, req, (size_t)rl) || read_head(s, head, sizeof head) < 0 ||
	    strncmp(head, "HTTP/1.1 101 ", 13) != 0)
		goto out;
	accept_key(key, sizeof key - 1, acc);
	if (strstr(head, acc) == NULL)
		goto out;
	for (i = 0; i < msgs; i++) {
		int len = 1 + (int)(random() % (long)sizeof msg);
		int j;
		for (j = 0; j < len; j++)
			msg[j] = (unsigned char)('a' + (i + j) % 26);
		if (write_frame(s, 1, msg, (size_t)len, 1) || read_frame(s, echo, &n) != 1 ||
		    n != (size_t)len || memcmp(msg, echo, n) != 0)
			goto out;
		atomic_fetch_add(&n_msgs, 1);
	}
	if (write_frame(s, 8, (const unsigned char *)"\x03\xe8", 2, 1) || read_frame(s, echo, &n) != 8)
		goto out;
	ok = 0;
out:
	close(s);
	return ok;
}

static void *client(void *arg)
{
	(void)arg;
	while (now() < deadline) {
		if (session() == 0)
			atomic_fetch_add(&n_sessions, 1);
		else
			atomic_fetch_add(&n_err, 1);
		if (pause_ms > 0)
			usleep((useconds_t)pause_ms * 1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int opt, conns = 4, srv = 0, i;
	double secs = 10;
	pthread_t *t;
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt(argc, argv, "s:p:c:d:n:w:")) != -1) {
		switch (opt) {
		case 's': srv = 1; port = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'c': conns = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'n': msgs = atoi(optarg); break;
		case 'w': pause_ms = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: wsload -s PORT | -p PORT [-c CONNS] [-d SECONDS] [-n MSGS] [-w MS]\n");
			return 2;
		}
	}
	if (port <= 0 || conns <= 0)
		return 2;
	if (srv)
		return server();
	deadline = now() + secs;
	t = calloc((size_t)conns, sizeof *t);
	if (t == NULL)
		return 1;
	for (i = 0; i < conns; i++)
		pthread_create(&t[i], NULL, client, NULL);
	for (i = 0; i < conns; i++)
		pthread_join(t[i], NULL);
	free(t);
	printf("sessions=%ld msgs=%ld err=%ld\n", atomic_load(&n_sessions), atomic_load(&n_msgs),
	    atomic_load(&n_err));
	return 0;
}
