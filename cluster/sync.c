/*
 * cluster/sync: configuration sync between the pair's consoles (see
 * sync.h).  The client side uses libevent's evhttp on the main loop, one
 * persistent connection per peer; the server side is two console endpoints.
 */
#include "cluster/sync.h"
#include "cluster/fileset.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/control.h"
#include "core/log.h"
#include "core/snapshot.h"

#define SYNC_MAX_PEERS 8
#define SYNC_MAX_FILE (60 * 1024)      /* under the console's body limit */
#define SYNC_SKEW 60                   /* seconds a signature stays valid */
#define SYNC_POLL_S 5
#define SYNC_TIMEOUT_S 5

struct peer {
	char addr[80];             /* "ip:port" as configured */
	char host[64];
	int port;
	/* what the console shows */
	int reachable, healthy;
	long long generation;
	char sha[65];
	char node[20];
	double last_seen;          /* wall clock of the last state answer */
	double last_sync;          /* wall clock of the last offer's answer */
	char last_result[240];     /* of the last offer: "applied", "unchanged", "refused: ...", ... */
	char state_error[160];     /* why the last state poll got no state ("" = it did) */
	int tls_state;             /* 0 plain HTTP, 1 not checked, 2 verified, 3 refused (cluster.peer_ca) */
};

struct call {                  /* one request in flight, on its own connection */
	struct call *next;
	struct evhttp_connection *conn;   /* freed by libevent once answered */
	unsigned epoch;
	int peer;
	int is_sync;               /* 0: a state poll; 1: the main file; 2: the set of cluster.sync_dir */
	int dropping;              /* its connection is being freed: answered() must not touch it */
	int done;                  /* answered: the reaper frees it */
	int verified;              /* TLS with cluster.peer_ca: the chain and address checked */
	long verify_err;           /* the first X509_V_ERR_* of the peer's certificate (0 = none) */
};

static struct {
	struct event_base *base;
	unsigned epoch;            /* bumped when the peers change: old calls are ignored */
	struct peer peers[SYNC_MAX_PEERS];
	int npeers;
	char token[512];
	int https;                 /* our console has TLS: so have the peers' */
	SSL_CTX *tls;
	char peer_ca[256];         /* cluster.peer_ca that S.tls trusts ("" = peers not verified) */
	char sha[65];              /* of our main file, or of our packed set, as last loaded */
	char sync_dir[256];        /* cluster.sync_dir ("" = the main file is what is offered) */
	int applying;              /* a peer's file is being applied: do not offer it back */
	struct event *ev_poll, *ev_reap;
	struct call *calls;
	/* the last offer received */
	double recv_when;
	char recv_from[80];
	char recv_result[240];
} S;

/* ---- helpers ---- */

static void hex(char *out, const unsigned char *p, size_t n)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = sizeof md;

	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1)
		memset(md, 0, sizeof md);
	hex(out, md, 32);
}

static void sign(const char *token, long long t, const char *method, const char *path, const char *body,
    size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = sizeof md;
	char head[160];
	int hl = snprintf(head, sizeof head, "%lld\n%s %s\n", t, method, path);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_END };
	size_t outl = 0;

	memset(md, 0, sizeof md);
	if (ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)token, strlen(token), params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)head, (size_t)hl) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 &&
	    EVP_MAC_final(ctx, md, &outl, sizeof md) == 1)
		mdlen = (unsigned int)outl;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	hex(out, md, mdlen);
}

/* The main file's bytes (malloc'ed, NUL-terminated); NULL with errno. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *p = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		size_t k;
		if (cap - n < 4096) {
			char *np = realloc(p, cap + 16384);
			if (np == NULL) {
				free(p);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			p = np;
			cap += 16384;
		}
		k = fread(p + n, 1, cap - n - 1, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	p[n] = '\0';
	*len = n;
	return p;
}

/* What this node offers: the packed set of cluster.sync_dir, or the main
 * file (malloc'ed; NULL with a reason in err). */
