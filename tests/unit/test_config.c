/*
 * test_config.c - server settings: defaults, the JSON config file (strict
 * about unknown keys and number types, all or nothing), the VIDGATE_*
 * environment variables and the listen address syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

static vg_config cfg;
static vg_error err;
static char tmp_dir[512];
static char path[600];

static void make_dirs(const char *dir)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0700);
            *p = '/';
        }
    }
    mkdir(buf, 0700);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("VG_TEST_TMP");
    char parent[400];
    snprintf(parent, sizeof(parent), "%s", base ? base : "/tmp");
    make_dirs(parent);
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_config.XXXXXX", parent);
    assert_non_null(mkdtemp(tmp_dir));
    snprintf(path, sizeof(path), "%s/vidgate.json", tmp_dir);
    vg_config_defaults(&cfg);
    memset(&err, 0, sizeof(err));
    unsetenv("VIDGATE_LISTEN");
    unsetenv("VIDGATE_DATA");
    unsetenv("VIDGATE_PUBLIC_URL");
    unsetenv("VIDGATE_DATABASE_URL");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vg_config_free(&cfg);
    unlink(path);
    rmdir(tmp_dir);
    return 0;
}

static int load_text(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return vg_config_load_file(&cfg, path, &err);
}

static void expect_config_error(const char *text, const char *field,
                                const char *needle)
{
    vg_config before = cfg;
    if (load_text(text) == 0)
        fail_msg("config accepted; expected an error about %s", field);
    assert_int_equal(err.status, 0);
    assert_string_equal(err.code, "config_error");
    assert_string_equal(err.field, field);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    /* A refused file changes nothing. */
    assert_memory_equal(&before, &cfg, sizeof(cfg));
}

/* ---- defaults -------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "./vidgate-data");
    assert_string_equal(cfg.public_url, "");
    assert_int_equal(cfg.max_body_bytes, 1024 * 1024);
    assert_int_equal(cfg.max_header_bytes, 8 * 1024);
    assert_int_equal(cfg.connection_timeout_s, 30);
    assert_int_equal(cfg.max_connections, 20000);
    assert_int_equal(cfg.http_threads, 2);
    assert_int_equal(cfg.render_workers, 0);
    assert_int_equal(cfg.token_lifetime_s, 3600);
    assert_int_equal(cfg.url_lifetime_s, 86400);
    assert_int_equal(cfg.starting_credits, 100000);
    assert_int_equal(cfg.request_limits.prompt_max_chars, 2000);
    assert_int_equal(cfg.request_limits.max_image_bytes, 10 * 1024 * 1024);
    assert_int_equal(cfg.request_limits.max_images, 4);
    assert_int_equal(cfg.max_sync_wait_s, 600);
    assert_int_equal(cfg.flex_max_wait_s, 600);
    assert_int_equal(cfg.max_attempts, 3);
    assert_int_equal(cfg.idempotency_ttl_s, 86400);
    assert_int_equal(cfg.requests_per_minute, 600);
    assert_int_equal(cfg.unfinished_jobs_per_key, 64);
    /* The built-in upstream providers, at their public addresses. */
    assert_int_equal(cfg.n_providers, 6);
    assert_string_equal(cfg.providers[0].name, "novita");
    assert_string_equal(cfg.providers[0].base_url, "https://api.novita.ai");
    assert_string_equal(cfg.providers[0].api_key_env, "NOVITA_API_KEY");
    assert_string_equal(cfg.providers[1].name, "google");
    assert_string_equal(cfg.providers[1].api_key_env, "GEMINI_API_KEY");
    assert_string_equal(cfg.providers[2].name, "byteplus");
    assert_string_equal(cfg.providers[3].name, "fal");
    assert_string_equal(cfg.providers[4].name, "replicate");
    assert_int_equal(cfg.providers[4].breaker_failures, 5);
    /* Vertex AI: the key variable names a service-account key file; the
     * base comes from the region and the key's project. */
    assert_string_equal(cfg.providers[5].name, "google-vertex");
    assert_string_equal(cfg.providers[5].type, "google-vertex");
    assert_string_equal(cfg.providers[5].api_key_env,
                        "GOOGLE_APPLICATION_CREDENTIALS");
    assert_string_equal(cfg.providers[5].base_url, "");
    assert_false(cfg.webhook_allow_private);
    assert_int_equal(cfg.webhook_timeout_s, 10);
    assert_int_equal(cfg.webhook_retry_base_ms, 5000);
    assert_int_equal(cfg.webhook_give_up_after_s, 86400);
    assert_int_equal(cfg.webhook_max_in_flight, 64);
    assert_null(cfg.catalog);
}

