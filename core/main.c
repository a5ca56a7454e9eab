/*
 * core/main: start-up, signals, reload and shutdown.  The only core file that
 * names the families (forward/, reverse/) and the console: it wires them in.
 *
 * The main thread owns the listening-socket registry: for every configured
 * address it creates one SO_REUSEPORT socket per worker, and on reload it
 * reuses the sockets of addresses that did not change (no close, no rebind),
 * so existing connections and the kernel backlog survive a reload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/thread.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "admin/admin.h"
#include "conf/conf.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/sdnotify.h"
#include "core/snapshot.h"
#include "core/tls.h"
#include "core/worker.h"
#include "forward/forward.h"
#include "reverse/reverse.h"

static const struct gw_side *const sides[] = { &fwd_side, &rev_side };
#define NSIDES ((int)(sizeof sides / sizeof sides[0]))

struct reg_ent {
	char key[160];
	int fds[GW_MAX_WORKERS];
	int used;                  /* referenced by the snapshot being built */
};

static struct {
	const char *conf_path;
	int nworkers;
	struct gw_worker *workers[GW_MAX_WORKERS];
	struct gw_snapshot *snap;
	uint64_t generation;
	struct reg_ent *reg;
	size_t nreg;
	struct event_base *base;
	int stopping;
	struct event *ev_stopwatch;
	double stop_deadline;
	double started_at;
	/* the last reload attempt, for the console */
	int reload_ok;
	double reload_when;
	uint64_t reloads_ok, reloads_failed;
	char **reload_errors;
	size_t nreload_errors;
} M;

static void remember_reload(int ok, const struct conf_errors *errs)
{
	for (size_t i = 0; i < M.nreload_errors; i++)
		free(M.reload_errors[i]);
	free(M.reload_errors);
	M.reload_errors = NULL;
	M.nreload_errors = 0;
	M.reload_ok = ok;
	if (ok)
		M.reloads_ok++;
	else
		M.reloads_failed++;
	M.reload_when = 0;
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		M.reload_when = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	if (errs != NULL && errs->n > 0 && (M.reload_errors = calloc(errs->n, sizeof(char *))) != NULL) {
		for (size_t i = 0; i < errs->n; i++)
			if ((M.reload_errors[M.nreload_errors] = strdup(errs->msgs[i])) != NULL)
				M.nreload_errors++;
	}
}

static void usage(void)
{
	fprintf(stderr,
	    "usage: gatehouse [-c FILE] [-t] [-V]\n"
	    "  -c FILE  configuration file (default /etc/gatehouse/gatehouse.conf)\n"
	    "  -t       check the configuration and exit (0 = fine)\n"
	    "  -V       print the version and exit\n");
}

static int open_listener(const struct conf_listener *cl, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&cl->addr.ss;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (sa->sa_family == AF_INET6 && cl->addr.host[0] == '\0')
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, sa, cl->addr.sslen) < 0 || listen(fd, 511) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cl->addr.text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static struct reg_ent *reg_find(const char *key)
{
	for (size_t i = 0; i < M.nreg; i++)
		if (strcmp(M.reg[i].key, key) == 0)
			return &M.reg[i];
	return NULL;
}

/*
 * Build the listener specs of snapshot s, reusing registry sockets for
 * unchanged addresses.  On failure, closes only the sockets it created.
 */
