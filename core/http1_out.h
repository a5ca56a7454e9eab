/*
 * core/http1_out: the pure HTTP/1 writer (see http1_out.c): field rules for
 * forwarding, the head builder, Via, header edits and chunk framing.
 */
#ifndef GW_HTTP1_OUT_H
#define GW_HTTP1_OUT_H

#include <stddef.h>
#include <string.h>

#include "core/http1.h"

struct evbuffer;

/* A header edit a family asked for (gw_req_hdr_add/del and the response
 * forms): a list kept newest first; name and value are NUL-terminated. */
struct gw_hdr_edit {
	struct gw_hdr_edit *next;
	const char *name;
	const char *value;
	size_t nlen, vlen;
	int del;
};

/*
 * Head builder: heads are assembled with memcpy in a stack buffer and added
 * to the evbuffer in one piece (printf-family formatting dominated the
 * per-request cost; see tests/bench/RESULTS.md).  Set dst and len = 0, put,
 * then gw_h1out_flush; a piece larger than the buffer goes straight to dst.
 */
struct gw_h1out {
	struct evbuffer *dst;
	size_t len;
	char buf[4096];
};

void gw_h1out_flush(struct gw_h1out *b);
/* gw_h1out_put's rare path: flush, then buffer s or add it straight to dst. */
void gw_h1out_put_slow(struct gw_h1out *b, const char *s, size_t n);

/* The put, str and hdr calls are inline: they run a dozen times per head,
 * mostly with literal lengths the compiler then copies without a call. */
static inline void gw_h1out_put(struct gw_h1out *b, const char *s, size_t n)
{
	if (__builtin_expect(b->len + n > sizeof b->buf, 0)) {
		gw_h1out_put_slow(b, s, n);
		return;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}
#define GW_H1OUT_LIT(b, lit) gw_h1out_put((b), (lit), sizeof(lit) - 1)

static inline void gw_h1out_str(struct gw_h1out *b, const char *s)
{
	gw_h1out_put(b, s, strlen(s));
}

/* "<name>: <value>\r\n" */
static inline void gw_h1out_hdr(struct gw_h1out *b, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	gw_h1out_put(b, name, nlen);
	GW_H1OUT_LIT(b, ": ");
	gw_h1out_put(b, value, vlen);
	GW_H1OUT_LIT(b, "\r\n");
}

/* v in base 10 or 16 (lower case). */
void gw_h1out_uint(struct gw_h1out *b, unsigned long long v, int base);
/* "Via: 1.<minor> <via>\r\n"; nothing when via is NULL or empty. */
/* (minor GW_H1OUT_VIA_H2: the message came over HTTP/2, "Via: 2 name") */
#define GW_H1OUT_VIA_H2 (-2)
void gw_h1out_via(struct gw_h1out *b, int minor, const char *via);
/* The additions of the edit list e, oldest first (at most 64); framing and
 * hop-by-hop fields are never added. */
void gw_h1out_edits(struct gw_h1out *b, const struct gw_hdr_edit *e);

/* Append "<hex>\r\n", a chunk-size line, to dst. */
void gw_h1out_chunk_line(struct evbuffer *dst, size_t n);

/* Is h named name (lower case; case-insensitive)? */
int gw_h1out_hdr_is(const struct gw_hdr *h, const char *name);
/* Is h a hop-by-hop field (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade)? */
int gw_h1out_hop_by_hop(const struct gw_hdr *h);
/* Is h named by a Connection header of head (hop-by-hop as well)? */
int gw_h1out_conn_listed(const struct gw_http_head *head, const struct gw_hdr *h);
/* Is name Content-Length or Transfer-Encoding (the fields that frame a body)? */
int gw_h1out_framing(const char *name, size_t len);
/* Does the edit list e delete h?  Never for a framing field. */
int gw_h1out_edit_deleted(const struct gw_hdr_edit *e, const struct gw_hdr *h);
/* Does the edit list e add a field named name? */
int gw_h1out_edit_has(const struct gw_hdr_edit *e, const char *name);
/* Does the sender of h want the connection kept open (HTTP/1.1 unless
 * "close", HTTP/1.0 only with "keep-alive")? */
int gw_h1out_keepalive(const struct gw_http_head *h);

#endif
