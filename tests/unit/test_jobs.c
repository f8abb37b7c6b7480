/*
 * test_jobs.c - the scheduler and lifecycle of core/jobs.c against a real
 * SQLite store and folder blob storage, with the "replay" provider (one
 * slot, a short delay) so that what is tested is the order and the money,
 * not rendering.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "blob/blob.h"
#include "core/catalog.h"
#include "core/jobs.h"
#include "store/store.h"
#include "test_support.h"

#define DELAY_MS 60

typedef struct fixture {
    char db[600];
    char data[512];
    vg_store *store;
    vg_blob *blob;
    vg_catalog *catalog;
    vg_account account;
    vg_principal principal;
    vg_provider_config providers[1];
    vg_provider *built[VG_MAX_PROVIDERS];
    vg_jobs_config config;
    vg_jobs *jobs;
} fixture;

static fixture fx;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_jobs(void)
{
    vg_error err;
    /* Built from the fixture's configuration as the app builds them: a
     * test may change it before starting. One render at a time. */
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s/tmp", fx.data);
    mkdir(tmp, 0700);
    int n = 0;
    if (vg_providers_build(fx.providers, 1, 1, tmp, fx.built, &n, &err) != 0)
        fail_msg("%s", err.message);
    fx.config.providers = fx.built;
    fx.config.n_providers = n;
    fx.jobs = vg_jobs_start(fx.store, fx.blob, &fx.config, &err);
    if (fx.jobs == NULL)
        fail_msg("%s", err.message);
}

static int setup(void **state)
{
    (void)state;
    static int n;
    vg_error err;
    memset(&fx, 0, sizeof(fx));
    char name[32];
    snprintf(name, sizeof(name), "jobs-%d", n);
    snprintf(fx.data, sizeof(fx.data), "%s", vg_test_scratch_path(name));
    vg_test_make_dirs(fx.data);
    snprintf(fx.db, sizeof(fx.db), "%s/vidgate.db", fx.data);
    n++;
    fx.store = vg_test_open_store(fx.db);
    fx.blob = vg_blob_open_fs(fx.data, &err);
    assert_non_null(fx.blob);
    json_t *models = json_loads(
        "[{\"name\": \"slow\", \"description\": \"replay\","
        "  \"provider\": \"replay\", \"modalities\": [\"t2v\"],"
        "  \"resolutions\": [\"480P\"], \"aspect_ratios\": [\"16:9\"],"
        "  \"durations\": {\"min\": 4, \"max\": 12}, \"fps\": [24],"
        "  \"audio\": false, \"price\": {\"per_second\": {\"480P\": 1},"
        "  \"audio_factor\": 1, \"flex_factor\": 0.5}}]",
        0, NULL);
    fx.catalog = vg_catalog_from_json(models, &err);
    json_decref(models);
    assert_non_null(fx.catalog);
    /* replay only checks that the file looks like an MP4; the blob store
     * does not look inside. */
    char clip[600];
    snprintf(clip, sizeof(clip), "%s/clip.mp4", fx.data);
    static const unsigned char head[] = {0, 0, 0, 24,  'f', 't', 'y', 'p',
                                         'i', 's', 'o', 'm', 0, 0, 0, 0};
    vg_test_write_file(clip, head, sizeof(head));
    snprintf(fx.providers[0].name, sizeof(fx.providers[0].name), "replay");
    snprintf(fx.providers[0].file, sizeof(fx.providers[0].file), "%s", clip);
    fx.providers[0].concurrency = 1;
    fx.providers[0].delay_ms = DELAY_MS;
    fx.config.catalog = fx.catalog;
    fx.config.data_dir = fx.data;
    fx.config.flex_max_wait_s = 600;
    fx.config.max_attempts = 3;
    fx.config.idempotency_ttl_ms = 86400000;
    assert_int_equal(fx.store->ops->create_account(fx.store, "jobs", 1000000,
                                                   &fx.account, &err),
                     VG_STORE_OK);
    memcpy(fx.principal.account_id, fx.account.id, 37);
    snprintf(fx.principal.key_id, sizeof(fx.principal.key_id),
             "00000000-0000-4000-8000-000000000000");
    fx.principal.rpm_limit = fx.principal.jobs_limit = -1;
    start_jobs();
    return 0;
}

