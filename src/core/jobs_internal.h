/*
 * jobs_internal.h - what the files of the job engine (jobs.h) share, and
 * nothing else includes.
 *
 * Each unfinished job this process works on has an in-memory `job_run`
 * in a hash table keyed by id: its render spec, where it stands in the
 * scheduler, the cancel flag and its listeners. The store is the record;
 * the table is only what this process is doing about it, and is rebuilt
 * from the store at start (vg_jobs_recover).
 *
 * A run moves through phases, all under the one lock:
 *   QUEUED    in its provider's line for its tier, waiting for a slot;
 *   STARTING  a worker took a slot and is recording queued -> running;
 *   SLEEPING  the provider's artificial delay (delay_ms) is running out,
 *             holding a slot but no thread;
 *   WOKEN     the delay is over: a worker hands it to the provider;
 *   STARTED   its provider has it (core/provider.h): one that works on
 *             the worker's thread (the renderer) is working on it there;
 *             a remote one works elsewhere. Either way what the provider
 *             learns comes back as events, which a worker takes from the
 *             `ready` line to do the durable part (record the task, store
 *             the video, settle or refund), the same for every provider.
 * Every phase but QUEUED holds one of the provider's slots.
 *
 * The engine is one file per job:
 *   jobs.c         start, the providers' slots, stopping;
 *   jobs_runs.c    the run table, the lines, listeners, a run's end, and
 *                  building a run from a stored job;
 *   jobs_sched.c   the scheduler (tiers, aging, slots, the ready line),
 *                  the worker threads, and loading the store's lines;
 *   jobs_events.c  what a started run does: its provider's events, and
 *                  their durable writes;
 *   jobs_submit.c  submission, intake pacing and cancel;
 *   jobs_recover.c taking up what a previous run left.
 * Every name declared here starts with jobs_ (the public ones vg_jobs_).
 */
#ifndef VG_JOBS_INTERNAL_H
#define VG_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/jobs.h"
#include "core/provider.h"
#include "util/table.h"

/* Why a run's cancel flag is set. */
enum { CANCEL_NONE, CANCEL_CLIENT, CANCEL_SHUTDOWN };

/* What a run waits for the store to commit (see write_step). */
enum { STEP_NONE, STEP_STARTED, STEP_TASK, STEP_SUCCEEDED };

typedef enum run_phase {
    PHASE_QUEUED,
    PHASE_STARTING,
    PHASE_SLEEPING,
    PHASE_WOKEN,
    PHASE_STARTED
} run_phase;

typedef struct provider_slot provider_slot;
typedef struct job_run job_run;

typedef struct run_line {
    job_run *head, *tail;
} run_line;

/* The queued jobs of one provider (by the store's provider column) that
 * wait in the store only: past the provider's line in memory, or behind
 * others that do. A refill loads them, oldest first, when the line is
 * down to half. */
typedef struct store_line {
    int64_t waiting;  /* at least this many; 0: none (resynced by refills) */
    int64_t retry_ms; /* the last refill loaded none: not before this, or a
                         line down to half (a place that frees) */
} store_line;

struct job_run {
    char id[37];
    vg_table_node in_table; /* in jobs->runs, by id */
    job_run *prev, *next;   /* in a line (queued or sleeping) */
    provider_slot *slot;
    provider_slot *home; /* the store's provider of it (NULL: none here) */
    int tier;            /* 0 default, 1 flex: the line it waits in */
    int64_t queued_ms;   /* the job's creation: how long it has waited */
    uint64_t seq;        /* its place in the line: order of enqueueing */
    int64_t wake_ms;     /* SLEEPING: when the delay is over */
    run_phase phase;
    vg_job_state state; /* as listeners see it */
    int progress;
    int stored_progress; /* last percentage written to the store */
    bool has_webhook;
    atomic_int cancel;
    vg_jobs *owner;
    vg_job_spec spec;
    char *prompt;
    /* Its reference images: their blobs' keys, and the local copies
     * made on the worker before the provider starts (jobs_fetch_images;
     * spec.image_paths points at them), deleted when the run goes. */
    char *image_keys[VG_MAX_IMAGES];
    char *image_files[VG_MAX_IMAGES];
    char *image_urls[VG_MAX_IMAGES]; /* signed, for providers by URL */
    vg_job_listener *listeners;
    const vg_model *model;
    /* The client's preferred provider ("provider"): its route goes first;
     * "" = the model's own order. */
    char preferred[64];
    vg_provider_event *events, *events_tail; /* not yet handled */
    bool ready;         /* in jobs->ready, or a worker is handling it */
    bool in_ready_line; /* in jobs->ready itself */
    bool task_recorded; /* the store holds its provider's task */
    bool launching;     /* counted in slot->launching */
    job_run *next_ready;
    /* A write of the run's in the store's queue (write_step): what it
     * records, and once committed its result. */
    int step;
    int write_rc;
    /* STEP_SUCCEEDED: the provider's copy to delete once the success is
     * recorded (remote providers). */
    char stored_provider[32];
    char *stored_task;
};

