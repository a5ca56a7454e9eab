/*
 * forward/directory: LDAP groups, binds and the groups cache (see
 * directory.h).
 *
 * Why synchronous libldap calls on threads of our own rather than the
 * async API on the worker loops: libldap's connect, StartTLS and TLS
 * handshake block inside the async API too (ldap.h: only
 * LDAP_OPT_CONNECT_ASYNC helps the connect), and TLS can hold decoded data
 * that a readiness event never announces.  Two threads, each call bounded
 * by the timeout, and a cache in front give the same result with less
 * code, and keep a hanging directory away from the workers and from
 * core/jobs (sign-in hashing, certificate minting).
 */
#include "forward/directory.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <ldap.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/proto.h"
#include "forward/readfile.h"

#define DIR_MAGIC 0x4c444150u   /* "LDAP" */
#define DIR_THREADS 2
#define DIR_SLOTS DIR_THREADS     /* pooled connections: one per thread is all that can be busy */
#define CACHE_SLOTS 4096
#define CACHE_PROBE 8
#define DIR_PAGE 500             /* entries per page of a group search (AD's MaxPageSize is 1000) */

struct cache_ent {
	char user[FWD_AUTH_USER_MAX + 1];  /* "" = empty slot */
	double at;
	int known;
	char *names;                       /* n NUL-terminated names, back to back */
	size_t len, n;
};

struct conn_slot {
	LDAP *ld;
	int busy;
};

struct fwd_directory {
	uint32_t magic;
	const struct conf_fwd_ldap *c;     /* borrowed: lives with the snapshot */
	char *bind_pw;                     /* bind_password_file's first line */
	struct gw_jobs *pool;
	struct gw_jobs_port *port;
	pthread_mutex_t mu;                /* slots, down, cache */
	struct conn_slot slots[DIR_SLOTS];
	double *down_until;                /* per URI (gw_mono_now) */
	struct ldap_conncb conncb;         /* bounds every socket read and write (sock_timeouts) */
	struct cache_ent *cache;
	uint64_t seed;
};

/* ---------------------------------------------------------------- filters */

char *fwd_directory_filter(const char *tmpl, const char *user)
{
	struct berval in = { strlen(user), (char *)user }, esc = { 0, NULL };
	size_t n = 0, tl = strlen(tmpl);
	char *out, *o;

	if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
		return NULL;
	for (const char *p = tmpl; (p = strstr(p, "%s")) != NULL; p += 2)
		n++;
	out = malloc(tl + n * esc.bv_len + 1);
	if (out != NULL) {
		o = out;
		for (const char *p = tmpl; *p; ) {
			if (p[0] == '%' && p[1] == 's') {
				if (esc.bv_len > 0)   /* (an empty name escapes to no buffer at all) */
					memcpy(o, esc.bv_val, esc.bv_len);
				o += esc.bv_len;
				p += 2;
			} else {
				*o++ = *p++;
			}
		}
		*o = '\0';
	}
	ber_memfree(esc.bv_val);
	return out;
}

/* ---------------------------------------------------------------- cache */

