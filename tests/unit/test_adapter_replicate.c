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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/adapter.h"
#include "test_support.h"

/* A 1x1 grey PNG and the start of a JPEG, with their data URLs. */
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
    .name = "replicate",
    .base_url = "https://api.replicate.com/v1",
    .api_key = "r8_test",
};

#define BASE "https://api.replicate.com/v1"

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

static int submit(const char *model, const vg_job_spec *spec, vg_call *call)
{
    memset(call, 0, sizeof(*call));
    memset(&err, 0, sizeof(err));
    return vg_adapter_replicate.build_submit(&account, model, spec, call,
                                             &err);
}

static int poll(const char *body, vg_task_status *status)
{
    vg_reply reply = reply_of(body);
    vg_task_status_init(status);
    memset(&err, 0, sizeof(err));
    return vg_adapter_replicate.parse_poll(&reply, status, &err);
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
    assert_ptr_equal(vg_adapter_find("replicate"), &vg_adapter_replicate);
    assert_int_equal(vg_adapter_replicate.default_poll_ms, 3000);
    assert_non_null(vg_adapter_replicate.build_cancel);
    assert_null(vg_adapter_replicate.build_download);
}

/* ---- submit ----------------------------------------------------------- */

static void test_submit_text_job_body(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    vg_call call;
    assert_int_equal(submit("bytedance/seedance-1-pro", &spec, &call), 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url,
                        BASE "/models/bytedance/seedance-1-pro/predictions");
    /* No "Prefer: wait": the engine polls. */
    assert_int_equal(call.n_headers, 2);
    assert_string_equal(call.headers[0], "Authorization: Bearer r8_test");
    assert_string_equal(call.headers[1], "Content-Type: application/json");
    assert_string_equal(
        call.body,
        "{\"input\":{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":"
        "\"16:9\",\"duration\":5,\"resolution\":\"720p\",\"seed\":42,"
        "\"generate_audio\":false}}");
    vg_call_clear(&call);
}

static void test_submit_options_body(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
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
    vg_job_spec spec = text_job();
    spec.image_paths[0] = write_image("first.png", png, sizeof(png) - 1);
    spec.image_paths[1] = write_image("last.jpg", jpeg, sizeof(jpeg) - 1);
    spec.n_images = 2;
    vg_call call;
    assert_int_equal(submit("bytedance/seedance-1-lite", &spec, &call), 0);
    assert_string_equal(
        call.body,
        "{\"input\":{\"prompt\":\"a red fox in snow\",\"aspect_ratio\":"
        "\"16:9\",\"duration\":5,\"resolution\":\"720p\",\"seed\":42,"
        "\"generate_audio\":false,\"image\":\"" PNG_URL "\","
        "\"last_frame_image\":\"" JPEG_URL "\"}}");
    vg_call_clear(&call);
}

static void test_submit_model_must_be_owner_slash_name(void **state)
{
    (void)state;
    static const char *const names[] = {
        "seedance", "a/b/c", "/b", "a/", "a/b:abc12", "a/b?x", "a/b c", "",
    };
    vg_job_spec spec = text_job();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        vg_call call;
        assert_int_equal(submit(names[i], &spec, &call), -1);
        assert_int_equal(err.status, 500);
        assert_null(call.url);
    }
}

static void test_submit_three_images_are_refused(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    const char *path = write_image("three.png", png, sizeof(png) - 1);
    for (int i = 0; i < 3; i++)
        spec.image_paths[i] = path;
    spec.n_images = 3;
    vg_call call;
    assert_int_equal(submit("a/b", &spec, &call), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "unsupported_parameter");
    assert_null(call.url);
}

static void test_submit_missing_image_file_fails(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.image_paths[0] = write_image("present.png", png, sizeof(png) - 1);
    spec.image_paths[1] = vg_test_scratch_path("missing.png");
    spec.n_images = 2;
    vg_call call;
    assert_int_equal(submit("a/b", &spec, &call), -1);
    assert_int_equal(err.status, 500);
    assert_null(call.url);
    assert_null(call.body);
}

