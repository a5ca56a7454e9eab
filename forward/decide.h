/*
 * forward/decide: what the forward proxy decides about a request, as one
 * pure function over the compiled configuration: no I/O, no request
 * object, no allocation.  forward.c's on_request() gathers the facts of a
 * request and acts on the verdict; the console's policy tester
 * (admin/api_fwd.c) gathers the same facts from its form and shows the
 * verdict.  Both therefore run the same checks in the same order:
 *
 *   1. allow_clients                         deny 403   rule allow_clients
 *   2. origin-form or "*" (the proxy itself)  local      /proxy.pac, /wpad.dat
 *      (GET/HEAD): 200, or 404 without forward.pac (rule pac); else 400
 *   3. CONNECT to a port outside connect_ports  deny 403  rule connect_ports
 *      an https:// URL without CONNECT          local 501
 *      a WebSocket upgrade outside websocket_ports  deny 403  websocket_ports
 *   4. an IP-literal host: deny_destinations, then our own listeners and
 *      console, judged as the address it reaches   deny 403
 *   5. credentials sent and the policy can use them: verdict "verify"
 *      (the caller checks them, which takes I/O, and decides again with
 *      the outcome)
 *   6. the URL normalised (fwd_url_normalise)  local 400 when it cannot be
 *   7. the policy: an "auth" rule is satisfied by a signed-in user and
 *      evaluation goes on after it; unsatisfied, 407 (worded by the outcome
 *      of the credentials: auth-failed, auth-backoff; auth-busy 503 (also
 *      when the directory is unreachable), auth-throttled 429); no rule or
 *      a deny rule 403; allow.
 *
 * What needs I/O stays with the callers: resolving a name (each resolved
 * address then goes through fwd_dest_check(), in forward.c on_resolved()),
 * verifying a password, DLP on what the request carries.
 */
#ifndef GW_FORWARD_DECIDE_H
#define GW_FORWARD_DECIDE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "core/http1.h"
#include "forward/policy.h"

struct conf;

/* Verdicts, as logged (verdict=) and shown by the console. */
#define FWD_VERDICTS(X) \
	X(ALLOW, "allow") \
	X(DENY, "deny") \
	X(LOCAL, "local")                  /* answered by the proxy itself (PAC, 400, 501) */ \
	X(AUTH, "auth")                    /* 407: sign in */ \
	X(AUTH_FAILED, "auth-failed")      /* 407: the credentials sent are wrong */ \
	X(AUTH_BACKOFF, "auth-backoff")    /* 407: refused unchecked after failures */ \
	X(AUTH_BUSY, "auth-busy")          /* 503: the verification could not run */ \
	X(AUTH_THROTTLED, "auth-throttled") /* 429: too many checks in flight */ \
	X(VERIFY, "verify")                /* not final: check the credentials, decide again */

enum fwd_verdict_kind {
#define X(id, s) FWD_V_##id,
	FWD_VERDICTS(X)
#undef X
	FWD_V_COUNT
};

/* The checks, in their order (fwd_verdict.stage says which one decided). */
#define FWD_STAGES(X) \
	X(CLIENTS, "allow_clients") \
	X(LOCAL, "local") \
	X(CONNECT_PORTS, "connect_ports") \
	X(SCHEME, "scheme") \
	X(WEBSOCKET_PORTS, "websocket_ports") \
	X(DESTINATION, "destination") \
	X(CREDENTIALS, "credentials") \
	X(URL, "url") \
	X(POLICY, "policy")

enum fwd_stage {
#define X(id, s) FWD_STAGE_##id,
	FWD_STAGES(X)
#undef X
	FWD_STAGE_COUNT
};

/* What became of the request's credentials (the caller verifies them). */
enum fwd_cred {
	FWD_CRED_NONE,        /* none sent (or none the policy can use) */
	FWD_CRED_GIVEN,       /* sent, not checked yet: the verdict may be "verify" */
	FWD_CRED_OK,          /* verified: fwd_facts.user is signed in */
	FWD_CRED_BAD,         /* wrong user or password, or not Basic */
	FWD_CRED_BACKOFF,     /* refused unchecked (per-client backoff) */
	FWD_CRED_BUSY,        /* the check could not run (queue full, out of memory) */
	FWD_CRED_THROTTLED,   /* too many checks in flight for this client or user */
	FWD_CRED_DIR_DOWN     /* the directory (LDAP) could not be reached: no sign-in or no
	                       * groups, nothing cached (503 "directory unreachable") */
};

/* What fwd_decide() reads of one configuration snapshot: made by forward.c
 * when it compiles the snapshot, immutable after, borrowed pointers. */
struct fwd_decider {
	uint32_t magic;
	const struct fwd_policy *policy;
	const struct conf *cf;     /* listeners (own-listener check), forward.pac */
	int auth_db;               /* forward.auth is configured */
	int auth_used;             /* some rule can use a user: credentials are checked */
};

