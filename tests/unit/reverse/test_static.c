/*
 * Unit tests for reverse/static: safe resolution under a temporary root
 * (traversal in every spelling, symlinks inside and outside, index.html,
 * directory redirect, FIFOs, the O_NOFOLLOW fallback), MIME types, ETag,
 * HTTP dates, RFC 9110 preconditions, byte ranges and If-Range.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "reverse/static.h"

static char base[PATH_MAX], root[PATH_MAX + 8];

static void put(const char *rel, const char *content)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
}

static void mk(const char *rel)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	if (mkdir(p, 0755) != 0) {
		perror(p);
		exit(2);
	}
}

static void lnk(const char *target, const char *rel)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	if (symlink(target, p) != 0) {
		perror(p);
		exit(2);
	}
}

static void setup(void)
{
	char tmpl[] = "/tmp/gw-static-XXXXXX";
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(base, sizeof(base), "%s", tmpl);
	snprintf(root, sizeof(root), "%s/www", base);
	put("secret.txt", "top secret\n");
	mk("www");
	put("www/index.html", "<h1>root</h1>\n");
	put("www/a.txt", "hello world\n");
	put("www/style.CSS", "body{}");
	put("www/noext", "x");
	put("www/%2e%2e", "literal name");
	mk("www/sub");
	put("www/sub/index.html", "<h1>sub</h1>\n");
	put("www/sub/deep.js", "1;");
	mk("www/empty");
	mk("www/dirindex");
	mk("www/dirindex/index.html");
	lnk("a.txt", "www/link_in");
	lnk("sub", "www/link_dir_in");
	lnk("../secret.txt", "www/link_out");
	lnk("../../secret.txt", "www/sub/link_out2");
	lnk("/etc/passwd", "www/link_abs");
	lnk("..", "www/link_up");
	lnk("/proc/self/root/etc/passwd", "www/link_magic");
	put("www/noperm.txt", "no");
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/www/noperm.txt", base);
	chmod(p, 0);
	snprintf(p, sizeof(p), "%s/www/fifo", base);
	if (mkfifo(p, 0644) != 0)
		perror("mkfifo");
}

static void teardown(void)
{
	char cmd[PATH_MAX * 2];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", base);
}

/* Open path, return status, optionally the content (first 63 bytes). */
static int op(const char *path, char *content, struct rev_static_file *fo)
{
	struct rev_static_file f;
	int st = rev_static_open(root, path, strlen(path), &f);
	if (content)
		content[0] = '\0';
	if (st == REV_STATIC_OK) {
		if (content) {
			ssize_t n = read(f.fd, content, 63);
			content[n > 0 ? n : 0] = '\0';
		}
		if (fo)
			*fo = f;
		close(f.fd);
	} else if (f.fd != -1) {
		fprintf(stderr, "fd not -1 on status %d\n", st);
		return -999;
	}
	return st;
}

