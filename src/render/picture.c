/*
 * picture.c - image-to-video: the request's reference images, one after
 * another, each under its own slow camera move, joined by crossfades.
 *
 * Each image is read, checked, decoded with libavcodec, turned upright by
 * its EXIF orientation, composited over a backdrop where it is see-through
 * and scaled with libswscale, once, into a YUV "slide" just large enough
 * for its camera move. The decoded original is freed before the next image
 * is read, so the source holds only the slides: memory is bounded by the
 * frame size and the image count, not by what clients upload.
 *
 * Everything random (camera paths, backdrop tint, the light of a fixed
 * camera) comes from the seed, so frame N is a pure function of N, the
 * images and the seed: equal requests give equal pixels.
 */
#include "render/picture_internal.h"
#include "render/random.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libexif/exif-data.h>
#include <libswscale/swscale.h>

static const float TAU = 6.28318530718f;

/* ---- randomness ----------------------------------------------------- */

/* Each image draws from its own stream, so its path does not depend on
 * how much randomness the images before it used. */
static uint64_t stream_for(uint32_t seed, int image)
{
    uint64_t state = (uint64_t)seed * 0xd1b54a32d192ed03ULL +
                     (uint64_t)(image + 1) * 0x8cb92ba72f3d8dd7ULL;
    vg_random_next(&state);
    return state;
}

/* ---- colour --------------------------------------------------------- */

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

void pic_hsv(float h, float s, float v, float out[3])
{
    h -= floorf(h);
    float f = h * 6.0f;
    int sector = (int)f % 6;
    f -= floorf(f);
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    const float table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t},
                               {p, q, v}, {t, p, v}, {v, p, q}};
    memcpy(out, table[sector], sizeof(table[0]));
}

/* ---- geometry ------------------------------------------------------- */

static bool swaps_sides(int orientation)
{
    return orientation >= 5;
}

/* Where upright pixel (x, y) is stored in a w x h picture of the given
 * EXIF orientation: *sx = ax*x + bx*y + cx, *sy = ay*x + by*y + cy. */
typedef struct stored_at {
    int ax, bx, cx, ay, by, cy;
} stored_at;

static stored_at orientation_map(int orientation, int w, int h)
{
    switch (orientation) {
    case 2: /* mirrored */
        return (stored_at){-1, 0, w - 1, 0, 1, 0};
    case 3: /* upside down */
        return (stored_at){-1, 0, w - 1, 0, -1, h - 1};
    case 4: /* upside down, mirrored */
        return (stored_at){1, 0, 0, 0, -1, h - 1};
    case 5: /* transposed */
        return (stored_at){0, 1, 0, 1, 0, 0};
    case 6: /* turn clockwise to view */
        return (stored_at){0, 1, 0, -1, 0, h - 1};
    case 7: /* transversed */
        return (stored_at){0, -1, w - 1, -1, 0, h - 1};
    case 8: /* turn anticlockwise to view */
        return (stored_at){0, -1, w - 1, 1, 0, 0};
    default:
        return (stored_at){1, 0, 0, 0, 1, 0};
    }
}

static int even_up(double v)
{
    int n = (int)ceil(v);
    return n + (n & 1);
}

/* Taps for n output samples whose centres map to `first + i * step` in a
 * source axis of `size` samples. */
void pic_make_taps(tap *taps, int n, float first, float step, int size)
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

/* Cuts the long side of an image that is much wider or taller than the
 * frame down to what the camera can show, centred, so the scaled copy
 * stays a few frames in size. Works on the stored picture; `swapped`
 * says its sides swap once it is turned upright. */
static void crop_to_slack(AVFrame *image, bool swapped, double frame_aspect,
                          double slack)
{
    int upright_w = swapped ? image->height : image->width;
    int upright_h = swapped ? image->width : image->height;
    double aspect = (double)upright_w / upright_h;
    int keep_w = upright_w, keep_h = upright_h;
    if (aspect > frame_aspect * slack)
        keep_w = (int)fmax(1, upright_h * frame_aspect * slack);
    else if (aspect < frame_aspect / slack)
        keep_h = (int)fmax(1, upright_w / frame_aspect * slack);
    int cut_x = (swapped ? upright_h - keep_h : upright_w - keep_w);
    int cut_y = (swapped ? upright_w - keep_w : upright_h - keep_h);
    image->crop_left = (size_t)cut_x / 2;
    image->crop_right = (size_t)(cut_x - cut_x / 2);
    image->crop_top = (size_t)cut_y / 2;
    image->crop_bottom = (size_t)(cut_y - cut_y / 2);
    /* Bit-packed formats are only cut on the right and at the bottom;
     * slightly off-centre beats failing. */
    av_frame_apply_cropping(image, AV_FRAME_CROP_UNALIGNED);
}

