/*
 * forward/auth: user database, Basic credentials, verified-credentials
 * cache, per-client backoff and the verification pool (see auth.h).
 *
 * Why off the loop: a bcrypt or yescrypt verification costs 10-100 ms of
 * CPU; running it on a worker's event loop would stall every connection of
 * that worker.  The process's job pool (core/jobs.h, two threads) is
 * enough: with the cache, only the first request of a user per cache_ttl
 * (and failures) reach it, and the backoff keeps a brute-forcing client
 * from queueing work for long.  The answer goes back to the request's
 * worker through gw_req_wake() (forward.c), so the job port has no loop.
 */
#include "forward/auth.h"
#include "forward/readfile.h"

#include "core/jobs.h"

#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* ---------------------------------------------------------------- db */

struct db_user {
	char *name;
	char *hash;
	size_t gstart, gcount;    /* into db->gnames */
	size_t line;              /* of the users file, for a duplicate's report */
};

struct fwd_auth_db {
	struct db_user *users;    /* sorted by name */
	size_t nusers;
	const char **gnames;      /* group names, grouped per user */
	size_t ngnames;
	char **groups;            /* owned group name strings */
	size_t ngroups;
	size_t skipped[2], first_skipped[2];
	struct { size_t line; const char *why; } notes[2][FWD_AUTH_SKIP_NOTES];
	const char *dummy;        /* a users[].hash of the most common cost (fwd_auth_db_dummy) */
};

/* By name, then by position in the file (gstart holds it while loading). */
static int user_cmp(const void *a, const void *b)
{
	const struct db_user *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->gstart < y->gstart ? -1 : x->gstart > y->gstart);
}

static void skip(struct fwd_auth_db *db, int which, size_t line, const char *why)
{
	if (db->skipped[which] < FWD_AUTH_SKIP_NOTES) {
		db->notes[which][db->skipped[which]].line = line;
		db->notes[which][db->skipped[which]].why = why;
	}
	if (db->skipped[which]++ == 0 || line < db->first_skipped[which])
		db->first_skipped[which] = line;
}

/* Next line of buf: [*s, *e) without the line end; returns 0 at the end. */
/* Copy n bytes into a new NUL-terminated string.  (Not strndup: the file
 * buffer has no terminator, and strndup may look for one past n.) */
static char *copy_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int next_line(const char *buf, size_t len, size_t *pos, const char **s, const char **e)
{
	const char *nl;

	if (*pos >= len)
		return 0;
	*s = buf + *pos;
	nl = memchr(*s, '\n', len - *pos);
	*e = nl ? nl : buf + len;
	*pos = (size_t)(*e - buf) + (nl ? 1 : 0);
	if (*e > *s && (*e)[-1] == '\r')
		(*e)--;
	return 1;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n > FWD_AUTH_USER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c == 0x7f || c == ':')
			return 0;
	}
	return 1;
}

/* ---- htpasswd's own methods: $apr1$ (Apache MD5-crypt) and {SHA} ----
 * Both are weak (fast hashes): accepted so that a Squid/Apache users file
 * works as it is; the docs tell how to move to bcrypt (htpasswd -B). */

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Length of the salt of "$apr1$SALT$..." (1..8 characters), 0 if h is not one. */
static size_t apr1_salt_len(const char *h)
{
	size_t n = 0;

	if (strncmp(h, "$apr1$", 6) != 0)
		return 0;
	while (h[6 + n] != '\0' && h[6 + n] != '$' && n < 9)
		n++;
	return n >= 1 && n <= 8 && h[6 + n] == '$' ? n : 0;
}

