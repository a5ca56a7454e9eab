/*
 * core/http1: the strict, pure, incremental HTTP/1.1 parser (RFC 9110/9112).
 *
 * Heads are parsed in two steps.  While the buffer does not yet hold the whole
 * head (no CRLF CRLF within the head-size limit) we only do cheap checks that
 * can already prove the message bad: the start line char by char (method
 * token, target characters and length -> 414, version shape), and memchr
 * passes over the rest for bare LF, bare CR, NUL, obs-fold, too many lines
 * and the head-size limit.  Once the end of the head is there, one full pass
 * validates every field line and derives framing and flags.  No state is kept
 * between calls, so a call on a grown buffer re-scans it; the scans are
 * memchr/memmem speed and bounded by max_header_bytes.
 *
 * The chunked decoder is a byte-at-a-time state machine in struct gw_chunked
 * that hands back at most one span of data per call, so the caller can copy
 * or forward it without the decoder ever buffering.
 *
 * No allocation, no mutable globals, no locale-dependent functions: every
 * character class is spelled out below.
 */
#include "core/http1.h"

#include "core/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

/* Defaults used when a limit is 0 or lim is NULL. */
#define DEF_MAX_HEADER_BYTES 65536u
#define DEF_MAX_HEADERS      100u
#define DEF_MAX_URI_BYTES    8192u
/* RFC 9112 section 3: a method longer than any we implement gets 501. */
#define MAX_METHOD_LEN       32u
#define CHUNK_EXT_MAX        4096u
#define CHUNK_TRAILER_MAX    GW_CHUNKED_TRAILER_MAX
#define CHUNK_SIZE_DIGITS    16u

/* ---- character classes (ASCII only, no locale) ---- */

const unsigned char gw_http1_tchar_tab[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x10 */
	0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,   /* 0x20 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,   /* 0x30 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x40 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,   /* 0x50 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x60 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,   /* 0x70 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x80 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x90 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xa0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xb0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xc0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xd0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xe0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0xf0 */
};

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

static inline int is_hex(unsigned char c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static inline unsigned hex_val(unsigned char c)
{
	return is_digit(c) ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

static inline int is_tchar(unsigned char c)
{
	return gw_http1_tchar(c);
}

/* field-vchar / SP / HTAB: everything except CTLs (0x00-0x1f but HTAB, 0x7f). */
static inline int is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* Is any of the 8 bytes of w below 0x20 or 0x7f (a CTL)?  Exact: bytes
 * 0x80-0xff (obs-text) are never flagged. */
static inline int ctl_in8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t del = w ^ (0x7f * ones);

	return (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & high ? 1 : 0;
}

/* Host characters we accept in a reg-name or IPv4 address.  Stricter than
 * RFC 3986 reg-name on purpose: no sub-delims and no pct-encoding, which no
 * real client sends and which only serve to confuse later stages. */
static inline int is_host_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
}

static int ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);
	if (alen != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)lit[i]))
			return 0;
	return 1;
}

/* ---- small public helpers ---- */

const char *gw_http1_method_name(enum gw_method m)
{
	switch (m) {
#define X(id, s) case GW_M_##id: return s;
	GW_METHODS(X)
#undef X
	case GW_M_OTHER:
	default:
		return "OTHER";
	}
}

static enum gw_method method_id(const char *s, size_t n)
{
	/* methods are case-sensitive (RFC 9110 section 9.1) */
#define X(id, str) if (n == sizeof(str) - 1 && memcmp(s, str, n) == 0) return GW_M_##id;
	GW_METHODS(X)
#undef X
	return GW_M_OTHER;
}

const struct gw_hdr *gw_http1_find(const struct gw_http_head *h, const char *name)
{
	if (!h || !h->hdrs || !name)
		return NULL;
	for (size_t i = 0; i < h->nhdrs; i++)
		if (ieq(h->hdrs[i].name, h->hdrs[i].name_len, name))
			return &h->hdrs[i];
	return NULL;
}

/*
 * Iterate the elements of a comma list: *pos is the cursor.  Returns 1 with
 * the element (OWS trimmed, possibly empty) in *e, *elen; 0 at the end.
 */
static int list_next(const char *v, size_t len, size_t *pos, const char **e, size_t *elen)
{
	size_t i = *pos;
	if (i > len)
		return 0;
	size_t s = i;
	while (i < len && v[i] != ',')
		i++;
	size_t t = i;
	while (s < t && is_ows((unsigned char)v[s]))
		s++;
	while (t > s && is_ows((unsigned char)v[t - 1]))
		t--;
	*e = v + s;
	*elen = t - s;
	*pos = i + 1;           /* past the comma; len + 1 marks the end */
	return 1;
}

/* (name) rows: fields a trailer may not carry */
#define GW_TRAILER_FORBIDDEN(X) \
	X("content-length") X("transfer-encoding") X("content-encoding") X("content-type") \
	X("content-range") X("trailer") X("host") X("cache-control") X("expect") \
	X("max-forwards") X("pragma") X("range") X("te") X("authorization") \
	X("proxy-authorization") X("www-authenticate") X("proxy-authenticate") \
	X("authentication-info") X("proxy-authentication-info") X("cookie") X("set-cookie") \
	X("age") X("expires") X("date") X("location") X("retry-after") X("vary") \
	X("warning") X("connection") X("keep-alive") X("proxy-connection") X("upgrade")

