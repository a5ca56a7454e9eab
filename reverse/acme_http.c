/*
 * reverse/acme_http: the ACME thread's HTTPS client (see acme_int.h): one
 * blocking exchange per call on its own connection (Connection: close),
 * the server verified against the configured CA file, every step bounded
 * by a timeout, the response capped at 1 MiB.  It never runs on a worker:
 * the ACME thread is the only caller, and a stop cuts the socket.
 */
#include "reverse/acme_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/httpdate.h"

#define RESP_MAX (1u << 20)

void acme_resp_free(struct acme_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* https://host[:port]/path into its parts; 0, or -1. */
static int split_url(const char *url, char *host, size_t hl, char *port, size_t pl, const char **path)
{
	const char *h = url + 8, *end, *colon;
	size_t n;

	if (strncmp(url, "https://", 8) != 0)
		return -1;
	end = h + strcspn(h, "/?#");
	*path = *end == '/' ? end : "/";
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (rb == NULL)
			return -1;
		n = (size_t)(rb - h - 1);
		if (n == 0 || n >= hl)
			return -1;
		memcpy(host, h + 1, n);
		host[n] = '\0';
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		n = (size_t)((colon ? colon : end) - h);
		if (n == 0 || n >= hl)
			return -1;
		memcpy(host, h, n);
		host[n] = '\0';
	}
	if (colon != NULL) {
		n = (size_t)(end - colon - 1);
		if (n == 0 || n >= pl || strspn(colon + 1, "0123456789") < n)
			return -1;
		memcpy(port, colon + 1, n);
		port[n] = '\0';
	} else {
		snprintf(port, pl, "443");
	}
	return 0;
}

