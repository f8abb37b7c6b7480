/*
 * pg_store.c - the PostgreSQL backend of store.h: what every operation
 * stands on. The connection pool (each connection has every statement of
 * the table below prepared once), a call's parameters and results,
 * opening with its migrations, closing, the settings and the table of
 * operations.
 *
 * A blocking operation takes a pooled connection for one statement: a
 * read, or a call of one of pg_schema.c's functions, which is a whole
 * write in one round trip and one transaction of its own. PostgreSQL
 * shares the flush of its log between the commits of concurrent
 * transactions, so blocking writers need no group commit here; the
 * asynchronous writes are batched by pg_batch.c.
 *
 * The pool's size is the "store" section's pool_size. A connection that
 * breaks is dropped when it is handed back, and the next caller opens a
 * new one, so the store reconnects by itself once the database is back;
 * until then operations fail with 503 store_unavailable.
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

/* Every column of a vg_job, in the order pg_read_job expects. */
#define JOB_COLUMNS                                                           \
    "id, account_id, key_id, state, model, provider, request_json, price, "   \
    "seed, width, height, progress, video_key, prompt_tokens, "               \
    "completion_tokens, error_code, error_message, created_ms, started_ms, "  \
    "finished_ms, webhook_url, flex, attempts, upstream_task"

#define KEY_COLUMNS                                                           \
    "k.id, k.account_id, k.name, k.prefix, k.created_ms, "                    \
    "k.revoked_ms IS NOT NULL, k.rpm_limit, k.jobs_limit"

#define DELIVERY_COLUMNS                                                      \
    "id, job_id, account_id, url, state, attempts, last_status, "             \
    "last_error, created_ms, next_attempt_ms, updated_ms"

#define CALL(fn) "SELECT rc, detail FROM " fn

