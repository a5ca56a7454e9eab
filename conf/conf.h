/*
 * conf: the configuration subsystem.  Loads one libconfig file (with
 * @include resolved against the main file's directory), checks every key
 * against the schema (unknown keys, wrong types, out-of-range values are
 * errors reported as "FILE:LINE: key.path: message"), and produces an
 * immutable struct conf.
 *
 * Ownership: conf_load() returns a struct conf that owns all memory reachable
 * from it (one arena); conf_free() releases everything.  The struct is never
 * modified after conf_load() returns, so it may be read from any thread.
 *
 * struct conf embeds each side's section (forward/fwd_conf.h,
 * reverse/rev_conf.h, admin/adm_conf.h: the sides own their keys, readers and
 * types); the engine (conf.c, keys.c, scan.c) reads none of them, and
 * conf/sections.c is the one table that plugs them in.
 *
 * The sides (forward/, reverse/) compile their part of the struct into their
 * own immutable data; errors found while compiling (a regex that does not
 * compile, an upstream name that does not exist) are reported through
 * conf_err() with the file and line recorded in the struct.
 */
#ifndef GW_CONF_H
#define GW_CONF_H

#include "conf/types.h"
#include "forward/fwd_conf.h"
#include "reverse/rev_conf.h"
#include "admin/adm_conf.h"
#include "cluster/clu_conf.h"

/* ---- global ---- */

struct conf_log {
	char *error;         /* "stderr", "syslog" or an absolute path */
	int level;           /* GW_LOG_DEBUG..GW_LOG_ERROR as in core/log.h: 0 debug, 1 info, 2 warn, 3 error */
	char *access;        /* absolute path, "stdout", "stderr", or "" = disabled */
	int access_json;     /* access_format: 0 combined, 1 json */
	int syslog_facility; /* access to syslog: facility number (local0 = 16) */
	char *syslog_tag;    /* access to syslog: APP-NAME */
};

struct conf_timeouts {
	double client_header, client_body, client_idle;
	double upstream_connect, upstream_response, upstream_idle;
	double tunnel_idle, shutdown_grace;
	double client_first_byte;  /* a new connection's first byte (and TLS: first request byte) */
	double client_body_min_rate;  /* bytes/s, average over the body after client_body s; 0 = off */
};

struct conf_limits {
	uint64_t max_header_bytes;
	uint64_t max_headers;
	uint64_t max_uri_bytes;
	uint64_t max_body_bytes;   /* 0 = unlimited */
};

struct conf_dns {
	struct conf_strs servers;  /* "ip" or "ip:port"; empty = resolv.conf */
	double cache_ttl_max;
	double timeout;            /* per attempt, default 2.0 */
	char *hosts_file;          /* default "/etc/hosts"; "" = none */
};

struct conf_global {
	int64_t workers;           /* 0 = one per CPU */
	char *user;                /* "" = do not change user */
	struct conf_src user_src;  /* where user was set (the main file, line 0, for the default) */
	int64_t max_connections;
	int64_t max_connections_per_client;   /* per IPv4 address / IPv6 /64; 0 = no limit */
	char *state_dir;
	char *via_name;            /* pseudonym in Via; default "gatehouse" */
	struct conf_log log;
	struct conf_timeouts timeouts;
	struct conf_limits limits;
	struct conf_dns dns;
};

/* ---- the whole file ---- */

struct conf {
	char *path;                /* the main file as given */
	char *dir;                 /* absolute directory of the main file; relative paths in the
	                              file (lists, static dirs, certs, ...) are resolved against it */
	struct conf_global global;
	struct conf_forward forward;
	struct conf_reverse reverse;
	struct conf_admin admin;
	struct conf_cluster cluster;
	void *arena;               /* private: owns every string and array above */
};

/*
 * Load and validate path.  On success returns the config (errs untouched).
 * On any error returns NULL and appends every error found (it keeps going
 * after the first one where it can) to errs.
 */
struct conf *conf_load(const char *path, struct conf_errors *errs);

/* Free a config returned by conf_load (NULL is fine). */
void conf_free(struct conf *c);

#endif
