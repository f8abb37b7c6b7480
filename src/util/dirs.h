/*
 * dirs.h - files and directories on the local disk: creating a path of
 * directories, making entries in one durable, writing a whole buffer.
 */
#ifndef VG_DIRS_H
#define VG_DIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fsync of the file or directory at path (a directory's sync makes the
 * entries created or renamed in it durable): 0, or the errno value of
 * the failed open or sync. */
int vg_sync_path(const char *path);

/* mkdir -p: creates each missing directory of path with mode; with
 * durable, syncs the parent of each one it creates, so that the new entry
 * survives a crash too. 0, or -1 with errno set and, when failed is not
 * NULL, the directory it stopped at copied into failed (failed_len
 * bytes). A component that exists but is not a directory is ENOTDIR. */
int vg_make_dirs(const char *path, mode_t mode, bool durable, char *failed,
                 size_t failed_len);

/* write(2) until all n bytes are written (EINTR retried): 0, or -1 with
 * errno set (EIO when a write wrote nothing). */
int vg_write_all(int fd, const void *data, size_t n);

#endif