static int connect_to(const char *host, const char *port, int timeout_s, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	struct timeval tv = { .tv_sec = timeout_s };
	int fd = -1, rc;

	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (a = ai; a != NULL; a = a->ai_next) {
		struct pollfd p;
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		p.fd = fd;
		p.events = POLLOUT;
		if (errno == EINPROGRESS && poll(&p, 1, timeout_s * 1000) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
			break;
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port,
		    strerror(soerr ? soerr : errno == EINPROGRESS ? ETIMEDOUT : errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return -1;
	/* blocking from here on, each read and write bounded */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static void ssl_err(const char *what, char *err, size_t errlen)
{
	char e[200];
	unsigned long c = ERR_get_error();

	if (c != 0)
		ERR_error_string_n(c, e, sizeof e);
	else
		snprintf(e, sizeof e, "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s", what, e);
}

/* The value of header name in head (CRLF lines), copied to out; 0 = none. */
static int header(const char *head, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
		const char *v = l + 2, *e;
		if (strncasecmp(v, name, nl) != 0 || v[nl] != ':')
			continue;
		v += nl + 1;
		v += strspn(v, " \t");
		e = strstr(v, "\r\n");
		if (e == NULL)
			e = v + strlen(v);
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		snprintf(out, outlen, "%.*s", (int)(e - v), v);
		return 1;
	}
	return 0;
}

/* Decode a chunked body in place; its length, or -1 when malformed. */
static long dechunk(char *b, size_t n)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long sz = strtoul(b + in, &end, 16);
		char *crlf = strstr(b + in, "\r\n");
		if (end == b + in || crlf == NULL || (size_t)(crlf - b) >= n)
			return -1;
		in = (size_t)(crlf - b) + 2;
		if (sz == 0)
			return (long)out;
		if (sz > n - in)
			return -1;
		memmove(b + out, b + in, sz);
		out += sz;
		in += sz + 2;
		if (in > n)
			return -1;
	}
}

static int parse(char *buf, size_t n, struct acme_resp *r, char *err, size_t errlen)
{
	char *sep = strstr(buf, "\r\n\r\n"), te[64], ra[64];
	size_t body;

	if (sep == NULL || sscanf(buf, "HTTP/1.%*c %3d", &r->status) != 1) {
		snprintf(err, errlen, "not an HTTP response");
		return -1;
	}
	sep[2] = '\0';                /* the head ends with its last CRLF */
	header(buf, "Replay-Nonce", r->nonce, sizeof r->nonce);
	header(buf, "Location", r->location, sizeof r->location);
	header(buf, "Content-Type", r->ctype, sizeof r->ctype);
	r->retry_after = -1;
	if (header(buf, "Retry-After", ra, sizeof ra)) {
		char *e;
		long v = strtol(ra, &e, 10);
		time_t t;
		if (e != ra && *e == '\0' && v >= 0)
			r->retry_after = v;
		else if (gw_httpdate_parse(ra, strlen(ra), &t) == 0)
			r->retry_after = t > time(NULL) ? (long)(t - time(NULL)) : 0;
	}
	body = (size_t)(sep + 4 - buf);
	r->len = n - body;
	r->body = malloc(r->len + 1);
	if (r->body == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(r->body, buf + body, r->len);
	r->body[r->len] = '\0';
	if (header(buf, "Transfer-Encoding", te, sizeof te) && strcasecmp(te, "chunked") == 0) {
		long d = dechunk(r->body, r->len);
		if (d < 0) {
			snprintf(err, errlen, "malformed chunked response");
			acme_resp_free(r);
			return -1;
		}
		r->len = (size_t)d;
		r->body[r->len] = '\0';
	}
	return 0;
}

int acme_http(const char *method, const char *url, const char *ctype, const char *body, size_t blen,
    const char *ca_file, int timeout_s, void (*set_fd)(int fd), struct acme_resp *r, char *err, size_t errlen)
{
	char host[256], port[8], *req = NULL, *buf = NULL;
	const char *path;
	SSL_CTX *ctx = NULL;
	SSL *s = NULL;
	size_t n = 0;
	int fd = -1, rc = -1, k;

	memset(r, 0, sizeof *r);
	r->retry_after = -1;
	if (split_url(url, host, sizeof host, port, sizeof port, &path) < 0) {
		snprintf(err, errlen, "not an https:// URL: %.200s", url);
		return -1;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx)) != 1) {
		ssl_err(ca_file != NULL ? ca_file : "system store", err, errlen);
		goto out;
	}
	fd = connect_to(host, port, timeout_s, err, errlen);
	if (fd < 0)
		goto out;
	set_fd(fd);
	s = SSL_new(ctx);
	if (s == NULL || SSL_set_fd(s, fd) != 1 ||
	    (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) != 1 &&
	    (SSL_set_tlsext_host_name(s, host) != 1 || SSL_set1_host(s, host) != 1))) {
		ssl_err("TLS setup", err, errlen);
		goto out;
	}
	if (SSL_connect(s) != 1) {
		long v = SSL_get_verify_result(s);
		if (v != X509_V_OK) {
			ERR_clear_error();
			snprintf(err, errlen, "TLS to %s:%s: certificate not trusted (%s)", host, port,
			    X509_verify_cert_error_string(v));
		} else {
			ssl_err("TLS handshake", err, errlen);
		}
		goto out;
	}
	k = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: gatehouse-acme\r\n"
	    "Accept: */*\r\nConnection: close\r\n%s%s%sContent-Length: %zu\r\n\r\n",
	    method, path, host, strcmp(port, "443") ? ":" : "", strcmp(port, "443") ? port : "",
	    ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", blen);
	if (k < 0) {
		req = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (SSL_write(s, req, k) != k || (blen > 0 && SSL_write(s, body, (int)blen) != (int)blen)) {
		ssl_err("sending the request", err, errlen);
		goto out;
	}
	buf = malloc(RESP_MAX + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		int got = SSL_read(s, buf + n, (int)(RESP_MAX - n));
		if (got <= 0) {
			int e = SSL_get_error(s, got);
			if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && n > 0) ||
			    (e == SSL_ERROR_SSL && n > 0 &&
			    ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
				break;
			ssl_err(n > 0 ? "reading the response" : "no response", err, errlen);
			goto out;
		}
		n += (size_t)got;
		if (n == RESP_MAX) {
			snprintf(err, errlen, "response larger than %u bytes", RESP_MAX);
			goto out;
		}
	}
	ERR_clear_error();
	buf[n] = '\0';
	rc = parse(buf, n, r, err, errlen);
out:
	if (fd >= 0)
		set_fd(-1);
	SSL_free(s);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	free(req);
	free(buf);
	return rc;
}
