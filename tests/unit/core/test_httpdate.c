/*
 * test_httpdate: core/httpdate, the one HTTP-date formatter and parser:
 * IMF-fixdate output, the three input forms, round trips over a range of
 * times, the per-thread "now", and dates that must be refused.
 */
#include "core/httpdate.h"
#include "check.h"

#include <string.h>
#include <time.h>

#define T0 ((time_t)784111777)   /* Sun, 06 Nov 1994 08:49:37 GMT */

static int P(const char *s, time_t *t)
{
	return gw_httpdate_parse(s, strlen(s), t);
}

int main(void)
{
	char b[GW_HTTPDATE_MAX];
	time_t t = 0;

	BEGIN_CASE("format IMF-fixdate");
	CHECK(gw_httpdate_fmt(T0, b) == 29 && strcmp(b, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "%s", b);
	CHECK(gw_httpdate_fmt(0, b) == 29 && strcmp(b, "Thu, 01 Jan 1970 00:00:00 GMT") == 0, "%s", b);
	CHECK(gw_httpdate_fmt(951825600, b) == 29 && strcmp(b, "Tue, 29 Feb 2000 12:00:00 GMT") == 0, "%s", b);
	CHECK(gw_httpdate_fmt(4102444799, b) == 29 && strcmp(b, "Thu, 31 Dec 2099 23:59:59 GMT") == 0, "%s", b);
	END_CASE();

	BEGIN_CASE("parse the three forms");
	CHECK(P("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 && t == T0, "imf");
	CHECK(P("Sunday, 06-Nov-94 08:49:37 GMT", &t) == 0 && t == T0, "rfc850");
	CHECK(P("Sun Nov  6 08:49:37 1994", &t) == 0 && t == T0, "asctime");
	CHECK(P("\t Sun, 06 Nov 1994 08:49:37 GMT \t", &t) == 0 && t == T0, "blanks around");
	CHECK(P("Sat, 31 Dec 2016 23:59:60 GMT", &t) == 0 && t == 1483228799, "leap second as :59");
	/* two-digit years: 70-99 are 19xx, 00-69 are 20xx */
	CHECK(P("Tuesday, 01-Jan-69 00:00:00 GMT", &t) == 0 && t == (time_t)3124224000LL, "rfc850 69 is 2069");
	CHECK(P("Thursday, 01-Jan-70 00:00:00 GMT", &t) == 0 && t == 0, "rfc850 70 is 1970");
	END_CASE();

	BEGIN_CASE("round trips");
	for (time_t x = 0; x < (time_t)4102444800; x += 86400 * 37 + 3601) {
		time_t y = -1;
		gw_httpdate_fmt(x, b);
		CHECK(P(b, &y) == 0 && y == x, "%lld -> %s -> %lld", (long long)x, b, (long long)y);
	}
	END_CASE();

	BEGIN_CASE("now");
	{
		const char *d1, *d2;
		time_t before = time(NULL), got;
		size_t n = gw_httpdate_now(&d1);
		time_t after = time(NULL);
		CHECK(n == 29 && strlen(d1) == 29, "length %zu", n);
		CHECK(gw_httpdate_parse(d1, n, &got) == 0 && got >= before && got <= after, "%s", d1);
		CHECK(gw_httpdate_now(&d2) == 29 && d1 == d2, "the per-thread buffer");
	}
	END_CASE();

	BEGIN_CASE("invalid dates are refused");
	static const char *const bad[] = {
		"", " ", "garbage", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Thu, 29 Feb 1900 08:49:37 GMT", "Sun, 31 Apr 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
		"Sun, 6 Nov 1994 08:49:37 GMT", "Sun 06 Nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX", "Sun, 06 Nov 19x4 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", "Funday, 06-Nov-94 08:49:37 GMT",
		"Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94",
		"Sun, 06 nov 1994 08:49:37 GMT", "sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 8:49:37 GMT",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = 12345;
		CHECK(P(bad[i], &t) == -1 && t == 12345, "'%s' accepted", bad[i]);
	}
	CHECK(gw_httpdate_parse(NULL, 0, &t) == -1, "NULL");
	CHECK(gw_httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28, &t) == -1, "cut short");
	END_CASE();
	return check_done();
}
