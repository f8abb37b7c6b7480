/*
 * frames.c - the first frame source: seed-coloured gradients and soft
 * shapes under a drifting camera, with the prompt as a title over them
 * (title.c), for text-to-video; with reference images it hands every
 * frame to the picture source (picture.c).
 *
 * Everything that varies between clips (palette, shapes, their paths, the
 * camera move) is drawn from a PRNG seeded by the seed and a hash of the
 * prompt, once, in vg_frame_source_new(). Drawing frame N is then a pure
 * function of N, so equal requests give equal bytes and frames can be
 * drawn in any order.
 *
 * Pictures go straight into YUV420P (BT.709, limited range). The scene is
 * all soft gradients, glows and round shapes, so it is shaded once per
 * 2x2 block, which is exactly one chroma sample, and luma is upsampled
 * bilinearly from those blocks: a quarter of the shading work, no
 * full-frame RGB buffer and no swscale pass per frame.
 */
#include "render/frames.h"
#include "render/random.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>

#include "render/picture.h"
#include "render/title.h"

#define N_GLOWS 3
#define N_DISCS 2
/* Rows are shaded in blocks of a fixed number of pixels: a constant trip
 * count lets the compiler keep the inner loop in vector registers. */
#define BLOCK 4

/* BT.709 luma weights. */
#define KR 0.2126f
#define KG 0.7152f
#define KB 0.0722f

static const float TAU = 6.28318530718f;

typedef struct rgb {
    float r, g, b;
} rgb;

/* A point swaying around a centre on a slow Lissajous path. */
typedef struct mover {
    float x, y;   /* centre, scene units (the frame is 1 unit high) */
    float ax, ay; /* amplitude */
    float wx, wy; /* angular speed, radians per second */
    float px, py; /* phase */
} mover;

typedef struct shape {
    mover at;
    rgb colour;
    float radius;   /* scene units */
    float strength; /* glow brightness, or disc opacity */
    float pulse_w;  /* radius breathing, radians per second */
} shape;

typedef struct scene {
    rgb low, high;
    float angle, spin; /* gradient direction (radians) and turn rate */
    float steepness;   /* gradient change per scene unit */
    float sway, sway_w, sway_phase;
    shape glows[N_GLOWS];
    shape discs[N_DISCS];
    float vignette;
} scene;

/* Camera move from the first frame to the last; all zero when fixed. */
typedef struct camera {
    float zoom0, zoom1;
    float x0, y0, x1, y1; /* scene point at the frame centre */
    float roll0, roll1;   /* radians */
} camera;

/* Everything shade_row() needs for one frame, precomputed. */
typedef struct frame_state {
    /* scene point of pixel centre (x, y): (ax*x + bx*y + ox,
     * ay*x + by*y + oy) */
    float ax, ay, bx, by, ox, oy;
    float gx, gy, g0; /* gradient argument: gx*sx + gy*sy + g0 */
    rgb low, high;
    float glow_x[N_GLOWS], glow_y[N_GLOWS], glow_r2[N_GLOWS];
    float glow_s[N_GLOWS];
    rgb glow_c[N_GLOWS];
    float disc_x[N_DISCS], disc_y[N_DISCS], disc_r2[N_DISCS];
    float disc_k[N_DISCS], disc_o[N_DISCS];
    rgb disc_c[N_DISCS];
    float vignette, inv_height, half_width, half_height;
    float scale; /* full-size pixels per shaded sample */
} frame_state;

struct vg_frame_source {
    int width, height, fps, frames;
    bool camera_fixed;
    scene scene;
    camera camera;

    vg_picture_source *pictures; /* NULL: draw the scene */
    vg_title *title;             /* the prompt over the scene */

    /* Scratch reused by every frame. */
    int padded_width; /* width / 2 rounded up to BLOCK */
    float *rgb_row;   /* (r, g, b) x padded_width */
    float *luma;      /* height / 2 rows x padded_width, then one row */
};

/* ---- randomness ----------------------------------------------------- */

