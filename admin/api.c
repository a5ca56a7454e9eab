/*
 * admin/api: the JSON API under /api/v1/ (jansson), and the 1 s sampler
 * that keeps 15 minutes of per-second rates for the Overview charts.
 * Every handler answers from what the main thread owns: summed stats, the
 * current snapshot, the event and tail rings.  The policy tester runs
 * fwd_decide() (forward/decide.h) on the current snapshot's forward data:
 * the same function and data the forward proxy's on_request() uses.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/admin.h"
#include "admin/adm_int.h"
#include "conf/conf.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "core/hist.h"
#include "core/stats.h"
#include "forward/auth.h"
#include "forward/decide.h"
#include "forward/domainset.h"
#include "forward/forward.h"
#include "forward/observe.h"
#include "forward/policy.h"
#include "reverse/cache_glue.h"
#include "reverse/reverse.h"

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
	const char *actor_user;    /* who asked for the reload now running (console) */
	const char *actor_client;
	struct fwd_matchdata *md;
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

int adm_api_init(void)
{
	static const struct timeval one = { 1, 0 };

	if (S.ev_tick != NULL)
		return 0;
	memset(&S, 0, sizeof S);
	gw_control_stats(&S.prev);
	S.prev_t = gw_wall_now();
	S.md = fwd_matchdata_new();
	S.ev_tick = event_new(adm_base, -1, EV_PERSIST, tick, NULL);
	if (S.ev_tick == NULL || S.md == NULL || event_add(S.ev_tick, &one) < 0)
		return -1;
	return 0;
}

void adm_api_free(void)
{
	if (S.ev_tick != NULL)
		event_free(S.ev_tick);
	if (S.md != NULL)
		fwd_matchdata_free(S.md);
	memset(&S, 0, sizeof S);
}

/* ---- helpers ---- */

static const char *arg(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	return v != NULL && *v ? v : NULL;
}

static uint64_t arg_u64(struct MHD_Connection *c, const char *name)
{
	const char *v = arg(c, name);

	return v != NULL ? strtoull(v, NULL, 10) : 0;
}

/* The string k of o; "" if absent. */
static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

static json_t *strs_json(const struct conf_strs *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_string(s->v[i]));
	return a;
}

static json_t *cidrs_json(const struct conf_cidrs *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n; i++) {
		char buf[INET6_ADDRSTRLEN + 8];
		const struct conf_cidr *c = &s->v[i];
		inet_ntop(c->family, c->addr, buf, sizeof buf);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "/%u", c->prefix);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *ports_json(const uint16_t *p, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(p[i]));
	return a;
}

static json_t *src_json(const struct conf_src *s)
{
	char buf[600];

	snprintf(buf, sizeof buf, "%s:%d", s->file ? s->file : "?", s->line);
	return json_string(buf);
}

static json_t *listeners_json(const struct conf_listener *l, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:b}", "address", l[i].addr.text, "tls", l[i].tls));
	return a;
}

static const char *s_or(const char *s, const char *dflt)
{
	return s != NULL ? s : dflt;
}

static json_t *last_reload_json(void)
{
	int ok;
	double when;
	uint64_t gen;
	const char *const *errs;
	size_t nerrs;
	json_t *e = json_array();

	gw_control_last_reload(&ok, &when, &gen, &errs, &nerrs);
	for (size_t i = 0; i < nerrs; i++)
		json_array_append_new(e, json_string(errs[i]));
	return json_pack("{s:b,s:f,s:I,s:o}", "ok", ok, "when", when, "generation", (json_int_t)gen,
	    "errors", e);
}

const void *adm_fwd_side(const struct gw_snapshot *s)
{
	for (int i = 0; i < s->nsides; i++)
		if (s->sides[i] == &fwd_side)
			return s->side_data[i];
	return NULL;
}

static const struct fwd_policy *current_policy(const struct gw_snapshot *s)
{
	return fwd_side_policy(adm_fwd_side(s));
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

static json_t *api_stats(struct MHD_Connection *c)
{
	struct gw_stats_snapshot st;
	const struct gw_snapshot *s = gw_control_snapshot();
	uint64_t since = arg_u64(c, "since"), first, n = S.nsamples;
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
	    "samples", rows, "last_reload", last_reload_json());
}

/* ---- GET forward: top domains, signed-in users, DLP hits ---- */

#define TOP_MAX 20
#define USERS_MAX 256
#define DLP_MAX 100

static json_t *top_json(int verdict)
{
	struct fwd_topk_item it[TOP_MAX];
	size_t n = fwd_obs_top(verdict, it, TOP_MAX);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "domain", it[i].name,
		    "count", (json_int_t)it[i].count, "error", (json_int_t)it[i].err));
	return a;
}

static json_t *users_json(void)
{
	struct fwd_obs_user *u = calloc(USERS_MAX, sizeof *u);
	json_t *a = json_array();
	size_t n;

	if (u == NULL)
		return a;
	n = fwd_obs_users(u, USERS_MAX);
	for (size_t i = 0; i < n; i++) {
		json_t *cl = json_array();
		for (unsigned k = 0; k < u[i].nclients; k++)
			json_array_append_new(cl, json_string(u[i].clients[k]));
		json_array_append_new(a, json_pack("{s:s,s:o,s:f,s:f,s:I}", "user", u[i].name, "clients", cl,
		    "first_seen", u[i].first_seen, "last_seen", u[i].last_seen,
		    "requests", (json_int_t)u[i].requests));
	}
	free(u);
	return a;
}

static json_t *dlp_json(void)
{
	struct fwd_obs_dlp *e = calloc(DLP_MAX, sizeof *e);
	json_t *a = json_array();
	uint64_t total = 0;
	size_t n;

	if (e == NULL)
		return json_pack("{s:I,s:o}", "total", (json_int_t)0, "hits", a);
	n = fwd_obs_dlp_recent(e, DLP_MAX, &total);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:f,s:s,s:s?,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "time", e[i].time,
		    "client", e[i].client, "user", e[i].user[0] ? e[i].user : NULL, "url", e[i].url,
		    "host", e[i].host, "detector", e[i].detector, "match", e[i].match, "where", e[i].where,
		    "action", e[i].deny ? "deny" : "log", "request_id", e[i].request_id));
	free(e);
	return json_pack("{s:I,s:o}", "total", (json_int_t)total, "hits", a);
}

static json_t *api_forward(void)
{
	return json_pack("{s:o,s:o,s:o,s:o}", "top_allowed", top_json(FWD_OBS_ALLOWED),
	    "top_blocked", top_json(FWD_OBS_BLOCKED), "users", users_json(), "dlp", dlp_json());
}

/* ---- GET forward/blocks: the block events, newest first, paged and filtered ---- */

#define BLOCKS_PAGE 25
#define BLOCKS_PAGE_MAX 200

