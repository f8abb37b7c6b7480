/*
 * byteplus.c - the BytePlus ModelArk protocol (Seedance), as an adapter.
 *
 * ModelArk takes one JSON body per task: the prompt and reference images
 * go into a "content" array (images as data URLs), the rest are top-level
 * settings. A single image goes without a "role", as the AI SDK's
 * ByteDance provider sends it (ModelArk then uses it as the first frame);
 * with a second image, the two carry "first_frame" and "last_frame".
 * The task id it answers is the adapter's task handle. A poll reads the
 * task object: its status, the video URL once it succeeded, the seed it
 * used and the tokens it billed, which vidgate reports as usage.
 *
 * A failed task whose error code says the safety filter stopped it
 * ("...SensitiveContentDetected") is reported as "content_filtered", so
 * the client learns that retrying the same prompt will not help; every
 * other failure is "upstream_failed", and an expired task (it waited in
 * the provider's queue past its deadline) is "upstream_expired".
 */
#include "providers/adapter.h"

#include <stdlib.h>
#include <string.h>

#define TASKS_PATH "/contents/generations/tasks"
#define KEY_PREFIX "Authorization: Bearer "

static const char *const resolution_names[VG_RES_COUNT] = {"480p", "720p",
                                                           "1080p"};

static int malformed(vg_error *err, const char *what)
{
    return vg_reply_malformed(err, "BytePlus answered without %s", what);
}

/* One content item per reference image: alone, with no role; with a
 * second, the first frame and the last. */
static int append_images(json_t *content, const vg_job_spec *spec,
                         vg_error *err)
{
    static const char *const roles[] = {"first_frame", "last_frame"};
    for (int i = 0; i < spec->n_images; i++) {
        char *url = NULL;
        if (vg_image_ref(spec, i, &url, err) != 0)
            return -1;
        json_t *image = json_object();
        json_t *item = json_object();
        int bad = image == NULL || item == NULL;
        bad |= json_object_set_new(image, "url", json_string(url));
        bad |= json_object_set_new(item, "type", json_string("image_url"));
        bad |= json_object_set(item, "image_url", image);
        if (spec->n_images > 1)
            bad |= json_object_set_new(item, "role", json_string(roles[i]));
        json_decref(image);
        free(url);
        if (bad || json_array_append_new(content, item) != 0) {
            if (bad)
                json_decref(item);
            return vg_adapter_out_of_memory(err);
        }
    }
    return 0;
}

static int byteplus_build_submit(const vg_upstream_account *account,
                                 const char *provider_model,
                                 const vg_job_spec *spec, vg_call *call,
                                 vg_error *err)
{
    if (spec->n_images > 2)
        return vg_error_set(err, 400, "unsupported_parameter", "images",
                            "BytePlus takes at most two images: the first "
                            "and the last frame");
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "BytePlus does not offer this resolution");
    json_t *text = vg_json_prompt(spec, err);
    if (text == NULL)
        return -1;
    json_t *content = json_array();
    json_t *item = json_object();
    int bad = content == NULL || item == NULL;
    bad |= json_object_set_new(item, "type", json_string("text"));
    bad |= json_object_set_new(item, "text", text);
    bad |= json_array_append_new(content, item);
    if (bad) {
        json_decref(content);
        return vg_adapter_out_of_memory(err);
    }
    if (append_images(content, spec, err) != 0) {
        json_decref(content);
        return -1;
    }

    json_t *body = json_object();
    bad = body == NULL;
    bad |= json_object_set_new(body, "model", json_string(provider_model));
    bad |= json_object_set_new(body, "content", content);
    bad |= json_object_set_new(
        body, "resolution", json_string(resolution_names[spec->resolution]));
    bad |= json_object_set_new(body, "ratio",
                               json_string(vg_aspect_name(spec->aspect)));
    bad |= json_object_set_new(body, "duration", json_integer(spec->duration));
    bad |= json_object_set_new(body, "seed", json_integer(spec->seed));
    bad |= json_object_set_new(body, "camera_fixed",
                               json_boolean(spec->camera_fixed));
    bad |= json_object_set_new(body, "watermark", json_false());
    bad |= json_object_set_new(body, "generate_audio",
                               json_boolean(spec->generate_audio));
    bad |= json_object_set_new(
        body, "service_tier",
        json_string(spec->tier == VG_TIER_FLEX ? "flex" : "default"));
    if (bad) {
        json_decref(body);
        return vg_adapter_out_of_memory(err);
    }
    return vg_call_submit(call, account, KEY_PREFIX, body, err, TASKS_PATH);
}