static void test_submit_invalid_utf8_prompt_is_refused(void **state)
{
    (void)state;
    vg_job_spec spec = text_job();
    spec.prompt = "\xe2\x82";
    vg_call call;
    assert_int_equal(submit("a/b", &spec, &call), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "prompt");
}

static void test_parse_submit_reads_the_prediction_id(void **state)
{
    (void)state;
    vg_reply reply = reply_of(
        "{\"id\":\"gm3qorzdhgbfurvjtvhg6dckhu\",\"model\":\"a/b\","
        "\"status\":\"starting\",\"urls\":{\"get\":\"https://api.replicate"
        ".com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu\"}}");
    char *task = NULL;
    assert_int_equal(vg_adapter_replicate.parse_submit(&reply, &task, &err),
                     0);
    assert_string_equal(task, "gm3qorzdhgbfurvjtvhg6dckhu");
    free(task);
}

static void test_parse_submit_without_id_is_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{}", "{\"id\":null}",
                                         "{\"id\":\"\"}", "[]", "{\"id\""};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        vg_reply reply = reply_of(bodies[i]);
        char *task = NULL;
        memset(&err, 0, sizeof(err));
        expect_malformed(
            vg_adapter_replicate.parse_submit(&reply, &task, &err));
        assert_null(task);
    }
}

/* ---- poll and cancel calls -------------------------------------------- */

static void test_poll_call_gets_the_prediction(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_replicate.build_poll(&account, "p1", &call, &err), 0);
    assert_string_equal(call.method, "GET");
    assert_string_equal(call.url, BASE "/predictions/p1");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer r8_test");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_cancel_call_posts_to_cancel(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_replicate.build_cancel(&account, "p1", &call, &err), 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, BASE "/predictions/p1/cancel");
    assert_int_equal(call.n_headers, 1);
    assert_string_equal(call.headers[0], "Authorization: Bearer r8_test");
    assert_null(call.body);
    vg_call_clear(&call);
}

static void test_prediction_id_is_escaped_in_urls(void **state)
{
    (void)state;
    vg_call call = {0};
    assert_int_equal(
        vg_adapter_replicate.build_cancel(&account, "../x y", &call, &err), 0);
    assert_string_equal(call.url, BASE "/predictions/..%2Fx%20y/cancel");
    vg_call_clear(&call);
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
    assert_int_equal(poll("{\"id\":\"p\",\"status\":\"processing\","
                          "\"logs\":\"step 3/50\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_RUNNING);
    vg_task_status_clear(&st);
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
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        vg_task_status st;
        expect_malformed(poll(bodies[i], &st));
        assert_null(st.video_url);
    }
}

static void test_failed_carries_the_error(void **state)
{
    (void)state;
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"failed\",\"output\":null,"
                          "\"error\":\"CUDA out of memory\"}",
                          &st),
                     0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_string_equal(st.error_code, "upstream_failed");
    assert_string_equal(st.error_message, "CUDA out of memory");
    vg_task_status_clear(&st);
    assert_int_equal(poll("{\"status\":\"failed\",\"error\":null}", &st), 0);
    assert_int_equal(st.state, VG_TASK_FAILED);
    assert_non_null(strstr(st.error_message, "failed"));
    vg_task_status_clear(&st);
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
    vg_task_status st;
    assert_int_equal(poll("{\"status\":\"canceled\"}", &st), 0);
    assert_int_equal(st.state, VG_TASK_CANCELLED);
    vg_task_status_clear(&st);
}

static void test_unknown_or_missing_status_is_malformed(void **state)
{
    (void)state;
    vg_task_status st;
    expect_malformed(poll("{\"status\":\"dreaming\"}", &st));
    assert_non_null(strstr(err.message, "dreaming"));
    expect_malformed(poll("{\"status\":[]}", &st));
    expect_malformed(poll("{}", &st));
    expect_malformed(poll("null", &st));
    expect_malformed(poll("{\"status\":\"succeeded\"", &st));
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
        T(test_aborted_is_expired),
        T(test_canceled),
        T(test_unknown_or_missing_status_is_malformed),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
