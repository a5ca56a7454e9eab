/*
 * core/arena: the per-request arena and the worker's spare blocks.  A
 * request's memory is carved from blocks freed all at once when the request
 * ends (gw_arena_free); standard blocks go back to the worker's spares for
 * the next request, since a malloc of this size is no tcache hit.  One
 * worker thread owns a spares list; nothing here locks.
 */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SPARE_BLKS 0   /* keep use-after-free of request memory visible to ASan */
#else
/* about the requests a busy worker has in flight at once (an HTTP/2 bench:
 * 50 clients x 10 streams): past the spares each request mallocs a block
 * of this size, which is no tcache hit; at most 2 MB kept */
#define SPARE_BLKS 512
#endif

void *gw_arena_grow(struct gw_arena_blk **head, size_t n)
{
	size_t cap = n > GW_ARENA_BLK ? n : GW_ARENA_BLK;
	struct gw_arena_blk *b = malloc(sizeof *b + cap);

	if (b == NULL)
		return NULL;
	b->next = *head;
	b->used = n;
	b->cap = cap;
	*head = b;
	return b->data;
}

void gw_arena_free(struct gw_arena_spares *p, struct gw_arena_blk *b)
{
	while (b != NULL) {
		struct gw_arena_blk *n = b->next;
		if (b->cap == GW_ARENA_BLK && p->nblk < SPARE_BLKS) {
			b->next = p->spare_blk;
			p->spare_blk = b;
			p->nblk++;
		} else {
			free(b);
		}
		b = n;
	}
}

/* A standard arena block from the spares, or NULL (gw_arena_raw makes one). */
struct gw_arena_blk *gw_arena_spare(struct gw_arena_spares *p)
{
	struct gw_arena_blk *b = p->spare_blk;

	if (b != NULL) {
		p->spare_blk = b->next;
		p->nblk--;
		b->next = NULL;
		b->used = 0;
	}
	return b;
}

/* Free the spares themselves (the worker is going away). */
void gw_arena_spares_clear(struct gw_arena_spares *p)
{
	while (p->spare_blk != NULL) {
		struct gw_arena_blk *b = p->spare_blk;
		p->spare_blk = b->next;
		free(b);
	}
	p->nblk = 0;
}
