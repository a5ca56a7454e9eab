/*
 * core/climit: how many connections each client holds, counted across all
 * worker threads, for global.max_connections_per_client.
 *
 * A client is an IPv4 address (IPv4-mapped IPv6 counts as that IPv4
 * address) or an IPv6 /64: one host on an IPv6 network gets a whole /64
 * and can pick any address in it, so counting single IPv6 addresses would
 * bound nothing.
 *
 * The counts live in a fixed count-min sketch: CLIMIT_ROWS rows of
 * CLIMIT_SLOTS atomic counters, each row indexed by a SipHash of the client
 * key under a per-process random key.  A client's count is the smallest of
 * its counters, so it is never under-counted (the limit always holds), and
 * it is over-counted only if, in every row, other clients' connections
 * share its counter: with global.max_connections = 100000 and a limit of
 * 1000, at most 100 counters per row can reach the limit, so a client that
 * did nothing is refused with a probability near (100 / 65536)^2 = 2e-6,
 * and an attacker cannot aim at a given client without the key.  No
 * allocation, no lock, fixed memory (512 KiB of address space, touched
 * pages only).
 */
#ifndef GW_CLIMIT_H
#define GW_CLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

/* Count one more connection from peer (any thread).  limit 0 = no limit.
 * Returns 1 when counted (the caller must gw_climit_release() it when the
 * connection ends), 0 when peer already holds limit connections (nothing
 * counted), -1 when peer is not an IPv4/IPv6 address (nothing counted). */
int gw_climit_take(const struct sockaddr *peer, uint64_t limit);

/* The connection counted by a gw_climit_take() that returned 1 for the same
 * peer has ended (any thread). */
void gw_climit_release(const struct sockaddr *peer);

/* The count for peer now (tests, diagnostics; any thread). */
uint64_t gw_climit_count(const struct sockaddr *peer);

#endif
