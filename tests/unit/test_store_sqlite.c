/*
 * test_store_sqlite.c - the SQLite backend of store.h: the contract suite
 * of every backend (support/store_contract.c) on it, then what is its own
 * (its journal mode, its migrations, upgrading a version 1 database).
 *
 * Where a rule is about what was written, a second, raw SQLite connection
 * counts rows instead of trusting the store's own view.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_contract.h"
#include "test_support.h"

/* ---- a raw connection -------------------------------------------------- */

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

/* A row that breaks a deferred foreign key makes COMMIT itself fail.
 * Jobs whose model is "poison" write one. */
static const char poison_sql[] =
    "CREATE TABLE poison (job_id TEXT REFERENCES jobs(id)"
    "  DEFERRABLE INITIALLY DEFERRED);"
    "CREATE TRIGGER poison_jobs AFTER INSERT ON jobs"
    "  WHEN NEW.model = 'poison' BEGIN"
    "  INSERT INTO poison VALUES ('no-such-job');"
    "END;";

/* ---- the backend under the contract ------------------------------------ */

static vg_store *sqlite_open(const char *name, char *handle, size_t n)
{
    vg_test_fresh_db("store", name, handle, n);
    return vg_test_open_store(handle);
}

static int sqlite_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static const char *sqlite_poison(const char *path)
{
    raw_exec(path, poison_sql);
    return "FOREIGN KEY";
}

static const vg_store_backend_test sqlite_backend = {
    .name = "store contract on sqlite",
    .open = sqlite_open,
    .reopen = vg_test_open_store,
    .remove = vg_test_remove_db,
    .count = raw_int,
    .exec = sqlite_exec,
    .poison = sqlite_poison,
};

/* ---- its own ----------------------------------------------------------- */

static void test_database_is_in_wal_mode(void **state)
{
    (void)state;
    char path[512];
    vg_store *store = sqlite_open("wal", path, sizeof(path));
    vg_account a;
    vg_sc_new_account(store, "alice", 1, &a);
    vg_store_close(store);
    store = vg_test_open_store(path);
    assert_int_equal(vg_sc_balance_of(store, a.id), 1);
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
    vg_sc_new_account(store, "alice", 100, &a);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    int64_t objects = raw_int(path, "SELECT COUNT(*) FROM sqlite_master");

    /* The migration has no IF NOT EXISTS: running it again would fail. */
    store = vg_test_open_store(path);
    assert_int_equal(vg_sc_balance_of(store, a.id), 100);
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
    vg_ledger_row row = vg_sc_ledger_of(store, "acct-1");
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
    vg_sc_fill_job(&job, "acct-1", 1000);
    static char hook_url[] = "https://example.com/hook";
    job.webhook_url = hook_url;
    vg_job_create opts = vg_sc_keyed("first-new", "h", 1000);
    opts.max_unfinished = 2;
    assert_int_equal(store->ops->create_job(store, &job, &opts, NULL, &err),
                     VG_STORE_OK);
    assert_int_equal(
        store->ops->end_job(store, "job-1", VG_JOB_FAILED, "e", "m", 0, &err),
        VG_STORE_OK);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM webhook_deliveries"),
                     0);
    vg_sc_succeed(store, job.id, VG_STORE_OK);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM webhook_deliveries WHERE job_id = '%s'",
             job.id); /* an id this test made */
    assert_int_equal(raw_int(path, sql), 1);
    row = vg_sc_ledger_of(store, "acct-1");
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
    assert_int_equal(vg_sc_balance_of(store, "acct-1"), 9000);
    vg_store_close(store);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    vg_test_remove_db(path);
}

int main(void)
{
    int failed = vg_store_contract_run(&sqlite_backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_is_in_wal_mode),
        cmocka_unit_test(test_migration_runs_once),
        cmocka_unit_test(test_version_1_database_upgrades),
    };
    failed +=
        cmocka_run_group_tests_name("store on sqlite", tests, NULL, NULL);
    return failed;
}
