/*
 * cluster/cluster: the Redis client of the HA pair (see cluster.h).
 *
 * hiredis 0.14.1 rules this file follows (Debian 12's; see its README and
 * async.c): an async context is freed by hiredis itself after its
 * disconnect callback, and after a failed connect without any disconnect
 * callback, so both callbacks forget the pointer and never touch it again;
 * every pending reply callback runs with a NULL reply when a context goes
 * away; there are no connect or command timeouts, so a timer of ours
 * watches both; and a context is never freed from inside one of its own
 * callbacks (the adapter frees its events at once): failures only mark the
 * state and a deferred event does the freeing from a clean stack.
 */
#include "cluster/cluster.h"
#include "cluster/sync.h"

#include <stdarg.h>
#include <stdint.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/log.h"
#include "core/snapshot.h"
#include "forward/auth.h"
#include "forward/forward.h"
#include "reverse/cache_glue.h"
#include "reverse/ratelimit.h"
#include "reverse/reverse.h"

#define CLU_TICK_US 100000         /* rate-limit sync and the command watch */
#define CLU_TIMEOUT 2.0            /* connect, and the oldest unanswered command */
#define CLU_BACKOFF_MIN 0.2
#define CLU_BACKOFF_MAX 2.0
#define CLU_QUEUE_MAX 256          /* changes kept while Redis is away */
#define CLU_RL_BATCH 512
#define CLU_SERVERS_TTL_MS "2592000000"   /* 30 days */
#define CLU_BO_BATCH 256

/* A client's failed sign-ins across the pair: added, kept for the local
 * forget time, and announced to the other nodes once it refuses anyone
 * (ARGV[3] failures): they learn it before the client turns to them. */
