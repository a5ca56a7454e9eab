/* core/status: the generated-response table and error pages (see status.h). */
#include "core/status.h"

#include <stdio.h>
#include <string.h>

struct status_ent {
	int code;
	const char *reason;
	const char *text;
};

static const struct status_ent table[] = {
#define X(c, r, t) { c, r, t },
	GW_STATUSES(X)
#undef X
};

static const struct status_ent *lookup(int status)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (table[i].code == status)
			return &table[i];
	return NULL;
}

const char *gw_status_reason(int status)
{
	const struct status_ent *e = lookup(status);

	if (e != NULL)
		return e->reason;
	if (status == 100)
		return "Continue";
	if (status == 101)
		return "Switching Protocols";
	if (status == 204)
		return "No Content";
	if (status == 206)
		return "Partial Content";
	return "Unknown";
}

const char *gw_status_text(int status)
{
	const struct status_ent *e = lookup(status);

	return e != NULL ? e->text : "";
}

void gw_html_escape(char *buf, size_t cap, size_t *len, const char *s)
{
	for (; *s != '\0' && *len + 7 < cap; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		}
		if (rep != NULL) {
			size_t n = strlen(rep);
			memcpy(buf + *len, rep, n);
			*len += n;
		} else {
			buf[(*len)++] = *s;
		}
	}
	buf[*len] = '\0';
}

size_t gw_status_page(char *buf, size_t cap, int status, int html, const char *detail,
    const char *request_id)
{
	const char *reason = gw_status_reason(status);
	const char *text = gw_status_text(status);
	size_t len = 0;
	int r;

	if (cap == 0)
		return 0;
	/* A detail that only repeats the status's own line would be shown twice. */
	if (detail != NULL && (detail[0] == '\0' || strcmp(detail, text) == 0))
		detail = NULL;
	if (!html) {
		r = snprintf(buf, cap, "%d %s\n%s\n%s%s%srequest id: %s\n", status, reason, text,
		    detail ? detail : "", detail ? "\n" : "", "", request_id);
		return r < 0 ? 0 : (size_t)r < cap ? (size_t)r : cap - 1;
	}
	r = snprintf(buf, cap,
	    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title>"
	    "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;"
	    "padding:0 1em;color:#222}h1{font-size:1.5em}code{background:#eee;padding:0 .3em}"
	    "</style></head>\n<body><h1>%d %s</h1>\n<p>%s</p>\n", status, reason, status,
	    reason, text);
	if (r < 0 || (size_t)r >= cap)
		return 0;
	len = (size_t)r;
	if (detail != NULL && len + 16 < cap) {
		memcpy(buf + len, "<p>", 3);
		len += 3;
		gw_html_escape(buf, cap, &len, detail);
		if (len + 5 < cap) {
			memcpy(buf + len, "</p>\n", 5);
			len += 5;
		}
	}
	r = snprintf(buf + len, cap - len,
	    "<p><small>Request id <code>%s</code> &middot; Gatehouse</small></p>\n</body></html>\n",
	    request_id);
	if (r > 0)
		len += (size_t)r < cap - len ? (size_t)r : cap - len - 1;
	buf[len] = '\0';
	return len;
}
