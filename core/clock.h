/* core/clock: the two clocks everything reads, as seconds in a double. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <time.h>

/* Monotonic: durations, timeouts, rates. */
static inline double gw_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall clock: what logs, ages and the console show. */
static inline double gw_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
