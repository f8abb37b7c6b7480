/*
 * jobs.c - job scheduler, worker pool and job lifecycle; see jobs.h.
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
 *   EXECUTING a worker runs the provider and stores the result;
 *   UPSTREAM  an upstream provider has the job: the upstream engine
 *             (providers/upstream.c) submits, polls and downloads on its
 *             own thread, and hands what it learns back as events, which
 *             a worker takes from the `ready` line to do the durable part
 *             (record the task, store the video, settle or refund).
 * Every phase but QUEUED holds one of the provider's slots.
 */
#include "core/jobs.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/pricing.h"
#include "media/mp4.h"
#include "providers/provider.h"
#include "providers/upstream.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/dirs.h"
#include "util/log.h"
#include "util/table.h"
#include "util/parse.h"

#define RUN_BUCKETS 4096 /* to begin with: the table grows */
/* Worker threads beside the render slots (see vg_jobs_start). */
#define IO_WORKERS 8

/* Why a run's cancel flag is set. */
enum { CANCEL_NONE, CANCEL_CLIENT, CANCEL_SHUTDOWN };

/* What an upstream run waits for the store to commit (see write_step). */
enum { STEP_NONE, STEP_STARTED, STEP_TASK, STEP_SUCCEEDED };

typedef enum run_phase {
    PHASE_QUEUED,
    PHASE_STARTING,
    PHASE_SLEEPING,
    PHASE_EXECUTING,
    PHASE_UPSTREAM
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

/* How long a line whose last refill loaded nothing waits before the
 * next, unless room appears first. */
#define REFILL_RETRY_MS 1000

/* The longest a submit waits for dispatch to catch up (see
 * config.dispatch_backlog): the pacing slows intake, it never refuses
 * it, and a dispatch that stalls for good must not hold clients for
 * good. */
#define DISPATCH_HOLD_MAX_MS 5000
/* How often the pacer looks at the held submits while there are any. */
#define DISPATCH_RECHECK_MS 100

/* The ready line's share of the workers' turns while jobs wait to start
 * (see pick). An upstream job takes five ready turns once started (its
 * start recorded, its task, the task recorded, its result, the result
 * recorded), so four to one gives starts a little more than their share:
 * the ready line grows then, and the intake pacing, which counts it,
 * holds new submits until the workers are through it. */
#define READY_TURNS_PER_START 4

struct job_run {
    char id[37];
    vg_table_node in_table; /* in jobs->runs, by id */
    job_run *prev, *next; /* in a line (queued or sleeping) */
    provider_slot *slot;
    provider_slot *home; /* the store's provider of it (NULL: none here) */
    int tier;           /* 0 default, 1 flex: the line it waits in */
    int64_t queued_ms;  /* the job's creation: how long it has waited */
    uint64_t seq;       /* its place in the line: order of enqueueing */
    int64_t wake_ms;    /* SLEEPING: when the delay is over */
    run_phase phase;
    vg_job_state state; /* as listeners see it */
    int progress;
    int stored_progress; /* last percentage written to the store */
    bool has_webhook;
    atomic_int cancel;
    vg_jobs *owner;
    vg_job_spec spec;
    char *prompt;
    char *image_paths[VG_MAX_IMAGES];
    char *image_urls[VG_MAX_IMAGES]; /* signed, for providers by URL */
    vg_job_listener *listeners;
    /* Upstream runs. */
    const vg_model *model;
    /* The client's preferred provider ("provider"): its route goes first;
     * "" = the model's own order. */
    char preferred[64];
    vg_upstream_event *events, *events_tail; /* not yet handled */
    bool ready;          /* in jobs->ready, or a worker is handling it */
    bool in_ready_line;  /* in jobs->ready itself */
    bool task_recorded;  /* the store holds its upstream task */
    bool launching;      /* counted in slot->launching */
    job_run *next_ready;
    /* A write of the run's in the store's queue (write_step): what it
     * records, and once committed its result. */
    int step;
    int write_rc;
    /* STEP_SUCCEEDED: the provider's copy to delete once the success is
     * recorded (upstream runs). */
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
    int launching;      /* of those, upstream runs not yet answered by the
                         * engine: taken from the line, the create to come */
    bool upstream;      /* served by the upstream engine */
    int engine_index;   /* its place among the engine's providers */
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
    char uploads_dir[PATH_MAX + 16];
    char tmp_dir[PATH_MAX + 16];
    provider_slot slots[VG_MAX_PROVIDERS];
    int n_slots;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* work to pick, a slot freed, or stopping */
    pthread_cond_t settled; /* a slot was freed */
    vg_table runs; /* the runs in memory, by id */
    job_run *ready_head, *ready_tail; /* upstream runs with events */
    int ready_turns; /* ready runs picked since the last start */
    vg_upstream *upstream;
    uint64_t next_seq; /* places in line, across both tiers */
    int busy;     /* sum of the slots' busy */
    int writes;   /* write_step writes not yet answered */
    /* Each provider's line in memory is bounded (queued_in_memory): past
     * it, its jobs stay queued in the store only (slot->stored), and are
     * loaded oldest first once the line is down to half (refill). Jobs
     * whose store row names no configured provider (the configuration
     * changed) have a line of their own, strays. */
    int queued_runs;       /* runs in the slots' queued lines */
    store_line strays;
    int refill_next;       /* the slot whose store line is looked at first */
    bool refilling;        /* a worker is loading them */
    int draining; /* start nothing new; read under lock */
    int exiting;  /* workers return; read under lock */
    int stopped;  /* vg_jobs_stop ran; touched by its caller only */
    pthread_t *threads;
    int n_threads;
    /* Lets held submits through when their hold runs out, whatever the
     * workers are doing (config.dispatch_backlog > 0 only). */
    pthread_cond_t held_wake; /* a hold began, or stopping */
    pthread_t pacer;
    bool has_pacer;
};

static job_run *run_of(vg_table_node *n)
{
    return n != NULL ? VG_CONTAINER_OF(n, job_run, in_table) : NULL;
}

/* The run of that id in memory, or NULL. Caller holds the lock. */
static job_run *find_run(const vg_jobs *jobs, const char *id)
{
    return run_of(vg_table_find(&jobs->runs, id));
}

static void line_append(run_line *line, job_run *run)
{
    run->next = NULL;
    run->prev = line->tail;
    if (line->tail != NULL)
        line->tail->next = run;
    else
        line->head = run;
    line->tail = run;
}

static void line_remove(run_line *line, job_run *run)
{
    if (run->prev != NULL)
        run->prev->next = run->next;
    else
        line->head = run->next;
    if (run->next != NULL)
        run->next->prev = run->prev;
    else
        line->tail = run->prev;
    run->prev = run->next = NULL;
}

/* A run joins or leaves its slot's queued line. Caller holds the lock. */
static void queue_add(vg_jobs *jobs, job_run *run)
{
    line_append(&run->slot->queued[run->tier], run);
    run->slot->n_queued++;
    jobs->queued_runs++;
}

static void queue_drop(vg_jobs *jobs, job_run *run)
{
    line_remove(&run->slot->queued[run->tier], run);
    run->slot->n_queued--;
    jobs->queued_runs--;
    /* Down to half: room for what a refill could not load before (once
     * per half a line, so that refills stay rare). */
    if (run->slot->n_queued == jobs->config.queued_in_memory / 2) {
        for (int i = 0; i < jobs->n_slots; i++)
            jobs->slots[i].stored.retry_ms = 0;
        jobs->strays.retry_ms = 0;
    }
}

static void run_free(job_run *run, bool delete_images)
{
    while (run->events != NULL) {
        vg_upstream_event *ev = run->events;
        run->events = ev->next;
        if (ev->file != NULL)
            unlink(ev->file);
        vg_upstream_event_free(ev);
    }
    free(run->prompt);
    free(run->stored_task);
    for (int i = 0; i < run->spec.n_images; i++) {
        if (delete_images && run->image_paths[i] != NULL)
            unlink(run->image_paths[i]);
        free(run->image_paths[i]);
        free(run->image_urls[i]);
    }
    free(run);
}

static int make_dir(const char *path, vg_error *err)
{
    char failed[PATH_MAX];
    if (vg_make_dirs(path, 0700, false, failed, sizeof(failed)) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot create %s: %s", failed, strerror(errno));
    return 0;
}

int vg_job_error_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } table[] = {
        {"invalid_image", 422},
        {"unsupported_parameter", 400},
        {"server_shutdown", 503},
        {"cancelled", 409},
        {"no_provider", 503},
        {"upstream_rejected", 400},
        {"content_filtered", 400},
        {"upstream_no_balance", 503},
        {"upstream_unavailable", 502},
        {"upstream_malformed", 502},
        {"upstream_failed", 502},
        {"upstream_cancelled", 502},
        {"upstream_expired", 502},
        {"upstream_download_failed", 502},
        {"upstream_bad_video", 502},
        {"upstream_timeout", 504},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].code, code) == 0)
            return table[i].status;
    return 500;
}

/* ---- listeners --------------------------------------------------------- */

/* Caller holds the lock. */
static void notify_locked(job_run *run, bool done)
{
    vg_job_event event = {run->state, run->progress, done};
    vg_job_listener *l = run->listeners;
    if (done)
        run->listeners = NULL;
    while (l != NULL) {
        vg_job_listener *next = l->next;
        if (done)
            l->run = NULL, l->prev = l->next = NULL;
        l->notify(l, &event);
        l = next;
    }
}

int vg_jobs_listen(vg_jobs *jobs, const char *job_id,
                   vg_job_listener *listener, vg_job_event *now)
{
    pthread_mutex_lock(&jobs->lock);
    job_run *run = find_run(jobs, job_id);
    if (run == NULL) {
        pthread_mutex_unlock(&jobs->lock);
        return 1;
    }
    listener->run = run;
    listener->prev = NULL;
    listener->next = run->listeners;
    if (run->listeners != NULL)
        run->listeners->prev = listener;
    run->listeners = listener;
    now->state = run->state;
    now->progress = run->progress;
    now->done = false;
    pthread_mutex_unlock(&jobs->lock);
    return 0;
}

void vg_jobs_unlisten(vg_jobs *jobs, vg_job_listener *listener)
{
    pthread_mutex_lock(&jobs->lock);
    job_run *run = listener->run;
    if (run != NULL) {
        if (listener->prev != NULL)
            listener->prev->next = listener->next;
        else
            run->listeners = listener->next;
        if (listener->next != NULL)
            listener->next->prev = listener->prev;
        listener->run = NULL;
        listener->prev = listener->next = NULL;
    }
    pthread_mutex_unlock(&jobs->lock);
}

/* ---- the end of a run -------------------------------------------------- */

/* Takes the run out of the table (and its slot, if it holds one) and
 * tells its listeners. Caller holds the lock and frees the run after
 * unlocking. */