static const struct {
    const char *name;
    const char *sql;
} statements[PG_N_STMTS] = {
    [PG_GET_SETTING] = {"get_setting",
                        "SELECT value FROM settings WHERE key = $1"},
    [PG_SET_SETTING_ONCE] = {"set_setting_once",
                             CALL("vg_set_setting_once($1, $2)")},
    [PG_COUNT_ACCOUNTS] = {"count_accounts", "SELECT count(*) FROM accounts"},
    [PG_CREATE_ACCOUNT] = {"create_account",
                           CALL("vg_create_account($1, $2, $3, $4)")},
    [PG_GET_ACCOUNT] = {"get_account",
                        "SELECT id, name, balance, created_ms, updated_ms"
                        " FROM accounts WHERE id = $1"},
    [PG_GRANT] = {"grant", CALL("vg_grant($1, $2, $3, $4)")},
    [PG_CREATE_KEY] = {"create_key",
                       CALL("vg_create_key($1, $2, $3, $4, $5, $6)")},
    [PG_FIND_KEY] = {"find_key", "SELECT " KEY_COLUMNS
                                 " FROM api_keys k WHERE k.key_hash = $1"},
    [PG_GET_KEY] = {"get_key",
                    "SELECT " KEY_COLUMNS " FROM api_keys k WHERE k.id = $1"},
    [PG_REVOKE_KEY] = {"revoke_key", CALL("vg_revoke_key($1, $2)")},
    /* Before the first revocation the sequence has not been called. */
    [PG_KEYS_EPOCH] = {"keys_epoch",
                       "SELECT CASE WHEN is_called THEN last_value ELSE 0"
                       " END FROM keys_epoch"},
    [PG_LIST_KEYS] = {"list_keys",
                      "SELECT " KEY_COLUMNS ", a.id, a.name, a.balance,"
                      " a.created_ms, a.updated_ms FROM api_keys k"
                      " JOIN accounts a ON a.id = k.account_id"
                      " ORDER BY k.created_ms, k.seq"},
    [PG_SET_KEY_LIMITS] = {"set_key_limits",
                           CALL("vg_set_key_limits($1, $2, $3)")},
    [PG_CREATE_JOB] = {"create_job",
                       CALL("vg_create_job($1, $2, $3, $4, $5, $6, $7, $8,"
                            " $9, $10, $11, $12, $13, $14, $15, $16, $17)")},
    [PG_GET_JOB] = {"get_job",
                    "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1"},
    /* One statement per shape of the query, so that each uses its
     * index. */
    [PG_LIST_JOBS] = {"list_jobs",
                      "SELECT " JOB_COLUMNS " FROM jobs WHERE account_id = $1"
                      " ORDER BY created_ms DESC, id DESC LIMIT $2"},
    [PG_LIST_JOBS_AFTER] = {"list_jobs_after",
                            "SELECT " JOB_COLUMNS
                            " FROM jobs WHERE account_id = $1"
                            " AND (created_ms, id) < ($3, $4)"
                            " ORDER BY created_ms DESC, id DESC LIMIT $2"},
    [PG_LIST_JOBS_STATE] = {"list_jobs_state",
                            "SELECT " JOB_COLUMNS
                            " FROM jobs WHERE account_id = $1"
                            " AND state = $3"
                            " ORDER BY created_ms DESC, id DESC LIMIT $2"},
    [PG_LIST_JOBS_STATE_AFTER] = {"list_jobs_state_after",
                                  "SELECT " JOB_COLUMNS
                                  " FROM jobs WHERE account_id = $1"
                                  " AND state = $5"
                                  " AND (created_ms, id) < ($3, $4)"
                                  " ORDER BY created_ms DESC, id DESC"
                                  " LIMIT $2"},
    [PG_START_JOB] = {"start_job", CALL("vg_start_job($1, $2, $3)")},
    [PG_REQUEUE_JOB] = {"requeue_job", CALL("vg_requeue_job($1)")},
    [PG_SET_PROGRESS] = {"set_progress", CALL("vg_set_progress($1, $2)")},
    [PG_SET_UPSTREAM] = {"set_upstream", CALL("vg_set_upstream($1, $2, $3)")},
    [PG_SUCCEED_JOB] = {"succeed_job", CALL("vg_succeed_job($1, $2, $3, $4,"
                                            " $5, $6, $7, $8)")},
    [PG_END_JOB] = {"end_job", CALL("vg_end_job($1, $2, $3, $4, $5)")},
    [PG_LIST_QUEUED] = {"list_queued", "SELECT " JOB_COLUMNS " FROM jobs"
                                       " WHERE state = 'queued'"
                                       " ORDER BY created_ms, seq LIMIT $1"},
    [PG_LIST_QUEUED_OF] = {"list_queued_of",
                           "SELECT " JOB_COLUMNS " FROM jobs"
                           " WHERE state = 'queued' AND provider = $2"
                           " ORDER BY created_ms, seq LIMIT $1"},
    [PG_LIST_UNFINISHED] = {"list_unfinished",
                            "SELECT " JOB_COLUMNS " FROM jobs"
                            " WHERE state IN ('queued', 'running')"
                            " ORDER BY created_ms, seq"},
    [PG_GET_WEBHOOK_SECRET] = {"webhook_secret",
                               CALL("vg_webhook_secret($1, $2)")},
    [PG_ROTATE_WEBHOOK_SECRET] = {"rotate_webhook_secret",
                                  "UPDATE accounts SET webhook_secret = $2"
                                  " WHERE id = $1"},
    [PG_CLAIM_DELIVERIES] = {"claim_deliveries",
                             "SELECT " DELIVERY_COLUMNS
                             " FROM vg_claim_deliveries($1, $2, $3)"},
    [PG_FINISH_DELIVERY] = {"finish_delivery",
                            CALL("vg_finish_delivery($1, $2, $3, $4, $5,"
                                 " $6)")},
    [PG_NEXT_DELIVERY] = {"next_delivery",
                          "SELECT next_attempt_ms FROM webhook_deliveries"
                          " WHERE state = 'pending'"
                          " ORDER BY next_attempt_ms LIMIT 1"},
    [PG_LIST_DELIVERIES] = {"list_deliveries",
                            "SELECT " DELIVERY_COLUMNS
                            " FROM webhook_deliveries WHERE job_id = $1"
                            " ORDER BY created_ms, seq"},
    /* One statement reads one snapshot, so the sums and the balance agree
     * unless the records themselves disagree (see sqlite_accounts.c). */
    [PG_LEDGER_ROWS] = {"ledger_rows",
                        "SELECT a.id, a.name, a.balance,"
                        " (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l"
                        "   WHERE l.account_id = a.id AND l.kind = 'grant'),"
                        " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
                        "   WHERE j.account_id = a.id"
                        "   AND j.reservation = 'settled'),"
                        " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
                        "   WHERE j.account_id = a.id"
                        "   AND j.reservation = 'open')"
                        " FROM accounts a ORDER BY a.created_ms, a.seq"},
};

