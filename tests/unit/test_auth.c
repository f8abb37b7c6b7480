/*
 * test_auth.c - the contract of auth.h, one test per rule: API keys,
 * the HS256 tokens they are exchanged for, and the cache of checked
 * credentials that must never outlive a revocation.
 *
 * Every test works on a fresh SQLite store under $VG_TEST_TMP. Forged
 * tokens are built by hand (base64url pieces) or with libjwt, the way an
 * attacker would, so the tests do not depend on how auth.c signs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/auth.h"
#include "store/store.h"
#include "util/crypto.h"
#include "test_support.h"

/* ---- helpers ----------------------------------------------------------- */

static void init_auth(vg_auth *auth, vg_store *store, int lifetime_s)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    memset(auth, 0, sizeof(*auth));
    if (vg_auth_init(auth, store, lifetime_s, &err) != 0)
        fail_msg("vg_auth_init: %s", err.message);
}

static void new_account(vg_store *store, const char *name, vg_account *out)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    if (store->ops->create_account(store, name, 1000, out, &err) !=
        VG_STORE_OK)
        fail_msg("create_account: %s", err.message);
}

static void new_key(vg_store *store, const char *account_id, char key[48],
                    vg_api_key *record)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    if (vg_auth_create_key(store, account_id, "test key", key, record,
                           &err) != 0)
        fail_msg("vg_auth_create_key: %s", err.message);
}

static char *issue(const vg_auth *auth, const char *key)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    char *token = NULL;
    if (vg_auth_issue_token(auth, key, &token, &err) != 0)
        fail_msg("vg_auth_issue_token: %d %s: %s", err.status, err.code,
                 err.message);
    assert_non_null(token);
    return token;
}

static void assert_authenticates_as(const vg_auth *auth,
                                    const char *credential,
                                    const vg_api_key *key)
{
    vg_error err;
    vg_principal who;
    memset(&err, 0, sizeof(err));
    memset(&who, 0, sizeof(who));
    if (vg_auth_authenticate(auth, credential, &who, &err) != 0)
        fail_msg("credential %.60s refused: %d %s: %s", credential,
                 err.status, err.code, err.message);
    assert_string_equal(who.account_id, key->account_id);
    assert_string_equal(who.key_id, key->id);
}

static void assert_unauthorized_with(const vg_auth *auth,
                                     const char *credential,
                                     const char *code)
{
    vg_error err;
    vg_principal who;
    memset(&err, 0, sizeof(err));
    memset(&who, 0, sizeof(who));
    int rc = vg_auth_authenticate(auth, credential, &who, &err);
    if (rc == 0)
        fail_msg("credential %.80s was accepted as account %s",
                 credential ? credential : "(null)", who.account_id);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, code);
    assert_true(err.message[0] != '\0');
}

static void assert_unauthorized(const vg_auth *auth, const char *credential)
{
    assert_unauthorized_with(auth, credential, "unauthorized");
}

static void assert_issue_forbidden(const vg_auth *auth, const char *key)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    char *token = NULL;
    int rc = vg_auth_issue_token(auth, key, &token, &err);
    if (rc == 0) {
        free(token);
        fail_msg("a token was issued for %s", key ? key : "(null)");
    }
    assert_int_equal(rc, -1);
    assert_null(token);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "forbidden");
}

static void base64url_encode(const unsigned char *data, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t at = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < n)
            v |= data[i + 2];
        out[at++] = alphabet[(v >> 18) & 63];
        out[at++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[at++] = alphabet[(v >> 6) & 63];
        if (i + 2 < n)
            out[at++] = alphabet[v & 63];
    }
    out[at] = '\0';
}

/* Decodes n base64url characters (no padding); returns the length. */
static size_t base64url_decode(const char *in, size_t n, unsigned char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(alphabet, in[i]);
        if (in[i] == '\0' || p == NULL)
            fail_msg("not base64url: %.*s", (int)n, in);
        acc = acc << 6 | (uint32_t)(p - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[at++] = (unsigned char)(acc >> bits);
        }
    }
    return at;
}

/* A token cut into its three base64url parts. */
typedef struct jwt_parts {
    char header[512];
    char payload[1024];
    char signature[256];
} jwt_parts;

