/*
 * google.c - the Google Gemini API adapter, for the Veo models.
 *
 * Veo runs as a long-running operation: predictLongRunning answers with
 * an operation name, and polling that name eventually says done, with a
 * video URI, an error, or nothing because the safety filter removed the
 * video. The Gemini API is stricter than Vertex AI about the request: it
 * refuses seed, generateAudio and fps outright (Google's own SDKs throw
 * before sending them), so this adapter never sends them, and checks the
 * model's duration and resolution rules here so a client gets a clear
 * 400 rather than Google's. The video URI needs the API key to
 * download, unlike other providers' pre-signed URLs. Facts:
 * docs/providers.md (Google Gemini API, Veo) and the google-genai SDKs.
 *
 * The same models on Vertex AI ("google-vertex", vg_adapter_vertex) take
 * the same instances at
 * {base}/publishers/google/models/{model}:predictLongRunning, where base
 * is ".../v1/projects/{project}/locations/{region}", with an OAuth bearer
 * (oauth.h) instead of an API key. Vertex accepts generateAudio and seed,
 * so both are sent, and writes the video to the operator's Cloud Storage
 * (parameters.storageUri): without it the video would come back inline,
 * base64 in the poll answer, far above what a poll may carry. The
 * operation is polled with POST ...:fetchPredictOperation
 * {"operationName"}, and the result's gcsUri is read through the Cloud
 * Storage JSON API with the same bearer.
 */
#include "providers/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define KEY_PREFIX "x-goog-api-key: "

/* A 400 for `field`; `what` completes "the provider's model X ...". */
static int unsupported(vg_error *err, const char *field, const char *model,
                       const char *what)
{
    return vg_error_set(err, 400, "unsupported_parameter", field,
                        "%s: the provider's model %s %s", field, model, what);
}

/* What the Gemini API accepts for this model: Veo 2 makes 5 to 8 s at
 * 720p without sound; Veo 3.x makes 4, 6 or 8 s at 720p or 1080p, and
 * 1080p only at 8 s. Both make 16:9 or 9:16. */
static int check_spec(const char *model, const vg_job_spec *spec,
                      vg_error *err)
{
    bool veo2 = starts_with(model, "veo-2");
    if (spec->aspect != VG_AR_16_9 && spec->aspect != VG_AR_9_16)
        return unsupported(err, "aspect_ratio", model,
                           "supports 16:9 or 9:16");
    if (veo2) {
        if (spec->resolution != VG_RES_720P)
            return unsupported(err, "resolution", model, "supports 720P");
        if (spec->duration < 5 || spec->duration > 8)
            return unsupported(err, "duration", model, "supports 5 to 8");
        if (spec->generate_audio)
            return unsupported(err, "generate_audio", model,
                               "makes no audio track");
    } else {
        if (spec->resolution != VG_RES_720P &&
            spec->resolution != VG_RES_1080P)
            return unsupported(err, "resolution", model,
                               "supports 720P or 1080P");
        if (spec->duration != 4 && spec->duration != 6 && spec->duration != 8)
            return unsupported(err, "duration", model, "supports 4, 6 or 8");
        if (spec->resolution == VG_RES_1080P && spec->duration != 8)
            return unsupported(err, "duration", model,
                               "supports 8 only at 1080P");
    }
    if (spec->n_images > 2)
        return unsupported(err, "files", model,
                           "takes at most 2 reference images (first and "
                           "last frame)");
    return 0;
}

/* {"bytesBase64Encoded": ..., "mimeType": ...} for an image file. */
static json_t *image_object(const char *path, vg_error *err)
{
    char *base64;
    const char *mime;
    if (vg_image_base64(path, &base64, &mime, err) != 0)
        return NULL;
    int failed = 0;
    json_t *image = json_object();
    if (image == NULL)
        failed++;
    else {
        vg_json_put(image, "bytesBase64Encoded", json_string(base64), &failed);
        vg_json_put(image, "mimeType", json_string(mime), &failed);
    }
    free(base64);
    return vg_json_finish(image, failed, err);
}

