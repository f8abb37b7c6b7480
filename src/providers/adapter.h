/*
 * adapter.h - one upstream provider's wire protocol, as pure functions.
 *
 * An adapter never does I/O. It builds the HTTP calls the provider wants
 * (submit, poll, cancel, download) from a job spec, and reads the
 * provider's answers into one shape. The upstream engine (upstream.c)
 * sends the calls with libcurl's multi interface on its own thread and
 * feeds the replies back, so thousands of jobs can wait on providers with
 * no thread each; and because adapters are pure, the unit tests check the
 * exact request body of every model family without a network.
 *
 * One file per provider (novita.c, google.c, byteplus.c, fal.c,
 * replicate.c, openai.c), each exporting one `const vg_adapter`.
 *
 * A "task" is the adapter's own handle for a submitted job: a string it
 * writes in parse_submit and reads back in build_poll / build_cancel. It
 * is stored with the job before the submit is acknowledged, so a
 * restarted vidgate resumes polling. Most adapters store the provider's
 * task id; fal stores a small JSON object with the URLs it returned.
 */
#ifndef VG_ADAPTER_H
#define VG_ADAPTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "core/provider.h"

#define VG_CALL_MAX_HEADERS 8
#define VG_CALL_MAX_PARTS 8

/* One part of a multipart/form-data body: a text field (value) or a file
 * read from disk when the call is sent (file, with the filename and
 * Content-Type the server sees). */
typedef struct vg_form_part {
    char *name;
    char *value;    /* a text field; NULL for a file part */
    char *file;     /* path of a file part */
    char *filename; /* file parts: the name sent */
    char *type;     /* file parts: the part's Content-Type */
} vg_form_part;

/* An HTTP request to send. Everything is malloc'd and owned by the call;
 * vg_call_clear frees it. A call has a body (JSON), form parts (sent as
 * multipart/form-data, encoded by libcurl) or neither. */
typedef struct vg_call {
    const char *method; /* static string: "GET", "POST", "PUT", "DELETE" */
    char *url;          /* absolute */
    char *body;         /* NULL: no body; else sent as is */
    char *headers[VG_CALL_MAX_HEADERS]; /* "Name: value" */
    int n_headers;
    vg_form_part parts[VG_CALL_MAX_PARTS];
    int n_parts;
} vg_call;

void vg_call_clear(vg_call *call);
/* Sets method and url = base + the formatted path (base has no trailing
 * slash; a path that is already an absolute URL is used as is). */
