/*
 * job_json.c - how a job looks to clients: the seed page's "data" object
 * of a finished generation, and the job object of the job API, the 202
 * answers, the event stream and webhooks.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "util/clock.h"

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

static json_t *unix_s_or_null(int64_t ms)
{
    return ms > 0 ? json_integer((json_int_t)(ms / 1000)) : json_null();
}

/* When the job should be done, from its pace so far; null until there
 * is a pace to go by. */
static json_t *eta(const vg_job *job, int64_t now)
{
    if (job->state != VG_JOB_RUNNING || job->progress <= 0 ||
        job->started_ms <= 0 || now <= job->started_ms)
        return json_null();
    int64_t spent = now - job->started_ms;
    int64_t left = spent * (100 - job->progress) / job->progress;
    return json_integer((json_int_t)((now + left + 999) / 1000));
}

bool vg_job_finished(const vg_job *job)
{
    return job->state == VG_JOB_SUCCEEDED || job->state == VG_JOB_FAILED ||
           job->state == VG_JOB_CANCELLED;
}

json_t *vg_api_job_json(vg_app *app, const vg_job *job, vg_arena *arena)
{
    const char *base = app->links.base_url;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(job->id));
    json_object_set_new(o, "object", json_string("job"));
    json_object_set_new(o, "status",
                        json_string(vg_job_state_name(job->state)));
    json_object_set_new(o, "progress",
                        json_integer(job->state == VG_JOB_SUCCEEDED
                                         ? 100
                                         : job->progress));
    json_object_set_new(o, "model", json_string(job->model));
    json_object_set_new(o, "provider", json_string(job->provider));
    json_object_set_new(o, "service_tier",
                        json_string(job->flex ? "flex" : "default"));
    json_object_set_new(o, "seed", json_integer((json_int_t)job->seed));
    json_object_set_new(o, "created", unix_s_or_null(job->created_ms));
    json_object_set_new(o, "started", unix_s_or_null(job->started_ms));
    json_object_set_new(o, "finished", unix_s_or_null(job->finished_ms));
    json_object_set_new(o, "eta", eta(job, vg_now_ms()));
    json_object_set_new(o, "attempts", json_integer(job->attempts));
    json_object_set_new(
        o, "status_url",
        json_string(vg_arena_sprintf(arena, "%s/v1/ula/jobs/%s", base,
                                     job->id)));
    json_object_set_new(
        o, "events_url",
        json_string(vg_arena_sprintf(arena, "%s/v1/ula/jobs/%s/events",
                                     base, job->id)));
    json_object_set_new(o, "webhook_url",
                        job->webhook_url && *job->webhook_url
                            ? json_string(job->webhook_url)
                            : json_null());
    if (job->state == VG_JOB_FAILED || job->state == VG_JOB_CANCELLED)
        json_object_set_new(
            o, "error",
            json_pack("{s:s,s:s,s:i}", "code", job->error_code, "message",
                      job->error_message, "status",
                      vg_job_error_status(job->error_code)));
    else
        json_object_set_new(o, "error", json_null());
    json_object_set_new(o, "data",
                        job->state == VG_JOB_SUCCEEDED
                            ? vg_api_job_data(app, job, arena)
                            : json_null());
    return o;
}
