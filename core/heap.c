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

#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
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

/* ---- small blocks kept per thread (libnghttp2's sessions) ---- */

#define SMALL_STEP 64
#define SMALL_CLASSES 32   /* blocks up to SMALL_STEP * SMALL_CLASSES bytes */
#if defined(__SANITIZE_ADDRESS__)
#define SMALL_KEEP 0       /* keep use-after-free visible to ASan */
#else
#define SMALL_KEEP (4 << 20)   /* bytes kept per thread, all classes */
#endif

/* Before each block: its class (SMALL_CLASSES: a big one) and usable size;
 * 16 bytes, so the block keeps malloc's alignment. */
struct small_hdr {
	size_t cls;
	size_t size;
};

struct small_free {
	struct small_free *next;
};

static __thread struct {
	struct small_free *head;
	unsigned n;
} kept[SMALL_CLASSES];
static __thread size_t kept_bytes;

static void *small_alloc(size_t n)
{
	size_t cls = n == 0 ? 0 : (n - 1) / SMALL_STEP;
	struct small_hdr *h;

	if (cls < SMALL_CLASSES && kept[cls].head != NULL) {
		struct small_free *f = kept[cls].head;
		kept[cls].head = f->next;
		kept[cls].n--;
		kept_bytes -= (cls + 1) * SMALL_STEP;
		return f;
	}
	if (cls < SMALL_CLASSES) {
		if ((h = malloc(sizeof *h + (cls + 1) * SMALL_STEP)) == NULL)
			return NULL;
		h->size = (cls + 1) * SMALL_STEP;
	} else {
		if (n > SIZE_MAX - sizeof *h || (h = malloc(sizeof *h + n)) == NULL)
			return NULL;
		cls = SMALL_CLASSES;
		h->size = n;
	}
	h->cls = cls;
	return h + 1;
}

static void small_free(void *p)
{
	struct small_hdr *h;

	if (p == NULL)
		return;
	h = (struct small_hdr *)p - 1;
#if SMALL_KEEP > 0
	if (h->cls < SMALL_CLASSES && kept_bytes + h->size <= SMALL_KEEP) {
		struct small_free *f = p;
		f->next = kept[h->cls].head;
		kept[h->cls].head = f;
		kept[h->cls].n++;
		kept_bytes += h->size;
		return;
	}
#endif
	free(h);
}

void gw_heap_small_flush(void)
{
	for (int i = 0; i < SMALL_CLASSES; i++) {
		while (kept[i].head != NULL) {
			struct small_free *f = kept[i].head;
			kept[i].head = f->next;
			free((struct small_hdr *)(void *)f - 1);
		}
		kept[i].n = 0;
	}
	kept_bytes = 0;
}

static void *mem_malloc(size_t n, void *u)
{
	(void)u;
	return small_alloc(n);
}

static void mem_free(void *p, void *u)
{
	(void)u;
	small_free(p);
}

static void *mem_calloc(size_t k, size_t n, void *u)
{
	void *p;

	(void)u;
	if (n != 0 && k > SIZE_MAX / n)
		return NULL;
	if ((p = small_alloc(k * n)) != NULL)
		memset(p, 0, k * n);
	return p;
}

static void *mem_realloc(void *p, size_t n, void *u)
{
	struct small_hdr *h;
	void *q;

	(void)u;
	if (p == NULL)
		return small_alloc(n);
	h = (struct small_hdr *)p - 1;
	if (n <= h->size && (h->cls < SMALL_CLASSES || n > h->size / 2))
		return p;   /* fits (a big block is not shrunk below half) */
	if ((q = small_alloc(n)) == NULL)
		return NULL;
	memcpy(q, p, n < h->size ? n : h->size);
	small_free(p);
	return q;
}

void *gw_heap_small_calloc(size_t n)
{
	return mem_calloc(1, n, NULL);
}

void *gw_heap_small_realloc(void *p, size_t n)
{
	return mem_realloc(p, n, NULL);
}

void gw_heap_small_free(void *p)
{
	small_free(p);
}

static nghttp2_mem nghttp2_mem_small = { NULL, mem_malloc, mem_free, mem_calloc, mem_realloc };

nghttp2_mem *gw_heap_nghttp2_mem(void)
{
	return &nghttp2_mem_small;
}

static void *ev_malloc(size_t n)
{
	return small_alloc(n);
}

static void *ev_realloc(void *p, size_t n)
{
	return mem_realloc(p, n, NULL);
}

static void ev_free(void *p)
{
	small_free(p);
}

void gw_heap_libevent(void)
{
	event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
}
