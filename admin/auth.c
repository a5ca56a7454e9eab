/*
 * admin/auth: who may use the console.
 *
 * Users come from admin.users_file, one "user:crypt-hash:role[:token_sha256=HEX]"
 * per line (role viewer|admin; hashes from crypt(3): $y$, $6$, $2y$, ...).
 * When that file does not exist, state_dir/admin.users is used; when that
 * does not exist either, a random password for user "admin" is generated,
 * its yescrypt hash is written there (mode 0600), and the password is
 * printed once to the error log; later starts find the file and say nothing.
 *
 * Password checks run on the process's job pool (core/jobs.h): the login
 * request is suspended (MHD_suspend_connection), a pool thread runs crypt_rn
 * (~10-50 ms for yescrypt), and the main loop resumes the request when the
 * job's completion comes back to it (the port's event on the main loop).
 * The main loop never hashes.  Failures are limited per client
 * address: ADM_FAIL_MAX failures within ADM_FAIL_WINDOW seconds give 429
 * until the oldest one ages out, before any hashing.  An attempt is charged
 * as a failure when it is queued, before the hash is checked, and refunded
 * when it succeeds, so concurrent guesses cannot all pass the check; and at
 * most ADM_FLY_PER sign-ins per client address and per user name (and
 * ADM_FLY_MAX in all) are checked at once, the others get 429 unchecked.
 * IPv6 clients count by their /64 (one host usually holds a whole /64).
 * The per-address table cannot be flushed: only slots without a failure in
 * the window are reused; when every slot is live, addresses without a slot
 * share one more slot (so under such a flood a new address may be throttled
 * by others' failures; it never gets more tries).
 *
 * Unknown user names are checked against the first user's hash (the same
 * algorithm and cost as the real entries, which are usually all made alike),
 * so a wrong user name takes as long as a wrong password.
 *
 * Users not in the users file may sign in through the directory when
 * admin.ldap_roles is set: on the job pool, a bind as the user to
 * forward.auth.ldap's directory (the snapshot is referenced meanwhile), then
 * the user's groups: a member of ldap_roles.admin gets admin, of .viewer
 * viewer, anyone else fails like a wrong password.  The directory's calls
 * are bounded by forward.auth.ldap.timeout.
 *
 * Sessions: 32 random bytes as hex in an HttpOnly, SameSite=Strict cookie
 * (Secure under HTTPS), idle expiry (admin.session_idle), one CSRF token each.  Scripts
 * may instead send "Authorization: Bearer TOKEN" where sha256(TOKEN) is the
 * users-file line's token_sha256 (no cookie, hence no CSRF check).
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/http1.h"
#include "admin/adm_int.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/jobs.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "core/control.h"
#include "forward/directory.h"
#include "forward/forward.h"

#define ADM_MAX_USERS 64
#define ADM_MAX_SESSIONS 128
#define ADM_FAIL_MAX 5
#define ADM_FAIL_WINDOW 60.0
#define ADM_RL_SLOTS 1024
#define ADM_FLY_MAX 16        /* sign-ins being checked at once, in all */
#define ADM_FLY_PER 2         /* ... per client address and per user name */
#define ADM_AUDIT 128
#define ADM_PW_MIN 12         /* characters of a password set from the console */
#define ADM_PW_MAX 1024

struct user {
	char name[64];
	char hash[256];
	enum adm_role role;
	int has_token;
	unsigned char token[32];   /* sha256 of the bearer token */
};

struct session {
	char id[65];
	char csrf[65];
	char user[64];
	enum adm_role role;
	double last, created;
	char client[64];
};

struct rl_slot {
	char client[64];              /* "" = free */
	double fails[ADM_FAIL_MAX];   /* failure times (0 = none); the oldest is replaced */
	double last;                  /* the newest failure */
};

struct audit_ent {
	double time;
	char user[64], client[64], action[32], outcome[16], detail[200];
};

static struct {
	struct user users[ADM_MAX_USERS];
	size_t nusers;
	char users_path[512];
	struct session sess[ADM_MAX_SESSIONS];
	double idle;               /* admin.session_idle */
	struct rl_slot rl[ADM_RL_SLOTS];
	struct rl_slot rl_shared;  /* for addresses that find every slot live */
	struct adm_req *fly[ADM_FLY_MAX];   /* sign-ins being checked */
	struct audit_ent audit[ADM_AUDIT];
	uint64_t naudit;
	/* password checks: on the job pool, answered on the main loop */
	struct gw_jobs_port *port;
} A;

/* Unknown users are checked against the first user's hash; without users,
 * against this yescrypt hash (default cost, of a throw-away password).  A
 * constant: hashing one at start would cost ~100 ms and 16 MiB on the main
 * thread.  A match is still refused (the user does not exist). */
static const char dummy_hash[] = "$y$j9T$Vc0q2pkBHNoknOh1Cjfs9/$K6HMKegkdXgEO4TsaRg3SXCC2HjJiRngkU.9Nj20Rq4";

int adm_ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb || la == 0)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