static void split_token(const char *token, jwt_parts *out)
{
    const char *dot1 = strchr(token, '.');
    assert_non_null(dot1);
    const char *dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    assert_null(strchr(dot2 + 1, '.'));
    snprintf(out->header, sizeof(out->header), "%.*s", (int)(dot1 - token),
             token);
    snprintf(out->payload, sizeof(out->payload), "%.*s",
             (int)(dot2 - dot1 - 1), dot1 + 1);
    snprintf(out->signature, sizeof(out->signature), "%s", dot2 + 1);
}

/* Parses a base64url-encoded JSON object (a token's header or payload). */
static json_t *decode_part(const char *part)
{
    unsigned char raw[1024];
    size_t n = base64url_decode(part, strlen(part), raw);
    json_error_t jerr;
    json_t *v = json_loadb((const char *)raw, n, 0, &jerr);
    if (v == NULL)
        fail_msg("token part is not JSON: %s", jerr.text);
    return v;
}

/* The base64url of a JSON text, as a token part. */
static void encode_part(const char *json, char *out)
{
    base64url_encode((const unsigned char *)json, strlen(json), out);
}

/* A token made with libjwt, as a forger holding secret would make one. */
static char *craft_token(const char *secret, const char *issuer,
                         const char *key_id, const char *account_id,
                         long exp)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "iss", issuer), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", key_id), 0);
    assert_int_equal(jwt_add_grant(jwt, "acc", account_id), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", (long)time(NULL)), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", exp), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256,
                                 (const unsigned char *)secret,
                                 (int)strlen(secret)),
                     0);
    char *token = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(token);
    return token;
}

/* True when the file at path contains the bytes of needle. */
static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = strlen(needle), cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    bool found = memmem(buf, len, needle, n) != NULL;
    free(buf);
    return found;
}

/* Every test gets a fresh store, an account with one key, and an auth
 * over them. */
typedef struct fixture {
    char path[600];
    vg_store *store;
    vg_account account;
    char key[48];
    vg_api_key key_record;
    vg_auth auth;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vg_test_fresh_db("auth", NULL, f->path, sizeof(f->path));
    f->store = vg_test_open_store(f->path);
    init_auth(&f->auth, f->store, 3600);
    new_account(f->store, "acme", &f->account);
    new_key(f->store, f->account.id, f->key, &f->key_record);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    vg_auth_free(&f->auth);
    vg_store_close(f->store);
    vg_test_remove_db(f->path);
    free(f);
    return 0;
}

static void revoke_key_id(vg_store *store, const char *key_id)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    if (store->ops->revoke_key(store, key_id, &err) != VG_STORE_OK)
        fail_msg("revoke_key: %s", err.message);
}

/* ---- secret ------------------------------------------------------------ */

static void test_init_creates_the_secret_once(void **state)
{
    fixture *f = *state;
    assert_int_equal(strlen(f->auth.jwt_secret), 64);

    /* A second init (a restart, or a second instance) gets the same. */
    vg_auth again;
    init_auth(&again, f->store, 3600);
    assert_string_equal(again.jwt_secret, f->auth.jwt_secret);
    vg_auth_free(&again);

    vg_store *second = vg_test_open_store(f->path);
    vg_auth other;
    init_auth(&other, second, 3600);
    assert_string_equal(other.jwt_secret, f->auth.jwt_secret);
    /* ...so a token from one instance works on the other. */
    char *token = issue(&f->auth, f->key);
    assert_authenticates_as(&other, token, &f->key_record);
    free(token);
    vg_auth_free(&other);
    vg_store_close(second);

    /* A different store has a secret of its own. */
    char path[600];
    vg_test_fresh_db("auth", NULL, path, sizeof(path));
    vg_store *stranger_store = vg_test_open_store(path);
    vg_auth stranger;
    init_auth(&stranger, stranger_store, 3600);
    assert_string_not_equal(stranger.jwt_secret, f->auth.jwt_secret);
    vg_auth_free(&stranger);
    vg_store_close(stranger_store);
    vg_test_remove_db(path);
}

/* ---- keys -------------------------------------------------------------- */

