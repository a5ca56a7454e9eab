/*
 * admin/metrics: /metrics in the Prometheus text exposition format (0.0.4),
 * from the summed worker counters.  Served on the console (login or bearer
 * token) and, without login, on admin.metrics_listen.  Also /healthz, the
 * node's cheap liveness answer for keepalived's track script (no login on
 * either port).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_int.h"
#include "cluster/cluster.h"
#include "core/control.h"
#include "core/hist.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "forward/forward.h"
#include "forward/icap.h"
#include "forward/inspect.h"
#include "forward/policy.h"
#include "reverse/cache_glue.h"
#include "reverse/reverse.h"

/* A label value: backslash, double quote and newline escaped. */
static void put_label(struct gw_sbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			gw_sbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			gw_sbuf_printf(b, "\\n");
		else
			gw_sbuf_printf(b, "%c", *v);
	}
}

/* forward.icap: verdicts per service, and whether each is up. */
static void icap_metrics(struct gw_sbuf *b, const struct fwd_icap *ic)
{
	size_t n = fwd_icap_count(ic);
	char istag[80];

	if (n == 0)
		return;
	gw_sbuf_printf(b, "# HELP gatehouse_icap_verdicts_total ICAP exchanges by service and outcome.\n"
	    "# TYPE gatehouse_icap_verdicts_total counter\n");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < FWD_ICAP_C_COUNT; k++) {
			gw_sbuf_printf(b, "gatehouse_icap_verdicts_total{service=\"");
			put_label(b, fwd_icap_name(ic, i));
			gw_sbuf_printf(b, "\",outcome=\"%s\"} %llu\n", fwd_icap_counter_name((enum fwd_icap_counter)k),
			    (unsigned long long)fwd_icap_counter(ic, i, (enum fwd_icap_counter)k));
		}
	gw_sbuf_printf(b, "# HELP gatehouse_icap_up 1 when the service's last exchange went well, 0 after a "
	    "failure, -1 before any.\n# TYPE gatehouse_icap_up gauge\n");
	for (size_t i = 0; i < n; i++) {
		int h = fwd_icap_health(ic, i, istag, sizeof istag);
		gw_sbuf_printf(b, "gatehouse_icap_up{service=\"");
		put_label(b, fwd_icap_name(ic, i));
		gw_sbuf_printf(b, "\"} %d\n", h);
	}
}

static void family_counter(struct gw_sbuf *b, const struct gw_stats_snapshot *st, const char *name,
    const char *help, enum gw_fcounter k)
{
	gw_sbuf_printf(b, "# HELP gatehouse_%s %s\n# TYPE gatehouse_%s counter\n", name, help, name);
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		gw_sbuf_printf(b, "gatehouse_%s{family=\"%s\"} %llu\n", name, gw_stats_family_name(f),
		    (unsigned long long)st->fam[f][k]);
}

/* One histogram series: cumulative _bucket lines, _sum and _count.
 * label is the already-formatted label pair ('family="forward"'). */
static void hist_series(struct gw_sbuf *b, const char *name, const char *lname, const char *lvalue,
    enum gw_hist_kind kind, int slot)
{
	uint64_t cum[GW_HIST_NB + 1];
	double sum;

	gw_hist_read(kind, slot, cum, &sum);
	for (int i = 0; i <= GW_HIST_NB; i++) {
		gw_sbuf_printf(b, "gatehouse_%s_bucket{%s=\"", name, lname);
		put_label(b, lvalue);
		if (i < GW_HIST_NB)
			gw_sbuf_printf(b, "\",le=\"%g\"} %llu\n", gw_hist_bounds[i], (unsigned long long)cum[i]);
		else
			gw_sbuf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum[i]);
	}
	gw_sbuf_printf(b, "gatehouse_%s_sum{%s=\"", name, lname);
	put_label(b, lvalue);
	gw_sbuf_printf(b, "\"} %.6f\ngatehouse_%s_count{%s=\"", sum, name, lname);
	put_label(b, lvalue);
	gw_sbuf_printf(b, "\"} %llu\n", (unsigned long long)cum[GW_HIST_NB]);
}

/* A histogram over one interned label table (every name seen so far). */
static void hist_table(struct gw_sbuf *b, const char *name, const char *help, const char *lname,
    enum gw_hist_table t, enum gw_hist_kind kind)
{
	int n = gw_hist_nslots(t);

