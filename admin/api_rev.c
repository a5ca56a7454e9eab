/*
 * admin/api_rev: the console's view of the reverse proxy: GET upstreams
 * (every server's live state) and the drain / disable / enable actions on
 * a server, GET sites (requests per site and upstream), GET cache and POST
 * cache/purge.  The actions take effect at once and are audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "cluster/cluster.h"
#include "reverse/cache_glue.h"
#include "reverse/reverse.h"

/* ---- upstream servers: state, drain / enable / disable ---- */

json_t *adm_api_upstreams(void)
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
json_t *adm_api_sites(void)
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
enum MHD_Result adm_api_server_state(struct MHD_Connection *c, struct adm_req *r,
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
	if (rc == 0)
		clu_server_state(up, addr, state);   /* the HA partner follows */
	adm_audit(who->user, r->client, action, rc == 0 ? "ok" : "failed", detail);
	json_decref(in);
	if (rc != 0)
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no such server");
	return adm_send_json(c, MHD_HTTP_OK, adm_api_upstreams());
}

/* ---- cache ---- */

json_t *adm_api_cache(void)
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
enum MHD_Result adm_api_cache_purge(struct MHD_Connection *c, struct adm_req *r,
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
	if (n >= 0)
		clu_purge(url != NULL, url ? url : prefix);
	snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " removed=%d", n);
	adm_audit(who->user, r->client, "cache purge", n < 0 ? "failed" : "ok", detail);
	json_decref(in);
	if (n < 0)
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "malformed URL");
	return adm_send_json(c, MHD_HTTP_OK, json_pack("{s:i}", "purged", n));
}
