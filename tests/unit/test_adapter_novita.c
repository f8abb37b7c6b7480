/*
 * test_adapter_novita.c - the Novita adapter: the exact request each model
 * family gets (field names, spellings, nesting), every value a family
 * cannot express refused with a 400, the poll URL, and every shape of
 * task result, including numbers sent as strings and malformed answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

/* Short names for the reference images in the bodies below. */
#define PNG_DATA_URL VG_TEST_PNG_DATA_URL
#define JPEG_DATA_URL VG_TEST_JPEG_DATA_URL
#define KEY "Authorization: Bearer sk-test"

static const vg_upstream_account account = {
    .name = "novita",
    .base_url = "https://api.novita.ai",
    .api_key = "sk-test",
};

static vg_error err;

/* A 5 s 720P 16:9 text-to-video job; tests change what they exercise. */
static vg_job_spec job(void)
{
    vg_job_spec spec = vg_test_text_job();
    spec.prompt = "a cat";
    return spec;
}

static void add_images(vg_job_spec *spec, int n)
{
    spec->image_paths[0] = vg_test_png_path;
    spec->image_paths[1] = vg_test_jpeg_path;
    spec->n_images = n;
}

/* Builds the submit call and checks all of it. */
static void expect_submit(const char *endpoint, const vg_job_spec *spec,
                          const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "https://api.novita.ai/v3/async/%s", endpoint);
    vg_test_expect_submit(&vg_adapter_novita, &account, endpoint, spec, url,
                          KEY, body);
}

/* Builds the submit call and checks it is refused for `field`. */
static void expect_refused(const char *endpoint, const vg_job_spec *spec,
                           const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_novita, &account, endpoint, spec,
                                400, "unsupported_parameter", field, &err);
}

/* Parses a poll answer that must be readable. */
static void poll(const char *body, vg_task_status *status)
{
    vg_test_poll_ok(&vg_adapter_novita, body, status, &err);
}

/* ---- the adapter's table ----------------------------------------------- */

static void test_adapter_is_registered_as_novita(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("novita"), &vg_adapter_novita);
    assert_string_equal(vg_adapter_novita.name, "novita");
    assert_string_equal(vg_adapter_novita.key_header_hint,
                        "Authorization: Bearer KEY");
    assert_int_equal(vg_adapter_novita.default_poll_ms, 5000);
    assert_non_null(vg_adapter_novita.build_submit);
    assert_non_null(vg_adapter_novita.parse_submit);
    assert_non_null(vg_adapter_novita.build_poll);
    assert_non_null(vg_adapter_novita.parse_poll);
}

static void test_novita_has_no_cancel_and_plain_downloads(void **state)
{
    (void)state;
    assert_null(vg_adapter_novita.build_cancel);
    assert_null(vg_adapter_novita.build_download);
}

/* ---- Seedance 1.0 ------------------------------------------------------ */

static void test_seedance_v1_text_to_video_body(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_submit("seedance-v1-pro-t2v", &spec,
                  "{\"prompt\":\"a cat\",\"resolution\":\"720p\","
                  "\"aspect_ratio\":\"16:9\",\"duration\":5,"
                  "\"camera_fixed\":false,\"seed\":42}");
}

static void
test_seedance_v1_image_to_video_sends_first_and_last_image(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 2);
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_9_16;
    spec.duration = 10;
    spec.camera_fixed = true;
    spec.seed = 7;
    expect_submit("seedance-v1-pro-i2v", &spec,
                  "{\"prompt\":\"a cat\",\"image\":\"" PNG_DATA_URL "\","
                  "\"last_image\":\"" JPEG_DATA_URL "\","
                  "\"resolution\":\"1080p\",\"aspect_ratio\":\"9:16\","
                  "\"duration\":10,\"camera_fixed\":true,\"seed\":7}");
}

static void test_seedance_v1_spells_480p_and_21_9(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_480P;
    spec.aspect = VG_AR_21_9;
    expect_submit("seedance-v1-pro-t2v", &spec,
                  "{\"prompt\":\"a cat\",\"resolution\":\"480p\","
                  "\"aspect_ratio\":\"21:9\",\"duration\":5,"
                  "\"camera_fixed\":false,\"seed\":42}");
}

