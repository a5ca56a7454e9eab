/*
 * forward: decisions for the explicit proxy.
 *
 * Steps 1-5 are decided by fwd_decide() (forward/decide.c), a pure
 * function that the console's policy tester calls as well: fwd_rq_decide()
 * gathers the request's facts, calls it and acts on the verdict (and on
 * "verify", checks the credentials and decides again with the outcome).
 * A request goes through, in order:
 *   1. forward.allow_clients (403 block page);
 *   2. origin-form requests to the proxy itself: /proxy.pac and /wpad.dat
 *      (forward.pac), anything else 400;
 *   3. CONNECT port limits, https:// without CONNECT (501), WebSocket
 *      upgrades outside forward.websocket_ports (403: a tunnel after 101);
 *   3a. an IP-literal target: deny_destinations and our own listeners, judged
 *      as the address it reaches (core/addr.h), before any connection;
 *   4. Basic credentials, when the policy can use them (some rule has action
 *      "auth" or a users/groups matcher): the verified-credentials cache, else
 *      the verification pool (the request is deferred and resumes in
 *      auth_wake() on its worker) after the per-client backoff and the
 *      bounds on checks in flight per client and user (forward/auth.h);
 *   5. the policy (before DNS), on the normalised URL (fwd_url_normalise:
 *      an invalid escape in the path is 400) and canonical host.  An "auth"
 *      rule is satisfied by a valid user: evaluation continues after it;
 *      without one the answer is 407;
 *   6. DLP on plain-HTTP requests: the URL path and query and the header
 *      values at once, the body via gw_req_read_body() up to
 *      dlp.max_scan_bytes (within the process-wide dlp.max_scan_memory),
 *      decided in fwd_scan_on_body(); each in the views of forward/dlp_body.h (raw,
 *      percent-decoded, base64; bodies also inflated);
 *   7. header hygiene (credentials, anonymize) and gw_req_proxy(); every
 *      resolved address is then checked in on_resolved().
 *
 * Counters: per-worker rows of relaxed atomics (core/counters.h), summed by
 * the console (fwd_rule_hits).  They outlive a configuration generation, so
 * /metrics counters do not restart at a reload: the events are one set for
 * the process, and a rule's hits are kept by its name and action (names are
 * unique within a policy), which a reload that keeps the rule finds again.  What the console lists (top domains,
 * signed-in users, DLP hits) goes to forward/observe.c from on_done() and
 * dlp_hit().
 */
#include "forward/forward.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "conf/conf.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/events.h"
#include "core/counters.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/strlit.h"
#include "forward/auth.h"
#include "forward/block.h"
#include "forward/decide.h"
#include "forward/dlp.h"
#include "forward/dlp_body.h"
#include "forward/fwd_int.h"
#include "forward/fwd_tls.h"
#include "forward/icap.h"
#include "forward/inspect.h"
#include "forward/inspect_ca.h"
#include "forward/observe.h"
#include "forward/pac.h"
#include "forward/policy.h"
#include "forward/sso.h"

#define AUTH_THREADS 2
#define AUTH_MAX_QUEUE 4096

const struct fwd_policy *fwd_side_policy(const void *side_data)
{
	return side_data != NULL ? ((const struct fwd_data *)side_data)->policy : NULL;
}

struct fwd_auth_backoff *fwd_side_backoff(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? d->backoff : NULL;
}

const struct fwd_icap *fwd_side_icap(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? d->icap : NULL;
}

const struct fwd_decider *fwd_side_decider(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? &d->dc : NULL;
}

struct fwd_directory *fwd_side_directory(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? fwd_sso_dir(d->sso) : NULL;
}

const struct fwd_ca *fwd_side_ca(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? d->ca : NULL;
}

const struct fwd_inspect *fwd_side_inspect(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? d->insp : NULL;
}

const struct fwd_auth_db *fwd_side_auth_db(const void *side_data)
{
	const struct fwd_data *d = side_data;

	return d != NULL && d->magic == FWD_MAGIC ? d->db : NULL;
}

/* ---- counters ---- */

/* One rule's hits for the life of the process, found by name and action.
 * Slots are made by compile() and never freed (one per distinct rule ever
 * configured), so every generation's pointers stay valid. */
struct hit_slot {
	struct hit_slot *next;
	enum conf_action action;
	struct gw_counters c;      /* one counter */
	char name[];
};

static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hit_slot *slots;
static struct gw_counters events = { .n = FWD_C_COUNT };

static struct hit_slot *hit_slot(const char *name, enum conf_action action)
{
	struct hit_slot *h;

	pthread_mutex_lock(&slots_mu);
	for (h = slots; h != NULL; h = h->next)
		if (h->action == action && strcmp(h->name, name) == 0)
			break;
	if (h == NULL && (h = calloc(1, sizeof *h + strlen(name) + 1)) != NULL) {
		h->action = action;
		h->c.n = 1;
		strcpy(h->name, name);
		h->next = slots;
		slots = h;
	}
	pthread_mutex_unlock(&slots_mu);
	return h;
}

static void bump(struct fwd_data *d, struct gw_req *rq, size_t idx)
{
	gw_counters_add(&d->hits[idx]->c, gw_req_worker(rq), 0);
}

void fwd_count(struct gw_req *rq, enum fwd_counter c)
{
	gw_counters_add(&events, gw_req_worker(rq), (size_t)c);
}

size_t fwd_rule_hits(const void *side_data, size_t rule_index)
{
	const struct fwd_data *d = side_data;

	if (d == NULL || d->magic != FWD_MAGIC || rule_index > d->nrules)
		return 0;
	return (size_t)gw_counters_sum(&d->hits[rule_index]->c, 0);
}

uint64_t fwd_side_counter(const void *side_data, enum fwd_counter c)
{
	const struct fwd_data *d = side_data;

	if (d == NULL || d->magic != FWD_MAGIC || (unsigned)c >= FWD_C_COUNT)
		return 0;
	return gw_counters_sum(&events, (size_t)c);
}

