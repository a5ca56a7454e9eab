/*
 * core/arena: the per-request arena (bump allocation in 16-byte aligned
 * blocks, all freed at once) and the per-worker list of spare standard
 * blocks it recycles.  Used by core/req.c for every struct gw_req.
 */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <stddef.h>
#include <string.h>

#define GW_ARENA_BLK 4000   /* bytes in a standard block (the worker keeps spares) */

struct gw_arena_blk {
	struct gw_arena_blk *next;
	size_t used, cap;
	_Alignas(16) char data[];
};

/* Standard blocks of finished requests, for reuse; owned by one worker
 * (embedded in its struct gw_pool). */
struct gw_arena_spares {
	struct gw_arena_blk *spare_blk;
	int nblk;
};

/* gw_arena_raw's rare path: push a new block of at least n bytes (n is
 * rounded already) and carve n from it; NULL when out of memory. */
void *gw_arena_grow(struct gw_arena_blk **head, size_t n);

/* n bytes from the arena *head (a new block is pushed when the first is
 * full), not zeroed; NULL when out of memory.  Inline: a request makes a
 * few dozen of these, and the common case is a bump of b->used. */
static inline void *gw_arena_raw(struct gw_arena_blk **head, size_t n)
{
	struct gw_arena_blk *b = *head;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (__builtin_expect(b == NULL || b->cap - b->used < n, 0))
		return gw_arena_grow(head, n);
	p = b->data + b->used;
	b->used += n;
	return p;
}

/* As gw_arena_raw, zeroed. */
static inline void *gw_arena_alloc(struct gw_arena_blk **head, size_t n)
{
	void *p = gw_arena_raw(head, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}
/* Free the chain b: standard blocks go to the spares p (up to a bound),
 * others to free(). */
void gw_arena_free(struct gw_arena_spares *p, struct gw_arena_blk *b);
/* A standard block from the spares (empty, unlinked), or NULL: then
 * gw_arena_raw makes one. */
struct gw_arena_blk *gw_arena_spare(struct gw_arena_spares *p);
/* Free all the spares. */
void gw_arena_spares_clear(struct gw_arena_spares *p);

#endif