static void test_create_key_returns_a_vg_key_for_its_account(void **state)
{
    fixture *f = *state;
    assert_int_equal(strlen(f->key), 46);
    assert_memory_equal(f->key, "vg_", 3);
    assert_string_equal(f->key_record.account_id, f->account.id);
    assert_int_equal(strlen(f->key_record.id), 36);
    assert_false(f->key_record.revoked);
    /* The prefix shown to humans is the start of the key. */
    assert_true(strlen(f->key_record.prefix) > 3);
    assert_memory_equal(f->key, f->key_record.prefix,
                        strlen(f->key_record.prefix));

    assert_authenticates_as(&f->auth, f->key, &f->key_record);
}

static void test_plain_key_is_never_stored(void **state)
{
    fixture *f = *state;
    char wal[620];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    /* The hash is (the store must find the key somehow)... */
    char hash[65];
    vg_sha256_hex(f->key, hash);
    assert_true(file_contains(f->path, hash) || file_contains(wal, hash));
    /* ...but not the key, nor its secret part. */
    assert_false(file_contains(f->path, f->key));
    assert_false(file_contains(wal, f->key));
    assert_false(file_contains(f->path, f->key + 12));
    assert_false(file_contains(wal, f->key + 12));
}

static void test_create_key_for_unknown_account_is_not_found(void **state)
{
    fixture *f = *state;
    char key[48];
    vg_api_key record;
    vg_error err;
    memset(&err, 0, sizeof(err));
    int rc = vg_auth_create_key(f->store,
                                "00000000-0000-4000-8000-000000000000",
                                "orphan", key, &record, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "not_found");
}

static void test_each_credential_authenticates_as_its_own_key(void **state)
{
    fixture *f = *state;
    vg_account other_account;
    new_account(f->store, "globex", &other_account);
    char second_key[48], other_key[48];
    vg_api_key second_record, other_record;
    new_key(f->store, f->account.id, second_key, &second_record);
    new_key(f->store, other_account.id, other_key, &other_record);
    assert_string_not_equal(second_key, f->key);
    assert_string_not_equal(second_record.id, f->key_record.id);

    char *token = issue(&f->auth, other_key);
    for (int i = 0; i < 3; i++) {
        assert_authenticates_as(&f->auth, f->key, &f->key_record);
        assert_authenticates_as(&f->auth, second_key, &second_record);
        assert_authenticates_as(&f->auth, other_key, &other_record);
        assert_authenticates_as(&f->auth, token, &other_record);
    }
    free(token);
}

/* ---- tokens ------------------------------------------------------------ */

static void test_issue_token_gives_a_jwt_for_the_same_principal(
    void **state)
{
    fixture *f = *state;
    time_t before = time(NULL);
    char *token = issue(&f->auth, f->key);
    jwt_parts parts;
    split_token(token, &parts);
    assert_true(parts.header[0] && parts.payload[0] && parts.signature[0]);

    json_t *header = decode_part(parts.header);
    assert_string_equal(json_string_value(json_object_get(header, "alg")),
                        "HS256");
    json_decref(header);
    json_t *payload = decode_part(parts.payload);
    assert_string_equal(json_string_value(json_object_get(payload, "sub")),
                        f->key_record.id);
    json_int_t exp = json_integer_value(json_object_get(payload, "exp"));
    assert_in_range(exp, before + 3600, time(NULL) + 3600);
    json_decref(payload);

    assert_authenticates_as(&f->auth, token, &f->key_record);
    free(token);
}

static void test_issue_token_refuses_unknown_empty_or_missing_key(
    void **state)
{
    fixture *f = *state;
    char unknown[48];
    vg_new_api_key(unknown);
    assert_issue_forbidden(&f->auth, unknown);
    assert_issue_forbidden(&f->auth, "");
    assert_issue_forbidden(&f->auth, NULL);
    assert_issue_forbidden(&f->auth, "not-a-key");
    /* A token is not a key. */
    char *token = issue(&f->auth, f->key);
    assert_issue_forbidden(&f->auth, token);
    free(token);
}

static void test_authenticate_without_credential_is_unauthorized(
    void **state)
{
    fixture *f = *state;
    assert_unauthorized(&f->auth, NULL);
    assert_unauthorized(&f->auth, "");
}

