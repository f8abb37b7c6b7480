/*
 * body.c - reading request bodies: JSON into memory, form fields into a
 * hash (a jansson object), file parts straight to disk.
 *
 * Everything here is bounded by the body's size and by configured
 * counts, because it runs for any client, before most handlers decide
 * anything: a field's value is appended to one growing buffer and stored
 * once when the field ends (no copy per part), a repeated field is found
 * by hash and refused, the number of parts is capped, and a route that
 * takes no files never opens one.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app/app.h"
#include "util/dirs.h"
#include "http/body.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/parse.h"

void vg_body_fail(vg_http_request *req, int status, const char *code,
                  const char *field, const char *message)
{
    if (req->body_failed)
        return;
    req->body_failed = true;
    vg_error_set(&req->body_error, status, code, field, "%s", message);
}

static int64_t body_limit(vg_http_request *req)
{
    const vg_config *cfg = &req->app->config;
    if (req->route->body != VG_BODY_JSON_OR_FORM)
        return VG_SMALL_BODY_BYTES;
    if (!req->is_form)
        return cfg->max_body_bytes;
    return cfg->max_body_bytes + (int64_t)cfg->request_limits.max_images *
                                     cfg->request_limits.max_image_bytes;
}

/* Room for n more bytes (and a NUL) in req->raw, grown by doubling so
 * that appending stays linear. */
static int reserve(vg_http_request *req, size_t n)
{
    if (req->raw_len + n + 1 <= req->raw_cap)
        return 0;
    /* The declared length, when there is one, is what a JSON body needs:
     * no slack held while the request waits for its job. */
    int64_t declared = vg_body_declared_length(req);
    size_t cap = req->raw_cap ? req->raw_cap
                 : !req->is_form && declared > 0 &&
                         declared < body_limit(req)
                     ? (size_t)declared + 1
                     : 1024;
    while (cap < req->raw_len + n + 1)
        cap *= 2;
    char *grown = realloc(req->raw, cap);
    if (grown == NULL) {
        vg_body_fail(req, 500, "internal_error", NULL, "out of memory");
        return -1;
    }
    req->raw = grown;
    req->raw_cap = cap;
    return 0;
}

/* ---- form fields and uploads --------------------------------------- */

/* Stores the field being read (its value is in req->raw). */
static void end_field(vg_http_request *req)
{
    if (req->field_name == NULL)
        return;
    json_t *value = json_stringn_nocheck(req->raw ? req->raw : "",
                                         req->raw_len);
    if (value == NULL ||
        json_object_setn_new_nocheck(req->form, req->field_name,
                                     strlen(req->field_name), value) != 0)
        vg_body_fail(req, 500, "internal_error", NULL, "out of memory");
    req->field_name = NULL;
    req->raw_len = 0;
}

/* A new part begins: counted against max_form_fields. */
static int count_part(vg_http_request *req)
{
    int max = req->app->config.max_form_fields;
    if (++req->n_parts > max) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "a form may have at most %d fields and files", max);
        vg_body_fail(req, 413, "too_many_fields", NULL, msg);
        return -1;
    }
    return 0;
}

static void start_field(vg_http_request *req, const char *key)
{
    end_field(req);
    if (req->body_failed || count_part(req) != 0)
        return;
    if (json_object_get(req->form, key) != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the field \"%.60s\" is given more "
                 "than once", key);
        vg_body_fail(req, 422, "validation_error", key, msg);
        return;
    }
    req->field_name = vg_arena_strdup(&req->arena, key);
}

static void append_field(vg_http_request *req, const char *key,
                         const char *data, size_t size, uint64_t off)
{
    if (off == 0 || req->field_name == NULL ||
        strcmp(req->field_name, key) != 0)
        start_field(req, key);
    if (req->body_failed)
        return;
    if (memchr(data, '\0', size) != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the field \"%.60s\" contains a NUL "
                 "byte", key);
        vg_body_fail(req, 422, "validation_error", key, msg);
        return;
    }
    req->form_bytes += (int64_t)size;
    if (req->form_bytes > req->app->config.max_body_bytes) {
        vg_body_fail(req, 413, "body_too_large", key,
                     "the form's fields are larger than the server "
                     "accepts");
        return;
    }
    if (reserve(req, size) != 0)
        return;
    memcpy(req->raw + req->raw_len, data, size);
    req->raw_len += size;
    req->raw[req->raw_len] = '\0';
}

