/*
 * conf: loads the libconfig file and checks it against the schema.
 *
 * Each group of the file has a reader function below that (1) reports every
 * key not in its allow-list, (2) reads the keys it knows with the typed
 * getters, which report wrong types and out-of-range values, and (3) fills
 * defaults for what is missing.  Readers keep going after an error so that
 * one run reports everything; conf_load() returns NULL if anything was
 * reported.  Cross-checks that need the whole file (names referenced
 * elsewhere, overlapping listeners) run after the walk.
 *
 * Error style (one line each, also what `gatehouse -t` prints):
 *     FILE:LINE: key.path: message
 * FILE is the main file as given (included files: their name joined to the
 * main file's directory), LINE the line of the offending setting (of the
 * enclosing group for a missing key).  key.path is dotted; list elements are
 * ".[i]", 0-based, as libconfig's own path syntax: forward.policy.[2].action.
 *
 * The 32-bit trap: libconfig reads `x = 10000000000;` (no L suffix) as the
 * int 1410065408 without complaint.  We scan the source text once for
 * integer literals that do not fit in 32 bits and refuse any integer setting
 * whose value is the wrapped value of such a literal on its line.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KP 320   /* key path buffer */

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

struct ctx {
	struct conf *c;
	void *a;
	struct conf_errors *errs;
	size_t nerr0;
	const char *path;        /* main file as given */
	char *showdir;           /* directory part of path as given ("" for none) */
	char *absdir;            /* absolute directory of the main file */
	struct scanned *scans;
	int admin_line[2];       /* lines of admin.listen, admin.metrics_listen */
	struct epos { size_t rank, line, seq; } *epos;   /* where each error points, to sort them */
	size_t nepos;
	char **files;            /* included files seen in errors, in order: rank = index + 1 */
	size_t nfiles;
	char showbuf[1024];
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

/* The overflowing literal behind an int setting's value, or NULL. */
static const char *overflowed(struct ctx *x, const config_setting_t *s)
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

static const char *show_file(struct ctx *x, const char *name);
static void cerr(struct ctx *x, const char *file, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * libconfig's scanner exit()s the process ("input in flex scanner failed")
 * when a file it reads is a directory; guard the main file and every
 * @include (recursively, as libconfig resolves them: include_dir/name)
 * before handing the file to libconfig.  Returns 0 if all are fine.
 */
static int check_regular(const char *file)
{
	struct stat st;
	return stat(file, &st) != 0 || S_ISREG(st.st_mode);   /* missing: libconfig reports it */
}

static int check_includes(struct ctx *x, const char *open_name, const char *show_name, int depth)
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
		cerr(x, show_name, line, NULL, "syntax: a NUL byte in the file (not a text file?)");
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
			if (!check_regular(full)) {
				cerr(x, show_name, line, NULL, "syntax: cannot include \"%s\": not a regular file", name);
				bad = 1;
			} else if (depth < 10) {
				char *sn = strdup(show_file(x, name));
				if (!sn)
					abort();
				bad = check_includes(x, full, sn, depth + 1);
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

/* ---- error reporting ---- */

static const char *show_file(struct ctx *x, const char *name)
{
	if (!name || strcmp(name, x->path) == 0)
		return x->path;
	if (name[0] == '/' || !x->showdir[0])
		return name;
	snprintf(x->showbuf, sizeof(x->showbuf), "%s/%s", x->showdir, name);
	return x->showbuf;
}

/* All errors go through here: conf_err plus the position for sorting. */
__attribute__((format(printf, 5, 6)))
static void cerr(struct ctx *x, const char *file, int line, const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	size_t rank = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(file, x->path) != 0) {
		for (rank = 0; rank < x->nfiles; rank++)
			if (strcmp(x->files[rank], file) == 0)
				break;
		if (rank == x->nfiles) {
			char **f = realloc(x->files, (x->nfiles + 1) * sizeof(*f));
			if (!f || !(f[x->nfiles] = strdup(file)))
				abort();
			x->files = f;
			x->nfiles++;
		}
		rank++;
	}
	{
		struct epos *e = realloc(x->epos, (x->nepos + 1) * sizeof(*e));
		if (!e)
			abort();
		x->epos = e;
		e[x->nepos].rank = rank;
		e[x->nepos].line = line > 0 ? (size_t)line : 0;
		e[x->nepos].seq = x->nepos;
		x->nepos++;
	}
	conf_err(x->errs, file, line, key, "%s", msg);
}

static int cmp_epos(const void *a, const void *b)
{
	const struct epos *p = a, *q = b;
	if (p->rank != q->rank)
		return p->rank < q->rank ? -1 : 1;
	if (p->line != q->line)
		return p->line < q->line ? -1 : 1;
	return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Errors in file order (main file first, then included files), stable within a line. */
static void sort_errors(struct ctx *x)
{
	char **m, **tmp;
	size_t i;

	if (x->nepos != x->errs->n - x->nerr0 || x->nepos < 2)
		return;
	m = x->errs->msgs + x->nerr0;    /* msgs is NULL while there is no error */
	qsort(x->epos, x->nepos, sizeof(*x->epos), cmp_epos);
	tmp = malloc(x->nepos * sizeof(*tmp));
	if (!tmp)
		abort();
	for (i = 0; i < x->nepos; i++)
		tmp[i] = m[x->epos[i].seq];
	memcpy(m, tmp, x->nepos * sizeof(*tmp));
	free(tmp);
}

__attribute__((format(printf, 4, 5)))
static void serr(struct ctx *x, const config_setting_t *s, const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cerr(x, show_file(x, s ? config_setting_source_file(s) : NULL),
	    s ? (int)config_setting_source_line(s) : 0, key && *key ? key : NULL, "%s", msg);
}

/* Key paths longer than KP are cut (only the message suffers). */
static void kp_cat(char *out, size_t *n, const char *s)
{
	while (*s && *n < KP - 1)
		out[(*n)++] = *s++;
	out[*n] = '\0';
}

static void kp_child(char *out, const char *parent, const char *name)
{
	size_t n = 0;

	out[0] = '\0';
	if (parent && *parent) {
		kp_cat(out, &n, parent);
		kp_cat(out, &n, ".");
	}
	kp_cat(out, &n, name);
}

static void kp_elem(char *out, const char *parent, unsigned i)
{
	char idx[24];
	size_t n = 0;

	sprintf(idx, ".[%u]", i);
	out[0] = '\0';
	kp_cat(out, &n, parent);
	kp_cat(out, &n, idx);
}

static struct conf_src src_of(struct ctx *x, const config_setting_t *s)
{
	struct conf_src r;
	r.file = conf_arena_strdup(x->a, show_file(x, config_setting_source_file(s)));
	r.line = (int)config_setting_source_line(s);
	return r;
}

/* ---- schema helpers ---- */

static config_setting_t *member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

/* Reports every member of group g whose name is not in keys (NULL-terminated). */
static void check_keys(struct ctx *x, const config_setting_t *g, const char *path,
    const char *const *keys)
{
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		const char *const *k;
		char p[KP];
		for (k = keys; *k; k++)
			if (name && strcmp(name, *k) == 0)
				break;
		if (!*k) {
			kp_child(p, path, name ? name : "?");
			serr(x, m, p, "unknown key");
		}
	}
}

static void missing(struct ctx *x, const config_setting_t *g, const char *path, const char *name)
{
	char p[KP];
	kp_child(p, path, name);
	serr(x, g, p, "required key is missing");
}

/* A sub-group: NULL when absent or (reported) not a group. */
static config_setting_t *get_group(struct ctx *x, const config_setting_t *g, const char *path,
    const char *name, const char *const *keys)
{
	config_setting_t *s = member(g, name);
	char p[KP];

	if (!s)
		return NULL;
	kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		serr(x, s, p, "expected a group { ... }");
		return NULL;
	}
	check_keys(x, s, p, keys);
	return s;
}

/* A list of groups "( {...}, {...} )"; an empty [] or () is fine.  NULL when absent or wrong. */
static config_setting_t *get_glist(struct ctx *x, const config_setting_t *g, const char *path,
    const char *name)
{
	config_setting_t *s = member(g, name);
	char p[KP];

	if (!s)
		return NULL;
	kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_LIST ||
	    (config_setting_type(s) == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
		return s;
	serr(x, s, p, "expected a list ( { ... }, ... )");
	return NULL;
}

/* Element i of a group list, checked to be a group with allowed keys. */
static config_setting_t *glist_elem(struct ctx *x, config_setting_t *l, const char *path,
    unsigned i, const char *const *keys, char *ep)
{
	config_setting_t *e = config_setting_get_elem(l, i);

	kp_elem(ep, path, i);
	if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
		serr(x, e, ep, "expected a group { ... }");
		return NULL;
	}
	check_keys(x, e, ep, keys);
	return e;
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Returns 1 read, 0 absent, -1 reported. */
static int get_str(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    char **out)
{
	config_setting_t *s = member(g, name);
	char p[KP];

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kp_child(p, path, name);
		serr(x, s, p, "expected a string");
		return -1;
	}
	*out = conf_arena_strdup(x->a, config_setting_get_string(s));
	return 1;
}

/* A string without control characters; nonempty unless allow_empty. */
static int get_text(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out)
{
	char *v = NULL, p[KP];
	int r = get_str(x, g, path, name, &v);

	if (r != 1)
		return r;
	kp_child(p, path, name);
	if (!allow_empty && !*v) {
		serr(x, member(g, name), p, "must not be empty");
		return -1;
	}
	if (has_ctl(v)) {
		serr(x, member(g, name), p, "must not contain control characters");
		return -1;
	}
	*out = v;
	return 1;
}

static char *abs_path(struct ctx *x, const char *v)
{
	char *r;
	size_t n;

	if (!*v || v[0] == '/')
		return conf_arena_strdup(x->a, v);
	n = strlen(x->absdir) + 1 + strlen(v) + 1;
	r = conf_arena_alloc(x->a, n);
	snprintf(r, n, "%s/%s", x->absdir, v);
	return r;
}

/* A file or directory path, made absolute against the main file's directory. */
static int get_path(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out)
{
	char *v = NULL;
	int r = get_text(x, g, path, name, allow_empty, &v);

	if (r == 1)
		*out = abs_path(x, v);
	return r;
}

static int get_bool(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    int *out)
{
	config_setting_t *s = member(g, name);
	char p[KP];

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		kp_child(p, path, name);
		serr(x, s, p, "expected true or false");
		return -1;
	}
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 1;
}

