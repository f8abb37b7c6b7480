/*
 * store_sqlite.c - the SQLite backend of store.h: one database file holds
 * settings, accounts, API keys, the credit ledger and jobs.
 *
 * One connection per vg_store, guarded by a mutex: every operation takes
 * the mutex for its whole duration, because a transaction of several
 * statements on one connection must not interleave with another thread's
 * statements. Other processes (the CLI subcommands next to a running
 * server) open the same file; WAL lets their reads run beside our writes,
 * and writers queue on busy_timeout. Every transaction that writes starts
 * with BEGIN IMMEDIATE, so it takes the write lock before it reads what it
 * decides on: a deferred transaction that upgrades from read to write can
 * fail with SQLITE_BUSY at once, without waiting, when another process
 * wrote in between.
 *
 * Money lives in two records that ledger_rows compares: the balance column
 * of accounts, and the append-only ledger journal together with the
 * reservation state of each job. Every operation that moves money updates
 * both in one transaction. Job state changes are conditional UPDATEs on
 * the current state, so of several threads or processes finishing the
 * same job exactly one changes a row and moves money.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/crypto.h"
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
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Every column of a vg_job, in the order read_job expects. */
#define JOB_COLUMNS                                                           \
    "id, account_id, key_id, state, model, provider, request_json, price, "   \
    "seed, width, height, progress, video_key, prompt_tokens, "               \
    "completion_tokens, error_code, error_message, created_ms, started_ms, "  \
    "finished_ms"

/* Prepared statements are kept and reused: parsing SQL costs more than
 * running a point lookup, and authentication does one per request. */
#define STMT_CACHE 64

typedef struct sqlite_store {
    vg_store base;
    sqlite3 *db;
    pthread_mutex_t lock;
    sqlite3_stmt *cache[STMT_CACHE];
    int n_cached;
    /* A counter in a small file beside the database, mapped shared by
     * every process that opens it and bumped after each revocation, so
     * reading the keys epoch costs no system call at all. */
    char epoch_path[PATH_MAX + 16];
    uint64_t *epoch;
} sqlite_store;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sqlite_store *store_of(vg_store *store)
{
    return (sqlite_store *)store;
}

/* Fills err from the connection's last error. Call it before anything
 * else touches the connection (a ROLLBACK replaces the message). */
static int fail(sqlite_store *s, vg_error *err, const char *what)
{
    return vg_error_set(err, 500, "store_error", NULL, "%s: %s", what,
                        sqlite3_errmsg(s->db));
}

static int fail_invalid(vg_error *err, const char *field, const char *why)
{
    vg_error_set(err, 400, "validation_error", field, "%s", why);
    return VG_STORE_ERROR;
}

static int not_found(vg_error *err, const char *what, const char *id)
{
    vg_error_set(err, 404, "not_found", NULL, "no %s with id %s", what, id);
    return VG_STORE_NOT_FOUND;
}

/* Longest prefix of s, at most max bytes, that does not cut a UTF-8
 * sequence: a fixed-size field cut mid-character would no longer be valid
 * UTF-8, and the JSON layer refuses such strings. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Copies a text column into a fixed-size field, always NUL-terminated. */
static void copy_text(sqlite3_stmt *stmt, int col, char *buf, size_t cap)
{
    const char *text = (const char *)sqlite3_column_text(stmt, col);
    size_t len = (size_t)sqlite3_column_bytes(stmt, col);
    if (text == NULL)
        len = 0;
    len = utf8_prefix(text, len, cap - 1);
    if (len > 0)
        memcpy(buf, text, len);
    buf[len] = '\0';
}

/* Binds a fixed-size field without reading past it even when a caller left
 * it unterminated. The values outlive the statement, so SQLITE_STATIC. */
static int bind_field(sqlite3_stmt *stmt, int i, const char *buf, size_t cap)
{
    return sqlite3_bind_text(stmt, i, buf, (int)strnlen(buf, cap),
                             SQLITE_STATIC);
}

#define BIND_FIELD(stmt, i, field) bind_field(stmt, i, field, sizeof(field))

static int bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
    return sqlite3_bind_text(stmt, i, s != NULL ? s : "", -1, SQLITE_STATIC);
}

static void format_credits(int64_t millicredits, char *buf, size_t n)
{
    uint64_t abs =
        millicredits < 0 ? 0 - (uint64_t)millicredits : (uint64_t)millicredits;
    snprintf(buf, n, "%s%llu.%03llu", millicredits < 0 ? "-" : "",
             (unsigned long long)(abs / 1000),
             (unsigned long long)(abs % 1000));
}

/* Returns a ready statement for sql, from the cache when it was prepared
 * before. Callers hand it back with release(), never sqlite3_finalize. */
static sqlite3_stmt *prepare(sqlite_store *s, const char *sql, vg_error *err)
{
    for (int i = 0; i < s->n_cached; i++)
        if (strcmp(sqlite3_sql(s->cache[i]), sql) == 0)
            return s->cache[i];
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                           NULL) != SQLITE_OK) {
        fail(s, err, "preparing a statement");
        sqlite3_finalize(stmt);
        return NULL;
    }
    if (s->n_cached < STMT_CACHE)
        s->cache[s->n_cached++] = stmt;
    return stmt;
}

