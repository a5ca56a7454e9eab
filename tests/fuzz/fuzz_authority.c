/*
 * fuzz_authority: gw_http1_parse_authority and gw_http1_list_has on arbitrary
 * bytes.  Invariants: no crash; on success the host is non-empty, inside the
 * input, free of '@', '/', whitespace and CTLs, and the port is the default or
 * 1..65535, and core/addr takes the host (never an ambiguous IPv4 literal);
 * on failure a reason is given.
 */
#include "core/addr.h"
#include "core/http1.h"
#include "fuzz.h"

#include <string.h>

static void run(const char *s, size_t len, uint16_t defport)
{
	const char *host = NULL;
	size_t hl = 0;
	uint16_t port = 0;
	const char *err = gw_http1_parse_authority(s, len, defport, &host, &hl, &port);
	if (err) {
		FZ_ASSERT(err[0] != '\0');
		return;
	}
	FZ_ASSERT(hl > 0 && hl <= 255 && fz_inside(host, hl, s, len));
	FZ_ASSERT(memchr(s, '@', len) == NULL);
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)host[i];
		FZ_ASSERT(c > 0x20 && c < 0x7f && c != '/' && c != '@' && c != '[' && c != ']');
	}
	FZ_ASSERT(port != 0 || defport == 0);
	int is_ip;
	FZ_ASSERT(gw_addr_parse_host(host, hl, NULL, &is_ip) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	run(s, size, 80);
	run(s, size, 0);
	(void)gw_http1_list_has(s, size, "close");
	(void)gw_http1_list_has(s, size, "");
	return 0;
}