pg_store *pg_store_of(vg_store *store)
{
    return (pg_store *)store;
}

const char *pg_statement_name(enum pg_stmt stmt)
{
    return statements[stmt].name;
}

/* ---- parameters -------------------------------------------------------- */

static void add_value(pg_params *p, char *value, bool null)
{
    if (p->n >= PG_MAX_PARAMS || (value == NULL && !null)) {
        free(value);
        p->failed = true;
        return;
    }
    p->values[p->n++] = value;
}

void pg_text(pg_params *p, const char *s)
{
    add_value(p, s != NULL ? strdup(s) : NULL, s == NULL);
}

void pg_field(pg_params *p, const char *buf, size_t cap)
{
    add_value(p, strndup(buf, strnlen(buf, cap)), false);
}

void pg_int(pg_params *p, int64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", (long long)v);
    add_value(p, strdup(num), false);
}

void pg_bool(pg_params *p, bool v)
{
    add_value(p, strdup(v ? "t" : "f"), false);
}

void pg_null(pg_params *p)
{
    add_value(p, NULL, true);
}

void pg_params_clear(pg_params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->values[i]);
    p->n = 0;
    p->failed = false;
}

/* ---- results ----------------------------------------------------------- */

void pg_col_text(const PGresult *res, int row, int col, char *buf, size_t cap)
{
    if (PQgetisnull(res, row, col)) {
        buf[0] = '\0';
        return;
    }
    vg_store_copy_text(PQgetvalue(res, row, col),
                       (size_t)PQgetlength(res, row, col), buf, cap);
}

int64_t pg_col_int64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool pg_col_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

bool pg_connection_lost(PGconn *conn, const PGresult *res)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return true;
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL &&
           (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
            strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

int pg_fail(PGconn *conn, const PGresult *res, const char *what, vg_error *err)
{
    /* libpq's own messages end with a newline, which does not belong in
     * an error's message. */
    const char *libpq = conn != NULL ? PQerrorMessage(conn) : "";
    int libpq_len = (int)strcspn(libpq, "\n");
    if (pg_connection_lost(conn, res))
        return vg_error_set(err, 503, "store_unavailable", NULL,
                            "%s: the database cannot be reached%s%.*s", what,
                            libpq_len > 0 ? ": " : "", libpq_len, libpq);
    const char *message =
        res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (message == NULL)
        return vg_error_set(err, 500, "store_error", NULL, "%s: %.*s", what,
                            libpq_len, libpq);
    return vg_error_set(err, 500, "store_error", NULL, "%s: %s", what,
                        message);
}

bool pg_retryable(const PGresult *res)
{
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* A session the server ended (57P01: an administrator or a restart)
     * rolled back what it was running; a connection that merely broke
     * leaves the outcome unknown, and is not retried. */
    return state != NULL &&
           (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 ||
            strcmp(state, "57P01") == 0);
}

int pg_answer(const PGresult *res, char *detail, size_t n, vg_error *err)
{
    if (PQntuples(res) != 1 || PQnfields(res) < 2)
        return vg_error_set(err, 500, "store_error", NULL,
                            "a store function answered %d rows",
                            PQntuples(res));
    if (detail != NULL && n > 0) {
        const char *text = PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1);
        /* A truncated secret or id would silently differ from the stored
         * one. */
        if (strlen(text) >= n)
            return vg_error_set(err, 500, "store_error", NULL,
                                "a stored value (%zu bytes) does not fit in "
                                "%zu bytes",
                                strlen(text), n);
        memcpy(detail, text, strlen(text) + 1);
    }
    return (int)pg_col_int64(res, 0, 0);
}

/* ---- connections ------------------------------------------------------- */

