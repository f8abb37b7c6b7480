/*
 * test_picture.c - image-to-video, checked through the pictures it
 * draws: every input is made with the ffmpeg CLI (or by editing bytes),
 * rendered with the picture source into YUV frames, and compared with
 * what a viewer of the image would expect to see.
 *
 * Inputs go to a fresh directory under $VG_TEST_TMP (or /tmp) that is
 * removed at the end. Images and frames are small so the suite stays
 * fast under AddressSanitizer.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavutil/frame.h>

#include "render/frames.h"
#include "render/picture.h"
#include "render/render.h"
#include "test_support.h"

/* ---- files ------------------------------------------------------------- */

/* Makes `name` from one frame of a lavfi source, with extra output
 * options (a pixel format, an encoder setting). */
static const char *make_image(const char *name, const char *source,
                              const char *options)
{
    const char *path = vg_test_scratch_path(name);
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i \"%s\" -frames:v 1 "
             "%s '%s'",
             source, options, path);
    if (system(cmd) != 0)
        fail_msg("ffmpeg failed: %s", cmd);
    return path;
}

/* Makes `name` by filtering an existing image. */
static const char *filter_image(const char *name, const char *input,
                                const char *filter, const char *options)
{
    const char *path = vg_test_scratch_path(name);
    char cmd[PATH_MAX * 2 + 512];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -i '%s' -vf \"%s\" -frames:v 1 "
             "%s '%s'",
             input, filter, options, path);
    if (system(cmd) != 0)
        fail_msg("ffmpeg failed: %s", cmd);
    return path;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    unsigned char *bytes = malloc((size_t)size);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return bytes;
}

/* Copies a JPEG, adding an APP1 Exif segment right after SOI whose only
 * tag is Orientation, the way a phone marks a picture taken sideways. */
static const char *with_orientation(const char *name, const char *jpeg,
                                    int orientation)
{
    const unsigned char app1[] = {
        0xff, 0xe1,
        0x00, 0x22,
        'E',  'x',
        'i',  'f',
        0x00, 0x00,
        'M',  'M',
        0x00, 0x2a,
        0x00, 0x00,
        0x00, 0x08, /* TIFF */
        0x00, 0x01, /* 1 tag */
        0x01, 0x12,
        0x00, 0x03,
        0x00, 0x00,
        0x00, 0x01, /* SHORT */
        0x00, (unsigned char)orientation,
        0x00, 0x00, /* value */
        0x00, 0x00,
        0x00, 0x00, /* no next IFD */
    };
    size_t n;
    unsigned char *bytes = read_file(jpeg, &n);
    assert_true(n > 2 && bytes[0] == 0xff && bytes[1] == 0xd8);
    unsigned char *out = malloc(n + sizeof(app1));
    assert_non_null(out);
    memcpy(out, bytes, 2);
    memcpy(out + 2, app1, sizeof(app1));
    memcpy(out + 2 + sizeof(app1), bytes + 2, n - 2);
    const char *path = vg_test_scratch_path(name);
    vg_test_write_file(path, out, n + sizeof(app1));
    free(out);
    free(bytes);
    return path;
}

/* ---- drawing ----------------------------------------------------------- */

static vg_render_params params_for(const char *const *images, int n, int width,
                                   int height, bool fixed, uint32_t seed)
{
    vg_render_params p = {
        .prompt = "a test of reference images",
        .width = width,
        .height = height,
        .fps = 24,
        .duration = 2,
        .camera_fixed = fixed,
        .seed = seed,
        .images = images,
        .n_images = n,
    };
    return p;
}

static AVFrame *new_frame(int width, int height)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->format = AV_PIX_FMT_YUV420P;
    f->width = width;
    f->height = height;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    return f;
}

static vg_picture_source *open_ok(const vg_render_params *p)
{
    vg_error err = {0};
    vg_picture_source *src = vg_picture_source_new(p, &err);
    if (src == NULL)
        fail_msg("picture source failed: %d %s: %s", err.status, err.code,
                 err.message);
    return src;
}

/* Frame `index` of a clip of the given images. */
static AVFrame *draw(const vg_render_params *p, int index)
{
    vg_picture_source *src = open_ok(p);
    AVFrame *f = new_frame(p->width, p->height);
    vg_picture_source_draw(src, index, f);
    vg_picture_source_free(src);
    return f;
}

