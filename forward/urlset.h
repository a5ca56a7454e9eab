/*
 * forward/urlset: an immutable set of URL prefixes loaded from a
 * squidGuard/UT1 `urls` file (one "host/path" per line).
 *
 * An entry "host/path" matches a request whose host is host or a subdomain
 * of it (as squidGuard does) and whose path (with the query) starts with
 * path at a segment boundary: "example.com/ads" matches /ads, /ads/x and
 * /ads?x, not /adsense; "example.com/ads/" matches /ads/ and below; an entry
 * without a path ("example.com" or "example.com/") matches the whole host.
 * The port is ignored on both sides.  Paths compare case-insensitively
 * (squidGuard lower-cases the whole URL).
 *
 * Entries are normalised as request URLs are (fwd_url_normalise on
 * "http://" + the line: %XX of unreserved characters decoded, dot-segments
 * resolved, "//" merged), so both sides read the same.  A leading
 * "http://" or "https://" is accepted.  '#' comments, blank lines and CRLF
 * as in domain lists.  A line that is no host/path (bad host, spaces) is
 * skipped and counted; the first FWD_URLSET_NOTES line numbers are kept.
 *
 * Threads: built on one thread, then read-only; fwd_urlset_match() may run
 * on any number of threads and never allocates.
 */
#ifndef GW_FORWARD_URLSET_H
#define GW_FORWARD_URLSET_H

#include <stddef.h>

struct fwd_urlset;

#define FWD_URLSET_NOTES 10

/* Load path.  NULL with a message in err when it cannot be read or memory
 * runs out; invalid lines are not errors. */
struct fwd_urlset *fwd_urlset_load(const char *path, char *err, size_t errlen);
/* Same over buf[0..len) (copied). */
struct fwd_urlset *fwd_urlset_from_buffer(const char *buf, size_t len, char *err, size_t errlen);

/*
 * 1 if the normalised URL url[0..len) (fwd_url_normalise output:
 * "http://host[:port]/path?query") is under an entry; *matched_entry (if
 * non-NULL) then points at the entry text ("host/path", inside the set).
 * 0 otherwise, and for a NULL set or URL.  An IP host matches only an equal
 * IP entry.
 */
int fwd_urlset_match(const struct fwd_urlset *set, const char *url, size_t len,
    const char **matched_entry);

size_t fwd_urlset_count(const struct fwd_urlset *set);
/* Skipped lines; the k-th (k < FWD_URLSET_NOTES) line number, 0 past the end. */
size_t fwd_urlset_invalid(const struct fwd_urlset *set);
size_t fwd_urlset_invalid_line(const struct fwd_urlset *set, size_t k);

void fwd_urlset_free(struct fwd_urlset *set);

#endif