static void gate_set(bool closed);

static int teardown(void **state)
{
    (void)state;
    gate_set(false); /* a test that failed with the workers stalled */
    vg_jobs_free(fx.jobs);
    fx.blob->ops->close(fx.blob);
    vg_store_close(fx.store);
    vg_catalog_free(fx.catalog);
    return 0;
}

static void fill_request(vg_video_request *req, const char *prompt,
                         vg_tier tier)
{
    memset(req, 0, sizeof(*req));
    req->prompt = prompt;
    req->model_name = "slow";
    req->model = vg_catalog_find(fx.catalog, "slow");
    req->resolution = VG_RES_480P;
    req->aspect = VG_AR_16_9;
    req->duration = 4;
    req->fps = 24;
    req->tier = tier;
    req->seed = -1;
}

static void submit(const char *prompt, vg_tier tier, char id[37])
{
    vg_video_request req;
    vg_job job;
    vg_error err;
    bool replayed;
    fill_request(&req, prompt, tier);
    if (vg_jobs_submit(fx.jobs, &fx.principal, &req, NULL, &job, &replayed,
                       &err) != 0)
        fail_msg("%s", err.message);
    assert_false(replayed);
    memcpy(id, job.id, 37);
    vg_job_clear(&job);
}

static vg_job get(const char *id)
{
    vg_job job;
    vg_error err;
    assert_int_equal(fx.store->ops->get_job(fx.store, id, &job, &err),
                     VG_STORE_OK);
    return job;
}

static vg_job_state wait_ended(const char *id)
{
    for (int i = 0; i < 1000; i++) {
        vg_job job = get(id);
        vg_job_state s = job.state;
        vg_job_clear(&job);
        if (s != VG_JOB_QUEUED && s != VG_JOB_RUNNING)
            return s;
        usleep(10000);
    }
    fail_msg("job %s never ended", id);
    return VG_JOB_FAILED;
}

static int64_t balance(void)
{
    vg_account a;
    vg_error err;
    assert_int_equal(
        fx.store->ops->get_account(fx.store, fx.account.id, &a, &err),
        VG_STORE_OK);
    return a.balance;
}

/* Submits a default job to take the one slot, then the given tiers while
 * it works, and returns the order (indexes into tiers) they started in. */
static void start_order(const vg_tier *tiers, int n, int *order)
{
    char first[37], ids[8][37];
    submit("first", VG_TIER_DEFAULT, first);
    for (int i = 0; i < n; i++)
        submit("next", tiers[i], ids[i]);
    assert_int_equal(wait_ended(first), VG_JOB_SUCCEEDED);
    int64_t started[8];
    for (int i = 0; i < n; i++) {
        assert_int_equal(wait_ended(ids[i]), VG_JOB_SUCCEEDED);
        vg_job job = get(ids[i]);
        started[i] = job.started_ms;
        vg_job_clear(&job);
    }
    for (int i = 0; i < n; i++) {
        order[i] = 0;
        for (int j = 0; j < n; j++)
            if (started[j] < started[i])
                order[i]++;
    }
}

static void test_default_jobs_start_before_waiting_flex_jobs(void **state)
{
    (void)state;
    const vg_tier tiers[] = {VG_TIER_FLEX, VG_TIER_FLEX, VG_TIER_DEFAULT,
                             VG_TIER_DEFAULT};
    int order[4];
    start_order(tiers, 4, order);
    /* flex 1, flex 2, default 1, default 2 start 3rd, 4th, 1st, 2nd. */
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 0);
    assert_int_equal(order[3], 1);
}

static void test_aged_flex_jobs_keep_their_place(void **state)
{
    (void)state;
    /* With no grace at all every flex job has aged at once: the lines
     * merge into submission order. */
    vg_jobs_free(fx.jobs);
    fx.config.flex_max_wait_s = 0;
    start_jobs();
    const vg_tier tiers[] = {VG_TIER_FLEX, VG_TIER_DEFAULT, VG_TIER_FLEX,
                             VG_TIER_DEFAULT};
    int order[4];
    start_order(tiers, 4, order);
    for (int i = 0; i < 4; i++)
        assert_int_equal(order[i], i);
}

