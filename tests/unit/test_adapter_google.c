/*
 * test_adapter_google.c - the Gemini API (Veo) adapter: the exact
 * predictLongRunning request for Veo 3.x and Veo 2, the parameters the
 * Gemini API refuses never being sent, each model's duration and
 * resolution rules as 400s, the operation poll, every way an operation
 * ends (video, error, safety filter, nothing), and who gets the API key
 * on a download.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "adapter_support.h"
#include "providers/oauth.h"
#include "test_support.h"

#define BASE "https://generativelanguage.googleapis.com/v1beta"
#define VEO3 "veo-3.1-generate-preview"
#define VEO2 "veo-2.0-generate-001"
#define KEY "x-goog-api-key: AIza-test"

/* The reference images as the Gemini API takes them. */
#define PNG_IMAGE                                                             \
    "{\"bytesBase64Encoded\":\"" VG_TEST_PNG_BASE64 "\","                     \
    "\"mimeType\":\"image/png\"}"
#define JPEG_IMAGE                                                            \
    "{\"bytesBase64Encoded\":\"" VG_TEST_JPEG_BASE64 "\","                    \
    "\"mimeType\":\"image/jpeg\"}"

static const vg_upstream_account account = {
    .name = "google",
    .base_url = BASE,
    .api_key = "AIza-test",
};

static vg_error err;

/* An 8 s 720P 16:9 text-to-video job; tests change what they exercise. */
static vg_job_spec job(void)
{
    vg_job_spec spec = vg_test_text_job();
    spec.prompt = "a cat";
    spec.duration = 8;
    return spec;
}

static void expect_submit(const char *model, const vg_job_spec *spec,
                          const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), BASE "/models/%s:predictLongRunning", model);
    vg_test_expect_submit(&vg_adapter_google, &account, model, spec, url, KEY,
                          body);
}

static void expect_refused(const char *model, const vg_job_spec *spec,
                           const char *field)
{
    vg_test_expect_submit_error(&vg_adapter_google, &account, model, spec, 400,
                                "unsupported_parameter", field, &err);
}

static void poll(const char *body, vg_task_status *status)
{
    vg_test_poll_ok(&vg_adapter_google, body, status, &err);
}

/* ---- the adapter's table ----------------------------------------------- */

static void test_adapter_is_registered_as_google(void **state)
{
    (void)state;
    assert_ptr_equal(vg_adapter_find("google"), &vg_adapter_google);
    assert_string_equal(vg_adapter_google.name, "google");
    assert_string_equal(vg_adapter_google.key_header_hint,
                        "x-goog-api-key: KEY");
    assert_int_equal(vg_adapter_google.default_poll_ms, 10000);
    assert_non_null(vg_adapter_google.build_submit);
    assert_non_null(vg_adapter_google.parse_submit);
    assert_non_null(vg_adapter_google.build_poll);
    assert_non_null(vg_adapter_google.parse_poll);
    assert_non_null(vg_adapter_google.build_download);
    assert_null(vg_adapter_google.build_cancel);
}

/* ---- submit ------------------------------------------------------------ */

static void test_veo3_text_to_video_body(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    expect_submit(VEO3, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":8,"
                  "\"aspectRatio\":\"16:9\",\"resolution\":\"720p\"}}");
}

static void test_veo3_short_portrait_and_1080p(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 4;
    spec.aspect = VG_AR_9_16;
    expect_submit("veo-3.0-fast-generate-001", &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":4,"
                  "\"aspectRatio\":\"9:16\",\"resolution\":\"720p\"}}");
    spec = job();
    spec.resolution = VG_RES_1080P;
    expect_submit(VEO3, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":8,"
                  "\"aspectRatio\":\"16:9\",\"resolution\":\"1080p\"}}");
}

static void test_gemini_refused_parameters_are_never_sent(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.generate_audio = true;
    spec.camera_fixed = true;
    spec.fps = 30;
    spec.seed = 123456;
    spec.tier = VG_TIER_FLEX;
    expect_submit(VEO3, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":8,"
                  "\"aspectRatio\":\"16:9\",\"resolution\":\"720p\"}}");
}

static void test_first_and_last_frame_as_base64(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.image_paths[0] = vg_test_png_path;
    spec.n_images = 1;
    expect_submit(VEO3, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\","
                  "\"image\":" PNG_IMAGE "}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":8,"
                  "\"aspectRatio\":\"16:9\",\"resolution\":\"720p\"}}");
    spec.image_paths[1] = vg_test_jpeg_path;
    spec.n_images = 2;
    expect_submit(VEO3, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\","
                  "\"image\":" PNG_IMAGE ",\"lastFrame\":" JPEG_IMAGE "}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":8,"
                  "\"aspectRatio\":\"16:9\",\"resolution\":\"720p\"}}");
}

