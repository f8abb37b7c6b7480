/*
 * upstream.c - the upstream engine: one thread, one curl multi handle, a
 * timer heap of polls, and the per-provider circuit breakers; see
 * upstream.h.
 *
 * Threads: callers post commands (submit, resume, continue, cancel) to a
 * queue under `lock` and wake the engine with curl_multi_wakeup; only the
 * engine thread touches jobs, transfers and the heap. `lock` also guards
 * the breaker and job counters that /healthz and submit-time checks read.
 * Events go out through the deliver callback with no lock held.
 *
 * A job's life here:
 *   SUBMITTING  a submit call is in flight (or waits out a Retry-After);
 *   RECORDING   SUBMITTED was delivered, waiting for continue;
 *   WAITING     the next poll is on the heap;
 *   POLLING     a poll (or fal's result fetch) is in flight;
 *   DOWNLOADING the result streams into a file;
 * and it is freed when it delivers DONE or FAILED or is cancelled.
 */
#include "providers/upstream_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/heap.h"
#include "util/table.h"
#include "util/log.h"
#include "util/netpolicy.h"
#include "util/outbound.h"

/* ---- small things ------------------------------------------------------ */

provider *up_provider_named(vg_upstream *up, const char *name)
{
    for (int i = 0; i < up->n_providers; i++)
        if (strcmp(up->providers[i].config.name, name) == 0)
            return &up->providers[i];
    return NULL;
}

static ujob *find_job(const vg_upstream *up, const char *id)
{
    vg_table_node *n = vg_table_find(&up->jobs, id);
    return n != NULL ? VG_CONTAINER_OF(n, ujob, in_table) : NULL;
}

/* ---- the timer heap ---------------------------------------------------- */

/* Schedules the job's next step at due_ms. */
void up_schedule(vg_upstream *up, ujob *job, int64_t due_ms)
{
    if (vg_heap_push(&up->timers, &job->due, due_ms) != 0)
        /* Without room the job cannot wait; it fails below when its
         * deadline check runs. Practically unreachable. */
        vg_log_error("upstream: out of memory scheduling job %s", job->id);
}

/* ---- circuit breakers -------------------------------------------------- */

static const char *circuit_name(circuit c)
{
    return c == CIRCUIT_CLOSED ? "closed"
           : c == CIRCUIT_OPEN ? "open"
                               : "half_open";
}

/* Caller holds up->lock. Whether a new submit may go to p now; with take,
 * a half-open circuit hands out its one probe. */
bool up_breaker_allows_locked(provider *p, int64_t now, bool take)
{
    if (p->config.api_key[0] == '\0')
        return false;
    if (p->state == CIRCUIT_OPEN &&
        now - p->opened_ms >= (int64_t)p->config.breaker_open_s * 1000) {
        p->state = CIRCUIT_HALF_OPEN;
        p->probing = false;
        vg_log_info("provider %s: circuit half-open, next submit probes",
                    p->config.name);
    }
    if (p->state == CIRCUIT_CLOSED)
        return true;
    if (p->state == CIRCUIT_HALF_OPEN && !p->probing) {
        if (take)
            p->probing = true;
        return true;
    }
    return false;
}

void up_breaker_record(vg_upstream *up, provider *p, bool ok, const char *why)
{
    pthread_mutex_lock(&up->lock);
    if (ok) {
        if (p->state != CIRCUIT_CLOSED)
            vg_log_info("provider %s: circuit closed", p->config.name);
        p->state = CIRCUIT_CLOSED;
        p->failures = 0;
        p->probing = false;
    } else {
        p->failures++;
        if (p->state == CIRCUIT_HALF_OPEN ||
            (p->state == CIRCUIT_CLOSED &&
             p->failures >= p->config.breaker_failures)) {
            p->state = CIRCUIT_OPEN;
            p->opened_ms = vg_now_ms();
            p->probing = false;
            vg_log_warn("provider %s: circuit open for %d s after %d "
                        "failures in a row (last: %s)",
                        p->config.name, p->config.breaker_open_s, p->failures,
                        why);
        }
    }
    pthread_mutex_unlock(&up->lock);
}

/* A poll answered: a closed circuit's failure count starts over; an open
 * or half-open one waits for its probe. */
void up_breaker_poll_ok(vg_upstream *up, provider *p)
{
    pthread_mutex_lock(&up->lock);
    if (p->state == CIRCUIT_CLOSED)
        p->failures = 0;
    pthread_mutex_unlock(&up->lock);
}

