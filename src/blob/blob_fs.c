/*
 * blob_fs.c - the local-folder backend of blob.h: the blob under key
 * "videos/<id>.mp4" is the file <dir>/videos/<id>.mp4.
 *
 * A stored video must survive a crash once put_file returned, since the job
 * that points at it is already marked succeeded: the file's data is synced
 * before its name appears, and the directory after. Puts that wait on the
 * same directory at once share one sync of it (sync_dir_grouped). Keys
 * are checked even
 * though only vidgate makes them: a key is a path, and a bug that let
 * "../" through would read or overwrite files outside the folder.
 */
/* For mkostemp: the temporary copy must not leak into children the
 * server forks (the renderer's encoders). */

#include "blob/blob.h"

#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* blob.h's "absent" result, the same value as VG_STORE_NOT_FOUND. */
#define BLOB_NOT_FOUND 1

/* Videos are users' content: readable by the server's user and group. */
#define DIR_MODE 0750

/* A put waiting for its directory's sync; it lives on the waiter's
 * stack. */
typedef struct dir_waiter {
    struct dir_waiter *next;
    const char *dir;
    int sync_errno; /* 0, or why the sync failed */
    bool done;
} dir_waiter;

typedef struct fs_blob {
    vg_blob base;
    char *dir;
    pthread_mutex_t lock;
    pthread_cond_t synced;
    dir_waiter *waiting; /* renamed, not yet in a sync */
    bool syncing;
} fs_blob;

static int fail_errno(vg_error *err, const char *what, const char *path)
{
    return vg_error_set(err, 500, "blob_error", NULL, "%s %s: %s", what, path,
                        strerror(errno));
}

/* A key is one or more components of [A-Za-z0-9._-] joined by '/', none
 * empty and none "." or "..": so it can only name a path inside dir. */
