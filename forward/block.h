/*
 * forward/block: the forward side's block page (403).  It tells the person
 * what was blocked (the URL), why (the rule, the list and entry, or the DLP
 * detector), when, the request id (the same as in the access log, so the
 * helpdesk can find the decision) and the operator's contact line.  HTML
 * for browsers, plain text for everything else.  Pure.
 */
#ifndef GW_FORWARD_BLOCK_H
#define GW_FORWARD_BLOCK_H

#include <stddef.h>
#include <time.h>

struct fwd_block {
	const char *url;          /* what was requested (URL, or host:port for CONNECT) */
	const char *reason;       /* e.g. rule "no-games" (deny): domain "*.games.example" */
	const char *request_id;
	const char *contact;      /* forward.block_contact; NULL or "" = none */
	time_t when;
};

/*
 * Render into buf (cap bytes, NUL-terminated; cut if too small).  Every
 * field is HTML-escaped in HTML mode; in text mode control characters are
 * shown as '?'.  Returns the body length.
 */
size_t fwd_block_render(char *buf, size_t cap, int html, const struct fwd_block *b);

/* 1 if an Accept header value asks for HTML (text/html or application/xhtml+xml). */
int fwd_block_wants_html(const char *accept, size_t len);

#endif