int gw_http1_trailer_forbidden(const char *name, size_t len)
{
#define X(n) if (len == sizeof(n) - 1 && strncasecmp(name, n, len) == 0) return 1;
	GW_TRAILER_FORBIDDEN(X)
#undef X
	return len == 0 || name[0] == ':';
}

int gw_http1_list_has(const char *value, size_t len, const char *token)
{
	size_t pos = 0, elen;
	const char *e;
	if (!value || !token)
		return 0;
	while (list_next(value, len, &pos, &e, &elen))
		if (elen && ieq(e, elen, token))
			return 1;
	return 0;
}

/* ---- authority ---- */

static const char *authority(const char *s, size_t len, uint16_t default_port,
    const char **host, size_t *host_len, uint16_t *port, int *has_port)
{
	const char *hs;
	size_t hl, i;

	*has_port = 0;
	if (!s || len == 0)
		return "empty authority";
	if (memchr(s, '@', len))
		return "userinfo in authority";
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		char tmp[INET6_ADDRSTRLEN + 1];
		struct in6_addr a;
		if (!rb)
			return "unterminated IPv6 literal";
		hs = s + 1;
		hl = (size_t)(rb - hs);
		if (hl == 0)
			return "empty host";
		if (hl >= sizeof(tmp))
			return "invalid IPv6 literal";
		for (size_t k = 0; k < hl; k++) {
			unsigned char c = (unsigned char)hs[k];
			if (!is_hex(c) && c != ':' && c != '.')
				return "invalid IPv6 literal";
		}
		memcpy(tmp, hs, hl);
		tmp[hl] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1)
			return "invalid IPv6 literal";
		i = (size_t)(rb - s) + 1;
		if (i < len && s[i] != ':')
			return "garbage after IPv6 literal";
	} else {
		for (i = 0; i < len && s[i] != ':'; i++)
			if (!is_host_char((unsigned char)s[i]))
				return "invalid character in host";
		hs = s;
		hl = i;
		if (hl == 0)
			return "empty host";
		if (hl > 255)
			return "host too long";
		/* "0177.0.0.1", "127.1", "2130706433", "0x7f.1": one host, several
		 * addresses depending on who parses it; refused (core/addr.h) */
		int is_ip;
		const char *aerr = gw_addr_parse_host(hs, hl, NULL, &is_ip);
		if (aerr != NULL)
			return aerr;
	}
	if (i == len) {
		*port = default_port;
	} else {
		uint32_t v = 0;
		i++;                    /* the ':' */
		if (i == len)
			return "empty port";
		if (len - i > 5)
			return "invalid port";
		for (; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (!is_digit(c))
				return "invalid port";
			v = v * 10 + (uint32_t)(c - '0');
		}
		if (v == 0 || v > 65535)
			return "port out of range";
		*port = (uint16_t)v;
		*has_port = 1;
	}
	*host = hs;
	*host_len = hl;
	return NULL;
}

const char *gw_http1_parse_authority(const char *s, size_t len, uint16_t default_port,
    const char **host, size_t *host_len, uint16_t *port)
{
	int has_port;
	const char *h0;
	size_t hl0;
	uint16_t p0;
	const char *err = authority(s, len, default_port, &h0, &hl0, &p0, &has_port);
	if (err)
		return err;
	if (host)
		*host = h0;
	if (host_len)
		*host_len = hl0;
	if (port)
		*port = p0;
	return NULL;
}

/* ---- heads ---- */

struct pctx {
	const char *buf;
	size_t len;
	struct gw_http_head *h;
	int resp;
	size_t max_hdr, max_uri, max_fields;
	/* header-derived state */
	int host_count;
	int maxfwd_seen;
	int te_bad, te_elems, te_chunked, te_chunked_last, te_unknown;
	const char *conn_framing;  /* reason: Connection names a framing field */
};

static ssize_t fail(struct pctx *p, int status, const char *reason)
{
	p->h->err_status = p->resp ? 502 : status;
	p->h->err_reason = reason;
	return -1;
}

/*
 * Request line, incrementally: scans buf[start..len).  Returns 1 with *next
 * set past its CRLF, 0 if more bytes are needed, -1 on error.
 */