static const char bo_script[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "if v >= tonumber(ARGV[3]) then redis.call('PUBLISH', KEYS[2], ARGV[4] .. v) end return v";

/* INCRBY and its expiry in one step: a counter never outlives its window */
static const char rl_script[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return v";

enum { CMD, SUB };

struct queued {
	char *field, *value;       /* HSET PREFIX"servers" field value (NULL: a purge) */
	char *msg;                 /* PUBLISH PREFIX"events" msg */
};

struct bo_pending {
	struct fwd_auth_backoff *b;    /* the table it was collected from */
	uint8_t key[16];
};

struct rl_pending {
	struct rev_rl *rl;         /* the table it was collected from */
	uint8_t key[32];
	size_t klen;
	uint32_t taken;
};

static struct {
	struct event_base *base;
	int subscribed;            /* to reloads */
	int enabled;
	char host[64];
	int port;
	char prefix[64];
	char password[256];        /* cluster.redis_password_file's line ("" = none) */
	redisAsyncContext *ac[2];
	int connected[2];          /* CMD: connected; SUB: subscribed */
	int up;
	int failing;               /* cleanup scheduled */
	int down_logged;
	double connect_started;
	double backoff;
	struct event *ev_tick, *ev_retry, *ev_cleanup;
	unsigned outstanding;      /* CMD replies awaited */
	double progress;           /* when a CMD reply last came (or the first was sent) */
	struct queued queue[CLU_QUEUE_MAX];
	size_t nqueue;
	struct rev_rl_delta rl_buf[CLU_RL_BATCH];
	struct fwd_auth_bo_delta bo_buf[CLU_BO_BATCH];
	struct clu_status st;
} C;

static void connect_all(void);
static struct fwd_auth_backoff *backoff_table(void);
static int unhex(uint8_t *out, size_t n, const char *s);

/* ---- failure and reconnection ---- */

static void went_down(const char *why)
{
	snprintf(C.st.last_error, sizeof C.st.last_error, "%s", why);
	if (C.up || !C.down_logged) {
		gw_warn("cluster: Redis %s:%d unreachable (%s): rate limits and sign-in backoff count per node, "
		    "and drain/disable and purges stay on this node until it is back", C.host, C.port, why);
		C.down_logged = 1;
		C.st.outages++;
		C.st.since = gw_wall_now();
	}
	C.up = 0;
	C.st.up = 0;
}

/* Mark a failure; the deferred cleanup frees the contexts and schedules the
 * reconnection.  gone: a context hiredis is freeing itself (or NULL). */
static void fail(const redisAsyncContext *gone, const char *why)
{
	for (int i = 0; i < 2; i++)
		if (C.ac[i] == gone) {
			C.ac[i] = NULL;
			C.connected[i] = 0;
		}
	if (C.failing)
		return;
	went_down(why);
	C.failing = 1;
	event_active(C.ev_cleanup, EV_TIMEOUT, 0);
}

static void drop_contexts(void)
{
	for (int i = 0; i < 2; i++) {
		redisAsyncContext *ac = C.ac[i];
		C.ac[i] = NULL;
		C.connected[i] = 0;
		if (ac != NULL)
			redisAsyncFree(ac);   /* pending callbacks run with NULL replies */
	}
	C.outstanding = 0;
}

static void cleanup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv;

	(void)fd;
	(void)what;
	(void)arg;
	drop_contexts();
	C.failing = 0;
	if (!C.enabled)
		return;
	tv.tv_sec = (time_t)C.backoff;
	tv.tv_usec = (suseconds_t)((C.backoff - (double)tv.tv_sec) * 1e6);
	evtimer_add(C.ev_retry, &tv);
	C.backoff = C.backoff * 2 > CLU_BACKOFF_MAX ? CLU_BACKOFF_MAX : C.backoff * 2;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (C.enabled && C.ac[CMD] == NULL && C.ac[SUB] == NULL && !C.failing)
		connect_all();
}

/* ---- applying the other nodes' changes ---- */

static void apply_server(const char *field, const char *value, int quiet_if_same)
{
	char buf[512], *addr;
	int state = strcmp(value, "up") == 0 ? REV_STATE_UP : strcmp(value, "draining") == 0 ?
	    REV_STATE_DRAINING : strcmp(value, "disabled") == 0 ? REV_STATE_DISABLED : -1;

	if (state < 0 || snprintf(buf, sizeof buf, "%s", field) >= (int)sizeof buf ||
	    (addr = strchr(buf, '\t')) == NULL) {
		gw_warn("cluster: ignoring a malformed server state (\"%s\" = \"%s\")", field, value);
		return;
	}
	*addr++ = '\0';
	if (quiet_if_same) {
		size_t n = rev_servers_info(NULL, 0);
		struct rev_server_info *v = n ? calloc(n, sizeof *v) : NULL;
		int same = 0;
		n = v != NULL ? rev_servers_info(v, n) : 0;
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].upstream, buf) == 0 && strcmp(v[i].address, addr) == 0)
				same = v[i].admin == state;
		free(v);
		if (same)
			return;
	}
	if (rev_server_set_admin_state(buf, addr, state) == 0) {
		C.st.events_in++;
		gw_info("cluster: %s %s set to %s by the pair", buf, addr, value);
	}
}

/* "NODE\tS\tupstream\taddress\tstate" or "NODE\tP\turl|prefix\tvalue" */
static void apply_message(const char *msg, size_t len)
{
	char buf[1024], *kind, *a, *b;

	if (len >= sizeof buf)
		return;
	memcpy(buf, msg, len);
	buf[len] = '\0';
	if ((kind = strchr(buf, '\t')) == NULL)
		return;
	*kind++ = '\0';
	if (strcmp(buf, C.st.node) == 0)
		return;                /* our own */
	if ((a = strchr(kind, '\t')) == NULL)
		return;
	*a++ = '\0';
	if (strcmp(kind, "S") == 0) {
		char *st = strrchr(a, '\t');
		if (st == NULL || st == a)
			return;
		*st++ = '\0';
		apply_server(a, st, 0);
	} else if (strcmp(kind, "B") == 0 || strcmp(kind, "R") == 0) {
		/* "B\tkey\ttotal": a client's failed sign-ins; "R\tkey": cleared */
		uint8_t key[16];
		char *t = strchr(a, '\t');
		int reset = kind[0] == 'R';
		if (t != NULL)
			*t++ = '\0';
		if (unhex(key, sizeof key, a) < 0 || (!reset && t == NULL))
			return;
		if (fwd_auth_backoff_remote(backoff_table(), key, reset ? 0 : (unsigned)strtoul(t, NULL, 10), reset,
		    gw_mono_now()))
			C.st.bo_in++;
	} else if (strcmp(kind, "P") == 0 && (b = strchr(a, '\t')) != NULL) {
		int n;
		*b++ = '\0';
		n = strcmp(a, "url") == 0 ? rev_cache_purge_url(b) : rev_cache_purge_prefix(b);
		C.st.events_in++;
		gw_info("cluster: cache purge of %s %s from the pair: %d removed", a, b, n);
	}
}