static AVFrame *draw_one(const char *image, int width, int height, bool fixed,
                         int index)
{
    const char *images[] = {image};
    vg_render_params p = params_for(images, 1, width, height, fixed, 5);
    return draw(&p, index);
}

static int plane_width(const AVFrame *f, int plane)
{
    return plane == 0 ? f->width : f->width / 2;
}

static int plane_height(const AVFrame *f, int plane)
{
    return plane == 0 ? f->height : f->height / 2;
}

/* Mean absolute difference of one plane of two frames. */
static double plane_difference(const AVFrame *a, const AVFrame *b, int plane)
{
    int w = plane_width(a, plane), h = plane_height(a, plane);
    double sum = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *ra = a->data[plane] + (ptrdiff_t)y * a->linesize[plane];
        const uint8_t *rb = b->data[plane] + (ptrdiff_t)y * b->linesize[plane];
        for (int x = 0; x < w; x++)
            sum += abs(ra[x] - rb[x]);
    }
    return sum / ((double)w * h);
}

/* Mean absolute difference over all three planes. */
static double difference(const AVFrame *a, const AVFrame *b)
{
    return (4 * plane_difference(a, b, 0) + plane_difference(a, b, 1) +
            plane_difference(a, b, 2)) /
           6;
}

static bool same_pixels(const AVFrame *a, const AVFrame *b)
{
    for (int p = 0; p < 3; p++)
        if (plane_difference(a, b, p) != 0)
            return false;
    return true;
}

/* Mean of one plane inside a rectangle given in fractions of the frame. */
static double region_mean(const AVFrame *f, int plane, double x0, double y0,
                          double x1, double y1)
{
    int w = plane_width(f, plane), h = plane_height(f, plane);
    int left = (int)(x0 * w), right = (int)(x1 * w);
    int top = (int)(y0 * h), bottom = (int)(y1 * h);
    double sum = 0;
    for (int y = top; y < bottom; y++)
        for (int x = left; x < right; x++)
            sum += f->data[plane][(ptrdiff_t)y * f->linesize[plane] + x];
    return sum / ((double)(right - left) * (bottom - top));
}

/* The largest distance of a plane's samples from `value`. */
static int farthest_from(const AVFrame *f, int plane, int value)
{
    int most = 0;
    for (int y = 0; y < plane_height(f, plane); y++)
        for (int x = 0; x < plane_width(f, plane); x++) {
            int d = abs(f->data[plane][(ptrdiff_t)y * f->linesize[plane] + x] -
                        value);
            most = d > most ? d : most;
        }
    return most;
}

static double mean(const AVFrame *f, int plane)
{
    return region_mean(f, plane, 0, 0, 1, 1);
}

/* Standard deviation of luma: zero for a flat frame. */
static double luma_spread(const AVFrame *f)
{
    double m = mean(f, 0), sum = 0;
    for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++) {
            double d = f->data[0][(ptrdiff_t)y * f->linesize[0] + x] - m;
            sum += d * d;
        }
    return sqrt(sum / ((double)f->width * f->height));
}

static void expect_refused(const char *const *images, int n,
                           const char *position, const char *reason)
{
    vg_render_params p = params_for(images, n, 160, 90, false, 1);
    vg_error err = {0};
    assert_null(vg_picture_source_new(&p, &err));
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_image");
    assert_string_equal(err.field, "files");
    if (strstr(err.message, position) == NULL ||
        (reason != NULL && strstr(err.message, reason) == NULL))
        fail_msg("message \"%s\" should name \"%s\" and say \"%s\"",
                 err.message, position, reason ? reason : "");
}

/* ---- formats ----------------------------------------------------------- */

#define PATTERN "testsrc2=size=96x64"

