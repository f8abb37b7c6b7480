/*
 * test_adapter_openai.c - the adapter for OpenAI-style Videos API
 * servers, checked as data: the create call (multipart form fields,
 * seconds as a string, size from the frame size, the reference image as
 * the input_reference file part), the poll and delete calls (no cancel:
 * the API has none), what
 * every video status means, and the download of the content, which goes
 * back to the account's server with its key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

#define BASE "http://10.0.0.7:8000"
#define KEY "Authorization: Bearer sk-local"

static const vg_upstream_account account = {
    .name = "sora-box",
    .base_url = BASE,
    .api_key = "sk-local",
};

static vg_error err;

/* The common text job, at the 8 s the Videos API's models make. */
static vg_job_spec text_job(void)
{
    vg_job_spec spec = vg_test_text_job();
    spec.duration = 8;
    return spec;
}

static int submit(const char *model, const vg_job_spec *spec, vg_call *call)
{
    return vg_test_submit(&vg_adapter_openai, &account, model, spec, call,
                          &err);
}

static void expect_submit_error(const vg_job_spec *spec, int status,
                                const char *code, const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_openai, &account, "sora-2", spec,
                                status, code, field, &err);
}

static int poll(const char *body, vg_task_status *status)
{
    return vg_test_poll(&vg_adapter_openai, body, status, &err);
}

/* parse_poll must refuse body as malformed. */
static void expect_malformed(const char *body)
{
    vg_test_expect_poll_malformed(&vg_adapter_openai, body, &err);
}

/* ---- the adapter ------------------------------------------------------ */

static void test_adapter_is_registered_with_its_poll_interval(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("openai"), &vg_adapter_openai);
    assert_int_equal(vg_adapter_openai.default_poll_ms, 2000);
    /* DELETE is for finished videos only: it is no cancel. */
    assert_null(vg_adapter_openai.build_cancel);
    assert_non_null(vg_adapter_openai.build_delete);
    assert_non_null(vg_adapter_openai.build_download);
}

/* ---- submit ----------------------------------------------------------- */

/* Part i of a call's form is the text field name=value. */
static void expect_field(const vg_call *call, int i, const char *name,
                         const char *value)
{
    assert_true(i < call->n_parts);
    assert_string_equal(call->parts[i].name, name);
    assert_non_null(call->parts[i].value);
    assert_string_equal(call->parts[i].value, value);
    assert_null(call->parts[i].file);
}

static void test_submit_is_a_multipart_form(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    vg_call call;
    assert_int_equal(submit("sora-2", &spec, &call), 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, BASE "/v1/videos");
    /* No JSON body and no Content-Type of ours: libcurl writes the
     * multipart one with its boundary. */
    assert_null(call.body);
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], KEY);
    assert_int_equal(call.n_parts, 4);
    expect_field(&call, 0, "model", "sora-2");
    expect_field(&call, 1, "prompt", "a red fox in snow");
    expect_field(&call, 2, "seconds", "8");
    expect_field(&call, 3, "size", "1280x720");
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
    expect_field(&call, 0, "model", "wan-local");
    expect_field(&call, 1, "prompt", "line one\nline two");
    expect_field(&call, 2, "seconds", "12");
    expect_field(&call, 3, "size", "720x1280");
    vg_call_clear(&call);
}

/* Image-to-video: the reference image is the input_reference file part,
 * with its own type and a matching name. */
static void test_submit_sends_the_image_as_input_reference(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = vg_test_write_png("ref.png");
    spec.n_images = 1;
    vg_call call;
    assert_int_equal(submit("sora-2", &spec, &call), 0);
    assert_int_equal(call.n_parts, 5);
    const vg_form_part *part = &call.parts[4];
    assert_string_equal(part->name, "input_reference");
    assert_null(part->value);
    assert_string_equal(part->file, spec.image_paths[0]);
    assert_string_equal(part->filename, "reference.png");
    assert_string_equal(part->type, "image/png");
    /* A retry sends a deep copy. */
    vg_call copy;
    assert_int_equal(vg_call_copy(&copy, &call), 0);
    assert_int_equal(copy.n_parts, 5);
    assert_string_equal(copy.parts[4].file, spec.image_paths[0]);
    assert_ptr_not_equal(copy.parts[4].file, part->file);
    vg_call_clear(&copy);
    vg_call_clear(&call);
}

static void test_submit_with_two_images_is_unsupported(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = vg_test_write_png("ref.png");
    spec.image_paths[1] = spec.image_paths[0];
    spec.n_images = 2;
    expect_submit_error(&spec, 400, "unsupported_parameter", "files");
}

static void test_parse_submit_reads_the_video_id(void **state)
{
    (void)state;
    vg_test_expect_task(&vg_adapter_openai,
                        "{\"id\":\"video_123\",\"object\":\"video\","
                        "\"status\":\"queued\",\"progress\":0}",
                        "video_123");
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{\"object\":\"video\"}",
                                         "{\"id\":\"\"}", "{\"id\":{}}", "[]",
                                         "oops"};
    vg_test_expect_no_task(&vg_adapter_openai, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_video(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_openai.build_poll, &account,
                              "video_123", "GET", BASE "/v1/videos/video_123",
                              KEY);
}

static void test_delete_call_deletes_the_video(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_openai.build_delete, &account,
                              "video_123", "DELETE",
                              BASE "/v1/videos/video_123", KEY);
}

static void test_video_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_openai.build_poll, &account, "a/b#c",
                              "GET", BASE "/v1/videos/a%2Fb%23c", KEY);
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
    expect_malformed("{\"status\":\"completed\"}");
}

static void test_failed_carries_the_message(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_openai,
                          "{\"id\":\"v\",\"status\":\"failed\",\"error\":"
                          "{\"code\":\"internal_error\",\"message\":"
                          "\"GPU fell over\"}}",
                          "upstream_failed", "GPU fell over");
}

static void test_failed_by_moderation_is_content_filtered(void **state)
{
    (void)state;
    vg_test_expect_failed(&vg_adapter_openai,
                          "{\"status\":\"failed\",\"error\":{\"code\":"
                          "\"moderation_blocked\",\"message\":\"no\"}}",
                          "content_filtered", "no");
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
    vg_test_expect_state(&vg_adapter_openai, "{\"status\":\"cancelled\"}",
                         VG_TASK_CANCELLED);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    expect_malformed("{\"status\":\"rendering\"}");
    assert_non_null(strstr(err.message, "rendering"));
    expect_malformed("{\"status\":true}");
    expect_malformed("{}");
    expect_malformed("[{\"status\":\"queued\"}]");
    expect_malformed("{\"status\"");
}

/* ---- download --------------------------------------------------------- */

static void test_download_of_the_content_path_carries_the_key(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_openai.build_download, &account,
                              "/v1/videos/video_123/content", "GET",
                              BASE "/v1/videos/video_123/content", KEY);
}

static void test_download_of_an_absolute_url_has_no_key(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_openai.build_download, &account,
                              "https://cdn.example/v.mp4?sig=1", "GET",
                              "https://cdn.example/v.mp4?sig=1", NULL);
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
        T(test_submit_is_a_multipart_form),
        T(test_submit_portrait_size_and_other_seconds),
        T(test_submit_sends_the_image_as_input_reference),
        T(test_submit_with_two_images_is_unsupported),
        T(test_parse_submit_reads_the_video_id),
        T(test_parse_submit_without_id_is_malformed),
        T(test_poll_call_gets_the_video),
        T(test_delete_call_deletes_the_video),
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
