/*
 * test_adapter_byteplus.c - the BytePlus ModelArk adapter, checked as
 * data: the exact request each job becomes (URL, headers, body, with and
 * without reference images), and what every poll answer means (each task
 * status, usage and seeds sent as strings, failures, malformed replies).
 *
 * Reference images are tiny files in a scratch directory that the group
 * fixtures create and remove.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

#define BASE "https://ark.ap-southeast.bytepluses.com/api/v3"
#define TASKS BASE "/contents/generations/tasks"
#define KEY "Authorization: Bearer sk-test"

static const vg_upstream_account account = {
    .name = "byteplus",
    .base_url = BASE,
    .api_key = "sk-test",
};

static vg_error err;

static int submit(const vg_job_spec *spec, vg_call *call)
{
    return vg_test_submit(&vg_adapter_byteplus, &account, "m", spec, call,
                          &err);
}

static void expect_submit_error(const vg_job_spec *spec, int status,
                                const char *code, const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_byteplus, &account, "m", spec,
                                status, code, field, &err);
}

static int poll(const char *body, vg_task_status *status)
{
    return vg_test_poll(&vg_adapter_byteplus, body, status, &err);
}

/* parse_poll must refuse body as malformed. */
static void expect_malformed(const char *body)
{
    vg_test_expect_poll_malformed(&vg_adapter_byteplus, body, &err);
}

/* ---- the adapter ------------------------------------------------------ */

static void test_adapter_is_registered_with_its_poll_interval(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("byteplus"), &vg_adapter_byteplus);
    assert_int_equal(vg_adapter_byteplus.default_poll_ms, 5000);
    assert_non_null(vg_adapter_byteplus.build_cancel);
    assert_null(vg_adapter_byteplus.build_download);
}

/* ---- submit ----------------------------------------------------------- */

static void test_submit_text_job_body(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    vg_test_expect_submit(
        &vg_adapter_byteplus, &account, "seedance-1-5-pro-251215", &spec,
        TASKS, KEY,
        "{\"model\":\"seedance-1-5-pro-251215\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a red fox in snow\"}],\"resolution\":\"720p\","
        "\"ratio\":\"16:9\",\"duration\":5,\"seed\":42,\"camera_fixed\":"
        "false,\"watermark\":false,\"generate_audio\":false,"
        "\"service_tier\":\"default\"}");
}

static void test_submit_flex_audio_fixed_camera_body(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_21_9;
    spec.duration = 12;
    spec.seed = 4294967295u;
    spec.camera_fixed = true;
    spec.generate_audio = true;
    spec.tier = VG_TIER_FLEX;
    spec.prompt = "say \"hi\"";
    vg_call call;
    assert_int_equal(submit(&spec, &call), 0);
    assert_string_equal(
        call.body,
        "{\"model\":\"m\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"say \\\"hi\\\"\"}],\"resolution\":\"1080p\",\"ratio\":\"21:9\","
        "\"duration\":12,\"seed\":4294967295,\"camera_fixed\":true,"
        "\"watermark\":false,\"generate_audio\":true,"
        "\"service_tier\":\"flex\"}");
    vg_call_clear(&call);
}

static void test_submit_480p_portrait(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.resolution = VG_RES_480P;
    spec.aspect = VG_AR_9_16;
    vg_call call;
    assert_int_equal(submit(&spec, &call), 0);
    assert_non_null(strstr(call.body, "\"resolution\":\"480p\","
                                      "\"ratio\":\"9:16\""));
    vg_call_clear(&call);
}

static void test_submit_images_are_first_and_last_frame(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_write_png("first.png");
    spec.image_paths[1] = vg_test_write_jpeg("last.jpg");
    spec.n_images = 2;
    vg_call call;
    assert_int_equal(submit(&spec, &call), 0);
    assert_string_equal(
        call.body,
        "{\"model\":\"m\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"a red fox in snow\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"" VG_TEST_PNG_DATA_URL "\"},\"role\":\"first_frame\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"" VG_TEST_JPEG_DATA_URL "\"},\"role\":"
        "\"last_frame\"}],\"resolution\":\"720p\",\"ratio\":\"16:9\","
        "\"duration\":5,\"seed\":42,\"camera_fixed\":false,"
        "\"watermark\":false,\"generate_audio\":false,"
        "\"service_tier\":\"default\"}");
    vg_call_clear(&call);
}

/* One image goes without a role, as the AI SDK's ByteDance provider
 * sends it; roles only come with a last frame. */
static void test_submit_one_image_has_no_role(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.image_paths[0] = vg_test_write_png("only.png");
    spec.n_images = 1;
    vg_call call;
    assert_int_equal(submit(&spec, &call), 0);
    assert_non_null(strstr(call.body,
                           "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                           "\"" VG_TEST_PNG_DATA_URL "\"}}]"));
    assert_null(strstr(call.body, "role"));
    vg_call_clear(&call);
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
    spec.image_paths[0] = vg_test_write_png("exists.png");
    spec.image_paths[1] = vg_test_scratch_path("missing.png");
    spec.n_images = 2;
    expect_submit_error(&spec, 500, "internal_error", NULL);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = vg_test_text_job();
    spec.prompt = "bad \xff byte";
    expect_submit_error(&spec, 400, "validation_error", "prompt");
}

static void test_parse_submit_reads_the_task_id(void **state)
{
    (void)state;
    vg_test_expect_task(&vg_adapter_byteplus, "{\"id\": \"cgt-20250101-abc\"}",
                        "cgt-20250101-abc");
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{}", "{\"id\": \"\"}", "{\"id\": 5}", "[\"id\"]", "not json", ""};
    vg_test_expect_no_task(&vg_adapter_byteplus, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_task(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_byteplus.build_poll, &account,
                              "cgt-1", "GET", TASKS "/cgt-1", KEY);
}

static void test_task_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_byteplus.build_poll, &account,
                              "a/../b?c", "GET", TASKS "/a%2F..%2Fb%3Fc", KEY);
}

