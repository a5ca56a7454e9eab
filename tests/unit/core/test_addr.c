/*
 * Unit tests for core/addr: the one address canonicaliser (strict IPv4 text,
 * IPv6 literals, canonical form, where an address goes, embedded IPv4).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "core/addr.h"

static void test_parse(void)
{
	static const struct { const char *in; int ip; const char *canon; const char *err; } t[] = {
		/* IPv4: exactly a.b.c.d, decimal, no leading zeros */
		{ "127.0.0.1", 1, "127.0.0.1", NULL },
		{ "0.0.0.0", 1, "0.0.0.0", NULL },
		{ "255.255.255.255", 1, "255.255.255.255", NULL },
		{ "10.0.0.1.", 1, "10.0.0.1", NULL },
		{ "0177.0.0.1", 0, NULL, "leading zero" },
		{ "127.0.0.01", 0, NULL, "leading zero" },
		{ "010.1.2.3", 0, NULL, "leading zero" },
		{ "00.0.0.0", 0, NULL, "leading zero" },
		{ "127.1", 0, NULL, "fewer than four parts" },
		{ "127.0.1", 0, NULL, "fewer than four parts" },
		{ "2130706433", 0, NULL, "one number" },
		{ "0", 0, NULL, "fewer than four parts" },
		{ "0x7f.0.0.1", 0, NULL, "hexadecimal" },
		{ "0x7f000001", 0, NULL, "hexadecimal" },
		{ "127.0.0.0x1", 0, NULL, "hexadecimal" },
		{ "0x", 0, NULL, "hexadecimal" },
		{ "1.2.3.256", 0, NULL, "over 255" },
		{ "1.2.3.99999999999", 0, NULL, "over 255" },
		{ "1.2.3.4.5", 0, NULL, "more than four parts" },
		{ "a.b.c.1", 0, NULL, "not a number" },
		{ "a.b.c.0d", 0, NULL, NULL },   /* last label not numeric: a name */
		{ "x.1", 0, NULL, "not a number" },
		{ "1..2.3", 0, NULL, "empty label" },
		{ "1.2.3.4..", 0, NULL, "empty label" },
		{ ".1.2.3.4", 0, NULL, "empty label" },
		{ "", 0, NULL, "empty host" },
		{ ".", 0, NULL, "empty host" },
		/* names: the last label is not numeric */
		{ "example.com", 0, NULL, NULL },
		{ "example.com.", 0, NULL, NULL },
		{ "0x7f.example", 0, NULL, NULL },
		{ "127.0.0.1.nip.io", 0, NULL, NULL },
		{ "0xg", 0, NULL, NULL },
		{ "1a", 0, NULL, NULL },
		/* IPv6, with or without brackets; canonical form */
		{ "::1", 1, "::1", NULL },
		{ "[::1]", 1, "::1", NULL },
		{ "::", 1, "::", NULL },
		{ "[::ffff:127.0.0.1]", 1, "127.0.0.1", NULL },
		{ "::ffff:7f00:1", 1, "127.0.0.1", NULL },
		{ "[::ffff:0.0.0.0]", 1, "0.0.0.0", NULL },
		{ "::127.0.0.1", 1, "127.0.0.1", NULL },
		{ "::ffff:0:10.1.2.3", 1, "10.1.2.3", NULL },
		{ "::2", 1, "0.0.0.2", NULL },
		{ "64:ff9b::1.2.3.4", 1, "64:ff9b::102:304", NULL },
		{ "2001:DB8::1", 1, "2001:db8::1", NULL },
		{ "[::ffff:0177.0.0.1]", 0, NULL, "invalid IPv6" },
		{ "[fe80::1%eth0]", 0, NULL, "invalid IPv6" },
		{ "[::1", 0, NULL, "invalid IPv6" },
		{ "1:2:3:4:5:6:7:8:9", 0, NULL, "invalid IPv6" },
	};
	BEGIN_CASE("gw_addr_parse_host + gw_addr_canon");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct gw_addr a;
		char buf[64];
		int is_ip = -1;
		const char *err = gw_addr_parse_host(t[i].in, strlen(t[i].in), &a, &is_ip);
		if (t[i].err != NULL) {
			CHECK(err != NULL && strstr(err, t[i].err) != NULL && is_ip == 0, "%s: got %s",
			    t[i].in, err ? err : "accepted");
			continue;
		}
		CHECK(err == NULL && is_ip == t[i].ip, "%s: err %s is_ip %d", t[i].in, err ? err : "-",
		    is_ip);
		if (err == NULL && t[i].ip) {
			gw_addr_canon(&a);
			gw_addr_format(&a, buf, sizeof buf);
			CHECK(strcmp(buf, t[i].canon) == 0, "%s: canonical %s, want %s", t[i].in, buf,
			    t[i].canon);
		}
	}
	int is_ip;
	CHECK(gw_addr_parse_host("127.0.0.1", 9, NULL, &is_ip) == NULL && is_ip, "out may be NULL");
	CHECK(gw_addr_parse_host("127.0.0.12", 9, NULL, &is_ip) == NULL && is_ip,
	    "length bounds the text (no NUL needed)");
	END_CASE();
}

