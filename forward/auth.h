/*
 * forward/auth: Basic proxy authentication for the forward side.
 *
 *   - the user database: an htpasswd-format users file ("user:crypt-hash",
 *     hashes verified by libcrypt: bcrypt $2y$/$2b$, sha512 $6$, yescrypt
 *     $y$, ...) and an optional groups file ("group: user1 user2"), loaded
 *     once per config snapshot and immutable afterwards;
 *   - the Basic credentials parser (pure);
 *   - the verified-credentials cache: key = SHA-256(per-cache random salt,
 *     user, NUL, password); the plain password is never kept.  Shared by
 *     all workers under a mutex (a lookup is one hash and a few compares);
 *   - per-client-address backoff after repeated failures;
 *   - the verification pool: crypt_r() runs off the worker loops, on the
 *     process's job pool (core/jobs.h).
 *
 * Ownership: every object here belongs to the forward side data of one
 * config snapshot and is freed with it.  Times are passed in (seconds,
 * CLOCK_MONOTONIC or anything monotonic) so the pure parts are testable.
 */
#ifndef GW_FORWARD_AUTH_H
#define GW_FORWARD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/jobs.h"

#define FWD_AUTH_USER_MAX 128     /* longest user name accepted */
#define FWD_AUTH_PASS_MAX 256     /* longest password accepted */

/* ---- user database ---- */

struct fwd_auth_db;

/*
 * Parse a users file (users[0..ulen)) and an optional groups file
 * (groups may be NULL).  Lines: '#' comments and blank lines ignored, CRLF
 * accepted.  Users: "name:hash" (name 1..FWD_AUTH_USER_MAX bytes without
 * ':' or control characters; hash a crypt(3) setting libcrypt supports,
 * checked with crypt_checksalt(), or htpasswd's $apr1$ (Apache MD5) or
 * {SHA}); a bad line, an unsupported hash (plain text, DES) or a duplicate
 * user is skipped and counted, the first FWD_AUTH_SKIP_NOTES with a reason.
 * Groups: "group: user user ..." (blanks or commas between users); users
 * that are not in the users file are ignored.  Returns NULL with a message
 * in err only on out of memory.
 */
struct fwd_auth_db *fwd_auth_db_parse(const char *users, size_t ulen, const char *groups,
    size_t glen, char *err, size_t errlen);
/* Same from files (groups_path may be NULL); NULL with err if a file cannot be read. */
struct fwd_auth_db *fwd_auth_db_load(const char *users_path, const char *groups_path, char *err,
    size_t errlen);
void fwd_auth_db_free(struct fwd_auth_db *db);

size_t fwd_auth_db_nusers(const struct fwd_auth_db *db);
/* Skipped lines of the users (which = 0) or groups (1) file; *first_line
 * (if not NULL) gets the 1-based number of the first one (0 if none). */
size_t fwd_auth_db_skipped(const struct fwd_auth_db *db, int which, size_t *first_line);
/* The k-th skipped line (k < FWD_AUTH_SKIP_NOTES) of the users (0) or groups
 * (1) file: its reason (static text) and *line; NULL past the last one. */
#define FWD_AUTH_SKIP_NOTES 10
const char *fwd_auth_db_skip_note(const struct fwd_auth_db *db, int which, size_t k, size_t *line);
/* Index of user (exact, case-sensitive), or -1. */
long fwd_auth_db_find(const struct fwd_auth_db *db, const char *user);
/* The stored name, hash and groups of user index i (pointers into db). */
const char *fwd_auth_db_name(const struct fwd_auth_db *db, long i);
const char *fwd_auth_db_hash(const struct fwd_auth_db *db, long i);
const char *const *fwd_auth_db_groups(const struct fwd_auth_db *db, long i, size_t *n);
/* The hash to check unknown users against: a user's hash of the most common
 * method and cost in the file (so an unknown name costs what a known one
 * does; the result must be ignored), or NULL without users. */
const char *fwd_auth_db_dummy(const struct fwd_auth_db *db);

/* ---- Basic credentials ---- */

