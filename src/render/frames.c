/*
 * frames.c - the first frame source: seed-coloured gradients and soft
 * shapes under a drifting camera, or a slow pan and zoom over the first
 * reference image.
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

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#define N_GLOWS 3
#define N_DISCS 2
/* Rows are shaded in blocks of a fixed number of pixels: a constant trip
 * count lets the compiler keep the inner loop in vector registers. */
#define BLOCK 4
/* Reference images: the request layer limits the upload size; these stop
 * a small file that expands into a huge picture. */
#define MAX_IMAGE_FILE_BYTES (64L * 1024 * 1024)
#define MAX_IMAGE_PIXELS (50 * 1000 * 1000)
/* How far the camera zooms into a reference image at most. */
#define IMAGE_ZOOM 1.25f
/* A very wide or tall image keeps at most this much of its long side per
 * frame-shaped crop, for panning; the rest is cut off before scaling. */
#define IMAGE_SLACK 1.6f

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

/* A reference image scaled once to cover the frame at the deepest zoom,
 * kept in YUV so each frame only interpolates. */
typedef struct picture {
    int w, h;       /* even */
    uint8_t *y;     /* w x h */
    uint8_t *u, *v; /* w/2 x h/2 */
} picture;

/* Bilinear taps along one axis: indices and the weight of the second, in
 * 1/256. */
typedef struct tap {
    int i0, i1, w;
} tap;

struct vg_frame_source {
    int width, height, fps, frames;
    bool camera_fixed;
    scene scene;
    camera camera;

    picture picture; /* y == NULL: draw the scene */
    float image_zoom0, image_zoom1;
    float pan_x0, pan_y0, pan_x1, pan_y1; /* fractions of the slack */
    float light_w, light_phase;

    /* Scratch reused by every frame. */
    int padded_width; /* width / 2 rounded up to BLOCK */
    float *rgb_row;   /* (r, g, b) x padded_width */
    float *luma;      /* height / 2 rows x padded_width, then one row */
    tap *luma_taps, *chroma_taps;
    int *light_x, *light_y;
};

/* ---- randomness ----------------------------------------------------- */

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64: tiny, and fully determined by the state. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float random_between(uint64_t *state, float lo, float hi)
{
    float unit = (float)(next_random(state) >> 40) / (float)(1 << 24);
    return lo + (hi - lo) * unit;
}

static float random_sign(uint64_t *state)
{
    return (next_random(state) & 1) ? 1.0f : -1.0f;
}

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
    m.x = random_between(state, -0.38f, 0.38f) * aspect;
    m.y = random_between(state, -0.32f, 0.32f);
    m.ax = random_between(state, 0.4f, 1.0f) * amplitude;
    m.ay = random_between(state, 0.4f, 1.0f) * amplitude;
    /* One sway takes 8 to 25 seconds: motion is visible but calm. */
    m.wx = TAU * random_between(state, 0.04f, 0.12f);
    m.wy = TAU * random_between(state, 0.04f, 0.12f);
    m.px = random_between(state, 0, TAU);
    m.py = random_between(state, 0, TAU);
    return m;
}

static void invent_scene(vg_frame_source *src, uint64_t *state)
{
    scene *s = &src->scene;
    float aspect = (float)src->width / (float)src->height;
    float hue = random_between(state, 0, 1);
    s->low = hsv(hue, random_between(state, 0.6f, 0.85f),
                 random_between(state, 0.16f, 0.3f));
    s->high =
        hsv(hue + random_sign(state) * random_between(state, 0.06f, 0.2f),
            random_between(state, 0.45f, 0.75f),
            random_between(state, 0.72f, 0.92f));
    s->angle = random_between(state, 0, TAU);
    s->spin = random_sign(state) * random_between(state, 0.02f, 0.08f);
    s->steepness = random_between(state, 0.9f, 1.6f);
    s->sway = random_between(state, 0.3f, 0.6f);
    s->sway_w = TAU * random_between(state, 0.05f, 0.12f);
    s->sway_phase = random_between(state, 0, TAU);
    for (int i = 0; i < N_GLOWS; i++) {
        shape *g = &s->glows[i];
        g->at = random_mover(state, aspect, 0.25f);
        g->colour = hsv(hue + random_between(state, 0.25f, 0.75f),
                        random_between(state, 0.5f, 0.8f), 1.0f);
        g->radius = random_between(state, 0.15f, 0.35f);
        g->strength = random_between(state, 0.25f, 0.5f);
        g->pulse_w = 0;
    }
    for (int i = 0; i < N_DISCS; i++) {
        shape *d = &s->discs[i];
        d->at = random_mover(state, aspect, 0.15f);
        d->colour = hsv(hue + 0.5f + random_between(state, -0.1f, 0.1f),
                        random_between(state, 0.35f, 0.6f),
                        random_between(state, 0.85f, 1.0f));
        d->radius = random_between(state, 0.06f, 0.14f);
        d->strength = random_between(state, 0.75f, 0.9f);
        d->pulse_w = TAU * random_between(state, 0.15f, 0.35f);
    }
    s->vignette = random_between(state, 0.25f, 0.45f);
}

