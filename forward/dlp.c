/*
 * forward/dlp.c: the DLP engine (see dlp.h for the contract).
 *
 * Built-in detectors are one pass of small state machines over the byte
 * stream, not regexes.  While no detector is in the middle of a candidate,
 * the scanner skips bytes until the next ASCII digit (every built-in match
 * contains a digit at a position we can trigger on), so ordinary text runs
 * through a tight loop.  Only three bytes of history are kept for the
 * lookback at a trigger; all other state lives in the machines:
 *
 *   numeric runs   digit groups joined by single ' ' or '-' (cards, SSNs).
 *                  The last 19 digits of the run are kept with flags marking
 *                  which digits may start a card; a card may start at any
 *                  group start and end at any group end, so
 *                  "4111 1111 1111 1111 123" still finds the card but
 *                  "41111111111111111234" (one 20-digit group) does not.
 *                  When a group closes, the Luhn sums for every possible
 *                  start are computed in one backward pass (O(19)).
 *                  A run touching a letter, or a '.' between digits
 *                  (0.4111111111111111, 4111111111111111.5), is a decimal
 *                  or an identifier, not a card or SSN.
 *   IBAN           a candidate starts at a digit preceded by two letters
 *                  that begin a word; it is advanced char by char (at most
 *                  10 can overlap, see IBAN_MAXC) and checked with mod-97
 *                  once it has exactly the country's length and is followed
 *                  by a non-alphanumeric byte or the end of input.  Where
 *                  the registry format starts the BBAN with digits, letters
 *                  there are refused (hex ids like "be6812ab34cd56ef" pass
 *                  mod-97 once in 97 and would otherwise be Belgian IBANs).
 *
 * Card issuer prefixes: Luhn alone flags 1 in 10 random digit strings, so a
 * number must also carry a known brand prefix with a length valid for that
 * brand: Visa 4 (13, 16, 19), Mastercard 51-55 and 2221-2720 (16), Amex
 * 34/37 (15), Discover 6011/644-649/65 (16-19), UnionPay 62 (16-19), JCB
 * 3528-3589 (16-19), Diners 300-305/3095/36/38/39 (14-19), Mir 2200-2204
 * (16-19).  Not covered: Maestro-only ranges (50, 56-58, 6x outside the
 * above), RuPay, Verve and other domestic schemes.
 *
 * Custom patterns run over a bounded window: the new bytes plus, per
 * pattern, the bytes from where its last attempt reached the end of the
 * window (PCRE2_PARTIAL_HARD reports that start) and, before it, the
 * longest lookbehind of any pattern + 1 bytes of context.  A complete match
 * under PARTIAL_HARD never depended on bytes past the window end (\b, $
 * and \z there give a partial), so it is final; the last attempt runs
 * without partial matching in finish().  Restarting at an offset > 0
 * (there is always context unless we are at the true start) keeps ^ and \A
 * from matching in the middle of the stream.  A pending attempt is never
 * kept further back than FWD_DLP_MAX_PATTERN_SPAN bytes: bounded patterns
 * never reach that clamp, so for them the answer is exactly the one-shot
 * answer.  A match attempt that exceeds MATCH_LIMIT counts as no match.
 */
#include "core/http1.h"
#include "forward/dlp.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLP_MAGIC 0x444c5031u    /* "DLP1" */
#define SCAN_MAGIC 0x444c5053u   /* "DLPS" */

#define CHUNK 4096               /* bytes processed per step (decode + detect) */
#define NR_KEEP 19               /* longest card */
#define NR_BUF 48                /* digits buffered before compacting to NR_KEEP */
#define IBAN_MAX 34
#define IBAN_MAXC 12             /* starts are >= 4 bytes apart, a candidate lives <= 40 bytes */
#define MATCH_LIMIT 1000000u

/* ---------- byte classes ---------- */

static inline int is_digit(unsigned c) { return c - '0' < 10u; }
static inline int is_alpha(unsigned c) { return (c | 0x20u) - 'a' < 26u; }
static inline int is_alnum(unsigned c) { return is_digit(c) || is_alpha(c); }

/* ---------- compiled engine ---------- */

struct dlp_pat {
	char *name;
	pcre2_code *code;
};

struct fwd_dlp {
	uint32_t magic;
	int card, iban, ssn;
	struct dlp_pat *pats;
	size_t npats;
	size_t ctx;                  /* context kept before a restart offset (>= 1) */
	pcre2_match_context *mctx;
};

/* ---------- scanner state ---------- */

enum nr_state { NR_IDLE, NR_DIGITS, NR_SEP, NR_DOT };

/* join-before values of a group */
#define J_START_OK 0
#define J_START_BAD 1

struct nr_group {
	uint8_t len;                 /* capped at 255 */
	uint8_t join;                /* J_START_*, ' ' or '-' */
	uint16_t val;                /* value of the first <= 4 digits */
	uint64_t off;                /* stream offset of the first digit */
};