static void test_seedance_v1_seed_is_kept_in_31_bits(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.seed = 4294967295u;
    expect_submit("seedance-v1-pro-t2v", &spec,
                  "{\"prompt\":\"a cat\",\"resolution\":\"720p\","
                  "\"aspect_ratio\":\"16:9\",\"duration\":5,"
                  "\"camera_fixed\":false,\"seed\":2147483647}");
}

static void
test_seedance_v1_refuses_durations_other_than_5_and_10(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 6;
    expect_refused("seedance-v1-pro-t2v", &spec, "duration");
    spec.duration = 12;
    expect_refused("seedance-v1-pro-t2v", &spec, "duration");
}

static void test_seedance_v1_refuses_audio(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.generate_audio = true;
    expect_refused("seedance-v1-pro-t2v", &spec, "generate_audio");
}

static void test_seedance_v1_refuses_a_third_image(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 3);
    spec.image_paths[2] = vg_test_png_path;
    expect_refused("seedance-v1-pro-i2v", &spec, "files");
}

/* ---- Seedance 1.5 ------------------------------------------------------ */

static void test_seedance_v15_text_to_video_body_uses_ratio(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_submit("seedance-v1.5-pro-t2v", &spec,
                  "{\"prompt\":\"a cat\",\"ratio\":\"16:9\","
                  "\"resolution\":\"720p\",\"duration\":5,\"fps\":24,"
                  "\"seed\":42,\"camera_fixed\":false,"
                  "\"generate_audio\":false,\"service_tier\":\"default\","
                  "\"watermark\":false}");
}

static void test_seedance_v15_flex_tier_audio_and_full_seed(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.tier = VG_TIER_FLEX;
    spec.generate_audio = true;
    spec.camera_fixed = true;
    spec.resolution = VG_RES_480P;
    spec.aspect = VG_AR_3_4;
    spec.duration = 12;
    spec.seed = 4000000000u;
    expect_submit("seedance-v1.5-pro-t2v", &spec,
                  "{\"prompt\":\"a cat\",\"ratio\":\"3:4\","
                  "\"resolution\":\"480p\",\"duration\":12,\"fps\":24,"
                  "\"seed\":4000000000,\"camera_fixed\":true,"
                  "\"generate_audio\":true,\"service_tier\":\"flex\","
                  "\"watermark\":false}");
}

static void test_seedance_v15_image_to_video_body(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 2);
    spec.duration = 4;
    expect_submit("seedance-v1.5-pro-i2v", &spec,
                  "{\"prompt\":\"a cat\",\"image\":\"" PNG_DATA_URL "\","
                  "\"last_image\":\"" JPEG_DATA_URL "\",\"ratio\":\"16:9\","
                  "\"resolution\":\"720p\",\"duration\":4,\"fps\":24,"
                  "\"seed\":42,\"camera_fixed\":false,"
                  "\"generate_audio\":false,\"service_tier\":\"default\","
                  "\"watermark\":false}");
}

static void test_seedance_v15_refuses_1080p(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_1080P;
    expect_refused("seedance-v1.5-pro-t2v", &spec, "resolution");
    if (strstr(err.message, "480P or 720P") == NULL)
        fail_msg("message \"%s\" does not say what is allowed", err.message);
}

static void test_seedance_v15_refuses_fps_other_than_24(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.fps = 30;
    expect_refused("seedance-v1.5-pro-t2v", &spec, "fps");
}

/* ---- Kling ------------------------------------------------------------- */

static void test_kling_duration_is_a_string(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_submit("kling-v2.1-t2v-master", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":\"5\","
                  "\"aspect_ratio\":\"16:9\"}");
    spec.duration = 10;
    spec.aspect = VG_AR_1_1;
    expect_submit("kling-v2.1-t2v-master", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":\"10\","
                  "\"aspect_ratio\":\"1:1\"}");
}

static void test_kling_sends_no_seed_even_when_one_is_set(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.seed = 99;
    spec.aspect = VG_AR_9_16;
    expect_submit("kling-v2.1-t2v-master", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":\"5\","
                  "\"aspect_ratio\":\"9:16\"}");
}

