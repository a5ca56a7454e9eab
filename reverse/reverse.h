/*
 * reverse: the reverse-proxy family (inbound side).  Plugs into the core as
 * a struct gw_side: compiles reverse.* into the route table and decides
 * each request: which site (Host), which route (longest path prefix), and
 * then an upstream, a static file or a redirect.
 */
#ifndef GW_REVERSE_H
#define GW_REVERSE_H

#include "core/snapshot.h"

extern const struct gw_side rev_side;

#endif
