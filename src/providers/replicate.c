/*
 * replicate.c - the Replicate predictions API, as an adapter.
 *
 * A job becomes a prediction of an official model: POST
 * {base}/models/{owner}/{name}/predictions with {"input": {...}}, where
 * the catalog's provider_model is "owner/name". The engine polls, so the
 * submit never asks Replicate to hold the connection (no "Prefer: wait").
 * The prediction id is the task; a poll reads the prediction's status
 * and, once it succeeded, its output: the video URL, or an array whose
 * first element is one.
 *
 * Every model has its own input schema; the adapter sends the names the
 * common video models share (Seedance 1.x, Veo 3, Kling, Wan on
 * Replicate): "prompt", "aspect_ratio" ("16:9"), "duration" (an integer
 * of seconds), "resolution" ("720p"), "seed", "generate_audio", and the
 * reference images as data URLs, the first as "image" and a second as
 * "last_frame_image" (Seedance's name). "camera_fixed" goes only when it
 * is asked for, since only Seedance knows it. Replicate ignores inputs a
 * model does not declare.
 *
 * Replicate says nothing of progress or of the seed it drew, so those
 * stay unknown. Outputs are deleted after an hour: the engine downloads
 * them as soon as the prediction succeeds.
 */
#include "providers/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const resolution_names[VG_RES_COUNT] = {"480p", "720p",
                                                           "1080p"};

static int out_of_memory(vg_error *err)
{
    return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
}

static int malformed(vg_error *err, const char *what)
{
    return vg_error_set(err, 502, "upstream_malformed", NULL,
                        "Replicate answered without %s", what);
}