const char *fwd_counter_name(enum fwd_counter c)
{
	static const char *const names[] = {
#define X(id, s) s,
		FWD_COUNTERS(X)
#undef X
	};
	return (unsigned)c < FWD_C_COUNT ? names[c] : "?";
}

/* ---- helpers ---- */

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *p)
{
	fwd_matchdata_free(p);
}

static void md_init(void)
{
	pthread_key_create(&md_key, md_free);
}

/* This thread's PCRE2 match block (created once per worker thread). */
static struct fwd_matchdata *thread_md(void)
{
	struct fwd_matchdata *md;

	pthread_once(&md_once, md_init);
	md = pthread_getspecific(md_key);
	if (md == NULL) {
		md = fwd_matchdata_new();
		pthread_setspecific(md_key, md);
	}
	return md;
}

char *fwd_rq_strdup(struct gw_req *rq, const char *s)
{
	return gw_req_strndup(rq, s, strlen(s));
}

/* Lower-cased NUL-terminated copy of the target host. */
char *fwd_host_lc(struct gw_req *rq, const struct gw_http_head *h)
{
	char *s = gw_req_strndup(rq, h->host ? h->host : "", h->host ? h->host_len : 0);

	for (char *p = s; p != NULL && *p; p++)   /* NULL: out of memory */
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return s;
}

/* What the request asked for, for block pages and events (request-owned). */
const char *fwd_req_url(struct gw_req *rq, const struct gw_http_head *h)
{
	const char *s;

	if (h->method == GW_M_CONNECT || h->target_form != GW_TF_ABSOLUTE) {
		char buf[300];
		int v6 = h->host && memchr(h->host, ':', h->host_len) != NULL;
		snprintf(buf, sizeof buf, "%s%.*s%s:%u", v6 ? "[" : "", (int)(h->host ? h->host_len : 0),
		    h->host ? h->host : "", v6 ? "]" : "", h->port);
		s = fwd_rq_strdup(rq, buf);
	} else {
		s = gw_req_strndup(rq, h->target, h->target_len);
	}
	return s != NULL ? s : "-";   /* out of memory: the core answers 503 */
}