static uint64_t hash_text(const char *text)
{
    /* FNV-1a: the prompt only needs to nudge the palette and motion. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

static rgb hsv(float h, float s, float v)
{
    h -= floorf(h);
    float f = h * 6.0f;
    int sector = (int)f % 6;
    f -= floorf(f);
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    switch (sector) {
    case 0:
        return (rgb){v, t, p};
    case 1:
        return (rgb){q, v, p};
    case 2:
        return (rgb){p, v, t};
    case 3:
        return (rgb){p, q, v};
    case 4:
        return (rgb){t, p, v};
    default:
        return (rgb){v, p, q};
    }
}

static mover random_mover(uint64_t *state, float aspect, float amplitude)
{
    mover m;
    m.x = vg_random_between(state, -0.38f, 0.38f) * aspect;
    m.y = vg_random_between(state, -0.32f, 0.32f);
    m.ax = vg_random_between(state, 0.4f, 1.0f) * amplitude;
    m.ay = vg_random_between(state, 0.4f, 1.0f) * amplitude;
    /* One sway takes 8 to 25 seconds: motion is visible but calm. */
    m.wx = TAU * vg_random_between(state, 0.04f, 0.12f);
    m.wy = TAU * vg_random_between(state, 0.04f, 0.12f);
    m.px = vg_random_between(state, 0, TAU);
    m.py = vg_random_between(state, 0, TAU);
    return m;
}

static void invent_scene(vg_frame_source *src, uint64_t *state)
{
    scene *s = &src->scene;
    float aspect = (float)src->width / (float)src->height;
    /* One draw per statement: the order in which a call's arguments are
     * evaluated is unspecified in C, and a seed must mean the same clip
     * whatever compiler built the server. (The order below is the one
     * GCC used when the draws were written as arguments, so existing
     * seeds keep their clips.) */
    float hue = vg_random_between(state, 0, 1);
    float val = vg_random_between(state, 0.16f, 0.3f);
    float sat = vg_random_between(state, 0.6f, 0.85f);
    s->low = hsv(hue, sat, val);
    val = vg_random_between(state, 0.72f, 0.92f);
    sat = vg_random_between(state, 0.45f, 0.75f);
    float shift = vg_random_sign(state);
    shift *= vg_random_between(state, 0.06f, 0.2f);
    s->high = hsv(hue + shift, sat, val);
    s->angle = vg_random_between(state, 0, TAU);
    s->spin = vg_random_sign(state);
    s->spin *= vg_random_between(state, 0.02f, 0.08f);
    s->steepness = vg_random_between(state, 0.9f, 1.6f);
    s->sway = vg_random_between(state, 0.3f, 0.6f);
    s->sway_w = TAU * vg_random_between(state, 0.05f, 0.12f);
    s->sway_phase = vg_random_between(state, 0, TAU);
    for (int i = 0; i < N_GLOWS; i++) {
        shape *g = &s->glows[i];
        g->at = random_mover(state, aspect, 0.25f);
        float sg = vg_random_between(state, 0.5f, 0.8f);
        float h = hue + vg_random_between(state, 0.25f, 0.75f);
        g->colour = hsv(h, sg, 1.0f);
        g->radius = vg_random_between(state, 0.15f, 0.35f);
        g->strength = vg_random_between(state, 0.25f, 0.5f);
        g->pulse_w = 0;
    }
    for (int i = 0; i < N_DISCS; i++) {
        shape *d = &s->discs[i];
        d->at = random_mover(state, aspect, 0.15f);
        float vd = vg_random_between(state, 0.85f, 1.0f);
        float sd = vg_random_between(state, 0.35f, 0.6f);
        float h = hue + 0.5f + vg_random_between(state, -0.1f, 0.1f);
        d->colour = hsv(h, sd, vd);
        d->radius = vg_random_between(state, 0.06f, 0.14f);
        d->strength = vg_random_between(state, 0.75f, 0.9f);
        d->pulse_w = TAU * vg_random_between(state, 0.15f, 0.35f);
    }
    s->vignette = vg_random_between(state, 0.25f, 0.45f);
}

static void invent_camera(vg_frame_source *src, uint64_t *state)
{
    camera *c = &src->camera;
    c->zoom0 = c->zoom1 = 1;
    if (src->camera_fixed)
        return;
    /* A push in or a pull out, a drift across, a slight roll. */
    float zoom = 1 + vg_random_between(state, 0.12f, 0.25f);
    if (vg_random_next(state) & 1)
        c->zoom1 = zoom;
    else
        c->zoom0 = zoom;
    float direction = vg_random_between(state, 0, TAU);
    float distance = vg_random_between(state, 0.15f, 0.3f);
    c->x1 = 0.5f * distance * cosf(direction);
    c->y1 = 0.5f * distance * sinf(direction);
    c->x0 = -c->x1;
    c->y0 = -c->y1;
    c->roll1 = vg_random_sign(state) * vg_random_between(state, 0.02f, 0.05f);
}

