/*
 * replay_main: runs every file of the given corpus directories (or single
 * files) through LLVMFuzzerTestOneInput once, so the checked-in corpora are
 * replayed by the normal test run without clang or libFuzzer.  A violated
 * invariant aborts; otherwise it prints "RESULT: N passed, 0 failed" with N
 * the number of inputs replayed.  Finding no input at all is a failure (the
 * corpus path is probably wrong).
 */
#include "fuzz.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *data;
	size_t len = 0, cap = 0, n;

	if (!f) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *nb;
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				fclose(f);
				free(buf);
				return -1;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	/* exact-size copy so ASan sees reads past the end */
	data = malloc(len ? len : 1);
	if (!data) {
		free(buf);
		return -1;
	}
	if (len)
		memcpy(data, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	long ok = 0, bad = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (argv[i][0] == '-')
			continue;       /* tolerate libFuzzer-style flags */
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			bad++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) == 0)
				ok++;
			else
				bad++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		if (!d) {
			perror(argv[i]);
			bad++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char path[4096];
			struct stat fst;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
				continue;
			if (replay_file(path) == 0)
				ok++;
			else
				bad++;
		}
		closedir(d);
	}
	if (ok == 0 && bad == 0) {
		fprintf(stderr, "no corpus inputs found\n");
		bad = 1;
	}
	printf("RESULT: %ld passed, %ld failed\n", ok, bad);
	return bad ? 1 : 0;
}