/* A well-formed "$apr1$SALT$22chars" or "{SHA}28 base64 chars". */
static int htpasswd_hash_ok(const char *h)
{
	size_t sl = apr1_salt_len(h);

	if (sl > 0) {
		const char *d = h + 6 + sl + 1;
		return strlen(d) == 22 && strspn(d, itoa64) == 22;
	}
	if (strncmp(h, "{SHA}", 5) == 0)
		return strlen(h + 5) == 28 && h[32] == '=' && strspn(h + 5,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") == 27;
	return 0;
}

static int md5_step(EVP_MD_CTX *c, const void *p, size_t n)
{
	return EVP_DigestUpdate(c, p, n) == 1 ? 0 : -1;
}

/* Apache's MD5-crypt of pass with salt[0..sl): the 22 characters after the
 * last '$' into out (NUL-terminated).  0, or -1 if MD5 is unavailable. */
static int apr1_digest(const char *pass, const char *salt, size_t sl, char out[23])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new(), *c1 = EVP_MD_CTX_new();
	const EVP_MD *md5 = EVP_md5();
	unsigned char fin[16];
	size_t pl = strlen(pass);
	int bad = c == NULL || c1 == NULL || md5 == NULL;

	if (!bad) {
		/* alternate sum: MD5(pass salt pass) */
		bad |= EVP_DigestInit_ex(c1, md5, NULL) != 1;
		bad |= md5_step(c1, pass, pl) | md5_step(c1, salt, sl) | md5_step(c1, pass, pl);
		bad |= EVP_DigestFinal_ex(c1, fin, NULL) != 1;
		bad |= EVP_DigestInit_ex(c, md5, NULL) != 1;
		bad |= md5_step(c, pass, pl) | md5_step(c, "$apr1$", 6) | md5_step(c, salt, sl);
		for (size_t n = pl; n > 0; n -= n > 16 ? 16 : n)
			bad |= md5_step(c, fin, n > 16 ? 16 : n);
		for (size_t i = pl; i != 0; i >>= 1)
			bad |= md5_step(c, (i & 1) ? "" : pass, 1);
		bad |= EVP_DigestFinal_ex(c, fin, NULL) != 1;
		for (int i = 0; i < 1000 && !bad; i++) {
			bad |= EVP_DigestInit_ex(c1, md5, NULL) != 1;
			bad |= (i & 1) ? md5_step(c1, pass, pl) : md5_step(c1, fin, 16);
			if (i % 3)
				bad |= md5_step(c1, salt, sl);
			if (i % 7)
				bad |= md5_step(c1, pass, pl);
			bad |= (i & 1) ? md5_step(c1, fin, 16) : md5_step(c1, pass, pl);
			bad |= EVP_DigestFinal_ex(c1, fin, NULL) != 1;
		}
	}
	if (!bad) {
		static const unsigned char ord[5][3] = { { 0, 6, 12 }, { 1, 7, 13 }, { 2, 8, 14 },
		    { 3, 9, 15 }, { 4, 10, 5 } };
		char *o = out;
		for (int g = 0; g < 6; g++) {
			unsigned long v = g < 5 ? (unsigned long)fin[ord[g][0]] << 16 |
			    (unsigned long)fin[ord[g][1]] << 8 | fin[ord[g][2]] : fin[11];
			for (int k = 0; k < (g < 5 ? 4 : 2); k++, v >>= 6)
				*o++ = itoa64[v & 0x3f];
		}
		*o = '\0';
	}
	OPENSSL_cleanse(fin, sizeof fin);
	EVP_MD_CTX_free(c);
	EVP_MD_CTX_free(c1);
	return bad ? -1 : 0;
}

/* pass against an $apr1$ or {SHA} hash: 1 match, 0 not, -1 not such a hash. */
static int htpasswd_verify(const char *pass, const char *hash)
{
	size_t sl = apr1_salt_len(hash);
	char got[29];
	int ok;

	if (!htpasswd_hash_ok(hash))
		return -1;
	if (sl > 0) {
		ok = apr1_digest(pass, hash + 6, sl, got) == 0 && CRYPTO_memcmp(got, hash + 6 + sl + 1, 22) == 0;
	} else {
		unsigned char md[20];
		ok = EVP_Digest(pass, strlen(pass), md, NULL, EVP_sha1(), NULL) == 1 &&
		    EVP_EncodeBlock((unsigned char *)got, md, 20) == 28 &&
		    CRYPTO_memcmp(got, hash + 5, 28) == 0;
		OPENSSL_cleanse(md, sizeof md);
	}
	OPENSSL_cleanse(got, sizeof got);
	return ok;
}

static int parse_users(struct fwd_auth_db *db, const char *buf, size_t len)
{
	size_t pos = 0, line = 0, cap = 0;
	const char *s, *e;

	while (next_line(buf, len, &pos, &s, &e)) {
		const char *colon;
		line++;
		trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		colon = memchr(s, ':', (size_t)(e - s));
		if (colon == NULL || colon + 1 == e) {
			skip(db, 0, line, "not \"user:hash\"");
			continue;
		}
		if (!valid_name(s, (size_t)(colon - s))) {
			skip(db, 0, line, "bad user name (empty, too long or a control character)");
			continue;
		}
		/* htpasswd may append ":comment" fields; the hash ends at the next ':' */
		const char *hs = colon + 1, *he = memchr(hs, ':', (size_t)(e - hs));
		if (he == NULL)
			he = e;
		char *hash = copy_n(hs, (size_t)(he - hs));
		if (hash == NULL)
			return -1;
		if (!htpasswd_hash_ok(hash) && (hash[0] != '$' || crypt_checksalt(hash) != CRYPT_SALT_OK)) {
			free(hash);
			skip(db, 0, line, "a password hash this system cannot check (crypt, bcrypt $2y$, "
			    "sha512 $6$, yescrypt $y$, $apr1$ and {SHA} are; plain text and DES are not)");
			continue;
		}
		if (db->nusers == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct db_user *nu = realloc(db->users, nc * sizeof *nu);
			if (nu == NULL) {
				free(hash);
				return -1;
			}
			db->users = nu;
			cap = nc;
		}
		struct db_user *u = &db->users[db->nusers];
		memset(u, 0, sizeof *u);
		u->hash = hash;
		u->gstart = db->nusers;
		u->line = line;
		u->name = copy_n(s, (size_t)(colon - s));
		if (u->name == NULL) {
			free(hash);
			return -1;
		}
		db->nusers++;
	}
	if (db->nusers > 1) {
		/* duplicates: the first line wins, later ones are skipped */
		qsort(db->users, db->nusers, sizeof *db->users, user_cmp);
		size_t w = 1;
		for (size_t r = 1; r < db->nusers; r++) {
			if (strcmp(db->users[r].name, db->users[w - 1].name) == 0) {
				skip(db, 0, db->users[r].line, "duplicate user (the first line wins)");
				free(db->users[r].name);
				free(db->users[r].hash);
				continue;
			}
			db->users[w++] = db->users[r];
		}
		db->nusers = w;
	}
	for (size_t i = 0; i < db->nusers; i++)
		db->users[i].gstart = 0;
	return 0;
}