/* ---- the scene ------------------------------------------------------ */

static float lerp(float a, float b, float t)
{
    return a + (b - a) * t;
}

/* Where the clip is, 0 at the first frame and 1 at the last, eased so the
 * camera starts and stops softly. */
static float eased_progress(const vg_frame_source *src, int index)
{
    if (src->frames <= 1)
        return 0;
    float p = (float)index / (float)(src->frames - 1);
    return p * p * (3 - 2 * p);
}

static float sway(const mover *m, float t, float *y)
{
    *y = m->y + m->ay * sinf(m->wy * t + m->py);
    return m->x + m->ax * sinf(m->wx * t + m->px);
}

static void prepare_frame(const vg_frame_source *src, int index,
                          frame_state *fs)
{
    const scene *s = &src->scene;
    const camera *c = &src->camera;
    float t = (float)index / (float)src->fps;
    float e = eased_progress(src, index);

    float zoom = lerp(c->zoom0, c->zoom1, e);
    float roll = lerp(c->roll0, c->roll1, e);
    float k = 1.0f / ((float)src->height * zoom);
    float cr = cosf(roll) * k, sr = sinf(roll) * k;
    float hw = 0.5f * (float)src->width, hh = 0.5f * (float)src->height;
    /* Pixel centres are at x + 0.5; the shader passes x + 0.5 in
     * full-size pixels. */
    fs->ax = cr;
    fs->ay = sr;
    fs->bx = -sr;
    fs->by = cr;
    fs->ox = -cr * hw + sr * hh + lerp(c->x0, c->x1, e);
    fs->oy = -sr * hw - cr * hh + lerp(c->y0, c->y1, e);

    float angle = s->angle + s->spin * t;
    fs->gx = cosf(angle) * s->steepness;
    fs->gy = sinf(angle) * s->steepness;
    fs->g0 = s->sway * sinf(s->sway_w * t + s->sway_phase);
    fs->low = s->low;
    fs->high = s->high;

    for (int i = 0; i < N_GLOWS; i++) {
        const shape *g = &s->glows[i];
        fs->glow_x[i] = sway(&g->at, t, &fs->glow_y[i]);
        fs->glow_r2[i] = g->radius * g->radius;
        fs->glow_s[i] = g->strength;
        fs->glow_c[i] = g->colour;
    }
    /* One shaded sample spans two pixels: the rim is one sample wide. */
    float samples_per_unit = (float)src->height * zoom / 2;
    for (int i = 0; i < N_DISCS; i++) {
        const shape *d = &s->discs[i];
        float r = d->radius * (1 + 0.08f * sinf(d->pulse_w * t));
        fs->disc_x[i] = sway(&d->at, t, &fs->disc_y[i]);
        fs->disc_r2[i] = r * r;
        /* Near the edge r^2 - d^2 ~ 2r(r - d): scaled to pixels this gives
         * a one-pixel antialiased rim without a square root. */
        fs->disc_k[i] = samples_per_unit / (2 * r);
        fs->disc_o[i] = d->strength;
        fs->disc_c[i] = d->colour;
    }
    fs->vignette = s->vignette;
    fs->inv_height = 1.0f / (float)src->height;
    fs->half_width = hw;
    fs->half_height = hh;
    fs->scale = 2;
}

/* BLOCK pixels at a time with GCC's vector extensions (Clang has them
 * too): portable C that compiles to SIMD on any target, about four times
 * faster than the scalar loop, which -O2 does not vectorise. */
typedef float vfloat __attribute__((vector_size(BLOCK * sizeof(float))));
typedef int32_t vint __attribute__((vector_size(BLOCK * sizeof(int32_t))));
_Static_assert(BLOCK == 4, "shade_row's lane offsets assume 4 lanes");

static vfloat clamp01(vfloat v)
{
    /* Comparisons give all-ones lanes; select with masks (the ?: operator
     * does not take vectors in C). +0.0f is all-zero bits. */
    const vint one = (vint)((vfloat){0} + 1.0f);
    vint below = v < 0.0f;
    vint above = v > 1.0f;
    vint bits = (vint)v & ~below;
    return (vfloat)((bits & ~above) | (one & above));
}

