/*
 * upstream_calls.c - a job's calls to its provider: the submit along its
 * routes (with Retry-After and fallbacks), the polls, and the download
 * of the result. See upstream_internal.h.
 */
#include "providers/upstream_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/outbound.h"

/* ---- submitting -------------------------------------------------------- */

/* Sends the current route's submit (a copy: a retry sends it again). */
void up_send_submit(vg_upstream *up, ujob *job)
{
    vg_call copy;
    if (vg_call_copy(&copy, &job->calls[job->route]) != 0) {
        up_fail_job(up, job, 500, "internal_error", "out of memory");
        return;
    }
    job->phase = SUBMITTING;
    if (up_start_xfer(up, job, job->route_provider[job->route], XFER_SUBMIT,
                      &copy) != 0)
        up_fail_job(up, job, 500, "internal_error",
                    "cannot start an upstream request");
}

/* Moves to the next route whose provider takes submits now, or fails
 * with the last route's error when none is left. */
void up_submit_next(vg_upstream *up, ujob *job)
{
    int64_t now = vg_now_ms();
    for (job->route++; job->route < job->n_routes; job->route++) {
        provider *p = job->route_provider[job->route];
        pthread_mutex_lock(&up->lock);
        bool was_probing = p->state == CIRCUIT_HALF_OPEN && p->probing;
        bool ok = up_breaker_allows_locked(p, now, true);
        if (ok && p->state == CIRCUIT_HALF_OPEN && !was_probing)
            job->probe = p;
        pthread_mutex_unlock(&up->lock);
        if (!ok)
            continue;
        job->submit_tries = 0;
        if (job->route > 0 && job->last_error.code[0] != '\0')
            vg_log_warn("job %s: failing over to %s", job->id, p->config.name);
        up_send_submit(up, job);
        return;
    }
    if (job->last_error.code[0] == '\0')
        up_fail_job(up, job, 503, "no_provider",
                    "no provider of this model is available now (every one "
                    "is unconfigured or failing); the credits were refunded");
    else
        up_fail_job(up, job, job->last_error.status, job->last_error.code,
                    "%s", job->last_error.message);
}

static void route_failed(vg_upstream *up, ujob *job, provider *p, int status,
                         const char *code, const char *message)
{
    vg_error_set(&job->last_error, status, code, NULL, "%s: %s",
                 p->config.name, message);
    up_submit_next(up, job);
}

/* A job cancelled while its submit was in flight: learn the task from
 * the answer to cancel it upstream, then forget the job. */
static void cancel_late_task(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                             long status)
{
    vg_reply reply = {(int)status, x->buf != NULL ? x->buf : "", x->len};
    char *task = NULL;
    vg_error err;
    if (rc == CURLE_OK && status >= 200 && status < 300 &&
        x->p->config.adapter->parse_submit(&reply, &task, &err) == 0) {
        job->p = x->p;
        up_count_job(up, job->p, 1);
        job->task = task;
        up_send_cancel(up, job);
    }
    up_job_free(up, job);
}

