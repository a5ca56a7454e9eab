/*
 * core/http1: the one strict HTTP/1.1 parser (RFC 9110 / RFC 9112) for request
 * heads, response heads and chunked bodies.
 *
 * It is pure: it never touches a socket, never allocates, and keeps no hidden
 * state beyond the structs the caller passes in.  Heads are parsed from one
 * contiguous buffer owned by the caller; every pointer in struct gw_http_head
 * points into that buffer and is valid as long as the buffer is.
 *
 * Strictness (each rejection has its own status and reason string):
 *   - line endings must be CRLF: a bare CR or a bare LF is rejected (400);
 *   - no whitespace before the colon, no obs-fold, no CTL/NUL in names or values,
 *     header names are tokens (400);
 *   - Content-Length: exactly one, all digits, no overflow; duplicates (even
 *     identical ones or "5, 5") rejected (400);
 *   - Transfer-Encoding: the only coding supported is "chunked"
 *     (case-insensitive, once; several TE fields are combined as a list):
 *     any other coding is 501 in a request and an error (502) in a response;
 *     TE together with CL is rejected (400; 502 in a response);
 *   - HTTP/0.9 (no version) rejected (400); versions other than 1.0/1.1: 505;
 *   - Host: more than one rejected (400); an HTTP/1.1 request without Host 400;
 *   - a Connection header (any of them) naming Content-Length or
 *     Transfer-Encoding (and, in a request, Host) is rejected (400; 502 in a
 *     response): forwarders drop the fields Connection names, and these must
 *     never be dropped while the body or the routing still depends on them
 *     (request smuggling / response splitting);
 *   - absolute-form with userinfo rejected (400);
 *   - limits: request line / target over max_uri_bytes -> 414, head over
 *     max_header_bytes or more than max_headers fields -> 431.
 *
 * Details of the implementation the callers rely on:
 *   - lim may be NULL and any limit may be 0: the defaults are 65536 head
 *     bytes, 100 fields, 8192 target bytes.  The field limit is
 *     min(max_headers, hdrs_cap); hdrs == NULL means no field is allowed.
 *   - struct gw_http_head is reset on every call (hdrs/hdrs_cap kept), so the
 *     caller need not zero it; fields are only meaningful when >0 is
 *     returned (err_status/err_reason when <0).
 *   - requests: empty lines (CRLF) before the request line are skipped
 *     (RFC 9112 section 2.2); they are part of the consumed count / head_len
 *     and of the head-size limit.  Responses get no such leniency.
 *   - a method is a token of at most 32 chars (longer: 501); a '#' in the
 *     target is 400; absolute-form scheme must be http/https and "//" must
 *     follow; origin-form must start with '/'.
 *   - host/host_len/port: the target's authority for absolute-form (port =
 *     explicit or 80/443) and authority-form (CONNECT; port required); for
 *     origin-form and asterisk-form they come from the Host field (port 0
 *     when it has none; host NULL when there is no Host, HTTP/1.0 only).
 *     path is NULL for authority-form and asterisk-form.  See
 *     GW_HF_PATH_EMPTY for absolute-form without a path.
 *   - the Host field must be a non-empty authority per
 *     gw_http1_parse_authority (so "Host:" with an empty value is 400).
 *   - Transfer-Encoding in an HTTP/1.0 message is rejected (RFC 9112 6.1).
 *     The combined TE list: empty elements are ignored, no element at all is
 *     400, "chunked" twice or not last is 400, a non-token element is 400,
 *     any other coding (also "chunked;param") is 501.  Responses: all 502,
 *     even for replies without a body (HEAD, 204, 304).
 *   - content_length is also filled when a response has CL but no body
 *     (HEAD, 304); it is 0 for requests without CL.
 *   - Expect flags are never set for HTTP/1.0 requests (RFC 9110 10.1.1); an
 *     empty Expect counts as "other".  Max-Forwards: 1..10 digits fitting in
 *     32 bits, else ignored; a second Max-Forwards field clears the flag.
 *   - numeric hosts that are not exactly a.b.c.d in decimal without leading
 *     zeros ("2130706433", "0x7f.1", "127.1", "0177.0.0.1") are refused with
 *     400 and core/addr's reason: parsers disagree on the address they mean.
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Methods we name; everything else that is a valid token is GW_M_OTHER. */
#define GW_METHODS(X) \
	X(GET, "GET") X(HEAD, "HEAD") X(POST, "POST") X(PUT, "PUT") \
	X(DELETE, "DELETE") X(CONNECT, "CONNECT") X(OPTIONS, "OPTIONS") \
	X(TRACE, "TRACE") X(PATCH, "PATCH")

enum gw_method {
#define X(id, s) GW_M_##id,
	GW_METHODS(X)
#undef X
	GW_M_OTHER
};

