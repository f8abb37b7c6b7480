/*
 * video_api.c - POST /v1/ula/generate-video.
 *
 * Validates the request (JSON, or multipart where every field is a string
 * and images come as `files` parts) and submits a job that reserves its
 * price. With "Prefer: respond-async" the answer is 202 and the job at
 * once; otherwise the connection is suspended until the job ends (the
 * seed page's 200 envelope) or the wait runs out (Prefer: wait=N, or the
 * server's max_sync_wait_s), which answers 202 like the async case. A
 * client that goes away does not cancel the job.
 *
 * Image URLs in a JSON body's "files" take seconds to fetch, and an HTTP
 * thread that waited for them would stall every other client it serves.
 * So the request is suspended while the app's fetcher downloads them,
 * and validation then runs with the files, as if they had been uploaded:
 * the same checks in the same order, whichever way the images came.
 * A webhook_url's host is resolved the same way, by the fetcher, after
 * validation and before the job is committed.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/request.h"
#include "util/log.h"
#include "util/parse.h"

/* Turns a multipart body into the JSON the validator reads. */
static json_t *form_to_json(vg_app *app, vg_http_request *req,
                            vg_video_request *video, vg_error *err)
{
    json_t *body = json_object();
    const char *name;
    json_t *field;
    json_object_foreach(req->form, name, field) {
        if (vg_request_field_type(name) == VG_FIELD_UNKNOWN)
            continue;
        if (!vg_utf8_valid(json_string_value(field),
                           json_string_length(field))) {
            vg_error_set(err, 422, "validation_error", name,
                         "\"%s\" is not valid UTF-8", name);
            goto fail;
        }
        if (vg_request_form_field(body, name, json_string_value(field),
                                  err) != 0)
            goto fail;
    }
    /* MHD lists the parts last-first; images keep the client's order. */
    vg_upload *parts[VG_MAX_IMAGES * 2];
    int n = 0;
    for (vg_upload *u = req->uploads; u != NULL && n < VG_MAX_IMAGES * 2;
         u = u->next)
        parts[n++] = u;
    for (int i = n - 1; i >= 0; i--) {
        vg_upload *u = parts[i];
        if (strcmp(u->field, "files") != 0 &&
            strcmp(u->field, "files[]") != 0) {
            vg_error_set(err, 422, "validation_error", u->field,
                         "files must be sent in parts named \"files\", "
                         "not \"%s\"",
                         u->field);
            goto fail;
        }
        if (vg_request_add_image(video, &app->config.request_limits,
                                 u->path, &req->arena, err) != 0)
            goto fail;
    }
    return body;
fail:
    json_decref(body);
    return NULL;
}

/* "Idempotency-Key": 1 to 255 visible ASCII characters. */
static int check_idempotency_key(const char *key, vg_error *err)
{
    size_t n = strlen(key);
    bool ok = n >= 1 && n <= 255;
    for (const char *p = key; ok && *p; p++)
        ok = *p >= 0x20 && *p <= 0x7e;
    if (!ok)
        return vg_error_set(err, 400, "invalid_idempotency_key", NULL,
                            "Idempotency-Key must be 1 to 255 visible "
                            "ASCII characters");
    return 0;
}

static vg_prefer preferences(vg_http_request *req)
{
    vg_prefer prefer = {false, -1};
    vg_parse_prefer(vg_http_header_all(req, "Prefer"), &prefer);
    return prefer;
}

static void add_job_headers(vg_http_request *req, const vg_job *job)
{
    char seed[24];
    snprintf(seed, sizeof(seed), "%lld", (long long)job->seed);
    vg_http_add_header(req, "X-Vidgate-Seed", seed);
    vg_http_add_header(req, "X-Vidgate-Job", job->id);
}

/* 202: the job goes on; its status URL tells the rest. */
static int send_accepted(vg_app *app, vg_http_request *req,
                         const vg_job *job, const char *applied)
{
    vg_http_add_header(req, "Location",
                       vg_arena_sprintf(&req->arena, "/v1/ula/jobs/%s",
                                        job->id));
    if (applied != NULL)
        vg_http_add_header(req, "Preference-Applied", applied);
    return vg_http_send_success(req, 202,
                                vg_api_job_json(app, job, &req->arena),
                                "The job was accepted; poll its status_url "
                                "or follow its events_url for the video.");
}

/* The seed page's answer for a finished job: the video, or the error the
 * job ended with. */
static int send_outcome(vg_app *app, vg_http_request *req, const vg_job *job)
{
    vg_error err;
    if (job->state == VG_JOB_SUCCEEDED)
        return vg_http_send_success(
            req, 200, vg_api_job_data(app, job, &req->arena),
            "API has return response successfully.");
    vg_error_set(&err, vg_job_error_status(job->error_code),
                 job->error_code, NULL, "%s", job->error_message);
    return vg_http_send_error(req, &err);
}

/* What a generate request carries across its suspensions: while its
 * image URLs are fetched, while its job is committed, then (synchronous
 * requests) while it runs. */
