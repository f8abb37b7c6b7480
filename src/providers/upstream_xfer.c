/*
 * upstream_xfer.c - the upstream engine's transfers: one libcurl handle
 * per call, the providers' lines of calls waiting for room, OAuth access
 * tokens, and cancels and deletes that outlive their jobs. See
 * upstream_internal.h.
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

/* ---- transfers --------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    size_t bytes = size * n;
    if (x->file != NULL) {
        if ((int64_t)(x->len + bytes) > x->max_bytes) {
            x->too_big = true;
            return 0;
        }
        if (fwrite(data, 1, bytes, x->file) != bytes)
            return 0;
        x->len += bytes;
        return bytes;
    }
    if (x->len + bytes > REPLY_MAX_BYTES) {
        x->too_big = true;
        return 0;
    }
    if (x->len + bytes + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + bytes + 1)
            cap *= 2;
        char *grown = realloc(x->buf, cap);
        if (grown == NULL)
            return 0;
        x->buf = grown;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, bytes);
    x->len += bytes;
    x->buf[x->len] = '\0';
    return bytes;
}

/* Retry-After (seconds or an HTTP date) and OpenAI's
 * openai-poll-after-ms tell us when to ask again. */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    size_t bytes = size * n;
    char line[256];
    size_t len = bytes < sizeof(line) - 1 ? bytes : sizeof(line) - 1;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "HTTP/", 5) == 0) {
        x->retry_after_ms = -1; /* a new response (after a redirect) */
        return bytes;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return bytes;
    *colon = '\0';
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strcasecmp(line, "Retry-After") == 0) {
        char *end;
        long s = strtol(value, &end, 10);
        if (end != value && *end == '\0' && s >= 0) {
            x->retry_after_ms = (int64_t)s * 1000;
        } else {
            time_t t = curl_getdate(value, NULL);
            if (t > 0) {
                int64_t ms = (int64_t)t * 1000 - vg_now_ms();
                x->retry_after_ms = ms > 0 ? ms : 0;
            }
        }
    } else if (strcasecmp(line, "openai-poll-after-ms") == 0) {
        long ms = strtol(value, NULL, 10);
        if (ms > 0)
            x->retry_after_ms = ms;
    }
    return bytes;
}

void up_xfer_free(xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    curl_mime_free(x->mime);
    vg_call_clear(&x->call);
    free(x->buf);
    if (x->file != NULL) {
        fclose(x->file);
        unlink(x->path);
    }
    free(x);
}

/* Starts a transfer for call (which the transfer takes over). */
/* The call's form parts as a libcurl MIME body; NULL when out of memory
 * (a file part's file is only opened when the body is sent). */
static curl_mime *form_of(CURL *e, const vg_call *call)
{
    curl_mime *mime = curl_mime_init(e);
    bool ok = mime != NULL;
    for (int i = 0; ok && i < call->n_parts; i++) {
        const vg_form_part *p = &call->parts[i];
        curl_mimepart *part = curl_mime_addpart(mime);
        ok = part != NULL && curl_mime_name(part, p->name) == CURLE_OK;
        if (ok && p->file != NULL)
            ok = curl_mime_filedata(part, p->file) == CURLE_OK &&
                 curl_mime_filename(part, p->filename) == CURLE_OK &&
                 curl_mime_type(part, p->type) == CURLE_OK;
        else if (ok)
            ok = curl_mime_data(part, p->value != NULL ? p->value : "",
                                CURL_ZERO_TERMINATED) == CURLE_OK;
    }
    if (!ok) {
        curl_mime_free(mime);
        return NULL;
    }
    return mime;
}

/* A transfer belongs to its job, or, when it outlives any job (cancels,
 * deletes, tokens), to the engine's list. */
static void link_xfer(vg_upstream *up, ujob *job, xfer *x)
{
    if (job != NULL) {
        job->xfer = x;
    } else {
        x->prev_cancel = NULL;
        x->next_cancel = up->cancels;
        if (up->cancels != NULL)
            up->cancels->prev_cancel = x;
        up->cancels = x;
    }
}