static int request_line(struct pctx *p, size_t start, size_t *next)
{
	const char *b = p->buf;
	size_t len = p->len, i = start, t, tl, v;
	struct gw_http_head *h = p->h;
	static const char ver[] = "HTTP/1.1";

	while (i < len && is_tchar((unsigned char)b[i])) {
		if (i - start >= MAX_METHOD_LEN)
			return (int)fail(p, 501, "method too long");
		i++;
	}
	if (i == len)
		return 0;
	if (i == start && b[i] == ' ')
		return (int)fail(p, 400, "empty method");
	if (b[i] != ' ') {
		if (i == start && (b[i] == '\r' || b[i] == '\n'))
			return (int)fail(p, 400, "empty request line");
		if (i == start)
			return (int)fail(p, 400, "invalid character in method");
		return (int)fail(p, 400, b[i] == '\t' ? "invalid whitespace in request line"
		    : "invalid character in method");
	}
	h->method_str = b + start;
	h->method_len = i - start;
	i++;
	t = i;
	while (i < len) {
		unsigned char c = (unsigned char)b[i];
		if (c < 0x21 || c > 0x7e)
			break;
		if (i - t >= p->max_uri)
			return (int)fail(p, 414, "request-target too long");
		i++;
	}
	if (i == len)
		return 0;
	tl = i - t;
	if (b[i] != ' ') {
		if (b[i] == '\r' || b[i] == '\n')
			return (int)fail(p, 400, tl ? "HTTP/0.9 request" : "empty request-target");
		if (b[i] == '\0')
			return (int)fail(p, 400, "NUL in request-target");
		return (int)fail(p, 400, "invalid character in request-target");
	}
	if (tl == 0)
		return (int)fail(p, 400, "extra space in request line");
	h->target = b + t;
	h->target_len = tl;
	i++;
	v = i;
	/* "HTTP/" DIGIT "." DIGIT, checked as far as we have it */
	for (size_t k = 0; k < 8; k++, i++) {
		if (i == len)
			return 0;
		unsigned char c = (unsigned char)b[i];
		int ok = (k == 5 || k == 7) ? is_digit(c) : c == (unsigned char)ver[k];
		if (!ok)
			return (int)fail(p, 400, c == ' ' && k == 0 ? "extra space in request line"
			    : "invalid HTTP version");
	}
	if (i == len)
		return 0;
	if (b[i] != '\r')
		return (int)fail(p, 400, b[i] == '\n' ? "bare LF in head" : "junk after HTTP version");
	if (++i == len)
		return 0;
	if (b[i] != '\n')
		return (int)fail(p, 400, "bare CR in head");
	if (b[v + 5] != '1' || (b[v + 7] != '0' && b[v + 7] != '1'))
		return (int)fail(p, 505, "HTTP version not supported");
	h->version_minor = b[v + 7] - '0';
	h->method = method_id(h->method_str, h->method_len);
	*next = i + 1;
	return 1;
}

/* Status line, incrementally; same returns as request_line(). */
static int status_line(struct pctx *p, size_t start, size_t *next)
{
	const char *b = p->buf;
	size_t len = p->len, i = start, r;
	struct gw_http_head *h = p->h;
	static const char ver[] = "HTTP/1.1 ";
	int st = 0;

	for (size_t k = 0; k < 9; k++, i++) {
		if (i == len)
			return 0;
		unsigned char c = (unsigned char)b[i];
		int ok = (k == 5 || k == 7) ? is_digit(c) : c == (unsigned char)ver[k];
		if (!ok)
			return (int)fail(p, 502, "invalid status line");
	}
	if (b[start + 5] != '1' || (b[start + 7] != '0' && b[start + 7] != '1'))
		return (int)fail(p, 502, "HTTP version not supported");
	for (size_t k = 0; k < 3; k++, i++) {
		if (i == len)
			return 0;
		if (!is_digit((unsigned char)b[i]))
			return (int)fail(p, 502, "invalid status code");
		st = st * 10 + (b[i] - '0');
	}
	if (st < 100 || st > 599)
		return (int)fail(p, 502, "status code out of range");
	if (i == len)
		return 0;
	if (b[i] == ' ')
		i++;
	else if (b[i] != '\r')
		return (int)fail(p, 502, "invalid status code");
	r = i;
	for (; i < len && b[i] != '\r'; i++) {
		unsigned char c = (unsigned char)b[i];
		if (!is_field_char(c))
			return (int)fail(p, 502, c == '\n' ? "bare LF in head"
			    : c == '\0' ? "NUL in reason phrase" : "control character in reason phrase");
		if (i - start >= p->max_hdr)
			return (int)fail(p, 502, "status line too long");
	}
	if (i == len)
		return 0;
	if (i + 1 == len)
		return 0;
	if (b[i + 1] != '\n')
		return (int)fail(p, 502, "bare CR in head");
	h->version_minor = b[start + 7] - '0';
	h->status = st;
	h->reason = b + r;
	h->reason_len = i - r;
	*next = i + 2;
	return 1;
}

/*
 * Cheap checks over an incomplete head after the start line: bare LF, bare CR,
 * NUL, obs-fold, too many lines.  from..len is all head (no CRLF CRLF in it).
 */
static ssize_t prefix_checks(struct pctx *p, size_t from)
{
	const char *b = p->buf;
	/* past the head-size limit it is 431 anyway; do not scan body bytes */
	size_t len = p->len < p->max_hdr ? p->len : p->max_hdr, nlines = 0;
	const char *q, *e = b + len;

	if (from >= len)
		return 0;
	if (memchr(b + from, '\0', len - from))
		return fail(p, 400, "NUL in header");
	for (q = b + from; q < e && (q = memchr(q, '\r', (size_t)(e - q))) != NULL; q++)
		if (q + 1 < e && q[1] != '\n')
			return fail(p, 400, "bare CR in head");
	/* the start line ended with CRLF, so from is a line start */
	if (is_ows((unsigned char)b[from]))
		return fail(p, 400, "obs-fold or whitespace before first field");
	for (q = b + from; q < e && (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++) {
		if (q == b + from || q[-1] != '\r')
			return fail(p, 400, "bare LF in head");
		if (q + 1 < e && is_ows((unsigned char)q[1]))
			return fail(p, 400, "obs-fold in header");
		if (++nlines > p->max_fields)
			return fail(p, 431, "too many header fields");
	}
	return 0;
}

static ssize_t parse_cl(struct pctx *p, const char *v, size_t vl)
{
	uint64_t n = 0;
	if (p->h->flags & GW_HF_HAS_CL)
		return fail(p, 400, "duplicate Content-Length");
	if (vl == 0)
		return fail(p, 400, "empty Content-Length");
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!is_digit(c))
			return fail(p, 400, "invalid Content-Length");
		if (n > (UINT64_C(0x7fffffffffffffff) - (c - '0')) / 10)
			return fail(p, 400, "Content-Length overflow");
		n = n * 10 + (c - '0');
	}
	p->h->flags |= GW_HF_HAS_CL;
	p->h->content_length = n;
	return 0;
}

