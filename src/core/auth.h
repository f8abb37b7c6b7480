/*
 * auth.h - API keys and the tokens exchanged for them.
 *
 * A key is shown once, at creation, and stored only as its SHA-256 (keys
 * carry 256 random bits, so a fast hash is enough and lookups stay cheap).
 * POST /v1/ula/oauth-authentication trades a key for an HS256 JWT signed
 * with a secret generated at first start and kept in the store.
 *
 * Checking a credential on every call costs a hash or a signature and a
 * store lookup, which would dominate cheap endpoints; so checked
 * credentials are cached, and the cache is trusted only while the store's
 * keys epoch is unchanged: any revocation, by any process sharing the
 * store, moves the epoch and ends the key's tokens at once.
 */
#ifndef VG_AUTH_H
#define VG_AUTH_H

#include "util/error.h"
#include "store/store.h"

typedef struct vg_principal {
    char account_id[37];
    char key_id[37];
    int rpm_limit;  /* the key's own limits; -1 = the server's default */
    int jobs_limit;
} vg_principal;

typedef struct vg_auth_cache vg_auth_cache;

typedef struct vg_auth {
    vg_store *store;
    char jwt_secret[65];
    int token_lifetime_s;
    /* Credentials already checked, valid until the store's keys epoch
     * moves (any revocation) or the token expires. */
    vg_auth_cache *cache;
} vg_auth;

/* Loads (or creates, once) the signing secret. */
int vg_auth_init(vg_auth *auth, vg_store *store, int token_lifetime_s,
                 vg_error *err);

void vg_auth_free(vg_auth *auth);

/* Creates a key for an account; the plain key is written to key_out and
 * never stored. */
int vg_auth_create_key(vg_store *store, const char *account_id,
                       const char *name, char key_out[48], vg_api_key *out,
                       vg_error *err);

/* Exchanges a plain key for a token (malloc'd, caller frees); 403 when the
 * key is unknown or revoked. */
int vg_auth_issue_token(const vg_auth *auth, const char *api_key,
                        char **token_out, vg_error *err);

/* Accepts a JWT from vg_auth_issue_token or a plain key; 401 otherwise. */
int vg_auth_authenticate(const vg_auth *auth, const char *credential,
                         vg_principal *out, vg_error *err);

#endif
