/*
 * jobs.c - job queue, worker pool and job lifecycle; see jobs.h.
 *
 * Each queued or running job has an in-memory `job_run` in a hash table
 * keyed by id: it carries the render spec, the cancel flag and the list
 * of waiters. The store is the record; the table is only what this
 * process is working on.
 */
#include "core/jobs.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/pricing.h"
#include "providers/provider.h"
#include "util/crypto.h"
#include "util/log.h"

#define RUN_BUCKETS 1024

typedef struct job_run job_run;
struct job_run {
    char id[37];
    job_run *next_in_bucket;
    job_run *next_in_queue;
    vg_job_spec spec;
    char *prompt;
    char *image_paths[VG_MAX_IMAGES];
    atomic_int cancel;
    vg_jobs *owner;
    int last_progress; /* last percentage written to the store */
    vg_job_waiter *waiters;
};

struct vg_jobs {
    vg_store *store;
    vg_blob *blob;
    char uploads_dir[PATH_MAX + 16];
    char tmp_dir[PATH_MAX + 16];
    vg_provider *local;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* work queued, or stopping */
    pthread_cond_t settled; /* a job ended */
    job_run *buckets[RUN_BUCKETS];
    job_run *queue_head, *queue_tail;
    int active; /* queued + running */
    int stopping; /* no new work; read under lock */
    int stopped;  /* vg_jobs_stop ran; touched by its caller only */
    pthread_t *threads;
    int n_threads;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % RUN_BUCKETS;
}

/* Caller holds the lock. */
static job_run **find_slot(vg_jobs *jobs, const char *id)
{
    job_run **slot = &jobs->buckets[bucket_of(id)];
    while (*slot != NULL && strcmp((*slot)->id, id) != 0)
        slot = &(*slot)->next_in_bucket;
    return slot;
}

static void run_free(job_run *run)
{
    free(run->prompt);
    for (int i = 0; i < run->spec.n_images; i++) {
        if (run->image_paths[i] != NULL)
            unlink(run->image_paths[i]);
        free(run->image_paths[i]);
    }
    free(run);
}

static int make_dir(const char *path, vg_error *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot create %s: %s", path, strerror(errno));
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
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].code, code) == 0)
            return table[i].status;
    return 500;
}

/* Removes the run from the table, wakes its waiters and frees it. */
static void finish_run(vg_jobs *jobs, job_run *run)
{
    pthread_mutex_lock(&jobs->lock);
    job_run **slot = find_slot(jobs, run->id);
    if (*slot == run)
        *slot = run->next_in_bucket;
    vg_job_waiter *waiters = run->waiters;
    run->waiters = NULL;
    jobs->active--;
    pthread_cond_broadcast(&jobs->settled);
    pthread_mutex_unlock(&jobs->lock);

    while (waiters != NULL) {
        vg_job_waiter *next = waiters->next;
        waiters->done(waiters);
        waiters = next;
    }
    run_free(run);
}

static void end_run(vg_jobs *jobs, job_run *run, vg_job_state state,
                    const char *code, const char *message)
{
    vg_error err;
    int rc = jobs->store->ops->end_job(jobs->store, run->id, state, code,
                                       message, now_ms(), &err);
    if (rc == VG_STORE_ERROR)
        vg_log_error("job %s: cannot record its end: %s", run->id,
                     err.message);
}

static void report_progress(void *opaque, int done, int total)
{
    job_run *run = opaque;
    int pct = total > 0 ? (int)((int64_t)done * 100 / total) : 0;
    if (pct > 99)
        pct = 99; /* 100 means stored, which only succeed_job says */
    /* Progress is for humans: a store write every 5% is plenty. */
    if (pct < run->last_progress + 5)
        return;
    run->last_progress = pct;
    vg_error err;
    vg_store *store = run->owner->store;
    if (store->ops->set_progress(store, run->id, pct, &err) ==
        VG_STORE_ERROR)
        vg_log_warn("job %s: cannot record progress: %s", run->id,
                    err.message);
}

static vg_provider *provider_for(vg_jobs *jobs, const vg_model *model)
{
    if (strcmp(model->provider, "local") == 0)
        return jobs->local;
    return NULL;
}