static size_t ukey(const struct fwd_directory *d, const char *user)
{
	uint64_t h = d->seed ^ 1469598103934665603ull;   /* FNV-1a, seeded */

	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

/* The slot of user, or (put) the one to reuse: an empty one, else the
 * oldest of the probe window.  Locked. */
static struct cache_ent *cache_slot(struct fwd_directory *d, const char *user, int put)
{
	struct cache_ent *victim = NULL;
	size_t s = ukey(d, user);

	for (size_t i = 0; i < CACHE_PROBE; i++) {
		struct cache_ent *e = &d->cache[(s + i) & (CACHE_SLOTS - 1)];
		if (e->user[0] != '\0' && strcmp(e->user, user) == 0)
			return e;
		if (put && (victim == NULL || (victim->user[0] != '\0' && (e->user[0] == '\0' || e->at < victim->at))))
			victim = e;
	}
	return victim;
}

static void cache_put(struct fwd_directory *d, const char *user, int known, char *names, size_t len, size_t n)
{
	struct cache_ent *e;

	pthread_mutex_lock(&d->mu);
	e = cache_slot(d, user, 1);
	free(e->names);
	snprintf(e->user, sizeof e->user, "%s", user);
	e->at = gw_mono_now();
	e->known = known;
	e->names = names;
	e->len = len;
	e->n = n;
	pthread_mutex_unlock(&d->mu);
}

enum fwd_dir_cache fwd_directory_cached(struct fwd_directory *d, const char *user, double now,
    struct gw_req *rq, const char *const **groups, size_t *n, int *known)
{
	enum fwd_dir_cache r = FWD_DIR_MISS;
	struct cache_ent *e;

	*groups = NULL;
	*n = 0;
	*known = 0;
	pthread_mutex_lock(&d->mu);
	e = cache_slot(d, user, 0);
	if (e != NULL) {
		double ttl = e->known ? d->c->cache_ttl : d->c->negative_ttl;
		r = now - e->at < ttl && now >= e->at ? FWD_DIR_FRESH : FWD_DIR_STALE;
		*known = e->known;
		if (rq != NULL && e->n > 0) {
			const char **v = gw_req_alloc(rq, e->n * sizeof *v);
			char *copy = gw_req_alloc(rq, e->len);
			if (v == NULL || copy == NULL) {
				r = FWD_DIR_MISS;   /* out of memory: the request fails on its own */
			} else {
				memcpy(copy, e->names, e->len);
				for (size_t i = 0, off = 0; i < e->n; i++) {
					v[i] = copy + off;
					off += strlen(copy + off) + 1;
				}
				*groups = v;
				*n = e->n;
			}
		}
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

char **fwd_directory_groups_copy(struct fwd_directory *d, const char *user, double now, size_t *n,
    int *stale, int *known)
{
	struct cache_ent *e;
	char **v = NULL;

	*n = 0;
	*stale = 0;
	*known = 1;
	pthread_mutex_lock(&d->mu);
	e = cache_slot(d, user, 0);
	if (e != NULL && !e->known)
		*known = 0;
	if (e != NULL && e->known && (v = malloc((e->n + 1) * sizeof *v + e->len + 1)) != NULL) {
		char *s = (char *)(v + e->n + 1);
		if (e->len > 0)
			memcpy(s, e->names, e->len);
		for (size_t i = 0, off = 0; i < e->n; i++) {
			v[i] = s + off;
			off += strlen(s + off) + 1;
		}
		v[e->n] = NULL;
		*n = e->n;
		*stale = !(now - e->at < d->c->cache_ttl && now >= e->at);
	}
	pthread_mutex_unlock(&d->mu);
	return v;
}

/* ---------------------------------------------------------------- names */

struct names {
	char *buf;
	size_t len, cap, n;
};

static int names_has(const struct names *nm, const char *s)
{
	for (size_t off = 0; off < nm->len; off += strlen(nm->buf + off) + 1)
		if (strcmp(nm->buf + off, s) == 0)
			return 1;
	return 0;
}

static int names_add(struct names *nm, const char *s, size_t sl)
{
	char tmp[1024];

	if (sl == 0 || sl >= sizeof tmp || nm->n >= 2 * FWD_DIR_MAX_GROUPS)
		return 0;
	memcpy(tmp, s, sl);
	tmp[sl] = '\0';
	if (memchr(tmp, '\0', sl) != NULL || names_has(nm, tmp))
		return 0;
	if (nm->len + sl + 1 > nm->cap) {
		size_t cap = nm->cap ? nm->cap * 2 : 256;
		while (cap < nm->len + sl + 1)
			cap *= 2;
		char *b = realloc(nm->buf, cap);
		if (b == NULL)
			return -1;
		nm->buf = b;
		nm->cap = cap;
	}
	memcpy(nm->buf + nm->len, tmp, sl + 1);
	nm->len += sl + 1;
	nm->n++;
	return 0;
}

/* A group by its DN: the first RDN's value ("devs") and the DN itself. */
static int names_add_dn(struct names *nm, const char *dn)
{
	LDAPDN ldn = NULL;
	int rc = 0;

	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && ldn != NULL && ldn[0] != NULL &&
	    ldn[0][0] != NULL)
		rc = names_add(nm, ldn[0][0]->la_value.bv_val, ldn[0][0]->la_value.bv_len);
	if (ldn != NULL)
		ldap_dnfree(ldn);
	if (rc == 0)
		rc = names_add(nm, dn, strlen(dn));
	return rc;
}

/* ---------------------------------------------------------------- connections */

static int transient(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR || rc == LDAP_UNAVAILABLE ||
	    rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR || rc == LDAP_TIMELIMIT_EXCEEDED;
}

static void set_tv(struct timeval *tv, double secs)
{
	tv->tv_sec = (time_t)secs;
	tv->tv_usec = (suseconds_t)((secs - (double)tv->tv_sec) * 1e6);
}

/*
 * A socket read or write timing out returns EAGAIN, and libldap's TLS
 * handshake (GnuTLS on Debian) tries again without end.  This I/O layer
 * between TLS and TCP fails them for good (ETIMEDOUT) once the thread's
 * connection setup (conn_open: connect, TLS, StartTLS, bind) is past its
 * deadline; outside a setup it only passes data through.
 */
static __thread double setup_deadline;   /* gw_mono_now(); 0: no setup running on this thread */

static ber_slen_t guard_read(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (setup_deadline > 0 && gw_mono_now() > setup_deadline) {
		errno = ETIMEDOUT;
		return -1;
	}
	return LBER_SBIOD_READ_NEXT(sbiod, buf, len);
}

static ber_slen_t guard_write(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (setup_deadline > 0 && gw_mono_now() > setup_deadline) {
		errno = ETIMEDOUT;
		return -1;
	}
	return LBER_SBIOD_WRITE_NEXT(sbiod, buf, len);
}

static int guard_ctrl(Sockbuf_IO_Desc *sbiod, int opt, void *arg)
{
	return LBER_SBIOD_CTRL_NEXT(sbiod, opt, arg);
}

static Sockbuf_IO guard_io = { NULL, NULL, guard_ctrl, guard_read, guard_write, NULL };

/*
 * libldap's connection callback: socket read and write timeouts of
 * forward.auth.ldap.timeout on every connection it opens.  LDAP_OPT_TIMEOUT
 * bounds the wait for an answer and NETWORK_TIMEOUT the connect, but the
 * TLS handshake of an ldaps:// connection blocks in a read that neither
 * bounds: a peer that accepts and never answers would hold the thread
 * forever (and a reload waiting for it).
 */
static int sock_timeouts(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr, struct ldap_conncb *ctx)
{
	const struct fwd_directory *d = ctx->lc_arg;
	struct timeval tv;
	ber_socket_t fd = -1;

	(void)ld;
	(void)srv;
	(void)addr;
	set_tv(&tv, d->c->timeout);
	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) == 1 && fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	/* below TLS, above TCP: ends the setup's retries at its deadline */
	ber_sockbuf_add_io(sb, &guard_io, LBER_SBIOD_LEVEL_PROVIDER + 1, NULL);
	return 0;
}

static void sock_closed(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

/*
 * A connection to the first URI that answers (URIs that failed lately
 * last), bound as dn/pw (NULL dn: anonymous).  NULL with why in err;
 * *bad_creds set when a server said the credentials are wrong (a user's
 * password: not a reason to try the next server).
 */
static LDAP *conn_open(struct fwd_directory *d, const char *dn, const char *pw, int *bad_creds, char *err,
    size_t errlen)
{
	const struct conf_fwd_ldap *c = d->c;
	struct timeval tv;
	double now = gw_mono_now();

	*bad_creds = 0;
	set_tv(&tv, c->timeout);
	snprintf(err, errlen, "no URI to try");
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < c->uris.n; i++) {
			const char *uri = c->uris.v[i];
			LDAP *ld = NULL;
			int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0, rc;
			pthread_mutex_lock(&d->mu);
			int down = d->down_until[i] > now;
			pthread_mutex_unlock(&d->mu);
			if (down != pass)   /* first the ones up, then the ones that failed lately */
				continue;
			if ((rc = ldap_initialize(&ld, uri)) != LDAP_SUCCESS) {
				snprintf(err, errlen, "%s: %s", uri, ldap_err2string(rc));
				continue;
			}
			ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
			ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);   /* AD's referrals: not chased */
			ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
			ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
			ldap_set_option(ld, LDAP_OPT_CONNECT_CB, &d->conncb);
			ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
			if (c->ca_file != NULL)
				ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, c->ca_file);
			/* last: the options above apply only to a new TLS context */
			ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
			rc = LDAP_SUCCESS;
			setup_deadline = gw_mono_now() + c->timeout;
			if (c->starttls && strncmp(uri, "ldap://", 7) == 0)
				rc = ldap_start_tls_s(ld, NULL, NULL);
			if (rc == LDAP_SUCCESS) {
				struct berval cred = { pw ? strlen(pw) : 0, (char *)(pw ? pw : "") };
				rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
			}
			setup_deadline = 0;
			if (rc == LDAP_SUCCESS) {
				pthread_mutex_lock(&d->mu);
				d->down_until[i] = 0;
				pthread_mutex_unlock(&d->mu);
				return ld;
			}
			char *diag = NULL;
			ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
			snprintf(err, errlen, "%s: %s%s%s", uri, ldap_err2string(rc), diag && *diag ? ": " : "",
			    diag ? diag : "");
			ldap_memfree(diag);
			ldap_unbind_ext_s(ld, NULL, NULL);
			if (rc == LDAP_INVALID_CREDENTIALS) {
				*bad_creds = 1;
				return NULL;
			}
			pthread_mutex_lock(&d->mu);
			d->down_until[i] = gw_mono_now() + FWD_DIR_DOWN_SECS;
			pthread_mutex_unlock(&d->mu);
		}
	}
	return NULL;
}

