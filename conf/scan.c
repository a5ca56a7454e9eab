/*
 * conf/scan: what the engine checks in the file's text before and beside
 * libconfig.
 *
 * The 32-bit trap: libconfig reads `x = 10000000000;` (no L suffix) as the
 * int 1410065408 without complaint.  We scan the source text once for
 * integer literals that do not fit in 32 bits and refuse any integer setting
 * whose value is the wrapped value of such a literal on its line
 * (conf_overflowed, asked by the integer getters of keys.c).
 *
 * The include guard: libconfig's scanner exit()s on a directory and reads
 * past a NUL; conf_check_includes refuses both before libconfig sees the file.
 */
#include "conf/conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- integer literal scan (the 32-bit wrap trap) ---- */

struct ovf {
	int line;
	int overflow;        /* does not fit in 32 bits: libconfig wrapped it */
	long long wrapped;   /* what libconfig made of it */
	char lit[40];        /* as written */
};

struct scanned {
	struct scanned *next;
	char *name;          /* as libconfig reports the file */
	struct ovf *v;
	size_t n, cap;
};

static void scan_add(struct scanned *sf, int line, int overflow, long long wrapped, const char *lit,
    size_t litlen)
{
	if (sf->n == sf->cap) {
		size_t cap = sf->cap ? sf->cap * 2 : 8;
		struct ovf *v = realloc(sf->v, cap * sizeof(*v));
		if (!v)
			abort();
		sf->v = v;
		sf->cap = cap;
	}
	sf->v[sf->n].line = line;
	sf->v[sf->n].overflow = overflow;
	sf->v[sf->n].wrapped = wrapped;
	if (litlen >= sizeof(sf->v[sf->n].lit))
		litlen = sizeof(sf->v[sf->n].lit) - 1;
	memcpy(sf->v[sf->n].lit, lit, litlen);
	sf->v[sf->n].lit[litlen] = '\0';
	sf->n++;
}

/* Lexes just enough of libconfig's syntax to find integer literals. */
static void scan_text(struct scanned *sf, const char *t)
{
	int line = 1;
	const char *p = t;

	while (*p) {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			p += 2;
			while (*p && !(p[0] == '*' && p[1] == '/')) {
				if (*p == '\n')
					line++;
				p++;
			}
			if (*p)
				p += 2;
		} else if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (*p == '\n')
					line++;
				p++;
			}
			if (*p)
				p++;
		} else if (isalpha((unsigned char)*p) || *p == '*' || *p == '@') {
			p++;
			while (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '*')
				p++;
		} else if (isdigit((unsigned char)*p) || ((*p == '-' || *p == '+' || *p == '.') &&
		    (isdigit((unsigned char)p[1]) || p[1] == '.'))) {
			const char *s = p;
			int hex = 0, isfloat = 0, is64 = 0;
			if (*p == '-' || *p == '+')
				p++;
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
				hex = 1;
				p += 2;
			}
			for (;;) {
				if (isalnum((unsigned char)*p) || *p == '.') {
					if (*p == '.')
						isfloat = 1;
					if (!hex && (*p == 'e' || *p == 'E')) {
						isfloat = 1;
						if (p[1] == '-' || p[1] == '+')
							p++;
					}
					p++;
				} else {
					break;
				}
			}
			if (p > s && (p[-1] == 'L' || p[-1] == 'l'))
				is64 = 1;
			if (!isfloat && !is64) {
				long long v;
				int bad;
				errno = 0;
				if (hex) {
					unsigned long long u = strtoull(s, NULL, 16);
					bad = errno == ERANGE || u > INT_MAX;
					v = (long long)u;
				} else {
					v = strtoll(s, NULL, 10);
					bad = errno == ERANGE || v > INT_MAX || v < INT_MIN;
				}
				scan_add(sf, line, bad, (long long)(int)(unsigned int)(unsigned long long)v,
				    s, (size_t)(p - s));
			}
		} else {
			p++;
		}
	}
}

/* The whole file, NUL-terminated; *lenp (if given) is its length, which is
 * beyond the first NUL when the file holds one. */
static char *read_all(const char *file, size_t *lenp)
{
	FILE *f = fopen(file, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4097) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb)
				abort();
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