int adm_random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];
	static const char hx[] = "0123456789abcdef";

	if (nbytes > sizeof buf || getrandom(buf, nbytes, 0) != (ssize_t)nbytes)
		return -1;
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hx[buf[i] >> 4];
		out[2 * i + 1] = hx[buf[i] & 15];
	}
	out[2 * nbytes] = '\0';
	OPENSSL_cleanse(buf, sizeof buf);
	return 0;
}

static int sha256(const char *s, unsigned char out[32])
{
	unsigned int n = 32;

	return EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

/* Hash pw with a fresh yescrypt salt into out; 0 or -1. */
static int hash_password(const char *pw, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h;
	int rc = -1;

	if (cd == NULL)
		return -1;
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt) != NULL &&
	    (h = crypt_rn(pw, salt, cd, sizeof *cd)) != NULL && h[0] != '*' && strlen(h) < outlen) {
		snprintf(out, outlen, "%s", h);
		rc = 0;
	}
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return rc;
}

static int verify_password(const char *pw, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h;
	int ok = 0;

	if (cd == NULL)
		return 0;
	h = crypt_rn(pw, hash, cd, sizeof *cd);
	if (h != NULL && h[0] != '*' && adm_ct_equal(h, hash))
		ok = 1;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return ok;
}

/* ---- users file ---- */

/* Parse path into users[]; returns count, or -1 if it cannot be opened
 * (errno kept).  Bad lines are logged as FILE:LINE and skipped. */
static int load_users(const char *path, struct user *users, size_t max)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0;
	size_t n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		char *fields[5] = { 0 };
		int nf = 0;
		char *p = line, *e;
		struct user u;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		while (nf < 5 && p != NULL) {
			fields[nf++] = p;
			if ((e = strchr(p, ':')) != NULL)
				*e++ = '\0';
			p = e;
		}
		memset(&u, 0, sizeof u);
		if (nf < 3 || p != NULL) {
			gw_error("%s:%d: admin user: expected user:hash:role[:token_sha256=HEX]", path, lineno);
			continue;
		}
		if (fields[0][0] == '\0' || strlen(fields[0]) >= sizeof u.name ||
		    strlen(fields[1]) >= sizeof u.hash || fields[1][0] != '$') {
			gw_error("%s:%d: admin user: bad user name or hash", path, lineno);
			continue;
		}
		if (strcmp(fields[2], "admin") == 0)
			u.role = ADM_ADMIN;
		else if (strcmp(fields[2], "viewer") == 0)
			u.role = ADM_VIEWER;
		else {
			gw_error("%s:%d: admin user %s: role must be viewer or admin", path, lineno, fields[0]);
			continue;
		}
		if (nf == 4) {
			const char *t = fields[3];
			if (strncmp(t, "token_sha256=", 13) != 0 || strlen(t + 13) != 64) {
				gw_error("%s:%d: admin user %s: 4th field must be token_sha256=<64 hex digits>",
				    path, lineno, fields[0]);
				continue;
			}
			t += 13;
			for (int i = 0; i < 32; i++) {
				int hi = gw_hexval(t[2 * i]), lo = gw_hexval(t[2 * i + 1]);
				if (hi < 0 || lo < 0) {
					u.has_token = -1;
					break;
				}
				u.token[i] = (unsigned char)(hi << 4 | lo);
			}
			if (u.has_token < 0) {
				gw_error("%s:%d: admin user %s: token_sha256 is not hex", path, lineno, fields[0]);
				continue;
			}
			u.has_token = 1;
		}
		snprintf(u.name, sizeof u.name, "%s", fields[0]);
		snprintf(u.hash, sizeof u.hash, "%s", fields[1]);
		if (n < max)
			users[n++] = u;
		else
			gw_error("%s:%d: more than %zu admin users; ignored", path, lineno, max);
	}
	fclose(f);
	return (int)n;
}

/* First start without a users file: make one with a random admin password. */
static int generate_users(const char *path)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char rnd[20];
	char pw[21], hash[256], line[400];
	int fd, n;

	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return -1;
	for (size_t i = 0; i < sizeof rnd; i++)
		pw[i] = alphabet[rnd[i] % (sizeof alphabet - 1)];
	pw[sizeof rnd] = '\0';
	OPENSSL_cleanse(rnd, sizeof rnd);
	if (hash_password(pw, hash, sizeof hash) < 0) {
		gw_error("admin console: cannot hash the generated password");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		gw_error("admin console: cannot create %s: %s", path, strerror(errno));
		OPENSSL_cleanse(pw, sizeof pw);
		return -1;
	}
	n = snprintf(line, sizeof line, "# generated at first start; format user:crypt-hash:role\nadmin:%s:admin\n",
	    hash);
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
		gw_error("admin console: cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		OPENSSL_cleanse(pw, sizeof pw);
		return -1;
	}
	close(fd);
	gw_warn("admin console: generated password for user \"admin\": %s (stored hashed in %s; "
	    "shown this once only)", pw, path);
	OPENSSL_cleanse(pw, sizeof pw);
	return 0;
}

