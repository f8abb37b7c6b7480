/*
 * test_adapter_fal.c - the fal queue adapter, checked as data: the input
 * JSON each job becomes (the duration spellings, images as data URLs),
 * the task it keeps (the URLs fal returned), the calls it makes with them
 * (and refuses to make off the queue's host), and the two-step poll:
 * statuses, the COMPLETED hand-over to the response URL, and results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

#define KEY "Authorization: Key fal-key"

static const vg_upstream_account account = {
    .name = "fal",
    .base_url = "https://queue.fal.run",
    .api_key = "fal-key",
};

#define REQ "https://queue.fal.run/fal-ai/kling-video/requests/r-1"

/* The task parse_submit keeps for the submit reply below. */
#define TASK                                                                  \
    "{\"request_id\":\"r-1\",\"status_url\":\"" REQ "/status\","              \
    "\"response_url\":\"" REQ "\",\"cancel_url\":\"" REQ "/cancel\"}"

static vg_error err;

static int submit(const char *model, const vg_job_spec *spec, vg_call *call)
{
    return vg_test_submit(&vg_adapter_fal, &account, model, spec, call, &err);
}

static void expect_submit_error(const vg_job_spec *spec, int status,
                                const char *code, const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_fal, &account, "fal-ai/x", spec,
                                status, code, field, &err);
}

static int poll(const char *body, vg_task_status *status)
{
    return vg_test_poll(&vg_adapter_fal, body, status, &err);
}

/* parse_poll must refuse body as malformed. */
static void expect_malformed(const char *body)
{
    vg_test_expect_poll_malformed(&vg_adapter_fal, body, &err);
}

/* ---- the adapter ------------------------------------------------------ */

static void test_adapter_is_registered_with_its_poll_interval(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("fal"), &vg_adapter_fal);
    assert_int_equal(vg_adapter_fal.default_poll_ms, 3000);
    assert_non_null(vg_adapter_fal.build_cancel);
    assert_non_null(vg_adapter_fal.build_download);
}

/* ---- submit ----------------------------------------------------------- */

static void test_submit_text_job_body(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    vg_test_expect_submit(
        &vg_adapter_fal, &account,
        "fal-ai/kling-video/v2.1/master/text-to-video", &spec,
        "https://queue.fal.run/fal-ai/kling-video/v2.1/master/text-to-video",
        KEY,
        "{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":\"16:9\","
        "\"duration\":\"5\",\"resolution\":\"720p\",\"seed\":42,"
        "\"generate_audio\":false}");
}

static void test_submit_veo_duration_has_a_unit(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.duration = 8;
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_9_16;
    spec.generate_audio = true;
    vg_call call;
    assert_int_equal(submit("fal-ai/veo3/fast", &spec, &call), 0);
    assert_string_equal(call.url, "https://queue.fal.run/fal-ai/veo3/fast");
    assert_string_equal(
        call.body,
        "{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":\"9:16\","
        "\"duration\":\"8s\",\"resolution\":\"1080p\",\"seed\":42,"
        "\"generate_audio\":true}");
    vg_call_clear(&call);
}

/* Seedance 1.0 on fal has camera_fixed (sent either way) and no
 * generate_audio: only what the schema has goes. */
static void test_submit_follows_the_models_schema(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.camera_fixed = true;
    spec.resolution = VG_RES_480P;
    spec.duration = 10;
    vg_call call;
    assert_int_equal(
        submit("fal-ai/bytedance/seedance/v1/pro/text-to-video", &spec, &call),
        0);
    assert_string_equal(
        call.body,
        "{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":\"16:9\","
        "\"duration\":\"10\",\"resolution\":\"480p\","
        "\"camera_fixed\":true,\"seed\":42}");
    vg_call_clear(&call);
    /* Seedance 1.5 makes sound: generate_audio goes too. */
    spec.camera_fixed = false;
    assert_int_equal(
        submit("fal-ai/bytedance/seedance/v1.5/pro/text-to-video", &spec,
               &call),
        0);
    assert_non_null(strstr(call.body, "\"camera_fixed\":false"));
    assert_non_null(strstr(call.body, "\"generate_audio\":false"));
    vg_call_clear(&call);
    /* A model the table does not know: camera_fixed only when asked. */
    assert_int_equal(submit("fal-ai/some/new-model", &spec, &call), 0);
    assert_null(strstr(call.body, "camera_fixed"));
    assert_non_null(strstr(call.body, "\"generate_audio\":false"));
    vg_call_clear(&call);
}

