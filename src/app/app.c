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

#include "api/api.h"
#include "core/catalog.h"

static int make_dirs(const char *path, vg_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(buf, 0700) == 0 || errno == EEXIST)
        return 0;
fail:
    return vg_error_set(err, 500, "config_error", "data",
                        "cannot create the data directory %s: %s", buf,
                        strerror(errno));
}

int vg_app_open(vg_app *app, vg_error *err)
{
    char path[PATH_MAX + 32];
    const char *data = app->config.data_dir;
    if (make_dirs(data, err) != 0)
        return -1;
    snprintf(app->tmp_dir, sizeof(app->tmp_dir), "%s/tmp", data);
    if (make_dirs(app->tmp_dir, err) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/vidgate.db", data);
    app->store = vg_store_open_sqlite(path, err);
    if (app->store == NULL)
        return -1;
    app->blob = vg_blob_open_fs(data, err);
    if (app->blob == NULL)
        return -1;
    return 0;
}

static char *dump(json_t *data, size_t *len)
{
    json_t *doc = json_pack("{s:{s:s,s:s},s:o,s:{}}", "api_details",
                            "api_status", "success", "api_message",
                            "Models fetched successfully.", "data", data,
                            "error");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    *len = text ? strlen(text) : 0;
    return text;
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

static void poke_webhooks(void *ctx)
{
    vg_app *app = ctx;
    vg_webhooks_poke(app->webhooks);
}

int vg_app_start_server(vg_app *app, const char *base_url, vg_error *err)
{
    if (vg_auth_init(&app->auth, app->store, app->config.token_lifetime_s,
                     err) != 0)
        return -1;
    if (vg_links_init(&app->links, app->store, app->config.url_lifetime_s,
                      base_url, err) != 0)
        return -1;
    app->models_json = dump(vg_catalog_to_json(app->config.catalog),
                            &app->models_json_len);
    app->legacy_models_json =
        dump(vg_catalog_to_legacy_json(app->config.catalog),
             &app->legacy_models_json_len);
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
    vg_jobs_config jc = {
        .catalog = cfg->catalog,
        .data_dir = cfg->data_dir,
        .render_workers = cfg->render_workers,
        .flex_max_wait_s = cfg->flex_max_wait_s,
        .max_attempts = cfg->max_attempts,
        .idempotency_ttl_ms = (int64_t)cfg->idempotency_ttl_s * 1000,
        .providers = cfg->providers,
        .n_providers = cfg->n_providers,
        .ended_with_webhook = poke_webhooks,
        .ctx = app,
    };
    app->jobs = vg_jobs_start(app->store, app->blob, &jc, err);
    if (app->jobs == NULL)
        return -1;
    return vg_jobs_recover(app->jobs, err);
}

void vg_app_close(vg_app *app)
{
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
    free(app->models_json);
    free(app->legacy_models_json);
    vg_config_free(&app->config);
    memset(app, 0, sizeof(*app));
}
