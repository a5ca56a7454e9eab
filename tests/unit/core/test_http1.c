/*
 * test_http1: table-driven tests of core/http1 (request heads, response heads,
 * chunked bodies, authorities and the small helpers).
 *
 * Every valid head is also fed as every proper prefix (each must say "need
 * more") and with trailing bytes (must consume exactly the head).  Every
 * chunked body is fed all at once, byte by byte and in every 2-way split, and
 * must decode identically.  Inputs are copied into exact-size heap buffers so
 * ASan catches any read past the end.
 */
#include "core/http1.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define S(x) .in = (x), .len = sizeof(x) - 1
#define NHDRS 128

static struct gw_hdr hdrbuf[NHDRS];

static char *dup_exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);
	if (!p)
		abort();
	memcpy(p, s, n);
	return p;
}

static const struct gw_http_limits deflim = { 65536, 100, 8192 };

static ssize_t parse_req(const char *s, size_t n, const struct gw_http_limits *lim,
    struct gw_http_head *h)
{
	char *b = dup_exact(s, n);
	ssize_t r;
	memset(h, 0xa5, sizeof(*h));   /* the parser must not rely on a zeroed head */
	h->hdrs = hdrbuf;
	h->hdrs_cap = NHDRS;
	r = gw_http1_parse_request(b, n, lim, h);
	/* rebase pointers onto the caller's string so they outlive b */
#define REBASE(f) if (h->f && h->f >= b && h->f <= b + n) h->f = s + (h->f - b)
	if (r > 0) {
		REBASE(method_str); REBASE(target); REBASE(scheme); REBASE(host);
		REBASE(path); REBASE(host_hdr);
		for (size_t i = 0; i < h->nhdrs; i++) {
			REBASE(hdrs[i].name); REBASE(hdrs[i].value);
		}
	}
	free(b);
	return r;
}

static ssize_t parse_resp(const char *s, size_t n, const struct gw_http_limits *lim,
    enum gw_method m, struct gw_http_head *h)
{
	char *b = dup_exact(s, n);
	ssize_t r;
	memset(h, 0xa5, sizeof(*h));
	h->hdrs = hdrbuf;
	h->hdrs_cap = NHDRS;
	r = gw_http1_parse_response(b, n, lim, m, h);
	if (r > 0) {
		REBASE(reason);
		for (size_t i = 0; i < h->nhdrs; i++) {
			REBASE(hdrs[i].name); REBASE(hdrs[i].value);
		}
	}
	free(b);
	return r;
}

static int streq(const char *a, size_t alen, const char *b)
{
	return a && strlen(b) == alen && memcmp(a, b, alen) == 0;
}

/* ------------------------------------------------------------------ */
/* requests                                                            */

struct rq {
	const char *in;
	size_t len;
	int st;                  /* 0 = success, else expected err_status */
	const char *why;         /* substring of err_reason (errors), optional */
	enum gw_method m;
	enum gw_target_form tf;
	const char *host;        /* NULL: expect no host */
	int port;
	const char *path;        /* NULL: expect no path */
	enum gw_body_kind body;
	uint64_t cl;
	uint32_t flags;
	int minor;
	size_t nh;               /* expected number of fields */
};

