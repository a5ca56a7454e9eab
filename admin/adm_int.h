/*
 * admin internals shared by the console's files: admin.c (daemons, routing,
 * headers), auth.c (users, sessions, password checks, rate limit, audit),
 * api.c and api_*.c (JSON API and the 1 s sampler; their own calls on each
 * other are in admin/api_int.h), metrics.c (Prometheus text).
 */
#ifndef GW_ADM_INT_H
#define GW_ADM_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

#include "core/jobs.h"

struct gw_snapshot;

struct event_base;
struct gw_snapshot;

enum adm_role { ADM_NONE = 0, ADM_VIEWER = 1, ADM_ADMIN = 2 };

#define ADM_REQ_MAGIC 0x61646d72u
#define ADM_BODY_MAX (64 * 1024)

/* Per-request state (MHD's con_cls), owned by admin.c. */
struct adm_req {
	unsigned magic;
	char *body;
	size_t len, cap;
	int too_big;
	int https;
	/* login: 0 = not started, 1 = hashing on the job pool, 2 = done */
	int login_state;
	int login_ok;
	int form;                  /* POST /login from the HTML form (no JavaScript): answer 303 */
	struct MHD_Connection *conn;
	char client[64];
	char user[64];
	char *password;            /* wiped and freed after hashing */
	char hash[256];
	int flying;                /* counted in the sign-ins being checked (admin/auth.c) */
	char rl_key[64];           /* login: client as rate limited (IPv6: its /64) */
	int rl_idx;                /* login: the rate-limit slot charged (admin/auth.c) */
	double rl_at;              /* ... and the failure time charged there, refunded on success */
	struct gw_job job;         /* login / password change: the check on the job pool */
	/* POST account/password: the new password (wiped and freed after
	 * hashing) and its hash, made on the job pool once the current
	 * password (password, checked against hash) is verified */
	char *new_password;
	char new_hash[256];
	/* login through the directory (admin.ldap_roles): the snapshot whose
	 * forward.auth.ldap is asked (a reference, dropped on the main loop),
	 * the role found (-1: none) and why not */
	struct gw_snapshot *dir_snap;
	int dir_role;
	char dir_err[200];
};

/* Who is asking (filled by adm_auth_check). */
struct adm_who {
	enum adm_role role;
	char user[64];
	int bearer;                /* token auth: no cookie, so no CSRF check */
	const char *csrf;          /* the session's CSRF token (session auth) */
	const char *sid;
};

/* ---- admin.c ---- */
extern struct event_base *adm_base;
const char *adm_client(struct MHD_Connection *c, char *buf, size_t len);
/* Queue a response with the security headers; takes ownership of body
 * when must_free (malloc'ed), else copies it. */
enum MHD_Result adm_send(struct MHD_Connection *c, unsigned status, const char *ctype,
    const void *body, size_t len, int must_free, const char *hname, const char *hval);
/* The same with any number of headers: hdrs = { name, value, ..., NULL } (may be NULL). */
enum MHD_Result adm_send_hdrs(struct MHD_Connection *c, unsigned status, const char *ctype,
    const void *body, size_t len, int must_free, const char *const *hdrs);
enum MHD_Result adm_send_json(struct MHD_Connection *c, unsigned status, json_t *j);
/* The sign-in page with msg (a fixed sentence; NULL = none) and a fresh form token;
 * one optional extra header. */
enum MHD_Result adm_login_page(struct MHD_Connection *c, unsigned status, const char *msg,
    const char *hname, const char *hval);
/* 1 if the request body is application/x-www-form-urlencoded. */
int adm_is_form(struct MHD_Connection *c);
/* The URL-decoded value of form field name in r's body, in buf[len]; NULL
 * when absent, too long or containing a NUL. */
const char *adm_form_field(const struct adm_req *r, const char *name, char *buf, size_t len);
enum MHD_Result adm_send_error(struct MHD_Connection *c, unsigned status, const char *msg);
/* Resume a suspended connection and run its daemon (main thread). */
void adm_resume(struct MHD_Connection *c);

/* ---- auth.c ---- */
int adm_auth_init(const struct gw_snapshot *s);      /* load or create users; open the job port */
void adm_auth_reload(const struct gw_snapshot *s);
void adm_auth_free(void);
/* Finish every queued hash job and resume their connections. */
void adm_auth_drain(void);
/* 1 if authenticated (cookie session or bearer token); touches the session. */
int adm_auth_check(struct MHD_Connection *c, struct adm_who *who);
/* POST /api/v1/login: called on each handler call for that request. */
enum MHD_Result adm_login(struct MHD_Connection *c, struct adm_req *r);
/* r is being freed (request completed or aborted): drop it from the sign-ins in flight. */
void adm_login_done(struct adm_req *r);
/* POST /api/v1/account/password {current, new}: who changes its own password
 * (checked and hashed on the job pool, like a sign-in); the users file
 * is rewritten and who's other sessions end.  Called on each handler call. */
enum MHD_Result adm_password(struct MHD_Connection *c, struct adm_req *r, const struct adm_who *who);
enum MHD_Result adm_logout(struct MHD_Connection *c, const struct adm_who *who, const char *client);
/* Record an admin action (audit ring + event ring + error log). */
void adm_audit(const char *user, const char *client, const char *action, const char *outcome,
    const char *detail);
json_t *adm_audit_json(void);
int adm_ct_equal(const char *a, const char *b);       /* constant-time string compare */
int adm_random_hex(char *out, size_t nbytes);          /* 2 * nbytes hex digits + NUL; 0 or -1 */
void adm_sessions_gc(void);

/* ---- api.c (the router; the handlers are in api_*.c) ---- */
int adm_api_init(void);
void adm_api_free(void);
enum MHD_Result adm_api(struct MHD_Connection *c, const char *url, const char *method,
    struct adm_req *r, const struct adm_who *who);
/* The forward family's side data in s (NULL if none); api_fwd.c. */
const void *adm_fwd_side(const struct gw_snapshot *s);
/* s became the current generation (a reload subscriber): audit the config change. */
void adm_api_reloaded(const struct gw_snapshot *s);
/* A reload attempt ended with rc (0, or -1 if refused): audit it unless the
 * console asked for it (then its own request audits it, with the answer):
 * any other reload is SIGHUP's. */
void adm_api_reload_done(int rc);

/* ---- api_cluster.c ---- */
/* /api/v1/cluster/{sync,state} from a peer (signed with the cluster token,
 * no login); path is the part after "/api/v1/cluster/". */
enum MHD_Result adm_api_cluster_peer(struct MHD_Connection *c, const char *method, const char *path,
    struct adm_req *r);

/* ---- metrics.c ---- */
enum MHD_Result adm_metrics(struct MHD_Connection *c);
/* GET /healthz (no login, for a VRRP track script or a load balancer): 200
 * "ok" when a configuration is loaded and every listening socket accepts;
 * 503 with the reason while stopping (SIGTERM's grace period) or when a
 * listener is not accepting. */
enum MHD_Result adm_healthz(struct MHD_Connection *c);

/* ---- www.c (generated from admin/www by embed.py) ---- */
struct adm_asset {
	const char *path;
	const char *ctype;
	const unsigned char *data;
	size_t len;
};
extern const struct adm_asset adm_assets[];
extern const size_t adm_nassets;

#endif