static void test_one_slot_means_one_job_at_a_time(void **state)
{
    (void)state;
    char ids[5][37];
    for (int i = 0; i < 5; i++)
        submit("serial", VG_TIER_DEFAULT, ids[i]);
    int64_t prev_finished = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wait_ended(ids[i]), VG_JOB_SUCCEEDED);
        vg_job job = get(ids[i]);
        assert_true(job.started_ms >= prev_finished);
        assert_true(job.finished_ms - job.started_ms >= DELAY_MS);
        prev_finished = job.finished_ms;
        vg_job_clear(&job);
    }
}

static void test_cancel_refunds_queued_and_running_jobs(void **state)
{
    (void)state;
    int64_t before = balance();
    char running[37], queued[37];
    submit("running", VG_TIER_DEFAULT, running);
    submit("queued", VG_TIER_DEFAULT, queued);
    vg_job job;
    vg_error err;
    assert_int_equal(vg_jobs_cancel(fx.jobs, fx.account.id, queued, &job,
                                     &err),
                     0);
    assert_int_equal(job.state, VG_JOB_CANCELLED);
    vg_job_clear(&job);
    assert_int_equal(vg_jobs_cancel(fx.jobs, fx.account.id, running, &job,
                                     &err),
                     0);
    vg_job_clear(&job);
    assert_int_equal(wait_ended(running), VG_JOB_CANCELLED);
    assert_int_equal(balance(), before);
    /* Ended jobs cannot be cancelled again, and nobody else's can be
     * cancelled at all. */
    assert_int_equal(vg_jobs_cancel(fx.jobs, fx.account.id, queued, &job,
                                     &err),
                     -1);
    assert_int_equal(err.status, 409);
    assert_int_equal(vg_jobs_cancel(fx.jobs, "someone-else", queued, &job,
                                    &err),
                     -1);
    assert_int_equal(err.status, 404);
    /* The cancelled job left no video behind. */
    char path[700];
    snprintf(path, sizeof(path), "%s/videos/%s.mp4", fx.data, running);
    assert_int_not_equal(access(path, F_OK), 0);
}

typedef struct recorder {
    vg_job_listener listener;
    atomic_int events;
    atomic_int done;
    atomic_int last_state;
} recorder;

static void record(vg_job_listener *listener, const vg_job_event *event)
{
    recorder *r = (recorder *)listener;
    atomic_fetch_add(&r->events, 1);
    atomic_store(&r->last_state, (int)event->state);
    if (event->done)
        atomic_fetch_add(&r->done, 1);
}

static void test_listeners_hear_the_start_and_the_end_once(void **state)
{
    (void)state;
    char id[37];
    recorder r;
    memset(&r, 0, sizeof(r));
    r.listener.notify = record;
    /* Keep the slot busy so the job is still queued when we listen. */
    char first[37];
    submit("first", VG_TIER_DEFAULT, first);
    submit("listened", VG_TIER_DEFAULT, id);
    vg_job_event now;
    assert_int_equal(vg_jobs_listen(fx.jobs, id, &r.listener, &now), 0);
    assert_int_equal(now.state, VG_JOB_QUEUED);
    assert_int_equal(wait_ended(id), VG_JOB_SUCCEEDED);
    for (int i = 0; i < 200 && atomic_load(&r.done) == 0; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&r.done), 1);
    assert_true(atomic_load(&r.events) >= 2); /* running, then done */
    assert_int_equal(atomic_load(&r.last_state), VG_JOB_SUCCEEDED);
    vg_jobs_unlisten(fx.jobs, &r.listener); /* detached: harmless */
    /* An ended job has nothing to listen to. */
    assert_int_equal(vg_jobs_listen(fx.jobs, id, &r.listener, &now), 1);
}

