/*
 * novita.c - the Novita adapter: one task API in front of many model
 * families, each with its own request body.
 *
 * Novita serves every video model behind POST /v3/async/{endpoint} and
 * one task-result poll, but each family keeps its original vendor's
 * field names and spellings: Seedance 1.0 says "aspect_ratio", Seedance
 * 1.5 says "ratio"; Kling wants the duration as a string; Hailuo spells
 * its resolutions "768P"; Wan nests everything under "input" and
 * "parameters". So the body is built per family, picked by the
 * endpoint's prefix, and a value a family cannot express is refused
 * here with a 400 instead of being sent and silently ignored (or billed
 * for something the video will not have). Facts: docs/providers.md
 * (Novita) and Novita's API reference pages for each endpoint.
 */
#include "providers/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seedance 1.0 and Wan take seeds in [0, 2^31 - 1]; vidgate's are
 * 32-bit. The top bit is dropped so the same seed still gives the same
 * video; the poll reports the seed the provider really used. */
#define SEED_31_BITS 0x7fffffffu

typedef enum family {
    FAMILY_UNKNOWN,
    FAMILY_SEEDANCE_1,  /* seedance-v1-pro-t2v, seedance-v1-pro-i2v */
    FAMILY_SEEDANCE_15, /* seedance-v1.5-pro-t2v, seedance-v1.5-pro-i2v */
    FAMILY_KLING,       /* kling-v2.1-t2v-master, kling-v2.1-i2v-master */
    FAMILY_HAILUO,      /* minimax-hailuo-02: text and image on one URL */
    FAMILY_WAN          /* wan-2.5-t2v-preview, wan-2.2-t2v, ... */
} family;

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static family family_of(const char *endpoint)
{
    if (starts_with(endpoint, "seedance-v1.5-"))
        return FAMILY_SEEDANCE_15;
    if (starts_with(endpoint, "seedance-v1-"))
        return FAMILY_SEEDANCE_1;
    if (starts_with(endpoint, "kling-"))
        return FAMILY_KLING;
    if (starts_with(endpoint, "minimax-hailuo-"))
        return FAMILY_HAILUO;
    if (starts_with(endpoint, "wan-"))
        return FAMILY_WAN;
    return FAMILY_UNKNOWN;
}

static int out_of_memory(vg_error *err)
{
    return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
}

/* A 400 for `field`; `what` completes "the provider's endpoint X ...". */
static int unsupported(vg_error *err, const char *field, const char *endpoint,
                       const char *what)
{
    return vg_error_set(err, 400, "unsupported_parameter", field,
                        "%s: the provider's endpoint %s %s", field, endpoint,
                        what);
}

/* Adds key: value, counting failures (value NULL: out of memory) so a
 * builder checks once at the end. */
static void put(json_t *object, const char *key, json_t *value, int *failed)
{
    if (json_object_set_new(object, key, value) != 0)
        (*failed)++;
}

/* ---- reference images -------------------------------------------------- */

/* How many reference images an endpoint takes: i2v endpoints need one
 * (some a last frame too), t2v endpoints none, and Hailuo's single
 * endpoint either. */
static int check_images(const char *endpoint, family f,
                        const vg_job_spec *spec, vg_error *err)
{
    int max = (f == FAMILY_SEEDANCE_1 || f == FAMILY_SEEDANCE_15 ||
               f == FAMILY_HAILUO)
                  ? 2
                  : 1;
    if (strstr(endpoint, "t2v") != NULL)
        max = 0;
    if (spec->n_images > max) {
        char allowed[48];
        snprintf(allowed, sizeof(allowed),
                 "takes at most %d reference image%s", max,
                 max == 1 ? "" : "s");
        return unsupported(err, "files", endpoint, allowed);
    }
    if (spec->n_images == 0 && strstr(endpoint, "i2v") != NULL)
        return unsupported(err, "files", endpoint, "needs a reference image");
    return 0;
}

/* The job's first and second reference images as data URLs (NULL when
 * the job has fewer). */