static void execute(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    vg_error_clear(&err);
    vg_store *store = jobs->store;
    int rc = store->ops->start_job(store, run->id, now_ms(), &err);
    if (rc != VG_STORE_OK) {
        if (rc == VG_STORE_ERROR)
            vg_log_error("job %s: cannot start: %s", run->id, err.message);
        finish_run(jobs, run);
        return;
    }

    vg_provider *provider = provider_for(jobs, run->spec.model);
    if (provider == NULL) {
        end_run(jobs, run, VG_JOB_FAILED, "no_provider",
                "no provider is configured for this model");
        finish_run(jobs, run);
        return;
    }

    char out_path[PATH_MAX + 64];
    snprintf(out_path, sizeof(out_path), "%s/%s.mp4", jobs->tmp_dir,
             run->id);
    vg_job_hooks hooks = {&run->cancel, report_progress, run};
    vg_provider_result result = {0, 0};
    rc = provider->ops->run(provider, &run->spec, out_path, &hooks, &result,
                            &err);
    if (rc != 0) {
        int cancelled = atomic_load(&run->cancel) != 0;
        if (!cancelled && err.status >= 500)
            vg_log_error("job %s failed: %s", run->id, err.message);
        end_run(jobs, run, cancelled ? VG_JOB_CANCELLED : VG_JOB_FAILED,
                cancelled ? "server_shutdown" : err.code,
                cancelled ? "the server shut down before the video was "
                            "finished; the credits were refunded"
                          : err.message);
        unlink(out_path);
        finish_run(jobs, run);
        return;
    }

    vg_job done;
    memset(&done, 0, sizeof(done));
    memcpy(done.id, run->id, sizeof(done.id));
    snprintf(done.video_key, sizeof(done.video_key), "videos/%s.mp4",
             run->id);
    done.seed = run->spec.seed;
    done.width = run->spec.width;
    done.height = run->spec.height;
    done.prompt_tokens = result.prompt_tokens;
    done.completion_tokens = result.completion_tokens;
    done.finished_ms = now_ms();
    if (jobs->blob->ops->put_file(jobs->blob, done.video_key, out_path,
                                  &err) != 0) {
        vg_log_error("job %s: cannot store the video: %s", run->id,
                     err.message);
        unlink(out_path);
        end_run(jobs, run, VG_JOB_FAILED, "storage_failed",
                "the video could not be stored");
        finish_run(jobs, run);
        return;
    }
    rc = store->ops->succeed_job(store, &done, &err);
    if (rc != VG_STORE_OK) {
        /* Ended meanwhile (or the store failed): the client was refunded
         * or will be, so the video must not outlive the job. */
        if (rc == VG_STORE_ERROR)
            vg_log_error("job %s: cannot record success: %s", run->id,
                         err.message);
        jobs->blob->ops->remove(jobs->blob, done.video_key, &err);
    }
    finish_run(jobs, run);
}

static void *worker_main(void *arg)
{
    vg_jobs *jobs = arg;
    for (;;) {
        pthread_mutex_lock(&jobs->lock);
        while (jobs->queue_head == NULL && !jobs->stopping)
            pthread_cond_wait(&jobs->wake, &jobs->lock);
        job_run *run = jobs->queue_head;
        if (run == NULL) {
            pthread_mutex_unlock(&jobs->lock);
            return NULL;
        }
        jobs->queue_head = run->next_in_queue;
        if (jobs->queue_head == NULL)
            jobs->queue_tail = NULL;
        pthread_mutex_unlock(&jobs->lock);
        execute(jobs, run);
    }
}

