/* fsutil.h: small file-system helpers shared by the modules that keep
 * state on disk (journal.c, sim.c). POSIX only; no allocation. */
#ifndef IM_FSUTIL_H
#define IM_FSUTIL_H

/* Creates dir and any missing parents with mode 0700 (existing ones are
 * left as they are) and checks that dir is a directory. Returns 0, or -1
 * with errno set (ENAMETOOLONG past 1023 bytes, ENOTDIR, or mkdir's own),
 * so callers can say why with strerror. */
int im_fs_mkdirs(const char *dir);

#endif
