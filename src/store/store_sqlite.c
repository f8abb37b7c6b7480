/*
 * store_sqlite.c - the SQLite backend of store.h: one database file holds
 * settings, accounts, API keys, the credit ledger, jobs, idempotency keys
 * and webhook deliveries.
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
 * Writes go through a group commit (write_tx). With synchronous=FULL every
 * COMMIT waits for an fsync, which costs more than all the statements of a
 * job creation together, so one transaction per write would cap the
 * server at a few thousand writes a second however many threads it has.
 * Instead, writes are queued for one writer thread, which runs whatever
 * is queued as a batch inside one BEGIN IMMEDIATE ... COMMIT: one fsync
 * for the whole batch. Each operation runs inside its own SAVEPOINT, so
 * one that is refused (insufficient credits, a conflict) rolls back only
 * itself, and each caller gets its result only once the COMMIT has
 * succeeded: nothing is acknowledged before it is durable. Callers either
 * block until then (write_tx) or are called back (create_job_async, so
 * an HTTP thread can serve other requests while its submit waits). The
 * writer holds the connection mutex for the whole batch, so reads never
 * see rows of a transaction that may still fail.
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

/* The most operations one group commit runs in one transaction. Enough
 * that a burst shares few fsyncs; bounded so that the first caller of a
 * long queue does not wait for all of it, and so that readers get the
 * connection between batches. */
#define BATCH_MAX 256

/* How long a new leader of the group commit may wait for writers to join
 * its batch, and how recent the previous batch must be for it to bother
 * (see gather_batch). Both are small next to an fsync. */
#define LINGER_NS 100000
#define BURST_NS 1000000

/* Limits of the values the schema holds for the API. */
#define IDEMPOTENCY_KEY_MAX 255
#define LIST_LIMIT_MAX 1000
#define CLAIM_LIMIT_MAX 1000

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
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Every column of a vg_job, in the order read_job expects. */
#define JOB_COLUMNS                                                           \
    "id, account_id, key_id, state, model, provider, request_json, price, "   \
    "seed, width, height, progress, video_key, prompt_tokens, "               \
    "completion_tokens, error_code, error_message, created_ms, started_ms, "  \
    "finished_ms, webhook_url, flex, attempts"

/* Every column of a vg_delivery, in the order read_delivery expects. */
#define DELIVERY_COLUMNS                                                      \
    "id, job_id, account_id, url, state, attempts, last_status, "             \
    "last_error, created_ms, next_attempt_ms, updated_ms"

/* Prepared statements are kept and reused: parsing SQL costs more than
 * running a point lookup, and authentication does one per request. */
#define STMT_CACHE 128

typedef struct sqlite_store sqlite_store;

/* A write waiting for the group commit (see write_tx). A blocking
 * caller keeps it on its stack and sleeps on wake until the writer marks
 * it done; an asynchronous one (write_async) allocates it and is called
 * back through finished, after which the writer frees it. */
typedef struct write_op {
    int (*body)(sqlite_store *s, void *ctx, vg_error *err);
    void *ctx;
    vg_error *err;
    int rc;
    bool done;
    pthread_cond_t wake;
    void (*finished)(struct write_op *op); /* NULL: a blocking caller */
    struct write_op *next;
} write_op;

struct sqlite_store {
    vg_store base;
    sqlite3 *db;
    /* The connection: held by a read for its duration and by the leader
     * of the group commit for a whole batch. */
    pthread_mutex_t lock;
    sqlite3_stmt *cache[STMT_CACHE];
    int n_cached;
    /* The group commit's queue, under its own small mutex so writes can
     * join it while a batch holds the connection, and the writer thread
     * that drains it. */
    pthread_mutex_t queue_lock;
    pthread_cond_t work; /* a write was queued, or closing */
    write_op *queue_head, *queue_tail;
    int queued;
    bool closing;
    bool writer_running;
    pthread_t writer;
    /* What gather_batch goes by: the size and end of the last batch, and
     * how many queued writes a lingering leader waits for. */
    int last_batch;
    int64_t last_batch_end_ns;
    int linger_for; /* 0: no leader is lingering */
    pthread_cond_t gathered;
    /* A counter in a small file beside the database, mapped shared by
     * every process that opens it and bumped after each revocation, so
     * reading the keys epoch costs no system call at all. */
    char epoch_path[PATH_MAX + 16];
    uint64_t *epoch;
};

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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