static json_t *submit_body(const char *model, const vg_job_spec *spec,
                           const char *storage_uri, bool vertex,
                           vg_error *err)
{
    static const char *const resolutions[VG_RES_COUNT] = {"480p", "720p",
                                                          "1080p"};
    json_t *first = NULL, *last = NULL;
    if (spec->n_images > 0) {
        first = image_object(spec->image_paths[0], err);
        if (first == NULL)
            return NULL;
    }
    if (spec->n_images > 1) {
        last = image_object(spec->image_paths[1], err);
        if (last == NULL) {
            json_decref(first);
            return NULL;
        }
    }
    int failed = 0;
    json_t *body = json_object();
    json_t *instances = json_array();
    json_t *instance = json_object();
    json_t *parameters = json_object();
    if (body == NULL || instances == NULL || instance == NULL ||
        parameters == NULL) {
        json_decref(body);
        json_decref(instances);
        json_decref(instance);
        json_decref(parameters);
        json_decref(first);
        json_decref(last);
        vg_adapter_out_of_memory(err);
        return NULL;
    }
    vg_json_put(instance, "prompt",
                json_string(spec->prompt != NULL ? spec->prompt : ""),
                &failed);
    if (first != NULL)
        vg_json_put(instance, "image", first, &failed);
    if (last != NULL)
        vg_json_put(instance, "lastFrame", last, &failed);
    if (json_array_append_new(instances, instance) != 0)
        failed++;
    vg_json_put(body, "instances", instances, &failed);

    vg_json_put(parameters, "sampleCount", json_integer(1), &failed);
    vg_json_put(parameters, "durationSeconds", json_integer(spec->duration),
                &failed);
    vg_json_put(parameters, "aspectRatio",
                json_string(vg_aspect_name(spec->aspect)), &failed);
    /* Veo 2 has no resolution parameter: it only makes 720p. */
    if (!starts_with(model, "veo-2"))
        vg_json_put(parameters, "resolution",
                    json_string(resolutions[spec->resolution]), &failed);
    if (vertex) {
        /* Veo 2 makes no sound and has no generateAudio. */
        if (!starts_with(model, "veo-2"))
            vg_json_put(parameters, "generateAudio",
                        json_boolean(spec->generate_audio), &failed);
        vg_json_put(parameters, "seed", json_integer(spec->seed), &failed);
        vg_json_put(parameters, "storageUri", json_string(storage_uri),
                    &failed);
    }
    vg_json_put(body, "parameters", parameters, &failed);
    return vg_json_finish(body, failed, err);
}

static int google_build_submit(const vg_upstream_account *account,
                               const char *provider_model,
                               const vg_job_spec *spec, vg_call *call,
                               vg_error *err)
{
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT ||
        (int)spec->aspect < 0 || spec->aspect >= VG_AR_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "unknown resolution or aspect ratio");
    if (check_spec(provider_model, spec, err) != 0)
        return -1;
    json_t *body = submit_body(provider_model, spec, NULL, false, err);
    if (body == NULL)
        return -1;
    return vg_call_submit_escaped(call, account, KEY_PREFIX, body,
                                  "/models/%s:predictLongRunning",
                                  provider_model, err);
}

static int google_parse_submit(const vg_reply *reply, char **task,
                               vg_error *err)
{
    return vg_reply_task_id(reply, "name",
                            "the provider's answer has no operation name",
                            task, err);
}

/* An operation name ("models/veo-3.1-generate-preview/operations/abc")
 * becomes part of the URL path as is, so it must look like one. */
static bool is_operation_name(const char *name)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-_./";
    return *name != '\0' && *name != '/' && strstr(name, "..") == NULL &&
           name[strspn(name, allowed)] == '\0';
}

static int google_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    if (!is_operation_name(task))
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the job's upstream task is not a Google "
                            "operation name");
    return vg_call_start(call, "GET", account, KEY_PREFIX, err, "/%s", task);
}

/* The safety filter's reasons, joined with "; " ("" when it gave
 * none). */
static void filtered_message(const json_t *reasons, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    size_t i;
    json_t *reason;
    json_array_foreach(reasons, i, reason)
    {
        const char *text = json_string_value(reason);
        if (text == NULL || *text == '\0')
            continue;
        int w =
            snprintf(out + len, n - len, "%s%s", len > 0 ? "; " : "", text);
        if (w < 0 || (size_t)w >= n - len) {
            len = strlen(out); /* cut at the end of the buffer */
            break;
        }
        len += (size_t)w;
    }
}

/* An operation that ended in error, or is still running: marks status
 * and returns true; false when it is done with a response to read. */
static bool operation_pending_or_failed(const json_t *doc,
                                        vg_task_status *status)
{
    json_t *error = json_object_get(doc, "error");
    if (json_is_object(error)) {
        int64_t code = 0;
        char fallback[64];
        vg_json_lenient_int(json_object_get(error, "code"), &code);
        snprintf(fallback, sizeof(fallback),
                 "the provider failed the operation (code %lld)",
                 (long long)code);
        vg_task_fail(status, "upstream_failed",
                     vg_json_string(error, "message"), fallback);
        return true;
    }
    /* Google leaves "done" out while it is false. */
    if (!json_is_true(json_object_get(doc, "done"))) {
        status->state = VG_TASK_RUNNING;
        return true;
    }
    return false;
}

/* A done operation without a video: the safety filter's doing when it
 * says it removed some, else a plain failure ("no video" + where). */
