/*
 * jobs.c - the job engine's start and stop, and the providers' slots; see
 * jobs.h, and jobs_internal.h for how the engine's files divide the work.
 */
#include "core/jobs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/dirs.h"
#include "util/log.h"

#define RUN_BUCKETS 4096 /* to begin with: the table grows */
/* Worker threads beside the render slots (see vg_jobs_start). */
#define IO_WORKERS 8

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
        {"invalid_image", 422},        {"unsupported_parameter", 400},
        {"server_shutdown", 503},      {"cancelled", 409},
        {"no_provider", 503},          {"upstream_rejected", 400},
        {"content_filtered", 400},     {"upstream_no_balance", 503},
        {"upstream_unavailable", 502}, {"upstream_malformed", 502},
        {"upstream_failed", 502},      {"upstream_cancelled", 502},
        {"upstream_expired", 502},     {"upstream_download_failed", 502},
        {"upstream_bad_video", 502},   {"upstream_timeout", 504},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].code, code) == 0)
            return table[i].status;
    return 500;
}

bool jobs_slot_available(const provider_slot *s)
{
    return s->provider->ops->available(s->provider);
}

bool vg_jobs_model_available(vg_jobs *jobs, const vg_model *model)
{
    for (size_t i = 0; i < model->n_routes; i++) {
        provider_slot *s = jobs_slot_named(jobs, model->routes[i].provider);
        if (s != NULL && jobs_slot_available(s))
            return true;
    }
    return false;
}

uint64_t vg_jobs_availability_version(vg_jobs *jobs)
{
    /* A sum of counters that only grow changes when any of them does. */
    uint64_t version = 0;
    for (int i = 0; jobs != NULL && i < jobs->n_slots; i++) {
        vg_provider *p = jobs->slots[i].provider;
        if (p->ops->availability_version != NULL)
            version += p->ops->availability_version(p);
    }
    return version;
}

json_t *vg_jobs_health(vg_jobs *jobs)
{
    json_t *out = json_object();
    for (int i = 0; jobs != NULL && i < jobs->n_slots; i++) {
        vg_provider *p = jobs->slots[i].provider;
        json_t *entry = p->ops->health != NULL ? p->ops->health(p) : NULL;
        if (entry != NULL)
            json_object_set_new(out, p->name, entry);
    }
    return out;
}

/* ---- providers --------------------------------------------------------- */

provider_slot *jobs_slot_named(vg_jobs *jobs, const char *name)
{
    for (int i = 0; i < jobs->n_slots; i++)
        if (strcmp(jobs->slots[i].name, name) == 0)
            return &jobs->slots[i];
    return NULL;
}

/* Each provider gets a slot and the engine's sink; the engine owns them
 * from here. */
static int add_providers(vg_jobs *jobs, vg_error *err)
{
    for (int i = 0; i < jobs->config.n_providers; i++) {
        vg_provider *p = jobs->config.providers[i];
        if (jobs->n_slots == VG_MAX_PROVIDERS) {
            p->ops->destroy(p);
            vg_error_set(err, 0, "config_error", "providers",
                         "at most %d providers", VG_MAX_PROVIDERS);
            continue;
        }
        provider_slot *s = &jobs->slots[jobs->n_slots++];
        snprintf(s->name, sizeof(s->name), "%s", p->name);
        s->provider = p;
        s->concurrency = p->concurrency > 0 ? p->concurrency : 1;
        s->delay_ms = p->delay_ms;
        p->sink = (vg_provider_sink){jobs_deliver_event, jobs};
    }
    if (jobs->n_slots < jobs->config.n_providers)
        return -1;
    if (jobs->n_slots == 0)
        return vg_error_set(err, 0, "config_error", "providers",
                            "no provider is configured");
    return 0;
}

/* ---- start and recovery ------------------------------------------------ */

