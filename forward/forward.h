/*
 * forward: the forward-proxy family (outbound side).  Plugs into the core
 * as a struct gw_side: compiles forward.* of each config snapshot (policy,
 * users, DLP engine, PAC file) and decides each request (who may go where,
 * with what data) in on_request() / on_body().
 */
#ifndef GW_FORWARD_H
#define GW_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/snapshot.h"

extern const struct gw_side fwd_side;

struct fwd_policy;
/* The compiled policy inside a snapshot's forward side data (side_data[0]),
 * for the console's policy tester; NULL when side_data is NULL.  Borrowed:
 * valid while the snapshot lives. */
const struct fwd_policy *fwd_side_policy(const void *side_data);

struct fwd_icap;
/* The ICAP services of the same side data (NULL without forward.icap;
 * forward/icap.h), for the console and /metrics.  Borrowed. */
const struct fwd_icap *fwd_side_icap(const void *side_data);

struct fwd_auth_backoff;
/* The Basic sign-in backoff of the same side data (NULL without
 * forward.auth): the cluster shares it (forward/auth.h).  Borrowed. */
struct fwd_auth_backoff *fwd_side_backoff(const void *side_data);

struct fwd_decider;
struct fwd_auth_db;
/* For the console's policy tester, from the same side data (NULL when
 * side_data is NULL or not forward's): what fwd_decide() (forward/decide.h)
 * reads, and the users and groups loaded from forward.auth (NULL without
 * it; forward/auth.h).  Borrowed, immutable: valid while the snapshot lives. */
const struct fwd_decider *fwd_side_decider(const void *side_data);
const struct fwd_auth_db *fwd_side_auth_db(const void *side_data);
/* The directory of forward.auth.ldap (forward/directory.h; NULL without
 * it): the console reads its groups cache.  Borrowed like the db. */
struct fwd_directory;
struct fwd_directory *fwd_side_directory(const void *side_data);

/*
 * Hits of rule rule_index (0-based, as fwd_policy_rule_name()) summed over
 * the workers; rule_index == fwd_policy_nrules() counts requests that no
 * rule matched (default deny).  Any thread; relaxed reads, so a value may
 * lag by a few increments.  0 for a NULL side_data or an index out of range.
 */
size_t fwd_rule_hits(const void *side_data, size_t rule_index);

/* Forward-side event counters of one snapshot (same reading rules). */
#define FWD_COUNTERS(X) \
	X(BLOCKS, "blocks")              /* 403 block pages sent */ \
	X(AUTH_OK, "auth_ok")            /* passwords verified on the pool */ \
	X(AUTH_CACHED, "auth_cached")    /* credentials found in the cache */ \
	X(AUTH_FAIL, "auth_fail")        /* wrong user or password */ \
	X(AUTH_BACKOFF, "auth_backoff")  /* credentials refused unchecked (backoff, or too many checks in flight) */ \
	X(AUTH_REQUIRED, "auth_required") /* 407 sent */ \
	X(DLP_SCANNED, "dlp_scanned")    /* request bodies scanned */ \
	X(DLP_HITS, "dlp_hits")          /* detector matches (query or body) */ \
	X(DLP_OVERSIZE, "dlp_oversize")  /* bodies over max_scan_bytes */ \
	X(DLP_BUSY, "dlp_busy")          /* uploads refused with 503: max_scan_memory spent */ \
	X(PAC_SERVED, "pac_served")      /* /proxy.pac and /wpad.dat answers */ \
	X(CA_SERVED, "ca_served")        /* /gatehouse-ca.crt answers */

enum fwd_counter {
#define X(id, s) FWD_C_##id,
	FWD_COUNTERS(X)
#undef X
	FWD_C_COUNT
};


/* Bytes of request bodies held for DLP scanning now, over all workers
 * (bounded by forward.dlp.max_scan_memory).  Any thread; relaxed read. */
uint64_t fwd_dlp_scan_memory(void);

uint64_t fwd_side_counter(const void *side_data, enum fwd_counter c);
const char *fwd_counter_name(enum fwd_counter c);

/* What the console shows of TLS inspection in side_data (NULL: none):
 * the CA (forward/inspect_ca.h) and the inspection state
 * (forward/inspect.h: counters, cache). */
struct fwd_ca;
struct fwd_inspect;
const struct fwd_ca *fwd_side_ca(const void *side_data);
const struct fwd_inspect *fwd_side_inspect(const void *side_data);

/* Whether forward.inspect may generate its CA when both of its files are
 * missing: core/main.c turns it on for a start (and so for reloads), off
 * for -t (which must not write).  Off by default. */
void fwd_inspect_allow_ca_creation(int on);

#endif
