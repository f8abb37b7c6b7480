/*
 * auth_api.c - POST /v1/ula/oauth-authentication: an API key in, a bearer
 * token out. The key may come as the api_key query parameter (as the
 * vendor documents), in a JSON or form body, in X-API-KEY, or as the
 * bearer of an Authorization header (clients that send the raw key as a
 * bearer on every call send it here too).
 */
#include "api/api.h"

#include <strings.h>

/* The credentials of "Authorization: Bearer <key>", or NULL. */
static const char *bearer_of(vg_http_request *req)
{
    const char *h = vg_http_header(req, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h != '\0' ? h : NULL;
}

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
    if (key == NULL)
        key = bearer_of(req);
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