static void test_submit_images_are_data_urls(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_write_png("first.png");
    spec.image_paths[1] = vg_test_write_jpeg("last.jpg");
    spec.n_images = 2;
    vg_call call;
    assert_int_equal(submit("fal-ai/bytedance/seedance/v1/pro/image-to-video",
                            &spec, &call),
                     0);
    assert_string_equal(
        call.body,
        "{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":\"16:9\","
        "\"duration\":\"5\",\"resolution\":\"720p\",\"camera_fixed\":false,"
        "\"seed\":42,\"image_url\":\"" VG_TEST_PNG_DATA_URL "\","
        "\"end_image_url\":\"" VG_TEST_JPEG_DATA_URL "\"}");
    vg_call_clear(&call);
}

/* Veo 3.1's image-to-video has no last frame; two images go to its
 * first-last-frame endpoint under that endpoint's names. */
static void test_veo31_last_frame_uses_the_first_last_frame_endpoint(
    void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.duration = 8;
    spec.image_paths[0] = vg_test_write_png("first.png");
    spec.image_paths[1] = vg_test_write_jpeg("last.jpg");
    spec.n_images = 2;
    vg_call call;
    assert_int_equal(submit("fal-ai/veo3.1/image-to-video", &spec, &call), 0);
    assert_string_equal(
        call.url,
        "https://queue.fal.run/fal-ai/veo3.1/first-last-frame-to-video");
    assert_non_null(strstr(call.body, "\"first_frame_url\":\"" VG_TEST_PNG_DATA_URL));
    assert_non_null(strstr(call.body, "\"last_frame_url\":\"" VG_TEST_JPEG_DATA_URL));
    assert_null(strstr(call.body, "end_image_url"));
    assert_null(strstr(call.body, "\"image_url\""));
    assert_non_null(strstr(call.body, "\"duration\":\"8s\""));
    vg_call_clear(&call);
    /* One image stays on image-to-video. */
    spec.n_images = 1;
    assert_int_equal(submit("fal-ai/veo3.1/fast/image-to-video", &spec, &call),
                     0);
    assert_string_equal(call.url,
                        "https://queue.fal.run/fal-ai/veo3.1/fast/"
                        "image-to-video");
    assert_non_null(strstr(call.body, "\"image_url\""));
    vg_call_clear(&call);
}

/* Veo 3 and Wan have no last frame anywhere on fal: a second image is
 * refused rather than dropped. */
static void test_last_frame_without_a_place_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_write_png("first.png");
    spec.image_paths[1] = spec.image_paths[0];
    spec.n_images = 2;
    vg_call call;
    memset(&err, 0, sizeof(err));
    assert_int_equal(submit("fal-ai/veo3/image-to-video", &spec, &call), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "files");
    assert_int_equal(submit("fal-ai/wan-i2v", &spec, &call), -1);
    assert_int_equal(err.status, 400);
}

static void test_submit_three_images_are_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    const char *path = vg_test_write_png("three.png");
    for (int i = 0; i < 3; i++)
        spec.image_paths[i] = path;
    spec.n_images = 3;
    expect_submit_error(&spec, 400, "unsupported_parameter", "images");
}

static void test_submit_missing_image_file_fails(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_scratch_path("missing.png");
    spec.n_images = 1;
    expect_submit_error(&spec, 500, "internal_error", NULL);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.prompt = "\xc3";
    expect_submit_error(&spec, 400, "validation_error", "prompt");
}

/* ---- the task --------------------------------------------------------- */

static void test_parse_submit_keeps_the_returned_urls(void **state)
{
    (void)state;
    vg_test_expect_task(
        &vg_adapter_fal,
        "{\"status\":\"IN_QUEUE\",\"request_id\":\"r-1\","
        "\"response_url\":\"" REQ "\",\"status_url\":\"" REQ "/status\","
        "\"cancel_url\":\"" REQ "/cancel\",\"queue_position\":3}",
        TASK);
}

