/*
 * forward/policy: the forward proxy's access policy, compiled from
 * struct conf_forward into immutable data (one struct fwd_policy per config
 * snapshot) and evaluated by a pure function.
 *
 * Semantics (forward.policy in the config):
 *   - rules are tried in order; the first rule whose matchers ALL match wins;
 *     no matching rule = deny (fwd_policy_eval returns NULL);
 *   - when the config has no `policy` at all (conf_forward.policy_present == 0)
 *     the compiler adds one implicit rule named "default" that allows
 *     everything (clients are still limited by allow_clients);
 *   - unnamed rules are called "rule N" (N = 1-based position).
 * Matchers:
 *   clients  CIDRs, against the client address (conf_cidr_match);
 *   users    exact, case-sensitive user names; never matches an
 *            unauthenticated request (user == NULL); a Kerberos principal
 *            "alice@CORP.EXAMPLE" is matched by "alice@CORP.EXAMPLE" and
 *            by "alice" (its user_short);
 *   groups   exact, case-sensitive group names; matches when any of the
 *            request's groups is listed;
 *   domains  "example.com"   the host exactly;
 *            "*.example.com" strict subdomains only (not example.com);
 *            ".example.com"  example.com AND its subdomains (as squid's
 *                            dstdomain);
 *            IP literals match the literal IP host only.  Case-insensitive,
 *            a trailing dot on the host is ignored;
 *   lists    names of forward.lists entries (fwd_domainset semantics: an
 *            entry matches the domain and its subdomains);
 *   urls     PCRE2 regexes (JIT-compiled) searched in the normalised request
 *            URL (fwd_url_normalise; callers pass that, not the raw target);
 *            a rule with urls never matches CONNECT (there is no URL);
 *   methods  request methods; compiled upper-case, compared case-insensitively
 *            ("post" is an extension method to RFC 9110, but servers that
 *            read it as POST must not let it slip past a rule on POST);
 *   ports    destination port;
 *   hours    "[DAYS] [HH:MM-HH:MM]", several strings allowed (any may match).
 *            DAYS: comma-separated days or day ranges (Mon..Sun, full names
 *            too, case-insensitive), ranges may wrap ("Fri-Mon"); omitted =
 *            every day.  The time range is [start, end): "09:00-17:00"
 *            matches 09:00:00 up to 16:59:59; end may be 24:00; start must be
 *            before end (write an overnight window as two strings); omitted =
 *            all day.  Evaluated in the local time the caller supplies;
 *   schemes  "http" (plain proxied requests) and "connect" (CONNECT tunnels).
 *
 * Threads and allocation: compile on the main thread; the compiled policy is
 * read-only and may be shared by every worker.  fwd_policy_eval() never
 * allocates and has no side effects; URL regexes need a pcre2 match block,
 * which the caller creates once per worker thread with fwd_matchdata_new()
 * and passes in the request (it does not depend on the policy, so it
 * survives reloads).  The PCRE2 JIT uses its default 32 KiB on-stack area.
 *
 * Hit counters: the policy has no mutable state.  The caller keeps an array
 * of fwd_policy_nrules() counters (atomics, per-worker shards, ...) and bumps
 * element why.rule_index after each evaluation.
 */
#ifndef GW_FORWARD_POLICY_H
#define GW_FORWARD_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"

struct fwd_policy;
struct fwd_rule;
struct fwd_domainset;
struct fwd_matchdata;   /* a pcre2_match_data (8-bit) */

enum fwd_scheme { FWD_SCHEME_HTTP, FWD_SCHEME_CONNECT };

/* One request as the policy sees it.  All pointers are borrowed for the call. */
struct fwd_request {
	const struct sockaddr *client;   /* AF_INET/AF_INET6; NULL: `clients` never match */
	const char *user;                /* authenticated user; NULL if none */
	const char *user_short;          /* a principal's name without "@REALM" ("alice" of
	                                  * "alice@CORP.EXAMPLE"): `users` match either; NULL */
	const char *const *groups;       /* the user's groups (from the auth module) */
	size_t ngroups;
	enum fwd_scheme scheme;
	const char *method;              /* e.g. "GET", "CONNECT"; NUL-terminated */
	const char *host;                /* NUL-terminated; lower-case expected (matching is
	                                  * case-insensitive anyway); may end with '.';
	                                  * IPv6 literal with or without brackets */
	uint16_t port;
	const char *url;                 /* absolute URL for HTTP, normalised by
	                                  * fwd_url_normalise(); NULL for CONNECT */
	size_t url_len;                  /* 0: strlen(url) */
	const struct sockaddr *resolved; /* resolved destination, NULL before DNS; no rule
	                                  * matcher uses it today (see fwd_dest_denied) */
	const struct tm *local_time;     /* caller's localtime_r(); NULL: `hours` never match */
	struct fwd_matchdata *md;        /* per-thread, from fwd_matchdata_new(); NULL:
	                                  * `urls` never match */
};

/* What the winning rule matched on (pointers into the policy, valid while it lives). */
struct fwd_match {
	size_t rule_index;        /* 0-based index of the rule; SIZE_MAX when no rule matched */
	const char *rule_name;    /* "name" or "rule N"; "no matching rule" when none */
	enum conf_action action;  /* CONF_ACT_DENY when no rule matched */
	const char *list;         /* list name that matched, or NULL */
	const char *list_entry;   /* the list entry that matched, or NULL */
	const char *domain;       /* domains pattern that matched (as written), or NULL */
	const char *url;          /* urls regex that matched (as written), or NULL */
	const char *hours;        /* hours string that matched, or NULL */
};

