/*
 * cluster/fileset: packing, staging and swapping the pair's shared
 * configuration files (see fileset.h).  Main thread; plain POSIX calls.
 */
#include "cluster/fileset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "GHSET1\n"
#define MAX_DEPTH 8

struct names {
	char **v;
	size_t n;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* The regular files under base/rel (rel "" = base), dotted names skipped. */
static int walk(const char *base, const char *rel, int depth, struct names *ns, char *err, size_t errlen)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", base, rel) >= sizeof path) {
		snprintf(err, errlen, "%s/%s: path too long", base, rel);
		return -1;
	}
	if ((d = opendir(path)) == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char sub[PATH_MAX], full[PATH_MAX];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= 1024) {
			snprintf(err, errlen, "%s/%s: name too long", base, rel);
			rc = -1;
			break;
		}
		if ((size_t)snprintf(full, sizeof full, "%s/%s", base, sub) >= sizeof full || stat(full, &st) != 0) {
			snprintf(err, errlen, "cannot read %s: %s", full, strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			if (depth >= MAX_DEPTH) {
				snprintf(err, errlen, "%s: more than %d directory levels", full, MAX_DEPTH);
				rc = -1;
			} else {
				rc = walk(base, sub, depth + 1, ns, err, errlen);
			}
		} else if (S_ISREG(st.st_mode)) {
			char **nv;
			if (ns->n == CLU_FILESET_MAX_FILES) {
				snprintf(err, errlen, "%s: more than %d files", base, CLU_FILESET_MAX_FILES);
				rc = -1;
			} else if ((nv = realloc(ns->v, (ns->n + 1) * sizeof *nv)) == NULL ||
			    (ns->v = nv, (nv[ns->n] = strdup(sub)) == NULL)) {
				snprintf(err, errlen, "out of memory");
				rc = -1;
			} else {
				ns->n++;
			}
		}
	}
	closedir(d);
	return rc;
}

