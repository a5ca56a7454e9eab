/*
 * core/proto: the contract between the connection core and a listener family
 * (forward/ or reverse/).  The core parses a request and hands it to the
 * family's on_request(); the family decides (it is the only place the two
 * sides differ) by calling exactly one of gw_req_proxy(), gw_req_tunnel(),
 * gw_req_respond() or gw_req_respond_file() before returning.  The core then
 * moves the bytes.  Families never see sockets.
 *
 * A struct gw_req lives from the parsed request head until its access-log
 * line is written; it belongs to the core.  Strings passed to gw_req_*
 * functions are copied into the request's arena unless noted.
 */
#ifndef GW_PROTO_H
#define GW_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/http1.h"

struct gw_req;
struct conf;

struct gw_proto {
	const char *name;          /* "forward" / "reverse": log family */
	int family;                /* stats family index: 0 forward, 1 reverse */
	/* Decide what to do with a request.  side is this family's compiled
	 * data from the connection's config snapshot. */
	void (*on_request)(struct gw_req *rq, void *side);
	/* Each resolved upstream address before connecting: 0 to allow, or
	 * a status (403) to refuse the address.  May be NULL. */
	int (*on_resolved)(struct gw_req *rq, const struct sockaddr *sa, void *side);
	/* The upstream's final response head is about to be relayed; the
	 * family may add or remove response headers.  May be NULL. */
	void (*on_response_head)(struct gw_req *rq, const struct gw_http_head *resp, void *side);
	/* Request finished (logged right after).  May be NULL. */
	void (*on_done)(struct gw_req *rq, void *side);
};

/* ---- what the family can read ---- */

const struct gw_http_head *gw_req_head(const struct gw_req *rq);
const struct sockaddr *gw_req_client(const struct gw_req *rq);
const char *gw_req_client_str(const struct gw_req *rq);     /* numeric address */
const struct sockaddr *gw_req_local(const struct gw_req *rq);
const char *gw_req_id(const struct gw_req *rq);
const struct conf *gw_req_conf(const struct gw_req *rq);
int gw_req_is_tls(const struct gw_req *rq);
/* Allocate n zeroed bytes that live as long as the request. */
void *gw_req_alloc(struct gw_req *rq, size_t n);
char *gw_req_strndup(struct gw_req *rq, const char *s, size_t n);

/* ---- decisions (exactly one per request) ---- */

/*
 * Proxy to host:port (a DNS name or numeric address, copied) with the
 * origin-form path (copied; NULL = the request's own path).  The upstream
 * connection pool is keyed by host:port.
 */
void gw_req_proxy(struct gw_req *rq, const char *host, size_t host_len, uint16_t port,
    const char *path, size_t path_len);
/* CONNECT: open a tunnel to host:port; the core answers 200 once connected. */
void gw_req_tunnel(struct gw_req *rq, const char *host, size_t host_len, uint16_t port);
/*
 * Answer locally.  body NULL: the standard error page for status (HTML or
 * text by the client's Accept), with detail (may be NULL) as an extra line.
 * Otherwise body[0..len) is copied and sent with content_type.
 */
void gw_req_respond(struct gw_req *rq, int status, const char *content_type,
    const char *body, size_t len, const char *detail);
/* Answer with len bytes of file fd from offset (the core takes ownership of fd).
 * For HEAD only the head is sent. */
void gw_req_respond_file(struct gw_req *rq, int status, const char *content_type,
    int fd, uint64_t offset, uint64_t len);

/* ---- request and response header edits ---- */

/* Remove every header named name from the request sent upstream. */
void gw_req_hdr_del(struct gw_req *rq, const char *name);
/* Add a header to the request sent upstream. */
void gw_req_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t value_len);
/* Remove a header from the proxied response. */
void gw_req_resp_hdr_del(struct gw_req *rq, const char *name);
/* Add a header to the response (proxied or local). */
void gw_req_resp_hdr_add(struct gw_req *rq, const char *name, const char *value, size_t value_len);
/* Do not add Via to the request nor the response (anonymising). */
void gw_req_no_via(struct gw_req *rq);
/* Body limit for this request in bytes (0 = unlimited); default from global.limits. */
void gw_req_set_max_body(struct gw_req *rq, uint64_t max);

/* ---- what is logged ---- */

/* verdict ("allow", "deny", ...) and rule name: static or request-owned strings. */
void gw_req_set_verdict(struct gw_req *rq, const char *verdict, const char *rule);
void gw_req_set_user(struct gw_req *rq, const char *user);

#endif
