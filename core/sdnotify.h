/*
 * core/sdnotify: the systemd notification protocol without libsystemd:
 * one datagram to $NOTIFY_SOCKET ("READY=1", "RELOADING=1", "STOPPING=1").
 * A no-op when the variable is unset.
 */
#ifndef GW_SDNOTIFY_H
#define GW_SDNOTIFY_H

void gw_sd_notify(const char *state);

#endif
