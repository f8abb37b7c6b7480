/*
 * blob.h - where finished videos and jobs' reference images live: one
 * interface, one backend per file (blob_fs.c: a local folder;
 * S3-compatible storage later). Reads and writes stream, so a backend
 * never needs a whole blob in memory or on a local disk.
 *
 * Keys are relative names like "videos/<job id>.mp4" and
 * "uploads/<job id>-<n>"; backends never see client input, only keys
 * vidgate made, and jobs refer to their blobs by key only.
 */
#ifndef VG_BLOB_H
#define VG_BLOB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

typedef struct vg_blob vg_blob;

/* Takes a read's bytes in order; returns 0 to go on, anything else to
 * stop the read (which then fails). */
typedef int (*vg_blob_sink)(void *ctx, const void *data, size_t n);
/* Gives the next bytes of a stream being written: up to cap into buf,
 * returning how many, 0 at its end, or -1 when the stream failed. */
typedef ssize_t (*vg_blob_source)(void *ctx, void *buf, size_t cap);

/* Every operation returns 0, or 1 (VG_STORE_NOT_FOUND) when the key has
 * no blob, or -1 with *err set. A blob is whole or absent: a failed
 * write leaves the key as it was. */
typedef struct vg_blob_ops {
    const char *name;
    void (*close)(vg_blob *blob);
    /* Stores a finished local file under key, taking it over (src_path
     * is gone after success): a rename where the backend can. */
    int (*put_file)(vg_blob *blob, const char *key, const char *src_path,
                    vg_error *err);
    /* Stores what source gives until its end under key. */
    int (*write)(vg_blob *blob, const char *key, vg_blob_source source,
                 void *ctx, vg_error *err);
    /* The blob's size in bytes. */
    int (*stat)(vg_blob *blob, const char *key, int64_t *size,
                vg_error *err);
    /* Sends length bytes from offset (length -1: to the end) to sink.
     * A range past the end is cut at it. */
    int (*read)(vg_blob *blob, const char *key, int64_t offset,
                int64_t length, vg_blob_sink sink, void *ctx,
                vg_error *err);
    /* Optional (NULL when the backend has no such thing): a file
     * descriptor to read key from, which the caller closes, and the
     * size. The local folder's fast path for serving and copying. */
    int (*open_read)(vg_blob *blob, const char *key, int *fd, int64_t *size,
                     vg_error *err);
    /* Optional: a URL that serves key to anyone holding it until
     * expires_at (Unix seconds), for clients to be redirected to. */
    int (*link)(vg_blob *blob, const char *key, int64_t expires_at,
                char *url, size_t n, vg_error *err);
    /* Removing a key that has no blob succeeds. */
    int (*remove)(vg_blob *blob, const char *key, vg_error *err);
} vg_blob_ops;

struct vg_blob {
    const vg_blob_ops *ops;
};

/* A folder on the local disk; created when missing. */
vg_blob *vg_blob_open_fs(const char *dir, vg_error *err);

/* The backend the configuration's "blob" section chooses, and its
 * settings. Each backend is one line in the table of blob_open.c. */
typedef struct vg_blob_config {
    char backend[32];   /* "fs" (the default) */
    char dir[PATH_MAX]; /* fs: the folder; "" = the data directory */
} vg_blob_config;

/* Opens the configured backend (see vg_store_open). */
vg_blob *vg_blob_open(const vg_blob_config *config, const char *data_dir,
                      vg_error *err);
bool vg_blob_backend_known(const char *name, char *names, size_t n);

/* Copies the blob under key into a new local file at path (mode 0600),
 * for work that needs a file, through read. The file is whole or
 * absent. */
int vg_blob_copy_to_file(vg_blob *blob, const char *key, const char *path,
                         vg_error *err);

#endif
