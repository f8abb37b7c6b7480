/*
 * test_mp4.c - the checks vidgate runs on MP4 files downloaded from
 * upstream providers (vg_mp4_inspect) and the audio-stripping remux
 * (vg_mp4_strip_audio), on real clips from the local renderer.
 *
 * One short clip with audio is rendered for the whole suite; every test
 * derives its files from it in the suite's scratch directory, which is
 * removed at the end. Packets are counted with libavformat directly, so
 * the remux is judged by what a player would read, not by the module's
 * own report.
 */
#include <errno.h>
#include <limits.h>
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

#include <libavformat/avformat.h>

#include "media/mp4.h"
#include "render/render.h"
#include "test_support.h"

#define WIDTH 320
#define HEIGHT 180
#define FPS 12
#define SECONDS 2

static const char *clip_path; /* rendered once, with audio; read-only */

/* ---- helpers ----------------------------------------------------------- */

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

static void inspect_ok(const char *path, vg_mp4_info *info)
{
    vg_error err = {0};
    if (vg_mp4_inspect(path, info, &err) != 0)
        fail_msg("inspect %s: %d %s: %s", path, err.status, err.code,
                 err.message);
}

static void strip_ok(const char *in, const char *out)
{
    vg_error err = {0};
    if (vg_mp4_strip_audio(in, out, &err) != 0)
        fail_msg("strip %s: %d %s: %s", in, err.status, err.code, err.message);
}

/* Expects inspect to refuse path as a bad upstream video whose message
 * holds needle. */
static void expect_refused(const char *path, const char *needle)
{
    vg_error err = {0};
    vg_mp4_info info;
    assert_int_equal(vg_mp4_inspect(path, &info, &err), -1);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.code, "upstream_bad_video");
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
}

/* Packets per media type, as libavformat reads them. */
typedef struct packet_count {
    int video, audio, other;
} packet_count;

static packet_count count_packets(const char *path)
{
    packet_count c = {0};
    AVFormatContext *fc = NULL;
    assert_int_equal(avformat_open_input(&fc, path, NULL, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    assert_non_null(pkt);
    while (av_read_frame(fc, pkt) >= 0) {
        switch (fc->streams[pkt->stream_index]->codecpar->codec_type) {
        case AVMEDIA_TYPE_VIDEO:
            c.video++;
            break;
        case AVMEDIA_TYPE_AUDIO:
            c.audio++;
            break;
        default:
            c.other++;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&fc);
    return c;
}

/* Index of the top-level box `type` in file order, or -1. */
static long box_index(const char *path, const char *type)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    long found = -1;
    for (long index = 0; found < 0; index++) {
        unsigned char h[16];
        off_t at = ftello(f);
        if (fread(h, 1, 8, f) != 8)
            break;
        uint64_t size = (uint64_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
        if (size == 1) {
            assert_int_equal(fread(h + 8, 1, 8, f), 8);
            size = 0;
            for (int i = 8; i < 16; i++)
                size = size << 8 | h[i];
        }
        if (memcmp(h + 4, type, 4) == 0)
            found = index;
        if (size < 8)
            break;
        assert_int_equal(fseeko(f, at + (off_t)size, SEEK_SET), 0);
    }
    fclose(f);
    return found;
}

/* Copies the first `n` bytes of `from` to `to`. */
static void copy_prefix(const char *from, const char *to, int64_t n)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
    fclose(in);
    vg_test_write_file(to, buf, (size_t)n);
    free(buf);
}

static int setup_suite(void **state)
{
    if (vg_test_scratch_setup(state) != 0)
        return -1;
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", vg_test_scratch_path("clip.mp4"));
    vg_render_params p = {
        .prompt = "a lighthouse blinking in the fog",
        .width = WIDTH,
        .height = HEIGHT,
        .fps = FPS,
        .duration = SECONDS,
        .audio = true,
        .seed = 7,
    };
    vg_error err = {0};
    if (vg_render_mp4(&p, path, &err) != 0) {
        fprintf(stderr, "render failed: %s\n", err.message);
        return -1;
    }
    clip_path = path;
    return 0;
}

/* ---- inspecting -------------------------------------------------------- */

static void test_inspect_reports_the_clip(void **state)
{
    (void)state;
    vg_mp4_info info;
    inspect_ok(clip_path, &info);
    assert_int_equal(info.width, WIDTH);
    assert_int_equal(info.height, HEIGHT);
    assert_true(info.has_audio);
    assert_string_equal(info.video_codec, "h264");
    assert_int_equal(info.video_frames, FPS * SECONDS);
    assert_true(llabs(info.duration_ms - SECONDS * 1000) <= 1000 / FPS);
}

static void test_text_file_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("error.mp4");
    const char text[] = "<html><body>503 Service Unavailable</body></html>\n";
    vg_test_write_file(path, text, sizeof(text) - 1);
    expect_refused(path, "not an MP4");
}

/* The first box names the family; what follows must still be an MP4. */
static void test_file_type_box_before_other_bytes_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("ftyp-playlist.mp4");
    const char bytes[] = "\0\0\0\x14" "ftypisom\0\0\x02\0isom"
                         "#EXTM3U\n#EXTINF:1,\nfile:/etc/passwd\n";
    vg_test_write_file(path, bytes, sizeof(bytes) - 1);
    expect_refused(path, "truncated");
}

/* A MOV-family file whose first box is not its file type box is told by
 * probing every demuxer, and accepted. */
