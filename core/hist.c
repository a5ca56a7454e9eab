/*
 * core/hist: per-worker latency histograms (see hist.h).
 */
#include "core/hist.h"

#include "core/snapshot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const double gw_hist_bounds[GW_HIST_NB] = { GW_HIST_BOUNDS };

/* per series: GW_HIST_NB + 1 bucket counts (not cumulative), then the sum in
 * microseconds */
#define SERIES_W (GW_HIST_NB + 2)
#define ROW_LEN ((size_t)GW_H__N * GW_HIST_SLOTS * SERIES_W)

static _Atomic(_Atomic uint64_t *) rows[GW_MAX_WORKERS];

struct name_table {
	pthread_mutex_t mu;           /* writers of names[] */
	_Atomic int n;                /* published names */
	char *names[GW_HIST_SLOTS];
};

static struct name_table tables[2] = {
	{ .mu = PTHREAD_MUTEX_INITIALIZER },
	{ .mu = PTHREAD_MUTEX_INITIALIZER },
};

static int find(struct name_table *t, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(t->names[i], name) == 0)
			return i;
	return -1;
}

int gw_hist_slot(enum gw_hist_table which, const char *name)
{
	struct name_table *t = &tables[which & 1];
	int n = atomic_load_explicit(&t->n, memory_order_acquire);
	int i = find(t, n, name);

	if (i >= 0)
		return i;
	pthread_mutex_lock(&t->mu);
	n = atomic_load_explicit(&t->n, memory_order_relaxed);
	i = find(t, n, name);
	if (i < 0) {
		/* the last slot is "(other)": label values stay bounded */
		const char *v = n < GW_HIST_SLOTS - 1 ? name : "(other)";
		i = find(t, n, v);
		if (i < 0 && (t->names[n] = strdup(v)) != NULL) {
			i = n;
			atomic_store_explicit(&t->n, n + 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return i < 0 ? GW_HIST_SLOTS - 1 : i;   /* out of memory: counted, unnamed */
}

int gw_hist_nslots(enum gw_hist_table which)
{
	return atomic_load_explicit(&tables[which & 1].n, memory_order_acquire);
}

const char *gw_hist_slot_name(enum gw_hist_table which, int slot)
{
	struct name_table *t = &tables[which & 1];

	return slot >= 0 && slot < atomic_load_explicit(&t->n, memory_order_acquire) ? t->names[slot] : "";
}

static void inc(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

void gw_hist_observe(int w, enum gw_hist_kind kind, int slot, double seconds)
{
	_Atomic uint64_t *row, *s;
	int b;

	if (w < 0 || w >= GW_MAX_WORKERS || (unsigned)kind >= GW_H__N || slot < 0 || slot >= GW_HIST_SLOTS)
		return;
	row = atomic_load_explicit(&rows[w], memory_order_acquire);
	if (row == NULL) {
		/* only worker w ever writes rows[w]; kept for the process lifetime */
		row = calloc(ROW_LEN, sizeof *row);
		if (row == NULL)
			return;
		atomic_store_explicit(&rows[w], row, memory_order_release);
	}
	if (seconds < 0)
		seconds = 0;
	for (b = 0; b < GW_HIST_NB && seconds > gw_hist_bounds[b]; b++)
		;
	s = row + ((size_t)kind * GW_HIST_SLOTS + (size_t)slot) * SERIES_W;
	inc(&s[b], 1);
	inc(&s[GW_HIST_NB + 1], (uint64_t)(seconds * 1e6 + 0.5));
}

void gw_hist_read(enum gw_hist_kind kind, int slot, uint64_t cum[GW_HIST_NB + 1], double *sum)
{
	uint64_t us = 0;

	memset(cum, 0, sizeof(uint64_t) * (GW_HIST_NB + 1));
	*sum = 0;
	if ((unsigned)kind >= GW_H__N || slot < 0 || slot >= GW_HIST_SLOTS)
		return;
	for (int w = 0; w < GW_MAX_WORKERS; w++) {
		_Atomic uint64_t *row = atomic_load_explicit(&rows[w], memory_order_acquire), *s;
		if (row == NULL)
			continue;
		s = row + ((size_t)kind * GW_HIST_SLOTS + (size_t)slot) * SERIES_W;
		for (int b = 0; b <= GW_HIST_NB; b++)
			cum[b] += atomic_load_explicit(&s[b], memory_order_relaxed);
		us += atomic_load_explicit(&s[GW_HIST_NB + 1], memory_order_relaxed);
	}
	for (int b = 1; b <= GW_HIST_NB; b++)
		cum[b] += cum[b - 1];
	*sum = (double)us / 1e6;
}

double gw_hist_quantile(const uint64_t cum[GW_HIST_NB + 1], double q)
{
	uint64_t total = cum[GW_HIST_NB];
	double rank, lo = 0, prev = 0;

	if (total == 0)
		return -1;
	rank = q * (double)total;
	for (int b = 0; b < GW_HIST_NB; b++) {
		if ((double)cum[b] >= rank) {
			double in = (double)cum[b] - prev;
			return in > 0 ? lo + (gw_hist_bounds[b] - lo) * (rank - prev) / in : gw_hist_bounds[b];
		}
		lo = gw_hist_bounds[b];
		prev = (double)cum[b];
	}
	return gw_hist_bounds[GW_HIST_NB - 1];   /* in +Inf: the highest finite bound */
}
