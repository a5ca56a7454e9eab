/*
 * fuzz_domainlist: the squidGuard/UT1 list parser and lookups of
 * forward/domainset on arbitrary bytes.  The input is loaded as a list; then
 * every input line (raw, and with a "sub." prefix) is looked up.
 * Invariants: no crash or leak; count + invalid lines <= lines in the input;
 * a reported entry lies inside the set, matches itself (and, for a domain
 * entry, its subdomains) and is reported again for itself.
 */
#include "forward/domainset.h"
#include "fuzz.h"

#include <string.h>

static void check_host(const struct fwd_domainset *ds, const char *h, size_t len)
{
	const char *e = NULL;
	if (!fwd_domainset_match(ds, h, len, &e))
		return;
	FZ_ASSERT(e != NULL);
	size_t elen = strlen(e);
	FZ_ASSERT(elen > 0 && elen <= 253);
	const char *e2 = NULL;
	FZ_ASSERT(fwd_domainset_match(ds, e, elen, &e2));
	FZ_ASSERT(e2 == e);   /* an entry is its own longest match */
	/* a domain entry, and "sub.<e>" is still a valid host length */
	if (!strchr(e, ':') && strspn(e, "0123456789.") != elen && elen + 4 <= 253) {
		char sub[300];
		memcpy(sub, "sub.", 4);
		memcpy(sub + 4, e, elen);
		FZ_ASSERT(fwd_domainset_match(ds, sub, elen + 4, &e2));
		FZ_ASSERT(strlen(e2) >= elen);   /* "sub.<e>" may itself be listed */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char err[128];
	struct fwd_domainset *ds = fwd_domainset_from_buffer(in, size, err, sizeof(err));
	if (!ds)
		return 0;   /* out of memory only */

	size_t lines = 0;
	for (size_t i = 0; i < size; i++)
		lines += in[i] == '\n';
	if (size && in[size - 1] != '\n')
		lines++;
	size_t first = 0;
	size_t invalid = fwd_domainset_invalid(ds, &first);
	FZ_ASSERT(fwd_domainset_count(ds) + invalid <= lines);
	FZ_ASSERT((invalid == 0) == (first == 0));
	FZ_ASSERT(first <= lines);

	char host[600];
	size_t ls = 0, n = 0;
	for (size_t i = 0; i <= size && n < 2000; i++) {
		if (i < size && in[i] != '\n')
			continue;
		size_t len = i - ls;
		check_host(ds, in + ls, len);
		if (len + 4 <= sizeof(host)) {
			memcpy(host, "sub.", 4);
			memcpy(host + 4, in + ls, len);
			check_host(ds, host, len + 4);
		}
		ls = i + 1;
		n++;
	}
	fwd_domainset_free(ds);
	return 0;
}
