/*
 * events_api.c - GET /v1/ula/jobs/{id}/events: a job's progress as
 * Server-Sent Events, ending with its final state.
 *
 *   id: 37
 *   event: progress
 *   data: {"id": "...", "status": "running", "progress": 36}
 *
 *   id: 1000
 *   event: succeeded            (or failed, cancelled)
 *   data: <the job object of GET /v1/ula/jobs/{id}>
 *
 * Event ids grow with the job: 0 while queued, 1 + progress while
 * running, 1000 for the end. A client that reconnects with Last-Event-ID
 * gets only what is newer. While this process runs the job, events come
 * from its listener; a job run elsewhere (another instance) is polled in
 * the store every second. A comment line every 15 seconds keeps proxies
 * from closing a quiet stream.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/log.h"
#include "util/parse.h"

#define FINAL_ID 1000
#define KEEPALIVE_MS 15000
#define POLL_MS 1000

typedef struct job_stream {
    vg_app *app;
    char job_id[37];
    vg_http_stream *stream;
    vg_job_listener listener;
    vg_timer timer;
    int64_t last_id;   /* the newest event the client has */
    bool started;
    bool polling;      /* not run here: read the store on each tick */
    int64_t next_keepalive_ms;

    pthread_mutex_t lock; /* the fields below, set by the listener */
    bool have_event;
    vg_job_event event;
} job_stream;

static int64_t event_id(vg_job_state state, int progress)
{
    if (state == VG_JOB_QUEUED)
        return 0;
    if (state == VG_JOB_RUNNING)
        return 1 + progress;
    return FINAL_ID;
}

static void on_event(vg_job_listener *listener, const vg_job_event *event)
{
    job_stream *js = (job_stream *)((char *)listener -
                                    offsetof(job_stream, listener));
    pthread_mutex_lock(&js->lock);
    js->event = *event;
    js->have_event = true;
    pthread_mutex_unlock(&js->lock);
    vg_http_stream_wake(js->stream);
}

static void on_tick(vg_timer *timer)
{
    job_stream *js = (job_stream *)((char *)timer -
                                    offsetof(job_stream, timer));
    vg_http_stream_wake(js->stream);
}

static void write_progress(job_stream *js, vg_buf *out, vg_job_state state,
                           int progress)
{
    int64_t id = event_id(state, progress);
    if (id <= js->last_id)
        return;
    js->last_id = id;
    vg_buf_printf(out,
                  "id: %lld\nevent: progress\ndata: {\"id\":\"%s\","
                  "\"status\":\"%s\",\"progress\":%d}\n\n",
                  (long long)id, js->job_id, vg_job_state_name(state),
                  progress);
}

/* Reads the job; when it has ended, writes the final event and returns 1.
 * -1 when it cannot be read. */
static int write_from_store(job_stream *js, vg_buf *out)
{
    vg_job job;
    vg_error err;
    if (js->app->store->ops->get_job(js->app->store, js->job_id, &job,
                                     &err) != VG_STORE_OK) {
        vg_log_warn("events for job %s: cannot read it: %s", js->job_id,
                    err.message);
        return -1;
    }
    int rc = 0;
    if (vg_job_finished(&job)) {
        if (js->last_id < FINAL_ID) {
            vg_arena arena;
            vg_arena_init(&arena);
            json_t *o = vg_api_job_json(js->app, &job, &arena);
            char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
            vg_buf_printf(out, "id: %d\nevent: %s\ndata: %s\n\n", FINAL_ID,
                          vg_job_state_name(job.state), text ? text : "{}");
            free(text);
            json_decref(o);
            vg_arena_free(&arena);
            js->last_id = FINAL_ID;
        }
        rc = 1;
    } else {
        write_progress(js, out, job.state, job.progress);
    }
    vg_job_clear(&job);
    return rc;
}

static int produce(void *ctx, vg_buf *out)
{
    job_stream *js = ctx;
    int64_t now = vg_timers_now_ms();
    if (!js->started) {
        js->started = true;
        vg_buf_printf(out, "retry: 2000\n\n");
        vg_job_event current;
        if (vg_jobs_listen(js->app->jobs, js->job_id, &js->listener,
                           &current) == 0) {
            write_progress(js, out, current.state, current.progress);
        } else {
            int rc = write_from_store(js, out);
            if (rc != 0)
                return 1;
            js->polling = true;
        }
        js->next_keepalive_ms = now + KEEPALIVE_MS;
    } else if (js->polling) {
        int rc = write_from_store(js, out);
        if (rc != 0)
            return 1;
    } else {
        pthread_mutex_lock(&js->lock);
        bool have = js->have_event;
        vg_job_event ev = js->event;
        js->have_event = false;
        pthread_mutex_unlock(&js->lock);
        if (have && ev.done) {
            /* Ended here, or this server is stopping (the job waits in
             * the store for the next start): either way the store says
             * what the client should hear last. */
            write_from_store(js, out);
            return 1;
        }
        if (have)
            write_progress(js, out, ev.state, ev.progress);
    }
    if (out->len == 0 && now >= js->next_keepalive_ms) {
        vg_buf_printf(out, ": keep-alive\n\n");
        js->next_keepalive_ms = now + KEEPALIVE_MS;
    }
    int64_t next = js->next_keepalive_ms;
    if (js->polling && now + POLL_MS < next)
        next = now + POLL_MS;
    vg_timer_set(&js->timer, next);
    return 0;
}

static void close_stream(void *ctx)
{
    job_stream *js = ctx;
    vg_timer_cancel(&js->timer);
    vg_jobs_unlisten(js->app->jobs, &js->listener);
    pthread_mutex_destroy(&js->lock);
    free(js);
}

static const vg_http_stream_ops job_stream_ops = {produce, close_stream};

int vg_api_job_events(vg_app *app, vg_http_request *req)
{
    vg_job job;
    bool answered;
    int rc = vg_api_load_job(app, req, req->params[0], &job, &answered);
    if (answered)
        return rc;
    job_stream *js = calloc(1, sizeof(*js));
    if (js == NULL) {
        vg_job_clear(&job);
        vg_error err;
        vg_error_set(&err, 500, "internal_error", NULL, "out of memory");
        return vg_http_send_error(req, &err);
    }
    js->app = app;
    memcpy(js->job_id, job.id, sizeof(js->job_id));
    vg_job_clear(&job);
    js->listener.notify = on_event;
    vg_timer_init(&js->timer, on_tick);
    pthread_mutex_init(&js->lock, NULL);
    js->last_id = -1;
    const char *last = vg_http_header(req, "Last-Event-ID");
    int64_t n;
    if (last != NULL && vg_parse_int64(last, &n) == 0 && n >= 0)
        js->last_id = n;
    return vg_http_send_stream(req, "text/event-stream", &job_stream_ops,
                               js, &js->stream);
}
