/*
 * test_jobs: core/jobs, the off-loop thread pool, with real threads and real
 * event_bases: jobs run on pool threads and their completions come back on
 * the submitting loop's thread (two loops at once); a full port or pool
 * refuses at once; freeing a port or the pool with jobs queued and running
 * calls every done() exactly once (run or cancelled) and nothing after; a
 * cancelled requester (freed at once) is never called back; drain answers
 * everyone on the caller's thread; a periodic job runs off the loop and
 * stops when freed.  Timing only paces the runs: every check waits on
 * counts, not on sleeps, so a loaded machine makes it slower, not red.
 */
#include "core/jobs.h"
#include "check.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* A test job: what ran where. */
struct tjob {
	struct gw_job job;                 /* first */
	pthread_t loop;                    /* where done() must run (loop ports) */
	int check_loop;
	useconds_t work;                   /* run() sleeps this long */
	int *gate;                         /* run() waits until *gate (under mu) */
	_Atomic int *started;
	/* results */
	int ran_off_loop, done_on_loop, result, ndone;
	_Atomic int *ran, *done_ok, *done_cancelled, *wrong_thread;
	int *requester_calls;              /* the requester's own callback count */
	int *requester;                    /* freed by a cancelling requester */
};

static void tjob_run(struct gw_job *job)
{
	struct tjob *t = (struct tjob *)job;

	if (t->check_loop && pthread_equal(pthread_self(), t->loop))
		atomic_fetch_add(t->wrong_thread, 1);
	if (t->started != NULL)
		atomic_fetch_add(t->started, 1);
	if (t->gate != NULL) {
		pthread_mutex_lock(&mu);
		while (!*t->gate)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	}
	if (t->work)
		usleep(t->work);
	atomic_fetch_add(t->ran, 1);
}

static void tjob_done(struct gw_job *job, int result)
{
	struct tjob *t = (struct tjob *)job;

	if (t->check_loop && !pthread_equal(pthread_self(), t->loop))
		atomic_fetch_add(t->wrong_thread, 1);
	if (result == GW_JOB_DONE) {
		atomic_fetch_add(t->done_ok, 1);
		if (t->requester != NULL) {      /* a live requester is called back */
			(*t->requester)++;
			(*t->requester_calls)++;
		}
	} else {
		atomic_fetch_add(t->done_cancelled, 1);
	}
	free(t);
}

struct counts {
	_Atomic int ran, ok, cancelled, wrong, started;
};

static struct tjob *tjob_new(struct counts *c, useconds_t work)
{
	struct tjob *t = calloc(1, sizeof *t);

	t->job.run = tjob_run;
	t->job.done = tjob_done;
	t->work = work;
	t->ran = &c->ran;
	t->done_ok = &c->ok;
	t->done_cancelled = &c->cancelled;
	t->wrong_thread = &c->wrong;
	t->started = &c->started;
	return t;
}

static void open_gate(int *gate)
{
	pthread_mutex_lock(&mu);
	*gate = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Wait (up to 20 s) until *v >= n; returns 1 if it got there. */
static int wait_for(_Atomic int *v, int n)
{
	for (int i = 0; i < 20000 && atomic_load(v) < n; i++)
		usleep(1000);
	return atomic_load(v) >= n;
}

/* ---- completions on the submitter's loop ---- */

#define NJOBS 200

struct looper {
	struct gw_jobs *pool;
	struct event_base *base;
	struct gw_jobs_port *port;
	pthread_t thread, self;
	struct counts c;
	int refused;
	struct event *poll;
};

static void looper_poll(evutil_socket_t fd, short what, void *arg)
{
	struct looper *l = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&l->c.ok) + atomic_load(&l->c.cancelled) + l->refused >= NJOBS)
		event_base_loopbreak(l->base);
}

static void looper_submit(evutil_socket_t fd, short what, void *arg)
{
	struct looper *l = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < NJOBS; i++) {
		struct tjob *t = tjob_new(&l->c, (useconds_t)(i % 7 == 0 ? 500 : 0));
		t->check_loop = 1;
		t->loop = l->self;
		if (gw_jobs_submit(l->port, &t->job) < 0) {
			free(t);
			l->refused++;
		}
	}
}

static void *looper_main(void *arg)
{
	struct looper *l = arg;
	struct timeval ms = { 0, 1000 }, zero = { 0, 0 };

	l->self = pthread_self();
	l->base = event_base_new();
	l->port = gw_jobs_port_new(l->pool, l->base, 0);
	l->poll = event_new(l->base, -1, EV_PERSIST, looper_poll, l);
	event_add(l->poll, &ms);
	event_base_once(l->base, -1, EV_TIMEOUT, looper_submit, l, &zero);
	event_base_dispatch(l->base);
	gw_jobs_port_free(l->port);
	event_free(l->poll);
	event_base_free(l->base);
	return NULL;
}