struct pair {
	long user;
	size_t group;
};

static int pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	return x->group < y->group ? -1 : x->group > y->group;
}

static int parse_groups(struct fwd_auth_db *db, const char *buf, size_t len)
{
	size_t pos = 0, line = 0, npairs = 0, pcap = 0, gcap = 0;
	struct pair *pairs = NULL;
	const char *s, *e;
	int rc = -1;

	while (next_line(buf, len, &pos, &s, &e)) {
		const char *colon, *p;
		line++;
		trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		colon = memchr(s, ':', (size_t)(e - s));
		const char *ge = colon;
		while (colon && ge > s && (ge[-1] == ' ' || ge[-1] == '\t'))
			ge--;
		if (colon == NULL || !valid_name(s, (size_t)(ge - s))) {
			skip(db, 1, line, colon == NULL ? "not \"group: user ...\"" : "bad group name");
			continue;
		}
		/* a group may span several lines */
		size_t gi;
		for (gi = 0; gi < db->ngroups; gi++)
			if (strlen(db->groups[gi]) == (size_t)(ge - s) &&
			    memcmp(db->groups[gi], s, (size_t)(ge - s)) == 0)
				break;
		if (gi == db->ngroups) {
			if (db->ngroups == gcap) {
				size_t nc = gcap ? gcap * 2 : 8;
				char **ng = realloc(db->groups, nc * sizeof *ng);
				if (ng == NULL)
					goto out;
				db->groups = ng;
				gcap = nc;
			}
			if ((db->groups[db->ngroups] = copy_n(s, (size_t)(ge - s))) == NULL)
				goto out;
			db->ngroups++;
		}
		for (p = colon + 1; p < e;) {
			const char *w;
			while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			w = p;
			while (p < e && *p != ' ' && *p != '\t' && *p != ',')
				p++;
			if (p == w)
				break;
			char name[FWD_AUTH_USER_MAX + 1];
			if ((size_t)(p - w) > FWD_AUTH_USER_MAX)
				continue;
			memcpy(name, w, (size_t)(p - w));
			name[p - w] = '\0';
			long ui = fwd_auth_db_find(db, name);
			if (ui < 0)
				continue;
			if (npairs == pcap) {
				size_t nc = pcap ? pcap * 2 : 16;
				struct pair *np = realloc(pairs, nc * sizeof *np);
				if (np == NULL)
					goto out;
				pairs = np;
				pcap = nc;
			}
			pairs[npairs].user = ui;
			pairs[npairs].group = gi;
			npairs++;
		}
	}
	if (npairs) {
		qsort(pairs, npairs, sizeof *pairs, pair_cmp);
		db->gnames = calloc(npairs, sizeof *db->gnames);
		if (db->gnames == NULL)
			goto out;
		for (size_t i = 0; i < npairs; i++) {
			/* a user listed twice in one group counts once */
			if (db->ngnames && i > 0 && pairs[i].user == pairs[i - 1].user &&
			    pairs[i].group == pairs[i - 1].group)
				continue;
			struct db_user *u = &db->users[pairs[i].user];
			if (u->gcount == 0)
				u->gstart = db->ngnames;
			u->gcount++;
			db->gnames[db->ngnames++] = db->groups[pairs[i].group];
		}
	}
	rc = 0;
out:
	free(pairs);
	return rc;
}

/* Length of the part of a crypt(3) hash that sets its cost: the method and
 * its parameters ("$2b$12$", "$y$j9T$", "$6$rounds=N$", "$6$"), not the salt. */
static size_t cost_prefix(const char *h)
{
	const char *id = h + 1, *p = strchr(id, '$'), *q;
	size_t idlen;

	if (strncmp(h, "{SHA}", 5) == 0)
		return 5;
	if (p == NULL)
		return strlen(h);
	idlen = (size_t)(p - id);
	p++;
	if (idlen == 1 && (*id == '5' || *id == '6') && strncmp(p, "rounds=", 7) != 0)
		return (size_t)(p - h);
	if ((idlen == 1 && (*id == '5' || *id == '6' || *id == 'y')) || (idlen == 2 && (id[0] == '2' ||
	    memcmp(id, "gy", 2) == 0)))
		return (q = strchr(p, '$')) != NULL ? (size_t)(q + 1 - h) : strlen(h);
	return (size_t)(p - h);
}

/* db->dummy: the first user of the most common cost (few distinct costs are
 * looked at; a file is usually made by one tool with one setting). */
static void pick_dummy(struct fwd_auth_db *db)
{
	enum { NC = 16 };
	size_t first[NC], count[NC], nc = 0, best = 0;

	for (size_t i = 0; i < db->nusers; i++) {
		const char *h = db->users[i].hash;
		size_t n = cost_prefix(h), c;
		for (c = 0; c < nc; c++) {
			const char *f = db->users[first[c]].hash;
			if (cost_prefix(f) == n && memcmp(f, h, n) == 0)
				break;
		}
		if (c == nc) {
			if (nc == NC)
				continue;
			first[nc] = i;
			count[nc++] = 0;
		}
		if (++count[c] > count[best])
			best = c;
	}
	db->dummy = nc > 0 ? db->users[first[best]].hash : NULL;
}

