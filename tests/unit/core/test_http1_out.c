/*
 * test_http1_out: core/http1_out, the pure HTTP/1 writer: which fields are
 * hop-by-hop or named by Connection (never forwarded), framing fields,
 * header edits (deletions never unframe a body; additions in the order
 * made, never of framing or hop-by-hop fields), Via, chunk-size lines, the
 * head builder across its buffer, and the keep-alive rule of a head.  Heads
 * come from the real parser (core/http1), output is read back from a real
 * evbuffer and compared byte for byte.
 */
#include "core/http1_out.h"
#include "check.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct gw_hdr hdrbuf[64];
static const struct gw_http_limits lim = { 65536, 64, 8192 };

/* Parse the request head s (must be complete) into h. */
static int parse_req(const char *s, struct gw_http_head *h)
{
	memset(h, 0, sizeof *h);
	h->hdrs = hdrbuf;
	h->hdrs_cap = 64;
	return gw_http1_parse_request(s, strlen(s), &lim, h) == (ssize_t)strlen(s) ? 0 : -1;
}

/* The evbuffer's bytes as a NUL-terminated string (static; tests only). */
static const char *str(struct evbuffer *b)
{
	static char out[16384];
	size_t n = evbuffer_get_length(b);

	if (n >= sizeof out)
		n = sizeof out - 1;
	evbuffer_copyout(b, out, n);
	out[n] = '\0';
	return out;
}

static struct gw_hdr H(const char *name)
{
	struct gw_hdr h = { .name = name, .name_len = (uint32_t)strlen(name), .value = "", .value_len = 0 };
	return h;
}

static void test_hop_by_hop(void)
{
	static const struct { const char *name; int hop; } t[] = {
		{ "Connection", 1 }, { "connection", 1 }, { "Keep-Alive", 1 }, { "Proxy-Connection", 1 },
		{ "TE", 1 }, { "te", 1 }, { "Trailer", 1 }, { "Transfer-Encoding", 1 }, { "UPGRADE", 1 },
		{ "Content-Length", 0 }, { "Tee", 0 }, { "T", 0 }, { "Trailers", 0 }, { "Keep-Alives", 0 },
		{ "Upgrade-Insecure-Requests", 0 }, { "X-Connection", 0 }, { "Host", 0 }, { "Via", 0 },
		{ "Proxy-Authorization", 0 }, { "Transfer-Encodinx", 0 },
	};

	BEGIN_CASE("hop-by-hop fields");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct gw_hdr h = H(t[i].name);
		CHECK(gw_h1out_hop_by_hop(&h) == t[i].hop, "%s: want %d", t[i].name, t[i].hop);
	}
	END_CASE();

	BEGIN_CASE("framing fields");
	CHECK(gw_h1out_framing("Content-Length", 14), "content-length");
	CHECK(gw_h1out_framing("transfer-ENCODING", 17), "transfer-encoding");
	CHECK(!gw_h1out_framing("Content-Type", 12), "content-type");
	CHECK(!gw_h1out_framing("Content-Length", 13), "a prefix is another name");
	END_CASE();
}

static void test_conn_listed(void)
{
	struct gw_http_head h;

	BEGIN_CASE("Connection-listed fields");
	CHECK(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\nconnection: x-BAR\r\n"
	    "X-Foo: 1\r\nX-Bar: 2\r\nX-Baz: 3\r\nX-Fo: 4\r\n\r\n", &h) == 0, "parse");
	for (size_t i = 0; i < h.nhdrs; i++) {
		const struct gw_hdr *x = &h.hdrs[i];
		int want = gw_h1out_hdr_is(x, "x-foo") || gw_h1out_hdr_is(x, "x-bar");
		CHECK(gw_h1out_conn_listed(&h, x) == want, "%.*s: want %d", (int)x->name_len, x->name, want);
	}
	CHECK(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX-Foo: 1\r\n\r\n", &h) == 0, "parse 2");
	CHECK(!gw_h1out_conn_listed(&h, &h.hdrs[1]), "no Connection header: nothing listed");
	END_CASE();
}