#define H11 .minor = 1
static const struct rq reqs[] = {
	/* ---- valid ---- */
	{ S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_GET, .tf = GW_TF_ORIGIN, .host = "a",
	  .path = "/", H11, .nh = 1 },
	{ S("GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), .m = GW_M_GET, .host = "example.com",
	  .port = 8080, .path = "/p?q=1", H11, .nh = 1 },
	{ S("GET http://o:8080/p?q HTTP/1.1\r\nHost: evil\r\n\r\n"), .m = GW_M_GET, .tf = GW_TF_ABSOLUTE,
	  .host = "o", .port = 8080, .path = "/p?q", H11, .nh = 1 },
	{ S("GET http://o HTTP/1.1\r\nHost: o\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "o", .port = 80,
	  .path = "/", .flags = GW_HF_PATH_EMPTY, H11, .nh = 1 },
	{ S("GET https://o?x=1 HTTP/1.1\r\nHost: o\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "o", .port = 443,
	  .path = "?x=1", .flags = GW_HF_PATH_EMPTY, H11, .nh = 1 },
	{ S("GET HTTP://O.example/ HTTP/1.1\r\nHost: o\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "O.example",
	  .port = 80, .path = "/", H11, .nh = 1 },
	{ S("GET http://[::1]:81/x HTTP/1.1\r\nHost: [::1]:81\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "::1",
	  .port = 81, .path = "/x", H11, .nh = 1 },
	{ S("GET http://h? HTTP/1.1\r\nHost: h\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "h", .port = 80,
	  .path = "?", .flags = GW_HF_PATH_EMPTY, H11, .nh = 1 },
	{ S("GET http://h:8080 HTTP/1.1\r\nHost: h\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "h", .port = 8080,
	  .path = "/", .flags = GW_HF_PATH_EMPTY, H11, .nh = 1 },
	{ S("GET http://h/a@b HTTP/1.1\r\nHost: h\r\n\r\n"), .tf = GW_TF_ABSOLUTE, .host = "h", .port = 80,
	  .path = "/a@b", H11, .nh = 1 },
	{ S("OPTIONS http://o HTTP/1.1\r\nHost: o\r\n\r\n"), .m = GW_M_OPTIONS, .tf = GW_TF_ABSOLUTE,
	  .host = "o", .port = 80, .path = "/", .flags = GW_HF_PATH_EMPTY, H11, .nh = 1 },
	{ S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), .m = GW_M_CONNECT,
	  .tf = GW_TF_AUTHORITY, .host = "example.com", .port = 443, H11, .nh = 1 },
	{ S("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n"), .m = GW_M_CONNECT,
	  .tf = GW_TF_AUTHORITY, .host = "2001:db8::1", .port = 8443, H11, .nh = 1 },
	{ S("CONNECT 10.0.0.1:22 HTTP/1.0\r\n\r\n"), .m = GW_M_CONNECT, .tf = GW_TF_AUTHORITY,
	  .host = "10.0.0.1", .port = 22 },
	{ S("OPTIONS * HTTP/1.1\r\nHost: a:1\r\n\r\n"), .m = GW_M_OPTIONS, .tf = GW_TF_ASTERISK, .host = "a",
	  .port = 1, H11, .nh = 1 },
	{ S("GET / HTTP/1.0\r\n\r\n"), .path = "/" },
	{ S("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), .path = "/", .host = "a", .nh = 1 },
	{ S("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_HEAD, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_DELETE, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_TRACE, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_PATCH, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("PUT /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_PUT, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_OTHER, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("get /x HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_OTHER, .host = "a", .path = "/x", H11, .nh = 1 },
	{ S("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 / HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_OTHER, .host = "a",
	  .path = "/", H11, .nh = 1 },
	{ S("M-!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n"), .m = GW_M_OTHER, .host = "a", .path = "/", H11, .nh = 1 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), .m = GW_M_POST, .host = "a", .path = "/u",
	  .body = GW_BODY_LENGTH, .cl = 5, .flags = GW_HF_HAS_CL, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), .m = GW_M_POST, .host = "a", .path = "/u",
	  .body = GW_BODY_LENGTH, .cl = 0, .flags = GW_HF_HAS_CL, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\ncontent-length:007 \r\n\r\n"), .m = GW_M_POST, .host = "a", .path = "/u",
	  .body = GW_BODY_LENGTH, .cl = 7, .flags = GW_HF_HAS_CL, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"), .m = GW_M_POST,
	  .host = "a", .path = "/u", .body = GW_BODY_LENGTH, .cl = UINT64_C(9223372036854775807),
	  .flags = GW_HF_HAS_CL, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), .m = GW_M_POST, .host = "a",
	  .path = "/u", .body = GW_BODY_CHUNKED, .flags = GW_HF_HAS_TE, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"), .m = GW_M_POST, .host = "a",
	  .path = "/u", .body = GW_BODY_CHUNKED, .flags = GW_HF_HAS_TE, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked , \r\n\r\n"), .m = GW_M_POST, .host = "a",
	  .path = "/u", .body = GW_BODY_CHUNKED, .flags = GW_HF_HAS_TE, H11, .nh = 2 },
	{ S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  .m = GW_M_POST, .host = "a", .path = "/u", .body = GW_BODY_CHUNKED, .flags = GW_HF_HAS_TE, H11, .nh = 3 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), .host = "a", .path = "/",
	  .flags = GW_HF_HAS_CONNECTION | GW_HF_CONN_CLOSE, H11, .nh = 2 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
	  .host = "a", .path = "/", .flags = GW_HF_HAS_CONNECTION | GW_HF_CONN_KEEPALIVE |
	  GW_HF_CONN_UPGRADE | GW_HF_UPGRADE, H11, .nh = 3 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret\r\nConnection: CLOSE\r\n\r\n"), .host = "a",
	  .path = "/", .flags = GW_HF_HAS_CONNECTION | GW_HF_CONN_CLOSE, H11, .nh = 3 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, keep-alives\r\n\r\n"), .host = "a",
	  .path = "/", .flags = GW_HF_HAS_CONNECTION, H11, .nh = 2 },
	/* near misses of the framing names are ordinary hop-by-hop options */
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-lengthx, x-content-length, content-length;q\r\n"
	    "Content-Length: 5\r\n\r\n"), .m = GW_M_POST, .host = "a", .path = "/", .body = GW_BODY_LENGTH,
	  .cl = 5, .flags = GW_HF_HAS_CONNECTION | GW_HF_HAS_CL, H11, .nh = 3 },
	{ S("POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n"), .m = GW_M_POST,
	  .path = "/", .body = GW_BODY_LENGTH, .cl = 5,
	  .flags = GW_HF_HAS_CONNECTION | GW_HF_CONN_KEEPALIVE | GW_HF_HAS_CL, .nh = 2 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"), .m = GW_M_POST,
	  .host = "a", .path = "/", .body = GW_BODY_LENGTH, .cl = 5,
	  .flags = GW_HF_HAS_CONNECTION | GW_HF_CONN_CLOSE | GW_HF_HAS_CL, H11, .nh = 3 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: hostname, x-host\r\n\r\n"), .host = "a",
	  .path = "/", .flags = GW_HF_HAS_CONNECTION, H11, .nh = 2 },
	{ S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"), .m = GW_M_PUT,
	  .host = "a", .path = "/", .body = GW_BODY_LENGTH, .cl = 1,
	  .flags = GW_HF_EXPECT_CONTINUE | GW_HF_HAS_CL, H11, .nh = 3 },
	{ S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"), .m = GW_M_PUT, .host = "a", .path = "/",
	  .flags = GW_HF_EXPECT_OTHER, H11, .nh = 2 },
	{ S("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), .m = GW_M_PUT, .path = "/", .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nDate: Tue, 15 Nov 1994 08:12:31 GMT\r\n\r\n"), .host = "a", .path = "/",
	  .flags = GW_HF_HAS_DATE, H11, .nh = 2 },
	{ S("TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"), .m = GW_M_TRACE, .host = "a", .path = "/",
	  .flags = GW_HF_MAX_FORWARDS, H11, .nh = 2 },
	{ S("TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: -1\r\n\r\n"), .m = GW_M_TRACE, .host = "a", .path = "/",
	  H11, .nh = 2 },
	{ S("TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 99999999999\r\n\r\n"), .m = GW_M_TRACE, .host = "a",
	  .path = "/", H11, .nh = 2 },
	{ S("TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 1 0\r\n\r\n"), .m = GW_M_TRACE, .host = "a",
	  .path = "/", H11, .nh = 2 },
	{ S("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .host = "a", .path = "/", H11, .nh = 1 },
	{ S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .host = "a", .path = "/", H11, .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX-Caf\xc3: caf\xc3\xa9\r\n\r\n"), .st = 400 },  /* non-token name */
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX-Cafe: caf\xc3\xa9\t\x80\xff\r\n\r\n"), .host = "a", .path = "/",
	  H11, .nh = 2 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nY:   \t \r\n\r\n"), .host = "a", .path = "/", H11, .nh = 3 },
	{ S("GET /a%20b!$&'()*+,;=:@-._~?q=/?%7e HTTP/1.1\r\nHost: a\r\n\r\n"), .host = "a",
	  .path = "/a%20b!$&'()*+,;=:@-._~?q=/?%7e", H11, .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"), .host = "127.0.0.1", .port = 80, .path = "/", H11, .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"), .host = "2001:db8::1", .path = "/", H11, .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n"), .host = "example.com.", .path = "/", H11, .nh = 1 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n"), .host = "a", .path = "/",
	  .flags = GW_HF_UPGRADE, H11, .nh = 2 },
	{ S("GET / HTTP/1.1\r\nhOsT:a\r\n\r\n"), .host = "a", .path = "/", H11, .nh = 1 },

	/* ---- request line ---- */
	{ S("GET /\r\n\r\n"), .st = 400, .why = "0.9" },
	{ S("GET / \r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), .st = 505 },
	{ S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), .st = 505 },
	{ S("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), .st = 505 },
	{ S("GET / HTTP/3.1\r\nHost: a\r\n\r\n"), .st = 505 },
	{ S("GET / http/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/11\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/2\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "method" },
	{ S(" / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "empty method" },   /* fuzz finding */
	{ S("\r\n / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "empty method" },
	{ S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET/ / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 501 },
	{ S("GET /\0x HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "NUL" },
	{ S("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "fragment" },
	{ S("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "OPTIONS" },
	{ S("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400 },
	{ S("GET h:80 HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "CONNECT" },
	{ S("GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "userinfo" },
	{ S("GET http://@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "userinfo" },
	{ S("GET http://u@h HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "userinfo" },
	{ S("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "scheme" },
	{ S("GET file:///etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http://h:99999/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http://h:0/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http://h:/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET http://h%2e/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "port" },
	{ S("CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("CONNECT http://h:443/ HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400, .why = "userinfo" },
	{ S("CONNECT h:443/x HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },
	{ S("CONNECT [::1] HTTP/1.1\r\nHost: h\r\n\r\n"), .st = 400 },

	/* ---- line endings, NUL, CTLs ---- */
	{ S("GET / HTTP/1.1\nHost: a\n\n"), .st = 400, .why = "bare LF" },
	{ S("GET / HTTP/1.1\r\nHost: a\n\r\n"), .st = 400, .why = "bare LF" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\n\n"), .st = 400, .why = "bare LF" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: y\n\r\n\r\n"), .st = 400, .why = "bare LF" },
	{ S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "bare LF" },
	{ S("GET / HTTP/1.1\rHost: a\r\n\r\n"), .st = 400, .why = "bare CR" },
	{ S("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), .st = 400, .why = "bare CR" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX\r: b\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n"), .st = 400 },
	{ S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .st = 400, .why = "bare CR" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), .st = 400, .why = "NUL" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n"), .st = 400, .why = "NUL" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[31m\r\n\r\n"), .st = 400, .why = "control" },
	/* long values: the parser checks eight bytes at a time, a CTL at any
	 * place of a word, and in the tail after the last whole word */
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: \x01" "bcdefghijklmnopqrstuvwxyz\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefg\x7fijklmnopqrstuvwxyz\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefghijk\x1fmnopqrstuvwxyz\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefghijklmnopqrstuvwx\x7f\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefghijklmnopqrstuvw\x0b\r\n\r\n"), .st = 400, .why = "control" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefghijklmnop\0rstuvwxyz\r\n\r\n"), .st = 400, .why = "NUL" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: abcdefghijklmnop\rrstuvwxyz\r\n\r\n"), .st = 400, .why = "bare CR" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: \xff\x80\xfe\xa0" "abcd\tefgh ijkl\x81\x7e~!\r\n\r\n"), .host = "a",
	  .path = "/", H11, .nh = 2 },

	/* ---- field syntax ---- */
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), .st = 400, .why = "obs-fold" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), .st = 400, .why = "obs-fold" },
	{ S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), .st = 400 },
	{ S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), .st = 400, .why = "before colon" },
	{ S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), .st = 400, .why = "before colon" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n"), .st = 400, .why = "colon" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), .st = 400, .why = "empty header name" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nFo@o: b\r\n\r\n"), .st = 400, .why = "header name" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nFoo\x7f: b\r\n\r\n"), .st = 400, .why = "header name" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\n\"X\": b\r\n\r\n"), .st = 400, .why = "header name" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), .st = 400, .why = "header name" },

	/* ---- Content-Length ---- */
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), .st = 400,
	  .why = "duplicate Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), .st = 400,
	  .why = "duplicate Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"), .st = 400,
	  .why = "overflow" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), .st = 400,
	  .why = "overflow" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa5\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent Length: 5\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-LENGTH: 5\r\n\r\n"), .st = 400,
	  .why = "duplicate Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \"5\"\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 5\r\n\r\n"), .st = 400,
	  .why = "Transfer-Encoding with Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), .m = GW_M_POST,
	  .host = "a", .path = "/", .body = GW_BODY_LENGTH, .cl = 5, .flags = GW_HF_HAS_CL, H11, .nh = 3 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nContent-Length: 5\r\n\r\n"), .m = GW_M_POST,
	  .host = "a", .path = "/", .body = GW_BODY_LENGTH, .cl = 5, .flags = GW_HF_HAS_CL, H11, .nh = 3 },

	/* ---- Transfer-Encoding and smuggling ---- */
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), .st = 400,
	  .why = "Transfer-Encoding with Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), .st = 400,
	  .why = "Transfer-Encoding with Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"), .st = 400,
	  .why = "final" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), .st = 400, .why = "final" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), .st = 400,
	  .why = "more than once" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  .st = 400, .why = "more than once" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"), .st = 400,
	  .why = "final" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n"), .st = 501 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), .st = 400, .why = "colon" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n"), .st = 400, .why = "colon" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), .st = 400, .why = "obs-fold" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"), .st = 400,
	  .why = "obs-fold" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ch unked\r\n\r\n"), .st = 400 },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), .st = 400, .why = "empty" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n"), .st = 400, .why = "empty" },
	{ S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), .st = 400, .why = "1.0" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\n"), .st = 400 },

	/* ---- Host ---- */
	{ S("GET / HTTP/1.1\r\n\r\n"), .st = 400, .why = "missing Host" },
	{ S("GET http://h/ HTTP/1.1\r\n\r\n"), .st = 400, .why = "missing Host" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), .st = 400, .why = "duplicate Host" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), .st = 400, .why = "duplicate Host" },
	{ S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), .st = 400, .why = "duplicate Host" },
	{ S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:0\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:+80\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:8a\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:80:90\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h/x\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h\xc3\xa9\r\n\r\n"), .st = 400, .why = "Host" },
	{ S("GET / HTTP/1.1\r\nHost: h:\r\n\r\n"), .st = 400, .why = "Host" },

	/* ---- Connection naming a field the message cannot lose (smuggling) ---- */
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n"),
	  .st = 400, .why = "Connection names Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\n"),
	  .st = 400, .why = "Connection names Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: close, CONTENT-LENGTH \r\nContent-Length: 5\r\n\r\n"),
	  .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive,,\tcontent-length\r\n"
	    "Content-Length: 5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: content-length\r\n"
	    "Content-Length: 5\r\n\r\n"), .st = 400, .why = "Content-Length" },
	{ S("POST / HTTP/1.0\r\nConnection: keep-alive, content-length\r\nContent-Length: 5\r\n\r\n"),
	  .st = 400, .why = "Content-Length" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n\r\n"), .st = 400,
	  .why = "Content-Length" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), .st = 400, .why = "Connection names Transfer-Encoding" },
	{ S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: upgrade, Transfer-Encoding\r\n\r\n"),
	  .st = 400, .why = "Transfer-Encoding" },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n"), .st = 400,
	  .why = "Connection names Host" },
	{ S("GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n"), .st = 400,
	  .why = "Connection names Host" },
	{ S("GET / HTTP/1.0\r\nHost: a\r\nConnection: host\r\n\r\n"), .st = 400, .why = "Host" },
};

/* Custom-limit request cases (lim given), including early failure of an
 * incomplete head. */
struct rql {
	const char *in;
	size_t len;
	struct gw_http_limits lim;
	ssize_t ret;             /* expected return: -1, 0 or the head length */
	int st;
};

static const struct rql reqlim[] = {
	/* ret 1 means "the whole input" */
	{ S("GET /0123456789abcde HTTP/1.1\r\nHost: a\r\n\r\n"), { 4096, 10, 16 }, 1, 0 },
	{ S("GET /0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n"), { 4096, 10, 16 }, -1, 414 },
	{ S("GET /0123456789abcdef"), { 4096, 10, 16 }, -1, 414 },            /* incomplete: at once */
	{ S("GET /0123456789abcde"), { 4096, 10, 16 }, 0, 0 },
	{ S("GET http://example.com/0123456789"), { 4096, 10, 16 }, -1, 414 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890\r\n\r\n"), { 63, 10, 16 }, 1, 0 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: 01234567890123456789012345678901\r\n\r\n"), { 63, 10, 16 }, -1, 431 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789"), { 63, 10, 16 }, -1, 431 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890"), { 63, 10, 16 }, 0, 0 },
	{ S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nHost: a\r\n\r\n"), { 4096, 3, 16 }, 1, 0 },
	{ S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nHost: a\r\n\r\n"), { 4096, 3, 16 }, -1, 431 },
	{ S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"), { 4096, 3, 16 }, -1, 431 },  /* early */
	{ S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), { 16, 3, 16 }, -1, 431 },
	{ S("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"), { 4096, 3, 16 }, -1, 501 },
	/* early invalidity in an incomplete head */
	{ S("G\x01"), { 0, 0, 0 }, -1, 400 },
	{ S("GET /\0"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\n"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\r\nHost: a\n"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\r\nX: \0"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\r\nA: b\r\n c"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\r\n c"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/1.1\r\nX: a\rY"), { 0, 0, 0 }, -1, 400 },
	{ S("GET / HTTP/2.0\r\n"), { 0, 0, 0 }, -1, 505 },
	{ S("GET / HTTP/1.1\r\nX: a\r"), { 0, 0, 0 }, 0, 0 },
	{ S("GET / HTTP/1.1\r\n"), { 0, 0, 0 }, 0, 0 },
	{ S("GET / HTTP/1.1\r\nHost: a\r\n\r"), { 0, 0, 0 }, 0, 0 },
	{ S("GET / HTTPX"), { 0, 0, 0 }, -1, 400 },
	{ S("GET /\r"), { 0, 0, 0 }, -1, 400 },
	{ S(""), { 0, 0, 0 }, 0, 0 },
	{ S("\r\n"), { 0, 0, 0 }, 0, 0 },
};

static int same_head(const struct gw_http_head *a, const struct gw_http_head *b)
{
	if (a->method != b->method || a->target_form != b->target_form || a->port != b->port ||
	    a->host_len != b->host_len || a->path_len != b->path_len || a->body != b->body ||
	    a->content_length != b->content_length || a->flags != b->flags ||
	    a->nhdrs != b->nhdrs || a->head_len != b->head_len || a->status != b->status ||
	    a->version_minor != b->version_minor)
		return 0;
	if (a->host_len && memcmp(a->host, b->host, a->host_len))
		return 0;
	if (a->path_len && memcmp(a->path, b->path, a->path_len))
		return 0;
	return 1;
}

static void test_requests(void)
{
	char name[64];
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		const struct rq *t = &reqs[i];
		struct gw_http_head h, h2;
		ssize_t r;

		snprintf(name, sizeof(name), "request #%zu", i);
		BEGIN_CASE(name);
		r = parse_req(t->in, t->len, &deflim, &h);
		if (t->st) {
			CHECK(r < 0, "expected error %d, got %zd", t->st, r);
			if (r < 0) {
				CHECK(h.err_status == t->st, "status %d, want %d (%s)", h.err_status, t->st,
				    h.err_reason ? h.err_reason : "-");
				CHECK(h.err_reason != NULL, "no reason");
				if (t->why && h.err_reason)
					CHECK(strstr(h.err_reason, t->why) != NULL, "reason '%s' lacks '%s'",
					    h.err_reason, t->why);
			}
			/* no prefix of an invalid head may be accepted */
			for (size_t k = 0; k < t->len; k++) {
				r = parse_req(t->in, k, &deflim, &h2);
				CHECK(r <= 0, "prefix %zu accepted (%zd)", k, r);
			}
			END_CASE();
			continue;
		}
		CHECK(r == (ssize_t)t->len, "ret %zd, want %zu (%d %s)", r, t->len, h.err_status,
		    r < 0 && h.err_reason ? h.err_reason : "");
		if (r == (ssize_t)t->len) {
			CHECK(h.head_len == t->len, "head_len %zu", h.head_len);
			CHECK(h.method == t->m, "method %d", (int)h.method);
			CHECK(h.target_form == t->tf, "form %d", (int)h.target_form);
			CHECK(h.version_minor == t->minor, "minor %d", h.version_minor);
			if (t->host)
				CHECK(streq(h.host, h.host_len, t->host), "host '%.*s'", (int)h.host_len,
				    h.host ? h.host : "");
			else
				CHECK(h.host_len == 0, "unexpected host");
			CHECK(h.port == t->port, "port %u", h.port);
			if (t->path)
				CHECK(streq(h.path, h.path_len, t->path), "path '%.*s'", (int)h.path_len,
				    h.path ? h.path : "");
			else
				CHECK(h.path == NULL && h.path_len == 0, "unexpected path");
			CHECK(h.body == t->body, "body %d", (int)h.body);
			CHECK(h.content_length == t->cl, "cl %llu", (unsigned long long)h.content_length);
			CHECK(h.flags == t->flags, "flags %#x want %#x", h.flags, t->flags);
			CHECK(h.nhdrs == t->nh, "nhdrs %zu", h.nhdrs);
			CHECK(streq(h.method_str, h.method_len, "") == 0, "method_str empty");
			/* every proper prefix needs more */
			for (size_t k = 0; k < t->len; k++) {
				r = parse_req(t->in, k, &deflim, &h2);
				CHECK(r == 0, "prefix %zu: %zd (%s)", k, r, r < 0 && h2.err_reason ? h2.err_reason : "");
			}
			/* trailing bytes (pipelined request / body) are not consumed */
			char *more = malloc(t->len + 7);
			memcpy(more, t->in, t->len);
			memcpy(more + t->len, "GET /\r\n", 7);
			r = parse_req(more, t->len + 7, &deflim, &h2);
			CHECK(r == (ssize_t)t->len, "with trailing bytes: %zd", r);
			if (r > 0)
				CHECK(same_head(&h, &h2), "different result with trailing bytes");
			free(more);
			r = parse_req(t->in, t->len, &deflim, &h2);
			CHECK(r == (ssize_t)t->len && same_head(&h, &h2), "second parse differs");
		}
		END_CASE();
	}

	for (size_t i = 0; i < sizeof(reqlim) / sizeof(reqlim[0]); i++) {
		const struct rql *t = &reqlim[i];
		struct gw_http_head h;
		ssize_t r;
		snprintf(name, sizeof(name), "request limits #%zu", i);
		BEGIN_CASE(name);
		r = parse_req(t->in, t->len, &t->lim, &h);
		if (t->ret == 1)
			CHECK(r == (ssize_t)t->len && h.head_len == t->len, "whole input: %zd", r);
		else
			CHECK(r == t->ret, "ret %zd want %zd (%d %s)", r, t->ret, r < 0 ? h.err_status : 0,
		    r < 0 && h.err_reason ? h.err_reason : "");
		if (r < 0 && t->ret < 0)
			CHECK(h.err_status == t->st, "status %d want %d (%s)", h.err_status, t->st, h.err_reason);
		END_CASE();
	}
}

static void test_request_misc(void)
{
	struct gw_http_head h;
	const struct gw_hdr *f;
	static const char m1[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad:   a b \t \r\nx-pad: second\r\n\r\n";
	ssize_t r;

	BEGIN_CASE("request: OWS trimmed, find is case-insensitive and returns the first");
	r = parse_req(m1, sizeof(m1) - 1, &deflim, &h);
	CHECK(r == (ssize_t)sizeof(m1) - 1, "ret %zd", r);
	f = gw_http1_find(&h, "X-PAD");
	CHECK(f && streq(f->value, f->value_len, "a b"), "value");
	CHECK(f && streq(f->name, f->name_len, "X-Pad"), "name");
	CHECK(gw_http1_find(&h, "X-Nope") == NULL, "absent");
	CHECK(gw_http1_find(&h, "host") == &h.hdrs[0], "host first");
	CHECK(streq(h.host_hdr, h.host_hdr_len, "a"), "host_hdr");
	CHECK(streq(h.method_str, h.method_len, "GET"), "method_str");
	CHECK(streq(h.target, h.target_len, "/"), "target");
	END_CASE();

	BEGIN_CASE("request: hdrs_cap smaller than max_headers bounds the fields");
	{
		struct gw_hdr small[2];
		static const char m2[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
		memset(&h, 0, sizeof(h));
		h.hdrs = small;
		h.hdrs_cap = 2;
		r = gw_http1_parse_request(m2, sizeof(m2) - 1, &deflim, &h);
		CHECK(r < 0 && h.err_status == 431, "ret %zd status %d", r, h.err_status);
		h.hdrs = small;
		h.hdrs_cap = 2;
		r = gw_http1_parse_request(m2, sizeof(m2) - 1 - 6, &deflim, &h);
		CHECK(r == 0 || (r < 0 && h.err_status == 431), "partial ret %zd", r);
	}
	END_CASE();

	BEGIN_CASE("request: NULL limits use defaults");
	{
		static const char m3[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
		memset(&h, 0, sizeof(h));
		h.hdrs = hdrbuf;
		h.hdrs_cap = NHDRS;
		r = gw_http1_parse_request(m3, sizeof(m3) - 1, NULL, &h);
		CHECK(r == (ssize_t)sizeof(m3) - 1, "ret %zd", r);
	}
	END_CASE();

	BEGIN_CASE("request: 8000-byte target accepted under default limits");
	{
		size_t n = 8000;
		char *b = malloc(n + 64);
		int len = 0;
		memcpy(b, "GET /", 5);
		memset(b + 5, 'a', n - 1);
		len = 4 + (int)n;
		len += snprintf(b + len, 64, " HTTP/1.1\r\nHost: a\r\n\r\n");
		r = parse_req(b, (size_t)len, &deflim, &h);
		CHECK(r == len && h.path_len == n, "ret %zd", r);
		free(b);
	}
	END_CASE();

	BEGIN_CASE("request: growing-buffer feed of a 100-field head");
	{
		char b[4096];
		size_t n = 0;
		n += (size_t)snprintf(b + n, sizeof(b) - n, "POST /x HTTP/1.1\r\nHost: a\r\n");
		for (int k = 0; k < 98; k++)
			n += (size_t)snprintf(b + n, sizeof(b) - n, "X-%d: %d\r\n", k, k);
		n += (size_t)snprintf(b + n, sizeof(b) - n, "Content-Length: 3\r\n\r\nabc");
		int bad = 0;
		for (size_t k = 0; k + 3 < n; k++)
			if (parse_req(b, k, &deflim, &h) != 0)
				bad++;
		CHECK(bad == 0, "%d prefixes not 'need more'", bad);
		r = parse_req(b, n, &deflim, &h);
		CHECK(r == (ssize_t)n - 3 && h.nhdrs == 100 && h.content_length == 3, "ret %zd", r);
		struct gw_http_limits l99 = { 65536, 99, 8192 };
		r = parse_req(b, n, &l99, &h);
		CHECK(r < 0 && h.err_status == 431, "101 fields over 99");
	}
	END_CASE();
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

struct rs {
	const char *in;
	size_t len;
	enum gw_method m;
	int st;                  /* 0 ok, else 502 */
	int status;
	enum gw_body_kind body;
	uint64_t cl;
	const char *reason;
	const char *why;
};

static const struct rs resps[] = {
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_LENGTH, 5, "OK" },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_CHUNKED, 0, "OK" },
	{ S("HTTP/1.1 200 OK\r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_CLOSE, 0, "OK" },
	{ S("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_CLOSE, 0, "OK" },
	{ S("HTTP/1.1 204 No Content\r\n\r\n"), GW_M_GET, 0, 204, GW_BODY_NONE, 0, "No Content" },
	{ S("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), GW_M_GET, 0, 304, GW_BODY_NONE, 10,
	  "Not Modified" },
	{ S("HTTP/1.1 100 Continue\r\n\r\n"), GW_M_POST, 0, 100, GW_BODY_NONE, 0, "Continue" },
	{ S("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"), GW_M_GET, 0, 103, GW_BODY_NONE, 0, "Early Hints" },
	{ S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), GW_M_GET, 0,
	  101, GW_BODY_NONE, 0, "Switching Protocols" },
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), GW_M_HEAD, 0, 200, GW_BODY_NONE, 100, "OK" },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_M_HEAD, 0, 200, GW_BODY_NONE, 0, "OK" },
	{ S("HTTP/1.1 200 Connection established\r\n\r\n"), GW_M_CONNECT, 0, 200, GW_BODY_NONE, 0,
	  "Connection established" },
	{ S("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n"), GW_M_CONNECT, 0, 407, GW_BODY_LENGTH, 3,
	  "Proxy Auth" },
	{ S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_LENGTH, 0, "" },
	{ S("HTTP/1.1 200 \r\n\r\n"), GW_M_GET, 0, 200, GW_BODY_CLOSE, 0, "" },
	{ S("HTTP/1.1 404 Not\tFound \xe2\x9c\x97\r\n\r\n"), GW_M_GET, 0, 404, GW_BODY_CLOSE, 0,
	  "Not\tFound \xe2\x9c\x97" },
	{ S("HTTP/1.1 599 X\r\n\r\n"), GW_M_GET, 0, 599, GW_BODY_CLOSE, 0, "X" },
	{ S("HTTP/1.1 500 Internal  Server Error\r\nDate: x\r\n\r\n"), GW_M_GET, 0, 500, GW_BODY_CLOSE, 0,
	  "Internal  Server Error" },
	/* Host is not a response field: a response's Connection may name it */
	{ S("HTTP/1.1 200 OK\r\nConnection: host, x-y\r\nContent-Length: 1\r\n\r\n"), GW_M_GET, 0, 200,
	  GW_BODY_LENGTH, 1, "OK" },

	{ S("HTTP/1.1 099 X\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 600 X\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 20 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 2000 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 abc OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1  200 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/2 200 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/2.0 200 OK\r\n\r\n"), GW_M_GET, 502, .why = "version" },
	{ S("HTTP/1.2 200 OK\r\n\r\n"), GW_M_GET, 502, .why = "version" },
	{ S("http/1.1 200 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("ICY 200 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\n\n"), GW_M_GET, 502, .why = "bare LF" },
	{ S("HTTP/1.1 200 OK\r\nServer: x\n\r\n"), GW_M_GET, 502, .why = "bare LF" },
	{ S("HTTP/1.1 200 O\rK\r\n\r\n"), GW_M_GET, 502, .why = "bare CR" },
	{ S("HTTP/1.1 200 O\0K\r\n\r\n"), GW_M_GET, 502, .why = "NUL" },
	{ S("HTTP/1.1 200 O\x01K\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), GW_M_GET, 502,
	  .why = "duplicate" },
	{ S("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_M_GET, 502,
	  .why = "Content-Length" },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nServer : x\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nServer: x\r\n y\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nX\r\n\r\n"), GW_M_GET, 502 },
	{ S("\r\nHTTP/1.1 200 OK\r\n\r\n"), GW_M_GET, 502 },
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_M_HEAD, 502 },
	/* Connection naming a framing field: response splitting */
	{ S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\n"), GW_M_GET, 502,
	  .why = "Connection names Content-Length" },
	{ S("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: Content-Length, close\r\n"
	    "Content-Length: 5\r\n\r\n"), GW_M_GET, 502, .why = "Content-Length" },
	{ S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n"),
	  GW_M_GET, 502, .why = "Connection names Transfer-Encoding" },
	{ S("HTTP/1.1 304 Not Modified\r\nConnection: content-length\r\n\r\n"), GW_M_GET, 502,
	  .why = "Content-Length" },
	{ S("HTTP/1.1 103 Early Hints\r\nConnection: content-length\r\n\r\n"), GW_M_GET, 502,
	  .why = "Content-Length" },
	{ S("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade, transfer-encoding\r\n"
	    "Upgrade: websocket\r\n\r\n"), GW_M_GET, 502, .why = "Transfer-Encoding" },
};

static void test_responses(void)
{
	char name[64];
	for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
		const struct rs *t = &resps[i];
		struct gw_http_head h, h2;
		ssize_t r;
		snprintf(name, sizeof(name), "response #%zu", i);
		BEGIN_CASE(name);
		r = parse_resp(t->in, t->len, &deflim, t->m, &h);
		if (t->st) {
			CHECK(r < 0 && h.err_status == 502, "ret %zd status %d", r, r < 0 ? h.err_status : 0);
			if (r < 0 && t->why)
				CHECK(strstr(h.err_reason, t->why) != NULL, "reason '%s'", h.err_reason);
			for (size_t k = 0; k < t->len; k++) {
				r = parse_resp(t->in, k, &deflim, t->m, &h2);
				CHECK(r <= 0, "prefix %zu accepted", k);
				CHECK(r == 0 || h2.err_status == 502, "prefix %zu status %d", k, h2.err_status);
			}
			END_CASE();
			continue;
		}
		CHECK(r == (ssize_t)t->len, "ret %zd (%s)", r, r < 0 ? h.err_reason : "");
		if (r == (ssize_t)t->len) {
			CHECK(h.status == t->status, "status %d", h.status);
			CHECK(h.body == t->body, "body %d", (int)h.body);
			if (h.flags & GW_HF_HAS_CL)
				CHECK(h.content_length == t->cl, "cl %llu", (unsigned long long)h.content_length);
			CHECK(streq(h.reason, h.reason_len, t->reason), "reason '%.*s'", (int)h.reason_len, h.reason);
			for (size_t k = 0; k < t->len; k++) {
				r = parse_resp(t->in, k, &deflim, t->m, &h2);
				CHECK(r == 0, "prefix %zu: %zd", k, r);
			}
			char *more = malloc(t->len + 5);
			memcpy(more, t->in, t->len);
			memcpy(more + t->len, "hello", 5);
			r = parse_resp(more, t->len + 5, &deflim, t->m, &h2);
			CHECK(r == (ssize_t)t->len && same_head(&h, &h2), "with body bytes: %zd", r);
			free(more);
		}
		END_CASE();
	}

	BEGIN_CASE("response: head over the limit is 502, at once when incomplete");
	{
		struct gw_http_head h;
		struct gw_http_limits l = { 32, 10, 16 };
		static const char m[] = "HTTP/1.1 200 OK\r\nServer: 0123456789abcdef";
		ssize_t r = parse_resp(m, sizeof(m) - 1, &l, GW_M_GET, &h);
		CHECK(r < 0 && h.err_status == 502, "ret %zd", r);
		static const char m2[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
		l.max_header_bytes = 4096;
		l.max_headers = 2;
		r = parse_resp(m2, sizeof(m2) - 1, &l, GW_M_GET, &h);
		CHECK(r < 0 && h.err_status == 502, "too many fields ret %zd", r);
	}
	END_CASE();
}

/* ------------------------------------------------------------------ */
/* chunked                                                             */

struct ck {
	const char *in;
	size_t len;
	int ok;                 /* 1: completes; 0: error; 2: valid but incomplete */
	const char *data;       /* expected decoded data */
	size_t dlen;
	size_t consumed;        /* for ok: bytes consumed (0 = all of in) */
};

#define D(x) .data = (x), .dlen = sizeof(x) - 1

static const struct ck chunks[] = {
	{ S("5\r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("0\r\n\r\n"), 1, D("") },
	{ S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 1, D("hello world") },
	{ S("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), 1, D("0123456789abcdefghij") },
	{ S("0005\r\nhello\r\n000\r\n\r\n"), 1, D("hello") },
	{ S("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 1, D("hello"), 15 },
	{ S("5;a=b\r\nhello\r\n0;last\r\n\r\n"), 1, D("hello") },
	{ S("5;a=\"q;\\\"x\"\r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("5 ;a\r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("5\t; a = b ;c= \"d\" \r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("5;a;b=c;d\r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("5;a=\"\xc3\xa9\t\"\r\nhello\r\n0\r\n\r\n"), 1, D("hello") },
	{ S("3\r\n\r\n\r\r\n0\r\n\r\n"), 1, D("\r\n\r") },
	{ S("2\r\n\0\xff\r\n0\r\n\r\n"), 1, D("\0\xff") },
	{ S("0\r\nX: y\r\nZ-Trailer:w\t v\r\n\r\n"), 1, D("") },
	{ S("1\r\na\r\n0\r\nX:\r\n\r\nzz"), 1, D("a"), 15 },
	{ S("7FFFFFFFFFFFFFFF\r\nabc"), 2, D("abc") },
	{ S("5\r\nhel"), 2, D("hel") },
	{ S("5\r\nhello\r\n0\r\n"), 2, D("hello") },
	{ S("5\r\nhello\r\n0\r\nX: y\r\n"), 2, D("hello") },
	{ S("5;"), 2, D("") },

	{ S("\r\n"), 0 },
	{ S(";a\r\n"), 0 },
	{ S(" 5\r\n"), 0 },
	{ S("-5\r\n"), 0 },
	{ S("+5\r\n"), 0 },
	{ S("0x5\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("g\r\n"), 0 },
	{ S("5\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5\rhello"), 0 },
	{ S("5\r\nhelloX\r\n0\r\n\r\n"), 0 },
	{ S("5\r\nhello\n0\r\n\r\n"), 0 },
	{ S("5\r\nhello\r0\r\n\r\n"), 0 },
	{ S("5\r\nhellohello\r\n"), 0 },
	{ S("00000000000000005\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("8000000000000000\r\n"), 0 },
	{ S("FFFFFFFFFFFFFFFF\r\n"), 0 },
	{ S("10000000000000000\r\n"), 0 },
	{ S("5 \r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a=\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a=\"x\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a=b c\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a\x01\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a=\"\\\x7f\"\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a\n\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;@\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("5;a==b\r\nhello\r\n0\r\n\r\n"), 0 },
	{ S("0\r\nX: y\r\n z\r\n\r\n"), 0 },
	{ S("0\r\nXY\r\n\r\n"), 0 },
	{ S("0\r\nX : y\r\n\r\n"), 0 },
	{ S("0\r\n: y\r\n\r\n"), 0 },
	{ S("0\r\nX: y\n\r\n"), 0 },
	{ S("0\r\nX: \0\r\n\r\n"), 0 },
	{ S("0\r\n\n"), 0 },
	{ S("0\r\n\r\r"), 0 },
	{ S("0\r\n\r\nX"), 1, D(""), 5 },
	{ S("0\r\nX: y\rZ\r\n\r\n"), 0 },
};

/* Feed in[] as the given segments; returns 1 done, 0 incomplete, -1 error. */
static int feed(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    char *out, size_t *outlen, size_t *consumed)
{
	struct gw_chunked c;
	size_t pos = 0;
	gw_chunked_init(&c);
	*outlen = 0;
	*consumed = 0;
	for (size_t s = 0; s <= ncuts; s++) {
		size_t end = s < ncuts ? cuts[s] : len;
		char *seg = dup_exact(in + pos, end - pos);
		size_t off = 0, slen = end - pos;
		while (!c.done) {
			size_t doff = 99, dlen = 99;
			ssize_t r = gw_chunked_decode(&c, seg + off, slen - off, &doff, &dlen);
			if (r < 0) {
				int ok = c.err_reason != NULL;
				free(seg);
				return ok ? -1 : -2;
			}
			if ((size_t)r > slen - off || dlen > (size_t)r || (dlen && doff + dlen > (size_t)r)) {
				free(seg);
				return -3;
			}
			if (dlen) {
				memcpy(out + *outlen, seg + off + doff, dlen);
				*outlen += dlen;
			}
			off += (size_t)r;
			*consumed += (size_t)r;
			if (r == 0)
				break;
		}
		free(seg);
		if (c.done)
			return 1;
		pos = end;
	}
	return 0;
}

static void test_chunked(void)
{
	char name[64];
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		const struct ck *t = &chunks[i];
		char *out = malloc(t->len + 1);
		size_t olen, cons, cut;
		size_t want_cons = t->consumed ? t->consumed : t->len;
		int r, bad = 0;

		snprintf(name, sizeof(name), "chunked #%zu", i);
		BEGIN_CASE(name);
		/* all at once */
		r = feed(t->in, t->len, NULL, 0, out, &olen, &cons);
		if (t->ok == 1) {
			CHECK(r == 1, "all at once: %d", r);
			CHECK(olen == t->dlen && memcmp(out, t->data, olen) == 0, "data (%zu bytes)", olen);
			CHECK(cons == want_cons, "consumed %zu want %zu", cons, want_cons);
		} else if (t->ok == 2) {
			CHECK(r == 0, "incomplete: %d", r);
			CHECK(olen == t->dlen && memcmp(out, t->data, olen) == 0, "data (%zu bytes)", olen);
		} else {
			CHECK(r == -1, "error expected: %d", r);
		}
		/* every 2-way split */
		for (cut = 0; cut <= t->len; cut++) {
			r = feed(t->in, t->len, &cut, 1, out, &olen, &cons);
			if (t->ok == 1 && !(r == 1 && olen == t->dlen && memcmp(out, t->data, olen) == 0 &&
			    cons == want_cons))
				bad++;
			if (t->ok == 2 && !(r == 0 && olen == t->dlen && memcmp(out, t->data, olen) == 0))
				bad++;
			if (t->ok == 0 && r != -1)
				bad++;
		}
		CHECK(bad == 0, "%d 2-way splits differ", bad);
		/* byte by byte */
		{
			size_t *cuts = malloc((t->len + 1) * sizeof(size_t));
			for (size_t k = 0; k < t->len; k++)
				cuts[k] = k + 1;
			r = feed(t->in, t->len, cuts, t->len ? t->len - 1 : 0, out, &olen, &cons);
			if (t->ok == 1)
				CHECK(r == 1 && olen == t->dlen && memcmp(out, t->data, olen) == 0 &&
				    cons == want_cons, "byte by byte: %d", r);
			else if (t->ok == 2)
				CHECK(r == 0 && olen == t->dlen && memcmp(out, t->data, olen) == 0,
				    "byte by byte incomplete: %d", r);
			else
				CHECK(r == -1, "byte by byte: %d", r);
			free(cuts);
		}
		END_CASE();
		free(out);
	}

	BEGIN_CASE("chunked: extension at the 4096-byte cap passes, one more fails");
	{
		size_t n = 4096 + 64;
		char *b = malloc(n + 32);
		char out[8];
		size_t olen, cons, len;
		/* "1;" + name: ext bytes counted from ';' through the CR */
		b[0] = '1';
		b[1] = ';';
		memset(b + 2, 'e', 4094);
		len = 2 + 4094;
		memcpy(b + len, "\r\nx\r\n0\r\n\r\n", 10);
		len += 10;
		int r = feed(b, len, NULL, 0, out, &olen, &cons);
		CHECK(r == 1 && olen == 1, "at cap: %d", r);
		memset(b + 2, 'e', 4095);
		len = 2 + 4095;
		memcpy(b + len, "\r\nx\r\n0\r\n\r\n", 10);
		len += 10;
		r = feed(b, len, NULL, 0, out, &olen, &cons);
		CHECK(r == -1, "over cap: %d", r);
		free(b);
	}
	END_CASE();

	BEGIN_CASE("chunked: trailer section over 4096 bytes fails");
	{
		char *b = malloc(8192);
		char out[8];
		size_t olen, cons, len = 0;
		memcpy(b, "0\r\n", 3);
		len = 3;
		for (int k = 0; k < 500; k++) {
			memcpy(b + len, "X: 12345\r\n", 10);
			len += 10;
		}
		memcpy(b + len, "\r\n", 2);
		len += 2;
		int r = feed(b, len, NULL, 0, out, &olen, &cons);
		CHECK(r == -1, "r %d", r);
		len = 3 + 400 * 10;
		memcpy(b + len, "\r\n", 2);
		r = feed(b, len + 2, NULL, 0, out, &olen, &cons);
		CHECK(r == 1, "4002 bytes of trailer ok: %d", r);
		free(b);
	}
	END_CASE();

	BEGIN_CASE("chunked: errors are sticky, done consumes nothing more, len 0 returns 0");
	{
		struct gw_chunked c;
		size_t off, dl;
		gw_chunked_init(&c);
		CHECK(gw_chunked_decode(&c, "", 0, &off, &dl) == 0, "len 0");
		CHECK(gw_chunked_decode(&c, "z", 1, &off, &dl) < 0 && c.err_reason, "error");
		CHECK(gw_chunked_decode(&c, "0\r\n\r\n", 5, &off, &dl) < 0, "sticky");
		gw_chunked_init(&c);
		CHECK(gw_chunked_decode(&c, "0\r\n\r\nabc", 8, &off, &dl) == 5 && c.done, "done at 5");
		CHECK(gw_chunked_decode(&c, "abc", 3, &off, &dl) == 0 && dl == 0, "nothing after done");
	}
	END_CASE();

	BEGIN_CASE("chunked: trailer lines kept when asked, whole or byte by byte, never the final CRLF");
	{
		static const char b[] = "3\r\nabc\r\n0\r\nX-A: 1\r\nb:\t2 \r\n\r\nNEXT";
		static const char want[] = "X-A: 1\r\nb:\t2 \r\n";
		for (int step = 0; step < 2; step++) {
			struct gw_chunked c;
			char tr[GW_CHUNKED_TRAILER_MAX];
			size_t off, dl, i = 0, n = sizeof(b) - 1;
			gw_chunked_init(&c);
			c.tr = tr;
			while (i < n && !c.done) {
				ssize_t r = gw_chunked_decode(&c, b + i, step ? 1 : n - i, &off, &dl);
				CHECK(r > 0, "progress at %zu", i);
				if (r <= 0)
					break;
				i += (size_t)r;
			}
			CHECK(c.done && i == n - 4, "ends before NEXT (%zu)", i);
			CHECK(c.tr_len == sizeof(want) - 1 && memcmp(tr, want, c.tr_len) == 0, "kept '%.*s'",
			    (int)c.tr_len, tr);
		}
		struct gw_chunked c;
		size_t off, dl;
		gw_chunked_init(&c);
		CHECK(gw_chunked_decode(&c, "0\r\n\r\n", 5, &off, &dl) == 5 && c.done && c.tr_len == 0,
		    "no buffer: nothing kept");
	}
	END_CASE();

	BEGIN_CASE("chunked: one data span per call, remaining tracks the chunk");
	{
		struct gw_chunked c;
		size_t off, dl;
		static const char b[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
		gw_chunked_init(&c);
		ssize_t r = gw_chunked_decode(&c, b, sizeof(b) - 1, &off, &dl);
		CHECK(r == 6 && off == 3 && dl == 3 && memcmp(b + off, "abc", 3) == 0, "first r=%zd", r);
		r = gw_chunked_decode(&c, b + 6, sizeof(b) - 1 - 6, &off, &dl);
		CHECK(r == 7 && off == 5 && dl == 2, "second r=%zd off=%zu", r, off);
		r = gw_chunked_decode(&c, b + 13, sizeof(b) - 1 - 13, &off, &dl);
		CHECK(r == 7 && dl == 0 && c.done, "tail r=%zd", r);
		gw_chunked_init(&c);
		r = gw_chunked_decode(&c, "a\r\n01234", 8, &off, &dl);
		CHECK(r == 8 && dl == 5 && c.remaining == 5, "partial r=%zd rem=%llu", r,
		    (unsigned long long)c.remaining);
	}
	END_CASE();
}

/* ------------------------------------------------------------------ */
/* authority and helpers                                               */

struct au {
	const char *in;
	size_t len;
	uint16_t defport;
	int ok;
	const char *host;
	uint16_t port;
};

static const struct au auths[] = {
	{ S("example.com"), 80, 1, "example.com", 80 },
	{ S("example.com:8080"), 80, 1, "example.com", 8080 },
	{ S("EXAMPLE.com:1"), 0, 1, "EXAMPLE.com", 1 },
	{ S("a:65535"), 0, 1, "a", 65535 },
	{ S("a:00080"), 0, 1, "a", 80 },
	{ S("127.0.0.1"), 0, 1, "127.0.0.1", 0 },
	{ S("[::1]:8080"), 0, 1, "::1", 8080 },
	{ S("[::1]"), 443, 1, "::1", 443 },
	{ S("[::ffff:1.2.3.4]:1"), 0, 1, "::ffff:1.2.3.4", 1 },
	{ S("[2001:DB8:0:0:0:0:0:1]"), 0, 1, "2001:DB8:0:0:0:0:0:1", 0 },
	{ S("my_host-1.example."), 0, 1, "my_host-1.example.", 0 },
	{ S(""), 0, 0 },
	{ S(":80"), 0, 0 },
	{ S("u@h"), 0, 0 },
	{ S("u:p@h:80"), 0, 0 },
	{ S("h:0"), 0, 0 },
	{ S("h:65536"), 0, 0 },
	{ S("h:100000"), 0, 0 },
	{ S("h:+80"), 0, 0 },
	{ S("h:-1"), 0, 0 },
	{ S("h: 80"), 0, 0 },
	{ S("h:8o"), 0, 0 },
	{ S("h:"), 0, 0 },
	{ S("h:80:80"), 0, 0 },
	{ S("[::1"), 0, 0 },
	{ S("[]:80"), 0, 0 },
	{ S("[::1]x"), 0, 0 },
	{ S("[::1]:"), 0, 0 },
	{ S("[::g]"), 0, 0 },
	{ S("[1:2:3:4:5:6:7:8:9]"), 0, 0 },
	{ S("[fe80::1%25eth0]"), 0, 0 },
	{ S("[v1.x]"), 0, 0 },
	{ S("::1"), 0, 0 },
	{ S("h h"), 0, 0 },
	{ S("h\0"), 0, 0 },
	{ S("h/"), 0, 0 },
	{ S("h%41"), 0, 0 },
	{ S("h\xc3\xa9"), 0, 0 },
	{ S("h;x"), 0, 0 },
	/* ambiguous IPv4 literals (core/addr.h): read differently by different parsers */
	{ S("0177.0.0.1"), 0, 0 },
	{ S("127.0.0.01:80"), 0, 0 },
	{ S("127.1"), 0, 0 },
	{ S("127.0.1"), 0, 0 },
	{ S("2130706433"), 0, 0 },
	{ S("0x7f.0.0.1"), 0, 0 },
	{ S("0x7f000001"), 0, 0 },
	{ S("1.2.3.4.5"), 0, 0 },
	{ S("1.2.3.256"), 0, 0 },
	{ S("10.0.0.07"), 0, 0 },
	{ S("x.1"), 0, 0 },
	{ S("a..b"), 0, 0 },
	{ S(".a"), 0, 0 },
	{ S("0.0.0.0:80"), 0, 1, "0.0.0.0", 80 },
	{ S("127.0.0.1.:80"), 0, 1, "127.0.0.1.", 80 },
	{ S("0x7f.example"), 0, 1, "0x7f.example", 0 },
	{ S("1.2.3.4.example"), 0, 1, "1.2.3.4.example", 0 },
	{ S("[::]:80"), 0, 1, "::", 80 },
};

static void test_authority(void)
{
	char name[64];
	char longhost[300];
	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		const struct au *t = &auths[i];
		const char *host = NULL;
		size_t hl = 0;
		uint16_t port = 7;
		char *b = dup_exact(t->in, t->len);
		const char *err;
		snprintf(name, sizeof(name), "authority #%zu", i);
		BEGIN_CASE(name);
		err = gw_http1_parse_authority(b, t->len, t->defport, &host, &hl, &port);
		if (t->ok) {
			CHECK(err == NULL, "error %s", err);
			if (!err) {
				CHECK(host >= b && host + hl <= b + t->len, "host outside input");
				CHECK(hl == strlen(t->host) && memcmp(host, t->host, hl) == 0, "host '%.*s'",
				    (int)hl, host);
				CHECK(port == t->port, "port %u", port);
			}
		} else {
			CHECK(err != NULL, "accepted '%.*s'", (int)t->len, t->in);
		}
		END_CASE();
		free(b);
	}
	BEGIN_CASE("authority: host length cap 255");
	memset(longhost, 'a', sizeof(longhost));
	{
		const char *host;
		size_t hl;
		uint16_t port;
		CHECK(gw_http1_parse_authority(longhost, 255, 0, &host, &hl, &port) == NULL, "255 ok");
		CHECK(gw_http1_parse_authority(longhost, 256, 0, &host, &hl, &port) != NULL, "256 rejected");
	}
	END_CASE();
}

static void test_helpers(void)
{
	static const struct { const char *v; const char *tok; int want; } lh[] = {
		{ "close", "close", 1 },
		{ "Keep-Alive, Upgrade", "upgrade", 1 },
		{ " a ,\tb\t, c ", "b", 1 },
		{ ",,close,,", "close", 1 },
		{ "closed", "close", 0 },
		{ "xclose", "close", 0 },
		{ "close-ish, keep", "close", 0 },
		{ "", "close", 0 },
		{ "a b", "a", 0 },
		{ "chunked", "CHUNKED", 1 },
	};
	char name[64];
	for (size_t i = 0; i < sizeof(lh) / sizeof(lh[0]); i++) {
		snprintf(name, sizeof(name), "list_has #%zu", i);
		BEGIN_CASE(name);
		char *b = dup_exact(lh[i].v, strlen(lh[i].v));
		CHECK(gw_http1_list_has(b, strlen(lh[i].v), lh[i].tok) == lh[i].want, "'%s' has '%s'",
		    lh[i].v, lh[i].tok);
		free(b);
		END_CASE();
	}
	BEGIN_CASE("fields forbidden in trailers");
	{
		static const char *const no[] = { "Content-Length", "transfer-encoding", "HOST", "authorization",
			"Set-Cookie", "te", "trailer", "content-type", ":path", "" };
		static const char *const yes[] = { "x-checksum", "grpc-status", "grpc-message", "server-timing",
			"content-md5x", "tex", "digest" };
		for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
			CHECK(gw_http1_trailer_forbidden(no[i], strlen(no[i])), "'%s' forbidden", no[i]);
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
			CHECK(!gw_http1_trailer_forbidden(yes[i], strlen(yes[i])), "'%s' allowed", yes[i]);
	}
	END_CASE();
	BEGIN_CASE("method names");
	CHECK(strcmp(gw_http1_method_name(GW_M_GET), "GET") == 0, "GET");
	CHECK(strcmp(gw_http1_method_name(GW_M_CONNECT), "CONNECT") == 0, "CONNECT");
	CHECK(strcmp(gw_http1_method_name(GW_M_PATCH), "PATCH") == 0, "PATCH");
	CHECK(strcmp(gw_http1_method_name(GW_M_OTHER), "OTHER") == 0, "OTHER");
	CHECK(strcmp(gw_http1_method_name((enum gw_method)999), "OTHER") == 0, "out of range");
	END_CASE();
	BEGIN_CASE("find on an empty head");
	{
		struct gw_http_head h;
		memset(&h, 0, sizeof(h));
		CHECK(gw_http1_find(&h, "Host") == NULL, "NULL");
	}
	END_CASE();
}

int main(void)
{
	test_requests();
	test_request_misc();
	test_responses();
	test_chunked();
	test_authority();
	test_helpers();
	return check_done();
}
