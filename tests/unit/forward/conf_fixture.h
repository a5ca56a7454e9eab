/*
 * tests/unit/forward/conf_fixture.h: helpers for the forward unit tests
 * that build a struct conf by hand (test_policy.c, test_decide.c).
 */
#ifndef GW_TEST_FWD_CONF_FIXTURE_H
#define GW_TEST_FWD_CONF_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

/* A struct conf_strs of the given string literals. */
#define STRS(...) ((struct conf_strs){ (char *[]){ __VA_ARGS__ }, \
	sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *) })

/* addr/prefix as a struct conf_cidr (aborts on a bad address: a test bug). */
static inline struct conf_cidr cidr(const char *addr, int prefix)
{
	struct conf_cidr c;
	memset(&c, 0, sizeof(c));
	c.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	c.prefix = (uint8_t)prefix;
	if (inet_pton(c.family, addr, c.addr) != 1)
		abort();
	return c;
}

#endif