static void fill_slide(slide *s, const uint8_t *rgb, int sw, int sh,
                       int orientation)
{
    stored_at m = orientation_map(orientation, sw, sh);
    for (int y = 0; y < s->h; y += 2) {
        for (int x = 0; x < s->w; x += 2) {
            float sum_r = 0, sum_g = 0, sum_b = 0;
            for (int k = 0; k < 4; k++) {
                int ux = x + k % 2, uy = y + k / 2;
                int sx = m.ax * ux + m.bx * uy + m.cx;
                int sy = m.ay * ux + m.by * uy + m.cy;
                const uint8_t *px = rgb + ((size_t)sy * sw + sx) * 3;
                float r = px[0] / 255.0f, g = px[1] / 255.0f;
                float b = px[2] / 255.0f;
                s->y[(size_t)uy * s->w + ux] = luma_of(r, g, b);
                sum_r += r;
                sum_g += g;
                sum_b += b;
            }
            size_t c = (size_t)(y / 2) * (s->w / 2) + x / 2;
            chroma_of(sum_r / 4, sum_g / 4, sum_b / 4, &s->u[c], &s->v[c]);
        }
    }
}

/* Decodes one image into a slide that covers the frame at base_zoom with
 * room to pan; only the slide is kept. */
static int load_slide(vg_picture_source *src, slide *s, const image_ref *ref,
                      uint64_t *state, vg_error *err)
{
    oriented image = {0};
    if (pic_decode_image(ref, &image, err) < 0)
        return -1;
    AVFrame *frame = image.frame;
    bool swapped = swaps_sides(image.orientation);
    double frame_aspect = (double)src->width / src->height;
    crop_to_slack(frame, swapped, frame_aspect,
                  src->camera_fixed ? 1.0 : PAN_SLACK);

    /* Sides once upright, then the scale that covers the frame. */
    int upright_w = swapped ? frame->height : frame->width;
    int upright_h = swapped ? frame->width : frame->height;
    double need_w = (double)src->width * src->base_zoom;
    double need_h = (double)src->height * src->base_zoom;
    double scale = fmax(need_w / upright_w, need_h / upright_h);
    s->w = even_up(fmax(upright_w * scale, need_w));
    s->h = even_up(fmax(upright_h * scale, need_h));
    int sw = swapped ? s->h : s->w, sh = swapped ? s->w : s->h;

    int ret = -1;
    uint8_t *rgb = malloc((size_t)sw * sh * 3);
    s->y = malloc((size_t)s->w * s->h);
    s->u = malloc((size_t)s->w * s->h / 4);
    s->v = malloc((size_t)s->w * s->h / 4);
    if (rgb == NULL || s->y == NULL || s->u == NULL || s->v == NULL) {
        pic_out_of_memory(err);
        goto done;
    }
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(frame->format);
    int scaled = 1;
    if (desc->flags & AV_PIX_FMT_FLAG_ALPHA)
        scaled = pic_scale_see_through(frame, state, rgb, sw, sh, err);
    if (scaled == -1)
        goto done;
    struct SwsContext *sws = NULL;
    if (scaled == 1)
        sws = pic_make_image_scaler(NULL, frame, frame->width, frame->height,
                                    sw, sh, AV_PIX_FMT_RGB24);
    if (scaled == -2 || (scaled == 1 && sws == NULL)) {
        pic_refuse(err, ref,
                   "has pixels of a kind (%s) that cannot be converted",
                   av_get_pix_fmt_name(frame->format));
        goto done;
    }
    if (scaled == 1) {
        uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
        int dst_stride[4] = {sw * 3, 0, 0, 0};
        sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                  frame->height, dst, dst_stride);
        sws_freeContext(sws);
    }
    fill_slide(s, rgb, sw, sh, image.orientation);
    ret = 0;
done:
    free(rgb);
    av_frame_free(&image.frame);
    return ret;
}

/* ---- the sequence --------------------------------------------------- */

