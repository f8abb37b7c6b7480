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
#include "util/error.h"
#include "core/jobs.h"
#include "http/timers.h"
#include "util/arena.h"
#include "util/shared.h"

struct MHD_Connection;
struct MHD_PostProcessor;
typedef struct vg_app vg_app;
typedef struct vg_http_request vg_http_request;

typedef enum vg_body_kind {
    /* No body: one of up to VG_SMALL_BODY_BYTES is read and ignored,
     * a larger one is 413. */
    VG_BODY_NONE,
    /* A few fields as JSON or a form, at most VG_SMALL_BODY_BYTES, never
     * a file part (the token exchange). */
    VG_BODY_SMALL,
    /* JSON or a form with file parts, which are written to disk: only
     * for authenticated routes (the table's test checks it). */
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

    /* The body, once complete: JSON (json), or form fields and uploads.
     * form maps each field name (given once) to its value, a string that
     * may hold any bytes but NUL and need not be UTF-8 (check it). */
    bool is_form;
    json_t *json;
    json_t *form;
    vg_upload *uploads;
    int n_uploads;

    /* Internal to server.c and body.c. */
    char *raw;
    size_t raw_len, raw_cap;
    struct MHD_PostProcessor *post;
    int n_parts;          /* form fields and file parts so far */
    int64_t form_bytes;   /* bytes of field values so far */
    char *field_name;     /* the field being read, or NULL */
    char *boundary;       /* "--" + the multipart boundary */
    bool boundary_seen;
    size_t carry_len;     /* the body's last bytes, for a boundary that */
    char carry[80];       /* spans two reads */
    vg_error body_error;
    bool body_failed;
    int64_t body_bytes; /* bytes of the body read so far */
    int64_t discarded;  /* bytes of a refused body dropped so far */
    bool responded;
    int status;
    int64_t bytes_out;
    bool suspended;
    atomic_int parked; /* 1 while suspended; the first waker resumes */
    vg_job_listener listener;
    vg_timer wait_timer;
    int64_t wait_deadline_ms;
    char wait_job[37];
    vg_cleanup *cleanups;
    struct vg_header *headers;
    void *handler_ctx; /* the handler's own state across a suspension */
};

const char *vg_http_header(vg_http_request *req, const char *name);
/* Every occurrence of a header, joined with ", " (RFC 9110 5.3). */
const char *vg_http_header_all(vg_http_request *req, const char *name);
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
/* The success envelope itself (data stolen), for answers rendered once. */
json_t *vg_http_success_doc(json_t *data, const char *message);
/* body as every JSON answer is written (compact); free() it. */
char *vg_http_json_text(const json_t *body);
/* A JSON body shared with other responses; takes the reference text. */
int vg_http_send_shared_json(vg_http_request *req, int status,
                             vg_shared_text *text);
/* The contract's failure envelope. */
int vg_http_send_error(vg_http_request *req, const vg_error *err);
/* A pre-rendered JSON body that lives as long as the server. */
int vg_http_send_static_json(vg_http_request *req, const char *body,
                             size_t len);
/* A file, honouring a single-range Range header (206/416). Takes fd. */
int vg_http_send_file(vg_http_request *req, int fd, int64_t size,
                      const char *content_type);

/* Suspends the request (it holds no thread) until vg_http_wake, which
 * any thread may call once; then route->resume runs. */
int vg_http_suspend(vg_http_request *req);
void vg_http_wake(vg_http_request *req);

/* How often a wait for a job this process does not run looks again. */
#define VG_WAIT_POLL_MS 250

/* Suspends the request until job_id ends in this process, or until
 * deadline_ms (vg_timers_now_ms clock; 0 = no deadline); then
 * route->resume runs with req->wait_job and req->wait_deadline_ms set.
 * For a job this process is not running, resume runs after
 * VG_WAIT_POLL_MS instead: it reads the store and may wait again. */
int vg_http_wait_for_job(vg_http_request *req, const char *job_id,
                         int64_t deadline_ms);

/* A growing byte buffer for streamed responses. */
typedef struct vg_buf {
    char *data;
    size_t len, cap;
} vg_buf;
void vg_buf_append(vg_buf *buf, const char *data, size_t len);
void vg_buf_printf(vg_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A response produced while it is sent (Server-Sent Events). The server
 * calls produce whenever the client can take more and the stream was
 * woken: produce appends what is ready (maybe nothing) and returns 1 when
 * the response is complete. close runs once when the stream ends for any
 * reason (complete, client gone); after it returns nobody may wake the
 * stream, so it must first detach whatever calls vg_http_stream_wake. */
typedef struct vg_http_stream vg_http_stream;
typedef struct vg_http_stream_ops {
    int (*produce)(void *ctx, vg_buf *out);
    void (*close)(void *ctx);
} vg_http_stream_ops;
/* Answers 200 with the stream; *stream is set before produce first runs
 * (so ctx can keep it). On failure close has run. */
int vg_http_send_stream(vg_http_request *req, const char *content_type,
                        const vg_http_stream_ops *ops, void *ctx,
                        vg_http_stream **stream);
/* Asks for produce to run again soon; any thread. */
void vg_http_stream_wake(vg_http_stream *stream);
/* Ends every open stream once what it has produced is sent (shutdown). */
void vg_http_streams_end_all(void);

/* The HTTP server: the listening socket, libmicrohttpd's threads, the
 * timers and the slow-client guard. Process lifecycle (signals, the
 * order of a drain) is app/serve.c's. */
typedef struct vg_http_server vg_http_server;
/* Opens the listening socket and starts serving app; NULL after logging
 * why it cannot. */
vg_http_server *vg_http_server_start(vg_app *app);
/* Refuses new connections: the first step of a drain. */
void vg_http_server_close(vg_http_server *srv);
/* Ends the open streams, gives answers in flight up to 2 s, stops the
 * threads and frees the server. */
void vg_http_server_stop(vg_http_server *srv);

/* Parses "bytes=..." against size: 0 = whole file, 1 = one range in
 * *first..*last, -1 = unsatisfiable. Multiple ranges answer the whole
 * file. Exposed for tests. */
int vg_http_parse_range(const char *header, int64_t size, int64_t *first,
                        int64_t *last);

#endif
