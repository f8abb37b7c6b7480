/*
 * video_api.c - POST /v1/ula/generate-video.
 *
 * Validates the request (JSON, or multipart where every field is a string
 * and images come as `files` parts), submits a job that reserves its price,
 * then suspends the connection until the job ends and answers with the
 * seed page's envelope. A client that goes away does not cancel the job.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/request.h"
#include "util/log.h"
#include "util/parse.h"

static void cleanup_video(void *arg)
{
    vg_request_cleanup(arg);
}

/* Turns a multipart body into the JSON the validator reads. */
static json_t *form_to_json(vg_app *app, vg_http_request *req,
                            vg_video_request *video, vg_error *err)
{
    json_t *body = json_object();
    for (vg_form_field *f = req->fields; f != NULL; f = f->next) {
        if (vg_request_field_type(f->name) == VG_FIELD_UNKNOWN)
            continue;
        if (!vg_utf8_valid(f->value, f->len)) {
            vg_error_set(err, 422, "validation_error", f->name,
                         "\"%s\" is not valid UTF-8", f->name);
            goto fail;
        }
        if (vg_request_form_field(body, f->name, f->value, err) != 0)
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

int vg_api_generate_video(vg_app *app, vg_http_request *req)
{
    vg_error err;
    vg_video_request *video = vg_arena_alloc(&req->arena, sizeof(*video));
    vg_http_on_cleanup(req, cleanup_video, video);

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

    int rc = vg_request_validate(body, app->config.catalog,
                                 &app->config.request_limits, app->tmp_dir,
                                 &req->arena, video, &err);
    vg_job job;
    if (rc == 0)
        rc = vg_jobs_submit(app->jobs, &req->principal, video, &job, &err);
    json_decref(body);
    if (rc != 0)
        return vg_http_send_error(req, &err);
    int result = vg_http_wait_for_job(req, job.id);
    vg_job_clear(&job);
    return result;
}

json_t *vg_api_job_data(vg_app *app, const vg_job *job, vg_arena *arena)
{
    const char *prompt = "";
    json_t *request = job->request_json
                          ? json_loads(job->request_json, 0, NULL)
                          : NULL;
    json_t *value = json_object_get(request, "prompt");
    if (json_is_string(value))
        prompt = json_string_value(value);
    char *url = vg_links_sign(&app->links, job->video_key, time(NULL),
                              arena);
    json_t *data = json_pack(
        "{s:s,s:I,s:s+,s:s,s:s,s:s,s:{s:I,s:I,s:I},s:f,s:[],"
        "s:[{s:s,s:s}],s:s,s:n}",
        "id", job->id, "created", (json_int_t)(job->created_ms / 1000),
        "text", "Generated video for prompt: ", prompt, "finish_reason",
        "stop", "provider", job->provider, "model", job->model, "usage",
        "prompt_tokens", (json_int_t)job->prompt_tokens,
        "completion_tokens", (json_int_t)job->completion_tokens,
        "total_tokens",
        (json_int_t)(job->prompt_tokens + job->completion_tokens),
        "latency_ms", (double)(job->finished_ms - job->created_ms), "images",
        "videos", "url", url ? url : "", "type", "mp4", "resolution",
        vg_arena_sprintf(arena, "%d*%d", job->width, job->height),
        "audios");
    json_decref(request);
    return data;
}

int vg_api_generate_video_resume(vg_app *app, vg_http_request *req)
{
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
    char seed[24];
    snprintf(seed, sizeof(seed), "%lld", (long long)job.seed);
    vg_http_add_header(req, "X-Vidgate-Seed", seed);
    vg_http_add_header(req, "X-Vidgate-Job", job.id);
    int result;
    if (job.state == VG_JOB_SUCCEEDED) {
        result = vg_http_send_success(
            req, 200, vg_api_job_data(app, &job, &req->arena),
            "API has return response successfully.");
    } else {
        vg_error_set(&err, vg_job_error_status(job.error_code),
                     job.error_code, NULL, "%s", job.error_message);
        if (job.state != VG_JOB_FAILED && job.state != VG_JOB_CANCELLED) {
            vg_error_set(&err, 500, "internal_error", NULL,
                         "the job ended in state %s",
                         vg_job_state_name(job.state));
        }
        result = vg_http_send_error(req, &err);
    }
    vg_job_clear(&job);
    return result;
}