static void invent_path(const vg_picture_source *src, slide *s,
                        uint64_t *state)
{
    s->zoom0 = s->zoom1 = 1;
    if (src->camera_fixed)
        return;
    /* A push in or a pull out, and a drift from one side of what the
     * crop leaves to (part of the way to) the other. */
    float deep = vg_random_between(state, 1.12f, PAN_ZOOM);
    float shallow = vg_random_between(state, 1.0f, 1.04f);
    bool push_in = vg_random_next(state) & 1;
    s->zoom0 = push_in ? shallow : deep;
    s->zoom1 = push_in ? deep : shallow;
    float direction = vg_random_between(state, 0, TAU);
    float reach = vg_random_between(state, 0.6f, 1.0f);
    s->pan_x0 = reach * cosf(direction);
    s->pan_y0 = reach * sinf(direction);
    float back = vg_random_between(state, 0.3f, 1.0f);
    float turn = vg_random_between(state, -0.5f, 0.5f);
    s->pan_x1 = -back * cosf(direction + turn);
    s->pan_y1 = -back * sinf(direction + turn);
}

/* Lays the slides out on the clip: equal shares, each overlapping the
 * next by one crossfade. The crossfade is capped so every image is also
 * seen alone for at least half its share. */
static void lay_out(vg_picture_source *src)
{
    int n = src->n_slides;
    float frames = (float)src->frames;
    float fade = TRANSITION_SECONDS * (float)src->fps;
    float cap = frames / (float)(2 * (n + 1));
    src->transition = n > 1 ? fminf(fade, cap) : 0;
    float share = (frames + (float)(n - 1) * src->transition) / (float)n;
    for (int i = 0; i < n; i++) {
        slide *s = &src->slides[i];
        s->start = (float)i * (share - src->transition);
        s->end = i == n - 1 ? frames : s->start + share;
        s->ease_in = i == 0;
        s->ease_out = i == n - 1;
    }
}

/* How far through its move a slide is at time t (frames): eased where the
 * clip starts and ends, steady across crossfades so motion never stalls
 * mid-clip. */
static float slide_progress(const slide *s, float t)
{
    float u = (t - s->start) / (s->end - s->start);
    u = fminf(fmaxf(u, 0), 1);
    if (s->ease_in && s->ease_out)
        return u * u * (3 - 2 * u);
    if (s->ease_in)
        return u * u * (2 - u);
    if (s->ease_out)
        return u * (1 + u - u * u);
    return u;
}

/* ---- drawing -------------------------------------------------------- */

