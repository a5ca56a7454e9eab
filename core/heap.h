/*
 * core/heap: how the process's malloc keeps freed memory (glibc).
 */
#ifndef GW_CORE_HEAP_H
#define GW_CORE_HEAP_H

#include <nghttp2/nghttp2.h>

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

/* libnghttp2's allocator for Gatehouse's sessions: blocks up to 2 KiB are
 * kept on a per-thread list per size class when freed (up to 4 MiB per
 * thread) and handed out again.  Why: a session allocates a handful of small blocks
 * per stream (the stream, queued frames, header copies), hundreds in
 * flight at once on a busy worker, which overflow glibc's per-thread cache
 * (7 per size) into its slow path.  Under AddressSanitizer nothing is kept. */
nghttp2_mem *gw_heap_nghttp2_mem(void);
/* The same allocator for Gatehouse's own small per-stream blocks: what
 * these return is freed with gw_heap_small_free only.  calloc: zeroed. */
void *gw_heap_small_calloc(size_t n);
void *gw_heap_small_realloc(void *p, size_t n);
void gw_heap_small_free(void *p);
/* libevent allocates through the same cache (its evbuffers and buffer
 * chains come and go with every request).  Call in main before any other
 * libevent call: a block libevent took before would be freed wrongly. */
void gw_heap_libevent(void);
/* Free the calling thread's kept blocks (a worker thread's last call). */
void gw_heap_small_flush(void);

#endif
