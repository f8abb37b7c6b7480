/*
 * test_render.c - the local renderer and the "local" provider, checked
 * from the outside: every clip is inspected with ffprobe (shape, frame
 * count, durations, codecs) and by reading its MP4 boxes, the way a
 * client or a browser would see it.
 *
 * Clips go to a fresh directory under $VG_TEST_TMP (or /tmp) that is
 * removed at the end. Clips are short and small so the suite stays fast
 * under AddressSanitizer.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/provider.h"
#include "render/render.h"
#include "test_support.h"

/* ---- helpers ----------------------------------------------------------- */

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool part_exists(const char *path)
{
    char part[PATH_MAX];
    snprintf(part, sizeof(part), "%s.part", path);
    return exists(part);
}

static vg_render_params clip(int width, int height, int fps, bool audio)
{
    vg_render_params p = {
        .prompt = "a paper boat drifting across a pond at dusk",
        .width = width,
        .height = height,
        .fps = fps,
        .duration = 4,
        .audio = audio,
        .camera_fixed = false,
        .seed = 1234,
    };
    return p;
}

static void render_ok(const vg_render_params *p, const char *path)
{
    vg_error err = {0};
    int ret = vg_render_mp4(p, path, &err);
    if (ret != 0)
        fail_msg("render failed: %d %s: %s", err.status, err.code,
                 err.message);
    assert_true(exists(path));
    assert_false(part_exists(path));
}

static json_t *probe(const char *path)
{
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -count_frames -print_format json "
             "-show_streams -show_format '%s'",
             path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    json_error_t jerr;
    json_t *info = json_loadf(f, 0, &jerr);
    int status = pclose(f);
    if (info == NULL || status != 0)
        fail_msg("ffprobe %s failed (%d): %s", path, status, jerr.text);
    return info;
}

static json_t *find_stream(json_t *info, const char *type)
{
    size_t i;
    json_t *stream;
    json_array_foreach(json_object_get(info, "streams"), i, stream)
    {
        const char *t =
            json_string_value(json_object_get(stream, "codec_type"));
        if (t != NULL && strcmp(t, type) == 0)
            return stream;
    }
    return NULL;
}

static const char *field(json_t *obj, const char *name)
{
    const char *v = json_string_value(json_object_get(obj, name));
    if (v == NULL)
        fail_msg("ffprobe gave no \"%s\"", name);
    return v;
}

static double number(json_t *obj, const char *name)
{
    return strtod(field(obj, name), NULL);
}

/* Positions of the top-level "moov" and "mdat" boxes, in file order. */
static void find_boxes(const char *path, long *moov, long *mdat)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    *moov = *mdat = -1;
    for (long index = 0;; index++) {
        unsigned char h[16];
        off_t at = ftello(f);
        if (fread(h, 1, 8, f) != 8)
            break;
        uint64_t size = (uint64_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
        unsigned header = 8;
        if (size == 1) {
            assert_int_equal(fread(h + 8, 1, 8, f), 8);
            size = 0;
            for (int i = 8; i < 16; i++)
                size = size << 8 | h[i];
            header = 16;
        }
        if (memcmp(h + 4, "moov", 4) == 0)
            *moov = index;
        if (memcmp(h + 4, "mdat", 4) == 0)
            *mdat = index;
        if (size == 0)
            break; /* the box runs to the end of the file */
        assert_true(size >= header);
        assert_int_equal(fseeko(f, at + (off_t)size, SEEK_SET), 0);
    }
    fclose(f);
}

static bool same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    assert_non_null(fa);
    assert_non_null(fb);
    bool same = true;
    for (;;) {
        int ca = getc(fa), cb = getc(fb);
        if (ca != cb) {
            same = false;
            break;
        }
        if (ca == EOF)
            break;
    }
    fclose(fa);
    fclose(fb);
    return same;
}

/* Everything the contract promises about a clip's shape. */
static void check_clip(const char *path, const vg_render_params *p)
{
    json_t *info = probe(path);
    double frame = 1.0 / p->fps;
    char rate[32];
    snprintf(rate, sizeof(rate), "%d/1", p->fps);
    long frames = (long)p->fps * p->duration;

    json_t *video = find_stream(info, "video");
    assert_non_null(video);
    assert_string_equal(field(video, "codec_name"), "h264");
    assert_string_equal(field(video, "pix_fmt"), "yuv420p");
    assert_string_equal(field(video, "profile"), "High");
    assert_int_equal(json_integer_value(json_object_get(video, "width")),
                     p->width);
    assert_int_equal(json_integer_value(json_object_get(video, "height")),
                     p->height);
    assert_string_equal(field(video, "avg_frame_rate"), rate);
    assert_int_equal(strtol(field(video, "nb_frames"), NULL, 10), frames);
    assert_int_equal(strtol(field(video, "nb_read_frames"), NULL, 10), frames);
    assert_true(fabs(number(video, "duration") - p->duration) <= frame);

    json_t *audio = find_stream(info, "audio");
    if (p->audio) {
        assert_non_null(audio);
        assert_string_equal(field(audio, "codec_name"), "aac");
        assert_string_equal(field(audio, "sample_rate"), "48000");
        assert_true(fabs(number(audio, "duration") - p->duration) <= frame);
    } else {
        assert_null(audio);
    }
    json_t *format = json_object_get(info, "format");
    assert_true(fabs(number(format, "duration") - p->duration) <= frame);
    json_decref(info);

    long moov, mdat;
    find_boxes(path, &moov, &mdat);
    assert_true(moov >= 0);
    assert_true(mdat >= 0);
    assert_true(moov < mdat);
}

