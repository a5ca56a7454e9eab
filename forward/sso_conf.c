/*
 * forward/sso_conf: reads forward.auth.schemes and forward.auth.kerberos
 * (see sso_conf.h).  The keytab is only checked to be a path here; whether
 * it holds a usable key is the forward compiler's check (fwd_negotiate_new),
 * which `gatehouse -t` runs too.
 */
#include "forward/sso_conf.h"
#include "conf/keys.h"

#include <string.h>

static const char *const k_kerberos[] = { "keytab", "principal", NULL };
static const char *const k_ldap[] = { "uris", "starttls", "ca_file", "bind_dn", "bind_password_file",
    "base", "user_filter", "groups", "cache_ttl", "negative_ttl", "timeout", "basic_bind", NULL };
static const char *const ldap_groups[] = {
#define X(id, s) s,
	CONF_LDAP_GROUPS(X)
#undef X
	NULL
};

static const char *chk_uri(struct conf_ctx *x, char *v)
{
	const char *h = strncmp(v, "ldap://", 7) == 0 ? v + 7 : strncmp(v, "ldaps://", 8) == 0 ? v + 8 : NULL;

	(void)x;
	if (h == NULL)
		return "must be \"ldap://host[:port]\" or \"ldaps://host[:port]\"";
	if (*h == '\0' || *h == '/' || *h == ':' || strpbrk(h, " ,/?") != NULL)
		return "needs a host and nothing after it (e.g. \"ldaps://dc1.corp.example\")";
	return NULL;
}

/* A search filter with "%s" for the user: "(...)", parentheses balanced,
 * no '%' but in "%s".  Returns why not, or NULL. */
static const char *filter_problem(const char *f)
{
	int depth = 0, subst = 0;

	if (f[0] != '(')
		return "must be a filter in parentheses, e.g. \"(&(objectClass=person)(uid=%s))\"";
	for (const char *p = f; *p; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth < 0)
			break;
		else if (*p == '%') {
			if (p[1] != 's')
				return "'%' may only appear as \"%s\" (the user name, escaped per RFC 4515)";
			subst++;
			p++;
		}
		if (depth == 0 && p[1] != '\0')
			return "has text after the filter's closing parenthesis";
	}
	if (depth != 0)
		return "has unbalanced parentheses";
	if (subst == 0)
		return "must contain \"%s\" (where the user name goes)";
	return NULL;
}

static void read_ldap(struct conf_ctx *x, config_setting_t *g, struct conf_fwd_ldap *l)
{
	static const char *const P = "forward.auth.ldap";
	config_setting_t *lg = conf_get_group(x, g, "forward.auth", "ldap", k_ldap);
	int e;

	l->cache_ttl = 300.0;
	l->negative_ttl = 30.0;
	l->timeout = 3.0;
	l->groups = CONF_LDAP_MEMBEROF;
	l->user_filter = conf_arena_strdup(conf_ctx_arena(x), "(&(objectClass=person)(uid=%s))");
	if (lg == NULL)
		return;
	l->present = 1;
	l->src = conf_src_of(x, lg);
	if (conf_get_strs(x, lg, P, "uris", 1, chk_uri, &l->uris) == 0)
		conf_missing(x, lg, P, "uris");
	else if (conf_member(lg, "uris") != NULL && l->uris.n == 0)
		conf_serr(x, conf_member(lg, "uris"), "forward.auth.ldap.uris", "must name at least one URI");
	conf_get_bool(x, lg, P, "starttls", &l->starttls);
	conf_get_path(x, lg, P, "ca_file", 0, &l->ca_file);
	conf_get_text(x, lg, P, "bind_dn", 0, &l->bind_dn);
	conf_get_path(x, lg, P, "bind_password_file", 0, &l->bind_password_file);
	if ((l->bind_dn != NULL) != (l->bind_password_file != NULL))
		conf_serr(x, lg, P, "bind_dn and bind_password_file go together (neither: anonymous searches)");
	if (conf_get_text(x, lg, P, "base", 0, &l->base) == 0)
		conf_missing(x, lg, P, "base");
	if (conf_get_text(x, lg, P, "user_filter", 0, &l->user_filter) == 1) {
		const char *why = filter_problem(l->user_filter);
		if (why != NULL)
			conf_serr(x, conf_member(lg, "user_filter"), "forward.auth.ldap.user_filter", "%s", why);
	}
	if (conf_get_enum(x, lg, P, "groups", ldap_groups, &e) == 1)
		l->groups = (enum conf_ldap_groups)e;
	conf_get_num(x, lg, P, "cache_ttl", 0, CONF_MAX_TIMEOUT, &l->cache_ttl);
	conf_get_num(x, lg, P, "negative_ttl", 0, CONF_MAX_TIMEOUT, &l->negative_ttl);
	if (conf_get_num(x, lg, P, "timeout", 0, 600, &l->timeout) == 1 && l->timeout < 0.05)
		conf_serr(x, conf_member(lg, "timeout"), "forward.auth.ldap.timeout", "must be at least 0.05 s");
	conf_get_bool(x, lg, P, "basic_bind", &l->basic_bind);
}

