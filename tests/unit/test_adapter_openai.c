/*
 * test_adapter_openai.c - the adapter for OpenAI-style Videos API
 * servers, checked as data: the create call (seconds as a string, size
 * from the frame size, images refused), the poll and cancel calls, what
 * every video status means, and the download of the content, which goes
 * back to the account's server with its key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/adapter.h"
#include "test_support.h"

/* A 1x1 grey PNG. */
static const unsigned char png[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00"
    "\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00\x3a\x7e\x9b\x55\x00"
    "\x00\x00\x0a\x49\x44\x41\x54\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01"
    "\x48\xaf\xa4\x71\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

static const vg_upstream_account account = {
    .name = "sora-box",
    .base_url = "http://10.0.0.7:8000",
    .api_key = "sk-local",
};

#define BASE "http://10.0.0.7:8000"

static vg_error err;

static vg_job_spec text_job(void)
{
    vg_job_spec spec = {
        .prompt = "a red fox in snow",
        .resolution = VG_RES_720P,
        .aspect = VG_AR_16_9,
        .width = 1280,
        .height = 720,
        .duration = 8,
        .fps = 24,
        .seed = 42,
    };
    return spec;
}

static vg_reply reply_of(const char *body)
{
    vg_reply reply = {.status = 200, .body = body, .size = strlen(body)};
    return reply;
}

static int submit(const char *model, const vg_job_spec *spec, vg_call *call)
{
    memset(call, 0, sizeof(*call));
    memset(&err, 0, sizeof(err));
    return vg_adapter_openai.build_submit(&account, model, spec, call, &err);
}

static int poll(const char *body, vg_task_status *status)
{
    vg_reply reply = reply_of(body);
    vg_task_status_init(status);
    memset(&err, 0, sizeof(err));
    return vg_adapter_openai.parse_poll(&reply, status, &err);
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
    assert_ptr_equal(vg_adapter_find("openai"), &vg_adapter_openai);
    assert_int_equal(vg_adapter_openai.default_poll_ms, 2000);
    assert_non_null(vg_adapter_openai.build_cancel);
    assert_non_null(vg_adapter_openai.build_download);
}

/* ---- submit ----------------------------------------------------------- */

static void test_submit_body(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    vg_call call;
    assert_int_equal(submit("sora-2", &spec, &call), 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, BASE "/v1/videos");
    assert_int_equal(call.n_headers, 2);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-local");
    assert_string_equal(call.headers[1], "Content-Type: application/json");
    assert_string_equal(call.body,
                        "{\"model\":\"sora-2\",\"prompt\":\"a red fox in "
                        "snow\",\"seconds\":\"8\",\"size\":\"1280x720\"}");
    vg_call_clear(&call);
}

static void test_submit_portrait_size_and_other_seconds(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.width = 720;
    spec.height = 1280;
    spec.aspect = VG_AR_9_16;
    spec.duration = 12;
    spec.prompt = "line one\nline two";
    vg_call call;
    assert_int_equal(submit("wan-local", &spec, &call), 0);
    assert_string_equal(call.body,
                        "{\"model\":\"wan-local\",\"prompt\":\"line one\\n"
                        "line two\",\"seconds\":\"12\",\"size\":"
                        "\"720x1280\"}");
    vg_call_clear(&call);
}

static void test_submit_with_images_is_unsupported(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = vg_test_scratch_path("ref.png");
    vg_test_write_file(spec.image_paths[0], png, sizeof(png) - 1);
    spec.n_images = 1;
    vg_call call;
    assert_int_equal(submit("sora-2", &spec, &call), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "unsupported_parameter");
    assert_string_equal(err.field, "images");
    assert_null(call.url);
    assert_null(call.body);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.prompt = "\x80";
    vg_call call;
    assert_int_equal(submit("sora-2", &spec, &call), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "prompt");
}

static void test_parse_submit_reads_the_video_id(void **state)
{
    (void)state;
    vg_reply reply = reply_of("{\"id\":\"video_123\",\"object\":\"video\","
                              "\"status\":\"queued\",\"progress\":0}");
    char *task = NULL;
    assert_int_equal(vg_adapter_openai.parse_submit(&reply, &task, &err), 0);
    assert_string_equal(task, "video_123");
    free(task);
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{\"object\":\"video\"}",
                                         "{\"id\":\"\"}", "{\"id\":{}}", "[]",
                                         "oops"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        vg_reply reply = reply_of(bodies[i]);
        char *task = NULL;
        memset(&err, 0, sizeof(err));
        expect_malformed(vg_adapter_openai.parse_submit(&reply, &task, &err));
        assert_null(task);
    }
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_video(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_poll(&account, "video_123", &call, &err), 0);
    assert_string_equal(call.method, "GET");
    assert_string_equal(call.url, BASE "/v1/videos/video_123");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-local");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_cancel_call_deletes_the_video(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_cancel(&account, "video_123", &call, &err), 0);
    assert_string_equal(call.method, "DELETE");
    assert_string_equal(call.url, BASE "/v1/videos/video_123");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-local");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_video_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_poll(&account, "a/b#c", &call, &err), 0);
    assert_string_equal(call.url, BASE "/v1/videos/a%2Fb%23c");
    vg_call_clear(&call);
}

/* ---- poll answers ----------------------------------------------------- */

static void test_queued_and_in_progress_with_progress(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"id\":\"v\",\"status\":\"queued\","
                          "\"progress\":0}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_QUEUED);
    assert_int_equal(st.progress, 0);
    vg_task_status_clear(&st);
    assert_int_equal(poll("{\"id\":\"v\",\"status\":\"in_progress\","
                          "\"progress\":\"37.5\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_RUNNING);
    assert_int_equal(st.progress, 37);
    vg_task_status_clear(&st);
    assert_int_equal(
        poll("{\"status\":\"in_progress\",\"progress\":250}", &st), 0);
    assert_int_equal(st.progress, 100);
    vg_task_status_clear(&st);
    assert_int_equal(
        poll("{\"status\":\"in_progress\",\"progress\":null}", &st), 0);
    assert_int_equal(st.progress, -1);
    vg_task_status_clear(&st);
}

static void test_completed_points_at_the_content(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"id\":\"video_123\",\"object\":\"video\","
                          "\"status\":\"completed\",\"progress\":100,"
                          "\"seconds\":\"8\",\"size\":\"1280x720\","
                          "\"error\":null}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "/v1/videos/video_123/content");
    assert_int_equal(st.progress, 100);
    vg_task_status_clear(&st);
}

static void test_completed_without_id_is_malformed(void **state)
{
    (void)state;
    vg_task_status st;
    expect_malformed(poll("{\"status\":\"completed\"}", &st));
    assert_null(st.video_url);
}

static void test_failed_carries_the_message(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"id\":\"v\",\"status\":\"failed\",\"error\":"
                          "{\"code\":\"internal_error\",\"message\":"
                          "\"GPU fell over\"}}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_failed");
    assert_string_equal(st.error_message, "GPU fell over");
    vg_task_status_clear(&st);
}

static void test_failed_by_moderation_is_content_filtered(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":{\"code\":"
                          "\"moderation_blocked\",\"message\":\"no\"}}",
                          &st),
                     0);
    assert_string_equal(st.error_code, "content_filtered");
    vg_task_status_clear(&st);
}