/* A pooled connection bound as bind_dn (opened when the slot has none). */
static struct conn_slot *conn_get(struct fwd_directory *d, char *err, size_t errlen)
{
	struct conn_slot *s = NULL;
	int bad;

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < DIR_SLOTS && s == NULL; i++)
		if (!d->slots[i].busy && d->slots[i].ld != NULL)
			s = &d->slots[i];
	for (int i = 0; i < DIR_SLOTS && s == NULL; i++)
		if (!d->slots[i].busy)
			s = &d->slots[i];
	if (s != NULL)
		s->busy = 1;
	pthread_mutex_unlock(&d->mu);
	if (s == NULL) {
		snprintf(err, errlen, "no free directory connection");
		return NULL;
	}
	if (s->ld == NULL && (s->ld = conn_open(d, d->c->bind_dn, d->bind_pw, &bad, err, errlen)) == NULL) {
		if (bad)
			snprintf(err + strlen(err), errlen - strlen(err), " (check forward.auth.ldap.bind_dn and "
			    "bind_password_file)");
		pthread_mutex_lock(&d->mu);
		s->busy = 0;
		pthread_mutex_unlock(&d->mu);
		return NULL;
	}
	return s;
}

/* Give s back; drop its connection after a transport error. */
static void conn_put(struct fwd_directory *d, struct conn_slot *s, int broken)
{
	if (broken && s->ld != NULL) {
		ldap_unbind_ext_s(s->ld, NULL, NULL);
		s->ld = NULL;
	}
	pthread_mutex_lock(&d->mu);
	s->busy = 0;
	pthread_mutex_unlock(&d->mu);
}