/* Pick the users file for s and load it (generating one if needed). */
static void users_load(const struct gw_snapshot *s, int may_generate)
{
	const struct conf *cf = s->conf;
	char state_path[512];
	struct user *nu = calloc(ADM_MAX_USERS, sizeof *nu);
	int n;

	if (nu == NULL)
		return;
	if (!cf->admin.listen_enabled) {
		/* no console: no users, and nothing generated */
		free(nu);
		memset(A.users, 0, sizeof A.users);
		A.nusers = 0;
		memset(A.sess, 0, sizeof A.sess);
		return;
	}
	snprintf(state_path, sizeof state_path, "%s/admin.users",
	    cf->global.state_dir ? cf->global.state_dir : ".");
	n = load_users(cf->admin.users_file, nu, ADM_MAX_USERS);
	if (n >= 0) {
		snprintf(A.users_path, sizeof A.users_path, "%s", cf->admin.users_file);
	} else {
		if (errno != ENOENT)
			gw_error("admin console: cannot read %s: %s", cf->admin.users_file, strerror(errno));
		n = load_users(state_path, nu, ADM_MAX_USERS);
		if (n < 0 && errno == ENOENT && may_generate && generate_users(state_path) == 0)
			n = load_users(state_path, nu, ADM_MAX_USERS);
		if (n < 0) {
			gw_error("admin console: no users (%s: %s): nobody can log in", state_path,
			    strerror(errno));
			n = 0;
		}
		snprintf(A.users_path, sizeof A.users_path, "%s", state_path);
	}
	/* sessions follow the file: a removed user is logged out, a role change
	 * applies, and a password changed in the file ends the user's sessions
	 * (as a change from the console ends the others) */
	for (size_t i = 0; i < ADM_MAX_SESSIONS; i++) {
		struct session *se = &A.sess[i];
		const struct user *old = NULL;
		int k;
		if (se->id[0] == '\0')
			continue;
		for (k = 0; k < n; k++)
			if (strcmp(nu[k].name, se->user) == 0)
				break;
		for (size_t o = 0; o < A.nusers; o++)
			if (strcmp(A.users[o].name, se->user) == 0)
				old = &A.users[o];
		if (k == n || (old != NULL && strcmp(old->hash, nu[k].hash) != 0))
			memset(se, 0, sizeof *se);
		else
			se->role = nu[k].role;
	}
	memcpy(A.users, nu, sizeof A.users);
	A.nusers = (size_t)n;
	OPENSSL_cleanse(nu, ADM_MAX_USERS * sizeof *nu);
	free(nu);
}

static const struct user *user_find(const char *name)
{
	for (size_t i = 0; i < A.nusers; i++)
		if (strcmp(A.users[i].name, name) == 0)
			return &A.users[i];
	return NULL;
}

/* ---- password checks (job pool) ---- */

/* 1 if one of groups[0..n) is group (a DN or a name; case-insensitive). */
static int in_group(char **groups, size_t n, const char *group)
{
	for (size_t i = 0; group != NULL && i < n; i++)
		if (strcasecmp(groups[i], group) == 0)
			return 1;
	return 0;
}

/* A pool thread: r's user and password through the directory (bind as the
 * user, then the groups); sets login_ok and dir_role. */
static void dir_check(struct adm_req *r)
{
	const struct conf_admin *ad = &r->dir_snap->conf->admin;
	struct fwd_directory *dir = fwd_side_directory(adm_fwd_side(r->dir_snap));
	char **groups;
	size_t n = 0;
	int stale, known, rc;

	r->login_ok = 0;
	r->dir_role = -1;
	if (dir == NULL) {
		snprintf(r->dir_err, sizeof r->dir_err, "forward.auth.ldap is not running");
		return;
	}
	if ((rc = fwd_directory_bind(dir, r->user, r->password, r->dir_err, sizeof r->dir_err)) != 1)
		return;
	if (fwd_directory_lookup(dir, r->user, r->dir_err, sizeof r->dir_err) != 1)
		return;
	groups = fwd_directory_groups_copy(dir, r->user, gw_mono_now(), &n, &stale, &known);
	if (in_group(groups, n, ad->ldap_admin))
		r->dir_role = ADM_ADMIN;
	else if (in_group(groups, n, ad->ldap_viewer))
		r->dir_role = ADM_VIEWER;
	else
		snprintf(r->dir_err, sizeof r->dir_err, "not in the groups of admin.ldap_roles");
	free(groups);
	r->login_ok = r->dir_role >= 0;
}

/* A pool thread: check the password; for a change, hash the new one too. */
static void check_run(struct gw_job *job)
{
	struct adm_req *r = (struct adm_req *)((char *)job - offsetof(struct adm_req, job));

	if (r->dir_snap != NULL) {
		dir_check(r);
		return;
	}
	r->login_ok = verify_password(r->password, r->hash);
	/* a password change: hash the new one here too, never on the loop */
	if (r->login_ok && r->new_password != NULL &&
	    hash_password(r->new_password, r->new_hash, sizeof r->new_hash) < 0)
		r->new_hash[0] = '\0';
}

/* Main loop: answer the suspended request (its handler runs again with
 * login_state 2).  Never cancelled: a suspended connection stays until
 * resumed, and the console drains the port before its daemons stop. */
static void check_done(struct gw_job *job, int result)
{
	struct adm_req *r = (struct adm_req *)((char *)job - offsetof(struct adm_req, job));

	(void)result;
	r->login_state = 2;
	if (r->dir_snap != NULL) {   /* (the main loop: the snapshot may be the last reference) */
		gw_snapshot_unref(r->dir_snap);
		r->dir_snap = NULL;
	}
	adm_resume(r->conn);
}