/*
 * Parse a Proxy-Authorization value "Basic <base64(user:pass)>" (scheme
 * case-insensitive).  Fills user and pass (NUL-terminated, at most
 * FWD_AUTH_USER_MAX / FWD_AUTH_PASS_MAX bytes).  Returns 0, or -1 when the
 * value is not Basic, not valid base64, has no ':', an empty user, a user
 * or password that is too long, or a NUL/control character in the user.
 */
int fwd_auth_parse_basic(const char *value, size_t len, char user[FWD_AUTH_USER_MAX + 1],
    char pass[FWD_AUTH_PASS_MAX + 1]);

/* ---- verified-credentials cache ---- */

struct fwd_auth_cache;

/* A cache of at most slots entries (rounded up to a power of two). */
struct fwd_auth_cache *fwd_auth_cache_new(size_t slots, double ttl);
void fwd_auth_cache_free(struct fwd_auth_cache *c);
/* 1 if (user, pass) was verified and put less than ttl seconds before now. */
int fwd_auth_cache_check(struct fwd_auth_cache *c, const char *user, const char *pass, double now);
/* Remember a verified (user, pass) at now. */
void fwd_auth_cache_put(struct fwd_auth_cache *c, const char *user, const char *pass, double now);
/* Forget every entry of user (e.g. after a failed attempt with another password). */
void fwd_auth_cache_forget(struct fwd_auth_cache *c, const char *user);

/* ---- per-client backoff and checks in flight ---- */

#define FWD_AUTH_FREE_FAILURES 3     /* failures allowed before backoff starts */
#define FWD_AUTH_MAX_DELAY 60.0      /* longest refusal, seconds */
#define FWD_AUTH_FORGET_AFTER 300.0  /* a client's failure count resets after this quiet time */
#define FWD_AUTH_FLY_PER 2           /* checks in flight per client address and per user name */

/*
 * Clients are keyed by address (IPv4, v4-mapped IPv6 as IPv4, other IPv6 by
 * its /64: one host usually owns a whole /64) through a keyed hash, so
 * nobody can aim addresses at a victim's slots.  A slot is only reused when
 * it holds nothing that refuses anyone (no backoff running, no count at or
 * over FWD_AUTH_FREE_FAILURES within FWD_AUTH_FORGET_AFTER, nothing in
 * flight): rotating source addresses cannot flush a record.  When no slot is
 * free for a new key, its checks are refused (BUSY) until one is.
 */
struct fwd_auth_backoff;

enum fwd_auth_gate {
	FWD_AUTH_GO,      /* check now: the attempt is charged; call fwd_auth_backoff_end() after */
	FWD_AUTH_WAIT,    /* the client is backing off: refuse unchecked for *wait seconds */
	FWD_AUTH_BUSY,    /* too many checks in flight for the client or user (or no slot): refuse unchecked */
};

struct fwd_auth_backoff *fwd_auth_backoff_new(size_t slots);
void fwd_auth_backoff_free(struct fwd_auth_backoff *b);
/*
 * Before checking credentials of user from client.  GO charges the attempt
 * as a failure at once (from the FWD_AUTH_FREE_FAILURES-th on the client is
 * refused for 2^(failures - FWD_AUTH_FREE_FAILURES) s, at most
 * FWD_AUTH_MAX_DELAY) and counts it in flight for the client and the user,
 * so concurrent guesses see it before any hash is checked.  WAIT and BUSY
 * charge nothing; *wait gets the seconds to wait (1 for BUSY).
 */
enum fwd_auth_gate fwd_auth_backoff_begin(struct fwd_auth_backoff *b, const struct sockaddr *client,
    const char *user, double now, double *wait);
/*
 * The check begun by a GO ended: ok refunds the charge (a success clears
 * the client's record); a failure stays charged.  Returns the seconds the
 * client is now refused (0 = none); *failures (if not NULL) gets its count.
 */
double fwd_auth_backoff_end(struct fwd_auth_backoff *b, const struct sockaddr *client, const char *user,
    int ok, double now, unsigned *failures);

