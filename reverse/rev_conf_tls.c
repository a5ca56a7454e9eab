/*
 * reverse/rev_conf_tls: reads the TLS controls of the reverse section
 * (reverse.tls: min_version, ciphers, ciphersuites, groups) and of a site
 * (hsts, client_ca, client_verify) into struct conf_reverse (see
 * rev_conf_tls.h).  Cipher, suite and group strings are tried on a scratch
 * OpenSSL context here, so a typo is a FILE:LINE error at -t instead of a
 * setting OpenSSL would silently ignore or a start that fails later.
 */
#include "reverse/rev_conf_tls.h"
#include "conf/keys.h"
#include "reverse/rev_conf.h"
#include "conf/types.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const k_tls[] = { "min_version", "ciphers", "ciphersuites", "groups", NULL };

/*
 * OpenSSL takes a cipher or suite list when any one element is known and
 * drops the others without a word: each element is tried alone, so a typo
 * in one is reported.  A cipher element with an operator (!, -, +) is tried
 * without it, at security level 0 ("!aNULL" names ciphers the default level
 * would not select); "@SECLEVEL=n" and "@STRENGTH" are taken as they are.
 */
static int each_elem(SSL_CTX *c, const char *v, int suites, char *bad, size_t blen)
{
	char e[256];
	const char *p = v;

	while (*p != '\0') {
		size_t n = strcspn(p, suites ? ":" : ": ,");
		const char *q = p;
		size_t k = n;
		if (!suites && k > 0 && (*q == '!' || *q == '-' || *q == '+')) {
			q++;
			k--;
		}
		snprintf(bad, blen, "%.*s", (int)n, p);
		if (k >= sizeof e - 16)
			return 0;
		if (k > 0 && *q != '@') {
			memcpy(e, q, k);
			e[k] = '\0';
			if (!suites)
				strcat(e, ":@SECLEVEL=0");
			if ((suites ? SSL_CTX_set_ciphersuites(c, e) : SSL_CTX_set_cipher_list(c, e)) != 1)
				return 0;
		}
		p += n;
		if (*p != '\0')
			p++;
	}
	return 1;
}

/* An OpenSSL setter for one policy string: 1 when OpenSSL takes it whole;
 * else bad names the element it refused (or is the whole string). */
static int try_ciphers(SSL_CTX *c, const char *v, char *bad, size_t blen)
{
	snprintf(bad, blen, "%s", v);
	return SSL_CTX_set_cipher_list(c, v) == 1 && each_elem(c, v, 0, bad, blen);
}

static int try_suites(SSL_CTX *c, const char *v, char *bad, size_t blen)
{
	snprintf(bad, blen, "%s", v);
	return SSL_CTX_set_ciphersuites(c, v) == 1 && each_elem(c, v, 1, bad, blen);
}

static int try_groups(SSL_CTX *c, const char *v, char *bad, size_t blen)
{
	snprintf(bad, blen, "%s", v);
	return SSL_CTX_set1_groups_list(c, v);
}

/* Read g.name as a policy string and check it with set(); what names the
 * kind of value in the error. */
static void read_policy_str(struct conf_ctx *x, config_setting_t *g, const char *path, const char *name,
    int (*set)(SSL_CTX *, const char *, char *, size_t), const char *what, char **out)
{
	SSL_CTX *c;
	char p[CONF_KP], bad[256];
	int ok;

	if (conf_get_text(x, g, path, name, 0, out) != 1)
		return;
	c = SSL_CTX_new(TLS_server_method());
	if (c == NULL)
		return;                /* out of memory: the real context will say */
	ok = set(c, *out, bad, sizeof bad) == 1;
	SSL_CTX_free(c);
	ERR_clear_error();
	if (!ok) {
		conf_kp_child(p, path, name);
		conf_serr(x, conf_member(g, name), p, "\"%s\" %s", bad, what);
		*out = NULL;
	}
}

