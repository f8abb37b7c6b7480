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
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/frame.h>
#include <libavutil/log.h>

#include "render/encoder.h"
#include "render/frames.h"
#include "util/log.h"

#define SAMPLE_RATE 48000
#define CHANNELS 2
/* Limits that keep the arithmetic and the encoder sane; the catalog
 * allows far less. */
#define MAX_SIDE 8192
#define MAX_FPS 120
#define MAX_DURATION 3600

/* The soundtrack: a soft chord chosen by the seed, swelling slowly, faded
 * in and out so the clip does not start or end with a click. */
typedef struct chord {
    double freq[3];
    double gain[3];
    double detune;  /* right channel frequency ratio, for width */
    double swell_w; /* radians per second */
    int64_t total;  /* samples */
} chord;

static pthread_once_t log_setup_once = PTHREAD_ONCE_INIT;

/* libav prints to stderr by default (x264's statistics, codec chatter),
 * which would break the one-JSON-object-per-line log. Errors go through
 * vg_log; the rest is dropped, since failures reach the caller via err. */
static void forward_av_log(void *avcl, int level, const char *fmt,
                           va_list args)
{
    if (level > AV_LOG_ERROR)
        return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, args, line, sizeof(line),
                        &print_prefix);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len > 0)
        vg_log_warn("libav: %s", line);
}

static void install_av_log(void)
{
    av_log_set_callback(forward_av_log);
}

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

static void compose_chord(const vg_render_params *p, chord *c)
{
    /* A root between A2 and G#3, major or minor by the seed's next bit. */
    uint32_t s = p->seed * 2654435761u;
    int root = 45 + (int)(s % 12);
    int third = (s >> 8) & 1 ? 4 : 3;
    int notes[3] = {root, root + third, root + 7};
    for (int i = 0; i < 3; i++) {
        c->freq[i] = 440.0 * pow(2.0, (notes[i] - 69) / 12.0);
        c->gain[i] = i == 0 ? 0.5 : 0.3;
    }
    c->detune = 1.0025;
    c->swell_w = 2 * M_PI * (0.1 + 0.1 * ((s >> 16) & 0xff) / 255.0);
    c->total = (int64_t)p->duration * SAMPLE_RATE;
}

static void play_chord(const chord *c, AVFrame *frame, int64_t first)
{
    for (int ch = 0; ch < frame->ch_layout.nb_channels; ch++) {
        float *out = (float *)frame->extended_data[ch];
        double ratio = ch == 1 ? c->detune : 1.0;
        for (int n = 0; n < frame->nb_samples; n++) {
            int64_t i = first + n;
            double t = (double)i / SAMPLE_RATE;
            double left = (double)(c->total - i) / SAMPLE_RATE;
            double envelope = fmin(1.0, fmin(t / 0.3, left / 0.5));
            double swell = 0.85 + 0.15 * sin(c->swell_w * t);
            double v = 0;
            for (int k = 0; k < 3; k++)
                v += c->gain[k] * sin(2 * M_PI * c->freq[k] * ratio * t);
            out[n] = (float)(0.18 * envelope * swell * v);
        }
    }
}

static bool cancelled(const vg_render_params *p)
{
    return p->cancel != NULL && atomic_load(p->cancel) != 0;
}

/* Writes the clip to `path`; the caller deals with the file on failure. */
static int render_to(const vg_render_params *p, const char *path,
                     vg_error *err)
{
    int frames = p->fps * p->duration;
    vg_encoder_config config = {
        .width = p->width,
        .height = p->height,
        .fps = p->fps,
        .frames = frames,
        .audio = p->audio,
        .sample_rate = SAMPLE_RATE,
        .channels = CHANNELS,
    };
    chord chord;
    compose_chord(p, &chord);

    vg_encoder *enc = NULL;
    vg_frame_source *source = vg_frame_source_new(p, err);
    if (source == NULL)
        return -1;
    enc = vg_encoder_open(path, &config, err);
    if (enc == NULL)
        goto fail;

    int last_percent = -1;
    for (int i = 0; i < frames; i++) {
        if (cancelled(p)) {
            vg_error_set(err, 500, "cancelled", NULL, "render cancelled");
            goto fail;
        }
        AVFrame *picture = vg_encoder_video_frame(enc, err);
        if (picture == NULL)
            goto fail;
        vg_frame_source_draw(source, i, picture);
        if (vg_encoder_write_video(enc, err) < 0)
            goto fail;
        AVFrame *sound;
        int64_t first;
        while ((sound = vg_encoder_audio_frame(enc, &first, err)) != NULL) {
            play_chord(&chord, sound, first);
            if (vg_encoder_write_audio(enc, err) < 0)
                goto fail;
        }
        /* At most one call per percent; the last one comes when the file
         * is complete. */
        int percent = (int)((int64_t)(i + 1) * 100 / frames);
        if (p->progress != NULL && i + 1 < frames && percent != last_percent)
            p->progress(p->opaque, i + 1, frames);
        last_percent = percent;
    }
    if (cancelled(p)) {
        vg_error_set(err, 500, "cancelled", NULL, "render cancelled");
        goto fail;
    }
    if (vg_encoder_finish(enc, err) < 0)
        goto fail;
    vg_encoder_free(enc);
    vg_frame_source_free(source);
    return 0;

fail:
    vg_encoder_free(enc);
    vg_frame_source_free(source);
    return -1;
}

int vg_render_mp4(const vg_render_params *params, const char *out_path,
                  vg_error *err)
{
    pthread_once(&log_setup_once, install_av_log);
    size_t len = strlen(out_path) + sizeof(".part");
    char *part = malloc(len);
    if (part == NULL)
        return vg_error_set(err, 500, "render_failed", NULL,
                            "out of memory");
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