static void test_finish_installs_the_default_catalog(void **state)
{
    (void)state;
    vg_config_finish(&cfg);
    assert_non_null(cfg.catalog);
    assert_non_null(vg_catalog_find(cfg.catalog, "vidgate-local"));
}

/* ---- the config file ------------------------------------------------- */

static void test_file_sets_every_key(void **state)
{
    (void)state;
    int rc = load_text(
        "{\"listen\": \"0.0.0.0:9000\", \"data\": \"/var/lib/vidgate\","
        " \"public_url\": \"https://videos.example.com/\","
        " \"limits\": {\"max_body_bytes\": 2048, \"max_header_bytes\": 4096,"
        "   \"max_upload_bytes\": 5000, \"max_upload_files\": 8,"
        "   \"prompt_max_chars\": 500, \"connection_timeout_s\": 5,"
        "   \"max_connections\": 10},"
        " \"http_threads\": 4, \"render_workers\": 3,"
        " \"token_lifetime_s\": 60, \"url_lifetime_s\": 120,"
        " \"starting_credits\": 12.5}");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_string_equal(cfg.data_dir, "/var/lib/vidgate");
    assert_string_equal(cfg.public_url, "https://videos.example.com");
    assert_int_equal(cfg.max_body_bytes, 2048);
    assert_int_equal(cfg.max_header_bytes, 4096);
    assert_int_equal(cfg.request_limits.max_image_bytes, 5000);
    assert_int_equal(cfg.request_limits.max_images, 8);
    assert_int_equal(cfg.request_limits.prompt_max_chars, 500);
    assert_int_equal(cfg.connection_timeout_s, 5);
    assert_int_equal(cfg.max_connections, 10);
    assert_int_equal(cfg.http_threads, 4);
    assert_int_equal(cfg.render_workers, 3);
    assert_int_equal(cfg.token_lifetime_s, 60);
    assert_int_equal(cfg.url_lifetime_s, 120);
    assert_int_equal(cfg.starting_credits, 12500);
    assert_null(cfg.catalog);
}

static void test_file_keys_are_optional(void **state)
{
    (void)state;
    vg_config defaults = cfg;
    assert_int_equal(load_text("{}"), 0);
    assert_memory_equal(&defaults, &cfg, sizeof(cfg));
}

static void test_file_models_build_the_catalog(void **state)
{
    (void)state;
    const char *text =
        "{\"models\": [{\"name\": \"m1\", \"provider\": \"local\","
        "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
        "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
        "  \"price\": {\"per_second\": {\"480P\": 1}}}]}";
    assert_int_equal(load_text(text), 0);
    assert_non_null(vg_catalog_find(cfg.catalog, "m1"));
    /* A second file replaces the first catalog (ASan checks the free). */
    assert_int_equal(load_text(text), 0);
    assert_non_null(vg_catalog_find(cfg.catalog, "m1"));
    vg_config_finish(&cfg);
    assert_null(vg_catalog_find(cfg.catalog, "vidgate-local"));
}