/* Set up dc for policy p of configuration cf (both outlive dc). */
void fwd_decider_init(struct fwd_decider *dc, const struct fwd_policy *p, const struct conf *cf);

/* The facts of one request.  Every pointer is borrowed for the call. */
struct fwd_facts {
	const struct sockaddr *client;   /* AF_INET/AF_INET6 */
	enum gw_target_form form;        /* origin-form and "*" are meant for the proxy itself */
	int connect;                     /* the method is CONNECT */
	int https;                       /* an absolute-form target with scheme https */
	int inspected;                   /* read inside an inspected CONNECT (https is fine) */
	int websocket;                   /* an Upgrade: websocket request (a tunnel after 101) */
	const char *method;              /* NUL-terminated, as sent (case-sensitive) */
	const char *host;                /* NUL-terminated, lower-case; "" for origin-form */
	size_t host_len;
	uint16_t port;
	const char *target;              /* absolute-form: the URL as sent (normalised here) */
	size_t target_len;
	const char *path;                /* origin-form: path and query */
	size_t path_len;
	enum fwd_cred cred;
	const char *user;                /* cred FWD_CRED_OK: the signed-in user, else ignored */
	const char *user_short;          /* ... a Kerberos principal's name without "@REALM" (NULL) */
	const char *const *groups;       /* ... and that user's groups */
	size_t ngroups;
	const struct tm *local_time;     /* for `hours`; NULL: they never match */
	int explain;                     /* also say why for an allow (the tester); the proxy
	                                  * leaves it 0: an allow is not formatted */
	/* work space, the caller's: a PCRE2 match block (fwd_matchdata_new())
	 * and room for the normalised URL: 3 * target_len + FWD_URL_NORM_EXTRA
	 * bytes (absolute-form without CONNECT only) */
	struct fwd_matchdata *md;
	char *url_buf;
	size_t url_cap;
};

/* The answer. */
struct fwd_verdict {
	enum fwd_verdict_kind verdict;
	enum fwd_stage stage;
	const char *rule;          /* static, or the policy's rule name (lives with the
	                            * policy); NULL when no rule is named (local answers) */
	int status;                /* the proxy's answer: 200 for an allow (the origin's
	                            * status then), 0 for "verify" */
	char reason[512];          /* why, for the block page, the log and the tester;
	                            * "" for an allow unless facts.explain */
	struct fwd_match match;    /* stage POLICY: what the rule matched (rule_index
	                            * SIZE_MAX: no rule matched); zero elsewhere */
	const char *url;           /* the normalised URL (in facts.url_buf) once stage URL
	                            * passed, else NULL */
	size_t url_len;
};

/*
 * Decide f under dc into *v.  Returns 0; -1 when dc is not a decider (NULL,
 * or its magic is wrong: a use after free), with v a deny 500.  Pure: reads
 * dc and f, writes v and f's work space only.
 */
int fwd_decide(const struct fwd_decider *dc, const struct fwd_facts *f, struct fwd_verdict *v);

/* "allow", "deny", ... (FWD_VERDICTS) and "allow_clients", ... (FWD_STAGES). */
const char *fwd_verdict_name(enum fwd_verdict_kind k);
const char *fwd_stage_name(enum fwd_stage s);

/* 1 if sa is one of our own listening addresses (forward, reverse or
 * console listeners of cf, metrics listener included), judged as the
 * address sa reaches (core/addr.h).  Pure. */
int fwd_own_listener(const struct conf *cf, const struct sockaddr *sa);

/* The destination checks for one address (after DNS, and before it for an
 * IP literal): returns the rule that refuses sa ("deny_destinations" of p
 * or "own_listener" of cf, static) with the reason in why, or NULL. Pure. */
const char *fwd_dest_check(const struct fwd_policy *p, const struct conf *cf, const struct sockaddr *sa,
    char *why, size_t cap);

/* Does host[0..n) match a pattern of l ("name"; "*.name": its subdomains;
 * ".name": the domain and its subdomains; patterns lower-case)?  Pure. */
int fwd_host_listed(const struct conf_strs *l, const char *host, size_t n);

/*
 * The inspection stage of an allowed CONNECT: 1 to inspect, 0 to tunnel it
 * as it is, with the reason in why (cap bytes): inspection off, the matching
 * rule m (the policy stage's match; NULL: none) says inspect = false, or the
 * CONNECT host (may be NULL) is in forward.inspect.bypass_domains or one of
 * its bypass_lists.  When the ClientHello's sni (NULL or "": none) names
 * another host, that name must be bypassed too: otherwise a client could
 * name a bypassed host in one place to carry another site uninspected.
 * Pure.
 */
int fwd_decide_inspect(const struct fwd_decider *dc, const char *host, const char *sni,
    const struct fwd_match *m, char *why, size_t cap);

#endif
