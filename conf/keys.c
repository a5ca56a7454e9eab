/*
 * conf/keys: the engine's key readers (conf/keys.h): error reporting with
 * FILE:LINE and its file-order sort, key paths, group and allow-list checks,
 * the typed getters and the side-neutral element validators.
 *
 * Error style (one line each, also what `gatehouse -t` prints):
 *     FILE:LINE: key.path: message
 * FILE is the main file as given (included files: their name joined to the
 * main file's directory), LINE the line of the offending setting (of the
 * enclosing group for a missing key).  key.path is dotted; list elements are
 * ".[i]", 0-based, as libconfig's own path syntax: forward.policy.[2].action.
 */
#include "conf/conf_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *conf_section(struct conf_ctx *x)
{
	return x->section;
}

void *conf_ctx_arena(struct conf_ctx *x)
{
	return x->a;
}

const char *conf_ctx_path(struct conf_ctx *x)
{
	return x->path;
}

/* ---- error reporting ---- */

const char *conf_show_file(struct conf_ctx *x, const char *name)
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
void conf_cerr(struct conf_ctx *x, const char *file, int line, const char *key, const char *fmt, ...)
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
void conf_sort_errors(struct conf_ctx *x)
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
void conf_serr(struct conf_ctx *x, const config_setting_t *s, const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_cerr(x, conf_show_file(x, s ? config_setting_source_file(s) : NULL),
	    s ? (int)config_setting_source_line(s) : 0, key && *key ? key : NULL, "%s", msg);
}

/* Key paths longer than CONF_KP are cut (only the message suffers). */
static void kp_cat(char *out, size_t *n, const char *s)
{
	while (*s && *n < CONF_KP - 1)
		out[(*n)++] = *s++;
	out[*n] = '\0';
}

void conf_kp_child(char *out, const char *parent, const char *name)
{
	size_t n = 0;

	out[0] = '\0';
	if (parent && *parent) {
		kp_cat(out, &n, parent);
		kp_cat(out, &n, ".");
	}
	kp_cat(out, &n, name);
}

void conf_kp_elem(char *out, const char *parent, unsigned i)
{
	char idx[24];
	size_t n = 0;

	sprintf(idx, ".[%u]", i);
	out[0] = '\0';
	kp_cat(out, &n, parent);
	kp_cat(out, &n, idx);
}

struct conf_src conf_src_of(struct conf_ctx *x, const config_setting_t *s)
{
	struct conf_src r;
	r.file = conf_arena_strdup(x->a, conf_show_file(x, config_setting_source_file(s)));
	r.line = (int)config_setting_source_line(s);
	return r;
}

/* ---- schema helpers ---- */

config_setting_t *conf_member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

/* Reports every member of group g whose name is not in keys (NULL-terminated). */
void conf_check_keys(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *const *keys)
{
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		const char *const *k;
		char p[CONF_KP];
		for (k = keys; *k; k++)
			if (name && strcmp(name, *k) == 0)
				break;
		if (!*k) {
			conf_kp_child(p, path, name ? name : "?");
			conf_serr(x, m, p, "unknown key");
		}
	}
}

void conf_missing(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name)
{
	char p[CONF_KP];
	conf_kp_child(p, path, name);
	conf_serr(x, g, p, "required key is missing");
}

/* A sub-group: NULL when absent or (reported) not a group. */
config_setting_t *conf_get_group(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name, const char *const *keys)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];

	if (!s)
		return NULL;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		conf_serr(x, s, p, "expected a group { ... }");
		return NULL;
	}
	conf_check_keys(x, s, p, keys);
	return s;
}

/* A list of groups "( {...}, {...} )"; an empty [] or () is fine.  NULL when absent or wrong. */
config_setting_t *conf_get_glist(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];

	if (!s)
		return NULL;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_LIST ||
	    (config_setting_type(s) == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
		return s;
	conf_serr(x, s, p, "expected a list ( { ... }, ... )");
	return NULL;
}

/* Element i of a group list, checked to be a group with allowed keys. */
config_setting_t *conf_glist_elem(struct conf_ctx *x, config_setting_t *l, const char *path,
    unsigned i, const char *const *keys, char *ep)
{
	config_setting_t *e = config_setting_get_elem(l, i);

	conf_kp_elem(ep, path, i);
	if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
		conf_serr(x, e, ep, "expected a group { ... }");
		return NULL;
	}
	conf_check_keys(x, e, ep, keys);
	return e;
}

