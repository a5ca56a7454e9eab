/*
 * test_climit: core/climit, the per-client connection counts: the limit
 * holds per client, other clients are not touched, IPv4-mapped IPv6 is its
 * IPv4 address, an IPv6 /64 is one client, releases give room back, and
 * several threads taking and releasing at once leave every count at zero.
 */
#include "core/climit.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, text, &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, text, &a->sin_addr);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void *hammer(void *arg)
{
	struct sockaddr_storage a = addr((const char *)arg);

	for (int i = 0; i < 100000; i++) {
		int r = gw_climit_take(SA(a), 5);
		if (r == 1)
			gw_climit_release(SA(a));
	}
	return NULL;
}

int main(void)
{
	BEGIN_CASE("limit per IPv4 address");
	{
		struct sockaddr_storage a = addr("192.0.2.7"), b = addr("192.0.2.8");
		int got = 0;
		for (int i = 0; i < 20; i++)
			got += gw_climit_take(SA(a), 10) == 1;
		CHECK(got == 10, "took %d of 20 with limit 10", got);
		CHECK(gw_climit_count(SA(a)) == 10, "count %llu", (unsigned long long)gw_climit_count(SA(a)));
		CHECK(gw_climit_take(SA(b), 10) == 1, "another address is refused");
		gw_climit_release(SA(b));
		gw_climit_release(SA(a));
		CHECK(gw_climit_take(SA(a), 10) == 1, "a release gives room back");
		CHECK(gw_climit_take(SA(a), 10) == 0, "but only one");
		CHECK(gw_climit_take(SA(a), 0) == 1, "limit 0 = no limit");
		for (int i = 0; i < 11; i++)
			gw_climit_release(SA(a));
		CHECK(gw_climit_count(SA(a)) == 0, "count %llu after all releases",
		    (unsigned long long)gw_climit_count(SA(a)));
	}
	END_CASE();

	BEGIN_CASE("IPv4-mapped IPv6 is the IPv4 address");
	{
		struct sockaddr_storage a = addr("198.51.100.1"), m = addr("::ffff:198.51.100.1");
		CHECK(gw_climit_take(SA(a), 2) == 1, "first");
		CHECK(gw_climit_take(SA(m), 2) == 1, "second, mapped");
		CHECK(gw_climit_take(SA(m), 2) == 0, "third, mapped, over");
		CHECK(gw_climit_take(SA(a), 2) == 0, "third, plain, over");
		gw_climit_release(SA(m));
		gw_climit_release(SA(a));
		CHECK(gw_climit_count(SA(a)) == 0, "count %llu", (unsigned long long)gw_climit_count(SA(a)));
	}
	END_CASE();

	BEGIN_CASE("an IPv6 /64 is one client");
	{
		struct sockaddr_storage a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2:ffff:1:2:3");
		struct sockaddr_storage o = addr("2001:db8:1:3::1");
		CHECK(gw_climit_take(SA(a), 2) == 1, "first");
		CHECK(gw_climit_take(SA(b), 2) == 1, "second, same /64");
		CHECK(gw_climit_take(SA(b), 2) == 0, "third, same /64, over");
		CHECK(gw_climit_take(SA(o), 2) == 1, "another /64");
		gw_climit_release(SA(o));
		gw_climit_release(SA(a));
		gw_climit_release(SA(b));
		CHECK(gw_climit_count(SA(a)) == 0, "count %llu", (unsigned long long)gw_climit_count(SA(a)));
	}
	END_CASE();

	BEGIN_CASE("not an IP address");
	{
		struct sockaddr_storage u;
		memset(&u, 0, sizeof u);
		u.ss_family = AF_UNIX;
		CHECK(gw_climit_take(SA(u), 1) == -1, "AF_UNIX counted");
		gw_climit_release(SA(u));   /* no effect, no crash */
	}
	END_CASE();

	BEGIN_CASE("threads take and release at once");
	{
		pthread_t t[4];
		const char *who[4] = { "203.0.113.1", "203.0.113.1", "203.0.113.2", "2001:db8::9" };
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, hammer, (void *)who[i]);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < 4; i++) {
			struct sockaddr_storage a = addr(who[i]);
			CHECK(gw_climit_count(SA(a)) == 0, "%s: count %llu", who[i],
			    (unsigned long long)gw_climit_count(SA(a)));
		}
	}
	END_CASE();

	return check_done();
}
