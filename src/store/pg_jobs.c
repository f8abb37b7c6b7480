/*
 * pg_jobs.c - the jobs of the PostgreSQL backend of store.h: created
 * with their reservation (vg_create_job decides on the idempotency key,
 * the key's limit and the balance with the account's row locked), moved
 * through their states by conditional updates, read and listed. The
 * asynchronous variants go through the batch writer (pg_batch.c); the
 * others are one call each on a pooled connection.
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ----------------------------------------------------------- */

/* Fills *out from row of a JOB_COLUMNS result; the only allocations are
 * request_json and webhook_url, which vg_job_clear frees. */
static int read_job(const PGresult *res, int row, vg_job *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    pg_col_text(res, row, 0, out->id, sizeof(out->id));
    pg_col_text(res, row, 1, out->account_id, sizeof(out->account_id));
    pg_col_text(res, row, 2, out->key_id, sizeof(out->key_id));
    if (!vg_store_parse_state(PQgetvalue(res, row, 3), &out->state))
        return vg_error_set(err, 500, "store_error", NULL,
                            "job %s has an unknown state", out->id);
    pg_col_text(res, row, 4, out->model, sizeof(out->model));
    pg_col_text(res, row, 5, out->provider, sizeof(out->provider));
    out->request_json = strdup(PQgetvalue(res, row, 6));
    if (out->request_json == NULL)
        return vg_store_out_of_memory(err, "reading a job");
    out->price = pg_col_int64(res, row, 7);
    out->seed = pg_col_int64(res, row, 8);
    out->width = (int)pg_col_int64(res, row, 9);
    out->height = (int)pg_col_int64(res, row, 10);
    out->progress = (int)pg_col_int64(res, row, 11);
    pg_col_text(res, row, 12, out->video_key, sizeof(out->video_key));
    out->prompt_tokens = pg_col_int64(res, row, 13);
    out->completion_tokens = pg_col_int64(res, row, 14);
    pg_col_text(res, row, 15, out->error_code, sizeof(out->error_code));
    pg_col_text(res, row, 16, out->error_message, sizeof(out->error_message));
    out->created_ms = pg_col_int64(res, row, 17);
    /* NULL (not started, not finished) reads as 0, as in vg_job. */
    out->started_ms = pg_col_int64(res, row, 18);
    out->finished_ms = pg_col_int64(res, row, 19);
    if (!PQgetisnull(res, row, 20)) {
        out->webhook_url = strdup(PQgetvalue(res, row, 20));
        if (out->webhook_url == NULL)
            return vg_store_out_of_memory(err, "reading a job");
    }
    out->flex = pg_col_bool(res, row, 21);
    out->attempts = (int)pg_col_int64(res, row, 22);
    pg_col_text(res, row, 23, out->upstream_task, sizeof(out->upstream_task));
    return VG_STORE_OK;
}

int pg_op_get_job(vg_store *store, const char *id, vg_job *out, vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, id);
    PGresult *res =
        pg_run(pg_store_of(store), PG_GET_JOB, &p, "reading a job", err);
    pg_params_clear(&p);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc;
    if (PQntuples(res) == 0) {
        rc = vg_store_not_found(err, "job", id);
    } else {
        rc = read_job(res, 0, out, err);
        if (rc != VG_STORE_OK)
            vg_job_clear(out);
    }
    PQclear(res);
    return rc;
}

/* Hands each job of a JOB_COLUMNS result to each. */
static int hand_out_jobs(PGresult *res, int (*each)(void *, const vg_job *),
                         void *ctx, vg_error *err)
{
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    for (int i = 0; rc == VG_STORE_OK && i < PQntuples(res); i++) {
        vg_job job;
        rc = read_job(res, i, &job, err);
        if (rc == VG_STORE_OK)
            rc = each(ctx, &job);
        vg_job_clear(&job);
    }
    PQclear(res);
    return rc;
}