void up_on_submit_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                       long status)
{
    provider *p = x->p;
    if (job->cancelled) {
        cancel_late_task(up, job, x, rc, status);
        return;
    }
    bool retry_later = rc == CURLE_OK && status == 429 &&
                       job->submit_tries + 1 < SUBMIT_RETRIES;
    if (!retry_later)
        job->probe = NULL; /* its outcome is recorded below */
    if (rc != CURLE_OK) {
        bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
        vg_log_warn("job %s: submit to %s failed: %s", job->id, p->config.name,
                    x->error[0] ? x->error : curl_easy_strerror(rc));
        up_breaker_record(up, p, false, curl_easy_strerror(rc));
        route_failed(up, job, p, timeout ? 504 : 502,
                     timeout ? "upstream_timeout" : "upstream_unavailable",
                     timeout ? "the provider did not answer in time"
                             : "the provider could not be reached");
        return;
    }
    vg_reply reply = {(int)status, x->buf != NULL ? x->buf : "", x->len};
    char reason[400];
    vg_reply_kind kind = vg_reply_classify(&reply, reason, sizeof(reason));
    if (kind == VG_REPLY_OK) {
        vg_error err;
        char *task = NULL;
        if (p->config.adapter->parse_submit(&reply, &task, &err) != 0) {
            /* It may have taken the job; we cannot know its id. */
            vg_log_error("job %s: %s answered the submit with something "
                         "unreadable (%s): trying elsewhere",
                         job->id, p->config.name, err.message);
            up_breaker_record(up, p, false, "malformed answer");
            route_failed(up, job, p, 502, "upstream_malformed",
                         "the provider's answer could not be read");
            return;
        }
        up_breaker_record(up, p, true, NULL);
        job->probe = NULL;
        job->p = p;
        up_arm(job, p);
        up_count_job(up, p, 1);
        job->task = task;
        job->phase = RECORDING;
        for (int i = 0; i < job->n_routes; i++)
            vg_call_clear(&job->calls[i]);
        job->n_routes = 0;
        vg_provider_event *ev = up_event_new(job, VG_EVENT_SUBMITTED);
        if (ev == NULL || (ev->task = strdup(task)) == NULL) {
            vg_provider_event_free(ev);
            up_fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        up->deliver(up->ctx, ev);
        return;
    }
    switch (kind) {
    case VG_REPLY_REJECTED:
        /* The provider works; it refuses this request. */
        up_breaker_record(up, p, true, NULL);
        up_fail_job(up, job, 400, "upstream_rejected",
                    "%s refused the request: %s", p->config.name, reason);
        return;
    case VG_REPLY_NO_BALANCE:
        vg_log_error("provider %s: the account has no balance left (%s); "
                     "top it up — jobs go to other providers meanwhile",
                     p->config.name, reason);
        up_breaker_record(up, p, false, "no balance");
        route_failed(up, job, p, 503, "upstream_no_balance",
                     "the provider account of this server is out of "
                     "credit; the operator has been told");
        return;
    case VG_REPLY_AUTH:
        vg_log_error("provider %s refused the API key (HTTP %ld: %s); "
                     "check its api_key_env",
                     p->config.name, status, reason);
        up_breaker_record(up, p, false, "key refused");
        route_failed(up, job, p, 503, "no_provider",
                     "the provider refused this server's credentials");
        return;
    default:
        break;
    }
    if (status == 429 && job->submit_tries + 1 < SUBMIT_RETRIES) {
        job->submit_tries++;
        int64_t wait = x->retry_after_ms >= 0 ? x->retry_after_ms : 1000;
        if (wait > RETRY_AFTER_MAX_MS)
            wait = RETRY_AFTER_MAX_MS;
        vg_log_warn("job %s: %s is rate limiting; submitting again in "
                    "%lld ms",
                    job->id, p->config.name, (long long)wait);
        job->phase = SUBMITTING;
        up_schedule(up, job, vg_now_ms() + wait);
        return;
    }
    vg_log_warn("job %s: submit to %s failed with HTTP %ld: %s", job->id,
                p->config.name, status, reason);
    up_breaker_record(up, p, false, reason);
    route_failed(up, job, p, 502, "upstream_unavailable", reason);
}

/* ---- polling ----------------------------------------------------------- */

void up_poll_later(vg_upstream *up, ujob *job, int64_t retry_after_ms)
{
    int64_t now = vg_now_ms();
    if (now >= job->deadline_ms) {
        up_send_cancel(up, job);
        up_fail_job(up, job, 504, "upstream_timeout",
                    "%s did not finish the video within %d s; the credits "
                    "were refunded",
                    job->p->config.name, job->p->config.job_timeout_s);
        return;
    }
    int64_t wait = job->poll_ms;
    if (retry_after_ms > wait)
        wait = retry_after_ms < RETRY_AFTER_MAX_MS ? retry_after_ms
                                                   : RETRY_AFTER_MAX_MS;
    job->poll_ms = job->poll_ms * 3 / 2;
    if (job->poll_ms > job->p->config.poll_max_ms)
        job->poll_ms = job->p->config.poll_max_ms;
    job->phase = WAITING;
    up_schedule(up, job, now + wait);
}

void up_send_poll(vg_upstream *up, ujob *job)
{
    provider *p = job->p;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    int rc;
    if (job->fetch_url == NULL)
        rc =
            p->config.adapter->build_poll(&p->account, job->task, &call, &err);
    else if (p->config.adapter->build_download != NULL)
        /* A result fetch (fal's response_url) carries the key the way a
         * download does. */
        rc = p->config.adapter->build_download(&p->account, job->fetch_url,
                                               &call, &err);
    else
        rc = vg_call_set(&call, "GET", "", "%s", job->fetch_url);
    if (rc != 0) {
        vg_call_clear(&call);
        up_fail_job(up, job, 500, "internal_error",
                    "cannot poll the task at %s: %s", p->config.name,
                    err.message);
        return;
    }
    job->phase = POLLING;
    if (up_start_xfer(up, job, p, XFER_POLL, &call) != 0)
        up_fail_job(up, job, 500, "internal_error",
                    "cannot start an upstream request");
}

void up_send_download(vg_upstream *up, ujob *job)
{
    provider *p = job->p;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    int rc;
    if (p->config.adapter->build_download != NULL)
        rc = p->config.adapter->build_download(&p->account, job->video_url,
                                               &call, &err);
    else
        rc = vg_call_set(&call, "GET", "", "%s", job->video_url);
    if (rc != 0) {
        vg_call_clear(&call);
        up_fail_job(up, job, 502, "upstream_failed",
                    "the result URL from %s cannot be used", p->config.name);
        return;
    }
    job->phase = DOWNLOADING;
    job->downloads++;
    if (up_start_xfer(up, job, p, XFER_DOWNLOAD, &call) != 0)
        up_fail_job(up, job, 500, "internal_error",
                    "cannot start the download of the result");
}

/* A failed poll: try again later, up to a point. */
static void poll_failed(vg_upstream *up, ujob *job, provider *p, bool count,
                        const char *why, int64_t retry_after)
{
    if (count)
        up_breaker_record(up, p, false, why);
    if (++job->poll_errors >= POLL_ERRORS_MAX) {
        up_fail_job(up, job, 502, "upstream_unavailable",
                    "%s stopped answering about the task (%s); the credits "
                    "were refunded",
                    p->config.name, why);
        return;
    }
    vg_log_warn("job %s: poll at %s failed (%s): trying again", job->id,
                p->config.name, why);
    up_poll_later(up, job, retry_after);
}

void up_on_poll_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                     long status)
{
    provider *p = x->p;
    if (rc != CURLE_OK) {
        poll_failed(up, job, p, true,
                    x->error[0] ? x->error : curl_easy_strerror(rc), -1);
        return;
    }
    vg_reply reply = {(int)status, x->buf != NULL ? x->buf : "", x->len};
    char reason[400];
    vg_reply_kind kind = vg_reply_classify(&reply, reason, sizeof(reason));
    if (kind == VG_REPLY_REJECTED) {
        up_breaker_poll_ok(up, p);
        up_fail_job(up, job, 502, "upstream_failed",
                    "%s no longer answers for the task: %s", p->config.name,
                    reason);
        return;
    }
    if (kind != VG_REPLY_OK) {
        poll_failed(up, job, p, status != 429, reason, x->retry_after_ms);
        return;
    }
    vg_task_status st;
    vg_task_status_init(&st);
    vg_error err;
    if (p->config.adapter->parse_poll(&reply, &st, &err) != 0) {
        vg_task_status_clear(&st);
        poll_failed(up, job, p, true, err.message, -1);
        return;
    }
    up_breaker_poll_ok(up, p);
    job->poll_errors = 0;
    if (st.seed >= 0)
        job->seed = st.seed;
    if (st.completion_tokens >= 0)
        job->completion_tokens = st.completion_tokens;
    if (st.total_tokens >= 0)
        job->total_tokens = st.total_tokens;
    int64_t retry_after = x->retry_after_ms;
    switch (st.state) {
    case VG_TASK_QUEUED:
    case VG_TASK_RUNNING: {
        int pct = st.progress > 99 ? 99 : st.progress;
        if (pct > job->progress) {
            job->progress = pct;
            vg_provider_event *ev = up_event_new(job, VG_EVENT_PROGRESS);
            if (ev != NULL) {
                ev->progress = pct;
                up->deliver(up->ctx, ev);
            }
        }
        up_poll_later(up, job, retry_after);
        break;
    }
    case VG_TASK_FETCH:
        free(job->fetch_url);
        job->fetch_url = st.fetch_url;
        st.fetch_url = NULL;
        up_send_poll(up, job);
        break;
    case VG_TASK_SUCCEEDED:
        free(job->video_url);
        job->video_url = st.video_url;
        st.video_url = NULL;
        if (job->video_url == NULL)
            up_fail_job(up, job, 502, "upstream_failed",
                        "%s reported success without a video", p->config.name);
        else
            up_send_download(up, job);
        break;
    case VG_TASK_FAILED:
        up_fail_job(up, job,
                    strcmp(st.error_code, "content_filtered") == 0 ? 400 : 502,
                    st.error_code[0] ? st.error_code : "upstream_failed",
                    "%s: %s", p->config.name,
                    st.error_message[0] ? st.error_message
                                        : "the provider could not make the "
                                          "video");
        break;
    case VG_TASK_CANCELLED:
        up_fail_job(up, job, 502, "upstream_cancelled",
                    "%s cancelled the task", p->config.name);
        break;
    }
    vg_task_status_clear(&st);
}

