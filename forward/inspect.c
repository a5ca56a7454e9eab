/*
 * forward/inspect: TLS inspection, the forward side's part (see inspect.h
 * for the steps).  Here: the ClientHello verdicts, the upstream TLS
 * contexts, the certificate cache with its single-flight minting on the job
 * pool, and what a request inside an inspected connection carries over
 * from its CONNECT (the connection's tag: "user\tproblem").
 */
#include "forward/inspect.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "core/clock.h"
#include "core/jobs.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/strhash.h"
#include "core/tls.h"
#include "forward/auth.h"
#include "forward/decide.h"
#include "forward/inspect_ca.h"
#include "forward/inspect_hello.h"

#define INSPECT_MAGIC 0x494e5350u   /* "INSP" */
#define SLOT_TAG ((uintptr_t)4)      /* gw_req_data: an insp_req (forward.c's scan holds tag
                                      * bit 0, its ICAP wrapper bit 1; the arena aligns to 16) */
#define PEEK_MAX (FWD_HELLO_MAX + 64 * 5 + 5)   /* the hello in up to 64 records */
#define CACHE_BUCKETS 4096

static _Atomic uint64_t counters[FWD_IC_COUNT];

static void count(enum fwd_inspect_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

uint64_t fwd_inspect_counter(enum fwd_inspect_counter c)
{
	return atomic_load_explicit(&counters[c], memory_order_relaxed);
}

const char *fwd_inspect_counter_name(enum fwd_inspect_counter c)
{
	static const char *const names[] = {
#define X(id, s) s,
		FWD_INSPECT_COUNTERS(X)
#undef X
	};
	return (unsigned)c < FWD_IC_COUNT ? names[c] : "?";
}

/* ---- hosts whose clients abort the handshake (pinned applications) ----
 *
 * A small table with the Space-Saving replacement: a new host takes the
 * least counted slot when full, so the frequent ones stay.  Rare events
 * (a failed handshake): one mutex is enough. */

static struct {
	pthread_mutex_t mu;
	char host[FWD_INSPECT_ABORT_HOSTS][256];
	uint64_t n[FWD_INSPECT_ABORT_HOSTS];
} aborts = { .mu = PTHREAD_MUTEX_INITIALIZER };

void fwd_inspect_abort(const char *host)
{
	size_t i, low = 0;

	pthread_mutex_lock(&aborts.mu);
	for (i = 0; i < FWD_INSPECT_ABORT_HOSTS; i++) {
		if (aborts.n[i] > 0 && strcmp(aborts.host[i], host) == 0)
			break;
		if (aborts.n[i] < aborts.n[low])
			low = i;
	}
	if (i == FWD_INSPECT_ABORT_HOSTS) {
		i = low;
		snprintf(aborts.host[i], sizeof aborts.host[i], "%s", host);
	}
	aborts.n[i]++;
	pthread_mutex_unlock(&aborts.mu);
}

size_t fwd_inspect_aborts(char (*hosts)[256], uint64_t *counts, size_t cap)
{
	size_t idx[FWD_INSPECT_ABORT_HOSTS], k = 0;

	pthread_mutex_lock(&aborts.mu);
	for (size_t i = 0; i < FWD_INSPECT_ABORT_HOSTS; i++)
		if (aborts.n[i] > 0)
			idx[k++] = i;
	/* most first (at most 32 entries: a plain insertion sort) */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && aborts.n[idx[j - 1]] < aborts.n[idx[j]]; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	if (k > cap)
		k = cap;
	for (size_t i = 0; i < k; i++) {
		counts[i] = aborts.n[idx[i]];
		memcpy(hosts[i], aborts.host[idx[i]], sizeof hosts[i]);
	}
	pthread_mutex_unlock(&aborts.mu);
	return k;
}

/* ---- the certificate cache ---- */

struct waiter {
	struct gw_req *rq;
	struct waiter *next;
	X509 *cert;                /* the answer (a reference), or NULL */
	char err[200];
};

struct centry {
	char *key;
	unsigned hash;
	X509 *cert;                /* NULL while minting */
	int minting;
	struct waiter *waiters;    /* requests waiting for this minting */
	struct centry *hnext;      /* bucket chain */
	struct centry *lprev, *lnext;   /* LRU: head = most recent (ready entries only) */
	/* the job: what to mint */
	struct gw_job job;
	struct fwd_inspect *in;
	char *names[FWD_MINT_MAX_NAMES];
	size_t nnames;
	time_t nb, na;
	char err[200];
};

struct fwd_inspect {
	uint32_t magic;
	const struct conf *cf;
	struct fwd_ca *ca;
	SSL_CTX *srv;
	int tls_verify, tls_insecure;   /* upstream client context numbers */
	struct gw_jobs_port *port;      /* NULL: mint on the loop (no pool) */
	pthread_mutex_t mu;
	struct centry *b[CACHE_BUCKETS];
	struct centry *lru_head, *lru_tail;
	size_t nready, cap;
};

/* Per request (CONNECT), in its arena, in the family's data slot. */
struct insp_req {
	struct fwd_inspect *in;
	char problem[400];         /* the upstream failed: why ("" = fine) */
	char *host;
	uint16_t port;
	size_t rule_index;
	const char *rule_name;
	int insecure;
	int alpn_h1, alpn_h2;      /* the client offers http/1.1, h2 */
	int origin_h2;             /* the origin's check handshake chose h2 */
	char sni[256];
	struct waiter w;
};

int fwd_inspect_owns_slot(const void *slot)
{
	return ((uintptr_t)slot & 7) == SLOT_TAG;
}

static struct insp_req *ireq(struct gw_req *rq)
{
	void *s = gw_req_data(rq);

	return fwd_inspect_owns_slot(s) ? (struct insp_req *)((uintptr_t)s & ~(uintptr_t)7) : NULL;
}

static void lru_unlink(struct fwd_inspect *in, struct centry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		in->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		in->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(struct fwd_inspect *in, struct centry *e)
{
	e->lnext = in->lru_head;
	e->lprev = NULL;
	if (in->lru_head)
		in->lru_head->lprev = e;
	in->lru_head = e;
	if (in->lru_tail == NULL)
		in->lru_tail = e;
}

static void entry_free(struct centry *e)
{
	for (size_t i = 0; i < e->nnames; i++)
		free(e->names[i]);
	X509_free(e->cert);
	free(e->key);
	free(e);
}

static void bucket_remove(struct fwd_inspect *in, struct centry *e)
{
	struct centry **pp = &in->b[e->hash % CACHE_BUCKETS];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
}

/* Over the bound: drop the least recently used ready leaves (lock held). */
static void evict(struct fwd_inspect *in)
{
	while (in->nready > in->cap && in->lru_tail != NULL) {
		struct centry *e = in->lru_tail;
		lru_unlink(in, e);
		bucket_remove(in, e);
		in->nready--;
		entry_free(e);
	}
}

size_t fwd_inspect_cached(const struct fwd_inspect *in)
{
	return in != NULL ? in->nready : 0;
}

/* ---- compile ---- */

struct fwd_inspect *fwd_inspect_new(const struct conf *cf, struct fwd_ca *ca, struct conf_errors *errs,
    int *failed)
{
	const struct conf_fwd_inspect *ic = &cf->forward.inspect;
	struct fwd_inspect *in;
	static const unsigned char sid[] = "gatehouse-inspect";

	*failed = 0;
	if (!ic->present || !ic->mode_all || ca == NULL)
		return NULL;
	in = calloc(1, sizeof *in);
	if (in == NULL || (in->srv = SSL_CTX_new(TLS_server_method())) == NULL ||
	    pthread_mutex_init(&in->mu, NULL) != 0) {
		if (in != NULL)
			SSL_CTX_free(in->srv);
		free(in);
		conf_err(errs, ic->src.file, ic->src.line, "forward.inspect", "cannot set up TLS: out of memory");
		*failed = 1;
		return NULL;
	}
	in->magic = INSPECT_MAGIC;
	in->cf = cf;
	in->ca = ca;
	in->cap = (size_t)ic->cert_cache;
	in->tls_verify = (int)cf->reverse.nupstreams;
	in->tls_insecure = in->tls_verify + 1;
	SSL_CTX_set_min_proto_version(in->srv, TLS1_2_VERSION);
	SSL_CTX_set_options(in->srv, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* h2 where serve() allows it (ALPN mirrored from the origin), else
	 * http/1.1; a client offering neither gets no ALPN and HTTP/1.1 */
	gw_tls_ctx_alpn(in->srv);
	SSL_CTX_set_session_id_context(in->srv, sid, sizeof sid - 1);
	SSL_CTX_set_mode(in->srv, SSL_MODE_RELEASE_BUFFERS);
	/* one ticket per full handshake, not OpenSSL's two: each costs a
	 * session encoding, an encryption and a write(2) (~30 us measured), and
	 * a client resumes with one */
	SSL_CTX_set_num_tickets(in->srv, 1);
	/* a record in one read(2), not header then body; conn.c asks
	 * SSL_has_pending() before waiting for the socket (as for tls.c's) */
	SSL_CTX_set_read_ahead(in->srv, 1);
	if (gw_jobs_shared() != NULL)
		in->port = gw_jobs_port_new(gw_jobs_shared(), NULL, 0);
	return in;
}

void fwd_inspect_free(struct fwd_inspect *in)
{
	if (in == NULL)
		return;
	/* every minting has finished (a waiting request pins this
	 * generation); the port's done() calls are all delivered */
	gw_jobs_port_free(in->port);
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct centry *e = in->b[i], *n;
		for (; e != NULL; e = n) {
			n = e->hnext;
			entry_free(e);
		}
	}
	SSL_CTX_free(in->srv);
	pthread_mutex_destroy(&in->mu);
	in->magic = 0;
	free(in);
}

int fwd_inspect_tls_specs(const struct conf *cf, struct gw_tls_specs *sp)
{
	const struct conf_fwd_inspect *ic = &cf->forward.inspect;
	struct gw_tls_client_spec c = {
		.name = "forward.inspect", .index = (int)cf->reverse.nupstreams, .verify = 1,
		.ca_file = ic->upstream_ca_file, .sni_host = 1, .resume = 1, .file = ic->src.file, .line = ic->src.line,
		.key_name = "forward.inspect.upstream_ca_file",
	};

	if (!cf->forward.present || !ic->present || !ic->mode_all)
		return 0;
	if (gw_tls_specs_add_client(sp, &c) < 0)
		return -1;
	c.name = "forward.inspect.insecure";
	c.index++;
	c.verify = 0;
	c.ca_file = NULL;
	return gw_tls_specs_add_client(sp, &c);
}

int fwd_inspect_upstream_tls(const struct fwd_inspect *in, const char *host, size_t n)
{
	return fwd_host_listed(&in->cf->forward.inspect.insecure_hosts, host, n) ? in->tls_insecure : in->tls_verify;
}

/* ---- the CONNECT ---- */

int fwd_inspect_connect(struct fwd_inspect *in, struct gw_req *rq, const struct fwd_match *m)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct insp_req *ir;

	if (in == NULL || h->host == NULL)
		return 0;
	ir = gw_req_alloc(rq, sizeof *ir);
	if (ir == NULL)
		return 1;   /* rq->oom: the core fails it */
	ir->host = gw_req_strndup(rq, h->host, h->host_len);
	if (ir->host == NULL)
		return 1;
	for (char *p = ir->host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	ir->port = h->port;
	ir->rule_index = m != NULL ? m->rule_index : SIZE_MAX;
	ir->rule_name = m != NULL ? m->rule_name : NULL;
	gw_req_set_data(rq, (void *)((uintptr_t)ir | SLOT_TAG));
	gw_req_peek(rq, PEEK_MAX, gw_req_conf(rq)->global.timeouts.client_header);
	return 1;
}

/* The TLS name judged by the policy as a CONNECT to it: NULL when allowed,
 * else the rule that denies it (why in buf). */
static const char *sni_denied(const struct fwd_inspect_ctx *x, struct gw_req *rq, const char *sni,
    uint16_t port, char *buf, size_t cap)
{
	struct fwd_facts f;
	struct fwd_verdict v;
	const char *user = gw_req_user(rq);
	long ui = user != NULL && x->db != NULL ? fwd_auth_db_find(x->db, user) : -1;

	memset(&f, 0, sizeof f);
	f.client = gw_req_client(rq);
	f.form = GW_TF_AUTHORITY;
	f.connect = 1;
	f.method = "CONNECT";
	f.host = sni;
	f.host_len = strlen(sni);
	f.port = port;
	f.cred = ui >= 0 ? FWD_CRED_OK : FWD_CRED_NONE;
	if (ui >= 0) {
		f.user = fwd_auth_db_name(x->db, ui);
		f.groups = fwd_auth_db_groups(x->db, ui, &f.ngroups);
	}
	{
		time_t now = time(NULL);
		static __thread struct tm tm;
		localtime_r(&now, &tm);
		f.local_time = &tm;
	}
	f.md = x->md;
	if (fwd_decide(x->dc, &f, &v) < 0)
		return "internal";
	if (v.verdict == FWD_V_ALLOW)
		return NULL;
	snprintf(buf, cap, "TLS name %s: %s", sni, v.reason);
	return v.rule != NULL ? gw_req_strndup(rq, v.rule, strlen(v.rule)) : "sni";
}

static void refuse(struct gw_req *rq, int status, const char *rule, const char *reason)
{
	count(FWD_IC_REFUSED, 1);
	gw_req_set_verdict(rq, "deny", rule);
	gw_req_set_reason(rq, gw_req_strndup(rq, reason, strlen(reason)));
	gw_req_respond(rq, status, NULL, NULL, 0, NULL);
}

void fwd_inspect_on_peek(struct fwd_inspect *in, const struct fwd_inspect_ctx *x, struct gw_req *rq,
    const unsigned char *p, size_t n, int final)
{
	struct insp_req *ir = ireq(rq);
	struct fwd_hello hello;
	enum fwd_hello_result r;
	struct fwd_match m;
	char why[600];
	const char *rule;

	if (ir == NULL || in == NULL) {
		refuse(rq, 500, "inspect", "inspection state lost");
		return;
	}
	r = fwd_hello_parse(p, n, &hello);
	if (r == FWD_HELLO_MORE) {
		if (!final)
			return;   /* wait for the rest */
		refuse(rq, 408, "inspect", n == 0 ? "client hello: nothing sent (timeout or close)" :
		    "client hello: incomplete (timeout or close)");
		return;
	}
	if (r != FWD_HELLO_OK) {
		snprintf(why, sizeof why, "client hello: %s", fwd_hello_result_name(r));
		refuse(rq, 400, "inspect", why);
		return;
	}
	if (hello.sni[0] != '\0' && strcmp(hello.sni, ir->host) != 0) {
		gw_info("forward: inspect: %s: CONNECT %s but TLS name %s (both judged)", gw_req_id(rq), ir->host,
		    hello.sni);
		if ((rule = sni_denied(x, rq, hello.sni, ir->port, why, sizeof why)) != NULL) {
			refuse(rq, 403, rule, why);
			return;
		}
	}
	snprintf(ir->sni, sizeof ir->sni, "%s", hello.sni);
	memset(&m, 0, sizeof m);
	m.rule_index = ir->rule_index;
	m.rule_name = ir->rule_name;
	/* whatever its ALPN, a client is inspected: h2 and http/1.1 are served
	 * inside, and one offering neither gets no ALPN (HTTP/1.1, as a server
	 * ignoring ALPN would answer): an odd ALPN list is no way around the
	 * inspection */
	if (fwd_decide_inspect(x->dc, ir->host, hello.sni[0] ? hello.sni : NULL, &m, why, sizeof why)) {
		ir->insecure = fwd_host_listed(&in->cf->forward.inspect.insecure_hosts, ir->host, strlen(ir->host));
		gw_req_tunnel(rq, ir->host, strlen(ir->host), ir->port);
		gw_req_upstream_tls(rq, ir->insecure ? in->tls_insecure : in->tls_verify);
		/* the origin is offered what the client offered (h2, http/1.1) */
		ir->alpn_h1 = hello.alpn_h1;
		ir->alpn_h2 = hello.alpn_h2;
		gw_req_upstream_alpn(rq, hello.alpn_h2, hello.alpn_h1, hello.alpn_h2_first);
		gw_req_tunnel_tls(rq);
		return;
	}
	count(FWD_IC_TUNNELLED, 1);
	gw_req_set_reason(rq, gw_req_strndup(rq, why, strlen(why)));
	gw_req_tunnel(rq, ir->host, strlen(ir->host), ir->port);
}

/* ---- minting ---- */

static void mint_run(struct gw_job *job)
{
	struct centry *e = (struct centry *)((char *)job - offsetof(struct centry, job));
	struct fwd_mint_spec sp = { NULL, (const char *const *)e->names, e->nnames, e->nb, e->na };
	double t0 = gw_mono_now();

	e->cert = fwd_ca_mint(e->in->ca, &sp, time(NULL), e->err, sizeof e->err);
	count(FWD_IC_MINT_US, (uint64_t)((gw_mono_now() - t0) * 1e6));
	if (e->cert != NULL)
		count(FWD_IC_MINTED, 1);
}

static void serve_wake(struct gw_req *rq, void *arg);

/* The minting of e ended (any thread): hand the leaf to every waiter. */
static void mint_finish(struct centry *e)
{
	struct fwd_inspect *in = e->in;
	struct waiter *w, *next;

	pthread_mutex_lock(&in->mu);
	w = e->waiters;
	e->waiters = NULL;
	e->minting = 0;
	for (struct waiter *v = w; v != NULL; v = v->next) {
		v->cert = NULL;
		if (e->cert != NULL && X509_up_ref(e->cert) == 1)
			v->cert = e->cert;
		snprintf(v->err, sizeof v->err, "%s", e->cert != NULL ? "" : e->err[0] ? e->err : "cancelled");
	}
	if (e->cert != NULL) {
		lru_front(in, e);
		in->nready++;
		evict(in);
	} else {
		bucket_remove(in, e);
		entry_free(e);
	}
	pthread_mutex_unlock(&in->mu);
	for (; w != NULL; w = next) {
		next = w->next;
		gw_req_wake(w->rq, serve_wake, w);
	}
}

static void mint_done(struct gw_job *job, int result)
{
	struct centry *e = (struct centry *)((char *)job - offsetof(struct centry, job));

	if (result != GW_JOB_DONE && e->err[0] == '\0')
		snprintf(e->err, sizeof e->err, "minting was cancelled");
	mint_finish(e);
}

static void set_tag(char *tag, size_t cap, struct gw_req *rq, const char *problem)
{
	const char *user = gw_req_user(rq);

	if (user == NULL || strchr(user, '\t') != NULL)
		user = "";
	snprintf(tag, cap, "%s\t%s", user, problem != NULL ? problem : "");
}

/* Serve the client with leaf cert (a waiter's answer, or a cache hit). */
static void serve(struct gw_req *rq, struct fwd_inspect *in, X509 *cert, const char *problem)
{
	struct insp_req *ir = ireq(rq);
	char tag[600];

	set_tag(tag, sizeof tag, rq, problem);
	if (problem == NULL) {
		count(FWD_IC_INSPECTED, 1);
		gw_req_set_reason(rq, "inspected");
	}
	gw_req_tls_serve(rq, in->srv, cert, fwd_ca_leaf_key(in->ca), ir->host, ir->port, tag);
	/* h2 when the origin chose it, or when the client speaks nothing else
	 * (its streams go to the origin over HTTP/1.1 then; a failed origin's
	 * block page is served per stream) */
	if (ir->alpn_h2 && (ir->origin_h2 || !ir->alpn_h1))
		gw_req_tls_serve_h2(rq);
}

static void serve_wake(struct gw_req *rq, void *arg)
{
	struct waiter *w = arg;
	struct insp_req *ir = ireq(rq);
	X509 *cert = w->cert;

	w->cert = NULL;
	if (!gw_req_alive(rq) || ir == NULL) {
		X509_free(cert);
		return;
	}
	if (cert == NULL) {
		char why[300];
		snprintf(why, sizeof why, "cannot make a certificate: %s", w->err);
		refuse(rq, 502, "inspect", why);
		return;
	}
	serve(rq, ir->in, cert, ir->problem[0] ? ir->problem : NULL);
	X509_free(cert);
}

/* What the user is told about an upstream that failed (err: the engine's). */
static void problem_of(char *out, size_t cap, const char *host, const char *err)
{
	static const struct {
		const char *needle, *say;
	} map[] = {
		{ "has expired", "the site's certificate has expired" },
		{ "not yet valid", "the site's certificate is not valid yet" },
		{ "ostname mismatch", "the site's certificate is for another name" },
		{ "IP address mismatch", "the site's certificate is for another address" },
		{ "ddress mismatch", "the site's certificate is for another address" },
		{ "self-signed", "the site's certificate is not trusted (self-signed)" },
		{ "local issuer", "the site's certificate is not trusted (unknown issuer)" },
		{ "unable to get issuer", "the site's certificate is not trusted (unknown issuer)" },
		{ "certificate verification failed", "the site's certificate cannot be verified" },
		{ "protocol version", "the site offers only TLS older than 1.2" },
		{ "unsupported protocol", "the site offers only TLS older than 1.2" },
		{ "no protocols available", "the site offers only TLS older than 1.2" },
		{ "wrong version number", "the site does not speak TLS" },
		{ "packet length too long", "the site does not speak TLS" },
		{ "cannot connect", "the site cannot be reached" },
		{ "timeout", "the site did not answer in time" },
		{ "DNS", "the site's name cannot be resolved" },
		{ "handshake", "the site broke off the TLS handshake" },
	};
	const char *say = "the site cannot be reached securely";

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strstr(err, map[i].needle) != NULL) {
			say = map[i].say;
			break;
		}
	snprintf(out, cap, "%s: %s (%s)", host, say, err);
}

/* The origin certificate's names, when they cover host (else host alone). */
static size_t names_of(X509 *oc, const char *host, char **names)
{
	GENERAL_NAMES *g = oc != NULL ? X509_get_ext_d2i(oc, NID_subject_alt_name, NULL, NULL) : NULL;
	size_t n = 0;
	int covers = oc != NULL && (X509_check_host(oc, host, 0, 0, NULL) == 1 || X509_check_ip_asc(oc, host, 0) == 1);

	if (g != NULL && covers && sk_GENERAL_NAME_num(g) <= FWD_MINT_MAX_NAMES) {
		for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
			const GENERAL_NAME *x = sk_GENERAL_NAME_value(g, i);
			char buf[256];
			if (x->type == GEN_DNS) {
				const ASN1_IA5STRING *d = x->d.dNSName;
				if (d->length <= 0 || d->length >= (int)sizeof buf)
					continue;
				memcpy(buf, d->data, (size_t)d->length);
				buf[d->length] = '\0';
				if (strlen(buf) != (size_t)d->length)
					continue;   /* an embedded NUL: never mirrored */
			} else if (x->type == GEN_IPADD && (x->d.iPAddress->length == 4 || x->d.iPAddress->length == 16)) {
				if (inet_ntop(x->d.iPAddress->length == 4 ? AF_INET : AF_INET6, x->d.iPAddress->data, buf,
				    sizeof buf) == NULL)
					continue;
			} else {
				continue;
			}
			if ((names[n] = strdup(buf)) != NULL)
				n++;
		}
	}
	GENERAL_NAMES_free(g);
	if (n == 0 && (names[0] = strdup(host)) != NULL)
		n = 1;
	return n;
}

