/*
 * admin/api_int.h: what the JSON API's files call on each other.  api.c
 * routes /api/v1/ to the handlers below and keeps the helpers they share;
 * api_stats.c, api_logs.c, api_config.c, api_fwd.c and api_rev.c each hold
 * the handlers of one role.  Only these files include it (the rest of the
 * console sees adm_api* through admin/adm_int.h).  Main thread only, like
 * every console handler.
 */
#ifndef GW_API_INT_H
#define GW_API_INT_H

#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

struct adm_req;
struct adm_who;

/* ---- api.c: shared helpers ---- */
/* Query argument name of c; NULL when absent or empty. */
const char *adm_arg(struct MHD_Connection *c, const char *name);
/* The same as a decimal number; 0 when absent. */
uint64_t adm_arg_u64(struct MHD_Connection *c, const char *name);
/* The string k of o; "" if absent (borrowed from o). */
const char *adm_jstr(const json_t *o, const char *k);
/* s, or dflt when s is NULL. */
const char *adm_s_or(const char *s, const char *dflt);
/* The last reload: {ok, when, generation, errors}; a new reference. */
json_t *adm_last_reload_json(void);

/*
 * The handlers.  Those returning json_t * give a new reference (NULL when
 * out of memory: the router answers 500); the others answer c themselves.
 */

/* ---- api_stats.c ---- */
/* Start the 1 s sampler on adm_base (a no-op when running); 0 or -1. */
int adm_api_stats_init(void);
void adm_api_stats_free(void);
json_t *adm_api_stats(struct MHD_Connection *c);                     /* GET stats[?since=] */

/* ---- api_logs.c ---- */
json_t *adm_api_events(struct MHD_Connection *c);                    /* GET events[?kind=&after=] */
json_t *adm_api_tail(struct MHD_Connection *c);                      /* GET tail[?host=&status=...] */

/* ---- api_config.c ---- */
json_t *adm_api_config(void);                                        /* GET config */
json_t *adm_api_certificates(void);                                  /* GET certificates */
json_t *adm_api_acme_orders(void);
/* GET inspect/ca.pem, inspect/ca.der: the inspection CA's certificate (never its key) */
enum MHD_Result adm_api_inspect_ca(struct MHD_Connection *c, int der);                                   /* (part of it) */
enum MHD_Result adm_api_acme_renew(struct MHD_Connection *c, struct adm_req *r,
    const struct adm_who *who);                                      /* POST certificates/renew */

/* ---- api_fwd.c ---- */
/* The policy tester's match block; 0 or -1. */
int adm_api_fwd_init(void);
void adm_api_fwd_free(void);
json_t *adm_api_forward(void);                                       /* GET forward */
json_t *adm_api_blocks(struct MHD_Connection *c);                    /* GET forward/blocks */
/* POST policy/test: r's body is the form, console_client the default
 * client; *status is the HTTP status to answer with. */
json_t *adm_api_policy_test(struct adm_req *r, const char *console_client, unsigned *status);

/* ---- api_rev.c ---- */
json_t *adm_api_upstreams(void);                                     /* GET upstreams */
json_t *adm_api_sites(void);                                         /* GET sites */
/* POST servers/...; path is the part after "servers/". */
enum MHD_Result adm_api_server_state(struct MHD_Connection *c, struct adm_req *r,
    const struct adm_who *who, const char *path);
json_t *adm_api_cache(void);                                         /* GET cache */
enum MHD_Result adm_api_cache_purge(struct MHD_Connection *c, struct adm_req *r,
    const struct adm_who *who);                                      /* POST cache/purge */

/* ---- api_cluster.c ---- */
json_t *adm_api_cluster(void);                                       /* GET cluster */


#endif
