/*
 * cluster/clu_conf: the cluster section of the configuration (cluster.*):
 * how this node shares state with its HA partner.  Its type, as
 * conf_load() leaves it in struct conf's cluster member, and its reader,
 * called through the section table (conf/sections.c).
 */
#ifndef GW_CLU_CONF_H
#define GW_CLU_CONF_H

#include "conf/types.h"

struct conf_ctx;
struct config_setting_t;

struct conf_cluster {
	int present;
	struct conf_addr redis;    /* "ip:port" of the shared Redis; text "" = none (state stays local) */
	int redis_enabled;
	char *redis_prefix;        /* every key and channel starts with it; default "gatehouse:" */
	char *redis_password_file; /* Redis's requirepass, first line (NULL = no AUTH) */
	char *redis_password;
	struct conf_addr *peers;   /* other nodes' consoles ("ip:port"): a reload here is offered to them */
	size_t npeers;
	char *token_file;          /* the pair's shared secret (required with peers) */
	char *token;               /* its first line, read at load (>= 16 characters) */
	char *peer_ca;             /* CA file the peers' console certificates must verify against, their
	                            * IP address in the subjectAltName (NULL: not verified) */
	char *sync_dir;            /* the shared files: every file under it is offered to the peers as one
	                            * set (NULL: only the main file is, as before) */
};

/* The cluster section's reader (conf/keys.h struct conf_section). */
void clu_conf_read(struct conf_ctx *x, struct config_setting_t *root);

#endif
