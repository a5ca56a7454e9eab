/*
 * forward/inspect_hello: the ClientHello parser (see inspect_hello.h).
 * Records are unwrapped into a bounded buffer first, then the handshake
 * message is walked with explicit bounds at every length field: a length
 * that runs past its container is "malformed", never a read beyond it.
 */
#include "forward/inspect_hello.h"

#include <string.h>

#define REC_MAX (16384 + 2048)     /* a record's payload at most (TLSCiphertext bound) */

struct rd {
	const unsigned char *p;
	size_t n;
};

static int take(struct rd *r, size_t k, struct rd *sub)
{
	if (r->n < k)
		return -1;
	if (sub != NULL) {
		sub->p = r->p;
		sub->n = k;
	}
	r->p += k;
	r->n -= k;
	return 0;
}

static int u8(struct rd *r, unsigned *v)
{
	if (r->n < 1)
		return -1;
	*v = r->p[0];
	return take(r, 1, NULL);
}

static int u16(struct rd *r, unsigned *v)
{
	if (r->n < 2)
		return -1;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	return take(r, 2, NULL);
}

/* A vector with a len_bytes (1 or 2) length prefix. */
static int vec(struct rd *r, int len_bytes, struct rd *sub)
{
	unsigned len;

	if ((len_bytes == 1 ? u8(r, &len) : u16(r, &len)) < 0)
		return -1;
	return take(r, len, sub);
}

