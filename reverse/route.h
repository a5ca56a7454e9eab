/*
 * reverse/route: which site and which route serve a request.
 *
 * rev_routes_compile() turns the reverse.sites part of a loaded config into an
 * immutable lookup structure; the lookups are pure (no I/O, no allocation, no
 * locking), so any worker thread may run them on a shared struct rev_routes
 * and the admin console's tester runs exactly the same code.
 *
 * Host matching (rev_site_find):
 *   - case-insensitive; a ":port" suffix is ignored; "[v6]" and "[v6]:port"
 *     match the configured host "[v6]" or "v6" (brackets are stripped on both
 *     sides); one trailing dot is ignored ("example.com." = "example.com").
 *   - exact names first; then the longest matching wildcard.  A wildcard
 *     "*.example.com" matches any subdomain at any depth ("a.example.com",
 *     "a.b.example.com"; nginx semantics) but not "example.com" itself;
 *     ".example.com" (nginx) is short for "example.com" + "*.example.com".
 *     The same name in two sites is a config error; twice in one site is not.
 *   - then the site with default = true; else NULL (the engine answers 404).
 *
 * Path matching (rev_route_find): the longest configured prefix that is a
 * plain byte-string prefix of the path part of the request target (the part
 * before '?' or '#'), nginx "location /prefix" style:
 *   "/api/" matches "/api/" and "/api/x", not "/api" or "/apix";
 *   "/api"  matches "/api", "/api/x" and also "/apix".
 * Matching is on the raw (still percent-encoded) bytes: the engine should
 * reject or normalise dot-segments before lookup if routes carry meaning.
 *
 * Ownership: the struct rev_routes owns copies of everything it exposes (it
 * does not point into the struct conf), so it may outlive the config.
 */
#ifndef GW_REV_ROUTE_H
#define GW_REV_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

#define REV_ROUTES_MAGIC 0x52545452u  /* "RTTR" */

enum rev_route_kind {
	REV_ROUTE_UPSTREAM = CONF_ROUTE_UPSTREAM,
	REV_ROUTE_STATIC = CONF_ROUTE_STATIC,
	REV_ROUTE_REDIRECT = CONF_ROUTE_REDIRECT
};

struct rev_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* One route of a site.  Read-only for everyone but route.c. */
struct rev_route {
	const char *prefix;            /* starts with '/' */
	size_t prefix_len;
	enum rev_route_kind kind;
	int upstream;                  /* UPSTREAM: index into conf->reverse.upstreams; else -1 */
	const char *upstream_name;     /* UPSTREAM: its name; else NULL */
	const char *static_dir;        /* STATIC: the root directory; else NULL */
	const char *redirect;          /* REDIRECT: target URL; else NULL */
	int redirect_status;           /* REDIRECT: 301, 302, 307 or 308 */
	int strip_prefix;              /* 1: remove prefix before forwarding / static lookup */
	int dotfiles;                  /* STATIC: serve names starting with '.' (REV_STATIC_DOTFILES) */
	int keep_path;                 /* REDIRECT: append the request's path and query */
	const struct rev_header *set_headers;   /* headers set on the upstream request */
	size_t nset_headers;
	uint64_t max_body_bytes;       /* 0 = the global limit applies */
	const char *src_file;          /* where the route was configured */
	int src_line;
};

/* One site (a group of host names).  Read-only for everyone but route.c. */
struct rev_site {
	size_t index;                  /* position in conf->reverse.sites */
	const char *name;              /* first host name (or "default"), for logs */
	const char *const *hosts;      /* lower-cased, as configured */
	size_t nhosts;
	int is_default;
	int force_https;
	struct conf_cidrs allow_clients;   /* empty = everyone; use conf_cidr_match() */
	struct conf_cidrs deny_clients;
	double rate_rps;               /* token bucket refill per second; 0 = no limit */
	double rate_burst;             /* bucket size */
	const struct rev_route *routes;    /* sorted: longest prefix first */
	size_t nroutes;
	const char *src_file;
	int src_line;
};

struct rev_routes;   /* opaque: the host index */