static void test_example_config_matches_the_defaults(void **state)
{
    (void)state;
    /* config/vidgate.example.json documents the defaults: loading it must
     * change nothing but the (equal) catalog. */
    char example[1024];
    const char *src = getenv("VG_SOURCE_DIR");
    if (src != NULL) {
        snprintf(example, sizeof(example), "%s/config/vidgate.example.json",
                 src);
    } else {
        snprintf(example, sizeof(example), "%s", __FILE__);
        char *cut = strstr(example, "tests/unit/test_config.c");
        if (cut == NULL)
            skip();
        snprintf(cut, sizeof(example) - (size_t)(cut - example),
                 "config/vidgate.example.json");
    }
    vg_config defaults = cfg;
    int rc = vg_config_load_file(&cfg, example, &err);
    if (rc != 0)
        fail_msg("%s", err.message);
    vg_catalog *catalog = cfg.catalog;
    cfg.catalog = NULL;
    assert_memory_equal(&defaults, &cfg, sizeof(cfg));
    cfg.catalog = catalog;

    vg_catalog *builtin = vg_catalog_default();
    const vg_model *a = vg_catalog_find(cfg.catalog, "vidgate-local");
    const vg_model *b = vg_catalog_find(builtin, "vidgate-local");
    assert_non_null(a);
    assert_string_equal(a->description, b->description);
    assert_string_equal(a->provider, b->provider);
    assert_int_equal(a->resolutions, b->resolutions);
    assert_int_equal(a->aspects, b->aspects);
    assert_int_equal(a->durations, b->durations);
    assert_true(a->fps == b->fps);
    assert_memory_equal(a->price_per_second, b->price_per_second,
                        sizeof(a->price_per_second));
    assert_int_equal(a->audio_factor, b->audio_factor);
    assert_int_equal(a->flex_factor, b->flex_factor);
    assert_ptr_equal(vg_catalog_find(cfg.catalog, "local"), a);
    assert_ptr_equal(vg_catalog_find(cfg.catalog, "seedance-v1.5-pro-t2v"), a);
    vg_catalog_free(builtin);
}

static void test_jobs_providers_and_webhooks_are_read(void **state)
{
    (void)state;
    int rc = load_text("{\"jobs\": {\"max_sync_wait_s\": 5, \"flex_max_wait_s\": 7,"
                 " \"max_attempts\": 2, \"idempotency_ttl_s\": 60},"
                 " \"limits\": {\"requests_per_minute\": 0,"
                 " \"unfinished_jobs_per_key\": 3},"
                 " \"providers\": {\"local\": {\"concurrency\": 1},"
                 " \"replay\": {\"file\": \"/x.mp4\", \"delay_ms\": 9}},"
                 " \"webhooks\": {\"allow_private_addresses\": true,"
                 " \"retry_base_ms\": 100, \"timeout_s\": 2}}");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_int_equal(cfg.max_sync_wait_s, 5);
    assert_int_equal(cfg.flex_max_wait_s, 7);
    assert_int_equal(cfg.max_attempts, 2);
    assert_int_equal(cfg.idempotency_ttl_s, 60);
    assert_int_equal(cfg.requests_per_minute, 0);
    assert_int_equal(cfg.unfinished_jobs_per_key, 3);
    assert_int_equal(cfg.n_providers, 8); /* after the built-in six */
    assert_string_equal(cfg.providers[6].name, "local");
    assert_int_equal(cfg.providers[6].concurrency, 1);
    assert_string_equal(cfg.providers[7].name, "replay");
    assert_string_equal(cfg.providers[7].file, "/x.mp4");
    assert_int_equal(cfg.providers[7].delay_ms, 9);
    assert_true(cfg.webhook_allow_private);
    assert_int_equal(cfg.webhook_retry_base_ms, 100);
    assert_int_equal(cfg.webhook_timeout_s, 2);
}

