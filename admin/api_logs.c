/*
 * admin/api_logs: GET events (the event ring) and GET tail (the access-log
 * ring, each line parsed back into its fields for the Logs page's table
 * and the tail's filters; both access-log formats, see core/log.c).  The
 * audit ring is auth.c's (adm_audit_json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "core/http1.h"
#include "core/events.h"

/* ---- GET events / audit / tail ---- */

json_t *adm_api_events(struct MHD_Connection *c)
{
	struct gw_event *ev = calloc(512, sizeof *ev);
	const char *kind = adm_arg(c, "kind");
	uint64_t last = 0;
	size_t n;
	json_t *a = json_array();

	if (ev == NULL)
		return NULL;
	n = gw_event_recent(ev, 512, adm_arg_u64(c, "after"), &last);
	for (size_t i = 0; i < n; i++)
		if (kind == NULL || strcmp(kind, ev[i].kind) == 0)
			json_array_append_new(a, json_pack("{s:f,s:s,s:s}", "time", ev[i].time, "kind", ev[i].kind,
			    "text", ev[i].text));
	free(ev);
	return json_pack("{s:I,s:o}", "seq", (json_int_t)last, "events", a);
}

/* ---- access-log lines, parsed (the Logs page's table and the tail filters) ---- */

/*
 * This reader is the other half of gw_access_log() (core/log.c), and knows
 * the line's format a second time: combined's positional fields (client,
 * ident, user, [time], "request", status, bytes, "referer", "agent",
 * family, duration), the short names id= up= in= of the json keys
 * request_id, upstream and bytes_in, the \xHH \" \\ escapes, the two time
 * formats, and "-" for none.  A change to the writer must be made here too
 * (test_a_console_ui's tail tests read both formats back).  What the
 * reader does not know, it leaves as the line has it: combined's name=value
 * fields are strings (bytes_in too, a number in json) and its referer is
 * skipped (json keeps it).
 */

/* Seconds since the epoch of an access-log time stamp (combined
 * "06/Dec/2026:09:00:00 +0000" or json "2026-12-06T09:00:00+0000"); 0 if not one. */
static double log_time(const char *s, int json)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	end = strptime(s, json ? "%Y-%m-%dT%H:%M:%S%z" : "%d/%b/%Y:%H:%M:%S %z", &tm);
	if (end == NULL)
		return 0;
	return (double)(timegm(&tm) - tm.tm_gmtoff);
}

/* s as a JSON string; bytes that are not UTF-8 (an escape undone) become '?'. */
static json_t *jtext(const char *s)
{
	json_t *j = json_string(s);
	char buf[GW_TAIL_LINE];
	size_t i;

	if (j != NULL)
		return j;
	for (i = 0; s[i] && i + 1 < sizeof buf; i++)
		buf[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	buf[i] = '\0';
	return json_string(buf);
}

/*
 * One value of a combined-format line at *pp into out[len]: "quoted" with
 * \xHH, \" and \\ escapes undone, or unquoted up to the next space (when
 * to_key, up to the next " name=", so the old unquoted reason= with spaces
 * still reads whole).  Advances *pp past the value; out is cut to fit.
 */
static void comb_value(const char **pp, char *out, size_t len, int to_key)
{
	const char *p = *pp;
	size_t o = 0;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			char ch = *p;
			if (ch == '\\' && p[1] == 'x' && gw_hexval(p[2]) >= 0 && gw_hexval(p[3]) >= 0) {
				ch = (char)(gw_hexval(p[2]) << 4 | gw_hexval(p[3]));
				p += 3;
			} else if (ch == '\\' && p[1] != '\0') {
				ch = *++p;
			}
			if (o + 1 < len)
				out[o++] = ch;
		}
		if (*p == '"')
			p++;
	} else {
		for (; *p; p++) {
			if (*p == ' ') {
				const char *k = p + 1;
				if (!to_key)
					break;
				while ((*k >= 'a' && *k <= 'z') || *k == '_')
					k++;
				if (k > p + 1 && *k == '=')
					break;
			}
			if (o + 1 < len)
				out[o++] = *p;
		}
	}
	if (len > 0)
		out[o] = '\0';
	while (*p == ' ')
		p++;
	*pp = p;
}

/* The fields of a combined line: client, user, time, request, status,
 * bytes, referer, agent, family, duration, then name=value pairs. */
