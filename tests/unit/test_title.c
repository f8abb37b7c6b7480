/*
 * test_title.c - the prompt drawn as a title (render/title.c) and the
 * text-to-video frames that carry it (render/frames.c): it fits every
 * aspect ratio at every size, whatever the script or the length of the
 * prompt; it is visible; it moves only as the camera allows; equal
 * parameters give equal pixels.
 *
 * Everything is checked on YUV frames in memory; no clip is encoded.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/frame.h>

#include "render/frames.h"
#include "render/title.h"

/* The six aspect ratios at 480P and at 1080P, as the catalog has them. */
static const int sizes[][2] = {
    {854, 480},   {480, 854},   {480, 480},   {640, 480},
    {480, 640},   {1120, 480},  {1920, 1080}, {1080, 1920},
    {1080, 1080}, {1440, 1080}, {1080, 1440}, {2520, 1080},
};
#define N_SIZES (int)(sizeof(sizes) / sizeof(sizes[0]))

static const char *const short_prompt =
    "a paper boat drifting across a pond at dusk";
static const char *const cjk_prompt =
    "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab\xe5\x9c\xa8\xe8\x88\x92\xe9\x80\x82"
    "\xe7\x9a\x84\xe5\x8e\xa8\xe6\x88\xbf\xe9\x87\x8c\xe5\x96\x9d\xe7\x89\x9b"
    "\xe5\xa5\xb6"; /* 一只猫在舒适的厨房里喝牛奶 */
static const char *const arabic_prompt =
    "\xd9\x82\xd8\xb7\xd8\xa9 \xd8\xaa\xd8\xb4\xd8\xb1\xd8\xa8 "
    "\xd8\xa7\xd9\x84\xd8\xad\xd9\x84\xd9\x8a\xd8\xa8 \xd9\x81\xd9\x8a "
    "\xd9\x85\xd8\xb7\xd8\xa8\xd8\xae \xd8\xaf\xd8\xa7\xd9\x81\xd8\xa6";
/* قطة تشرب الحليب في مطبخ دافئ */
static const char *const emoji_prompt =
    "\xf0\x9f\x90\xb1\xf0\x9f\xa5\x9b cat"; /* 🐱🥛 cat */

static char long_prompt[2001];

static int make_long_prompt(void **state)
{
    (void)state;
    /* 2000 characters of ordinary words, the request layer's default
     * limit. */
    static const char words[] = "the quick brown fox jumps over the lazy "
                                "dog near a quiet river at sunset ";
    for (size_t i = 0; i < 2000; i++)
        long_prompt[i] = words[i % (sizeof(words) - 1)];
    long_prompt[2000] = '\0';
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static vg_title_params title_params(const char *text, int w, int h)
{
    vg_title_params p = {
        .text = text,
        .width = w,
        .height = h,
        .fps = 24,
        .frames = 24 * 5,
        .camera_fixed = false,
        .seed = 99,
        /* A pan as large as frames.c ever makes: 0.3 frame heights. */
        .pan_x = 0.25f * (float)h,
        .pan_y = -0.15f * (float)h,
        .light = {0.95f, 0.8f, 0.5f},
        .dark = {0.2f, 0.05f, 0.25f},
    };
    return p;
}

static vg_title *new_title(const vg_title_params *p)
{
    vg_error err = {0};
    vg_title *t = vg_title_new(p, &err);
    if (t == NULL)
        fail_msg("vg_title_new: %d %s: %s", err.status, err.code, err.message);
    return t;
}

static AVFrame *new_frame(int w, int h)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->format = AV_PIX_FMT_YUV420P;
    f->width = w;
    f->height = h;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    return f;
}

/* A frame of mid-grey with a luma ramp, like a calm background. */
static void fill_background(AVFrame *f)
{
    for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++)
            f->data[0][y * f->linesize[0] + x] =
                (uint8_t)(60 + 100 * x / f->width);
    for (int k = 1; k <= 2; k++)
        for (int y = 0; y < f->height / 2; y++)
            memset(f->data[k] + y * f->linesize[k], k == 1 ? 120 : 136,
                   (size_t)f->width / 2);
}

static bool same_planes(const AVFrame *a, const AVFrame *b)
{
    for (int k = 0; k < 3; k++) {
        int w = k ? a->width / 2 : a->width, h = k ? a->height / 2 : a->height;
        for (int y = 0; y < h; y++)
            if (memcmp(a->data[k] + y * a->linesize[k],
                       b->data[k] + y * b->linesize[k], (size_t)w) != 0)
                return false;
    }
    return true;
}

