/*
 * test_request.c - the contract's field table for POST /v1/ula/generate-
 * video, one test per rule: what is a 422 (schema), what is a 400 (model),
 * how form strings convert, and how reference images are accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/catalog.h"
#include "core/request.h"

/* A 1x1 PNG, as base64 and as a data: URL. */
#define PNG_B64                                                               \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"    \
    "hwGA60e6kgAAAABJRU5ErkJggg=="
#define PNG_URL "data:image/png;base64," PNG_B64
#define PNG_SIZE 70

static const char restricted_json[] =
    "[{\"name\": \"tiny\", \"provider\": \"local\","
    "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\", \"720P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"], \"durations\": [4, 5],"
    "  \"fps\": [24], \"audio\": false,"
    "  \"price\": {\"per_second\": {\"480P\": 1, \"720P\": 2}}},"
    " {\"name\": \"stills\", \"provider\": \"local\","
    "  \"modalities\": [\"i2v\"], \"resolutions\": [\"480P\"],"
    "  \"aspect_ratios\": [\"16:9\"], \"durations\": {\"min\": 4, \"max\": "
    "12},"
    "  \"price\": {\"per_second\": {\"480P\": 1}}},"
    " {\"name\": \"tiny-alias\", \"alias_of\": \"tiny\"}]";

typedef struct fixture {
    vg_catalog *catalog;    /* the default catalog */
    vg_catalog *restricted; /* tiny (t2v only) and stills (i2v only) */
    vg_limits limits;
    char tmp_dir[512];
    vg_arena arena;
    vg_video_request req;
    vg_error err;
} fixture;

static fixture fx;

static void make_dirs(const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
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
    memset(&fx, 0, sizeof(fx));
    fx.catalog = vg_catalog_default();
    json_error_t jerr;
    json_t *models = json_loads(restricted_json, 0, &jerr);
    assert_non_null(models);
    fx.restricted = vg_catalog_from_json(models, &fx.err);
    json_decref(models);
    assert_non_null(fx.restricted);
    fx.limits.prompt_max_chars = 20;
    fx.limits.max_image_bytes = 1024;
    fx.limits.max_images = 2;
    const char *base = getenv("VG_TEST_TMP");
    char parent[400];
    snprintf(parent, sizeof(parent), "%s", base ? base : "/tmp");
    make_dirs(parent);
    snprintf(fx.tmp_dir, sizeof(fx.tmp_dir), "%s/test_request.XXXXXX", parent);
    assert_non_null(mkdtemp(fx.tmp_dir));
    vg_arena_init(&fx.arena);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vg_request_cleanup(&fx.req);
    /* Every test must leave the directory empty: nothing leaks. */
    assert_int_equal(rmdir(fx.tmp_dir), 0);
    vg_arena_free(&fx.arena);
    vg_catalog_free(fx.catalog);
    vg_catalog_free(fx.restricted);
    return 0;
}

/* A body that passes every rule; tests change one thing. */
static json_t *valid_body(void)
{
    json_t *body = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s}", "prompt",
        "a cat drinking milk", "model", "vidgate-local", "resolution", "720P",
        "aspect_ratio", "16:9", "duration", 5, "generate_audio", 1,
        "camera_fixed", 0, "service_tier", "default");
    assert_non_null(body);
    return body;
}

static int validate_with(json_t *body, const vg_catalog *catalog)
{
    return vg_request_validate(body, catalog, &fx.limits, fx.tmp_dir,
                               &fx.arena, &fx.req, &fx.err);
}

static int validate(json_t *body)
{
    return validate_with(body, fx.catalog);
}

static void expect_error(json_t *body, const vg_catalog *catalog, int status,
                         const char *code, const char *field)
{
    assert_int_equal(validate_with(body, catalog), -1);
    assert_int_equal(fx.err.status, status);
    assert_string_equal(fx.err.code, code);
    assert_string_equal(fx.err.field, field);
    assert_true(strlen(fx.err.message) > 0);
    json_decref(body);
}

static void expect_422(json_t *body, const char *field)
{
    expect_error(body, fx.catalog, 422, "validation_error", field);
}

static void expect_ok(json_t *body)
{
    int rc = validate(body);
    if (rc != 0)
        fail_msg("validation failed: %d %s %s: %s", fx.err.status, fx.err.code,
                 fx.err.field, fx.err.message);
    json_decref(body);
}

static json_t *with(json_t *body, const char *field, json_t *value)
{
    json_object_set_new(body, field, value);
    return body;
}