/*
 * Compile cf->forward's policy, lists (loaded from their files), and
 * deny_destinations/allow_clients/connect_ports.  The result does not point
 * into cf (cf may be freed first).  On error appends "FILE:LINE: key: ..." to
 * errs for every problem found (bad regex with PCRE2's message and offset,
 * list file cannot be opened, unknown or duplicate list name, bad hours,
 * bad domain pattern, unknown scheme) and returns NULL.  errs must not be
 * NULL.  Runs on the main thread: loading big lists takes ~0.25 s per million
 * entries.
 */
struct fwd_policy *fwd_policy_compile(const struct conf *cf, struct conf_errors *errs);

/* Free a compiled policy (NULL is fine).  No thread may still be using it. */
void fwd_policy_free(struct fwd_policy *p);

/*
 * Evaluate rq.  Returns the first matching rule (owned by p) and fills *why
 * (if non-NULL); returns NULL (= deny) when no rule matches, with why filled
 * as described in struct fwd_match.  Pure: no allocation, no side effects.
 */
const struct fwd_rule *fwd_policy_eval(const struct fwd_policy *p, const struct fwd_request *rq,
    struct fwd_match *why);

/*
 * Format why for the access log / block page, e.g.
 *   rule "no-malware" (deny): list malware entry "evil.example"
 * Returns snprintf's result.
 */
int fwd_match_format(const struct fwd_match *why, char *buf, size_t len);

/* Rules, for hit counters and the console (index = why.rule_index). */
size_t fwd_policy_nrules(const struct fwd_policy *p);
const char *fwd_policy_rule_name(const struct fwd_policy *p, size_t i);
enum conf_action fwd_policy_rule_action(const struct fwd_policy *p, size_t i);
size_t fwd_rule_index(const struct fwd_rule *r);
const char *fwd_rule_name(const struct fwd_rule *r);
enum conf_action fwd_rule_action(const struct fwd_rule *r);
const char *fwd_action_name(enum conf_action a);   /* "allow", "deny", "auth" */

/* 1 if some rule has `urls` (the caller then must pass a match block). */
int fwd_policy_has_urls(const struct fwd_policy *p);

/*
 * The compiled lists, for stats and for logging skipped lines after a load
 * (fwd_domainset_count / fwd_domainset_invalid).  fwd_policy_list: NULL if no
 * such list; fwd_policy_list_name: NULL if i >= fwd_policy_nlists.
 */
const struct fwd_domainset *fwd_policy_list(const struct fwd_policy *p, const char *name);
size_t fwd_policy_nlists(const struct fwd_policy *p);
const char *fwd_policy_list_name(const struct fwd_policy *p, size_t i);

/* 1 if sa (a resolved destination) is in forward.deny_destinations, judged
 * as the address it reaches (core/addr.h): canonical (::ffff:a.b.c.d is
 * a.b.c.d), unspecified as loopback (0.0.0.0/8 as 127.0.0.1, :: as ::1),
 * and NAT64/6to4 addresses also by the IPv4 address they carry. Pure. */
int fwd_dest_denied(const struct fwd_policy *p, const struct sockaddr *sa);
/* 1 if sa (a client) is in forward.allow_clients (an empty list allows nobody). Pure. */
int fwd_client_allowed(const struct fwd_policy *p, const struct sockaddr *sa);
/* 1 if port is in forward.connect_ports. Pure. */
int fwd_connect_port_allowed(const struct fwd_policy *p, uint16_t port);
/* 1 if a WebSocket upgrade (which becomes a raw tunnel after the 101) may go
 * to port: forward.websocket_ports, or when absent connect_ports and 80. Pure. */
int fwd_websocket_port_allowed(const struct fwd_policy *p, uint16_t port);

/*
 * The URL `urls` rules are matched against (fwd_request.url), from the raw
 * absolute-form target url[0..len): scheme and host lower-case, the host
 * canonical (core/addr.h; IPv6 in brackets), the port only when not the
 * scheme's default, an empty path "/"; in path and query every %XX of an
 * unreserved character (ALPHA DIGIT - . _ ~) decoded and every other %XX
 * kept with upper-case hex (so %2F stays "%2F": a rule on a path segment
 * must allow for it, e.g. "/a(/|%2F)b"); then dot-segments resolved (RFC
 * 3986 5.2.4, also ".%2e" and "..;x" as Tomcat reads it) and empty segments
 * merged ("//" -> "/").  The query keeps its dots and slashes, and a '%'
 * in it without two hex digits becomes "%25" (browsers send "?q=100%").
 * out must hold 3 * len + FWD_URL_NORM_EXTRA bytes; the result is
 * NUL-terminated, its length in *outlen.  Returns NULL, or a static reason
 * (a '%' without two hex digits in the path: servers such as IIS read
 * "%u0061" as "a"; a bad or ambiguous host; not http(s)://): forward
 * answers 400 and the console's tester reports it.  Pure.
 */
#define FWD_URL_NORM_EXTRA 64
const char *fwd_url_normalise(const char *url, size_t len, char *out, size_t cap, size_t *outlen);

/* Per-thread PCRE2 match block for fwd_request.md; NULL on OOM. */
struct fwd_matchdata *fwd_matchdata_new(void);
void fwd_matchdata_free(struct fwd_matchdata *md);

/*
 * Same as fwd_policy_eval() but starts at rule index first (0 is
 * fwd_policy_eval; first >= nrules: no match).  forward.c uses it to
 * treat a matching "auth" rule as satisfied once the user is authenticated:
 * evaluation then continues with the rules after it.  Pure.
 */
const struct fwd_rule *fwd_policy_eval_from(const struct fwd_policy *p, const struct fwd_request *rq,
    size_t first, struct fwd_match *why);

#endif