static int check_key(const char *key, vg_error *err)
{
    size_t len = key != NULL ? strlen(key) : 0;
    bool ok = len > 0 && len < PATH_MAX / 2 && key[0] != '/' &&
              key[len - 1] != '/' && strstr(key, "..") == NULL &&
              strstr(key, "//") == NULL;
    for (size_t i = 0; ok && i < len; i++) {
        char c = key[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
             c == '/';
        /* A "." component: at the start, or after a '/', followed by
         * the end or a '/'. */
        if (ok && c == '.' && (i == 0 || key[i - 1] == '/'))
            ok = key[i + 1] != '\0' && key[i + 1] != '/';
    }
    if (!ok)
        return vg_error_set(err, 400, "invalid_blob_key", NULL,
                            "invalid blob key \"%s\": use relative names "
                            "of [A-Za-z0-9._-] separated by '/'",
                            key != NULL ? key : "");
    return 0;
}

static int fsync_path(const char *path, vg_error *err)
{
    int rc = vg_sync_path(path);
    if (rc == 0)
        return 0;
    errno = rc;
    return fail_errno(err, "syncing", path);
}

/* Makes the entries renamed into dir durable. Group commit: whoever finds
 * no sync running syncs, once per directory, for every put that finished
 * its rename before that sync began (the sync covers them all); the
 * others wait for it. A put that arrives during a sync waits for the
 * next. Under load several workers store videos into videos/ at once,
 * and each sync is a device flush. */
static int sync_dir_grouped(fs_blob *b, const char *dir, vg_error *err)
{
    dir_waiter me = {.dir = dir};
    pthread_mutex_lock(&b->lock);
    me.next = b->waiting;
    b->waiting = &me;
    while (!me.done) {
        if (b->syncing) {
            pthread_cond_wait(&b->synced, &b->lock);
            continue;
        }
        b->syncing = true;
        dir_waiter *batch = b->waiting;
        b->waiting = NULL;
        pthread_mutex_unlock(&b->lock);
        for (dir_waiter *w = batch; w != NULL; w = w->next) {
            dir_waiter *same = batch;
            while (same != w && strcmp(same->dir, w->dir) != 0)
                same = same->next;
            w->sync_errno =
                same != w ? same->sync_errno : vg_sync_path(w->dir);
        }
        pthread_mutex_lock(&b->lock);
        /* The waiters cannot leave (and take their nodes with them)
         * before the lock is released. */
        for (dir_waiter *w = batch; w != NULL; w = w->next)
            w->done = true;
        b->syncing = false;
        pthread_cond_broadcast(&b->synced);
    }
    pthread_mutex_unlock(&b->lock);
    if (me.sync_errno == 0)
        return 0;
    errno = me.sync_errno;
    return fail_errno(err, "syncing", dir);
}

/* mkdir -p, each new directory's entry made durable. */
static int make_dirs(const char *path, vg_error *err)
{
    char failed[PATH_MAX];
    if (vg_make_dirs(path, DIR_MODE, true, failed, sizeof(failed)) != 0)
        return fail_errno(err, "creating", failed);
    return 0;
}

static int blob_path(fs_blob *b, const char *key, char *out, size_t n,
                     vg_error *err)
{
    if (check_key(key, err) != 0)
        return -1;
    if (snprintf(out, n, "%s/%s", b->dir, key) >= (int)n)
        return vg_error_set(err, 500, "blob_error", NULL,
                            "path too long for key %s", key);
    return 0;
}

static ssize_t fd_source(void *ctx, void *buf, size_t cap)
{
    int fd = *(const int *)ctx;
    ssize_t got;
    do
        got = read(fd, buf, cap);
    while (got < 0 && errno == EINTR);
    return got;
}

/* Writes what source gives to a temporary file beside path, then puts it
 * in place: path is whole or as it was. parent is path's folder. */
static int write_into_place(fs_blob *b, const char *path, const char *parent,
                            vg_blob_source source, void *ctx, vg_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.partXXXXXX", path) >= (int)sizeof(tmp))
        return vg_error_set(err, 500, "blob_error", NULL, "path too long: %s",
                            path);
    int out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0 && errno == ENOENT) {
        if (make_dirs(parent, err) != 0)
            return -1;
        snprintf(tmp, sizeof(tmp), "%s.partXXXXXX", path);
        out = mkostemp(tmp, O_CLOEXEC);
    }
    if (out < 0)
        return fail_errno(err, "creating a file beside", path);
    int rc = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t got = source(ctx, buf, sizeof(buf));
        if (got < 0) {
            rc = vg_error_set(err, 500, "blob_error", NULL,
                              "the data for %s could not be read: %s", path,
                              errno != 0 ? strerror(errno) : "stream failed");
            break;
        }
        if (got == 0)
            break;
        if (vg_write_all(out, buf, (size_t)got) != 0) {
            rc = fail_errno(err, "writing", tmp);
            break;
        }
    }
    if (rc == 0 && fchmod(out, 0640) != 0)
        rc = fail_errno(err, "setting the mode of", tmp);
    if (rc == 0 && fsync(out) != 0)
        rc = fail_errno(err, "syncing", tmp);
    if (close(out) != 0 && rc == 0)
        rc = fail_errno(err, "closing", tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = fail_errno(err, "renaming into", path);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return sync_dir_grouped(b, parent, err);
}

static void parent_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    *strrchr(out, '/') = '\0';
}

static int fs_write(vg_blob *blob, const char *key, vg_blob_source source,
                    void *ctx, vg_error *err)
{
    fs_blob *b = (fs_blob *)blob;
    char path[PATH_MAX], parent[PATH_MAX];
    if (blob_path(b, key, path, sizeof(path), err) != 0)
        return -1;
    parent_of(path, parent, sizeof(parent));
    return write_into_place(b, path, parent, source, ctx, err);
}

static int fs_put_file(vg_blob *blob, const char *key, const char *src_path,
                       vg_error *err)
{
    fs_blob *b = (fs_blob *)blob;
    char path[PATH_MAX];
    if (blob_path(b, key, path, sizeof(path), err) != 0)
        return -1;
    char parent[PATH_MAX];
    parent_of(path, parent, sizeof(parent));

    /* Data first, name second: a crash must not leave the key naming a
     * file whose contents never reached the disk. */
    if (fsync_path(src_path, err) != 0)
        return -1;
    /* The directory is there but for the first put into it. */
    int moved = rename(src_path, path);
    if (moved != 0 && errno == ENOENT && access(src_path, F_OK) == 0) {
        if (make_dirs(parent, err) != 0)
            return -1;
        moved = rename(src_path, path);
    }
    if (moved == 0)
        return sync_dir_grouped(b, parent, err);
    if (errno != EXDEV)
        return fail_errno(err, "moving a file to", path);
    /* Another filesystem: a copy, then the source goes (a leftover
     * source would only waste space). */
    int in = open(src_path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail_errno(err, "opening", src_path);
    int rc = write_into_place(b, path, parent, fd_source, &in, err);
    close(in);
    if (rc == 0)
        unlink(src_path);
    return rc;
}

/* Opens key's file: 0 with *fd and *size, BLOB_NOT_FOUND, or -1. */
static int open_key(fs_blob *b, const char *key, int *fd, int64_t *size,
                    vg_error *err)
{
    char path[PATH_MAX];
    if (blob_path(b, key, path, sizeof(path), err) != 0)
        return -1;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            vg_error_set(err, 404, "not_found", NULL, "no blob %s", key);
            return BLOB_NOT_FOUND;
        }
        return fail_errno(err, "opening", path);
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        fail_errno(err, "checking", path);
        close(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return vg_error_set(err, 500, "blob_error", NULL,
                            "%s is not a regular file", path);
    }
    *fd = f;
    *size = (int64_t)st.st_size;
    return 0;
}