static void test_every_format_decodes_to_the_same_picture(void **state)
{
    (void)state;
    const char *reference = make_image("ref.png", PATTERN, "");
    AVFrame *want = draw_one(reference, 160, 90, true, 0);
    assert_true(luma_spread(want) > 20);

    /* Colour in every container and depth a client may send; lossy ones
     * differ by their compression error only. */
    const struct {
        const char *name, *options;
        double tolerance;
    } colour[] = {
        {"rgb.jpg", "-q:v 2", 6},
        {"yuv444.jpg", "-q:v 2 -pix_fmt yuvj444p", 6},
        {"lossy.webp", "-quality 95", 8},
        {"lossless.webp", "-lossless 1 -pix_fmt bgra", 1},
        {"deep.png", "-pix_fmt rgb48be", 2},
        {"deep_alpha.png", "-pix_fmt rgba64be", 2},
        {"opaque_alpha.png", "-pix_fmt rgba", 1},
        {"palette.png", "-pix_fmt pal8", 12},
    };
    for (size_t i = 0; i < sizeof(colour) / sizeof(colour[0]); i++) {
        const char *path =
            make_image(colour[i].name, PATTERN, colour[i].options);
        AVFrame *got = draw_one(path, 160, 90, true, 0);
        double d = difference(want, got);
        if (d > colour[i].tolerance)
            fail_msg("%s differs from the PNG by %.2f", colour[i].name, d);
        av_frame_free(&got);
    }

    /* Grey ones have the same shapes and no colour at all. */
    const struct {
        const char *name, *options;
    } grey[] = {
        {"grey.png", "-pix_fmt gray"},
        {"grey16.png", "-pix_fmt gray16be"},
        {"grey_alpha.png", "-pix_fmt ya8"},
        /* ffmpeg's baseline JPEG encoder has no grey; its JPEG-LS one
         * writes a one-component JPEG file all the same. */
        {"grey.jpg", "-c:v jpegls -pix_fmt gray"},
    };
    for (size_t i = 0; i < sizeof(grey) / sizeof(grey[0]); i++) {
        const char *path = make_image(grey[i].name, PATTERN, grey[i].options);
        AVFrame *got = draw_one(path, 160, 90, true, 0);
        assert_true(luma_spread(got) > 20);
        for (int p = 1; p < 3; p++) {
            int off = farthest_from(got, p, 128);
            if (off > 2)
                fail_msg("%s has colour: plane %d is %d off grey",
                         grey[i].name, p, off);
        }
        av_frame_free(&got);
    }
    av_frame_free(&want);
}

static void test_exif_orientation_turns_the_picture_upright(void **state)
{
    (void)state;
    /* What a viewer shows for each orientation, as ffmpeg filters. */
    static const char *const upright[9] = {
        NULL,          "null",        "hflip",       "hflip,vflip", "vflip",
        "transpose=0", "transpose=1", "transpose=3", "transpose=2",
    };
    const char *jpeg = make_image("camera.jpg", PATTERN, "-q:v 2");
    for (int o = 1; o <= 8; o++) {
        char name[64];
        snprintf(name, sizeof(name), "oriented%d.jpg", o);
        const char *tagged = with_orientation(name, jpeg, o);
        snprintf(name, sizeof(name), "upright%d.png", o);
        /* Turned from the decoded JPEG, so only the turn differs. */
        const char *turned = filter_image(name, jpeg, upright[o], "");

        /* Portrait frames for the portrait results, so the crop cuts
         * little either way. */
        bool tall = o >= 5;
        int w = tall ? 90 : 160, h = tall ? 160 : 90;
        AVFrame *got = draw_one(tagged, w, h, true, 0);
        AVFrame *want = draw_one(turned, w, h, true, 0);
        AVFrame *as_stored = draw_one(jpeg, w, h, true, 0);
        double d = difference(got, want);
        double stored = difference(got, as_stored);
        if (d > 3 || (o > 1 && stored < 10))
            fail_msg("orientation %d: %.2f from upright, %.2f from as "
                     "stored",
                     o, d, stored);
        av_frame_free(&got);
        av_frame_free(&want);
        av_frame_free(&as_stored);
    }
}

/* ---- transparency ------------------------------------------------------ */

