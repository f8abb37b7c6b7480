/*
 * pg_batch.c - the PostgreSQL backend's batch writer: the asynchronous
 * writes (creates, starts, upstream handles, successes) of every caller
 * go to one thread, which sends whatever is queued as one transaction in
 * libpq's pipeline mode: BEGIN, one function call per write, COMMIT, all
 * in one round trip and one commit. A burst of submits therefore costs
 * the database one flush of its log per batch rather than per submit,
 * and vidgate one round trip.
 *
 * Each write's answer is explained (turned into its status and error)
 * only once the COMMIT has succeeded: nothing is acknowledged before it
 * is durable. When the COMMIT itself fails, every write of the batch
 * fails with its error. When one call fails (an error the function did
 * not turn into an answer), that write fails alone and the others are
 * sent again in a new transaction; a deadlock or serialization failure
 * sends the whole batch again. When the connection is lost mid-batch the
 * writes fail with 503: the commit may or may not have happened, which
 * the caller cannot tell from a refusal (docs/scale-out.md).
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most writes one transaction carries: enough that a burst shares
 * few commits; bounded so that the first write of a long queue does not
 * wait for all of it, and so that the results of one pipeline stay well
 * inside the socket's buffers (libpq's pipeline is driven in blocking
 * mode here). */
#define BATCH_MAX 256
#define DETAIL_MAX 128

void pg_enqueue(pg_store *s, pg_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&s->queue_lock);
    if (s->queue_tail != NULL)
        s->queue_tail->next = op;
    else
        s->queue_head = op;
    s->queue_tail = op;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->queue_lock);
}

/* What one pipelined transaction came to. */
typedef struct batch_outcome {
    bool committed;
    bool retry;     /* rolled back by a deadlock: send it all again */
    bool lost;      /* the connection is gone: make a new one */
    int failed;     /* the write whose call failed, or -1 */
    vg_error cause; /* why, when not committed */
} batch_outcome;

/* Reads one query's result of the pipeline and the NULL after it. */
static PGresult *next_result(PGconn *conn)
{
    PGresult *res = PQgetResult(conn);
    if (res != NULL && PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PGresult *end = PQgetResult(conn);
        PQclear(end);
    }
    return res;
}

static bool sent(PGconn *conn, int ok, batch_outcome *out)
{
    if (ok == 1)
        return true;
    out->lost = true;
    pg_fail(conn, NULL, "sending a batch of writes", &out->cause);
    return false;
}

/* Sends ops[0..n) as one transaction and reads what came of it; the
 * answers of the calls go to rcs and details. */
static void send_batch(PGconn *conn, pg_op **ops, int n, int *rcs,
                       char (*details)[DETAIL_MAX], batch_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->failed = -1;
    if (PQenterPipelineMode(conn) != 1) {
        out->lost = true;
        pg_fail(conn, NULL, "starting a pipeline", &out->cause);
        return;
    }
    bool ok = sent(
        conn, PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0),
        out);
    for (int i = 0; ok && i < n; i++)
        ok = sent(conn,
                  PQsendQueryPrepared(
                      conn, pg_statement_name(ops[i]->stmt), ops[i]->params.n,
                      (const char *const *)ops[i]->params.values, NULL, NULL,
                      0),
                  out);
    ok = ok &&
         sent(conn,
              PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0),
              out);
    ok = ok && sent(conn, PQpipelineSync(conn), out);
    if (!ok) {
        PQexitPipelineMode(conn);
        return;
    }

    bool broken = false;
    PGresult *res = next_result(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        out->retry = pg_retryable(res);
        out->lost = pg_connection_lost(conn, res);
        pg_fail(conn, res, "starting a transaction", &out->cause);
        broken = true;
    }
    PQclear(res);
    for (int i = 0; i < n; i++) {
        res = next_result(conn);
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_TUPLES_OK) {
            rcs[i] = pg_answer(res, details[i], DETAIL_MAX, &ops[i]->err);
        } else if (status == PGRES_FATAL_ERROR && !broken) {
            out->retry = pg_retryable(res);
            out->lost = pg_connection_lost(conn, res);
            out->failed = i;
            pg_fail(conn, res, ops[i]->what, &out->cause);
            broken = true;
        }
        PQclear(res);
    }
    res = next_result(conn);
    if (PQresultStatus(res) == PGRES_COMMAND_OK && !broken) {
        out->committed = true;
    } else if (!broken) {
        out->retry = pg_retryable(res);
        out->lost = pg_connection_lost(conn, res);
        pg_fail(conn, res, "committing", &out->cause);
    }
    PQclear(res);
    /* The sync's own result ends the pipeline. */
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && out->committed) {
        out->committed = false;
        pg_fail(conn, res, "ending a batch of writes", &out->cause);
    }
    PQclear(res);
    PQexitPipelineMode(conn);
    /* A call that failed leaves the transaction open and aborted. */
    if (PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
}

