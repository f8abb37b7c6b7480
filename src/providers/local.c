/*
 * local.c - the built-in "local" provider: renders on the worker thread
 * with the local renderer, so the whole API works with no provider keys
 * and no network.
 *
 * It is not a generative model (the docs say so): it renders the prompt's
 * colours and a camera move, or pans over the reference images in turn,
 * into a real H.264/AAC MP4 of exactly the requested shape.
 */
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"
#include "render/render.h"
#include "util/parse.h"

static int local_run(vg_provider *provider, const vg_job_spec *spec,
                     const char *out_path, const vg_job_hooks *hooks,
                     vg_provider_result *result, vg_error *err)
{
    (void)provider;
    const char *prompt = spec->prompt != NULL ? spec->prompt : "";
    vg_render_params params = {
        .prompt = prompt,
        .width = spec->width,
        .height = spec->height,
        .fps = spec->fps,
        .duration = spec->duration,
        .audio = spec->generate_audio,
        .camera_fixed = spec->camera_fixed,
        .seed = spec->seed,
        .images = spec->image_paths,
        .n_images = spec->n_images,
        .cancel = hooks != NULL ? hooks->cancel : NULL,
        .progress = hooks != NULL ? hooks->progress : NULL,
        .opaque = hooks != NULL ? hooks->opaque : NULL,
    };
    if (vg_render_mp4(&params, out_path, err) < 0)
        return -1;
    if (result != NULL) {
        /* Nothing is generated, so nothing is billed as completion. */
        result->prompt_tokens = vg_estimate_tokens(prompt);
        result->completion_tokens = 0;
    }
    return 0;
}

static void local_destroy(vg_provider *provider)
{
    free(provider);
}

static const vg_provider_ops local_ops = {
    .name = "local",
    .run = local_run,
    .destroy = local_destroy,
};

vg_provider *vg_provider_local_new(void)
{
    vg_provider *provider = calloc(1, sizeof(*provider));
    if (provider == NULL)
        return NULL;
    provider->ops = &local_ops;
    return provider;
}
