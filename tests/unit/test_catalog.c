/*
 * test_catalog.c - the model catalog: the built-in default (the local
 * renderer and the shipped upstream models), aliases, provider routes,
 * durations by resolution, every configuration error, the JSON the models
 * endpoints return, the parsers for resolutions and aspect ratios, and the
 * frame size table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/models_json.h"
#include "core/catalog.h"

static vg_error err;

static vg_catalog *load(const char *text)
{
    json_error_t jerr;
    json_t *models = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (models == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    memset(&err, 0, sizeof(err));
    vg_catalog *c = vg_catalog_from_json(models, &err);
    json_decref(models);
    return c;
}

/* A valid model with one setting replaced by `override` (a JSON fragment
 * like "\"fps\": [0]"), so each error test changes exactly one thing. The
 * override repeats a key of the base, and jansson keeps the last one. */
static vg_catalog *load_model_with(const char *override)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}%s%s}]",
             *override ? ", " : "", override);
    return load(text);
}

static void expect_config_error(vg_catalog *c, const char *field,
                                const char *needle)
{
    if (c != NULL) {
        vg_catalog_free(c);
        fail_msg("catalog accepted; expected an error about %s", field);
    }
    assert_int_equal(err.status, 0);
    assert_string_equal(err.code, "config_error");
    assert_string_equal(err.field, field);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
}

/* ---- the default catalog --------------------------------------------- */

static void test_default_catalog_has_the_local_model(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    assert_true(c->n_models > 1);
    /* First, so that error messages listing models start with it. */
    const vg_model *m = &c->models[0];
    assert_string_equal(m->name, "vidgate-local");
    assert_string_equal(m->provider, "local");
    assert_string_equal(m->provider_model, "vidgate-local");
    assert_int_equal(m->n_routes, 1);
    assert_null(m->routes[0].i2v_model);
    assert_non_null(strstr(m->description, "not a generative"));
    assert_true(m->t2v);
    assert_true(m->i2v);
    assert_int_equal(m->resolutions, (1u << VG_RES_COUNT) - 1);
    assert_int_equal(m->aspects, (1u << VG_AR_COUNT) - 1);
    for (int s = 0; s < 32; s++)
        assert_int_equal(!!(m->durations & (1u << s)), s >= 4 && s <= 12);
    assert_true(m->fps == ((UINT64_C(1) << 24) | (UINT64_C(1) << 25) |
                           (UINT64_C(1) << 30)));
    assert_true(m->audio);
    assert_int_equal(m->price_per_second[VG_RES_480P], 1000);
    assert_int_equal(m->price_per_second[VG_RES_720P], 2000);
    assert_int_equal(m->price_per_second[VG_RES_1080P], 4000);
    assert_int_equal(m->audio_factor, 1500);
    assert_int_equal(m->flex_factor, 500);
    vg_catalog_free(c);
}

static void test_default_catalog_aliases_local(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    assert_string_equal(c->aliases[0].name, "local");
    assert_ptr_equal(vg_catalog_find(c, "local"), &c->models[0]);
    assert_ptr_equal(vg_catalog_find(c, "vidgate-local"), &c->models[0]);
    assert_null(vg_catalog_find(c, "Vidgate-Local"));
    assert_null(vg_catalog_find(c, "sora"));
    assert_null(vg_catalog_find(c, NULL));
    vg_catalog_free(c);
}

/* OneInfer's own model names (one per modality) resolve to the models
 * that serve them, each held to its modality. */
static void test_default_catalog_has_oneinfer_names(void **state)
{
    (void)state;
    static const struct {
        const char *alias, *model;
        vg_modality modality;
    } names[] = {
        {"seedance-v1.5-pro-t2v", "seedance-v1.5-pro", VG_MODALITY_T2V},
        {"seedance-v1.5-pro-i2v", "seedance-v1.5-pro", VG_MODALITY_I2V},
        {"seedance-v1-pro-t2v", "seedance-v1-pro", VG_MODALITY_T2V},
        {"seedance-v1-pro-i2v", "seedance-v1-pro", VG_MODALITY_I2V},
        {"kling-v2.1-t2v-master", "kling-v2.1-master", VG_MODALITY_T2V},
        {"kling-v2.1-i2v-master", "kling-v2.1-master", VG_MODALITY_I2V},
        {"wan2.1-t2v-turbo", "wan-2.1", VG_MODALITY_T2V},
        {"wan2.1-i2v-turbo", "wan-2.1", VG_MODALITY_I2V},
        {"seedance-v1.5-pro", "seedance-v1.5-pro", VG_MODALITY_ANY},
    };
    vg_catalog *c = vg_catalog_default();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        vg_modality modality = (vg_modality)-1;
        const vg_model *m = vg_catalog_lookup(c, names[i].alias, &modality);
        if (m == NULL)
            fail_msg("%s is not in the built-in catalog", names[i].alias);
        assert_string_equal(m->name, names[i].model);
        assert_int_equal(modality, names[i].modality);
    }
    vg_catalog_free(c);
}

static void test_alias_modality_is_checked(void **state)
{
    (void)state;
    const char *model = " {\"name\": \"m\", \"provider\": \"local\","
                        "  \"modalities\": [\"t2v\"], "
                        "  \"resolutions\": [\"480P\"],"
                        "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
                        "  \"price\": {\"per_second\": {\"480P\": 1}}}]";
    char text[1024];
    snprintf(text, sizeof(text),
             "[{\"name\": \"a\", \"alias_of\": \"m\", "
             "\"modality\": \"i2v\"},%s",
             model);
    expect_config_error(load(text), "modality", "does not offer");
    snprintf(text, sizeof(text),
             "[{\"name\": \"a\", \"alias_of\": \"m\", "
             "\"modality\": \"v2v\"},%s",
             model);
    expect_config_error(load(text), "modality", "\"t2v\" or \"i2v\"");
    snprintf(text, sizeof(text),
             "[{\"name\": \"a\", \"alias_of\": \"m\", "
             "\"modality\": \"t2v\"},%s",
             model);
    vg_catalog *c = load(text);
    assert_non_null(c);
    assert_int_equal(c->aliases[0].modality, VG_MODALITY_T2V);
    /* The listing shows the alias with its one modality. */
    json_t *data = vg_models_json(c, NULL, NULL);
    json_t *models = json_object_get(data, "models");
    json_t *alias = json_array_get(models, 1);
    assert_string_equal(json_string_value(json_object_get(alias, "name")), "a");
    json_t *mods = json_object_get(alias, "modalities");
    assert_int_equal(json_array_size(mods), 1);
    assert_string_equal(json_string_value(json_array_get(mods, 0)), "t2v");
    json_decref(data);
    vg_catalog_free(c);
}

