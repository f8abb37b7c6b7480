/*
 * title.c - the prompt as an animated title: laid out and rendered once
 * with pango and cairo, then blended into every frame.
 *
 * Layout. The prompt becomes one paragraph (line breaks and controls
 * fold into spaces) in a bold sans stack that fontconfig completes per
 * script: Noto Sans for Latin, Greek and Cyrillic, Noto Sans CJK, Noto
 * Sans Arabic, DejaVu Sans, Noto Color Emoji for emoji, and whatever
 * else covers a character. Pango shapes it, orders bidi text and picks the
 * paragraph direction from its first strong character. It wraps where
 * lines may break (between words; between CJK characters) inside the
 * frame less a margin of VG_TITLE_LAYOUT_MARGIN on every side, at the
 * largest size from MIN_EM to MAX_EM of the short side that fits without
 * cutting a word, or, failing that, with words cut. A title of a few
 * lines is centred, with lines of even length; a paragraph is aligned to
 * its start. Text that does not fit even at the smallest size ends in an
 * ellipsis after the last line that fits. So nothing is ever cut off by
 * the frame, whatever the aspect ratio or the length of the prompt.
 *
 * Pixels. The layout is rendered once into a cairo surface no larger
 * than its ink plus the shadow, then turned into premultiplied Y and
 * alpha planes and, for each parity of the title's position, premultiplied
 * U, V and alpha planes at chroma resolution. A frame then only blends
 * bytes at an integer position: no glyph rendering, resampling or colour
 * conversion per frame, and a cost bounded by the title's area.
 *
 * Motion. The title fades in over 0.6 to 0.8 s; unless the camera is
 * fixed it also slides in, drifts slowly and follows a fraction of the
 * camera's pan, all within VG_TITLE_LAYOUT_MARGIN - VG_TITLE_SAFE_MARGIN
 * of its resting place. Every choice comes from the seed, so equal
 * parameters give equal pixels.
 */
#include "render/title.h"
#include "render/random.h"

#include <fontconfig/fontconfig.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>
#include <glib.h>
#include <libavutil/frame.h>
#include <pango/pangocairo.h>

/* Families in order of preference; fontconfig appends fallbacks for any
 * script none of them covers. Emoji need no name: pango asks fontconfig
 * for them as the language "und-zsye", which Debian's fontconfig answers
 * with Noto Color Emoji. Naming that font here would be worse: pango
 * 1.50 then draws plain digits with the emoji font's keycap glyphs. */
#define TITLE_FONT                                                            \
    "Noto Sans, Noto Sans CJK SC, Noto Sans Arabic, DejaVu Sans Bold"
/* Font sizes as a fraction of the frame's short side: a short prompt is a
 * headline, a long one goes down to small but readable text. */
#define MAX_EM 0.12
#define MIN_EM 0.028
#define MIN_PX 9.0
/* Binary search resolution, pixels. */
#define SIZE_STEP 0.25
/* Up to this many lines a title is centred; more is a paragraph and is
 * aligned to its start (left, or right for right-to-left text). */
#define CENTRED_LINES 6
/* Characters kept before layout: more than fits in any frame at MIN_EM,
 * so shaping work stays bounded whatever the configured prompt limit. */
#define MAX_CHARS 4096
/* The shadow, in ems: blur radii of the soft shadow and of the rim, and
 * the downward offset of both; their alpha is the blurred glyph alpha
 * times a gain, at SHADOW_OPACITY. */
#define SHADOW_BLUR 0.07
#define SHADOW_RIM 0.02
#define SHADOW_DROP 0.03
#define SHADOW_GAIN 2.0f
#define RIM_GAIN 4.0f
#define SHADOW_OPACITY 0.9f
/* Entrance length, seconds. */
#define ENTRANCE_MIN 0.6f
#define ENTRANCE_MAX 0.8f
/* Shares of the room to move (the margin between layout and safe area):
 * they add up to one, so the title never leaves the safe area. */
#define SLIDE_SHARE 0.6f
#define DRIFT_SHARE 0.15f
#define PARALLAX_SHARE 0.25f
/* The fraction of the background's pan the title follows. */
#define PARALLAX 0.15f

/* BT.709 luma weights, as in frames.c. */
#define KR 0.2126f
#define KG 0.7152f
#define KB 0.0722f

/* Columns [first, end) of a row where the title is not transparent. */
typedef struct span {
    int first, end;
} span;

