/*
 * pg_internal.h - what the files of the PostgreSQL backend of store.h
 * share, and nothing else includes.
 *
 * pg_store.c owns the connections (a pool of them, each with every
 * statement of pg_statements prepared), the parameters and results of a
 * call, opening, migrating and closing; pg_batch.c the writer thread that
 * sends the asynchronous writes of many callers as one pipelined
 * transaction; pg_accounts.c, pg_jobs.c and pg_webhooks.c the
 * operations; pg_schema.c the tables and the functions every deciding
 * write is. Every name declared here starts with pg_ (libpq's own start
 * with PQ).
 */
#ifndef VG_PG_INTERNAL_H
#define VG_PG_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>

#include "store/checks.h"
#include "store/store.h"
#include "util/clock.h"

/* ---- pg_schema.c ------------------------------------------------------- */

extern const char *const pg_migrations[];
extern const int pg_schema_version;

/* ---- statements (pg_store.c) ------------------------------------------- */

/* Every statement the backend runs, prepared on each connection under
 * its enum's name. */
enum pg_stmt {
    PG_GET_SETTING,
    PG_SET_SETTING_ONCE,
    PG_COUNT_ACCOUNTS,
    PG_CREATE_ACCOUNT,
    PG_GET_ACCOUNT,
    PG_GRANT,
    PG_CREATE_KEY,
    PG_FIND_KEY,
    PG_GET_KEY,
    PG_REVOKE_KEY,
    PG_KEYS_EPOCH,
    PG_LIST_KEYS,
    PG_SET_KEY_LIMITS,
    PG_CREATE_JOB,
    PG_GET_JOB,
    PG_LIST_JOBS,
    PG_LIST_JOBS_AFTER,
    PG_LIST_JOBS_STATE,
    PG_LIST_JOBS_STATE_AFTER,
    PG_START_JOB,
    PG_REQUEUE_JOB,
    PG_SET_PROGRESS,
    PG_SET_UPSTREAM,
    PG_SUCCEED_JOB,
    PG_END_JOB,
    PG_LIST_QUEUED,
    PG_LIST_QUEUED_OF,
    PG_LIST_UNFINISHED,
    PG_GET_WEBHOOK_SECRET,
    PG_ROTATE_WEBHOOK_SECRET,
    PG_CLAIM_DELIVERIES,
    PG_FINISH_DELIVERY,
    PG_NEXT_DELIVERY,
    PG_LIST_DELIVERIES,
    PG_LEDGER_ROWS,
    PG_N_STMTS
};

/* ---- parameters -------------------------------------------------------- */

#define PG_MAX_PARAMS 20

/* A call's parameters in libpq's text format, each an owned copy (NULL
 * for SQL NULL), so that a write can wait in the batch queue after its
 * caller's strings are gone. */
typedef struct pg_params {
    int n;
    char *values[PG_MAX_PARAMS];
    bool failed; /* out of memory while adding one */
} pg_params;

void pg_text(pg_params *p, const char *s);
/* A fixed-size field, read no further than cap even when unterminated. */
void pg_field(pg_params *p, const char *buf, size_t cap);
#define PG_FIELD(p, field) pg_field(p, field, sizeof(field))
void pg_int(pg_params *p, int64_t v);
void pg_bool(pg_params *p, bool v);
void pg_null(pg_params *p);
void pg_params_clear(pg_params *p);

/* ---- the store --------------------------------------------------------- */

typedef struct pg_link {
    PGconn *conn;
    struct pg_link *next;
} pg_link;

typedef struct pg_op pg_op;

typedef struct pg_store {
    vg_store base;
    char *url;
    /* The pool: idle connections, how many are open, and at most how
     * many may be. */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_free;
    pg_link *idle;
    int open, max;
    /* The batch writer (pg_batch.c) and its own connection. */
    pthread_mutex_t queue_lock;
    pthread_cond_t work;
    pg_op *queue_head, *queue_tail;
    bool closing;
    bool writer_running;
    pthread_t writer;
    pg_link *writer_conn;
    /* The keys epoch's copy (pg_epoch.c), when it was last read, and its
     * watcher thread; wake_fd (an eventfd) ends the watcher's wait at
     * close. */
    pthread_mutex_t epoch_lock;
    uint64_t epoch;
    int64_t epoch_at_ms;
    bool watcher_running;
    pthread_t watcher;
    int wake_fd;
} pg_store;