static void test_parse_submit_without_cancel_url_keeps_the_rest(void **s)
{
    (void)s;
    vg_reply reply =
        vg_test_reply("{\"request_id\":\"r-1\",\"response_url\":\"" REQ
                      "\",\"status_url\":\"" REQ "/status\"}");
    char *task = NULL;
    assert_int_equal(vg_adapter_fal.parse_submit(&reply, &task, &err), 0);
    assert_string_equal(task, "{\"request_id\":\"r-1\",\"status_url\":\"" REQ
                              "/status\",\"response_url\":\"" REQ "\"}");
    vg_call call = {0};
    assert_int_equal(vg_adapter_fal.build_cancel(&account, task, &call, &err),
                     -1);
    assert_int_equal(err.status, 502);
    assert_null(call.url);
    free(task);
}

static void test_parse_submit_without_id_or_urls_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"status_url\":\"https://q/s\",\"response_url\":\"https://q/r\"}",
        "{\"request_id\":\"r\",\"response_url\":\"https://q/r\"}",
        "{\"request_id\":\"r\",\"status_url\":\"/relative\","
        "\"response_url\":\"https://q/r\"}",
        "{\"request_id\":\"\",\"status_url\":\"https://q/s\","
        "\"response_url\":\"https://q/r\"}",
        "[]",
        "{",
    };
    vg_test_expect_no_task(&vg_adapter_fal, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

static void test_poll_call_gets_the_status_url_with_the_key(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_fal.build_poll, &account, TASK, "GET",
                              REQ "/status", KEY);
}

static void test_cancel_call_puts_the_cancel_url_with_the_key(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_fal.build_cancel, &account, TASK,
                              "PUT", REQ "/cancel", KEY);
}

static void test_urls_off_the_queue_host_get_no_call(void **state)
{
    (void)state;
    static const char *const tasks[] = {
        "{\"request_id\":\"r\",\"status_url\":\"https://evil.example/s\","
        "\"cancel_url\":\"https://queue.fal.run.evil.example/c\"}",
        "{\"request_id\":\"r\",\"status_url\":\"http://queue.fal.run/s\","
        "\"cancel_url\":\"https://queue.fal.run:8443/c\"}",
    };
    for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
        vg_call call = {0};
        memset(&err, 0, sizeof(err));
        assert_int_equal(
            vg_adapter_fal.build_poll(&account, tasks[i], &call, &err), -1);
        assert_int_equal(err.status, 502);
        assert_null(call.url);
        assert_int_equal(
            vg_adapter_fal.build_cancel(&account, tasks[i], &call, &err), -1);
        assert_null(call.url);
    }
}

static void test_unreadable_task_is_an_internal_error(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(vg_adapter_fal.build_poll(&account, "r-1", &call, &err),
                     -1);
    assert_int_equal(err.status, 500);
    assert_null(call.url);
}

static void test_download_of_a_result_url_carries_the_key(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_fal.build_download, &account, REQ,
                              "GET", REQ, KEY);
}

static void test_download_of_a_cdn_video_has_no_key(void **state)
{
    (void)state;
    const char *url = "https://v3.fal.media/files/rabbit/abc_output.mp4";
    vg_test_expect_built_call(vg_adapter_fal.build_download, &account, url,
                              "GET", url, NULL);
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_fal.build_download(&account, "ftp://x/y", &call, &err), -1);
    assert_null(call.url);
}

/* A file URL on the queue's own host (a proxy serving both) is still a
 * file: pre-signed storage refuses a second credential. */
static void test_download_of_a_file_on_the_queue_host_has_no_key(void **state)
{
    (void)state;
    const char *url = "https://queue.fal.run/files/abc_output.mp4"
                      "?sig=x&next=/requests/r-1";
    vg_test_expect_built_call(vg_adapter_fal.build_download, &account, url,
                              "GET", url, NULL);
}

/* ---- poll answers ----------------------------------------------------- */

