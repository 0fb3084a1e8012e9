/* fsutil.h: small file-system helpers shared by the modules that keep
 * state on disk (journal.c, sim.c) or write to a blocking descriptor
 * (repl_server.c). POSIX only; no allocation. */
#ifndef IM_FSUTIL_H
#define IM_FSUTIL_H

#include <stddef.h>

/* Creates dir and any missing parents with mode 0700 (existing ones are
 * left as they are) and checks that dir is a directory. Returns 0, or -1
 * with errno set (ENAMETOOLONG past 1023 bytes, ENOTDIR, or mkdir's own),
 * so callers can say why with strerror. */
int im_fs_mkdirs(const char *dir);

/* Writes all len bytes of p to fd, retrying after EINTR and short writes.
 * Returns 0, or -1 with errno set (EIO when write returned 0). Blocks: for
 * files and blocking sockets, not for a non-blocking pipe. */
int im_fs_write_all(int fd, const char *p, size_t len);

#endif
