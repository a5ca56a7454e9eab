/*
 * forward/dlp: sensitive-data detection (DLP) for request bodies and query
 * strings on the forward side.  Pure and streaming: no I/O, no logging, no
 * knowledge of connections.  The core hands body bytes to a per-request
 * scanner as they arrive; the scanner says "hit" as soon as one detector
 * matches and keeps only a small, bounded amount of state between calls.
 *
 * Detectors:
 *   credit_card  13-19 digits, optionally grouped with single spaces or
 *                dashes, Luhn-valid, with a known brand prefix (IIN) and a
 *                length valid for that brand (see dlp.c for the table).
 *                The number must start and end at a group boundary of a run
 *                of digit groups, and must not touch a letter or digit, or a
 *                '.' that continues a decimal number (0.4111111111111111).
 *   iban         2-letter country + 2 check digits + BBAN, total length
 *                exactly the registry length for that country, optional
 *                single spaces every 4 characters, mod-97 == 1,
 *                case-insensitive, not touching letters or digits.
 *   us_ssn       AAA-GG-SSSS or AAA GG SSSS (separator required and the
 *                same twice; plain 9-digit runs are NOT reported), area not
 *                000/666/900-999, group not 00, serial not 0000, not part
 *                of a longer run of separated digit groups.
 *   patterns     operator PCRE2 regexes (JIT), matched over the (decoded)
 *                stream with hard partial matching across feeds.
 *
 * Chunking guarantee: built-in detectors give the same answer however the
 * input is split.  Custom patterns give the same answer for every match
 * whose match attempt inspects at most FWD_DLP_MAX_PATTERN_SPAN bytes
 * (bounded patterns such as "AKIA[0-9A-Z]{16}" or "(?i)\bbluebird\b"); an
 * attempt of an unbounded pattern that runs longer than that is abandoned,
 * so such a match may be missed.  Lookbehinds may look back at most
 * FWD_DLP_MAX_LOOKBEHIND bytes (longer ones are refused at compile time).
 * A match attempt that exceeds PCRE2's match limit (10^6) counts as no
 * match.  \G is not meaningful (attempts restart at arbitrary offsets).
 *
 * This engine decodes nothing but form encoding (mode FORM): the views
 * of a request that also see base64 runs and compressed bodies are built
 * on it in forward/dlp_body.h.  Not decoded anywhere: JSON \u escapes,
 * quoted-printable.  Raw mode sees '+' and %XX as they are.
 *
 * Ownership and threads: a struct fwd_dlp is immutable after compile and may
 * be shared by all worker threads; it must outlive every scanner made from
 * it.  A struct fwd_dlp_scan belongs to one request on one thread.
 */
#ifndef GW_FORWARD_DLP_H
#define GW_FORWARD_DLP_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

/* Longest custom-pattern match attempt that is guaranteed to be found
 * across feed() boundaries. */
#define FWD_DLP_MAX_PATTERN_SPAN 256
/* Longest lookbehind a custom pattern may use. */
#define FWD_DLP_MAX_LOOKBEHIND 64

struct fwd_dlp;
struct fwd_dlp_scan;

enum fwd_dlp_mode {
	FWD_DLP_RAW = 0,              /* text bodies, multipart parts: bytes as they are */
	FWD_DLP_FORM_URLENCODED = 1,  /* '+' and %XX decoded before detection */
};

enum fwd_dlp_kind {
	FWD_DLP_CREDIT_CARD,
	FWD_DLP_IBAN,
	FWD_DLP_US_SSN,
	FWD_DLP_PATTERN,
};

struct fwd_dlp_hit {
	enum fwd_dlp_kind kind;
	/* "credit_card", "iban", "us_ssn", or the custom pattern's name.  Points
	 * into static storage or into the struct fwd_dlp (valid while it lives). */
	const char *detector;
	/* Printable ASCII, NUL-terminated, never the full secret:
	 * card "****-****-****-1111", IBAN "DE****************3000",
	 * SSN "***-**-6789", pattern "bl***(8)" (first 2 chars and the length;
	 * 1 char for matches of 3-5 bytes, none below; non-printable, '"' and
	 * '\\' shown as '?'). */
	char redacted[48];
	/* Offset of the match in the scanned stream (after URL-decoding in form
	 * mode; for IBAN and cards with separators, of the first character). */
	uint64_t offset;
};

/*
 * Compile cf (detectors by name, custom patterns) into an immutable engine.
 * An unknown detector name, a regex that does not compile (PCRE2 message and
 * offset), a pattern that can match the empty string or whose lookbehind is
 * too long is reported through conf_err() with the setting's file and line;
 * the function keeps going to report every error, then returns NULL.
 * An empty detectors list enables no built-in detector.  The result does
 * not point into cf.  Returns NULL on error or out of memory.
 */
struct fwd_dlp *fwd_dlp_compile(const struct conf_fwd_dlp *cf, struct conf_errors *errs);

/* Free an engine (NULL is fine).  No scanner made from it may be alive. */
void fwd_dlp_free(struct fwd_dlp *dlp);

/* 1 if the engine has at least one detector or pattern (0: scanning is a no-op). */
int fwd_dlp_active(const struct fwd_dlp *dlp);

/*
 * Start scanning one stream.  Memory: a few KiB, fixed, whatever the body
 * size.  Returns NULL on out of memory.  The scanner borrows dlp.
 */
struct fwd_dlp_scan *fwd_dlp_scan_new(const struct fwd_dlp *dlp, enum fwd_dlp_mode mode);

/*
 * Scan the next len bytes of the stream (data need not stay valid after the
 * call).  Returns 1 as soon as a detector hits (the scanner then ignores
 * further input and keeps returning 1), 0 otherwise.
 */
int fwd_dlp_scan_feed(struct fwd_dlp_scan *sc, const char *data, size_t len);

/*
 * End of stream: resolves matches that needed to see what follows them
 * (a number at the very end, a pending %X, patterns ending in \b or $).
 * Returns 1 if there is a hit (now or earlier), 0 otherwise.  Idempotent;
 * feeding after finish is a no-op.
 */
int fwd_dlp_scan_finish(struct fwd_dlp_scan *sc);

/* The hit, or NULL if none yet.  Valid until fwd_dlp_scan_free(). */
const struct fwd_dlp_hit *fwd_dlp_scan_hit(const struct fwd_dlp_scan *sc);

/* Number of (decoded) bytes scanned so far. */
uint64_t fwd_dlp_scan_bytes(const struct fwd_dlp_scan *sc);

/* Start over on a new stream (same engine and mode), keeping the
 * scanner's memory: as fwd_dlp_scan_new() without the allocations. */
void fwd_dlp_scan_reset(struct fwd_dlp_scan *sc);

/* Make dst (same engine, any mode) continue from src's state as if it had
 * been fed src's bytes: for a view that reads like src until some byte
 * shows up.  src must not be inside a %XX (mode FORM). */
void fwd_dlp_scan_copy(struct fwd_dlp_scan *dst, const struct fwd_dlp_scan *src);

/* Free a scanner (NULL is fine). */
void fwd_dlp_scan_free(struct fwd_dlp_scan *sc);

/*
 * One-shot scan of a complete buffer (query strings, the admin tester):
 * form != 0 means application/x-www-form-urlencoded decoding.  Same result
 * as new + feed + finish.  Returns 1 and fills *out (if not NULL) on a hit,
 * 0 on no hit, -1 on out of memory.
 */
int fwd_dlp_scan_buffer(const struct fwd_dlp *dlp, const char *data, size_t len, int form,
    struct fwd_dlp_hit *out);

#endif