struct numrun {
	enum nr_state st;
	uint8_t sep;                 /* NR_SEP: the separator seen */
	uint8_t n;                   /* digits in d[] */
	uint8_t d[NR_BUF];
	uint8_t gs[NR_BUF];          /* digit starts a group that may start a card */
	uint64_t off[NR_BUF];
	/* ring of the last groups; g[gi] is the newest (open until closed).
	 * A ring, not a shifted array: copying a just-written struct costs a
	 * store-forwarding stall per group. */
	struct nr_group g[4];
	unsigned gi;
	unsigned ng;                 /* closed groups in this run (capped at 3) */
};

struct iban_cand {
	uint8_t len;                 /* registry length for the country */
	uint8_t nnum;                /* leading BBAN characters that must be digits */
	uint8_t n;                   /* compact characters so far */
	uint8_t space_ok;
	uint32_t r;                  /* mod 97 over the BBAN so far */
	uint64_t off;
	char ch[IBAN_MAX];           /* upper-cased compact characters */
};

struct fwd_dlp_scan {
	uint32_t magic;
	const struct fwd_dlp *dlp;
	enum fwd_dlp_mode mode;
	int hit_set, finished;
	struct fwd_dlp_hit hit;
	uint64_t off;                /* decoded bytes handed to the detectors */

	/* form decoding: 0 plain, 1 after '%', 2 after '%' + one hex digit */
	int pct;
	uint8_t pct_c;

	uint32_t hist;               /* last three bytes, newest in the low byte; 0 at start */
	struct numrun nr;
	struct iban_cand ib[IBAN_MAXC];
	unsigned nib;

	/* buffer: window for patterns ([0, wlen) = stream [wbase, wbase+wlen)),
	 * followed by room for one CHUNK of new bytes */
	uint8_t *buf;
	size_t bufcap, wlen;
	uint64_t wbase;
	uint64_t *next;              /* per pattern: stream offset of the next attempt */
	pcre2_match_data *md;
};

/* ---------- IBAN registry (SWIFT IBAN registry, 2024) ---------- */

/* cc, total length, leading BBAN characters that are digits in the
 * registry format (0 = not encoded; the rest is only checked as
 * alphanumeric).  The digit rule keeps hex tokens such as a 16-character
 * session id starting "be12" from passing as a Belgian IBAN. */
static const struct { char cc[3]; uint8_t len, nnum; } iban_countries[] = {
	{"AD", 24, 8}, {"AE", 23, 19}, {"AL", 28, 8}, {"AT", 20, 16}, {"AZ", 28, 0}, {"BA", 20, 16},
	{"BE", 16, 12}, {"BG", 22, 0}, {"BH", 22, 0}, {"BI", 27, 23}, {"BR", 29, 23}, {"BY", 28, 0},
	{"CH", 21, 5}, {"CR", 22, 18}, {"CY", 28, 8}, {"CZ", 24, 20}, {"DE", 22, 18}, {"DJ", 27, 23},
	{"DK", 18, 14}, {"DO", 28, 0}, {"EE", 20, 16}, {"EG", 29, 25}, {"ES", 24, 20}, {"FI", 18, 14},
	{"FK", 18, 0}, {"FO", 18, 14}, {"FR", 27, 10}, {"GB", 22, 0}, {"GE", 22, 0}, {"GI", 23, 0},
	{"GL", 18, 14}, {"GR", 27, 7}, {"GT", 28, 0}, {"HN", 28, 0}, {"HR", 21, 17}, {"HU", 28, 24},
	{"IE", 22, 0}, {"IL", 23, 19}, {"IQ", 23, 0}, {"IS", 26, 22}, {"IT", 27, 0}, {"JO", 30, 0},
	{"KW", 30, 0}, {"KZ", 20, 3}, {"LB", 28, 4}, {"LC", 32, 0}, {"LI", 21, 5}, {"LT", 20, 16},
	{"LU", 20, 3}, {"LV", 21, 0}, {"LY", 25, 21}, {"MC", 27, 10}, {"MD", 24, 0}, {"ME", 22, 18},
	{"MK", 19, 3}, {"MN", 20, 16}, {"MR", 27, 23}, {"MT", 31, 0}, {"MU", 30, 0}, {"NI", 28, 0},
	{"NL", 18, 0}, {"NO", 15, 11}, {"OM", 23, 3}, {"PK", 24, 0}, {"PL", 28, 24}, {"PS", 29, 0},
	{"PT", 25, 21}, {"QA", 29, 0}, {"RO", 24, 0}, {"RS", 22, 18}, {"RU", 33, 14}, {"SA", 24, 2},
	{"SC", 31, 0}, {"SD", 18, 14}, {"SE", 24, 20}, {"SI", 19, 15}, {"SK", 24, 20}, {"SM", 27, 0},
	{"SO", 23, 19}, {"ST", 25, 21}, {"SV", 28, 0}, {"TL", 23, 19}, {"TN", 24, 20}, {"TR", 26, 6},
	{"UA", 29, 6}, {"VA", 22, 18}, {"VG", 24, 0}, {"XK", 20, 16}, {"YE", 30, 0},
};