static json_t *without(json_t *body, const char *field)
{
    json_object_del(body, field);
    return body;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* ---- the valid request ----------------------------------------------- */

static void test_valid_request_is_accepted(void **state)
{
    (void)state;
    expect_ok(valid_body());
    assert_string_equal(fx.req.prompt, "a cat drinking milk");
    assert_string_equal(fx.req.model_name, "vidgate-local");
    assert_ptr_equal(fx.req.model,
                     vg_catalog_find(fx.catalog, "vidgate-local"));
    assert_int_equal(fx.req.resolution, VG_RES_720P);
    assert_int_equal(fx.req.aspect, VG_AR_16_9);
    assert_int_equal(fx.req.duration, 5);
    assert_true(fx.req.generate_audio);
    assert_false(fx.req.camera_fixed);
    assert_int_equal(fx.req.tier, VG_TIER_DEFAULT);
    assert_int_equal(fx.req.n_images, 0);
}

static void test_body_not_an_object_is_422(void **state)
{
    (void)state;
    expect_422(json_array(), "");
    expect_422(json_string("prompt"), "");
}

/* ---- each required field missing ------------------------------------- */

#define MISSING_TEST(field)                                                   \
    static void test_missing_##field##_is_422(void **state)                   \
    {                                                                         \
        (void)state;                                                          \
        expect_422(without(valid_body(), #field), #field);                    \
        assert_non_null(strstr(fx.err.message, "required"));                  \
    }
MISSING_TEST(prompt)
MISSING_TEST(model)
MISSING_TEST(resolution)
MISSING_TEST(aspect_ratio)
MISSING_TEST(duration)
MISSING_TEST(generate_audio)
MISSING_TEST(camera_fixed)
MISSING_TEST(service_tier)

static void test_null_required_field_counts_as_missing(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "duration", json_null()), "duration");
    expect_422(with(valid_body(), "camera_fixed", json_null()),
               "camera_fixed");
}

static void test_null_optional_field_counts_as_absent(void **state)
{
    (void)state;
    json_t *body = with(valid_body(), "fps", json_null());
    expect_ok(with(body, "seed", json_null()));
    assert_int_equal(fx.req.fps, 24);
    assert_int_equal(fx.req.seed, -1);
}

static void test_first_failure_in_table_order_is_reported(void **state)
{
    (void)state;
    json_t *body = without(valid_body(), "duration");
    expect_422(without(body, "prompt"), "prompt");
    body = with(valid_body(), "duration", json_integer(13));
    expect_422(with(body, "resolution", json_string("4K")), "resolution");
    body = with(valid_body(), "seed", json_integer(-5));
    expect_422(with(body, "fps", json_integer(0)), "fps");
}

static void test_unknown_extra_fields_are_ignored(void **state)
{
    (void)state;
    json_t *body = with(valid_body(), "negative_prompt", json_string("x"));
    expect_ok(with(body, "webhook", json_integer(3)));
}

/* ---- wrong JSON types ------------------------------------------------ */

static void test_prompt_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "prompt", json_integer(5)), "prompt");
    expect_422(with(valid_body(), "prompt", json_array()), "prompt");
}

static void test_model_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "model", json_true()), "model");
}

static void test_resolution_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "resolution", json_integer(720)),
               "resolution");
}

static void test_aspect_ratio_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "aspect_ratio", json_real(1.77)),
               "aspect_ratio");
}

static void test_duration_as_real_is_wrong_type(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "duration", json_real(5.0)), "duration");
    assert_non_null(strstr(fx.err.message, "must be an integer"));
    assert_non_null(strstr(fx.err.message, "5.0"));
}

static void test_duration_as_string_is_wrong_type(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "duration", json_string("5")), "duration");
    assert_non_null(strstr(fx.err.message, "\"5\""));
}

static void test_boolean_fields_accept_only_json_booleans(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "generate_audio", json_string("true")),
               "generate_audio");
    expect_422(with(valid_body(), "generate_audio", json_integer(1)),
               "generate_audio");
    expect_422(with(valid_body(), "camera_fixed", json_integer(0)),
               "camera_fixed");
}

static void test_service_tier_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "service_tier", json_false()),
               "service_tier");
}

static void test_fps_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "fps", json_string("24")), "fps");
    expect_422(with(valid_body(), "fps", json_real(24.0)), "fps");
}

static void test_seed_of_wrong_type_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "seed", json_real(1.5)), "seed");
    expect_422(with(valid_body(), "seed", json_string("7")), "seed");
}

/* ---- ranges ---------------------------------------------------------- */

static void test_duration_below_4_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "duration", json_integer(3)), "duration");
    assert_string_equal(fx.err.message, "\"duration\" must be an integer "
                                        "between 4 and 12, got 3");
}

static void test_duration_above_12_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "duration", json_integer(13)), "duration");
    assert_string_equal(fx.err.message, "\"duration\" must be an integer "
                                        "between 4 and 12, got 13");
}

static void test_duration_bounds_are_accepted(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "duration", json_integer(4)));
    expect_ok(with(valid_body(), "duration", json_integer(12)));
    assert_int_equal(fx.req.duration, 12);
}

static void test_fps_0_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "fps", json_integer(0)), "fps");
}

static void test_fps_61_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "fps", json_integer(61)), "fps");
}

static void test_seed_minus_2_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "seed", json_integer(-2)), "seed");
}

static void test_seed_2_pow_32_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "seed", json_integer(4294967296LL)), "seed");
}

static void test_seed_range_bounds_are_accepted(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "seed", json_integer(4294967295LL)));
    assert_int_equal(fx.req.seed, 4294967295LL);
    expect_ok(with(valid_body(), "seed", json_integer(0)));
    assert_int_equal(fx.req.seed, 0);
}

static void test_seed_minus_1_stays_minus_1(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "seed", json_integer(-1)));
    assert_int_equal(fx.req.seed, -1);
}

static void test_seed_absent_is_minus_1(void **state)
{
    (void)state;
    expect_ok(valid_body());
    assert_int_equal(fx.req.seed, -1);
}

