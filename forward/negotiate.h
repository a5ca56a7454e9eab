/*
 * forward/negotiate: SPNEGO (RFC 4559) proxy authentication with GSSAPI
 * (MIT krb5): the acceptor credentials of one config snapshot, the
 * "Negotiate <base64>" parser, and the accept itself, which runs on the
 * process's job pool (core/jobs.h): a token's accept decrypts the ticket
 * and writes the replay cache (~150 us and file I/O), not for a worker loop.
 *
 * The acceptor is built with gss_acquire_cred_from() and a cred store
 * {"keytab": path}: no KRB5_KTNAME in the environment (it is process-wide,
 * and a reload may name another keytab).  krb5.conf (realm, clock skew) is
 * the process's (KRB5_CONFIG).  One token = one complete accept: a token
 * that needs another leg (GSS_S_CONTINUE_NEEDED; not the case for
 * Kerberos in SPNEGO) is refused, as is NTLM inside SPNEGO (MIT cannot
 * accept it).  Replays are refused by MIT's replay cache (file2, under
 * KRB5RCACHEDIR or /var/tmp, writable by the daemon's user).
 *
 * Ownership: the acceptor belongs to the forward data of one snapshot; a
 * job is the caller's (embedded in its own struct) except between
 * fwd_negotiate_submit() and its done().
 */
#ifndef GW_FORWARD_NEGOTIATE_H
#define GW_FORWARD_NEGOTIATE_H

#include <stddef.h>

#include "core/jobs.h"

#define FWD_NEG_TOKEN_MAX 65536      /* decoded token bytes accepted (AD tokens reach 48,000) */
#define FWD_NEG_NAME_MAX 256         /* longest principal kept */

struct fwd_negotiate;

/*
 * Acceptor credentials from keytab for principal (NULL: any principal in
 * the keytab, e.g. several SPNs).  NULL with a message in err when the
 * keytab cannot be read, is empty or lacks the principal, or the name is
 * not a valid principal.  nthreads: threads of its own pool when the
 * process has no job pool (unit tests, tools).
 */
struct fwd_negotiate *fwd_negotiate_new(const char *keytab, const char *principal, int nthreads,
    char *err, size_t errlen);
/* Cancel the queued accepts (their done gets -1), wait for the running
 * ones, free everything.  NULL is fine. */
void fwd_negotiate_free(struct fwd_negotiate *n);

/*
 * A Proxy-Authorization value: 1 if its scheme is Negotiate (case-
 * insensitive), 0 if another scheme.  For Negotiate, *tok gets the
 * decoded token (malloc'd, the caller frees) and *len its size, or *tok
 * is NULL when the token is missing, not base64, or over
 * FWD_NEG_TOKEN_MAX bytes (a malformed token).
 */
int fwd_negotiate_parse(const char *value, size_t len, unsigned char **tok, size_t *toklen);

/* 1 if the value's scheme is NTLM, or a Negotiate token carries NTLMSSP
 * (a Windows client that found no Kerberos ticket): logged as such. */
int fwd_negotiate_is_ntlm(const char *value, size_t len, const unsigned char *tok, size_t toklen);

/*
 * Accept one token: 1 with the client's principal ("alice@CORP.EXAMPLE",
 * NUL-terminated) in name; 0 with why in err (GSSAPI's major and minor
 * messages: "Request is a replay", "Clock skew too great", ...).  Blocking
 * (file I/O): for the job pool, and for tests.
 */
int fwd_negotiate_accept(struct fwd_negotiate *n, const unsigned char *tok, size_t toklen,
    char name[FWD_NEG_NAME_MAX], char *err, size_t errlen);

/*
 * One accept on the job pool.  The caller fills tok/toklen (owned by the
 * job; freed by the pool after the accept) and done, then submits.
 * done(job, result) runs on a pool thread with 1 (accepted: job->name),
 * 0 (refused: job->err) or -1 (cancelled: the acceptor is being freed or
 * job->gj.cancelled was set by gw_jobs_cancel()); it owns the job then and
 * must not block (it hands the answer to the request's worker).
 */
struct fwd_negotiate_job {
	struct gw_job gj;                  /* private (the pool) */
	unsigned char *tok;
	size_t toklen;
	void (*done)(struct fwd_negotiate_job *job, int result);
	char name[FWD_NEG_NAME_MAX];
	char err[300];
	struct fwd_negotiate *n;           /* private */
	int result;                        /* private */
};

/* Queue job: 0, or -1 when the queue is full (done is then not called). */
int fwd_negotiate_submit(struct fwd_negotiate *n, struct fwd_negotiate_job *job);

#endif
