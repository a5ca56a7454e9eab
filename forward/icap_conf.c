/*
 * forward/icap_conf: the reader of forward.icap (ICAP services: where,
 * which method, how to fail) and of the lists of service names
 * (forward.icap_default, a policy rule's icap).  Errors are FILE:LINE.
 */
#include "forward/icap_conf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/keys.h"
#include "forward/fwd_conf.h"

static const char *const k_icap[] = { "name", "uri", "method", "bypass_on_error", "max_body_bytes",
    "on_oversize", "timeout", "ca_file", NULL };

/* "icap://ADDR[:PORT]/SERVICE": NULL, or what is wrong. */
static const char *parse_uri(struct conf_ctx *x, struct conf_fwd_icap *s, const char *uri)
{
	const char *p = uri, *h, *he, *slash, *err;
	char hp[300];
	struct conf_addr a;
	int bracket = 0;
	long port = 1344;

	if (strncmp(p, "icaps://", 8) == 0) {
		s->tls = 1;
		port = 11344;
		p += 8;
	} else if (strncmp(p, "icap://", 7) == 0) {
		p += 7;
	} else {
		return "must start with \"icap://\" or \"icaps://\" (ICAP over TLS)";
	}
	if (*p == '[') {
		bracket = 1;
		h = p + 1;
		he = strchr(h, ']');
		if (he == NULL)
			return "unclosed '[' in the address";
		p = he + 1;
	} else {
		h = p;
		he = p + strcspn(p, ":/");
		p = he;
	}
	if (*p == ':') {
		char *end;
		port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port < 1 || port > 65535)
			return "bad port (1..65535)";
		p = end;
	}
	if (*p != '/' || p[1] == '\0')
		return "needs a service path, e.g. icap://127.0.0.1:1344/avscan";
	slash = p;
	if ((size_t)(he - h) > 253 || he == h)
		return "the server must be an IPv4 or [IPv6] address or a host name";
	/* the core's reading of "host:port" (odd numerics such as 0177.0.0.1
	 * refused, names checked as names) */
	snprintf(hp, sizeof hp, "%s%.*s%s:%ld", bracket ? "[" : "", (int)(he - h), h, bracket ? "]" : "", port);
	if ((err = conf_parse_addr(hp, 1, &a, conf_ctx_arena(x))) != NULL ||
	    (bracket && a.ss.ss_family != AF_INET6))
		return "the server must be an IPv4 or [IPv6] address or a host name";
	s->host = a.host;
	s->host_is_name = a.is_name;
	s->sa = a.ss;
	s->salen = a.sslen;
	for (const char *q = slash + 1; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == '#' || *q == '?' || (unsigned char)*q >= 127)
			return "the service path has a character that is not allowed";
	s->service = conf_arena_strdup(conf_ctx_arena(x), slash + 1);
	s->port = (uint16_t)port;
	return NULL;
}

