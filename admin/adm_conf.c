/*
 * admin/adm_conf: reads the console's section (admin.*) into struct
 * conf_admin with the engine's key readers (conf/keys.h), and binds the
 * console's addresses for the engine's overlap check.
 */
#include "admin/adm_conf.h"
#include "conf/keys.h"

#include <stdlib.h>
#include <string.h>

/* ---- admin ---- */

static const char *const k_admin[] = { "listen", "metrics_listen", "users_file", "tls_cert", "tls_key",
    "session_idle", "max_conns_per_client", "client_timeout", "ldap_roles", NULL };
static const char *const k_ldap_roles[] = { "admin", "viewer", NULL };

/* admin.ldap_roles: group DNs (or names) per role; the directory is
 * forward.auth.ldap's, which must exist. */
static void read_ldap_roles(struct conf_ctx *x, config_setting_t *root, config_setting_t *g,
    struct conf_admin *ad)
{
	config_setting_t *r = conf_get_group(x, g, "admin", "ldap_roles", k_ldap_roles);

	if (r == NULL)
		return;
	conf_get_text(x, r, "admin.ldap_roles", "admin", 0, &ad->ldap_admin);
	conf_get_text(x, r, "admin.ldap_roles", "viewer", 0, &ad->ldap_viewer);
	if (ad->ldap_admin == NULL && ad->ldap_viewer == NULL)
		conf_serr(x, r, "admin.ldap_roles", "name the group of \"admin\" or \"viewer\" (or both)");
	else if (config_setting_lookup(root, "forward.auth.ldap") == NULL)
		conf_serr(x, r, "admin.ldap_roles", "needs forward.auth.ldap (the directory it signs in with)");
}

void adm_conf_read(struct conf_ctx *x, config_setting_t *root)
{
	struct conf_admin *ad = conf_section(x);
	config_setting_t *g = conf_get_group(x, root, "", "admin", k_admin), *s;
	int line[2] = { 0, 0 };   /* of listen, metrics_listen: where an overlap is reported */

	if (conf_parse_addr("127.0.0.1:9090", 0, &ad->listen, conf_ctx_arena(x)))
		abort();
	ad->metrics_listen.text = conf_arena_strdup(conf_ctx_arena(x), "");
	ad->metrics_listen.host = conf_arena_strdup(conf_ctx_arena(x), "");
	ad->users_file = conf_arena_strdup(conf_ctx_arena(x), "/etc/gatehouse/admin.users");
	ad->session_idle = 1800.0;
	ad->max_conns_per_client = 16;
	ad->client_timeout = 15.0;
	if (!g)
		return;
	ad->present = 1;
	ad->listen_enabled = 1;
	if ((s = conf_member(g, "listen")))
		line[0] = (int)config_setting_source_line(s);
	if ((s = conf_member(g, "metrics_listen")))
		line[1] = (int)config_setting_source_line(s);
	if ((s = conf_member(g, "listen")) && config_setting_type(s) == CONFIG_TYPE_STRING &&
	    !*config_setting_get_string(s)) {
		ad->listen_enabled = 0;
		ad->listen.text = conf_arena_strdup(conf_ctx_arena(x), "");
		ad->listen.host = conf_arena_strdup(conf_ctx_arena(x), "");
		ad->listen.port = 0;
		ad->listen.sslen = 0;
	} else if (conf_get_addr(x, g, "admin", "listen", 0, &ad->listen) < 0) {
		ad->listen_enabled = 0;
	}
	if ((s = conf_member(g, "metrics_listen")) && (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    *config_setting_get_string(s))) {
		if (conf_get_addr(x, g, "admin", "metrics_listen", 0, &ad->metrics_listen) == 1)
			ad->metrics_enabled = 1;
	}
	conf_get_path(x, g, "admin", "users_file", 0, &ad->users_file);
	conf_get_path(x, g, "admin", "tls_cert", 0, &ad->tls_cert);
	conf_get_path(x, g, "admin", "tls_key", 0, &ad->tls_key);
	conf_get_num(x, g, "admin", "session_idle", 1.0, 86400.0, &ad->session_idle);
	/* the console holds at most 128 connections: a few addresses must not take them all */
	conf_get_int(x, g, "admin", "max_conns_per_client", 1, 128, &ad->max_conns_per_client);
	conf_get_num(x, g, "admin", "client_timeout", 1.0, 3600.0, &ad->client_timeout);
	read_ldap_roles(x, root, g, ad);
	if (!ad->tls_cert != !ad->tls_key)
		conf_serr(x, conf_member(g, ad->tls_cert ? "tls_cert" : "tls_key"), ad->tls_cert ? "admin.tls_cert" : "admin.tls_key",
		    "set both tls_cert and tls_key, or neither");
	if (ad->listen_enabled && ad->listen.sslen)
		conf_bind(x, &ad->listen, "admin.listen", conf_ctx_path(x), line[0]);
	if (ad->metrics_enabled && ad->metrics_listen.sslen)
		conf_bind(x, &ad->metrics_listen, "admin.metrics_listen", conf_ctx_path(x), line[1]);
}
