/*
 * admin/admin: the console's HTTP side.  One libmicrohttpd daemon serves the
 * console on admin.listen (optionally HTTPS), a second one only /metrics on
 * admin.metrics_listen.  Both run in MHD's external-event mode inside the
 * main libevent loop: MHD_USE_EPOLL gives one epoll fd per daemon, watched
 * by a level-triggered EV_READ|EV_PERSIST event whose callback calls
 * MHD_run(); after every run MHD_get_timeout() re-arms a one-shot timer so
 * idle timeouts and resumed connections make progress with no socket
 * activity.  This file routes requests, enforces authentication, roles and
 * CSRF, and puts the security headers on every response.
 */
#include "admin/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/adm_int.h"
#include "cluster/fileset.h"
#include "cluster/sync.h"
#include "conf/conf.h"
#include "core/control.h"
#include "core/events.h"
#include "core/http1.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "core/strlit.h"

struct event_base *adm_base;

struct daemon {
	struct MHD_Daemon *d;
	struct event *ev_io, *ev_timer;
	int metrics_only;
	int https;
	char addr[160];            /* what it listens on, to notice changes */
	unsigned per_ip, timeout;  /* admin.max_conns_per_client, admin.client_timeout (whole s) */
	char cert[512], key[512];
};

static struct {
	int started;               /* adm_start ran (auth, api ready) */
	struct daemon console, metrics;
	struct event *ev_restart;
	int restart_pending;
} G;

static int subscribed;         /* to core/control's reloads (once per process) */

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const char *adm_client(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	snprintf(buf, len, "-");
	if (sa == NULL)
		return buf;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			inet_ntop(AF_INET, &a6->s6_addr[12], buf, (socklen_t)len);
		else
			inet_ntop(AF_INET6, a6, buf, (socklen_t)len);
	}
	return buf;
}

static void add_security_headers(struct MHD_Response *resp, int https)
{
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (https)
		MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

static int conn_https(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

	return ci != NULL && G.console.d != NULL && ci->daemon == G.console.d && G.console.https;
}

enum MHD_Result adm_send(struct MHD_Connection *c, unsigned status, const char *ctype,
    const void *body, size_t len, int must_free, const char *hname, const char *hval)
{
	const char *h[] = { hname, hval, NULL };

	return adm_send_hdrs(c, status, ctype, body, len, must_free, hname != NULL && hval != NULL ? h : NULL);
}

enum MHD_Result adm_send_hdrs(struct MHD_Connection *c, unsigned status, const char *ctype,
    const void *body, size_t len, int must_free, const char *const *hdrs)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (body == NULL) {
		body = "";
		must_free = 0;
	}
	if (len == 0)
		len = strlen(body);
	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (resp == NULL) {
		if (must_free)
			free((void *)(uintptr_t)body);
		return MHD_NO;
	}
	add_security_headers(resp, conn_https(c));
	if (ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL && hdrs[i + 1] != NULL; i += 2)
		MHD_add_response_header(resp, hdrs[i], hdrs[i + 1]);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result adm_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s == NULL)
		return adm_send(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
		    "{\"error\":\"out of memory\"}", 0, 0, NULL, NULL);
	return adm_send(c, status, "application/json", s, 0, 1, NULL, NULL);
}

enum MHD_Result adm_send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return adm_send_json(c, status, json_pack("{s:s}", "error", msg));
}

static const char login_msg_expired[] = "The sign-in form expired. Please try again.";

static const struct adm_asset *asset_find(const char *url)
{
	for (size_t i = 0; i < adm_nassets; i++)
		if (strcmp(adm_assets[i].path, url) == 0)
			return &adm_assets[i];
	return NULL;
}

static enum MHD_Result send_asset(struct MHD_Connection *c, const struct adm_asset *a)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(a->len, (void *)(uintptr_t)a->data,
	    MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	add_security_headers(resp, conn_https(c));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->ctype);
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

int adm_is_form(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct != NULL && strncasecmp(ct, GW_STRLIT("application/x-www-form-urlencoded")) == 0;
}

const char *adm_form_field(const struct adm_req *r, const char *name, char *buf, size_t len)
{
	const char *p = r->body, *end = r->body + r->len;
	size_t nl = strlen(name);

	if (r->body == NULL || len == 0)
		return NULL;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *fe = amp ? amp : end;
		if ((size_t)(fe - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t o = 0;
			for (p += nl + 1; p < fe; p++) {
				int hi, lo;
				char ch = *p;
				if (ch == '+')
					ch = ' ';
				else if (ch == '%' && fe - p > 2 && (hi = gw_hexval(p[1])) >= 0 &&
				    (lo = gw_hexval(p[2])) >= 0) {
					ch = (char)(hi << 4 | lo);
					p += 2;
				}
				if (ch == '\0' || o + 1 >= len)
					return NULL;   /* no NULs; too long is no answer */
				buf[o++] = ch;
			}
			buf[o] = '\0';
			return buf;
		}
		p = fe + 1;
	}
	return NULL;
}