struct fwd_auth_db *fwd_auth_db_parse(const char *users, size_t ulen, const char *groups,
    size_t glen, char *err, size_t errlen)
{
	struct fwd_auth_db *db = calloc(1, sizeof *db);

	if (db == NULL || parse_users(db, users, ulen) < 0 ||
	    (groups != NULL && parse_groups(db, groups, glen) < 0)) {
		fwd_auth_db_free(db);
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pick_dummy(db);
	return db;
}

struct fwd_auth_db *fwd_auth_db_load(const char *users_path, const char *groups_path, char *err,
    size_t errlen)
{
	size_t ulen = 0, glen = 0;
	char *u, *g = NULL;
	struct fwd_auth_db *db;

	if ((u = fwd_read_file(users_path, &ulen, err, errlen)) == NULL)
		return NULL;
	if (groups_path != NULL && (g = fwd_read_file(groups_path, &glen, err, errlen)) == NULL) {
		free(u);
		return NULL;
	}
	db = fwd_auth_db_parse(u, ulen, g, glen, err, errlen);
	OPENSSL_cleanse(u, ulen);
	free(u);
	free(g);
	return db;
}

void fwd_auth_db_free(struct fwd_auth_db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->nusers; i++) {
		free(db->users[i].name);
		free(db->users[i].hash);
	}
	for (size_t i = 0; i < db->ngroups; i++)
		free(db->groups[i]);
	free(db->users);
	free(db->groups);
	free(db->gnames);
	free(db);
}

size_t fwd_auth_db_nusers(const struct fwd_auth_db *db) { return db ? db->nusers : 0; }

const char *fwd_auth_db_skip_note(const struct fwd_auth_db *db, int which, size_t k, size_t *line)
{
	if (db == NULL || which < 0 || which > 1 || k >= db->skipped[which] || k >= FWD_AUTH_SKIP_NOTES)
		return NULL;
	*line = db->notes[which][k].line;
	return db->notes[which][k].why;
}

size_t fwd_auth_db_skipped(const struct fwd_auth_db *db, int which, size_t *first_line)
{
	if (db == NULL || which < 0 || which > 1) {
		if (first_line)
			*first_line = 0;
		return 0;
	}
	if (first_line)
		*first_line = db->first_skipped[which];
	return db->skipped[which];
}

