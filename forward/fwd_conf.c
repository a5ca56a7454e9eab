/*
 * forward/fwd_conf: reads the forward section (forward.*) into struct
 * conf_forward with the engine's key readers (conf/keys.h): listeners, client
 * and destination limits, ports, block page, auth, category lists, policy
 * rules, DLP, PAC and the parent proxy.  The forward compiler
 * (forward/forward.c) turns it into the side's immutable data.
 */
#include "forward/fwd_conf.h"
#include "conf/keys.h"
#include "forward/icap_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static struct conf_forward *fwd_of(struct conf_ctx *x)
{
	return conf_section(x);
}

/* ---- forward ---- */

static const char *const k_forward[] = { "listeners", "allow_clients", "deny_destinations",
    "connect_ports", "anonymize", "block_contact", "block_page", "auth", "lists", "policy", "dlp", "pac", "parent",
    "websocket_ports", "icap", "icap_default", "inspect", NULL };
static const char *const k_auth[] = { "realm", "users_file", "groups_file", "cache_ttl",
    "schemes", "kerberos", "ldap", NULL };   /* the last ones: forward/sso_conf.c */
static const char *const k_list[] = { "name", "file", "domains", "urls", NULL };
static const char *const k_rule[] = { "name", "action", "clients", "users", "groups", "domains",
    "lists", "urls", "methods", "ports", "hours", "schemes", "icap", "inspect", NULL };
static const char *const k_dlp[] = { "enabled", "action", "oversize", "max_scan_bytes", "detectors",
    "patterns", "max_scan_memory", NULL };
static const char *const k_pattern[] = { "name", "regex", NULL };
static const char *const k_pac[] = { "proxy", "direct", "fallback", "direct_private", NULL };