static void test_veo2_body_has_no_resolution(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 5;
    expect_submit(VEO2, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":5,"
                  "\"aspectRatio\":\"16:9\"}}");
    spec.duration = 7;
    spec.aspect = VG_AR_9_16;
    expect_submit(VEO2, &spec,
                  "{\"instances\":[{\"prompt\":\"a cat\"}],"
                  "\"parameters\":{\"sampleCount\":1,\"durationSeconds\":7,"
                  "\"aspectRatio\":\"9:16\"}}");
}

static void test_veo2_refuses_what_it_cannot_make(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_1080P;
    expect_refused(VEO2, &spec, "resolution");
    spec.resolution = VG_RES_480P;
    expect_refused(VEO2, &spec, "resolution");
    spec = job();
    spec.duration = 4;
    expect_refused(VEO2, &spec, "duration");
    spec.duration = 10;
    expect_refused(VEO2, &spec, "duration");
    spec = job();
    spec.generate_audio = true;
    expect_refused(VEO2, &spec, "generate_audio");
}

static void test_veo3_refuses_480p(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_480P;
    expect_refused(VEO3, &spec, "resolution");
}

static void test_veo3_1080p_needs_8_seconds(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.resolution = VG_RES_1080P;
    spec.duration = 6;
    expect_refused(VEO3, &spec, "duration");
    if (strstr(err.message, "8") == NULL)
        fail_msg("message \"%s\" does not say 8 s", err.message);
}

static void test_veo3_refuses_other_durations(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.duration = 5;
    expect_refused(VEO3, &spec, "duration");
    spec.duration = 10;
    expect_refused(VEO3, &spec, "duration");
}

static void test_only_16_9_and_9_16(void **state)
{
    (void)state;
    static const vg_aspect refused[] = {VG_AR_1_1, VG_AR_4_3, VG_AR_3_4,
                                        VG_AR_21_9};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        vg_job_spec spec = job();
        spec.aspect = refused[i];
        expect_refused(VEO3, &spec, "aspect_ratio");
        expect_refused(VEO2, &spec, "aspect_ratio");
    }
}

static void test_refuses_a_third_image(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.image_paths[0] = vg_test_png_path;
    spec.image_paths[1] = vg_test_jpeg_path;
    spec.image_paths[2] = vg_test_png_path;
    spec.n_images = 3;
    expect_refused(VEO3, &spec, "files");
}

static void test_missing_image_file_is_an_internal_error(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.image_paths[0] = vg_test_png_path;
    spec.image_paths[1] = vg_test_scratch_path("missing.jpg");
    spec.n_images = 2;
    vg_test_expect_submit_error(&vg_adapter_google, &account, VEO3, &spec, 500,
                                "internal_error", NULL, &err);
}

/* ---- submit reply ------------------------------------------------------ */

static void test_submit_reply_gives_the_operation_name(void **state)
{
    (void)state;
    vg_test_expect_task(&vg_adapter_google,
                        "{\"name\": \"models/" VEO3 "/operations/abc123\"}",
                        "models/" VEO3 "/operations/abc123");
}

static void test_submit_reply_without_name_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{}", "{\"name\": \"\"}",
                                         "{\"name\": 5}", "not json", "[]"};
    vg_test_expect_no_task(&vg_adapter_google, bodies,
                           sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- poll -------------------------------------------------------------- */

static void test_poll_call_gets_the_operation(void **state)
{
    (void)state;
    vg_test_expect_built_call(vg_adapter_google.build_poll, &account,
                              "models/" VEO3 "/operations/abc123", "GET",
                              BASE "/models/" VEO3 "/operations/abc123", KEY);
}

static void test_poll_refuses_a_task_that_is_not_an_operation(void **state)
{
    (void)state;
    static const char *const tasks[] = {"",
                                        "/models/x",
                                        "models/../../admin",
                                        "models/x?alt=1",
                                        "models/x op",
                                        "https://evil.example/x"};
    for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
        vg_call call = {0};
        memset(&err, 0, sizeof(err));
        int rc = vg_adapter_google.build_poll(&account, tasks[i], &call, &err);
        assert_int_equal(rc, -1);
        assert_int_equal(err.status, 500);
        assert_null(call.url);
    }
}

