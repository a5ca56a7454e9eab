/*
 * test_dlp_body: unit tests for forward/dlp_body (what DLP reads in a
 * request): the base64-run decoder (table, every split point), the
 * Content-Encoding parser, the zlib inflater (gzip, zlib, raw deflate,
 * members, truncated, garbage, the decoded-size cap, stop), the three views
 * and whole-body scans with their "not fully scanned" reasons.
 */
#include "forward/dlp_body.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

/* ---- helpers ---- */

static struct fwd_dlp *engine(void)
{
	static char *dv[] = { "credit_card", "iban", "us_ssn" };
	static struct conf_fwd_pattern pv[1] = { { .name = "codename", .regex = "(?i)\\bbluebird\\b" } };
	struct conf_fwd_dlp cf;
	struct conf_errors e;
	struct fwd_dlp *d;

	memset(&cf, 0, sizeof cf);
	cf.present = cf.enabled = 1;
	cf.detectors.v = dv;
	cf.detectors.n = 3;
	pv[0].src.file = "test.conf";
	pv[0].src.line = 1;
	cf.patterns = pv;
	cf.npatterns = 1;
	cf.src.file = "test.conf";
	cf.src.line = 1;
	conf_errors_init(&e);
	d = fwd_dlp_compile(&cf, &e);
	conf_errors_free(&e);
	return d;
}

/* decode s split at split (0: in one piece) and end; result into out */
static size_t b64(const char *s, size_t split, char *out, size_t cap, int url_only)
{
	struct fwd_b64 b;
	size_t n = strlen(s), o = 0, used;
	const uint8_t *p = (const uint8_t *)s;
	size_t parts[2] = { split ? split : n, split ? n - split : 0 };

	fwd_b64_init(&b, url_only);
	for (int k = 0; k < 2; k++) {
		size_t left = parts[k];
		while (left > 0) {
			o += fwd_b64_decode(&b, p, left, (uint8_t *)out + o, cap - o, &used);
			p += used;
			left -= used;
		}
	}
	o += fwd_b64_end(&b, (uint8_t *)out + o, cap - o);
	return o;
}

/* deflate src with windowBits wbits (31 gzip, 15 zlib, -15 raw) */
static size_t pack(const char *src, size_t n, int wbits, uint8_t *out, size_t cap)
{
	z_stream zs;

	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	zs.next_in = (Bytef *)(uintptr_t)src;
	zs.avail_in = (uInt)n;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	deflate(&zs, Z_FINISH);
	n = cap - zs.avail_out;
	deflateEnd(&zs);
	return n;
}

struct sink {
	char *buf;
	size_t n, cap;
	size_t stop_after;         /* 0: never stop */
};

static int sink_emit(void *arg, const uint8_t *p, size_t len)
{
	struct sink *s = arg;

	if (s->n + len <= s->cap)
		memcpy(s->buf + s->n, p, len);
	s->n += len;
	return s->stop_after && s->n >= s->stop_after;
}

/* ---- cases ---- */

