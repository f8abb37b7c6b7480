/*
 * app.c - builds and tears down the services; see app.h.
 */
#include "app/app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "api/api.h"
#include "core/catalog.h"
#include "util/dirs.h"

static int make_dirs(const char *path, vg_error *err)
{
    char failed[PATH_MAX];
    if (vg_make_dirs(path, 0700, false, failed, sizeof(failed)) == 0)
        return 0;
    return vg_error_set(err, 500, "config_error", "data",
                        "cannot create the data directory %s: %s", failed,
                        strerror(errno));
}

int vg_app_open(vg_app *app, vg_error *err)
{
    const char *data = app->config.data_dir;
    for (int i = 0; i < VG_APP_ANSWERS; i++)
        vg_text_cache_init(&app->answers[i]);
    app->answers_ready = true;
    if (make_dirs(data, err) != 0)
        return -1;
    snprintf(app->tmp_dir, sizeof(app->tmp_dir), "%s/tmp", data);
    if (make_dirs(app->tmp_dir, err) != 0)
        return -1;
    app->store = vg_store_open(&app->config.store, data, err);
    if (app->store == NULL)
        return -1;
    app->blob = vg_blob_open(&app->config.blob, data, err);
    if (app->blob == NULL)
        return -1;
    return 0;
}

static json_t *render_webhook(void *ctx, const vg_job *job)
{
    vg_arena arena;
    vg_arena_init(&arena);
    /* The job object holds no pointers into the arena: jansson copies. */
    json_t *o = vg_api_job_json(ctx, job, &arena);
    vg_arena_free(&arena);
    return o;
}

/* Reference images handed to providers by URL live two hours: long
 * enough for a queued upstream task to fetch them, short enough that a
 * leaked link soon stops working. */
#define UPLOAD_LINK_S 7200

static int sign_upload(void *ctx, const char *key, char *out, size_t n)
{
    vg_app *app = ctx;
    vg_arena arena;
    vg_arena_init(&arena);
    char *url = vg_links_sign_for(&app->links, key, time(NULL),
                                  UPLOAD_LINK_S, &arena);
    int rc = url != NULL && strlen(url) < n ? 0 : -1;
    if (rc == 0)
        memcpy(out, url, strlen(url) + 1);
    vg_arena_free(&arena);
    return rc;
}

/* Fetches give up once the server drains: a suspended request must get
 * its answer before the HTTP daemon stops, and an image can take
 * fetch_timeout_s. */
static bool server_stopping(void *ctx)
{
    vg_app *app = ctx;
    return vg_jobs_draining(app->jobs);
}

static void poke_webhooks(void *ctx)
{
    vg_app *app = ctx;
    vg_webhooks_poke(app->webhooks);
}

static bool catalog_available(void *ctx, const vg_model *model)
{
    return vg_jobs_model_available(ctx, model);
}

int vg_app_start_server(vg_app *app, const char *base_url, vg_error *err)
{
    if (vg_auth_init(&app->auth, app->store, app->config.token_lifetime_s,
                     err) != 0)
        return -1;
    if (vg_links_init(&app->links, app->store, app->config.url_lifetime_s,
                      base_url, err) != 0)
        return -1;
    const vg_config *cfg = &app->config;
    app->ratelimit = vg_ratelimit_new();
    vg_webhook_config wc;
    vg_webhook_config_defaults(&wc);
    wc.allow_private = cfg->webhook_allow_private;
    wc.timeout_s = cfg->webhook_timeout_s;
    wc.retry_base_ms = cfg->webhook_retry_base_ms;
    wc.give_up_after_ms = (int64_t)cfg->webhook_give_up_after_s * 1000;
    wc.max_in_flight = cfg->webhook_max_in_flight;
    app->webhooks = vg_webhooks_start(app->store, &wc, render_webhook, app,
                                      err);
    if (app->ratelimit == NULL || app->webhooks == NULL)
        return -1;
    /* The providers the configuration names; the jobs take them over. */
    vg_provider *providers[VG_MAX_PROVIDERS];
    int n_providers;
    if (vg_providers_build(cfg->providers, cfg->n_providers,
                           cfg->render_workers, app->tmp_dir, providers,
                           &n_providers, err) != 0)
        return -1;
    vg_jobs_config jc = {
        .catalog = cfg->catalog,
        .data_dir = cfg->data_dir,
        .flex_max_wait_s = cfg->flex_max_wait_s,
        .queued_in_memory = cfg->queued_in_memory,
        .dispatch_backlog = cfg->dispatch_backlog,
        .max_attempts = cfg->max_attempts,
        .idempotency_ttl_ms = (int64_t)cfg->idempotency_ttl_s * 1000,
        .providers = providers,
        .n_providers = n_providers,
        .sign_upload = sign_upload,
        .ended_with_webhook = poke_webhooks,
        .ctx = app,
    };
    app->jobs = vg_jobs_start(app->store, app->blob, &jc, err);
    if (app->jobs == NULL)
        return -1;
    /* An unknown model's 400 lists the models available now apart from
     * those without a provider. */
    vg_catalog_set_availability(cfg->catalog, catalog_available, app->jobs);
    /* Image URLs and webhook hosts, off the HTTP threads (fetcher.h). */
    vg_fetcher_config fc = {
        .max_transfers = cfg->image_max_fetches,
        .max_per_owner = cfg->image_max_fetches_per_account,
        .dns_servers = cfg->webhook_dns_servers,
    };
    app->fetcher = vg_fetcher_start(&fc, server_stopping, app, err);
    if (app->fetcher == NULL)
        return -1;
    return vg_jobs_recover(app->jobs, err);
}

void vg_app_close(vg_app *app)
{
    /* First: its transfers ask the jobs whether the server is stopping. */
    vg_fetcher_stop(app->fetcher);
    app->fetcher = NULL;
    if (app->config.catalog != NULL)
        vg_catalog_set_availability(app->config.catalog, NULL, NULL);
    vg_jobs_free(app->jobs);
    app->jobs = NULL;
    vg_webhooks_stop(app->webhooks);
    app->webhooks = NULL;
    vg_ratelimit_free(app->ratelimit);
    app->ratelimit = NULL;
    vg_auth_free(&app->auth);
    if (app->blob != NULL)
        app->blob->ops->close(app->blob);
    vg_store_close(app->store);
    vg_config_free(&app->config);
    for (int i = 0; app->answers_ready && i < VG_APP_ANSWERS; i++)
        vg_text_cache_destroy(&app->answers[i]);
    memset(app, 0, sizeof(*app));
}