static char *offer(size_t *n, char *err, size_t errlen)
{
	char *p;

	if (S.sync_dir[0])
		return clu_fileset_pack(S.sync_dir, n, err, errlen);
	if ((p = read_file(gw_control_config_path(), n)) == NULL)
		snprintf(err, errlen, "cannot read %s: %s", gw_control_config_path(), strerror(errno));
	else if (*n > SYNC_MAX_FILE) {
		snprintf(err, errlen, "%s is over %d bytes", gw_control_config_path(), SYNC_MAX_FILE);
		free(p);
		p = NULL;
	}
	return p;
}

static void our_sha(void)
{
	size_t n;
	char err[300];
	char *p = offer(&n, err, sizeof err);

	if (p == NULL) {
		S.sha[0] = '\0';
		return;
	}
	sha256_hex(p, n, S.sha);
	free(p);
}

/* ---- client: offers and polls ---- */

/* c was answered: its connection is freed from the reaper, after libevent
 * is done with the request (never inside the request's own callback). */
static void call_done(struct call *c)
{
	c->done = 1;
	if (S.ev_reap != NULL)
		event_active(S.ev_reap, EV_TIMEOUT, 0);
}

/* Free the connections of the calls that are done (all = every call). */
static void reap(int all)
{
	struct call **pp = &S.calls;

	while (*pp != NULL) {
		struct call *c = *pp;
		if (!all && !c->done) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->dropping = 1;
		evhttp_connection_free(c->conn);
		free(c);
	}
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	reap(0);
}

/* The JSON body of a response (a new reference or NULL). */
static json_t *response_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = in != NULL ? evbuffer_get_length(in) : 0;
	unsigned char *p = n > 0 && n < 1 << 20 ? evbuffer_pullup(in, (ssize_t)n) : NULL;

	return p != NULL ? json_loadb((const char *)p, n, 0, NULL) : NULL;
}

static void first_error(json_t *j, char *out, size_t len)
{
	json_t *e = json_object_get(j, "errors");
	const char *s = json_is_array(e) && json_array_size(e) > 0 ? json_string_value(json_array_get(e, 0)) :
	    json_string_value(json_object_get(j, "error"));

	snprintf(out, len, "%s", s != NULL ? s : "no reason given");
}

static void answered(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	struct peer *p;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	json_t *j;

	if (c->dropping)
		return;
	if (c->epoch != S.epoch || c->peer >= S.npeers) {
		call_done(c);
		return;
	}
	p = &S.peers[c->peer];
	j = code > 0 ? response_json(req) : NULL;
	if (code > 0 && S.https)
		p->tls_state = c->verified ? 2 : 1;
	if (code == 0 && c->verify_err != 0) {
		/* refused: nothing was sent, nothing read */
		char why[140];
		snprintf(why, sizeof why, "certificate not verified with cluster.peer_ca: %s",
		    X509_verify_cert_error_string(c->verify_err));
		if (p->tls_state != 3 || c->is_sync)
			gw_warn("cluster: peer %s refused: %s", p->addr, why);
		p->tls_state = 3;
		p->reachable = 0;
		p->healthy = 0;
		snprintf(p->state_error, sizeof p->state_error, "%s", why);
		if (c->is_sync) {
			p->last_sync = gw_wall_now();
			snprintf(p->last_result, sizeof p->last_result, "not sent: %s", why);
		}
	} else if (code == 0) {
		if (p->reachable || c->is_sync)
			gw_warn("cluster: peer %s unreachable", p->addr);
		p->reachable = 0;
		p->healthy = 0;
		snprintf(p->state_error, sizeof p->state_error, "unreachable");
		if (c->is_sync) {
			p->last_sync = gw_wall_now();
			snprintf(p->last_result, sizeof p->last_result, "unreachable");
		}
	} else if (!c->is_sync) {
		p->reachable = 1;
		if (code == 200 && j != NULL) {
			p->healthy = json_is_true(json_object_get(j, "healthy"));
			p->generation = (long long)json_integer_value(json_object_get(j, "generation"));
			snprintf(p->sha, sizeof p->sha, "%s", json_string_value(json_object_get(j, "config_sha256")) ?
			    json_string_value(json_object_get(j, "config_sha256")) : "");
			snprintf(p->node, sizeof p->node, "%s", json_string_value(json_object_get(j, "node")) ?
			    json_string_value(json_object_get(j, "node")) : "");
			p->last_seen = gw_wall_now();
			p->state_error[0] = '\0';
		} else {
			p->healthy = 0;
			snprintf(p->state_error, sizeof p->state_error, "HTTP %d%s", code,
			    code == 401 ? " (not the same cluster token?)" : "");
		}
	} else {
		char why[200];
		p->reachable = 1;
		p->last_sync = gw_wall_now();
		if (code == 200) {
			int same = json_is_true(json_object_get(j, "unchanged"));
			p->generation = (long long)json_integer_value(json_object_get(j, "generation"));
			snprintf(p->sha, sizeof p->sha, "%s", S.sha);
			snprintf(p->last_result, sizeof p->last_result, "%s", same ? "unchanged" : "applied");
			gw_info("cluster: peer %s %s the configuration (generation %lld)", p->addr,
			    same ? "already had" : "applied", p->generation);
		} else {
			first_error(j, why, sizeof why);
			snprintf(p->last_result, sizeof p->last_result, "%s: %s",
			    code == 409 ? "refused" : code == 401 ? "not authorized" : "failed", why);
			gw_warn("cluster: peer %s refused the configuration (HTTP %d): %s", p->addr, code, why);
		}
	}
	json_decref(j);
	call_done(c);
}

