/*
 * sqlite_commit.c - the SQLite backend's group commit.
 *
 * Writes go through a group commit (sqlite_write_tx). With synchronous=FULL
 * every COMMIT waits for an fsync, which costs more than all the statements of
 * a job creation together, so one transaction per write would cap the server
 * at a few thousand writes a second however many threads it has. Instead,
 * writes are queued for one writer thread, which runs whatever is queued as a
 * batch inside one BEGIN IMMEDIATE ... COMMIT: one fsync for the whole batch.
 * Each operation runs inside its own SAVEPOINT, so one that is refused
 * (insufficient credits, a conflict) rolls back only itself, and each caller
 * gets its result only once the COMMIT has succeeded: nothing is acknowledged
 * before it is durable. Callers either block until then (sqlite_write_tx) or
 * are called back (create_job_async, so an HTTP thread can serve other
 * requests while its submit waits). The writer holds the connection mutex for
 * the whole batch, so reads never see rows of a transaction that may still
 * fail.
 */
#include "store/sqlite_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

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
    bool broken =
        sqlite_run_sql(s, "BEGIN IMMEDIATE", "starting a transaction",
                       &cause) != VG_STORE_OK;
    for (write_op *op = batch; op != NULL && !broken; op = op->next) {
        if (sqlite_run_sql(s, "SAVEPOINT vg_write", "starting a savepoint",
                           &cause) != VG_STORE_OK) {
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
            sqlite_run_sql(s, "ROLLBACK TO vg_write",
                           "rolling back a savepoint", &cause) != VG_STORE_OK)
            broken = true;
        else if (sqlite_run_sql(s, "RELEASE vg_write", "releasing a savepoint",
                                &cause) != VG_STORE_OK)
            broken = true;
    }
    if (!broken &&
        sqlite_run_sql(s, "COMMIT", "committing", &cause) != VG_STORE_OK)
        broken = true;
    if (!broken)
        return;
    sqlite_rollback(s);
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
        vg_monotonic_ns() - s->last_batch_end_ns > BURST_NS)
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
void *sqlite_writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-store");
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
        s->last_batch_end_ns = vg_monotonic_ns();
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

void sqlite_enqueue_write(sqlite_store *s, write_op *op)
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
int sqlite_write_tx(sqlite_store *s,
                    int (*body)(sqlite_store *s, void *ctx, vg_error *err),
                    void *ctx, vg_error *err)
{
    write_op op;
    memset(&op, 0, sizeof(op));
    op.body = body;
    op.ctx = ctx;
    op.err = err;
    pthread_cond_init(&op.wake, NULL);
    sqlite_enqueue_write(s, &op);
    pthread_mutex_lock(&s->queue_lock);
    while (!op.done)
        pthread_cond_wait(&op.wake, &s->queue_lock);
    pthread_mutex_unlock(&s->queue_lock);
    pthread_cond_destroy(&op.wake);
    return op.rc;
}

/* Adds a zeroed row to rows (see row_buffer); NULL when out of memory. */
void *sqlite_row_buffer_add(row_buffer *rows)
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

/* Steps a bound query to its end, reading every row into rows with read
 * (read_job, read_delivery); `what` names the query in errors. */
int sqlite_gather_rows(sqlite_store *s, sqlite3_stmt *stmt, row_buffer *rows,
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
        void *row = sqlite_row_buffer_add(rows);
        if (row == NULL) {
            rc = vg_store_out_of_memory(err, what);
            break;
        }
        rc = read(stmt, row, err);
        if (rc != VG_STORE_OK)
            break;
    }
    if (rc == VG_STORE_OK && step != SQLITE_DONE)
        rc = sqlite_fail(s, err, what);
    return rc;
}
