/*
 * reverse/servers: the shared per-server state registry (see servers.h).
 * Workers only read the published atomics and bump counters; every state
 * transition other than passive ejection happens on the main thread, which
 * is why the check/admin helpers may log and push events freely.
 */
#include "reverse/servers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/events.h"
#include "core/log.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rev_srv *reg_head;

int64_t rev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double rev_wall(void)
{
	return gw_wall_now();
}

struct rev_srv *rev_srv_get(const char *upstream, const char *address)
{
	struct rev_srv *s;

	pthread_mutex_lock(&reg_lock);
	for (s = reg_head; s != NULL; s = s->next) {
		if (strcmp(s->upstream, upstream) == 0 && strcmp(s->address, address) == 0) {
			s->refs++;
			pthread_mutex_unlock(&reg_lock);
			return s;
		}
	}
	s = calloc(1, sizeof *s);
	if (s != NULL) {
		s->upstream = strdup(upstream);
		s->address = strdup(address);
		if (s->upstream == NULL || s->address == NULL) {
			free(s->upstream);
			free(s->address);
			free(s);
			s = NULL;
		}
	}
	if (s != NULL) {
		s->magic = REV_SRV_MAGIC;
		atomic_init(&s->state, REV_SRV_UP);
		atomic_init(&s->admin, REV_SRV_UP);
		atomic_init(&s->health_up, 1);
		s->last_change = rev_wall();
		s->refs = 1;
		s->next = reg_head;
		reg_head = s;
	}
	pthread_mutex_unlock(&reg_lock);
	return s;
}

void rev_srv_put(struct rev_srv *s)
{
	struct rev_srv **pp;

	if (s == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	if (--s->refs > 0) {
		pthread_mutex_unlock(&reg_lock);
		return;
	}
	for (pp = &reg_head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	s->magic = 0;
	free(s->upstream);
	free(s->address);
	free(s);
}

int rev_srv_usable(const struct rev_srv *s, int64_t now_ms)
{
	if (atomic_load_explicit(&s->state, memory_order_acquire) != REV_SRV_UP)
		return 0;
	return atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed) <= now_ms;
}

double rev_srv_weight_factor(const struct rev_srv *s, double slow_start, int64_t now_ms)
{
	int64_t a = atomic_load_explicit(&s->usable_since_ms, memory_order_relaxed);
	int64_t b = atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed);

	return rev_slow_start_factor(a > b ? a : b, now_ms, slow_start);
}

int rev_srv_failed(struct rev_srv *s, int max_fails, double fail_timeout, int64_t now_ms)
{
	int64_t win = (int64_t)(fail_timeout * 1000), start, until, old;
	int n;

	atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
	if (max_fails <= 0)
		return 0;   /* max_fails = 0: passive ejection off */
	/* nginx semantics: max_fails failures within fail_timeout.  A failure
	 * after the window opened by the first one starts a new window (racy
	 * between workers by one failure at most: good enough for a heuristic). */
	start = atomic_load_explicit(&s->fail_since_ms, memory_order_relaxed);
	if (start == 0 || now_ms - start > win ||
	    atomic_load_explicit(&s->fails, memory_order_relaxed) == 0) {
		atomic_store_explicit(&s->fail_since_ms, now_ms, memory_order_relaxed);
		atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
	}
	n = atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed) + 1;
	if (n < max_fails)
		return 0;
	old = atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed);
	if (old > now_ms)
		return 0;   /* already ejected */
	until = now_ms + win;
	if (!atomic_compare_exchange_strong(&s->ejected_until_ms, &old, until))
		return 0;   /* another worker ejected it */
	atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
	atomic_store_explicit(&s->ejected, 1, memory_order_release);
	atomic_fetch_add_explicit(&s->ejections, 1, memory_order_relaxed);
	return 1;
}

int rev_srv_back(struct rev_srv *s, int64_t now_ms)
{
	int one = 1;

	if (atomic_load_explicit(&s->ejected, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed) > now_ms)
		return 0;
	return atomic_compare_exchange_strong(&s->ejected, &one, 0);
}

void rev_srv_succeeded(struct rev_srv *s)
{
	/* only write when needed: keeps the line shared between workers */
	if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0)
		atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
}

