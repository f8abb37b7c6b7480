/*
 * test_store.c - the contract of store.h (on the SQLite backend) and of
 * blob.h (on the folder backend), one test per rule.
 *
 * Every test works on its own database file, so tests never see each
 * other's rows. Where a rule is about what was written (a refused job
 * writes nothing, a refund happens once), the test counts rows with a
 * second, raw SQLite connection instead of trusting the store's own view.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "store/store.h"
#include "util/crypto.h"
#include "test_support.h"

/* ---- helpers ----------------------------------------------------------- */

/* Runs a one-number query on a raw connection of its own. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

static int64_t count_ledger(const char *path, const char *kind)
{
    /* Only constants of this file are pasted in; the store itself binds
     * every value. */
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM ledger WHERE kind = '%s'",
             kind);
    return raw_int(path, sql);
}

static void new_account(vg_store *store, const char *name, int64_t credits,
                        vg_account *out)
{
    vg_error err;
    assert_int_equal(
        store->ops->create_account(store, name, credits, out, &err),
        VG_STORE_OK);
}

static char request_json[] = "{\"prompt\":\"a cat\",\"seconds\":4}";

static void fill_job(vg_job *job, const char *account_id, int64_t price)
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

static int64_t balance_of(vg_store *store, const char *account_id)
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
    vg_test_fresh_db("store", "async_creates", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_account account;
    new_account(store, "async", 10000, &account);
    /* 12 jobs of 1000 against 10000 credits: 10 fit, 2 do not. */
    enum { N = 12 };
    static vg_job jobs[N];
    static vg_error errs[N];
    async_tally t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
                     {0}};
    async_slot slots[N];
    for (int i = 0; i < N; i++) {
        fill_job(&jobs[i], account.id, 1000);
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
    assert_int_equal(balance_of(store, account.id), 0);
    /* Committed before reported: a second connection sees every job. */
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"), 10);

    /* A replay through the async path hands out the earlier job. */
    vg_job first, again, existing;
    vg_error e1, e2;
    fill_job(&first, account.id, 0);
    fill_job(&again, account.id, 0);
    vg_job_create opts = {"key-1", "hash-1", 86400000, 0};
    async_tally t2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
                      {0}};
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
    fill_job(&bad, account.id, -5);
    assert_int_equal(store->ops->create_job_async(store, &bad, NULL, NULL,
                                                  &e1, async_done, &s0),
                     VG_STORE_ERROR);
    vg_store_close(store);
    assert_int_equal(t2.done, 2);
    vg_test_remove_db(path);
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
static vg_ledger_row ledger_of(vg_store *store, const char *account_id)
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

static void succeed(vg_store *store, const char *id, int expect)
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
    vg_test_fresh_db("store", "create_account", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;

    vg_account alice, bob, got;
    new_account(store, "alice", 5000, &alice);
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

    vg_ledger_row row = ledger_of(store, alice.id);
    assert_int_equal(row.grants, 5000);
    assert_int_equal(count_ledger(path, "grant"), 1);

    /* A zero start records no grant row. */
    new_account(store, "bob", 0, &bob);
    assert_int_equal(bob.balance, 0);
    assert_int_equal(count_ledger(path, "grant"), 1);
    assert_int_equal(ledger_of(store, bob.id).grants, 0);

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
    vg_test_remove_db(path);
}

static void test_grant_credits_adds_and_journals(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "grant", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 5000, &a);

    assert_int_equal(
        store->ops->grant_credits(store, a.id, 2500, "top-up", &err),
        VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 7500);
    assert_int_equal(ledger_of(store, a.id).grants, 7500);
    assert_int_equal(count_ledger(path, "grant"), 2);
    assert_int_equal(
        raw_int(path, "SELECT COUNT(*) FROM ledger WHERE note = 'top-up'"), 1);

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
    assert_int_equal(balance_of(store, a.id), 7500);
    assert_int_equal(count_ledger(path, "grant"), 2);

    vg_store_close(store);
    vg_test_remove_db(path);
}

/* ---- jobs and money ---------------------------------------------------- */

static void test_create_job_insufficient_writes_nothing(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "insufficient", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 1000, &a);

    vg_job job, got;
    fill_job(&job, a.id, 1500);
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &job, &err), VG_STORE_INSUFFICIENT);
    assert_string_equal(err.code, "insufficient_credits");
    assert_int_equal(balance_of(store, a.id), 1000);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"), 0);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM ledger"), 1);

    /* An unknown account is not an empty one. */
    vg_job orphan;
    fill_job(&orphan, "no-such-account", 0);
    assert_int_equal(create_job(store, &orphan, &err), VG_STORE_NOT_FOUND);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"), 0);

    /* Exactly the balance is enough. */
    fill_job(&job, a.id, 1000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 0);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_create_job_with_existing_id_conflicts(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "duplicate_job", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job job;
    fill_job(&job, a.id, 1000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_CONFLICT);
    assert_int_equal(balance_of(store, a.id), 9000);
    assert_int_equal(count_ledger(path, "reserve"), 1);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_reserve_then_succeed_settles(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "succeed", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job job, got;
    fill_job(&job, a.id, 3000);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 7000);
    vg_ledger_row row = ledger_of(store, a.id);
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

    succeed(store, job.id, VG_STORE_OK);
    /* The reservation already took the credits; settling keeps them. */
    assert_int_equal(balance_of(store, a.id), 7000);
    row = ledger_of(store, a.id);
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
    vg_test_remove_db(path);
}

