/*
 * admin/api_stats: GET stats, and the 1 s sampler behind it: a timer on
 * the main loop reads the summed stats (gw_control_stats) every second and
 * keeps 15 minutes of per-second rates per family for the Overview charts;
 * the same tick ends idle console sessions (adm_sessions_gc).
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/hist.h"
#include "core/snapshot.h"
#include "core/stats.h"

#define NSAMPLES 900           /* 15 minutes of 1 s samples */

/* One second of traffic: rates per second, per family (core/stats.h). */
struct sample {
	double t;
	float req[GW_MAX_FAMILIES], bin[GW_MAX_FAMILIES], bout[GW_MAX_FAMILIES], e5[GW_MAX_FAMILIES];
	uint32_t active, active_fam[GW_MAX_FAMILIES];
};


static struct {
	struct event *ev_tick;
	struct sample ring[NSAMPLES];
	uint64_t nsamples;         /* ever taken; sequence of ring[(n-1) % N] is n */
	struct gw_stats_snapshot prev;
	double prev_t;
} S;

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stats_snapshot st;
	struct sample *sm;
	double t = gw_wall_now(), dt;

	(void)fd;
	(void)what;
	(void)arg;
	gw_control_stats(&st);
	dt = t - S.prev_t;
	if (dt <= 0.05)
		dt = 0.05;
	sm = &S.ring[S.nsamples % NSAMPLES];
	memset(sm, 0, sizeof *sm);
	sm->t = t;
	for (int f = 0; f < gw_stats_nfamilies(); f++) {
#define RATE(k) (float)((double)(st.fam[f][k] - S.prev.fam[f][k]) / dt)
		sm->req[f] = RATE(GW_FC_REQUESTS);
		sm->bin[f] = RATE(GW_FC_BYTES_IN);
		sm->bout[f] = RATE(GW_FC_BYTES_OUT);
		sm->e5[f] = RATE(GW_FC_STATUS_5XX);
#undef RATE
	}
	sm->active = (uint32_t)st.conns_active;
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		sm->active_fam[f] = (uint32_t)st.conns_active_fam[f];
	S.nsamples++;
	S.prev = st;
	S.prev_t = t;
	adm_sessions_gc();
}

int adm_api_stats_init(void)
{
	static const struct timeval one = { 1, 0 };

	if (S.ev_tick != NULL)
		return 0;
	memset(&S, 0, sizeof S);
	gw_control_stats(&S.prev);
	S.prev_t = gw_wall_now();
	S.ev_tick = event_new(adm_base, -1, EV_PERSIST, tick, NULL);
	if (S.ev_tick == NULL || event_add(S.ev_tick, &one) < 0)
		return -1;
	return 0;
}

void adm_api_stats_free(void)
{
	if (S.ev_tick != NULL)
		event_free(S.ev_tick);
	memset(&S, 0, sizeof S);
}

/* ---- GET stats ---- */

static json_t *family_json(const struct gw_stats_snapshot *st, int f)
{
	json_t *o = json_object();

	for (int k = 0; k < GW_FC__N; k++)
		json_object_set_new(o, gw_fcounter_names[k], json_integer((json_int_t)st->fam[f][k]));
	return o;
}

/* {count, p50, p95} of one latency histogram since start (seconds, null
 * when empty), estimated from the /metrics buckets. */
static json_t *latency_json(enum gw_hist_kind kind, int slot)
{
	uint64_t cum[GW_HIST_NB + 1];
	double sum, p50, p95;

	gw_hist_read(kind, slot, cum, &sum);
	p50 = gw_hist_quantile(cum, 0.5);
	p95 = gw_hist_quantile(cum, 0.95);
	return json_pack("{s:I,s:o,s:o,s:f}", "count", (json_int_t)cum[GW_HIST_NB],
	    "p50", p50 < 0 ? json_null() : json_real(p50), "p95", p95 < 0 ? json_null() : json_real(p95),
	    "sum", sum);
}

