/*
 * forward/topk: a bounded "heavy hitters" counter (the Space-Saving
 * algorithm, Metwally et al. 2005) for the console's top allowed and top
 * blocked domains.  A table has FWD_TOPK_SLOTS fixed slots and never
 * allocates: a name already in the table is counted exactly; a new name
 * takes a free slot, or else replaces the slot with the smallest count c,
 * starting at c + 1 with an error bound of c.  For every name kept,
 * count - err <= true count <= count, and every name seen more than
 * N / FWD_TOPK_SLOTS times (N = all adds) is kept.
 *
 * Pure: no locking, no I/O.  One writer per table; forward/observe.c puts
 * one table per worker behind that worker's (uncontended) lock and merges
 * copies on the main thread.
 */
#ifndef GW_FORWARD_TOPK_H
#define GW_FORWARD_TOPK_H

#include <stddef.h>
#include <stdint.h>

#define FWD_TOPK_SLOTS 64
#define FWD_TOPK_NAME 96           /* longer names are cut (the hash covers all of it) */

struct fwd_topk {
	uint32_t used;
	uint64_t hash[FWD_TOPK_SLOTS];     /* scanned first: one cache-friendly array */
	uint64_t count[FWD_TOPK_SLOTS];
	uint64_t err[FWD_TOPK_SLOTS];
	char name[FWD_TOPK_SLOTS][FWD_TOPK_NAME];
};

struct fwd_topk_item {
	char name[FWD_TOPK_NAME];
	uint64_t count;                    /* upper bound of the true count */
	uint64_t err;                      /* count - err is a lower bound */
};

/* Count one occurrence of name[0..len), lower-cased (ASCII).  t must be
 * zeroed before the first call. */
void fwd_topk_add(struct fwd_topk *t, const char *name, size_t len);

/*
 * Merge n tables (copies: nothing else may write them meanwhile) into the
 * max names with the highest counts, highest first (ties by name).  A name
 * missing from a full table may still have up to that table's smallest
 * count there: that is added to both its count and its err, so the bounds
 * above still hold for the merged numbers.  Returns how many were written.
 */
size_t fwd_topk_merge(const struct fwd_topk *const *t, size_t n, struct fwd_topk_item *out, size_t max);

#endif
