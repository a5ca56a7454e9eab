#ifndef GW_FORWARD_READFILE_H
#define GW_FORWARD_READFILE_H

#include <stddef.h>

/*
 * The whole of path (at most 256 MiB) in a new buffer (free() it; not
 * NUL-terminated), its length in *len.  NULL with "cannot open/read PATH:
 * why" or "PATH: too large or out of memory" in err.
 */
char *fwd_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
