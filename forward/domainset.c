/*
 * forward/domainset: immutable domain set for squidGuard/UT1 lists.
 *
 * Why this shape (the target is 5M entries in < 2 s and < 400 MB):
 *   - The file is read into one buffer which is normalised and compacted in
 *     place (entries only ever shrink: comments, blanks, "*." go away), each
 *     entry NUL-terminated; the buffer is then shrunk and becomes the string
 *     pool.  No per-entry allocation at all, and the pool costs about the
 *     size of the file.
 *   - One open-addressing (linear probing) table of uint64_t slots, load
 *     factor <= 0.75: high 32 bits = hash tag, bit 31 = IP entry, low 31 bits
 *     = pool offset + 1 (0 = empty slot).  8 bytes per slot keeps 5M entries
 *     at 64 MB.
 *   - The hash (FNV-style multiply per byte + a murmur finaliser) runs from
 *     the last byte to the first, so one pass over a host gives the hash of
 *     the host and of every parent suffix at each '.' boundary: a lookup is
 *     one hash pass plus one probe per label; a tag hit is verified against
 *     the pool (the tag makes false verifications rare).  All the label
 *     probes' slots are prefetched before the first is examined, so their
 *     cache misses overlap.
 *   - Loading: plain "name\n" lines take a one-pass fast path; anything else
 *     (comments, blanks, CR, prefixes, IPs, invalid) the general path.
 *     Inserts are pipelined (hash 16 ahead, prefetch their slots).
 * A sorted array of reversed names would use less memory but costs
 * log2(5M) ~ 23 dependent cache misses per label probe and a sort at load.
 * Measured on the 2-core VM (tests/bench/listbench.c, 5M generated names,
 * 75 MB file in page cache): ~1.2 s load, 137 MB peak RSS, 0.5 us per
 * lookup of a ~4-label host.
 */
#include "forward/domainset.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/addr.h"

#define DS_MAGIC 0x64736574u   /* "dset" */
#define DS_MAX_NAME 253
#define DS_POOL_MAX 0x7ffffff0u  /* offsets are 31 bits */
#define DS_SLOT_IP 0x80000000u
#define DS_PAD 64                /* slack after the last line (sentinel) */

struct fwd_domainset {
	uint32_t magic;
	char *pool;              /* normalised entries, NUL-terminated, back to back */
	size_t pool_len;
	uint64_t *slots;
	size_t mask;             /* slots - 1 (power of two) */
	size_t count;            /* distinct entries */
	size_t invalid;
	size_t first_invalid;    /* 1-based line number, 0 = none */
	size_t invalid_lines[FWD_DOMAINSET_NOTES];   /* the first ones, for the load's report */
};

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

/* ---- hashing ---- */

#define H_SEED 0xcbf29ce484222325ull
#define H_PRIME 0x100000001b3ull

static inline uint64_t h_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * H_PRIME;
}

static inline uint64_t h_final(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* Hash of s[0..len) computed right to left (same as the suffix hashes). */
static uint64_t h_whole(const char *s, size_t len)
{
	uint64_t h = H_SEED;
	while (len > 0)
		h = h_step(h, (unsigned char)s[--len]);
	return h_final(h);
}

/* ---- character classes ---- */

static inline int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static inline int is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* 1 if s (lower-case, len bytes) is a valid domain name for a list entry. */
static int valid_domain(const char *s, size_t len)
{
	if (len == 0 || len > DS_MAX_NAME)
		return 0;
	size_t lab = 0;
	int last_all_digits = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
			last_all_digits = 1;
			continue;
		}
		if (!is_label_char(c))
			return 0;
		if (c < '0' || c > '9')
			last_all_digits = 0;
		if (++lab > 63)
			return 0;
	}
	/* an all-numeric last label is an IP address or garbage, never a name */
	return lab > 0 && !last_all_digits;
}