/* Mean absolute luma difference between two frames inside a box. */
static double luma_difference(const AVFrame *a, const AVFrame *b,
                              vg_title_rect r)
{
    double total = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++)
            total += abs(a->data[0][y * a->linesize[0] + x] -
                         b->data[0][y * b->linesize[0] + x]);
    return total / ((double)r.w * r.h);
}

/* Mean absolute horizontal luma step inside a box: text has sharp edges,
 * the gradients behind it almost none. */
static double edge_energy(const AVFrame *f, vg_title_rect r)
{
    double total = 0;
    for (int y = r.y; y < r.y + r.h; y++) {
        const uint8_t *row = f->data[0] + y * f->linesize[0];
        for (int x = r.x; x < r.x + r.w - 1; x++)
            total += abs(row[x + 1] - row[x]);
    }
    return total / ((double)(r.w - 1) * r.h);
}

static void assert_inside_safe_area(vg_title_rect box, int w, int h,
                                    const char *what)
{
    double mx = VG_TITLE_SAFE_MARGIN * w, my = VG_TITLE_SAFE_MARGIN * h;
    if (box.w <= 0 || box.h <= 0 || box.x < mx || box.y < my ||
        box.x + box.w > w - mx || box.y + box.h > h - my)
        fail_msg("%s at %dx%d: box %d,%d %dx%d leaves the safe area", what, w,
                 h, box.x, box.y, box.w, box.h);
}

/* ---- layout ------------------------------------------------------------ */

/* Every prompt at every size: some ink, every character in a font, and
 * on every frame the whole box (shadow included) inside the safe area,
 * whether the camera moves or not. */
static void check_prompt_everywhere(const char *prompt, const char *what)
{
    for (int i = 0; i < N_SIZES; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        for (int fixed = 0; fixed <= 1; fixed++) {
            vg_title_params p = title_params(prompt, w, h);
            p.camera_fixed = fixed;
            vg_title *t = new_title(&p);
            vg_title_info info;
            vg_title_describe(t, &info);
            if (info.ink == 0 || info.unknown_glyphs != 0 || info.lines < 1)
                fail_msg("%s at %dx%d: ink %llu, %d unknown glyphs, %d "
                         "lines",
                         what, w, h, (unsigned long long)info.ink,
                         info.unknown_glyphs, info.lines);
            /* The layout box at rest keeps the wider layout margin. */
            vg_title_rect rest = info.at_rest;
            assert_true(rest.x >= VG_TITLE_LAYOUT_MARGIN * w);
            assert_true(rest.y >= VG_TITLE_LAYOUT_MARGIN * h);
            assert_true(rest.x + rest.w <= (1 - VG_TITLE_LAYOUT_MARGIN) * w);
            assert_true(rest.y + rest.h <= (1 - VG_TITLE_LAYOUT_MARGIN) * h);
            for (int f = 0; f < p.frames; f++)
                assert_inside_safe_area(vg_title_box(t, f), w, h, what);
            vg_title_free(t);
        }
    }
}

static void test_short_prompt_fits_every_aspect_ratio(void **state)
{
    (void)state;
    check_prompt_everywhere(short_prompt, "short prompt");
}

static void test_long_prompt_fits_every_aspect_ratio(void **state)
{
    (void)state;
    check_prompt_everywhere(long_prompt, "2000-character prompt");
}

static void test_cjk_prompt_fits_every_aspect_ratio(void **state)
{
    (void)state;
    check_prompt_everywhere(cjk_prompt, "CJK prompt");
}

static void test_arabic_prompt_fits_every_aspect_ratio(void **state)
{
    (void)state;
    check_prompt_everywhere(arabic_prompt, "Arabic prompt");
}

static void test_emoji_prompt_fits_every_aspect_ratio(void **state)
{
    (void)state;
    check_prompt_everywhere(emoji_prompt, "emoji prompt");
}

static void test_long_prompt_is_ellipsized_not_cut_off(void **state)
{
    (void)state;
    /* Twice the default prompt limit fits no frame, even at the smallest
     * size. */
    static char longest[4001];
    snprintf(longest, sizeof(longest), "%s%s", long_prompt, long_prompt);
    for (int i = 0; i < N_SIZES; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        int short_side = w < h ? w : h;
        vg_title_params p = title_params(short_prompt, w, h);
        vg_title_info shorter, longer, too_long;
        vg_title *t = new_title(&p);
        vg_title_describe(t, &shorter);
        vg_title_free(t);
        p.text = long_prompt;
        t = new_title(&p);
        vg_title_describe(t, &longer);
        vg_title_free(t);
        p.text = longest;
        t = new_title(&p);
        vg_title_describe(t, &too_long);
        vg_title_free(t);

        assert_false(shorter.ellipsized);
        /* 2000 characters are small text; they only fit whole in the
         * widest frames. */
        assert_true(longer.font_px < shorter.font_px / 2);
        assert_true(longer.lines > shorter.lines);
        if (w * 2 < h * 3)
            assert_true(longer.ellipsized);
        /* Ellipsized at the smallest readable size, never below. */
        assert_true(too_long.ellipsized);
        assert_true(fabs(too_long.font_px - fmax(0.028 * short_side, 9.0)) <
                    1e-6);
    }
}

