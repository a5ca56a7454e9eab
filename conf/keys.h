/*
 * conf/keys: what a section reader uses to read its keys.  A section (the
 * engine's global, or a side's forward/reverse/admin) reads its libconfig
 * group with these typed getters, which report every problem as
 * "FILE:LINE: key.path: message" and keep going, so that one run reports
 * everything.
 *
 * Getter convention: returns 1 read (out set), 0 absent (out untouched, so a
 * default set before the call stays), -1 wrong type or out of range
 * (reported).  path is the dotted key path of group g ("forward.auth"; ""
 * for the root); list elements are ".[i]", 0-based.  Strings and arrays are
 * allocated in the configuration's arena (conf_ctx_arena).
 */
#ifndef GW_CONF_KEYS_H
#define GW_CONF_KEYS_H

#include <libconfig.h>

#include "conf/types.h"

#define CONF_KP 320                      /* key path buffer */
#define CONF_MAX_TIMEOUT 86400.0         /* upper bound of every timeout key (seconds) */
#define CONF_TB (1024ull * 1024 * 1024 * 1024)

/* One load in progress (opaque; conf/conf_int.h). */
struct conf_ctx;

/*
 * A top-level group of the file that a side owns.  conf_load() reads the
 * sections in table order (conf/sections.c) after global; the order is part
 * of the error contract (errors on one line keep it).
 */
struct conf_section {
	const char *name;          /* the group's key: "forward" */
	size_t offset;             /* where its data lies in struct conf */
	/* Fill defaults and read the group of root (may be absent); report
	 * through x.  conf_section(x) is the section's data. */
	void (*read)(struct conf_ctx *x, config_setting_t *root);
	/* Cross-checks once every section is read; NULL for none. */
	void (*check)(struct conf_ctx *x, config_setting_t *root);
};

struct conf;

/*
 * Load and validate path with these sections (conf_load() is this with the
 * sections of conf/sections.c).  On success returns the config (errs
 * untouched); on any error NULL, with every error found appended to errs.
 */
struct conf *conf_load_sections(const char *path, const struct conf_section *secs, size_t nsecs,
    struct conf_errors *errs);

/* The data of the section being read (its struct inside struct conf). */
void *conf_section(struct conf_ctx *x);
/* The arena of the configuration being loaded. */
void *conf_ctx_arena(struct conf_ctx *x);
/* The main file as given (what errors print for it). */
const char *conf_ctx_path(struct conf_ctx *x);

/*
 * A listening address of this section, for the cross-section overlap check
 * after every section is read (key as the error shall name it; a and file
 * must live as long as the load: arena or static).  Errors name the later
 * of two overlapping addresses, in the order they were bound.
 */
void conf_bind(struct conf_ctx *x, const struct conf_addr *a, const char *key, const char *file, int line);
/* conf_bind each of a section's listeners as "<path>.listeners.[i].address". */
void conf_bind_listeners(struct conf_ctx *x, const char *path, const struct conf_listener *l, size_t n);

/* ---- errors and key paths ---- */