static void retire_locked(vg_jobs *jobs, job_run *run, vg_job_state state)
{
    vg_table_remove(&jobs->runs, &run->in_table);
    if (run->in_ready_line) {
        job_run **r = &jobs->ready_head, *prev = NULL;
        while (*r != NULL && *r != run)
            prev = *r, r = &(*r)->next_ready;
        if (*r == run) {
            *r = run->next_ready;
            if (jobs->ready_tail == run)
                jobs->ready_tail = prev;
            run->slot->ready--;
        }
    }
    if (run->launching)
        run->slot->launching--;
    if (run->phase != PHASE_QUEUED) {
        provider_slot *s = run->slot;
        s->busy--;
        jobs->busy--;
        pthread_cond_broadcast(&jobs->settled);
        /* A slot is free: one worker, if a run waits for it. */
        if (s->queued[0].head != NULL || s->queued[1].head != NULL)
            pthread_cond_signal(&jobs->wake);
    }
    run->state = state;
    notify_locked(run, true);
}

static void retire(vg_jobs *jobs, job_run *run, vg_job_state state,
                   bool delete_images)
{
    pthread_mutex_lock(&jobs->lock);
    retire_locked(jobs, run, state);
    pthread_mutex_unlock(&jobs->lock);
    run_free(run, delete_images);
}

static void poke_webhooks(vg_jobs *jobs)
{
    if (jobs->config.ended_with_webhook != NULL)
        jobs->config.ended_with_webhook(jobs->config.ctx);
}

/* Records a failed or cancelled end; returns the store's answer. */
static int end_in_store(vg_jobs *jobs, const char *id, vg_job_state state,
                        const char *code, const char *message)
{
    vg_error err;
    int rc = jobs->store->ops->end_job(jobs->store, id, state, code, message,
                                       vg_now_ms(), &err);
    if (rc == VG_STORE_ERROR)
        vg_log_error("job %s: cannot record its end: %s", id, err.message);
    return rc;
}

/* Ends the run as failed (or cancelled) in the store and here. */
static void end_run(vg_jobs *jobs, job_run *run, vg_job_state state,
                    const char *code, const char *message)
{
    if (end_in_store(jobs, run->id, state, code, message) == VG_STORE_OK &&
        run->has_webhook)
        poke_webhooks(jobs);
    retire(jobs, run, state, true);
}

/* Work stopped by a shutdown goes back to the line in the store, for the
 * next start (or another instance). */
static void requeue_run(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    if (jobs->store->ops->requeue_job(jobs->store, run->id, &err) ==
        VG_STORE_ERROR)
        vg_log_error("job %s: cannot queue it again: %s", run->id,
                     err.message);
    retire(jobs, run, VG_JOB_QUEUED, false);
}

/* ---- running a job ----------------------------------------------------- */

static void report_progress(void *opaque, int done, int total)
{
    job_run *run = opaque;
    vg_jobs *jobs = run->owner;
    int pct = total > 0 ? (int)((int64_t)done * 100 / total) : 0;
    if (pct > 99)
        pct = 99; /* 100 means stored, which only success says */
    if (pct <= run->progress)
        return;
    pthread_mutex_lock(&jobs->lock);
    run->progress = pct;
    notify_locked(run, false);
    pthread_mutex_unlock(&jobs->lock);
    /* Listeners here see every step; the store, read by pollers and by
     * other instances, gets one every 5%. */
    if (pct < run->stored_progress + 5)
        return;
    run->stored_progress = pct;
    vg_error err;
    if (jobs->store->ops->set_progress(jobs->store, run->id, pct, &err) ==
        VG_STORE_ERROR)
        vg_log_warn("job %s: cannot record progress: %s", run->id,
                    err.message);
}

static void store_video(vg_jobs *jobs, job_run *run, const char *out_path,
                        vg_job *done, const vg_upstream_event *from);
static void write_success(vg_jobs *jobs, job_run *run, const vg_job *done);
static void write_step(vg_jobs *jobs, job_run *run, int step,
                       const char *provider, const char *task);
static void ready_push_locked(vg_jobs *jobs, job_run *run);
static provider_slot *slot_named(vg_jobs *jobs, const char *name);

static void execute(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    vg_error_clear(&err);
    vg_provider *provider = run->slot->provider;
    char out_path[PATH_MAX + 64];
    snprintf(out_path, sizeof(out_path), "%s/%s.mp4", jobs->tmp_dir,
             run->id);
    vg_job_hooks hooks = {&run->cancel, report_progress, run};
    vg_provider_result result = {0, 0};
    int rc = provider->ops->run(provider, &run->spec, out_path, &hooks,
                                &result, &err);
    int cancel = atomic_load(&run->cancel);
    if (rc != 0) {
        unlink(out_path);
        if (cancel == CANCEL_SHUTDOWN) {
            requeue_run(jobs, run);
        } else if (cancel == CANCEL_CLIENT) {
            /* vg_jobs_cancel recorded the end already. */
            retire(jobs, run, VG_JOB_CANCELLED, true);
        } else {
            if (err.status >= 500)
                vg_log_error("job %s failed: %s", run->id, err.message);
            end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
        }
        return;
    }

    vg_job done;
    memset(&done, 0, sizeof(done));
    done.seed = run->spec.seed;
    done.width = run->spec.width;
    done.height = run->spec.height;
    done.prompt_tokens = result.prompt_tokens;
    done.completion_tokens = result.completion_tokens;
    store_video(jobs, run, out_path, &done, NULL);
}

/* Where a run's video is stored. */
static void video_key_of(const job_run *run, char *out, size_t n)
{
    snprintf(out, n, "videos/%s.mp4", run->id);
}

/* Moves the finished video at path into the blob store and records the
 * success (done carries seed, size and tokens), without waiting for the
 * commit: the run comes back in after_write (succeeded). from, for an
 * upstream run, names the provider's copy to delete once recorded. */
static void store_video(vg_jobs *jobs, job_run *run, const char *out_path,
                        vg_job *done_in, const vg_upstream_event *from)
{
    vg_error err;
    vg_job done = *done_in;
    memcpy(done.id, run->id, sizeof(done.id));
    video_key_of(run, done.video_key, sizeof(done.video_key));
    done.finished_ms = vg_now_ms();
    if (jobs->blob->ops->put_file(jobs->blob, done.video_key, out_path,
                                  &err) != 0) {
        vg_log_error("job %s: cannot store the video: %s", run->id,
                     err.message);
        unlink(out_path);
        end_run(jobs, run, VG_JOB_FAILED, "storage_failed",
                "the video could not be stored");
        return;
    }
    if (from != NULL && from->task != NULL) {
        snprintf(run->stored_provider, sizeof(run->stored_provider), "%s",
                 from->provider);
        run->stored_task = strdup(from->task);
    }
    write_success(jobs, run, &done);
}

/* The success is recorded (or refused): settle the run. */
static void succeeded(vg_jobs *jobs, job_run *run, int rc)
{
    if (rc != VG_STORE_OK) {
        /* Cancelled meanwhile (or the store failed): the client was
         * refunded, so the video must not outlive the job. */
        vg_error err;
        char key[sizeof(((vg_job *)0)->video_key)];
        video_key_of(run, key, sizeof(key));
        jobs->blob->ops->remove(jobs->blob, key, &err);
        retire(jobs, run, VG_JOB_CANCELLED, true);
        return;
    }
    if (run->has_webhook)
        poke_webhooks(jobs);
    char provider[32];
    char *task = run->stored_task;
    run->stored_task = NULL;
    snprintf(provider, sizeof(provider), "%s", run->stored_provider);
    pthread_mutex_lock(&jobs->lock);
    run->progress = 100;
    pthread_mutex_unlock(&jobs->lock);
    retire(jobs, run, VG_JOB_SUCCEEDED, true);
    if (task != NULL)
        vg_upstream_stored(jobs->upstream, provider, task);
    free(task);
}

/* Records queued -> running, then sleeps out the provider's delay or
 * executes at once. */
