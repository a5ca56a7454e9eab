/*
 * test_tls: core/tls sets built from specs, with certificates this test
 * makes (a CA and leaves signed by it, written as PEM into a temporary
 * directory) and real handshakes over memory BIO pairs: SNI picks the right
 * server context (exact, wildcard, default), a key that does not match its
 * certificate and an unreadable CA file give "FILE:LINE: key: ..." errors
 * with the spec's key name, a TLS listener without a certificate is refused,
 * client contexts are found by name and by number (NULL for a missing name
 * or a plain number), their identities are stable across builds, and a
 * client context verifies the server by the sni it was given.
 */
#include "core/tls.h"
#include "conf/conf.h"
#include "check.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/test_tls.XXXXXX";
static EVP_PKEY *ca_key;
static X509 *ca_cert;

struct pair {
	char cert[256], key[256];
	X509 *x;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (e != NULL) {
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
}

/* A certificate for cn with subjectAltName san (NULL: a CA), signed by the
 * CA (or itself, for the CA). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509 *issuer;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	issuer = san == NULL ? x : ca_cert;
	X509_set_issuer_name(x, X509_get_subject_name(issuer));
	if (san == NULL) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_subject_alt_name, san);
	}
	X509_sign(x, san == NULL ? key : ca_key, EVP_sha256());
	return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return;
	if (x != NULL)
		PEM_write_X509(f, x);
	if (k != NULL)
		PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

static void make_pair(struct pair *p, const char *name, const char *san)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	snprintf(p->cert, sizeof p->cert, "%s/%s.crt", dir, name);
	snprintf(p->key, sizeof p->key, "%s/%s.key", dir, name);
	p->x = make_cert(k, name, san);
	write_pem(p->cert, p->x, NULL);
	write_pem(p->key, NULL, k);
	EVP_PKEY_free(k);
}

/* One handshake step of s unless *done: 0 (done now, or waiting for the
 * peer) or -1 (failed). */
static int step(SSL *s, int *done)
{
	int r;

	if (*done)
		return 0;
	r = SSL_do_handshake(s);
	if (r == 1) {
		*done = 1;
		return 0;
	}
	r = SSL_get_error(s, r);
	return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Run a handshake between s (server) and c (client) over a BIO pair; both
 * SSLs are freed.  Returns 1 on success; *peer gets the certificate the
 * client saw (a reference, or NULL). */
static int handshake(SSL *s, SSL *c, X509 **peer)
{
	BIO *bs, *bc;
	int ok = 0, sdone = 0, cdone = 0;

	if (peer != NULL)
		*peer = NULL;
	if (s == NULL || c == NULL || BIO_new_bio_pair(&bs, 0, &bc, 0) != 1) {
		SSL_free(s);
		SSL_free(c);
		return 0;
	}
	SSL_set_bio(s, bs, bs);
	SSL_set_bio(c, bc, bc);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (int i = 0; i < 100 && !(sdone && cdone); i++)
		if (step(c, &cdone) < 0 || step(s, &sdone) < 0)
			goto out;
	ok = sdone && cdone;
	if (ok && peer != NULL)
		*peer = SSL_get1_peer_certificate(c);
out:
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	return ok;
}

/* The certificate the server of t presents for sni (NULL: none sent). */
static X509 *served(struct gw_tls *t, SSL_CTX *cctx, const char *sni)
{
	SSL *c = SSL_new(cctx);
	X509 *peer;

	if (c != NULL && sni != NULL)
		SSL_set_tlsext_host_name(c, sni);
	if (!handshake(gw_tls_server_ssl(t), c, &peer))
		return NULL;
	return peer;
}

static int same(X509 *got, X509 *want)
{
	int r = got != NULL && X509_cmp(got, want) == 0;

	X509_free(got);
	return r;
}

static struct pair pa, pb, pd, porigin;
static char ca_path[256];

static void test_sni(void)
{
	struct gw_tls_specs sp;
	struct gw_tls_server_spec s[3] = {
		{ .cert = pa.cert, .key = pa.key, .file = "t.conf", .line = 1, .key_name = "x.certs" },
		{ .cert = pb.cert, .key = pb.key, .file = "t.conf", .line = 2, .key_name = "x.certs" },
		{ .cert = pd.cert, .key = pd.key, .is_default = 1, .file = "t.conf", .line = 3,
		  .key_name = "x.certs" },
	};
	struct conf_errors e;
	struct gw_tls *t;
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());

	BEGIN_CASE("SNI picks the server context: exact, wildcard, else the default");
	conf_errors_init(&e);
	gw_tls_specs_init(&sp);
	for (int i = 0; i < 3; i++)
		CHECK(gw_tls_specs_add_server(&sp, &s[i]) == 0, "add %d", i);
	t = gw_tls_new(&sp, &e);
	gw_tls_specs_free(&sp);
	CHECK(t != NULL && e.n == 0, "%zu errors: %s", e.n, e.n ? e.msgs[0] : "");
	if (t != NULL) {
		CHECK(gw_tls_has_server(t) && gw_tls_ncerts(t) == 3, "ncerts %d", gw_tls_ncerts(t));
		CHECK(strcmp(gw_tls_cert_names(t, 1), "*.b.test, b.test") == 0, "names '%s'",
		    gw_tls_cert_names(t, 1));
		CHECK(same(served(t, cctx, "a.test"), pa.x), "a.test");
		CHECK(same(served(t, cctx, "A.Test"), pa.x), "A.Test");
		CHECK(same(served(t, cctx, "x.b.test"), pb.x), "x.b.test");
		CHECK(same(served(t, cctx, "b.test"), pb.x), "b.test");
		CHECK(same(served(t, cctx, "y.x.b.test"), pd.x), "two labels under a wildcard");
		CHECK(same(served(t, cctx, "unknown.test"), pd.x), "unknown.test");
		CHECK(same(served(t, cctx, NULL), pd.x), "no SNI");
	}
	gw_tls_free(t);
	conf_errors_free(&e);
	SSL_CTX_free(cctx);
	END_CASE();
}

static void test_errors(void)
{
	struct gw_tls_specs sp;
	struct gw_tls_server_spec bad = { .cert = pa.cert, .key = pb.key, .file = "site.conf", .line = 7,
		.key_name = "side.certificates" };
	struct gw_tls_client_spec noca = { .name = "u", .index = 0, .verify = 1, .ca_file = "/nonexistent/ca.pem",
		.file = "site.conf", .line = 9, .key_name = "side.upstreams.ca_file" };
	struct gw_tls_listener_spec l = { .file = "site.conf", .line = 3, .key_name = "side.listeners",
		.needs = "side.certificates" };
	struct conf_errors e;
	char want[1024];

	BEGIN_CASE("a key that does not match its certificate: FILE:LINE: key: ...");
	conf_errors_init(&e);
	gw_tls_specs_init(&sp);
	gw_tls_specs_add_server(&sp, &bad);
	CHECK(gw_tls_new(&sp, &e) == NULL, "built");
	snprintf(want, sizeof want, "site.conf:7: side.certificates: %s does not match the certificate in %s",
	    pb.key, pa.cert);
	CHECK(e.n == 1 && strcmp(e.msgs[0], want) == 0, "%zu errors, first '%s'", e.n, e.n ? e.msgs[0] : "");
	gw_tls_specs_free(&sp);
	conf_errors_free(&e);
	END_CASE();

	BEGIN_CASE("an unreadable CA file, then a TLS listener without a certificate, in that order");
	conf_errors_init(&e);
	gw_tls_specs_init(&sp);
	gw_tls_specs_add_listener(&sp, &l);
	gw_tls_specs_add_client(&sp, &noca);
	CHECK(gw_tls_new(&sp, &e) == NULL, "built");
	CHECK(e.n == 2, "%zu errors", e.n);
	if (e.n == 2) {
		const char *p = "site.conf:9: side.upstreams.ca_file: /nonexistent/ca.pem: ";
		CHECK(strncmp(e.msgs[0], p, strlen(p)) == 0, "'%s'", e.msgs[0]);
		CHECK(strcmp(e.msgs[1], "site.conf:3: side.listeners: tls = true needs side.certificates") == 0,
		    "'%s'", e.msgs[1]);
	}
	gw_tls_specs_free(&sp);
	conf_errors_free(&e);
	END_CASE();

	BEGIN_CASE("an unreadable OCSP file names the spec's key");
	{
		struct gw_tls_server_spec o = { .cert = pa.cert, .key = pa.key, .ocsp = "/nonexistent/o.der",
			.file = "o.conf", .line = 4, .key_name = "k.certs" };
		conf_errors_init(&e);
		gw_tls_specs_init(&sp);
		gw_tls_specs_add_server(&sp, &o);
		CHECK(gw_tls_new(&sp, &e) == NULL, "built");
		CHECK(e.n == 1 && strcmp(e.msgs[0], "o.conf:4: k.certs: /nonexistent/o.der: cannot read OCSP response") == 0,
		    "'%s'", e.n ? e.msgs[0] : "");
		gw_tls_specs_free(&sp);
		conf_errors_free(&e);
	}
	END_CASE();
}

static struct gw_tls *client_set(const char *sni2)
{
	struct gw_tls_specs sp;
	struct gw_tls_server_spec srv = { .cert = porigin.cert, .key = porigin.key, .file = "c.conf", .line = 1,
		.key_name = "k" };
	struct gw_tls_client_spec c[3] = {
		{ .name = "app", .index = 0, .verify = 1, .ca_file = ca_path, .sni = "origin.test",
		  .file = "c.conf", .line = 2, .key_name = "k.ca" },
		{ .name = "loose", .index = 2, .verify = 0, .file = "c.conf", .line = 3, .key_name = "k.ca" },
		{ .name = "wrong", .index = -1, .verify = 1, .ca_file = ca_path, .sni = sni2,
		  .file = "c.conf", .line = 4, .key_name = "k.ca" },
	};
	struct conf_errors e;
	struct gw_tls *t;

