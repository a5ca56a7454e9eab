/*
 * core/main: start-up only: arguments, -t (the configuration check),
 * privileges and signals.  The only core file that names the families
 * (forward/, reverse/) and the console: it wires them in.  Loading,
 * reloading and stopping configuration generations is core/control.c; the
 * listening sockets kept across reloads are core/listener.c.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/thread.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "admin/admin.h"
#include "cluster/cluster.h"
#include "conf/conf.h"
#include "core/control.h"
#include "core/events.h"
#include "core/heap.h"
#include "core/jobs.h"
#include "core/log.h"
#include "core/sdnotify.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "forward/forward.h"
#include "reverse/reverse.h"

static const char *conf_path;

static void usage(void)
{
	fprintf(stderr,
	    "usage: gatehouse [-c FILE] [-t] [-V]\n"
	    "  -c FILE  configuration file (default /etc/gatehouse/gatehouse.conf)\n"
	    "  -t       check the configuration and exit (0 = fine)\n"
	    "  -V       print the version and exit\n");
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
	const char *file = gl->user_src.file ? gl->user_src.file : conf_path;
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
		s = gw_control_load(path, &errs);
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


/*
 * The wiring: everything the core does not name.  The sides in the order
 * of their listeners and stats families (forward is family 0, reverse 1).
 * The console wires itself to reloads when it starts (adm_start).
 */
static void wire(void)
{
	gw_control_add_side(&fwd_side);
	gw_control_add_side(&rev_side);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		(void)gw_control_reload();   /* the console hears of it as a subscriber */
		break;
	case SIGUSR1:
		gw_log_reopen();
		break;
	case SIGTERM:
	case SIGINT:
		gw_control_stop(sig == SIGTERM ? "SIGTERM" : "SIGINT", sig == SIGINT);
		break;
	}
}

int main(int argc, char **argv)
{
	const char *path = "/etc/gatehouse/gatehouse.conf";
	int test_only = 0, opt, nworkers;
	struct conf_errors errs;
	struct gw_snapshot *s;
	struct event_base *base;
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
	/* before any thread: the data path's buffer chains stop page-faulting
	 * in fresh memory depending on the heap's history (core/heap.c) */
	(void)gw_heap_tune();
	gw_heap_libevent();   /* (before any libevent call) */
	conf_path = path;
	gw_control_init(path);
	wire();
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "gatehouse: libevent without thread support\n");
		return 1;
	}
	if (event_get_struct_event_size() != sizeof(struct event)) {
		fprintf(stderr, "gatehouse: libevent ABI mismatch (struct event size)\n");
		return 1;
	}
	/* ---- jobs: the off-loop thread pool (core/jobs.h), before any snapshot
	 * (forward auth makes its port at compile); stopped by every way out of
	 * main, after the snapshots and the console freed their ports ---- */
	/* OpenSSL first: its exit handler then runs after gw_jobs_stop's, so
	 * the job threads' OpenSSL state (certificate minting) is freed as
	 * they end, not left behind by a library already cleaned up */
	OPENSSL_init_ssl(0, NULL);
	if (gw_jobs_start(GW_JOBS_THREADS, GW_JOBS_QUEUE) < 0) {
		fprintf(stderr, "gatehouse: cannot start the job threads\n");
		return 1;
	}
	atexit(gw_jobs_stop);
	/* ---- end jobs ---- */
	conf_errors_init(&errs);
	fwd_inspect_allow_ca_creation(!test_only);   /* -t only checks: it writes no CA */
	s = gw_control_load(path, &errs);
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
	nworkers = (int)s->conf->global.workers;
	if (nworkers <= 0)
		nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nworkers <= 0)
		nworkers = 1;
	if (nworkers > GW_MAX_WORKERS)
		nworkers = GW_MAX_WORKERS;
	/* handlers first: a signal that arrives once we listen must not kill us */
	base = event_base_new();
	if (base == NULL) {
		fprintf(stderr, "gatehouse: cannot create the event loop\n");
		return 1;
	}
	for (int i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(base, signums[i], signal_cb, NULL);
		event_add(sigs[i], NULL);
	}
	if (gw_control_begin(s, base, nworkers, &errs) < 0) {
		print_errors(&errs, 1);
		conf_errors_free(&errs);
		return 1;
	}
	conf_errors_free(&errs);
	make_state_dir(s->conf->global.state_dir, s->conf->global.user);
	if (drop_privileges(s->conf->global.user) < 0)
		return 1;
	if (gw_control_start_workers() < 0)
		return 1;
	/* admin console: a console that cannot start must not stop the gateway */
	if (adm_start(base, s) < 0)
		gw_error("admin console not started; the gateway runs without it");
	clu_start(base, s);   /* cluster.redis: shared state with the HA partner */
	gw_sd_notify("READY=1");

	event_base_dispatch(base);

	adm_stop();   /* admin console */
	clu_stop();

	gw_control_shutdown();
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	event_base_free(base);
	gw_info("stopped");
	gw_log_close();
	libevent_global_shutdown();
	return 0;
}
