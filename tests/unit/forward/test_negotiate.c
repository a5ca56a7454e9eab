/*
 * Unit tests for forward/negotiate: the "Negotiate <base64>" parser, NTLM
 * detection, and the acceptor's refusals that need no KDC (a keytab that
 * does not exist, a token that is not GSSAPI).  Accepting real tickets is
 * tests/integration/test_f_sso.py's, against a real MIT KDC.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward/negotiate.h"

static void test_parse(void)
{
	BEGIN_CASE("parse");
	unsigned char *t;
	size_t n;

	CHECK(fwd_negotiate_parse("Basic YTpi", 10, &t, &n) == 0 && t == NULL, "Basic is not ours");
	CHECK(fwd_negotiate_parse("Negotiatex", 10, &t, &n) == 0, "a longer scheme name");
	CHECK(fwd_negotiate_parse("Negotiate", 9, &t, &n) == 1 && t == NULL, "no token: malformed");
	CHECK(fwd_negotiate_parse("negotiate YWJj", 14, &t, &n) == 1 && t != NULL && n == 3 &&
	    memcmp(t, "abc", 3) == 0, "case-insensitive scheme, decoded");
	free(t);
	CHECK(fwd_negotiate_parse("Negotiate  YWI=  ", 17, &t, &n) == 1 && t != NULL && n == 2, "blanks, pad");
	free(t);
	CHECK(fwd_negotiate_parse("Negotiate YQ==", 14, &t, &n) == 1 && t != NULL && n == 1, "two pads");
	free(t);
	CHECK(fwd_negotiate_parse("Negotiate YW*j", 14, &t, &n) == 1 && t == NULL, "not base64");
	CHECK(fwd_negotiate_parse("Negotiate YWJ", 13, &t, &n) == 1 && t == NULL, "not a multiple of 4");
	CHECK(fwd_negotiate_parse("Negotiate ====", 14, &t, &n) == 1 && t == NULL, "only padding");
	CHECK(fwd_negotiate_parse("Negotiate Y=Jj", 14, &t, &n) == 1 && t == NULL, "pad inside");

	size_t big = FWD_NEG_TOKEN_MAX / 3 * 4 + 8;
	char *v = malloc(10 + big + 1);
	memcpy(v, "Negotiate ", 10);
	memset(v + 10, 'A', big);
	CHECK(fwd_negotiate_parse(v, 10 + big, &t, &n) == 1 && t == NULL, "over the token bound");
	size_t ok = FWD_NEG_TOKEN_MAX / 3 * 4;
	CHECK(fwd_negotiate_parse(v, 10 + ok, &t, &n) == 1 && t != NULL && n == ok / 4 * 3, "at the bound");
	free(t);
	free(v);
	END_CASE();
}

static void test_ntlm(void)
{
	BEGIN_CASE("ntlm");
	static const unsigned char spnego_ntlm[] = "\xa1\x0aNTLMSSP\0\x01";
	static const unsigned char krb[] = "\x60\x82\x02\x00NTLMSS";

	CHECK(fwd_negotiate_is_ntlm("NTLM TlRM", 9, NULL, 0), "NTLM scheme");
	CHECK(fwd_negotiate_is_ntlm("ntlm", 4, NULL, 0), "bare ntlm");
	CHECK(!fwd_negotiate_is_ntlm("NTLMx", 5, NULL, 0), "another scheme");
	CHECK(fwd_negotiate_is_ntlm("Negotiate x", 11, spnego_ntlm, sizeof spnego_ntlm - 1), "NTLMSSP inside");
	CHECK(!fwd_negotiate_is_ntlm("Negotiate x", 11, krb, sizeof krb - 1), "cut signature");
	END_CASE();
}

static void test_acceptor_refusals(void)
{
	BEGIN_CASE("acceptor refusals");
	char err[300] = "", name[FWD_NEG_NAME_MAX];
	struct fwd_negotiate *n = fwd_negotiate_new("/nonexistent/gh.keytab", NULL, 1, err, sizeof err);

	CHECK(n == NULL && strstr(err, "cannot use the keytab") != NULL, "missing keytab: %s", err);
	n = fwd_negotiate_new("/nonexistent/gh.keytab", "HTTP/x@Y", 1, err, sizeof err);
	CHECK(n == NULL && err[0] != '\0', "missing keytab with a principal: %s", err);
	(void)name;
	fwd_negotiate_free(NULL);
	END_CASE();
}

int main(void)
{
	test_parse();
	test_ntlm();
	test_acceptor_refusals();
	return check_done();
}