/* Cut "... KEY" up to the next space of s into out[len]; the rest after it. */
static const char *word_after(const char *s, const char *key, char *out, size_t len)
{
	const char *p = strstr(s, key);
	size_t n;

	out[0] = '\0';
	if (p == NULL)
		return NULL;
	p += strlen(key);
	n = strcspn(p, " ");
	snprintf(out, len, "%.*s", (int)n, p);
	return p + n;
}

/* One block event's text, "CLIENT user=U verdict=deny rule="R" id=ID URL: reason"
 * (forward.c block_event), as an object; NULL if it is not one. */
static json_t *block_json(const struct gw_event *e)
{
	char client[64], user[64], rule[64], id[64], url[GW_EVENT_TEXT], host[256];
	const char *p = e->text, *q, *h;
	size_t n = strcspn(p, " "), hl;

	if (n == 0 || n >= sizeof client)
		return NULL;
	snprintf(client, sizeof client, "%.*s", (int)n, p);
	if ((p = word_after(p + n, " user=", user, sizeof user)) == NULL || strncmp(p, " verdict=deny rule=\"", 20) != 0)
		return NULL;
	p += 20;
	if ((q = strstr(p, "\" id=")) == NULL || (size_t)(q - p) >= sizeof rule)
		return NULL;
	snprintf(rule, sizeof rule, "%.*s", (int)(q - p), p);
	if ((p = word_after(q + 1, " id=", id, sizeof id)) == NULL || *p++ != ' ' || (q = strstr(p, ": ")) == NULL)
		return NULL;
	snprintf(url, sizeof url, "%.*s", (int)(q - p), p);
	/* the host: of an absolute URL, or a CONNECT target host:port */
	h = strstr(url, "://");
	h = h != NULL ? h + 3 : url;
	hl = *h == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/?");
	snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), h);
	return json_pack("{s:f,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "time", e->time, "client", client,
	    "user", strcmp(user, "-") == 0 ? "" : user, "rule", rule, "request_id", id, "url", url,
	    "host", host, "reason", q + 2);
}

static int block_match(const json_t *b, const char *q)
{
	static const char *const keys[] = { "client", "user", "host", "rule", "url", NULL };

	for (int i = 0; keys[i]; i++)
		if (strcasestr(jstr(b, keys[i]), q) != NULL)
			return 1;
	return 0;
}

/* ?offset=&limit=&q=: q is a case-insensitive substring of the client,
 * user, host, rule or URL.  total counts the matching events the ring holds. */
static json_t *api_blocks(struct MHD_Connection *c)
{
	struct gw_event *ev = calloc(512, sizeof *ev);
	const char *q = arg(c, "q");
	uint64_t last = 0, offset = arg_u64(c, "offset"), limit = arg_u64(c, "limit"), total = 0;
	size_t n;
	json_t *a = json_array();

	if (ev == NULL)
		return NULL;
	if (limit == 0)
		limit = BLOCKS_PAGE;
	if (limit > BLOCKS_PAGE_MAX)
		limit = BLOCKS_PAGE_MAX;
	n = gw_event_recent(ev, 512, 0, &last);
	for (size_t i = 0; i < n; i++) {
		json_t *b;
		if (strcmp(ev[i].kind, "block") != 0 || (b = block_json(&ev[i])) == NULL)
			continue;
		if (q != NULL && !block_match(b, q)) {
			json_decref(b);
			continue;
		}
		if (total >= offset && total - offset < limit)
			json_array_append_new(a, b);
		else
			json_decref(b);
		total++;
	}
	free(ev);
	return json_pack("{s:I,s:I,s:I,s:I,s:o}", "total", (json_int_t)total, "offset", (json_int_t)offset,
	    "limit", (json_int_t)limit, "seq", (json_int_t)last, "blocks", a);
}

/* ---- GET events / audit / tail ---- */

static json_t *api_events(struct MHD_Connection *c)
{
	struct gw_event *ev = calloc(512, sizeof *ev);
	const char *kind = arg(c, "kind");
	uint64_t last = 0;
	size_t n;
	json_t *a = json_array();

	if (ev == NULL)
		return NULL;
	n = gw_event_recent(ev, 512, arg_u64(c, "after"), &last);
	for (size_t i = 0; i < n; i++)
		if (kind == NULL || strcmp(kind, ev[i].kind) == 0)
			json_array_append_new(a, json_pack("{s:f,s:s,s:s}", "time", ev[i].time, "kind", ev[i].kind,
			    "text", ev[i].text));
	free(ev);
	return json_pack("{s:I,s:o}", "seq", (json_int_t)last, "events", a);
}

/* ---- access-log lines, parsed (the Logs page's table and the tail filters) ---- */

/* Seconds since the epoch of an access-log time stamp (combined
 * "06/Dec/2026:09:00:00 +0000" or json "2026-12-06T09:00:00+0000"); 0 if not one. */
static double log_time(const char *s, int json)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	end = strptime(s, json ? "%Y-%m-%dT%H:%M:%S%z" : "%d/%b/%Y:%H:%M:%S %z", &tm);
	if (end == NULL)
		return 0;
	return (double)(timegm(&tm) - tm.tm_gmtoff);
}

/* s as a JSON string; bytes that are not UTF-8 (an escape undone) become '?'. */
static json_t *jtext(const char *s)
{
	json_t *j = json_string(s);
	char buf[GW_TAIL_LINE];
	size_t i;

	if (j != NULL)
		return j;
	for (i = 0; s[i] && i + 1 < sizeof buf; i++)
		buf[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	buf[i] = '\0';
	return json_string(buf);
}

/*
 * One value of a combined-format line at *pp into out[len]: "quoted" with
 * \xHH, \" and \\ escapes undone, or unquoted up to the next space (when
 * to_key, up to the next " name=", so the old unquoted reason= with spaces
 * still reads whole).  Advances *pp past the value; out is cut to fit.
 */
static void comb_value(const char **pp, char *out, size_t len, int to_key)
{
	const char *p = *pp;
	size_t o = 0;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			char ch = *p;
			if (ch == '\\' && p[1] == 'x' && gw_hexval(p[2]) >= 0 && gw_hexval(p[3]) >= 0) {
				ch = (char)(gw_hexval(p[2]) << 4 | gw_hexval(p[3]));
				p += 3;
			} else if (ch == '\\' && p[1] != '\0') {
				ch = *++p;
			}
			if (o + 1 < len)
				out[o++] = ch;
		}
		if (*p == '"')
			p++;
	} else {
		for (; *p; p++) {
			if (*p == ' ') {
				const char *k = p + 1;
				if (!to_key)
					break;
				while ((*k >= 'a' && *k <= 'z') || *k == '_')
					k++;
				if (k > p + 1 && *k == '=')
					break;
			}
			if (o + 1 < len)
				out[o++] = *p;
		}
	}
	if (len > 0)
		out[o] = '\0';
	while (*p == ' ')
		p++;
	*pp = p;
}

/* The fields of a combined line: client, user, time, request, status,
 * bytes, referer, agent, family, duration, then name=value pairs. */
