/*
 * fal.c - the fal queue protocol (queue.fal.run), as an adapter.
 *
 * fal hosts many video models behind one queue: a submit POSTs the
 * model's own input JSON to {base}/{model id} and answers the URLs of the
 * request (status, response, cancel). fal asks clients to use those URLs
 * rather than build them, so the adapter's task is a small JSON object
 * holding them: {"request_id", "status_url", "response_url", "cancel_url"}.
 *
 * Polling is two steps. The status URL answers IN_QUEUE, IN_PROGRESS or
 * COMPLETED, and every status reply carries "response_url"; a COMPLETED
 * reply becomes VG_TASK_FETCH with that URL, the engine GETs it (through
 * build_download, which adds the key on the queue's own host) and hands
 * the result ({"video": {"url", "content_type"}, "seed"}) to parse_poll
 * again. A COMPLETED status with an "error", or a result that is an error
 * ({"detail": ...}), is a failed task.
 *
 * The input shape is the one most fal video models share. Models differ
 * in how they take the duration: Kling and Seedance 1.x want a string of
 * seconds ("5"), newer models an integer (fal's input models convert "5"
 * to 5), and Google's Veo endpoints a string with a unit ("8s"). So the
 * duration is sent as "<n>s" to model ids containing "/veo" and as "<n>"
 * to every other model. The rest: "prompt", "aspect_ratio" ("16:9"),
 * "resolution" ("720p"), "seed", and the reference images as data URLs
 * (fal accepts them wherever it takes a file URL), the first as
 * "image_url". "generate_audio", "camera_fixed" and a last frame go only
 * to models whose input schema has them (the table below): fal ignores
 * fields a model does not know, which would lose them silently.
 *
 * Every call carries the key ("Authorization: Key ..."), and the URLs fal
 * returned are only called when they are on the configured queue's host,
 * so a malformed or hostile answer cannot send the key elsewhere. Result
 * videos live on fal's CDN under unguessable names and are fetched
 * without the key: a download carries it only to a request's own URL on
 * the queue ("/requests/" in its path), never to a file URL, even one on
 * the queue's host.
 */
#include "providers/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const resolution_names[VG_RES_COUNT] = {"480p", "720p",
                                                           "1080p"};

#define KEY_PREFIX "Authorization: Key "

static int malformed(vg_error *err, const char *what)
{
    return vg_reply_malformed(err, "fal answered without %s", what);
}

/*
 * The input schemas of the models the catalog routes to fal (from fal's
 * model pages): which of the optional fields each has, and how it takes a
 * last frame. A second image to a model without one is refused (400):
 * fal would drop an unknown "end_image_url" silently and the client's
 * last frame would be lost. Veo 3.1's image-to-video endpoints have a
 * first-last-frame sibling, which two images go to instead.
 */
static const vg_input_schema schemas[] = {
    {"fal-ai/bytedance/seedance/v1/pro/*", false, true, false,
     "end_image_url", NULL, NULL, NULL},
    {"fal-ai/bytedance/seedance/v1.5/pro/*", true, true, false,
     "end_image_url", NULL, NULL, NULL},
    {"fal-ai/veo3.1/image-to-video", true, false, false, NULL,
     "fal-ai/veo3.1/first-last-frame-to-video", "first_frame_url",
     "last_frame_url"},
    {"fal-ai/veo3.1/fast/image-to-video", true, false, false, NULL,
     "fal-ai/veo3.1/fast/first-last-frame-to-video", "first_frame_url",
     "last_frame_url"},
    {"fal-ai/veo3*", true, false, false, NULL, NULL, NULL, NULL},
    {"fal-ai/wan-*", false, false, false, NULL, NULL, NULL, NULL},
    {0},
};

/* A model fal hosts that the table does not know: the shape most of its
 * video models share, camera_fixed only when asked for. */
static const vg_input_schema generic = {"*", true, false, false,
                                        "end_image_url", NULL, NULL, NULL};