/* The forwarding rule of the core's head writers: what is left of a head. */
static void forward_fields(struct gw_h1out *b, const struct gw_http_head *h, const struct gw_hdr_edit *e)
{
	for (size_t i = 0; i < h->nhdrs; i++) {
		const struct gw_hdr *x = &h->hdrs[i];
		if (gw_h1out_hop_by_hop(x) || gw_h1out_conn_listed(h, x) || gw_h1out_edit_deleted(e, x))
			continue;
		gw_h1out_hdr(b, x->name, x->name_len, x->value, x->value_len);
	}
}

static struct gw_hdr_edit *edit(struct gw_hdr_edit *list, struct gw_hdr_edit *e, const char *name,
    const char *value)
{
	e->name = name;
	e->nlen = strlen(name);
	e->value = value;
	e->vlen = value != NULL ? strlen(value) : 0;
	e->del = value == NULL;
	e->next = list;
	return e;
}

static void test_edits(void)
{
	struct gw_hdr_edit ev[8], *e = NULL;
	struct evbuffer *o = evbuffer_new();
	struct gw_h1out b = { .dst = o };
	struct gw_http_head h;

	/* made in this order; the list is newest first */
	e = edit(e, &ev[0], "X-A", "1");
	e = edit(e, &ev[1], "cookie", NULL);
	e = edit(e, &ev[2], "Content-Length", "99");      /* framing: never added */
	e = edit(e, &ev[3], "Connection", "close");       /* hop-by-hop: never added */
	e = edit(e, &ev[4], "X-C", "3");
	e = edit(e, &ev[5], "content-length", NULL);      /* framing: never deleted */
	e = edit(e, &ev[6], "Transfer-Encoding", NULL);

	BEGIN_CASE("edits: additions in order, never framing or hop-by-hop");
	gw_h1out_edits(&b, e);
	gw_h1out_flush(&b);
	CHECK(strcmp(str(o), "X-A: 1\r\nX-C: 3\r\n") == 0, "got '%s'", str(o));
	END_CASE();

	BEGIN_CASE("edits: deletions and lookups");
	{
		struct gw_hdr ck = H("Cookie"), cl = H("Content-Length"), te = H("transfer-encoding"),
		    xa = H("X-A");
		CHECK(gw_h1out_edit_deleted(e, &ck), "Cookie deleted (case-insensitive)");
		CHECK(!gw_h1out_edit_deleted(e, &cl), "Content-Length is never deleted");
		CHECK(!gw_h1out_edit_deleted(e, &te), "Transfer-Encoding is never deleted");
		CHECK(!gw_h1out_edit_deleted(e, &xa), "an addition deletes nothing");
		CHECK(!gw_h1out_edit_deleted(NULL, &ck), "no edits");
		CHECK(gw_h1out_edit_has(e, "x-a") && gw_h1out_edit_has(e, "X-C"), "additions found");
		CHECK(!gw_h1out_edit_has(e, "cookie"), "a deletion is not an addition");
		CHECK(!gw_h1out_edit_has(e, "x-b"), "absent");
	}
	END_CASE();

	BEGIN_CASE("forwarded head: hop-by-hop, Connection-listed and deleted fields removed");
	evbuffer_drain(o, evbuffer_get_length(o));
	CHECK(parse_req("POST /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\n"
	    "Keep-Alive: 5\r\nTE: trailers\r\nX-Secret: s\r\nCookie: c=1\r\nProxy-Connection: x\r\n"
	    "Content-Length: 3\r\nAccept: */*\r\nUpgrade: foo\r\n\r\n", &h) == 0, "parse");
	forward_fields(&b, &h, e);
	gw_h1out_via(&b, h.version_minor, "gw");
	gw_h1out_edits(&b, e);
	gw_h1out_flush(&b);
	CHECK(strcmp(str(o), "Host: h\r\nContent-Length: 3\r\nAccept: */*\r\nVia: 1.1 gw\r\n"
	    "X-A: 1\r\nX-C: 3\r\n") == 0, "got '%s'", str(o));
	END_CASE();
	evbuffer_free(o);
}

