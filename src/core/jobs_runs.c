/*
 * jobs_runs.c - the runs in memory: the table and the lines they wait in,
 * their listeners, the end of a run, and building a run from a stored
 * job. See jobs_internal.h.
 */
#include "core/jobs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

job_run *jobs_run_of(vg_table_node *n)
{
    return n != NULL ? VG_CONTAINER_OF(n, job_run, in_table) : NULL;
}

/* The run of that id in memory, or NULL. Caller holds the lock. */
job_run *jobs_find_run(const vg_jobs *jobs, const char *id)
{
    return jobs_run_of(vg_table_find(&jobs->runs, id));
}

void jobs_line_append(run_line *line, job_run *run)
{
    run->next = NULL;
    run->prev = line->tail;
    if (line->tail != NULL)
        line->tail->next = run;
    else
        line->head = run;
    line->tail = run;
}

void jobs_line_remove(run_line *line, job_run *run)
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
void jobs_queue_add(vg_jobs *jobs, job_run *run)
{
    jobs_line_append(&run->slot->queued[run->tier], run);
    run->slot->n_queued++;
    jobs->queued_runs++;
}

void jobs_queue_drop(vg_jobs *jobs, job_run *run)
{
    jobs_line_remove(&run->slot->queued[run->tier], run);
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

void jobs_run_free(job_run *run, bool delete_images)
{
    while (run->events != NULL) {
        vg_provider_event *ev = run->events;
        run->events = ev->next;
        if (ev->file != NULL)
            unlink(ev->file);
        vg_provider_event_free(ev);
    }
    free(run->prompt);
    free(run->stored_task);
    for (int i = 0; i < run->spec.n_images; i++) {
        if (run->image_files[i] != NULL)
            unlink(run->image_files[i]);
        vg_error err;
        if (delete_images && run->image_keys[i] != NULL &&
            run->owner->blob->ops->remove(run->owner->blob,
                                          run->image_keys[i], &err) != 0)
            vg_log_error("job %s: cannot remove %s: %s", run->id,
                         run->image_keys[i], err.message);
        free(run->image_keys[i]);
        free(run->image_files[i]);
        free(run->image_urls[i]);
    }
    free(run);
}

void jobs_upload_key(const char *job_id, int n, char *out, size_t size)
{
    snprintf(out, size, "uploads/%s-%d", job_id, n);
}

int jobs_fetch_images(vg_jobs *jobs, job_run *run, vg_error *err)
{
    for (int i = 0; i < run->spec.n_images; i++) {
        if (run->image_files[i] != NULL)
            continue;
        char path[PATH_MAX + 96];
        snprintf(path, sizeof(path), "%s/run-%s-%d", jobs->tmp_dir, run->id,
                 i);
        unlink(path); /* left by a run of it that a crash ended */
        vg_error why;
        int rc =
            vg_blob_copy_to_file(jobs->blob, run->image_keys[i], path, &why);
        if (rc == VG_STORE_NOT_FOUND)
            return vg_error_set(err, 500, "internal_error", "files",
                                "a reference image of the job is missing");
        if (rc != 0) {
            vg_log_error("job %s: cannot read %s: %s", run->id,
                         run->image_keys[i], why.message);
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot read a reference image of the job");
        }
        if ((run->image_files[i] = strdup(path)) == NULL) {
            unlink(path);
            return vg_error_set(err, 500, "internal_error", NULL,
                                "out of memory");
        }
        run->spec.image_paths[i] = run->image_files[i];
    }
    return 0;
}

/* ---- listeners --------------------------------------------------------- */

/* Caller holds the lock. */
void jobs_notify_locked(job_run *run, bool done)
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
    job_run *run = jobs_find_run(jobs, job_id);
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
void jobs_retire_locked(vg_jobs *jobs, job_run *run, vg_job_state state)
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
    jobs_notify_locked(run, true);
}

void jobs_retire(vg_jobs *jobs, job_run *run, vg_job_state state,
                 bool delete_images)
{
    pthread_mutex_lock(&jobs->lock);
    jobs_retire_locked(jobs, run, state);
    pthread_mutex_unlock(&jobs->lock);
    jobs_run_free(run, delete_images);
}

void jobs_poke_webhooks(vg_jobs *jobs)
{
    if (jobs->config.ended_with_webhook != NULL)
        jobs->config.ended_with_webhook(jobs->config.ctx);
}

