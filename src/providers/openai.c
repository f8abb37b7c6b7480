/*
 * openai.c - OpenAI-style Videos API servers, as an adapter.
 *
 * OpenAI's own video service has shut down, but its shape lives on in
 * gateways and self-hosted servers: POST {base}/v1/videos with {"model",
 * "prompt", "seconds" (a string), "size" ("1280x720")}, poll GET
 * {base}/v1/videos/{id}, cancel DELETE {base}/v1/videos/{id}. The base is
 * the server's root ("http://host:port"); the video id is the task.
 *
 * Reference images are not sent. The API takes them only as a multipart
 * file upload ("input_reference"), which a JSON call cannot carry, and
 * the compatible servers disagree on any JSON spelling (a data URL
 * string, {"image_url"}, "frame_images"...). So a job with images is
 * refused with 400 "unsupported_parameter", and the catalog lists such
 * models as text-to-video only.
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
    if (spec->n_images > 0)
        return vg_error_set(err, 400, "unsupported_parameter", "images",
                            "this model takes no reference images: it "
                            "makes videos from text only");
    json_t *prompt = vg_json_prompt(spec, err);
    if (prompt == NULL)
        return -1;
    char seconds[16], size[32];
    snprintf(seconds, sizeof(seconds), "%d", spec->duration);
    snprintf(size, sizeof(size), "%dx%d", spec->width, spec->height);
    json_t *body = json_object();
    int bad = body == NULL;
    bad |= json_object_set_new(body, "model", json_string(provider_model));
    bad |= json_object_set_new(body, "prompt", prompt);
    bad |= json_object_set_new(body, "seconds", json_string(seconds));
    bad |= json_object_set_new(body, "size", json_string(size));
    if (bad) {
        json_decref(body);
        return vg_adapter_out_of_memory(err);
    }
    return vg_call_submit(call, account, KEY_PREFIX, body, err, "/v1/videos");
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

static int openai_build_cancel(const vg_upstream_account *account,
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
    .build_cancel = openai_build_cancel,
    .build_download = openai_build_download,
};