static void test_file_without_leading_file_type_box_is_probed(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("free-first.mp4");
    size_t n = file_size(clip_path);
    char *clip = malloc(n + 8);
    assert_non_null(clip);
    memcpy(clip, "\0\0\0\x08" "free", 8);
    FILE *f = fopen(clip_path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(clip + 8, 1, n, f), n);
    fclose(f);
    vg_test_write_file(path, clip, n + 8);
    free(clip);
    vg_mp4_info info;
    inspect_ok(path, &info);
    assert_int_equal(info.width, WIDTH);
    assert_int_equal(info.height, HEIGHT);
}

static void test_empty_file_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("empty.mp4");
    vg_test_write_file(path, "", 0);
    expect_refused(path, "empty");
}

static void test_truncated_media_data_is_502(void **state)
{
    (void)state;
    /* Fast start: the index survives, the data it points to does not. */
    const char *path = vg_test_scratch_path("half.mp4");
    copy_prefix(clip_path, path, file_size(clip_path) / 2);
    expect_refused(path, "truncated");
}

static void test_truncated_header_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("head.mp4");
    copy_prefix(clip_path, path, 200);
    expect_refused(path, "truncated");
}

static void test_other_container_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("clip.mkv");
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -y -i '%s' -c copy '%s'",
             clip_path, path);
    if (system(cmd) != 0)
        skip();
    expect_refused(path, "matroska");
}

static void test_audio_only_file_is_502(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("sound.m4a");
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -y -i '%s' -vn -c copy '%s'",
             clip_path, path);
    if (system(cmd) != 0)
        skip();
    expect_refused(path, "no video stream");
}

static void test_missing_file_is_502(void **state)
{
    (void)state;
    expect_refused(vg_test_scratch_path("nowhere.mp4"), "cannot open");
}

/* ---- stripping audio --------------------------------------------------- */

static void test_strip_removes_audio_and_keeps_video(void **state)
{
    (void)state;
    const char *out = vg_test_scratch_path("silent.mp4");
    strip_ok(clip_path, out);
    assert_false(exists(vg_test_scratch_path("silent.mp4.part")));

    vg_mp4_info before, after;
    inspect_ok(clip_path, &before);
    inspect_ok(out, &after);
    assert_false(after.has_audio);
    assert_int_equal(after.width, before.width);
    assert_int_equal(after.height, before.height);
    assert_string_equal(after.video_codec, before.video_codec);
    assert_int_equal(after.video_frames, before.video_frames);
    assert_true(llabs(after.duration_ms - before.duration_ms) <= 1000 / FPS);

    packet_count in = count_packets(clip_path);
    packet_count got = count_packets(out);
    assert_true(in.audio > 0);
    assert_int_equal(got.audio, 0);
    assert_int_equal(got.other, 0);
    assert_int_equal(got.video, in.video);
    assert_int_equal(got.video, FPS * SECONDS);
    /* Copied, not re-encoded: the video alone is most of the file. */
    assert_true(file_size(out) < file_size(clip_path));

    /* Fast start: the index comes before the media data. */
    long moov = box_index(out, "moov"), mdat = box_index(out, "mdat");
    assert_true(moov >= 0);
    assert_true(mdat >= 0);
    assert_true(moov < mdat);
}

static void test_strip_in_place(void **state)
{
    (void)state;
    const char *path = vg_test_scratch_path("in_place.mp4");
    copy_prefix(clip_path, path, file_size(clip_path));
    strip_ok(path, path);
    vg_mp4_info info;
    inspect_ok(path, &info);
    assert_false(info.has_audio);
    assert_int_equal(info.video_frames, FPS * SECONDS);
}

static void test_strip_of_a_missing_input_leaves_no_output(void **state)
{
    (void)state;
    const char *out = vg_test_scratch_path("from_nothing.mp4");
    vg_error err = {0};
    assert_int_equal(
        vg_mp4_strip_audio(vg_test_scratch_path("absent.mp4"), out, &err), -1);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.message, "absent.mp4"));
    assert_false(exists(out));
    assert_false(exists(vg_test_scratch_path("from_nothing.mp4.part")));
}

static void test_strip_of_a_broken_input_leaves_no_output(void **state)
{
    (void)state;
    const char *in = vg_test_scratch_path("broken_in.mp4");
    const char *out = vg_test_scratch_path("broken_out.mp4");
    copy_prefix(clip_path, in, file_size(clip_path) / 2);
    vg_error err = {0};
    assert_int_equal(vg_mp4_strip_audio(in, out, &err), -1);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.message, "truncated"));
    assert_false(exists(out));
    assert_false(exists(vg_test_scratch_path("broken_out.mp4.part")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_reports_the_clip),
        cmocka_unit_test(test_text_file_is_502),
        cmocka_unit_test(test_file_type_box_before_other_bytes_is_502),
        cmocka_unit_test(test_file_without_leading_file_type_box_is_probed),
        cmocka_unit_test(test_empty_file_is_502),
        cmocka_unit_test(test_truncated_media_data_is_502),
        cmocka_unit_test(test_truncated_header_is_502),
        cmocka_unit_test(test_other_container_is_502),
        cmocka_unit_test(test_audio_only_file_is_502),
        cmocka_unit_test(test_missing_file_is_502),
        cmocka_unit_test(test_strip_removes_audio_and_keeps_video),
        cmocka_unit_test(test_strip_in_place),
        cmocka_unit_test(test_strip_of_a_missing_input_leaves_no_output),
        cmocka_unit_test(test_strip_of_a_broken_input_leaves_no_output),
    };
    return cmocka_run_group_tests(tests, setup_suite,
                                  vg_test_scratch_teardown);
}