static int load_images(const vg_job_spec *spec, char **first, char **last,
                       vg_error *err)
{
    *first = NULL;
    *last = NULL;
    if (spec->n_images > 0 &&
        vg_image_ref(spec, 0, first, err) != 0)
        return -1;
    if (spec->n_images > 1 &&
        vg_image_ref(spec, 1, last, err) != 0) {
        free(*first);
        *first = NULL;
        return -1;
    }
    return 0;
}

/* Adds the images under the family's key names. */
static void put_images(json_t *body, const char *first_key,
                       const char *last_key, const char *first,
                       const char *last, int *failed)
{
    if (first != NULL)
        put(body, first_key, json_string(first), failed);
    if (last != NULL)
        put(body, last_key, json_string(last), failed);
}

static int refuse_audio(const char *endpoint, const vg_job_spec *spec,
                        vg_error *err)
{
    if (spec->generate_audio)
        return unsupported(err, "generate_audio", endpoint,
                           "makes no audio track");
    return 0;
}

static const char *prompt_of(const vg_job_spec *spec)
{
    return spec->prompt != NULL ? spec->prompt : "";
}

/* ---- Seedance 1.0 ------------------------------------------------------ */

static json_t *seedance1_body(const char *endpoint, const vg_job_spec *spec,
                              vg_error *err)
{
    static const char *const resolutions[VG_RES_COUNT] = {"480p", "720p",
                                                          "1080p"};
    if (spec->duration != 5 && spec->duration != 10) {
        unsupported(err, "duration", endpoint, "supports 5 or 10");
        return NULL;
    }
    if (refuse_audio(endpoint, spec, err) != 0)
        return NULL;
    char *first, *last;
    if (load_images(spec, &first, &last, err) != 0)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    if (body == NULL)
        failed++;
    else {
        put(body, "prompt", json_string(prompt_of(spec)), &failed);
        put_images(body, "image", "last_image", first, last, &failed);
        put(body, "resolution", json_string(resolutions[spec->resolution]),
            &failed);
        put(body, "aspect_ratio", json_string(vg_aspect_name(spec->aspect)),
            &failed);
        put(body, "duration", json_integer(spec->duration), &failed);
        put(body, "camera_fixed", json_boolean(spec->camera_fixed), &failed);
        put(body, "seed", json_integer(spec->seed & SEED_31_BITS), &failed);
    }
    free(first);
    free(last);
    if (failed) {
        json_decref(body);
        out_of_memory(err);
        return NULL;
    }
    return body;
}

/* ---- Seedance 1.5 ------------------------------------------------------ */

static json_t *seedance15_body(const char *endpoint, const vg_job_spec *spec,
                               vg_error *err)
{
    static const char *const resolutions[VG_RES_COUNT] = {"480p", "720p",
                                                          NULL};
    if (spec->resolution >= VG_RES_COUNT ||
        resolutions[spec->resolution] == NULL) {
        unsupported(err, "resolution", endpoint, "supports 480P or 720P");
        return NULL;
    }
    if (spec->duration < 4 || spec->duration > 12) {
        unsupported(err, "duration", endpoint, "supports 4 to 12");
        return NULL;
    }
    if (spec->fps != 24) {
        unsupported(err, "fps", endpoint, "supports 24");
        return NULL;
    }
    char *first, *last;
    if (load_images(spec, &first, &last, err) != 0)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    if (body == NULL)
        failed++;
    else {
        put(body, "prompt", json_string(prompt_of(spec)), &failed);
        put_images(body, "image", "last_image", first, last, &failed);
        put(body, "ratio", json_string(vg_aspect_name(spec->aspect)), &failed);
        put(body, "resolution", json_string(resolutions[spec->resolution]),
            &failed);
        put(body, "duration", json_integer(spec->duration), &failed);
        put(body, "fps", json_integer(spec->fps), &failed);
        put(body, "seed", json_integer(spec->seed), &failed);
        put(body, "camera_fixed", json_boolean(spec->camera_fixed), &failed);
        put(body, "generate_audio", json_boolean(spec->generate_audio),
            &failed);
        put(body, "service_tier",
            json_string(spec->tier == VG_TIER_FLEX ? "flex" : "default"),
            &failed);
        put(body, "watermark", json_false(), &failed);
    }
    free(first);
    free(last);
    if (failed) {
        json_decref(body);
        out_of_memory(err);
        return NULL;
    }
    return body;
}

