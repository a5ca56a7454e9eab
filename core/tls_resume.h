/*
 * Client-side TLS session resumption toward upstreams (forward inspection's
 * origin handshakes): a bounded cache of SSL_SESSIONs per client context,
 * keyed by the name verified and the address connected to, and (verifying
 * contexts) a memo of the chains that passed verification for that key, so a
 * full handshake presenting the same chain skips the chain check (see
 * tls_resume.c for why that is safe).
 */
#ifndef GW_TLS_RESUME_H
#define GW_TLS_RESUME_H

#include <openssl/ssl.h>

struct gw_tls_resume;

/* Attach a cache to client context ctx (one per gw_tls generation: a reload
 * builds new contexts, so a session never outlives the trust store and
 * verification rules it was accepted under).  NULL on allocation failure. */
struct gw_tls_resume *gw_tls_resume_new(SSL_CTX *ctx);
void gw_tls_resume_free(struct gw_tls_resume *r);

/* Offer the session cached under host + "|" + addr on s (if any) and remember
 * the key, so the session(s) the server issues on s are stored under it.
 * Any thread.  Returns 0, or -1 when the key could not be kept (s then
 * simply does not resume). */
int gw_tls_resume_offer(struct gw_tls_resume *r, SSL *s, const char *host, const char *addr);

#endif
