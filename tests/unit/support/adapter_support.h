/*
 * adapter_support.h - helpers the adapter unit tests share: reference
 * image files, replies made from string literals, and checks of the calls
 * an adapter builds and of what it reads from a reply.
 *
 * The adapter suites check requests as data (the exact URL, headers and
 * body), so the checks here compare whole calls. Every helper reports a
 * mismatch through cmocka, failing the test that called it. Image files
 * go in the suite's scratch directory (see vg_test_scratch_setup).
 */
#ifndef VG_ADAPTER_SUPPORT_H
#define VG_ADAPTER_SUPPORT_H

#include <stddef.h>

#include "providers/adapter.h"

/* The reference images the helpers write: a 1x1 grey PNG and the first
 * and last bytes of a JPEG (enough for adapters, which only encode them),
 * as base64 and as data URLs. */
#define VG_TEST_PNG_BASE64                                                    \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+" \
    "kcQAAAABJRU5ErkJggg=="
#define VG_TEST_PNG_DATA_URL "data:image/png;base64," VG_TEST_PNG_BASE64
#define VG_TEST_JPEG_BASE64 "/9j/4AAQSkZJRgD/2Q=="
#define VG_TEST_JPEG_DATA_URL "data:image/jpeg;base64," VG_TEST_JPEG_BASE64

/* Writes the PNG (or the JPEG) as <suite scratch directory>/name and
 * returns its path, a vg_test_scratch_path buffer. */
const char *vg_test_write_png(const char *name);
const char *vg_test_write_jpeg(const char *name);

/* A group setup for suites whose jobs share two reference images: the
 * scratch directory (as vg_test_scratch_setup) with the PNG at
 * vg_test_png_path ("first.png") and the JPEG at vg_test_jpeg_path
 * ("last.jpg"). The teardown is vg_test_scratch_teardown. */
int vg_test_images_setup(void **state);
extern char vg_test_png_path[];
extern char vg_test_jpeg_path[];

/* A job most submit tests start from and change: "a red fox in snow", 5
 * s of 720P 16:9 (1280x720) at 24 fps, seed 42, no images, no audio. */
vg_job_spec vg_test_text_job(void);

/* A 200 reply whose body is the string. */
vg_reply vg_test_reply(const char *body);

/* Asserts that call is method url with exactly the headers listed (in
 * order, the list ended by NULL) and body, or no body when body is NULL. */
void vg_test_expect_call(const vg_call *call, const char *method,
                         const char *url, const char *body, ...)
    __attribute__((sentinel));

/* The build_poll, build_cancel and build_download of an adapter. */
typedef int (*vg_test_call_builder)(const vg_upstream_account *account,
                                    const char *arg, vg_call *call,
                                    vg_error *err);

/* Builds the call for arg (a task or a video URL) and asserts that it is
 * method url without a body, with key_header as its only header, or no
 * header when key_header is NULL. */
void vg_test_expect_built_call(vg_test_call_builder build,
                               const vg_upstream_account *account,
                               const char *arg, const char *method,
                               const char *url, const char *key_header);

/* Runs build_submit into a fresh call and err, and returns its result. */
int vg_test_submit(const vg_adapter *adapter,
                   const vg_upstream_account *account, const char *model,
                   const vg_job_spec *spec, vg_call *call, vg_error *err);

/* Builds the submit call, which must succeed, and asserts that it is a
 * POST of body to url carrying key_header and the JSON content type. */
void vg_test_expect_submit(const vg_adapter *adapter,
                           const vg_upstream_account *account,
                           const char *model, const vg_job_spec *spec,
                           const char *url, const char *key_header,
                           const char *body);

/* Builds the submit call, which must fail with status and code (and name
 * field, unless it is NULL) with a message, and leave the call empty. */
void vg_test_expect_submit_error(const vg_adapter *adapter,
                                 const vg_upstream_account *account,
                                 const char *model, const vg_job_spec *spec,
                                 int status, const char *code,
                                 const char *field, vg_error *err);

/* parse_submit must read the task from body. */
void vg_test_expect_task(const vg_adapter *adapter, const char *body,
                         const char *task);
/* parse_submit must refuse each of the n bodies as malformed and leave
 * the task NULL. */
void vg_test_expect_no_task(const vg_adapter *adapter,
                            const char *const *bodies, size_t n);

/* Runs parse_poll on body into a fresh status and err, and returns its
 * result. */
int vg_test_poll(const vg_adapter *adapter, const char *body,
                 vg_task_status *status, vg_error *err);
/* The same for a body that must be readable: fails the test, saying why,
 * when parse_poll fails. */
void vg_test_poll_ok(const vg_adapter *adapter, const char *body,
                     vg_task_status *status, vg_error *err);

/* parse_poll must read body as state (and nothing failed). */
void vg_test_expect_state(const vg_adapter *adapter, const char *body,
                          vg_task_state state);
/* parse_poll must read body as a failed task with code, no URL to fetch,
 * and message exactly or, when message is NULL, a message that is not
 * empty. */
void vg_test_expect_failed(const vg_adapter *adapter, const char *body,
                           const char *code, const char *message);

/* Asserts that rc and err say the provider's answer was malformed: -1,
 * 502 "upstream_malformed". */
void vg_test_expect_malformed(int rc, const vg_error *err);
/* parse_poll must refuse body as malformed, leaving no URL behind. */
void vg_test_expect_poll_malformed(const vg_adapter *adapter, const char *body,
                                   vg_error *err);

#endif
