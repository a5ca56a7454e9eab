/*
 * core/upstream_loop: the upstream engine's exchanges without a client
 * connection (health checks, tests): the little of a worker the engine
 * needs, on a loop that is not a worker's, and one-off exchanges on it.
 * Moved out of core/upstream.c as it was, to keep that file under the size
 * limit.
 */
#include "core/upstream.h"

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/dns.h"
#include "core/http1.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/worker.h"

#include "core/conn_int.h"

/* ---- exchanges without a client connection ----
 *
 * Health checks (reverse/hcheck.c) and tests run exchanges on a loop that
 * is not a worker's: gw_upstream_loop_new gives them the little of a worker
 * the engine uses (event base, resolver, pool, counters, head scratch).
 * Its pool keeps nothing (max_conns 0: each connection closes after its
 * exchange) and its id is -1 (no latency histograms).
 */

struct gw_worker *gw_upstream_loop_new(struct event_base *base, struct gw_dns *dns)
{
	struct gw_worker *w = calloc(1, sizeof *w);

	if (w == NULL)
		return NULL;
	w->id = -1;
	w->base = base;
	w->dns = dns;
	w->stats = calloc(1, sizeof *w->stats);
	w->pool = gw_pool_new();
	w->scratch = malloc(SCRATCH_HDRS * sizeof(struct gw_hdr));
	if (w->stats == NULL || w->pool == NULL || w->scratch == NULL) {
		gw_upstream_loop_free(w);
		return NULL;
	}
	return w;
}

void gw_upstream_loop_free(struct gw_worker *w)
{
	if (w == NULL)
		return;
	if (w->pool != NULL)
		gw_pool_free(w->pool);
	free(w->stats);
	free(w->scratch);
	free(w);
}

struct gw_req *gw_upstream_req_new(struct gw_worker *w, struct gw_snapshot *snap,
    const struct gw_proto *proto, const struct gw_sink *sink, void *sink_arg,
    const char *head, size_t len)
{
	const struct conf_limits *L = &snap->conf->global.limits;
	struct gw_http_limits lim = { (size_t)L->max_header_bytes, 64, (size_t)L->max_uri_bytes };
	struct gw_req *rq = gw_req__new_bare(w, snap, proto, NULL);

	if (rq == NULL)
		return NULL;
	w->snap = snap;            /* (pool_put reads the idle timeout there) */
	rq->sink = sink;
	rq->sink_arg = sink_arg;
	rq->no_via = 1;
	rq->headbuf = gw_arena_raw(&rq->arena, len);
	rq->head.hdrs = gw_req_alloc(rq, lim.max_headers * sizeof *rq->head.hdrs);
	rq->head.hdrs_cap = lim.max_headers;
	if (rq->headbuf == NULL || rq->head.hdrs == NULL) {
		gw_req__free(rq);
		return NULL;
	}
	memcpy(rq->headbuf, head, len);
	if (gw_http1_parse_request(rq->headbuf, len, &lim, &rq->head) != (ssize_t)len ||
	    rq->head.body != GW_BODY_NONE) {
		gw_req__free(rq);
		return NULL;
	}
	rq->reqx.done = 1;         /* no request body */
	return rq;
}

void gw_upstream_req_free(struct gw_req *rq)
{
	if (rq == NULL)
		return;
	if (rq->dnsq != NULL) {
		gw_dns_cancel(rq->dnsq);
		rq->dnsq = NULL;
	}
	if (rq->up != NULL)
		gw_upstream_detach(rq);
	gw_req__free(rq);
}