static void begin(vg_jobs *jobs, job_run *run)
{
    if (run->slot->upstream) {
        write_step(jobs, run, STEP_STARTED, run->slot->name, NULL);
        return;
    }
    vg_error err;
    int rc = jobs->store->ops->start_job(jobs->store, run->id, vg_now_ms(),
                                         &err);
    if (rc != VG_STORE_OK) {
        /* CONFLICT: cancelled while it waited for a worker. */
        if (rc == VG_STORE_ERROR)
            vg_log_error("job %s: cannot start: %s", run->id, err.message);
        retire(jobs, run, VG_JOB_CANCELLED, true);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    run->state = VG_JOB_RUNNING;
    notify_locked(run, false);
    if (run->slot->delay_ms > 0) {
        run->phase = PHASE_SLEEPING;
        run->wake_ms = vg_now_ms() + run->slot->delay_ms;
        line_append(&run->slot->sleeping, run);
        pthread_cond_signal(&jobs->wake); /* a new deadline */
        pthread_mutex_unlock(&jobs->lock);
        return;
    }
    run->phase = PHASE_EXECUTING;
    pthread_mutex_unlock(&jobs->lock);
    execute(jobs, run);
}

/* ---- upstream runs ----------------------------------------------------- */

/* Puts a ready run in the line for a worker. Caller holds the lock. */
static void ready_push_locked(vg_jobs *jobs, job_run *run)
{
    run->next_ready = NULL;
    run->in_ready_line = true;
    run->slot->ready++;
    if (jobs->ready_tail != NULL)
        jobs->ready_tail->next_ready = run;
    else
        jobs->ready_head = run;
    jobs->ready_tail = run;
    pthread_cond_signal(&jobs->wake);
}

/* A write_step write is committed (or refused), on the store's thread:
 * the run goes back to a worker, which carries on from there. */
static void step_written(void *ctx, int rc, const vg_error *err)
{
    job_run *run = ctx;
    vg_jobs *jobs = run->owner;
    if (rc == VG_STORE_ERROR)
        vg_log_error("job %s: cannot record its %s: %s", run->id,
                     run->step == STEP_STARTED ? "start"
                     : run->step == STEP_TASK  ? "task"
                                               : "success",
                     err->message);
    pthread_mutex_lock(&jobs->lock);
    run->write_rc = rc;
    ready_push_locked(jobs, run);
    if (--jobs->writes == 0)
        pthread_cond_broadcast(&jobs->settled);
    pthread_mutex_unlock(&jobs->lock);
}

/* The run waits for a write of its step: ready, so nothing else puts it
 * in line, and counted until step_written. */
static void mark_writing(vg_jobs *jobs, job_run *run, int step)
{
    run->step = step;
    pthread_mutex_lock(&jobs->lock);
    run->ready = true;
    jobs->writes++;
    pthread_mutex_unlock(&jobs->lock);
}

/*
 * Records an upstream run's step without waiting for the commit:
 * STEP_STARTED (queued -> running, "a submit to the provider may be under
 * way", one write) or STEP_TASK (the provider's task handle). A worker
 * thread that waited for each commit would forward a few hundred jobs a
 * second however fast the provider; this way one worker hands out many
 * writes, they share the store's group commits, and the run comes back
 * through the ready line (after_write) once its write is durable. The run
 * is marked ready meanwhile, so nothing else puts it in line.
 */
static void write_step(vg_jobs *jobs, job_run *run, int step,
                       const char *provider, const char *task)
{
    vg_store *store = jobs->store;
    vg_error err;
    vg_error_clear(&err);
    mark_writing(jobs, run, step);
    int rc;
    if (step == STEP_STARTED && store->ops->start_job_async != NULL)
        rc = store->ops->start_job_async(store, run->id, vg_now_ms(),
                                         provider, step_written, run, &err);
    else if (step == STEP_TASK && store->ops->set_upstream_async != NULL)
        rc = store->ops->set_upstream_async(store, run->id, provider, task,
                                            step_written, run, &err);
    else if (step == STEP_STARTED) {
        /* A backend without the asynchronous writes: wait here. */
        rc = store->ops->start_job(store, run->id, vg_now_ms(), &err);
        if (rc == VG_STORE_OK)
            rc = store->ops->set_upstream(store, run->id, provider, "-",
                                          &err);
        step_written(run, rc, &err);
        return;
    } else {
        rc = store->ops->set_upstream(store, run->id, provider, task, &err);
        step_written(run, rc, &err);
        return;
    }
    if (rc != VG_STORE_OK)
        step_written(run, rc, &err);
}

/* Records the run's success like write_step records its steps. */
static void write_success(vg_jobs *jobs, job_run *run, const vg_job *done)
{
    vg_store *store = jobs->store;
    vg_error err;
    vg_error_clear(&err);
    mark_writing(jobs, run, STEP_SUCCEEDED);
    int rc = store->ops->succeed_job_async != NULL
                 ? store->ops->succeed_job_async(store, done, step_written,
                                                 run, &err)
                 : store->ops->succeed_job(store, done, &err);
    if (store->ops->succeed_job_async == NULL || rc != VG_STORE_OK)
        step_written(run, rc, &err);
}

/* The engine's events arrive here, on its thread: queue them on the run
 * and put the run in the ready line for a worker. */
static void deliver_event(void *ctx, vg_upstream_event *ev)
{
    vg_jobs *jobs = ctx;
    pthread_mutex_lock(&jobs->lock);
    job_run *run = find_run(jobs, ev->job_id);
    if (run == NULL || run->phase != PHASE_UPSTREAM) {
        pthread_mutex_unlock(&jobs->lock);
        if (ev->file != NULL)
            unlink(ev->file);
        vg_upstream_event_free(ev);
        return;
    }
    if (run->launching) {
        run->launching = false;
        run->slot->launching--;
    }
    ev->next = NULL;
    if (run->events_tail != NULL)
        run->events_tail->next = ev;
    else
        run->events = ev;
    run->events_tail = ev;
    if (!run->ready) {
        run->ready = true;
        ready_push_locked(jobs, run);
    }
    pthread_mutex_unlock(&jobs->lock);
}

/* The routes of the run's model, as the engine takes them. */
static int routes_of(const job_run *run, vg_upstream_route *out)
{
    const vg_model *m = run->model;
    int n = 0;
    /* Two passes: the preferred provider's route, then the others in the
     * model's order. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->n_routes && n < VG_MAX_ROUTES; i++) {
            bool preferred = strcmp(m->routes[i].provider, run->preferred) == 0;
            if (preferred != (pass == 0))
                continue;
            out[n].provider = m->routes[i].provider;
            out[n].model = vg_route_model_id(&m->routes[i],
                                             run->spec.n_images > 0);
            n++;
        }
    }
    return n;
}

static void handle_events(vg_jobs *jobs, job_run *run);

/* The store has the job as running, "a submit may be under way": hand it
 * to the engine, then take whatever it has sent meanwhile. */
static void submit_upstream(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    pthread_mutex_lock(&jobs->lock);
    run->state = VG_JOB_RUNNING;
    run->phase = PHASE_UPSTREAM;
    notify_locked(run, false);
    pthread_mutex_unlock(&jobs->lock);
    /* Cancelled while its start was being committed: never sent
     * (handle_events retires it). */
    if (atomic_load(&run->cancel) != CANCEL_CLIENT) {
        vg_upstream_route routes[VG_MAX_ROUTES];
        int n = routes_of(run, routes);
        if (vg_upstream_submit(jobs->upstream, run->id, &run->spec, routes,
                               n, &err) != 0) {
            end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
            return;
        }
    }
    handle_events(jobs, run);
}

/* A run back from the store with its write_step write answered. */
static void after_write(vg_jobs *jobs, job_run *run)
{
    int step = run->step, rc = run->write_rc;
    run->step = STEP_NONE;
    if (step == STEP_SUCCEEDED) {
        succeeded(jobs, run, rc);
        return;
    }
    if (step == STEP_STARTED) {
        /* CONFLICT: cancelled while it waited in line. */
        if (rc != VG_STORE_OK)
            retire(jobs, run, VG_JOB_CANCELLED, true);
        else
            submit_upstream(jobs, run);
        return;
    }
    if (rc != VG_STORE_OK) {
        /* Cancelled meanwhile (or the store failed): the task must not
         * run on unpaid. */
        vg_upstream_cancel(jobs->upstream, run->id, true);
        retire(jobs, run, VG_JOB_CANCELLED, true);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    run->task_recorded = true;
    bool draining = jobs->draining != 0;
    pthread_mutex_unlock(&jobs->lock);
    /* Stopping: no polls; next_event parks the run, its task safe in the
     * store for the next start. */
    if (!draining)
        vg_upstream_continue(jobs->upstream, run->id);
    handle_events(jobs, run);
}

/* A downloaded result: check it is an MP4, drop the audio the client did
 * not ask for, then store it like a local render. */
static void finish_upstream(vg_jobs *jobs, job_run *run,
                            vg_upstream_event *ev)
{
    vg_error err;
    vg_mp4_info info;
    if (vg_mp4_inspect(ev->file, &info, &err) != 0) {
        vg_log_error("job %s: %s returned an unusable video: %s", run->id,
                     ev->provider, err.message);
        unlink(ev->file);
        end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
        return;
    }
    if (!run->spec.generate_audio && info.has_audio &&
        vg_mp4_strip_audio(ev->file, ev->file, &err) != 0) {
        vg_log_error("job %s: cannot remove the audio track: %s", run->id,
                     err.message);
        unlink(ev->file);
        end_run(jobs, run, VG_JOB_FAILED, "internal_error",
                "the audio track could not be removed");
        return;
    }
    vg_job done;
    memset(&done, 0, sizeof(done));
    done.seed = ev->seed >= 0 ? ev->seed : run->spec.seed;
    done.width = info.width;
    done.height = info.height;
    /* Completion tokens as the provider counts them where it does
     * (BytePlus), else none; the prompt as the provider counts it, else
     * estimated like the local renderer's. */
    done.completion_tokens =
        ev->completion_tokens >= 0 ? ev->completion_tokens : 0;
    if (ev->total_tokens >= 0)
        done.prompt_tokens = ev->total_tokens > done.completion_tokens
                                 ? ev->total_tokens - done.completion_tokens
                                 : 0;
    else
        done.prompt_tokens = vg_estimate_tokens(run->spec.prompt);
    store_video(jobs, run, ev->file, &done, ev);
}

/* Takes the run's next event; false when there is none: the run then
 * leaves the ready state, or, when a client cancelled it meanwhile (the
 * engine sends nothing more), is retired, and the caller must not touch
 * it again. */
static bool next_event(vg_jobs *jobs, job_run *run, vg_upstream_event **ev)
{
    bool cancelled = false, parked = false;
    pthread_mutex_lock(&jobs->lock);
    *ev = run->events;
    if (*ev != NULL) {
        run->events = (*ev)->next;
        if (run->events == NULL)
            run->events_tail = NULL;
    } else {
        run->ready = false;
        if (atomic_load(&run->cancel) == CANCEL_CLIENT) {
            retire_locked(jobs, run, VG_JOB_CANCELLED);
            cancelled = true;
        } else if (jobs->draining && run->task_recorded) {
            /* Stopping: the store has the task, the next start polls it
             * (vg_jobs_stop parks the others the same way). */
            vg_upstream_cancel(jobs->upstream, run->id, false);
            retire_locked(jobs, run, VG_JOB_RUNNING);
            parked = true;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    if (cancelled || parked)
        run_free(run, cancelled);
    return *ev != NULL;
}

/* A worker handles an upstream run's events in order. Returns once they
 * are all handled or the run has ended (and is freed). */
static void handle_events(vg_jobs *jobs, job_run *run)
{
    vg_upstream_event *ev;
    while (next_event(jobs, run, &ev)) {
        switch (ev->kind) {
        case VG_UPSTREAM_SUBMITTED:
            /* Recorded before the engine polls: it waits for
             * vg_upstream_continue (after_write). The run stays ready
             * until then, the events that come meanwhile kept. */
            vg_log_info("job %s: submitted to %s", run->id, ev->provider);
            write_step(jobs, run, STEP_TASK, ev->provider, ev->task);
            vg_upstream_event_free(ev);
            return;
        case VG_UPSTREAM_PROGRESS:
            report_progress(run, ev->progress, 100);
            vg_upstream_event_free(ev);
            break;
        case VG_UPSTREAM_DONE:
            finish_upstream(jobs, run, ev);
            vg_upstream_event_free(ev);
            return;
        case VG_UPSTREAM_FAILED:
            if (ev->error.status >= 500)
                vg_log_error("job %s failed: %s", run->id,
                             ev->error.message);
            end_run(jobs, run, VG_JOB_FAILED, ev->error.code,
                    ev->error.message);
            vg_upstream_event_free(ev);
            return;
        }
    }
}

bool vg_jobs_model_available(vg_jobs *jobs, const vg_model *model)
{
    for (size_t i = 0; i < model->n_routes; i++) {
        provider_slot *s = slot_named(jobs, model->routes[i].provider);
        if (s != NULL &&
            (!s->upstream || vg_upstream_available(jobs->upstream, s->name)))
            return true;
    }
    return false;
}

uint64_t vg_jobs_availability_version(vg_jobs *jobs)
{
    return jobs != NULL && jobs->upstream != NULL
               ? vg_upstream_availability_version(jobs->upstream)
               : 0;
}

json_t *vg_jobs_health(vg_jobs *jobs)
{
    return jobs != NULL && jobs->upstream != NULL
               ? vg_upstream_health(jobs->upstream)
               : json_object();
}

/* The slot a new run of the model waits in: the preferred provider's
 * when it can take work now, else its first route that can, else its
 * first route that exists. */
static provider_slot *slot_for_model(vg_jobs *jobs, const vg_model *m,
                                     const char *preferred)
{
    provider_slot *first = NULL;
    if (preferred != NULL && *preferred != '\0') {
        provider_slot *s = slot_named(jobs, preferred);
        if (s != NULL &&
            (!s->upstream || vg_upstream_available(jobs->upstream, s->name)))
            return s;
    }
    for (size_t i = 0; i < m->n_routes; i++) {
        provider_slot *s = slot_named(jobs, m->routes[i].provider);
        if (s == NULL)
            continue;
        if (!s->upstream || vg_upstream_available(jobs->upstream, s->name))
            return s;
        if (first == NULL)
            first = s;
    }
    return first;
}

/* The next queued run of a provider: see the aging rule in jobs.h. */
static job_run *next_queued(vg_jobs *jobs, provider_slot *s, int64_t now)
{
    job_run *d = s->queued[0].head, *f = s->queued[1].head;
    if (f == NULL || d == NULL)
        return d != NULL ? d : f;
    int64_t max_wait = (int64_t)jobs->config.flex_max_wait_s * 1000;
    /* "Submitted before" compares places in line, not creation times:
     * jobs created in the same millisecond still have an order. */
    if (now - f->queued_ms >= max_wait && f->seq < d->seq)
        return f;
    return d;
}

/* Takes the first run of the ready line; caller holds the lock. */
static job_run *ready_pop_locked(vg_jobs *jobs)
{
    job_run *ready = jobs->ready_head;
    jobs->ready_head = ready->next_ready;
    if (jobs->ready_head == NULL)
        jobs->ready_tail = NULL;
    ready->next_ready = NULL;
    ready->in_ready_line = false;
    ready->slot->ready--;
    jobs->ready_turns++;
    return ready; /* ready stays set while a worker handles it */
}

static job_run *pick_start(vg_jobs *jobs, int64_t now, int64_t *wait_until);

/* Finds a worker's next step; caller holds the lock. Sets *wait_until to
 * the earliest delay that ends, when nothing is due.
 *
 * Runs under way come first (their next step finishes a job that holds a
 * slot), but not always: while they keep the ready line full, jobs in
 * line would get no turn at all and wait for seconds. A start goes
 * before them once READY_TURNS_PER_START of theirs have gone by. */
static job_run *pick(vg_jobs *jobs, int64_t now, int64_t *wait_until)
{
    *wait_until = 0;
    if (jobs->ready_head != NULL && jobs->ready_turns < READY_TURNS_PER_START)
        return ready_pop_locked(jobs);
    job_run *run = pick_start(jobs, now, wait_until);
    if (run != NULL) {
        jobs->ready_turns = 0;
        return run;
    }
    return jobs->ready_head != NULL ? ready_pop_locked(jobs) : NULL;
}

/* The next job to start (from its line, or at the end of its delay). */
static job_run *pick_start(vg_jobs *jobs, int64_t now, int64_t *wait_until)
{
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        job_run *run = s->sleeping.head;
        if (run == NULL)
            continue;
        if (run->wake_ms <= now) {
            line_remove(&s->sleeping, run);
            run->phase = PHASE_EXECUTING;
            return run;
        }
        if (*wait_until == 0 || run->wake_ms < *wait_until)
            *wait_until = run->wake_ms;
    }
    if (jobs->draining)
        return NULL;
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        if (s->busy >= s->concurrency)
            continue;
        job_run *run = next_queued(jobs, s, now);
        if (run == NULL)
            continue;
        queue_drop(jobs, run);
        run->phase = PHASE_STARTING;
        s->busy++;
        jobs->busy++;
        if (s->upstream) {
            run->launching = true;
            s->launching++;
        }
        return run;
    }
    return NULL;
}

static bool refill_due(const vg_jobs *jobs);
static bool refill_due_at(const vg_jobs *jobs, int64_t *retry_at);
static void refill_line(vg_jobs *jobs);
static vg_submission *release_held_locked(vg_jobs *jobs, provider_slot *s,
                                          int64_t now);
static vg_submission *release_all_locked(vg_jobs *jobs, int64_t now,
                                         int64_t *next_at);
static void commit_released(vg_jobs *jobs, vg_submission *list);
static void *pacer_main(void *arg);

/* Whether a run sleeps out a delay; caller holds the lock. */
static bool any_sleeping(const vg_jobs *jobs)
{
    for (int i = 0; i < jobs->n_slots; i++)
        if (jobs->slots[i].sleeping.head != NULL)
            return true;
    return false;
}

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-worker");
    vg_jobs *jobs = arg;
    pthread_mutex_lock(&jobs->lock);
    while (!jobs->exiting) {
        if (refill_due(jobs)) {
            jobs->refilling = true;
            pthread_mutex_unlock(&jobs->lock);
            refill_line(jobs);
            pthread_mutex_lock(&jobs->lock);
            continue;
        }
        int64_t wait_until, now = vg_now_ms();
        job_run *run = pick(jobs, now, &wait_until);
        if (run == NULL) {
            /* Held submits that room lets through (cancels shortened a
             * line) commit now; the pacer sees to the deadlines. */
            int64_t hold_at;
            vg_submission *released = release_all_locked(jobs, now, &hold_at);
            if (released != NULL) {
                pthread_mutex_unlock(&jobs->lock);
                commit_released(jobs, released);
                pthread_mutex_lock(&jobs->lock);
                continue;
            }
            /* A store line waiting out its retry is a deadline too. */
            int64_t retry_at;
            refill_due_at(jobs, &retry_at);
            if (retry_at > 0 && (wait_until == 0 || retry_at < wait_until))
                wait_until = retry_at;
            if (wait_until == 0) {
                pthread_cond_wait(&jobs->wake, &jobs->lock);
            } else {
                struct timespec ts = {wait_until / 1000,
                                      (wait_until % 1000) * 1000000};
                pthread_cond_timedwait(&jobs->wake, &jobs->lock, &ts);
            }
            continue;
        }
        /* Wake-ups go to one worker each, not to all. The one woken may
         * have been the one waiting for the next delay to end, and the
         * line may be short enough to refill: another takes over. */
        if (any_sleeping(jobs) || refill_due(jobs))
            pthread_cond_signal(&jobs->wake);
        /* A worker's turn taken: the submits it held back may go. */
        vg_submission *released = release_held_locked(jobs, run->slot, now);
        pthread_mutex_unlock(&jobs->lock);
        commit_released(jobs, released);
        if (run->step != STEP_NONE)
            after_write(jobs, run);
        else if (run->phase == PHASE_STARTING)
            begin(jobs, run);
        else if (run->phase == PHASE_UPSTREAM)
            handle_events(jobs, run);
        else
            execute(jobs, run);
        pthread_mutex_lock(&jobs->lock);
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

/* ---- providers --------------------------------------------------------- */

static int add_slot(vg_jobs *jobs, const char *name, vg_provider *provider,
                    int concurrency, int delay_ms)
{
    provider_slot *s = &jobs->slots[jobs->n_slots++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->provider = provider;
    s->concurrency = concurrency;
    s->delay_ms = delay_ms;
    return 0;
}

static provider_slot *slot_named(vg_jobs *jobs, const char *name)
{
    for (int i = 0; i < jobs->n_slots; i++)
        if (strcmp(jobs->slots[i].name, name) == 0)
            return &jobs->slots[i];
    return NULL;
}

static int start_providers(vg_jobs *jobs, vg_error *err)
{
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores <= 0)
        cores = 1;
    const vg_provider_config *local = NULL, *replay = NULL;
    vg_upstream_provider upstreams[VG_MAX_PROVIDERS];
    const vg_provider_config *upstream_configs[VG_MAX_PROVIDERS];
    const vg_adapter *adapters[VG_MAX_PROVIDERS];
    int n_upstreams = 0;
    for (int i = 0; i < jobs->config.n_providers; i++) {
        const vg_provider_config *pc = &jobs->config.providers[i];
        const char *type = pc->type[0] ? pc->type : pc->name;
        const vg_adapter *adapter = vg_adapter_find(type);
        if (strcmp(pc->name, "local") == 0)
            local = pc;
        else if (strcmp(pc->name, "replay") == 0)
            replay = pc;
        else if (adapter != NULL && n_upstreams < VG_MAX_PROVIDERS) {
            adapters[n_upstreams] = adapter;
            upstream_configs[n_upstreams++] = pc;
        }
        else
            return vg_error_set(err, 0, "config_error", "providers",
                                "unknown provider \"%s\"", pc->name);
    }
    /* Renders are CPU-bound: one per core unless told otherwise. */
    int renders = jobs->config.render_workers > 0
                      ? jobs->config.render_workers
                      : cores;
    if (local != NULL && local->concurrency > 0)
        renders = local->concurrency;
    add_slot(jobs, "local", vg_provider_local_new(), renders,
             local != NULL ? local->delay_ms : 0);
    if (replay != NULL) {
        vg_provider *p = vg_provider_replay_new(replay->file, err);
        if (p == NULL)
            return -1;
        add_slot(jobs, "replay", p,
                 replay->concurrency > 0 ? replay->concurrency : 1000,
                 replay->delay_ms);
    }
    for (int i = 0; i < n_upstreams; i++) {
        const vg_provider_config *pc = upstream_configs[i];
        vg_upstream_provider *u = &upstreams[i];
        memset(u, 0, sizeof(*u));
        snprintf(u->name, sizeof(u->name), "%s", pc->name);
        u->adapter = adapters[i];
        snprintf(u->base_url, sizeof(u->base_url), "%s", pc->base_url);
        const char *key = pc->api_key_env[0] ? getenv(pc->api_key_env)
                                             : NULL;
        snprintf(u->api_key, sizeof(u->api_key), "%s",
                 key != NULL ? key : "");
        u->request_timeout_s = pc->request_timeout_s;
        u->connect_timeout_s = pc->connect_timeout_s;
        u->download_timeout_s = pc->download_timeout_s;
        u->poll_ms = pc->poll_interval_ms;
        u->poll_max_ms = pc->poll_max_interval_ms;
        u->job_timeout_s = pc->job_timeout_s;
        u->max_video_bytes = pc->max_video_bytes;
        u->breaker_failures = pc->breaker_failures;
        u->breaker_open_s = pc->breaker_open_s;
        u->allow_private = pc->allow_private_addresses;
        u->delete_after_store = pc->delete_after_store;
        snprintf(u->storage_uri, sizeof(u->storage_uri), "%s",
                 pc->storage_uri);
        snprintf(u->storage_url, sizeof(u->storage_url), "%s",
                 pc->storage_url);
        snprintf(u->region, sizeof(u->region), "%s", pc->region);
        snprintf(u->project, sizeof(u->project), "%s", pc->project);
        u->image_urls = pc->image_urls;
        add_slot(jobs, pc->name, NULL,
                 pc->concurrency > 0 ? pc->concurrency : 1000, 0);
        jobs->slots[jobs->n_slots - 1].upstream = true;
        jobs->slots[jobs->n_slots - 1].engine_index = i;
        if (u->api_key[0] != '\0')
            vg_log_info("provider %s (%s at %s) is configured", u->name,
                        u->adapter->name, u->base_url);
    }
    if (n_upstreams > 0) {
        jobs->upstream = vg_upstream_start(upstreams, n_upstreams,
                                           jobs->tmp_dir, deliver_event,
                                           jobs, err);
        if (jobs->upstream == NULL)
            return -1;
    }
    return 0;
}

/* ---- start and recovery ------------------------------------------------ */

vg_jobs *vg_jobs_start(vg_store *store, vg_blob *blob,
                       const vg_jobs_config *config, vg_error *err)
{
    vg_jobs *jobs = calloc(1, sizeof(*jobs));
    if (jobs == NULL || vg_table_init(&jobs->runs, RUN_BUCKETS) != 0) {
        free(jobs);
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    jobs->store = store;
    jobs->blob = blob;
    jobs->config = *config;
    if (jobs->config.max_attempts <= 0)
        jobs->config.max_attempts = 3;
    if (jobs->config.queued_in_memory <= 0)
        jobs->config.queued_in_memory = 4096;
    snprintf(jobs->uploads_dir, sizeof(jobs->uploads_dir), "%s/uploads",
             config->data_dir);
    snprintf(jobs->tmp_dir, sizeof(jobs->tmp_dir), "%s/tmp",
             config->data_dir);
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    pthread_cond_init(&jobs->settled, NULL);
    pthread_cond_init(&jobs->held_wake, NULL);
    if (make_dir(jobs->uploads_dir, err) != 0 ||
        make_dir(jobs->tmp_dir, err) != 0 ||
        start_providers(jobs, err) != 0) {
        vg_jobs_free(jobs);
        return NULL;
    }
    /* Threads: one per local render slot, plus IO_WORKERS for everything
     * that only waits on the disk or the store (starts, replays, storing
     * results, whose fsyncs the file system batches when several wait at
     * once), so that renders filling every slot never delay those. */
    int workers = jobs->slots[0].concurrency + IO_WORKERS;
    jobs->threads = calloc((size_t)workers, sizeof(pthread_t));
    for (int i = 0; jobs->threads != NULL && i < workers; i++) {
        if (pthread_create(&jobs->threads[i], NULL, worker_main, jobs) != 0)
            break;
        jobs->n_threads++;
    }
    if (jobs->n_threads == 0) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "cannot start worker threads");
        vg_jobs_free(jobs);
        return NULL;
    }
    if (jobs->config.dispatch_backlog > 0) {
        if (pthread_create(&jobs->pacer, NULL, pacer_main, jobs) != 0) {
            vg_error_set(err, 500, "internal_error", NULL,
                         "cannot start the pacer thread");
            vg_jobs_free(jobs);
            return NULL;
        }
        jobs->has_pacer = true;
    }
    return jobs;
}

/* Builds a run from a job's stored request; 400/500 errors say why the
 * job cannot run (its model is gone, an image file is missing). */
static job_run *run_from_job(vg_jobs *jobs, const vg_job *job,
                             vg_error *err)
{
    json_error_t jerr;
    json_t *req = json_loads(job->request_json, 0, &jerr);
    const char *prompt = NULL, *model = NULL, *res = NULL, *aspect = NULL,
               *tier = NULL;
    int duration = 0, fps = 0, audio = 0, fixed = 0;
    json_int_t seed = 0;
    json_t *images = NULL;
    if (req == NULL ||
        json_unpack_ex(req, &jerr, 0,
                       "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:i, s:I, "
                       "s:o}",
                       "prompt", &prompt, "model", &model, "resolution",
                       &res, "aspect_ratio", &aspect, "duration", &duration,
                       "generate_audio", &audio, "camera_fixed", &fixed,
                       "service_tier", &tier, "fps", &fps, "seed", &seed,
                       "images", &images) != 0 ||
        !json_is_array(images) || json_array_size(images) > VG_MAX_IMAGES) {
        json_decref(req);
        vg_error_set(err, 500, "internal_error", NULL,
                     "the stored request cannot be read: %s", jerr.text);
        return NULL;
    }
    job_run *run = calloc(1, sizeof(*run));
    const vg_model *m = vg_catalog_find(jobs->config.catalog, model);
    const char *preferred = json_string_value(json_object_get(req, "provider"));
    if (run != NULL && preferred != NULL)
        snprintf(run->preferred, sizeof(run->preferred), "%s", preferred);
    /* A job whose task is recorded stays with the provider that has it. */
    bool resumes = job->upstream_task[0] != '\0' &&
                   strcmp(job->upstream_task, "-") != 0;
    provider_slot *slot = m == NULL ? NULL
                          : resumes ? slot_named(jobs, job->provider)
                                    : slot_for_model(jobs, m, preferred);
    vg_job_spec *spec = run != NULL ? &run->spec : NULL;
    if (run == NULL) {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        goto fail;
    }
    if (m == NULL) {
        vg_error_set(err, 400, "model_unavailable", "model",
                     "the model \"%s\" is no longer served", model);
        goto fail;
    }
    if (slot == NULL) {
        vg_error_set(err, 503, "no_provider", "model",
                     "no provider \"%s\" is configured for the model "
                     "\"%s\"",
                     m->provider, model);
        goto fail;
    }
    memcpy(run->id, job->id, sizeof(run->id));
    run->home = slot_named(jobs, job->provider);
    run->owner = jobs;
    run->slot = slot;
    run->model = m;
    run->tier = strcmp(tier, "flex") == 0;
    run->queued_ms = job->created_ms;
    run->state = VG_JOB_QUEUED;
    run->has_webhook = job->webhook_url != NULL && *job->webhook_url;
    run->prompt = strdup(prompt);
    spec->prompt = run->prompt;
    spec->model = m;
    if (vg_resolution_parse(res, &spec->resolution) != 0 ||
        vg_aspect_parse(aspect, &spec->aspect) != 0) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "the stored request has an unknown shape");
        goto fail;
    }
    spec->width = job->width;
    spec->height = job->height;
    spec->duration = duration;
    spec->fps = fps;
    spec->generate_audio = audio;
    spec->camera_fixed = fixed;
    spec->tier = run->tier ? VG_TIER_FLEX : VG_TIER_DEFAULT;
    spec->seed = (uint32_t)seed;
    for (size_t i = 0; i < json_array_size(images); i++) {
        const char *path = json_string_value(json_array_get(images, i));
        if (path == NULL || access(path, R_OK) != 0) {
            vg_error_set(err, 500, "internal_error", "files",
                         "a reference image of the job is missing");
            goto fail;
        }
        run->image_paths[i] = strdup(path);
        spec->image_paths[i] = run->image_paths[i];
        spec->n_images = (int)i + 1;
        /* Providers that fetch images by URL get a signed link to it;
         * the engine drops it for those that take images inline. */
        char url[1024];
        const char *name = strrchr(path, '/');
        if (slot->upstream && jobs->config.sign_upload != NULL &&
            jobs->config.sign_upload(jobs->config.ctx,
                                     name != NULL ? name + 1 : path, url,
                                     sizeof(url)) == 0) {
            run->image_urls[i] = strdup(url);
            spec->image_urls[i] = run->image_urls[i];
        }
    }
    json_decref(req);
    return run;
fail:
    json_decref(req);
    if (run != NULL)
        run_free(run, false);
    return NULL;
}

/* Puts a run in the table and its line. False when it is not taken (the
 * caller frees it): stopping, the run already here (loaded by a refill
 * before its submit got this far), or, unless it is being loaded, its
 * provider's line in memory full or older jobs of its provider waiting
 * in the store only: it waits in the store then, queued, for a refill.
 * Each provider has its own line, so one provider's backlog never holds
 * up another's jobs. */
static bool enqueue(vg_jobs *jobs, job_run *run, bool loading)
{
    pthread_mutex_lock(&jobs->lock);
    if (jobs->draining || find_run(jobs, run->id) != NULL) {
        pthread_mutex_unlock(&jobs->lock);
        return false;
    }
    store_line *home = run->home != NULL ? &run->home->stored : &jobs->strays;
    if (!loading && (home->waiting > 0 ||
                     run->slot->n_queued >= jobs->config.queued_in_memory)) {
        /* No worker to wake: a line becomes due when it is down to half
         * (the picking worker passes that on) or its retry ends (a
         * worker's deadline), not when a job is left. */
        home->waiting++;
        pthread_mutex_unlock(&jobs->lock);
        return false;
    }
    vg_table_insert(&jobs->runs, &run->in_table, run->id);
    run->seq = jobs->next_seq++;
    queue_add(jobs, run);
    pthread_cond_signal(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
    return true;
}

/* Whether the store line of slot (NULL: the strays) should be loaded
 * from now. Caller holds the lock. */
static bool line_due(const vg_jobs *jobs, const provider_slot *slot,
                     int64_t now)
{
    const store_line *line = slot != NULL ? &slot->stored : &jobs->strays;
    return line->waiting > 0 && line->retry_ms <= now &&
           (slot == NULL ||
            slot->n_queued <= jobs->config.queued_in_memory / 2);
}

/* Whether a worker should load queued jobs from the store now; if not,
 * *retry_at (when not NULL) is when a line that waits out a retry is
 * due (0: none). Caller holds the lock. */
static bool refill_due_at(const vg_jobs *jobs, int64_t *retry_at)
{
    if (retry_at != NULL)
        *retry_at = 0;
    if (jobs->refilling || jobs->draining)
        return false;
    int64_t now = vg_now_ms();
    for (int i = 0; i <= jobs->n_slots; i++) {
        const provider_slot *slot = i < jobs->n_slots ? &jobs->slots[i] : NULL;
        const store_line *line = slot != NULL ? &slot->stored : &jobs->strays;
        if (line_due(jobs, slot, now))
            return true;
        if (retry_at != NULL && line->waiting > 0 && line->retry_ms > now &&
            (*retry_at == 0 || line->retry_ms < *retry_at))
            *retry_at = line->retry_ms;
    }
    return false;
}

static bool refill_due(const vg_jobs *jobs)
{
    return refill_due_at(jobs, NULL);
}

typedef struct refill {
    vg_jobs *jobs;
    bool strays; /* listing every provider's jobs for the strays */
    int rows;    /* jobs the store listed */
    int loaded;  /* of them, put in a line */
    int left;    /* of them, not here, and not loaded for want of room */
} refill;

/* A stored job whose run cannot be built (its model is gone, an image is
 * missing) fails, refunded. */
static int run_failed_to_load(vg_jobs *jobs, const vg_job *job,
                              const vg_error *err)
{
    vg_log_error("job %s cannot run: %s", job->id, err->message);
    if (end_in_store(jobs, job->id, VG_JOB_FAILED, err->code,
                     err->message) == VG_STORE_OK &&
        job->webhook_url != NULL && *job->webhook_url)
        poke_webhooks(jobs);
    return VG_STORE_OK;
}

static int load_queued(void *ctx, const vg_job *job)
{
    refill *r = ctx;
    vg_jobs *jobs = r->jobs;
    r->rows++;
    /* The strays' listing has every provider's jobs; the others are
     * their providers' to load. */
    if (r->strays && slot_named(jobs, job->provider) != NULL)
        return VG_STORE_OK;
    pthread_mutex_lock(&jobs->lock);
    bool here = find_run(jobs, job->id) != NULL;
    pthread_mutex_unlock(&jobs->lock);
    if (here)
        return VG_STORE_OK;
    vg_error err;
    job_run *run = run_from_job(jobs, job, &err);
    if (run == NULL)
        return run_failed_to_load(jobs, job, &err);
    /* It runs where its model is served now, which has room or not. */
    pthread_mutex_lock(&jobs->lock);
    bool room = run->slot->n_queued < jobs->config.queued_in_memory;
    pthread_mutex_unlock(&jobs->lock);
    if (room && enqueue(jobs, run, true)) {
        r->loaded++;
        return VG_STORE_OK;
    }
    if (!room)
        r->left++;
    run_free(run, false);
    return VG_STORE_OK;
}

/* Loads the oldest jobs of one provider's store line (taking turns)
 * that wait in the store only, up to its line's bound. The store lists
 * the oldest queued jobs, those here included (in line, or starting:
 * queued in the store until their start is committed), so it is asked
 * for that many more. */
static void refill_line(vg_jobs *jobs)
{
    pthread_mutex_lock(&jobs->lock);
    int64_t now = vg_now_ms();
    provider_slot *slot = NULL;
    bool found = false;
    for (int k = 0; k < jobs->n_slots && !found; k++) {
        int i = (jobs->refill_next + k) % jobs->n_slots;
        if (line_due(jobs, &jobs->slots[i], now)) {
            slot = &jobs->slots[i];
            jobs->refill_next = (i + 1) % jobs->n_slots;
            found = true;
        }
    }
    if (!found && !line_due(jobs, NULL, now)) {
        /* No longer due (a line grew past half meanwhile). */
        jobs->refilling = false;
        pthread_mutex_unlock(&jobs->lock);
        return;
    }
    store_line *line = slot != NULL ? &slot->stored : &jobs->strays;
    int64_t waiting = line->waiting;
    int room = jobs->config.queued_in_memory -
               (slot != NULL ? slot->n_queued : 0);
    if (room < 1)
        room = 1;
    int limit = room + jobs->queued_runs + jobs->busy;
    pthread_mutex_unlock(&jobs->lock);

    refill r = {jobs, slot == NULL, 0, 0, 0};
    vg_error err;
    int rc = jobs->store->ops->list_queued_jobs(
        jobs->store, slot != NULL ? slot->name : NULL, limit, load_queued,
        &r, &err);
    if (rc != VG_STORE_OK)
        vg_log_error("cannot load queued jobs: %s", err.message);

    pthread_mutex_lock(&jobs->lock);
    /* Jobs left in the store since the listing began are counted on top
     * (one may also have been listed: a later refill finds it here). */
    int64_t since = line->waiting - waiting;
    if (rc == VG_STORE_OK && r.rows < limit)
        line->waiting = r.left + since; /* it listed them all */
    else if (rc == VG_STORE_OK)
        line->waiting = (waiting - r.loaded > 1 ? waiting - r.loaded : 1) +
                        since;
    /* Nothing loaded (no room where they run, or the store failed): not
     * again at once. */
    if (r.loaded == 0 && line->waiting > 0)
        line->retry_ms = vg_now_ms() + REFILL_RETRY_MS;
    jobs->refilling = false;
    pthread_cond_broadcast(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
}

/* A job an upstream provider has: poll it again, never submit again. */
static void resume_upstream(vg_jobs *jobs, const vg_job *job)
{
    vg_error err;
    if (strcmp(job->upstream_task, "-") == 0) {
        /* Stopped between sending the submit and recording its answer:
         * the provider may have the job or not, and cannot be asked. */
        vg_log_error("job %s: vidgate stopped while submitting it to %s; "
                     "not submitting it again (check that provider for a "
                     "stray task)",
                     job->id, job->provider);
        if (end_in_store(jobs, job->id, VG_JOB_FAILED, "interrupted",
                         "vidgate stopped while submitting the job to the "
                         "provider; it was not submitted again so that it "
                         "cannot run twice. The credits were refunded") ==
                VG_STORE_OK &&
            job->webhook_url != NULL && *job->webhook_url)
            poke_webhooks(jobs);
        return;
    }
    job_run *run = run_from_job(jobs, job, &err);
    if (run != NULL && (!run->slot->upstream || jobs->upstream == NULL)) {
        run_free(run, false);
        run = NULL;
        vg_error_set(&err, 503, "no_provider", NULL,
                     "the provider \"%s\" that has the job is no longer "
                     "configured",
                     job->provider);
    }
    if (run == NULL) {
        vg_log_error("job %s cannot be resumed: %s", job->id, err.message);
        if (end_in_store(jobs, job->id, VG_JOB_FAILED, err.code,
                         err.message) == VG_STORE_OK &&
            job->webhook_url != NULL && *job->webhook_url)
            poke_webhooks(jobs);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    run->state = VG_JOB_RUNNING;
    run->phase = PHASE_UPSTREAM;
    run->task_recorded = true;
    run->progress = job->progress < 99 ? job->progress : 99;
    run->stored_progress = run->progress;
    run->seq = jobs->next_seq++;
    run->slot->busy++;
    jobs->busy++;
    vg_table_insert(&jobs->runs, &run->in_table, run->id);
    pthread_mutex_unlock(&jobs->lock);
    vg_log_info("job %s: polling its task at %s again", job->id,
                job->provider);
    if (vg_upstream_resume(jobs->upstream, job->id, job->provider,
                           job->upstream_task, &err) != 0)
        end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
}

static int recover_one(void *ctx, const vg_job *job)
{
    vg_jobs *jobs = ctx;
    vg_error err;
    if (job->state == VG_JOB_RUNNING && job->upstream_task[0] != '\0') {
        resume_upstream(jobs, job);
        return 0;
    }
    if (job->state == VG_JOB_RUNNING) {
        if (job->attempts >= jobs->config.max_attempts) {
            vg_log_error("job %s was interrupted %d times: giving up",
                         job->id, job->attempts);
            if (end_in_store(jobs, job->id, VG_JOB_FAILED, "interrupted",
                             "the job was interrupted by restarts too "
                             "often; the credits were refunded") ==
                    VG_STORE_OK &&
                job->webhook_url != NULL && *job->webhook_url)
                poke_webhooks(jobs);
            return 0;
        }
        if (jobs->store->ops->requeue_job(jobs->store, job->id, &err) ==
            VG_STORE_ERROR) {
            vg_log_error("job %s: cannot queue it again: %s", job->id,
                         err.message);
            return 0;
        }
        vg_log_warn("job %s was interrupted by a restart: starting over",
                    job->id);
    }
    job_run *run = run_from_job(jobs, job, &err);
    if (run == NULL)
        return run_failed_to_load(jobs, job, &err);
    if (!enqueue(jobs, run, false))
        run_free(run, false);
    return 0;
}

int vg_jobs_recover(vg_jobs *jobs, vg_error *err)
{
    int rc = jobs->store->ops->list_unfinished_jobs(jobs->store, recover_one,
                                                    jobs, err);
    return rc == VG_STORE_OK ? 0 : -1;
}

/* ---- submit and cancel ------------------------------------------------- */

static json_t *request_doc(const vg_video_request *req, int64_t seed)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:i, s:I, s:[]}",
        "prompt", req->prompt, "model", req->model_name, "resolution",
        vg_resolution_name(req->resolution), "aspect_ratio",
        vg_aspect_name(req->aspect), "duration", req->duration,
        "generate_audio", req->generate_audio, "camera_fixed",
        req->camera_fixed, "service_tier",
        req->tier == VG_TIER_FLEX ? "flex" : "default", "fps", req->fps,
        "seed", (json_int_t)seed, "images");
    if (doc != NULL && req->provider != NULL)
        json_object_set_new(doc, "provider", json_string(req->provider));
    return doc;
}

/* What makes two creates "the same request" for an idempotency key: the
 * validated fields (seed as asked, so -1 stays -1), the webhook and the
 * images' contents, whatever the body's encoding. */
static int request_hash(const vg_video_request *req, const char *webhook,
                        char out[65], vg_error *err)
{
    json_t *doc = request_doc(req, req->seed);
    json_t *images = json_object_get(doc, "images");
    for (int i = 0; i < req->n_images; i++) {
        char digest[65];
        if (vg_sha256_file_hex(req->images[i].path, digest) != 0) {
            json_decref(doc);
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot read an uploaded image");
        }
        json_array_append_new(images, json_string(digest));
    }
    json_object_set_new(doc, "webhook_url",
                        webhook ? json_string(webhook) : json_null());
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    vg_sha256_hex(text, out);
    free(text);
    return 0;
}

/* Moves the request's images to the job's own names, listed in doc. */
static int adopt_images(vg_jobs *jobs, const char *job_id,
                        vg_video_request *req, json_t *doc,
                        char **moved, vg_error *err)
{
    json_t *images = json_object_get(doc, "images");
    for (int i = 0; i < req->n_images; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s-%d", jobs->uploads_dir, job_id,
                 i);
        if (rename(req->images[i].path, path) != 0)
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot keep an uploaded image: %s",
                                strerror(errno));
        moved[i] = strdup(path);
        json_array_append_new(images, json_string(path));
    }
    return 0;
}