/* Premultiplied chroma and its alpha for one parity of the position: the
 * title's pixel (0, 0) falls on the odd column and/or row of a chroma
 * sample when dx and/or dy are 1. */
typedef struct chroma_planes {
    int w, h;
    uint8_t *u, *v, *a;
    span *rows;
} chroma_planes;

struct vg_title {
    int width, height, fps, frames;
    bool camera_fixed;

    int w, h;       /* rendered size; 0 x 0 draws nothing */
    uint8_t *y, *a; /* premultiplied luma and alpha, w x h */
    span *rows;
    chroma_planes chroma[4]; /* index: (x & 1) + 2 * (y & 1) */

    int rest_x, rest_y;           /* top-left corner once arrived */
    int limit_x, limit_y;         /* how far it may move from there */
    float entrance;               /* seconds */
    float slide_x, slide_y;       /* offset at the first frame */
    float drift_x, drift_y;       /* offset at the last frame (minus: first) */
    float parallax_x, parallax_y; /* offset change over the clip */

    vg_title_info info;
};

/* ---- text ----------------------------------------------------------- */

static bool folds_to_space(gunichar c)
{
    /* Line and paragraph breaks would start new pango paragraphs, and an
     * ellipsis limit counts lines per paragraph: a title is one. */
    return c == ' ' || c < 0x20 || (c >= 0x7f && c < 0xa0) || c == 0x2028 ||
           c == 0x2029;
}

/* The prompt as one valid UTF-8 line of at most MAX_CHARS characters (and
 * an ellipsis when it was longer), without leading, trailing or repeated
 * folded spaces. Free with g_free(). */
static char *clean_text(const char *text)
{
    char *valid = g_utf8_make_valid(text != NULL ? text : "", -1);
    GString *out = g_string_sized_new(strlen(valid) + 4);
    bool pending_space = false;
    int chars = 0;
    for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (folds_to_space(c)) {
            pending_space = out->len > 0;
            continue;
        }
        if (chars >= MAX_CHARS) {
            g_string_append(out, "\u2026");
            break;
        }
        if (pending_space) {
            g_string_append_c(out, ' ');
            chars++;
            pending_space = false;
        }
        g_string_append_unichar(out, c);
        chars++;
    }
    g_free(valid);
    return g_string_free(out, FALSE);
}

/* ---- layout --------------------------------------------------------- */

/* Room the shadow needs around the ink, pixels, at a font size. */
static int shadow_pad(double px)
{
    int blur = (int)ceil(SHADOW_BLUR * px);
    int drop = (int)ceil(SHADOW_DROP * px);
    return 2 * blur + drop + 1;
}

typedef struct fitter {
    PangoLayout *layout;
    PangoFontDescription *font;
    int box_w, box_h; /* the layout margin's inside, pixels */
    bool whole_words; /* a line may only end where a word does */
    PangoRectangle ink;
    int pad;
} fitter;

/* Whether a line starts inside a word: WRAP_WORD_CHAR cuts a word that
 * does not fit on a line of its own (and pango adds a hyphen). Where
 * lines may break is the text's own property (UAX #14), so any line that
 * starts elsewhere was cut. */
static bool cuts_a_word(PangoLayout *layout)
{
    int n_attrs;
    const PangoLogAttr *attrs =
        pango_layout_get_log_attrs_readonly(layout, &n_attrs);
    const char *text = pango_layout_get_text(layout);
    PangoLayoutIter *it = pango_layout_get_iter(layout);
    bool cut = false;
    while (!cut && pango_layout_iter_next_line(it)) {
        PangoLayoutLine *line = pango_layout_iter_get_line_readonly(it);
        long at = g_utf8_pointer_to_offset(text, text + line->start_index);
        cut = at < n_attrs && !attrs[at].is_line_break;
    }
    pango_layout_iter_free(it);
    return cut;
}

/* Lays the text out at `px` and says whether ink and shadow fit the box
 * and the lines' own height (their spacing) fits too. */
static bool fits_at(fitter *f, double px)
{
    int pad = shadow_pad(px);
    int inner_w = f->box_w - 2 * pad, inner_h = f->box_h - 2 * pad;
    if (inner_w <= 0 || inner_h <= 0)
        return false;
    pango_font_description_set_absolute_size(f->font, px * PANGO_SCALE);
    pango_layout_set_font_description(f->layout, f->font);
    pango_layout_set_width(f->layout, inner_w * PANGO_SCALE);
    PangoRectangle logical;
    pango_layout_get_pixel_extents(f->layout, &f->ink, &logical);
    f->pad = pad;
    return f->ink.width > 0 && f->ink.width <= inner_w &&
           f->ink.height <= inner_h && logical.height <= inner_h &&
           !(f->whole_words && cuts_a_word(f->layout));
}