static void test_fps_defaults_to_24(void **state)
{
    (void)state;
    expect_ok(valid_body());
    assert_int_equal(fx.req.fps, 24);
    expect_ok(with(valid_body(), "fps", json_integer(30)));
    assert_int_equal(fx.req.fps, 30);
}

/* ---- enums ----------------------------------------------------------- */

static void test_unknown_resolution_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "resolution", json_string("4K")),
               "resolution");
    assert_non_null(strstr(fx.err.message,
                           "\"resolution\" must be one of 480P, 720P, "
                           "1080P"));
}

static void test_unknown_aspect_ratio_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "aspect_ratio", json_string("2:1")),
               "aspect_ratio");
    assert_non_null(strstr(fx.err.message, "16:9"));
}

static void test_unknown_service_tier_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "service_tier", json_string("fast")),
               "service_tier");
    assert_non_null(strstr(fx.err.message, "default, flex"));
}

static void test_flex_service_tier_is_accepted(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "service_tier", json_string("flex")));
    assert_int_equal(fx.req.tier, VG_TIER_FLEX);
}

static void test_lower_case_resolution_is_accepted(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "resolution", json_string("1080p")));
    assert_int_equal(fx.req.resolution, VG_RES_1080P);
}

static void test_aspect_ratio_words_are_accepted(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "aspect_ratio", json_string("landscape")));
    assert_int_equal(fx.req.aspect, VG_AR_16_9);
    expect_ok(with(valid_body(), "aspect_ratio", json_string("Portrait")));
    assert_int_equal(fx.req.aspect, VG_AR_9_16);
    expect_ok(with(valid_body(), "aspect_ratio", json_string("SQUARE")));
    assert_int_equal(fx.req.aspect, VG_AR_1_1);
    expect_ok(with(valid_body(), "aspect_ratio", json_string("21:9")));
    assert_int_equal(fx.req.aspect, VG_AR_21_9);
}

/* ---- prompt ---------------------------------------------------------- */

static void test_empty_prompt_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "prompt", json_string("")), "prompt");
}

static void test_whitespace_only_prompt_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "prompt", json_string(" \t\n ")), "prompt");
}

static void test_too_long_prompt_is_422(void **state)
{
    (void)state;
    expect_422(
        with(valid_body(), "prompt", json_string("123456789012345678901")),
        "prompt");
    assert_non_null(strstr(fx.err.message, "at most 20 characters"));
}

static void test_prompt_length_counts_code_points(void **state)
{
    (void)state;
    /* 20 two-byte characters: 40 bytes, but within 20 characters. */
    char text[64] = "";
    for (int i = 0; i < 20; i++)
        strcat(text, "\xc3\xa9");
    expect_ok(with(valid_body(), "prompt", json_string(text)));
    strcat(text, "\xc3\xa9");
    expect_422(with(valid_body(), "prompt", json_string(text)), "prompt");
}

static void test_prompt_is_trimmed(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "prompt", json_string("  a dog \n")));
    assert_string_equal(fx.req.prompt, "a dog");
}

static void test_prompt_must_be_valid_utf8(void **state)
{
    (void)state;
    json_t *body = valid_body();
    assert_int_equal(
        vg_request_form_field(body, "prompt", "bad \xff byte", &fx.err), 0);
    expect_422(body, "prompt");
    assert_non_null(strstr(fx.err.message, "UTF-8"));
}

static void test_prompt_with_nul_is_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "prompt", json_stringn("a\0b", 3)),
               "prompt");
}

/* ---- form fields ----------------------------------------------------- */