static void insufficient(vg_jobs *jobs, const char *account_id,
                         int64_t price, vg_error *err)
{
    vg_account account;
    vg_error ignored;
    int64_t balance = 0;
    if (jobs->store->ops->get_account(jobs->store, account_id, &account,
                                      &ignored) == 0)
        balance = account.balance;
    vg_error_set(err, 403, "insufficient_credits", NULL,
                 "this video costs %.3f credits but the balance is %.3f",
                 (double)price / 1000.0, (double)balance / 1000.0);
}

struct vg_submission {
    vg_jobs *jobs;
    vg_video_request *req;
    char account_id[37];
    vg_job job;
    vg_job existing;
    char hash[65];
    vg_job_create create;
    char *idempotency_key;
    char *moved[VG_MAX_IMAGES];
    vg_error err;
    int rc;
    void (*done)(void *ctx);
    void *ctx;
    /* SUB_COMMITTING until the commit's answer, then SUB_COMMITTED; or
     * SUB_ABANDONED when the caller went away first. */
    atomic_int phase;
    /* The slot it is paced by (NULL: none); while held, its place in the
     * slot's held line and when the hold runs out. Under jobs->lock. */
    provider_slot *home;
    vg_submission *held_prev, *held_next;
    bool held;
    int64_t held_until;
};

