/*
 * admin/api_fwd: the console's view of the forward proxy.  GET forward
 * (top domains, signed-in users, DLP hits: forward/observe.h), GET
 * forward/blocks (the block events, paged and filtered), and POST
 * policy/test, which runs fwd_decide() (forward/decide.h) on the current
 * snapshot's forward data: the same function and data the forward proxy's
 * on_request() uses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "conf/conf.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/http1.h"
#include "core/events.h"
#include "core/snapshot.h"
#include "forward/auth.h"
#include "forward/decide.h"
#include "forward/directory.h"
#include "forward/forward.h"
#include "forward/observe.h"
#include "forward/policy.h"

static struct {
	struct fwd_matchdata *md;  /* the policy tester's PCRE2 match block */
} S;

int adm_api_fwd_init(void)
{
	if (S.md == NULL)
		S.md = fwd_matchdata_new();
	return S.md != NULL ? 0 : -1;
}

void adm_api_fwd_free(void)
{
	if (S.md != NULL)
		fwd_matchdata_free(S.md);
	memset(&S, 0, sizeof S);
}

const void *adm_fwd_side(const struct gw_snapshot *s)
{
	for (int i = 0; i < s->nsides; i++)
		if (s->sides[i] == &fwd_side)
			return s->side_data[i];
	return NULL;
}

/* ---- GET forward: top domains, signed-in users, DLP hits ---- */

#define TOP_MAX 20
#define USERS_MAX 256
#define DLP_MAX 100

static json_t *top_json(int verdict)
{
	struct fwd_topk_item it[TOP_MAX];
	size_t n = fwd_obs_top(verdict, it, TOP_MAX);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "domain", it[i].name,
		    "count", (json_int_t)it[i].count, "error", (json_int_t)it[i].err));
	return a;
}

/* A signed-in user's groups (the groups file's, the directory's cached
 * ones) and where they came from, into o. */
static void user_groups(const void *side, const char *name, json_t *o)
{
	const struct fwd_auth_db *db = fwd_side_auth_db(side);
	struct fwd_directory *dir = fwd_side_directory(side);
	const char *at = strrchr(name, '@');
	char shortname[FWD_AUTH_USER_MAX + 1];
	const char *key = name;
	json_t *g = json_array(), *src = json_array();
	size_t n = 0;
	long ui;

	if (at != NULL && at > name && (size_t)(at - name) < sizeof shortname) {
		memcpy(shortname, name, (size_t)(at - name));
		shortname[at - name] = '\0';
		key = shortname;
	}
	if (db != NULL && ((ui = fwd_auth_db_find(db, name)) >= 0 || (ui = fwd_auth_db_find(db, key)) >= 0)) {
		const char *const *fg = fwd_auth_db_groups(db, ui, &n);
		for (size_t i = 0; i < n; i++) {
			json_array_append_new(g, json_string(fg[i]));
			json_array_append_new(src, json_string("forward.auth.groups_file"));
		}
	}
	if (dir != NULL) {
		int stale, known;
		char **v = fwd_directory_groups_copy(dir, key, gw_mono_now(), &n, &stale, &known);
		for (size_t i = 0; v != NULL && i < n; i++) {
			json_array_append_new(g, json_string(v[i]));
			json_array_append_new(src, json_string(fwd_directory_source(dir)));
		}
		if (v != NULL && stale)
			json_object_set_new(o, "groups_stale", json_true());
		free(v);
	}
	json_object_set_new(o, "groups", g);
	json_object_set_new(o, "groups_from", src);
}

static json_t *users_json(void)
{
	struct fwd_obs_user *u = calloc(USERS_MAX, sizeof *u);
	json_t *a = json_array();
	const void *side = adm_fwd_side(gw_control_snapshot());
	size_t n;

	if (u == NULL)
		return a;
	n = fwd_obs_users(u, USERS_MAX);
	for (size_t i = 0; i < n; i++) {
		json_t *cl = json_array();
		for (unsigned k = 0; k < u[i].nclients; k++)
			json_array_append_new(cl, json_string(u[i].clients[k]));
		json_t *o = json_pack("{s:s,s:o,s:f,s:f,s:I}", "user", u[i].name, "clients", cl,
		    "first_seen", u[i].first_seen, "last_seen", u[i].last_seen,
		    "requests", (json_int_t)u[i].requests);
		if (o != NULL && side != NULL)
			user_groups(side, u[i].name, o);
		json_array_append_new(a, o);
	}
	free(u);
	return a;
}