/* ---- the clip's shape -------------------------------------------------- */

static void test_video_has_the_requested_shape(void **state)
{
    (void)state;
    vg_render_params p = clip(480, 480, 24, false);
    const char *out = vg_test_scratch_path("square.mp4");
    render_ok(&p, out);
    check_clip(out, &p);
}

static void test_audio_track_is_as_long_as_the_video(void **state)
{
    (void)state;
    vg_render_params p = clip(854, 480, 30, true);
    const char *out = vg_test_scratch_path("wide_audio.mp4");
    render_ok(&p, out);
    check_clip(out, &p);
}

static void test_fixed_camera_portrait_at_25_fps(void **state)
{
    (void)state;
    /* 25 fps: 1920 samples per frame, a partial last AAC frame. */
    vg_render_params p = clip(480, 854, 25, true);
    p.camera_fixed = true;
    const char *out = vg_test_scratch_path("portrait.mp4");
    render_ok(&p, out);
    check_clip(out, &p);
}

/* ---- determinism ------------------------------------------------------- */

static void test_same_seed_gives_identical_bytes(void **state)
{
    (void)state;
    vg_render_params p = clip(320, 240, 24, true);
    p.seed = 7;
    const char *a = vg_test_scratch_path("seed7a.mp4"),
               *b = vg_test_scratch_path("seed7b.mp4");
    render_ok(&p, a);
    render_ok(&p, b);
    assert_true(same_bytes(a, b));
}

/* A server renders in a process whose heap holds whatever came before;
 * glibc's M_PERTURB fills each allocation with a pattern, the way such
 * left-overs would. (x264's AVX-512 code read memory it never wrote, and
 * the same seed gave other bytes.) */
static void test_same_seed_whatever_the_heap_held(void **state)
{
    (void)state;
    static const int patterns[] = {1, 7, 85};
    char paths[3][PATH_MAX];
    for (int i = 0; i < 3; i++) {
        vg_render_params p = clip(480, 480, 24, false);
        p.seed = 7;
        char name[32];
        snprintf(name, sizeof(name), "heap%d.mp4", i);
        snprintf(paths[i], sizeof(paths[i]), "%s", vg_test_scratch_path(name));
        mallopt(M_PERTURB, patterns[i]);
        vg_error err = {0};
        int ret = vg_render_mp4(&p, paths[i], &err);
        mallopt(M_PERTURB, 0);
        if (ret != 0)
            fail_msg("render failed: %s", err.message);
        if (i > 0)
            assert_true(same_bytes(paths[0], paths[i]));
    }
}

static void test_different_seed_gives_different_bytes(void **state)
{
    (void)state;
    vg_render_params p = clip(320, 240, 24, false);
    p.seed = 7;
    const char *a = vg_test_scratch_path("seed7c.mp4"),
               *b = vg_test_scratch_path("seed8.mp4");
    render_ok(&p, a);
    p.seed = 8;
    render_ok(&p, b);
    assert_false(same_bytes(a, b));
}

/* ---- progress and cancellation ----------------------------------------- */

typedef struct progress_log {
    atomic_int *cancel;
    int cancel_after; /* frames; 0: never */
    int calls;
    int last_done, last_total;
    bool went_back;
} progress_log;

static void record_progress(void *opaque, int done, int total)
{
    progress_log *log = opaque;
    if (done < log->last_done)
        log->went_back = true;
    log->calls++;
    log->last_done = done;
    log->last_total = total;
    if (log->cancel_after > 0 && done >= log->cancel_after)
        atomic_store(log->cancel, 1);
}

static void test_progress_ends_at_the_total(void **state)
{
    (void)state;
    atomic_int cancel = 0;
    progress_log log = {.cancel = &cancel};
    vg_render_params p = clip(320, 240, 24, false);
    p.cancel = &cancel;
    p.progress = record_progress;
    p.opaque = &log;
    render_ok(&p, vg_test_scratch_path("progress.mp4"));
    assert_true(log.calls >= 2);
    assert_false(log.went_back);
    assert_int_equal(log.last_done, 96);
    assert_int_equal(log.last_total, 96);
}