static void invent_camera(vg_frame_source *src, uint64_t *state)
{
    camera *c = &src->camera;
    c->zoom0 = c->zoom1 = 1;
    if (src->camera_fixed)
        return;
    /* A push in or a pull out, a drift across, a slight roll. */
    float zoom = 1 + random_between(state, 0.12f, 0.25f);
    if (next_random(state) & 1)
        c->zoom1 = zoom;
    else
        c->zoom0 = zoom;
    float direction = random_between(state, 0, TAU);
    float distance = random_between(state, 0.15f, 0.3f);
    c->x1 = 0.5f * distance * cosf(direction);
    c->y1 = 0.5f * distance * sinf(direction);
    c->x0 = -c->x1;
    c->y0 = -c->y1;
    c->roll1 = random_sign(state) * random_between(state, 0.02f, 0.05f);
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

static uint8_t luma_of(float r, float g, float b)
{
    return (uint8_t)(16.5f + 219.0f * (KR * r + KG * g + KB * b));
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

/* ---- reference images ----------------------------------------------- */

/* Problems with the client's image are theirs to fix: 422, naming the
 * form field images arrive in. */
#define image_error(err, ...)                                                 \
    vg_error_set((err), 422, "invalid_image", "files", __VA_ARGS__)

static enum AVCodecID sniff_image(const uint8_t *b, size_t n)
{
    static const uint8_t png[8] = {0x89, 'P',  'N',  'G',
                                   '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(b, png, 8) == 0)
        return AV_CODEC_ID_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return AV_CODEC_ID_MJPEG;
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return AV_CODEC_ID_WEBP;
    return AV_CODEC_ID_NONE;
}

/* Reads the whole file into a packet (with the padding decoders need). */
static AVPacket *read_image_file(const char *path, vg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        image_error(err, "the reference image cannot be read: %s",
                    strerror(errno));
        return NULL;
    }
    AVPacket *packet = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        image_error(err, "the reference image cannot be read: %s",
                    strerror(errno));
        goto done;
    }
    if (size == 0 || size > MAX_IMAGE_FILE_BYTES) {
        image_error(err, "the reference image is %s (at most 64 MiB)",
                    size == 0 ? "empty" : "too large");
        goto done;
    }
    packet = av_packet_alloc();
    if (packet == NULL || av_new_packet(packet, (int)size) < 0) {
        av_packet_free(&packet);
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        goto done;
    }
    if (fread(packet->data, 1, (size_t)size, f) != (size_t)size) {
        av_packet_free(&packet);
        image_error(err, "the reference image cannot be read");
    }
done:
    fclose(f);
    return packet;
}

static AVFrame *decode_image(const char *path, vg_error *err)
{
    AVPacket *packet = read_image_file(path, err);
    if (packet == NULL)
        return NULL;
    AVFrame *frame = NULL;
    AVCodecContext *ctx = NULL;
    enum AVCodecID id = sniff_image(packet->data, (size_t)packet->size);
    if (id == AV_CODEC_ID_NONE) {
        image_error(err, "the reference image is not a PNG, JPEG or WebP "
                         "file");
        goto done;
    }
    const AVCodec *codec = avcodec_find_decoder(id);
    ctx = codec ? avcodec_alloc_context3(codec) : NULL;
    frame = av_frame_alloc();
    if (ctx == NULL || frame == NULL) {
        av_frame_free(&frame);
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot set up the %s decoder",
                     codec ? codec->name : avcodec_get_name(id));
        goto done;
    }
    /* Refused by the decoder before it allocates the picture. */
    ctx->max_pixels = MAX_IMAGE_PIXELS;
    int ret = avcodec_open2(ctx, codec, NULL);
    if (ret >= 0)
        ret = avcodec_send_packet(ctx, packet);
    /* One packet is the whole picture: flush so every decoder gives it
     * up now. */
    if (ret >= 0)
        ret = avcodec_send_packet(ctx, NULL);
    if (ret >= 0)
        ret = avcodec_receive_frame(ctx, frame);
    if (ret >= 0 && (frame->width <= 0 || frame->height <= 0))
        ret = AVERROR_INVALIDDATA;
    if (ret < 0) {
        av_frame_free(&frame);
        image_error(err,
                    "the reference image cannot be decoded as %s: %s "
                    "(at most %d megapixels)",
                    avcodec_get_name(id), av_err2str(ret),
                    MAX_IMAGE_PIXELS / 1000000);
    }
done:
    avcodec_free_context(&ctx);
    av_packet_free(&packet);
    return frame;
}