static json_t *dlp_json(void)
{
	struct fwd_obs_dlp *e = calloc(DLP_MAX, sizeof *e);
	json_t *a = json_array();
	uint64_t total = 0;
	size_t n;

	if (e == NULL)
		return json_pack("{s:I,s:o}", "total", (json_int_t)0, "hits", a);
	n = fwd_obs_dlp_recent(e, DLP_MAX, &total);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:f,s:s,s:s?,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "time", e[i].time,
		    "client", e[i].client, "user", e[i].user[0] ? e[i].user : NULL, "url", e[i].url,
		    "host", e[i].host, "detector", e[i].detector, "match", e[i].match, "where", e[i].where,
		    "action", e[i].deny ? "deny" : "log", "request_id", e[i].request_id));
	free(e);
	return json_pack("{s:I,s:o}", "total", (json_int_t)total, "hits", a);
}

json_t *adm_api_forward(void)
{
	return json_pack("{s:o,s:o,s:o,s:o}", "top_allowed", top_json(FWD_OBS_ALLOWED),
	    "top_blocked", top_json(FWD_OBS_BLOCKED), "users", users_json(), "dlp", dlp_json());
}

/* ---- GET forward/blocks: the block events, newest first, paged and filtered ---- */

#define BLOCKS_PAGE 25
#define BLOCKS_PAGE_MAX 200

/* Cut "... KEY" up to the next space of s into out[len]; the rest after it. */
static const char *word_after(const char *s, const char *key, char *out, size_t len)
{
	const char *p = strstr(s, key);
	size_t n;

	out[0] = '\0';
	if (p == NULL)
		return NULL;
	p += strlen(key);
	n = strcspn(p, " ");
	snprintf(out, len, "%.*s", (int)n, p);
	return p + n;
}

/* One block event's text, "CLIENT user=U verdict=deny rule="R" id=ID URL: reason"
 * (forward.c block_event), as an object; NULL if it is not one. */
static json_t *block_json(const struct gw_event *e)
{
	char client[64], user[64], rule[64], id[64], url[GW_EVENT_TEXT], host[256];
	const char *p = e->text, *q, *h;
	size_t n = strcspn(p, " "), hl;

	if (n == 0 || n >= sizeof client)
		return NULL;
	snprintf(client, sizeof client, "%.*s", (int)n, p);
	if ((p = word_after(p + n, " user=", user, sizeof user)) == NULL || strncmp(p, " verdict=deny rule=\"", 20) != 0)
		return NULL;
	p += 20;
	if ((q = strstr(p, "\" id=")) == NULL || (size_t)(q - p) >= sizeof rule)
		return NULL;
	snprintf(rule, sizeof rule, "%.*s", (int)(q - p), p);
	if ((p = word_after(q + 1, " id=", id, sizeof id)) == NULL || *p++ != ' ' || (q = strstr(p, ": ")) == NULL)
		return NULL;
	snprintf(url, sizeof url, "%.*s", (int)(q - p), p);
	/* the host: of an absolute URL, or a CONNECT target host:port */
	h = strstr(url, "://");
	h = h != NULL ? h + 3 : url;
	hl = *h == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/?");
	snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), h);
	return json_pack("{s:f,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "time", e->time, "client", client,
	    "user", strcmp(user, "-") == 0 ? "" : user, "rule", rule, "request_id", id, "url", url,
	    "host", host, "reason", q + 2);
}

static int block_match(const json_t *b, const char *q)
{
	static const char *const keys[] = { "client", "user", "host", "rule", "url", NULL };

	for (int i = 0; keys[i]; i++)
		if (strcasestr(adm_jstr(b, keys[i]), q) != NULL)
			return 1;
	return 0;
}

/* ?offset=&limit=&q=: q is a case-insensitive substring of the client,
 * user, host, rule or URL.  total counts the matching events the ring holds. */