static void test_b64_table(void)
{
	static const struct { const char *in, *out; } t[] = {
		{ "SGVsbG8gd29ybGQh", "Hello world!\n" },
		{ "aGVsbG8gd29ybGQ=", "hello world\n" },                 /* padding ends the run */
		{ "aGVsbG8gd29ybGQ", "hello world\n" },                  /* no padding */
		{ "SGVsbG8=", "" },                                       /* shorter than a run */
		{ "word and SGVsbG8gd29ybGQh.", "Hello world!\n" },       /* words are too short */
		{ "x=SGVsbG8gd29ybGQh&y=SGVsbG8gd29ybGQh", "Hello world!\nHello world!\n" },
		{ "SGVsbG8gd29y\r\nbGQh", "Hello world!\n" },            /* MIME line break */
		{ "SGVsbG8gd29yb\nGQh", "Hello wor\n" },                 /* a break elsewhere ends it */
		{ "------------", "\xfb\xef\xbe\xfb\xef\xbe\xfb\xef\xbe\n" },   /* URL-safe */
		{ "++++++++++++", "\xfb\xef\xbe\xfb\xef\xbe\xfb\xef\xbe\n" },
		{ "%2B%2b%2B%2B%2B%2B%2B%2B%2B%2B%2B%2B", "\xfb\xef\xbe\xfb\xef\xbe\xfb\xef\xbe\n" },
		{ "c3NuIDEyMy00NS02Nzg5ISE%3D", "ssn 123-45-6789!!\n" },
		{ "SGVsbG8gd29y%zzbGQh", "Hello wor\n" },               /* a bad escape ends a run */
		{ "SGVsbG8gd29y%", "Hello wor\n" },
		{ "", "" },
	};

	BEGIN_CASE("base64 runs: table, and the same at every split point");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char out[256];
		size_t n = b64(t[i].in, 0, out, sizeof out, 0), want = strlen(t[i].out);
		CHECK(n == want && memcmp(out, t[i].out, n) == 0, "%s: got %zu bytes, want %zu", t[i].in, n, want);
		for (size_t s = 1; s < strlen(t[i].in); s++) {
			char o2[256];
			size_t n2 = b64(t[i].in, s, o2, sizeof o2, 0);
			CHECK(n2 == n && memcmp(o2, out, n) == 0, "%s split at %zu", t[i].in, s);
		}
	}
	/* URL-safe only: '+' and '/' separate, so a run after "/x/" is in step */
	{
		char out[256];
		size_t n = b64("/x/SGVsbG8gd29ybGQh", 0, out, sizeof out, 1);
		CHECK(n == 13 && memcmp(out, "Hello world!\n", 13) == 0, "url-only after a path: %zu", n);
		n = b64("/x/SGVsbG8gd29ybGQh", 0, out, sizeof out, 0);
		CHECK(!(n == 13 && memcmp(out, "Hello world!\n", 13) == 0), "full alphabet: out of step");
	}
	END_CASE();
}

static void test_b64_bounded(void)
{
	/* a long run: output is 3/4 of the input, and a small out buffer
	 * only makes more calls */
	size_t n = 100000, used, o = 0, in_done = 0;
	char *text = malloc(n + 1);
	uint8_t out[64];
	struct fwd_b64 b;

	BEGIN_CASE("base64 runs: 3/4 output, small output buffers");
	for (size_t i = 0; i < n; i++)
		text[i] = "QUJD"[i % 4];   /* "ABC" repeated */
	text[n] = '\0';
	fwd_b64_init(&b, 0);
	while (in_done < n) {
		size_t k = fwd_b64_decode(&b, (const uint8_t *)text + in_done, n - in_done, out, sizeof out, &used);
		CHECK(k <= sizeof out, "wrote %zu", k);
		CHECK(used > 0, "no progress at %zu", in_done);
		for (size_t j = 0; j < k; j++)
			CHECK(out[j] == (uint8_t)"ABC"[(o + j) % 3], "byte %zu", o + j);
		o += k;
		in_done += used;
		if (used == 0)
			break;
	}
	o += fwd_b64_end(&b, out, sizeof out);
	CHECK(o == n / 4 * 3 + 1, "decoded %zu", o);
	free(text);
	END_CASE();
}

static void test_coding(void)
{
	static const struct { const char *v; enum fwd_coding c; } t[] = {
		{ "gzip", FWD_CODING_GZIP }, { "x-gzip", FWD_CODING_GZIP }, { " GZip ", FWD_CODING_GZIP },
		{ "deflate", FWD_CODING_DEFLATE }, { "identity", FWD_CODING_IDENTITY }, { "", FWD_CODING_IDENTITY },
		{ "identity, gzip", FWD_CODING_GZIP }, { "br", FWD_CODING_OTHER }, { "zstd", FWD_CODING_OTHER },
		{ "gzip, gzip", FWD_CODING_OTHER }, { "gzip,deflate", FWD_CODING_OTHER }, { "gzipx", FWD_CODING_OTHER },
	};

	BEGIN_CASE("Content-Encoding values");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		CHECK(fwd_dlp_coding(t[i].v, strlen(t[i].v)) == t[i].c, "'%s'", t[i].v);
	CHECK(fwd_dlp_coding(NULL, 0) == FWD_CODING_IDENTITY, "NULL");
	END_CASE();
}