static void test_form_field_types_follow_the_table(void **state)
{
    (void)state;
    const char *strings[] = {"prompt", "model", "resolution", "aspect_ratio",
                             "service_tier"};
    const char *integers[] = {"duration", "fps", "seed"};
    const char *booleans[] = {"generate_audio", "camera_fixed"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(vg_request_field_type(strings[i]), VG_FIELD_STRING);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(vg_request_field_type(integers[i]), VG_FIELD_INTEGER);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(vg_request_field_type(booleans[i]), VG_FIELD_BOOLEAN);
    assert_int_equal(vg_request_field_type("files"), VG_FIELD_UNKNOWN);
    assert_int_equal(vg_request_field_type("Duration"), VG_FIELD_UNKNOWN);
}

static void test_form_integer_5_is_accepted(void **state)
{
    (void)state;
    json_t *body = json_object();
    assert_int_equal(vg_request_form_field(body, "duration", "5", &fx.err), 0);
    assert_true(json_is_integer(json_object_get(body, "duration")));
    assert_int_equal(json_integer_value(json_object_get(body, "duration")), 5);
    assert_int_equal(vg_request_form_field(body, "seed", "-1", &fx.err), 0);
    assert_int_equal(json_integer_value(json_object_get(body, "seed")), -1);
    json_decref(body);
}

static void expect_form_422(const char *field, const char *value)
{
    json_t *body = json_object();
    assert_int_equal(vg_request_form_field(body, field, value, &fx.err), -1);
    assert_int_equal(fx.err.status, 422);
    assert_string_equal(fx.err.code, "validation_error");
    assert_string_equal(fx.err.field, field);
    assert_null(json_object_get(body, field));
    json_decref(body);
}

static void test_form_integer_with_junk_is_422(void **state)
{
    (void)state;
    expect_form_422("duration", "5x");
    assert_string_equal(fx.err.message,
                        "\"duration\" must be an integer, got \"5x\"");
}

static void test_form_integer_empty_is_422(void **state)
{
    (void)state;
    expect_form_422("duration", "");
}

static void test_form_integer_with_space_is_422(void **state)
{
    (void)state;
    expect_form_422("fps", " 5");
}

static void test_form_integer_with_fraction_is_422(void **state)
{
    (void)state;
    expect_form_422("seed", "5.0");
}

static void test_form_booleans_are_accepted(void **state)
{
    (void)state;
    json_t *body = json_object();
    assert_int_equal(
        vg_request_form_field(body, "generate_audio", "true", &fx.err), 0);
    assert_true(json_is_true(json_object_get(body, "generate_audio")));
    assert_int_equal(
        vg_request_form_field(body, "camera_fixed", "false", &fx.err), 0);
    assert_true(json_is_false(json_object_get(body, "camera_fixed")));
    assert_int_equal(
        vg_request_form_field(body, "camera_fixed", "TRUE", &fx.err), 0);
    assert_true(json_is_true(json_object_get(body, "camera_fixed")));
    json_decref(body);
}

static void test_form_boolean_yes_is_422(void **state)
{
    (void)state;
    expect_form_422("generate_audio", "yes");
    assert_string_equal(fx.err.message,
                        "\"generate_audio\" must be true or false, got "
                        "\"yes\"");
}

static void test_form_strings_are_stored_as_strings(void **state)
{
    (void)state;
    json_t *body = json_object();
    assert_int_equal(
        vg_request_form_field(body, "resolution", "720p", &fx.err), 0);
    assert_string_equal(json_string_value(json_object_get(body, "resolution")),
                        "720p");
    json_decref(body);
}

static void test_form_unknown_field_is_ignored(void **state)
{
    (void)state;
    json_t *body = json_object();
    assert_int_equal(vg_request_form_field(body, "foo", "5x", &fx.err), 0);
    assert_int_equal(json_object_size(body), 0);
    json_decref(body);
}

static void test_form_body_validates_like_json(void **state)
{
    (void)state;
    static const char *form[][2] = {
        {"prompt", "a cat"},
        {"model", "local"},
        {"resolution", "480p"},
        {"aspect_ratio", "9:16"},
        {"duration", "6"},
        {"generate_audio", "false"},
        {"camera_fixed", "true"},
        {"service_tier", "flex"},
        {"fps", "30"},
        {"seed", "42"},
    };
    json_t *body = json_object();
    for (size_t i = 0; i < sizeof(form) / sizeof(form[0]); i++)
        assert_int_equal(
            vg_request_form_field(body, form[i][0], form[i][1], &fx.err), 0);
    expect_ok(body);
    assert_int_equal(fx.req.duration, 6);
    assert_false(fx.req.generate_audio);
    assert_true(fx.req.camera_fixed);
    assert_int_equal(fx.req.fps, 30);
    assert_int_equal(fx.req.seed, 42);
    assert_int_equal(fx.req.aspect, VG_AR_9_16);
}

/* ---- model rules (400) ----------------------------------------------- */

static bool only_local(void *ctx, const vg_model *model)
{
    (void)ctx;
    return strcmp(model->name, "vidgate-local") == 0;
}

static void test_unknown_model_is_400_listing_models(void **state)
{
    (void)state;
    expect_error(with(valid_body(), "model", json_string("sora-9")),
                 fx.catalog, 400, "unsupported_model", "model");
    assert_non_null(strstr(fx.err.message, "unknown model \"sora-9\""));
    assert_non_null(strstr(fx.err.message, "vidgate-local"));
    assert_non_null(strstr(fx.err.message, "local"));
}

/* The models a client could use now are listed apart from those that
 * exist but have no configured provider. */
static void test_unknown_model_separates_available_ones(void **state)
{
    (void)state;
    vg_catalog_set_availability(fx.catalog, only_local, NULL);
    expect_error(with(valid_body(), "model", json_string("sora-9")),
                 fx.catalog, 400, "unsupported_model", "model");
    vg_catalog_set_availability(fx.catalog, NULL, NULL);
    const char *m = fx.err.message;
    const char *now = strstr(m, "available now: vidgate-local, local;");
    const char *idle = strstr(m, "without a configured provider: ");
    if (now == NULL || idle == NULL || idle < now)
        fail_msg("message: %s", m);
    assert_non_null(strstr(idle, "seedance-v1.5-pro"));
    assert_null(strstr(idle, "vidgate-local"));
    assert_true(strlen(m) < sizeof(fx.err.message) - 1);
}

/* OneInfer's per-modality names hold the client to their modality. */
static void test_modality_alias_is_enforced(void **state)
{
    (void)state;
    expect_ok(with(with(with(valid_body(), "model",
                             json_string("seedance-v1.5-pro-t2v")),
                        "resolution", json_string("720P")),
                   "fps", json_integer(24)));
    assert_string_equal(fx.req.model_name, "seedance-v1.5-pro-t2v");
    assert_string_equal(fx.req.model->name, "seedance-v1.5-pro");

    json_t *t2v_with_image =
        with(with(with(with(valid_body(), "model",
                            json_string("seedance-v1.5-pro-t2v")),
                       "resolution", json_string("720P")),
                  "fps", json_integer(24)),
             "files", json_pack("[s]", PNG_URL));
    expect_error(t2v_with_image, fx.catalog, 400, "unsupported_parameter",
                 "files");
    assert_non_null(strstr(fx.err.message, "seedance-v1.5-pro-i2v"));
    vg_request_cleanup(&fx.req);

    json_t *i2v_without =
        with(with(with(valid_body(), "model",
                       json_string("seedance-v1.5-pro-i2v")),
                  "resolution", json_string("720P")),
             "fps", json_integer(24));
    expect_error(i2v_without, fx.catalog, 400, "unsupported_parameter",
                 "files");
    assert_non_null(strstr(fx.err.message, "image-to-video"));
}

/* OneInfer clients send "number" (videos per request): 1 is what
 * vidgate makes; anything else is refused rather than cut short. */
static void test_number_must_be_one(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "number", json_integer(1)));
    expect_422(with(valid_body(), "number", json_integer(2)), "number");
    assert_non_null(strstr(fx.err.message, "one video per request"));
    expect_422(with(valid_body(), "number", json_integer(0)), "number");
    expect_422(with(valid_body(), "number", json_string("1")), "number");
    json_t *body = valid_body();
    assert_int_equal(vg_request_form_field(body, "number", "1", &fx.err), 0);
    expect_ok(body);
}

