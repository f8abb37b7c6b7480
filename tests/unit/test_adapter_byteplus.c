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

#include <stdio.h>
#include <string.h>

#include "providers/adapter.h"
#include "test_support.h"

/* A 1x1 grey PNG and the start of a JPEG, with their base64. */
static const unsigned char png[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00"
    "\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00\x3a\x7e\x9b\x55\x00"
    "\x00\x00\x0a\x49\x44\x41\x54\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01"
    "\x48\xaf\xa4\x71\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
#define PNG_URL                                                               \
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAA"  \
    "CklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
static const unsigned char jpeg[] = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9";
#define JPEG_URL "data:image/jpeg;base64,/9j/4AAQSkZJRgD/2Q=="

static const vg_upstream_account account = {
    .name = "byteplus",
    .base_url = "https://ark.ap-southeast.bytepluses.com/api/v3",
    .api_key = "sk-test",
};

#define BASE "https://ark.ap-southeast.bytepluses.com/api/v3"

static vg_error err;

static vg_job_spec text_job(void)
{
    vg_job_spec spec = {
        .prompt = "a red fox in snow",
        .resolution = VG_RES_720P,
        .aspect = VG_AR_16_9,
        .width = 1280,
        .height = 720,
        .duration = 5,
        .fps = 24,
        .seed = 42,
    };
    return spec;
}

static const char *write_image(const char *name, const unsigned char *bytes,
                               size_t n)
{
    const char *path = vg_test_scratch_path(name);
    vg_test_write_file(path, bytes, n);
    return path;
}

static vg_reply reply_of(const char *body)
{
    vg_reply reply = {.status = 200, .body = body, .size = strlen(body)};
    return reply;
}

static int poll(const char *body, vg_task_status *status)
{
    vg_reply reply = reply_of(body);
    vg_task_status_init(status);
    memset(&err, 0, sizeof(err));
    return vg_adapter_byteplus.parse_poll(&reply, status, &err);
}

static void expect_malformed(int rc)
{
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.code, "upstream_malformed");
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
    vg_job_spec spec = text_job();
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "seedance-1-5-pro-251215",
                                         &spec, &call, &err),
        0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, BASE "/contents/generations/tasks");
    assert_int_equal(call.n_headers, 2);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-test");
    assert_string_equal(call.headers[1], "Content-Type: application/json");
    assert_string_equal(
        call.body,
        "{\"model\":\"seedance-1-5-pro-251215\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a red fox in snow\"}],\"resolution\":\"720p\","
        "\"ratio\":\"16:9\",\"duration\":5,\"seed\":42,\"camera_fixed\":"
        "false,\"watermark\":false,\"generate_audio\":false,"
        "\"service_tier\":\"default\"}");
    vg_call_clear(&call);
}

static void test_submit_flex_audio_fixed_camera_body(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.resolution = VG_RES_1080P;
    spec.aspect = VG_AR_21_9;
    spec.duration = 12;
    spec.seed = 4294967295u;
    spec.camera_fixed = true;
    spec.generate_audio = true;
    spec.tier = VG_TIER_FLEX;
    spec.prompt = "say \"hi\"";
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        0);
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
    vg_job_spec spec = text_job();
    spec.resolution = VG_RES_480P;
    spec.aspect = VG_AR_9_16;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        0);
    assert_non_null(strstr(call.body, "\"resolution\":\"480p\","
                                      "\"ratio\":\"9:16\""));
    vg_call_clear(&call);
}

static void test_submit_images_are_first_and_last_frame(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = write_image("first.png", png, sizeof(png) - 1);
    spec.image_paths[1] = write_image("last.jpg", jpeg, sizeof(jpeg) - 1);
    spec.n_images = 2;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        0);
    assert_string_equal(
        call.body,
        "{\"model\":\"m\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"a red fox in snow\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"" PNG_URL "\"},\"role\":\"first_frame\"},{\"type\":"
        "\"image_url\",\"image_url\":{\"url\":\"" JPEG_URL "\"},\"role\":"
        "\"last_frame\"}],\"resolution\":\"720p\",\"ratio\":\"16:9\","
        "\"duration\":5,\"seed\":42,\"camera_fixed\":false,"
        "\"watermark\":false,\"generate_audio\":false,"
        "\"service_tier\":\"default\"}");
    vg_call_clear(&call);
}