/* Publish the effective state; log and push an event when it changed. */
static void publish(struct rev_srv *s, const char *why)
{
	int st = rev_state_effective(atomic_load(&s->health_up), atomic_load(&s->admin));
	int old = atomic_exchange(&s->state, st);

	if (old == st)
		return;
	s->last_change = rev_wall();
	if (st == REV_SRV_UP)
		atomic_store(&s->usable_since_ms, rev_now_ms());
	gw_info("upstream %s server %s: %s -> %s (%s)", s->upstream, s->address,
	    rev_state_name(old), rev_state_name(st), why);
	gw_event_push("health", "%s %s: %s -> %s (%s)", s->upstream, s->address,
	    rev_state_name(old), rev_state_name(st), why);
}

int rev_srv_check_result(struct rev_srv *s, int ok, int status, double latency_ms,
    const char *error, int rise, int fall)
{
	int up = atomic_load(&s->health_up);
	int changed;
	char why[128];

	s->last_check = rev_wall();
	s->last_status = status;
	s->last_latency_ms = latency_ms;
	snprintf(s->last_error, sizeof s->last_error, "%s", ok || error == NULL ? "" : error);
	if (ok)
		s->checks_ok++;
	else
		s->checks_failed++;
	changed = rev_hcount_step(&up, &s->ok_run, &s->fail_run, ok, rise, fall);
	if (!changed)
		return 0;
	atomic_store(&s->health_up, up);
	if (up)
		snprintf(why, sizeof why, "health check passed %d time%s", rise, rise == 1 ? "" : "s");
	else if (status > 0)
		snprintf(why, sizeof why, "health check failed %d time%s: status %d", fall,
		    fall == 1 ? "" : "s", status);
	else
		snprintf(why, sizeof why, "health check failed %d time%s: %s", fall,
		    fall == 1 ? "" : "s", error ? error : "error");
	if (atomic_load(&s->admin) != REV_SRV_UP) {
		/* the effective state stays the admin one; still worth a line */
		s->last_change = rev_wall();
		gw_info("upstream %s server %s: health %s (%s; admin state %s)", s->upstream,
		    s->address, up ? "up" : "down", why, rev_state_name(atomic_load(&s->admin)));
		gw_event_push("health", "%s %s: health %s (%s)", s->upstream, s->address,
		    up ? "up" : "down", why);
		return 1;
	}
	publish(s, why);
	return 1;
}

int rev_srv_set_admin(struct rev_srv *s, int admin)
{
	if (admin != REV_SRV_UP && admin != REV_SRV_DRAINING && admin != REV_SRV_DISABLED)
		return -1;
	atomic_store(&s->admin, admin);
	if (admin == REV_SRV_UP)
	{
		atomic_store(&s->ejected_until_ms, 0);   /* an operator's enable clears ejection */
		atomic_store(&s->ejected, 0);            /* (publish() logs that edge) */
	}
	publish(s, "set by operator");
	return 0;
}

/* ---- pure parts ---- */

int rev_hcount_step(int *up, int *ok_run, int *fail_run, int ok, int rise, int fall)
{
	if (rise < 1)
		rise = 1;
	if (fall < 1)
		fall = 1;
	if (ok) {
		*fail_run = 0;
		if (*ok_run < rise)
			(*ok_run)++;
		if (!*up && *ok_run >= rise) {
			*up = 1;
			return 1;
		}
	} else {
		*ok_run = 0;
		if (*fail_run < fall)
			(*fail_run)++;
		if (*up && *fail_run >= fall) {
			*up = 0;
			return 1;
		}
	}
	return 0;
}

int rev_state_effective(int health_up, int admin)
{
	if (admin == REV_SRV_DRAINING || admin == REV_SRV_DISABLED)
		return admin;
	return health_up ? REV_SRV_UP : REV_SRV_DOWN;
}

double rev_slow_start_factor(int64_t since_ms, int64_t now_ms, double slow_start)
{
	double f;

	if (slow_start <= 0 || since_ms <= 0 || now_ms <= since_ms)
		return since_ms > 0 && slow_start > 0 && now_ms <= since_ms ? 0.0 : 1.0;
	f = (double)(now_ms - since_ms) / (slow_start * 1000.0);
	return f >= 1.0 ? 1.0 : f;
}

static const char *const state_names[] = { "up", "down", "draining", "disabled" };

const char *rev_state_name(int state)
{
	return state >= 0 && state < 4 ? state_names[state] : "?";
}

int rev_state_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, state_names[i]) == 0)
			return i;
	if (strcasecmp(name, "enabled") == 0 || strcasecmp(name, "enable") == 0)
		return REV_SRV_UP;
	return -1;
}

void rev_srv_health_reset(struct rev_srv *s)
{
	s->ok_run = s->fail_run = 0;
	if (atomic_exchange(&s->health_up, 1) == 0)
		publish(s, "health checks removed");
}