static void test_open(int openat2_on)
{
	char c[64];
	struct rev_static_file f;
	rev_static_use_openat2(openat2_on);

	BEGIN_CASE(openat2_on ? "open: plain files (openat2)" : "open: plain files (walk)");
	int st = op("/a.txt", c, &f);
	CHECK(st == 200 && strcmp(c, "hello world\n") == 0 && f.size == 12, "%d '%s'", st, c);
	CHECK(st == 200 && strcmp(f.content_type, "text/plain; charset=utf-8") == 0, "type %s", f.content_type);
	CHECK(f.mtime.tv_sec > 0, "mtime");
	CHECK(op("/a.txt?x=/../../etc/passwd", c, NULL) == 200 && strcmp(c, "hello world\n") == 0, "query");
	CHECK(op("/a.txt#frag", c, NULL) == 200, "fragment");
	CHECK(op("/%61.txt", c, NULL) == 200 && strcmp(c, "hello world\n") == 0, "encoded letter");
	CHECK(op("//a.txt", c, NULL) == 200, "empty segment");
	CHECK(op("/./a.txt", c, NULL) == 200, "dot segment");
	CHECK(op("/sub/./deep.js", c, &f) == 200 && strcmp(f.content_type, "text/javascript; charset=utf-8") == 0,
	    "js");
	CHECK(op("/style.CSS", c, &f) == 200 && strcmp(f.content_type, "text/css; charset=utf-8") == 0,
	    "upper-case extension");
	CHECK(op("/noext", c, &f) == 200 && strcmp(f.content_type, "application/octet-stream") == 0, "no ext");
	CHECK(op("/missing", c, NULL) == 404, "missing");
	CHECK(op("/a.txt/", c, NULL) == 404, "file with trailing slash");
	CHECK(op("/a.txt/x", c, NULL) == 404, "file as dir");
	END_CASE();

	BEGIN_CASE(openat2_on ? "open: directories (openat2)" : "open: directories (walk)");
	CHECK(op("/", c, &f) == 200 && strcmp(c, "<h1>root</h1>\n") == 0 &&
	    strcmp(f.content_type, "text/html; charset=utf-8") == 0, "root index '%s'", c);
	CHECK(op("/?q=1", c, NULL) == 200 && strcmp(c, "<h1>root</h1>\n") == 0, "root index with query");
	CHECK(op("/sub", c, NULL) == 301, "dir without slash: redirect");
	CHECK(op("/sub?q=1", c, NULL) == 301, "dir without slash, query: redirect");
	CHECK(op("/sub/", c, NULL) == 200 && strcmp(c, "<h1>sub</h1>\n") == 0, "sub index '%s'", c);
	CHECK(op("/sub//", c, NULL) == 200 && strcmp(c, "<h1>sub</h1>\n") == 0, "sub index, double slash");
	CHECK(op("/sub/.", c, NULL) == 301, "'/sub/.' has no trailing slash");
	CHECK(op("/empty/", c, NULL) == 404, "no index: no listing");
	CHECK(op("/dirindex/", c, NULL) == 404, "index.html is a directory");
	END_CASE();

	BEGIN_CASE(openat2_on ? "open: traversal (openat2)" : "open: traversal (walk)");
	static const char *const bad[] = {
		"/../secret.txt", "/..", "/../", "/sub/../a.txt", "/sub/..", "/%2e%2e/secret.txt",
		"/%2E%2e/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt", "/..%2fsecret.txt",
		"/sub%2fdeep.js", "/sub%2Fdeep.js", "/a.txt%00.html", "/%00", "/%zz", "/%2", "/%", "/a%2",
		"a.txt", "", "?/a.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int s = op(bad[i], c, NULL);
		CHECK(s == 400, "'%s' -> %d", bad[i], s);
	}
	/* a literal NUL byte inside the given length */
	struct rev_static_file f2;
	CHECK(rev_static_open(root, "/a.txt\0.html", 12, &f2) == 400 && f2.fd == -1, "literal NUL");
	/* double encoding decodes once: a literal file named "%2e%2e" */
	CHECK(op("/%252e%252e/secret.txt", c, NULL) == 404, "double-encoded traversal");
	CHECK(op("/%252e%252e", c, NULL) == 200 && strcmp(c, "literal name") == 0, "literal %%2e%%2e file");
	CHECK(op("/..secret", c, NULL) == 404, "'..secret' is just a name");
	char longp[PATH_MAX + 100];
	longp[0] = '/';
	memset(longp + 1, 'a', sizeof(longp) - 2);
	longp[sizeof(longp) - 1] = '\0';
	CHECK(op(longp, c, NULL) == 400, "too long");
	END_CASE();

	BEGIN_CASE(openat2_on ? "open: symlinks (openat2)" : "open: symlinks (walk)");
	/* escaping symlinks fail in both modes */
	CHECK(op("/link_out", c, NULL) == 404, "symlink to outside: %s", c);
	CHECK(op("/sub/link_out2", c, NULL) == 404, "nested symlink to outside");
	CHECK(op("/link_abs", c, NULL) == 404, "absolute symlink");
	CHECK(op("/link_up/secret.txt", c, NULL) == 404, "symlink to ..");
	CHECK(op("/link_magic", c, NULL) == 404, "magic link");
	if (openat2_on) {
		/* inside the root symlinks work (when the kernel has openat2) */
		int s = op("/link_in", c, &f);
		CHECK(s == 200 && strcmp(c, "hello world\n") == 0 &&
		    strcmp(f.content_type, "application/octet-stream") == 0, "symlink inside: %d", s);
		s = op("/link_dir_in/deep.js", c, NULL);
		CHECK(s == 200 && strcmp(c, "1;") == 0, "symlinked dir inside: %d", s);
		CHECK(op("/link_dir_in/", c, NULL) == 200 && strcmp(c, "<h1>sub</h1>\n") == 0, "its index");
	} else {
		CHECK(op("/link_in", c, NULL) == 404, "walk: no symlinks at all");
		CHECK(op("/link_dir_in/deep.js", c, NULL) == 404, "walk: no symlinked dirs");
	}
	END_CASE();

	BEGIN_CASE(openat2_on ? "open: special files (openat2)" : "open: special files (walk)");
	CHECK(op("/fifo", c, NULL) == 404, "fifo: not served, did not block");
	if (geteuid() != 0)
		CHECK(op("/noperm.txt", c, NULL) == 403, "permission denied");
	END_CASE();
}