/* The policy group g (key path path) into *t. */
static void read_policy(struct conf_ctx *x, config_setting_t *g, const char *path, struct conf_rev_tls *t)
{
	static const char *const versions[] = { "1.2", "1.3", NULL };
	config_setting_t *mv = conf_member(g, "min_version");
	char p[CONF_KP];
	int v;

	t->present = 1;
	if (mv != NULL && config_setting_type(mv) == CONFIG_TYPE_STRING &&
	    (strcmp(config_setting_get_string(mv), "1.0") == 0 ||
	    strcmp(config_setting_get_string(mv), "1.1") == 0)) {
		/* OpenSSL 3 refuses them at its default security level, and
		 * PCI DSS forbids them: say so rather than lower the level */
		conf_kp_child(p, path, "min_version");
		conf_serr(x, mv, p, "TLS %s is not offered (deprecated by RFC 8996); use \"1.2\" or \"1.3\"",
		    config_setting_get_string(mv));
	} else if (conf_get_enum(x, g, path, "min_version", versions, &v) == 1) {
		t->min_version = v == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
	}
	read_policy_str(x, g, path, "ciphers", try_ciphers,
	    "is not a TLS 1.2 cipher or cipher class OpenSSL knows", &t->ciphers);
	read_policy_str(x, g, path, "ciphersuites", try_suites,
	    "is not a TLS 1.3 suite OpenSSL knows (such as \"TLS_AES_256_GCM_SHA384\")", &t->ciphersuites);
	read_policy_str(x, g, path, "groups", try_groups,
	    "is not a list of groups OpenSSL knows (such as \"X25519:P-256\")", &t->groups);
}

void rev_conf_tls_read(struct conf_ctx *x, config_setting_t *r, struct conf_rev_tls *t)
{
	config_setting_t *g = conf_get_group(x, r, "reverse", "tls", k_tls);

	if (g != NULL)
		read_policy(x, g, "reverse.tls", t);
}

void rev_conf_tls_listeners(struct conf_ctx *x, config_setting_t *r, struct conf_reverse *rv)
{
	config_setting_t *l = conf_member(r, "listeners");
	unsigned n = l != NULL && config_setting_is_list(l) ? (unsigned)config_setting_length(l) : 0;
	char ep[CONF_KP], p[CONF_KP];

	if (rv->nlisteners == 0)
		return;
	rv->listener_tls = conf_arena_alloc(conf_ctx_arena(x), rv->nlisteners * sizeof *rv->listener_tls);
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, i), *g, *a;
		struct conf_addr addr;
		size_t k;
		if (config_setting_type(e) != CONFIG_TYPE_GROUP || conf_member(e, "tls_policy") == NULL)
			continue;
		snprintf(ep, sizeof ep, "reverse.listeners.[%u]", i);
		/* the listener this element became (conf_read_listeners kept it,
		 * or reported why not): by its address */
		a = conf_member(e, "address");
		if (a == NULL || config_setting_type(a) != CONFIG_TYPE_STRING ||
		    conf_parse_addr(config_setting_get_string(a), 0, &addr, conf_ctx_arena(x)) != NULL)
			continue;
		for (k = 0; k < rv->nlisteners; k++)
			if (strcmp(rv->listeners[k].addr.text, addr.text) == 0)
				break;
		if (k == rv->nlisteners)
			continue;
		conf_kp_child(p, ep, "tls_policy");
		if (!rv->listeners[k].tls) {
			conf_serr(x, conf_member(e, "tls_policy"), p, "only applies to a TLS listener (tls = true)");
			continue;
		}
		g = conf_get_group(x, e, ep, "tls_policy", k_tls);
		if (g == NULL)
			continue;
		rv->listener_tls[k] = conf_arena_alloc(conf_ctx_arena(x), sizeof *rv->listener_tls[k]);
		read_policy(x, g, p, rv->listener_tls[k]);
	}
}

