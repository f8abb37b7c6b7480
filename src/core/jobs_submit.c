/*
 * jobs_submit.c - what clients ask of the engine: submit a job (priced,
 * its images adopted, its creation committed with the reservation, then
 * queued), paced while dispatch is behind; and cancel one. See jobs.h.
 */
#include "core/jobs_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pricing.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

/* The longest a submit waits for dispatch to catch up (see
 * config.dispatch_backlog): the pacing slows intake, it never refuses
 * it, and a dispatch that stalls for good must not hold clients for
 * good. */
#define DISPATCH_HOLD_MAX_MS 5000
/* How often the pacer looks at the held submits while there are any. */
#define DISPATCH_RECHECK_MS 100

/* ---- submit and cancel ------------------------------------------------- */

/* What makes two creates "the same request" for an idempotency key: the
 * validated fields (seed as asked, so -1 stays -1), the webhook and the
 * images' contents, whatever the body's encoding. */
static int request_hash(const vg_video_request *req, const char *webhook,
                        char out[65], vg_error *err)
{
    char digests[VG_MAX_IMAGES][65];
    const char *images[VG_MAX_IMAGES];
    for (int i = 0; i < req->n_images; i++) {
        if (vg_sha256_file_hex(req->images[i].path, digests[i]) != 0)
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot read an uploaded image");
        images[i] = digests[i];
    }
    json_t *doc = jobs_request_doc(req, req->seed, images);
    char *text = NULL;
    if (doc != NULL &&
        json_object_set_new(doc, "webhook_url",
                            webhook ? json_string(webhook) : json_null()) == 0)
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL)
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    vg_sha256_hex(text, out);
    free(text);
    return 0;
}

/* Stores the request's images as the job's blobs (their keys in
 * moved), taking their files over. */
static int adopt_images(vg_jobs *jobs, const char *job_id,
                        vg_video_request *req, char **moved, vg_error *err)
{
    for (int i = 0; i < req->n_images; i++) {
        char key[96];
        jobs_upload_key(job_id, i, key, sizeof(key));
        if ((moved[i] = strdup(key)) == NULL)
            return vg_error_set(err, 500, "internal_error", NULL,
                                "out of memory");
        vg_error why;
        if (jobs->blob->ops->put_file(jobs->blob, key, req->images[i].path,
                                      &why) != 0) {
            vg_log_error("cannot store %s: %s", key, why.message);
            free(moved[i]);
            moved[i] = NULL;
            return vg_error_set(err, 500, "internal_error", "files",
                                "cannot keep an uploaded image");
        }
    }
    return 0;
}

static void insufficient(vg_jobs *jobs, const char *account_id, int64_t price,
                         vg_error *err)
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
    job_run *run; /* the job's run, queued once the job is committed */
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
        vg_error err;
        if (delete_images && sub->moved[i] != NULL &&
            sub->jobs->blob->ops->remove(sub->jobs->blob, sub->moved[i],
                                         &err) != 0)
            vg_log_error("cannot remove %s: %s", sub->moved[i], err.message);
        free(sub->moved[i]);
    }
    if (sub->run != NULL)
        jobs_run_free(sub->run, false); /* the images are sub->moved */
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
static int64_t undispatched_locked(const provider_slot *s)
{
    int64_t room = s->concurrency - s->busy;
    int64_t waiting = s->n_queued + s->stored.waiting + s->admitting;
    int64_t lined = s->provider->ops->lined != NULL
                        ? s->provider->ops->lined(s->provider)
                        : 0;
    return s->ready + s->launching + lined +
           (room <= 0        ? 0
            : waiting < room ? waiting
                             : room);
}

/* Whether a new submission for s waits before its commit: dispatch is
 * behind (or others wait already, and it goes after them). */