static void test_open_misc(void)
{
	BEGIN_CASE("open: root problems, openat");
	struct rev_static_file f;
	CHECK(rev_static_open("/nonexistent/gw-root", "/a.txt", 6, &f) == 404 && f.fd == -1, "no root");
	int rfd = open(root, O_PATH | O_DIRECTORY);
	CHECK(rfd >= 0, "root fd");
	CHECK(rev_static_openat(rfd, "/a.txt", 6, &f) == 200 && f.size == 12, "openat");
	if (f.fd >= 0)
		close(f.fd);
	CHECK(rev_static_openat(rfd, "/a.txt", 3, &f) == 404, "length respected ('/a.')");
	CHECK(fcntl(rfd, F_GETFD) >= 0, "root fd not consumed");
	close(rfd);
	END_CASE();

	BEGIN_CASE("open: dotfiles only with REV_STATIC_DOTFILES");
	mk("www/.git");
	put("www/.git/config", "secret");
	put("www/.env", "secret");
	mk("www/.well-known");
	put("www/.well-known/x.txt", "public");
	mk("www/d");
	put("www/d/.htpasswd", "secret");
	static const char *const hidden[] = { "/.env", "/.git/config", "/d/.htpasswd", "/%2eenv",
		"/%2Egit/config", "/d/%2e%68tpasswd", "/./.env", "//.env", "/.git/", "/d/.well-known" };
	for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
		CHECK(rev_static_open(root, hidden[i], strlen(hidden[i]), &f) == 404 && f.fd == -1,
		    "%s hidden", hidden[i]);
	}
	CHECK(rev_static_open_opt(root, "/.env", 5, REV_STATIC_DOTFILES, &f) == 200, "opt in");
	if (f.fd >= 0)
		close(f.fd);
	CHECK(rev_static_open(root, "/.well-known/x.txt", 18, &f) == 200, ".well-known served");
	if (f.fd >= 0)
		close(f.fd);
	CHECK(rev_static_open(root, "/a.txt", 6, &f) == 200, "plain names unaffected");
	if (f.fd >= 0)
		close(f.fd);
	END_CASE();
}

static void test_mime(void)
{
	BEGIN_CASE("mime table");
	static const char *const m[][2] = {
		{ "x.html", "text/html; charset=utf-8" }, { "x.HTM", "text/html; charset=utf-8" },
		{ "x.css", "text/css; charset=utf-8" }, { "x.js", "text/javascript; charset=utf-8" },
		{ "x.json", "application/json" }, { "x.png", "image/png" }, { "x.jpg", "image/jpeg" },
		{ "x.jpeg", "image/jpeg" }, { "x.gif", "image/gif" }, { "x.svg", "image/svg+xml" },
		{ "x.webp", "image/webp" }, { "x.ico", "image/x-icon" }, { "x.txt", "text/plain; charset=utf-8" },
		{ "x.xml", "text/xml; charset=utf-8" }, { "x.pdf", "application/pdf" },
		{ "x.wasm", "application/wasm" }, { "x.woff", "font/woff" }, { "x.woff2", "font/woff2" },
		{ "x.mp4", "video/mp4" }, { "x.zip", "application/zip" },
		{ "x.tar.gz", "application/gzip" }, { "dir.d/file", "application/octet-stream" },
		{ "x.", "application/octet-stream" }, { ".htaccess", "application/octet-stream" },
		{ "x.exe", "application/octet-stream" }, { "", "application/octet-stream" },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *t = rev_static_mime(m[i][0], strlen(m[i][0]));
		CHECK(strcmp(t, m[i][1]) == 0, "%s -> %s", m[i][0], t);
	}
	END_CASE();
}

