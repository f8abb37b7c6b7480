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
#include "providers/upstream.h"

#include "providers/oauth.h"

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

#define JOB_BUCKETS 4096 /* to begin with: the table grows */
#define MAX_ROUTES 8
#define REPLY_MAX_BYTES (1 << 20)
#define SUBMIT_RETRIES 3       /* 429s on one route before moving on */
#define RETRY_AFTER_MAX_MS 60000
#define POLL_ERRORS_MAX 10     /* failed polls in a row before giving up */
#define DOWNLOAD_TRIES 3
#define DOWNLOAD_REDIRECTS 5
/* Transfers one provider has in flight at most (as many as libcurl keeps
 * connections to one host); the rest wait in the provider's lines. */
#define MAX_IN_FLIGHT 64

typedef enum job_phase {
    SUBMITTING,
    RECORDING,
    WAITING,
    POLLING,
    DOWNLOADING
} job_phase;

typedef enum xfer_kind {
    XFER_SUBMIT,
    XFER_POLL,
    XFER_DOWNLOAD,
    XFER_CANCEL, /* and other calls that outlive their job (deletes) */
    XFER_TOKEN   /* an OAuth provider's access token */
} xfer_kind;

typedef enum circuit {
    CIRCUIT_CLOSED,
    CIRCUIT_OPEN,
    CIRCUIT_HALF_OPEN
} circuit;

typedef struct xfer xfer;

typedef struct provider {
    vg_upstream_provider config;
    vg_upstream_account account;
    /* Under up->lock: */
    circuit state;
    int failures;        /* consecutive */
    int64_t opened_ms;   /* when the circuit last opened */
    bool probing;        /* half-open: the one probe is out */
    int jobs;            /* jobs holding a task or submitting here */
    bool seen_allowed;   /* availability as last reported by
                            vg_upstream_availability_version */
    /* OAuth providers (google-vertex), engine thread only: the
     * service-account key, the current access token and its end, and the
     * calls held while a token is fetched. */
    vg_sa_key *sa;
    char *token;
    int64_t token_expires_ms;
    bool token_fetching;
    xfer *held;
    /* Engine thread only: transfers in libcurl, and those waiting for one
     * of them to end, submits first (see launch_xfer). */
    int in_flight;
    xfer *wait_head[2], *wait_tail[2];
    /* How many wait in those lines, for vg_upstream_lined (any thread). */
    atomic_int lined;
} provider;

typedef struct ujob ujob;

struct ujob {
    char id[37];
    vg_table_node in_table; /* in up->jobs, by id */
    job_phase phase;
    /* Submitting: one prepared call per route. */
    vg_call calls[MAX_ROUTES];
    provider *route_provider[MAX_ROUTES];
    int n_routes;
    int route;        /* the route being tried */
    int submit_tries; /* on this route */
    vg_error last_error; /* why the last route failed */
    /* Once submitted: */
    provider *p;
    char *task;
    int poll_ms;
    int poll_errors;
    int downloads;
    int redirects;
    int progress;
    int64_t deadline_ms;
    int64_t seed, completion_tokens, total_tokens;
    char *fetch_url;  /* FETCH: the next poll reads this */
    char *video_url;
    vg_heap_node due; /* its next step's time, on the timer heap */
    xfer *xfer;     /* the transfer in flight, if any */
    bool cancelled; /* by its client while its submit was in flight */
    provider *probe; /* the half-open provider whose probe this job holds */
};

struct xfer {
    CURL *easy;
    xfer_kind kind;
    ujob *job; /* NULL for cancel calls, which outlive their job */
    provider *p;
    struct curl_slist *headers;
    curl_mime *mime; /* a multipart call's body */
    vg_call call;
    char *buf;
    size_t len, cap;
    FILE *file;
    char path[4200];
    int64_t max_bytes;
    bool too_big;
    int64_t retry_after_ms;
    char note[VG_REFUSAL_NOTE_MAX];
    char error[CURL_ERROR_SIZE];
    xfer *next_cancel, *prev_cancel; /* job-less: in up->cancels */
    bool held;         /* waiting for its provider's access token */
    xfer *next_held;
    bool counted;      /* in libcurl: one of its provider's in_flight */
    int waiting;       /* 1 + the line it waits in, or 0 */
    xfer *prev_wait, *next_wait;
};