static void test_cancel_leaves_no_file(void **state)
{
    (void)state;
    atomic_int cancel = 0;
    progress_log log = {.cancel = &cancel, .cancel_after = 10};
    vg_render_params p = clip(320, 240, 24, true);
    p.cancel = &cancel;
    p.progress = record_progress;
    p.opaque = &log;
    const char *out = vg_test_scratch_path("cancelled.mp4");
    vg_error err = {0};
    assert_int_equal(vg_render_mp4(&p, out, &err), -1);
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "cancelled");
    assert_string_equal(err.message, "render cancelled");
    assert_true(log.last_done < 96);
    assert_false(exists(out));
    assert_false(part_exists(out));
}

/* ---- reference images -------------------------------------------------- */

static void make_png(const char *path)
{
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=64x48 "
             "-frames:v 1 '%s'",
             path);
    assert_int_equal(system(cmd), 0);
}

static void test_png_image_is_panned_over(void **state)
{
    (void)state;
    const char *png = vg_test_scratch_path("x.png");
    make_png(png);
    const char *images[] = {png};
    vg_render_params p = clip(480, 480, 24, false);
    p.images = images;
    p.n_images = 1;
    const char *out = vg_test_scratch_path("from_png.mp4");
    render_ok(&p, out);
    check_clip(out, &p);

    /* The same image with the camera held still, into a wide frame. */
    p = clip(854, 480, 24, true);
    p.images = images;
    p.n_images = 1;
    p.camera_fixed = true;
    out = vg_test_scratch_path("from_png_fixed.mp4");
    render_ok(&p, out);
    check_clip(out, &p);
}

static void expect_invalid_image(const char *image, const char *out)
{
    const char *images[] = {image};
    vg_render_params p = clip(480, 480, 24, false);
    p.images = images;
    p.n_images = 1;
    vg_error err = {0};
    assert_int_equal(vg_render_mp4(&p, out, &err), -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_image");
    assert_string_equal(err.field, "files");
    assert_true(strlen(err.message) > 0);
    assert_false(exists(out));
    assert_false(part_exists(out));
}

static void test_broken_image_is_422(void **state)
{
    (void)state;
    /* A PNG signature followed by garbage: sniffed as PNG, undecodable. */
    static const unsigned char broken[] = {0x89, 'P',  'N', 'G', '\r', '\n',
                                           0x1a, '\n', 0,   0,   0,    13,
                                           'I',  'H',  'D', 'R', 1,    2};
    const char *bad = vg_test_scratch_path("broken.png");
    vg_test_write_file(bad, broken, sizeof(broken));
    /* A stale clip of the same name must not survive a failed render. */
    const char *out = vg_test_scratch_path("broken.mp4");
    vg_test_write_file(out, "old", 3);
    expect_invalid_image(bad, out);

    const char *text = vg_test_scratch_path("text.png");
    vg_test_write_file(text, "not an image at all\n", 20);
    expect_invalid_image(text, vg_test_scratch_path("text.mp4"));

    expect_invalid_image(vg_test_scratch_path("missing.png"),
                         vg_test_scratch_path("missing.mp4"));
}

/* ---- failures ---------------------------------------------------------- */

static void test_bad_parameters_fail_cleanly(void **state)
{
    (void)state;
    const char *out = vg_test_scratch_path("odd.mp4");
    vg_render_params p = clip(481, 480, 24, false);
    vg_error err = {0};
    assert_int_equal(vg_render_mp4(&p, out, &err), -1);
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "render_failed");
    assert_false(exists(out));

    p = clip(480, 480, 0, false);
    assert_int_equal(vg_render_mp4(&p, out, &err), -1);
    assert_string_equal(err.code, "render_failed");
    assert_false(exists(out));
}

static void test_unwritable_path_is_render_failed(void **state)
{
    (void)state;
    const char *out = vg_test_scratch_path("no/such/dir/clip.mp4");
    vg_render_params p = clip(320, 240, 24, true);
    vg_error err = {0};
    assert_int_equal(vg_render_mp4(&p, out, &err), -1);
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "render_failed");
    assert_non_null(strstr(err.message, "no/such/dir"));
    assert_false(exists(out));
}

/* ---- the local provider ------------------------------------------------ */

/* What the provider sends its sink. */
typedef struct event_log {
    vg_provider_event *events[256];
    int n;
} event_log;

static void log_event(void *ctx, vg_provider_event *ev)
{
    event_log *log = ctx;
    if (log->n < 256)
        log->events[log->n++] = ev;
    else
        vg_provider_event_free(ev);
}

static void clear_log(event_log *log)
{
    for (int i = 0; i < log->n; i++)
        vg_provider_event_free(log->events[i]);
    log->n = 0;
}