static json_t *parse_combined(const char *line)
{
	json_t *o = json_object();
	const char *p = line;
	char v[GW_TAIL_LINE], ts[64];
	const char *sp;

	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "client", jtext(v));
	comb_value(&p, v, sizeof v, 0);        /* ident: "-" */
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "user", jtext(strcmp(v, "-") == 0 ? "" : v));
	if (*p == '[' && (sp = strchr(p, ']')) != NULL && (size_t)(sp - p) < sizeof ts) {
		memcpy(ts, p + 1, (size_t)(sp - p - 1));
		ts[sp - p - 1] = '\0';
		json_object_set_new(o, "time", json_real(log_time(ts, 0)));
		for (p = sp + 1; *p == ' '; p++)
			;
	}
	if (*p == '"') {
		char *target, *proto;
		comb_value(&p, v, sizeof v, 0);
		/* METHOD TARGET HTTP/1.x (each escaped, so no space inside) */
		target = strchr(v, ' ');
		if (target != NULL) {
			*target++ = '\0';
			if ((proto = strrchr(target, ' ')) != NULL)
				*proto = '\0';
			json_object_set_new(o, "target", jtext(target));
		}
		json_object_set_new(o, "method", jtext(v));
	}
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "status", json_integer(atoi(v)));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "bytes_out", json_integer(strtoll(v, NULL, 10)));
	comb_value(&p, v, sizeof v, 0);        /* referer */
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "user_agent", jtext(v));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "family", jtext(v));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "duration", json_real(strtod(v, NULL)));
	while (*p) {
		char key[32];
		size_t k = strcspn(p, "= ");
		if (p[k] != '=' || k == 0 || k >= sizeof key) {
			comb_value(&p, v, sizeof v, 0);   /* not name=value: skip it */
			continue;
		}
		memcpy(key, p, k);
		key[k] = '\0';
		p += k + 1;
		comb_value(&p, v, sizeof v, 1);
		if (strcmp(key, "id") == 0)
			snprintf(key, sizeof key, "request_id");
		else if (strcmp(key, "up") == 0)
			snprintf(key, sizeof key, "upstream");
		else if (strcmp(key, "in") == 0)
			snprintf(key, sizeof key, "bytes_in");
		json_object_set_new(o, key, jtext(strcmp(v, "-") == 0 ? "" : v));   /* "-": none */
	}
	return o;
}

/* A json line; one cut at GW_TAIL_LINE is read up to its last whole field. */
static json_t *parse_json_line(const char *line)
{
	char buf[GW_TAIL_LINE + 2];
	json_t *o = json_loads(line, 0, NULL);
	size_t n = strlen(line);

	if (o == NULL && n < GW_TAIL_LINE) {
		memcpy(buf, line, n + 1);
		for (int tries = 0; o == NULL && tries < 8; tries++) {
			char *cut = NULL;
			for (char *q = buf; (q = strstr(q, ",\"")) != NULL; q++)
				cut = q;
			if (cut == NULL)
				break;
			cut[0] = '}';
			cut[1] = '\0';
			o = json_loads(buf, 0, NULL);
		}
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return json_object();
	}
	{
		json_t *t = json_object_get(o, "time");
		if (json_is_string(t))
			json_object_set_new(o, "time", json_real(log_time(json_string_value(t), 1)));
	}
	return o;
}

/* The fields of one access-log line (combined or json), as an object with
 * client, user, time, method, target, host, status, verdict, rule, reason,
 * request_id, family, ... ("" or absent when the line has none). */
static json_t *tail_parse(const char *line)
{
	json_t *o = line[0] == '{' ? parse_json_line(line) : parse_combined(line);
	static const char *const need[] = { "client", "user", "host", "verdict", "rule", "family", NULL };

	for (int i = 0; need[i]; i++)   /* absent or "-" (none, in either format): "" */
		if (!json_is_string(json_object_get(o, need[i])) || strcmp(jstr(o, need[i]), "-") == 0)
			json_object_set_new(o, need[i], json_string(""));
	if (!json_is_integer(json_object_get(o, "status")))
		json_object_set_new(o, "status", json_integer(0));
	return o;
}


static int status_match(const char *want, int st)
{
	char buf[8];

	snprintf(buf, sizeof buf, "%d", st);
	/* "404" exact, "4" or "4xx" a class */
	if (strlen(want) == 3 && strcasecmp(want + 1, "xx") == 0)
		return buf[0] == want[0];
	if (strlen(want) == 1)
		return buf[0] == want[0];
	return strcmp(buf, want) == 0;
}

static json_t *api_tail(struct MHD_Connection *c)
{
	char (*lines)[GW_TAIL_LINE] = calloc(256, GW_TAIL_LINE);
	const char *fh = arg(c, "host"), *fs = arg(c, "status"), *fc = arg(c, "client");
	const char *fv = arg(c, "verdict"), *ff = arg(c, "family");
	uint64_t last = 0;
	size_t n;
	json_t *a = json_array();

	if (lines == NULL)
		return NULL;
	n = gw_tail_recent(lines, 256, arg_u64(c, "after"), &last);
	for (size_t i = 0; i < n; i++) {
		json_t *o = tail_parse(lines[i]);
		if ((fc != NULL && strncmp(jstr(o, "client"), fc, strlen(fc)) != 0) ||
		    (fs != NULL && !status_match(fs, (int)json_integer_value(json_object_get(o, "status")))) ||
		    (fh != NULL && strcasestr(jstr(o, "host"), fh) == NULL) ||
		    (fv != NULL && strcmp(jstr(o, "verdict"), fv) != 0) ||
		    (ff != NULL && strcmp(jstr(o, "family"), ff) != 0)) {
			json_decref(o);
			continue;
		}
		json_object_set_new(o, "line", json_string(lines[i]));
		json_array_append_new(a, o);
	}
	free(lines);
	return json_pack("{s:I,s:o}", "seq", (json_int_t)last, "lines", a);
}

/* ---- GET config (secrets redacted) ---- */

static json_t *policy_json(const struct conf *cf, const struct fwd_policy *p, const void *side)
{
	json_t *a = json_array();
	const struct conf_forward *fw = &cf->forward;
	size_t nr = p != NULL ? fwd_policy_nrules(p) : 0;

	for (size_t i = 0; i < nr; i++) {
		json_t *r = json_pack("{s:I,s:s,s:s,s:I}", "index", (json_int_t)i, "name", fwd_policy_rule_name(p, i),
		    "action", fwd_action_name(fwd_policy_rule_action(p, i)),
		    "hits", (json_int_t)fwd_rule_hits(side, i));
		if (fw->policy_present && i < fw->npolicy) {
			const struct conf_fwd_rule *cr = &fw->policy[i];
			json_t *m = json_object();
#define STRS(k) if (cr->k.n) json_object_set_new(m, #k, strs_json(&cr->k))
			if (cr->clients.n)
				json_object_set_new(m, "clients", cidrs_json(&cr->clients));
			STRS(users); STRS(groups); STRS(domains); STRS(lists); STRS(urls); STRS(methods);
			STRS(hours); STRS(schemes);
#undef STRS
			if (cr->nports)
				json_object_set_new(m, "ports", ports_json(cr->ports, cr->nports));
			json_object_set_new(r, "match", m);
			json_object_set_new(r, "source", src_json(&cr->src));
		} else {
			json_object_set_new(r, "match", json_object());
		}
		json_array_append_new(a, r);
	}
	return a;
}

