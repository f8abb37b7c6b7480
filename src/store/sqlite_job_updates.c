/*
 * sqlite_job_updates.c - a job of the SQLite backend moved through its
 * states: started (also through the group commit, without waiting), its
 * progress and upstream task recorded, requeued, and ended, succeeding
 * (its reservation settled) or not (refunded).
 *
 * Job state changes are conditional UPDATEs on the current state, so of
 * several threads or processes finishing the same job exactly one changes
 * a row and moves money.
 */
#include "store/sqlite_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int update_job(sqlite_store *s, const char *sql, const char *id,
                      const char *verb, int (*bind)(sqlite3_stmt *, void *),
                      void *ctx, vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, id);
    b |= bind(stmt, ctx);
    int rc = sqlite_run(s, stmt, b, "updating a job", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = sqlite_job_not_changed(s, id, verb, err);
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

static const char start_sql[] =
    "UPDATE jobs SET state = 'running', started_ms = ?2,"
    " attempts = attempts + 1"
    " WHERE id = ?1 AND state = 'queued'";

int sqlite_op_start_job(vg_store *store, const char *id, int64_t now,
                        vg_error *err)
{
    int64_t at = now > 0 ? now : vg_now_ms();
    job_update u = {start_sql, id, "start", bind_int64_2, &at};
    return sqlite_write_tx(sqlite_store_of(store), update_job_in_tx, &u, err);
}

/* A job update queued for the group commit without waiting: it owns
 * copies of what its statement binds. */
typedef struct async_update {
    write_op op;
    job_update u;
    char id[37];
    char provider[64];
    int64_t at;
    vg_error err;
    vg_store_written done;
    void *done_ctx;
    char task[]; /* as long as the task handle: starts have none */
} async_update;

static void async_update_finished(write_op *op)
{
    async_update *a = (async_update *)op;
    a->done(a->done_ctx, op->rc, &a->err);
    free(a);
}

static int bind_start_upstream(sqlite3_stmt *stmt, void *ctx)
{
    const async_update *a = ctx;
    int rc = sqlite3_bind_int64(stmt, 2, a->at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 3, a->provider, -1, SQLITE_STATIC);
    return rc;
}

static int bind_async_upstream(sqlite3_stmt *stmt, void *ctx)
{
    const async_update *a = ctx;
    int rc = sqlite3_bind_text(stmt, 2, a->provider, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 3, a->task, -1, SQLITE_STATIC);
    return rc;
}

/* Copies id, provider and task into a new async_update; NULL (err set)
 * when one is too long or memory is short. */
static async_update *async_update_new(const char *id, const char *provider,
                                      const char *task, vg_store_written done,
                                      void *ctx, vg_error *err)
{
    if (strlen(id) >= sizeof(((async_update *)0)->id) ||
        (provider != NULL &&
         strlen(provider) >= sizeof(((async_update *)0)->provider)) ||
        (task != NULL && strlen(task) > VG_STORE_TASK_MAX)) {
        vg_store_task_too_long(err, id);
        return NULL;
    }
    size_t task_len = task != NULL ? strlen(task) : 0;
    async_update *a = calloc(1, sizeof(*a) + task_len + 1);
    if (a == NULL) {
        vg_store_out_of_memory(err, "queueing a job update");
        return NULL;
    }
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->provider, sizeof(a->provider), "%s",
             provider != NULL ? provider : "");
    memcpy(a->task, task != NULL ? task : "", task_len + 1);
    a->done = done;
    a->done_ctx = ctx;
    a->u.id = a->id;
    a->u.ctx = a;
    a->op.body = update_job_in_tx;
    a->op.ctx = &a->u;
    a->op.err = &a->err;
    a->op.finished = async_update_finished;
    return a;
}

int sqlite_op_start_job_async(vg_store *store, const char *id, int64_t now,
                              const char *provider, vg_store_written done,
                              void *ctx, vg_error *err)
{
    async_update *a = async_update_new(id, provider, NULL, done, ctx, err);
    if (a == NULL)
        return VG_STORE_ERROR;
    a->at = now > 0 ? now : vg_now_ms();
    a->u.verb = "start";
    if (provider == NULL) {
        a->u.sql = start_sql;
        a->u.bind = bind_int64_2;
        a->u.ctx = &a->at;
    } else {
        a->u.sql = "UPDATE jobs SET state = 'running', started_ms = ?2,"
                   " attempts = attempts + 1, provider = ?3,"
                   " upstream_task = '-'"
                   " WHERE id = ?1 AND state = 'queued'";
        a->u.bind = bind_start_upstream;
    }
    sqlite_enqueue_write(sqlite_store_of(store), &a->op);
    return VG_STORE_OK;
}

int sqlite_op_requeue_job(vg_store *store, const char *id, vg_error *err)
{
    /* The reservation stays open: the job will run again, and it is
     * settled or refunded once, when it ends. */
    job_update u = {"UPDATE jobs SET state = 'queued', progress = 0,"
                    " started_ms = NULL, upstream_task = NULL"
                    " WHERE id = ?1 AND state = 'running'",
                    id, "requeue", bind_nothing, NULL};
    return sqlite_write_tx(sqlite_store_of(store), update_job_in_tx, &u, err);
}

int sqlite_op_set_progress(vg_store *store, const char *id, int progress,
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
    return sqlite_write_tx(sqlite_store_of(store), update_job_in_tx, &u, err);
}

