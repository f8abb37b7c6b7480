/*
 * dirs.c - see dirs.h.
 */
#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vg_sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return rc;
}

/* Syncs the directory holding the entry path (path is written to, and
 * restored). */
static int sync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return vg_sync_path(".");
    if (slash == path)
        return vg_sync_path("/");
    *slash = '\0';
    int rc = vg_sync_path(path);
    *slash = '/';
    return rc;
}

static int stop_at(const char *dir, int e, char *failed, size_t failed_len)
{
    if (failed != NULL && failed_len > 0)
        snprintf(failed, failed_len, "%s", dir);
    errno = e;
    return -1;
}

int vg_make_dirs(const char *path, mode_t mode, bool durable, char *failed,
                 size_t failed_len)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return stop_at(path, ENAMETOOLONG, failed, failed_len);
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) == 0) {
            int rc = durable ? sync_parent(buf) : 0;
            if (rc != 0)
                return stop_at(buf, rc, failed, failed_len);
        } else if (errno != EEXIST) {
            return stop_at(buf, errno, failed, failed_len);
        } else {
            struct stat st;
            if (stat(buf, &st) != 0)
                return stop_at(buf, errno, failed, failed_len);
            if (!S_ISDIR(st.st_mode))
                return stop_at(buf, ENOTDIR, failed, failed_len);
        }
        buf[i] = saved;
    }
    return 0;
}

int vg_write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t put = write(fd, p, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            if (put == 0)
                errno = EIO; /* nothing written: do not spin on it */
            return -1;
        }
        p += put;
        n -= (size_t)put;
    }
    return 0;
}
