/*
 * upstream_internal.h - what the files of the upstream engine share (see
 * upstream.h for what it does, and upstream.c for its threads and a job's
 * life). The engine's state is touched on its own thread only, unless a
 * field says otherwise.
 *
 *   upstream.c        the engine's thread, timers, circuit breakers,
 *                     events and the public face;
 *   upstream_xfer.c   transfers: libcurl handles, the providers' lines,
 *                     access tokens, cancels and deletes;
 *   upstream_calls.c  a job's calls: submitting along its routes,
 *                     polling, downloading the result.
 */
#ifndef VG_UPSTREAM_INTERNAL_H
#define VG_UPSTREAM_INTERNAL_H

#include "providers/upstream.h"

#include "providers/oauth.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/heap.h"
#include "util/netpolicy.h"
#include "util/table.h"
#define JOB_BUCKETS 4096 /* to begin with: the table grows */
#define MAX_ROUTES 8
#define REPLY_MAX_BYTES (1 << 20)
#define SUBMIT_RETRIES 3 /* 429s on one route before moving on */
#define RETRY_AFTER_MAX_MS 60000
#define POLL_ERRORS_MAX 10 /* failed polls in a row before giving up */
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
    int failures;      /* consecutive */
    int64_t opened_ms; /* when the circuit last opened */
    bool probing;      /* half-open: the one probe is out */
    int jobs;          /* jobs holding a task or submitting here */
    bool seen_allowed; /* availability as last reported by
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
     * of them to end, submits first (see up_launch_xfer). */
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
    int route;           /* the route being tried */
    int submit_tries;    /* on this route */
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
    char *fetch_url; /* FETCH: the next poll reads this */
    char *video_url;
    vg_heap_node due; /* its next step's time, on the timer heap */
    xfer *xfer;       /* the transfer in flight, if any */
    bool cancelled;   /* by its client while its submit was in flight */
    provider *probe;  /* the half-open provider whose probe this job holds */
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
    bool held; /* waiting for its provider's access token */
    xfer *next_held;
    bool counted; /* in libcurl: one of its provider's in_flight */
    int waiting;  /* 1 + the line it waits in, or 0 */
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
    vg_table jobs;  /* by id */
    vg_heap timers; /* jobs by their next step's time */
    xfer *cancels;  /* cancel calls in flight */
};

/* ---- upstream.c --------------------------------------------------------- */

provider *up_provider_named(vg_upstream *up, const char *name);
/* Puts the job on the timer heap, due at due_ms. */
void up_schedule(vg_upstream *up, ujob *job, int64_t due_ms);
/* Circuit breakers: whether p takes a call now (take: a half-open probe
 * is taken by it), and the outcome of one. Caller of the first holds
 * up->lock. */
bool up_breaker_allows_locked(provider *p, int64_t now, bool take);
void up_breaker_record(vg_upstream *up, provider *p, bool ok, const char *why);
void up_breaker_poll_ok(vg_upstream *up, provider *p);
/* Jobs holding a task or submitting at p, for /healthz. */
void up_count_job(vg_upstream *up, provider *p, int delta);
vg_provider_event *up_event_new(ujob *job, vg_provider_event_kind kind);
/* Ends the job with an error; the job is gone afterwards. */
void up_fail_job(vg_upstream *up, ujob *job, int status, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A job's provider for its task, armed for polling. */
void up_arm(ujob *job, provider *p);

/* ---- upstream_xfer.c ---------------------------------------------------- */

/* Prepares a transfer of call (taken over) for job at p and launches it,
 * or lines it up behind the provider's transfers in flight. */
int up_start_xfer(vg_upstream *up, ujob *job, provider *p, xfer_kind kind,
                  vg_call *call);
int up_launch_xfer(vg_upstream *up, xfer *x);
void up_xfer_free(xfer *x);
void up_unlink_xfer(vg_upstream *up, xfer *x);
void up_detach_xfer(vg_upstream *up, xfer *x);
/* Launches what waits in the providers' lines while there is room. */
void up_start_waiting(vg_upstream *up);
void up_on_token_done(vg_upstream *up, xfer *x, CURLcode rc, long status);
/* A transfer that ended or was abandoned: out of libcurl and freed. */
void up_drop_xfer(vg_upstream *up, xfer *x);
/* Cancels the job's upstream task (best effort; the call outlives the
 * job), and deletes a stored result's upstream copy. */
void up_send_cancel(vg_upstream *up, ujob *job);
void up_send_delete(vg_upstream *up, const char *name, const char *task);
void up_job_free(vg_upstream *up, ujob *job);

/* ---- upstream_calls.c --------------------------------------------------- */

void up_send_submit(vg_upstream *up, ujob *job);
void up_submit_next(vg_upstream *up, ujob *job);
void up_on_submit_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                       long status);
void up_poll_later(vg_upstream *up, ujob *job, int64_t retry_after_ms);
void up_send_poll(vg_upstream *up, ujob *job);
void up_send_download(vg_upstream *up, ujob *job);
void up_on_poll_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                     long status);
void up_on_download_done(vg_upstream *up, ujob *job, xfer *x, CURLcode rc,
                         long status);

#endif
