/*
 * picture_scale.c - a decoded image converted and scaled with libswscale
 * into a slide's pixels; one with see-through pixels is composited, a
 * strip at a time, over a backdrop made from its own colours. See
 * picture_internal.h.
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

/* ---- converting and scaling ----------------------------------------- */

/* The yuvj formats are full-range aliases swscale warns about; it wants
 * the plain format and the range said separately. */
static enum AVPixelFormat plain_format(enum AVPixelFormat format, bool *full)
{
    switch (format) {
    case AV_PIX_FMT_YUVJ420P:
        *full = true;
        return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
        *full = true;
        return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
        *full = true;
        return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
        *full = true;
        return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
        *full = true;
        return AV_PIX_FMT_YUV411P;
    default:
        return format;
    }
}

/* A converter from w x h pixels to out_w x out_h. Downscaling uses
 * Lanczos for detail. Upscaling uses the Mitchell-Netravali cubic
 * (B = C = 1/3): swscale's default cubic rings, and a small image
 * magnified ten times would show every hard edge with a dark halo. */
static struct SwsContext *make_scaler(struct SwsContext *reuse, int w, int h,
                                      enum AVPixelFormat from, int out_w,
                                      int out_h, enum AVPixelFormat to)
{
    static const double mitchell[2] = {1.0 / 3, 1.0 / 3};
    bool down = out_w < w || out_h < h;
    return sws_getCachedContext(reuse, w, h, from, out_w, out_h, to,
                                (down ? SWS_LANCZOS : SWS_BICUBIC) |
                                    SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT |
                                    SWS_FULL_CHR_H_INP,
                                NULL, NULL, down ? NULL : mitchell);
}

/* The same for a decoded image's pixels (w x h of them), honouring its
 * range and matrix. */
struct SwsContext *pic_make_image_scaler(struct SwsContext *reuse,
                                         const AVFrame *image, int w, int h,
                                         int out_w, int out_h,
                                         enum AVPixelFormat to)
{
    bool full = image->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat from = plain_format(image->format, &full);
    struct SwsContext *sws = make_scaler(reuse, w, h, from, out_w, out_h, to);
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(from);
    if (sws == NULL || desc == NULL || (desc->flags & AV_PIX_FMT_FLAG_RGB) ||
        desc->nb_components < 3)
        return sws;
    /* Only YUV needs a matrix and a range; swscale's defaults for grey
     * (full range) and RGB are right. */
    int space =
        image->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
    sws_setColorspaceDetails(sws, sws_getCoefficients(space), full,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                             1 << 16, 1 << 16);
    return sws;
}

/* The planes of rows [y0, ...) of an image, as a picture of its own. */
static void strip_planes(const AVFrame *image, int y0, const uint8_t *out[4])
{
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(image->format);
    for (int p = 0; p < 4; p++) {
        out[p] = image->data[p];
        if (out[p] == NULL || ((desc->flags & AV_PIX_FMT_FLAG_PAL) && p == 1))
            continue;
        int shift = p == 1 || p == 2 ? desc->log2_chroma_h : 0;
        out[p] += (ptrdiff_t)(y0 >> shift) * image->linesize[p];
    }
}

/* Feeds `image` to `visit` as RGBA strips of STRIP_ROWS rows; returns -1
 * when the pixel format cannot be converted. */
typedef void (*strip_visitor)(void *opaque, const uint8_t *rgba, int y0,
                              int rows);

static int visit_strips(const AVFrame *image, uint8_t *rgba,
                        strip_visitor visit, void *opaque)
{
    struct SwsContext *sws = NULL;
    int w = image->width;
    for (int y0 = 0; y0 < image->height; y0 += STRIP_ROWS) {
        int rows =
            image->height - y0 < STRIP_ROWS ? image->height - y0 : STRIP_ROWS;
        sws = pic_make_image_scaler(sws, image, w, rows, w, rows,
                                    AV_PIX_FMT_RGBA);
        if (sws == NULL)
            return -1;
        const uint8_t *src[4];
        strip_planes(image, y0, src);
        uint8_t *dst[4] = {rgba, NULL, NULL, NULL};
        int dst_stride[4] = {w * 4, 0, 0, 0};
        sws_scale(sws, src, image->linesize, 0, rows, dst, dst_stride);
        visit(opaque, rgba, y0, rows);
    }
    sws_freeContext(sws);
    return 0;
}

/* ---- the backdrop behind see-through pixels ------------------------- */

/* Sums of alpha and alpha-weighted colour per backdrop cell. */
typedef struct coverage {
    int w, h;
    int columns, rows;
    int *cell_of_x;
    double *sums; /* columns x rows x (a, ar, ag, ab) */
    bool see_through;
} coverage;