static void fail_without_video(const json_t *result, vg_task_status *status,
                               const char *where)
{
    int64_t filtered = 0;
    if (vg_json_lenient_int(json_object_get(result, "raiMediaFilteredCount"),
                            &filtered) &&
        filtered > 0) {
        char message[sizeof(status->error_message)];
        filtered_message(json_object_get(result, "raiMediaFilteredReasons"),
                         message, sizeof(message));
        vg_task_fail(status, "content_filtered", message,
                     "the provider's safety filter removed the video");
    } else {
        char fallback[128];
        snprintf(fallback, sizeof(fallback),
                 "the provider finished the operation but returned no "
                 "video%s",
                 where);
        vg_task_fail(status, "upstream_failed", NULL, fallback);
    }
}

static int google_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    int rc = 0;
    if (!operation_pending_or_failed(doc, status)) {
        json_t *result = json_object_get(json_object_get(doc, "response"),
                                         "generateVideoResponse");
        json_t *sample =
            json_array_get(json_object_get(result, "generatedSamples"), 0);
        const char *uri =
            vg_json_string(json_object_get(sample, "video"), "uri");
        if (uri != NULL && *uri != '\0')
            rc = vg_task_succeed(status, uri, err);
        else
            fail_without_video(result, status, "");
    }
    json_decref(doc);
    return rc;
}

/* The host of an absolute http(s) URL, without port, into out; false
 * when the URL is not one or its authority has user info. */
static bool url_host(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return false;
    p += 3;
    size_t len = strcspn(p, "/?#");
    if (memchr(p, '@', len) != NULL || len == 0 || len >= n)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    char *colon = strchr(out, ':');
    if (colon != NULL)
        *colon = '\0';
    return true;
}

/* Whether the download may carry the API key: URLs on the configured
 * base's own origin (a proxy, a test fake) and Google's API hosts over
 * HTTPS. Any other host would be handed the operator's key. */
static bool key_goes_to(const char *url, const char *base)
{
    if (!vg_url_is_http(url))
        return true; /* relative: resolved against the base */
    if (vg_url_on_origin(url, base))
        return true;
    char host[256];
    if (!starts_with(url, "https://") || !url_host(url, host, sizeof(host)))
        return false;
    static const char suffix[] = ".googleapis.com";
    size_t len = strlen(host), slen = sizeof(suffix) - 1;
    return len > slen && strcmp(host + len - slen, suffix) == 0;
}

static int google_build_download(const vg_upstream_account *account,
                                 const char *video_url, vg_call *call,
                                 vg_error *err)
{
    const char *key_prefix =
        key_goes_to(video_url, account->base_url) ? KEY_PREFIX : NULL;
    return vg_call_start(call, "GET", account, key_prefix, err, "%s",
                         video_url);
}

const vg_adapter vg_adapter_google = {
    .name = "google",
    .builtin = true,
    .default_base_url = "https://generativelanguage.googleapis.com/v1beta",
    .default_key_env = "GEMINI_API_KEY",
    .key_header_hint = "x-goog-api-key: KEY",
    .default_poll_ms = 10000,
    .build_submit = google_build_submit,
    .parse_submit = google_parse_submit,
    .build_poll = google_build_poll,
    .parse_poll = google_parse_poll,
    /* The Gemini API documents no cancel for Veo operations. */
    .build_cancel = NULL,
    .build_download = google_build_download,
};

/* ---- Vertex AI ---------------------------------------------------------- */

#define BEARER_PREFIX "Authorization: Bearer "
#define STORAGE_URL "https://storage.googleapis.com"

static int vertex_build_submit(const vg_upstream_account *account,
                               const char *provider_model,
                               const vg_job_spec *spec, vg_call *call,
                               vg_error *err)
{
    if ((int)spec->resolution < 0 || spec->resolution >= VG_RES_COUNT ||
        (int)spec->aspect < 0 || spec->aspect >= VG_AR_COUNT)
        return vg_error_set(err, 400, "unsupported_parameter", "resolution",
                            "unknown resolution or aspect ratio");
    if (account->storage_uri == NULL ||
        strncmp(account->storage_uri, "gs://", 5) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the Vertex AI provider has no storage_uri");
    if (check_spec(provider_model, spec, err) != 0)
        return -1;
    json_t *body =
        submit_body(provider_model, spec, account->storage_uri, true, err);
    if (body == NULL)
        return -1;
    return vg_call_submit_escaped(
        call, account, BEARER_PREFIX, body,
        "/publishers/google/models/%s:predictLongRunning", provider_model,
        err);
}

/* The model of an operation name
 * "projects/P/locations/L/publishers/google/models/M/operations/OP",
 * into out; false when the name is not one. */
static bool operation_model(const char *task, char *out, size_t n)
{
    if (!is_operation_name(task))
        return false;
    const char *m = strstr(task, "/models/");
    const char *end = m != NULL ? strstr(m + 8, "/operations/") : NULL;
    if (m == NULL || end == NULL || end == m + 8 ||
        (size_t)(end - (m + 8)) >= n)
        return false;
    memcpy(out, m + 8, (size_t)(end - (m + 8)));
    out[end - (m + 8)] = '\0';
    return strchr(out, '/') == NULL;
}

static int vertex_build_poll(const vg_upstream_account *account,
                             const char *task, vg_call *call, vg_error *err)
{
    char model[128];
    if (!operation_model(task, model, sizeof(model)))
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the job's upstream task is not a Vertex AI "
                            "operation name");
    json_t *body = json_pack("{s:s}", "operationName", task);
    if (body == NULL)
        return vg_adapter_out_of_memory(err);
    return vg_call_submit_escaped(
        call, account, BEARER_PREFIX, body,
        "/publishers/google/models/%s:fetchPredictOperation", model, err);
}