/* Index into iban_countries, or -1. */
static int iban_country(unsigned a, unsigned b)
{
	char c0 = (char)(a & ~0x20u), c1 = (char)(b & ~0x20u);
	size_t lo = 0, hi = sizeof iban_countries / sizeof iban_countries[0];

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = c0 != iban_countries[mid].cc[0] ? c0 - iban_countries[mid].cc[0]
		    : c1 - iban_countries[mid].cc[1];
		if (cmp == 0)
			return (int)mid;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static inline uint32_t mod97_add(uint32_t r, unsigned ch)
{
	if (is_digit(ch))
		return (r * 10 + (ch - '0')) % 97;
	return (r * 100 + ((ch | 0x20u) - 'a' + 10)) % 97;
}

/* ---------- hits and redaction ---------- */

static void set_hit(struct fwd_dlp_scan *sc, enum fwd_dlp_kind kind, const char *name,
    uint64_t off)
{
	sc->hit_set = 1;
	sc->hit.kind = kind;
	sc->hit.detector = name;
	sc->hit.offset = off;
}

/* "***-****-****-1111" style: last 4 digits, stars grouped by 4 from the right. */
static void redact_card(char *out, const uint8_t *d, unsigned n)
{
	char tmp[48];
	unsigned k = 0, i;

	for (i = 0; i < 4; i++)
		tmp[k++] = (char)('0' + d[n - 1 - i]);
	for (i = 4; i < n; i++) {
		if (i % 4 == 0)
			tmp[k++] = '-';
		tmp[k++] = '*';
	}
	for (i = 0; i < k; i++)
		out[i] = tmp[k - 1 - i];
	out[k] = '\0';
}

/* ---------- numeric runs: cards and SSNs ---------- */

/* Known brand prefix and a length valid for it; d[0..n) are digit values. */
static int card_brand_ok(const uint8_t *d, unsigned n)
{
	unsigned p2 = d[0] * 10u + d[1];
	unsigned p3 = p2 * 10u + d[2];
	unsigned p4 = p3 * 10u + d[3];

	if (d[0] == 4)
		return n == 13 || n == 16 || n == 19;
	if (p2 == 34 || p2 == 37)
		return n == 15;
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
		return n == 16;
	if (p4 >= 2200 && p4 <= 2204)
		return n >= 16;
	if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 || p2 == 62)
		return n >= 16;
	if (p4 >= 3528 && p4 <= 3589)
		return n >= 16;
	if ((p3 >= 300 && p3 <= 305) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
		return n >= 14;
	return 0;
}

/* A group just closed and may end a card: try every start.  Luhn is summed
 * from the right once; at each permitted start we know the sum. */
static int card_check(struct fwd_dlp_scan *sc)
{
	struct numrun *nr = &sc->nr;
	unsigned sum = 0, cnt = 0;
	int i;

	if (nr->n < 13)
		return 0;
	for (i = nr->n - 1; i >= 0 && cnt < 19; i--, cnt++) {
		unsigned v = nr->d[i];
		if (cnt & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
		if (cnt + 1 >= 13 && nr->gs[i] && sum % 10 == 0 &&
		    card_brand_ok(nr->d + i, cnt + 1)) {
			set_hit(sc, FWD_DLP_CREDIT_CARD, "credit_card", nr->off[i]);
			redact_card(sc->hit.redacted, nr->d + i, cnt + 1);
			return 1;
		}
	}
	return 0;
}

/* May a neighbour joined by j sit next to an SSN separated by s? */
static int ssn_join_ok(unsigned s, unsigned j)
{
	return s == '-' && j == ' ';
}

/* closure: ' ' or '-' (joined to a following group), 1 (end, boundary ok),
 * 0 (end touching a letter or continuing as a decimal). */
static int ssn_check(struct fwd_dlp_scan *sc, unsigned closure)
{
	struct numrun *nr = &sc->nr;
	const struct nr_group *a = &nr->g[(nr->gi - 2) & 3], *g = &nr->g[(nr->gi - 1) & 3];
	const struct nr_group *s = &nr->g[nr->gi];
	unsigned sep = g->join;
	char *o;

	if (nr->ng < 3 || a->len != 3 || g->len != 2 || s->len != 4)
		return 0;
	if ((sep != ' ' && sep != '-') || s->join != sep)
		return 0;
	if (a->join == J_START_BAD)
		return 0;
	if (a->join != J_START_OK && !ssn_join_ok(sep, a->join))
		return 0;
	if (closure == 0)
		return 0;
	if (closure != 1 && !ssn_join_ok(sep, closure))
		return 0;
	if (a->val == 0 || a->val == 666 || a->val >= 900 || g->val == 0 || s->val == 0)
		return 0;
	set_hit(sc, FWD_DLP_US_SSN, "us_ssn", a->off);
	o = sc->hit.redacted;
	memcpy(o, "***-**-", 7);
	o[7] = (char)('0' + s->val / 1000);
	o[8] = (char)('0' + s->val / 100 % 10);
	o[9] = (char)('0' + s->val / 10 % 10);
	o[10] = (char)('0' + s->val % 10);
	o[11] = '\0';
	return 1;
}

/* Close the open group.  closure as for ssn_check. */
static int nr_close(struct fwd_dlp_scan *sc, unsigned closure)
{
	struct numrun *nr = &sc->nr;
	const struct fwd_dlp *dlp = sc->dlp;

	if (nr->ng < 3)
		nr->ng++;
	if (closure == 0)
		return 0;
	if (dlp->card && card_check(sc))
		return 1;
	if (dlp->ssn && ssn_check(sc, closure))
		return 1;
	return 0;
}

static inline void nr_digit(struct numrun *nr, unsigned v, int may_start, uint64_t off)
{
	struct nr_group *cur = &nr->g[nr->gi];

	if (nr->n == NR_BUF) {
		memmove(nr->d, nr->d + NR_BUF - NR_KEEP, NR_KEEP);
		memmove(nr->gs, nr->gs + NR_BUF - NR_KEEP, NR_KEEP);
		memmove(nr->off, nr->off + NR_BUF - NR_KEEP, NR_KEEP * sizeof nr->off[0]);
		nr->n = NR_KEEP;
	}
	nr->d[nr->n] = (uint8_t)v;
	nr->gs[nr->n] = (uint8_t)may_start;
	if (may_start)           /* only a group start can start a card */
		nr->off[nr->n] = off;
	nr->n++;
	if (cur->len < 4)
		cur->val = (uint16_t)(cur->val * 10 + v);
	if (cur->len < 255)
		cur->len++;
}

static void nr_group_open(struct numrun *nr, unsigned join, uint64_t off)
{
	struct nr_group *g;

	nr->gi = (nr->gi + 1) & 3;
	g = &nr->g[nr->gi];
	g->len = 0;
	g->val = 0;
	g->join = (uint8_t)join;
	g->off = off;
}

/* One byte through the numeric-run machine.  h1, h2: the two bytes before. */
static int nr_step(struct fwd_dlp_scan *sc, unsigned c, unsigned h1, unsigned h2, uint64_t off)
{
	struct numrun *nr = &sc->nr;

	if (is_digit(c)) {
		int ok;

		if (nr->st == NR_DIGITS) {
			nr_digit(nr, c - '0', 0, off);
			return 0;
		}
		if (nr->st == NR_SEP) {
			unsigned sep = nr->sep;
			nr->st = NR_DIGITS;
			if (nr_close(sc, sep))
				return 1;
			nr_group_open(nr, sep, off);
			nr_digit(nr, c - '0', 1, off);
			return 0;
		}
		if (nr->st == NR_DOT)   /* "1.5": the run before was a decimal's integer part */
			nr_close(sc, 0);
		/* a new run; h1/h2 say whether it may start a match */
		ok = !is_alnum(h1) && !(h1 == '.' && is_digit(h2));
		nr->st = NR_DIGITS;
		nr->n = 0;
		nr->ng = 0;
		nr_group_open(nr, ok ? J_START_OK : J_START_BAD, off);
		nr_digit(nr, c - '0', ok, off);
		return 0;
	}
	switch (nr->st) {
	case NR_DIGITS:
		if (c == ' ' || c == '-') {
			nr->st = NR_SEP;
			nr->sep = (uint8_t)c;
			return 0;
		}
		if (c == '.') {
			nr->st = NR_DOT;
			return 0;
		}
		nr->st = NR_IDLE;
		return nr_close(sc, is_alpha(c) ? 0 : 1);
	case NR_SEP:
	case NR_DOT:
		nr->st = NR_IDLE;
		return nr_close(sc, 1);
	case NR_IDLE:
	default:
		return 0;
	}
}

/* ---------- IBAN ---------- */

static int iban_final(struct fwd_dlp_scan *sc, const struct iban_cand *ca)
{
	uint32_t r = ca->r;
	char *o = sc->hit.redacted;
	unsigned i;

	for (i = 0; i < 4; i++)
		r = mod97_add(r, (unsigned char)ca->ch[i]);
	if (r != 1)
		return 0;
	set_hit(sc, FWD_DLP_IBAN, "iban", ca->off);
	o[0] = ca->ch[0];
	o[1] = ca->ch[1];
	for (i = 2; i < ca->len - 4u; i++)
		o[i] = '*';
	memcpy(o + i, ca->ch + ca->len - 4, 4);
	o[i + 4] = '\0';
	return 1;
}

/* Advance every live candidate by c (c < 0: end of input).  Returns 1 on a hit. */
static int iban_step(struct fwd_dlp_scan *sc, int c)
{
	unsigned i, k = 0;
	int hit = 0;

	for (i = 0; i < sc->nib; i++) {
		struct iban_cand *ca = &sc->ib[i];
		int keep = 0;

		if (hit) {
			keep = 1;
		} else if (ca->n == ca->len) {
			if (c < 0 || !is_alnum((unsigned)c))
				hit = iban_final(sc, ca);
		} else if (c >= 0 && is_alnum((unsigned)c)) {
			/* index 3: the 2nd check digit; then the numeric BBAN prefix */
			if (is_digit((unsigned)c) || (ca->n != 3 && ca->n >= 4u + ca->nnum)) {
				ca->ch[ca->n++] = (char)(is_alpha((unsigned)c) ? (c & ~0x20) : c);
				if (ca->n > 4)
					ca->r = mod97_add(ca->r, (unsigned)c);
				ca->space_ok = ca->n % 4 == 0;
				keep = 1;
			}
		} else if (c == ' ' && ca->space_ok) {
			ca->space_ok = 0;
			keep = 1;
		}
		if (keep) {
			if (k != i)
				sc->ib[k] = *ca;
			k++;
		}
	}
	sc->nib = k;
	return hit;
}

/* A digit c at off with the three bytes before it in sc->hist: start an IBAN? */
static void iban_maybe_start(struct fwd_dlp_scan *sc, unsigned c, uint64_t off)
{
	unsigned h1 = sc->hist >> 8 & 0xff, h2 = sc->hist & 0xff, h0 = sc->hist >> 16 & 0xff;
	struct iban_cand *ca;
	int ci;

	if (!is_alpha(h2) || !is_alpha(h1) || is_alnum(h0))
		return;
	ci = iban_country(h1, h2);
	if (ci < 0 || sc->nib == IBAN_MAXC)   /* full cannot happen, see IBAN_MAXC */
		return;
	ca = &sc->ib[sc->nib++];
	ca->len = iban_countries[ci].len;
	ca->nnum = iban_countries[ci].nnum;
	ca->n = 3;
	ca->space_ok = 0;
	ca->r = 0;
	ca->off = off - 2;
	ca->ch[0] = (char)(h1 & ~0x20u);
	ca->ch[1] = (char)(h2 & ~0x20u);
	ca->ch[2] = (char)c;
}

/* ---------- built-in pass over decoded bytes ---------- */

/* The last three bytes of p[0..n) shifted into h. */
static inline uint32_t hist_of(uint32_t h, const uint8_t *p, size_t n)
{
	if (n >= 3)
		return (uint32_t)p[n - 3] << 16 | (uint32_t)p[n - 2] << 8 | p[n - 1];
	while (n--)
		h = (h << 8 | *p++) & 0xffffff;
	return h;
}

static int builtins_scan(struct fwd_dlp_scan *sc, const uint8_t *p, size_t n)
{
	const struct fwd_dlp *dlp = sc->dlp;
	struct numrun *nr = &sc->nr;
	const int want_nr = dlp->card || dlp->ssn;
	uint64_t base = sc->off;
	size_t i = 0;

	while (i < n) {
		unsigned c;
		uint64_t off;

		if (sc->nib == 0) {
			if (nr->st == NR_IDLE) {
				/* nothing in flight: only a digit can start anything */
				size_t j = i;
				while (j < n && !is_digit(p[j]))
					j++;
				sc->hist = hist_of(sc->hist, p + i, j - i);
				i = j;
				if (i == n)
					break;
			} else if (nr->st == NR_DIGITS && is_digit(p[i])) {
				/* inside a digit group: append the rest of it */
				size_t j = i;
				do {
					nr_digit(nr, p[j] - '0', 0, 0);
					j++;
				} while (j < n && is_digit(p[j]));
				sc->hist = hist_of(sc->hist, p + i, j - i);
				i = j;
				continue;
			}
		}
		c = p[i];
		off = base + i;
		if ((sc->nib && iban_step(sc, (int)c)) ||
		    (want_nr && nr_step(sc, c, sc->hist & 0xff, sc->hist >> 8 & 0xff, off))) {
			sc->off = off + 1;
			return 1;
		}
		if (dlp->iban && is_digit(c))
			iban_maybe_start(sc, c, off);
		sc->hist = (sc->hist << 8 | c) & 0xffffff;
		i++;
	}
	sc->off = base + n;
	return 0;
}

static int builtins_finish(struct fwd_dlp_scan *sc)
{
	if (sc->nib && iban_step(sc, -1))
		return 1;
	if (sc->nr.st != NR_IDLE) {
		sc->nr.st = NR_IDLE;
		if (nr_close(sc, 1))
			return 1;
	}
	return 0;
}

/* ---------- custom patterns ---------- */

static void redact_pattern(char *out, const uint8_t *m, size_t len)
{
	size_t show = len >= 6 ? 2 : len >= 3 ? 1 : 0, i;

	for (i = 0; i < show; i++)
		out[i] = (m[i] > 0x20 && m[i] < 0x7f && m[i] != '"' && m[i] != '\\')
		    ? (char)m[i] : '?';
	snprintf(out + show, 48 - show, "***(%zu)", len);
}

/* Run every pattern over the window; final: the stream has ended. */
static int patterns_run(struct fwd_dlp_scan *sc, int final)
{
	const struct fwd_dlp *dlp = sc->dlp;
	uint64_t end = sc->wbase + sc->wlen, keep;
	uint32_t opts = PCRE2_NOTEMPTY | (final ? 0 : PCRE2_PARTIAL_HARD);
	size_t k;

	for (k = 0; k < dlp->npats; k++) {
		PCRE2_SIZE *ov;
		int rc;

		if (sc->next[k] >= end && !final)
			continue;
		rc = pcre2_match(dlp->pats[k].code, sc->buf, sc->wlen,
		    (PCRE2_SIZE)(sc->next[k] - sc->wbase), opts, sc->md, dlp->mctx);
		ov = pcre2_get_ovector_pointer(sc->md);
		if (rc >= 0) {
			size_t s = ov[0], e = ov[1];
			if (e < s)      /* \K inside a lookahead can do this */
				e = s;
			set_hit(sc, FWD_DLP_PATTERN, dlp->pats[k].name, sc->wbase + s);
			redact_pattern(sc->hit.redacted, sc->buf + s, e - s);
			return 1;
		}
		if (rc == PCRE2_ERROR_PARTIAL)
			sc->next[k] = sc->wbase + ov[0];
		else    /* no match, or a limit: nothing starts before the end */
			sc->next[k] = end;
		if (end - sc->next[k] > FWD_DLP_MAX_PATTERN_SPAN)
			sc->next[k] = end - FWD_DLP_MAX_PATTERN_SPAN;
	}
	/* keep the context before the earliest pending attempt */
	keep = end;
	for (k = 0; k < dlp->npats; k++)
		if (sc->next[k] < keep)
			keep = sc->next[k];
	keep = keep > dlp->ctx ? keep - dlp->ctx : 0;
	if (keep > sc->wbase) {
		size_t drop = (size_t)(keep - sc->wbase);
		memmove(sc->buf, sc->buf + drop, sc->wlen - drop);
		sc->wlen -= drop;
		sc->wbase = keep;
	}
	return 0;
}

/* ---------- driving ---------- */

/* Decode form bytes into out (room for at least 3 more bytes per input
 * byte is checked); returns bytes written, *used = input consumed. */
static size_t form_decode(struct fwd_dlp_scan *sc, const uint8_t *in, size_t n, uint8_t *out,
    size_t cap, size_t *used)
{
	size_t i = 0, o = 0;
	int pct = sc->pct;            /* locals: stores to out may alias sc */
	unsigned pc = sc->pct_c;

	while (i < n && o + 3 <= cap) {
		unsigned c = in[i++];
		int h;

		if (pct == 0) {
			/* the common case: plain bytes */
			if (c != '%' && c != '+') {
				out[o++] = (uint8_t)c;
				continue;
			}
		} else if (pct == 1) {
			if (gw_hexval((int)c) >= 0) {
				pct = 2;
				pc = c;
				continue;
			}
			out[o++] = '%';
			pct = 0;
		} else {
			if ((h = gw_hexval((int)c)) >= 0) {
				out[o++] = (uint8_t)(gw_hexval((int)pc) * 16 + h);
				pct = 0;
				continue;
			}
			out[o++] = '%';
			out[o++] = (uint8_t)pc;
			pct = 0;
		}
		if (c == '%')
			pct = 1;
		else
			out[o++] = c == '+' ? ' ' : (uint8_t)c;
	}
	sc->pct = pct;
	sc->pct_c = (uint8_t)pc;
	*used = i;
	return o;
}

/* Scan n decoded bytes that sit at buf + wlen (patterns or form) or at p. */
static int scan_piece(struct fwd_dlp_scan *sc, const uint8_t *p, size_t n)
{
	const struct fwd_dlp *dlp = sc->dlp;

	if (dlp->card || dlp->iban || dlp->ssn) {
		if (builtins_scan(sc, p, n))
			return 1;
	} else {
		sc->off += n;
	}
	if (dlp->npats) {
		sc->wlen += n;
		return patterns_run(sc, 0);
	}
	return 0;
}

int fwd_dlp_scan_feed(struct fwd_dlp_scan *sc, const char *data, size_t len)
{
	const uint8_t *in = (const uint8_t *)data;

	if (sc->magic != SCAN_MAGIC)
		abort();
	if (sc->hit_set)
		return 1;
	if (sc->finished)
		return 0;
	while (len > 0) {
		if (sc->buf == NULL) {         /* raw, built-ins only: no copy */
			size_t n = len < CHUNK ? len : CHUNK;
			if (scan_piece(sc, in, n))
				return 1;
			in += n;
			len -= n;
			continue;
		}
		{
			uint8_t *dst = sc->buf + sc->wlen;
			size_t room = sc->bufcap - sc->wlen, n, used;

			if (sc->mode == FWD_DLP_FORM_URLENCODED) {
				n = form_decode(sc, in, len, dst, room < CHUNK ? room : CHUNK, &used);
			} else {
				n = used = len < CHUNK ? len : CHUNK;
				if (n > room)
					n = used = room;
				memcpy(dst, in, n);
			}
			in += used;
			len -= used;
			if (!sc->dlp->npats)
				sc->wlen = 0;
			if (scan_piece(sc, sc->buf + sc->wlen, n))
				return 1;
			if (!sc->dlp->npats)
				sc->wlen = 0;
		}
	}
	return 0;
}

int fwd_dlp_scan_finish(struct fwd_dlp_scan *sc)
{
	if (sc->magic != SCAN_MAGIC)
		abort();
	if (sc->hit_set)
		return 1;
	if (sc->finished)
		return 0;
	sc->finished = 1;
	if (sc->mode == FWD_DLP_FORM_URLENCODED && sc->pct) {
		uint8_t tail[2] = { '%', sc->pct_c };
		size_t n = sc->pct == 2 ? 2 : 1;
		uint8_t *dst;

		sc->pct = 0;
		if (!sc->dlp->npats)
			sc->wlen = 0;
		dst = sc->buf + sc->wlen;   /* room: bufcap leaves >= CHUNK after the window */
		memcpy(dst, tail, n);
		if (scan_piece(sc, dst, n))
			return 1;
	}
	if ((sc->dlp->card || sc->dlp->iban || sc->dlp->ssn) && builtins_finish(sc))
		return 1;
	if (sc->dlp->npats && patterns_run(sc, 1))
		return 1;
	return 0;
}

const struct fwd_dlp_hit *fwd_dlp_scan_hit(const struct fwd_dlp_scan *sc)
{
	return sc->hit_set ? &sc->hit : NULL;
}

uint64_t fwd_dlp_scan_bytes(const struct fwd_dlp_scan *sc)
{
	return sc->off;
}

struct fwd_dlp_scan *fwd_dlp_scan_new(const struct fwd_dlp *dlp, enum fwd_dlp_mode mode)
{
	struct fwd_dlp_scan *sc;

	if (dlp->magic != DLP_MAGIC)
		abort();
	sc = calloc(1, sizeof *sc);
	if (sc == NULL)
		return NULL;
	sc->magic = SCAN_MAGIC;
	sc->dlp = dlp;
	sc->mode = mode;
	if (dlp->npats || mode == FWD_DLP_FORM_URLENCODED) {
		sc->bufcap = (dlp->npats ? FWD_DLP_MAX_PATTERN_SPAN + dlp->ctx : 0) + CHUNK;
		sc->buf = malloc(sc->bufcap);
		if (sc->buf == NULL)
			goto fail;
	}
	if (dlp->npats) {
		sc->next = calloc(dlp->npats, sizeof sc->next[0]);
		sc->md = pcre2_match_data_create(1, NULL);
		if (sc->next == NULL || sc->md == NULL)
			goto fail;
	}
	return sc;
fail:
	fwd_dlp_scan_free(sc);
	return NULL;
}

/* What a scanner keeps of its own when its state is reset or copied:
 * its mode and its allocations. */
static void keep_own(struct fwd_dlp_scan *sc, const struct fwd_dlp_scan *own)
{
	sc->mode = own->mode;
	sc->buf = own->buf;
	sc->bufcap = own->bufcap;
	sc->next = own->next;
	sc->md = own->md;
}

void fwd_dlp_scan_reset(struct fwd_dlp_scan *sc)
{
	struct fwd_dlp_scan keep = *sc;

	if (sc->magic != SCAN_MAGIC)
		abort();
	memset(sc, 0, sizeof *sc);
	sc->magic = SCAN_MAGIC;
	sc->dlp = keep.dlp;
	keep_own(sc, &keep);
	if (sc->next != NULL)
		memset(sc->next, 0, sc->dlp->npats * sizeof sc->next[0]);
}

void fwd_dlp_scan_copy(struct fwd_dlp_scan *dst, const struct fwd_dlp_scan *src)
{
	struct fwd_dlp_scan keep = *dst;

	if (dst->magic != SCAN_MAGIC || src->magic != SCAN_MAGIC || dst->dlp != src->dlp || src->pct)
		abort();
	*dst = *src;
	keep_own(dst, &keep);
	/* without patterns the window is empty between feeds; with patterns
	 * both scanners have the same buffer size */
	if (src->wlen > 0)
		memcpy(dst->buf, src->buf, src->wlen);
	if (src->next != NULL)
		memcpy(dst->next, src->next, src->dlp->npats * sizeof src->next[0]);
}

void fwd_dlp_scan_free(struct fwd_dlp_scan *sc)
{
	if (sc == NULL)
		return;
	if (sc->magic != SCAN_MAGIC)
		abort();
	sc->magic = 0;
	pcre2_match_data_free(sc->md);
	free(sc->next);
	free(sc->buf);
	free(sc);
}

int fwd_dlp_scan_buffer(const struct fwd_dlp *dlp, const char *data, size_t len, int form,
    struct fwd_dlp_hit *out)
{
	struct fwd_dlp_scan *sc = fwd_dlp_scan_new(dlp,
	    form ? FWD_DLP_FORM_URLENCODED : FWD_DLP_RAW);
	int rc;

	if (sc == NULL)
		return -1;
	rc = fwd_dlp_scan_feed(sc, data, len) || fwd_dlp_scan_finish(sc);
	if (rc && out)
		*out = sc->hit;
	fwd_dlp_scan_free(sc);
	return rc;
}

/* ---------- compile ---------- */

int fwd_dlp_active(const struct fwd_dlp *dlp)
{
	return dlp->card || dlp->iban || dlp->ssn || dlp->npats > 0;
}

void fwd_dlp_free(struct fwd_dlp *dlp)
{
	size_t k;

	if (dlp == NULL)
		return;
	if (dlp->magic != DLP_MAGIC)
		abort();
	dlp->magic = 0;
	for (k = 0; k < dlp->npats; k++) {
		free(dlp->pats[k].name);
		pcre2_code_free(dlp->pats[k].code);
	}
	free(dlp->pats);
	pcre2_match_context_free(dlp->mctx);
	free(dlp);
}

static const char *src_file(const struct conf_src *s)
{
	return s->file ? s->file : "?";
}

struct fwd_dlp *fwd_dlp_compile(const struct conf_fwd_dlp *cf, struct conf_errors *errs)
{
	struct fwd_dlp *dlp = calloc(1, sizeof *dlp);
	int bad = 0;
	size_t k;

	if (dlp == NULL)
		return NULL;
	dlp->magic = DLP_MAGIC;
	dlp->ctx = 1;
	for (k = 0; k < cf->detectors.n; k++) {
		const char *d = cf->detectors.v[k];
		if (strcmp(d, "credit_card") == 0) {
			dlp->card = 1;
		} else if (strcmp(d, "iban") == 0) {
			dlp->iban = 1;
		} else if (strcmp(d, "us_ssn") == 0) {
			dlp->ssn = 1;
		} else {
			conf_err(errs, src_file(&cf->src), cf->src.line, "forward.dlp.detectors",
			    "unknown detector \"%s\" (known: credit_card, iban, us_ssn)", d);
			bad = 1;
		}
	}
	dlp->mctx = pcre2_match_context_create(NULL);
	dlp->pats = calloc(cf->npatterns ? cf->npatterns : 1, sizeof dlp->pats[0]);
	if (dlp->mctx == NULL || dlp->pats == NULL)
		goto oom;
	pcre2_set_match_limit(dlp->mctx, MATCH_LIMIT);
	for (k = 0; k < cf->npatterns; k++) {
		const struct conf_fwd_pattern *p = &cf->patterns[k];
		struct dlp_pat *dp = &dlp->pats[dlp->npats];
		int errcode;
		PCRE2_SIZE erroff;
		uint32_t lookbehind = 0, minlen = 0;
		int pbad = 0;
		char name[32];

		if (p->regex == NULL) {
			conf_err(errs, src_file(&p->src), p->src.line, "forward.dlp.patterns",
			    "pattern without a regex");
			bad = 1;
			continue;
		}
		dp->code = pcre2_compile((PCRE2_SPTR)p->regex, PCRE2_ZERO_TERMINATED, 0,
		    &errcode, &erroff, NULL);
		if (dp->code == NULL) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(errcode, msg, sizeof msg);
			conf_err(errs, src_file(&p->src), p->src.line, "forward.dlp.patterns",
			    "pattern \"%s\": regex error at offset %zu: %s",
			    p->name ? p->name : "?", (size_t)erroff, (const char *)msg);
			bad = 1;
			continue;
		}
		pcre2_pattern_info(dp->code, PCRE2_INFO_MAXLOOKBEHIND, &lookbehind);
		pcre2_pattern_info(dp->code, PCRE2_INFO_MINLENGTH, &minlen);
		if (minlen == 0) {
			conf_err(errs, src_file(&p->src), p->src.line, "forward.dlp.patterns",
			    "pattern \"%s\" can match an empty string (it would flag every request)",
			    p->name ? p->name : "?");
			pbad = 1;
		} else if (lookbehind > FWD_DLP_MAX_LOOKBEHIND) {
			conf_err(errs, src_file(&p->src), p->src.line, "forward.dlp.patterns",
			    "pattern \"%s\": lookbehind of %u characters (at most %d)",
			    p->name ? p->name : "?", (unsigned)lookbehind, FWD_DLP_MAX_LOOKBEHIND);
			pbad = 1;
		}
		if (pbad) {
			bad = 1;
			pcre2_code_free(dp->code);
			dp->code = NULL;
			continue;
		}
		/* JIT failure (no JIT on this CPU) falls back to the interpreter */
		(void)pcre2_jit_compile(dp->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
		if (p->name == NULL)
			snprintf(name, sizeof name, "pattern %zu", k + 1);
		dp->name = strdup(p->name ? p->name : name);
		if (dp->name == NULL) {
			pcre2_code_free(dp->code);
			goto oom;
		}
		if (lookbehind + 1 > dlp->ctx)
			dlp->ctx = lookbehind + 1;
		dlp->npats++;
	}
	if (bad) {
		fwd_dlp_free(dlp);
		return NULL;
	}
	return dlp;
oom:
	fwd_dlp_free(dlp);
	return NULL;
}
