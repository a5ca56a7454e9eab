/*
 * admin/api_cluster: the console's view of the HA pair (cluster/cluster.h,
 * cluster/sync.h): GET /api/v1/cluster for operators, and the two
 * endpoints the peers call with their signature instead of a login
 * (/api/v1/cluster/sync, /api/v1/cluster/state).  Main thread.
 */
#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "cluster/cluster.h"
#include "cluster/sync.h"

json_t *adm_api_cluster(void)
{
	struct clu_status st;

	clu_status(&st);
	/* "fallback": configured but unreachable, so limits count per node */
	return json_pack("{s:s,s:o,s:{s:b,s:s,s:b,s:b,s:f,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}", "node", st.node,
	    "sync", clu_sync_json(), "redis",
	    "configured", st.configured, "address", st.address, "up", st.up, "fallback", st.configured && !st.up,
	    "since", st.since, "last_error", st.last_error, "outages", (json_int_t)st.outages,
	    "rate_limit_syncs", (json_int_t)st.rl_sent, "rate_limit_charged", (json_int_t)st.rl_charged,
	    "backoff_syncs", (json_int_t)st.bo_sent, "backoff_applied", (json_int_t)st.bo_in,
	    "events_out", (json_int_t)st.events_out, "events_in", (json_int_t)st.events_in,
	    "queued", (json_int_t)st.queued);
}

enum MHD_Result adm_api_cluster_peer(struct MHD_Connection *c, const char *method, const char *path,
    struct adm_req *r)
{
	unsigned status = MHD_HTTP_OK;
	json_t *j;

	if (r->too_big)
		return adm_send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "configuration too large");
	j = clu_sync_endpoint(method, path, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Gatehouse-Cluster"),
	    r->body, r->len, &status);
	if (j == NULL)
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return adm_send_json(c, status, j);
}
