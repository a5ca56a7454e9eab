/*
 * core/climit: per-client connection counts shared by all workers (see
 * climit.h for what a client is and why a sketch).
 */
#include "core/climit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CLIMIT_ROWS 2
#define CLIMIT_BITS 16
#define CLIMIT_SLOTS (1u << CLIMIT_BITS)

static _Atomic uint32_t counts[CLIMIT_ROWS][CLIMIT_SLOTS];
static uint64_t sip_k0, sip_k1;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
	uint64_t k[2];

	if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
		/* no entropy source: still spread clients, only less secretly */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
		k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4full;
	}
	sip_k0 = k[0];
	sip_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

/* SipHash-2-4 of the 16-byte message (m0, m1): keyed, so which clients share
 * a counter is not something a client can choose. */
static uint64_t siphash16(uint64_t m0, uint64_t m1)
{
	uint64_t v0 = sip_k0 ^ 0x736f6d6570736575ull, v1 = sip_k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = sip_k0 ^ 0x6c7967656e657261ull, v3 = sip_k1 ^ 0x7465646279746573ull;
	uint64_t last = (uint64_t)16 << 56;

	v3 ^= m0; SIPROUND; SIPROUND; v0 ^= m0;
	v3 ^= m1; SIPROUND; SIPROUND; v0 ^= m1;
	v3 ^= last; SIPROUND; SIPROUND; v0 ^= last;
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The client's counter in each row; returns 0, or -1 for a peer that is not
 * an IP address. */
static int slots_of(const struct sockaddr *peer, uint32_t idx[CLIMIT_ROWS])
{
	uint64_t m0, m1 = 0, h;

	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
		m0 = ((uint64_t)4 << 56) | (uint64_t)ntohl(in->sin_addr.s_addr);
	} else if (peer->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, sizeof mapped) == 0) {
			m0 = ((uint64_t)4 << 56) | ((uint64_t)a[12] << 24) | ((uint64_t)a[13] << 16) |
			    ((uint64_t)a[14] << 8) | a[15];
		} else {
			m0 = (uint64_t)6 << 56;      /* the /64 only */
			memcpy(&m1, a, 8);
		}
	} else {
		return -1;
	}
	pthread_once(&key_once, key_init);
	h = siphash16(m0, m1);
	for (int r = 0; r < CLIMIT_ROWS; r++)
		idx[r] = (uint32_t)(h >> (r * CLIMIT_BITS)) & (CLIMIT_SLOTS - 1);
	return 0;
}

int gw_climit_take(const struct sockaddr *peer, uint64_t limit)
{
	uint32_t idx[CLIMIT_ROWS];
	uint64_t least = UINT64_MAX;

	if (slots_of(peer, idx) < 0)
		return -1;
	/* add first, then look, with no lock: workers accepting the same client
	 * at the same instant can each see the other's add in one row but not
	 * in the other, so the limit may be passed by at most one connection
	 * per worker, for that instant */
	for (int r = 0; r < CLIMIT_ROWS; r++) {
		uint64_t n = (uint64_t)atomic_fetch_add_explicit(&counts[r][idx[r]], 1,
		    memory_order_relaxed) + 1;
		if (n < least)
			least = n;
	}
	if (limit == 0 || least <= limit)
		return 1;
	for (int r = 0; r < CLIMIT_ROWS; r++)
		atomic_fetch_sub_explicit(&counts[r][idx[r]], 1, memory_order_relaxed);
	return 0;
}

void gw_climit_release(const struct sockaddr *peer)
{
	uint32_t idx[CLIMIT_ROWS];

	if (slots_of(peer, idx) < 0)
		return;
	for (int r = 0; r < CLIMIT_ROWS; r++)
		atomic_fetch_sub_explicit(&counts[r][idx[r]], 1, memory_order_relaxed);
}

uint64_t gw_climit_count(const struct sockaddr *peer)
{
	uint32_t idx[CLIMIT_ROWS];
	uint64_t least = UINT64_MAX;

	if (slots_of(peer, idx) < 0)
		return 0;
	for (int r = 0; r < CLIMIT_ROWS; r++) {
		uint64_t n = atomic_load_explicit(&counts[r][idx[r]], memory_order_relaxed);
		if (n < least)
			least = n;
	}
	return least;
}
