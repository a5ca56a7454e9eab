/*
 * reverse/srvstate: the server admin state file (see srvstate.h).  Plain
 * text, so an operator can read it and a restart after an upgrade keeps it.
 */
#include "reverse/srvstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "reverse/servers.h"

#define SRVSTATE_NAME "server-state"
#define SRVSTATE_HEAD "# gatehouse server-state 1: upstream<TAB>address<TAB>state (drained or disabled servers)\n"

int rev_srvstate_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" SRVSTATE_NAME, dir != NULL && dir[0] ? dir : ".");

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int rev_srvstate_save(const char *dir, const struct rev_srvstate_ent *v, size_t n)
{
	char path[4096], tmp[4200];
	FILE *f;
	int fd, bad = 0;

	if (rev_srvstate_path(dir, path, sizeof path) < 0) {
		gw_error("server state: state_dir path too long");
		return -1;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		gw_error("server state: cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fputs(SRVSTATE_HEAD, f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\t%s\t%s\n", v[i].upstream, v[i].address, rev_state_name(v[i].state));
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		bad = errno ? errno : EIO;
	if (fclose(f) != 0 && !bad)
		bad = errno ? errno : EIO;
	if (!bad && rename(tmp, path) != 0)
		bad = errno;
	if (bad) {
		gw_error("server state: cannot write %s: %s", path, strerror(bad));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int rev_srvstate_load(const char *dir,
    int (*apply)(const char *upstream, const char *address, int state, void *arg), void *arg)
{
	char path[4096], line[1024];
	FILE *f;
	int applied = 0, lineno = 0;

	if (rev_srvstate_path(dir, path, sizeof path) < 0)
		return 0;
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno != ENOENT)
			gw_warn("server state: cannot read %s: %s", path, strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *up, *addr, *st;
		size_t len = strlen(line);
		int state;

		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			int ch;
			gw_warn("%s:%d: line too long or unterminated; ignored", path, lineno);
			while (len == sizeof line - 1 && (ch = fgetc(f)) != EOF && ch != '\n')
				;
			continue;
		}
		line[--len] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		up = line;
		addr = strchr(up, '\t');
		st = addr != NULL ? strchr(addr + 1, '\t') : NULL;
		if (st == NULL || strchr(st + 1, '\t') != NULL) {
			gw_warn("%s:%d: expected upstream<TAB>address<TAB>state; ignored", path, lineno);
			continue;
		}
		*addr++ = '\0';
		*st++ = '\0';
		state = rev_state_parse(st);
		if (state != REV_SRV_DRAINING && state != REV_SRV_DISABLED) {
			gw_warn("%s:%d: state \"%s\" is not \"draining\" or \"disabled\"; ignored", path, lineno, st);
			continue;
		}
		if (apply(up, addr, state, arg) == 0) {
			applied++;
			gw_info("server state: %s %s is %s again (from %s)", up, addr, st, path);
		} else {
			gw_info("server state: %s %s is no longer configured; its %s state is dropped", up, addr, st);
		}
	}
	fclose(f);
	return applied;
}
