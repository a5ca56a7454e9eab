/*
 * fuzz_policy: the forward policy compiler and evaluator on arbitrary rule
 * text.  The input is a line-oriented description (not libconfig, so the
 * fuzzer spends its time in forward/policy, not in the config parser):
 *
 *   rule [NAME]            start a rule (action deny unless given)
 *   action allow|deny|auth
 *   domain|url|hours|method|scheme|user|group|list TEXT   add a matcher value
 *   port N | client CIDR
 *   entry LIST TEXT        add a line to list LIST (kept in a memfd)
 *   qhost|qurl|qmethod|quser|qgroup TEXT, qscheme http|connect, qport N,
 *   qclient IP, qtime WDAY HH MM, qresolved IP   set the test request
 *   eval                   evaluate the test request (also done at the end)
 *   nopolicy               as if forward.policy were absent
 *
 * Invariants: compile fails iff it reported errors; eval returns NULL iff
 * why says "no rule", otherwise why agrees with the rule accessors; eval is
 * deterministic; fwd_match_format never overflows; no leaks.
 */
#include "forward/domainset.h"
#include "forward/policy.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAXR 16
#define MAXV 8
#define MAXL 4

struct vals {
	char *v[MAXV];
	size_t n;
};

struct rb {
	struct conf_fwd_rule r;
	struct vals users, groups, domains, lists, urls, methods, hours, schemes;
	uint16_t ports[MAXV];
	struct conf_cidr cidrs[MAXV];
};

static void add(struct vals *v, char *s)
{
	if (v->n < MAXV)
		v->v[v->n++] = s;
}

static struct conf_strs strs(struct vals *v)
{
	struct conf_strs s = { v->v, v->n };
	return s;
}

static int parse_sa(const char *txt, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, txt, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return 1;
	}
	if (inet_pton(AF_INET6, txt, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return 1;
	}
	return 0;
}

static struct fwd_matchdata *md;

/* fwd_url_normalise stays inside its buffer, and is idempotent: what the
 * rules see normalises to itself. */
static void check_normalise(const char *url)
{
	static char a[3 * 4096 + FWD_URL_NORM_EXTRA], b[sizeof a * 3 + FWD_URL_NORM_EXTRA];
	size_t len = strlen(url), na, nb;

	if (len > 4096)
		return;
	if (fwd_url_normalise(url, len, a, 3 * len + FWD_URL_NORM_EXTRA, &na) != NULL)
		return;
	FZ_ASSERT(na < 3 * len + FWD_URL_NORM_EXTRA && a[na] == '\0' && strlen(a) == na);
	FZ_ASSERT(fwd_url_normalise(a, na, b, 3 * na + FWD_URL_NORM_EXTRA, &nb) == NULL);
	FZ_ASSERT(nb == na && memcmp(a, b, na) == 0);
}

