/*
 * render.c - vg_render_mp4(): the local renderer's driver.
 *
 * It checks the parameters, asks the frame source for each picture, makes
 * the soundtrack, feeds both to the encoder and publishes the result. The
 * clip is written to out_path + ".part" and renamed into place only when
 * complete, so a reader of out_path never sees half a file; on failure or
 * cancellation nothing is left behind.
 */
#include "render/render.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/error.h>
#include <libavutil/frame.h>

#include "media/ffmpeg_log.h"
#include "render/encoder.h"
#include "render/frames.h"
#include "render/soundtrack.h"

#define SAMPLE_RATE 48000
#define CHANNELS 2
/* Limits that keep the arithmetic and the encoder sane; the catalog
 * allows far less. */
#define MAX_SIDE 8192
#define MAX_FPS 120
#define MAX_DURATION 3600

/* Pictures drawn ahead of the encoder. */
#define SLOTS 3

typedef struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    vg_frame_source *source;
    AVFrame *slots[SLOTS];
    int frames;
    int drawn;   /* pictures complete, by the drawing thread */
    int encoded; /* pictures the encoder has taken */
    bool stop;   /* set by the encoding side: finish now */
} pipeline;

static int check_params(const vg_render_params *p, vg_error *err)
{
    const char *problem = NULL;
    if (p->width < 2 || p->height < 2 || p->width > MAX_SIDE ||
        p->height > MAX_SIDE || p->width % 2 || p->height % 2)
        problem = "width and height must be even, 2 to 8192";
    else if (p->fps < 1 || p->fps > MAX_FPS)
        problem = "fps must be 1 to 120";
    else if (p->duration < 1 || p->duration > MAX_DURATION)
        problem = "duration must be 1 to 3600 seconds";
    else if (p->n_images < 0 || (p->n_images > 0 && p->images == NULL))
        problem = "images do not match n_images";
    if (problem == NULL)
        return 0;
    return vg_error_set(err, 500, "render_failed", NULL,
                        "invalid render parameters: %s", problem);
}

static bool cancelled(const vg_render_params *p)
{
    return p->cancel != NULL && atomic_load(p->cancel) != 0;
}

/* Drawing runs on its own thread, a few pictures ahead of the encoder, so
 * it overlaps with x264's work instead of stalling it: drawing a frame
 * costs about half as much as encoding one. */
static void *draw_frames(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-draw");
    pipeline *pl = arg;
    for (int i = 0; i < pl->frames; i++) {
        pthread_mutex_lock(&pl->lock);
        while (!pl->stop && i - pl->encoded >= SLOTS)
            pthread_cond_wait(&pl->changed, &pl->lock);
        bool stop = pl->stop;
        pthread_mutex_unlock(&pl->lock);
        if (stop)
            break;
        /* The encoder copied this slot's previous picture (see
         * vg_encoder_write_video), so it can be drawn over. */
        vg_frame_source_draw(pl->source, i, pl->slots[i % SLOTS]);
        pthread_mutex_lock(&pl->lock);
        pl->drawn = i + 1;
        pthread_cond_broadcast(&pl->changed);
        pthread_mutex_unlock(&pl->lock);
    }
    return NULL;
}

static int alloc_slots(pipeline *pl, const vg_render_params *p, vg_error *err)
{
    for (int i = 0; i < SLOTS; i++) {
        AVFrame *f = av_frame_alloc();
        pl->slots[i] = f;
        if (f == NULL)
            return vg_error_set(err, 500, "render_failed", NULL,
                                "out of memory");
        f->format = AV_PIX_FMT_YUV420P;
        f->width = p->width;
        f->height = p->height;
        int ret = av_frame_get_buffer(f, 0);
        if (ret < 0)
            return vg_error_set(err, 500, "render_failed", NULL,
                                "cannot allocate a video frame: %s",
                                av_err2str(ret));
    }
    return 0;
}

/* The soundtrack is made on its own thread while the pictures start: its
 * speech synthesis takes a few hundred milliseconds, which would
 * otherwise be added to every clip with audio. */
typedef struct pending_soundtrack {
    const vg_render_params *params;
    pthread_t thread;
    bool started, joined;
    atomic_int done;
    vg_soundtrack *soundtrack;
    vg_error err;
} pending_soundtrack;

static void *make_soundtrack(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-soundtrack");
    pending_soundtrack *ps = arg;
    const vg_render_params *p = ps->params;
    ps->soundtrack = vg_soundtrack_new(p->prompt, p->seed, p->duration,
                                       SAMPLE_RATE, CHANNELS, p->cancel,
                                       &ps->err);
    atomic_store(&ps->done, 1);
    return NULL;
}

static int start_soundtrack(pending_soundtrack *ps, vg_error *err)
{
    int rc = pthread_create(&ps->thread, NULL, make_soundtrack, ps);
    if (rc != 0)
        return vg_error_set(err, 500, "render_failed", NULL,
                            "cannot start the soundtrack thread: %s",
                            strerror(rc));
    ps->started = true;
    return 0;
}

/* The finished soundtrack; NULL while it is still being made and `wait`
 * is false. Fails (-1) when it could not be made. */
static int soundtrack_ready(pending_soundtrack *ps, bool wait,
                            const vg_render_params *p,
                            vg_soundtrack **out, vg_error *err)
{
    *out = NULL;
    if (!ps->joined) {
        if (!wait && !atomic_load(&ps->done))
            return 0;
        pthread_join(ps->thread, NULL);
        ps->joined = true;
    }
    if (ps->soundtrack == NULL) {
        if (cancelled(p))
            return vg_error_set(err, 500, "cancelled", NULL,
                                "render cancelled");
        *err = ps->err;
        return -1;
    }
    *out = ps->soundtrack;
    return 0;
}