/* Cuts the long side of a very elongated image down to what panning can
 * show, so the scaled copy stays a few frames in size. */
static void crop_to_slack(AVFrame *image, int width, int height)
{
    double frame_aspect = (double)width / height;
    double aspect = (double)image->width / image->height;
    if (aspect > frame_aspect * IMAGE_SLACK) {
        int keep = (int)(image->height * frame_aspect * IMAGE_SLACK);
        int cut = image->width - (keep > 0 ? keep : 1);
        image->crop_left = (size_t)cut / 2;
        image->crop_right = (size_t)(cut - cut / 2);
    } else if (aspect < frame_aspect / IMAGE_SLACK) {
        int keep = (int)(image->width / frame_aspect * IMAGE_SLACK);
        int cut = image->height - (keep > 0 ? keep : 1);
        image->crop_top = (size_t)cut / 2;
        image->crop_bottom = (size_t)(cut - cut / 2);
    }
    /* Palette and bit-packed formats are only cut on the right and at the
     * bottom; slightly off-centre beats failing. */
    av_frame_apply_cropping(image, AV_FRAME_CROP_UNALIGNED);
}

static int even_up(double v)
{
    int n = (int)ceil(v);
    return n + (n & 1);
}

/* Scales the image to cover the frame at zoom `zoom` and converts it to
 * the frame's YUV, alpha composited over black. */
static int make_picture(vg_frame_source *src, AVFrame *image, float zoom,
                        vg_error *err)
{
    crop_to_slack(image, src->width, src->height);
    double need_w = (double)src->width * zoom;
    double need_h = (double)src->height * zoom;
    double scale = fmax(need_w / image->width, need_h / image->height);
    int w = even_up(fmax(image->width * scale, need_w));
    int h = even_up(fmax(image->height * scale, need_h));

    uint8_t *rgba = malloc((size_t)w * h * 4);
    picture *p = &src->picture;
    p->w = w;
    p->h = h;
    p->y = malloc((size_t)w * h);
    p->u = malloc((size_t)w * h / 4);
    p->v = malloc((size_t)w * h / 4);
    struct SwsContext *sws =
        sws_getContext(image->width, image->height, image->format, w, h,
                       AV_PIX_FMT_RGBA, SWS_BICUBIC, NULL, NULL, NULL);
    int ret = -1;
    if (rgba == NULL || p->y == NULL || p->u == NULL || p->v == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        goto done;
    }
    if (sws == NULL) {
        image_error(err,
                    "the reference image's pixel format (%s) is not "
                    "supported",
                    av_get_pix_fmt_name(image->format));
        goto done;
    }
    uint8_t *dst[4] = {rgba, NULL, NULL, NULL};
    int dst_stride[4] = {w * 4, 0, 0, 0};
    sws_scale(sws, (const uint8_t *const *)image->data, image->linesize, 0,
              image->height, dst, dst_stride);

    for (int y = 0; y < h; y += 2) {
        for (int x = 0; x < w; x += 2) {
            float sum_r = 0, sum_g = 0, sum_b = 0;
            for (int k = 0; k < 4; k++) {
                int yy = y + k / 2, xx = x + k % 2;
                const uint8_t *px = rgba + ((size_t)yy * w + xx) * 4;
                float a = px[3] / (255.0f * 255.0f);
                float r = px[0] * a, g = px[1] * a, b = px[2] * a;
                p->y[(size_t)yy * w + xx] = luma_of(r, g, b);
                sum_r += r;
                sum_g += g;
                sum_b += b;
            }
            size_t c = (size_t)(y / 2) * (w / 2) + x / 2;
            chroma_of(sum_r / 4, sum_g / 4, sum_b / 4, &p->u[c], &p->v[c]);
        }
    }
    ret = 0;
done:
    sws_freeContext(sws);
    free(rgba);
    return ret;
}