static void check_eval(const struct fwd_policy *p, const struct fwd_request *rq)
{
	struct fwd_match why, why2;
	const struct fwd_rule *r = fwd_policy_eval(p, rq, &why);
	const struct fwd_rule *r2 = fwd_policy_eval(p, rq, &why2);
	FZ_ASSERT(r == r2 && why.rule_index == why2.rule_index && why.list_entry == why2.list_entry);
	if (!r) {
		FZ_ASSERT(why.rule_index == SIZE_MAX && why.action == CONF_ACT_DENY);
	} else {
		FZ_ASSERT(why.rule_index < fwd_policy_nrules(p));
		FZ_ASSERT(fwd_rule_index(r) == why.rule_index);
		FZ_ASSERT(fwd_policy_rule_name(p, why.rule_index) == why.rule_name);
		FZ_ASSERT(fwd_policy_rule_action(p, why.rule_index) == why.action);
		FZ_ASSERT(!why.url || rq->scheme == FWD_SCHEME_HTTP);
		FZ_ASSERT(!why.list_entry || why.list);
	}
	char small[16], big[512];
	int n = fwd_match_format(&why, small, sizeof(small));
	FZ_ASSERT(n >= 0 && strlen(small) < sizeof(small));
	fwd_match_format(&why, big, sizeof(big));
	FZ_ASSERT(strncmp(small, big, sizeof(small) - 1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rb rules[MAXR];
	static struct conf_fwd_list lists[MAXL];
	static char listpath[MAXL][64];
	int listfd[MAXL];
	size_t nrules = 0, nlists = 0;
	int nopolicy = 0;

	if (size > 8192)
		return 0;
	if (!md)
		md = fwd_matchdata_new();
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct conf cf;
	memset(&cf, 0, sizeof(cf));
	cf.path = "fuzz.conf";
	memset(rules, 0, sizeof(rules));
	memset(lists, 0, sizeof(lists));

	struct fwd_request rq;
	struct sockaddr_storage client, resolved;
	const char *groups[MAXV];
	struct tm tm;
	memset(&rq, 0, sizeof(rq));
	memset(&tm, 0, sizeof(tm));
	parse_sa("10.0.0.1", &client);
	rq.client = (struct sockaddr *)&client;
	rq.method = "GET";
	rq.host = "example.com";
	rq.url = "http://example.com/";
	rq.port = 80;
	rq.groups = groups;
	rq.local_time = &tm;
	rq.md = md;

	/* pass 1: build the conf and the lists; request lines are kept for pass 2 */
	char *save = NULL;
	char *lines[256];
	size_t nlines = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		char *arg = sp ? sp + 1 : line + strlen(line);
		if (sp)
			*sp = '\0';
		struct rb *cur = nrules ? &rules[nrules - 1] : NULL;
		if (strcmp(line, "rule") == 0) {
			if (nrules < MAXR) {
				cur = &rules[nrules];
				cur->r.action = CONF_ACT_DENY;
				cur->r.name = *arg ? arg : NULL;
				cur->r.src.file = "fuzz.conf";
				cur->r.src.line = (int)nrules + 1;
				nrules++;
			}
		} else if (strcmp(line, "nopolicy") == 0) {
			nopolicy = 1;
		} else if (strcmp(line, "entry") == 0) {
			char *sp2 = strchr(arg, ' ');
			if (!sp2)
				continue;
			*sp2 = '\0';
			size_t k;
			for (k = 0; k < nlists && strcmp(lists[k].name, arg) != 0; k++)
				;
			if (k == nlists) {
				if (nlists == MAXL)
					continue;
				listfd[k] = memfd_create("fuzzlist", 0);
				if (listfd[k] < 0)
					continue;
				snprintf(listpath[k], sizeof(listpath[k]), "/proc/self/fd/%d", listfd[k]);
				lists[k].name = arg;
				lists[k].file = listpath[k];
				lists[k].src.file = "fuzz.conf";
				lists[k].src.line = 100 + (int)k;
				nlists++;
			}
			if (write(listfd[k], sp2 + 1, strlen(sp2 + 1)) < 0 || write(listfd[k], "\n", 1) < 0)
				continue;
		} else if (line[0] == 'q' || strcmp(line, "eval") == 0) {
			if (sp)
				*sp = ' ';
			if (nlines < sizeof(lines) / sizeof(lines[0]))
				lines[nlines++] = line;
		} else if (cur) {
			if (strcmp(line, "action") == 0)
				cur->r.action = strcmp(arg, "allow") == 0 ? CONF_ACT_ALLOW :
				    strcmp(arg, "auth") == 0 ? CONF_ACT_AUTH : CONF_ACT_DENY;
			else if (strcmp(line, "domain") == 0)
				add(&cur->domains, arg);
			else if (strcmp(line, "url") == 0)
				add(&cur->urls, arg);
			else if (strcmp(line, "hours") == 0)
				add(&cur->hours, arg);
			else if (strcmp(line, "method") == 0)
				add(&cur->methods, arg);
			else if (strcmp(line, "scheme") == 0)
				add(&cur->schemes, arg);
			else if (strcmp(line, "user") == 0)
				add(&cur->users, arg);
			else if (strcmp(line, "group") == 0)
				add(&cur->groups, arg);
			else if (strcmp(line, "list") == 0)
				add(&cur->lists, arg);
			else if (strcmp(line, "port") == 0 && cur->r.nports < MAXV)
				cur->ports[cur->r.nports++] = (uint16_t)atoi(arg);
			else if (strcmp(line, "client") == 0 && cur->r.clients.n < MAXV &&
			    conf_parse_cidr(arg, &cur->cidrs[cur->r.clients.n]) == NULL)
				cur->r.clients.n++;
		}
	}

	struct conf_fwd_rule crules[MAXR];
	for (size_t i = 0; i < nrules; i++) {
		struct rb *b = &rules[i];
		b->r.users = strs(&b->users);
		b->r.groups = strs(&b->groups);
		b->r.domains = strs(&b->domains);
		b->r.lists = strs(&b->lists);
		b->r.urls = strs(&b->urls);
		b->r.methods = strs(&b->methods);
		b->r.hours = strs(&b->hours);
		b->r.schemes = strs(&b->schemes);
		b->r.ports = b->ports;
		b->r.clients.v = b->cidrs;
		crules[i] = b->r;
	}
	cf.forward.present = 1;
	cf.forward.policy = crules;
	cf.forward.npolicy = nrules;
	cf.forward.policy_present = !nopolicy;
	cf.forward.lists = lists;
	cf.forward.nlists = nlists;

	struct conf_errors errs;
	conf_errors_init(&errs);
	struct fwd_policy *p = fwd_policy_compile(&cf, &errs);
	FZ_ASSERT((p == NULL) == (errs.n > 0));
	conf_errors_free(&errs);
	for (size_t k = 0; k < nlists; k++)
		close(listfd[k]);

	if (p) {
		FZ_ASSERT(fwd_policy_nrules(p) == (nopolicy ? 1 : nrules));
		for (size_t i = 0; i < nlines; i++) {
			char *line = lines[i];
			char *sp = strchr(line, ' ');
			char *arg = sp ? sp + 1 : line + strlen(line);
			if (sp)
				*sp = '\0';
			if (strcmp(line, "eval") == 0)
				check_eval(p, &rq);
			else if (strcmp(line, "qhost") == 0)
				rq.host = arg;
			else if (strcmp(line, "qurl") == 0) {
				rq.url = *arg ? arg : NULL;
				check_normalise(arg);
			}
			else if (strcmp(line, "qmethod") == 0)
				rq.method = arg;
			else if (strcmp(line, "quser") == 0)
				rq.user = *arg ? arg : NULL;
			else if (strcmp(line, "qgroup") == 0 && rq.ngroups < MAXV)
				groups[rq.ngroups++] = arg;
			else if (strcmp(line, "qscheme") == 0)
				rq.scheme = strcmp(arg, "connect") == 0 ? FWD_SCHEME_CONNECT : FWD_SCHEME_HTTP;
			else if (strcmp(line, "qport") == 0)
				rq.port = (uint16_t)atoi(arg);
			else if (strcmp(line, "qclient") == 0)
				rq.client = parse_sa(arg, &client) ? (struct sockaddr *)&client : NULL;
			else if (strcmp(line, "qresolved") == 0) {
				rq.resolved = parse_sa(arg, &resolved) ? (struct sockaddr *)&resolved : NULL;
				if (rq.resolved)
					(void)fwd_dest_denied(p, rq.resolved);
			} else if (strcmp(line, "qtime") == 0) {
				int wd = 0, h = 0, m = 0;
				if (sscanf(arg, "%d %d %d", &wd, &h, &m) == 3) {
					tm.tm_wday = wd;
					tm.tm_hour = h;
					tm.tm_min = m;
				}
			}
		}
		check_eval(p, &rq);
		fwd_policy_free(p);
	}
	free(text);
	return 0;
}
