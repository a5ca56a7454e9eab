/*
 * reverse: request decisions for published sites (see reverse.h).  Pure
 * lookups live in route.c, balance.c and static.c; this file glues them to
 * the core's request API.
 */
#include "reverse/reverse.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/proto.h"
#include "reverse/route.h"
#include "reverse/static.h"

struct rev_data {
	struct rev_routes *routes;
	const struct conf *cf;
};

static void hdr_val(const struct gw_http_head *h, const char *name, const char **v, size_t *len)
{
	const struct gw_hdr *x = gw_http1_find(h, name);

	*v = x ? x->value : NULL;
	*len = x ? x->value_len : 0;
}

static void serve_static(struct gw_req *rq, const struct rev_route *rt, const char *path,
    size_t plen)
{
	const struct gw_http_head *h = gw_req_head(rq);
	struct rev_static_file f;
	struct rev_static_req sr;
	struct rev_static_range rg;
	char etag[REV_STATIC_ETAG_MAX], lm[REV_HTTP_DATE_MAX], cr[64];
	size_t elen;
	int st;

	if (h->method != GW_M_GET && h->method != GW_M_HEAD) {
		gw_req_resp_hdr_add(rq, "Allow", "GET, HEAD", 9);
		gw_req_respond(rq, 405, NULL, NULL, 0, NULL);
		return;
	}
	st = rev_static_open(rt->static_dir, path, plen, &f);
	if (st == REV_STATIC_REDIRECT) {
		const char *q = memchr(h->path, '?', h->path_len);
		size_t base = q ? (size_t)(q - h->path) : h->path_len;
		char *loc = gw_req_alloc(rq, h->path_len + 2);
		memcpy(loc, h->path, base);
		loc[base] = '/';
		memcpy(loc + base + 1, h->path + base, h->path_len - base);
		gw_req_resp_hdr_add(rq, "Location", loc, h->path_len + 1);
		gw_req_respond(rq, 301, NULL, NULL, 0, NULL);
		return;
	}
	if (st != REV_STATIC_OK) {
		gw_req_respond(rq, st, NULL, NULL, 0, NULL);
		return;
	}
	elen = rev_static_etag(&f, etag, sizeof etag);
	rev_http_date(f.mtime.tv_sec, lm);
	memset(&sr, 0, sizeof sr);
	sr.is_get = h->method == GW_M_GET;
	sr.is_head = h->method == GW_M_HEAD;
	hdr_val(h, "if-match", &sr.if_match, &sr.if_match_len);
	hdr_val(h, "if-none-match", &sr.if_none_match, &sr.if_none_match_len);
	hdr_val(h, "if-modified-since", &sr.if_modified_since, &sr.if_modified_since_len);
	hdr_val(h, "if-unmodified-since", &sr.if_unmodified_since, &sr.if_unmodified_since_len);
	hdr_val(h, "if-range", &sr.if_range, &sr.if_range_len);
	hdr_val(h, "range", &sr.range, &sr.range_len);
	gw_req_resp_hdr_add(rq, "ETag", etag, elen);
	gw_req_resp_hdr_add(rq, "Last-Modified", lm, strlen(lm));
	gw_req_resp_hdr_add(rq, "Accept-Ranges", "bytes", 5);
	st = rev_static_conditional(&sr, etag, elen, f.mtime.tv_sec);
	if (st != 200) {
		close(f.fd);
		gw_req_respond(rq, st, NULL, st == 304 ? "" : NULL, 0, NULL);
		return;
	}
	st = rev_static_range(&sr, f.size, etag, elen, f.mtime.tv_sec, &rg);
	if (st == 416) {
		size_t n = rev_static_content_range(NULL, f.size, cr, sizeof cr);
		close(f.fd);
		gw_req_resp_hdr_add(rq, "Content-Range", cr, n);
		gw_req_respond(rq, 416, NULL, NULL, 0, NULL);
		return;
	}
	if (st == 206) {
		size_t n = rev_static_content_range(&rg, f.size, cr, sizeof cr);
		gw_req_resp_hdr_add(rq, "Content-Range", cr, n);
		gw_req_respond_file(rq, 206, f.content_type, f.fd, rg.first, rg.length);
		return;
	}
	gw_req_respond_file(rq, 200, f.content_type, f.fd, 0, f.size);
}

static void add_forwarding_headers(struct gw_req *rq, const struct gw_http_head *h,
    const char *host, size_t hlen)
{
	const struct gw_hdr *xff = gw_http1_find(h, "x-forwarded-for");
	const char *client = gw_req_client_str(rq);
	char v[600];
	int n;

	if (xff != NULL && xff->value_len < 500)
		n = snprintf(v, sizeof v, "%.*s, %s", (int)xff->value_len, xff->value, client);
	else
		n = snprintf(v, sizeof v, "%s", client);
	gw_req_hdr_del(rq, "x-forwarded-for");
	gw_req_hdr_add(rq, "X-Forwarded-For", v, (size_t)n);
	gw_req_hdr_del(rq, "x-forwarded-proto");
	gw_req_hdr_add(rq, "X-Forwarded-Proto", gw_req_is_tls(rq) ? "https" : "http",
	    gw_req_is_tls(rq) ? 5 : 4);
	gw_req_hdr_del(rq, "x-forwarded-host");
	gw_req_hdr_add(rq, "X-Forwarded-Host", host, hlen);
	gw_req_hdr_del(rq, "x-request-id");
	gw_req_hdr_add(rq, "X-Request-Id", gw_req_id(rq), strlen(gw_req_id(rq)));
}

