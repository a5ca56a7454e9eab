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

#endif
