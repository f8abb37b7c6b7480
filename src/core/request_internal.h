/*
 * request_internal.h - what request.c (the fields and their checks) and
 * request_images.c (reference images: uploads, data: URLs, fetched image
 * URLs) share.
 */
#ifndef VG_REQUEST_INTERNAL_H
#define VG_REQUEST_INTERNAL_H

#include "core/request.h"

#include "core/fetch.h"
#include "core/fetcher.h"

/* Where image URLs come from during validation: fetched here (may_fetch,
 * vg_request_validate), or only from a fetch task run beforehand. */
typedef struct url_source {
    bool may_fetch;
    vg_fetch_task *fetched; /* NULL: none */
} url_source;

/* The limits of a caller that passes none. */
extern const vg_limits req_default_limits;

/* How many images a request may have under limits. */
int req_max_images(const vg_limits *limits);
/* The fetcher's limits for image URLs under the request's. */
vg_fetch_limits req_fetch_limits(const vg_limits *limits);
/* Whether url is an image URL (http or https), not a data: URL. */
bool req_is_image_url(const char *url);
/* Adds the body's "files" (a string or an array of them: data: URLs or
 * image URLs) to req as images. */
int req_add_json_files(json_t *files, vg_video_request *req,
                       const vg_limits *limits, const char *tmp_dir,
                       const url_source *source, vg_arena *arena,
                       vg_error *err);

#endif