static bool must_hold_locked(const vg_jobs *jobs, const provider_slot *s)
{
    int backlog = jobs->config.dispatch_backlog;
    return s != NULL && backlog > 0 && !jobs->draining &&
           (s->held_head != NULL || undispatched_locked(s) >= backlog);
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
vg_submission *jobs_release_held_locked(vg_jobs *jobs, provider_slot *s,
                                        int64_t now)
{
    vg_submission *list = NULL, **tail = &list;
    while (s->held_head != NULL) {
        vg_submission *sub = s->held_head;
        if (!jobs->draining && sub->held_until > now &&
            undispatched_locked(s) >= jobs->config.dispatch_backlog)
            break;
        held_remove_locked(sub);
        s->admitting++;
        *tail = sub;
        tail = &sub->held_next;
    }
    return list;
}

/* jobs_release_held_locked over every slot; *next_at: when the next hold
 * still in place runs out (0: none). */
vg_submission *jobs_release_all_locked(vg_jobs *jobs, int64_t now,
                                       int64_t *next_at)
{
    vg_submission *list = NULL, **tail = &list;
    *next_at = 0;
    for (int i = 0; i < jobs->n_slots; i++) {
        provider_slot *s = &jobs->slots[i];
        if (s->held_head == NULL)
            continue;
        *tail = jobs_release_held_locked(jobs, s, now);
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
void jobs_commit_released(vg_jobs *jobs, vg_submission *list)
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
void *jobs_pacer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-pacer");
    vg_jobs *jobs = arg;
    pthread_mutex_lock(&jobs->lock);
    while (!jobs->exiting) {
        int64_t next_at;
        vg_submission *released =
            jobs_release_all_locked(jobs, vg_now_ms(), &next_at);
        if (released != NULL) {
            pthread_mutex_unlock(&jobs->lock);
            jobs_commit_released(jobs, released);
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
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
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
    uint32_t seed =
        req->seed >= 0 ? (uint32_t)req->seed : (uint32_t)vg_random_u64();
    int rc = adopt_images(jobs, job->id, req, sub->moved, err);
    memcpy(job->account_id, principal->account_id, sizeof(job->account_id));
    memcpy(job->key_id, principal->key_id, sizeof(job->key_id));
    job->state = VG_JOB_QUEUED;
    snprintf(job->model, sizeof(job->model), "%s", req->model_name);
    snprintf(job->provider, sizeof(job->provider), "%s",
             req->provider != NULL ? req->provider : req->model->provider);
    job->webhook_url = opts->webhook_url ? strdup(opts->webhook_url) : NULL;
    job->flex = req->tier == VG_TIER_FLEX;
    job->price = vg_price_request(req);
    job->seed = seed;
    vg_frame_size(req->resolution, req->aspect, &job->width, &job->height);
    job->created_ms = vg_now_ms();
    if (rc == 0) {
        const char *const *images = (const char *const *)sub->moved;
        json_t *doc = jobs_request_doc(req, seed, images);
        job->request_json = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (job->request_json == NULL)
            rc = vg_error_set(err, 500, "internal_error", NULL,
                              "out of memory");
    }
    /* Its run, built now from the validated request, is queued once the
     * job is durable (vg_jobs_submit_finish). */
    if (rc == 0 && (sub->run = jobs_run_new(jobs, job, req, seed,
                                            (const char *const *)sub->moved,
                                            err)) == NULL)
        rc = -1;
    if (rc != 0) {
        submission_free(sub, true);
        return -1;
    }
    sub->create =
        (vg_job_create){sub->idempotency_key, sub->hash,
                        jobs->config.idempotency_ttl_ms, opts->max_unfinished};
    *out = sub;
    /* Dispatch behind: the submission waits for it, uncommitted, and a
     * worker or the pacer lets it through (jobs_release_held_locked). With
     * pacing off there is nothing to count and no lock to take. */
    sub->home = jobs->config.dispatch_backlog > 0
                    ? jobs_slot_for_model(jobs, req->model, req->provider)
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
    job_run *run = sub->run;
    sub->run = NULL;
    submission_free(sub, false);

    /* The job is durable now; what follows only affects when it runs.
     * Not taken: it waits in the store (a refill or the next start loads
     * it). A held job was created when let through: it waits from then. */
    run->queued_ms = out->created_ms;
    if (!jobs_enqueue(jobs, run, false))
        jobs_run_free(run, false);
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
                   vg_video_request *req, const vg_submit *opts, vg_job *out,
                   bool *replayed, vg_error *err)
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
        rc = jobs_end_in_store(jobs, id, VG_JOB_CANCELLED, "cancelled",
                               "the job was cancelled; its credits were "
                               "refunded");
        if (rc == VG_STORE_ERROR)
            return vg_error_set(err, 500, "internal_error", NULL,
                                "the job could not be cancelled");
        if (rc == VG_STORE_OK && webhook)
            jobs_poke_webhooks(jobs);
        if (store->ops->get_job(store, id, out, err) != VG_STORE_OK)
            return -1;
    }
    if (out->state != VG_JOB_CANCELLED || rc != VG_STORE_OK) {
        vg_error_set(err, 409, "job_finished", NULL,
                     "the job has already ended (%s)",
                     vg_job_state_name(out->state));
        vg_job_clear(out);
        return -1;
    }

    /* Recorded: now stop the work. A run waiting in a line or out its
     * delay ends here; one starting or executing sees the flag. */
    job_run *retired = NULL;
    pthread_mutex_lock(&jobs->lock);
    job_run *run = jobs_find_run(jobs, id);
    if (run != NULL && run->phase == PHASE_STARTED) {
        /* The provider stops its work (and cancels its task where it
         * holds one); one working on a worker's thread sees the flag. */
        run->slot->provider->ops->cancel(run->slot->provider, id, true);
        if (!run->ready) {
            jobs_retire_locked(jobs, run, VG_JOB_CANCELLED);
            retired = run;
        } else {
            atomic_store(&run->cancel, CANCEL_CLIENT);
        }
    } else if (run != NULL) {
        if (run->phase == PHASE_QUEUED || run->phase == PHASE_SLEEPING) {
            if (run->phase == PHASE_QUEUED)
                jobs_queue_drop(jobs, run);
            else
                jobs_line_remove(&run->slot->sleeping, run);
            jobs_retire_locked(jobs, run, VG_JOB_CANCELLED);
            retired = run;
        } else {
            atomic_store(&run->cancel, CANCEL_CLIENT);
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    if (retired != NULL)
        jobs_run_free(retired, true);
    return 0;
}
