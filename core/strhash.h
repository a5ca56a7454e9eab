/*
 * core/strhash.h: FNV-1a over a NUL-terminated string, for the core's and
 * the sides' small in-memory tables (upstream pool buckets, the origin TLS
 * session cache, the inspection's certificate cache).  Not for keys an
 * attacker picks to flood one bucket where that matters: those tables are
 * bounded and keyed by what the configuration allows.
 */
#ifndef GW_STRHASH_H
#define GW_STRHASH_H

#include <stdint.h>

static inline uint32_t gw_strhash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

#endif