typedef struct upstream_binding {
    const char *provider, *task;
} upstream_binding;

static int bind_upstream(sqlite3_stmt *stmt, void *ctx)
{
    const upstream_binding *b = ctx;
    int rc = sqlite3_bind_text(stmt, 2, b->provider, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 3, b->task, -1, SQLITE_STATIC);
    return rc;
}

static const char set_upstream_sql[] =
    "UPDATE jobs SET provider = ?2, upstream_task = ?3"
    " WHERE id = ?1 AND state = 'running'";

int sqlite_op_set_upstream(vg_store *store, const char *id,
                           const char *provider, const char *task,
                           vg_error *err)
{
    if (strlen(provider) >= sizeof(((vg_job *)0)->provider) ||
        strlen(task) >= sizeof(((vg_job *)0)->upstream_task))
        return vg_store_task_too_long(err, id);
    upstream_binding b = {provider, task};
    job_update u = {set_upstream_sql, id, "record the upstream task of",
                    bind_upstream, &b};
    return sqlite_write_tx(sqlite_store_of(store), update_job_in_tx, &u, err);
}

int sqlite_op_set_upstream_async(vg_store *store, const char *id,
                                 const char *provider, const char *task,
                                 vg_store_written done, void *ctx,
                                 vg_error *err)
{
    async_update *a = async_update_new(id, provider, task, done, ctx, err);
    if (a == NULL)
        return VG_STORE_ERROR;
    a->u.sql = set_upstream_sql;
    a->u.verb = "record the upstream task of";
    a->u.bind = bind_async_upstream;
    sqlite_enqueue_write(sqlite_store_of(store), &a->op);
    return VG_STORE_OK;
}

/* Reads who pays for a job and how much, inside a transaction. */
static int job_charge(sqlite_store *s, const char *id, char account_id[37],
                      int64_t *price, vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(
        s, "SELECT account_id, price FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    int step = sqlite_bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        sqlite_copy_text(stmt, 0, account_id, 37);
        *price = sqlite3_column_int64(stmt, 1);
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "job", id);
    } else {
        rc = sqlite_fail(s, err, "reading a job");
    }
    sqlite_release(s, stmt);
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
        rc = sqlite_append_ledger(s, account_id, "settle", price, job->id, "",
                                  job->finished_ms, err);
    if (rc == VG_STORE_OK)
        rc = sqlite_queue_delivery(s, job->id, job->finished_ms, err);
    return rc;
}

int sqlite_op_succeed_job(vg_store *store, const vg_job *job, vg_error *err)
{
    vg_job done = *job;
    /* Keep the pointers out of the copy: they are not ours to touch. */
    done.request_json = NULL;
    done.webhook_url = NULL;
    if (done.finished_ms <= 0)
        done.finished_ms = vg_now_ms();
    return sqlite_write_tx(sqlite_store_of(store), succeed_job_in_tx, &done,
                           err);
}

typedef struct async_success {
    write_op op;
    vg_job job;
    vg_error err;
    vg_store_written done;
    void *done_ctx;
} async_success;

static void async_success_finished(write_op *op)
{
    async_success *a = (async_success *)op;
    a->done(a->done_ctx, op->rc, &a->err);
    free(a);
}

int sqlite_op_succeed_job_async(vg_store *store, const vg_job *job,
                                vg_store_written done, void *ctx,
                                vg_error *err)
{
    async_success *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return vg_store_out_of_memory(err, "queueing a job's success");
    a->job = *job;
    a->job.request_json = NULL;
    a->job.webhook_url = NULL;
    if (a->job.finished_ms <= 0)
        a->job.finished_ms = vg_now_ms();
    a->done = done;
    a->done_ctx = ctx;
    a->op.body = succeed_job_in_tx;
    a->op.ctx = &a->job;
    a->op.err = &a->err;
    a->op.finished = async_success_finished;
    sqlite_enqueue_write(sqlite_store_of(store), &a->op);
    return VG_STORE_OK;
}

typedef struct job_end {
    const char *id;
    const char *state, *code, *message;
    int64_t at;
} job_end;

static int bind_end(sqlite3_stmt *stmt, void *ctx)
{
    const job_end *end = ctx;
    int b = sqlite_bind_text(stmt, 2, end->state);
    b |= sqlite_bind_text(stmt, 3, end->code);
    b |= sqlite_bind_text(stmt, 4, end->message);
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
        rc = sqlite_move_balance(s, account_id, price, end->at, err);
    if (rc == VG_STORE_OK)
        rc = sqlite_append_ledger(s, account_id, "refund", price, id,
                                  end->state, end->at, err);
    if (rc == VG_STORE_OK)
        rc = sqlite_queue_delivery(s, id, end->at, err);
    return rc;
}

int sqlite_op_end_job(vg_store *store, const char *id, vg_job_state state,
                      const char *code, const char *message, int64_t now,
                      vg_error *err)
{
    if (vg_store_check_end(state, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    job_end end = {id, vg_job_state_name(state), code, message,
                   now > 0 ? now : vg_now_ms()};
    return sqlite_write_tx(sqlite_store_of(store), end_job_in_tx, &end, err);
}

/* Hands each job that sql (whose ?1 is a LIMIT, -1 for none) selects to
 * each, after the connection is released. */
/* Runs sql (?1 the limit, ?2 text when given) and hands each row out. */