static void test_inflate(void)
{
	static const char text[] = "The quick brown fox pays with 4111 1111 1111 1111 and jumps.";
	uint8_t z[4096], two[8192];
	char got[8192];
	struct sink s = { got, 0, sizeof got, 0 };
	uint64_t outlen;
	size_t n, n2;
	static const struct { enum fwd_coding c; int wbits; const char *what; } forms[] = {
		{ FWD_CODING_GZIP, 31, "gzip" }, { FWD_CODING_DEFLATE, 15, "zlib" },
		{ FWD_CODING_DEFLATE, -15, "raw deflate" },
	};

	BEGIN_CASE("inflate: gzip, zlib and raw deflate, members, truncated, garbage");
	for (size_t i = 0; i < 3; i++) {
		n = pack(text, sizeof text - 1, forms[i].wbits, z, sizeof z);
		s.n = 0;
		CHECK(fwd_dlp_inflate(forms[i].c, z, n, 1 << 20, sink_emit, &s, &outlen) == FWD_INFLATE_END,
		    "%s", forms[i].what);
		CHECK(s.n == sizeof text - 1 && memcmp(got, text, s.n) == 0 && outlen == s.n, "%s", forms[i].what);
		s.n = 0;
		CHECK(fwd_dlp_inflate(forms[i].c, z, n - 3, 1 << 20, sink_emit, &s, NULL) == FWD_INFLATE_SHORT,
		    "%s truncated", forms[i].what);
	}
	/* two gzip members are one body; other bytes after the end are not */
	n = pack("first ", 6, 31, two, sizeof two);
	n2 = pack("second", 6, 31, two + n, sizeof two - n);
	s.n = 0;
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, two, n + n2, 1 << 20, sink_emit, &s, NULL) == FWD_INFLATE_END &&
	    s.n == 12 && memcmp(got, "first second", 12) == 0, "members: %zu", s.n);
	memcpy(two + n, "tail", 4);
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, two, n + 4, 1 << 20, sink_emit, &s, NULL) == FWD_INFLATE_BAD,
	    "trailing bytes");
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, (const uint8_t *)"\x1f\x8b\x08\0\0\0\0\0\0\x03\xff\xff\xff",
	    13, 1 << 20, sink_emit, &s, NULL) == FWD_INFLATE_BAD, "garbage after a gzip header");
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, (const uint8_t *)"plain text, not gzip", 20, 1 << 20,
	    sink_emit, &s, NULL) == FWD_INFLATE_BAD, "not gzip");
	CHECK(fwd_dlp_inflate(FWD_CODING_DEFLATE, (const uint8_t *)"\xff\xff\xff\xff", 4, 1 << 20,
	    sink_emit, &s, NULL) == FWD_INFLATE_BAD, "deflate garbage");
	END_CASE();
}

static void test_inflate_cap(void)
{
	size_t big = 64u << 20, n;
	char *zeros = calloc(1, big);
	uint8_t *z = malloc(1 << 20);
	struct sink s = { NULL, 0, 0, 0 };
	uint64_t outlen;

	BEGIN_CASE("inflate: a 64 MiB bomb stops at the cap; emit can stop it");
	n = pack(zeros, big, 31, z, 1 << 20);
	CHECK(n > 0 && n < 200000, "packed to %zu", n);
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, z, n, 100000, sink_emit, &s, &outlen) == FWD_INFLATE_CAP,
	    "cap");
	CHECK(s.n == 100000 && outlen == 100000, "emitted %zu", s.n);
	s.n = 0;
	s.stop_after = 20000;
	CHECK(fwd_dlp_inflate(FWD_CODING_GZIP, z, n, 1 << 30, sink_emit, &s, NULL) == FWD_INFLATE_STOP,
	    "stop");
	CHECK(s.n >= 20000 && s.n < 20000 + 16384 + 1, "emitted %zu before the stop", s.n);
	free(zeros);
	free(z);
	END_CASE();
}