static const char *const scheme_names[] = {
#define X(id, s) s,
	CONF_AUTH_SCHEMES(X)
#undef X
	NULL
};

/* A scheme name, lower-cased in place; NTLM gets its own answer. */
static const char *chk_scheme(struct conf_ctx *x, char *v)
{
	(void)x;
	for (char *p = v; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (int i = 0; scheme_names[i] != NULL; i++)
		if (strcmp(v, scheme_names[i]) == 0)
			return NULL;
	if (strcmp(v, "ntlm") == 0)
		return "\"ntlm\" is not offered (connection-bound, NTLMv1/v2 hashes relayable; use \"negotiate\" "
		    "with Kerberos)";
	return "must be \"negotiate\" or \"basic\"";
}

static void read_kerberos(struct conf_ctx *x, config_setting_t *g, struct conf_fwd_kerberos *k)
{
	config_setting_t *kg = conf_get_group(x, g, "forward.auth", "kerberos", k_kerberos);
	char *v;

	if (kg == NULL)
		return;
	k->present = 1;
	k->src = conf_src_of(x, kg);
	if (conf_get_path(x, kg, "forward.auth.kerberos", "keytab", 0, &k->keytab) == 0)
		conf_missing(x, kg, "forward.auth.kerberos", "keytab");
	if (conf_get_text(x, kg, "forward.auth.kerberos", "principal", 0, &v) == 1) {
		if (strchr(v, ' ') != NULL)
			conf_serr(x, conf_member(kg, "principal"), "forward.auth.kerberos.principal",
			    "must not contain spaces (e.g. \"HTTP/proxy.corp.example@CORP.EXAMPLE\")");
		else
			k->principal = v;
	}
}

int fwd_sso_conf_read(struct conf_ctx *x, config_setting_t *g, struct conf_fwd_sso *s)
{
	struct conf_strs names = { 0 };
	config_setting_t *ss;
	int basic = 0;

	s->schemes[0] = CONF_SCHEME_BASIC;
	s->nschemes = 1;
	if (g == NULL)
		return 1;
	read_kerberos(x, g, &s->kerberos);
	read_ldap(x, g, &s->ldap);
	if ((ss = conf_member(g, "schemes")) == NULL)
		return !s->ldap.basic_bind;
	if (conf_get_strs(x, g, "forward.auth", "schemes", 1, chk_scheme, &names) != 1)
		return 0;   /* reported; no second error about the users file */
	s->schemes_src = conf_src_of(x, ss);
	if (names.n == 0) {
		conf_serr(x, ss, "forward.auth.schemes", "must name at least one scheme");
		return 0;
	}
	s->nschemes = 0;
	for (size_t i = 0; i < names.n; i++) {
		int id = 0;
		while (strcmp(scheme_names[id], names.v[i]) != 0)
			id++;
		for (size_t k = 0; k < s->nschemes; k++)
			if (s->schemes[k] == (enum conf_auth_scheme)id) {
				conf_serr(x, ss, "forward.auth.schemes", "\"%s\" is listed twice", names.v[i]);
				return 0;
			}
		s->schemes[s->nschemes++] = (enum conf_auth_scheme)id;
		if (id == CONF_SCHEME_BASIC)
			basic = 1;
		if (id == CONF_SCHEME_NEGOTIATE && !s->kerberos.present)
			conf_serr(x, ss, "forward.auth.schemes", "\"negotiate\" needs a forward.auth.kerberos "
			    "section (keytab)");
	}
	return basic && !s->ldap.basic_bind;
}
