/*
 * test_dlp: unit tests for forward/dlp (the DLP engine): each built-in
 * detector's positives and negatives, redaction, form decoding, custom
 * patterns, and the streaming guarantee (every split point, byte-at-a-time
 * feeds) checked against the one-shot result.
 */
#include "forward/dlp.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- helpers ---- */

static struct fwd_dlp *make(const char *detectors, const char *const *pats, size_t npats,
    struct conf_errors *errs)
{
	static char *dv[8];
	static char buf[128];
	static struct conf_fwd_pattern pv[8];
	struct conf_fwd_dlp cf;
	size_t nd = 0, i;
	char *save = NULL, *tok;

	memset(&cf, 0, sizeof cf);
	snprintf(buf, sizeof buf, "%s", detectors);
	for (tok = strtok_r(buf, ",", &save); tok && nd < 8; tok = strtok_r(NULL, ",", &save))
		dv[nd++] = tok;
	cf.present = cf.enabled = 1;
	cf.detectors.v = dv;
	cf.detectors.n = nd;
	for (i = 0; i < npats && i < 8; i++) {
		pv[i].name = (char *)pats[2 * i];
		pv[i].regex = (char *)pats[2 * i + 1];
		pv[i].src.file = "test.conf";
		pv[i].src.line = (int)(10 + i);
	}
	cf.patterns = pv;
	cf.npatterns = npats;
	cf.src.file = "test.conf";
	cf.src.line = 7;
	return fwd_dlp_compile(&cf, errs);
}

static struct fwd_dlp *builtins(void)
{
	struct conf_errors e;
	struct fwd_dlp *d;

	conf_errors_init(&e);
	d = make("credit_card,iban,us_ssn", NULL, 0, &e);
	conf_errors_free(&e);
	return d;
}

/* one-shot; returns the detector name or "" */
static const char *scan1(const struct fwd_dlp *d, const char *s, int form, struct fwd_dlp_hit *h)
{
	static struct fwd_dlp_hit tmp;
	struct fwd_dlp_hit *o = h ? h : &tmp;
	int rc = fwd_dlp_scan_buffer(d, s, strlen(s), form, o);
	return rc == 1 ? o->detector : "";
}

/* feed in pieces at the given cut points (sorted, within len) */
static int scan_cuts(const struct fwd_dlp *d, const char *s, size_t len, int form,
    const size_t *cuts, size_t ncuts, struct fwd_dlp_hit *h)
{
	struct fwd_dlp_scan *sc = fwd_dlp_scan_new(d, form ? FWD_DLP_FORM_URLENCODED : FWD_DLP_RAW);
	size_t prev = 0, i;
	int rc = 0;

	for (i = 0; i <= ncuts && !rc; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		rc = fwd_dlp_scan_feed(sc, s + prev, end - prev);
		prev = end;
	}
	if (!rc)
		rc = fwd_dlp_scan_finish(sc);
	if (rc && h)
		*h = *fwd_dlp_scan_hit(sc);
	fwd_dlp_scan_free(sc);
	return rc;
}

static int same_hit(const struct fwd_dlp_hit *a, const struct fwd_dlp_hit *b)
{
	return strcmp(a->detector, b->detector) == 0 && strcmp(a->redacted, b->redacted) == 0 &&
	    a->offset == b->offset && a->kind == b->kind;
}