/* ---- replies ---- */

static void cmd_done(void)
{
	if (C.outstanding > 0)
		C.outstanding--;
	C.progress = gw_wall_now();
}

static int reply_ok(const redisReply *r, const char *what)
{
	static double last_log;

	if (r == NULL)
		return 0;              /* the context went away: nothing to do */
	if (r->type == REDIS_REPLY_ERROR) {
		if (gw_wall_now() - last_log > 10) {
			gw_warn("cluster: Redis refused %s: %s", what, r->str);
			last_log = gw_wall_now();
		}
		return 0;
	}
	return 1;
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	cmd_done();
	reply_ok(reply, "a command");
}

static void rl_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rl_pending *p = priv;
	const redisReply *r = reply;

	(void)ac;
	cmd_done();
	if (reply_ok(r, "a rate-limit counter") && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 &&
	    p->rl == rev_rate_table())
		C.st.rl_charged += rev_rl_remote(p->rl, p->key, p->klen, (uint64_t)r->integer, p->taken);
	free(p);
}

static void bo_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bo_pending *p = priv;
	const redisReply *r = reply;

	(void)ac;
	cmd_done();
	if (reply_ok(r, "a sign-in failure counter") && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 &&
	    r->integer <= 1000000 && p->b == backoff_table())
		fwd_auth_backoff_remote(p->b, p->key, (unsigned)r->integer, 0, gw_mono_now());
	free(p);
}

static void servers_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;

	(void)ac;
	(void)priv;
	cmd_done();
	if (!reply_ok(r, "HGETALL servers") || r->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING)
			apply_server(r->element[i]->str, r->element[i + 1]->str, 1);
}

