/*
 * core/events: two small mutex-protected rings the console reads: notable
 * events (blocks, DLP hits, health changes, admin actions) and the most
 * recent access-log lines.  Pushes are short memcpy's under an uncontended
 * lock; nothing here allocates.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/events.h"

#define EV_RING 512
#define TAIL_RING 256

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_event ev_ring[EV_RING];
static uint64_t ev_seq;                 /* number of events ever pushed */

static pthread_mutex_t tail_lock = PTHREAD_MUTEX_INITIALIZER;
static char tail_ring[TAIL_RING][GW_TAIL_LINE];
static uint64_t tail_seq;

void gw_event_push(const char *kind, const char *fmt, ...)
{
	struct gw_event e;
	va_list ap;

	e.time = gw_wall_now();
	snprintf(e.kind, sizeof e.kind, "%s", kind);
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&ev_lock);
	ev_ring[ev_seq % EV_RING] = e;
	ev_seq++;
	pthread_mutex_unlock(&ev_lock);
}

size_t gw_event_recent(struct gw_event *out, size_t max, uint64_t after, uint64_t *last_seq)
{
	size_t n = 0;

	pthread_mutex_lock(&ev_lock);
	for (uint64_t s = ev_seq; s > after && s > 0 && n < max && ev_seq - s < EV_RING; s--)
		out[n++] = ev_ring[(s - 1) % EV_RING];
	if (last_seq != NULL)
		*last_seq = ev_seq;
	pthread_mutex_unlock(&ev_lock);
	return n;
}

static _Atomic int tail_on;

void gw_tail_enable(int on) { atomic_store_explicit(&tail_on, on, memory_order_relaxed); }
int gw_tail_enabled(void) { return atomic_load_explicit(&tail_on, memory_order_relaxed); }

void gw_tail_push(const char *line, size_t len)
{
	if (len >= GW_TAIL_LINE)
		len = GW_TAIL_LINE - 1;
	pthread_mutex_lock(&tail_lock);
	memcpy(tail_ring[tail_seq % TAIL_RING], line, len);
	tail_ring[tail_seq % TAIL_RING][len] = '\0';
	tail_seq++;
	pthread_mutex_unlock(&tail_lock);
}

size_t gw_tail_recent(char (*out)[GW_TAIL_LINE], size_t max, uint64_t after, uint64_t *last_seq)
{
	uint64_t first;
	size_t n = 0;

	pthread_mutex_lock(&tail_lock);
	first = tail_seq > TAIL_RING ? tail_seq - TAIL_RING : 0;
	if (after > first)
		first = after;
	if (tail_seq - first > max)
		first = tail_seq - max;
	for (uint64_t s = first; s < tail_seq; s++)
		memcpy(out[n++], tail_ring[s % TAIL_RING], GW_TAIL_LINE);
	if (last_seq != NULL)
		*last_seq = tail_seq;
	pthread_mutex_unlock(&tail_lock);
	return n;
}
