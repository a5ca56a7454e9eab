/*
 * forward/readfile: a whole file into memory, for the forward side's
 * loaders (users and groups files, urls lists).
 */
#include "forward/readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fwd_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 4096;
			char *nb = realloc(buf, nc);
			if (nb == NULL || nc > (256u << 20)) {
				free(nb ? nb : buf);
				fclose(f);
				snprintf(err, errlen, "%s: too large or out of memory", path);
				return NULL;
			}
			buf = nb;
			cap = nc;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}
