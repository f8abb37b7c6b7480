/*
 * provider.h - the one interface between the job engine and whatever
 * makes a job's video: the built-in renderer ("local"), the replay
 * provider, and every upstream provider behind the upstream engine.
 *
 * The engine starts a job with start() and hears back through one sink:
 * every provider reports its progress and its end as events
 * (vg_provider_event), which the engine handles on a worker the same way
 * whoever sent them. A provider either works on the thread that called
 * start (the renderer: start returns once it has delivered its last
 * event), or elsewhere (upstream: start returns at once, events come from
 * the engine's thread). Remote providers hold a job as a task: after
 * SUBMITTED the engine records the task, then calls proceed; a restarted
 * process calls resume with the stored task instead of starting again.
 *
 * Providers are built from the configuration (vg_providers_build, in
 * providers/registry.c, the table of provider types); core never includes
 * providers/.
 */
#ifndef VG_CORE_PROVIDER_H
#define VG_CORE_PROVIDER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/catalog.h"
#include "core/request.h"
#include "util/error.h"

/* What a job asks of its provider, resolved: no defaults, no random. */
typedef struct vg_job_spec {
    const char *prompt;
    const vg_model *model;
    vg_resolution resolution;
    vg_aspect aspect;
    int width, height;
    int duration;
    int fps;
    bool generate_audio;
    bool camera_fixed;
    vg_tier tier;
    uint32_t seed; /* resolved: never random here */
    const char *image_paths[VG_MAX_IMAGES];
    /* Short-lived signed vidgate URLs of the same images, for providers
     * that fetch images by URL (image_delivery "url"); NULL = send the
     * image inline. */
    const char *image_urls[VG_MAX_IMAGES];
    int n_images;
} vg_job_spec;

/* One way to serve a job: a provider and its model id. */
typedef struct vg_provider_route {
    const char *provider;
    const char *model;
} vg_provider_route;

typedef struct vg_provider_job {
    const char *id;
    const vg_job_spec *spec;
    /* The model's routes, the client's preferred provider first; a
     * remote provider fails over along them. */
    const vg_provider_route *routes;
    int n_routes;
    /* Non-zero: stop and leave nothing behind (read by providers that
     * work on the caller's thread; remote ones are told by cancel). */
    atomic_int *cancel;
} vg_provider_job;

typedef enum vg_provider_event_kind {
    VG_EVENT_SUBMITTED, /* a remote provider holds the job as `task`:
                           record it, then proceed */
    VG_EVENT_PROGRESS,  /* progress changed */
    VG_EVENT_DONE,      /* the video is in file */
    VG_EVENT_FAILED     /* error says why; nothing more follows */
} vg_provider_event_kind;

typedef struct vg_provider_event vg_provider_event;
struct vg_provider_event {
    vg_provider_event_kind kind;
    char job_id[37];
    char provider[32]; /* the provider holding the task (after failover,
                          maybe not the one started) */
    char *task;        /* SUBMITTED, DONE */
    int progress;      /* PROGRESS: 0..99 */
    char *file;        /* DONE: the video; the receiver removes it */
    /* DONE: the provider vouches that file is an MP4 of the spec's shape
     * with audio only if asked (its own render); false: it came from
     * elsewhere and is checked before it is stored. */
    bool verified;
    int64_t seed, completion_tokens, total_tokens; /* DONE; -1 unknown */
    vg_error error;                                /* FAILED */
    vg_provider_event *next; /* free for the receiver's queue */
};

/* A zeroed event of that kind for the job (seed and tokens unknown);
 * NULL when out of memory. */
vg_provider_event *vg_provider_event_new(vg_provider_event_kind kind,
                                         const char *job_id,
                                         const char *provider);
void vg_provider_event_free(vg_provider_event *event);

typedef struct vg_provider vg_provider;

/* For providers that work on the caller's thread: send p's sink the
 * job's end, a video it vouches for at file (copied; tokens -1 when
 * unknown) or a failure. -1 with err when the event cannot be made (out
 * of memory): start then returns -1 with it, and no event went out. */
int vg_provider_send_done(vg_provider *p, const char *job_id, const char *file,
                          int64_t total_tokens, int64_t completion_tokens,
                          vg_error *err);
int vg_provider_send_failed(vg_provider *p, const char *job_id,
                            const vg_error *error, vg_error *err);

/* Where events go: called from any thread with a new event, which the
 * callee owns. Quick, and never calls back into the provider. */
typedef struct vg_provider_sink {
    void (*deliver)(void *ctx, vg_provider_event *event);
    void *ctx;
} vg_provider_sink;