enum { SUB_COMMITTING, SUB_COMMITTED, SUB_ABANDONED };

/* Finishes a submission nobody waits for: queues the committed job. */
static void finish_abandoned(vg_jobs *jobs, vg_submission *sub)
{
    vg_job out;
    bool replayed;
    vg_error err;
    sub->req = NULL; /* the caller's request may be gone */
    if (vg_jobs_submit_finish(jobs, sub, &out, &replayed, &err) == 0)
        vg_job_clear(&out);
}

static void submission_free(vg_submission *sub, bool delete_images);
static void held_remove_locked(vg_submission *sub);

void vg_jobs_submit_abandon(vg_jobs *jobs, vg_submission *sub)
{
    if (sub == NULL)
        return;
    /* Still held: never committed, so nothing was charged and there is
     * no job to run; it ends here. */
    pthread_mutex_lock(&jobs->lock);
    bool held = sub->held;
    if (held)
        held_remove_locked(sub);
    pthread_mutex_unlock(&jobs->lock);
    if (held) {
        submission_free(sub, true);
        return;
    }
    sub->req = NULL;
    if (atomic_exchange(&sub->phase, SUB_ABANDONED) == SUB_COMMITTED)
        finish_abandoned(jobs, sub);
}

static void submission_free(vg_submission *sub, bool delete_images)
{
    for (int i = 0; i < VG_MAX_IMAGES; i++) {
        if (delete_images && sub->moved[i] != NULL)
            unlink(sub->moved[i]);
        free(sub->moved[i]);
    }
    vg_job_clear(&sub->job);
    vg_job_clear(&sub->existing);
    free(sub->idempotency_key);
    free(sub);
}

