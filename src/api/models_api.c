/*
 * models_api.c - the catalog: GET /v1/ula/models, and the vendor's older
 * GET /v1/developer/get-all-models (data.models[] with model_name and
 * description), and the vendor's price list, GET
 * /v1/developer/get-model-pricing.
 *
 * Both are rendered on every request rather than once at start, because
 * each model carries "available": whether one of its providers is
 * configured and healthy right now, which changes as circuit breakers
 * open and close. The catalog is a dozen entries, so this costs little.
 */
#include "api/api.h"

static const char models_message[] = "Models fetched successfully.";

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

int vg_api_models(vg_app *app, vg_http_request *req)
{
    json_t *data =
        vg_catalog_to_json(app->config.catalog, availability(app), app->jobs);
    return vg_http_send_success(req, 200, data, models_message);
}

int vg_api_legacy_models(vg_app *app, vg_http_request *req)
{
    json_t *data = vg_catalog_to_legacy_json(app->config.catalog,
                                             availability(app), app->jobs);
    return vg_http_send_success(req, 200, data, models_message);
}

int vg_api_model_pricing(vg_app *app, vg_http_request *req)
{
    json_t *data = vg_catalog_to_pricing_json(app->config.catalog,
                                              availability(app), app->jobs);
    return vg_http_send_success(req, 200, data, "Model pricing fetched "
                                                "successfully.");
}