int vg_call_set(vg_call *call, const char *method, const char *base,
                const char *path_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds one "Name: value" header. */
int vg_call_header(vg_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adds a text field / a file part to the call's multipart form. */
int vg_call_form_field(vg_call *call, const char *name, const char *value);
int vg_call_form_file(vg_call *call, const char *name, const char *path,
                      const char *filename, const char *type);
/* A deep copy of src into *dst (a retry sends the call again). */
int vg_call_copy(vg_call *dst, const vg_call *src);
/* Serialises body as the request body (compact, keys in insertion order)
 * and adds "Content-Type: application/json". Takes the reference. */
int vg_call_json(vg_call *call, json_t *body);

/* A reply as the engine received it. body is NUL-terminated. */
typedef struct vg_reply {
    int status; /* HTTP status */
    const char *body;
    size_t size;
} vg_reply;

/* The configured provider a call goes to. */
typedef struct vg_upstream_account {
    const char *name;     /* the instance's name in the config ("novita") */
    const char *base_url; /* no trailing slash */
    const char *api_key;  /* never NULL when a call is built; OAuth
                             providers get VG_OAUTH_MARK (oauth.h) */
    /* Vertex AI: where Veo writes its videos ("gs://bucket/prefix"), and
     * where Cloud Storage objects are read (NULL =
     * https://storage.googleapis.com). */
    const char *storage_uri;
    const char *storage_url;
} vg_upstream_account;

/* Reference images of a job, as files on disk (the engine resolves them
 * from the job spec). Adapters encode them as their provider needs with
 * vg_image_base64 / vg_image_data_url. */

typedef enum vg_task_state {
    VG_TASK_QUEUED,
    VG_TASK_RUNNING,
    VG_TASK_SUCCEEDED, /* video_url is set */
    VG_TASK_FAILED,    /* error_code and message are set */
    VG_TASK_CANCELLED,
    VG_TASK_FETCH      /* done upstream: GET fetch_url next and parse that
                          reply with parse_poll too (fal's response_url) */
} vg_task_state;

/* What a poll reply says. vg_task_status_clear frees the strings. */
typedef struct vg_task_status {
    vg_task_state state;
    int progress;     /* 0..100, or -1 when the provider does not say */
    char *video_url;  /* SUCCEEDED */
    char *fetch_url;  /* FETCH */
    /* FAILED: a short machine code ("upstream_failed", "content_filtered",
     * "upstream_expired") and the provider's reason, for the client. */
    char error_code[40];
    char error_message[512];
    int64_t seed;              /* the seed the provider used, -1 unknown */
    int64_t completion_tokens; /* provider-reported usage, -1 unknown */
    int64_t total_tokens;      /* -1 unknown */
} vg_task_status;

void vg_task_status_init(vg_task_status *status);
void vg_task_status_clear(vg_task_status *status);

typedef struct vg_adapter {
    const char *name;           /* the protocol: "novita", "google", ... */
    /* An instance of the same name is configured out of the box, at
     * default_base_url ("" = derived, see the protocol) with its key in
     * default_key_env; available once that variable is set. */
    bool builtin;
    const char *default_base_url;
    const char *default_key_env;
    const char *key_header_hint; /* for docs: how the key is sent */
    int default_poll_ms;        /* first poll interval */

    /* The submit call for a job. provider_model is the provider's model
     * id (or endpoint, for Novita) from the catalog. 400 errors when the
     * provider cannot express the spec. */
    int (*build_submit)(const vg_upstream_account *account,
                        const char *provider_model, const vg_job_spec *spec,
                        vg_call *call, vg_error *err);
    /* Reads a 2xx submit reply into *task (malloc'd). Fails (err) when
     * the reply has no task id: the engine treats that as a malformed
     * answer. Some providers answer a submit with the finished result
     * (Replicate with Prefer: wait): that is for parse_poll later. */
    int (*parse_submit)(const vg_reply *reply, char **task, vg_error *err);
    int (*build_poll)(const vg_upstream_account *account, const char *task,
                      vg_call *call, vg_error *err);
    /* Reads a 2xx poll reply. Fails (err) when it cannot be read. */
    int (*parse_poll)(const vg_reply *reply, vg_task_status *status,
                      vg_error *err);
    /* The call that cancels the task upstream; NULL when the provider has
     * none. */
    int (*build_cancel)(const vg_upstream_account *account, const char *task,
                        vg_call *call, vg_error *err);
    /* The call that deletes a finished task's stored result upstream,
     * once vidgate has its own copy; NULL when the provider has none. */
    int (*build_delete)(const vg_upstream_account *account,
                        const char *task, vg_call *call, vg_error *err);
    /* The call that downloads a result URL; NULL means a plain GET with
     * no credentials (result URLs are usually pre-signed). Google needs
     * its key header on the download. */
    int (*build_download)(const vg_upstream_account *account,
                          const char *video_url, vg_call *call,
                          vg_error *err);
} vg_adapter;

/* Every upstream protocol, one line each: X(id) for the adapter
 * vg_adapter_<id> that its file defines. Adding a protocol is its file
 * and its line here; the adapter table, the configuration's provider
 * types and the built-in instances all come from this list. */
#define VG_ADAPTERS(X)                                                        \
    X(novita)                                                                 \
    X(google)                                                                 \
    X(byteplus)                                                               \
    X(fal)                                                                    \
    X(replicate)                                                              \
    X(openai)                                                                 \
    X(vertex) /* "google-vertex" */

#define VG_ADAPTER_DECLARE(id) extern const vg_adapter vg_adapter_##id;
VG_ADAPTERS(VG_ADAPTER_DECLARE)
#undef VG_ADAPTER_DECLARE

/* The adapters in that order (NULL past the last). */
const vg_adapter *vg_adapter_at(int i);

/* The adapter for a protocol name; NULL when unknown. */
const vg_adapter *vg_adapter_find(const char *name);

/* ---- what a failed reply means ---------------------------------------- */

typedef enum vg_reply_kind {
    VG_REPLY_OK,         /* 2xx */
    VG_REPLY_REJECTED,   /* the provider refused this request (400, 404,
                            413, 422, ...): the client gets 400 with the
                            provider's reason; no failover */
    VG_REPLY_NO_BALANCE, /* the operator's account is out of money (402,
                            or a 403/429 saying so): 503, operator log,
                            failover */
    VG_REPLY_AUTH,       /* the key is wrong or lacks permission (401,
                            403): operator log, failover */
    VG_REPLY_RETRY       /* 408, 409, 425, 429, 5xx and anything else:
                            try again later or elsewhere */
} vg_reply_kind;

/* Classifies a non-2xx reply and writes the provider's own reason (from
 * error.message, message, reason, detail, error or the body's start)
 * into message. */
vg_reply_kind vg_reply_classify(const vg_reply *reply, char *message,
                                size_t n);

/* ---- helpers for adapters ---------------------------------------------- */

/* Parses a reply body as a JSON object; NULL (err: 502 "upstream_malformed")
 * when it is not one. */
json_t *vg_reply_json(const vg_reply *reply, vg_error *err);
/* An integer that providers send as a number or a string ("5", "5.0");
 * false when absent or not a number. */
bool vg_json_lenient_int(const json_t *value, int64_t *out);
/* A string member, or NULL. */
const char *vg_json_string(const json_t *object, const char *key);

/* A reference image file as base64 (no line breaks) and its MIME type
 * ("image/png", "image/jpeg", "image/webp", from its first bytes).
 * *base64 is malloc'd. */
int vg_image_base64(const char *path, char **base64, const char **mime,
                    vg_error *err);
/* Adds the image file as a multipart file part named field, with the
 * Content-Type of its content and a matching filename
 * ("reference.png"); the file is read when the call is sent. */
int vg_image_form_file(vg_call *call, const char *field, const char *path,
                       vg_error *err);
/* The same as "data:<mime>;base64,<...>", malloc'd. */
int vg_image_data_url(const char *path, char **url, vg_error *err);

/* Image i of the job as a provider that takes URLs wants it: its signed
 * vidgate URL when the job has one for this provider, else a data: URL.
 * *url is malloc'd. */
int vg_image_ref(const vg_job_spec *spec, int i, char **url, vg_error *err);

/* Percent-encodes s for a URL path segment or query value, malloc'd. */
char *vg_url_escape(const char *s);

/* Whether url is an absolute http:// or https:// URL (NULL is not). */
bool vg_url_is_http(const char *url);
/* The length of the "scheme://host[:port]" that url starts with; 0 when
 * url is not absolute or has no host. */
size_t vg_url_origin_length(const char *url);
/* Whether url is an http(s) URL on base's own origin: the same scheme,
 * host and port (letter case aside). A URL a provider returned may carry
 * the operator's key only there, so a malformed or hostile answer cannot
 * send the key elsewhere. */
bool vg_url_on_origin(const char *url, const char *base);

/* ---- building calls ---------------------------------------------------- */

/* Sets err to 500 "internal_error", "out of memory", and returns -1. */
int vg_adapter_out_of_memory(vg_error *err);

/* Sets err to 502 "upstream_malformed" with the formatted message (what
 * the provider's answer lacks), and returns -1. */
int vg_reply_malformed(vg_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts a call: method and {base}<path> as vg_call_set does and, unless
 * key_prefix is NULL, the account's key as the provider wants it: the
 * header key_prefix + key ("Authorization: Bearer " makes
 * "Authorization: Bearer <key>"). On failure the call is cleared and err
 * says out of memory. */
int vg_call_start(vg_call *call, const char *method,
                  const vg_upstream_account *account, const char *key_prefix,
                  vg_error *err, const char *path_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* vg_call_start for a path that names one task (or model): path_fmt has
 * exactly one conversion, a %s, which becomes id percent-escaped, so an
 * id cannot change the path ("/tasks/%s" and "a/b" make "/tasks/a%2Fb"). */
int vg_call_start_escaped(vg_call *call, const char *method,
                          const vg_upstream_account *account,
                          const char *key_prefix, const char *path_fmt,
                          const char *id, vg_error *err);

/* The usual submit: vg_call_start("POST", ...) with body as the JSON
 * request body (after the key header). Takes the reference to body, on
 * failure too. */
int vg_call_submit(vg_call *call, const vg_upstream_account *account,
                   const char *key_prefix, json_t *body, vg_error *err,
                   const char *path_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* vg_call_submit for a path that names a model: path_fmt's one %s
 * becomes id percent-escaped, as in vg_call_start_escaped. */
int vg_call_submit_escaped(vg_call *call, const vg_upstream_account *account,
                           const char *key_prefix, json_t *body,
                           const char *path_fmt, const char *id,
                           vg_error *err);

/* ---- building request bodies -------------------------------------------- */

/* Adds key: value to object, counting a failure (value NULL: out of
 * memory) in *failed, so a builder checks once at the end. */
void vg_json_put(json_t *object, const char *key, json_t *value, int *failed);
/* Ends a builder that used vg_json_put: object, or NULL (err: out of
 * memory, object freed) when a put failed. */
json_t *vg_json_finish(json_t *object, int failed, vg_error *err);

/* The job's prompt as a JSON string ("" when it has none); NULL (err: 400
 * "validation_error" on "prompt") when it is not valid UTF-8. */
json_t *vg_json_prompt(const vg_job_spec *spec, vg_error *err);

/* Adds the job's reference images to object as URLs (vg_image_ref),
 * image i under keys[i]. The caller has checked that the job has at most
 * n_keys images. */
int vg_json_put_image_refs(json_t *object, const vg_job_spec *spec,
                           const char *const *keys, int n_keys, vg_error *err);

/* What one hosted model's input schema has, for hosts that put many
 * models behind one API (fal, Replicate) and ignore, or silently drop,
 * inputs a model does not declare: vidgate sends a field only where the
 * model has it, so nothing the client asked for is lost unnoticed. */
typedef struct vg_input_schema {
    const char *model; /* the id, or a prefix ending in '*' */
    bool audio;        /* "generate_audio" */
    bool camera_fixed; /* "camera_fixed" (sent true or false) */
    bool fps;          /* "fps" */
    /* The key of a last frame, next to the first image; NULL: none. */
    const char *last_frame;
    /* Where the model has no last frame but a sibling endpoint takes the
     * first and the last frame (fal's Veo 3.1 "first-last-frame-to-
     * video"): its id and its two image keys; NULL: none. */
    const char *flf_model;
    const char *flf_first, *flf_last;
} vg_input_schema;

/* The entry for a model in a table that ends with {0}: the exact id
 * first, else the longest matching prefix; NULL when none matches. */
const vg_input_schema *vg_input_schema_find(const vg_input_schema *table,
                                            const char *model);

/* ---- reading replies ---------------------------------------------------- */

/* Reads a submit reply of the shape {"<key>": "<id>", ...}: *task is the
 * id, malloc'd. When the id is missing, empty or not a string, fails
 * with 502 "upstream_malformed" and `missing` as the message. */
int vg_reply_task_id(const vg_reply *reply, const char *key,
                     const char *missing, char **task, vg_error *err);

/* One status a provider reports, and what it means. */
typedef struct vg_status_rule {
    const char *name; /* as the provider spells it */
    vg_task_state state;
    const char *error_code; /* FAILED: "upstream_failed", ... */
    const char *fallback;   /* FAILED: the message when the provider
                               gives no reason */
} vg_status_rule;

/* The rule for a provider's status in a table that ends with {0}; NULL
 * when name is NULL or not in the table. An adapter's parse_poll looks
 * the status up, reads what the provider sends for SUCCEEDED (and, when
 * it has one, the reason for FAILED) itself, and takes the rest as it
 * stands. */
const vg_status_rule *vg_status_rule_find(const vg_status_rule *rules,
                                          const char *name);

/* The reason in a provider's error member: the string itself, or the
 * object's "message"; NULL otherwise. */
const char *vg_json_reason(const json_t *error);

/* Marks the task FAILED with code and the provider's reason, or fallback
 * when the reason is NULL or empty. */
void vg_task_fail(vg_task_status *status, const char *code, const char *reason,
                  const char *fallback);
/* Marks the task SUCCEEDED with a copy of url and progress 100; fails
 * (err) only when out of memory. */
int vg_task_succeed(vg_task_status *status, const char *url, vg_error *err);
/* Reads a progress percentage sent as a number or a string, clamped to
 * 0..100; leaves the progress as it was when value is not a number. */
void vg_task_read_progress(vg_task_status *status, const json_t *value);

#endif