static void parse_te(struct pctx *p, const char *v, size_t vl)
{
	size_t pos = 0, el;
	const char *e;
	p->h->flags |= GW_HF_HAS_TE;
	while (list_next(v, vl, &pos, &e, &el)) {
		if (el == 0)
			continue;       /* empty list elements are ignored (RFC 9110 5.6.1) */
		p->te_elems++;
		p->te_chunked_last = 0;
		if (ieq(e, el, "chunked")) {
			p->te_chunked++;
			p->te_chunked_last = 1;
			continue;
		}
		/* a coding is a token, maybe with ;params; either way not ours */
		size_t k = 0;
		while (k < el && is_tchar((unsigned char)e[k]))
			k++;
		while (k < el && is_ows((unsigned char)e[k]))
			k++;
		if (k == 0 || (k < el && e[k] != ';'))
			p->te_bad = 1;
		else
			p->te_unknown = 1;
	}
}

static void parse_expect(struct pctx *p, const char *v, size_t vl)
{
	size_t pos = 0, el;
	const char *e;
	int any = 0;
	while (list_next(v, vl, &pos, &e, &el)) {
		if (el == 0)
			continue;
		any = 1;
		if (ieq(e, el, "100-continue"))
			p->h->flags |= GW_HF_EXPECT_CONTINUE;
		else
			p->h->flags |= GW_HF_EXPECT_OTHER;
	}
	if (!any)
		p->h->flags |= GW_HF_EXPECT_OTHER;
}