int pg_op_list_jobs(vg_store *store, const vg_job_query *query,
                    int (*each)(void *ctx, const vg_job *job), void *ctx,
                    vg_error *err)
{
    if (vg_store_check_query(query, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    bool by_state = query->state != -1;
    bool after = query->after_id != NULL;
    static const enum pg_stmt shapes[2][2] = {
        {PG_LIST_JOBS, PG_LIST_JOBS_AFTER},
        {PG_LIST_JOBS_STATE, PG_LIST_JOBS_STATE_AFTER},
    };
    /* $1 account, $2 limit, then the cursor ($3, $4) and the state. */
    pg_params p = {0};
    pg_text(&p, query->account_id);
    pg_int(&p, query->limit);
    if (after) {
        pg_int(&p, query->after_created_ms);
        pg_text(&p, query->after_id);
    }
    if (by_state)
        pg_text(&p, vg_job_state_name((vg_job_state)query->state));
    PGresult *res = pg_run(pg_store_of(store), shapes[by_state][after], &p,
                           "listing jobs", err);
    pg_params_clear(&p);
    return hand_out_jobs(res, each, ctx, err);
}

int pg_op_list_queued_jobs(vg_store *store, const char *provider, int limit,
                           int (*each)(void *ctx, const vg_job *job),
                           void *ctx, vg_error *err)
{
    pg_params p = {0};
    pg_int(&p, limit);
    if (provider != NULL)
        pg_text(&p, provider);
    PGresult *res =
        pg_run(pg_store_of(store),
               provider != NULL ? PG_LIST_QUEUED_OF : PG_LIST_QUEUED, &p,
               "listing jobs", err);
    pg_params_clear(&p);
    return hand_out_jobs(res, each, ctx, err);
}

int pg_op_list_unfinished_jobs(vg_store *store,
                               int (*each)(void *ctx, const vg_job *job),
                               void *ctx, vg_error *err)
{
    PGresult *res = pg_run(pg_store_of(store), PG_LIST_UNFINISHED, NULL,
                           "listing jobs", err);
    return hand_out_jobs(res, each, ctx, err);
}

/* ---- creating ---------------------------------------------------------- */

/* What explaining a create's answer needs, and where the earlier job of
 * a replay goes. */
typedef struct create_info {
    pg_store *store;
    char id[37];
    char account_id[37];
    int64_t price;
    int max_unfinished;
    vg_job *existing; /* NULL: the caller does not want it */
} create_info;

static void create_params(pg_params *p, const vg_job *job,
                          const vg_job_create *opts)
{
    int64_t created = job->created_ms > 0 ? job->created_ms : vg_now_ms();
    bool keyed = opts != NULL && opts->idempotency_key != NULL;
    PG_FIELD(p, job->id);
    PG_FIELD(p, job->account_id);
    PG_FIELD(p, job->key_id);
    PG_FIELD(p, job->model);
    PG_FIELD(p, job->provider);
    pg_text(p, job->request_json != NULL ? job->request_json : "");
    pg_int(p, job->price);
    pg_int(p, job->seed);
    pg_int(p, job->width);
    pg_int(p, job->height);
    pg_int(p, created);
    /* "No webhook" is one value, NULL, however the caller spelled it. */
    if (job->webhook_url != NULL && job->webhook_url[0] != '\0')
        pg_text(p, job->webhook_url);
    else
        pg_null(p);
    pg_bool(p, job->flex);
    if (keyed) {
        pg_text(p, opts->idempotency_key);
        pg_text(p, opts->request_hash);
        pg_int(p,
               vg_store_idempotency_expiry(created, opts->idempotency_ttl_ms));
    } else {
        pg_null(p);
        pg_null(p);
        pg_int(p, 0);
    }
    pg_int(p, opts != NULL ? opts->max_unfinished : 0);
}

static void create_info_of(create_info *c, pg_store *s, const vg_job *job,
                           const vg_job_create *opts, vg_job *existing)
{
    memset(c, 0, sizeof(*c));
    c->store = s;
    snprintf(c->id, sizeof(c->id), "%.*s", (int)sizeof(job->id) - 1, job->id);
    snprintf(c->account_id, sizeof(c->account_id), "%.*s",
             (int)sizeof(job->account_id) - 1, job->account_id);
    c->price = job->price;
    c->max_unfinished = opts != NULL ? opts->max_unfinished : 0;
    c->existing = existing;
}

/* Turns vg_create_job's answer into create_job's; a replay's earlier job
 * is read only now, once the answer stands. */
static int explain_create(const create_info *c, int rc, const char *detail,
                          vg_error *err)
{
    switch (rc) {
    case VG_STORE_OK:
        return rc;
    case VG_STORE_NOT_FOUND:
        return vg_store_not_found(err, "account", c->account_id);
    case VG_STORE_CONFLICT:
        return vg_store_idempotency_conflict(err, detail);
    case VG_STORE_INSUFFICIENT:
        return vg_store_insufficient(err, c->price, strtoll(detail, NULL, 10));
    case VG_STORE_LIMIT:
        return vg_store_too_many_jobs(err, c->max_unfinished);
    case 6:
        return vg_store_job_exists(err, c->id);
    case VG_STORE_EXISTS:
        if (c->existing != NULL) {
            vg_job *job = c->existing;
            int got = pg_op_get_job(&c->store->base, detail, job, err);
            if (got == VG_STORE_NOT_FOUND)
                return vg_error_set(err, 500, "store_error", NULL,
                                    "idempotency key names missing job %s",
                                    detail);
            if (got != VG_STORE_OK)
                return got;
        }
        return VG_STORE_EXISTS;
    default:
        return vg_error_set(err, 500, "store_error", NULL,
                            "creating a job answered %d", rc);
    }
}

int pg_op_create_job(vg_store *store, const vg_job *job,
                     const vg_job_create *opts, vg_job *existing,
                     vg_error *err)
{
    if (vg_store_check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    pg_store *s = pg_store_of(store);
    create_info c;
    create_info_of(&c, s, job, opts, existing);
    pg_params p = {0};
    create_params(&p, job, opts);
    char detail[64];
    int rc = pg_call(s, PG_CREATE_JOB, &p, "creating a job", detail,
                     sizeof(detail), err);
    pg_params_clear(&p);
    if (rc == VG_STORE_ERROR)
        return rc;
    return explain_create(&c, rc, detail, err);
}

typedef struct async_create {
    pg_op op;
    create_info c;
    vg_error *err;
    void (*done)(void *ctx, int rc);
    void *done_ctx;
} async_create;

static int async_create_explain(pg_op *op, int rc, const char *detail,
                                vg_error *err)
{
    return explain_create(&((async_create *)op)->c, rc, detail, err);
}

static void async_create_finished(pg_op *op, int rc, const vg_error *err)
{
    async_create *a = (async_create *)op;
    if (rc != VG_STORE_OK && rc != VG_STORE_EXISTS && a->err != NULL)
        *a->err = *err;
    void (*done)(void *, int) = a->done;
    void *ctx = a->done_ctx;
    pg_params_clear(&a->op.params);
    free(a);
    done(ctx, rc);
}

int pg_op_create_job_async(vg_store *store, const vg_job *job,
                           const vg_job_create *opts, vg_job *existing,
                           vg_error *err, void (*done)(void *ctx, int rc),
                           void *ctx)
{
    if (vg_store_check_create(job, opts, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    pg_store *s = pg_store_of(store);
    async_create *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return vg_store_out_of_memory(err, "queueing a job");
    create_info_of(&a->c, s, job, opts, existing);
    create_params(&a->op.params, job, opts);
    a->op.stmt = PG_CREATE_JOB;
    a->op.what = "creating a job";
    a->op.explain = async_create_explain;
    a->op.finished = async_create_finished;
    a->err = err;
    a->done = done;
    a->done_ctx = ctx;
    pg_enqueue(s, &a->op);
    return VG_STORE_OK;
}

/* ---- state changes ----------------------------------------------------- */

/* Turns a job update's answer into its status: NOT_FOUND, or CONFLICT
 * naming the state the job is in. */
static int explain_update(int rc, const char *detail, const char *id,
                          const char *verb, vg_error *err)
{
    switch (rc) {
    case VG_STORE_OK:
        return rc;
    case VG_STORE_NOT_FOUND:
        return vg_store_not_found(err, "job", id);
    case VG_STORE_CONFLICT:
        return vg_store_job_conflict(err, verb, id, detail);
    default:
        return vg_error_set(err, 500, "store_error", NULL,
                            "updating job %s answered %d", id, rc);
    }
}

/* One blocking job update: the call, then its explanation. */
static int update(vg_store *store, enum pg_stmt stmt, pg_params *p,
                  const char *id, const char *verb, vg_error *err)
{
    char detail[64];
    int rc = pg_call(pg_store_of(store), stmt, p, "updating a job", detail,
                     sizeof(detail), err);
    pg_params_clear(p);
    if (rc == VG_STORE_ERROR)
        return rc;
    return explain_update(rc, detail, id, verb, err);
}

/* A job update queued for the batch writer. */
typedef struct async_update {
    pg_op op;
    char id[37];
    const char *verb;
    vg_store_written done;
    void *done_ctx;
} async_update;

static int async_update_explain(pg_op *op, int rc, const char *detail,
                                vg_error *err)
{
    async_update *a = (async_update *)op;
    return explain_update(rc, detail, a->id, a->verb, err);
}

static void async_update_finished(pg_op *op, int rc, const vg_error *err)
{
    async_update *a = (async_update *)op;
    a->done(a->done_ctx, rc, err);
    pg_params_clear(&a->op.params);
    free(a);
}

/* Queues the update (its params filled by the caller) and returns OK, or
 * frees it and fails at once. */
static int enqueue_update(vg_store *store, async_update *a, enum pg_stmt stmt,
                          const char *verb, vg_store_written done, void *ctx,
                          vg_error *err)
{
    if (a->op.params.failed) {
        pg_params_clear(&a->op.params);
        free(a);
        return vg_store_out_of_memory(err, "queueing a job update");
    }
    a->op.stmt = stmt;
    a->op.what = "updating a job";
    a->op.explain = async_update_explain;
    a->op.finished = async_update_finished;
    a->verb = verb;
    a->done = done;
    a->done_ctx = ctx;
    pg_enqueue(pg_store_of(store), &a->op);
    return VG_STORE_OK;
}

static async_update *async_update_new(const char *id, vg_error *err)
{
    if (strlen(id) >= sizeof(((async_update *)0)->id)) {
        vg_store_not_found(err, "job", id);
        return NULL;
    }
    async_update *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        vg_store_out_of_memory(err, "queueing a job update");
        return NULL;
    }
    snprintf(a->id, sizeof(a->id), "%s", id);
    return a;
}

static void start_params(pg_params *p, const char *id, int64_t now,
                         const char *provider)
{
    pg_text(p, id);
    pg_int(p, now > 0 ? now : vg_now_ms());
    pg_text(p, provider);
}

int pg_op_start_job(vg_store *store, const char *id, int64_t now,
                    vg_error *err)
{
    pg_params p = {0};
    start_params(&p, id, now, NULL);
    return update(store, PG_START_JOB, &p, id, "start", err);
}

int pg_op_start_job_async(vg_store *store, const char *id, int64_t now,
                          const char *provider, vg_store_written done,
                          void *ctx, vg_error *err)
{
    if (provider != NULL &&
        strlen(provider) >= sizeof(((vg_job *)0)->provider))
        return vg_store_task_too_long(err, id);
    async_update *a = async_update_new(id, err);
    if (a == NULL)
        return VG_STORE_ERROR;
    start_params(&a->op.params, id, now, provider);
    return enqueue_update(store, a, PG_START_JOB, "start", done, ctx, err);
}

int pg_op_requeue_job(vg_store *store, const char *id, vg_error *err)
{
    /* The reservation stays open: the job will run again, and it is
     * settled or refunded once, when it ends. */
    pg_params p = {0};
    pg_text(&p, id);
    return update(store, PG_REQUEUE_JOB, &p, id, "requeue", err);
}

int pg_op_set_progress(vg_store *store, const char *id, int progress,
                       vg_error *err)
{
    /* Progress is advisory (an upstream's estimate): clamped, not
     * refused. */
    pg_params p = {0};
    pg_text(&p, id);
    pg_int(&p, progress < 0 ? 0 : progress > 100 ? 100 : progress);
    return update(store, PG_SET_PROGRESS, &p, id, "update the progress of",
                  err);
}

static bool upstream_fits(const char *provider, const char *task)
{
    return strlen(provider) < sizeof(((vg_job *)0)->provider) &&
           strlen(task) <= VG_STORE_TASK_MAX;
}

int pg_op_set_upstream(vg_store *store, const char *id, const char *provider,
                       const char *task, vg_error *err)
{
    if (!upstream_fits(provider, task))
        return vg_store_task_too_long(err, id);
    pg_params p = {0};
    pg_text(&p, id);
    pg_text(&p, provider);
    pg_text(&p, task);
    return update(store, PG_SET_UPSTREAM, &p, id,
                  "record the upstream task of", err);
}

int pg_op_set_upstream_async(vg_store *store, const char *id,
                             const char *provider, const char *task,
                             vg_store_written done, void *ctx, vg_error *err)
{
    if (!upstream_fits(provider, task))
        return vg_store_task_too_long(err, id);
    async_update *a = async_update_new(id, err);
    if (a == NULL)
        return VG_STORE_ERROR;
    pg_text(&a->op.params, id);
    pg_text(&a->op.params, provider);
    pg_text(&a->op.params, task);
    return enqueue_update(store, a, PG_SET_UPSTREAM,
                          "record the upstream task of", done, ctx, err);
}

static void success_params(pg_params *p, const vg_job *job)
{
    PG_FIELD(p, job->id);
    PG_FIELD(p, job->video_key);
    pg_int(p, job->seed);
    pg_int(p, job->width);
    pg_int(p, job->height);
    pg_int(p, job->prompt_tokens);
    pg_int(p, job->completion_tokens);
    pg_int(p, job->finished_ms > 0 ? job->finished_ms : vg_now_ms());
}

int pg_op_succeed_job(vg_store *store, const vg_job *job, vg_error *err)
{
    pg_params p = {0};
    success_params(&p, job);
    return update(store, PG_SUCCEED_JOB, &p, job->id, "complete", err);
}

int pg_op_succeed_job_async(vg_store *store, const vg_job *job,
                            vg_store_written done, void *ctx, vg_error *err)
{
    async_update *a = async_update_new(job->id, err);
    if (a == NULL)
        return VG_STORE_ERROR;
    success_params(&a->op.params, job);
    return enqueue_update(store, a, PG_SUCCEED_JOB, "complete", done, ctx,
                          err);
}

int pg_op_end_job(vg_store *store, const char *id, vg_job_state state,
                  const char *code, const char *message, int64_t now,
                  vg_error *err)
{
    if (vg_store_check_end(state, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    pg_params p = {0};
    pg_text(&p, id);
    pg_text(&p, vg_job_state_name(state));
    pg_text(&p, code != NULL ? code : "");
    pg_text(&p, message != NULL ? message : "");
    pg_int(&p, now > 0 ? now : vg_now_ms());
    return update(store, PG_END_JOB, &p, id, "end", err);
}