/* Append path's bytes to *buf as one framed file; 0 or -1 with err. */
static int add_file(const char *base, const char *name, char **buf, size_t *len, char *err, size_t errlen)
{
	char full[PATH_MAX], head[1100];
	int fd;
	struct stat st;
	size_t hl, want;
	char *nb;

	snprintf(full, sizeof full, "%s/%s", base, name);
	if ((fd = open(full, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read %s: %s", full, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	want = (size_t)st.st_size;
	hl = (size_t)snprintf(head, sizeof head, "%zu %s\n", want, name);
	if (*len + hl + want > CLU_FILESET_MAX_BYTES || (nb = realloc(*buf, *len + hl + want + 1)) == NULL) {
		snprintf(err, errlen, "%s: the shared files are over %d bytes", base, CLU_FILESET_MAX_BYTES);
		close(fd);
		return -1;
	}
	*buf = nb;
	memcpy(nb + *len, head, hl);
	for (size_t got = 0; got < want;) {
		ssize_t k = read(fd, nb + *len + hl + got, want - got);
		if (k <= 0) {
			snprintf(err, errlen, "cannot read %s: %s", full, k < 0 ? strerror(errno) : "changed while read");
			close(fd);
			return -1;
		}
		got += (size_t)k;
	}
	close(fd);
	*len += hl + want;
	nb[*len] = '\0';
	return 0;
}

char *clu_fileset_pack(const char *dir, size_t *len, char *err, size_t errlen)
{
	struct names ns = { NULL, 0 };
	char *buf = strdup(MAGIC);

	*len = strlen(MAGIC);
	if (buf == NULL || walk(dir, "", 0, &ns, err, errlen) != 0) {
		if (buf == NULL)
			snprintf(err, errlen, "out of memory");
		free(buf);
		names_free(&ns);
		return NULL;
	}
	qsort(ns.v, ns.n, sizeof *ns.v, cmp_name);
	for (size_t i = 0; i < ns.n; i++)
		if (add_file(dir, ns.v[i], &buf, len, err, errlen) != 0) {
			free(buf);
			names_free(&ns);
			return NULL;
		}
	names_free(&ns);
	return buf;
}

/* A name a peer may give: relative, components neither empty nor dotted. */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 1024 || s[0] == '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
		if ((i == 0 || s[i - 1] == '/') && (c == '.' || c == '/'))
			return 0;
	}
	return s[n - 1] != '/';
}

/* mkdir -p of name's parent directories under base. */
static int parents(const char *base, const char *name)
{
	char p[PATH_MAX];
	size_t bl = strlen(base);

	snprintf(p, sizeof p, "%s/%s", base, name);
	for (char *s = p + bl + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0750) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

static int write_all(const char *path, const char *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k <= 0) {
			close(fd);
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	if (fsync(fd) != 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* "dir.<16 hex>": a fresh name beside dir. */
static void sibling(const char *dir, char *out, size_t len)
{
	uint64_t r;

	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = (uint64_t)getpid() * 2654435761u ^ (uint64_t)(uintptr_t)out;
	snprintf(out, len, "%s.%016llx", dir, (unsigned long long)r);
}

int clu_fileset_stage(const char *dir, const char *body, size_t len, char *newdir, size_t ndlen, char *err,
    size_t errlen)
{
	const char *p = body, *end = body + len;
	size_t ml = strlen(MAGIC), nfiles = 0;

	if (len < ml || memcmp(body, MAGIC, ml) != 0) {
		snprintf(err, errlen, "not a set of configuration files");
		return -1;
	}
	sibling(dir, newdir, ndlen);
	if (mkdir(newdir, 0750) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", newdir, strerror(errno));
		return -1;
	}
	for (p += ml; p < end; nfiles++) {
		char *e, full[PATH_MAX];
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *name;
		unsigned long long n;
		errno = 0;
		n = strtoull(p, &e, 10);
		/* (digits only: strtoull would skip a newline and take a sign) */
		if (nl == NULL || *p < '0' || *p > '9' || e >= nl || *e != ' ' || errno != 0 ||
		    n > (unsigned long long)(end - nl - 1) ||
		    nfiles == CLU_FILESET_MAX_FILES) {
			snprintf(err, errlen, "malformed set of files (entry %zu)", nfiles + 1);
			goto fail;
		}
		name = e + 1;
		if (!name_ok(name, (size_t)(nl - name)) || memchr(name, '\0', (size_t)(nl - name)) != NULL) {
			snprintf(err, errlen, "refused file name \"%.*s\"", (int)(nl - name > 100 ? 100 : nl - name), name);
			goto fail;
		}
		snprintf(full, sizeof full, "%s/%.*s", newdir, (int)(nl - name), name);
		if (parents(newdir, full + strlen(newdir) + 1) != 0 || write_all(full, nl + 1, (size_t)n) != 0) {
			snprintf(err, errlen, "cannot write %s: %s", full, strerror(errno));
			goto fail;
		}
		p = nl + 1 + n;
	}
	return 0;
fail:
	clu_fileset_remove(newdir);
	newdir[0] = '\0';
	return -1;
}

/* The last path component of p. */
static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');

	return s != NULL ? s + 1 : p;
}

/* The directory part of p ("." when none) into out. */
static void dir_of(const char *p, char *out, size_t len)
{
	const char *s = strrchr(p, '/');

	if (s == NULL)
		snprintf(out, len, ".");
	else
		snprintf(out, len, "%.*s", (int)(s == p ? 1 : s - p), p);
}

int clu_fileset_switch(const char *dir, const char *target, char *was, size_t wlen, char *err, size_t errlen)
{
	struct stat st;
	char tmp[PATH_MAX], parent[PATH_MAX];

	int ls;

	was[0] = '\0';
	dir_of(dir, parent, sizeof parent);
	ls = lstat(dir, &st);
	if (ls != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot look at %s: %s", dir, strerror(errno));
		return -1;
	}
	if (ls == 0 && S_ISLNK(st.st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink(dir, t, sizeof t - 1);
		if (n <= 0) {
			snprintf(err, errlen, "cannot read the link %s: %s", dir, strerror(errno));
			return -1;
		}
		t[n] = '\0';
		if (strchr(t, '/') != NULL)
			snprintf(was, wlen, "%s", t);           /* made by hand */
		else
			snprintf(was, wlen, "%s/%s", parent, t);
	} else if (ls == 0 && S_ISDIR(st.st_mode)) {
		/* the first switch: the plain directory becomes a set beside it */
		sibling(dir, was, wlen);
		if (rename(dir, was) != 0) {
			snprintf(err, errlen, "cannot move %s aside: %s", dir, strerror(errno));
			was[0] = '\0';
			return -1;
		}
	} else if (ls == 0) {
		snprintf(err, errlen, "%s is neither a directory nor a link", dir);
		return -1;
	}
	if (target[0] == '\0')
		return unlink(dir) == 0 || errno == ENOENT ? 0 : -1;
	snprintf(tmp, sizeof tmp, "%s.link", dir);
	unlink(tmp);
	/* relative: the pair of names moves together (backups, containers) */
	if (symlink(base_of(target), tmp) != 0 || rename(tmp, dir) != 0) {
		snprintf(err, errlen, "cannot point %s at %s: %s", dir, target, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void clu_fileset_remove(const char *path)
{
	if (path != NULL && path[0] != '\0')
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
