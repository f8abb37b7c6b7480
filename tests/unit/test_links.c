/*
 * test_links.c - the contract of links.h, one test per rule: a link made
 * by vg_links_sign opens its video until it expires, and any change to
 * the key, the expiry or the signature closes it.
 *
 * The secret lives in a real SQLite store (a fresh file per test under
 * $VG_TEST_TMP), since sharing it between server instances through the
 * store is part of the contract.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/links.h"
#include "store/store.h"
#include "util/arena.h"
#include "test_support.h"

#define NOW 1700000000
#define LIFETIME 3600

/* ---- helpers ----------------------------------------------------------- */

static void init_links(vg_links *links, vg_store *store,
                       const char *base_url)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    memset(links, 0, sizeof(*links));
    if (vg_links_init(links, store, LIFETIME, base_url, &err) != 0)
        fail_msg("vg_links_init: %s", err.message);
}

/* A signed link split into what the file endpoint receives. */
typedef struct signed_link {
    char url[1024];
    char expires[32];
    char signature[128];
} signed_link;

static void sign_link(const vg_links *links, const char *blob_key,
                      int64_t now, signed_link *out)
{
    vg_arena arena;
    vg_arena_init(&arena);
    char *url = vg_links_sign(links, blob_key, now, &arena);
    assert_non_null(url);
    snprintf(out->url, sizeof(out->url), "%s", url);
    vg_arena_free(&arena);

    const char *e = strstr(out->url, "?expires=");
    const char *s = strstr(out->url, "&signature=");
    assert_non_null(e);
    assert_non_null(s);
    e += strlen("?expires=");
    assert_true(s > e);
    snprintf(out->expires, sizeof(out->expires), "%.*s", (int)(s - e), e);
    snprintf(out->signature, sizeof(out->signature), "%s",
             s + strlen("&signature="));
}

static void assert_verifies(const vg_links *links, const char *blob_key,
                            const char *expires, const char *signature,
                            int64_t now)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    if (vg_links_verify(links, blob_key, expires, signature, now, &err) != 0)
        fail_msg("link for %s (expires=%s) refused: %d %s: %s", blob_key,
                 expires, err.status, err.code, err.message);
}

static void assert_refused(const vg_links *links, const char *blob_key,
                           const char *expires, const char *signature,
                           int64_t now, const char *code)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    int rc = vg_links_verify(links, blob_key, expires, signature, now, &err);
    if (rc == 0)
        fail_msg("link for %s (expires=%s, signature=%s) was accepted",
                 blob_key, expires ? expires : "(none)",
                 signature ? signature : "(none)");
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, code);
    assert_true(err.message[0] != '\0');
}