void up_on_download_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                         long status)
{
    provider *p = x->p;
    if (x->too_big) {
        up_fail_job(up, job, 502, "upstream_bad_video",
                    "the video from %s is larger than %lld bytes",
                    p->config.name, (long long)p->config.max_video_bytes);
        return;
    }
    char *location = NULL;
    if (rc == CURLE_OK && status >= 300 && status < 400 &&
        curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &location) ==
            CURLE_OK &&
        location != NULL) {
        if (++job->redirects > DOWNLOAD_REDIRECTS) {
            up_fail_job(up, job, 502, "upstream_download_failed",
                        "the video from %s could not be downloaded (more "
                        "than %d redirects)",
                        p->config.name, DOWNLOAD_REDIRECTS);
            return;
        }
        char *next = strdup(location);
        if (next == NULL) {
            up_fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        free(job->video_url);
        job->video_url = next;
        job->downloads--; /* a hop is not a failed try */
        /* Next hop once this transfer (and its file) is gone. */
        job->phase = DOWNLOADING;
        up_schedule(up, job, vg_now_ms());
        return;
    }
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        if (fclose(x->file) != 0) {
            x->file = NULL;
            up_fail_job(up, job, 500, "storage_failed",
                        "the downloaded video could not be written");
            return;
        }
        x->file = NULL;
        vg_provider_event *ev = up_event_new(job, VG_EVENT_DONE);
        if (ev != NULL && job->task != NULL)
            ev->task = strdup(job->task); /* NULL is only a lost delete */
        if (ev == NULL || (ev->file = strdup(x->path)) == NULL) {
            unlink(x->path);
            vg_provider_event_free(ev);
            up_fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        up_job_free(up, job); /* drops x, which no longer owns the file */
        up->deliver(up->ctx, ev);
        return;
    }
    bool expired =
        rc == CURLE_OK && (status == 403 || status == 404 || status == 410);
    if (expired || job->downloads >= DOWNLOAD_TRIES) {
        const char *why = rc != CURLE_OK
                              ? (x->note[0]    ? x->note
                                 : x->error[0] ? x->error
                                               : curl_easy_strerror(rc))
                          : expired ? "the result URL has expired"
                                    : "the download failed";
        up_fail_job(up, job, 502,
                    expired ? "upstream_expired" : "upstream_download_failed",
                    "the video from %s could not be downloaded (%s%s%ld)",
                    p->config.name, why, rc == CURLE_OK ? ", HTTP " : "",
                    rc == CURLE_OK ? status : 0L);
        return;
    }
    vg_log_warn("job %s: download from %s failed (%s): trying again", job->id,
                p->config.name,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
    job->phase = DOWNLOADING;
    up_schedule(up, job, vg_now_ms() + 2000);
}