/* Request-target forms (RFC 9112 section 3.2). */
enum gw_target_form {
	GW_TF_ORIGIN,      /* /path?query */
	GW_TF_ABSOLUTE,    /* http://host[:port]/path?query */
	GW_TF_AUTHORITY,   /* host:port (CONNECT only) */
	GW_TF_ASTERISK     /* * (OPTIONS only) */
};

/* How the message body is delimited. */
enum gw_body_kind {
	GW_BODY_NONE,      /* no body at all */
	GW_BODY_LENGTH,    /* exactly content_length bytes (may be 0) */
	GW_BODY_CHUNKED,   /* chunked transfer coding */
	GW_BODY_CLOSE      /* response only: until the connection closes */
};

struct gw_hdr {
	const char *name;
	const char *value;     /* leading/trailing OWS already trimmed */
	uint32_t name_len;
	uint32_t value_len;
};

struct gw_http_limits {
	size_t max_header_bytes;   /* whole head including request/status line */
	size_t max_headers;        /* number of header fields */
	size_t max_uri_bytes;      /* request-target length */
};

/* Flags derived from the header fields while parsing. */
#define GW_HF_CONN_CLOSE      0x0001u  /* Connection: close */
#define GW_HF_CONN_KEEPALIVE  0x0002u  /* Connection: keep-alive */
#define GW_HF_CONN_UPGRADE    0x0004u  /* Connection: upgrade */
#define GW_HF_UPGRADE         0x0008u  /* an Upgrade header is present */
#define GW_HF_EXPECT_CONTINUE 0x0010u  /* Expect: 100-continue */
#define GW_HF_EXPECT_OTHER    0x0020u  /* Expect with any other value (-> 417) */
#define GW_HF_HAS_CL          0x0040u
#define GW_HF_HAS_TE          0x0080u
#define GW_HF_HAS_DATE        0x0100u
#define GW_HF_MAX_FORWARDS    0x0200u  /* max_forwards is valid */
#define GW_HF_PATH_EMPTY      0x0400u  /* absolute-form target had an empty path:
                                        * path is the static "/" when there is no
                                        * query, else points at "?query" (prepend
                                        * "/" when forwarding; OPTIONS -> "*") */
#define GW_HF_HAS_CONNECTION  0x0800u  /* a Connection header is present */

struct gw_http_head {
	/* request line (requests only) */
	enum gw_method method;
	const char *method_str;
	size_t method_len;
	const char *target;
	size_t target_len;
	enum gw_target_form target_form;
	/* parsed target: for absolute-form and authority-form, the authority;
	 * scheme is "http" / "https" (lower-cased match) for absolute-form */
	const char *scheme;
	size_t scheme_len;
	const char *host;          /* without brackets for IPv6 literals */
	size_t host_len;
	uint16_t port;             /* explicit port, or the scheme default, or 0 */
	const char *path;          /* origin-form path+query; "/" if absolute-form had none */
	size_t path_len;

	/* status line (responses only) */
	int status;
	const char *reason;
	size_t reason_len;

	int version_minor;         /* 0 or 1 (HTTP/1.x) */

	/* header fields, in order; array supplied by the caller */
	struct gw_hdr *hdrs;
	size_t nhdrs;
	size_t hdrs_cap;           /* set by caller: capacity of hdrs */

	/* request: the single Host field value (NULL if none) */
	const char *host_hdr;
	size_t host_hdr_len;

	enum gw_body_kind body;
	uint64_t content_length;   /* valid when body == GW_BODY_LENGTH */
	uint32_t flags;            /* GW_HF_* */
	uint32_t max_forwards;     /* valid with GW_HF_MAX_FORWARDS */
	size_t head_len;           /* bytes of the head, including the final CRLF CRLF */

	/* on error: the status to answer (400, 414, 431, 501, 505; 502 for
	 * responses) and a short static reason for the log */
	int err_status;
	const char *err_reason;
};

/*
 * Parse a request head from buf[0..len).  The caller sets h->hdrs and
 * h->hdrs_cap (at least lim->max_headers entries) before the call.
 * Returns >0: the head is complete and that many bytes were consumed;
 *          0: incomplete, call again with more bytes (never an error for a
 *             valid prefix; but a prefix that already exceeds a limit or is
 *             already invalid returns <0 at once);
 *         <0: invalid; h->err_status and h->err_reason say why.
 * Framing of the body (h->body, h->content_length) is set on success:
 * requests without CL or TE have GW_BODY_NONE.
 *
 * Cost: no state is kept between calls, so each call rescans buf (memchr /
 * memmem speed, bounded by max_header_bytes).  To keep a slow or one-byte-
 * per-segment client from making that quadratic, call again only when the
 * newly read bytes contain '\n' or 1 KiB or more arrived since the last call:
 * every complete line counts against max_headers, so this bounds the work at
 * about (max_headers + max_header_bytes / 1024) * max_header_bytes per head.
 */
ssize_t gw_http1_parse_request(const char *buf, size_t len,
    const struct gw_http_limits *lim, struct gw_http_head *h);