long fwd_auth_db_find(const struct fwd_auth_db *db, const char *user)
{
	size_t lo = 0, hi;

	if (db == NULL || user == NULL)
		return -1;
	hi = db->nusers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(user, db->users[mid].name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

const char *fwd_auth_db_name(const struct fwd_auth_db *db, long i)
{
	return db && i >= 0 && (size_t)i < db->nusers ? db->users[i].name : NULL;
}

const char *fwd_auth_db_hash(const struct fwd_auth_db *db, long i)
{
	return db && i >= 0 && (size_t)i < db->nusers ? db->users[i].hash : NULL;
}

const char *fwd_auth_db_dummy(const struct fwd_auth_db *db)
{
	return db != NULL ? db->dummy : NULL;
}

const char *const *fwd_auth_db_groups(const struct fwd_auth_db *db, long i, size_t *n)
{
	if (db == NULL || i < 0 || (size_t)i >= db->nusers || db->users[i].gcount == 0) {
		*n = 0;
		return NULL;
	}
	*n = db->users[i].gcount;
	return db->gnames + db->users[i].gstart;
}

/* ---------------------------------------------------------------- Basic */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int fwd_auth_parse_basic(const char *value, size_t len, char user[FWD_AUTH_USER_MAX + 1],
    char pass[FWD_AUTH_PASS_MAX + 1])
{
	unsigned char out[FWD_AUTH_USER_MAX + FWD_AUTH_PASS_MAX + 8];
	size_t i = 0, n = 0, pad = 0, nq = 0;
	uint32_t acc = 0;
	const unsigned char *colon;
	int rc = -1;

	while (i < len && (value[i] == ' ' || value[i] == '\t'))
		i++;
	if (len - i < 6 || strncasecmp(value + i, "basic", 5) != 0 ||
	    (value[i + 5] != ' ' && value[i + 5] != '\t'))
		return -1;
	i += 6;
	while (i < len && (value[i] == ' ' || value[i] == '\t'))
		i++;
	while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if ((len - i) % 4 != 0 || len == i)
		return -1;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		int v;
		if (c == '=') {
			if (pad >= 2 || len - i > 2 - pad)
				return -1;  /* '=' only in the last two places */
			pad++;
			v = 0;
		} else {
			if (pad)
				return -1;
			if ((v = b64val(c)) < 0)
				return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		if (++nq == 4) {
			if (n + 3 > sizeof out)
				goto out;
			out[n++] = (unsigned char)(acc >> 16);
			out[n++] = (unsigned char)(acc >> 8);
			out[n++] = (unsigned char)acc;
			nq = 0;
			acc = 0;
		}
	}
	n -= pad;
	colon = memchr(out, ':', n);
	if (colon == NULL || colon == out)
		goto out;
	size_t ulen = (size_t)(colon - out), plen = n - ulen - 1;
	if (ulen > FWD_AUTH_USER_MAX || plen > FWD_AUTH_PASS_MAX)
		goto out;
	for (size_t k = 0; k < ulen; k++)
		if (out[k] < 0x20 || out[k] == 0x7f)
			goto out;
	if (memchr(colon + 1, '\0', plen) != NULL)
		goto out;
	memcpy(user, out, ulen);
	user[ulen] = '\0';
	memcpy(pass, colon + 1, plen);
	pass[plen] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(out, sizeof out);
	return rc;
}

/* ---------------------------------------------------------------- cache */

struct cache_slot {
	uint8_t key[32];
	uint8_t ukey[32];         /* SHA-256(salt, user): to forget a user */
	double at;                /* 0 = empty */
};

struct fwd_auth_cache {
	pthread_mutex_t mu;
	struct cache_slot *slots;
	size_t mask;
	double ttl;
	uint8_t salt[32];
};

#define CACHE_PROBE 8

static void digest(const uint8_t salt[32], const char *user, const char *pass, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 32;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt, 32) != 1 ||
	    EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
	    (pass != NULL && EVP_DigestUpdate(ctx, pass, strlen(pass)) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1) {
		/* cannot hash: make a key nothing matches */
		memset(out, 0, 32);
		out[0] = 1;
		if (pass != NULL)
			out[1] = 1;
	}
	EVP_MD_CTX_free(ctx);
}

struct fwd_auth_cache *fwd_auth_cache_new(size_t slots, double ttl)
{
	struct fwd_auth_cache *c = calloc(1, sizeof *c);
	size_t n = 16;

	if (c == NULL)
		return NULL;
	while (n < slots && n < ((size_t)1 << 24))
		n <<= 1;
	c->slots = calloc(n, sizeof *c->slots);
	if (c->slots == NULL || RAND_bytes(c->salt, sizeof c->salt) != 1) {
		free(c->slots);
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->ttl = ttl;
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void fwd_auth_cache_free(struct fwd_auth_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->slots);
	free(c);
}

static size_t slot_of(const struct fwd_auth_cache *c, const uint8_t key[32])
{
	size_t h;

	memcpy(&h, key, sizeof h);
	return h & c->mask;
}

int fwd_auth_cache_check(struct fwd_auth_cache *c, const char *user, const char *pass, double now)
{
	uint8_t key[32];
	int hit = 0;

	if (c == NULL || c->ttl <= 0)
		return 0;
	digest(c->salt, user, pass, key);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0, s = slot_of(c, key); i < CACHE_PROBE; i++, s = (s + 1) & c->mask) {
		struct cache_slot *e = &c->slots[s];
		if (e->at != 0 && CRYPTO_memcmp(e->key, key, 32) == 0) {
			hit = now - e->at < c->ttl && now >= e->at;
			if (!hit)
				e->at = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void fwd_auth_cache_put(struct fwd_auth_cache *c, const char *user, const char *pass, double now)
{
	uint8_t key[32], ukey[32];
	struct cache_slot *victim = NULL;

	if (c == NULL || c->ttl <= 0)
		return;
	digest(c->salt, user, pass, key);
	digest(c->salt, user, NULL, ukey);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0, s = slot_of(c, key); i < CACHE_PROBE; i++, s = (s + 1) & c->mask) {
		struct cache_slot *e = &c->slots[s];
		int free_slot = e->at == 0 || now - e->at >= c->ttl;
		if (e->at != 0 && memcmp(e->key, key, 32) == 0) {
			victim = e;
			break;
		}
		/* the first empty or expired slot, else the oldest */
		if (victim == NULL || (free_slot && victim->at != 0 && now - victim->at < c->ttl) ||
		    (!free_slot && victim->at != 0 && now - victim->at < c->ttl && e->at < victim->at))
			victim = e;
	}
	memcpy(victim->key, key, 32);
	memcpy(victim->ukey, ukey, 32);
	victim->at = now;
	pthread_mutex_unlock(&c->mu);
}

void fwd_auth_cache_forget(struct fwd_auth_cache *c, const char *user)
{
	uint8_t ukey[32];

	if (c == NULL)
		return;
	digest(c->salt, user, NULL, ukey);
	pthread_mutex_lock(&c->mu);
	for (size_t s = 0; s <= c->mask; s++)
		if (c->slots[s].at != 0 && memcmp(c->slots[s].ukey, ukey, 32) == 0)
			c->slots[s].at = 0;
	pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- backoff */

enum { BO_EMPTY, BO_CLIENT, BO_USER };

struct bo_slot {
	uint8_t key[16];          /* keyed digest of the address or user name */
	int kind;                 /* BO_* */
	unsigned failures;        /* clients only: user names are never locked out */
	unsigned inflight;
	unsigned pending;         /* shared tables: failures not yet collected */
	int reset;                /* shared tables: a success to pass on */
	double last, until;
};

struct fwd_auth_backoff {
	pthread_mutex_t mu;
	struct bo_slot *slots;
	size_t mask;
	uint8_t salt[32];
	int shared;               /* fwd_auth_backoff_share(): salt alike on every node */
};

struct fwd_auth_backoff *fwd_auth_backoff_new(size_t slots)
{
	struct fwd_auth_backoff *b = calloc(1, sizeof *b);
	size_t n = 16;

	if (b == NULL)
		return NULL;
	while (n < slots && n < ((size_t)1 << 20))
		n <<= 1;
	if ((b->slots = calloc(n, sizeof *b->slots)) == NULL || RAND_bytes(b->salt, sizeof b->salt) != 1) {
		free(b->slots);
		free(b);
		return NULL;
	}
	b->mask = n - 1;
	pthread_mutex_init(&b->mu, NULL);
	return b;
}

void fwd_auth_backoff_free(struct fwd_auth_backoff *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b->slots);
	free(b);
}

/* The text a client is keyed by: "4" + IPv4 (also v4-mapped), "6" + the /64
 * of other IPv6 addresses; 0 if sa is neither. */
static size_t addr_text(const struct sockaddr *sa, char out[17])
{
	memset(out, 0, 17);
	if (sa != NULL && sa->sa_family == AF_INET) {
		out[0] = '4';
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			out[0] = '4';
			memcpy(out + 1, a + 12, 4);
			return 5;
		}
		out[0] = '6';
		memcpy(out + 1, a, 8);
		return 9;
	}
	return 0;
}

/*
 * The slot of (kind, the n bytes at s), made when missing; NULL when none
 * can be had.  Locked.  The key and the probe start come from a digest
 * keyed by the table's random salt.  A slot is reused only when it refuses
 * nobody (see auth.h): evicting a live one would reset its count.
 */
static struct bo_slot *bo_probe(struct fwd_auth_backoff *b, int kind, const uint8_t d[16], double now);

static struct bo_slot *bo_find(struct fwd_auth_backoff *b, int kind, const void *s, size_t n, double now)
{
	uint8_t d[32];
	unsigned int dl = sizeof d;

	if (EVP_Digest(s, n, d, &dl, EVP_sha256(), NULL) != 1)
		return NULL;
	/* keyed: salt, then the digest of the key text (EVP_Digest takes one buffer) */
	uint8_t k[64];
	memcpy(k, b->salt, 32);
	memcpy(k + 32, d, 32);
	k[0] ^= (uint8_t)kind;
	dl = sizeof d;
	if (EVP_Digest(k, sizeof k, d, &dl, EVP_sha256(), NULL) != 1)
		return NULL;
	return bo_probe(b, kind, d, now);
}

/* The slot of the keyed digest d (its first 16 bytes are the key, the first
 * 8 the probe start: a peer's key finds the same slot), made when missing. */
static struct bo_slot *bo_probe(struct fwd_auth_backoff *b, int kind, const uint8_t d[16], double now)
{
	struct bo_slot *victim = NULL;
	uint64_t h;

	memcpy(&h, d, sizeof h);
	for (size_t i = 0, j = h & b->mask; i < CACHE_PROBE; i++, j = (j + 1) & b->mask) {
		struct bo_slot *e = &b->slots[j];
		if (e->kind == kind && memcmp(e->key, d, 16) == 0) {
			if (now - e->last >= FWD_AUTH_FORGET_AFTER && now >= e->until)
				e->failures = 0;
			return e;
		}
		int dead = e->kind == BO_EMPTY || (e->inflight == 0 && e->until <= now &&
		    (e->failures < FWD_AUTH_FREE_FAILURES || now - e->last >= FWD_AUTH_FORGET_AFTER));
		if (dead && (victim == NULL || (victim->kind != BO_EMPTY &&
		    (e->kind == BO_EMPTY || e->last < victim->last))))
			victim = e;
	}
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof *victim);
	victim->kind = kind;
	memcpy(victim->key, d, 16);
	return victim;
}

/* The refusal after the n-th failure (n >= FWD_AUTH_FREE_FAILURES). */
static double bo_delay(unsigned n)
{
	unsigned sh = n - FWD_AUTH_FREE_FAILURES;
	double d = sh >= 6 ? FWD_AUTH_MAX_DELAY : (double)(1u << sh);

	return d > FWD_AUTH_MAX_DELAY ? FWD_AUTH_MAX_DELAY : d;
}

enum fwd_auth_gate fwd_auth_backoff_begin(struct fwd_auth_backoff *b, const struct sockaddr *client,
    const char *user, double now, double *wait)
{
	char a[17];
	size_t an = addr_text(client, a);
	struct bo_slot *e = NULL, *u;
	enum fwd_auth_gate g = FWD_AUTH_BUSY;

	*wait = 1;
	if (b == NULL)
		return FWD_AUTH_GO;
	pthread_mutex_lock(&b->mu);
	if (an > 0 && (e = bo_find(b, BO_CLIENT, a, an, now)) == NULL)
		goto out;                 /* every slot it could have is live: refuse */
	if (e != NULL && e->until > now) {
		*wait = e->until - now;
		g = FWD_AUTH_WAIT;
		goto out;
	}
	if (e != NULL && e->inflight >= FWD_AUTH_FLY_PER)
		goto out;
	if (e != NULL)
		e->inflight++;            /* now live: the user's slot cannot take it */
	u = bo_find(b, BO_USER, user, strlen(user), now);
	if (u == NULL || u->inflight >= FWD_AUTH_FLY_PER) {
		if (e != NULL)
			e->inflight--;
		goto out;
	}
	u->inflight++;
	if (e != NULL) {
		/* charged now, before the check: the next guess already sees it */
		unsigned n = ++e->failures;
		e->last = now;
		if (b->shared)
			e->pending++;
		if (n >= FWD_AUTH_FREE_FAILURES)
			e->until = now + bo_delay(n);
	}
	*wait = 0;
	g = FWD_AUTH_GO;
out:
	pthread_mutex_unlock(&b->mu);
	return g;
}

double fwd_auth_backoff_end(struct fwd_auth_backoff *b, const struct sockaddr *client, const char *user,
    int ok, double now, unsigned *failures)
{
	char a[17];
	size_t an = addr_text(client, a);
	struct bo_slot *e = NULL, *u;
	double w = 0;
	unsigned n = 0;

	if (b != NULL) {
		pthread_mutex_lock(&b->mu);
		/* both are found: their inflight count keeps them from reuse */
		if ((u = bo_find(b, BO_USER, user, strlen(user), now)) != NULL && u->inflight > 0)
			u->inflight--;
		if (an > 0 && (e = bo_find(b, BO_CLIENT, a, an, now)) != NULL) {
			if (e->inflight > 0)
				e->inflight--;
			if (ok) {
				/* others only need to hear of it if they knew of a failure */
				if (b->shared && e->failures > e->pending)
					e->reset = 1;
				e->failures = 0;
				e->pending = 0;
				e->until = 0;
			}
			n = e->failures;
			w = e->until > now ? e->until - now : 0;
		}
		pthread_mutex_unlock(&b->mu);
	}
	if (failures)
		*failures = n;
	return w;
}

void fwd_auth_backoff_share(struct fwd_auth_backoff *b, const char *secret, const char *ns)
{
	static const char label[] = "gatehouse forward-auth backoff v1";
	uint8_t msg[sizeof label + 256];
	size_t nl = strlen(ns) > 255 ? 255 : strlen(ns);
	unsigned int len = sizeof b->salt;

	memcpy(msg, label, sizeof label);       /* with its NUL: label and ns stay apart */
	memcpy(msg + sizeof label, ns, nl);
	pthread_mutex_lock(&b->mu);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, sizeof label + nl, b->salt, &len) != NULL) {
		memset(b->slots, 0, (b->mask + 1) * sizeof *b->slots);   /* keyed by the old salt */
		b->shared = 1;
	}
	pthread_mutex_unlock(&b->mu);
}