static vg_upload *start_upload(vg_http_request *req, const char *key)
{
    end_field(req);
    if (req->body_failed || count_part(req) != 0)
        return NULL;
    /* Only authenticated routes take files (vg_body_prepare refuses the
     * rest before any byte is read); nothing unauthenticated is ever
     * written to disk. */
    if (req->route->body != VG_BODY_JSON_OR_FORM ||
        !req->route->authenticated) {
        vg_body_fail(req, 400, "invalid_body", key,
                     "this endpoint takes no file uploads");
        return NULL;
    }
    const vg_limits *limits = &req->app->config.request_limits;
    if (req->n_uploads >= limits->max_images) {
        char msg[128];
        snprintf(msg, sizeof(msg), "at most %d files may be uploaded",
                 limits->max_images);
        vg_body_fail(req, 413, "too_many_files", "files", msg);
        return NULL;
    }
    char uuid[37];
    vg_uuid_v4(uuid);
    vg_upload *u = vg_arena_alloc(&req->arena, sizeof(*u));
    u->field = vg_arena_strdup(&req->arena, key);
    u->path = vg_arena_sprintf(&req->arena, "%s/upload-%s",
                               req->app->tmp_dir, uuid);
    u->fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        vg_log_error("cannot create %s: %s", u->path, strerror(errno));
        vg_body_fail(req, 500, "internal_error", NULL,
                     "cannot store the upload");
        return NULL;
    }
    u->next = req->uploads;
    req->uploads = u;
    req->n_uploads++;
    return u;
}

static void write_upload(vg_http_request *req, vg_upload *u,
                         const char *data, size_t size)
{
    int64_t limit = req->app->config.request_limits.max_image_bytes;
    if (u->size + (int64_t)size > limit) {
        char msg[128];
        snprintf(msg, sizeof(msg), "each file may be at most %lld bytes",
                 (long long)limit);
        vg_body_fail(req, 413, "file_too_large", "files", msg);
        return;
    }
    if (vg_write_all(u->fd, data, size) != 0) {
        vg_log_error("cannot write %s: %s", u->path, strerror(errno));
        vg_body_fail(req, 500, "internal_error", NULL,
                     "cannot store the upload");
        return;
    }
    u->size += (int64_t)size;
}

static enum MHD_Result on_post_data(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *filename,
                                    const char *content_type,
                                    const char *transfer_encoding,
                                    const char *data, uint64_t off,
                                    size_t size)
{
    vg_http_request *req = cls;
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    if (req->body_failed || key == NULL)
        return MHD_NO;
    if (filename == NULL) {
        append_field(req, key, data, size, off);
        return req->body_failed ? MHD_NO : MHD_YES;
    }
    vg_upload *u = req->uploads;
    if (off == 0 || u == NULL || strcmp(u->field, key) != 0 || u->fd < 0 ||
        req->field_name != NULL) {
        u = start_upload(req, key);
        if (u == NULL)
            return MHD_NO;
    }
    write_upload(req, u, data, size);
    return req->body_failed ? MHD_NO : MHD_YES;
}

static void close_uploads(vg_http_request *req)
{
    for (vg_upload *u = req->uploads; u != NULL; u = u->next) {
        if (u->fd >= 0)
            close(u->fd);
        u->fd = -1;
    }
}

/* ---- media types ----------------------------------------------------- */

