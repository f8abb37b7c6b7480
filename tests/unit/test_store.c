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

static int64_t balance_of(vg_store *store, const char *account_id)
{
    vg_account a;
    vg_error err;
    assert_int_equal(store->ops->get_account(store, account_id, &a, &err),
                     VG_STORE_OK);
    return a.balance;
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
    assert_int_equal(store->ops->create_job(store, &job, &err),
                     VG_STORE_INSUFFICIENT);
    assert_string_equal(err.code, "insufficient_credits");
    assert_int_equal(balance_of(store, a.id), 1000);
    assert_int_equal(store->ops->get_job(store, job.id, &got, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"), 0);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM ledger"), 1);

    /* An unknown account is not an empty one. */
    vg_job orphan;
    fill_job(&orphan, "no-such-account", 0);
    assert_int_equal(store->ops->create_job(store, &orphan, &err),
                     VG_STORE_NOT_FOUND);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM jobs"), 0);

    /* Exactly the balance is enough. */
    fill_job(&job, a.id, 1000);
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);
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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);
    assert_int_equal(store->ops->create_job(store, &job, &err),
                     VG_STORE_CONFLICT);
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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);
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
    assert_int_equal(store->ops->create_job(store, &failed, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->create_job(store, &cancelled, &err),
                     VG_STORE_OK);
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
    assert_int_equal(store->ops->create_job(store, &won, &err), VG_STORE_OK);
    assert_int_equal(store->ops->create_job(store, &lost, &err), VG_STORE_OK);

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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);

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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);
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
        assert_int_equal(store->ops->create_job(store, &jobs[i], &err),
                         VG_STORE_OK);
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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);
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
    assert_int_equal(store->ops->create_job(store, &job, &err), VG_STORE_OK);

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
        int rc = store->ops->create_job(store, &job, &err);
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
    assert_int_equal(store->ops->create_job(store, &queued, &err),
                     VG_STORE_OK);
    assert_int_equal(store->ops->create_job(store, &done, &err), VG_STORE_OK);
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
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);
    int64_t objects = raw_int(path, "SELECT COUNT(*) FROM sqlite_master");

    /* The migration has no IF NOT EXISTS: running it again would fail. */
    store = vg_test_open_store(path);
    assert_int_equal(balance_of(store, a.id), 100);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);
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
        cmocka_unit_test(test_concurrent_end_job_refunds_once),
        cmocka_unit_test(test_concurrent_handles_finish_once),
        cmocka_unit_test(test_ledger_invariant_after_mixed_operations),
        cmocka_unit_test(test_keys_create_find_revoke_list),
        cmocka_unit_test(test_set_setting_once_keeps_the_first_value),
        cmocka_unit_test(test_reopen_finds_everything),
        cmocka_unit_test(test_migration_runs_once),
        cmocka_unit_test(test_blob_put_file_moves_the_file),
        cmocka_unit_test(test_blob_open_read_missing_returns_1),
        cmocka_unit_test(test_blob_refuses_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
