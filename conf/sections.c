/*
 * conf/sections: the one table that names the sections each side owns, and
 * conf_load() over it.  The engine (conf.c, keys.c, scan.c) knows no side;
 * this table is where the sides are plugged in.  Their order is part of the
 * error contract: sections are read, then cross-checked, in this order, and
 * errors on one line keep that order.
 */
#include "conf/conf.h"
#include "conf/keys.h"

#include <stddef.h>

static const struct conf_section sections[] = {
	{ "forward", offsetof(struct conf, forward), fwd_conf_read, NULL },
	{ "reverse", offsetof(struct conf, reverse), rev_conf_read, rev_conf_check },
	{ "admin", offsetof(struct conf, admin), adm_conf_read, NULL },
	{ "cluster", offsetof(struct conf, cluster), clu_conf_read, NULL },
};

struct conf *conf_load(const char *path, struct conf_errors *errs)
{
	return conf_load_sections(path, sections, sizeof(sections) / sizeof(sections[0]), errs);
}
