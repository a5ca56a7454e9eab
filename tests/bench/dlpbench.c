/*
 * dlpbench: throughput of the DLP engine (forward/dlp) on clean bodies.
 * Generates 64 MiB of realistic text and JSON (numbers, timestamps, dates,
 * decimals, ids; no secrets), feeds it in 16 KiB reads like the core does,
 * and reports MB/s for: built-in detectors only (raw and form mode),
 * built-ins plus 2 custom patterns, and a worst case made of digit groups.
 *
 * Build and run (from the repository root):
 *   cc -std=c11 -O2 -D_GNU_SOURCE -I. tests/bench/dlpbench.c forward/dlp.c \
 *       -lpcre2-8 -o dlpbench && ./dlpbench [MiB [case]]
 * (case 1-6 runs one measurement only, for profiling).  Times are thread CPU
 * time, best of 5.
 */
#include "forward/dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* dlp.c reports compile errors through conf_err(); the real one wins when
 * libgw_conf is linked. */
__attribute__((weak)) void conf_err(struct conf_errors *e, const char *file, int line,
    const char *key, const char *fmt, ...)
{
	(void)e; (void)file; (void)line; (void)key; (void)fmt;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static const char *words[] = {
	"the", "customer", "order", "shipped", "invoice", "amount", "status", "pending",
	"delivery", "address", "street", "account", "balance", "report", "quarter", "meeting",
	"please", "review", "attached", "document", "update", "project", "release", "version",
};

static size_t gen(char *out, size_t cap)
{
	size_t n = 0;

	while (n + 512 < cap) {
		int k, w;
		switch (rnd() % 3) {
		case 0:   /* JSON record */
			n += (size_t)sprintf(out + n,
			    "{\"id\": %u, \"user\": \"user%u\", \"ts\": %llu, \"date\": \"2024-%02u-%02uT%02u:%02u:%02uZ\", "
			    "\"amount\": %u.%02u, \"qty\": %u, \"ratio\": 0.%u, \"tags\": [\"%s\", \"%s\"], "
			    "\"zip\": \"%05u\", \"phone\": \"+1 %03u %03u %04u\"},\n",
			    rnd() % 100000000, rnd() % 10000, 1700000000000ull + rnd() % 100000000,
			    1 + rnd() % 12, 1 + rnd() % 28, rnd() % 24, rnd() % 60, rnd() % 60,
			    rnd() % 100000, rnd() % 100, rnd() % 50, rnd(),
			    words[rnd() % 24], words[rnd() % 24], rnd() % 100000,
			    rnd() % 1000, rnd() % 1000, rnd() % 10000);
			break;
		case 1:   /* prose */
			for (k = 0; k < 40; k++) {
				w = (int)(rnd() % 24);
				n += (size_t)sprintf(out + n, "%s%s", words[w], k % 13 == 12 ? ". " : " ");
			}
			n += (size_t)sprintf(out + n, "Ref %u, %u items on %u/%u.\n",
			    rnd() % 1000000, rnd() % 100, 1 + rnd() % 12, 1 + rnd() % 28);
			break;
		default:  /* form-ish */
			n += (size_t)sprintf(out + n,
			    "name=%s+%s&qty=%u&price=%u.%02u&note=%s%%20%s&session=s%08x%08x&\n",
			    words[rnd() % 24], words[rnd() % 24], rnd() % 100, rnd() % 1000,
			    rnd() % 100, words[rnd() % 24], words[rnd() % 24], rnd(), rnd());
			break;
		}
	}
	return n;
}

/* CPU time of this thread: the build machines are shared, wall time is noisy */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench(const char *label, const struct fwd_dlp *d, const char *buf, size_t n,
    enum fwd_dlp_mode mode, int reps)
{
	double best = 1e30;
	int r;

	for (r = 0; r < reps; r++) {
		struct fwd_dlp_scan *sc = fwd_dlp_scan_new(d, mode);
		double t0 = now(), dt;
		size_t off;
		int hit = 0;

		for (off = 0; off < n && !hit; off += 16384)
			hit = fwd_dlp_scan_feed(sc, buf + off, n - off < 16384 ? n - off : 16384);
		if (!hit)
			hit = fwd_dlp_scan_finish(sc);
		dt = now() - t0;
		if (hit) {
			const struct fwd_dlp_hit *h = fwd_dlp_scan_hit(sc);
			printf("  %s: unexpected hit %s %s at %llu\n", label, h->detector, h->redacted,
			    (unsigned long long)h->offset);
		}
		fwd_dlp_scan_free(sc);
		if (dt < best)
			best = dt;
	}
	printf("  %-44s %8.0f MB/s\n", label, (double)n / best / 1e6);
	return (double)n / best / 1e6;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 64, cap = mib << 20, n, i;
	int only = argc > 2 ? atoi(argv[2]) : 0;
	char *buf = malloc(cap), *worst = malloc(cap);
	static char *dv[] = { "credit_card", "iban", "us_ssn" };
	static struct conf_fwd_pattern pv[] = {
		{ "codename", "(?i)\\bbluebird\\b", { "bench", 1 } },
		{ "aws-key", "AKIA[0-9A-Z]{16}", { "bench", 2 } },
	};
	struct conf_fwd_dlp cf;
	struct fwd_dlp *b, *p;

	if (buf == NULL || worst == NULL)
		return 1;
	n = gen(buf, cap);
	memset(&cf, 0, sizeof cf);
	cf.detectors.v = dv;
	cf.detectors.n = 3;
	b = fwd_dlp_compile(&cf, NULL);
	cf.patterns = pv;
	cf.npatterns = 2;
	p = fwd_dlp_compile(&cf, NULL);
	if (b == NULL || p == NULL)
		return 1;
	printf("dlpbench: %zu bytes of generated text/JSON, 16 KiB feeds, best of 5 (CPU time)\n", n);
	if (!only || only == 1)
		bench("built-ins (card, iban, ssn), raw", b, buf, n, FWD_DLP_RAW, 5);
	if (!only || only == 2)
		bench("built-ins, form-urlencoded decoding", b, buf, n, FWD_DLP_FORM_URLENCODED, 5);
	if (!only || only == 3)
		bench("built-ins + 2 custom patterns, raw", p, buf, n, FWD_DLP_RAW, 5);
	if (!only || only == 4)
		bench("built-ins + 2 custom patterns, form", p, buf, n, FWD_DLP_FORM_URLENCODED, 5);
	/* worst case for the built-ins: "1 2 3 ..." single-digit groups, every
	 * byte in a candidate (Luhn-valid windows are possible, so stop at hit) */
	for (i = 0; i < n; i++)
		worst[i] = (i & 1) ? ' ' : (char)('0' + (i / 2) % 9 % 3);
	if (!only || only == 5)
		bench("worst case: single-digit groups \"0 1 2 0 ...\"", b, worst, n, FWD_DLP_RAW, 1);
	for (i = 0; i < n; i++)
		worst[i] = (char)('0' + i % 10);
	if (!only || only == 6)
		bench("worst case: one long digit run", b, worst, n, FWD_DLP_RAW, 1);
	fwd_dlp_free(b);
	fwd_dlp_free(p);
	free(buf);
	free(worst);
	return 0;
}
