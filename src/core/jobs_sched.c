/*
 * jobs_sched.c - the scheduler: which run a worker takes next (tiers,
 * aging, slots, the ready line of runs under way), the worker threads,
 * and the store's lines of queued jobs loaded as the lines in memory
 * shorten. See jobs.h for the rules and jobs_internal.h for the data.
 */
#include "core/jobs_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/log.h"

/* How long a line whose last refill loaded nothing waits before the
 * next, unless room appears first. */
#define REFILL_RETRY_MS 1000

/* The ready line's share of the workers' turns while jobs wait to start
 * (see pick). A remote provider's job takes five ready turns once started (its
 * start recorded, its task, the task recorded, its result, the result
 * recorded), so four to one gives starts a little more than their share:
 * the ready line grows then, and the intake pacing, which counts it,
 * holds new submits until the workers are through it. */
#define READY_TURNS_PER_START 4

/* The slot a new run of the model waits in: the preferred provider's
 * when it can take work now, else its first route that can, else its
 * first route that exists. */
provider_slot *jobs_slot_for_model(vg_jobs *jobs, const vg_model *m,
                                   const char *preferred)
{
    provider_slot *first = NULL;
    if (preferred != NULL && *preferred != '\0') {
        provider_slot *s = jobs_slot_named(jobs, preferred);
        if (s != NULL && jobs_slot_available(s))
            return s;
    }
    for (size_t i = 0; i < m->n_routes; i++) {
        provider_slot *s = jobs_slot_named(jobs, m->routes[i].provider);
        if (s == NULL)
            continue;
        if (jobs_slot_available(s))
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
            jobs_line_remove(&s->sleeping, run);
            run->phase = PHASE_WOKEN;
            run->ready = true; /* the worker's, which hands it over */
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
        jobs_queue_drop(jobs, run);
        run->phase = PHASE_STARTING;
        s->busy++;
        jobs->busy++;
        if (s->provider->remote) {
            run->launching = true;
            s->launching++;
        }
        return run;
    }
    return NULL;
}

/* Puts a run in the table and its line. False when it is not taken (the
 * caller frees it): stopping, the run already here (loaded by a refill
 * before its submit got this far), or, unless it is being loaded, its
 * provider's line in memory full or older jobs of its provider waiting
 * in the store only: it waits in the store then, queued, for a refill.
 * Each provider has its own line, so one provider's backlog never holds
 * up another's jobs. */
bool jobs_enqueue(vg_jobs *jobs, job_run *run, bool loading)
{
    pthread_mutex_lock(&jobs->lock);
    if (jobs->draining || jobs_find_run(jobs, run->id) != NULL) {
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
    jobs_queue_add(jobs, run);
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

static int load_queued(void *ctx, const vg_job *job)
{
    refill *r = ctx;
    vg_jobs *jobs = r->jobs;
    r->rows++;
    /* The strays' listing has every provider's jobs; the others are
     * their providers' to load. */
    if (r->strays && jobs_slot_named(jobs, job->provider) != NULL)
        return VG_STORE_OK;
    pthread_mutex_lock(&jobs->lock);
    bool here = jobs_find_run(jobs, job->id) != NULL;
    pthread_mutex_unlock(&jobs->lock);
    if (here)
        return VG_STORE_OK;
    vg_error err;
    job_run *run = jobs_run_from_job(jobs, job, &err);
    if (run == NULL)
        return jobs_run_failed_to_load(jobs, job, &err);
    /* It runs where its model is served now, which has room or not. */
    pthread_mutex_lock(&jobs->lock);
    bool room = run->slot->n_queued < jobs->config.queued_in_memory;
    pthread_mutex_unlock(&jobs->lock);
    if (room && jobs_enqueue(jobs, run, true)) {
        r->loaded++;
        return VG_STORE_OK;
    }
    if (!room)
        r->left++;
    jobs_run_free(run, false);
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
    int room =
        jobs->config.queued_in_memory - (slot != NULL ? slot->n_queued : 0);
    if (room < 1)
        room = 1;
    int limit = room + jobs->queued_runs + jobs->busy;
    pthread_mutex_unlock(&jobs->lock);

    refill r = {jobs, slot == NULL, 0, 0, 0};
    vg_error err;
    int rc = jobs->store->ops->list_queued_jobs(
        jobs->store, slot != NULL ? slot->name : NULL, limit, load_queued, &r,
        &err);
    if (rc != VG_STORE_OK)
        vg_log_error("cannot load queued jobs: %s", err.message);

    pthread_mutex_lock(&jobs->lock);
    /* Jobs left in the store since the listing began are counted on top
     * (one may also have been listed: a later refill finds it here). */
    int64_t since = line->waiting - waiting;
    if (rc == VG_STORE_OK && r.rows < limit)
        line->waiting = r.left + since; /* it listed them all */
    else if (rc == VG_STORE_OK)
        line->waiting =
            (waiting - r.loaded > 1 ? waiting - r.loaded : 1) + since;
    /* Nothing loaded (no room where they run, or the store failed): not
     * again at once. */
    if (r.loaded == 0 && line->waiting > 0)
        line->retry_ms = vg_now_ms() + REFILL_RETRY_MS;
    jobs->refilling = false;
    pthread_cond_broadcast(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
}

/* Whether a run sleeps out a delay; caller holds the lock. */
static bool any_sleeping(const vg_jobs *jobs)
{
    for (int i = 0; i < jobs->n_slots; i++)
        if (jobs->slots[i].sleeping.head != NULL)
            return true;
    return false;
}

void *jobs_worker_main(void *arg)
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
            vg_submission *released =
                jobs_release_all_locked(jobs, now, &hold_at);
            if (released != NULL) {
                pthread_mutex_unlock(&jobs->lock);
                jobs_commit_released(jobs, released);
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
        vg_submission *released =
            jobs_release_held_locked(jobs, run->slot, now);
        pthread_mutex_unlock(&jobs->lock);
        jobs_commit_released(jobs, released);
        if (run->step != STEP_NONE)
            jobs_after_write(jobs, run);
        else if (run->phase == PHASE_STARTING)
            jobs_begin(jobs, run);
        else if (run->phase == PHASE_STARTED)
            jobs_handle_events(jobs, run);
        else
            jobs_launch(jobs, run);
        pthread_mutex_lock(&jobs->lock);
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}