void up_count_job(vg_upstream *up, provider *p, int delta)
{
    pthread_mutex_lock(&up->lock);
    p->jobs += delta;
    pthread_mutex_unlock(&up->lock);
}

bool vg_upstream_available(vg_upstream *up, const char *name)
{
    provider *p = up_provider_named(up, name);
    if (p == NULL)
        return false;
    pthread_mutex_lock(&up->lock);
    bool ok = up_breaker_allows_locked(p, vg_now_ms(), false);
    pthread_mutex_unlock(&up->lock);
    return ok;
}

int vg_upstream_lined(vg_upstream *up, int index)
{
    if (index < 0 || index >= up->n_providers)
        return 0;
    return atomic_load_explicit(&up->providers[index].lined,
                                memory_order_relaxed);
}

uint64_t vg_upstream_availability_version(vg_upstream *up)
{
    int64_t now = vg_now_ms();
    pthread_mutex_lock(&up->lock);
    for (int i = 0; i < up->n_providers; i++) {
        provider *p = &up->providers[i];
        bool ok = up_breaker_allows_locked(p, now, false);
        if (ok != p->seen_allowed) {
            p->seen_allowed = ok;
            up->availability_version++;
        }
    }
    uint64_t version = up->availability_version;
    pthread_mutex_unlock(&up->lock);
    return version;
}

json_t *vg_upstream_health_of(vg_upstream *up, int index)
{
    if (index < 0 || index >= up->n_providers)
        return NULL;
    provider *p = &up->providers[index];
    pthread_mutex_lock(&up->lock);
    up_breaker_allows_locked(p, vg_now_ms(), false); /* open -> half-open */
    json_t *entry = json_pack("{s:s, s:b, s:s, s:i, s:i}", "protocol",
                              p->config.adapter->name, "configured",
                              p->config.api_key[0] != '\0', "circuit",
                              circuit_name(p->state), "consecutive_failures",
                              p->failures, "jobs", p->jobs);
    pthread_mutex_unlock(&up->lock);
    return entry;
}

/* ---- events ------------------------------------------------------------ */

vg_provider_event *up_event_new(ujob *job, vg_provider_event_kind kind)
{
    vg_provider_event *ev = vg_provider_event_new(
        kind, job->id, job->p != NULL ? job->p->config.name : NULL);
    if (ev == NULL)
        return NULL;
    ev->seed = job->seed;
    ev->completion_tokens = job->completion_tokens;
    ev->total_tokens = job->total_tokens;
    return ev;
}

/* Ends the job with an error; the job is gone afterwards. */

