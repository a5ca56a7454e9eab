/*
 * admin/adm_conf: the console's section of the configuration (admin.*): its
 * type, as conf_load() leaves it in struct conf's admin member, and its
 * reader, which the configuration engine calls through the section table
 * (conf/sections.c).
 */
#ifndef GW_ADM_CONF_H
#define GW_ADM_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "conf/types.h"

struct conf_ctx;
struct config_setting_t;

struct conf_admin {
	int present;               /* no admin section: present = 0 and listen_enabled = 0 */
	struct conf_addr listen;   /* default 127.0.0.1:9090; text "" = console off */
	int listen_enabled;        /* section present and listen != "" */
	struct conf_addr metrics_listen;
	int metrics_enabled;
	char *users_file;
	char *tls_cert, *tls_key;  /* NULL = plain HTTP */
	double session_idle;       /* a console session ends after this long without a request */
	int64_t max_conns_per_client;   /* console connections one client address may hold */
	double client_timeout;     /* a console connection idle this long is closed (seconds) */
	/* admin.ldap_roles: console sign-in through forward.auth.ldap for users
	 * not in users_file; the role of a member of these groups (DN or name;
	 * NULL: none).  Admin wins over viewer. */
	char *ldap_admin, *ldap_viewer;
};

/* The admin section's reader (conf/keys.h struct conf_section). */
void adm_conf_read(struct conf_ctx *x, struct config_setting_t *root);

#endif
