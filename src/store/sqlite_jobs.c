/*
 * sqlite_jobs.c - the jobs of the SQLite backend of store.h: creating one
 * together with its credit reservation (checking its idempotency key and
 * its key's limit of unfinished jobs), reading and listing them. A create
 * can also be handed to the group commit without waiting for it
 * (sqlite_op_create_job_async): the caller is called back once the job
 * is durable. Their state changes are in sqlite_job_updates.c.
 */
#include "store/sqlite_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every column of a vg_job, in the order read_job expects. */
#define JOB_COLUMNS                                                           \
    "id, account_id, key_id, state, model, provider, request_json, price, "   \
    "seed, width, height, progress, video_key, prompt_tokens, "               \
    "completion_tokens, error_code, error_message, created_ms, started_ms, "  \
    "finished_ms, webhook_url, flex, attempts, upstream_task"

/* Binds s, or NULL for a missing or empty string. */
static int bind_optional_text(sqlite3_stmt *stmt, int i, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return sqlite3_bind_null(stmt, i);
    return sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

/* Fills *out from a row of JOB_COLUMNS; the only allocations are
 * request_json and webhook_url, which vg_job_clear frees. */
static int read_job(sqlite3_stmt *stmt, vg_job *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    sqlite_copy_text(stmt, 0, out->id, sizeof(out->id));
    sqlite_copy_text(stmt, 1, out->account_id, sizeof(out->account_id));
    sqlite_copy_text(stmt, 2, out->key_id, sizeof(out->key_id));
    const char *state = (const char *)sqlite3_column_text(stmt, 3);
    if (state == NULL || !vg_store_parse_state(state, &out->state))
        return vg_error_set(err, 500, "store_error", NULL,
                            "job %s has an unknown state", out->id);
    sqlite_copy_text(stmt, 4, out->model, sizeof(out->model));
    sqlite_copy_text(stmt, 5, out->provider, sizeof(out->provider));
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
    sqlite_copy_text(stmt, 12, out->video_key, sizeof(out->video_key));
    out->prompt_tokens = sqlite3_column_int64(stmt, 13);
    out->completion_tokens = sqlite3_column_int64(stmt, 14);
    sqlite_copy_text(stmt, 15, out->error_code, sizeof(out->error_code));
    sqlite_copy_text(stmt, 16, out->error_message, sizeof(out->error_message));
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
    sqlite_copy_text(stmt, 23, out->upstream_task, sizeof(out->upstream_task));
    return VG_STORE_OK;
}

/* Reads one job by id; on success the caller owns what *out points to. */
static int select_job(sqlite_store *s, const char *id, vg_job *out,
                      vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(
        s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        rc = read_job(stmt, out, err);
        if (rc != VG_STORE_OK)
            vg_job_clear(out);
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "job", id);
    } else {
        rc = sqlite_fail(s, err, "reading a job");
    }
    sqlite_release(s, stmt);
    return rc;
}

/* Explains why a conditional UPDATE of a job changed nothing. */
int sqlite_job_not_changed(sqlite_store *s, const char *id, const char *verb,
                           vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s, "SELECT state FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        rc = vg_store_job_conflict(err, verb, id,
                                   (const char *)sqlite3_column_text(stmt, 0));
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "job", id);
    } else {
        rc = sqlite_fail(s, err, "reading a job");
    }
    sqlite_release(s, stmt);
    return rc;
}

static int job_exists(sqlite_store *s, const char *id, bool *exists,
                      vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s, "SELECT 1 FROM jobs WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    int step = sqlite_bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW || step == SQLITE_DONE)
        *exists = step == SQLITE_ROW;
    else
        rc = sqlite_fail(s, err, "reading a job");
    sqlite_release(s, stmt);
    return rc;
}

