/*
 * core/jobs: the one small pool of threads for work that must not run on an
 * event loop (password hashing for forward auth and the console, the cache
 * sweeper; next, certificate minting).  A worker loop or the main loop hands
 * a job over and goes on; the job's result comes back to the submitter.
 *
 *   pool  (struct gw_jobs): a few threads (GW_JOBS_THREADS) and a bounded
 *         queue.  The process has one, started by core/main.c at boot
 *         (gw_jobs_start) and stopped at exit (gw_jobs_stop); unit tests and
 *         tools may make their own (gw_jobs_new).
 *   port  (struct gw_jobs_port): one submitter's queue on a pool and the
 *         place its completions go.  A port made with an event_base delivers
 *         done() on that base's loop thread (event_active on the port's
 *         event, the same hand-back the console's helper thread used); a port
 *         without a base calls done() on the pool thread right after run(),
 *         for submitters that hand back by their own means (a deferred
 *         request's gw_req_wake(), core/proto.h) or need no answer.  The
 *         pool takes the ports with queued jobs in turn, one job each, so a
 *         burst of one submitter (sign-ins through the proxy) delays another
 *         (a console sign-in, the sweeper) by at most one job per thread.
 *   job   (struct gw_job): embedded by the submitter in a struct of its own.
 *
 * Ownership and cancellation (no use after free, whoever goes first):
 *   - from gw_jobs_submit() returning 0 until done() is called, the job
 *     belongs to the pool: the submitter must neither free nor reuse it.
 *     done(job, result) is called exactly once; from then on the job (and
 *     the struct around it) is the submitter's again.
 *   - a requester that goes away (a client that closed, a snapshot being
 *     freed) must not be reached from run(): run() works on what the job
 *     holds.  It calls gw_jobs_cancel(job): a job still queued is then not
 *     run, and done() gets GW_JOB_CANCELLED, which must only release the job
 *     and not call back into the requester.  On a loop port, cancelling on
 *     the loop's thread guarantees done() sees GW_JOB_CANCELLED even when
 *     run() already ran.  (Cancelling is a flag: done() still comes, so the
 *     job's memory always has one owner.)
 *   - gw_jobs_port_free() cancels the port's queued jobs, waits for the
 *     ones running and delivers every done() before it returns: after it,
 *     nothing of that port runs or calls back.
 *
 * Threads: gw_jobs_submit() and gw_jobs_cancel() from any thread;
 * gw_jobs_port_new/drain/free of a loop port on its loop's thread (or once
 * that loop no longer runs).  run() and done() must never free or drain
 * their own port, and must not block for long (done on a pool thread holds
 * that thread).
 */
#ifndef GW_JOBS_H
#define GW_JOBS_H

#include <stdatomic.h>
#include <stddef.h>

struct event_base;

#define GW_JOBS_THREADS 2          /* the process pool's threads */
#define GW_JOBS_QUEUE 8192         /* ... and its queue bound (all ports together) */
#define GW_JOBS_MAX_THREADS 16

/* done()'s result. */
#define GW_JOB_DONE 0              /* run() ran */
#define GW_JOB_CANCELLED (-1)      /* cancelled, or dropped before it ran (port freed, pool stopped) */

struct gw_jobs;
struct gw_jobs_port;

struct gw_job {
	/* filled by the submitter before gw_jobs_submit() */
	void (*run)(struct gw_job *job);                /* a pool thread; may take a while */
	void (*done)(struct gw_job *job, int result);   /* see the port; owns job from then on */
	/* private (the pool) */
	struct gw_job *next;
	struct gw_jobs_port *port;
	_Atomic int cancelled;
};

/* ---- pools ---- */

/* A pool of nthreads (1..GW_JOBS_MAX_THREADS) threads and a queue of at most
 * max_queue jobs (0 = GW_JOBS_QUEUE).  NULL on failure (nothing started). */
struct gw_jobs *gw_jobs_new(int nthreads, size_t max_queue);
/*
 * Stop: jobs being run finish (and, on ports without a loop, their done()
 * runs), then the threads are joined.  Ports should be freed first; the
 * queued jobs of any port left are cancelled here (done(GW_JOB_CANCELLED)
 * on this thread) and the port is detached (gw_jobs_port_free() then only
 * delivers and frees).  NULL is fine.
 */
void gw_jobs_free(struct gw_jobs *p);

/* The process pool: started once at boot (0, or -1 if no thread could be
 * started), stopped at exit after every snapshot and the console are gone
 * (main registers gw_jobs_stop with atexit()).  gw_jobs_shared() is NULL
 * before the start and after the stop. */
int gw_jobs_start(int nthreads, size_t max_queue);
void gw_jobs_stop(void);
struct gw_jobs *gw_jobs_shared(void);

/* ---- ports ---- */

/*
 * A port on pool p.  base: done() runs on that loop's thread (NULL: on the
 * pool thread, right after run()).  max_queued: at most that many of the
 * port's jobs wait at once (0 = only the pool's bound).  NULL on failure.
 */
struct gw_jobs_port *gw_jobs_port_new(struct gw_jobs *p, struct event_base *base, size_t max_queued);
/*
 * Queue job (run and done set; its private part is overwritten).  Returns
 * 0, or -1 at once when the port's or the pool's queue is full or the pool
 * or port is stopping: done() is then not called and the job stays the
 * caller's (it answers as it does when busy).
 */
int gw_jobs_submit(struct gw_jobs_port *port, struct gw_job *job);
/* Nobody waits for job's answer any more (see the header comment).  Any
 * thread; only between a successful submit and done(). */
void gw_jobs_cancel(struct gw_job *job);
/* Wait until every job submitted to port so far has run (queued ones are
 * run, not cancelled), and call their done() now, on this thread.  For a
 * submitter that must answer everyone before it stops (the console's
 * suspended connections before its daemon stops). */
void gw_jobs_port_drain(struct gw_jobs_port *port);
/* Cancel the queued jobs, wait for the running ones, call every done()
 * still owed (here, on this thread), and free the port.  NULL is fine. */
void gw_jobs_port_free(struct gw_jobs_port *port);

/* ---- periodic jobs ---- */

struct gw_jobs_every;

/*
 * Every interval seconds, a timer on base (that loop's thread) hands
 * run(arg) to pool p; a tick is skipped while the previous run is queued or
 * running.  For housekeeping that must not stall a loop and needs no answer
 * (the cache sweeper).  NULL on failure.
 */
struct gw_jobs_every *gw_jobs_every_new(struct gw_jobs *p, struct event_base *base, double interval,
    void (*run)(void *arg), void *arg);
/* Stop the timer and wait for a run in flight (base's thread).  NULL is fine. */
void gw_jobs_every_free(struct gw_jobs_every *e);

#endif
