/*
 * core/listener: the listening-socket registry (see listener.h).  A socket
 * is known by "family|address|tls"; the registry holds the sockets of the
 * generation being served.  Below it, each worker's side: one
 * evconnlistener per socket of its column, paused at its connection share.
 */
#include "core/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/snapshot.h"
#include "core/worker.h"

struct reg_ent {
	char key[160];
	int fds[GW_MAX_WORKERS];
	int used;                  /* referenced by the snapshot being built */
};

static struct {
	struct reg_ent *reg;
	size_t nreg;
} L;

/* A listening socket for cl (reuseport: shared by the workers), or, with
 * probe, a bound socket without SO_REUSEPORT that is closed again: the bind
 * fails while any other socket listens there, one of another process with
 * SO_REUSEPORT too (which would otherwise share our connections silently:
 * the kernel spreads them over every socket of the port).  Returns the fd
 * (probe: 0) or -1 with err set. */
static int open_listener(const struct conf_listener *cl, int probe, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&cl->addr.ss;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (!probe)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (sa->sa_family == AF_INET6 && cl->addr.host[0] == '\0')
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	/* a VRRP VIP is held by one node at a time: the standby listens on it
	 * before keepalived adds it (IP_FREEBIND covers IPv6 sockets too) */
	if (cl->freebind && setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) < 0) {
		snprintf(err, errlen, "cannot set IP_FREEBIND on %s: %s", cl->addr.text, strerror(errno));
		close(fd);
		return -1;
	}
	if (probe) {
		int r = bind(fd, sa, cl->addr.sslen), e = errno;
		close(fd);
		if (r == 0)
			return 0;
		if (e == EADDRINUSE)
			snprintf(err, errlen, "cannot listen on %s: another process listens there", cl->addr.text);
		else
			snprintf(err, errlen, "cannot listen on %s: %s", cl->addr.text, strerror(e));
		return -1;
	}
	if (bind(fd, sa, cl->addr.sslen) < 0 || listen(fd, 511) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cl->addr.text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Does this process listen on cl's port already (any address, family,
 * TLS or not: a reload may change each, and our own socket on 0.0.0.0:P
 * would fail the probe of 127.0.0.1:P)?  Then the probe is skipped. */
static int port_held(const struct conf_listener *cl)
{
	const char *p = strrchr(cl->addr.text, ':');

	for (size_t i = 0; p != NULL && i < L.nreg; i++) {
		const char *b = strrchr(L.reg[i].key, '|'), *c;
		if (b == NULL)
			continue;
		for (c = b; c > L.reg[i].key && *c != ':'; c--)
			;
		if (*c == ':' && (size_t)(b - c) == strlen(p) && memcmp(c, p, (size_t)(b - c)) == 0)
			return 1;
	}
	return 0;
}

/* A socket's registry key: "family|address|tls". */
static void reg_key(char *key, size_t len, const struct gw_proto *proto, const struct conf_listener *cl)
{
	snprintf(key, len, "%s|%s|%d", proto->name, cl->addr.text, cl->tls);
}

static struct reg_ent *reg_find(const char *key)
{
	for (size_t i = 0; i < L.nreg; i++)
		if (strcmp(L.reg[i].key, key) == 0)
			return &L.reg[i];
	return NULL;
}

int gw_listener_build(struct gw_snapshot *s, int nworkers, struct conf_errors *errs)
{
	size_t total = 0, k = 0;
	int failed = 0;

	for (int i = 0; i < s->nsides; i++) {
		size_t n;
		s->sides[i]->listeners(s->conf, &n);
		total += n;
	}
	s->listeners = calloc(total ? total : 1, sizeof *s->listeners);
	if (s->listeners == NULL)
		return -1;
	for (size_t i = 0; i < L.nreg; i++)
		L.reg[i].used = 0;
	for (int si = 0; si < s->nsides; si++) {
		size_t n;
		const struct conf_listener *cls = s->sides[si]->listeners(s->conf, &n);
		for (size_t j = 0; j < n; j++) {
			const struct conf_listener *cl = &cls[j];
			struct gw_lspec *ls = &s->listeners[k];
			char key[160];
			struct reg_ent *e;

			reg_key(key, sizeof key, s->sides[si]->proto, cl);
			ls->cl = cl;
			ls->proto = s->sides[si]->proto;
			ls->side = si;
			e = reg_find(key);
			if (e != NULL) {
				memcpy(ls->fds, e->fds, sizeof ls->fds);
				e->used = 1;
				k++;
				continue;
			}
			if (!port_held(cl)) {
				char err[256];
				if (open_listener(cl, 1, err, sizeof err) < 0) {
					conf_err(errs, cl->src.file, cl->src.line, "listeners", "%s", err);
					failed = 1;
					break;
				}
			}
			for (int w = 0; w < nworkers; w++) {
				char err[256];
				ls->fds[w] = open_listener(cl, 0, err, sizeof err);
				if (ls->fds[w] < 0) {
					conf_err(errs, cl->src.file, cl->src.line, "listeners", "%s", err);
					for (int x = 0; x < w; x++)
						close(ls->fds[x]);
					failed = 1;
					break;
				}
			}
			if (failed)
				break;
			ls->cl = cl;
			k++;
			/* new: remembered in the registry once the snapshot is published */
			ls->side = si;
		}
		if (failed)
			break;
	}
	s->nlisteners = k;
	if (failed) {
		/* close the sockets this build created (those not in the registry) */
		for (size_t i = 0; i < k; i++) {
			char key[160];
			reg_key(key, sizeof key, s->listeners[i].proto, s->listeners[i].cl);
			if (reg_find(key) == NULL)
				for (int w = 0; w < nworkers; w++)
					close(s->listeners[i].fds[w]);
		}
		s->nlisteners = 0;
		return -1;
	}
	return 0;
}