static void test_stopping_requeues_work_for_the_next_start(void **state)
{
    (void)state;
    int64_t before = balance();
    char sleeping[37], queued[37];
    /* A long delay: the first job is still "upstream" when we stop. */
    vg_jobs_free(fx.jobs);
    fx.providers[0].delay_ms = 5000;
    start_jobs();
    submit("interrupted", VG_TIER_DEFAULT, sleeping);
    submit("waiting", VG_TIER_DEFAULT, queued);
    usleep(100 * 1000);
    vg_job job = get(sleeping);
    assert_int_equal(job.state, VG_JOB_RUNNING);
    vg_job_clear(&job);
    vg_jobs_stop(fx.jobs, 0);
    job = get(sleeping);
    assert_int_equal(job.state, VG_JOB_QUEUED);
    assert_int_equal(job.attempts, 1);
    vg_job_clear(&job);
    /* Reserved, not refunded: the jobs are still owed. */
    assert_true(balance() < before);

    vg_jobs_free(fx.jobs);
    fx.providers[0].delay_ms = DELAY_MS;
    start_jobs();
    vg_error err;
    assert_int_equal(vg_jobs_recover(fx.jobs, &err), 0);
    assert_int_equal(wait_ended(sleeping), VG_JOB_SUCCEEDED);
    assert_int_equal(wait_ended(queued), VG_JOB_SUCCEEDED);
    job = get(sleeping);
    assert_int_equal(job.attempts, 2);
    int64_t price = job.price;
    vg_job_clear(&job);
    assert_int_equal(balance(), before - 2 * price);
}

static void test_a_job_interrupted_too_often_fails_refunded(void **state)
{
    (void)state;
    int64_t before = balance();
    char id[37];
    vg_jobs_free(fx.jobs);
    fx.providers[0].delay_ms = 5000;
    fx.config.max_attempts = 1;
    start_jobs();
    submit("crash loop", VG_TIER_DEFAULT, id);
    usleep(100 * 1000);
    /* What a crash leaves: the job running in the store. Freeing the
     * jobs without the store seeing a stop is not possible here, so
     * stop and mark it running again by hand, as a kill -9 would have
     * left it. */
    vg_jobs_stop(fx.jobs, 0);
    vg_error err;
    assert_int_equal(fx.store->ops->start_job(fx.store, id, now_ms(), &err),
                     VG_STORE_OK);
    vg_jobs_free(fx.jobs);
    start_jobs();
    assert_int_equal(vg_jobs_recover(fx.jobs, &err), 0);
    vg_job job = get(id);
    assert_int_equal(job.state, VG_JOB_FAILED);
    assert_string_equal(job.error_code, "interrupted");
    vg_job_clear(&job);
    assert_int_equal(balance(), before);
}

/* ---- intake paced by dispatch ------------------------------------------- */

