/*
 * Unit tests for TLS inspection's pure and offline parts: the ClientHello
 * parser (forward/inspect_hello) on real hellos made by OpenSSL's client
 * (whole, byte by byte, re-wrapped in many records, over the cap, old
 * versions, garbage and every truncation), the CA (forward/inspect_ca:
 * generated once with a 0600 key and never overwritten, refused when half
 * missing, not a CA or mismatched) and minting (signature, names, IP SANs,
 * validity bounds, random serials, the shared key), and the
 * inspect-or-tunnel stage (fwd_decide_inspect).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "conf_fixture.h"
#include "forward/decide.h"
#include "forward/inspect_ca.h"
#include "forward/inspect_hello.h"
#include "forward/policy.h"

/* A real ClientHello from OpenSSL's client (sni may be NULL; alpn in wire
 * format; max_version 0 = default). */
static size_t make_hello(const char *sni, const unsigned char *alpn, unsigned alpn_len, int max_version,
    unsigned char *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *s;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (max_version) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(ctx, max_version);
		SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	}
	s = SSL_new(ctx);
	SSL_set_bio(s, rb, wb);
	SSL_set_connect_state(s);
	if (sni)
		SSL_set_tlsext_host_name(s, sni);
	if (alpn)
		SSL_set_alpn_protos(s, alpn, alpn_len);
	(void)SSL_do_handshake(s);
	n = BIO_get_mem_data(wb, &p);
	if ((size_t)n > cap)
		n = 0;
	memcpy(out, p, (size_t)n);
	SSL_free(s);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return (size_t)n;
}

/* Re-wrap the handshake message of one-record hello h into records of at
 * most chunk bytes. */
static size_t rewrap(const unsigned char *h, size_t n, size_t chunk, unsigned char *out)
{
	size_t mlen = (size_t)h[3] << 8 | h[4], o = 0;
	const unsigned char *m = h + 5;

	(void)n;
	for (size_t i = 0; i < mlen; i += chunk) {
		size_t k = mlen - i < chunk ? mlen - i : chunk;
		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (unsigned char)(k >> 8);
		out[o++] = (unsigned char)k;
		memcpy(out + o, m + i, k);
		o += k;
	}
	return o;
}

