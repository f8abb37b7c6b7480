/*
 * fetcher.h - the outbound work of a request that must not wait on an
 * HTTP thread: its image URLs downloaded (fetch.h) and its webhook URL's
 * host resolved and checked (netpolicy.h).
 *
 * One thread does it all as events: libcurl's multi interface drives the
 * downloads side by side and c-ares the lookups, so a slow server or a
 * name server that never answers costs a socket, not a thread. A request
 * hands its work over as a task and is told when the task has ended.
 *
 * Downloads are shared out: at most max_transfers run at once, and at
 * most max_per_owner of one owner (the account), so one tenant's slow
 * URLs cannot hold all of them; the rest wait in the order they came, a
 * task whose owner has its share waiting while later ones go ahead.
 * Lookups are cheap and never wait.
 */
#ifndef VG_FETCHER_H
#define VG_FETCHER_H

#include <stdbool.h>

#include "util/error.h"
#include "core/fetch.h"

/* URLs per task at most: a request's reference images. */
#define VG_FETCH_TASK_MAX 8
/* A lookup that has not answered after this long fails. */
#define VG_LOOKUP_TIMEOUT_MS 5000

typedef struct vg_fetcher_config {
    int max_transfers; /* downloads at once, all owners (>= 1) */
    int max_per_owner; /* downloads at once of one owner (>= 1) */
    /* Name servers for lookups, "ip[:port],..."; NULL or "" means those
     * of /etc/resolv.conf. */
    const char *dns_servers;
} vg_fetcher_config;

/* The defaults: 64 downloads, 4 per owner, the system's name servers. */
void vg_fetcher_config_defaults(vg_fetcher_config *cfg);

/*
 * A task is either the image URLs of one request, each in a slot (the
 * index of the URL in the request's "files"; slots without a URL are
 * skipped), to be fetched into new files in one directory under one set
 * of limits; or one URL to check (vg_url_check_task_new). The task owns
 * its copies of everything, so it can outlive the request that asked for
 * it (a client gone, a server stopping); its files are deleted with it
 * unless taken.
 */
typedef struct vg_fetch_task vg_fetch_task;
typedef struct vg_fetcher vg_fetcher;

/* NULL when out of memory. */
vg_fetch_task *vg_fetch_task_new(const vg_fetch_limits *limits,
                                 const char *dir);
/* Adds url in slot (0 .. VG_FETCH_TASK_MAX-1); -1 when out of memory or
 * out of range. */
int vg_fetch_task_add(vg_fetch_task *task, int slot, const char *url);
/* Whose downloads these are, for the per-owner share (an account id, at
 * most 63 bytes; longer is cut). Tasks without one share the owner "". */
void vg_fetch_task_set_owner(vg_fetch_task *task, const char *owner);
/* How many slots hold a URL. */
int vg_fetch_task_count(const vg_fetch_task *task);
/* Once done has run: 1 when slot holds no URL, or another one than url
 * (the caller must deal with it itself); 0 when it was fetched, and the
 * caller now owns the file at *path (a copy, valid while the task is);
 * -1 with vg_fetch_image's error (or 503 server_shutdown) otherwise.
 * Take a slot once. */
int vg_fetch_task_take(vg_fetch_task *task, int slot, const char *url,
                       const char **path, vg_error *err);

/* A task that checks a client's URL: vg_outbound_url_host's rules are
 * applied here and now (NULL with that 422, or 500 when out of memory),
 * and the fetcher then resolves the host and judges every address it
 * gives with vg_check_outbound_address (each must be public unless
 * allow_private). field names the URL in messages. */
vg_fetch_task *vg_url_check_task_new(const char *url, const char *schemes,
                                     bool allow_private, const char *field,
                                     vg_error *err);
/* Once done has run: 0 when the URL may be used; -1 with 422
 * invalid_url (the host does not resolve, or not in time, or leads to a
 * refused address) or 503 server_shutdown. */
int vg_url_check_result(const vg_fetch_task *task, vg_error *err);

/* Frees a task that was never submitted, deleting its files. */
void vg_fetch_task_free(vg_fetch_task *task);

/* Starts the fetcher's thread (cfg NULL: the defaults). stopping(ctx),
 * when not NULL, is asked about once a second while work is under way:
 * true means the server is going down, and what is in flight or queued
 * ends at once with 503 server_shutdown. NULL with err on failure (a
 * bad dns_servers list among them). */
vg_fetcher *vg_fetcher_start(const vg_fetcher_config *cfg,
                             bool (*stopping)(void *), void *ctx,
                             vg_error *err);
/* Queues task (the fetcher holds it from now on). done(ctx) runs once
 * when all of it has ended, on the fetcher's thread or, when the fetcher
 * is stopping, on this one before submit returns; afterwards the caller
 * reads the results and calls vg_fetcher_release. Once one URL of a
 * task failed, those after it are not fetched (a request stops at its
 * first bad image). */
void vg_fetcher_submit(vg_fetcher *fetcher, vg_fetch_task *task,
                       void (*done)(void *ctx), void *ctx);
/* Lets go of a task, at any time after submit. After done: frees it and
 * deletes the files not taken. Before: cancels it; done will not run
 * (it is not running when this returns), what is in flight is aborted
 * and the fetcher frees the task and its files once that has ended. */
void vg_fetcher_release(vg_fetcher *fetcher, vg_fetch_task *task);
/* Ends what is queued or in flight (503 server_shutdown, done runs),
 * joins the thread and frees the fetcher. Every task has then ended:
 * releasing one afterwards only frees it. */
void vg_fetcher_stop(vg_fetcher *fetcher);
/* The same without freeing: for the server's shutdown, so that requests
 * waiting on the fetcher are answered (503 server_shutdown) before the
 * HTTP daemon stops; later submits end at once the same way. */
void vg_fetcher_drain(vg_fetcher *fetcher);

#endif