static void test_poll_not_done_is_running(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"name\": \"models/x/operations/y\", \"done\": false}", &s);
    assert_int_equal(s.state, VG_TASK_RUNNING);
    assert_int_equal(s.progress, -1);
    assert_null(s.video_url);
    vg_task_status_clear(&s);
    /* Google leaves "done" out until it is true. */
    vg_test_expect_state(
        &vg_adapter_google,
        "{\"name\": \"models/x/operations/y\", \"metadata\": {}}",
        VG_TASK_RUNNING);
}

static void test_poll_done_with_a_video(void **state)
{
    (void)state;
    vg_task_status s;
    poll("{\"name\": \"models/x/operations/y\", \"done\": true, "
         "\"response\": {\"@type\": \"type.googleapis.com/google.ai."
         "generativelanguage.v1beta.PredictLongRunningResponse\", "
         "\"generateVideoResponse\": {\"generatedSamples\": [{\"video\": "
         "{\"uri\": \"" BASE "/files/abc:download?alt=media\"}}]}}}",
         &s);
    assert_int_equal(s.state, VG_TASK_SUCCEEDED);
    assert_string_equal(s.video_url, BASE "/files/abc:download?alt=media");
    assert_int_equal(s.progress, 100);
    assert_int_equal(s.seed, -1);
    vg_task_status_clear(&s);
}

static void test_poll_done_with_an_error(void **state)
{
    (void)state;
    vg_test_expect_failed(
        &vg_adapter_google,
        "{\"name\": \"n\", \"done\": true, \"error\": {\"code\": 13, "
        "\"message\": \"Internal error while generating\"}}",
        "upstream_failed", "Internal error while generating");

    vg_task_status s;
    poll("{\"done\": true, \"error\": {\"code\": \"8\"}}", &s);
    assert_int_equal(s.state, VG_TASK_FAILED);
    assert_string_equal(s.error_code, "upstream_failed");
    assert_non_null(strstr(s.error_message, "8"));
    vg_task_status_clear(&s);
}

static void test_poll_safety_filter_is_content_filtered(void **state)
{
    (void)state;
    vg_test_expect_failed(
        &vg_adapter_google,
        "{\"done\": true, \"response\": {\"generateVideoResponse\": "
        "{\"raiMediaFilteredCount\": 1, \"raiMediaFilteredReasons\": "
        "[\"The prompt names a public figure.\", \"Unsafe content.\"]}}}",
        "content_filtered",
        "The prompt names a public figure.; Unsafe content.");
}

static void test_poll_filtered_count_as_a_string_without_reasons(void **state)
{
    (void)state;
    vg_test_expect_failed(
        &vg_adapter_google,
        "{\"done\": true, \"response\": {\"generateVideoResponse\": "
        "{\"generatedSamples\": [], \"raiMediaFilteredCount\": \"2\"}}}",
        "content_filtered", NULL);
}

static void test_poll_long_filter_reasons_are_cut(void **state)
{
    (void)state;
    char body[8192];
    int n = snprintf(body, sizeof(body),
                     "{\"done\": true, \"response\": {\"generateVideoResponse"
                     "\": {\"raiMediaFilteredCount\": 40, "
                     "\"raiMediaFilteredReasons\": [");
    for (int i = 0; i < 40; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n,
                      "%s\"reason number %02d with some words\"",
                      i ? ", " : "", i);
    snprintf(body + n, sizeof(body) - (size_t)n, "]}}}");
    vg_task_status s;
    poll(body, &s);
    assert_int_equal(s.state, VG_TASK_FAILED);
    assert_string_equal(s.error_code, "content_filtered");
    assert_int_equal(strlen(s.error_message), sizeof(s.error_message) - 1);
    assert_int_equal(strncmp(s.error_message,
                             "reason number 00 with some words; reason", 40),
                     0);
    vg_task_status_clear(&s);
}

static void test_poll_done_with_nothing_is_a_failure(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"done\": true}",
        "{\"done\": true, \"response\": {}}",
        "{\"done\": true, \"response\": {\"generateVideoResponse\": "
        "{\"generatedSamples\": [], \"raiMediaFilteredCount\": 0}}}",
        "{\"done\": true, \"response\": {\"generateVideoResponse\": "
        "{\"generatedSamples\": [{\"video\": {}}]}}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        vg_test_expect_failed(&vg_adapter_google, bodies[i], "upstream_failed",
                              NULL);
}

