/*
 * conf/conf_int: the state of one load, shared by the engine's files only
 * (conf.c walks the file, keys.c reports and reads keys, scan.c guards
 * includes and finds the integer literals libconfig wrapped).  Sections see
 * struct conf_ctx as opaque (conf/keys.h).
 */
#ifndef GW_CONF_INT_H
#define GW_CONF_INT_H

#include "conf/conf.h"
#include "conf/keys.h"

struct scanned;

/* A listening address bound by a section (conf_bind), for the overlap check. */
struct conf_bound {
	const struct conf_addr *a;
	char key[CONF_KP];
	const char *file;
	int line;
};

struct conf_ctx {
	struct conf *c;
	void *a;
	void *section;           /* data of the section being read */
	struct conf_errors *errs;
	size_t nerr0;
	const char *path;        /* main file as given */
	char *showdir;           /* directory part of path as given ("" for none) */
	char *absdir;            /* absolute directory of the main file */
	struct scanned *scans;
	struct conf_bound *bound;
	size_t nbound;
	struct epos { size_t rank, line, seq; } *epos;   /* where each error points, to sort them */
	size_t nepos;
	char **files;            /* included files seen in errors, in order: rank = index + 1 */
	size_t nfiles;
	char showbuf[1024];
};

/* keys.c */
/* name as errors show it: the main file as given, included files joined to its directory. */
const char *conf_show_file(struct conf_ctx *x, const char *name);
/* Errors in file order (main file first, then included files), stable within a line. */
void conf_sort_errors(struct conf_ctx *x);

/* scan.c */
/* 1 if file is a regular file or missing (libconfig reports a missing one). */
int conf_check_regular(const char *file);
/* Refuses (reported, returns 1) a NUL byte in the file or an @include of a non-regular file, recursively. */
int conf_check_includes(struct conf_ctx *x, const char *open_name, const char *show_name, int depth);
/* The overflowing literal behind an int setting's value, or NULL. */
const char *conf_overflowed(struct conf_ctx *x, const config_setting_t *s);
/* Frees what conf_overflowed cached. */
void conf_scan_free(struct conf_ctx *x);

#endif