static json_t *forward_json(const struct conf *cf, const struct fwd_policy *p, const void *side)
{
	const struct conf_forward *fw = &cf->forward;
	json_t *lists = json_array(), *pats = json_array(), *o;

	for (size_t i = 0; i < fw->nlists; i++) {
		/* entries as compiled (distinct), and the lines skipped as invalid */
		const struct fwd_domainset *ds = p != NULL ? fwd_policy_list(p, fw->lists[i].name) : NULL;
		size_t first_bad = 0, bad = fwd_domainset_invalid(ds, &first_bad);
		json_array_append_new(lists, json_pack("{s:s,s:s,s:o,s:I,s:I}", "name", fw->lists[i].name,
		    "file", fw->lists[i].file, "source", src_json(&fw->lists[i].src),
		    "entries", (json_int_t)fwd_domainset_count(ds), "invalid_lines", (json_int_t)bad));
	}
	for (size_t i = 0; i < fw->dlp.npatterns; i++)   /* the regex may name what it protects */
		json_array_append_new(pats, json_pack("{s:s,s:s}", "name", fw->dlp.patterns[i].name,
		    "regex", "(redacted)"));
	o = json_pack("{s:b,s:o,s:o,s:o,s:o,s:b,s:o,s:o}",
	    "present", fw->present,
	    "listeners", listeners_json(fw->listeners, fw->nlisteners),
	    "allow_clients", cidrs_json(&fw->allow_clients),
	    "deny_destinations", cidrs_json(&fw->deny_destinations),
	    "connect_ports", ports_json(fw->connect_ports, fw->nconnect_ports),
	    "anonymize", fw->anonymize,
	    "lists", lists,
	    "policy", policy_json(cf, p, side));
	{
		json_t *ctr = json_object();
		for (int k = 0; k < FWD_C_COUNT; k++)
			json_object_set_new(ctr, fwd_counter_name((enum fwd_counter)k),
			    json_integer((json_int_t)fwd_side_counter(side, (enum fwd_counter)k)));
		json_object_set_new(o, "counters", ctr);
		json_object_set_new(o, "no_match_hits", json_integer((json_int_t)fwd_rule_hits(side,
		    p != NULL ? fwd_policy_nrules(p) : 0)));
	}
	json_object_set_new(o, "auth", fw->auth.present ? json_pack("{s:s,s:s,s:s}",
	    "realm", s_or(fw->auth.realm, ""), "users_file", s_or(fw->auth.users_file, ""),
	    "groups_file", s_or(fw->auth.groups_file, "")) : json_null());
	json_object_set_new(o, "dlp", fw->dlp.present ? json_pack("{s:b,s:s,s:I,s:o,s:o}",
	    "enabled", fw->dlp.enabled, "action", fw->dlp.action_deny ? "deny" : "log",
	    "max_scan_bytes", (json_int_t)fw->dlp.max_scan_bytes, "detectors", strs_json(&fw->dlp.detectors),
	    "patterns", pats) : (json_decref(pats), json_null()));
	json_object_set_new(o, "pac", fw->pac.present ? json_pack("{s:s,s:o}", "proxy", s_or(fw->pac.proxy, ""),
	    "direct", strs_json(&fw->pac.direct)) : json_null());
	return o;
}

static const char *const balance_names[] = { "round_robin", "least_conn", "ip_hash", "random_two" };

static json_t *reverse_json(const struct conf *cf)
{
	const struct conf_reverse *rv = &cf->reverse;
	json_t *certs = json_array(), *ups = json_array(), *sites = json_array();

	for (size_t i = 0; i < rv->ncertificates; i++)
		json_array_append_new(certs, json_pack("{s:s,s:s,s:b}", "cert", rv->certificates[i].cert,
		    "key", rv->certificates[i].key, "default", rv->certificates[i].is_default));
	for (size_t i = 0; i < rv->nupstreams; i++) {
		const struct conf_rev_upstream *u = &rv->upstreams[i];
		json_t *servers = json_array();
		for (size_t k = 0; k < u->nservers; k++)
			json_array_append_new(servers, json_pack("{s:s,s:I,s:b,s:I}", "address", u->servers[k].addr.text,
			    "weight", (json_int_t)u->servers[k].weight, "backup", u->servers[k].backup,
			    "max_conns", (json_int_t)u->servers[k].max_conns));
		json_array_append_new(ups, json_pack("{s:s,s:s,s:o,s:I,s:b,s:o,s:o}", "name", u->name,
		    "balance", balance_names[u->balance < 4 ? u->balance : 0], "servers", servers,
		    "keepalive", (json_int_t)u->keepalive, "tls", u->tls,
		    "health", u->health.present ? json_pack("{s:s,s:f,s:f,s:I,s:I}", "path", s_or(u->health.path, ""),
		    "interval", u->health.interval, "timeout", u->health.timeout, "rise", (json_int_t)u->health.rise,
		    "fall", (json_int_t)u->health.fall) : json_null(),
		    "source", src_json(&u->src)));
	}
	for (size_t i = 0; i < rv->nsites; i++) {
		const struct conf_rev_site *st = &rv->sites[i];
		json_t *routes = json_array();
		for (size_t k = 0; k < st->nroutes; k++) {
			const struct conf_rev_route *r = &st->routes[k];
			json_t *hs = json_array();
			const char *kind = r->kind == CONF_ROUTE_UPSTREAM ? "upstream" :
			    r->kind == CONF_ROUTE_STATIC ? "static" : "redirect";
			const char *target = r->kind == CONF_ROUTE_UPSTREAM ? r->upstream :
			    r->kind == CONF_ROUTE_STATIC ? r->static_dir : r->redirect;
			for (size_t h = 0; h < r->nset_headers; h++)   /* values may carry credentials */
				json_array_append_new(hs, json_pack("{s:s,s:s}", "name", r->set_headers[h].name,
				    "value", "(redacted)"));
			json_array_append_new(routes, json_pack("{s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:I}", "path", r->path,
			    "kind", kind, "target", s_or(target, ""), "strip_prefix", r->strip_prefix,
			    "set_headers", hs, "source", src_json(&r->src),
			    /* route.cache; null when the route is not cached */
			    "cache", r->cache ? json_pack("{s:f,s:f,s:b,s:b}", "ttl", r->cache_ttl,
			    "stale_if_error", r->cache_stale_if_error, "ignore_set_cookie", r->cache_ignore_set_cookie,
			    "ignore_cookie", r->cache_ignore_cookie) : json_null(),
			    "max_body_bytes", (json_int_t)r->max_body_bytes));
		}
		json_array_append_new(sites, json_pack("{s:o,s:b,s:b,s:o,s:o,s:f,s:o,s:o}", "hosts", strs_json(&st->hosts),
		    "default", st->is_default, "force_https", st->force_https,
		    "allow_clients", cidrs_json(&st->allow_clients), "deny_clients", cidrs_json(&st->deny_clients),
		    "rate_rps", st->rate_rps, "routes", routes, "source", src_json(&st->src)));
		/* the site's rate limit applies to each of its routes */
		json_object_set_new(json_array_get(sites, json_array_size(sites) - 1), "rate_limit",
		    st->rate_rps > 0 ? json_pack("{s:f,s:f}", "requests_per_second", st->rate_rps,
		    "burst", st->rate_burst) : json_null());
	}
	return json_pack("{s:b,s:o,s:o,s:o,s:o,s:o}", "present", rv->present,
	    "listeners", listeners_json(rv->listeners, rv->nlisteners), "certificates", certs,
	    "trusted_proxies", cidrs_json(&rv->trusted_proxies), "upstreams", ups, "sites", sites);
}

