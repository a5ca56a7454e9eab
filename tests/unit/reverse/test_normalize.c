/* Unit tests for rev_path_normalize (reverse/route.h): dot segments, merged
 * slashes, unreserved percent-decoding, queries, errors. */
#include <string.h>

#include "check.h"
#include "reverse/route.h"

static const struct {
	const char *in;
	long rc;            /* >= 0: expect out */
	const char *out;
} cases[] = {
	{ "/", 1, "/" },
	{ "/a/b", 0, "/a/b" },
	{ "/a/b/", 0, "/a/b/" },
	{ "/api/../admin", 0, "/admin" },
	{ "/api/./x", 0, "/api/x" },
	{ "/api/x/..", 0, "/api/" },
	{ "/api/x/.", 0, "/api/x/" },
	{ "/a/b/../../c", 0, "/c" },
	{ "/a/..", 0, "/" },
	{ "//a///b", 0, "/a/b" },
	{ "/api/%2e%2e/admin", 0, "/admin" },
	{ "/api/%2E./admin", 0, "/admin" },
	{ "/%7euser/%41%2fb", 0, "/~user/A%2Fb" },
	{ "/a/..?x=/../y", 0, "/?x=/../y" },
	{ "/a/b?q#frag", 0, "/a/b?q" },
	{ "/a#f", 0, "/a" },
	{ "/a/...", 0, "/a/..." },
	{ "/a/..b", 0, "/a/..b" },
	{ "/..", -1, NULL },
	{ "/a/../..", -1, NULL },
	{ "/%2e%2e/x", -1, NULL },
	{ "/a%2", -1, NULL },
	{ "/a%zz", -1, NULL },
	{ "a/b", -1, NULL },
};

int main(void)
{
	char buf[256], small[4];

	BEGIN_CASE("normalize table");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long n = rev_path_normalize(cases[i].in, strlen(cases[i].in), buf, sizeof buf);
		if (cases[i].rc < 0)
			CHECK(n == cases[i].rc, "%s: got %ld", cases[i].in, n);
		else
			CHECK(n >= 0 && strcmp(buf, cases[i].out) == 0 && (size_t)n == strlen(buf),
			    "%s: got %ld '%s', want '%s'", cases[i].in, n, n >= 0 ? buf : "",
			    cases[i].out);
	}
	END_CASE();
	BEGIN_CASE("normalize: buffer too small");
	CHECK(rev_path_normalize("/abcdef", 7, small, sizeof small) == -2, "too small");
	CHECK(rev_path_normalize("/ab", 3, small, sizeof small) == 3, "fits exactly");
	END_CASE();
	return check_done();
}