/* "provider" names a preferred provider: one of the model's routes, or
 * 400 naming those it has. */
static void test_provider_must_serve_the_model(void **state)
{
    (void)state;
    json_t *seedance = with(with(with(valid_body(), "model",
                                      json_string("seedance-v1.5-pro-t2v")),
                                 "resolution", json_string("720P")),
                            "fps", json_integer(24));
    expect_ok(with(json_deep_copy(seedance), "provider",
                   json_string("novita")));
    assert_string_equal(fx.req.provider, "novita");
    expect_error(with(json_deep_copy(seedance), "provider",
                      json_string("google")),
                 fx.catalog, 400, "unsupported_provider", "provider");
    assert_non_null(strstr(fx.err.message, "byteplus, novita, fal"));
    expect_422(with(json_deep_copy(seedance), "provider", json_string("")),
               "provider");
    expect_422(with(seedance, "provider", json_integer(3)), "provider");
    /* Without one, none is preferred. */
    expect_ok(valid_body());
    assert_null(fx.req.provider);
}

static void test_schema_errors_come_before_model_errors(void **state)
{
    (void)state;
    json_t *body = with(valid_body(), "model", json_string("sora-9"));
    expect_422(with(body, "duration", json_integer(13)), "duration");
}

static void test_alias_keeps_name_and_resolves_model(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "model", json_string("local")));
    assert_string_equal(fx.req.model_name, "local");
    assert_string_equal(fx.req.model->name, "vidgate-local");
}

static json_t *tiny_body(void)
{
    json_t *body = with(valid_body(), "model", json_string("tiny"));
    return with(body, "generate_audio", json_false());
}

static void test_restricted_model_accepts_what_it_lists(void **state)
{
    (void)state;
    json_t *body = tiny_body();
    assert_int_equal(validate_with(body, fx.restricted), 0);
    json_decref(body);
    assert_string_equal(fx.req.model->name, "tiny");
}

static void test_unsupported_resolution_is_400(void **state)
{
    (void)state;
    expect_error(with(tiny_body(), "resolution", json_string("1080P")),
                 fx.restricted, 400, "unsupported_parameter", "resolution");
    assert_string_equal(fx.err.message,
                        "model \"tiny\" supports resolution 480P, 720P");
}

static void test_unsupported_aspect_ratio_is_400(void **state)
{
    (void)state;
    expect_error(with(tiny_body(), "aspect_ratio", json_string("1:1")),
                 fx.restricted, 400, "unsupported_parameter", "aspect_ratio");
    assert_string_equal(fx.err.message,
                        "model \"tiny\" supports aspect_ratio 16:9, 9:16");
}

static void test_unsupported_duration_is_400(void **state)
{
    (void)state;
    expect_error(with(tiny_body(), "duration", json_integer(8)), fx.restricted,
                 400, "unsupported_parameter", "duration");
    assert_non_null(strstr(fx.err.message, "4, 5"));
}

static void test_unsupported_fps_is_400(void **state)
{
    (void)state;
    expect_error(with(tiny_body(), "fps", json_integer(30)), fx.restricted,
                 400, "unsupported_parameter", "fps");
    assert_non_null(strstr(fx.err.message, "24"));
}

static void test_audio_on_model_without_audio_is_400(void **state)
{
    (void)state;
    expect_error(with(tiny_body(), "generate_audio", json_true()),
                 fx.restricted, 400, "unsupported_parameter",
                 "generate_audio");
}

static void test_unsupported_parameter_via_alias_names_model(void **state)
{
    (void)state;
    json_t *body = with(tiny_body(), "model", json_string("tiny-alias"));
    expect_error(with(body, "resolution", json_string("1080P")), fx.restricted,
                 400, "unsupported_parameter", "resolution");
}

static void test_images_on_t2v_only_model_are_400(void **state)
{
    (void)state;
    json_t *body = with(tiny_body(), "files", json_string(PNG_URL));
    expect_error(body, fx.restricted, 400, "unsupported_parameter", "files");
}