#define T0 ((time_t)784111777)   /* Sun, 06 Nov 1994 08:49:37 GMT */

static void test_dates(void)
{
	BEGIN_CASE("http dates");
	char b[REV_HTTP_DATE_MAX];
	CHECK(rev_http_date(T0, b) == 29 && strcmp(b, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "%s", b);
	CHECK(rev_http_date(0, b) == 29 && strcmp(b, "Thu, 01 Jan 1970 00:00:00 GMT") == 0, "%s", b);
	time_t t = 0;
#define P(s) rev_http_date_parse(s, strlen(s), &t)
	CHECK(P("Sun, 06 Nov 1994 08:49:37 GMT") == 0 && t == T0, "imf");
	CHECK(P("Sunday, 06-Nov-94 08:49:37 GMT") == 0 && t == T0, "rfc850");
	CHECK(P("Sun Nov  6 08:49:37 1994") == 0 && t == T0, "asctime");
	CHECK(P(" Sun, 06 Nov 1994 08:49:37 GMT ") == 0 && t == T0, "OWS");
	CHECK(P("Tue, 29 Feb 2000 12:00:00 GMT") == 0 && t == 951825600, "leap day");
	CHECK(P("Tuesday, 01-Jan-30 00:00:00 GMT") == 0 && t == 1893456000, "rfc850 2030");
	CHECK(P("Thu, 01 Jan 1970 00:00:00 GMT") == 0 && t == 0, "epoch");
	rev_http_date(1700000000, b);
	CHECK(P(b) == 0 && t == 1700000000, "round trip %s", b);
	static const char *const bad[] = {
		"", "garbage", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 29 Feb 1900 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 6 Nov 1994 08:49:37 GMT", "Sun 06 Nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", "Funday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov 6 08:49:37 1994", "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:60:37 GMT",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(P(bad[i]) == -1, "'%s' accepted", bad[i]);
	CHECK(rev_http_date_parse(NULL, 0, &t) == -1, "NULL");
#undef P
	END_CASE();

	BEGIN_CASE("etag");
	struct rev_static_file f = { .fd = -1, .size = 12, .mtime = { T0, 5 } };
	char e[REV_STATIC_ETAG_MAX], want[64];
	snprintf(want, sizeof(want), "\"%llx-c\"", (unsigned long long)T0 * 1000000000ULL + 5);
	size_t n = rev_static_etag(&f, e, sizeof(e));
	CHECK(n == strlen(want) && strcmp(e, want) == 0, "%s vs %s", e, want);
	f.mtime.tv_nsec = 6;
	char e2[REV_STATIC_ETAG_MAX];
	rev_static_etag(&f, e2, sizeof(e2));
	CHECK(strcmp(e, e2) != 0, "changes with mtime");
	CHECK(rev_static_etag(&f, e2, 5) == 0 && e2[0] == '\0', "small buffer");
	END_CASE();
}

#define ETAG "\"5a-c\""
#define HDR(field, s) rq.field = (s), rq.field##_len = strlen(s)

static int cond(struct rev_static_req rq)
{
	return rev_static_conditional(&rq, ETAG, strlen(ETAG), T0);
}

static void test_conditional(void)
{
	struct rev_static_req rq;
	const struct rev_static_req get = { .is_get = 1 };

	BEGIN_CASE("If-None-Match");
	rq = get;
	CHECK(cond(rq) == 200, "no headers");
	HDR(if_none_match, ETAG);
	CHECK(cond(rq) == 304, "match");
	HDR(if_none_match, "W/" ETAG);
	CHECK(cond(rq) == 304, "weak comparison");
	HDR(if_none_match, "\"x\", \"y\" ,W/" ETAG);
	CHECK(cond(rq) == 304, "in a list");
	HDR(if_none_match, "\"x\", \"y\"");
	CHECK(cond(rq) == 200, "no match");
	HDR(if_none_match, "*");
	CHECK(cond(rq) == 304, "star");
	HDR(if_none_match, "5a-c");
	CHECK(cond(rq) == 200, "unquoted: malformed, no match");
	HDR(if_none_match, ETAG);
	rq.is_get = 0;
	rq.is_head = 1;
	CHECK(cond(rq) == 304, "HEAD 304");
	rq.is_head = 0;
	CHECK(cond(rq) == 412, "other method: 412");
	END_CASE();

	BEGIN_CASE("If-Match");
	rq = get;
	HDR(if_match, ETAG);
	CHECK(cond(rq) == 200, "match");
	HDR(if_match, "W/" ETAG);
	CHECK(cond(rq) == 412, "weak never matches strongly");
	HDR(if_match, "*");
	CHECK(cond(rq) == 200, "star");
	HDR(if_match, "\"x\"," ETAG);
	CHECK(cond(rq) == 200, "list");
	HDR(if_match, "\"x\"");
	CHECK(cond(rq) == 412, "no match");
	HDR(if_match, "garbage");
	CHECK(cond(rq) == 412, "malformed");
	CHECK(rev_static_conditional(&rq, "W/\"5a-c\"", 8, T0) == 412, "our weak etag vs If-Match");
	END_CASE();

	BEGIN_CASE("If-Modified-Since / If-Unmodified-Since");
	rq = get;
	HDR(if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(cond(rq) == 304, "equal");
	HDR(if_modified_since, "Sun, 06 Nov 1994 08:49:36 GMT");
	CHECK(cond(rq) == 200, "modified since");
	HDR(if_modified_since, "Mon, 07 Nov 1994 08:49:37 GMT");
	CHECK(cond(rq) == 304, "later date");
	HDR(if_modified_since, "yesterday");
	CHECK(cond(rq) == 200, "invalid ignored");
	HDR(if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
	HDR(if_none_match, "\"other\"");
	CHECK(cond(rq) == 200, "If-None-Match present: IMS ignored");
	rq = get;
	rq.is_get = 0;
	HDR(if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(cond(rq) == 200, "IMS only for GET/HEAD");
	rq = get;
	HDR(if_unmodified_since, "Sun, 06 Nov 1994 08:49:36 GMT");
	CHECK(cond(rq) == 412, "modified after");
	HDR(if_unmodified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(cond(rq) == 200, "not modified after");
	HDR(if_unmodified_since, "Sun, 06 Nov 1994 08:49:36 GMT");
	HDR(if_match, ETAG);
	CHECK(cond(rq) == 200, "If-Match present: IUS ignored");
	rq = get;
	HDR(if_unmodified_since, "bogus");
	CHECK(cond(rq) == 200, "invalid IUS ignored");
	END_CASE();

	BEGIN_CASE("precondition precedence");
	rq = get;
	HDR(if_match, "\"nope\"");
	HDR(if_none_match, ETAG);
	CHECK(cond(rq) == 412, "If-Match failure first");
	rq = get;
	HDR(if_unmodified_since, "Sun, 06 Nov 1994 08:49:36 GMT");
	HDR(if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(cond(rq) == 412, "IUS before IMS");
	rq = get;
	HDR(if_match, ETAG);
	HDR(if_none_match, ETAG);
	CHECK(cond(rq) == 304, "If-Match ok then If-None-Match");
	END_CASE();
}

static int rng(struct rev_static_req rq, uint64_t size, struct rev_static_range *r)
{
	return rev_static_range(&rq, size, ETAG, strlen(ETAG), T0, r);
}

static void test_range(void)
{
	struct rev_static_req rq;
	const struct rev_static_req get = { .is_get = 1 };
	struct rev_static_range r;

	BEGIN_CASE("single ranges");
	static const struct {
		const char *h;
		int st;
		uint64_t first, last;
	} t[] = {
		{ "bytes=0-99", 206, 0, 99 },
		{ "bytes=900-", 206, 900, 999 },
		{ "bytes=-100", 206, 900, 999 },
		{ "bytes=-2000", 206, 0, 999 },
		{ "bytes=500-5000", 206, 500, 999 },
		{ "bytes=999-999", 206, 999, 999 },
		{ "bytes=0-0", 206, 0, 0 },
		{ "BYTES=1-2", 206, 1, 2 },
		{ "bytes= 1-2 ", 206, 1, 2 },
		{ "bytes=1-2,", 206, 1, 2 },
		{ "bytes=0-99999999999999999999999", 206, 0, 999 },
		{ "bytes=-99999999999999999999999", 206, 0, 999 },
		{ "bytes=1000-", 416, 0, 0 },
		{ "bytes=1000-2000", 416, 0, 0 },
		{ "bytes=-0", 416, 0, 0 },
		{ "bytes=99999999999999999999999-", 416, 0, 0 },
		{ "bytes=0-1,5-6", 200, 0, 999 },
		{ "bytes=0-1, 2000-3000", 200, 0, 999 },
		{ "bytes=5-1", 200, 0, 999 },
		{ "bytes=abc", 200, 0, 999 },
		{ "bytes=", 200, 0, 999 },
		{ "bytes=-", 200, 0, 999 },
		{ "bytes=1-2x", 200, 0, 999 },
		{ "bytes=--1", 200, 0, 999 },
		{ "bytes 0-1", 200, 0, 999 },
		{ "items=0-1", 200, 0, 999 },
		{ "", 200, 0, 999 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rq = get;
		HDR(range, t[i].h);
		int st = rng(rq, 1000, &r);
		CHECK(st == t[i].st, "'%s' -> %d", t[i].h, st);
		if (st == 206 || st == 200)
			CHECK(r.first == t[i].first && r.last == t[i].last &&
			    r.length == t[i].last - t[i].first + 1, "'%s' -> %llu-%llu/%llu", t[i].h,
			    (unsigned long long)r.first, (unsigned long long)r.last, (unsigned long long)r.length);
	}
	END_CASE();

	BEGIN_CASE("range: when ignored");
	rq = get;
	CHECK(rng(rq, 1000, &r) == 200 && r.length == 1000, "no Range");
	HDR(range, "bytes=0-1");
	rq.is_get = 0;
	rq.is_head = 1;
	CHECK(rng(rq, 1000, &r) == 200 && r.length == 1000, "HEAD");
	rq = get;
	HDR(range, "bytes=0-1");
	CHECK(rng(rq, 0, &r) == 200 && r.length == 0, "empty file");
	HDR(range, "bytes=-5");
	CHECK(rng(rq, 0, &r) == 200 && r.length == 0, "empty file, suffix");
	HDR(range, "bytes=-5");
	CHECK(rng(rq, 3, &r) == 206 && r.first == 0 && r.last == 2, "suffix longer than small file");
	END_CASE();

	BEGIN_CASE("If-Range");
	rq = get;
	HDR(range, "bytes=10-19");
	HDR(if_range, ETAG);
	CHECK(rng(rq, 1000, &r) == 206 && r.first == 10, "etag matches");
	HDR(if_range, "\"other\"");
	CHECK(rng(rq, 1000, &r) == 200 && r.length == 1000, "etag differs");
	HDR(if_range, "W/" ETAG);
	CHECK(rng(rq, 1000, &r) == 200, "weak etag never matches");
	HDR(if_range, "Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(rng(rq, 1000, &r) == 206, "date equal");
	HDR(if_range, "Sun, 06 Nov 1994 08:49:38 GMT");
	CHECK(rng(rq, 1000, &r) == 200, "date differs");
	HDR(if_range, "junk");
	CHECK(rng(rq, 1000, &r) == 200, "junk");
	HDR(if_range, ETAG ", \"x\"");
	CHECK(rng(rq, 1000, &r) == 200, "a list is not an If-Range");
	rq = get;
	HDR(if_range, ETAG);
	CHECK(rng(rq, 1000, &r) == 200, "If-Range without Range");
	rq = get;
	HDR(range, "bytes=2000-");
	HDR(if_range, "\"other\"");
	CHECK(rng(rq, 1000, &r) == 200, "If-Range fails: no 416 either");
	END_CASE();

	BEGIN_CASE("Content-Range");
	char b[64];
	r.first = 0;
	r.last = 99;
	CHECK(rev_static_content_range(&r, 1000, b, sizeof(b)) == 15 && strcmp(b, "bytes 0-99/1000") == 0, "%s", b);
	CHECK(rev_static_content_range(NULL, 1000, b, sizeof(b)) == 12 && strcmp(b, "bytes */1000") == 0, "%s", b);
	CHECK(rev_static_content_range(&r, 1000, b, 5) == 0, "small buffer");
	END_CASE();
}

int main(void)
{
	setup();
	test_open(1);
	test_open(0);
	rev_static_use_openat2(1);
	test_open_misc();
	test_mime();
	test_dates();
	test_conditional();
	test_range();
	teardown();
	return check_done();
}
