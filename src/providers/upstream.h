/*
 * upstream.h - the engine that talks to upstream providers.
 *
 * One thread drives every upstream HTTP call through libcurl's multi
 * interface: submits (with failover along a model's routes), polls on a
 * timer heap with backoff, and result downloads streamed to a file. A job
 * waiting on a provider costs a few hundred bytes and a timer, not a
 * thread, so thousands can be in flight at once.
 *
 * The engine does no store or blob work. It hands what it learns to its
 * owner as events, on its own thread (providers/remote.c makes each of
 * its providers a vg_provider, whose sink the job engine is); the owner
 * does the durable part on a worker and tells the engine to go on. After SUBMITTED the
 * engine waits for vg_upstream_continue, so the task handle is recorded
 * before polling starts, and a restarted process resumes polling with
 * vg_upstream_resume instead of submitting again.
 *
 * Each provider has a circuit breaker: after `breaker_failures`
 * consecutive failures (connection errors, timeouts, 5xx, malformed
 * answers, refused keys) it opens and new submits skip the provider for
 * `breaker_open_s`; then one submit probes it (half-open), and its outcome
 * closes or reopens the circuit.
 *
 * Jobs are named by their id in every call, so a command for a job the
 * engine has already let go of is simply ignored.
 */
#ifndef VG_UPSTREAM_H
#define VG_UPSTREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "providers/adapter.h"
#include "core/provider.h"

typedef struct vg_upstream_provider {
    char name[32];             /* the instance name ("novita") */
    const vg_adapter *adapter; /* its protocol */
    char base_url[512];
    char api_key[512];     /* "": no key, so the provider is unavailable;
                              google-vertex: the service-account key
                              file's path */
    int request_timeout_s; /* each API call */
    int connect_timeout_s;
    int download_timeout_s; /* the result download */
    int poll_ms;           /* first poll interval; 0 = the adapter's */
    int poll_max_ms;       /* the interval grows x1.5 up to this */
    int job_timeout_s;     /* a task still unfinished then fails */
    int64_t max_video_bytes;
    int breaker_failures;
    int breaker_open_s;
    bool allow_private; /* result URLs may point at private addresses */
    bool image_urls;    /* send images as signed vidgate URLs when the
                           job has them (spec->image_urls) */
    bool delete_after_store; /* delete the upstream copy once stored,
                                where the protocol can (openai) */
    /* google-vertex (see vg_provider_config). */
    char storage_uri[512];
    char storage_url[512];
    char region[64];
    char project[128];
} vg_upstream_provider;

typedef struct vg_upstream vg_upstream;

/* Called on the engine thread with a new event, which the callee owns.
 * Must be quick and must not call back into the engine. */
typedef void (*vg_upstream_deliver)(void *ctx, vg_provider_event *event);

/* Starts the engine thread for these providers (copied). Downloads go to
 * tmp_dir. */
vg_upstream *vg_upstream_start(const vg_upstream_provider *providers,
                               int n_providers, const char *tmp_dir,
                               vg_upstream_deliver deliver, void *ctx,
                               vg_error *err);
/* Stops the thread and forgets every job, sending nothing upstream and
 * delivering no more events; then frees the engine. */
void vg_upstream_free(vg_upstream *up);

/* Starts a job: builds the submit call for each route now (on the
 * caller's thread: images are read and encoded here), then submits along
 * the routes. Fails at once, with the first route's reason, when no
 * route's adapter can express the spec (400) or no route's provider is
 * configured (503). */
int vg_upstream_submit(vg_upstream *up, const char *job_id,
                       const vg_job_spec *spec,
                       const vg_provider_route *routes, int n_routes,
                       vg_error *err);
/* Resumes a job whose task was recorded (after a restart): polls it. */
int vg_upstream_resume(vg_upstream *up, const char *job_id,
                       const char *provider, const char *task,
                       vg_error *err);
/* After SUBMITTED was recorded: start polling. */
void vg_upstream_continue(vg_upstream *up, const char *job_id);
/* Stops the job's work; no event follows. With cancel_task the provider
 * is asked to cancel the task too (once submitted, where it can). */
void vg_upstream_cancel(vg_upstream *up, const char *job_id,
                        bool cancel_task);

/* The result of a job of this provider's task is stored in vidgate:
 * the engine deletes the upstream copy where the provider is configured
 * to (delete_after_store) and its protocol has a delete. */
void vg_upstream_stored(vg_upstream *up, const char *provider,
                        const char *task);

/* True when the provider exists, has a key and its circuit lets a
 * submit through now (closed, or open long enough to probe). */
bool vg_upstream_available(vg_upstream *up, const char *provider);
/* How many of the calls to the provider at `index` (its place in the
 * array given to vg_upstream_start) wait for one of its MAX_IN_FLIGHT
 * transfers to end: work the engine has not got to yet. Any thread. */
int vg_upstream_lined(vg_upstream *up, int index);
/* A number that changes whenever vg_upstream_available would change its
 * answer for some provider (a circuit opening, turning half-open or
 * closing): what is rendered from availability stays valid while it
 * holds. */
uint64_t vg_upstream_availability_version(vg_upstream *up);
/* {"protocol", "configured", "circuit": "closed"|"open"|"half_open",
 *  "consecutive_failures", "jobs"} of the provider at index, for
 * /healthz (NULL: no such provider). */
json_t *vg_upstream_health_of(vg_upstream *up, int index);

#endif