/* The SSL ex_data index of the call a handshake belongs to. */
static int call_idx(void)
{
	static int idx = -1;

	if (idx < 0)
		idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return idx;
}

/* OpenSSL's verification of a peer's certificate (cluster.peer_ca): keep
 * the first error for the console; any error fails the handshake. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct call *c = ssl != NULL ? SSL_get_ex_data(ssl, call_idx()) : NULL;

	if (c != NULL) {
		if (!ok && c->verify_err == 0)
			c->verify_err = X509_STORE_CTX_get_error(x);
		if (ok && X509_STORE_CTX_get_error_depth(x) == 0 && c->verify_err == 0)
			c->verified = 1;
	}
	return ok;
}

static void send_call(int i, int is_sync, const char *body, size_t len)
{
	struct peer *p = &S.peers[i];
	struct call *c;
	struct evhttp_request *req;
	const char *method = is_sync ? "POST" : "GET", *path = is_sync == 2 ? "/api/v1/cluster/files" :
	    is_sync ? "/api/v1/cluster/sync" : "/api/v1/cluster/state";
	char sig[65], hdr[120], host[100];
	long long t = (long long)time(NULL);

	if ((c = calloc(1, sizeof *c)) == NULL)
		return;
	if (S.https) {
		/* without cluster.peer_ca the peer is not verified: the signature
		 * already proves who wrote the request and what it says; TLS keeps
		 * the files from onlookers.  With it, the chain and the peer's
		 * address (subjectAltName IP) must verify, or nothing is sent. */
		SSL *ssl = S.tls != NULL ? SSL_new(S.tls) : NULL;
		if (ssl != NULL && S.peer_ca[0] &&
		    (SSL_set_ex_data(ssl, call_idx(), c) != 1 ||
		    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), p->host) != 1)) {
			SSL_free(ssl);
			ssl = NULL;
		}
		struct bufferevent *bev = ssl != NULL ? bufferevent_openssl_socket_new(S.base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS) : NULL;
		if (bev == NULL)
			SSL_free(ssl);
		c->conn = bev != NULL ? evhttp_connection_base_bufferevent_new(S.base, NULL, bev, p->host,
		    (unsigned short)p->port) : NULL;
		if (c->conn == NULL && bev != NULL)
			bufferevent_free(bev);
	} else {
		c->conn = evhttp_connection_base_new(S.base, NULL, p->host, (unsigned short)p->port);
	}
	if (c->conn == NULL) {
		free(c);
		return;
	}
	evhttp_connection_set_timeout(c->conn, SYNC_TIMEOUT_S);
	c->epoch = S.epoch;
	c->peer = i;
	c->is_sync = is_sync;
	req = evhttp_request_new(answered, c);
	if (req == NULL) {
		evhttp_connection_free(c->conn);
		free(c);
		return;
	}
	c->next = S.calls;
	S.calls = c;
	sign(S.token, t, method, path, body, len, sig);
	snprintf(hdr, sizeof hdr, "t=%lld;sig=%s", t, sig);
	snprintf(host, sizeof host, "%s", p->addr);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Gatehouse-Cluster", hdr);
	/* libevent frees an auto-free connection only when it closes after the
	 * answer; a kept-alive one would idle until exit */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (is_sync) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	}
	/* one connection per call (a TLS bufferevent cannot reconnect), freed
	 * by the reaper once answered */
	if (evhttp_make_request(c->conn, req, is_sync ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path) != 0)
		call_done(c);   /* libevent freed req; the reaper frees the rest */
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (int i = 0; i < S.npeers; i++)
		send_call(i, 0, "", 0);
}