static void test_via(void)
{
	struct evbuffer *o = evbuffer_new();
	struct gw_h1out b = { .dst = o };

	BEGIN_CASE("Via");
	gw_h1out_via(&b, 1, "gatehouse");
	gw_h1out_via(&b, 0, "gw.example:3128");
	gw_h1out_via(&b, 1, "");
	gw_h1out_via(&b, 1, NULL);
	gw_h1out_flush(&b);
	CHECK(strcmp(str(o), "Via: 1.1 gatehouse\r\nVia: 1.0 gw.example:3128\r\n") == 0, "got '%s'", str(o));
	END_CASE();
	evbuffer_free(o);
}

static void test_chunk_lines(void)
{
	static const struct { size_t n; const char *line; } t[] = {
		{ 0, "0\r\n" }, { 1, "1\r\n" }, { 15, "f\r\n" }, { 16, "10\r\n" }, { 255, "ff\r\n" },
		{ 4096, "1000\r\n" }, { 65535, "ffff\r\n" }, { (size_t)0x123456789abcdefULL, "123456789abcdef\r\n" },
		{ SIZE_MAX, "ffffffffffffffff\r\n" },
	};
	struct evbuffer *o = evbuffer_new();

	BEGIN_CASE("chunk-size lines");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		evbuffer_drain(o, evbuffer_get_length(o));
		gw_h1out_chunk_line(o, t[i].n);
		CHECK(strcmp(str(o), t[i].line) == 0, "%zu: got '%s'", t[i].n, str(o));
	}
	END_CASE();
	evbuffer_free(o);
}

static void test_builder(void)
{
	struct evbuffer *o = evbuffer_new();
	struct gw_h1out b = { .dst = o };
	static char big[5000], want[16384];
	size_t wl = 0;

	BEGIN_CASE("head builder: numbers, and pieces across and beyond its buffer");
	GW_H1OUT_LIT(&b, "HTTP/1.1 ");
	gw_h1out_uint(&b, 200, 10);
	GW_H1OUT_LIT(&b, " OK\r\n");
	gw_h1out_uint(&b, 0, 10);
	gw_h1out_uint(&b, 0xbeef, 16);
	gw_h1out_uint(&b, 18446744073709551615ULL, 10);
	wl = (size_t)snprintf(want, sizeof want, "HTTP/1.1 200 OK\r\n0beef18446744073709551615");
	/* small pieces until the buffer must flush mid-way, then one larger
	 * than the buffer: the order must hold */
	for (int i = 0; i < 1000; i++) {
		gw_h1out_str(&b, "abc");
		memcpy(want + wl, "abc", 3);
		wl += 3;
	}
	memset(big, 'x', sizeof big);
	gw_h1out_hdr(&b, "X-Big", 5, big, sizeof big);
	memcpy(want + wl, "X-Big: ", 7);
	memcpy(want + wl + 7, big, sizeof big);
	memcpy(want + wl + 7 + sizeof big, "\r\n", 2);
	wl += 7 + sizeof big + 2;
	want[wl] = '\0';
	gw_h1out_flush(&b);
	CHECK(evbuffer_get_length(o) == wl, "length %zu, want %zu", evbuffer_get_length(o), wl);
	CHECK(strcmp(str(o), want) == 0, "bytes differ");
	gw_h1out_flush(&b);
	CHECK(evbuffer_get_length(o) == wl, "a second flush adds nothing");
	END_CASE();
	evbuffer_free(o);
}

static void test_keepalive(void)
{
	static const struct { const char *head; int keep; } t[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", 0 },
	};
	struct gw_http_head h;

	BEGIN_CASE("keep-alive of a head");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		CHECK(parse_req(t[i].head, &h) == 0, "parse %zu", i);
		CHECK(gw_h1out_keepalive(&h) == t[i].keep, "%zu: want %d", i, t[i].keep);
	}
	END_CASE();
}

int main(void)
{
	test_hop_by_hop();
	test_conn_listed();
	test_edits();
	test_via();
	test_chunk_lines();
	test_builder();
	test_keepalive();
	return check_done();
}
