/*
 * store_sqlite.c - the SQLite backend of store.h: one database file holds
 * settings, accounts, API keys, the credit ledger, jobs, idempotency keys
 * and webhook deliveries.
 *
 * This file holds what every operation stands on: the connection and its
 * statement cache, the schema and its migrations, opening and closing,
 * settings, and the table of operations. The group commit is
 * sqlite_commit.c; the operations live in one file per group, sharing
 * what they need through sqlite_internal.h: sqlite_accounts.c (accounts,
 * API keys, credits and the ledger), sqlite_jobs.c and
 * sqlite_job_updates.c (jobs), and sqlite_webhooks.c.
 *
 * One connection per vg_store, guarded by a mutex: a transaction of
 * several statements on one connection must not interleave with another
 * thread's statements. Reads take the mutex for their whole duration.
 * Other processes (the CLI subcommands next to a running server) open the
 * same file; WAL lets their reads run beside our writes, and writers queue
 * on busy_timeout. Every transaction that writes starts with BEGIN
 * IMMEDIATE, so it takes the write lock before it reads what it decides
 * on: a deferred transaction that upgrades from read to write can fail
 * with SQLITE_BUSY at once, without waiting, when another process wrote in
 * between.
 *
 * Writes go through the group commit of sqlite_commit.c.
 */
#include "store/sqlite_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* How long a writer waits for another process's transaction to end. Ours
 * last milliseconds; the wait only matters under heavy contention. */
#define BUSY_TIMEOUT_MS 10000

/*
 * The schema, one script per version; entry i upgrades version i to i + 1
 * and ends by recording the new version, inside the same transaction.
 * Released entries are never edited: a change is a new entry. No IF NOT
 * EXISTS, so a migration that ran twice would fail loudly.
 *
 * The ledger journal holds positive amounts; the kind says which way they
 * go: 'grant' adds credits, 'reserve' holds a job's price, and exactly one
 * of 'settle' (the job succeeded: the hold becomes a charge) or 'refund'
 * (the hold returns to the balance) closes each reservation. So
 *   balance == grants - reserves + refunds
 * and jobs.reservation says where each hold stands.
 */
static const char *const migrations[] = {
    /* 1: the initial schema. */
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
    /* The journal is the second record of every balance; a bug or a
     * hand-written UPDATE that rewrote history would make the ledger
     * check agree with a wrong balance. */
    "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN"
    "  SELECT RAISE(ABORT, 'the ledger is append-only');"
    "END;"
    "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN"
    "  SELECT RAISE(ABORT, 'the ledger is append-only');"
    "END;"
    "PRAGMA user_version = 1;",

    /* 2: asynchronous jobs. Per-key limits (-1: the server's default),
     * each job's webhook URL, tier and attempt count, each account's
     * webhook signing secret, idempotency keys and the webhook outbox.
     * The defaults give rows of version 1 the values they always had. */
    "ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER NOT NULL"
    "  DEFAULT -1 CHECK (rpm_limit >= -1);"
    "ALTER TABLE api_keys ADD COLUMN jobs_limit INTEGER NOT NULL"
    "  DEFAULT -1 CHECK (jobs_limit >= -1);"
    "ALTER TABLE accounts ADD COLUMN webhook_secret TEXT;"
    "ALTER TABLE jobs ADD COLUMN webhook_url TEXT;"
    "ALTER TABLE jobs ADD COLUMN flex INTEGER NOT NULL DEFAULT 0"
    "  CHECK (flex IN (0, 1));"
    "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"
    "  CHECK (attempts >= 0);"
    /* The key names one job until expires_ms; after that the next create
     * with the key replaces the row. */
    "CREATE TABLE idempotency_keys ("
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  key TEXT NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  job_id TEXT NOT NULL REFERENCES jobs(id),"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (account_id, key)"
    ") WITHOUT ROWID;"
    /* An outbox: the row is written in the transaction that ends the job,
     * so a webhook is never lost nor sent for a change that rolled back.
     * next_attempt_ms is the due time of a pending row, 0 otherwise. */
    "CREATE TABLE webhook_deliveries ("
    "  id TEXT PRIMARY KEY,"
    "  job_id TEXT NOT NULL REFERENCES jobs(id),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  url TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('pending', 'delivered', 'failed')),"
    "  attempts INTEGER NOT NULL CHECK (attempts >= 0),"
    "  last_status INTEGER NOT NULL,"
    "  last_error TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  next_attempt_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ");"
    /* Only pending rows are ever looked up by due time; delivered ones
     * leave the index. */
    "CREATE INDEX webhook_deliveries_due"
    "  ON webhook_deliveries(next_attempt_ms) WHERE state = 'pending';"
    "CREATE INDEX webhook_deliveries_job"
    "  ON webhook_deliveries(job_id, created_ms);"
    /* The per-key limit counts a key's queued and running jobs on every
     * create. */
    "CREATE INDEX jobs_key_state ON jobs(key_id, state);"
    /* Pages of an account's jobs walk (created_ms, id) backwards from a
     * cursor; id breaks ties between jobs created in the same
     * millisecond. The new index covers everything the old one did. */
    "DROP INDEX jobs_account_created;"
    "CREATE INDEX jobs_account_page ON jobs(account_id, created_ms, id);"
    "CREATE INDEX jobs_account_state_page"
    "  ON jobs(account_id, state, created_ms, id);"
    "PRAGMA user_version = 2;",

    /* 3: upstream providers. The adapter's handle of a submitted task
     * (NULL: never submitted; "-": a submit may be under way), so that a
     * restart resumes polling instead of submitting again. */
    "ALTER TABLE jobs ADD COLUMN upstream_task TEXT;"
    "PRAGMA user_version = 3;",

    /* 4: the scheduler loads each provider's queued jobs, oldest first;
     * only queued rows are in the index. */
    "CREATE INDEX jobs_queued_provider ON jobs(provider, created_ms)"
    "  WHERE state = 'queued';"
    "PRAGMA user_version = 4;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

