/*
 * providers.h - the constructors of the providers in this folder, which
 * registry.c (vg_providers_build, see core/provider.h) calls; nothing
 * outside providers/ includes this.
 */
#ifndef VG_PROVIDERS_H
#define VG_PROVIDERS_H

#include "core/provider.h"
#include "providers/adapter.h"

/* "local": the built-in renderer, on the worker thread. renders: its
 * concurrency when config (may be NULL) sets none. */
vg_provider *vg_provider_local_new(const vg_provider_config *config,
                                   int renders, const char *tmp_dir,
                                   vg_error *err);
/* "replay": answers every job with a copy of one MP4 file, whatever the
 * request; for load tests and client development, never a model. The
 * file must exist and look like an MP4. */
vg_provider *vg_provider_replay_new(const vg_provider_config *config,
                                    const char *tmp_dir, vg_error *err);
/* The upstream providers of configs (adapters[i] speaks configs[i]'s
 * protocol), served by one upstream engine started here, into out[0..n).
 * The last one destroyed stops the engine. */
int vg_provider_remote_new(const vg_provider_config *const *configs,
                           const vg_adapter *const *adapters, int n,
                           const char *tmp_dir, vg_provider **out,
                           vg_error *err);

#endif