/* One of choices (NULL-terminated); *out = its index. */
static int get_enum(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    const char *const *choices, int *out)
{
	config_setting_t *s = member(g, name);
	char p[KP], list[256] = "";
	const char *v;
	int i;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		serr(x, s, p, "expected a string");
		return -1;
	}
	v = config_setting_get_string(s);
	for (i = 0; choices[i]; i++) {
		if (strcmp(v, choices[i]) == 0) {
			*out = i;
			return 1;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
		    i == 0 ? "" : (choices[i + 1] ? ", " : " or "), choices[i]);
	}
	serr(x, s, p, "must be %s", list);
	return -1;
}

/*
 * The integer value of s: 0 fine, -1 not an integer, -2 a literal that
 * libconfig wrapped (then *v is meaningless and *lit names it).
 */
static int int_of(struct ctx *x, const config_setting_t *s, long long *v, const char **lit)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return -1;
	*v = config_setting_get_int64(s);
	if (t == CONFIG_TYPE_INT && (*lit = overflowed(x, s)) != NULL)
		return -2;
	return 0;
}

static int check_int(struct ctx *x, const config_setting_t *s, const char *p, long long min,
    long long max, long long *out)
{
	long long v = 0;
	const char *lit = NULL;
	int r = int_of(x, s, &v, &lit);

	if (r == -1) {
		serr(x, s, p, "expected an integer");
		return -1;
	}
	if (r == -2 || v < min || v > max) {
		serr(x, s, p, "must be between %lld and %lld", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

static int get_int(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    long long min, long long max, int64_t *out)
{
	config_setting_t *s = member(g, name);
	char p[KP];
	long long v;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (check_int(x, s, p, min, max, &v) != 1)
		return -1;
	*out = v;
	return 1;
}

/* Seconds (or any non-negative number): int or float. */
static int get_num(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    double min, double max, double *out)
{
	config_setting_t *s = member(g, name);
	char p[KP];
	double v;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
		v = config_setting_get_float(s);
	} else {
		long long i;
		const char *lit = NULL;
		int r = int_of(x, s, &i, &lit);
		if (r == -1) {
			serr(x, s, p, "expected a number");
			return -1;
		}
		v = r == -2 ? max * 2 + 1 : (double)i;
	}
	if (!(v >= min && v <= max)) {
		serr(x, s, p, "must be between %g and %g", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

/* Bytes: an integer or a string with a unit. */
static int get_size(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint64_t min, uint64_t max, uint64_t *out)
{
	config_setting_t *s = member(g, name);
	char p[KP];
	uint64_t v;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *msg = conf_parse_size(config_setting_get_string(s), &v);
		if (msg) {
			serr(x, s, p, "%s", msg);
			return -1;
		}
	} else {
		long long i;
		const char *lit = NULL;
		int r = int_of(x, s, &i, &lit);
		if (r == -1) {
			serr(x, s, p, "expected a size (bytes, or a string such as \"64k\", \"16M\", \"1G\")");
			return -1;
		}
		if (r == -2) {
			serr(x, s, p, "%s does not fit in a 32-bit integer; write %sL or a string with a unit (\"64M\")",
			    lit, lit);
			return -1;
		}
		if (i < 0) {
			serr(x, s, p, "must be between %llu and %llu", (unsigned long long)min,
			    (unsigned long long)max);
			return -1;
		}
		v = (uint64_t)i;
	}
	if (v < min || v > max) {
		serr(x, s, p, "must be between %llu and %llu", (unsigned long long)min,
		    (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 1;
}

/*
 * A list or array of strings.  check (may be NULL) validates and may rewrite
 * an element in place (it is an arena copy); it returns an error message.
 * When single is set a lone string is accepted as a one-element list.
 */
typedef const char *(*str_check)(struct ctx *x, char *v);

static int get_strs(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    int single, str_check check, struct conf_strs *out)
{
	config_setting_t *s = member(g, name);
	char p[KP], ep[KP];
	int t, bad = 0;
	unsigned i, n;

	if (!s)
		return 0;
	kp_child(p, path, name);
	t = config_setting_type(s);
	if (single && t == CONFIG_TYPE_STRING) {
		char *v = conf_arena_strdup(x->a, config_setting_get_string(s));
		const char *msg = check ? check(x, v) : (has_ctl(v) ? "must not contain control characters" : NULL);
		if (msg) {
			serr(x, s, p, "%s", msg);
			return -1;
		}
		out->v = conf_arena_alloc(x->a, sizeof(char *));
		out->v[0] = v;
		out->n = 1;
		return 1;
	}
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		serr(x, s, p, single ? "expected a string or a list of strings [ \"...\", ... ]"
		    : "expected a list of strings [ \"...\", ... ]");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	out->v = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(char *));
	out->n = 0;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		char *v;
		const char *msg;
		kp_elem(ep, p, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			serr(x, e, ep, "expected a string");
			bad = 1;
			continue;
		}
		v = conf_arena_strdup(x->a, config_setting_get_string(e));
		msg = check ? check(x, v) : (has_ctl(v) ? "must not contain control characters" : NULL);
		if (msg) {
			serr(x, e, ep, "%s", msg);
			bad = 1;
			continue;
		}
		out->v[out->n++] = v;
	}
	return bad ? -1 : 1;
}

static int get_cidrs(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    struct conf_cidrs *out)
{
	config_setting_t *s = member(g, name);
	char p[KP], ep[KP];
	unsigned i, n;
	int bad = 0;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		serr(x, s, p, "expected a list of addresses [ \"10.0.0.0/8\", ... ]");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	out->v = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*out->v));
	out->n = 0;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *msg;
		kp_elem(ep, p, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			serr(x, e, ep, "expected a string");
			bad = 1;
			continue;
		}
		msg = conf_parse_cidr(config_setting_get_string(e), &out->v[out->n]);
		if (msg) {
			serr(x, e, ep, "%s", msg);
			bad = 1;
			continue;
		}
		out->n++;
	}
	return bad ? -1 : 1;
}

static int get_ports(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint16_t **v, size_t *nv)
{
	config_setting_t *s = member(g, name);
	char p[KP], ep[KP];
	unsigned i, n;
	int bad = 0;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		serr(x, s, p, "expected a list of ports [ 443, ... ]");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	*v = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(**v));
	*nv = 0;
	for (i = 0; i < n; i++) {
		long long port;
		kp_elem(ep, p, i);
		if (check_int(x, config_setting_get_elem(s, i), ep, 1, 65535, &port) != 1) {
			bad = 1;
			continue;
		}
		(*v)[(*nv)++] = (uint16_t)port;
	}
	return bad ? -1 : 1;
}

static int get_addr(struct ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_name, struct conf_addr *out)
{
	config_setting_t *s = member(g, name);
	char p[KP];
	const char *msg;

	if (!s)
		return 0;
	kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		serr(x, s, p, "expected a string \"host:port\"");
		return -1;
	}
	msg = conf_parse_addr(config_setting_get_string(s), allow_name, out, x->a);
	if (msg) {
		serr(x, s, p, "%s", msg);
		return -1;
	}
	return 1;
}

/* ---- element validators (str_check) ---- */

static const char *chk_token(struct ctx *x, char *v)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	char *p;

	(void)x;
	if (!*v)
		return "must not be empty";
	for (p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(tchar, *p))
			return "not a valid token (letters, digits and !#$%&'*+-.^_`|~ only)";
	return NULL;
}

static const char *chk_method(struct ctx *x, char *v)
{
	const char *msg = chk_token(x, v);
	char *p;

	if (msg)
		return "not a valid HTTP method";
	for (p = v; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return NULL;
}

static const char *chk_name(struct ctx *x, char *v)
{
	(void)x;
	if (!*v)
		return "must not be empty";
	if (has_ctl(v))
		return "must not contain control characters";
	return NULL;
}

/*
 * Host and domain patterns: "name", "*.name", ".name", IP literals ("[v6]" or
 * "v6" too).  Lower-cased.
 */
static const char *chk_host(struct ctx *x, char *v)
{
	char *p;

	(void)x;
	if (!*v)
		return "must not be empty";
	for (p = v; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '*') {
			if (p != v || p[1] != '.' || !p[2])
				return "'*' is only allowed as a leading \"*.\" (e.g. \"*.example.com\")";
			continue;
		}
		if (!isalnum(ch) && !strchr("-._:[]", ch))
			return "not a host name or pattern (e.g. \"example.com\", \"*.example.com\")";
		*p = (char)tolower(ch);
	}
	return NULL;
}

static const char *chk_scheme(struct ctx *x, char *v)
{
	char *p;

	(void)x;
	for (p = v; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strcmp(v, "http") != 0 && strcmp(v, "connect") != 0)
		return "must be \"http\" or \"connect\"";
	return NULL;
}

static const char *chk_detector(struct ctx *x, char *v)
{
	(void)x;
	if (strcmp(v, "credit_card") != 0 && strcmp(v, "iban") != 0 && strcmp(v, "us_ssn") != 0)
		return "must be \"credit_card\", \"iban\" or \"us_ssn\"";
	return NULL;
}

static const char *chk_dns_server(struct ctx *x, char *v)
{
	unsigned char buf[16];
	struct conf_addr a;

	if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
		return NULL;
	if (conf_parse_addr(v, 0, &a, x->a) == NULL && a.host[0])
		return NULL;
	return "expected a numeric address \"ip\", \"ip:port\" or \"[v6]:port\"";
}

/* Days: Mon..Sun or full names, case-insensitive; returns 0..6 or -1. */
static int parse_day(const char **pp)
{
	static const char *const full[] = { "monday", "tuesday", "wednesday", "thursday", "friday",
	    "saturday", "sunday" };
	const char *p = *pp;
	size_t n = 0;
	int i;

	while (isalpha((unsigned char)p[n]))
		n++;
	for (i = 0; i < 7; i++) {
		if ((n == 3 || n == strlen(full[i])) && strncasecmp(p, full[i], n) == 0) {
			*pp = p + n;
			return i;
		}
	}
	return -1;
}