/* Holds every worker that starts a job (the worker that picks a job
 * hands the store its start, queued or waited for), so that dispatch
 * falls behind at will. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool closed;
    int entered;
    const vg_store_ops *real;
    vg_store_ops ops;
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* A worker arrives at the gate and waits while it is closed. */
static void gate_enter(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.entered++;
    pthread_cond_broadcast(&gate.cond);
    while (gate.closed)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

static int gated_start_job(vg_store *store, const char *id, int64_t now,
                           vg_error *err)
{
    gate_enter();
    return gate.real->start_job(store, id, now, err);
}

static int gated_start_job_async(vg_store *store, const char *id,
                                 int64_t now, const char *provider,
                                 vg_store_written done, void *ctx,
                                 vg_error *err)
{
    gate_enter();
    return gate.real->start_job_async(store, id, now, provider, done, ctx,
                                      err);
}

static void gate_set(bool closed)
{
    pthread_mutex_lock(&gate.lock);
    gate.closed = closed;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

/* ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return until;
}

/* Whether n workers have reached the gate within ms. */
static bool gate_reached(int n, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&gate.lock);
    while (gate.entered < n &&
           pthread_cond_timedwait(&gate.cond, &gate.lock, &until) == 0)
        ;
    bool reached = gate.entered >= n;
    pthread_mutex_unlock(&gate.lock);
    return reached;
}

/* Restarts the jobs with room for 100 at once, starts gated (closed),
 * the given backlog, and every worker stopped at the gate with one job
 * more queued behind them: dispatch is one job behind. Returns the jobs
 * submitted (their ids in ids). */
static int stall_dispatch(int backlog, char ids[][37], int max)
{
    vg_jobs_free(fx.jobs);
    fx.providers[0].concurrency = 100;
    fx.providers[0].delay_ms = 0;
    fx.config.dispatch_backlog = backlog;
    gate.real = fx.store->ops;
    gate.ops = *gate.real;
    gate.ops.start_job = gated_start_job;
    gate.ops.start_job_async = gated_start_job_async;
    gate.entered = 0;
    fx.store->ops = &gate.ops;
    gate_set(true);
    start_jobs();
    int n = 0;
    for (;;) {
        assert_true(n < max);
        submit("stalled", VG_TIER_DEFAULT, ids[n]);
        n++;
        /* Every worker is at the gate: this job stays in line. */
        if (!gate_reached(n, 300))
            break;
    }
    return n;
}

static void gate_remove(void)
{
    gate_set(false);
    fx.store->ops = gate.real;
}

typedef struct held_submit {
    vg_video_request req;
    vg_submission *sub;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int64_t done_ms;
} held_submit;

static void held_done(void *ctx)
{
    held_submit *h = ctx;
    pthread_mutex_lock(&h->lock);
    h->done = true;
    h->done_ms = now_ms();
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void held_start(held_submit *h, const char *prompt)
{
    vg_error err;
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    fill_request(&h->req, prompt, VG_TIER_DEFAULT);
    if (vg_jobs_submit_start(fx.jobs, &fx.principal, &h->req, NULL,
                             held_done, h, &h->sub, &err) != 0)
        fail_msg("%s", err.message);
}

/* Whether the submission's commit was answered within ms. */
static bool held_answered(held_submit *h, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&h->lock);
    while (!h->done &&
           pthread_cond_timedwait(&h->cond, &h->lock, &until) == 0)
        ;
    bool done = h->done;
    pthread_mutex_unlock(&h->lock);
    return done;
}

static void held_finish(held_submit *h, char id[37])
{
    vg_job job;
    vg_error err;
    bool replayed;
    if (vg_jobs_submit_finish(fx.jobs, h->sub, &job, &replayed, &err) != 0)
        fail_msg("%s", err.message);
    memcpy(id, job.id, 37);
    vg_job_clear(&job);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
}

static int64_t price_of(const char *id)
{
    vg_job job = get(id);
    int64_t price = job.price;
    vg_job_clear(&job);
    return price;
}

static void test_submits_wait_while_dispatch_is_behind(void **state)
{
    (void)state;
    int64_t before = balance();
    char ids[64][37], late[37], last[37];
    int n = stall_dispatch(1, ids, 64);

    /* Dispatch is behind: a submit waits, uncommitted. */
    static held_submit gone, timed, caught;
    held_start(&gone, "abandoned while held");
    assert_false(held_answered(&gone, 300));
    /* Its client goes away: no job, nothing charged. */
    vg_jobs_submit_abandon(fx.jobs, gone.sub);

    /* A hold that dispatch never ends runs out: the submit goes on. */
    held_start(&timed, "held until its hold ran out");
    int64_t held_from = now_ms();
    assert_true(held_answered(&timed, 8000));
    assert_true(timed.done_ms - held_from >= 4500);
    held_finish(&timed, late);

    /* Dispatch catching up lets the next one through at once. */
    held_start(&caught, "held until the workers caught up");
    assert_false(held_answered(&caught, 300));
    int64_t opened = now_ms();
    gate_remove();
    assert_true(held_answered(&caught, 2000));
    assert_true(caught.done_ms - opened < 2000);
    held_finish(&caught, last);

    int64_t spent = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(wait_ended(ids[i]), VG_JOB_SUCCEEDED);
        spent += price_of(ids[i]);
    }
    assert_int_equal(wait_ended(late), VG_JOB_SUCCEEDED);
    assert_int_equal(wait_ended(last), VG_JOB_SUCCEEDED);
    spent += price_of(late) + price_of(last);
    /* The abandoned one cost nothing. */
    assert_int_equal(balance(), before - spent);
}