/* The CSRF token of a POST: the X-CSRF-Token header, else a "csrf" form field. */
static const char *csrf_given(struct MHD_Connection *c, struct adm_req *r, char *buf, size_t len)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");

	if (h != NULL)
		return h;
	return adm_is_form(c) ? adm_form_field(r, "csrf", buf, len) : NULL;
}

/*
 * The sign-in page.  It works without JavaScript: a plain form POSTs to
 * /login (see handle()), guarded by a double-submit token: a fresh random
 * value in a SameSite=Strict cookie scoped to /login and in a hidden field,
 * which must match.  msg is one of our fixed sentences, never user input.
 */
enum MHD_Result adm_login_page(struct MHD_Connection *c, unsigned status, const char *msg,
    const char *hname, const char *hval)
{
	const struct adm_asset *a = asset_find("/login");
	static const char tok_at[] = "name=\"csrf\" value=\"", msg_at[] = "role=\"alert\">";
	const char *t, *m;
	char token[65], cookie[160], *page;
	size_t n, tl, ml;
	const char *hdrs[] = { MHD_HTTP_HEADER_SET_COOKIE, cookie, hname, hval, NULL };

	if (a == NULL || adm_random_hex(token, 32) < 0)
		return MHD_NO;
	t = strstr((const char *)a->data, tok_at);
	m = strstr((const char *)a->data, msg_at);
	if (t == NULL || m == NULL || m < t)
		return MHD_NO;
	t += sizeof tok_at - 1;
	m += sizeof msg_at - 1;
	tl = strlen(token);
	ml = msg != NULL ? strlen(msg) : 0;
	n = a->len + tl + ml;
	page = malloc(n + 1);
	if (page == NULL)
		return MHD_NO;
	/* the template up to the token, the token, up to the message, the message, the rest */
	{
		size_t o = 0, k = (size_t)(t - (const char *)a->data);
		memcpy(page, a->data, k);
		o = k;
		memcpy(page + o, token, tl);
		o += tl;
		memcpy(page + o, t, (size_t)(m - t));
		o += (size_t)(m - t);
		memcpy(page + o, msg != NULL ? msg : "", ml);
		o += ml;
		memcpy(page + o, m, a->len - (size_t)(m - (const char *)a->data));
		o += a->len - (size_t)(m - (const char *)a->data);
		page[o] = '\0';
		n = o;
	}
	snprintf(cookie, sizeof cookie, "gh_login=%s; Path=/login; HttpOnly; SameSite=Strict%s", token,
	    conn_https(c) ? "; Secure" : "");
	return adm_send_hdrs(c, status, "text/html; charset=utf-8", page, n, 1, hdrs);
}

/* Messages for /login?e=... (after a form sign-in failed). */
static const char *login_msg(struct MHD_Connection *c)
{
	const char *e = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "e");

	if (e == NULL)
		return NULL;
	if (strcmp(e, "wrong") == 0)
		return "Wrong user name or password.";
	if (strcmp(e, "expired") == 0)
		return login_msg_expired;
	return NULL;
}

