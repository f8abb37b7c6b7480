/*
 * adapter.c - what every adapter shares: building calls (URL, key
 * header, JSON body), reading replies leniently into tasks and statuses,
 * classifying upstream errors, encoding reference images, checking where
 * a URL points.
 */
#include "providers/adapter.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/request.h"

/* Reference images are at most this big once read (the request limits
 * them well below). */
#define IMAGE_MAX_BYTES (64 << 20)

void vg_call_clear(vg_call *call)
{
    free(call->url);
    free(call->body);
    for (int i = 0; i < call->n_headers; i++)
        free(call->headers[i]);
    for (int i = 0; i < call->n_parts; i++) {
        vg_form_part *part = &call->parts[i];
        free(part->name);
        free(part->value);
        free(part->file);
        free(part->filename);
        free(part->type);
    }
    memset(call, 0, sizeof(*call));
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *failed = true;
    return copy;
}

static int add_part(vg_call *call, const char *name, const char *value,
                    const char *file, const char *filename, const char *type)
{
    if (call->n_parts >= VG_CALL_MAX_PARTS)
        return -1;
    bool failed = false;
    vg_form_part *part = &call->parts[call->n_parts++];
    part->name = dup_or_null(name, &failed);
    part->value = dup_or_null(value, &failed);
    part->file = dup_or_null(file, &failed);
    part->filename = dup_or_null(filename, &failed);
    part->type = dup_or_null(type, &failed);
    return failed ? -1 : 0;
}

int vg_call_form_field(vg_call *call, const char *name, const char *value)
{
    return add_part(call, name, value, NULL, NULL, NULL);
}

int vg_call_form_file(vg_call *call, const char *name, const char *path,
                      const char *filename, const char *type)
{
    return add_part(call, name, NULL, path, filename, type);
}

int vg_call_copy(vg_call *dst, const vg_call *src)
{
    bool failed = false;
    memset(dst, 0, sizeof(*dst));
    dst->method = src->method;
    dst->url = dup_or_null(src->url, &failed);
    dst->body = dup_or_null(src->body, &failed);
    for (int i = 0; !failed && i < src->n_headers; i++)
        failed = vg_call_header(dst, "%s", src->headers[i]) != 0;
    for (int i = 0; !failed && i < src->n_parts; i++) {
        const vg_form_part *p = &src->parts[i];
        failed = add_part(dst, p->name, p->value, p->file, p->filename,
                          p->type) != 0;
    }
    if (failed) {
        vg_call_clear(dst);
        return -1;
    }
    return 0;
}