/* Printable, bounded copy for events and the error log. */
void fwd_printable(char *out, size_t cap, const char *s)
{
	size_t i = 0;

	for (; s && *s && i + 1 < cap; s++)
		out[i++] = (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f ? '?' : *s;
	out[i] = '\0';
}

/* The same for a URL shown to the console: its query string (which may be
 * what DLP caught, or a token) is left out. */
void fwd_printable_url(char *out, size_t cap, const char *url)
{
	const char *q = url != NULL ? strchr(url, '?') : NULL;

	fwd_printable(out, cap, url);
	if (q != NULL && (size_t)(q - url) + 3 < cap)
		memcpy(out + (q - url), "?..", 4);
}

/* Tell the console about a blocked request, in the access log's words
 * (verdict=, rule=, id=), so one grep finds both. */
static void block_event(struct gw_req *rq, const char *rule, const char *rawurl, const char *reason)
{
	char url[120], rn[64], user[64];

	fwd_printable_url(url, sizeof url, rawurl);
	fwd_printable(rn, sizeof rn, rule);
	fwd_printable(user, sizeof user, gw_req_user(rq) != NULL ? gw_req_user(rq) : "-");
	gw_event_push("block", "%s user=%s verdict=deny rule=\"%s\" id=%s %s: %s", gw_req_client_str(rq),
	    user, rn, gw_req_id(rq), url, reason);
}

#define FWD_BLOCK_PAGE_OUT_MAX (256 * 1024)   /* bytes of a rendered forward.block_page */

/* Answer 403 with the block page naming url and reason; log and tell the console. */
void fwd_deny_url(struct gw_req *rq, struct fwd_data *d, const char *rule, const char *reason,
    const char *url)
{
	const struct gw_http_head *h = gw_req_head(rq);
	const struct gw_hdr *acc = gw_http1_find(h, "accept");
	int html = acc != NULL && fwd_block_wants_html(acc->value, acc->value_len);
	struct fwd_block b = {
		.url = url,
		.reason = reason,
		.request_id = gw_req_id(rq),
		.contact = d->cf->forward.block_contact,
		.when = time(NULL),
	};
	char body[12288];
	size_t n;

	/* a URL may be 8 KiB (and 6x that escaped): show its start only */
	if (strlen(b.url) > 1024) {
		char *cut = gw_req_strndup(rq, b.url, 1024 + 3);
		if (cut == NULL)
			return;   /* out of memory: the core answers 503 */
		memcpy(cut + 1024, GW_STRLIT("..."));
		b.url = cut;
	}
	gw_req_set_verdict(rq, "deny", rule);
	gw_req_set_reason(rq, gw_req_strndup(rq, reason, strlen(reason)));   /* the log's reason= */
	fwd_count(rq, FWD_C_BLOCKS);
	if (html && d->cf->forward.block_page_text != NULL) {
		/* The operator's page; text clients keep the built-in text.  A
		 * template repeating {{url}} could grow without bound: cap it. */
		const struct conf_forward *fw = &d->cf->forward;
		size_t need;
		char *page;

		b.rule = rule;
		b.client = gw_req_client_str(rq);
		b.user = gw_req_user(rq);
		need = fwd_block_render_template(NULL, 0, fw->block_page_text, fw->block_page_len, &b);
		if (need > FWD_BLOCK_PAGE_OUT_MAX)
			need = FWD_BLOCK_PAGE_OUT_MAX;
		page = malloc(need + 1);
		if (page != NULL) {
			n = fwd_block_render_template(page, need + 1, fw->block_page_text, fw->block_page_len,
			    &b);
			gw_req_respond(rq, 403, "text/html; charset=utf-8", page, n < need ? n : need, NULL);
			free(page);
			block_event(rq, rule, b.url, reason);
			return;
		}   /* out of memory: the built-in page below still says why */
	}
	n = fwd_block_render(body, sizeof body, html, &b);
	gw_req_respond(rq, 403, html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8", body, n,
	    NULL);
	block_event(rq, rule, b.url, reason);
}

void fwd_deny(struct gw_req *rq, struct fwd_data *d, const char *rule, const char *reason)
{
	fwd_deny_url(rq, d, rule, reason, fwd_req_url(rq, gw_req_head(rq)));
}

/* ---- PAC ---- */

/* The PAC file, or 404 without forward.pac (fwd_decide() said which). */
static void serve_pac(struct gw_req *rq, struct fwd_data *d, const struct fwd_verdict *v)
{
	gw_req_set_verdict(rq, "local", "pac");
	if (v->status != 200 || d->pac == NULL) {
		gw_req_respond(rq, 404, NULL, NULL, 0, v->reason);
		return;
	}
	fwd_count(rq, FWD_C_PAC_SERVED);
	gw_req_resp_hdr_add(rq, "Cache-Control", GW_STRLIT("max-age=300"));
	gw_req_respond(rq, 200, "application/x-ns-proxy-autoconfig", d->pac, d->pac_len, NULL);
}

/* The inspection CA's certificate (PEM; "?der" or "?format=der": DER), or
 * 404 without forward.inspect (fwd_decide() said which).  Never the key. */
static void serve_ca(struct gw_req *rq, struct fwd_data *d, const struct fwd_verdict *v)
{
	const struct gw_http_head *h = gw_req_head(rq);
	const char *q = h->path != NULL ? memchr(h->path, '?', h->path_len) : NULL;
	size_t n;

	gw_req_set_verdict(rq, "local", "ca");
	if (v->status != 200 || d->ca == NULL) {
		gw_req_respond(rq, 404, NULL, NULL, 0, v->reason[0] ? v->reason :
		    "No inspection CA is loaded.");
		return;
	}
	fwd_count(rq, FWD_C_CA_SERVED);
	gw_req_resp_hdr_add(rq, "Cache-Control", GW_STRLIT("max-age=300"));
	if (q != NULL && (size_t)(h->path + h->path_len - q) >= 4 &&
	    (memmem(q, (size_t)(h->path + h->path_len - q), "der", 3) != NULL)) {
		const unsigned char *der = fwd_ca_der(d->ca, &n);
		gw_req_resp_hdr_add(rq, "Content-Disposition", GW_STRLIT("attachment; filename=\"gatehouse-ca.der\""));
		gw_req_respond(rq, 200, "application/pkix-cert", (const char *)der, n, NULL);
		return;
	}
	const char *pem = fwd_ca_pem(d->ca, &n);
	gw_req_resp_hdr_add(rq, "Content-Disposition", GW_STRLIT("attachment; filename=\"gatehouse-ca.crt\""));
	gw_req_respond(rq, 200, "application/x-x509-ca-cert", pem, n, NULL);
}

/* ---- the decision ---- */

static void require_auth(struct gw_req *rq, struct fwd_data *d, const char *rule,
    const struct fwd_verdict *v, double wait)
{
	const char *detail = NULL;   /* the 407's own line already asks to sign in */
	char msg[160];

	fwd_sso_challenge(d->sso, rq);
	fwd_count(rq, FWD_C_AUTH_REQUIRED);
	gw_req_set_verdict(rq, fwd_verdict_name(v->verdict), rule);
	switch (v->verdict) {
	case FWD_V_AUTH_FAILED:
		detail = "The user name or password is not correct.";
		break;
	case FWD_V_AUTH_BACKOFF: {
		char ra[32];
		int n = snprintf(ra, sizeof ra, "%.0f", wait < 1 ? 1 : wait + 0.5);
		gw_req_resp_hdr_add(rq, "Retry-After", ra, (size_t)n);
		snprintf(msg, sizeof msg, "Too many failed sign-ins from your address: try again in %s "
		    "seconds.", ra);
		detail = fwd_rq_strdup(rq, msg);
		break;
	}
	case FWD_V_AUTH_BUSY:   /* (a reason: the directory is unreachable) */
		gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("5"));
		gw_req_respond(rq, v->status, NULL, NULL, 0, v->reason[0] ? fwd_rq_strdup(rq, v->reason) :
		    "Sign-in is overloaded; please try again.");
		return;
	case FWD_V_AUTH_THROTTLED:   /* not a 407: that would make a browser ask for the password again */
		gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("1"));
		gw_req_respond(rq, v->status, NULL, NULL, 0, "Other sign-ins from your address or as this user "
		    "are being checked; please try again in a second.");
		return;
	default:
		break;
	}
	gw_req_respond(rq, v->status, NULL, NULL, 0, detail);
}

/* The core tunnels an HTTP/1.1 "Upgrade: websocket" with "Connection:
 * upgrade" once the origin answers 101 (core/conn.c upgrade_allowed). */
static int wants_websocket(const struct gw_http_head *h)
{
	const struct gw_hdr *u;

	if (!(h->flags & GW_HF_UPGRADE) || !(h->flags & GW_HF_CONN_UPGRADE))
		return 0;
	u = gw_http1_find(h, "upgrade");
	return u != NULL && gw_http1_list_has(u->value, u->value_len, "websocket");
}

/* The facts of rq for fwd_decide(), with who is signed in (NULL: nobody)
 * and what became of the credentials; strings and work space in rq's
 * arena.  Returns -1 when out of memory (the core then answers 503). */
static int facts_of(struct gw_req *rq, const struct fwd_who *who, enum fwd_cred cred,
    struct fwd_facts *f)
{
	const struct gw_http_head *h = gw_req_head(rq);
	static __thread time_t tm_at;
	static __thread struct tm tm;   /* local time, made once a second */
	time_t now = time(NULL);