/* get-model-pricing: every name a client can send, with the price per
 * second of each resolution the model offers and nothing else. */
static void test_pricing_json(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    json_t *data = vg_models_pricing_json(c, NULL, NULL);
    json_t *models = json_object_get(data, "models");
    assert_int_equal(json_array_size(models), c->n_models + c->n_aliases);
    json_t *found = NULL;
    size_t i;
    json_t *item;
    json_array_foreach(models, i, item) {
        const char *name =
            json_string_value(json_object_get(item, "model_name"));
        if (strcmp(name, "seedance-v1.5-pro-t2v") == 0)
            found = item;
    }
    assert_non_null(found);
    assert_string_equal(json_string_value(json_object_get(found, "provider")),
                        "byteplus");
    assert_string_equal(json_string_value(json_object_get(found, "currency")),
                        "credits");
    json_t *per = json_object_get(found, "price_per_second");
    assert_int_equal(json_object_size(per), 2);
    assert_true(json_real_value(json_object_get(per, "480P")) == 1.2);
    assert_true(json_real_value(json_object_get(per, "720P")) == 2.6);
    assert_null(json_object_get(per, "1080P"));
    assert_true(json_real_value(json_object_get(found, "audio_factor")) ==
                2.0);
    assert_true(json_is_true(json_object_get(found, "available")));
    json_decref(data);
    vg_catalog_free(c);
}

/* ---- building from JSON ---------------------------------------------- */

static void test_model_defaults(void **state)
{
    (void)state;
    vg_catalog *c = load_model_with("");
    assert_non_null(c);
    const vg_model *m = vg_catalog_find(c, "m1");
    assert_non_null(m);
    assert_string_equal(m->provider_model, "m1");
    assert_string_equal(m->description, "");
    assert_true(m->fps == (UINT64_C(1) << 24));
    assert_false(m->audio);
    assert_false(m->i2v);
    assert_int_equal(m->audio_factor, 1000);
    assert_int_equal(m->flex_factor, 1000);
    assert_int_equal(m->durations, 1u << 5);
    vg_catalog_free(c);
}

static void test_model_settings_are_read(void **state)
{
    (void)state;
    vg_catalog *c = load(
        "[{\"name\": \"seedance\", \"description\": \"d\","
        "  \"provider\": \"novita\", \"provider_model\": \"seedance-v1\","
        "  \"modalities\": [\"i2v\"], \"resolutions\": [\"720p\", \"1080P\"],"
        "  \"aspect_ratios\": [\"21:9\", \"square\"],"
        "  \"durations\": {\"min\": 5, \"max\": 10}, \"fps\": [1, 60],"
        "  \"audio\": true, \"price\": {\"currency\": \"credits\","
        "  \"per_second\": {\"720P\": 0.125, \"1080P\": 2.5},"
        "  \"audio_factor\": 1.333, \"flex_factor\": 0.001}}]");
    assert_non_null(c);
    const vg_model *m = &c->models[0];
    assert_string_equal(m->provider, "novita");
    assert_string_equal(m->provider_model, "seedance-v1");
    assert_string_equal(m->description, "d");
    assert_false(m->t2v);
    assert_true(m->i2v);
    assert_int_equal(m->resolutions,
                     (1u << VG_RES_720P) | (1u << VG_RES_1080P));
    assert_int_equal(m->aspects, (1u << VG_AR_21_9) | (1u << VG_AR_1_1));
    assert_int_equal(m->durations, 0x7e0u); /* bits 5..10 */
    assert_true(m->fps == ((UINT64_C(1) << 1) | (UINT64_C(1) << 60)));
    assert_int_equal(m->price_per_second[VG_RES_720P], 125);
    assert_int_equal(m->price_per_second[VG_RES_1080P], 2500);
    assert_int_equal(m->audio_factor, 1333);
    assert_int_equal(m->flex_factor, 1);
    vg_catalog_free(c);
}

static void test_alias_points_at_its_model(void **state)
{
    (void)state;
    vg_catalog *c =
        load("[{\"name\": \"seedance-v1.5-pro-t2v\", \"alias_of\": \"m\"},"
             " {\"name\": \"m\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}}]");
    assert_non_null(c);
    assert_int_equal(c->n_models, 1);
    assert_int_equal(c->n_aliases, 1);
    assert_ptr_equal(vg_catalog_find(c, "seedance-v1.5-pro-t2v"),
                     &c->models[0]);
    vg_catalog_free(c);
}

/* ---- configuration errors -------------------------------------------- */

static void test_models_must_be_a_non_empty_array(void **state)
{
    (void)state;
    expect_config_error(load("{}"), "models", "non-empty array");
    expect_config_error(load("[]"), "models", "non-empty array");
}

static void test_model_must_be_an_object(void **state)
{
    (void)state;
    expect_config_error(load("[5]"), "models", "models[0]");
}

static void test_model_needs_a_valid_name(void **state)
{
    (void)state;
    expect_config_error(load("[{\"provider\": \"local\"}]"), "name",
                        "models[0]");
    expect_config_error(load("[{\"name\": \"has space\"}]"), "name",
                        "models[0]");
    expect_config_error(load("[{\"name\": \"\"}]"), "name", "models[0]");
}

