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

#endif
