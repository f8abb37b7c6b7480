/*
 * sqlite_internal.h - what the files of the SQLite backend of store.h
 * share, and nothing else includes: the store's struct, a write queued
 * for the group commit, the row buffer of the list operations, the
 * helpers every operation is written with, and the operations that
 * store_sqlite.c puts in its table.
 *
 * The backend is one file per group of operations (sqlite_accounts.c,
 * sqlite_jobs.c, sqlite_webhooks.c) around store_sqlite.c, which owns the
 * connection. Every name declared here starts with sqlite_ (SQLite's own
 * start with sqlite3_): shared helpers read apart from each file's static
 * ones, and cannot clash with another module's symbols.
 */
#ifndef VG_SQLITE_INTERNAL_H
#define VG_SQLITE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>

#include "store/checks.h"
#include "store/store.h"
#include "util/clock.h"

/* Prepared statements are kept and reused: parsing SQL costs more than
 * running a point lookup, and authentication does one per request. */
#define STMT_CACHE 128

typedef struct sqlite_store sqlite_store;

/* A write waiting for the group commit (see sqlite_write_tx). A blocking
 * caller keeps it on its stack and sleeps on wake until the writer marks
 * it done; an asynchronous one (sqlite_op_create_job_async) allocates it
 * and is called back through finished, after which the writer frees it. */
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

/* A growable array for the list operations, which gather rows first and
 * call back only after releasing the connection, so a callback may call
 * the store again without deadlocking on the mutex. */
typedef struct row_buffer {
    void *items;
    size_t count, cap, size;
} row_buffer;

/* ---- store_sqlite.c --------------------------------------------------- */

/* The store behind a vg_store. */
sqlite_store *sqlite_store_of(vg_store *store);

/* Errors: each fills err and returns the status the operation returns. */
int sqlite_fail(sqlite_store *s, vg_error *err, const char *what);
/* Why a conditional UPDATE of job id changed nothing (409 naming its
 * state, or not found); verb says what was tried. */
int sqlite_job_not_changed(sqlite_store *s, const char *id, const char *verb,
                           vg_error *err);
/* One statement without parameters, through the statement cache. */
int sqlite_run_sql(sqlite_store *s, const char *sql, const char *what,
                   vg_error *err);
/* Rolls back the open transaction, if an error has not already. */
void sqlite_rollback(sqlite_store *s);
/* The group commit's writer thread (sqlite_commit.c), started at open. */
void *sqlite_writer_main(void *arg);

/* Reading columns and binding parameters. */
void sqlite_copy_text(sqlite3_stmt *stmt, int col, char *buf, size_t cap);
int sqlite_copy_setting(sqlite3_stmt *stmt, const char *key, char *out,
                        size_t n, vg_error *err);
int sqlite_bind_text(sqlite3_stmt *stmt, int i, const char *s);
/* Binds a fixed-size field without reading past it even when a caller
 * left it unterminated (SQLITE_STATIC: the values outlive the
 * statement). */
int sqlite_bind_field(sqlite3_stmt *stmt, int i, const char *buf, size_t cap);
#define BIND_FIELD(stmt, i, field)                                            \
    sqlite_bind_field(stmt, i, field, sizeof(field))

/* Statements, from the connection's cache. */
sqlite3_stmt *sqlite_prepare(sqlite_store *s, const char *sql, vg_error *err);
void sqlite_release(sqlite_store *s, sqlite3_stmt *stmt);
int sqlite_run(sqlite_store *s, sqlite3_stmt *stmt, int bind_rc,
               const char *what, vg_error *err);

/* Writes, through the group commit. sqlite_write_tx blocks until its
 * write is committed; sqlite_enqueue_write only queues an op, whose
 * finished is called back once it is (see write_op). */
int sqlite_write_tx(sqlite_store *s,
                    int (*body)(sqlite_store *s, void *ctx, vg_error *err),
                    void *ctx, vg_error *err);
void sqlite_enqueue_write(sqlite_store *s, write_op *op);

/* Reads for the list operations (see row_buffer). */
void *sqlite_row_buffer_add(row_buffer *rows);
int sqlite_gather_rows(sqlite_store *s, sqlite3_stmt *stmt, row_buffer *rows,
                       int (*read)(sqlite3_stmt *stmt, void *out,
                                   vg_error *err),
                       const char *what, vg_error *err);

/* ---- sqlite_accounts.c ------------------------------------------------ */

/* Money, for jobs too: a change of a balance (sqlite_move_balance) is
 * journaled (sqlite_append_ledger) in the same transaction. */
int sqlite_select_account(sqlite_store *s, const char *id, vg_account *out,
                          vg_error *err);
int sqlite_move_balance(sqlite_store *s, const char *account_id, int64_t delta,
                        int64_t at_ms, vg_error *err);
int sqlite_append_ledger(sqlite_store *s, const char *account_id,
                         const char *kind, int64_t amount, const char *job_id,
                         const char *note, int64_t at_ms, vg_error *err);

/* Maps the keys epoch file at epoch_path, when the store opens. */
int sqlite_map_keys_epoch(sqlite_store *s, vg_error *err);

