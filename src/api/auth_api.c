/*
 * auth_api.c - POST /v1/ula/oauth-authentication: an API key in, a bearer
 * token out. The key may come as the api_key query parameter (as the
 * vendor documents), in a JSON or form body, or in X-API-KEY.
 */
#include "api/api.h"

static const char *key_of(vg_http_request *req)
{
    const char *key = vg_http_query(req, "api_key");
    if (key == NULL && req->json != NULL) {
        json_t *value = json_object_get(req->json, "api_key");
        key = json_is_string(value) ? json_string_value(value) : NULL;
    }
    if (key == NULL)
        key = vg_http_form_value(req, "api_key");
    if (key == NULL)
        key = vg_http_header(req, "X-API-KEY");
    return key;
}

int vg_api_oauth_token(vg_app *app, vg_http_request *req)
{
    vg_error err;
    char *token = NULL;
    if (vg_auth_issue_token(&app->auth, key_of(req), &token, &err) != 0)
        return vg_http_send_error(req, &err);
    json_t *body = json_pack("{s:s,s:s,s:i}", "access_token", token,
                             "token_type", "bearer", "expires_in",
                             app->auth.token_lifetime_s);
    free(token);
    return vg_http_send_json(req, 200, body);
}