/* ---------------------------------------------------------------- searches */

/* Search base for filter; LDAP result code.  *res to ldap_msgfree(). */
static int search(struct fwd_directory *d, LDAP *ld, const char *filter, char **attrs, int limit,
    LDAPMessage **res)
{
	struct timeval tv;
	int rc;

	set_tv(&tv, d->c->timeout);
	*res = NULL;
	rc = ldap_search_ext_s(ld, d->c->base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, limit, res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED)
		rc = LDAP_SUCCESS;   /* what came is used */
	if (rc == LDAP_SUCCESS && *res == NULL)
		rc = LDAP_SERVER_DOWN;   /* (a connection lost mid-answer) */
	return rc;
}

/* The user's entry: 1 with its DN (ldap_memfree) and the entry's message
 * in *res, 0 when the directory does not know user (or knows several),
 * -1 on an error, its LDAP code in *lrc (client-side codes are negative). */
static int find_user(struct fwd_directory *d, LDAP *ld, const char *user, char **attrs, char **dn,
    LDAPMessage **res, int *lrc, char *err, size_t errlen)
{
	char *f = fwd_directory_filter(d->c->user_filter, user);
	int rc, n;

	*dn = NULL;
	*lrc = LDAP_NO_MEMORY;
	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = search(d, ld, f, attrs, 2, res);
	free(f);
	*lrc = rc;
	if (rc != LDAP_SUCCESS) {
		snprintf(err, errlen, "user search: %s", ldap_err2string(rc));
		ldap_msgfree(*res);
		*res = NULL;
		return -1;
	}
	n = ldap_count_entries(ld, *res);
	if (n != 1) {
		snprintf(err, errlen, n == 0 ? "no such user in the directory" :
		    "user_filter matches several entries: refused");
		return 0;
	}
	*dn = ldap_get_dn(ld, ldap_first_entry(ld, *res));
	if (*dn == NULL) {
		*lrc = LDAP_NO_MEMORY;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 1;
}

/* Every entry of a search for filter (the DN of each) into nm; DNs not
 * seen before also onto *newdns (when not NULL).  Paged (RFC 2696): Active
 * Directory answers at most MaxPageSize (1000) entries per search without
 * paging, slapd its size limit.  LDAP code. */
static int add_group_dns(struct fwd_directory *d, LDAP *ld, const char *filter, struct names *nm,
    char ***newdns, size_t *nnew)
{
	static char *no_attrs[] = { LDAP_NO_ATTRS, NULL };
	struct berval cookie = { 0, NULL };
	int rc, pages = 0;

	do {
		LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL }, **rctrls = NULL;
		LDAPMessage *res = NULL, *e;
		struct timeval tv;

		rc = ldap_create_page_control(ld, DIR_PAGE, cookie.bv_val != NULL ? &cookie : NULL, 0, &page);
		ber_memfree(cookie.bv_val);
		cookie.bv_val = NULL;
		cookie.bv_len = 0;
		if (rc != LDAP_SUCCESS)
			break;
		ctrls[0] = page;
		set_tv(&tv, d->c->timeout);
		rc = ldap_search_ext_s(ld, d->c->base, LDAP_SCOPE_SUBTREE, filter, no_attrs, 0, ctrls, NULL, &tv,
		    FWD_DIR_MAX_GROUPS, &res);
		ldap_control_free(page);
		if (rc == LDAP_SIZELIMIT_EXCEEDED)
			rc = LDAP_SUCCESS;   /* what came is used */
		if (rc == LDAP_SUCCESS && res == NULL)
			rc = LDAP_SERVER_DOWN;
		for (e = rc == LDAP_SUCCESS ? ldap_first_entry(ld, res) : NULL; e != NULL; e = ldap_next_entry(ld, e)) {
			char *gdn = ldap_get_dn(ld, e);
			if (gdn == NULL)
				continue;
			if (!names_has(nm, gdn) && newdns != NULL) {
				char **v = realloc(*newdns, (*nnew + 1) * sizeof *v);
				if (v != NULL) {
					*newdns = v;
					if ((v[*nnew] = strdup(gdn)) != NULL)
						(*nnew)++;
				}
			}
			if (names_add_dn(nm, gdn) < 0)
				rc = LDAP_NO_MEMORY;
			ldap_memfree(gdn);
		}
		if (rc == LDAP_SUCCESS && ldap_parse_result(ld, res, NULL, NULL, NULL, NULL, &rctrls, 0) == LDAP_SUCCESS &&
		    rctrls != NULL) {
			LDAPControl *pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
			ber_int_t estimate;
			if (pr != NULL)
				ldap_parse_pageresponse_control(ld, pr, &estimate, &cookie);
			ldap_controls_free(rctrls);
		}
		ldap_msgfree(res);
	} while (rc == LDAP_SUCCESS && cookie.bv_len > 0 && nm->n < 2 * FWD_DIR_MAX_GROUPS && ++pages < 100);
	ber_memfree(cookie.bv_val);
	return rc;
}