static void test_duplicate_names_are_an_error(void **state)
{
    (void)state;
    expect_config_error(load("[{\"name\": \"a\", \"alias_of\": \"b\"},"
                             " {\"name\": \"a\", \"alias_of\": \"b\"}]"),
                        "name", "\"a\" is used twice");
}

static void test_duplicate_model_and_alias_name_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}},"
             " {\"name\": \"m1\", \"alias_of\": \"m1\"}]"),
        "name", "\"m1\" is used twice");
}

static void test_alias_to_unknown_model_is_an_error(void **state)
{
    (void)state;
    vg_catalog *c =
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}},"
             " {\"name\": \"a\", \"alias_of\": \"nope\"}]");
    expect_config_error(c, "alias_of", "alias \"a\"");
    assert_non_null(strstr(err.message, "not a model"));
}

static void test_alias_chain_is_an_error(void **state)
{
    (void)state;
    vg_catalog *c =
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}},"
             " {\"name\": \"a\", \"alias_of\": \"m1\"},"
             " {\"name\": \"b\", \"alias_of\": \"a\"}]");
    expect_config_error(c, "alias_of", "itself an alias");
}

static void test_alias_loop_is_an_error(void **state)
{
    (void)state;
    vg_catalog *c =
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}},"
             " {\"name\": \"a\", \"alias_of\": \"b\"},"
             " {\"name\": \"b\", \"alias_of\": \"a\"}]");
    expect_config_error(c, "alias_of", "itself an alias");
}

static void test_alias_with_model_settings_is_an_error(void **state)
{
    (void)state;
    vg_catalog *c =
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}},"
             " {\"name\": \"a\", \"alias_of\": \"m1\", \"fps\": [30]}]");
    expect_config_error(c, "fps", "alias \"a\"");
}

static void test_only_aliases_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load("[{\"name\": \"a\", \"alias_of\": \"b\"}]"),
                        "models", "at least one real model");
}

static void test_unknown_model_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"resolution\": [\"480P\"]"),
                        "resolution", "model \"m1\"");
}

static void test_missing_provider_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load("[{\"name\": \"m1\", \"modalities\": [\"t2v\"]}]"), "provider",
        "model \"m1\"");
}

static void test_bad_modalities_are_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"modalities\": [\"v2v\"]"),
                        "modalities", "model \"m1\"");
    expect_config_error(load_model_with("\"modalities\": []"), "modalities",
                        "model \"m1\"");
}

static void test_bad_resolutions_are_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"resolutions\": [\"4K\"]"),
                        "resolutions", "model \"m1\"");
}

static void test_bad_aspect_ratios_are_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"aspect_ratios\": [\"2:1\"]"),
                        "aspect_ratios", "model \"m1\"");
}

static void test_duration_below_4_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"durations\": [3, 5]"), "durations",
                        "model \"m1\"");
}

static void test_duration_above_12_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"durations\": {\"min\": 4, "
                                        "\"max\": 13}"),
                        "durations", "4..12");
}

static void test_duration_range_upside_down_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"durations\": {\"min\": 8, "
                                        "\"max\": 6}"),
                        "durations", "model \"m1\"");
}

static void test_fractional_duration_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"durations\": [5.5]"), "durations",
                        "model \"m1\"");
}

static void test_fps_0_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"fps\": [0]"), "fps", "1..60");
}

static void test_fps_61_is_an_error(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"fps\": [24, 61]"), "fps", "1..60");
}

static void test_audio_must_be_boolean(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"audio\": \"yes\""), "audio",
                        "model \"m1\"");
}

static void test_price_missing_for_listed_resolution_is_an_error(void **s)
{
    (void)s;
    expect_config_error(
        load_model_with("\"resolutions\": [\"480P\", \"720P\"]"), "price",
        "no price for 720P");
}

static void test_price_with_more_than_3_decimals_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_model_with("\"price\": {\"per_second\": {\"480P\": 0.0005}}"),
        "price", "at most 3 decimals");
}

static void test_negative_price_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_model_with("\"price\": {\"per_second\": {\"480P\": -1}}"),
        "price", "model \"m1\"");
}

static void test_price_as_string_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_model_with("\"price\": {\"per_second\": {\"480P\": \"1\"}}"),
        "price", "model \"m1\"");
}

static void test_price_unknown_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_model_with("\"price\": {\"per_second\": {\"480P\": 1}, "
                        "\"per_minute\": 3}"),
        "price", "per_minute");
}

static void test_zero_factor_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_model_with("\"price\": {\"per_second\": {\"480P\": 1}, "
                        "\"flex_factor\": 0}"),
        "price", "flex_factor");
}

static void test_missing_price_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load("[{\"name\": \"m1\", \"provider\": \"local\","
             "  \"modalities\": [\"t2v\"], \"resolutions\": [\"480P\"],"
             "  \"aspect_ratios\": [\"16:9\"], \"durations\": [5]}]"),
        "price", "model \"m1\"");
}

/* ---- JSON for the models endpoints ----------------------------------- */