static void test_see_through_areas_are_not_black(void **state)
{
    (void)state;
    /* Left half invisible (and black underneath), right half red. */
    const char *half =
        make_image("half.png",
                   "color=red:size=64x64,format=rgba,"
                   "geq=r='if(lt(X,32),0,255)':g=0:b=0:a='if(lt(X,32),0,255)'",
                   "");
    AVFrame *f = draw_one(half, 160, 160, true, 0);
    assert_true(region_mean(f, 0, 0.05, 0.1, 0.35, 0.9) > 60);
    /* The visible half is still red: high Cr. */
    assert_true(region_mean(f, 2, 0.65, 0.1, 0.95, 0.9) > 200);
    av_frame_free(&f);

    /* The same through WebP's separate alpha plane. */
    const char *webp =
        make_image("half.webp",
                   "color=red:size=64x64,format=rgba,"
                   "geq=r='if(lt(X,32),0,255)':g=0:b=0:a='if(lt(X,32),0,255)'",
                   "-lossless 1");
    f = draw_one(webp, 160, 160, true, 0);
    assert_true(region_mean(f, 0, 0.05, 0.1, 0.35, 0.9) > 60);
    av_frame_free(&f);

    /* Black ink on a transparent page gets a light backdrop, so it can
     * still be read. */
    const char *ink =
        make_image("ink.png",
                   "color=black:size=64x64,format=rgba,"
                   "geq=r=0:g=0:b=0:a='if(between(Y,28,36),255,0)'",
                   "");
    f = draw_one(ink, 160, 160, true, 0);
    assert_true(region_mean(f, 0, 0.1, 0.05, 0.9, 0.3) > 150);
    assert_true(region_mean(f, 0, 0.1, 0.47, 0.9, 0.53) < 40);
    av_frame_free(&f);

    /* Nothing visible at all: still a picture, not a black hole. */
    const char *clear = make_image(
        "clear.png", "color=black:size=32x32,format=rgba,geq=r=0:g=0:b=0:a=0",
        "");
    f = draw_one(clear, 160, 90, true, 0);
    assert_true(mean(f, 0) > 60);
    av_frame_free(&f);
}

static void test_edges_of_see_through_images_have_no_dark_fringe(void **state)
{
    (void)state;
    /* A white disc on invisible black, magnified a lot: from its centre
     * outwards the picture must only darken, from white to the backdrop,
     * never dip below the backdrop and come back up. Scaling before
     * compositing would dip by tens of levels; the scaler's own faint
     * ringing stays within a few. */
    const char *disc = make_image(
        "disc.png",
        "color=white:size=16x16,format=rgba,"
        "geq=r='255*lt(hypot(X-7.5,Y-7.5),6)':g='255*lt(hypot(X-7.5,Y-7.5),"
        "6)':b='255*lt(hypot(X-7.5,Y-7.5),6)':a='255*lt(hypot(X-7.5,Y-7.5),"
        "6)'",
        "");
    AVFrame *f = draw_one(disc, 160, 160, true, 0);
    const uint8_t *row = f->data[0] + (ptrdiff_t)80 * f->linesize[0];
    assert_true(row[80] > 200);
    for (int x = 79; x >= 0; x--)
        if (row[x] > row[x + 1] + 5)
            fail_msg("luma rises outwards at x = %d: %d after %d", x, row[x],
                     row[x + 1]);
    av_frame_free(&f);
}

/* ---- sizes ------------------------------------------------------------- */

static void test_tiny_and_extreme_sizes_render(void **state)
{
    (void)state;
    const char *dot = make_image(
        "dot.png", "color=0x2040e0:size=2x2,format=rgb24,crop=1:1", "");
    AVFrame *f = draw_one(dot, 160, 90, false, 10);
    /* One blue pixel fills the frame: flat, blue. */
    assert_true(luma_spread(f) < 1);
    assert_true(mean(f, 1) > 180);
    av_frame_free(&f);

    const char *wide =
        make_image("wide.png", "testsrc2=size=10000x200", "-pix_fmt rgb24");
    const char *tall = filter_image("tall.png", wide, "transpose=1", "");
    const char *both[] = {wide, tall};
    for (int i = 0; i < 2; i++) {
        for (int moving = 0; moving < 2; moving++) {
            AVFrame *a = draw_one(both[i], 160, 90, !moving, 0);
            AVFrame *b = draw_one(both[i], 90, 160, !moving, 47);
            assert_true(luma_spread(a) > 10);
            assert_true(luma_spread(b) > 10);
            av_frame_free(&a);
            av_frame_free(&b);
        }
    }
}

static void test_absurd_sizes_are_refused_naming_the_image(void **state)
{
    (void)state;
    const char *fine = make_image("fine.png", PATTERN, "");
    const char *long_side =
        make_image("long.png", "color=gray:size=16400x16", "-pix_fmt gray");
    const char *images[] = {fine, long_side};
    expect_refused(images, 2, "image 2 of 2", "16400x16 pixels");

    const char *huge =
        make_image("huge.png", "color=gray:size=8000x7000", "-pix_fmt gray");
    images[0] = huge;
    expect_refused(images, 1, "image 1 of 1", "8000x7000 pixels");

    /* Within the pixel limit, but 8 bytes a pixel once decoded. */
    const char *deep = make_image("deep.png", "color=gray:size=6000x6000",
                                  "-pix_fmt rgba64be");
    images[0] = fine;
    images[1] = deep;
    expect_refused(images, 2, "image 2 of 2", "16 bits a channel");
}