void up_unlink_xfer(vg_upstream *up, xfer *x)
{
    if (x->job != NULL) {
        x->job->xfer = NULL;
    } else if (x->prev_cancel != NULL || up->cancels == x) {
        /* Doubly linked: deletes after storing can number thousands. */
        if (x->prev_cancel != NULL)
            x->prev_cancel->next_cancel = x->next_cancel;
        else
            up->cancels = x->next_cancel;
        if (x->next_cancel != NULL)
            x->next_cancel->prev_cancel = x->prev_cancel;
        x->prev_cancel = x->next_cancel = NULL;
    }
    if (x->waiting) {
        provider *p = x->p;
        int line = x->waiting - 1;
        if (x->prev_wait != NULL)
            x->prev_wait->next_wait = x->next_wait;
        else
            p->wait_head[line] = x->next_wait;
        if (x->next_wait != NULL)
            x->next_wait->prev_wait = x->prev_wait;
        else
            p->wait_tail[line] = x->prev_wait;
        x->prev_wait = x->next_wait = NULL;
        x->waiting = 0;
        atomic_fetch_sub_explicit(&p->lined, 1, memory_order_relaxed);
    }
    if (x->held) {
        xfer **h = &x->p->held;
        while (*h != NULL && *h != x)
            h = &(*h)->next_held;
        if (*h == x)
            *h = x->next_held;
        x->held = false;
    }
}

static bool wants_token(const vg_call *call);
static bool token_fresh(const provider *p);
static void fetch_token(vg_upstream *up, provider *p);
static void token_arrived(vg_upstream *up, provider *p);
static int add_xfer(vg_upstream *up, xfer *x);

int up_start_xfer(vg_upstream *up, ujob *job, provider *p, xfer_kind kind,
                  vg_call *call)
{
    xfer *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        vg_call_clear(call);
        return -1;
    }
    x->kind = kind;
    x->job = job;
    x->p = p;
    x->call = *call;
    memset(call, 0, sizeof(*call));
    x->retry_after_ms = -1;
    if (p->sa != NULL && kind != XFER_TOKEN && wants_token(&x->call) &&
        !token_fresh(p)) {
        /* Held until the provider has a token (token_arrived). */
        x->held = true;
        x->next_held = p->held;
        p->held = x;
        link_xfer(up, job, x);
        fetch_token(up, p);
        return 0;
    }
    return up_launch_xfer(up, x);
}

/* Puts the provider's access token where the adapter left the mark, or
 * drops the header when there is none (the provider then answers 401,
 * which is reported as a key problem). */
static void insert_token(provider *p, vg_call *call)
{
    for (int i = 0; i < call->n_headers; i++) {
        if (strcmp(call->headers[i], VG_OAUTH_HEADER) != 0)
            continue;
        char *line = NULL;
        if (p->token != NULL &&
            asprintf(&line, "Authorization: Bearer %s", p->token) < 0)
            line = NULL;
        free(call->headers[i]);
        if (line != NULL) {
            call->headers[i] = line;
        } else {
            call->headers[i] = call->headers[--call->n_headers];
            i--;
        }
    }
}

