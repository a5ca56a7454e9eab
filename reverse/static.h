/*
 * reverse/static: the decisions behind serving a file from a static route.
 *
 * rev_static_open() resolves a request path under a root directory safely and
 * opens the file; the other functions are pure: they compute the ETag, the
 * Last-Modified date, the outcome of conditional headers and of a Range
 * header.  The engine does the I/O (reading or sendfile from the fd).
 *
 * Path resolution (rev_static_open):
 *   - only the path part is used (stops at '?' or '#'); it is percent-decoded
 *     exactly once ("%252e" stays the literal name "%2e");
 *   - 400 for: a bad escape ("%zz", "%2"), a NUL (literal or "%00"), an encoded
 *     slash "%2f" (refused rather than guessed at), a ".." segment (literal or
 *     encoded, even one that would stay inside the root), a path not starting
 *     with '/', or a decoded path longer than PATH_MAX;
 *   - "." and empty segments are skipped ("/a/./b//c" = "/a/b/c");
 *   - a segment starting with '.' (decoded) is 404 unless REV_STATIC_DOTFILES
 *     (route key dotfiles = true); "/.well-known/..." is always allowed;
 *   - opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) below the
 *     root: symlinks inside the root work, symlinks leading outside fail (404).
 *     Where openat2 is missing (Linux < 5.6, or refused by a seccomp filter),
 *     every component is opened with O_NOFOLLOW: then no symlink is followed;
 *   - a directory: if the request path does not end in '/', 301 (redirect to
 *     path + "/"); otherwise its "index.html" is served (resolved the same way);
 *     no directory listings (404 without index.html);
 *   - only regular files are served (a FIFO, socket or device: 404).
 *
 * Root semantics are nginx "root": the request path is appended to the root.
 * For nginx "alias" semantics the engine passes the path produced by
 * rev_route_upstream_path() for a route with strip_prefix.
 *
 * Header values are (pointer, length) pairs; pointer NULL means "header
 * absent".  A header that occurs several times must be joined with ", " by the
 * caller (all the list-valued ones here allow it).
 */
#ifndef GW_REV_STATIC_H
#define GW_REV_STATIC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/httpdate.h"

/* Outcomes of rev_static_open, as the HTTP status the engine should answer. */
enum rev_static_status {
	REV_STATIC_OK = 200,          /* out is filled; fd open, caller closes it */
	REV_STATIC_REDIRECT = 301,    /* a directory requested without trailing '/' */
	REV_STATIC_BAD = 400,         /* malformed or forbidden path (traversal, %00, %2f) */
	REV_STATIC_FORBIDDEN = 403,   /* permission denied by the file system */
	REV_STATIC_NOT_FOUND = 404,   /* missing, outside the root, not a regular file */
	REV_STATIC_ERROR = 500        /* anything else (EMFILE, EIO, ...) */
};

struct rev_static_file {
	int fd;                       /* O_RDONLY|O_CLOEXEC|O_NONBLOCK; owned by the caller */
	uint64_t size;
	struct timespec mtime;
	const char *content_type;     /* static string, e.g. "text/html; charset=utf-8" */
};

/*
 * Resolve urlpath (origin-form path, may carry "?query"; need not be
 * NUL-terminated) under the directory root and open it.  Returns one of enum
 * rev_static_status; out is filled (and out->fd must be closed by the caller)
 * only for REV_STATIC_OK, otherwise out->fd is -1.
 */
int rev_static_open(const char *root, const char *urlpath, size_t len, struct rev_static_file *out);

/* Same with the root already open (O_PATH or O_RDONLY directory fd; not
 * consumed).  Lets the engine keep one root fd per static route. */
int rev_static_openat(int rootfd, const char *urlpath, size_t len, struct rev_static_file *out);

/* Serve path segments starting with '.' (".git/config", ".env", "%2ehtpasswd").
 * Without it such a path is REV_STATIC_NOT_FOUND, except a first segment
 * ".well-known" (RFC 8615: public by definition). */
#define REV_STATIC_DOTFILES 0x1u

/* rev_static_open / rev_static_openat with REV_STATIC_* options.  The plain
 * ones pass 0: dotfiles are not served. */
int rev_static_open_opt(const char *root, const char *urlpath, size_t len, unsigned opts,
    struct rev_static_file *out);