typedef struct generate_state {
    vg_app *app;
    vg_video_request video;
    vg_fetch_task *fetch; /* until validation has taken its files */
    bool fetching;
    vg_fetch_task *check; /* the webhook_url's, until it has ended */
    bool checking;
    vg_submission *submission; /* until the commit is reported */
    bool committing;
    /* Why the submit failed before its commit; NULL when it did not.
     * Apart, because thousands of these may wait at once. */
    vg_error *refused;
} generate_state;

static void cleanup_generate(void *arg)
{
    generate_state *g = arg;
    /* A request closed while fetching (the server stopping) cancels the
     * fetch; the fetcher deletes what it already has. */
    if (g->fetch != NULL)
        vg_fetcher_release(g->app->fetcher, g->fetch);
    g->fetch = NULL;
    if (g->check != NULL)
        vg_fetcher_release(g->app->fetcher, g->check);
    g->check = NULL;
    /* The client left while its job was being committed (the wake came,
     * but the connection was gone): the job must still be queued. */
    if (g->submission != NULL)
        vg_jobs_submit_abandon(g->app->jobs, g->submission);
    g->submission = NULL;
    vg_request_cleanup(&g->video);
}

static void on_committed(void *ctx)
{
    vg_http_wake(ctx);
}

static void on_fetched(void *ctx)
{
    vg_http_wake(ctx);
}

static int validate_and_submit(vg_app *app, vg_http_request *req,
                               generate_state *g, json_t *body);
static int commit_job(vg_app *app, vg_http_request *req, generate_state *g);

int vg_api_generate_video(vg_app *app, vg_http_request *req)
{
    vg_error err;
    generate_state *g = vg_arena_alloc(&req->arena, sizeof(*g));
    vg_video_request *video = &g->video;
    g->app = app;
    req->handler_ctx = g;
    vg_http_on_cleanup(req, cleanup_generate, g);

    const char *key = vg_http_header(req, "Idempotency-Key");
    if (key != NULL && check_idempotency_key(key, &err) != 0)
        return vg_http_send_error(req, &err);

    json_t *body;
    if (req->is_form) {
        body = form_to_json(app, req, video, &err);
        if (body == NULL)
            return vg_http_send_error(req, &err);
    } else if (req->json != NULL) {
        body = json_incref(req->json);
    } else {
        vg_error_set(&err, 422, "validation_error", NULL,
                     "the request has no body: send the fields as JSON "
                     "or multipart/form-data");
        return vg_http_send_error(req, &err);
    }

    /* Image URLs: this thread only plans them; the fetcher downloads
     * them and wakes the request, which goes on in after_fetch. */
    if (!req->is_form && app->fetcher != NULL) {
        if (vg_request_plan_fetch(body, &app->config.request_limits,
                                  app->tmp_dir, &req->arena, video, &g->fetch,
                                  &err) != 0) {
            json_decref(body);
            return vg_http_send_error(req, &err);
        }
        if (g->fetch != NULL) {
            vg_fetch_task_set_owner(g->fetch, req->principal.account_id);
            json_decref(body); /* req->json keeps it for after_fetch */
            g->fetching = true;
            int result = vg_http_suspend(req);
            vg_fetcher_submit(app->fetcher, g->fetch, on_fetched, req);
            return result;
        }
    }
    return validate_and_submit(app, req, g, body);
}

/* The images are on disk (or failed to arrive): validate with them. */
static int after_fetch(vg_app *app, vg_http_request *req, generate_state *g)
{
    g->fetching = false;
    return validate_and_submit(app, req, g, json_incref(req->json));
}

/* Validates body (its reference is taken) with the fetched images, if
 * any; then has the webhook URL checked, if there is one, and submits. */
static int validate_and_submit(vg_app *app, vg_http_request *req,
                               generate_state *g, json_t *body)
{
    vg_error err;
    vg_video_request *video = &g->video;
    const vg_config *cfg = &app->config;
    int rc = vg_request_validate_fetched(body, cfg->catalog,
                                         &cfg->request_limits, app->tmp_dir,
                                         g->fetch, &req->arena, video, &err);
    /* What validation did not take (a failed request's later images) is
     * deleted with the task. */
    if (g->fetch != NULL)
        vg_fetcher_release(app->fetcher, g->fetch);
    g->fetch = NULL;
    json_decref(body);
    if (rc != 0)
        return vg_http_send_error(req, &err);
    /* The parsed body is not needed any more; waiting requests should
     * not hold it. */
    json_decref(req->json);
    req->json = NULL;
    if (video->webhook_url == NULL)
        return commit_job(app, req, g);

    /* Where the host leads is asked of the name servers, which may take
     * seconds: the fetcher resolves it and wakes the request, which goes
     * on in after_check. */
    g->check = vg_url_check_task_new(video->webhook_url, "http,https",
                                     cfg->webhook_allow_private,
                                     "webhook_url", &err);
    if (g->check == NULL)
        return vg_http_send_error(req, &err);
    if (app->fetcher == NULL) {
        vg_error_set(&err, 500, "internal_error", "webhook_url",
                     "no resolver to check webhook_url with");
        return vg_http_send_error(req, &err);
    }
    g->checking = true;
    int result = vg_http_suspend(req);
    vg_fetcher_submit(app->fetcher, g->check, on_fetched, req);
    return result;
}