/* The documented limit is the header's width x height (50 megapixels),
 * not what the decoder allocates with its padding. */
static void test_images_just_under_the_pixel_limit_are_decoded(void **state)
{
    (void)state;
    const char *edge =
        make_image("edge.png", "color=gray:size=7071x7071", "-pix_fmt gray");
    AVFrame *f = draw_one(edge, 160, 90, false, 10);
    assert_non_null(f);
    assert_true(luma_spread(f) < 1);
    av_frame_free(&f);

    const char *over =
        make_image("over.png", "color=gray:size=7072x7072", "-pix_fmt gray");
    const char *images[] = {over};
    expect_refused(images, 1, "image 1 of 1", "7072x7072 pixels");
}

/* ---- broken files ------------------------------------------------------ */

static void test_broken_files_are_refused_naming_the_image(void **state)
{
    (void)state;
    const char *fine = make_image("ok.png", PATTERN, "");

    /* A PNG signature followed by garbage: sniffed, undecodable. */
    static const unsigned char broken[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0,
        0,    13,  'I', 'H', 'D',  'R',  0,    0,    0, 9,
        0,    0,   0,   9,   8,    2,    0,    0,    0, 1};
    const char *bad = vg_test_scratch_path("broken.png");
    vg_test_write_file(bad, broken, sizeof(broken));
    const char *images[] = {fine, fine, bad};
    expect_refused(images, 3, "image 3 of 3", "cannot be decoded");

    /* A JPEG start and nothing of a picture. */
    static const unsigned char stub[] = {0xff, 0xd8, 0xff, 0xe0, 0,
                                         4,    1,    2,    0xff, 0xd9};
    const char *jpeg = vg_test_scratch_path("stub.jpg");
    vg_test_write_file(jpeg, stub, sizeof(stub));
    images[1] = jpeg;
    expect_refused(images, 3, "image 2 of 3", NULL);

    const char *text = vg_test_scratch_path("text.png");
    vg_test_write_file(text, "not an image at all\n", 20);
    images[0] = text;
    expect_refused(images, 1, "image 1 of 1", "not a PNG, JPEG or WebP");

    const char *empty = vg_test_scratch_path("empty.png");
    vg_test_write_file(empty, "", 0);
    images[0] = empty;
    expect_refused(images, 1, "image 1 of 1", "empty");

    images[0] = fine;
    images[1] = vg_test_scratch_path("missing.png");
    expect_refused(images, 2, "image 2 of 2", "cannot be read");

    const char *anim = vg_test_scratch_path("anim.webp");
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=64x48:"
             "rate=5 -t 1 -loop 0 -c:v libwebp_anim '%s'",
             anim);
    if (system(cmd) == 0) {
        images[0] = anim;
        expect_refused(images, 1, "image 1 of 1", "animated");
    }
}

/* ---- sequences --------------------------------------------------------- */

/* Where a frame's mean colour lies between two others: 0 at `from`, 1 at
 * `to`, along the line in the (Cb, Cr) plane. */
static double colour_position(const AVFrame *f, const double from[2],
                              const double to[2])
{
    double cb = mean(f, 1) - from[0], cr = mean(f, 2) - from[1];
    double dx = to[0] - from[0], dy = to[1] - from[1];
    return (cb * dx + cr * dy) / (dx * dx + dy * dy);
}