static void test_hello(void)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	unsigned char h[8192], w[16384], big[40000];
	struct fwd_hello fh;
	size_t n, wn;
	enum fwd_hello_result r;

	BEGIN_CASE("hello: SNI, ALPN, TLS 1.3");
	n = make_hello("WWW.Example.COM", alpn, sizeof alpn - 1, 0, h, sizeof h);
	CHECK(n > 100, "hello made (%zu)", n);
	r = fwd_hello_parse(h, n, &fh);
	CHECK(r == FWD_HELLO_OK, "%s", fwd_hello_result_name(r));
	CHECK(strcmp(fh.sni, "www.example.com") == 0, "sni %s", fh.sni);
	CHECK(fh.alpn_h1 && fh.alpn_h2 && fh.alpn_any, "alpn");
	CHECK(fh.alpn_h2_first, "h2 offered first");
	CHECK(fh.version == 0x0304, "version %x", fh.version);
	CHECK(fh.bytes == n, "bytes %zu", fh.bytes);
	END_CASE();

	BEGIN_CASE("hello: ALPN order (mirrored to the origin) and odd lists");
	{
		static const struct {
			const char *list;
			size_t len;
			int h1, h2, first;
		} t[] = {
			{ "\x08http/1.1\x02h2", 12, 1, 1, 0 },
			{ "\x02h2", 3, 0, 1, 1 },
			{ "\x08http/1.1", 9, 1, 0, 0 },
			{ "\x06spdy/3\x02h2\x08http/1.1", 19, 1, 1, 1 },
			{ "\x06spdy/3", 7, 0, 0, 0 },
		};
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			unsigned char hb[8192];   /* (h stays the first hello: the cases below use it) */
			size_t k = make_hello("a.test", (const unsigned char *)t[i].list, t[i].len, 0, hb, sizeof hb);
			r = fwd_hello_parse(hb, k, &fh);
			CHECK(r == FWD_HELLO_OK && fh.alpn_any && fh.alpn_h1 == t[i].h1 && fh.alpn_h2 == t[i].h2 &&
			    fh.alpn_h2_first == t[i].first, "list %zu: h1 %d h2 %d first %d", i, fh.alpn_h1, fh.alpn_h2,
			    fh.alpn_h2_first);
		}
	}
	END_CASE();

	BEGIN_CASE("hello: every prefix needs more");
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		if (fwd_hello_parse(h, i, &fh) != FWD_HELLO_MORE)
			bad++;
	CHECK(bad == 0, "%d prefixes not 'more'", bad);
	END_CASE();

	BEGIN_CASE("hello: reassembled across 7-byte records");
	wn = rewrap(h, n, 7, w);
	r = fwd_hello_parse(w, wn, &fh);
	CHECK(r == FWD_HELLO_OK, "%s", fwd_hello_result_name(r));
	CHECK(strcmp(fh.sni, "www.example.com") == 0, "sni %s", fh.sni);
	CHECK(fh.bytes == wn, "bytes %zu of %zu", fh.bytes, wn);
	bad = 0;
	for (size_t i = 0; i < wn; i++)
		if (fwd_hello_parse(w, i, &fh) != FWD_HELLO_MORE)
			bad++;
	CHECK(bad == 0, "%d prefixes not 'more'", bad);
	END_CASE();

	BEGIN_CASE("hello: no SNI, no ALPN, TLS 1.2 only");
	n = make_hello(NULL, NULL, 0, TLS1_2_VERSION, h, sizeof h);
	r = fwd_hello_parse(h, n, &fh);
	CHECK(r == FWD_HELLO_OK, "%s", fwd_hello_result_name(r));
	CHECK(fh.sni[0] == '\0' && !fh.alpn_any && fh.version == 0x0303, "sni '%s' version %x", fh.sni, fh.version);
	END_CASE();

	BEGIN_CASE("hello: TLS 1.0 and 1.1 are old");
	n = make_hello("a.example", NULL, 0, TLS1_VERSION, h, sizeof h);
	r = fwd_hello_parse(h, n, &fh);
	CHECK(r == FWD_HELLO_OLD_VERSION, "1.0: %s", fwd_hello_result_name(r));
	n = make_hello("a.example", NULL, 0, TLS1_1_VERSION, h, sizeof h);
	r = fwd_hello_parse(h, n, &fh);
	CHECK(r == FWD_HELLO_OLD_VERSION, "1.1: %s", fwd_hello_result_name(r));
	END_CASE();

	BEGIN_CASE("hello: garbage, SSLv2, SSLv3 record");
	r = fwd_hello_parse((const unsigned char *)"GET / HTTP/1.1\r\n", 16, &fh);
	CHECK(r == FWD_HELLO_NOT_TLS, "http: %s", fwd_hello_result_name(r));
	r = fwd_hello_parse((const unsigned char *)"\x80\x2e\x01\x00\x02", 5, &fh);
	CHECK(r == FWD_HELLO_SSLV2, "v2: %s", fwd_hello_result_name(r));
	r = fwd_hello_parse((const unsigned char *)"\x15\x03\x01\x00\x02\x02\x28", 7, &fh);
	CHECK(r == FWD_HELLO_NOT_TLS, "alert: %s", fwd_hello_result_name(r));
	/* an SSLv3 client: legacy_version 3.0 and no supported_versions */
	n = make_hello("a.example", NULL, 0, TLS1_2_VERSION, h, sizeof h);
	h[9] = 3, h[10] = 0;   /* client_version in the hello body */
	{
		/* drop supported_versions is not needed: a TLS 1.2 client sends none */
		r = fwd_hello_parse(h, n, &fh);
		CHECK(r == FWD_HELLO_OLD_VERSION, "v3: %s", fwd_hello_result_name(r));
	}
	END_CASE();

	BEGIN_CASE("hello: over 16 KiB is refused, not buffered");
	memset(big, 0, sizeof big);
	big[0] = 1;                  /* ClientHello of 20000 bytes */
	big[1] = 0, big[2] = 0x4e, big[3] = 0x20;
	wn = 0;
	{
		static unsigned char rec[40000];
		size_t o = 0;
		for (size_t i = 0; i < 20004; i += 16000) {
			size_t k = 20004 - i < 16000 ? 20004 - i : 16000;
			rec[o++] = 22, rec[o++] = 3, rec[o++] = 1;
			rec[o++] = (unsigned char)(k >> 8), rec[o++] = (unsigned char)k;
			memcpy(rec + o, big + i, k);
			o += k;
		}
		r = fwd_hello_parse(rec, o, &fh);
		CHECK(r == FWD_HELLO_TOO_BIG, "%s", fwd_hello_result_name(r));
		r = fwd_hello_parse(rec, 9, &fh);   /* the length alone says so */
		CHECK(r == FWD_HELLO_TOO_BIG, "early: %s", fwd_hello_result_name(r));
	}
	END_CASE();

	BEGIN_CASE("hello: every corrupted length is malformed or more, never a crash");
	n = make_hello("b.example", alpn, sizeof alpn - 1, 0, h, sizeof h);
	int ok = 1;
	for (size_t i = 5; i < n; i++) {
		unsigned char c[8192];
		memcpy(c, h, n);
		c[i] ^= 0xff;
		r = fwd_hello_parse(c, n, &fh);
		if (r != FWD_HELLO_OK && r != FWD_HELLO_MALFORMED && r != FWD_HELLO_MORE &&
		    r != FWD_HELLO_OLD_VERSION && r != FWD_HELLO_TOO_BIG)
			ok = 0;
		if (r == FWD_HELLO_OK && strlen(fh.sni) >= sizeof fh.sni)
			ok = 0;
	}
	CHECK(ok, "an unexpected outcome");
	/* the record length past what was sent is "more", a zero one malformed */
	memcpy(w, h, n);
	w[3] = 0, w[4] = 0;
	CHECK(fwd_hello_parse(w, n, &fh) == FWD_HELLO_MALFORMED, "zero record");
	END_CASE();
}

