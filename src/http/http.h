/*
 * http.h - what the HTTP layer offers the API handlers.
 *
 * The server (server.c) owns the libmicrohttpd daemon: it reads headers,
 * authenticates, enforces body limits, streams uploads to disk and then
 * calls the route's handler with a complete vg_http_request. Handlers
 * answer through the vg_http_send_* helpers (response.c), which add the
 * request id and the contract's envelope, or suspend the request until a
 * job ends and answer from their `resume` function.
 */
#ifndef VG_HTTP_H
#define VG_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/auth.h"
#include "core/error.h"
#include "core/jobs.h"
#include "util/arena.h"

struct MHD_Connection;
struct MHD_PostProcessor;
typedef struct vg_app vg_app;
typedef struct vg_http_request vg_http_request;

typedef enum vg_body_kind {
    VG_BODY_NONE, /* a body, if any, is ignored */
    VG_BODY_JSON_OR_FORM
} vg_body_kind;

typedef struct vg_route {
    const char *method;
    /* Segments; "*" matches one segment (captured into params), a final
     * "**" matches the rest of the path (captured too). */
    const char *pattern;
    bool authenticated;
    vg_body_kind body;
    int (*handle)(vg_app *app, vg_http_request *req);
    /* Called when a suspended request is resumed. */
    int (*resume)(vg_app *app, vg_http_request *req);
} vg_route;

/* The API's route table (api/routes.c), ended by a NULL method. */
extern const vg_route vg_api_routes[];

typedef struct vg_form_field {
    char *name;
    char *value; /* NUL-terminated; may hold any bytes but NUL */
    size_t len;
    struct vg_form_field *next;
} vg_form_field;

typedef struct vg_upload {
    char *field;
    char *path; /* a temporary file, deleted when the request ends */
    int64_t size;
    int fd;
    struct vg_upload *next;
} vg_upload;

typedef struct vg_header {
    const char *name;
    const char *value;
    struct vg_header *next;
} vg_header;

typedef struct vg_cleanup {
    void (*fn)(void *arg);
    void *arg;
    struct vg_cleanup *next;
} vg_cleanup;

struct vg_http_request {
    vg_arena arena;
    vg_app *app;
    struct MHD_Connection *conn;
    char id[37];
    const char *method;
    const char *path;
    const vg_route *route;
    char *params[4];
    int n_params;
    vg_principal principal; /* set when the route is authenticated */
    int64_t started_ns;

    /* The body, once complete: JSON (json), or form fields and uploads. */
    bool is_form;
    json_t *json;
    vg_form_field *fields;
    vg_upload *uploads;
    int n_uploads;

    /* Internal to server.c. */
    char *raw;
    size_t raw_len, raw_cap;
    struct MHD_PostProcessor *post;
    vg_error body_error;
    bool body_failed;
    int64_t discarded; /* bytes of a refused body dropped so far */
    bool responded;
    int status;
    int64_t bytes_out;
    bool suspended;
    vg_job_waiter waiter;
    char wait_job[37];
    vg_cleanup *cleanups;
    struct vg_header *headers;
};

const char *vg_http_header(vg_http_request *req, const char *name);
const char *vg_http_query(vg_http_request *req, const char *name);
const char *vg_http_form_value(vg_http_request *req, const char *name);
/* Runs fn(arg) when the request ends, whatever happened. */
void vg_http_on_cleanup(vg_http_request *req, void (*fn)(void *), void *arg);

/* Adds a header to the response this request will send (arena copies). */
void vg_http_add_header(vg_http_request *req, const char *name,
                        const char *value);
/* Sends body (stolen) as JSON with the given status. */
int vg_http_send_json(vg_http_request *req, int status, json_t *body);
/* The contract's success envelope around data (stolen). */
int vg_http_send_success(vg_http_request *req, int status, json_t *data,
                         const char *message);
/* The contract's failure envelope. */
int vg_http_send_error(vg_http_request *req, const vg_error *err);
/* A pre-rendered JSON body that lives as long as the server. */
int vg_http_send_static_json(vg_http_request *req, const char *body,
                             size_t len);
/* A file, honouring a single-range Range header (206/416). Takes fd. */
int vg_http_send_file(vg_http_request *req, int fd, int64_t size,
                      const char *content_type);

/* Suspends the request until job_id ends; then route->resume runs. */
int vg_http_wait_for_job(vg_http_request *req, const char *job_id);

/* Parses "bytes=..." against size: 0 = whole file, 1 = one range in
 * *first..*last, -1 = unsatisfiable. Multiple ranges answer the whole
 * file. Exposed for tests. */
int vg_http_parse_range(const char *header, int64_t size, int64_t *first,
                        int64_t *last);

#endif
