/*
 * forward/observe: what the console shows of the forward traffic, kept for
 * the life of the process (across reloads): the top allowed and the top
 * blocked domains, the signed-in users, and the DLP hits.
 *
 * Hot path: forward.c calls fwd_obs_request() once per finished request.
 * Each worker has its own shard (allocated once, on its first request)
 * with its own mutex, which only the console's rare reads ever contend
 * for; inside, a fixed-size Space-Saving table per verdict (topk.h) and a
 * fixed-size user table.  Nothing is allocated per request.  DLP hits are
 * rare and go to one mutex-protected ring.  Strings stored here are already
 * redacted (DLP) and printable.
 */
#ifndef GW_FORWARD_OBSERVE_H
#define GW_FORWARD_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "forward/topk.h"

#define FWD_OBS_USERS 128          /* signed-in users remembered per worker */
#define FWD_OBS_CLIENTS 4          /* client addresses kept per user (the most recent) */
#define FWD_OBS_DLP 256            /* DLP hits kept */

struct fwd_obs_user {
	char name[129];
	char clients[FWD_OBS_CLIENTS][46];
	unsigned nclients;
	double first_seen, last_seen;      /* wall clock */
	uint64_t requests;
};

struct fwd_obs_dlp {
	double time;                       /* wall clock */
	char client[46];
	char user[129];                    /* "" when not signed in */
	char url[200];                     /* what was asked for (cut) */
	char host[128];
	char detector[64];                 /* "credit_card", ..., or the pattern's name */
	char match[48];                    /* redacted by forward/dlp: never the secret */
	char where[64];                    /* "URL", "header X-Data", "request body (inflated)" */
	int deny;                          /* 1 blocked, 0 logged (forwarded) */
	char request_id[24];
};

/*
 * A forward request finished on worker (0..GW_MAX_WORKERS-1): verdict 1 =
 * allowed, 2 = blocked, 0 = neither (counted for its user only).  host may
 * be NULL; user NULL when not signed in; client is the numeric address.
 * Only the worker itself may call this with its index.
 */
#define FWD_OBS_ALLOWED 1
#define FWD_OBS_BLOCKED 2
void fwd_obs_request(int worker, int verdict, const char *host, size_t host_len, const char *user,
    const char *client, double now);

/* Remember one DLP hit (any thread). */
void fwd_obs_dlp_push(const struct fwd_obs_dlp *e);

/* The max domains with the most requests of that verdict over all workers,
 * most first (see fwd_topk_merge()).  Any thread; returns the count. */
size_t fwd_obs_top(int verdict, struct fwd_topk_item *out, size_t max);

/* Signed-in users over all workers (requests summed, clients merged),
 * most recently seen first.  Returns the count (at most max). */
size_t fwd_obs_users(struct fwd_obs_user *out, size_t max);

/* Up to max DLP hits, newest first; *total gets how many were ever pushed. */
size_t fwd_obs_dlp_recent(struct fwd_obs_dlp *out, size_t max, uint64_t *total);

#endif