int rev_static_openat_opt(int rootfd, const char *urlpath, size_t len, unsigned opts,
    struct rev_static_file *out);

/* For tests: 0 forces the O_NOFOLLOW walk even where openat2 exists; 1
 * (default) uses openat2 when the kernel has it.  Process-wide. */
void rev_static_use_openat2(int on);

/* Content type for a file name by its extension (case-insensitive); text
 * types carry "; charset=utf-8"; unknown: "application/octet-stream". */
const char *rev_static_mime(const char *name, size_t len);

/*
 * Strong ETag from size and mtime: "\"<hex mtime ns>-<hex size>\"" (quotes
 * included).  Writes a NUL-terminated string into buf (REV_STATIC_ETAG_MAX
 * bytes are always enough) and returns its length, or 0 if bufsz is too small.
 */
#define REV_STATIC_ETAG_MAX 48
size_t rev_static_etag(const struct rev_static_file *f, char *buf, size_t bufsz);

/* The HTTP-date helpers under their old names, for the callers that still
 * use them: core/httpdate.h is the one implementation (new code includes it). */
#define REV_HTTP_DATE_MAX GW_HTTPDATE_MAX
static inline size_t rev_http_date(time_t t, char *buf) { return gw_httpdate_fmt(t, buf); }
static inline int rev_http_date_parse(const char *s, size_t len, time_t *out)
{
	return gw_httpdate_parse(s, len, out);
}

/* The request headers that matter for a static response. */
struct rev_static_req {
	int is_get;                   /* GET (ranges apply only to GET) */
	int is_head;                  /* HEAD */
	const char *if_match;          size_t if_match_len;
	const char *if_none_match;     size_t if_none_match_len;
	const char *if_modified_since; size_t if_modified_since_len;
	const char *if_unmodified_since; size_t if_unmodified_since_len;
	const char *if_range;          size_t if_range_len;
	const char *range;             size_t range_len;
};

/*
 * Evaluate the preconditions of RFC 9110 section 13.2.2 in its order:
 * If-Match (strong comparison; "*" matches) else If-Unmodified-Since -> 412;
 * If-None-Match (weak comparison) -> 304 for GET/HEAD, 412 otherwise, else
 * (only when If-None-Match is absent) If-Modified-Since for GET/HEAD -> 304.
 * Dates that do not parse are ignored; dates compare at 1 s resolution.
 * etag is our current ETag as from rev_static_etag(); mtime is the file's
 * modification time in seconds (struct rev_static_file mtime.tv_sec, the
 * value sent as Last-Modified via rev_http_date()).  Returns 200 (go on),
 * 304 or 412.  Pure.
 */
int rev_static_conditional(const struct rev_static_req *rq, const char *etag, size_t etag_len,
    time_t mtime);

struct rev_static_range {
	uint64_t first, last;         /* 206: inclusive byte offsets */
	uint64_t length;              /* 206: last - first + 1; 200: size */
};

/*
 * Decide what to send for a GET of a size-byte representation (call after
 * rev_static_conditional said 200).  Returns:
 *   200  the whole representation (out->first = 0, out->length = size): no
 *        Range, not GET, an invalid Range or a unit other than "bytes", more
 *        than one range (we do not produce multipart/byteranges), an empty
 *        representation, or If-Range that does not match (an ETag If-Range
 *        uses strong comparison; a date If-Range must equal Last-Modified);
 *   206  one range: out->first..out->last; send
 *        "Content-Range: bytes first-last/size";
 *   416  not satisfiable: send "Content-Range: bytes * /size" (no space).
 * Accepted forms: "bytes=first-last", "bytes=first-", "bytes=-suffix";
 * last beyond the end is clamped; a suffix longer than the file means all.
 */
int rev_static_range(const struct rev_static_req *rq, uint64_t size, const char *etag, size_t etag_len,
    time_t mtime, struct rev_static_range *out);

/* Content-Range value for a 206 ("bytes 0-99/1000") or, with r NULL, for a
 * 416 ("bytes * /1000" without the space).  Returns the length, 0 if bufsz is
 * too small (64 bytes is always enough). */
size_t rev_static_content_range(const struct rev_static_range *r, uint64_t size, char *buf, size_t bufsz);

#endif
