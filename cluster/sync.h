/*
 * cluster/sync: configuration sync between the nodes of a pair
 * (cluster.peers, cluster.token_file).
 *
 * After every successful reload here (SIGHUP or the console) that a peer did
 * not cause, the main configuration file is offered to each peer:
 * POST /api/v1/cluster/sync on the peer's console, the file as the body.
 * The peer checks it as `gatehouse -t` does (load, validate, compile, no
 * sockets) and, when it passes, puts it in place of its own main file and
 * reloads; otherwise it keeps its configuration and answers 409 with the
 * errors.  Files the main file names (@include, lists, users, certificates)
 * are not sent: they are each node's own, so node-specific settings (the
 * cluster section with its peers) belong in an @include file.
 *
 * With cluster.sync_dir the roles turn: the main file is the node's own
 * (it may be read-only, as under the packaged unit) and what is offered is
 * every file under sync_dir as one set (cluster/fileset.h), POSTed to
 * /api/v1/cluster/files; the peer stages it beside its own sync_dir,
 * switches the directory over, checks as -t does and reloads, and on any
 * failure switches back (all files or none).
 *
 * Requests between nodes carry X-Gatehouse-Cluster: t=UNIX;sig=HEX, the
 * HMAC-SHA256 under the pair's token of "t\nMETHOD PATH\nBODY"; a peer
 * refuses a missing or wrong signature and one older than 60 s.  The token
 * itself never travels.  Every 5 s each node asks its peers for their state
 * (GET /api/v1/cluster/state: generation, health, the SHA-256 of their main
 * file); the console shows each peer's generation, health and last sync,
 * and flags the pair as diverged when the files differ.
 *
 * HTTPS to the peers' consoles when this node's console has TLS
 * (admin.tls_cert: the pair is configured alike), plain HTTP otherwise.
 * Without cluster.peer_ca the peer's certificate is not verified (consoles
 * usually have self-signed ones): the signature protects integrity and the
 * token; TLS keeps the file from passive onlookers only.  With it, the
 * certificate must chain to that CA and name the peer's IP address, or the
 * call is dropped in the handshake (nothing sent) and the console shows why.  One connection per call.  Main thread only.
 */
#ifndef GW_CLU_SYNC_H
#define GW_CLU_SYNC_H

#include <jansson.h>

struct event_base;
struct gw_snapshot;

/* Follow s (start, and after each reload): peers, token, our file's hash. */
void clu_sync_configure(struct event_base *base, const struct gw_snapshot *s);
/* A reload here succeeded: offer the file to the peers, unless a peer's
 * sync caused it. */
void clu_sync_reloaded(void);
void clu_sync_stop(void);

/*
 * The console's endpoints for peers (no login: the signature is the
 * authentication).  method, path ("sync" or "state"), the signature header
 * (may be NULL), the body; *status is the HTTP status to answer.  Returns a
 * new JSON reference (NULL: out of memory).
 */
json_t *clu_sync_endpoint(const char *method, const char *path, const char *sig, const char *body,
    size_t len, unsigned *status);

/*
 * May the client at ip (the console's client address text) send a set of
 * files, up to CLU_FILESET_MAX_BYTES, before its signature can be checked
 * (the signature covers the body)?  Only on a node with a token and
 * cluster.sync_dir, from a configured peer's address, with a well-formed
 * signature header inside its time window.  Everyone else keeps the
 * console's usual body limit, so an unauthenticated client cannot make the
 * console hold megabytes per connection.
 */
int clu_sync_set_welcome(const char *ip, const char *sig);

/* The peers for GET /api/v1/cluster: [{address, reachable, healthy,
 * generation, config_sha256, last_sync, last_result, diverged}], plus what
 * this node last received.  A new reference. */
json_t *clu_sync_json(void);

#endif