static void test_submit_one_image_is_the_first_frame(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = write_image("only.png", png, sizeof(png) - 1);
    spec.n_images = 1;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        0);
    assert_non_null(strstr(call.body, "\"role\":\"first_frame\"}]"));
    assert_null(strstr(call.body, "last_frame"));
    vg_call_clear(&call);
}

static void test_submit_three_images_are_refused(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    const char *path = write_image("three.png", png, sizeof(png) - 1);
    for (int i = 0; i < 3; i++)
        spec.image_paths[i] = path;
    spec.n_images = 3;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "unsupported_parameter");
    assert_string_equal(err.field, "images");
    assert_null(call.url);
}

static void test_submit_missing_image_file_fails(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = write_image("exists.png", png, sizeof(png) - 1);
    spec.image_paths[1] = vg_test_scratch_path("missing.png");
    spec.n_images = 2;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        -1);
    assert_int_equal(err.status, 500);
    assert_null(call.url);
    assert_null(call.body);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.prompt = "bad \xff byte";
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_submit(&account, "m", &spec, &call, &err),
        -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "prompt");
}

static void test_parse_submit_reads_the_task_id(void **state)
{
    (void)state;
    vg_reply reply = reply_of("{\"id\": \"cgt-20250101-abc\"}");
    char *task = NULL;
    assert_int_equal(vg_adapter_byteplus.parse_submit(&reply, &task, &err), 0);
    assert_string_equal(task, "cgt-20250101-abc");
    free(task);
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{}", "{\"id\": \"\"}", "{\"id\": 5}", "[\"id\"]", "not json", ""};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        vg_reply reply = reply_of(bodies[i]);
        char *task = NULL;
        memset(&err, 0, sizeof(err));
        expect_malformed(
            vg_adapter_byteplus.parse_submit(&reply, &task, &err));
        assert_null(task);
    }
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_task(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_poll(&account, "cgt-1", &call, &err), 0);
    assert_string_equal(call.method, "GET");
    assert_string_equal(call.url, BASE "/contents/generations/tasks/cgt-1");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-test");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_task_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_poll(&account, "a/../b?c", &call, &err), 0);
    assert_string_equal(call.url,
                        BASE "/contents/generations/tasks/a%2F..%2Fb%3Fc");
    vg_call_clear(&call);
}

static void test_cancel_call_deletes_the_task(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_byteplus.build_cancel(&account, "cgt-1", &call, &err), 0);
    assert_string_equal(call.method, "DELETE");
    assert_string_equal(call.url, BASE "/contents/generations/tasks/cgt-1");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-test");
    assert_null(call.body);
    vg_call_clear(&call);
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
    assert_int_equal(poll("{\"id\":\"t\",\"status\":\"running\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_RUNNING);
    vg_task_status_clear(&st);
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
    vg_task_status st;
    expect_malformed(poll("{\"status\":\"succeeded\"}", &st));
    assert_null(st.video_url);
    expect_malformed(poll(
        "{\"status\":\"succeeded\",\"content\":{\"video_url\":\"\"}}", &st));
    assert_null(st.video_url);
}

static void test_failed_carries_the_reason(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(
        poll("{\"status\":\"failed\",\"error\":{\"code\":\"InternalError\","
             "\"message\":\"the service hiccuped\"}}",
             &st),
        0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_failed");
    assert_string_equal(st.error_message, "the service hiccuped");
    vg_task_status_clear(&st);
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
    vg_task_status st;
    assert_int_equal(
        poll("{\"status\":\"failed\",\"error\":{\"code\":"
             "\"OutputVideoSensitiveContentDetected\",\"message\":"
             "\"The output video may contain sensitive information.\"}}",
             &st),
        0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "content_filtered");
    assert_string_equal(st.error_message,
                        "The output video may contain sensitive information.");
    vg_task_status_clear(&st);
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
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"cancelled\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_CANCELLED);
    vg_task_status_clear(&st);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    vg_task_status st;
    expect_malformed(poll("{\"status\":\"exploded\"}", &st));
    assert_non_null(strstr(err.message, "exploded"));
    expect_malformed(poll("{\"status\":5}", &st));
    expect_malformed(poll("{}", &st));
    expect_malformed(poll("{\"status\":", &st));
    expect_malformed(poll("", &st));
    expect_malformed(poll("\"queued\"", &st));
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
        T(test_submit_one_image_is_the_first_frame),
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