void clu_sync_reloaded(void)
{
	size_t n;
	char *file, err[300];

	our_sha();
	if (S.applying || S.npeers == 0)
		return;
	file = offer(&n, err, sizeof err);
	if (file == NULL) {
		gw_warn("cluster: nothing offered to the peers: %s", err);
		for (int i = 0; i < S.npeers; i++)
			snprintf(S.peers[i].last_result, sizeof S.peers[i].last_result, "not sent: %.200s", err);
		return;
	}
	for (int i = 0; i < S.npeers; i++)
		send_call(i, S.sync_dir[0] ? 2 : 1, file, n);
	free(file);
}

static void drop_peers(void)
{
	S.npeers = 0;
	S.epoch++;
	reap(1);   /* calls in flight: their connections go now */
}

/* The client context for the peers' consoles: verifying against ca, or
 * not at all (ca NULL).  Calls in flight keep the old one (refcounted). */
static void tls_context(const char *ca)
{
	SSL_CTX *t = SSL_CTX_new(TLS_client_method());

	if (t == NULL) {
		gw_error("cluster: out of memory for the peers' TLS");
		return;
	}
	SSL_CTX_set_min_proto_version(t, TLS1_2_VERSION);
	if (ca != NULL && SSL_CTX_load_verify_locations(t, ca, NULL) != 1) {
		/* -t read it; it changed since: refuse every peer rather than trust any */
		gw_error("cluster.peer_ca: cannot load %s: every peer is refused until it can be", ca);
	}
	SSL_CTX_set_verify(t, ca != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, ca != NULL ? verify_cb : NULL);
	SSL_CTX_free(S.tls);
	S.tls = t;
	snprintf(S.peer_ca, sizeof S.peer_ca, "%s", ca != NULL ? ca : "");
}

void clu_sync_configure(struct event_base *base, const struct gw_snapshot *s)
{
	const struct conf_cluster *cl = &s->conf->cluster;
	int same = (int)cl->npeers == S.npeers;
	static const struct timeval poll = { SYNC_POLL_S, 0 };

	S.base = base;
	snprintf(S.sync_dir, sizeof S.sync_dir, "%s", cl->sync_dir != NULL ? cl->sync_dir : "");
	our_sha();
	snprintf(S.token, sizeof S.token, "%s", cl->token != NULL ? cl->token : "");
	S.https = s->conf->admin.tls_cert != NULL;
	if (cl->peer_ca != NULL && !S.https)
		gw_warn("cluster.peer_ca: this console has no admin.tls_cert, so the peers are reached over plain "
		    "HTTP and no certificate is checked");
	if (S.https && (S.tls == NULL || strcmp(S.peer_ca, cl->peer_ca != NULL ? cl->peer_ca : "") != 0))
		tls_context(cl->peer_ca);
	for (size_t i = 0; same && i < cl->npeers; i++)
		same = strcmp(S.peers[i].addr, cl->peers[i].text) == 0;
	if (same)
		return;
	drop_peers();
	for (size_t i = 0; i < cl->npeers && i < SYNC_MAX_PEERS; i++) {
		struct peer *p = &S.peers[S.npeers++];
		memset(p, 0, sizeof *p);
		snprintf(p->addr, sizeof p->addr, "%s", cl->peers[i].text);
		snprintf(p->host, sizeof p->host, "%s", cl->peers[i].host);
		p->port = cl->peers[i].port;
		snprintf(p->last_result, sizeof p->last_result, "never synced");
	}
	if (cl->npeers > SYNC_MAX_PEERS)
		gw_warn("cluster: only the first %d peers are used", SYNC_MAX_PEERS);
	if (S.ev_reap == NULL)
		S.ev_reap = event_new(base, -1, 0, reap_cb, NULL);
	if (S.ev_poll == NULL && (S.ev_poll = event_new(base, -1, EV_PERSIST, poll_cb, NULL)) != NULL)
		event_add(S.ev_poll, &poll);
	if (S.npeers > 0)
		poll_cb(-1, 0, NULL);
}