static json_t *api_config(void)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	const struct conf *cf = s->conf;
	const struct conf_global *g = &cf->global;
	static const char *const levels[] = { "debug", "info", "warn", "error" };

	return json_pack("{s:s,s:I,s:f,s:s,s:{s:I,s:I,s:s,s:{s:s,s:s,s:s,s:s},s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f},"
	    "s:{s:I,s:I,s:I,s:I}},s:o,s:o,s:{s:s,s:s,s:s,s:b},s:o}",
	    "path", s_or(cf->path, ""), "generation", (json_int_t)s->generation, "loaded_at", s->loaded_at,
	    "version", GW_VERSION,
	    "global", "workers", (json_int_t)g->workers, "max_connections", (json_int_t)g->max_connections,
	    "state_dir", s_or(g->state_dir, ""),
	    "log", "error", s_or(g->log.error, ""), "level", levels[g->log.level & 3], "access", s_or(g->log.access, ""),
	    "access_format", g->log.access_json ? "json" : "combined",
	    "timeouts", "client_header", g->timeouts.client_header, "client_body", g->timeouts.client_body,
	    "client_idle", g->timeouts.client_idle, "upstream_connect", g->timeouts.upstream_connect,
	    "upstream_response", g->timeouts.upstream_response, "tunnel_idle", g->timeouts.tunnel_idle,
	    "shutdown_grace", g->timeouts.shutdown_grace,
	    "limits", "max_header_bytes", (json_int_t)g->limits.max_header_bytes,
	    "max_headers", (json_int_t)g->limits.max_headers, "max_uri_bytes", (json_int_t)g->limits.max_uri_bytes,
	    "max_body_bytes", (json_int_t)g->limits.max_body_bytes,
	    "forward", forward_json(cf, current_policy(s), adm_fwd_side(s)),
	    "reverse", reverse_json(cf),
	    "admin", "listen", cf->admin.listen_enabled ? cf->admin.listen.text : "",
	    "metrics_listen", cf->admin.metrics_enabled ? cf->admin.metrics_listen.text : "",
	    "users_file", s_or(cf->admin.users_file, ""), "https", cf->admin.tls_cert != NULL,
	    "last_reload", last_reload_json());
}

/* ---- GET certificates ---- */

static json_t *cert_json(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	json_t *o, *names;
	char cn[256] = "", issuer[256] = "";
	GENERAL_NAMES *gens;
	struct tm tm;
	int days = 0, secs = 0;

	if (f == NULL)
		return json_pack("{s:s,s:s}", "file", path, "error", "cannot open the file");
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		return json_pack("{s:s,s:s}", "file", path, "error", "no PEM certificate in the file");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
	X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, issuer, sizeof issuer);
	names = json_array();
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type == GEN_DNS)
			json_array_append_new(names, json_stringn((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
			    (size_t)ASN1_STRING_length(gn->d.dNSName)));
	}
	GENERAL_NAMES_free(gens);
	o = json_pack("{s:s,s:s,s:s,s:o}", "file", path, "subject_cn", cn, "issuer_cn", issuer, "names", names);
	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1)
		json_object_set_new(o, "not_before", json_real((double)timegm(&tm)));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		json_object_set_new(o, "not_after", json_real((double)timegm(&tm)));
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1)
		json_object_set_new(o, "days_left", json_integer(days));
	X509_free(x);
	return o;
}

static json_t *api_certificates(void)
{
	const struct conf_reverse *rv = &gw_control_snapshot()->conf->reverse;
	json_t *a = json_array();

	for (size_t i = 0; i < rv->ncertificates; i++) {
		json_t *o = cert_json(rv->certificates[i].cert);
		json_object_set_new(o, "key", json_string(rv->certificates[i].key));
		json_object_set_new(o, "default", json_boolean(rv->certificates[i].is_default));
		json_array_append_new(a, o);
	}
	return json_pack("{s:o}", "certificates", a);
}

/* ---- POST policy/test ---- */

