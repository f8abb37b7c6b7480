/*
 * health_api.c - GET /healthz: 200 when the store answers, 503 otherwise.
 */
#include "api/api.h"

int vg_api_health(vg_app *app, vg_http_request *req)
{
    vg_error err;
    int64_t accounts;
    int ok = app->store->ops->count_accounts(app->store, &accounts, &err) ==
             VG_STORE_OK;
    json_t *body = json_pack("{s:s,s:{s:s,s:s}}", "status",
                             ok ? "ok" : "unavailable", "checks", "store",
                             ok ? "ok" : err.message, "blob",
                             app->blob->ops->name);
    return vg_http_send_json(req, ok ? 200 : 503, body);
}
