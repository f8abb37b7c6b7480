/*
 * jobs.h - the life of a generation job: submit, schedule, run on a
 * worker pool, store the result, settle or refund, and tell whoever
 * listens.
 *
 * A job is durable from the moment vg_jobs_submit returns: the store holds
 * it with its credit reservation, and a restart picks it up again. The
 * HTTP threads only submit, cancel and listen; work runs on a pool of
 * worker threads, so a slow render never holds an HTTP thread.
 *
 * Scheduling, per provider: at most `concurrency` jobs run at once. Queued
 * jobs wait in two FIFO lines, one per service tier. A free slot goes to
 * the oldest "default" job, unless the oldest "flex" job has waited
 * flex_max_wait_s or more and was submitted before that default job: an
 * aged flex job counts as default from then on, so flex work never starves
 * behind a steady stream of default work.
 *
 * Money: the price is reserved when the job is created (in the same store
 * transaction), settled when the video is stored, and refunded when the
 * job fails or is cancelled; the store makes each of those happen once.
 */
#ifndef VG_JOBS_H
#define VG_JOBS_H

#include <limits.h>

#include "blob/blob.h"
#include "core/auth.h"
#include "core/catalog.h"
#include "core/provider.h"
#include "core/request.h"
#include "store/store.h"

typedef struct vg_jobs vg_jobs;

/* What listeners learn: the job's state and progress as this process
 * sees it; done is set once, with the final state. */
typedef struct vg_job_event {
    vg_job_state state;
    int progress; /* 0..100 */
    bool done;
} vg_job_event;

typedef struct vg_job_listener vg_job_listener;
struct vg_job_listener {
    /* Called with the jobs lock held, from any thread: must be quick and
     * must not call back into vg_jobs. After the done event the listener
     * is detached. */
    void (*notify)(vg_job_listener *listener, const vg_job_event *event);
    /* Internal to jobs.c. */
    vg_job_listener *prev, *next;
    void *run;
};


typedef struct vg_jobs_config {
    const vg_catalog *catalog;
    const char *data_dir; /* holds "uploads" and "tmp" */
    int flex_max_wait_s;  /* aging rule above */
    int max_attempts;     /* starts before an interrupted job fails */
    int queued_in_memory; /* queued runs held here per provider (0:
                             4096); past it, its jobs wait in the store
                             and are loaded as its line shortens */
    /* Intake paced by dispatch: while this many jobs of a provider could
     * start (it has room) but wait for a worker, further submits for it
     * wait before their commit, oldest first, and go on as the workers
     * catch up (at most DISPATCH_HOLD_MAX_MS each). 0 = off. */
    int dispatch_backlog;
    int64_t idempotency_ttl_ms;
    /* The providers (vg_providers_build), which the engine takes over:
     * vg_jobs_free destroys them, and so does a vg_jobs_start that
     * fails. Their names are the slots jobs wait in. */
    vg_provider *const *providers;
    int n_providers;
    /* Signs a short-lived URL for a job's reference image (the blob
     * under key, "uploads/<job id>-<n>"), for providers that fetch images
     * by URL; writes it to out and returns 0, or -1 when no public URL is
     * known. May be NULL. */
    int (*sign_upload)(void *ctx, const char *key, char *out, size_t n);
    /* Called (from a worker) after a job with a webhook_url ended, so the
     * webhook sender looks for the delivery now. May be NULL. */
    void (*ended_with_webhook)(void *ctx);
    void *ctx;
} vg_jobs_config;

/* Starts the workers. */
vg_jobs *vg_jobs_start(vg_store *store, vg_blob *blob,
                       const vg_jobs_config *config, vg_error *err);

/* Takes up the jobs a previous run left unfinished: queued ones are queued
 * again, interrupted ones start over (after max_attempts starts they fail,
 * refunded). */
int vg_jobs_recover(vg_jobs *jobs, vg_error *err);

typedef struct vg_submit {
    const char *webhook_url;     /* NULL: none */
    const char *idempotency_key; /* NULL: none */
    int max_unfinished;          /* per key; 0 = no limit */
} vg_submit;

/* Prices the request, picks a seed when it asks for a random one, creates
 * the job with its reservation and queues it. The job takes ownership of
 * the request's images. Errors: 403 balance too small, 409 idempotency key
 * reused with another request, 429 too many unfinished jobs for the key.
 * On success *out holds the job (caller vg_job_clear's it); *replayed says
 * whether it is an earlier job with the same idempotency key. */
int vg_jobs_submit(vg_jobs *jobs, const vg_principal *principal,
                   vg_video_request *req, const vg_submit *opts,
                   vg_job *out, bool *replayed, vg_error *err);

/* vg_jobs_submit in two halves, so that the caller's thread need not wait
 * for the database commit. start does everything up to the commit and
 * queues it; done(ctx) then runs once, on another thread (or on this one,
 * before start returns), and the caller calls finish for the outcome,
 * which frees the submission. start returns -1 with err (done not
 * called) when it fails before queueing. */
typedef struct vg_submission vg_submission;
int vg_jobs_submit_start(vg_jobs *jobs, const vg_principal *principal,
                         vg_video_request *req, const vg_submit *opts,
                         void (*done)(void *ctx), void *ctx,
                         vg_submission **out, vg_error *err);
int vg_jobs_submit_finish(vg_jobs *jobs, vg_submission *sub, vg_job *out,
                          bool *replayed, vg_error *err);
/* The caller will not call finish (its client went away while the job
 * was being committed): the submission finishes by itself, now if the
 * commit is done, else when it is, so a committed job is always queued
 * to run. The request passed to start may be freed after this. */
void vg_jobs_submit_abandon(vg_jobs *jobs, vg_submission *sub);

/* Cancels a queued or running job of the account and refunds it; *out
 * holds the cancelled job. 404 when the job is not the account's, 409
 * when it has already ended. */
int vg_jobs_cancel(vg_jobs *jobs, const char *account_id, const char *id,
                   vg_job *out, vg_error *err);

/* Registers a listener for a job this process is working on; *now is its
 * current state. Returns 1, without registering, when this process has no
 * such unfinished job (it ended, or never was here). */
int vg_jobs_listen(vg_jobs *jobs, const char *job_id,
                   vg_job_listener *listener, vg_job_event *now);
/* Detaches a listener; harmless when it is no longer attached. After it
 * returns, notify is not running and will not be called. */
void vg_jobs_unlisten(vg_jobs *jobs, vg_job_listener *listener);

/* True once vg_jobs_stop has begun: nothing new will run here. */
bool vg_jobs_draining(vg_jobs *jobs);
/* True when some route of the model has a configured provider that can
 * take work now: the "available" of the models endpoint. */
bool vg_jobs_model_available(vg_jobs *jobs, const vg_model *model);
/* The upstream providers' health for /healthz: per provider, whether it
 * has a key, its circuit breaker's state and its jobs. */
json_t *vg_jobs_health(vg_jobs *jobs);
/* Changes whenever vg_jobs_model_available may answer differently. */
uint64_t vg_jobs_availability_version(vg_jobs *jobs);

/* The HTTP status a failed job's error code answers with. */
int vg_job_error_status(const char *code);

/* Stops taking work and lets running jobs go on for up to drain_s
 * seconds. What is then still running is interrupted and queued again in
 * the store, like queued jobs, for the next start; listeners get done
 * events (the job is still unfinished in the store). Joins the workers. */
void vg_jobs_stop(vg_jobs *jobs, int drain_s);
/* Stops (at once) if still running, then frees. */
void vg_jobs_free(vg_jobs *jobs);

#endif