static const char *chk_method(struct conf_ctx *x, char *v)
{
	const char *msg = conf_chk_token(x, v);
	char *p;

	if (msg)
		return "not a valid HTTP method";
	for (p = v; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return NULL;
}

static const char *chk_scheme(struct conf_ctx *x, char *v)
{
	char *p;

	(void)x;
	for (p = v; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strcmp(v, "http") != 0 && strcmp(v, "connect") != 0)
		return "must be \"http\" or \"connect\"";
	return NULL;
}

static const char *chk_detector(struct conf_ctx *x, char *v)
{
	(void)x;
	if (strcmp(v, "credit_card") != 0 && strcmp(v, "iban") != 0 && strcmp(v, "us_ssn") != 0)
		return "must be \"credit_card\", \"iban\" or \"us_ssn\"";
	return NULL;
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
static const char *chk_hours(struct conf_ctx *x, char *v)
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


static void read_auth(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_fwd_auth *au = &fwd_of(x)->auth;
	config_setting_t *g = conf_get_group(x, f, "forward", "auth", k_auth);
	char *v;

	au->realm = conf_arena_strdup(conf_ctx_arena(x), "Gatehouse");
	au->cache_ttl = 60.0;
	if (!g) {
		fwd_sso_conf_read(x, NULL, &au->sso);
		return;
	}
	au->present = 1;
	au->src = conf_src_of(x, g);
	if (conf_get_text(x, g, "forward.auth", "realm", 0, &v) == 1) {
		if (strchr(v, '"') || strchr(v, '\\'))
			conf_serr(x, conf_member(g, "realm"), "forward.auth.realm", "must not contain '\"' or '\\'");
		else
			au->realm = v;
	}
	/* without Basic (Negotiate only) a users file is optional */
	int basic = fwd_sso_conf_read(x, g, &au->sso);
	if (conf_get_path(x, g, "forward.auth", "users_file", 0, &au->users_file) == 0 && basic)
		conf_missing(x, g, "forward.auth", "users_file");
	conf_get_path(x, g, "forward.auth", "groups_file", 0, &au->groups_file);
	conf_get_num(x, g, "forward.auth", "cache_ttl", 0, CONF_MAX_TIMEOUT, &au->cache_ttl);
}

/* The rest of one forward.lists element: its files. */
static int read_list(struct conf_ctx *x, config_setting_t *e, const char *ep, void *elem)
{
	struct conf_fwd_list *li = elem;
	int ok = 1;

	/* "domains" is "file" by its squidGuard name; "urls" beside it */
	int rf = conf_get_path(x, e, ep, "file", 0, &li->file);
	int rd = conf_member(e, "domains") ? conf_get_path(x, e, ep, "domains", 0, &li->file) : 0;
	int ru = conf_get_path(x, e, ep, "urls", 0, &li->urls);
	if (rf < 0 || rd < 0 || ru < 0)
		ok = 0;
	else if (rf == 1 && rd == 1) {
		char p[CONF_KP];
		conf_kp_child(p, ep, "domains");
		conf_serr(x, conf_member(e, "domains"), p, "give \"file\" or \"domains\" (the same), not both");
		ok = 0;
	} else if (rf == 0 && rd == 0 && ru == 0) {
		conf_missing(x, e, ep, "file");
		ok = 0;
	}
	return ok;
}

static void read_lists(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_forward *fw = fwd_of(x);

	fw->lists = conf_get_named_glist(x, f, "forward", "lists", k_list, "list", sizeof(*fw->lists),
	    offsetof(struct conf_fwd_list, name), offsetof(struct conf_fwd_list, src), read_list, &fw->nlists);
}

static void read_policy(struct conf_ctx *x, config_setting_t *f)
{
	static const char *const actions[] = { "allow", "deny", "auth", NULL };
	struct conf_forward *fw = fwd_of(x);
	config_setting_t *l = conf_get_glist(x, f, "forward", "policy");
	char ep[CONF_KP], p[CONF_KP];
	unsigned i, n;
	size_t j, k;

	if (!l)
		return;
	fw->policy_present = 1;
	n = (unsigned)config_setting_length(l);
	fw->policy = conf_arena_alloc(conf_ctx_arena(x), (n ? n : 1) * sizeof(*fw->policy));
	for (i = 0; i < n; i++) {
		struct conf_fwd_rule *r = &fw->policy[fw->npolicy];
		config_setting_t *e = conf_glist_elem(x, l, "forward.policy", i, k_rule, ep);
		int act = -1, ok = 1;
		if (!e)
			continue;
		memset(r, 0, sizeof(*r));   /* the slot may hold a rejected element */
		r->src = conf_src_of(x, e);
		if (conf_get_text(x, e, ep, "name", 0, &r->name) == 1) {
			for (j = 0; j < fw->npolicy; j++) {
				if (fw->policy[j].name && strcmp(fw->policy[j].name, r->name) == 0) {
					conf_kp_child(p, ep, "name");
					conf_serr(x, conf_member(e, "name"), p, "rule \"%s\" is already defined at line %d",
					    r->name, fw->policy[j].src.line);
					ok = 0;
				}
			}
		} else {
			r->name = NULL;
		}
		switch (conf_get_enum(x, e, ep, "action", actions, &act)) {
		case 0:
			conf_missing(x, e, ep, "action");
			ok = 0;
			break;
		case 1:
			r->action = act == 0 ? CONF_ACT_ALLOW : act == 1 ? CONF_ACT_DENY : CONF_ACT_AUTH;
			if (r->action == CONF_ACT_AUTH && !fw->auth.present) {
				conf_kp_child(p, ep, "action");
				conf_serr(x, conf_member(e, "action"), p, "\"auth\" needs a forward.auth section");
				ok = 0;
			}
			break;
		default:
			ok = 0;
		}
		if (conf_get_cidrs(x, e, ep, "clients", &r->clients) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "users", 0, conf_chk_name, &r->users) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "groups", 0, conf_chk_name, &r->groups) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "domains", 0, conf_chk_host, &r->domains) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "lists", 0, conf_chk_name, &r->lists) < 0) {
			ok = 0;
		} else {
			config_setting_t *ls = conf_member(e, "lists");
			for (j = 0; j < r->lists.n; j++) {
				for (k = 0; k < fw->nlists; k++)
					if (strcmp(fw->lists[k].name, r->lists.v[j]) == 0)
						break;
				if (k == fw->nlists) {
					char lp[CONF_KP];
					conf_kp_child(p, ep, "lists");
					conf_kp_elem(lp, p, (unsigned)j);
					conf_serr(x, config_setting_get_elem(ls, (unsigned)j), lp,
					    "no list named \"%s\" in forward.lists", r->lists.v[j]);
					ok = 0;
				}
			}
		}
		if (conf_get_strs(x, e, ep, "urls", 0, conf_chk_name, &r->urls) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "methods", 0, chk_method, &r->methods) < 0)
			ok = 0;
		if (conf_get_ports(x, e, ep, "ports", &r->ports, &r->nports) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "hours", 1, chk_hours, &r->hours) < 0)
			ok = 0;
		if (conf_get_strs(x, e, ep, "schemes", 0, chk_scheme, &r->schemes) < 0)
			ok = 0;
		switch (conf_get_strs(x, e, ep, "icap", 0, conf_chk_name, &r->icap)) {
		case 1:
			r->icap_set = 1;
			conf_kp_child(p, ep, "icap");
			if (!fwd_icap_names_ok(x, conf_member(e, "icap"), p, &r->icap))
				ok = 0;
			break;
		case -1:
			ok = 0;
			break;
		}
		r->inspect = 1;
		if (conf_get_bool(x, e, ep, "inspect", &r->inspect) < 0)
			ok = 0;
		{
			static const char *const matchers[] = { "clients", "users", "groups", "domains", "lists",
			    "urls", "methods", "ports", "hours", "schemes", NULL };
			const char *const *mk;
			for (mk = matchers; *mk; mk++) {
				config_setting_t *ms = conf_member(e, *mk);
				if (ms && (config_setting_type(ms) == CONFIG_TYPE_ARRAY ||
				    config_setting_type(ms) == CONFIG_TYPE_LIST) && config_setting_length(ms) == 0) {
					conf_kp_child(p, ep, *mk);
					conf_serr(x, ms, p, "empty list; leave the key out to match anything");
					ok = 0;
				}
			}
		}
		if (ok)
			fw->npolicy++;
	}
}