void *conf_get_named_glist(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name, const char *const *keys, const char *what, size_t elem_size, size_t name_off,
    size_t src_off, int (*read)(struct conf_ctx *x, config_setting_t *e, const char *ep, void *elem),
    size_t *n)
{
	config_setting_t *l = conf_get_glist(x, g, path, name);
	char lp[CONF_KP], ep[CONF_KP];
	unsigned i, len;
	size_t j;
	char *v;

	*n = 0;
	if (!l)
		return NULL;
	conf_kp_child(lp, path, name);
	len = (unsigned)config_setting_length(l);
	v = conf_arena_alloc(x->a, (len ? len : 1) * elem_size);
	for (i = 0; i < len; i++) {
		char *el = v + *n * elem_size, **elname = (char **)(el + name_off);
		config_setting_t *e = conf_glist_elem(x, l, lp, i, keys, ep);
		int ok = 1;
		if (!e)
			continue;
		memset(el, 0, elem_size);   /* the slot may hold a rejected element */
		*(struct conf_src *)(el + src_off) = conf_src_of(x, e);
		if (conf_get_text(x, e, ep, "name", 0, elname) != 1) {
			if (!conf_member(e, "name"))
				conf_missing(x, e, ep, "name");
			ok = 0;
		} else {
			for (j = 0; j < *n; j++) {
				const char *prev = v + j * elem_size;
				if (strcmp(*(char *const *)(prev + name_off), *elname) == 0) {
					char p[CONF_KP];
					conf_kp_child(p, ep, "name");
					conf_serr(x, conf_member(e, "name"), p, "%s \"%s\" is already defined at line %d",
					    what, *elname, ((const struct conf_src *)(prev + src_off))->line);
					ok = 0;
				}
			}
		}
		if (read && !read(x, e, ep, el))
			ok = 0;
		if (ok)
			(*n)++;
	}
	return v;
}

int conf_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Returns 1 read, 0 absent, -1 reported. */
int conf_get_str(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    char **out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_kp_child(p, path, name);
		conf_serr(x, s, p, "expected a string");
		return -1;
	}
	*out = conf_arena_strdup(x->a, config_setting_get_string(s));
	return 1;
}

/* A string without control characters; nonempty unless allow_empty. */
int conf_get_text(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out)
{
	char *v = NULL, p[CONF_KP];
	int r = conf_get_str(x, g, path, name, &v);

	if (r != 1)
		return r;
	conf_kp_child(p, path, name);
	if (!allow_empty && !*v) {
		conf_serr(x, conf_member(g, name), p, "must not be empty");
		return -1;
	}
	if (conf_has_ctl(v)) {
		conf_serr(x, conf_member(g, name), p, "must not contain control characters");
		return -1;
	}
	*out = v;
	return 1;
}

char *conf_abs_path(struct conf_ctx *x, const char *v)
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
int conf_get_path(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out)
{
	char *v = NULL;
	int r = conf_get_text(x, g, path, name, allow_empty, &v);

	if (r == 1)
		*out = conf_abs_path(x, v);
	return r;
}

int conf_get_bool(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		conf_kp_child(p, path, name);
		conf_serr(x, s, p, "expected true or false");
		return -1;
	}
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 1;
}

/* One of choices (NULL-terminated); *out = its index. */
int conf_get_enum(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    const char *const *choices, int *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP], list[256] = "";
	const char *v;
	int i;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_serr(x, s, p, "expected a string");
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
	conf_serr(x, s, p, "must be %s", list);
	return -1;
}

/*
 * The integer value of s: 0 fine, -1 not an integer, -2 a literal that
 * libconfig wrapped (then *v is meaningless and *lit names it).
 */
static int int_of(struct conf_ctx *x, const config_setting_t *s, long long *v, const char **lit)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return -1;
	*v = config_setting_get_int64(s);
	if (t == CONFIG_TYPE_INT && (*lit = conf_overflowed(x, s)) != NULL)
		return -2;
	return 0;
}

