/*
 * jobs_recover.c - taking up what a previous run of the process left
 * unfinished: queued jobs queue again, interrupted renders start over,
 * and remote providers' tasks are taken up again, never submitted twice.
 * See jobs.h.
 */
#include "core/jobs_internal.h"

#include <string.h>

#include "util/log.h"

/* A job a remote provider has: take it up again, never submit again. */
static void resume_task(vg_jobs *jobs, const vg_job *job)
{
    vg_error err;
    if (strcmp(job->upstream_task, "-") == 0) {
        /* Stopped between sending the submit and recording its answer:
         * the provider may have the job or not, and cannot be asked. */
        vg_log_error("job %s: vidgate stopped while submitting it to %s; "
                     "not submitting it again (check that provider for a "
                     "stray task)",
                     job->id, job->provider);
        if (jobs_end_in_store(
                jobs, job->id, VG_JOB_FAILED, "interrupted",
                "vidgate stopped while submitting the job to the "
                "provider; it was not submitted again so that it "
                "cannot run twice. The credits were refunded") ==
                VG_STORE_OK &&
            job->webhook_url != NULL && *job->webhook_url)
            jobs_poke_webhooks(jobs);
        return;
    }
    job_run *run = jobs_run_from_job(jobs, job, &err);
    if (run != NULL && run->slot->provider->ops->resume == NULL) {
        jobs_run_free(run, false);
        run = NULL;
        vg_error_set(&err, 503, "no_provider", NULL,
                     "the provider \"%s\" that has the job is no longer "
                     "configured",
                     job->provider);
    }
    if (run == NULL) {
        vg_log_error("job %s cannot be resumed: %s", job->id, err.message);
        if (jobs_end_in_store(jobs, job->id, VG_JOB_FAILED, err.code,
                              err.message) == VG_STORE_OK &&
            job->webhook_url != NULL && *job->webhook_url)
            jobs_poke_webhooks(jobs);
        return;
    }
    pthread_mutex_lock(&jobs->lock);
    run->state = VG_JOB_RUNNING;
    run->phase = PHASE_STARTED;
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
    vg_provider *p = run->slot->provider;
    if (p->ops->resume(p, job->id, job->upstream_task, &err) != 0)
        jobs_end_run(jobs, run, VG_JOB_FAILED, err.code, err.message);
}

static int recover_one(void *ctx, const vg_job *job)
{
    vg_jobs *jobs = ctx;
    vg_error err;
    if (job->state == VG_JOB_RUNNING && job->upstream_task[0] != '\0') {
        resume_task(jobs, job);
        return 0;
    }
    if (job->state == VG_JOB_RUNNING) {
        if (job->attempts >= jobs->config.max_attempts) {
            vg_log_error("job %s was interrupted %d times: giving up", job->id,
                         job->attempts);
            if (jobs_end_in_store(jobs, job->id, VG_JOB_FAILED, "interrupted",
                                  "the job was interrupted by restarts too "
                                  "often; the credits were refunded") ==
                    VG_STORE_OK &&
                job->webhook_url != NULL && *job->webhook_url)
                jobs_poke_webhooks(jobs);
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
    job_run *run = jobs_run_from_job(jobs, job, &err);
    if (run == NULL)
        return jobs_run_failed_to_load(jobs, job, &err);
    if (!jobs_enqueue(jobs, run, false))
        jobs_run_free(run, false);
    return 0;
}

int vg_jobs_recover(vg_jobs *jobs, vg_error *err)
{
    int rc = jobs->store->ops->list_unfinished_jobs(jobs->store, recover_one,
                                                    jobs, err);
    return rc == VG_STORE_OK ? 0 : -1;
}
