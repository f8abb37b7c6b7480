/*
 * adapter_support.c - helpers the adapter unit tests share; see
 * adapter_support.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_support.h"
#include "test_support.h"

static const unsigned char png[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00"
    "\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00\x3a\x7e\x9b\x55\x00"
    "\x00\x00\x0a\x49\x44\x41\x54\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01"
    "\x48\xaf\xa4\x71\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
static const unsigned char jpeg[] = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9";

char vg_test_png_path[PATH_MAX];
char vg_test_jpeg_path[PATH_MAX];

const char *vg_test_write_png(const char *name)
{
    const char *path = vg_test_scratch_path(name);
    vg_test_write_file(path, png, sizeof(png) - 1);
    return path;
}

const char *vg_test_write_jpeg(const char *name)
{
    const char *path = vg_test_scratch_path(name);
    vg_test_write_file(path, jpeg, sizeof(jpeg) - 1);
    return path;
}

int vg_test_images_setup(void **state)
{
    if (vg_test_scratch_setup(state) != 0)
        return -1;
    snprintf(vg_test_png_path, sizeof(vg_test_png_path), "%s",
             vg_test_write_png("first.png"));
    snprintf(vg_test_jpeg_path, sizeof(vg_test_jpeg_path), "%s",
             vg_test_write_jpeg("last.jpg"));
    return 0;
}

vg_job_spec vg_test_text_job(void)
{
    vg_job_spec spec = {
        .prompt = "a red fox in snow",
        .resolution = VG_RES_720P,
        .aspect = VG_AR_16_9,
        .width = 1280,
        .height = 720,
        .duration = 5,
        .fps = 24,
        .tier = VG_TIER_DEFAULT,
        .seed = 42,
    };
    return spec;
}

vg_reply vg_test_reply(const char *body)
{
    vg_reply reply = {.status = 200, .body = body, .size = strlen(body)};
    return reply;
}

void vg_test_expect_call(const vg_call *call, const char *method,
                         const char *url, const char *body, ...)
{
    assert_non_null(call->method);
    assert_string_equal(call->method, method);
    assert_non_null(call->url);
    assert_string_equal(call->url, url);
    int n = 0;
    va_list ap;
    va_start(ap, body);
    for (const char *header = va_arg(ap, const char *); header != NULL;
         header = va_arg(ap, const char *)) {
        if (n >= call->n_headers) {
            va_end(ap);
            fail_msg("header %d missing: expected \"%s\"", n, header);
        }
        assert_string_equal(call->headers[n], header);
        n++;
    }
    va_end(ap);
    assert_int_equal(call->n_headers, n);
    if (body == NULL) {
        assert_null(call->body);
    } else {
        assert_non_null(call->body);
        assert_string_equal(call->body, body);
    }
}

void vg_test_expect_built_call(vg_test_call_builder build,
                               const vg_upstream_account *account,
                               const char *arg, const char *method,
                               const char *url, const char *key_header)
{
    vg_call call = {0};
    vg_error err = {0};
    if (build(account, arg, &call, &err) != 0)
        fail_msg("building the call for \"%s\" failed: %d %s %s", arg,
                 err.status, err.code, err.message);
    vg_test_expect_call(&call, method, url, NULL, key_header, NULL);
    vg_call_clear(&call);
}

int vg_test_submit(const vg_adapter *adapter,
                   const vg_upstream_account *account, const char *model,
                   const vg_job_spec *spec, vg_call *call, vg_error *err)
{
    memset(call, 0, sizeof(*call));
    memset(err, 0, sizeof(*err));
    return adapter->build_submit(account, model, spec, call, err);
}

void vg_test_expect_submit(const vg_adapter *adapter,
                           const vg_upstream_account *account,
                           const char *model, const vg_job_spec *spec,
                           const char *url, const char *key_header,
                           const char *body)
{
    vg_call call;
    vg_error err;
    if (vg_test_submit(adapter, account, model, spec, &call, &err) != 0)
        fail_msg("build_submit failed: %d %s [%s] %s", err.status, err.code,
                 err.field, err.message);
    vg_test_expect_call(&call, "POST", url, body, key_header,
                        "Content-Type: application/json", NULL);
    vg_call_clear(&call);
}

void vg_test_expect_submit_error(const vg_adapter *adapter,
                                 const vg_upstream_account *account,
                                 const char *model, const vg_job_spec *spec,
                                 int status, const char *code,
                                 const char *field, vg_error *err)
{
    vg_call call;
    if (vg_test_submit(adapter, account, model, spec, &call, err) == 0)
        fail_msg("build_submit accepted; expected %d %s: %s", status, code,
                 call.body);
    assert_int_equal(err->status, status);
    assert_string_equal(err->code, code);
    if (field != NULL)
        assert_string_equal(err->field, field);
    assert_true(strlen(err->message) > 0);
    assert_null(call.url);
    assert_null(call.body);
    assert_int_equal(call.n_headers, 0);
}

void vg_test_expect_task(const vg_adapter *adapter, const char *body,
                         const char *task)
{
    vg_reply reply = vg_test_reply(body);
    char *got = NULL;
    vg_error err = {0};
    if (adapter->parse_submit(&reply, &got, &err) != 0)
        fail_msg("parse_submit failed: %s %s", err.code, err.message);
    assert_non_null(got);
    assert_string_equal(got, task);
    free(got);
}

void vg_test_expect_no_task(const vg_adapter *adapter,
                            const char *const *bodies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        vg_reply reply = vg_test_reply(bodies[i]);
        char *task = NULL;
        vg_error err = {0};
        vg_test_expect_malformed(adapter->parse_submit(&reply, &task, &err),
                                 &err);
        assert_null(task);
    }
}

int vg_test_poll(const vg_adapter *adapter, const char *body,
                 vg_task_status *status, vg_error *err)
{
    vg_reply reply = vg_test_reply(body);
    vg_task_status_init(status);
    memset(err, 0, sizeof(*err));
    return adapter->parse_poll(&reply, status, err);
}

void vg_test_poll_ok(const vg_adapter *adapter, const char *body,
                     vg_task_status *status, vg_error *err)
{
    if (vg_test_poll(adapter, body, status, err) != 0)
        fail_msg("parse_poll failed: %s %s", err->code, err->message);
}

void vg_test_expect_state(const vg_adapter *adapter, const char *body,
                          vg_task_state state)
{
    vg_task_status status;
    vg_error err;
    vg_test_poll_ok(adapter, body, &status, &err);
    assert_int_equal(status.state, state);
    vg_task_status_clear(&status);
}

void vg_test_expect_failed(const vg_adapter *adapter, const char *body,
                           const char *code, const char *message)
{
    vg_task_status status;
    vg_error err;
    vg_test_poll_ok(adapter, body, &status, &err);
    assert_int_equal(status.state, VG_TASK_FAILED);
    assert_string_equal(status.error_code, code);
    if (message != NULL)
        assert_string_equal(status.error_message, message);
    else
        assert_true(strlen(status.error_message) > 0);
    assert_null(status.video_url);
    assert_null(status.fetch_url);
    vg_task_status_clear(&status);
}

void vg_test_expect_malformed(int rc, const vg_error *err)
{
    assert_int_equal(rc, -1);
    assert_int_equal(err->status, 502);
    assert_string_equal(err->code, "upstream_malformed");
}

void vg_test_expect_poll_malformed(const vg_adapter *adapter, const char *body,
                                   vg_error *err)
{
    vg_task_status status;
    vg_test_expect_malformed(vg_test_poll(adapter, body, &status, err), err);
    assert_null(status.video_url);
    assert_null(status.fetch_url);
    vg_task_status_clear(&status);
}