static int command(redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (!C.up || C.ac[CMD] == NULL)
		return -1;
	va_start(ap, fmt);
	rc = redisvAsyncCommand(C.ac[CMD], fn, priv, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return -1;
	if (C.outstanding++ == 0)
		C.progress = gw_wall_now();
	return 0;
}

/* ---- publishing ---- */

static void queue_free(struct queued *q)
{
	free(q->field);
	free(q->value);
	free(q->msg);
	memset(q, 0, sizeof *q);
}

static void send_change(const char *field, const char *value, const char *msg)
{
	if (field != NULL) {
		command(ignore_reply, NULL, "HSET %sservers %s %s", C.prefix, field, value);
		command(ignore_reply, NULL, "PEXPIRE %sservers " CLU_SERVERS_TTL_MS, C.prefix);
	}
	command(ignore_reply, NULL, "PUBLISH %sevents %s", C.prefix, msg);
	C.st.events_out++;
}

static void change(const char *field, const char *value, const char *msg)
{
	struct queued *q;

	if (!C.enabled)
		return;
	if (C.up) {
		send_change(field, value, msg);
		return;
	}
	if (C.nqueue == CLU_QUEUE_MAX) {
		gw_warn("cluster: %d changes wait for Redis; the oldest is dropped", CLU_QUEUE_MAX);
		queue_free(&C.queue[0]);
		memmove(&C.queue[0], &C.queue[1], (CLU_QUEUE_MAX - 1) * sizeof C.queue[0]);
		C.nqueue--;
	}
	q = &C.queue[C.nqueue];
	q->field = field != NULL ? strdup(field) : NULL;
	q->value = value != NULL ? strdup(value) : NULL;
	q->msg = strdup(msg);
	if (q->msg == NULL || (field != NULL && (q->field == NULL || q->value == NULL))) {
		queue_free(q);
		gw_error("cluster: out of memory; a change is not passed on");
		return;
	}
	C.nqueue++;
	C.st.queued = C.nqueue;
}

static int clean_arg(const char *s)
{
	return s != NULL && strpbrk(s, "\t\r\n") == NULL;
}

void clu_server_state(const char *upstream, const char *address, int state)
{
	char field[400], msg[600];
	const char *v = state == REV_STATE_DRAINING ? "draining" : state == REV_STATE_DISABLED ? "disabled" : "up";

	if (!C.enabled || !clean_arg(upstream) || !clean_arg(address))
		return;
	snprintf(field, sizeof field, "%s\t%s", upstream, address);
	snprintf(msg, sizeof msg, "%s\tS\t%s\t%s", C.st.node, field, v);
	change(field, v, msg);
}

void clu_purge(int by_url, const char *what)
{
	char msg[1200];

	if (!C.enabled || !clean_arg(what) || strlen(what) > 1000)
		return;
	snprintf(msg, sizeof msg, "%s\tP\t%s\t%s", C.st.node, by_url ? "url" : "prefix", what);
	change(NULL, NULL, msg);
}

/* ---- connection ---- */

static void came_up(void)
{
	C.up = 1;
	C.st.up = 1;
	C.st.since = gw_wall_now();
	C.backoff = CLU_BACKOFF_MIN;
	evtimer_del(C.ev_retry);
	gw_info("cluster: Redis %s:%d reachable%s", C.host, C.port, C.down_logged ? " again" : "");
	C.down_logged = 0;
	/* ours first, then everyone's: what changed here while away wins */
	for (size_t i = 0; i < C.nqueue; i++) {
		send_change(C.queue[i].field, C.queue[i].value, C.queue[i].msg);
		queue_free(&C.queue[i]);
	}
	C.nqueue = 0;
	C.st.queued = 0;
	command(servers_reply, NULL, "HGETALL %sservers", C.prefix);
}

static void sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;

	(void)priv;
	if (r == NULL || ac != C.ac[SUB])
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		C.connected[SUB] = 1;
		if (C.connected[CMD] && !C.up)
			came_up();
	} else if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
		apply_message(r->element[2]->str, r->element[2]->len);
	}
}

/* Connection i is connected (and authenticated): the command one is ready,
 * the other subscribes. */
static void ready(int i)
{
	if (i == SUB) {
		if (redisAsyncCommand(C.ac[SUB], sub_reply, NULL, "SUBSCRIBE %sevents", C.prefix) != REDIS_OK)
			fail(NULL, "cannot subscribe");
		return;
	}
	C.connected[CMD] = 1;
	if (C.connected[SUB] && !C.up)
		came_up();
}