static char tmpdir[] = "/tmp/gw-inspect-XXXXXX";

static void path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void test_ca(void)
{
	char cp[256], kp[256], err[600], fp[128];
	struct fwd_ca *ca;
	struct stat st;
	int created = 0;

	BEGIN_CASE("ca: made once, key 0600, never overwritten");
	path(cp, sizeof cp, "sub/dir/ca.pem");
	path(kp, sizeof kp, "sub/dir/ca.key");
	ca = fwd_ca_load(cp, kp, 0, &created, err, sizeof err);
	CHECK(ca == NULL && strstr(err, "missing") != NULL, "without create: %s", err);
	ca = fwd_ca_load(cp, kp, 1, &created, err, sizeof err);
	CHECK(ca != NULL && created == 1, "made: %s", err);
	CHECK(stat(kp, &st) == 0 && (st.st_mode & 0777) == 0600, "key mode %o", st.st_mode & 0777);
	if (ca != NULL) {
		size_t n;
		snprintf(fp, sizeof fp, "%s", fwd_ca_fingerprint(ca));
		CHECK(strlen(fp) == 95, "fingerprint %s", fp);
		CHECK(strncmp(fwd_ca_pem(ca, &n), "-----BEGIN CERTIFICATE-----", 27) == 0, "pem");
		CHECK(fwd_ca_der(ca, &n) != NULL && n > 200, "der %zu", n);
		CHECK(fwd_ca_not_after(ca) > time(NULL) + 9L * 365 * 86400, "ten years");
		EVP_PKEY *k = X509_get0_pubkey(fwd_ca_cert(ca));
		CHECK(EVP_PKEY_is_a(k, "EC"), "EC key");
		fwd_ca_free(ca);
	}
	ca = fwd_ca_load(cp, kp, 1, &created, err, sizeof err);
	CHECK(ca != NULL && created == 0, "loaded again: %s", err);
	CHECK(ca != NULL && strcmp(fwd_ca_fingerprint(ca), fp) == 0, "same CA");
	fwd_ca_free(ca);
	END_CASE();

	BEGIN_CASE("ca: half missing, not a CA, wrong key");
	char kp2[256];
	path(kp2, sizeof kp2, "other.key");
	ca = fwd_ca_load(cp, kp2, 1, &created, err, sizeof err);
	CHECK(ca == NULL && strstr(err, "missing while") != NULL, "half: %s", err);
	CHECK(access(kp2, F_OK) != 0, "nothing written");
	/* a second CA's key does not match the first certificate */
	char cp3[256], kp3[256];
	path(cp3, sizeof cp3, "c3.pem");
	path(kp3, sizeof kp3, "c3.key");
	ca = fwd_ca_load(cp3, kp3, 1, &created, err, sizeof err);
	CHECK(ca != NULL, "second");
	fwd_ca_free(ca);
	ca = fwd_ca_load(cp, kp3, 1, &created, err, sizeof err);
	CHECK(ca == NULL && strstr(err, "does not match") != NULL, "mismatch: %s", err);
	/* a leaf is not a CA */
	ca = fwd_ca_load(cp3, kp3, 0, &created, err, sizeof err);
	const char *nm[] = { "leaf.example" };
	struct fwd_mint_spec sp = { NULL, nm, 1, 0, 0 };
	X509 *leaf = fwd_ca_mint(ca, &sp, time(NULL), err, sizeof err);
	char lp[256], lk[256];
	path(lp, sizeof lp, "leaf.pem");
	path(lk, sizeof lk, "leaf.key");
	FILE *f = fopen(lp, "w");
	PEM_write_X509(f, leaf);
	fclose(f);
	f = fopen(lk, "w");
	PEM_write_PrivateKey(f, fwd_ca_leaf_key(ca), NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(leaf);
	fwd_ca_free(ca);
	ca = fwd_ca_load(lp, lk, 0, &created, err, sizeof err);
	CHECK(ca == NULL && strstr(err, "not a CA") != NULL, "leaf: %s", err);
	path(lp, sizeof lp, "garbage.pem");
	f = fopen(lp, "w");
	fputs("hello\n", f);
	fclose(f);
	ca = fwd_ca_load(lp, lk, 0, &created, err, sizeof err);
	CHECK(ca == NULL && strstr(err, "not a PEM certificate") != NULL, "garbage: %s", err);
	END_CASE();
}

static int has_eku_server(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
}

static void test_mint(void)
{
	char cp[256], kp[256], err[600];
	struct fwd_ca *ca;
	time_t now = time(NULL);

	path(cp, sizeof cp, "sub/dir/ca.pem");
	path(kp, sizeof kp, "sub/dir/ca.key");
	ca = fwd_ca_load(cp, kp, 0, NULL, err, sizeof err);
	if (ca == NULL) {
		BEGIN_CASE("mint: CA");
		CHECK(0, "%s", err);
		END_CASE();
		return;
	}

	BEGIN_CASE("mint: names, signature, key, extensions");
	const char *names[] = { "www.example.com", "example.com", "*.cdn.example.com" };
	struct fwd_mint_spec sp = { NULL, names, 3, 0, 0 };
	X509 *x = fwd_ca_mint(ca, &sp, now, err, sizeof err), *y;
	CHECK(x != NULL, "%s", err);
	if (x != NULL) {
		CHECK(X509_verify(x, X509_get0_pubkey(fwd_ca_cert(ca))) == 1, "signed by the CA");
		CHECK(X509_check_private_key(x, fwd_ca_leaf_key(ca)) == 1, "shared leaf key");
		CHECK(X509_check_host(x, "www.example.com", 0, 0, NULL) == 1, "host");
		CHECK(X509_check_host(x, "a.cdn.example.com", 0, 0, NULL) == 1, "wildcard");
		CHECK(X509_check_host(x, "other.example", 0, 0, NULL) != 1, "no other");
		CHECK(has_eku_server(x), "serverAuth");
		CHECK(X509_check_ca(x) == 0, "not a CA");
		CHECK(X509_check_issued(fwd_ca_cert(ca), x) == X509_V_OK, "issued by the CA (akid)");
		/* the chain verifies against the CA alone */
		X509_STORE *st = X509_STORE_new();
		X509_STORE_CTX *sc = X509_STORE_CTX_new();
		X509_STORE_add_cert(st, fwd_ca_cert(ca));
		X509_STORE_CTX_init(sc, st, x, NULL);
		X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_SERVER);
		int vr = X509_verify_cert(sc);
		CHECK(vr == 1, "chain: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
		X509_STORE_CTX_free(sc);
		X509_STORE_free(st);
		int days = 0, secs = 0;
		ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
		CHECK(days <= FWD_MINT_MAX_DAYS + 1 && days >= FWD_MINT_MAX_DAYS, "days %d", days);
		y = fwd_ca_mint(ca, &sp, now, err, sizeof err);
		CHECK(y != NULL && ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(y)) != 0,
		    "random serials");
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		CHECK(BN_num_bits(bn) >= 64, "64+ bits");
		BN_free(bn);
		X509_free(y);
		X509_free(x);
	}
	END_CASE();

	BEGIN_CASE("mint: IP literal is an iPAddress SAN");
	const char *ips[] = { "127.0.0.1", "::1" };
	struct fwd_mint_spec si = { NULL, ips, 2, 0, 0 };
	x = fwd_ca_mint(ca, &si, now, err, sizeof err);
	CHECK(x != NULL, "%s", err);
	if (x != NULL) {
		CHECK(X509_check_ip_asc(x, "127.0.0.1", 0) == 1, "v4");
		CHECK(X509_check_ip_asc(x, "::1", 0) == 1, "v6");
		CHECK(X509_check_host(x, "127.0.0.1", 0, 0, NULL) != 1, "no dNSName for an address");
		X509_free(x);
	}
	END_CASE();

	BEGIN_CASE("mint: validity within the origin's");
	struct fwd_mint_spec so = { "www.example.com", names, 1, now - 86400 * 10, now + 86400 * 5 };
	x = fwd_ca_mint(ca, &so, now, err, sizeof err);
	CHECK(x != NULL, "%s", err);
	if (x != NULL) {
		CHECK(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), now + 86400 * 5) == 0, "notAfter = origin's");
		CHECK(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), now - 3600) == 0, "notBefore now - 1 h");
		X509_free(x);
	}
	so.origin_not_after = now - 10;
	x = fwd_ca_mint(ca, &so, now, err, sizeof err);
	CHECK(x == NULL && strstr(err, "not valid now") != NULL, "expired origin: %s", err);
	END_CASE();

	{
		/* not a check: what one leaf costs (the console's mint_us_total
		 * divided by minted shows the same in production) */
		struct timespec t0, t1;
		int k = 300;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < k; i++)
			X509_free(fwd_ca_mint(ca, &sp, now, err, sizeof err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("mint: %.1f us per leaf (%d leaves, 3 names)\n",
		    ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / k, k);
	}

	BEGIN_CASE("mint: bad names");
	const char *bad1[] = { "a b.example" }, *bad2[] = { "" }, *bad3[] = { "a..example" };
	struct fwd_mint_spec sb = { NULL, bad1, 1, 0, 0 };
	CHECK(fwd_ca_mint(ca, &sb, now, err, sizeof err) == NULL && strstr(err, "neither"), "space: %s", err);
	sb.names = bad2;
	CHECK(fwd_ca_mint(ca, &sb, now, err, sizeof err) == NULL, "empty");
	sb.names = bad3;
	CHECK(fwd_ca_mint(ca, &sb, now, err, sizeof err) == NULL, "empty label");
	sb.nnames = 0;
	CHECK(fwd_ca_mint(ca, &sb, now, err, sizeof err) == NULL && strstr(err, "no names"), "none: %s", err);
	END_CASE();
	fwd_ca_free(ca);
}

