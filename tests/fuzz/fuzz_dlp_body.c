/*
 * fuzz_dlp_body: libFuzzer target for forward/dlp_body (what DLP reads).
 * The first two input bytes choose two cut points; the rest is a stream.
 * It checks:
 *   - the views' streaming promise: the stream fed whole, in 2 and in 3
 *     pieces, and (short inputs) byte by byte, finds a hit or no hit alike
 *     (which view reports it may differ: views stop at their first hit);
 *   - the base64 decoder: the same output whatever the cuts, at most 3/4
 *     of the input plus one separator per run, never past its buffer;
 *   - inflate on the raw bytes (gzip and deflate): never more than the cap
 *     handed over, and a whole-body scan that never crashes.
 *
 * Build standalone:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Itests/fuzz \
 *       tests/fuzz/fuzz_dlp_body.c forward/dlp_body.c forward/dlp.c -lpcre2-8 -lz -o fuzz_dlp_body
 */
#include "forward/dlp_body.h"

#include <string.h>

#include "fuzz.h"

__attribute__((weak)) void conf_err(struct conf_errors *e, const char *file, int line,
    const char *key, const char *fmt, ...)
{
	(void)e; (void)file; (void)line; (void)key; (void)fmt;
}

static struct fwd_dlp *engine(void)
{
	static char *dv[] = { "credit_card", "iban", "us_ssn" };
	static struct conf_fwd_pattern pv[] = {
		{ "codename", "(?i)\\bbluebird\\b", { "fuzz", 1 } },
		{ "aws", "AKIA[0-9A-Z]{16}", { "fuzz", 2 } },
	};
	struct conf_fwd_dlp cf;

	memset(&cf, 0, sizeof cf);
	cf.present = cf.enabled = 1;
	cf.detectors.v = dv;
	cf.detectors.n = 3;
	cf.patterns = pv;
	cf.npatterns = 2;
	return fwd_dlp_compile(&cf, NULL);
}

static int views_run(struct fwd_dlp_views *v, const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts)
{
	size_t prev = 0;
	int rc = 0;

	fwd_dlp_views_reset(v);
	for (size_t i = 0; i <= ncuts && !rc; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		rc = fwd_dlp_views_feed(v, (const char *)p + prev, end - prev);
		prev = end;
	}
	return rc || fwd_dlp_views_finish(v);
}

static size_t b64_run(const uint8_t *p, size_t n, size_t cut, uint8_t *out, size_t cap, int url_only)
{
	struct fwd_b64 b;
	size_t o = 0, used, parts[2] = { cut, n - cut };

	fwd_b64_init(&b, url_only);
	for (int k = 0; k < 2; k++) {
		size_t left = parts[k];
		while (left > 0) {
			size_t w = fwd_b64_decode(&b, p, left, out + o, cap - o, &used);
			FZ_ASSERT(w <= cap - o && used <= left);
			o += w;
			p += used;
			left -= used;
			if (used == 0) {   /* out is full: the caller gave too little room */
				FZ_ASSERT(cap - o < 36);
				return o;
			}
		}
	}
	o += fwd_b64_end(&b, out + o, cap - o);
	return o;
}

static int count_emit(void *arg, const uint8_t *p, size_t len)
{
	(void)p;
	*(uint64_t *)arg += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fwd_dlp *d;
	static struct fwd_dlp_views *v;
	static uint8_t o1[100000], o2[100000];
	size_t n, c1, c2, cuts[2];
	int r1, r2;

	if (d == NULL) {
		d = engine();
		FZ_ASSERT(d != NULL);
		v = fwd_dlp_views_new(d);
		FZ_ASSERT(v != NULL);
	}
	if (size < 2 || size > 60000)
		return 0;
	n = size - 2;
	c1 = (size_t)data[0] * 257 % (n + 1);
	c2 = (size_t)data[1] * 263 % (n + 1);
	data += 2;

	r1 = views_run(v, data, n, NULL, 0);
	cuts[0] = c1;
	r2 = views_run(v, data, n, cuts, 1);
	FZ_ASSERT(r1 == r2);
	cuts[0] = c1 < c2 ? c1 : c2;
	cuts[1] = c1 < c2 ? c2 : c1;
	r2 = views_run(v, data, n, cuts, 2);
	FZ_ASSERT(r1 == r2);
	if (n <= 300) {
		size_t bytes[300];
		for (size_t i = 0; i + 1 < n; i++)
			bytes[i] = i + 1;
		r2 = views_run(v, data, n, bytes, n ? n - 1 : 0);
		FZ_ASSERT(r1 == r2);
	}

	for (int url_only = 0; url_only < 2; url_only++) {
		size_t k1 = b64_run(data, n, 0, o1, sizeof o1, url_only);
		size_t k2 = b64_run(data, n, c1, o2, sizeof o2, url_only);
		FZ_ASSERT(k1 == k2 && memcmp(o1, o2, k1) == 0);
		FZ_ASSERT(k1 <= n * 3 / 4 + n / FWD_B64_MIN_RUN + 2);
	}

	for (int c = FWD_CODING_GZIP; c <= FWD_CODING_DEFLATE; c++) {
		uint64_t got = 0, outlen = 0;
		struct fwd_dlp_hit hit;
		const char *view = NULL, *why = NULL;
		enum fwd_inflate_rc rc = fwd_dlp_inflate((enum fwd_coding)c, data, n, 5000, count_emit, &got, &outlen);
		FZ_ASSERT(got <= 5000 && got == outlen && rc != FWD_INFLATE_STOP);
		enum fwd_dlp_body_rc br = fwd_dlp_scan_body(v, (const char *)data, n, n > 0 && (data[0] & 1),
		    (enum fwd_coding)c, 4096, &hit, &view, &why);
		FZ_ASSERT(br != FWD_DLP_BODY_NOMEM);
		FZ_ASSERT(br != FWD_DLP_BODY_HIT || view != NULL);
		FZ_ASSERT(br != FWD_DLP_BODY_PARTIAL || why != NULL);
	}
	return 0;
}
