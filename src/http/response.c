/*
 * response.c - how every answer leaves the server: the contract's JSON
 * envelope, the request id header, and files with Range support.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/http.h"
#include "util/log.h"
#include "util/parse.h"

const char *vg_http_header(vg_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

typedef struct joined {
    vg_arena *arena;
    const char *name;
    char *text;
} joined;

static enum MHD_Result join_value(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
    joined *j = cls;
    (void)kind;
    if (value == NULL || strcasecmp(key, j->name) != 0)
        return MHD_YES;
    j->text = j->text == NULL
                  ? vg_arena_strdup(j->arena, value)
                  : vg_arena_sprintf(j->arena, "%s, %s", j->text, value);
    return MHD_YES;
}

const char *vg_http_header_all(vg_http_request *req, const char *name)
{
    joined j = {&req->arena, name, NULL};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, join_value, &j);
    return j.text;
}

const char *vg_http_query(vg_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

const char *vg_http_form_value(vg_http_request *req, const char *name)
{
    json_t *value = req->form ? json_object_get(req->form, name) : NULL;
    return value ? json_string_value(value) : NULL;
}

void vg_http_on_cleanup(vg_http_request *req, void (*fn)(void *), void *arg)
{
    vg_cleanup *c = vg_arena_alloc(&req->arena, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->next = req->cleanups;
    req->cleanups = c;
}

void vg_http_add_header(vg_http_request *req, const char *name,
                        const char *value)
{
    vg_header *h = vg_arena_alloc(&req->arena, sizeof(*h));
    h->name = vg_arena_strdup(&req->arena, name);
    h->value = vg_arena_strdup(&req->arena, value);
    h->next = req->headers;
    req->headers = h;
}

static int queue(vg_http_request *req, int status,
                 struct MHD_Response *response)
{
    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, "X-Request-Id", req->id);
    for (vg_header *h = req->headers; h != NULL; h = h->next)
        MHD_add_response_header(response, h->name, h->value);
    req->status = status;
    req->responded = true;
    enum MHD_Result rc =
        MHD_queue_response(req->conn, (unsigned)status, response);
    MHD_destroy_response(response);
    return rc;
}

/* Queues a JSON body of len bytes with the headers every JSON answer
 * has. */
static int queue_json(vg_http_request *req, int status,
                      struct MHD_Response *response, size_t len)
{
    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "no-store");
    req->bytes_out = (int64_t)len;
    return queue(req, status, response);
}

static int queue_json_text(vg_http_request *req, int status, char *text,
                           size_t len, enum MHD_ResponseMemoryMode mode)
{
    return queue_json(req, status,
                      MHD_create_response_from_buffer(len, text, mode), len);
}

int vg_http_send_json(vg_http_request *req, int status, json_t *body)
{
    char *text = vg_http_json_text(body);
    json_decref(body);
    if (text == NULL)
        return MHD_NO;
    return queue_json_text(req, status, text, strlen(text),
                           MHD_RESPMEM_MUST_FREE);
}

int vg_http_send_static_json(vg_http_request *req, const char *body,
                             size_t len)
{
    return queue_json_text(req, 200, (char *)body, len,
                           MHD_RESPMEM_PERSISTENT);
}

json_t *vg_http_success_doc(json_t *data, const char *message)
{
    return json_pack("{s:{s:s,s:s},s:o,s:{}}", "api_details", "api_status",
                     "success", "api_message", message, "data", data,
                     "error");
}

int vg_http_send_success(vg_http_request *req, int status, json_t *data,
                         const char *message)
{
    return vg_http_send_json(req, status, vg_http_success_doc(data, message));
}

