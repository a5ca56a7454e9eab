/*
 * forward/dlp_body: what DLP reads in a request, built on the detectors of
 * forward/dlp.h.  Pure: no I/O, no logging, no knowledge of connections.
 *
 * A secret can leave in more than one spelling, so every stream (the URL,
 * each header value, the body) is scanned in three views at once:
 *   raw      the bytes as they are;
 *   percent  '+' and %XX decoded (form encoding), whatever the Content-Type
 *            says: a form sent as text/plain is read by the origin all the
 *            same;
 *   base64   runs of base64 text (standard or URL-safe alphabet, %2B %2F
 *            %3D taken for + / =, MIME line breaks inside a run allowed)
 *            decoded; a run shorter than FWD_B64_MIN_RUN characters is not
 *            (ordinary words would only add noise).  A run is decoded from
 *            its first character, so the text is decoded twice: once with
 *            '+' and '/' in the alphabet, once with them as separators
 *            (URL-safe base64 after a path "/x/", form text where '+' is a
 *            space).  Base64 glued to other alphanumerics ("id" + base64
 *            with no separator) is decoded out of step and missed.
 * Each view costs one linear pass over the stream (base64 produces at
 * most 3/4 of its input), so a stream costs at most about four scans.
 *
 * Bodies: Content-Encoding gzip, x-gzip and deflate (zlib or raw deflate)
 * are inflated with zlib, streaming, before the views, and the raw body is
 * scanned too.  The decoded size is capped (the caller gives max_scan_bytes):
 * past the cap, a body that does not decode, a truncated one, or any other
 * coding (br, zstd, compress, stacked codings) is "not fully scanned", and
 * the caller treats it as an oversize body.
 *
 * Ownership and threads: as forward/dlp.h: a views object belongs to one
 * request on one thread and borrows the engine.
 */
#ifndef GW_FORWARD_DLP_BODY_H
#define GW_FORWARD_DLP_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "forward/dlp.h"

/* Shortest base64 run that is decoded (12 characters: 9 bytes). */
#define FWD_B64_MIN_RUN 12

/* Streaming base64-run decoder (see above).  Plain data, no allocation. */
struct fwd_b64 {
	uint32_t acc;              /* bits of the current quantum */
	unsigned nacc;             /* 6-bit groups in acc (0..3) */
	uint64_t run;              /* alphabet characters in the current run */
	unsigned pct;              /* 0, or 1/2 after '%' and one hex digit */
	unsigned pct_c;
	uint8_t pend[FWD_B64_MIN_RUN];   /* decoded bytes held until the run is long enough */
	unsigned npend;
	int url_only;              /* '+' and '/' end a run */
};

/* url_only: only the URL-safe alphabet ('-', '_'); '+' and '/' separate runs. */
void fwd_b64_init(struct fwd_b64 *b, int url_only);

/*
 * Decode in[0..n) into out (cap >= 32 bytes).  Returns the bytes written;
 * *used is the input consumed (less than n when out is full: call again).
 * The decoded bytes of each run end with one '\n' so that runs never join.
 */
size_t fwd_b64_decode(struct fwd_b64 *b, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
    size_t *used);

/* End of stream: the last run's remaining bytes into out (cap >= 32); returns how many. */
size_t fwd_b64_end(struct fwd_b64 *b, uint8_t *out, size_t cap);

/* Content-Encoding of a body, as far as DLP can read it. */
enum fwd_coding {
	FWD_CODING_IDENTITY,       /* none, or only "identity" */
	FWD_CODING_GZIP,           /* gzip, x-gzip */
	FWD_CODING_DEFLATE,        /* deflate (zlib stream, or raw deflate as some clients send) */
	FWD_CODING_OTHER,          /* anything else, or more than one coding */
};

/* The coding named by a Content-Encoding value (NULL: none). */
enum fwd_coding fwd_dlp_coding(const char *value, size_t len);

/* How an inflate ended. */
enum fwd_inflate_rc {
	FWD_INFLATE_END,           /* the whole stream decoded (and no bytes after it) */
	FWD_INFLATE_SHORT,         /* the input ended inside the stream */
	FWD_INFLATE_CAP,           /* more than cap decoded bytes */
	FWD_INFLATE_BAD,           /* not a valid stream, or bytes after its end */
	FWD_INFLATE_STOP,          /* emit() asked to stop */
	FWD_INFLATE_NOMEM,
};

/*
 * Inflate in[0..n) (coding GZIP or DEFLATE; concatenated gzip members are
 * one stream) and hand the decoded bytes to emit() in pieces of at most
 * 16 KiB; emit returns nonzero to stop.  At most cap decoded bytes are
 * handed over (the piece that crosses the cap is cut and CAP returned).
 * Memory: zlib's state (about 45 KiB) for the call's duration.
 * *out_len (if not NULL) gets the decoded bytes handed over.
 */
enum fwd_inflate_rc fwd_dlp_inflate(enum fwd_coding coding, const uint8_t *in, size_t n, uint64_t cap,
    int (*emit)(void *arg, const uint8_t *p, size_t len), void *arg, uint64_t *out_len);

/* The three views of one stream. */
struct fwd_dlp_views;

/* A views object on dlp (it must outlive it).  NULL on out of memory. */
struct fwd_dlp_views *fwd_dlp_views_new(const struct fwd_dlp *dlp);

/* Start a new stream (the previous one's state and hit are dropped). */
void fwd_dlp_views_reset(struct fwd_dlp_views *v);

/* The next bytes of the stream: 1 as soon as a view hits, else 0. */
int fwd_dlp_views_feed(struct fwd_dlp_views *v, const char *data, size_t len);

/* End of stream: 1 if a view hit (now or before), else 0. */
int fwd_dlp_views_finish(struct fwd_dlp_views *v);

/* The hit (NULL if none) and, in *view, which view saw it: "" (raw),
 * "percent-decoded" or "base64-decoded" (static strings). */
const struct fwd_dlp_hit *fwd_dlp_views_hit(const struct fwd_dlp_views *v, const char **view);

void fwd_dlp_views_free(struct fwd_dlp_views *v);

/* One-shot: a whole buffer through fresh views.  1 and *hit, *view filled
 * on a hit; 0 none; -1 out of memory. */
int fwd_dlp_views_buffer(struct fwd_dlp_views *v, const char *data, size_t len,
    struct fwd_dlp_hit *hit, const char **view);

/* What scanning a body found. */
enum fwd_dlp_body_rc {
	FWD_DLP_BODY_CLEAN,        /* all of it scanned, nothing found */
	FWD_DLP_BODY_HIT,          /* *hit, *view filled */
	FWD_DLP_BODY_PARTIAL,      /* nothing found in what could be scanned; *why says what was not */
	FWD_DLP_BODY_NOMEM,
};

/*
 * Scan a request body: data[0..len) is the body (complete = 1) or its
 * first bytes (complete = 0: the rest was not read), coding its
 * Content-Encoding.  At most max bytes of the body, and at most max
 * decoded bytes, are scanned.  *why (PARTIAL) is a static string:
 * "larger than max_scan_bytes", "decoded larger than max_scan_bytes",
 * "not valid gzip/deflate", "Content-Encoding not decoded".  *view as
 * fwd_dlp_views_hit(), prefixed "inflated" when the hit was in the
 * decoded content ("inflated, base64-decoded").
 */
enum fwd_dlp_body_rc fwd_dlp_scan_body(struct fwd_dlp_views *v, const char *data, size_t len, int complete,
    enum fwd_coding coding, uint64_t max, struct fwd_dlp_hit *hit, const char **view, const char **why);

#endif