struct provider_slot {
    char name[32];
    vg_provider *provider;
    int concurrency;
    int delay_ms;
    int busy;           /* runs holding a slot */
    int ready;          /* of those, runs in jobs->ready: a worker's turn */
    int launching;      /* of those, runs of a remote provider not yet
                         * answered: taken from the line, the create to
                         * come */
    run_line queued[2]; /* by tier */
    int n_queued;       /* runs in queued[], at most queued_in_memory */
    run_line sleeping;  /* by wake_ms: the delay is the same for all */
    store_line stored;  /* its jobs that wait in the store only */
    /* Intake pacing (config.dispatch_backlog): submissions held before
     * their commit, oldest first, and those committing (not queued yet). */
    vg_submission *held_head, *held_tail;
    int admitting;
};

struct vg_jobs {
    vg_store *store;
    vg_blob *blob;
    vg_jobs_config config;
    char tmp_dir[PATH_MAX + 16];
    provider_slot slots[VG_MAX_PROVIDERS];
    int n_slots;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* work to pick, a slot freed, or stopping */
    pthread_cond_t settled; /* a slot was freed */
    vg_table runs;          /* the runs in memory, by id */
    job_run *ready_head, *ready_tail; /* started runs with a next step */
    int ready_turns;   /* ready runs picked since the last start */
    uint64_t next_seq; /* places in line, across both tiers */
    int busy;          /* sum of the slots' busy */
    int writes;        /* write_step writes not yet answered */
    /* Each provider's line in memory is bounded (queued_in_memory): past
     * it, its jobs stay queued in the store only (slot->stored), and are
     * loaded oldest first once the line is down to half (refill). Jobs
     * whose store row names no configured provider (the configuration
     * changed) have a line of their own, strays. */
    int queued_runs; /* runs in the slots' queued lines */
    store_line strays;
    int refill_next; /* the slot whose store line is looked at first */
    bool refilling;  /* a worker is loading them */
    int draining;    /* start nothing new; read under lock */
    int exiting;     /* workers return; read under lock */
    int stopped;     /* vg_jobs_stop ran; touched by its caller only */
    pthread_t *threads;
    int n_threads;
    /* Lets held submits through when their hold runs out, whatever the
     * workers are doing (config.dispatch_backlog > 0 only). */
    pthread_cond_t held_wake; /* a hold began, or stopping */
    pthread_t pacer;
    bool has_pacer;
};

/* ---- jobs_runs.c: the table, the lines, a run's end ------------------ */

job_run *jobs_run_of(vg_table_node *n);
/* The run of that id in memory, or NULL. Caller holds the lock. */
job_run *jobs_find_run(const vg_jobs *jobs, const char *id);
void jobs_line_append(run_line *line, job_run *run);
void jobs_line_remove(run_line *line, job_run *run);
/* A run joins or leaves its slot's queued line. Caller holds the lock. */
void jobs_queue_add(vg_jobs *jobs, job_run *run);
void jobs_queue_drop(vg_jobs *jobs, job_run *run);
void jobs_run_free(job_run *run, bool delete_images);
/* Tells the run's listeners its state. Caller holds the lock. */
void jobs_notify_locked(job_run *run, bool done);
/* Takes the run out of the table (and its slot, if it holds one) and
 * tells its listeners. Caller holds the lock and frees the run after
 * unlocking. */
