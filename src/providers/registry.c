/*
 * registry.c - builds the providers the configuration names (see
 * vg_providers_build in core/provider.h): the built-in ones by name, in
 * the table below, and each upstream provider by its protocol, from the
 * adapters' table (adapter.c), all of those on one upstream engine.
 */
#include "providers/providers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The providers that are not upstream protocols. */
static vg_provider *build_local(const vg_provider_config *config, int renders,
                                const char *tmp_dir, vg_error *err)
{
    return vg_provider_local_new(config, renders, tmp_dir, err);
}

static vg_provider *build_replay(const vg_provider_config *config, int renders,
                                 const char *tmp_dir, vg_error *err)
{
    (void)renders;
    return vg_provider_replay_new(config, tmp_dir, err);
}

static const struct {
    const char *name;
    vg_provider *(*build)(const vg_provider_config *config, int renders,
                          const char *tmp_dir, vg_error *err);
    bool always; /* built even when the configuration does not name it */
} builtins[] = {
    {"local", build_local, true},
    {"replay", build_replay, false},
};

#define N_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

/* The types: the built-ins, then every adapter's protocol. */
static vg_provider_type types[N_BUILTINS + VG_MAX_PROVIDERS + 1];
static pthread_once_t types_once = PTHREAD_ONCE_INIT;

static void list_types(void)
{
    size_t n = 0;
    for (size_t b = 0; b < N_BUILTINS; b++)
        types[n++] =
            (vg_provider_type){builtins[b].name, false, false, NULL, NULL};
    for (int i = 0;
         vg_adapter_at(i) != NULL && n + 1 < sizeof(types) / sizeof(types[0]);
         i++) {
        const vg_adapter *a = vg_adapter_at(i);
        types[n++] =
            (vg_provider_type){a->name, true, a->builtin, a->default_base_url,
                               a->default_key_env};
    }
}

const vg_provider_type *vg_provider_type_at(int i)
{
    pthread_once(&types_once, list_types);
    if (i < 0 || (size_t)i >= sizeof(types) / sizeof(types[0]))
        return NULL;
    return types[i].name != NULL ? &types[i] : NULL;
}

const vg_provider_type *vg_provider_type_find(const char *name)
{
    for (int i = 0; vg_provider_type_at(i) != NULL; i++)
        if (strcmp(vg_provider_type_at(i)->name, name) == 0)
            return vg_provider_type_at(i);
    return NULL;
}

void vg_providers_free(vg_provider **providers, int n)
{
    /* Backwards: the upstream engine stops with its last provider. */
    for (int i = n - 1; i >= 0; i--)
        providers[i]->ops->destroy(providers[i]);
}

int vg_providers_build(const vg_provider_config *configs, int n_configs,
                       int renders, const char *tmp_dir, vg_provider **out,
                       int *n, vg_error *err)
{
    *n = 0;
    if (renders <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        renders = cores > 0 ? (int)cores : 1;
    }
    const vg_provider_config *remote[VG_MAX_PROVIDERS];
    const vg_adapter *adapters[VG_MAX_PROVIDERS];
    int n_remote = 0;
    /* The built-ins first, in the table's order ("local" is always the
     * first provider), then the upstream ones in the configuration's. */
    for (size_t b = 0; b < N_BUILTINS; b++) {
        const vg_provider_config *pc = NULL;
        for (int i = 0; i < n_configs; i++)
            if (strcmp(configs[i].name, builtins[b].name) == 0)
                pc = &configs[i];
        if (pc == NULL && !builtins[b].always)
            continue;
        vg_provider *p = builtins[b].build(pc, renders, tmp_dir, err);
        if (p == NULL)
            goto fail;
        out[(*n)++] = p;
    }
    for (int i = 0; i < n_configs; i++) {
        const vg_provider_config *pc = &configs[i];
        bool builtin = false;
        for (size_t b = 0; b < N_BUILTINS; b++)
            builtin = builtin || strcmp(pc->name, builtins[b].name) == 0;
        if (builtin)
            continue;
        const vg_adapter *adapter =
            vg_adapter_find(pc->type[0] ? pc->type : pc->name);
        if (adapter == NULL || *n + n_remote >= VG_MAX_PROVIDERS) {
            vg_error_set(err, 0, "config_error", "providers",
                         adapter == NULL ? "unknown provider \"%s\""
                                         : "too many providers (at \"%s\")",
                         pc->name);
            goto fail;
        }
        adapters[n_remote] = adapter;
        remote[n_remote++] = pc;
    }
    if (vg_provider_remote_new(remote, adapters, n_remote, tmp_dir, out + *n,
                               err) != 0)
        goto fail;
    *n += n_remote;
    return 0;
fail:
    vg_providers_free(out, *n);
    *n = 0;
    return -1;
}
