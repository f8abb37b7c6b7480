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
 * of seconds), "resolution" ("720p"), "seed", and the reference images
 * as data URLs, the first as "image" and a second as "last_frame_image"
 * (Seedance's name). "generate_audio", "camera_fixed" and "fps" go only
 * to models whose schema has them (the table below): Replicate ignores
 * inputs a model does not declare, which would lose them silently.
 *
 * Replicate says nothing of progress or of the seed it drew, so those
 * stay unknown. Outputs are deleted after an hour: the engine downloads
 * them as soon as the prediction succeeds.
 */
#include "providers/adapter.h"

#include <string.h>

static const char *const resolution_names[VG_RES_COUNT] = {"480p", "720p",
                                                           "1080p"};

#define KEY_PREFIX "Authorization: Bearer "

static int malformed(vg_error *err, const char *what)
{
    return vg_reply_malformed(err, "Replicate answered without %s", what);
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

/* The input schemas of the models the catalog routes to Replicate (from
 * their model pages): which optional inputs each has. Seedance 1.0 Pro
 * takes fps and camera_fixed but makes no sound. */
static const vg_input_schema schemas[] = {
    {"bytedance/seedance-1-pro", false, true, true, "last_frame_image", NULL,
     NULL, NULL},
    {0},
};

/* A model the table does not know: the inputs the common video models
 * share, camera_fixed only when asked for. */
static const vg_input_schema generic = {"*", true, false, false,
                                        "last_frame_image", NULL, NULL, NULL};

static json_t *build_input(const vg_input_schema *schema,
                           const vg_job_spec *spec, vg_error *err)
{
    const char *const image_keys[] = {"image", schema->last_frame};
    json_t *prompt = vg_json_prompt(spec, err);
    if (prompt == NULL)
        return NULL;
    json_t *input = json_object();
    int bad = input == NULL;
    bad |= json_object_set_new(input, "prompt", prompt);
    bad |= json_object_set_new(input, "aspect_ratio",
                               json_string(vg_aspect_name(spec->aspect)));
    bad |=
        json_object_set_new(input, "duration", json_integer(spec->duration));
    bad |= json_object_set_new(
        input, "resolution", json_string(resolution_names[spec->resolution]));
    if (schema->fps)
        bad |= json_object_set_new(input, "fps", json_integer(spec->fps));
    bad |= json_object_set_new(input, "seed", json_integer(spec->seed));
    if (schema->audio)
        bad |= json_object_set_new(input, "generate_audio",
                                   json_boolean(spec->generate_audio));
    if (schema->camera_fixed)
        bad |= json_object_set_new(input, "camera_fixed",
                                   json_boolean(spec->camera_fixed));
    else if (schema == &generic && spec->camera_fixed)
        bad |= json_object_set_new(input, "camera_fixed", json_true());
    if (bad) {
        json_decref(input);
        vg_adapter_out_of_memory(err);
        return NULL;
    }
    if (vg_json_put_image_refs(input, spec, image_keys, spec->n_images,
                               err) != 0) {
        json_decref(input);
        return NULL;
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
    const vg_input_schema *schema =
        vg_input_schema_find(schemas, provider_model);
    if (schema == NULL)
        schema = &generic;
    if (spec->n_images == 2 && schema->last_frame == NULL)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "%s on Replicate takes one reference image (the "
                            "first frame), not a last frame",
                            provider_model);
    json_t *input = build_input(schema, spec, err);
    if (input == NULL)
        return -1;
    json_t *body = json_object();
    if (body == NULL || json_object_set_new(body, "input", input) != 0) {
        json_decref(body);
        return vg_adapter_out_of_memory(err);
    }
    return vg_call_submit(call, account, KEY_PREFIX, body, err,
                          "/models/%s/predictions", provider_model);
}

static int replicate_parse_submit(const vg_reply *reply, char **task,
                                  vg_error *err)
{
    return vg_reply_task_id(
        reply, "id", "Replicate answered without a prediction id", task, err);
}

static int replicate_build_poll(const vg_upstream_account *account,
                                const char *task, vg_call *call, vg_error *err)
{
    return vg_call_start_escaped(call, "GET", account, KEY_PREFIX,
                                 "/predictions/%s", task, err);
}

static int replicate_build_cancel(const vg_upstream_account *account,
                                  const char *task, vg_call *call,
                                  vg_error *err)
{
    return vg_call_start_escaped(call, "POST", account, KEY_PREFIX,
                                 "/predictions/%s/cancel", task, err);
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

static const vg_status_rule states[] = {
    {"starting", VG_TASK_QUEUED, NULL, NULL},
    {"processing", VG_TASK_RUNNING, NULL, NULL},
    {"succeeded", VG_TASK_SUCCEEDED, NULL, NULL},
    {"failed", VG_TASK_FAILED, "upstream_failed",
     "Replicate reports that the prediction failed"},
    /* Ended before it ran, when a deadline passed: it expired. */
    {"aborted", VG_TASK_FAILED, "upstream_expired",
     "Replicate aborted the prediction before it ran"},
    {"canceled", VG_TASK_CANCELLED, NULL, NULL},
    {0},
};

static int replicate_parse_poll(const vg_reply *reply, vg_task_status *status,
                                vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *state = vg_json_string(doc, "status");
    const vg_status_rule *rule = vg_status_rule_find(states, state);
    int rc = 0;
    if (state == NULL) {
        rc = malformed(err, "a prediction status");
    } else if (rule == NULL) {
        rc = vg_reply_malformed(
            err, "Replicate answered an unknown status \"%.64s\"", state);
    } else if (rule->state == VG_TASK_SUCCEEDED) {
        const char *url = output_url(json_object_get(doc, "output"));
        if (url == NULL || *url == '\0')
            rc = malformed(err, "a video URL for a finished prediction");
        else
            rc = vg_task_succeed(status, url, err);
    } else if (rule->state == VG_TASK_FAILED) {
        /* Replicate's safety checker fails a prediction with "... flagged
         * as sensitive (E005)": the request's content, not an outage. */
        const char *reason = vg_json_reason(json_object_get(doc, "error"));
        bool flagged = reason != NULL && (strstr(reason, "E005") != NULL ||
                                          strcasestr(reason, "sensitive"));
        vg_task_fail(status, flagged ? "content_filtered" : rule->error_code,
                     reason, rule->fallback);
    } else {
        status->state = rule->state;
    }
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_replicate = {
    .name = "replicate",
    .builtin = true,
    .default_base_url = "https://api.replicate.com/v1",
    .default_key_env = "REPLICATE_API_TOKEN",
    .key_header_hint = "Authorization: Bearer <key>",
    .default_poll_ms = 3000,
    .build_submit = replicate_build_submit,
    .parse_submit = replicate_parse_submit,
    .build_poll = replicate_build_poll,
    .parse_poll = replicate_parse_poll,
    .build_cancel = replicate_build_cancel,
    .build_download = NULL,
};