static int parse_hhmm(const char **pp)
{
	const char *p = *pp;
	int h, m;

	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) || p[2] != ':' ||
	    !isdigit((unsigned char)p[3]) || !isdigit((unsigned char)p[4]))
		return -1;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	m = (p[3] - '0') * 10 + (p[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*pp = p + 5;
	return h * 60 + m;
}

/* "[DAYS] [HH:MM-HH:MM]" as forward/policy.h documents it. */
static const char *chk_hours(struct ctx *x, char *v)
{
	const char *p = v;
	int any = 0;

	(void)x;
	while (*p == ' ')
		p++;
	if (isalpha((unsigned char)*p)) {
		for (;;) {
			if (parse_day(&p) < 0)
				return "bad day (use Mon..Sun, e.g. \"Mon-Fri 09:00-17:00\")";
			if (*p == '-') {
				p++;
				if (parse_day(&p) < 0)
					return "bad day (use Mon..Sun, e.g. \"Mon-Fri 09:00-17:00\")";
			}
			if (*p != ',')
				break;
			p++;
		}
		any = 1;
		while (*p == ' ')
			p++;
	}
	if (*p) {
		int a, b;
		if ((a = parse_hhmm(&p)) < 0 || *p++ != '-' || (b = parse_hhmm(&p)) < 0)
			return "bad time range (use HH:MM-HH:MM, 00:00..24:00, e.g. \"Mon-Fri 09:00-17:00\")";
		if (a >= b)
			return "the time range must end after it starts (write an overnight window as two strings)";
		while (*p == ' ')
			p++;
		if (*p)
			return "unexpected text after the time range (e.g. \"Mon-Fri 09:00-17:00\")";
		any = 1;
	}
	if (!any)
		return "empty; expected \"[DAYS] [HH:MM-HH:MM]\", e.g. \"Mon-Fri 09:00-17:00\"";
	return NULL;
}

/* ---- global ---- */

static const char *const k_root[] = { "global", "forward", "reverse", "admin", NULL };
static const char *const k_global[] = { "workers", "user", "max_connections", "state_dir", "via_name",
    "log", "timeouts", "limits", "dns", "max_connections_per_client", NULL };
static const char *const k_log[] = { "error", "level", "access", "access_format", "syslog_facility",
    "syslog_tag", NULL };
static const char *const k_timeouts[] = { "client_header", "client_body", "client_idle",
    "upstream_connect", "upstream_response", "upstream_idle", "tunnel_idle", "shutdown_grace",
    "client_first_byte", "client_body_min_rate", NULL };
static const char *const k_limits[] = { "max_header_bytes", "max_headers", "max_uri_bytes",
    "max_body_bytes", NULL };
static const char *const k_dns[] = { "servers", "cache_ttl_max", "timeout", "hosts_file", NULL };

#define MAX_TIMEOUT 86400.0
#define TB (1024ull * 1024 * 1024 * 1024)

static void read_global(struct ctx *x, config_setting_t *root)
{
	struct conf_global *gl = &x->c->global;
	static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
	static const char *const formats[] = { "combined", "json", NULL };
	config_setting_t *g, *s;
	char *v;
	int i;

	gl->workers = 0;
	gl->user = conf_arena_strdup(x->a, "gatehouse");
	gl->user_src.file = conf_arena_strdup(x->a, x->path);
	gl->user_src.line = 0;
	gl->max_connections = 100000;
	gl->max_connections_per_client = 1000;
	gl->state_dir = conf_arena_strdup(x->a, "/var/lib/gatehouse");
	gl->via_name = conf_arena_strdup(x->a, "gatehouse");
	gl->log.error = conf_arena_strdup(x->a, "stderr");
	gl->log.level = 1;
	gl->log.access = conf_arena_strdup(x->a, "/var/log/gatehouse/access.log");
	gl->log.access_json = 0;
	gl->log.syslog_facility = 16;
	gl->log.syslog_tag = conf_arena_strdup(x->a, "gatehouse");
	gl->timeouts.client_header = 10.0;
	gl->timeouts.client_body = 30.0;
	gl->timeouts.client_body_min_rate = 1024;
	gl->timeouts.client_idle = 60.0;
	gl->timeouts.upstream_connect = 5.0;
	gl->timeouts.upstream_response = 60.0;
	gl->timeouts.upstream_idle = 60.0;
	gl->timeouts.tunnel_idle = 300.0;
	gl->timeouts.shutdown_grace = 30.0;
	gl->timeouts.client_first_byte = 10.0;
	gl->limits.max_header_bytes = 32768;
	gl->limits.max_headers = 100;
	gl->limits.max_uri_bytes = 8192;
	gl->limits.max_body_bytes = 0;
	gl->dns.servers.v = NULL;
	gl->dns.servers.n = 0;
	gl->dns.cache_ttl_max = 300.0;
	gl->dns.timeout = 2.0;
	gl->dns.hosts_file = conf_arena_strdup(x->a, "/etc/hosts");

	g = get_group(x, root, "", "global", k_global);
	if (!g)
		return;
	get_int(x, g, "global", "workers", 0, 1024, &gl->workers);
	get_text(x, g, "global", "user", 1, &gl->user);
	if ((s = member(g, "user")) != NULL)
		gl->user_src = src_of(x, s);
	get_int(x, g, "global", "max_connections", 1, 10000000, &gl->max_connections);
	get_int(x, g, "global", "max_connections_per_client", 0, 10000000, &gl->max_connections_per_client);
	get_path(x, g, "global", "state_dir", 0, &gl->state_dir);
	if ((s = member(g, "via_name")) && get_str(x, g, "global", "via_name", &v) == 1) {
		if (chk_token(x, v))
			serr(x, s, "global.via_name", "must be a token (letters, digits, '-', '.', '_'; no spaces)");
		else
			gl->via_name = v;
	}

	if ((s = get_group(x, g, "global", "log", k_log))) {
		if (get_text(x, s, "global.log", "error", 0, &v) == 1)
			gl->log.error = strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ? v : abs_path(x, v);
		if (get_enum(x, s, "global.log", "level", levels, &i) == 1)
			gl->log.level = i;
		if (get_text(x, s, "global.log", "access", 1, &v) == 1) {
			struct sockaddr_storage ss;
			socklen_t sl;
			const char *why;
			int tr;
			if (strncmp(v, "syslog:", 7) == 0) {
				if ((why = gw_addr_parse_syslog(v, &tr, &ss, &sl)) != NULL)
					serr(x, member(s, "access"), "global.log.access", "%s", why);
				else
					gl->log.access = v;
			} else {
				gl->log.access = strcmp(v, "stdout") == 0 || strcmp(v, "stderr") == 0 ? v : abs_path(x, v);
			}
		}
		{
			static const char *const facilities[] = { "kern", "user", "mail", "daemon", "auth", "syslog",
			    "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
			    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7", NULL };
			if (get_enum(x, s, "global.log", "syslog_facility", facilities, &i) == 1)
				gl->log.syslog_facility = i;
		}
		if (get_text(x, s, "global.log", "syslog_tag", 0, &v) == 1) {
			/* RFC 5424 APP-NAME: 1..48 printable ASCII, no space */
			size_t k = strlen(v), bad = k == 0 || k > 48;
			for (size_t j = 0; j < k; j++)
				bad |= v[j] <= 0x20 || v[j] >= 0x7f;
			if (bad)
				serr(x, member(s, "syslog_tag"), "global.log.syslog_tag",
				    "must be 1 to 48 printable ASCII characters without spaces");
			else
				gl->log.syslog_tag = v;
		}
		if (get_enum(x, s, "global.log", "access_format", formats, &i) == 1)
			gl->log.access_json = i;
	}
	if ((s = get_group(x, g, "global", "timeouts", k_timeouts))) {
		const char *t = "global.timeouts";
		get_num(x, s, t, "client_header", 0.001, MAX_TIMEOUT, &gl->timeouts.client_header);
		get_num(x, s, t, "client_body", 0.001, MAX_TIMEOUT, &gl->timeouts.client_body);
		get_num(x, s, t, "client_idle", 0.001, MAX_TIMEOUT, &gl->timeouts.client_idle);
		get_num(x, s, t, "upstream_connect", 0.001, MAX_TIMEOUT, &gl->timeouts.upstream_connect);
		get_num(x, s, t, "upstream_response", 0.001, MAX_TIMEOUT, &gl->timeouts.upstream_response);
		get_num(x, s, t, "upstream_idle", 0.001, MAX_TIMEOUT, &gl->timeouts.upstream_idle);
		get_num(x, s, t, "tunnel_idle", 0.001, MAX_TIMEOUT, &gl->timeouts.tunnel_idle);
		get_num(x, s, t, "shutdown_grace", 0, MAX_TIMEOUT, &gl->timeouts.shutdown_grace);
		get_num(x, s, t, "client_first_byte", 0.001, MAX_TIMEOUT, &gl->timeouts.client_first_byte);
		get_num(x, s, t, "client_body_min_rate", 0, 1e9, &gl->timeouts.client_body_min_rate);
	}
	if ((s = get_group(x, g, "global", "limits", k_limits))) {
		int64_t n;
		const char *t = "global.limits";
		get_size(x, s, t, "max_header_bytes", 1024, 1048576, &gl->limits.max_header_bytes);
		if (get_int(x, s, t, "max_headers", 1, 10000, &n) == 1)
			gl->limits.max_headers = (uint64_t)n;
		get_size(x, s, t, "max_uri_bytes", 64, 1048576, &gl->limits.max_uri_bytes);
		get_size(x, s, t, "max_body_bytes", 0, TB, &gl->limits.max_body_bytes);
	}
	if ((s = get_group(x, g, "global", "dns", k_dns))) {
		get_strs(x, s, "global.dns", "servers", 0, chk_dns_server, &gl->dns.servers);
		get_num(x, s, "global.dns", "cache_ttl_max", 0, MAX_TIMEOUT, &gl->dns.cache_ttl_max);
		get_num(x, s, "global.dns", "timeout", 0.1, 60, &gl->dns.timeout);
		get_path(x, s, "global.dns", "hosts_file", 1, &gl->dns.hosts_file);
	}
}

/* ---- listeners ---- */

static const char *const k_flistener[] = { "address", "max_connections_per_client", NULL };
static const char *const k_rlistener[] = { "address", "tls", "max_connections_per_client", NULL };

static void read_listeners(struct ctx *x, config_setting_t *g, const char *path, int allow_tls,
    struct conf_listener **out, size_t *nout)
{
	config_setting_t *l = get_glist(x, g, path, "listeners");
	char p[KP], ep[KP];
	unsigned i, n;

	*out = NULL;
	*nout = 0;
	if (!l)
		return;
	kp_child(p, path, "listeners");
	n = (unsigned)config_setting_length(l);
	*out = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(**out));
	for (i = 0; i < n; i++) {
		struct conf_listener *li = &(*out)[*nout];
		config_setting_t *e = glist_elem(x, l, p, i, allow_tls ? k_rlistener : k_flistener, ep);
		if (!e)
			continue;
		memset(li, 0, sizeof(*li));   /* the slot may hold a rejected element */
		li->src = src_of(x, e);
		li->max_connections_per_client = -1;
		get_int(x, e, ep, "max_connections_per_client", 0, 10000000, &li->max_connections_per_client);
		if (get_addr(x, e, ep, "address", 0, &li->addr) == 0) {
			missing(x, e, ep, "address");
			continue;
		}
		if (!li->addr.text)
			continue;
		if (allow_tls)
			get_bool(x, e, ep, "tls", &li->tls);
		(*nout)++;
	}
}

/* ---- forward ---- */

static const char *const k_forward[] = { "listeners", "allow_clients", "deny_destinations",
    "connect_ports", "anonymize", "block_contact", "block_page", "auth", "lists", "policy", "dlp", "pac", "parent",
    "websocket_ports", NULL };
static const char *const k_auth[] = { "realm", "users_file", "groups_file", "cache_ttl", NULL };
static const char *const k_list[] = { "name", "file", "domains", "urls", NULL };
static const char *const k_rule[] = { "name", "action", "clients", "users", "groups", "domains",
    "lists", "urls", "methods", "ports", "hours", "schemes", NULL };
static const char *const k_dlp[] = { "enabled", "action", "oversize", "max_scan_bytes", "detectors",
    "patterns", "max_scan_memory", NULL };
static const char *const k_pattern[] = { "name", "regex", NULL };
static const char *const k_pac[] = { "proxy", "direct", "fallback", "direct_private", NULL };

static void default_cidrs(struct ctx *x, struct conf_cidrs *out, const char *const *list)
{
	size_t n = 0, i;

	while (list[n])
		n++;
	out->v = conf_arena_alloc(x->a, n * sizeof(*out->v));
	for (i = 0; i < n; i++)
		if (conf_parse_cidr(list[i], &out->v[i]) != NULL)
			abort();
	out->n = n;
}

static void read_auth(struct ctx *x, config_setting_t *f)
{
	struct conf_fwd_auth *au = &x->c->forward.auth;
	config_setting_t *g = get_group(x, f, "forward", "auth", k_auth);
	char *v;

	au->realm = conf_arena_strdup(x->a, "Gatehouse");
	au->cache_ttl = 60.0;
	if (!g)
		return;
	au->present = 1;
	au->src = src_of(x, g);
	if (get_text(x, g, "forward.auth", "realm", 0, &v) == 1) {
		if (strchr(v, '"') || strchr(v, '\\'))
			serr(x, member(g, "realm"), "forward.auth.realm", "must not contain '\"' or '\\'");
		else
			au->realm = v;
	}
	if (get_path(x, g, "forward.auth", "users_file", 0, &au->users_file) == 0)
		missing(x, g, "forward.auth", "users_file");
	get_path(x, g, "forward.auth", "groups_file", 0, &au->groups_file);
	get_num(x, g, "forward.auth", "cache_ttl", 0, MAX_TIMEOUT, &au->cache_ttl);
}

static void read_lists(struct ctx *x, config_setting_t *f)
{
	struct conf_forward *fw = &x->c->forward;
	config_setting_t *l = get_glist(x, f, "forward", "lists");
	char ep[KP];
	unsigned i, n;
	size_t j;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	fw->lists = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*fw->lists));
	for (i = 0; i < n; i++) {
		struct conf_fwd_list *li = &fw->lists[fw->nlists];
		config_setting_t *e = glist_elem(x, l, "forward.lists", i, k_list, ep);
		int ok = 1;
		if (!e)
			continue;
		memset(li, 0, sizeof(*li));   /* the slot may hold a rejected element */
		li->src = src_of(x, e);
		if (get_text(x, e, ep, "name", 0, &li->name) != 1) {
			if (!member(e, "name"))
				missing(x, e, ep, "name");
			ok = 0;
		} else {
			for (j = 0; j < fw->nlists; j++) {
				if (strcmp(fw->lists[j].name, li->name) == 0) {
					char p[KP];
					kp_child(p, ep, "name");
					serr(x, member(e, "name"), p, "list \"%s\" is already defined at line %d",
					    li->name, fw->lists[j].src.line);
					ok = 0;
				}
			}
		}
		/* "domains" is "file" by its squidGuard name; "urls" beside it */
		int rf = get_path(x, e, ep, "file", 0, &li->file);
		int rd = member(e, "domains") ? get_path(x, e, ep, "domains", 0, &li->file) : 0;
		int ru = get_path(x, e, ep, "urls", 0, &li->urls);
		if (rf < 0 || rd < 0 || ru < 0)
			ok = 0;
		else if (rf == 1 && rd == 1) {
			char p[KP];
			kp_child(p, ep, "domains");
			serr(x, member(e, "domains"), p, "give \"file\" or \"domains\" (the same), not both");
			ok = 0;
		} else if (rf == 0 && rd == 0 && ru == 0) {
			missing(x, e, ep, "file");
			ok = 0;
		}
		if (ok)
			fw->nlists++;
	}
}