int conf_check_int(struct conf_ctx *x, const config_setting_t *s, const char *p, long long min,
    long long max, long long *out)
{
	long long v = 0;
	const char *lit = NULL;
	int r = int_of(x, s, &v, &lit);

	if (r == -1) {
		conf_serr(x, s, p, "expected an integer");
		return -1;
	}
	if (r == -2 || v < min || v > max) {
		conf_serr(x, s, p, "must be between %lld and %lld", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

int conf_get_int(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    long long min, long long max, int64_t *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];
	long long v;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (conf_check_int(x, s, p, min, max, &v) != 1)
		return -1;
	*out = v;
	return 1;
}

/* Seconds (or any non-negative number): int or float. */
int conf_get_num(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    double min, double max, double *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];
	double v;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
		v = config_setting_get_float(s);
	} else {
		long long i;
		const char *lit = NULL;
		int r = int_of(x, s, &i, &lit);
		if (r == -1) {
			conf_serr(x, s, p, "expected a number");
			return -1;
		}
		v = r == -2 ? max * 2 + 1 : (double)i;
	}
	if (!(v >= min && v <= max)) {
		conf_serr(x, s, p, "must be between %g and %g", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

/* Bytes: an integer or a string with a unit. */
int conf_get_size(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint64_t min, uint64_t max, uint64_t *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];
	uint64_t v;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *msg = conf_parse_size(config_setting_get_string(s), &v);
		if (msg) {
			conf_serr(x, s, p, "%s", msg);
			return -1;
		}
	} else {
		long long i;
		const char *lit = NULL;
		int r = int_of(x, s, &i, &lit);
		if (r == -1) {
			conf_serr(x, s, p, "expected a size (bytes, or a string such as \"64k\", \"16M\", \"1G\")");
			return -1;
		}
		if (r == -2) {
			conf_serr(x, s, p, "%s does not fit in a 32-bit integer; write %sL or a string with a unit (\"64M\")",
			    lit, lit);
			return -1;
		}
		if (i < 0) {
			conf_serr(x, s, p, "must be between %llu and %llu", (unsigned long long)min,
			    (unsigned long long)max);
			return -1;
		}
		v = (uint64_t)i;
	}
	if (v < min || v > max) {
		conf_serr(x, s, p, "must be between %llu and %llu", (unsigned long long)min,
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
int conf_get_strs(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int single, const char *(*check)(struct conf_ctx *x, char *v), struct conf_strs *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP], ep[CONF_KP];
	int t, bad = 0;
	unsigned i, n;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	t = config_setting_type(s);
	if (single && t == CONFIG_TYPE_STRING) {
		char *v = conf_arena_strdup(x->a, config_setting_get_string(s));
		const char *msg = check ? check(x, v) : (conf_has_ctl(v) ? "must not contain control characters" : NULL);
		if (msg) {
			conf_serr(x, s, p, "%s", msg);
			return -1;
		}
		out->v = conf_arena_alloc(x->a, sizeof(char *));
		out->v[0] = v;
		out->n = 1;
		return 1;
	}
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		conf_serr(x, s, p, single ? "expected a string or a list of strings [ \"...\", ... ]"
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
		conf_kp_elem(ep, p, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_serr(x, e, ep, "expected a string");
			bad = 1;
			continue;
		}
		v = conf_arena_strdup(x->a, config_setting_get_string(e));
		msg = check ? check(x, v) : (conf_has_ctl(v) ? "must not contain control characters" : NULL);
		if (msg) {
			conf_serr(x, e, ep, "%s", msg);
			bad = 1;
			continue;
		}
		out->v[out->n++] = v;
	}
	return bad ? -1 : 1;
}

int conf_get_cidrs(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    struct conf_cidrs *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP], ep[CONF_KP];
	unsigned i, n;
	int bad = 0;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		conf_serr(x, s, p, "expected a list of addresses [ \"10.0.0.0/8\", ... ]");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	out->v = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(*out->v));
	out->n = 0;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *msg;
		conf_kp_elem(ep, p, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_serr(x, e, ep, "expected a string");
			bad = 1;
			continue;
		}
		msg = conf_parse_cidr(config_setting_get_string(e), &out->v[out->n]);
		if (msg) {
			conf_serr(x, e, ep, "%s", msg);
			bad = 1;
			continue;
		}
		out->n++;
	}
	return bad ? -1 : 1;
}

int conf_get_ports(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint16_t **v, size_t *nv)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP], ep[CONF_KP];
	unsigned i, n;
	int bad = 0;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		conf_serr(x, s, p, "expected a list of ports [ 443, ... ]");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	*v = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(**v));
	*nv = 0;
	for (i = 0; i < n; i++) {
		long long port;
		conf_kp_elem(ep, p, i);
		if (conf_check_int(x, config_setting_get_elem(s, i), ep, 1, 65535, &port) != 1) {
			bad = 1;
			continue;
		}
		(*v)[(*nv)++] = (uint16_t)port;
	}
	return bad ? -1 : 1;
}

int conf_get_addr(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_name, struct conf_addr *out)
{
	config_setting_t *s = conf_member(g, name);
	char p[CONF_KP];
	const char *msg;

	if (!s)
		return 0;
	conf_kp_child(p, path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_serr(x, s, p, "expected a string \"host:port\"");
		return -1;
	}
	msg = conf_parse_addr(config_setting_get_string(s), allow_name, out, x->a);
	if (msg) {
		conf_serr(x, s, p, "%s", msg);
		return -1;
	}
	return 1;
}

/* ---- element validators (for conf_get_strs) ---- */

const char *conf_chk_token(struct conf_ctx *x, char *v)
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

