/*
 * test_adapter_replicate.c - the Replicate adapter, checked as data: the
 * prediction each job becomes (URL from "owner/name", the common input
 * names, images as data URLs, no "Prefer: wait"), the poll and cancel
 * calls, and what every prediction status and output shape means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

#define BASE "https://api.replicate.com/v1"
#define KEY "Authorization: Bearer r8_test"

static const vg_upstream_account account = {
    .name = "replicate",
    .base_url = BASE,
    .api_key = "r8_test",
};

static vg_error err;

static int submit(const char *model, const vg_job_spec *spec, vg_call *call)
{
    return vg_test_submit(&vg_adapter_replicate, &account, model, spec, call,
                          &err);
}

static void expect_submit_error(const char *model, const vg_job_spec *spec,
                                int status, const char *code,
                                const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_replicate, &account, model, spec,
                                status, code, field, &err);
}

static int poll(const char *body, vg_task_status *status)
{
    return vg_test_poll(&vg_adapter_replicate, body, status, &err);
}

/* parse_poll must refuse body as malformed. */
static void expect_malformed(const char *body)
{
    vg_test_expect_poll_malformed(&vg_adapter_replicate, body, &err);
}

/* ---- the adapter ------------------------------------------------------ */

static void test_adapter_is_registered_with_its_poll_interval(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("replicate"), &vg_adapter_replicate);
    assert_int_equal(vg_adapter_replicate.default_poll_ms, 3000);
    assert_non_null(vg_adapter_replicate.build_cancel);
    assert_null(vg_adapter_replicate.build_download);
}

/* ---- submit ----------------------------------------------------------- */

static void test_submit_text_job_body(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    /* Only the key and the content type: no "Prefer: wait", since the
     * engine polls. Seedance 1.0 Pro's schema has fps and camera_fixed
     * and no generate_audio (it makes no sound). */
    vg_test_expect_submit(
        &vg_adapter_replicate, &account, "bytedance/seedance-1-pro", &spec,
        BASE "/models/bytedance/seedance-1-pro/predictions", KEY,
        "{\"input\":{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":"
        "\"16:9\",\"duration\":5,\"resolution\":\"720p\",\"fps\":24,"
        "\"seed\":42,\"camera_fixed\":false}}");
}

static void test_submit_options_body(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.duration = 8;
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_1_1;
    spec.generate_audio = true;
    spec.camera_fixed = true;
    spec.seed = 0;
    vg_call call;
    assert_int_equal(submit("google/veo-3", &spec, &call), 0);
    assert_string_equal(call.url, BASE "/models/google/veo-3/predictions");
    assert_string_equal(
        call.body,
        "{\"input\":{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":"
        "\"1:1\",\"duration\":8,\"resolution\":\"1080p\",\"seed\":0,"
        "\"generate_audio\":true,\"camera_fixed\":true}}");
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
    assert_int_equal(submit("bytedance/seedance-1-lite", &spec, &call), 0);
    assert_string_equal(
        call.body,
        "{\"input\":{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":"
        "\"16:9\",\"duration\":5,\"resolution\":\"720p\",\"seed\":42,"
        "\"generate_audio\":false,\"image\":\"" VG_TEST_PNG_DATA_URL "\","
        "\"last_frame_image\":\"" VG_TEST_JPEG_DATA_URL "\"}}");
    vg_call_clear(&call);
}

static void test_submit_model_must_be_owner_slash_name(void **state)
{
    (void)state;
    static const char *const names[] = {
        "seedance", "a/b/c", "/b", "a/", "a/b:abc12", "a/b?x", "a/b c", "",
    };
    vg_job_spec spec = vg_test_text_job();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        expect_submit_error(names[i], &spec, 500, "internal_error", NULL);
}

static void test_submit_three_images_are_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    const char *path = vg_test_write_png("three.png");
    for (int i = 0; i < 3; i++)
        spec.image_paths[i] = path;
    spec.n_images = 3;
    expect_submit_error("a/b", &spec, 400, "unsupported_parameter", "images");
}

static void test_submit_missing_image_file_fails(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_write_png("present.png");
    spec.image_paths[1] = vg_test_scratch_path("missing.png");
    spec.n_images = 2;
    expect_submit_error("a/b", &spec, 500, "internal_error", NULL);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.prompt = "\xe2\x82";
    expect_submit_error("a/b", &spec, 400, "validation_error", "prompt");
}

static void test_parse_submit_reads_the_prediction_id(void **state)
{
    (void)state;
    vg_test_expect_task(
        &vg_adapter_replicate,
        "{\"id\":\"gm3qorzdhgbfurvjtvhg6dckhu\",\"model\":\"a/b\","
        "\"status\":\"starting\",\"urls\":{\"get\":\"https://api.replicate"
        ".com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu\"}}",
        "gm3qorzdhgbfurvjtvhg6dckhu");
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{}", "{\"id\":null}",
                                         "{\"id\":\"\"}", "[]", "{\"id\""};
    vg_test_expect_no_task(&vg_adapter_replicate, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_prediction(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_replicate.build_poll, &account, "p1",
                              "GET", BASE "/predictions/p1", KEY);
}

static void test_cancel_call_posts_to_cancel(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_replicate.build_cancel, &account,
                              "p1", "POST", BASE "/predictions/p1/cancel",
                              KEY);
}

