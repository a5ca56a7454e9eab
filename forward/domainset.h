/*
 * forward/domainset: an immutable set of domains loaded from a squidGuard/UT1
 * style list (one domain per line).  A domain entry matches that domain and
 * every subdomain of it; an IP-address entry (IPv4 or IPv6) matches only that
 * literal IP host.
 *
 * List format (operator-supplied, possibly millions of lines):
 *   - one entry per line; LF or CRLF line ends; leading/trailing blanks ignored;
 *   - '#' starts a comment (whole line or after the entry); blank lines ignored;
 *   - entries are case-insensitive (stored lower-cased); a trailing '.' is
 *     dropped; a leading "*." or "." means the bare domain (which already
 *     matches its subdomains);
 *   - a domain is labels of [a-z0-9_-] (1..63 bytes each, at most 253 bytes
 *     in total); an IPv4 or IPv6 address (optionally "[v6]") is an IP entry;
 *   - anything else is an invalid line: it is skipped and counted (see
 *     fwd_domainset_invalid()), never fatal.
 *
 * Structure: one open-addressing table of 64-bit slots (32-bit hash tag +
 * 31-bit offset + IP flag) over one string pool holding the normalised,
 * NUL-terminated entries.  The hash is computed right-to-left, so hashing a
 * host yields the hash of every parent suffix at each '.' boundary in a single
 * pass; a lookup is then one probe per label, verified against the pool.
 *
 * Threads: build on one thread (the main thread); afterwards the set is
 * read-only and fwd_domainset_match() may be called from any number of threads
 * without locking.  No function here allocates after the set is built.
 */
#ifndef GW_FORWARD_DOMAINSET_H
#define GW_FORWARD_DOMAINSET_H

#include <stddef.h>

struct fwd_domainset;

/*
 * Load the list file at path.  Returns a new set owned by the caller (free
 * with fwd_domainset_free), or NULL with a message in err (if err is non-NULL
 * and errlen > 0) when the file cannot be opened/read or memory runs out.
 * Invalid lines are not errors.
 */
struct fwd_domainset *fwd_domainset_load(const char *path, char *err, size_t errlen);

/*
 * Same as fwd_domainset_load() over an in-memory list of len bytes (need not
 * be NUL-terminated; the buffer is copied, the caller keeps it).
 */
struct fwd_domainset *fwd_domainset_from_buffer(const char *buf, size_t len, char *err,
    size_t errlen);

/*
 * 1 if host (len bytes, case-insensitive, may end with one '.', an IPv6
 * literal may be bracketed) is in the set: equal to an entry or a subdomain of
 * a domain entry.  An IP host matches only an equal IP entry.  On a match and
 * when matched_entry is non-NULL, *matched_entry points at the entry (as
 * normalised: lower-case, no "*.") inside the set, valid until the set is
 * freed; when several entries match, the longest (most specific) is reported.
 * Returns 0 otherwise (including for a NULL set).  Never allocates.
 */
int fwd_domainset_match(const struct fwd_domainset *set, const char *host, size_t len,
    const char **matched_entry);

/* Number of distinct entries (duplicates are stored once). */
size_t fwd_domainset_count(const struct fwd_domainset *set);

/*
 * Number of invalid (skipped) lines; *first_line (if non-NULL) receives the
 * 1-based line number of the first one, 0 if none.
 */
size_t fwd_domainset_invalid(const struct fwd_domainset *set, size_t *first_line);
/* The line number of the k-th invalid line, k < FWD_DOMAINSET_NOTES; 0 past the end. */
#define FWD_DOMAINSET_NOTES 10
size_t fwd_domainset_invalid_line(const struct fwd_domainset *set, size_t k);

/* Bytes of heap held by the set (pool + table), for stats. */
size_t fwd_domainset_memory(const struct fwd_domainset *set);

/* Free the set (NULL is fine).  No thread may still be using it. */
void fwd_domainset_free(struct fwd_domainset *set);

#endif