/*
 * If s[0..len) is an IPv4 or IPv6 address (v6 optionally in brackets), write
 * its canonical text into out (size >= INET6_ADDRSTRLEN) and return its
 * length; otherwise return 0.  Canonical as core/addr makes it, as the
 * policy does for the request's host: "::ffff:10.1.2.3" is "10.1.2.3", and
 * an ambiguous "010.1.2.3" is no address (the entry is skipped).
 */
static size_t canonical_ip(const char *s, size_t len, char *out)
{
	struct gw_addr a;
	int is_ip;

	if (gw_addr_parse_host(s, len, &a, &is_ip) != NULL || !is_ip)
		return 0;
	gw_addr_canon(&a);
	gw_addr_format(&a, out, INET6_ADDRSTRLEN);
	return strlen(out);
}

static int looks_ip(const char *s, size_t len)
{
	if (memchr(s, ':', len))
		return 1;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return 0;
	return 1;
}

/* ---- building ---- */

/* Character classes for the fast path of normalise(). */
#define CL_LABEL 1     /* [A-Za-z0-9_-] */
#define CL_NONDIGIT 2  /* a label character that is not a digit */

static const unsigned char cls[256] = {
	['0' ... '9'] = CL_LABEL,
	['a' ... 'z'] = CL_LABEL | CL_NONDIGIT,
	['A' ... 'Z'] = CL_LABEL | CL_NONDIGIT,
	['-'] = CL_LABEL | CL_NONDIGIT,
	['_'] = CL_LABEL | CL_NONDIGIT,
};

/*
 * Fast path for the common line "plain.domain.name\n": returns the length
 * of the line (up to, not including, the '\n') if it is exactly a valid
 * domain with no blanks, comment, prefix or trailing dot; 0 otherwise (then
 * the general path decides).  buf[len] must be '\n' (sentinel).
 */
static size_t fast_line(const char *buf, size_t ls)
{
	size_t i = ls, lab = 0;
	unsigned nondig = 0;
	for (;; i++) {
		unsigned k = cls[(unsigned char)buf[i]];
		if (k) {
			lab++;
			nondig |= k;
			continue;
		}
		if (buf[i] != '.')
			break;
		if (lab == 0 || lab > 63)
			return 0;
		lab = 0;
		nondig = 0;
	}
	if (buf[i] != '\n' || lab == 0 || lab > 63 || !(nondig & CL_NONDIGIT) ||
	    i - ls > DS_MAX_NAME)
		return 0;
	return i - ls;
}

/*
 * Normalise buf[0..len) in place: every valid entry is written, NUL-terminated,
 * at the front of buf (the write position never passes the read position, as
 * entries only shrink).  buf must have DS_PAD bytes of slack after len.
 * Returns the compacted length; counts entries and invalid lines.
 */
struct side {
	char *buf;
	size_t len, cap;
};

static int side_add(struct side *sd, const char *s, size_t len)
{
	if (sd->cap - sd->len < len + 1) {
		size_t ncap = sd->cap ? sd->cap * 2 : 1024;
		while (ncap - sd->len < len + 1)
			ncap *= 2;
		char *nb = realloc(sd->buf, ncap);
		if (!nb)
			return -1;
		sd->buf = nb;
		sd->cap = ncap;
	}
	memcpy(sd->buf + sd->len, s, len);
	sd->buf[sd->len + len] = '\0';
	sd->len += len + 1;
	return 0;
}

