/*
 * fuzz_chunked: gw_chunked_decode on arbitrary bytes, fed all at once, in
 * segments whose sizes come from a hash of the input, and (for small inputs)
 * byte by byte.  Invariants: no crash; each call consumes <= len and its data
 * span lies inside the consumed bytes; decoded data is never longer than the
 * input; every feeding gives the same outcome, the same decoded bytes and the
 * same consumed count.
 */
#include "core/http1.h"
#include "fuzz.h"

#include <string.h>

struct outcome {
	int status;             /* 1 done, 0 incomplete, -1 error */
	size_t consumed;
	size_t outlen;
};

/* seg(k) gives the size of the k-th segment (>= 1). */
static void decode(const char *in, size_t len, unsigned mode, uint32_t seed, char *out,
    struct outcome *o)
{
	struct gw_chunked c;
	size_t pos = 0;
	uint32_t x = seed | 1;

	gw_chunked_init(&c);
	o->status = 0;
	o->consumed = 0;
	o->outlen = 0;
	while (pos < len && !c.done) {
		size_t seg;
		if (mode == 0) {
			seg = len - pos;
		} else if (mode == 1) {
			seg = 1;
		} else {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			seg = 1 + x % 17;
		}
		if (seg > len - pos)
			seg = len - pos;
		const char *s = in + pos;
		size_t off = 0;
		while (!c.done) {
			size_t doff = (size_t)-1, dlen = (size_t)-1;
			ssize_t r = gw_chunked_decode(&c, s + off, seg - off, &doff, &dlen);
			if (r < 0) {
				FZ_ASSERT(c.err_reason != NULL);
				o->status = -1;
				return;
			}
			FZ_ASSERT((size_t)r <= seg - off);
			FZ_ASSERT(dlen <= (size_t)r);
			if (dlen) {
				FZ_ASSERT(doff + dlen <= (size_t)r);
				memcpy(out + o->outlen, s + off + doff, dlen);
				o->outlen += dlen;
			}
			off += (size_t)r;
			o->consumed += (size_t)r;
			if (r == 0)
				break;
		}
		FZ_ASSERT(off == seg || c.done);
		pos += off;
		if (c.done)
			break;
	}
	FZ_ASSERT(o->outlen <= len && o->consumed <= len);
	o->status = c.done ? 1 : 0;
	if (c.done) {
		/* nothing more is consumed after the end */
		size_t doff, dlen;
		FZ_ASSERT(gw_chunked_decode(&c, "x", 1, &doff, &dlen) == 0 && dlen == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *o1 = malloc(size + 1), *o2 = malloc(size + 1);
	struct outcome a, b;
	uint32_t seed = 2166136261u;

	if (!o1 || !o2)
		abort();
	for (size_t i = 0; i < size && i < 64; i++)
		seed = (seed ^ data[i]) * 16777619u;
	decode(in, size, 0, 0, o1, &a);
	decode(in, size, 2, seed, o2, &b);
	FZ_ASSERT(a.status == b.status);
	if (a.status >= 0) {
		FZ_ASSERT(a.outlen == b.outlen && memcmp(o1, o2, a.outlen) == 0);
		FZ_ASSERT(a.status == 0 || a.consumed == b.consumed);
		/* partial framing is absorbed into the state: nothing is left over */
		FZ_ASSERT(a.status == 1 || (a.consumed == size && b.consumed == size));
	}
	if (size <= 4096) {
		decode(in, size, 1, 0, o2, &b);
		FZ_ASSERT(a.status == b.status);
		if (a.status >= 0) {
			FZ_ASSERT(a.outlen == b.outlen && memcmp(o1, o2, a.outlen) == 0);
			FZ_ASSERT(a.status == 0 || a.consumed == b.consumed);
		}
	}
	free(o1);
	free(o2);
	return 0;
}