vg_jobs *vg_jobs_start(vg_store *store, vg_blob *blob,
                       const vg_jobs_config *config, vg_error *err)
{
    vg_jobs *jobs = calloc(1, sizeof(*jobs));
    if (jobs == NULL || vg_table_init(&jobs->runs, RUN_BUCKETS) != 0) {
        for (int i = 0; i < config->n_providers; i++)
            config->providers[i]->ops->destroy(config->providers[i]);
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
    snprintf(jobs->tmp_dir, sizeof(jobs->tmp_dir), "%s/tmp", config->data_dir);
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    pthread_cond_init(&jobs->settled, NULL);
    pthread_cond_init(&jobs->held_wake, NULL);
    if (add_providers(jobs, err) != 0 ||
        make_dir(jobs->tmp_dir, err) != 0) {
        vg_jobs_free(jobs);
        return NULL;
    }
    /* Threads: those the providers need of their own (one per local
     * render slot), plus IO_WORKERS for everything that only waits on the
     * disk or the store (starts, replays, storing results, whose fsyncs
     * the file system batches when several wait at once), so that renders
     * filling every slot never delay those. */
    int workers = IO_WORKERS;
    for (int i = 0; i < jobs->n_slots; i++)
        workers += jobs->slots[i].provider->threads;
    jobs->threads = calloc((size_t)workers, sizeof(pthread_t));
    for (int i = 0; jobs->threads != NULL && i < workers; i++) {
        if (pthread_create(&jobs->threads[i], NULL, jobs_worker_main, jobs) !=
            0)
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
        if (pthread_create(&jobs->pacer, NULL, jobs_pacer_main, jobs) != 0) {
            vg_error_set(err, 500, "internal_error", NULL,
                         "cannot start the pacer thread");
            vg_jobs_free(jobs);
            return NULL;
        }
        jobs->has_pacer = true;
    }
    return jobs;
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
    vg_submission *held =
        jobs_release_all_locked(jobs, vg_now_ms(), &no_deadline);
    pthread_mutex_unlock(&jobs->lock);
    jobs_commit_released(jobs, held);
    pthread_mutex_lock(&jobs->lock);
    /* Upstream jobs whose task the store holds need no draining: the
     * next start polls them again. Those still submitting drain (see
     * jobs_handle_events). */
    job_run *parked = NULL;
    for (size_t b = 0; b <= jobs->runs.mask; b++) {
        job_run *r = jobs_run_of(jobs->runs.buckets[b]);
        while (r != NULL) {
            job_run *next = jobs_run_of(r->in_table.next);
            if (r->phase == PHASE_STARTED && r->task_recorded && !r->ready) {
                r->slot->provider->ops->cancel(r->slot->provider, r->id,
                                               false);
                jobs_retire_locked(jobs, r, VG_JOB_RUNNING);
                r->next_ready = parked;
                parked = r;
            }
            r = next;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    while (parked != NULL) {
        job_run *next = parked->next_ready;
        jobs_run_free(parked, false);
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
        for (job_run *r = jobs_run_of(jobs->runs.buckets[b]); r != NULL;
             r = jobs_run_of(r->in_table.next))
            if (r->phase == PHASE_STARTING || r->phase == PHASE_WOKEN ||
                (r->phase == PHASE_STARTED && !r->slot->provider->remote))
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
            job_run *r = jobs_run_of(jobs->runs.buckets[b]);
            while (r != NULL && r->step == STEP_NONE)
                r = jobs_run_of(r->in_table.next);
            if (r == NULL)
                break;
            int step = r->step;
            if (step == STEP_SUCCEEDED) {
                jobs_after_write(jobs, r);
                continue;
            }
            r->step = STEP_NONE;
            if (r->write_rc == VG_STORE_CONFLICT) {
                /* Cancelled meanwhile. */
                if (step == STEP_TASK)
                    r->slot->provider->ops->cancel(r->slot->provider, r->id,
                                                   true);
                jobs_retire(jobs, r, VG_JOB_CANCELLED, true);
            } else if (step == STEP_STARTED) {
                if (r->write_rc == VG_STORE_OK)
                    jobs_requeue_run(jobs, r);
                else
                    jobs_retire(jobs, r, VG_JOB_QUEUED, false);
            }
            /* STEP_TASK recorded: a remote provider's run, parked below. */
        }
    }

    /* Remote providers' jobs still here stay as the store has them:
     * polled again at the next start, or failed then if their submit was
     * cut short. */
    for (size_t b = 0; b <= jobs->runs.mask; b++) {
        for (;;) {
            job_run *r = jobs_run_of(jobs->runs.buckets[b]);
            while (r != NULL && r->phase != PHASE_STARTED)
                r = jobs_run_of(r->in_table.next);
            if (r == NULL)
                break;
            r->slot->provider->ops->cancel(r->slot->provider, r->id, false);
            jobs_retire(jobs, r, VG_JOB_RUNNING, false);
        }
    }
    /* What is left waits in a line or out a delay: queued in the store
     * for the next start. */
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        while (s->sleeping.head != NULL) {
            job_run *run = s->sleeping.head;
            jobs_line_remove(&s->sleeping, run);
            jobs_requeue_run(jobs, run);
        }
        for (int t = 0; t < 2; t++) {
            while (s->queued[t].head != NULL) {
                job_run *run = s->queued[t].head;
                jobs_queue_drop(jobs, run);
                jobs_retire(jobs, run, VG_JOB_QUEUED, false);
            }
        }
    }
}

void vg_jobs_free(vg_jobs *jobs)
{
    if (jobs == NULL)
        return;
    vg_jobs_stop(jobs, 0);
    for (int i = 0; i < jobs->n_slots; i++)
        jobs->slots[i].provider->ops->destroy(jobs->slots[i].provider);
    pthread_mutex_destroy(&jobs->lock);
    pthread_cond_destroy(&jobs->wake);
    pthread_cond_destroy(&jobs->settled);
    pthread_cond_destroy(&jobs->held_wake);
    free(jobs->threads);
    vg_table_destroy(&jobs->runs);
    free(jobs);
}
