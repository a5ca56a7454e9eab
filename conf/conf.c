/*
 * conf: the configuration engine's walk.  conf_load_sections() loads the
 * libconfig file and checks it: the include guard and the 32-bit trap
 * (scan.c), the root's allow-list (global plus the registered sections),
 * global (below), then each registered section's reader in table order,
 * then each section's cross-checks, then the listening addresses the
 * sections bound, for overlap across sections.  The sections themselves are
 * the sides' (forward/fwd_conf.c, reverse/rev_conf.c, admin/adm_conf.c); the
 * table that names them is conf/sections.c.
 *
 * Each group of the file has a reader that (1) reports every key not in its
 * allow-list, (2) reads the keys it knows with the typed getters of keys.c,
 * which report wrong types and out-of-range values, and (3) fills defaults
 * for what is missing.  Readers keep going after an error so that one run
 * reports everything; the load returns NULL if anything was reported.
 * Errors are sorted into file order at the end (keys.c).
 */
#include "conf/conf_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *chk_dns_server(struct conf_ctx *x, char *v)
{
	unsigned char buf[16];
	struct conf_addr a;

	if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
		return NULL;
	if (conf_parse_addr(v, 0, &a, x->a) == NULL && a.host[0])
		return NULL;
	return "expected a numeric address \"ip\", \"ip:port\" or \"[v6]:port\"";
}

/* ---- global ---- */

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

static void read_global(struct conf_ctx *x, config_setting_t *root)
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

	g = conf_get_group(x, root, "", "global", k_global);
	if (!g)
		return;
	conf_get_int(x, g, "global", "workers", 0, 1024, &gl->workers);
	conf_get_text(x, g, "global", "user", 1, &gl->user);
	if ((s = conf_member(g, "user")) != NULL)
		gl->user_src = conf_src_of(x, s);
	conf_get_int(x, g, "global", "max_connections", 1, 10000000, &gl->max_connections);
	conf_get_int(x, g, "global", "max_connections_per_client", 0, 10000000, &gl->max_connections_per_client);
	conf_get_path(x, g, "global", "state_dir", 0, &gl->state_dir);
	if ((s = conf_member(g, "via_name")) && conf_get_str(x, g, "global", "via_name", &v) == 1) {
		if (conf_chk_token(x, v))
			conf_serr(x, s, "global.via_name", "must be a token (letters, digits, '-', '.', '_'; no spaces)");
		else
			gl->via_name = v;
	}

	if ((s = conf_get_group(x, g, "global", "log", k_log))) {
		if (conf_get_text(x, s, "global.log", "error", 0, &v) == 1)
			gl->log.error = strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ? v : conf_abs_path(x, v);
		if (conf_get_enum(x, s, "global.log", "level", levels, &i) == 1)
			gl->log.level = i;
		if (conf_get_text(x, s, "global.log", "access", 1, &v) == 1) {
			struct sockaddr_storage ss;
			socklen_t sl;
			const char *why;
			int tr;
			if (strncmp(v, "syslog:", 7) == 0) {
				if ((why = gw_addr_parse_syslog(v, &tr, &ss, &sl)) != NULL)
					conf_serr(x, conf_member(s, "access"), "global.log.access", "%s", why);
				else
					gl->log.access = v;
			} else {
				gl->log.access = strcmp(v, "stdout") == 0 || strcmp(v, "stderr") == 0 ? v : conf_abs_path(x, v);
			}
		}
		{
			static const char *const facilities[] = { "kern", "user", "mail", "daemon", "auth", "syslog",
			    "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
			    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7", NULL };
			if (conf_get_enum(x, s, "global.log", "syslog_facility", facilities, &i) == 1)
				gl->log.syslog_facility = i;
		}
		if (conf_get_text(x, s, "global.log", "syslog_tag", 0, &v) == 1) {
			/* RFC 5424 APP-NAME: 1..48 printable ASCII, no space */
			size_t k = strlen(v), bad = k == 0 || k > 48;
			for (size_t j = 0; j < k; j++)
				bad |= v[j] <= 0x20 || v[j] >= 0x7f;
			if (bad)
				conf_serr(x, conf_member(s, "syslog_tag"), "global.log.syslog_tag",
				    "must be 1 to 48 printable ASCII characters without spaces");
			else
				gl->log.syslog_tag = v;
		}
		if (conf_get_enum(x, s, "global.log", "access_format", formats, &i) == 1)
			gl->log.access_json = i;
	}
	if ((s = conf_get_group(x, g, "global", "timeouts", k_timeouts))) {
		const char *t = "global.timeouts";
		conf_get_num(x, s, t, "client_header", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.client_header);
		conf_get_num(x, s, t, "client_body", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.client_body);
		conf_get_num(x, s, t, "client_idle", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.client_idle);
		conf_get_num(x, s, t, "upstream_connect", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.upstream_connect);
		conf_get_num(x, s, t, "upstream_response", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.upstream_response);
		conf_get_num(x, s, t, "upstream_idle", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.upstream_idle);
		conf_get_num(x, s, t, "tunnel_idle", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.tunnel_idle);
		conf_get_num(x, s, t, "shutdown_grace", 0, CONF_MAX_TIMEOUT, &gl->timeouts.shutdown_grace);
		conf_get_num(x, s, t, "client_first_byte", 0.001, CONF_MAX_TIMEOUT, &gl->timeouts.client_first_byte);
		conf_get_num(x, s, t, "client_body_min_rate", 0, 1e9, &gl->timeouts.client_body_min_rate);
	}
	if ((s = conf_get_group(x, g, "global", "limits", k_limits))) {
		int64_t n;
		const char *t = "global.limits";
		conf_get_size(x, s, t, "max_header_bytes", 1024, 1048576, &gl->limits.max_header_bytes);
		if (conf_get_int(x, s, t, "max_headers", 1, 10000, &n) == 1)
			gl->limits.max_headers = (uint64_t)n;
		conf_get_size(x, s, t, "max_uri_bytes", 64, 1048576, &gl->limits.max_uri_bytes);
		conf_get_size(x, s, t, "max_body_bytes", 0, CONF_TB, &gl->limits.max_body_bytes);
	}
	if ((s = conf_get_group(x, g, "global", "dns", k_dns))) {
		conf_get_strs(x, s, "global.dns", "servers", 0, chk_dns_server, &gl->dns.servers);
		conf_get_num(x, s, "global.dns", "cache_ttl_max", 0, CONF_MAX_TIMEOUT, &gl->dns.cache_ttl_max);
		conf_get_num(x, s, "global.dns", "timeout", 0.1, 60, &gl->dns.timeout);
		conf_get_path(x, s, "global.dns", "hosts_file", 1, &gl->dns.hosts_file);
	}
}