const char *conf_chk_name(struct conf_ctx *x, char *v)
{
	(void)x;
	if (!*v)
		return "must not be empty";
	if (conf_has_ctl(v))
		return "must not contain control characters";
	return NULL;
}

/*
 * Host and domain patterns: "name", "*.name", ".name", IP literals ("[v6]" or
 * "v6" too).  Lower-cased.
 */
const char *conf_chk_host(struct conf_ctx *x, char *v)
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

/* ---- listeners ---- */

static const char *const k_flistener[] = { "address", "max_connections_per_client", "freebind", "tls",
	"cert", "key", "http2", NULL };
static const char *const k_rlistener[] = { "address", "tls", "max_connections_per_client", "http2", "h2c",
	"freebind", "tls_policy", NULL };

/* http2 (TLS listeners: ALPN h2, on by default) and h2c (plain listeners:
 * HTTP/2 with prior knowledge, off by default); each only where it applies. */
static void conf_read_listener_h2(struct conf_ctx *x, config_setting_t *e, const char *ep,
    struct conf_listener *li)
{
	int http2 = -1, h2c = 0;
	char kp[CONF_KP];

	if (conf_get_bool(x, e, ep, "http2", &http2) > 0 && http2 && !li->tls) {
		conf_kp_child(kp, ep, "http2");
		conf_serr(x, conf_member(e, "http2"), kp, "needs tls = true (a plain listener speaks "
		    "HTTP/2 only with h2c = true)");
	}
	if (conf_get_bool(x, e, ep, "h2c", &h2c) > 0 && h2c && li->tls) {
		conf_kp_child(kp, ep, "h2c");
		conf_serr(x, conf_member(e, "h2c"), kp, "only for plain listeners (a TLS listener offers "
		    "h2 with http2 = true)");
	}
	li->http2 = li->tls && http2 != 0;
	li->h2c = !li->tls && h2c;
}

/* A forward listener's TLS (an HTTPS proxy: the client's proxy credentials
 * never cross the network in clear): its own cert and key, which tls = true
 * needs and nothing else takes; http2 as on reverse listeners (default on). */
static void conf_read_listener_ftls(struct conf_ctx *x, config_setting_t *e, const char *ep,
    struct conf_listener *li)
{
	char kp[CONF_KP];

	conf_get_bool(x, e, ep, "tls", &li->tls);
	conf_get_path(x, e, ep, "cert", 0, &li->cert);
	conf_get_path(x, e, ep, "key", 0, &li->key);
	if (li->tls && (li->cert == NULL || li->key == NULL))
		conf_serr(x, e, ep, "tls = true needs cert and key (the PEM certificate chain and private "
		    "key this proxy listener presents)");
	if (!li->tls && (li->cert != NULL || li->key != NULL)) {
		conf_kp_child(kp, ep, li->cert != NULL ? "cert" : "key");
		conf_serr(x, conf_member(e, li->cert != NULL ? "cert" : "key"), kp, "only for tls = true");
	}
	conf_read_listener_h2(x, e, ep, li);
	li->h2c = 0;
}

void conf_read_listeners(struct conf_ctx *x, config_setting_t *g, const char *path, int allow_tls,
    struct conf_listener **out, size_t *nout)
{
	config_setting_t *l = conf_get_glist(x, g, path, "listeners");
	char p[CONF_KP], ep[CONF_KP];
	unsigned i, n;

	*out = NULL;
	*nout = 0;
	if (!l)
		return;
	conf_kp_child(p, path, "listeners");
	n = (unsigned)config_setting_length(l);
	*out = conf_arena_alloc(x->a, (n ? n : 1) * sizeof(**out));
	for (i = 0; i < n; i++) {
		struct conf_listener *li = &(*out)[*nout];
		config_setting_t *e = conf_glist_elem(x, l, p, i, allow_tls ? k_rlistener : k_flistener, ep);
		if (!e)
			continue;
		memset(li, 0, sizeof(*li));   /* the slot may hold a rejected element */
		li->src = conf_src_of(x, e);
		li->max_connections_per_client = -1;
		conf_get_int(x, e, ep, "max_connections_per_client", 0, 10000000, &li->max_connections_per_client);
		if (conf_get_addr(x, e, ep, "address", 0, &li->addr) == 0) {
			conf_missing(x, e, ep, "address");
			continue;
		}
		if (!li->addr.text)
			continue;
		if (allow_tls) {
			conf_get_bool(x, e, ep, "tls", &li->tls);
			conf_read_listener_h2(x, e, ep, li);
		} else {
			conf_read_listener_ftls(x, e, ep, li);
		}
		conf_get_bool(x, e, ep, "freebind", &li->freebind);
		(*nout)++;
	}
}

void conf_default_cidrs(struct conf_ctx *x, struct conf_cidrs *out, const char *const *list)
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