size_t fwd_auth_backoff_collect(struct fwd_auth_backoff *b, struct fwd_auth_bo_delta *out, size_t max)
{
	size_t n = 0;

	if (b == NULL || !b->shared)
		return 0;
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i <= b->mask && n < max; i++) {
		struct bo_slot *e = &b->slots[i];
		if (e->kind != BO_CLIENT || (e->pending == 0 && !e->reset))
			continue;
		memcpy(out[n].key, e->key, 16);
		out[n].added = e->pending;
		out[n].reset = e->reset;
		e->pending = 0;
		e->reset = 0;
		n++;
	}
	pthread_mutex_unlock(&b->mu);
	return n;
}

int fwd_auth_backoff_remote(struct fwd_auth_backoff *b, const uint8_t key[16], unsigned total, int reset,
    double now)
{
	struct bo_slot *e;
	int changed = 0;

	if (b == NULL || !b->shared)
		return 0;
	pthread_mutex_lock(&b->mu);
	if (reset) {
		/* only an existing record: a reset never takes a slot */
		uint64_t h;
		memcpy(&h, key, sizeof h);
		for (size_t i = 0, j = h & b->mask; i < CACHE_PROBE; i++, j = (j + 1) & b->mask) {
			e = &b->slots[j];
			if (e->kind == BO_CLIENT && memcmp(e->key, key, 16) == 0) {
				changed = e->failures > e->pending || e->until > now;
				e->failures = e->pending;   /* what happened here since stays */
				e->until = 0;
				break;
			}
		}
	} else if ((e = bo_probe(b, BO_CLIENT, key, now)) != NULL && total + e->pending > e->failures) {
		e->failures = total + e->pending;
		e->last = now;
		if (e->failures >= FWD_AUTH_FREE_FAILURES && now + bo_delay(e->failures) > e->until)
			e->until = now + bo_delay(e->failures);
		changed = 1;
	}
	pthread_mutex_unlock(&b->mu);
	return changed;
}