static void test_kling_image_to_video_takes_the_image_shape(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 1);
    spec.aspect = VG_AR_4_3; /* follows the image: not sent, not refused */
    expect_submit("kling-v2.1-i2v-master", &spec,
                  "{\"prompt\":\"a cat\",\"image\":\"" PNG_DATA_URL "\","
                  "\"duration\":\"5\"}");
}

static void test_kling_refuses_other_aspect_ratios(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.aspect = VG_AR_4_3;
    expect_refused("kling-v2.1-t2v-master", &spec, "aspect_ratio");
    spec.aspect = VG_AR_21_9;
    expect_refused("kling-v2.1-t2v-master", &spec, "aspect_ratio");
}

static void
test_kling_refuses_other_durations_audio_and_last_frame(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 8;
    expect_refused("kling-v2.1-t2v-master", &spec, "duration");
    spec = job();
    spec.generate_audio = true;
    expect_refused("kling-v2.1-t2v-master", &spec, "generate_audio");
    spec = job();
    add_images(&spec, 2);
    expect_refused("kling-v2.1-i2v-master", &spec, "files");
}

/* ---- MiniMax Hailuo ---------------------------------------------------- */

static void test_hailuo_maps_720p_to_768p(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 6;
    expect_submit("minimax-hailuo-02", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":6,"
                  "\"resolution\":\"768P\"}");
    spec.duration = 10;
    expect_submit("minimax-hailuo-02", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":10,"
                  "\"resolution\":\"768P\"}");
}

static void test_hailuo_1080p_is_upper_case(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 6;
    spec.resolution = VG_RES_1080P;
    expect_submit("minimax-hailuo-02", &spec,
                  "{\"prompt\":\"a cat\",\"duration\":6,"
                  "\"resolution\":\"1080P\"}");
}

static void test_hailuo_images_on_the_same_endpoint(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 6;
    add_images(&spec, 2);
    expect_submit("minimax-hailuo-02", &spec,
                  "{\"prompt\":\"a cat\",\"image\":\"" PNG_DATA_URL "\","
                  "\"end_image\":\"" JPEG_DATA_URL "\",\"duration\":6,"
                  "\"resolution\":\"768P\"}");
}

static void test_hailuo_refuses_480p_and_other_durations(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 6;
    spec.resolution = VG_RES_480P;
    expect_refused("minimax-hailuo-02", &spec, "resolution");
    spec = job(); /* 5 s */
    expect_refused("minimax-hailuo-02", &spec, "duration");
    spec.duration = 6;
    spec.generate_audio = true;
    expect_refused("minimax-hailuo-02", &spec, "generate_audio");
}

static void test_hailuo_refuses_10_seconds_at_1080p(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 10;
    spec.resolution = VG_RES_1080P;
    expect_refused("minimax-hailuo-02", &spec, "duration");
}

/* ---- Wan --------------------------------------------------------------- */

static void test_wan_25_nests_input_and_parameters(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 10;
    spec.generate_audio = true;
    expect_submit("wan-2.5-t2v-preview", &spec,
                  "{\"input\":{\"prompt\":\"a cat\"},"
                  "\"parameters\":{\"size\":\"1280*720\",\"duration\":10,"
                  "\"audio\":true,\"seed\":42}}");
}

static void test_wan_size_is_width_times_height(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_480P;
    spec.aspect = VG_AR_9_16;
    expect_submit("wan-2.5-t2v-preview", &spec,
                  "{\"input\":{\"prompt\":\"a cat\"},"
                  "\"parameters\":{\"size\":\"480*832\",\"duration\":5,"
                  "\"audio\":false,\"seed\":42}}");
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_4_3;
    expect_submit("wan-2.5-t2v-preview", &spec,
                  "{\"input\":{\"prompt\":\"a cat\"},"
                  "\"parameters\":{\"size\":\"1632*1248\",\"duration\":5,"
                  "\"audio\":false,\"seed\":42}}");
}