/* The largest size from min_px to max_px that fits, with the layout left
 * at it; 0 when not even min_px fits. */
static double largest_fit(fitter *f, double min_px, double max_px)
{
    if (fits_at(f, max_px))
        return max_px;
    if (!fits_at(f, min_px))
        return 0;
    double lo = min_px, hi = max_px;
    while (hi - lo > SIZE_STEP) {
        double mid = 0.5 * (lo + hi);
        if (fits_at(f, mid))
            lo = mid;
        else
            hi = mid;
    }
    fits_at(f, lo);
    return lo;
}

/* How many whole lines of the current layout fit in `height` pixels. */
static int lines_within(PangoLayout *layout, int height)
{
    PangoLayoutIter *it = pango_layout_get_iter(layout);
    int n = 0;
    do {
        int top, bottom;
        pango_layout_iter_get_line_yrange(it, &top, &bottom);
        if (bottom > height * PANGO_SCALE)
            break;
        n++;
    } while (pango_layout_iter_next_line(it));
    pango_layout_iter_free(it);
    return n;
}

/* Finds the size (and, at the smallest size, the ellipsis) that fits:
 * the largest with whole words, else the largest at all (a word longer
 * than a line is cut). Returns the size, or 0 when not even one line
 * fits. */
static double fit_text(fitter *f, double min_px, double max_px)
{
    f->whole_words = true;
    double px = largest_fit(f, min_px, max_px);
    if (px > 0)
        return px;
    f->whole_words = false;
    px = largest_fit(f, min_px, max_px);
    if (px > 0)
        return px;
    /* Too long even at the smallest size: keep the lines that fit and
     * end the last with an ellipsis. Lines of a fallback font can be
     * taller, hence the loop. */
    fits_at(f, min_px);
    int lines = lines_within(f->layout, f->box_h - 2 * shadow_pad(min_px));
    pango_layout_set_ellipsize(f->layout, PANGO_ELLIPSIZE_END);
    for (; lines >= 1; lines--) {
        pango_layout_set_height(f->layout, -lines);
        if (fits_at(f, min_px))
            return min_px;
    }
    return 0;
}

/* Narrows a centred title of a few lines to the least width that keeps
 * its line count, so the lines come out even ("A LIGHTHOUSE / AT DUSK",
 * not "A LIGHTHOUSE AT / DUSK"). Narrower never overflows. */
static void balance_lines(fitter *f)
{
    int lines = pango_layout_get_line_count(f->layout);
    if (lines < 2 || lines > CENTRED_LINES ||
        pango_layout_is_ellipsized(f->layout))
        return;
    int hi = pango_layout_get_width(f->layout) / PANGO_SCALE;
    int lo = hi / lines;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        pango_layout_set_width(f->layout, mid * PANGO_SCALE);
        if (pango_layout_get_line_count(f->layout) == lines &&
            !(f->whole_words && cuts_a_word(f->layout)))
            hi = mid;
        else
            lo = mid;
    }
    pango_layout_set_width(f->layout, hi * PANGO_SCALE);
}

/* ---- pixels --------------------------------------------------------- */

/* 65536 / (2r + 1), rounded: box averages by multiplication. */
static unsigned box_reciprocal(int r)
{
    return (65536u + (unsigned)r) / (unsigned)(2 * r + 1);
}

/* One box blur of radius r along each row; outside is transparent. */
static void blur_rows(const uint16_t *in, uint16_t *out, int w, int h, int r)
{
    unsigned recip = box_reciprocal(r);
    for (int y = 0; y < h; y++) {
        const uint16_t *src = in + (size_t)y * w;
        uint16_t *dst = out + (size_t)y * w;
        unsigned sum = 0;
        for (int x = 0; x < r && x < w; x++)
            sum += src[x];
        for (int x = 0; x < w; x++) {
            if (x + r < w)
                sum += src[x + r];
            if (x > r)
                sum -= src[x - r - 1];
            dst[x] = (uint16_t)((sum * recip + 32768) >> 16);
        }
    }
}

/* The same down each column, with a running sum per column so memory is
 * read row after row. */
