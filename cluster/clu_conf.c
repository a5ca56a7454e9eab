/*
 * cluster/clu_conf: reads cluster.* into struct conf_cluster with the
 * engine's key readers (conf/keys.h).
 */
#include "cluster/clu_conf.h"
#include "conf/keys.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

static const char *const k_cluster[] = { "redis", "redis_prefix", "redis_password_file", "peers", "token_file",
    "sync_dir", "peer_ca", NULL };

/* A secret file's first line into the arena (at least min characters, no
 * spaces); NULL after reporting why not under key. */
static char *read_secret(struct conf_ctx *x, const config_setting_t *s, const char *key, const char *path,
    size_t min)
{
	char line[512];
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		conf_serr(x, s, key, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fgets(line, sizeof line, f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < min || conf_has_ctl(line) || strchr(line, ' ') != NULL) {
		conf_serr(x, s, key, "%s: the first line must be a secret of at least %zu "
		    "characters without spaces (e.g. openssl rand -hex 32)", path, min);
		return NULL;
	}
	return conf_arena_strdup(conf_ctx_arena(x), line);
}

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
	{
		struct conf_strs peers = { NULL, 0 };
		if (conf_get_strs(x, g, "cluster", "peers", 0, NULL, &peers) == 1 && peers.n > 0) {
			cl->peers = conf_arena_alloc(conf_ctx_arena(x), peers.n * sizeof *cl->peers);
			for (size_t i = 0; i < peers.n; i++) {
				const char *e = conf_parse_addr(peers.v[i], 0, &cl->peers[cl->npeers], conf_ctx_arena(x));
				if (e == NULL && (cl->peers[cl->npeers].host[0] == '\0' || cl->peers[cl->npeers].port == 0))
					e = "give a peer's console as \"ip:port\"";
				if (e != NULL)
					conf_serr(x, conf_member(g, "peers"), "cluster.peers", "\"%s\": %s", peers.v[i], e);
				else
					cl->npeers++;
			}
		}
	}
	if (conf_get_path(x, g, "cluster", "token_file", 0, &cl->token_file) == 1)
		cl->token = read_secret(x, conf_member(g, "token_file"), "cluster.token_file", cl->token_file, 16);
	if (conf_get_path(x, g, "cluster", "peer_ca", 0, &cl->peer_ca) == 1) {
		FILE *f = fopen(cl->peer_ca, "re");
		X509 *c;
		int n = 0;
		if (f == NULL) {
			conf_serr(x, conf_member(g, "peer_ca"), "cluster.peer_ca", "cannot read %s: %s", cl->peer_ca,
			    strerror(errno));
		} else {
			while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
				X509_free(c);
				n++;
			}
			fclose(f);
			if (n == 0)
				conf_serr(x, conf_member(g, "peer_ca"), "cluster.peer_ca", "no PEM certificate in %s",
				    cl->peer_ca);
		}
	}
	if (conf_get_path(x, g, "cluster", "sync_dir", 0, &cl->sync_dir) == 1) {
		size_t n = strlen(cl->sync_dir);
		while (n > 1 && cl->sync_dir[n - 1] == '/')
			cl->sync_dir[--n] = '\0';
		if (n <= 1 || strlen(cl->sync_dir) > 200)
			conf_serr(x, conf_member(g, "sync_dir"), "cluster.sync_dir",
			    "give a directory of its own (not /), at most 200 characters");
	}
	if (conf_get_path(x, g, "cluster", "redis_password_file", 0, &cl->redis_password_file) == 1)
		cl->redis_password = read_secret(x, conf_member(g, "redis_password_file"), "cluster.redis_password_file",
		    cl->redis_password_file, 1);
	if (cl->npeers > 0 && cl->token_file == NULL)
		conf_serr(x, conf_member(g, "peers"), "cluster.peers", "set cluster.token_file too: the peers "
		    "authenticate each other with it");
	if ((s = conf_member(g, "redis_prefix")) && strpbrk(cl->redis_prefix, " \t") != NULL)
		conf_serr(x, s, "cluster.redis_prefix", "no spaces in a key prefix");
}
