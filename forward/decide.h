/*
 * forward/decide: what the forward proxy decides about a request, as pure
 * functions over the compiled configuration: no I/O, no request object.
 */
#ifndef GW_FORWARD_DECIDE_H
#define GW_FORWARD_DECIDE_H

#include <stddef.h>
#include <sys/socket.h>

struct conf;
struct fwd_policy;

/* 1 if sa is one of our own listening addresses (forward, reverse or
 * console listeners of cf, metrics listener included), judged as the
 * address sa reaches (core/addr.h).  Pure. */
int fwd_own_listener(const struct conf *cf, const struct sockaddr *sa);

/* The destination checks for one address (after DNS, and before it for an
 * IP literal): returns the rule that refuses sa ("deny_destinations" of p
 * or "own_listener" of cf, static) with the reason in why, or NULL. Pure. */
const char *fwd_dest_check(const struct fwd_policy *p, const struct conf *cf, const struct sockaddr *sa,
    char *why, size_t cap);

#endif
