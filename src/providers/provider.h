/*
 * provider.h - a provider turns a job spec into an MP4 file.
 *
 * Providers are chosen by name from the catalog (a model's "provider").
 * This first interface serves providers that render on a worker thread
 * (the built-in "local" one); upstream providers add their submit/poll
 * operations here when they arrive.
 */
#ifndef VG_PROVIDER_H
#define VG_PROVIDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/catalog.h"
#include "util/error.h"
#include "core/request.h"

typedef struct vg_job_spec {
    const char *prompt;
    const vg_model *model;
    vg_resolution resolution;
    vg_aspect aspect;
    int width, height;
    int duration;
    int fps;
    bool generate_audio;
    bool camera_fixed;
    vg_tier tier;
    uint32_t seed; /* resolved: never random here */
    const char *image_paths[VG_MAX_IMAGES];
    /* Short-lived signed vidgate URLs of the same images, for providers
     * that fetch images by URL (image_delivery "url"); NULL = send the
     * image inline. */
    const char *image_urls[VG_MAX_IMAGES];
    int n_images;
} vg_job_spec;

typedef struct vg_job_hooks {
    atomic_int *cancel; /* non-zero: stop, leave nothing behind */
    void (*progress)(void *opaque, int done, int total);
    void *opaque;
} vg_job_hooks;

typedef struct vg_provider_result {
    int64_t prompt_tokens;
    int64_t completion_tokens;
} vg_provider_result;

typedef struct vg_provider vg_provider;

typedef struct vg_provider_ops {
    const char *name;
    /* Runs on a worker thread until the MP4 is complete at out_path. */
    int (*run)(vg_provider *provider, const vg_job_spec *spec,
               const char *out_path, const vg_job_hooks *hooks,
               vg_provider_result *result, vg_error *err);
    void (*destroy)(vg_provider *provider);
} vg_provider_ops;

struct vg_provider {
    const vg_provider_ops *ops;
};

vg_provider *vg_provider_local_new(void);
/* "replay": answers every job with a copy of one MP4 file, whatever the
 * request; for load tests and client development, never a model. The
 * file must exist and look like an MP4. */
vg_provider *vg_provider_replay_new(const char *file, vg_error *err);

#endif