static int parse_client(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

enum url_kind { URL_HTTP, URL_HTTPS, URL_AUTHORITY };

/* Split "scheme://host[:port]/..." or "host:port"; host lower-cased, an IP
 * literal canonical (as the proxy reads it, core/addr.h: "0177.0.0.1" is
 * refused, "[::ffff:10.1.2.3]" is 10.1.2.3). */
static const char *parse_target(const char *url, enum url_kind *kind, char *host, size_t hlen,
    uint16_t *port)
{
	const char *p = url, *hs, *he;
	unsigned long pt;

	if (strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		*port = 80;
		*kind = URL_HTTP;
	} else if (strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		*port = 443;
		*kind = URL_HTTPS;
	} else if (strstr(p, "://") != NULL) {
		return "only http:// and https:// URLs, or host:port for CONNECT";
	} else {
		*kind = URL_AUTHORITY;
		*port = 0;
	}
	hs = p;
	if (*p == '[') {
		he = strchr(p, ']');
		if (he == NULL)
			return "unterminated [IPv6] host";
		hs = p + 1;
		p = he + 1;
	} else {
		he = p + strcspn(p, ":/?#");
		p = he;
	}
	if (he == hs || (size_t)(he - hs) >= hlen)
		return "no host in the URL";
	for (size_t i = 0; i < (size_t)(he - hs); i++)
		host[i] = (char)(hs[i] >= 'A' && hs[i] <= 'Z' ? hs[i] + 32 : hs[i]);
	host[he - hs] = '\0';
	{
		struct gw_addr a;
		int is_ip;
		const char *aerr = gw_addr_parse_host(host, (size_t)(he - hs), &a, &is_ip);
		if (aerr != NULL)
			return aerr;
		if (is_ip) {
			gw_addr_canon(&a);
			gw_addr_format(&a, host, hlen);
		}
	}
	if (*p == ':') {
		char *end;
		pt = strtoul(p + 1, &end, 10);
		if (end == p + 1 || pt == 0 || pt > 65535)
			return "bad port";
		*port = (uint16_t)pt;
	}
	if (*port == 0)
		return "CONNECT needs host:port";
	return NULL;
}

/* The request line the form describes, as the proxy would receive it:
 *   "/path"                 origin-form: a request to the proxy itself (PAC)
 *   "*"                     asterisk-form (OPTIONS)
 *   "host:port"             CONNECT
 *   "https://host[:port]/"  CONNECT host:port (a browser tunnels https://),
 *                           unless another method is given: then the
 *                           absolute-form request the proxy answers 501
 *   "http://..."            absolute-form (method CONNECT: a tunnel to it)
 * Fills f's form, connect, https, method, host and port; NULL or an error. */
static const char *tester_target(const char *url, const char *method, struct fwd_facts *f, char *host,
    size_t hlen)
{
	enum url_kind kind;
	const char *err;
	int is_connect = method != NULL && strcmp(method, "CONNECT") == 0;

	host[0] = '\0';
	f->target = url;
	f->target_len = strlen(url);
	if (url[0] == '/' || strcmp(url, "*") == 0) {
		f->form = url[0] == '/' ? GW_TF_ORIGIN : GW_TF_ASTERISK;
		f->method = method != NULL ? method : url[0] == '/' ? "GET" : "OPTIONS";
		if (f->form == GW_TF_ASTERISK && strcmp(f->method, "OPTIONS") != 0)
			return "asterisk-form only with OPTIONS";
		if (is_connect)
			return "CONNECT needs host:port";
		f->path = url;
		f->path_len = f->target_len;
		f->host = host;
		return NULL;
	}
	if ((err = parse_target(url, &kind, host, hlen, &f->port)) != NULL)
		return err;
	f->host = host;
	f->host_len = strlen(host);
	if (kind == URL_AUTHORITY && method != NULL && !is_connect)
		return "authority-form (host:port) only with CONNECT";
	if (kind == URL_AUTHORITY || is_connect || (kind == URL_HTTPS && method == NULL)) {
		f->form = GW_TF_AUTHORITY;
		f->connect = 1;
		f->method = "CONNECT";
		return NULL;
	}
	f->form = GW_TF_ABSOLUTE;
	f->https = kind == URL_HTTPS;
	f->method = method != NULL ? method : "GET";
	return NULL;
}

/* The form's user as the proxy would see it signed in: *cred, the user,
 * and (unless the form names groups) the user's groups from the compiled
 * forward.auth; what the tester cannot know goes to notes. */
static const char *tester_user(const void *side, const struct fwd_decider *dc, const char *user,
    struct fwd_facts *f, json_t *notes)
{
	const struct fwd_auth_db *db = fwd_side_auth_db(side);
	long ui;

	f->cred = FWD_CRED_NONE;
	if (user == NULL)
		return NULL;
	if (db == NULL) {
		json_array_append_new(notes, json_string("forward.auth is not configured: the proxy signs "
		    "no one in, so the user is not used"));
		return NULL;
	}
	if (!dc->auth_used) {
		json_array_append_new(notes, json_string("no rule has users, groups or action \"auth\": the "
		    "proxy does not check credentials, so the user is not used"));
		return NULL;
	}
	if ((ui = fwd_auth_db_find(db, user)) < 0) {
		f->cred = FWD_CRED_BAD;
		json_array_append_new(notes, json_string("the user is not in forward.auth.users_file: "
		    "a sign-in as this user fails (auth-failed where a rule asks to sign in)"));
		return NULL;
	}
	f->cred = FWD_CRED_OK;
	f->user = fwd_auth_db_name(db, ui);
	if (f->ngroups == 0)
		f->groups = fwd_auth_db_groups(db, ui, &f->ngroups);
	json_array_append_new(notes, json_string("the password is not checked: the user is taken as "
	    "signed in"));
	return "forward.auth.groups_file";
}

static json_t *verdict(const char *v, int status, const char *stage, const char *rule, const char *why)
{
	return json_pack("{s:s,s:i,s:s,s:s,s:s}", "verdict", v, "status", status, "stage", stage,
	    "rule", rule ? rule : "", "why", why);
}

/* The form's request through fwd_decide() on the current snapshot: the
 * proxy's own checks, order and texts (forward/decide.h). */
static json_t *api_policy_test(struct adm_req *r, const char *console_client, unsigned *status)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	const void *side = adm_fwd_side(s);
	const struct fwd_decider *dc = fwd_side_decider(side);
	json_t *in = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *url = NULL, *client = NULL, *user = NULL, *tstr = NULL, *method = NULL, *err;
	const char *groups_from = "request";
	json_t *groups_j = NULL, *out, *notes, *gj;
	const char *groups[32];
	size_t ngroups = 0;
	int websocket = 0;
	struct sockaddr_storage ss;
	struct fwd_facts f;
	struct fwd_verdict v;
	char host[256], tbuf[64];
	struct tm tm;
	time_t t;

	*status = MHD_HTTP_BAD_REQUEST;
	if (in == NULL || json_unpack(in, "{s:s,s?s,s?s,s?s,s?s,s?o,s?b}", "url", &url, "client", &client,
	    "user", &user, "time", &tstr, "method", &method, "groups", &groups_j, "websocket", &websocket) < 0) {
		json_decref(in);
		return json_pack("{s:s}", "error", "expected JSON {url, client, user, time, method, groups, "
		    "websocket}");
	}
	if (dc == NULL) {
		json_decref(in);
		return json_pack("{s:s}", "error", "no forward policy in the running configuration");
	}
	memset(&f, 0, sizeof f);
	if (method != NULL && *method == '\0')
		method = NULL;      /* "as a browser would" */
	if (user != NULL && *user == '\0')
		user = NULL;
	if ((err = tester_target(url, method, &f, host, sizeof host)) != NULL) {
		out = json_pack("{s:s}", "error", err);
		json_decref(in);
		return out;
	}
	f.websocket = websocket && !f.connect;
	if (client == NULL || *client == '\0')
		client = console_client;
	if (parse_client(client, &ss) < 0) {
		json_decref(in);
		return json_pack("{s:s}", "error", "client must be an IP address");
	}
	f.client = (const struct sockaddr *)&ss;
	t = time(NULL);
	localtime_r(&t, &tm);
	if (tstr != NULL && *tstr) {
		struct tm tt;
		const char *end;
		memset(&tt, 0, sizeof tt);
		end = strptime(tstr, "%Y-%m-%dT%H:%M", &tt);
		if (end != NULL && *end == ':')
			end = strptime(end, ":%S", &tt);
		if (end == NULL || *end != '\0') {
			json_decref(in);
			return json_pack("{s:s}", "error", "time must be YYYY-MM-DDTHH:MM[:SS] (local time)");
		}
		tt.tm_isdst = -1;
		if (mktime(&tt) == (time_t)-1) {
			json_decref(in);
			return json_pack("{s:s}", "error", "time out of range");
		}
		tm = tt;
	}
	f.local_time = &tm;
	if (json_is_array(groups_j)) {
		for (size_t i = 0; i < json_array_size(groups_j) && ngroups < 32; i++)
			if (json_is_string(json_array_get(groups_j, i)))
				groups[ngroups++] = json_string_value(json_array_get(groups_j, i));
	}
	f.groups = groups;
	f.ngroups = ngroups;
	notes = json_array();
	if (tester_user(side, dc, user, &f, notes) != NULL && ngroups == 0)
		groups_from = "forward.auth.groups_file";
	if (f.cred != FWD_CRED_OK) {
		f.groups = NULL;
		f.ngroups = 0;
	}
	if (f.form == GW_TF_ABSOLUTE && !f.connect) {
		f.url_cap = 3 * f.target_len + FWD_URL_NORM_EXTRA;
		f.url_buf = malloc(f.url_cap);
		if (f.url_buf == NULL)
			f.url_cap = 0;
	}
	f.explain = 1;
	f.md = S.md;
	fwd_decide(dc, &f, &v);
	free(f.url_buf);
	f.url_buf = NULL;
	/* a URL the proxy cannot read is an error in the form as well (400) */
	*status = v.stage == FWD_STAGE_URL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK;
	out = verdict(fwd_verdict_name(v.verdict), v.status, fwd_stage_name(v.stage), v.rule, v.reason);
	if (v.stage == FWD_STAGE_URL)
		json_object_set_new(out, "error", json_string(v.reason));
	if (v.stage == FWD_STAGE_POLICY) {
		const struct fwd_match *why = &v.match;
		json_object_set_new(out, "match", json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "list", why->list,
		    "list_entry", why->list_entry, "domain", why->domain, "url", why->url, "hours", why->hours));
		if (why->rule_index != SIZE_MAX)
			json_object_set_new(out, "rule_index", json_integer((json_int_t)why->rule_index));
	}
	/* what only the request itself can tell */
	if (v.verdict == FWD_V_ALLOW) {
		struct gw_addr a;
		int is_ip = 0;
		gw_addr_parse_host(host, strlen(host), &a, &is_ip);
		if (!is_ip)
			json_array_append_new(notes, json_string("the host is resolved when the request is made: "
			    "each address it resolves to is then checked against deny_destinations and "
			    "Gatehouse's own listeners (403 deny_destinations or own_listener)"));
		if (!f.connect && s->conf->forward.dlp.present && s->conf->forward.dlp.enabled)
			json_array_append_new(notes, json_string("DLP reads the URL, the headers and the body "
			    "when the request is made"));
	}
	json_object_set_new(out, "notes", notes);
	strftime(tbuf, sizeof tbuf, "%a %Y-%m-%d %H:%M:%S", &tm);
	json_object_set_new(out, "input", json_pack("{s:s,s:s,s:s,s:i,s:s,s:s?,s:s,s:b}", "client", client,
	    "method", f.method, "host", host, "port", f.port, "url", url, "user", user, "time", tbuf,
	    "websocket", f.websocket));
	gj = json_array();
	for (size_t i = 0; i < f.ngroups; i++)
		json_array_append_new(gj, json_string(f.groups[i]));
	json_object_set_new(json_object_get(out, "input"), "groups", gj);
	json_object_set_new(json_object_get(out, "input"), "groups_from", json_string(groups_from));
	json_object_set_new(out, "generation", json_integer((json_int_t)s->generation));
	json_decref(in);
	return out;
}