static void test_upstream_providers_merge_into_the_defaults(void **state)
{
    (void)state;
    int rc = load_text("{\"providers\": {\"novita\": {\"base_url\":"
                       " \"http://127.0.0.1:9/\", \"poll_interval_ms\": 50},"
                       " \"gw\": {\"type\": \"openai\", \"base_url\":"
                       " \"http://10.0.0.5:8000\", \"api_key_env\": \"GW_KEY\","
                       " \"allow_private_addresses\": true,"
                       " \"delete_after_store\": true}}}");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_int_equal(cfg.n_providers, 7);
    assert_false(cfg.providers[0].delete_after_store);
    /* Only the keys given change; the trailing slash goes. */
    assert_string_equal(cfg.providers[0].name, "novita");
    assert_string_equal(cfg.providers[0].base_url, "http://127.0.0.1:9");
    assert_string_equal(cfg.providers[0].api_key_env, "NOVITA_API_KEY");
    assert_int_equal(cfg.providers[0].poll_interval_ms, 50);
    assert_int_equal(cfg.providers[0].job_timeout_s, 3600);
    assert_string_equal(cfg.providers[6].name, "gw");
    assert_string_equal(cfg.providers[6].type, "openai");
    assert_string_equal(cfg.providers[6].api_key_env, "GW_KEY");
    assert_true(cfg.providers[6].allow_private_addresses);
    assert_true(cfg.providers[6].delete_after_store);
}

static void test_provider_sections_are_checked(void **state)
{
    (void)state;
    expect_config_error("{\"providers\": {\"google-vertex\": "
                        "{\"storage_uri\": \"s3://b/p\"}}}",
                        "providers.*.storage_uri", "gs://");
    expect_config_error("{\"providers\": {\"google-vertex\": "
                        "{\"region\": \"us central\"}}}",
                        "providers.*.storage_uri", "region");
    expect_config_error("{\"providers\": {\"acme\": {}}}", "providers",
                        "unknown provider \"acme\"");
    expect_config_error("{\"providers\": {\"x\": {\"type\": \"sora\"}}}",
                        "providers", "unknown provider \"sora\"");
    expect_config_error("{\"providers\": {\"gw\": {\"type\": \"openai\","
                        " \"api_key_env\": \"K\"}}}",
                        "providers.*.base_url", "needs a \"base_url\"");
    expect_config_error("{\"providers\": {\"gw\": {\"type\": \"openai\","
                        " \"base_url\": \"ftp://x\", \"api_key_env\": \"K\"}}}",
                        "providers.*.base_url", "http(s) URL");
    expect_config_error("{\"providers\": {\"novita\": {\"colour\": 1}}}",
                        "colour", "unknown key \"colour\"");
    expect_config_error("{\"providers\": {\"novita\": "
                        "{\"breaker_failures\": 0}}}",
                        "providers.*.breaker_failures", "from 1 to 1000");
    expect_config_error("{\"providers\": {\"replay\": {}}}",
                        "providers.replay.file", "needs a \"file\"");
    expect_config_error("{\"providers\": {\"local\": {\"file\": \"x\"}}}",
                        "file", "unknown key \"file\"");
    expect_config_error("{\"webhooks\": {\"allow_private_addresses\": 1}}",
                        "webhooks.allow_private_addresses",
                        "must be true or false");
    expect_config_error("{\"jobs\": {\"max_attempts\": 0}}",
                        "jobs.max_attempts", "from 1 to 100");
}