static void store(float *out, vfloat v)
{
    /* memcpy: the row buffers are not aligned to the vector size. */
    memcpy(out, &v, sizeof(v));
}

/* Shades row y of samples (2x2 pixel blocks) into r, g, b and the luma
 * value (16..235, not yet rounded), padded_width entries each. */
static void shade_row(const frame_state *fs, int y, int padded_width,
                      float *restrict r, float *restrict g, float *restrict b,
                      float *restrict luma)
{
    const vfloat lane = {0.5f, 1.5f, 2.5f, 3.5f};
    float py = ((float)y + 0.5f) * fs->scale;
    float row_x = fs->bx * py + fs->ox;
    float row_y = fs->by * py + fs->oy;
    float v = (py - fs->half_height) * fs->inv_height;
    for (int x0 = 0; x0 < padded_width; x0 += BLOCK) {
        vfloat px = (lane + (float)x0) * fs->scale;
        vfloat sx = fs->ax * px + row_x;
        vfloat sy = fs->ay * px + row_y;

        vfloat t = clamp01(0.5f + 0.5f * (fs->gx * sx + fs->gy * sy + fs->g0));
        t = t * t * (3 - 2 * t);
        vfloat cr = fs->low.r + (fs->high.r - fs->low.r) * t;
        vfloat cg = fs->low.g + (fs->high.g - fs->low.g) * t;
        vfloat cb = fs->low.b + (fs->high.b - fs->low.b) * t;

        for (int i = 0; i < N_GLOWS; i++) {
            vfloat dx = sx - fs->glow_x[i], dy = sy - fs->glow_y[i];
            vfloat w = fs->glow_s[i] * fs->glow_r2[i] /
                       (fs->glow_r2[i] + dx * dx + dy * dy);
            cr += fs->glow_c[i].r * w;
            cg += fs->glow_c[i].g * w;
            cb += fs->glow_c[i].b * w;
        }
        for (int i = 0; i < N_DISCS; i++) {
            vfloat dx = sx - fs->disc_x[i], dy = sy - fs->disc_y[i];
            vfloat d2 = dx * dx + dy * dy;
            vfloat a = clamp01((fs->disc_r2[i] - d2) * fs->disc_k[i] + 0.5f) *
                       fs->disc_o[i];
            cr += (fs->disc_c[i].r - cr) * a;
            cg += (fs->disc_c[i].g - cg) * a;
            cb += (fs->disc_c[i].b - cb) * a;
        }

        /* The vignette belongs to the lens, so screen coordinates. */
        vfloat u = (px - fs->half_width) * fs->inv_height;
        vfloat f = 1 - fs->vignette * (u * u + v * v);
        cr = clamp01(cr * f);
        cg = clamp01(cg * f);
        cb = clamp01(cb * f);
        store(r + x0, cr);
        store(g + x0, cg);
        store(b + x0, cb);
        store(luma + x0, 16.5f + 219.0f * (KR * cr + KG * cg + KB * cb));
    }
}

/* Chroma of an average colour; 1.8556 and 1.5748 normalise B-Y and R-Y
 * to [-0.5, 0.5] for the BT.709 weights. */
static void chroma_of(float r, float g, float b, uint8_t *cb, uint8_t *cr)
{
    float y = KR * r + KG * g + KB * b;
    *cb = (uint8_t)(128.5f + 224.0f * (b - y) / 1.8556f);
    *cr = (uint8_t)(128.5f + 224.0f * (r - y) / 1.5748f);
}

