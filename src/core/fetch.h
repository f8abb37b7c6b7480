/*
 * fetch.h - downloads a client's reference image from an https:// URL.
 *
 * Clients may put image URLs in a JSON body's "files" instead of the bytes
 * (the contract allows it where the operator does). The URL comes from
 * the client, so the fetch is where server-side request forgery would
 * happen: it runs over https only (redirects included), never connects to
 * loopback, private or other non-public addresses unless the operator
 * allows them, and is bounded in time and in bytes. What arrives is only
 * a file on disk; whether it is an acceptable image is decided afterwards
 * by the same checks as an upload (vg_request_add_image).
 *
 * A fetch may take seconds, so the server never runs one on an HTTP
 * thread: the fetcher (fetcher.h) drives them as events on a thread of
 * its own and tells the request when its images are on disk.
 */
#ifndef VG_FETCH_H
#define VG_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "util/error.h"

/* Redirects followed at most; each must stay on an allowed scheme. */
#define VG_FETCH_MAX_REDIRECTS 3
/* The connect phase gets at most this much of the total timeout. */
#define VG_FETCH_CONNECT_TIMEOUT_S 5
/* A transfer slower than min_bytes_per_s for this long is dropped. */
#define VG_FETCH_LOW_SPEED_S 5

typedef struct vg_fetch_limits {
    int64_t max_bytes;  /* more than this many body bytes: 413 */
    int timeout_s;      /* the whole transfer, connecting included */
    bool allow_http;    /* plain http too (tests, intranets); off = https */
    bool allow_private; /* non-public addresses too (see netpolicy.h) */
    int min_bytes_per_s; /* slower for VG_FETCH_LOW_SPEED_S: 422; 0 = off */
} vg_fetch_limits;

/*
 * Downloads url into a new file at dest_path (which must not exist).
 * On failure err says why, in the "files" field, and no file is left at
 * dest_path:
 *   422 invalid_url         a scheme other than https (or http when
 *                           allowed), or a connection to a non-public
 *                           address refused (the message says which);
 *   422 image_fetch_failed  a non-2xx answer (the status is given), a
 *                           timeout ("timed out"), a trickle ("too slow"),
 *                           too many redirects, DNS, connect or TLS
 *                           failures;
 *   413 file_too_large      more than limits->max_bytes arrived (or were
 *                           announced);
 *   500 internal_error      the file could not be written.
 */
int vg_fetch_image(const char *url, const vg_fetch_limits *limits,
                   const char *dest_path, vg_error *err);

/* The checks vg_fetch_image makes before touching the network (empty,
 * too long, scheme): 0, or its 422 invalid_url. */
int vg_fetch_check_url(const char *url, const vg_fetch_limits *limits,
                       vg_error *err);

/* The same transfer, for a caller that drives it itself (a libcurl
 * multi handle): open sets up an easy handle writing into a new file at
 * dest_path (NULL with the error of a refused URL or a local failure);
 * once libcurl has finished it with rc, close turns that into 0 or the
 * error above, deleting the file on failure. abort ends it unfinished
 * and deletes the file. Both free the transfer; remove the easy handle
 * from its multi handle first. */
typedef struct vg_fetch_transfer vg_fetch_transfer;
vg_fetch_transfer *vg_fetch_transfer_open(const char *url,
                                          const vg_fetch_limits *limits,
                                          const char *dest_path,
                                          vg_error *err);
CURL *vg_fetch_transfer_easy(vg_fetch_transfer *t);
int vg_fetch_transfer_close(vg_fetch_transfer *t, CURLcode rc, vg_error *err);
void vg_fetch_transfer_abort(vg_fetch_transfer *t);

#endif