static int fs_open_read(vg_blob *blob, const char *key, int *fd, int64_t *size,
                        vg_error *err)
{
    return open_key((fs_blob *)blob, key, fd, size, err);
}

static int fs_stat(vg_blob *blob, const char *key, int64_t *size,
                   vg_error *err)
{
    int fd = -1;
    int rc = open_key((fs_blob *)blob, key, &fd, size, err);
    if (rc == 0)
        close(fd);
    return rc;
}

static int fs_read(vg_blob *blob, const char *key, int64_t offset,
                   int64_t length, vg_blob_sink sink, void *ctx, vg_error *err)
{
    int fd = -1;
    int64_t size = 0;
    int rc = open_key((fs_blob *)blob, key, &fd, &size, err);
    if (rc != 0)
        return rc;
    if (offset < 0)
        offset = 0;
    int64_t end =
        length < 0 || length > size - offset ? size : offset + length;
    char buf[1 << 16];
    while (rc == 0 && offset < end) {
        size_t want = end - offset < (int64_t)sizeof(buf)
                          ? (size_t)(end - offset)
                          : sizeof(buf);
        ssize_t got = pread(fd, buf, want, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? fail_errno(err, "reading", key)
                         : vg_error_set(err, 500, "blob_error", NULL,
                                        "blob %s shrank while read", key);
            break;
        }
        if (sink(ctx, buf, (size_t)got) != 0)
            rc = vg_error_set(err, 500, "blob_error", NULL,
                              "reading blob %s was stopped", key);
        offset += got;
    }
    close(fd);
    return rc;
}

static int fs_remove(vg_blob *blob, const char *key, vg_error *err)
{
    fs_blob *b = (fs_blob *)blob;
    char path[PATH_MAX];
    if (blob_path(b, key, path, sizeof(path), err) != 0)
        return -1;
    /* Removing what is already gone is what the caller wanted. */
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
        return fail_errno(err, "removing", path);
    return 0;
}

static void fs_close(vg_blob *blob)
{
    fs_blob *b = (fs_blob *)blob;
    pthread_cond_destroy(&b->synced);
    pthread_mutex_destroy(&b->lock);
    free(b->dir);
    free(b);
}

static const vg_blob_ops fs_ops = {
    .name = "fs",
    .close = fs_close,
    .put_file = fs_put_file,
    .write = fs_write,
    .stat = fs_stat,
    .read = fs_read,
    .open_read = fs_open_read,
    .remove = fs_remove,
};

vg_blob *vg_blob_open_fs(const char *dir, vg_error *err)
{
    if (dir == NULL || dir[0] == '\0') {
        vg_error_set(err, 500, "blob_error", NULL,
                     "the blob folder is not set");
        return NULL;
    }
    size_t len = strlen(dir);
    /* Keys are appended after one '/', so drop trailing ones ("/" stays). */
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len >= PATH_MAX / 2) {
        vg_error_set(err, 500, "blob_error", NULL, "path too long: %s", dir);
        return NULL;
    }
    fs_blob *b = calloc(1, sizeof(*b));
    char *copy = strndup(dir, len);
    if (b == NULL || copy == NULL) {
        free(copy);
        free(b);
        vg_error_set(err, 500, "blob_error", NULL, "out of memory");
        return NULL;
    }
    b->dir = copy;
    b->base.ops = &fs_ops;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->synced, NULL);
    if (make_dirs(b->dir, err) != 0) {
        fs_close(&b->base);
        return NULL;
    }
    return &b->base;
}