static void measure_strip(void *opaque, const uint8_t *rgba, int y0, int rows)
{
    coverage *c = opaque;
    for (int y = y0; y < y0 + rows; y++) {
        const uint8_t *px = rgba + (size_t)(y - y0) * c->w * 4;
        double *row = c->sums + (size_t)(y * c->rows / c->h) * c->columns * 4;
        for (int x = 0; x < c->w; x++, px += 4) {
            if (px[3] < 255)
                c->see_through = true;
            double *s = row + (size_t)c->cell_of_x[x] * 4;
            double a = px[3];
            s[0] += a;
            s[1] += a * px[0];
            s[2] += a * px[1];
            s[3] += a * px[2];
        }
    }
}

/* A [1 2 1] blur of the cell sums along one axis, edges clamped: n cells
 * `stride` cells apart, for each of `lines` lines starting `pitch` cells
 * apart. */
static void blur_cells(double *sums, int n, int stride, int lines, int pitch,
                       double *tmp)
{
    for (int line = 0; line < lines; line++) {
        double *first = sums + (size_t)line * pitch * 4;
        for (int i = 0; i < n; i++) {
            const double *prev =
                first + (size_t)(i > 0 ? i - 1 : 0) * stride * 4;
            const double *here = first + (size_t)i * stride * 4;
            const double *next =
                first + (size_t)(i < n - 1 ? i + 1 : i) * stride * 4;
            for (int k = 0; k < 4; k++)
                tmp[(size_t)i * 4 + k] =
                    0.25 * prev[k] + 0.5 * here[k] + 0.25 * next[k];
        }
        for (int i = 0; i < n; i++)
            memcpy(first + (size_t)i * stride * 4, tmp + (size_t)i * 4,
                   4 * sizeof(double));
    }
}

/* Turns the sums into colours: the blurred image, pulled towards a
 * seed-coloured tone that is light behind dark content and dark behind
 * light content, so a black logo on a transparent page stays readable. */
static void tone_backdrop(const coverage *c, uint64_t *state, backdrop *bd)
{
    double total[4] = {0, 0, 0, 0};
    size_t cells = (size_t)c->columns * c->rows;
    for (size_t i = 0; i < cells; i++)
        for (int k = 0; k < 4; k++)
            total[k] += c->sums[i * 4 + k];
    float mean[3] = {0.5f, 0.5f, 0.5f};
    if (total[0] > 0)
        for (int k = 0; k < 3; k++)
            mean[k] = (float)(total[k + 1] / total[0] / 255.0);
    float luma = KR * mean[0] + KG * mean[1] + KB * mean[2];
    float tone[3];
    /* One draw per statement: argument evaluation order is unspecified
     * in C (this is the order GCC used, so seeds keep their tones). */
    float sat = vg_random_between(state, 0.15f, 0.3f);
    float hue = vg_random_between(state, 0, 1);
    pic_hsv(hue, sat, luma < 0.5f ? 0.9f : 0.16f, tone);
    for (size_t i = 0; i < cells; i++) {
        const double *s = c->sums + i * 4;
        for (int k = 0; k < 3; k++) {
            /* Cells far from any opaque pixel take the mean colour. */
            float own = s[0] > total[0] * 1e-4 / (double)cells
                            ? (float)(s[k + 1] / s[0] / 255.0)
                            : mean[k];
            bd->rgb[i * 3 + k] = own + (tone[k] - own) * BACKDROP_TONE;
        }
    }
}

/* Composites strips over the backdrop and feeds them to the scaler. */
typedef struct compositor {
    const backdrop *backdrop;
    int w, h;
    tap *columns; /* per x: backdrop columns and weight */
    float *row;   /* backdrop colours of the current row, per column */
    uint8_t *rgb; /* one strip, opaque */
    struct SwsContext *scaler;
    uint8_t *out;
    int out_stride;
} compositor;

static void composite_strip(void *opaque, const uint8_t *rgba, int y0,
                            int rows)
{
    compositor *c = opaque;
    const backdrop *bd = c->backdrop;
    for (int y = y0; y < y0 + rows; y++) {
        float fy = ((float)y + 0.5f) * (float)bd->rows / (float)c->h - 0.5f;
        fy = fminf(fmaxf(fy, 0), (float)(bd->rows - 1));
        int r0 = (int)fy, r1 = r0 + 1 < bd->rows ? r0 + 1 : r0;
        float wy = fy - (float)r0;
        for (int i = 0; i < bd->columns * 3; i++) {
            float a = bd->rgb[(size_t)r0 * bd->columns * 3 + i];
            float b = bd->rgb[(size_t)r1 * bd->columns * 3 + i];
            c->row[i] = 255.0f * (a + (b - a) * wy);
        }
        const uint8_t *px = rgba + (size_t)(y - y0) * c->w * 4;
        uint8_t *out = c->rgb + (size_t)(y - y0) * c->w * 3;
        for (int x = 0; x < c->w; x++, px += 4, out += 3) {
            const tap t = c->columns[x];
            float a = px[3] / 255.0f, wx = (float)t.w / 256.0f;
            for (int k = 0; k < 3; k++) {
                float b0 = c->row[t.i0 * 3 + k], b1 = c->row[t.i1 * 3 + k];
                float back = b0 + (b1 - b0) * wx;
                out[k] = (uint8_t)(back + ((float)px[k] - back) * a + 0.5f);
            }
        }
    }
    const uint8_t *src[4] = {c->rgb, NULL, NULL, NULL};
    int stride[4] = {c->w * 3, 0, 0, 0};
    uint8_t *dst[4] = {c->out, NULL, NULL, NULL};
    int dst_stride[4] = {c->out_stride, 0, 0, 0};
    sws_scale(c->scaler, src, stride, y0, rows, dst, dst_stride);
}