static void read_policy(struct ctx *x, config_setting_t *f)
{
	static const char *const actions[] = { "allow", "deny", "auth", NULL };
	struct conf_forward *fw = &x->c->forward;
	config_setting_t *l = get_glist(x, f, "forward", "policy");
	char ep[KP], p[KP];
	unsigned i, n;
	size_t j, k;

	if (!l)
		return;
	fw->policy_present = 1;
	n = (unsigned)config_setting_length(l);
	fw->policy = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*fw->policy));
	for (i = 0; i < n; i++) {
		struct conf_fwd_rule *r = &fw->policy[fw->npolicy];
		config_setting_t *e = glist_elem(x, l, "forward.policy", i, k_rule, ep);
		int act = -1, ok = 1;
		if (!e)
			continue;
		memset(r, 0, sizeof(*r));   /* the slot may hold a rejected element */
		r->src = src_of(x, e);
		if (get_text(x, e, ep, "name", 0, &r->name) == 1) {
			for (j = 0; j < fw->npolicy; j++) {
				if (fw->policy[j].name && strcmp(fw->policy[j].name, r->name) == 0) {
					kp_child(p, ep, "name");
					serr(x, member(e, "name"), p, "rule \"%s\" is already defined at line %d",
					    r->name, fw->policy[j].src.line);
					ok = 0;
				}
			}
		} else {
			r->name = NULL;
		}
		switch (get_enum(x, e, ep, "action", actions, &act)) {
		case 0:
			missing(x, e, ep, "action");
			ok = 0;
			break;
		case 1:
			r->action = act == 0 ? CONF_ACT_ALLOW : act == 1 ? CONF_ACT_DENY : CONF_ACT_AUTH;
			if (r->action == CONF_ACT_AUTH && !fw->auth.present) {
				kp_child(p, ep, "action");
				serr(x, member(e, "action"), p, "\"auth\" needs a forward.auth section");
				ok = 0;
			}
			break;
		default:
			ok = 0;
		}
		if (get_cidrs(x, e, ep, "clients", &r->clients) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "users", 0, chk_name, &r->users) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "groups", 0, chk_name, &r->groups) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "domains", 0, chk_host, &r->domains) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "lists", 0, chk_name, &r->lists) < 0) {
			ok = 0;
		} else {
			config_setting_t *ls = member(e, "lists");
			for (j = 0; j < r->lists.n; j++) {
				for (k = 0; k < fw->nlists; k++)
					if (strcmp(fw->lists[k].name, r->lists.v[j]) == 0)
						break;
				if (k == fw->nlists) {
					char lp[KP];
					kp_child(p, ep, "lists");
					kp_elem(lp, p, (unsigned)j);
					serr(x, config_setting_get_elem(ls, (unsigned)j), lp,
					    "no list named \"%s\" in forward.lists", r->lists.v[j]);
					ok = 0;
				}
			}
		}
		if (get_strs(x, e, ep, "urls", 0, chk_name, &r->urls) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "methods", 0, chk_method, &r->methods) < 0)
			ok = 0;
		if (get_ports(x, e, ep, "ports", &r->ports, &r->nports) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "hours", 1, chk_hours, &r->hours) < 0)
			ok = 0;
		if (get_strs(x, e, ep, "schemes", 0, chk_scheme, &r->schemes) < 0)
			ok = 0;
		{
			static const char *const matchers[] = { "clients", "users", "groups", "domains", "lists",
			    "urls", "methods", "ports", "hours", "schemes", NULL };
			const char *const *mk;
			for (mk = matchers; *mk; mk++) {
				config_setting_t *ms = member(e, *mk);
				if (ms && (config_setting_type(ms) == CONFIG_TYPE_ARRAY ||
				    config_setting_type(ms) == CONFIG_TYPE_LIST) && config_setting_length(ms) == 0) {
					kp_child(p, ep, *mk);
					serr(x, ms, p, "empty list; leave the key out to match anything");
					ok = 0;
				}
			}
		}
		if (ok)
			fw->npolicy++;
	}
}

