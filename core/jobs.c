/*
 * core/jobs: the off-loop thread pool (see jobs.h).
 *
 * One mutex guards the pool and all its ports: a job costs a few
 * microseconds of bookkeeping against the milliseconds of its run (crypt),
 * so finer locking would buy nothing.  Ports with queued jobs sit in a ring
 * (ready list); a thread takes the first port's oldest job and moves the
 * port to the end, so submitters take turns.  A port counts its jobs queued
 * and running; drain and free wait on the pool's `idle` condition until
 * those reach zero, which is what makes freeing a port safe while its jobs
 * are in other threads' hands.
 */
#include "core/jobs.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/log.h"

#define JOBS_MAGIC 0x4a4f4253u   /* "JOBS" */
#define PORT_MAGIC 0x4a504f52u   /* "JPOR" */

struct gw_jobs {
	uint32_t magic;
	pthread_mutex_t mu;
	pthread_cond_t work;                   /* a job was queued, or stop */
	pthread_cond_t idle;                   /* a job left a port's counts */
	struct gw_jobs_port *ready, *ready_tail;   /* ports with queued jobs, in turn */
	struct gw_jobs_port *ports;            /* every port (to detach at free) */
	size_t queued, max_queue;
	int stop;
	int nthreads;
	pthread_t threads[GW_JOBS_MAX_THREADS];
};

struct gw_jobs_port {
	uint32_t magic;
	struct gw_jobs *pool;                  /* NULL once detached by gw_jobs_free */
	struct event *ev;                      /* delivery on the loop; NULL: on the pool thread */
	struct gw_job *qhead, *qtail;          /* queued */
	struct gw_job *dhead, *dtail;          /* ran; done() owed on the loop */
	size_t queued, max_queued;
	unsigned running;                      /* taken by a thread, done() not yet returned or queued */
	int in_ready, closing;
	struct gw_jobs_port *rnext;            /* ready list */
	struct gw_jobs_port *pnext, *pprev;    /* every port of the pool */
};

static int result_of(struct gw_job *j)
{
	return atomic_load_explicit(&j->cancelled, memory_order_acquire) ? GW_JOB_CANCELLED : GW_JOB_DONE;
}

/* Put port at the end of the ready list.  Locked; port not in it. */
static void ready_push(struct gw_jobs *p, struct gw_jobs_port *port)
{
	if (p->ready_tail != NULL)
		p->ready_tail->rnext = port;
	else
		p->ready = port;
	p->ready_tail = port;
	port->in_ready = 1;
}

/* Take port's next queued job; the port goes to the end of the ready list
 * (or leaves it when empty).  Locked; port is the ready list's head. */
static struct gw_job *take(struct gw_jobs *p, struct gw_jobs_port *port)
{
	struct gw_job *j = port->qhead;

	port->qhead = j->next;
	if (port->qhead == NULL)
		port->qtail = NULL;
	port->queued--;
	p->queued--;
	p->ready = port->rnext;
	if (p->ready == NULL)
		p->ready_tail = NULL;
	port->rnext = NULL;
	port->in_ready = 0;
	if (port->qhead != NULL)
		ready_push(p, port);
	j->next = NULL;
	return j;
}

/* Take port out of the ready list.  Locked. */
static void unready(struct gw_jobs *p, struct gw_jobs_port *port)
{
	struct gw_jobs_port **pp, *prev = NULL;

	if (!port->in_ready)
		return;
	for (pp = &p->ready; *pp != NULL; prev = *pp, pp = &(*pp)->rnext) {
		if (*pp == port) {
			*pp = port->rnext;
			if (p->ready_tail == port)
				p->ready_tail = prev;
			break;
		}
	}
	port->rnext = NULL;
	port->in_ready = 0;
}

/* Take every queued job of port (they will not run).  Locked. */
static struct gw_job *take_all(struct gw_jobs *p, struct gw_jobs_port *port)
{
	struct gw_job *list = port->qhead;

	unready(p, port);
	p->queued -= port->queued;
	port->queued = 0;
	port->qhead = port->qtail = NULL;
	return list;
}

static void cancel_list(struct gw_job *j)
{
	while (j != NULL) {
		struct gw_job *next = j->next;
		j->next = NULL;
		atomic_store_explicit(&j->cancelled, 1, memory_order_release);
		j->done(j, GW_JOB_CANCELLED);
		j = next;
	}
}