/*
 * Parse a response head; same contract as above.  req_method is the method of
 * the request this answers (HEAD and CONNECT change the framing); framing is set
 * per RFC 9112 section 6.3: 1xx/204/304 and HEAD have no body; a 2xx reply to
 * CONNECT has none; otherwise TE chunked, else CL, else until close.
 * Errors give err_status 502.
 */
ssize_t gw_http1_parse_response(const char *buf, size_t len,
    const struct gw_http_limits *lim, enum gw_method req_method,
    struct gw_http_head *h);

/*
 * Parse an authority "host[:port]" (IPv6 in brackets).  Rejects userinfo,
 * empty host, bad port (0 or > 65535 or non-digits), invalid host characters.
 * Host characters allowed: ALPHA DIGIT "-" "." "_" (no pct-encoding or
 * sub-delims), at most 255; IPv6 literals must pass inet_pton (no zone id, no
 * IPvFuture); a host whose last label is numeric must be a strict IPv4
 * address (gw_addr_parse_host), and empty labels ("a..b") are refused.
 * The port is 1-5 digits (leading zeros allowed); "host:" with an empty port
 * is rejected.
 * On success returns NULL and sets *host, *host_len (brackets removed) and
 * *port (default_port when absent).  On failure returns a static reason.
 */
const char *gw_http1_parse_authority(const char *s, size_t len, uint16_t default_port,
    const char **host, size_t *host_len, uint16_t *port);

/* Value of one hex digit (0-9, a-f, A-F), or -1: for percent-decoding and
 * other hex text outside the parser. */
static inline int gw_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* tchar (RFC 9110 5.6.2): "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA: a table (one
 * load per byte of every field name parsed) */
extern const unsigned char gw_http1_tchar_tab[256];
static inline int gw_http1_tchar(unsigned char c)
{
	return gw_http1_tchar_tab[c];
}

/* Case-insensitive lookup of the first header named name; NULL if absent. */
const struct gw_hdr *gw_http1_find(const struct gw_http_head *h, const char *name);

/* True if the comma-separated list in a header value contains token
 * (case-insensitive, OWS ignored). */
int gw_http1_list_has(const char *value, size_t len, const char *token);

/* True if a field of this name must not be relayed in trailers (RFC 9110
 * 6.5.1: framing, routing, request modifiers, authentication, response
 * control, content processing, and connection-specific fields): such a
 * trailer is dropped, never merged into or turned into a header. */
int gw_http1_trailer_forbidden(const char *name, size_t len);

/* Method name for a method id ("GET"...); "OTHER" for GW_M_OTHER. */
const char *gw_http1_method_name(enum gw_method m);

/* ---- chunked decoder ---- */

struct gw_chunked {
	int state;                 /* private */
	uint64_t remaining;        /* bytes of chunk data still to come */
	uint32_t aux;              /* private: counts extension/trailer bytes */
	int done;                  /* set once the last chunk and trailers are read */
	const char *err_reason;    /* set on error */
	/* set by a caller that relays trailers (after gw_chunked_init): a
	 * buffer of GW_CHUNKED_TRAILER_MAX bytes that receives the trailer
	 * lines as read ("name: value\r\n"...), tr_len long */
	char *tr;
	uint32_t tr_len;
};

#define GW_CHUNKED_TRAILER_MAX 4096u

void gw_chunked_init(struct gw_chunked *c);

/*
 * Feed in[0..len) to the decoder.  It consumes framing and at most one span of
 * chunk data per call.  Returns <0 on a framing error (bad size, overflow past
 * 2^63, missing CRLF, extension or trailer over 4 KiB or with CTLs), else the
 * number of input bytes consumed (0 only if len == 0 or more input is needed
 * to make progress).  If data bytes were consumed, *data_off and *data_len give
 * the span inside in[] (otherwise *data_len == 0).  Call in a loop until it
 * returns 0 or c->done is set; bytes after the end are not consumed.
 *
 * Partial framing (half a size line, a CR) is absorbed into the state, so
 * every input byte before the end is consumed and 0 is returned only for
 * len == 0 or once done.  Errors are sticky.  Grammar (RFC 9112 7.1):
 * chunk-size is 1-16 hex digits (more is rejected even with leading zeros)
 * of value at most 2^63-1; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS
 * ( token / quoted-string ) ] ), i.e. SP/HTAB is allowed before ';' and
 * around '=', but not after the size when no ';' follows; extension bytes
 * (from after the size to the CR) are capped at 4096 per chunk.  Trailer
 * lines are checked like header lines (token name, colon right after it, no
 * obs-fold, no CTL/NUL) and capped at 4096 bytes in all including the final
 * CRLF.  Trailers are not reported: a caller that forwards them forwards the
 * consumed bytes.
 */
ssize_t gw_chunked_decode(struct gw_chunked *c, const char *in, size_t len,
    size_t *data_off, size_t *data_len);

#endif