static void read_dlp(struct ctx *x, config_setting_t *f)
{
	static const char *const actions[] = { "log", "deny", NULL };
	static const char *const oversize[] = { "allow", "deny", NULL };
	struct conf_fwd_dlp *d = &x->c->forward.dlp;
	config_setting_t *g = get_group(x, f, "forward", "dlp", k_dlp), *l;
	char ep[KP], p[KP];
	unsigned i, n;
	size_t j;

	d->enabled = 1;
	d->action_deny = 1;
	d->oversize_deny = 1;
	d->max_scan_bytes = 16u * 1024 * 1024;
	d->max_scan_memory = 256u * 1024 * 1024;
	if (!g)
		return;
	d->present = 1;
	d->src = src_of(x, g);
	get_bool(x, g, "forward.dlp", "enabled", &d->enabled);
	get_enum(x, g, "forward.dlp", "action", actions, &d->action_deny);
	get_enum(x, g, "forward.dlp", "oversize", oversize, &d->oversize_deny);
	get_size(x, g, "forward.dlp", "max_scan_bytes", 1024, 1024ull * 1024 * 1024, &d->max_scan_bytes);
	switch (get_size(x, g, "forward.dlp", "max_scan_memory", 64u * 1024, 1024ull * 1024 * 1024 * 1024,
	    &d->max_scan_memory)) {
	case 0:   /* the default holds at least one upload of the largest scanned size */
		if (d->max_scan_memory < d->max_scan_bytes)
			d->max_scan_memory = d->max_scan_bytes;
		break;
	case 1:
		if (d->max_scan_memory < d->max_scan_bytes)
			serr(x, member(g, "max_scan_memory"), "forward.dlp.max_scan_memory",
			    "must be at least max_scan_bytes (%llu), or no upload of that size could be scanned",
			    (unsigned long long)d->max_scan_bytes);
		break;
	}
	get_strs(x, g, "forward.dlp", "detectors", 0, chk_detector, &d->detectors);
	l = get_glist(x, g, "forward.dlp", "patterns");
	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	d->patterns = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*d->patterns));
	for (i = 0; i < n; i++) {
		struct conf_fwd_pattern *pt = &d->patterns[d->npatterns];
		config_setting_t *e = glist_elem(x, l, "forward.dlp.patterns", i, k_pattern, ep);
		int ok = 1;
		if (!e)
			continue;
		memset(pt, 0, sizeof(*pt));   /* the slot may hold a rejected element */
		pt->src = src_of(x, e);
		if (get_text(x, e, ep, "name", 0, &pt->name) != 1) {
			if (!member(e, "name"))
				missing(x, e, ep, "name");
			ok = 0;
		} else {
			for (j = 0; j < d->npatterns; j++) {
				if (strcmp(d->patterns[j].name, pt->name) == 0) {
					kp_child(p, ep, "name");
					serr(x, member(e, "name"), p, "pattern \"%s\" is already defined at line %d",
					    pt->name, d->patterns[j].src.line);
					ok = 0;
				}
			}
		}
		if (get_text(x, e, ep, "regex", 0, &pt->regex) != 1) {
			if (!member(e, "regex"))
				missing(x, e, ep, "regex");
			ok = 0;
		}
		if (ok)
			d->npatterns++;
	}
}

static const char *const k_parent[] = { "address", "auth", "bypass_domains", "fail_timeout", NULL };

static void read_parent(struct ctx *x, config_setting_t *f)
{
	struct conf_fwd_parent *pp = &x->c->forward.parent;
	config_setting_t *g = get_group(x, f, "forward", "parent", k_parent);
	struct conf_strs a = { NULL, 0 };
	char *v = NULL;

	if (!g)
		return;
	pp->present = 1;
	pp->src = src_of(x, g);
	pp->fail_timeout = 10.0;
	get_num(x, g, "forward.parent", "fail_timeout", 0, 3600, &pp->fail_timeout);
	switch (get_strs(x, g, "forward.parent", "address", 1, NULL, &a)) {
	case 0:
		missing(x, g, "forward.parent", "address");
		break;
	case 1:
		pp->addrs = conf_arena_alloc(x->a, (a.n ? a.n : 1) * sizeof *pp->addrs);
		for (size_t i = 0; i < a.n; i++) {
			const char *msg = conf_parse_addr(a.v[i], 1, &pp->addrs[pp->naddrs], x->a);
			if (msg)
				serr(x, member(g, "address"), "forward.parent.address", "%s: %s", a.v[i], msg);
			else
				pp->naddrs++;
		}
		if (a.n == 0)
			serr(x, member(g, "address"), "forward.parent.address", "must name at least one proxy");
		break;
	default:
		break;
	}
	if (get_text(x, g, "forward.parent", "auth", 0, &v) == 1) {
		if (strchr(v, ':') == NULL)
			serr(x, member(g, "auth"), "forward.parent.auth", "must be \"user:password\"");
		else
			pp->auth = v;
	}
	get_strs(x, g, "forward.parent", "bypass_domains", 0, chk_host, &pp->bypass);
}

static void read_pac(struct ctx *x, config_setting_t *f)
{
	struct conf_fwd_pac *pc = &x->c->forward.pac;
	config_setting_t *g = get_group(x, f, "forward", "pac", k_pac), *s;
	struct conf_addr a;
	char *v;

	if (!g)
		return;
	pc->present = 1;
	pc->src = src_of(x, g);
	s = member(g, "proxy");
	switch (get_text(x, g, "forward.pac", "proxy", 0, &v)) {
	case 0:
		missing(x, g, "forward.pac", "proxy");
		break;
	case 1: {
		const char *msg = conf_parse_addr(v, 1, &a, x->a);
		if (msg)
			serr(x, s, "forward.pac.proxy", "%s", msg);
		else
			pc->proxy = v;
		break;
	}
	default:
		break;
	}
	get_strs(x, g, "forward.pac", "direct", 0, chk_host, &pc->direct);
	{
		static const char *const fb[] = { "none", "direct", NULL };
		int i = 1;   /* "direct": what every PAC file served before the key existed said */

		get_enum(x, g, "forward.pac", "fallback", fb, &i);
		pc->fallback_none = i == 0;
	}
	get_bool(x, g, "forward.pac", "direct_private", &pc->direct_private);
}

/* The index of the first unknown or unclosed "{{...}}" in t, or -1. */
static long bad_placeholder(const char *t, size_t n)
{
	static const char *const names[] = {
#define X(name) #name,
		CONF_BLOCK_PLACEHOLDERS(X)
#undef X
		NULL };

	for (size_t i = 0; i + 1 < n; i++) {
		const char *e;
		size_t k;

		if (t[i] != '{' || t[i + 1] != '{')
			continue;
		e = memmem(t + i + 2, n - i - 2, "}}", 2);
		if (e == NULL)
			return (long)i;
		for (k = 0; names[k]; k++)
			if ((size_t)(e - t - (long)i - 2) == strlen(names[k]) &&
			    memcmp(t + i + 2, names[k], strlen(names[k])) == 0)
				break;
		if (names[k] == NULL)
			return (long)i;
		i = (size_t)(e - t) + 1;
	}
	return -1;
}

/* forward.block_page is read here, so a start, reload or -t with a missing,
 * unreadable, oversized or malformed template fails with FILE:LINE. */
static void read_block_page(struct ctx *x, config_setting_t *f)
{
	struct conf_forward *fw = &x->c->forward;
	config_setting_t *s = member(f, "block_page");
	char *path = NULL, *buf;
	struct stat st;
	size_t n;
	long bad;
	FILE *fp;

	if (get_path(x, f, "forward", "block_page", 0, &path) != 1)
		return;
	fp = fopen(path, "r");
	if (fp == NULL) {
		serr(x, s, "forward.block_page", "%s: %s", path, strerror(errno));
		return;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		serr(x, s, "forward.block_page", "%s: not a regular file", path);
		fclose(fp);
		return;
	}
	if (st.st_size > CONF_BLOCK_PAGE_MAX) {
		serr(x, s, "forward.block_page", "%s: larger than %d bytes", path, CONF_BLOCK_PAGE_MAX);
		fclose(fp);
		return;
	}
	buf = conf_arena_alloc(x->a, (size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, fp);
	if (ferror(fp)) {
		serr(x, s, "forward.block_page", "%s: %s", path, strerror(errno));
		fclose(fp);
		return;
	}
	fclose(fp);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		serr(x, s, "forward.block_page", "%s: contains a NUL byte", path);
		return;
	}
	bad = bad_placeholder(buf, n);
	if (bad >= 0) {
		size_t line = 1, show = strcspn(buf + bad, "\r\n\t");
		for (long i = 0; i < bad; i++)
			line += buf[i] == '\n';
		serr(x, s, "forward.block_page", "%s:%zu: unknown or unclosed placeholder \"%.*s\" "
		    "(known: {{reason}} {{rule}} {{url}} {{request_id}} {{contact}} {{client}} {{user}} {{time}})",
		    path, line, (int)(show < 24 ? show : 24), buf + bad);
		return;
	}
	fw->block_page = path;
	fw->block_page_text = buf;
	fw->block_page_len = n;
}

static void read_forward(struct ctx *x, config_setting_t *root)
{
	static const char *const def_allow[] = { "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
	    "192.168.0.0/16", NULL };
	static const char *const def_deny[] = { "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10",
	    NULL };
	struct conf_forward *fw = &x->c->forward;
	config_setting_t *f = get_group(x, root, "", "forward", k_forward);

	default_cidrs(x, &fw->allow_clients, def_allow);
	default_cidrs(x, &fw->deny_destinations, def_deny);
	fw->connect_ports = conf_arena_alloc(x->a, sizeof(uint16_t));
	fw->connect_ports[0] = 443;
	fw->nconnect_ports = 1;
	fw->block_contact = conf_arena_strdup(x->a, "");
	read_auth(x, NULL);
	read_dlp(x, NULL);
	if (!f)
		return;
	fw->present = 1;
	read_listeners(x, f, "forward", 0, &fw->listeners, &fw->nlisteners);
	get_cidrs(x, f, "forward", "allow_clients", &fw->allow_clients);
	get_cidrs(x, f, "forward", "deny_destinations", &fw->deny_destinations);
	get_ports(x, f, "forward", "connect_ports", &fw->connect_ports, &fw->nconnect_ports);
	get_ports(x, f, "forward", "websocket_ports", &fw->websocket_ports, &fw->nwebsocket_ports);
	get_bool(x, f, "forward", "anonymize", &fw->anonymize);
	get_text(x, f, "forward", "block_contact", 1, &fw->block_contact);
	read_block_page(x, f);
	read_auth(x, f);
	read_lists(x, f);
	read_policy(x, f);
	read_dlp(x, f);
	read_pac(x, f);
	read_parent(x, f);
}

/* ---- reverse ---- */

static const char *const k_reverse[] = { "listeners", "certificates", "trusted_proxies", "upstreams",
    "sites", "cache", "strip_headers", NULL };
static const char *const k_cache[] = { "memory", "max_object", "x_cache_header", NULL };
static const char *const k_route_cache[] = { "ttl", "stale_if_error", "ignore_set_cookie",
    "ignore_cookie", NULL };
static const char *const k_cert[] = { "cert", "key", "ocsp", "default", NULL };
static const char *const k_upstream[] = { "name", "balance", "servers", "health", "keepalive", "tls",
    "ca_file", "sni", "tls_verify", "max_fails", "fail_timeout", NULL };
static const char *const k_server[] = { "address", "weight", "backup", "max_conns", NULL };
static const char *const k_health[] = { "path", "interval", "timeout", "rise", "fall", "expect_status",
    "slow_start", NULL };
static const char *const k_site[] = { "hosts", "default", "force_https", "allow_clients",
    "deny_clients", "rate_limit", "routes", NULL };
