/*
 * remote.c - the upstream providers as core/provider.h sees them: each a
 * vg_provider that forwards to the one upstream engine (upstream.c) they
 * share, which works on its own thread and holds each job as a task.
 */
#include "providers/providers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/upstream.h"
#include "util/log.h"

/* What the engine's providers share: the engine, and the sink its events
 * go to (the job engine gives every provider the same one). */
typedef struct engine_hub {
    vg_upstream *up;
    vg_provider *first; /* whose sink the events go to */
    int refs;           /* providers not yet destroyed */
} engine_hub;

typedef struct remote_provider {
    vg_provider base;
    engine_hub *hub;
    int index; /* its place among the engine's providers */
} remote_provider;

static remote_provider *remote_of(vg_provider *p)
{
    return (remote_provider *)p;
}

static void hub_deliver(void *ctx, vg_provider_event *ev)
{
    engine_hub *hub = ctx;
    hub->first->sink.deliver(hub->first->sink.ctx, ev);
}

static int remote_start(vg_provider *p, const vg_provider_job *job,
                        vg_error *err)
{
    return vg_upstream_submit(remote_of(p)->hub->up, job->id, job->spec,
                              job->routes, job->n_routes, err);
}

static int remote_resume(vg_provider *p, const char *job_id, const char *task,
                         vg_error *err)
{
    return vg_upstream_resume(remote_of(p)->hub->up, job_id, p->name, task,
                              err);
}

static void remote_proceed(vg_provider *p, const char *job_id)
{
    vg_upstream_continue(remote_of(p)->hub->up, job_id);
}

static void remote_cancel(vg_provider *p, const char *job_id, bool remote)
{
    vg_upstream_cancel(remote_of(p)->hub->up, job_id, remote);
}

static void remote_stored(vg_provider *p, const char *task)
{
    vg_upstream_stored(remote_of(p)->hub->up, p->name, task);
}

static bool remote_available(vg_provider *p)
{
    return vg_upstream_available(remote_of(p)->hub->up, p->name);
}

static uint64_t remote_availability_version(vg_provider *p)
{
    return vg_upstream_availability_version(remote_of(p)->hub->up);
}

static int remote_lined(vg_provider *p)
{
    return vg_upstream_lined(remote_of(p)->hub->up, remote_of(p)->index);
}

static json_t *remote_health(vg_provider *p)
{
    return vg_upstream_health_of(remote_of(p)->hub->up, remote_of(p)->index);
}

static void remote_destroy(vg_provider *p)
{
    engine_hub *hub = remote_of(p)->hub;
    free(p);
    if (--hub->refs == 0) {
        vg_upstream_free(hub->up);
        free(hub);
    }
}

static const vg_provider_ops remote_ops = {
    .start = remote_start,
    .resume = remote_resume,
    .proceed = remote_proceed,
    .cancel = remote_cancel,
    .stored = remote_stored,
    .available = remote_available,
    .availability_version = remote_availability_version,
    .lined = remote_lined,
    .health = remote_health,
    .destroy = remote_destroy,
};

/* The engine's view of a configured provider. */
static void engine_config(const vg_provider_config *pc,
                          const vg_adapter *adapter, vg_upstream_provider *u)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", pc->name);
    u->adapter = adapter;
    snprintf(u->base_url, sizeof(u->base_url), "%s", pc->base_url);
    const char *key = pc->api_key_env[0] ? getenv(pc->api_key_env) : NULL;
    snprintf(u->api_key, sizeof(u->api_key), "%s", key != NULL ? key : "");
    u->request_timeout_s = pc->request_timeout_s;
    u->connect_timeout_s = pc->connect_timeout_s;
    u->download_timeout_s = pc->download_timeout_s;
    u->poll_ms = pc->poll_interval_ms;
    u->poll_max_ms = pc->poll_max_interval_ms;
    u->job_timeout_s = pc->job_timeout_s;
    u->max_video_bytes = pc->max_video_bytes;
    u->breaker_failures = pc->breaker_failures;
    u->breaker_open_s = pc->breaker_open_s;
    u->allow_private = pc->allow_private_addresses;
    u->delete_after_store = pc->delete_after_store;
    snprintf(u->storage_uri, sizeof(u->storage_uri), "%s", pc->storage_uri);
    snprintf(u->storage_url, sizeof(u->storage_url), "%s", pc->storage_url);
    snprintf(u->region, sizeof(u->region), "%s", pc->region);
    snprintf(u->project, sizeof(u->project), "%s", pc->project);
    u->image_urls = pc->image_urls;
}

int vg_provider_remote_new(const vg_provider_config *const *configs,
                           const vg_adapter *const *adapters, int n,
                           const char *tmp_dir, vg_provider **out,
                           vg_error *err)
{
    if (n == 0)
        return 0;
    vg_upstream_provider *engine = calloc((size_t)n, sizeof(*engine));
    engine_hub *hub = calloc(1, sizeof(*hub));
    int made = 0;
    for (; engine != NULL && hub != NULL && made < n; made++) {
        remote_provider *p = calloc(1, sizeof(*p));
        if (p == NULL)
            break;
        const vg_provider_config *pc = configs[made];
        engine_config(pc, adapters[made], &engine[made]);
        p->base.ops = &remote_ops;
        snprintf(p->base.name, sizeof(p->base.name), "%s", pc->name);
        p->base.concurrency = pc->concurrency > 0 ? pc->concurrency : 1000;
        p->base.delay_ms = pc->delay_ms;
        p->base.remote = true;
        p->hub = hub;
        p->index = made;
        out[made] = &p->base;
        if (engine[made].api_key[0] != '\0')
            vg_log_info("provider %s (%s at %s) is configured", pc->name,
                        adapters[made]->name, engine[made].base_url);
    }
    if (made == n) {
        hub->first = out[0];
        hub->refs = n;
        hub->up = vg_upstream_start(engine, n, tmp_dir, hub_deliver, hub, err);
    } else {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    }
    free(engine);
    if (hub == NULL || hub->up == NULL) {
        for (int i = 0; i < made; i++)
            free(out[i]);
        free(hub);
        return -1;
    }
    return 0;
}