json_t *adm_api_blocks(struct MHD_Connection *c)
{
	struct gw_event *ev = calloc(512, sizeof *ev);
	const char *q = adm_arg(c, "q");
	uint64_t last = 0, offset = adm_arg_u64(c, "offset"), limit = adm_arg_u64(c, "limit"), total = 0;
	size_t n;
	json_t *a = json_array();

	if (ev == NULL)
		return NULL;
	if (limit == 0)
		limit = BLOCKS_PAGE;
	if (limit > BLOCKS_PAGE_MAX)
		limit = BLOCKS_PAGE_MAX;
	n = gw_event_recent(ev, 512, 0, &last);
	for (size_t i = 0; i < n; i++) {
		json_t *b;
		if (strcmp(ev[i].kind, "block") != 0 || (b = block_json(&ev[i])) == NULL)
			continue;
		if (q != NULL && !block_match(b, q)) {
			json_decref(b);
			continue;
		}
		if (total >= offset && total - offset < limit)
			json_array_append_new(a, b);
		else
			json_decref(b);
		total++;
	}
	free(ev);
	return json_pack("{s:I,s:I,s:I,s:I,s:o}", "total", (json_int_t)total, "offset", (json_int_t)offset,
	    "limit", (json_int_t)limit, "seq", (json_int_t)last, "blocks", a);
}

/* ---- POST policy/test ---- */

