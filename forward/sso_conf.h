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

/* forward.auth.ldap: groups (and Basic passwords) from a directory. */
#define CONF_LDAP_GROUPS(X) \
	X(MEMBEROF, "memberof")      /* the user entry's memberOf values */ \
	X(POSIX, "posix")            /* posixGroup entries whose memberUid is the user */ \
	X(AD_NESTED, "ad_nested")    /* groups whose member is the user, nesting followed */

enum conf_ldap_groups {
#define X(id, s) CONF_LDAP_##id,
	CONF_LDAP_GROUPS(X)
#undef X
};

struct conf_fwd_ldap {
	int present;
	struct conf_strs uris;     /* required; "ldap://host[:port]" or "ldaps://...", failover in order */
	int starttls;              /* StartTLS on ldap:// URIs (default 0) */
	char *ca_file;             /* CA bundle for LDAPS/StartTLS; NULL: the system's */
	char *bind_dn;             /* service bind; NULL: anonymous */
	char *bind_password_file;  /* with bind_dn; read by the forward compiler */
	char *base;                /* required: search base */
	char *user_filter;         /* "%s" = the escaped user name; default (&(objectClass=person)(uid=%s)) */
	enum conf_ldap_groups groups;   /* default memberof */
	double cache_ttl;          /* 300 */
	double negative_ttl;       /* 30: a user the directory does not know */
	double timeout;            /* 3: each directory operation (connect, bind, search) */
	int basic_bind;            /* Basic passwords of users not in users_file checked by binding */
	struct conf_src src;
};

/* What read_auth() keeps of the SSO keys (members of struct conf_fwd_auth). */
struct conf_fwd_sso {
	enum conf_auth_scheme schemes[CONF_SCHEME_COUNT];   /* in the 407's order */
	size_t nschemes;           /* default 1: basic */
	struct conf_src schemes_src;
	struct conf_fwd_kerberos kerberos;
	struct conf_fwd_ldap ldap;
};

/*
 * Read forward.auth's schemes, kerberos and ldap keys of group g (NULL: the
 * defaults only) into *s.  Returns 1 when "basic" is offered and checked
 * against the users file (which is then required: not with ldap.basic_bind),
 * else 0.
 */
int fwd_sso_conf_read(struct conf_ctx *x, struct config_setting_t *g, struct conf_fwd_sso *s);

#endif