static void draw_scene(vg_frame_source *src, int index, AVFrame *frame)
{
    frame_state fs;
    prepare_frame(src, index, &fs);
    int n = src->padded_width;
    int samples = src->width / 2, rows = src->height / 2;
    float *r = src->rgb_row, *g = r + n, *b = g + n;
    for (int y = 0; y < rows; y++) {
        shade_row(&fs, y, n, r, g, b, src->luma + (size_t)y * n);
        uint8_t *cb = frame->data[1] + (ptrdiff_t)y * frame->linesize[1];
        uint8_t *cr = frame->data[2] + (ptrdiff_t)y * frame->linesize[2];
        for (int x = 0; x < samples; x++)
            chroma_of(r[x], g[x], b[x], &cb[x], &cr[x]);
    }
    /* Bilinear 2x upsampling: sample i lies between pixels 2i and 2i + 1,
     * so each pixel takes 3/4 of its own sample and 1/4 of the neighbour
     * on its side, first down the columns, then along the row. */
    float *mixed = src->luma + (size_t)rows * n;
    for (int y = 0; y < src->height; y++) {
        int near = y / 2;
        int far = y % 2 ? near + 1 : near - 1;
        if (far < 0)
            far = 0;
        if (far >= rows)
            far = rows - 1;
        const float *a = src->luma + (size_t)near * n;
        const float *c = src->luma + (size_t)far * n;
        for (int x = 0; x < samples; x++)
            mixed[x] = 0.75f * a[x] + 0.25f * c[x];
        uint8_t *out = frame->data[0] + (ptrdiff_t)y * frame->linesize[0];
        float prev = mixed[0];
        for (int x = 0; x < samples; x++) {
            float next = mixed[x + 1 < samples ? x + 1 : x];
            /* The +0.5 rounding is already in the luma values. */
            out[2 * x] = (uint8_t)(0.75f * mixed[x] + 0.25f * prev);
            out[2 * x + 1] = (uint8_t)(0.75f * mixed[x] + 0.25f * next);
            prev = mixed[x];
        }
    }
}

/* ---- the title ------------------------------------------------------ */

/* The prompt in the scene's colours, following a little of the camera's
 * move. */
static vg_title *new_title(const vg_frame_source *src,
                           const vg_render_params *params, uint64_t seed,
                           vg_error *err)
{
    const scene *s = &src->scene;
    const camera *c = &src->camera;
    float h = (float)src->height;
    vg_title_params title = {
        .text = params->prompt,
        .width = src->width,
        .height = src->height,
        .fps = src->fps,
        .frames = src->frames,
        .camera_fixed = src->camera_fixed,
        .seed = seed,
        /* The camera's centre moves (x1 - x0, y1 - y0) frame heights, so
         * the scene moves the other way on screen. */
        .pan_x = -(c->x1 - c->x0) * h,
        .pan_y = -(c->y1 - c->y0) * h,
        .light = {s->high.r, s->high.g, s->high.b},
        .dark = {s->low.r, s->low.g, s->low.b},
    };
    return vg_title_new(&title, err);
}

/* ---- the source ----------------------------------------------------- */

vg_frame_source *vg_frame_source_new(const vg_render_params *params,
                                     vg_error *err)
{
    vg_frame_source *src = calloc(1, sizeof(*src));
    if (src == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        return NULL;
    }
    src->width = params->width;
    src->height = params->height;
    src->fps = params->fps;
    src->frames = params->fps * params->duration;
    src->camera_fixed = params->camera_fixed;
    src->padded_width = (params->width / 2 + BLOCK - 1) / BLOCK * BLOCK;

    uint64_t state = hash_text(params->prompt) ^
                     ((uint64_t)params->seed * 0xd1b54a32d192ed03ULL);
    invent_scene(src, &state);
    invent_camera(src, &state);

    src->rgb_row = malloc(sizeof(float) * 3 * (size_t)src->padded_width);
    src->luma = malloc(sizeof(float) * (size_t)(params->height / 2 + 1) *
                       (size_t)src->padded_width);
    if (src->rgb_row == NULL || src->luma == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        vg_frame_source_free(src);
        return NULL;
    }
    if (params->n_images > 0 && params->images != NULL) {
        src->pictures = vg_picture_source_new(params, err);
        if (src->pictures == NULL) {
            vg_frame_source_free(src);
            return NULL;
        }
    } else {
        src->title = new_title(src, params, vg_random_next(&state), err);
        if (src->title == NULL) {
            vg_frame_source_free(src);
            return NULL;
        }
    }
    return src;
}

void vg_frame_source_draw(vg_frame_source *source, int index, AVFrame *frame)
{
    if (source->pictures != NULL)
        vg_picture_source_draw(source->pictures, index, frame);
    else
        draw_scene(source, index, frame);
    if (source->title != NULL)
        vg_title_draw(source->title, index, frame);
}

void vg_frame_source_free(vg_frame_source *source)
{
    if (source == NULL)
        return;
    vg_picture_source_free(source->pictures);
    vg_title_free(source->title);
    free(source->rgb_row);
    free(source->luma);
    free(source);
}