/* Resets a statement from prepare() for its next use (or finalizes one
 * the full cache could not keep), ending its read of the database. */
static void release(sqlite_store *s, sqlite3_stmt *stmt)
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
static int run(sqlite_store *s, sqlite3_stmt *stmt, int bind_rc,
               const char *what, vg_error *err)
{
    int rc = VG_STORE_OK;
    if (bind_rc != SQLITE_OK)
        rc = fail(s, err, what);
    else if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = fail(s, err, what);
    release(s, stmt);
    return rc;
}

static int exec(sqlite_store *s, const char *sql, const char *what,
                vg_error *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, err, what);
    return VG_STORE_OK;
}

static int begin(sqlite_store *s, vg_error *err)
{
    return exec(s, "BEGIN IMMEDIATE", "starting a transaction", err);
}

static void rollback(sqlite_store *s)
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
            rollback(s);
        return rc;
    }
    rollback(s);
    return rc;
}

/* Appends one row to the ledger journal. */
static int append_ledger(sqlite_store *s, const char *account_id,
                         const char *kind, int64_t amount, const char *job_id,
                         const char *note, int64_t at_ms, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT INTO ledger (account_id, kind, "
                                 "amount, job_id, note, created_ms) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, account_id);
    b |= bind_text(stmt, 2, kind);
    b |= sqlite3_bind_int64(stmt, 3, amount);
    if (job_id != NULL)
        b |= bind_text(stmt, 4, job_id);
    else
        b |= sqlite3_bind_null(stmt, 4);
    b |= bind_text(stmt, 5, note);
    b |= sqlite3_bind_int64(stmt, 6, at_ms);
    return run(s, stmt, b, "writing the ledger", err);
}

/* A growable array for the list operations, which gather rows first and
 * call back only after releasing the connection, so a callback may call
 * the store again without deadlocking on the mutex. */
typedef struct row_buffer {
    void *items;
    size_t count, cap, size;
} row_buffer;

static void *row_buffer_add(row_buffer *rows)
{
    if (rows->count == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        void *items = realloc(rows->items, cap * rows->size);
        if (items == NULL)
            return NULL;
        rows->items = items;
        rows->cap = cap;
    }
    void *item = (char *)rows->items + rows->count * rows->size;
    memset(item, 0, rows->size);
    rows->count++;
    return item;
}

/* ---- settings ---------------------------------------------------------- */

static int copy_setting(sqlite3_stmt *stmt, const char *key, char *out,
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
        prepare(s, "SELECT value FROM settings WHERE key = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = bind_text(stmt, 1, key);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        rc = copy_setting(stmt, key, out, n, err);
    else if (step == SQLITE_DONE)
        rc = not_found(err, "setting", key);
    else
        rc = fail(s, err, "reading a setting");
    release(s, stmt);
    return rc;
}

static int op_get_setting(vg_store *store, const char *key, char *out,
                          size_t n, vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = read_setting(s, key, out, n, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_set_setting_once(vg_store *store, const char *key,
                               const char *value, char *out, size_t n,
                               vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    /* Settings are never deleted, so once the insert is committed (by
     * this process or a racing one) the read sees the value that won. */
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT OR IGNORE INTO settings (key, value) "
                                 "VALUES (?1, ?2)",
                                 err);
    if (stmt != NULL) {
        int b = bind_text(stmt, 1, key);
        b |= bind_text(stmt, 2, value);
        rc = run(s, stmt, b, "storing a setting", err);
    }
    if (rc == VG_STORE_OK)
        rc = read_setting(s, key, out, n, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- accounts ---------------------------------------------------------- */

static void read_account(sqlite3_stmt *stmt, int col, vg_account *out)
{
    copy_text(stmt, col, out->id, sizeof(out->id));
    copy_text(stmt, col + 1, out->name, sizeof(out->name));
    out->balance = sqlite3_column_int64(stmt, col + 2);
    out->created_ms = sqlite3_column_int64(stmt, col + 3);
    out->updated_ms = sqlite3_column_int64(stmt, col + 4);
}

static int op_count_accounts(vg_store *store, int64_t *count, vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = prepare(s, "SELECT COUNT(*) FROM accounts", err);
    if (stmt != NULL) {
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            *count = sqlite3_column_int64(stmt, 0);
            rc = VG_STORE_OK;
        } else {
            rc = fail(s, err, "counting accounts");
        }
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int check_name(const char *name, size_t cap, vg_error *err)
{
    if (name == NULL || name[0] == '\0')
        return fail_invalid(err, "name", "a name is required");
    if (strlen(name) >= cap) {
        vg_error_set(err, 400, "validation_error", "name",
                     "name is longer than %zu bytes", cap - 1);
        return VG_STORE_ERROR;
    }
    return VG_STORE_OK;
}

static int insert_account(sqlite_store *s, const vg_account *a, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT INTO accounts (id, name, balance, "
                                 "created_ms, updated_ms) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, a->id);
    b |= bind_text(stmt, 2, a->name);
    b |= sqlite3_bind_int64(stmt, 3, a->balance);
    b |= sqlite3_bind_int64(stmt, 4, a->created_ms);
    b |= sqlite3_bind_int64(stmt, 5, a->updated_ms);
    return run(s, stmt, b, "creating an account", err);
}

static int op_create_account(vg_store *store, const char *name,
                             int64_t credits, vg_account *out, vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (check_name(name, sizeof(out->name), err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    if (credits < 0)
        return fail_invalid(err, "credits", "credits must not be negative");

    vg_account a;
    memset(&a, 0, sizeof(a));
    vg_uuid_v4(a.id);
    snprintf(a.name, sizeof(a.name), "%s", name);
    a.balance = credits;
    a.created_ms = a.updated_ms = now_ms();

    pthread_mutex_lock(&s->lock);
    int rc = begin(s, err);
    if (rc == VG_STORE_OK) {
        rc = insert_account(s, &a, err);
        /* A zero grant would only add noise to the journal. */
        if (rc == VG_STORE_OK && credits > 0)
            rc = append_ledger(s, a.id, "grant", credits, NULL,
                               "initial grant", a.created_ms, err);
        rc = finish(s, rc, err);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == VG_STORE_OK && out != NULL)
        *out = a;
    return rc;
}

static int select_account(sqlite_store *s, const char *id, vg_account *out,
                          vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT id, name, balance, created_ms, "
                                 "updated_ms FROM accounts WHERE id = ?1",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        read_account(stmt, 0, out);
        rc = VG_STORE_OK;
    } else if (step == SQLITE_DONE) {
        rc = not_found(err, "account", id);
    } else {
        rc = fail(s, err, "reading an account");
    }
    release(s, stmt);
    return rc;
}

static int op_get_account(vg_store *store, const char *id, vg_account *out,
                          vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = select_account(s, id, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Adds (or, with a negative delta, takes) credits from an account's
 * balance column; the caller journals the movement. */
static int move_balance(sqlite_store *s, const char *account_id, int64_t delta,
                        int64_t at_ms, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s,
                                 "UPDATE accounts SET balance = balance + ?1,"
                                 " updated_ms = ?2 WHERE id = ?3",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite3_bind_int64(stmt, 1, delta);
    b |= sqlite3_bind_int64(stmt, 2, at_ms);
    b |= bind_text(stmt, 3, account_id);
    return run(s, stmt, b, "updating a balance", err);
}

static int grant_in_tx(sqlite_store *s, const char *account_id, int64_t amount,
                       const char *note, vg_error *err)
{
    vg_account a;
    int rc = select_account(s, account_id, &a, err);
    if (rc != VG_STORE_OK)
        return rc;
    /* SQLite turns an overflowing integer sum into a float; refuse it
     * here rather than store a balance that is no longer exact. */
    if (amount > INT64_MAX - a.balance)
        return fail_invalid(err, "amount",
                            "the grant would overflow the balance");
    int64_t at = now_ms();
    rc = move_balance(s, account_id, amount, at, err);
    if (rc == VG_STORE_OK)
        rc =
            append_ledger(s, account_id, "grant", amount, NULL, note, at, err);
    return rc;
}

static int op_grant_credits(vg_store *store, const char *account_id,
                            int64_t amount, const char *note, vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (amount <= 0)
        return fail_invalid(err, "amount", "a grant must be positive");
    pthread_mutex_lock(&s->lock);
    int rc = begin(s, err);
    if (rc == VG_STORE_OK)
        rc = finish(s, grant_in_tx(s, account_id, amount, note, err), err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- API keys ---------------------------------------------------------- */

#define KEY_COLUMNS                                                           \
    "k.id, k.account_id, k.name, k.prefix, k.created_ms, "                    \
    "k.revoked_ms IS NOT NULL"

static void read_key(sqlite3_stmt *stmt, vg_api_key *out)
{
    copy_text(stmt, 0, out->id, sizeof(out->id));
    copy_text(stmt, 1, out->account_id, sizeof(out->account_id));
    copy_text(stmt, 2, out->name, sizeof(out->name));
    copy_text(stmt, 3, out->prefix, sizeof(out->prefix));
    out->created_ms = sqlite3_column_int64(stmt, 4);
    out->revoked = sqlite3_column_int(stmt, 5) != 0;
}

static int op_create_key(vg_store *store, const char *account_id,
                         const char *name, const char *key_hash,
                         const char *prefix, vg_api_key *out, vg_error *err)
{
    sqlite_store *s = store_of(store);
    vg_api_key k;
    memset(&k, 0, sizeof(k));
    if (check_name(name, sizeof(k.name), err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    if (key_hash == NULL || key_hash[0] == '\0')
        return fail_invalid(err, "key_hash", "a key hash is required");
    if (prefix == NULL || strlen(prefix) >= sizeof(k.prefix))
        return fail_invalid(err, "prefix", "the key prefix is too long");
    if (account_id == NULL || strlen(account_id) >= sizeof(k.account_id))
        return not_found(err, "account", account_id ? account_id : "");

    vg_uuid_v4(k.id);
    snprintf(k.account_id, sizeof(k.account_id), "%s", account_id);
    snprintf(k.name, sizeof(k.name), "%s", name);
    snprintf(k.prefix, sizeof(k.prefix), "%s", prefix);
    k.created_ms = now_ms();

    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT INTO api_keys (id, account_id, name,"
                                 " key_hash, prefix, created_ms) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 err);
    if (stmt != NULL) {
        int step = bind_text(stmt, 1, k.id);
        step |= bind_text(stmt, 2, k.account_id);
        step |= bind_text(stmt, 3, k.name);
        step |= bind_text(stmt, 4, key_hash);
        step |= bind_text(stmt, 5, k.prefix);
        step |= sqlite3_bind_int64(stmt, 6, k.created_ms);
        if (step == SQLITE_OK)
            step = sqlite3_step(stmt);
        /* The constraints decide atomically what a check-then-insert
         * could only approximate. */
        int ext = sqlite3_extended_errcode(s->db);
        if (step == SQLITE_DONE) {
            rc = VG_STORE_OK;
        } else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) {
            rc = not_found(err, "account", account_id);
        } else if (ext == SQLITE_CONSTRAINT_UNIQUE) {
            vg_error_set(err, 409, "conflict", NULL,
                         "an API key with this hash already exists");
            rc = VG_STORE_CONFLICT;
        } else {
            rc = fail(s, err, "creating an API key");
        }
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == VG_STORE_OK && out != NULL)
        *out = k;
    return rc;
}

/* Reads the one key a "WHERE ... = ?1" query selects. */
static int select_key(sqlite_store *s, const char *sql, const char *value,
                      const char *what, vg_api_key *out, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = bind_text(stmt, 1, value);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        read_key(stmt, out);
        rc = VG_STORE_OK;
    } else if (step == SQLITE_DONE) {
        vg_error_set(err, 404, "not_found", NULL, "no such API key%s%s",
                     what ? " " : "", what ? what : "");
        rc = VG_STORE_NOT_FOUND;
    } else {
        rc = fail(s, err, "reading an API key");
    }
    release(s, stmt);
    return rc;
}

static int op_find_key_by_hash(vg_store *store, const char *key_hash,
                               vg_api_key *out, vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    /* The message names no hash: it may end up in a log line. */
    int rc = select_key(
        s, "SELECT " KEY_COLUMNS " FROM api_keys k WHERE k.key_hash = ?1",
        key_hash, NULL, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_get_key(vg_store *store, const char *id, vg_api_key *out,
                      vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = select_key(s,
                        "SELECT " KEY_COLUMNS " FROM api_keys k"
                        " WHERE k.id = ?1",
                        id, id, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int map_keys_epoch(sqlite_store *s, vg_error *err)
{
    int fd = open(s->epoch_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    int ok = fd >= 0 && fstat(fd, &st) == 0 &&
             (st.st_size >= (off_t)sizeof(uint64_t) ||
              ftruncate(fd, sizeof(uint64_t)) == 0);
    void *map = ok ? mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE,
                          MAP_SHARED, fd, 0)
                   : MAP_FAILED;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (map == MAP_FAILED)
        return vg_error_set(err, 500, "store_error", NULL, "cannot map %s: %s",
                            s->epoch_path, strerror(saved));
    s->epoch = map;
    return VG_STORE_OK;
}

static int op_revoke_key(vg_store *store, const char *id, vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    /* Revoking twice keeps the first time and is not an error: the key
     * is revoked either way. */
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = prepare(s,
                                 "UPDATE api_keys SET revoked_ms ="
                                 " COALESCE(revoked_ms, ?2) WHERE id = ?1",
                                 err);
    if (stmt != NULL) {
        int b = bind_text(stmt, 1, id);
        b |= sqlite3_bind_int64(stmt, 2, now_ms());
        rc = run(s, stmt, b, "revoking an API key", err);
    }
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = not_found(err, "API key", id);
    if (rc == VG_STORE_OK)
        __atomic_add_fetch(s->epoch, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_keys_epoch(vg_store *store, uint64_t *epoch, vg_error *err)
{
    (void)err;
    *epoch = __atomic_load_n(store_of(store)->epoch, __ATOMIC_SEQ_CST);
    return VG_STORE_OK;
}

typedef struct key_row {
    vg_api_key key;
    vg_account account;
} key_row;

static int op_list_keys(vg_store *store,
                        int (*each)(void *ctx, const vg_api_key *key,
                                    const vg_account *account),
                        void *ctx, vg_error *err)
{
    sqlite_store *s = store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(key_row)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT " KEY_COLUMNS ", a.id, a.name,"
                                 " a.balance, a.created_ms, a.updated_ms"
                                 " FROM api_keys k"
                                 " JOIN accounts a ON a.id = k.account_id"
                                 " ORDER BY k.created_ms, k.rowid",
                                 err);
    if (stmt != NULL) {
        int step;
        rc = VG_STORE_OK;
        for (;;) {
            step = sqlite3_step(stmt);
            if (step != SQLITE_ROW)
                break;
            key_row *row = row_buffer_add(&rows);
            if (row == NULL) {
                rc = vg_error_set(err, 500, "store_error", NULL,
                                  "out of memory listing keys");
                break;
            }
            read_key(stmt, &row->key);
            read_account(stmt, 6, &row->account);
        }
        if (rc == VG_STORE_OK && step != SQLITE_DONE)
            rc = fail(s, err, "listing API keys");
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);

    const key_row *all = rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows.count; i++)
        rc = each(ctx, &all[i].key, &all[i].account);
    free(rows.items);
    return rc;
}

/* ---- jobs -------------------------------------------------------------- */

static bool parse_state(const char *name, vg_job_state *out)
{
    static const vg_job_state states[] = {VG_JOB_QUEUED, VG_JOB_RUNNING,
                                          VG_JOB_SUCCEEDED, VG_JOB_FAILED,
                                          VG_JOB_CANCELLED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(name, vg_job_state_name(states[i])) == 0) {
            *out = states[i];
            return true;
        }
    }
    return false;
}

/* Fills *out from a row of JOB_COLUMNS; the only allocation is
 * request_json, which vg_job_clear frees. */
static int read_job(sqlite3_stmt *stmt, vg_job *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    copy_text(stmt, 0, out->id, sizeof(out->id));
    copy_text(stmt, 1, out->account_id, sizeof(out->account_id));
    copy_text(stmt, 2, out->key_id, sizeof(out->key_id));
    const char *state = (const char *)sqlite3_column_text(stmt, 3);
    if (state == NULL || !parse_state(state, &out->state))
        return vg_error_set(err, 500, "store_error", NULL,
                            "job %s has an unknown state", out->id);
    copy_text(stmt, 4, out->model, sizeof(out->model));
    copy_text(stmt, 5, out->provider, sizeof(out->provider));
    const char *json = (const char *)sqlite3_column_text(stmt, 6);
    out->request_json = strdup(json != NULL ? json : "");
    if (out->request_json == NULL)
        return vg_error_set(err, 500, "store_error", NULL,
                            "out of memory reading job %s", out->id);
    out->price = sqlite3_column_int64(stmt, 7);
    out->seed = sqlite3_column_int64(stmt, 8);
    out->width = sqlite3_column_int(stmt, 9);
    out->height = sqlite3_column_int(stmt, 10);
    out->progress = sqlite3_column_int(stmt, 11);
    copy_text(stmt, 12, out->video_key, sizeof(out->video_key));
    out->prompt_tokens = sqlite3_column_int64(stmt, 13);
    out->completion_tokens = sqlite3_column_int64(stmt, 14);
    copy_text(stmt, 15, out->error_code, sizeof(out->error_code));
    copy_text(stmt, 16, out->error_message, sizeof(out->error_message));
    out->created_ms = sqlite3_column_int64(stmt, 17);
    /* NULL (not started, not finished) reads as 0, as in vg_job. */
    out->started_ms = sqlite3_column_int64(stmt, 18);
    out->finished_ms = sqlite3_column_int64(stmt, 19);
    return VG_STORE_OK;
}

/* Explains why a conditional UPDATE of a job changed nothing. */
static int job_not_changed(sqlite_store *s, const char *id, const char *verb,
                           vg_error *err)
{
    sqlite3_stmt *stmt =
        prepare(s, "SELECT state FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        vg_error_set(err, 409, "conflict", NULL, "cannot %s job %s: it is %s",
                     verb, id, (const char *)sqlite3_column_text(stmt, 0));
        rc = VG_STORE_CONFLICT;
    } else if (step == SQLITE_DONE) {
        rc = not_found(err, "job", id);
    } else {
        rc = fail(s, err, "reading a job");
    }
    release(s, stmt);
    return rc;
}

static int job_exists(sqlite_store *s, const char *id, bool *exists,
                      vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s, "SELECT 1 FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    int step = bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW || step == SQLITE_DONE)
        *exists = step == SQLITE_ROW;
    else
        rc = fail(s, err, "reading a job");
    release(s, stmt);
    return rc;
}

static int insert_job(sqlite_store *s, const vg_job *job, int64_t created,
                      vg_error *err)
{
    sqlite3_stmt *stmt = prepare(
        s,
        "INSERT INTO jobs (id, account_id, key_id, state, reservation,"
        " model, provider, request_json, price, seed, width, height,"
        " progress, video_key, prompt_tokens, completion_tokens,"
        " error_code, error_message, created_ms)"
        " VALUES (?1, ?2, ?3, 'queued', 'open', ?4, ?5, ?6, ?7, ?8, ?9,"
        " ?10, 0, '', 0, 0, '', '', ?11)",
        err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = BIND_FIELD(stmt, 1, job->id);
    b |= BIND_FIELD(stmt, 2, job->account_id);
    b |= BIND_FIELD(stmt, 3, job->key_id);
    b |= BIND_FIELD(stmt, 4, job->model);
    b |= BIND_FIELD(stmt, 5, job->provider);
    b |= bind_text(stmt, 6, job->request_json);
    b |= sqlite3_bind_int64(stmt, 7, job->price);
    b |= sqlite3_bind_int64(stmt, 8, job->seed);
    b |= sqlite3_bind_int(stmt, 9, job->width);
    b |= sqlite3_bind_int(stmt, 10, job->height);
    b |= sqlite3_bind_int64(stmt, 11, created);
    return run(s, stmt, b, "creating a job", err);
}

static int create_job_in_tx(sqlite_store *s, const vg_job *job, vg_error *err)
{
    bool exists = false;
    int rc = job_exists(s, job->id, &exists, err);
    if (rc != VG_STORE_OK)
        return rc;
    if (exists) {
        vg_error_set(err, 409, "conflict", NULL, "job %s already exists",
                     job->id);
        return VG_STORE_CONFLICT;
    }
    vg_account a;
    rc = select_account(s, job->account_id, &a, err);
    if (rc != VG_STORE_OK)
        return rc;
    /* The write lock taken by BEGIN IMMEDIATE is held from this read to
     * the commit, so no other writer can spend the same credits. */
    if (a.balance < job->price) {
        char balance[32], price[32];
        format_credits(a.balance, balance, sizeof(balance));
        format_credits(job->price, price, sizeof(price));
        vg_error_set(err, 402, "insufficient_credits", NULL,
                     "the job costs %s credits and the account has %s", price,
                     balance);
        return VG_STORE_INSUFFICIENT;
    }
    int64_t created = job->created_ms > 0 ? job->created_ms : now_ms();
    rc = move_balance(s, a.id, -job->price, created, err);
    if (rc == VG_STORE_OK)
        rc = insert_job(s, job, created, err);
    if (rc == VG_STORE_OK)
        rc = append_ledger(s, a.id, "reserve", job->price, job->id, "",
                           created, err);
    return rc;
}

static int op_create_job(vg_store *store, const vg_job *job, vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (job->id[0] == '\0' ||
        strnlen(job->id, sizeof(job->id)) == sizeof(job->id))
        return fail_invalid(err, "id", "a job needs an id");
    if (job->price < 0)
        return fail_invalid(err, "price", "a price must not be negative");
    pthread_mutex_lock(&s->lock);
    int rc = begin(s, err);
    if (rc == VG_STORE_OK)
        rc = finish(s, create_job_in_tx(s, job, err), err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_get_job(vg_store *store, const char *id, vg_job *out,
                      vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt =
        prepare(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", err);
    if (stmt != NULL) {
        int step = bind_text(stmt, 1, id);
        if (step == SQLITE_OK)
            step = sqlite3_step(stmt);
        if (step == SQLITE_ROW) {
            rc = read_job(stmt, out, err);
            if (rc != VG_STORE_OK)
                vg_job_clear(out);
        } else if (step == SQLITE_DONE) {
            rc = not_found(err, "job", id);
        } else {
            rc = fail(s, err, "reading a job");
        }
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Runs a conditional single-statement job update whose ?1 is the job id;
 * when it changed nothing, says whether the job is missing or in another
 * state. bind binds the other parameters. */
static int update_job(sqlite_store *s, const char *sql, const char *id,
                      const char *verb, int (*bind)(sqlite3_stmt *, void *),
                      void *ctx, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, id);
    b |= bind(stmt, ctx);
    int rc = run(s, stmt, b, "updating a job", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = job_not_changed(s, id, verb, err);
    return rc;
}

static int bind_int64_2(sqlite3_stmt *stmt, void *ctx)
{
    return sqlite3_bind_int64(stmt, 2, *(const int64_t *)ctx);
}

static int op_start_job(vg_store *store, const char *id, int64_t now,
                        vg_error *err)
{
    sqlite_store *s = store_of(store);
    int64_t at = now > 0 ? now : now_ms();
    pthread_mutex_lock(&s->lock);
    int rc = update_job(s,
                        "UPDATE jobs SET state = 'running', started_ms = ?2"
                        " WHERE id = ?1 AND state = 'queued'",
                        id, "start", bind_int64_2, &at, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_set_progress(vg_store *store, const char *id, int progress,
                           vg_error *err)
{
    sqlite_store *s = store_of(store);
    /* Progress is advisory (an upstream's estimate), so out-of-range
     * values are clamped rather than refused. */
    int64_t p = progress < 0 ? 0 : progress > 100 ? 100 : progress;
    pthread_mutex_lock(&s->lock);
    /* A job that already ended keeps its final progress; CONFLICT tells a
     * worker still reporting that the job was cancelled under it. */
    int rc = update_job(s,
                        "UPDATE jobs SET progress = ?2"
                        " WHERE id = ?1 AND state IN ('queued', 'running')",
                        id, "update the progress of", bind_int64_2, &p, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Reads who pays for a job and how much, inside a transaction. */
static int job_charge(sqlite_store *s, const char *id, char account_id[37],
                      int64_t *price, vg_error *err)
{
    sqlite3_stmt *stmt =
        prepare(s, "SELECT account_id, price FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    int step = bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        copy_text(stmt, 0, account_id, 37);
        *price = sqlite3_column_int64(stmt, 1);
    } else if (step == SQLITE_DONE) {
        rc = not_found(err, "job", id);
    } else {
        rc = fail(s, err, "reading a job");
    }
    release(s, stmt);
    return rc;
}

static int bind_success(sqlite3_stmt *stmt, void *ctx)
{
    const vg_job *job = ctx;
    int b = BIND_FIELD(stmt, 2, job->video_key);
    b |= sqlite3_bind_int64(stmt, 3, job->seed);
    b |= sqlite3_bind_int(stmt, 4, job->width);
    b |= sqlite3_bind_int(stmt, 5, job->height);
    b |= sqlite3_bind_int64(stmt, 6, job->prompt_tokens);
    b |= sqlite3_bind_int64(stmt, 7, job->completion_tokens);
    b |= sqlite3_bind_int64(stmt, 8, job->finished_ms);
    return b;
}

static int succeed_job_in_tx(sqlite_store *s, const vg_job *job, vg_error *err)
{
    /* The state condition is the whole guard against charging twice:
     * of two racing finishers only one UPDATE matches the row. */
    int rc = update_job(s,
                        "UPDATE jobs SET state = 'succeeded',"
                        " reservation = 'settled', progress = 100,"
                        " video_key = ?2, seed = ?3, width = ?4,"
                        " height = ?5, prompt_tokens = ?6,"
                        " completion_tokens = ?7, finished_ms = ?8"
                        " WHERE id = ?1 AND state IN ('queued', 'running')"
                        " AND reservation = 'open'",
                        job->id, "complete", bind_success, (void *)job, err);
    char account_id[37];
    int64_t price = 0;
    if (rc == VG_STORE_OK)
        rc = job_charge(s, job->id, account_id, &price, err);
    /* The reservation already took the credits from the balance; settling
     * only records that they are spent for good. */
    if (rc == VG_STORE_OK)
        rc = append_ledger(s, account_id, "settle", price, job->id, "",
                           job->finished_ms, err);
    return rc;
}

static int op_succeed_job(vg_store *store, const vg_job *job, vg_error *err)
{
    sqlite_store *s = store_of(store);
    vg_job done = *job;
    /* Keep request_json out of the copy: it is not ours to touch. */
    done.request_json = NULL;
    if (done.finished_ms <= 0)
        done.finished_ms = now_ms();
    pthread_mutex_lock(&s->lock);
    int rc = begin(s, err);
    if (rc == VG_STORE_OK)
        rc = finish(s, succeed_job_in_tx(s, &done, err), err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

typedef struct job_end {
    const char *state, *code, *message;
    int64_t at;
} job_end;

static int bind_end(sqlite3_stmt *stmt, void *ctx)
{
    const job_end *end = ctx;
    int b = bind_text(stmt, 2, end->state);
    b |= bind_text(stmt, 3, end->code);
    b |= bind_text(stmt, 4, end->message);
    b |= sqlite3_bind_int64(stmt, 5, end->at);
    return b;
}

static int end_job_in_tx(sqlite_store *s, const char *id, const job_end *end,
                         vg_error *err)
{
    /* As in succeed_job, the state condition makes the refund happen
     * once however many threads or processes end the job. */
    int rc = update_job(s,
                        "UPDATE jobs SET state = ?2,"
                        " reservation = 'refunded', error_code = ?3,"
                        " error_message = ?4, finished_ms = ?5"
                        " WHERE id = ?1 AND state IN ('queued', 'running')"
                        " AND reservation = 'open'",
                        id, "end", bind_end, (void *)end, err);
    char account_id[37];
    int64_t price = 0;
    if (rc == VG_STORE_OK)
        rc = job_charge(s, id, account_id, &price, err);
    if (rc == VG_STORE_OK)
        rc = move_balance(s, account_id, price, end->at, err);
    if (rc == VG_STORE_OK)
        rc = append_ledger(s, account_id, "refund", price, id, end->state,
                           end->at, err);
    return rc;
}

static int op_end_job(vg_store *store, const char *id, vg_job_state state,
                      const char *code, const char *message, int64_t now,
                      vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (state != VG_JOB_FAILED && state != VG_JOB_CANCELLED)
        return vg_error_set(err, 500, "store_error", NULL,
                            "end_job takes failed or cancelled, not %s",
                            vg_job_state_name(state));
    job_end end = {vg_job_state_name(state), code, message,
                   now > 0 ? now : now_ms()};
    pthread_mutex_lock(&s->lock);
    int rc = begin(s, err);
    if (rc == VG_STORE_OK)
        rc = finish(s, end_job_in_tx(s, id, &end, err), err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void free_jobs(row_buffer *rows)
{
    vg_job *jobs = rows->items;
    for (size_t i = 0; i < rows->count; i++)
        vg_job_clear(&jobs[i]);
    free(rows->items);
}

static int op_list_unfinished_jobs(vg_store *store,
                                   int (*each)(void *ctx, const vg_job *job),
                                   void *ctx, vg_error *err)
{
    sqlite_store *s = store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_job)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT " JOB_COLUMNS " FROM jobs"
                                 " WHERE state IN ('queued', 'running')"
                                 " ORDER BY created_ms, rowid",
                                 err);
    if (stmt != NULL) {
        int step;
        rc = VG_STORE_OK;
        for (;;) {
            step = sqlite3_step(stmt);
            if (step != SQLITE_ROW)
                break;
            vg_job *job = row_buffer_add(&rows);
            if (job == NULL) {
                rc = vg_error_set(err, 500, "store_error", NULL,
                                  "out of memory listing jobs");
                break;
            }
            rc = read_job(stmt, job, err);
            if (rc != VG_STORE_OK)
                break;
        }
        if (rc == VG_STORE_OK && step != SQLITE_DONE)
            rc = fail(s, err, "listing jobs");
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);

    const vg_job *jobs = rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows.count; i++)
        rc = each(ctx, &jobs[i]);
    free_jobs(&rows);
    return rc;
}

/* ---- ledger ------------------------------------------------------------ */

static int op_ledger_rows(vg_store *store,
                          int (*each)(void *ctx, const vg_ledger_row *row),
                          void *ctx, vg_error *err)
{
    sqlite_store *s = store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_ledger_row)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    /* One statement reads one snapshot, so the sums and the balance agree
     * unless the records themselves disagree. The sums never read the
     * balance column: grants come from the journal, charges and holds
     * from the jobs' reservation state. */
    sqlite3_stmt *stmt =
        prepare(s,
                "SELECT a.id, a.name, a.balance,"
                " (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l"
                "   WHERE l.account_id = a.id AND l.kind = 'grant'),"
                " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
                "   WHERE j.account_id = a.id AND j.reservation = 'settled'),"
                " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
                "   WHERE j.account_id = a.id AND j.reservation = 'open')"
                " FROM accounts a ORDER BY a.created_ms, a.rowid",
                err);
    if (stmt != NULL) {
        int step;
        rc = VG_STORE_OK;
        for (;;) {
            step = sqlite3_step(stmt);
            if (step != SQLITE_ROW)
                break;
            vg_ledger_row *row = row_buffer_add(&rows);
            if (row == NULL) {
                rc = vg_error_set(err, 500, "store_error", NULL,
                                  "out of memory reading the ledger");
                break;
            }
            copy_text(stmt, 0, row->account_id, sizeof(row->account_id));
            copy_text(stmt, 1, row->name, sizeof(row->name));
            row->balance = sqlite3_column_int64(stmt, 2);
            row->grants = sqlite3_column_int64(stmt, 3);
            row->settled = sqlite3_column_int64(stmt, 4);
            row->open_reservations = sqlite3_column_int64(stmt, 5);
        }
        if (rc == VG_STORE_OK && step != SQLITE_DONE)
            rc = fail(s, err, "reading the ledger");
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);

    const vg_ledger_row *all = rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows.count; i++)
        rc = each(ctx, &all[i]);
    free(rows.items);
    return rc;
}

/* ---- opening and closing ----------------------------------------------- */

static void op_close(vg_store *store)
{
    sqlite_store *s = store_of(store);
    for (int i = 0; i < s->n_cached; i++)
        sqlite3_finalize(s->cache[i]);
    if (s->epoch != NULL)
        munmap(s->epoch, sizeof(uint64_t));
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int read_user_version(sqlite_store *s, int *version, vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s, "PRAGMA user_version", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    else
        rc = fail(s, err, "reading the schema version");
    release(s, stmt);
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
    sqlite3_stmt *stmt = prepare(s, "PRAGMA journal_mode = WAL", err);
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
        rc = fail(s, err, "setting the journal mode");
    }
    release(s, stmt);
    return rc;
}

static const vg_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = op_close,
    .get_setting = op_get_setting,
    .set_setting_once = op_set_setting_once,
    .count_accounts = op_count_accounts,
    .create_account = op_create_account,
    .get_account = op_get_account,
    .grant_credits = op_grant_credits,
    .create_key = op_create_key,
    .find_key_by_hash = op_find_key_by_hash,
    .get_key = op_get_key,
    .revoke_key = op_revoke_key,
    .keys_epoch = op_keys_epoch,
    .list_keys = op_list_keys,
    .create_job = op_create_job,
    .get_job = op_get_job,
    .start_job = op_start_job,
    .set_progress = op_set_progress,
    .succeed_job = op_succeed_job,
    .end_job = op_end_job,
    .list_unfinished_jobs = op_list_unfinished_jobs,
    .ledger_rows = op_ledger_rows,
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
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* synchronous=FULL: a job costs seconds to minutes of generation, so
     * a few fsyncs per job are free, and with them a power cut cannot
     * forget a refund or a charge the caller was told had happened. */
    int rc = use_wal(s, path, err);
    if (rc == VG_STORE_OK)
        rc = exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                  "configuring the connection", err);
    if (rc == VG_STORE_OK)
        rc = migrate(s, err);
    snprintf(s->epoch_path, sizeof(s->epoch_path), "%s-keys", path);
    if (rc == VG_STORE_OK)
        rc = map_keys_epoch(s, err);
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
