/*
 * forward/negotiate: SPNEGO acceptor on MIT GSSAPI (see negotiate.h).
 *
 * Why a fresh security context per token: with Kerberos inside SPNEGO the
 * client's first token completes the exchange (AP-REQ), so nothing has to
 * be kept between legs; the identity is kept on the client connection by
 * the caller instead (forward/sso.c).  The acceptor credential is shared by
 * the pool threads: MIT locks it internally.
 */
#include "forward/negotiate.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <openssl/evp.h>

#define NEG_MAGIC 0x4e45474fu   /* "NEGO" */

struct fwd_negotiate {
	uint32_t magic;
	gss_cred_id_t cred;
	struct gw_jobs *own;          /* only without a process job pool */
	struct gw_jobs_port *port;
};

/* "major: minor" of a GSSAPI failure into err. */
static void gss_err(OM_uint32 major, OM_uint32 minor, const char *what, char *err, size_t errlen)
{
	size_t off;
	OM_uint32 ctx = 0, min2;
	gss_buffer_desc msg;

	off = (size_t)snprintf(err, errlen, "%s", what);
	for (int pass = 0; pass < 2; pass++) {
		OM_uint32 code = pass == 0 ? major : minor;
		if (pass == 1 && minor == 0)
			break;
		/* "Unspecified GSS failure.  Minor code may provide more information" */
		if (pass == 0 && GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE && minor != 0)
			continue;
		ctx = 0;
		do {
			if (gss_display_status(&min2, code, pass == 0 ? GSS_C_GSS_CODE : GSS_C_MECH_CODE,
			    pass == 0 ? GSS_C_NO_OID : (gss_OID)gss_mech_krb5, &ctx, &msg) != GSS_S_COMPLETE)
				break;
			if (off < errlen)
				off += (size_t)snprintf(err + off, errlen - off, ": %.*s", (int)msg.length,
				    (const char *)msg.value);
			gss_release_buffer(&min2, &msg);
		} while (ctx != 0);
	}
}

static void job_run(struct gw_job *gj);
static void job_done(struct gw_job *gj, int result);