const char *conf_overflowed(struct conf_ctx *x, const config_setting_t *s)
{
	const char *name = config_setting_source_file(s);
	unsigned line = config_setting_source_line(s);
	long long val = config_setting_get_int64(s);
	struct scanned *sf;
	size_t i;

	if (!name)
		return NULL;
	for (sf = x->scans; sf; sf = sf->next)
		if (strcmp(sf->name, name) == 0)
			break;
	if (!sf) {
		char *text, *full = NULL;
		sf = calloc(1, sizeof(*sf));
		if (!sf)
			abort();
		sf->name = strdup(name);
		if (!sf->name)
			abort();
		sf->next = x->scans;
		x->scans = sf;
		if (strcmp(name, x->path) != 0 && name[0] != '/') {
			if (asprintf(&full, "%s/%s", x->absdir, name) < 0)
				abort();
		}
		text = read_all(full ? full : name, NULL);
		free(full);
		if (text)
			scan_text(sf, text);
		free(text);
	}
	/*
	 * The k-th int setting with this value on this line (counting earlier
	 * siblings: `[ 443, 4294967739 ]` has two 443s) is the k-th literal
	 * with this value there, in text order.
	 */
	{
		config_setting_t *parent = config_setting_parent(s);
		int idx = config_setting_index(s), j, k = 0;
		const char *last_ovf = NULL;
		for (j = 0; parent && j < idx; j++) {
			config_setting_t *sib = config_setting_get_elem(parent, (unsigned)j);
			if (config_setting_type(sib) == CONFIG_TYPE_INT &&
			    config_setting_source_line(sib) == line && config_setting_get_int64(sib) == val)
				k++;
		}
		for (i = 0; i < sf->n; i++) {
			if (sf->v[i].line != (int)line || sf->v[i].wrapped != val)
				continue;
			if (k-- == 0)
				return sf->v[i].overflow ? sf->v[i].lit : NULL;
			if (sf->v[i].overflow)
				last_ovf = sf->v[i].lit;
		}
		return last_ovf;
	}
}

/*
 * libconfig's scanner exit()s the process ("input in flex scanner failed")
 * when a file it reads is a directory; guard the main file and every
 * @include (recursively, as libconfig resolves them: include_dir/name)
 * before handing the file to libconfig.  Returns 0 if all are fine.
 */
int conf_check_regular(const char *file)
{
	struct stat st;
	return stat(file, &st) != 0 || S_ISREG(st.st_mode);   /* missing: libconfig reports it */
}

int conf_check_includes(struct conf_ctx *x, const char *open_name, const char *show_name, int depth)
{
	size_t len;
	char *t = read_all(open_name, &len), *p, *nul;
	int line = 1, bad = 0;

	if (!t)
		return 0;
	/* A NUL would hide the rest of the file from this guard (libconfig's
	 * scanner reads past it); a configuration file is text: refuse it. */
	if ((nul = memchr(t, '\0', len)) != NULL) {
		for (p = t; p < nul; p++)
			line += *p == '\n';
		conf_cerr(x, show_name, line, NULL, "syntax: a NUL byte in the file (not a text file?)");
		free(t);
		return 1;
	}
	for (p = t; *p && !bad; ) {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			p += 2;
			while (*p && !(p[0] == '*' && p[1] == '/'))
				line += *p++ == '\n';
			if (*p)
				p += 2;
		} else if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				line += *p++ == '\n';
			}
			if (*p)
				p++;
		} else if (strncmp(p, "@include", 8) == 0) {
			char *q = p + 8, *end, *name, *full;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q != '"' || !(end = strchr(q + 1, '"'))) {
				p += 8;
				continue;
			}
			name = strndup(q + 1, (size_t)(end - q - 1));
			if (!name || asprintf(&full, "%s/%s", x->absdir, name) < 0)
				abort();
			if (!conf_check_regular(full)) {
				conf_cerr(x, show_name, line, NULL, "syntax: cannot include \"%s\": not a regular file", name);
				bad = 1;
			} else if (depth < 10) {
				char *sn = strdup(conf_show_file(x, name));
				if (!sn)
					abort();
				bad = conf_check_includes(x, full, sn, depth + 1);
				free(sn);
			}
			free(full);
			free(name);
			p = end + 1;
		} else {
			p++;
		}
	}
	free(t);
	return bad;
}


void conf_scan_free(struct conf_ctx *x)
{
	while (x->scans) {
		struct scanned *next = x->scans->next;
		free(x->scans->name);
		free(x->scans->v);
		free(x->scans);
		x->scans = next;
	}
}