static void test_store_and_blob_sections_choose_backends(void **state)
{
    (void)state;
    assert_string_equal(cfg.store.backend, "sqlite");
    assert_string_equal(cfg.store.path, "");
    assert_string_equal(cfg.blob.backend, "fs");
    assert_string_equal(cfg.blob.dir, "");
    int rc = load_text("{\"store\": {\"backend\": \"sqlite\","
                       " \"path\": \"/srv/vg/state.db\"},"
                       " \"blob\": {\"dir\": \"/srv/vg/videos\"}}");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.store.backend, "sqlite");
    assert_string_equal(cfg.store.path, "/srv/vg/state.db");
    assert_string_equal(cfg.blob.backend, "fs");
    assert_string_equal(cfg.blob.dir, "/srv/vg/videos");
    expect_config_error("{\"store\": {\"backend\": \"mysql\"}}",
                        "store.backend",
                        "\"mysql\" is not a store backend of this build "
                        "(sqlite, postgres)");
    expect_config_error("{\"blob\": {\"backend\": \"s4\"}}",
                        "blob.backend", "(fs)");
    expect_config_error("{\"store\": {\"backend\": 1}}", "backend",
                        "must be a string");
    expect_config_error("{\"store\": {\"dir\": \"x\"}}", "dir",
                        "unknown key \"dir\"");
    expect_config_error("{\"blob\": {\"path\": \"x\"}}", "path",
                        "unknown key \"path\"");
    expect_config_error("{\"blob\": \"fs\"}", "blob", "must be an object");
}

static void test_postgres_store_section_and_database_url(void **state)
{
    (void)state;
    int rc = load_text("{\"store\": {\"backend\": \"postgres\","
                       " \"url\": \"postgresql://vg@db/vg\","
                       " \"pool_size\": 16}}");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.store.backend, "postgres");
    assert_string_equal(cfg.store.url, "postgresql://vg@db/vg");
    assert_int_equal(cfg.store.pool_size, 16);
    expect_config_error("{\"store\": {\"backend\": \"postgres\","
                        " \"pool_size\": 0}}",
                        "store.pool_size", "from 1 to 1000");
    expect_config_error("{\"store\": {\"url\": 5}}", "url",
                        "must be a string");

    /* The variable chooses PostgreSQL over what the file said. */
    vg_config_free(&cfg);
    vg_config_defaults(&cfg);
    setenv("VIDGATE_DATABASE_URL", "postgresql://vg@other/vg", 1);
    assert_int_equal(vg_config_apply_env(&cfg, &err), 0);
    unsetenv("VIDGATE_DATABASE_URL");
    assert_string_equal(cfg.store.backend, "postgres");
    assert_string_equal(cfg.store.url, "postgresql://vg@other/vg");
    /* Empty counts as unset. */
    vg_config_free(&cfg);
    vg_config_defaults(&cfg);
    setenv("VIDGATE_DATABASE_URL", "", 1);
    assert_int_equal(vg_config_apply_env(&cfg, &err), 0);
    unsetenv("VIDGATE_DATABASE_URL");
    assert_string_equal(cfg.store.backend, "sqlite");
}

static void test_unknown_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"listen\": \"127.0.0.1:1\", \"lisen\": \"x\"}",
                        "lisen", "unknown key \"lisen\"");
}

static void test_unknown_limits_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"limits\": {\"max_body\": 5}}", "max_body",
                        "unknown key \"max_body\" in \"limits\"");
}

static void test_duplicate_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"http_threads\": 1, \"http_threads\": 2}", "",
                        "duplicate");
}

static void test_malformed_json_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"http_threads\": 1,", "", "vidgate.json:");
}

static void test_top_level_must_be_an_object(void **state)
{
    (void)state;
    expect_config_error("[1, 2]", "", "JSON object");
}

static void test_missing_file_is_an_error(void **state)
{
    (void)state;
    assert_int_equal(
        vg_config_load_file(&cfg, "/nonexistent/vidgate.json", &err), -1);
    assert_string_equal(err.code, "config_error");
    assert_non_null(strstr(err.message, "/nonexistent/vidgate.json"));
}

static void test_number_of_wrong_type_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"http_threads\": \"4\"}", "http_threads",
                        "whole number");
    expect_config_error("{\"token_lifetime_s\": 60.0}", "token_lifetime_s",
                        "whole number");
    expect_config_error("{\"limits\": {\"max_body_bytes\": true}}",
                        "limits.max_body_bytes", "whole number");
}