static void test_no_image_on_i2v_only_model_is_400(void **state)
{
    (void)state;
    json_t *body = with(tiny_body(), "model", json_string("stills"));
    body = with(body, "resolution", json_string("480P"));
    expect_error(body, fx.restricted, 400, "unsupported_parameter", "files");
}

static void test_image_on_i2v_only_model_is_accepted(void **state)
{
    (void)state;
    json_t *body = with(tiny_body(), "model", json_string("stills"));
    body = with(body, "resolution", json_string("480P"));
    body = with(body, "files", json_string(PNG_URL));
    assert_int_equal(validate_with(body, fx.restricted), 0);
    json_decref(body);
    assert_int_equal(fx.req.n_images, 1);
}

/* ---- reference images ------------------------------------------------ */

static void test_data_url_png_is_accepted(void **state)
{
    (void)state;
    json_t *files = json_pack("[s]", PNG_URL);
    expect_ok(with(valid_body(), "files", files));
    assert_int_equal(fx.req.n_images, 1);
    assert_int_equal(fx.req.images[0].type, VG_IMAGE_PNG);
    assert_int_equal(fx.req.images[0].size, PNG_SIZE);
    assert_true(
        strncmp(fx.req.images[0].path, fx.tmp_dir, strlen(fx.tmp_dir)) == 0);
    assert_true(file_exists(fx.req.images[0].path));
}

static void test_data_url_mime_is_judged_by_content(void **state)
{
    (void)state;
    json_t *files = json_pack("[s]", "data:image/jpeg;base64," PNG_B64);
    expect_ok(with(valid_body(), "files", files));
    assert_int_equal(fx.req.images[0].type, VG_IMAGE_PNG);
}

static void test_data_url_with_wrapped_base64_is_accepted(void **state)
{
    (void)state;
    json_t *files = json_pack(
        "[s]",
        "data:image/png;base64,"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
        "\r\nDwAChwGA60e6kgAAAABJRU5ErkJggg==");
    expect_ok(with(valid_body(), "files", files));
    assert_int_equal(fx.req.images[0].size, PNG_SIZE);
}

static void test_data_url_non_image_is_415(void **state)
{
    (void)state;
    /* "hello world", declared as a PNG. */
    json_t *files = json_pack("[s]", "data:image/png;base64,aGVsbG8gd29ybGQ=");
    expect_error(with(valid_body(), "files", files), fx.catalog, 415,
                 "unsupported_file_type", "files");
}

static void test_data_url_too_large_is_413(void **state)
{
    (void)state;
    fx.limits.max_image_bytes = PNG_SIZE - 1;
    json_t *files = json_pack("[s]", PNG_URL);
    expect_error(with(valid_body(), "files", files), fx.catalog, 413,
                 "file_too_large", "files");
}

static void test_too_many_data_urls_are_413(void **state)
{
    (void)state;
    json_t *files = json_pack("[sss]", PNG_URL, PNG_URL, PNG_URL);
    expect_error(with(valid_body(), "files", files), fx.catalog, 413,
                 "too_many_files", "files");
    assert_int_equal(fx.req.n_images, 0);
}

static void test_https_image_url_is_422(void **state)
{
    (void)state;
    json_t *files = json_pack("[s]", "https://example.com/cat.png");
    expect_422(with(valid_body(), "files", files), "files");
    assert_non_null(strstr(fx.err.message, "not enabled"));
}

static void test_other_files_strings_are_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "files", json_pack("[s]", "cat.png")),
               "files");
    expect_422(with(valid_body(), "files",
                    json_pack("[s]", "data:image/png,rawbytes")),
               "files");
    expect_422(with(valid_body(), "files",
                    json_pack("[s]", "data:image/png;base64,@@@@")),
               "files");
}

static void test_files_of_wrong_type_are_422(void **state)
{
    (void)state;
    expect_422(with(valid_body(), "files", json_integer(1)), "files");
    expect_422(with(valid_body(), "files", json_pack("[i]", 1)), "files");
}

static void test_empty_files_array_means_no_images(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "files", json_array()));
    assert_int_equal(fx.req.n_images, 0);
}

static void test_multipart_images_survive_validation(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/upload.jpg", fx.tmp_dir);
    write_file(path, "\xff\xd8\xff\xe0 jpeg body", 14);
    assert_int_equal(
        vg_request_add_image(&fx.req, &fx.limits, path, &fx.arena, &fx.err),
        0);
    expect_ok(with(valid_body(), "files", json_pack("[s]", PNG_URL)));
    assert_int_equal(fx.req.n_images, 2);
    assert_int_equal(fx.req.images[0].type, VG_IMAGE_JPEG);
    assert_int_equal(fx.req.images[0].size, 14);
    assert_int_equal(fx.req.images[1].type, VG_IMAGE_PNG);
}

static void test_multipart_and_data_urls_share_the_count_limit(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/upload.png", fx.tmp_dir);
    write_file(path, "\x89PNG\r\n\x1a\n....", 12);
    assert_int_equal(
        vg_request_add_image(&fx.req, &fx.limits, path, &fx.arena, &fx.err),
        0);
    json_t *files = json_pack("[ss]", PNG_URL, PNG_URL);
    expect_error(with(valid_body(), "files", files), fx.catalog, 413,
                 "too_many_files", "files");
}