typedef enum command_kind {
    CMD_START,
    CMD_CONTINUE,
    CMD_CANCEL,
    CMD_DELETE /* the result is stored: delete the upstream copy */
} command_kind;

typedef struct command command;
struct command {
    command_kind kind;
    char id[37];
    ujob *job; /* CMD_START */
    bool cancel_task;
    char provider[32]; /* CMD_DELETE */
    char task[1024];   /* CMD_DELETE */
    command *next;
};

struct vg_upstream {
    provider *providers;
    int n_providers;
    char tmp_dir[4096];
    vg_upstream_deliver deliver;
    void *ctx;
    CURLM *multi;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t lock;
    command *commands, *commands_tail;
    bool stopping;
    uint64_t availability_version; /* under lock */

    /* Engine thread only. */
    vg_table jobs; /* by id */
    vg_heap timers; /* jobs by their next step's time */
    xfer *cancels; /* cancel calls in flight */
};

/* ---- small things ------------------------------------------------------ */

static provider *provider_named(vg_upstream *up, const char *name)
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
static void schedule(vg_upstream *up, ujob *job, int64_t due_ms)
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
static bool breaker_allows_locked(provider *p, int64_t now, bool take)
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

static void breaker_record(vg_upstream *up, provider *p, bool ok,
                           const char *why)
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
                        p->config.name, p->config.breaker_open_s,
                        p->failures, why);
        }
    }
    pthread_mutex_unlock(&up->lock);
}

/* A poll answered: a closed circuit's failure count starts over; an open
 * or half-open one waits for its probe. */
static void breaker_poll_ok(vg_upstream *up, provider *p)
{
    pthread_mutex_lock(&up->lock);
    if (p->state == CIRCUIT_CLOSED)
        p->failures = 0;
    pthread_mutex_unlock(&up->lock);
}

static void count_job(vg_upstream *up, provider *p, int delta)
{
    pthread_mutex_lock(&up->lock);
    p->jobs += delta;
    pthread_mutex_unlock(&up->lock);
}

bool vg_upstream_available(vg_upstream *up, const char *name)
{
    provider *p = provider_named(up, name);
    if (p == NULL)
        return false;
    pthread_mutex_lock(&up->lock);
    bool ok = breaker_allows_locked(p, vg_now_ms(), false);
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
        bool ok = breaker_allows_locked(p, now, false);
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
    breaker_allows_locked(p, vg_now_ms(), false); /* open -> half-open */
    json_t *entry = json_pack(
        "{s:s, s:b, s:s, s:i, s:i}", "protocol", p->config.adapter->name,
        "configured", p->config.api_key[0] != '\0', "circuit",
        circuit_name(p->state), "consecutive_failures", p->failures, "jobs",
        p->jobs);
    pthread_mutex_unlock(&up->lock);
    return entry;
}

/* ---- events ------------------------------------------------------------ */

static vg_provider_event *event_new(ujob *job, vg_provider_event_kind kind)
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

static void job_free(vg_upstream *up, ujob *job);
static void arm(ujob *job, provider *p);