static size_t normalise(struct fwd_domainset *ds, char *buf, size_t len, struct side *ips,
    size_t *nentries)
{
	size_t r = 0, w = 0, lineno = 0, n = 0;
	buf[len] = '\n';   /* sentinel for fast_line */
	while (r < len) {
		size_t ls = r;
		lineno++;
		size_t fl = fast_line(buf, ls);
		if (fl) {
			for (size_t i = 0; i < fl; i++)
				buf[w + i] = (char)lower((unsigned char)buf[ls + i]);
			w += fl;
			buf[w++] = '\0';
			n++;
			r = ls + fl + 1;
			continue;
		}

		char *nl = memchr(buf + r, '\n', len - r);
		size_t le = nl ? (size_t)(nl - buf) : len;   /* line is [ls, le) */
		r = nl ? le + 1 : len;

		char *hash = memchr(buf + ls, '#', le - ls);
		if (hash)
			le = (size_t)(hash - buf);
		while (ls < le && is_blank((unsigned char)buf[ls]))
			ls++;
		while (le > ls && is_blank((unsigned char)buf[le - 1]))
			le--;
		if (ls == le)
			continue;
		for (size_t i = ls; i < le; i++)
			buf[i] = (char)lower((unsigned char)buf[i]);
		if (le - ls >= 2 && buf[ls] == '*' && buf[ls + 1] == '.')
			ls += 2;
		else if (buf[ls] == '.')
			ls++;
		if (le > ls && buf[le - 1] == '.')
			le--;

		const char *s = buf + ls;
		size_t slen = le - ls;
		char ipbuf[INET6_ADDRSTRLEN];
		if (slen > 0 && (looks_ip(s, slen) || s[0] == '[')) {
			/* the canonical text can be longer than the line ("::ffff:a:b"),
			 * so IP entries go to a side buffer appended to the pool later */
			size_t iplen = canonical_ip(s, slen, ipbuf);
			if (iplen == 0)
				goto invalid;
			if (side_add(ips, ipbuf, iplen) < 0)
				return (size_t)-1;
			n++;
			continue;
		} else if (valid_domain(s, slen)) {
			memmove(buf + w, s, slen);
			w += slen;
		} else {
			goto invalid;
		}
		buf[w++] = '\0';
		n++;
		continue;
invalid:
		if (ds->invalid < FWD_DOMAINSET_NOTES)
			ds->invalid_lines[ds->invalid] = lineno;
		if (ds->invalid++ == 0)
			ds->first_invalid = lineno;
	}
	*nentries = n;
	return w;
}

/*
 * One entry hashed and ready for insertion.  The slot value is computed from
 * it alone, so inserting touches only the table, except to compare strings
 * when the 32-bit tags collide (duplicates, mostly).
 */
struct pending {
	uint64_t h;
	uint32_t off;
	uint32_t len;   /* bit 31: IP entry */
};

#define PEND_IP 0x80000000u

static inline uint64_t slot_value(const struct pending *pe)
{
	return (pe->h >> 32 << 32) | (uint64_t)(pe->off + 1) |
	    ((pe->len & PEND_IP) ? DS_SLOT_IP : 0);
}

/* Hash the pool entry at off; returns the offset of the next entry. */
static size_t pend_at(const struct fwd_domainset *ds, size_t off, struct pending *pe)
{
	const char *e = ds->pool + off;
	size_t len = strlen(e);
	pe->h = h_whole(e, len);
	pe->off = (uint32_t)off;
	pe->len = (uint32_t)len | (looks_ip(e, len) ? PEND_IP : 0);
	return off + len + 1;
}

static void insert_one(struct fwd_domainset *ds, const struct pending *pe, size_t *distinct)
{
	const char *pool = ds->pool;
	uint64_t tag = pe->h >> 32;
	size_t i = (size_t)pe->h & ds->mask;
	for (;;) {
		uint64_t sl = ds->slots[i];
		if (sl == 0) {
			ds->slots[i] = slot_value(pe);
			(*distinct)++;
			return;
		}
		if ((sl >> 32) == tag && strcmp(pool + ((sl & 0x7fffffffu) - 1), pool + pe->off) == 0)
			return;   /* duplicate */
		i = (i + 1) & ds->mask;
	}
}

/*
 * Insert every pool entry.  The table is far bigger than the caches, so each
 * insert is a cache miss; hashing DS_PIPE entries ahead and prefetching their
 * slots overlaps those misses (measured: load of 5M entries 2.1 s -> 1.2 s).
 * (Partitioning the entries by home slot first, to write the table almost
 * sequentially, cost 16 bytes per entry more peak memory and measured no
 * faster here.)
 */
