/*
 * core/counters: a family's own counters (rule hits, requests per site),
 * one row per worker.  Worker w allocates its row on its first increment
 * (once per row owner, never per request) and is its only writer: a relaxed
 * load and store, no locked instruction.  Any thread may sum with relaxed
 * loads, so a sum may lag by a few increments.  The rows live as long as
 * the struct (typically one configuration generation's side data).
 */
#ifndef GW_COUNTERS_H
#define GW_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/snapshot.h"

struct gw_counters {
	size_t n;                                       /* counters per row */
	_Atomic(_Atomic uint64_t *) rows[GW_MAX_WORKERS];
};

/* Worker w adds one to counter idx (ignored when out of range or out of memory). */
static inline void gw_counters_add(struct gw_counters *k, int w, size_t idx)
{
	_Atomic uint64_t *row;

	if (w < 0 || w >= GW_MAX_WORKERS || idx >= k->n)
		return;
	row = atomic_load_explicit(&k->rows[w], memory_order_acquire);
	if (row == NULL) {
		/* only worker w ever writes rows[w] */
		row = calloc(k->n, sizeof *row);
		if (row == NULL)
			return;
		atomic_store_explicit(&k->rows[w], row, memory_order_release);
	}
	atomic_store_explicit(&row[idx], atomic_load_explicit(&row[idx], memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

/* Counter idx summed over the workers (any thread). */
static inline uint64_t gw_counters_sum(struct gw_counters *k, size_t idx)
{
	uint64_t n = 0;

	for (int w = 0; w < GW_MAX_WORKERS && idx < k->n; w++) {
		_Atomic uint64_t *row = atomic_load_explicit(&k->rows[w], memory_order_acquire);
		if (row != NULL)
			n += atomic_load_explicit(&row[idx], memory_order_relaxed);
	}
	return n;
}

/* Free the rows (no worker may add any more). */
static inline void gw_counters_free(struct gw_counters *k)
{
	for (int w = 0; w < GW_MAX_WORKERS; w++)
		free((void *)atomic_load(&k->rows[w]));
}

#endif
