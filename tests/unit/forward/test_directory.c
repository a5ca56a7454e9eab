/*
 * Unit tests for forward/directory's pure part: the RFC 4515 escaping of a
 * user name into user_filter (no filter injection).  Directory work itself
 * is tests/integration/test_f_ldap.py's, against a real slapd.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward/directory.h"

static void expect(const char *tmpl, const char *user, const char *want)
{
	char *f = fwd_directory_filter(tmpl, user);

	CHECK(f != NULL && strcmp(f, want) == 0, "%s with %s: got %s, want %s", tmpl, user, f ? f : "NULL", want);
	free(f);
}

int main(void)
{
	BEGIN_CASE("filter escaping");
	expect("(uid=%s)", "alice", "(uid=alice)");
	expect("(uid=%s)", "*", "(uid=\\2A)");
	expect("(uid=%s)", "alice)(uid=*", "(uid=alice\\29\\28uid=\\2A)");
	expect("(uid=%s)", "a\\b", "(uid=a\\5Cb)");
	expect("(&(objectClass=person)(|(uid=%s)(mail=%s)))", "x*", "(&(objectClass=person)(|(uid=x\\2A)(mail=x\\2A)))");
	expect("(member=%s)", "cn=a\\2c b,dc=x", "(member=cn=a\\5C2c b,dc=x)");
	expect("(uid=%s)", "", "(uid=)");
	END_CASE();
	return check_done();
}