static const char *const k_rate[] = { "requests_per_second", "burst", NULL };
static const char *const k_route[] = { "path", "upstream", "static", "redirect", "redirect_status",
    "strip_prefix", "set_headers", "max_body_bytes", "cache", "dotfiles", "keep_path", NULL };

static void read_certs(struct ctx *x, config_setting_t *r)
{
	struct conf_reverse *rv = &x->c->reverse;
	config_setting_t *l = get_glist(x, r, "reverse", "certificates");
	char ep[KP];
	unsigned i, n;
	int have_default = -1;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->certificates = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*rv->certificates));
	for (i = 0; i < n; i++) {
		struct conf_rev_cert *ce = &rv->certificates[rv->ncertificates];
		config_setting_t *e = glist_elem(x, l, "reverse.certificates", i, k_cert, ep);
		int ok = 1;
		if (!e)
			continue;
		memset(ce, 0, sizeof(*ce));   /* the slot may hold a rejected element */
		ce->src = src_of(x, e);
		if (get_path(x, e, ep, "cert", 0, &ce->cert) != 1) {
			if (!member(e, "cert"))
				missing(x, e, ep, "cert");
			ok = 0;
		}
		if (get_path(x, e, ep, "key", 0, &ce->key) != 1) {
			if (!member(e, "key"))
				missing(x, e, ep, "key");
			ok = 0;
		}
		if (get_path(x, e, ep, "ocsp", 0, &ce->ocsp) < 0)
			ok = 0;
		if (get_bool(x, e, ep, "default", &ce->is_default) == 1 && ce->is_default) {
			if (have_default >= 0) {
				char p[KP];
				kp_child(p, ep, "default");
				serr(x, member(e, "default"), p,
				    "only one certificate may be the default (reverse.certificates.[%d] is)",
				    have_default);
				ok = 0;
			} else {
				have_default = (int)i;
			}
		}
		if (ok)
			rv->ncertificates++;
	}
}

/* expect_status: 200, "200" or "200-399". */
static void read_status(struct ctx *x, config_setting_t *h, const char *hp, struct conf_rev_health *he)
{
	config_setting_t *s = member(h, "expect_status");
	char p[KP];
	int a, b;

	if (!s)
		return;
	kp_child(p, hp, "expect_status");
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *t = config_setting_get_string(s);
		char tail;
		int n = sscanf(t, "%3d-%3d%c", &a, &b, &tail);
		if (n == 1) {
			if (sscanf(t, "%3d%c", &a, &tail) != 1) {
				serr(x, s, p, "expected a status or range such as \"200-399\"");
				return;
			}
			b = a;
		} else if (n != 2) {
			serr(x, s, p, "expected a status or range such as \"200-399\"");
			return;
		}
	} else {
		long long v;
		if (check_int(x, s, p, 100, 599, &v) != 1)
			return;
		a = b = (int)v;
	}
	if (a < 100 || b > 599 || a > b) {
		serr(x, s, p, "statuses must be between 100 and 599, low to high");
		return;
	}
	he->status_min = a;
	he->status_max = b;
}

static void read_upstreams(struct ctx *x, config_setting_t *r)
{
	static const char *const balances[] = { "round_robin", "least_conn", "ip_hash", "random_two", NULL };
	struct conf_reverse *rv = &x->c->reverse;
	config_setting_t *l = get_glist(x, r, "reverse", "upstreams");
	char ep[KP], p[KP], sp[KP], hp[KP];
	unsigned i, n, j, m;
	size_t k;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->upstreams = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*rv->upstreams));
	for (i = 0; i < n; i++) {
		struct conf_rev_upstream *u = &rv->upstreams[rv->nupstreams];
		config_setting_t *e = glist_elem(x, l, "reverse.upstreams", i, k_upstream, ep), *sl, *h;
		struct conf_rev_health *he = &u->health;
		int ok = 1, bal = 0;
		if (!e)
			continue;
		memset(u, 0, sizeof(*u));   /* the slot may hold a rejected element */
		u->src = src_of(x, e);
		u->keepalive = 32;
		u->tls_verify = 1;
		u->max_fails = -1;
		u->fail_timeout = 10.0;
		he->path = conf_arena_strdup(x->a, "/");
		he->status_min = 200;
		he->status_max = 399;
		he->interval = 2.0;
		he->timeout = 1.0;
		he->rise = 2;
		he->fall = 3;
		he->slow_start = 0;
		switch (get_text(x, e, ep, "name", 0, &u->name)) {
		case 0:
			missing(x, e, ep, "name");
			ok = 0;
			break;
		case 1:
			kp_child(p, ep, "name");
			if (chk_token(x, u->name)) {
				serr(x, member(e, "name"), p, "must be a token (letters, digits, '-', '.', '_')");
				ok = 0;
				break;
			}
			for (k = 0; k < rv->nupstreams; k++) {
				if (strcmp(rv->upstreams[k].name, u->name) == 0) {
					serr(x, member(e, "name"), p, "upstream \"%s\" is already defined at line %d",
					    u->name, rv->upstreams[k].src.line);
					ok = 0;
				}
			}
			break;
		default:
			ok = 0;
		}
		if (get_enum(x, e, ep, "balance", balances, &bal) == 1)
			u->balance = (enum conf_balance)bal;
		get_int(x, e, ep, "keepalive", 0, 100000, &u->keepalive);
		get_bool(x, e, ep, "tls", &u->tls);
		get_path(x, e, ep, "ca_file", 0, &u->ca_file);
		if (get_text(x, e, ep, "sni", 0, &u->sni) == 1 && chk_host(x, u->sni)) {
			kp_child(p, ep, "sni");
			serr(x, member(e, "sni"), p, "not a valid host name");
		}
		get_bool(x, e, ep, "tls_verify", &u->tls_verify);
		get_int(x, e, ep, "max_fails", 0, 1000, &u->max_fails);
		get_num(x, e, ep, "fail_timeout", 0.1, 86400, &u->fail_timeout);

		kp_child(sp, ep, "servers");
		sl = get_glist(x, e, ep, "servers");
		if (!sl && !member(e, "servers"))
			missing(x, e, ep, "servers");
		m = sl ? (unsigned)config_setting_length(sl) : 0;
		if (sl && m == 0)
			serr(x, sl, sp, "needs at least one server");
		u->servers = conf_arena_alloc(x->a, (m ? m : 1) * sizeof(*u->servers));
		for (j = 0; j < m; j++) {
			struct conf_rev_server *sv = &u->servers[u->nservers];
			char sep[KP];
			config_setting_t *se = glist_elem(x, sl, sp, j, k_server, sep);
			if (!se)
				continue;
			memset(sv, 0, sizeof(*sv));   /* the slot may hold a rejected element */
			sv->src = src_of(x, se);
			sv->weight = 1;
			switch (get_addr(x, se, sep, "address", 1, &sv->addr)) {
			case 0:
				missing(x, se, sep, "address");
				continue;
			case 1:
				break;
			default:
				continue;
			}
			get_int(x, se, sep, "weight", 1, 1000, &sv->weight);
			get_bool(x, se, sep, "backup", &sv->backup);
			get_int(x, se, sep, "max_conns", 0, 1000000, &sv->max_conns);
			u->nservers++;
		}

		kp_child(hp, ep, "health");
		if ((h = get_group(x, e, ep, "health", k_health))) {
			he->present = 1;
			he->src = src_of(x, h);
			if (get_text(x, h, hp, "path", 0, &he->path) == 1 && he->path[0] != '/') {
				kp_child(p, hp, "path");
				serr(x, member(h, "path"), p, "must start with '/'");
			}
			get_num(x, h, hp, "interval", 0.1, 3600, &he->interval);
			if (get_num(x, h, hp, "timeout", 0.1, 3600, &he->timeout) == 1 &&
			    he->timeout > he->interval) {
				kp_child(p, hp, "timeout");
				serr(x, member(h, "timeout"), p, "must not be longer than interval (%g)", he->interval);
			}
			get_int(x, h, hp, "rise", 1, 100, &he->rise);
			get_int(x, h, hp, "fall", 1, 100, &he->fall);
			read_status(x, h, hp, he);
			get_num(x, h, hp, "slow_start", 0, 3600, &he->slow_start);
		}
		if (ok)
			rv->nupstreams++;
	}
}

/* Headers only the core writes (message framing and the connection). */
static int core_owned_header(const char *name)
{
	static const char *const owned[] = { "content-length", "transfer-encoding", "connection",
		"keep-alive", "proxy-connection", "te", "trailer", "upgrade", NULL };

	for (int i = 0; owned[i] != NULL; i++)
		if (strcasecmp(name, owned[i]) == 0)
			return 1;
	return 0;
}

static void read_set_headers(struct ctx *x, config_setting_t *e, const char *ep,
    struct conf_rev_route *ro)
{
	config_setting_t *g = member(e, "set_headers");
	char p[KP], hp[KP];
	unsigned i, n;

	if (!g)
		return;
	kp_child(p, ep, "set_headers");
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		serr(x, g, p, "expected a group of header = \"value\" pairs { X-Name = \"value\"; }");
		return;
	}
	n = (unsigned)config_setting_length(g);
	ro->set_headers = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*ro->set_headers));
	for (i = 0; i < n; i++) {
		config_setting_t *h = config_setting_get_elem(g, i);
		const char *name = config_setting_name(h);
		char *nm;
		kp_child(hp, p, name);
		nm = conf_arena_strdup(x->a, name);
		if (chk_token(x, nm)) {
			serr(x, h, hp, "not a valid header name");
			continue;
		}
		if (core_owned_header(nm)) {
			/* the core frames the body and runs the connection: an edit of
			 * these would send a body the next hop reads differently */
			serr(x, h, hp, "a framing or hop-by-hop header: only Gatehouse sets it");
			continue;
		}
		if (config_setting_type(h) != CONFIG_TYPE_STRING) {
			serr(x, h, hp, "expected a string");
			continue;
		}
		if (has_ctl(config_setting_get_string(h))) {
			serr(x, h, hp, "must not contain control characters");
			continue;
		}
		ro->set_headers[ro->nset_headers].name = nm;
		ro->set_headers[ro->nset_headers].value = conf_arena_strdup(x->a, config_setting_get_string(h));
		ro->nset_headers++;
	}
}

/* route cache = true | false | { ttl = ...; stale_if_error = ...; ignore_set_cookie = ...; } */
static void read_route_cache(struct ctx *x, config_setting_t *e, const char *ep,
    struct conf_rev_route *ro, int upstream_route)
{
	config_setting_t *c = member(e, "cache");
	char p[KP];

