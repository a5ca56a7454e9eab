/*
 * forward/icap_tls: TLS toward icaps:// services; see icap_tls.h.
 */
#include "forward/icap_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

SSL_CTX *fwd_icap_tls_ctx(const char *ca_file, char *err, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	if ((ca_file != NULL && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx)) != 1) {
		unsigned long e = ERR_get_error();
		snprintf(err, cap, "cannot load the CA file %s: %s", ca_file ? ca_file : "(system)",
		    e ? ERR_reason_error_string(e) : "unknown error");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL *fwd_icap_tls_new(SSL_CTX *ctx, int fd, const char *host)
{
	SSL *s = SSL_new(ctx);
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

	if (s == NULL)
		return NULL;
	if (SSL_set_fd(s, fd) != 1 ||
	    (!is_ip && (SSL_set_tlsext_host_name(s, host) != 1 || SSL_set1_host(s, host) != 1)) ||
	    (is_ip && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) != 1)) {
		SSL_free(s);
		return NULL;
	}
	SSL_set_connect_state(s);
	return s;
}

int fwd_icap_tls_handshake(SSL *s, int *wr, char *err, size_t cap)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(s);
	if (r == 1)
		return 1;
	e = SSL_get_error(s, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*wr = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	if (SSL_get_verify_result(s) != X509_V_OK)
		snprintf(err, cap, "TLS: the server's certificate is not trusted: %s",
		    X509_verify_cert_error_string(SSL_get_verify_result(s)));
	else {
		unsigned long le = ERR_get_error();
		snprintf(err, cap, "TLS handshake failed: %s", le ? ERR_reason_error_string(le) :
		    e == SSL_ERROR_SYSCALL ? "connection closed" : "protocol error");
	}
	ERR_clear_error();
	return -1;
}

int fwd_icap_tls_read(SSL *s, struct evbuffer *in, size_t max)
{
	int got = 0;

	while ((size_t)got < max) {
		struct evbuffer_iovec v;
		int r, e;
		size_t want = max - (size_t)got < 16384 ? max - (size_t)got : 16384;
		if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1) {
			errno = ENOMEM;
			return -1;
		}
		ERR_clear_error();
		r = SSL_read(s, v.iov_base, (int)(v.iov_len < want ? v.iov_len : want));
		if (r > 0) {
			v.iov_len = (size_t)r;
			evbuffer_commit_space(in, &v, 1);
			got += r;
			continue;
		}
		evbuffer_commit_space(in, &v, 0);
		e = SSL_get_error(s, r);
		ERR_clear_error();
		if (got > 0)
			break;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			errno = EAGAIN;
			return -1;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : ECONNRESET;
		return -1;
	}
	return got;
}

int fwd_icap_tls_write(SSL *s, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	int r, e;

	if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return 0;
	ERR_clear_error();
	r = SSL_write(s, v.iov_base, (int)(v.iov_len > 65536 ? 65536 : v.iov_len));
	if (r > 0) {
		evbuffer_drain(out, (size_t)r);
		return r;
	}
	e = SSL_get_error(s, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPIPE;
	return -1;
}