void up_fail_job(vg_upstream *up, ujob *job, int status, const char *code,
                 const char *fmt, ...)
{
    vg_provider_event *ev = up_event_new(job, VG_EVENT_FAILED);
    if (ev != NULL) {
        ev->error.status = status;
        snprintf(ev->error.code, sizeof(ev->error.code), "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ev->error.message, sizeof(ev->error.message), fmt, ap);
        va_end(ap);
    }
    up_job_free(up, job);
    if (ev != NULL)
        up->deliver(up->ctx, ev);
}

/* ---- the loop ---------------------------------------------------------- */

static void on_done(vg_upstream *up, CURLMsg *msg)
{
    xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    long status = 0;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    CURLcode rc = msg->data.result;
    if (x->kind == XFER_TOKEN) {
        up_detach_xfer(up, x);
        up_unlink_xfer(up, x);
        up_on_token_done(up, x, rc, status);
        up_xfer_free(x);
        return;
    }
    if (x->kind == XFER_CANCEL) {
        if (rc != CURLE_OK || status >= 300)
            vg_log_warn("%s %s at %s: %s", x->call.method, x->call.url,
                        x->p->config.name,
                        rc != CURLE_OK ? curl_easy_strerror(rc) : "refused");
        up_drop_xfer(up, x);
        return;
    }
    /* Detach x from the multi handle and its job: it is ours now, and
     * the job may be gone by the end of the handler. */
    ujob *job = x->job;
    up_detach_xfer(up, x);
    job->xfer = NULL;
    x->job = NULL;
    switch (x->kind) {
    case XFER_SUBMIT:
        up_on_submit_done(up, job, x, rc, status);
        break;
    case XFER_POLL:
        up_on_poll_done(up, job, x, rc, status);
        break;
    case XFER_DOWNLOAD:
        up_on_download_done(up, job, x, rc, status);
        break;
    case XFER_CANCEL:
    case XFER_TOKEN:
        break;
    }
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    up_xfer_free(x);
}

/* A timer fired: the job's next step. */
static void on_due(vg_upstream *up, ujob *job)
{
    switch (job->phase) {
    case SUBMITTING:
        up_send_submit(up, job); /* after a 429's Retry-After */
        break;
    case WAITING:
        up_send_poll(up, job);
        break;
    case DOWNLOADING:
        up_send_download(up, job);
        break;
    default:
        break;
    }
}

static void run_command(vg_upstream *up, command *c)
{
    ujob *job = find_job(up, c->id);
    switch (c->kind) {
    case CMD_START:
        if (job != NULL) { /* already here: keep the one we have */
            up_job_free(up, c->job);
            break;
        }
        job = c->job;
        vg_table_insert(&up->jobs, &job->in_table, job->id);
        if (job->task != NULL) { /* resume */
            up_count_job(up, job->p, 1);
            up_send_poll(up, job);
        } else {
            job->route = -1;
            up_submit_next(up, job);
        }
        break;
    case CMD_CONTINUE:
        if (job != NULL && job->phase == RECORDING)
            up_poll_later(up, job, -1);
        break;
    case CMD_CANCEL:
        if (job == NULL)
            break;
        if (c->cancel_task && job->phase == SUBMITTING && job->xfer != NULL) {
            /* The answer may bring a task id: cancel it then. */
            job->cancelled = true;
            break;
        }
        if (c->cancel_task)
            up_send_cancel(up, job);
        up_job_free(up, job);
        break;
    case CMD_DELETE:
        up_send_delete(up, c->provider, c->task);
        break;
    }
}

static void *engine_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-upstream");
    vg_upstream *up = arg;
    for (;;) {
        pthread_mutex_lock(&up->lock);
        command *list = up->commands;
        up->commands = up->commands_tail = NULL;
        bool stopping = up->stopping;
        pthread_mutex_unlock(&up->lock);
        while (list != NULL) {
            command *next = list->next;
            if (!stopping)
                run_command(up, list);
            else if (list->kind == CMD_START)
                up_job_free(up, list->job);
            free(list);
            list = next;
        }
        if (stopping)
            break;

        int64_t now = vg_now_ms();
        vg_heap_node *first;
        while ((first = vg_heap_first(&up->timers)) != NULL &&
               first->key <= now) {
            ujob *job = VG_CONTAINER_OF(first, ujob, due);
            vg_heap_remove(&up->timers, &job->due);
            on_due(up, job);
        }
        int timeout = 1000;
        if ((first = vg_heap_first(&up->timers)) != NULL) {
            int64_t wait = first->key - vg_now_ms();
            timeout = wait < 0 ? 0 : wait < 1000 ? (int)wait : 1000;
        }
        curl_multi_poll(up->multi, NULL, 0, timeout, NULL);
        int running;
        curl_multi_perform(up->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            on_done(up, msg);
        }
        up_start_waiting(up);
    }
    return NULL;
}

static void post(vg_upstream *up, command *c)
{
    pthread_mutex_lock(&up->lock);
    if (up->stopping) {
        pthread_mutex_unlock(&up->lock);
        if (c->job != NULL)
            up_job_free(up, c->job);
        free(c);
        return;
    }
    if (up->commands_tail != NULL)
        up->commands_tail->next = c;
    else
        up->commands = c;
    up->commands_tail = c;
    pthread_mutex_unlock(&up->lock);
    curl_multi_wakeup(up->multi);
}

static command *command_new(command_kind kind, const char *id)
{
    command *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->kind = kind;
        snprintf(c->id, sizeof(c->id), "%s", id);
    }
    return c;
}

/* ---- the public face --------------------------------------------------- */

static ujob *ujob_new(const char *id)
{
    ujob *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    snprintf(job->id, sizeof(job->id), "%s", id);
    vg_heap_node_init(&job->due);
    job->progress = -1;
    job->seed = job->completion_tokens = job->total_tokens = -1;
    return job;
}

void up_arm(ujob *job, provider *p)
{
    job->poll_ms = p->config.poll_ms > 0 ? p->config.poll_ms
                                         : p->config.adapter->default_poll_ms;
    if (job->poll_ms > p->config.poll_max_ms)
        job->poll_ms = p->config.poll_max_ms;
    job->deadline_ms = vg_now_ms() + (int64_t)p->config.job_timeout_s * 1000;
}