static int load_picture(vg_frame_source *src, const char *path,
                        uint64_t *state, vg_error *err)
{
    AVFrame *image = decode_image(path, err);
    if (image == NULL)
        return -1;
    float zoom = src->camera_fixed ? 1.0f : IMAGE_ZOOM;
    int ret = make_picture(src, image, zoom, err);
    av_frame_free(&image);
    if (ret < 0)
        return -1;

    src->image_zoom0 = src->image_zoom1 = 1;
    if (src->camera_fixed) {
        /* The camera holds still; a soft light drifts over the picture
         * so the clip is not a still. */
        src->light_w = TAU * random_between(state, 0.06f, 0.12f);
        src->light_phase = random_between(state, 0, TAU);
        return 0;
    }
    if (next_random(state) & 1)
        src->image_zoom1 = IMAGE_ZOOM;
    else
        src->image_zoom0 = IMAGE_ZOOM;
    float direction = random_between(state, 0, TAU);
    src->pan_x0 = cosf(direction);
    src->pan_y0 = sinf(direction);
    src->pan_x1 = -src->pan_x0 * random_between(state, 0.3f, 1.0f);
    src->pan_y1 = -src->pan_y0 * random_between(state, 0.3f, 1.0f);
    return 0;
}

/* Taps for n output samples whose centres map to `first + i * step` in a
 * source axis of `size` samples. */
static void make_taps(tap *taps, int n, float first, float step, int size)
{
    for (int i = 0; i < n; i++) {
        float c = first + (float)i * step;
        int i0 = (int)floorf(c);
        int w = (int)((c - (float)i0) * 256.0f + 0.5f);
        if (i0 < 0) {
            i0 = 0;
            w = 0;
        }
        if (i0 >= size - 1) {
            i0 = size - 1;
            w = 0;
        }
        taps[i].i0 = i0;
        taps[i].i1 = i0 + 1 < size ? i0 + 1 : i0;
        taps[i].w = w;
    }
}

static void sample_plane(const uint8_t *plane, int plane_w, const tap *cols,
                         int n_cols, tap row, uint8_t *out)
{
    const uint8_t *p0 = plane + (size_t)row.i0 * plane_w;
    const uint8_t *p1 = plane + (size_t)row.i1 * plane_w;
    for (int x = 0; x < n_cols; x++) {
        const tap c = cols[x];
        int a = p0[c.i0] * (256 - c.w) + p0[c.i1] * c.w;
        int b = p1[c.i0] * (256 - c.w) + p1[c.i1] * c.w;
        out[x] = (uint8_t)((a * (256 - row.w) + b * row.w + 32768) >> 16);
    }
}

/* Per-axis falloff of the drifting light, in 1/256. */
static void make_light(int *out, int n, float centre, float sigma)
{
    for (int i = 0; i < n; i++) {
        float d = ((float)i + 0.5f - centre) / sigma;
        out[i] = (int)(256.0f * expf(-d * d) + 0.5f);
    }
}

