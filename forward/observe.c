/* forward/observe: per-worker top domains and users, the DLP ring (see observe.h). */
#include "forward/observe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/snapshot.h"

struct shard {
	pthread_mutex_t lock;              /* the worker, and the console's rare reads */
	struct fwd_topk top[2];            /* allowed, blocked */
	uint32_t nusers;
	uint64_t uhash[FWD_OBS_USERS];
	struct fwd_obs_user users[FWD_OBS_USERS];
	unsigned uclients_next[FWD_OBS_USERS];   /* next client slot to overwrite */
};

/* shards[w] is set once, by worker w */
static _Atomic(struct shard *) shards[GW_MAX_WORKERS];

static pthread_mutex_t dlp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fwd_obs_dlp dlp_ring[FWD_OBS_DLP];
static uint64_t dlp_seq;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static struct shard *shard_get(int w)
{
	struct shard *s;

	if (w < 0 || w >= GW_MAX_WORKERS)
		return NULL;
	s = atomic_load_explicit(&shards[w], memory_order_acquire);
	if (s != NULL)
		return s;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	atomic_store_explicit(&shards[w], s, memory_order_release);
	return s;
}

static void user_seen(struct shard *s, const char *user, const char *client, double now)
{
	uint64_t h = hash_str(user);
	uint32_t i, old = 0;
	struct fwd_obs_user *u;

	for (i = 0; i < s->nusers; i++) {
		if (s->uhash[i] == h && strcmp(s->users[i].name, user) == 0)
			break;
		if (s->users[i].last_seen < s->users[old].last_seen)
			old = i;
	}
	if (i == s->nusers) {
		/* new: a free slot, else the one seen longest ago */
		i = s->nusers < FWD_OBS_USERS ? s->nusers++ : old;
		u = &s->users[i];
		memset(u, 0, sizeof *u);
		snprintf(u->name, sizeof u->name, "%s", user);
		u->first_seen = now;
		s->uhash[i] = h;
		s->uclients_next[i] = 0;
	}
	u = &s->users[i];
	u->last_seen = now;
	u->requests++;
	for (unsigned k = 0; k < u->nclients; k++)
		if (strcmp(u->clients[k], client) == 0)
			return;
	/* a new address: keep the most recent FWD_OBS_CLIENTS */
	snprintf(u->clients[s->uclients_next[i]], sizeof u->clients[0], "%s", client);
	s->uclients_next[i] = (s->uclients_next[i] + 1) % FWD_OBS_CLIENTS;
	if (u->nclients < FWD_OBS_CLIENTS)
		u->nclients++;
}

void fwd_obs_request(int worker, int verdict, const char *host, size_t host_len, const char *user,
    const char *client, double now)
{
	struct shard *s;

	if ((verdict != FWD_OBS_ALLOWED && verdict != FWD_OBS_BLOCKED && user == NULL) ||
	    (s = shard_get(worker)) == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if ((verdict == FWD_OBS_ALLOWED || verdict == FWD_OBS_BLOCKED) && host != NULL && host_len > 0)
		fwd_topk_add(&s->top[verdict - 1], host, host_len);
	if (user != NULL)
		user_seen(s, user, client != NULL ? client : "-", now);
	pthread_mutex_unlock(&s->lock);
}

size_t fwd_obs_top(int verdict, struct fwd_topk_item *out, size_t max)
{
	struct shard *sh[GW_MAX_WORKERS];
	const struct fwd_topk *tabs[GW_MAX_WORKERS];
	struct fwd_topk *copy;
	size_t ns = 0, n = 0, k;

	if (verdict != FWD_OBS_ALLOWED && verdict != FWD_OBS_BLOCKED)
		return 0;
	for (int w = 0; w < GW_MAX_WORKERS; w++)
		if ((sh[ns] = atomic_load_explicit(&shards[w], memory_order_acquire)) != NULL)
			ns++;
	copy = malloc((ns ? ns : 1) * sizeof *copy);
	if (copy == NULL)
		return 0;
	for (size_t w = 0; w < ns; w++) {
		struct shard *s = sh[w];
		pthread_mutex_lock(&s->lock);
		copy[n] = s->top[verdict - 1];
		pthread_mutex_unlock(&s->lock);
		tabs[n] = &copy[n];
		n++;
	}
	k = fwd_topk_merge(tabs, n, out, max);
	free(copy);
	return k;
}

static int by_last_seen(const void *a, const void *b)
{
	const struct fwd_obs_user *x = a, *y = b;

	if (x->last_seen != y->last_seen)
		return x->last_seen > y->last_seen ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Fold one worker's record of a user into out[0..*n). */
static void user_merge(struct fwd_obs_user *out, size_t *n, size_t max, const struct fwd_obs_user *u)
{
	struct fwd_obs_user *m = NULL;

	for (size_t i = 0; i < *n; i++)
		if (strcmp(out[i].name, u->name) == 0) {
			m = &out[i];
			break;
		}
	if (m == NULL) {
		if (*n < max)
			out[(*n)++] = *u;
		return;
	}
	m->requests += u->requests;
	if (u->first_seen < m->first_seen)
		m->first_seen = u->first_seen;
	if (u->last_seen > m->last_seen)
		m->last_seen = u->last_seen;
	for (unsigned k = 0; k < u->nclients; k++) {
		unsigned j;
		for (j = 0; j < m->nclients; j++)
			if (strcmp(m->clients[j], u->clients[k]) == 0)
				break;
		if (j == m->nclients && m->nclients < FWD_OBS_CLIENTS)
			memcpy(m->clients[m->nclients++], u->clients[k], sizeof m->clients[0]);
	}
}

size_t fwd_obs_users(struct fwd_obs_user *out, size_t max)
{
	struct fwd_obs_user *copy = malloc(FWD_OBS_USERS * sizeof *copy);
	size_t n = 0;

	if (copy == NULL)
		return 0;
	for (int w = 0; w < GW_MAX_WORKERS; w++) {
		struct shard *s = atomic_load_explicit(&shards[w], memory_order_acquire);
		uint32_t nu;
		if (s == NULL)
			continue;
		pthread_mutex_lock(&s->lock);
		nu = s->nusers;
		memcpy(copy, s->users, nu * sizeof *copy);
		pthread_mutex_unlock(&s->lock);
		for (uint32_t i = 0; i < nu; i++)
			user_merge(out, &n, max, &copy[i]);
	}
	free(copy);
	qsort(out, n, sizeof *out, by_last_seen);
	return n;
}

void fwd_obs_dlp_push(const struct fwd_obs_dlp *e)
{
	pthread_mutex_lock(&dlp_lock);
	dlp_ring[dlp_seq % FWD_OBS_DLP] = *e;
	dlp_seq++;
	pthread_mutex_unlock(&dlp_lock);
}

size_t fwd_obs_dlp_recent(struct fwd_obs_dlp *out, size_t max, uint64_t *total)
{
	size_t n = 0;

	pthread_mutex_lock(&dlp_lock);
	for (uint64_t s = dlp_seq; s > 0 && n < max && dlp_seq - s < FWD_OBS_DLP; s--)
		out[n++] = dlp_ring[(s - 1) % FWD_OBS_DLP];
	if (total != NULL)
		*total = dlp_seq;
	pthread_mutex_unlock(&dlp_lock);
	return n;
}