int vg_upstream_submit(vg_upstream *up, const char *job_id,
                       const vg_job_spec *spec,
                       const vg_provider_route *routes, int n_routes,
                       vg_error *err)
{
    ujob *job = ujob_new(job_id);
    command *c = command_new(CMD_START, job_id);
    if (job == NULL || c == NULL) {
        free(job);
        free(c);
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    }
    vg_error first;
    vg_error_clear(&first);
    for (int i = 0; i < n_routes && job->n_routes < MAX_ROUTES; i++) {
        provider *p = up_provider_named(up, routes[i].provider);
        vg_error e;
        if (p == NULL || p->config.api_key[0] == '\0') {
            if (first.code[0] == '\0')
                vg_error_set(&first, 503, "no_provider", "model",
                             "the provider \"%s\" of this model is not "
                             "configured (no API key)",
                             routes[i].provider);
            continue;
        }
        vg_call *call = &job->calls[job->n_routes];
        vg_job_spec route_spec = *spec;
        if (!p->config.image_urls)
            memset(route_spec.image_urls, 0, sizeof(route_spec.image_urls));
        if (p->config.adapter->build_submit(&p->account, routes[i].model,
                                            &route_spec, call, &e) != 0) {
            vg_call_clear(call);
            if (first.code[0] == '\0' || first.status == 503)
                first = e;
            continue;
        }
        job->route_provider[job->n_routes++] = p;
    }
    if (job->n_routes == 0) {
        free(job);
        free(c);
        if (first.code[0] == '\0')
            vg_error_set(&first, 503, "no_provider", "model",
                         "the model has no provider");
        *err = first;
        return -1;
    }
    /* Polls of whichever provider takes it use that provider's interval;
     * armed again when it is submitted. */
    up_arm(job, job->route_provider[0]);
    c->job = job;
    post(up, c);
    return 0;
}

int vg_upstream_resume(vg_upstream *up, const char *job_id,
                       const char *provider_name, const char *task,
                       vg_error *err)
{
    provider *p = up_provider_named(up, provider_name);
    if (p == NULL)
        return vg_error_set(err, 503, "no_provider", NULL,
                            "the provider \"%s\" holding the task is no "
                            "longer configured",
                            provider_name);
    ujob *job = ujob_new(job_id);
    command *c = command_new(CMD_START, job_id);
    if (job == NULL || c == NULL || (job->task = strdup(task)) == NULL) {
        if (job != NULL)
            free(job->task);
        free(job);
        free(c);
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    }
    job->p = p;
    up_arm(job, p);
    c->job = job;
    post(up, c);
    return 0;
}

void vg_upstream_continue(vg_upstream *up, const char *job_id)
{
    command *c = command_new(CMD_CONTINUE, job_id);
    if (c != NULL)
        post(up, c);
}

void vg_upstream_cancel(vg_upstream *up, const char *job_id, bool cancel_task)
{
    command *c = command_new(CMD_CANCEL, job_id);
    if (c == NULL)
        return;
    c->cancel_task = cancel_task;
    post(up, c);
}

void vg_upstream_stored(vg_upstream *up, const char *provider,
                        const char *task)
{
    if (up == NULL || provider == NULL || task == NULL ||
        strlen(task) >= sizeof(((command *)0)->task))
        return;
    command *c = command_new(CMD_DELETE, "");
    if (c == NULL)
        return;
    snprintf(c->provider, sizeof(c->provider), "%s", provider);
    snprintf(c->task, sizeof(c->task), "%s", task);
    post(up, c);
}

/* A Vertex AI provider: its key variable names a service-account key
 * file. Loaded now; the provider stays unconfigured (with an operator
 * log) when the key or the storage for its videos is missing. */
static void setup_vertex(provider *p)
{
    vg_upstream_provider *c = &p->config;
    if (c->api_key[0] == '\0')
        return;
    vg_error err;
    p->sa = vg_sa_key_load(c->api_key, &err);
    if (p->sa == NULL) {
        vg_log_error("provider %s: %s", c->name, err.message);
    } else if (c->storage_uri[0] == '\0') {
        vg_log_error("provider %s: \"storage_uri\" (gs://bucket/prefix) is "
                     "needed: Vertex AI writes the videos there",
                     c->name);
    } else {
        const char *project =
            c->project[0] ? c->project : vg_sa_key_project(p->sa);
        const char *region = c->region[0] ? c->region : "us-central1";
        if (c->base_url[0] == '\0')
            snprintf(c->base_url, sizeof(c->base_url),
                     "https://%s-aiplatform.googleapis.com/v1/projects/%s/"
                     "locations/%s",
                     region, project, region);
        if (*project == '\0' && strstr(c->base_url, "/projects/") == NULL) {
            vg_log_error("provider %s: no project: set \"project\" or use a "
                         "key with a project_id",
                         c->name);
        } else {
            snprintf(c->api_key, sizeof(c->api_key), "%s", VG_OAUTH_MARK);
            p->account.storage_uri = c->storage_uri;
            p->account.storage_url = c->storage_url[0] ? c->storage_url : NULL;
            vg_log_info("provider %s: Vertex AI at %s as %s", c->name,
                        c->base_url, vg_sa_key_email(p->sa));
            return;
        }
    }
    c->api_key[0] = '\0';
    vg_sa_key_free(p->sa);
    p->sa = NULL;
}