	memset(f, 0, sizeof *f);
	if (now != tm_at) {
		localtime_r(&now, &tm);
		tm_at = now;
	}
	f->client = gw_req_client(rq);
	f->form = h->target_form;
	f->connect = h->method == GW_M_CONNECT;
	f->https = h->target_form == GW_TF_ABSOLUTE && h->scheme_len != 4;
	f->inspected = gw_req_conn_tag(rq) != NULL;
	f->websocket = wants_websocket(h);
	f->method = gw_req_strndup(rq, h->method_str, h->method_len);
	f->host = fwd_host_lc(rq, h);
	f->host_len = h->host != NULL ? h->host_len : 0;
	f->port = h->port;
	f->target = h->target;
	f->target_len = h->target_len;
	f->path = h->path;
	f->path_len = h->path_len;
	f->cred = cred;
	if (who != NULL) {
		f->user = who->user;
		f->user_short = who->user_short;
		f->groups = who->groups;
		f->ngroups = who->ngroups;
		gw_req_set_user(rq, fwd_rq_strdup(rq, f->user));
	}
	f->local_time = &tm;
	f->md = thread_md();
	if (h->target_form == GW_TF_ABSOLUTE && !f->connect) {
		f->url_cap = 3 * h->target_len + FWD_URL_NORM_EXTRA;
		f->url_buf = gw_req_alloc(rq, f->url_cap);
		if (f->url_buf == NULL)
			return -1;
	}
	return f->method != NULL && f->host != NULL ? 0 : -1;
}

/* An allowed plain request whose response goes to a respmod service (the
 * matching rule's icap, else forward.icap_default): its rq_icap. */
static void icap_plan(struct gw_req *rq, struct fwd_data *d, size_t rule)
{
	struct rq_icap *ri;
	int svc, req;

	if (d->icap == NULL || fwd_scan_icap_of(rq) != NULL)
		return;
	svc = rule != SIZE_MAX && rule < d->nrules ? d->rule_resp[rule] : d->def_resp;
	req = rule != SIZE_MAX && rule < d->nrules ? d->rule_req[rule] : d->def_req;
	if (svc < 0 && req < 0)
		return;
	if ((ri = gw_req_alloc(rq, sizeof *ri)) == NULL)
		return;   /* (the core answers 503) */
	ri->inner = gw_req_data(rq);
	ri->resp = svc;
	ri->req = req;
	ri->d = d;
	gw_req_set_data(rq, (void *)((uintptr_t)ri | FWD_ICAP_TAG));
}

/*
 * Decide rq (fwd_decide) with who is signed in (NULL: nobody) and act on the verdict.
 * cred says what happened to the credentials (FWD_CRED_GIVEN: sent, not
 * checked yet; the 407's wording); wait is the backoff left.
 */
void fwd_rq_decide(struct gw_req *rq, struct fwd_data *d, const struct fwd_who *who, enum fwd_cred cred,
    double wait)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct fwd_facts f;
	struct fwd_verdict v;
	const char *name;
	struct fwd_who dw;

	/* a signed-in user's directory groups: cached, or looked up first
	 * (fwd_rq_decide() is called again from fwd_login_dir_resume()) */
	if (who != NULL && cred == FWD_CRED_OK && !who->dir_done && fwd_sso_directory(d->sso)) {
		dw = *who;
		if (!fwd_sso_groups(d->sso, rq, &dw, fwd_login_dir_resume, d))
			return;
		who = &dw;
	}
	if (facts_of(rq, who, cred, &f) < 0)
		return;   /* out of memory: the core answers 503 */
	if (fwd_decide(&d->dc, &f, &v) < 0) {
		gw_req_set_verdict(rq, "local", NULL);
		gw_req_respond(rq, 500, NULL, NULL, 0, NULL);
		return;
	}
	if (v.stage == FWD_STAGE_POLICY)
		bump(d, rq, v.match.rule_index != SIZE_MAX ? v.match.rule_index : d->nrules);
	/* a rule's name lives with the policy; the log line may outlive it */
	name = v.rule != NULL && v.stage == FWD_STAGE_POLICY ? fwd_rq_strdup(rq, v.rule) : v.rule;
	switch (v.verdict) {
	case FWD_V_VERIFY: {
		/* resumes in fwd_rq_decide() with the outcome (at once, or from auth_wake()) */
		const struct gw_hdr *pa = gw_http1_find(h, "proxy-authorization");
		if (pa == NULL)
			fwd_rq_decide(rq, d, NULL, FWD_CRED_NONE, 0);   /* (only sent ones are GIVEN) */
		else
			fwd_login_check(rq, d, pa);
		return;
	}
	case FWD_V_LOCAL:
		if (name != NULL && strcmp(name, "pac") == 0) {
			serve_pac(rq, d, &v);
			return;
		}
		if (name != NULL && strcmp(name, "ca") == 0) {
			serve_ca(rq, d, &v);
			return;
		}
		gw_req_set_verdict(rq, "local", name);
		gw_req_respond(rq, v.status, NULL, NULL, 0, v.reason);
		return;
	case FWD_V_DENY:
		fwd_deny(rq, d, name, v.reason);
		return;
	case FWD_V_ALLOW:
		break;
	default:   /* the auth verdicts */
		require_auth(rq, d, name, &v, wait);
		return;
	}
	gw_req_set_verdict(rq, "allow", name);
	if (!f.connect)
		icap_plan(rq, d, v.stage == FWD_STAGE_POLICY ? v.match.rule_index : SIZE_MAX);
	if (f.connect) {
		if (!fwd_proxy_via_parent(d, h) && fwd_inspect_connect(d->insp, rq, &v.match))
			return;   /* on_peek() goes on */
		if (fwd_proxy_via_parent(d, h))
			fwd_proxy_to_parent(rq, d, fwd_proxy_parent_pick(d, 0));
		else
			gw_req_tunnel(rq, h->host, h->host_len, h->port);
		return;
	}
	if (d->dlp != NULL) {
		if (fwd_scan_head(rq, d))
			return;
		if (h->body != GW_BODY_NONE && !(h->body == GW_BODY_LENGTH && h->content_length == 0)) {
			uint64_t max = d->cf->forward.dlp.max_scan_bytes;
			if (fwd_scan_reserve(rq, d, fwd_scan_need(h, max)) < 0) {
				fwd_count(rq, FWD_C_DLP_BUSY);
				gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("2"));
				gw_req_set_verdict(rq, "dlp-busy", "dlp max_scan_memory");
				gw_req_respond(rq, 503, NULL, NULL, 0, "Too many uploads are being scanned for "
				    "data-loss prevention; please try again.");
				return;
			}
			/* one byte more than we scan: len > max_scan_bytes in fwd_scan_on_body()
			 * then says "oversize" */
			gw_req_read_body(rq, max + 1);
			return;   /* fwd_scan_on_body() goes on */
		}
	}
	if (fwd_scan_icap_of(rq) != NULL && fwd_scan_icap_of(rq)->req >= 0 && h->body != GW_BODY_NONE &&
	    !(h->body == GW_BODY_LENGTH && h->content_length == 0)) {
		/* the upload goes to the reqmod service first (fwd_scan_on_body()), held
		 * within the same memory bound as DLP's */
		uint64_t max = fwd_icap_max_body(d->icap, fwd_scan_icap_of(rq)->req);
		if (fwd_scan_reserve(rq, d, fwd_scan_need(h, max)) < 0) {
			gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("2"));
			gw_req_set_verdict(rq, "icap-busy", "max_scan_memory");
			gw_req_respond(rq, 503, NULL, NULL, 0, "Too many uploads are being scanned; please "
			    "try again.");
			return;
		}
		gw_req_read_body(rq, max + 1);
		return;
	}
	fwd_proxy(rq, d);
}