	conf_errors_init(&e);
	gw_tls_specs_init(&sp);
	gw_tls_specs_add_server(&sp, &srv);
	for (int i = 0; i < 3; i++)
		gw_tls_specs_add_client(&sp, &c[i]);
	t = gw_tls_new(&sp, &e);
	CHECK(t != NULL && e.n == 0, "%zu errors: %s", e.n, e.n ? e.msgs[0] : "");
	gw_tls_specs_free(&sp);
	conf_errors_free(&e);
	return t;
}

static void test_clients(void)
{
	struct gw_tls *t, *t2, *empty;
	const struct gw_tls_client *app, *loose, *wrong;
	struct gw_tls_specs sp;
	struct conf_errors e;

	BEGIN_CASE("client contexts by name and by number; a missing name is NULL");
	t = client_set("wrong.test");
	if (t != NULL) {
		app = gw_tls_client_find(t, "app");
		loose = gw_tls_client_find(t, "loose");
		wrong = gw_tls_client_find(t, "wrong");
		CHECK(app != NULL && loose != NULL && wrong != NULL, "found");
		CHECK(gw_tls_client_find(t, "missing") == NULL, "missing name");
		CHECK(gw_tls_client_find(t, NULL) == NULL, "NULL name");
		CHECK(gw_tls_client_find(NULL, "app") == NULL, "NULL set");
		CHECK(gw_tls_client_at(t, 0) == app && gw_tls_client_at(t, 2) == loose, "by number");
		CHECK(gw_tls_client_at(t, 1) == NULL && gw_tls_client_at(t, 3) == NULL &&
		    gw_tls_client_at(t, -1) == NULL, "numbers without a client");
		CHECK(gw_tls_upstream_ssl(t, 1, "127.0.0.1") == NULL, "plain upstream gets no SSL");
		CHECK(strcmp(gw_tls_upstream_id(t, 1), "") == 0, "plain upstream id");
		CHECK(strlen(gw_tls_client_id(app)) == GW_TLS_ID_LEN, "id length");
		CHECK(strcmp(gw_tls_upstream_id(t, 0), gw_tls_client_id(app)) == 0, "id by number");
		CHECK(strcmp(gw_tls_client_id(app), gw_tls_client_id(loose)) != 0, "ids differ");
		CHECK(strcmp(gw_tls_client_id(app), gw_tls_client_id(wrong)) != 0, "sni changes the id");

		/* the verifying context accepts the server its sni names, and
		 * refuses it under another name; the unverified one takes it */
		CHECK(handshake(gw_tls_server_ssl(t), gw_tls_client_ssl(app, "127.0.0.1"), NULL), "verified");
		CHECK(handshake(gw_tls_server_ssl(t), gw_tls_upstream_ssl(t, 0, NULL), NULL), "verified by number");
		CHECK(!handshake(gw_tls_server_ssl(t), gw_tls_client_ssl(wrong, NULL), NULL), "wrong sni passed");
		CHECK(handshake(gw_tls_server_ssl(t), gw_tls_client_ssl(loose, "x"), NULL), "unverified");
	}
	END_CASE();

	BEGIN_CASE("client ids are equal for equal settings across builds");
	t2 = client_set("wrong.test");
	if (t != NULL && t2 != NULL) {
		CHECK(strcmp(gw_tls_client_id(gw_tls_client_find(t, "app")),
		    gw_tls_client_id(gw_tls_client_find(t2, "app"))) == 0, "app");
		CHECK(strcmp(gw_tls_client_id(gw_tls_client_find(t, "wrong")),
		    gw_tls_client_id(gw_tls_client_find(t2, "wrong"))) == 0, "wrong");
	}
	gw_tls_free(t2);
	gw_tls_free(t);
	END_CASE();

	BEGIN_CASE("no specs: an empty set");
	conf_errors_init(&e);
	gw_tls_specs_init(&sp);
	empty = gw_tls_new(&sp, &e);
	CHECK(empty != NULL && e.n == 0, "empty");
	CHECK(!gw_tls_has_server(empty) && gw_tls_server_ssl(empty) == NULL, "no server");
	CHECK(gw_tls_client_find(empty, "app") == NULL && gw_tls_client_at(empty, 0) == NULL, "no client");
	gw_tls_free(empty);
	gw_tls_specs_free(&sp);
	conf_errors_free(&e);
	END_CASE();
}

int main(void)
{
	char cmd[300];
	int rc;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	ca_key = EVP_EC_gen("P-256");
	ca_cert = make_cert(ca_key, "test CA", NULL);
	snprintf(ca_path, sizeof ca_path, "%s/ca.pem", dir);
	write_pem(ca_path, ca_cert, NULL);
	make_pair(&pa, "a.test", "DNS:a.test");
	make_pair(&pb, "b.test", "DNS:*.b.test,DNS:b.test");
	make_pair(&pd, "default.test", "DNS:default.test");
	make_pair(&porigin, "origin.test", "DNS:origin.test");

	test_sni();
	test_errors();
	test_clients();

	X509_free(pa.x);
	X509_free(pb.x);
	X509_free(pd.x);
	X509_free(porigin.x);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	rc = system(cmd);
	(void)rc;
	return check_done();
}
