/*
 * conf_util: the pieces of the configuration subsystem that do not know the
 * schema: the allocation arena every struct conf lives in, the error list,
 * and the text parsers (addresses, CIDRs, sizes) shared with the sides'
 * compilers.  Everything here is pure and thread-safe (the parsers' dynamic
 * messages live in thread-local buffers).
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

/*
 * A chain of blocks; small allocations are carved from the head block, large
 * ones get a block of their own linked behind it (so the head keeps serving).
 */
struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_blk *head;
};

#define ARENA_BLOCK 16384u
#define ARENA_ALIGN (sizeof(max_align_t))

static struct arena_blk *blk_new(size_t cap)
{
	struct arena_blk *b = calloc(1, sizeof(*b) + cap);
	if (!b)
		abort();
	b->cap = cap;
	return b;
}

void *conf_arena_new(void)
{
	struct arena *a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	return a;
}

void *conf_arena_alloc(void *arena, size_t n)
{
	struct arena *a = arena;
	struct arena_blk *b;
	void *p;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN)
		abort();
	n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (n > ARENA_BLOCK / 4) {
		b = blk_new(n);
		b->used = n;
		if (a->head) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			a->head = b;
		}
		return b->data;
	}
	if (!a->head || a->head->cap - a->head->used < n) {
		b = blk_new(ARENA_BLOCK);
		b->next = a->head;
		a->head = b;
	}
	p = (char *)a->head->data + a->head->used;
	a->head->used += n;
	return p;   /* blocks come from calloc and are never reused: already zero */
}

char *conf_arena_strdup(void *arena, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = conf_arena_alloc(arena, n);
	memcpy(p, s, n);
	return p;
}

void conf_arena_free(void *arena)
{
	struct arena *a = arena;
	struct arena_blk *b, *next;

	if (!a)
		return;
	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

/* ---- errors ---- */

void conf_errors_init(struct conf_errors *e)
{
	e->msgs = NULL;
	e->n = e->cap = 0;
}

void conf_errors_free(struct conf_errors *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	conf_errors_init(e);
}

void conf_err(struct conf_errors *e, const char *file, int line, const char *key,
    const char *fmt, ...)
{
	char msg[1024], where[600];
	char *out;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!file)
		file = "?";
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", file, line);
	else
		snprintf(where, sizeof(where), "%s: ", file);
	n = snprintf(NULL, 0, "%s%s%s%s", where, key ? key : "", key ? ": " : "", msg);
	out = malloc((size_t)n + 1);
	if (!out)
		abort();
	snprintf(out, (size_t)n + 1, "%s%s%s%s", where, key ? key : "", key ? ": " : "", msg);
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		char **m = realloc(e->msgs, cap * sizeof(*m));
		if (!m)
			abort();
		e->msgs = m;
		e->cap = cap;
	}
	e->msgs[e->n++] = out;
}

/* ---- addresses ---- */

static int valid_hostname(const char *h)
{
	size_t len = strlen(h), label = 0;
	const char *p;

	if (len == 0 || len > 253)
		return 0;
	for (p = h; *p; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 || len > 1;   /* "example.com." (trailing dot) is fine */
}

const char *conf_parse_addr(const char *text, int allow_name, struct conf_addr *out, void *arena)
{
	char host[256];
	const char *portstr, *p;
	size_t hostlen;
	unsigned long port = 0;
	int bracket = 0;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
	struct gw_addr ga;
	const char *aerr;
	int is_ip;

	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return "empty address; expected \"host:port\", \"[v6]:port\" or \"*:port\"";
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close)
			return "missing ']' after the IPv6 address";
		if (close[1] != ':')
			return "missing port; expected \"[v6]:port\"";
		hostlen = (size_t)(close - text - 1);
		portstr = close + 2;
		bracket = 1;
		text++;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon)
			return "missing port; expected \"host:port\"";
		if (memchr(text, ':', (size_t)(colon - text)))
			return "IPv6 addresses need brackets, e.g. \"[::1]:8080\"";
		hostlen = (size_t)(colon - text);
		portstr = colon + 1;
	}
	if (hostlen == 0)
		return "missing host; expected \"host:port\" (\"*:port\" for all addresses)";
	if (hostlen >= sizeof(host))
		return "host name too long";
	if (!*portstr)
		return "missing port number";
	for (p = portstr; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return "port is not a number";
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > 65535)
			break;
	}
	if (port < 1 || port > 65535)
		return "port must be between 1 and 65535";
	memcpy(host, text, hostlen);
	host[hostlen] = '\0';

	if (!bracket && strcmp(host, "*") == 0) {
		if (allow_name)
			return "the wildcard \"*\" is only for listening addresses";
		host[0] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons((uint16_t)port);
		out->sslen = sizeof(*s6);
	} else if (bracket) {
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return "not a valid IPv6 address";
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		out->sslen = sizeof(*s6);
	} else if ((aerr = gw_addr_parse_host(host, hostlen, &ga, &is_ip)) != NULL) {
		return aerr;   /* "0177.0.0.1" would be a name to evdns, read as 177.0.0.1 */
	} else if (is_ip) {
		out->sslen = gw_addr_to_sa(&ga, (uint16_t)port, &out->ss);
	} else if (strcasecmp(host, "localhost") == 0) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons((uint16_t)port);
		out->sslen = sizeof(*s4);
	} else if (!allow_name) {
		return "not a numeric address (use an IP address, \"*\" or \"localhost\")";
	} else if (!valid_hostname(host)) {
		return "not a valid host name or IP address";
	} else {
		out->is_name = 1;
	}
	out->port = (uint16_t)port;
	out->text = conf_arena_strdup(arena, bracket ? text - 1 : text);
	out->host = conf_arena_strdup(arena, host);
	return NULL;
}

