/*
 * local.c - the built-in "local" provider: renders on the worker thread
 * with the local renderer, so the whole API works with no provider keys
 * and no network.
 *
 * It is not a generative model (the docs say so): it renders the prompt's
 * colours and a camera move, or pans over the reference images in turn,
 * into a real H.264/AAC MP4 of exactly the requested shape.
 */
#include "providers/providers.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "render/render.h"
#include "util/parse.h"

typedef struct local_provider {
    vg_provider base;
    char tmp_dir[PATH_MAX];
} local_provider;

/* The renderer's progress, as the percentages the job engine hears. */
typedef struct local_progress {
    vg_provider *p;
    const char *job_id;
    int sent;
} local_progress;

static void on_frames(void *opaque, int done, int total)
{
    local_progress *lp = opaque;
    int pct = total > 0 ? (int)((int64_t)done * 100 / total) : 0;
    if (pct > 99)
        pct = 99; /* 100 means stored, which only the job engine says */
    if (pct <= lp->sent)
        return;
    vg_provider_event *ev =
        vg_provider_event_new(VG_EVENT_PROGRESS, lp->job_id, lp->p->name);
    if (ev == NULL)
        return; /* progress is a courtesy: skip a step */
    lp->sent = ev->progress = pct;
    lp->p->sink.deliver(lp->p->sink.ctx, ev);
}

static int local_start(vg_provider *provider, const vg_provider_job *job,
                       vg_error *err)
{
    local_provider *p = (local_provider *)provider;
    const vg_job_spec *spec = job->spec;
    char out[PATH_MAX + 64];
    snprintf(out, sizeof(out), "%s/%s.mp4", p->tmp_dir, job->id);
    local_progress progress = {provider, job->id, 0};
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
        .cancel = job->cancel,
        .progress = on_frames,
        .opaque = &progress,
    };
    vg_error failure;
    vg_error_clear(&failure);
    if (vg_render_mp4(&params, out, &failure) < 0)
        return vg_provider_send_failed(provider, job->id, &failure, err);
    /* Nothing is generated, so nothing is billed as completion. */
    if (vg_provider_send_done(provider, job->id, out,
                              vg_estimate_tokens(prompt), 0, err) != 0) {
        unlink(out);
        return -1;
    }
    return 0;
}

static void local_cancel(vg_provider *provider, const char *job_id,
                         bool remote)
{
    /* The render looks at the job's cancel flag between frames. */
    (void)provider, (void)job_id, (void)remote;
}

static bool local_available(vg_provider *provider)
{
    (void)provider;
    return true;
}

static void local_destroy(vg_provider *provider)
{
    free(provider);
}

static const vg_provider_ops local_ops = {
    .start = local_start,
    .cancel = local_cancel,
    .available = local_available,
    .destroy = local_destroy,
};

vg_provider *vg_provider_local_new(const vg_provider_config *config,
                                   int renders, const char *tmp_dir,
                                   vg_error *err)
{
    local_provider *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    p->base.ops = &local_ops;
    snprintf(p->base.name, sizeof(p->base.name), "local");
    /* Renders are CPU-bound: one per core unless told otherwise, each on
     * a worker thread of its own. */
    p->base.concurrency = config != NULL && config->concurrency > 0
                              ? config->concurrency
                              : renders;
    p->base.threads = p->base.concurrency;
    p->base.delay_ms = config != NULL ? config->delay_ms : 0;
    snprintf(p->tmp_dir, sizeof(p->tmp_dir), "%s", tmp_dir);
    return &p->base;
}
