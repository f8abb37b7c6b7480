/*
 * render_clip.c - renders one clip with the local renderer, for timing it
 * against the ffmpeg CLI (bench/render_vs_ffmpeg.sh) and for looking at
 * its output by eye.
 *
 * Usage: render_clip WIDTH HEIGHT FPS DURATION AUDIO(0/1) OUT.mp4
 *        [SEED [IMAGE...]] [--prompt TEXT]
 *
 * With images the clip is image-to-video: up to eight, in order. Set
 * VG_CAMERA_FIXED=1 in the environment to hold the camera still.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render.h"
#include "util/parse.h"

static int parse_arg(const char *text, const char *name, int64_t lo,
                     int64_t hi, int64_t *out)
{
    if (vg_parse_int64(text, out) != 0 || *out < lo || *out > hi) {
        fprintf(stderr, "render_clip: %s must be an integer %lld..%lld\n",
                name, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* The prompt (drawn as the title of a text-to-video clip) comes last,
     * so the positional arguments keep their places. */
    const char *prompt = "a benchmark clip drifting through warm colours";
    if (argc >= 9 && strcmp(argv[argc - 2], "--prompt") == 0) {
        prompt = argv[argc - 1];
        argc -= 2;
    }
    if (argc < 7 || argc > 16) {
        fprintf(stderr, "usage: render_clip WIDTH HEIGHT FPS DURATION "
                        "AUDIO(0/1) OUT.mp4 [SEED [IMAGE...]] "
                        "[--prompt TEXT]\n");
        return 2;
    }
    int64_t width, height, fps, duration, audio, seed = 42;
    if (parse_arg(argv[1], "WIDTH", 2, 8192, &width) < 0 ||
        parse_arg(argv[2], "HEIGHT", 2, 8192, &height) < 0 ||
        parse_arg(argv[3], "FPS", 1, 120, &fps) < 0 ||
        parse_arg(argv[4], "DURATION", 1, 3600, &duration) < 0 ||
        parse_arg(argv[5], "AUDIO", 0, 1, &audio) < 0 ||
        (argc > 7 && parse_arg(argv[7], "SEED", 0, UINT32_MAX, &seed) < 0))
        return 2;

    const char *fixed = getenv("VG_CAMERA_FIXED");
    vg_render_params params = {
        .prompt = prompt,
        .width = (int)width,
        .height = (int)height,
        .fps = (int)fps,
        .duration = (int)duration,
        .audio = audio != 0,
        .camera_fixed = fixed != NULL && fixed[0] == '1',
        .seed = (uint32_t)seed,
        .images = (const char *const *)(argc > 8 ? argv + 8 : NULL),
        .n_images = argc > 8 ? argc - 8 : 0,
    };
    vg_error err = {0};
    if (vg_render_mp4(&params, argv[6], &err) < 0) {
        fprintf(stderr, "render_clip: %d %s: %s\n", err.status, err.code,
                err.message);
        return 1;
    }
    return 0;
}
