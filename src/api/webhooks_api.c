/*
 * webhooks_api.c - the account's webhook signing secret:
 * GET /v1/ula/webhooks/secret (created on first read) and
 * POST /v1/ula/webhooks/secret/rotate.
 *
 * Receivers verify each delivery's webhook-signature with this secret,
 * per the Standard Webhooks spec. After a rotation every delivery,
 * including retries of older messages, is signed with the new secret.
 */
#include "api/api.h"
#include "core/webhooks.h"

static int send_secret(vg_http_request *req, const char *secret,
                       const char *message)
{
    return vg_http_send_success(req, 200,
                                json_pack("{s:s,s:s}", "secret", secret,
                                          "scheme", "standard-webhooks-v1"),
                                message);
}

int vg_api_webhook_secret(vg_app *app, vg_http_request *req)
{
    vg_error err;
    char candidate[64], secret[128];
    vg_webhook_new_secret(candidate);
    if (app->store->ops->get_webhook_secret(
            app->store, req->principal.account_id, candidate, secret,
            sizeof(secret), &err) != VG_STORE_OK)
        return vg_http_send_error(req, &err);
    return send_secret(req, secret, "Webhook secret fetched successfully.");
}

int vg_api_rotate_webhook_secret(vg_app *app, vg_http_request *req)
{
    vg_error err;
    char secret[64];
    vg_webhook_new_secret(secret);
    if (app->store->ops->rotate_webhook_secret(
            app->store, req->principal.account_id, secret, &err) !=
        VG_STORE_OK)
        return vg_http_send_error(req, &err);
    return send_secret(req, secret,
                       "Webhook secret rotated: deliveries are signed with "
                       "the new secret from now on.");
}