#define DS_PIPE 16

static int insert_all(struct fwd_domainset *ds)
{
	size_t cap = 16;
	while (cap - cap / 4 < ds->count + 1)
		cap <<= 1;
	ds->slots = calloc(cap, sizeof(*ds->slots));
	if (!ds->slots)
		return -1;
	ds->mask = cap - 1;
	size_t distinct = 0, off = 0, head = 0, cnt = 0;
	struct pending ring[DS_PIPE];
	while (off < ds->pool_len || cnt) {
		while (cnt < DS_PIPE && off < ds->pool_len) {
			struct pending *pe = &ring[(head + cnt) % DS_PIPE];
			off = pend_at(ds, off, pe);
			__builtin_prefetch(&ds->slots[(size_t)pe->h & ds->mask], 1);
			cnt++;
		}
		insert_one(ds, &ring[head], &distinct);
		head = (head + 1) % DS_PIPE;
		cnt--;
	}
	ds->count = distinct;
	return 0;
}

/* Takes ownership of buf (len bytes + DS_PAD slack). */
static struct fwd_domainset *build(char *buf, size_t len, char *err, size_t errlen)
{
	struct fwd_domainset *ds = calloc(1, sizeof(*ds));
	if (!ds) {
		free(buf);
		set_err(err, errlen, "%s%s", "out of memory", "");
		return NULL;
	}
	ds->magic = DS_MAGIC;
	size_t n;
	struct side ips = { NULL, 0, 0 };
	size_t plen = normalise(ds, buf, len, &ips, &n);
	if (plen == (size_t)-1 || plen + ips.len > DS_POOL_MAX) {
		free(buf);
		free(ips.buf);
		free(ds);
		set_err(err, errlen, "%s%s", plen == (size_t)-1 ? "out of memory" :
		    "list too large (over 2 GB of entries)", "");
		return NULL;
	}
	/* usually a shrink: for a large block an mremap in glibc, no copy */
	char *pool = realloc(buf, plen + ips.len + 1);
	if (!pool) {
		if (plen + ips.len + 1 > len + DS_PAD) {
			free(buf);
			free(ips.buf);
			free(ds);
			set_err(err, errlen, "%s%s", "out of memory", "");
			return NULL;
		}
		pool = buf;
	}
	if (ips.len)
		memcpy(pool + plen, ips.buf, ips.len);
	free(ips.buf);
	plen += ips.len;
	ds->pool = pool;
	ds->pool_len = plen;
	ds->count = n;
	if (insert_all(ds) < 0) {
		fwd_domainset_free(ds);
		set_err(err, errlen, "%s%s", "out of memory", "");
		return NULL;
	}
	return ds;
}

struct fwd_domainset *fwd_domainset_from_buffer(const char *buf, size_t len, char *err,
    size_t errlen)
{
	char *copy = malloc(len + DS_PAD);
	if (!copy) {
		set_err(err, errlen, "%s%s", "out of memory", "");
		return NULL;
	}
	if (len)
		memcpy(copy, buf, len);
	return build(copy, len, err, errlen);
}

struct fwd_domainset *fwd_domainset_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	size_t cap = 1 << 16;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		cap = (size_t)st.st_size + 1;   /* +1: see EOF without a regrow */
	char *buf = malloc(cap + DS_PAD);
	size_t len = 0;
	if (!buf)
		goto oom;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap * 2;
			char *nb = realloc(buf, ncap + DS_PAD);
			if (!nb)
				goto oom;
			buf = nb;
			cap = ncap;
		}
		ssize_t got = read(fd, buf + len, cap - len);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	return build(buf, len, err, errlen);
oom:
	free(buf);
	close(fd);
	set_err(err, errlen, "%s%s", "out of memory", "");
	return NULL;
}

/* ---- lookup ---- */