static int out_of_memory(vg_error *err, const char *doing)
{
    return vg_error_set(err, 500, "store_error", NULL, "out of memory %s",
                        doing);
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

/* Binds s, or NULL for a missing or empty string. */
static int bind_optional_text(sqlite3_stmt *stmt, int i, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return sqlite3_bind_null(stmt, i);
    return sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
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

/* Runs one statement without parameters through the statement cache: the
 * group commit runs BEGIN, SAVEPOINT, RELEASE and COMMIT for every batch,
 * and parsing them each time would cost about as much as running them. */
static int run_sql(sqlite_store *s, const char *sql, const char *what,
                   vg_error *err)
{
    sqlite3_stmt *stmt = prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    return run(s, stmt, SQLITE_OK, what, err);
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

/* ---- group commit ------------------------------------------------------ */

/* Runs one batch of queued writes in one transaction, with the connection
 * mutex held. Sets every op's rc; when the transaction as a whole fails
 * (BEGIN, a savepoint or COMMIT fails, or an error rolled everything
 * back), every op of the batch reports that error, including those whose
 * own body had succeeded: none of their writes survived. */
static void run_batch(sqlite_store *s, write_op *batch)
{
    vg_error cause;
    memset(&cause, 0, sizeof(cause));
    bool broken = run_sql(s, "BEGIN IMMEDIATE", "starting a transaction",
                          &cause) != VG_STORE_OK;
    for (write_op *op = batch; op != NULL && !broken; op = op->next) {
        if (run_sql(s, "SAVEPOINT vg_write", "starting a savepoint", &cause) !=
            VG_STORE_OK) {
            broken = true;
            break;
        }
        op->rc = op->body(s, op->ctx, op->err);
        /* Some errors (SQLITE_FULL, SQLITE_IOERR...) roll back the whole
         * transaction, and with it the operations before this one. */
        if (sqlite3_get_autocommit(s->db)) {
            vg_error_set(&cause, 500, "store_error", NULL,
                         "the transaction was rolled back: %s",
                         op->err != NULL ? op->err->message : "an error");
            broken = true;
            break;
        }
        /* A refused operation undoes whatever it wrote before it found
         * out; ROLLBACK TO keeps the savepoint open, so it is released
         * too. */
        if (op->rc != VG_STORE_OK &&
            run_sql(s, "ROLLBACK TO vg_write", "rolling back a savepoint",
                    &cause) != VG_STORE_OK)
            broken = true;
        else if (run_sql(s, "RELEASE vg_write", "releasing a savepoint",
                         &cause) != VG_STORE_OK)
            broken = true;
    }
    if (!broken && run_sql(s, "COMMIT", "committing", &cause) != VG_STORE_OK)
        broken = true;
    if (!broken)
        return;
    rollback(s);
    for (write_op *op = batch; op != NULL; op = op->next)
        op->rc = vg_error_set(op->err, 500, "store_error", NULL, "%s",
                              cause.message);
}

/*
 * Called by the writer, with queue_lock, before it takes a batch: waits a
 * little for the batch to fill when writes are likely on their way.
 *
 * Threads that write in a loop (a pool of request handlers under load)
 * come back with their next write a few microseconds after the batch that
 * carried their last one has woken them. The first one back would be
 * committed alone, costing everyone behind it a whole extra fsync; on two
 * cores, the batches of eight threads came out as 1, 7, 1, 7... So when
 * the last batch was shared and ended moments ago, the writer waits until
 * as many writes are queued as that batch had, or LINGER_NS has passed,
 * whichever comes first. A write after a quiet spell never waits.
 */
static void gather_batch(sqlite_store *s)
{
    int want = s->last_batch;
    if (want <= 1 || s->queued >= want ||
        monotonic_ns() - s->last_batch_end_ns > BURST_NS)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += LINGER_NS;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    s->linger_for = want;
    while (s->queued < want && !s->closing)
        if (pthread_cond_timedwait(&s->gathered, &s->queue_lock, &until) != 0)
            break;
    s->linger_for = 0;
}

/* Detaches the first BATCH_MAX ops of the queue. Call with queue_lock. */
static write_op *take_batch(sqlite_store *s)
{
    write_op *batch = s->queue_head;
    write_op *last = batch;
    int n = 1;
    for (; n < BATCH_MAX && last->next != NULL; n++)
        last = last->next;
    s->queued -= n;
    s->last_batch = n;
    s->queue_head = last->next;
    if (s->queue_head == NULL)
        s->queue_tail = NULL;
    last->next = NULL;
    return batch;
}

/*
 * The writer thread: the group commit. It takes the queued writes in
 * batches (after gather_batch has given writes on their way a moment to
 * join) and runs each batch in one transaction (run_batch), so the
 * busier the store, the more writes share one fsync. Then it tells each
 * write's caller: a blocking caller is woken, an asynchronous one called
 * back. It drains the queue before it returns at close.
 *
 * Each body runs on this thread, with the connection mutex held and
 * inside a savepoint: it must not call back into the store's ops, and
 * what it hands back through ctx must stay untouched by the caller until
 * the write is done.
 */
static void *writer_main(void *arg)
{
    sqlite_store *s = arg;
    pthread_mutex_lock(&s->queue_lock);
    for (;;) {
        if (s->queue_head == NULL) {
            if (s->closing)
                break;
            pthread_cond_wait(&s->work, &s->queue_lock);
            continue;
        }
        gather_batch(s);
        write_op *batch = take_batch(s);
        pthread_mutex_unlock(&s->queue_lock);
        pthread_mutex_lock(&s->lock);
        run_batch(s, batch);
        pthread_mutex_unlock(&s->lock);
        /* Callbacks first, without the queue lock (they may take locks of
         * their own); a blocking caller may return, and its op vanish
         * from its stack, as soon as it sees done, so next is read
         * before. */
        write_op *blocking = NULL;
        while (batch != NULL) {
            write_op *next = batch->next;
            if (batch->finished != NULL) {
                batch->done = true;
                batch->finished(batch);
            } else {
                batch->next = blocking;
                blocking = batch;
            }
            batch = next;
        }
        pthread_mutex_lock(&s->queue_lock);
        s->last_batch_end_ns = monotonic_ns();
        while (blocking != NULL) {
            write_op *next = blocking->next;
            blocking->done = true;
            pthread_cond_signal(&blocking->wake);
            blocking = next;
        }
    }
    pthread_mutex_unlock(&s->queue_lock);
    return NULL;
}

static void enqueue_write(sqlite_store *s, write_op *op)
{
    pthread_mutex_lock(&s->queue_lock);
    if (s->queue_tail != NULL)
        s->queue_tail->next = op;
    else
        s->queue_head = op;
    s->queue_tail = op;
    s->queued++;
    if (s->linger_for > 0 && s->queued >= s->linger_for)
        pthread_cond_signal(&s->gathered);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->queue_lock);
}

/* Runs body(s, ctx, err) inside a write transaction of the writer thread
 * and returns its result once that transaction is committed. */
static int write_tx(sqlite_store *s,
                    int (*body)(sqlite_store *s, void *ctx, vg_error *err),
                    void *ctx, vg_error *err)
{
    write_op op;
    memset(&op, 0, sizeof(op));
    op.body = body;
    op.ctx = ctx;
    op.err = err;
    pthread_cond_init(&op.wake, NULL);
    enqueue_write(s, &op);
    pthread_mutex_lock(&s->queue_lock);
    while (!op.done)
        pthread_cond_wait(&op.wake, &s->queue_lock);
    pthread_mutex_unlock(&s->queue_lock);
    pthread_cond_destroy(&op.wake);
    return op.rc;
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

typedef struct setting_once {
    const char *key, *value;
    char *out;
    size_t n;
} setting_once;

static int set_setting_once_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    setting_once *c = arg;
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT OR IGNORE INTO settings (key, value) "
                                 "VALUES (?1, ?2)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, c->key);
    b |= bind_text(stmt, 2, c->value);
    int rc = run(s, stmt, b, "storing a setting", err);
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
    return write_tx(store_of(store), set_setting_once_in_tx, &c, err);
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

static int create_account_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const vg_account *a = arg;
    int rc = insert_account(s, a, err);
    /* A zero grant would only add noise to the journal. */
    if (rc == VG_STORE_OK && a->balance > 0)
        rc = append_ledger(s, a->id, "grant", a->balance, NULL,
                           "initial grant", a->created_ms, err);
    return rc;
}

static int op_create_account(vg_store *store, const char *name,
                             int64_t credits, vg_account *out, vg_error *err)
{
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

    int rc = write_tx(store_of(store), create_account_in_tx, &a, err);
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

typedef struct grant {
    const char *account_id;
    int64_t amount;
    const char *note;
} grant;

static int grant_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const grant *g = arg;
    vg_account a;
    int rc = select_account(s, g->account_id, &a, err);
    if (rc != VG_STORE_OK)
        return rc;
    /* SQLite turns an overflowing integer sum into a float; refuse it
     * here rather than store a balance that is no longer exact. */
    if (g->amount > INT64_MAX - a.balance)
        return fail_invalid(err, "amount",
                            "the grant would overflow the balance");
    int64_t at = now_ms();
    rc = move_balance(s, g->account_id, g->amount, at, err);
    if (rc == VG_STORE_OK)
        rc = append_ledger(s, g->account_id, "grant", g->amount, NULL, g->note,
                           at, err);
    return rc;
}

static int op_grant_credits(vg_store *store, const char *account_id,
                            int64_t amount, const char *note, vg_error *err)
{
    if (amount <= 0)
        return fail_invalid(err, "amount", "a grant must be positive");
    grant g = {account_id, amount, note};
    return write_tx(store_of(store), grant_in_tx, &g, err);
}

/* ---- API keys ---------------------------------------------------------- */

#define KEY_COLUMNS                                                           \
    "k.id, k.account_id, k.name, k.prefix, k.created_ms, "                    \
    "k.revoked_ms IS NOT NULL, k.rpm_limit, k.jobs_limit"

/* How many columns read_key reads, for queries that select more. */
#define KEY_COLUMN_COUNT 8

static void read_key(sqlite3_stmt *stmt, vg_api_key *out)
{
    copy_text(stmt, 0, out->id, sizeof(out->id));
    copy_text(stmt, 1, out->account_id, sizeof(out->account_id));
    copy_text(stmt, 2, out->name, sizeof(out->name));
    copy_text(stmt, 3, out->prefix, sizeof(out->prefix));
    out->created_ms = sqlite3_column_int64(stmt, 4);
    out->revoked = sqlite3_column_int(stmt, 5) != 0;
    out->rpm_limit = sqlite3_column_int(stmt, 6);
    out->jobs_limit = sqlite3_column_int(stmt, 7);
}

typedef struct key_create {
    const vg_api_key *key;
    const char *key_hash;
} key_create;

static int create_key_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_create *c = arg;
    const vg_api_key *k = c->key;
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT INTO api_keys (id, account_id, name,"
                                 " key_hash, prefix, created_ms) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = bind_text(stmt, 1, k->id);
    step |= bind_text(stmt, 2, k->account_id);
    step |= bind_text(stmt, 3, k->name);
    step |= bind_text(stmt, 4, c->key_hash);
    step |= bind_text(stmt, 5, k->prefix);
    step |= sqlite3_bind_int64(stmt, 6, k->created_ms);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    /* The constraints decide atomically what a check-then-insert could
     * only approximate. */
    int ext = sqlite3_extended_errcode(s->db);
    if (step == SQLITE_DONE) {
        rc = VG_STORE_OK;
    } else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = not_found(err, "account", k->account_id);
    } else if (ext == SQLITE_CONSTRAINT_UNIQUE) {
        vg_error_set(err, 409, "conflict", NULL,
                     "an API key with this hash already exists");
        rc = VG_STORE_CONFLICT;
    } else {
        rc = fail(s, err, "creating an API key");
    }
    release(s, stmt);
    return rc;
}

static int op_create_key(vg_store *store, const char *account_id,
                         const char *name, const char *key_hash,
                         const char *prefix, vg_api_key *out, vg_error *err)
{
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
    k.rpm_limit = -1;
    k.jobs_limit = -1;

    key_create c = {&k, key_hash};
    int rc = write_tx(store_of(store), create_key_in_tx, &c, err);
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

/* Tells every process's key cache that a key changed. Call it after the
 * change is committed, so that a cache reloading at once sees it. */
static void bump_keys_epoch(sqlite_store *s)
{
    __atomic_add_fetch(s->epoch, 1, __ATOMIC_SEQ_CST);
}

typedef struct key_revoke {
    const char *id;
    int64_t at;
} key_revoke;

static int revoke_key_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_revoke *r = arg;
    /* Revoking twice keeps the first time and is not an error: the key
     * is revoked either way. */
    sqlite3_stmt *stmt = prepare(s,
                                 "UPDATE api_keys SET revoked_ms ="
                                 " COALESCE(revoked_ms, ?2) WHERE id = ?1",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, r->id);
    b |= sqlite3_bind_int64(stmt, 2, r->at);
    int rc = run(s, stmt, b, "revoking an API key", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = not_found(err, "API key", r->id);
    return rc;
}

static int op_revoke_key(vg_store *store, const char *id, vg_error *err)
{
    sqlite_store *s = store_of(store);
    key_revoke r = {id, now_ms()};
    int rc = write_tx(s, revoke_key_in_tx, &r, err);
    if (rc == VG_STORE_OK)
        bump_keys_epoch(s);
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
                rc = out_of_memory(err, "listing keys");
                break;
            }
            read_key(stmt, &row->key);
            read_account(stmt, KEY_COLUMN_COUNT, &row->account);
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

typedef struct key_limits {
    const char *id;
    int rpm_limit, jobs_limit;
} key_limits;

static int set_key_limits_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_limits *l = arg;
    sqlite3_stmt *stmt = prepare(s,
                                 "UPDATE api_keys SET rpm_limit = ?2,"
                                 " jobs_limit = ?3 WHERE id = ?1",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, l->id);
    b |= sqlite3_bind_int(stmt, 2, l->rpm_limit);
    b |= sqlite3_bind_int(stmt, 3, l->jobs_limit);
    int rc = run(s, stmt, b, "setting the limits of an API key", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = not_found(err, "API key", l->id);
    return rc;
}

static int op_set_key_limits(vg_store *store, const char *id, int rpm_limit,
                             int jobs_limit, vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (rpm_limit < -1)
        return fail_invalid(err, "rpm_limit",
                            "rpm_limit is -1 (the default), 0 (unlimited) "
                            "or a positive number");
    if (jobs_limit < -1)
        return fail_invalid(err, "jobs_limit",
                            "jobs_limit is -1 (the default), 0 (unlimited) "
                            "or a positive number");
    key_limits l = {id, rpm_limit, jobs_limit};
    int rc = write_tx(s, set_key_limits_in_tx, &l, err);
    /* Callers cache keys, limits included, until the epoch moves. */
    if (rc == VG_STORE_OK)
        bump_keys_epoch(s);
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

/* Fills *out from a row of JOB_COLUMNS; the only allocations are
 * request_json and webhook_url, which vg_job_clear frees. */
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
    const char *url = (const char *)sqlite3_column_text(stmt, 20);
    if (url != NULL) {
        out->webhook_url = strdup(url);
        if (out->webhook_url == NULL)
            return vg_error_set(err, 500, "store_error", NULL,
                                "out of memory reading job %s", out->id);
    }
    out->flex = sqlite3_column_int(stmt, 21) != 0;
    out->attempts = sqlite3_column_int(stmt, 22);
    return VG_STORE_OK;
}

/* Reads one job by id; on success the caller owns what *out points to. */
static int select_job(sqlite_store *s, const char *id, vg_job *out,
                      vg_error *err)
{
    sqlite3_stmt *stmt =
        prepare(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
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
    return rc;
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
        " error_code, error_message, created_ms, webhook_url, flex,"
        " attempts)"
        " VALUES (?1, ?2, ?3, 'queued', 'open', ?4, ?5, ?6, ?7, ?8, ?9,"
        " ?10, 0, '', 0, 0, '', '', ?11, ?12, ?13, 0)",
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
    /* "No webhook" is one value, NULL, however the caller spelled it. */
    b |= bind_optional_text(stmt, 12, job->webhook_url);
    b |= sqlite3_bind_int(stmt, 13, job->flex ? 1 : 0);
    return run(s, stmt, b, "creating a job", err);
}

/* What create_job_in_tx needs beyond the job, and what it hands back. */
typedef struct job_create {
    const vg_job *job;
    const vg_job_create *opts;
    bool want_existing;
    vg_job existing; /* filled when the body returns EXISTS */
} job_create;

/* Looks up the job's idempotency key. OK means the key is free (never
 * used, or expired and now forgotten); EXISTS and CONFLICT are the
 * outcomes create_job reports as they are. */
static int check_idempotency(sqlite_store *s, job_create *c, int64_t now,
                             vg_error *err)
{
    const vg_job_create *opts = c->opts;
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT request_hash, job_id, expires_ms"
                                 " FROM idempotency_keys"
                                 " WHERE account_id = ?1 AND key = ?2",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int step = BIND_FIELD(stmt, 1, c->job->account_id);
    step |= bind_text(stmt, 2, opts->idempotency_key);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        int rc = step == SQLITE_DONE
                     ? VG_STORE_OK
                     : fail(s, err, "reading an idempotency key");
        release(s, stmt);
        return rc;
    }
    const char *hash = (const char *)sqlite3_column_text(stmt, 0);
    bool same = hash != NULL && strcmp(hash, opts->request_hash) == 0;
    char job_id[37];
    copy_text(stmt, 1, job_id, sizeof(job_id));
    bool expired = sqlite3_column_int64(stmt, 2) <= now;
    release(s, stmt);

    if (expired) {
        stmt = prepare(s,
                       "DELETE FROM idempotency_keys"
                       " WHERE account_id = ?1 AND key = ?2",
                       err);
        if (stmt == NULL)
            return VG_STORE_ERROR;
        int b = BIND_FIELD(stmt, 1, c->job->account_id);
        b |= bind_text(stmt, 2, opts->idempotency_key);
        return run(s, stmt, b, "forgetting an idempotency key", err);
    }
    if (!same) {
        vg_error_set(err, 409, "idempotency_conflict", NULL,
                     "the idempotency key was already used for another "
                     "request (job %s)",
                     job_id);
        return VG_STORE_CONFLICT;
    }
    if (c->want_existing) {
        int rc = select_job(s, job_id, &c->existing, err);
        /* The foreign key makes this impossible; a NOT_FOUND here would
         * read as "no such account". */
        if (rc == VG_STORE_NOT_FOUND)
            return vg_error_set(err, 500, "store_error", NULL,
                                "idempotency key names missing job %s",
                                job_id);
        if (rc != VG_STORE_OK)
            return rc;
    }
    return VG_STORE_EXISTS;
}

static int remember_idempotency(sqlite_store *s, const job_create *c,
                                int64_t now, vg_error *err)
{
    const vg_job_create *opts = c->opts;
    /* A ttl of zero or less keeps the key for good; a sum past INT64_MAX
     * means the same. */
    int64_t expires = INT64_MAX;
    if (opts->idempotency_ttl_ms > 0 &&
        opts->idempotency_ttl_ms < INT64_MAX - now)
        expires = now + opts->idempotency_ttl_ms;
    sqlite3_stmt *stmt = prepare(s,
                                 "INSERT INTO idempotency_keys (account_id,"
                                 " key, request_hash, job_id, created_ms,"
                                 " expires_ms)"
                                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = BIND_FIELD(stmt, 1, c->job->account_id);
    b |= bind_text(stmt, 2, opts->idempotency_key);
    b |= bind_text(stmt, 3, opts->request_hash);
    b |= BIND_FIELD(stmt, 4, c->job->id);
    b |= sqlite3_bind_int64(stmt, 5, now);
    b |= sqlite3_bind_int64(stmt, 6, expires);
    return run(s, stmt, b, "storing an idempotency key", err);
}

/* LIMIT when the job's key already has max queued or running jobs. */
static int check_unfinished_limit(sqlite_store *s, const vg_job *job, int max,
                                  vg_error *err)
{
    /* Counting stops at the limit: a key far over it (its limit lowered
     * since) costs no more than one at it. */
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT COUNT(*) FROM (SELECT 1 FROM jobs"
                                 " WHERE key_id = ?1"
                                 " AND state IN ('queued', 'running')"
                                 " LIMIT ?2)",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    int step = BIND_FIELD(stmt, 1, job->key_id);
    step |= sqlite3_bind_int(stmt, 2, max);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step != SQLITE_ROW)
        rc = fail(s, err, "counting unfinished jobs");
    else if (sqlite3_column_int(stmt, 0) >= max)
        rc = VG_STORE_LIMIT;
    release(s, stmt);
    if (rc == VG_STORE_LIMIT)
        vg_error_set(err, 429, "too_many_jobs", NULL,
                     "the API key already has %d unfinished jobs, its "
                     "limit; wait for one to finish",
                     max);
    return rc;
}

static int create_job_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    job_create *c = arg;
    const vg_job *job = c->job;
    const vg_job_create *opts = c->opts;
    int64_t created = job->created_ms > 0 ? job->created_ms : now_ms();
    bool keyed = opts != NULL && opts->idempotency_key != NULL;

    /* A replay is answered before anything else is checked: the limit or
     * the balance may have changed since, but the job exists. */
    int rc = VG_STORE_OK;
    if (keyed)
        rc = check_idempotency(s, c, created, err);
    if (rc != VG_STORE_OK)
        return rc;

    bool exists = false;
    rc = job_exists(s, job->id, &exists, err);
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
    if (opts != NULL && opts->max_unfinished > 0)
        rc = check_unfinished_limit(s, job, opts->max_unfinished, err);
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
    rc = move_balance(s, a.id, -job->price, created, err);
    if (rc == VG_STORE_OK)
        rc = insert_job(s, job, created, err);
    if (rc == VG_STORE_OK)
        rc = append_ledger(s, a.id, "reserve", job->price, job->id, "",
                           created, err);
    if (rc == VG_STORE_OK && keyed)
        rc = remember_idempotency(s, c, created, err);
    return rc;
}

static int check_create(const vg_job *job, const vg_job_create *opts,
                        vg_error *err)
{
    if (job->id[0] == '\0' ||
        strnlen(job->id, sizeof(job->id)) == sizeof(job->id))
        return fail_invalid(err, "id", "a job needs an id");
    if (job->price < 0)
        return fail_invalid(err, "price", "a price must not be negative");
    /* A delivery carries the URL in a fixed field; one that does not fit
     * would be cut into another URL. */
    if (job->webhook_url != NULL &&
        strlen(job->webhook_url) >= sizeof(((vg_delivery *)0)->url))
        return fail_invalid(err, "webhook_url", "the webhook URL is too long");
    if (opts == NULL)
        return VG_STORE_OK;
    if (opts->max_unfinished < 0)
        return fail_invalid(err, "max_unfinished",
                            "the unfinished job limit must not be negative");
    if (opts->idempotency_key == NULL)
        return VG_STORE_OK;
    size_t len = strlen(opts->idempotency_key);
    if (len == 0 || len > IDEMPOTENCY_KEY_MAX)
        return fail_invalid(err, "idempotency_key",
                            "an idempotency key has 1 to 255 bytes");
    if (opts->request_hash == NULL || opts->request_hash[0] == '\0')
        return fail_invalid(err, "request_hash",
                            "an idempotency key needs the request's hash");
    return VG_STORE_OK;
}

static int op_create_job(vg_store *store, const vg_job *job,
                         const vg_job_create *opts, vg_job *existing,
                         vg_error *err)
{
    if (check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    job_create c;
    memset(&c, 0, sizeof(c));
    c.job = job;
    c.opts = opts;
    c.want_existing = existing != NULL;
    int rc = write_tx(store_of(store), create_job_in_tx, &c, err);
    /* The earlier job is only handed out when the answer stands, that is
     * once the transaction that read it has committed. */
    if (rc == VG_STORE_EXISTS && existing != NULL)
        *existing = c.existing;
    else
        vg_job_clear(&c.existing);
    return rc;
}

/* An asynchronous create: the op, the body's context and the caller's
 * callback in one allocation, freed once the callback has run. */
typedef struct async_create {
    write_op op;
    job_create c;
    vg_job *existing;
    void (*done)(void *ctx, int rc);
    void *done_ctx;
} async_create;

static void async_create_finished(write_op *op)
{
    async_create *a = (async_create *)op;
    if (op->rc == VG_STORE_EXISTS && a->existing != NULL)
        *a->existing = a->c.existing;
    else
        vg_job_clear(&a->c.existing);
    void (*done)(void *, int) = a->done;
    void *ctx = a->done_ctx;
    int rc = op->rc;
    free(a);
    done(ctx, rc);
}

static int op_create_job_async(vg_store *store, const vg_job *job,
                               const vg_job_create *opts, vg_job *existing,
                               vg_error *err, void (*done)(void *ctx, int rc),
                               void *ctx)
{
    if (check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    async_create *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return out_of_memory(err, "queueing a job");
    a->c.job = job;
    a->c.opts = opts;
    a->c.want_existing = existing != NULL;
    a->existing = existing;
    a->done = done;
    a->done_ctx = ctx;
    a->op.body = create_job_in_tx;
    a->op.ctx = &a->c;
    a->op.err = err;
    a->op.finished = async_create_finished;
    enqueue_write(store_of(store), &a->op);
    return VG_STORE_OK;
}

static int op_get_job(vg_store *store, const char *id, vg_job *out,
                      vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = select_job(s, id, out, err);
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

/* Steps a bound query to its end, reading every row into rows with read
 * (read_job, read_delivery); `what` names the query in errors. */
static int gather_rows(sqlite_store *s, sqlite3_stmt *stmt, row_buffer *rows,
                       int (*read)(sqlite3_stmt *stmt, void *out,
                                   vg_error *err),
                       const char *what, vg_error *err)
{
    int rc = VG_STORE_OK;
    int step;
    for (;;) {
        step = sqlite3_step(stmt);
        if (step != SQLITE_ROW)
            break;
        void *row = row_buffer_add(rows);
        if (row == NULL) {
            rc = out_of_memory(err, what);
            break;
        }
        rc = read(stmt, row, err);
        if (rc != VG_STORE_OK)
            break;
    }
    if (rc == VG_STORE_OK && step != SQLITE_DONE)
        rc = fail(s, err, what);
    return rc;
}

static int read_job_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    return read_job(stmt, out, err);
}

static int gather_jobs(sqlite_store *s, sqlite3_stmt *stmt, row_buffer *rows,
                       vg_error *err)
{
    return gather_rows(s, stmt, rows, read_job_row, "listing jobs", err);
}

/* Calls each for every gathered job, with no lock held, then frees them. */
static int hand_out_jobs(row_buffer *rows, int rc,
                         int (*each)(void *ctx, const vg_job *job), void *ctx)
{
    const vg_job *jobs = rows->items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows->count; i++)
        rc = each(ctx, &jobs[i]);
    free_jobs(rows);
    return rc;
}

/* One statement per shape of the query, so that each uses its index: a
 * single statement with "(?2 < 0 OR state = ?2)" could not. Parameters a
 * shape does not use are bound anyway, harmlessly. */
static const char *const list_jobs_sql[2][2] = {
    {
        "SELECT " JOB_COLUMNS " FROM jobs WHERE account_id = ?1"
        " ORDER BY created_ms DESC, id DESC LIMIT ?5",
        "SELECT " JOB_COLUMNS " FROM jobs WHERE account_id = ?1"
        " AND (created_ms, id) < (?3, ?4)"
        " ORDER BY created_ms DESC, id DESC LIMIT ?5",
    },
    {
        "SELECT " JOB_COLUMNS " FROM jobs WHERE account_id = ?1"
        " AND state = ?2"
        " ORDER BY created_ms DESC, id DESC LIMIT ?5",
        "SELECT " JOB_COLUMNS " FROM jobs WHERE account_id = ?1"
        " AND state = ?2 AND (created_ms, id) < (?3, ?4)"
        " ORDER BY created_ms DESC, id DESC LIMIT ?5",
    },
};

static int op_list_jobs(vg_store *store, const vg_job_query *query,
                        int (*each)(void *ctx, const vg_job *job), void *ctx,
                        vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (query->account_id == NULL || query->account_id[0] == '\0')
        return fail_invalid(err, "account_id", "an account is required");
    if (query->limit < 1 || query->limit > LIST_LIMIT_MAX)
        return fail_invalid(err, "limit", "limit must be 1 to 1000");
    bool by_state = query->state != -1;
    if (by_state &&
        (query->state < VG_JOB_QUEUED || query->state > VG_JOB_CANCELLED))
        return fail_invalid(err, "state", "no such job state");
    bool after = query->after_id != NULL;

    row_buffer rows = {NULL, 0, 0, sizeof(vg_job)};
    int rc = VG_STORE_ERROR;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = prepare(s, list_jobs_sql[by_state][after], err);
    if (stmt != NULL) {
        const char *state =
            by_state ? vg_job_state_name((vg_job_state)query->state) : "";
        int b = bind_text(stmt, 1, query->account_id);
        b |= bind_text(stmt, 2, state);
        b |= sqlite3_bind_int64(stmt, 3, query->after_created_ms);
        b |= bind_text(stmt, 4, query->after_id);
        b |= sqlite3_bind_int(stmt, 5, query->limit);
        if (b != SQLITE_OK)
            rc = fail(s, err, "listing jobs");
        else
            rc = gather_jobs(s, stmt, &rows, err);
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_jobs(&rows, rc, each, ctx);
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

static int bind_nothing(sqlite3_stmt *stmt, void *ctx)
{
    (void)stmt;
    (void)ctx;
    return SQLITE_OK;
}

/* An update_job call to run as a write of its own. */
typedef struct job_update {
    const char *sql, *id, *verb;
    int (*bind)(sqlite3_stmt *, void *);
    void *ctx;
} job_update;

static int update_job_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const job_update *u = arg;
    return update_job(s, u->sql, u->id, u->verb, u->bind, u->ctx, err);
}

static int op_start_job(vg_store *store, const char *id, int64_t now,
                        vg_error *err)
{
    int64_t at = now > 0 ? now : now_ms();
    job_update u = {"UPDATE jobs SET state = 'running', started_ms = ?2,"
                    " attempts = attempts + 1"
                    " WHERE id = ?1 AND state = 'queued'",
                    id, "start", bind_int64_2, &at};
    return write_tx(store_of(store), update_job_in_tx, &u, err);
}

static int op_requeue_job(vg_store *store, const char *id, vg_error *err)
{
    /* The reservation stays open: the job will run again, and it is
     * settled or refunded once, when it ends. */
    job_update u = {"UPDATE jobs SET state = 'queued', progress = 0,"
                    " started_ms = NULL"
                    " WHERE id = ?1 AND state = 'running'",
                    id, "requeue", bind_nothing, NULL};
    return write_tx(store_of(store), update_job_in_tx, &u, err);
}

static int op_set_progress(vg_store *store, const char *id, int progress,
                           vg_error *err)
{
    /* Progress is advisory (an upstream's estimate), so out-of-range
     * values are clamped rather than refused. */
    int64_t p = progress < 0 ? 0 : progress > 100 ? 100 : progress;
    /* A job that already ended keeps its final progress; CONFLICT tells a
     * worker still reporting that the job was cancelled under it. */
    job_update u = {"UPDATE jobs SET progress = ?2"
                    " WHERE id = ?1 AND state IN ('queued', 'running')",
                    id, "update the progress of", bind_int64_2, &p};
    return write_tx(store_of(store), update_job_in_tx, &u, err);
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

/* Queues the webhook of a job that just ended, due at once, when the job
 * has a webhook URL. Runs in the transaction that ends the job, so the
 * message exists exactly when the end does. */
static int queue_delivery(sqlite_store *s, const char *job_id, int64_t at,
                          vg_error *err)
{
    unsigned char random[16];
    char id[sizeof(((vg_delivery *)0)->id)];
    if (vg_random_bytes(random, sizeof(random)) != 0)
        return vg_error_set(err, 500, "store_error", NULL,
                            "no randomness for a webhook message id");
    memcpy(id, "msg_", 4);
    vg_hex_encode(random, sizeof(random), id + 4);

    sqlite3_stmt *stmt = prepare(
        s,
        "INSERT INTO webhook_deliveries (id, job_id, account_id, url,"
        " state, attempts, last_status, last_error, created_ms,"
        " next_attempt_ms, updated_ms)"
        " SELECT ?1, id, account_id, webhook_url, 'pending', 0, 0, '',"
        " ?3, ?3, ?3 FROM jobs"
        " WHERE id = ?2 AND webhook_url IS NOT NULL AND webhook_url <> ''",
        err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, id);
    b |= bind_text(stmt, 2, job_id);
    b |= sqlite3_bind_int64(stmt, 3, at);
    return run(s, stmt, b, "queueing a webhook", err);
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

static int succeed_job_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const vg_job *job = arg;
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
    if (rc == VG_STORE_OK)
        rc = queue_delivery(s, job->id, job->finished_ms, err);
    return rc;
}

static int op_succeed_job(vg_store *store, const vg_job *job, vg_error *err)
{
    vg_job done = *job;
    /* Keep the pointers out of the copy: they are not ours to touch. */
    done.request_json = NULL;
    done.webhook_url = NULL;
    if (done.finished_ms <= 0)
        done.finished_ms = now_ms();
    return write_tx(store_of(store), succeed_job_in_tx, &done, err);
}

typedef struct job_end {
    const char *id;
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

static int end_job_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const job_end *end = arg;
    const char *id = end->id;
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
    if (rc == VG_STORE_OK)
        rc = queue_delivery(s, id, end->at, err);
    return rc;
}

static int op_end_job(vg_store *store, const char *id, vg_job_state state,
                      const char *code, const char *message, int64_t now,
                      vg_error *err)
{
    if (state != VG_JOB_FAILED && state != VG_JOB_CANCELLED)
        return vg_error_set(err, 500, "store_error", NULL,
                            "end_job takes failed or cancelled, not %s",
                            vg_job_state_name(state));
    job_end end = {id, vg_job_state_name(state), code, message,
                   now > 0 ? now : now_ms()};
    return write_tx(store_of(store), end_job_in_tx, &end, err);
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
        rc = gather_jobs(s, stmt, &rows, err);
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_jobs(&rows, rc, each, ctx);
}

/* ---- webhook secrets --------------------------------------------------- */

/* Reads an account's webhook secret: OK with it in out, NOT_FOUND for no
 * account, and OK with *missing set when the account has none yet. */
static int read_webhook_secret(sqlite_store *s, const char *account_id,
                               char *out, size_t n, bool *missing,
                               vg_error *err)
{
    sqlite3_stmt *stmt =
        prepare(s, "SELECT webhook_secret FROM accounts WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    *missing = false;
    int step = bind_text(stmt, 1, account_id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 0) == SQLITE_NULL)
            *missing = true;
        else
            rc = copy_setting(stmt, "webhook_secret", out, n, err);
    } else if (step == SQLITE_DONE) {
        rc = not_found(err, "account", account_id);
    } else {
        rc = fail(s, err, "reading a webhook secret");
    }
    release(s, stmt);
    return rc;
}

typedef struct secret_write {
    const char *account_id, *secret;
    char *out;
    size_t n;
} secret_write;

static int store_webhook_secret_in_tx(sqlite_store *s, void *arg,
                                      vg_error *err)
{
    const secret_write *w = arg;
    sqlite3_stmt *stmt = prepare(s,
                                 "UPDATE accounts SET webhook_secret = ?2"
                                 " WHERE id = ?1 AND webhook_secret IS NULL",
                                 err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, w->account_id);
    b |= bind_text(stmt, 2, w->secret);
    int rc = run(s, stmt, b, "storing a webhook secret", err);
    /* Whether ours or a racing caller's won, this reads the winner. */
    bool missing = false;
    if (rc == VG_STORE_OK)
        rc =
            read_webhook_secret(s, w->account_id, w->out, w->n, &missing, err);
    if (rc == VG_STORE_OK && missing)
        rc = vg_error_set(err, 500, "store_error", NULL,
                          "the webhook secret of %s was not stored",
                          w->account_id);
    return rc;
}

static int op_get_webhook_secret(vg_store *store, const char *account_id,
                                 const char *candidate, char *out, size_t n,
                                 vg_error *err)
{
    sqlite_store *s = store_of(store);
    if (candidate == NULL || candidate[0] == '\0')
        return fail_invalid(err, "secret", "a candidate secret is required");
    /* Every delivery signs with the secret, and all but the first find
     * it stored: a read, without a write transaction. */
    bool missing = false;
    pthread_mutex_lock(&s->lock);
    int rc = read_webhook_secret(s, account_id, out, n, &missing, err);
    pthread_mutex_unlock(&s->lock);
    if (rc != VG_STORE_OK || !missing)
        return rc;
    secret_write w = {account_id, candidate, out, n};
    return write_tx(s, store_webhook_secret_in_tx, &w, err);
}

static int rotate_webhook_secret_in_tx(sqlite_store *s, void *arg,
                                       vg_error *err)
{
    const secret_write *w = arg;
    sqlite3_stmt *stmt = prepare(
        s, "UPDATE accounts SET webhook_secret = ?2 WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, w->account_id);
    b |= bind_text(stmt, 2, w->secret);
    int rc = run(s, stmt, b, "rotating a webhook secret", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = not_found(err, "account", w->account_id);
    return rc;
}

static int op_rotate_webhook_secret(vg_store *store, const char *account_id,
                                    const char *new_secret, vg_error *err)
{
    if (new_secret == NULL || new_secret[0] == '\0')
        return fail_invalid(err, "secret", "a new secret is required");
    secret_write w = {account_id, new_secret, NULL, 0};
    return write_tx(store_of(store), rotate_webhook_secret_in_tx, &w, err);
}

/* ---- webhook deliveries ------------------------------------------------ */

static bool parse_delivery_state(const char *name, vg_delivery_state *out)
{
    static const vg_delivery_state states[] = {
        VG_DELIVERY_PENDING, VG_DELIVERY_DELIVERED, VG_DELIVERY_FAILED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(name, vg_delivery_state_name(states[i])) == 0) {
            *out = states[i];
            return true;
        }
    }
    return false;
}

/* Fills *out from a row of DELIVERY_COLUMNS. */
static int read_delivery(sqlite3_stmt *stmt, vg_delivery *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    copy_text(stmt, 0, out->id, sizeof(out->id));
    copy_text(stmt, 1, out->job_id, sizeof(out->job_id));
    copy_text(stmt, 2, out->account_id, sizeof(out->account_id));
    copy_text(stmt, 3, out->url, sizeof(out->url));
    const char *state = (const char *)sqlite3_column_text(stmt, 4);
    if (state == NULL || !parse_delivery_state(state, &out->state))
        return vg_error_set(err, 500, "store_error", NULL,
                            "delivery %s has an unknown state", out->id);
    out->attempts = sqlite3_column_int(stmt, 5);
    out->last_status = sqlite3_column_int(stmt, 6);
    copy_text(stmt, 7, out->last_error, sizeof(out->last_error));
    out->created_ms = sqlite3_column_int64(stmt, 8);
    out->next_attempt_ms = sqlite3_column_int64(stmt, 9);
    out->updated_ms = sqlite3_column_int64(stmt, 10);
    return VG_STORE_OK;
}

static int read_delivery_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    return read_delivery(stmt, out, err);
}

static int gather_deliveries(sqlite_store *s, sqlite3_stmt *stmt,
                             row_buffer *rows, vg_error *err)
{
    return gather_rows(s, stmt, rows, read_delivery_row,
                       "listing webhook deliveries", err);
}

static int hand_out_deliveries(row_buffer *rows, int rc,
                               int (*each)(void *ctx, const vg_delivery *d),
                               void *ctx)
{
    const vg_delivery *all = rows->items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows->count; i++)
        rc = each(ctx, &all[i]);
    free(rows->items);
    return rc;
}

typedef struct delivery_claim {
    int64_t now, until;
    int limit;
    row_buffer rows;
} delivery_claim;

static int claim_deliveries_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    delivery_claim *c = arg;
    sqlite3_stmt *stmt =
        prepare(s,
                "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries"
                " WHERE state = 'pending' AND next_attempt_ms <= ?1"
                " ORDER BY next_attempt_ms, rowid LIMIT ?2",
                err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int b = sqlite3_bind_int64(stmt, 1, c->now);
    b |= sqlite3_bind_int(stmt, 2, c->limit);
    if (b != SQLITE_OK)
        rc = fail(s, err, "claiming webhook deliveries");
    else
        rc = gather_deliveries(s, stmt, &c->rows, err);
    release(s, stmt);

    /* The lease is written after the scan, not during it: moving a row's
     * next_attempt_ms while walking the index on it could meet the row
     * again further on. */
    vg_delivery *all = c->rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < c->rows.count; i++) {
        stmt = prepare(s,
                       "UPDATE webhook_deliveries SET next_attempt_ms = ?2"
                       " WHERE id = ?1",
                       err);
        if (stmt == NULL)
            return VG_STORE_ERROR;
        b = bind_text(stmt, 1, all[i].id);
        b |= sqlite3_bind_int64(stmt, 2, c->until);
        rc = run(s, stmt, b, "leasing a webhook delivery", err);
        all[i].next_attempt_ms = c->until;
    }
    return rc;
}

static int op_claim_deliveries(vg_store *store, int64_t now, int64_t lease_ms,
                               int limit,
                               int (*each)(void *ctx, const vg_delivery *d),
                               void *ctx, vg_error *err)
{
    if (limit < 1 || limit > CLAIM_LIMIT_MAX)
        return fail_invalid(err, "limit", "limit must be 1 to 1000");
    if (lease_ms < 0)
        return fail_invalid(err, "lease_ms", "a lease must not be negative");
    delivery_claim c;
    memset(&c, 0, sizeof(c));
    c.now = now > 0 ? now : now_ms();
    c.until = lease_ms < INT64_MAX - c.now ? c.now + lease_ms : INT64_MAX;
    c.limit = limit;
    c.rows.size = sizeof(vg_delivery);
    /* The callbacks run after the commit: a delivery is attempted only
     * once its lease is durable, so no other claimer can take it too. */
    int rc = write_tx(store_of(store), claim_deliveries_in_tx, &c, err);
    return hand_out_deliveries(&c.rows, rc, each, ctx);
}

typedef struct delivery_finish {
    const char *id;
    const char *state;
    int status;
    const char *error;
    int error_len;
    int64_t next_attempt_ms, at;
} delivery_finish;

static int finish_delivery_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const delivery_finish *f = arg;
    /* Only a pending delivery takes an outcome: a late report of an
     * attempt whose lease ran out must not undo a delivery since. */
    sqlite3_stmt *stmt =
        prepare(s,
                "UPDATE webhook_deliveries SET attempts = attempts + 1,"
                " state = ?2, last_status = ?3, last_error = ?4,"
                " next_attempt_ms = ?5, updated_ms = ?6"
                " WHERE id = ?1 AND state = 'pending'",
                err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = bind_text(stmt, 1, f->id);
    b |= bind_text(stmt, 2, f->state);
    b |= sqlite3_bind_int(stmt, 3, f->status);
    b |= sqlite3_bind_text(stmt, 4, f->error, f->error_len, SQLITE_STATIC);
    b |= sqlite3_bind_int64(stmt, 5, f->next_attempt_ms);
    b |= sqlite3_bind_int64(stmt, 6, f->at);
    int rc = run(s, stmt, b, "recording a webhook attempt", err);
    if (rc != VG_STORE_OK || sqlite3_changes(s->db) > 0)
        return rc;

    stmt =
        prepare(s, "SELECT state FROM webhook_deliveries WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int step = bind_text(stmt, 1, f->id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        vg_error_set(err, 409, "conflict", NULL,
                     "webhook delivery %s is already %s", f->id,
                     (const char *)sqlite3_column_text(stmt, 0));
        rc = VG_STORE_CONFLICT;
    } else if (step == SQLITE_DONE) {
        rc = not_found(err, "webhook delivery", f->id);
    } else {
        rc = fail(s, err, "reading a webhook delivery");
    }
    release(s, stmt);
    return rc;
}

static int op_finish_delivery(vg_store *store, const char *id,
                              const vg_delivery_outcome *outcome,
                              vg_error *err)
{
    delivery_finish f;
    memset(&f, 0, sizeof(f));
    f.id = id;
    f.status = outcome->status;
    f.at = outcome->now_ms > 0 ? outcome->now_ms : now_ms();
    vg_delivery_state state = VG_DELIVERY_DELIVERED;
    if (!outcome->delivered)
        state = outcome->next_attempt_ms > 0 ? VG_DELIVERY_PENDING
                                             : VG_DELIVERY_FAILED;
    f.state = vg_delivery_state_name(state);
    /* Only a pending delivery is due at all. */
    f.next_attempt_ms =
        state == VG_DELIVERY_PENDING ? outcome->next_attempt_ms : 0;
    /* The error is kept as a vg_delivery can hold it, cut on a character
     * boundary, rather than as long as a remote server made it. */
    f.error = outcome->error != NULL ? outcome->error : "";
    f.error_len = (int)utf8_prefix(f.error, strlen(f.error),
                                   sizeof(((vg_delivery *)0)->last_error) - 1);
    return write_tx(store_of(store), finish_delivery_in_tx, &f, err);
}

static int op_next_delivery_ms(vg_store *store, int64_t *when, vg_error *err)
{
    sqlite_store *s = store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT next_attempt_ms"
                                 " FROM webhook_deliveries"
                                 " WHERE state = 'pending'"
                                 " ORDER BY next_attempt_ms LIMIT 1",
                                 err);
    if (stmt != NULL) {
        int step = sqlite3_step(stmt);
        if (step == SQLITE_ROW || step == SQLITE_DONE) {
            *when = step == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
            rc = VG_STORE_OK;
        } else {
            rc = fail(s, err, "reading the next webhook delivery");
        }
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int op_list_deliveries(vg_store *store, const char *job_id,
                              int (*each)(void *ctx, const vg_delivery *d),
                              void *ctx, vg_error *err)
{
    sqlite_store *s = store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_delivery)};
    int rc = VG_STORE_ERROR;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = prepare(s,
                                 "SELECT " DELIVERY_COLUMNS
                                 " FROM webhook_deliveries WHERE job_id = ?1"
                                 " ORDER BY created_ms, rowid",
                                 err);
    if (stmt != NULL) {
        if (bind_text(stmt, 1, job_id) != SQLITE_OK)
            rc = fail(s, err, "listing webhook deliveries");
        else
            rc = gather_deliveries(s, stmt, &rows, err);
        release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_deliveries(&rows, rc, each, ctx);
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
                rc = out_of_memory(err, "reading the ledger");
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
    .set_key_limits = op_set_key_limits,
    .create_job = op_create_job,
    .create_job_async = op_create_job_async,
    .get_job = op_get_job,
    .list_jobs = op_list_jobs,
    .start_job = op_start_job,
    .requeue_job = op_requeue_job,
    .set_progress = op_set_progress,
    .succeed_job = op_succeed_job,
    .end_job = op_end_job,
    .list_unfinished_jobs = op_list_unfinished_jobs,
    .get_webhook_secret = op_get_webhook_secret,
    .rotate_webhook_secret = op_rotate_webhook_secret,
    .claim_deliveries = op_claim_deliveries,
    .finish_delivery = op_finish_delivery,
    .next_delivery_ms = op_next_delivery_ms,
    .list_deliveries = op_list_deliveries,
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
        rc = map_keys_epoch(s, err);
    if (rc == VG_STORE_OK) {
        if (pthread_create(&s->writer, NULL, writer_main, s) == 0)
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
