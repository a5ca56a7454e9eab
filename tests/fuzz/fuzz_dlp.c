/*
 * fuzz_dlp: libFuzzer target for forward/dlp.  The first three input bytes
 * choose the mode (bit 0: form), where the cuts go (bit 1: near the end),
 * whether the body is placed after ~4 KiB of filler (bit 2) and two cut
 * points; the rest is the body.
 * It checks the streaming promise: the body fed in 2 pieces, in 3 pieces
 * and (for short inputs) byte by byte must give the same answer as the
 * one-shot scan.  With built-in detectors only, the whole hit (detector,
 * redaction, offset) must agree; with bounded custom patterns added, the
 * hit/no-hit answer must agree.  Redactions never carry 5 digits in a row.
 *
 * Build standalone:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Itests/fuzz \
 *       tests/fuzz/fuzz_dlp.c forward/dlp.c -lpcre2-8 -o fuzz_dlp
 * Corpus replay without libFuzzer: link with tests/fuzz/replay_main.c.
 * It needs only conf_err() from conf/, for which weak stand-ins are given
 * below (the real ones win when libgw_conf is linked).
 */
#include "forward/dlp.h"

#include <string.h>

#include "fuzz.h"

__attribute__((weak)) void conf_err(struct conf_errors *e, const char *file, int line,
    const char *key, const char *fmt, ...)
{
	(void)e; (void)file; (void)line; (void)key; (void)fmt;
}

static struct fwd_dlp *engine(int with_patterns)
{
	static char *dv[] = { "credit_card", "iban", "us_ssn" };
	static struct conf_fwd_pattern pv[] = {
		{ "codename", "(?i)\\bbluebird\\b", { "fuzz", 1 } },
		{ "aws", "AKIA[0-9A-Z]{16}", { "fuzz", 2 } },
		{ "keyed", "(?<=key=)[a-z]{8}\\b", { "fuzz", 3 } },
		{ "anchored", "^Zq[0-9]", { "fuzz", 4 } },
	};
	struct conf_fwd_dlp cf;

	memset(&cf, 0, sizeof cf);
	cf.present = cf.enabled = 1;
	cf.detectors.v = dv;
	cf.detectors.n = 3;
	if (with_patterns) {
		cf.patterns = pv;
		cf.npatterns = sizeof pv / sizeof pv[0];
	}
	return fwd_dlp_compile(&cf, NULL);
}

static int run(const struct fwd_dlp *d, const uint8_t *p, size_t n, int form,
    const size_t *cuts, size_t ncuts, struct fwd_dlp_hit *out)
{
	struct fwd_dlp_scan *sc = fwd_dlp_scan_new(d, form ? FWD_DLP_FORM_URLENCODED : FWD_DLP_RAW);
	size_t prev = 0, i;
	int rc = 0;

	FZ_ASSERT(sc != NULL);
	for (i = 0; i <= ncuts && !rc; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		rc = fwd_dlp_scan_feed(sc, (const char *)p + prev, end - prev);
		prev = end;
	}
	if (!rc)
		rc = fwd_dlp_scan_finish(sc);
	if (rc)
		*out = *fwd_dlp_scan_hit(sc);
	fwd_dlp_scan_free(sc);
	return rc;
}

static void check_redaction(const struct fwd_dlp_hit *h)
{
	int run = 0;
	const char *s;

	for (s = h->redacted; *s; s++) {
		run = (*s >= '0' && *s <= '9') ? run + 1 : 0;
		FZ_ASSERT(run < 5 && *s >= 0x20 && *s <= 0x7e);
	}
}

static void compare(const struct fwd_dlp *d, int full, const uint8_t *p, size_t n, int form,
    size_t c1, size_t c2)
{
	struct fwd_dlp_hit h1, h2;
	size_t cuts[2];
	int r1, r2;

	r1 = fwd_dlp_scan_buffer(d, (const char *)p, n, form, &h1);
	FZ_ASSERT(r1 >= 0);
	if (r1)
		check_redaction(&h1);

#define AGREE() do { \
	FZ_ASSERT(r2 == r1); \
	FZ_ASSERT(!r1 || !full || (strcmp(h1.detector, h2.detector) == 0 && \
	    strcmp(h1.redacted, h2.redacted) == 0 && h1.offset == h2.offset)); \
} while (0)

	cuts[0] = c1;
	r2 = run(d, p, n, form, cuts, 1, &h2);
	AGREE();
	cuts[0] = c1 < c2 ? c1 : c2;
	cuts[1] = c1 < c2 ? c2 : c1;
	r2 = run(d, p, n, form, cuts, 2, &h2);
	AGREE();
	if (n <= 300) {
		size_t bytes[300], i;
		for (i = 0; i + 1 < n; i++)
			bytes[i] = i + 1;
		r2 = run(d, p, n, form, bytes, n ? n - 1 : 0, &h2);
		AGREE();
	}
#undef AGREE
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fwd_dlp *plain, *pats;
	static uint8_t padded[4096 + 65536];
	size_t n, c1, c2;
	unsigned h0, h1, h2;
	int form;

	if (plain == NULL) {
		plain = engine(0);
		pats = engine(1);
		FZ_ASSERT(plain != NULL && pats != NULL);
	}
	if (size < 3)
		return 0;
	h0 = data[0];
	h1 = data[1];
	h2 = data[2];
	form = h0 & 1;
	data += 3;
	n = size - 3;
	/* bit 2: put the body just before the scanner's internal 4 KiB step
	 * (filler first), so that short inputs also cross that boundary */
	if ((h0 & 4) && n <= 65536) {
		size_t pad = 4096 - 8 - (size_t)(h0 >> 3) % 32;
		memset(padded, form ? '+' : ' ', pad);
		memcpy(padded + pad, data, n);
		data = padded;
		n += pad;
	}
	c1 = n ? (size_t)h1 * 257 % (n + 1) : 0;
	c2 = n ? (size_t)h2 * 263 % (n + 1) : 0;
	if (h0 & 2) {            /* cut points near the end instead */
		c1 = n - c1 % (n < 41 ? n + 1 : 41);
		c2 = n - c2 % (n < 43 ? n + 1 : 43);
	}
	compare(plain, 1, data, n, form, c1, c2);
	compare(pats, 0, data, n, form, c1, c2);
	return 0;
}