void clu_sync_stop(void)
{
	drop_peers();
	SSL_CTX_free(S.tls);
	S.tls = NULL;
	S.peer_ca[0] = '\0';
	if (S.ev_poll != NULL)
		event_free(S.ev_poll);
	if (S.ev_reap != NULL)
		event_free(S.ev_reap);
	S.ev_poll = S.ev_reap = NULL;
}

/* ---- server: the endpoints ---- */

static int sig_ok(const char *hdr, const char *method, const char *path, const char *body, size_t len,
    const char **why)
{
	long long t;
	char want[65], got[65];
	int n = 0;

	if (S.token[0] == '\0') {
		*why = "this node has no cluster.token_file";
		return 0;
	}
	if (hdr == NULL || sscanf(hdr, "t=%lld;sig=%64[0-9a-f]%n", &t, got, &n) != 2 || hdr[n] != '\0' ||
	    strlen(got) != 64) {
		*why = "missing or malformed X-Gatehouse-Cluster signature";
		return 0;
	}
	if (llabs((long long)time(NULL) - t) > SYNC_SKEW) {
		*why = "signature too old (or the clocks differ by more than 60 s)";
		return 0;
	}
	sign(S.token, t, method, path, body, len, want);
	if (CRYPTO_memcmp(want, got, 64) != 0) {
		*why = "wrong signature (different cluster tokens?)";
		return 0;
	}
	return 1;
}