static void test_added_image_beyond_limit_is_413_and_deleted(void **state)
{
    (void)state;
    char path[600];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/u%d.webp", fx.tmp_dir, i);
        write_file(path, "RIFF\x10\0\0\0WEBPVP8 ", 16);
        int rc = vg_request_add_image(&fx.req, &fx.limits, path, &fx.arena,
                                      &fx.err);
        assert_int_equal(rc, i < 2 ? 0 : -1);
    }
    assert_int_equal(fx.err.status, 413);
    assert_string_equal(fx.err.code, "too_many_files");
    assert_false(file_exists(path));
    assert_int_equal(fx.req.images[1].type, VG_IMAGE_WEBP);
}

static void test_added_non_image_is_415_and_deleted(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/upload.png", fx.tmp_dir);
    write_file(path, "GIF89a not allowed", 18);
    assert_int_equal(
        vg_request_add_image(&fx.req, &fx.limits, path, &fx.arena, &fx.err),
        -1);
    assert_int_equal(fx.err.status, 415);
    assert_string_equal(fx.err.code, "unsupported_file_type");
    assert_string_equal(fx.err.field, "files");
    assert_false(file_exists(path));
    assert_int_equal(fx.req.n_images, 0);
}

static void test_added_image_too_large_is_413(void **state)
{
    (void)state;
    char path[600];
    char big[2048];
    memset(big, 0, sizeof(big));
    memcpy(big, "\x89PNG\r\n\x1a\n", 8);
    snprintf(path, sizeof(path), "%s/big.png", fx.tmp_dir);
    write_file(path, big, sizeof(big));
    assert_int_equal(
        vg_request_add_image(&fx.req, &fx.limits, path, &fx.arena, &fx.err),
        -1);
    assert_int_equal(fx.err.status, 413);
    assert_string_equal(fx.err.code, "file_too_large");
    assert_false(file_exists(path));
}

static void test_cleanup_deletes_image_files(void **state)
{
    (void)state;
    expect_ok(with(valid_body(), "files", json_pack("[s]", PNG_URL)));
    char path[600];
    snprintf(path, sizeof(path), "%s", fx.req.images[0].path);
    assert_true(file_exists(path));
    vg_request_cleanup(&fx.req);
    assert_false(file_exists(path));
    assert_int_equal(fx.req.n_images, 0);
}

static void test_image_sniffing(void **state)
{
    (void)state;
    const unsigned char png[] = "\x89PNG\r\n\x1a\nxxxx";
    const unsigned char jpeg[] = "\xff\xd8\xff\xdb";
    const unsigned char webp[] = "RIFF\0\0\0\0WEBPVP8L";
    const unsigned char riff[] = "RIFF\0\0\0\0WAVEfmt ";
    assert_int_equal(vg_image_sniff(png, 12), VG_IMAGE_PNG);
    assert_int_equal(vg_image_sniff(png, 7), VG_IMAGE_NONE);
    assert_int_equal(vg_image_sniff(jpeg, 4), VG_IMAGE_JPEG);
    assert_int_equal(vg_image_sniff(webp, 16), VG_IMAGE_WEBP);
    assert_int_equal(vg_image_sniff(riff, 16), VG_IMAGE_NONE);
    assert_int_equal(vg_image_sniff((const unsigned char *)"GIF89a", 6),
                     VG_IMAGE_NONE);
    assert_int_equal(vg_image_sniff(png, 0), VG_IMAGE_NONE);
    assert_string_equal(vg_image_mime(VG_IMAGE_PNG), "image/png");
    assert_string_equal(vg_image_mime(VG_IMAGE_JPEG), "image/jpeg");
    assert_string_equal(vg_image_mime(VG_IMAGE_WEBP), "image/webp");
}

/* ---- durations that depend on the resolution (400) ------------------ */

/* A request for the shipped Veo 3.1 model with one setting changed. */
static json_t *veo_body(const char *resolution, int duration)
{
    json_t *body = valid_body();
    json_object_set_new(body, "model",
                        json_string("veo-3.1-generate-preview"));
    json_object_set_new(body, "resolution", json_string(resolution));
    json_object_set_new(body, "duration", json_integer(duration));
    return body;
}

static void test_duration_not_allowed_at_resolution_is_400(void **state)
{
    (void)state;
    /* Veo lists 4, 6 and 8 s, but makes 1080p only at 8 s. */
    expect_error(veo_body("1080P", 6), fx.catalog, 400,
                 "unsupported_parameter", "duration");
    assert_non_null(strstr(fx.err.message, "supports duration 8 "));
    assert_non_null(strstr(fx.err.message, "at 1080P"));
}

static void test_duration_allowed_at_resolution_is_accepted(void **state)
{
    (void)state;
    json_t *body = veo_body("1080P", 8);
    assert_int_equal(validate(body), 0);
    assert_int_equal(fx.req.duration, 8);
    assert_int_equal(fx.req.resolution, VG_RES_1080P);
    json_decref(body);
    vg_request_cleanup(&fx.req);
    memset(&fx.req, 0, sizeof(fx.req));
    /* The same duration the 1080p rule refuses is fine at 720p. */
    body = veo_body("720p", 6);
    assert_int_equal(validate(body), 0);
    json_decref(body);
}