/* ad_nested: groups whose member is the user, through nesting.  First the
 * in-chain rule (Active Directory answers it in one search); a server that
 * does not implement it (OpenLDAP returns nothing, "Success") gets the
 * nesting expanded here, one search per group level. */
static int groups_nested(struct fwd_directory *d, LDAP *ld, const char *dn, struct names *nm)
{
	char *f = fwd_directory_filter("(member:1.2.840.113556.1.4.1941:=%s)", dn);
	char **queue = NULL;
	size_t nq = 0, qi = 0;
	int rc;

	if (f == NULL)
		return LDAP_NO_MEMORY;
	rc = add_group_dns(d, ld, f, nm, NULL, NULL);
	free(f);
	if (rc != LDAP_SUCCESS || nm->n > 0)
		return rc;
	queue = malloc(sizeof *queue);
	if (queue == NULL || (queue[0] = strdup(dn)) == NULL) {
		free(queue);
		return LDAP_NO_MEMORY;
	}
	nq = 1;
	for (; qi < nq && rc == LDAP_SUCCESS && nm->n < 2 * FWD_DIR_MAX_GROUPS; qi++) {
		if ((f = fwd_directory_filter("(member=%s)", queue[qi])) == NULL) {
			rc = LDAP_NO_MEMORY;
			break;
		}
		rc = add_group_dns(d, ld, f, nm, &queue, &nq);
		free(f);
	}
	for (size_t i = 0; i < nq; i++)
		free(queue[i]);
	free(queue);
	return rc;
}