pg_store *pg_store_of(vg_store *store);

/* Fills err from a failed result or connection (503 store_unavailable
 * when the database cannot be reached) and returns VG_STORE_ERROR. */
int pg_fail(PGconn *conn, const PGresult *res, const char *what,
            vg_error *err);

/* The name a statement is prepared under. */
const char *pg_statement_name(enum pg_stmt stmt);
/* Whether a failed result is a transaction PostgreSQL rolled back that
 * can be tried again (a deadlock, a serialization failure). */
bool pg_retryable(const PGresult *res);

/* Whether a failed result says the connection is gone: closed under us,
 * or ended by the server (SQLSTATE class 08, or 57P01-57P03: a shutdown,
 * a crash, a server not accepting connections yet). */
bool pg_connection_lost(PGconn *conn, const PGresult *res);

/* A connection from the pool (connected and prepared), or NULL with err
 * (503) when none can be made; pg_release hands it back, dropping one
 * that broke. */
pg_link *pg_acquire(pg_store *s, vg_error *err);
void pg_release(pg_store *s, pg_link *c);
/* Connects to s->url and prepares every statement; NULL with err. */
pg_link *pg_connect(const pg_store *s, vg_error *err);
/* Closes and frees a connection of pg_connect (NULL: nothing). */
void pg_disconnect(pg_link *c);

/* How often a transaction PostgreSQL rolled back for a deadlock, a
 * serialization failure or an ended session is tried again. */
#define PG_RETRIES 5

/* Runs one prepared statement on a pooled connection, as a transaction
 * of its own, and returns its result (the caller PQclears it), or NULL
 * with err. A deadlock or serialization failure (the transaction rolled
 * back) is retried. */
PGresult *pg_run(pg_store *s, enum pg_stmt stmt, const pg_params *p,
                 const char *what, vg_error *err);

/* A function call's answer, (rc, detail) in its one row: rc, with detail
 * copied to detail[0..n). VG_STORE_ERROR with err when the call failed. */
int pg_call(pg_store *s, enum pg_stmt stmt, const pg_params *p,
            const char *what, char *detail, size_t n, vg_error *err);
int pg_answer(const PGresult *res, char *detail, size_t n, vg_error *err);

/* Column readers: "" and 0 for NULL. */
void pg_col_text(const PGresult *res, int row, int col, char *buf, size_t cap);
int64_t pg_col_int64(const PGresult *res, int row, int col);
bool pg_col_bool(const PGresult *res, int row, int col);

/* ---- pg_batch.c -------------------------------------------------------- */

/*
 * A write for the batch writer: a function call (stmt, params) whose
 * answer explain turns into the operation's status and error, after
 * which finished is called back on the writer thread. The caller
 * allocates it (with room for what explain needs after it) and the
 * writer frees it through finished.
 */
struct pg_op {
    enum pg_stmt stmt;
    pg_params params;
    const char *what;
    int (*explain)(pg_op *op, int rc, const char *detail, vg_error *err);
    void (*finished)(pg_op *op, int rc, const vg_error *err);
    int rc;
    vg_error err;
    pg_op *next;
};

/* Queues op; it runs in the next batch. */
void pg_enqueue(pg_store *s, pg_op *op);
void *pg_writer_main(void *arg);

/* ---- pg_epoch.c -------------------------------------------------------- */

/* Raises the copy of the keys epoch to epoch (never lowers it). */
void pg_epoch_set(pg_store *s, uint64_t epoch);
/* Reads the epoch through the pool into the copy. */
void pg_epoch_refresh(pg_store *s);
void *pg_epoch_main(void *arg);

/* ---- operations -------------------------------------------------------- */

/* pg_accounts.c */
int pg_op_count_accounts(vg_store *store, int64_t *count, vg_error *err);
int pg_op_create_account(vg_store *store, const char *name, int64_t credits,
                         vg_account *out, vg_error *err);
int pg_op_get_account(vg_store *store, const char *id, vg_account *out,
                      vg_error *err);
