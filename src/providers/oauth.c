/*
 * oauth.c - service-account keys and the JWT-bearer token exchange
 * (oauth.h). The JWT is signed by libjwt with the key's RSA private key.
 */
#include "providers/oauth.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct vg_sa_key {
    char *email;
    char *private_key; /* PEM */
    char *key_id;      /* private_key_id, for the JWT's "kid"; may be "" */
    char *token_uri;
    char *project;
};

void vg_sa_key_free(vg_sa_key *key)
{
    if (key == NULL)
        return;
    free(key->email);
    if (key->private_key != NULL) {
        /* The secret does not linger in freed memory. */
        memset(key->private_key, 0, strlen(key->private_key));
        free(key->private_key);
    }
    free(key->key_id);
    free(key->token_uri);
    free(key->project);
    free(key);
}

static char *member(json_t *doc, const char *name, bool required,
                    const char *path, vg_error *err)
{
    const char *v = json_string_value(json_object_get(doc, name));
    if (v == NULL || *v == '\0') {
        if (required)
            vg_error_set(err, 0, "config_error", "credentials_file",
                         "%s: the service-account key has no \"%s\"", path,
                         name);
        return required ? NULL : strdup("");
    }
    return strdup(v);
}

vg_sa_key *vg_sa_key_load(const char *path, vg_error *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        vg_error_set(err, 0, "config_error", "credentials_file",
                     "%s: not a service-account JSON key: %s", path,
                     jerr.text);
        return NULL;
    }
    const char *type = json_string_value(json_object_get(doc, "type"));
    vg_sa_key *key = calloc(1, sizeof(*key));
    if (type == NULL || strcmp(type, "service_account") != 0) {
        vg_error_set(err, 0, "config_error", "credentials_file",
                     "%s: \"type\" is not \"service_account\"", path);
    } else if (key != NULL &&
               (key->email = member(doc, "client_email", true, path, err)) !=
                   NULL &&
               (key->private_key =
                    member(doc, "private_key", true, path, err)) != NULL &&
               (key->token_uri = member(doc, "token_uri", true, path, err)) !=
                   NULL &&
               (key->key_id = member(doc, "private_key_id", false, path,
                                     err)) != NULL &&
               (key->project = member(doc, "project_id", false, path, err)) !=
                   NULL) {
        json_decref(doc);
        if (strncmp(key->token_uri, "https://", 8) != 0 &&
            strncmp(key->token_uri, "http://", 7) != 0) {
            vg_error_set(err, 0, "config_error", "credentials_file",
                         "%s: \"token_uri\" is not an http(s) URL", path);
            vg_sa_key_free(key);
            return NULL;
        }
        /* Signing once now catches a key that is not an RSA PEM at
         * start rather than at the first job. */
        vg_call probe;
        memset(&probe, 0, sizeof(probe));
        if (vg_sa_token_call(key, 0, &probe, err) != 0) {
            vg_error_set(err, 0, "config_error", "credentials_file",
                         "%s: \"private_key\" cannot sign (not an RSA "
                         "private key in PEM form)",
                         path);
            vg_sa_key_free(key);
            return NULL;
        }
        vg_call_clear(&probe);
        return key;
    }
    json_decref(doc);
    vg_sa_key_free(key);
    return NULL;
}

const char *vg_sa_key_project(const vg_sa_key *key)
{
    return key->project;
}

const char *vg_sa_key_email(const vg_sa_key *key)
{
    return key->email;
}

/* The signed assertion; NULL when signing fails. */
static char *assertion(const vg_sa_key *key, int64_t now_s)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    int bad = jwt_add_grant(jwt, "iss", key->email);
    bad |= jwt_add_grant(jwt, "scope", VG_OAUTH_SCOPE);
    bad |= jwt_add_grant(jwt, "aud", key->token_uri);
    bad |= jwt_add_grant_int(jwt, "iat", (long)now_s);
    bad |= jwt_add_grant_int(jwt, "exp", (long)now_s + 3600);
    if (*key->key_id != '\0')
        bad |= jwt_add_header(jwt, "kid", key->key_id);
    bad |= jwt_set_alg(jwt, JWT_ALG_RS256,
                       (const unsigned char *)key->private_key,
                       (int)strlen(key->private_key));
    char *out = bad ? NULL : jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

int vg_sa_token_call(const vg_sa_key *key, int64_t now_s, vg_call *call,
                     vg_error *err)
{
    char *jwt = assertion(key, now_s);
    if (jwt == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot sign the service-account JWT");
    /* A JWT is base64url and dots: nothing to escape in a form value. */
    int n = asprintf(&call->body,
                     "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-"
                     "type%%3Ajwt-bearer&assertion=%s",
                     jwt);
    free(jwt);
    if (n < 0) {
        call->body = NULL;
        return vg_adapter_out_of_memory(err);
    }
    if (vg_call_set(call, "POST", key->token_uri, "%s", "") != 0 ||
        vg_call_header(call, "Content-Type: "
                             "application/x-www-form-urlencoded") != 0) {
        vg_call_clear(call);
        return vg_adapter_out_of_memory(err);
    }
    return 0;
}

int vg_sa_token_parse(const vg_reply *reply, char **token,
                      int64_t *expires_in_s, vg_error *err)
{
    json_t *doc = vg_reply_json(reply, err);
    if (doc == NULL)
        return -1;
    const char *value = vg_json_string(doc, "access_token");
    int64_t expires = 3600;
    vg_json_lenient_int(json_object_get(doc, "expires_in"), &expires);
    int rc = 0;
    /* The token goes into a header: no line breaks or control bytes. */
    if (value == NULL || *value == '\0' || strlen(value) > 4000 ||
        value[strcspn(value, "\r\n\t ")] != '\0')
        rc = vg_reply_malformed(err, "the token endpoint answered without "
                                     "an access token");
    else if ((*token = strdup(value)) == NULL)
        rc = vg_adapter_out_of_memory(err);
    *expires_in_s = expires > 0 ? expires : 3600;
    json_decref(doc);
    return rc;
}
