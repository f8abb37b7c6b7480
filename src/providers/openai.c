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

static int out_of_memory(vg_error *err)
{
    return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
}

static int malformed(vg_error *err, const char *what)
{
    return vg_error_set(err, 502, "upstream_malformed", NULL,
                        "the video server answered without %s", what);
}

static int key_header(const vg_upstream_account *account, vg_call *call)
{
    return vg_call_header(call, "Authorization: Bearer %s", account->api_key);
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
    json_t *prompt = json_string(spec->prompt != NULL ? spec->prompt : "");
    if (prompt == NULL)
        return vg_error_set(err, 400, "validation_error", "prompt",
                            "the prompt is not valid UTF-8");
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
        return out_of_memory(err);
    }
    if (vg_call_set(call, "POST", account->base_url, "/v1/videos") != 0 ||
        key_header(account, call) != 0 || vg_call_json(call, body) != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int openai_parse_submit(const vg_reply *reply, char **task,
                               vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *id = vg_json_string(doc, "id");
    if (id == NULL || *id == '\0') {
        json_decref(doc);
        return malformed(err, "a video id");
    }
    *task = strdup(id);
    json_decref(doc);
    if (*task == NULL)
        return out_of_memory(err);
    return 0;
}

static int video_call(const vg_upstream_account *account, const char *task,
                      const char *method, vg_call *call, vg_error *err)
{
    char *id = vg_url_escape(task);
    if (id == NULL)
        return out_of_memory(err);
    int rc = vg_call_set(call, method, account->base_url, "/v1/videos/%s", id);
    free(id);
    if (rc != 0 || key_header(account, call) != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int openai_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    return video_call(account, task, "GET", call, err);
}

static int openai_build_cancel(const vg_upstream_account *account,
                               const char *task, vg_call *call, vg_error *err)
{
    return video_call(account, task, "DELETE", call, err);
}

static int openai_build_download(const vg_upstream_account *account,
                                 const char *video_url, vg_call *call,
                                 vg_error *err)
{
    bool relative = video_url[0] == '/';
    bool absolute = strncmp(video_url, "https://", 8) == 0 ||
                    strncmp(video_url, "http://", 7) == 0;
    if (!relative && !absolute)
        return vg_error_set(err, 502, "upstream_malformed", NULL,
                            "the video server's result is not a URL");
    if (vg_call_set(call, "GET", account->base_url, "%s", video_url) != 0 ||
        (relative && key_header(account, call) != 0)) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static void set_failure(vg_task_status *status, const json_t *error)
{
    const char *message = json_is_object(error)
                              ? vg_json_string(error, "message")
                              : json_string_value(error);
    const char *code = vg_json_string(error, "code");
    status->state = VG_TASK_FAILED;
    snprintf(status->error_code, sizeof(status->error_code), "%s",
             code != NULL && strstr(code, "moderation") != NULL
                 ? "content_filtered"
                 : "upstream_failed");
    snprintf(status->error_message, sizeof(status->error_message), "%s",
             message != NULL && *message
                 ? message
                 : "the video server reports that the job failed");
}

static int completed(const json_t *doc, vg_task_status *status, vg_error *err)
{
    const char *id = vg_json_string(doc, "id");
    if (id == NULL || *id == '\0')
        return malformed(err, "the id of a finished video");
    char *escaped = vg_url_escape(id);
    if (escaped == NULL)
        return out_of_memory(err);
    int n = asprintf(&status->video_url, "/v1/videos/%s/content", escaped);
    free(escaped);
    if (n < 0) {
        status->video_url = NULL;
        return out_of_memory(err);
    }
    status->state = VG_TASK_SUCCEEDED;
    status->progress = 100;
    return 0;
}

static int openai_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *state = vg_json_string(doc, "status");
    int rc = 0;
    if (state == NULL) {
        rc = malformed(err, "a video status");
    } else if (strcmp(state, "queued") == 0) {
        status->state = VG_TASK_QUEUED;
    } else if (strcmp(state, "in_progress") == 0) {
        status->state = VG_TASK_RUNNING;
    } else if (strcmp(state, "completed") == 0) {
        rc = completed(doc, status, err);
    } else if (strcmp(state, "failed") == 0) {
        set_failure(status, json_object_get(doc, "error"));
    } else if (strcmp(state, "cancelled") == 0 ||
               strcmp(state, "canceled") == 0) {
        status->state = VG_TASK_CANCELLED;
    } else {
        rc = vg_error_set(err, 502, "upstream_malformed", NULL,
                          "the video server answered an unknown status "
                          "\"%.64s\"",
                          state);
    }
    int64_t progress;
    if (rc == 0 &&
        (status->state == VG_TASK_QUEUED ||
         status->state == VG_TASK_RUNNING) &&
        vg_json_lenient_int(json_object_get(doc, "progress"), &progress)) {
        if (progress < 0)
            progress = 0;
        if (progress > 100)
            progress = 100;
        status->progress = (int)progress;
    }
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