int pg_op_grant_credits(vg_store *store, const char *account_id,
                        int64_t amount, const char *note, vg_error *err);
int pg_op_create_key(vg_store *store, const char *account_id, const char *name,
                     const char *key_hash, const char *prefix, vg_api_key *out,
                     vg_error *err);
int pg_op_find_key_by_hash(vg_store *store, const char *key_hash,
                           vg_api_key *out, vg_error *err);
int pg_op_get_key(vg_store *store, const char *id, vg_api_key *out,
                  vg_error *err);
int pg_op_revoke_key(vg_store *store, const char *id, vg_error *err);
int pg_op_keys_epoch(vg_store *store, uint64_t *epoch, vg_error *err);
int pg_op_list_keys(vg_store *store,
                    int (*each)(void *ctx, const vg_api_key *key,
                                const vg_account *account),
                    void *ctx, vg_error *err);
int pg_op_set_key_limits(vg_store *store, const char *id, int rpm_limit,
                         int jobs_limit, vg_error *err);
int pg_op_ledger_rows(vg_store *store,
                      int (*each)(void *ctx, const vg_ledger_row *row),
                      void *ctx, vg_error *err);

/* pg_jobs.c */
int pg_op_create_job(vg_store *store, const vg_job *job,
                     const vg_job_create *opts, vg_job *existing,
                     vg_error *err);
int pg_op_create_job_async(vg_store *store, const vg_job *job,
                           const vg_job_create *opts, vg_job *existing,
                           vg_error *err, void (*done)(void *ctx, int rc),
                           void *ctx);
int pg_op_get_job(vg_store *store, const char *id, vg_job *out, vg_error *err);
int pg_op_list_jobs(vg_store *store, const vg_job_query *query,
                    int (*each)(void *ctx, const vg_job *job), void *ctx,
                    vg_error *err);
int pg_op_start_job(vg_store *store, const char *id, int64_t now,
                    vg_error *err);
int pg_op_start_job_async(vg_store *store, const char *id, int64_t now,
                          const char *provider, vg_store_written done,
                          void *ctx, vg_error *err);
int pg_op_requeue_job(vg_store *store, const char *id, vg_error *err);
int pg_op_set_progress(vg_store *store, const char *id, int progress,
                       vg_error *err);
int pg_op_set_upstream(vg_store *store, const char *id, const char *provider,
                       const char *task, vg_error *err);
int pg_op_set_upstream_async(vg_store *store, const char *id,
                             const char *provider, const char *task,
                             vg_store_written done, void *ctx, vg_error *err);
int pg_op_succeed_job(vg_store *store, const vg_job *job, vg_error *err);
int pg_op_succeed_job_async(vg_store *store, const vg_job *job,
                            vg_store_written done, void *ctx, vg_error *err);
int pg_op_end_job(vg_store *store, const char *id, vg_job_state state,
                  const char *code, const char *message, int64_t now,
                  vg_error *err);
int pg_op_list_queued_jobs(vg_store *store, const char *provider, int limit,
                           int (*each)(void *ctx, const vg_job *job),
                           void *ctx, vg_error *err);
int pg_op_list_unfinished_jobs(vg_store *store,
                               int (*each)(void *ctx, const vg_job *job),
                               void *ctx, vg_error *err);

/* pg_webhooks.c */
int pg_op_get_webhook_secret(vg_store *store, const char *account_id,
                             const char *candidate, char *out, size_t n,
                             vg_error *err);
int pg_op_rotate_webhook_secret(vg_store *store, const char *account_id,
                                const char *new_secret, vg_error *err);
int pg_op_claim_deliveries(vg_store *store, int64_t now, int64_t lease_ms,
                           int limit,
                           int (*each)(void *ctx, const vg_delivery *d),
                           void *ctx, vg_error *err);
int pg_op_finish_delivery(vg_store *store, const char *id,
                          const vg_delivery_outcome *outcome, vg_error *err);
int pg_op_next_delivery_ms(vg_store *store, int64_t *when, vg_error *err);
int pg_op_list_deliveries(vg_store *store, const char *job_id,
                          int (*each)(void *ctx, const vg_delivery *d),
                          void *ctx, vg_error *err);

#endif
