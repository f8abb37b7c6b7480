/*
 * jobs_api.c - the job API: GET /v1/ula/jobs/{id}, GET /v1/ula/jobs and
 * DELETE /v1/ula/jobs/{id}.
 *
 * A job is its account's alone: another account's job answers 404 like a
 * missing one, so ids cannot be probed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/log.h"
#include "util/parse.h"

#define DEFAULT_PAGE 20
#define MAX_PAGE 100

int vg_api_load_job(vg_app *app, vg_http_request *req, const char *id,
                    vg_job *job, bool *answered)
{
    vg_error err;
    *answered = false;
    int rc = app->store->ops->get_job(app->store, id, job, &err);
    if (rc == VG_STORE_OK &&
        strcmp(job->account_id, req->principal.account_id) != 0) {
        vg_job_clear(job);
        rc = VG_STORE_NOT_FOUND;
    }
    if (rc == VG_STORE_OK)
        return 0;
    *answered = true;
    if (rc == VG_STORE_NOT_FOUND)
        vg_error_set(&err, 404, "job_not_found", NULL,
                     "no job %.40s in this account", id);
    return vg_http_send_error(req, &err);
}

int vg_api_get_job(vg_app *app, vg_http_request *req)
{
    vg_job job;
    bool answered;
    int rc = vg_api_load_job(app, req, req->params[0], &job, &answered);
    if (answered)
        return rc;
    rc = vg_http_send_success(req, 200, vg_api_job_json(app, &job,
                                                        &req->arena),
                              "Job fetched successfully.");
    vg_job_clear(&job);
    return rc;
}

int vg_api_cancel_job(vg_app *app, vg_http_request *req)
{
    vg_job job;
    vg_error err;
    if (vg_jobs_cancel(app->jobs, req->principal.account_id, req->params[0],
                       &job, &err) != 0)
        return vg_http_send_error(req, &err);
    int rc = vg_http_send_success(req, 200,
                                  vg_api_job_json(app, &job, &req->arena),
                                  "The job was cancelled and its credits "
                                  "refunded.");
    vg_job_clear(&job);
    return rc;
}

typedef struct page {
    vg_app *app;
    vg_http_request *req;
    json_t *items;
    int wanted; /* the page size; one more row is read to see if more */
    int count;
    char last_id[37];
    int64_t last_created;
} page;

static int add_job(void *ctx, const vg_job *job)
{
    page *p = ctx;
    if (p->count++ >= p->wanted)
        return 0; /* the extra row: there is a next page */
    json_array_append_new(p->items,
                          vg_api_job_json(p->app, job, &p->req->arena));
    memcpy(p->last_id, job->id, sizeof(p->last_id));
    p->last_created = job->created_ms;
    return 0;
}

/* Cursors are "<created ms>.<job id>" of the last job of the previous
 * page: opaque to clients, and stable while new jobs arrive. */
static int parse_cursor(const char *cursor, int64_t *created, char id[37])
{
    const char *dot = strchr(cursor, '.');
    char number[24];
    if (dot == NULL || (size_t)(dot - cursor) >= sizeof(number) ||
        strlen(dot + 1) != 36)
        return -1;
    memcpy(number, cursor, (size_t)(dot - cursor));
    number[dot - cursor] = '\0';
    if (vg_parse_int64(number, created) != 0 || *created < 0)
        return -1;
    for (const char *p = dot + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
              *p == '-'))
            return -1;
    memcpy(id, dot + 1, 37);
    return 0;
}

int vg_api_list_jobs(vg_app *app, vg_http_request *req)
{
    vg_error err;
    vg_job_query q = {req->principal.account_id, -1, 0, NULL, DEFAULT_PAGE};
    const char *status = vg_http_query(req, "status");
    const char *limit = vg_http_query(req, "limit");
    const char *cursor = vg_http_query(req, "cursor");
    char after_id[37];
    if (status != NULL) {
        static const vg_job_state states[] = {
            VG_JOB_QUEUED, VG_JOB_RUNNING, VG_JOB_SUCCEEDED, VG_JOB_FAILED,
            VG_JOB_CANCELLED};
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
            if (strcmp(status, vg_job_state_name(states[i])) == 0)
                q.state = (int)states[i];
        if (q.state < 0) {
            vg_error_set(&err, 422, "validation_error", "status",
                         "\"status\" must be one of queued, running, "
                         "succeeded, failed, cancelled");
            return vg_http_send_error(req, &err);
        }
    }
    if (limit != NULL) {
        int64_t n;
        if (vg_parse_int64(limit, &n) != 0 || n < 1 || n > MAX_PAGE) {
            vg_error_set(&err, 422, "validation_error", "limit",
                         "\"limit\" must be a whole number from 1 to %d",
                         MAX_PAGE);
            return vg_http_send_error(req, &err);
        }
        q.limit = (int)n;
    }
    if (cursor != NULL && *cursor != '\0') {
        if (parse_cursor(cursor, &q.after_created_ms, after_id) != 0) {
            vg_error_set(&err, 422, "validation_error", "cursor",
                         "\"cursor\" is not one this server gave out; use "
                         "the next_cursor of the previous page");
            return vg_http_send_error(req, &err);
        }
        q.after_id = after_id;
    }
    page p = {app, req, json_array(), q.limit, 0, "", 0};
    q.limit++;
    if (app->store->ops->list_jobs(app->store, &q, add_job, &p, &err) !=
        VG_STORE_OK) {
        json_decref(p.items);
        return vg_http_send_error(req, &err);
    }
    bool more = p.count > p.wanted;
    json_t *next = more ? json_string(vg_arena_sprintf(
                              &req->arena, "%lld.%s",
                              (long long)p.last_created, p.last_id))
                        : json_null();
    return vg_http_send_success(
        req, 200,
        json_pack("{s:o,s:b,s:o}", "jobs", p.items, "has_more", more,
                  "next_cursor", next),
        "Jobs fetched successfully.");
}