/* ---- Kling ------------------------------------------------------------- */

static json_t *kling_body(const char *endpoint, const vg_job_spec *spec,
                          vg_error *err)
{
    if (spec->duration != 5 && spec->duration != 10) {
        unsupported(err, "duration", endpoint, "supports 5 or 10");
        return NULL;
    }
    /* Image-to-video takes the image's shape: no aspect_ratio field. */
    bool text_only = spec->n_images == 0;
    if (text_only && spec->aspect != VG_AR_16_9 &&
        spec->aspect != VG_AR_9_16 && spec->aspect != VG_AR_1_1) {
        unsupported(err, "aspect_ratio", endpoint,
                    "supports 16:9, 9:16 or 1:1");
        return NULL;
    }
    if (refuse_audio(endpoint, spec, err) != 0)
        return NULL;
    char *first, *last;
    if (load_images(spec, &first, &last, err) != 0)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    if (body == NULL)
        failed++;
    else {
        put(body, "prompt", json_string(prompt_of(spec)), &failed);
        if (first != NULL)
            put(body, "image", json_string(first), &failed);
        put(body, "duration", json_string(spec->duration == 5 ? "5" : "10"),
            &failed);
        if (text_only)
            put(body, "aspect_ratio",
                json_string(vg_aspect_name(spec->aspect)), &failed);
    }
    free(first);
    free(last);
    if (failed) {
        json_decref(body);
        out_of_memory(err);
        return NULL;
    }
    return body;
}

/* ---- MiniMax Hailuo ---------------------------------------------------- */

static json_t *hailuo_body(const char *endpoint, const vg_job_spec *spec,
                           vg_error *err)
{
    /* Hailuo's 768P is the nearest it has to 720P. */
    static const char *const resolutions[VG_RES_COUNT] = {NULL, "768P",
                                                          "1080P"};
    if (spec->duration != 6 && spec->duration != 10) {
        unsupported(err, "duration", endpoint, "supports 6 or 10");
        return NULL;
    }
    if (spec->resolution >= VG_RES_COUNT ||
        resolutions[spec->resolution] == NULL) {
        unsupported(err, "resolution", endpoint,
                    "supports 720P (as 768P) or 1080P");
        return NULL;
    }
    if (spec->resolution == VG_RES_1080P && spec->duration != 6) {
        unsupported(err, "duration", endpoint, "supports 6 only at 1080P");
        return NULL;
    }
    if (refuse_audio(endpoint, spec, err) != 0)
        return NULL;
    char *first, *last;
    if (load_images(spec, &first, &last, err) != 0)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    if (body == NULL)
        failed++;
    else {
        put(body, "prompt", json_string(prompt_of(spec)), &failed);
        put_images(body, "image", "end_image", first, last, &failed);
        put(body, "duration", json_integer(spec->duration), &failed);
        put(body, "resolution", json_string(resolutions[spec->resolution]),
            &failed);
    }
    free(first);
    free(last);
    if (failed) {
        json_decref(body);
        out_of_memory(err);
        return NULL;
    }
    return body;
}

/* ---- Wan --------------------------------------------------------------- */

/* The "size" values (width*height) Wan's text-to-video documents, per
 * resolution and aspect ratio; NULL where it has none. */
/* clang-format off */
static const char *const wan_sizes[VG_RES_COUNT][VG_AR_COUNT] = {
    /* 16:9        9:16         1:1          4:3          3:4     21:9 */
    {"832*480",   "480*832",   "624*624",   NULL,        NULL,        NULL},
    {"1280*720",  "720*1280",  "960*960",   "1088*832",  "832*1088",  NULL},
    {"1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632", NULL},
};
/* clang-format on */