static void *thread_main(void *arg)
{
	struct gw_jobs *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->ready == NULL && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		struct gw_jobs_port *port = p->ready;
		struct gw_job *j = take(p, port);
		port->running++;
		pthread_mutex_unlock(&p->mu);
		if (result_of(j) == GW_JOB_DONE)
			j->run(j);
		if (port->ev == NULL) {
			j->done(j, result_of(j));
			pthread_mutex_lock(&p->mu);
		} else {
			/* on the loop: event_active under the lock, so the port (and
			 * its event) cannot be freed in between */
			pthread_mutex_lock(&p->mu);
			if (port->dtail != NULL)
				port->dtail->next = j;
			else
				port->dhead = j;
			port->dtail = j;
			event_active(port->ev, EV_READ, 0);
		}
		port->running--;   /* the port may be freed once the lock is dropped */
		pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct gw_jobs *gw_jobs_new(int nthreads, size_t max_queue)
{
	struct gw_jobs *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > GW_JOBS_MAX_THREADS)
		nthreads = GW_JOBS_MAX_THREADS;
	p->magic = JOBS_MAGIC;
	p->max_queue = max_queue ? max_queue : GW_JOBS_QUEUE;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, thread_main, p) != 0) {
			gw_jobs_free(p);
			return NULL;
		}
		p->nthreads++;
	}
	return p;
}

void gw_jobs_free(struct gw_jobs *p)
{
	struct gw_job *cancelled = NULL;

	if (p == NULL || p->magic != JOBS_MAGIC)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* no thread left: what is still queued will not run */
	while (p->ports != NULL) {
		struct gw_jobs_port *port = p->ports;
		struct gw_job *list = take_all(p, port);
		p->ports = port->pnext;
		port->pnext = port->pprev = NULL;
		port->pool = NULL;
		while (list != NULL) {
			struct gw_job *next = list->next;
			list->next = cancelled;
			cancelled = list;
			list = next;
		}
	}
	cancel_list(cancelled);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
	p->magic = 0;
	free(p);
}

/* ---- the process pool ---- */

static struct gw_jobs *_Atomic shared;

/* A forked child (gatehouse -t checking as global.user) has none of the
 * pool's threads, and its mutex may have been held at the fork: the child
 * forgets the pool, and its users make their own (as unit tests do). */
static void forget_in_child(void)
{
	atomic_store(&shared, NULL);
}

int gw_jobs_start(int nthreads, size_t max_queue)
{
	static int atfork;
	struct gw_jobs *p;

	if (atomic_load(&shared) != NULL)
		return 0;
	if (!atfork && pthread_atfork(NULL, NULL, forget_in_child) == 0)
		atfork = 1;
	if ((p = gw_jobs_new(nthreads, max_queue)) == NULL)
		return -1;
	atomic_store(&shared, p);
	return 0;
}

void gw_jobs_stop(void)
{
	gw_jobs_free(atomic_exchange(&shared, NULL));
}

struct gw_jobs *gw_jobs_shared(void)
{
	return atomic_load(&shared);
}

/* ---- ports ---- */

/* Call done() of every job that ran and waits for its loop.  The loop's
 * thread (the event, drain, free). */
static void deliver(struct gw_jobs_port *port)
{
	struct gw_job *list;
	struct gw_jobs *p = port->pool;

	if (p != NULL)
		pthread_mutex_lock(&p->mu);
	list = port->dhead;
	port->dhead = port->dtail = NULL;
	if (p != NULL)
		pthread_mutex_unlock(&p->mu);
	while (list != NULL) {
		struct gw_job *next = list->next;
		list->next = NULL;
		list->done(list, result_of(list));
		list = next;
	}
}

static void port_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_jobs_port *port = arg;

	(void)fd;
	(void)what;
	if (port->magic != PORT_MAGIC) {
		gw_error("jobs: completion event of a freed port");
		return;
	}
	deliver(port);
}

struct gw_jobs_port *gw_jobs_port_new(struct gw_jobs *p, struct event_base *base, size_t max_queued)
{
	struct gw_jobs_port *port;

	if (p == NULL || p->magic != JOBS_MAGIC || (port = calloc(1, sizeof *port)) == NULL)
		return NULL;
	port->magic = PORT_MAGIC;
	port->pool = p;
	port->max_queued = max_queued;
	if (base != NULL && (port->ev = event_new(base, -1, 0, port_cb, port)) == NULL) {
		free(port);
		return NULL;
	}
	pthread_mutex_lock(&p->mu);
	port->pnext = p->ports;
	if (p->ports != NULL)
		p->ports->pprev = port;
	p->ports = port;
	pthread_mutex_unlock(&p->mu);
	return port;
}