static void on_created(void *ctx, int rc)
{
    vg_submission *sub = ctx;
    sub->rc = rc;
    /* Abandoned while committing: finished here, on the committing
     * thread (rare: the caller is normally woken below). */
    if (atomic_exchange(&sub->phase, SUB_COMMITTED) == SUB_ABANDONED) {
        finish_abandoned(sub->jobs, sub);
        return;
    }
    sub->done(sub->ctx);
}

/* ---- intake pacing ----------------------------------------------------- */

/* The slot's work that waits for vidgate rather than for its provider:
 * its jobs that could start now (it has room for them), queued here or in
 * the store or being committed; those taken from the line whose create
 * the engine has not had answered yet; its running jobs whose next step
 * is a worker's (a result to store, a write to follow up); and the calls
 * the engine has lined up for its provider (polls, downloads) behind the
 * transfers in flight. All but the first keep intake paced when the
 * workers or the engine fall behind: such jobs hold slots, and the room
 * left would otherwise look like a provider at its concurrency. A job
 * can count twice (launching and back in the ready line); the figure is
 * a threshold, not an account. */
static int64_t undispatched_locked(const vg_jobs *jobs, const provider_slot *s)
{
    int64_t room = s->concurrency - s->busy;
    int64_t waiting = s->n_queued + s->stored.waiting + s->admitting;
    int64_t lined = s->upstream && jobs->upstream != NULL
                        ? vg_upstream_lined(jobs->upstream, s->engine_index)
                        : 0;
    return s->ready + s->launching + lined +
           (room <= 0 ? 0 : waiting < room ? waiting : room);
}

