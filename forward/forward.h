/*
 * forward: the forward-proxy family (outbound side).  Plugs into the core
 * as a struct gw_side: compiles forward.* of each config snapshot into a
 * policy, and decides each request (who may go where) in on_request().
 */
#ifndef GW_FORWARD_H
#define GW_FORWARD_H

#include "core/snapshot.h"

extern const struct gw_side fwd_side;

#endif
