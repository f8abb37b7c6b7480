/*
 * jobs_events.c - what a started run does: its start recorded, handed to
 * its provider (core/provider.h), whose events (task, progress, result,
 * failure) are taken in order the same way for every provider, and their
 * durable part (the start, the task and the success written through the
 * store's queue, the video into the blob store). See jobs_internal.h.
 */
#include "core/jobs_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pricing.h"
#include "media/mp4.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"

/* ---- progress ----------------------------------------------------------- */

/* The run whose provider works on this thread right now (jobs_launch):
 * its progress is handled as it comes, since this thread, which would
 * otherwise take its events, is busy until the provider returns. */
static __thread job_run *in_hand;

static void report_progress(job_run *run, int pct)
{
    vg_jobs *jobs = run->owner;
    if (pct > 99)
        pct = 99; /* 100 means stored, which only success says */
    if (pct <= run->progress)
        return;
    pthread_mutex_lock(&jobs->lock);
    run->progress = pct;
    jobs_notify_locked(run, false);
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

static void write_success(vg_jobs *jobs, job_run *run, const vg_job *done);
static void write_step(vg_jobs *jobs, job_run *run, int step,
                       const char *provider, const char *task);
static void ready_push_locked(vg_jobs *jobs, job_run *run);

/* Where a run's video is stored. */
static void video_key_of(const job_run *run, char *out, size_t n)
{
    snprintf(out, n, "videos/%s.mp4", run->id);
}

/* Moves the finished video at path into the blob store and records the
 * success (done carries seed, size and tokens), without waiting for the
 * commit: the run comes back in jobs_after_write (succeeded). from names
 * the provider's task, whose copy it may delete once recorded. */
static void store_video(vg_jobs *jobs, job_run *run, const char *out_path,
                        vg_job *done_in, const vg_provider_event *from)
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
        jobs_end_run(jobs, run, VG_JOB_FAILED, "storage_failed",
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
        jobs_retire(jobs, run, VG_JOB_CANCELLED, true);
        return;
    }
    if (run->has_webhook)
        jobs_poke_webhooks(jobs);
    char provider[32];
    char *task = run->stored_task;
    run->stored_task = NULL;
    snprintf(provider, sizeof(provider), "%s", run->stored_provider);
    pthread_mutex_lock(&jobs->lock);
    run->progress = 100;
    pthread_mutex_unlock(&jobs->lock);
    jobs_retire(jobs, run, VG_JOB_SUCCEEDED, true);
    provider_slot *holder =
        task != NULL ? jobs_slot_named(jobs, provider) : NULL;
    if (holder != NULL && holder->provider->ops->stored != NULL)
        holder->provider->ops->stored(holder->provider, task);
    free(task);
}

/* Records queued -> running; for a remote provider the same write says
 * "a submit may be under way", so that a restart never submits twice.
 * The run comes back in jobs_after_write. */
void jobs_begin(vg_jobs *jobs, job_run *run)
{
    write_step(jobs, run, STEP_STARTED,
               run->slot->provider->remote ? run->slot->name : NULL, NULL);
}