/* "gs://bucket/object" as the Cloud Storage JSON API's media URL. */
static int gcs_media_url(const vg_upstream_account *account, const char *uri,
                         vg_task_status *status, vg_error *err)
{
    const char *bucket = uri + 5;
    const char *slash = strchr(bucket, '/');
    if (strncmp(uri, "gs://", 5) != 0 || slash == NULL || slash == bucket ||
        slash[1] == '\0')
        return vg_reply_malformed(err, "Vertex AI answered a video at "
                                       "\"%.100s\", not gs://bucket/object",
                                  uri);
    char bucket_name[256];
    size_t blen = (size_t)(slash - bucket);
    if (blen >= sizeof(bucket_name))
        return vg_reply_malformed(err, "Vertex AI answered a video in a "
                                       "bucket with a too long name");
    memcpy(bucket_name, bucket, blen);
    bucket_name[blen] = '\0';
    char *b = vg_url_escape(bucket_name), *o = vg_url_escape(slash + 1);
    char *url = NULL;
    int n = b != NULL && o != NULL
                ? asprintf(&url, "%s/storage/v1/b/%s/o/%s?alt=media",
                           account->storage_url != NULL ? account->storage_url
                                                        : STORAGE_URL,
                           b, o)
                : -1;
    free(b);
    free(o);
    if (n < 0)
        return vg_adapter_out_of_memory(err);
    int rc = vg_task_succeed(status, url, err);
    free(url);
    return rc;
}

/* Vertex's poll answers carry no account, so parse_poll cannot build the
 * download URL; it keeps the gs:// URI and build_download turns it into
 * the storage request. */
static int vertex_parse_poll(const vg_reply *reply, vg_task_status *status,
                             vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    int rc = 0;
    if (!operation_pending_or_failed(doc, status)) {
        json_t *result = json_object_get(doc, "response");
        json_t *video = json_array_get(json_object_get(result, "videos"), 0);
        const char *uri = vg_json_string(video, "gcsUri");
        if (uri != NULL && *uri != '\0')
            rc = vg_task_succeed(status, uri, err);
        else
            fail_without_video(result, status, " in Cloud Storage");
    }
    json_decref(doc);
    return rc;
}

static int vertex_build_download(const vg_upstream_account *account,
                                 const char *video_url, vg_call *call,
                                 vg_error *err)
{
    if (strncmp(video_url, "gs://", 5) == 0) {
        vg_task_status st;
        vg_task_status_init(&st);
        int rc = gcs_media_url(account, video_url, &st, err);
        if (rc == 0)
            rc = vg_call_start(call, "GET", account, BEARER_PREFIX, err, "%s",
                               st.video_url);
        vg_task_status_clear(&st);
        return rc;
    }
    /* A redirect hop: the bearer goes only to the storage host and
     * Google's API hosts. */
    const char *storage =
        account->storage_url != NULL ? account->storage_url : STORAGE_URL;
    bool key = vg_url_on_origin(video_url, storage) ||
               key_goes_to(video_url, account->base_url);
    return vg_call_start(call, "GET", account, key ? BEARER_PREFIX : NULL,
                         err, "%s", video_url);
}

const vg_adapter vg_adapter_vertex = {
    .name = "google-vertex",
    /* The base comes from its region and the key's project. */
    .builtin = true,
    .default_base_url = "",
    .default_key_env = "GOOGLE_APPLICATION_CREDENTIALS",
    .key_header_hint = "Authorization: Bearer <OAuth access token>",
    .default_poll_ms = 10000,
    .build_submit = vertex_build_submit,
    .parse_submit = google_parse_submit,
    .build_poll = vertex_build_poll,
    .parse_poll = vertex_parse_poll,
    /* Vertex documents no cancel for Veo operations either. */
    .build_cancel = NULL,
    .build_download = vertex_build_download,
};