static void test_number_must_be_positive(void **state)
{
    (void)state;
    expect_config_error("{\"token_lifetime_s\": 0}", "token_lifetime_s",
                        "from 1");
    expect_config_error("{\"limits\": {\"max_connections\": -5}}",
                        "limits.max_connections", "from 1");
}

static void test_zero_means_default_for_threads_and_workers(void **state)
{
    (void)state;
    assert_int_equal(load_text("{\"http_threads\": 0, \"render_workers\": "
                               "0}"),
                     0);
    assert_int_equal(cfg.http_threads, 0);
    assert_int_equal(cfg.render_workers, 0);
}

static void test_int_setting_out_of_int_range_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"url_lifetime_s\": 4294967296}", "url_lifetime_s",
                        "whole number");
}

static void test_max_upload_files_is_capped(void **state)
{
    (void)state;
    expect_config_error("{\"limits\": {\"max_upload_files\": 9}}",
                        "limits.max_upload_files", "from 1 to 8");
}

static void test_starting_credits_are_credits(void **state)
{
    (void)state;
    assert_int_equal(load_text("{\"starting_credits\": 0.125}"), 0);
    assert_int_equal(cfg.starting_credits, 125);
    assert_int_equal(load_text("{\"starting_credits\": 0}"), 0);
    assert_int_equal(cfg.starting_credits, 0);
    expect_config_error("{\"starting_credits\": 0.0001}", "starting_credits",
                        "at most 3 decimals");
    expect_config_error("{\"starting_credits\": -1}", "starting_credits",
                        "non-negative");
    expect_config_error("{\"starting_credits\": \"5\"}", "starting_credits",
                        "non-negative");
}

static void test_string_setting_of_wrong_type_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"data\": 5}", "data", "must be a string");
    expect_config_error("{\"data\": \"\"}", "data", "directory");
}

static void test_public_url_must_be_http(void **state)
{
    (void)state;
    expect_config_error("{\"public_url\": \"ftp://x\"}", "public_url", "http");
    assert_int_equal(load_text("{\"public_url\": \"http://h:1/base//\"}"), 0);
    assert_string_equal(cfg.public_url, "http://h:1/base");
}

static void test_bad_listen_in_file_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"listen\": \"8080\"}", "listen", "HOST:PORT");
}

static void test_model_error_in_file_is_an_error(void **state)
{
    (void)state;
    expect_config_error("{\"models\": [{\"name\": \"a\", \"alias_of\": "
                        "\"b\"}]}",
                        "models", "at least one real model");
}

static void test_failed_file_keeps_earlier_settings(void **state)
{
    (void)state;
    /* Valid keys before the bad one must not be half-applied. */
    vg_config before = cfg;
    assert_int_equal(load_text("{\"http_threads\": 7, \"listen\": \"x\"}"),
                     -1);
    assert_memory_equal(&before, &cfg, sizeof(cfg));
}

/* ---- environment ----------------------------------------------------- */

static void test_env_overrides(void **state)
{
    (void)state;
    setenv("VIDGATE_LISTEN", "[::]:7000", 1);
    setenv("VIDGATE_DATA", "/srv/vidgate", 1);
    setenv("VIDGATE_PUBLIC_URL", "https://v.example.com", 1);
    assert_int_equal(vg_config_apply_env(&cfg, &err), 0);
    assert_string_equal(cfg.listen_host, "::");
    assert_int_equal(cfg.listen_port, 7000);
    assert_string_equal(cfg.data_dir, "/srv/vidgate");
    assert_string_equal(cfg.public_url, "https://v.example.com");
}

static void test_env_unset_or_empty_changes_nothing(void **state)
{
    (void)state;
    vg_config before = cfg;
    assert_int_equal(vg_config_apply_env(&cfg, &err), 0);
    setenv("VIDGATE_LISTEN", "", 1);
    setenv("VIDGATE_DATA", "", 1);
    assert_int_equal(vg_config_apply_env(&cfg, &err), 0);
    assert_memory_equal(&before, &cfg, sizeof(cfg));
}