static void test_poll_malformed_answers_are_errors(void **state)
{
    (void)state;
    static const char *const bodies[] = {"<html>", "[]", "", "{\"done\": "};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        vg_test_expect_poll_malformed(&vg_adapter_google, bodies[i], &err);
}

/* ---- download ---------------------------------------------------------- */

static void expect_download(const vg_upstream_account *acct, const char *url,
                            bool with_key)
{
    vg_test_expect_built_call(vg_adapter_google.build_download, acct, url,
                              "GET", url, with_key ? KEY : NULL);
}

static void test_download_sends_the_key_to_google(void **state)
{
    (void)state;
    expect_download(&account, BASE "/files/abc:download?alt=media", true);
    expect_download(&account, "https://storage.googleapis.com/bucket/v.mp4",
                    true);
}

static void test_download_sends_the_key_to_the_configured_base(void **state)
{
    (void)state;
    vg_upstream_account fake = account;
    fake.base_url = "http://127.0.0.1:8089/v1beta";
    expect_download(&fake, "http://127.0.0.1:8089/files/x:download", true);
    expect_download(&fake, "http://127.0.0.1:9999/files/x:download", false);
}

static void test_download_keeps_the_key_from_other_hosts(void **state)
{
    (void)state;
    expect_download(&account, "https://cdn.example.com/v.mp4", false);
    expect_download(&account,
                    "https://generativelanguage.googleapis.com@evil.example"
                    "/v.mp4",
                    false);
    expect_download(&account, "https://evil.example/.googleapis.com", false);
    expect_download(&account, "https://googleapis.com.evil.example/v", false);
    expect_download(&account,
                    "http://generativelanguage.googleapis.com/files/x", false);
}

/* ---- Vertex AI ---------------------------------------------------------- */

#define VBASE                                                                  \
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/" \
    "us-central1"
#define VOP "projects/p1/locations/us-central1/publishers/google/models/" VEO3 \
            "/operations/op-1"
#define VBEARER "Authorization: Bearer " VG_OAUTH_MARK

static const vg_upstream_account vertex_account = {
    .name = "google-vertex",
    .base_url = VBASE,
    .api_key = VG_OAUTH_MARK,
    .storage_uri = "gs://bucket/out",
};

/* Vertex takes generateAudio, seed and where to put the video; the
 * bearer is the OAuth mark the engine replaces. */
static void test_vertex_submit_body(void **state)
{
    (void)state;
    vg_job_spec spec = job();
    spec.generate_audio = false;
    vg_test_expect_submit(
        &vg_adapter_vertex, &vertex_account, VEO3, &spec,
        VBASE "/publishers/google/models/" VEO3 ":predictLongRunning", VBEARER,
        "{\"instances\":[{\"prompt\":\"a cat\"}],\"parameters\":"
        "{\"sampleCount\":1,\"durationSeconds\":8,\"aspectRatio\":\"16:9\","
        "\"resolution\":\"720p\",\"generateAudio\":false,\"seed\":42,"
        "\"storageUri\":\"gs://bucket/out\"}}");
    /* Veo 2 has no sound and no generateAudio. */
    vg_call call;
    spec.duration = 5;
    assert_int_equal(vg_test_submit(&vg_adapter_vertex, &vertex_account,
                                    VEO2, &spec, &call, &err),
                     0);
    assert_null(strstr(call.body, "generateAudio"));
    vg_call_clear(&call);
    vg_upstream_account none = vertex_account;
    none.storage_uri = NULL;
    spec.duration = 8;
    assert_int_equal(vg_test_submit(&vg_adapter_vertex, &none, VEO3, &spec,
                                    &call, &err),
                     -1);
}

static void test_vertex_poll_is_fetch_predict_operation(void **state)
{
    (void)state;
    vg_call call;
    memset(&call, 0, sizeof(call));
    assert_int_equal(
        vg_adapter_vertex.build_poll(&vertex_account, VOP, &call, &err), 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, VBASE "/publishers/google/models/" VEO3
                                        ":fetchPredictOperation");
    assert_string_equal(call.body, "{\"operationName\":\"" VOP "\"}");
    vg_call_clear(&call);
    static const char *const bad[] = {"", "operations/x",
                                      "projects/p/models//operations/o",
                                      "projects/../models/m/operations/o"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&call, 0, sizeof(call));
        assert_int_equal(
            vg_adapter_vertex.build_poll(&vertex_account, bad[i], &call,
                                         &err),
            -1);
    }
}