static struct conf_fwd_rule rule(const char *name, enum conf_action a)
{
	struct conf_fwd_rule r;
	memset(&r, 0, sizeof(r));
	r.name = (char *)name;
	r.action = a;
	r.inspect = 1;
	r.src.file = "test.conf";
	r.src.line = 1;
	return r;
}

static void test_decide_inspect(void)
{
	struct conf_cidr allow[] = { cidr("10.0.0.0", 8) };
	struct conf_fwd_rule rules[2];
	struct conf_fwd_list lists[1];
	struct conf cf;
	struct conf_errors errs;
	struct fwd_policy *p;
	struct fwd_decider dc;
	struct fwd_match m;
	char why[300], lp[256];
	FILE *f;

	path(lp, sizeof lp, "finance.domains");
	f = fopen(lp, "w");
	fputs("bank.example\npay.example\n", f);
	fclose(f);
	memset(&cf, 0, sizeof cf);
	memset(lists, 0, sizeof lists);
	cf.path = "test.conf";
	cf.forward.present = 1;
	cf.forward.allow_clients = (struct conf_cidrs){ allow, 1 };
	lists[0].name = "finance";
	lists[0].file = lp;
	lists[0].src.file = "test.conf";
	cf.forward.lists = lists;
	cf.forward.nlists = 1;
	rules[0] = rule("pinned-apps", CONF_ACT_ALLOW);
	rules[0].domains = STRS(".updates.example");
	rules[0].inspect = 0;
	rules[1] = rule("default", CONF_ACT_ALLOW);
	cf.forward.policy = rules;
	cf.forward.npolicy = 2;
	cf.forward.policy_present = 1;
	conf_errors_init(&errs);
	p = fwd_policy_compile(&cf, &errs);
	BEGIN_CASE("decide inspect");
	CHECK(p != NULL, "policy compiles");
	if (p == NULL) {
		END_CASE();
		return;
	}
	fwd_decider_init(&dc, p, &cf);
	memset(&m, 0, sizeof m);
	m.rule_index = 1;
	m.rule_name = "default";
	CHECK(fwd_decide_inspect(&dc, "a.example", NULL, &m, why, sizeof why) == 0 && strstr(why, "off"),
	    "off: %s", why);
	cf.forward.inspect.present = 1;
	cf.forward.inspect.mode_all = 1;
	cf.forward.inspect.bypass_domains = STRS(".health.example", "exact.example");
	cf.forward.inspect.bypass_lists = STRS("finance");
	CHECK(fwd_decide_inspect(&dc, "a.example", "a.example", &m, why, sizeof why) == 1, "all: %s", why);
	CHECK(fwd_decide_inspect(&dc, "x.health.example", NULL, &m, why, sizeof why) == 0 &&
	    strstr(why, "bypass_domains"), "domain: %s", why);
	CHECK(fwd_decide_inspect(&dc, "health.example", "", &m, why, sizeof why) == 0, "dot form: %s", why);
	CHECK(fwd_decide_inspect(&dc, "a.exact.example", NULL, &m, why, sizeof why) == 1, "exact only: %s", why);
	CHECK(fwd_decide_inspect(&dc, "www.bank.example", NULL, &m, why, sizeof why) == 0 &&
	    strstr(why, "finance"), "list: %s", why);
	/* a bypassed CONNECT host with another TLS name: inspected */
	CHECK(fwd_decide_inspect(&dc, "bank.example", "evil.example", &m, why, sizeof why) == 1 &&
	    strstr(why, "evil.example"), "mismatch: %s", why);
	CHECK(fwd_decide_inspect(&dc, "bank.example", "pay.example", &m, why, sizeof why) == 0, "both: %s", why);
	CHECK(fwd_decide_inspect(&dc, "bank.example", "BANK.example", &m, why, sizeof why) == 0, "case: %s", why);
	m.rule_index = 0;
	m.rule_name = "pinned-apps";
	CHECK(fwd_decide_inspect(&dc, "dl.updates.example", NULL, &m, why, sizeof why) == 0 &&
	    strstr(why, "pinned-apps"), "rule: %s", why);
	cf.forward.inspect.mode_all = 0;
	m.rule_index = 1;
	CHECK(fwd_decide_inspect(&dc, "a.example", NULL, &m, why, sizeof why) == 0, "mode off: %s", why);
	END_CASE();
	fwd_policy_free(p);
}

int main(void)
{
	char cmd[300];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_hello();
	test_ca();
	test_mint();
	test_decide_inspect();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return check_done();
}