static void blur_columns(const uint16_t *in, uint16_t *out, int w, int h,
                         int r, unsigned *sums)
{
    unsigned recip = box_reciprocal(r);
    memset(sums, 0, sizeof(*sums) * (size_t)w);
    for (int y = 0; y < r && y < h; y++)
        for (int x = 0; x < w; x++)
            sums[x] += in[(size_t)y * w + x];
    for (int y = 0; y < h; y++) {
        if (y + r < h) {
            const uint16_t *add = in + (size_t)(y + r) * w;
            for (int x = 0; x < w; x++)
                sums[x] += add[x];
        }
        if (y > r) {
            const uint16_t *drop = in + (size_t)(y - r - 1) * w;
            for (int x = 0; x < w; x++)
                sums[x] -= drop[x];
        }
        uint16_t *dst = out + (size_t)y * w;
        for (int x = 0; x < w; x++)
            dst[x] = (uint16_t)((sums[x] * recip + 32768) >> 16);
    }
}

/* Blurs alpha (w x h) with two box passes each way of radius r (a tent,
 * close enough to a Gaussian) into out. */
static void blur(const uint8_t *alpha, int w, int h, int r, uint16_t *out,
                 uint16_t *scratch, unsigned *sums)
{
    for (size_t i = 0; i < (size_t)w * h; i++)
        out[i] = alpha[i];
    for (int pass = 0; pass < 2; pass++) {
        blur_rows(out, scratch, w, h, r);
        blur_columns(scratch, out, w, h, r, sums);
    }
}

/* The shadow's alpha (0..255) at every pixel, moved down a little: a
 * tight dark rim that keeps every stroke's edge readable on a light
 * background, inside a wider soft shadow that lifts the text off a busy
 * one. */
static uint8_t *make_shadow(const uint8_t *alpha, int w, int h, double px)
{
    size_t n = (size_t)w * h;
    uint16_t *soft = malloc(n * sizeof(*soft));
    uint16_t *tight = malloc(n * sizeof(*tight));
    uint16_t *scratch = malloc(n * sizeof(*scratch));
    unsigned *sums = malloc(sizeof(*sums) * (size_t)w);
    uint8_t *shadow = malloc(n);
    if (soft == NULL || tight == NULL || scratch == NULL || sums == NULL ||
        shadow == NULL) {
        free(shadow);
        shadow = NULL;
        goto done;
    }
    blur(alpha, w, h, (int)ceil(SHADOW_BLUR * px), soft, scratch, sums);
    blur(alpha, w, h, (int)ceil(SHADOW_RIM * px), tight, scratch, sums);
    int drop = (int)ceil(SHADOW_DROP * px);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int sy = y - drop;
            size_t i = (size_t)sy * w + x;
            float v = 0;
            if (sy >= 0)
                v = fmaxf(SHADOW_GAIN * soft[i], RIM_GAIN * tight[i]);
            if (v > 255)
                v = 255;
            shadow[(size_t)y * w + x] = (uint8_t)(v * SHADOW_OPACITY + 0.5f);
        }
    }
done:
    free(soft);
    free(tight);
    free(scratch);
    free(sums);
    return shadow;
}

static void find_spans(const uint8_t *a, const uint8_t *u, const uint8_t *v,
                       int w, int h, span *rows)
{
    for (int y = 0; y < h; y++) {
        const size_t row = (size_t)y * w;
        int first = w, end = 0;
        for (int x = 0; x < w; x++) {
            bool seen = a[row + x] != 0 ||
                        (u != NULL && (u[row + x] | v[row + x]) != 0);
            if (!seen)
                continue;
            if (first == w)
                first = x;
            end = x + 1;
        }
        rows[y] = (span){first < end ? first : 0, end};
    }
}

/* Averages the full-size premultiplied chroma over each 2x2 block, for
 * the title's pixel (0, 0) sitting at (dx, dy) within its block. */
