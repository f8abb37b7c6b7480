/*
 * health_api.c - GET /healthz: 200 when the store answers, 503 otherwise,
 * with each upstream provider's state (key configured, circuit breaker,
 * jobs in flight) so operators see a failing provider at a glance. A
 * provider with an open circuit does not make the server unhealthy: its
 * models fail over or answer 503 on their own.
 */
#include "api/api.h"

int vg_api_health(vg_app *app, vg_http_request *req)
{
    vg_error err;
    int64_t accounts;
    int ok = app->store->ops->count_accounts(app->store, &accounts, &err) ==
             VG_STORE_OK;
    json_t *body = json_pack("{s:s,s:{s:s,s:s},s:o}", "status",
                             ok ? "ok" : "unavailable", "checks", "store",
                             ok ? "ok" : err.message, "blob",
                             app->blob->ops->name, "providers",
                             vg_jobs_health(app->jobs));
    return vg_http_send_json(req, ok ? 200 : 503, body);
}
