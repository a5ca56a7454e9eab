/*
 * core/httpdate: the one HTTP-date formatter and parser (RFC 9110 5.6.7).
 * Every date Gatehouse writes is an IMF-fixdate made by gw_httpdate_fmt
 * (the Date of each response through gw_httpdate_now, Last-Modified of
 * static files, the cache's Date); every date it reads (conditional
 * requests, Expires, Last-Modified) goes through gw_httpdate_parse, which
 * also takes the two obsolete forms.  Pure: no locale, no I/O.
 */
#include "core/httpdate.h"
#include "core/strlit.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char wkday[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const wkday_long[7] = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
	"Friday", "Saturday" };
static const char month[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
	"Nov", "Dec" };

size_t gw_httpdate_fmt(time_t t, char *buf)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	int n = snprintf(buf, GW_HTTPDATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d GMT", wkday[tm.tm_wday % 7],
	    tm.tm_mday, month[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return n > 0 ? (size_t)n : 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int num(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int month_num(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (memcmp(s, month[i], 3) == 0)
			return i + 1;
	return 0;
}

static int wkday_ok(const char *s, size_t n, int longform)
{
	for (int i = 0; i < 7; i++) {
		const char *w = longform ? wkday_long[i] : wkday[i];
		if (strlen(w) == n && memcmp(s, w, n) == 0)
			return 1;
	}
	return 0;
}

/* "HH:MM:SS" */
static int hms(const char *s, int *h, int *mi, int *se)
{
	if (s[2] != ':' || s[5] != ':')
		return -1;
	if (num(s, 2, h) || num(s + 3, 2, mi) || num(s + 6, 2, se))
		return -1;
	return 0;
}

int gw_httpdate_parse(const char *s, size_t len, time_t *out)
{
	int y, mo, d, h, mi, se;
	if (!s)
		return -1;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	if (len == 29 && s[3] == ',') {
		/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
		if (!wkday_ok(s, 3, 0) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
		    memcmp(s + 25, GW_STRLIT(" GMT")) != 0)
			return -1;
		if (num(s + 5, 2, &d) || !(mo = month_num(s + 8)) || num(s + 12, 4, &y) ||
		    hms(s + 17, &h, &mi, &se))
			return -1;
	} else if (len == 24 && s[3] == ' ') {
		/* asctime: Sun Nov  6 08:49:37 1994 */
		if (!wkday_ok(s, 3, 0) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
			return -1;
		if (!(mo = month_num(s + 4)))
			return -1;
		if (s[8] == ' ') {
			if (num(s + 9, 1, &d))
				return -1;
		} else if (num(s + 8, 2, &d)) {
			return -1;
		}
		if (hms(s + 11, &h, &mi, &se) || num(s + 20, 4, &y))
			return -1;
	} else {
		/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
		const char *comma = memchr(s, ',', len);
		if (!comma)
			return -1;
		size_t wl = (size_t)(comma - s);
		if (!wkday_ok(s, wl, 1) || len != wl + 24)
			return -1;
		const char *p = comma + 1;
		if (p[0] != ' ' || p[3] != '-' || p[7] != '-' || p[10] != ' ' ||
		    memcmp(p + 19, GW_STRLIT(" GMT")) != 0)
			return -1;
		if (num(p + 1, 2, &d) || !(mo = month_num(p + 4)) || num(p + 8, 2, &y) ||
		    hms(p + 11, &h, &mi, &se))
			return -1;
		y += y < 70 ? 2000 : 1900;
	}
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d < 1 || d > mdays[mo - 1] || (mo == 2 && !leap && d > 28) || h > 23 || mi > 59 || se > 60)
		return -1;
	if (se == 60)
		se = 59;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	if (sizeof(time_t) < 8 && (t > INT32_MAX || t < INT32_MIN))
		return -1;
	*out = (time_t)t;
	return 0;
}

/* The current IMF-fixdate, formatted once a second per thread; its length. */
size_t gw_httpdate_now(const char **out)
{
	static __thread time_t last;
	static __thread char cached[GW_HTTPDATE_MAX];
	static __thread size_t len;
	time_t now = time(NULL);

	if (now != last) {
		len = gw_httpdate_fmt(now, cached);
		last = now;
	}
	*out = cached;
	return len;
}