/* Scales a see-through image to RGB24 out_w x out_h, composited over its
 * backdrop at full resolution (compositing after scaling would darken
 * every edge with the colour of the invisible pixels). Returns 1 when the
 * image turned out to be opaque and nothing was done, 0 when done, -1
 * with err filled, -2 when swscale cannot convert the pixel format. */
int pic_scale_see_through(const AVFrame *image, uint64_t *state, uint8_t *out,
                          int out_w, int out_h, vg_error *err)
{
    int w = image->width, h = image->height, ret = -1;
    coverage cov = {.w = w, .h = h};
    cov.rows = h < BACKDROP_ROWS ? h : BACKDROP_ROWS;
    cov.columns = (int)lround((double)cov.rows * w / h);
    cov.columns = cov.columns < 1 ? 1 : cov.columns;
    cov.columns = cov.columns > BACKDROP_MAX_COLUMNS ? BACKDROP_MAX_COLUMNS
                  : cov.columns > w                  ? w
                                                     : cov.columns;
    size_t cells = (size_t)cov.columns * cov.rows;
    int longest = cov.columns > cov.rows ? cov.columns : cov.rows;
    cov.cell_of_x = malloc(sizeof(int) * (size_t)w);
    cov.sums = calloc(cells * 4, sizeof(double));
    double *tmp = malloc(sizeof(double) * 4 * (size_t)longest);
    uint8_t *rgba = malloc((size_t)w * STRIP_ROWS * 4);
    backdrop bd = {cov.columns, cov.rows, malloc(sizeof(float) * cells * 3)};
    compositor comp = {
        .backdrop = &bd,
        .w = w,
        .h = h,
        .columns = malloc(sizeof(tap) * (size_t)w),
        .row = malloc(sizeof(float) * 3 * (size_t)cov.columns),
        .rgb = malloc((size_t)w * STRIP_ROWS * 3),
        .out = out,
        .out_stride = out_w * 3,
    };
    if (cov.cell_of_x == NULL || cov.sums == NULL || tmp == NULL ||
        rgba == NULL || bd.rgb == NULL || comp.columns == NULL ||
        comp.row == NULL || comp.rgb == NULL) {
        pic_out_of_memory(err);
        goto done;
    }
    for (int x = 0; x < w; x++)
        cov.cell_of_x[x] = (int)((int64_t)x * cov.columns / w);
    if (visit_strips(image, rgba, measure_strip, &cov) < 0)
        goto unsupported;
    if (!cov.see_through) {
        ret = 1;
        goto done;
    }
    for (int pass = 0; pass < 3; pass++) {
        blur_cells(cov.sums, cov.columns, 1, cov.rows, cov.columns, tmp);
        blur_cells(cov.sums, cov.rows, cov.columns, cov.columns, 1, tmp);
    }
    tone_backdrop(&cov, state, &bd);
    pic_make_taps(comp.columns, w, 0.5f * (float)cov.columns / (float)w - 0.5f,
                  (float)cov.columns / (float)w, cov.columns);
    comp.scaler = make_scaler(NULL, w, h, AV_PIX_FMT_RGB24, out_w, out_h,
                              AV_PIX_FMT_RGB24);
    if (comp.scaler == NULL ||
        visit_strips(image, rgba, composite_strip, &comp) < 0)
        goto unsupported;
    ret = 0;
    goto done;
unsupported:
    ret = -2;
done:
    sws_freeContext(comp.scaler);
    free(cov.cell_of_x);
    free(cov.sums);
    free(tmp);
    free(rgba);
    free(bd.rgb);
    free(comp.columns);
    free(comp.row);
    free(comp.rgb);
    return ret;
}

/* Turns the scaled RGB picture (stored orientation, sw x sh) upright into
 * the slide's YUV planes, one 2x2 block (one chroma sample) at a time. */