/*
 * Compile cf->reverse.sites.  Reports every problem through conf_err() with the
 * file and line of the site or route (unknown upstream name, the same host in
 * two sites, two default sites, a malformed host pattern, a duplicate route
 * prefix within a site, a route path not starting with '/', a redirect status
 * other than 301/302/307/308) and then returns NULL.  Returns a new struct
 * (caller owns, rev_routes_free()) on success.  A config without a reverse
 * group or without sites compiles to an empty table (every host: NULL).
 */
struct rev_routes *rev_routes_compile(const struct conf *cf, struct conf_errors *errs);

/* Free a table from rev_routes_compile (NULL is fine). */
void rev_routes_free(struct rev_routes *rt);

/* The sites in configuration order (for the console and for stats). */
size_t rev_routes_nsites(const struct rev_routes *rt);
const struct rev_site *rev_routes_site(const struct rev_routes *rt, size_t i);

/*
 * The site for a Host header value / absolute-form authority / SNI name
 * (host[:port], [v6][:port]), per the rules at the top.  host need not be
 * NUL-terminated.  Returns the default site for an unknown, empty or
 * malformed host, NULL when there is no default site.
 */
const struct rev_site *rev_site_find(const struct rev_routes *rt, const char *host, size_t len);

/*
 * Like rev_site_find but without the default-site fallback: NULL unless the
 * host is configured (exact or wildcard).  For "is this authority one of
 * ours?" (absolute-form targets must name a configured host).
 */
const struct rev_site *rev_site_find_configured(const struct rev_routes *rt, const char *host,
    size_t len);

/*
 * The route with the longest prefix matching the path part of target
 * (origin-form "/path?query"; need not be NUL-terminated).  NULL when no
 * route matches (the engine answers 404) or site is NULL.
 */
const struct rev_route *rev_route_find(const struct rev_site *site, const char *target, size_t len);

/*
 * Build the path+query sent upstream (or resolved under a static root) for
 * target matched by route r.  Without strip_prefix it is target unchanged.
 * With strip_prefix the matched prefix is removed and, if what is left does
 * not start with '/', a '/' is put in front:
 *   prefix "/api/": "/api/x?q=1" -> "/x?q=1", "/api/" -> "/"
 *   prefix "/api":  "/api" -> "/", "/api?q" -> "/?q", "/api/x" -> "/x", "/apix" -> "/x"
 * Writes into buf (NUL-terminated) and returns the length (without the NUL),
 * or -1 if bufsz is too small or target does not start with r's prefix.
 */
long rev_route_upstream_path(const struct rev_route *r, const char *target, size_t len,
    char *buf, size_t bufsz);

/*
 * The same from the target as the client sent it (raw, raw_len) and its
 * normalised form (norm, nlen, from rev_path_normalize): the client's octets
 * are kept (escapes stay as sent: "/%7Euser", "/a%2fb"; signed URLs keep
 * working) when normalising only decoded unreserved escapes or upper-cased
 * hex digits.  When it did more (dot-segments, "//" merged), or when the
 * strip_prefix boundary falls inside an escape the normaliser kept (the raw
 * boundary is then ambiguous), the normalised form is used instead, as
 * rev_route_upstream_path() builds it: the application never sees a path
 * that resolves differently from the one the route was chosen by.  A
 * fragment is dropped.  Same return values; *raw_used says which was used.
 */
long rev_route_upstream_path_raw(const struct rev_route *r, const char *raw, size_t raw_len,
    const char *norm, size_t nlen, char *buf, size_t bufsz, int *raw_used);

/*
 * Normalise the path part of an origin-form target before route lookup, so
 * that "/api/../admin" cannot reach a route by one prefix and be resolved by
 * the application under another (nginx does the same):
 *   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are
 *     decoded ("%2e" -> "."; "%2F" and other reserved ones stay encoded,
 *     hex digits of kept escapes are upper-cased);
 *   - "." and ".." segments are removed (RFC 3986 5.2.4);
 *   - runs of "/" are merged into one.
 * The query ("?..." and after) is copied unchanged; a fragment is dropped.
 * Writes the result NUL-terminated into buf and returns its length; -1 when
 * the path is invalid (does not start with '/', a malformed "%" escape, a
 * NUL byte, or ".." climbing above the root), -2 when bufsz is too small.
 */
long rev_path_normalize(const char *target, size_t len, char *buf, size_t bufsz);

#endif