static void test_whitespace_and_broken_text_degrade_cleanly(void **state)
{
    (void)state;
    /* Only spaces and breaks: no title at all. */
    vg_title_params p = title_params(" \n\t\r\n  ", 854, 480);
    vg_title *t = new_title(&p);
    assert_int_equal(vg_title_box(t, 50).w, 0);
    AVFrame *a = new_frame(854, 480), *b = new_frame(854, 480);
    fill_background(a);
    fill_background(b);
    vg_title_draw(t, 50, b);
    assert_true(same_planes(a, b));
    vg_title_free(t);

    /* Invalid UTF-8 and controls still give a title; line breaks are
     * spaces (one paragraph, so the ellipsis can count its lines). */
    p.text = "caf\xc3 \xff\xfe broken\x01 bytes";
    t = new_title(&p);
    vg_title_info info;
    vg_title_describe(t, &info);
    assert_true(info.ink > 0);
    vg_title_free(t);
    p.text = "one\ntwo\r\nthree";
    t = new_title(&p);
    vg_title_describe(t, &info);
    assert_int_equal(info.lines, 1);
    vg_title_free(t);

    /* A frame too small for readable text draws nothing. */
    p = title_params(short_prompt, 16, 16);
    t = new_title(&p);
    assert_int_equal(vg_title_box(t, 0).w, 0);
    vg_title_free(t);
    av_frame_free(&a);
    av_frame_free(&b);
}

/* ---- pixels ------------------------------------------------------------ */

static void test_title_is_visible_over_the_background(void **state)
{
    (void)state;
    for (int i = 0; i < N_SIZES; i += 5) {
        int w = sizes[i][0], h = sizes[i][1];
        vg_title_params p = title_params(short_prompt, w, h);
        vg_title *t = new_title(&p);
        AVFrame *plain = new_frame(w, h), *titled = new_frame(w, h);
        fill_background(plain);
        fill_background(titled);
        int last = p.frames - 1;
        vg_title_draw(t, last, titled);
        vg_title_rect box = vg_title_box(t, last);
        double diff = luma_difference(plain, titled, box);
        double edges = edge_energy(titled, box);
        double plain_edges = edge_energy(plain, box);
        if (diff < 20 || edges < 10 * plain_edges + 2)
            fail_msg("%dx%d: title region differs by %.1f, edges %.1f vs "
                     "%.1f",
                     w, h, diff, edges, plain_edges);
        /* Nothing outside the box changes. */
        vg_title_rect rest[] = {
            {0, 0, w, box.y},
            {0, box.y + box.h, w, h - box.y - box.h},
            {0, box.y, box.x, box.h},
            {box.x + box.w, box.y, w - box.x - box.w, box.h},
        };
        for (int k = 0; k < 4; k++)
            if (rest[k].w > 0 && rest[k].h > 0)
                assert_true(luma_difference(plain, titled, rest[k]) == 0);
        av_frame_free(&plain);
        av_frame_free(&titled);
        vg_title_free(t);
    }
}

static void test_title_fades_in(void **state)
{
    (void)state;
    vg_title_params p = title_params(short_prompt, 640, 480);
    vg_title *t = new_title(&p);
    AVFrame *plain = new_frame(640, 480), *f = new_frame(640, 480);
    fill_background(plain);
    double previous = -1;
    /* Invisible at the first frame, then ever stronger until it has
     * arrived (within the first 0.8 s). */
    for (int i = 0; i <= 20; i += 4) {
        fill_background(f);
        vg_title_draw(t, i, f);
        vg_title_rect box = vg_title_box(t, i);
        double diff = luma_difference(plain, f, box);
        if (i == 0)
            assert_true(diff == 0);
        else
            assert_true(diff > previous);
        previous = diff;
    }
    av_frame_free(&plain);
    av_frame_free(&f);
    vg_title_free(t);
}

static void test_camera_fixed_decides_whether_the_title_moves(void **state)
{
    (void)state;
    for (int fixed = 0; fixed <= 1; fixed++) {
        vg_title_params p = title_params(short_prompt, 1280, 720);
        p.camera_fixed = fixed;
        vg_title *t = new_title(&p);
        vg_title_rect first = vg_title_box(t, 0);
        vg_title_rect arrived = vg_title_box(t, 24);
        vg_title_rect last = vg_title_box(t, p.frames - 1);
        bool moved = first.x != last.x || first.y != last.y;
        bool moved_late = arrived.x != last.x || arrived.y != last.y;
        assert_int_equal(moved, !fixed);
        assert_int_equal(moved_late, !fixed);
        vg_title_free(t);
    }
}