static void test_catalog_json_lists_every_capability(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    json_t *data = vg_models_json(c, NULL, NULL);
    json_t *models = json_object_get(data, "models");
    assert_int_equal(json_array_size(models), c->n_models + c->n_aliases);
    json_t *m = json_array_get(models, 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")),
                        "vidgate-local");
    assert_string_equal(json_string_value(json_object_get(m, "provider")),
                        "local");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(m, "providers"), 0)),
        "local");
    assert_int_equal(json_array_size(json_object_get(m, "modalities")), 2);
    assert_int_equal(json_array_size(json_object_get(m, "resolutions")), 3);
    assert_int_equal(json_array_size(json_object_get(m, "aspect_ratios")), 6);
    json_t *durations = json_object_get(m, "durations");
    assert_int_equal(json_array_size(durations), 9);
    assert_int_equal(json_integer_value(json_array_get(durations, 0)), 4);
    assert_int_equal(json_integer_value(json_array_get(durations, 8)), 12);
    json_t *fps = json_object_get(m, "fps");
    assert_int_equal(json_array_size(fps), 3);
    assert_int_equal(json_integer_value(json_array_get(fps, 1)), 25);
    assert_true(json_is_true(json_object_get(m, "audio")));
    assert_true(json_is_true(json_object_get(m, "available")));
    assert_int_equal(
        json_object_size(json_object_get(m, "durations_by_resolution")), 0);
    json_t *price = json_object_get(m, "price");
    assert_string_equal(json_string_value(json_object_get(price, "currency")),
                        "credits");
    json_t *per = json_object_get(price, "per_second");
    assert_true(json_number_value(json_object_get(per, "1080P")) == 4.0);
    assert_true(json_number_value(json_object_get(price, "audio_factor")) ==
                1.5);
    assert_true(json_number_value(json_object_get(price, "flex_factor")) ==
                0.5);
    json_t *aliases = json_object_get(m, "aliases");
    assert_int_equal(json_array_size(aliases), 1);
    assert_string_equal(json_string_value(json_array_get(aliases, 0)),
                        "local");
    json_decref(data);
    vg_catalog_free(c);
}

static void test_catalog_json_lists_aliases_as_entries(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    json_t *data = vg_models_json(c, NULL, NULL);
    /* Aliases come after every model. */
    json_t *a = json_array_get(json_object_get(data, "models"), c->n_models);
    assert_string_equal(json_string_value(json_object_get(a, "name")),
                        "local");
    assert_string_equal(json_string_value(json_object_get(a, "alias_of")),
                        "vidgate-local");
    assert_non_null(json_object_get(a, "resolutions"));
    assert_null(json_object_get(a, "aliases"));
    json_decref(data);
    vg_catalog_free(c);
}

static void test_legacy_json_has_model_name_and_description(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    json_t *data = vg_models_legacy_json(c, NULL, NULL);
    json_t *models = json_object_get(data, "models");
    assert_int_equal(json_array_size(models), c->n_models + c->n_aliases);
    const char *names[] = {"vidgate-local", "local"};
    const size_t at[] = {0, c->n_models};
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(models, at[i]);
        assert_string_equal(
            json_string_value(json_object_get(m, "model_name")), names[i]);
        assert_non_null(
            strstr(json_string_value(json_object_get(m, "description")),
                   "offline renderer"));
        assert_string_equal(json_string_value(json_object_get(m, "type")),
                            "video");
        assert_string_equal(json_string_value(json_object_get(m, "provider")),
                            "local");
        json_t *providers = json_object_get(m, "providers");
        assert_int_equal(json_array_size(providers), 1);
        assert_string_equal(json_string_value(json_array_get(providers, 0)),
                            "local");
        assert_true(json_is_true(json_object_get(m, "available")));
    }
    json_decref(data);
    vg_catalog_free(c);
}

/* ---- provider routes ------------------------------------------------- */

/* A valid model served by the routes given as the JSON text of a
 * "providers" value (and nothing else about who serves it). */
static vg_catalog *load_routes(const char *providers, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "[{\"name\": \"m1\", \"providers\": %s,"
             "  \"modalities\": [\"t2v\", \"i2v\"],"
             "  \"resolutions\": [\"480P\"], \"aspect_ratios\": [\"16:9\"],"
             "  \"durations\": [5],"
             "  \"price\": {\"per_second\": {\"480P\": 1}}%s%s}]",
             providers, *extra ? ", " : "", extra);
    return load(text);
}

static void test_single_provider_is_one_route(void **state)
{
    (void)state;
    vg_catalog *c = load_model_with("\"provider_model\": \"their-id\"");
    assert_non_null(c);
    const vg_model *m = &c->models[0];
    assert_int_equal(m->n_routes, 1);
    assert_string_equal(m->routes[0].provider, "local");
    assert_string_equal(m->routes[0].model, "their-id");
    assert_null(m->routes[0].i2v_model);
    assert_ptr_equal(m->provider, m->routes[0].provider);
    assert_ptr_equal(m->provider_model, m->routes[0].model);
    vg_catalog_free(c);
}

static void test_providers_are_routes_in_order(void **state)
{
    (void)state;
    vg_catalog *c = load_routes(
        "[{\"provider\": \"byteplus\", \"model\": \"seedance-1-5\"},"
        " {\"provider\": \"novita\", \"model\": \"sd-t2v\","
        "  \"i2v_model\": \"sd-i2v\"},"
        " {\"provider\": \"fal\", \"model\": \"fal-ai/x/text-to-video\"}]",
        "");
    assert_non_null(c);
    const vg_model *m = &c->models[0];
    assert_int_equal(m->n_routes, 3);
    assert_string_equal(m->routes[0].provider, "byteplus");
    assert_string_equal(m->routes[1].provider, "novita");
    assert_string_equal(m->routes[2].provider, "fal");
    assert_string_equal(m->routes[2].model, "fal-ai/x/text-to-video");
    /* The first route is also the model's single provider. */
    assert_string_equal(m->provider, "byteplus");
    assert_string_equal(m->provider_model, "seedance-1-5");
    /* The image-to-video id only when the job has images. */
    assert_string_equal(vg_route_model_id(&m->routes[1], false), "sd-t2v");
    assert_string_equal(vg_route_model_id(&m->routes[1], true), "sd-i2v");
    assert_string_equal(vg_route_model_id(&m->routes[0], true),
                        "seedance-1-5");
    vg_catalog_free(c);
}

