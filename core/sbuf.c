/* core/sbuf: see sbuf.h. */
#include "core/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int gw_sbuf_init(struct gw_sbuf *b, size_t cap)
{
	b->len = 0;
	b->cap = cap ? cap : 1;
	b->oom = 0;
	b->p = malloc(b->cap);
	if (b->p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p[0] = '\0';
	return 0;
}

void gw_sbuf_printf(struct gw_sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		char *np;
		size_t cap;

		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		cap = b->cap * 2 + (size_t)n;
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}