static json_t *wan_body(const char *endpoint, const vg_job_spec *spec,
                        vg_error *err)
{
    bool is_22 = starts_with(endpoint, "wan-2.2-");
    bool is_25 = starts_with(endpoint, "wan-2.5-");
    bool from_image = spec->n_images > 0;
    const char *size = NULL;
    if (!from_image) {
        size = wan_sizes[spec->resolution][spec->aspect];
        if (size == NULL) {
            unsupported(err, "aspect_ratio", endpoint,
                        "supports 16:9, 9:16, 1:1 (and 4:3, 3:4 above 480P)");
            return NULL;
        }
    }
    if (is_25 && spec->duration != 5 && spec->duration != 10) {
        unsupported(err, "duration", endpoint, "supports 5 or 10");
        return NULL;
    }
    if (is_22 && spec->resolution == VG_RES_1080P && spec->duration != 5) {
        unsupported(err, "duration", endpoint, "supports 5 only at 1080P");
        return NULL;
    }
    if (is_22 && spec->duration != 5 && spec->duration != 8) {
        unsupported(err, "duration", endpoint, "supports 5 or 8");
        return NULL;
    }
    /* Only Wan 2.5 has the "audio" switch. */
    if (!is_25 && refuse_audio(endpoint, spec, err) != 0)
        return NULL;
    char *first, *last;
    if (load_images(spec, &first, &last, err) != 0)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    json_t *input = json_object();
    json_t *parameters = json_object();
    if (body == NULL || input == NULL || parameters == NULL) {
        failed++;
        json_decref(input);
        json_decref(parameters);
    } else {
        put(input, "prompt", json_string(prompt_of(spec)), &failed);
        if (first != NULL)
            put(input, "img_url", json_string(first), &failed);
        if (from_image)
            put(parameters, "resolution",
                json_string(vg_resolution_name(spec->resolution)), &failed);
        else
            put(parameters, "size", json_string(size), &failed);
        put(parameters, "duration", json_integer(spec->duration), &failed);
        if (is_25)
            put(parameters, "audio", json_boolean(spec->generate_audio),
                &failed);
        put(parameters, "seed", json_integer(spec->seed & SEED_31_BITS),
            &failed);
        put(body, "input", input, &failed);
        put(body, "parameters", parameters, &failed);
    }
    free(first);
    free(last);
    if (failed) {
        json_decref(body);
        out_of_memory(err);
        return NULL;
    }
    return body;
}

/* ---- the adapter ------------------------------------------------------- */

static int set_call(vg_call *call, const char *method,
                    const vg_upstream_account *account, const char *path_fmt,
                    const char *arg, vg_error *err)
{
    char *escaped = vg_url_escape(arg);
    if (escaped == NULL)
        return out_of_memory(err);
    int rc = vg_call_set(call, method, account->base_url, path_fmt, escaped);
    free(escaped);
    if (rc == 0)
        rc =
            vg_call_header(call, "Authorization: Bearer %s", account->api_key);
    if (rc != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int novita_build_submit(const vg_upstream_account *account,
                               const char *provider_model,
                               const vg_job_spec *spec, vg_call *call,
                               vg_error *err)
{
    family f = family_of(provider_model);
    if (f == FAMILY_UNKNOWN)
        return vg_error_set(err, 400, "unsupported_parameter", "model",
                            "vidgate does not know the request format of "
                            "the provider's endpoint \"%s\"",
                            provider_model);
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT ||
        (int)spec->aspect < 0 || spec->aspect >= VG_AR_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "unknown resolution or aspect ratio");
    if (check_images(provider_model, f, spec, err) != 0)
        return -1;
    json_t *body = NULL;
    switch (f) {
    case FAMILY_SEEDANCE_1:
        body = seedance1_body(provider_model, spec, err);
        break;
    case FAMILY_SEEDANCE_15:
        body = seedance15_body(provider_model, spec, err);
        break;
    case FAMILY_KLING:
        body = kling_body(provider_model, spec, err);
        break;
    case FAMILY_HAILUO:
        body = hailuo_body(provider_model, spec, err);
        break;
    case FAMILY_WAN:
        body = wan_body(provider_model, spec, err);
        break;
    case FAMILY_UNKNOWN:
        break;
    }
    if (body == NULL)
        return -1;
    if (set_call(call, "POST", account, "/v3/async/%s", provider_model, err) !=
        0) {
        json_decref(body);
        return -1;
    }
    if (vg_call_json(call, body) != 0) {
        vg_call_clear(call);
        return out_of_memory(err);
    }
    return 0;
}

static int novita_parse_submit(const vg_reply *reply, char **task,
                               vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *id = vg_json_string(doc, "task_id");
    if (id == NULL || *id == '\0') {
        json_decref(doc);
        return vg_error_set(err, 502, "upstream_malformed", NULL,
                            "the provider's answer has no task_id");
    }
    *task = strdup(id);
    json_decref(doc);
    if (*task == NULL)
        return out_of_memory(err);
    return 0;
}

static int novita_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    return set_call(call, "GET", account, "/v3/async/task-result?task_id=%s",
                    task, err);
}

