/*
 * core/check: the failure path of GW_CHECK_OBJ (core/check.h): say what was
 * found where, through the error log (a synchronous write), then abort.
 */
#include "core/check.h"

#include <stdlib.h>

#include "core/log.h"

void gw_check_fail(const char *expr, uint32_t want, uint32_t got, const char *file, int line)
{
	gw_error("%s:%d: object check failed: %s has magic 0x%08x, not 0x%08x (freed or foreign "
	    "object): aborting", file, line, expr, (unsigned)got, (unsigned)want);
	abort();
}