static void test_reserve_then_fail_refunds(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "fail", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job failed, cancelled, got;
    fill_job(&failed, a.id, 3000);
    fill_job(&cancelled, a.id, 2000);
    assert_int_equal(create_job(store, &failed, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &cancelled, &err), VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 5000);

    assert_int_equal(store->ops->start_job(store, failed.id, 100, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_FAILED,
                                         "provider_error", "upstream said no",
                                         2000, &err),
                     VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 8000);

    /* A queued job can be cancelled before it ever runs. */
    assert_int_equal(store->ops->end_job(store, cancelled.id, VG_JOB_CANCELLED,
                                         "cancelled", "cancelled by the user",
                                         0, &err),
                     VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 10000);

    vg_ledger_row row = ledger_of(store, a.id);
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
    vg_test_remove_db(path);
}

static void test_finishing_twice_conflicts_and_moves_money_once(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "twice", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job won, lost, got;
    fill_job(&won, a.id, 3000);
    fill_job(&lost, a.id, 1000);
    assert_int_equal(create_job(store, &won, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &lost, &err), VG_STORE_OK);

    succeed(store, won.id, VG_STORE_OK);
    succeed(store, won.id, VG_STORE_CONFLICT);
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
    succeed(store, lost.id, VG_STORE_CONFLICT);
    assert_int_equal(store->ops->get_job(store, lost.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.state, VG_JOB_FAILED);
    assert_string_equal(got.error_message, "first");
    assert_string_equal(got.video_key, "");
    vg_job_clear(&got);

    assert_int_equal(balance_of(store, a.id), 7000);
    assert_int_equal(count_ledger(path, "settle"), 1);
    assert_int_equal(count_ledger(path, "refund"), 1);
    vg_ledger_row row = ledger_of(store, a.id);
    assert_int_equal(row.settled, 3000);
    assert_int_equal(row.open_reservations, 0);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_start_job_only_from_queued(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "start", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job job, got;
    fill_job(&job, a.id, 100);
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
    vg_test_remove_db(path);
}

static void test_get_job_fills_every_field(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "get_job", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job job, got;
    fill_job(&job, a.id, 1234);
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
    vg_test_remove_db(path);
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
    vg_test_fresh_db("store", "unfinished", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job jobs[4];
    int64_t created[4] = {300, 100, 200, 50};
    for (int i = 0; i < 4; i++) {
        fill_job(&jobs[i], a.id, 10);
        jobs[i].created_ms = created[i];
        assert_int_equal(create_job(store, &jobs[i], &err), VG_STORE_OK);
    }
    assert_int_equal(store->ops->start_job(store, jobs[0].id, 400, &err),
                     VG_STORE_OK);
    succeed(store, jobs[3].id, VG_STORE_OK);

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
    vg_test_remove_db(path);
}

/* Lists the queued jobs (of provider, or all) into a fresh walk. */
static int list_queued(vg_store *store, const char *provider, int limit,
                       job_walk *w)
{
    vg_error err;
    memset(w, 0, sizeof(*w));
    w->store = store;
    return store->ops->list_queued_jobs(store, provider, limit, collect_job,
                                        w, &err);
}

static void test_list_queued_jobs_all_or_of_one_provider(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "queued", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    /* Created at 50 (b), 100 (a), 200 (b), 300 (a), 400 (b, started). */
    vg_job jobs[5];
    int64_t created[5] = {300, 100, 200, 50, 400};
    const char *provider[5] = {"a", "a", "b", "b", "b"};
    for (int i = 0; i < 5; i++) {
        fill_job(&jobs[i], a.id, 10);
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
    vg_test_remove_db(path);
}

/* ---- asynchronous jobs ------------------------------------------------- */

static vg_job_create keyed(const char *key, const char *hash, int64_t ttl_ms)
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
    return raw_int(path, "SELECT COUNT(*) FROM jobs");
}

static void test_create_job_keeps_webhook_flex_and_attempts(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "job_fields", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    char url[] = "https://example.com/hooks/vidgate?x=1";
    static char no_url[] = "";
    vg_job hooked, plain, empty, got;
    fill_job(&hooked, a.id, 100);
    hooked.webhook_url = url;
    hooked.flex = true;
    fill_job(&plain, a.id, 100);
    fill_job(&empty, a.id, 100);
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
    fill_job(&too_long, a.id, 100);
    too_long.webhook_url = long_url;
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &too_long, &err), VG_STORE_ERROR);
    assert_string_equal(err.field, "webhook_url");
    assert_int_equal(count_jobs(path), 3);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_upstream_task_is_recorded_for_running_jobs(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "upstream", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job job, got;
    fill_job(&job, a.id, 2500);
    assert_int_equal(create_job(store, &job, &err), VG_STORE_OK);
    /* Only a running job has an upstream task. */
    assert_int_equal(store->ops->set_upstream(store, job.id, "novita", "-",
                                              &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(store->ops->start_job(store, job.id, 100, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.upstream_task, "");
    vg_job_clear(&got);
    assert_int_equal(store->ops->set_upstream(store, job.id, "novita", "-",
                                              &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->set_upstream(store, job.id, "byteplus",
                                              "cgt-2025", &err),
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
    assert_int_equal(store->ops->set_upstream(store, job.id, "fal", big,
                                              &err),
                     VG_STORE_ERROR);
    /* Queued again, it has no task. */
    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_string_equal(got.upstream_task, "");
    vg_job_clear(&got);
    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_start_counts_attempts_and_requeue_resets(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "requeue", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job job, got;
    fill_job(&job, a.id, 2500);
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
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"
                                   " WHERE started_ms IS NULL"),
                     1);
    /* The credits stay reserved for the next run. */
    assert_int_equal(balance_of(store, a.id), 7500);
    assert_int_equal(ledger_of(store, a.id).open_reservations, 2500);
    assert_int_equal(count_ledger(path, "refund"), 0);

    assert_int_equal(store->ops->start_job(store, job.id, 200, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.attempts, 2);
    assert_int_equal(got.started_ms, 200);
    vg_job_clear(&got);

    succeed(store, job.id, VG_STORE_OK);
    assert_int_equal(store->ops->requeue_job(store, job.id, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(ledger_of(store, a.id).settled, 2500);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_idempotent_replay_returns_the_earlier_job(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "idempotency", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a, b;
    new_account(store, "alice", 10000, &a);
    new_account(store, "bob", 10000, &b);

    vg_job_create opts = keyed("order-17", "hash-1", 1000);
    vg_job first, replay, other, got;
    fill_job(&first, a.id, 3000);
    first.created_ms = 10000;
    assert_int_equal(store->ops->create_job(store, &first, &opts, &got, &err),
                     VG_STORE_OK);

    /* Same key, same request: the earlier job, nothing written. */
    fill_job(&replay, a.id, 3000);
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
    assert_int_equal(balance_of(store, a.id), 7000);

    /* Same key, another request: a conflict, nothing written. */
    vg_job_create changed = keyed("order-17", "hash-2", 1000);
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        store->ops->create_job(store, &replay, &changed, &got, &err),
        VG_STORE_CONFLICT);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.code, "idempotency_conflict");
    assert_int_equal(count_jobs(path), 1);

    /* Keys belong to an account: bob's "order-17" is another key. */
    fill_job(&other, b.id, 1000);
    other.created_ms = 10500;
    assert_int_equal(
        store->ops->create_job(store, &other, &changed, NULL, &err),
        VG_STORE_OK);

    /* A replay is answered even when a new job would be refused. */
    vg_job spend;
    fill_job(&spend, a.id, 7000);
    assert_int_equal(create_job(store, &spend, &err), VG_STORE_OK);
    assert_int_equal(balance_of(store, a.id), 0);
    opts.max_unfinished = 1;
    assert_int_equal(store->ops->create_job(store, &replay, &opts, NULL, &err),
                     VG_STORE_EXISTS);
    opts.max_unfinished = 0;
    assert_int_equal(store->ops->grant_credits(store, a.id, 5000, "", &err),
                     VG_STORE_OK);

    /* Once expired (created 10000 + ttl 1000), the key takes a new job,
     * whatever the request. */
    vg_job later;
    fill_job(&later, a.id, 1000);
    later.created_ms = 11000;
    assert_int_equal(
        store->ops->create_job(store, &later, &changed, &got, &err),
        VG_STORE_OK);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM idempotency_keys"
                                   " WHERE key = 'order-17'"),
                     2);
    fill_job(&replay, a.id, 1000);
    replay.created_ms = 11500;
    assert_int_equal(
        store->ops->create_job(store, &replay, &changed, &got, &err),
        VG_STORE_EXISTS);
    assert_string_equal(got.id, later.id);
    vg_job_clear(&got);
    ledger_of(store, a.id);

    /* A ttl of 0 never expires. */
    vg_job_create forever = keyed("forever", "h", 0);
    vg_job kept;
    fill_job(&kept, a.id, 10);
    kept.created_ms = 1;
    assert_int_equal(
        store->ops->create_job(store, &kept, &forever, NULL, &err),
        VG_STORE_OK);
    fill_job(&replay, a.id, 10);
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
    vg_job_create bad = keyed(long_key, "h", 1000);
    fill_job(&replay, a.id, 10);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    bad = keyed("", "h", 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    bad = keyed("fine", NULL, 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_ERROR);
    long_key[255] = '\0';
    bad = keyed(long_key, "h", 1000);
    assert_int_equal(store->ops->create_job(store, &replay, &bad, NULL, &err),
                     VG_STORE_OK);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_create_job_limits_unfinished_jobs_per_key(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "limit", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job_create opts;
    memset(&opts, 0, sizeof(opts));
    opts.max_unfinished = 2;
    vg_job first, second, refused, other_key;
    fill_job(&first, a.id, 100);
    fill_job(&second, a.id, 100);
    fill_job(&refused, a.id, 100);
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
    assert_int_equal(balance_of(store, a.id), 9800);

    /* The limit is per key. */
    fill_job(&other_key, a.id, 100);
    snprintf(other_key.key_id, sizeof(other_key.key_id), "key-2");
    assert_int_equal(
        store->ops->create_job(store, &other_key, &opts, NULL, &err),
        VG_STORE_OK);

    /* A finished job frees its place. */
    succeed(store, first.id, VG_STORE_OK);
    assert_int_equal(
        store->ops->create_job(store, &refused, &opts, NULL, &err),
        VG_STORE_OK);
    /* Without a limit, or with 0, anything goes. */
    vg_job more;
    fill_job(&more, a.id, 100);
    opts.max_unfinished = 0;
    assert_int_equal(store->ops->create_job(store, &more, &opts, NULL, &err),
                     VG_STORE_OK);
    opts.max_unfinished = -1;
    fill_job(&more, a.id, 100);
    assert_int_equal(store->ops->create_job(store, &more, &opts, NULL, &err),
                     VG_STORE_ERROR);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
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
    vg_test_fresh_db("store", "list_jobs", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a, b;
    new_account(store, "alice", 100000, &a);
    new_account(store, "bob", 100000, &b);

    /* Three jobs share a millisecond: the id orders them. */
    enum { N = 8 };
    int64_t created[N] = {100, 200, 200, 200, 300, 400, 50, 250};
    vg_job jobs[N];
    for (int i = 0; i < N; i++) {
        fill_job(&jobs[i], a.id, 10);
        jobs[i].created_ms = created[i];
        assert_int_equal(create_job(store, &jobs[i], &err), VG_STORE_OK);
    }
    vg_job bobs;
    fill_job(&bobs, b.id, 10);
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
    vg_test_remove_db(path);
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
    fill_job(job, account_id, 100);
    job->webhook_url = hook_url;
    assert_int_equal(create_job(store, job, &err), VG_STORE_OK);
}

static void test_ending_a_job_queues_its_webhook(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "webhook_queue", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

    vg_job won, failed, plain;
    hooked_job(store, a.id, &won);
    hooked_job(store, a.id, &failed);
    fill_job(&plain, a.id, 100);
    assert_int_equal(create_job(store, &plain, &err), VG_STORE_OK);
    assert_int_equal(next_due(store), 0);
    assert_int_equal(deliveries_of(store, won.id).count, 0);

    succeed(store, won.id, VG_STORE_OK); /* finished at 5000 */
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
    succeed(store, plain.id, VG_STORE_OK);
    assert_int_equal(deliveries_of(store, plain.id).count, 0);
    succeed(store, won.id, VG_STORE_CONFLICT);
    assert_int_equal(store->ops->end_job(store, failed.id, VG_JOB_CANCELLED,
                                         "c", "m", 0, &err),
                     VG_STORE_CONFLICT);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM webhook_deliveries"),
                     2);

    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_PENDING),
                        "pending");
    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_DELIVERED),
                        "delivered");
    assert_string_equal(vg_delivery_state_name(VG_DELIVERY_FAILED), "failed");

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_claim_deliveries_leases_the_due_ones(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "webhook_claim", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);

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
    vg_test_remove_db(path);
}

static void test_finish_delivery_records_each_attempt(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "webhook_finish", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job ok_job, bad_job;
    hooked_job(store, a.id, &ok_job);
    hooked_job(store, a.id, &bad_job);
    succeed(store, ok_job.id, VG_STORE_OK);
    succeed(store, bad_job.id, VG_STORE_OK);
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
    vg_test_remove_db(path);
}

static void test_webhook_secret_is_stored_once_and_rotates(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "webhook_secret", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_store *other = vg_test_open_store(path);
    vg_error err;
    vg_account a, b;
    new_account(store, "alice", 0, &a);
    new_account(store, "bob", 0, &b);
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
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM accounts"
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
    vg_test_remove_db(path);
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
        store = vg_test_open_store(r->path);
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
    vg_test_fresh_db("store", "race_end", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job job;
    fill_job(&job, a.id, 4000);
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
    assert_int_equal(balance_of(store, a.id), 10000);
    assert_int_equal(count_ledger(path, "refund"), 1);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
}

/* Separate handles stand in for separate processes (the server and a CLI
 * subcommand): only SQLite's own locking keeps them apart. */
static void test_concurrent_handles_finish_once(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "race_handles", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 10000, &a);
    vg_job job;
    fill_job(&job, a.id, 4000);
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
    assert_int_equal(balance_of(store, a.id), expected);
    assert_int_equal(
        count_ledger(path, "settle") + count_ledger(path, "refund"), 1);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
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
        fill_job(&job, creates_for_rich(i) ? c->rich : c->poor, CREATE_PRICE);
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
    vg_test_fresh_db("store", "group_commit", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account rich, poor;
    new_account(store, "rich", 1000000, &rich);
    new_account(store, "poor", POOR_JOBS * CREATE_PRICE, &poor);

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
    assert_int_equal(balance_of(store, rich.id),
                     1000000 - total / 2 * CREATE_PRICE);
    assert_int_equal(balance_of(store, poor.id), 0);
    assert_int_equal(ledger_of(store, rich.id).open_reservations,
                     total / 2 * CREATE_PRICE);
    assert_int_equal(ledger_of(store, poor.id).open_reservations,
                     POOR_JOBS * CREATE_PRICE);

    vg_store_close(store);
    vg_test_remove_db(path);
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
    vg_job_create opts = keyed(r->key, r->hash, 60000);
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
        fill_job(&racers[i].job, account_id, 500);
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
    vg_test_fresh_db("store", "race_idempotency", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_account a;
    new_account(store, "alice", 10000, &a);

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
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM idempotency_keys"),
                     2);
    assert_int_equal(balance_of(store, a.id), 9000);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
}

/* A row that breaks a deferred foreign key makes COMMIT itself fail, the
 * one failure no single operation can see coming. Jobs whose model is
 * "poison" write one. */
static const char poison_sql[] =
    "CREATE TABLE poison (job_id TEXT REFERENCES jobs(id)"
    "  DEFERRABLE INITIALLY DEFERRED);"
    "CREATE TRIGGER poison_jobs AFTER INSERT ON jobs"
    "  WHEN NEW.model = 'poison' BEGIN"
    "  INSERT INTO poison VALUES ('no-such-job');"
    "END;";

static void *create_some_poison(void *arg)
{
    creator *c = arg;
    pthread_barrier_wait(c->start);
    for (int i = 0; i < 50; i++) {
        vg_job job;
        vg_error err;
        fill_job(&job, c->rich, CREATE_PRICE);
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
    vg_test_fresh_db("store", "failed_commit", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 100000, &a);
    raw_exec(path, poison_sql);

    vg_job job;
    fill_job(&job, a.id, 100);
    snprintf(job.model, sizeof(job.model), "poison");
    memset(&err, 0, sizeof(err));
    assert_int_equal(create_job(store, &job, &err), VG_STORE_ERROR);
    assert_non_null(strstr(err.message, "FOREIGN KEY"));
    assert_int_equal(count_jobs(path), 0);
    assert_int_equal(balance_of(store, a.id), 100000);
    /* The store goes on working after it. */
    fill_job(&job, a.id, 100);
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
    assert_int_equal(balance_of(store, a.id),
                     100000 - 100 - (ok - 1) * CREATE_PRICE);
    ledger_of(store, a.id);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_ledger_invariant_after_mixed_operations(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "invariant", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account accounts[3];
    new_account(store, "a", 20000, &accounts[0]);
    new_account(store, "b", 0, &accounts[1]);
    new_account(store, "c", 500, &accounts[2]);
    assert_int_equal(
        store->ops->grant_credits(store, accounts[1].id, 8000, "", &err),
        VG_STORE_OK);

    /* A fixed walk through every transition, including refused ones. */
    int64_t settled[3] = {0}, open[3] = {0}, grants[3] = {20000, 8000, 500};
    for (int i = 0; i < 30; i++) {
        int who = i % 3;
        vg_job job;
        fill_job(&job, accounts[who].id, 250 * (i % 5 + 1));
        int rc = create_job(store, &job, &err);
        if (rc == VG_STORE_INSUFFICIENT)
            continue;
        assert_int_equal(rc, VG_STORE_OK);
        switch (i % 4) {
        case 0:
            succeed(store, job.id, VG_STORE_OK);
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
        vg_ledger_row row = ledger_of(store, accounts[i].id);
        assert_int_equal(row.grants, grants[i]);
        assert_int_equal(row.settled, settled[i]);
        assert_int_equal(row.open_reservations, open[i]);
        assert_int_equal(row.balance, grants[i] - settled[i] - open[i]);
        assert_string_equal(row.name, accounts[i].name);
    }

    /* The journal is append-only. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE ledger SET amount = 0", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_not_equal(
        sqlite3_exec(db, "DELETE FROM ledger", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    vg_store_close(store);
    vg_test_remove_db(path);
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
    vg_test_fresh_db("store", "keys", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account alice, bob;
    new_account(store, "alice", 0, &alice);
    new_account(store, "bob", 0, &bob);

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
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM api_keys"), 2);
    /* Only the hash is stored. */
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM api_keys"
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
    vg_test_remove_db(path);
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
    vg_test_fresh_db("store", "key_limits", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 0, &a);
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
    vg_test_remove_db(path);
}

static void test_set_setting_once_keeps_the_first_value(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "settings", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_store *other = vg_test_open_store(path);
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
    vg_test_remove_db(path);
}

/* ---- durability and schema --------------------------------------------- */

static void test_reopen_finds_everything(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "reopen", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_error err;
    vg_account a;
    new_account(store, "alice", 9000, &a);
    vg_api_key key;
    assert_int_equal(
        store->ops->create_key(store, a.id, "k", "hash-1", "vg_1", &key, &err),
        VG_STORE_OK);
    vg_job queued, done;
    fill_job(&queued, a.id, 1000);
    fill_job(&done, a.id, 2000);
    assert_int_equal(create_job(store, &queued, &err), VG_STORE_OK);
    assert_int_equal(create_job(store, &done, &err), VG_STORE_OK);
    succeed(store, done.id, VG_STORE_OK);
    char out[64];
    assert_int_equal(
        store->ops->set_setting_once(store, "s", "v", out, sizeof(out), &err),
        VG_STORE_OK);
    vg_store_close(store);

    store = vg_test_open_store(path);
    assert_int_equal(balance_of(store, a.id), 6000);
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
    vg_ledger_row row = ledger_of(store, a.id);
    assert_int_equal(row.settled, 2000);
    assert_int_equal(row.open_reservations, 1000);
    assert_int_equal(
        raw_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"),
        1);

    vg_store_close(store);
    vg_test_remove_db(path);
}

static void test_migration_runs_once(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "migration", path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_account a;
    new_account(store, "alice", 100, &a);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    int64_t objects = raw_int(path, "SELECT COUNT(*) FROM sqlite_master");

    /* The migration has no IF NOT EXISTS: running it again would fail. */
    store = vg_test_open_store(path);
    assert_int_equal(balance_of(store, a.id), 100);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM sqlite_master"),
                     objects);
    assert_int_equal(
        raw_int(path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);

    /* A database from a newer vidgate is refused, not damaged. */
    raw_exec(path, "PRAGMA user_version = 99");
    vg_error err;
    memset(&err, 0, sizeof(err));
    assert_null(vg_store_open_sqlite(path, &err));
    assert_non_null(strstr(err.message, "99"));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 99);

    vg_test_remove_db(path);
}

/* The schema as version 1 of vidgate created it: a copy of migration 1,
 * frozen here, since the store only keeps the scripts, not the states. */
static const char schema_v1[] =
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  balance INTEGER NOT NULL CHECK (balance >= 0),"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  prefix TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER"
    ");"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  key_id TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  reservation TEXT NOT NULL CHECK (reservation IN"
    "    ('open', 'settled', 'refunded')),"
    "  model TEXT NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  request_json TEXT NOT NULL,"
    "  price INTEGER NOT NULL CHECK (price >= 0),"
    "  seed INTEGER NOT NULL,"
    "  width INTEGER NOT NULL,"
    "  height INTEGER NOT NULL,"
    "  progress INTEGER NOT NULL,"
    "  video_key TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL,"
    "  error_code TEXT NOT NULL,"
    "  error_message TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  started_ms INTEGER,"
    "  finished_ms INTEGER"
    ");"
    "CREATE INDEX jobs_state_created ON jobs(state, created_ms);"
    "CREATE INDEX jobs_account_created ON jobs(account_id, created_ms);"
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  kind TEXT NOT NULL CHECK (kind IN"
    "    ('grant', 'reserve', 'settle', 'refund')),"
    "  amount INTEGER NOT NULL CHECK (amount >= 0),"
    "  job_id TEXT REFERENCES jobs(id),"
    "  note TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL"
    ");"
    "CREATE INDEX ledger_account ON ledger(account_id, kind);"
    "CREATE INDEX ledger_job ON ledger(job_id);"
    "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN"
    "  SELECT RAISE(ABORT, 'the ledger is append-only');"
    "END;"
    "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN"
    "  SELECT RAISE(ABORT, 'the ledger is append-only');"
    "END;"
    "PRAGMA user_version = 1;";

/* What a version 1 server left behind: an account of 10.000 credits with
 * one key and one queued job of 2.500. */
static const char rows_v1[] =
    "INSERT INTO accounts VALUES ('acct-1', 'old', 7500, 1, 2);"
    "INSERT INTO api_keys VALUES ('key-1', 'acct-1', 'laptop', 'hash-v1',"
    "  'vg_old', 1, NULL);"
    "INSERT INTO jobs VALUES ('job-1', 'acct-1', 'key-1', 'queued', 'open',"
    "  'm', 'local', '{}', 2500, 7, 640, 360, 0, '', 0, 0, '', '', 2, NULL,"
    "  NULL);"
    "INSERT INTO ledger (account_id, kind, amount, job_id, note, created_ms)"
    "  VALUES ('acct-1', 'grant', 10000, NULL, 'initial grant', 1),"
    "         ('acct-1', 'reserve', 2500, 'job-1', '', 2);";

static void test_version_1_database_upgrades(void **state)
{
    (void)state;
    char path[512];
    vg_test_fresh_db("store", "upgrade_v1", path, sizeof(path));
    raw_exec(path, schema_v1);
    raw_exec(path, rows_v1);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);

    vg_store *store = vg_test_open_store(path);
    vg_error err;
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(path,
                             "SELECT COUNT(*) FROM sqlite_master WHERE name IN"
                             " ('idempotency_keys', 'webhook_deliveries',"
                             "  'jobs_key_state', 'jobs_account_page',"
                             "  'jobs_account_state_page',"
                             "  'webhook_deliveries_due',"
                             "  'jobs_queued_provider')"),
                     7);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM sqlite_master"
                                   " WHERE name = 'jobs_account_created'"),
                     0);

    /* Old rows read with the defaults of the new columns. */
    vg_api_key key;
    assert_int_equal(store->ops->get_key(store, "key-1", &key, &err),
                     VG_STORE_OK);
    assert_int_equal(key.rpm_limit, -1);
    assert_int_equal(key.jobs_limit, -1);
    vg_job got;
    assert_int_equal(store->ops->get_job(store, "job-1", &got, &err),
                     VG_STORE_OK);
    assert_null(got.webhook_url);
    assert_false(got.flex);
    assert_int_equal(got.attempts, 0);
    assert_int_equal(got.price, 2500);
    vg_job_clear(&got);
    vg_ledger_row row = ledger_of(store, "acct-1");
    assert_int_equal(row.balance, 7500);
    assert_int_equal(row.open_reservations, 2500);

    /* And the new features work on them. */
    assert_int_equal(store->ops->set_key_limits(store, "key-1", 10, 1, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->start_job(store, "job-1", 3, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->get_job(store, "job-1", &got, &err),
                     VG_STORE_OK);
    assert_int_equal(got.attempts, 1);
    vg_job_clear(&got);
    vg_job job;
    fill_job(&job, "acct-1", 1000);
    job.webhook_url = hook_url;
    vg_job_create opts = keyed("first-new", "h", 1000);
    opts.max_unfinished = 2;
    assert_int_equal(store->ops->create_job(store, &job, &opts, NULL, &err),
                     VG_STORE_OK);
    assert_int_equal(
        store->ops->end_job(store, "job-1", VG_JOB_FAILED, "e", "m", 0, &err),
        VG_STORE_OK);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM webhook_deliveries"),
                     0);
    succeed(store, job.id, VG_STORE_OK);
    assert_int_equal(deliveries_of(store, job.id).count, 1);
    row = ledger_of(store, "acct-1");
    assert_int_equal(row.balance, 9000);
    assert_int_equal(row.settled, 1000);
    vg_store_close(store);

    assert_int_equal(
        raw_int(path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    assert_int_equal(raw_int(path, "SELECT integrity_check = 'ok'"
                                   " FROM pragma_integrity_check"),
                     1);
    /* Reopening finds version 4 and runs nothing. */
    store = vg_test_open_store(path);
    assert_int_equal(balance_of(store, "acct-1"), 9000);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    vg_test_remove_db(path);
}

/* ---- blob_fs ----------------------------------------------------------- */

static void blob_dir(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/vg-blob-%d-%s", vg_test_tmp_dir(), (int)getpid(),
             name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void check_blob(vg_blob *blob, const char *key, const char *text)
{
    vg_error err;
    int fd = -1;
    int64_t size = -1;
    assert_int_equal(blob->ops->open_read(blob, key, &fd, &size, &err), 0);
    assert_int_equal(size, (int64_t)strlen(text));
    char buf[256];
    ssize_t got = read(fd, buf, sizeof(buf));
    assert_int_equal(got, size);
    assert_memory_equal(buf, text, (size_t)size);
    close(fd);
}

static void test_blob_put_file_moves_the_file(void **state)
{
    (void)state;
    char dir[512], src[600], stored[700];
    blob_dir("put", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    snprintf(src, sizeof(src), "%s/../vg-blob-%d-src.mp4", dir, (int)getpid());
    write_file(src, "not really a video");
    assert_int_equal(
        blob->ops->put_file(blob, "videos/abc-123.mp4", src, &err), 0);
    assert_int_equal(access(src, F_OK), -1);
    snprintf(stored, sizeof(stored), "%s/videos/abc-123.mp4", dir);
    assert_int_equal(access(stored, F_OK), 0);
    check_blob(blob, "videos/abc-123.mp4", "not really a video");

    /* Putting the same key again replaces the blob. */
    write_file(src, "v2");
    assert_int_equal(
        blob->ops->put_file(blob, "videos/abc-123.mp4", src, &err), 0);
    check_blob(blob, "videos/abc-123.mp4", "v2");

    /* Across filesystems the file is copied, then the source removed. */
    if (stat("/dev/shm", &st) == 0) {
        struct stat here;
        assert_int_equal(stat(dir, &here), 0);
        if (here.st_dev != st.st_dev) {
            snprintf(src, sizeof(src), "/dev/shm/vg-blob-%d.mp4",
                     (int)getpid());
            write_file(src, "copied across");
            assert_int_equal(
                blob->ops->put_file(blob, "videos/copied.mp4", src, &err), 0);
            assert_int_equal(access(src, F_OK), -1);
            check_blob(blob, "videos/copied.mp4", "copied across");
            assert_int_equal(
                blob->ops->remove(blob, "videos/copied.mp4", &err), 0);
        }
    }

    assert_int_equal(blob->ops->remove(blob, "videos/abc-123.mp4", &err), 0);
    assert_int_equal(access(stored, F_OK), -1);
    /* Removing what is gone is fine. */
    assert_int_equal(blob->ops->remove(blob, "videos/abc-123.mp4", &err), 0);
    blob->ops->close(blob);

    snprintf(stored, sizeof(stored), "%s/videos", dir);
    rmdir(stored);
    rmdir(dir);
}

/* Puts from many threads at once, into two directories, share the
 * directory syncs: every one lands with its own content. */
typedef struct put_worker {
    vg_blob *blob;
    const char *dir;
    int index;
    int failures;
} put_worker;

#define PUT_THREADS 8
#define PUTS_EACH 40

static void *put_many(void *arg)
{
    put_worker *w = arg;
    for (int i = 0; i < PUTS_EACH; i++) {
        char src[700], key[64], text[64];
        snprintf(src, sizeof(src), "%s/src-%d-%d", w->dir, w->index, i);
        snprintf(text, sizeof(text), "video %d of %d", i, w->index);
        /* No cmocka assertion off the test's own thread. */
        FILE *f = fopen(src, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
            w->failures++;
            continue;
        }
        snprintf(key, sizeof(key), "%s/%d-%d.mp4",
                 i % 3 == 0 ? "uploads" : "videos", w->index, i);
        vg_error err;
        memset(&err, 0, sizeof(err));
        if (w->blob->ops->put_file(w->blob, key, src, &err) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_blob_concurrent_puts_all_land(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("many", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    pthread_t threads[PUT_THREADS];
    put_worker workers[PUT_THREADS];
    for (int t = 0; t < PUT_THREADS; t++) {
        workers[t] = (put_worker){blob, dir, t, 0};
        assert_int_equal(
            pthread_create(&threads[t], NULL, put_many, &workers[t]), 0);
    }
    for (int t = 0; t < PUT_THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].failures, 0);
    }
    for (int t = 0; t < PUT_THREADS; t++)
        for (int i = 0; i < PUTS_EACH; i++) {
            char key[64], text[64], src[700];
            snprintf(key, sizeof(key), "%s/%d-%d.mp4",
                     i % 3 == 0 ? "uploads" : "videos", t, i);
            snprintf(text, sizeof(text), "video %d of %d", i, t);
            check_blob(blob, key, text);
            snprintf(src, sizeof(src), "%s/src-%d-%d", dir, t, i);
            assert_int_equal(access(src, F_OK), -1);
            assert_int_equal(blob->ops->remove(blob, key, &err), 0);
        }
    blob->ops->close(blob);
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/videos", dir);
    assert_int_equal(rmdir(sub), 0);
    snprintf(sub, sizeof(sub), "%s/uploads", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* A put into a directory that is not there yet (or was removed since)
 * creates it, however deep. */
static void test_blob_put_creates_missing_directories(void **state)
{
    (void)state;
    char dir[512], src[600], sub[700];
    blob_dir("deep", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    snprintf(src, sizeof(src), "%s/source.mp4", dir);
    write_file(src, "first");
    assert_int_equal(blob->ops->put_file(blob, "a/b/c/v.mp4", src, &err), 0);
    check_blob(blob, "a/b/c/v.mp4", "first");
    assert_int_equal(blob->ops->remove(blob, "a/b/c/v.mp4", &err), 0);
    const char *const gone[] = {"a/b/c", "a/b", "a"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", dir, gone[i]);
        assert_int_equal(rmdir(sub), 0);
    }
    write_file(src, "again");
    assert_int_equal(blob->ops->put_file(blob, "a/b/c/v.mp4", src, &err), 0);
    check_blob(blob, "a/b/c/v.mp4", "again");
    /* A missing source is an error, not a directory made for nothing. */
    memset(&err, 0, sizeof(err));
    assert_int_equal(blob->ops->put_file(blob, "x/y.mp4", src, &err), -1);
    assert_int_equal(err.status, 500);
    snprintf(sub, sizeof(sub), "%s/x", dir);
    assert_int_equal(access(sub, F_OK), -1);
    assert_int_equal(blob->ops->remove(blob, "a/b/c/v.mp4", &err), 0);
    blob->ops->close(blob);
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", dir, gone[i]);
        assert_int_equal(rmdir(sub), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_blob_open_read_missing_returns_1(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("missing", dir, sizeof(dir));
    vg_error err;
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    int fd = -1;
    int64_t size = -1;
    assert_int_equal(
        blob->ops->open_read(blob, "videos/nothing.mp4", &fd, &size, &err),
        VG_STORE_NOT_FOUND);
    assert_int_equal(fd, -1);
    blob->ops->close(blob);
    rmdir(dir);
}

static void test_blob_refuses_bad_keys(void **state)
{
    (void)state;
    char dir[512], src[600];
    blob_dir("bad", dir, sizeof(dir));
    vg_error err;
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    snprintf(src, sizeof(src), "%s/source.mp4", dir);
    write_file(src, "x");

    static const char *const bad[] = {
        "",
        "/etc/passwd",
        "../escape.mp4",
        "videos/../../x",
        "a/..",
        "..",
        "videos/a b.mp4",
        "videos/a;b",
        "videos/",
        "a//b",
        ".",
        "videos/./x",
        "vid\\eos",
        "videos/\xc3\xa9.mp4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = -1;
        int64_t size = 0;
        memset(&err, 0, sizeof(err));
        assert_int_equal(blob->ops->put_file(blob, bad[i], src, &err), -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(blob->ops->open_read(blob, bad[i], &fd, &size, &err),
                         -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(blob->ops->remove(blob, bad[i], &err), -1);
    }
    /* The source is untouched by refused puts. */
    assert_int_equal(access(src, F_OK), 0);
    /* Dots inside names are fine. */
    assert_int_equal(
        blob->ops->put_file(blob, "videos/v1.2_final-cut.mp4", src, &err), 0);
    check_blob(blob, "videos/v1.2_final-cut.mp4", "x");
    assert_int_equal(
        blob->ops->remove(blob, "videos/v1.2_final-cut.mp4", &err), 0);
    blob->ops->close(blob);

    char sub[700];
    snprintf(sub, sizeof(sub), "%s/videos", dir);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
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
        cmocka_unit_test(test_migration_runs_once),
        cmocka_unit_test(test_version_1_database_upgrades),
        cmocka_unit_test(test_blob_put_file_moves_the_file),
        cmocka_unit_test(test_blob_concurrent_puts_all_land),
        cmocka_unit_test(test_blob_put_creates_missing_directories),
        cmocka_unit_test(test_blob_open_read_missing_returns_1),
        cmocka_unit_test(test_blob_refuses_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