/* The server's notices ("relation already exists, skipping") are not
 * errors, and the log is not the place for them. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

pg_link *pg_connect(const pg_store *s, vg_error *err)
{
    pg_link *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        vg_store_out_of_memory(err, "connecting to the database");
        return NULL;
    }
    c->conn = PQconnectdb(s->url);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        pg_fail(c->conn, NULL, "connecting", err);
        PQfinish(c->conn);
        free(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    /* Text goes both ways as UTF-8 whatever the server's default. */
    if (PQsetClientEncoding(c->conn, "UTF8") != 0) {
        pg_fail(c->conn, NULL, "setting the client encoding", err);
        PQfinish(c->conn);
        free(c);
        return NULL;
    }
    for (int i = 0; i < PG_N_STMTS; i++) {
        PGresult *res =
            PQprepare(c->conn, statements[i].name, statements[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            char what[80];
            snprintf(what, sizeof(what), "preparing %s", statements[i].name);
            pg_fail(c->conn, res, what, err);
        }
        PQclear(res);
        if (!ok) {
            PQfinish(c->conn);
            free(c);
            return NULL;
        }
    }
    return c;
}

void pg_disconnect(pg_link *c)
{
    if (c == NULL)
        return;
    PQfinish(c->conn);
    free(c);
}

pg_link *pg_acquire(pg_store *s, vg_error *err)
{
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        if (s->idle != NULL) {
            pg_link *c = s->idle;
            s->idle = c->next;
            pthread_mutex_unlock(&s->pool_lock);
            return c;
        }
        if (s->open < s->max)
            break;
        pthread_cond_wait(&s->pool_free, &s->pool_lock);
    }
    /* A new connection, made without the lock: connecting takes round
     * trips, and a database that is down takes its timeout. */
    s->open++;
    pthread_mutex_unlock(&s->pool_lock);
    pg_link *c = pg_connect(s, err);
    if (c == NULL) {
        pthread_mutex_lock(&s->pool_lock);
        s->open--;
        pthread_cond_signal(&s->pool_free);
        pthread_mutex_unlock(&s->pool_lock);
    }
    return c;
}

void pg_release(pg_store *s, pg_link *c)
{
    bool broken = c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK ||
                  PQtransactionStatus(c->conn) != PQTRANS_IDLE;
    if (broken)
        pg_disconnect(c);
    pthread_mutex_lock(&s->pool_lock);
    if (broken) {
        s->open--;
    } else {
        c->next = s->idle;
        s->idle = c;
    }
    pthread_cond_signal(&s->pool_free);
    pthread_mutex_unlock(&s->pool_lock);
}

PGresult *pg_run(pg_store *s, enum pg_stmt stmt, const pg_params *p,
                 const char *what, vg_error *err)
{
    if (p != NULL && p->failed) {
        vg_store_out_of_memory(err, what);
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        pg_link *c = pg_acquire(s, err);
        if (c == NULL)
            return NULL;
        PGresult *res = PQexecPrepared(
            c->conn, statements[stmt].name, p != NULL ? p->n : 0,
            p != NULL ? (const char *const *)p->values : NULL, NULL, NULL, 0);
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
            pg_release(s, c);
            return res;
        }
        bool again = pg_retryable(res) && attempt < PG_RETRIES;
        if (!again)
            pg_fail(c->conn, res, what, err);
        /* A session the server ended may still look open to libpq. */
        if (pg_connection_lost(c->conn, res)) {
            PQfinish(c->conn);
            c->conn = NULL;
        }
        PQclear(res);
        pg_release(s, c);
        if (!again)
            return NULL;
    }
}

int pg_call(pg_store *s, enum pg_stmt stmt, const pg_params *p,
            const char *what, char *detail, size_t n, vg_error *err)
{
    PGresult *res = pg_run(s, stmt, p, what, err);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = pg_answer(res, detail, n, err);
    PQclear(res);
    return rc;
}

/* ---- migrations -------------------------------------------------------- */

static int exec_sql(PGconn *conn, const char *sql, const char *what,
                    vg_error *err)
{
    PGresult *res = PQexec(conn, sql);
    int rc = VG_STORE_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(conn, res, what, err);
    PQclear(res);
    return rc;
}

/* A number no other application's advisory lock is likely to use: "vgmi"
 * in ASCII. */
