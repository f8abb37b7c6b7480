/*
 * request.h - a validated video-generation request and the rules that make
 * one out of a JSON body or a multipart form.
 *
 * Both content types go through the same rules: form fields are first
 * converted to JSON values with strict text parsers (so "5" is 5 and "5x" is
 * a 422), then one validator checks the contract's table. Schema failures
 * (missing field, wrong type, out of range, unknown enum value) are 422 with
 * the field named; a model that is unknown or cannot serve the combination
 * is 400 and says which values it allows.
 */
#ifndef VG_REQUEST_H
#define VG_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/catalog.h"
#include "util/error.h"
#include "core/fetcher.h"
#include "util/arena.h"

#define VG_MAX_IMAGES 8
#define VG_MAX_WEBHOOK_URL 2000

typedef enum vg_image_type {
    VG_IMAGE_NONE,
    VG_IMAGE_PNG,
    VG_IMAGE_JPEG,
    VG_IMAGE_WEBP
} vg_image_type;

typedef struct vg_image {
    char *path; /* a file on disk the request owns (deleted with it) */
    vg_image_type type;
    int64_t size;
} vg_image;

typedef struct vg_limits {
    int prompt_max_chars;   /* code points */
    int64_t max_image_bytes; /* per reference image */
    int max_images;         /* per request, at most VG_MAX_IMAGES */
    /* Image URLs in a JSON "files" array: fetched with image_fetch when
     * allow_image_urls, refused otherwise (the zero value). A fetch never
     * takes more than max_image_bytes, whatever image_fetch.max_bytes
     * says. */
    bool allow_image_urls;
    vg_fetch_limits image_fetch;
} vg_limits;

typedef struct vg_video_request {
    const char *prompt;
    const char *model_name; /* as the client spelled it (alias or name) */
    const vg_model *model;  /* aliases resolved */
    vg_resolution resolution;
    vg_aspect aspect;
    int duration;
    bool generate_audio;
    bool camera_fixed;
    vg_tier tier;
    int fps;
    int64_t seed; /* -1 when the client asked for a random one */
    const char *webhook_url; /* NULL when none */
    /* The client's preferred provider, one of the model's routes; its
     * route is tried first. NULL when none. */
    const char *provider;
    vg_image images[VG_MAX_IMAGES];
    int n_images;
} vg_video_request;

/* The type each form field converts to. */
typedef enum vg_field_type {
    VG_FIELD_STRING,
    VG_FIELD_INTEGER,
    VG_FIELD_BOOLEAN,
    VG_FIELD_UNKNOWN /* not a field of this request: ignored */
} vg_field_type;
vg_field_type vg_request_field_type(const char *name);

/* Converts one form value into the JSON value the validator expects and
 * stores it in `body`. Fails with 422 naming the field when the text is not
 * of the field's type. */
int vg_request_form_field(json_t *body, const char *name, const char *value,
                          vg_error *err);

/* Checks the schema rules (422) and the model rules (400). Strings in *out
 * point into `body` or `arena`; images from data: URLs in body "files",
 * and from https:// URLs where limits->allow_image_urls (fetched here,
 * blocking for up to image_fetch.timeout_s each), are written under
 * tmp_dir. Images given as multipart parts
 * are added by the caller (vg_request_add_image) before validation, into a
 * zeroed *out that validation fills in without resetting. Success or not,
 * vg_request_cleanup deletes every image file registered so far. */
int vg_request_validate(json_t *body, const vg_catalog *catalog,
                        const vg_limits *limits, const char *tmp_dir,
                        vg_arena *arena, vg_video_request *out,
                        vg_error *err);

/* Image URLs without blocking: a server thread must not wait on the
 * network, so it first plans the fetches, has them run on a fetcher
 * (fetch.h) and then validates with the fetched files.
 *
 * vg_request_plan_fetch sets *task to the image URLs of body's "files"
 * that validation would fetch (slot i is files[i]), or NULL when there
 * are none (validate at once). When there are, it first checks the
 * fields before "files" and returns -1 with their error. *out and arena
 * as for validation. */
int vg_request_plan_fetch(json_t *body, const vg_limits *limits,
                          const char *tmp_dir, vg_arena *arena,
                          vg_video_request *out, vg_fetch_task **task,
                          vg_error *err);
/* vg_request_validate that never fetches: an image URL's file is taken
 * from `fetched` (done; NULL when none), with its error if the fetch
 * failed; a URL the plan left out fails its checks that need no network.
 * Checks and errors are those of vg_request_validate, in its order. */
int vg_request_validate_fetched(json_t *body, const vg_catalog *catalog,
                                const vg_limits *limits, const char *tmp_dir,
                                vg_fetch_task *fetched, vg_arena *arena,
                                vg_video_request *out, vg_error *err);

/* Registers an uploaded image file; fails with 413 beyond the count or
 * size limit or 415 when the bytes are not PNG, JPEG or WebP. The request
 * owns the file from this call on: a refused file is deleted at once. */
int vg_request_add_image(vg_video_request *req, const vg_limits *limits,
                         const char *path, vg_arena *arena, vg_error *err);

/* Detects PNG, JPEG or WebP from the first bytes of a file. */
vg_image_type vg_image_sniff(const unsigned char *bytes, size_t n);
const char *vg_image_mime(vg_image_type type);

/* Deletes the request's image files. */
void vg_request_cleanup(vg_video_request *req);

#endif
