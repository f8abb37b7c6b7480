/*
 * auth.c - API keys and HS256 tokens; see auth.h.
 */
#include "core/auth.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/crypto.h"

#define VG_JWT_ISSUER "vidgate"

int vg_auth_init(vg_auth *auth, vg_store *store, int token_lifetime_s,
                 vg_error *err)
{
    unsigned char raw[32];
    char fresh[65];
    if (vg_random_bytes(raw, sizeof(raw)) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "no entropy for the token signing secret");
    vg_hex_encode(raw, sizeof(raw), fresh);
    auth->store = store;
    auth->token_lifetime_s = token_lifetime_s;
    int rc = store->ops->set_setting_once(store, "jwt_secret", fresh,
                                          auth->jwt_secret,
                                          sizeof(auth->jwt_secret), err);
    return rc == VG_STORE_OK ? 0 : -1;
}

int vg_auth_create_key(vg_store *store, const char *account_id,
                       const char *name, char key_out[48], vg_api_key *out,
                       vg_error *err)
{
    char hash[65], prefix[16];
    vg_new_api_key(key_out);
    vg_sha256_hex(key_out, hash);
    snprintf(prefix, sizeof(prefix), "%.10s", key_out);
    int rc = store->ops->create_key(store, account_id, name, hash, prefix,
                                    out, err);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_error_set(err, 404, "not_found", "account",
                            "no account with id %s", account_id);
    return rc == VG_STORE_OK ? 0 : -1;
}

/* Looks a plain key up; fills the key or an error of the given status. */
static int find_active_key(const vg_auth *auth, const char *api_key,
                           int status, vg_api_key *key, vg_error *err)
{
    char hash[65];
    const char *code = status == 401 ? "unauthorized" : "forbidden";
    vg_sha256_hex(api_key, hash);
    int rc = auth->store->ops->find_key_by_hash(auth->store, hash, key, err);
    if (rc == VG_STORE_ERROR)
        return -1;
    if (rc == VG_STORE_NOT_FOUND)
        return vg_error_set(err, status, code, NULL, "invalid API key");
    if (key->revoked)
        return vg_error_set(err, status, code, NULL,
                            "this API key has been revoked");
    return 0;
}

int vg_auth_issue_token(const vg_auth *auth, const char *api_key,
                        char **token_out, vg_error *err)
{
    vg_api_key key;
    if (api_key == NULL || *api_key == '\0')
        return vg_error_set(err, 403, "forbidden", "api_key",
                            "an api_key is required");
    if (find_active_key(auth, api_key, 403, &key, err) != 0)
        return -1;

    jwt_t *jwt = NULL;
    char jti[37];
    time_t now = time(NULL);
    vg_uuid_v4(jti);
    if (jwt_new(&jwt) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot create a token");
    int bad = jwt_add_grant(jwt, "iss", VG_JWT_ISSUER);
    bad |= jwt_add_grant(jwt, "sub", key.id);
    bad |= jwt_add_grant(jwt, "acc", key.account_id);
    bad |= jwt_add_grant(jwt, "jti", jti);
    bad |= jwt_add_grant_int(jwt, "iat", (long)now);
    bad |= jwt_add_grant_int(jwt, "exp", (long)now + auth->token_lifetime_s);
    bad |= jwt_set_alg(jwt, JWT_ALG_HS256,
                       (const unsigned char *)auth->jwt_secret,
                       (int)strlen(auth->jwt_secret));
    char *token = bad ? NULL : jwt_encode_str(jwt);
    jwt_free(jwt);
    if (token == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot sign a token");
    *token_out = token;
    return 0;
}

/* Verifies signature, algorithm, issuer and expiry; fills the key id. */
static int verify_token(const vg_auth *auth, const char *token,
                        char key_id[37], vg_error *err)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)auth->jwt_secret,
                   (int)strlen(auth->jwt_secret)) != 0 ||
        jwt == NULL)
        return vg_error_set(err, 401, "unauthorized", NULL,
                            "invalid bearer token");
    /* jwt_decode accepts whatever algorithm the header names; only our
     * own HS256 tokens are valid here, never "none". */
    int ok = jwt_get_alg(jwt) == JWT_ALG_HS256;
    const char *iss = jwt_get_grant(jwt, "iss");
    const char *sub = jwt_get_grant(jwt, "sub");
    long exp = jwt_get_grant_int(jwt, "exp");
    ok = ok && iss != NULL && strcmp(iss, VG_JWT_ISSUER) == 0;
    ok = ok && sub != NULL && strlen(sub) == 36;
    if (ok)
        memcpy(key_id, sub, 37);
    jwt_free(jwt);
    if (!ok)
        return vg_error_set(err, 401, "unauthorized", NULL,
                            "invalid bearer token");
    if (exp <= (long)time(NULL))
        return vg_error_set(err, 401, "token_expired", NULL,
                            "the bearer token has expired; exchange the "
                            "API key for a new one");
    return 0;
}

int vg_auth_authenticate(const vg_auth *auth, const char *credential,
                         vg_principal *out, vg_error *err)
{
    vg_api_key key;
    if (credential == NULL || *credential == '\0')
        return vg_error_set(err, 401, "unauthorized", NULL,
                            "missing bearer token: send Authorization: "
                            "Bearer <token> or X-API-KEY");
    if (strchr(credential, '.') != NULL) {
        char key_id[37];
        if (verify_token(auth, credential, key_id, err) != 0)
            return -1;
        int rc = auth->store->ops->get_key(auth->store, key_id, &key, err);
        if (rc == VG_STORE_ERROR)
            return -1;
        if (rc != VG_STORE_OK || key.revoked)
            return vg_error_set(err, 401, "unauthorized", NULL,
                                "the API key behind this token has been "
                                "revoked");
    } else if (find_active_key(auth, credential, 401, &key, err) != 0) {
        return -1;
    }
    memcpy(out->account_id, key.account_id, sizeof(out->account_id));
    memcpy(out->key_id, key.id, sizeof(out->key_id));
    return 0;
}