sqlite_store *sqlite_store_of(vg_store *store)
{
    return (sqlite_store *)store;
}

/* Fills err from the connection's last error. Call it before anything
 * else touches the connection (a ROLLBACK replaces the message). */
int sqlite_fail(sqlite_store *s, vg_error *err, const char *what)
{
    return vg_error_set(err, 500, "store_error", NULL, "%s: %s", what,
                        sqlite3_errmsg(s->db));
}

/* Copies a text column into a fixed-size field, always NUL-terminated. */
void sqlite_copy_text(sqlite3_stmt *stmt, int col, char *buf, size_t cap)
{
    vg_store_copy_text((const char *)sqlite3_column_text(stmt, col),
                       (size_t)sqlite3_column_bytes(stmt, col), buf, cap);
}

int sqlite_bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
    return sqlite3_bind_text(stmt, i, s != NULL ? s : "", -1, SQLITE_STATIC);
}

int sqlite_bind_field(sqlite3_stmt *stmt, int i, const char *buf, size_t cap)
{
    return sqlite3_bind_text(stmt, i, buf, (int)strnlen(buf, cap),
                             SQLITE_STATIC);
}

/* Returns a ready statement for sql, from the cache when it was prepared
 * before. Callers hand it back with sqlite_release(), never
 * sqlite3_finalize. */
sqlite3_stmt *sqlite_prepare(sqlite_store *s, const char *sql, vg_error *err)
{
    for (int i = 0; i < s->n_cached; i++)
        if (strcmp(sqlite3_sql(s->cache[i]), sql) == 0)
            return s->cache[i];
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                           NULL) != SQLITE_OK) {
        sqlite_fail(s, err, "preparing a statement");
        sqlite3_finalize(stmt);
        return NULL;
    }
    if (s->n_cached < STMT_CACHE)
        s->cache[s->n_cached++] = stmt;
    return stmt;
}

/* Resets a statement from sqlite_prepare() for its next use (or finalizes
 * one the full cache could not keep), ending its read of the database. */
void sqlite_release(sqlite_store *s, sqlite3_stmt *stmt)
{
    for (int i = 0; i < s->n_cached; i++) {
        if (s->cache[i] == stmt) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return;
        }
    }
    sqlite3_finalize(stmt);
}

/* Steps a statement that returns no rows and finalizes it. */
int sqlite_run(sqlite_store *s, sqlite3_stmt *stmt, int bind_rc,
               const char *what, vg_error *err)
{
    int rc = VG_STORE_OK;
    if (bind_rc != SQLITE_OK)
        rc = sqlite_fail(s, err, what);
    else if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = sqlite_fail(s, err, what);
    sqlite_release(s, stmt);
    return rc;
}

/* Runs one statement without parameters through the statement cache: the
 * group commit runs BEGIN, SAVEPOINT, RELEASE and COMMIT for every batch,
 * and parsing them each time would cost about as much as running them. */
int sqlite_run_sql(sqlite_store *s, const char *sql, const char *what,
                   vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    return sqlite_run(s, stmt, SQLITE_OK, what, err);
}

static int exec(sqlite_store *s, const char *sql, const char *what,
                vg_error *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(s, err, what);
    return VG_STORE_OK;
}

static int begin(sqlite_store *s, vg_error *err)
{
    return exec(s, "BEGIN IMMEDIATE", "starting a transaction", err);
}