static int make_chroma(chroma_planes *c, const uint8_t *cb, const uint8_t *cr,
                       const uint8_t *alpha, int w, int h, int dx, int dy)
{
    c->w = (w + dx + 1) / 2;
    c->h = (h + dy + 1) / 2;
    size_t n = (size_t)c->w * c->h;
    c->u = malloc(n);
    c->v = malloc(n);
    c->a = malloc(n);
    c->rows = malloc(sizeof(span) * (size_t)c->h);
    if (c->u == NULL || c->v == NULL || c->a == NULL || c->rows == NULL)
        return -1;
    for (int cy = 0; cy < c->h; cy++) {
        for (int cx = 0; cx < c->w; cx++) {
            int su = 0, sv = 0, sa = 0;
            for (int k = 0; k < 4; k++) {
                int x = 2 * cx - dx + k % 2, y = 2 * cy - dy + k / 2;
                if (x < 0 || y < 0 || x >= w || y >= h)
                    continue;
                size_t i = (size_t)y * w + x;
                su += cb[i];
                sv += cr[i];
                sa += alpha[i];
            }
            size_t o = (size_t)cy * c->w + cx;
            c->u[o] = (uint8_t)((su + 2) / 4);
            c->v[o] = (uint8_t)((sv + 2) / 4);
            c->a[o] = (uint8_t)((sa + 2) / 4);
        }
    }
    find_spans(c->a, c->u, c->v, c->w, c->h, c->rows);
    return 0;
}

/* Turns the rendered text (cairo's premultiplied ARGB) and its shadow
 * into the title's planes. */
static int make_planes(vg_title *t, cairo_surface_t *surface, double px,
                       const float shade[3])
{
    int w = cairo_image_surface_get_width(surface);
    int h = cairo_image_surface_get_height(surface);
    int stride = cairo_image_surface_get_stride(surface);
    const uint8_t *data = cairo_image_surface_get_data(surface);
    size_t n = (size_t)w * h;
    uint8_t *glyph_alpha = malloc(n);
    uint8_t *cb = malloc(n), *cr = malloc(n), *shadow = NULL;
    int ret = -1;
    t->w = w;
    t->h = h;
    t->y = malloc(n);
    t->a = malloc(n);
    t->rows = malloc(sizeof(span) * (size_t)h);
    if (glyph_alpha == NULL || cb == NULL || cr == NULL || t->y == NULL ||
        t->a == NULL || t->rows == NULL)
        goto done;
    uint64_t ink_sum = 0;
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(data + (size_t)y * stride);
        for (int x = 0; x < w; x++) {
            glyph_alpha[(size_t)y * w + x] = (uint8_t)(row[x] >> 24);
            ink_sum += row[x] >> 24;
        }
    }
    t->info.ink = ink_sum;
    shadow = make_shadow(glyph_alpha, w, h, px);
    if (shadow == NULL)
        goto done;

    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(data + (size_t)y * stride);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint32_t p = row[x];
            if (p == 0 && shadow[i] == 0) {
                /* Most of the box is clear: nothing to convert. */
                t->y[i] = cb[i] = cr[i] = t->a[i] = 0;
                continue;
            }
            float a = (float)(p >> 24) / 255.0f;
            float r = (float)((p >> 16) & 0xff) / 255.0f;
            float g = (float)((p >> 8) & 0xff) / 255.0f;
            float b = (float)(p & 0xff) / 255.0f;
            /* The text over its shadow, premultiplied throughout. */
            float s = (float)shadow[i] / 255.0f * (1 - a);
            a += s;
            r += shade[0] * s;
            g += shade[1] * s;
            b += shade[2] * s;
            float luma = KR * r + KG * g + KB * b;
            /* Premultiplied limited-range values: the offsets scale with
             * alpha too, so blending is out = value + bg * (1 - alpha). */
            t->y[i] = (uint8_t)(16.0f * a + 219.0f * luma + 0.5f);
            cb[i] =
                (uint8_t)(128.0f * a + 224.0f * (b - luma) / 1.8556f + 0.5f);
            cr[i] =
                (uint8_t)(128.0f * a + 224.0f * (r - luma) / 1.5748f + 0.5f);
            t->a[i] = (uint8_t)(255.0f * a + 0.5f);
        }
    }
    find_spans(t->a, NULL, NULL, w, h, t->rows);
    for (int k = 0; k < 4; k++)
        if (make_chroma(&t->chroma[k], cb, cr, t->a, w, h, k & 1, k >> 1) < 0)
            goto done;
    ret = 0;
done:
    free(glyph_alpha);
    free(cb);
    free(cr);
    free(shadow);
    return ret;
}

/* ---- motion --------------------------------------------------------- */