	ro->cache_stale_if_error = -1;
	if (!c)
		return;
	kp_child(p, ep, "cache");
	if (config_setting_type(c) == CONFIG_TYPE_BOOL) {
		ro->cache = config_setting_get_bool(c) ? 1 : 0;
	} else if (config_setting_type(c) == CONFIG_TYPE_GROUP) {
		check_keys(x, c, p, k_route_cache);
		ro->cache = 1;
		get_num(x, c, p, "ttl", 0, 31536000, &ro->cache_ttl);
		get_num(x, c, p, "stale_if_error", 0, 31536000, &ro->cache_stale_if_error);
		get_bool(x, c, p, "ignore_set_cookie", &ro->cache_ignore_set_cookie);
		get_bool(x, c, p, "ignore_cookie", &ro->cache_ignore_cookie);
	} else {
		serr(x, c, p, "expected true, false or a group { ttl = ...; stale_if_error = ...; }");
		return;
	}
	if (!ro->cache)
		return;
	if (!upstream_route)
		serr(x, c, p, "only applies to an upstream route");
	else if (!x->c->reverse.cache.present)
		serr(x, c, p, "needs reverse.cache = { memory = ...; } to be configured");
}

static void read_routes(struct ctx *x, config_setting_t *site, const char *sp, struct conf_rev_site *si)
{
	config_setting_t *l = get_glist(x, site, sp, "routes");
	char lp[KP], ep[KP], p[KP];
	unsigned i, n;
	size_t k;

	if (!l) {
		if (!member(site, "routes"))
			missing(x, site, sp, "routes");
		return;
	}
	kp_child(lp, sp, "routes");
	n = (unsigned)config_setting_length(l);
	if (n == 0)
		serr(x, l, lp, "needs at least one route");
	si->routes = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*si->routes));
	for (i = 0; i < n; i++) {
		struct conf_rev_route *ro = &si->routes[si->nroutes];
		config_setting_t *e = glist_elem(x, l, lp, i, k_route, ep);
		int ok = 1, kinds = 0;
		int64_t st;
		if (!e)
			continue;
		memset(ro, 0, sizeof(*ro));   /* the slot may hold a rejected element */
		ro->src = src_of(x, e);
		ro->redirect_status = 302;
		switch (get_text(x, e, ep, "path", 0, &ro->path)) {
		case 0:
			missing(x, e, ep, "path");
			ok = 0;
			break;
		case 1:
			kp_child(p, ep, "path");
			if (ro->path[0] != '/' || strchr(ro->path, ' ')) {
				serr(x, member(e, "path"), p, "must start with '/' and contain no spaces");
				ok = 0;
				break;
			}
			for (k = 0; k < si->nroutes; k++) {
				if (strcmp(si->routes[k].path, ro->path) == 0) {
					serr(x, member(e, "path"), p, "route \"%s\" is already defined at line %d",
					    ro->path, si->routes[k].src.line);
					ok = 0;
				}
			}
			break;
		default:
			ok = 0;
		}
		if (member(e, "upstream")) {
			kinds++;
			ro->kind = CONF_ROUTE_UPSTREAM;
			if (get_text(x, e, ep, "upstream", 0, &ro->upstream) != 1)
				ok = 0;
		}
		if (member(e, "static")) {
			kinds++;
			ro->kind = CONF_ROUTE_STATIC;
			if (get_path(x, e, ep, "static", 0, &ro->static_dir) != 1)
				ok = 0;
		}
		if (member(e, "redirect")) {
			kinds++;
			ro->kind = CONF_ROUTE_REDIRECT;
			if (get_text(x, e, ep, "redirect", 0, &ro->redirect) != 1) {
				ok = 0;
			} else if (ro->redirect[0] != '/' && strncmp(ro->redirect, "http://", 7) != 0 &&
			    strncmp(ro->redirect, "https://", 8) != 0) {
				kp_child(p, ep, "redirect");
				serr(x, member(e, "redirect"), p, "must be an http:// or https:// URL or start with '/'");
				ok = 0;
			}
		}
		if (kinds != 1) {
			serr(x, e, ep, kinds ? "give only one of upstream, static or redirect"
			    : "needs one of upstream, static or redirect");
			ok = 0;
		}
		switch (get_int(x, e, ep, "redirect_status", INT_MIN, INT_MAX, &st)) {
		case 1:
			kp_child(p, ep, "redirect_status");
			if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308) {
				serr(x, member(e, "redirect_status"), p, "must be 301, 302, 303, 307 or 308");
				ok = 0;
			} else if (ro->kind != CONF_ROUTE_REDIRECT || kinds != 1) {
				serr(x, member(e, "redirect_status"), p, "only applies to a redirect route");
				ok = 0;
			}
			ro->redirect_status = (int)st;
			break;
		case -1:
			ok = 0;
			break;
		}
		get_bool(x, e, ep, "strip_prefix", &ro->strip_prefix);
		if (get_bool(x, e, ep, "dotfiles", &ro->dotfiles) == 1 && kinds == 1 &&
		    ro->kind != CONF_ROUTE_STATIC) {
			kp_child(p, ep, "dotfiles");
			serr(x, member(e, "dotfiles"), p, "only applies to a static route");
			ok = 0;
		}
		if (get_bool(x, e, ep, "keep_path", &ro->keep_path) == 1 && kinds == 1 &&
		    ro->kind != CONF_ROUTE_REDIRECT) {
			kp_child(p, ep, "keep_path");
			serr(x, member(e, "keep_path"), p, "only applies to a redirect route");
			ok = 0;
		}
		read_set_headers(x, e, ep, ro);
		get_size(x, e, ep, "max_body_bytes", 0, TB, &ro->max_body_bytes);
		read_route_cache(x, e, ep, ro, kinds == 1 && ro->kind == CONF_ROUTE_UPSTREAM);
		if (ok)
			si->nroutes++;
	}
}

static void read_sites(struct ctx *x, config_setting_t *r)
{
	struct conf_reverse *rv = &x->c->reverse;
	config_setting_t *l = get_glist(x, r, "reverse", "sites");
	char ep[KP], p[KP], rp[KP];
	unsigned i, n;
	int have_default = -1;
	size_t j, k, h;

	if (!l)
		return;
	n = (unsigned)config_setting_length(l);
	rv->sites = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*rv->sites));
	for (i = 0; i < n; i++) {
		struct conf_rev_site *si = &rv->sites[rv->nsites];
		config_setting_t *e = glist_elem(x, l, "reverse.sites", i, k_site, ep), *rl;
		int hr;
		if (!e)
			continue;
		memset(si, 0, sizeof(*si));   /* the slot may hold a rejected element */
		si->src = src_of(x, e);
		hr = get_strs(x, e, ep, "hosts", 0, chk_host, &si->hosts);
		for (h = 0; h < si->hosts.n; h++) {
			for (j = 0; j < rv->nsites; j++) {
				for (k = 0; k < rv->sites[j].hosts.n; k++) {
					if (strcmp(rv->sites[j].hosts.v[k], si->hosts.v[h]) == 0) {
						char hp[KP];
						kp_child(p, ep, "hosts");
						kp_elem(hp, p, (unsigned)h);
						serr(x, config_setting_get_elem(member(e, "hosts"), (unsigned)h), hp,
						    "host \"%s\" is already served by reverse.sites.[%zu]",
						    si->hosts.v[h], j);
					}
				}
			}
		}
		if (get_bool(x, e, ep, "default", &si->is_default) == 1 && si->is_default) {
			if (have_default >= 0) {
				kp_child(p, ep, "default");
				serr(x, member(e, "default"), p,
				    "only one site may be the default (reverse.sites.[%d] is)", have_default);
			} else {
				have_default = (int)i;
			}
		}
		if (si->hosts.n == 0 && !si->is_default && hr >= 0)
			serr(x, e, ep, "needs hosts, or default = true");
		get_bool(x, e, ep, "force_https", &si->force_https);
		get_cidrs(x, e, ep, "allow_clients", &si->allow_clients);
		get_cidrs(x, e, ep, "deny_clients", &si->deny_clients);
		kp_child(rp, ep, "rate_limit");
		if ((rl = get_group(x, e, ep, "rate_limit", k_rate))) {
			if (get_num(x, rl, rp, "requests_per_second", 0, 1e6, &si->rate_rps) == 0)
				missing(x, rl, rp, "requests_per_second");
			if (get_num(x, rl, rp, "burst", 0, 1e6, &si->rate_burst) == 0)
				si->rate_burst = si->rate_rps < 1 ? 1 : si->rate_rps;
		}
		read_routes(x, e, ep, si);
		rv->nsites++;
	}
}

static void read_cache(struct ctx *x, config_setting_t *r)
{
	struct conf_rev_cache *ca = &x->c->reverse.cache;
	config_setting_t *g = get_group(x, r, "reverse", "cache", k_cache);

	ca->memory = 256ull << 20;
	ca->max_object = 8ull << 20;
	ca->x_cache_header = 1;
	if (!g)
		return;
	ca->present = 1;
	ca->src = src_of(x, g);
	get_size(x, g, "reverse.cache", "memory", 65536, TB, &ca->memory);
	if (get_size(x, g, "reverse.cache", "max_object", 1, TB, &ca->max_object) == 1 &&
	    ca->max_object > ca->memory)
		serr(x, member(g, "max_object"), "reverse.cache.max_object",
		    "must not be larger than reverse.cache.memory");
	get_bool(x, g, "reverse.cache", "x_cache_header", &ca->x_cache_header);
}

/* A header a client's request may lose: any field but the ones that frame
 * or route the message. */
static const char *chk_strip_header(struct ctx *x, char *v)
{
	static const char *const never[] = { "host", "content-length", "transfer-encoding",
		"connection", NULL };

	if (chk_token(x, v))
		return "not a valid header name";
	for (int i = 0; never[i] != NULL; i++)
		if (strcasecmp(v, never[i]) == 0)
			return "frames or routes the request: it cannot be stripped";
	return NULL;
}

static void read_strip_headers(struct ctx *x, config_setting_t *r)
{
	static const char *const dflt[] = { "X-Real-IP", "X-Original-URL", "X-Rewrite-URL",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Client-IP",
		"True-Client-IP", "CF-Connecting-IP", "X-Cluster-Client-IP", "X-Forwarded-Server",
		"X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "Front-End-Https",
		"X-Original-Host", "X-Host" };
	struct conf_strs *sh = &x->c->reverse.strip_headers;

	if (get_strs(x, r, "reverse", "strip_headers", 0, chk_strip_header, sh) != 0)
		return;
	sh->n = sizeof dflt / sizeof dflt[0];
	sh->v = conf_arena_alloc(x->a, sh->n * sizeof(char *));
	for (size_t i = 0; i < sh->n; i++)
		sh->v[i] = conf_arena_strdup(x->a, dflt[i]);
}

