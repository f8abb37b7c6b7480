/*
 * openai.c - OpenAI-style Videos API servers, as an adapter.
 *
 * OpenAI's own video service has shut down, but its shape lives on in
 * gateways and self-hosted servers: POST {base}/v1/videos, poll GET
 * {base}/v1/videos/{id}. The base is the server's root
 * ("http://host:port"); the video id is the task.
 *
 * The create is multipart/form-data, as the official `openai` client
 * always sends it (servers built against that client refuse JSON):
 * "model", "prompt", "seconds" (a string: "8"), "size" ("1280x720") and
 * a reference image as the file part "input_reference", so image-to-
 * video works on these routes. The API takes one reference image; a
 * second is refused (400) rather than dropped.
 *
 * The API has no cancel: DELETE is documented for finished videos only.
 * So a cancelled job is refunded by vidgate and the engine logs that the
 * server keeps working on it; DELETE is sent only after vidgate has
 * stored a finished video, and only where the operator configures it
 * (delete_after_store), to free the server's copy.
 *
 * A finished video is served at {base}/v1/videos/{id}/content and needs
 * the key. parse_poll has no base URL, so it reports the video as the
 * relative path "/v1/videos/{id}/content"; build_download turns a
 * relative path into a call to the account's server with its key, and
 * fetches an absolute URL (a server that answers one) without the key.
 */
#include "providers/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX "Authorization: Bearer "

static int malformed(vg_error *err, const char *what)
{
    return vg_reply_malformed(err, "the video server answered without %s",
                              what);
}

static int openai_build_submit(const vg_upstream_account *account,
                               const char *provider_model,
                               const vg_job_spec *spec, vg_call *call,
                               vg_error *err)
{
    if (spec->n_images > 1)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "this model takes one reference image "
                            "(input_reference), not %d",
                            spec->n_images);
    if (spec->prompt == NULL || *spec->prompt == '\0')
        return vg_error_set(err, 400, "unsupported_parameter", "prompt",
                            "the video server needs a prompt");
    char seconds[16], size[32];
    snprintf(seconds, sizeof(seconds), "%d", spec->duration);
    snprintf(size, sizeof(size), "%dx%d", spec->width, spec->height);
    if (vg_call_start(call, "POST", account, KEY_PREFIX, err,
                      "/v1/videos") != 0)
        return -1;
    if (vg_call_form_field(call, "model", provider_model) != 0 ||
        vg_call_form_field(call, "prompt", spec->prompt) != 0 ||
        vg_call_form_field(call, "seconds", seconds) != 0 ||
        vg_call_form_field(call, "size", size) != 0) {
        vg_call_clear(call);
        return vg_adapter_out_of_memory(err);
    }
    if (spec->n_images == 1 &&
        vg_image_form_file(call, "input_reference", spec->image_paths[0],
                           err) != 0) {
        vg_call_clear(call);
        return -1;
    }
    return 0;
}

static int openai_parse_submit(const vg_reply *reply, char **task,
                               vg_error *err)
{
    return vg_reply_task_id(reply, "id",
                            "the video server answered without a video id",
                            task, err);
}

static int openai_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    return vg_call_start_escaped(call, "GET", account, KEY_PREFIX,
                                 "/v1/videos/%s", task, err);
}

static int openai_build_delete(const vg_upstream_account *account,
                               const char *task, vg_call *call, vg_error *err)
{
    return vg_call_start_escaped(call, "DELETE", account, KEY_PREFIX,
                                 "/v1/videos/%s", task, err);
}

static int openai_build_download(const vg_upstream_account *account,
                                 const char *video_url, vg_call *call,
                                 vg_error *err)
{
    bool relative = video_url[0] == '/';
    if (!relative && !vg_url_is_http(video_url))
        return vg_reply_malformed(err,
                                  "the video server's result is not a URL");
    return vg_call_start(call, "GET", account, relative ? KEY_PREFIX : NULL,
                         err, "%s", video_url);
}

/* A failed job; a moderation code makes it "content_filtered". */
static void set_failure(vg_task_status *status, const json_t *error,
                        const vg_status_rule *rule)
{
    const char *upstream_code = vg_json_string(error, "code");
    const char *code = rule->error_code;
    if (upstream_code != NULL && strstr(upstream_code, "moderation") != NULL)
        code = "content_filtered";
    vg_task_fail(status, code, vg_json_reason(error), rule->fallback);
}

static int completed(const json_t *doc, vg_task_status *status, vg_error *err)
{
    const char *id = vg_json_string(doc, "id");
    if (id == NULL || *id == '\0')
        return malformed(err, "the id of a finished video");
    char *escaped = vg_url_escape(id);
    if (escaped == NULL)
        return vg_adapter_out_of_memory(err);
    int n = asprintf(&status->video_url, "/v1/videos/%s/content", escaped);
    free(escaped);
    if (n < 0) {
        status->video_url = NULL;
        return vg_adapter_out_of_memory(err);
    }
    status->state = VG_TASK_SUCCEEDED;
    status->progress = 100;
    return 0;
}

static const vg_status_rule states[] = {
    {"queued", VG_TASK_QUEUED, NULL, NULL},
    {"in_progress", VG_TASK_RUNNING, NULL, NULL},
    {"completed", VG_TASK_SUCCEEDED, NULL, NULL},
    {"failed", VG_TASK_FAILED, "upstream_failed",
     "the video server reports that the job failed"},
    {"cancelled", VG_TASK_CANCELLED, NULL, NULL},
    {"canceled", VG_TASK_CANCELLED, NULL, NULL},
    {0},
};

static int openai_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *state = vg_json_string(doc, "status");
    const vg_status_rule *rule = vg_status_rule_find(states, state);
    int rc = 0;
    if (state == NULL) {
        rc = malformed(err, "a video status");
    } else if (rule == NULL) {
        rc = vg_reply_malformed(err,
                                "the video server answered an unknown status "
                                "\"%.64s\"",
                                state);
    } else if (rule->state == VG_TASK_SUCCEEDED) {
        rc = completed(doc, status, err);
    } else if (rule->state == VG_TASK_FAILED) {
        set_failure(status, json_object_get(doc, "error"), rule);
    } else {
        status->state = rule->state;
    }
    if (rc == 0 &&
        (status->state == VG_TASK_QUEUED || status->state == VG_TASK_RUNNING))
        vg_task_read_progress(status, json_object_get(doc, "progress"));
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_openai = {
    .name = "openai",
    .key_header_hint = "Authorization: Bearer <key>",
    .default_poll_ms = 2000,
    .build_submit = openai_build_submit,
    .parse_submit = openai_parse_submit,
    .build_poll = openai_build_poll,
    .parse_poll = openai_parse_poll,
    .build_cancel = NULL, /* the API has none: see the top */
    .build_delete = openai_build_delete,
    .build_download = openai_build_download,
};
