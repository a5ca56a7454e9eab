/*
 * core/addr: the IP address canonicaliser (see addr.h for the rules and why
 * each form is read the way it is).  Written without inet_aton() and
 * without libevent's evutil_inet_pton(), which both accept forms we refuse.
 */
#include "core/addr.h"

#include <stdlib.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static int is_dig(char c) { return c >= '0' && c <= '9'; }
static int is_hexd(char c) { return is_dig(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* The WHATWG URL "ends in a number" test for the last label: all decimal
 * digits, or "0x" followed by hex digits (none is enough).  Such a host is
 * an IPv4 address to a browser, so it must be a valid one for us too. */
static int numeric_label(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return 0;
	if (n >= 2 && s[0] == '0' && (s[1] | 0x20) == 'x') {
		for (i = 2; i < n; i++)
			if (!is_hexd(s[i]))
				return 0;
		return 1;
	}
	for (; i < n; i++)
		if (!is_dig(s[i]))
			return 0;
	return 1;
}

static const char *parse_v6(const char *s, size_t n, struct gw_addr *out, int *is_ip)
{
	char tmp[INET6_ADDRSTRLEN];
	struct in6_addr a;

	if (n == 0 || n >= sizeof tmp)
		return "invalid IPv6 literal";
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET6, tmp, &a) != 1)
		return "invalid IPv6 literal";
	if (out != NULL) {
		memset(out, 0, sizeof *out);
		out->family = AF_INET6;
		memcpy(out->a, &a, 16);
	}
	*is_ip = 1;
	return NULL;
}

/* s[0..n) ends in a numeric label: it must be exactly a.b.c.d, decimal,
 * no leading zeros, each at most 255. */
static const char *parse_v4(const char *s, size_t n, struct gw_addr *out, int *is_ip)
{
	uint8_t b[4];
	size_t i = 0, parts = 0;

	while (i <= n) {
		size_t st = i;
		unsigned v = 0;
		while (i < n && s[i] != '.')
			i++;
		size_t len = i - st;
		if (len == 0)
			return "invalid IPv4 address: empty part";
		if (len >= 2 && s[st] == '0' && (s[st + 1] | 0x20) == 'x')
			return "ambiguous IPv4 address: hexadecimal part (refused: parsers disagree on it)";
		for (size_t k = st; k < i; k++) {
			if (!is_dig(s[k]))
				return "invalid IPv4 address: a part that is not a number";
			if (v <= 255)
				v = v * 10 + (unsigned)(s[k] - '0');
		}
		if (len > 1 && s[st] == '0')
			return "ambiguous IPv4 address: a part with a leading zero (octal to inet_aton "
			    "and browsers; refused)";
		if (v > 255)
			return parts == 0 && i == n ? "ambiguous IPv4 address: one number for the whole "
			    "address (refused)" : "invalid IPv4 address: a part over 255";
		if (parts == 4)
			return "invalid IPv4 address: more than four parts";
		b[parts++] = (uint8_t)v;
		i++;   /* the dot, or one past the end */
	}
	if (parts < 4)
		return "ambiguous IPv4 address: fewer than four parts (refused: parsers disagree on it)";
	if (out != NULL) {
		memset(out, 0, sizeof *out);
		out->family = AF_INET;
		memcpy(out->a, b, 4);
	}
	*is_ip = 1;
	return NULL;
}

const char *gw_addr_parse_host(const char *s, size_t n, struct gw_addr *out, int *is_ip)
{
	size_t ls;

	*is_ip = 0;
	if (s == NULL || n == 0)
		return "empty host";
	if (s[0] == '[') {
		if (n < 2 || s[n - 1] != ']')
			return "invalid IPv6 literal";
		return parse_v6(s + 1, n - 2, out, is_ip);
	}
	if (memchr(s, ':', n) != NULL)
		return parse_v6(s, n, out, is_ip);
	if (s[n - 1] == '.')
		n--;   /* one trailing dot: the root, "a.b.c.d." is a.b.c.d */
	if (n == 0)
		return "empty host";
	ls = 0;    /* start of the last label */
	for (size_t i = 0; i < n; i++)
		if (s[i] == '.') {
			if (i == ls)
				return "empty label in host";
			ls = i + 1;
		}
	if (ls == n)
		return "empty label in host";
	if (!numeric_label(s + ls, n - ls))
		return NULL;   /* a name */
	return parse_v4(s, n, out, is_ip);
}

static const uint8_t zero16[16];

static void to_v4(struct gw_addr *a, const uint8_t *v4)
{
	uint8_t b[4];

	memcpy(b, v4, 4);
	memset(a->a, 0, sizeof a->a);
	memcpy(a->a, b, 4);
	a->family = AF_INET;
}