/* ---------------------------------------------------------------- pool */

struct fwd_auth_pool {
	struct gw_jobs *own;               /* only without a process job pool */
	struct gw_jobs_port *port;         /* done() on the pool thread */
	pthread_mutex_t mu;
	struct fwd_auth_job *flying;       /* queued or being verified (for fwd_auth_pool_join) */
	int stop;
};

/* Without a users file's own dummy (fwd_auth_db_dummy) unknown users are
 * checked against this sha512 setting. */
static const char dummy_setting[] = "$6$gatehouse.unkn$";

static int verify_with(struct crypt_data *cd, const char *pass, const char *hash)
{
	const char *setting = hash ? hash : dummy_setting;
	size_t hl = strlen(setting);
	const char *r;
	int h = htpasswd_verify(pass, setting);

	if (h >= 0)
		return h;
	memset(cd, 0, sizeof *cd);
	r = crypt_r(pass, setting, cd);
	if (hash == NULL || r == NULL || r[0] == '*' || strlen(r) != hl)
		return 0;
	return CRYPTO_memcmp(r, hash, hl) == 0;
}

int fwd_auth_verify(const char *pass, const char *hash)
{
	struct crypt_data *cd = malloc(sizeof *cd);
	int ok;

	if (cd == NULL)
		return 0;
	ok = verify_with(cd, pass, hash);
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return ok;
}