/* Suspend r's connection while a pool thread checks its password; -1 when
 * the pool is full (nothing suspended). */
static int check_submit(struct MHD_Connection *c, struct adm_req *r)
{
	r->job.run = check_run;
	r->job.done = check_done;
	r->conn = c;
	r->login_state = 1;
	if (gw_jobs_submit(A.port, &r->job) < 0) {
		r->login_state = 0;
		return -1;
	}
	/* (check_done runs on this loop, after this handler returns) */
	MHD_suspend_connection(c);
	return 0;
}

void adm_auth_drain(void)
{
	gw_jobs_port_drain(A.port);
}

int adm_auth_init(const struct gw_snapshot *s)
{
	A.idle = s->conf->admin.session_idle;
	users_load(s, 1);
	if (A.port == NULL)
		A.port = gw_jobs_port_new(gw_jobs_shared(), adm_base, 0);
	return A.port != NULL ? 0 : -1;
}

void adm_auth_reload(const struct gw_snapshot *s)
{
	A.idle = s->conf->admin.session_idle;
	users_load(s, 1);
}

void adm_auth_free(void)
{
	/* every check answered first (the queued ones too), as the daemons stop */
	gw_jobs_port_drain(A.port);
	gw_jobs_port_free(A.port);
	A.port = NULL;
	OPENSSL_cleanse(A.users, sizeof A.users);
	A.nusers = 0;
	memset(A.sess, 0, sizeof A.sess);
	memset(A.rl, 0, sizeof A.rl);
	memset(&A.rl_shared, 0, sizeof A.rl_shared);
	memset(A.fly, 0, sizeof A.fly);
}

/* ---- sessions ---- */

void adm_sessions_gc(void)
{
	double t = gw_wall_now();

	for (size_t i = 0; i < ADM_MAX_SESSIONS; i++)
		if (A.sess[i].id[0] != '\0' && t - A.sess[i].last > A.idle)
			memset(&A.sess[i], 0, sizeof A.sess[i]);
}

static struct session *session_new(const struct user *u, const char *client)
{
	struct session *se = NULL;
	double t = gw_wall_now();

	adm_sessions_gc();
	for (size_t i = 0; i < ADM_MAX_SESSIONS; i++) {
		if (A.sess[i].id[0] == '\0') {
			se = &A.sess[i];
			break;
		}
		if (se == NULL || A.sess[i].last < se->last)
			se = &A.sess[i];   /* full: the least recently used goes */
	}
	memset(se, 0, sizeof *se);
	if (adm_random_hex(se->id, 32) < 0 || adm_random_hex(se->csrf, 32) < 0) {
		memset(se, 0, sizeof *se);
		return NULL;
	}
	snprintf(se->user, sizeof se->user, "%s", u->name);
	snprintf(se->client, sizeof se->client, "%s", client);
	se->role = u->role;
	se->created = se->last = t;
	return se;
}

static struct session *session_find(const char *id)
{
	double t = gw_wall_now();

	if (id == NULL || strlen(id) != 64)
		return NULL;
	for (size_t i = 0; i < ADM_MAX_SESSIONS; i++) {
		struct session *se = &A.sess[i];
		if (se->id[0] == '\0' || !adm_ct_equal(se->id, id))
			continue;
		if (t - se->last > A.idle) {
			memset(se, 0, sizeof *se);
			return NULL;
		}
		return se;
	}
	return NULL;
}

int adm_auth_check(struct MHD_Connection *c, struct adm_who *who)
{
	const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "gh_session");
	struct session *se;

	memset(who, 0, sizeof *who);
	if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0) {
		unsigned char h[32];
		const char *tok = authz + 7;
		while (*tok == ' ')
			tok++;
		if (*tok == '\0' || sha256(tok, h) < 0)
			return 0;
		for (size_t i = 0; i < A.nusers; i++) {
			if (A.users[i].has_token == 1 && CRYPTO_memcmp(A.users[i].token, h, 32) == 0) {
				who->role = A.users[i].role;
				snprintf(who->user, sizeof who->user, "%s", A.users[i].name);
				who->bearer = 1;
				return 1;
			}
		}
		return 0;
	}
	se = session_find(cookie);
	if (se == NULL)
		return 0;
	se->last = gw_wall_now();
	who->role = se->role;
	snprintf(who->user, sizeof who->user, "%s", se->user);
	who->csrf = se->csrf;
	who->sid = se->id;
	return 1;
}

/* ---- login rate limit ---- */

static int rl_live(const struct rl_slot *s, double now)
{
	return s->client[0] != '\0' && s->last + ADM_FAIL_WINDOW > now;
}

/* The key client is limited by: IPv6 by its /64, else the address. */
static void rl_key(const char *client, char *out, size_t len)
{
	struct in6_addr a;
	char t[INET6_ADDRSTRLEN];

	snprintf(out, len, "%s", client);
	if (strchr(client, ':') == NULL || inet_pton(AF_INET6, client, &a) != 1)
		return;
	memset(a.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a, t, sizeof t) != NULL)
		snprintf(out, len, "%s/64", t);
}