static int parse_client(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

enum url_kind { URL_HTTP, URL_HTTPS, URL_AUTHORITY };

/* Split "scheme://host[:port]/..." or "host:port"; host lower-cased, an IP
 * literal canonical (as the proxy reads it, core/addr.h: "0177.0.0.1" is
 * refused, "[::ffff:10.1.2.3]" is 10.1.2.3). */
static const char *parse_target(const char *url, enum url_kind *kind, char *host, size_t hlen,
    uint16_t *port)
{
	const char *p = url, *hs, *he;
	unsigned long pt;

	if (strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		*port = 80;
		*kind = URL_HTTP;
	} else if (strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		*port = 443;
		*kind = URL_HTTPS;
	} else if (strstr(p, "://") != NULL) {
		return "only http:// and https:// URLs, or host:port for CONNECT";
	} else {
		*kind = URL_AUTHORITY;
		*port = 0;
	}
	hs = p;
	if (*p == '[') {
		he = strchr(p, ']');
		if (he == NULL)
			return "unterminated [IPv6] host";
		hs = p + 1;
		p = he + 1;
	} else {
		he = p + strcspn(p, ":/?#");
		p = he;
	}
	if (he == hs || (size_t)(he - hs) >= hlen)
		return "no host in the URL";
	for (size_t i = 0; i < (size_t)(he - hs); i++)
		host[i] = (char)(hs[i] >= 'A' && hs[i] <= 'Z' ? hs[i] + 32 : hs[i]);
	host[he - hs] = '\0';
	{
		struct gw_addr a;
		int is_ip;
		const char *aerr = gw_addr_parse_host(host, (size_t)(he - hs), &a, &is_ip);
		if (aerr != NULL)
			return aerr;
		if (is_ip) {
			gw_addr_canon(&a);
			gw_addr_format(&a, host, hlen);
		}
	}
	if (*p == ':') {
		char *end;
		pt = strtoul(p + 1, &end, 10);
		if (end == p + 1 || pt == 0 || pt > 65535)
			return "bad port";
		*port = (uint16_t)pt;
	}
	if (*port == 0)
		return "CONNECT needs host:port";
	return NULL;
}

/* The request line the form describes, as the proxy would receive it:
 *   "/path"                 origin-form: a request to the proxy itself (PAC)
 *   "*"                     asterisk-form (OPTIONS)
 *   "host:port"             CONNECT
 *   "https://host[:port]/"  CONNECT host:port (a browser tunnels https://),
 *                           unless another method is given: then the
 *                           absolute-form request the proxy answers 501
 *   "http://..."            absolute-form (method CONNECT: a tunnel to it)
 * Fills f's form, connect, https, method, host and port; NULL or an error. */
static const char *tester_target(const char *url, const char *method, struct fwd_facts *f, char *host,
    size_t hlen)
{
	enum url_kind kind;
	const char *err;
	int is_connect = method != NULL && strcmp(method, "CONNECT") == 0;

	host[0] = '\0';
	f->target = url;
	f->target_len = strlen(url);
	if (url[0] == '/' || strcmp(url, "*") == 0) {
		f->form = url[0] == '/' ? GW_TF_ORIGIN : GW_TF_ASTERISK;
		f->method = method != NULL ? method : url[0] == '/' ? "GET" : "OPTIONS";
		if (f->form == GW_TF_ASTERISK && strcmp(f->method, "OPTIONS") != 0)
			return "asterisk-form only with OPTIONS";
		if (is_connect)
			return "CONNECT needs host:port";
		f->path = url;
		f->path_len = f->target_len;
		f->host = host;
		return NULL;
	}
	if ((err = parse_target(url, &kind, host, hlen, &f->port)) != NULL)
		return err;
	f->host = host;
	f->host_len = strlen(host);
	if (kind == URL_AUTHORITY && method != NULL && !is_connect)
		return "authority-form (host:port) only with CONNECT";
	if (kind == URL_AUTHORITY || is_connect || (kind == URL_HTTPS && method == NULL)) {
		f->form = GW_TF_AUTHORITY;
		f->connect = 1;
		f->method = "CONNECT";
		return NULL;
	}
	f->form = GW_TF_ABSOLUTE;
	f->https = kind == URL_HTTPS;
	f->method = method != NULL ? method : "GET";
	return NULL;
}

/*
 * The directory's cached groups of user (forward.auth.ldap) added to f's
 * groups: *block and *merged are malloc'd for the caller to free.  Only
 * the cache is read (the console's loop never waits for a directory);
 * what is not cached yet goes to notes.  Returns the directory's source
 * name when groups were added, else NULL.
 */
static const char *tester_dir_groups(struct fwd_directory *dir, const char *user, struct fwd_facts *f,
    json_t *notes, char ***block, const char ***merged)
{
	size_t n = 0;
	int stale = 0, known = 1;
	const char **m;

	*block = fwd_directory_groups_copy(dir, user, gw_mono_now(), &n, &stale, &known);
	if (*block == NULL) {
		json_array_append_new(notes, json_string(known ? "the directory's groups of this user are not "
		    "cached yet (they are looked up at the user's next request through the proxy)" :
		    "the directory does not know this user (cached answer): no directory groups"));
		return NULL;
	}
	if (stale)
		json_array_append_new(notes, json_string("the directory's groups of this user are cached but "
		    "expired: they are looked up again at the user's next request"));
	if (n == 0 || (m = malloc((f->ngroups + n) * sizeof *m)) == NULL)
		return NULL;
	for (size_t i = 0; i < f->ngroups; i++)
		m[i] = f->groups[i];
	for (size_t i = 0; i < n; i++)
		m[f->ngroups + i] = (*block)[i];
	f->groups = m;
	f->ngroups += n;
	*merged = m;
	return fwd_directory_source(dir);
}

/* The form's user as the proxy would see it signed in: *cred, the user,
 * and (unless the form names groups) the user's groups from the compiled
 * forward.auth (groups file, the directory's cache); what the tester cannot
 * know goes to notes.  *block and *merged: see tester_dir_groups(). */
static const char *tester_user(const void *side, const struct fwd_decider *dc, const char *user,
    struct fwd_facts *f, json_t *notes, char ***block, const char ***merged)
{
	const struct fwd_auth_db *db = fwd_side_auth_db(side);
	struct fwd_directory *dir = fwd_side_directory(side);
	const struct conf_fwd_auth *au = &dc->cf->forward.auth;
	const char *at = user != NULL ? strrchr(user, '@') : NULL, *from = NULL;
	static char shortname[FWD_AUTH_USER_MAX + 1];   /* f->user_short outlives the call (main loop only) */
	long ui;

	f->cred = FWD_CRED_NONE;
	if (user == NULL)
		return NULL;
	if (db == NULL) {
		json_array_append_new(notes, json_string("forward.auth is not configured: the proxy signs "
		    "no one in, so the user is not used"));
		return NULL;
	}
	if (!dc->auth_used) {
		json_array_append_new(notes, json_string("no rule has users, groups or action \"auth\": the "
		    "proxy does not check credentials, so the user is not used"));
		return NULL;
	}
	/* a Kerberos principal: policy users match it and its short name */
	if (at != NULL && at > user && au->sso.kerberos.present && (size_t)(at - user) < sizeof shortname) {
		memcpy(shortname, user, (size_t)(at - user));
		shortname[at - user] = '\0';
		f->user_short = shortname;
	}
	ui = fwd_auth_db_find(db, f->user_short != NULL ? f->user_short : user);
	if (ui < 0 && dir == NULL && !au->sso.kerberos.present) {
		f->cred = FWD_CRED_BAD;
		json_array_append_new(notes, json_string("the user is not in forward.auth.users_file: "
		    "a sign-in as this user fails (auth-failed where a rule asks to sign in)"));
		return NULL;
	}
	f->cred = FWD_CRED_OK;
	f->user = ui >= 0 && f->user_short == NULL ? fwd_auth_db_name(db, ui) : user;
	json_array_append_new(notes, json_string(f->user_short != NULL ? "the Kerberos ticket is not checked: "
	    "the principal is taken as signed in" : ui >= 0 ? "the password is not checked: the user is taken as "
	    "signed in" : "the user is not in forward.auth.users_file: taken as signed in by Kerberos or a "
	    "directory bind (not checked here)"));
	if (f->ngroups > 0)
		return NULL;   /* the form's groups */
	if (ui >= 0 && (f->groups = fwd_auth_db_groups(db, ui, &f->ngroups)) != NULL && f->ngroups > 0)
		from = "forward.auth.groups_file";
	if (dir != NULL) {
		const char *d = tester_dir_groups(dir, f->user_short != NULL ? f->user_short : user, f, notes, block,
		    merged);
		if (d != NULL)
			from = from != NULL ? "forward.auth.groups_file + directory" : d;
	}
	return from != NULL ? from : "forward.auth.groups_file";
}

static json_t *verdict(const char *v, int status, const char *stage, const char *rule, const char *why)
{
	return json_pack("{s:s,s:i,s:s,s:s,s:s}", "verdict", v, "status", status, "stage", stage,
	    "rule", rule ? rule : "", "why", why);
}

/* The form's request through fwd_decide() on the current snapshot: the
 * proxy's own checks, order and texts (forward/decide.h). */
json_t *adm_api_policy_test(struct adm_req *r, const char *console_client, unsigned *status)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	const void *side = adm_fwd_side(s);
	const struct fwd_decider *dc = fwd_side_decider(side);
	json_t *in = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *url = NULL, *client = NULL, *user = NULL, *tstr = NULL, *method = NULL, *err;
	const char *groups_from = "request", *gfrom;
	char **dir_block = NULL;
	const char **merged = NULL;
	json_t *groups_j = NULL, *out, *notes, *gj;
	const char *groups[32];
	size_t ngroups = 0;
	int websocket = 0;
	struct sockaddr_storage ss;
	struct fwd_facts f;
	struct fwd_verdict v;
	char host[256], tbuf[64];
	struct tm tm;
	time_t t;

	*status = MHD_HTTP_BAD_REQUEST;
	if (in == NULL || json_unpack(in, "{s:s,s?s,s?s,s?s,s?s,s?o,s?b}", "url", &url, "client", &client,
	    "user", &user, "time", &tstr, "method", &method, "groups", &groups_j, "websocket", &websocket) < 0) {
		json_decref(in);
		return json_pack("{s:s}", "error", "expected JSON {url, client, user, time, method, groups, "
		    "websocket}");
	}
	if (dc == NULL) {
		json_decref(in);
		return json_pack("{s:s}", "error", "no forward policy in the running configuration");
	}
	memset(&f, 0, sizeof f);
	if (method != NULL && *method == '\0')
		method = NULL;      /* "as a browser would" */
	if (user != NULL && *user == '\0')
		user = NULL;
	if ((err = tester_target(url, method, &f, host, sizeof host)) != NULL) {
		out = json_pack("{s:s}", "error", err);
		json_decref(in);
		return out;
	}
	f.websocket = websocket && !f.connect;
	if (client == NULL || *client == '\0')
		client = console_client;
	if (parse_client(client, &ss) < 0) {
		json_decref(in);
		return json_pack("{s:s}", "error", "client must be an IP address");
	}
	f.client = (const struct sockaddr *)&ss;
	t = time(NULL);
	localtime_r(&t, &tm);
	if (tstr != NULL && *tstr) {
		struct tm tt;
		const char *end;
		memset(&tt, 0, sizeof tt);
		end = strptime(tstr, "%Y-%m-%dT%H:%M", &tt);
		if (end != NULL && *end == ':')
			end = strptime(end, ":%S", &tt);
		if (end == NULL || *end != '\0') {
			json_decref(in);
			return json_pack("{s:s}", "error", "time must be YYYY-MM-DDTHH:MM[:SS] (local time)");
		}
		tt.tm_isdst = -1;
		if (mktime(&tt) == (time_t)-1) {
			json_decref(in);
			return json_pack("{s:s}", "error", "time out of range");
		}
		tm = tt;
	}
	f.local_time = &tm;
	if (json_is_array(groups_j)) {
		for (size_t i = 0; i < json_array_size(groups_j) && ngroups < 32; i++)
			if (json_is_string(json_array_get(groups_j, i)))
				groups[ngroups++] = json_string_value(json_array_get(groups_j, i));
	}
	f.groups = groups;
	f.ngroups = ngroups;
	notes = json_array();
	if ((gfrom = tester_user(side, dc, user, &f, notes, &dir_block, &merged)) != NULL && ngroups == 0)
		groups_from = gfrom;
	if (f.cred != FWD_CRED_OK) {
		f.groups = NULL;
		f.ngroups = 0;
	}
	if (f.form == GW_TF_ABSOLUTE && !f.connect) {
		f.url_cap = 3 * f.target_len + FWD_URL_NORM_EXTRA;
		f.url_buf = malloc(f.url_cap);
		if (f.url_buf == NULL)
			f.url_cap = 0;
	}
	f.explain = 1;
	f.md = S.md;
	fwd_decide(dc, &f, &v);
	free(f.url_buf);
	f.url_buf = NULL;
	/* a URL the proxy cannot read is an error in the form as well (400) */
	*status = v.stage == FWD_STAGE_URL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK;
	out = verdict(fwd_verdict_name(v.verdict), v.status, fwd_stage_name(v.stage), v.rule, v.reason);
	if (v.stage == FWD_STAGE_URL)
		json_object_set_new(out, "error", json_string(v.reason));
	if (v.stage == FWD_STAGE_POLICY) {
		const struct fwd_match *why = &v.match;
		json_object_set_new(out, "match", json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "list", why->list,
		    "list_entry", why->list_entry, "domain", why->domain, "url", why->url, "hours", why->hours));
		if (why->rule_index != SIZE_MAX)
			json_object_set_new(out, "rule_index", json_integer((json_int_t)why->rule_index));
	}
	if (v.verdict == FWD_V_ALLOW && f.connect) {
		/* TLS inspection: by the CONNECT host (the TLS name, when it
		 * differs, is only known once the client sends it) */
		char why[600];
		int insp = fwd_decide_inspect(dc, host, NULL, &v.match, why, sizeof why);
		json_object_set_new(out, "tls", json_pack("{s:s,s:s}", "action", insp ? "inspected" : "tunnelled",
		    "reason", why));
	}
	/* what only the request itself can tell */
	if (v.verdict == FWD_V_ALLOW) {
		struct gw_addr a;
		int is_ip = 0;
		gw_addr_parse_host(host, strlen(host), &a, &is_ip);
		if (!is_ip)
			json_array_append_new(notes, json_string("the host is resolved when the request is made: "
			    "each address it resolves to is then checked against deny_destinations and "
			    "Gatehouse's own listeners (403 deny_destinations or own_listener)"));
		if (!f.connect) {   /* the content scanners it would go to (forward.icap) */
			const struct conf_forward *fw = &s->conf->forward;
			const struct conf_strs *l = &fw->icap_default;
			json_t *ia = json_array();
			if (v.stage == FWD_STAGE_POLICY && v.match.rule_index < fw->npolicy &&
			    fw->policy[v.match.rule_index].icap_set)
				l = &fw->policy[v.match.rule_index].icap;
			for (size_t i = 0; i < l->n; i++)
				json_array_append_new(ia, json_string(l->v[i]));
			json_object_set_new(out, "icap", ia);
		}
		if (!f.connect && s->conf->forward.dlp.present && s->conf->forward.dlp.enabled)
			json_array_append_new(notes, json_string("DLP reads the URL, the headers and the body "
			    "when the request is made"));
	}
	json_object_set_new(out, "notes", notes);
	strftime(tbuf, sizeof tbuf, "%a %Y-%m-%d %H:%M:%S", &tm);
	json_object_set_new(out, "input", json_pack("{s:s,s:s,s:s,s:i,s:s,s:s?,s:s,s:b}", "client", client,
	    "method", f.method, "host", host, "port", f.port, "url", url, "user", user, "time", tbuf,
	    "websocket", f.websocket));
	gj = json_array();
	for (size_t i = 0; i < f.ngroups; i++)
		json_array_append_new(gj, json_string(f.groups[i]));
	json_object_set_new(json_object_get(out, "input"), "groups", gj);
	json_object_set_new(json_object_get(out, "input"), "groups_from", json_string(groups_from));
	free(merged);
	free(dir_block);
	json_object_set_new(out, "generation", json_integer((json_int_t)s->generation));
	json_decref(in);
	return out;
}