/* The groups of user into nm: 1 found, 0 unknown user, -2 error (err). */
static int lookup_groups(struct fwd_directory *d, LDAP *ld, const char *user, struct names *nm, int *broken,
    char *err, size_t errlen)
{
	static char *memberof[] = { "memberOf", NULL };
	static char *no_attrs[] = { LDAP_NO_ATTRS, NULL };
	LDAPMessage *res = NULL;
	char *dn = NULL;
	int rc, found;

	found = find_user(d, ld, user, d->c->groups == CONF_LDAP_MEMBEROF ? memberof : no_attrs, &dn, &res, &rc,
	    err, errlen);
	if (found <= 0) {
		ldap_msgfree(res);
		*broken = found < 0 && transient(rc);
		return found == 0 ? 0 : -2;
	}
	rc = LDAP_SUCCESS;
	if (d->c->groups == CONF_LDAP_MEMBEROF) {
		struct berval **v = ldap_get_values_len(ld, ldap_first_entry(ld, res), "memberOf");
		for (size_t i = 0; v != NULL && v[i] != NULL && rc == LDAP_SUCCESS; i++) {
			char tmp[1024];
			if (v[i]->bv_len >= sizeof tmp)
				continue;
			memcpy(tmp, v[i]->bv_val, v[i]->bv_len);
			tmp[v[i]->bv_len] = '\0';
			if (names_add_dn(nm, tmp) < 0)
				rc = LDAP_NO_MEMORY;
		}
		ldap_value_free_len(v);
	} else if (d->c->groups == CONF_LDAP_POSIX) {
		char *f = fwd_directory_filter("(&(objectClass=posixGroup)(memberUid=%s))", user);
		rc = f != NULL ? add_group_dns(d, ld, f, nm, NULL, NULL) : LDAP_NO_MEMORY;
		free(f);
	} else {
		rc = groups_nested(d, ld, dn, nm);
	}
	ldap_memfree(dn);
	ldap_msgfree(res);
	if (rc != LDAP_SUCCESS) {
		snprintf(err, errlen, "group search: %s", ldap_err2string(rc));
		*broken = transient(rc);
		return -2;
	}
	return 1;
}

int fwd_directory_lookup(struct fwd_directory *d, const char *user, char *err, size_t errlen)
{
	struct names nm = { 0 };
	struct conn_slot *s;
	int r = -2, broken = 0;

	/* a pooled connection may have been closed by the server (idle
	 * timeout): one more try on a fresh one */
	for (int attempt = 0; attempt < 2 && r == -2; attempt++) {
		if ((s = conn_get(d, err, errlen)) == NULL)
			return -2;
		broken = 0;
		memset(&nm, 0, sizeof nm);
		r = lookup_groups(d, s->ld, user, &nm, &broken, err, errlen);
		conn_put(d, s, broken);
		if (r == -2) {
			free(nm.buf);
			if (!broken)
				break;
		}
	}
	if (r >= 0)
		cache_put(d, user, r, nm.buf, nm.len, nm.n);
	return r;
}

int fwd_directory_bind(struct fwd_directory *d, const char *user, const char *pass, char *err, size_t errlen)
{
	static char *no_attrs[] = { LDAP_NO_ATTRS, NULL };
	LDAPMessage *res = NULL;
	struct conn_slot *s;
	char *dn = NULL;
	int found = -1, bad = 0, broken = 0, rc = LDAP_SERVER_DOWN;
	LDAP *ld;

	/* an empty password would be an "unauthenticated bind", which
	 * succeeds (RFC 4513 5.1.2) */
	if (pass[0] == '\0') {
		snprintf(err, errlen, "empty password");
		return 0;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((s = conn_get(d, err, errlen)) == NULL)
			return -2;
		found = find_user(d, s->ld, user, no_attrs, &dn, &res, &rc, err, errlen);
		ldap_msgfree(res);
		res = NULL;
		broken = found < 0 && transient(rc);
		conn_put(d, s, broken);
		if (!broken)
			break;
	}
	if (found <= 0)
		return found == 0 ? 0 : -2;
	/* the user's own connection: a pooled one never changes identity */
	ld = conn_open(d, dn, pass, &bad, err, errlen);
	ldap_memfree(dn);
	if (ld == NULL)
		return bad ? 0 : -2;
	ldap_unbind_ext_s(ld, NULL, NULL);
	return 1;
}