/* The rest of one forward.dlp.patterns element: its regex. */
static int read_pattern(struct conf_ctx *x, config_setting_t *e, const char *ep, void *elem)
{
	struct conf_fwd_pattern *pt = elem;

	if (conf_get_text(x, e, ep, "regex", 0, &pt->regex) != 1) {
		if (!conf_member(e, "regex"))
			conf_missing(x, e, ep, "regex");
		return 0;
	}
	return 1;
}

static void read_dlp(struct conf_ctx *x, config_setting_t *f)
{
	static const char *const actions[] = { "log", "deny", NULL };
	static const char *const oversize[] = { "allow", "deny", NULL };
	struct conf_fwd_dlp *d = &fwd_of(x)->dlp;
	config_setting_t *g = conf_get_group(x, f, "forward", "dlp", k_dlp);

	d->enabled = 1;
	d->action_deny = 1;
	d->oversize_deny = 1;
	d->max_scan_bytes = 16u * 1024 * 1024;
	d->max_scan_memory = 256u * 1024 * 1024;
	if (!g)
		return;
	d->present = 1;
	d->src = conf_src_of(x, g);
	conf_get_bool(x, g, "forward.dlp", "enabled", &d->enabled);
	conf_get_enum(x, g, "forward.dlp", "action", actions, &d->action_deny);
	conf_get_enum(x, g, "forward.dlp", "oversize", oversize, &d->oversize_deny);
	conf_get_size(x, g, "forward.dlp", "max_scan_bytes", 1024, 1024ull * 1024 * 1024, &d->max_scan_bytes);
	switch (conf_get_size(x, g, "forward.dlp", "max_scan_memory", 64u * 1024, 1024ull * 1024 * 1024 * 1024,
	    &d->max_scan_memory)) {
	case 0:   /* the default holds at least one upload of the largest scanned size */
		if (d->max_scan_memory < d->max_scan_bytes)
			d->max_scan_memory = d->max_scan_bytes;
		break;
	case 1:
		if (d->max_scan_memory < d->max_scan_bytes)
			conf_serr(x, conf_member(g, "max_scan_memory"), "forward.dlp.max_scan_memory",
			    "must be at least max_scan_bytes (%llu), or no upload of that size could be scanned",
			    (unsigned long long)d->max_scan_bytes);
		break;
	}
	conf_get_strs(x, g, "forward.dlp", "detectors", 0, chk_detector, &d->detectors);
	d->patterns = conf_get_named_glist(x, g, "forward.dlp", "patterns", k_pattern, "pattern",
	    sizeof(*d->patterns), offsetof(struct conf_fwd_pattern, name), offsetof(struct conf_fwd_pattern, src),
	    read_pattern, &d->npatterns);
}

