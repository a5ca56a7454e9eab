/*
 * core/heap: how the process's malloc keeps freed memory (glibc).
 */
#ifndef GW_CORE_HEAP_H
#define GW_CORE_HEAP_H

/* Fixed malloc thresholds (core/heap.c says why): allocations below
 * GW_HEAP_MMAP_MIN (the largest buffer chain the data path takes per read,
 * READ_MAX rounded up to a power of two by libevent, is 512 KiB) come from
 * the arenas, and an arena keeps up to GW_HEAP_KEEP bytes free before it
 * hands memory back to the kernel.  Call once in main, before any thread starts.  Does nothing
 * when GLIBC_TUNABLES sets malloc tunables (the operator's word wins) or
 * on a C library other than glibc.  Returns 1 when it tuned, else 0. */
#define GW_HEAP_MMAP_MIN (1024 * 1024)
#define GW_HEAP_KEEP (16 * 1024 * 1024)
int gw_heap_tune(void);

#endif