void gw_listener_commit(const struct gw_snapshot *s)
{
	struct reg_ent *reg = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *reg);

	if (reg == NULL)
		return;
	for (size_t i = 0; i < s->nlisteners; i++) {
		reg_key(reg[i].key, sizeof reg[i].key, s->listeners[i].proto, s->listeners[i].cl);
		memcpy(reg[i].fds, s->listeners[i].fds, sizeof reg[i].fds);
	}
	free(L.reg);
	L.reg = reg;
	L.nreg = s->nlisteners;
}

int gw_listener_accepting(const struct gw_snapshot *s, int nworkers, char *why, size_t whylen)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		for (int w = 0; w < nworkers; w++) {
			int on = 0;
			socklen_t len = sizeof on;
			if (getsockopt(s->listeners[i].fds[w], SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on) {
				snprintf(why, whylen, "listener %s (worker %d) is not accepting",
				    s->listeners[i].cl->addr.text, w);
				return 0;
			}
		}
	return 1;
}

void gw_listener_free(void)
{
	free(L.reg);
	L.reg = NULL;
	L.nreg = 0;
}

/* ---- each worker's listeners (worker thread) ---- */

struct gw_wlistener {
	struct gw_wlistener *next;
	struct gw_worker *w;
	struct evconnlistener *l;
	struct event *ev_retry;
	int fd;
	const struct gw_lspec *lspec;
};

static void pause_accept(struct gw_worker *w)
{
	for (struct gw_wlistener *wl = w->listeners; wl != NULL; wl = wl->next)
		evconnlistener_disable(wl->l);
	w->accept_paused = 1;
}

void gw_listener_resume(struct gw_worker *w)
{
	if (atomic_load(&w->stop))
		return;
	for (struct gw_wlistener *wl = w->listeners; wl != NULL; wl = wl->next)
		evconnlistener_enable(wl->l);
	w->accept_paused = 0;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct gw_wlistener *wl = arg;
	struct gw_worker *w = wl->w;

	(void)l;
	if (atomic_load(&w->stop)) {
		close(fd);
		return;
	}
	gw_conn_accept(w, fd, sa, (socklen_t)salen, wl->lspec, w->snap);
	if (w->nconns >= w->max_conns && !w->accept_paused) {
		gw_warn("worker %d: %llu connections, at its share of global.max_connections; "
		    "new connections wait in the kernel backlog", w->id, (unsigned long long)w->nconns);
		pause_accept(w);
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_wlistener *wl = arg;

	(void)fd;
	(void)what;
	if (!wl->w->accept_paused && !atomic_load(&wl->w->stop))
		evconnlistener_enable(wl->l);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct gw_wlistener *wl = arg;
	int err = EVUTIL_SOCKET_ERROR();
	static const struct timeval half = { 0, 500000 };

	/* out of descriptors or memory: stop accepting for a moment; pending
	 * connections wait in the backlog instead of spinning the loop */
	gw_warn("worker %d: accept on %s failed: %s; pausing 0.5 s", wl->w->id,
	    wl->lspec->cl->addr.text, strerror(err));
	evconnlistener_disable(l);
	evtimer_add(wl->ev_retry, &half);
}

void gw_listener_apply(struct gw_worker *w, const struct gw_snapshot *s)
{
	struct gw_wlistener *keep = NULL, *wl, *next;

	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct gw_lspec *ls = &s->listeners[i];
		int fd = ls->fds[w->id];
		struct gw_wlistener **pp;

		for (pp = &w->listeners; *pp != NULL; pp = &(*pp)->next)
			if ((*pp)->fd == fd)
				break;
		if (*pp != NULL) {
			wl = *pp;
			*pp = wl->next;
			wl->lspec = ls;
		} else {
			wl = calloc(1, sizeof *wl);
			if (wl == NULL)
				continue;
			wl->w = w;
			wl->fd = fd;
			wl->lspec = ls;
			wl->l = evconnlistener_new(w->base, accept_cb, wl,
			    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
			if (wl->l == NULL) {
				gw_error("worker %d: cannot listen on %s", w->id, ls->cl->addr.text);
				close(fd);
				free(wl);
				continue;
			}
			wl->ev_retry = evtimer_new(w->base, retry_cb, wl);
			evconnlistener_set_error_cb(wl->l, accept_error_cb);
			if (w->accept_paused)
				evconnlistener_disable(wl->l);
		}
		wl->next = keep;
		keep = wl;
	}
	for (wl = w->listeners; wl != NULL; wl = next) {
		next = wl->next;
		gw_conn_listener_gone(w, wl->fd);   /* (before the fd number can be reused) */
		evconnlistener_free(wl->l);
		event_free(wl->ev_retry);
		free(wl);
	}
	w->listeners = keep;
}

void gw_listener_close_all(struct gw_worker *w)
{
	struct gw_wlistener *wl, *next;

	for (wl = w->listeners; wl != NULL; wl = next) {
		next = wl->next;
		evconnlistener_free(wl->l);
		event_free(wl->ev_retry);
		free(wl);
	}
	w->listeners = NULL;
}
