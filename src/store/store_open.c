/*
 * store_open.c - the store backends this build has, by the name the
 * configuration's "store" section gives (see vg_store_config). Adding a
 * backend is its files and one line in the table below.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

static vg_store *open_sqlite(const vg_store_config *config,
                             const char *data_dir, vg_error *err)
{
    char path[PATH_MAX + 16];
    if (config->path[0] != '\0')
        snprintf(path, sizeof(path), "%s", config->path);
    else
        snprintf(path, sizeof(path), "%s/vidgate.db", data_dir);
    return vg_store_open_sqlite(path, err);
}

static vg_store *open_postgres(const vg_store_config *config,
                               const char *data_dir, vg_error *err)
{
    (void)data_dir;
    if (config->url[0] == '\0') {
        vg_error_set(err, 0, "config_error", "store.url",
                     "the postgres store needs a url (store.url or "
                     "VIDGATE_DATABASE_URL)");
        return NULL;
    }
    return vg_store_open_postgres(config->url, config->pool_size, err);
}

static const struct {
    const char *name;
    vg_store *(*open)(const vg_store_config *config, const char *data_dir,
                      vg_error *err);
} backends[] = {
    {"sqlite", open_sqlite},
    {"postgres", open_postgres},
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

bool vg_store_backend_known(const char *name, char *names, size_t n)
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

vg_store *vg_store_open(const vg_store_config *config, const char *data_dir,
                        vg_error *err)
{
    const char *name = config->backend[0] != '\0' ? config->backend : "sqlite";
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i].name, name) == 0)
            return backends[i].open(config, data_dir, err);
    vg_error_set(err, 0, "config_error", "store.backend",
                 "no store backend \"%s\" in this build", name);
    return NULL;
}
