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
	const char *rule;         /* the rule name (template only); NULL = "-" */
	const char *client;       /* client address (template only) */
	const char *user;         /* signed-in user (template only); NULL = "-" */
};

/*
 * Render into buf (cap bytes, NUL-terminated; cut if too small).  Every
 * field is HTML-escaped in HTML mode; in text mode control characters are
 * shown as '?'.  Returns the body length.
 */
size_t fwd_block_render(char *buf, size_t cap, int html, const struct fwd_block *b);

/*
 * Render the operator's HTML template t[0..tlen) (forward.block_page, its
 * placeholders checked at load: CONF_BLOCK_PLACEHOLDERS) into buf (cap
 * bytes, NUL-terminated, cut if too small; buf may be NULL with cap 0 to
 * measure).  Every "{{name}}" becomes b's value HTML-escaped (control
 * characters as '?'); an unknown one is copied as is.  Returns the length
 * the whole page needs (not counting the NUL), which may exceed cap.
 */
size_t fwd_block_render_template(char *buf, size_t cap, const char *t, size_t tlen,
    const struct fwd_block *b);

/* 1 if an Accept header value asks for HTML (text/html or application/xhtml+xml). */
int fwd_block_wants_html(const char *accept, size_t len);

#endif