void sqlite_rollback(sqlite_store *s)
{
    /* Some errors (SQLITE_FULL, SQLITE_IOERR...) already rolled back. */
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Ends the transaction begin() opened: commits when rc says the body
 * succeeded, rolls back otherwise, and returns the final outcome. */
static int finish(sqlite_store *s, int rc, vg_error *err)
{
    if (rc == VG_STORE_OK) {
        rc = exec(s, "COMMIT", "committing", err);
        if (rc != VG_STORE_OK)
            sqlite_rollback(s);
        return rc;
    }
    sqlite_rollback(s);
    return rc;
}

/* ---- settings ---------------------------------------------------------- */

int sqlite_copy_setting(sqlite3_stmt *stmt, const char *key, char *out,
                        size_t n, vg_error *err)
{
    const char *text = (const char *)sqlite3_column_text(stmt, 0);
    size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
    /* A truncated secret would silently differ from the stored one. */
    if (text == NULL || len >= n) {
        vg_error_set(err, 500, "store_error", NULL,
                     "setting %s (%zu bytes) does not fit in %zu bytes", key,
                     len, n);
        return VG_STORE_ERROR;
    }
    memcpy(out, text, len + 1);
    return VG_STORE_OK;
}

static int read_setting(sqlite_store *s, const char *key, char *out, size_t n,
                        vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s, "SELECT value FROM settings WHERE key = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, key);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        rc = sqlite_copy_setting(stmt, key, out, n, err);
    else if (step == SQLITE_DONE)
        rc = vg_store_not_found(err, "setting", key);
    else
        rc = sqlite_fail(s, err, "reading a setting");
    sqlite_release(s, stmt);
    return rc;
}

static int op_get_setting(vg_store *store, const char *key, char *out,
                          size_t n, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = read_setting(s, key, out, n, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

typedef struct setting_once {
    const char *key, *value;
    char *out;
    size_t n;
} setting_once;

static int set_setting_once_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    setting_once *c = arg;
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "INSERT OR IGNORE INTO settings (key, value) "
                       "VALUES (?1, ?2)",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, c->key);
    b |= sqlite_bind_text(stmt, 2, c->value);
    int rc = sqlite_run(s, stmt, b, "storing a setting", err);
    /* Settings are never deleted, and the write lock is held, so the read
     * sees the value that won, ours or another process's. */
    if (rc == VG_STORE_OK)
        rc = read_setting(s, c->key, c->out, c->n, err);
    return rc;
}

static int op_set_setting_once(vg_store *store, const char *key,
                               const char *value, char *out, size_t n,
                               vg_error *err)
{
    setting_once c = {key, value, out, n};
    return sqlite_write_tx(sqlite_store_of(store), set_setting_once_in_tx, &c,
                           err);
}

/* ---- opening and closing ----------------------------------------------- */

static void op_close(vg_store *store)
{
    sqlite_store *s = sqlite_store_of(store);
    if (s->writer_running) {
        pthread_mutex_lock(&s->queue_lock);
        s->closing = true;
        pthread_cond_signal(&s->work);
        pthread_cond_signal(&s->gathered);
        pthread_mutex_unlock(&s->queue_lock);
        pthread_join(s->writer, NULL);
    }
    for (int i = 0; i < s->n_cached; i++)
        sqlite3_finalize(s->cache[i]);
    if (s->epoch != NULL)
        munmap(s->epoch, sizeof(uint64_t));
    sqlite3_close(s->db);
    pthread_cond_destroy(&s->gathered);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->queue_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int read_user_version(sqlite_store *s, int *version, vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(s, "PRAGMA user_version", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    else
        rc = sqlite_fail(s, err, "reading the schema version");
    sqlite_release(s, stmt);
    return rc;
}

static int migrate_in_tx(sqlite_store *s, vg_error *err)
{
    int version = 0;
    int rc = read_user_version(s, &version, err);
    if (rc != VG_STORE_OK)
        return rc;
    if (version > SCHEMA_VERSION)
        return vg_error_set(err, 500, "store_error", NULL,
                            "the database has schema version %d; this "
                            "vidgate knows versions up to %d",
                            version, SCHEMA_VERSION);
    for (int v = version; v < SCHEMA_VERSION && rc == VG_STORE_OK; v++)
        rc = exec(s, migrations[v], "migrating the schema", err);
    return rc;
}

/* Brings the schema up to date. The version is read inside BEGIN
 * IMMEDIATE, so of two processes opening a new file together one
 * migrates and the other then finds the work done. */
static int migrate(sqlite_store *s, vg_error *err)
{
    int rc = begin(s, err);
    if (rc == VG_STORE_OK)
        rc = finish(s, migrate_in_tx(s, err), err);
    return rc;
}

static int use_wal(sqlite_store *s, const char *path, vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(s, "PRAGMA journal_mode = WAL", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(stmt, 0);
        /* An in-memory database (tests of other layers) cannot use WAL;
         * a file that cannot (some network filesystems) still works, with
         * readers and writers blocking each other. */
        if (mode != NULL && strcmp(mode, "wal") != 0 &&
            strcmp(path, ":memory:") != 0)
            vg_log_warn("store %s: journal mode is %s, not wal", path, mode);
    } else {
        rc = sqlite_fail(s, err, "setting the journal mode");
    }
    sqlite_release(s, stmt);
    return rc;
}

/* The operations named sqlite_op_ live in the other files of the backend
 * (see sqlite_internal.h). */
static const vg_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = op_close,
    .get_setting = op_get_setting,
    .set_setting_once = op_set_setting_once,
    .count_accounts = sqlite_op_count_accounts,
    .create_account = sqlite_op_create_account,
    .get_account = sqlite_op_get_account,
    .grant_credits = sqlite_op_grant_credits,
    .create_key = sqlite_op_create_key,
    .find_key_by_hash = sqlite_op_find_key_by_hash,
    .get_key = sqlite_op_get_key,
    .revoke_key = sqlite_op_revoke_key,
    .keys_epoch = sqlite_op_keys_epoch,
    .list_keys = sqlite_op_list_keys,
    .set_key_limits = sqlite_op_set_key_limits,
    .create_job = sqlite_op_create_job,
    .create_job_async = sqlite_op_create_job_async,
    .get_job = sqlite_op_get_job,
    .list_jobs = sqlite_op_list_jobs,
    .start_job = sqlite_op_start_job,
    .start_job_async = sqlite_op_start_job_async,
    .list_queued_jobs = sqlite_op_list_queued_jobs,
    .succeed_job_async = sqlite_op_succeed_job_async,
    .requeue_job = sqlite_op_requeue_job,
    .set_upstream = sqlite_op_set_upstream,
    .set_upstream_async = sqlite_op_set_upstream_async,
    .set_progress = sqlite_op_set_progress,
    .succeed_job = sqlite_op_succeed_job,
    .end_job = sqlite_op_end_job,
    .list_unfinished_jobs = sqlite_op_list_unfinished_jobs,
    .get_webhook_secret = sqlite_op_get_webhook_secret,
    .rotate_webhook_secret = sqlite_op_rotate_webhook_secret,
    .claim_deliveries = sqlite_op_claim_deliveries,
    .finish_delivery = sqlite_op_finish_delivery,
    .next_delivery_ms = sqlite_op_next_delivery_ms,
    .list_deliveries = sqlite_op_list_deliveries,
    .ledger_rows = sqlite_op_ledger_rows,
};

vg_store *vg_store_open_sqlite(const char *path, vg_error *err)
{
    vg_error ignored;
    if (err == NULL)
        err = &ignored;
    sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        vg_error_set(err, 500, "store_error", NULL, "out of memory opening %s",
                     path);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    /* The database holds the token-signing and link secrets: it is
     * created readable by its owner only (SQLite gives its -wal and -shm
     * files the same mode), whatever the umask. */
    if (strcmp(path, ":memory:") != 0) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        vg_error_set(err, 500, "store_error", NULL, "opening %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->queue_lock, NULL);
    /* The linger is a timed wait, which must not jump with the clock. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->gathered, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&s->work, NULL);
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* synchronous=FULL: a power cut cannot forget a refund or a charge
     * the caller was told had happened; the group commit shares each
     * fsync between the writes of a batch. temp_store=MEMORY keeps the
     * journal of each write's savepoint in memory: on disk, SQLite spills
     * it to a temporary file past 64 KiB, and every write then paid for
     * file system calls that protect nothing durable. */
    int rc = use_wal(s, path, err);
    if (rc == VG_STORE_OK)
        rc = exec(s,
                  "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                  " PRAGMA temp_store = MEMORY",
                  "configuring the connection", err);
    if (rc == VG_STORE_OK)
        rc = migrate(s, err);
    snprintf(s->epoch_path, sizeof(s->epoch_path), "%s-keys", path);
    if (rc == VG_STORE_OK)
        rc = sqlite_map_keys_epoch(s, err);
    if (rc == VG_STORE_OK) {
        if (pthread_create(&s->writer, NULL, sqlite_writer_main, s) == 0)
            s->writer_running = true;
        else
            rc = vg_error_set(err, 500, "store_error", NULL,
                              "cannot start the writer thread");
    }
    if (rc != VG_STORE_OK) {
        char message[sizeof(err->message)];
        snprintf(message, sizeof(message), "%s", err->message);
        vg_error_set(err, 500, "store_error", NULL, "opening %s: %s", path,
                     message);
        op_close(&s->base);
        return NULL;
    }
    return &s->base;
}
