/*
 * admin/api_cluster: the console's view of the HA pair's shared state
 * (cluster/cluster.h): GET /api/v1/cluster.  Main thread.
 */
#include "admin/api_int.h"
#include "cluster/cluster.h"

json_t *adm_api_cluster(void)
{
	struct clu_status st;

	clu_status(&st);
	/* "fallback": configured but unreachable, so limits count per node */
	return json_pack("{s:s,s:{s:b,s:s,s:b,s:b,s:f,s:s,s:I,s:I,s:I,s:I,s:I,s:I}}", "node", st.node, "redis",
	    "configured", st.configured, "address", st.address, "up", st.up, "fallback", st.configured && !st.up,
	    "since", st.since, "last_error", st.last_error, "outages", (json_int_t)st.outages,
	    "rate_limit_syncs", (json_int_t)st.rl_sent, "rate_limit_charged", (json_int_t)st.rl_charged,
	    "events_out", (json_int_t)st.events_out, "events_in", (json_int_t)st.events_in,
	    "queued", (json_int_t)st.queued);
}
