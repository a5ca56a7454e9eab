/*
 * reverse/static: safe path resolution under a static root (percent-decoding,
 * dot-segment refusal, openat2 RESOLVE_BENEATH with an O_NOFOLLOW walk as
 * fallback), the MIME table, and the pure HTTP logic of static responses:
 * ETag, HTTP dates, RFC 9110 preconditions and single byte ranges.
 */
#include "core/http1.h"
#include "core/httpdate.h"
#include "reverse/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- path decoding ---- */

/*
 * Decode the path part of p into out as a relative path "a/b/c" (no leading
 * slash, "." and empty segments dropped).  Returns 0 or REV_STATIC_BAD.
 * *trailing is set when the raw path ends with '/'.
 */
static int decode_path(const char *p, size_t len, char *out, size_t outsz, size_t *outlen, int *trailing,
    int *dotfile)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '?' || p[i] == '#') {
			len = i;
			break;
		}
	if (len == 0 || p[0] != '/')
		return REV_STATIC_BAD;
	*trailing = p[len - 1] == '/';
	size_t i = 1;
	while (i <= len) {
		/* one raw segment p[i..j) */
		size_t j = i;
		while (j < len && p[j] != '/')
			j++;
		size_t seg = n;            /* where this segment starts in out */
		if (n > 0) {
			if (n + 1 >= outsz)
				return REV_STATIC_BAD;
			out[n++] = '/';
			seg = n;
		}
		for (size_t k = i; k < j; k++) {
			int c = (unsigned char)p[k];
			if (c == '%') {
				int hi = k + 2 < j ? gw_hexval(p[k + 1]) : -1;
				int lo = k + 2 < j ? gw_hexval(p[k + 2]) : -1;
				if (hi < 0 || lo < 0)
					return REV_STATIC_BAD;
				c = hi * 16 + lo;
				k += 2;
				if (c == '/')
					return REV_STATIC_BAD;
			}
			if (c == 0)
				return REV_STATIC_BAD;
			if (n + 1 >= outsz)
				return REV_STATIC_BAD;
			out[n++] = (char)c;
		}
		size_t sl = n - seg;
		if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.')
			return REV_STATIC_BAD;
		if (sl == 0 || (sl == 1 && out[seg] == '.')) {
			/* drop the segment and the separator we put before it */
			n = seg > 0 ? seg - 1 : 0;
		} else if (out[seg] == '.' && !(seg == 0 && sl == 11 &&
		    memcmp(out, ".well-known", 11) == 0)) {
			*dotfile = 1;          /* decoded: "%2egit" is ".git" too */
		}
		i = j + 1;
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

/* ---- opening beneath the root ---- */

/* Workers may clear this concurrently on ENOSYS: relaxed atomics, no race. */
static int use_openat2 = 1;

void rev_static_use_openat2(int on)
{
	__atomic_store_n(&use_openat2, on ? 1 : 0, __ATOMIC_RELAXED);
}

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* Walk rel one component at a time, never following a symlink. */
static int open_walk(int rootfd, const char *rel)
{
	char buf[PATH_MAX];
	size_t len = strlen(rel);
	if (len == 0)
		return openat(rootfd, ".", OPEN_FLAGS | O_DIRECTORY);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, len + 1);
	int cur = rootfd;
	char *comp = buf;
	for (;;) {
		char *slash = strchr(comp, '/');
		int fd;
		if (slash) {
			*slash = '\0';
			fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else {
			fd = openat(cur, comp, OPEN_FLAGS | O_NOFOLLOW);
		}
		int saved = errno;
		if (cur != rootfd)
			close(cur);
		if (fd < 0) {
			errno = saved;
			return -1;
		}
		if (!slash)
			return fd;
		cur = fd;
		comp = slash + 1;
	}
}

static int open_beneath(int rootfd, const char *rel)
{
	if (__atomic_load_n(&use_openat2, __ATOMIC_RELAXED)) {
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = OPEN_FLAGS;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		long fd = syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno == ENOSYS)
			__atomic_store_n(&use_openat2, 0, __ATOMIC_RELAXED);   /* old kernel: stop trying */
		else if (errno != EPERM)    /* EPERM: maybe a seccomp filter; walk instead */
			return -1;
	}
	return open_walk(rootfd, rel);
}