	gw_sbuf_printf(b, "# HELP gatehouse_%s %s\n# TYPE gatehouse_%s histogram\n", name, help, name);
	for (int i = 0; i < n; i++)
		hist_series(b, name, lname, gw_hist_slot_name(t, i), kind, i);
}

static void latency_metrics(struct gw_sbuf *b)
{
	gw_sbuf_printf(b, "# HELP gatehouse_request_duration_seconds Time from the request's first byte to its "
	    "end, by family.\n# TYPE gatehouse_request_duration_seconds histogram\n");
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		hist_series(b, "request_duration_seconds", "family", gw_stats_family_name(f), GW_H_REQ_FAMILY, f);
	hist_table(b, "site_request_duration_seconds", "Reverse request duration, by site (configured site "
	    "names; requests for no site: \"(unknown)\").", "site", GW_HT_SITE, GW_H_REQ_SITE);
	hist_table(b, "upstream_connect_seconds", "Upstream TCP connect time, by upstream (forward: one label).",
	    "upstream", GW_HT_UPSTREAM, GW_H_UP_CONNECT);
	hist_table(b, "upstream_first_byte_seconds", "Time from sending the request head upstream to the "
	    "first response byte, by upstream (forward: one label).", "upstream", GW_HT_UPSTREAM,
	    GW_H_UP_FIRST_BYTE);
}

enum MHD_Result adm_metrics(struct MHD_Connection *c)
{
	struct gw_sbuf b;
	struct gw_stats_snapshot st;
	const struct gw_snapshot *s = gw_control_snapshot();
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	uint64_t rok, rfail;
	int ok;
	double when;
	uint64_t gen;
	const char *const *errs;
	size_t nerrs;

	if (gw_sbuf_init(&b, 8192) < 0)
		return MHD_NO;
	gw_control_stats(&st);
	gw_control_reload_counts(&rok, &rfail);
	gw_control_last_reload(&ok, &when, &gen, &errs, &nerrs);