int clu_sync_set_welcome(const char *ip, const char *sig)
{
	unsigned char a[16], b[16];
	int fam = strchr(ip != NULL ? ip : "", ':') != NULL ? AF_INET6 : AF_INET;
	long long t;
	char got[65];
	int n = 0;

	if (S.token[0] == '\0' || S.sync_dir[0] == '\0' || ip == NULL || sig == NULL ||
	    inet_pton(fam, ip, a) != 1)
		return 0;
	if (sscanf(sig, "t=%lld;sig=%64[0-9a-f]%n", &t, got, &n) != 2 || sig[n] != '\0' ||
	    llabs((long long)time(NULL) - t) > SYNC_SKEW)
		return 0;
	for (int i = 0; i < S.npeers; i++)
		if (inet_pton(fam, S.peers[i].host, b) == 1 && memcmp(a, b, fam == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

/* Reload for a peer's offer (not offered back); 0, or -1 with the
 * reload's errors appended. */
static int reload_as_peer(json_t *errors)
{
	int rc, ok;
	double when;
	uint64_t gen;
	const char *const *e;
	size_t ne;

	S.applying = 1;
	rc = gw_control_reload();
	S.applying = 0;
	if (rc != 0) {
		gw_control_last_reload(&ok, &when, &gen, &e, &ne);
		for (size_t i = 0; i < ne; i++)
			json_array_append_new(errors, json_string(e[i]));
	}
	return rc;
}

/* Put body in place of the main file and reload; 0, or -1 with errors in
 * *out (the old file and configuration stay). */
static int apply(const char *body, size_t len, json_t *errors)
{
	const char *path = gw_control_config_path();
	char tmp[4200], *old;
	size_t oldlen;
	struct conf_errors errs = { 0 };
	struct gw_snapshot *s;
	struct stat st;
	int fd, rc;

	snprintf(tmp, sizeof tmp, "%s.sync", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, stat(path, &st) == 0 ? st.st_mode & 0777 : 0640);
	if (fd < 0 || write(fd, body, len) != (ssize_t)len || fsync(fd) != 0) {
		json_array_append_new(errors, json_sprintf("cannot write %s: %s%s", tmp, strerror(errno),
		    errno == EROFS || errno == EACCES ? " (set cluster.sync_dir to a directory this node may write, "
		    "e.g. /var/lib/gatehouse/cluster, on both nodes)" : ""));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	/* the check of gatehouse -t: everything but binding the listeners */
	s = gw_control_load(tmp, &errs);
	if (s == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			json_array_append_new(errors, json_string(errs.msgs[i]));
		conf_errors_free(&errs);
		unlink(tmp);
		return -1;
	}
	gw_snapshot_unref(s);
	conf_errors_free(&errs);
	old = read_file(path, &oldlen);
	if (old == NULL || rename(tmp, path) != 0) {
		json_array_append_new(errors, json_sprintf("cannot replace %s: %s", path, strerror(errno)));
		free(old);
		unlink(tmp);
		return -1;
	}
	rc = reload_as_peer(errors);
	if (rc != 0) {
		/* it passed the check but did not start (a listener?): the old file
		 * goes back, so a restart finds what is serving */
		FILE *f = fopen(path, "we");
		if (f != NULL) {
			fwrite(old, 1, oldlen, f);
			fclose(f);
		}
		our_sha();
	}
	free(old);
	return rc;
}

/* Does was name a set directory of ours (beside dir, "dir.<hex>")? */
static int ours(const char *dir, const char *was)
{
	size_t n = strlen(dir);

	return was[0] != '\0' && strncmp(was, dir, n) == 0 && was[n] == '.' && strchr(was + n, '/') == NULL;
}

/* Swap the set in body in for cluster.sync_dir, check as -t does, reload;
 * on any failure the old set is back in place.  0, or -1 with errors. */
static int apply_set(const char *body, size_t len, json_t *errors)
{
	char newdir[300], was[300], back[300], err[400];
	struct conf_errors errs = { 0 };
	struct gw_snapshot *s;
	int rc;

	if (S.sync_dir[0] == '\0') {
		json_array_append_new(errors, json_string("this node has no cluster.sync_dir for a set of files"));
		return -1;
	}
	if (clu_fileset_stage(S.sync_dir, body, len, newdir, sizeof newdir, err, sizeof err) != 0) {
		json_array_append_new(errors, json_string(err));
		return -1;
	}
	if (clu_fileset_switch(S.sync_dir, newdir, was, sizeof was, err, sizeof err) != 0) {
		json_array_append_new(errors, json_string(err));
		clu_fileset_remove(newdir);
		return -1;
	}
	/* the check of gatehouse -t on the new set: everything but binding the listeners */
	s = gw_control_load(gw_control_config_path(), &errs);
	if (s != NULL) {
		gw_snapshot_unref(s);
		rc = reload_as_peer(errors);
	} else {
		for (size_t i = 0; i < errs.n; i++)
			json_array_append_new(errors, json_string(errs.msgs[i]));
		rc = -1;
	}
	conf_errors_free(&errs);
	if (rc != 0) {
		/* the old set goes back: a restart finds what is serving */
		if (clu_fileset_switch(S.sync_dir, was, back, sizeof back, err, sizeof err) != 0)
			gw_error("cluster: %s: the refused set stays in place", err);
		else
			clu_fileset_remove(newdir);
		our_sha();
		return -1;
	}
	if (ours(S.sync_dir, was))
		clu_fileset_remove(was);
	return 0;
}

json_t *clu_sync_endpoint(const char *method, const char *path, const char *sig, const char *body,
    size_t len, unsigned *status)
{
	char full[64];
	const char *why = NULL;
	const struct gw_snapshot *s = gw_control_snapshot();
	int is_sync = strcmp(path, "sync") == 0 ? 1 : strcmp(path, "files") == 0 ? 2 : 0;

	if (!is_sync && strcmp(path, "state") != 0) {
		*status = 404;
		return json_pack("{s:s}", "error", "no such API endpoint");
	}
	if (strcmp(method, is_sync ? "POST" : "GET") != 0) {
		*status = 405;
		return json_pack("{s:s}", "error", is_sync ? "use POST" : "use GET");
	}
	snprintf(full, sizeof full, "/api/v1/cluster/%s", path);
	if (!sig_ok(sig, method, full, body != NULL ? body : "", body != NULL ? len : 0, &why)) {
		static double last_log;
		static unsigned quiet;
		*status = 401;
		/* anyone can knock: at most one line per 10 s */
		if (gw_wall_now() - last_log >= 10) {
			gw_warn("cluster: %s from a peer refused: %s%s", full, why,
			    quiet ? " (and earlier ones not logged)" : "");
			last_log = gw_wall_now();
			quiet = 0;
		} else {
			quiet++;
		}
		return json_pack("{s:s}", "error", why);
	}
	if (!is_sync) {
		*status = 200;
		return json_pack("{s:I,s:s,s:b,s:f}", "generation", (json_int_t)s->generation, "config_sha256", S.sha,
		    "healthy", !gw_control_stopping(), "loaded_at", s->loaded_at);
	}
	{
		char sha[65];
		json_t *errors = json_array();
		sha256_hex(body != NULL ? body : "", body != NULL ? len : 0, sha);
		S.recv_when = gw_wall_now();
		snprintf(S.recv_from, sizeof S.recv_from, "peer");
		if (strcmp(sha, S.sha) == 0) {
			*status = 200;
			snprintf(S.recv_result, sizeof S.recv_result, "unchanged");
			json_decref(errors);
			return json_pack("{s:b,s:b,s:I}", "ok", 1, "unchanged", 1, "generation",
			    (json_int_t)gw_control_snapshot()->generation);
		}
		if (len == 0 || (is_sync == 1 && memchr(body, '\0', len) != NULL)) {
			*status = 409;
			json_array_append_new(errors, json_string("empty or binary configuration"));
		} else if ((is_sync == 2 ? apply_set(body, len, errors) : apply(body, len, errors)) != 0) {
			*status = 409;
		} else {
			*status = 200;
			snprintf(S.recv_result, sizeof S.recv_result, "applied (generation %llu)",
			    (unsigned long long)gw_control_snapshot()->generation);
			gw_info("cluster: applied the configuration offered by a peer (generation %llu)",
			    (unsigned long long)gw_control_snapshot()->generation);
			json_decref(errors);
			return json_pack("{s:b,s:I}", "ok", 1, "generation", (json_int_t)gw_control_snapshot()->generation);
		}
		snprintf(S.recv_result, sizeof S.recv_result, "refused: %s",
		    json_array_size(errors) ? json_string_value(json_array_get(errors, 0)) : "?");
		gw_warn("cluster: refused the configuration offered by a peer: %s", S.recv_result + 9);
		return json_pack("{s:b,s:o}", "ok", 0, "errors", errors);
	}
}

json_t *clu_sync_json(void)
{
	json_t *a = json_array();

	for (int i = 0; i < S.npeers; i++) {
		const struct peer *p = &S.peers[i];
		static const char *const tls[] = { "none", "not verified", "verified", "refused" };
		json_array_append_new(a, json_pack("{s:s,s:b,s:b,s:s,s:s,s:I,s:s,s:f,s:f,s:s,s:b}", "address", p->addr,
		    "reachable", p->reachable, "healthy", p->healthy, "state_error", p->state_error,
		    "tls", tls[p->tls_state],
		    "generation", (json_int_t)p->generation,
		    "config_sha256", p->sha, "last_seen", p->last_seen, "last_sync", p->last_sync,
		    "last_result", p->last_result,
		    "diverged", p->reachable && p->sha[0] && strcmp(p->sha, S.sha) != 0));
	}
	return json_pack("{s:o,s:s,s:{s:f,s:s}}", "peers", a, "config_sha256", S.sha, "received",
	    "when", S.recv_when, "result", S.recv_result);
}