static int errno_status(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
		return REV_STATIC_FORBIDDEN;
	case ENOENT:
	case ENOTDIR:
	case ELOOP:
	case EXDEV:           /* openat2: the path would leave the root */
	case ENAMETOOLONG:
	case ENXIO:
	case ENODEV:
		return REV_STATIC_NOT_FOUND;
	default:
		return REV_STATIC_ERROR;
	}
}

static int fill(int fd, const struct stat *st, const char *name, size_t namelen, struct rev_static_file *out)
{
	out->fd = fd;
	out->size = (uint64_t)st->st_size;
	out->mtime = st->st_mtim;
	out->content_type = rev_static_mime(name, namelen);
	return REV_STATIC_OK;
}

int rev_static_openat(int rootfd, const char *urlpath, size_t len, struct rev_static_file *out)
{
	return rev_static_openat_opt(rootfd, urlpath, len, 0, out);
}

int rev_static_openat_opt(int rootfd, const char *urlpath, size_t len, unsigned opts,
    struct rev_static_file *out)
{
	char rel[PATH_MAX];
	size_t rl = 0;
	int trailing = 0, dotfile = 0;
	out->fd = -1;
	out->size = 0;
	out->mtime.tv_sec = 0;
	out->mtime.tv_nsec = 0;
	out->content_type = NULL;
	if (!urlpath)
		return REV_STATIC_BAD;
	/* leave room for "/index.html" */
	if (decode_path(urlpath, len, rel, sizeof(rel) - 12, &rl, &trailing, &dotfile) != 0)
		return REV_STATIC_BAD;
	if (dotfile && !(opts & REV_STATIC_DOTFILES))
		return REV_STATIC_NOT_FOUND;   /* as if absent: do not confirm it exists */
	int fd = open_beneath(rootfd, rel);
	if (fd < 0)
		return errno_status(errno);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return errno_status(e);
	}
	if (S_ISREG(st.st_mode) && !trailing)
		return fill(fd, &st, rel, rl, out);
	close(fd);
	if (!S_ISDIR(st.st_mode))
		return REV_STATIC_NOT_FOUND;   /* also "file/" (as POSIX: ENOTDIR) */
	if (!trailing)
		return REV_STATIC_REDIRECT;
	static const char index_name[] = "index.html";
	if (rl > 0)
		rel[rl++] = '/';
	memcpy(rel + rl, index_name, sizeof(index_name));
	rl += sizeof(index_name) - 1;
	fd = open_beneath(rootfd, rel);
	if (fd < 0)
		return errno_status(errno);
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return errno_status(e);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return REV_STATIC_NOT_FOUND;
	}
	return fill(fd, &st, rel, rl, out);
}

int rev_static_open(const char *root, const char *urlpath, size_t len, struct rev_static_file *out)
{
	return rev_static_open_opt(root, urlpath, len, 0, out);
}

int rev_static_open_opt(const char *root, const char *urlpath, size_t len, unsigned opts,
    struct rev_static_file *out)
{
	out->fd = -1;
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		out->size = 0;
		out->content_type = NULL;
		return errno == EACCES ? REV_STATIC_FORBIDDEN :
		    (errno == ENOENT || errno == ENOTDIR) ? REV_STATIC_NOT_FOUND : REV_STATIC_ERROR;
	}
	int r = rev_static_openat_opt(rootfd, urlpath, len, opts, out);
	close(rootfd);
	return r;
}

/* ---- MIME ---- */

static const struct {
	const char *ext;
	const char *type;
} mime_table[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "json", "application/json" },
	{ "map", "application/json" },
	{ "webmanifest", "application/manifest+json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "md", "text/markdown; charset=utf-8" },
	{ "csv", "text/csv; charset=utf-8" },
	{ "xml", "text/xml; charset=utf-8" },
	{ "rss", "application/rss+xml" },
	{ "atom", "application/atom+xml" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "avif", "image/avif" },
	{ "ico", "image/x-icon" },
	{ "bmp", "image/bmp" },
	{ "pdf", "application/pdf" },
	{ "wasm", "application/wasm" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "ttf", "font/ttf" },
	{ "otf", "font/otf" },
	{ "mp4", "video/mp4" },
	{ "webm", "video/webm" },
	{ "ogg", "audio/ogg" },
	{ "mp3", "audio/mpeg" },
	{ "wav", "audio/wav" },
	{ "zip", "application/zip" },
	{ "gz", "application/gzip" },
	{ "tar", "application/x-tar" },
};

