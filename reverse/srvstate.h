/*
 * reverse/srvstate: the upstream servers' admin state (drain / disable)
 * kept across restarts, like HAProxy's server-state-file.  The file is
 * STATE_DIR/server-state: a header line, then one "upstream TAB address TAB
 * state" line per server that is not enabled.  It is rewritten (temporary
 * file + rename, so a crash leaves the old or the new one) after every
 * console change and read once, when the reverse side is first activated.
 * Main thread only.
 */
#ifndef GW_REV_SRVSTATE_H
#define GW_REV_SRVSTATE_H

#include <stddef.h>

struct rev_srvstate_ent {
	const char *upstream;
	const char *address;
	int state;                 /* REV_SRV_DRAINING or REV_SRV_DISABLED */
};

/* The file's path in dir (buf of len); -1 when it does not fit. */
int rev_srvstate_path(const char *dir, char *buf, size_t len);

/*
 * Replace dir's state file with v[0..n) (n may be 0: no server is drained
 * or disabled).  Returns 0, or -1 after logging why (the running state is
 * not affected; only a restart would forget it).
 */
int rev_srvstate_save(const char *dir, const struct rev_srvstate_ent *v, size_t n);

/*
 * Read dir's state file and call apply(upstream, address, state, arg) for
 * each valid line; apply returns 0 when it applied it, -1 for a server no
 * longer configured (logged and skipped).  A missing file is no state (0);
 * a malformed line is logged with its number and skipped.  Returns the
 * number of lines applied.
 */
int rev_srvstate_load(const char *dir,
    int (*apply)(const char *upstream, const char *address, int state, void *arg), void *arg);

#endif
