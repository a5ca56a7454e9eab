/*
 * core/check.h: checked magics on long-lived objects (DESIGN: "a magic
 * number checked on entry, cheap, always on").  GW_CHECK_OBJ(p, MAGIC) at
 * the top of an event callback costs one compare; on a mismatch (a freed or
 * foreign object reached through a stale pointer) it logs what it found and
 * aborts at once: an immediate crash at the culprit instead of a
 * use-after-free that corrupts memory and fails somewhere else later.
 * Also in release builds, on purpose.
 */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include <stdint.h>

/* Log "object check failed" with the expression, the magic wanted and
 * found (0 for NULL) and the place, then abort().  Never returns. */
_Noreturn void gw_check_fail(const char *expr, uint32_t want, uint32_t got, const char *file, int line);

#define GW_CHECK_OBJ(p, m) do { \
	if (__builtin_expect((p) == NULL || (p)->magic != (m), 0)) \
		gw_check_fail(#p, (m), (p) != NULL ? (p)->magic : 0, __FILE__, __LINE__); \
} while (0)

#endif
