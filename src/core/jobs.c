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

bool vg_jobs_model_available(vg_jobs *jobs, const vg_model *model)
{
    for (size_t i = 0; i < model->n_routes; i++) {
        provider_slot *s = jobs_slot_named(jobs, model->routes[i].provider);
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

provider_slot *jobs_slot_named(vg_jobs *jobs, const char *name)
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
        } else
            return vg_error_set(err, 0, "config_error", "providers",
                                "unknown provider \"%s\"", pc->name);
    }
    /* Renders are CPU-bound: one per core unless told otherwise. */
    int renders =
        jobs->config.render_workers > 0 ? jobs->config.render_workers : cores;
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
        const char *key = pc->api_key_env[0] ? getenv(pc->api_key_env) : NULL;
        snprintf(u->api_key, sizeof(u->api_key), "%s", key != NULL ? key : "");
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
        jobs->upstream =
            vg_upstream_start(upstreams, n_upstreams, jobs->tmp_dir,
                              jobs_deliver_event, jobs, err);
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
    snprintf(jobs->tmp_dir, sizeof(jobs->tmp_dir), "%s/tmp", config->data_dir);
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    pthread_cond_init(&jobs->settled, NULL);
    pthread_cond_init(&jobs->held_wake, NULL);
    if (make_dir(jobs->uploads_dir, err) != 0 ||
        make_dir(jobs->tmp_dir, err) != 0 || start_providers(jobs, err) != 0) {
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
            if (r->phase == PHASE_UPSTREAM && r->task_recorded && !r->ready) {
                vg_upstream_cancel(jobs->upstream, r->id, false);
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
                    vg_upstream_cancel(jobs->upstream, r->id, true);
                jobs_retire(jobs, r, VG_JOB_CANCELLED, true);
            } else if (step == STEP_STARTED) {
                if (r->write_rc == VG_STORE_OK)
                    jobs_requeue_run(jobs, r);
                else
                    jobs_retire(jobs, r, VG_JOB_QUEUED, false);
            }
            /* STEP_TASK recorded: an upstream run, parked below. */
        }
    }

    /* Upstream jobs still here stay as the store has them: polled again
     * at the next start, or failed then if their submit was cut short. */
    if (jobs->upstream != NULL) {
        for (size_t b = 0; b <= jobs->runs.mask; b++) {
            for (;;) {
                job_run *r = jobs_run_of(jobs->runs.buckets[b]);
                while (r != NULL && r->phase != PHASE_UPSTREAM)
                    r = jobs_run_of(r->in_table.next);
                if (r == NULL)
                    break;
                vg_upstream_cancel(jobs->upstream, r->id, false);
                jobs_retire(jobs, r, VG_JOB_RUNNING, false);
            }
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