static void test_prediction_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_replicate.build_cancel, &account,
                              "../x y", "POST",
                              BASE "/predictions/..%2Fx%20y/cancel", KEY);
}

/* ---- poll answers ----------------------------------------------------- */

static void test_starting_and_processing(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"id\":\"p\",\"status\":\"starting\","
                          "\"output\":null,\"error\":null}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_QUEUED);
    assert_int_equal(st.progress, -1);
    vg_task_status_clear(&st);
    vg_test_expect_state(&vg_adapter_replicate,
                         "{\"id\":\"p\",\"status\":\"processing\","
                         "\"logs\":\"step 3/50\"}",
                         VG_TASK_RUNNING);
}

static void test_succeeded_with_a_url_string(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"id\":\"p\",\"status\":\"succeeded\",\"output\":"
             "\"https://replicate.delivery/xezq/abc/output.mp4\","
             "\"error\":null,\"metrics\":{\"predict_time\":\"61.2\"}}",
             &st),
        0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url,
                        "https://replicate.delivery/xezq/abc/output.mp4");
    assert_int_equal(st.progress, 100);
    assert_true(st.seed == -1);
    assert_true(st.completion_tokens == -1);
    vg_task_status_clear(&st);
}

static void test_succeeded_with_an_array_takes_the_first(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"succeeded\",\"output\":"
                          "[\"https://r/1.mp4\",\"https://r/2.mp4\"]}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "https://r/1.mp4");
    vg_task_status_clear(&st);
}

static void test_succeeded_with_a_video_object(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"succeeded\",\"output\":"
                          "{\"video\":\"https://r/v.mp4\"}}",
                          &st),
                     0);
    assert_string_equal(st.video_url, "https://r/v.mp4");
    vg_task_status_clear(&st);
}

static void test_succeeded_without_a_url_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"status\":\"succeeded\"}",
        "{\"status\":\"succeeded\",\"output\":null}",
        "{\"status\":\"succeeded\",\"output\":[]}",
        "{\"status\":\"succeeded\",\"output\":[5]}",
        "{\"status\":\"succeeded\",\"output\":\"\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_malformed(bodies[i]);
}

static void test_failed_carries_the_error(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_replicate,
                          "{\"status\":\"failed\",\"output\":null,"
                          "\"error\":\"CUDA out of memory\"}",
                          "upstream_failed", "CUDA out of memory");
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":null}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_non_null(strstr(st.error_message, "failed"));
    vg_task_status_clear(&st);
}

static void test_flagged_as_sensitive_is_content_filtered(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_replicate,
                          "{\"status\":\"failed\",\"output\":null,"
                          "\"error\":\"The input or output was flagged as "
                          "sensitive. Please try again with different "
                          "inputs. (E005)\"}",
                          "content_filtered",
                          "The input or output was flagged as sensitive. "
                          "Please try again with different inputs. (E005)");
}

static void test_aborted_is_expired(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"aborted\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_expired");
    vg_task_status_clear(&st);
}

static void test_canceled(void **state)
{
    (void)state;
    vg_test_expect_state(&vg_adapter_replicate, "{\"status\":\"canceled\"}",
                         VG_TASK_CANCELLED);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    expect_malformed("{\"status\":\"dreaming\"}");
    assert_non_null(strstr(err.message, "dreaming"));
    expect_malformed("{\"status\":[]}");
    expect_malformed("{}");
    expect_malformed("null");
    expect_malformed("{\"status\":\"succeeded\"");
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_with_its_poll_interval),
        T(test_submit_text_job_body),
        T(test_submit_options_body),
        T(test_submit_images_are_data_urls),
        T(test_submit_model_must_be_owner_slash_name),
        T(test_submit_three_images_are_refused),
        T(test_submit_missing_image_file_fails),
        T(test_submit_invalid_utf8_prompt_is_refused),
        T(test_parse_submit_reads_the_prediction_id),
        T(test_parse_submit_without_id_is_malformed),
        T(test_poll_call_gets_the_prediction),
        T(test_cancel_call_posts_to_cancel),
        T(test_prediction_id_is_escaped_in_urls),
        T(test_starting_and_processing),
        T(test_succeeded_with_a_url_string),
        T(test_succeeded_with_an_array_takes_the_first),
        T(test_succeeded_with_a_video_object),
        T(test_succeeded_without_a_url_is_malformed),
        T(test_failed_carries_the_error),
        T(test_flagged_as_sensitive_is_content_filtered),
        T(test_aborted_is_expired),
        T(test_canceled),
        T(test_unknown_or_missing_status_is_malformed),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