static int after_check(vg_app *app, vg_http_request *req, generate_state *g)
{
    vg_error err;
    g->checking = false;
    int rc = vg_url_check_result(g->check, &err);
    vg_fetcher_release(app->fetcher, g->check);
    g->check = NULL;
    if (rc != 0)
        return vg_http_send_error(req, &err);
    return commit_job(app, req, g);
}

/* Submits the job, suspending the request until its commit. */
static int commit_job(vg_app *app, vg_http_request *req, generate_state *g)
{
    vg_error err;
    vg_video_request *video = &g->video;
    const vg_config *cfg = &app->config;
    const char *key = vg_http_header(req, "Idempotency-Key");
    /* The commit runs on the store's writer; this thread goes on serving
     * other requests meanwhile, and the commit wakes this one. */
    vg_submit submit = {
        video->webhook_url, key,
        req->principal.jobs_limit >= 0 ? req->principal.jobs_limit
                                       : cfg->unfinished_jobs_per_key};
    g->committing = true;
    int result = vg_http_suspend(req);
    if (vg_jobs_submit_start(app->jobs, &req->principal, video, &submit,
                             on_committed, req, &g->submission,
                             &err) != 0) {
        g->refused = vg_arena_alloc(&req->arena, sizeof(err));
        *g->refused = err;
        vg_http_wake(req);
    }
    return result;
}

/* The job is committed (or refused): answer, or wait for the video. */
static int after_commit(vg_app *app, vg_http_request *req,
                        generate_state *g)
{
    vg_error err;
    vg_job job;
    bool replayed = false;
    g->committing = false;
    bool failed = g->refused != NULL;
    if (failed)
        err = *g->refused;
    else
        failed = vg_jobs_submit_finish(app->jobs, g->submission, &job,
                                       &replayed, &err) != 0;
    g->submission = NULL;
    if (failed) {
        if (err.status == 429)
            vg_http_add_header(req, "Retry-After", "5");
        return vg_http_send_error(req, &err);
    }
    add_job_headers(req, &job);
    if (replayed)
        vg_http_add_header(req, "Idempotent-Replayed", "true");

    const vg_config *cfg = &app->config;
    vg_prefer prefer = preferences(req);
    int wait_s = cfg->max_sync_wait_s;
    if (prefer.wait_s >= 0 && prefer.wait_s < wait_s)
        wait_s = prefer.wait_s;
    int result;
    /* An async client always gets the job object, even when a replayed
     * key names a job that has already ended: the shape it parses must
     * not depend on timing. */
    if (prefer.respond_async)
        result = send_accepted(app, req, &job, "respond-async");
    else if (vg_job_finished(&job))
        result = send_outcome(app, req, &job);
    else if (wait_s == 0)
        result = send_accepted(app, req, &job, "wait=0");
    else
        result = vg_http_wait_for_job(
            req, job.id, vg_timers_now_ms() + (int64_t)wait_s * 1000);
    vg_job_clear(&job);
    return result;
}

int vg_api_generate_video_resume(vg_app *app, vg_http_request *req)
{
    generate_state *g = req->handler_ctx;
    if (g->fetching)
        return after_fetch(app, req, g);
    if (g->checking)
        return after_check(app, req, g);
    if (g->committing)
        return after_commit(app, req, g);

    vg_error err;
    vg_job job;
    int rc = app->store->ops->get_job(app->store, req->wait_job, &job, &err);
    if (rc != VG_STORE_OK) {
        if (rc == VG_STORE_NOT_FOUND)
            vg_error_set(&err, 500, "internal_error", NULL,
                         "the job vanished");
        vg_log_error("job %s: cannot read it back: %s", req->wait_job,
                     err.message);
        return vg_http_send_error(req, &err);
    }
    int result;
    if (vg_job_finished(&job)) {
        result = send_outcome(app, req, &job);
    } else if (!vg_jobs_draining(app->jobs) &&
               vg_timers_now_ms() < req->wait_deadline_ms) {
        /* Woken to look again (the job runs elsewhere or was still being
         * queued): keep waiting. */
        result = vg_http_wait_for_job(req, job.id, req->wait_deadline_ms);
    } else {
        /* Out of time (Prefer: wait or the server's limit), or this
         * server is stopping: the job goes on without the client. */
        vg_prefer prefer = preferences(req);
        char applied[32];
        snprintf(applied, sizeof(applied), "wait=%d", prefer.wait_s);
        result = send_accepted(app, req, &job,
                               prefer.wait_s >= 0 ? applied : NULL);
    }
    vg_job_clear(&job);
    return result;
}