/* The upload's REQMOD is decided (gw_req_wake from forward/icap.c). */
static void upload_scanned(struct gw_req *rq, void *arg)
{
	struct fwd_icap_tx *tx = arg;
	const char *ctype, *body;
	size_t len;
	int status;

	if (!gw_req_alive(rq))
		return;   /* (on_done frees the exchange) */
	if (fwd_icap_outcome(tx, &status, &ctype, &body, &len) == FWD_ICAP_RESPOND) {
		gw_req_respond(rq, status, ctype, body, len, NULL);
		return;
	}
	fwd_proxy(rq, fwd_scan_icap_of(rq)->d);
}

/* After DLP (if any): the upload to the reqmod service, else on. */
void fwd_proxy_upload(struct gw_req *rq, struct fwd_data *d, const char *data, size_t len, int complete)
{
	struct rq_icap *ri = fwd_scan_icap_of(rq);

	if (ri == NULL || ri->req < 0 || ri->rtx != NULL) {
		fwd_proxy(rq, d);
		return;
	}
	if (fwd_icap_reqmod(d->icap, ri->req, rq, data, len, complete, &ri->rtx, upload_scanned) == 1)
		fwd_proxy(rq, d);
}

/* Request finished (its access-log line comes next).  If it still waits
 * for the pool, the client went away: do not hash for nobody. */
static void on_done(struct gw_req *rq, void *side)
{
	/* the per-request slot holds the auth_req while the request waits for
	 * the pool (set and cleared on this worker thread; the auth_req lives
	 * until auth_wake() runs here, after this) */
	void *slot = fwd_scan_slot_get(rq);
	struct auth_req *ar = fwd_scan_hold_of(slot) == NULL && !fwd_inspect_owns_slot(slot) ? slot : NULL;
	struct rq_icap *ri = fwd_scan_icap_of(rq);
	const char *v = gw_req_verdict(rq), *user = gw_req_user(rq);
	const struct gw_http_head *h = gw_req_head(rq);
	int what = v == NULL ? 0 : strcmp(v, "allow") == 0 ? FWD_OBS_ALLOWED :
	    strcmp(v, "deny") == 0 ? FWD_OBS_BLOCKED : 0;

	(void)side;
	if (ar != NULL)
		atomic_store_explicit(&ar->job.cancelled, 1, memory_order_release);
	fwd_scan_trim(rq, 0);
	if (ri != NULL) {
		fwd_icap_done(ri->tx);
		fwd_icap_done(ri->rtx);
		ri->tx = ri->rtx = NULL;
		atomic_fetch_sub_explicit(&fwd_scan_held, ri->held, memory_order_relaxed);
		ri->held = 0;
	}
	/* for the console: top domains by verdict, signed-in users */
	if (what != 0 || user != NULL)
		fwd_obs_request(gw_req_worker(rq), what, h->host, h->host ? h->host_len : 0, user,
		    gw_req_client_str(rq), user != NULL ? gw_wall_now() : 0);
}

/* The checks and the policy are fwd_decide()'s (forward/decide.c); the
 * credentials, when sent and the policy can use them, are checked when it
 * asks (verdict "verify"). */
static void on_request(struct gw_req *rq, void *side)
{
	struct fwd_data *d = side;
	int sent = d->dc.auth_used && d->pool != NULL &&
	    gw_http1_find(gw_req_head(rq), "proxy-authorization") != NULL;
	struct fwd_who who;
	const char *tag = gw_req_conn_tag(rq);

	if (tag != NULL) {   /* inside an inspected CONNECT */
		const char *user, *problem = fwd_inspect_inner(rq, tag, &user);
		long ui = user != NULL && d->db != NULL ? fwd_auth_db_find(d->db, user) : -1;
		if (d->insp == NULL) {
			/* a reload turned inspection off: this generation has no
			 * upstream TLS context for it; the client reconnects */
			gw_req_set_verdict(rq, "deny", "inspect");
			gw_req_respond(rq, 503, NULL, NULL, 0, "TLS inspection was turned off by a reload: "
			    "open the page again");
			return;
		}
		if (problem != NULL) {
			fwd_count(rq, FWD_C_BLOCKS);
			gw_req_set_verdict(rq, "deny", "inspect");
			gw_req_respond(rq, 502, NULL, NULL, 0, problem);
			return;
		}
		/* the CONNECT's user: a users-file user (a reload may have removed
		 * it: then none), or one signed in by Negotiate on this connection */
		if (ui >= 0)
			fwd_rq_decide(rq, d, fwd_login_db_who(d, ui, &who), FWD_CRED_OK, 0);
		else if (user != NULL && fwd_sso_conn_who(d->sso, rq, &who))
			fwd_rq_decide(rq, d, &who, FWD_CRED_OK, 0);
		else
			fwd_rq_decide(rq, d, NULL, FWD_CRED_NONE, 0);
		return;
	}
	/* signed in on this connection by Negotiate (no new token sent) */
	if (!sent && d->dc.auth_used && fwd_sso_conn_who(d->sso, rq, &who)) {
		fwd_count(rq, FWD_C_AUTH_CACHED);
		fwd_rq_decide(rq, d, &who, FWD_CRED_OK, 0);
		return;
	}
	fwd_rq_decide(rq, d, NULL, sent ? FWD_CRED_GIVEN : FWD_CRED_NONE, 0);
}

