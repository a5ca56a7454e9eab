/*
 * core/sbuf: a growing, NUL-terminated text buffer written with printf
 * formats, for text built off the hot path (/metrics, the PAC file).  An
 * allocation failure is sticky: later writes do nothing and oom stays set, so
 * callers check once at the end.
 */
#ifndef GW_SBUF_H
#define GW_SBUF_H

#include <stddef.h>

struct gw_sbuf {
	char *p;        /* malloc'd; the caller owns it (free) */
	size_t len, cap;
	int oom;
};

/* Start with cap bytes; 0, or -1 (oom set) when out of memory. */
int gw_sbuf_init(struct gw_sbuf *b, size_t cap);
/* Append formatted text. */
void gw_sbuf_printf(struct gw_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