static void test_garbage_credential_is_unauthorized(void **state)
{
    fixture *f = *state;
    char unknown[48];
    vg_new_api_key(unknown);
    char long_junk[2000];
    memset(long_junk, 'A', sizeof(long_junk) - 1);
    long_junk[sizeof(long_junk) - 1] = '\0';
    const char *garbage[] = {
        "garbage", "Bearer x", "a.b.c", "..", "...", ".", "vg_",
        unknown, "eyJhbGciOiJIUzI1NiJ9.e30.", long_junk,
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        assert_unauthorized(&f->auth, garbage[i]);
    /* A key with one character changed is another, unknown key. */
    char near[48];
    memcpy(near, f->key, sizeof(near));
    near[20] = near[20] == 'A' ? 'B' : 'A';
    assert_unauthorized(&f->auth, near);
}

static void test_token_with_a_changed_signature_is_unauthorized(
    void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    assert_authenticates_as(&f->auth, token, &f->key_record);
    char *sig = strrchr(token, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    assert_unauthorized(&f->auth, token);
    /* No signature at all. */
    sig[0] = '\0';
    assert_unauthorized(&f->auth, token);
    free(token);
}

static void test_token_with_a_rewritten_payload_is_unauthorized(
    void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    jwt_parts parts;
    split_token(token, &parts);

    /* Extend the expiry, keep the old signature. */
    json_t *payload = decode_part(parts.payload);
    json_int_t exp = json_integer_value(json_object_get(payload, "exp"));
    json_object_set_new(payload, "exp", json_integer(exp + 86400 * 365));
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    char encoded[1024], forged[2048];
    encode_part(text, encoded);
    free(text);
    snprintf(forged, sizeof(forged), "%s.%s.%s", parts.header, encoded,
             parts.signature);
    assert_unauthorized(&f->auth, forged);
    free(token);
}

static void test_unsigned_alg_none_token_is_unauthorized(void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    jwt_parts parts;
    split_token(token, &parts);
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\",\"alg\":\"none\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char header[128], forged[2048];
        encode_part(headers[i], header);
        snprintf(forged, sizeof(forged), "%s.%s.", header, parts.payload);
        assert_unauthorized(&f->auth, forged);
        snprintf(forged, sizeof(forged), "%s.%s.%s", header, parts.payload,
                 parts.signature);
        assert_unauthorized(&f->auth, forged);
        snprintf(forged, sizeof(forged), "%s.%s", header, parts.payload);
        assert_unauthorized(&f->auth, forged);
    }
    free(token);
}

static void test_token_signed_with_another_secret_is_unauthorized(
    void **state)
{
    fixture *f = *state;
    long exp = (long)time(NULL) + 3600;
    /* The same token signed with the real secret is accepted... */
    char *genuine = craft_token(f->auth.jwt_secret, "vidgate",
                                f->key_record.id, f->account.id, exp);
    assert_authenticates_as(&f->auth, genuine, &f->key_record);
    free(genuine);
    /* ...and with any other secret it is not. */
    char *forged = craft_token("not-the-secret-0123456789abcdef", "vidgate",
                               f->key_record.id, f->account.id, exp);
    assert_unauthorized(&f->auth, forged);
    free(forged);
}

static void test_token_from_another_issuer_is_unauthorized(void **state)
{
    fixture *f = *state;
    char *token = craft_token(f->auth.jwt_secret, "someone-else",
                              f->key_record.id, f->account.id,
                              (long)time(NULL) + 3600);
    assert_unauthorized(&f->auth, token);
    free(token);
}

static void test_token_for_an_unknown_key_is_unauthorized(void **state)
{
    fixture *f = *state;
    char *token = craft_token(f->auth.jwt_secret, "vidgate",
                              "00000000-0000-4000-8000-000000000000",
                              f->account.id, (long)time(NULL) + 3600);
    assert_unauthorized(&f->auth, token);
    free(token);
}

static void test_expired_token_is_token_expired(void **state)
{
    fixture *f = *state;
    char *token = craft_token(f->auth.jwt_secret, "vidgate",
                              f->key_record.id, f->account.id,
                              (long)time(NULL) - 10);
    assert_unauthorized_with(&f->auth, token, "token_expired");
    free(token);
}

/* A token that was checked (and cached) still expires on time. */
static void test_cached_token_stops_working_when_it_expires(void **state)
{
    fixture *f = *state;
    vg_auth short_lived;
    init_auth(&short_lived, f->store, 2);
    /* Start at the beginning of a second, so the token surely lives
     * through the first checks. */
    time_t start = time(NULL);
    while (time(NULL) == start)
        usleep(10000);
    char *token = issue(&short_lived, f->key);
    assert_authenticates_as(&short_lived, token, &f->key_record);
    assert_authenticates_as(&short_lived, token, &f->key_record);
    while (time(NULL) < start + 1 + 2)
        usleep(50000);
    assert_unauthorized_with(&short_lived, token, "token_expired");
    /* The key itself does not expire. */
    assert_authenticates_as(&short_lived, f->key, &f->key_record);
    free(token);
    vg_auth_free(&short_lived);
}

/* ---- revocation and the cache ------------------------------------------ */

static void test_revoked_key_and_its_tokens_stop_working(void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    assert_authenticates_as(&f->auth, f->key, &f->key_record);
    assert_authenticates_as(&f->auth, token, &f->key_record);

    revoke_key_id(f->store, f->key_record.id);

    assert_unauthorized(&f->auth, f->key);
    assert_unauthorized(&f->auth, token);
    assert_issue_forbidden(&f->auth, f->key);
    free(token);
}

static void test_revocation_by_another_process_is_seen_at_once(
    void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    /* Checked, hence cached, before the revocation. */
    for (int i = 0; i < 3; i++) {
        assert_authenticates_as(&f->auth, f->key, &f->key_record);
        assert_authenticates_as(&f->auth, token, &f->key_record);
    }

    /* The CLI revokes through a store of its own. */
    vg_store *cli = vg_test_open_store(f->path);
    revoke_key_id(cli, f->key_record.id);
    vg_store_close(cli);

    assert_unauthorized(&f->auth, f->key);
    assert_unauthorized(&f->auth, token);
    assert_issue_forbidden(&f->auth, f->key);
    free(token);
}

static void test_revoking_one_key_leaves_the_others_working(void **state)
{
    fixture *f = *state;
    char second_key[48];
    vg_api_key second_record;
    new_key(f->store, f->account.id, second_key, &second_record);
    char *second_token = issue(&f->auth, second_key);
    assert_authenticates_as(&f->auth, second_token, &second_record);

    revoke_key_id(f->store, f->key_record.id);

    assert_unauthorized(&f->auth, f->key);
    assert_authenticates_as(&f->auth, second_key, &second_record);
    assert_authenticates_as(&f->auth, second_token, &second_record);
    char *fresh = issue(&f->auth, second_key);
    assert_authenticates_as(&f->auth, fresh, &second_record);
    free(fresh);
    free(second_token);
}

static void test_cached_credential_keeps_working_across_many_calls(
    void **state)
{
    fixture *f = *state;
    char *token = issue(&f->auth, f->key);
    for (int i = 0; i < 1000; i++) {
        assert_authenticates_as(&f->auth, f->key, &f->key_record);
        assert_authenticates_as(&f->auth, token, &f->key_record);
    }
    free(token);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_init_creates_the_secret_once),
        TEST(test_create_key_returns_a_vg_key_for_its_account),
        TEST(test_plain_key_is_never_stored),
        TEST(test_create_key_for_unknown_account_is_not_found),
        TEST(test_each_credential_authenticates_as_its_own_key),
        TEST(test_issue_token_gives_a_jwt_for_the_same_principal),
        TEST(test_issue_token_refuses_unknown_empty_or_missing_key),
        TEST(test_authenticate_without_credential_is_unauthorized),
        TEST(test_garbage_credential_is_unauthorized),
        TEST(test_token_with_a_changed_signature_is_unauthorized),
        TEST(test_token_with_a_rewritten_payload_is_unauthorized),
        TEST(test_unsigned_alg_none_token_is_unauthorized),
        TEST(test_token_signed_with_another_secret_is_unauthorized),
        TEST(test_token_from_another_issuer_is_unauthorized),
        TEST(test_token_for_an_unknown_key_is_unauthorized),
        TEST(test_expired_token_is_token_expired),
        TEST(test_cached_token_stops_working_when_it_expires),
        TEST(test_revoked_key_and_its_tokens_stop_working),
        TEST(test_revocation_by_another_process_is_seen_at_once),
        TEST(test_revoking_one_key_leaves_the_others_working),
        TEST(test_cached_credential_keeps_working_across_many_calls),
    };
#undef TEST
    return cmocka_run_group_tests(tests, NULL, NULL);
}