static void finish(pg_op *op, int rc)
{
    op->rc = rc;
    op->finished(op, rc, &op->err);
}

static void fail(pg_op *op, const vg_error *cause)
{
    op->err = *cause;
    finish(op, VG_STORE_ERROR);
}

/* Runs a batch of n writes until every one has its answer. */
static void run_batch(pg_store *s, pg_op **ops, int n)
{
    int rcs[BATCH_MAX];
    char(*details)[DETAIL_MAX] = calloc((size_t)n, DETAIL_MAX);
    vg_error cause;
    if (details == NULL) {
        vg_store_out_of_memory(&cause, "running a batch of writes");
        for (int i = 0; i < n; i++)
            fail(ops[i], &cause);
        return;
    }
    for (int attempt = 0; n > 0;) {
        for (int i = 0; i < n; i++)
            if (ops[i]->params.failed) {
                vg_store_out_of_memory(&cause, ops[i]->what);
                fail(ops[i], &cause);
                memmove(&ops[i], &ops[i + 1],
                        (size_t)(n - i - 1) * sizeof(*ops));
                n--;
                i--;
            }
        if (n == 0)
            break;
        /* A lost connection is replaced before the batch, so the store
         * reconnects by itself once the database is back. */
        if (s->writer_conn != NULL &&
            PQstatus(s->writer_conn->conn) != CONNECTION_OK) {
            pg_disconnect(s->writer_conn);
            s->writer_conn = NULL;
        }
        if (s->writer_conn == NULL)
            s->writer_conn = pg_connect(s, &cause);
        if (s->writer_conn == NULL) {
            for (int i = 0; i < n; i++)
                fail(ops[i], &cause);
            break;
        }
        batch_outcome out;
        for (int i = 0; i < n; i++)
            rcs[i] = VG_STORE_ERROR;
        send_batch(s->writer_conn->conn, ops, n, rcs, details, &out);
        if (out.lost) {
            pg_disconnect(s->writer_conn);
            s->writer_conn = NULL;
        }
        if (out.committed) {
            for (int i = 0; i < n; i++) {
                int rc = rcs[i];
                if (rc != VG_STORE_ERROR)
                    rc = ops[i]->explain(ops[i], rc, details[i], &ops[i]->err);
                finish(ops[i], rc);
            }
            break;
        }
        if (out.retry && attempt < PG_RETRIES) {
            attempt++;
            continue;
        }
        if (out.failed < 0) {
            for (int i = 0; i < n; i++)
                fail(ops[i], &out.cause);
            break;
        }
        /* One call failed: it alone, and the rest again. */
        fail(ops[out.failed], &out.cause);
        memmove(&ops[out.failed], &ops[out.failed + 1],
                (size_t)(n - out.failed - 1) * sizeof(*ops));
        n--;
    }
    free(details);
}

/* The writer thread: takes what is queued, BATCH_MAX at a time, and runs
 * it (run_batch); drains the queue before it returns at close. The
 * callbacks run here: they must not wait on the store. */
void *pg_writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-store");
    pg_store *s = arg;
    pg_op *ops[BATCH_MAX];
    pthread_mutex_lock(&s->queue_lock);
    for (;;) {
        if (s->queue_head == NULL) {
            if (s->closing)
                break;
            pthread_cond_wait(&s->work, &s->queue_lock);
            continue;
        }
        int n = 0;
        while (n < BATCH_MAX && s->queue_head != NULL) {
            ops[n++] = s->queue_head;
            s->queue_head = s->queue_head->next;
        }
        if (s->queue_head == NULL)
            s->queue_tail = NULL;
        pthread_mutex_unlock(&s->queue_lock);
        run_batch(s, ops, n);
        pthread_mutex_lock(&s->queue_lock);
    }
    pthread_mutex_unlock(&s->queue_lock);
    return NULL;
}