/* ---- POST reload ---- */

/* Audit a finished reload (rc 0 or -1); returns the last reload's JSON. */
static json_t *reload_audited(const char *user, const char *client, int rc)
{
	json_t *lr = last_reload_json();
	char detail[64];

	snprintf(detail, sizeof detail, "generation=%lld errors=%zu",
	    (long long)json_integer_value(json_object_get(lr, "generation")),
	    json_array_size(json_object_get(lr, "errors")));
	adm_audit(user, client, "reload", rc == 0 ? "ok" : "failed", detail);
	return lr;
}

static enum MHD_Result api_reload(struct MHD_Connection *c, const struct adm_who *who, const char *client)
{
	int rc;

	S.actor_user = who->user;
	S.actor_client = client;
	rc = gw_control_reload();
	S.actor_user = S.actor_client = NULL;
	return adm_send_json(c, rc == 0 ? MHD_HTTP_OK : MHD_HTTP_UNPROCESSABLE_CONTENT,
	    reload_audited(who->user, client, rc));
}

void adm_api_reload_done(int rc)
{
	if (S.actor_client == NULL)   /* not the console's own (api_reload audits it) */
		json_decref(reload_audited(NULL, "SIGHUP", rc));
}

/* A new generation serves (by the console or SIGHUP): audit the change. */
void adm_api_reloaded(const struct gw_snapshot *s)
{
	char detail[300];

	snprintf(detail, sizeof detail, "generation=%llu file=%s", (unsigned long long)s->generation,
	    s_or(s->conf->path, ""));
	adm_audit(S.actor_user, S.actor_client != NULL ? S.actor_client : "SIGHUP", "config change", "ok", detail);
}

/* ---- upstream servers: state, drain / enable / disable ---- */

static json_t *api_upstreams(void)
{
	size_t n = rev_servers_info(NULL, 0);
	struct rev_server_info *v = n ? calloc(n, sizeof *v) : NULL;
	json_t *a = json_array();

	if (n > 0 && v == NULL)
		return a;
	n = rev_servers_info(v, n);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:i,s:b,s:I,s:f,s:i,s:s,s:f,s:f,s:f,"
		    "s:I,s:I,s:I,s:I}",
		    "upstream", v[i].upstream, "address", v[i].address, "state", rev_state_name(v[i].state),
		    "admin", rev_state_name(v[i].admin), "health_up", v[i].health_up, "ejected", v[i].ejected,
		    "weight", v[i].weight, "backup", v[i].backup, "in_flight", (json_int_t)v[i].in_flight,
		    "weight_factor", v[i].weight_factor, "last_status", v[i].last_status,
		    "last_error", v[i].last_error, "last_latency_ms", v[i].last_latency_ms,
		    "last_check", v[i].last_check, "last_change", v[i].last_change,
		    "requests", (json_int_t)v[i].requests, "failures", (json_int_t)v[i].failures,
		    "checks_ok", (json_int_t)v[i].checks_ok, "checks_failed", (json_int_t)v[i].checks_failed));
	free(v);
	return json_pack("{s:o}", "servers", a);
}

/* Requests per reverse site and upstream, by status class (as /metrics). */
static json_t *api_sites(void)
{
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	size_t n = rev_site_requests(NULL, 0);
	struct rev_site_requests *v = n ? calloc(n, sizeof *v) : NULL;
	json_t *a = json_array();

	n = v != NULL ? rev_site_requests(v, n) : 0;
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_object();
		for (int k = 0; k < 5; k++)
			json_object_set_new(c, classes[k], json_integer((json_int_t)v[i].classes[k]));
		json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "site", v[i].site, "upstream", v[i].upstream,
		    "requests", c));
	}
	free(v);
	return json_pack("{s:o}", "sites", a);
}

