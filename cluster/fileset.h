/*
 * cluster/fileset: the shared configuration files of a pair as one set
 * (cluster.sync_dir), packed for the wire and swapped in all at once.
 *
 * The directory D = cluster.sync_dir holds every file the nodes share (the
 * file the main configuration @includes, lists, users files, DLP patterns):
 * location, not file type, says what is shared, as the @include split does
 * for the main file.  A set received from a peer is written to a new
 * sibling directory "D.<16 hex>", and D, a symbolic link to the set in
 * use, is replaced by one rename(2): every reader sees the old set or the
 * new one, never a mix.  A D that is still a plain directory becomes such
 * a link the first time (its directory is renamed to a sibling first).
 *
 * Wire format: "GHSET1\n", then per file "<bytes> <relative name>\n" and
 * the bytes, names sorted (so a set's SHA-256 names it).  Names are
 * relative, without "." or ".." components or a leading dot in any
 * component (the siblings and temporaries are dotted or outside D).
 */
#ifndef GW_CLU_FILESET_H
#define GW_CLU_FILESET_H

#include <stddef.h>

#define CLU_FILESET_MAX_BYTES (4 * 1024 * 1024)   /* the packed set (the console's limit for it) */
#define CLU_FILESET_MAX_FILES 256

/* Pack every regular file under dir (symbolic links followed, dotted names
 * skipped).  Returns the malloc'ed body (*len bytes), or NULL with a
 * reason in err. */
char *clu_fileset_pack(const char *dir, size_t *len, char *err, size_t errlen);

/* Unpack body into a new directory beside dir; its path goes to newdir.
 * 0, or -1 with a reason in err (nothing left behind). */
int clu_fileset_stage(const char *dir, const char *body, size_t len, char *newdir, size_t ndlen, char *err,
    size_t errlen);

/* Point dir at target (a path beside it; "" = remove dir), atomically.
 * *was gets what dir pointed at before (a path beside it, "" when dir did
 * not exist); a plain directory dir is first renamed beside itself.  0, or
 * -1 with a reason in err (dir unchanged). */
int clu_fileset_switch(const char *dir, const char *target, char *was, size_t wlen, char *err, size_t errlen);

/* Remove a set directory beside dir and everything in it (best effort). */
void clu_fileset_remove(const char *path);

#endif