/* The samples' column names: "t", each rate per family ("fwd_rps",
 * "rev_rps", ...: families by short name), "active", each family's active
 * connections.  sample_json() writes a row in the same order. */
static json_t *sample_columns(void)
{
	static const char *const rates[] = { "rps", "in_bps", "out_bps", "5xx_ps" };
	json_t *a = json_pack("[s]", "t");
	char name[64];

	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
		for (int f = 0; f < gw_stats_nfamilies(); f++) {
			snprintf(name, sizeof name, "%s_%s", gw_stats_family_short(f), rates[r]);
			json_array_append_new(a, json_string(name));
		}
	json_array_append_new(a, json_string("active"));
	for (int f = 0; f < gw_stats_nfamilies(); f++) {
		snprintf(name, sizeof name, "%s_active", gw_stats_family_short(f));
		json_array_append_new(a, json_string(name));
	}
	return a;
}

static json_t *sample_json(const struct sample *sm)
{
	const float *rates[] = { sm->req, sm->bin, sm->bout, sm->e5 };
	json_t *a = json_pack("[f]", sm->t);

	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
		for (int f = 0; f < gw_stats_nfamilies(); f++)
			json_array_append_new(a, json_real((double)rates[r][f]));
	json_array_append_new(a, json_integer((json_int_t)sm->active));
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		json_array_append_new(a, json_integer((json_int_t)sm->active_fam[f]));
	return a;
}

json_t *adm_api_stats(struct MHD_Connection *c)
{
	struct gw_stats_snapshot st;
	const struct gw_snapshot *s = gw_control_snapshot();
	uint64_t since = adm_arg_u64(c, "since"), first, n = S.nsamples;
	json_t *fam = json_object(), *close = json_object(), *rows = json_array();

	gw_control_stats(&st);
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		json_object_set_new(fam, gw_stats_family_name(f), family_json(&st, f));
	for (int k = 0; k < GW_CLOSE__N; k++)
		json_object_set_new(close, gw_close_reason_names[k], json_integer((json_int_t)st.close[k]));
	first = n > NSAMPLES ? n - NSAMPLES : 0;
	if (since > first)
		first = since;
	for (uint64_t q = first; q < n; q++)
		json_array_append_new(rows, sample_json(&S.ring[q % NSAMPLES]));
	for (int f = 0; f < gw_stats_nfamilies(); f++) {
		json_object_set_new(json_object_get(fam, gw_stats_family_name(f)), "active_connections",
		    json_integer((json_int_t)st.conns_active_fam[f]));
		json_object_set_new(json_object_get(fam, gw_stats_family_name(f)), "latency",
		    latency_json(GW_H_REQ_FAMILY, f));
	}
	{
		/* reverse sites: the site names requests used (bounded, see core/hist.h) */
		json_t *sites = json_object();
		for (int i = 0; i < gw_hist_nslots(GW_HT_SITE); i++)
			json_object_set_new(sites, gw_hist_slot_name(GW_HT_SITE, i), latency_json(GW_H_REQ_SITE, i));
		json_object_set_new(json_object_get(fam, "reverse"), "site_latency", sites);
	}
	return json_pack("{s:s,s:f,s:f,s:I,s:f,s:i,s:o,s:o,s:I,s:{s:I,s:I,s:I},s:I,"
	    "s:o,s:o,s:o}",
	    "version", GW_VERSION, "now", gw_wall_now(), "started_at", gw_control_started_at(),
	    "generation", (json_int_t)s->generation, "loaded_at", s->loaded_at,
	    "workers", gw_control_nworkers(),
	    "families", fam, "close_reasons", close,
	    "active_connections", (json_int_t)st.conns_active,
	    "dns", "queries", (json_int_t)st.dns_queries, "cache_hits", (json_int_t)st.dns_cache_hits,
	    "failures", (json_int_t)st.dns_failures,
	    "seq", (json_int_t)n,
	    "columns", sample_columns(),
	    "samples", rows, "last_reload", adm_last_reload_json());
}
