/*
 * jobs.h - the life of a generation job: submit, queue, run on a worker
 * pool, store the result, settle or refund, and tell whoever waits.
 *
 * The HTTP threads only submit and wait; rendering runs on a pool of
 * worker threads sized to the machine, so a slow render never holds an
 * HTTP thread. Waiters are callbacks: the HTTP layer suspends the client's
 * connection and resumes it from the callback.
 *
 * Money: the price is reserved when the job is created (in the same store
 * transaction), settled when the video is stored, and refunded when the
 * job fails or is cancelled; the store makes each of those happen once.
 */
#ifndef VG_JOBS_H
#define VG_JOBS_H

#include "blob/blob.h"
#include "core/auth.h"
#include "core/catalog.h"
#include "core/request.h"
#include "store/store.h"

typedef struct vg_jobs vg_jobs;

typedef struct vg_job_waiter vg_job_waiter;
struct vg_job_waiter {
    /* Called once when the job ends, from a worker thread. */
    void (*done)(vg_job_waiter *waiter);
    vg_job_waiter *next;
};

/* Starts `workers` threads (0 = one per core). data_dir holds the
 * "uploads" and "tmp" folders of jobs in progress. */
vg_jobs *vg_jobs_start(vg_store *store, vg_blob *blob, const char *data_dir,
                       int workers, vg_error *err);

/* Ends jobs a previous run left unfinished (failed, refunded). */
int vg_jobs_recover(vg_jobs *jobs, vg_error *err);

/* Prices the request, picks a seed when it asks for a random one, creates
 * the job with its reservation (403 when the balance is too small) and
 * queues it. The job takes ownership of the request's images. On success
 * *out holds the queued job (caller vg_job_clear's it). */
int vg_jobs_submit(vg_jobs *jobs, const vg_principal *principal,
                   vg_video_request *req, vg_job *out, vg_error *err);

/* Registers a waiter for a queued or running job. Returns 1, without
 * registering, when the job has already ended (or is unknown here). */
int vg_jobs_wait(vg_jobs *jobs, const char *job_id, vg_job_waiter *waiter);

/* The HTTP status a failed job's error code answers with. */
int vg_job_error_status(const char *code);

/* Stops taking work, lets running jobs finish for up to drain_s seconds,
 * cancels the rest (refunded), wakes every waiter and joins the workers. */
void vg_jobs_stop(vg_jobs *jobs, int drain_s);
/* Stops (at once) if still running, then frees. */
void vg_jobs_free(vg_jobs *jobs);

#endif