/* Sends a prepared transfer: the easy handle, its options, the multi. */
int up_launch_xfer(vg_upstream *up, xfer *x)
{
    ujob *job = x->job;
    provider *p = x->p;
    xfer_kind kind = x->kind;
    if (x->held) /* it was linked while it waited: linked again below */
        up_unlink_xfer(up, x);
    if (p->in_flight >= MAX_IN_FLIGHT) {
        /* Prepared when one of the provider's transfers ends
         * (up_start_waiting): its timeouts count from then, not from a wait
         * behind thousands of others, and a waiting transfer costs no
         * libcurl handle. Submits go first, so that a burst reaches the
         * provider while polls wait. */
        int line = kind == XFER_SUBMIT ? 0 : 1;
        link_xfer(up, job, x);
        x->waiting = line + 1;
        x->next_wait = NULL;
        x->prev_wait = p->wait_tail[line];
        if (p->wait_tail[line] != NULL)
            p->wait_tail[line]->next_wait = x;
        else
            p->wait_head[line] = x;
        p->wait_tail[line] = x;
        atomic_fetch_add_explicit(&p->lined, 1, memory_order_relaxed);
        return 0;
    }
    if (p->sa != NULL)
        insert_token(p, &x->call);
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        up_xfer_free(x);
        return -1;
    }
    CURL *e = x->easy;
    for (int i = 0; i < x->call.n_headers; i++) {
        struct curl_slist *h =
            curl_slist_append(x->headers, x->call.headers[i]);
        if (h == NULL) {
            up_xfer_free(x);
            return -1;
        }
        x->headers = h;
    }
    /* libcurl adds "Expect: 100-continue" to large bodies; providers do
     * not need the extra round trip. */
    struct curl_slist *h = curl_slist_append(x->headers, "Expect:");
    if (h != NULL)
        x->headers = h;
    /* Result URLs come from the provider, not the operator: the address
     * policy applies to downloads. Redirects (Google answers its download
     * with one) are followed by hand, one transfer per hop, so the
     * adapter decides again for each host whether it gets the key:
     * libcurl would send every custom header to any host. */
    bool download = kind == XFER_DOWNLOAD;
    vg_outbound_setup(
        e, &(vg_outbound){
               .url = x->call.url,
               .user_agent = "vidgate",
               .connect_timeout_ms = (long)p->config.connect_timeout_s * 1000L,
               .timeout_ms = (long)(download ? p->config.download_timeout_s
                                             : p->config.request_timeout_s) *
                             1000L,
               .restrict_addresses = download,
               .allow_private = p->config.allow_private,
               .refusal_note = x->note,
               .write = on_body,
               .write_data = x,
               .error = x->error,
               .private_data = x,
           });
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (strcmp(x->call.method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->call.method);
    if (x->call.n_parts > 0) {
        /* libcurl writes the multipart body (and its Content-Type with
         * the boundary), reading file parts as it sends them. */
        x->mime = form_of(e, &x->call);
        if (x->mime == NULL) {
            up_xfer_free(x);
            return -1;
        }
        curl_easy_setopt(e, CURLOPT_MIMEPOST, x->mime);
    } else if (x->call.body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->call.body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->call.body));
    } else if (strcmp(x->call.method, "POST") == 0 ||
               strcmp(x->call.method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (download) {
        snprintf(x->path, sizeof(x->path), "%s/%s.upstream", up->tmp_dir,
                 job->id);
        x->file = fopen(x->path, "wb");
        if (x->file == NULL) {
            vg_log_error("job %s: cannot create %s: %s", job->id, x->path,
                         strerror(errno));
            up_xfer_free(x);
            return -1;
        }
        x->max_bytes = p->config.max_video_bytes;
    }
    if (add_xfer(up, x) != 0) {
        up_xfer_free(x);
        return -1;
    }
    link_xfer(up, job, x);
    return 0;
}

/* Hands a prepared transfer to libcurl. */
static int add_xfer(vg_upstream *up, xfer *x)
{
    if (curl_multi_add_handle(up->multi, x->easy) != CURLM_OK)
        return -1;
    x->counted = true;
    x->p->in_flight++;
    return 0;
}

/* Takes a transfer out of libcurl, if it is there (up_unlink_xfer takes it
 * out of its line). */
void up_detach_xfer(vg_upstream *up, xfer *x)
{
    if (x->counted) {
        curl_multi_remove_handle(up->multi, x->easy);
        x->counted = false;
        x->p->in_flight--;
    }
}

/* Starts waiting transfers while their providers have room. */
void up_start_waiting(vg_upstream *up)
{
    for (int i = 0; i < up->n_providers; i++) {
        provider *p = &up->providers[i];
        for (int line = 0; line < 2; line++) {
            while (p->in_flight < MAX_IN_FLIGHT && p->wait_head[line]) {
                xfer *x = p->wait_head[line];
                ujob *job = x->job;
                up_unlink_xfer(up, x);
                if (up_launch_xfer(up, x) != 0 && job != NULL)
                    up_fail_job(up, job, 500, "internal_error",
                                "cannot start an upstream request");
            }
        }
    }
}

/* Whether the call carries the OAuth mark (oauth.h). */
static bool wants_token(const vg_call *call)
{
    for (int i = 0; i < call->n_headers; i++)
        if (strcmp(call->headers[i], VG_OAUTH_HEADER) == 0)
            return true;
    return false;
}

/* A token is used until five minutes before it ends. */
static bool token_fresh(const provider *p)
{
    return p->token != NULL &&
           vg_now_ms() < p->token_expires_ms - 5 * 60 * 1000;
}

/* Starts fetching an access token unless one is on its way. */
static void fetch_token(vg_upstream *up, provider *p)
{
    if (p->token_fetching)
        return;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    if (vg_sa_token_call(p->sa, vg_now_ms() / 1000, &call, &err) != 0) {
        vg_log_error("provider %s: %s", p->config.name, err.message);
        token_arrived(up, p);
        return;
    }
    p->token_fetching = true;
    if (up_start_xfer(up, NULL, p, XFER_TOKEN, &call) != 0) {
        p->token_fetching = false;
        token_arrived(up, p);
    }
}

/* The token fetch ended (p->token is fresh, or the fetch failed): the
 * held calls go, with the token or without one. */
static void token_arrived(vg_upstream *up, provider *p)
{
    xfer *list = p->held;
    p->held = NULL;
    while (list != NULL) {
        xfer *x = list;
        list = x->next_held;
        x->next_held = NULL;
        ujob *job = x->job;
        if (up_launch_xfer(up, x) != 0 && job != NULL)
            up_fail_job(up, job, 500, "internal_error",
                        "cannot start an upstream request");
    }
}

/* The answer of a token fetch. */
void up_on_token_done(vg_upstream *up, xfer *x, CURLcode rc, long status)
{
    provider *p = x->p;
    p->token_fetching = false;
    vg_reply reply = {(int)status, x->buf != NULL ? x->buf : "", x->len};
    char *token = NULL;
    int64_t expires_s = 0;
    vg_error err;
    if (rc != CURLE_OK) {
        vg_log_error("provider %s: cannot get an access token from %s: %s",
                     p->config.name, x->call.url, curl_easy_strerror(rc));
    } else if (status < 200 || status >= 300) {
        char reason[256];
        vg_reply_classify(&reply, reason, sizeof(reason));
        vg_log_error("provider %s: the token endpoint %s refused the "
                     "service account %s (%ld): %s",
                     p->config.name, x->call.url, vg_sa_key_email(p->sa),
                     status, reason);
    } else if (vg_sa_token_parse(&reply, &token, &expires_s, &err) != 0) {
        vg_log_error("provider %s: %s", p->config.name, err.message);
    } else {
        free(p->token);
        p->token = token;
        p->token_expires_ms = vg_now_ms() + expires_s * 1000;
    }
    token_arrived(up, p);
}

/* Stops a transfer in flight. */
void up_drop_xfer(vg_upstream *up, xfer *x)
{
    if (x == NULL)
        return;
    up_detach_xfer(up, x);
    if (x->kind == XFER_TOKEN)
        x->p->token_fetching = false;
    up_unlink_xfer(up, x);
    up_xfer_free(x);
}

/* Asks the provider to cancel the job's task, without waiting. */
void up_send_cancel(vg_upstream *up, ujob *job)
{
    provider *p = job->p;
    if (p == NULL || job->task == NULL)
        return;
    if (p->config.adapter->build_cancel == NULL) {
        vg_log_warn("job %s: cancelled and refunded here, but %s has no "
                    "cancel: its task %s keeps running upstream (and may be "
                    "billed)",
                    job->id, p->config.name, job->task);
        return;
    }
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    if (p->config.adapter->build_cancel(&p->account, job->task, &call, &err) !=
        0) {
        vg_call_clear(&call);
        return;
    }
    vg_log_info("job %s: cancelling its task at %s", job->id, p->config.name);
    up_start_xfer(up, NULL, p, XFER_CANCEL, &call);
}

/* Deletes a stored result's upstream copy, where the provider is
 * configured to and its protocol can; nothing waits for the answer. */
void up_send_delete(vg_upstream *up, const char *name, const char *task)
{
    provider *p = up_provider_named(up, name);
    if (p == NULL || !p->config.delete_after_store ||
        p->config.adapter->build_delete == NULL)
        return;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    if (p->config.adapter->build_delete(&p->account, task, &call, &err) != 0) {
        vg_call_clear(&call);
        return;
    }
    up_start_xfer(up, NULL, p, XFER_CANCEL, &call);
}

void up_job_free(vg_upstream *up, ujob *job)
{
    if (job->probe != NULL) {
        pthread_mutex_lock(&up->lock);
        if (job->probe->state == CIRCUIT_HALF_OPEN)
            job->probe->probing = false; /* the next submit probes */
        pthread_mutex_unlock(&up->lock);
        job->probe = NULL;
    }
    vg_table_remove(&up->jobs, &job->in_table);
    vg_heap_remove(&up->timers, &job->due);
    up_drop_xfer(up, job->xfer);
    if (job->p != NULL)
        up_count_job(up, job->p, -1);
    for (int i = 0; i < job->n_routes; i++)
        vg_call_clear(&job->calls[i]);
    free(job->task);
    free(job->fetch_url);
    free(job->video_url);
    free(job);
}
