/*
 * blob_open.c - the blob backends this build has, by the name the
 * configuration's "blob" section gives (see vg_blob_config). Adding a
 * backend is its file and one line in the table below.
 */
#include "blob/blob.h"

#include <stdio.h>
#include <string.h>

static vg_blob *open_fs(const vg_blob_config *config, const char *data_dir,
                        vg_error *err)
{
    return vg_blob_open_fs(config->dir[0] != '\0' ? config->dir : data_dir,
                           err);
}

static const struct {
    const char *name;
    vg_blob *(*open)(const vg_blob_config *config, const char *data_dir,
                     vg_error *err);
} backends[] = {
    {"fs", open_fs},
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

bool vg_blob_backend_known(const char *name, char *names, size_t n)
{
    bool known = false;
    size_t used = 0;
    if (n > 0)
        names[0] = '\0';
    for (size_t i = 0; i < N_BACKENDS; i++) {
        known = known || strcmp(backends[i].name, name) == 0;
        if (used < n)
            used += (size_t)snprintf(names + used, n - used, "%s%s",
                                     i > 0 ? ", " : "", backends[i].name);
    }
    return known;
}

vg_blob *vg_blob_open(const vg_blob_config *config, const char *data_dir,
                      vg_error *err)
{
    const char *name = config->backend[0] != '\0' ? config->backend : "fs";
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i].name, name) == 0)
            return backends[i].open(config, data_dir, err);
    vg_error_set(err, 0, "config_error", "blob.backend",
                 "no blob backend \"%s\" in this build", name);
    return NULL;
}