static int fal_build_submit(const vg_upstream_account *account,
                            const char *provider_model,
                            const vg_job_spec *spec, vg_call *call,
                            vg_error *err)
{
    const vg_input_schema *schema =
        vg_input_schema_find(schemas, provider_model);
    if (schema == NULL)
        schema = &generic;
    const char *image_keys[2] = {"image_url", schema->last_frame};
    const char *model = provider_model;
    if (spec->n_images > 2)
        return vg_error_set(err, 400, "unsupported_parameter", "images",
                            "fal models take at most two images: the "
                            "first and the last frame");
    if (spec->n_images == 2 && schema->last_frame == NULL) {
        if (schema->flf_model == NULL)
            return vg_error_set(err, 400, "unsupported_parameter", "files",
                                "%s on fal takes one reference image (the "
                                "first frame), not a last frame",
                                provider_model);
        model = schema->flf_model;
        image_keys[0] = schema->flf_first;
        image_keys[1] = schema->flf_last;
    }
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "fal does not offer this resolution");
    json_t *prompt = vg_json_prompt(spec, err);
    if (prompt == NULL)
        return -1;
    char duration[16];
    snprintf(duration, sizeof(duration), "%d%s", spec->duration,
             strstr(model, "/veo") != NULL ? "s" : "");

    json_t *body = json_object();
    int bad = body == NULL;
    bad |= json_object_set_new(body, "prompt", prompt);
    bad |= json_object_set_new(body, "aspect_ratio",
                               json_string(vg_aspect_name(spec->aspect)));
    bad |= json_object_set_new(body, "duration", json_string(duration));
    bad |= json_object_set_new(body, "resolution",
                               json_string(resolution_names[spec->resolution]));
    if (schema->camera_fixed)
        bad |= json_object_set_new(body, "camera_fixed",
                                   json_boolean(spec->camera_fixed));
    else if (schema == &generic && spec->camera_fixed)
        bad |= json_object_set_new(body, "camera_fixed", json_true());
    bad |= json_object_set_new(body, "seed", json_integer(spec->seed));
    if (schema->audio)
        bad |= json_object_set_new(body, "generate_audio",
                                   json_boolean(spec->generate_audio));
    if (bad) {
        json_decref(body);
        return vg_adapter_out_of_memory(err);
    }
    if (vg_json_put_image_refs(body, spec, image_keys, spec->n_images,
                               err) != 0) {
        json_decref(body);
        return -1;
    }
    return vg_call_submit(call, account, KEY_PREFIX, body, err, "/%s", model);
}

