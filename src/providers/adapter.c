/*
 * adapter.c - what every adapter shares: building calls, reading replies
 * leniently, classifying upstream errors, encoding reference images.
 */
#include "providers/adapter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reference images are at most this big once read (the request limits
 * them well below). */
#define IMAGE_MAX_BYTES (64 << 20)

void vg_call_clear(vg_call *call)
{
    free(call->url);
    free(call->body);
    for (int i = 0; i < call->n_headers; i++)
        free(call->headers[i]);
    memset(call, 0, sizeof(*call));
}

int vg_call_set(vg_call *call, const char *method, const char *base,
                const char *path_fmt, ...)
{
    char *path = NULL;
    va_list ap;
    va_start(ap, path_fmt);
    int n = vasprintf(&path, path_fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    free(call->url);
    call->url = NULL;
    call->method = method;
    if (strncmp(path, "https://", 8) == 0 ||
        strncmp(path, "http://", 7) == 0) {
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

const vg_adapter *vg_adapter_find(const char *name)
{
    static const vg_adapter *const all[] = {
        &vg_adapter_novita, &vg_adapter_google,    &vg_adapter_byteplus,
        &vg_adapter_fal,    &vg_adapter_replicate, &vg_adapter_openai};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
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

/* ---- images ------------------------------------------------------------ */

static const char *sniff_mime(const unsigned char *p, size_t n)
{
    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "image/jpeg";
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "image/webp";
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "image/gif";
    return "application/octet-stream";
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const unsigned char *in, size_t n,
                           const char *prefix)
{
    size_t plen = strlen(prefix);
    char *out = malloc(plen + (n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, prefix, plen);
    char *o = out + plen;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                     in[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
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
    *mime = sniff_mime(data, n);
    *base64 = base64_encode(data, n, "");
    free(data);
    if (*base64 == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
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
             sniff_mime(data, n));
    *url = base64_encode(data, n, prefix);
    free(data);
    if (*url == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    return 0;
}

int vg_image_ref(const vg_job_spec *spec, int i, char **url, vg_error *err)
{
    if (spec->image_urls[i] != NULL) {
        *url = strdup(spec->image_urls[i]);
        if (*url == NULL)
            return vg_error_set(err, 500, "internal_error", NULL,
                                "out of memory");
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