static void test_no_backlog_means_no_wait(void **state)
{
    (void)state;
    char ids[64][37], id[37];
    stall_dispatch(0, ids, 64);
    static held_submit h;
    held_start(&h, "never held");
    assert_true(held_answered(&h, 2000));
    held_finish(&h, id);
    vg_job job = get(id);
    assert_int_equal(job.state, VG_JOB_QUEUED);
    vg_job_clear(&job);
    gate_remove();
    assert_int_equal(wait_ended(id), VG_JOB_SUCCEEDED);
}

static void test_a_cancel_that_shortens_the_line_lets_a_held_submit_in(
    void **state)
{
    (void)state;
    char ids[64][37], id[37];
    int n = stall_dispatch(1, ids, 64);
    static held_submit h;
    held_start(&h, "held behind a job that is cancelled");
    assert_false(held_answered(&h, 300));
    /* The job in line behind the stalled workers is cancelled: dispatch
     * is no longer behind, though no worker has moved. */
    vg_job job;
    vg_error err;
    int64_t cancelled = now_ms();
    assert_int_equal(vg_jobs_cancel(fx.jobs, fx.account.id, ids[n - 1], &job,
                                     &err),
                     0);
    assert_int_equal(job.state, VG_JOB_CANCELLED);
    vg_job_clear(&job);
    assert_true(held_answered(&h, 2000));
    assert_true(h.done_ms - cancelled < 1000);
    held_finish(&h, id);
    gate_remove();
    assert_int_equal(wait_ended(id), VG_JOB_SUCCEEDED);
    for (int i = 0; i < n - 1; i++)
        assert_int_equal(wait_ended(ids[i]), VG_JOB_SUCCEEDED);
}

static void *stop_jobs(void *arg)
{
    (void)arg;
    vg_jobs_stop(fx.jobs, 0);
    return NULL;
}

static void test_stopping_commits_held_submits(void **state)
{
    (void)state;
    char ids[64][37], id[37];
    stall_dispatch(1, ids, 64);
    static held_submit h;
    held_start(&h, "held at the stop");
    assert_false(held_answered(&h, 300));
    pthread_t stopper;
    assert_int_equal(pthread_create(&stopper, NULL, stop_jobs, NULL), 0);
    /* Accepted before the stop: it commits, queued for the next start. */
    bool answered = held_answered(&h, 2000);
    gate_remove();
    pthread_join(stopper, NULL);
    assert_true(answered);
    held_finish(&h, id);
    vg_job job = get(id);
    assert_int_equal(job.state, VG_JOB_QUEUED);
    vg_job_clear(&job);
}

/* ---- reference images are blobs ------------------------------------------ */

static void submit_with_image(const char *prompt, const char *bytes,
                              char id[37])
{
    static int n;
    char path[700];
    snprintf(path, sizeof(path), "%s/tmp/upload-%d.png", fx.data, n++);
    vg_test_write_file(path, bytes, strlen(bytes));
    vg_video_request req;
    vg_job job;
    vg_error err;
    bool replayed;
    fill_request(&req, prompt, VG_TIER_DEFAULT);
    req.images[0] = (vg_image){path, VG_IMAGE_PNG, (int64_t)strlen(bytes)};
    req.n_images = 1;
    if (vg_jobs_submit(fx.jobs, &fx.principal, &req, NULL, &job, &replayed,
                       &err) != 0)
        fail_msg("%s", err.message);
    /* Taken over by the job. */
    assert_int_equal(access(path, F_OK), -1);
    memcpy(id, job.id, 37);
    vg_job_clear(&job);
}

static bool upload_exists(const char *id)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/uploads/%s-0", fx.data, id);
    return access(path, F_OK) == 0;
}

