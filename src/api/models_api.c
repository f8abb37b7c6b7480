/*
 * models_api.c - the catalog: GET /v1/ula/models, and the vendor's older
 * GET /v1/developer/get-all-models (data.models[] with model_name and
 * description), and the vendor's price list, GET
 * /v1/developer/get-model-pricing.
 *
 * Each model carries "available": whether one of its providers is
 * configured and healthy right now, which changes only as circuit
 * breakers open and close. So each answer is rendered once per
 * availability version (vg_jobs_availability_version) and sent from the
 * same bytes until the version moves: a request costs a version check
 * and a reference, not a JSON rendering of the whole catalog.
 */
#include "api/api.h"

#include "api/models_json.h"

#include <stdlib.h>
#include <string.h>

static const char models_message[] = "Models fetched successfully.";
static const char pricing_message[] = "Model pricing fetched successfully.";

static bool model_available(void *ctx, const vg_model *model)
{
    return vg_jobs_model_available(ctx, model);
}

/* Outside the server (no jobs) nothing can judge providers: all are
 * listed as available, as the catalog says. */
static vg_model_available_fn availability(const vg_app *app)
{
    return app->jobs != NULL ? model_available : NULL;
}

static json_t *render(vg_app *app, int which)
{
    const vg_catalog *catalog = app->config.catalog;
    switch (which) {
    case VG_ANSWER_MODELS:
        return vg_http_success_doc(
            vg_models_json(catalog, availability(app), app->jobs),
            models_message);
    case VG_ANSWER_LEGACY_MODELS:
        return vg_http_success_doc(
            vg_models_legacy_json(catalog, availability(app), app->jobs),
            models_message);
    default:
        return vg_http_success_doc(
            vg_models_pricing_json(catalog, availability(app), app->jobs),
            pricing_message);
    }
}

/* The answer as of now: the cached bytes when availability has not moved
 * since they were rendered, else a fresh rendering that replaces them. */
static int send_answer(vg_app *app, vg_http_request *req, int which)
{
    vg_text_cache *cache = &app->answers[which];
    uint64_t version = vg_jobs_availability_version(app->jobs);
    vg_shared_text *text = vg_text_cache_get(cache, version);
    if (text == NULL) {
        json_t *doc = render(app, which);
        char *dumped = doc ? vg_http_json_text(doc) : NULL;
        json_decref(doc);
        text = dumped ? vg_shared_text_new(dumped, strlen(dumped)) : NULL;
        free(dumped);
        if (text == NULL) {
            vg_error err;
            vg_error_set(&err, 500, "internal_error", NULL, "out of memory");
            return vg_http_send_error(req, &err);
        }
        vg_text_cache_put(cache, version, text);
    }
    return vg_http_send_shared_json(req, 200, text);
}

int vg_api_models(vg_app *app, vg_http_request *req)
{
    return send_answer(app, req, VG_ANSWER_MODELS);
}

int vg_api_legacy_models(vg_app *app, vg_http_request *req)
{
    return send_answer(app, req, VG_ANSWER_LEGACY_MODELS);
}

int vg_api_model_pricing(vg_app *app, vg_http_request *req)
{
    return send_answer(app, req, VG_ANSWER_PRICING);
}