static void test_vertex_done_reads_the_storage_object(void **state)
{
    (void)state;
    vg_task_status st;
    vg_test_poll_ok(&vg_adapter_vertex,
                    "{\"name\":\"" VOP "\",\"done\":true,\"response\":"
                    "{\"videos\":[{\"gcsUri\":\"gs://bucket/out/op-1/"
                    "sample 0.mp4\",\"mimeType\":\"video/mp4\"}]}}",
                    &st, &err);
    assert_int_equal(st.state, VG_TASK_SUCCEEDED);
    assert_string_equal(st.video_url, "gs://bucket/out/op-1/sample 0.mp4");
    vg_call call;
    memset(&call, 0, sizeof(call));
    assert_int_equal(vg_adapter_vertex.build_download(
                         &vertex_account, st.video_url, &call, &err),
                     0);
    assert_string_equal(call.url,
                        "https://storage.googleapis.com/storage/v1/b/bucket/"
                        "o/out%2Fop-1%2Fsample%200.mp4?alt=media");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], VBEARER);
    vg_call_clear(&call);
    vg_task_status_clear(&st);
    /* A redirect elsewhere does not get the bearer. */
    vg_test_expect_built_call(vg_adapter_vertex.build_download,
                              &vertex_account, "https://cdn.example/v.mp4",
                              "GET", "https://cdn.example/v.mp4", NULL);
}

static void test_vertex_running_filtered_and_failed(void **state)
{
    (void)state;
    vg_test_expect_state(&vg_adapter_vertex, "{\"name\":\"" VOP "\"}",
                         VG_TASK_RUNNING);
    vg_task_status st;
    vg_test_poll_ok(&vg_adapter_vertex,
                    "{\"done\":true,\"response\":{\"raiMediaFilteredCount\":"
                    "1,\"raiMediaFilteredReasons\":[\"celebrity\"]}}",
                    &st, &err);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "content_filtered");
    assert_string_equal(st.error_message, "celebrity");
    vg_task_status_clear(&st);
    vg_test_poll_ok(&vg_adapter_vertex,
                    "{\"done\":true,\"error\":{\"code\":3,\"message\":"
                    "\"bad prompt\"}}",
                    &st, &err);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_message, "bad prompt");
    vg_task_status_clear(&st);
    /* Inline bytes mean no storageUri reached Vertex: a failure. */
    vg_test_poll_ok(&vg_adapter_vertex,
                    "{\"done\":true,\"response\":{\"videos\":"
                    "[{\"bytesBase64Encoded\":\"AAAA\"}]}}",
                    &st, &err);
    assert_int_equal(st.state, VG_TASK_FAILED);
    vg_task_status_clear(&st);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
    const struct CMUnitTest tests[] = {
        T(test_adapter_is_registered_as_google),
        T(test_veo3_text_to_video_body),
        T(test_veo3_short_portrait_and_1080p),
        T(test_gemini_refused_parameters_are_never_sent),
        T(test_first_and_last_frame_as_base64),
        T(test_veo2_body_has_no_resolution),
        T(test_veo2_refuses_what_it_cannot_make),
        T(test_veo3_refuses_480p),
        T(test_veo3_1080p_needs_8_seconds),
        T(test_veo3_refuses_other_durations),
        T(test_only_16_9_and_9_16),
        T(test_refuses_a_third_image),
        T(test_missing_image_file_is_an_internal_error),
        T(test_submit_reply_gives_the_operation_name),
        T(test_submit_reply_without_name_is_malformed),
        T(test_poll_call_gets_the_operation),
        T(test_poll_refuses_a_task_that_is_not_an_operation),
        T(test_poll_not_done_is_running),
        T(test_poll_done_with_a_video),
        T(test_poll_done_with_an_error),
        T(test_poll_safety_filter_is_content_filtered),
        T(test_poll_filtered_count_as_a_string_without_reasons),
        T(test_poll_long_filter_reasons_are_cut),
        T(test_poll_done_with_nothing_is_a_failure),
        T(test_poll_malformed_answers_are_errors),
        T(test_download_sends_the_key_to_google),
        T(test_download_sends_the_key_to_the_configured_base),
        T(test_download_keeps_the_key_from_other_hosts),
        T(test_vertex_submit_body),
        T(test_vertex_poll_is_fetch_predict_operation),
        T(test_vertex_done_reads_the_storage_object),
        T(test_vertex_running_filtered_and_failed),
    };
#undef T
    return cmocka_run_group_tests(tests, vg_test_images_setup,
                                  vg_test_scratch_teardown);
}