static void set_stored_image(const char *id, const char *image)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx.db, &db), SQLITE_OK);
    char *sql = sqlite3_mprintf(
        "UPDATE jobs SET request_json = json_set(request_json, '$.images', "
        "json_array(%Q)) WHERE id = %Q",
        image, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_free(sql);
    sqlite3_close(db);
}

static void test_a_jobs_images_are_blobs_named_by_key(void **state)
{
    (void)state;
    char id[37];
    submit_with_image("with a picture", "not really a png", id);
    /* The job names its image by key, never by a local path. */
    vg_job job = get(id);
    char expected[128];
    snprintf(expected, sizeof(expected), "\"images\":[\"uploads/%s-0\"]", id);
    assert_non_null(strstr(job.request_json, expected));
    vg_job_clear(&job);
    assert_int_equal(wait_ended(id), VG_JOB_SUCCEEDED);
    /* Its end removes the blob and the worker's copy. */
    for (int i = 0; i < 200 && upload_exists(id); i++)
        usleep(10000);
    assert_false(upload_exists(id));
    char copy[700];
    snprintf(copy, sizeof(copy), "%s/tmp/run-%s-0", fx.data, id);
    assert_int_equal(access(copy, F_OK), -1);
}

/* Jobs stored before images were blobs (an absolute path to
 * <data>/uploads/<id>-<n>) still run; a job whose image blob is gone
 * fails when it starts, refunded. */
static void test_stored_jobs_find_their_images_old_style_or_fail(void **state)
{
    (void)state;
    int64_t before = balance();
    vg_jobs_free(fx.jobs);
    fx.providers[0].delay_ms = 5000;
    start_jobs();
    char busy[37], legacy[37], lost[37];
    submit("takes the slot", VG_TIER_DEFAULT, busy);
    usleep(100 * 1000);
    submit_with_image("old style", "legacy bytes", legacy);
    submit_with_image("lost", "gone bytes", lost);
    vg_jobs_stop(fx.jobs, 0);
    vg_jobs_free(fx.jobs);
    assert_true(upload_exists(legacy));
    char path[700];
    snprintf(path, sizeof(path), "%s/uploads/%s-0", fx.data, legacy);
    set_stored_image(legacy, path);
    snprintf(path, sizeof(path), "%s/uploads/%s-0", fx.data, lost);
    assert_int_equal(unlink(path), 0);

    fx.providers[0].delay_ms = DELAY_MS;
    start_jobs();
    vg_error err;
    assert_int_equal(vg_jobs_recover(fx.jobs, &err), 0);
    assert_int_equal(wait_ended(busy), VG_JOB_SUCCEEDED);
    assert_int_equal(wait_ended(legacy), VG_JOB_SUCCEEDED);
    assert_int_equal(wait_ended(lost), VG_JOB_FAILED);
    vg_job job = get(lost);
    assert_non_null(strstr(job.error_message, "reference image"));
    vg_job_clear(&job);
    for (int i = 0; i < 200 && upload_exists(legacy); i++)
        usleep(10000);
    assert_false(upload_exists(legacy));
    job = get(busy);
    int64_t price = job.price;
    vg_job_clear(&job);
    /* Two ran and were charged; the lost one was refunded. */
    assert_int_equal(balance(), before - 2 * price);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_default_jobs_start_before_waiting_flex_jobs),
        T(test_aged_flex_jobs_keep_their_place),
        T(test_one_slot_means_one_job_at_a_time),
        T(test_cancel_refunds_queued_and_running_jobs),
        T(test_listeners_hear_the_start_and_the_end_once),
        T(test_stopping_requeues_work_for_the_next_start),
        T(test_a_job_interrupted_too_often_fails_refunded),
        T(test_submits_wait_while_dispatch_is_behind),
        T(test_no_backlog_means_no_wait),
        T(test_stopping_commits_held_submits),
        T(test_a_cancel_that_shortens_the_line_lets_a_held_submit_in),
        T(test_a_jobs_images_are_blobs_named_by_key),
        T(test_stored_jobs_find_their_images_old_style_or_fail),
    };
    return cmocka_run_group_tests(tests, vg_test_scratch_setup,
                                  vg_test_scratch_teardown);
}