static const char *const k_parent[] = { "address", "auth", "bypass_domains", "fail_timeout", NULL };

static void read_parent(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_fwd_parent *pp = &fwd_of(x)->parent;
	config_setting_t *g = conf_get_group(x, f, "forward", "parent", k_parent);
	struct conf_strs a = { NULL, 0 };
	char *v = NULL;

	if (!g)
		return;
	pp->present = 1;
	pp->src = conf_src_of(x, g);
	pp->fail_timeout = 10.0;
	conf_get_num(x, g, "forward.parent", "fail_timeout", 0, 3600, &pp->fail_timeout);
	switch (conf_get_strs(x, g, "forward.parent", "address", 1, NULL, &a)) {
	case 0:
		conf_missing(x, g, "forward.parent", "address");
		break;
	case 1:
		pp->addrs = conf_arena_alloc(conf_ctx_arena(x), (a.n ? a.n : 1) * sizeof *pp->addrs);
		for (size_t i = 0; i < a.n; i++) {
			const char *msg = conf_parse_addr(a.v[i], 1, &pp->addrs[pp->naddrs], conf_ctx_arena(x));
			if (msg)
				conf_serr(x, conf_member(g, "address"), "forward.parent.address", "%s: %s", a.v[i], msg);
			else
				pp->naddrs++;
		}
		if (a.n == 0)
			conf_serr(x, conf_member(g, "address"), "forward.parent.address", "must name at least one proxy");
		break;
	default:
		break;
	}
	if (conf_get_text(x, g, "forward.parent", "auth", 0, &v) == 1) {
		if (strchr(v, ':') == NULL)
			conf_serr(x, conf_member(g, "auth"), "forward.parent.auth", "must be \"user:password\"");
		else
			pp->auth = v;
	}
	conf_get_strs(x, g, "forward.parent", "bypass_domains", 0, conf_chk_host, &pp->bypass);
}

