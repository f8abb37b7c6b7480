/*
 * auth.c - API keys and HS256 tokens; see auth.h.
 */
#include "core/auth.h"

#include <jwt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/crypto.h"

#define VG_JWT_ISSUER "vidgate"
#define CACHE_SLOTS 4096
#define CACHE_CREDENTIAL 384

typedef struct cache_entry {
    char credential[CACHE_CREDENTIAL]; /* "" = empty slot */
    vg_principal principal;
    uint64_t epoch;
    long expires; /* tokens: their exp; keys: 0 */
} cache_entry;

struct vg_auth_cache {
    pthread_mutex_t lock;
    cache_entry slots[CACHE_SLOTS];
};

static unsigned slot_of(const char *credential)
{
    uint64_t h = 14695981039346656037u;
    for (const char *p = credential; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return (unsigned)(h % CACHE_SLOTS);
}

static bool cache_lookup(vg_auth_cache *cache, const char *credential,
                         uint64_t epoch, vg_principal *out)
{
    if (cache == NULL || strlen(credential) >= CACHE_CREDENTIAL)
        return false;
    cache_entry *e = &cache->slots[slot_of(credential)];
    bool hit = false;
    pthread_mutex_lock(&cache->lock);
    if (e->epoch == epoch && vg_secure_equal(e->credential, credential) &&
        (e->expires == 0 || e->expires > (long)time(NULL))) {
        *out = e->principal;
        hit = true;
    }
    pthread_mutex_unlock(&cache->lock);
    return hit;
}

static void cache_store(vg_auth_cache *cache, const char *credential,
                        uint64_t epoch, long expires,
                        const vg_principal *principal)
{
    if (cache == NULL || strlen(credential) >= CACHE_CREDENTIAL)
        return;
    cache_entry *e = &cache->slots[slot_of(credential)];
    pthread_mutex_lock(&cache->lock);
    snprintf(e->credential, sizeof(e->credential), "%s", credential);
    e->principal = *principal;
    e->epoch = epoch;
    e->expires = expires;
    pthread_mutex_unlock(&cache->lock);
}

void vg_auth_free(vg_auth *auth)
{
    if (auth->cache != NULL) {
        pthread_mutex_destroy(&auth->cache->lock);
        free(auth->cache);
        auth->cache = NULL;
    }
}

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
    auth->cache = calloc(1, sizeof(*auth->cache));
    if (auth->cache == NULL)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "out of memory");
    pthread_mutex_init(&auth->cache->lock, NULL);
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
                        char key_id[37], long *expires, vg_error *err)
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
    *expires = exp;
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
    uint64_t epoch = 0;
    long expires = 0;
    if (credential == NULL || *credential == '\0')
        return vg_error_set(err, 401, "unauthorized", NULL,
                            "missing bearer token: send Authorization: "
                            "Bearer <token> or X-API-KEY");
    /* The epoch is read before the lookup, so a revocation committed
     * during it moves the epoch past what the cache entry records. */
    vg_store *store = auth->store;
    bool cacheable = store->ops->keys_epoch(store, &epoch, err) == 0;
    if (cacheable && cache_lookup(auth->cache, credential, epoch, out))
        return 0;
    if (strchr(credential, '.') != NULL) {
        char key_id[37];
        if (verify_token(auth, credential, key_id, &expires, err) != 0)
            return -1;
        int rc = store->ops->get_key(store, key_id, &key, err);
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
    out->rpm_limit = key.rpm_limit;
    out->jobs_limit = key.jobs_limit;
    if (cacheable)
        cache_store(auth->cache, credential, epoch, expires, out);
    return 0;
}
