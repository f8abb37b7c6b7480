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

#define KEY_PREFIX "Authorization: Bearer "

/* A 400 for `field`; `what` completes "the provider's endpoint X ...". */
static int unsupported(vg_error *err, const char *field, const char *endpoint,
                       const char *what)
{
    return vg_error_set(err, 400, "unsupported_parameter", field,
                        "%s: the provider's endpoint %s %s", field, endpoint,
                        what);
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

static int refuse_audio(const char *endpoint, const vg_job_spec *spec,
                        vg_error *err)
{
    if (spec->generate_audio)
        return unsupported(err, "generate_audio", endpoint,
                           "makes no audio track");
    return 0;
}

/* ---- bodies ------------------------------------------------------------ */

/* Every family's body (Wan's "input") starts with the prompt and the
 * reference images, under the family's names for them. */
static json_t *start_body(const vg_job_spec *spec, const char *const *keys,
                          int n_keys, vg_error *err)
{
    int failed = 0;
    json_t *body = json_object();
    if (body == NULL)
        failed++;
    else
        vg_json_put(body, "prompt",
                    json_string(spec->prompt != NULL ? spec->prompt : ""),
                    &failed);
    body = vg_json_finish(body, failed, err);
    if (body == NULL)
        return NULL;
    if (vg_json_put_image_refs(body, spec, keys, n_keys, err) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* The names of the first and the last frame. */
static const char *const seedance_images[] = {"image", "last_image"};
static const char *const kling_images[] = {"image"};
static const char *const hailuo_images[] = {"image", "end_image"};
static const char *const wan_images[] = {"img_url"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

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
    json_t *body =
        start_body(spec, seedance_images, COUNT(seedance_images), err);
    if (body == NULL)
        return NULL;
    int failed = 0;
    vg_json_put(body, "resolution", json_string(resolutions[spec->resolution]),
                &failed);
    vg_json_put(body, "aspect_ratio",
                json_string(vg_aspect_name(spec->aspect)), &failed);
    vg_json_put(body, "duration", json_integer(spec->duration), &failed);
    vg_json_put(body, "camera_fixed", json_boolean(spec->camera_fixed),
                &failed);
    vg_json_put(body, "seed", json_integer(spec->seed & SEED_31_BITS),
                &failed);
    return vg_json_finish(body, failed, err);
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
    json_t *body =
        start_body(spec, seedance_images, COUNT(seedance_images), err);
    if (body == NULL)
        return NULL;
    int failed = 0;
    vg_json_put(body, "ratio", json_string(vg_aspect_name(spec->aspect)),
                &failed);
    vg_json_put(body, "resolution", json_string(resolutions[spec->resolution]),
                &failed);
    vg_json_put(body, "duration", json_integer(spec->duration), &failed);
    vg_json_put(body, "fps", json_integer(spec->fps), &failed);
    vg_json_put(body, "seed", json_integer(spec->seed), &failed);
    vg_json_put(body, "camera_fixed", json_boolean(spec->camera_fixed),
                &failed);
    vg_json_put(body, "generate_audio", json_boolean(spec->generate_audio),
                &failed);
    vg_json_put(body, "service_tier",
                json_string(spec->tier == VG_TIER_FLEX ? "flex" : "default"),
                &failed);
    vg_json_put(body, "watermark", json_false(), &failed);
    return vg_json_finish(body, failed, err);
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
    json_t *body = start_body(spec, kling_images, COUNT(kling_images), err);
    if (body == NULL)
        return NULL;
    int failed = 0;
    vg_json_put(body, "duration",
                json_string(spec->duration == 5 ? "5" : "10"), &failed);
    if (text_only)
        vg_json_put(body, "aspect_ratio",
                    json_string(vg_aspect_name(spec->aspect)), &failed);
    return vg_json_finish(body, failed, err);
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
    json_t *body = start_body(spec, hailuo_images, COUNT(hailuo_images), err);
    if (body == NULL)
        return NULL;
    int failed = 0;
    vg_json_put(body, "duration", json_integer(spec->duration), &failed);
    vg_json_put(body, "resolution", json_string(resolutions[spec->resolution]),
                &failed);
    return vg_json_finish(body, failed, err);
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
    json_t *input = start_body(spec, wan_images, COUNT(wan_images), err);
    if (input == NULL)
        return NULL;
    int failed = 0;
    json_t *body = json_object();
    json_t *parameters = json_object();
    if (body == NULL || parameters == NULL) {
        failed++;
        json_decref(input);
        json_decref(parameters);
    } else {
        if (from_image)
            vg_json_put(parameters, "resolution",
                        json_string(vg_resolution_name(spec->resolution)),
                        &failed);
        else
            vg_json_put(parameters, "size", json_string(size), &failed);
        vg_json_put(parameters, "duration", json_integer(spec->duration),
                    &failed);
        if (is_25)
            vg_json_put(parameters, "audio",
                        json_boolean(spec->generate_audio), &failed);
        vg_json_put(parameters, "seed",
                    json_integer(spec->seed & SEED_31_BITS), &failed);
        vg_json_put(body, "input", input, &failed);
        vg_json_put(body, "parameters", parameters, &failed);
    }
    return vg_json_finish(body, failed, err);
}

/* ---- the adapter ------------------------------------------------------- */

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
    return vg_call_submit_escaped(call, account, KEY_PREFIX, body,
                                  "/v3/async/%s", provider_model, err);
}

static int novita_parse_submit(const vg_reply *reply, char **task,
                               vg_error *err)
{
    return vg_reply_task_id(reply, "task_id",
                            "the provider's answer has no task_id", task, err);
}

static int novita_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    return vg_call_start_escaped(call, "GET", account, KEY_PREFIX,
                                 "/v3/async/task-result?task_id=%s", task,
                                 err);
}

/* TASK_STATUS_PROCESSING, and any state Novita adds later, are not in
 * the table: they keep the job polling rather than fail a job that may
 * still finish. */
static const vg_status_rule states[] = {
    {"TASK_STATUS_QUEUED", VG_TASK_QUEUED, NULL, NULL},
    {"TASK_STATUS_SUCCEED", VG_TASK_SUCCEEDED, NULL, NULL},
    {"TASK_STATUS_FAILED", VG_TASK_FAILED, "upstream_failed",
     "the provider failed the task without a reason"},
    {0},
};

static int novita_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    json_t *task = json_object_get(doc, "task");
    if (!json_is_object(task)) {
        json_decref(doc);
        return vg_reply_malformed(err,
                                  "the provider's task result has no task");
    }
    vg_task_read_progress(status, json_object_get(task, "progress_percent"));
    int64_t seed;
    json_t *extra = json_object_get(doc, "extra");
    if (vg_json_lenient_int(json_object_get(extra, "seed"), &seed) &&
        seed >= 0)
        status->seed = seed;

    const vg_status_rule *rule =
        vg_status_rule_find(states, vg_json_string(task, "status"));
    int rc = 0;
    if (rule == NULL) {
        status->state = VG_TASK_RUNNING;
    } else if (rule->state == VG_TASK_SUCCEEDED) {
        json_t *video = json_array_get(json_object_get(doc, "videos"), 0);
        const char *url = vg_json_string(video, "video_url");
        if (url == NULL || *url == '\0')
            vg_task_fail(status, "upstream_failed", NULL,
                         "the provider finished the task but returned no "
                         "video");
        else
            rc = vg_task_succeed(status, url, err);
    } else if (rule->state == VG_TASK_FAILED) {
        vg_task_fail(status, rule->error_code, vg_json_string(task, "reason"),
                     rule->fallback);
    } else {
        status->state = rule->state;
    }
    json_decref(doc);
    return rc;
}

const vg_adapter vg_adapter_novita = {
    .name = "novita",
    .builtin = true,
    .default_base_url = "https://api.novita.ai",
    .default_key_env = "NOVITA_API_KEY",
    .key_header_hint = "Authorization: Bearer KEY",
    .default_poll_ms = 5000,
    .build_submit = novita_build_submit,
    .parse_submit = novita_parse_submit,
    .build_poll = novita_build_poll,
    .parse_poll = novita_parse_poll,
    .build_cancel = NULL,   /* Novita has no cancel */
    .build_download = NULL, /* video URLs are pre-signed */
};