static void test_views(struct fwd_dlp *d)
{
	static const struct { const char *in, *view, *det; } t[] = {
		{ "pay 4111 1111 1111 1111 now", "", "credit_card" },
		{ "cc=4111%201111%201111%201111", "percent-decoded", "credit_card" },
		{ "cc=4111+1111+1111+1111", "percent-decoded", "credit_card" },
		{ "{\"f\":\"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx\"}", "base64-decoded", "credit_card" },
		{ "data=c3NuIDEyMy00NS02Nzg5ISE%3D", "base64-decoded", "us_ssn" },
		{ "/x/" "Ymx1ZWJpcmQgaXMgZ28=", "base64-decoded", "codename" },   /* "bluebird is go" */
		{ "nothing here 12345, SGVsbG8gd29ybGQh", NULL, NULL },
	};
	struct fwd_dlp_views *v = fwd_dlp_views_new(d);
	struct fwd_dlp_hit hit;
	const char *view;

	BEGIN_CASE("views: raw, percent-decoded, base64-decoded");
	CHECK(v != NULL, "new");
	for (size_t i = 0; v != NULL && i < sizeof t / sizeof t[0]; i++) {
		int r = fwd_dlp_views_buffer(v, t[i].in, strlen(t[i].in), &hit, &view);
		if (t[i].view == NULL) {
			CHECK(r == 0, "%s: hit %s", t[i].in, r == 1 ? hit.detector : "");
			continue;
		}
		CHECK(r == 1 && strcmp(view, t[i].view) == 0 && strcmp(hit.detector, t[i].det) == 0,
		    "%s: r=%d view '%s' det '%s'", t[i].in, r, r == 1 ? view : "", r == 1 ? hit.detector : "");
		CHECK(strstr(hit.redacted, "4111") == NULL, "%s: redacted %s", t[i].in, hit.redacted);
	}
	/* streaming: byte by byte gives the same */
	if (v != NULL) {
		static const char s[] = "{\"f\":\"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx\"}";
		int r = 0;
		fwd_dlp_views_reset(v);
		for (size_t i = 0; i < sizeof s - 1 && !r; i++)
			r = fwd_dlp_views_feed(v, s + i, 1);
		r = r || fwd_dlp_views_finish(v);
		CHECK(r == 1 && fwd_dlp_views_hit(v, &view) != NULL && strcmp(view, "base64-decoded") == 0,
		    "byte by byte");
	}
	fwd_dlp_views_free(v);
	END_CASE();
}

static void test_body(struct fwd_dlp *d)
{
	static const char secret[] = "report: iban DE89 3704 0044 0532 0130 00 end";
	struct fwd_dlp_views *v = fwd_dlp_views_new(d);
	struct fwd_dlp_hit hit;
	const char *view = "", *why = "";
	uint8_t z[4096];
	size_t n;
	char *big = malloc(300000);

	BEGIN_CASE("bodies: inflated hits, oversize and undecodable reasons");
	n = pack(secret, sizeof secret - 1, 31, z, sizeof z);
	CHECK(fwd_dlp_scan_body(v, (const char *)z, n, 1, FWD_CODING_GZIP, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_HIT && strcmp(view, "inflated") == 0 && strcmp(hit.detector, "iban") == 0,
	    "gzip: view %s", view);
	CHECK(fwd_dlp_scan_body(v, secret, sizeof secret - 1, 1, FWD_CODING_GZIP, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_HIT && strcmp(view, "") == 0, "says gzip, is not: read as sent");
	CHECK(fwd_dlp_scan_body(v, "clean", 5, 1, FWD_CODING_GZIP, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_PARTIAL && strcmp(why, "not valid gzip/deflate") == 0, "bad gzip: %s", why);
	CHECK(fwd_dlp_scan_body(v, "clean", 5, 1, FWD_CODING_OTHER, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_PARTIAL && strcmp(why, "Content-Encoding not decoded") == 0, "br: %s", why);
	CHECK(fwd_dlp_scan_body(v, "clean", 5, 1, FWD_CODING_IDENTITY, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_CLEAN, "clean");
	CHECK(fwd_dlp_scan_body(v, "clean", 5, 0, FWD_CODING_IDENTITY, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_PARTIAL && strcmp(why, "larger than max_scan_bytes") == 0, "cut: %s", why);
	memset(big, 'a', 300000);
	n = pack(big, 300000, 31, z, sizeof z);
	CHECK(fwd_dlp_scan_body(v, (const char *)z, n, 1, FWD_CODING_GZIP, 4096, &hit, &view, &why) ==
	    FWD_DLP_BODY_PARTIAL && strcmp(why, "decoded larger than max_scan_bytes") == 0, "bomb: %s", why);
	CHECK(fwd_dlp_scan_body(v, (const char *)z, n, 1, FWD_CODING_GZIP, 1 << 20, &hit, &view, &why) ==
	    FWD_DLP_BODY_CLEAN, "under the cap");
	fwd_dlp_views_free(v);
	free(big);
	END_CASE();
}

int main(void)
{
	struct fwd_dlp *d = engine();

	if (d == NULL) {
		fprintf(stderr, "cannot compile the test engine\n");
		return 1;
	}
	test_b64_table();
	test_b64_bounded();
	test_coding();
	test_inflate();
	test_inflate_cap();
	test_views(d);
	test_body(d);
	fwd_dlp_free(d);
	return check_done();
}