static void test_wan_22_has_no_audio_switch(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_1080P;
    spec.seed = 3000000000u;
    expect_submit("wan-2.2-t2v", &spec,
                  "{\"input\":{\"prompt\":\"a cat\"},"
                  "\"parameters\":{\"size\":\"1920*1080\",\"duration\":5,"
                  "\"seed\":852516352}}");
    spec = job();
    spec.duration = 8;
    spec.aspect = VG_AR_1_1;
    expect_submit("wan-2.2-t2v", &spec,
                  "{\"input\":{\"prompt\":\"a cat\"},"
                  "\"parameters\":{\"size\":\"960*960\",\"duration\":8,"
                  "\"seed\":42}}");
}

static void test_wan_image_to_video_sends_img_url_and_resolution(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 1);
    expect_submit("wan-2.5-i2v-preview", &spec,
                  "{\"input\":{\"prompt\":\"a cat\","
                  "\"img_url\":\"" PNG_DATA_URL
                  "\"},\"parameters\":{\"resolution\":\"720P\","
                  "\"duration\":5,\"audio\":false,\"seed\":42}}");
}

static void test_wan_refuses_sizes_it_does_not_have(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.aspect = VG_AR_21_9;
    expect_refused("wan-2.5-t2v-preview", &spec, "aspect_ratio");
    spec.aspect = VG_AR_4_3;
    spec.resolution = VG_RES_480P;
    expect_refused("wan-2.5-t2v-preview", &spec, "aspect_ratio");
}

static void test_wan_refuses_durations_per_version(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 8;
    expect_refused("wan-2.5-t2v-preview", &spec, "duration");
    spec.duration = 10;
    expect_refused("wan-2.2-t2v", &spec, "duration");
    spec.duration = 8;
    spec.resolution = VG_RES_1080P;
    expect_refused("wan-2.2-t2v", &spec, "duration");
}

static void test_wan_22_refuses_audio(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.generate_audio = true;
    expect_refused("wan-2.2-t2v", &spec, "generate_audio");
}

/* ---- endpoints and images ---------------------------------------------- */

static void test_text_endpoint_refuses_images(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    add_images(&spec, 1);
    expect_refused("seedance-v1-pro-t2v", &spec, "files");
    expect_refused("wan-2.5-t2v-preview", &spec, "files");
}

static void test_image_endpoint_needs_an_image(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_refused("seedance-v1-pro-i2v", &spec, "files");
    expect_refused("kling-v2.1-i2v-master", &spec, "files");
}

static void test_unknown_endpoint_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_refused("sora-2", &spec, "model");
    expect_refused("seedance-v2-pro-t2v", &spec, "model");
}

static void test_missing_image_file_is_an_internal_error(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.image_paths[0] = vg_test_scratch_path("missing.png");
    spec.n_images = 1;
    vg_test_expect_submit_error(&vg_adapter_novita, &account,
                                "seedance-v1-pro-i2v", &spec, 500,
                                "internal_error", NULL, &err);

    /* The first image is read already when the second is missing. */
    spec.image_paths[0] = vg_test_png_path;
    spec.image_paths[1] = vg_test_scratch_path("missing.jpg");
    spec.n_images = 2;
    vg_test_expect_submit_error(&vg_adapter_novita, &account,
                                "seedance-v1-pro-i2v", &spec, 500,
                                "internal_error", NULL, &err);
}

/* ---- submit reply ------------------------------------------------------ */

static void test_submit_reply_gives_the_task_id(void **state)
{
    (void)state;
    vg_test_expect_task(&vg_adapter_novita, "{\"task_id\": \"8f3c-41\"}",
                        "8f3c-41");
}

static void test_submit_reply_without_task_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{}",       "{\"task_id\": \"\"}", "{\"task_id\": 12}",
        "not json", "[\"task_id\"]",       ""};
    vg_test_expect_no_task(&vg_adapter_novita, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- poll -------------------------------------------------------------- */

static void test_poll_call_escapes_the_task_id(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_novita.build_poll, &account,
                              "abc-123", "GET",
                              "https://api.novita.ai/v3/async/"
                              "task-result?task_id=abc-123",
                              KEY);
    vg_test_expect_built_call(vg_adapter_novita.build_poll, &account,
                              "a b/c&d", "GET",
                              "https://api.novita.ai/v3/async/"
                              "task-result?task_id=a%20b%2Fc%26d",
                              KEY);
}

