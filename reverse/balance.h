/*
 * reverse/balance: choose a server of an upstream for one request.
 *
 * A struct rev_balancer holds the balancing state of one upstream for one
 * worker thread (each worker creates its own from the config; there is no
 * locking inside).  The caller decides which servers may be used right now
 * (health state up, not draining/disabled/down, below max_conns, not already
 * tried for this request) and passes that as bitmasks together with the
 * in-flight counts and optional slow-start weight factors; the balancer only
 * chooses.  Backup servers are chosen only when no primary server is usable.
 *
 * Algorithms:
 *   round_robin  smooth weighted round robin (nginx): weights 5,1,1 give
 *                a a b a c a a, repeating.
 *   least_conn   fewest in_flight/weight; ties broken by smooth weighted round
 *                robin among the tied servers (so all-idle follows the weights).
 *   ip_hash      weighted rendezvous (highest random weight) hashing of the
 *                client address (IPv4, v4-mapped IPv6 counted as IPv4, or the
 *                full IPv6 address; the port is ignored) with a per-server seed
 *                derived from the server's address text: a client always gets
 *                the same server while it is usable; when a server becomes
 *                unusable only its clients move (spread over the others in
 *                proportion to weight), and adding/removing one of N servers
 *                moves about 1/N of clients.  No client address: round robin.
 *   random_two   power of two choices: two distinct servers drawn at random
 *                in proportion to weight, the one with lower in_flight/weight
 *                wins (ties: the first drawn).
 * Weights are scaled by the slow-start factor (0..1); a usable server always
 * keeps a tiny positive weight, so a factor of 0 still lets it serve when it is
 * the only one left.
 */
#ifndef GW_REV_BALANCE_H
#define GW_REV_BALANCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

#define REV_BALANCER_MAGIC 0x42414c52u  /* "BALR" */

/* Server bitmasks: bit i of word i/64 is server i. */
#define REV_BITS_WORDS(n) (((n) + 63) / 64)
static inline void rev_bits_set(uint64_t *m, size_t i) { m[i / 64] |= (uint64_t)1 << (i % 64); }
static inline void rev_bits_clear(uint64_t *m, size_t i) { m[i / 64] &= ~((uint64_t)1 << (i % 64)); }
static inline int rev_bits_test(const uint64_t *m, size_t i) { return (int)((m[i / 64] >> (i % 64)) & 1); }

struct rev_balancer;   /* opaque; owned by the worker that created it */

struct rev_pick_ctx {
	/* Servers that may be chosen (REV_BITS_WORDS(n) words); NULL = all. */
	const uint64_t *usable;
	/* Servers already tried for this request (retry); NULL = none. */
	const uint64_t *excluded;
	/* Requests in flight per server (n entries); NULL = all zero.  Used by
	 * least_conn and random_two. */
	const uint32_t *in_flight;
	/* Slow-start weight factor per server, 0..1 (n entries); NULL = all 1. */
	const double *weight_factor;
	/* Client address for ip_hash (AF_INET / AF_INET6); NULL = none. */
	const struct sockaddr *client;
	/* Random state for random_two (any value; advanced on use); NULL = the
	 * balancer's own state.  Tests pass their own for determinism. */
	uint64_t *rng;
};

/*
 * New balancer for upstream up (its servers, weights, backup flags, balance
 * algorithm).  The balancer copies what it needs; up may be freed afterwards.
 * seed initialises the balancer's own random state (e.g. the worker id).
 * Returns NULL on allocation failure or if up has no servers.
 */
struct rev_balancer *rev_balancer_new(const struct conf_rev_upstream *up, uint64_t seed);

/* Free (NULL is fine). */
void rev_balancer_free(struct rev_balancer *b);

/* Number of servers (the length of the masks and arrays in the ctx). */
size_t rev_balancer_nservers(const struct rev_balancer *b);

/*
 * Choose a server for one request.  Returns its index in up->servers, or -1
 * when no server is usable (usable and not excluded) among primaries nor
 * backups.  Updates the round-robin state only when a server is returned.
 * Never allocates, never blocks; not thread-safe (one balancer per worker).
 * ip_hash ignores in_flight; least_conn/round_robin ignore client and rng.
 */
int rev_balance_pick(struct rev_balancer *b, const struct rev_pick_ctx *ctx);

/* The 64-bit random generator used for random_two (splitmix64), exported so
 * callers and tests can share it. */
uint64_t rev_balance_rand(uint64_t *state);

#endif