static void auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;
	int i = ac == C.ac[CMD] ? CMD : ac == C.ac[SUB] ? SUB : -1;
	char why[200];

	(void)priv;
	if (r == NULL || i < 0)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof why, "AUTH refused: %s", r->str);
		fail(NULL, why);
		return;
	}
	ready(i);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	int i = ac == C.ac[CMD] ? CMD : ac == C.ac[SUB] ? SUB : -1;

	if (i < 0)
		return;
	if (status != REDIS_OK) {
		fail(ac, ac->errstr[0] ? ac->errstr : "connect failed");   /* hiredis frees ac */
		return;
	}
	if (C.password[0]) {
		/* the first command on either connection; ready once it is accepted */
		if (redisAsyncCommand(C.ac[i], auth_reply, NULL, "AUTH %s", C.password) != REDIS_OK)
			fail(NULL, "cannot send AUTH");
		return;
	}
	ready(i);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	if (ac != C.ac[CMD] && ac != C.ac[SUB])
		return;                /* one we dropped ourselves */
	fail(ac, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void connect_all(void)
{
	C.connect_started = gw_wall_now();
	for (int i = 0; i < 2; i++) {
		redisAsyncContext *ac = redisAsyncConnect(C.host, C.port);
		if (ac == NULL || ac->err) {
			char why[160];
			snprintf(why, sizeof why, "%s", ac != NULL ? ac->errstr : "out of memory");
			if (ac != NULL)
				redisAsyncFree(ac);
			fail(NULL, why);
			return;
		}
		C.ac[i] = ac;
		if (redisLibeventAttach(ac, C.base) != REDIS_OK) {
			fail(NULL, "cannot attach to the event loop");
			return;
		}
		redisAsyncSetConnectCallback(ac, on_connect);
		redisAsyncSetDisconnectCallback(ac, on_disconnect);
	}
}

/* ---- the tick: rate-limit sync, timeouts ---- */

static void hex(char *out, const uint8_t *p, size_t n)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sync_rate_limits(void)
{
	struct rev_rl *rl = rev_rate_table();
	size_t n;

	if (rl == NULL)
		return;
	/* collected even while Redis is away: those counts are not replayed */
	do {
		n = rev_rl_collect(rl, C.rl_buf, CLU_RL_BATCH);
		for (size_t i = 0; i < n && C.up; i++) {
			const struct rev_rl_delta *d = &C.rl_buf[i];
			struct rl_pending *p = malloc(sizeof *p);
			char key[2 * sizeof d->key + 1];
			double refill = d->rps > 0 ? d->burst / d->rps : 1;
			long long ttl = (long long)(2000 * (refill < 1 ? 1 : refill > 86400 ? 86400 : refill));
			if (p == NULL)
				break;
			p->rl = rl;
			memcpy(p->key, d->key, d->klen);
			p->klen = d->klen;
			p->taken = d->taken;
			hex(key, d->key, d->klen);
			if (command(rl_reply, p, "EVAL %s 1 %srl:%s %u %lld", rl_script, C.prefix, key,
			    (unsigned)d->taken, ttl) < 0) {
				free(p);
				break;
			}
			C.st.rl_sent++;
		}
	} while (n == CLU_RL_BATCH);
}

static int unhex(uint8_t *out, size_t n, const char *s)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] << 4 | v : v);
	}
	return 0;
}

/* The forward side's sign-in backoff of the current generation (NULL
 * without forward.auth). */
static struct fwd_auth_backoff *backoff_table(void)
{
	const struct gw_snapshot *s = gw_control_snapshot();

	for (int i = 0; s != NULL && i < s->nsides; i++)
		if (s->sides[i] == &fwd_side)
			return fwd_side_backoff(s->side_data[i]);
	return NULL;
}

/* Failed Basic sign-ins: add this node's to the pair's count per client
 * (key: the table's shared keyed digest, never an address or a name). */
static void sync_backoff(void)
{
	struct fwd_auth_backoff *b = backoff_table();
	char ttl[32], head[64];
	size_t n;

	if (b == NULL)
		return;
	snprintf(ttl, sizeof ttl, "%lld", (long long)(FWD_AUTH_FORGET_AFTER * 1000));
	/* collected even while Redis is away: those counts are not replayed */
	do {
		n = fwd_auth_backoff_collect(b, C.bo_buf, CLU_BO_BATCH);
		for (size_t i = 0; i < n && C.up; i++) {
			const struct fwd_auth_bo_delta *d = &C.bo_buf[i];
			char key[2 * sizeof d->key + 1];
			struct bo_pending *p;
			hex(key, d->key, sizeof d->key);
			if (d->reset) {
				snprintf(head, sizeof head, "%s\tR\t%s", C.st.node, key);
				command(ignore_reply, NULL, "DEL %sab:%s", C.prefix, key);
				command(ignore_reply, NULL, "PUBLISH %sevents %s", C.prefix, head);
			}
			if (d->added == 0)
				continue;
			if ((p = malloc(sizeof *p)) == NULL)
				break;
			p->b = b;
			memcpy(p->key, d->key, sizeof p->key);
			snprintf(head, sizeof head, "%s\tB\t%s\t", C.st.node, key);
			if (command(bo_reply, p, "EVAL %s 2 %sab:%s %sevents %u %s %d %s", bo_script, C.prefix, key,
			    C.prefix, d->added, ttl, FWD_AUTH_FREE_FAILURES, head) < 0) {
				free(p);
				break;
			}
			C.st.bo_sent++;
		}
	} while (n == CLU_BO_BATCH);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = gw_wall_now();

	(void)fd;
	(void)what;
	(void)arg;
	if (!C.enabled)
		return;
	if (!C.up && (C.ac[CMD] != NULL || C.ac[SUB] != NULL) && !C.failing &&
	    now - C.connect_started > CLU_TIMEOUT)
		fail(NULL, "no connection within 2 s");
	else if (C.up && C.outstanding > 0 && now - C.progress > CLU_TIMEOUT)
		fail(NULL, "no answer within 2 s");
	sync_rate_limits();
	sync_backoff();
}