/* "owner/name": two non-empty parts of letters, digits, '-', '_', '.'. */
static bool is_model_name(const char *s)
{
    int parts = 1;
    size_t part_length = 0;
    for (; *s; s++) {
        if (*s == '/') {
            if (part_length == 0)
                return false;
            parts++;
            part_length = 0;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                   (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
                   *s == '.') {
            part_length++;
        } else {
            return false;
        }
    }
    return parts == 2 && part_length > 0;
}

static json_t *build_input(const vg_job_spec *spec, vg_error *err)
{
    static const char *const image_keys[] = {"image", "last_frame_image"};
    json_t *prompt = json_string(spec->prompt != NULL ? spec->prompt : "");
    if (prompt == NULL) {
        vg_error_set(err, 400, "validation_error", "prompt",
                     "the prompt is not valid UTF-8");
        return NULL;
    }
    json_t *input = json_object();
    int bad = input == NULL;
    bad |= json_object_set_new(input, "prompt", prompt);
    bad |= json_object_set_new(input, "aspect_ratio",
                               json_string(vg_aspect_name(spec->aspect)));
    bad |=
        json_object_set_new(input, "duration", json_integer(spec->duration));
    bad |= json_object_set_new(
        input, "resolution", json_string(resolution_names[spec->resolution]));
    bad |= json_object_set_new(input, "seed", json_integer(spec->seed));
    bad |= json_object_set_new(input, "generate_audio",
                               json_boolean(spec->generate_audio));
    if (spec->camera_fixed)
        bad |= json_object_set_new(input, "camera_fixed", json_true());
    if (bad) {
        json_decref(input);
        out_of_memory(err);
        return NULL;
    }
    for (int i = 0; i < spec->n_images; i++) {
        char *url = NULL;
        if (vg_image_ref(spec, i, &url, err) != 0) {
            json_decref(input);
            return NULL;
        }
        bad = json_object_set_new(input, image_keys[i], json_string(url));
        free(url);
        if (bad) {
            json_decref(input);
            out_of_memory(err);
            return NULL;
        }
    }
    return input;
}

static int replicate_build_submit(const vg_upstream_account *account,
                                  const char *provider_model,
                                  const vg_job_spec *spec, vg_call *call,
                                  vg_error *err)
{
    if (!is_model_name(provider_model))
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the Replicate model \"%.64s\" is not "
                            "\"owner/name\"",
                            provider_model);
    if (spec->n_images > 2)
        return vg_error_set(err, 400, "unsupported_parameter", "images",
                            "Replicate models take at most two images: the "
                            "first and the last frame");
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "Replicate does not offer this resolution");
    json_t *input = build_input(spec, err);
    if (input == NULL)
        return -1;
    json_t *body = json_object();
    if (body == NULL || json_object_set_new(body, "input", input) != 0) {
        json_decref(body);
        return out_of_memory(err);
    }
    if (vg_call_set(call, "POST", account->base_url, "/models/%s/predictions",
                    provider_model) != 0 ||
        vg_call_header(call, "Authorization: Bearer %s", account->api_key) !=
            0 ||
        vg_call_json(call, body) != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int replicate_parse_submit(const vg_reply *reply, char **task,
                                  vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *id = vg_json_string(doc, "id");
    if (id == NULL || *id == '\0') {
        json_decref(doc);
        return malformed(err, "a prediction id");
    }
    *task = strdup(id);
    json_decref(doc);
    if (*task == NULL)
        return out_of_memory(err);
    return 0;
}

/* A call about one prediction: {base}/predictions/{id}{suffix}. */
static int prediction_call(const vg_upstream_account *account,
                           const char *task, const char *method,
                           const char *suffix, vg_call *call, vg_error *err)
{
    char *id = vg_url_escape(task);
    if (id == NULL)
        return out_of_memory(err);
    int rc = vg_call_set(call, method, account->base_url, "/predictions/%s%s",
                         id, suffix);
    free(id);
    if (rc != 0 || vg_call_header(call, "Authorization: Bearer %s",
                                  account->api_key) != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int replicate_build_poll(const vg_upstream_account *account,
                                const char *task, vg_call *call, vg_error *err)
{
    return prediction_call(account, task, "GET", "", call, err);
}

static int replicate_build_cancel(const vg_upstream_account *account,
                                  const char *task, vg_call *call,
                                  vg_error *err)
{
    return prediction_call(account, task, "POST", "/cancel", call, err);
}

/* The video URL in an output: a string, an array whose first element is
 * one, or an object with a "video" string. */
static const char *output_url(const json_t *output)
{
    if (json_is_array(output))
        output = json_array_get(output, 0);
    else if (json_is_object(output))
        output = json_object_get(output, "video");
    return json_string_value(output);
}

static void set_failure(vg_task_status *status, const json_t *error,
                        const char *code, const char *fallback)
{
    const char *message = json_is_object(error)
                              ? vg_json_string(error, "message")
                              : json_string_value(error);
    status->state = VG_TASK_FAILED;
    snprintf(status->error_code, sizeof(status->error_code), "%s", code);
    snprintf(status->error_message, sizeof(status->error_message), "%s",
             message != NULL && *message ? message : fallback);
}

static int replicate_parse_poll(const vg_reply *reply, vg_task_status *status,
                                vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *state = vg_json_string(doc, "status");
    int rc = 0;
    if (state == NULL) {
        rc = malformed(err, "a prediction status");
    } else if (strcmp(state, "starting") == 0) {
        status->state = VG_TASK_QUEUED;
    } else if (strcmp(state, "processing") == 0) {
        status->state = VG_TASK_RUNNING;
    } else if (strcmp(state, "succeeded") == 0) {
        const char *url = output_url(json_object_get(doc, "output"));
        if (url == NULL || *url == '\0') {
            rc = malformed(err, "a video URL for a finished prediction");
        } else if ((status->video_url = strdup(url)) == NULL) {
            rc = out_of_memory(err);
        } else {
            status->state = VG_TASK_SUCCEEDED;
            status->progress = 100;
        }
    } else if (strcmp(state, "failed") == 0) {
        set_failure(status, json_object_get(doc, "error"), "upstream_failed",
                    "Replicate reports that the prediction failed");
    } else if (strcmp(state, "aborted") == 0) {
        /* Ended before it ran, when a deadline passed: it expired. */
        set_failure(status, json_object_get(doc, "error"), "upstream_expired",
                    "Replicate aborted the prediction before it ran");
    } else if (strcmp(state, "canceled") == 0) {
        status->state = VG_TASK_CANCELLED;
    } else {
        rc = vg_error_set(err, 502, "upstream_malformed", NULL,
                          "Replicate answered an unknown status \"%.64s\"",
                          state);
    }
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_replicate = {
    .name = "replicate",
    .key_header_hint = "Authorization: Bearer <key>",
    .default_poll_ms = 3000,
    .build_submit = replicate_build_submit,
    .parse_submit = replicate_parse_submit,
    .build_poll = replicate_build_poll,
    .parse_poll = replicate_parse_poll,
    .build_cancel = replicate_build_cancel,
    .build_download = NULL,
};