typedef struct vg_provider_ops {
    /* Starts the job; its events go to the sink. -1 with err when it is
     * refused at once (400: the provider cannot express the spec; 503:
     * not configured): then no event follows. */
    int (*start)(vg_provider *p, const vg_provider_job *job, vg_error *err);
    /* After a restart: the provider holds the job as task; go on with it.
     * NULL for providers whose jobs start over. */
    int (*resume)(vg_provider *p, const char *job_id, const char *task,
                  vg_error *err);
    /* SUBMITTED is recorded: go on with the job. NULL: nothing to do. */
    void (*proceed)(vg_provider *p, const char *job_id);
    /* Stops the job's work; no event follows. With remote, the task is
     * cancelled where the provider holds it too. */
    void (*cancel)(vg_provider *p, const char *job_id, bool remote);
    /* The result of task is stored in vidgate: the provider may delete
     * its copy. NULL: nothing to do. */
    void (*stored)(vg_provider *p, const char *task);
    /* Whether a start can succeed now (a key, a closed circuit). */
    bool (*available)(vg_provider *p);
    /* Changes whenever available may answer differently (0: never). */
    uint64_t (*availability_version)(vg_provider *p);
    /* Calls for its jobs it has lined up but not begun: work that waits
     * for vidgate rather than for the provider (see the intake pacing). */
    int (*lined)(vg_provider *p);
    /* Its entry in /healthz, or NULL for none. */
    json_t *(*health)(vg_provider *p);
    void (*destroy)(vg_provider *p);
} vg_provider_ops;

struct vg_provider {
    const vg_provider_ops *ops;
    char name[32];   /* as the configuration and the catalog name it */
    int concurrency; /* its jobs at once */
    int delay_ms;    /* artificial latency before each start (load tests) */
    /* Worker threads of its own its jobs need (renders at once, each
     * busy on the CPU for its whole run); 0: it shares the workers that
     * only wait on the disk or the store. */
    int threads;
    /* Holds jobs elsewhere, as tasks: its start is recorded as "a submit
     * may be under way", and a restart resumes it instead of starting it
     * over. False: it works on the caller's thread, one job per thread. */
    bool remote;
    vg_provider_sink sink; /* set by the job engine before any start */
};

/* A provider as the configuration names it: the built-in "local" and
 * "replay", or an upstream provider instance speaking one of the
 * adapters' protocols (several instances may share a protocol, e.g. two
 * OpenAI-compatible servers). */
typedef struct vg_provider_config {
    char name[32];       /* "local", "replay", "novita", "my-openai", ... */
    char type[32];       /* the protocol; "" = the name */
    int concurrency;     /* jobs at once; 0 = the provider's default */
    int delay_ms;        /* artificial upstream latency (load tests) */
    char file[PATH_MAX]; /* replay: the MP4 every job returns */
    /* Upstream providers (see the upstream engine, providers/upstream.h). */
    char base_url[512];
    char api_key_env[64]; /* the environment variable holding the key */
    int request_timeout_s;
    int connect_timeout_s;
    int download_timeout_s;
    int poll_interval_ms; /* 0 = the protocol's own */
    int poll_max_interval_ms;
    int job_timeout_s;
    int64_t max_video_bytes;
    int breaker_failures;
    int breaker_open_s;
    bool allow_private_addresses; /* result URLs on private networks */
    /* Delete the upstream copy of a result once vidgate has stored it,
     * where the protocol has a delete (openai). */
    bool delete_after_store;
    bool image_urls; /* image_delivery "url": signed vidgate URLs */
    /* google-vertex: the key variable names a service-account JSON key
     * file; where Veo writes its videos ("gs://bucket/prefix", required),
     * where Cloud Storage is read ("" = Google's), and the region and
     * project that make the default base_url ("" = us-central1 and the
     * key's project_id). */
    char storage_uri[512];
    char storage_url[512];
    char region[64];
    char project[128];
} vg_provider_config;

#define VG_MAX_PROVIDERS 16

/* A provider type this build has (the table in providers/registry.c): a
 * built-in one ("local", "replay") or an upstream protocol, which
 * configured instances name as their "type". */
typedef struct vg_provider_type {
    const char *name;
    bool upstream;
    /* An upstream instance of this name out of the box, at this address
     * ("" = derived) with its key in that variable. */
    bool builtin;
    const char *default_base_url;
    const char *default_key_env;
} vg_provider_type;

/* The i-th type (NULL past the last), and the one of that name (NULL:
 * none). */
const vg_provider_type *vg_provider_type_at(int i);
const vg_provider_type *vg_provider_type_find(const char *name);

/* Builds the providers the configuration names (the built-in "local"
 * always first), into out[0..*n). On failure NULL with err and nothing
 * left to free. renders: the local provider's concurrency when its
 * config sets none. tmp_dir holds results on their way to storage. */
int vg_providers_build(const vg_provider_config *configs, int n_configs,
                       int renders, const char *tmp_dir, vg_provider **out,
                       int *n, vg_error *err);
/* Destroys what vg_providers_build made. */
void vg_providers_free(vg_provider **providers, int n);

#endif