/* Operations. */
int sqlite_op_count_accounts(vg_store *store, int64_t *count, vg_error *err);
int sqlite_op_create_account(vg_store *store, const char *name,
                             int64_t credits, vg_account *out, vg_error *err);
int sqlite_op_get_account(vg_store *store, const char *id, vg_account *out,
                          vg_error *err);
int sqlite_op_grant_credits(vg_store *store, const char *account_id,
                            int64_t amount, const char *note, vg_error *err);
int sqlite_op_create_key(vg_store *store, const char *account_id,
                         const char *name, const char *key_hash,
                         const char *prefix, vg_api_key *out, vg_error *err);
int sqlite_op_find_key_by_hash(vg_store *store, const char *key_hash,
                               vg_api_key *out, vg_error *err);
int sqlite_op_get_key(vg_store *store, const char *id, vg_api_key *out,
                      vg_error *err);
int sqlite_op_revoke_key(vg_store *store, const char *id, vg_error *err);
int sqlite_op_keys_epoch(vg_store *store, uint64_t *epoch, vg_error *err);
int sqlite_op_list_keys(vg_store *store,
                        int (*each)(void *ctx, const vg_api_key *key,
                                    const vg_account *account),
                        void *ctx, vg_error *err);
int sqlite_op_set_key_limits(vg_store *store, const char *id, int rpm_limit,
                             int jobs_limit, vg_error *err);
int sqlite_op_ledger_rows(vg_store *store,
                          int (*each)(void *ctx, const vg_ledger_row *row),
                          void *ctx, vg_error *err);

/* ---- sqlite_jobs.c ---------------------------------------------------- */

/* Operations. */
int sqlite_op_create_job(vg_store *store, const vg_job *job,
                         const vg_job_create *opts, vg_job *existing,
                         vg_error *err);
int sqlite_op_create_job_async(vg_store *store, const vg_job *job,
                               const vg_job_create *opts, vg_job *existing,
                               vg_error *err, void (*done)(void *ctx, int rc),
                               void *ctx);
int sqlite_op_get_job(vg_store *store, const char *id, vg_job *out,
                      vg_error *err);
int sqlite_op_list_jobs(vg_store *store, const vg_job_query *query,
                        int (*each)(void *ctx, const vg_job *job), void *ctx,
                        vg_error *err);
int sqlite_op_start_job(vg_store *store, const char *id, int64_t now,
                        vg_error *err);
int sqlite_op_start_job_async(vg_store *store, const char *id, int64_t now,
                              const char *provider, vg_store_written done,
                              void *ctx, vg_error *err);
int sqlite_op_requeue_job(vg_store *store, const char *id, vg_error *err);
int sqlite_op_set_upstream(vg_store *store, const char *id,
                           const char *provider, const char *task,
                           vg_error *err);
int sqlite_op_set_upstream_async(vg_store *store, const char *id,
                                 const char *provider, const char *task,
                                 vg_store_written done, void *ctx,
                                 vg_error *err);
int sqlite_op_set_progress(vg_store *store, const char *id, int progress,
                           vg_error *err);
int sqlite_op_succeed_job(vg_store *store, const vg_job *job, vg_error *err);
int sqlite_op_succeed_job_async(vg_store *store, const vg_job *job,
                                vg_store_written done, void *ctx,
                                vg_error *err);
int sqlite_op_end_job(vg_store *store, const char *id, vg_job_state state,
                      const char *code, const char *message, int64_t now,
                      vg_error *err);
int sqlite_op_list_queued_jobs(vg_store *store, const char *provider,
                               int limit,
                               int (*each)(void *ctx, const vg_job *job),
                               void *ctx, vg_error *err);
int sqlite_op_list_unfinished_jobs(vg_store *store,
                                   int (*each)(void *ctx, const vg_job *job),
                                   void *ctx, vg_error *err);

/* ---- sqlite_webhooks.c ------------------------------------------------ */

/* Queues a job's webhook, inside the transaction that ends the job. */
int sqlite_queue_delivery(sqlite_store *s, const char *job_id, int64_t at,
                          vg_error *err);

/* Operations. */
int sqlite_op_get_webhook_secret(vg_store *store, const char *account_id,
                                 const char *candidate, char *out, size_t n,
                                 vg_error *err);
int sqlite_op_rotate_webhook_secret(vg_store *store, const char *account_id,
                                    const char *new_secret, vg_error *err);
int sqlite_op_claim_deliveries(vg_store *store, int64_t now, int64_t lease_ms,
                               int limit,
                               int (*each)(void *ctx, const vg_delivery *d),
                               void *ctx, vg_error *err);
int sqlite_op_finish_delivery(vg_store *store, const char *id,
                              const vg_delivery_outcome *outcome,
                              vg_error *err);
int sqlite_op_next_delivery_ms(vg_store *store, int64_t *when, vg_error *err);
int sqlite_op_list_deliveries(vg_store *store, const char *job_id,
                              int (*each)(void *ctx, const vg_delivery *d),
                              void *ctx, vg_error *err);

#endif
