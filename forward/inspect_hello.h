/*
 * forward/inspect_hello: a TLS ClientHello parser of its own (no SSL
 * object), for deciding about a CONNECT before any TLS work: the name
 * (SNI), the protocols offered (ALPN) and the highest version.  Pure: reads
 * bytes, writes the result.
 *
 * It reassembles the handshake message across TLS records (a ClientHello
 * may span records, and records arrive split across TCP segments: a hello
 * with a post-quantum key share is ~1.6 KB), so the caller passes all the
 * bytes received so far each time and gets "need more" until the message
 * is whole.  The message is capped at FWD_HELLO_MAX bytes.
 */
#ifndef GW_FORWARD_INSPECT_HELLO_H
#define GW_FORWARD_INSPECT_HELLO_H

#include <stddef.h>

#define FWD_HELLO_MAX (16 * 1024)  /* handshake message bytes at most */

/* Outcomes: > 0 a whole hello, 0 need more bytes, < 0 a defined refusal. */
#define FWD_HELLO_RESULTS(X) \
	X(OK, 1, "client hello") \
	X(MORE, 0, "incomplete") \
	X(NOT_TLS, -1, "not TLS") \
	X(SSLV2, -2, "SSLv2 hello") \
	X(OLD_VERSION, -3, "TLS version below 1.2") \
	X(TOO_BIG, -4, "client hello over 16 KiB") \
	X(MALFORMED, -5, "malformed client hello")

enum fwd_hello_result {
#define X(id, v, s) FWD_HELLO_##id = v,
	FWD_HELLO_RESULTS(X)
#undef X
};

struct fwd_hello {
	char sni[256];             /* host_name, lower-cased; "" when none */
	unsigned version;          /* highest offered: 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	int alpn_h1, alpn_h2;      /* "http/1.1" / "h2" offered */
	int alpn_h2_first;         /* both offered, "h2" before "http/1.1" */
	int alpn_any;              /* an ALPN extension was sent */
	size_t bytes;              /* bytes of records the hello took (from the start) */
};

/* Parse p[0..n) (everything the client sent so far) into *h. */
enum fwd_hello_result fwd_hello_parse(const unsigned char *p, size_t n, struct fwd_hello *h);
/* "client hello", "not TLS", ... */
const char *fwd_hello_result_name(enum fwd_hello_result r);

#endif