/* ---- life cycle ---- */

static void configure(const struct conf_cluster *cl)
{
	int en = cl->present && cl->redis_enabled;

	const char *pw = cl->redis_password != NULL ? cl->redis_password : "";

	if (en == C.enabled && (!en || (strcmp(C.host, cl->redis.host) == 0 && C.port == cl->redis.port &&
	    strcmp(C.prefix, cl->redis_prefix) == 0 && strcmp(C.password, pw) == 0)))
		return;
	evtimer_del(C.ev_retry);
	drop_contexts();
	if (C.up)
		gw_info("cluster: leaving Redis %s:%d", C.host, C.port);
	C.up = 0;
	C.st.up = 0;
	C.down_logged = 0;
	C.enabled = en;
	C.st.configured = en;
	for (size_t i = 0; i < C.nqueue; i++)
		queue_free(&C.queue[i]);
	C.nqueue = 0;
	C.st.queued = 0;
	if (!en) {
		C.st.address[0] = '\0';
		return;
	}
	snprintf(C.host, sizeof C.host, "%s", cl->redis.host);
	C.port = cl->redis.port;
	snprintf(C.prefix, sizeof C.prefix, "%s", cl->redis_prefix);
	snprintf(C.password, sizeof C.password, "%s", pw);
	snprintf(C.st.address, sizeof C.st.address, "%s", cl->redis.text);
	C.backoff = CLU_BACKOFF_MIN;
	connect_all();
}

static void reloaded(int rc, const struct gw_snapshot *s, void *arg)
{
	(void)arg;
	if (rc != 0 || C.base == NULL)
		return;
	configure(&s->conf->cluster);
	clu_sync_configure(C.base, s);
	clu_sync_reloaded();
}

int clu_start(struct event_base *base, const struct gw_snapshot *s)
{
	static const struct timeval tick = { 0, CLU_TICK_US };
	uint64_t id;

	C.base = base;
	if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
		id = (uint64_t)gw_wall_now() ^ (uint64_t)(uintptr_t)&C;
	snprintf(C.st.node, sizeof C.st.node, "%016llx", (unsigned long long)id);
	C.ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	C.ev_retry = evtimer_new(base, retry_cb, NULL);
	C.ev_cleanup = event_new(base, -1, 0, cleanup_cb, NULL);
	if (C.ev_tick == NULL || C.ev_retry == NULL || C.ev_cleanup == NULL) {
		clu_stop();
		gw_error("cluster: out of memory; this node runs alone");
		return -1;
	}
	event_add(C.ev_tick, &tick);
	if (!C.subscribed && gw_control_subscribe(reloaded, NULL) == 0)
		C.subscribed = 1;
	configure(&s->conf->cluster);
	clu_sync_configure(base, s);
	return 0;
}

void clu_stop(void)
{
	int subscribed = C.subscribed;

	C.enabled = 0;
	clu_sync_stop();
	drop_contexts();
	for (size_t i = 0; i < C.nqueue; i++)
		queue_free(&C.queue[i]);
	if (C.ev_tick != NULL)
		event_free(C.ev_tick);
	if (C.ev_retry != NULL)
		event_free(C.ev_retry);
	if (C.ev_cleanup != NULL)
		event_free(C.ev_cleanup);
	memset(&C, 0, sizeof C);
	C.subscribed = subscribed;   /* the subscription outlives a stop */
	C.base = NULL;
}

void clu_status(struct clu_status *out)
{
	*out = C.st;
}
