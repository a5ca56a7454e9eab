/*
 * Not a test: the hot-path cost of forward/observe (what every finished
 * forward request pays for the console's top domains and users).  Prints
 * nanoseconds per fwd_obs_request() on one thread for: a few hot domains,
 * every domain new (the worst case: each add scans all slots and evicts),
 * and a signed-in user; and how long the console's merge of the tables takes.
 *   build/tests/unit/forward/topkbench [N]
 * For noise-free numbers on a busy machine, count instructions instead:
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out build/tests/unit/forward/topkbench 100000
 *   callgrind_annotate --inclusive=yes cg.out | grep fwd_obs_request   (Ir / (3 N) per request)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward/observe.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const int N = argc > 1 ? atoi(argv[1]) : 2000000;
	static char names[4096][40];
	struct fwd_topk_item it[20];
	struct fwd_obs_user u[16];
	double t0, t;

	for (int i = 0; i < 4096; i++)
		snprintf(names[i], sizeof names[i], "host%d.some-domain.example", i);
	t0 = now();
	for (int i = 0; i < N; i++)
		fwd_obs_request(0, FWD_OBS_ALLOWED, names[i % 20], strlen(names[i % 20]), NULL, "10.0.0.1", 0);
	t = now() - t0;
	printf("20 hot domains:        %6.1f ns/request\n", t / N * 1e9);
	t0 = now();
	for (int i = 0; i < N; i++)
		fwd_obs_request(1, FWD_OBS_BLOCKED, names[i % 4096], strlen(names[i % 4096]), NULL, "10.0.0.1", 0);
	t = now() - t0;
	printf("every domain new:      %6.1f ns/request (4096 names cycling through 64 slots)\n", t / N * 1e9);
	t0 = now();
	for (int i = 0; i < N; i++)
		fwd_obs_request(2, FWD_OBS_ALLOWED, names[i % 20], strlen(names[i % 20]), "alice", "10.0.0.1",
		    (double)i);
	t = now() - t0;
	printf("hot domain + user:     %6.1f ns/request\n", t / N * 1e9);
	t0 = now();
	for (int i = 0; i < 1000; i++) {
		fwd_obs_top(FWD_OBS_BLOCKED, it, 20);
		fwd_obs_users(u, 16);
	}
	t = now() - t0;
	printf("console merge (3 workers' tables, top 20 + users): %.1f us\n", t / 1000 * 1e6);
	return 0;
}
