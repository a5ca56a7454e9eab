/*
 * reverse/ratelimit: token buckets per client, for a site's rate_limit.
 *
 * A struct rev_rl is a fixed-size table of buckets keyed by opaque bytes (the
 * caller uses site index + client address).  One table serves the whole
 * process: every worker takes from it (under its mutex), so a client spread
 * over connections on several workers has one budget, not one per worker.
 *
 * The table never grows: when the probe window of a key is full, the bucket
 * that would be the fullest by now (the least recently limited client) is
 * taken over.  An evicted client starts again with a full bucket, so under a
 * flood of distinct addresses the limit errs on the side of letting through.
 * The table's hash is keyed with a random secret, so addresses cannot be
 * chosen to land in (and push out) one client's probe window.
 */
#ifndef GW_REV_RATELIMIT_H
#define GW_REV_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct rev_rl;

/* New table with room for about cap clients (rounded up to a power of two,
 * at least 64).  NULL on allocation failure. */
struct rev_rl *rev_rl_new(size_t cap);
void rev_rl_free(struct rev_rl *t);

/*
 * Take one token for key (klen <= 32 bytes; longer keys are cut) from a
 * bucket of size burst refilled at rps tokens per second; now is a monotonic
 * time in seconds.  Returns 1 if the request may pass; 0 if not, with
 * *retry_after set to the seconds until a token is available (> 0).
 * rps <= 0 always passes.  A new client starts with a full bucket.
 */
int rev_rl_take(struct rev_rl *t, const void *key, size_t klen, double rps, double burst,
    double now, double *retry_after);

/*
 * Sharing the buckets between nodes (cluster/, main thread).  Each node
 * counts locally (a worker never waits for the network) and adds what it
 * took to a counter per client in Redis every tick; the counter's reply is
 * the cluster's total, and what the other nodes took since the last sync is
 * taken out of the local bucket.  A client spread over nodes thus has one
 * budget, within one tick's worth of requests per node.
 */
struct rev_rl_delta {
	uint8_t key[32];
	size_t klen;
	uint32_t taken;            /* tokens taken on this node since the last collect */
	double rps, burst;         /* the bucket's limits (for the counter's expiry) */
};
/* Copy out up to max buckets with tokens taken since the last call, and
 * reset their counts.  Returns how many. */
size_t rev_rl_collect(struct rev_rl *t, struct rev_rl_delta *out, size_t max);
/*
 * The cluster-wide counter of key is total after this node added mine:
 * charge the bucket (if still held) with the other nodes' takes since the
 * last call.  Returns what was charged.
 */
uint64_t rev_rl_remote(struct rev_rl *t, const void *key, size_t klen, uint64_t total, uint64_t mine);

#endif