bool vg_media_type_is(const char *content_type, const char *type)
{
    size_t n = strlen(type);
    if (content_type == NULL || strncasecmp(content_type, type, n) != 0)
        return false;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

int vg_multipart_boundary(const char *content_type, char *out,
                          size_t out_size)
{
    const char *p = content_type ? strchr(content_type, ';') : NULL;
    while (p != NULL) {
        p++;
        p += strspn(p, " \t");
        if (strncasecmp(p, "boundary=", 9) == 0) {
            p += 9;
            size_t len;
            if (*p == '"') {
                p++;
                const char *end = strchr(p, '"');
                if (end == NULL)
                    return -1;
                len = (size_t)(end - p);
            } else {
                len = strcspn(p, " \t;");
            }
            /* RFC 2046: 1 to 70 characters. */
            if (len == 0 || len > 70 || len + 1 > out_size)
                return -1;
            memcpy(out, p, len);
            out[len] = '\0';
            return 0;
        }
        p = strchr(p, ';');
    }
    return -1;
}

/* ---- the body's life ------------------------------------------------- */

int64_t vg_body_declared_length(vg_http_request *req)
{
    int64_t n;
    const char *length = MHD_lookup_connection_value(
        req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length == NULL || vg_parse_int64(length, &n) != 0)
        return -1;
    return n;
}

int vg_body_prepare(vg_http_request *req)
{
    struct MHD_Connection *conn = req->conn;
    const char *type = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *length = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    bool has_body = (length != NULL && strcmp(length, "0") != 0) ||
                    chunked != NULL;
    if (!has_body)
        return 0;
    int64_t declared = vg_body_declared_length(req);
    if (req->route->body == VG_BODY_NONE) {
        if (declared > VG_SMALL_BODY_BYTES) {
            vg_body_fail(req, 413, "body_too_large", NULL,
                         "this endpoint takes no request body");
            return -1;
        }
        return 0;
    }
    if (type == NULL) {
        vg_body_fail(req, 415, "unsupported_media_type", NULL,
                     "send the body as application/json or "
                     "multipart/form-data");
        return -1;
    }
    bool json = vg_media_type_is(type, "application/json");
    bool multipart = vg_media_type_is(type, "multipart/form-data");
    bool urlencoded =
        vg_media_type_is(type, "application/x-www-form-urlencoded");
    if (!json && !multipart && !urlencoded) {
        vg_body_fail(req, 415, "unsupported_media_type", NULL,
                     "unsupported Content-Type: use application/json or "
                     "multipart/form-data");
        return -1;
    }
    req->is_form = !json;
    if (declared > body_limit(req)) {
        vg_body_fail(req, 413, "body_too_large", NULL,
                     "the request body is larger than the server accepts");
        return -1;
    }
    if (json)
        return 0;
    if (multipart) {
        char boundary[72];
        if (vg_multipart_boundary(type, boundary, sizeof(boundary)) != 0) {
            vg_body_fail(req, 400, "invalid_body", NULL,
                         "the multipart Content-Type has no valid "
                         "boundary");
            return -1;
        }
        req->boundary = vg_arena_sprintf(&req->arena, "--%s", boundary);
    }
    req->form = json_object();
    req->post = MHD_create_post_processor(conn, 65536, on_post_data, req);
    if (req->form == NULL || req->post == NULL) {
        vg_body_fail(req, 400, "invalid_body", NULL,
                     "the form body has no valid boundary");
        return -1;
    }
    return 0;
}

/* Notes when the multipart boundary first appears, even split between
 * two reads: a body without it has no parts at all (MHD would skip it
 * all as preamble) and is refused as malformed, not read as empty. */
static void look_for_boundary(vg_http_request *req, const char *data,
                              size_t size)
{
    size_t blen = strlen(req->boundary);
    if (req->carry_len > 0) {
        char joined[sizeof(req->carry) * 2];
        size_t take = size < blen - 1 ? size : blen - 1;
        memcpy(joined, req->carry, req->carry_len);
        memcpy(joined + req->carry_len, data, take);
        if (memmem(joined, req->carry_len + take, req->boundary, blen)) {
            req->boundary_seen = true;
            return;
        }
    }
    if (memmem(data, size, req->boundary, blen) != NULL) {
        req->boundary_seen = true;
        return;
    }
    /* Keep the last blen - 1 bytes seen. */
    size_t keep = blen - 1;
    if (size >= keep) {
        memcpy(req->carry, data + size - keep, keep);
        req->carry_len = keep;
    } else {
        size_t old = req->carry_len + size > keep
                         ? keep - size
                         : req->carry_len;
        memmove(req->carry, req->carry + req->carry_len - old, old);
        memcpy(req->carry + old, data, size);
        req->carry_len = old + size;
    }
}

void vg_body_feed(vg_http_request *req, const char *data, size_t size)
{
    if (req->body_failed)
        return;
    req->body_bytes += (int64_t)size;
    if (req->body_bytes > body_limit(req)) {
        vg_body_fail(req, 413, "body_too_large", NULL,
                     req->route->body == VG_BODY_NONE
                         ? "this endpoint takes no request body"
                         : "the request body is larger than the server "
                           "accepts");
        return;
    }
    if (req->route->body == VG_BODY_NONE)
        return;
    if (req->post != NULL) {
        if (req->boundary != NULL && !req->boundary_seen)
            look_for_boundary(req, data, size);
        if (MHD_post_process(req->post, data, size) != MHD_YES)
            vg_body_fail(req, 400, "invalid_body", NULL,
                         "the form body is malformed");
        return;
    }
    if (reserve(req, size) != 0)
        return;
    memcpy(req->raw + req->raw_len, data, size);
    req->raw_len += size;
}

/* A number too large for an integer fails jansson's whole parse; read
 * the body again with numbers as reals to name the field it is in, so
 * the client hears "duration" rather than "not valid JSON". */
static void fail_on_huge_number(vg_http_request *req)
{
    json_t *doc = json_loadb(req->raw, req->raw_len,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                                 JSON_DECODE_INT_AS_REAL,
                             NULL);
    const char *key = NULL;
    json_t *value;
    if (json_is_object(doc)) {
        const char *k;
        json_object_foreach(doc, k, value) {
            if (json_is_real(value) &&
                (json_real_value(value) >= 9.2e18 ||
                 json_real_value(value) <= -9.2e18)) {
                key = k;
                break;
            }
        }
    }
    char msg[160];
    if (key != NULL)
        snprintf(msg, sizeof(msg), "\"%.60s\" is too large a number", key);
    else
        snprintf(msg, sizeof(msg), "the body holds a number too large "
                 "for any field");
    vg_body_fail(req, 422, "validation_error", key, msg);
    json_decref(doc);
}

void vg_body_finish(vg_http_request *req)
{
    if (req->post != NULL) {
        if (MHD_destroy_post_processor(req->post) != MHD_YES)
            vg_body_fail(req, 400, "invalid_body", NULL,
                         "the form body ended early");
        req->post = NULL;
        end_field(req);
        close_uploads(req);
        if (req->boundary != NULL && !req->boundary_seen)
            vg_body_fail(req, 400, "invalid_body", NULL,
                         "the multipart body never contains its boundary");
        return;
    }
    if (req->body_failed || req->raw_len == 0 || req->is_form ||
        req->route->body == VG_BODY_NONE)
        return;
    json_error_t jerr;
    req->json = json_loadb(req->raw, req->raw_len,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                           &jerr);
    if (req->json == NULL &&
        json_error_code(&jerr) == json_error_numeric_overflow) {
        fail_on_huge_number(req);
    } else if (req->json == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the body is not valid JSON: %s "
                 "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
        vg_body_fail(req, 400, "invalid_json", NULL, msg);
    }
    free(req->raw);
    req->raw = NULL;
    req->raw_len = req->raw_cap = 0;
}

void vg_body_release(vg_http_request *req)
{
    if (req->post != NULL)
        MHD_destroy_post_processor(req->post);
    req->post = NULL;
    close_uploads(req);
    for (vg_upload *u = req->uploads; u != NULL; u = u->next)
        unlink(u->path);
    json_decref(req->json);
    json_decref(req->form);
    free(req->raw);
}
