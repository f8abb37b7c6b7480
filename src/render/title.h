/*
 * title.h - the prompt drawn as an animated title over a text-to-video
 * clip.
 *
 * The text is laid out once (pango and fontconfig pick a font per
 * script, bidi and wrapping included), sized to the largest size that
 * fits the frame's safe area, ellipsized when even the smallest readable
 * size does not, and rendered once with a soft shadow into premultiplied
 * YUV planes. Drawing a frame then only blends those planes in at a
 * position and opacity that are pure functions of the frame index, so a
 * title costs a copy-sized blend per frame and equal parameters give
 * equal pixels.
 */
#ifndef VG_TITLE_H
#define VG_TITLE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

struct AVFrame;

/* Everything the title draws (glyphs and shadow) stays at least this
 * fraction of the frame's width and height away from its edges, on every
 * frame: the text is laid out inside a margin of VG_TITLE_LAYOUT_MARGIN
 * and moves by at most the difference. */
#define VG_TITLE_SAFE_MARGIN 0.06
#define VG_TITLE_LAYOUT_MARGIN 0.10

typedef struct vg_title vg_title;

typedef struct vg_title_params {
    const char *text;  /* UTF-8; invalid bytes and controls are tolerated */
    int width, height; /* the frame's, even */
    int fps, frames;
    bool camera_fixed; /* true: the title fades in and then holds still */
    uint64_t seed;     /* picks the entrance and the drift */
    /* How far the background moves on screen from the first frame to the
     * last, in pixels (the camera's pan); the title follows a fraction of
     * it, eased the same way. Ignored when camera_fixed. */
    float pan_x, pan_y;
    /* The scene's light and dark colours, RGB 0..1: the text is a light
     * tint of the first, its shadow a deep shade of the second, so it
     * reads on any part of the background. */
    float light[3], dark[3];
} vg_title_params;

typedef struct vg_title_rect {
    int x, y, w, h;
} vg_title_rect;

/* What the layout came to, for tests and logs. */
typedef struct vg_title_info {
    double font_px;        /* the chosen size, pixels per em */
    int lines;             /* lines drawn */
    bool ellipsized;       /* the text was cut short with an ellipsis */
    int unknown_glyphs;    /* characters no installed font has */
    uint64_t ink;          /* sum of the glyphs' alpha, 0..255 each */
    vg_title_rect at_rest; /* the drawn box once the title has arrived */
} vg_title_info;

/* Lays out and renders the title. An empty text, or a frame too small
 * for one line of readable text, gives a title that draws nothing.
 * Returns NULL and fills err (500 "render_failed") only when memory or
 * the font machinery fails. Keeps nothing of params. */
vg_title *vg_title_new(const vg_title_params *params, vg_error *err);

/* Blends the title, as it is at frame `index`, into a YUV420P frame of
 * the params' size (BT.709 limited range). Safe to call from any thread;
 * the title is not changed. */
void vg_title_draw(const vg_title *title, int index, struct AVFrame *frame);

/* The box frame `index` draws into (glyphs and shadow); w == 0 when it
 * draws nothing. */
vg_title_rect vg_title_box(const vg_title *title, int index);

void vg_title_describe(const vg_title *title, vg_title_info *info);

void vg_title_free(vg_title *title);

#endif
