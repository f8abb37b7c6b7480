/*
 * blob.c - what every backend of blob.h shares: copying a blob to a
 * local file for work that needs one (a renderer reading a reference
 * image, an adapter sending it inline).
 */
#include "blob/blob.h"

#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int sink_to_fd(void *ctx, const void *data, size_t n)
{
    return vg_write_all(*(const int *)ctx, data, n);
}

/* The fast path: straight from the backend's file descriptor. */
static int copy_fd(int in, int out)
{
    char buf[1 << 16];
    for (;;) {
        ssize_t got = read(in, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -1 : 0;
        if (vg_write_all(out, buf, (size_t)got) != 0)
            return -1;
    }
}

int vg_blob_copy_to_file(vg_blob *blob, const char *key, const char *path,
                         vg_error *err)
{
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return vg_error_set(err, 500, "blob_error", NULL,
                            "cannot create %s: %s", path, strerror(errno));
    int rc = -1;
    int in = -1;
    int64_t size = 0;
    if (blob->ops->open_read != NULL &&
        (rc = blob->ops->open_read(blob, key, &in, &size, err)) == 0) {
        rc = copy_fd(in, out);
        if (rc != 0)
            vg_error_set(err, 500, "blob_error", NULL,
                         "cannot copy blob %s to %s: %s", key, path,
                         strerror(errno));
        close(in);
    } else if (blob->ops->open_read == NULL) {
        rc = blob->ops->read(blob, key, 0, -1, sink_to_fd, &out, err);
    }
    if (close(out) != 0 && rc == 0)
        rc = vg_error_set(err, 500, "blob_error", NULL, "cannot write %s: %s",
                          path, strerror(errno));
    if (rc != 0)
        unlink(path);
    return rc;
}