static void invent_motion(vg_title *t, const vg_title_params *p)
{
    uint64_t state = p->seed ^ 0x7469746c65ULL; /* "title" */
    t->entrance = vg_random_between(&state, ENTRANCE_MIN, ENTRANCE_MAX);
    if (p->camera_fixed)
        return;
    float room_x = (float)t->limit_x, room_y = (float)t->limit_y;
    /* Rising into place is the classic; the other sides now and then. */
    switch (vg_random_next(&state) % 6) {
    case 0:
    case 1:
    case 2:
        t->slide_y = SLIDE_SHARE * room_y;
        break;
    case 3:
        t->slide_y = -SLIDE_SHARE * room_y;
        break;
    case 4:
        t->slide_x = -SLIDE_SHARE * room_x;
        break;
    default:
        t->slide_x = SLIDE_SHARE * room_x;
        break;
    }
    float angle = vg_random_between(&state, 0, 6.28318530718f);
    t->drift_x = DRIFT_SHARE * room_x * cosf(angle);
    t->drift_y = DRIFT_SHARE * room_y * sinf(angle);
    /* Follow the pan, scaled down as a whole (keeping its direction)
     * when it would take more than its share of the room. */
    float px = PARALLAX * p->pan_x, py = PARALLAX * p->pan_y;
    float scale = 1;
    if (fabsf(px) * 0.5f > PARALLAX_SHARE * room_x)
        scale = PARALLAX_SHARE * room_x / (fabsf(px) * 0.5f);
    if (fabsf(py) * 0.5f * scale > PARALLAX_SHARE * room_y)
        scale = PARALLAX_SHARE * room_y / (fabsf(py) * 0.5f);
    t->parallax_x = px * scale;
    t->parallax_y = py * scale;
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Where frame `index` puts the title's top-left corner and how opaque it
 * is, in 1/256. */
static void place(const vg_title *t, int index, int *x, int *y, int *fade)
{
    float time = (float)index / (float)t->fps;
    float u = t->entrance > 0 ? time / t->entrance : 1;
    if (u > 1)
        u = 1;
    if (u < 0)
        u = 0;
    *fade = (int)(256.0f * u * u * (3 - 2 * u) + 0.5f);
    float ox = 0, oy = 0;
    if (!t->camera_fixed) {
        /* The slide decelerates into place as the fade completes. */
        float rest = (1 - u) * (1 - u) * (1 - u);
        float p = t->frames > 1 ? (float)index / (float)(t->frames - 1) : 0;
        float eased = p * p * (3 - 2 * p); /* the camera's easing */
        ox = t->slide_x * rest + t->drift_x * (2 * p - 1) +
             t->parallax_x * (eased - 0.5f);
        oy = t->slide_y * rest + t->drift_y * (2 * p - 1) +
             t->parallax_y * (eased - 0.5f);
    }
    *x = t->rest_x + clamp_int((int)lroundf(ox), -t->limit_x, t->limit_x);
    *y = t->rest_y + clamp_int((int)lroundf(oy), -t->limit_y, t->limit_y);
}

/* ---- blending ------------------------------------------------------- */

/* Sixteen pixels at a time with GCC's vector extensions (as frames.c
 * does): -O2 leaves the scalar loop alone, and the blend is most of what
 * a title costs per frame. Every product fits in 16 bits: 255 * 256 +
 * 128 and 255 * 255 + 128 + 254 are both below 65536. */
typedef uint8_t v16u8 __attribute__((vector_size(16)));
typedef uint16_t v16u16 __attribute__((vector_size(32)));

/* out = value' + out * (255 - alpha') / 255, rounded, where value' and
 * alpha' are value and alpha times fade / 256: the premultiplied "over"
 * at an opacity. value <= alpha, so the sum never passes 255. */
static void blend(uint8_t *restrict out, const uint8_t *restrict value,
                  const uint8_t *restrict alpha, int n, unsigned fade)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16u8 o8, v8, a8;
        /* memcpy: rows are not aligned to the vector size. */
        memcpy(&o8, out + i, 16);
        memcpy(&v8, value + i, 16);
        memcpy(&a8, alpha + i, 16);
        v16u16 a = __builtin_convertvector(a8, v16u16);
        v16u16 c = __builtin_convertvector(v8, v16u16);
        a = (a * (uint16_t)fade + 128) >> 8;
        c = (c * (uint16_t)fade + 128) >> 8;
        v16u16 t = __builtin_convertvector(o8, v16u16) * (255 - a) + 128;
        t = c + ((t + (t >> 8)) >> 8);
        o8 = __builtin_convertvector(t, v16u8);
        memcpy(out + i, &o8, 16);
    }
    for (; i < n; i++) {
        unsigned a = (alpha[i] * fade + 128) >> 8;
        unsigned c = (value[i] * fade + 128) >> 8;
        unsigned t = out[i] * (255u - a) + 128;
        out[i] = (uint8_t)(c + ((t + (t >> 8)) >> 8));
    }
}

