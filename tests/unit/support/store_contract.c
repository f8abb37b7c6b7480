/*
 * store_contract.c - the contract of store.h, one test per rule, run
 * against any backend (vg_store_contract_run): test_store_sqlite.c runs
 * it on SQLite, and the next backend runs the same suite unchanged.
 *
 * Every test works on a store of its own, so tests never see each other's
 * rows. What a test checks goes through store.h, with two exceptions a
 * backend under test answers for itself: where a rule is about what was
 * written (a refused job writes nothing, a refund happens once, only a
 * key's hash is stored) the test counts rows with the backend's count
 * (one number from SQL on a connection of its own, the tables being the
 * same in every SQL backend), instead of trusting the store's own view;
 * and a fault that makes a whole commit fail is the backend's poison.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store_contract.h"
#include "test_support.h"
#include "util/crypto.h"

/* The backend under test (vg_store_contract_run). */
static const vg_store_backend_test *B;

/* ---- helpers ----------------------------------------------------------- */

static int64_t count_ledger(const char *path, const char *kind)
{
    /* Only constants of this file are pasted in; the store itself binds
     * every value. */
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM ledger WHERE kind = '%s'",
             kind);
    return B->count(path, sql);
}

void vg_sc_new_account(vg_store *store, const char *name, int64_t credits,
                       vg_account *out)
{
    vg_error err;
    assert_int_equal(
        store->ops->create_account(store, name, credits, out, &err),
        VG_STORE_OK);
}

static char request_json[] = "{\"prompt\":\"a cat\",\"seconds\":4}";

void vg_sc_fill_job(vg_job *job, const char *account_id, int64_t price)
{
    memset(job, 0, sizeof(*job));
    vg_uuid_v4(job->id);
    snprintf(job->account_id, sizeof(job->account_id), "%s", account_id);
    snprintf(job->key_id, sizeof(job->key_id), "key-1");
    snprintf(job->model, sizeof(job->model), "test-model");
    snprintf(job->provider, sizeof(job->provider), "fake");
    job->request_json = request_json;
    job->price = price;
    job->seed = 42;
    job->width = 640;
    job->height = 360;
}

/* create_job without idempotency or a limit, as most tests want it. */
static int create_job(vg_store *store, const vg_job *job, vg_error *err)
{
    return store->ops->create_job(store, job, NULL, NULL, err);
}

int64_t vg_sc_balance_of(vg_store *store, const char *account_id)
{
    vg_account a;
    vg_error err;
    assert_int_equal(store->ops->get_account(store, account_id, &a, &err),
                     VG_STORE_OK);
    return a.balance;
}

/* ---- asynchronous creates ---------------------------------------------- */

typedef struct async_tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int rc[64];
} async_tally;

typedef struct async_slot {
    async_tally *tally;
    int index;
} async_slot;

static void async_done(void *ctx, int rc)
{
    async_slot *slot = ctx;
    async_tally *t = slot->tally;
    pthread_mutex_lock(&t->lock);
    t->rc[slot->index] = rc;
    t->done++;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void wait_async(async_tally *t, int n)
{
    pthread_mutex_lock(&t->lock);
    while (t->done < n)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

static void test_async_creates_report_each_outcome_once(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("async_creates", path, sizeof(path));
    vg_account account;
    vg_sc_new_account(store, "async", 10000, &account);
    /* 12 jobs of 1000 against 10000 credits: 10 fit, 2 do not. */
    enum { N = 12 };
    static vg_job jobs[N];
    static vg_error errs[N];
    async_tally t = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    async_slot slots[N];
    for (int i = 0; i < N; i++) {
        vg_sc_fill_job(&jobs[i], account.id, 1000);
        slots[i] = (async_slot){&t, i};
        assert_int_equal(store->ops->create_job_async(store, &jobs[i], NULL,
                                                      NULL, &errs[i],
                                                      async_done, &slots[i]),
                         VG_STORE_OK);
    }
    wait_async(&t, N);
    int ok = 0, insufficient = 0;
    for (int i = 0; i < N; i++) {
        ok += t.rc[i] == VG_STORE_OK;
        insufficient += t.rc[i] == VG_STORE_INSUFFICIENT;
    }
    assert_int_equal(ok, 10);
    assert_int_equal(insufficient, 2);
    assert_int_equal(vg_sc_balance_of(store, account.id), 0);
    /* Committed before reported: a second connection sees every job. */
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM jobs"), 10);

    /* A replay through the async path hands out the earlier job. */
    vg_job first, again, existing;
    vg_error e1, e2;
    vg_sc_fill_job(&first, account.id, 0);
    vg_sc_fill_job(&again, account.id, 0);
    vg_job_create opts = {"key-1", "hash-1", 86400000, 0};
    async_tally t2 = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    async_slot s0 = {&t2, 0}, s1 = {&t2, 1};
    memset(&existing, 0, sizeof(existing));
    assert_int_equal(store->ops->create_job_async(store, &first, &opts, NULL,
                                                  &e1, async_done, &s0),
                     VG_STORE_OK);
    assert_int_equal(store->ops->create_job_async(store, &again, &opts,
                                                  &existing, &e2, async_done,
                                                  &s1),
                     VG_STORE_OK);
    wait_async(&t2, 2);
    assert_int_equal(t2.rc[0], VG_STORE_OK);
    assert_int_equal(t2.rc[1], VG_STORE_EXISTS);
    assert_string_equal(existing.id, first.id);
    vg_job_clear(&existing);

    /* Refused before queueing: an error at once, and no callback. */
    vg_job bad;
    vg_sc_fill_job(&bad, account.id, -5);
    assert_int_equal(store->ops->create_job_async(store, &bad, NULL, NULL, &e1,
                                                  async_done, &s0),
                     VG_STORE_ERROR);
    vg_store_close(store);
    assert_int_equal(t2.done, 2);
    B->remove(path);
}

typedef struct find_row {
    const char *account_id;
    vg_ledger_row row;
    int found;
    int mismatches;
} find_row;

static int collect_row(void *ctx, const vg_ledger_row *row)
{
    find_row *f = ctx;
    if (row->balance != row->grants - row->settled - row->open_reservations)
        f->mismatches++;
    if (f->account_id != NULL && strcmp(row->account_id, f->account_id) == 0) {
        f->row = *row;
        f->found++;
    }
    return 0;
}

/* The ledger row of one account; fails the test if any account breaks
 * the invariant. */
vg_ledger_row vg_sc_ledger_of(vg_store *store, const char *account_id)
{
    find_row f;
    memset(&f, 0, sizeof(f));
    f.account_id = account_id;
    vg_error err;
    assert_int_equal(store->ops->ledger_rows(store, collect_row, &f, &err),
                     VG_STORE_OK);
    assert_int_equal(f.found, 1);
    assert_int_equal(f.mismatches, 0);
    return f.row;
}

void vg_sc_succeed(vg_store *store, const char *id, int expect)
{
    vg_job done;
    memset(&done, 0, sizeof(done));
    snprintf(done.id, sizeof(done.id), "%s", id);
    snprintf(done.video_key, sizeof(done.video_key), "videos/%s.mp4", id);
    done.seed = 7;
    done.width = 1280;
    done.height = 720;
    done.prompt_tokens = 11;
    done.completion_tokens = 22;
    done.finished_ms = 5000;
    vg_error err;
    assert_int_equal(store->ops->succeed_job(store, &done, &err), expect);
}

/* ---- accounts ---------------------------------------------------------- */

static void test_create_account_records_its_grant(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("create_account", path, sizeof(path));
    vg_error err;

    vg_account alice, bob, got;
    vg_sc_new_account(store, "alice", 5000, &alice);
    assert_int_equal(strlen(alice.id), 36);
    assert_string_equal(alice.name, "alice");
    assert_int_equal(alice.balance, 5000);
    assert_true(alice.created_ms > 0);
    assert_int_equal(store->ops->get_account(store, alice.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.id, alice.id);
    assert_string_equal(got.name, "alice");
    assert_int_equal(got.balance, 5000);
    assert_int_equal(got.created_ms, alice.created_ms);

    vg_ledger_row row = vg_sc_ledger_of(store, alice.id);
    assert_int_equal(row.grants, 5000);
    assert_int_equal(count_ledger(path, "grant"), 1);

    /* A zero start records no grant row. */
    vg_sc_new_account(store, "bob", 0, &bob);
    assert_int_equal(bob.balance, 0);
    assert_int_equal(count_ledger(path, "grant"), 1);
    assert_int_equal(vg_sc_ledger_of(store, bob.id).grants, 0);

    int64_t count = 0;
    assert_int_equal(store->ops->count_accounts(store, &count, &err),
                     VG_STORE_OK);
    assert_int_equal(count, 2);

    assert_int_equal(store->ops->get_account(store, "nope", &got, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->create_account(store, "x", -1, &got, &err),
                     VG_STORE_ERROR);
    char long_name[200];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(
        store->ops->create_account(store, long_name, 1, &got, &err),
        VG_STORE_ERROR);
    assert_true(strlen(err.message) > 0);
    assert_int_equal(store->ops->count_accounts(store, &count, &err),
                     VG_STORE_OK);
    assert_int_equal(count, 2);

    vg_store_close(store);
    B->remove(path);
}

static void test_grant_credits_adds_and_journals(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("grant", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 5000, &a);

    assert_int_equal(
        store->ops->grant_credits(store, a.id, 2500, "top-up", &err),
        VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 7500);
    assert_int_equal(vg_sc_ledger_of(store, a.id).grants, 7500);
    assert_int_equal(count_ledger(path, "grant"), 2);
    assert_int_equal(
        B->count(path, "SELECT COUNT(*) FROM ledger WHERE note = 'top-up'"),
        1);

    assert_int_equal(
        store->ops->grant_credits(store, "no-such-account", 10, "", &err),
        VG_STORE_NOT_FOUND);
    memset(&err, 0, sizeof(err));
    assert_int_equal(store->ops->grant_credits(store, a.id, 0, "", &err),
                     VG_STORE_ERROR);
    assert_true(strlen(err.message) > 0);
    assert_int_equal(store->ops->grant_credits(store, a.id, -5, "", &err),
                     VG_STORE_ERROR);
    assert_int_equal(
        store->ops->grant_credits(store, a.id, INT64_MAX, "", &err),
        VG_STORE_ERROR);
    assert_int_equal(vg_sc_balance_of(store, a.id), 7500);
    assert_int_equal(count_ledger(path, "grant"), 2);

    vg_store_close(store);
    B->remove(path);
}

/* ---- jobs and money ---------------------------------------------------- */

static void test_create_job_insufficient_writes_nothing(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("insufficient", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 1000, &a);

    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 1500);
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &job, &err), VG_STORE_INSUFFICIENT);
    assert_string_equal(err.code, "insufficient_credits");
    assert_int_equal(vg_sc_balance_of(store, a.id), 1000);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM jobs"), 0);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM ledger"), 1);

    /* An unknown account is not an empty one. */
    vg_job orphan;
    vg_sc_fill_job(&orphan, "no-such-account", 0);
    assert_int_equal(create_job(store, &orphan, &err), VG_STORE_NOT_FOUND);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM jobs"), 0);

    /* Exactly the balance is enough. */
    vg_sc_fill_job(&job, a.id, 1000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 0);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