vg_jobs *vg_jobs_start(vg_store *store, vg_blob *blob, const char *data_dir,
                       int workers, vg_error *err)
{
    vg_jobs *jobs = calloc(1, sizeof(*jobs));
    if (jobs == NULL) {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    jobs->store = store;
    jobs->blob = blob;
    snprintf(jobs->uploads_dir, sizeof(jobs->uploads_dir), "%s/uploads",
             data_dir);
    snprintf(jobs->tmp_dir, sizeof(jobs->tmp_dir), "%s/tmp", data_dir);
    if (make_dir(jobs->uploads_dir, err) != 0 ||
        make_dir(jobs->tmp_dir, err) != 0) {
        free(jobs);
        return NULL;
    }
    jobs->local = vg_provider_local_new();
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    pthread_cond_init(&jobs->settled, NULL);
    if (workers <= 0)
        workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers <= 0)
        workers = 1;
    jobs->threads = calloc((size_t)workers, sizeof(pthread_t));
    for (int i = 0; i < workers; i++) {
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
    return jobs;
}

static int recover_one(void *ctx, const vg_job *job)
{
    vg_jobs *jobs = ctx;
    vg_error err;
    int rc = jobs->store->ops->end_job(
        jobs->store, job->id, VG_JOB_FAILED, "interrupted",
        "the server restarted before this job finished; the credits were "
        "refunded",
        now_ms(), &err);
    if (rc == VG_STORE_OK)
        vg_log_warn("job %s was interrupted by a restart: refunded",
                    job->id);
    return 0;
}

int vg_jobs_recover(vg_jobs *jobs, vg_error *err)
{
    int rc = jobs->store->ops->list_unfinished_jobs(jobs->store, recover_one,
                                                    jobs, err);
    return rc == VG_STORE_OK ? 0 : -1;
}

/* The normalized request, as stored with the job. */
static char *request_json(const vg_video_request *req, uint32_t seed,
                          char **image_paths)
{
    json_t *images = json_array();
    for (int i = 0; i < req->n_images; i++)
        json_array_append_new(images, json_string(image_paths[i]));
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:i, s:I, s:o}", "prompt",
        req->prompt, "model", req->model_name, "resolution",
        vg_resolution_name(req->resolution), "aspect_ratio",
        vg_aspect_name(req->aspect), "duration", req->duration,
        "generate_audio", req->generate_audio, "camera_fixed",
        req->camera_fixed, "service_tier",
        req->tier == VG_TIER_FLEX ? "flex" : "default", "fps", req->fps,
        "seed", (json_int_t)seed, "images", images);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* Moves the request's images into the job's own names. */
static int adopt_images(vg_jobs *jobs, const char *job_id,
                        vg_video_request *req, job_run *run, vg_error *err)
{
    for (int i = 0; i < req->n_images; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s-%d", jobs->uploads_dir, job_id,
                 i);
        if (rename(req->images[i].path, path) != 0)
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot keep an uploaded image: %s",
                                strerror(errno));
        run->image_paths[i] = strdup(path);
        run->spec.image_paths[i] = run->image_paths[i];
        run->spec.n_images = i + 1;
        unlink(req->images[i].path); /* already gone; keeps cleanup safe */
        req->images[i].path = NULL;
    }
    return 0;
}