static int byteplus_parse_submit(const vg_reply *reply, char **task,
                                 vg_error *err)
{
    return vg_reply_task_id(reply, "id", "BytePlus answered without a task id",
                            task, err);
}

static int byteplus_build_poll(const vg_upstream_account *account,
                               const char *task, vg_call *call, vg_error *err)
{
    return vg_call_start_escaped(call, "GET", account, KEY_PREFIX,
                                 TASKS_PATH "/%s", task, err);
}

static int byteplus_build_cancel(const vg_upstream_account *account,
                                 const char *task, vg_call *call,
                                 vg_error *err)
{
    return vg_call_start_escaped(call, "DELETE", account, KEY_PREFIX,
                                 TASKS_PATH "/%s", task, err);
}

static const vg_status_rule states[] = {
    {"queued", VG_TASK_QUEUED, NULL, NULL},
    {"running", VG_TASK_RUNNING, NULL, NULL},
    {"succeeded", VG_TASK_SUCCEEDED, NULL, NULL},
    {"failed", VG_TASK_FAILED, "upstream_failed",
     "BytePlus reports that the task failed"},
    {"expired", VG_TASK_FAILED, "upstream_expired",
     "the task expired in BytePlus's queue"},
    {"cancelled", VG_TASK_CANCELLED, NULL, NULL},
    {0},
};

/* A failed or expired task; the safety filter's code makes either one
 * "content_filtered". */
static void set_failure(vg_task_status *status, const json_t *doc,
                        const vg_status_rule *rule)
{
    const json_t *error = json_object_get(doc, "error");
    const char *upstream_code = vg_json_string(error, "code");
    const char *code = rule->error_code;
    if (upstream_code != NULL &&
        strstr(upstream_code, "SensitiveContent") != NULL)
        code = "content_filtered";
    vg_task_fail(status, code, vg_json_string(error, "message"),
                 rule->fallback);
}

static int byteplus_parse_poll(const vg_reply *reply, vg_task_status *status,
                               vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *state = vg_json_string(doc, "status");
    const vg_status_rule *rule = vg_status_rule_find(states, state);
    int rc = 0;
    if (state == NULL) {
        rc = malformed(err, "a task status");
    } else if (rule == NULL) {
        rc = vg_reply_malformed(
            err, "BytePlus answered an unknown task status \"%.64s\"", state);
    } else if (rule->state == VG_TASK_SUCCEEDED) {
        const char *url =
            vg_json_string(json_object_get(doc, "content"), "video_url");
        if (url == NULL || *url == '\0')
            rc = malformed(err, "a video URL for a finished task");
        else
            rc = vg_task_succeed(status, url, err);
    } else if (rule->state == VG_TASK_FAILED) {
        set_failure(status, doc, rule);
    } else {
        status->state = rule->state;
    }
    if (rc == 0) {
        int64_t n;
        if (vg_json_lenient_int(json_object_get(doc, "seed"), &n))
            status->seed = n;
        const json_t *usage = json_object_get(doc, "usage");
        if (vg_json_lenient_int(json_object_get(usage, "completion_tokens"),
                                &n))
            status->completion_tokens = n;
        if (vg_json_lenient_int(json_object_get(usage, "total_tokens"), &n))
            status->total_tokens = n;
    }
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_byteplus = {
    .name = "byteplus",
    .builtin = true,
    .default_base_url = "https://ark.ap-southeast.bytepluses.com/api/v3",
    .default_key_env = "ARK_API_KEY",
    .key_header_hint = "Authorization: Bearer <key>",
    .default_poll_ms = 5000,
    .build_submit = byteplus_build_submit,
    .parse_submit = byteplus_parse_submit,
    .build_poll = byteplus_build_poll,
    .parse_poll = byteplus_parse_poll,
    .build_cancel = byteplus_build_cancel,
    .build_download = NULL,
};