static void set_failed(vg_task_status *status, const char *code,
                       const char *message)
{
    status->state = VG_TASK_FAILED;
    snprintf(status->error_code, sizeof(status->error_code), "%s", code);
    snprintf(status->error_message, sizeof(status->error_message), "%s",
             message);
}

static int novita_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    json_t *task = json_object_get(doc, "task");
    if (!json_is_object(task)) {
        json_decref(doc);
        return vg_error_set(err, 502, "upstream_malformed", NULL,
                            "the provider's task result has no task");
    }
    int64_t n;
    if (vg_json_lenient_int(json_object_get(task, "progress_percent"), &n))
        status->progress = n < 0 ? 0 : n > 100 ? 100 : (int)n;
    json_t *extra = json_object_get(doc, "extra");
    if (vg_json_lenient_int(json_object_get(extra, "seed"), &n) && n >= 0)
        status->seed = n;

    const char *state = vg_json_string(task, "status");
    if (state == NULL)
        state = "";
    if (strcmp(state, "TASK_STATUS_QUEUED") == 0) {
        status->state = VG_TASK_QUEUED;
    } else if (strcmp(state, "TASK_STATUS_SUCCEED") == 0) {
        json_t *video = json_array_get(json_object_get(doc, "videos"), 0);
        const char *url = vg_json_string(video, "video_url");
        if (url == NULL || *url == '\0') {
            set_failed(status, "upstream_failed",
                       "the provider finished the task but returned no "
                       "video");
        } else {
            status->video_url = strdup(url);
            if (status->video_url == NULL) {
                json_decref(doc);
                return out_of_memory(err);
            }
            status->state = VG_TASK_SUCCEEDED;
            status->progress = 100;
        }
    } else if (strcmp(state, "TASK_STATUS_FAILED") == 0) {
        const char *reason = vg_json_string(task, "reason");
        set_failed(status, "upstream_failed",
                   reason != NULL && *reason != '\0'
                       ? reason
                       : "the provider failed the task without a reason");
    } else {
        /* TASK_STATUS_PROCESSING, and any state Novita adds later: keep
         * polling rather than fail a job that may still finish. */
        status->state = VG_TASK_RUNNING;
    }
    json_decref(doc);
    return 0;
}

const vg_adapter vg_adapter_novita = {
    .name = "novita",
    .key_header_hint = "Authorization: Bearer KEY",
    .default_poll_ms = 5000,
    .build_submit = novita_build_submit,
    .parse_submit = novita_parse_submit,
    .build_poll = novita_build_poll,
    .parse_poll = novita_parse_poll,
    .build_cancel = NULL,   /* Novita has no cancel */
    .build_download = NULL, /* video URLs are pre-signed */
};