static float lerp(float a, float b, float t)
{
    return a + (b - a) * t;
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

/* Draws slide s as the camera sees it at time t into YUV420P planes. */
static void draw_slide(vg_picture_source *src, const slide *s, float t,
                       uint8_t *const planes[3], const int linesize[3])
{
    float e = slide_progress(s, t);
    float zoom = lerp(s->zoom0, s->zoom1, e);
    /* The slide covers the frame at base_zoom; zooming in shows less. */
    float step = src->base_zoom / zoom;
    float win_w = (float)src->width * step;
    float win_h = (float)src->height * step;
    float cx = 0.5f * (float)s->w +
               lerp(s->pan_x0, s->pan_x1, e) * 0.5f * ((float)s->w - win_w);
    float cy = 0.5f * (float)s->h +
               lerp(s->pan_y0, s->pan_y1, e) * 0.5f * ((float)s->h - win_h);
    float left = cx - 0.5f * win_w, top = cy - 0.5f * win_h;

    int w = src->width, h = src->height;
    tap *cols = src->luma_taps, *chroma_cols = src->chroma_taps;
    pic_make_taps(cols, w, left + 0.5f * step - 0.5f, step, s->w);
    pic_make_taps(chroma_cols, w / 2, 0.5f * (left + step) - 0.5f, step,
                  s->w / 2);
    for (int y = 0; y < h; y++) {
        tap row;
        pic_make_taps(&row, 1, top + ((float)y + 0.5f) * step - 0.5f, step,
                      s->h);
        sample_plane(s->y, s->w, cols, w, row,
                     planes[0] + (ptrdiff_t)y * linesize[0]);
    }
    for (int y = 0; y < h / 2; y++) {
        tap row;
        pic_make_taps(&row, 1, 0.5f * (top + (float)(2 * y + 1) * step) - 0.5f,
                      step, s->h / 2);
        sample_plane(s->u, s->w / 2, chroma_cols, w / 2, row,
                     planes[1] + (ptrdiff_t)y * linesize[1]);
        sample_plane(s->v, s->w / 2, chroma_cols, w / 2, row,
                     planes[2] + (ptrdiff_t)y * linesize[2]);
    }
}

/* out = out + (in - out) * weight / 256, for one plane. */
static void blend_plane(uint8_t *out, int out_linesize, const uint8_t *in,
                        int in_linesize, int w, int h, int weight)
{
    for (int y = 0; y < h; y++) {
        uint8_t *o = out + (ptrdiff_t)y * out_linesize;
        const uint8_t *i = in + (ptrdiff_t)y * in_linesize;
        for (int x = 0; x < w; x++)
            o[x] =
                (uint8_t)((o[x] * (256 - weight) + i[x] * weight + 128) >> 8);
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

/* The fixed camera's only motion: a soft light wandering slowly over the
 * picture, so the clip is alive without anything in it moving. */
static void draw_light(vg_picture_source *src, int index, AVFrame *frame)
{
    int w = src->width, h = src->height;
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

vg_picture_source *vg_picture_source_new(const vg_render_params *params,
                                         vg_error *err)
{
    vg_picture_source *src = calloc(1, sizeof(*src));
    if (src == NULL) {
        pic_out_of_memory(err);
        return NULL;
    }
    src->width = params->width;
    src->height = params->height;
    src->fps = params->fps;
    src->frames = params->fps * params->duration;
    src->camera_fixed = params->camera_fixed;
    src->base_zoom = src->camera_fixed ? 1.0f : PAN_ZOOM;
    src->n_slides = params->n_images < VG_PICTURE_MAX_IMAGES
                        ? params->n_images
                        : VG_PICTURE_MAX_IMAGES;

    size_t luma = (size_t)src->width * src->height;
    src->under[0] = malloc(luma + luma / 2);
    src->luma_taps = malloc(sizeof(tap) * (size_t)src->width);
    src->chroma_taps = malloc(sizeof(tap) * (size_t)src->width / 2);
    src->light_x = malloc(sizeof(int) * (size_t)src->width);
    src->light_y = malloc(sizeof(int) * (size_t)src->height);
    if (src->n_slides < 1 || params->images == NULL) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "the picture source needs at least one image");
        goto fail;
    }
    if (src->under[0] == NULL || src->luma_taps == NULL ||
        src->chroma_taps == NULL || src->light_x == NULL ||
        src->light_y == NULL) {
        pic_out_of_memory(err);
        goto fail;
    }
    src->under[1] = src->under[0] + luma;
    src->under[2] = src->under[1] + luma / 4;
    src->under_linesize[0] = src->width;
    src->under_linesize[1] = src->under_linesize[2] = src->width / 2;

    for (int i = 0; i < src->n_slides; i++) {
        image_ref ref = {params->images[i], i + 1, src->n_slides};
        uint64_t state = stream_for(params->seed, i);
        invent_path(src, &src->slides[i], &state);
        if (load_slide(src, &src->slides[i], &ref, &state, err) < 0)
            goto fail;
    }
    lay_out(src);
    uint64_t state = stream_for(params->seed, -1);
    src->light_w = TAU * vg_random_between(&state, 0.06f, 0.12f);
    src->light_phase = vg_random_between(&state, 0, TAU);
    return src;
fail:
    vg_picture_source_free(src);
    return NULL;
}

void vg_picture_source_draw(vg_picture_source *source, int index,
                            AVFrame *frame)
{
    /* Motion and fades are timed at the middle of the frame. */
    float t = (float)index + 0.5f;
    int current = 0;
    while (current < source->n_slides - 1 && t >= source->slides[current].end)
        current++;
    draw_slide(source, &source->slides[current], t, frame->data,
               frame->linesize);

    const slide *next =
        current + 1 < source->n_slides ? &source->slides[current + 1] : NULL;
    if (next != NULL && t > next->start) {
        float u = (t - next->start) / source->transition;
        u = fminf(fmaxf(u, 0), 1);
        int weight = (int)(256.0f * u * u * (3 - 2 * u) + 0.5f);
        draw_slide(source, next, t, source->under, source->under_linesize);
        int w = source->width, h = source->height;
        blend_plane(frame->data[0], frame->linesize[0], source->under[0], w, w,
                    h, weight);
        for (int p = 1; p < 3; p++)
            blend_plane(frame->data[p], frame->linesize[p], source->under[p],
                        w / 2, w / 2, h / 2, weight);
    }
    if (source->camera_fixed)
        draw_light(source, index, frame);
}

void vg_picture_source_free(vg_picture_source *source)
{
    if (source == NULL)
        return;
    for (int i = 0; i < VG_PICTURE_MAX_IMAGES; i++) {
        free(source->slides[i].y);
        free(source->slides[i].u);
        free(source->slides[i].v);
    }
    free(source->under[0]);
    free(source->luma_taps);
    free(source->chroma_taps);
    free(source->light_x);
    free(source->light_y);
    free(source);
}
