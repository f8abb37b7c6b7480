/*
 * credits_api.c - GET /v1/developer/{developer_id}/get-credits in the
 * vendor's shape. The developer id is the caller's account id ("me" is
 * accepted too); another account's id answers 404, as if it did not
 * exist.
 */
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "util/parse.h"

int vg_api_credits(vg_app *app, vg_http_request *req)
{
    vg_error err;
    const char *id = req->params[0];
    if (strcmp(id, "me") == 0)
        id = req->principal.account_id;
    if (strcmp(id, req->principal.account_id) != 0) {
        vg_error_set(&err, 404, "not_found", "developer_id",
                     "no developer %s for this API key", id);
        return vg_http_send_error(req, &err);
    }
    vg_account account;
    int rc = app->store->ops->get_account(app->store, id, &account, &err);
    if (rc != VG_STORE_OK) {
        if (rc == VG_STORE_NOT_FOUND)
            vg_error_set(&err, 404, "not_found", "developer_id",
                         "no developer %s", id);
        return vg_http_send_error(req, &err);
    }
    char when[40];
    struct tm tm;
    time_t secs = (time_t)(account.updated_ms / 1000);
    gmtime_r(&secs, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ",
             (int)(account.updated_ms % 1000));
    json_t *body = json_pack(
        "{s:{s:f,s:s}}", "availableCredits", "creditBalance",
        vg_credits_to_double(account.balance), "lastUpdated", when);
    return vg_http_send_json(req, 200, body);
}