static void test_same_seed_gives_identical_planes(void **state)
{
    (void)state;
    vg_title_params p = title_params(arabic_prompt, 854, 480);
    vg_title *a = new_title(&p), *b = new_title(&p);
    AVFrame *fa = new_frame(854, 480), *fb = new_frame(854, 480);
    for (int i = 0; i < p.frames; i += 7) {
        fill_background(fa);
        fill_background(fb);
        vg_title_draw(a, i, fa);
        vg_title_draw(b, i, fb);
        assert_true(same_planes(fa, fb));
    }
    av_frame_free(&fa);
    av_frame_free(&fb);
    vg_title_free(a);
    vg_title_free(b);
}

/* ---- text-to-video frames ---------------------------------------------- */

static vg_render_params scene_params(const char *prompt, int w, int h)
{
    vg_render_params p = {
        .prompt = prompt,
        .width = w,
        .height = h,
        .fps = 24,
        .duration = 4,
        .camera_fixed = true,
        .seed = 5,
    };
    return p;
}

/* The check: a frame of the clip shows the title region is not
 * blank. Frame 0 is the same scene before the title has faded in. */
static void test_text_to_video_frames_carry_the_title(void **state)
{
    (void)state;
    static const int shapes[][2] = {{854, 480}, {480, 854}};
    for (int i = 0; i < 2; i++) {
        int w = shapes[i][0], h = shapes[i][1];
        vg_render_params p = scene_params("A LIGHTHOUSE AT DUSK", w, h);
        vg_error err = {0};
        vg_frame_source *src = vg_frame_source_new(&p, &err);
        assert_non_null(src);
        AVFrame *before = new_frame(w, h), *after = new_frame(w, h);
        vg_frame_source_draw(src, 0, before);
        vg_frame_source_draw(src, 3 * 24, after);
        /* The middle band the integration test looks at. */
        vg_title_rect band = {w / 10, h / 3, w - 2 * (w / 10), h / 3};
        double titled = edge_energy(after, band);
        double plain = edge_energy(before, band);
        if (titled < 4 || titled < 5 * plain)
            fail_msg("%dx%d: edge energy %.2f with the title, %.2f "
                     "before",
                     w, h, titled, plain);
        assert_true(luma_difference(before, after, band) > 10);
        av_frame_free(&before);
        av_frame_free(&after);
        vg_frame_source_free(src);
    }
}

static void test_text_to_video_frames_are_deterministic(void **state)
{
    (void)state;
    vg_render_params p = scene_params(emoji_prompt, 480, 854);
    p.camera_fixed = false;
    vg_error err = {0};
    vg_frame_source *a = vg_frame_source_new(&p, &err);
    vg_frame_source *b = vg_frame_source_new(&p, &err);
    assert_non_null(a);
    assert_non_null(b);
    AVFrame *fa = new_frame(480, 854), *fb = new_frame(480, 854);
    for (int i = 0; i < 96; i += 19) {
        vg_frame_source_draw(a, i, fa);
        vg_frame_source_draw(b, i, fb);
        assert_true(same_planes(fa, fb));
    }
    av_frame_free(&fa);
    av_frame_free(&fb);
    vg_frame_source_free(a);
    vg_frame_source_free(b);
}

static int teardown_fonts(void **state)
{
    (void)state;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_prompt_fits_every_aspect_ratio),
        cmocka_unit_test(test_long_prompt_fits_every_aspect_ratio),
        cmocka_unit_test(test_cjk_prompt_fits_every_aspect_ratio),
        cmocka_unit_test(test_arabic_prompt_fits_every_aspect_ratio),
        cmocka_unit_test(test_emoji_prompt_fits_every_aspect_ratio),
        cmocka_unit_test(test_long_prompt_is_ellipsized_not_cut_off),
        cmocka_unit_test(test_whitespace_and_broken_text_degrade_cleanly),
        cmocka_unit_test(test_title_is_visible_over_the_background),
        cmocka_unit_test(test_title_fades_in),
        cmocka_unit_test(test_camera_fixed_decides_whether_the_title_moves),
        cmocka_unit_test(test_same_seed_gives_identical_planes),
        cmocka_unit_test(test_text_to_video_frames_carry_the_title),
        cmocka_unit_test(test_text_to_video_frames_are_deterministic),
    };
    return cmocka_run_group_tests(tests, make_long_prompt, teardown_fonts);
}