#define MIGRATION_LOCK "1986488681"

/*
 * Brings the schema to pg_schema_version. The session-level advisory lock
 * makes instances that start together take turns: the second finds the
 * version the first wrote. Each version is one transaction with its
 * record, so a failed migration leaves the previous version whole.
 */
static int migrate(PGconn *conn, vg_error *err)
{
    int rc = exec_sql(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")",
                      "waiting for the migration lock", err);
    if (rc != VG_STORE_OK)
        return rc;
    rc = exec_sql(conn,
                  "CREATE TABLE IF NOT EXISTS vg_schema ("
                  " version INTEGER NOT NULL)",
                  "creating the schema table", err);
    int version = 0;
    if (rc == VG_STORE_OK) {
        PGresult *res =
            PQexec(conn, "SELECT COALESCE(MAX(version), 0) FROM vg_schema");
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            version = (int)pg_col_int64(res, 0, 0);
        else
            rc = pg_fail(conn, res, "reading the schema version", err);
        PQclear(res);
    }
    if (rc == VG_STORE_OK && version > pg_schema_version)
        rc = vg_error_set(err, 500, "store_error", NULL,
                          "the database has schema version %d, newer than "
                          "this build's %d",
                          version, pg_schema_version);
    for (; rc == VG_STORE_OK && version < pg_schema_version; version++) {
        char record[96];
        snprintf(record, sizeof(record),
                 "INSERT INTO vg_schema (version) VALUES (%d)", version + 1);
        rc = exec_sql(conn, "BEGIN", "starting a migration", err);
        if (rc == VG_STORE_OK)
            rc = exec_sql(conn, pg_migrations[version], "migrating", err);
        if (rc == VG_STORE_OK)
            rc = exec_sql(conn, record, "recording the schema version", err);
        if (rc == VG_STORE_OK)
            rc = exec_sql(conn, "COMMIT", "committing a migration", err);
        if (rc != VG_STORE_OK) {
            vg_error ignored;
            exec_sql(conn, "ROLLBACK", "rolling back", &ignored);
        } else {
            vg_log_info("store: database migrated to version %d", version + 1);
        }
    }
    vg_error ignored;
    exec_sql(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")",
             "releasing the migration lock", &ignored);
    return rc;
}

/* ---- settings ---------------------------------------------------------- */

static int op_get_setting(vg_store *store, const char *key, char *out,
                          size_t n, vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, key);
    PGresult *res = pg_run(pg_store_of(store), PG_GET_SETTING, &p,
                           "reading a setting", err);
    pg_params_clear(&p);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (PQntuples(res) == 0) {
        rc = vg_store_not_found(err, "setting", key);
    } else if ((size_t)PQgetlength(res, 0, 0) >= n) {
        rc = vg_error_set(err, 500, "store_error", NULL,
                          "setting %s (%d bytes) does not fit in %zu bytes",
                          key, PQgetlength(res, 0, 0), n);
    } else {
        memcpy(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0) + 1);
    }
    PQclear(res);
    return rc;
}

static int op_set_setting_once(vg_store *store, const char *key,
                               const char *value, char *out, size_t n,
                               vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, key);
    pg_text(&p, value);
    int rc = pg_call(pg_store_of(store), PG_SET_SETTING_ONCE, &p,
                     "storing a setting", out, n, err);
    pg_params_clear(&p);
    return rc;
}

/* ---- opening and closing ----------------------------------------------- */

static void op_close(vg_store *store)
{
    pg_store *s = pg_store_of(store);
    pthread_mutex_lock(&s->queue_lock);
    __atomic_store_n(&s->closing, true, __ATOMIC_RELEASE);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->queue_lock);
    if (s->wake_fd >= 0)
        eventfd_write(s->wake_fd, 1);
    if (s->writer_running)
        pthread_join(s->writer, NULL);
    if (s->watcher_running)
        pthread_join(s->watcher, NULL);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pg_disconnect(s->writer_conn);
    while (s->idle != NULL) {
        pg_link *c = s->idle;
        s->idle = c->next;
        pg_disconnect(c);
    }
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_free);
    pthread_mutex_destroy(&s->queue_lock);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->epoch_lock);
    free(s->url);
    free(s);
}