static void luhn_fix(char *num)   /* set the last digit so that num is Luhn-valid */
{
	size_t n = strlen(num), i;
	unsigned sum = 0;

	for (i = 0; i + 1 < n; i++) {
		unsigned v = (unsigned)(num[n - 2 - i] - '0');
		if ((i & 1) == 0) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	num[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

static int digits_in(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s >= '0' && *s <= '9';
	return n;
}

/* ---- cases ---- */

static void test_compile(void)
{
	struct conf_errors e;
	struct fwd_dlp *d;
	const char *good[] = { "codename", "(?i)\\bbluebird\\b", "aws", "AKIA[0-9A-Z]{16}" };
	const char *bad[] = { "broken", "abc(def", "empty", "x*", "ok", "fine", "lb",
		"(?<=a{70})b" };

	BEGIN_CASE("compile");
	conf_errors_init(&e);
	d = make("credit_card,iban,us_ssn", good, 2, &e);
	CHECK(d != NULL, "good config compiles");
	CHECK(e.n == 0, "no errors");
	CHECK(d && fwd_dlp_active(d), "active");
	fwd_dlp_free(d);

	d = make("credit_card,passport", NULL, 0, &e);
	CHECK(d == NULL, "unknown detector refused");
	CHECK(e.n == 1 && strstr(e.msgs[0], "test.conf:7:") && strstr(e.msgs[0], "passport"),
	    "error names file:line and detector: %s", e.n ? e.msgs[0] : "-");
	conf_errors_free(&e);

	conf_errors_init(&e);
	d = make("", bad, 4, &e);
	CHECK(d == NULL, "bad patterns refused");
	CHECK(e.n == 3, "three errors, got %zu", e.n);
	CHECK(e.n >= 1 && strstr(e.msgs[0], "test.conf:10:") && strstr(e.msgs[0], "offset 7") &&
	    strstr(e.msgs[0], "broken"), "regex error with line, offset: %s", e.n ? e.msgs[0] : "-");
	CHECK(e.n >= 2 && strstr(e.msgs[1], "test.conf:11:") && strstr(e.msgs[1], "empty string"),
	    "empty-match refused: %s", e.n > 1 ? e.msgs[1] : "-");
	CHECK(e.n >= 3 && strstr(e.msgs[2], "test.conf:13:") && strstr(e.msgs[2], "lookbehind"),
	    "long lookbehind refused: %s", e.n > 2 ? e.msgs[2] : "-");
	conf_errors_free(&e);

	conf_errors_init(&e);
	d = make("", NULL, 0, &e);
	CHECK(d != NULL && !fwd_dlp_active(d), "nothing enabled is valid and inactive");
	CHECK(d && fwd_dlp_scan_buffer(d, "4111111111111111", 16, 0, NULL) == 0, "no detectors, no hit");
	fwd_dlp_free(d);
	fwd_dlp_free(NULL);
	conf_errors_free(&e);
	END_CASE();
}

static void test_cards(void)
{
	static const char *valid[] = {
		"4111111111111111", "4012888888881881", "4222222222222",     /* Visa 16, 16, 13 */
		"5555555555554444", "5105105105105100", "2223003122003222",  /* Mastercard */
		"378282246310005", "371449635398431",                        /* Amex */
		"6011111111111117", "6011000990139424",                      /* Discover */
		"3530111333300000", "3566002020360505",                      /* JCB */
		"30569309025904", "38520000023237",                          /* Diners */
		"6200000000000005",                                          /* UnionPay */
	};
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_hit h;
	char buf[128], grouped[64], v19[32];
	size_t i;

	BEGIN_CASE("credit_card: brands, separators, redaction");
	for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		const char *n = valid[i];
		size_t len = strlen(n), k, o;

		snprintf(buf, sizeof buf, "pay with %s today", n);
		CHECK(strcmp(scan1(d, buf, 0, &h), "credit_card") == 0, "plain %s", n);
		CHECK(h.kind == FWD_DLP_CREDIT_CARD && h.offset == 9, "offset %s", n);
		CHECK(strstr(h.redacted, n + len - 4) != NULL && digits_in(h.redacted) == 4 &&
		    strstr(h.redacted, n) == NULL, "redacted %s -> %s", n, h.redacted);
		/* groups of 4 with spaces, then dashes */
		for (k = 0, o = 0; k < len; k++) {
			if (k && k % 4 == 0)
				grouped[o++] = ' ';
			grouped[o++] = n[k];
		}
		grouped[o] = '\0';
		snprintf(buf, sizeof buf, "{\"cc\":\"%s\"}", grouped);
		CHECK(strcmp(scan1(d, buf, 0, &h), "credit_card") == 0, "spaces %s", grouped);
		for (k = 0; k < o; k++)
			if (grouped[k] == ' ')
				grouped[k] = '-';
		CHECK(strcmp(scan1(d, grouped, 0, &h), "credit_card") == 0, "dashes %s", grouped);
	}
	CHECK(strcmp(scan1(d, "4111 1111 1111 1111", 0, &h), "credit_card") == 0 &&
	    strcmp(h.redacted, "****-****-****-1111") == 0, "redaction format: %s", h.redacted);
	CHECK(strcmp(scan1(d, "378282246310005", 0, &h), "credit_card") == 0 &&
	    strcmp(h.redacted, "***-****-****-0005") == 0, "amex redaction: %s", h.redacted);
	/* Amex 4-6-5 grouping and mixed separators */
	CHECK(*scan1(d, "3782 822463 10005", 0, NULL), "amex 4-6-5");
	CHECK(*scan1(d, "4111-1111 1111-1111", 0, NULL), "mixed separators");
	/* 19-digit Visa */
	strcpy(v19, "4111111111111111110");
	luhn_fix(v19);
	CHECK(*scan1(d, v19, 0, NULL), "19-digit visa %s", v19);
	CHECK(strcmp(scan1(d, v19, 0, &h), "credit_card") == 0 &&
	    strncmp(h.redacted, "***-****-****-****-", 19) == 0 &&
	    strcmp(h.redacted + 19, v19 + 15) == 0,
	    "19 redaction %s", h.redacted);
	/* at the very start and end of input, in form fields, after punctuation */
	CHECK(*scan1(d, "4111111111111111", 0, NULL), "whole input");
	CHECK(*scan1(d, "a=4111111111111111&b=2", 0, NULL), "form field raw");
	CHECK(*scan1(d, "(4111111111111111)", 0, NULL), "parens");
	CHECK(*scan1(d, "4111111111111111.", 0, NULL), "sentence end");
	CHECK(*scan1(d, "card 4111 1111 1111 1111 123 cvv", 0, NULL), "card then cvv group");
	CHECK(*scan1(d, "ref 1234 4111 1111 1111 1111", 0, NULL), "group before card");
	END_CASE();

	BEGIN_CASE("credit_card: negatives");
	CHECK(!*scan1(d, "4111111111111112", 0, NULL), "Luhn-invalid passes");
	CHECK(!*scan1(d, "4111 1111 1111 1112", 0, NULL), "Luhn-invalid grouped passes");
	CHECK(!*scan1(d, "1234567812345670", 0, NULL), "Luhn-valid, unknown IIN passes");
	CHECK(!*scan1(d, "7111111111111111111", 0, NULL), "unknown IIN 19");
	CHECK(!*scan1(d, "41111111111111111", 0, NULL), "17-digit run");
	CHECK(!*scan1(d, "04111111111111111", 0, NULL), "leading digit");
	CHECK(!*scan1(d, "411111111111111100", 0, NULL), "trailing digits");
	CHECK(!*scan1(d, "order 94111111111111111 x", 0, NULL), "longer run in text");
	CHECK(!*scan1(d, "x4111111111111111", 0, NULL), "letter before");
	CHECK(!*scan1(d, "4111111111111111x", 0, NULL), "letter after");
	CHECK(!*scan1(d, "0.4111111111111111", 0, NULL), "decimal fraction");
	CHECK(!*scan1(d, "4111111111111111.5", 0, NULL), "decimal integer part");
	CHECK(!*scan1(d, "4111  1111 1111 1111", 0, NULL), "double space breaks groups");
	CHECK(!*scan1(d, "4111.1111.1111.1111", 0, NULL), "dots are not separators");
	CHECK(*scan1(d, "5555555555554444 1", 0, NULL), "mc followed by group still found");
	CHECK(!*scan1(d, "4111111111111", 0, NULL), "13 ones is Luhn-invalid");
	CHECK(*scan1(d, "378282246310005 4", 0, NULL), "amex then group");
	CHECK(*scan1(d, "5555 5555 5555 4444 ", 0, NULL), "trailing space");
	CHECK(!*scan1(d, "37828224631000", 0, NULL), "amex too short");
	CHECK(!*scan1(d, "4111111111111111111", 0, NULL), "19 ones Luhn-invalid");
	CHECK(!*scan1(d, "", 0, NULL), "empty");
	CHECK(!*scan1(d, "1712345678901234 1699999999999", 0, NULL), "ids");
	END_CASE();
	fwd_dlp_free(d);
}

static void test_iban(void)
{
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_hit h;
	static const char *valid[] = {
		"DE89370400440532013000", "DE89 3704 0044 0532 0130 00",
		"GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32",
		"gb82west12345698765432", "NO9386011117947", "BE68539007547034",
		"FR1420041010050500013M02606", "LC55HEMM000100010012001200023015",
		"RU0204452560040702810412345678901",
	};
	char buf[128];
	size_t i;

	BEGIN_CASE("iban");
	for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		snprintf(buf, sizeof buf, "IBAN: %s, thanks", valid[i]);
		CHECK(strcmp(scan1(d, buf, 0, &h), "iban") == 0, "valid %s", valid[i]);
		CHECK(h.offset == 6, "offset %s", valid[i]);
		CHECK(strncasecmp(h.redacted, valid[i], 2) == 0 && strstr(h.redacted, "*") &&
		    digits_in(h.redacted) <= 4, "redacted %s", h.redacted);
		CHECK(*scan1(d, valid[i], 0, NULL), "alone %s", valid[i]);
	}
	CHECK(strcmp(scan1(d, "DE89370400440532013000", 0, &h), "iban") == 0 &&
	    strcmp(h.redacted, "DE****************3000") == 0, "redaction %s", h.redacted);
	CHECK(!*scan1(d, "DE89370400440532013001", 0, NULL), "wrong check (mod 97)");
	CHECK(!*scan1(d, "GB82WEST12345698765433", 0, NULL), "wrong check GB");
	CHECK(!*scan1(d, "GB83WEST12345698765432", 0, NULL), "wrong check digits");
	CHECK(!*scan1(d, "DE8937040044053201300", 0, NULL), "too short for DE");
	CHECK(!*scan1(d, "DE893704004405320130001", 0, NULL), "too long for DE");
	CHECK(!*scan1(d, "DE89 3704 0044 0532 0130 001", 0, NULL), "too long grouped");
	CHECK(!*scan1(d, "XDE89370400440532013000", 0, NULL), "letter before");
	CHECK(!*scan1(d, "1DE89370400440532013000", 0, NULL), "digit before");
	CHECK(!*scan1(d, "DE89370400440532013000X", 0, NULL), "letter after");
	CHECK(!*scan1(d, "DE8937 0400440532013000", 0, NULL), "space not at 4");
	CHECK(!*scan1(d, "DE89  3704 0044 0532 0130 00", 0, NULL), "double space");
	CHECK(!*scan1(d, "XX89370400440532013000", 0, NULL), "unknown country");
	CHECK(!*scan1(d, "DEX9370400440532013000", 0, NULL), "letter check digit");
	CHECK(!*scan1(d, "DE8X370400440532013000", 0, NULL), "letter 2nd check digit");
	CHECK(*scan1(d, "DE89 3704 0044 0532 0130 00 1234", 0, NULL), "followed by a group");
	CHECK(*scan1(d, "GB DE89 3704 0044 0532 0130 00", 0, NULL), "country word before");
	CHECK(*scan1(d, "GB12 DE89 3704 0044 0532 0130 00", 0, NULL), "overlapping candidates");
	CHECK(*scan1(d, "iban=DE89370400440532013000&x=1", 1, NULL), "form field");
	/* mod-97 valid but letters where the country's BBAN has digits (hex ids) */
	CHECK(!*scan1(d, "session=be6812ab34cd56ef", 0, NULL), "hex id is not a Belgian IBAN");
	CHECK(!*scan1(d, "DE700a1234567890123456", 0, NULL), "letter in a numeric BBAN");
	END_CASE();
	fwd_dlp_free(d);
}

static void test_ssn(void)
{
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_hit h;

	BEGIN_CASE("us_ssn");
	CHECK(strcmp(scan1(d, "ssn 123-45-6789.", 0, &h), "us_ssn") == 0, "dashes");
	CHECK(strcmp(h.redacted, "***-**-6789") == 0 && h.offset == 4, "redaction %s", h.redacted);
	CHECK(strcmp(scan1(d, "123 45 6789", 0, NULL), "us_ssn") == 0, "spaces");
	CHECK(*scan1(d, "001-01-0001", 0, NULL), "lowest");
	CHECK(*scan1(d, "665-99-9999", 0, NULL), "665");
	CHECK(*scan1(d, "667-12-3456", 0, NULL), "667");
	CHECK(*scan1(d, "899-12-3456", 0, NULL), "899");
	CHECK(*scan1(d, "123-45-6789 987-65-4321", 0, NULL), "two SSNs");
	CHECK(*scan1(d, "\"123-45-6789\"", 0, NULL), "quoted");
	CHECK(!*scan1(d, "123456789", 0, NULL), "plain 9 digits not reported");
	CHECK(!*scan1(d, "000-12-3456", 0, NULL), "area 000");
	CHECK(!*scan1(d, "666-12-3456", 0, NULL), "area 666");
	CHECK(!*scan1(d, "900-12-3456", 0, NULL), "area 900");
	CHECK(!*scan1(d, "999-12-3456", 0, NULL), "area 999");
	CHECK(!*scan1(d, "123-00-4567", 0, NULL), "group 00");
	CHECK(!*scan1(d, "123-45-0000", 0, NULL), "serial 0000");
	CHECK(!*scan1(d, "123-45 6789", 0, NULL), "mixed separators");
	CHECK(!*scan1(d, "123--45-6789", 0, NULL), "double dash");
	CHECK(!*scan1(d, "1-123-45-6789", 0, NULL), "longer dashed run before");
	CHECK(!*scan1(d, "123-45-6789-1", 0, NULL), "longer dashed run after");
	CHECK(!*scan1(d, "0123-45-6789", 0, NULL), "4-digit area");
	CHECK(!*scan1(d, "123-45-67890", 0, NULL), "5-digit serial");
	CHECK(!*scan1(d, "1 123 45 6789", 0, NULL), "space run before");
	CHECK(!*scan1(d, "123 45 6789 1", 0, NULL), "space run after");
	CHECK(!*scan1(d, "a123-45-6789", 0, NULL), "letter before");
	CHECK(!*scan1(d, "123-45-6789z", 0, NULL), "letter after");
	CHECK(!*scan1(d, "1.123-45-6789", 0, NULL), "decimal before");
	CHECK(!*scan1(d, "2024-01-15 12:30", 0, NULL), "date");
	END_CASE();
	fwd_dlp_free(d);
}

static void test_detector_selection(void)
{
	struct conf_errors e;
	struct fwd_dlp *d;

	BEGIN_CASE("detector selection");
	conf_errors_init(&e);
	d = make("iban", NULL, 0, &e);
	CHECK(d != NULL, "compiles");
	CHECK(!*scan1(d, "4111111111111111 123-45-6789", 0, NULL), "card and ssn off");
	CHECK(*scan1(d, "DE89370400440532013000", 0, NULL), "iban on");
	fwd_dlp_free(d);
	d = make("us_ssn", NULL, 0, &e);
	CHECK(!*scan1(d, "4111111111111111 DE89370400440532013000", 0, NULL), "only ssn");
	CHECK(*scan1(d, "123-45-6789", 0, NULL), "ssn on");
	fwd_dlp_free(d);
	d = make("credit_card", NULL, 0, &e);
	CHECK(!*scan1(d, "123-45-6789 DE89370400440532013000", 0, NULL), "only card");
	CHECK(*scan1(d, "4111111111111111", 0, NULL), "card on");
	fwd_dlp_free(d);
	conf_errors_free(&e);
	END_CASE();
}

static void test_patterns(void)
{
	const char *pats[] = {
		"codename", "(?i)\\bbluebird\\b",
		"aws", "AKIA[0-9A-Z]{16}",
		"anchored", "^SECRET:",
		"keyed", "(?<=apikey=)[A-Za-z0-9]{20}",
		"long", "BEGIN[a-z]{200}END",
	};
	struct conf_errors e;
	struct fwd_dlp *d;
	struct fwd_dlp_hit h;
	char big[400];

	BEGIN_CASE("custom patterns");
	conf_errors_init(&e);
	d = make("credit_card", pats, 5, &e);
	CHECK(d != NULL, "compiles: %s", e.n ? e.msgs[0] : "");
	CHECK(strcmp(scan1(d, "Project BlueBird launches", 0, &h), "codename") == 0, "(?i) word");
	CHECK(h.kind == FWD_DLP_PATTERN && strcmp(h.redacted, "Bl***(8)") == 0 && h.offset == 8,
	    "redaction %s offset %llu", h.redacted, (unsigned long long)h.offset);
	CHECK(strcmp(scan1(d, "BLUEBIRD", 0, NULL), "codename") == 0, "whole input");
	CHECK(!*scan1(d, "bluebirds", 0, NULL), "\\b at the end");
	CHECK(!*scan1(d, "xbluebird", 0, NULL), "\\b at the start");
	CHECK(strcmp(scan1(d, "key AKIAIOSFODNN7EXAMPLE!", 0, &h), "aws") == 0, "aws key");
	CHECK(strstr(h.redacted, "IOSFODNN") == NULL && strcmp(h.redacted, "AK***(20)") == 0,
	    "aws redaction %s", h.redacted);
	CHECK(*scan1(d, "SECRET: x", 0, NULL), "anchored at start");
	CHECK(!*scan1(d, "a SECRET: x", 0, NULL), "anchored not in the middle");
	CHECK(strcmp(scan1(d, "apikey=abcdefghij0123456789", 0, &h), "keyed") == 0, "lookbehind");
	CHECK(!*scan1(d, "apikex=abcdefghij0123456789", 0, NULL), "lookbehind fails");
	memset(big, 'q', sizeof big);
	memcpy(big + 10, "BEGIN", 5);
	memcpy(big + 215, "END", 3);
	big[300] = '\0';
	CHECK(strcmp(scan1(d, big, 0, &h), "long") == 0, "200-byte match");
	CHECK(strcmp(h.redacted, "BE***(208)") == 0, "long redaction %s", h.redacted);
	fwd_dlp_free(d);
	conf_errors_free(&e);
	END_CASE();
}

static void test_form(void)
{
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_hit h;

	BEGIN_CASE("form-urlencoded decoding");
	CHECK(strcmp(scan1(d, "card=4111+1111%201111-1111&x=1", 1, &h), "credit_card") == 0,
	    "plus and %%20");
	CHECK(h.offset == 5, "offset is in decoded bytes: %llu", (unsigned long long)h.offset);
	CHECK(!*scan1(d, "card=4111+1111%201111-1111&x=1", 0, NULL), "raw mode does not decode");
	CHECK(*scan1(d, "c=%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31", 1, NULL), "all %%XX");
	CHECK(*scan1(d, "c=%3411111111111111%31", 1, NULL), "%%XX at both ends");
	CHECK(*scan1(d, "s=123%2D45%2d6789", 1, NULL), "%%2D dash, lower-case hex");
	CHECK(*scan1(d, "i=DE89+3704+0044+0532+0130+00", 1, NULL), "iban with plus");
	CHECK(!*scan1(d, "c=4111%2B1111%2B1111%2B1111", 1, NULL), "%%2B is a plus, not a space");
	CHECK(*scan1(d, "c=4111111111111111%zz", 1, NULL), "bad escape after: literal %%zz");
	CHECK(*scan1(d, "c=4111111111111111%", 1, NULL), "lone %% at end");
	CHECK(*scan1(d, "c=4111111111111111%4", 1, NULL), "%%4 at end is literal, %% ends the card");
	CHECK(*scan1(d, "c=%4x4111111111111111", 1, NULL) == 0, "literal %%4x then letter");
	CHECK(*scan1(d, "c=%%4111111111111111", 1, NULL) == 0, "%%%%41 -> %%A, letter before");
	CHECK(*scan1(d, "c=%%+4111111111111111", 1, NULL), "%%%%+ then card");
	CHECK(*scan1(d, "c=%%%4111111111111111", 1, NULL) == 0, "%%%%%% 41 -> 'A' + digits");
	CHECK(!*scan1(d, "", 1, NULL), "empty form");
	END_CASE();
	fwd_dlp_free(d);
}

/* every split point, and byte-at-a-time, must equal the one-shot result */
static void test_splits(void)
{
	const char *pats[] = {
		"codename", "(?i)\\bbluebird\\b",
		"keyed", "(?<=apikey=)[A-Za-z0-9]{20}",
		"long", "BEGIN[a-z]{200}END",
	};
	static const struct { const char *s; int form; const char *det; } inputs[] = {
		{ "pay 4111 1111 1111 1111 now", 0, "credit_card" },
		{ "4111111111111111", 0, "credit_card" },
		{ "x=378282246310005", 0, "credit_card" },
		{ "card=4111+1111%201111-1111", 1, "credit_card" },
		{ "c=%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31", 1, "credit_card" },
		{ "to GB82 WEST 1234 5698 7654 32.", 0, "iban" },
		{ "DE89370400440532013000", 0, "iban" },
		{ "i=DE89+3704+0044+0532+0130+00", 1, "iban" },
		{ "ssn=123-45-6789", 0, "us_ssn" },
		{ "123 45 6789", 0, "us_ssn" },
		{ "the bluebird flies", 0, "codename" },
		{ "apikey=abcdefghij0123456789", 0, "keyed" },
		{ "0.4111111111111111 x", 0, "" },
		{ "bluebirds and 4111111111111112", 0, "" },
		{ "DE89370400440532013000X", 0, "" },
		{ "123-45-6789-1", 0, "" },
		{ "c=4111111111111111%4", 1, "credit_card" },
		{ "c=%4x4111111111111111", 1, "" },
	};
	struct fwd_dlp *d;
	struct conf_errors e;
	struct fwd_dlp_hit h1, h2;
	size_t i, cut;
	char big[400];

	conf_errors_init(&e);
	d = make("credit_card,iban,us_ssn", pats, 3, &e);
	BEGIN_CASE("every split point");
	for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		const char *s = inputs[i].s;
		size_t len = strlen(s);
		int rc1 = scan_cuts(d, s, len, inputs[i].form, NULL, 0, &h1);

		CHECK(rc1 == (*inputs[i].det != 0) && (!rc1 || strcmp(h1.detector, inputs[i].det) == 0),
		    "one-shot %s: rc %d det %s", s, rc1, rc1 ? h1.detector : "-");
		for (cut = 0; cut <= len; cut++) {
			int rc2 = scan_cuts(d, s, len, inputs[i].form, &cut, 1, &h2);
			CHECK(rc2 == rc1 && (!rc1 || same_hit(&h1, &h2)),
			    "split %s at %zu: %d vs %d", s, cut, rc1, rc2);
		}
	}
	END_CASE();

	BEGIN_CASE("three and more feeds");
	for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		const char *s = inputs[i].s;
		size_t len = strlen(s), k, cuts[3];
		size_t bytes[512];
		int rc1 = scan_cuts(d, s, len, inputs[i].form, NULL, 0, &h1), rc2;

		for (k = 0; k + 1 < len && k < 512; k++)
			bytes[k] = k + 1;
		rc2 = scan_cuts(d, s, len, inputs[i].form, bytes, k, &h2);
		CHECK(rc2 == rc1 && (!rc1 || same_hit(&h1, &h2)), "byte-at-a-time %s", s);
		for (cuts[0] = 0; cuts[0] <= len; cuts[0] += 3)
			for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1] += 2)
				for (cuts[2] = cuts[1]; cuts[2] <= len; cuts[2] += 5) {
					rc2 = scan_cuts(d, s, len, inputs[i].form, cuts, 3, &h2);
					CHECK(rc2 == rc1 && (!rc1 || same_hit(&h1, &h2)),
					    "3 cuts %s %zu %zu %zu", s, cuts[0], cuts[1], cuts[2]);
				}
	}
	/* a 208-byte pattern match spread over 1-byte feeds */
	memset(big, 'q', sizeof big);
	memcpy(big + 10, "BEGIN", 5);
	memcpy(big + 215, "END", 3);
	{
		size_t bytes[400], k;
		for (k = 0; k < 299; k++)
			bytes[k] = k + 1;
		CHECK(scan_cuts(d, big, 300, 0, bytes, 299, &h2) == 1 &&
		    strcmp(h2.detector, "long") == 0, "long pattern byte-at-a-time");
	}
	END_CASE();

	BEGIN_CASE("secrets across the internal 4 KiB steps");
	{
		static const struct { const char *s; int form; const char *det; } sec[] = {
			{ " the bluebird ", 0, "codename" },
			{ " 4111 1111 1111 1111 ", 0, "credit_card" },
			{ "&c=4111+1111%201111-1111&", 1, "credit_card" },
			{ " DE89 3704 0044 0532 0130 00 ", 0, "iban" },
			{ "&k=%20apikey%3Dabcdefghij0123456789&", 1, "keyed" },
		};
		static char buf[9000];
		size_t k, pos;

		for (k = 0; k < sizeof sec / sizeof sec[0]; k++)
			for (pos = 4060; pos < 4100; pos++) {
				size_t sl = strlen(sec[k].s);
				int rc;
				memset(buf, sec[k].form ? '+' : ' ', sizeof buf);
				memcpy(buf + pos, sec[k].s, sl);
				rc = scan_cuts(d, buf, pos + sl + 100, sec[k].form, NULL, 0, &h1);
				CHECK(rc == 1 && strcmp(h1.detector, sec[k].det) == 0,
				    "%s at %zu: rc %d", sec[k].s, pos, rc);
			}
	}
	END_CASE();
	fwd_dlp_free(d);
	conf_errors_free(&e);
}