void gw_addr_canon(struct gw_addr *a)
{
	const uint8_t *x = a->a;

	if (a->family != AF_INET6)
		return;
	if (memcmp(x, zero16, 10) == 0) {
		if (x[10] == 0xff && x[11] == 0xff) {
			to_v4(a, x + 12);                      /* ::ffff:a.b.c.d */
		} else if (x[10] == 0 && x[11] == 0 &&
		    !(x[12] == 0 && x[13] == 0 && x[14] == 0 && x[15] <= 1)) {
			to_v4(a, x + 12);                      /* ::a.b.c.d, not :: or ::1 */
		}
	} else if (memcmp(x, zero16, 8) == 0 && x[8] == 0xff && x[9] == 0xff && x[10] == 0 &&
	    x[11] == 0) {
		to_v4(a, x + 12);                              /* ::ffff:0:a.b.c.d */
	}
}

int gw_addr_from_sa(const struct sockaddr *sa, struct gw_addr *out)
{
	memset(out, 0, sizeof *out);
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		out->family = AF_INET6;
		memcpy(out->a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		gw_addr_canon(out);
		return 0;
	}
	return -1;
}

int gw_addr_is_unspecified(const struct gw_addr *a)
{
	if (a->family == AF_INET)
		return a->a[0] == 0;
	return a->family == AF_INET6 && memcmp(a->a, zero16, 16) == 0;
}

void gw_addr_reached(struct gw_addr *a)
{
	if (!gw_addr_is_unspecified(a))
		return;
	memset(a->a, 0, sizeof a->a);
	if (a->family == AF_INET) {
		a->a[0] = 127;
		a->a[3] = 1;
	} else {
		a->a[15] = 1;
	}
}

int gw_addr_embedded_v4(const struct gw_addr *a, struct gw_addr *v4)
{
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	const uint8_t *src = NULL;

	if (a->family != AF_INET6)
		return 0;
	if (memcmp(a->a, nat64, 12) == 0)
		src = a->a + 12;
	else if (a->a[0] == 0x20 && a->a[1] == 0x02)
		src = a->a + 2;
	if (src == NULL)
		return 0;
	to_v4(v4, src);
	return 1;
}

int gw_addr_in_prefix(const struct gw_addr *a, int family, const uint8_t *net, unsigned prefix)
{
	unsigned full, rest;

	if (a->family != family)
		return 0;
	if (prefix > (family == AF_INET ? 32u : 128u))
		return 0;
	full = prefix / 8;
	rest = prefix % 8;
	if (memcmp(a->a, net, full) != 0)
		return 0;
	if (rest) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rest));
		if ((a->a[full] & mask) != (net[full] & mask))
			return 0;
	}
	return 1;
}

char *gw_addr_format(const struct gw_addr *a, char *buf, size_t cap)
{
	if (cap == 0)
		return buf;
	if (inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->a, buf, (socklen_t)cap) == NULL)
		buf[0] = '\0';
	return buf;
}

socklen_t gw_addr_to_sa(const struct gw_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, a->a, 4);
		return sizeof *s4;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	memcpy(&s6->sin6_addr, a->a, 16);
	return sizeof *s6;
}

const char *gw_addr_parse_syslog(const char *s, int *transport, struct sockaddr_storage *ss, socklen_t *len)
{
	const char *h, *colon, *end;
	struct gw_addr a;
	unsigned long port = 0;
	int is_ip = 0;

	memset(ss, 0, sizeof *ss);
	if (strncmp(s, "syslog:unix:", 12) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		s += 12;
		if (s[0] != '/')
			return "the unix socket path must be absolute (syslog:unix:/dev/log)";
		if (strlen(s) >= sizeof un->sun_path)
			return "the unix socket path is too long";
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s, strlen(s) + 1);
		*transport = GW_SYSLOG_UNIX;
		*len = (socklen_t)sizeof *un;
		return NULL;
	}
	if (strncmp(s, "syslog:udp:", 11) == 0)
		*transport = GW_SYSLOG_UDP;
	else if (strncmp(s, "syslog:tcp:", 11) == 0)
		*transport = GW_SYSLOG_TCP;
	else
		return "expected syslog:unix:PATH, syslog:udp:HOST:PORT or syslog:tcp:HOST:PORT";
	h = s + 11;
	colon = strrchr(h, ':');
	if (colon == NULL || colon == h)
		return "expected HOST:PORT after syslog:udp: or syslog:tcp:";
	if (colon[1] >= '0' && colon[1] <= '9')
		port = strtoul(colon + 1, (char **)&end, 10);
	else
		end = colon + 1;
	if (*end != '\0' || port == 0 || port > 65535)
		return "the port must be a number from 1 to 65535";
	if (gw_addr_parse_host(h, (size_t)(colon - h), &a, &is_ip) != NULL || !is_ip)
		return "the host must be a numeric address (IPv6 in brackets)";
	if (a.family == AF_INET6 && h[0] != '[')
		return "an IPv6 host must be in brackets: [::1]:514";
	*len = gw_addr_to_sa(&a, (uint16_t)port, ss);
	return NULL;
}