const char *rev_static_mime(const char *name, size_t len)
{
	static const char dflt[] = "application/octet-stream";
	size_t dot = len;
	for (size_t i = len; i > 0; i--) {
		if (name[i - 1] == '/')
			break;
		if (name[i - 1] == '.') {
			dot = i - 1;
			break;
		}
	}
	if (dot == len || dot + 1 == len)
		return dflt;
	const char *ext = name + dot + 1;
	size_t el = len - dot - 1;
	for (size_t i = 0; i < sizeof(mime_table) / sizeof(mime_table[0]); i++) {
		if (strlen(mime_table[i].ext) == el && strncasecmp(mime_table[i].ext, ext, el) == 0)
			return mime_table[i].type;
	}
	return dflt;
}

/* ---- ETag and dates ---- */

size_t rev_static_etag(const struct rev_static_file *f, char *buf, size_t bufsz)
{
	uint64_t ns = (uint64_t)f->mtime.tv_sec * 1000000000ULL + (uint64_t)f->mtime.tv_nsec;
	int n = snprintf(buf, bufsz, "\"%llx-%llx\"", (unsigned long long)ns, (unsigned long long)f->size);
	if (n < 0 || (size_t)n >= bufsz) {
		if (bufsz)
			buf[0] = '\0';
		return 0;
	}
	return (size_t)n;
}

/* ---- entity tags ---- */

struct etag {
	int weak;
	const char *op;     /* opaque part, without quotes */
	size_t oplen;
};