	gw_sbuf_printf(&b, "# HELP gatehouse_build_info Build information.\n# TYPE gatehouse_build_info gauge\n"
	    "gatehouse_build_info{version=\"%s\"} 1\n", GW_VERSION);
	gw_sbuf_printf(&b, "# HELP gatehouse_start_time_seconds Start time since the epoch.\n"
	    "# TYPE gatehouse_start_time_seconds gauge\ngatehouse_start_time_seconds %.3f\n",
	    gw_control_started_at());
	gw_sbuf_printf(&b, "# HELP gatehouse_workers Worker threads.\n# TYPE gatehouse_workers gauge\ngatehouse_workers %d\n",
	    gw_control_nworkers());
	gw_sbuf_printf(&b, "# HELP gatehouse_requests_total Requests answered, by family and status class.\n"
	    "# TYPE gatehouse_requests_total counter\n");
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		for (int k = 0; k < 5; k++)
			gw_sbuf_printf(&b, "gatehouse_requests_total{family=\"%s\",class=\"%s\"} %llu\n", gw_stats_family_name(f),
			    classes[k], (unsigned long long)st.fam[f][GW_FC_STATUS_1XX + k]);
	family_counter(&b, &st, "requests_received_total", "Requests received (parsed heads), by family.",
	    GW_FC_REQUESTS);
	family_counter(&b, &st, "connections_total", "Client connections accepted, by family.",
	    GW_FC_CONN_ACCEPTED);
	family_counter(&b, &st, "received_bytes_total", "Bytes received from clients, by family.",
	    GW_FC_BYTES_IN);
	family_counter(&b, &st, "sent_bytes_total", "Bytes sent to clients, by family.", GW_FC_BYTES_OUT);
	family_counter(&b, &st, "tunnels_total", "CONNECT and Upgrade tunnels, by family.", GW_FC_TUNNELS);
	family_counter(&b, &st, "upstream_connects_total", "New upstream connections, by family.",
	    GW_FC_UPSTREAM_CONNECTS);
	family_counter(&b, &st, "upstream_reused_total", "Pooled upstream connections reused, by family.",
	    GW_FC_UPSTREAM_REUSED);
	family_counter(&b, &st, "upstream_errors_total", "Upstream connect and exchange errors, by family.",
	    GW_FC_UPSTREAM_ERRORS);
	/* HTTP/2 (core/h2.c): the rest of connections_total is HTTP/1 */
	family_counter(&b, &st, "h2_connections_total", "Client connections that spoke HTTP/2, by family.",
	    GW_FC_H2_CONNS);
	family_counter(&b, &st, "h2_streams_total", "HTTP/2 streams opened by clients, by family.", GW_FC_H2_STREAMS);
	family_counter(&b, &st, "h2_resets_received_total", "HTTP/2 RST_STREAM frames from clients, by family.",
	    GW_FC_H2_RESETS);
	family_counter(&b, &st, "h2_goaways_sent_total", "HTTP/2 GOAWAY frames sent, by family.", GW_FC_H2_GOAWAYS);
	family_counter(&b, &st, "upstream_h2_streams_total", "Exchanges sent to upstreams over HTTP/2 (protocol \"h2\"), by family.",
	    GW_FC_UPSTREAM_H2_STREAMS);
	gw_sbuf_printf(&b, "# HELP gatehouse_connections_active Client connections open now, by family.\n"
	    "# TYPE gatehouse_connections_active gauge\n");
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		gw_sbuf_printf(&b, "gatehouse_connections_active{family=\"%s\"} %llu\n", gw_stats_family_name(f),
		    (unsigned long long)st.conns_active_fam[f]);
	gw_sbuf_printf(&b, "# HELP gatehouse_connections_closed_total Client connections closed, by reason.\n"
	    "# TYPE gatehouse_connections_closed_total counter\n");
	for (int k = 0; k < GW_CLOSE__N; k++)
		gw_sbuf_printf(&b, "gatehouse_connections_closed_total{reason=\"%s\"} %llu\n", gw_close_reason_names[k],
		    (unsigned long long)st.close[k]);
	gw_sbuf_printf(&b, "# HELP gatehouse_dns_queries_total DNS lookups.\n# TYPE gatehouse_dns_queries_total counter\n"
	    "gatehouse_dns_queries_total %llu\n", (unsigned long long)st.dns_queries);
	gw_sbuf_printf(&b, "# HELP gatehouse_dns_cache_hits_total DNS answers from the cache.\n"
	    "# TYPE gatehouse_dns_cache_hits_total counter\ngatehouse_dns_cache_hits_total %llu\n",
	    (unsigned long long)st.dns_cache_hits);
	gw_sbuf_printf(&b, "# HELP gatehouse_dns_failures_total Failed DNS lookups.\n"
	    "# TYPE gatehouse_dns_failures_total counter\ngatehouse_dns_failures_total %llu\n",
	    (unsigned long long)st.dns_failures);
	gw_sbuf_printf(&b, "# HELP gatehouse_config_reloads_total Configuration reloads, by result.\n"
	    "# TYPE gatehouse_config_reloads_total counter\n"
	    "gatehouse_config_reloads_total{result=\"success\"} %llu\n"
	    "gatehouse_config_reloads_total{result=\"failure\"} %llu\n",
	    (unsigned long long)rok, (unsigned long long)rfail);
	gw_sbuf_printf(&b, "# HELP gatehouse_config_last_reload_successful Whether the last reload worked (1) or not (0).\n"
	    "# TYPE gatehouse_config_last_reload_successful gauge\ngatehouse_config_last_reload_successful %d\n",
	    ok ? 1 : 0);
	gw_sbuf_printf(&b, "# HELP gatehouse_config_generation The configuration generation being served.\n"
	    "# TYPE gatehouse_config_generation gauge\ngatehouse_config_generation %llu\n",
	    (unsigned long long)s->generation);
	gw_sbuf_printf(&b, "# HELP gatehouse_config_loaded_time_seconds When the served configuration was loaded.\n"
	    "# TYPE gatehouse_config_loaded_time_seconds gauge\ngatehouse_config_loaded_time_seconds %.3f\n",
	    s->loaded_at);
	{
		const void *side = adm_fwd_side(s);
		const struct fwd_policy *p = fwd_side_policy(side);
		size_t nr = p != NULL ? fwd_policy_nrules(p) : 0;
		gw_sbuf_printf(&b, "# HELP gatehouse_policy_rule_hits_total Forward requests decided by each policy rule "
		    "since start (a reload keeps the count of a rule it keeps: same name and action).\n"
		    "# TYPE gatehouse_policy_rule_hits_total counter\n");
		for (size_t i = 0; i < nr; i++) {
			gw_sbuf_printf(&b, "gatehouse_policy_rule_hits_total{rule=\"");
			put_label(&b, fwd_policy_rule_name(p, i));
			gw_sbuf_printf(&b, "\",action=\"%s\"} %zu\n", fwd_action_name(fwd_policy_rule_action(p, i)),
			    fwd_rule_hits(side, i));
		}
		if (p != NULL)
			gw_sbuf_printf(&b, "gatehouse_policy_rule_hits_total{rule=\"(no match)\",action=\"deny\"} %zu\n",
			    fwd_rule_hits(side, nr));
		gw_sbuf_printf(&b, "# HELP gatehouse_forward_events_total Forward-side events: blocks, sign-ins, DLP, PAC "
		    "since start.\n# TYPE gatehouse_forward_events_total counter\n");
		for (int k = 0; k < FWD_C_COUNT; k++)
			gw_sbuf_printf(&b, "gatehouse_forward_events_total{event=\"%s\"} %llu\n",
			    fwd_counter_name((enum fwd_counter)k),
			    (unsigned long long)fwd_side_counter(side, (enum fwd_counter)k));
		icap_metrics(&b, fwd_side_icap(side));
		gw_sbuf_printf(&b, "# HELP gatehouse_forward_inspect_total TLS inspection: CONNECTs inspected and "
		    "tunnelled, hellos refused, origin errors, leaves minted (and microseconds spent), cache hits "
		    "since start.\n# TYPE gatehouse_forward_inspect_total counter\n");
		for (int k = 0; k < FWD_IC_COUNT; k++)
			gw_sbuf_printf(&b, "gatehouse_forward_inspect_total{event=\"%s\"} %llu\n",
			    fwd_inspect_counter_name((enum fwd_inspect_counter)k),
			    (unsigned long long)fwd_inspect_counter((enum fwd_inspect_counter)k));
		gw_sbuf_printf(&b, "# HELP gatehouse_forward_inspect_cached_certs Minted certificates in the cache.\n"
		    "# TYPE gatehouse_forward_inspect_cached_certs gauge\ngatehouse_forward_inspect_cached_certs %zu\n",
		    fwd_inspect_cached(fwd_side_inspect(side)));
		gw_sbuf_printf(&b, "# HELP gatehouse_forward_dlp_scan_memory_bytes Request bodies held for DLP "
		    "scanning now (bounded by forward.dlp.max_scan_memory).\n"
		    "# TYPE gatehouse_forward_dlp_scan_memory_bytes gauge\n"
		    "gatehouse_forward_dlp_scan_memory_bytes %llu\n", (unsigned long long)fwd_dlp_scan_memory());
	}
	{
		size_t n = rev_servers_info(NULL, 0);
		struct rev_server_info *v = n ? calloc(n, sizeof *v) : NULL;
		if (v != NULL) {
			n = rev_servers_info(v, n);
			gw_sbuf_printf(&b, "# HELP gatehouse_upstream_server_up Upstream server usable for new requests "
			    "(1) or not (0: down, draining or disabled).\n"
			    "# TYPE gatehouse_upstream_server_up gauge\n");
			for (size_t i = 0; i < n; i++) {
				gw_sbuf_printf(&b, "gatehouse_upstream_server_up{upstream=\"");
				put_label(&b, v[i].upstream);
				gw_sbuf_printf(&b, "\",server=\"");
				put_label(&b, v[i].address);
				gw_sbuf_printf(&b, "\",state=\"%s\"} %d\n", rev_state_name(v[i].state), v[i].state == REV_STATE_UP);
			}
			gw_sbuf_printf(&b, "# HELP gatehouse_upstream_requests_total Requests sent to each upstream server.\n"
			    "# TYPE gatehouse_upstream_requests_total counter\n");
			for (size_t i = 0; i < n; i++) {
				gw_sbuf_printf(&b, "gatehouse_upstream_requests_total{upstream=\"");
				put_label(&b, v[i].upstream);
				gw_sbuf_printf(&b, "\",server=\"");
				put_label(&b, v[i].address);
				gw_sbuf_printf(&b, "\"} %llu\n", (unsigned long long)v[i].requests);
			}
			free(v);
		}
	}
	{
		size_t n = rev_site_requests(NULL, 0);
		struct rev_site_requests *v = n ? calloc(n, sizeof *v) : NULL;
		gw_sbuf_printf(&b, "# HELP gatehouse_site_requests_total Reverse requests answered, by site, upstream and "
		    "status class (this configuration generation).\n"
		    "# TYPE gatehouse_site_requests_total counter\n");
		n = v != NULL ? rev_site_requests(v, n) : 0;
		for (size_t i = 0; i < n; i++)
			for (int k = 0; k < 5; k++) {
				gw_sbuf_printf(&b, "gatehouse_site_requests_total{site=\"");
				put_label(&b, v[i].site);
				gw_sbuf_printf(&b, "\",upstream=\"");
				put_label(&b, v[i].upstream);
				gw_sbuf_printf(&b, "\",class=\"%s\"} %llu\n", classes[k], (unsigned long long)v[i].classes[k]);
			}
		free(v);
	}
	{
		struct rev_cache_stats cs;
		rev_cache_stats(&cs);
		gw_sbuf_printf(&b, "# HELP gatehouse_cache_requests_total Reverse cache outcomes.\n"
		    "# TYPE gatehouse_cache_requests_total counter\n"
		    "gatehouse_cache_requests_total{result=\"hit\"} %llu\n"
		    "gatehouse_cache_requests_total{result=\"miss\"} %llu\n"
		    "gatehouse_cache_requests_total{result=\"stale\"} %llu\n"
		    "gatehouse_cache_requests_total{result=\"revalidated\"} %llu\n",
		    (unsigned long long)cs.hits, (unsigned long long)cs.misses,
		    (unsigned long long)cs.stale, (unsigned long long)cs.revalidated);
		gw_sbuf_printf(&b, "# HELP gatehouse_cache_refreshes_total Background "
		    "stale-while-revalidate refreshes started.\n"
		    "# TYPE gatehouse_cache_refreshes_total counter\ngatehouse_cache_refreshes_total %llu\n"
		    "# HELP gatehouse_cache_refresh_failures_total Background refreshes that got no "
		    "usable answer (error, 5xx, cut short).\n"
		    "# TYPE gatehouse_cache_refresh_failures_total counter\n"
		    "gatehouse_cache_refresh_failures_total %llu\n",
		    (unsigned long long)cs.refreshes, (unsigned long long)cs.refresh_failures);
		gw_sbuf_printf(&b, "# HELP gatehouse_cache_served_bytes_total Body bytes answered from the "
		    "reverse cache.\n# TYPE gatehouse_cache_served_bytes_total counter\n"
		    "gatehouse_cache_served_bytes_total %llu\n", (unsigned long long)cs.served_bytes);
		gw_sbuf_printf(&b, "# HELP gatehouse_cache_bytes Bytes held by the reverse cache.\n"
		    "# TYPE gatehouse_cache_bytes gauge\ngatehouse_cache_bytes %llu\n"
		    "# HELP gatehouse_cache_objects Objects held by the reverse cache.\n"
		    "# TYPE gatehouse_cache_objects gauge\ngatehouse_cache_objects %llu\n",
		    (unsigned long long)cs.bytes, (unsigned long long)cs.objects);
	}
	latency_metrics(&b);
	{
		struct clu_status cs;
		clu_status(&cs);
		gw_sbuf_printf(&b, "# HELP gatehouse_cluster_redis_up The shared Redis of cluster.redis is connected (1), "
		    "or not (0: limits count per node); absent without cluster.redis.\n"
		    "# TYPE gatehouse_cluster_redis_up gauge\n");
		if (cs.configured)
			gw_sbuf_printf(&b, "gatehouse_cluster_redis_up %d\n", cs.up);
	}
	{
		uint64_t sent, dropped;
		int on;
		gw_log_syslog_counts(&sent, &dropped, &on);
		gw_sbuf_printf(&b, "# HELP gatehouse_access_log_syslog_lines_total Access-log lines handed to syslog "
		    "(global.log.access = \"syslog:...\"), by result (dropped: the queue was full or the "
		    "socket refused them at once).\n# TYPE gatehouse_access_log_syslog_lines_total counter\n"
		    "gatehouse_access_log_syslog_lines_total{result=\"sent\"} %llu\n"
		    "gatehouse_access_log_syslog_lines_total{result=\"dropped\"} %llu\n",
		    (unsigned long long)sent, (unsigned long long)dropped);
	}
	if (b.oom) {
		free(b.p);
		return MHD_NO;
	}
	return adm_send(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, 1, NULL, NULL);
}

enum MHD_Result adm_healthz(struct MHD_Connection *c)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	char why[200];

	/* a stopping node must lose the VIP before its grace period ends, so
	 * the standby takes new connections while this one finishes its own */
	if (gw_control_stopping())
		snprintf(why, sizeof why, "stopping\n");
	else if (s == NULL)
		snprintf(why, sizeof why, "no configuration loaded\n");
	else if (gw_listener_accepting(s, gw_control_nworkers(), why, sizeof why - 1))
		return adm_send(c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 0, 0, NULL, NULL);
	else
		strcat(why, "\n");
	return adm_send(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", why, 0, 0,
	    MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}
