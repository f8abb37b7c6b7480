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

int vg_blob_copy_to_file(vg_blob *blob, const char *key, const char *path,
                         vg_error *err)
{
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return vg_error_set(err, 500, "blob_error", NULL,
                            "cannot create %s: %s", path, strerror(errno));
    int rc = blob->ops->read(blob, key, 0, -1, sink_to_fd, &out, err);
    if (close(out) != 0 && rc == 0)
        rc = vg_error_set(err, 500, "blob_error", NULL, "cannot write %s: %s",
                          path, strerror(errno));
    if (rc != 0)
        unlink(path);
    return rc;
}