static void test_poll_queued(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"extra\": {}, \"task\": {\"task_id\": \"t\", \"status\": "
         "\"TASK_STATUS_QUEUED\", \"progress_percent\": 0}, \"videos\": []}",
         &s);
    assert_int_equal(s.state, VG_TASK_QUEUED);
    assert_int_equal(s.progress, 0);
    assert_null(s.video_url);
    assert_int_equal(s.seed, -1);
    vg_task_status_clear(&s);
}

static void test_poll_processing_with_progress_as_a_string(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"task\": {\"status\": \"TASK_STATUS_PROCESSING\", "
         "\"progress_percent\": \"45\", \"eta\": \"30\"}}",
         &s);
    assert_int_equal(s.state, VG_TASK_RUNNING);
    assert_int_equal(s.progress, 45);
    vg_task_status_clear(&s);

    poll("{\"task\": {\"status\": \"TASK_STATUS_PROCESSING\", "
         "\"progress_percent\": 62.5}}",
         &s);
    assert_int_equal(s.progress, 62);
    vg_task_status_clear(&s);

    poll("{\"task\": {\"status\": \"TASK_STATUS_PROCESSING\", "
         "\"progress_percent\": \"soon\"}}",
         &s);
    assert_int_equal(s.state, VG_TASK_RUNNING);
    assert_int_equal(s.progress, -1);
    vg_task_status_clear(&s);
}

static void test_poll_progress_is_clamped(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"task\": {\"status\": \"TASK_STATUS_PROCESSING\", "
         "\"progress_percent\": 150}}",
         &s);
    assert_int_equal(s.progress, 100);
    vg_task_status_clear(&s);
    poll("{\"task\": {\"status\": \"TASK_STATUS_PROCESSING\", "
         "\"progress_percent\": \"-3\"}}",
         &s);
    assert_int_equal(s.progress, 0);
    vg_task_status_clear(&s);
}

static void test_poll_succeeded_gives_the_video_and_seed(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"extra\": {\"seed\": \"12345\", \"has_nsfw_contents\": []}, "
         "\"task\": {\"task_id\": \"t\", \"task_type\": \"TXT_TO_VIDEO\", "
         "\"status\": \"TASK_STATUS_SUCCEED\", \"reason\": \"\", "
         "\"eta\": 0, \"progress_percent\": 100}, "
         "\"videos\": [{\"video_url\": \"https://cdn.example/v.mp4?sig=1\", "
         "\"video_url_ttl\": \"3600\", \"video_type\": \"mp4\"}]}",
         &s);
    assert_int_equal(s.state, VG_TASK_SUCCEEDED);
    assert_string_equal(s.video_url, "https://cdn.example/v.mp4?sig=1");
    assert_int_equal(s.progress, 100);
    assert_int_equal(s.seed, 12345);
    vg_task_status_clear(&s);
}

static void test_poll_seed_as_a_number(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"extra\": {\"seed\": 4294967295}, \"task\": {\"status\": "
         "\"TASK_STATUS_SUCCEED\"}, \"videos\": [{\"video_url\": \"u\"}]}",
         &s);
    assert_int_equal(s.state, VG_TASK_SUCCEEDED);
    assert_true(s.seed == INT64_C(4294967295));
    assert_int_equal(s.progress, 100);
    vg_task_status_clear(&s);

    poll("{\"extra\": {\"seed\": -1}, \"task\": {\"status\": "
         "\"TASK_STATUS_PROCESSING\"}}",
         &s);
    assert_int_equal(s.seed, -1);
    vg_task_status_clear(&s);
}

static void test_poll_succeeded_without_video_is_a_failure(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"task\": {\"status\": \"TASK_STATUS_SUCCEED\"}}",
        "{\"task\": {\"status\": \"TASK_STATUS_SUCCEED\"}, \"videos\": []}",
        "{\"task\": {\"status\": \"TASK_STATUS_SUCCEED\"}, "
        "\"videos\": [{\"video_url\": \"\"}]}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        vg_test_expect_failed(&vg_adapter_novita, bodies[i], "upstream_failed",
                              NULL);
}