static int insert_job(sqlite_store *s, const vg_job *job, int64_t created,
                      vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(
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
    b |= sqlite_bind_text(stmt, 6, job->request_json);
    b |= sqlite3_bind_int64(stmt, 7, job->price);
    b |= sqlite3_bind_int64(stmt, 8, job->seed);
    b |= sqlite3_bind_int(stmt, 9, job->width);
    b |= sqlite3_bind_int(stmt, 10, job->height);
    b |= sqlite3_bind_int64(stmt, 11, created);
    /* "No webhook" is one value, NULL, however the caller spelled it. */
    b |= bind_optional_text(stmt, 12, job->webhook_url);
    b |= sqlite3_bind_int(stmt, 13, job->flex ? 1 : 0);
    return sqlite_run(s, stmt, b, "creating a job", err);
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
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "SELECT request_hash, job_id, expires_ms"
                       " FROM idempotency_keys"
                       " WHERE account_id = ?1 AND key = ?2",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int step = BIND_FIELD(stmt, 1, c->job->account_id);
    step |= sqlite_bind_text(stmt, 2, opts->idempotency_key);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        int rc = step == SQLITE_DONE
                     ? VG_STORE_OK
                     : sqlite_fail(s, err, "reading an idempotency key");
        sqlite_release(s, stmt);
        return rc;
    }
    const char *hash = (const char *)sqlite3_column_text(stmt, 0);
    bool same = hash != NULL && strcmp(hash, opts->request_hash) == 0;
    char job_id[37];
    sqlite_copy_text(stmt, 1, job_id, sizeof(job_id));
    bool expired = sqlite3_column_int64(stmt, 2) <= now;
    sqlite_release(s, stmt);

    if (expired) {
        stmt = sqlite_prepare(s,
                              "DELETE FROM idempotency_keys"
                              " WHERE account_id = ?1 AND key = ?2",
                              err);
        if (stmt == NULL)
            return VG_STORE_ERROR;
        int b = BIND_FIELD(stmt, 1, c->job->account_id);
        b |= sqlite_bind_text(stmt, 2, opts->idempotency_key);
        return sqlite_run(s, stmt, b, "forgetting an idempotency key", err);
    }
    if (!same)
        return vg_store_idempotency_conflict(err, job_id);
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
    int64_t expires =
        vg_store_idempotency_expiry(now, opts->idempotency_ttl_ms);
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "INSERT INTO idempotency_keys (account_id,"
                       " key, request_hash, job_id, created_ms,"
                       " expires_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = BIND_FIELD(stmt, 1, c->job->account_id);
    b |= sqlite_bind_text(stmt, 2, opts->idempotency_key);
    b |= sqlite_bind_text(stmt, 3, opts->request_hash);
    b |= BIND_FIELD(stmt, 4, c->job->id);
    b |= sqlite3_bind_int64(stmt, 5, now);
    b |= sqlite3_bind_int64(stmt, 6, expires);
    return sqlite_run(s, stmt, b, "storing an idempotency key", err);
}

/* LIMIT when the job's key already has max queued or running jobs. */
static int check_unfinished_limit(sqlite_store *s, const vg_job *job, int max,
                                  vg_error *err)
{
    /* Counting stops at the limit: a key far over it (its limit lowered
     * since) costs no more than one at it. */
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
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
        rc = sqlite_fail(s, err, "counting unfinished jobs");
    else if (sqlite3_column_int(stmt, 0) >= max)
        rc = VG_STORE_LIMIT;
    sqlite_release(s, stmt);
    if (rc == VG_STORE_LIMIT)
        return vg_store_too_many_jobs(err, max);
    return rc;
}

static int create_job_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    job_create *c = arg;
    const vg_job *job = c->job;
    const vg_job_create *opts = c->opts;
    int64_t created = job->created_ms > 0 ? job->created_ms : vg_now_ms();
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
    if (exists)
        return vg_store_job_exists(err, job->id);
    vg_account a;
    rc = sqlite_select_account(s, job->account_id, &a, err);
    if (rc != VG_STORE_OK)
        return rc;
    if (opts != NULL && opts->max_unfinished > 0)
        rc = check_unfinished_limit(s, job, opts->max_unfinished, err);
    if (rc != VG_STORE_OK)
        return rc;
    /* The write lock taken by BEGIN IMMEDIATE is held from this read to
     * the commit, so no other writer can spend the same credits. */
    if (a.balance < job->price)
        return vg_store_insufficient(err, job->price, a.balance);
    rc = sqlite_move_balance(s, a.id, -job->price, created, err);
    if (rc == VG_STORE_OK)
        rc = insert_job(s, job, created, err);
    if (rc == VG_STORE_OK)
        rc = sqlite_append_ledger(s, a.id, "reserve", job->price, job->id, "",
                                  created, err);
    if (rc == VG_STORE_OK && keyed)
        rc = remember_idempotency(s, c, created, err);
    return rc;
}