/* Ends the job with an error; the job is gone afterwards. */
static void fail_job(vg_upstream *up, ujob *job, int status, const char *code,
                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail_job(vg_upstream *up, ujob *job, int status, const char *code,
                     const char *fmt, ...)
{
    vg_provider_event *ev = event_new(job, VG_EVENT_FAILED);
    if (ev != NULL) {
        ev->error.status = status;
        snprintf(ev->error.code, sizeof(ev->error.code), "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ev->error.message, sizeof(ev->error.message), fmt, ap);
        va_end(ap);
    }
    job_free(up, job);
    if (ev != NULL)
        up->deliver(up->ctx, ev);
}

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

static void xfer_free(xfer *x)
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

static void unlink_xfer(vg_upstream *up, xfer *x)
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
static int launch_xfer(vg_upstream *up, xfer *x);
static int add_xfer(vg_upstream *up, xfer *x);

static int start_xfer(vg_upstream *up, ujob *job, provider *p,
                      xfer_kind kind, vg_call *call)
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
    return launch_xfer(up, x);
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
static int launch_xfer(vg_upstream *up, xfer *x)
{
    ujob *job = x->job;
    provider *p = x->p;
    xfer_kind kind = x->kind;
    if (x->held) /* it was linked while it waited: linked again below */
        unlink_xfer(up, x);
    if (p->in_flight >= MAX_IN_FLIGHT) {
        /* Prepared when one of the provider's transfers ends
         * (start_waiting): its timeouts count from then, not from a wait
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
        xfer_free(x);
        return -1;
    }
    CURL *e = x->easy;
    for (int i = 0; i < x->call.n_headers; i++) {
        struct curl_slist *h = curl_slist_append(x->headers,
                                                 x->call.headers[i]);
        if (h == NULL) {
            xfer_free(x);
            return -1;
        }
        x->headers = h;
    }
    /* libcurl adds "Expect: 100-continue" to large bodies; providers do
     * not need the extra round trip. */
    struct curl_slist *h = curl_slist_append(x->headers, "Expect:");
    if (h != NULL)
        x->headers = h;
    curl_easy_setopt(e, CURLOPT_URL, x->call.url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vidgate");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
                     (long)p->config.connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (strcmp(x->call.method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->call.method);
    if (x->call.n_parts > 0) {
        /* libcurl writes the multipart body (and its Content-Type with
         * the boundary), reading file parts as it sends them. */
        x->mime = form_of(e, &x->call);
        if (x->mime == NULL) {
            xfer_free(x);
            return -1;
        }
        curl_easy_setopt(e, CURLOPT_MIMEPOST, x->mime);
    } else if (x->call.body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->call.body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         (long)strlen(x->call.body));
    } else if (strcmp(x->call.method, "POST") == 0 ||
               strcmp(x->call.method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (kind == XFER_DOWNLOAD) {
        /* Result URLs come from the provider, not the operator: the
         * address policy applies. Redirects (Google answers its
         * download with one) are followed by hand, one transfer per hop,
         * so the adapter decides again for each host whether it gets the
         * key: libcurl would send every custom header to any host. */
        snprintf(x->path, sizeof(x->path), "%s/%s.upstream", up->tmp_dir,
                 job->id);
        x->file = fopen(x->path, "wb");
        if (x->file == NULL) {
            vg_log_error("job %s: cannot create %s: %s", job->id, x->path,
                         strerror(errno));
            xfer_free(x);
            return -1;
        }
        x->max_bytes = p->config.max_video_bytes;
        curl_easy_setopt(e, CURLOPT_TIMEOUT,
                         (long)p->config.download_timeout_s);
        vg_curl_restrict_addresses_noting(e, p->config.allow_private,
                                          x->note);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT,
                         (long)p->config.request_timeout_s);
    }
    if (add_xfer(up, x) != 0) {
        xfer_free(x);
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

/* Takes a transfer out of libcurl, if it is there (unlink_xfer takes it
 * out of its line). */
static void detach_xfer(vg_upstream *up, xfer *x)
{
    if (x->counted) {
        curl_multi_remove_handle(up->multi, x->easy);
        x->counted = false;
        x->p->in_flight--;
    }
}

/* Starts waiting transfers while their providers have room. */
static void start_waiting(vg_upstream *up)
{
    for (int i = 0; i < up->n_providers; i++) {
        provider *p = &up->providers[i];
        for (int line = 0; line < 2; line++) {
            while (p->in_flight < MAX_IN_FLIGHT && p->wait_head[line]) {
                xfer *x = p->wait_head[line];
                ujob *job = x->job;
                unlink_xfer(up, x);
                if (launch_xfer(up, x) != 0 && job != NULL)
                    fail_job(up, job, 500, "internal_error",
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
    if (start_xfer(up, NULL, p, XFER_TOKEN, &call) != 0) {
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
        if (launch_xfer(up, x) != 0 && job != NULL)
            fail_job(up, job, 500, "internal_error",
                     "cannot start an upstream request");
    }
}

/* The answer of a token fetch. */
static void on_token_done(vg_upstream *up, xfer *x, CURLcode rc, long status)
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
static void drop_xfer(vg_upstream *up, xfer *x)
{
    if (x == NULL)
        return;
    detach_xfer(up, x);
    if (x->kind == XFER_TOKEN)
        x->p->token_fetching = false;
    unlink_xfer(up, x);
    xfer_free(x);
}

/* Asks the provider to cancel the job's task, without waiting. */
static void send_cancel(vg_upstream *up, ujob *job)
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
    if (p->config.adapter->build_cancel(&p->account, job->task, &call,
                                        &err) != 0) {
        vg_call_clear(&call);
        return;
    }
    vg_log_info("job %s: cancelling its task at %s", job->id,
                p->config.name);
    start_xfer(up, NULL, p, XFER_CANCEL, &call);
}

/* Deletes a stored result's upstream copy, where the provider is
 * configured to and its protocol can; nothing waits for the answer. */
static void send_delete(vg_upstream *up, const char *name, const char *task)
{
    provider *p = provider_named(up, name);
    if (p == NULL || !p->config.delete_after_store ||
        p->config.adapter->build_delete == NULL)
        return;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    if (p->config.adapter->build_delete(&p->account, task, &call, &err) !=
        0) {
        vg_call_clear(&call);
        return;
    }
    start_xfer(up, NULL, p, XFER_CANCEL, &call);
}

static void job_free(vg_upstream *up, ujob *job)
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
    drop_xfer(up, job->xfer);
    if (job->p != NULL)
        count_job(up, job->p, -1);
    for (int i = 0; i < job->n_routes; i++)
        vg_call_clear(&job->calls[i]);
    free(job->task);
    free(job->fetch_url);
    free(job->video_url);
    free(job);
}

/* ---- submitting -------------------------------------------------------- */

static void submit_next(vg_upstream *up, ujob *job);

/* Sends the current route's submit (a copy: a retry sends it again). */
static void send_submit(vg_upstream *up, ujob *job)
{
    vg_call copy;
    if (vg_call_copy(&copy, &job->calls[job->route]) != 0) {
        fail_job(up, job, 500, "internal_error", "out of memory");
        return;
    }
    job->phase = SUBMITTING;
    if (start_xfer(up, job, job->route_provider[job->route], XFER_SUBMIT,
                   &copy) != 0)
        fail_job(up, job, 500, "internal_error",
                 "cannot start an upstream request");
}

/* Moves to the next route whose provider takes submits now, or fails
 * with the last route's error when none is left. */
static void submit_next(vg_upstream *up, ujob *job)
{
    int64_t now = vg_now_ms();
    for (job->route++; job->route < job->n_routes; job->route++) {
        provider *p = job->route_provider[job->route];
        pthread_mutex_lock(&up->lock);
        bool was_probing = p->state == CIRCUIT_HALF_OPEN && p->probing;
        bool ok = breaker_allows_locked(p, now, true);
        if (ok && p->state == CIRCUIT_HALF_OPEN && !was_probing)
            job->probe = p;
        pthread_mutex_unlock(&up->lock);
        if (!ok)
            continue;
        job->submit_tries = 0;
        if (job->route > 0 && job->last_error.code[0] != '\0')
            vg_log_warn("job %s: failing over to %s", job->id,
                        p->config.name);
        send_submit(up, job);
        return;
    }
    if (job->last_error.code[0] == '\0')
        fail_job(up, job, 503, "no_provider",
                 "no provider of this model is available now (every one "
                 "is unconfigured or failing); the credits were refunded");
    else
        fail_job(up, job, job->last_error.status, job->last_error.code, "%s",
                 job->last_error.message);
}

static void route_failed(vg_upstream *up, ujob *job, provider *p, int status,
                         const char *code, const char *message)
{
    vg_error_set(&job->last_error, status, code, NULL, "%s: %s",
                 p->config.name, message);
    submit_next(up, job);
}

/* A job cancelled while its submit was in flight: learn the task from
 * the answer to cancel it upstream, then forget the job. */
static void cancel_late_task(vg_upstream *up, ujob *job, xfer *x,
                             CURLcode rc, long status)
{
    vg_reply reply = {(int)status, x->buf != NULL ? x->buf : "", x->len};
    char *task = NULL;
    vg_error err;
    if (rc == CURLE_OK && status >= 200 && status < 300 &&
        x->p->config.adapter->parse_submit(&reply, &task, &err) == 0) {
        job->p = x->p;
        count_job(up, job->p, 1);
        job->task = task;
        send_cancel(up, job);
    }
    job_free(up, job);
}

static void on_submit_done(vg_upstream *up, ujob *job, xfer *x,
                           CURLcode rc, long status)
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
        vg_log_warn("job %s: submit to %s failed: %s", job->id,
                    p->config.name, x->error[0] ? x->error
                                                : curl_easy_strerror(rc));
        breaker_record(up, p, false, curl_easy_strerror(rc));
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
            breaker_record(up, p, false, "malformed answer");
            route_failed(up, job, p, 502, "upstream_malformed",
                         "the provider's answer could not be read");
            return;
        }
        breaker_record(up, p, true, NULL);
        job->probe = NULL;
        job->p = p;
        arm(job, p);
        count_job(up, p, 1);
        job->task = task;
        job->phase = RECORDING;
        for (int i = 0; i < job->n_routes; i++)
            vg_call_clear(&job->calls[i]);
        job->n_routes = 0;
        vg_provider_event *ev = event_new(job, VG_EVENT_SUBMITTED);
        if (ev == NULL || (ev->task = strdup(task)) == NULL) {
            vg_provider_event_free(ev);
            fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        up->deliver(up->ctx, ev);
        return;
    }
    switch (kind) {
    case VG_REPLY_REJECTED:
        /* The provider works; it refuses this request. */
        breaker_record(up, p, true, NULL);
        fail_job(up, job, 400, "upstream_rejected",
                 "%s refused the request: %s", p->config.name, reason);
        return;
    case VG_REPLY_NO_BALANCE:
        vg_log_error("provider %s: the account has no balance left (%s); "
                     "top it up — jobs go to other providers meanwhile",
                     p->config.name, reason);
        breaker_record(up, p, false, "no balance");
        route_failed(up, job, p, 503, "upstream_no_balance",
                     "the provider account of this server is out of "
                     "credit; the operator has been told");
        return;
    case VG_REPLY_AUTH:
        vg_log_error("provider %s refused the API key (HTTP %ld: %s); "
                     "check its api_key_env",
                     p->config.name, status, reason);
        breaker_record(up, p, false, "key refused");
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
                    "%lld ms", job->id, p->config.name, (long long)wait);
        job->phase = SUBMITTING;
        schedule(up, job, vg_now_ms() + wait);
        return;
    }
    vg_log_warn("job %s: submit to %s failed with HTTP %ld: %s", job->id,
                p->config.name, status, reason);
    breaker_record(up, p, false, reason);
    route_failed(up, job, p, 502, "upstream_unavailable", reason);
}

/* ---- polling ----------------------------------------------------------- */

static void poll_later(vg_upstream *up, ujob *job, int64_t retry_after_ms)
{
    int64_t now = vg_now_ms();
    if (now >= job->deadline_ms) {
        send_cancel(up, job);
        fail_job(up, job, 504, "upstream_timeout",
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
    schedule(up, job, now + wait);
}

static void send_poll(vg_upstream *up, ujob *job)
{
    provider *p = job->p;
    vg_call call;
    memset(&call, 0, sizeof(call));
    vg_error err;
    int rc;
    if (job->fetch_url == NULL)
        rc = p->config.adapter->build_poll(&p->account, job->task, &call,
                                           &err);
    else if (p->config.adapter->build_download != NULL)
        /* A result fetch (fal's response_url) carries the key the way a
         * download does. */
        rc = p->config.adapter->build_download(&p->account, job->fetch_url,
                                               &call, &err);
    else
        rc = vg_call_set(&call, "GET", "", "%s", job->fetch_url);
    if (rc != 0) {
        vg_call_clear(&call);
        fail_job(up, job, 500, "internal_error",
                 "cannot poll the task at %s: %s", p->config.name,
                 err.message);
        return;
    }
    job->phase = POLLING;
    if (start_xfer(up, job, p, XFER_POLL, &call) != 0)
        fail_job(up, job, 500, "internal_error",
                 "cannot start an upstream request");
}

static void send_download(vg_upstream *up, ujob *job)
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
        fail_job(up, job, 502, "upstream_failed",
                 "the result URL from %s cannot be used", p->config.name);
        return;
    }
    job->phase = DOWNLOADING;
    job->downloads++;
    if (start_xfer(up, job, p, XFER_DOWNLOAD, &call) != 0)
        fail_job(up, job, 500, "internal_error",
                 "cannot start the download of the result");
}

/* A failed poll: try again later, up to a point. */
static void poll_failed(vg_upstream *up, ujob *job, provider *p,
                        bool count, const char *why, int64_t retry_after)
{
    if (count)
        breaker_record(up, p, false, why);
    if (++job->poll_errors >= POLL_ERRORS_MAX) {
        fail_job(up, job, 502, "upstream_unavailable",
                 "%s stopped answering about the task (%s); the credits "
                 "were refunded",
                 p->config.name, why);
        return;
    }
    vg_log_warn("job %s: poll at %s failed (%s): trying again", job->id,
                p->config.name, why);
    poll_later(up, job, retry_after);
}

static void on_poll_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
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
        breaker_poll_ok(up, p);
        fail_job(up, job, 502, "upstream_failed",
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
    breaker_poll_ok(up, p);
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
            vg_provider_event *ev = event_new(job, VG_EVENT_PROGRESS);
            if (ev != NULL) {
                ev->progress = pct;
                up->deliver(up->ctx, ev);
            }
        }
        poll_later(up, job, retry_after);
        break;
    }
    case VG_TASK_FETCH:
        free(job->fetch_url);
        job->fetch_url = st.fetch_url;
        st.fetch_url = NULL;
        send_poll(up, job);
        break;
    case VG_TASK_SUCCEEDED:
        free(job->video_url);
        job->video_url = st.video_url;
        st.video_url = NULL;
        if (job->video_url == NULL)
            fail_job(up, job, 502, "upstream_failed",
                     "%s reported success without a video",
                     p->config.name);
        else
            send_download(up, job);
        break;
    case VG_TASK_FAILED:
        fail_job(up, job,
                 strcmp(st.error_code, "content_filtered") == 0 ? 400 : 502,
                 st.error_code[0] ? st.error_code : "upstream_failed",
                 "%s: %s", p->config.name,
                 st.error_message[0] ? st.error_message
                                     : "the provider could not make the "
                                       "video");
        break;
    case VG_TASK_CANCELLED:
        fail_job(up, job, 502, "upstream_cancelled",
                 "%s cancelled the task", p->config.name);
        break;
    }
    vg_task_status_clear(&st);
}

static void on_download_done(vg_upstream *up, ujob *job, xfer *x,
                             CURLcode rc, long status)
{
    provider *p = x->p;
    if (x->too_big) {
        fail_job(up, job, 502, "upstream_bad_video",
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
            fail_job(up, job, 502, "upstream_download_failed",
                     "the video from %s could not be downloaded (more "
                     "than %d redirects)",
                     p->config.name, DOWNLOAD_REDIRECTS);
            return;
        }
        char *next = strdup(location);
        if (next == NULL) {
            fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        free(job->video_url);
        job->video_url = next;
        job->downloads--; /* a hop is not a failed try */
        /* Next hop once this transfer (and its file) is gone. */
        job->phase = DOWNLOADING;
        schedule(up, job, vg_now_ms());
        return;
    }
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        if (fclose(x->file) != 0) {
            x->file = NULL;
            fail_job(up, job, 500, "storage_failed",
                     "the downloaded video could not be written");
            return;
        }
        x->file = NULL;
        vg_provider_event *ev = event_new(job, VG_EVENT_DONE);
        if (ev != NULL && job->task != NULL)
            ev->task = strdup(job->task); /* NULL is only a lost delete */
        if (ev == NULL || (ev->file = strdup(x->path)) == NULL) {
            unlink(x->path);
            vg_provider_event_free(ev);
            fail_job(up, job, 500, "internal_error", "out of memory");
            return;
        }
        job_free(up, job); /* drops x, which no longer owns the file */
        up->deliver(up->ctx, ev);
        return;
    }
    bool expired = rc == CURLE_OK && (status == 403 || status == 404 ||
                                      status == 410);
    if (expired || job->downloads >= DOWNLOAD_TRIES) {
        const char *why = rc != CURLE_OK
                              ? (x->note[0] ? x->note
                                 : x->error[0] ? x->error
                                               : curl_easy_strerror(rc))
                              : expired ? "the result URL has expired"
                                        : "the download failed";
        fail_job(up, job, 502,
                 expired ? "upstream_expired" : "upstream_download_failed",
                 "the video from %s could not be downloaded (%s%s%ld)",
                 p->config.name, why, rc == CURLE_OK ? ", HTTP " : "",
                 rc == CURLE_OK ? status : 0L);
        return;
    }
    vg_log_warn("job %s: download from %s failed (%s): trying again",
                job->id, p->config.name,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
    job->phase = DOWNLOADING;
    schedule(up, job, vg_now_ms() + 2000);
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
        detach_xfer(up, x);
        unlink_xfer(up, x);
        on_token_done(up, x, rc, status);
        xfer_free(x);
        return;
    }
    if (x->kind == XFER_CANCEL) {
        if (rc != CURLE_OK || status >= 300)
            vg_log_warn("%s %s at %s: %s", x->call.method, x->call.url,
                        x->p->config.name,
                        rc != CURLE_OK ? curl_easy_strerror(rc)
                                       : "refused");
        drop_xfer(up, x);
        return;
    }
    /* Detach x from the multi handle and its job: it is ours now, and
     * the job may be gone by the end of the handler. */
    ujob *job = x->job;
    detach_xfer(up, x);
    job->xfer = NULL;
    x->job = NULL;
    switch (x->kind) {
    case XFER_SUBMIT:
        on_submit_done(up, job, x, rc, status);
        break;
    case XFER_POLL:
        on_poll_done(up, job, x, rc, status);
        break;
    case XFER_DOWNLOAD:
        on_download_done(up, job, x, rc, status);
        break;
    case XFER_CANCEL:
    case XFER_TOKEN:
        break;
    }
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    xfer_free(x);
}

/* A timer fired: the job's next step. */
static void on_due(vg_upstream *up, ujob *job)
{
    switch (job->phase) {
    case SUBMITTING:
        send_submit(up, job); /* after a 429's Retry-After */
        break;
    case WAITING:
        send_poll(up, job);
        break;
    case DOWNLOADING:
        send_download(up, job);
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
            job_free(up, c->job);
            break;
        }
        job = c->job;
        vg_table_insert(&up->jobs, &job->in_table, job->id);
        if (job->task != NULL) { /* resume */
            count_job(up, job->p, 1);
            send_poll(up, job);
        } else {
            job->route = -1;
            submit_next(up, job);
        }
        break;
    case CMD_CONTINUE:
        if (job != NULL && job->phase == RECORDING)
            poll_later(up, job, -1);
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
            send_cancel(up, job);
        job_free(up, job);
        break;
    case CMD_DELETE:
        send_delete(up, c->provider, c->task);
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
                job_free(up, list->job);
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
        start_waiting(up);
    }
    return NULL;
}

static void post(vg_upstream *up, command *c)
{
    pthread_mutex_lock(&up->lock);
    if (up->stopping) {
        pthread_mutex_unlock(&up->lock);
        if (c->job != NULL)
            job_free(up, c->job);
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

static void arm(ujob *job, provider *p)
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
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    }
    vg_error first;
    vg_error_clear(&first);
    for (int i = 0; i < n_routes && job->n_routes < MAX_ROUTES; i++) {
        provider *p = provider_named(up, routes[i].provider);
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
    arm(job, job->route_provider[0]);
    c->job = job;
    post(up, c);
    return 0;
}

int vg_upstream_resume(vg_upstream *up, const char *job_id,
                       const char *provider_name, const char *task,
                       vg_error *err)
{
    provider *p = provider_named(up, provider_name);
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
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    }
    job->p = p;
    arm(job, p);
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

void vg_upstream_cancel(vg_upstream *up, const char *job_id,
                        bool cancel_task)
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
            p->account.storage_url =
                c->storage_url[0] ? c->storage_url : NULL;
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
     * MAX_IN_FLIGHT transfers per provider in libcurl (launch_xfer), so
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
            job_free(up, c->job);
        free(c);
        c = next;
    }
    for (size_t b = 0; up->jobs.buckets != NULL && b <= up->jobs.mask; b++)
        while (up->jobs.buckets[b] != NULL)
            job_free(up, VG_CONTAINER_OF(up->jobs.buckets[b], ujob, in_table));
    vg_table_destroy(&up->jobs);
    /* Cancel calls still in flight are abandoned. */
    while (up->cancels != NULL)
        drop_xfer(up, up->cancels);
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