static void test_plain_duration_error_names_no_resolution(void **state)
{
    (void)state;
    /* 5 s is not a Veo duration at any resolution: the usual message. */
    expect_error(veo_body("720P", 5), fx.catalog, 400, "unsupported_parameter",
                 "duration");
    assert_non_null(strstr(fx.err.message, "4, 6, 8"));
    assert_null(strstr(fx.err.message, " at "));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_valid_request_is_accepted),
        T(test_body_not_an_object_is_422),
        T(test_missing_prompt_is_422),
        T(test_missing_model_is_422),
        T(test_missing_resolution_is_422),
        T(test_missing_aspect_ratio_is_422),
        T(test_missing_duration_is_422),
        T(test_missing_generate_audio_is_422),
        T(test_missing_camera_fixed_is_422),
        T(test_missing_service_tier_is_422),
        T(test_null_required_field_counts_as_missing),
        T(test_null_optional_field_counts_as_absent),
        T(test_first_failure_in_table_order_is_reported),
        T(test_unknown_extra_fields_are_ignored),
        T(test_prompt_of_wrong_type_is_422),
        T(test_model_of_wrong_type_is_422),
        T(test_resolution_of_wrong_type_is_422),
        T(test_aspect_ratio_of_wrong_type_is_422),
        T(test_duration_as_real_is_wrong_type),
        T(test_duration_as_string_is_wrong_type),
        T(test_boolean_fields_accept_only_json_booleans),
        T(test_service_tier_of_wrong_type_is_422),
        T(test_fps_of_wrong_type_is_422),
        T(test_seed_of_wrong_type_is_422),
        T(test_duration_below_4_is_422),
        T(test_duration_above_12_is_422),
        T(test_duration_bounds_are_accepted),
        T(test_fps_0_is_422),
        T(test_fps_61_is_422),
        T(test_seed_minus_2_is_422),
        T(test_seed_2_pow_32_is_422),
        T(test_seed_range_bounds_are_accepted),
        T(test_seed_minus_1_stays_minus_1),
        T(test_seed_absent_is_minus_1),
        T(test_fps_defaults_to_24),
        T(test_unknown_resolution_is_422),
        T(test_unknown_aspect_ratio_is_422),
        T(test_unknown_service_tier_is_422),
        T(test_flex_service_tier_is_accepted),
        T(test_lower_case_resolution_is_accepted),
        T(test_aspect_ratio_words_are_accepted),
        T(test_empty_prompt_is_422),
        T(test_whitespace_only_prompt_is_422),
        T(test_too_long_prompt_is_422),
        T(test_prompt_length_counts_code_points),
        T(test_prompt_is_trimmed),
        T(test_prompt_must_be_valid_utf8),
        T(test_prompt_with_nul_is_422),
        T(test_form_field_types_follow_the_table),
        T(test_form_integer_5_is_accepted),
        T(test_form_integer_with_junk_is_422),
        T(test_form_integer_empty_is_422),
        T(test_form_integer_with_space_is_422),
        T(test_form_integer_with_fraction_is_422),
        T(test_form_booleans_are_accepted),
        T(test_form_boolean_yes_is_422),
        T(test_form_strings_are_stored_as_strings),
        T(test_form_unknown_field_is_ignored),
        T(test_form_body_validates_like_json),
        T(test_unknown_model_is_400_listing_models),
        T(test_unknown_model_separates_available_ones),
        T(test_modality_alias_is_enforced),
        T(test_number_must_be_one),
        T(test_provider_must_serve_the_model),
        T(test_schema_errors_come_before_model_errors),
        T(test_alias_keeps_name_and_resolves_model),
        T(test_restricted_model_accepts_what_it_lists),
        T(test_unsupported_resolution_is_400),
        T(test_unsupported_aspect_ratio_is_400),
        T(test_unsupported_duration_is_400),
        T(test_unsupported_fps_is_400),
        T(test_audio_on_model_without_audio_is_400),
        T(test_unsupported_parameter_via_alias_names_model),
        T(test_images_on_t2v_only_model_are_400),
        T(test_no_image_on_i2v_only_model_is_400),
        T(test_image_on_i2v_only_model_is_accepted),
        T(test_data_url_png_is_accepted),
        T(test_data_url_mime_is_judged_by_content),
        T(test_data_url_with_wrapped_base64_is_accepted),
        T(test_data_url_non_image_is_415),
        T(test_data_url_too_large_is_413),
        T(test_too_many_data_urls_are_413),
        T(test_https_image_url_is_422),
        T(test_other_files_strings_are_422),
        T(test_files_of_wrong_type_are_422),
        T(test_empty_files_array_means_no_images),
        T(test_multipart_images_survive_validation),
        T(test_multipart_and_data_urls_share_the_count_limit),
        T(test_added_image_beyond_limit_is_413_and_deleted),
        T(test_added_non_image_is_415_and_deleted),
        T(test_added_image_too_large_is_413),
        T(test_cleanup_deletes_image_files),
        T(test_image_sniffing),
        /* durations by resolution */
        T(test_duration_not_allowed_at_resolution_is_400),
        T(test_duration_allowed_at_resolution_is_accepted),
        T(test_plain_duration_error_names_no_resolution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