static void read_pac(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_fwd_pac *pc = &fwd_of(x)->pac;
	config_setting_t *g = conf_get_group(x, f, "forward", "pac", k_pac), *s;
	struct conf_addr a;
	char *v;

	if (!g)
		return;
	pc->present = 1;
	pc->src = conf_src_of(x, g);
	s = conf_member(g, "proxy");
	switch (conf_get_text(x, g, "forward.pac", "proxy", 0, &v)) {
	case 0:
		conf_missing(x, g, "forward.pac", "proxy");
		break;
	case 1: {
		const char *msg = conf_parse_addr(v, 1, &a, conf_ctx_arena(x));
		if (msg)
			conf_serr(x, s, "forward.pac.proxy", "%s", msg);
		else
			pc->proxy = v;
		break;
	}
	default:
		break;
	}
	conf_get_strs(x, g, "forward.pac", "direct", 0, conf_chk_host, &pc->direct);
	{
		static const char *const fb[] = { "none", "direct", NULL };
		int i = 1;   /* "direct": what every PAC file served before the key existed said */

		conf_get_enum(x, g, "forward.pac", "fallback", fb, &i);
		pc->fallback_none = i == 0;
	}
	conf_get_bool(x, g, "forward.pac", "direct_private", &pc->direct_private);
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

/* forward.block_page is read here, so a start, reload or -t with a conf_missing,
 * unreadable, oversized or malformed template fails with FILE:LINE. */
static void read_block_page(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_forward *fw = fwd_of(x);
	config_setting_t *s = conf_member(f, "block_page");
	char *path = NULL, *buf;
	struct stat st;
	size_t n;
	long bad;
	FILE *fp;

	if (conf_get_path(x, f, "forward", "block_page", 0, &path) != 1)
		return;
	fp = fopen(path, "r");
	if (fp == NULL) {
		conf_serr(x, s, "forward.block_page", "%s: %s", path, strerror(errno));
		return;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		conf_serr(x, s, "forward.block_page", "%s: not a regular file", path);
		fclose(fp);
		return;
	}
	if (st.st_size > CONF_BLOCK_PAGE_MAX) {
		conf_serr(x, s, "forward.block_page", "%s: larger than %d bytes", path, CONF_BLOCK_PAGE_MAX);
		fclose(fp);
		return;
	}
	buf = conf_arena_alloc(conf_ctx_arena(x), (size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, fp);
	if (ferror(fp)) {
		conf_serr(x, s, "forward.block_page", "%s: %s", path, strerror(errno));
		fclose(fp);
		return;
	}
	fclose(fp);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		conf_serr(x, s, "forward.block_page", "%s: contains a NUL byte", path);
		return;
	}
	bad = bad_placeholder(buf, n);
	if (bad >= 0) {
		size_t line = 1, show = strcspn(buf + bad, "\r\n\t");
		for (long i = 0; i < bad; i++)
			line += buf[i] == '\n';
		conf_serr(x, s, "forward.block_page", "%s:%zu: unknown or unclosed placeholder \"%.*s\" "
		    "(known: {{reason}} {{rule}} {{url}} {{request_id}} {{contact}} {{client}} {{user}} {{time}})",
		    path, line, (int)(show < 24 ? show : 24), buf + bad);
		return;
	}
	fw->block_page = path;
	fw->block_page_text = buf;
	fw->block_page_len = n;
}

static const char *const k_inspect[] = { "mode", "ca_cert", "ca_key", "upstream_ca_file", "bypass_domains",
    "bypass_lists", "insecure_hosts", "cert_cache", NULL };

/* forward.inspect (after forward.lists: bypass_lists names them). */
static void read_inspect(struct conf_ctx *x, config_setting_t *f)
{
	static const char *const modes[] = { "off", "all", NULL };
	struct conf_forward *fw = fwd_of(x);
	struct conf_fwd_inspect *in = &fw->inspect;
	config_setting_t *g = conf_get_group(x, f, "forward", "inspect", k_inspect), *ls;
	int cert, key;

	in->cert_cache = 10000;
	if (!g)
		return;
	in->present = 1;
	in->src = conf_src_of(x, g);
	conf_get_enum(x, g, "forward.inspect", "mode", modes, &in->mode_all);
	cert = conf_get_path(x, g, "forward.inspect", "ca_cert", 0, &in->ca_cert);
	key = conf_get_path(x, g, "forward.inspect", "ca_key", 0, &in->ca_key);
	if (cert == 1 && key == 0)
		conf_serr(x, conf_member(g, "ca_cert"), "forward.inspect.ca_cert",
		    "needs ca_key beside it (or leave both out: a CA is made in global.state_dir)");
	else if (cert == 0 && key == 1)
		conf_serr(x, conf_member(g, "ca_key"), "forward.inspect.ca_key",
		    "needs ca_cert beside it (or leave both out: a CA is made in global.state_dir)");
	if (conf_get_text(x, g, "forward.inspect", "upstream_ca_file", 1, &in->upstream_ca_file) == 1)
		in->upstream_ca_file = in->upstream_ca_file[0] ? conf_abs_path(x, in->upstream_ca_file) : NULL;
	conf_get_strs(x, g, "forward.inspect", "bypass_domains", 0, conf_chk_host, &in->bypass_domains);
	conf_get_strs(x, g, "forward.inspect", "insecure_hosts", 0, conf_chk_host, &in->insecure_hosts);
	conf_get_int(x, g, "forward.inspect", "cert_cache", 1, 10000000, &in->cert_cache);
	if (conf_get_strs(x, g, "forward.inspect", "bypass_lists", 0, conf_chk_name, &in->bypass_lists) != 1)
		return;
	ls = conf_member(g, "bypass_lists");
	for (size_t j = 0; j < in->bypass_lists.n; j++) {
		size_t k;
		for (k = 0; k < fw->nlists; k++)
			if (strcmp(fw->lists[k].name, in->bypass_lists.v[j]) == 0)
				break;
		if (k == fw->nlists) {
			char lp[CONF_KP];
			conf_kp_elem(lp, "forward.inspect.bypass_lists", (unsigned)j);
			conf_serr(x, config_setting_get_elem(ls, (unsigned)j), lp, "no list named \"%s\" in forward.lists",
			    in->bypass_lists.v[j]);
		}
	}
}

void fwd_conf_read(struct conf_ctx *x, config_setting_t *root)
{
	static const char *const def_allow[] = { "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
	    "192.168.0.0/16", NULL };
	static const char *const def_deny[] = { "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10",
	    NULL };
	struct conf_forward *fw = fwd_of(x);
	config_setting_t *f = conf_get_group(x, root, "", "forward", k_forward);

	conf_default_cidrs(x, &fw->allow_clients, def_allow);
	conf_default_cidrs(x, &fw->deny_destinations, def_deny);
	fw->connect_ports = conf_arena_alloc(conf_ctx_arena(x), sizeof(uint16_t));
	fw->connect_ports[0] = 443;
	fw->nconnect_ports = 1;
	fw->block_contact = conf_arena_strdup(conf_ctx_arena(x), "");
	read_auth(x, NULL);
	read_dlp(x, NULL);
	read_inspect(x, NULL);
	if (!f)
		return;
	fw->present = 1;
	conf_read_listeners(x, f, "forward", 0, &fw->listeners, &fw->nlisteners);
	conf_bind_listeners(x, "forward", fw->listeners, fw->nlisteners);
	conf_get_cidrs(x, f, "forward", "allow_clients", &fw->allow_clients);
	conf_get_cidrs(x, f, "forward", "deny_destinations", &fw->deny_destinations);
	conf_get_ports(x, f, "forward", "connect_ports", &fw->connect_ports, &fw->nconnect_ports);
	conf_get_ports(x, f, "forward", "websocket_ports", &fw->websocket_ports, &fw->nwebsocket_ports);
	conf_get_bool(x, f, "forward", "anonymize", &fw->anonymize);
	conf_get_text(x, f, "forward", "block_contact", 1, &fw->block_contact);
	read_block_page(x, f);
	read_auth(x, f);
	read_lists(x, f);
	fwd_icap_conf_read(x, f);
	read_policy(x, f);
	read_dlp(x, f);
	read_pac(x, f);
	read_parent(x, f);
	read_inspect(x, f);
}

