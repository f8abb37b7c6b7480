/*
 * oauth.h - Google service-account credentials: the access token a
 * provider authenticated by OAuth (Vertex AI) sends as its bearer.
 *
 * A service-account JSON key holds an RSA private key. vidgate signs a
 * short JWT with it (RS256: iss = client_email, scope = cloud-platform,
 * aud = token_uri, one hour), posts it to the key's token_uri
 * (grant_type = jwt-bearer) and gets an access token valid about an
 * hour. These functions are pure, like adapters: they build the token
 * call and read its answer; the upstream engine sends it on its own
 * thread, caches the token until shortly before it expires, and holds the
 * provider's calls while a token is being fetched.
 */
#ifndef VG_OAUTH_H
#define VG_OAUTH_H

#include <stdint.h>

#include "util/error.h"
#include "providers/adapter.h"

/* The key an OAuth provider's adapter gets as account->api_key: the
 * engine puts the current access token in place of
 * "Authorization: Bearer " VG_OAUTH_MARK when a call is sent. */
#define VG_OAUTH_MARK "$oauth-access-token"
#define VG_OAUTH_HEADER "Authorization: Bearer " VG_OAUTH_MARK

#define VG_OAUTH_SCOPE "https://www.googleapis.com/auth/cloud-platform"

typedef struct vg_sa_key vg_sa_key;

/* Reads a service-account JSON key file (type "service_account",
 * client_email, private_key as PEM, token_uri, project_id); NULL with err
 * saying what is wrong. */
vg_sa_key *vg_sa_key_load(const char *path, vg_error *err);
void vg_sa_key_free(vg_sa_key *key);
const char *vg_sa_key_project(const vg_sa_key *key); /* "" when none */
const char *vg_sa_key_email(const vg_sa_key *key);

/* The call that exchanges a fresh JWT (signed at now_s) for an access
 * token: POST token_uri, application/x-www-form-urlencoded. */
int vg_sa_token_call(const vg_sa_key *key, int64_t now_s, vg_call *call,
                     vg_error *err);
/* Reads the token endpoint's 2xx answer {"access_token", "expires_in",
 * "token_type"}: *token malloc'd, *expires_in_s (3600 when absent). */
int vg_sa_token_parse(const vg_reply *reply, char **token,
                      int64_t *expires_in_s, vg_error *err);

#endif