static void draw_picture(vg_frame_source *src, int index, AVFrame *frame)
{
    const picture *p = &src->picture;
    float e = eased_progress(src, index);
    float zoom = lerp(src->image_zoom0, src->image_zoom1, e);
    float base = src->camera_fixed ? 1.0f : IMAGE_ZOOM;
    /* The picture covers the frame at `base`; zooming in shows less. */
    float step = base / zoom;
    float win_w = (float)src->width * step, win_h = (float)src->height * step;
    float cx = 0.5f * (float)p->w + lerp(src->pan_x0, src->pan_x1, e) * 0.5f *
                                        ((float)p->w - win_w);
    float cy = 0.5f * (float)p->h + lerp(src->pan_y0, src->pan_y1, e) * 0.5f *
                                        ((float)p->h - win_h);
    float left = cx - 0.5f * win_w, top = cy - 0.5f * win_h;

    int w = src->width, h = src->height;
    tap *cols = src->luma_taps, *chroma_cols = src->chroma_taps;
    make_taps(cols, w, left + 0.5f * step - 0.5f, step, p->w);
    make_taps(chroma_cols, w / 2, 0.5f * (left + step) - 0.5f, step, p->w / 2);
    for (int y = 0; y < h; y++) {
        tap row;
        make_taps(&row, 1, top + ((float)y + 0.5f) * step - 0.5f, step, p->h);
        sample_plane(p->y, p->w, cols, w, row,
                     frame->data[0] + (ptrdiff_t)y * frame->linesize[0]);
    }
    for (int y = 0; y < h / 2; y++) {
        tap row;
        make_taps(&row, 1, 0.5f * (top + (float)(2 * y + 1) * step) - 0.5f,
                  step, p->h / 2);
        sample_plane(p->u, p->w / 2, chroma_cols, w / 2, row,
                     frame->data[1] + (ptrdiff_t)y * frame->linesize[1]);
        sample_plane(p->v, p->w / 2, chroma_cols, w / 2, row,
                     frame->data[2] + (ptrdiff_t)y * frame->linesize[2]);
    }

    if (!src->camera_fixed)
        return;
    float t = (float)index / (float)src->fps;
    make_light(src->light_x, w,
               (float)w *
                   (0.5f + 0.35f * sinf(src->light_w * t + src->light_phase)),
               0.4f * (float)h);
    make_light(src->light_y, h,
               (float)h * (0.5f + 0.3f * sinf(0.7f * src->light_w * t)),
               0.4f * (float)h);
    for (int y = 0; y < h; y++) {
        uint8_t *line = frame->data[0] + (ptrdiff_t)y * frame->linesize[0];
        int ly = src->light_y[y];
        for (int x = 0; x < w; x++) {
            /* Up to 24 luma steps brighter under the light's centre. */
            int v = line[x] + ((24 * ly * src->light_x[x]) >> 16);
            line[x] = (uint8_t)(v > 235 ? 235 : v);
        }
    }
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
    src->luma_taps = malloc(sizeof(tap) * (size_t)src->width);
    src->chroma_taps = malloc(sizeof(tap) * (size_t)src->width / 2);
    src->light_x = malloc(sizeof(int) * (size_t)src->width);
    src->light_y = malloc(sizeof(int) * (size_t)src->height);
    if (src->rgb_row == NULL || src->luma == NULL || src->luma_taps == NULL ||
        src->chroma_taps == NULL || src->light_x == NULL ||
        src->light_y == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        vg_frame_source_free(src);
        return NULL;
    }
    /* Only the first reference image is used by this source. */
    if (params->n_images > 0 && params->images != NULL &&
        load_picture(src, params->images[0], &state, err) < 0) {
        vg_frame_source_free(src);
        return NULL;
    }
    return src;
}

void vg_frame_source_draw(vg_frame_source *source, int index, AVFrame *frame)
{
    if (source->picture.y != NULL)
        draw_picture(source, index, frame);
    else
        draw_scene(source, index, frame);
}

void vg_frame_source_free(vg_frame_source *source)
{
    if (source == NULL)
        return;
    free(source->picture.y);
    free(source->picture.u);
    free(source->picture.v);
    free(source->rgb_row);
    free(source->luma);
    free(source->luma_taps);
    free(source->chroma_taps);
    free(source->light_x);
    free(source->light_y);
    free(source);
}