static struct gw_addr addr(const char *s)
{
	struct gw_addr a;
	int is_ip;

	memset(&a, 0, sizeof a);
	if (gw_addr_parse_host(s, strlen(s), &a, &is_ip) != NULL || !is_ip)
		a.family = -1;
	gw_addr_canon(&a);
	return a;
}

static const char *fmt(const struct gw_addr *a)
{
	static char buf[4][64];
	static int k;
	return gw_addr_format(a, buf[k++ % 4], 64);
}

static void test_reached_embedded(void)
{
	static const struct { const char *in, *reached; } r[] = {
		{ "0.0.0.0", "127.0.0.1" }, { "0.1.2.3", "127.0.0.1" }, { "::", "::1" },
		{ "::ffff:0.0.0.0", "127.0.0.1" }, { "127.0.0.5", "127.0.0.5" }, { "::1", "::1" },
		{ "1.0.0.0", "1.0.0.0" }, { "::2", "127.0.0.1" },
	};
	BEGIN_CASE("gw_addr_is_unspecified / gw_addr_reached");
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		struct gw_addr a = addr(r[i].in);
		gw_addr_reached(&a);
		CHECK(strcmp(fmt(&a), r[i].reached) == 0, "%s reaches %s, want %s", r[i].in, fmt(&a),
		    r[i].reached);
	}
	struct gw_addr u = addr("0.0.0.0"), v = addr("::"), w = addr("::1"), x = addr("10.0.0.0");
	CHECK(gw_addr_is_unspecified(&u) && gw_addr_is_unspecified(&v) && !gw_addr_is_unspecified(&w) &&
	    !gw_addr_is_unspecified(&x), "unspecified");
	END_CASE();

	static const struct { const char *in, *v4; } e[] = {
		{ "64:ff9b::7f00:1", "127.0.0.1" }, { "64:ff9b::a9fe:a9fe", "169.254.169.254" },
		{ "2002:7f00:1::1", "127.0.0.1" }, { "2002:c0a8:101:1::5", "192.168.1.1" },
		{ "64:ff9b:1::7f00:1", NULL }, { "2001:db8::1", NULL }, { "10.0.0.1", NULL },
		{ "2001::1", NULL },
	};
	BEGIN_CASE("gw_addr_embedded_v4: NAT64 well-known prefix and 6to4 only");
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		struct gw_addr a = addr(e[i].in), v4;
		int got = gw_addr_embedded_v4(&a, &v4);
		CHECK(got == (e[i].v4 != NULL) && (!got || strcmp(fmt(&v4), e[i].v4) == 0), "%s: %d %s",
		    e[i].in, got, got ? fmt(&v4) : "-");
	}
	END_CASE();
}

static void test_sockaddr(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 s6;
	struct gw_addr a, b;

	BEGIN_CASE("gw_addr_from_sa / gw_addr_to_sa / gw_addr_in_prefix");
	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
	CHECK(gw_addr_from_sa((struct sockaddr *)&s6, &a) == 0 && a.family == AF_INET &&
	    strcmp(fmt(&a), "10.1.2.3") == 0, "mapped sockaddr is v4");
	socklen_t n = gw_addr_to_sa(&a, 8080, &ss);
	CHECK(n == sizeof(struct sockaddr_in) && ss.ss_family == AF_INET &&
	    ntohs(((struct sockaddr_in *)&ss)->sin_port) == 8080, "to_sa v4");
	CHECK(gw_addr_from_sa((struct sockaddr *)&ss, &b) == 0 && memcmp(&a, &b, sizeof a) == 0,
	    "round trip");
	b = addr("2001:db8::1");
	n = gw_addr_to_sa(&b, 443, &ss);
	CHECK(n == sizeof(struct sockaddr_in6) && ss.ss_family == AF_INET6, "to_sa v6");
	ss.ss_family = AF_UNIX;
	CHECK(gw_addr_from_sa((struct sockaddr *)&ss, &b) < 0, "AF_UNIX refused");
	CHECK(gw_addr_from_sa(NULL, &b) < 0, "NULL refused");
	static const uint8_t net10[16] = { 10 }, net6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	CHECK(gw_addr_in_prefix(&a, AF_INET, net10, 8) && !gw_addr_in_prefix(&a, AF_INET, net10, 16),
	    "v4 prefix");
	CHECK(gw_addr_in_prefix(&a, AF_INET, net10, 0), "/0");
	CHECK(!gw_addr_in_prefix(&a, AF_INET6, net10, 8), "family must match");
	b = addr("2001:db8::1");
	CHECK(gw_addr_in_prefix(&b, AF_INET6, net6, 32) && gw_addr_in_prefix(&b, AF_INET6, net6, 29) &&
	    !gw_addr_in_prefix(&b, AF_INET6, net6, 40 + 88), "v6 prefix");
	CHECK(!gw_addr_in_prefix(&a, AF_INET, net10, 33), "prefix over 32");
	END_CASE();
}

int main(void)
{
	test_parse();
	test_reached_embedded();
	test_sockaddr();
	return check_done();
}