static void test_poll_failed_gives_the_reason(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_novita,
                          "{\"task\": {\"status\": \"TASK_STATUS_FAILED\", "
                          "\"reason\": \"prompt rejected by moderation\"}}",
                          "upstream_failed", "prompt rejected by moderation");
    vg_test_expect_failed(&vg_adapter_novita,
                          "{\"task\": {\"status\": \"TASK_STATUS_FAILED\"}}",
                          "upstream_failed", NULL);
}

static void test_poll_unknown_status_keeps_running(void **state)
{
    (void)state;
    vg_test_expect_state(&vg_adapter_novita,
                         "{\"task\": {\"status\": \"TASK_STATUS_PAUSED\"}}",
                         VG_TASK_RUNNING);
    vg_test_expect_state(&vg_adapter_novita, "{\"task\": {}}",
                         VG_TASK_RUNNING);
}

static void test_poll_malformed_answers_are_errors(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"videos\": []}", "{\"task\": \"TASK_STATUS_SUCCEED\"}",
        "<html>502</html>", "[]", "{\"task\": {\"status\": "};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        vg_test_expect_poll_malformed(&vg_adapter_novita, bodies[i], &err);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_as_novita),
        T(test_novita_has_no_cancel_and_plain_downloads),
        T(test_seedance_v1_text_to_video_body),
        T(test_seedance_v1_image_to_video_sends_first_and_last_image),
        T(test_seedance_v1_spells_480p_and_21_9),
        T(test_seedance_v1_seed_is_kept_in_31_bits),
        T(test_seedance_v1_refuses_durations_other_than_5_and_10),
        T(test_seedance_v1_refuses_audio),
        T(test_seedance_v1_refuses_a_third_image),
        T(test_seedance_v15_text_to_video_body_uses_ratio),
        T(test_seedance_v15_flex_tier_audio_and_full_seed),
        T(test_seedance_v15_image_to_video_body),
        T(test_seedance_v15_refuses_1080p),
        T(test_seedance_v15_refuses_fps_other_than_24),
        T(test_kling_duration_is_a_string),
        T(test_kling_sends_no_seed_even_when_one_is_set),
        T(test_kling_image_to_video_takes_the_image_shape),
        T(test_kling_refuses_other_aspect_ratios),
        T(test_kling_refuses_other_durations_audio_and_last_frame),
        T(test_hailuo_maps_720p_to_768p),
        T(test_hailuo_1080p_is_upper_case),
        T(test_hailuo_images_on_the_same_endpoint),
        T(test_hailuo_refuses_480p_and_other_durations),
        T(test_hailuo_refuses_10_seconds_at_1080p),
        T(test_wan_25_nests_input_and_parameters),
        T(test_wan_size_is_width_times_height),
        T(test_wan_22_has_no_audio_switch),
        T(test_wan_image_to_video_sends_img_url_and_resolution),
        T(test_wan_refuses_sizes_it_does_not_have),
        T(test_wan_refuses_durations_per_version),
        T(test_wan_22_refuses_audio),
        T(test_text_endpoint_refuses_images),
        T(test_image_endpoint_needs_an_image),
        T(test_unknown_endpoint_is_refused),
        T(test_missing_image_file_is_an_internal_error),
        T(test_submit_reply_gives_the_task_id),
        T(test_submit_reply_without_task_id_is_malformed),
        T(test_poll_call_escapes_the_task_id),
        T(test_poll_queued),
        T(test_poll_processing_with_progress_as_a_string),
        T(test_poll_progress_is_clamped),
        T(test_poll_succeeded_gives_the_video_and_seed),
        T(test_poll_seed_as_a_number),
        T(test_poll_succeeded_without_video_is_a_failure),
        T(test_poll_failed_gives_the_reason),
        T(test_poll_unknown_status_keeps_running),
        T(test_poll_malformed_answers_are_errors),
    };
#undef T
    return cmocka_run_group_tests(tests, vg_test_images_setup,
                                  vg_test_scratch_teardown);
}