static void read_reverse(struct ctx *x, config_setting_t *root)
{
	struct conf_reverse *rv = &x->c->reverse;
	config_setting_t *r = get_group(x, root, "", "reverse", k_reverse);

	if (!r)
		return;
	rv->present = 1;
	read_listeners(x, r, "reverse", 1, &rv->listeners, &rv->nlisteners);
	read_certs(x, r);
	get_cidrs(x, r, "reverse", "trusted_proxies", &rv->trusted_proxies);
	read_strip_headers(x, r);
	read_upstreams(x, r);
	read_cache(x, r);
	read_sites(x, r);
}

/* Route upstream names must exist (after all upstreams are read). */
static void check_route_upstreams(struct ctx *x, config_setting_t *root)
{
	struct conf_reverse *rv = &x->c->reverse;
	size_t i, j, k;

	(void)root;
	for (i = 0; i < rv->nsites; i++) {
		for (j = 0; j < rv->sites[i].nroutes; j++) {
			struct conf_rev_route *ro = &rv->sites[i].routes[j];
			if (ro->kind != CONF_ROUTE_UPSTREAM || !ro->upstream)
				continue;
			for (k = 0; k < rv->nupstreams; k++)
				if (strcmp(rv->upstreams[k].name, ro->upstream) == 0)
					break;
			if (k == rv->nupstreams) {
				char p[KP];
				snprintf(p, sizeof(p), "reverse.sites.[%zu].routes.[%zu].upstream", i, j);
				cerr(x, ro->src.file, ro->src.line, p,
				    "no upstream named \"%s\" in reverse.upstreams", ro->upstream);
			}
		}
	}
}

/* ---- admin ---- */

static const char *const k_admin[] = { "listen", "metrics_listen", "users_file", "tls_cert", "tls_key",
    "session_idle", "max_conns_per_client", "client_timeout", NULL };

static void read_admin(struct ctx *x, config_setting_t *root)
{
	struct conf_admin *ad = &x->c->admin;
	config_setting_t *g = get_group(x, root, "", "admin", k_admin), *s;

	if (conf_parse_addr("127.0.0.1:9090", 0, &ad->listen, x->a))
		abort();
	ad->metrics_listen.text = conf_arena_strdup(x->a, "");
	ad->metrics_listen.host = conf_arena_strdup(x->a, "");
	ad->users_file = conf_arena_strdup(x->a, "/etc/gatehouse/admin.users");
	ad->session_idle = 1800.0;
	ad->max_conns_per_client = 16;
	ad->client_timeout = 15.0;
	if (!g)
		return;
	ad->present = 1;
	ad->listen_enabled = 1;
	if ((s = member(g, "listen")))
		x->admin_line[0] = (int)config_setting_source_line(s);
	if ((s = member(g, "metrics_listen")))
		x->admin_line[1] = (int)config_setting_source_line(s);
	if ((s = member(g, "listen")) && config_setting_type(s) == CONFIG_TYPE_STRING &&
	    !*config_setting_get_string(s)) {
		ad->listen_enabled = 0;
		ad->listen.text = conf_arena_strdup(x->a, "");
		ad->listen.host = conf_arena_strdup(x->a, "");
		ad->listen.port = 0;
		ad->listen.sslen = 0;
	} else if (get_addr(x, g, "admin", "listen", 0, &ad->listen) < 0) {
		ad->listen_enabled = 0;
	}
	if ((s = member(g, "metrics_listen")) && (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    *config_setting_get_string(s))) {
		if (get_addr(x, g, "admin", "metrics_listen", 0, &ad->metrics_listen) == 1)
			ad->metrics_enabled = 1;
	}
	get_path(x, g, "admin", "users_file", 0, &ad->users_file);
	get_path(x, g, "admin", "tls_cert", 0, &ad->tls_cert);
	get_path(x, g, "admin", "tls_key", 0, &ad->tls_key);
	get_num(x, g, "admin", "session_idle", 1.0, 86400.0, &ad->session_idle);
	/* the console holds at most 128 connections: a few addresses must not take them all */
	get_int(x, g, "admin", "max_conns_per_client", 1, 128, &ad->max_conns_per_client);
	get_num(x, g, "admin", "client_timeout", 1.0, 3600.0, &ad->client_timeout);
	if (!ad->tls_cert != !ad->tls_key)
		serr(x, member(g, ad->tls_cert ? "tls_cert" : "tls_key"), ad->tls_cert ? "admin.tls_cert" : "admin.tls_key",
		    "set both tls_cert and tls_key, or neither");
}

/* ---- listener overlap across forward, reverse and admin ---- */

struct bound {
	const struct conf_addr *a;
	char key[KP];
	const char *file;
	int line;
};

static int addr_same_ip(const struct conf_addr *a, const struct conf_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return 0;
	if (a->ss.ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)&a->ss)->sin_addr,
		    &((const struct sockaddr_in *)&b->ss)->sin_addr, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
	    &((const struct sockaddr_in6 *)&b->ss)->sin6_addr, 16) == 0;
}

/* 4: 0.0.0.0, 6: [::] or "*" (dual stack), 0: a specific address */
static int addr_any(const struct conf_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == 0 ? 4 : 0;
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr) ? 6 : 0;
}

/* Would binding both (with SO_REUSEPORT) overlap? */
static int addr_conflict(const struct conf_addr *p, const struct conf_addr *q)
{
	int ap = addr_any(p), aq = addr_any(q);

	if (p->port != q->port)
		return 0;
	if (ap == 6 || aq == 6)
		return 1;
	if (ap == 4 || aq == 4)
		return p->ss.ss_family == q->ss.ss_family;
	return addr_same_ip(p, q);
}


static void check_overlap(struct ctx *x)
{
	struct conf *c = x->c;
	size_t n = c->forward.nlisteners + c->reverse.nlisteners + 2, nb = 0, i, j;
	struct bound *b = calloc(n, sizeof(*b));

	if (!b)
		abort();
	for (i = 0; i < c->forward.nlisteners; i++, nb++) {
		b[nb].a = &c->forward.listeners[i].addr;
		snprintf(b[nb].key, KP, "forward.listeners.[%zu].address", i);
		b[nb].file = c->forward.listeners[i].src.file;
		b[nb].line = c->forward.listeners[i].src.line;
	}
	for (i = 0; i < c->reverse.nlisteners; i++, nb++) {
		b[nb].a = &c->reverse.listeners[i].addr;
		snprintf(b[nb].key, KP, "reverse.listeners.[%zu].address", i);
		b[nb].file = c->reverse.listeners[i].src.file;
		b[nb].line = c->reverse.listeners[i].src.line;
	}
	for (i = 0; i < 2; i++) {
		const struct conf_addr *a = i ? &c->admin.metrics_listen : &c->admin.listen;
		if (!(i ? c->admin.metrics_enabled : c->admin.listen_enabled) || !a->sslen)
			continue;
		b[nb].a = a;
		snprintf(b[nb].key, KP, "%s", i ? "admin.metrics_listen" : "admin.listen");
		b[nb].file = x->path;
		b[nb].line = x->admin_line[i];
		nb++;
	}
	for (i = 0; i < nb; i++) {
		for (j = 0; j < i; j++) {
			const struct conf_addr *p = b[i].a, *q = b[j].a;
			if (addr_conflict(p, q)) {
				cerr(x, b[i].file, b[i].line, b[i].key,
				    "\"%s\" conflicts with %s (\"%s\")", p->text, b[j].key, q->text);
				break;
			}
		}
	}
	free(b);
}

/* ---- load ---- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (!slash)
		return strdup("");
	if (slash == path)
		return strdup("/");
	d = strndup(path, (size_t)(slash - path));
	return d;
}

struct conf *conf_load(const char *path, struct conf_errors *errs)
{
	struct ctx x;
	config_t cfg;
	config_setting_t *root, *s;
	struct conf *c;
	void *a;
	char *real;
	FILE *f;

	memset(&x, 0, sizeof(x));
	x.errs = errs;
	x.nerr0 = errs->n;
	x.path = path;

	f = fopen(path, "r");
	if (!f) {
		conf_err(errs, path, 0, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	fclose(f);
	if (!check_regular(path)) {
		conf_err(errs, path, 0, NULL, "cannot open: not a regular file");
		return NULL;
	}

	x.showdir = dir_of(path);
	if (!x.showdir)
		abort();
	real = realpath(x.showdir[0] ? x.showdir : ".", NULL);
	if (!real) {
		conf_err(errs, path, 0, NULL, "cannot resolve its directory: %s", strerror(errno));
		free(x.showdir);
		return NULL;
	}
	x.absdir = real;

	a = conf_arena_new();
	c = conf_arena_alloc(a, sizeof(*c));
	c->arena = a;
	c->path = conf_arena_strdup(a, path);
	c->dir = conf_arena_strdup(a, x.absdir);
	x.c = c;
	x.a = a;

	config_init(&cfg);
	config_set_auto_convert(&cfg, 1);
	config_set_include_dir(&cfg, x.absdir);
	if (check_includes(&x, path, path, 0)) {
		/* reported */
	} else if (!config_read_file(&cfg, path)) {
		const char *ef = config_error_file(&cfg);
		cerr(&x, show_file(&x, ef ? ef : path), config_error_line(&cfg), NULL, "syntax: %s",
		    config_error_text(&cfg));
	} else {
		root = config_root_setting(&cfg);
		check_keys(&x, root, "", k_root);
		read_global(&x, root);
		read_forward(&x, root);
		read_reverse(&x, root);
		read_admin(&x, root);
		check_route_upstreams(&x, root);
		check_overlap(&x);
		(void)s;
	}
	config_destroy(&cfg);

	while (x.scans) {
		struct scanned *next = x.scans->next;
		free(x.scans->name);
		free(x.scans->v);
		free(x.scans);
		x.scans = next;
	}
	sort_errors(&x);
	while (x.nfiles)
		free(x.files[--x.nfiles]);
	free(x.files);
	free(x.epos);
	free(x.showdir);
	free(x.absdir);
	if (errs->n > x.nerr0) {
		conf_arena_free(a);
		return NULL;
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (c)
		conf_arena_free(c->arena);
}
