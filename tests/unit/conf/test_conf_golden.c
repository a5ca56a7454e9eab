/*
 * Golden bad-config tests: for every tests/config/bad/NAME.conf, conf_load()
 * must fail with exactly the lines in tests/config/bad/NAME.expected (one
 * error per line, in order).  One case per file.  Runs from the project root.
 *
 * GW_GOLDEN_UPDATE=1 rewrites the .expected files from the current output
 * (review the diff before committing).
 */
#include "conf/conf.h"
#include "check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_DIR "tests/config/bad"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void run_one(const char *name, int update)
{
	char conf[512], expf[512];
	struct conf_errors e;
	struct conf *c;
	char *want, *got;
	size_t i, len = 0;

	snprintf(conf, sizeof(conf), "%s/%s", BAD_DIR, name);
	snprintf(expf, sizeof(expf), "%s/%.*s.expected", BAD_DIR, (int)(strlen(name) - 5), name);
	BEGIN_CASE(conf);
	conf_errors_init(&e);
	c = conf_load(conf, &e);
	CHECK(c == NULL, "%s loaded without errors", conf);
	conf_free(c);
	for (i = 0; i < e.n; i++)
		len += strlen(e.msgs[i]) + 1;
	got = calloc(1, len + 1);
	for (i = 0; i < e.n; i++) {
		strcat(got, e.msgs[i]);
		strcat(got, "\n");
	}
	if (update) {
		FILE *f = fopen(expf, "w");
		if (f) {
			fputs(got, f);
			fclose(f);
		}
	}
	want = slurp(expf);
	CHECK(want != NULL, "cannot read %s", expf);
	if (want)
		CHECK(strcmp(want, got) == 0, "%s:\n--- expected\n%s--- got\n%s", conf, want, got);
	free(want);
	free(got);
	conf_errors_free(&e);
	END_CASE();
}

int main(void)
{
	DIR *d = opendir(BAD_DIR);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	const char *up = getenv("GW_GOLDEN_UPDATE");

	BEGIN_CASE("bad-config directory");
	CHECK(d != NULL, "cannot open %s (run from the project root)", BAD_DIR);
	END_CASE();
	if (!d)
		return check_done();
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l <= 5 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	BEGIN_CASE("at least 25 golden cases");
	CHECK(n >= 25, "only %zu", n);
	END_CASE();
	for (i = 0; i < n; i++) {
		run_one(names[i], up && *up == '1');
		free(names[i]);
	}
	free(names);
	return check_done();
}
