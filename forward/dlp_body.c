/*
 * forward/dlp_body.c: the views DLP scans (raw, percent-decoded, base64
 * runs) and content-decoded request bodies; see dlp_body.h.
 *
 * zlib, not a hand-written inflater: it is the reference implementation of
 * both formats HTTP names (gzip, RFC 1952; zlib/deflate, RFC 1950/1951),
 * it is already on every Debian system (zlib1g, Priority: required), it
 * streams into a fixed window of 32 KiB whatever the ratio, and its output
 * size is ours to cap, which is what a decompression bomb needs.
 */
#include "forward/dlp_body.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/http1.h"

#define VIEWS_MAGIC 0x444c5056u   /* "DLPV" */
#define PIECE 4096                /* base64 output per step */
#define INFLATE_OUT 16384

/* ---------- base64 runs ---------- */

/* 0..63 for both alphabets (+ and - are 62, / and _ are 63); + and / also
 * carry B64_STD (they are separators for a url_only decoder); 0xff: not
 * base64.  A byte is not in a decoder's alphabet when (v & b64_bad(b)). */
#define B64_STD 0x40u
static const uint8_t b64_tab[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7e, 0xff, 0x3e, 0xff, 0x7f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0x3f,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static unsigned b64_bad(const struct fwd_b64 *b)
{
	return b->url_only ? 0x80u | B64_STD : 0x80u;
}

void fwd_b64_init(struct fwd_b64 *b, int url_only)
{
	memset(b, 0, sizeof *b);
	b->url_only = url_only;
}

/* The run ends: its last partial quantum and the separator (at most 3 bytes). */
static size_t b64_end_run(struct fwd_b64 *b, uint8_t *out)
{
	size_t o = 0;

	if (b->run >= FWD_B64_MIN_RUN) {
		if (b->nacc == 2) {
			out[o++] = (uint8_t)(b->acc >> 4);
		} else if (b->nacc == 3) {
			out[o++] = (uint8_t)(b->acc >> 10);
			out[o++] = (uint8_t)(b->acc >> 2);
		}
		out[o++] = '\n';
	}
	b->acc = 0;
	b->nacc = 0;
	b->run = 0;
	b->npend = 0;
	return o;
}

/* One character of the text (at most 12 bytes out). */
static size_t b64_char(struct fwd_b64 *b, unsigned c, uint8_t *out)
{
	unsigned v = b64_tab[c & 0xff];
	uint8_t q[3];
	size_t o = 0;

	if (v & b64_bad(b)) {
		/* MIME and PEM break lines at a multiple of 4 characters: the
		 * run goes on; anywhere else a break ends it */
		if ((c == '\r' || c == '\n') && b->run > 0 && b->nacc == 0)
			return 0;
		return b64_end_run(b, out);   /* '=' (padding) included */
	}
	b->acc = b->acc << 6 | (v & 63);
	b->run++;
	if (++b->nacc < 4)
		return 0;
	q[0] = (uint8_t)(b->acc >> 16);
	q[1] = (uint8_t)(b->acc >> 8);
	q[2] = (uint8_t)b->acc;
	b->acc = 0;
	b->nacc = 0;
	if (b->run <= FWD_B64_MIN_RUN) {
		/* not yet known to be long enough: hold (MIN_RUN is a multiple of 4) */
		memcpy(b->pend + b->npend, q, 3);
		b->npend += 3;
		if (b->run < FWD_B64_MIN_RUN)
			return 0;
		memcpy(out, b->pend, b->npend);
		o = b->npend;
		b->npend = 0;
		return o;
	}
	memcpy(out, q, 3);
	return 3;
}

size_t fwd_b64_decode(struct fwd_b64 *b, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
    size_t *used)
{
	const unsigned bad = b64_bad(b);
	size_t i = 0, o = 0;

	/* three characters at most per input byte (a failed %XX), 12 bytes each */
	while (i < n && o + 36 <= cap) {
		unsigned c;

		if (b->pct == 0 && b->run == 0) {
			/* between runs: skip what cannot start one, then a whole run
			 * that ends short (not at '%' or a line break, which may
			 * continue it) in one go: ordinary words cost a table look-up */
			size_t j;
			while (i < n && (b64_tab[in[i]] & bad) && in[i] != '%')
				i++;
			for (j = i; j < n && !(b64_tab[in[j]] & bad); j++)
				;
			if (j < n && j - i < FWD_B64_MIN_RUN && in[j] != '%' && in[j] != '\r' && in[j] != '\n') {
				i = j;
				continue;
			}
			if (i == n)
				break;
		} else if (b->pct == 0 && b->nacc == 0 && b->run >= FWD_B64_MIN_RUN) {
			/* inside a long run: whole quanta */
			while (i + 4 <= n && o + 36 + 3 <= cap) {
				unsigned q0 = b64_tab[in[i]], q1 = b64_tab[in[i + 1]];
				unsigned q2 = b64_tab[in[i + 2]], q3 = b64_tab[in[i + 3]];
				uint32_t a;
				if ((q0 | q1 | q2 | q3) & bad)
					break;
				a = (q0 & 63) << 18 | (q1 & 63) << 12 | (q2 & 63) << 6 | (q3 & 63);
				out[o++] = (uint8_t)(a >> 16);
				out[o++] = (uint8_t)(a >> 8);
				out[o++] = (uint8_t)a;
				b->run += 4;
				i += 4;
			}
			if (i == n || o + 36 > cap)
				break;
		}
		c = in[i++];
		if (b->pct == 1) {
			if (gw_hexval((int)c) >= 0) {
				b->pct = 2;
				b->pct_c = c;
				continue;
			}
			b->pct = 0;
			o += b64_char(b, '%', out + o);
		} else if (b->pct == 2) {
			int h = gw_hexval((int)c);
			b->pct = 0;
			if (h >= 0) {
				/* %2B, %2F, %3D: base64 sent form-encoded */
				o += b64_char(b, (unsigned)(gw_hexval((int)b->pct_c) * 16 + h), out + o);
				continue;
			}
			o += b64_char(b, '%', out + o);
			o += b64_char(b, b->pct_c, out + o);
		}
		if (c == '%') {
			b->pct = 1;
			continue;
		}
		o += b64_char(b, c, out + o);
	}
	*used = i;
	return o;
}

size_t fwd_b64_end(struct fwd_b64 *b, uint8_t *out, size_t cap)
{
	size_t o;

	(void)cap;   /* >= 32: the end of one run is at most 3 bytes */
	b->pct = 0;
	o = b64_end_run(b, out);
	return o;
}

/* ---------- content codings ---------- */

enum fwd_coding fwd_dlp_coding(const char *value, size_t len)
{
	enum fwd_coding c = FWD_CODING_IDENTITY;
	size_t i = 0;

	if (value == NULL)
		return c;
	while (i < len) {
		size_t s, e;
		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		s = i;
		while (i < len && value[i] != ',')
			i++;
		e = i;
		while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
			e--;
		if (e == s || (e - s == 8 && strncasecmp(value + s, "identity", 8) == 0))
			continue;
		if (c != FWD_CODING_IDENTITY)
			return FWD_CODING_OTHER;   /* stacked codings are not decoded */
		if ((e - s == 4 && strncasecmp(value + s, "gzip", 4) == 0) ||
		    (e - s == 6 && strncasecmp(value + s, "x-gzip", 6) == 0))
			c = FWD_CODING_GZIP;
		else if (e - s == 7 && strncasecmp(value + s, "deflate", 7) == 0)
			c = FWD_CODING_DEFLATE;
		else
			return FWD_CODING_OTHER;
	}
	return c;
}

/* A zlib (RFC 1950) header: method 8, window <= 32 KiB, check bits. */
static int zlib_header(const uint8_t *in, size_t n)
{
	return n >= 2 && (in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 && ((unsigned)in[0] << 8 | in[1]) % 31 == 0;
}

enum fwd_inflate_rc fwd_dlp_inflate(enum fwd_coding coding, const uint8_t *in, size_t n, uint64_t cap,
    int (*emit)(void *arg, const uint8_t *p, size_t len), void *arg, uint64_t *out_len)
{
	uint8_t *out = malloc(INFLATE_OUT);
	enum fwd_inflate_rc rc = FWD_INFLATE_SHORT;
	uint64_t total = 0;
	z_stream zs;
	int wbits = coding == FWD_CODING_GZIP ? 16 + 15 : zlib_header(in, n) ? 15 : -15;

	if (out == NULL)
		return FWD_INFLATE_NOMEM;
	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, wbits) != Z_OK) {
		free(out);
		return FWD_INFLATE_NOMEM;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;   /* zlib does not write its input */
	zs.avail_in = (uInt)n;                  /* n <= max_scan_bytes + 1 (<= 1 GiB + 1) */
	for (;;) {
		int zr;
		size_t got;

		zs.next_out = out;
		zs.avail_out = INFLATE_OUT;
		zr = inflate(&zs, Z_NO_FLUSH);
		got = INFLATE_OUT - zs.avail_out;
		if (got > 0) {
			int over = total + got > cap;
			if (over)
				got = (size_t)(cap - total);
			total += got;
			if (got > 0 && emit(arg, out, got)) {
				rc = FWD_INFLATE_STOP;
				break;
			}
			if (over) {
				rc = FWD_INFLATE_CAP;
				break;
			}
		}
		if (zr == Z_STREAM_END) {
			if (zs.avail_in == 0) {
				rc = FWD_INFLATE_END;
				break;
			}
			/* gzip allows members one after another; anything else
			 * after the end is not ours to guess (the origin may read it) */
			if (coding == FWD_CODING_GZIP && zs.avail_in >= 2 && zs.next_in[0] == 0x1f &&
			    zs.next_in[1] == 0x8b && inflateReset(&zs) == Z_OK)
				continue;
			rc = FWD_INFLATE_BAD;
			break;
		}
		if (zr == Z_BUF_ERROR || (zr == Z_OK && zs.avail_in == 0 && zs.avail_out > 0)) {
			rc = FWD_INFLATE_SHORT;   /* wants input we do not have */
			break;
		}
		if (zr == Z_MEM_ERROR) {
			rc = FWD_INFLATE_NOMEM;
			break;
		}
		if (zr != Z_OK) {
			rc = FWD_INFLATE_BAD;
			break;
		}
	}
	inflateEnd(&zs);
	free(out);
	if (out_len != NULL)
		*out_len = total;
	return rc;
}

/* ---------- views ---------- */

enum { V_RAW, V_PCT, V_B64, V_B64U, V_N };

struct fwd_dlp_views {
	uint32_t magic;
	struct fwd_dlp_scan *sc[V_N];
	struct fwd_b64 b64[2];     /* for V_B64 and V_B64U */
	int hit;                   /* view index + 1, 0 = none */
	int inflated;              /* set by fwd_dlp_scan_body() for the name of the view */
	/* The percent view reads like the raw one, and the URL-safe base64
	 * decoder like the full one, until the stream shows '%' or '+' (resp.
	 * '+', '/' or '%'): they start then, as copies of the state of the one
	 * they equal, so most streams are read twice, not four times. */
	int pct_on, b64u_on;
};

struct fwd_dlp_views *fwd_dlp_views_new(const struct fwd_dlp *dlp)
{
	struct fwd_dlp_views *v = calloc(1, sizeof *v);

	if (v == NULL)
		return NULL;
	v->magic = VIEWS_MAGIC;
	v->sc[V_RAW] = fwd_dlp_scan_new(dlp, FWD_DLP_RAW);
	v->sc[V_PCT] = fwd_dlp_scan_new(dlp, FWD_DLP_FORM_URLENCODED);
	v->sc[V_B64] = fwd_dlp_scan_new(dlp, FWD_DLP_RAW);
	v->sc[V_B64U] = fwd_dlp_scan_new(dlp, FWD_DLP_RAW);
	for (int i = 0; i < V_N; i++) {
		if (v->sc[i] == NULL) {
			fwd_dlp_views_free(v);
			return NULL;
		}
	}
	fwd_b64_init(&v->b64[0], 0);
	fwd_b64_init(&v->b64[1], 1);
	return v;
}

void fwd_dlp_views_reset(struct fwd_dlp_views *v)
{
	if (v->magic != VIEWS_MAGIC)
		abort();
	for (int i = 0; i < V_N; i++)
		fwd_dlp_scan_reset(v->sc[i]);
	fwd_b64_init(&v->b64[0], 0);
	fwd_b64_init(&v->b64[1], 1);
	v->hit = 0;
	v->inflated = 0;
	v->pct_on = 0;
	v->b64u_on = 0;
}

/* Index of the first byte of p[0..n) that is a or b or c (n if none). */
static size_t first_of(const char *p, size_t n, int a, int b, int c)
{
	const char *x;

	if ((x = memchr(p, a, n)) != NULL)
		n = (size_t)(x - p);
	if ((x = memchr(p, b, n)) != NULL)
		n = (size_t)(x - p);
	if ((x = memchr(p, c, n)) != NULL)
		n = (size_t)(x - p);
	return n;
}

/* Decode in[0..len) with base64 decoder k into its scanner: 1 on a hit. */
static int b64_feed(struct fwd_dlp_views *v, int k, const uint8_t *in, size_t len)
{
	uint8_t piece[PIECE];

	while (len > 0) {
		size_t used, n = fwd_b64_decode(&v->b64[k], in, len, piece, sizeof piece, &used);
		if (n > 0 && fwd_dlp_scan_feed(v->sc[V_B64 + k], (const char *)piece, n)) {
			v->hit = V_B64 + k + 1;
			return 1;
		}
		in += used;
		len -= used;
	}
	return 0;
}

int fwd_dlp_views_feed(struct fwd_dlp_views *v, const char *data, size_t len)
{
	const uint8_t *in = (const uint8_t *)data;
	size_t k;

	if (v->magic != VIEWS_MAGIC)
		abort();
	if (v->hit)
		return 1;
	k = v->pct_on ? 0 : first_of(data, len, '%', '+', '%');
	if (fwd_dlp_scan_feed(v->sc[V_RAW], data, k)) {
		v->hit = V_RAW + 1;
		return 1;
	}
	if (k < len) {
		if (!v->pct_on) {
			fwd_dlp_scan_copy(v->sc[V_PCT], v->sc[V_RAW]);
			v->pct_on = 1;
		}
		if (fwd_dlp_scan_feed(v->sc[V_RAW], data + k, len - k)) {
			v->hit = V_RAW + 1;
			return 1;
		}
		if (fwd_dlp_scan_feed(v->sc[V_PCT], data + k, len - k)) {
			v->hit = V_PCT + 1;
			return 1;
		}
	}
	k = v->b64u_on ? 0 : first_of(data, len, '+', '/', '%');
	if (b64_feed(v, 0, in, k))
		return 1;
	if (k < len) {
		if (!v->b64u_on) {
			v->b64[1] = v->b64[0];
			v->b64[1].url_only = 1;
			fwd_dlp_scan_copy(v->sc[V_B64U], v->sc[V_B64]);
			v->b64u_on = 1;
		}
		if (b64_feed(v, 0, in + k, len - k) || b64_feed(v, 1, in + k, len - k))
			return 1;
	}
	return 0;
}

int fwd_dlp_views_finish(struct fwd_dlp_views *v)
{
	uint8_t tail[64];

	if (v->magic != VIEWS_MAGIC)
		abort();
	if (v->hit)
		return 1;
	for (int i = 0; i < V_N; i++) {
		size_t n;
		if ((i == V_PCT && !v->pct_on) || (i == V_B64U && !v->b64u_on))
			continue;   /* it would only repeat V_RAW / V_B64 */
		n = i >= V_B64 ? fwd_b64_end(&v->b64[i - V_B64], tail, sizeof tail) : 0;
		if ((n > 0 && fwd_dlp_scan_feed(v->sc[i], (const char *)tail, n)) ||
		    fwd_dlp_scan_finish(v->sc[i])) {
			v->hit = i + 1;
			return 1;
		}
	}
	return 0;
}

const struct fwd_dlp_hit *fwd_dlp_views_hit(const struct fwd_dlp_views *v, const char **view)
{
	static const char *const names[2][V_N] = {
		{ "", "percent-decoded", "base64-decoded", "base64-decoded" },
		{ "inflated", "inflated, percent-decoded", "inflated, base64-decoded", "inflated, base64-decoded" },
	};

	if (!v->hit)
		return NULL;
	if (view != NULL)
		*view = names[v->inflated != 0][v->hit - 1];
	return fwd_dlp_scan_hit(v->sc[v->hit - 1]);
}

void fwd_dlp_views_free(struct fwd_dlp_views *v)
{
	if (v == NULL)
		return;
	if (v->magic != VIEWS_MAGIC)
		abort();
	v->magic = 0;
	for (int i = 0; i < V_N; i++)
		fwd_dlp_scan_free(v->sc[i]);
	free(v);
}

int fwd_dlp_views_buffer(struct fwd_dlp_views *v, const char *data, size_t len,
    struct fwd_dlp_hit *hit, const char **view)
{
	const struct fwd_dlp_hit *h;

	fwd_dlp_views_reset(v);
	if (!fwd_dlp_views_feed(v, data, len) && !fwd_dlp_views_finish(v))
		return 0;
	h = fwd_dlp_views_hit(v, view);
	if (hit != NULL)
		*hit = *h;
	return 1;
}

/* ---------- bodies ---------- */

#define INFLATE_RATIO 100          /* decoded bytes per compressed byte, at most */
#define INFLATE_RATIO_TEXT "100"
#define INFLATE_FLOOR (1u << 20)   /* a small body may always decode to 1 MiB */

static int emit_views(void *arg, const uint8_t *p, size_t len)
{
	return fwd_dlp_views_feed(arg, (const char *)p, len);
}

static enum fwd_dlp_body_rc body_hit(struct fwd_dlp_views *v, struct fwd_dlp_hit *hit, const char **view)
{
	*hit = *fwd_dlp_views_hit(v, view);
	return FWD_DLP_BODY_HIT;
}

enum fwd_dlp_body_rc fwd_dlp_scan_body(struct fwd_dlp_views *v, const char *data, size_t len, int complete,
    enum fwd_coding coding, uint64_t max, struct fwd_dlp_hit *hit, const char **view, const char **why)
{
	int cut = !complete || len > max;
	size_t n = len > max ? (size_t)max : len;

	/* the bytes as sent, always: a body that says gzip and is not is read
	 * by whoever ignores the header */
	fwd_dlp_views_reset(v);
	if (fwd_dlp_views_feed(v, data, n) || (!cut && fwd_dlp_views_finish(v)))
		return body_hit(v, hit, view);
	*why = "larger than max_scan_bytes";
	if (coding == FWD_CODING_IDENTITY)
		return cut ? FWD_DLP_BODY_PARTIAL : FWD_DLP_BODY_CLEAN;
	if (coding == FWD_CODING_OTHER) {
		*why = "Content-Encoding not decoded";
		return FWD_DLP_BODY_PARTIAL;
	}
	/* What a small body may cost: inflating runs on the worker's loop, and
	 * at zlib's 1000:1 a 16 KB upload would buy 16 MiB of scanning in every
	 * view.  Text and JSON compress 5-20x; past INFLATE_RATIO (and a floor
	 * for small bodies) the body is a bomb, handled as oversize. */
	uint64_t dcap = (uint64_t)n * INFLATE_RATIO;
	if (dcap < INFLATE_FLOOR)
		dcap = INFLATE_FLOOR;
	if (dcap > max)
		dcap = max;
	fwd_dlp_views_reset(v);
	v->inflated = 1;
	switch (fwd_dlp_inflate(coding, (const uint8_t *)data, n, dcap, emit_views, v, NULL)) {
	case FWD_INFLATE_STOP:
		return body_hit(v, hit, view);
	case FWD_INFLATE_END:
		if (cut)
			return FWD_DLP_BODY_PARTIAL;   /* the body goes on past the stream we saw */
		if (fwd_dlp_views_finish(v))
			return body_hit(v, hit, view);
		return FWD_DLP_BODY_CLEAN;
	case FWD_INFLATE_SHORT:
		if (!cut)
			*why = "not valid gzip/deflate";   /* the whole body, and the stream is truncated */
		return FWD_DLP_BODY_PARTIAL;
	case FWD_INFLATE_CAP:
		*why = dcap < max ? "decoded more than " INFLATE_RATIO_TEXT " times its size (a compression bomb)" :
		    "decoded larger than max_scan_bytes";
		return FWD_DLP_BODY_PARTIAL;
	case FWD_INFLATE_BAD:
		*why = "not valid gzip/deflate";
		return FWD_DLP_BODY_PARTIAL;
	case FWD_INFLATE_NOMEM:
		break;
	}
	return FWD_DLP_BODY_NOMEM;
}