void rev_conf_tls_site(struct conf_ctx *x, config_setting_t *e, const char *ep, struct conf_rev_site *si)
{
	static const char *const verifies[] = { "required", "optional", NULL };
	char p[CONF_KP];
	int v;

	if (conf_get_text(x, e, ep, "hsts", 0, &si->hsts) == 1 && strncasecmp(si->hsts, "max-age=", 8) != 0) {
		conf_kp_child(p, ep, "hsts");
		conf_serr(x, conf_member(e, "hsts"), p,
		    "must start with max-age= (RFC 6797), such as \"max-age=31536000; includeSubDomains\"");
		si->hsts = NULL;
	}
	conf_get_path(x, e, ep, "client_ca", 0, &si->client_ca);
	if (conf_get_enum(x, e, ep, "client_verify", verifies, &v) == 1) {
		si->client_verify = v == 0 ? CONF_CLIENT_VERIFY_REQUIRED : CONF_CLIENT_VERIFY_OPTIONAL;
		if (si->client_ca == NULL && !conf_member(e, "client_ca")) {
			conf_kp_child(p, ep, "client_verify");
			conf_serr(x, conf_member(e, "client_verify"), p, "needs client_ca (the CA that signs client certificates)");
		}
	} else if (si->client_ca != NULL) {
		si->client_verify = CONF_CLIENT_VERIFY_REQUIRED;
	}
	if (si->client_ca != NULL && si->hosts.n == 0) {
		/* the certificate is asked for in the handshake, chosen by SNI */
		conf_kp_child(p, ep, "client_ca");
		conf_serr(x, conf_member(e, "client_ca"), p,
		    "needs hosts: the client certificate is asked for by the name the client connects to (SNI)");
	}
}

static const char *const k_acme[] = { "directory", "email", "ca_file", "renew_before", "challenge", NULL };

void rev_conf_tls_acme(struct conf_ctx *x, config_setting_t *r, struct conf_rev_acme *a)
{
	config_setting_t *g = conf_get_group(x, r, "reverse", "acme", k_acme);

	a->renew_before = 30.0;
	if (g == NULL)
		return;
	a->present = 1;
	a->src = conf_src_of(x, g);
	switch (conf_get_text(x, g, "reverse.acme", "directory", 0, &a->directory)) {
	case 0:
		conf_missing(x, g, "reverse.acme", "directory");
		break;
	case 1:
		if (strncmp(a->directory, "https://", 8) != 0 || strchr(a->directory, ' ') != NULL)
			conf_serr(x, conf_member(g, "directory"), "reverse.acme.directory",
			    "must be an https:// URL (the ACME server's directory)");
		break;
	}
	if (conf_get_text(x, g, "reverse.acme", "email", 0, &a->email) == 1 &&
	    (strchr(a->email, '@') == NULL || strpbrk(a->email, " ,<>\"") != NULL))
		conf_serr(x, conf_member(g, "email"), "reverse.acme.email", "not an e-mail address");
	if (conf_get_path(x, g, "reverse.acme", "ca_file", 1, &a->ca_file) == 1 && a->ca_file[0] == '\0')
		a->ca_file = NULL;
	conf_get_num(x, g, "reverse.acme", "renew_before", 0.001, 365, &a->renew_before);
	{
		static const char *const kinds[] = { "http-01", "tls-alpn-01", NULL };
		conf_get_enum(x, g, "reverse.acme", "challenge", kinds, &a->challenge);
	}
}

/* An ACME name: a host name, no wildcard, no IP literal (HTTP-01 proves a DNS name). */
static const char *chk_acme_name(struct conf_ctx *x, char *v)
{
	const char *e = conf_chk_host(x, v);

	if (e != NULL)
		return e;
	if (strchr(v, '*') != NULL)
		return "a wildcard needs DNS-01, which Gatehouse does not answer";
	if (strspn(v, "0123456789.") == strlen(v) || strchr(v, ':') != NULL)
		return "an IP address: give a DNS name";
	return NULL;
}

int rev_conf_tls_cert_acme(struct conf_ctx *x, config_setting_t *e, const char *ep, struct conf_rev_cert *ce)
{
	const struct conf_rev_acme *a = &((struct conf_reverse *)conf_section(x))->acme;
	char p[CONF_KP];
	int ok = 1;

	conf_kp_child(p, ep, "acme");
	if (conf_get_strs(x, e, ep, "acme", 0, chk_acme_name, &ce->acme) != 1)
		return -1;
	if (ce->acme.n == 0) {
		conf_serr(x, conf_member(e, "acme"), p, "needs at least one name");
		ok = 0;
	}
	if (conf_member(e, "cert") || conf_member(e, "key") || conf_member(e, "ocsp")) {
		conf_serr(x, e, ep, "give either acme or cert and key");
		ok = 0;
	}
	if (!a->present) {
		conf_serr(x, conf_member(e, "acme"), p, "needs reverse.acme { directory = \"https://...\"; }");
		ok = 0;
	}
	return ok ? 0 : -1;
}