/* An error at setting s (NULL: the main file, line 0); key NULL or "" for none. */
void conf_serr(struct conf_ctx *x, const config_setting_t *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error at file:line (file as shown: a conf_src's). */
void conf_cerr(struct conf_ctx *x, const char *file, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Where s is, for messages after the walk (file in the arena). */
struct conf_src conf_src_of(struct conf_ctx *x, const config_setting_t *s);
/* out (CONF_KP bytes) = "parent.name" / "parent.[i]" (cut at CONF_KP). */
void conf_kp_child(char *out, const char *parent, const char *name);
void conf_kp_elem(char *out, const char *parent, unsigned i);

/* ---- groups ---- */

/* Member name of g; NULL when g is NULL or has none. */
config_setting_t *conf_member(const config_setting_t *g, const char *name);
/* Reports every member of g whose name is not in keys (NULL-terminated). */
void conf_check_keys(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *const *keys);
/* Reports path.name as a required key that is missing (at g's line). */
void conf_missing(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name);
/* A sub-group, its keys checked against keys: NULL when absent or (reported) not a group. */
config_setting_t *conf_get_group(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name, const char *const *keys);
/* A list of groups "( {...}, ... )"; an empty [] or () is fine.  NULL when absent or wrong. */
config_setting_t *conf_get_glist(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name);
/* Element i of a group list, checked to be a group with allowed keys; ep
 * (CONF_KP bytes) receives its key path.  NULL (reported) when not a group. */
config_setting_t *conf_glist_elem(struct conf_ctx *x, config_setting_t *l, const char *path,
    unsigned i, const char *const *keys, char *ep);

/*
 * g.name as a list of named groups (forward.lists, forward.dlp.patterns):
 * each element a group with allowed keys and a required "name" unique in
 * the list ("<what> \"NAME\" is already defined at line L").  Elements are
 * elem_size bytes, zeroed, with their name (char *) at name_off and their
 * struct conf_src at src_off; read (may be NULL) reads an element's other
 * keys and returns 0 to drop it.  Returns the elements (arena; NULL when
 * absent or not a list) and sets *n to how many were kept.
 */
void *conf_get_named_glist(struct conf_ctx *x, const config_setting_t *g, const char *path,
    const char *name, const char *const *keys, const char *what, size_t elem_size, size_t name_off,
    size_t src_off, int (*read)(struct conf_ctx *x, config_setting_t *e, const char *ep, void *elem),
    size_t *n);

/* ---- typed getters (1 read, 0 absent, -1 reported) ---- */

int conf_get_str(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    char **out);
/* A string without control characters; nonempty unless allow_empty. */
int conf_get_text(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out);
/* A file or directory path, made absolute against the main file's directory. */
int conf_get_path(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_empty, char **out);
/* v made absolute against the main file's directory (arena copy). */
char *conf_abs_path(struct conf_ctx *x, const char *v);
int conf_get_bool(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int *out);
/* One of choices (NULL-terminated); *out = its index. */
int conf_get_enum(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    const char *const *choices, int *out);
/* Setting s (key path p) as an integer in [min, max]. */
int conf_check_int(struct conf_ctx *x, const config_setting_t *s, const char *p, long long min,
    long long max, long long *out);
int conf_get_int(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    long long min, long long max, int64_t *out);
/* Seconds (or any non-negative number): int or float. */
int conf_get_num(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    double min, double max, double *out);
/* Bytes: an integer or a string with a unit. */
int conf_get_size(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint64_t min, uint64_t max, uint64_t *out);
/*
 * A list or array of strings.  check (may be NULL: then no control
 * characters) validates and may rewrite an element in place (it is an arena
 * copy); it returns an error message.  When single is set a lone string is
 * accepted as a one-element list.
 */
int conf_get_strs(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int single, const char *(*check)(struct conf_ctx *x, char *v), struct conf_strs *out);
int conf_get_cidrs(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    struct conf_cidrs *out);
int conf_get_ports(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    uint16_t **v, size_t *nv);
int conf_get_addr(struct conf_ctx *x, const config_setting_t *g, const char *path, const char *name,
    int allow_name, struct conf_addr *out);
/* out = the CIDRs of list (NULL-terminated, valid by construction). */
void conf_default_cidrs(struct conf_ctx *x, struct conf_cidrs *out, const char *const *list);
/* g.listeners: a list of { address; [tls;] [max_connections_per_client;] }. */
void conf_read_listeners(struct conf_ctx *x, config_setting_t *g, const char *path, int allow_tls,
    struct conf_listener **out, size_t *nout);

/* ---- element validators (for conf_get_strs; NULL = fine) ---- */

int conf_has_ctl(const char *s);
const char *conf_chk_token(struct conf_ctx *x, char *v);   /* an RFC 9110 token */
const char *conf_chk_name(struct conf_ctx *x, char *v);    /* nonempty, no control characters */
/* Host and domain patterns: "name", "*.name", ".name", IP literals; lower-cased. */
const char *conf_chk_host(struct conf_ctx *x, char *v);

#endif