int gw_jobs_submit(struct gw_jobs_port *port, struct gw_job *job)
{
	struct gw_jobs *p;
	int rc = -1;

	if (port == NULL || port->magic != PORT_MAGIC || job == NULL || (p = port->pool) == NULL)
		return -1;
	job->next = NULL;
	job->port = port;
	atomic_store_explicit(&job->cancelled, 0, memory_order_relaxed);
	pthread_mutex_lock(&p->mu);
	if (!p->stop && !port->closing && p->queued < p->max_queue &&
	    (port->max_queued == 0 || port->queued < port->max_queued)) {
		if (port->qtail != NULL)
			port->qtail->next = job;
		else
			port->qhead = job;
		port->qtail = job;
		port->queued++;
		p->queued++;
		if (!port->in_ready)
			ready_push(p, port);
		pthread_cond_signal(&p->work);
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void gw_jobs_cancel(struct gw_job *job)
{
	if (job != NULL)
		atomic_store_explicit(&job->cancelled, 1, memory_order_release);
}

void gw_jobs_port_drain(struct gw_jobs_port *port)
{
	struct gw_jobs *p;

	if (port == NULL || port->magic != PORT_MAGIC)
		return;
	if ((p = port->pool) != NULL) {
		pthread_mutex_lock(&p->mu);
		while ((port->queued > 0 && !p->stop) || port->running > 0)
			pthread_cond_wait(&p->idle, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	deliver(port);
}

void gw_jobs_port_free(struct gw_jobs_port *port)
{
	struct gw_jobs *p;
	struct gw_job *cancelled = NULL;

	if (port == NULL || port->magic != PORT_MAGIC)
		return;
	if ((p = port->pool) != NULL) {
		pthread_mutex_lock(&p->mu);
		port->closing = 1;
		cancelled = take_all(p, port);
		while (port->running > 0)
			pthread_cond_wait(&p->idle, &p->mu);
		if (port->pprev != NULL)
			port->pprev->pnext = port->pnext;
		else
			p->ports = port->pnext;
		if (port->pnext != NULL)
			port->pnext->pprev = port->pprev;
		pthread_mutex_unlock(&p->mu);
		port->pool = NULL;
	}
	deliver(port);          /* those that ran first, in order */
	cancel_list(cancelled);
	if (port->ev != NULL)
		event_free(port->ev);
	port->magic = 0;
	free(port);
}

/* ---- periodic jobs ---- */

struct gw_jobs_every {
	struct gw_job job;               /* first: run/done get it back */
	struct gw_jobs_port *port;       /* no loop: nothing to hand back */
	struct event *timer;
	void (*run)(void *arg);
	void *arg;
	_Atomic int busy;                /* a tick is queued or running */
};

static void every_run(struct gw_job *job)
{
	struct gw_jobs_every *e = (struct gw_jobs_every *)job;

	e->run(e->arg);
}

static void every_done(struct gw_job *job, int result)
{
	struct gw_jobs_every *e = (struct gw_jobs_every *)job;

	(void)result;
	atomic_store(&e->busy, 0);
}

static void every_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_jobs_every *e = arg;

	(void)fd;
	(void)what;
	if (atomic_exchange(&e->busy, 1))
		return;   /* the last one has not finished: skip this tick */
	e->job.run = every_run;
	e->job.done = every_done;
	if (gw_jobs_submit(e->port, &e->job) < 0)
		atomic_store(&e->busy, 0);
}

struct gw_jobs_every *gw_jobs_every_new(struct gw_jobs *p, struct event_base *base, double interval,
    void (*run)(void *arg), void *arg)
{
	struct gw_jobs_every *e = calloc(1, sizeof *e);
	struct timeval tv;

	if (e == NULL)
		return NULL;
	e->run = run;
	e->arg = arg;
	if (interval < 0.001)
		interval = 0.001;
	tv.tv_sec = (time_t)interval;
	tv.tv_usec = (suseconds_t)((interval - (double)tv.tv_sec) * 1e6);
	e->port = gw_jobs_port_new(p, NULL, 1);
	e->timer = event_new(base, -1, EV_PERSIST, every_tick, e);
	if (e->port == NULL || e->timer == NULL || event_add(e->timer, &tv) < 0) {
		gw_jobs_every_free(e);
		return NULL;
	}
	return e;
}

void gw_jobs_every_free(struct gw_jobs_every *e)
{
	if (e == NULL)
		return;
	if (e->timer != NULL)
		event_free(e->timer);
	gw_jobs_port_free(e->port);   /* a queued tick is dropped, a running one finishes */
	free(e);
}