static void parse_max_forwards(struct pctx *p, const char *v, size_t vl)
{
	uint64_t n = 0;
	if (p->maxfwd_seen++) {
		/* a second Max-Forwards makes the value ambiguous: ignore both */
		p->h->flags &= ~GW_HF_MAX_FORWARDS;
		return;
	}
	if (vl == 0 || vl > 10)
		return;
	for (size_t i = 0; i < vl; i++) {
		if (!is_digit((unsigned char)v[i]))
			return;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (n > UINT32_MAX)
		return;
	p->h->max_forwards = (uint32_t)n;
	p->h->flags |= GW_HF_MAX_FORWARDS;
}

/*
 * A Connection option that names a field the message cannot lose: a
 * forwarder drops every field Connection names (RFC 9110 7.6.1), and dropping
 * Content-Length or Transfer-Encoding while the body still follows leaves the
 * next hop to read that body as the next message (request smuggling,
 * response splitting); dropping Host leaves the next hop to route a request
 * we routed by it.  No real sender lists them.  Returns the rejection reason,
 * or NULL.  The match is the one the forwarders use (gw_http1_list_has), so
 * the check and the drop cannot disagree.
 */
static const char *conn_names_framing(const struct pctx *p, const char *e, size_t el)
{
	if (ieq(e, el, "content-length"))
		return "Connection names Content-Length";
	if (ieq(e, el, "transfer-encoding"))
		return "Connection names Transfer-Encoding";
	if (!p->resp && ieq(e, el, "host"))
		return "Connection names Host";
	return NULL;
}

static ssize_t field(struct pctx *p, const char *n, size_t nl, const char *v, size_t vl)
{
	struct gw_http_head *h = p->h;
	size_t pos = 0, el;
	const char *e;

	if (h->nhdrs >= p->max_fields)
		return fail(p, 431, "too many header fields");
	h->hdrs[h->nhdrs].name = n;
	h->hdrs[h->nhdrs].name_len = (uint32_t)nl;
	h->hdrs[h->nhdrs].value = v;
	h->hdrs[h->nhdrs].value_len = (uint32_t)vl;
	h->nhdrs++;

	switch (lower((unsigned char)n[0])) {
	case 'c':
		if (ieq(n, nl, "content-length"))
			return parse_cl(p, v, vl);
		if (ieq(n, nl, "connection")) {
			h->flags |= GW_HF_HAS_CONNECTION;
			while (list_next(v, vl, &pos, &e, &el)) {
				if (ieq(e, el, "close"))
					h->flags |= GW_HF_CONN_CLOSE;
				else if (ieq(e, el, "keep-alive"))
					h->flags |= GW_HF_CONN_KEEPALIVE;
				else if (ieq(e, el, "upgrade"))
					h->flags |= GW_HF_CONN_UPGRADE;
				else if (!p->conn_framing)
					p->conn_framing = conn_names_framing(p, e, el);
			}
		}
		break;
	case 't':
		if (ieq(n, nl, "transfer-encoding"))
			parse_te(p, v, vl);
		break;
	case 'h':
		if (!p->resp && ieq(n, nl, "host")) {
			if (p->host_count++)
				return fail(p, 400, "duplicate Host");
			h->host_hdr = v;
			h->host_hdr_len = vl;
		}
		break;
	case 'u':
		if (ieq(n, nl, "upgrade"))
			h->flags |= GW_HF_UPGRADE;
		break;
	case 'e':
		if (!p->resp && ieq(n, nl, "expect"))
			parse_expect(p, v, vl);
		break;
	case 'd':
		if (ieq(n, nl, "date"))
			h->flags |= GW_HF_HAS_DATE;
		break;
	case 'm':
		if (!p->resp && ieq(n, nl, "max-forwards"))
			parse_max_forwards(p, v, vl);
		break;
	default:
		break;
	}
	return 0;
}

/*
 * Field lines of a complete head: buf[from..end) where end is just past the
 * final CRLF CRLF.
 */
static ssize_t fields(struct pctx *p, size_t from, size_t end)
{
	const char *b = p->buf;
	size_t i = from;

	for (;;) {
		const char *lf = memchr(b + i, '\n', end - i);
		size_t eol, k, ns, vs, ve;
		if (!lf)        /* cannot happen: end is after CRLF CRLF */
			return fail(p, 400, "internal: unterminated head");
		eol = (size_t)(lf - b);
		if (eol == i || b[eol - 1] != '\r')
			return fail(p, 400, "bare LF in head");
		eol--;          /* at the CR */
		if (eol == i)
			return eol + 2 == end ? 0 : fail(p, 400, "internal: empty line inside head");
		if (is_ows((unsigned char)b[i]))
			return fail(p, 400, "obs-fold in header");
		ns = i;
		for (k = i; k < eol && is_tchar((unsigned char)b[k]); k++)
			;
		if (k == eol)
			return fail(p, 400, "header line without colon");
		if (b[k] != ':') {
			unsigned char c = (unsigned char)b[k];
			if (is_ows(c))
				return fail(p, 400, "whitespace before colon");
			if (c == '\0')
				return fail(p, 400, "NUL in header");
			if (c == '\r')
				return fail(p, 400, "bare CR in head");
			return fail(p, 400, "invalid character in header name");
		}
		if (k == ns)
			return fail(p, 400, "empty header name");
		size_t nl = k - ns;
		k++;
		while (k < eol && is_ows((unsigned char)b[k]))
			k++;
		vs = k;
		/* eight bytes at a time while none is a CTL (HTAB included: the
		 * byte loop decides those) */
		while (eol - k >= 8) {
			uint64_t w;
			memcpy(&w, b + k, 8);
			if (ctl_in8(w))
				break;
			k += 8;
		}
		for (; k < eol; k++) {
			unsigned char c = (unsigned char)b[k];
			if (!is_field_char(c))
				return fail(p, 400, c == '\0' ? "NUL in header" : c == '\r'
				    ? "bare CR in head" : "control character in header value");
		}
		ve = eol;
		while (ve > vs && is_ows((unsigned char)b[ve - 1]))
			ve--;
		if (field(p, b + ns, nl, b + vs, ve - vs) < 0)
			return -1;
		i = eol + 2;
	}
}

static void reset_head(struct gw_http_head *h)
{
	struct gw_hdr *hdrs = h->hdrs;
	size_t cap = h->hdrs_cap;
	memset(h, 0, sizeof(*h));
	h->hdrs = hdrs;
	h->hdrs_cap = cap;
}

static void setup(struct pctx *p, const char *buf, size_t len,
    const struct gw_http_limits *lim, struct gw_http_head *h, int resp)
{
	memset(p, 0, sizeof(*p));
	p->buf = buf;
	p->len = len;
	p->h = h;
	p->resp = resp;
	p->max_hdr = lim && lim->max_header_bytes ? lim->max_header_bytes : DEF_MAX_HEADER_BYTES;
	p->max_uri = lim && lim->max_uri_bytes ? lim->max_uri_bytes : DEF_MAX_URI_BYTES;
	p->max_fields = lim && lim->max_headers ? lim->max_headers : DEF_MAX_HEADERS;
	if (!h->hdrs)
		p->max_fields = 0;
	else if (p->max_fields > h->hdrs_cap)
		p->max_fields = h->hdrs_cap;
}

/* The first CR LF CR LF in s[0..n), by LF: memmem's setup costs more than
 * a whole head of a few lines. */
static const char *find_crlfcrlf(const char *s, size_t n)
{
	const char *p = s, *end = s + n;

	while (end - p >= 4) {
		const char *lf = memchr(p + 3, '\n', (size_t)(end - p - 3));
		if (lf == NULL)
			return NULL;
		if (lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r')
			return lf - 3;
		p = lf - 2;   /* the next candidate ends after lf */
	}
	return NULL;
}

/* Find the end of the head (just past CRLF CRLF) searching buf[from..), at
 * most up to the head-size limit; 0 if absent. */
static size_t head_end(struct pctx *p, size_t from)
{
	size_t lim = p->len < p->max_hdr ? p->len : p->max_hdr;
	const char *q;
	/* the start line's CRLF may be the first half of CRLF CRLF */
	size_t s = from >= 2 ? from - 2 : 0;
	if (lim <= s)
		return 0;
	q = find_crlfcrlf(p->buf + s, lim - s);
	return q ? (size_t)(q - p->buf) + 4 : 0;
}

/* Decide the body framing from TE/CL state; common to both directions. */
static ssize_t te_cl(struct pctx *p)
{
	struct gw_http_head *h = p->h;
	if (!(h->flags & GW_HF_HAS_TE))
		return 0;
	if (h->version_minor == 0)
		return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	if (h->flags & GW_HF_HAS_CL)
		return fail(p, 400, "Transfer-Encoding with Content-Length");
	if (p->te_bad)
		return fail(p, 400, "invalid Transfer-Encoding");
	if (p->te_elems == 0)
		return fail(p, 400, "empty Transfer-Encoding");
	if (p->te_chunked > 1)
		return fail(p, 400, "chunked applied more than once");
	if (p->te_chunked && !p->te_chunked_last)
		return fail(p, 400, "chunked is not the final coding");
	if (p->te_unknown)
		return fail(p, 501, "unsupported transfer coding");
	return 0;
}

static int scheme_is(const char *s, size_t n, const char *lit) { return ieq(s, n, lit); }

static ssize_t target(struct pctx *p)
{
	struct gw_http_head *h = p->h;
	const char *t = h->target, *err;
	size_t tl = h->target_len;
	int has_port;

	if (memchr(t, '#', tl))
		return fail(p, 400, "fragment in request-target");
	if (h->method == GW_M_CONNECT) {
		h->target_form = GW_TF_AUTHORITY;
		err = authority(t, tl, 0, &h->host, &h->host_len, &h->port, &has_port);
		if (err)
			return fail(p, 400, err);
		if (!has_port)
			return fail(p, 400, "CONNECT target without port");
		return 0;
	}
	if (t[0] == '/') {
		h->target_form = GW_TF_ORIGIN;
		h->path = t;
		h->path_len = tl;
		return 0;
	}
	if (t[0] == '*' && tl == 1) {
		if (h->method != GW_M_OPTIONS)
			return fail(p, 400, "asterisk-form only with OPTIONS");
		h->target_form = GW_TF_ASTERISK;
		return 0;
	}
	/* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
	size_t k = 0;
	if (!is_alpha((unsigned char)t[0]))
		return fail(p, 400, "invalid request-target");
	while (k < tl && (is_alpha((unsigned char)t[k]) || is_digit((unsigned char)t[k]) ||
	    t[k] == '+' || t[k] == '-' || t[k] == '.'))
		k++;
	if (k == tl || t[k] != ':')
		return fail(p, 400, "invalid request-target");
	if (tl - k < 3 || t[k + 1] != '/' || t[k + 2] != '/')
		return fail(p, 400, "authority-form only with CONNECT");
	uint16_t defport;
	if (scheme_is(t, k, "http"))
		defport = 80;
	else if (scheme_is(t, k, "https"))
		defport = 443;
	else
		return fail(p, 400, "unsupported URI scheme");
	h->target_form = GW_TF_ABSOLUTE;
	h->scheme = t;
	h->scheme_len = k;
	size_t as = k + 3, ae = as;
	while (ae < tl && t[ae] != '/' && t[ae] != '?')
		ae++;
	if (memchr(t + as, '@', ae - as))
		return fail(p, 400, "userinfo in request-target");
	err = authority(t + as, ae - as, defport, &h->host, &h->host_len, &h->port, &has_port);
	if (err)
		return fail(p, 400, err);
	if (ae == tl || t[ae] == '?') {
		h->flags |= GW_HF_PATH_EMPTY;
		if (ae == tl) {
			h->path = "/";
			h->path_len = 1;
		} else {
			h->path = t + ae;
			h->path_len = tl - ae;
		}
	} else {
		h->path = t + ae;
		h->path_len = tl - ae;
	}
	return 0;
}

ssize_t gw_http1_parse_request(const char *buf, size_t len,
    const struct gw_http_limits *lim, struct gw_http_head *h)
{
	struct pctx p;
	size_t start = 0, after_line = 0, end;
	int r;

	reset_head(h);
	setup(&p, buf, len, lim, h, 0);
	if (!buf)
		return len ? fail(&p, 400, "no buffer") : 0;

	/* RFC 9112 section 2.2: ignore empty lines before the request line
	 * (they count against the head-size limit) */
	while (start < len && buf[start] == '\r') {
		if (start + 1 == len)
			return 0;
		if (buf[start + 1] != '\n')
			return fail(&p, 400, "bare CR in head");
		start += 2;
		if (start >= p.max_hdr)
			return fail(&p, 431, "request header too large");
	}
	if (start < len && buf[start] == '\n')
		return fail(&p, 400, "bare LF in head");

	r = request_line(&p, start, &after_line);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (len >= p.max_hdr)
			return fail(&p, 431, "request header too large");
		return 0;
	}
	end = head_end(&p, after_line);
	if (!end) {
		if (prefix_checks(&p, after_line) < 0)
			return -1;
		if (len >= p.max_hdr)
			return fail(&p, 431, "request header too large");
		return 0;
	}
	if (fields(&p, after_line, end) < 0)
		return -1;
	h->head_len = end;

	if (p.conn_framing)
		return fail(&p, 400, p.conn_framing);
	if (te_cl(&p) < 0)
		return -1;
	if (h->flags & GW_HF_HAS_TE) {
		h->body = GW_BODY_CHUNKED;
		h->content_length = 0;
	} else if (h->flags & GW_HF_HAS_CL) {
		h->body = GW_BODY_LENGTH;
	} else {
		h->body = GW_BODY_NONE;
		h->content_length = 0;
	}
	if (h->version_minor == 0)      /* RFC 9110 10.1.1: ignore it in 1.0 */
		h->flags &= ~(GW_HF_EXPECT_CONTINUE | GW_HF_EXPECT_OTHER);

	if (target(&p) < 0)
		return -1;
	if (p.host_count == 0 && h->version_minor == 1)
		return fail(&p, 400, "missing Host");
	if (p.host_count) {
		const char *hh;
		size_t hl;
		uint16_t hp;
		int has_port;
		const char *err = authority(h->host_hdr, h->host_hdr_len, 0, &hh, &hl, &hp, &has_port);
		if (err)
			return fail(&p, 400, h->host_hdr_len == 0 ? "empty Host" : "invalid Host");
		if (h->target_form == GW_TF_ORIGIN || h->target_form == GW_TF_ASTERISK) {
			h->host = hh;
			h->host_len = hl;
			h->port = hp;
		}
	}
	return (ssize_t)end;
}

ssize_t gw_http1_parse_response(const char *buf, size_t len,
    const struct gw_http_limits *lim, enum gw_method req_method,
    struct gw_http_head *h)
{
	struct pctx p;
	size_t after_line = 0, end;
	int r;

	reset_head(h);
	setup(&p, buf, len, lim, h, 1);
	if (!buf)
		return len ? fail(&p, 502, "no buffer") : 0;

	r = status_line(&p, 0, &after_line);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (len >= p.max_hdr)
			return fail(&p, 502, "response header too large");
		return 0;
	}
	end = head_end(&p, after_line);
	if (!end) {
		if (prefix_checks(&p, after_line) < 0)
			return -1;
		if (len >= p.max_hdr)
			return fail(&p, 502, "response header too large");
		return 0;
	}
	if (fields(&p, after_line, end) < 0)
		return -1;
	h->head_len = end;
	if (p.conn_framing)
		return fail(&p, 502, p.conn_framing);
	if (te_cl(&p) < 0)
		return -1;

	/* RFC 9112 section 6.3 */
	if (req_method == GW_M_HEAD || (h->status >= 100 && h->status < 200) ||
	    h->status == 204 || h->status == 304)
		h->body = GW_BODY_NONE;
	else if (req_method == GW_M_CONNECT && h->status >= 200 && h->status < 300)
		h->body = GW_BODY_NONE;
	else if (h->flags & GW_HF_HAS_TE)
		h->body = GW_BODY_CHUNKED;
	else if (h->flags & GW_HF_HAS_CL)
		h->body = GW_BODY_LENGTH;
	else
		h->body = GW_BODY_CLOSE;
	return (ssize_t)end;
}