/* Index of client's slot, making one from a slot with no failure in the
 * window; ADM_RL_SLOTS = the shared slot (every slot is live).  Never
 * evicts a live slot: that would reset its count. */
static int rl_find(const char *client, double now)
{
	int spare = -1;

	for (int i = 0; i < ADM_RL_SLOTS; i++) {
		if (strcmp(A.rl[i].client, client) == 0)
			return i;
		if (spare < 0 && !rl_live(&A.rl[i], now))
			spare = i;
	}
	if (spare < 0)
		return ADM_RL_SLOTS;
	memset(&A.rl[spare], 0, sizeof A.rl[spare]);
	snprintf(A.rl[spare].client, sizeof A.rl[spare].client, "%s", client);
	return spare;
}

static struct rl_slot *rl_at(int idx)
{
	return idx == ADM_RL_SLOTS ? &A.rl_shared : &A.rl[idx];
}

/* Seconds until the slot's client may try again; 0 = now. */
static double rl_wait(const struct rl_slot *s, double now)
{
	double oldest = 0;
	int n = 0;

	for (int i = 0; i < ADM_FAIL_MAX; i++) {
		if (s->fails[i] + ADM_FAIL_WINDOW <= now)
			continue;
		if (n++ == 0 || s->fails[i] < oldest)
			oldest = s->fails[i];
	}
	return n >= ADM_FAIL_MAX ? oldest + ADM_FAIL_WINDOW - now : 0;
}

/* Charge a failure at now (replacing the oldest). */
static void rl_charge(struct rl_slot *s, double now)
{
	int o = 0;

	for (int i = 1; i < ADM_FAIL_MAX; i++)
		if (s->fails[i] < s->fails[o])
			o = i;
	s->fails[o] = now;
	s->last = now;
}

/* The sign-in of r succeeded: take back what it was charged.  Its own
 * slot starts afresh (as before); the shared slot loses that one charge. */
static void rl_refund(const struct adm_req *r)
{
	struct rl_slot *s = rl_at(r->rl_idx);

	if (s == &A.rl_shared) {
		for (int i = 0; i < ADM_FAIL_MAX; i++)
			if (s->fails[i] == r->rl_at) {
				s->fails[i] = 0;
				break;
			}
		return;
	}
	if (strcmp(s->client, r->rl_key) == 0)
		memset(s, 0, sizeof *s);
}

/* Sign-ins being checked now from r's address and as r's user; 0 = none. */
static int fly_add(struct adm_req *r, int *per_client, int *per_user)
{
	int fr = -1;

	*per_client = *per_user = 0;
	for (int i = 0; i < ADM_FLY_MAX; i++) {
		if (A.fly[i] == NULL) {
			if (fr < 0)
				fr = i;
			continue;
		}
		*per_client += strcmp(A.fly[i]->rl_key, r->rl_key) == 0;
		*per_user += strcmp(A.fly[i]->user, r->user) == 0;
	}
	if (fr < 0 || *per_client >= ADM_FLY_PER || *per_user >= ADM_FLY_PER)
		return -1;
	A.fly[fr] = r;
	r->flying = 1;
	return 0;
}

void adm_login_done(struct adm_req *r)
{
	if (!r->flying)
		return;
	for (int i = 0; i < ADM_FLY_MAX; i++)
		if (A.fly[i] == r)
			A.fly[i] = NULL;
	r->flying = 0;
}

/* ---- audit ---- */

/* Copy src for a log line: control bytes as \xHH, and in a bare field
 * (bare = 1: "user=U") non-ASCII, '"', '\\', spaces and '=' too, so a
 * sign-in name can neither start a new log line nor pose as another field. */
static void audit_clean(char *dst, size_t cap, const char *src, int bare)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *src && o + 5 < cap; src++) {
		unsigned char ch = (unsigned char)*src;
		if (ch < 0x20 || ch == 0x7f ||
		    (bare && (ch > 0x7f || ch == '"' || ch == '\\' || ch == ' ' || ch == '='))) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o] = '\0';
}

void adm_audit(const char *user, const char *client, const char *action, const char *outcome,
    const char *detail)
{
	struct audit_ent *e = &A.audit[A.naudit % ADM_AUDIT];

	memset(e, 0, sizeof *e);
	e->time = gw_wall_now();
	audit_clean(e->user, sizeof e->user, user && *user ? user : "-", 1);
	snprintf(e->client, sizeof e->client, "%s", client);
	audit_clean(e->action, sizeof e->action, action, 0);   /* may be a request path */
	snprintf(e->outcome, sizeof e->outcome, "%s", outcome);
	audit_clean(e->detail, sizeof e->detail, detail ? detail : "", 0);
	A.naudit++;
	gw_event_push("admin", "%s user=%s client=%s outcome=%s%s%s", action, e->user, client, outcome,
	    e->detail[0] ? " " : "", e->detail);
	gw_log(strcmp(outcome, "ok") == 0 ? GW_LOG_INFO : GW_LOG_WARN,
	    "admin audit: %s user=%s client=%s outcome=%s%s%s", action, e->user, client, outcome,
	    e->detail[0] ? " " : "", e->detail);
}