static int build_listeners(struct gw_snapshot *s, struct conf_errors *errs)
{
	size_t total = 0, k = 0;
	int failed = 0;

	for (int i = 0; i < s->nsides; i++) {
		size_t n;
		sides[i]->listeners(s->conf, &n);
		total += n;
	}
	s->listeners = calloc(total ? total : 1, sizeof *s->listeners);
	if (s->listeners == NULL)
		return -1;
	for (size_t i = 0; i < M.nreg; i++)
		M.reg[i].used = 0;
	for (int si = 0; si < s->nsides; si++) {
		size_t n;
		const struct conf_listener *cls = sides[si]->listeners(s->conf, &n);
		for (size_t j = 0; j < n; j++) {
			const struct conf_listener *cl = &cls[j];
			struct gw_lspec *ls = &s->listeners[k];
			char key[160];
			struct reg_ent *e;

			snprintf(key, sizeof key, "%s|%s|%d", sides[si]->proto->name, cl->addr.text, cl->tls);
			ls->cl = cl;
			ls->proto = sides[si]->proto;
			ls->side = si;
			e = reg_find(key);
			if (e != NULL) {
				memcpy(ls->fds, e->fds, sizeof ls->fds);
				e->used = 1;
				k++;
				continue;
			}
			for (int w = 0; w < M.nworkers; w++) {
				char err[256];
				ls->fds[w] = open_listener(cl, err, sizeof err);
				if (ls->fds[w] < 0) {
					conf_err(errs, cl->src.file, cl->src.line, "listeners", "%s", err);
					for (int x = 0; x < w; x++)
						close(ls->fds[x]);
					failed = 1;
					break;
				}
			}
			if (failed)
				break;
			ls->cl = cl;
			k++;
			/* new: remembered in the registry once the snapshot is published */
			ls->side = si;
		}
		if (failed)
			break;
	}
	s->nlisteners = k;
	if (failed) {
		/* close the sockets this build created (those not in the registry) */
		for (size_t i = 0; i < k; i++) {
			char key[160];
			snprintf(key, sizeof key, "%s|%s|%d", s->listeners[i].proto->name,
			    s->listeners[i].cl->addr.text, s->listeners[i].cl->tls);
			if (reg_find(key) == NULL)
				for (int w = 0; w < M.nworkers; w++)
					close(s->listeners[i].fds[w]);
		}
		s->nlisteners = 0;
		return -1;
	}
	return 0;
}

/* After publishing s: the registry becomes exactly s's listeners. */
static void registry_commit(struct gw_snapshot *s)
{
	struct reg_ent *reg = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *reg);

	if (reg == NULL)
		return;
	for (size_t i = 0; i < s->nlisteners; i++) {
		snprintf(reg[i].key, sizeof reg[i].key, "%s|%s|%d", s->listeners[i].proto->name,
		    s->listeners[i].cl->addr.text, s->listeners[i].cl->tls);
		memcpy(reg[i].fds, s->listeners[i].fds, sizeof reg[i].fds);
	}
	free(M.reg);
	M.reg = reg;
	M.nreg = s->nlisteners;
}

/* Load, validate and compile a snapshot (no sockets).  NULL on error. */
static struct gw_snapshot *snapshot_load(const char *path, struct conf_errors *errs)
{
	struct conf *cf = conf_load(path, errs);
	struct gw_snapshot *s;
	struct gw_tls_specs ts;
	int bad = 0, nomem = 0;

	if (cf == NULL)
		return NULL;
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		conf_free(cf);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->conf = cf;
	s->nsides = NSIDES;
	s->loaded_at = gw_wall_now();
	for (int i = 0; i < NSIDES; i++) {
		s->sides[i] = sides[i];
		if (sides[i]->compile(cf, errs, &s->side_data[i]) < 0)
			bad = 1;
	}
	gw_tls_specs_init(&ts);
	for (int i = 0; i < NSIDES; i++)
		if (sides[i]->tls != NULL && sides[i]->tls(cf, &ts) < 0)
			nomem = 1;
	s->tls = nomem ? NULL : gw_tls_new(&ts, errs);
	gw_tls_specs_free(&ts);
	if (s->tls == NULL)
		bad = 1;
	if (bad) {
		gw_snapshot_unref(s);
		return NULL;
	}
	return s;
}

static void print_errors(const struct conf_errors *errs, int to_log)
{
	for (size_t i = 0; i < errs->n; i++) {
		if (to_log)
			gw_error("%s", errs->msgs[i]);
		else
			fprintf(stderr, "%s\n", errs->msgs[i]);
	}
}

/* Create global.state_dir (and its parents) if missing; when we run as
 * root and will become global.user, hand the new directory to that user. */