/* ---- chunked decoder ---- */

enum {
	CS_SIZE0,       /* first hex digit of chunk-size */
	CS_SIZE,        /* more hex digits */
	CS_SIZE_BWS,    /* whitespace after the size: only ';' may follow */
	CS_EXT_PRE_NAME,
	CS_EXT_NAME,
	CS_EXT_POST_NAME,
	CS_EXT_PRE_VAL,
	CS_EXT_VAL,
	CS_EXT_QVAL,
	CS_EXT_QESC,
	CS_EXT_POST_VAL,
	CS_SIZE_LF,     /* CR seen at the end of the size line */
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TR_START,    /* start of a trailer line or the final CRLF */
	CS_TR_NAME,
	CS_TR_VALUE,
	CS_TR_LF,
	CS_FINAL_LF,
	CS_DONE,
	CS_ERROR
};

void gw_chunked_init(struct gw_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CS_SIZE0;
}

static ssize_t cfail(struct gw_chunked *c, const char *why)
{
	c->state = CS_ERROR;
	c->err_reason = why;
	return -1;
}

ssize_t gw_chunked_decode(struct gw_chunked *c, const char *in, size_t len,
    size_t *data_off, size_t *data_len)
{
	size_t i = 0;

	*data_off = 0;
	*data_len = 0;
	if (c->state == CS_ERROR)
		return -1;
	while (i < len) {
		unsigned char ch = (unsigned char)in[i];
		int st = c->state;

		if (st == CS_DONE)
			return (ssize_t)i;
		if (st == CS_DATA) {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			*data_off = i;
			*data_len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CS_DATA_CR;
			return (ssize_t)(i + n);
		}
		/* extension bytes are counted per chunk, from after the size */
		if (st >= CS_SIZE_BWS && st <= CS_EXT_POST_VAL) {
			if (++c->aux > CHUNK_EXT_MAX)
				return cfail(c, "chunk extension too long");
		} else if (st >= CS_TR_START && st <= CS_FINAL_LF) {
			if (++c->aux > CHUNK_TRAILER_MAX)
				return cfail(c, "chunked trailer too long");
		}
		switch (st) {
		case CS_SIZE0:
			if (!is_hex(ch))
				return cfail(c, ch == '-' ? "negative chunk size" : "invalid chunk size");
			c->remaining = hex_val(ch);
			c->aux = 1;
			c->state = CS_SIZE;
			break;
		case CS_SIZE:
			if (is_hex(ch)) {
				if (++c->aux > CHUNK_SIZE_DIGITS)
					return cfail(c, "chunk size too long");
				if (c->remaining > (UINT64_C(0x7fffffffffffffff) >> 4))
					return cfail(c, "chunk size overflow");
				c->remaining = (c->remaining << 4) | hex_val(ch);
				break;
			}
			c->aux = 0;
			if (ch == '\r') {
				c->state = CS_SIZE_LF;
			} else if (ch == ';') {
				c->aux = 1;
				c->state = CS_EXT_PRE_NAME;
			} else if (is_ows(ch)) {
				c->aux = 1;
				c->state = CS_SIZE_BWS;
			} else {
				return cfail(c, ch == '\n' ? "bare LF in chunk size line" : "invalid chunk size");
			}
			break;
		case CS_SIZE_BWS:
			if (ch == ';')
				c->state = CS_EXT_PRE_NAME;
			else if (!is_ows(ch))
				return cfail(c, "whitespace after chunk size");
			break;
		case CS_EXT_PRE_NAME:
			if (is_tchar(ch))
				c->state = CS_EXT_NAME;
			else if (!is_ows(ch))
				return cfail(c, "invalid chunk extension");
			break;
		case CS_EXT_NAME:
			if (is_tchar(ch))
				break;
			if (ch == '=')
				c->state = CS_EXT_PRE_VAL;
			else if (ch == ';')
				c->state = CS_EXT_PRE_NAME;
			else if (ch == '\r')
				c->state = CS_SIZE_LF;
			else if (is_ows(ch))
				c->state = CS_EXT_POST_NAME;
			else
				return cfail(c, "invalid chunk extension");
			break;
		case CS_EXT_POST_NAME:
			if (ch == '=')
				c->state = CS_EXT_PRE_VAL;
			else if (ch == ';')
				c->state = CS_EXT_PRE_NAME;
			else if (ch == '\r')
				c->state = CS_SIZE_LF;
			else if (!is_ows(ch))
				return cfail(c, "invalid chunk extension");
			break;
		case CS_EXT_PRE_VAL:
			if (ch == '"')
				c->state = CS_EXT_QVAL;
			else if (is_tchar(ch))
				c->state = CS_EXT_VAL;
			else if (!is_ows(ch))
				return cfail(c, "invalid chunk extension");
			break;
		case CS_EXT_VAL:
			if (is_tchar(ch))
				break;
			if (ch == ';')
				c->state = CS_EXT_PRE_NAME;
			else if (ch == '\r')
				c->state = CS_SIZE_LF;
			else if (is_ows(ch))
				c->state = CS_EXT_POST_VAL;
			else
				return cfail(c, "invalid chunk extension");
			break;
		case CS_EXT_QVAL:
			if (ch == '"')
				c->state = CS_EXT_POST_VAL;
			else if (ch == '\\')
				c->state = CS_EXT_QESC;
			else if (!is_field_char(ch))
				return cfail(c, "control character in chunk extension");
			break;
		case CS_EXT_QESC:
			if (!is_field_char(ch))
				return cfail(c, "control character in chunk extension");
			c->state = CS_EXT_QVAL;
			break;
		case CS_EXT_POST_VAL:
			if (ch == ';')
				c->state = CS_EXT_PRE_NAME;
			else if (ch == '\r')
				c->state = CS_SIZE_LF;
			else if (!is_ows(ch))
				return cfail(c, "invalid chunk extension");
			break;
		case CS_SIZE_LF:
			if (ch != '\n')
				return cfail(c, "bare CR in chunk size line");
			c->aux = 0;
			c->state = c->remaining ? CS_DATA : CS_TR_START;
			break;
		case CS_DATA_CR:
			if (ch != '\r')
				return cfail(c, "missing CRLF after chunk data");
			c->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (ch != '\n')
				return cfail(c, "missing CRLF after chunk data");
			c->state = CS_SIZE0;
			break;
		case CS_TR_START:
			if (ch == '\r')
				c->state = CS_FINAL_LF;
			else if (is_tchar(ch))
				c->state = CS_TR_NAME;
			else
				return cfail(c, is_ows(ch) ? "obs-fold in trailer" : ch == '\n'
				    ? "bare LF in trailer" : "invalid trailer field");
			break;
		case CS_TR_NAME:
			if (ch == ':')
				c->state = CS_TR_VALUE;
			else if (!is_tchar(ch))
				return cfail(c, "invalid trailer field name");
			break;
		case CS_TR_VALUE:
			if (ch == '\r')
				c->state = CS_TR_LF;
			else if (!is_field_char(ch))
				return cfail(c, "control character in trailer");
			break;
		case CS_TR_LF:
			if (ch != '\n')
				return cfail(c, "bare CR in trailer");
			c->state = CS_TR_START;
			break;
		case CS_FINAL_LF:
			if (ch != '\n')
				return cfail(c, "bare CR after trailer");
			c->state = CS_DONE;
			c->done = 1;
			return (ssize_t)(i + 1);
		default:
			return cfail(c, "internal: bad decoder state");
		}
		/* a trailer line's bytes (aux caps them at the buffer's size) */
		if (c->tr != NULL && st >= CS_TR_START && st <= CS_TR_LF && c->state != CS_FINAL_LF &&
		    c->tr_len < CHUNK_TRAILER_MAX)
			c->tr[c->tr_len++] = (char)ch;
		i++;
	}
	return (ssize_t)i;
}