static void test_loops(void)
{
	struct gw_jobs *pool = gw_jobs_new(2, 4 * NJOBS);
	struct looper a = { .pool = pool }, b = { .pool = pool };

	BEGIN_CASE("completions come back on each submitter's own loop thread");
	CHECK(pool != NULL, "pool");
	pthread_create(&a.thread, NULL, looper_main, &a);
	pthread_create(&b.thread, NULL, looper_main, &b);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	CHECK(a.refused == 0 && b.refused == 0, "all queued: %d %d", a.refused, b.refused);
	CHECK(a.c.ok == NJOBS && b.c.ok == NJOBS, "every job done once: %d %d", a.c.ok, b.c.ok);
	CHECK(a.c.ran == NJOBS && b.c.ran == NJOBS, "every job ran: %d %d", a.c.ran, b.c.ran);
	CHECK(a.c.wrong == 0 && b.c.wrong == 0, "run off the loop, done on it: %d %d wrong", a.c.wrong,
	    b.c.wrong);
	gw_jobs_free(pool);
	END_CASE();
}

/* ---- bounds ---- */

static void test_full(void)
{
	struct gw_jobs *pool = gw_jobs_new(1, 3);
	struct gw_jobs_port *p1 = gw_jobs_port_new(pool, NULL, 2), *p2 = gw_jobs_port_new(pool, NULL, 0);
	struct counts c;
	int gate = 0, accepted = 0;
	struct tjob *blocker, *t;

	memset(&c, 0, sizeof c);
	BEGIN_CASE("a full port or pool refuses at once; the accepted ones all run");
	CHECK(pool != NULL && p1 != NULL && p2 != NULL, "made");
	blocker = tjob_new(&c, 0);
	blocker->gate = &gate;
	CHECK(gw_jobs_submit(p1, &blocker->job) == 0, "blocker queued");
	CHECK(wait_for(&c.started, 1), "the one thread is busy");
	for (int i = 0; i < 2; i++) {
		t = tjob_new(&c, 0);
		CHECK(gw_jobs_submit(p1, &t->job) == 0, "port: %d of 2", i + 1);
		accepted++;
	}
	t = tjob_new(&c, 0);
	CHECK(gw_jobs_submit(p1, &t->job) == -1, "port bound: third refused");
	free(t);   /* refused: still ours, done never comes */
	t = tjob_new(&c, 0);
	CHECK(gw_jobs_submit(p2, &t->job) == 0, "another port still fits in the pool");
	accepted++;
	t = tjob_new(&c, 0);
	CHECK(gw_jobs_submit(p2, &t->job) == -1, "pool bound: 3 queued in all, refused");
	free(t);
	open_gate(&gate);
	CHECK(wait_for(&c.ok, accepted + 1), "accepted jobs done: %d", atomic_load(&c.ok));
	gw_jobs_port_free(p1);
	gw_jobs_port_free(p2);
	CHECK(c.ok == accepted + 1 && c.cancelled == 0 && c.ran == accepted + 1, "exactly once each: ok %d "
	    "cancelled %d ran %d", c.ok, c.cancelled, c.ran);
	gw_jobs_free(pool);
	END_CASE();
}

/* ---- shutdown ---- */

struct closer {
	struct gw_jobs_port *port;
	int *gate;
	struct counts *probes;
};

/* Open *gate once cl->port refuses jobs, i.e. once it is being freed: the
 * blocked run() then ends after the port's queue was taken (no timing). */
static void *open_when_closing(void *arg)
{
	struct closer *cl = arg;

	for (;;) {
		struct tjob *t = tjob_new(cl->probes, 0);
		if (gw_jobs_submit(cl->port, &t->job) < 0) {
			free(t);
			break;
		}
		usleep(1000);
	}
	open_gate(cl->gate);
	return NULL;
}

/* Free port while its one running job waits on *gate. */
static void free_while_blocked(struct gw_jobs_port *port, int *gate, struct counts *probes)
{
	struct closer cl = { port, gate, probes };
	pthread_t th;

	pthread_create(&th, NULL, open_when_closing, &cl);
	gw_jobs_port_free(port);
	pthread_join(th, NULL);
}