static int asn1_to_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

void fwd_inspect_on_tunnel_tls(struct fwd_inspect *in, struct gw_req *rq, SSL *up, const char *err)
{
	struct insp_req *ir = ireq(rq);
	X509 *oc = NULL;
	struct centry *e;
	char key[200];
	unsigned char md[32];
	unsigned mdn = 0;
	unsigned h;

	if (ir == NULL || in == NULL) {
		refuse(rq, 500, "inspect", "inspection state lost");
		return;
	}
	ir->in = in;
	ir->problem[0] = '\0';
	ir->origin_h2 = 0;
	if (up == NULL) {
		problem_of(ir->problem, sizeof ir->problem, ir->host, err);
		count(FWD_IC_ORIGIN_ERRORS, 1);
		gw_info("forward: inspect: %s: %s", gw_req_id(rq), ir->problem);
		gw_req_set_reason(rq, gw_req_strndup(rq, ir->problem, strlen(ir->problem)));
		snprintf(key, sizeof key, "-|%s", ir->host);
	} else {
		ir->origin_h2 = gw_req_upstream_alpn_h2(up);
		oc = SSL_get0_peer_certificate(up);
		if (ir->insecure) {
			long vr = SSL_get_verify_result(up);
			count(FWD_IC_INSECURE, 1);
			gw_warn("forward: inspect: %s: %s is in insecure_hosts: its certificate is not checked (%s)",
			    gw_req_id(rq), ir->host, vr == X509_V_OK ? "it would pass" : X509_verify_cert_error_string(vr));
		}
		if (oc == NULL || X509_digest(oc, EVP_sha256(), md, &mdn) != 1) {
			ERR_clear_error();
			refuse(rq, 502, "inspect", "the origin sent no certificate");
			return;
		}
		for (unsigned i = 0; i < 16; i++)
			snprintf(key + 2 * i, 3, "%02x", md[i]);
		snprintf(key + 32, sizeof key - 32, "|%s", ir->host);
	}
	h = gw_strhash(key);
	pthread_mutex_lock(&in->mu);
	for (e = in->b[h % CACHE_BUCKETS]; e != NULL; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			break;
	if (e != NULL && !e->minting) {
		X509 *c = e->cert;
		X509_up_ref(c);
		lru_unlink(in, e);
		lru_front(in, e);
		pthread_mutex_unlock(&in->mu);
		count(FWD_IC_CACHE_HITS, 1);
		serve(rq, in, c, ir->problem[0] ? ir->problem : NULL);
		X509_free(c);
		return;
	}
	memset(&ir->w, 0, sizeof ir->w);
	ir->w.rq = rq;
	if (e != NULL) {   /* another request mints it: wait for that one */
		ir->w.next = e->waiters;
		e->waiters = &ir->w;
		pthread_mutex_unlock(&in->mu);
		count(FWD_IC_MINT_WAITS, 1);
		gw_req_defer(rq);
		return;
	}
	e = calloc(1, sizeof *e);
	if (e == NULL || (e->key = strdup(key)) == NULL) {
		pthread_mutex_unlock(&in->mu);
		free(e);
		refuse(rq, 503, "inspect", "out of memory");
		return;
	}
	e->hash = h;
	e->minting = 1;
	e->in = in;
	e->waiters = &ir->w;
	e->nnames = names_of(oc, ir->host, e->names);
	if (oc != NULL && (asn1_to_time(X509_get0_notBefore(oc), &e->nb) < 0 ||
	    asn1_to_time(X509_get0_notAfter(oc), &e->na) < 0))
		e->nb = e->na = 0;
	e->hnext = in->b[h % CACHE_BUCKETS];
	in->b[h % CACHE_BUCKETS] = e;
	pthread_mutex_unlock(&in->mu);
	gw_req_defer(rq);
	e->job.run = mint_run;
	e->job.done = mint_done;
	if (in->port == NULL || gw_jobs_submit(in->port, &e->job) < 0) {
		/* no pool (or its queue is full): mint here, once */
		mint_run(&e->job);
		mint_finish(e);
	}
}

/* ---- requests inside ---- */

const char *fwd_inspect_inner(struct gw_req *rq, const char *tag, const char **user)
{
	char *t = gw_req_strndup(rq, tag, strlen(tag)), *tab;

	*user = NULL;
	if (t == NULL || (tab = strchr(t, '\t')) == NULL)
		return NULL;
	*tab = '\0';
	if (t[0] != '\0')
		*user = t;
	return tab[1] != '\0' ? tab + 1 : NULL;
}
