/*
 * forward/icap_tls: TLS toward icaps:// services (forward/icap.c runs
 * the exchanges; this file holds the OpenSSL side): a client context per
 * service that verifies the server against ca_file (or the system's trust
 * store), one SSL per connection with SNI and the uri's host checked, and
 * non-blocking handshake, read and write steps over evbuffers.
 */
#ifndef GW_FWD_ICAP_TLS_H
#define GW_FWD_ICAP_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct evbuffer;

/* A client context trusting ca_file (NULL: the system's store); NULL on
 * failure, with what went wrong in err. */
SSL_CTX *fwd_icap_tls_ctx(const char *ca_file, char *err, size_t cap);
/* A connection's TLS over connected socket fd toward host (a name: SNI
 * and the certificate's DNS names; an address: its IP SANs); NULL out of
 * memory. */
SSL *fwd_icap_tls_new(SSL_CTX *ctx, int fd, const char *host);
/* One handshake step: 1 done, 0 wants the socket readable (*wr = 0) or
 * writable (*wr = 1), -1 failed (the reason in err). */
int fwd_icap_tls_handshake(SSL *s, int *wr, char *err, size_t cap);
/* As evbuffer_read()/evbuffer_write(): bytes moved, 0 at the peer's
 * end (read), -1 with errno EAGAIN (try later) or another error. */
int fwd_icap_tls_read(SSL *s, struct evbuffer *in, size_t max);
int fwd_icap_tls_write(SSL *s, struct evbuffer *out);

#endif
