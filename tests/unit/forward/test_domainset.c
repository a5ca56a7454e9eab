/*
 * Unit tests for forward/domainset: list parsing (comments, CRLF, prefixes,
 * invalid lines), subdomain/apex semantics, IP entries, case and trailing
 * dots, duplicates, file loading, and a larger randomised cross-check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward/domainset.h"

static struct fwd_domainset *from_str(const char *s)
{
	char err[256] = "";
	struct fwd_domainset *ds = fwd_domainset_from_buffer(s, strlen(s), err, sizeof(err));
	if (!ds)
		fprintf(stderr, "from_buffer failed: %s\n", err);
	return ds;
}

static int m(const struct fwd_domainset *ds, const char *host)
{
	return fwd_domainset_match(ds, host, strlen(host), NULL);
}

static const char *entry(const struct fwd_domainset *ds, const char *host)
{
	const char *e = NULL;
	if (!fwd_domainset_match(ds, host, strlen(host), &e))
		return "(none)";
	return e;
}

static void test_basic(void)
{
	BEGIN_CASE("basic domain and subdomains");
	struct fwd_domainset *ds = from_str("example.com\nevil.test\n");
	CHECK(ds != NULL, "load");
	CHECK(fwd_domainset_count(ds) == 2, "count %zu", fwd_domainset_count(ds));
	CHECK(m(ds, "example.com"), "apex");
	CHECK(m(ds, "www.example.com"), "subdomain");
	CHECK(m(ds, "a.b.c.example.com"), "deep subdomain");
	CHECK(!m(ds, "notexample.com"), "no label boundary");
	CHECK(!m(ds, "example.com.evil"), "prefix only");
	CHECK(!m(ds, "com"), "parent of entry");
	CHECK(!m(ds, "xample.com"), "shorter");
	CHECK(!m(ds, "example.org"), "other tld");
	CHECK(m(ds, "x.evil.test"), "second entry");
	CHECK(strcmp(entry(ds, "www.example.com"), "example.com") == 0, "entry %s",
	    entry(ds, "www.example.com"));
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_case_and_dots(void)
{
	BEGIN_CASE("case-insensitive, trailing dots");
	struct fwd_domainset *ds = from_str("Example.COM\nfoo.test.\n");
	CHECK(ds && fwd_domainset_count(ds) == 2, "count");
	CHECK(m(ds, "EXAMPLE.com"), "upper host");
	CHECK(m(ds, "WWW.Example.Com"), "mixed sub");
	CHECK(m(ds, "example.com."), "trailing dot host");
	CHECK(m(ds, "www.example.com."), "trailing dot sub");
	CHECK(m(ds, "foo.test"), "entry with trailing dot");
	CHECK(strcmp(entry(ds, "A.EXAMPLE.COM"), "example.com") == 0, "normalised entry %s",
	    entry(ds, "A.EXAMPLE.COM"));
	CHECK(!m(ds, "example.com.."), "two trailing dots");
	CHECK(!m(ds, ""), "empty host");
	CHECK(!m(ds, "."), "dot host");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_prefixes(void)
{
	BEGIN_CASE("*. and . prefixes mean the bare domain");
	struct fwd_domainset *ds = from_str("*.star.test\n.dot.test\n");
	CHECK(ds && fwd_domainset_count(ds) == 2, "count");
	CHECK(m(ds, "star.test"), "star apex");
	CHECK(m(ds, "a.star.test"), "star sub");
	CHECK(m(ds, "dot.test"), "dot apex");
	CHECK(m(ds, "a.b.dot.test"), "dot sub");
	CHECK(strcmp(entry(ds, "a.star.test"), "star.test") == 0, "entry");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_format(void)
{
	BEGIN_CASE("comments, blanks, CRLF, whitespace, no final newline");
	const char *list =
	    "# UT1 blacklist\r\n"
	    "\r\n"
	    "   \t\n"
	    "crlf.test\r\n"
	    "  spaced.test  \t\r\n"
	    "inline.test # a comment\n"
	    "#commented.test\n"
	    "\tlast.test";
	struct fwd_domainset *ds = from_str(list);
	size_t first = 99;
	CHECK(ds != NULL, "load");
	CHECK(fwd_domainset_count(ds) == 4, "count %zu", fwd_domainset_count(ds));
	CHECK(fwd_domainset_invalid(ds, &first) == 0 && first == 0, "no invalid lines");
	CHECK(m(ds, "crlf.test"), "crlf");
	CHECK(m(ds, "spaced.test"), "spaced");
	CHECK(m(ds, "inline.test"), "inline comment");
	CHECK(!m(ds, "commented.test"), "commented out");
	CHECK(m(ds, "www.last.test"), "last line without newline");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_invalid(void)
{
	BEGIN_CASE("invalid lines are skipped and counted");
	char longlabel[80];
	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".test\n");
	char list[1024];
	snprintf(list, sizeof(list),
	    "good.test\n"
	    "two words.test\n"          /* line 2 */
	    "bad$char.test\n"
	    "a..b.test\n"
	    "http://url.test/path\n"
	    "url.test/path\n"
	    "%s"                         /* label over 63 */
	    "999.1.1.1\n"
	    "1.2.3\n"
	    "caf\xc3\xa9.test\n"
	    "*.\n"
	    "_dmarc.ok.test\n"
	    "xn--caf-dma.test\n", longlabel);
	struct fwd_domainset *ds = from_str(list);
	size_t first = 0;
	CHECK(ds != NULL, "load");
	CHECK(fwd_domainset_count(ds) == 3, "count %zu", fwd_domainset_count(ds));
	CHECK(fwd_domainset_invalid(ds, &first) == 10, "invalid %zu",
	    fwd_domainset_invalid(ds, NULL));
	CHECK(first == 2, "first invalid line %zu", first);
	CHECK(m(ds, "good.test") && m(ds, "_dmarc.ok.test") && m(ds, "xn--caf-dma.test"), "valid ones");
	CHECK(!m(ds, "url.test") && !m(ds, "b.test"), "invalid not loaded");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_ip(void)
{
	BEGIN_CASE("IP entries match literal IP hosts exactly");
	struct fwd_domainset *ds = from_str("192.0.2.1\n2001:DB8::1\n[2001:db8::2]\n"
	    "::ffff:198.51.100.7\n3.4.example\n");
	CHECK(ds && fwd_domainset_count(ds) == 5, "count %zu", fwd_domainset_count(ds));
	CHECK(m(ds, "192.0.2.1"), "v4");
	CHECK(m(ds, "192.0.2.1."), "v4 trailing dot");
	CHECK(!m(ds, "192.0.2.10"), "v4 other");
	CHECK(!m(ds, "10.192.0.2.1"), "v4 as suffix: not an address");
	CHECK(!m(ds, "x.192.0.2.1"), "v4 entry never matches as a domain suffix");
	CHECK(m(ds, "2001:db8::1"), "v6");
	CHECK(m(ds, "[2001:db8::1]"), "v6 bracketed");
	CHECK(m(ds, "2001:0DB8:0:0:0:0:0:1"), "v6 other spelling");
	CHECK(m(ds, "[2001:db8::2]"), "bracketed entry");
	CHECK(!m(ds, "2001:db8::3"), "v6 other");
	CHECK(m(ds, "::ffff:198.51.100.7"), "mapped");
	CHECK(m(ds, "198.51.100.7") && m(ds, "[::ffff:c633:6407]"),
	    "a mapped entry is its IPv4 address (core/addr canonical form), as the policy's host is");
	CHECK(!m(ds, "198.51.100.07"), "ambiguous host is no address");
	CHECK(strcmp(entry(ds, "[2001:DB8:0::1]"), "2001:db8::1") == 0, "canonical entry %s",
	    entry(ds, "[2001:DB8:0::1]"));
	CHECK(m(ds, "1.2.3.4.example"), "name ending like a partial IP");
	CHECK(!m(ds, "not:an:address"), "junk with colons");
	fwd_domainset_free(ds);

	/* canonical text longer than the line, first line of the buffer */
	ds = from_str("::ffff:a:b\nx.test\n");
	CHECK(ds && fwd_domainset_count(ds) == 2, "count %zu", fwd_domainset_count(ds));
	CHECK(m(ds, "::ffff:0.10.0.11") && m(ds, "[::FFFF:a:b]") && m(ds, "www.x.test"),
	    "longer canonical IPv6");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_dups_longest(void)
{
	BEGIN_CASE("duplicates stored once; longest entry reported");
	struct fwd_domainset *ds = from_str("example.com\nEXAMPLE.com\n*.example.com\n"
	    "a.example.com\n");
	CHECK(ds && fwd_domainset_count(ds) == 2, "count %zu", fwd_domainset_count(ds));
	CHECK(strcmp(entry(ds, "x.a.example.com"), "a.example.com") == 0, "longest %s",
	    entry(ds, "x.a.example.com"));
	CHECK(strcmp(entry(ds, "b.example.com"), "example.com") == 0, "shorter");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_empty(void)
{
	BEGIN_CASE("empty and comment-only lists; NULL set");
	struct fwd_domainset *ds = from_str("");
	CHECK(ds && fwd_domainset_count(ds) == 0, "empty");
	CHECK(!m(ds, "example.com"), "no match");
	fwd_domainset_free(ds);
	ds = from_str("# nothing\n\n#\n");
	CHECK(ds && fwd_domainset_count(ds) == 0, "comments only");
	CHECK(!m(ds, "nothing"), "no match");
	fwd_domainset_free(ds);
	CHECK(fwd_domainset_match(NULL, "a.b", 3, NULL) == 0, "NULL set");
	CHECK(fwd_domainset_count(NULL) == 0, "NULL count");
	fwd_domainset_free(NULL);
	END_CASE();
}

static void test_long_host(void)
{
	BEGIN_CASE("over-long hosts and lengths without NUL");
	struct fwd_domainset *ds = from_str("example.com\n");
	char host[600];
	memset(host, 'a', sizeof(host));
	memcpy(host + sizeof(host) - 13, ".example.com", 12);
	host[sizeof(host) - 1] = '\0';
	CHECK(!m(ds, host), "host over 255 bytes never matches");
	/* len excludes the tail: "example.comXYZ" with len 11 */
	CHECK(fwd_domainset_match(ds, "example.comXYZ", 11, NULL), "len respected");
	CHECK(!fwd_domainset_match(ds, "example.comXYZ", 12, NULL), "len respected 2");
	fwd_domainset_free(ds);
	END_CASE();
}

static void test_file(void)
{
	BEGIN_CASE("load from file; missing file is an error");
	char path[] = "/tmp/gw-test-ds-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	const char *txt = "# list\r\nfile.test\r\nbad line\r\n10.0.0.1\r\n";
	CHECK(write(fd, txt, strlen(txt)) == (ssize_t)strlen(txt), "write");
	close(fd);
	char err[256] = "";
	struct fwd_domainset *ds = fwd_domainset_load(path, err, sizeof(err));
	CHECK(ds != NULL, "load: %s", err);
	size_t first = 0;
	CHECK(fwd_domainset_count(ds) == 2, "count");
	CHECK(fwd_domainset_invalid(ds, &first) == 1 && first == 3, "invalid line %zu", first);
	CHECK(m(ds, "www.file.test") && m(ds, "10.0.0.1"), "matches");
	CHECK(fwd_domainset_memory(ds) > 0, "memory");
	fwd_domainset_free(ds);
	unlink(path);

	err[0] = '\0';
	ds = fwd_domainset_load("/nonexistent/gw-list", err, sizeof(err));
	CHECK(ds == NULL, "missing file");
	CHECK(strstr(err, "/nonexistent/gw-list") != NULL, "message names the file: %s", err);
	ds = fwd_domainset_load("/nonexistent/gw-list", NULL, 0);
	CHECK(ds == NULL, "missing file, no err buffer");
	END_CASE();
}

/* deterministic PRNG */
static unsigned long long rng = 88172645463325252ull;
static unsigned long long xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void rand_name(char *out, const char *alpha)
{
	size_t alen = strlen(alpha), o = 0;
	int labels = 1 + (int)(xr() % 3);
	for (int l = 0; l < labels; l++) {
		int n = 1 + (int)(xr() % 10);
		for (int i = 0; i < n; i++)
			out[o++] = alpha[xr() % alen];
		out[o++] = '.';
	}
	strcpy(out + o, "test");
}

static void test_random(void)
{
	BEGIN_CASE("100k random entries: all found, disjoint names not found");
	enum { N = 100000 };
	char (*names)[48] = malloc(sizeof(*names) * N);
	size_t cap = (size_t)N * 48, len = 0;
	char *buf = malloc(cap);
	for (int i = 0; i < N; i++) {
		rand_name(names[i], "abcdefghijklm");
		size_t l = strlen(names[i]);
		memcpy(buf + len, names[i], l);
		len += l;
		buf[len++] = (i % 7) ? '\n' : '\r';
		if (i % 7 == 0)
			buf[len++] = '\n';
	}
	char err[128];
	struct fwd_domainset *ds = fwd_domainset_from_buffer(buf, len, err, sizeof(err));
	CHECK(ds != NULL, "load");
	int miss = 0, fp = 0;
	for (int i = 0; i < N; i++) {
		char h[64];
		if (!m(ds, names[i]))
			miss++;
		snprintf(h, sizeof(h), "www.%s", names[i]);
		if (!m(ds, h))
			miss++;
		rand_name(h, "nopqrstuvwxyz");
		if (m(ds, h))
			fp++;
	}
	CHECK(miss == 0, "%d entries not found", miss);
	CHECK(fp == 0, "%d false positives", fp);
	CHECK(fwd_domainset_count(ds) <= N && fwd_domainset_count(ds) > N / 2, "count %zu",
	    fwd_domainset_count(ds));
	fwd_domainset_free(ds);
	free(buf);
	free(names);
	END_CASE();
}

int main(void)
{
	test_basic();
	test_case_and_dots();
	test_prefixes();
	test_format();
	test_invalid();
	test_ip();
	test_dups_longest();
	test_empty();
	test_long_host();
	test_file();
	test_random();
	return check_done();
}