static void test_bad_env_listen_is_an_error(void **state)
{
    (void)state;
    vg_config before = cfg;
    setenv("VIDGATE_DATA", "/srv/vidgate", 1);
    setenv("VIDGATE_LISTEN", "localhost", 1);
    assert_int_equal(vg_config_apply_env(&cfg, &err), -1);
    assert_string_equal(err.code, "config_error");
    assert_non_null(strstr(err.message, "VIDGATE_LISTEN"));
    assert_memory_equal(&before, &cfg, sizeof(cfg));
}

/* ---- listen addresses ------------------------------------------------ */

static void expect_listen(const char *text, const char *host, int port)
{
    if (vg_config_set_listen(&cfg, text, &err) != 0)
        fail_msg("%s refused: %s", text, err.message);
    assert_string_equal(cfg.listen_host, host);
    assert_int_equal(cfg.listen_port, port);
}

static void test_listen_host_and_port(void **state)
{
    (void)state;
    expect_listen("127.0.0.1:8080", "127.0.0.1", 8080);
    expect_listen("localhost:65535", "localhost", 65535);
    expect_listen("0.0.0.0:0", "0.0.0.0", 0);
}

static void test_listen_bracketed_ipv6(void **state)
{
    (void)state;
    expect_listen("[::1]:8080", "::1", 8080);
    expect_listen("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
}

static void test_bad_listen_addresses_are_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",        "8080",     ":8080",    "host:",    "host:65536",
        "host:-1", "host:80x", "host: 80", "::1:8080", "[::1]8080",
        "[::1]",   "[]:80",    "[::1:80",
    };
    expect_listen("127.0.0.1:1234", "127.0.0.1", 1234);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (vg_config_set_listen(&cfg, bad[i], &err) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_string_equal(err.code, "config_error");
        assert_string_equal(err.field, "listen");
        assert_string_equal(cfg.listen_host, "127.0.0.1");
        assert_int_equal(cfg.listen_port, 1234);
    }
    assert_int_equal(vg_config_set_listen(&cfg, NULL, &err), -1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_finish_installs_the_default_catalog),
        T(test_file_sets_every_key),
        T(test_file_keys_are_optional),
        T(test_file_models_build_the_catalog),
        T(test_example_config_matches_the_defaults),
        T(test_jobs_providers_and_webhooks_are_read),
        T(test_upstream_providers_merge_into_the_defaults),
        T(test_provider_sections_are_checked),
        T(test_store_and_blob_sections_choose_backends),
        T(test_postgres_store_section_and_database_url),
        T(test_unknown_key_is_an_error),
        T(test_unknown_limits_key_is_an_error),
        T(test_duplicate_key_is_an_error),
        T(test_malformed_json_is_an_error),
        T(test_top_level_must_be_an_object),
        T(test_missing_file_is_an_error),
        T(test_number_of_wrong_type_is_an_error),
        T(test_number_must_be_positive),
        T(test_zero_means_default_for_threads_and_workers),
        T(test_int_setting_out_of_int_range_is_an_error),
        T(test_max_upload_files_is_capped),
        T(test_starting_credits_are_credits),
        T(test_string_setting_of_wrong_type_is_an_error),
        T(test_public_url_must_be_http),
        T(test_bad_listen_in_file_is_an_error),
        T(test_model_error_in_file_is_an_error),
        T(test_failed_file_keeps_earlier_settings),
        T(test_env_overrides),
        T(test_env_unset_or_empty_changes_nothing),
        T(test_bad_env_listen_is_an_error),
        T(test_listen_host_and_port),
        T(test_listen_bracketed_ipv6),
        T(test_bad_listen_addresses_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