/* done(job) and done(each job that joined it) with result; the jobs are
 * out of the pool's lists already (nobody can join any more). */
static void finish(struct fwd_auth_job *j, struct fwd_auth_job *dups, int result)
{
	j->done(j, result);
	while (dups != NULL) {
		struct fwd_auth_job *next = dups->dups;
		dups->dups = NULL;
		dups->done(dups, result);
		dups = next;
	}
}

/* Take j out of the jobs one can join; returns the ones that joined it.  Locked. */
static struct fwd_auth_job *unfly(struct fwd_auth_pool *p, struct fwd_auth_job *j)
{
	struct fwd_auth_job *dups = j->dups;

	for (struct fwd_auth_job **pp = &p->flying; *pp != NULL; pp = &(*pp)->fnext)
		if (*pp == j) {
			*pp = j->fnext;
			break;
		}
	j->fnext = NULL;
	j->dups = NULL;
	return dups;
}

/* A job pool thread: verify, unless nobody waits for the answer (and
 * nobody joined). */
static void job_run(struct gw_job *gj)
{
	struct fwd_auth_job *j = (struct fwd_auth_job *)gj;
	struct fwd_auth_pool *p = j->pool;
	int skip;

	pthread_mutex_lock(&p->mu);
	skip = atomic_load_explicit(&j->cancelled, memory_order_acquire) && j->dups == NULL;
	if (skip)
		j->dups = unfly(p, j);   /* (NULL) nobody can join it any more */
	pthread_mutex_unlock(&p->mu);
	j->result = skip ? -1 : fwd_auth_verify(j->pass, j->hash);
}

/* A job pool thread after job_run (or, dropped unrun, the thread freeing
 * the pool): answer j and the jobs that joined it. */
static void job_done(struct gw_job *gj, int result)
{
	struct fwd_auth_job *j = (struct fwd_auth_job *)gj;
	struct fwd_auth_pool *p = j->pool;
	struct fwd_auth_job *dups;

	pthread_mutex_lock(&p->mu);
	dups = unfly(p, j);
	pthread_mutex_unlock(&p->mu);
	finish(j, dups, result == GW_JOB_DONE ? j->result : -1);
}

struct fwd_auth_pool *fwd_auth_pool_new(int nthreads, size_t max_queue)
{
	struct fwd_auth_pool *p = calloc(1, sizeof *p);
	struct gw_jobs *jobs = gw_jobs_shared();

	if (p == NULL)
		return NULL;
	if (jobs == NULL && (jobs = p->own = gw_jobs_new(nthreads, 0)) == NULL) {
		free(p);
		return NULL;
	}
	p->port = gw_jobs_port_new(jobs, NULL, max_queue ? max_queue : 1024);
	if (p->port == NULL) {
		gw_jobs_free(p->own);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

int fwd_auth_pool_submit(struct fwd_auth_pool *p, struct fwd_auth_job *job)
{
	int rc;

	job->pool = p;
	job->dups = NULL;
	job->gj.run = job_run;
	job->gj.done = job_done;
	pthread_mutex_lock(&p->mu);
	/* joinable before it can run: the lock keeps job_done from looking first */
	job->fnext = p->flying;
	p->flying = job;
	rc = p->stop ? -1 : gw_jobs_submit(p->port, &job->gj);
	if (rc < 0)
		unfly(p, job);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int same_job(const struct fwd_auth_job *a, const struct fwd_auth_job *b)
{
	size_t n = strlen(a->pass);

	return a->hash != NULL && a->hash == b->hash && n == strlen(b->pass) &&
	    CRYPTO_memcmp(a->pass, b->pass, n) == 0;
}

int fwd_auth_pool_join(struct fwd_auth_pool *p, struct fwd_auth_job *job)
{
	struct fwd_auth_job *j = NULL;

	if (job->hash == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	for (struct fwd_auth_job *q = p->flying; j == NULL && q != NULL; q = q->fnext)
		if (same_job(q, job))
			j = q;
	if (j != NULL && !p->stop) {
		job->dups = j->dups;
		j->dups = job;
	} else {
		j = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	return j != NULL;
}

void fwd_auth_pool_free(struct fwd_auth_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_mutex_unlock(&p->mu);
	/* queued jobs come back through job_done with -1, running ones finish */
	gw_jobs_port_free(p->port);
	gw_jobs_free(p->own);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
