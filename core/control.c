/*
 * core/control: loading, publishing and stopping configuration generations
 * (see control.h).  A reload builds a complete new snapshot beside the
 * serving one (config, each side's compiled data, TLS, listeners); only when
 * all of it succeeded is it handed to the workers, so a refused
 * configuration never disturbs the generation that serves.
 */
#include "core/control.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/sdnotify.h"
#include "core/snapshot.h"
#include "core/tls.h"
#include "core/worker.h"

static struct {
	const char *conf_path;
	const struct gw_side *sides[GW_MAX_SIDES];
	int nsides;
	int nworkers;
	struct gw_worker *workers[GW_MAX_WORKERS];
	struct gw_snapshot *snap;
	uint64_t generation;
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
	struct sub {
		void (*fn)(int rc, const struct gw_snapshot *s, void *arg);
		void *arg;
	} subs[GW_CONTROL_MAX_SUBS];
	int nsubs;
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

void gw_control_init(const char *conf_path)
{
	M.conf_path = conf_path;
	M.reload_ok = 1;
	M.started_at = gw_wall_now();
}

int gw_control_add_side(const struct gw_side *side)
{
	int f;

	if (M.nsides >= GW_MAX_SIDES || (f = gw_stats_add_family(side->proto->name, side->short_name)) < 0)
		return -1;
	side->proto->family = f;
	M.sides[M.nsides++] = side;
	return 0;
}

int gw_control_subscribe(void (*fn)(int rc, const struct gw_snapshot *s, void *arg), void *arg)
{
	if (M.nsubs >= GW_CONTROL_MAX_SUBS)
		return -1;
	M.subs[M.nsubs].fn = fn;
	M.subs[M.nsubs].arg = arg;
	M.nsubs++;
	return 0;
}

/* Tell the subscribers how a reload attempt ended (see control.h). */
static void notify(int rc)
{
	for (int i = 0; i < M.nsubs; i++)
		M.subs[i].fn(rc, M.snap, M.subs[i].arg);
}

struct gw_snapshot *gw_control_load(const char *path, struct conf_errors *errs)
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
	s->nsides = M.nsides;
	s->loaded_at = gw_wall_now();
	for (int i = 0; i < M.nsides; i++) {
		s->sides[i] = M.sides[i];
		if (M.sides[i]->compile(cf, errs, &s->side_data[i]) < 0)
			bad = 1;
	}
	gw_tls_specs_init(&ts);
	for (int i = 0; i < M.nsides; i++)
		if (M.sides[i]->tls != NULL && M.sides[i]->tls(cf, &ts) < 0)
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

/* Main-thread hooks of each family: s becomes current, old stops being. */
static void sides_activate(struct gw_snapshot *s, struct gw_snapshot *old)
{
	for (int i = 0; i < M.nsides; i++) {
		if (old != NULL && M.sides[i]->deactivate != NULL)
			M.sides[i]->deactivate(old->side_data[i]);
		if (s != NULL && M.sides[i]->activate != NULL)
			M.sides[i]->activate(s->side_data[i], M.base);
	}
}

/* One line of totals at exit: what this process did. */
static void log_totals(void)
{
	struct gw_stats_snapshot st;

	gw_control_stats(&st);
	for (int f = 0; f < gw_stats_nfamilies(); f++)
		gw_info("totals %s: connections=%llu requests=%llu 2xx=%llu 4xx=%llu 5xx=%llu "
		    "bytes_in=%llu bytes_out=%llu tunnels=%llu upstream_connects=%llu "
		    "upstream_reused=%llu", gw_stats_family_name(f),
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
	s = gw_control_load(M.conf_path, &errs);
	if (s != NULL && s->conf->global.workers != M.snap->conf->global.workers)
		gw_warn("global.workers changed: takes effect at the next restart");
	if (s != NULL && gw_listener_build(s, M.nworkers, &errs) < 0) {
		gw_snapshot_unref(s);
		s = NULL;
	}
	if (s == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			gw_error("%s", errs.msgs[i]);
		gw_error("reload failed (%zu error%s); still serving generation %llu", errs.n,
		    errs.n == 1 ? "" : "s", (unsigned long long)M.generation);
		remember_reload(0, &errs);
		conf_errors_free(&errs);
		notify(-1);
		gw_sd_notify("READY=1");
		return -1;
	}
	remember_reload(1, NULL);
	conf_errors_free(&errs);
	s->generation = ++M.generation;
	gw_listener_commit(s);
	if (gw_log_open(s->conf->global.log.error, s->conf->global.log.level) < 0)
		gw_error("cannot open error log %s: %s", s->conf->global.log.error, strerror(errno));
	gw_log_syslog_options(s->conf->global.log.syslog_facility, s->conf->global.log.syslog_tag);
	if (gw_log_access_open(s->conf->global.log.access, s->conf->global.log.access_json) < 0)
		gw_error("cannot open access log %s: %s", s->conf->global.log.access, strerror(errno));
	for (int i = 0; i < M.nworkers; i++)
		gw_worker_post_snapshot(M.workers[i], s);
	sides_activate(s, M.snap);
	gw_snapshot_unref(M.snap);
	M.snap = s;
	gw_info("configuration generation %llu loaded", (unsigned long long)s->generation);
	announce(s);
	notify(0);
	gw_sd_notify("READY=1");
	return 0;
}

int gw_control_begin(struct gw_snapshot *s, struct event_base *base, int nworkers,
    struct conf_errors *errs)
{
	M.base = base;
	M.nworkers = nworkers;
	if (gw_listener_build(s, M.nworkers, errs) < 0) {
		gw_snapshot_unref(s);
		return -1;
	}
	gw_listener_commit(s);
	s->generation = M.generation = 1;
	M.snap = s;
	return 0;
}

int gw_control_start_workers(void)
{
	struct gw_snapshot *s = M.snap;

	for (int i = 0; i < M.nworkers; i++) {
		uint64_t share = (uint64_t)s->conf->global.max_connections / (uint64_t)M.nworkers;
		M.workers[i] = gw_worker_new(i, s, share ? share : 1);
		if (M.workers[i] == NULL || gw_worker_start(M.workers[i]) < 0) {
			gw_error("cannot start worker %d", i);
			return -1;
		}
	}
	sides_activate(s, NULL);
	gw_info("gatehouse %s started with %d worker%s (config %s)", GW_VERSION, M.nworkers,
	    M.nworkers == 1 ? "" : "s", M.conf_path);
	announce(s);
	return 0;
}

/* ---- what the console reads ---- */

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

int gw_control_stopping(void)
{
	return M.stopping != 0;
}

/* ---- stopping ---- */

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

void gw_control_stop(const char *why, int hurry)
{
	static const struct timeval tenth = { 0, 100000 };

	if (M.stopping) {
		if (hurry && M.stopping == 1) {
			M.stop_deadline = 0;
		}
		return;
	}
	gw_sd_notify("STOPPING=1");
	gw_info("%s: stopping; in-flight requests get %.1f s", why,
	    M.snap->conf->global.timeouts.shutdown_grace);
	M.stopping = 1;
	M.stop_deadline = gw_wall_now() + M.snap->conf->global.timeouts.shutdown_grace;
	for (int i = 0; i < M.nworkers; i++)
		gw_worker_post_stop(M.workers[i]);
	M.ev_stopwatch = event_new(M.base, -1, EV_PERSIST, stopwatch_cb, NULL);
	event_add(M.ev_stopwatch, &tenth);
}

void gw_control_shutdown(void)
{
	sides_activate(NULL, M.snap);
	for (int i = 0; i < M.nworkers; i++)
		if (M.workers[i]->thread)
			pthread_join(M.workers[i]->thread, NULL);
	log_totals();
	for (int i = 0; i < M.nworkers; i++)
		gw_worker_join_free(M.workers[i]);
	if (M.ev_stopwatch != NULL)
		event_free(M.ev_stopwatch);
	gw_snapshot_unref(M.snap);
	remember_reload(1, NULL);
	gw_listener_free();
}