json_t *adm_audit_json(void)
{
	json_t *a = json_array();
	uint64_t n = A.naudit < ADM_AUDIT ? A.naudit : ADM_AUDIT;

	for (uint64_t i = 0; i < n; i++) {
		const struct audit_ent *e = &A.audit[(A.naudit - 1 - i) % ADM_AUDIT];
		json_array_append_new(a, json_pack("{s:f,s:s,s:s,s:s,s:s,s:s}", "time", e->time,
		    "user", e->user, "client", e->client, "action", e->action, "outcome", e->outcome,
		    "detail", e->detail));
	}
	return a;
}

/* ---- login / logout ---- */

static enum MHD_Result login_reply(struct MHD_Connection *c, struct adm_req *r)
{
	const struct user *u = user_find(r->user);
	struct user du;   /* a directory user (admin.ldap_roles) */
	struct session *se;

	if (u == NULL && r->dir_role >= 0 && r->login_ok) {
		memset(&du, 0, sizeof du);
		snprintf(du.name, sizeof du.name, "%s", r->user);
		du.role = (enum adm_role)r->dir_role;
		u = &du;
	}
	char cookie[256];
	json_t *j;
	enum MHD_Result ret;

	if (!r->login_ok || u == NULL) {
		/* charged when it was queued (adm_login) */
		adm_audit(r->user, r->client, "login", "failed", r->dir_err[0] ? r->dir_err :
		    r->form ? "wrong user or password (form)" : "wrong user or password");
		if (r->form)   /* post/redirect/get: a reload does not post the password again */
			return adm_send(c, MHD_HTTP_SEE_OTHER, "text/plain; charset=utf-8", "sign-in failed\n", 0,
			    0, MHD_HTTP_HEADER_LOCATION, "/login?e=wrong");
		return adm_send_error(c, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
	}
	rl_refund(r);
	se = session_new(u, r->client);
	if (se == NULL)
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot create a session");
	adm_audit(u->name, r->client, "login", "ok", u == &du ? "directory (admin.ldap_roles)" : r->form ? "form" :
	    NULL);
	snprintf(cookie, sizeof cookie, "gh_session=%s; Path=/; HttpOnly; SameSite=Strict%s", se->id,
	    r->https ? "; Secure" : "");
	if (r->form) {
		const char *h[] = { MHD_HTTP_HEADER_SET_COOKIE, cookie, MHD_HTTP_HEADER_LOCATION, "/", NULL };
		return adm_send_hdrs(c, MHD_HTTP_SEE_OTHER, "text/plain; charset=utf-8", "signed in\n", 0, 0, h);
	}
	j = json_pack("{s:s,s:s,s:s,s:f}", "user", u->name, "role", u->role == ADM_ADMIN ? "admin" : "viewer",
	    "csrf", se->csrf, "idle_timeout", A.idle);
	ret = adm_send(c, MHD_HTTP_OK, "application/json", json_dumps(j, JSON_COMPACT), 0, 2,
	    MHD_HTTP_HEADER_SET_COOKIE, cookie);
	json_decref(j);
	return ret;
}

/* Extract user/password from a JSON body (or the form's fields when
 * r->form) into r (password malloc'ed). */
static int parse_login(struct adm_req *r)
{
	json_t *j;
	const char *u = NULL, *p = NULL;

	if (r->body == NULL)
		return -1;
	if (r->form) {
		char pw[1025];
		if (adm_form_field(r, "user", r->user, sizeof r->user) == NULL ||
		    adm_form_field(r, "password", pw, sizeof pw) == NULL) {
			r->user[0] = '\0';
			return -1;
		}
		r->password = strdup(pw);
		OPENSSL_cleanse(pw, sizeof pw);
		return r->password != NULL ? 0 : -1;
	}
	j = json_loadb(r->body, r->len, 0, NULL);
	if (j == NULL || json_unpack(j, "{s:s,s:s}", "user", &u, "password", &p) < 0 ||
	    strlen(u) >= sizeof r->user || strlen(p) > 1024) {
		json_decref(j);
		return -1;
	}
	snprintf(r->user, sizeof r->user, "%s", u);
	r->password = strdup(p);
	json_decref(j);
	return r->password != NULL ? 0 : -1;
}

/* 429 for a sign-in that is not checked; why goes to the audit log. */
static enum MHD_Result throttled(struct MHD_Connection *c, struct adm_req *r, double wait, const char *why)
{
	char ra[16];

	snprintf(ra, sizeof ra, "%d", (int)wait + 1);
	adm_audit(r->user, r->client, "login", "throttled", why);
	if (r->form)
		return adm_login_page(c, MHD_HTTP_TOO_MANY_REQUESTS,
		    "Too many failed sign-ins from your address. Try again later.",
		    MHD_HTTP_HEADER_RETRY_AFTER, ra);
	return adm_send(c, MHD_HTTP_TOO_MANY_REQUESTS, "application/json",
	    "{\"error\":\"too many failed logins; try again later\"}", 0, 0, MHD_HTTP_HEADER_RETRY_AFTER, ra);
}

enum MHD_Result adm_login(struct MHD_Connection *c, struct adm_req *r)
{
	const struct user *u;
	double wait, now = gw_wall_now();
	int nc, nu;