/* Blends a w x h plane pair into `plane` (plane_w x plane_h) with its
 * top-left at (x, y), clipped to the plane. */
static void blend_plane(uint8_t *plane, ptrdiff_t stride, int plane_w,
                        int plane_h, const uint8_t *value,
                        const uint8_t *alpha, const span *rows, int w, int h,
                        int x, int y, int fade)
{
    for (int r = 0; r < h; r++) {
        int py = y + r;
        if (py < 0 || py >= plane_h)
            continue;
        int first = rows[r].first, end = rows[r].end;
        if (x + first < 0)
            first = -x;
        if (x + end > plane_w)
            end = plane_w - x;
        if (first >= end)
            continue;
        uint8_t *out = plane + py * stride + x + first;
        const size_t at = (size_t)r * w + first;
        blend(out, value + at, alpha + at, end - first, (unsigned)fade);
    }
}

/* ---- fontconfig ----------------------------------------------------- */

/* Fontconfig loads its configuration once per process and keeps it until
 * FcFini(); LeakSanitizer counts 288 bytes of it (from the config file
 * parser) as leaked at exit. So it is released at exit, when every render
 * has finished: the server joins its workers before main() returns. */
static pthread_once_t release_once = PTHREAD_ONCE_INIT;

static void release_fontconfig_at_exit(void)
{
    atexit(FcFini);
}

/* ---- the title ------------------------------------------------------ */

static void tint(const float light[3], const float dark[3], float ink[3],
                 float shade[3])
{
    /* Near-white carrying a fifth of the light colour at full value, and
     * a shade of the dark colour close to black: contrast on every part
     * of a gradient that runs from one to the other. */
    float top = fmaxf(light[0], fmaxf(light[1], light[2]));
    for (int i = 0; i < 3; i++) {
        float hue = top > 0 ? light[i] / top : 1;
        ink[i] = 0.8f + 0.2f * hue;
        shade[i] = 0.3f * dark[i];
    }
}

