/*
 * forward/block: render the block page (see block.h).
 */
#include "forward/block.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "core/status.h"

static void add(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len + 1 >= cap)
		return;
	if (n > cap - *len - 1)
		n = cap - *len - 1;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

static void add_text(char *buf, size_t cap, size_t *len, const char *s)
{
	for (; *s && *len + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		buf[(*len)++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[*len] = '\0';
}

static void row(char *buf, size_t cap, size_t *len, int html, const char *label, const char *v)
{
	if (html) {
		add(buf, cap, len, "<tr><th>");
		add(buf, cap, len, label);
		add(buf, cap, len, "</th><td>");
		gw_html_escape(buf, cap, len, v);
		add(buf, cap, len, "</td></tr>\n");
	} else {
		add(buf, cap, len, label);
		add(buf, cap, len, ": ");
		add_text(buf, cap, len, v);
		add(buf, cap, len, "\n");
	}
}

size_t fwd_block_render(char *buf, size_t cap, int html, const struct fwd_block *b)
{
	size_t len = 0;
	char when[64];
	struct tm tm;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	localtime_r(&b->when, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
	if (html) {
		add(buf, cap, &len, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		    "<title>Blocked by the web gateway</title>\n<style>body{font-family:sans-serif;"
		    "margin:3em;max-width:50em}th{text-align:left;padding-right:1em;vertical-align:top}"
		    "td{word-break:break-all}</style></head><body>\n"
		    "<h1>This page is blocked</h1>\n"
		    "<p>The company's web gateway did not let this request through.</p>\n<table>\n");
	} else {
		add(buf, cap, &len, "Blocked by the web gateway (403 Forbidden)\n\n");
	}
	row(buf, cap, &len, html, "URL", b->url ? b->url : "-");
	row(buf, cap, &len, html, "Reason", b->reason ? b->reason : "-");
	row(buf, cap, &len, html, "Time", when);
	row(buf, cap, &len, html, "Request id", b->request_id ? b->request_id : "-");
	if (html)
		add(buf, cap, &len, "</table>\n");
	if (b->contact != NULL && b->contact[0] != '\0') {
		if (html) {
			add(buf, cap, &len, "<p class=\"contact\">");
			gw_html_escape(buf, cap, &len, b->contact);
			add(buf, cap, &len, "</p>\n");
		} else {
			add(buf, cap, &len, "\n");
			add_text(buf, cap, &len, b->contact);
			add(buf, cap, &len, "\n");
		}
	}
	if (html)
		add(buf, cap, &len, "<p><small>Quote the request id when you ask about this page."
		    "</small></p>\n</body></html>\n");
	else
		add(buf, cap, &len, "\nQuote the request id when you ask about this page.\n");
	return len;
}

/* An output that counts past its capacity, so one function both measures
 * and writes. */
struct out {
	char *buf;
	size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void put_escaped(struct out *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&': put(o, "&amp;", 5); break;
		case '<': put(o, "&lt;", 4); break;
		case '>': put(o, "&gt;", 4); break;
		case '"': put(o, "&quot;", 6); break;
		case '\'': put(o, "&#39;", 5); break;
		default:
			put(o, c < 0x20 || c == 0x7f ? "?" : s, 1);
		}
	}
}

size_t fwd_block_render_template(char *buf, size_t cap, const char *t, size_t tlen,
    const struct fwd_block *b)
{
	struct out o = { buf, cap > 0 ? cap - 1 : 0, 0 };
	char when[64];
	struct tm tm;

	localtime_r(&b->when, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
	for (size_t i = 0; i < tlen;) {
		const char *v = NULL, *e;
		size_t n;

		if (i + 1 >= tlen || t[i] != '{' || t[i + 1] != '{' ||
		    (e = memmem(t + i + 2, tlen - i - 2, "}}", 2)) == NULL) {
			put(&o, t + i, 1);
			i++;
			continue;
		}
		n = (size_t)(e - (t + i + 2));
#define IS(name) (n == sizeof(#name) - 1 && memcmp(t + i + 2, #name, n) == 0)
		if (IS(reason)) v = b->reason;
		else if (IS(rule)) v = b->rule;
		else if (IS(url)) v = b->url;
		else if (IS(request_id)) v = b->request_id;
		else if (IS(contact)) v = b->contact != NULL ? b->contact : "";
		else if (IS(client)) v = b->client;
		else if (IS(user)) v = b->user;
		else if (IS(time)) v = when;
		else {   /* not ours (checked at load, so only if the lists drift): keep it */
			put(&o, t + i, n + 4);
			i += n + 4;
			continue;
		}
#undef IS
		put_escaped(&o, v != NULL ? v : "-");
		i += n + 4;
	}
	if (cap > 0)
		buf[o.len < cap - 1 ? o.len : cap - 1] = '\0';
	return o.len;
}

int fwd_block_wants_html(const char *accept, size_t len)
{
	static const char *const types[] = { "text/html", "application/xhtml+xml" };

	for (size_t t = 0; t < 2; t++) {
		size_t n = strlen(types[t]);
		for (size_t i = 0; i + n <= len; i++)
			if (strncasecmp(accept + i, types[t], n) == 0)
				return 1;
	}
	return 0;
}