struct fwd_negotiate *fwd_negotiate_new(const char *keytab, const char *principal, int nthreads,
    char *err, size_t errlen)
{
	struct fwd_negotiate *n = calloc(1, sizeof *n);
	gss_key_value_element_desc el = { "keytab", keytab };
	gss_key_value_set_desc store = { 1, &el };
	gss_name_t name = GSS_C_NO_NAME;
	OM_uint32 maj, min;
	struct gw_jobs *jobs = gw_jobs_shared();
	int fd;

	if (n == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->magic = NEG_MAGIC;
	n->cred = GSS_C_NO_CREDENTIAL;
	/* a keytab we cannot read: said plainly, and MIT's acquire is not
	 * run (its failure path leaks a copied principal, seen by LSan) */
	if ((fd = open(keytab, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot use the keytab: %s", strerror(errno));
		goto fail;
	}
	close(fd);
	if (principal != NULL) {
		gss_buffer_desc b = { strlen(principal), (void *)principal };
		maj = gss_import_name(&min, &b, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &name);
		if (GSS_ERROR(maj)) {
			gss_err(maj, min, "principal", err, errlen);
			goto fail;
		}
	}
	/* MIT checks here that the keytab exists, has keys, and (with a name)
	 * holds that principal: a wrong path is a `gatehouse -t` error */
	maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, &store,
	    &n->cred, NULL, NULL);
	if (name != GSS_C_NO_NAME)
		gss_release_name(&min, &name);
	if (GSS_ERROR(maj)) {
		gss_err(maj, min, "cannot use the keytab", err, errlen);
		n->cred = GSS_C_NO_CREDENTIAL;
		goto fail;
	}
	if (jobs == NULL && (jobs = n->own = gw_jobs_new(nthreads > 0 ? nthreads : 1, 0)) == NULL) {
		snprintf(err, errlen, "cannot start the accept threads");
		goto fail;
	}
	if ((n->port = gw_jobs_port_new(jobs, NULL, 4096)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return n;
fail:
	fwd_negotiate_free(n);
	return NULL;
}

void fwd_negotiate_free(struct fwd_negotiate *n)
{
	OM_uint32 min;

	if (n == NULL)
		return;
	gw_jobs_port_free(n->port);   /* queued jobs: done(-1); running ones finish */
	gw_jobs_free(n->own);
	if (n->cred != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&min, &n->cred);
	n->magic = 0;
	free(n);
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int fwd_negotiate_parse(const char *value, size_t len, unsigned char **tok, size_t *toklen)
{
	size_t i = 0, n, pad = 0;
	unsigned char *out;
	int d;

	*tok = NULL;
	*toklen = 0;
	if (len < 9 || strncasecmp(value, "negotiate", 9) != 0 || (len > 9 && value[9] != ' ' && value[9] != '\t'))
		return 0;
	for (i = 9; i < len && (value[i] == ' ' || value[i] == '\t'); i++)
		;
	while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	n = len - i;
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > FWD_NEG_TOKEN_MAX)
		return 1;
	while (pad < 2 && value[len - 1 - pad] == '=')
		pad++;
	for (size_t k = i; k < len - pad; k++)
		if (b64val((unsigned char)value[k]) < 0)
			return 1;
	if ((out = malloc(n / 4 * 3 + 1)) == NULL)
		return 1;
	d = EVP_DecodeBlock(out, (const unsigned char *)value + i, (int)n);
	if (d < 0 || (size_t)d < pad || (size_t)d - pad == 0) {
		free(out);
		return 1;
	}
	*tok = out;
	*toklen = (size_t)d - pad;
	return 1;
}

int fwd_negotiate_is_ntlm(const char *value, size_t len, const unsigned char *tok, size_t toklen)
{
	static const unsigned char sig[8] = "NTLMSSP";   /* with its NUL */

	if (len >= 4 && strncasecmp(value, "ntlm", 4) == 0 && (len == 4 || value[4] == ' '))
		return 1;
	for (size_t i = 0; tok != NULL && i + sizeof sig <= toklen; i++)
		if (tok[i] == 'N' && memcmp(tok + i, sig, sizeof sig) == 0)
			return 1;
	return 0;
}

int fwd_negotiate_accept(struct fwd_negotiate *n, const unsigned char *tok, size_t toklen,
    char name[FWD_NEG_NAME_MAX], char *err, size_t errlen)
{
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_buffer_desc in = { toklen, (void *)tok }, out = GSS_C_EMPTY_BUFFER, disp = GSS_C_EMPTY_BUFFER;
	gss_name_t src = GSS_C_NO_NAME;
	OM_uint32 maj, min, min2;
	int ok = 0;

	name[0] = '\0';
	maj = gss_accept_sec_context(&min, &ctx, n->cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, NULL, &out,
	    NULL, NULL, NULL);
	if (maj == GSS_S_CONTINUE_NEEDED) {
		snprintf(err, errlen, "the token needs another round trip (not Kerberos?): refused");
	} else if (GSS_ERROR(maj)) {
		gss_err(maj, min, "accept", err, errlen);
	} else if (GSS_ERROR(gss_display_name(&min2, src, &disp, NULL))) {
		snprintf(err, errlen, "accept: the client's name cannot be shown");
	} else if (disp.length == 0 || disp.length >= FWD_NEG_NAME_MAX ||
	    memchr(disp.value, '\0', disp.length) != NULL) {
		snprintf(err, errlen, "accept: the client's name is empty or too long (%zu bytes)",
		    (size_t)disp.length);
	} else {
		memcpy(name, disp.value, disp.length);
		name[disp.length] = '\0';
		ok = 1;
		for (size_t i = 0; i < disp.length; i++)
			if ((unsigned char)name[i] < 0x21 || name[i] == 0x7f || name[i] == ':')
				ok = 0;
		if (!ok) {
			snprintf(err, errlen, "accept: the client's name has a space, colon or control character");
			name[0] = '\0';
		}
	}
	gss_release_buffer(&min2, &disp);
	gss_release_buffer(&min2, &out);
	if (src != GSS_C_NO_NAME)
		gss_release_name(&min2, &src);
	if (ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&min2, &ctx, GSS_C_NO_BUFFER);
	return ok;
}

static void job_run(struct gw_job *gj)
{
	struct fwd_negotiate_job *j = (struct fwd_negotiate_job *)gj;

	if (atomic_load_explicit(&gj->cancelled, memory_order_acquire))
		j->result = -1;
	else
		j->result = fwd_negotiate_accept(j->n, j->tok, j->toklen, j->name, j->err, sizeof j->err);
}

static void job_done(struct gw_job *gj, int result)
{
	struct fwd_negotiate_job *j = (struct fwd_negotiate_job *)gj;

	free(j->tok);
	j->tok = NULL;
	j->done(j, result == GW_JOB_DONE ? j->result : -1);
}

int fwd_negotiate_submit(struct fwd_negotiate *n, struct fwd_negotiate_job *job)
{
	job->n = n;
	job->result = -1;
	job->err[0] = '\0';
	job->name[0] = '\0';
	job->gj.run = job_run;
	job->gj.done = job_done;
	return gw_jobs_submit(n->port, &job->gj);
}