static void test_eight_routes_are_the_most(void **state)
{
    (void)state;
    char list[1024] = "[";
    for (int i = 0; i < 9; i++) {
        char one[64];
        snprintf(one, sizeof(one),
                 "%s{\"provider\": \"p%d\", "
                 "\"model\": \"m\"}",
                 i ? ", " : "", i);
        strcat(list, one);
        if (i == 7) {
            char eight[sizeof(list) + 1];
            snprintf(eight, sizeof(eight), "%s]", list);
            vg_catalog *c = load_routes(eight, "");
            assert_non_null(c);
            assert_int_equal(c->models[0].n_routes, 8);
            vg_catalog_free(c);
        }
    }
    strcat(list, "]");
    expect_config_error(load_routes(list, ""), "providers", "1 to 8");
}

static void test_provider_and_providers_together_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\"}]",
                    "\"provider\": \"local\""),
        "providers", "either one");
}

static void test_provider_model_with_providers_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\"}]",
                    "\"provider_model\": \"y\""),
        "provider_model", "each route");
}

static void test_providers_must_be_a_non_empty_array(void **state)
{
    (void)state;
    expect_config_error(load_routes("[]", ""), "providers", "model \"m1\"");
    expect_config_error(load_routes("\"novita\"", ""), "providers", "1 to 8");
    expect_config_error(load_routes("[\"novita\"]", ""), "providers",
                        "\"providers[0]\" must be an object");
}

static void test_route_needs_a_provider_name(void **state)
{
    (void)state;
    expect_config_error(load_routes("[{\"model\": \"x\"}]", ""), "providers",
                        "\"providers[0]\" needs \"provider\"");
    expect_config_error(
        load_routes("[{\"provider\": \"no space\", \"model\": \"x\"}]", ""),
        "providers", "at most 63");
    /* 64 characters: one more than the job store keeps. */
    expect_config_error(
        load_routes("[{\"provider\": \"p123456789012345678901234567890123"
                    "456789012345678901234567890123\", \"model\": \"x\"}]",
                    ""),
        "providers", "at most 63");
}

static void test_route_needs_a_model(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\"},"
                    " {\"provider\": \"fal\"}]",
                    ""),
        "providers", "\"providers[1]\" needs \"model\"");
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"\"}]", ""),
        "providers", "needs \"model\"");
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": 5}]", ""),
        "providers", "needs \"model\"");
}

static void test_route_unknown_key_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\","
                    "  \"weight\": 2}]",
                    ""),
        "providers", "unknown key \"weight\"");
}

static void test_route_i2v_model_must_be_a_string(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\","
                    "  \"i2v_model\": \"\"}]",
                    ""),
        "providers", "\"i2v_model\"");
}

static void test_route_i2v_model_on_t2v_only_model_is_an_error(void **s)
{
    (void)s;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\","
                    "  \"i2v_model\": \"y\"}]",
                    "\"modalities\": [\"t2v\"]"),
        "providers", "lack \"i2v\"");
}

static void test_route_provider_twice_is_an_error(void **state)
{
    (void)state;
    expect_config_error(
        load_routes("[{\"provider\": \"novita\", \"model\": \"x\"},"
                    " {\"provider\": \"novita\", \"model\": \"y\"}]",
                    ""),
        "providers", "\"novita\" a second time");
}

/* ---- durations by resolution ----------------------------------------- */

static void test_durations_by_resolution_are_read(void **state)
{
    (void)state;
    vg_catalog *c = load_model_with(
        "\"resolutions\": [\"480P\", \"720P\", \"1080P\"],"
        "\"durations\": {\"min\": 4, \"max\": 8},"
        "\"durations_by_resolution\": {\"1080p\": [8],"
        "                              \"720P\": {\"min\": 6, \"max\": 8}},"
        "\"price\": {\"per_second\": {\"480P\": 1, \"720P\": 2, "
        "\"1080P\": 3}}");
    assert_non_null(c);
    const vg_model *m = &c->models[0];
    assert_int_equal(m->durations_at[VG_RES_480P], 0);
    assert_int_equal(m->durations_at[VG_RES_1080P], 1u << 8);
    assert_int_equal(vg_model_durations_at(m, VG_RES_480P), 0x1f0u);
    assert_int_equal(vg_model_durations_at(m, VG_RES_720P), 0x1c0u);
    assert_int_equal(vg_model_durations_at(m, VG_RES_1080P), 1u << 8);
    vg_catalog_free(c);
}

static void test_durations_by_resolution_errors(void **state)
{
    (void)state;
    expect_config_error(load_model_with("\"durations_by_resolution\": [5]"),
                        "durations_by_resolution", "must be an object");
    /* The base model lists only 480P. */
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"1080P\": [5]}"),
        "durations_by_resolution", "not one of the model's");
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"4K\": [5]}"),
        "durations_by_resolution", "\"4K\"");
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"480P\": []}"),
        "durations_by_resolution", "480P\" must be a non-empty array");
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"480P\": [13]}"),
        "durations_by_resolution", "4..12");
    /* A subset of "durations": the base model lists only 5 s. */
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"480P\": [5, 6]}"),
        "durations_by_resolution", "only list durations");
    expect_config_error(
        load_model_with("\"durations_by_resolution\": {\"480P\": [5],"
                        " \"480p\": [5]}"),
        "durations_by_resolution", "480P twice");
}

static void test_durations_by_resolution_in_json(void **state)
{
    (void)state;
    vg_catalog *c = load_model_with(
        "\"resolutions\": [\"480P\", \"1080P\"], \"durations\": [4, 8],"
        "\"durations_by_resolution\": {\"1080P\": [8]},"
        "\"price\": {\"per_second\": {\"480P\": 1, \"1080P\": 3}}");
    assert_non_null(c);
    json_t *data = vg_models_json(c, NULL, NULL);
    json_t *m = json_array_get(json_object_get(data, "models"), 0);
    json_t *by = json_object_get(m, "durations_by_resolution");
    assert_int_equal(json_object_size(by), 1);
    json_t *at = json_object_get(by, "1080P");
    assert_int_equal(json_array_size(at), 1);
    assert_int_equal(json_integer_value(json_array_get(at, 0)), 8);
    assert_int_equal(json_array_size(json_object_get(m, "durations")), 2);
    json_decref(data);
    vg_catalog_free(c);
}