/* Every test gets a fresh store and links signed for it. */
typedef struct fixture {
    char path[600];
    vg_store *store;
    vg_links links;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vg_test_fresh_db("links", NULL, f->path, sizeof(f->path));
    f->store = vg_test_open_store(f->path);
    init_links(&f->links, f->store, "http://127.0.0.1:8080");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    vg_store_close(f->store);
    vg_test_remove_db(f->path);
    free(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_signed_link_verifies_until_it_expires(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "jobs/clip.mp4", NOW, &link);
    assert_verifies(&f->links, "jobs/clip.mp4", link.expires, link.signature,
                    NOW);
    assert_verifies(&f->links, "jobs/clip.mp4", link.expires, link.signature,
                    NOW + LIFETIME - 1);
}

static void test_link_url_is_base_files_path_expiry_and_signature(
    void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    char expected_prefix[256];
    snprintf(expected_prefix, sizeof(expected_prefix),
             "http://127.0.0.1:8080/v1/files/clip.mp4?expires=%d&signature=",
             NOW + LIFETIME);
    assert_memory_equal(link.url, expected_prefix, strlen(expected_prefix));
    assert_int_equal(strlen(link.signature), 64);
    for (size_t i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", link.signature[i]));
}

static void test_link_base_url_loses_its_trailing_slashes(void **state)
{
    fixture *f = *state;
    vg_links links;
    init_links(&links, f->store, "https://videos.example.com///");
    assert_string_equal(links.base_url, "https://videos.example.com");
    signed_link link;
    sign_link(&links, "a/b.mp4", NOW, &link);
    char expected_prefix[256];
    snprintf(expected_prefix, sizeof(expected_prefix),
             "https://videos.example.com/v1/files/a/b.mp4?expires=%d"
             "&signature=",
             NOW + LIFETIME);
    assert_memory_equal(link.url, expected_prefix, strlen(expected_prefix));
    assert_verifies(&links, "a/b.mp4", link.expires, link.signature, NOW);
}

static void test_wrong_signature_is_invalid(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    char forged[128];
    snprintf(forged, sizeof(forged), "%s", link.signature);
    forged[10] = forged[10] == '0' ? '1' : '0';
    assert_refused(&f->links, "clip.mp4", link.expires, forged, NOW,
                   "invalid_signature");
    assert_refused(&f->links, "clip.mp4", link.expires, "", NOW,
                   "invalid_signature");
    /* A prefix of the signature is not enough. */
    snprintf(forged, sizeof(forged), "%.63s", link.signature);
    assert_refused(&f->links, "clip.mp4", link.expires, forged, NOW,
                   "invalid_signature");
}

static void test_overlong_key_is_invalid_and_not_signed(void **state)
{
    fixture *f = *state;
    char key[2001];
    memset(key, 'a', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    vg_arena arena;
    vg_arena_init(&arena);
    assert_null(vg_links_sign(&f->links, key, NOW, &arena));
    vg_arena_free(&arena);
    assert_refused(&f->links, key, "1999999999",
                   "0000000000000000000000000000000000000000000000000000000000"
                   "000000",
                   NOW, "invalid_signature");
}

static void test_signature_for_another_key_is_invalid(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "mine.mp4", NOW, &link);
    assert_refused(&f->links, "theirs.mp4", link.expires, link.signature,
                   NOW, "invalid_signature");
    assert_refused(&f->links, "mine.mp", link.expires, link.signature, NOW,
                   "invalid_signature");
    assert_refused(&f->links, "mine.mp4/", link.expires, link.signature, NOW,
                   "invalid_signature");
}

static void test_changed_expiry_is_invalid(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    char later[32];
    snprintf(later, sizeof(later), "%d", NOW + LIFETIME + 86400);
    assert_refused(&f->links, "clip.mp4", later, link.signature, NOW,
                   "invalid_signature");
    snprintf(later, sizeof(later), "%d", NOW + LIFETIME - 1);
    assert_refused(&f->links, "clip.mp4", later, link.signature, NOW,
                   "invalid_signature");
}

static void test_missing_expiry_or_signature_is_invalid(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    assert_refused(&f->links, "clip.mp4", NULL, link.signature, NOW,
                   "invalid_signature");
    assert_refused(&f->links, "clip.mp4", link.expires, NULL, NOW,
                   "invalid_signature");
    assert_refused(&f->links, "clip.mp4", NULL, NULL, NOW,
                   "invalid_signature");
}

static void test_non_numeric_expiry_is_invalid(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    char padded[40];
    static const char *const bad[] = {"", "soon", "abc", "1e9", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(&f->links, "clip.mp4", bad[i], link.signature, NOW,
                       "invalid_signature");
    snprintf(padded, sizeof(padded), "%sx", link.expires);
    assert_refused(&f->links, "clip.mp4", padded, link.signature, NOW,
                   "invalid_signature");
    snprintf(padded, sizeof(padded), " %s", link.expires);
    assert_refused(&f->links, "clip.mp4", padded, link.signature, NOW,
                   "invalid_signature");
    snprintf(padded, sizeof(padded), "%s.0", link.expires);
    assert_refused(&f->links, "clip.mp4", padded, link.signature, NOW,
                   "invalid_signature");
}

static void test_link_past_its_expiry_is_expired(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    assert_refused(&f->links, "clip.mp4", link.expires, link.signature,
                   NOW + LIFETIME + 1, "link_expired");
    assert_refused(&f->links, "clip.mp4", link.expires, link.signature,
                   NOW + 10 * LIFETIME, "link_expired");
}

/* Expiry is only reported for a genuine link: a forged one that is also
 * out of date is reported as forged. */
static void test_forged_link_is_invalid_even_when_out_of_date(void **state)
{
    fixture *f = *state;
    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    assert_refused(&f->links, "other.mp4", link.expires, link.signature,
                   NOW + LIFETIME + 1, "invalid_signature");
}

static void test_instances_on_one_store_share_the_secret(void **state)
{
    fixture *f = *state;
    /* A second server process on the same database. */
    vg_store *second = vg_test_open_store(f->path);
    vg_links other;
    init_links(&other, second, "http://10.0.0.2:9000");
    assert_string_equal(other.secret, f->links.secret);

    signed_link link;
    sign_link(&f->links, "clip.mp4", NOW, &link);
    assert_verifies(&other, "clip.mp4", link.expires, link.signature, NOW);
    sign_link(&other, "clip2.mp4", NOW, &link);
    assert_verifies(&f->links, "clip2.mp4", link.expires, link.signature,
                    NOW);
    vg_store_close(second);

    /* And after a restart. */
    vg_store_close(f->store);
    f->store = vg_test_open_store(f->path);
    vg_links restarted;
    init_links(&restarted, f->store, "http://127.0.0.1:8080");
    assert_string_equal(restarted.secret, f->links.secret);
    assert_verifies(&restarted, "clip2.mp4", link.expires, link.signature,
                    NOW);
}

static void test_another_store_has_another_secret(void **state)
{
    fixture *f = *state;
    char path[600];
    vg_test_fresh_db("links", NULL, path, sizeof(path));
    vg_store *store = vg_test_open_store(path);
    vg_links stranger;
    init_links(&stranger, store, "http://127.0.0.1:8080");
    assert_int_equal(strlen(stranger.secret), 64);
    assert_string_not_equal(stranger.secret, f->links.secret);

    signed_link link;
    sign_link(&stranger, "clip.mp4", NOW, &link);
    assert_refused(&f->links, "clip.mp4", link.expires, link.signature, NOW,
                   "invalid_signature");
    vg_store_close(store);
    vg_test_remove_db(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_signed_link_verifies_until_it_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_link_url_is_base_files_path_expiry_and_signature, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_link_base_url_loses_its_trailing_slashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_signature_is_invalid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_signature_for_another_key_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_overlong_key_is_invalid_and_not_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_expiry_is_invalid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_missing_expiry_or_signature_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_numeric_expiry_is_invalid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_past_its_expiry_is_expired,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_forged_link_is_invalid_even_when_out_of_date, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_instances_on_one_store_share_the_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_store_has_another_secret,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