	if (r->login_state == 2) {
		if (r->password != NULL) {
			OPENSSL_cleanse(r->password, strlen(r->password));
			free(r->password);
			r->password = NULL;
		}
		r->login_state = 3;
		adm_login_done(r);
		return login_reply(c, r);
	}
	if (r->login_state != 0)
		return MHD_NO;
	/* (a client without a slot and a full table is judged by the shared slot) */
	rl_key(r->client, r->rl_key, sizeof r->rl_key);
	r->rl_idx = rl_find(r->rl_key, now);
	if ((wait = rl_wait(rl_at(r->rl_idx), now)) > 0)
		return throttled(c, r, wait, "too many failed logins");
	if (parse_login(r) < 0) {
		if (r->form)
			return adm_login_page(c, MHD_HTTP_BAD_REQUEST, "Please enter a user name and a password.",
			    NULL, NULL);
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "expected JSON {\"user\":..., \"password\":...}");
	}
	if (fly_add(r, &nc, &nu) < 0)
		return throttled(c, r, 0, nc >= ADM_FLY_PER ? "a sign-in from this address is being checked" :
		    nu >= ADM_FLY_PER ? "sign-ins as this user are being checked" : "too many sign-ins at once");
	u = user_find(r->user);
	snprintf(r->hash, sizeof r->hash, "%s", u != NULL ? u->hash : A.nusers > 0 ? A.users[0].hash : dummy_hash);
	r->dir_role = -1;
	if (u == NULL) {   /* the directory, when admin.ldap_roles names it */
		struct gw_snapshot *s = (struct gw_snapshot *)gw_control_snapshot();
		if (s != NULL && (s->conf->admin.ldap_admin != NULL || s->conf->admin.ldap_viewer != NULL) &&
		    fwd_side_directory(adm_fwd_side(s)) != NULL) {
			gw_snapshot_ref(s);
			r->dir_snap = s;
		}
	}
	if (check_submit(c, r) < 0) {
		if (r->dir_snap != NULL) {
			gw_snapshot_unref(r->dir_snap);
			r->dir_snap = NULL;
		}
		/* the job pool is full: refused as when too many are checked at once */
		adm_login_done(r);
		return throttled(c, r, 0, "too many sign-ins at once");
	}
	/* charge before the check ends (it answers on this loop, after this
	 * handler): the next concurrent guess already sees it */
	r->rl_at = now;
	rl_charge(rl_at(r->rl_idx), now);
	return MHD_YES;
}

