/*
 * forward/icap_svc: a snapshot's ICAP services compiled (struct fwd_icap:
 * addresses, icaps contexts, the plans of its lists), freed with their
 * pools, and what the console and the log read of them (counters, health,
 * ISTag).  The exchanges that use them run in forward/icap.c; see icap.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/log.h"
#include "forward/fwd_conf.h"
#include "forward/icap.h"
#include "forward/icap_int.h"
#include "forward/icap_tls.h"

static const char *const ctr_names[] = {
#define X(id, s) s,
	FWD_ICAP_COUNTERS(X)
#undef X
};

/* ---- compiled services ---- */

struct fwd_icap *fwd_icap_new(const struct conf_forward *fw, long workers, int *oom)
{
	struct fwd_icap *ic;
	long ncpu = workers > 0 ? workers : sysconf(_SC_NPROCESSORS_ONLN);

	*oom = 0;
	if (fw->nicap == 0)
		return NULL;
	ic = calloc(1, sizeof *ic);
	if (ic == NULL || (ic->s = calloc(fw->nicap, sizeof *ic->s)) == NULL) {
		free(ic);
		*oom = 1;
		return NULL;
	}
	ic->n = fw->nicap;
	ic->plans_cap = 2 * (fw->npolicy + 1);   /* (each rule and icap_default, each method) */
	if ((ic->plans = calloc(ic->plans_cap, sizeof *ic->plans)) == NULL) {
		free(ic->s);
		free(ic);
		*oom = 1;
		return NULL;
	}
	ic->nworkers = ncpu > 0 ? (unsigned)ncpu : 1;
	for (size_t i = 0; i < fw->nicap; i++) {
		struct icap_svc *s = &ic->s[i];
		const struct conf_fwd_icap *c = &fw->icap[i];

		s->c = c;
		atomic_init(&s->health, -1);
		if (c->tls && (s->tls = fwd_icap_tls_ctx(c->ca_file, s->tls_err, sizeof s->tls_err)) == NULL)
			gw_error("forward: ICAP service %s: %s", c->name, s->tls_err);   /* (each exchange fails) */
		if (!c->host_is_name) {   /* (a name: per connection, tx_begin_conn) */
			memcpy(&s->sa, &c->sa, c->salen);
			s->salen = c->salen;
		}
		snprintf(s->authority, sizeof s->authority, strchr(c->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
		    c->host, (unsigned)c->port);
	}
	return ic;
}

void fwd_icap_free(struct fwd_icap *ic)
{
	if (ic == NULL)
		return;
	for (size_t i = 0; i < ic->n; i++) {
		for (int w = 0; w < GW_MAX_WORKERS; w++) {
			struct icap_wsvc *ws = ic->s[i].w[w];
			if (ws == NULL)
				continue;
			for (int k = 0; k < ws->nidle; k++) {
				SSL_free(ws->idle[k].ssl);
				close(ws->idle[k].fd);   /* (idle ones have no event) */
			}
			free(ws);
		}
	}
	for (size_t i = 0; i < ic->n; i++)
		SSL_CTX_free(ic->s[i].tls);
	free(ic->plans);
	free(ic->s);
	free(ic);
}

int fwd_icap_plan(struct fwd_icap *ic, const struct conf_strs *names, int reqmod)
{
	struct icap_plan p;

	memset(&p, 0, sizeof p);
	for (size_t i = 0; i < names->n && p.n < CHAIN_MAX; i++) {
		int k = fwd_icap_find(ic, names->v[i]);
		if (k >= 0 && ic->s[k].c->reqmod == reqmod)
			p.svc[p.n++] = k;
		if (reqmod && p.n == 1)
			break;   /* (conf/ allows one) */
	}
	if (p.n == 0)
		return -1;
	for (size_t j = 0; j < ic->nplans; j++)
		if (memcmp(&ic->plans[j], &p, sizeof p) == 0)
			return (int)j;
	if (ic->nplans == ic->plans_cap)
		return -1;   /* (not reached: one per list at most) */
	ic->plans[ic->nplans] = p;
	return (int)ic->nplans++;
}

int fwd_icap_find(const struct fwd_icap *ic, const char *name)
{
	for (size_t i = 0; ic != NULL && i < ic->n; i++)
		if (strcmp(ic->s[i].c->name, name) == 0)
			return (int)i;
	return -1;
}

uint64_t fwd_icap_max_body(const struct fwd_icap *ic, int plan)
{
	uint64_t sum = 0;   /* (each exchange of a chain holds its own) */

	for (int i = 0; i < ic->plans[plan].n; i++)
		sum += ic->s[ic->plans[plan].svc[i]].c->max_body_bytes;
	return sum;
}

int fwd_icap_bypassable(const struct fwd_icap *ic, int plan)
{
	for (int i = 0; i < ic->plans[plan].n; i++)
		if (!ic->s[ic->plans[plan].svc[i]].c->bypass_on_error)
			return 0;
	return 1;
}

size_t fwd_icap_count(const struct fwd_icap *ic) { return ic != NULL ? ic->n : 0; }
const char *fwd_icap_name(const struct fwd_icap *ic, size_t i) { return ic->s[i].c->name; }
const char *fwd_icap_counter_name(enum fwd_icap_counter c) { return ctr_names[c]; }

uint64_t fwd_icap_counter(const struct fwd_icap *ic, size_t i, enum fwd_icap_counter c)
{
	return atomic_load_explicit(&ic->s[i].n[c], memory_order_relaxed);
}

int fwd_icap_health(const struct fwd_icap *ic, size_t i, char *istag, size_t cap)
{
	const struct icap_svc *s = &ic->s[i];
	unsigned g0, g1;

	do {   /* a torn read is retried (writers bump the generation around the copy) */
		g0 = atomic_load(&s->istag_gen);
		snprintf(istag, cap, "%s", s->istag);
		g1 = atomic_load(&s->istag_gen);
	} while (g0 != g1 || (g0 & 1));
	return atomic_load(&s->health);
}

void fwd_icap_addr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
}