/* ---- the durable steps -------------------------------------------------- */

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
 * Records a run's step without waiting for the commit: STEP_STARTED
 * (queued -> running; with a provider, also "a submit to it may be under
 * way", in one write) or STEP_TASK (a remote provider's task handle). A worker
 * thread that waited for each commit would forward a few hundred jobs a
 * second however fast the provider; this way one worker hands out many
 * writes, they share the store's group commits, and the run comes back
 * through the ready line (jobs_after_write) once its write is durable. The run
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
        rc = store->ops->start_job_async(store, run->id, vg_now_ms(), provider,
                                         step_written, run, &err);
    else if (step == STEP_TASK && store->ops->set_upstream_async != NULL)
        rc = store->ops->set_upstream_async(store, run->id, provider, task,
                                            step_written, run, &err);
    else if (step == STEP_STARTED) {
        /* A backend without the asynchronous writes: wait here. */
        rc = store->ops->start_job(store, run->id, vg_now_ms(), &err);
        if (rc == VG_STORE_OK && provider != NULL)
            rc = store->ops->set_upstream(store, run->id, provider, "-", &err);
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

/* The providers' events arrive here, on any thread: queue them on the run
 * and put the run in the ready line for a worker (unless a worker has it
 * in hand already: it takes them when the provider returns). */
void jobs_deliver_event(void *ctx, vg_provider_event *ev)
{
    vg_jobs *jobs = ctx;
    if (ev->kind == VG_EVENT_PROGRESS && in_hand != NULL &&
        strcmp(in_hand->id, ev->job_id) == 0) {
        report_progress(in_hand, ev->progress);
        vg_provider_event_free(ev);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    job_run *run = jobs_find_run(jobs, ev->job_id);
    if (run == NULL || run->phase != PHASE_STARTED) {
        pthread_mutex_unlock(&jobs->lock);
        if (ev->file != NULL)
            unlink(ev->file);
        vg_provider_event_free(ev);
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

/* The routes of the run's model, the preferred provider's first. */
static int routes_of(const job_run *run, vg_provider_route *out)
{
    const vg_model *m = run->model;
    int n = 0;
    /* Two passes: the preferred provider's route, then the others in the
     * model's order. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->n_routes && n < VG_MAX_ROUTES; i++) {
            bool preferred =
                strcmp(m->routes[i].provider, run->preferred) == 0;
            if (preferred != (pass == 0))
                continue;
            out[n].provider = m->routes[i].provider;
            out[n].model =
                vg_route_model_id(&m->routes[i], run->spec.n_images > 0);
            n++;
        }
    }
    return n;
}

/* Hands a started run to its provider, then takes whatever the provider
 * has sent meanwhile: everything, for one that works on this thread. */
void jobs_launch(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    vg_error_clear(&err);
    pthread_mutex_lock(&jobs->lock);
    run->phase = PHASE_STARTED;
    run->ready = true; /* this worker's until it has taken the events */
    pthread_mutex_unlock(&jobs->lock);
    /* Cancelled while its start was being committed or its delay ran:
     * never sent (jobs_handle_events retires it). */
    if (atomic_load(&run->cancel) != CANCEL_CLIENT) {
        if (jobs_fetch_images(jobs, run, &err) != 0) {
            jobs_end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
            return;
        }
        vg_provider_route routes[VG_MAX_ROUTES];
        vg_provider_job job = {run->id, &run->spec, routes,
                               routes_of(run, routes), &run->cancel};
        vg_provider *p = run->slot->provider;
        in_hand = run;
        int rc = p->ops->start(p, &job, &err);
        in_hand = NULL;
        if (rc != 0) {
            jobs_end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
            return;
        }
    }
    jobs_handle_events(jobs, run);
}

/* The start is recorded: sleep out the provider's delay, or go on. */
static void started(vg_jobs *jobs, job_run *run)
{
    pthread_mutex_lock(&jobs->lock);
    run->state = VG_JOB_RUNNING;
    jobs_notify_locked(run, false);
    if (run->slot->delay_ms > 0) {
        /* No longer the worker's: the scheduler wakes it (WOKEN). */
        run->ready = false;
        run->phase = PHASE_SLEEPING;
        run->wake_ms = vg_now_ms() + run->slot->delay_ms;
        jobs_line_append(&run->slot->sleeping, run);
        pthread_cond_signal(&jobs->wake); /* a new deadline */
        pthread_mutex_unlock(&jobs->lock);
        return;
    }
    pthread_mutex_unlock(&jobs->lock);
    jobs_launch(jobs, run);
}

/* A run back from the store with its write_step write answered. */
void jobs_after_write(vg_jobs *jobs, job_run *run)
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
            jobs_retire(jobs, run, VG_JOB_CANCELLED, true);
        else
            started(jobs, run);
        return;
    }
    if (rc != VG_STORE_OK) {
        /* Cancelled meanwhile (or the store failed): the task must not
         * run on unpaid. */
        run->slot->provider->ops->cancel(run->slot->provider, run->id, true);
        jobs_retire(jobs, run, VG_JOB_CANCELLED, true);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    run->task_recorded = true;
    bool draining = jobs->draining != 0;
    pthread_mutex_unlock(&jobs->lock);
    /* Stopping: no polls; next_event parks the run, its task safe in the
     * store for the next start. */
    vg_provider *p = run->slot->provider;
    if (!draining && p->ops->proceed != NULL)
        p->ops->proceed(p, run->id);
    jobs_handle_events(jobs, run);
}

/* A finished video: unless its provider vouches for it, check that it is
 * an MP4 and drop the audio the client did not ask for; then store it. */
static void finish(vg_jobs *jobs, job_run *run, vg_provider_event *ev)
{
    vg_error err;
    vg_mp4_info info = {.width = run->spec.width, .height = run->spec.height};
    if (!ev->verified && vg_mp4_inspect(ev->file, &info, &err) != 0) {
        vg_log_error("job %s: %s returned an unusable video: %s", run->id,
                     ev->provider, err.message);
        unlink(ev->file);
        jobs_end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
        return;
    }
    if (!ev->verified && !run->spec.generate_audio && info.has_audio &&
        vg_mp4_strip_audio(ev->file, ev->file, &err) != 0) {
        vg_log_error("job %s: cannot remove the audio track: %s", run->id,
                     err.message);
        unlink(ev->file);
        jobs_end_run(jobs, run, VG_JOB_FAILED, "internal_error",
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
     * estimated (as the local renderer does). */
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
 * provider sends nothing more), is retired, and the caller must not touch
 * it again. */
static bool next_event(vg_jobs *jobs, job_run *run, vg_provider_event **ev)
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
            jobs_retire_locked(jobs, run, VG_JOB_CANCELLED);
            cancelled = true;
        } else if (jobs->draining && run->task_recorded) {
            /* Stopping: the store has the task, the next start polls it
             * (vg_jobs_stop parks the others the same way). */
            run->slot->provider->ops->cancel(run->slot->provider, run->id,
                                             false);
            jobs_retire_locked(jobs, run, VG_JOB_RUNNING);
            parked = true;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    if (cancelled || parked)
        jobs_run_free(run, cancelled);
    return *ev != NULL;
}

/* A failure the provider reported: the client's cancel or a shutdown
 * that stopped its work, or the job's end. */
static void failed(vg_jobs *jobs, job_run *run, const vg_error *error)
{
    int cancel = atomic_load(&run->cancel);
    if (cancel == CANCEL_SHUTDOWN) {
        jobs_requeue_run(jobs, run);
    } else if (cancel == CANCEL_CLIENT) {
        /* vg_jobs_cancel recorded the end already. */
        jobs_retire(jobs, run, VG_JOB_CANCELLED, true);
    } else {
        if (error->status >= 500)
            vg_log_error("job %s failed: %s", run->id, error->message);
        jobs_end_run(jobs, run, VG_JOB_FAILED, error->code, error->message);
    }
}

/* A worker handles a started run's events in order. Returns once they
 * are all handled or the run has ended (and is freed). */
void jobs_handle_events(vg_jobs *jobs, job_run *run)
{
    vg_provider_event *ev;
    while (next_event(jobs, run, &ev)) {
        switch (ev->kind) {
        case VG_EVENT_SUBMITTED:
            /* Recorded before the provider goes on: it waits for proceed
             * (jobs_after_write). The run stays ready until then, the
             * events that come meanwhile kept. */
            vg_log_info("job %s: submitted to %s", run->id, ev->provider);
            write_step(jobs, run, STEP_TASK, ev->provider, ev->task);
            vg_provider_event_free(ev);
            return;
        case VG_EVENT_PROGRESS:
            report_progress(run, ev->progress);
            vg_provider_event_free(ev);
            break;
        case VG_EVENT_DONE:
            finish(jobs, run, ev);
            vg_provider_event_free(ev);
            return;
        case VG_EVENT_FAILED:
            failed(jobs, run, &ev->error);
            vg_provider_event_free(ev);
            return;
        }
    }
}
