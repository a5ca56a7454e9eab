/*
 * core/hist: latency histograms for /metrics (Prometheus conventions: fixed
 * bucket bounds, cumulative at scrape, _sum and _count).  One row per worker,
 * allocated by that worker on its first observation; the worker is its only
 * writer (relaxed load + store, as core/counters.h), any thread sums.
 *
 * Label values are bounded: sites and upstreams are interned into two
 * append-only tables of GW_HIST_SLOTS names each (the configured names as
 * requests use them); a name past the cap is counted under "(other)".  A
 * reload that renames things adds names, never grows past the cap.
 */
#ifndef GW_HIST_H
#define GW_HIST_H

#include <stddef.h>
#include <stdint.h>

/* bucket upper bounds, seconds (the last bucket is +Inf) */
#define GW_HIST_BOUNDS 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
#define GW_HIST_NB 13                  /* finite bounds */
#define GW_HIST_SLOTS 64               /* names per label table (the last is "(other)") */

enum gw_hist_kind {
	GW_H_REQ_FAMILY,    /* request duration, slot = family index (core/stats.h) */
	GW_H_REQ_SITE,      /* reverse request duration, slot = site table */
	GW_H_UP_CONNECT,    /* upstream TCP connect time, slot = upstream table */
	GW_H_UP_FIRST_BYTE, /* request sent to first response byte, slot = upstream table */
	GW_H__N
};

enum gw_hist_table { GW_HT_SITE, GW_HT_UPSTREAM };

extern const double gw_hist_bounds[GW_HIST_NB];

/* The slot of name in table (interning it; lock-free when already known).
 * Any thread. */
int gw_hist_slot(enum gw_hist_table t, const char *name);
/* Names interned so far in table; slot i's name (any thread). */
int gw_hist_nslots(enum gw_hist_table t);
const char *gw_hist_slot_name(enum gw_hist_table t, int slot);

/* Worker w records seconds for (kind, slot).  Owner thread of row w only. */
void gw_hist_observe(int w, enum gw_hist_kind kind, int slot, double seconds);

/* Sum over the workers: cum[i] = observations <= bounds[i], cum[GW_HIST_NB] =
 * the count; *sum in seconds.  Any thread. */
void gw_hist_read(enum gw_hist_kind kind, int slot, uint64_t cum[GW_HIST_NB + 1], double *sum);

/* The q-quantile (0..1) estimated from cumulative buckets, interpolating
 * linearly inside a bucket (Prometheus histogram_quantile); -1 when empty. */
double gw_hist_quantile(const uint64_t cum[GW_HIST_NB + 1], double q);

#endif