static int render_title(vg_title *t, const vg_title_params *p,
                        const char *text, vg_error *err)
{
    int short_side = p->width < p->height ? p->width : p->height;
    double max_px = MAX_EM * short_side;
    double min_px = fmax(MIN_EM * short_side, MIN_PX);
    if (max_px < min_px)
        max_px = min_px;
    int margin_x = (int)ceil(VG_TITLE_LAYOUT_MARGIN * p->width);
    int margin_y = (int)ceil(VG_TITLE_LAYOUT_MARGIN * p->height);
    t->limit_x = margin_x - (int)ceil(VG_TITLE_SAFE_MARGIN * p->width);
    t->limit_y = margin_y - (int)ceil(VG_TITLE_SAFE_MARGIN * p->height);

    pthread_once(&release_once, release_fontconfig_at_exit);
    /* A font map of our own: nothing shared between renders running on
     * different threads, and nothing left behind when we are done. */
    PangoFontMap *fonts = pango_cairo_font_map_new();
    PangoContext *context = pango_font_map_create_context(fonts);
    cairo_font_options_t *options = cairo_font_options_create();
    /* Unhinted outlines at fractional positions: the text scales
     * smoothly with the size search and looks the same at every size. */
    cairo_font_options_set_antialias(options, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(options, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(options, CAIRO_HINT_METRICS_OFF);
    pango_cairo_context_set_font_options(context, options);
    pango_context_set_round_glyph_positions(context, FALSE);
    fitter f = {
        .layout = pango_layout_new(context),
        .font = pango_font_description_from_string(TITLE_FONT),
        .box_w = p->width - 2 * margin_x,
        .box_h = p->height - 2 * margin_y,
    };
    pango_layout_set_text(f.layout, text, -1);
    pango_layout_set_wrap(f.layout, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_auto_dir(f.layout, TRUE);
    pango_layout_set_alignment(f.layout, PANGO_ALIGN_CENTER);

    cairo_surface_t *surface = NULL;
    int ret = 0;
    double px = f.box_w > 0 && f.box_h > 0 ? fit_text(&f, min_px, max_px) : 0;
    if (px <= 0)
        goto done; /* nothing readable fits: no title */
    balance_lines(&f);
    t->info.font_px = px;
    t->info.lines = pango_layout_get_line_count(f.layout);
    t->info.ellipsized = pango_layout_is_ellipsized(f.layout);
    t->info.unknown_glyphs = pango_layout_get_unknown_glyphs_count(f.layout);
    if (t->info.lines > CENTRED_LINES)
        /* Left is the start: auto_dir mirrors it for right-to-left. */
        pango_layout_set_alignment(f.layout, PANGO_ALIGN_LEFT);
    /* Alignment moves lines within the width, not the ink's size. */
    pango_layout_get_pixel_extents(f.layout, &f.ink, NULL);

    int w = f.ink.width + 2 * f.pad, h = f.ink.height + 2 * f.pad;
    surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    cairo_t *cr = cairo_create(surface);
    float ink[3], shade[3];
    tint(p->light, p->dark, ink, shade);
    cairo_set_source_rgb(cr, ink[0], ink[1], ink[2]);
    cairo_move_to(cr, f.pad - f.ink.x, f.pad - f.ink.y);
    pango_cairo_show_layout(cr, f.layout);
    cairo_status_t status = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_flush(surface);
    if (status != CAIRO_STATUS_SUCCESS ||
        cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        ret = vg_error_set(
            err, 500, "render_failed", NULL, "cannot draw the title: %s",
            cairo_status_to_string(status != CAIRO_STATUS_SUCCESS
                                       ? status
                                       : cairo_surface_status(surface)));
        goto done;
    }
    if (make_planes(t, surface, px, shade) < 0) {
        ret = vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        goto done;
    }
    /* Centred in the layout box; the fit guarantees it is inside. */
    t->rest_x = margin_x + (f.box_w - w) / 2;
    t->rest_y = margin_y + (f.box_h - h) / 2;
    t->info.at_rest = (vg_title_rect){t->rest_x, t->rest_y, w, h};

done:
    cairo_surface_destroy(surface);
    cairo_font_options_destroy(options);
    pango_font_description_free(f.font);
    g_object_unref(f.layout);
    g_object_unref(context);
    g_object_unref(fonts);
    return ret;
}

vg_title *vg_title_new(const vg_title_params *params, vg_error *err)
{
    vg_title *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        return NULL;
    }
    t->width = params->width;
    t->height = params->height;
    t->fps = params->fps > 0 ? params->fps : 1;
    t->frames = params->frames;
    t->camera_fixed = params->camera_fixed;

    char *text = clean_text(params->text);
    int ret = 0;
    if (*text != '\0')
        ret = render_title(t, params, text, err);
    g_free(text);
    if (ret < 0) {
        vg_title_free(t);
        return NULL;
    }
    if (t->w > 0)
        invent_motion(t, params);
    return t;
}

void vg_title_draw(const vg_title *title, int index, AVFrame *frame)
{
    if (title->w == 0)
        return;
    int x, y, fade;
    place(title, index, &x, &y, &fade);
    if (fade <= 0)
        return;
    blend_plane(frame->data[0], frame->linesize[0], title->width,
                title->height, title->y, title->a, title->rows, title->w,
                title->h, x, y, fade);
    /* The chroma sample holding the title's first pixel, and which of its
     * pixels that is. */
    int dx = x & 1, dy = y & 1;
    const chroma_planes *c = &title->chroma[dx + 2 * dy];
    int cx = (x - dx) / 2, cy = (y - dy) / 2;
    for (int k = 1; k <= 2; k++)
        blend_plane(frame->data[k], frame->linesize[k], title->width / 2,
                    title->height / 2, k == 1 ? c->u : c->v, c->a, c->rows,
                    c->w, c->h, cx, cy, fade);
}

vg_title_rect vg_title_box(const vg_title *title, int index)
{
    if (title->w == 0)
        return (vg_title_rect){0, 0, 0, 0};
    int x, y, fade;
    place(title, index, &x, &y, &fade);
    return (vg_title_rect){x, y, title->w, title->h};
}

void vg_title_describe(const vg_title *title, vg_title_info *info)
{
    *info = title->info;
}

void vg_title_free(vg_title *title)
{
    if (title == NULL)
        return;
    free(title->y);
    free(title->a);
    free(title->rows);
    for (int k = 0; k < 4; k++) {
        free(title->chroma[k].u);
        free(title->chroma[k].v);
        free(title->chroma[k].a);
        free(title->chroma[k].rows);
    }
    free(title);
}
