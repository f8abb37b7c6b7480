/*
 * health_api.c - GET /healthz: 200 when the store answers, 503 otherwise.
 *
 * Anyone may ask whether the server is alive; only the operator sees how
 * it is set up. With `Authorization: Bearer <VIDGATE_OPERATOR_TOKEN>` the
 * answer adds the checks and each upstream provider's state (key
 * configured, circuit breaker, jobs in flight), so operators see a
 * failing provider at a glance; without it the answer is the status
 * alone, so strangers learn neither the providers nor the load. A
 * provider with an open circuit does not make the server unhealthy: its
 * models fail over or answer 503 on their own.
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
    int64_t accounts;
    int ok = app->store->ops->count_accounts(app->store, &accounts, &err) ==
             VG_STORE_OK;
    if (who == 0)
        return vg_http_send_json(req, ok ? 200 : 503,
                                 json_pack("{s:s}", "status",
                                           ok ? "ok" : "unavailable"));
    json_t *body = json_pack("{s:s,s:{s:s,s:s},s:o}", "status",
                             ok ? "ok" : "unavailable", "checks", "store",
                             ok ? "ok" : err.message, "blob",
                             app->blob->ops->name, "providers",
                             vg_jobs_health(app->jobs));
    return vg_http_send_json(req, ok ? 200 : 503, body);
}