int vg_jobs_submit(vg_jobs *jobs, const vg_principal *principal,
                   vg_video_request *req, vg_job *out, vg_error *err)
{
    job_run *run = calloc(1, sizeof(*run));
    if (run == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    vg_uuid_v4(run->id);
    run->owner = jobs;
    uint32_t seed = req->seed >= 0 ? (uint32_t)req->seed
                                   : (uint32_t)vg_random_u64();
    vg_job_spec *spec = &run->spec;
    run->prompt = strdup(req->prompt);
    spec->prompt = run->prompt;
    spec->model = req->model;
    spec->resolution = req->resolution;
    spec->aspect = req->aspect;
    vg_frame_size(req->resolution, req->aspect, &spec->width,
                  &spec->height);
    spec->duration = req->duration;
    spec->fps = req->fps;
    spec->generate_audio = req->generate_audio;
    spec->camera_fixed = req->camera_fixed;
    spec->tier = req->tier;
    spec->seed = seed;
    if (adopt_images(jobs, run->id, req, run, err) != 0) {
        run_free(run);
        return -1;
    }

    memset(out, 0, sizeof(*out));
    memcpy(out->id, run->id, sizeof(out->id));
    memcpy(out->account_id, principal->account_id, sizeof(out->account_id));
    memcpy(out->key_id, principal->key_id, sizeof(out->key_id));
    out->state = VG_JOB_QUEUED;
    snprintf(out->model, sizeof(out->model), "%s", req->model_name);
    snprintf(out->provider, sizeof(out->provider), "%s",
             req->model->provider);
    out->request_json = request_json(req, seed, run->image_paths);
    out->price = vg_price_request(req);
    out->seed = seed;
    out->width = spec->width;
    out->height = spec->height;
    out->created_ms = now_ms();

    int rc = jobs->store->ops->create_job(jobs->store, out, err);
    if (rc != VG_STORE_OK) {
        if (rc == VG_STORE_INSUFFICIENT) {
            vg_account account;
            vg_error ignored;
            int64_t balance = 0;
            if (jobs->store->ops->get_account(jobs->store,
                                              principal->account_id,
                                              &account, &ignored) == 0)
                balance = account.balance;
            vg_error_set(err, 403, "insufficient_credits", NULL,
                         "this video costs %.3f credits but the balance "
                         "is %.3f",
                         (double)out->price / 1000.0,
                         (double)balance / 1000.0);
        }
        vg_job_clear(out);
        run_free(run);
        return -1;
    }

    pthread_mutex_lock(&jobs->lock);
    if (jobs->stopping) {
        pthread_mutex_unlock(&jobs->lock);
        end_run(jobs, run, VG_JOB_CANCELLED, "server_shutdown",
                "the server is shutting down; the credits were refunded");
        run_free(run);
        vg_job_clear(out);
        return vg_error_set(err, 503, "server_shutdown", NULL,
                            "the server is shutting down");
    }
    job_run **slot = find_slot(jobs, run->id);
    *slot = run;
    if (jobs->queue_tail != NULL)
        jobs->queue_tail->next_in_queue = run;
    else
        jobs->queue_head = run;
    jobs->queue_tail = run;
    jobs->active++;
    pthread_cond_signal(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
    return 0;
}

int vg_jobs_wait(vg_jobs *jobs, const char *job_id, vg_job_waiter *waiter)
{
    pthread_mutex_lock(&jobs->lock);
    job_run *run = *find_slot(jobs, job_id);
    if (run == NULL) {
        pthread_mutex_unlock(&jobs->lock);
        return 1;
    }
    waiter->next = run->waiters;
    run->waiters = waiter;
    pthread_mutex_unlock(&jobs->lock);
    return 0;
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
    jobs->stopping = 1;
    pthread_cond_broadcast(&jobs->wake);
    while (jobs->active > 0 &&
           pthread_cond_timedwait(&jobs->settled, &jobs->lock, &deadline) !=
               ETIMEDOUT)
        ;
    /* Whatever is left is cancelled: queued jobs are ended here, running
     * renders stop at their next frame and end themselves. */
    job_run *queued = jobs->queue_head;
    jobs->queue_head = jobs->queue_tail = NULL;
    for (int b = 0; b < RUN_BUCKETS; b++)
        for (job_run *r = jobs->buckets[b]; r != NULL; r = r->next_in_bucket)
            atomic_store(&r->cancel, 1);
    pthread_mutex_unlock(&jobs->lock);

    while (queued != NULL) {
        job_run *next = queued->next_in_queue;
        end_run(jobs, queued, VG_JOB_CANCELLED, "server_shutdown",
                "the server shut down before the video was made; the "
                "credits were refunded");
        finish_run(jobs, queued);
        queued = next;
    }
    for (int i = 0; i < jobs->n_threads; i++)
        pthread_join(jobs->threads[i], NULL);
    jobs->n_threads = 0;
}

void vg_jobs_free(vg_jobs *jobs)
{
    if (jobs == NULL)
        return;
    vg_jobs_stop(jobs, 0);
    if (jobs->local != NULL)
        jobs->local->ops->destroy(jobs->local);
    pthread_mutex_destroy(&jobs->lock);
    pthread_cond_destroy(&jobs->wake);
    pthread_cond_destroy(&jobs->settled);
    free(jobs->threads);
    free(jobs);
}