static void test_cancel_call_deletes_the_task(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_byteplus.build_cancel, &account,
                              "cgt-1", "DELETE", TASKS "/cgt-1", KEY);
}

/* ---- poll answers ----------------------------------------------------- */

static void test_queued_and_running(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"id\":\"t\",\"status\":\"queued\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_QUEUED);
    assert_int_equal(st.progress, -1);
    assert_null(st.video_url);
    assert_true(st.completion_tokens == -1);
    vg_task_status_clear(&st);
    vg_test_expect_state(&vg_adapter_byteplus,
                         "{\"id\":\"t\",\"status\":\"running\"}",
                         VG_TASK_RUNNING);
}

static void test_succeeded_has_video_usage_and_seed(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"id\":\"t\",\"model\":\"m\",\"status\":\"succeeded\","
             "\"content\":{\"video_url\":\"https://cdn.example/v.mp4?s=1\"},"
             "\"usage\":{\"completion_tokens\":19845,\"total_tokens\":19845},"
             "\"seed\":42,\"resolution\":\"480p\",\"duration\":2}",
             &st),
        0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "https://cdn.example/v.mp4?s=1");
    assert_int_equal(st.progress, 100);
    assert_true(st.seed == 42);
    assert_true(st.completion_tokens == 19845);
    assert_true(st.total_tokens == 19845);
    vg_task_status_clear(&st);
}

static void test_numbers_sent_as_strings_are_read(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"status\":\"succeeded\",\"content\":{\"video_url\":\"u\"},"
             "\"usage\":{\"completion_tokens\":\"108900\","
             "\"total_tokens\":\"108900.0\"},\"seed\":\"4294967295\"}",
             &st),
        0);
    assert_true(st.completion_tokens == 108900);
    assert_true(st.total_tokens == 108900);
    assert_true(st.seed == 4294967295);
    vg_task_status_clear(&st);
}

static void test_usage_that_is_not_a_number_stays_unknown(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"status\":\"succeeded\",\"content\":{\"video_url\":\"u\"},"
             "\"usage\":{\"completion_tokens\":\"many\"},\"seed\":null}",
             &st),
        0);
    assert_true(st.completion_tokens == -1);
    assert_true(st.total_tokens == -1);
    assert_true(st.seed == -1);
    vg_task_status_clear(&st);
}

static void test_succeeded_without_video_is_malformed(void **state)
{
    (void)state;
    expect_malformed("{\"status\":\"succeeded\"}");
    expect_malformed(
        "{\"status\":\"succeeded\",\"content\":{\"video_url\":\"\"}}");
}

static void test_failed_carries_the_reason(void **state)
{
    (void)state;
    vg_test_expect_failed(
        &vg_adapter_byteplus,
        "{\"status\":\"failed\",\"error\":{\"code\":\"InternalError\","
        "\"message\":\"the service hiccuped\"}}",
        "upstream_failed", "the service hiccuped");
}

static void test_failed_without_reason_says_so(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":null}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_failed");
    assert_non_null(strstr(st.error_message, "failed"));
    vg_task_status_clear(&st);
}

static void test_failed_by_the_safety_filter_is_content_filtered(void **s)
{
    (void)s;
    vg_test_expect_failed(
        &vg_adapter_byteplus,
        "{\"status\":\"failed\",\"error\":{\"code\":"
        "\"OutputVideoSensitiveContentDetected\",\"message\":"
        "\"The output video may contain sensitive information.\"}}",
        "content_filtered",
        "The output video may contain sensitive information.");
}

static void test_expired_is_a_failure(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"expired\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_expired");
    assert_non_null(strstr(st.error_message, "expired"));
    vg_task_status_clear(&st);
}

static void test_cancelled(void **state)
{
    (void)state;
    vg_test_expect_state(&vg_adapter_byteplus, "{\"status\":\"cancelled\"}",
                         VG_TASK_CANCELLED);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    expect_malformed("{\"status\":\"exploded\"}");
    assert_non_null(strstr(err.message, "exploded"));
    expect_malformed("{\"status\":5}");
    expect_malformed("{}");
    expect_malformed("{\"status\":");
    expect_malformed("");
    expect_malformed("\"queued\"");
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_with_its_poll_interval),
        T(test_submit_text_job_body),
        T(test_submit_flex_audio_fixed_camera_body),
        T(test_submit_480p_portrait),
        T(test_submit_images_are_first_and_last_frame),
        T(test_submit_one_image_has_no_role),
        T(test_submit_three_images_are_refused),
        T(test_submit_missing_image_file_fails),
        T(test_submit_invalid_utf8_prompt_is_refused),
        T(test_parse_submit_reads_the_task_id),
        T(test_parse_submit_without_id_is_malformed),
        T(test_poll_call_gets_the_task),
        T(test_task_id_is_escaped_in_urls),
        T(test_cancel_call_deletes_the_task),
        T(test_queued_and_running),
        T(test_succeeded_has_video_usage_and_seed),
        T(test_numbers_sent_as_strings_are_read),
        T(test_usage_that_is_not_a_number_stays_unknown),
        T(test_succeeded_without_video_is_malformed),
        T(test_failed_carries_the_reason),
        T(test_failed_without_reason_says_so),
        T(test_failed_by_the_safety_filter_is_content_filtered),
        T(test_expired_is_a_failure),
        T(test_cancelled),
        T(test_unknown_or_missing_status_is_malformed),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