/* ---- the shipped upstream models ------------------------------------- */

/* The provider instances the default configuration defines. */
static bool is_default_provider(const char *name)
{
    static const char *const names[] = {"local",    "novita", "google",
                                        "byteplus", "fal",    "replicate",
                                        "openai",   "google-vertex", NULL};
    for (size_t i = 0; names[i] != NULL; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static void test_every_shipped_model_has_valid_routes(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    assert_int_equal(c->n_models, 13);
    for (size_t i = 0; i < c->n_models; i++) {
        const vg_model *m = &c->models[i];
        if (m->n_routes < 1 || m->n_routes > VG_MAX_ROUTES)
            fail_msg("%s has %zu routes", m->name, m->n_routes);
        if (strlen(m->description) < 20)
            fail_msg("%s has no real description", m->name);
        for (size_t k = 0; k < m->n_routes; k++) {
            const vg_model_route *r = &m->routes[k];
            if (!is_default_provider(r->provider))
                fail_msg("%s: unknown provider %s", m->name, r->provider);
            assert_true(strlen(r->model) > 0);
            if (r->i2v_model != NULL && !m->i2v)
                fail_msg("%s: i2v id on a t2v-only model", m->name);
        }
        /* Every listed resolution has a price; prices are positive. */
        for (int r = 0; r < VG_RES_COUNT; r++)
            if (m->resolutions & (1u << r))
                assert_true(m->price_per_second[r] > 0);
        /* Every upstream model accepts the contract's default fps. */
        assert_true(m->fps & (UINT64_C(1) << 24));
        /* Narrower lists stay within the model's durations. */
        for (int r = 0; r < VG_RES_COUNT; r++)
            assert_int_equal(m->durations_at[r] & ~m->durations, 0);
    }
    vg_catalog_free(c);
}

static uint32_t seconds(int a, int b, int c)
{
    uint32_t set = 0;
    if (a)
        set |= UINT32_C(1) << a;
    if (b)
        set |= UINT32_C(1) << b;
    if (c)
        set |= UINT32_C(1) << c;
    return set;
}

static void test_shipped_seedance_limits_and_routes(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    const vg_model *m = vg_catalog_find(c, "seedance-v1.5-pro");
    assert_non_null(m);
    assert_int_equal(m->n_routes, 3);
    assert_string_equal(m->routes[0].provider, "byteplus");
    assert_string_equal(m->routes[1].provider, "novita");
    assert_string_equal(m->routes[1].model, "seedance-v1.5-pro-t2v");
    assert_string_equal(m->routes[1].i2v_model, "seedance-v1.5-pro-i2v");
    /* Novita's 1.5 Pro stops at 720p, so the model does. */
    assert_int_equal(m->resolutions,
                     (1u << VG_RES_480P) | (1u << VG_RES_720P));
    assert_int_equal(m->aspects, (1u << VG_AR_COUNT) - 1);
    assert_int_equal(m->durations, 0x1ff0u); /* 4..12 */
    assert_true(m->audio && m->t2v && m->i2v);
    assert_int_equal(m->flex_factor, 500);
    assert_true(m->fps == (UINT64_C(1) << 24));

    m = vg_catalog_find(c, "seedance-v1-pro");
    assert_non_null(m);
    assert_string_equal(m->routes[0].provider, "byteplus");
    assert_string_equal(m->routes[0].model, "seedance-1-0-pro-250528");
    assert_string_equal(m->routes[1].provider, "novita");
    assert_string_equal(m->routes[2].provider, "replicate");
    assert_string_equal(m->routes[2].model, "bytedance/seedance-1-pro");
    assert_int_equal(m->resolutions, (1u << VG_RES_COUNT) - 1);
    assert_int_equal(m->durations, seconds(5, 10, 0));
    assert_false(m->audio);
    assert_int_equal(m->flex_factor, 500);
    vg_catalog_free(c);
}

static void test_shipped_veo_limits_and_routes(void **state)
{
    (void)state;
    static const char *const veo3[] = {
        "veo-3.1-generate-preview", "veo-3.1-fast-generate-preview",
        "veo-3.0-generate-001", "veo-3.0-fast-generate-001"};
    vg_catalog *c = vg_catalog_default();
    for (size_t i = 0; i < 4; i++) {
        const vg_model *m = vg_catalog_find(c, veo3[i]);
        assert_non_null(m);
        /* Veo 3.1 on the Gemini API first; 3.0 no longer there. Then
         * Vertex AI, then fal. */
        size_t k = 0;
        if (i < 2) {
            assert_string_equal(m->routes[k].provider, "google");
            assert_string_equal(m->routes[k].model, veo3[i]);
            k++;
        }
        assert_string_equal(m->routes[k].provider, "google-vertex");
        assert_string_equal(m->routes[k].model, veo3[i]);
        assert_string_equal(m->routes[k + 1].provider, "fal");
        assert_non_null(m->routes[k + 1].i2v_model);
        assert_int_equal(m->n_routes, k + 2);
        assert_int_equal(m->resolutions,
                         (1u << VG_RES_720P) | (1u << VG_RES_1080P));
        assert_int_equal(m->aspects, (1u << VG_AR_16_9) | (1u << VG_AR_9_16));
        assert_int_equal(m->durations, seconds(4, 6, 8));
        /* 1080p needs 8 s. */
        assert_int_equal(vg_model_durations_at(m, VG_RES_1080P),
                         seconds(8, 0, 0));
        assert_int_equal(vg_model_durations_at(m, VG_RES_720P),
                         seconds(4, 6, 8));
        /* Always makes sound; silence costs the same. */
        assert_true(m->audio);
        assert_int_equal(m->audio_factor, 1000);
        assert_int_equal(m->flex_factor, 1000);
        assert_true(m->t2v && m->i2v);
    }
    const vg_model *v2 = vg_catalog_find(c, "veo-2.0-generate-001");
    assert_non_null(v2);
    assert_int_equal(v2->n_routes, 1);
    assert_string_equal(v2->routes[0].provider, "google-vertex");
    assert_int_equal(v2->resolutions, 1u << VG_RES_720P);
    assert_int_equal(v2->durations, 0x1e0u); /* 5..8 */
    assert_false(v2->audio);
    vg_catalog_free(c);
}

static void test_shipped_novita_only_models(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    const vg_model *m = vg_catalog_find(c, "kling-v2.1-master");
    assert_non_null(m);
    assert_int_equal(m->n_routes, 1);
    assert_string_equal(m->routes[0].model, "kling-v2.1-t2v-master");
    assert_string_equal(m->routes[0].i2v_model, "kling-v2.1-i2v-master");
    assert_int_equal(m->resolutions, 1u << VG_RES_1080P);
    assert_int_equal(m->durations, seconds(5, 10, 0));
    assert_false(m->audio);

    m = vg_catalog_find(c, "minimax-hailuo-02");
    assert_non_null(m);
    assert_string_equal(m->routes[0].provider, "novita");
    assert_int_equal(m->aspects, 1u << VG_AR_16_9);
    assert_int_equal(m->durations, seconds(6, 10, 0));
    /* Hailuo makes 10 s clips only at 768p. */
    assert_int_equal(vg_model_durations_at(m, VG_RES_1080P), seconds(6, 0, 0));

    m = vg_catalog_find(c, "wan-2.5-t2v-preview");
    assert_non_null(m);
    assert_true(m->t2v && !m->i2v && m->audio);
    assert_int_equal(m->durations, seconds(5, 10, 0));

    m = vg_catalog_find(c, "wan-2.2-t2v");
    assert_non_null(m);
    assert_true(m->t2v && !m->i2v && !m->audio);
    assert_int_equal(m->durations, seconds(5, 0, 0));
    assert_int_equal(m->resolutions,
                     (1u << VG_RES_480P) | (1u << VG_RES_1080P));
    vg_catalog_free(c);
}

/* ---- "available" and "providers" in the JSON ------------------------- */

/* Available when the model's first route is the local renderer. */
static bool local_only(void *ctx, const vg_model *model)
{
    int *calls = ctx;
    (*calls)++;
    return strcmp(model->routes[0].provider, "local") == 0;
}

static void test_catalog_json_has_providers_and_available(void **state)
{
    (void)state;
    vg_catalog *c = vg_catalog_default();
    int calls = 0;
    json_t *data = vg_models_json(c, local_only, &calls);
    json_t *models = json_object_get(data, "models");
    size_t i;
    json_t *m;
    bool saw_seedance = false;
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const vg_model *model = vg_catalog_find(c, name);
        assert_non_null(model);
        json_t *providers = json_object_get(m, "providers");
        assert_int_equal(json_array_size(providers), model->n_routes);
        for (size_t k = 0; k < model->n_routes; k++)
            assert_string_equal(
                json_string_value(json_array_get(providers, k)),
                model->routes[k].provider);
        bool local = strcmp(model->provider, "local") == 0;
        assert_true(json_is_boolean(json_object_get(m, "available")));
        assert_int_equal(json_is_true(json_object_get(m, "available")), local);
        if (strcmp(name, "seedance-v1-pro") == 0) {
            saw_seedance = true;
            assert_string_equal(
                json_string_value(json_array_get(providers, 2)), "replicate");
        }
    }
    assert_true(saw_seedance);
    /* Once per entry, aliases included. */
    assert_int_equal(calls, (int)(c->n_models + c->n_aliases));
    json_decref(data);

    calls = 0;
    data = vg_models_legacy_json(c, local_only, &calls);
    json_array_foreach(json_object_get(data, "models"), i, m) {
        const char *name = json_string_value(json_object_get(m, "model_name"));
        const vg_model *model = vg_catalog_find(c, name);
        assert_non_null(model);
        assert_int_equal(json_array_size(json_object_get(m, "providers")),
                         model->n_routes);
        assert_int_equal(json_is_true(json_object_get(m, "available")),
                         strcmp(model->provider, "local") == 0);
    }
    assert_int_equal(calls, (int)(c->n_models + c->n_aliases));
    json_decref(data);
    vg_catalog_free(c);
}

/* ---- parsers and names ----------------------------------------------- */

static void test_resolution_parsing(void **state)
{
    (void)state;
    vg_resolution r;
    assert_int_equal(vg_resolution_parse("480P", &r), 0);
    assert_int_equal(r, VG_RES_480P);
    assert_int_equal(vg_resolution_parse("720p", &r), 0);
    assert_int_equal(r, VG_RES_720P);
    assert_int_equal(vg_resolution_parse("1080P", &r), 0);
    assert_int_equal(r, VG_RES_1080P);
    assert_int_equal(vg_resolution_parse("1080", &r), -1);
    assert_int_equal(vg_resolution_parse("4K", &r), -1);
    assert_int_equal(vg_resolution_parse("", &r), -1);
    assert_int_equal(vg_resolution_parse(" 720P", &r), -1);
    assert_int_equal(vg_resolution_parse(NULL, &r), -1);
    assert_string_equal(vg_resolution_name(VG_RES_480P), "480P");
    assert_string_equal(vg_resolution_name(VG_RES_720P), "720P");
    assert_string_equal(vg_resolution_name(VG_RES_1080P), "1080P");
}

static void test_aspect_parsing(void **state)
{
    (void)state;
    static const char *names[VG_AR_COUNT] = {"16:9", "9:16", "1:1",
                                             "4:3",  "3:4",  "21:9"};
    vg_aspect a;
    for (int i = 0; i < VG_AR_COUNT; i++) {
        assert_int_equal(vg_aspect_parse(names[i], &a), 0);
        assert_int_equal(a, i);
        assert_string_equal(vg_aspect_name((vg_aspect)i), names[i]);
    }
    assert_int_equal(vg_aspect_parse("landscape", &a), 0);
    assert_int_equal(a, VG_AR_16_9);
    assert_int_equal(vg_aspect_parse("Portrait", &a), 0);
    assert_int_equal(a, VG_AR_9_16);
    assert_int_equal(vg_aspect_parse("SQUARE", &a), 0);
    assert_int_equal(a, VG_AR_1_1);
    assert_int_equal(vg_aspect_parse("16/9", &a), -1);
    assert_int_equal(vg_aspect_parse("2:1", &a), -1);
    assert_int_equal(vg_aspect_parse("", &a), -1);
    assert_int_equal(vg_aspect_parse(NULL, &a), -1);
}

/* ---- frame sizes ----------------------------------------------------- */

static void test_frame_size_table(void **state)
{
    (void)state;
    /* clang-format off */
    static const int expected[VG_RES_COUNT][VG_AR_COUNT][2] = {
        {{854, 480}, {480, 854}, {480, 480}, {640, 480}, {480, 640},
         {1120, 480}},
        {{1280, 720}, {720, 1280}, {720, 720}, {960, 720}, {720, 960},
         {1680, 720}},
        {{1920, 1080}, {1080, 1920}, {1080, 1080}, {1440, 1080},
         {1080, 1440}, {2520, 1080}},
    };
    /* clang-format on */
    static const int short_side[VG_RES_COUNT] = {480, 720, 1080};
    /* Long side over short side, per aspect ratio, in numerator and
     * denominator: landscape and portrait alike. */
    static const int ratio[VG_AR_COUNT][2] = {{16, 9}, {16, 9}, {1, 1},
                                              {4, 3},  {4, 3},  {21, 9}};
    for (int r = 0; r < VG_RES_COUNT; r++) {
        for (int a = 0; a < VG_AR_COUNT; a++) {
            int w = 0, h = 0;
            vg_frame_size((vg_resolution)r, (vg_aspect)a, &w, &h);
            assert_int_equal(w, expected[r][a][0]);
            assert_int_equal(h, expected[r][a][1]);
            assert_int_equal(w % 2, 0);
            assert_int_equal(h % 2, 0);
            int lo = w < h ? w : h, hi = w < h ? h : w;
            assert_int_equal(lo, short_side[r]);
            /* The long side is the exact ratio, rounded to even. */
            int exact2 = lo * ratio[a][0] * 2 / ratio[a][1];
            assert_true(hi * 2 - exact2 <= 2 && exact2 - hi * 2 <= 2);
            bool portrait = a == VG_AR_9_16 || a == VG_AR_3_4;
            if (a != VG_AR_1_1)
                assert_int_equal(h > w, portrait);
        }
    }
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_default_catalog_has_the_local_model),
        T(test_default_catalog_aliases_local),
        T(test_default_catalog_has_oneinfer_names),
        T(test_alias_modality_is_checked),
        T(test_pricing_json),
        T(test_model_defaults),
        T(test_model_settings_are_read),
        T(test_alias_points_at_its_model),
        T(test_models_must_be_a_non_empty_array),
        T(test_model_must_be_an_object),
        T(test_model_needs_a_valid_name),
        T(test_duplicate_names_are_an_error),
        T(test_duplicate_model_and_alias_name_is_an_error),
        T(test_alias_to_unknown_model_is_an_error),
        T(test_alias_chain_is_an_error),
        T(test_alias_loop_is_an_error),
        T(test_alias_with_model_settings_is_an_error),
        T(test_only_aliases_is_an_error),
        T(test_unknown_model_key_is_an_error),
        T(test_missing_provider_is_an_error),
        T(test_bad_modalities_are_an_error),
        T(test_bad_resolutions_are_an_error),
        T(test_bad_aspect_ratios_are_an_error),
        T(test_duration_below_4_is_an_error),
        T(test_duration_above_12_is_an_error),
        T(test_duration_range_upside_down_is_an_error),
        T(test_fractional_duration_is_an_error),
        T(test_fps_0_is_an_error),
        T(test_fps_61_is_an_error),
        T(test_audio_must_be_boolean),
        T(test_price_missing_for_listed_resolution_is_an_error),
        T(test_price_with_more_than_3_decimals_is_an_error),
        T(test_negative_price_is_an_error),
        T(test_price_as_string_is_an_error),
        T(test_price_unknown_key_is_an_error),
        T(test_zero_factor_is_an_error),
        T(test_missing_price_is_an_error),
        T(test_catalog_json_lists_every_capability),
        T(test_catalog_json_lists_aliases_as_entries),
        T(test_legacy_json_has_model_name_and_description),
        T(test_single_provider_is_one_route),
        T(test_providers_are_routes_in_order),
        T(test_eight_routes_are_the_most),
        T(test_provider_and_providers_together_is_an_error),
        T(test_provider_model_with_providers_is_an_error),
        T(test_providers_must_be_a_non_empty_array),
        T(test_route_needs_a_provider_name),
        T(test_route_needs_a_model),
        T(test_route_unknown_key_is_an_error),
        T(test_route_i2v_model_must_be_a_string),
        T(test_route_i2v_model_on_t2v_only_model_is_an_error),
        T(test_route_provider_twice_is_an_error),
        T(test_durations_by_resolution_are_read),
        T(test_durations_by_resolution_errors),
        T(test_durations_by_resolution_in_json),
        T(test_every_shipped_model_has_valid_routes),
        T(test_shipped_seedance_limits_and_routes),
        T(test_shipped_veo_limits_and_routes),
        T(test_shipped_novita_only_models),
        T(test_catalog_json_has_providers_and_available),
        T(test_resolution_parsing),
        T(test_aspect_parsing),
        T(test_frame_size_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
