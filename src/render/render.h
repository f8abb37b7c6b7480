/*
 * render.h - the local renderer: draws frames and encodes them with
 * FFmpeg's libraries (libx264 + AAC) into a fast-start MP4.
 *
 * It is not a generative model: it renders the prompt and the reference
 * images into a moving clip of the exact requested shape.
 */
#ifndef VG_RENDER_H
#define VG_RENDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vg_render_params {
    const char *prompt;
    int width, height; /* even */
    int fps;
    int duration; /* seconds; frames = fps * duration exactly */
    bool audio;   /* an AAC track exactly as long as the video */
    bool camera_fixed;
    uint32_t seed;
    const char *const *images; /* paths of PNG/JPEG/WebP files */
    int n_images;
    /* Checked between frames: non-zero stops the render (error code
     * "cancelled"). May be NULL. */
    atomic_int *cancel;
    /* Called now and then with frames done and the total. May be NULL. */
    void (*progress)(void *opaque, int frames_done, int frames_total);
    void *opaque;
} vg_render_params;

/* Renders into out_path. On any failure (or cancel) no file is left at
 * out_path and err says why. */
int vg_render_mp4(const vg_render_params *params, const char *out_path,
                  vg_error *err);

#endif