/* POST /login: the form's hidden token must equal its cookie. */
static int login_form_token_ok(struct MHD_Connection *c, const struct adm_req *r)
{
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "gh_login");
	char field[80];
	const char *f = adm_is_form(c) ? adm_form_field(r, "csrf", field, sizeof field) : NULL;

	return cookie != NULL && f != NULL && strlen(cookie) == 64 && adm_ct_equal(cookie, f);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct daemon *dm = cls;
	struct adm_req *r = *con_cls;
	const struct adm_asset *a;
	struct adm_who who;
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int is_post = strcmp(method, "POST") == 0;

	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof *r);
		if (r == NULL)
			return MHD_NO;
		r->magic = ADM_REQ_MAGIC;
		r->https = dm->https;
		adm_client(c, r->client, sizeof r->client);
		*con_cls = r;
		return MHD_YES;
	}
	if (r->magic != ADM_REQ_MAGIC)
		return MHD_NO;
	if (*upload_size > 0) {
		/* a peer's set of configuration files (signed, checked once whole)
		 * may be larger: only from a peer's address with a fresh signature */
		size_t max = strcmp(url, "/api/v1/cluster/files") == 0 &&
		    clu_sync_set_welcome(r->client, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    "X-Gatehouse-Cluster")) ? CLU_FILESET_MAX_BYTES : ADM_BODY_MAX;
		if (!r->too_big && r->len + *upload_size <= max) {
			if (r->len + *upload_size + 1 > r->cap) {
				size_t cap = r->len + *upload_size + 1 + 1024;
				char *nb = realloc(r->body, cap);
				if (nb == NULL)
					return MHD_NO;
				r->body = nb;
				r->cap = cap;
			}
			memcpy(r->body + r->len, upload, *upload_size);
			r->len += *upload_size;
			r->body[r->len] = '\0';
		} else {
			r->too_big = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->login_state == 1)
		return MHD_YES;        /* suspended while hashing; resumed by auth.c */
	if (r->too_big)
		return adm_send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");

	if (is_get && strcmp(url, "/healthz") == 0)
		return adm_healthz(c);
	if (dm->metrics_only) {
		if (strcmp(url, "/metrics") == 0 && is_get)
			return adm_metrics(c);
		return adm_send(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
		    "only /metrics is served here\n", 0, 0, NULL, NULL);
	}

	/* open to everyone: the login page and its assets, the login calls */
	if (strcmp(url, "/login") == 0) {
		if (is_get)
			return adm_login_page(c, MHD_HTTP_OK, login_msg(c), NULL, NULL);
		if (!is_post)
			return adm_send(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
			    "use GET or POST\n", 0, 0, MHD_HTTP_HEADER_ALLOW, "GET, POST");
		if (r->login_state == 0 && !login_form_token_ok(c, r)) {
			adm_audit(NULL, r->client, "login", "denied", "form without a valid sign-in token");
			return adm_login_page(c, MHD_HTTP_FORBIDDEN, login_msg_expired, NULL, NULL);
		}
		r->form = 1;
		return adm_login(c, r);
	}
	if (is_get && strcmp(url, "/") != 0 && (a = asset_find(url)) != NULL)
		return send_asset(c, a);
	if (strcmp(url, "/api/v1/login") == 0) {
		if (!is_post)
			return adm_send(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
			    "{\"error\":\"use POST\"}", 0, 0, MHD_HTTP_HEADER_ALLOW, "POST");
		return adm_login(c, r);
	}

	/* the pair's own calls: signed with the cluster token, no session */
	if (strcmp(url, "/api/v1/cluster/sync") == 0 || strcmp(url, "/api/v1/cluster/state") == 0 ||
	    strcmp(url, "/api/v1/cluster/files") == 0)
		return adm_api_cluster_peer(c, method, url + 16, r);
	if (!adm_auth_check(c, &who)) {
		if (strncmp(url, GW_STRLIT("/api/")) == 0 || strcmp(url, "/metrics") == 0)
			return adm_send(c, MHD_HTTP_UNAUTHORIZED, "application/json",
			    "{\"error\":\"login required\"}", 0, 0, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
			    "Bearer realm=\"gatehouse\"");
		return adm_send(c, MHD_HTTP_FOUND, "text/plain; charset=utf-8", "login required\n", 0, 0,
		    MHD_HTTP_HEADER_LOCATION, "/login");
	}
	if (!is_get && !is_post)
		return adm_send(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
		    "{\"error\":\"method not allowed\"}", 0, 0, MHD_HTTP_HEADER_ALLOW, "GET, POST");
	if (is_post && !who.bearer) {
		char buf[80];
		const char *tok = csrf_given(c, r, buf, sizeof buf);
		if (tok == NULL || who.csrf == NULL || !adm_ct_equal(tok, who.csrf)) {
			adm_audit(who.user, r->client, url, "denied", "missing or wrong CSRF token");
			return adm_send_error(c, MHD_HTTP_FORBIDDEN, "missing or wrong CSRF token");
		}
	}
	if (is_get && strcmp(url, "/") == 0)
		return send_asset(c, asset_find("/"));
	if (is_get && strcmp(url, "/metrics") == 0)
		return adm_metrics(c);
	if (is_post && strcmp(url, "/api/v1/logout") == 0)
		return adm_logout(c, &who, r->client);
	if (strcmp(url, "/api/v1/account/password") == 0) {
		if (!is_post)
			return adm_send(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
			    "{\"error\":\"use POST\"}", 0, 0, MHD_HTTP_HEADER_ALLOW, "POST");
		return adm_password(c, r, &who);
	}
	if (strncmp(url, GW_STRLIT("/api/v1/")) == 0)
		return adm_api(c, url + 8, method, r, &who);
	return adm_send(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "not found\n", 0, 0, NULL, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct adm_req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL || r->magic != ADM_REQ_MAGIC)
		return;
	adm_login_done(r);
	if (r->password != NULL) {
		memset(r->password, 0, strlen(r->password));
		free(r->password);
	}
	if (r->new_password != NULL) {
		memset(r->new_password, 0, strlen(r->new_password));
		free(r->new_password);
	}
	free(r->body);
	r->magic = 0;
	free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	gw_warn("admin console: %s", buf);
}

