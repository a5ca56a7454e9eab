/*
 * cluster/clu_conf: reads cluster.* into struct conf_cluster with the
 * engine's key readers (conf/keys.h).
 */
#include "cluster/clu_conf.h"
#include "conf/keys.h"

#include <string.h>

static const char *const k_cluster[] = { "redis", "redis_prefix", NULL };

void clu_conf_read(struct conf_ctx *x, config_setting_t *root)
{
	struct conf_cluster *cl = conf_section(x);
	config_setting_t *g = conf_get_group(x, root, "", "cluster", k_cluster), *s;

	cl->redis.text = conf_arena_strdup(conf_ctx_arena(x), "");
	cl->redis.host = conf_arena_strdup(conf_ctx_arena(x), "");
	cl->redis_prefix = conf_arena_strdup(conf_ctx_arena(x), "gatehouse:");
	if (!g)
		return;
	cl->present = 1;
	/* an IP literal: hiredis resolves names with a blocking getaddrinfo */
	if ((s = conf_member(g, "redis")) && (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    *config_setting_get_string(s))) {
		if (conf_get_addr(x, g, "cluster", "redis", 0, &cl->redis) == 1) {
			if (cl->redis.port == 0 || strcmp(cl->redis.host, "") == 0 || cl->redis.text[0] == '*')
				conf_serr(x, s, "cluster.redis", "give the Redis server as \"ip:port\"");
			else
				cl->redis_enabled = 1;
		}
	}
	conf_get_text(x, g, "cluster", "redis_prefix", 0, &cl->redis_prefix);
	if ((s = conf_member(g, "redis_prefix")) && strpbrk(cl->redis_prefix, " \t") != NULL)
		conf_serr(x, s, "cluster.redis_prefix", "no spaces in a key prefix");
}