enum MHD_Result adm_logout(struct MHD_Connection *c, const struct adm_who *who, const char *client)
{
	if (who->sid != NULL) {
		struct session *se = session_find(who->sid);
		if (se != NULL)
			memset(se, 0, sizeof *se);
	}
	adm_audit(who->user, client, "logout", "ok", NULL);
	return adm_send(c, MHD_HTTP_OK, "application/json", "{\"ok\":true}", 0, 0, MHD_HTTP_HEADER_SET_COOKIE,
	    "gh_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}

/* ---- changing one's own password ---- */

static void wipe_free(char **p)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

/*
 * Put hash as user's password in the users file at path, keeping every
 * other line (comments, other users, this user's role and token) as it is.
 * The new file is written beside it and renamed over it (mode kept), so a
 * crash leaves the old or the new file, never half of one.  0, or -1 with
 * why (a sentence for the log and the answer).
 */
static int users_file_set_hash(const char *path, const char *user, const char *hash, char *why, size_t wlen)
{
	FILE *in = fopen(path, "r"), *out = NULL;
	char tmp[600], line[1024];
	struct stat st;
	int fd = -1, found = 0, rc = -1, made = 0;
	size_t ul = strlen(user);

	if (in == NULL || fstat(fileno(in), &st) < 0) {
		snprintf(why, wlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp) {
		snprintf(why, wlen, "%s: path too long", path);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, st.st_mode & 0600);
	made = fd >= 0;
	if (fd < 0 || (out = fdopen(fd, "w")) == NULL) {
		snprintf(why, wlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;   /* out owns it now */
	while (fgets(line, sizeof line, in) != NULL) {
		const char *p = line, *h;
		while (*p == ' ' || *p == '\t')
			p++;
		/* "user:OLDHASH:rest": the same fields as load_users reads */
		if (!found && strncmp(p, user, ul) == 0 && p[ul] == ':' && (h = strchr(p + ul + 1, ':')) != NULL) {
			fprintf(out, "%.*s%s%s", (int)(p + ul + 1 - line), line, hash, h);
			found = 1;
		} else {
			fputs(line, out);
		}
	}
	if (!found) {
		snprintf(why, wlen, "user %s is not in %s", user, path);
		goto out;
	}
	if (ferror(in) || fflush(out) != 0 || fsync(fileno(out)) < 0 || fchmod(fileno(out), st.st_mode & 07777) < 0) {
		snprintf(why, wlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fclose(out) != 0) {
		out = NULL;
		snprintf(why, wlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	out = NULL;
	if (rename(tmp, path) < 0) {
		snprintf(why, wlen, "cannot replace %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(line, sizeof line);
	if (out != NULL)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && made)
		unlink(tmp);
	if (in != NULL)
		fclose(in);
	return rc;
}

/* The job pool is done with r: store the new hash, end who's other sessions, answer. */
static enum MHD_Result password_reply(struct MHD_Connection *c, struct adm_req *r, const struct adm_who *who)
{
	struct user *u = (struct user *)user_find(who->user);
	char why[700], detail[800];
	int ended = 0;

	if (!r->login_ok || u == NULL) {
		adm_audit(who->user, r->client, "password change", "failed", "wrong current password");
		return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the current password is wrong");
	}
	rl_refund(r);
	if (r->new_hash[0] == '\0' || users_file_set_hash(A.users_path, u->name, r->new_hash, why, sizeof why) < 0) {
		if (r->new_hash[0] == '\0')
			snprintf(why, sizeof why, "cannot hash the new password");
		gw_error("admin console: password change for %s: %s", u->name, why);
		adm_audit(who->user, r->client, "password change", "failed", why);
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, why);
	}
	snprintf(u->hash, sizeof u->hash, "%s", r->new_hash);
	OPENSSL_cleanse(r->new_hash, sizeof r->new_hash);
	/* whoever else holds a session as this user (a stolen cookie, another
	 * browser) must sign in again, with the new password */
	for (size_t i = 0; i < ADM_MAX_SESSIONS; i++) {
		struct session *se = &A.sess[i];
		if (se->id[0] != '\0' && strcmp(se->user, u->name) == 0 &&
		    (who->sid == NULL || !adm_ct_equal(se->id, who->sid))) {
			memset(se, 0, sizeof *se);
			ended++;
		}
	}
	snprintf(detail, sizeof detail, "stored in %s; ended %d other session(s)", A.users_path, ended);
	adm_audit(u->name, r->client, "password change", "ok", detail);
	return adm_send_json(c, MHD_HTTP_OK, json_pack("{s:b,s:i}", "ok", 1, "ended_sessions", ended));
}

enum MHD_Result adm_password(struct MHD_Connection *c, struct adm_req *r, const struct adm_who *who)
{
	const struct user *u;
	const char *cur = NULL, *nw = NULL;
	double wait, now = gw_wall_now();
	json_t *j;
	int nc, nu, same;
	size_t nl;

	if (r->login_state == 2) {
		wipe_free(&r->password);
		wipe_free(&r->new_password);
		r->login_state = 3;
		adm_login_done(r);
		return password_reply(c, r, who);
	}
	if (r->login_state != 0)
		return MHD_NO;
	if (who->sid == NULL || (u = user_find(who->user)) == NULL) {
		adm_audit(who->user, r->client, "password change", "denied", "not signed in with a session");
		return adm_send_error(c, MHD_HTTP_FORBIDDEN, "sign in with a user name and password to change it");
	}
	/* a wrong current password counts as a failed sign-in (same limit) */
	snprintf(r->user, sizeof r->user, "%s", u->name);
	rl_key(r->client, r->rl_key, sizeof r->rl_key);
	r->rl_idx = rl_find(r->rl_key, now);
	if ((wait = rl_wait(rl_at(r->rl_idx), now)) > 0) {
		char ra[16];
		snprintf(ra, sizeof ra, "%d", (int)wait + 1);
		adm_audit(who->user, r->client, "password change", "throttled", "too many failed attempts");
		return adm_send(c, MHD_HTTP_TOO_MANY_REQUESTS, "application/json",
		    "{\"error\":\"too many failed attempts; try again later\"}", 0, 0, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	j = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	if (j == NULL || json_unpack(j, "{s:s,s:s}", "current", &cur, "new", &nw) < 0) {
		json_decref(j);
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "expected JSON {\"current\": ..., \"new\": ...}");
	}
	nl = strlen(nw);
	same = strcmp(cur, nw) == 0;
	if (nl < ADM_PW_MIN || nl > ADM_PW_MAX || strlen(cur) > ADM_PW_MAX || same) {
		json_decref(j);
		adm_audit(who->user, r->client, "password change", "failed", "new password refused");
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, same ?
		    "the new password must differ from the current one" :
		    "the new password must have 12 to 1024 characters");
	}
	r->password = strdup(cur);
	r->new_password = strdup(nw);
	json_decref(j);   /* (its copies of the passwords are freed unwiped: jansson owns them) */
	if (r->password == NULL || r->new_password == NULL) {
		wipe_free(&r->password);
		wipe_free(&r->new_password);
		return adm_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	snprintf(r->hash, sizeof r->hash, "%s", u->hash);
	/* (a full job pool is refused as too many checks at once) */
	if (fly_add(r, &nc, &nu) < 0 || check_submit(c, r) < 0) {
		adm_login_done(r);
		wipe_free(&r->password);
		wipe_free(&r->new_password);
		adm_audit(who->user, r->client, "password change", "throttled", "too many checks at once");
		return adm_send(c, MHD_HTTP_TOO_MANY_REQUESTS, "application/json",
		    "{\"error\":\"a password check is already running; try again\"}", 0, 0,
		    MHD_HTTP_HEADER_RETRY_AFTER, "1");
	}
	r->rl_at = now;
	rl_charge(rl_at(r->rl_idx), now);
	return MHD_YES;
}