/* ---- the event-loop glue ---- */

static void daemon_run(struct daemon *dm)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (dm->d == NULL)
		return;
	MHD_run(dm->d);
	if (MHD_get_timeout(dm->d, &ms) == MHD_YES) {
		struct timeval tv;
		if (ms > 60000)
			ms = 60000;
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
		event_add(dm->ev_timer, &tv);
	} else {
		event_del(dm->ev_timer);
	}
}

static void daemon_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	daemon_run(arg);
}

void adm_resume(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

	MHD_resume_connection(c);
	if (ci != NULL && ci->daemon == G.console.d)
		daemon_run(&G.console);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static void daemon_stop(struct daemon *dm)
{
	if (dm->ev_io != NULL)
		event_free(dm->ev_io);
	if (dm->ev_timer != NULL)
		event_free(dm->ev_timer);
	if (dm->d != NULL)
		MHD_stop_daemon(dm->d);
	memset(dm, 0, sizeof *dm);
}

/* The connection limits of ad as libmicrohttpd takes them. */
static void conn_limits(const struct conf_admin *ad, unsigned *per_ip, unsigned *timeout)
{
	*per_ip = (unsigned)ad->max_conns_per_client;
	*timeout = (unsigned)(ad->client_timeout + 0.999);   /* whole seconds, never 0 (= no timeout) */
}

static int daemon_start(struct daemon *dm, const struct conf_addr *addr, int metrics_only, const char *cert,
    const char *key, const struct conf_admin *ad)
{
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	char *certpem = NULL, *keypem = NULL;
	const union MHD_DaemonInfo *di;
	struct MHD_OptionItem opts[4];
	int nopt = 0, lfd, one = 1;

	memset(dm, 0, sizeof *dm);
	dm->metrics_only = metrics_only;
	snprintf(dm->addr, sizeof dm->addr, "%s", addr->text);
	conn_limits(ad, &dm->per_ip, &dm->timeout);
	/* our own listening socket: MHD 0.9.75 mishandles SOCK_ADDR together
	 * with DUAL_STACK for the "*:port" wildcard ("bind to port 0") */
	lfd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		gw_error("admin console: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (addr->ss.ss_family == AF_INET6) {
		int v6only = addr->host[0] != '\0';
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
		flags |= MHD_USE_IPv6;
	}
	if (bind(lfd, (const struct sockaddr *)&addr->ss, addr->sslen) < 0 || listen(lfd, 64) < 0) {
		gw_error("admin console: cannot listen on %s: %s", addr->text, strerror(errno));
		close(lfd);
		return -1;
	}
	if (cert != NULL && key != NULL) {
		snprintf(dm->cert, sizeof dm->cert, "%s", cert);
		snprintf(dm->key, sizeof dm->key, "%s", key);
		certpem = read_file(cert);
		keypem = read_file(key);
		if (certpem == NULL || keypem == NULL) {
			gw_error("admin console: cannot read %s: %s", certpem == NULL ? cert : key, strerror(errno));
			free(certpem);
			free(keypem);
			close(lfd);
			return -1;
		}
		flags |= MHD_USE_TLS;
		dm->https = 1;
		opts[nopt++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, certpem };
		opts[nopt++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, keypem };
	}
	opts[nopt++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	dm->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, dm,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd,
	    /* slow or idle clients must not hold the 128 connections: a short
	     * idle timeout and a per-address cap (more are closed at accept) */
	    MHD_OPTION_CONNECTION_TIMEOUT, dm->timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)128,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, dm->per_ip,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
	    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	    MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (certpem != NULL) {
		memset(keypem, 0, strlen(keypem));
		free(certpem);
		free(keypem);
	}
	if (dm->d == NULL) {
		close(lfd);
		gw_error("admin console: cannot listen on %s%s", addr->text,
		    dm->https ? " (check admin.tls_cert / admin.tls_key)" : "");
		memset(dm, 0, sizeof *dm);
		return -1;
	}
	di = MHD_get_daemon_info(dm->d, MHD_DAEMON_INFO_EPOLL_FD);
	dm->ev_io = event_new(adm_base, di->epoll_fd, EV_READ | EV_PERSIST, daemon_cb, dm);
	dm->ev_timer = event_new(adm_base, -1, 0, daemon_cb, dm);
	if (dm->ev_io == NULL || dm->ev_timer == NULL || event_add(dm->ev_io, NULL) < 0) {
		daemon_stop(dm);
		return -1;
	}
	daemon_run(dm);
	gw_info("admin %s listening on %s%s", metrics_only ? "metrics" : "console", addr->text,
	    dm->https ? " (https)" : "");
	return 0;
}

static int daemons_start(const struct gw_snapshot *s)
{
	const struct conf_admin *ad = &s->conf->admin;
	int rc = 0;

	if (ad->listen_enabled && G.console.d == NULL &&
	    daemon_start(&G.console, &ad->listen, 0, ad->tls_cert, ad->tls_key, ad) < 0)
		rc = -1;
	if (ad->metrics_enabled && G.metrics.d == NULL &&
	    daemon_start(&G.metrics, &ad->metrics_listen, 1, NULL, NULL, ad) < 0)
		rc = -1;
	return rc;
}

static void daemons_stop(void)
{
	/* a login being hashed holds a suspended connection: finish it first */
	adm_auth_drain();
	daemon_stop(&G.console);
	daemon_stop(&G.metrics);
}

static int same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
	const struct gw_snapshot *s = gw_control_snapshot();
	const struct conf_admin *ad;
	unsigned per_ip, timeout;

	(void)fd;
	(void)what;
	(void)arg;
	G.restart_pending = 0;
	if (s == NULL)
		return;
	ad = &s->conf->admin;
	adm_auth_reload(s);
	/* MHD takes its limits at start only: a change restarts the daemon */
	conn_limits(ad, &per_ip, &timeout);
	if (G.console.d != NULL && (!ad->listen_enabled || !same(G.console.addr, ad->listen.text) ||
	    !same(G.console.cert, ad->tls_cert) || !same(G.console.key, ad->tls_key) ||
	    G.console.per_ip != per_ip || G.console.timeout != timeout)) {
		adm_auth_drain();
		daemon_stop(&G.console);
	}
	if (G.metrics.d != NULL && (!ad->metrics_enabled || !same(G.metrics.addr, ad->metrics_listen.text) ||
	    G.metrics.per_ip != per_ip || G.metrics.timeout != timeout)) {
		adm_auth_drain();
		daemon_stop(&G.metrics);
	}
	if (daemons_start(s) < 0)
		gw_error("admin console: not (fully) running after the reload");
}