/* Hands each drawn picture to the encoder with the audio that goes with
 * it, then completes the file. Audio may lag the pictures by up to a
 * second while the soundtrack is being made; the muxer interleaves. */
static int encode_frames(const vg_render_params *p, pipeline *pl,
                         vg_encoder *enc, pending_soundtrack *pending,
                         vg_error *err)
{
    int last_percent = -1;
    for (int i = 0; i < pl->frames; i++) {
        if (cancelled(p))
            return vg_error_set(err, 500, "cancelled", NULL,
                                "render cancelled");
        pthread_mutex_lock(&pl->lock);
        while (pl->drawn <= i)
            pthread_cond_wait(&pl->changed, &pl->lock);
        pthread_mutex_unlock(&pl->lock);
        if (vg_encoder_write_video(enc, pl->slots[i % SLOTS], err) < 0)
            return -1;
        pthread_mutex_lock(&pl->lock);
        pl->encoded = i + 1;
        pthread_cond_broadcast(&pl->changed);
        pthread_mutex_unlock(&pl->lock);

        vg_soundtrack *soundtrack = NULL;
        if (p->audio &&
            soundtrack_ready(pending, i + 1 >= p->fps || i + 1 == pl->frames,
                             p, &soundtrack, err) != 0)
            return -1;
        AVFrame *sound;
        int64_t first;
        while (soundtrack != NULL &&
               (sound = vg_encoder_audio_frame(enc, &first, err)) != NULL) {
            vg_soundtrack_fill(soundtrack,
                               (float *const *)sound->extended_data, first,
                               sound->nb_samples);
            if (vg_encoder_write_audio(enc, err) < 0)
                return -1;
        }
        /* At most one call per percent; the last one comes when the file
         * is in place. */
        int percent = (int)((int64_t)(i + 1) * 100 / pl->frames);
        if (p->progress != NULL && i + 1 < pl->frames &&
            percent != last_percent)
            p->progress(p->opaque, i + 1, pl->frames);
        last_percent = percent;
    }
    if (cancelled(p))
        return vg_error_set(err, 500, "cancelled", NULL, "render cancelled");
    return vg_encoder_finish(enc, err);
}

/* Writes the clip to `path`; the caller deals with the file on failure. */
static int render_to(const vg_render_params *p, const char *path,
                     vg_error *err)
{
    vg_encoder_config config = {
        .width = p->width,
        .height = p->height,
        .fps = p->fps,
        .frames = p->fps * p->duration,
        .audio = p->audio,
        .sample_rate = SAMPLE_RATE,
        .channels = CHANNELS,
    };
    pipeline pl = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .changed = PTHREAD_COND_INITIALIZER,
        .frames = config.frames,
    };
    vg_encoder *enc = NULL;
    pending_soundtrack pending = {.params = p};
    int ret = -1;

    if (p->audio && start_soundtrack(&pending, err) != 0)
        goto done;
    pl.source = vg_frame_source_new(p, err);
    if (pl.source == NULL)
        goto done;
    if (alloc_slots(&pl, p, err) < 0)
        goto done;
    enc = vg_encoder_open(path, &config, err);
    if (enc == NULL)
        goto done;
    pthread_t drawer;
    int rc = pthread_create(&drawer, NULL, draw_frames, &pl);
    if (rc != 0) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot start the drawing thread: %s", strerror(rc));
        goto done;
    }
    ret = encode_frames(p, &pl, enc, &pending, err);
    /* On success the drawer has finished; on failure it must stop early. */
    pthread_mutex_lock(&pl.lock);
    pl.stop = true;
    pthread_cond_broadcast(&pl.changed);
    pthread_mutex_unlock(&pl.lock);
    pthread_join(drawer, NULL);

done:
    if (pending.started && !pending.joined)
        pthread_join(pending.thread, NULL);
    vg_encoder_free(enc);
    vg_soundtrack_free(pending.soundtrack);
    for (int i = 0; i < SLOTS; i++)
        av_frame_free(&pl.slots[i]);
    vg_frame_source_free(pl.source);
    pthread_cond_destroy(&pl.changed);
    pthread_mutex_destroy(&pl.lock);
    return ret;
}

int vg_render_mp4(const vg_render_params *params, const char *out_path,
                  vg_error *err)
{
    vg_ffmpeg_log_install();
    size_t len = strlen(out_path) + sizeof(".part");
    char *part = malloc(len);
    if (part == NULL)
        return vg_error_set(err, 500, "render_failed", NULL, "out of memory");
    snprintf(part, len, "%s.part", out_path);

    int ret = check_params(params, err);
    if (ret == 0)
        ret = render_to(params, part, err);
    if (ret == 0 && rename(part, out_path) != 0)
        ret = vg_error_set(err, 500, "render_failed", NULL,
                           "cannot move the clip to %s: %s", out_path,
                           strerror(errno));
    if (ret == 0) {
        if (params->progress != NULL) {
            int frames = params->fps * params->duration;
            params->progress(params->opaque, frames, frames);
        }
    } else {
        /* The contract: after a failure nothing is at out_path, not even
         * an older clip of the same name. */
        unlink(part);
        unlink(out_path);
    }
    free(part);
    return ret;
}