char *vg_http_json_text(const json_t *body)
{
    return json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

static void drop_shared(void *data)
{
    vg_shared_text_unref(vg_shared_text_of(data));
}

int vg_http_send_shared_json(vg_http_request *req, int status,
                             vg_shared_text *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer_with_free_callback(
            text->len, text->data, drop_shared);
    if (response == NULL) {
        vg_shared_text_unref(text);
        return MHD_NO;
    }
    return queue_json(req, status, response, text->len);
}

/* A JSON string literal for s (quotes included), escaped by jansson. */
static char *quote(const char *s)
{
    json_t *value = json_string(s);
    char *text = value ? json_dumps(value, JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    return text;
}

int vg_http_send_error(vg_http_request *req, const vg_error *err)
{
    int status = err->status >= 400 && err->status <= 599 ? err->status
                                                          : 500;
    if (status == 500)
        vg_log_json("error", json_pack("{s:s,s:s,s:s,s:s}", "msg",
                                       "internal error", "request_id",
                                       req->id, "code", err->code,
                                       "cause", err->message));
    /* Errors are the answer to most abusive traffic, so the envelope is
     * assembled from escaped pieces rather than built as a JSON tree. */
    char *message = quote(err->message);
    char *code = quote(err->code[0] ? err->code : "error");
    char *field = err->field[0] ? quote(err->field) : NULL;
    if (message == NULL || code == NULL || (err->field[0] && !field)) {
        free(message);
        free(code);
        free(field);
        return MHD_NO;
    }
    char *body = NULL;
    int len = asprintf(&body,
                       "{\"api_details\":{\"api_status\":\"failure\","
                       "\"api_message\":%s},\"data\":{},\"error\":"
                       "{\"code\":%s,\"message\":%s,%s%s%s\"status\":%d}}",
                       message, code, message, field ? "\"field\":" : "",
                       field ? field : "", field ? "," : "", status);
    free(message);
    free(code);
    free(field);
    if (len < 0)
        return MHD_NO;
    return queue_json_text(req, status, body, (size_t)len,
                           MHD_RESPMEM_MUST_FREE);
}

int vg_http_parse_range(const char *header, int64_t size, int64_t *first,
                        int64_t *last)
{
    if (header == NULL || strncmp(header, "bytes=", 6) != 0)
        return 0;
    const char *spec = header + 6;
    if (strchr(spec, ',') != NULL)
        return 0; /* several ranges: the whole file is a valid answer */
    const char *dash = strchr(spec, '-');
    if (dash == NULL)
        return 0;
    char a[32], b[32];
    size_t alen = (size_t)(dash - spec), blen = strlen(dash + 1);
    if (alen >= sizeof(a) || blen >= sizeof(b))
        return 0;
    memcpy(a, spec, alen);
    a[alen] = '\0';
    memcpy(b, dash + 1, blen + 1);
    int64_t x, y;
    /* Digits too many for any file: a start past every end, a suffix
     * longer than every file. */
    bool huge_a = alen > 18 && strspn(a, "0123456789") == alen;
    bool huge_b = blen > 18 && strspn(b, "0123456789") == blen;
    if (alen == 0) { /* suffix: the last y bytes */
        if (huge_b)
            y = INT64_MAX;
        else if (vg_parse_int64(b, &y) != 0 || y < 0)
            return 0;
        if (y == 0 || size == 0)
            return -1;
        *first = y >= size ? 0 : size - y;
        *last = size - 1;
        return 1;
    }
    if (huge_a)
        return -1;
    if (vg_parse_int64(a, &x) != 0 || x < 0)
        return 0;
    if (blen == 0 || huge_b)
        y = size - 1; /* open, or beyond any file: to the end */
    else if (vg_parse_int64(b, &y) != 0 || y < x)
        return 0;
    if (x >= size)
        return -1;
    if (y >= size)
        y = size - 1;
    *first = x;
    *last = y;
    return 1;
}

int vg_http_send_file(vg_http_request *req, int fd, int64_t size,
                      const char *content_type)
{
    int64_t first = 0, last = size - 1;
    const char *range = vg_http_header(req, MHD_HTTP_HEADER_RANGE);
    int kind = vg_http_parse_range(range, size, &first, &last);
    char value[96];
    if (kind < 0) {
        close(fd);
        struct MHD_Response *response =
            MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        snprintf(value, sizeof(value), "bytes */%lld", (long long)size);
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE,
                                value);
        return queue(req, 416, response);
    }
    uint64_t length = kind == 1 ? (uint64_t)(last - first + 1)
                                : (uint64_t)size;
    struct MHD_Response *response = MHD_create_response_from_fd_at_offset64(
        length, fd, (uint64_t)(kind == 1 ? first : 0));
    if (response == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_ACCEPT_RANGES,
                            "bytes");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "private, max-age=3600");
    if (kind == 1) {
        snprintf(value, sizeof(value), "bytes %lld-%lld/%lld",
                 (long long)first, (long long)last, (long long)size);
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE,
                                value);
    }
    req->bytes_out = (int64_t)length;
    return queue(req, kind == 1 ? 206 : 200, response);
}