/* Whether a new submission for s waits before its commit: dispatch is
 * behind (or others wait already, and it goes after them). */
static bool must_hold_locked(const vg_jobs *jobs, const provider_slot *s)
{
    int backlog = jobs->config.dispatch_backlog;
    return s != NULL && backlog > 0 && !jobs->draining &&
           (s->held_head != NULL || undispatched_locked(jobs, s) >= backlog);
}

/* sub waits at the end of its slot's held line, at most
 * DISPATCH_HOLD_MAX_MS. */
static void held_append_locked(vg_jobs *jobs, vg_submission *sub)
{
    provider_slot *s = sub->home;
    sub->held = true;
    sub->held_until = vg_now_ms() + DISPATCH_HOLD_MAX_MS;
    sub->held_next = NULL;
    sub->held_prev = s->held_tail;
    if (s->held_tail != NULL)
        s->held_tail->held_next = sub;
    else
        s->held_head = sub;
    s->held_tail = sub;
    /* The pacer must know the hold's deadline. */
    if (s->held_head == sub)
        pthread_cond_signal(&jobs->held_wake);
}

static void held_remove_locked(vg_submission *sub)
{
    provider_slot *s = sub->home;
    if (sub->held_prev != NULL)
        sub->held_prev->held_next = sub->held_next;
    else
        s->held_head = sub->held_next;
    if (sub->held_next != NULL)
        sub->held_next->held_prev = sub->held_prev;
    else
        s->held_tail = sub->held_prev;
    sub->held_prev = sub->held_next = NULL;
    sub->held = false;
}

/* Takes from s's held line, oldest first, the submissions that may
 * commit now (dispatch caught up, the hold ran out, or the server
 * drains), as a list through held_next. */
static vg_submission *release_held_locked(vg_jobs *jobs, provider_slot *s,
                                          int64_t now)
{
    vg_submission *list = NULL, **tail = &list;
    while (s->held_head != NULL) {
        vg_submission *sub = s->held_head;
        if (!jobs->draining && sub->held_until > now &&
            undispatched_locked(jobs, s) >= jobs->config.dispatch_backlog)
            break;
        held_remove_locked(sub);
        s->admitting++;
        *tail = sub;
        tail = &sub->held_next;
    }
    return list;
}

/* release_held_locked over every slot; *next_at: when the next hold
 * still in place runs out (0: none). */
static vg_submission *release_all_locked(vg_jobs *jobs, int64_t now,
                                         int64_t *next_at)
{
    vg_submission *list = NULL, **tail = &list;
    *next_at = 0;
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        if (s->held_head == NULL)
            continue;
        *tail = release_held_locked(jobs, s, now);
        while (*tail != NULL)
            tail = &(*tail)->held_next;
        if (s->held_head != NULL &&
            (*next_at == 0 || s->held_head->held_until < *next_at))
            *next_at = s->held_head->held_until;
    }
    return list;
}

static void on_created(void *ctx, int rc);

/* Queues the job's creation with the store; -1 with sub->err when it
 * cannot be queued (on_created not called). */
static int commit_submission(vg_jobs *jobs, vg_submission *sub)
{
    vg_store *store = jobs->store;
    /* A held job is created when it is let through. */
    sub->job.created_ms = vg_now_ms();
    if (store->ops->create_job_async == NULL) {
        /* A backend without it: commit here, report at once. */
        on_created(sub, store->ops->create_job(store, &sub->job, &sub->create,
                                               &sub->existing, &sub->err));
        return 0;
    }
    return store->ops->create_job_async(store, &sub->job, &sub->create,
                                        &sub->existing, &sub->err, on_created,
                                        sub) == VG_STORE_OK
               ? 0
               : -1;
}

/* Commits released submissions; a failure to queue the commit reaches
 * the caller through its done, like the commit's own failures. */
static void commit_released(vg_jobs *jobs, vg_submission *list)
{
    while (list != NULL) {
        vg_submission *sub = list;
        list = sub->held_next; /* sub may be finished and freed below */
        sub->held_next = NULL;
        if (commit_submission(jobs, sub) != 0)
            on_created(sub, VG_STORE_ERROR);
    }
}

/* The pacer: lets held submissions through once their hold runs out,
 * since the workers that would otherwise may all be stuck (in a slow
 * disk, a slow store): that is what the hold's limit is for. */
