/*
 * fuzz_request_head: gw_http1_parse_request on arbitrary bytes, with default
 * and with tight limits.  Invariants: no crash or out-of-bounds read;
 * consumed <= len and == head_len; every pointer lies inside the input (the
 * static "/" of an empty absolute-form path excepted); errors carry one of the
 * request statuses and a reason; a complete head parses the same on its own,
 * and its proper prefixes are "need more".
 */
#include "core/http1.h"
#include "fuzz.h"

#include <string.h>

static void check_ok(const char *b, size_t len, ssize_t r, const struct gw_http_head *h, size_t cap)
{
	FZ_ASSERT((size_t)r <= len);
	FZ_ASSERT(h->head_len == (size_t)r);
	FZ_ASSERT(h->nhdrs <= cap);
	FZ_ASSERT(h->version_minor == 0 || h->version_minor == 1);
	FZ_ASSERT(fz_inside(h->method_str, h->method_len, b, (size_t)r) && h->method_len > 0);
	FZ_ASSERT(fz_inside(h->target, h->target_len, b, (size_t)r) && h->target_len > 0);
	FZ_ASSERT(fz_inside(h->scheme, h->scheme_len, b, (size_t)r));
	FZ_ASSERT(fz_inside(h->host, h->host_len, b, (size_t)r));
	FZ_ASSERT(fz_inside(h->host_hdr, h->host_hdr_len, b, (size_t)r));
	if (!(h->flags & GW_HF_PATH_EMPTY) || h->path_len != 1 || h->path[0] != '/')
		FZ_ASSERT(fz_inside(h->path, h->path_len, b, (size_t)r));
	for (size_t i = 0; i < h->nhdrs; i++) {
		FZ_ASSERT(fz_inside(h->hdrs[i].name, h->hdrs[i].name_len, b, (size_t)r));
		FZ_ASSERT(fz_inside(h->hdrs[i].value, h->hdrs[i].value_len, b, (size_t)r));
		FZ_ASSERT(h->hdrs[i].name_len > 0);
	}
	FZ_ASSERT(h->body == GW_BODY_NONE || h->body == GW_BODY_LENGTH || h->body == GW_BODY_CHUNKED);
	FZ_ASSERT(h->body == GW_BODY_LENGTH || h->content_length == 0);
	/* a request carrying both framings never gets through */
	FZ_ASSERT(!((h->flags & GW_HF_HAS_CL) && (h->flags & GW_HF_HAS_TE)));
	FZ_ASSERT(h->version_minor == 0 || h->host_hdr != NULL);
	if (h->target_form == GW_TF_AUTHORITY)
		FZ_ASSERT(h->method == GW_M_CONNECT && h->port != 0 && h->host_len > 0);
	if (h->method == GW_M_CONNECT)
		FZ_ASSERT(h->target_form == GW_TF_AUTHORITY);
	if (h->target_form == GW_TF_ASTERISK)
		FZ_ASSERT(h->method == GW_M_OPTIONS);
	if (h->target_form == GW_TF_ORIGIN)
		FZ_ASSERT(h->target[0] == '/');
	if (h->target_form == GW_TF_ABSOLUTE)
		FZ_ASSERT(h->host_len > 0 && h->port != 0 && h->path_len > 0);
	for (size_t i = 0; i < h->target_len; i++)
		FZ_ASSERT((unsigned char)h->target[i] > 0x20 && (unsigned char)h->target[i] < 0x7f);
	if (h->host_len)
		FZ_ASSERT(memchr(h->host, '@', h->host_len) == NULL);
	fz_check_head_bytes(b, (size_t)r, h);
	fz_check_connection(h, 0);
}

static void run(const char *b, size_t len, const struct gw_http_limits *lim)
{
	struct gw_hdr hdrs[128], hdrs2[128];
	struct gw_http_head h, h2;
	ssize_t r, r2;

	memset(&h, 0, sizeof(h));
	h.hdrs = hdrs;
	h.hdrs_cap = 128;
	r = gw_http1_parse_request(b, len, lim, &h);
	if (r < 0) {
		FZ_ASSERT(h.err_status == 400 || h.err_status == 414 || h.err_status == 431 ||
		    h.err_status == 501 || h.err_status == 505);
		FZ_ASSERT(h.err_reason != NULL);
		return;
	}
	if (r == 0)
		return;
	check_ok(b, len, r, &h, 128);

	/* the head alone gives the same answer; a prefix of it needs more */
	memset(&h2, 0, sizeof(h2));
	h2.hdrs = hdrs2;
	h2.hdrs_cap = 128;
	r2 = gw_http1_parse_request(b, (size_t)r, lim, &h2);
	FZ_ASSERT(r2 == r && h2.flags == h.flags && h2.body == h.body && h2.nhdrs == h.nhdrs &&
	    h2.content_length == h.content_length && h2.port == h.port);
	r2 = gw_http1_parse_request(b, (size_t)r - 1, lim, &h2);
	FZ_ASSERT(r2 == 0);
	r2 = gw_http1_parse_request(b, (size_t)r / 2, lim, &h2);
	FZ_ASSERT(r2 == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct gw_http_limits deflim = { 65536, 100, 8192 };
	static const struct gw_http_limits tight = { 256, 6, 48 };
	run((const char *)data, size, &deflim);
	run((const char *)data, size, &tight);
	return 0;
}