/* Records a failed or cancelled end; returns the store's answer. */
int jobs_end_in_store(vg_jobs *jobs, const char *id, vg_job_state state,
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
void jobs_end_run(vg_jobs *jobs, job_run *run, vg_job_state state,
                  const char *code, const char *message)
{
    if (jobs_end_in_store(jobs, run->id, state, code, message) ==
            VG_STORE_OK &&
        run->has_webhook)
        jobs_poke_webhooks(jobs);
    jobs_retire(jobs, run, state, true);
}

/* Work stopped by a shutdown goes back to the line in the store, for the
 * next start (or another instance). */
void jobs_requeue_run(vg_jobs *jobs, job_run *run)
{
    vg_error err;
    if (jobs->store->ops->requeue_job(jobs->store, run->id, &err) ==
        VG_STORE_ERROR)
        vg_log_error("job %s: cannot queue it again: %s", run->id,
                     err.message);
    jobs_retire(jobs, run, VG_JOB_QUEUED, false);
}

/* ---- a job's request as the engine keeps it ---------------------------- */

json_t *jobs_request_doc(const vg_video_request *req, int64_t seed,
                         const char *const *images)
{
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < req->n_images; i++)
        if (json_array_append_new(list, json_string(images[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:i, s:I, s:o}",
                  "prompt", req->prompt, "model", req->model_name,
                  "resolution", vg_resolution_name(req->resolution),
                  "aspect_ratio", vg_aspect_name(req->aspect), "duration",
                  req->duration, "generate_audio", req->generate_audio,
                  "camera_fixed", req->camera_fixed, "service_tier",
                  req->tier == VG_TIER_FLEX ? "flex" : "default", "fps",
                  req->fps, "seed", (json_int_t)seed, "images", list);
    if (doc != NULL && req->provider != NULL &&
        json_object_set_new(doc, "provider", json_string(req->provider)) !=
            0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Reads what jobs_request_doc wrote back into *req (its model resolved,
 * NULL when the catalog no longer has it) and the images' keys. The
 * strings point into *doc, which the caller json_decref's, also when
 * this fails (500: the text is not such a request). */
static int request_read(const vg_jobs *jobs, const char *text,
                        vg_video_request *req,
                        const char *images[VG_MAX_IMAGES], json_t **doc,
                        vg_error *err)
{
    json_error_t jerr;
    const char *res = NULL, *aspect = NULL, *tier = NULL;
    int audio = 0, fixed = 0;
    json_int_t seed = 0;
    json_t *list = NULL;
    memset(req, 0, sizeof(*req));
    *doc = json_loads(text, 0, &jerr);
    if (*doc == NULL ||
        json_unpack_ex(*doc, &jerr, 0,
                       "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:i, s:I, "
                       "s:o, s?s}",
                       "prompt", &req->prompt, "model", &req->model_name,
                       "resolution", &res, "aspect_ratio", &aspect, "duration",
                       &req->duration, "generate_audio", &audio,
                       "camera_fixed", &fixed, "service_tier", &tier, "fps",
                       &req->fps, "seed", &seed, "images", &list, "provider",
                       &req->provider) != 0 ||
        !json_is_array(list) || json_array_size(list) > VG_MAX_IMAGES)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the stored request cannot be read: %s",
                            *doc == NULL ? jerr.text : "a field is missing");
    if (vg_resolution_parse(res, &req->resolution) != 0 ||
        vg_aspect_parse(aspect, &req->aspect) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "the stored request has an unknown shape");
    req->generate_audio = audio;
    req->camera_fixed = fixed;
    req->tier = strcmp(tier, "flex") == 0 ? VG_TIER_FLEX : VG_TIER_DEFAULT;
    req->seed = seed;
    req->model = vg_catalog_find(jobs->config.catalog, req->model_name);
    for (size_t i = 0; i < json_array_size(list); i++) {
        images[i] = json_string_value(json_array_get(list, i));
        if (images[i] == NULL)
            return vg_error_set(err, 500, "internal_error", NULL,
                                "the stored request cannot be read: an "
                                "image is not a file name");
        req->n_images = (int)i + 1;
    }
    return 0;
}

job_run *jobs_run_new(vg_jobs *jobs, const vg_job *job,
                      const vg_video_request *req, int64_t seed,
                      const char *const *images, vg_error *err)
{
    const vg_model *m = req->model;
    if (m == NULL) {
        vg_error_set(err, 400, "model_unavailable", "model",
                     "the model \"%s\" is no longer served", req->model_name);
        return NULL;
    }
    /* A job whose task is recorded stays with the provider that has it. */
    bool resumes =
        job->upstream_task[0] != '\0' && strcmp(job->upstream_task, "-") != 0;
    provider_slot *slot = resumes
                              ? jobs_slot_named(jobs, job->provider)
                              : jobs_slot_for_model(jobs, m, req->provider);
    if (slot == NULL) {
        vg_error_set(err, 503, "no_provider", "model",
                     "no provider \"%s\" is configured for the model "
                     "\"%s\"",
                     m->provider, req->model_name);
        return NULL;
    }
    job_run *run = calloc(1, sizeof(*run));
    if (run == NULL || (run->prompt = strdup(req->prompt)) == NULL)
        goto oom;
    if (req->provider != NULL)
        snprintf(run->preferred, sizeof(run->preferred), "%s", req->provider);
    memcpy(run->id, job->id, sizeof(run->id));
    run->home = jobs_slot_named(jobs, job->provider);
    run->owner = jobs;
    run->slot = slot;
    run->model = m;
    run->tier = req->tier == VG_TIER_FLEX;
    run->queued_ms = job->created_ms;
    run->state = VG_JOB_QUEUED;
    run->has_webhook = job->webhook_url != NULL && *job->webhook_url;
    vg_job_spec *spec = &run->spec;
    spec->prompt = run->prompt;
    spec->model = m;
    spec->resolution = req->resolution;
    spec->aspect = req->aspect;
    spec->width = job->width;
    spec->height = job->height;
    spec->duration = req->duration;
    spec->fps = req->fps;
    spec->generate_audio = req->generate_audio;
    spec->camera_fixed = req->camera_fixed;
    spec->tier = req->tier;
    spec->seed = (uint32_t)seed;
    for (int i = 0; i < req->n_images; i++) {
        /* Jobs stored before images were blobs name the file itself,
         * <data>/uploads/<job id>-<n>: the blob "uploads/<job id>-<n>". */
        char legacy[96];
        const char *key = images[i];
        if (key[0] == '/') {
            snprintf(legacy, sizeof(legacy), "uploads/%s",
                     strrchr(key, '/') + 1);
            key = legacy;
        }
        if ((run->image_keys[i] = strdup(key)) == NULL)
            goto oom;
        spec->n_images = i + 1;
        /* Providers that fetch images by URL get a signed link to it;
         * the engine drops it for those that take images inline. */
        char url[1024];
        if (slot->provider->remote && jobs->config.sign_upload != NULL &&
            jobs->config.sign_upload(jobs->config.ctx, key, url,
                                     sizeof(url)) == 0) {
            run->image_urls[i] = strdup(url);
            spec->image_urls[i] = run->image_urls[i];
        }
    }
    return run;
oom:
    if (run != NULL)
        jobs_run_free(run, false);
    vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    return NULL;
}

/* Builds a run from a job's stored request; 400/500 errors say why the
 * job cannot run (its model is gone). A missing image fails it when it
 * starts (jobs_fetch_images). */
job_run *jobs_run_from_job(vg_jobs *jobs, const vg_job *job, vg_error *err)
{
    vg_video_request req;
    const char *images[VG_MAX_IMAGES];
    json_t *doc = NULL;
    job_run *run = NULL;
    if (request_read(jobs, job->request_json, &req, images, &doc, err) == 0)
        run = jobs_run_new(jobs, job, &req, req.seed, images, err);
    json_decref(doc);
    return run;
}

/* A stored job whose run cannot be built (its model is gone, an image is
 * missing) fails, refunded. */
int jobs_run_failed_to_load(vg_jobs *jobs, const vg_job *job,
                            const vg_error *err)
{
    vg_log_error("job %s cannot run: %s", job->id, err->message);
    if (jobs_end_in_store(jobs, job->id, VG_JOB_FAILED, err->code,
                          err->message) == VG_STORE_OK &&
        job->webhook_url != NULL && *job->webhook_url)
        jobs_poke_webhooks(jobs);
    return VG_STORE_OK;
}
