/*
 * models_api.c - the catalog: GET /v1/ula/models, and the vendor's older
 * GET /v1/developer/get-all-models (data.models[] with model_name and
 * description). Both bodies are rendered once at start.
 */
#include "api/api.h"

int vg_api_models(vg_app *app, vg_http_request *req)
{
    return vg_http_send_static_json(req, app->models_json,
                                    app->models_json_len);
}

int vg_api_legacy_models(vg_app *app, vg_http_request *req)
{
    return vg_http_send_static_json(req, app->legacy_models_json,
                                    app->legacy_models_json_len);
}
