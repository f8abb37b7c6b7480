/*
 * app.h - the composition root: one vg_app holds the configuration and
 * every service built from it (store, blob storage, auth, links, jobs,
 * the image fetcher).
 * The server and the CLI subcommands open it the same way, so they always
 * agree on where the data lives.
 */
#ifndef VG_APP_H
#define VG_APP_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>

#include "blob/blob.h"
#include "core/auth.h"
#include "core/config.h"
#include "core/fetcher.h"
#include "core/jobs.h"
#include "core/links.h"
#include "core/ratelimit.h"
#include "core/webhooks.h"
#include "store/store.h"
#include "util/shared.h"

typedef struct vg_app vg_app;

enum { VG_ANSWER_MODELS, VG_ANSWER_LEGACY_MODELS, VG_ANSWER_PRICING,
       VG_APP_ANSWERS };
struct vg_app {
    vg_config config;
    vg_store *store;
    vg_blob *blob;
    vg_auth auth;
    vg_links links;
    vg_jobs *jobs; /* only in the server */
    vg_webhooks *webhooks;   /* only in the server */
    vg_ratelimit *ratelimit; /* only in the server */
    vg_fetcher *fetcher;     /* image URLs; only in the server */
    char tmp_dir[PATH_MAX + 8];
    /* The catalog's answers as last rendered (models_api.c), under the
     * jobs' availability version. */
    vg_text_cache answers[VG_APP_ANSWERS];
    bool answers_ready;
};

/* Opens the data directory's store and blob storage. The config must be
 * final (vg_config_finish). */
int vg_app_open(vg_app *app, vg_error *err);
/* Starts what only the server needs: secrets, links, workers. */
int vg_app_start_server(vg_app *app, const char *base_url, vg_error *err);
void vg_app_close(vg_app *app);

/* Blocks SIGINT and SIGTERM in the calling thread and every thread it
 * starts afterwards, so that only vg_serve's sigwait() takes them; call it
 * before vg_app_start_server starts the workers. */
void vg_serve_block_signals(sigset_t *signals);
/* Runs the HTTP server until SIGINT or SIGTERM, then drains: new
 * connections refused, running jobs given their grace, waiting clients
 * answered (app/serve.c). 0, or 1 when the server cannot start. */
int vg_serve(vg_app *app);

#endif