int sqlite_op_create_job(vg_store *store, const vg_job *job,
                         const vg_job_create *opts, vg_job *existing,
                         vg_error *err)
{
    if (vg_store_check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    job_create c;
    memset(&c, 0, sizeof(c));
    c.job = job;
    c.opts = opts;
    c.want_existing = existing != NULL;
    int rc =
        sqlite_write_tx(sqlite_store_of(store), create_job_in_tx, &c, err);
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

int sqlite_op_create_job_async(vg_store *store, const vg_job *job,
                               const vg_job_create *opts, vg_job *existing,
                               vg_error *err, void (*done)(void *ctx, int rc),
                               void *ctx)
{
    if (vg_store_check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    async_create *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return vg_store_out_of_memory(err, "queueing a job");
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
    sqlite_enqueue_write(sqlite_store_of(store), &a->op);
    return VG_STORE_OK;
}

int sqlite_op_get_job(vg_store *store, const char *id, vg_job *out,
                      vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
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

static int read_job_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    return read_job(stmt, out, err);
}

static int gather_jobs(sqlite_store *s, sqlite3_stmt *stmt, row_buffer *rows,
                       vg_error *err)
{
    return sqlite_gather_rows(s, stmt, rows, read_job_row, "listing jobs",
                              err);
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

int sqlite_op_list_jobs(vg_store *store, const vg_job_query *query,
                        int (*each)(void *ctx, const vg_job *job), void *ctx,
                        vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    if (vg_store_check_query(query, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    bool by_state = query->state != -1;
    bool after = query->after_id != NULL;

    row_buffer rows = {NULL, 0, 0, sizeof(vg_job)};
    int rc = VG_STORE_ERROR;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt =
        sqlite_prepare(s, list_jobs_sql[by_state][after], err);
    if (stmt != NULL) {
        const char *state =
            by_state ? vg_job_state_name((vg_job_state)query->state) : "";
        int b = sqlite_bind_text(stmt, 1, query->account_id);
        b |= sqlite_bind_text(stmt, 2, state);
        b |= sqlite3_bind_int64(stmt, 3, query->after_created_ms);
        b |= sqlite_bind_text(stmt, 4, query->after_id);
        b |= sqlite3_bind_int(stmt, 5, query->limit);
        if (b != SQLITE_OK)
            rc = sqlite_fail(s, err, "listing jobs");
        else
            rc = gather_jobs(s, stmt, &rows, err);
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_jobs(&rows, rc, each, ctx);
}

/* Runs a conditional single-statement job update whose ?1 is the job id;
 * when it changed nothing, says whether the job is missing or in another
 * state. bind binds the other parameters. */
static int list_jobs_by(vg_store *store, const char *sql, int limit,
                        const char *text,
                        int (*each)(void *ctx, const vg_job *job), void *ctx,
                        vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_job)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = sqlite_prepare(s, sql, err);
    if (stmt != NULL) {
        if (sqlite3_bind_int(stmt, 1, limit) != SQLITE_OK ||
            (text != NULL &&
             sqlite3_bind_text(stmt, 2, text, -1, SQLITE_STATIC) != SQLITE_OK))
            rc = sqlite_fail(s, err, "listing jobs");
        else
            rc = gather_jobs(s, stmt, &rows, err);
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_jobs(&rows, rc, each, ctx);
}

int sqlite_op_list_queued_jobs(vg_store *store, const char *provider,
                               int limit,
                               int (*each)(void *ctx, const vg_job *job),
                               void *ctx, vg_error *err)
{
    /* jobs_state_created, and jobs_queued_provider for one provider,
     * serve the order and the limit. */
    if (provider != NULL)
        return list_jobs_by(store,
                            "SELECT " JOB_COLUMNS " FROM jobs"
                            " WHERE state = 'queued' AND provider = ?2"
                            " ORDER BY created_ms, rowid LIMIT ?1",
                            limit, provider, each, ctx, err);
    return list_jobs_by(store,
                        "SELECT " JOB_COLUMNS " FROM jobs"
                        " WHERE state = 'queued'"
                        " ORDER BY created_ms, rowid LIMIT ?1",
                        limit, NULL, each, ctx, err);
}

int sqlite_op_list_unfinished_jobs(vg_store *store,
                                   int (*each)(void *ctx, const vg_job *job),
                                   void *ctx, vg_error *err)
{
    return list_jobs_by(store,
                        "SELECT " JOB_COLUMNS " FROM jobs"
                        " WHERE state IN ('queued', 'running')"
                        " ORDER BY created_ms, rowid LIMIT ?1",
                        -1, NULL, each, ctx, err);
}
