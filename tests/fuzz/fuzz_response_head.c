/*
 * fuzz_response_head: gw_http1_parse_response on arbitrary bytes for GET,
 * HEAD and CONNECT requests.  Invariants: no crash; consumed <= len; pointers
 * inside the input; every error is 502 with a reason; framing agrees with
 * RFC 9112 section 6.3; the head alone parses the same and its prefixes need
 * more.
 */
#include "core/http1.h"
#include "fuzz.h"

#include <string.h>

static void run(const char *b, size_t len, enum gw_method m, const struct gw_http_limits *lim)
{
	struct gw_hdr hdrs[64], hdrs2[64];
	struct gw_http_head h, h2;
	ssize_t r, r2;

	memset(&h, 0, sizeof(h));
	h.hdrs = hdrs;
	h.hdrs_cap = 64;
	r = gw_http1_parse_response(b, len, lim, m, &h);
	if (r < 0) {
		FZ_ASSERT(h.err_status == 502 && h.err_reason != NULL);
		return;
	}
	if (r == 0)
		return;
	FZ_ASSERT((size_t)r <= len && h.head_len == (size_t)r);
	FZ_ASSERT(h.status >= 100 && h.status <= 599);
	FZ_ASSERT(h.version_minor == 0 || h.version_minor == 1);
	FZ_ASSERT(fz_inside(h.reason, h.reason_len, b, (size_t)r));
	FZ_ASSERT(h.nhdrs <= 64);
	for (size_t i = 0; i < h.nhdrs; i++) {
		FZ_ASSERT(fz_inside(h.hdrs[i].name, h.hdrs[i].name_len, b, (size_t)r));
		FZ_ASSERT(fz_inside(h.hdrs[i].value, h.hdrs[i].value_len, b, (size_t)r));
	}
	FZ_ASSERT(!((h.flags & GW_HF_HAS_CL) && (h.flags & GW_HF_HAS_TE)));
	fz_check_head_bytes(b, (size_t)r, &h);
	fz_check_connection(&h, 1);
	if (m == GW_M_HEAD || h.status < 200 || h.status == 204 || h.status == 304)
		FZ_ASSERT(h.body == GW_BODY_NONE);
	if (h.body == GW_BODY_CHUNKED)
		FZ_ASSERT(h.flags & GW_HF_HAS_TE);
	if (h.body == GW_BODY_LENGTH)
		FZ_ASSERT(h.flags & GW_HF_HAS_CL);
	if (h.body == GW_BODY_CLOSE)
		FZ_ASSERT(!(h.flags & (GW_HF_HAS_CL | GW_HF_HAS_TE)));

	memset(&h2, 0, sizeof(h2));
	h2.hdrs = hdrs2;
	h2.hdrs_cap = 64;
	r2 = gw_http1_parse_response(b, (size_t)r, lim, m, &h2);
	FZ_ASSERT(r2 == r && h2.status == h.status && h2.body == h.body && h2.flags == h.flags);
	r2 = gw_http1_parse_response(b, (size_t)r - 1, lim, m, &h2);
	FZ_ASSERT(r2 == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct gw_http_limits deflim = { 65536, 64, 8192 };
	static const struct gw_http_limits tight = { 200, 5, 8192 };
	run((const char *)data, size, GW_M_GET, &deflim);
	run((const char *)data, size, GW_M_HEAD, &deflim);
	run((const char *)data, size, GW_M_CONNECT, &deflim);
	run((const char *)data, size, GW_M_GET, &tight);
	return 0;
}
