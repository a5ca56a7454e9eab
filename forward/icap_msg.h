/*
 * forward/icap_msg: reading ICAP messages for forward/icap.c: a response
 * head (status, header fields), its Encapsulated offsets, OPTIONS'
 * extension lists (Transfer-Ignore/-Complete), and an encapsulated HTTP
 * head with its framing fields taken out.  Pure functions on buffers.
 */
#ifndef GW_FWD_ICAP_MSG_H
#define GW_FWD_ICAP_MSG_H

#include <stddef.h>

#define ICAP_HEAD_MAX (16 * 1024)     /* an ICAP head, and an encapsulated head, at most */

/* A parsed ICAP response head (pointers into the caller's buffer). */
struct fwd_icap_msg {
	int status;
	const char *hdrs;           /* after the status line */
	size_t hdrs_len;
	size_t len;                 /* whole head with the empty line */
};

/* Parse an ICAP response head at the start of buf: 1 complete, 0 more
 * needed, -1 malformed or over ICAP_HEAD_MAX. */
int fwd_icap_msg_parse(const char *buf, size_t len, struct fwd_icap_msg *h);
/* The value of header name in h (trimmed, *vlen its length), or NULL. */
const char *fwd_icap_msg_get(const struct fwd_icap_msg *h, const char *name, size_t *vlen);
/* Header name as a decimal number (at most 9 digits), else dflt. */
long fwd_icap_msg_num(const struct fwd_icap_msg *h, const char *name, long dflt);
/* Encapsulated value v[0..n): the offset of part (e.g. "res-hdr"), -1
 * absent, -2 bad. */
long fwd_icap_msg_encap(const char *v, size_t n, const char *part);
/* Is path's extension (before any query) in list ("jpg, png", "*")? */
int fwd_icap_msg_ext_listed(const char *list, const char *path, size_t plen);
/* Copy the head src[0..n) into dst without its Content-Length and
 * Transfer-Encoding lines; returns the length copied. */
size_t fwd_icap_msg_strip_framing(char *dst, const char *src, size_t n);

#endif