static int fal_parse_submit(const vg_reply *reply, char **task, vg_error *err)
{
    static const char *const keys[] = {"request_id", "status_url",
                                       "response_url", "cancel_url"};
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *request_id = vg_json_string(doc, "request_id");
    const char *status_url = vg_json_string(doc, "status_url");
    const char *response_url = vg_json_string(doc, "response_url");
    int rc = 0;
    if (request_id == NULL || *request_id == '\0')
        rc = malformed(err, "a request id");
    else if (!vg_url_is_http(status_url) || !vg_url_is_http(response_url))
        rc = malformed(err, "the request's status and response URLs");
    json_t *kept = rc == 0 ? json_object() : NULL;
    if (rc == 0 && kept == NULL)
        rc = vg_adapter_out_of_memory(err);
    for (size_t i = 0; rc == 0 && i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *value = vg_json_string(doc, keys[i]);
        if (value != NULL &&
            json_object_set_new(kept, keys[i], json_string(value)) != 0)
            rc = vg_adapter_out_of_memory(err);
    }
    if (rc == 0) {
        *task = json_dumps(kept, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (*task == NULL)
            rc = vg_adapter_out_of_memory(err);
    }
    json_decref(kept);
    json_decref(doc);
    return rc;
}

/* One URL out of the stored task, copied into a malloc'd string. */
static int task_url(const char *task, const char *key, char **url,
                    vg_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loads(task != NULL ? task : "", 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the stored fal task is not readable");
    }
    const char *value = vg_json_string(doc, key);
    int rc = 0;
    if (value == NULL || *value == '\0')
        rc = vg_reply_malformed(err, "fal gave no %s for this request", key);
    else if ((*url = strdup(value)) == NULL)
        rc = vg_adapter_out_of_memory(err);
    json_decref(doc);
    return rc;
}

/* A call with the key to one of the URLs fal returned for the task. */
static int queue_call(const vg_upstream_account *account, const char *task,
                      const char *key, const char *method, vg_call *call,
                      vg_error *err)
{
    char *url = NULL;
    if (task_url(task, key, &url, err) != 0)
        return -1;
    int rc;
    if (!vg_url_on_origin(url, account->base_url))
        rc = vg_reply_malformed(err, "fal's %s is not on the queue's host",
                                key);
    else
        rc = vg_call_start(call, method, account, KEY_PREFIX, err, "%s", url);
    free(url);
    return rc;
}

static int fal_build_poll(const vg_upstream_account *account, const char *task,
                          vg_call *call, vg_error *err)
{
    return queue_call(account, task, "status_url", "GET", call, err);
}

static int fal_build_cancel(const vg_upstream_account *account,
                            const char *task, vg_call *call, vg_error *err)
{
    return queue_call(account, task, "cancel_url", "PUT", call, err);
}

/* Whether url is one of a request's own URLs on the queue
 * ({base}/{model id}/requests/{id}[/status|/cancel]): only those take the
 * key. Anything else, even on the queue's host (a proxy that also serves
 * the files), is a file URL, and pre-signed storage refuses a request
 * that carries a second credential. */
static bool is_request_url(const vg_upstream_account *account,
                           const char *url)
{
    if (!vg_url_on_origin(url, account->base_url))
        return false;
    const char *path = url + vg_url_origin_length(url);
    const char *requests = strstr(path, "/requests/");
    return requests != NULL &&
           (size_t)(requests - path) < strcspn(path, "?#");
}

/* Result URLs (the response_url a COMPLETED status points at) need the
 * key; videos on the CDN do not, and must not see it. */
static int fal_build_download(const vg_upstream_account *account,
                              const char *video_url, vg_call *call,
                              vg_error *err)
{
    if (!vg_url_is_http(video_url))
        return vg_reply_malformed(err,
                                  "fal's result URL is not an http(s) URL");
    const char *key_prefix =
        is_request_url(account, video_url) ? KEY_PREFIX : NULL;
    return vg_call_start(call, "GET", account, key_prefix, err, "%s",
                         video_url);
}

#define FAILED_MESSAGE "fal reports that the request failed"

/* The reason in an error member: a string, {"message"} or, for
 * validation errors, [{"msg"}]. */
static const char *reason_of(const json_t *error)
{
    if (json_is_array(error))
        return vg_json_string(json_array_get(error, 0), "msg");
    return vg_json_reason(error);
}

/* The URL of a result: {"video": {"url"}}, or {"videos": [{"url"}]}. */
static const char *result_video_url(const json_t *doc)
{
    const json_t *video = json_object_get(doc, "video");
    if (!json_is_object(video))
        video = json_array_get(json_object_get(doc, "videos"), 0);
    return vg_json_string(video, "url");
}

static const vg_status_rule states[] = {
    {"IN_QUEUE", VG_TASK_QUEUED, NULL, NULL},
    {"IN_PROGRESS", VG_TASK_RUNNING, NULL, NULL},
    {"COMPLETED", VG_TASK_FETCH, NULL, NULL},
    {"FAILED", VG_TASK_FAILED, "upstream_failed", FAILED_MESSAGE},
    {"CANCELED", VG_TASK_CANCELLED, NULL, NULL},
    {"CANCELLED", VG_TASK_CANCELLED, NULL, NULL},
    {0},
};

/* A COMPLETED status: the result is at its response URL, unless the
 * status carries an error. */
static int completed(const json_t *doc, vg_task_status *status, vg_error *err)
{
    const json_t *error = json_object_get(doc, "error");
    if (error != NULL && !json_is_null(error)) {
        vg_task_fail(status, "upstream_failed", reason_of(error),
                     FAILED_MESSAGE);
        return 0;
    }
    const char *url = vg_json_string(doc, "response_url");
    if (!vg_url_is_http(url))
        return malformed(err, "the response URL of a finished request");
    if ((status->fetch_url = strdup(url)) == NULL)
        return vg_adapter_out_of_memory(err);
    status->state = VG_TASK_FETCH;
    return 0;
}

static int parse_status(const json_t *doc, const char *state,
                        vg_task_status *status, vg_error *err)
{
    const vg_status_rule *rule = vg_status_rule_find(states, state);
    if (rule == NULL)
        return vg_reply_malformed(
            err, "fal answered an unknown status \"%.64s\"", state);
    if (rule->state == VG_TASK_FETCH)
        return completed(doc, status, err);
    if (rule->state == VG_TASK_FAILED)
        vg_task_fail(status, rule->error_code,
                     reason_of(json_object_get(doc, "error")), rule->fallback);
    else
        status->state = rule->state;
    return 0;
}

/* Reads both kinds of reply: a status (it has "status") and a result (it
 * has the video, or is an error). */
static int fal_parse_poll(const vg_reply *reply, vg_task_status *status,
                          vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    int rc = 0;
    const char *url = result_video_url(doc);
    const char *state = vg_json_string(doc, "status");
    const json_t *detail = json_object_get(doc, "detail");
    if (url != NULL && *url != '\0') {
        rc = vg_task_succeed(status, url, err);
        int64_t seed;
        if (rc == 0 &&
            vg_json_lenient_int(json_object_get(doc, "seed"), &seed))
            status->seed = seed;
    } else if (state != NULL) {
        rc = parse_status(doc, state, status, err);
    } else if (detail != NULL && !json_is_null(detail)) {
        vg_task_fail(status, "upstream_failed", reason_of(detail),
                     FAILED_MESSAGE);
    } else {
        rc = malformed(err, "a status or a video");
    }
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_fal = {
    .name = "fal",
    .builtin = true,
    .default_base_url = "https://queue.fal.run",
    .default_key_env = "FAL_KEY",
    .key_header_hint = "Authorization: Key <key>",
    .default_poll_ms = 3000,
    .build_submit = fal_build_submit,
    .parse_submit = fal_parse_submit,
    .build_poll = fal_build_poll,
    .parse_poll = fal_parse_poll,
    .build_cancel = fal_build_cancel,
    .build_download = fal_build_download,
};