static void test_shutdown(void)
{
	struct gw_jobs *one = gw_jobs_new(1, 0), *pool = gw_jobs_new(2, 0);
	struct event_base *base = event_base_new();
	struct gw_jobs_port *plain = gw_jobs_port_new(one, NULL, 0), *loop = gw_jobs_port_new(one, base, 0);
	struct counts c1, c2, c3, probes;
	int gate = 0, gate1 = 0, gate2 = 0;
	struct tjob *b1 = tjob_new(&c1, 0), *b2 = tjob_new(&c2, 0);

	memset(&c1, 0, sizeof c1);
	memset(&c2, 0, sizeof c2);
	memset(&c3, 0, sizeof c3);
	memset(&probes, 0, sizeof probes);
	BEGIN_CASE("freeing ports with jobs queued and running: each done() once, nothing after");
	b1->gate = &gate1;
	b2->gate = &gate2;
	b2->check_loop = 1;
	b2->loop = pthread_self();
	CHECK(gw_jobs_submit(plain, &b1->job) == 0 && gw_jobs_submit(loop, &b2->job) == 0, "blockers");
	CHECK(wait_for(&c1.started, 1), "the one thread runs the first");
	for (int i = 0; i < 30; i++) {
		struct tjob *t = tjob_new(&c1, 2000);
		CHECK(gw_jobs_submit(plain, &t->job) == 0, "plain %d", i);
		t = tjob_new(&c2, 2000);
		t->check_loop = 1;
		t->loop = pthread_self();
		CHECK(gw_jobs_submit(loop, &t->job) == 0, "loop %d", i);
	}
	free_while_blocked(plain, &gate1, &probes);
	/* the thread goes on with loop's first job (waiting on gate2) */
	free_while_blocked(loop, &gate2, &probes);   /* this thread is loop's: done() runs here */
	CHECK(c1.ok == 1 && c1.cancelled == 30 && c2.ok == 1 && c2.cancelled == 30,
	    "the running ones finished, the queued ones were cancelled: %d+%d %d+%d", c1.ok, c1.cancelled,
	    c2.ok, c2.cancelled);
	CHECK(c1.ran == 1 && c2.ran == 1 && probes.ran == 0 && probes.ok == 0, "nothing else ran: %d %d %d",
	    c1.ran, c2.ran, probes.ran);
	CHECK(c2.wrong == 0, "loop port's done() on its thread");
	usleep(20000);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(c1.ok + c1.cancelled == 31 && c2.ok + c2.cancelled == 31, "nothing after the free");
	gw_jobs_free(one);
	END_CASE();

	BEGIN_CASE("freeing the pool with a port left: running finish, queued cancelled");
	plain = gw_jobs_port_new(pool, NULL, 0);
	struct tjob *blocker = tjob_new(&c3, 0);
	blocker->gate = &gate;
	CHECK(gw_jobs_submit(plain, &blocker->job) == 0, "blocker");
	blocker = tjob_new(&c3, 0);
	blocker->gate = &gate;
	CHECK(gw_jobs_submit(plain, &blocker->job) == 0, "blocker 2");
	CHECK(wait_for(&c3.started, 2), "both threads busy");
	for (int i = 0; i < 10; i++) {
		struct tjob *t = tjob_new(&c3, 0);
		CHECK(gw_jobs_submit(plain, &t->job) == 0, "queued %d", i);
	}
	open_gate(&gate);
	gw_jobs_free(pool);
	CHECK(c3.ok + c3.cancelled == 12 && c3.ran == c3.ok && c3.ok >= 2, "all answered once: ok %d "
	    "cancelled %d ran %d", c3.ok, c3.cancelled, c3.ran);
	struct tjob *late = tjob_new(&c3, 0);
	CHECK(gw_jobs_submit(plain, &late->job) == -1, "a detached port refuses");
	free(late);
	gw_jobs_port_free(plain);
	event_base_free(base);
	END_CASE();
}

/* ---- cancellation ---- */

