/*
 * core/heap: glibc malloc thresholds set once at start-up.
 *
 * Why: a big origin read reserves a READ_MAX (256 KiB) evbuffer chain,
 * which libevent rounds up to a 512 KiB allocation, and a 1 MiB answer
 * lives for a few milliseconds in such chains and in 16 KiB frame chains.
 * With glibc's defaults the fate of that memory depends on the heap's
 * history: below the dynamic mmap threshold it is mmap'd and munmap'd per
 * chain; above it, it comes from the arena's top and, once the top holds
 * more than the (dynamic) trim threshold free, free() hands it back with
 * madvise(MADV_DONTNEED).  Either way every later chain page-faults its
 * pages in again, and the copies into fresh chains (readv, the DATA frame
 * copy, the TLS record pullup) run at page-fault speed.  Which of the
 * cases happens depends on what else sits on the heap: after 50 h2
 * connections had closed (their memory free at the top of the arena),
 * h2load -c4 /1m ran at 65-95 MB/s with a full CPU (one madvise per
 * answer, readv at ~800 us per call), against 800+ MB/s otherwise.
 * Fixed thresholds make it independent of the history: chains up to
 * GW_HEAP_MMAP_MIN come from the arenas, and an arena keeps up to
 * GW_HEAP_KEEP free before trimming (setting either turns glibc's dynamic
 * adjustment off).
 */
#include "core/heap.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

int gw_heap_tune(void)
{
#if defined(__GLIBC__) && defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	const char *t = getenv("GLIBC_TUNABLES");

	if (t != NULL && strstr(t, "glibc.malloc.") != NULL)
		return 0;   /* set by the operator: theirs */
	if (mallopt(M_MMAP_THRESHOLD, GW_HEAP_MMAP_MIN) != 1 || mallopt(M_TRIM_THRESHOLD, GW_HEAP_KEEP) != 1)
		return 0;
	return 1;
#else
	return 0;
#endif
}
