/*
 * forward/sso_conf: the single sign-on keys of forward.auth (schemes,
 * kerberos) as conf_load() leaves them in struct conf_fwd_auth, and their
 * reader, which forward/fwd_conf.c's read_auth() calls.  Key names are the
 * contract of conf/gatehouse.conf (issue 18).
 */
#ifndef GW_FWD_SSO_CONF_H
#define GW_FWD_SSO_CONF_H

#include "conf/types.h"

struct conf_ctx;
struct config_setting_t;

/* The schemes a 407 offers, as written in forward.auth.schemes. */
#define CONF_AUTH_SCHEMES(X) \
	X(BASIC, "basic") \
	X(NEGOTIATE, "negotiate")

enum conf_auth_scheme {
#define X(id, s) CONF_SCHEME_##id,
	CONF_AUTH_SCHEMES(X)
#undef X
	CONF_SCHEME_COUNT
};

/* forward.auth.kerberos: the acceptor's keytab and (optional) principal. */
struct conf_fwd_kerberos {
	int present;
	char *keytab;              /* required */
	char *principal;           /* NULL: any principal of the keytab is accepted */
	struct conf_src src;
};

/* What read_auth() keeps of the SSO keys (members of struct conf_fwd_auth). */
struct conf_fwd_sso {
	enum conf_auth_scheme schemes[CONF_SCHEME_COUNT];   /* in the 407's order */
	size_t nschemes;           /* default 1: basic */
	struct conf_src schemes_src;
	struct conf_fwd_kerberos kerberos;
};

/*
 * Read forward.auth's schemes and kerberos keys of group g (NULL: the
 * defaults only) into *s.  Returns 1 when "basic" is offered (the users
 * file is then required), else 0.
 */
int fwd_sso_conf_read(struct conf_ctx *x, struct config_setting_t *g, struct conf_fwd_sso *s);

/* The key names read_auth() must allow beside its own (NULL-terminated). */
extern const char *const fwd_sso_conf_keys[];

#endif
