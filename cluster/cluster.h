/*
 * cluster/cluster: the state an HA pair shares through Redis (cluster.redis).
 *
 * One Redis client on the main loop (hiredis with its libevent adapter;
 * two connections: commands, and one subscribed to the pair's event
 * channel), so a worker never waits for the network:
 *   - reverse per-client rate limits: each node counts locally and, every
 *     0.1 s, adds what it took to a per-client counter in Redis (INCRBY +
 *     PEXPIRE in one script); the reply charges the local bucket with the
 *     other nodes' takes (reverse/ratelimit.h rev_rl_collect/rev_rl_remote);
 *   - forward sign-in backoff: failed Basic sign-ins per client are added
 *     the same way to PREFIX"ab:<keyed digest>" (expiring after the local
 *     forget time); once a client is refused, the count is published on
 *     PREFIX"events" so every node refuses it too; a success clears it
 *     everywhere (forward/auth.h fwd_auth_backoff_collect/_remote);
 *   - drain/disable/enable and cache purges done on one node's console are
 *     published on PREFIX"events" and applied by every other node; server
 *     states are also kept in the hash PREFIX"servers", read again at every
 *     (re)connection, so a node that was away catches up.
 * Every key and channel starts with cluster.redis_prefix; counters expire
 * (twice the bucket's refill time), the servers hash after 30 days unused.
 *
 * Redis unreachable (refused, reset, no answer within 2 s): every node
 * falls back to its local state (limits per node), logs it once, shows it
 * in the console (/api/v1/cluster, gatehouse_cluster_redis_up), and
 * reconnects with backoff (0.2 s doubling to 2 s).  Changes made meanwhile
 * are queued and published when it returns; counts are not replayed (the
 * windows expire by themselves).
 *
 * Main thread only.
 */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stdint.h>

struct event_base;
struct gw_snapshot;

/* Follow s's cluster section (and every reload's) on base.  0, or -1 when
 * out of memory (logged; the node then runs alone). */
int clu_start(struct event_base *base, const struct gw_snapshot *s);
/* Close the connections and timers (at exit). */
void clu_stop(void);

/* The console changed a server's admin state (REV_STATE_UP, _DRAINING,
 * _DISABLED) here: tell the other nodes.  A no-op without cluster.redis. */
void clu_server_state(const char *upstream, const char *address, int state);
/* The console purged the cache here (by_url 1: url; 0: host prefix). */
void clu_purge(int by_url, const char *what);

struct clu_status {
	int configured;            /* cluster.redis is set */
	int up;                    /* connected and subscribed */
	char address[80];
	char node[20];             /* this node's id in the pair's messages */
	double since;              /* wall clock of the last up/down change (0 = never up) */
	char last_error[160];      /* why it went down last ("" = never) */
	uint64_t outages;
	uint64_t rl_sent;          /* rate-limit counters added to */
	uint64_t rl_charged;       /* tokens charged for other nodes' requests */
	uint64_t bo_sent;          /* sign-in failure counts added to */
	uint64_t bo_in;            /* client records raised or cleared by the other nodes */
	uint64_t events_out, events_in;   /* drain/purge messages published, applied */
	uint64_t queued;           /* changes waiting for Redis now */
};
void clu_status(struct clu_status *out);

#endif
