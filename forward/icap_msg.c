/*
 * forward/icap_msg: reading ICAP messages; see icap_msg.h.
 */
#include "forward/icap_msg.h"

#include <string.h>
#include <strings.h>


/* Parse an ICAP response head at the start of buf: 1 complete, 0 more
 * needed, -1 malformed or over ICAP_HEAD_MAX. */
int fwd_icap_msg_parse(const char *buf, size_t len, struct fwd_icap_msg *h)
{
	const char *end, *eol;

	if (len == 0)
		return 0;
	end = memmem(buf, len < ICAP_HEAD_MAX ? len : ICAP_HEAD_MAX, "\r\n\r\n", 4);
	if (end == NULL)
		return len >= ICAP_HEAD_MAX ? -1 : 0;
	if (end - buf < 12 || memcmp(buf, "ICAP/1.", 7) != 0 || buf[8] != ' ' ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9')
		return -1;
	h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	eol = memmem(buf, (size_t)(end - buf) + 2, "\r\n", 2);
	h->hdrs = eol + 2;
	h->hdrs_len = (size_t)(end + 2 - h->hdrs);
	h->len = (size_t)(end - buf) + 4;
	for (const char *p = buf; p < end; p++)
		if (*p == '\0')
			return -1;
	return 1;
}

/* The value of header name in h (trimmed), or NULL. */
const char *fwd_icap_msg_get(const struct fwd_icap_msg *h, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = h->hdrs, *e = h->hdrs + h->hdrs_len;

	while (p < e) {
		const char *eol = memmem(p, (size_t)(e - p), "\r\n", 2);
		if (eol == NULL)
			eol = e;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

long fwd_icap_msg_num(const struct fwd_icap_msg *h, const char *name, long dflt)
{
	size_t n;
	const char *v = fwd_icap_msg_get(h, name, &n);
	long r = 0;

	if (v == NULL || n == 0 || n > 9)
		return dflt;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return dflt;
		r = r * 10 + (v[i] - '0');
	}
	return r;
}

/* Encapsulated: the offset of part (e.g. "res-hdr"), -1 absent, -2 bad. */
long fwd_icap_msg_encap(const char *v, size_t n, const char *part)
{
	size_t pl = strlen(part);

	for (size_t i = 0; i + pl < n; i++) {
		if ((i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') && strncasecmp(v + i, part, pl) == 0 &&
		    v[i + pl] == '=') {
			long r = 0;
			size_t k = i + pl + 1, d = 0;
			while (k < n && v[k] >= '0' && v[k] <= '9' && d < 9)
				r = r * 10 + (v[k++] - '0'), d++;
			return d == 0 || (k < n && v[k] != ',' && v[k] != ' ') ? -2 : r;
		}
	}
	return -1;
}

int fwd_icap_msg_ext_listed(const char *list, const char *path, size_t plen)
{
	const char *q = memchr(path, '?', plen), *dot, *e;
	size_t el;

	if (q != NULL)
		plen = (size_t)(q - path);
	e = path + plen;
	for (dot = e; dot > path && dot[-1] != '.' && dot[-1] != '/'; dot--)
		;
	if (dot == path || dot[-1] != '.')
		return strcmp(list, "*") == 0;
	el = (size_t)(e - dot);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ", ");
		if ((n == 1 && *p == '*') || (n == el && strncasecmp(p, dot, n) == 0))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/* Copy the head src[0..n) into dst without its Content-Length and
 * Transfer-Encoding lines: the rewritten body's framing is the proxy's
 * (a service often leaves the original's length, or adds chunked beside
 * it); returns the length copied. */
size_t fwd_icap_msg_strip_framing(char *dst, const char *src, size_t n)
{
	size_t at = 0, i = 0;

	while (i < n) {
		const char *nl = memchr(src + i, '\n', n - i);
		size_t k = nl != NULL ? (size_t)(nl - (src + i)) + 1 : n - i;
		if (i == 0 || !((k > 15 && strncasecmp(src + i, "content-length:", 15) == 0) ||
		    (k > 18 && strncasecmp(src + i, "transfer-encoding:", 18) == 0))) {
			memcpy(dst + at, src + i, k);
			at += k;
		}
		i += k;
	}
	return at;
}