static void *pacer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-pacer");
    vg_jobs *jobs = arg;
    pthread_mutex_lock(&jobs->lock);
    while (!jobs->exiting) {
        int64_t next_at;
        vg_submission *released =
            release_all_locked(jobs, vg_now_ms(), &next_at);
        if (released != NULL) {
            pthread_mutex_unlock(&jobs->lock);
            commit_released(jobs, released);
            pthread_mutex_lock(&jobs->lock);
            continue;
        }
        if (next_at == 0) {
            pthread_cond_wait(&jobs->held_wake, &jobs->lock);
        } else {
            /* Work that waits may shrink with no worker moving (a cancel
             * shortens a line, the engine gets through its lined-up
             * calls): while submits are held, look again often. */
            int64_t soon = vg_now_ms() + DISPATCH_RECHECK_MS;
            if (next_at > soon)
                next_at = soon;
            /* vg_now_ms is the wall clock, which the condition waits on. */
            struct timespec ts = {next_at / 1000, (next_at % 1000) * 1000000};
            pthread_cond_timedwait(&jobs->held_wake, &jobs->lock, &ts);
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

/* A submission's commit has been answered: it no longer counts as
 * undispatched work of its slot (its job, if any, is queued now). */
static void admitted(vg_jobs *jobs, provider_slot *home)
{
    if (home == NULL)
        return;
    pthread_mutex_lock(&jobs->lock);
    home->admitting--;
    pthread_mutex_unlock(&jobs->lock);
}

int vg_jobs_submit_start(vg_jobs *jobs, const vg_principal *principal,
                         vg_video_request *req, const vg_submit *opts,
                         void (*done)(void *ctx), void *ctx,
                         vg_submission **out, vg_error *err)
{
    static const vg_submit none = {NULL, NULL, 0};
    if (opts == NULL)
        opts = &none;
    /* Refused before any money moves: no route of the model can take
     * work now (no key configured, or every circuit open). */
    if (!vg_jobs_model_available(jobs, req->model))
        return vg_error_set(err, 503, "no_provider", "model",
                            "no provider of the model \"%s\" is "
                            "available now (%s%s); see GET /healthz",
                            req->model_name, req->model->provider,
                            req->model->n_routes > 1 ? ", ..." : "");
    vg_submission *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    sub->jobs = jobs;
    sub->req = req;
    sub->done = done;
    sub->ctx = ctx;
    memcpy(sub->account_id, principal->account_id, sizeof(sub->account_id));
    if (opts->idempotency_key != NULL &&
        (request_hash(req, opts->webhook_url, sub->hash, err) != 0 ||
         (sub->idempotency_key = strdup(opts->idempotency_key)) == NULL)) {
        submission_free(sub, false);
        return -1;
    }

    vg_job *job = &sub->job;
    vg_uuid_v7(job->id);
    uint32_t seed = req->seed >= 0 ? (uint32_t)req->seed
                                   : (uint32_t)vg_random_u64();
    json_t *doc = request_doc(req, seed);
    int rc = adopt_images(jobs, job->id, req, doc, sub->moved, err);
    memcpy(job->account_id, principal->account_id, sizeof(job->account_id));
    memcpy(job->key_id, principal->key_id, sizeof(job->key_id));
    job->state = VG_JOB_QUEUED;
    snprintf(job->model, sizeof(job->model), "%s", req->model_name);
    snprintf(job->provider, sizeof(job->provider), "%s",
             req->provider != NULL ? req->provider : req->model->provider);
    job->request_json = rc == 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
    job->webhook_url = opts->webhook_url ? strdup(opts->webhook_url) : NULL;
    job->flex = req->tier == VG_TIER_FLEX;
    job->price = vg_price_request(req);
    job->seed = seed;
    vg_frame_size(req->resolution, req->aspect, &job->width, &job->height);
    job->created_ms = vg_now_ms();
    json_decref(doc);
    if (rc == 0 && job->request_json == NULL)
        rc = vg_error_set(err, 500, "internal_error", NULL,
                          "out of memory");
    if (rc != 0) {
        submission_free(sub, true);
        return -1;
    }
    sub->create = (vg_job_create){sub->idempotency_key, sub->hash,
                                  jobs->config.idempotency_ttl_ms,
                                  opts->max_unfinished};
    *out = sub;
    /* Dispatch behind: the submission waits for it, uncommitted, and a
     * worker or the pacer lets it through (release_held_locked). With
     * pacing off there is nothing to count and no lock to take. */
    sub->home = jobs->config.dispatch_backlog > 0
                    ? slot_for_model(jobs, req->model, req->provider)
                    : NULL;
    if (sub->home != NULL) {
        pthread_mutex_lock(&jobs->lock);
        bool hold = must_hold_locked(jobs, sub->home);
        if (hold)
            held_append_locked(jobs, sub);
        else
            sub->home->admitting++;
        pthread_mutex_unlock(&jobs->lock);
        if (hold)
            return 0;
    }
    if (commit_submission(jobs, sub) != 0) {
        admitted(jobs, sub->home);
        *err = sub->err;
        *out = NULL;
        submission_free(sub, true);
        return -1;
    }
    return 0;
}

int vg_jobs_submit_finish(vg_jobs *jobs, vg_submission *sub, vg_job *out,
                          bool *replayed, vg_error *err)
{
    vg_video_request *req = sub->req;
    provider_slot *home = sub->home;
    *replayed = sub->rc == VG_STORE_EXISTS;
    memset(out, 0, sizeof(*out));
    if (sub->rc != VG_STORE_OK && sub->rc != VG_STORE_EXISTS) {
        if (sub->rc == VG_STORE_INSUFFICIENT)
            insufficient(jobs, sub->account_id, sub->job.price, err);
        else
            *err = sub->err;
        submission_free(sub, true);
        admitted(jobs, home);
        return -1;
    }
    /* The request's images are the job's now (or, for a replay, not
     * needed): the request must not delete them at its end. */
    for (int i = 0; req != NULL && i < req->n_images; i++)
        req->images[i].path = NULL;
    if (*replayed) {
        *out = sub->existing;
        memset(&sub->existing, 0, sizeof(sub->existing));
        submission_free(sub, true);
        admitted(jobs, home);
        return 0;
    }
    *out = sub->job;
    memset(&sub->job, 0, sizeof(sub->job));
    submission_free(sub, false);

    /* The job is durable now; what follows only affects when it runs. */
    job_run *run = run_from_job(jobs, out, err);
    if (run == NULL) {
        admitted(jobs, home);
        end_in_store(jobs, out->id, VG_JOB_FAILED, err->code, err->message);
        vg_job_clear(out);
        return -1;
    }
    /* Not taken: it waits in the store (a refill or the next start
     * loads it). */
    if (!enqueue(jobs, run, false))
        run_free(run, false);
    admitted(jobs, home);
    return 0;
}

/* vg_jobs_submit waits for its own commit. */
typedef struct blocking_submit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} blocking_submit;

static void blocking_done(void *ctx)
{
    blocking_submit *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->done = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

int vg_jobs_submit(vg_jobs *jobs, const vg_principal *principal,
                   vg_video_request *req, const vg_submit *opts,
                   vg_job *out, bool *replayed, vg_error *err)
{
    blocking_submit b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                         false};
    vg_submission *sub = NULL;
    *replayed = false;
    memset(out, 0, sizeof(*out));
    if (vg_jobs_submit_start(jobs, principal, req, opts, blocking_done, &b,
                             &sub, err) != 0)
        return -1;
    pthread_mutex_lock(&b.lock);
    while (!b.done)
        pthread_cond_wait(&b.cond, &b.lock);
    pthread_mutex_unlock(&b.lock);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    return vg_jobs_submit_finish(jobs, sub, out, replayed, err);
}

int vg_jobs_cancel(vg_jobs *jobs, const char *account_id, const char *id,
                   vg_job *out, vg_error *err)
{
    vg_store *store = jobs->store;
    int rc = store->ops->get_job(store, id, out, err);
    if (rc == VG_STORE_OK && strcmp(out->account_id, account_id) != 0) {
        vg_job_clear(out);
        rc = VG_STORE_NOT_FOUND;
    }
    if (rc == VG_STORE_NOT_FOUND)
        return vg_error_set(err, 404, "job_not_found", NULL,
                            "no job %s in this account", id);
    if (rc != VG_STORE_OK)
        return -1;
    bool webhook = out->webhook_url != NULL && *out->webhook_url;
    rc = VG_STORE_CONFLICT; /* unless this call is the one that cancels */
    if (out->state == VG_JOB_QUEUED || out->state == VG_JOB_RUNNING) {
        vg_job_clear(out);
        rc = end_in_store(jobs, id, VG_JOB_CANCELLED, "cancelled",
                          "the job was cancelled; its credits were "
                          "refunded");
        if (rc == VG_STORE_ERROR)
            return vg_error_set(err, 500, "internal_error", NULL,
                                "the job could not be cancelled");
        if (rc == VG_STORE_OK && webhook)
            poke_webhooks(jobs);
        if (store->ops->get_job(store, id, out, err) != VG_STORE_OK)
            return -1;
    }
    if (out->state != VG_JOB_CANCELLED || rc != VG_STORE_OK) {
        vg_error_set(err, 409, "job_finished",
                     NULL, "the job has already ended (%s)",
                     vg_job_state_name(out->state));
        vg_job_clear(out);
        return -1;
    }

    /* Recorded: now stop the work. A run waiting in a line or out its
     * delay ends here; one starting or executing sees the flag. */
    job_run *retired = NULL;
    pthread_mutex_lock(&jobs->lock);
    job_run *run = find_run(jobs, id);
    if (run != NULL && run->phase == PHASE_UPSTREAM) {
        /* The engine stops its work and cancels the task upstream. */
        vg_upstream_cancel(jobs->upstream, id, true);
        if (!run->ready) {
            retire_locked(jobs, run, VG_JOB_CANCELLED);
            retired = run;
        } else {
            atomic_store(&run->cancel, CANCEL_CLIENT);
        }
    } else if (run != NULL) {
        if (run->phase == PHASE_QUEUED || run->phase == PHASE_SLEEPING) {
            if (run->phase == PHASE_QUEUED)
                queue_drop(jobs, run);
            else
                line_remove(&run->slot->sleeping, run);
            retire_locked(jobs, run, VG_JOB_CANCELLED);
            retired = run;
        } else {
            atomic_store(&run->cancel, CANCEL_CLIENT);
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    if (retired != NULL)
        run_free(retired, true);
    return 0;
}

/* ---- stopping ---------------------------------------------------------- */

bool vg_jobs_draining(vg_jobs *jobs)
{
    pthread_mutex_lock(&jobs->lock);
    bool draining = jobs->draining != 0;
    pthread_mutex_unlock(&jobs->lock);
    return draining;
}

void vg_jobs_stop(vg_jobs *jobs, int drain_s)
{
    if (jobs == NULL || jobs->stopped)
        return;
    jobs->stopped = 1;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += drain_s;

    pthread_mutex_lock(&jobs->lock);
    jobs->draining = 1;
    pthread_cond_broadcast(&jobs->wake);
    /* Submits held for dispatch to catch up were accepted: they commit
     * now, queued for the next start. */
    int64_t no_deadline;
    vg_submission *held = release_all_locked(jobs, vg_now_ms(), &no_deadline);
    pthread_mutex_unlock(&jobs->lock);
    commit_released(jobs, held);
    pthread_mutex_lock(&jobs->lock);
    /* Upstream jobs whose task the store holds need no draining: the
     * next start polls them again. Those still submitting drain (see
     * handle_events). */
    job_run *parked = NULL;
    for (size_t b = 0; b <= jobs->runs.mask; b++) {
        job_run *r = run_of(jobs->runs.buckets[b]);
        while (r != NULL) {
            job_run *next = run_of(r->in_table.next);
            if (r->phase == PHASE_UPSTREAM && r->task_recorded &&
                !r->ready) {
                vg_upstream_cancel(jobs->upstream, r->id, false);
                retire_locked(jobs, r, VG_JOB_RUNNING);
                r->next_ready = parked;
                parked = r;
            }
            r = next;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    while (parked != NULL) {
        job_run *next = parked->next_ready;
        run_free(parked, false);
        parked = next;
    }
    pthread_mutex_lock(&jobs->lock);
    while (jobs->busy > 0 &&
           pthread_cond_timedwait(&jobs->settled, &jobs->lock, &deadline) !=
               ETIMEDOUT)
        ;
    /* Out of time: executing work stops at its next frame and goes back
     * to the line; the workers return once it has. */
    jobs->exiting = 1;
    for (size_t b = 0; b <= jobs->runs.mask; b++)
        for (job_run *r = run_of(jobs->runs.buckets[b]); r != NULL;
             r = run_of(r->in_table.next))
            if (r->phase == PHASE_EXECUTING || r->phase == PHASE_STARTING)
                atomic_store(&r->cancel, CANCEL_SHUTDOWN);
    pthread_cond_broadcast(&jobs->wake);
    pthread_cond_broadcast(&jobs->held_wake);
    pthread_mutex_unlock(&jobs->lock);
    for (int i = 0; i < jobs->n_threads; i++)
        pthread_join(jobs->threads[i], NULL);
    jobs->n_threads = 0;
    if (jobs->has_pacer)
        pthread_join(jobs->pacer, NULL);
    jobs->has_pacer = false;

    /* Writes still in the store's queue answer soon (the store outlives
     * the jobs); a run whose start they recorded was never submitted, so
     * it goes back to the line for the next start. */
    pthread_mutex_lock(&jobs->lock);
    while (jobs->writes > 0)
        pthread_cond_wait(&jobs->settled, &jobs->lock);
    pthread_mutex_unlock(&jobs->lock);
    for (size_t b = 0; b <= jobs->runs.mask; b++) {
        for (;;) {
            job_run *r = run_of(jobs->runs.buckets[b]);
            while (r != NULL && r->step == STEP_NONE)
                r = run_of(r->in_table.next);
            if (r == NULL)
                break;
            int step = r->step;
            if (step == STEP_SUCCEEDED) {
                after_write(jobs, r);
                continue;
            }
            r->step = STEP_NONE;
            if (r->write_rc == VG_STORE_CONFLICT) {
                /* Cancelled meanwhile. */
                if (step == STEP_TASK)
                    vg_upstream_cancel(jobs->upstream, r->id, true);
                retire(jobs, r, VG_JOB_CANCELLED, true);
            } else if (step == STEP_STARTED) {
                if (r->write_rc == VG_STORE_OK)
                    requeue_run(jobs, r);
                else
                    retire(jobs, r, VG_JOB_QUEUED, false);
            }
            /* STEP_TASK recorded: an upstream run, parked below. */
        }
    }

    /* Upstream jobs still here stay as the store has them: polled again
     * at the next start, or failed then if their submit was cut short. */
    if (jobs->upstream != NULL) {
        for (size_t b = 0; b <= jobs->runs.mask; b++) {
            for (;;) {
                job_run *r = run_of(jobs->runs.buckets[b]);
                while (r != NULL && r->phase != PHASE_UPSTREAM)
                    r = run_of(r->in_table.next);
                if (r == NULL)
                    break;
                vg_upstream_cancel(jobs->upstream, r->id, false);
                retire(jobs, r, VG_JOB_RUNNING, false);
            }
        }
    }
    /* What is left waits in a line or out a delay: queued in the store
     * for the next start. */
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        while (s->sleeping.head != NULL) {
            job_run *run = s->sleeping.head;
            line_remove(&s->sleeping, run);
            requeue_run(jobs, run);
        }
        for (int t = 0; t < 2; t++) {
            while (s->queued[t].head != NULL) {
                job_run *run = s->queued[t].head;
                queue_drop(jobs, run);
                retire(jobs, run, VG_JOB_QUEUED, false);
            }
        }
    }
}

void vg_jobs_free(vg_jobs *jobs)
{
    if (jobs == NULL)
        return;
    vg_jobs_stop(jobs, 0);
    vg_upstream_free(jobs->upstream);
    for (int i = 0; i < jobs->n_slots; i++)
        if (jobs->slots[i].provider != NULL)
            jobs->slots[i].provider->ops->destroy(jobs->slots[i].provider);
    pthread_mutex_destroy(&jobs->lock);
    pthread_cond_destroy(&jobs->wake);
    pthread_cond_destroy(&jobs->settled);
    pthread_cond_destroy(&jobs->held_wake);
    free(jobs->threads);
    vg_table_destroy(&jobs->runs);
    free(jobs);
}