static void on_peek(struct gw_req *rq, const unsigned char *p, size_t n, int final, void *side)
{
	struct fwd_data *d = side;
	struct fwd_inspect_ctx x = { &d->dc, d->db, thread_md() };

	fwd_inspect_on_peek(d->insp, &x, rq, p, n, final);
}

static void on_tls_abort(const char *host, void *side)
{
	(void)side;
	fwd_inspect_abort(host);
}

static void on_tunnel_tls(struct gw_req *rq, struct ssl_st *up, const char *err, void *side)
{
	struct fwd_data *d = side;

	fwd_inspect_on_tunnel_tls(d->insp, rq, up, err);
}

static int on_resolved(struct gw_req *rq, const struct sockaddr *sa, void *side)
{
	struct fwd_data *d = side;
	char why[INET6_ADDRSTRLEN + 40];
	const char *rule;

	/* the parent proxy is trusted: the client's target was checked (an IP
	 * literal in literal_refused()) and the parent resolves the name; but a
	 * "parent" that is one of our own listeners would be a loop */
	if (fwd_proxy_via_parent(d, gw_req_head(rq))) {
		if (!fwd_own_listener(d->cf, sa))
			return 0;
		rule = "own_listener";
		snprintf(why, sizeof why, "forward.parent is our own listener");
	} else {
		rule = fwd_dest_check(d->policy, d->cf, sa, why, sizeof why);
	}
	if (rule == NULL) {
		struct rq_icap *ri = fwd_scan_icap_of(rq);
		if (ri != NULL)
			fwd_icap_addr_str(sa, ri->server_ip, sizeof ri->server_ip);
		return 0;
	}
	gw_req_set_verdict(rq, "deny", rule);
	gw_req_set_reason(rq, gw_req_strndup(rq, why, strlen(why)));
	fwd_count(rq, FWD_C_BLOCKS);
	block_event(rq, rule, fwd_req_url(rq, gw_req_head(rq)), why);
	return 403;
}

/* A parent that cannot be reached is skipped for forward.parent.fail_timeout and
 * the request tries the next one in order (nothing was sent yet). */
static int on_upstream_error(struct gw_req *rq, int stage, void *side)
{
	struct fwd_data *d = side;
	const struct conf_fwd_parent *pp = &d->cf->forward.parent;
	uint16_t port;
	const char *host = gw_req_upstream_host(rq, &port);
	size_t i, next;

	if (stage != GW_UPFAIL_CONNECT || host == NULL || !fwd_proxy_via_parent(d, gw_req_head(rq)))
		return 0;
	for (i = 0; i < pp->naddrs; i++)
		if (pp->addrs[i].port == port && strcmp(pp->addrs[i].host, host) == 0)
			break;
	if (i == pp->naddrs)
		return 0;
	if (pp->fail_timeout > 0) {   /* 0: never skipped, only the next one tried */
		if (atomic_load(&d->parent_down[i]) <= gw_mono_now())
			gw_warn("forward: parent proxy %s cannot be reached: skipped for %g s (fail_timeout)",
			    pp->addrs[i].text, pp->fail_timeout);
		atomic_store(&d->parent_down[i], gw_mono_now() + pp->fail_timeout);
	}
	next = fwd_proxy_parent_pick(d, i + 1);
	if (next >= pp->naddrs)
		return 0;
	fwd_proxy_to_parent(rq, d, next);
	return 1;
}

/*
 * A response held for its RESPMOD verdict takes scan memory (the process-wide
 * forward.dlp.max_scan_memory, shared with uploads held for DLP and REQMOD):
 * its Content-Length, or max_body_bytes, at most.  Without room it is not
 * held: passed unscanned when the service may be bypassed, else 503.
 * Returns 1 to go on with the exchange.
 */
static int icap_reserve(struct gw_req *rq, struct fwd_data *d, struct rq_icap *ri,
    const struct gw_http_head *resp)
{
	uint64_t max = fwd_icap_max_body(d->icap, ri->resp), want = max + FWD_SCAN_SLACK;
	uint64_t limit = d->cf->forward.dlp.max_scan_memory;
	uint64_t cur = atomic_load_explicit(&fwd_scan_held, memory_order_relaxed);

	if (resp->body == GW_BODY_NONE || (resp->body == GW_BODY_LENGTH && resp->content_length == 0))
		return 1;   /* nothing to hold (fwd_icap_respmod skips it) */
	if (resp->body == GW_BODY_LENGTH)
		want = resp->content_length < max ? resp->content_length : max;
	do {
		if (cur + want > limit) {
			if (fwd_icap_bypassable(d->icap, ri->resp)) {
				gw_req_set_reason(rq, "ICAP: max_scan_memory spent: passed unscanned");
				return 0;
			}
			gw_req_resp_hdr_add(rq, "Retry-After", GW_STRLIT("2"));
			gw_req_set_reason(rq, "ICAP: max_scan_memory spent");
			gw_req_respond(rq, 503, NULL, NULL, 0, "Too many downloads are being scanned; please "
			    "try again.");
			return 0;
		}
	} while (!atomic_compare_exchange_weak_explicit(&fwd_scan_held, &cur, cur + want,
	    memory_order_relaxed, memory_order_relaxed));
	ri->held = want;
	return 1;
}

/* A parent's 407 means our forward.parent.auth is wrong: relayed, the
 * client would take it as our own challenge and ask its user for a
 * password.  It is the gateway's failure: 502.  (Its 403 is the parent's
 * block page, and is relayed.) */