/* The local provider as the app builds it (no configuration: local
 * only), results in the scratch folder. */
static vg_provider *local_provider(event_log *log)
{
    vg_provider *built[VG_MAX_PROVIDERS];
    int n = 0;
    vg_error err = {0};
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", vg_test_scratch_path("x"));
    *strrchr(dir, '/') = '\0';
    if (vg_providers_build(NULL, 0, 1, dir, built, &n, &err) != 0)
        fail_msg("%s", err.message);
    assert_int_equal(n, 1);
    vg_provider *p = built[0];
    assert_string_equal(p->name, "local");
    assert_false(p->remote);
    assert_int_equal(p->concurrency, 1);
    assert_true(p->ops->available(p));
    p->sink = (vg_provider_sink){log_event, log};
    return p;
}

/* Runs a job on the local provider: it renders on this thread, sending
 * its progress and then its end before start returns. */
static void run_local(vg_provider *provider, const char *id,
                      const char *prompt, atomic_int *cancel, event_log *log)
{
    vg_job_spec spec = {
        .prompt = prompt,
        .width = 320,
        .height = 180,
        .duration = 4,
        .fps = 12,
        .generate_audio = true,
        .camera_fixed = false,
        .seed = 99,
    };
    vg_provider_job job = {id, &spec, NULL, 0, cancel};
    vg_error err = {0};
    if (provider->ops->start(provider, &job, &err) != 0)
        fail_msg("local provider refused: %s: %s", err.code, err.message);
    assert_true(log->n >= 1);
}

static void test_local_provider_renders_and_counts_tokens(void **state)
{
    (void)state;
    event_log log = {.n = 0};
    vg_provider *provider = local_provider(&log);
    atomic_int cancel = 0;

    /* 14 code points (20 bytes): ceil(14 / 4) = 4 tokens. */
    run_local(provider, "job-1",
              "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\xa8\xe2\x9c\xa8", &cancel,
              &log);
    /* Progress rises to 99 (100 is the job engine's: stored), then the
     * end: a video the provider vouches for. */
    int last = 0;
    for (int i = 0; i < log.n - 1; i++) {
        assert_int_equal(log.events[i]->kind, VG_EVENT_PROGRESS);
        assert_string_equal(log.events[i]->job_id, "job-1");
        assert_true(log.events[i]->progress > last);
        last = log.events[i]->progress;
    }
    assert_int_equal(last, 99);
    vg_provider_event *done = log.events[log.n - 1];
    assert_int_equal(done->kind, VG_EVENT_DONE);
    assert_string_equal(done->provider, "local");
    assert_true(done->verified);
    assert_int_equal(done->total_tokens, 4);
    assert_int_equal(done->completion_tokens, 0);
    assert_string_equal(done->file, vg_test_scratch_path("job-1.mp4"));
    vg_render_params expected = clip(320, 180, 12, true);
    check_clip(done->file, &expected);
    clear_log(&log);

    /* Never fewer than one token. */
    run_local(provider, "job-2", "", &cancel, &log);
    assert_int_equal(log.events[log.n - 1]->kind, VG_EVENT_DONE);
    assert_int_equal(log.events[log.n - 1]->total_tokens, 1);
    clear_log(&log);
    provider->ops->destroy(provider);
}

static void test_local_provider_reports_a_cancel_as_its_end(void **state)
{
    (void)state;
    event_log log = {.n = 0};
    vg_provider *provider = local_provider(&log);
    atomic_int cancel = 1;
    run_local(provider, "job-3", "a cancelled boat", &cancel, &log);
    vg_provider_event *end = log.events[log.n - 1];
    assert_int_equal(end->kind, VG_EVENT_FAILED);
    assert_string_equal(end->error.code, "cancelled");
    assert_false(exists(vg_test_scratch_path("job-3.mp4")));
    clear_log(&log);
    provider->ops->destroy(provider);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_video_has_the_requested_shape),
        cmocka_unit_test(test_audio_track_is_as_long_as_the_video),
        cmocka_unit_test(test_fixed_camera_portrait_at_25_fps),
        cmocka_unit_test(test_same_seed_gives_identical_bytes),
        cmocka_unit_test(test_same_seed_whatever_the_heap_held),
        cmocka_unit_test(test_different_seed_gives_different_bytes),
        cmocka_unit_test(test_progress_ends_at_the_total),
        cmocka_unit_test(test_cancel_leaves_no_file),
        cmocka_unit_test(test_png_image_is_panned_over),
        cmocka_unit_test(test_broken_image_is_422),
        cmocka_unit_test(test_bad_parameters_fail_cleanly),
        cmocka_unit_test(test_unwritable_path_is_render_failed),
        cmocka_unit_test(test_local_provider_renders_and_counts_tokens),
        cmocka_unit_test(test_local_provider_reports_a_cancel_as_its_end),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