/* ---- listener overlap across the sections ---- */

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


void conf_bind(struct conf_ctx *x, const struct conf_addr *a, const char *key, const char *file, int line)
{
	struct conf_bound *b = realloc(x->bound, (x->nbound + 1) * sizeof(*b));

	if (!b)
		abort();
	x->bound = b;
	b += x->nbound++;
	b->a = a;
	snprintf(b->key, CONF_KP, "%s", key);
	b->file = file;
	b->line = line;
}

void conf_bind_listeners(struct conf_ctx *x, const char *path, const struct conf_listener *l, size_t n)
{
	char key[CONF_KP];

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s.listeners.[%zu].address", path, i);
		conf_bind(x, &l[i].addr, key, l[i].src.file, l[i].src.line);
	}
}

static void check_overlap(struct conf_ctx *x)
{
	const struct conf_bound *b = x->bound;
	size_t nb = x->nbound, i, j;

	for (i = 0; i < nb; i++) {
		for (j = 0; j < i; j++) {
			const struct conf_addr *p = b[i].a, *q = b[j].a;
			if (addr_conflict(p, q)) {
				conf_cerr(x, b[i].file, b[i].line, b[i].key,
				    "\"%s\" conflicts with %s (\"%s\")", p->text, b[j].key, q->text);
				break;
			}
		}
	}
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

struct conf *conf_load_sections(const char *path, const struct conf_section *secs, size_t nsecs,
    struct conf_errors *errs)
{
	struct conf_ctx x;
	config_t cfg;
	config_setting_t *root;
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
	if (!conf_check_regular(path)) {
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
	if (conf_check_includes(&x, path, path, 0)) {
		/* reported */
	} else if (!config_read_file(&cfg, path)) {
		const char *ef = config_error_file(&cfg);
		conf_cerr(&x, conf_show_file(&x, ef ? ef : path), config_error_line(&cfg), NULL, "syntax: %s",
		    config_error_text(&cfg));
	} else {
		root = config_root_setting(&cfg);
		const char **k_root = calloc(nsecs + 2, sizeof(*k_root));
		size_t i;

		if (!k_root)
			abort();
		k_root[0] = "global";
		for (i = 0; i < nsecs; i++)
			k_root[i + 1] = secs[i].name;
		conf_check_keys(&x, root, "", k_root);
		free(k_root);
		read_global(&x, root);
		for (i = 0; i < nsecs; i++) {
			x.section = (char *)c + secs[i].offset;
			secs[i].read(&x, root);
		}
		for (i = 0; i < nsecs; i++) {
			x.section = (char *)c + secs[i].offset;
			if (secs[i].check)
				secs[i].check(&x, root);
		}
		x.section = NULL;
		check_overlap(&x);
	}
	config_destroy(&cfg);

	conf_scan_free(&x);
	free(x.bound);
	conf_sort_errors(&x);
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