static void test_create_job_with_existing_id_conflicts(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("duplicate_job", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job job;
    vg_sc_fill_job(&job, a.id, 1000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_CONFLICT);
    assert_int_equal(vg_sc_balance_of(store, a.id), 9000);
    assert_int_equal(count_ledger(path, "reserve"), 1);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

static void test_reserve_then_succeed_settles(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("succeed", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 3000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 7000);
    vg_ledger_row row = vg_sc_ledger_of(store, a.id);
    assert_int_equal(row.open_reservations, 3000);
    assert_int_equal(row.settled, 0);

    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_QUEUED);
    assert_int_equal(got.progress, 0);
    assert_int_equal(got.started_ms, 0);
    vg_job_clear(&got);

    assert_int_equal(store->ops->start_job(store, job.id, 1000, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_RUNNING);
    assert_int_equal(got.started_ms, 1000);
    vg_job_clear(&got);

    vg_sc_succeed(store, job.id, VG_STORE_OK);
    /* The reservation already took the credits; settling keeps them. */
    assert_int_equal(vg_sc_balance_of(store, a.id), 7000);
    row = vg_sc_ledger_of(store, a.id);
    assert_int_equal(row.grants, 10000);
    assert_int_equal(row.settled, 3000);
    assert_int_equal(row.open_reservations, 0);
    assert_int_equal(count_ledger(path, "settle"), 1);
    assert_int_equal(count_ledger(path, "refund"), 0);

    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_SUCCEEDED);
    assert_int_equal(got.progress, 100);
    assert_int_equal(got.seed, 7);
    assert_int_equal(got.width, 1280);
    assert_int_equal(got.height, 720);
    assert_int_equal(got.prompt_tokens, 11);
    assert_int_equal(got.completion_tokens, 22);
    assert_int_equal(got.finished_ms, 5000);
    char key[128];
    snprintf(key, sizeof(key), "videos/%s.mp4", job.id);
    assert_string_equal(got.video_key, key);
    vg_job_clear(&got);

    vg_store_close(store);
    B->remove(path);
}

static void test_reserve_then_fail_refunds(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("fail", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job failed, cancelled, got;
    vg_sc_fill_job(&failed, a.id, 3000);
    vg_sc_fill_job(&cancelled, a.id, 2000);
    assert_int_equal(create_job(store, &failed, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &cancelled, &err), VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 5000);

    assert_int_equal(store->ops->start_job(store, failed.id, 100, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_FAILED,
                                         "provider_error", "upstream said no",
                                         2000, &err),
                     VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 8000);

    /* A queued job can be cancelled before it ever runs. */
    assert_int_equal(store->ops->end_job(store, cancelled.id, VG_JOB_CANCELLED,
                                         "cancelled", "cancelled by the user",
                                         0, &err),
                     VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 10000);

    vg_ledger_row row = vg_sc_ledger_of(store, a.id);
    assert_int_equal(row.settled, 0);
    assert_int_equal(row.open_reservations, 0);
    assert_int_equal(count_ledger(path, "refund"), 2);

    assert_int_equal(store->ops->get_job(store, failed.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_FAILED);
    assert_string_equal(got.error_code, "provider_error");
    assert_string_equal(got.error_message, "upstream said no");
    assert_int_equal(got.finished_ms, 2000);
    vg_job_clear(&got);
    assert_int_equal(store->ops->get_job(store, cancelled.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_CANCELLED);
    assert_true(got.finished_ms > 0);
    vg_job_clear(&got);

    /* end_job is only for failing and cancelling. */
    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_SUCCEEDED,
                                         "", "", 0, &err),
                     VG_STORE_ERROR);
    assert_int_equal(store->ops->end_job(store, "no-such-job", VG_JOB_FAILED,
                                         "x", "y", 0, &err),
                     VG_STORE_NOT_FOUND);

    vg_store_close(store);
    B->remove(path);
}

static void test_finishing_twice_conflicts_and_moves_money_once(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("twice", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job won, lost, got;
    vg_sc_fill_job(&won, a.id, 3000);
    vg_sc_fill_job(&lost, a.id, 1000);
    assert_int_equal(create_job(store, &won, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &lost, &err), VG_STORE_OK);

    vg_sc_succeed(store, won.id, VG_STORE_OK);
    vg_sc_succeed(store, won.id, VG_STORE_CONFLICT);
    assert_int_equal(store->ops->end_job(store, won.id, VG_JOB_FAILED, "x",
                                         "late failure", 0, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(store->ops->get_job(store, won.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_SUCCEEDED);
    assert_string_equal(got.error_code, "");
    vg_job_clear(&got);

    assert_int_equal(store->ops->end_job(store, lost.id, VG_JOB_FAILED, "x",
                                         "first", 0, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, lost.id, VG_JOB_CANCELLED, "y",
                                         "second", 0, &err),
                     VG_STORE_CONFLICT);
    vg_sc_succeed(store, lost.id, VG_STORE_CONFLICT);
    assert_int_equal(store->ops->get_job(store, lost.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_FAILED);
    assert_string_equal(got.error_message, "first");
    assert_string_equal(got.video_key, "");
    vg_job_clear(&got);

    assert_int_equal(vg_sc_balance_of(store, a.id), 7000);
    assert_int_equal(count_ledger(path, "settle"), 1);
    assert_int_equal(count_ledger(path, "refund"), 1);
    vg_ledger_row row = vg_sc_ledger_of(store, a.id);
    assert_int_equal(row.settled, 3000);
    assert_int_equal(row.open_reservations, 0);

    vg_store_close(store);
    B->remove(path);
}

static void test_start_job_only_from_queued(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("start", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 100);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);

    assert_int_equal(store->ops->start_job(store, "no-such-job", 1, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->start_job(store, job.id, 10, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->start_job(store, job.id, 20, &err),
                     VG_STORE_CONFLICT);
    assert_string_equal(err.code, "conflict");

    /* Progress is clamped and only moves while the job runs. */
    assert_int_equal(store->ops->set_progress(store, job.id, 40, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.progress, 40);
    assert_int_equal(got.started_ms, 10);
    vg_job_clear(&got);
    assert_int_equal(store->ops->set_progress(store, job.id, 250, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.progress, 100);
    vg_job_clear(&got);
    assert_int_equal(store->ops->set_progress(store, "no-such-job", 1, &err),
                     VG_STORE_NOT_FOUND);

    assert_int_equal(store->ops->end_job(store, job.id, VG_JOB_CANCELLED,
                                         "cancelled", "", 0, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->start_job(store, job.id, 30, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(store->ops->set_progress(store, job.id, 50, &err),
                     VG_STORE_CONFLICT);

    vg_store_close(store);
    B->remove(path);
}

static void test_get_job_fills_every_field(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("get_job", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 1234);
    job.created_ms = 777;
    job.seed = -3;
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.id, job.id);
    assert_string_equal(got.account_id, a.id);
    assert_string_equal(got.key_id, "key-1");
    assert_int_equal(got.state, VG_JOB_QUEUED);
    assert_string_equal(got.model, "test-model");
    assert_string_equal(got.provider, "fake");
    assert_non_null(got.request_json);
    assert_ptr_not_equal(got.request_json, request_json);
    assert_string_equal(got.request_json, request_json);
    assert_int_equal(got.price, 1234);
    assert_int_equal(got.seed, -3);
    assert_int_equal(got.width, 640);
    assert_int_equal(got.height, 360);
    assert_int_equal(got.progress, 0);
    assert_string_equal(got.video_key, "");
    assert_int_equal(got.prompt_tokens, 0);
    assert_int_equal(got.completion_tokens, 0);
    assert_string_equal(got.error_code, "");
    assert_string_equal(got.error_message, "");
    assert_int_equal(got.created_ms, 777);
    assert_int_equal(got.started_ms, 0);
    assert_int_equal(got.finished_ms, 0);
    vg_job_clear(&got);
    assert_null(got.request_json);
    vg_job_clear(&got); /* clearing twice is harmless */

    /* A message longer than the field is cut on a character boundary. */
    char message[600];
    size_t n = 0;
    while (n + 2 < sizeof(message)) {
        message[n++] = (char)0xC3; /* U+00E9, two bytes */
        message[n++] = (char)0xA9;
    }
    message[n] = '\0';
    assert_int_equal(store->ops->end_job(store, job.id, VG_JOB_FAILED, "e",
                                         message, 0, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(strlen(got.error_message), 510);
    vg_job_clear(&got);

    assert_string_equal(vg_job_state_name(VG_JOB_QUEUED), "queued");
    assert_string_equal(vg_job_state_name(VG_JOB_RUNNING), "running");
    assert_string_equal(vg_job_state_name(VG_JOB_SUCCEEDED), "succeeded");
    assert_string_equal(vg_job_state_name(VG_JOB_FAILED), "failed");
    assert_string_equal(vg_job_state_name(VG_JOB_CANCELLED), "cancelled");

    vg_store_close(store);
    B->remove(path);
}

typedef struct job_walk {
    vg_store *store;
    char ids[8][37];
    int count;
    int stop_after;
} job_walk;

static int collect_job(void *ctx, const vg_job *job)
{
    job_walk *w = ctx;
    snprintf(w->ids[w->count], sizeof(w->ids[0]), "%s", job->id);
    w->count++;
    /* Callbacks may call the store: the walk holds no lock while they
     * run. */
    vg_job again;
    vg_error err;
    assert_int_equal(w->store->ops->get_job(w->store, job->id, &again, &err),
                     VG_STORE_OK);
    assert_string_equal(again.request_json, job->request_json);
    vg_job_clear(&again);
    return w->stop_after > 0 && w->count >= w->stop_after ? 99 : 0;
}

static void test_list_unfinished_jobs_oldest_first(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("unfinished", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job jobs[4];
    int64_t created[4] = {300, 100, 200, 50};
    for (int i = 0; i < 4; i++) {
        vg_sc_fill_job(&jobs[i], a.id, 10);
        jobs[i].created_ms = created[i];
        assert_int_equal(create_job(store, &jobs[i], &err), VG_STORE_OK);
    }
    assert_int_equal(store->ops->start_job(store, jobs[0].id, 400, &err),
                     VG_STORE_OK);
    vg_sc_succeed(store, jobs[3].id, VG_STORE_OK);

    job_walk w;
    memset(&w, 0, sizeof(w));
    w.store = store;
    assert_int_equal(
        store->ops->list_unfinished_jobs(store, collect_job, &w, &err),
        VG_STORE_OK);
    assert_int_equal(w.count, 3);
    assert_string_equal(w.ids[0], jobs[1].id);
    assert_string_equal(w.ids[1], jobs[2].id);
    assert_string_equal(w.ids[2], jobs[0].id);

    /* A non-zero return stops the walk and is passed back. */
    memset(&w, 0, sizeof(w));
    w.store = store;
    w.stop_after = 1;
    assert_int_equal(
        store->ops->list_unfinished_jobs(store, collect_job, &w, &err), 99);
    assert_int_equal(w.count, 1);

    vg_store_close(store);
    B->remove(path);
}

/* Lists the queued jobs (of provider, or all) into a fresh walk. */
static int list_queued(vg_store *store, const char *provider, int limit,
                       job_walk *w)
{
    vg_error err;
    memset(w, 0, sizeof(*w));
    w->store = store;
    return store->ops->list_queued_jobs(store, provider, limit, collect_job, w,
                                        &err);
}

static void test_list_queued_jobs_all_or_of_one_provider(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("queued", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    /* Created at 50 (b), 100 (a), 200 (b), 300 (a), 400 (b, started). */
    vg_job jobs[5];
    int64_t created[5] = {300, 100, 200, 50, 400};
    const char *provider[5] = {"a", "a", "b", "b", "b"};
    for (int i = 0; i < 5; i++) {
        vg_sc_fill_job(&jobs[i], a.id, 10);
        jobs[i].created_ms = created[i];
        snprintf(jobs[i].provider, sizeof(jobs[i].provider), "%s",
                 provider[i]);
        assert_int_equal(create_job(store, &jobs[i], &err), VG_STORE_OK);
    }
    assert_int_equal(store->ops->start_job(store, jobs[4].id, 500, &err),
                     VG_STORE_OK);

    job_walk w;
    assert_int_equal(list_queued(store, NULL, 10, &w), VG_STORE_OK);
    assert_int_equal(w.count, 4);
    assert_string_equal(w.ids[0], jobs[3].id);
    assert_string_equal(w.ids[1], jobs[1].id);
    assert_string_equal(w.ids[2], jobs[2].id);
    assert_string_equal(w.ids[3], jobs[0].id);

    /* One provider's, oldest first, the started one not among them. */
    assert_int_equal(list_queued(store, "b", 10, &w), VG_STORE_OK);
    assert_int_equal(w.count, 2);
    assert_string_equal(w.ids[0], jobs[3].id);
    assert_string_equal(w.ids[1], jobs[2].id);

    /* The limit holds; a provider with none lists none. */
    assert_int_equal(list_queued(store, "a", 1, &w), VG_STORE_OK);
    assert_int_equal(w.count, 1);
    assert_string_equal(w.ids[0], jobs[1].id);
    assert_int_equal(list_queued(store, "nobody", 10, &w), VG_STORE_OK);
    assert_int_equal(w.count, 0);

    vg_store_close(store);
    B->remove(path);
}

/* ---- asynchronous jobs ------------------------------------------------- */

vg_job_create vg_sc_keyed(const char *key, const char *hash, int64_t ttl_ms)
{
    vg_job_create opts;
    memset(&opts, 0, sizeof(opts));
    opts.idempotency_key = key;
    opts.request_hash = hash;
    opts.idempotency_ttl_ms = ttl_ms;
    return opts;
}

static int64_t count_jobs(const char *path)
{
    return B->count(path, "SELECT COUNT(*) FROM jobs");
}

static void test_create_job_keeps_webhook_flex_and_attempts(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("job_fields", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    char url[] = "https://example.com/hooks/vidgate?x=1";
    static char no_url[] = "";
    vg_job hooked, plain, empty, got;
    vg_sc_fill_job(&hooked, a.id, 100);
    hooked.webhook_url = url;
    hooked.flex = true;
    vg_sc_fill_job(&plain, a.id, 100);
    vg_sc_fill_job(&empty, a.id, 100);
    empty.webhook_url = no_url;
    assert_int_equal(create_job(store, &hooked, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &plain, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &empty, &err), VG_STORE_OK);

    assert_int_equal(store->ops->get_job(store, hooked.id, &got, &err),
                     VG_STORE_OK);
    assert_non_null(got.webhook_url);
    assert_ptr_not_equal(got.webhook_url, url);
    assert_string_equal(got.webhook_url, url);
    assert_true(got.flex);
    assert_int_equal(got.attempts, 0);
    vg_job_clear(&got);
    assert_null(got.webhook_url);

    assert_int_equal(store->ops->get_job(store, plain.id, &got, &err),
                     VG_STORE_OK);
    assert_null(got.webhook_url);
    assert_false(got.flex);
    vg_job_clear(&got);
    /* An empty URL is no webhook at all. */
    assert_int_equal(store->ops->get_job(store, empty.id, &got, &err),
                     VG_STORE_OK);
    assert_null(got.webhook_url);
    vg_job_clear(&got);

    /* A URL that a delivery could not carry whole is refused. */
    char long_url[2100];
    memset(long_url, 'u', sizeof(long_url) - 1);
    long_url[sizeof(long_url) - 1] = '\0';
    vg_job too_long;
    vg_sc_fill_job(&too_long, a.id, 100);
    too_long.webhook_url = long_url;
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &too_long, &err), VG_STORE_ERROR);
    assert_string_equal(err.field, "webhook_url");
    assert_int_equal(count_jobs(path), 3);

    vg_store_close(store);
    B->remove(path);
}

static void test_upstream_task_is_recorded_for_running_jobs(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("upstream", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 2500);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    /* Only a running job has an upstream task. */
    assert_int_equal(
        store->ops->set_upstream(store, job.id, "novita", "-", &err),
        VG_STORE_CONFLICT);
    assert_int_equal(store->ops->start_job(store, job.id, 100, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.upstream_task, "");
    vg_job_clear(&got);
    assert_int_equal(
        store->ops->set_upstream(store, job.id, "novita", "-", &err),
        VG_STORE_OK);
    assert_int_equal(
        store->ops->set_upstream(store, job.id, "byteplus", "cgt-2025", &err),
        VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.provider, "byteplus");
    assert_string_equal(got.upstream_task, "cgt-2025");
    vg_job_clear(&got);
    /* A handle too long for the record is refused, not cut. */
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(store->ops->set_upstream(store, job.id, "fal", big, &err),
                     VG_STORE_ERROR);
    /* Queued again, it has no task. */
    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.upstream_task, "");
    vg_job_clear(&got);
    vg_store_close(store);
    B->remove(path);
}

static void test_start_counts_attempts_and_requeue_resets(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("requeue", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job job, got;
    vg_sc_fill_job(&job, a.id, 2500);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);

    /* Only a running job goes back to the queue. */
    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_CONFLICT);
    assert_string_equal(err.code, "conflict");
    assert_int_equal(store->ops->requeue_job(store, "no-such-job", &err),
                     VG_STORE_NOT_FOUND);

    assert_int_equal(store->ops->start_job(store, job.id, 100, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->set_progress(store, job.id, 60, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.attempts, 1);
    vg_job_clear(&got);

    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_QUEUED);
    assert_int_equal(got.progress, 0);
    assert_int_equal(got.started_ms, 0);
    assert_int_equal(got.attempts, 1);
    vg_job_clear(&got);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM jobs"
                                    " WHERE started_ms IS NULL"),
                     1);
    /* The credits stay reserved for the next run. */
    assert_int_equal(vg_sc_balance_of(store, a.id), 7500);
    assert_int_equal(vg_sc_ledger_of(store, a.id).open_reservations, 2500);
    assert_int_equal(count_ledger(path, "refund"), 0);

    assert_int_equal(store->ops->start_job(store, job.id, 200, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.attempts, 2);
    assert_int_equal(got.started_ms, 200);
    vg_job_clear(&got);

    vg_sc_succeed(store, job.id, VG_STORE_OK);
    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(vg_sc_ledger_of(store, a.id).settled, 2500);

    vg_store_close(store);
    B->remove(path);
}

static void test_idempotent_replay_returns_the_earlier_job(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("idempotency", path, sizeof(path));
    vg_error err;
    vg_account a, b;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_sc_new_account(store, "bob", 10000, &b);

    vg_job_create opts = vg_sc_keyed("order-17", "hash-1", 1000);
    vg_job first, replay, other, got;
    vg_sc_fill_job(&first, a.id, 3000);
    first.created_ms = 10000;
    assert_int_equal(store->ops->create_job(store, &first, &opts, &got, &err),
                     VG_STORE_OK);

    /* Same key, same request: the earlier job, nothing written. */
    vg_sc_fill_job(&replay, a.id, 3000);
    replay.created_ms = 10500;
    assert_int_equal(store->ops->create_job(store, &replay, &opts, &got, &err),
                     VG_STORE_EXISTS);
    assert_string_equal(got.id, first.id);
    assert_string_equal(got.request_json, request_json);
    assert_int_equal(got.created_ms, 10000);
    vg_job_clear(&got);
    assert_int_equal(store->ops->create_job(store, &replay, &opts, NULL, &err),
                     VG_STORE_EXISTS);
    assert_int_equal(count_jobs(path), 1);
    assert_int_equal(count_ledger(path, "reserve"), 1);
    assert_int_equal(vg_sc_balance_of(store, a.id), 7000);

    /* Same key, another request: a conflict, nothing written. */
    vg_job_create changed = vg_sc_keyed("order-17", "hash-2", 1000);
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        store->ops->create_job(store, &replay, &changed, &got, &err),
        VG_STORE_CONFLICT);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.code, "idempotency_conflict");
    assert_int_equal(count_jobs(path), 1);

    /* Keys belong to an account: bob's "order-17" is another key. */
    vg_sc_fill_job(&other, b.id, 1000);
    other.created_ms = 10500;
    assert_int_equal(
        store->ops->create_job(store, &other, &changed, NULL, &err),
        VG_STORE_OK);

    /* A replay is answered even when a new job would be refused. */
    vg_job spend;
    vg_sc_fill_job(&spend, a.id, 7000);
    assert_int_equal(create_job(store, &spend, &err), VG_STORE_OK);
    assert_int_equal(vg_sc_balance_of(store, a.id), 0);
    opts.max_unfinished = 1;
    assert_int_equal(store->ops->create_job(store, &replay, &opts, NULL, &err),
                     VG_STORE_EXISTS);
    opts.max_unfinished = 0;
    assert_int_equal(store->ops->grant_credits(store, a.id, 5000, "", &err),
                     VG_STORE_OK);

    /* Once expired (created 10000 + ttl 1000), the key takes a new job,
     * whatever the request. */
    vg_job later;
    vg_sc_fill_job(&later, a.id, 1000);
    later.created_ms = 11000;
    assert_int_equal(
        store->ops->create_job(store, &later, &changed, &got, &err),
        VG_STORE_OK);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM idempotency_keys"
                                    " WHERE key = 'order-17'"),
                     2);
    vg_sc_fill_job(&replay, a.id, 1000);
    replay.created_ms = 11500;
    assert_int_equal(
        store->ops->create_job(store, &replay, &changed, &got, &err),
        VG_STORE_EXISTS);
    assert_string_equal(got.id, later.id);
    vg_job_clear(&got);
    vg_sc_ledger_of(store, a.id);

    /* A ttl of 0 never expires. */
    vg_job_create forever = vg_sc_keyed("forever", "h", 0);
    vg_job kept;
    vg_sc_fill_job(&kept, a.id, 10);
    kept.created_ms = 1;
    assert_int_equal(
        store->ops->create_job(store, &kept, &forever, NULL, &err),
        VG_STORE_OK);
    vg_sc_fill_job(&replay, a.id, 10);
    replay.created_ms = INT64_MAX / 2;
    assert_int_equal(
        store->ops->create_job(store, &replay, &forever, &got, &err),
        VG_STORE_EXISTS);
    assert_string_equal(got.id, kept.id);
    vg_job_clear(&got);

    /* Keys are 1 to 255 bytes, and need the request's hash. */
    char long_key[300];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    vg_job_create bad = vg_sc_keyed(long_key, "h", 1000);
    vg_sc_fill_job(&replay, a.id, 10);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    bad = vg_sc_keyed("", "h", 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    bad = vg_sc_keyed("fine", NULL, 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    long_key[255] = '\0';
    bad = vg_sc_keyed(long_key, "h", 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_OK);

    vg_store_close(store);
    B->remove(path);
}

static void test_create_job_limits_unfinished_jobs_per_key(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("limit", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job_create opts;
    memset(&opts, 0, sizeof(opts));
    opts.max_unfinished = 2;
    vg_job first, second, refused, other_key;
    vg_sc_fill_job(&first, a.id, 100);
    vg_sc_fill_job(&second, a.id, 100);
    vg_sc_fill_job(&refused, a.id, 100);
    assert_int_equal(store->ops->create_job(store, &first, &opts, NULL, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->create_job(store, &second, &opts, NULL, &err),
                     VG_STORE_OK);
    /* Running jobs count as much as queued ones. */
    assert_int_equal(store->ops->start_job(store, first.id, 1, &err),
                     VG_STORE_OK);
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        store->ops->create_job(store, &refused, &opts, NULL, &err),
        VG_STORE_LIMIT);
    assert_int_equal(err.status, 429);
    assert_string_equal(err.code, "too_many_jobs");
    assert_int_equal(count_jobs(path), 2);
    assert_int_equal(vg_sc_balance_of(store, a.id), 9800);

    /* The limit is per key. */
    vg_sc_fill_job(&other_key, a.id, 100);
    snprintf(other_key.key_id, sizeof(other_key.key_id), "key-2");
    assert_int_equal(
        store->ops->create_job(store, &other_key, &opts, NULL, &err),
        VG_STORE_OK);

    /* A finished job frees its place. */
    vg_sc_succeed(store, first.id, VG_STORE_OK);
    assert_int_equal(
        store->ops->create_job(store, &refused, &opts, NULL, &err),
        VG_STORE_OK);
    /* Without a limit, or with 0, anything goes. */
    vg_job more;
    vg_sc_fill_job(&more, a.id, 100);
    opts.max_unfinished = 0;
    assert_int_equal(store->ops->create_job(store, &more, &opts, NULL, &err),
                     VG_STORE_OK);
    opts.max_unfinished = -1;
    vg_sc_fill_job(&more, a.id, 100);
    assert_int_equal(store->ops->create_job(store, &more, &opts, NULL, &err),
                     VG_STORE_ERROR);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

typedef struct page_walk {
    char ids[32][37];
    int64_t created[32];
    int count;
    int stop_after;
} page_walk;

static int collect_page(void *ctx, const vg_job *job)
{
    page_walk *w = ctx;
    assert_true(w->count < 32);
    snprintf(w->ids[w->count], sizeof(w->ids[0]), "%s", job->id);
    w->created[w->count] = job->created_ms;
    assert_non_null(job->request_json);
    w->count++;
    return w->stop_after > 0 && w->count >= w->stop_after ? 42 : 0;
}

/* Pages through every job of the query, limit at a time; returns how many
 * pages it took and leaves all ids in *all. */
static int walk_pages(vg_store *store, vg_job_query query, page_walk *all)
{
    vg_error err;
    memset(all, 0, sizeof(*all));
    char cursor[37];
    int pages = 0;
    for (;;) {
        page_walk page;
        memset(&page, 0, sizeof(page));
        assert_int_equal(
            store->ops->list_jobs(store, &query, collect_page, &page, &err),
            VG_STORE_OK);
        pages++;
        for (int i = 0; i < page.count; i++) {
            snprintf(all->ids[all->count], sizeof(all->ids[0]), "%s",
                     page.ids[i]);
            all->created[all->count++] = page.created[i];
        }
        if (page.count < query.limit)
            return pages;
        snprintf(cursor, sizeof(cursor), "%s", page.ids[page.count - 1]);
        query.after_id = cursor;
        query.after_created_ms = page.created[page.count - 1];
    }
}

static void test_list_jobs_pages_newest_first(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("list_jobs", path, sizeof(path));
    vg_error err;
    vg_account a, b;
    vg_sc_new_account(store, "alice", 100000, &a);
    vg_sc_new_account(store, "bob", 100000, &b);

    /* Three jobs share a millisecond: the id orders them. */
    enum { N = 8 };
    int64_t created[N] = {100, 200, 200, 200, 300, 400, 50, 250};
    vg_job jobs[N];
    for (int i = 0; i < N; i++) {
        vg_sc_fill_job(&jobs[i], a.id, 10);
        jobs[i].created_ms = created[i];
        assert_int_equal(create_job(store, &jobs[i], &err), VG_STORE_OK);
    }
    vg_job bobs;
    vg_sc_fill_job(&bobs, b.id, 10);
    bobs.created_ms = 500;
    assert_int_equal(create_job(store, &bobs, &err), VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, jobs[1].id, VG_JOB_FAILED, "e",
                                         "m", 0, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, jobs[3].id, VG_JOB_FAILED, "e",
                                         "m", 0, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, jobs[6].id, VG_JOB_FAILED, "e",
                                         "m", 0, &err),
                     VG_STORE_OK);

    /* The expected order: (created_ms, id) descending. */
    int order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++) {
            const vg_job *x = &jobs[order[i]], *y = &jobs[order[j]];
            if (y->created_ms > x->created_ms ||
                (y->created_ms == x->created_ms && strcmp(y->id, x->id) > 0)) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    }

    vg_job_query query;
    memset(&query, 0, sizeof(query));
    query.account_id = a.id;
    query.state = -1;
    page_walk all;
    for (int limit = 1; limit <= N + 1; limit++) {
        query.limit = limit;
        int pages = walk_pages(store, query, &all);
        assert_int_equal(all.count, N);
        assert_int_equal(pages, N / limit + 1);
        for (int i = 0; i < N; i++)
            assert_string_equal(all.ids[i], jobs[order[i]].id);
    }

    /* A state filter pages the same way. */
    query.state = VG_JOB_FAILED;
    query.limit = 2;
    walk_pages(store, query, &all);
    assert_int_equal(all.count, 3);
    int seen = 0;
    for (int i = 0; i < N; i++) {
        int k = order[i];
        if (k != 1 && k != 3 && k != 6)
            continue;
        assert_string_equal(all.ids[seen], jobs[k].id);
        seen++;
    }
    query.state = VG_JOB_SUCCEEDED;
    walk_pages(store, query, &all);
    assert_int_equal(all.count, 0);

    /* A cursor past the end lists nothing; an unknown account likewise. */
    query.state = -1;
    query.after_id = "";
    query.after_created_ms = 0;
    walk_pages(store, query, &all);
    assert_int_equal(all.count, 0);
    query.after_id = NULL;
    query.account_id = "no-such-account";
    walk_pages(store, query, &all);
    assert_int_equal(all.count, 0);

    /* A callback's non-zero return stops the walk and is passed back. */
    query.account_id = a.id;
    query.limit = 10;
    page_walk stop;
    memset(&stop, 0, sizeof(stop));
    stop.stop_after = 2;
    assert_int_equal(
        store->ops->list_jobs(store, &query, collect_page, &stop, &err), 42);
    assert_int_equal(stop.count, 2);

    memset(&stop, 0, sizeof(stop));
    query.limit = 0;
    assert_int_equal(
        store->ops->list_jobs(store, &query, collect_page, &stop, &err),
        VG_STORE_ERROR);
    query.limit = 1001;
    assert_int_equal(
        store->ops->list_jobs(store, &query, collect_page, &stop, &err),
        VG_STORE_ERROR);
    query.limit = 10;
    query.state = 17;
    assert_int_equal(
        store->ops->list_jobs(store, &query, collect_page, &stop, &err),
        VG_STORE_ERROR);
    assert_int_equal(stop.count, 0);

    vg_store_close(store);
    B->remove(path);
}

/* ---- webhooks ---------------------------------------------------------- */

typedef struct delivery_walk {
    vg_delivery items[8];
    int count;
} delivery_walk;

static int collect_delivery(void *ctx, const vg_delivery *d)
{
    delivery_walk *w = ctx;
    assert_true(w->count < 8);
    w->items[w->count++] = *d;
    return 0;
}

static delivery_walk deliveries_of(vg_store *store, const char *job_id)
{
    delivery_walk w;
    memset(&w, 0, sizeof(w));
    vg_error err;
    assert_int_equal(
        store->ops->list_deliveries(store, job_id, collect_delivery, &w, &err),
        VG_STORE_OK);
    return w;
}

static delivery_walk claim(vg_store *store, int64_t now, int64_t lease,
                           int limit)
{
    delivery_walk w;
    memset(&w, 0, sizeof(w));
    vg_error err;
    assert_int_equal(store->ops->claim_deliveries(store, now, lease, limit,
                                                  collect_delivery, &w, &err),
                     VG_STORE_OK);
    return w;
}

static int64_t next_due(vg_store *store)
{
    int64_t when = -1;
    vg_error err;
    assert_int_equal(store->ops->next_delivery_ms(store, &when, &err),
                     VG_STORE_OK);
    return when;
}

static char hook_url[] = "https://example.com/hook";

/* A queued job with a webhook. */
static void hooked_job(vg_store *store, const char *account_id, vg_job *job)
{
    vg_error err;
    vg_sc_fill_job(job, account_id, 100);
    job->webhook_url = hook_url;
    assert_int_equal(create_job(store, job, &err), VG_STORE_OK);
}

static void test_ending_a_job_queues_its_webhook(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("webhook_queue", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job won, failed, plain;
    hooked_job(store, a.id, &won);
    hooked_job(store, a.id, &failed);
    vg_sc_fill_job(&plain, a.id, 100);
    assert_int_equal(create_job(store, &plain, &err), VG_STORE_OK);
    assert_int_equal(next_due(store), 0);
    assert_int_equal(deliveries_of(store, won.id).count, 0);

    vg_sc_succeed(store, won.id, VG_STORE_OK); /* finished at 5000 */
    delivery_walk w = deliveries_of(store, won.id);
    assert_int_equal(w.count, 1);
    vg_delivery won_delivery = w.items[0];
    const vg_delivery *d = &won_delivery;
    assert_int_equal(strlen(d->id), 36);
    assert_memory_equal(d->id, "msg_", 4);
    assert_int_equal(strspn(d->id + 4, "0123456789abcdef"), 32);
    assert_string_equal(d->job_id, won.id);
    assert_string_equal(d->account_id, a.id);
    assert_string_equal(d->url, hook_url);
    assert_int_equal(d->state, VG_DELIVERY_PENDING);
    assert_int_equal(d->attempts, 0);
    assert_int_equal(d->last_status, 0);
    assert_string_equal(d->last_error, "");
    assert_int_equal(d->created_ms, 5000);
    assert_int_equal(d->next_attempt_ms, 5000);
    assert_int_equal(next_due(store), 5000);

    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_FAILED, "e",
                                         "m", 4000, &err),
                     VG_STORE_OK);
    w = deliveries_of(store, failed.id);
    assert_int_equal(w.count, 1);
    assert_int_equal(w.items[0].next_attempt_ms, 4000);
    assert_string_not_equal(w.items[0].id, d->id);
    assert_int_equal(next_due(store), 4000);

    /* No URL, no delivery; a refused end queues nothing. */
    vg_sc_succeed(store, plain.id, VG_STORE_OK);
    assert_int_equal(deliveries_of(store, plain.id).count, 0);
    vg_sc_succeed(store, won.id, VG_STORE_CONFLICT);
    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_CANCELLED,
                                         "c", "m", 0, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM webhook_deliveries"),
                     2);

    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_PENDING),
                        "pending");
    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_DELIVERED),
                        "delivered");
    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_FAILED), "failed");

    vg_store_close(store);
    B->remove(path);
}

static void test_claim_deliveries_leases_the_due_ones(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("webhook_claim", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    vg_job jobs[3];
    int64_t ended[3] = {2000, 1000, 3000};
    for (int i = 0; i < 3; i++) {
        hooked_job(store, a.id, &jobs[i]);
        assert_int_equal(store->ops->end_job(store, jobs[i].id,
                                             VG_JOB_CANCELLED, "c", "m",
                                             ended[i], &err),
                         VG_STORE_OK);
    }
    assert_int_equal(next_due(store), 1000);

    /* Due ones only, the longest due first. */
    delivery_walk w = claim(store, 2500, 60000, 10);
    assert_int_equal(w.count, 2);
    assert_string_equal(w.items[0].job_id, jobs[1].id);
    assert_string_equal(w.items[1].job_id, jobs[0].id);
    assert_int_equal(w.items[0].next_attempt_ms, 62500);
    assert_int_equal(w.items[0].state, VG_DELIVERY_PENDING);
    assert_string_equal(w.items[0].url, hook_url);

    /* Leased, they are nobody else's until the lease runs out. */
    assert_int_equal(claim(store, 2500, 60000, 10).count, 0);
    assert_int_equal(next_due(store), 3000);
    w = claim(store, 3000, 60000, 10);
    assert_int_equal(w.count, 1);
    assert_string_equal(w.items[0].job_id, jobs[2].id);
    assert_int_equal(next_due(store), 62500);
    assert_int_equal(claim(store, 62499, 1000, 10).count, 0);
    /* Equally due, the one queued first comes first. */
    w = claim(store, 62500, 1000, 1);
    assert_int_equal(w.count, 1);
    assert_string_equal(w.items[0].job_id, jobs[0].id);
    assert_int_equal(deliveries_of(store, jobs[0].id).items[0].next_attempt_ms,
                     63500);
    assert_int_equal(deliveries_of(store, jobs[1].id).items[0].next_attempt_ms,
                     62500);

    delivery_walk none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(store->ops->claim_deliveries(
                         store, 1, 1, 0, collect_delivery, &none, &err),
                     VG_STORE_ERROR);
    assert_int_equal(store->ops->claim_deliveries(
                         store, 1, -1, 1, collect_delivery, &none, &err),
                     VG_STORE_ERROR);
    assert_int_equal(none.count, 0);

    vg_store_close(store);
    B->remove(path);
}

static void test_finish_delivery_records_each_attempt(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("webhook_finish", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job ok_job, bad_job;
    hooked_job(store, a.id, &ok_job);
    hooked_job(store, a.id, &bad_job);
    vg_sc_succeed(store, ok_job.id, VG_STORE_OK);
    vg_sc_succeed(store, bad_job.id, VG_STORE_OK);
    char ok_id[40], bad_id[40];
    snprintf(ok_id, sizeof(ok_id), "%s",
             deliveries_of(store, ok_job.id).items[0].id);
    snprintf(bad_id, sizeof(bad_id), "%s",
             deliveries_of(store, bad_job.id).items[0].id);

    vg_delivery_outcome delivered = {true, 204, NULL, 0, 6000};
    assert_int_equal(
        store->ops->finish_delivery(store, ok_id, &delivered, &err),
        VG_STORE_OK);
    vg_delivery d = deliveries_of(store, ok_job.id).items[0];
    assert_int_equal(d.state, VG_DELIVERY_DELIVERED);
    assert_int_equal(d.attempts, 1);
    assert_int_equal(d.last_status, 204);
    assert_string_equal(d.last_error, "");
    assert_int_equal(d.updated_ms, 6000);
    /* Only pending deliveries take outcomes. */
    assert_int_equal(
        store->ops->finish_delivery(store, ok_id, &delivered, &err),
        VG_STORE_CONFLICT);
    assert_int_equal(
        store->ops->finish_delivery(store, "msg_nope", &delivered, &err),
        VG_STORE_NOT_FOUND);

    /* A failed attempt with a retry stays pending, due then. */
    vg_delivery_outcome retry = {false, 503, "service unavailable", 9000,
                                 7000};
    assert_int_equal(store->ops->finish_delivery(store, bad_id, &retry, &err),
                     VG_STORE_OK);
    d = deliveries_of(store, bad_job.id).items[0];
    assert_int_equal(d.state, VG_DELIVERY_PENDING);
    assert_int_equal(d.attempts, 1);
    assert_int_equal(d.last_status, 503);
    assert_string_equal(d.last_error, "service unavailable");
    assert_int_equal(d.next_attempt_ms, 9000);
    assert_int_equal(next_due(store), 9000);
    assert_int_equal(claim(store, 8999, 100, 10).count, 0);
    assert_int_equal(claim(store, 9000, 100, 10).count, 1);

    /* Without a retry time it is given up; a long error is cut. */
    char long_error[400];
    size_t n = 0;
    while (n + 2 < sizeof(long_error)) {
        long_error[n++] = (char)0xC3; /* U+00E9, two bytes */
        long_error[n++] = (char)0xA9;
    }
    long_error[n] = '\0';
    vg_delivery_outcome give_up = {false, 0, long_error, 0, 0};
    assert_int_equal(
        store->ops->finish_delivery(store, bad_id, &give_up, &err),
        VG_STORE_OK);
    d = deliveries_of(store, bad_job.id).items[0];
    assert_int_equal(d.state, VG_DELIVERY_FAILED);
    assert_int_equal(d.attempts, 2);
    assert_int_equal(d.last_status, 0);
    assert_int_equal(strlen(d.last_error), 254);
    assert_int_equal(d.next_attempt_ms, 0);
    assert_true(d.updated_ms > 9000);
    assert_int_equal(next_due(store), 0);
    assert_int_equal(claim(store, INT64_MAX / 2, 100, 10).count, 0);

    vg_store_close(store);
    B->remove(path);
}

static void test_webhook_secret_is_stored_once_and_rotates(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("webhook_secret", path, sizeof(path));
    vg_store *other = B->reopen(path);
    vg_error err;
    vg_account a, b;
    vg_sc_new_account(store, "alice", 0, &a);
    vg_sc_new_account(store, "bob", 0, &b);
    char out[64];

    assert_int_equal(store->ops->get_webhook_secret(store, a.id, "whsec_one",
                                                    out, sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "whsec_one");
    /* Every later caller, in any process, gets the first one. */
    assert_int_equal(other->ops->get_webhook_secret(other, a.id, "whsec_two",
                                                    out, sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "whsec_one");
    assert_int_equal(store->ops->get_webhook_secret(store, b.id, "whsec_bob",
                                                    out, sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "whsec_bob");

    assert_int_equal(
        store->ops->rotate_webhook_secret(store, a.id, "whsec_three", &err),
        VG_STORE_OK);
    assert_int_equal(other->ops->get_webhook_secret(other, a.id, "whsec_four",
                                                    out, sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "whsec_three");
    assert_int_equal(store->ops->get_webhook_secret(store, b.id, "x", out,
                                                    sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "whsec_bob");

    assert_int_equal(store->ops->get_webhook_secret(store, "no-such-account",
                                                    "whsec_x", out,
                                                    sizeof(out), &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->rotate_webhook_secret(
                         store, "no-such-account", "whsec_x", &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM accounts"
                                    " WHERE webhook_secret IS NOT NULL"),
                     2);
    /* A secret that does not fit is an error, never a truncated one. */
    char tiny[8];
    assert_int_equal(store->ops->get_webhook_secret(store, a.id, "x", tiny,
                                                    sizeof(tiny), &err),
                     VG_STORE_ERROR);
    assert_int_equal(store->ops->rotate_webhook_secret(store, a.id, "", &err),
                     VG_STORE_ERROR);

    vg_store_close(other);
    vg_store_close(store);
    B->remove(path);
}

/* ---- concurrency ------------------------------------------------------- */

#define RACERS 8

typedef struct racer {
    const char *path; /* open a handle of its own when set */
    vg_store *store;  /* else share this one */
    const char *job_id;
    bool succeed; /* succeed_job instead of end_job */
    pthread_barrier_t *start;
    int rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    vg_store *store = r->store;
    if (r->path != NULL)
        store = B->reopen(r->path);
    vg_error err;
    pthread_barrier_wait(r->start);
    if (r->succeed) {
        vg_job done;
        memset(&done, 0, sizeof(done));
        snprintf(done.id, sizeof(done.id), "%s", r->job_id);
        snprintf(done.video_key, sizeof(done.video_key), "videos/x.mp4");
        done.finished_ms = 1;
        r->rc = store->ops->succeed_job(store, &done, &err);
    } else {
        r->rc = store->ops->end_job(store, r->job_id, VG_JOB_CANCELLED,
                                    "cancelled", "raced", 0, &err);
    }
    if (r->rc == VG_STORE_ERROR)
        fprintf(stderr, "racer: %s\n", err.message);
    if (r->path != NULL)
        vg_store_close(store);
    return NULL;
}

static void run_race(racer *racers)
{
    pthread_t threads[RACERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i].start = &start;
        assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]),
                         0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
}

static void test_concurrent_end_job_refunds_once(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("race_end", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job job;
    vg_sc_fill_job(&job, a.id, 4000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(store->ops->start_job(store, job.id, 1, &err),
                     VG_STORE_OK);

    racer racers[RACERS];
    memset(racers, 0, sizeof(racers));
    for (int i = 0; i < RACERS; i++) {
        racers[i].store = store;
        racers[i].job_id = job.id;
    }
    run_race(racers);

    int ok = 0, conflict = 0;
    for (int i = 0; i < RACERS; i++) {
        ok += racers[i].rc == VG_STORE_OK;
        conflict += racers[i].rc == VG_STORE_CONFLICT;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, RACERS - 1);
    assert_int_equal(vg_sc_balance_of(store, a.id), 10000);
    assert_int_equal(count_ledger(path, "refund"), 1);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

/* Separate handles stand in for separate processes (the server and a CLI
 * subcommand): only SQLite's own locking keeps them apart. */
static void test_concurrent_handles_finish_once(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("race_handles", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);
    vg_job job;
    vg_sc_fill_job(&job, a.id, 4000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);

    racer racers[RACERS];
    memset(racers, 0, sizeof(racers));
    for (int i = 0; i < RACERS; i++) {
        racers[i].path = path;
        racers[i].job_id = job.id;
        racers[i].succeed = i % 2 == 0;
    }
    run_race(racers);

    int ok = 0, conflict = 0, won = -1;
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].rc == VG_STORE_OK)
            won = i;
        ok += racers[i].rc == VG_STORE_OK;
        conflict += racers[i].rc == VG_STORE_CONFLICT;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, RACERS - 1);
    int64_t expected = racers[won].succeed ? 6000 : 10000;
    assert_int_equal(vg_sc_balance_of(store, a.id), expected);
    assert_int_equal(
        count_ledger(path, "settle") + count_ledger(path, "refund"), 1);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

/* ---- group commit ------------------------------------------------------ */

/* Many threads creating jobs at once share transactions; each must still
 * get its own answer, and the refused ones (the poor account runs dry)
 * must roll back only themselves. Threads only record what happened:
 * cmocka's assertions belong to the main thread. */
#define CREATORS 8
#define CREATES_EACH 500
#define CREATE_PRICE 10
#define POOR_JOBS 100

typedef struct creator {
    vg_store *store;
    const char *rich, *poor; /* account ids */
    pthread_barrier_t *start;
    char ids[CREATES_EACH][37];
    int rc[CREATES_EACH];
} creator;

static creator creators[CREATORS];

static bool creates_for_rich(int i)
{
    return i % 2 == 0;
}

static void *create_many(void *arg)
{
    creator *c = arg;
    pthread_barrier_wait(c->start);
    for (int i = 0; i < CREATES_EACH; i++) {
        vg_job job;
        vg_error err;
        vg_sc_fill_job(&job, creates_for_rich(i) ? c->rich : c->poor,
                       CREATE_PRICE);
        snprintf(c->ids[i], sizeof(c->ids[i]), "%s", job.id);
        c->rc[i] = create_job(c->store, &job, &err);
        if (c->rc[i] == VG_STORE_ERROR)
            fprintf(stderr, "create_many: %s\n", err.message);
    }
    return NULL;
}

static void run_creators(void *(*fn)(void *))
{
    pthread_t threads[CREATORS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CREATORS);
    for (int i = 0; i < CREATORS; i++) {
        creators[i].start = &start;
        assert_int_equal(pthread_create(&threads[i], NULL, fn, &creators[i]),
                         0);
    }
    for (int i = 0; i < CREATORS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
}

static void test_concurrent_creates_each_get_their_own_answer(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("group_commit", path, sizeof(path));
    vg_error err;
    vg_account rich, poor;
    vg_sc_new_account(store, "rich", 1000000, &rich);
    vg_sc_new_account(store, "poor", POOR_JOBS * CREATE_PRICE, &poor);

    memset(creators, 0, sizeof(creators));
    for (int i = 0; i < CREATORS; i++) {
        creators[i].store = store;
        creators[i].rich = rich.id;
        creators[i].poor = poor.id;
    }
    run_creators(create_many);

    int rich_ok = 0, poor_ok = 0, insufficient = 0;
    for (int t = 0; t < CREATORS; t++) {
        for (int i = 0; i < CREATES_EACH; i++) {
            int rc = creators[t].rc[i];
            vg_job got;
            if (rc == VG_STORE_OK) {
                rich_ok += creates_for_rich(i);
                poor_ok += !creates_for_rich(i);
                /* Acknowledged means committed: visible to everyone. */
                assert_int_equal(
                    store->ops->get_job(store, creators[t].ids[i], &got, &err),
                    VG_STORE_OK);
                assert_string_equal(got.account_id,
                                    creates_for_rich(i) ? rich.id : poor.id);
                vg_job_clear(&got);
            } else {
                assert_int_equal(rc, VG_STORE_INSUFFICIENT);
                assert_false(creates_for_rich(i));
                insufficient++;
                assert_int_equal(
                    store->ops->get_job(store, creators[t].ids[i], &got, &err),
                    VG_STORE_NOT_FOUND);
            }
        }
    }
    int total = CREATORS * CREATES_EACH;
    assert_int_equal(rich_ok, total / 2);
    assert_int_equal(poor_ok, POOR_JOBS);
    assert_int_equal(insufficient, total / 2 - POOR_JOBS);
    assert_int_equal(count_jobs(path), total / 2 + POOR_JOBS);
    assert_int_equal(count_ledger(path, "reserve"), total / 2 + POOR_JOBS);
    assert_int_equal(vg_sc_balance_of(store, rich.id),
                     1000000 - total / 2 * CREATE_PRICE);
    assert_int_equal(vg_sc_balance_of(store, poor.id), 0);
    assert_int_equal(vg_sc_ledger_of(store, rich.id).open_reservations,
                     total / 2 * CREATE_PRICE);
    assert_int_equal(vg_sc_ledger_of(store, poor.id).open_reservations,
                     POOR_JOBS * CREATE_PRICE);

    vg_store_close(store);
    B->remove(path);
}

typedef struct keyed_racer {
    vg_store *store;
    const char *account_id;
    const char *key, *hash;
    pthread_barrier_t *start;
    vg_job job;
    vg_job existing;
    int rc;
} keyed_racer;

static void *create_keyed(void *arg)
{
    keyed_racer *r = arg;
    vg_job_create opts = vg_sc_keyed(r->key, r->hash, 60000);
    vg_error err;
    pthread_barrier_wait(r->start);
    r->rc = r->store->ops->create_job(r->store, &r->job, &opts, &r->existing,
                                      &err);
    if (r->rc == VG_STORE_ERROR)
        fprintf(stderr, "create_keyed: %s\n", err.message);
    return NULL;
}

/* Races RACERS creates with one idempotency key; returns the winner. */
static int race_keyed(keyed_racer *racers, vg_store *store,
                      const char *account_id, const char *key)
{
    pthread_t threads[RACERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i].store = store;
        racers[i].account_id = account_id;
        racers[i].key = key;
        racers[i].start = &start;
        vg_sc_fill_job(&racers[i].job, account_id, 500);
        assert_int_equal(
            pthread_create(&threads[i], NULL, create_keyed, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    int winner = -1;
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].rc == VG_STORE_OK) {
            assert_int_equal(winner, -1);
            winner = i;
        }
    }
    assert_int_not_equal(winner, -1);
    return winner;
}

static void test_concurrent_creates_with_one_key_make_one_job(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("race_idempotency", path, sizeof(path));
    vg_account a;
    vg_sc_new_account(store, "alice", 10000, &a);

    /* The same request eight times: one job, seven replays of it. */
    keyed_racer racers[RACERS];
    memset(racers, 0, sizeof(racers));
    for (int i = 0; i < RACERS; i++)
        racers[i].hash = "same";
    int winner = race_keyed(racers, store, a.id, "retry-1");
    for (int i = 0; i < RACERS; i++) {
        if (i == winner)
            continue;
        assert_int_equal(racers[i].rc, VG_STORE_EXISTS);
        assert_string_equal(racers[i].existing.id, racers[winner].job.id);
        vg_job_clear(&racers[i].existing);
    }

    /* Two different requests under one key: one job; the requests like
     * it replay it, the others conflict. */
    memset(racers, 0, sizeof(racers));
    for (int i = 0; i < RACERS; i++)
        racers[i].hash = i % 2 == 0 ? "even" : "odd";
    winner = race_keyed(racers, store, a.id, "retry-2");
    for (int i = 0; i < RACERS; i++) {
        if (i == winner)
            continue;
        if (strcmp(racers[i].hash, racers[winner].hash) == 0) {
            assert_int_equal(racers[i].rc, VG_STORE_EXISTS);
            assert_string_equal(racers[i].existing.id, racers[winner].job.id);
            vg_job_clear(&racers[i].existing);
        } else {
            assert_int_equal(racers[i].rc, VG_STORE_CONFLICT);
        }
    }

    assert_int_equal(count_jobs(path), 2);
    assert_int_equal(count_ledger(path, "reserve"), 2);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM idempotency_keys"),
                     2);
    assert_int_equal(vg_sc_balance_of(store, a.id), 9000);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

/* A commit that fails as a whole (the backend's poison: for SQLite, a
 * row that breaks a deferred foreign key, the one failure no single
 * operation can see coming) fails every write of its batch, and only
 * those. Jobs whose model is "poison" cause one. */
static void *create_some_poison(void *arg)
{
    creator *c = arg;
    pthread_barrier_wait(c->start);
    for (int i = 0; i < 50; i++) {
        vg_job job;
        vg_error err;
        vg_sc_fill_job(&job, c->rich, CREATE_PRICE);
        if (c == &creators[0] && i % 10 == 5)
            snprintf(job.model, sizeof(job.model), "poison");
        snprintf(c->ids[i], sizeof(c->ids[i]), "%s", job.id);
        c->rc[i] = create_job(c->store, &job, &err);
    }
    return NULL;
}

static void test_failed_commit_fails_every_write_of_the_batch(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("failed_commit", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 100000, &a);
    /* The backend's fault: the commit of a batch with such a job fails,
     * with an error that says this. */
    const char *why = B->poison(path);

    vg_job job;
    vg_sc_fill_job(&job, a.id, 100);
    snprintf(job.model, sizeof(job.model), "poison");
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &job, &err), VG_STORE_ERROR);
    assert_non_null(strstr(err.message, why));
    assert_int_equal(count_jobs(path), 0);
    assert_int_equal(vg_sc_balance_of(store, a.id), 100000);
    /* The store goes on working after it. */
    vg_sc_fill_job(&job, a.id, 100);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);

    /* In a crowd: every write of a failed batch fails, every other one
     * succeeds, and each answer matches what the database holds. */
    memset(creators, 0, sizeof(creators));
    for (int i = 0; i < CREATORS; i++) {
        creators[i].store = store;
        creators[i].rich = a.id;
    }
    run_creators(create_some_poison);
    int ok = 1, failed = 0;
    for (int t = 0; t < CREATORS; t++) {
        for (int i = 0; i < 50; i++) {
            int rc = creators[t].rc[i];
            vg_job got;
            int found =
                store->ops->get_job(store, creators[t].ids[i], &got, &err);
            if (rc == VG_STORE_OK) {
                assert_int_equal(found, VG_STORE_OK);
                vg_job_clear(&got);
                ok++;
            } else {
                assert_int_equal(rc, VG_STORE_ERROR);
                assert_int_equal(found, VG_STORE_NOT_FOUND);
                failed++;
            }
        }
    }
    assert_true(failed >= 5);
    assert_int_equal(count_jobs(path), ok);
    assert_int_equal(count_ledger(path, "reserve"), ok);
    assert_int_equal(vg_sc_balance_of(store, a.id),
                     100000 - 100 - (ok - 1) * CREATE_PRICE);
    vg_sc_ledger_of(store, a.id);

    vg_store_close(store);
    B->remove(path);
}

static void test_ledger_invariant_after_mixed_operations(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("invariant", path, sizeof(path));
    vg_error err;
    vg_account accounts[3];
    vg_sc_new_account(store, "a", 20000, &accounts[0]);
    vg_sc_new_account(store, "b", 0, &accounts[1]);
    vg_sc_new_account(store, "c", 500, &accounts[2]);
    assert_int_equal(
        store->ops->grant_credits(store, accounts[1].id, 8000, "", &err),
        VG_STORE_OK);

    /* A fixed walk through every transition, including refused ones. */
    int64_t settled[3] = {0}, open[3] = {0}, grants[3] = {20000, 8000, 500};
    for (int i = 0; i < 30; i++) {
        int who = i % 3;
        vg_job job;
        vg_sc_fill_job(&job, accounts[who].id, 250 * (i % 5 + 1));
        int rc = create_job(store, &job, &err);
        if (rc == VG_STORE_INSUFFICIENT)
            continue;
        assert_int_equal(rc, VG_STORE_OK);
        switch (i % 4) {
        case 0:
            vg_sc_succeed(store, job.id, VG_STORE_OK);
            settled[who] += job.price;
            break;
        case 1:
            assert_int_equal(store->ops->end_job(store, job.id, VG_JOB_FAILED,
                                                 "e", "m", 0, &err),
                             VG_STORE_OK);
            break;
        case 2:
            assert_int_equal(store->ops->start_job(store, job.id, 1, &err),
                             VG_STORE_OK);
            open[who] += job.price;
            break;
        default:
            open[who] += job.price;
            break;
        }
        if (i % 7 == 0) {
            assert_int_equal(store->ops->grant_credits(store, accounts[who].id,
                                                       100, "", &err),
                             VG_STORE_OK);
            grants[who] += 100;
        }
    }
    for (int i = 0; i < 3; i++) {
        vg_ledger_row row = vg_sc_ledger_of(store, accounts[i].id);
        assert_int_equal(row.grants, grants[i]);
        assert_int_equal(row.settled, settled[i]);
        assert_int_equal(row.open_reservations, open[i]);
        assert_int_equal(row.balance, grants[i] - settled[i] - open[i]);
        assert_string_equal(row.name, accounts[i].name);
    }

    /* The journal is append-only. */
    assert_int_not_equal(B->exec(path, "UPDATE ledger SET amount = 0"), 0);
    assert_int_not_equal(B->exec(path, "DELETE FROM ledger"), 0);

    vg_store_close(store);
    B->remove(path);
}

/* ---- keys and settings ------------------------------------------------- */

typedef struct key_walk {
    int count;
    char ids[4][37];
    char account_names[4][128];
    bool revoked[4];
} key_walk;

static int collect_key(void *ctx, const vg_api_key *key,
                       const vg_account *account)
{
    key_walk *w = ctx;
    assert_string_equal(key->account_id, account->id);
    snprintf(w->ids[w->count], sizeof(w->ids[0]), "%s", key->id);
    snprintf(w->account_names[w->count], sizeof(w->account_names[0]), "%s",
             account->name);
    w->revoked[w->count] = key->revoked;
    w->count++;
    return 0;
}

static void test_keys_create_find_revoke_list(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("keys", path, sizeof(path));
    vg_error err;
    vg_account alice, bob;
    vg_sc_new_account(store, "alice", 0, &alice);
    vg_sc_new_account(store, "bob", 0, &bob);

    char key[48], hash[65], other_hash[65];
    vg_new_api_key(key);
    vg_sha256_hex(key, hash);
    vg_sha256_hex("another key", other_hash);

    vg_api_key k1, k2, got;
    assert_int_equal(store->ops->create_key(store, alice.id, "laptop", hash,
                                            "vg_abcd", &k1, &err),
                     VG_STORE_OK);
    assert_int_equal(strlen(k1.id), 36);
    assert_string_equal(k1.account_id, alice.id);
    assert_string_equal(k1.name, "laptop");
    assert_string_equal(k1.prefix, "vg_abcd");
    assert_false(k1.revoked);
    assert_int_equal(store->ops->create_key(store, bob.id, "ci", other_hash,
                                            "vg_efgh", &k2, &err),
                     VG_STORE_OK);

    /* The hash is unique; the account must exist. */
    assert_int_equal(store->ops->create_key(store, bob.id, "again", hash,
                                            "vg_abcd", &got, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(store->ops->create_key(store, "no-such-account", "x",
                                            "feed", "vg_x", &got, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM api_keys"), 2);
    /* Only the hash is stored. */
    assert_int_equal(B->count(path, "SELECT COUNT(*) FROM api_keys"
                                    " WHERE key_hash LIKE 'vg_%'"),
                     0);

    assert_int_equal(store->ops->find_key_by_hash(store, hash, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.id, k1.id);
    assert_string_equal(got.account_id, alice.id);
    assert_false(got.revoked);
    assert_int_equal(got.created_ms, k1.created_ms);
    assert_int_equal(store->ops->find_key_by_hash(store, "0000", &got, &err),
                     VG_STORE_NOT_FOUND);

    assert_int_equal(store->ops->revoke_key(store, k1.id, &err), VG_STORE_OK);
    assert_int_equal(store->ops->find_key_by_hash(store, hash, &got, &err),
                     VG_STORE_OK);
    assert_true(got.revoked);
    assert_int_equal(store->ops->revoke_key(store, k1.id, &err), VG_STORE_OK);
    assert_int_equal(store->ops->revoke_key(store, "no-such-key", &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->get_key(store, k2.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.name, "ci");
    assert_false(got.revoked);
    assert_int_equal(store->ops->get_key(store, "no-such-key", &got, &err),
                     VG_STORE_NOT_FOUND);

    key_walk w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(store->ops->list_keys(store, collect_key, &w, &err),
                     VG_STORE_OK);
    assert_int_equal(w.count, 2);
    assert_string_equal(w.ids[0], k1.id);
    assert_string_equal(w.account_names[0], "alice");
    assert_true(w.revoked[0]);
    assert_string_equal(w.ids[1], k2.id);
    assert_string_equal(w.account_names[1], "bob");
    assert_false(w.revoked[1]);

    vg_store_close(store);
    B->remove(path);
}

static int collect_limits(void *ctx, const vg_api_key *key,
                          const vg_account *account)
{
    (void)account;
    int *limits = ctx;
    limits[0] = key->rpm_limit;
    limits[1] = key->jobs_limit;
    return 0;
}

static void test_key_limits_default_and_change(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("key_limits", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 0, &a);
    vg_api_key k, got;
    assert_int_equal(
        store->ops->create_key(store, a.id, "k", "hash-1", "vg_1", &k, &err),
        VG_STORE_OK);
    assert_int_equal(k.rpm_limit, -1);
    assert_int_equal(k.jobs_limit, -1);
    assert_int_equal(store->ops->get_key(store, k.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.rpm_limit, -1);
    assert_int_equal(got.jobs_limit, -1);

    uint64_t before = 0, after = 0;
    assert_int_equal(store->ops->keys_epoch(store, &before, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->set_key_limits(store, k.id, 60, 5, &err),
                     VG_STORE_OK);
    /* Caches of the key see the change as they would a revocation. */
    assert_int_equal(store->ops->keys_epoch(store, &after, &err), VG_STORE_OK);
    assert_true(after != before);
    assert_int_equal(store->ops->find_key_by_hash(store, "hash-1", &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.rpm_limit, 60);
    assert_int_equal(got.jobs_limit, 5);
    int limits[2] = {0, 0};
    assert_int_equal(
        store->ops->list_keys(store, collect_limits, limits, &err),
        VG_STORE_OK);
    assert_int_equal(limits[0], 60);
    assert_int_equal(limits[1], 5);

    assert_int_equal(store->ops->set_key_limits(store, k.id, 0, -1, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_key(store, k.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.rpm_limit, 0);
    assert_int_equal(got.jobs_limit, -1);

    assert_int_equal(
        store->ops->set_key_limits(store, "no-such-key", 1, 1, &err),
        VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->set_key_limits(store, k.id, -2, 1, &err),
                     VG_STORE_ERROR);
    assert_int_equal(store->ops->set_key_limits(store, k.id, 1, -5, &err),
                     VG_STORE_ERROR);
    assert_int_equal(store->ops->get_key(store, k.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.rpm_limit, 0);

    vg_store_close(store);
    B->remove(path);
}

static void test_set_setting_once_keeps_the_first_value(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("settings", path, sizeof(path));
    vg_store *other = B->reopen(path);
    vg_error err;
    char out[128];

    assert_int_equal(
        store->ops->get_setting(store, "jwt_secret", out, sizeof(out), &err),
        VG_STORE_NOT_FOUND);
    assert_int_equal(store->ops->set_setting_once(store, "jwt_secret", "first",
                                                  out, sizeof(out), &err),
                     VG_STORE_OK);
    assert_string_equal(out, "first");
    /* A second instance starting later agrees on the first value. */
    assert_int_equal(other->ops->set_setting_once(other, "jwt_secret",
                                                  "second", out, sizeof(out),
                                                  &err),
                     VG_STORE_OK);
    assert_string_equal(out, "first");
    assert_int_equal(
        other->ops->get_setting(other, "jwt_secret", out, sizeof(out), &err),
        VG_STORE_OK);
    assert_string_equal(out, "first");
    /* A value that does not fit is an error, never a truncated secret. */
    char tiny[4];
    assert_int_equal(
        store->ops->get_setting(store, "jwt_secret", tiny, sizeof(tiny), &err),
        VG_STORE_ERROR);

    vg_store_close(other);
    vg_store_close(store);
    B->remove(path);
}

/* ---- durability and schema --------------------------------------------- */

static void test_reopen_finds_everything(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = B->open("reopen", path, sizeof(path));
    vg_error err;
    vg_account a;
    vg_sc_new_account(store, "alice", 9000, &a);
    vg_api_key key;
    assert_int_equal(
        store->ops->create_key(store, a.id, "k", "hash-1", "vg_1", &key, &err),
        VG_STORE_OK);
    vg_job queued, done;
    vg_sc_fill_job(&queued, a.id, 1000);
    vg_sc_fill_job(&done, a.id, 2000);
    assert_int_equal(create_job(store, &queued, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &done, &err), VG_STORE_OK);
    vg_sc_succeed(store, done.id, VG_STORE_OK);
    char out[64];
    assert_int_equal(
        store->ops->set_setting_once(store, "s", "v", out, sizeof(out), &err),
        VG_STORE_OK);
    vg_store_close(store);

    store = B->reopen(path);
    assert_int_equal(vg_sc_balance_of(store, a.id), 6000);
    vg_api_key got_key;
    assert_int_equal(
        store->ops->find_key_by_hash(store, "hash-1", &got_key, &err),
        VG_STORE_OK);
    assert_string_equal(got_key.id, key.id);
    vg_job got;
    assert_int_equal(store->ops->get_job(store, queued.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_QUEUED);
    vg_job_clear(&got);
    assert_int_equal(store->ops->get_job(store, done.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_SUCCEEDED);
    vg_job_clear(&got);
    assert_int_equal(
        store->ops->get_setting(store, "s", out, sizeof(out), &err),
        VG_STORE_OK);
    assert_string_equal(out, "v");
    vg_ledger_row row = vg_sc_ledger_of(store, a.id);
    assert_int_equal(row.settled, 2000);
    assert_int_equal(row.open_reservations, 1000);

    vg_store_close(store);
    B->remove(path);
}

int vg_store_contract_run(const vg_store_backend_test *backend)
{
    B = backend;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_account_records_its_grant),
        cmocka_unit_test(test_grant_credits_adds_and_journals),
        cmocka_unit_test(test_create_job_insufficient_writes_nothing),
        cmocka_unit_test(test_create_job_with_existing_id_conflicts),
        cmocka_unit_test(test_reserve_then_succeed_settles),
        cmocka_unit_test(test_reserve_then_fail_refunds),
        cmocka_unit_test(test_finishing_twice_conflicts_and_moves_money_once),
        cmocka_unit_test(test_start_job_only_from_queued),
        cmocka_unit_test(test_get_job_fills_every_field),
        cmocka_unit_test(test_list_unfinished_jobs_oldest_first),
        cmocka_unit_test(test_list_queued_jobs_all_or_of_one_provider),
        cmocka_unit_test(test_create_job_keeps_webhook_flex_and_attempts),
        cmocka_unit_test(test_start_counts_attempts_and_requeue_resets),
        cmocka_unit_test(test_upstream_task_is_recorded_for_running_jobs),
        cmocka_unit_test(test_async_creates_report_each_outcome_once),
        cmocka_unit_test(test_idempotent_replay_returns_the_earlier_job),
        cmocka_unit_test(test_create_job_limits_unfinished_jobs_per_key),
        cmocka_unit_test(test_list_jobs_pages_newest_first),
        cmocka_unit_test(test_ending_a_job_queues_its_webhook),
        cmocka_unit_test(test_claim_deliveries_leases_the_due_ones),
        cmocka_unit_test(test_finish_delivery_records_each_attempt),
        cmocka_unit_test(test_webhook_secret_is_stored_once_and_rotates),
        cmocka_unit_test(test_concurrent_end_job_refunds_once),
        cmocka_unit_test(test_concurrent_handles_finish_once),
        cmocka_unit_test(test_concurrent_creates_each_get_their_own_answer),
        cmocka_unit_test(test_concurrent_creates_with_one_key_make_one_job),
        cmocka_unit_test(test_failed_commit_fails_every_write_of_the_batch),
        cmocka_unit_test(test_ledger_invariant_after_mixed_operations),
        cmocka_unit_test(test_keys_create_find_revoke_list),
        cmocka_unit_test(test_key_limits_default_and_change),
        cmocka_unit_test(test_set_setting_once_keeps_the_first_value),
        cmocka_unit_test(test_reopen_finds_everything),
    };
    return cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
}