/* s became the current generation: re-read the users file, and restart the
 * daemons (deferred to the next loop turn) if their addresses or TLS files
 * changed.  Safe to call from inside a console request (POST reload). */
static void reconfigure(const struct gw_snapshot *s)
{
	if (G.started)
		adm_api_reloaded(s);
	/* deferred: this may run inside a console request (POST /api/v1/reload),
	 * where the daemon serving it must not be stopped */
	if (!G.started || G.restart_pending)
		return;
	G.restart_pending = 1;
	event_active(G.ev_restart, EV_TIMEOUT, 0);
}

/* Reload subscriber (core/control.h): the console follows a new generation
 * (and the access-log tail is kept only while the console may read it);
 * every attempt ends in the audit. */
static void reloaded(int rc, const struct gw_snapshot *s, void *arg)
{
	(void)arg;
	if (rc == 0) {
		gw_tail_enable(s->conf->admin.present && s->conf->admin.listen_enabled);
		reconfigure(s);
	}
	adm_api_reload_done(rc);
}

int adm_start(struct event_base *base, const struct gw_snapshot *s)
{
	const struct conf_admin *ad = &s->conf->admin;

	adm_base = base;
	/* first: reloads are audited even when the console does not start */
	if (!subscribed && gw_control_subscribe(reloaded, NULL) == 0)
		subscribed = 1;
	G.ev_restart = event_new(base, -1, 0, restart_cb, NULL);
	if (G.ev_restart == NULL)
		return -1;
	if (adm_api_init() < 0 || adm_auth_init(s) < 0) {
		gw_error("admin console: cannot initialise");
		return -1;
	}
	G.started = 1;
	if (!ad->listen_enabled && !ad->metrics_enabled)
		return 0;
	return daemons_start(s);
}

void adm_stop(void)
{
	if (G.started)
		daemons_stop();
	adm_auth_free();
	adm_api_free();
	if (G.ev_restart != NULL)
		event_free(G.ev_restart);
	memset(&G, 0, sizeof G);
	adm_base = NULL;
}
