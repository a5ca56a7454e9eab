/*
 * core/status: the one table of responses Gatehouse generates itself.  Each
 * entry has the status code, the reason phrase and a one-line explanation
 * shown on the error page.  gw_status_page() renders a small HTML page for
 * browsers or plain text for other clients, naming the request id.
 */
#ifndef GW_STATUS_H
#define GW_STATUS_H

#include <stddef.h>

#define GW_STATUSES(X) \
	X(200, "OK", "") \
	X(301, "Moved Permanently", "The resource has moved.") \
	X(302, "Found", "The resource is elsewhere.") \
	X(303, "See Other", "The answer is elsewhere.") \
	X(304, "Not Modified", "") \
	X(307, "Temporary Redirect", "The resource is temporarily elsewhere.") \
	X(308, "Permanent Redirect", "The resource has moved.") \
	X(400, "Bad Request", "The request could not be understood.") \
	X(403, "Forbidden", "This request is not allowed.") \
	X(404, "Not Found", "Nothing is published at this address.") \
	X(405, "Method Not Allowed", "This method is not allowed here.") \
	X(407, "Proxy Authentication Required", "Please sign in to use the proxy.") \
	X(408, "Request Timeout", "The request took too long to arrive.") \
	X(411, "Length Required", "The request body needs a length.") \
	X(412, "Precondition Failed", "A precondition of the request failed.") \
	X(413, "Content Too Large", "The request body is too large.") \
	X(414, "URI Too Long", "The request address is too long.") \
	X(416, "Range Not Satisfiable", "The requested range is not available.") \
	X(417, "Expectation Failed", "The expectation in the request cannot be met.") \
	X(421, "Misdirected Request", "This server does not serve that host.") \
	X(429, "Too Many Requests", "Too many requests; please slow down.") \
	X(431, "Request Header Fields Too Large", "The request headers are too large.") \
	X(500, "Internal Server Error", "Something went wrong inside the gateway.") \
	X(501, "Not Implemented", "The gateway does not support this request.") \
	X(502, "Bad Gateway", "The server behind the gateway failed to answer properly.") \
	X(503, "Service Unavailable", "No server is available to answer.") \
	X(504, "Gateway Timeout", "The server behind the gateway did not answer in time.") \
	X(505, "HTTP Version Not Supported", "This HTTP version is not supported.")

/* Reason phrase for a status ("Unknown" if not in the table). */
const char *gw_status_reason(int status);
/* Explanation for a status ("" if none). */
const char *gw_status_text(int status);

/*
 * Render an error page into buf (at most cap bytes, NUL-terminated).
 * html selects HTML (else text/plain).  detail may be NULL (extra line, e.g.
 * the rule that blocked); it is HTML-escaped.  Returns the body length.
 */
size_t gw_status_page(char *buf, size_t cap, int status, int html, const char *detail,
    const char *request_id);

/* Append s HTML-escaped into buf at *len (bounded by cap). */
void gw_html_escape(char *buf, size_t cap, size_t *len, const char *s);

#endif
