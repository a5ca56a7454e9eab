/*
 * fuzz_config: the configuration loader (conf/conf.c on top of libconfig) on
 * arbitrary file contents.  The input is written to gatehouse.conf in a
 * private directory (conf_load takes a path; @include resolves against that
 * directory, and the loader refuses non-regular files, so an input cannot
 * make it read a device).
 *
 * Invariants: conf_load returns NULL iff it reported errors; every error is
 * "FILE:LINE: ..." or "FILE: ..." with FILE our path (or an included file),
 * never an empty message; loading the same bytes twice gives the same errors
 * in the same order (no hidden state between loads); no leaks.
 */
#include "conf/conf.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64], g_path[96];

static void cleanup(void)
{
	unlink(g_path);
	rmdir(g_dir);
}

static void setup(void)
{
	if (g_dir[0])
		return;
	snprintf(g_dir, sizeof g_dir, "%s", "/tmp/gw-fuzz-config.XXXXXX");
	FZ_ASSERT(mkdtemp(g_dir) != NULL);
	snprintf(g_path, sizeof g_path, "%s/gatehouse.conf", g_dir);
	atexit(cleanup);
}

static void write_input(const uint8_t *data, size_t size)
{
	FILE *f = fopen(g_path, "wb");
	FZ_ASSERT(f != NULL);
	FZ_ASSERT(size == 0 || fwrite(data, 1, size, f) == size);
	FZ_ASSERT(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors e1, e2;
	struct conf *c1, *c2;
	size_t i;

	setup();
	write_input(data, size);
	conf_errors_init(&e1);
	conf_errors_init(&e2);
	c1 = conf_load(g_path, &e1);
	c2 = conf_load(g_path, &e2);

	FZ_ASSERT((c1 == NULL) == (e1.n > 0));
	FZ_ASSERT((c2 == NULL) == (e2.n > 0));
	FZ_ASSERT(e1.n == e2.n);
	for (i = 0; i < e1.n; i++) {
		const char *m = e1.msgs[i], *colon = strchr(m, ':');
		FZ_ASSERT(strcmp(m, e2.msgs[i]) == 0);
		FZ_ASSERT(colon != NULL && colon != m);   /* "FILE:..." */
		FZ_ASSERT(strlen(colon) > 2);              /* a message follows */
	}
	conf_free(c1);
	conf_free(c2);
	conf_errors_free(&e1);
	conf_errors_free(&e2);
	return 0;
}
