/*
 * picture_internal.h - what the files of the image-to-video source share:
 *
 *   picture.c         the slides' sequence, the camera moves and drawing;
 *   picture_decode.c  reading, checking and decoding a reference image;
 *   picture_scale.c   converting and scaling it, over a backdrop where it
 *                     is see-through.
 */
#ifndef VG_PICTURE_INTERNAL_H
#define VG_PICTURE_INTERNAL_H

#include "render/picture.h"

#include <stdbool.h>
#include <stdint.h>

#include <libavutil/frame.h>
#include <libswscale/swscale.h>

#include "util/error.h"

/* The request layer limits the upload size; these stop a small file that
 * expands into a huge picture before anything large is allocated. */
#define MAX_IMAGE_FILE_BYTES (64L * 1024 * 1024)
#define MAX_IMAGE_PIXELS (50 * 1000 * 1000)
#define MAX_IMAGE_SIDE 16384
/* Decoding holds one original at a time; this bounds it. Only 16-bit PNGs
 * can go past it within the pixel limit (8 bytes a pixel with alpha). */
#define MAX_DECODED_BYTES (256L * 1024 * 1024)
/* How far the moving camera zooms into an image at most. */
#define PAN_ZOOM 1.25f
/* A very wide or tall image keeps at most this much of its long side per
 * frame-shaped crop, for panning; the rest is cut off before scaling. */
#define PAN_SLACK 1.6f
/* Crossfades between images last this long, or less when many images
 * share a short clip. */
#define TRANSITION_SECONDS 0.6f
/* See-through images are converted and composited this many rows at a
 * time, so no full-size RGBA copy of the original is ever made. */
#define STRIP_ROWS 64
/* The backdrop behind see-through areas: a blur of the image's own
 * colours on a grid this many cells high, pulled towards a seed-coloured
 * tone that contrasts with the image. */
#define BACKDROP_ROWS 8
#define BACKDROP_MAX_COLUMNS 64
#define BACKDROP_TONE 0.7f

/* BT.709 luma weights. */
#define KR 0.2126f
#define KG 0.7152f
#define KB 0.0722f

/* An image scaled once to cover the frame at the deepest zoom, kept in
 * YUV so each frame only interpolates, and the camera move over it. */
typedef struct slide {
    int w, h;       /* even */
    uint8_t *y;     /* w x h */
    uint8_t *u, *v; /* w/2 x h/2 */
    float zoom0, zoom1;
    float pan_x0, pan_y0, pan_x1, pan_y1; /* fractions of the slack */
    float start, end; /* frames during which it is visible, maybe in part */
    bool ease_in, ease_out;
} slide;

/* Bilinear taps along one axis: indices and the weight of the second, in
 * 1/256. */
typedef struct tap {
    int i0, i1, w;
} tap;

struct vg_picture_source {
    int width, height, fps, frames;
    bool camera_fixed;
    float base_zoom; /* the zoom at which every slide just covers */
    slide slides[VG_PICTURE_MAX_IMAGES];
    int n_slides;
    float transition; /* frames */
    float light_w, light_phase;

    /* Scratch reused by every frame. */
    uint8_t *under[3]; /* the incoming slide during a crossfade */
    int under_linesize[3];
    tap *luma_taps, *chroma_taps;
    int *light_x, *light_y;
};

/* Which image a problem is about, for messages clients can act on. */
typedef struct image_ref {
    const char *path;
    int position, count; /* 1-based */
} image_ref;

/* A decoded image and how to turn it upright. */
typedef struct oriented {
    AVFrame *frame;
    int orientation; /* EXIF: 1 upright .. 8 */
} oriented;

/* The colours behind see-through areas: a blurred, toned grid over the
 * (cropped) image, read bilinearly. */
typedef struct backdrop {
    int columns, rows;
    float *rgb; /* columns x rows x 3 */
} backdrop;

/* ---- picture.c -----------------------------------------------------------
 */

/* A colour from hue (0..1), saturation and value, as RGB 0..1. */
void pic_hsv(float h, float s, float v, float out[3]);
/* Bilinear taps for n output samples from first, step apart, over an
 * axis of size samples. */
void pic_make_taps(tap *taps, int n, float first, float step, int size);

/* ---- picture_decode.c ----------------------------------------------------
 */

/* A refusal naming the image (422), and running out of memory (500). */
int pic_refuse(vg_error *err, const image_ref *ref, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pic_out_of_memory(vg_error *err);
/* Reads, checks and decodes the image (freed by the caller with
 * av_frame_free(&out->frame)). */
int pic_decode_image(const image_ref *ref, oriented *out, vg_error *err);

/* ---- picture_scale.c -----------------------------------------------------
 */

struct SwsContext *pic_make_image_scaler(struct SwsContext *reuse,
                                         const AVFrame *image, int w, int h,
                                         int out_w, int out_h,
                                         enum AVPixelFormat to);
/* Scales a see-through image over its backdrop into out (RGB, out_w x
 * out_h), a strip at a time. */
int pic_scale_see_through(const AVFrame *image, uint64_t *state, uint8_t *out,
                          int out_w, int out_h, vg_error *err);

#endif