static void test_in_queue_and_in_progress(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"IN_QUEUE\",\"queue_position\":2,"
                          "\"response_url\":\"" REQ "\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_QUEUED);
    assert_null(st.fetch_url);
    vg_task_status_clear(&st);
    assert_int_equal(poll("{\"status\":\"IN_PROGRESS\",\"logs\":[],"
                          "\"response_url\":\"" REQ "\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_RUNNING);
    assert_int_equal(st.progress, -1);
    vg_task_status_clear(&st);
}

static void test_completed_status_fetches_the_response_url(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"COMPLETED\",\"logs\":null,"
                          "\"metrics\":{\"inference_time\":80.1},"
                          "\"response_url\":\"" REQ "\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_FETCH);
    assert_string_equal(st.fetch_url, REQ);
    assert_null(st.video_url);
    vg_task_status_clear(&st);
}

static void test_completed_status_without_response_url_is_malformed(void **s)
{
    (void)s;
    expect_malformed("{\"status\":\"COMPLETED\"}");
}

static void test_completed_status_with_error_is_failed(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_fal,
                          "{\"status\":\"COMPLETED\",\"error\":"
                          "\"Request timed out\",\"error_type\":"
                          "\"request_timeout\",\"response_url\":\"" REQ "\"}",
                          "upstream_failed", "Request timed out");
}

static void test_completed_status_with_null_error_is_done(void **state)
{
    (void)state;
    vg_test_expect_state(&vg_adapter_fal,
                         "{\"status\":\"COMPLETED\",\"error\":null,"
                         "\"response_url\":\"" REQ "\"}",
                         VG_TASK_FETCH);
}

static void test_result_has_the_video_and_seed(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"video\":{\"url\":\"https://v3.fal.media/files/x.mp4\","
             "\"content_type\":\"video/mp4\",\"file_size\":123},"
             "\"seed\":\"1234\"}",
             &st),
        0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "https://v3.fal.media/files/x.mp4");
    assert_int_equal(st.progress, 100);
    assert_true(st.seed == 1234);
    vg_task_status_clear(&st);
}

static void test_result_with_a_videos_array_is_read(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"videos\":[{\"url\":\"https://c/v.mp4\"}]}", &st),
                     0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "https://c/v.mp4");
    assert_true(st.seed == -1);
    vg_task_status_clear(&st);
}

static void test_result_with_detail_is_failed(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_fal,
                          "{\"detail\":\"Internal server error\"}",
                          "upstream_failed", "Internal server error");
    vg_test_expect_failed(
        &vg_adapter_fal,
        "{\"detail\":[{\"loc\":[\"body\",\"prompt\"],\"msg\":"
        "\"content policy violation\",\"type\":\"content_policy\"}]}",
        "upstream_failed", "content policy violation");
    vg_task_status st;
    assert_int_equal(poll("{\"detail\":{}}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_non_null(strstr(st.error_message, "failed"));
    vg_task_status_clear(&st);
}

static void test_failed_and_canceled_statuses(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_fal,
                          "{\"status\":\"FAILED\",\"error\":\"boom\"}",
                          "upstream_failed", "boom");
    vg_test_expect_state(&vg_adapter_fal, "{\"status\":\"CANCELED\"}",
                         VG_TASK_CANCELLED);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    expect_malformed("{\"status\":\"SLEEPING\"}");
    assert_non_null(strstr(err.message, "SLEEPING"));
    expect_malformed("{\"video\":{}}");
    expect_malformed("{\"detail\":null}");
    expect_malformed("{}");
    expect_malformed("<html>");
    expect_malformed("");
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_with_its_poll_interval),
        T(test_submit_text_job_body),
        T(test_submit_veo_duration_has_a_unit),
        T(test_submit_follows_the_models_schema),
        T(test_veo31_last_frame_uses_the_first_last_frame_endpoint),
        T(test_last_frame_without_a_place_is_refused),
        T(test_submit_images_are_data_urls),
        T(test_submit_three_images_are_refused),
        T(test_submit_missing_image_file_fails),
        T(test_submit_invalid_utf8_prompt_is_refused),
        T(test_parse_submit_keeps_the_returned_urls),
        T(test_parse_submit_without_cancel_url_keeps_the_rest),
        T(test_parse_submit_without_id_or_urls_is_malformed),
        T(test_poll_call_gets_the_status_url_with_the_key),
        T(test_cancel_call_puts_the_cancel_url_with_the_key),
        T(test_urls_off_the_queue_host_get_no_call),
        T(test_unreadable_task_is_an_internal_error),
        T(test_download_of_a_result_url_carries_the_key),
        T(test_download_of_a_cdn_video_has_no_key),
        T(test_download_of_a_file_on_the_queue_host_has_no_key),
        T(test_in_queue_and_in_progress),
        T(test_completed_status_fetches_the_response_url),
        T(test_completed_status_without_response_url_is_malformed),
        T(test_completed_status_with_error_is_failed),
        T(test_completed_status_with_null_error_is_done),
        T(test_result_has_the_video_and_seed),
        T(test_result_with_a_videos_array_is_read),
        T(test_result_with_detail_is_failed),
        T(test_failed_and_canceled_statuses),
        T(test_unknown_or_missing_status_is_malformed),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