static int read_service(struct conf_ctx *x, config_setting_t *e, const char *ep, void *elem)
{
	static const char *const methods[] = { "respmod", "reqmod", NULL };
	static const char *const oversize[] = { "pass", "block", NULL };
	struct conf_fwd_icap *s = elem;
	char p[CONF_KP];
	const char *msg;
	int ok = 1;

	s->max_body_bytes = 32u * 1024 * 1024;
	s->oversize_block = 1;
	s->timeout = 30.0;
	switch (conf_get_text(x, e, ep, "uri", 0, &s->uri)) {
	case 0:
		conf_missing(x, e, ep, "uri");
		return 0;
	case 1:
		if ((msg = parse_uri(x, s, s->uri)) != NULL) {
			conf_kp_child(p, ep, "uri");
			conf_serr(x, conf_member(e, "uri"), p, "%s", msg);
			ok = 0;
		}
		break;
	default:
		return 0;
	}
	if (conf_get_enum(x, e, ep, "method", methods, &s->reqmod) < 0)
		ok = 0;
	if (conf_get_bool(x, e, ep, "bypass_on_error", &s->bypass_on_error) < 0)
		ok = 0;
	if (conf_get_size(x, e, ep, "max_body_bytes", 1024, 1024ull * 1024 * 1024, &s->max_body_bytes) < 0)
		ok = 0;
	if (conf_get_enum(x, e, ep, "on_oversize", oversize, &s->oversize_block) < 0)
		ok = 0;
	if (conf_get_num(x, e, ep, "timeout", 0.1, CONF_MAX_TIMEOUT, &s->timeout) < 0)
		ok = 0;
	if (conf_get_path(x, e, ep, "ca_file", 0, &s->ca_file) < 0)
		ok = 0;
	else if (s->ca_file != NULL && !s->tls && s->uri != NULL) {
		conf_kp_child(p, ep, "ca_file");
		conf_serr(x, conf_member(e, "ca_file"), p, "only for an icaps:// service (TLS)");
		ok = 0;
	} else if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0) {
		conf_kp_child(p, ep, "ca_file");
		conf_serr(x, conf_member(e, "ca_file"), p, "cannot read %s: %s", s->ca_file, strerror(errno));
		ok = 0;
	}
	return ok;
}

int fwd_icap_names_ok(struct conf_ctx *x, const config_setting_t *s, const char *p,
    const struct conf_strs *names)
{
	const struct conf_forward *fw = conf_section(x);
	char lp[CONF_KP];
	int ok = 1, reqmod = -1, nresp = 0;

	for (size_t j = 0; j < names->n; j++) {
		size_t k;
		for (k = 0; k < fw->nicap; k++)
			if (strcmp(fw->icap[k].name, names->v[j]) == 0)
				break;
		conf_kp_elem(lp, p, (unsigned)j);
		for (size_t i = 0; i < j && k < fw->nicap; i++)
			if (strcmp(names->v[i], names->v[j]) == 0)
				k = fw->nicap + 1;   /* (said below) */
		if (k == fw->nicap + 1) {
			conf_serr(x, config_setting_get_elem(s, (unsigned)j), lp,
			    "\"%s\" is already in this list", names->v[j]);
			ok = 0;
		} else if (k == fw->nicap) {
			conf_serr(x, config_setting_get_elem(s, (unsigned)j), lp,
			    "no service named \"%s\" in forward.icap", names->v[j]);
			ok = 0;
		} else if (fw->icap[k].reqmod && reqmod >= 0) {
			conf_serr(x, config_setting_get_elem(s, (unsigned)j), lp,
			    "\"%s\" is a second reqmod service in this list (respmod services chain, one reqmod "
			    "service at most)", names->v[j]);
			ok = 0;
		} else if (!fw->icap[k].reqmod && ++nresp > FWD_ICAP_CHAIN_MAX) {
			conf_serr(x, config_setting_get_elem(s, (unsigned)j), lp,
			    "more than %d respmod services in this list", FWD_ICAP_CHAIN_MAX);
			ok = 0;
		} else if (fw->icap[k].reqmod) {
			reqmod = (int)k;
		}
	}
	return ok;
}

void fwd_icap_conf_read(struct conf_ctx *x, config_setting_t *f)
{
	struct conf_forward *fw = conf_section(x);

	fw->icap = conf_get_named_glist(x, f, "forward", "icap", k_icap, "service", sizeof(*fw->icap),
	    offsetof(struct conf_fwd_icap, name), offsetof(struct conf_fwd_icap, src), read_service,
	    &fw->nicap);
	if (conf_get_strs(x, f, "forward", "icap_default", 0, conf_chk_name, &fw->icap_default) == 1)
		if (!fwd_icap_names_ok(x, conf_member(f, "icap_default"), "forward.icap_default",
		    &fw->icap_default))
			fw->icap_default.n = 0;
}