/*
 * Sharing with the other nodes of an HA pair (cluster/cluster.c, main
 * thread, every 0.1 s).  fwd_auth_backoff_share() makes the table's key
 * the same on every node: an HMAC-SHA256 under secret (cluster.token_file's
 * line; "" without one) of a fixed label and ns (cluster.redis_prefix), so
 * a client's slot key, the 16 bytes below, is alike everywhere and is all
 * that leaves the process (never an address or a user name).  Call it
 * right after fwd_auth_backoff_new(), before the table is used.
 */
void fwd_auth_backoff_share(struct fwd_auth_backoff *b, const char *secret, const char *ns);
struct fwd_auth_bo_delta {
	uint8_t key[16];
	unsigned added;            /* failures charged here since the last collect */
	int reset;                 /* a success cleared a count others knew of: clear theirs (before added) */
};
/* Copy out up to max client records changed since the last call (only on
 * a shared table) and clear their changes.  Returns how many. */
size_t fwd_auth_backoff_collect(struct fwd_auth_backoff *b, struct fwd_auth_bo_delta *out, size_t max);
/*
 * The pair's count of key's failures is total (reset: a success elsewhere
 * cleared it): raise this node's record to it (plus what is not sent yet)
 * and start the refusal the local rule gives that count, from now.
 * Returns 1 when the record changed.
 */
int fwd_auth_backoff_remote(struct fwd_auth_backoff *b, const uint8_t key[16], unsigned total, int reset,
    double now);

/* ---- verification pool ---- */

/*
 * The verifications of one config snapshot: a port on the process's job
 * pool (core/jobs.h), or, where none is started (unit tests, tools), on a
 * pool of nthreads threads of its own.  It adds to the jobs what sign-ins
 * need: a bound on the verifications waiting, joining identical ones, and
 * skipping the ones nobody waits for.
 */
struct fwd_auth_pool;

/*
 * One verification.  The caller allocates the job (usually inside a bigger
 * struct of its own), fills hash (must stay valid until done runs; NULL =
 * unknown user: a dummy hash is computed so timing does not tell) and
 * pass, and submits it.  done(job, result) runs on a pool thread with
 * result 1 (password matches), 0 (it does not) or -1 (cancelled: the pool
 * is being freed or job->cancelled was set; the job was never verified).  done must not block; it
 * owns the job from then on (it hands the answer to the request's worker
 * with gw_req_wake()).  pass is still there in done (to cache the
 * verified credentials); done must wipe it (OPENSSL_cleanse).
 */
struct fwd_auth_job {
	struct gw_job gj;           /* private (the job pool) */
	const char *hash;
	char pass[FWD_AUTH_PASS_MAX + 1];
	void (*done)(struct fwd_auth_job *job, int result);
	/* set (any thread) when nobody waits for the answer any more: a queued
	 * job is then not verified and done gets -1 at once */
	_Atomic int cancelled;
	struct fwd_auth_job *dups;  /* private (pool): jobs that joined this one */
	struct fwd_auth_job *fnext; /* private (pool): queued or being verified */
	struct fwd_auth_pool *pool; /* private (pool) */
	int result;                 /* private (pool) */
};

/* A pool whose queue holds at most max_queue verifications (0 = 1024);
 * nthreads is used only without a process job pool.  NULL on failure. */
struct fwd_auth_pool *fwd_auth_pool_new(int nthreads, size_t max_queue);
/* Queue job: 0, or -1 when the queue is full (done is then not called). */
int fwd_auth_pool_submit(struct fwd_auth_pool *p, struct fwd_auth_job *job);
/*
 * If a job with the same hash (the same pointer, not NULL) and pass is
 * queued or being verified, attach job to it and return 1: job's done then
 * gets that job's result (parallel requests with the same credentials cost
 * one check and one charge).  0 = nothing to join (job untouched).
 */
int fwd_auth_pool_join(struct fwd_auth_pool *p, struct fwd_auth_job *job);
/* Stop: the jobs being verified finish, the queued ones get done(job, -1);
 * then everything is freed (and a pool's own threads joined).  NULL is fine. */
void fwd_auth_pool_free(struct fwd_auth_pool *p);

/* Verify pass against a crypt(3) hash; pure, may take tens of milliseconds. */
int fwd_auth_verify(const char *pass, const char *hash);

#endif