static const vg_store_ops pg_ops = {
    .name = "postgres",
    .close = op_close,
    .get_setting = op_get_setting,
    .set_setting_once = op_set_setting_once,
    .count_accounts = pg_op_count_accounts,
    .create_account = pg_op_create_account,
    .get_account = pg_op_get_account,
    .grant_credits = pg_op_grant_credits,
    .create_key = pg_op_create_key,
    .find_key_by_hash = pg_op_find_key_by_hash,
    .get_key = pg_op_get_key,
    .revoke_key = pg_op_revoke_key,
    .keys_epoch = pg_op_keys_epoch,
    .list_keys = pg_op_list_keys,
    .set_key_limits = pg_op_set_key_limits,
    .create_job = pg_op_create_job,
    .create_job_async = pg_op_create_job_async,
    .get_job = pg_op_get_job,
    .list_jobs = pg_op_list_jobs,
    .start_job = pg_op_start_job,
    .start_job_async = pg_op_start_job_async,
    .requeue_job = pg_op_requeue_job,
    .set_progress = pg_op_set_progress,
    .set_upstream = pg_op_set_upstream,
    .set_upstream_async = pg_op_set_upstream_async,
    .succeed_job = pg_op_succeed_job,
    .succeed_job_async = pg_op_succeed_job_async,
    .end_job = pg_op_end_job,
    .list_queued_jobs = pg_op_list_queued_jobs,
    .list_unfinished_jobs = pg_op_list_unfinished_jobs,
    .get_webhook_secret = pg_op_get_webhook_secret,
    .rotate_webhook_secret = pg_op_rotate_webhook_secret,
    .claim_deliveries = pg_op_claim_deliveries,
    .finish_delivery = pg_op_finish_delivery,
    .next_delivery_ms = pg_op_next_delivery_ms,
    .list_deliveries = pg_op_list_deliveries,
    .ledger_rows = pg_op_ledger_rows,
};

vg_store *vg_store_open_postgres(const char *url, int pool_size, vg_error *err)
{
    vg_error ignored;
    if (err == NULL)
        err = &ignored;
    pg_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        vg_store_out_of_memory(err, "opening the database");
        return NULL;
    }
    s->base.ops = &pg_ops;
    s->max = pool_size > 0 ? pool_size : 8;
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_free, NULL);
    pthread_mutex_init(&s->queue_lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_mutex_init(&s->epoch_lock, NULL);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    /* Migrate on a connection of its own first: the statements the
     * pool's connections prepare name the schema's functions. */
    int rc = VG_STORE_ERROR;
    PGconn *conn = PQconnectdb(url);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        pg_fail(conn, NULL, "connecting", err);
    else {
        PQsetNoticeProcessor(conn, ignore_notice, NULL);
        rc = migrate(conn, err);
    }
    PQfinish(conn);
    if (rc == VG_STORE_OK) {
        s->writer_conn = pg_connect(s, err);
        rc = s->writer_conn != NULL ? VG_STORE_OK : VG_STORE_ERROR;
    }
    if (rc == VG_STORE_OK && s->wake_fd < 0)
        rc = vg_error_set(err, 500, "store_error", NULL,
                          "cannot make an eventfd");
    if (rc == VG_STORE_OK) {
        /* The epoch is fresh from the start; the watcher keeps it so. */
        pg_epoch_refresh(s);
        if (pthread_create(&s->writer, NULL, pg_writer_main, s) == 0)
            s->writer_running = true;
        else
            rc = vg_error_set(err, 500, "store_error", NULL,
                              "cannot start the writer thread");
    }
    if (rc == VG_STORE_OK) {
        if (pthread_create(&s->watcher, NULL, pg_epoch_main, s) == 0)
            s->watcher_running = true;
        else
            rc = vg_error_set(err, 500, "store_error", NULL,
                              "cannot start the keys epoch watcher");
    }
    if (rc != VG_STORE_OK) {
        vg_error cause = *err;
        vg_error_set(err, cause.status ? cause.status : 500,
                     cause.code[0] ? cause.code : "store_error", NULL,
                     "opening the PostgreSQL store: %s", cause.message);
        op_close(&s->base);
        return NULL;
    }
    return &s->base;
}