static void test_stream_api(void)
{
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_scan *sc;
	const struct fwd_dlp_hit *h;
	char *big;
	size_t n = 8u << 20, i;

	BEGIN_CASE("stream api, empty and large input");
	sc = fwd_dlp_scan_new(d, FWD_DLP_RAW);
	CHECK(sc != NULL, "new");
	CHECK(fwd_dlp_scan_feed(sc, NULL, 0) == 0, "empty feed");
	CHECK(fwd_dlp_scan_hit(sc) == NULL, "no hit yet");
	CHECK(fwd_dlp_scan_finish(sc) == 0, "empty finish");
	CHECK(fwd_dlp_scan_finish(sc) == 0, "finish twice");
	CHECK(fwd_dlp_scan_feed(sc, "4111111111111111", 16) == 0, "feed after finish ignored");
	fwd_dlp_scan_free(sc);
	fwd_dlp_scan_free(NULL);
	CHECK(fwd_dlp_scan_buffer(d, "", 0, 0, NULL) == 0, "empty one-shot");

	/* a hit stops scanning; the number at the end of a feed needs finish() */
	sc = fwd_dlp_scan_new(d, FWD_DLP_RAW);
	CHECK(fwd_dlp_scan_feed(sc, "a 4111111111111111", 18) == 0, "pending at end of feed");
	CHECK(fwd_dlp_scan_feed(sc, " b", 2) == 1, "confirmed by next byte");
	CHECK(fwd_dlp_scan_feed(sc, "more", 4) == 1, "stays hit");
	CHECK(fwd_dlp_scan_finish(sc) == 1, "finish says hit");
	h = fwd_dlp_scan_hit(sc);
	CHECK(h && strcmp(h->detector, "credit_card") == 0 && h->offset == 2, "hit");
	CHECK(fwd_dlp_scan_bytes(sc) == 20, "stopped at the confirming byte: %llu",
	    (unsigned long long)fwd_dlp_scan_bytes(sc));
	fwd_dlp_scan_free(sc);

	/* 8 MiB of text and numbers without a hit, then a card at the very end */
	big = malloc(n + 32);
	static const char text[] = "the quick 12345 brown, {\"id\": 9876543210123} fox\n";
	for (i = 0; i < n; i++)
		big[i] = text[i % (sizeof text - 1)];
	CHECK(fwd_dlp_scan_buffer(d, big, n, 0, NULL) == 0, "large clean input");
	CHECK(fwd_dlp_scan_buffer(d, big, n, 1, NULL) == 0, "large clean input, form");
	memcpy(big + n - 17, " 4111111111111111", 17);
	{
		struct fwd_dlp_hit hh;
		CHECK(fwd_dlp_scan_buffer(d, big, n, 0, &hh) == 1 && hh.offset == n - 16,
		    "card at the end of 8 MiB");
	}
	/* pathological: one long run of single-digit groups, and one long digit run */
	for (i = 0; i < n; i++)
		big[i] = (i & 1) ? ' ' : (char)('0' + i % 7);
	(void)fwd_dlp_scan_buffer(d, big, n, 0, NULL);
	memset(big, '4', n);
	CHECK(fwd_dlp_scan_buffer(d, big, n, 0, NULL) == 0, "8 MiB digit run is not a card");
	for (i = 0; i < n; i++)
		big[i] = (char)(i * 7 + (i >> 8));
	(void)fwd_dlp_scan_buffer(d, big, n, 1, NULL);
	CHECK(1, "binary input survives");
	free(big);
	END_CASE();
	fwd_dlp_free(d);
}

static void test_redaction_never_full(void)
{
	struct fwd_dlp *d = builtins();
	struct fwd_dlp_hit h;
	char num[32];
	int i, found = 0;

	BEGIN_CASE("redaction never contains the full number");
	for (i = 0; i < 200; i++) {
		snprintf(num, sizeof num, "4%014d0", i * 7919);
		luhn_fix(num);
		if (fwd_dlp_scan_buffer(d, num, strlen(num), 0, &h) == 1) {
			found++;
			CHECK(strstr(h.redacted, num) == NULL && digits_in(h.redacted) == 4 &&
			    strcmp(h.redacted + strlen(h.redacted) - 4, num + 12) == 0,
			    "%s -> %s", num, h.redacted);
		}
	}
	CHECK(found == 200, "all Luhn-fixed visas found: %d", found);
	END_CASE();
	fwd_dlp_free(d);
}

int main(void)
{
	test_compile();
	test_cards();
	test_iban();
	test_ssn();
	test_detector_selection();
	test_patterns();
	test_form();
	test_splits();
	test_stream_api();
	test_redaction_never_full();
	return check_done();
}
