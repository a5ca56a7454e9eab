/*
 * admin/api: the JSON API under /api/v1/ (jansson): the router (adm_api),
 * the helpers the handlers share (query arguments, the last reload as
 * JSON), the console's reload and the audit of every reload and config
 * change.  The handlers live by role in api_stats.c (sampler, stats),
 * api_logs.c (events, access-log tail), api_config.c (config dump,
 * certificates), api_fwd.c (forward observations, policy tester) and
 * api_rev.c (upstream servers, sites, cache); admin/api_int.h declares
 * them.  Every handler answers from what the main thread owns: summed
 * stats, the current snapshot, the event and tail rings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "conf/conf.h"
#include "core/control.h"
#include "core/snapshot.h"

static struct {
	const char *actor_user;    /* who asked for the reload now running (console) */
	const char *actor_client;
} S;

/* ---- helpers ---- */

const char *adm_arg(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	return v != NULL && *v ? v : NULL;
}

uint64_t adm_arg_u64(struct MHD_Connection *c, const char *name)
{
	const char *v = adm_arg(c, name);

	return v != NULL ? strtoull(v, NULL, 10) : 0;
}

/* The string k of o; "" if absent. */
const char *adm_jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

const char *adm_s_or(const char *s, const char *dflt)
{
	return s != NULL ? s : dflt;
}

json_t *adm_last_reload_json(void)
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

/* ---- life ---- */

int adm_api_init(void)
{
	if (adm_api_stats_init() < 0 || adm_api_fwd_init() < 0)
		return -1;
	return 0;
}

void adm_api_free(void)
{
	adm_api_stats_free();
	adm_api_fwd_free();
	memset(&S, 0, sizeof S);
}

/* ---- POST reload ---- */

/* Audit a finished reload (rc 0 or -1); returns the last reload's JSON. */
static json_t *reload_audited(const char *user, const char *client, int rc)
{
	json_t *lr = adm_last_reload_json();
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
	    adm_s_or(s->conf->path, ""));
	adm_audit(S.actor_user, S.actor_client != NULL ? S.actor_client : "SIGHUP", "config change", "ok", detail);
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
		j = adm_api_stats(c);
	else if (get && strcmp(path, "events") == 0)
		j = adm_api_events(c);
	else if (get && strcmp(path, "forward") == 0)
		j = adm_api_forward();
	else if (get && strcmp(path, "forward/blocks") == 0)
		j = adm_api_blocks(c);
	else if (get && strcmp(path, "tail") == 0)
		j = adm_api_tail(c);
	else if (get && strcmp(path, "config") == 0)
		j = adm_api_config();
	else if (get && strcmp(path, "certificates") == 0)
		j = adm_api_certificates();
	else if (get && strcmp(path, "audit") == 0)
		j = json_pack("{s:o}", "audit", adm_audit_json());
	else if (get && strcmp(path, "reload") == 0)
		j = adm_last_reload_json();
	else if (post && strcmp(path, "reload") == 0) {
		if (who->role != ADM_ADMIN) {
			adm_audit(who->user, r->client, "reload", "denied", "viewer role");
			return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the admin role is required");
		}
		return api_reload(c, who, r->client);
	} else if (post && strcmp(path, "policy/test") == 0)
		j = adm_api_policy_test(r, r->client, &status);
	else if (get && strcmp(path, "upstreams") == 0)
		j = adm_api_upstreams();
	else if (get && strcmp(path, "sites") == 0)
		j = adm_api_sites();
	else if (post && strncmp(path, "servers/", 8) == 0)
		return adm_api_server_state(c, r, who, path + 8);
	else if (get && strcmp(path, "cache") == 0)
		j = adm_api_cache();
	else if (post && strcmp(path, "cache/purge") == 0)
		return adm_api_cache_purge(c, r, who);
	else if (get && (strcmp(path, "inspect/ca.pem") == 0 || strcmp(path, "inspect/ca.der") == 0))
		return adm_api_inspect_ca(c, strcmp(path, "inspect/ca.der") == 0);
	else if (get && strcmp(path, "cluster") == 0)
		j = adm_api_cluster();
	else if (post && strcmp(path, "certificates/renew") == 0)
		return adm_api_acme_renew(c, r, who);
	else {
		static const char *const known[] = { "session", "stats", "events", "forward", "forward/blocks", "tail", "config",
			"certificates",
			"audit", "reload", "policy/test", "upstreams", "sites", "servers/drain", "servers/enable",
			"servers/disable", "cache", "cache/purge", "cluster", "certificates/renew", "inspect/ca.pem",
			"inspect/ca.der", NULL };
		for (int i = 0; known[i]; i++)
			if (strcmp(path, known[i]) == 0)
				return adm_send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no such API endpoint");
	}
	if (j == NULL)
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return adm_send_json(c, status, j);
}