static void on_request(struct gw_req *rq, void *side)
{
	struct rev_data *d = side;
	const struct gw_http_head *h = gw_req_head(rq);
	const struct rev_site *site;
	const struct rev_route *rt;
	const char *host;
	size_t hlen;
	char path[8192 + 16];
	long plen;

	if (h->target_form == GW_TF_AUTHORITY || h->method == GW_M_CONNECT) {
		gw_req_respond(rq, 405, NULL, NULL, 0, "CONNECT is not served here.");
		return;
	}
	if (h->target_form == GW_TF_ASTERISK) {
		gw_req_resp_hdr_add(rq, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH", 44);
		gw_req_respond(rq, 200, "text/plain", "", 0, NULL);
		return;
	}
	if (h->target_form == GW_TF_ABSOLUTE) {
		/* never an open proxy: only hosts we publish */
		host = h->host;
		hlen = h->host_len;
		site = rev_site_find_configured(d->routes, host, hlen);
	} else {
		host = h->host_hdr ? h->host_hdr : "";
		hlen = h->host_hdr ? h->host_hdr_len : 0;
		site = rev_site_find(d->routes, host, hlen);
	}
	if (site == NULL) {
		gw_req_set_verdict(rq, "no_site", NULL);
		gw_req_respond(rq, 404, NULL, NULL, 0, NULL);
		return;
	}
	if ((site->allow_clients.n > 0 && !conf_cidr_match(&site->allow_clients, gw_req_client(rq))) ||
	    (site->deny_clients.n > 0 && conf_cidr_match(&site->deny_clients, gw_req_client(rq)))) {
		gw_req_set_verdict(rq, "deny", site->name);
		gw_req_respond(rq, 403, NULL, NULL, 0, NULL);
		return;
	}
	rt = rev_route_find(site, h->path, h->path_len);
	if (rt == NULL) {
		gw_req_set_verdict(rq, "no_route", site->name);
		gw_req_respond(rq, 404, NULL, NULL, 0, NULL);
		return;
	}
	gw_req_set_verdict(rq, "route", rt->prefix);
	if (rt->max_body_bytes > 0)
		gw_req_set_max_body(rq, rt->max_body_bytes);
	plen = rev_route_upstream_path(rt, h->path, h->path_len, path, sizeof path);
	if (plen < 0) {
		gw_req_respond(rq, 414, NULL, NULL, 0, NULL);
		return;
	}
	switch (rt->kind) {
	case REV_ROUTE_REDIRECT:
		gw_req_resp_hdr_add(rq, "Location", rt->redirect, strlen(rt->redirect));
		gw_req_respond(rq, rt->redirect_status, NULL, NULL, 0, NULL);
		return;
	case REV_ROUTE_STATIC:
		serve_static(rq, rt, path, (size_t)plen);
		return;
	case REV_ROUTE_UPSTREAM: {
		const struct conf_rev_upstream *up = &d->cf->reverse.upstreams[rt->upstream];
		const struct conf_addr *a;
		if (up->nservers == 0) {
			gw_req_respond(rq, 503, NULL, NULL, 0, NULL);
			return;
		}
		a = &up->servers[0].addr;
		for (size_t i = 0; i < rt->nset_headers; i++) {
			char name[256];
			snprintf(name, sizeof name, "%.*s", (int)rt->set_headers[i].name_len,
			    rt->set_headers[i].name);
			gw_req_hdr_del(rq, name);
			gw_req_hdr_add(rq, name, rt->set_headers[i].value, rt->set_headers[i].value_len);
		}
		add_forwarding_headers(rq, h, host, hlen);
		gw_req_proxy(rq, a->host, strlen(a->host), a->port, path, (size_t)plen);
		if (up->tls)
			gw_req_upstream_tls(rq, rt->upstream);
		return;
	}
	}
}

static const struct gw_proto rev_proto = {
	.name = "reverse",
	.family = 1,
	.on_request = on_request,
};

static int compile(const struct conf *cf, struct conf_errors *errs, void **data)
{
	struct rev_data *d;
	struct rev_routes *rt;

	*data = NULL;
	if (!cf->reverse.present)
		return 0;
	rt = rev_routes_compile(cf, errs);
	if (rt == NULL)
		return -1;
	d = calloc(1, sizeof *d);
	if (d == NULL) {
		rev_routes_free(rt);
		return -1;
	}
	d->routes = rt;
	d->cf = cf;
	*data = d;
	return 0;
}

static void side_free(void *data)
{
	struct rev_data *d = data;

	rev_routes_free(d->routes);
	free(d);
}

static const struct conf_listener *listeners(const struct conf *cf, size_t *n)
{
	*n = cf->reverse.present ? cf->reverse.nlisteners : 0;
	return cf->reverse.listeners;
}

const struct gw_side rev_side = {
	.proto = &rev_proto,
	.compile = compile,
	.free = side_free,
	.listeners = listeners,
};
