/*
 * blob.h - where finished videos live: one interface, one backend per file
 * (blob_fs.c: a local folder; S3-compatible storage later).
 *
 * Keys are relative names like "videos/<job id>.mp4"; backends never see
 * client input, only keys vidgate made.
 */
#ifndef VG_BLOB_H
#define VG_BLOB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vg_blob vg_blob;

typedef struct vg_blob_ops {
    const char *name;
    void (*close)(vg_blob *blob);
    /* Takes ownership of a finished local file (src_path is gone after
     * success) and stores it under key. */
    int (*put_file)(vg_blob *blob, const char *key, const char *src_path,
                    vg_error *err);
    /* Opens key for reading: a file descriptor the caller closes and the
     * size. Returns 1 (VG_STORE_NOT_FOUND) when absent. */
    int (*open_read)(vg_blob *blob, const char *key, int *fd, int64_t *size,
                     vg_error *err);
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

#endif