static void test_images_follow_each_other_with_crossfades(void **state)
{
    (void)state;
    const char *images[] = {
        make_image("red.png", "color=red:size=64x48", ""),
        make_image("green.png", "color=0x00ff00:size=48x64", ""),
        make_image("blue.jpg", "color=blue:size=64x64", ""),
    };
    vg_render_params p = params_for(images, 3, 160, 90, false, 3);
    p.duration = 4;
    int frames = p.fps * p.duration;
    vg_picture_source *src = open_ok(&p);
    AVFrame *f = new_frame(p.width, p.height);
    double colour[3][2] = {{0}};
    int shown[3] = {-1, -1, -1};
    /* Sample each colour where the clip is sure to show it. */
    int at[3] = {0, frames / 2, frames - 1};
    for (int i = 0; i < 3; i++) {
        vg_picture_source_draw(src, at[i], f);
        colour[i][0] = mean(f, 1);
        colour[i][1] = mean(f, 2);
    }
    assert_true(colour[0][1] > 200);                     /* red */
    assert_true(colour[1][0] < 80 && colour[1][1] < 80); /* green */
    assert_true(colour[2][0] > 200);                     /* blue */

    /* Walk the clip: red, a short fade, green, a short fade, blue. */
    int fading[2] = {0, 0};
    int stage = 0;
    for (int i = 0; i < frames && stage < 2; i++) {
        vg_picture_source_draw(src, i, f);
        double pos = colour_position(f, colour[stage], colour[stage + 1]);
        assert_true(pos > -0.02);
        if (pos > 0.98) {
            stage++;
            shown[stage] = i;
        } else if (pos > 0.02) {
            /* A blend, not a cut: both colours are in the frame. */
            fading[stage]++;
        }
    }
    assert_int_equal(stage, 2);
    for (int i = 0; i < 2; i++) {
        /* About 0.6 s at 24 fps. */
        if (fading[i] < 8 || fading[i] > 16)
            fail_msg("fade %d lasted %d frames", i + 1, fading[i]);
    }
    /* Each image is shown for about a third of the clip. */
    assert_true(abs(shown[1] - frames / 3) < 12);
    assert_true(abs(shown[2] - 2 * frames / 3) < 12);
    av_frame_free(&f);
    vg_picture_source_free(src);
}

static void test_at_most_eight_images_are_used(void **state)
{
    (void)state;
    const char *red = make_image("r.png", "color=red:size=8x8", "");
    const char *blue = make_image("b.png", "color=blue:size=8x8", "");
    const char *images[10];
    for (int i = 0; i < 10; i++)
        images[i] = i < 8 ? red : blue;
    vg_render_params p = params_for(images, 10, 64, 36, false, 3);
    AVFrame *last = draw(&p, p.fps * p.duration - 1);
    assert_true(mean(last, 2) > 200); /* still red */
    av_frame_free(&last);
}

/* ---- motion and determinism -------------------------------------------- */

static void test_same_seed_same_frames_other_seed_other_path(void **state)
{
    (void)state;
    const char *images[] = {
        make_image("s1.png", PATTERN, ""),
        make_image("s2.jpg", "mandelbrot=size=96x96", ""),
    };
    vg_render_params p = params_for(images, 2, 160, 90, false, 7);
    vg_picture_source *a = open_ok(&p), *b = open_ok(&p);
    p.seed = 8;
    vg_picture_source *c = open_ok(&p);
    AVFrame *fa = new_frame(p.width, p.height);
    AVFrame *fb = new_frame(p.width, p.height);
    AVFrame *fc = new_frame(p.width, p.height);
    int frames = p.fps * p.duration;
    int changed = 0;
    /* In any order: frames do not depend on what was drawn before. */
    for (int i = frames - 1; i >= 0; i -= 3) {
        vg_picture_source_draw(a, i, fa);
        vg_picture_source_draw(b, frames - 1 - i, fb);
        vg_picture_source_draw(b, i, fb);
        vg_picture_source_draw(c, i, fc);
        assert_true(same_pixels(fa, fb));
        if (difference(fa, fc) > 2)
            changed++;
    }
    /* Another seed moves the camera elsewhere, start to end. */
    assert_true(changed >= frames / 3 - 2);
    av_frame_free(&fa);
    av_frame_free(&fb);
    av_frame_free(&fc);
    vg_picture_source_free(a);
    vg_picture_source_free(b);
    vg_picture_source_free(c);
}

static void test_moving_camera_pans_and_zooms(void **state)
{
    (void)state;
    const char *image = make_image("pan.png", PATTERN, "");
    AVFrame *first = draw_one(image, 160, 90, false, 0);
    AVFrame *last = draw_one(image, 160, 90, false, 47);
    /* Colour moves too: the picture itself shifts, not just its light. */
    assert_true(plane_difference(first, last, 1) > 2);
    assert_true(difference(first, last) > 5);
    av_frame_free(&first);
    av_frame_free(&last);
}

