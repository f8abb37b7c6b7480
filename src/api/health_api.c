/*
 * health_api.c - GET /healthz (liveness) and GET /readyz (readiness).
 *
 * /healthz answers 200 while the process serves, whatever its
 * dependencies do: a liveness probe that failed with the database would
 * have every instance restarted during a database outage, which fixes
 * nothing. /readyz answers 503 while the store does not answer, so a load
 * balancer sends requests elsewhere meanwhile.
 *
 * Anyone may ask; only the operator sees how the server is set up. With
 * `Authorization: Bearer <VIDGATE_OPERATOR_TOKEN>` the /healthz answer adds
 * the checks and each upstream provider's state (key configured, circuit
 * breaker, jobs in flight), so operators see a failing provider at a
 * glance; without it the answer is the status alone, so strangers learn
 * neither the providers nor the load. A provider with an open circuit does
 * not make the server unhealthy: its models fail over or answer 503 on
 * their own.
 */
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "util/crypto.h"

/* 1 with the operator's token, 0 without credentials, -1 with others. */
static int operator_asks(vg_app *app, vg_http_request *req)
{
    const char *auth = vg_http_header(req, "Authorization");
    if (auth == NULL)
        return 0;
    if (strncasecmp(auth, "Bearer ", 7) != 0 ||
        app->config.operator_token[0] == '\0')
        return -1;
    return vg_secure_equal(auth + 7, app->config.operator_token) ? 1 : -1;
}

int vg_api_health(vg_app *app, vg_http_request *req)
{
    vg_error err;
    int who = operator_asks(app, req);
    if (who < 0) {
        vg_error_set(&err, 401, "unauthorized", NULL,
                     "the health details need the operator token "
                     "(VIDGATE_OPERATOR_TOKEN); ask without credentials "
                     "for liveness only");
        return vg_http_send_error(req, &err);
    }
    if (who == 0)
        return vg_http_send_json(req, 200, json_pack("{s:s}", "status", "ok"));
    int64_t accounts;
    int ok = app->store->ops->count_accounts(app->store, &accounts, &err) ==
             VG_STORE_OK;
    json_t *body = json_pack(
        "{s:s,s:{s:s,s:s,s:s},s:o}", "status", "ok", "checks", "store",
        ok ? "ok" : err.message, "store_backend", app->store->ops->name,
        "blob", app->blob->ops->name, "providers", vg_jobs_health(app->jobs));
    return vg_http_send_json(req, 200, body);
}

int vg_api_ready(vg_app *app, vg_http_request *req)
{
    vg_error err;
    int64_t accounts;
    if (app->store->ops->count_accounts(app->store, &accounts, &err) ==
        VG_STORE_OK)
        return vg_http_send_json(req, 200,
                                 json_pack("{s:s}", "status", "ready"));
    /* The reason is the operator's business; the status is anyone's. */
    return vg_http_send_json(req, 503,
                             json_pack("{s:s,s:s}", "status", "not_ready",
                                       "reason", "the store does not answer"));
}