/* Probe for s[0..len); want_ip selects IP or domain entries.  Returns the entry or NULL. */
static const char *probe(const struct fwd_domainset *ds, uint64_t h, const char *s, size_t len,
    int want_ip)
{
	uint64_t tag = h >> 32;
	size_t i = (size_t)h & ds->mask;
	for (;;) {
		uint64_t sl = ds->slots[i];
		if (sl == 0)
			return NULL;
		if ((sl >> 32) == tag && (((sl & DS_SLOT_IP) != 0) == (want_ip != 0))) {
			const char *e = ds->pool + ((sl & 0x7fffffffu) - 1);
			if (memcmp(e, s, len) == 0 && e[len] == '\0')
				return e;
		}
		i = (i + 1) & ds->mask;
	}
}

int fwd_domainset_match(const struct fwd_domainset *ds, const char *host, size_t len,
    const char **matched_entry)
{
	char buf[DS_MAX_NAME + 3];
	if (!ds || ds->magic != DS_MAGIC || !host || ds->count == 0)
		return 0;
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > DS_MAX_NAME + 2)
		return 0;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)lower((unsigned char)host[i]);

	const char *hit = NULL;
	if (looks_ip(buf, len) || buf[0] == '[') {
		char ip[INET6_ADDRSTRLEN];
		size_t iplen = canonical_ip(buf, len, ip);
		if (iplen == 0)
			return 0;   /* not an address and not a valid name either */
		hit = probe(ds, h_whole(ip, iplen), ip, iplen, 1);
	} else {
		/* hash every suffix in one right-to-left pass and prefetch its
		 * slot, then probe from the longest: the misses overlap and the
		 * first hit is the most specific entry */
		uint64_t hs[DS_MAX_NAME / 2 + 2];
		size_t starts[DS_MAX_NAME / 2 + 2], n = 0;
		uint64_t h = H_SEED;
		for (size_t i = len; i > 0; i--) {
			h = h_step(h, (unsigned char)buf[i - 1]);
			if (i == 1 || buf[i - 2] == '.') {
				uint64_t hf = h_final(h);
				__builtin_prefetch(&ds->slots[(size_t)hf & ds->mask]);
				if (n < sizeof(hs) / sizeof(hs[0])) {
					hs[n] = hf;
					starts[n++] = i - 1;
				}
			}
		}
		while (n > 0 && !hit) {
			n--;
			hit = probe(ds, hs[n], buf + starts[n], len - starts[n], 0);
		}
	}
	if (!hit)
		return 0;
	if (matched_entry)
		*matched_entry = hit;
	return 1;
}

size_t fwd_domainset_count(const struct fwd_domainset *ds)
{
	return ds && ds->magic == DS_MAGIC ? ds->count : 0;
}

size_t fwd_domainset_invalid(const struct fwd_domainset *ds, size_t *first_line)
{
	if (!ds || ds->magic != DS_MAGIC) {
		if (first_line)
			*first_line = 0;
		return 0;
	}
	if (first_line)
		*first_line = ds->first_invalid;
	return ds->invalid;
}

size_t fwd_domainset_invalid_line(const struct fwd_domainset *ds, size_t k)
{
	return ds && ds->magic == DS_MAGIC && k < ds->invalid && k < FWD_DOMAINSET_NOTES ?
	    ds->invalid_lines[k] : 0;
}

size_t fwd_domainset_memory(const struct fwd_domainset *ds)
{
	if (!ds || ds->magic != DS_MAGIC)
		return 0;
	return sizeof(*ds) + ds->pool_len + (ds->mask + 1) * sizeof(*ds->slots);
}

void fwd_domainset_free(struct fwd_domainset *ds)
{
	if (!ds)
		return;
	if (ds->magic != DS_MAGIC)
		abort();   /* a stray pointer: crashing beats corrupting the heap */
	ds->magic = 0;
	free(ds->pool);
	free(ds->slots);
	free(ds);
}
