/*
 * fuzz.h: shared bits of the libFuzzer targets.  FZ_ASSERT aborts even when
 * NDEBUG is set, so the replay tests check the invariants in every build type.
 */
#ifndef GW_FUZZ_H
#define GW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ASSERT(c) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

/* p[0..n) lies inside buf[0..len) (NULL allowed only with n == 0). */
static inline int fz_inside(const void *p, size_t n, const void *buf, size_t len)
{
	const char *c = p, *b = buf;
	if (!c)
		return n == 0;
	return c >= b && n <= len && (size_t)(c - b) <= len - n;
}

#ifdef GW_HTTP1_H
static inline int fz_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	    (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* What an accepted head may never contain, whatever the parser thinks:
 * bare LF, bare CR, NUL, obs-fold; field names are tokens; values have no
 * CTL but HTAB and no surrounding whitespace; it ends with CRLF CRLF.
 * (Include core/http1.h before this header to get it.) */
static inline void fz_check_head_bytes(const char *b, size_t n, const struct gw_http_head *h)
{
	FZ_ASSERT(n >= 4 && memcmp(b + n - 4, "\r\n\r\n", 4) == 0);
	for (size_t i = 0; i < n; i++) {
		FZ_ASSERT(b[i] != '\0');
		if (b[i] == '\n')
			FZ_ASSERT(i > 0 && b[i - 1] == '\r');
		if (b[i] == '\r')
			FZ_ASSERT(i + 1 < n && b[i + 1] == '\n');
		if (b[i] == '\n' && i + 1 < n)
			FZ_ASSERT(b[i + 1] != ' ' && b[i + 1] != '\t');
	}
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *f = &h->hdrs[i];
		FZ_ASSERT(f->name_len > 0);
		for (size_t k = 0; k < f->name_len; k++)
			FZ_ASSERT(fz_tchar((unsigned char)f->name[k]));
		FZ_ASSERT(f->name[f->name_len] == ':');
		for (size_t k = 0; k < f->value_len; k++) {
			unsigned char c = (unsigned char)f->value[k];
			FZ_ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
		if (f->value_len) {
			FZ_ASSERT(f->value[0] != ' ' && f->value[0] != '\t');
			FZ_ASSERT(f->value[f->value_len - 1] != ' ' && f->value[f->value_len - 1] != '\t');
		}
	}
}

/* An accepted head never has a Connection header naming a field that a
 * forwarder must not drop (Content-Length, Transfer-Encoding; Host in a
 * request), by the match the forwarders use to drop. */
static inline void fz_check_connection(const struct gw_http_head *h, int resp)
{
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *f = &h->hdrs[i];
		if (f->name_len != 10 || strncasecmp(f->name, "connection", 10) != 0)
			continue;
		FZ_ASSERT(!gw_http1_list_has(f->value, f->value_len, "content-length"));
		FZ_ASSERT(!gw_http1_list_has(f->value, f->value_len, "transfer-encoding"));
		FZ_ASSERT(resp || !gw_http1_list_has(f->value, f->value_len, "host"));
	}
}
#endif

#endif