static int grease(unsigned v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static int ext_sni(struct rd e, struct fwd_hello *h)
{
	struct rd list, name;
	unsigned type;

	if (vec(&e, 2, &list) < 0)
		return -1;
	while (list.n > 0) {
		if (u8(&list, &type) < 0 || vec(&list, 2, &name) < 0)
			return -1;
		if (type != 0 || h->sni[0] != '\0')
			continue;   /* host_name only, the first one */
		if (name.n == 0 || name.n >= sizeof h->sni)
			return -1;
		for (size_t i = 0; i < name.n; i++) {
			unsigned char ch = name.p[i];
			if (ch <= 0x20 || ch >= 0x7f)
				return -1;   /* RFC 6066: ASCII host name, no controls or spaces */
			h->sni[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		}
		h->sni[name.n] = '\0';
		if (h->sni[name.n - 1] == '.')
			h->sni[name.n - 1] = '\0';
	}
	return 0;
}

static int ext_alpn(struct rd e, struct fwd_hello *h)
{
	struct rd list, proto;

	if (vec(&e, 2, &list) < 0)
		return -1;
	h->alpn_any = 1;
	while (list.n > 0) {
		if (vec(&list, 1, &proto) < 0 || proto.n == 0)
			return -1;
		if (proto.n == 8 && memcmp(proto.p, "http/1.1", 8) == 0)
			h->alpn_h1 = 1;
		else if (proto.n == 2 && memcmp(proto.p, "h2", 2) == 0 && !h->alpn_h2) {
			h->alpn_h2_first = !h->alpn_h1;
			h->alpn_h2 = 1;
		}
	}
	return 0;
}

static int ext_versions(struct rd e, struct fwd_hello *h)
{
	struct rd list;
	unsigned v, best = 0;

	if (vec(&e, 1, &list) < 0 || list.n % 2 != 0)
		return -1;
	while (list.n > 0) {
		if (u16(&list, &v) < 0)
			return -1;
		if (!grease(v) && v > best && (v >> 8) == 3)
			best = v;
	}
	h->version = best;
	return 0;
}

/* The ClientHello body m. */
static enum fwd_hello_result hello_body(struct rd m, struct fwd_hello *h)
{
	struct rd skip, exts, ext;
	unsigned legacy, type;

	if (u16(&m, &legacy) < 0 || take(&m, 32, NULL) < 0 || vec(&m, 1, &skip) < 0 ||   /* random, session id */
	    vec(&m, 2, &skip) < 0 || skip.n == 0 || skip.n % 2 != 0 ||   /* cipher suites */
	    vec(&m, 1, &skip) < 0 || skip.n == 0)                        /* compression */
		return FWD_HELLO_MALFORMED;
	h->version = legacy;
	if (m.n > 0) {
		if (vec(&m, 2, &exts) < 0 || m.n != 0)
			return FWD_HELLO_MALFORMED;
		while (exts.n > 0) {
			int bad = 0;
			if (u16(&exts, &type) < 0 || vec(&exts, 2, &ext) < 0)
				return FWD_HELLO_MALFORMED;
			switch (type) {
			case 0:
				bad = ext_sni(ext, h);
				break;
			case 16:
				bad = ext_alpn(ext, h);
				break;
			case 43:
				bad = ext_versions(ext, h);
				break;
			}
			if (bad)
				return FWD_HELLO_MALFORMED;
		}
	}
	if (h->version < 0x0303)
		return FWD_HELLO_OLD_VERSION;
	return FWD_HELLO_OK;
}

enum fwd_hello_result fwd_hello_parse(const unsigned char *p, size_t n, struct fwd_hello *h)
{
	unsigned char msg[4 + FWD_HELLO_MAX];   /* the handshake message, unwrapped (16 KiB of stack) */
	size_t have = 0, need = 0, off = 0;
	enum fwd_hello_result r;

	memset(h, 0, sizeof *h);
	if (n == 0)
		return FWD_HELLO_MORE;
	if (p[0] & 0x80) {
		/* SSLv2-compatible: 2-byte length with the top bit set, then msg type 1 */
		if (n < 3)
			return FWD_HELLO_MORE;
		return p[2] == 1 ? FWD_HELLO_SSLV2 : FWD_HELLO_NOT_TLS;
	}
	for (;;) {
		size_t rlen, k;

		if (n - off < 1)
			return FWD_HELLO_MORE;
		if (p[off] != 22)   /* only handshake records until the hello is whole */
			return off == 0 ? FWD_HELLO_NOT_TLS : FWD_HELLO_MALFORMED;
		if (n - off >= 2 && p[off + 1] != 3)
			return off == 0 ? FWD_HELLO_NOT_TLS : FWD_HELLO_MALFORMED;
		if (n - off < 5)
			return FWD_HELLO_MORE;
		rlen = (size_t)p[off + 3] << 8 | p[off + 4];
		if (rlen == 0 || rlen > REC_MAX)
			return FWD_HELLO_MALFORMED;
		if (n - off - 5 < rlen) {
			/* the message's own length may already say it is too big */
			size_t part = n - off - 5;
			if (need == 0 && have < 4 && have + part >= 4) {
				unsigned char hd[4];
				memcpy(hd, msg, have);
				memcpy(hd + have, p + off + 5, 4 - have);
				if (hd[0] == 1 && 4 + ((size_t)hd[1] << 16 | (size_t)hd[2] << 8 | hd[3]) > sizeof msg)
					return FWD_HELLO_TOO_BIG;
			}
			return FWD_HELLO_MORE;
		}
		/* bytes of this record that belong to the message (the rest would
		 * be a second handshake message: a client never sends one here) */
		k = rlen;
		if (have + k > sizeof msg)
			return FWD_HELLO_TOO_BIG;
		memcpy(msg + have, p + off + 5, k);
		have += k;
		off += 5 + rlen;
		if (need == 0 && have >= 4) {
			if (msg[0] != 1)
				return FWD_HELLO_MALFORMED;   /* not a ClientHello */
			need = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
			if (need > sizeof msg)
				return FWD_HELLO_TOO_BIG;
		}
		if (need != 0 && have >= need)
			break;
	}
	if (have != need)
		return FWD_HELLO_MALFORMED;   /* trailing handshake bytes after the hello */
	r = hello_body((struct rd){ msg + 4, need - 4 }, h);
	h->bytes = off;
	return r;
}

const char *fwd_hello_result_name(enum fwd_hello_result r)
{
	switch (r) {
#define X(id, v, s) case FWD_HELLO_##id: return s;
	FWD_HELLO_RESULTS(X)
#undef X
	}
	return "?";
}