void jobs_retire_locked(vg_jobs *jobs, job_run *run, vg_job_state state);
void jobs_retire(vg_jobs *jobs, job_run *run, vg_job_state state,
                 bool delete_images);
/* A job with a webhook ended: the sender looks for the delivery now. */
void jobs_poke_webhooks(vg_jobs *jobs);
/* Records a failed or cancelled end; returns the store's answer. */
int jobs_end_in_store(vg_jobs *jobs, const char *id, vg_job_state state,
                      const char *code, const char *message);
/* Ends the run as failed (or cancelled) in the store and here. */
void jobs_end_run(vg_jobs *jobs, job_run *run, vg_job_state state,
                  const char *code, const char *message);
/* Work stopped by a shutdown goes back to the line in the store. */
void jobs_requeue_run(vg_jobs *jobs, job_run *run);
/* A job's request as the engine keeps it (the job's request_json): the
 * validated fields, the seed it runs with and the images' files (or, for
 * the idempotency hash, their digests). jobs_run_from_job reads it back;
 * the two are side by side in jobs_runs.c, the only place that knows
 * the format. NULL: out of memory. */
json_t *jobs_request_doc(const vg_video_request *req, int64_t seed,
                         const char *const *images);
/* Builds the run of a job from its validated request: its slot, its
 * render spec with the seed it runs with, and the images' files (NULL
 * with err: 400 the model is gone, 503 no provider for it, 500). */
job_run *jobs_run_new(vg_jobs *jobs, const vg_job *job,
                      const vg_video_request *req, int64_t seed,
                      const char *const *images, vg_error *err);
/* jobs_run_new from a stored job (loaded from the store, recovered); 500
 * also when an image file is missing. */
job_run *jobs_run_from_job(vg_jobs *jobs, const vg_job *job, vg_error *err);
/* A stored job whose run cannot be built fails, refunded. */
int jobs_run_failed_to_load(vg_jobs *jobs, const vg_job *job,
                            const vg_error *err);

/* ---- jobs.c: the providers' slots ------------------------------------ */

provider_slot *jobs_slot_named(vg_jobs *jobs, const char *name);
/* Whether the slot's provider can take a job now. */
bool jobs_slot_available(const provider_slot *s);

/* ---- jobs_sched.c: the scheduler and the workers --------------------- */

/* The slot a new run of the model waits in. */
provider_slot *jobs_slot_for_model(vg_jobs *jobs, const vg_model *m,
                                   const char *preferred);
/* Puts a run in the table and its line; false when it is not taken (the
 * caller frees it). */
bool jobs_enqueue(vg_jobs *jobs, job_run *run, bool loading);
void *jobs_worker_main(void *arg);

/* ---- jobs_events.c: what a started run does -------------------------- */

/* A worker's step for a run it picked: record its start (STARTING), hand
 * it to its provider (WOKEN), carry on after a write (step set), or handle
 * its provider's events (STARTED). */
void jobs_begin(vg_jobs *jobs, job_run *run);
void jobs_launch(vg_jobs *jobs, job_run *run);
/* The key of a job's n-th reference image: "uploads/<job id>-<n>". */
void jobs_upload_key(const char *job_id, int n, char *out, size_t size);
/* Copies the run's reference images from the blob store into local
 * files for its provider (on a worker; each once). */
int jobs_fetch_images(vg_jobs *jobs, job_run *run, vg_error *err);
void jobs_after_write(vg_jobs *jobs, job_run *run);
void jobs_handle_events(vg_jobs *jobs, job_run *run);
/* The providers' sink for their events (ctx: the vg_jobs). */
void jobs_deliver_event(void *ctx, vg_provider_event *ev);

/* ---- jobs_submit.c: intake pacing ------------------------------------ */

/* Held submissions that may commit now, of one slot or of all (*next_at:
 * when the next hold still in place runs out, 0: none), as a list for
 * jobs_commit_released. Caller holds the lock. */
vg_submission *jobs_release_held_locked(vg_jobs *jobs, provider_slot *s,
                                        int64_t now);
vg_submission *jobs_release_all_locked(vg_jobs *jobs, int64_t now,
                                       int64_t *next_at);
void jobs_commit_released(vg_jobs *jobs, vg_submission *list);
void *jobs_pacer_main(void *arg);

#endif