/* Parse one entity-tag at s[*i]; 0 ok (advances *i), -1 malformed. */
static int etag_parse(const char *s, size_t len, size_t *i, struct etag *t)
{
	size_t k = *i;
	t->weak = 0;
	if (k + 1 < len && s[k] == 'W' && s[k + 1] == '/') {
		t->weak = 1;
		k += 2;
	}
	if (k >= len || s[k] != '"')
		return -1;
	k++;
	size_t start = k;
	while (k < len && s[k] != '"') {
		unsigned char c = (unsigned char)s[k];
		if (c < 0x21 || c == 0x7f)
			return -1;
		k++;
	}
	if (k >= len)
		return -1;
	t->op = s + start;
	t->oplen = k - start;
	*i = k + 1;
	return 0;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* The value, trimmed, is exactly "*". */
static int is_star(const char *s, size_t len)
{
	while (len && is_ows(s[len - 1]))
		len--;
	while (len && is_ows(*s)) {
		s++;
		len--;
	}
	return len == 1 && s[0] == '*';
}

/* Does any tag in the list match ours?  Malformed lists match nothing. */
static int etag_list_match(const char *s, size_t len, const struct etag *ours, int strong)
{
	size_t i = 0;
	int found = 0;
	for (;;) {
		while (i < len && (is_ows(s[i]) || s[i] == ','))
			i++;
		if (i >= len)
			return found;
		struct etag t;
		if (etag_parse(s, len, &i, &t) != 0)
			return 0;
		if (t.oplen == ours->oplen && memcmp(t.op, ours->op, t.oplen) == 0 &&
		    (!strong || (!t.weak && !ours->weak)))
			found = 1;
		while (i < len && is_ows(s[i]))
			i++;
		if (i < len && s[i] != ',')
			return 0;
	}
}

static int our_etag(const char *etag, size_t etag_len, struct etag *t)
{
	size_t i = 0;
	if (!etag || etag_parse(etag, etag_len, &i, t) != 0) {
		t->weak = 1;
		t->op = "";
		t->oplen = 0;
		return -1;
	}
	return 0;
}

int rev_static_conditional(const struct rev_static_req *rq, const char *etag, size_t etag_len,
    time_t mtime)
{
	struct etag ours;
	int have_etag = our_etag(etag, etag_len, &ours) == 0;
	int safe = rq->is_get || rq->is_head;
	time_t t;

	if (rq->if_match) {
		if (!is_star(rq->if_match, rq->if_match_len) &&
		    !(have_etag && etag_list_match(rq->if_match, rq->if_match_len, &ours, 1)))
			return 412;
	} else if (rq->if_unmodified_since &&
	    gw_httpdate_parse(rq->if_unmodified_since, rq->if_unmodified_since_len, &t) == 0) {
		if (mtime > t)
			return 412;
	}
	if (rq->if_none_match) {
		if (is_star(rq->if_none_match, rq->if_none_match_len) ||
		    (have_etag && etag_list_match(rq->if_none_match, rq->if_none_match_len, &ours, 0)))
			return safe ? 304 : 412;
	} else if (safe && rq->if_modified_since &&
	    gw_httpdate_parse(rq->if_modified_since, rq->if_modified_since_len, &t) == 0) {
		if (mtime <= t)
			return 304;
	}
	return 200;
}

/* ---- ranges ---- */

/* Digits at s[*i] (at least one), saturating at UINT64_MAX. */
static int digits(const char *s, size_t len, size_t *i, uint64_t *v)
{
	size_t k = *i;
	uint64_t x = 0;
	while (k < len && s[k] >= '0' && s[k] <= '9') {
		unsigned d = (unsigned)(s[k] - '0');
		x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
		k++;
	}
	if (k == *i)
		return -1;
	*i = k;
	*v = x;
	return 0;
}

static int if_range_matches(const struct rev_static_req *rq, const char *etag, size_t etag_len, time_t mtime)
{
	const char *s = rq->if_range;
	size_t len = rq->if_range_len;
	while (len && is_ows(s[len - 1]))
		len--;
	while (len && is_ows(*s)) {
		s++;
		len--;
	}
	if (len > 0 && (s[0] == '"' || (len > 1 && s[0] == 'W' && s[1] == '/'))) {
		struct etag ours, t;
		size_t i = 0;
		if (our_etag(etag, etag_len, &ours) != 0 || etag_parse(s, len, &i, &t) != 0 || i != len)
			return 0;
		return !t.weak && !ours.weak && t.oplen == ours.oplen && memcmp(t.op, ours.op, t.oplen) == 0;
	}
	time_t t;
	return gw_httpdate_parse(s, len, &t) == 0 && t == mtime;
}

int rev_static_range(const struct rev_static_req *rq, uint64_t size, const char *etag, size_t etag_len,
    time_t mtime, struct rev_static_range *out)
{
	out->first = 0;
	out->last = size ? size - 1 : 0;
	out->length = size;
	if (!rq->is_get || !rq->range || size == 0)
		return 200;
	if (rq->if_range && !if_range_matches(rq, etag, etag_len, mtime))
		return 200;
	const char *s = rq->range;
	size_t len = rq->range_len, i = 6;
	if (len < 6 || strncasecmp(s, "bytes=", 6) != 0)
		return 200;
	/* exactly one non-empty range-spec */
	size_t nspec = 0, spec = 0;
	for (size_t k = i; k <= len; k++) {
		if (k == len || s[k] == ',') {
			int empty = 1;
			for (size_t m = i; m < k; m++)
				if (!is_ows(s[m]))
					empty = 0;
			if (!empty) {
				nspec++;
				spec = i;
			}
			i = k + 1;
		}
	}
	if (nspec != 1)
		return 200;       /* none (invalid) or several (we send the whole thing) */
	i = spec;
	while (i < len && is_ows(s[i]))
		i++;
	uint64_t first, last = UINT64_MAX;
	if (i < len && s[i] == '-') {
		uint64_t suffix;
		i++;
		if (digits(s, len, &i, &suffix) != 0)
			return 200;
		while (i < len && is_ows(s[i]))
			i++;
		if (i < len && s[i] != ',')
			return 200;
		if (suffix == 0)
			return 416;
		first = suffix >= size ? 0 : size - suffix;
		last = size - 1;
	} else {
		if (digits(s, len, &i, &first) != 0 || i >= len || s[i] != '-')
			return 200;
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9') {
			if (digits(s, len, &i, &last) != 0)
				return 200;
			if (last < first)
				return 200;     /* invalid range-spec: ignore the header */
		}
		while (i < len && is_ows(s[i]))
			i++;
		if (i < len && s[i] != ',')
			return 200;
		if (first >= size)
			return 416;
		if (last >= size)
			last = size - 1;
	}
	out->first = first;
	out->last = last;
	out->length = last - first + 1;
	return 206;
}

size_t rev_static_content_range(const struct rev_static_range *r, uint64_t size, char *buf, size_t bufsz)
{
	int n;
	if (r)
		n = snprintf(buf, bufsz, "bytes %llu-%llu/%llu", (unsigned long long)r->first,
		    (unsigned long long)r->last, (unsigned long long)size);
	else
		n = snprintf(buf, bufsz, "bytes */%llu", (unsigned long long)size);
	if (n < 0 || (size_t)n >= bufsz) {
		if (bufsz)
			buf[0] = '\0';
		return 0;
	}
	return (size_t)n;
}
