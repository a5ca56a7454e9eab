/*
 * forward/sso_conf: reads forward.auth.schemes and forward.auth.kerberos
 * (see sso_conf.h).  The keytab is only checked to be a path here; whether
 * it holds a usable key is the forward compiler's check (fwd_negotiate_new),
 * which `gatehouse -t` runs too.
 */
#include "forward/sso_conf.h"
#include "conf/keys.h"

#include <string.h>

const char *const fwd_sso_conf_keys[] = { "schemes", "kerberos", NULL };

static const char *const k_kerberos[] = { "keytab", "principal", NULL };

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
	if ((ss = conf_member(g, "schemes")) == NULL)
		return 1;
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
	return basic;
}