static void make_state_dir(const char *dir, const char *user)
{
	char path[4096];
	struct stat st;
	size_t n = strlen(dir);

	if (dir[0] == '\0' || n >= sizeof path || stat(dir, &st) == 0)
		return;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(path, 0755);
			*p = '/';
		}
	if (mkdir(path, 0750) < 0) {
		gw_warn("global.state_dir: cannot create %s: %s", dir, strerror(errno));
		return;
	}
	if (geteuid() == 0 && user != NULL && user[0] != '\0') {
		struct passwd *pw = getpwnam(user);
		if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) < 0)
			gw_warn("global.state_dir: cannot hand %s to %s: %s", dir, user, strerror(errno));
	}
	gw_info("created state directory %s", dir);
}

/*
 * The account the start becomes (global.user, only when run as root) and its
 * primary group must exist.  Run by -t and by the start before anything is
 * bound, so "-t says fine" and "the start works" cannot disagree on it.
 * Returns 0 if fine, else -1 with "FILE:LINE: global.user: ..." in errs.
 */
static int check_user(const struct conf_global *gl, struct conf_errors *errs)
{
	const char *file = gl->user_src.file ? gl->user_src.file : M.conf_path;
	struct passwd *pw;

	if (gl->user == NULL || gl->user[0] == '\0' || geteuid() != 0)
		return 0;
	pw = getpwnam(gl->user);
	if (pw == NULL) {
		conf_err(errs, file, gl->user_src.line, "global.user",
		    "no such user \"%s\" (run as root, gatehouse switches to it%s)", gl->user,
		    gl->user_src.line > 0 ? "" : "; that is the default: create the user or set global.user");
		return -1;
	}
	if (getgrgid(pw->pw_gid) == NULL) {
		conf_err(errs, file, gl->user_src.line, "global.user",
		    "the primary group (gid %lu) of user \"%s\" does not exist", (unsigned long)pw->pw_gid,
		    gl->user);
		return -1;
	}
	return 0;
}

/*
 * -t as root with global.user: the start reads the files as root, but a
 * reload (SIGHUP) reads them again as that user, and the workers read
 * global.dns.hosts_file as that user.  Load the configuration once more, with
 * the start's own code, in a child that has become the user, and print what
 * it cannot read as warnings (the start itself would work).  Returns the
 * number of problems found (0: none, or not root).
 */
static int check_as_user(const char *path, const struct conf *cf)
{
	const char *user = cf->global.user;
	struct passwd *pw;
	int status = 0;
	pid_t pid;

	if (user == NULL || user[0] == '\0' || geteuid() != 0 || (pw = getpwnam(user)) == NULL)
		return 0;
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		struct conf_errors errs;
		struct gw_snapshot *s;
		const char *hosts = cf->global.dns.hosts_file;
		int bad = 0;

		if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
		    setuid(pw->pw_uid) < 0)
			_exit(0);   /* cannot tell: the start reports it */
		(void)gw_log_open("stderr", GW_LOG_ERROR);   /* the parent printed the warnings */
		conf_errors_init(&errs);
		s = snapshot_load(path, &errs);
		for (size_t i = 0; i < errs.n; i++, bad++)
			fprintf(stderr, "warning: as user \"%s\" (a reload reads the files as it): %s\n",
			    user, errs.msgs[i]);
		if (s == NULL && errs.n == 0 && ++bad)
			fprintf(stderr, "warning: as user \"%s\": %s: cannot load the configuration\n", user,
			    path);
		if (hosts != NULL && hosts[0] != '\0' && access(hosts, R_OK) < 0 && ++bad)
			fprintf(stderr, "warning: %s: global.dns.hosts_file: user \"%s\" cannot read %s "
			    "(the workers read it as that user): %s\n", path, user, hosts, strerror(errno));
		fflush(stderr);
		_exit(bad > 255 ? 255 : bad);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

/*
 * The console's TLS files (admin.tls_cert / admin.tls_key): the console
 * loads them only when it starts (libmicrohttpd), after the gateway is up,
 * and a console that cannot start does not stop the gateway; -t reads them
 * here so that a typo does not wait for the start.  0 or -1 with errs.
 */