static json_t *parse_combined(const char *line)
{
	json_t *o = json_object();
	const char *p = line;
	char v[GW_TAIL_LINE], ts[64];
	const char *sp;

	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "client", jtext(v));
	comb_value(&p, v, sizeof v, 0);        /* ident: "-" */
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "user", jtext(strcmp(v, "-") == 0 ? "" : v));
	if (*p == '[' && (sp = strchr(p, ']')) != NULL && (size_t)(sp - p) < sizeof ts) {
		memcpy(ts, p + 1, (size_t)(sp - p - 1));
		ts[sp - p - 1] = '\0';
		json_object_set_new(o, "time", json_real(log_time(ts, 0)));
		for (p = sp + 1; *p == ' '; p++)
			;
	}
	if (*p == '"') {
		char *target, *proto;
		comb_value(&p, v, sizeof v, 0);
		/* METHOD TARGET HTTP/1.x (each escaped, so no space inside) */
		target = strchr(v, ' ');
		if (target != NULL) {
			*target++ = '\0';
			if ((proto = strrchr(target, ' ')) != NULL)
				*proto = '\0';
			json_object_set_new(o, "target", jtext(target));
		}
		json_object_set_new(o, "method", jtext(v));
	}
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "status", json_integer(atoi(v)));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "bytes_out", json_integer(strtoll(v, NULL, 10)));
	comb_value(&p, v, sizeof v, 0);        /* referer */
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "user_agent", jtext(v));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "family", jtext(v));
	comb_value(&p, v, sizeof v, 0);
	json_object_set_new(o, "duration", json_real(strtod(v, NULL)));
	while (*p) {
		char key[32];
		size_t k = strcspn(p, "= ");
		if (p[k] != '=' || k == 0 || k >= sizeof key) {
			comb_value(&p, v, sizeof v, 0);   /* not name=value: skip it */
			continue;
		}
		memcpy(key, p, k);
		key[k] = '\0';
		p += k + 1;
		comb_value(&p, v, sizeof v, 1);
		if (strcmp(key, "id") == 0)
			snprintf(key, sizeof key, "request_id");
		else if (strcmp(key, "up") == 0)
			snprintf(key, sizeof key, "upstream");
		else if (strcmp(key, "in") == 0)
			snprintf(key, sizeof key, "bytes_in");
		json_object_set_new(o, key, jtext(strcmp(v, "-") == 0 ? "" : v));   /* "-": none */
	}
	return o;
}

/* A json line; one cut at GW_TAIL_LINE is read up to its last whole field. */
static json_t *parse_json_line(const char *line)
{
	char buf[GW_TAIL_LINE + 2];
	json_t *o = json_loads(line, 0, NULL);
	size_t n = strlen(line);

	if (o == NULL && n < GW_TAIL_LINE) {
		memcpy(buf, line, n + 1);
		for (int tries = 0; o == NULL && tries < 8; tries++) {
			char *cut = NULL;
			for (char *q = buf; (q = strstr(q, ",\"")) != NULL; q++)
				cut = q;
			if (cut == NULL)
				break;
			cut[0] = '}';
			cut[1] = '\0';
			o = json_loads(buf, 0, NULL);
		}
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return json_object();
	}
	{
		json_t *t = json_object_get(o, "time");
		if (json_is_string(t))
			json_object_set_new(o, "time", json_real(log_time(json_string_value(t), 1)));
	}
	return o;
}

/* The fields of one access-log line (combined or json), as an object with
 * client, user, time, method, target, host, status, verdict, rule, reason,
 * request_id, family, ... ("" or absent when the line has none). */
static json_t *tail_parse(const char *line)
{
	json_t *o = line[0] == '{' ? parse_json_line(line) : parse_combined(line);
	static const char *const need[] = { "client", "user", "host", "verdict", "rule", "family", NULL };

	for (int i = 0; need[i]; i++)   /* absent or "-" (none, in either format): "" */
		if (!json_is_string(json_object_get(o, need[i])) || strcmp(adm_jstr(o, need[i]), "-") == 0)
			json_object_set_new(o, need[i], json_string(""));
	if (!json_is_integer(json_object_get(o, "status")))
		json_object_set_new(o, "status", json_integer(0));
	return o;
}


static int status_match(const char *want, int st)
{
	char buf[8];

	snprintf(buf, sizeof buf, "%d", st);
	/* "404" exact, "4" or "4xx" a class */
	if (strlen(want) == 3 && strcasecmp(want + 1, "xx") == 0)
		return buf[0] == want[0];
	if (strlen(want) == 1)
		return buf[0] == want[0];
	return strcmp(buf, want) == 0;
}

json_t *adm_api_tail(struct MHD_Connection *c)
{
	char (*lines)[GW_TAIL_LINE] = calloc(256, GW_TAIL_LINE);
	const char *fh = adm_arg(c, "host"), *fs = adm_arg(c, "status"), *fc = adm_arg(c, "client");
	const char *fv = adm_arg(c, "verdict"), *ff = adm_arg(c, "family");
	uint64_t last = 0;
	size_t n;
	json_t *a = json_array();

	if (lines == NULL)
		return NULL;
	n = gw_tail_recent(lines, 256, adm_arg_u64(c, "after"), &last);
	for (size_t i = 0; i < n; i++) {
		json_t *o = tail_parse(lines[i]);
		if ((fc != NULL && strncmp(adm_jstr(o, "client"), fc, strlen(fc)) != 0) ||
		    (fs != NULL && !status_match(fs, (int)json_integer_value(json_object_get(o, "status")))) ||
		    (fh != NULL && strcasestr(adm_jstr(o, "host"), fh) == NULL) ||
		    (fv != NULL && strcmp(adm_jstr(o, "verdict"), fv) != 0) ||
		    (ff != NULL && strcmp(adm_jstr(o, "family"), ff) != 0)) {
			json_decref(o);
			continue;
		}
		json_object_set_new(o, "line", json_string(lines[i]));
		json_array_append_new(a, o);
	}
	free(lines);
	return json_pack("{s:I,s:o}", "seq", (json_int_t)last, "lines", a);
}