/* ---- CIDRs ---- */

static _Thread_local char cidr_msg[160];

const char *conf_parse_cidr(const char *text, struct conf_cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t alen, nbytes, i;
	unsigned long prefix = 0;
	int maxp, bad = 0;

	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return "empty address; expected \"10.0.0.0/8\", \"::1/128\" or an address";
	slash = strchr(text, '/');
	alen = slash ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(addr))
		return "not an IP address or CIDR (e.g. \"10.0.0.0/8\")";
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	{
		struct gw_addr ga;
		int is_ip;
		/* strict (core/addr.h): "010.0.0.0/8" is not 10.0.0.0/8 to everyone */
		if (gw_addr_parse_host(addr, alen, &ga, &is_ip) != NULL || !is_ip)
			return "not an IP address or CIDR (e.g. \"10.0.0.0/8\")";
		out->family = ga.family;
		memcpy(out->addr, ga.a, sizeof(out->addr));
		maxp = ga.family == AF_INET ? 32 : 128;
	}
	if (slash) {
		const char *p = slash + 1;
		if (!*p)
			return "missing prefix length after '/'";
		for (; *p; p++) {
			if (!isdigit((unsigned char)*p))
				return "prefix length is not a number";
			prefix = prefix * 10 + (unsigned long)(*p - '0');
			if (prefix > 128)
				break;
		}
		if (prefix > (unsigned long)maxp)
			return maxp == 32 ? "prefix length must be between 0 and 32"
			    : "prefix length must be between 0 and 128";
	} else {
		prefix = (unsigned long)maxp;
	}
	out->prefix = (uint8_t)prefix;
	nbytes = (size_t)maxp / 8;
	for (i = 0; i < nbytes; i++) {
		unsigned bits = i * 8 >= prefix ? 0 : (prefix - i * 8 >= 8 ? 8 : (unsigned)(prefix - i * 8));
		uint8_t mask = (uint8_t)(bits ? 0xffu << (8 - bits) : 0);
		if (out->addr[i] & ~mask) {
			bad = 1;
			out->addr[i] &= mask;
		}
	}
	if (bad) {
		char net[INET6_ADDRSTRLEN];
		inet_ntop(out->family, out->addr, net, sizeof(net));
		snprintf(cidr_msg, sizeof(cidr_msg), "host bits set; did you mean %s/%lu?", net, prefix);
		memset(out, 0, sizeof(*out));
		return cidr_msg;
	}
	/* ::ffff:a.b.c.d/n (n >= 96) is the v4 network: clients are matched as v4 */
	if (out->family == AF_INET6 && prefix >= 96) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(out->addr, mapped, 12) == 0) {
			memmove(out->addr, out->addr + 12, 4);
			memset(out->addr + 4, 0, 12);
			out->family = AF_INET;
			out->prefix = (uint8_t)(prefix - 96);
		}
	}
	return NULL;
}

int conf_cidr_match_addr(const struct conf_cidrs *set, const struct gw_addr *a)
{
	size_t i;

	if (!set || !a)
		return 0;
	for (i = 0; i < set->n; i++)
		if (gw_addr_in_prefix(a, set->v[i].family, set->v[i].addr, set->v[i].prefix))
			return 1;
	return 0;
}

int conf_cidr_match(const struct conf_cidrs *set, const struct sockaddr *sa)
{
	struct gw_addr a;

	if (!set || gw_addr_from_sa(sa, &a) < 0)
		return 0;
	return conf_cidr_match_addr(set, &a);
}

/* ---- sizes ---- */

const char *conf_parse_size(const char *text, uint64_t *out)
{
	const char *p = text;
	uint64_t v = 0, mult = 1;

	if (!p || !*p)
		return "empty size; expected bytes or a number with k, M or G (e.g. \"64k\")";
	if (!isdigit((unsigned char)*p))
		return "not a size; expected bytes or a number with k, M or G (e.g. \"64k\")";
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return "size too large";
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = 1024ull; p++; break;
	case 'm': case 'M': mult = 1024ull * 1024; p++; break;
	case 'g': case 'G': mult = 1024ull * 1024 * 1024; p++; break;
	default:
		return "not a size; expected bytes or a number with k, M or G (e.g. \"64k\")";
	}
	if (*p)
		return "not a size; expected bytes or a number with k, M or G (e.g. \"64k\")";
	if (v > UINT64_MAX / mult)
		return "size too large";
	*out = v * mult;
	return NULL;
}