static void test_cancel(void)
{
	struct gw_jobs *pool = gw_jobs_new(1, 0);
	struct event_base *base = event_base_new();
	struct gw_jobs_port *port = gw_jobs_port_new(pool, base, 0);
	struct counts c;
	int gate = 0, calls = 0;
	struct tjob *running, *queued, *kept;
	int *req_running = malloc(sizeof(int)), *req_queued = malloc(sizeof(int)), kept_req = 0;

	memset(&c, 0, sizeof c);
	BEGIN_CASE("a cancelled requester is never called back (running or queued)");
	running = tjob_new(&c, 0);
	running->gate = &gate;
	running->requester = req_running;
	running->requester_calls = &calls;
	queued = tjob_new(&c, 0);
	queued->requester = req_queued;
	queued->requester_calls = &calls;
	kept = tjob_new(&c, 0);
	kept->requester = &kept_req;
	kept->requester_calls = &calls;
	CHECK(gw_jobs_submit(port, &running->job) == 0 && gw_jobs_submit(port, &queued->job) == 0 &&
	    gw_jobs_submit(port, &kept->job) == 0, "queued");
	CHECK(wait_for(&c.started, 1), "first one running");
	/* the requesters go away (on the loop's thread): cancel, then free them */
	gw_jobs_cancel(&running->job);
	gw_jobs_cancel(&queued->job);
	free(req_running);
	free(req_queued);
	open_gate(&gate);
	for (int i = 0; i < 20000 && c.ok + c.cancelled < 3; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK(c.cancelled == 2 && c.ok == 1, "two cancelled, one answered: %d %d", c.cancelled, c.ok);
	CHECK(calls == 1 && kept_req == 1, "only the live requester was called back (%d)", calls);
	CHECK(c.ran == 2, "the queued cancelled one did not run; the running one finished: %d", c.ran);
	gw_jobs_port_free(port);
	gw_jobs_free(pool);
	event_base_free(base);
	END_CASE();
}

/* ---- drain ---- */

static void test_drain(void)
{
	struct gw_jobs *pool = gw_jobs_new(2, 0);
	struct event_base *base = event_base_new();
	struct gw_jobs_port *port = gw_jobs_port_new(pool, base, 0);
	struct counts c;

	memset(&c, 0, sizeof c);
	BEGIN_CASE("drain runs the queued ones and answers all on the caller's thread");
	for (int i = 0; i < 8; i++) {
		struct tjob *t = tjob_new(&c, 3000);
		t->check_loop = 1;
		t->loop = pthread_self();
		CHECK(gw_jobs_submit(port, &t->job) == 0, "queued %d", i);
	}
	gw_jobs_port_drain(port);   /* the loop never ran: drain delivers itself */
	CHECK(c.ok == 8 && c.ran == 8 && c.cancelled == 0 && c.wrong == 0, "all run and answered here: %d %d",
	    c.ok, c.ran);
	gw_jobs_port_free(port);
	gw_jobs_free(pool);
	event_base_free(base);
	END_CASE();
}

/* ---- periodic ---- */

static _Atomic int ticks, tick_on_loop;
static pthread_t loop_thread;

static void tick(void *arg)
{
	(void)arg;
	if (pthread_equal(pthread_self(), loop_thread))
		atomic_fetch_add(&tick_on_loop, 1);
	atomic_fetch_add(&ticks, 1);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (atomic_load(&ticks) >= 3)
		event_base_loopbreak(arg);
}

static void test_every(void)
{
	struct gw_jobs *pool = gw_jobs_new(2, 0);
	struct event_base *base = event_base_new();
	struct gw_jobs_every *e;
	struct event *stop = event_new(base, -1, EV_PERSIST, stop_cb, base);
	struct timeval ms = { 0, 2000 };
	int n;

	BEGIN_CASE("a periodic job runs off the loop until freed");
	loop_thread = pthread_self();
	e = gw_jobs_every_new(pool, base, 0.01, tick, NULL);
	CHECK(e != NULL, "made");
	event_add(stop, &ms);
	event_base_dispatch(base);
	CHECK(atomic_load(&ticks) >= 3 && tick_on_loop == 0, "ran %d times, off the loop", atomic_load(&ticks));
	gw_jobs_every_free(e);
	n = atomic_load(&ticks);
	usleep(30000);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(atomic_load(&ticks) == n, "stopped");
	event_free(stop);
	gw_jobs_free(pool);
	event_base_free(base);
	END_CASE();
}

/* ---- the process pool ---- */

static void test_shared(void)
{
	BEGIN_CASE("the process pool: start, shared, stop");
	CHECK(gw_jobs_shared() == NULL, "none before the start");
	CHECK(gw_jobs_start(GW_JOBS_THREADS, 0) == 0 && gw_jobs_shared() != NULL, "started");
	CHECK(gw_jobs_start(GW_JOBS_THREADS, 0) == 0, "a second start keeps it");
	struct gw_jobs_port *p = gw_jobs_port_new(gw_jobs_shared(), NULL, 0);
	CHECK(p != NULL, "port");
	gw_jobs_port_free(p);
	gw_jobs_stop();
	CHECK(gw_jobs_shared() == NULL, "none after the stop");
	END_CASE();
}

int main(void)
{
	evthread_use_pthreads();
	test_loops();
	test_full();
	test_shutdown();
	test_cancel();
	test_drain();
	test_every();
	test_shared();
	libevent_global_shutdown();
	return check_done();
}