/* ---------------------------------------------------------------- jobs */

static void job_run(struct gw_job *gj)
{
	struct fwd_directory_job *j = (struct fwd_directory_job *)gj;
	double t0 = gw_mono_now();

	if (atomic_load_explicit(&gj->cancelled, memory_order_acquire))
		j->result = -1;
	else if (j->kind == FWD_DIR_BIND)
		j->result = fwd_directory_bind(j->dir, j->user, j->pass, j->err, sizeof j->err);
	else
		j->result = fwd_directory_lookup(j->dir, j->user, j->err, sizeof j->err);
	j->took = gw_mono_now() - t0;
}

static void job_done(struct gw_job *gj, int result)
{
	struct fwd_directory_job *j = (struct fwd_directory_job *)gj;

	j->done(j, result == GW_JOB_DONE ? j->result : -1);
}

int fwd_directory_submit(struct fwd_directory *d, struct fwd_directory_job *job)
{
	job->dir = d;
	job->result = -1;
	job->err[0] = '\0';
	job->took = 0;
	job->gj.run = job_run;
	job->gj.done = job_done;
	return gw_jobs_submit(d->port, &job->gj);
}

/* ---------------------------------------------------------------- life */

struct fwd_directory *fwd_directory_new(const struct conf_fwd_ldap *c, char *err, size_t errlen)
{
	struct fwd_directory *d = calloc(1, sizeof *d);

	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->magic = DIR_MAGIC;
	d->c = c;
	d->conncb.lc_add = sock_timeouts;
	d->conncb.lc_del = sock_closed;
	d->conncb.lc_arg = d;
	pthread_mutex_init(&d->mu, NULL);
	if (c->bind_password_file != NULL) {
		size_t n;
		char *buf = fwd_read_file(c->bind_password_file, &n, err, errlen);
		if (buf == NULL)
			goto fail;
		size_t k = 0;
		while (k < n && buf[k] != '\n' && buf[k] != '\r')
			k++;
		if (k == 0 || memchr(buf, '\0', k) != NULL) {
			snprintf(err, errlen, "%s: the first line (the password) is empty or has a NUL",
			    c->bind_password_file);
			OPENSSL_cleanse(buf, n);
			free(buf);
			goto fail;
		}
		/* (not strndup: the file buffer has no terminator) */
		if ((d->bind_pw = malloc(k + 1)) != NULL) {
			memcpy(d->bind_pw, buf, k);
			d->bind_pw[k] = '\0';
		}
		OPENSSL_cleanse(buf, n);
		free(buf);
		if (d->bind_pw == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	d->cache = calloc(CACHE_SLOTS, sizeof *d->cache);
	d->down_until = calloc(c->uris.n ? c->uris.n : 1, sizeof *d->down_until);
	if (d->cache == NULL || d->down_until == NULL || RAND_bytes((unsigned char *)&d->seed, sizeof d->seed) != 1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((d->pool = gw_jobs_new(DIR_THREADS, 0)) == NULL ||
	    (d->port = gw_jobs_port_new(d->pool, NULL, 4096)) == NULL) {
		snprintf(err, errlen, "cannot start the directory threads");
		goto fail;
	}
	return d;
fail:
	fwd_directory_free(d);
	return NULL;
}

void fwd_directory_free(struct fwd_directory *d)
{
	if (d == NULL)
		return;
	gw_jobs_port_free(d->port);
	gw_jobs_free(d->pool);
	for (int i = 0; i < DIR_SLOTS; i++)
		if (d->slots[i].ld != NULL)
			ldap_unbind_ext_s(d->slots[i].ld, NULL, NULL);
	for (size_t i = 0; d->cache != NULL && i < CACHE_SLOTS; i++)
		free(d->cache[i].names);
	free(d->cache);
	free(d->down_until);
	if (d->bind_pw != NULL) {
		OPENSSL_cleanse(d->bind_pw, strlen(d->bind_pw));
		free(d->bind_pw);
	}
	pthread_mutex_destroy(&d->mu);
	d->magic = 0;
	free(d);
}

const char *fwd_directory_source(const struct fwd_directory *d)
{
	static const char *const names[] = {
#define X(id, s) "ldap " s,
		CONF_LDAP_GROUPS(X)
#undef X
	};

	return names[d->c->groups];
}