static void on_response_head(struct gw_req *rq, const struct gw_http_head *resp, void *side)
{
	struct fwd_data *d = side;

	if (resp->status != 407 || !fwd_proxy_via_parent(d, gw_req_head(rq))) {
		struct rq_icap *ri = fwd_scan_icap_of(rq);
		if (ri != NULL && ri->resp >= 0 && ri->tx == NULL && icap_reserve(rq, d, ri, resp))
			fwd_icap_respmod(d->icap, ri->resp, rq, resp, ri->server_ip, &ri->tx);
		return;
	}
	gw_warn("forward: %s: parent proxy answered 407: check forward.parent.auth", gw_req_id(rq));
	gw_req_set_reason(rq, "parent proxy answered 407 (forward.parent.auth)");
	gw_req_respond(rq, 502, NULL, NULL, 0, "The upstream proxy refused the gateway's credentials.");
}

static int on_response_filter(struct gw_req *rq, const char *p, size_t n, int last, void *side)
{
	struct rq_icap *ri = fwd_scan_icap_of(rq);

	(void)side;
	if (ri == NULL || ri->tx == NULL) {   /* (not turned on without one) */
		gw_req_body_emit(rq, p, n, last);
		return GW_FILTER_GO;
	}
	return fwd_icap_filter(ri->tx, p, n, last);
}

static struct gw_proto fwd_proto = {   /* .family: set by gw_control_add_side() */
	.name = "forward",
	.proxy = 1,
	.on_request = on_request,
	.on_resolved = on_resolved,
	.on_body = fwd_scan_on_body,
	.on_done = on_done,
	.on_upstream_error = on_upstream_error,
	.on_response_head = on_response_head,
	.on_response_filter = on_response_filter,
	.on_peek = on_peek,
	.on_tunnel_tls = on_tunnel_tls,
	.conn_data_dup = fwd_sso_conn_dup,
	.on_tls_abort = on_tls_abort,
};

/* ---- per-snapshot data ---- */

static void side_free(void *data)
{
	struct fwd_data *d = data;

	if (d == NULL)
		return;
	/* first the pool: queued verifications are cancelled (their requests
	 * are orphans by now: a live request pins this snapshot) */
	fwd_auth_pool_free(d->pool);
	fwd_sso_free(d->sso);
	fwd_auth_cache_free(d->cache);
	fwd_auth_backoff_free(d->backoff);
	fwd_auth_db_free(d->db);
	for (int w = 0; w < GW_MAX_WORKERS; w++)
		fwd_dlp_views_free(d->views[w]);
	fwd_dlp_free(d->dlp);
	fwd_inspect_free(d->insp);
	fwd_ca_free(d->ca);
	free(d->pac);
	free(d->parent_down);
	fwd_policy_free(d->policy);
	fwd_icap_free(d->icap);
	free(d->rule_resp);
	free(d->rule_req);
	free(d->hits);
	d->magic = 0;
	free(d);
}

static int compile_auth(struct fwd_data *d, const struct conf *cf, struct conf_errors *errs)
{
	const struct conf_fwd_auth *au = &cf->forward.auth;
	char err[512];
	size_t first, n;

	if (!au->present)
		return 0;
	/* without a users file (Negotiate only) an empty one: groups still apply */
	d->db = au->users_file != NULL ? fwd_auth_db_load(au->users_file, au->groups_file, err, sizeof err) :
	    fwd_auth_db_parse("", 0, NULL, 0, err, sizeof err);
	if (d->db == NULL) {
		conf_err(errs, au->src.file, au->src.line, "forward.auth", "%s", err);
		return -1;
	}
	for (int w = 0; w < 2; w++) {
		const char *file = w == 0 ? au->users_file : au->groups_file, *why;
		size_t line;
		if ((n = fwd_auth_db_skipped(d->db, w, &first)) == 0)
			continue;
		for (size_t k = 0; (why = fwd_auth_db_skip_note(d->db, w, k, &line)) != NULL; k++)
			gw_warn("%s:%zu: line skipped: %s", file, line, why);
		gw_warn("forward.auth: %s: %zu line(s) skipped, first at line %zu", file, n, first);
	}
	d->cache = fwd_auth_cache_new(4096, au->cache_ttl);
	d->backoff = fwd_auth_backoff_new(4096);
	if (d->backoff != NULL && cf->cluster.redis_enabled)   /* one record per client across the pair */
		fwd_auth_backoff_share(d->backoff, cf->cluster.token ? cf->cluster.token : "", cf->cluster.redis_prefix);
	d->pool = fwd_auth_pool_new(AUTH_THREADS, AUTH_MAX_QUEUE);
	if (d->cache == NULL || d->backoff == NULL || d->pool == NULL) {
		conf_err(errs, au->src.file, au->src.line, "forward.auth",
		    "cannot start the verification threads: out of memory");
		return -1;
	}
	return (d->sso = fwd_sso_new(au, d->db, d->cache, d->backoff, errs)) == NULL ? -1 : 0;
}

/* The hit slot of every rule of d's policy, and of "no match". */
static int compile_hits(struct fwd_data *d)
{
	d->hits = calloc(d->nrules + 1, sizeof *d->hits);
	if (d->hits == NULL)
		return -1;
	for (size_t i = 0; i <= d->nrules; i++) {
		d->hits[i] = i < d->nrules ?
		    hit_slot(fwd_policy_rule_name(d->policy, i), fwd_policy_rule_action(d->policy, i)) :
		    hit_slot("", CONF_ACT_DENY);   /* names are never empty */
		if (d->hits[i] == NULL)
			return -1;
	}
	return 0;
}

/* The plan of a list of names for a method (reqmod 0/1), or -1. */
static int service_of(struct fwd_icap *ic, const struct conf_strs *names, int reqmod)
{
	return fwd_icap_plan(ic, names, reqmod);   /* (respmod: a chain) */
}

/* forward.icap: the services, and which respmod service each rule uses
 * (conf/ checked the names). */