/* vg_call_set with the path's arguments as a va_list. */
static int call_vset(vg_call *call, const char *method, const char *base,
                     const char *path_fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int call_vset(vg_call *call, const char *method, const char *base,
                     const char *path_fmt, va_list ap)
{
    char *path = NULL;
    int n = vasprintf(&path, path_fmt, ap);
    if (n < 0)
        return -1;
    free(call->url);
    call->url = NULL;
    call->method = method;
    if (vg_url_is_http(path)) {
        call->url = path;
        return 0;
    }
    n = asprintf(&call->url, "%s%s", base, path);
    free(path);
    if (n < 0) {
        call->url = NULL;
        return -1;
    }
    return 0;
}

int vg_call_set(vg_call *call, const char *method, const char *base,
                const char *path_fmt, ...)
{
    va_list ap;
    va_start(ap, path_fmt);
    int rc = call_vset(call, method, base, path_fmt, ap);
    va_end(ap);
    return rc;
}

int vg_call_header(vg_call *call, const char *fmt, ...)
{
    if (call->n_headers >= VG_CALL_MAX_HEADERS)
        return -1;
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    call->headers[call->n_headers++] = line;
    return 0;
}

int vg_call_json(vg_call *call, json_t *body)
{
    if (body == NULL)
        return -1;
    free(call->body);
    call->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (call->body == NULL)
        return -1;
    return vg_call_header(call, "Content-Type: application/json");
}

int vg_adapter_out_of_memory(vg_error *err)
{
    return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
}

/* The key header and the rest of vg_call_start, once the URL is set
 * (rc: what setting it gave). */
static int finish_start(vg_call *call, int rc,
                        const vg_upstream_account *account,
                        const char *key_prefix, vg_error *err)
{
    if (rc == 0 && key_prefix != NULL)
        rc = vg_call_header(call, "%s%s", key_prefix, account->api_key);
    if (rc != 0) {
        vg_call_clear(call);
        return vg_adapter_out_of_memory(err);
    }
    return 0;
}

int vg_call_start(vg_call *call, const char *method,
                  const vg_upstream_account *account, const char *key_prefix,
                  vg_error *err, const char *path_fmt, ...)
{
    va_list ap;
    va_start(ap, path_fmt);
    int rc = call_vset(call, method, account->base_url, path_fmt, ap);
    va_end(ap);
    return finish_start(call, rc, account, key_prefix, err);
}

int vg_call_start_escaped(vg_call *call, const char *method,
                          const vg_upstream_account *account,
                          const char *key_prefix, const char *path_fmt,
                          const char *id, vg_error *err)
{
    char *escaped = vg_url_escape(id);
    if (escaped == NULL)
        return vg_adapter_out_of_memory(err);
    int rc = vg_call_set(call, method, account->base_url, path_fmt, escaped);
    free(escaped);
    return finish_start(call, rc, account, key_prefix, err);
}

int vg_call_submit(vg_call *call, const vg_upstream_account *account,
                   const char *key_prefix, json_t *body, vg_error *err,
                   const char *path_fmt, ...)
{
    va_list ap;
    va_start(ap, path_fmt);
    int rc = call_vset(call, "POST", account->base_url, path_fmt, ap);
    va_end(ap);
    if (finish_start(call, rc, account, key_prefix, err) != 0) {
        json_decref(body);
        return -1;
    }
    if (vg_call_json(call, body) != 0) {
        vg_call_clear(call);
        return vg_adapter_out_of_memory(err);
    }
    return 0;
}

void vg_task_status_init(vg_task_status *status)
{
    memset(status, 0, sizeof(*status));
    status->progress = -1;
    status->seed = -1;
    status->completion_tokens = -1;
    status->total_tokens = -1;
}

void vg_task_status_clear(vg_task_status *status)
{
    free(status->video_url);
    free(status->fetch_url);
    vg_task_status_init(status);
}

#define VG_ADAPTER_ENTRY(id) &vg_adapter_##id,
static const vg_adapter *const all_adapters[] = {VG_ADAPTERS(VG_ADAPTER_ENTRY)};
#undef VG_ADAPTER_ENTRY

const vg_adapter *vg_adapter_at(int i)
{
    return i >= 0 && (size_t)i < sizeof(all_adapters) / sizeof(all_adapters[0])
               ? all_adapters[i]
               : NULL;
}

const vg_adapter *vg_adapter_find(const char *name)
{
    for (int i = 0; vg_adapter_at(i) != NULL; i++)
        if (strcmp(vg_adapter_at(i)->name, name) == 0)
            return vg_adapter_at(i);
    return NULL;
}

/* ---- replies ----------------------------------------------------------- */

json_t *vg_reply_json(const vg_reply *reply, vg_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(reply->body != NULL ? reply->body : "",
                             reply->size, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        vg_error_set(err, 502, "upstream_malformed", NULL,
                     "the provider's answer is not a JSON object");
        return NULL;
    }
    return doc;
}

bool vg_json_lenient_int(const json_t *value, int64_t *out)
{
    if (json_is_integer(value)) {
        *out = json_integer_value(value);
        return true;
    }
    if (json_is_real(value)) {
        *out = (int64_t)json_real_value(value);
        return true;
    }
    if (json_is_string(value)) {
        const char *s = json_string_value(value);
        char *end;
        double d = strtod(s, &end);
        if (end == s)
            return false;
        while (*end == ' ')
            end++;
        if (*end != '\0')
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

const char *vg_json_string(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

int vg_reply_malformed(vg_error *err, const char *fmt, ...)
{
    char message[sizeof(err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return vg_error_set(err, 502, "upstream_malformed", NULL, "%s", message);
}

int vg_reply_task_id(const vg_reply *reply, const char *key,
                     const char *missing, char **task, vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *id = vg_json_string(doc, key);
    if (id == NULL || *id == '\0') {
        json_decref(doc);
        return vg_reply_malformed(err, "%s", missing);
    }
    *task = strdup(id);
    json_decref(doc);
    if (*task == NULL)
        return vg_adapter_out_of_memory(err);
    return 0;
}

const vg_status_rule *vg_status_rule_find(const vg_status_rule *rules,
                                          const char *name)
{
    if (name == NULL)
        return NULL;
    for (; rules->name != NULL; rules++)
        if (strcmp(rules->name, name) == 0)
            return rules;
    return NULL;
}

const char *vg_json_reason(const json_t *error)
{
    return json_is_object(error) ? vg_json_string(error, "message")
                                 : json_string_value(error);
}

void vg_task_fail(vg_task_status *status, const char *code, const char *reason,
                  const char *fallback)
{
    status->state = VG_TASK_FAILED;
    snprintf(status->error_code, sizeof(status->error_code), "%s", code);
    snprintf(status->error_message, sizeof(status->error_message), "%s",
             reason != NULL && *reason != '\0' ? reason : fallback);
}

int vg_task_succeed(vg_task_status *status, const char *url, vg_error *err)
{
    char *copy = strdup(url);
    if (copy == NULL)
        return vg_adapter_out_of_memory(err);
    free(status->video_url);
    status->video_url = copy;
    status->state = VG_TASK_SUCCEEDED;
    status->progress = 100;
    return 0;
}

void vg_task_read_progress(vg_task_status *status, const json_t *value)
{
    int64_t n;
    if (vg_json_lenient_int(value, &n))
        status->progress = n < 0 ? 0 : n > 100 ? 100 : (int)n;
}

/* The provider's reason from an error body, in the shapes providers use:
 * {"error": {"message"}}, {"error": "..."}, {"message"}, {"reason"},
 * {"detail": "..." | [{"msg"}]}. */
static void reason_of(const vg_reply *reply, char *message, size_t n)
{
    json_error_t jerr;
    json_t *doc = json_loadb(reply->body != NULL ? reply->body : "",
                             reply->size, 0, &jerr);
    const char *text = NULL;
    if (json_is_object(doc)) {
        json_t *e = json_object_get(doc, "error");
        if (json_is_object(e))
            text = vg_json_string(e, "message");
        else if (json_is_string(e))
            text = json_string_value(e);
        if (text == NULL)
            text = vg_json_string(doc, "message");
        if (text == NULL)
            text = vg_json_string(doc, "reason");
        if (text == NULL)
            text = vg_json_string(doc, "detail");
        json_t *detail = json_object_get(doc, "detail");
        if (text == NULL && json_is_array(detail))
            text = vg_json_string(json_array_get(detail, 0), "msg");
    }
    if (text != NULL && *text) {
        snprintf(message, n, "%s", text);
    } else if (reply->size > 0 && reply->body != NULL) {
        /* Not JSON: the start of the body, on one line. */
        size_t len = reply->size < n - 1 ? reply->size : n - 1;
        for (size_t i = 0; i < len; i++) {
            char c = reply->body[i];
            message[i] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
        message[len] = '\0';
    } else {
        snprintf(message, n, "HTTP %d", reply->status);
    }
    json_decref(doc);
}

static bool says_no_balance(const char *message)
{
    static const char *const words[] = {"balance", "insufficient",
                                        "credit",  "billing",
                                        "quota",   "payment"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(message, words[i]) != NULL)
            return true;
    return false;
}

vg_reply_kind vg_reply_classify(const vg_reply *reply, char *message,
                                size_t n)
{
    int s = reply->status;
    if (s >= 200 && s < 300) {
        if (n > 0)
            message[0] = '\0';
        return VG_REPLY_OK;
    }
    reason_of(reply, message, n);
    if (s == 402)
        return VG_REPLY_NO_BALANCE;
    if (s == 401)
        return VG_REPLY_AUTH;
    if (s == 403)
        return says_no_balance(message) ? VG_REPLY_NO_BALANCE
                                        : VG_REPLY_AUTH;
    if (s == 429) {
        /* Rate limits retry; an exhausted billing quota does not pass. */
        return strcasestr(message, "balance") != NULL ||
                       strcasestr(message, "billing") != NULL
                   ? VG_REPLY_NO_BALANCE
                   : VG_REPLY_RETRY;
    }
    if (s == 408 || s == 409 || s == 425)
        return VG_REPLY_RETRY;
    if (s >= 400 && s < 500)
        return VG_REPLY_REJECTED;
    return VG_REPLY_RETRY;
}

int vg_call_submit_escaped(vg_call *call, const vg_upstream_account *account,
                           const char *key_prefix, json_t *body,
                           const char *path_fmt, const char *id, vg_error *err)
{
    char *escaped = vg_url_escape(id);
    if (escaped == NULL) {
        json_decref(body);
        return vg_adapter_out_of_memory(err);
    }
    int rc = vg_call_submit(call, account, key_prefix, body, err, path_fmt,
                            escaped);
    free(escaped);
    return rc;
}

/* ---- request bodies ---------------------------------------------------- */

void vg_json_put(json_t *object, const char *key, json_t *value, int *failed)
{
    if (json_object_set_new(object, key, value) != 0)
        (*failed)++;
}

json_t *vg_json_finish(json_t *object, int failed, vg_error *err)
{
    if (failed) {
        json_decref(object);
        vg_adapter_out_of_memory(err);
        return NULL;
    }
    return object;
}

json_t *vg_json_prompt(const vg_job_spec *spec, vg_error *err)
{
    json_t *prompt = json_string(spec->prompt != NULL ? spec->prompt : "");
    if (prompt == NULL)
        vg_error_set(err, 400, "validation_error", "prompt",
                     "the prompt is not valid UTF-8");
    return prompt;
}

int vg_json_put_image_refs(json_t *object, const vg_job_spec *spec,
                           const char *const *keys, int n_keys, vg_error *err)
{
    assert(spec->n_images <= n_keys);
    for (int i = 0; i < spec->n_images && i < n_keys; i++) {
        char *url = NULL;
        if (vg_image_ref(spec, i, &url, err) != 0)
            return -1;
        int rc = json_object_set_new(object, keys[i], json_string(url));
        free(url);
        if (rc != 0)
            return vg_adapter_out_of_memory(err);
    }
    return 0;
}

/* ---- images ------------------------------------------------------------ */

/* prefix + the base64 of in, NUL-terminated, malloc'd (OpenSSL's encoder:
 * standard alphabet, padded, no line breaks). */
static char *base64_encode(const unsigned char *in, size_t n,
                           const char *prefix)
{
    size_t plen = strlen(prefix);
    char *out = malloc(plen + (n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, prefix, plen);
    EVP_EncodeBlock((unsigned char *)out + plen, in, (int)n);
    return out;
}

static int read_image(const char *path, unsigned char **data, size_t *n,
                      vg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return vg_error_set(err, 500, "internal_error", "files",
                            "a reference image of the job is missing");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 65536 : cap * 2;
            unsigned char *grown = cap <= IMAGE_MAX_BYTES
                                       ? realloc(buf, cap)
                                       : NULL;
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return vg_error_set(err, 413, "file_too_large", "files",
                                    "a reference image is too large");
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(buf);
        return vg_error_set(err, 500, "internal_error", "files",
                            "a reference image cannot be read");
    }
    *data = buf;
    *n = len;
    return 0;
}

int vg_image_base64(const char *path, char **base64, const char **mime,
                    vg_error *err)
{
    unsigned char *data;
    size_t n;
    if (read_image(path, &data, &n, err) != 0)
        return -1;
    *mime = vg_image_mime(vg_image_sniff(data, n));
    *base64 = base64_encode(data, n, "");
    free(data);
    if (*base64 == NULL)
        return vg_adapter_out_of_memory(err);
    return 0;
}

int vg_image_form_file(vg_call *call, const char *field, const char *path,
                       vg_error *err)
{
    unsigned char head[16];
    FILE *f = fopen(path, "rb");
    size_t n = f != NULL ? fread(head, 1, sizeof(head), f) : 0;
    if (f != NULL)
        fclose(f);
    vg_image_type type = vg_image_sniff(head, n);
    if (f == NULL || type == VG_IMAGE_NONE)
        return vg_error_set(err, 500, "internal_error", "files",
                            "a reference image cannot be read");
    const char *ext = type == VG_IMAGE_PNG    ? "png"
                      : type == VG_IMAGE_JPEG ? "jpg"
                                              : "webp";
    char filename[32];
    snprintf(filename, sizeof(filename), "reference.%s", ext);
    if (vg_call_form_file(call, field, path, filename,
                          vg_image_mime(type)) != 0)
        return vg_adapter_out_of_memory(err);
    return 0;
}

int vg_image_data_url(const char *path, char **url, vg_error *err)
{
    unsigned char *data;
    size_t n;
    if (read_image(path, &data, &n, err) != 0)
        return -1;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "data:%s;base64,",
             vg_image_mime(vg_image_sniff(data, n)));
    *url = base64_encode(data, n, prefix);
    free(data);
    if (*url == NULL)
        return vg_adapter_out_of_memory(err);
    return 0;
}

int vg_image_ref(const vg_job_spec *spec, int i, char **url, vg_error *err)
{
    if (spec->image_urls[i] != NULL) {
        *url = strdup(spec->image_urls[i]);
        if (*url == NULL)
            return vg_adapter_out_of_memory(err);
        return 0;
    }
    return vg_image_data_url(spec->image_paths[i], url, err);
}

char *vg_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
            *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

bool vg_url_is_http(const char *url)
{
    return url != NULL && (strncmp(url, "https://", 8) == 0 ||
                           strncmp(url, "http://", 7) == 0);
}

size_t vg_url_origin_length(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL || p == url)
        return 0;
    p += 3;
    size_t host = strcspn(p, "/?#");
    if (host == 0)
        return 0;
    return (size_t)(p - url) + host;
}

bool vg_url_on_origin(const char *url, const char *base)
{
    size_t n = vg_url_origin_length(base);
    return n > 0 && vg_url_is_http(url) && vg_url_origin_length(url) == n &&
           strncasecmp(url, base, n) == 0;
}

const vg_input_schema *vg_input_schema_find(const vg_input_schema *table,
                                            const char *model)
{
    const vg_input_schema *best = NULL;
    size_t best_len = 0;
    for (const vg_input_schema *e = table; model != NULL && e->model != NULL;
         e++) {
        size_t n = strlen(e->model);
        if (n > 0 && e->model[n - 1] == '*') {
            if (strncmp(model, e->model, n - 1) == 0 && n - 1 > best_len) {
                best = e;
                best_len = n - 1;
            }
        } else if (strcmp(model, e->model) == 0) {
            return e;
        }
    }
    return best;
}