static int check_admin_tls(const struct conf *cf, struct conf_errors *errs)
{
	const struct conf_admin *ad = &cf->admin;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	FILE *f;
	int bad = 0;

	if (!ad->listen_enabled || ad->tls_cert == NULL)
		return 0;
	if ((f = fopen(ad->tls_cert, "r")) == NULL || (x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		conf_err(errs, cf->path, 0, "admin.tls_cert", "%s: %s", ad->tls_cert,
		    f == NULL ? strerror(errno) : "no PEM certificate in it");
		bad = 1;
	}
	if (f != NULL)
		fclose(f);
	f = NULL;
	if (ad->tls_key == NULL) {
		conf_err(errs, cf->path, 0, "admin.tls_key", "required with admin.tls_cert");
		bad = 1;
	} else if ((f = fopen(ad->tls_key, "r")) == NULL ||
	    (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		conf_err(errs, cf->path, 0, "admin.tls_key", "%s: %s", ad->tls_key,
		    f == NULL ? strerror(errno) : "no PEM private key in it (or it is encrypted)");
		bad = 1;
	}
	if (f != NULL)
		fclose(f);
	if (!bad && X509_check_private_key(x, k) != 1) {
		conf_err(errs, cf->path, 0, "admin.tls_key", "%s does not match the certificate %s",
		    ad->tls_key, ad->tls_cert);
		bad = 1;
	}
	X509_free(x);
	EVP_PKEY_free(k);
	return bad ? -1 : 0;
}

/* The directory part of path is a directory (for a file the start creates). */
static int parent_is_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t n = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);

	if (n >= sizeof dir)
		return 1;
	memcpy(dir, slash == NULL ? "." : path, n);
	dir[n] = '\0';
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * -t: what the start does not refuse but cannot use, as warnings: a static
 * route's directory that is not one (every request of it would be a 404),
 * and log files whose directory does not exist (the start logs an error and
 * runs without them).  Returns the number of warnings.
 */
static int check_paths(const struct conf *cf)
{
	const char *logs[2] = { cf->global.log.error, cf->global.log.access };
	static const char *const keys[2] = { "global.log.error", "global.log.access" };
	struct stat st;
	int n = 0;

	for (size_t i = 0; cf->reverse.present && i < cf->reverse.nsites; i++)
		for (size_t j = 0; j < cf->reverse.sites[i].nroutes; j++) {
			const struct conf_rev_route *r = &cf->reverse.sites[i].routes[j];
			int e;
			if (r->kind != CONF_ROUTE_STATIC || r->static_dir == NULL)
				continue;
			e = stat(r->static_dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
			if (e == 0)
				continue;
			fprintf(stderr, "warning: %s:%d: reverse route \"%s\": static: %s: %s (every request of "
			    "the route would be a 404)\n", r->src.file ? r->src.file : cf->path, r->src.line,
			    r->path ? r->path : "", r->static_dir, strerror(e));
			n++;
		}
	for (int i = 0; i < 2; i++) {
		const char *l = logs[i];
		if (l == NULL || l[0] != '/' || parent_is_dir(l))
			continue;
		fprintf(stderr, "warning: %s: %s: the directory of %s does not exist (the start would run "
		    "without this log)\n", cf->path, keys[i], l);
		n++;
	}
	return n;
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL || user[0] == '\0' || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		gw_error("global.user: no such user \"%s\"", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		gw_error("cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	gw_info("running as user %s", user);
	return 0;
}

/* Main-thread hooks of each family: s becomes current, old stops being. */
static void sides_activate(struct gw_snapshot *s, struct gw_snapshot *old)
{
	for (int i = 0; i < NSIDES; i++) {
		if (old != NULL && sides[i]->deactivate != NULL)
			sides[i]->deactivate(old->side_data[i]);
		if (s != NULL && sides[i]->activate != NULL)
			sides[i]->activate(s->side_data[i], M.base);
	}
}

/* One line of totals at exit: what this process did. */
static void log_totals(void)
{
	struct gw_stats_snapshot st;

	gw_control_stats(&st);
	for (int f = 0; f < GW_NFAMILIES; f++)
		gw_info("totals %s: connections=%llu requests=%llu 2xx=%llu 4xx=%llu 5xx=%llu "
		    "bytes_in=%llu bytes_out=%llu tunnels=%llu upstream_connects=%llu "
		    "upstream_reused=%llu", gw_family_names[f],
		    (unsigned long long)st.fam[f][GW_FC_CONN_ACCEPTED],
		    (unsigned long long)st.fam[f][GW_FC_REQUESTS],
		    (unsigned long long)st.fam[f][GW_FC_STATUS_2XX],
		    (unsigned long long)st.fam[f][GW_FC_STATUS_4XX],
		    (unsigned long long)st.fam[f][GW_FC_STATUS_5XX],
		    (unsigned long long)st.fam[f][GW_FC_BYTES_IN],
		    (unsigned long long)st.fam[f][GW_FC_BYTES_OUT],
		    (unsigned long long)st.fam[f][GW_FC_TUNNELS],
		    (unsigned long long)st.fam[f][GW_FC_UPSTREAM_CONNECTS],
		    (unsigned long long)st.fam[f][GW_FC_UPSTREAM_REUSED]);
}

static void announce(const struct gw_snapshot *s)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		gw_info("%s listening on %s%s", s->listeners[i].proto->name,
		    s->listeners[i].cl->addr.text, s->listeners[i].cl->tls ? " (tls)" : "");
}

static int reload(void)
{
	struct conf_errors errs;
	struct gw_snapshot *s;

	gw_sd_notify("RELOADING=1");
	gw_info("reloading %s", M.conf_path);
	conf_errors_init(&errs);
	s = snapshot_load(M.conf_path, &errs);
	if (s != NULL && s->conf->global.workers != M.snap->conf->global.workers)
		gw_warn("global.workers changed: takes effect at the next restart");
	if (s != NULL && build_listeners(s, &errs) < 0) {
		gw_snapshot_unref(s);
		s = NULL;
	}
	if (s == NULL) {
		print_errors(&errs, 1);
		gw_error("reload failed (%zu error%s); still serving generation %llu", errs.n,
		    errs.n == 1 ? "" : "s", (unsigned long long)M.generation);
		remember_reload(0, &errs);
		conf_errors_free(&errs);
		gw_sd_notify("READY=1");
		return -1;
	}
	remember_reload(1, NULL);
	conf_errors_free(&errs);
	s->generation = ++M.generation;
	registry_commit(s);
	if (gw_log_open(s->conf->global.log.error, s->conf->global.log.level) < 0)
		gw_error("cannot open error log %s: %s", s->conf->global.log.error, strerror(errno));
	gw_log_syslog_options(s->conf->global.log.syslog_facility, s->conf->global.log.syslog_tag);
	if (gw_log_access_open(s->conf->global.log.access, s->conf->global.log.access_json) < 0)
		gw_error("cannot open access log %s: %s", s->conf->global.log.access, strerror(errno));
	gw_tail_enable(s->conf->admin.present && s->conf->admin.listen_enabled);
	for (int i = 0; i < M.nworkers; i++)
		gw_worker_post_snapshot(M.workers[i], s);
	sides_activate(s, M.snap);
	gw_snapshot_unref(M.snap);
	M.snap = s;
	/* admin console: follows the new generation (users, addresses) */
	adm_reconfigure(s);
	gw_info("configuration generation %llu loaded", (unsigned long long)s->generation);
	announce(s);
	gw_sd_notify("READY=1");
	return 0;
}

/* ---- core/control.h ---- */

const struct gw_snapshot *gw_control_snapshot(void) { return M.snap; }
int gw_control_nworkers(void) { return M.nworkers; }
double gw_control_started_at(void) { return M.started_at; }
const char *gw_control_config_path(void) { return M.conf_path; }

void gw_control_stats(struct gw_stats_snapshot *out)
{
	struct gw_stats_shard *shards[GW_MAX_WORKERS];

	for (int i = 0; i < M.nworkers; i++)
		shards[i] = M.workers[i]->stats;
	gw_stats_sum(shards, M.nworkers, out);
}

int gw_control_reload(void)
{
	if (M.stopping)
		return -1;
	return reload();
}

void gw_control_last_reload(int *ok, double *when, uint64_t *generation,
    const char *const **errors, size_t *nerrors)
{
	*ok = M.reload_ok;
	*when = M.reload_when;
	*generation = M.generation;
	*errors = (const char *const *)M.reload_errors;
	*nerrors = M.nreload_errors;
}

void gw_control_reload_counts(uint64_t *ok, uint64_t *failed)
{
	*ok = M.reloads_ok;
	*failed = M.reloads_failed;
}

static void stopwatch_cb(evutil_socket_t fd, short what, void *arg)
{
	int alive = 0;

	(void)fd;
	(void)what;
	(void)arg;
	for (int i = 0; i < M.nworkers; i++)
		if (!atomic_load(&M.workers[i]->exited))
			alive++;
	if (alive == 0) {
		event_base_loopbreak(M.base);
		return;
	}
	if (gw_wall_now() > M.stop_deadline && M.stopping == 1) {
		gw_warn("shutdown grace period over: closing remaining connections");
		M.stopping = 2;
		for (int i = 0; i < M.nworkers; i++)
			gw_worker_post_abort(M.workers[i]);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	static const struct timeval tenth = { 0, 100000 };

	(void)what;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		if (!M.stopping)
			adm_signal_reload(reload());
		break;
	case SIGUSR1:
		gw_log_reopen();
		break;
	case SIGTERM:
	case SIGINT:
		if (M.stopping) {
			if (sig == SIGINT && M.stopping == 1) {
				M.stop_deadline = 0;
			}
			break;
		}
		gw_sd_notify("STOPPING=1");
		gw_info("%s: stopping; in-flight requests get %.1f s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		    M.snap->conf->global.timeouts.shutdown_grace);
		M.stopping = 1;
		M.stop_deadline = gw_wall_now() + M.snap->conf->global.timeouts.shutdown_grace;
		for (int i = 0; i < M.nworkers; i++)
			gw_worker_post_stop(M.workers[i]);
		M.ev_stopwatch = event_new(M.base, -1, EV_PERSIST, stopwatch_cb, NULL);
		event_add(M.ev_stopwatch, &tenth);
		break;
	}
}

int main(int argc, char **argv)
{
	const char *path = "/etc/gatehouse/gatehouse.conf";
	int test_only = 0, opt;
	struct conf_errors errs;
	struct gw_snapshot *s;
	struct event *sigs[4];
	static const int signums[4] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1 };

	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test_only = 1; break;
		case 'V': printf("gatehouse %s\n", GW_VERSION); return 0;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	M.conf_path = path;
	M.reload_ok = 1;
	M.started_at = gw_wall_now();
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "gatehouse: libevent without thread support\n");
		return 1;
	}
	if (event_get_struct_event_size() != sizeof(struct event)) {
		fprintf(stderr, "gatehouse: libevent ABI mismatch (struct event size)\n");
		return 1;
	}
	conf_errors_init(&errs);
	s = snapshot_load(path, &errs);
	if (s == NULL) {
		print_errors(&errs, 0);
		if (errs.n == 0)
			fprintf(stderr, "%s: cannot load configuration\n", path);
		conf_errors_free(&errs);
		return 1;
	}
	if (check_user(&s->conf->global, &errs) < 0) {
		print_errors(&errs, 0);
		conf_errors_free(&errs);
		gw_snapshot_unref(s);
		return 1;
	}
	if (test_only && check_admin_tls(s->conf, &errs) < 0) {
		print_errors(&errs, 0);
		conf_errors_free(&errs);
		gw_snapshot_unref(s);
		return 1;
	}
	if (test_only) {
		int warned = check_paths(s->conf);
		warned += check_as_user(path, s->conf);
		fprintf(stderr, "%s: configuration OK%s\n", path,
		    warned ? " (with the warnings above)" : "");
		gw_snapshot_unref(s);
		conf_errors_free(&errs);
		return 0;
	}
	{
		unsigned char rnd[3];
		FILE *f = fopen("/dev/urandom", "rb");
		if (f == NULL || fread(rnd, 1, 3, f) != 3)
			memset(rnd, 0, 3);
		if (f != NULL)
			fclose(f);
		snprintf(gw_id_prefix, sizeof gw_id_prefix, "%02x%02x%02x", rnd[0], rnd[1], rnd[2]);
	}
	if (gw_log_open(s->conf->global.log.error, s->conf->global.log.level) < 0)
		fprintf(stderr, "gatehouse: cannot open error log %s: %s\n", s->conf->global.log.error,
		    strerror(errno));
	gw_log_syslog_options(s->conf->global.log.syslog_facility, s->conf->global.log.syslog_tag);
	if (gw_log_access_open(s->conf->global.log.access, s->conf->global.log.access_json) < 0)
		gw_error("cannot open access log %s: %s", s->conf->global.log.access, strerror(errno));
	gw_tail_enable(s->conf->admin.present && s->conf->admin.listen_enabled);
	M.nworkers = (int)s->conf->global.workers;
	if (M.nworkers <= 0)
		M.nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (M.nworkers <= 0)
		M.nworkers = 1;
	if (M.nworkers > GW_MAX_WORKERS)
		M.nworkers = GW_MAX_WORKERS;
	/* handlers first: a signal that arrives once we listen must not kill us */
	M.base = event_base_new();
	if (M.base == NULL) {
		fprintf(stderr, "gatehouse: cannot create the event loop\n");
		return 1;
	}
	for (int i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(M.base, signums[i], signal_cb, NULL);
		event_add(sigs[i], NULL);
	}
	if (build_listeners(s, &errs) < 0) {
		print_errors(&errs, 1);
		conf_errors_free(&errs);
		gw_snapshot_unref(s);
		return 1;
	}
	conf_errors_free(&errs);
	registry_commit(s);
	s->generation = M.generation = 1;
	M.snap = s;
	make_state_dir(s->conf->global.state_dir, s->conf->global.user);
	if (drop_privileges(s->conf->global.user) < 0)
		return 1;
	for (int i = 0; i < M.nworkers; i++) {
		uint64_t share = (uint64_t)s->conf->global.max_connections / (uint64_t)M.nworkers;
		M.workers[i] = gw_worker_new(i, s, share ? share : 1);
		if (M.workers[i] == NULL || gw_worker_start(M.workers[i]) < 0) {
			gw_error("cannot start worker %d", i);
			return 1;
		}
	}
	sides_activate(s, NULL);
	gw_info("gatehouse %s started with %d worker%s (config %s)", GW_VERSION, M.nworkers,
	    M.nworkers == 1 ? "" : "s", path);
	announce(s);
	/* admin console: a console that cannot start must not stop the gateway */
	if (adm_start(M.base, M.snap) < 0)
		gw_error("admin console not started; the gateway runs without it");
	gw_sd_notify("READY=1");

	event_base_dispatch(M.base);

	adm_stop();   /* admin console */

	sides_activate(NULL, M.snap);
	for (int i = 0; i < M.nworkers; i++)
		if (M.workers[i]->thread)
			pthread_join(M.workers[i]->thread, NULL);
	log_totals();
	for (int i = 0; i < M.nworkers; i++)
		gw_worker_join_free(M.workers[i]);
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	if (M.ev_stopwatch != NULL)
		event_free(M.ev_stopwatch);
	gw_snapshot_unref(M.snap);
	remember_reload(1, NULL);
	free(M.reg);
	event_base_free(M.base);
	gw_info("stopped");
	gw_log_close();
	libevent_global_shutdown();
	return 0;
}
