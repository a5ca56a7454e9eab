/*
 * core/http1_out: the HTTP/1 writer's pure parts.  Which fields never go on
 * (hop-by-hop ones, those a Connection header names, edits that delete),
 * the head builder the core writes request and response heads with, Via,
 * header edits, chunk-size lines and the keep-alive rule of a head.  It
 * knows no connection or request (core/conn_int.h): its input is a parsed
 * head (core/http1.h), edit lists and an evbuffer, so it is unit-tested on
 * its own (tests/unit/core/test_http1_out.c).
 */
#include "core/http1_out.h"

#include <event2/buffer.h>
#include <string.h>
#include <strings.h>

int gw_h1out_hdr_is(const struct gw_hdr *h, const char *name)
{
	size_t n = strlen(name);

	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Is header h named by any Connection header of head (hop-by-hop)? */
int gw_h1out_conn_listed(const struct gw_http_head *head, const struct gw_hdr *h)
{
	char name[128];

	if (!(head->flags & GW_HF_HAS_CONNECTION) || h->name_len >= sizeof name)
		return 0;
	memcpy(name, h->name, h->name_len);
	name[h->name_len] = '\0';
	for (size_t i = 0; i < head->nhdrs; i++) {
		const struct gw_hdr *c = &head->hdrs[i];
		if (gw_h1out_hdr_is(c, "connection") && gw_http1_list_has(c->value, c->value_len, name))
			return 1;
	}
	return 0;
}

int gw_h1out_hop_by_hop(const struct gw_hdr *h)
{
	/* by length first: this runs for every header of every message */
	switch (h->name_len) {
	case 2: return strncasecmp(h->name, "te", 2) == 0;
	case 7: return strncasecmp(h->name, "trailer", 7) == 0 ||
	    strncasecmp(h->name, "upgrade", 7) == 0;
	case 10: return strncasecmp(h->name, "connection", 10) == 0 ||
	    strncasecmp(h->name, "keep-alive", 10) == 0;
	case 16: return strncasecmp(h->name, "proxy-connection", 16) == 0;
	case 17: return strncasecmp(h->name, "transfer-encoding", 17) == 0;
	default: return 0;
	}
}

/* Content-Length or Transfer-Encoding: the fields that frame a body. */
int gw_h1out_framing(const char *name, size_t len)
{
	return (len == 14 && strncasecmp(name, "content-length", 14) == 0) ||
	    (len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0);
}

int gw_h1out_edit_deleted(const struct gw_hdr_edit *e, const struct gw_hdr *h)
{
	/* framing is the core's: no edit unframes a body (the writers check) */
	if (e == NULL || gw_h1out_framing(h->name, h->name_len))
		return 0;
	for (; e != NULL; e = e->next)
		if (e->del && h->name_len == e->nlen && strncasecmp(h->name, e->name, e->nlen) == 0)
			return 1;
	return 0;
}

void gw_h1out_flush(struct gw_h1out *b)
{
	if (b->len > 0)
		evbuffer_add(b->dst, b->buf, b->len);
	b->len = 0;
}

void gw_h1out_put_slow(struct gw_h1out *b, const char *s, size_t n)
{
	gw_h1out_flush(b);
	if (n > sizeof b->buf) {
		evbuffer_add(b->dst, s, n);
		return;
	}
	memcpy(b->buf, s, n);
	b->len = n;
}

void gw_h1out_uint(struct gw_h1out *b, unsigned long long v, int base)
{
	char tmp[24];
	int i = (int)sizeof tmp;

	do {
		tmp[--i] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v > 0);
	gw_h1out_put(b, tmp + i, sizeof tmp - (size_t)i);
}

/* Append "<hex>\r\n", a chunk-size line, to dst. */
void gw_h1out_chunk_line(struct evbuffer *dst, size_t n)
{
	char tmp[24];
	int i = (int)sizeof tmp;

	tmp[--i] = '\n';
	tmp[--i] = '\r';
	do {
		tmp[--i] = "0123456789abcdef"[n & 15];
		n >>= 4;
	} while (n > 0);
	evbuffer_add(dst, tmp + i, sizeof tmp - (size_t)i);
}

int gw_h1out_edit_has(const struct gw_hdr_edit *e, const char *name)
{
	for (; e != NULL; e = e->next)
		if (!e->del && strcasecmp(e->name, name) == 0)
			return 1;
	return 0;
}

/* "Via: 1.<minor> <name>" (RFC 9110 7.6.3), unless no name is configured. */
void gw_h1out_via(struct gw_h1out *b, int minor, const char *via)
{
	if (via == NULL || via[0] == '\0')
		return;
	if (minor == GW_H1OUT_VIA_H2) {
		GW_H1OUT_LIT(b, "Via: 2 ");   /* RFC 9110 7.6.3: received over HTTP/2 */
		gw_h1out_str(b, via);
		GW_H1OUT_LIT(b, "\r\n");
		return;
	}
	GW_H1OUT_LIT(b, "Via: 1.");
	gw_h1out_uint(b, (unsigned)minor, 10);
	GW_H1OUT_LIT(b, " ");
	gw_h1out_str(b, via);
	GW_H1OUT_LIT(b, "\r\n");
}

void gw_h1out_edits(struct gw_h1out *b, const struct gw_hdr_edit *e)
{
	/* edits are kept newest first; emit in the order they were added */
	const struct gw_hdr_edit *stack[64];
	int n = 0;

	for (; e != NULL && n < 64; e = e->next) {
		struct gw_hdr x = { .name = e->name, .name_len = (uint32_t)e->nlen };
		/* framing and connection fields are the core's to write */
		if (!e->del && !gw_h1out_framing(e->name, e->nlen) && !gw_h1out_hop_by_hop(&x))
			stack[n++] = e;
	}
	while (n-- > 0)
		gw_h1out_hdr(b, stack[n]->name, stack[n]->nlen, stack[n]->value, stack[n]->vlen);
}

int gw_h1out_keepalive(const struct gw_http_head *h)
{
	if (h->flags & GW_HF_CONN_CLOSE)
		return 0;
	if (h->version_minor >= 1)
		return 1;
	return (h->flags & GW_HF_CONN_KEEPALIVE) != 0;
}