static int compile_icap(struct fwd_data *d, const struct conf *cf)
{
	int oom;

	d->def_resp = d->def_req = -1;
	d->icap = fwd_icap_new(&cf->forward, (long)cf->global.workers, &oom);
	if (d->icap == NULL)
		return oom ? -1 : 0;
	d->def_resp = service_of(d->icap, &cf->forward.icap_default, 0);
	d->def_req = service_of(d->icap, &cf->forward.icap_default, 1);
	if ((d->rule_resp = calloc(d->nrules + 1, sizeof *d->rule_resp)) == NULL ||
	    (d->rule_req = calloc(d->nrules + 1, sizeof *d->rule_req)) == NULL)
		return -1;
	for (size_t i = 0; i <= d->nrules; i++) {   /* (the rules are compiled in file order) */
		const struct conf_fwd_rule *r = i < cf->forward.npolicy ? &cf->forward.policy[i] : NULL;
		int own = r != NULL && r->icap_set;
		d->rule_resp[i] = own ? service_of(d->icap, &r->icap, 0) : d->def_resp;
		d->rule_req[i] = own ? service_of(d->icap, &r->icap, 1) : d->def_req;
	}
	return 0;
}

/* May forward.inspect make its CA when both files are missing?  Not for
 * -t, which only checks (core/main.c says; a start and reloads may). */
static atomic_int ca_create;

void fwd_inspect_allow_ca_creation(int on)
{
	atomic_store(&ca_create, on);
}

/* forward.inspect's CA: ca_cert/ca_key, or state_dir/inspect-ca.{pem,key}. */
static int compile_ca(struct fwd_data *d, const struct conf *cf, struct conf_errors *errs)
{
	const struct conf_fwd_inspect *in = &cf->forward.inspect;
	char cbuf[4096], kbuf[4096], err[600];
	const char *cp = in->ca_cert, *kp = in->ca_key;
	int created = 0;

	if (!in->present)
		return 0;
	if (cp == NULL || kp == NULL) {
		const char *sd = cf->global.state_dir ? cf->global.state_dir : ".";
		snprintf(cbuf, sizeof cbuf, "%s/inspect-ca.pem", sd);
		snprintf(kbuf, sizeof kbuf, "%s/inspect-ca.key", sd);
		cp = cbuf;
		kp = kbuf;
	}
	d->ca = fwd_ca_load(cp, kp, atomic_load(&ca_create), &created, err, sizeof err);
	if (d->ca == NULL) {
		if (!atomic_load(&ca_create) && strstr(err, "(a CA is made there at the start)") != NULL)
			return 0;   /* -t: the start will make it */
		conf_err(errs, in->src.file, in->src.line, "forward.inspect", "%s", err);
		return -1;
	}
	if (created)
		gw_info("forward.inspect: made a new CA %s (key %s, mode 0600); fingerprint SHA-256 %s: "
		    "give it to the clients (/gatehouse-ca.crt on the forward listener)", cp, kp,
		    fwd_ca_fingerprint(d->ca));
	return 0;
}

static int compile(const struct conf *cf, struct conf_errors *errs, void **data)
{
	struct fwd_data *d;
	int ok = 1;

	*data = NULL;
	if (!cf->forward.present)
		return 0;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return -1;
	d->magic = FWD_MAGIC;
	d->cf = cf;
	size_t nerr = errs->n;
	d->policy = fwd_policy_compile(cf, errs);
	if (d->policy == NULL)
		ok = 0;
	else {
		d->nrules = fwd_policy_nrules(d->policy);
		fwd_decider_init(&d->dc, d->policy, cf);
		if (compile_hits(d) < 0) {
			side_free(d);
			return -1;
		}
	}
	if (compile_auth(d, cf, errs) < 0 || errs->n > nerr)
		ok = 0;
	if (compile_ca(d, cf, errs) < 0) {
		ok = 0;
	} else {
		int failed;
		d->insp = fwd_inspect_new(cf, d->ca, errs, &failed);
		if (failed)
			ok = 0;
	}
	if (cf->forward.dlp.present && cf->forward.dlp.enabled) {
		d->dlp = fwd_dlp_compile(&cf->forward.dlp, errs);
		if (d->dlp == NULL)
			ok = 0;
		else if (!fwd_dlp_active(d->dlp)) {
			fwd_dlp_free(d->dlp);
			d->dlp = NULL;
		}
	}
	if (ok && compile_icap(d, cf) < 0) {
		side_free(d);
		return -1;
	}
	if (cf->forward.parent.naddrs > 0) {
		d->parent_down = calloc(cf->forward.parent.naddrs, sizeof *d->parent_down);
		if (d->parent_down == NULL) {
			side_free(d);
			return -1;
		}
	}
	if (cf->forward.parent.auth != NULL) {
		size_t n = strlen(cf->forward.parent.auth);
		if (n > (sizeof d->parent_auth - 7) / 4 * 3 - 3) {
			conf_err(errs, cf->forward.parent.src.file, cf->forward.parent.src.line,
			    "forward.parent.auth", "too long");
			ok = 0;
		} else {
			memcpy(d->parent_auth, GW_STRLIT("Basic "));
			d->parent_auth_len = 6 + (size_t)EVP_EncodeBlock((unsigned char *)d->parent_auth + 6,
			    (const unsigned char *)cf->forward.parent.auth, (int)n);
		}
	}
	if (cf->forward.pac.present) {
		d->pac = fwd_pac_build(&cf->forward.pac, &d->pac_len);
		if (d->pac == NULL) {
			conf_err(errs, cf->forward.pac.src.file, cf->forward.pac.src.line, "forward.pac",
			    "cannot build the PAC file (a pattern with characters a host name cannot have?)");
			ok = 0;
		}
	}
	if (!ok) {
		side_free(d);
		return -1;
	}
	*data = d;
	return 0;
}

static const struct conf_listener *listeners(const struct conf *cf, size_t *n)
{
	*n = cf->forward.present ? cf->forward.nlisteners : 0;
	return cf->forward.listeners;
}

const struct gw_side fwd_side = {
	.proto = &fwd_proto,
	.short_name = "fwd",
	.compile = compile,
	.free = side_free,
	.listeners = listeners,
	.tls = fwd_tls_specs,
};