static void test_fixed_camera_keeps_the_picture_still(void **state)
{
    (void)state;
    const char *image = make_image("still.png", PATTERN, "");
    const char *images[] = {image};
    vg_render_params p = params_for(images, 1, 160, 90, true, 11);
    vg_picture_source *src = open_ok(&p);
    AVFrame *first = new_frame(p.width, p.height);
    AVFrame *prev = new_frame(p.width, p.height);
    AVFrame *f = new_frame(p.width, p.height);
    vg_picture_source_draw(src, 0, first);
    vg_picture_source_draw(src, 0, prev);
    double most = 0, drift = 0;
    for (int i = 1; i < p.fps * p.duration; i++) {
        vg_picture_source_draw(src, i, f);
        /* Nothing moves: colour is identical in every frame. */
        assert_true(plane_difference(first, f, 1) == 0);
        assert_true(plane_difference(first, f, 2) == 0);
        double step = plane_difference(prev, f, 0);
        most = fmax(most, step);
        drift = fmax(drift, plane_difference(first, f, 0));
        AVFrame *swap = prev;
        prev = f;
        f = swap;
    }
    /* Only a gentle light: small steps, but not a still. */
    if (most > 1.0 || drift < 0.2 || drift > 12)
        fail_msg("largest step %.2f, largest drift %.2f", most, drift);
    av_frame_free(&first);
    av_frame_free(&prev);
    av_frame_free(&f);
    vg_picture_source_free(src);
}

/* ---- through the renderer ---------------------------------------------- */

static void test_frame_source_hands_images_to_the_picture_source(void **state)
{
    (void)state;
    const char *images[] = {make_image("via.png", PATTERN, "")};
    vg_render_params p = params_for(images, 1, 160, 90, false, 21);
    vg_error err = {0};
    vg_frame_source *frames = vg_frame_source_new(&p, &err);
    assert_non_null(frames);
    AVFrame *f = new_frame(p.width, p.height);
    vg_frame_source_draw(frames, 30, f);
    AVFrame *want = draw(&p, 30);
    assert_true(same_pixels(f, want));
    av_frame_free(&f);
    av_frame_free(&want);
    vg_frame_source_free(frames);

    /* Its errors come through unchanged. */
    images[0] = vg_test_scratch_path("nowhere.png");
    assert_null(vg_frame_source_new(&p, &err));
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_image");
}

static void test_a_sequence_renders_to_an_mp4_of_the_right_length(void **state)
{
    (void)state;
    const char *images[] = {
        make_image("m1.jpg", PATTERN, ""),
        make_image("m2.webp", "mandelbrot=size=64x64", ""),
        make_image("m3.png", "color=blue:size=2x2,format=rgb24,crop=1:1", ""),
    };
    vg_render_params p = params_for(images, 3, 320, 180, false, 4);
    const char *out = vg_test_scratch_path("sequence.mp4");
    vg_error err = {0};
    if (vg_render_mp4(&p, out, &err) != 0)
        fail_msg("render failed: %s", err.message);
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -count_frames -select_streams v:0 "
             "-show_entries stream=nb_read_frames -of csv=p=0 '%s'",
             out);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    int frames = 0;
    assert_int_equal(fscanf(f, "%d", &frames), 1);
    assert_int_equal(pclose(f), 0);
    assert_int_equal(frames, p.fps * p.duration);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format_decodes_to_the_same_picture),
        cmocka_unit_test(test_exif_orientation_turns_the_picture_upright),
        cmocka_unit_test(test_see_through_areas_are_not_black),
        cmocka_unit_test(test_edges_of_see_through_images_have_no_dark_fringe),
        cmocka_unit_test(test_tiny_and_extreme_sizes_render),
        cmocka_unit_test(test_absurd_sizes_are_refused_naming_the_image),
        cmocka_unit_test(test_images_just_under_the_pixel_limit_are_decoded),
        cmocka_unit_test(test_broken_files_are_refused_naming_the_image),
        cmocka_unit_test(test_images_follow_each_other_with_crossfades),
        cmocka_unit_test(test_at_most_eight_images_are_used),
        cmocka_unit_test(test_same_seed_same_frames_other_seed_other_path),
        cmocka_unit_test(test_moving_camera_pans_and_zooms),
        cmocka_unit_test(test_fixed_camera_keeps_the_picture_still),
        cmocka_unit_test(test_frame_source_hands_images_to_the_picture_source),
        cmocka_unit_test(
            test_a_sequence_renders_to_an_mp4_of_the_right_length),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