static void test_failed_without_message_says_so(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":null}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_non_null(strstr(st.error_message, "failed"));
    vg_task_status_clear(&st);
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":\"oom\"}", &st),
                     0);
    assert_string_equal(st.error_message, "oom");
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
    expect_malformed(poll("{\"status\":\"rendering\"}", &st));
    assert_non_null(strstr(err.message, "rendering"));
    expect_malformed(poll("{\"status\":true}", &st));
    expect_malformed(poll("{}", &st));
    expect_malformed(poll("[{\"status\":\"queued\"}]", &st));
    expect_malformed(poll("{\"status\"", &st));
}

/* ---- download --------------------------------------------------------- */

static void test_download_of_the_content_path_carries_the_key(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_download(
            &account, "/v1/videos/video_123/content", &call, &err),
        0);
    assert_string_equal(call.method, "GET");
    assert_string_equal(call.url, BASE "/v1/videos/video_123/content");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer sk-local");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_download_of_an_absolute_url_has_no_key(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_download(
            &account, "https://cdn.example/v.mp4?sig=1", &call, &err),
        0);
    assert_string_equal(call.method, "GET");
    assert_string_equal(call.url, "https://cdn.example/v.mp4?sig=1");
    assert_int_equal(call.n_headers, 0);
    vg_call_clear(&call);
}

static void test_download_of_something_else_is_refused(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_openai.build_download(&account, "v.mp4", &call, &err), -1);
    assert_int_equal(err.status, 502);
    assert_null(call.url);
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_with_its_poll_interval),
        T(test_submit_body),
        T(test_submit_portrait_size_and_other_seconds),
        T(test_submit_with_images_is_unsupported),
        T(test_submit_invalid_utf8_prompt_is_refused),
        T(test_parse_submit_reads_the_video_id),
        T(test_parse_submit_without_id_is_malformed),
        T(test_poll_call_gets_the_video),
        T(test_cancel_call_deletes_the_video),
        T(test_video_id_is_escaped_in_urls),
        T(test_queued_and_in_progress_with_progress),
        T(test_completed_points_at_the_content),
        T(test_completed_without_id_is_malformed),
        T(test_failed_carries_the_message),
        T(test_failed_by_moderation_is_content_filtered),
        T(test_failed_without_message_says_so),
        T(test_cancelled),
        T(test_unknown_or_missing_status_is_malformed),
        T(test_download_of_the_content_path_carries_the_key),
        T(test_download_of_an_absolute_url_has_no_key),
        T(test_download_of_something_else_is_refused),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