static int server_action(const char *a)
{
	return strcmp(a, "drain") == 0 || strcmp(a, "enable") == 0 || strcmp(a, "disable") == 0;
}

/* POST servers/{drain,enable,disable} with {"upstream": ..., "address": ...},
 * or POST servers/{upstream}/{address}/{action} with no body (id is the
 * upstream and address as the upstreams view lists them).  path is the part
 * after "servers/". */
static enum MHD_Result api_server_state(struct MHD_Connection *c, struct adm_req *r,
    const struct adm_who *who, const char *path)
{
	char id[300], *slash, *act, detail[2 * sizeof id];
	json_t *in = NULL;
	const char *up, *addr, *action = path;
	int state, rc;

	if (server_action(path)) {
		in = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
		up = in ? json_string_value(json_object_get(in, "upstream")) : NULL;
		addr = in ? json_string_value(json_object_get(in, "address")) : NULL;
	} else {
		if (strlen(path) >= sizeof id || (act = strrchr(strcpy(id, path), '/')) == NULL ||
		    !server_action(act + 1) || (slash = strchr(id, '/')) == act)
			return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no such API endpoint");
		*slash = *act = '\0';
		up = id;
		addr = slash + 1;
		action = act + 1;
	}
	if (up == NULL || addr == NULL) {
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "send {\"upstream\": ..., \"address\": ...}");
	}
	state = strcmp(action, "drain") == 0 ? REV_STATE_DRAINING :
	    strcmp(action, "disable") == 0 ? REV_STATE_DISABLED : REV_STATE_UP;
	snprintf(detail, sizeof detail, "%s %s", up, addr);
	if (who->role != ADM_ADMIN) {
		adm_audit(who->user, r->client, action, "denied", detail);
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the admin role is required");
	}
	rc = rev_server_set_admin_state(up, addr, state);
	adm_audit(who->user, r->client, action, rc == 0 ? "ok" : "failed", detail);
	json_decref(in);
	if (rc != 0)
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no such server");
	return adm_send_json(c, MHD_HTTP_OK, api_upstreams());
}

/* ---- cache ---- */

static json_t *api_cache(void)
{
	struct rev_cache_stats st;

	rev_cache_stats(&st);
	return json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "enabled", st.enabled,
	    "hits", (json_int_t)st.hits, "misses", (json_int_t)st.misses, "stale", (json_int_t)st.stale,
	    "revalidated", (json_int_t)st.revalidated, "collapsed", (json_int_t)st.collapsed,
	    "bypass", (json_int_t)st.bypass, "objects", (json_int_t)st.objects,
	    "bytes", (json_int_t)st.bytes, "memory", (json_int_t)st.memory,
	    "evictions", (json_int_t)st.evictions, "purged", (json_int_t)st.purged,
	    "stored", (json_int_t)st.stored, "refreshes", (json_int_t)st.refreshes,
	    "refresh_failures", (json_int_t)st.refresh_failures, "served_bytes", (json_int_t)st.served_bytes);
}

/* POST cache/purge with {"url": ...} or {"host_prefix": ...} */
static enum MHD_Result api_cache_purge(struct MHD_Connection *c, struct adm_req *r,
    const struct adm_who *who)
{
	json_t *in = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *url = in ? json_string_value(json_object_get(in, "url")) : NULL;
	const char *prefix = in ? json_string_value(json_object_get(in, "host_prefix")) : NULL;
	char detail[300];
	int n;

	if ((url == NULL) == (prefix == NULL)) {
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "send {\"url\": ...} or {\"host_prefix\": ...}");
	}
	snprintf(detail, sizeof detail, "%s %s", url ? "url" : "host_prefix", url ? url : prefix);
	if (who->role != ADM_ADMIN) {
		adm_audit(who->user, r->client, "cache purge", "denied", detail);
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the admin role is required");
	}
	n = url ? rev_cache_purge_url(url) : rev_cache_purge_prefix(prefix);
	snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " removed=%d", n);
	adm_audit(who->user, r->client, "cache purge", n < 0 ? "failed" : "ok", detail);
	json_decref(in);
	if (n < 0)
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "malformed URL");
	return adm_send_json(c, MHD_HTTP_OK, json_pack("{s:i}", "purged", n));
}

/* ---- routing ---- */

enum MHD_Result adm_api(struct MHD_Connection *c, const char *path, const char *method,
    struct adm_req *r, const struct adm_who *who)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int post = strcmp(method, "POST") == 0;
	json_t *j = NULL;
	unsigned status = MHD_HTTP_OK;

	if (get && strcmp(path, "session") == 0)
		j = json_pack("{s:s,s:s,s:s?,s:b}", "user", who->user, "role", who->role == ADM_ADMIN ? "admin" : "viewer",
		    "csrf", who->csrf, "bearer", who->bearer);
	else if (get && strcmp(path, "stats") == 0)
		j = api_stats(c);
	else if (get && strcmp(path, "events") == 0)
		j = api_events(c);
	else if (get && strcmp(path, "forward") == 0)
		j = api_forward();
	else if (get && strcmp(path, "forward/blocks") == 0)
		j = api_blocks(c);
	else if (get && strcmp(path, "tail") == 0)
		j = api_tail(c);
	else if (get && strcmp(path, "config") == 0)
		j = api_config();
	else if (get && strcmp(path, "certificates") == 0)
		j = api_certificates();
	else if (get && strcmp(path, "audit") == 0)
		j = json_pack("{s:o}", "audit", adm_audit_json());
	else if (get && strcmp(path, "reload") == 0)
		j = last_reload_json();
	else if (post && strcmp(path, "reload") == 0) {
		if (who->role != ADM_ADMIN) {
			adm_audit(who->user, r->client, "reload", "denied", "viewer role");
			return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the admin role is required");
		}
		return api_reload(c, who, r->client);
	} else if (post && strcmp(path, "policy/test") == 0)
		j = api_policy_test(r, r->client, &status);
	else if (get && strcmp(path, "upstreams") == 0)
		j = api_upstreams();
	else if (get && strcmp(path, "sites") == 0)
		j = api_sites();
	else if (post && strncmp(path, "servers/", 8) == 0)
		return api_server_state(c, r, who, path + 8);
	else if (get && strcmp(path, "cache") == 0)
		j = api_cache();
	else if (post && strcmp(path, "cache/purge") == 0)
		return api_cache_purge(c, r, who);
	else {
		static const char *const known[] = { "session", "stats", "events", "forward", "forward/blocks", "tail", "config",
			"certificates",
			"audit", "reload", "policy/test", "upstreams", "sites", "servers/drain", "servers/enable",
			"servers/disable", "cache", "cache/purge", NULL };
		for (int i = 0; known[i]; i++)
			if (strcmp(path, known[i]) == 0)
				return adm_send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no such API endpoint");
	}
	if (j == NULL)
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return adm_send_json(c, status, j);
}
