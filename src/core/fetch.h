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
 * thread: the fetcher below runs them on a small pool of its own threads
 * and tells the request when its images are on disk.
 */
#ifndef VG_FETCH_H
#define VG_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Redirects followed at most; each must stay on an allowed scheme. */
#define VG_FETCH_MAX_REDIRECTS 3
/* The connect phase gets at most this much of the total timeout. */
#define VG_FETCH_CONNECT_TIMEOUT_S 5

typedef struct vg_fetch_limits {
    int64_t max_bytes;  /* more than this many body bytes: 413 */
    int timeout_s;      /* the whole transfer, connecting included */
    bool allow_http;    /* plain http too (tests, intranets); off = https */
    bool allow_private; /* non-public addresses too (see netpolicy.h) */
} vg_fetch_limits;

/*
 * Downloads url into a new file at dest_path (which must not exist).
 * On failure err says why, in the "files" field, and no file is left at
 * dest_path:
 *   422 invalid_url         a scheme other than https (or http when
 *                           allowed), or a connection to a non-public
 *                           address refused (the message says which);
 *   422 image_fetch_failed  a non-2xx answer (the status is given), a
 *                           timeout ("timed out"), too many redirects, DNS,
 *                           connect or TLS failures;
 *   413 file_too_large      more than limits->max_bytes arrived (or were
 *                           announced);
 *   500 internal_error      the file could not be written.
 */
int vg_fetch_image(const char *url, const vg_fetch_limits *limits,
                   const char *dest_path, vg_error *err);

/* vg_fetch_image that gives up as soon as should_stop(ctx) returns true
 * (asked at least about once a second during the transfer): then 503
 * server_shutdown and no file. */
int vg_fetch_image_until(const char *url, const vg_fetch_limits *limits,
                         const char *dest_path, bool (*should_stop)(void *),
                         void *ctx, vg_error *err);

/* The checks vg_fetch_image makes before touching the network (empty,
 * too long, scheme): 0, or its 422 invalid_url. */
int vg_fetch_check_url(const char *url, const vg_fetch_limits *limits,
                       vg_error *err);

/* ---- the fetcher --------------------------------------------------- */

/* URLs per task at most: a request's reference images. */
#define VG_FETCH_TASK_MAX 8

/*
 * A task is the image URLs of one request, each in a slot (the index of
 * the URL in the request's "files"; slots without a URL are skipped), to
 * be fetched into new files in one directory under one set of limits.
 * The task owns its copies of everything, so it can outlive the request
 * that asked for it (a client gone, a server stopping); its files are
 * deleted with it unless taken.
 */
typedef struct vg_fetch_task vg_fetch_task;
typedef struct vg_fetcher vg_fetcher;

/* NULL when out of memory. */
vg_fetch_task *vg_fetch_task_new(const vg_fetch_limits *limits,
                                 const char *dir);
/* Adds url in slot (0 .. VG_FETCH_TASK_MAX-1); -1 when out of memory or
 * out of range. */
int vg_fetch_task_add(vg_fetch_task *task, int slot, const char *url);
/* How many slots hold a URL. */
int vg_fetch_task_count(const vg_fetch_task *task);
/* Once done has run: 1 when slot holds no URL, or another one than url
 * (the caller must deal with it itself); 0 when it was fetched, and the
 * caller now owns the file at *path (a copy, valid while the task is);
 * -1 with vg_fetch_image's error otherwise. Take a slot once. */
int vg_fetch_task_take(vg_fetch_task *task, int slot, const char *url,
                       const char **path, vg_error *err);

/* Starts threads (at least 1) that fetch the tasks' URLs, several of one
 * task at once. stopping(ctx), when not NULL, is asked while fetching:
 * true means the server is going down, and what is fetching or queued
 * ends at once with 503 server_shutdown. NULL with err on failure. */
vg_fetcher *vg_fetcher_start(int threads, bool (*stopping)(void *),
                             void *ctx, vg_error *err);
/* Queues task (the fetcher holds it from now on). done(ctx) runs once
 * when every URL has ended, on a fetcher thread or, when the fetcher is
 * stopping, on this one before submit returns; afterwards the caller
 * reads the results and calls vg_fetcher_release. Once the first URL
 * failed, those after it are not fetched (a request stops at its first
 * bad image). */
void vg_fetcher_submit(vg_fetcher *fetcher, vg_fetch_task *task,
                       void (*done)(void *ctx), void *ctx);
/* Lets go of a task, at any time after submit. After done: frees it and
 * deletes the files not taken. Before: cancels it; done will not run
 * (it is not running when this returns), what is in flight is aborted
 * and the fetcher frees the task and its files once that has ended. */
void vg_fetcher_release(vg_fetcher *fetcher, vg_fetch_task *task);
/* Frees a task that was never submitted, deleting its files. */
void vg_fetch_task_free(vg_fetch_task *task);
/* Ends what is queued (503 server_shutdown, done runs) and aborts what
 * is in flight, joins the threads and frees the fetcher. Every task has
 * then ended: releasing one afterwards only frees it. */
void vg_fetcher_stop(vg_fetcher *fetcher);
/* The same without freeing: for the server's shutdown, so that requests
 * waiting on a fetch are answered (503 server_shutdown) before the HTTP
 * daemon stops; later submits end at once the same way. */
void vg_fetcher_drain(vg_fetcher *fetcher);

#endif