vg_upstream *vg_upstream_start(const vg_upstream_provider *providers,
                               int n_providers, const char *tmp_dir,
                               vg_upstream_deliver deliver, void *ctx,
                               vg_error *err)
{
    if (vg_curl_global_init_once() != 0) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "libcurl could not initialise");
        return NULL;
    }
    vg_upstream *up = calloc(1, sizeof(*up));
    if (up == NULL || vg_table_init(&up->jobs, JOB_BUCKETS) != 0 ||
        (up->providers = calloc((size_t)(n_providers > 0 ? n_providers : 1),
                                sizeof(provider))) == NULL) {
        if (up != NULL)
            vg_table_destroy(&up->jobs);
        free(up);
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    up->n_providers = n_providers;
    for (int i = 0; i < n_providers; i++) {
        provider *p = &up->providers[i];
        p->config = providers[i];
        if (p->config.poll_max_ms <= 0)
            p->config.poll_max_ms = 30000;
        if (p->config.breaker_failures <= 0)
            p->config.breaker_failures = 5;
        p->account.name = p->config.name;
        p->account.base_url = p->config.base_url;
        p->account.api_key = p->config.api_key;
        if (p->config.adapter == &vg_adapter_vertex)
            setup_vertex(p);
    }
    snprintf(up->tmp_dir, sizeof(up->tmp_dir), "%s", tmp_dir);
    up->deliver = deliver;
    up->ctx = ctx;
    pthread_mutex_init(&up->lock, NULL);
    up->multi = curl_multi_init();
    if (up->multi == NULL) {
        vg_upstream_free(up);
        vg_error_set(err, 500, "internal_error", NULL,
                     "libcurl could not initialise");
        return NULL;
    }
    /* Many jobs, few hosts: reuse connections. The engine keeps at most
     * MAX_IN_FLIGHT transfers per provider in libcurl (up_launch_xfer), so
     * these limits are rarely what holds a transfer back. */
    curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    curl_multi_setopt(up->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 256L);
    if (pthread_create(&up->thread, NULL, engine_main, up) != 0) {
        vg_upstream_free(up);
        vg_error_set(err, 500, "internal_error", NULL,
                     "cannot start the upstream thread");
        return NULL;
    }
    up->thread_started = true;
    return up;
}

void vg_upstream_free(vg_upstream *up)
{
    if (up == NULL)
        return;
    pthread_mutex_lock(&up->lock);
    up->stopping = true;
    pthread_mutex_unlock(&up->lock);
    if (up->thread_started) {
        curl_multi_wakeup(up->multi);
        pthread_join(up->thread, NULL);
    }
    /* The thread is gone: what is left is ours. */
    command *c = up->commands;
    while (c != NULL) {
        command *next = c->next;
        if (c->job != NULL)
            up_job_free(up, c->job);
        free(c);
        c = next;
    }
    for (size_t b = 0; up->jobs.buckets != NULL && b <= up->jobs.mask; b++)
        while (up->jobs.buckets[b] != NULL)
            up_job_free(up,
                        VG_CONTAINER_OF(up->jobs.buckets[b], ujob, in_table));
    vg_table_destroy(&up->jobs);
    /* Cancel calls still in flight are abandoned. */
    while (up->cancels != NULL)
        up_drop_xfer(up, up->cancels);
    if (up->multi != NULL)
        curl_multi_cleanup(up->multi);
    vg_heap_destroy(&up->timers);
    pthread_mutex_destroy(&up->lock);
    for (int i = 0; up->providers != NULL && i < up->n_providers; i++) {
        vg_sa_key_free(up->providers[i].sa);
        free(up->providers[i].token);
    }
    free(up->providers);
    free(up);
}
