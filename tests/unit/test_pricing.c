/*
 * test_pricing.c - exact prices in thousandths of a credit: per-second
 * price times duration, then the audio and flex factors, each rounding up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/catalog.h"
#include "core/pricing.h"

static vg_catalog *catalog;
static const vg_model *local;

static int setup(void **state)
{
    (void)state;
    catalog = vg_catalog_default();
    local = vg_catalog_find(catalog, "vidgate-local");
    return local == NULL;
}

static int teardown(void **state)
{
    (void)state;
    vg_catalog_free(catalog);
    return 0;
}

/* A model with hand-picked prices and factors, to exercise rounding. */
static vg_model model_with(int64_t per_second, int64_t audio, int64_t flex)
{
    vg_model m;
    memset(&m, 0, sizeof(m));
    for (int r = 0; r < VG_RES_COUNT; r++)
        m.price_per_second[r] = per_second;
    m.audio_factor = audio;
    m.flex_factor = flex;
    return m;
}

static void test_price_is_per_second_times_duration(void **state)
{
    (void)state;
    assert_int_equal(vg_price(local, VG_RES_480P, 5, false, VG_TIER_DEFAULT),
                     5000);
    assert_int_equal(vg_price(local, VG_RES_720P, 5, false, VG_TIER_DEFAULT),
                     10000);
    assert_int_equal(vg_price(local, VG_RES_1080P, 12, false, VG_TIER_DEFAULT),
                     48000);
    assert_int_equal(vg_price(local, VG_RES_480P, 4, false, VG_TIER_DEFAULT),
                     4000);
}

static void test_audio_multiplies_by_audio_factor(void **state)
{
    (void)state;
    assert_int_equal(vg_price(local, VG_RES_1080P, 5, true, VG_TIER_DEFAULT),
                     30000);
    assert_int_equal(vg_price(local, VG_RES_720P, 7, true, VG_TIER_DEFAULT),
                     21000);
}

static void test_flex_multiplies_by_flex_factor(void **state)
{
    (void)state;
    assert_int_equal(vg_price(local, VG_RES_720P, 5, false, VG_TIER_FLEX),
                     5000);
    assert_int_equal(vg_price(local, VG_RES_1080P, 12, false, VG_TIER_FLEX),
                     24000);
}

static void test_audio_and_flex_combine(void **state)
{
    (void)state;
    /* 1 credit/s * 5 s = 5, * 1.5 = 7.5, * 0.5 = 3.75 credits. */
    assert_int_equal(vg_price(local, VG_RES_480P, 5, true, VG_TIER_FLEX),
                     3750);
}

static void test_each_factor_rounds_up(void **state)
{
    (void)state;
    /* 0.001 credit/s * 5 s = 5; * 1.5 = 7.5 -> 8; * 0.5 = 4. */
    vg_model m = model_with(1, 1500, 500);
    assert_int_equal(vg_price(&m, VG_RES_480P, 5, true, VG_TIER_DEFAULT), 8);
    assert_int_equal(vg_price(&m, VG_RES_480P, 5, true, VG_TIER_FLEX), 4);
    /* 5 * 0.5 = 2.5 -> 3 without audio. */
    assert_int_equal(vg_price(&m, VG_RES_480P, 5, false, VG_TIER_FLEX), 3);
    /* 15 * 1.333 = 19.995 -> 20; * 0.333 = 6.66 -> 7. */
    vg_model odd = model_with(3, 1333, 333);
    assert_int_equal(vg_price(&odd, VG_RES_720P, 5, true, VG_TIER_DEFAULT),
                     20);
    assert_int_equal(vg_price(&odd, VG_RES_720P, 5, true, VG_TIER_FLEX), 7);
}

static void test_exact_products_are_not_rounded(void **state)
{
    (void)state;
    /* 4 * 0.25 = exactly 1: rounding up must not add a thousandth. */
    vg_model m = model_with(1, 1000, 250);
    assert_int_equal(vg_price(&m, VG_RES_480P, 4, false, VG_TIER_FLEX), 1);
    /* A factor of 1 changes nothing. */
    assert_int_equal(vg_price(&m, VG_RES_480P, 7, true, VG_TIER_DEFAULT), 7);
}

static void test_free_model_costs_nothing(void **state)
{
    (void)state;
    vg_model m = model_with(0, 1500, 500);
    assert_int_equal(vg_price(&m, VG_RES_1080P, 12, true, VG_TIER_FLEX), 0);
}

static void test_large_prices_do_not_overflow(void **state)
{
    (void)state;
    /* 10^12 credits a second: the product needs the split multiply. */
    vg_model m = model_with(INT64_C(1000000000000000), 1500, 500);
    assert_int_equal(vg_price(&m, VG_RES_480P, 12, true, VG_TIER_FLEX),
                     INT64_C(9000000000000000));
}

static void test_overflow_saturates_to_unaffordable(void **state)
{
    (void)state;
    vg_model m = model_with(INT64_MAX / 4, 1000, 1000);
    assert_true(vg_price(&m, VG_RES_480P, 12, false, VG_TIER_DEFAULT) ==
                INT64_MAX);
    m = model_with(INT64_MAX / 12, 2000, 1000);
    assert_true(vg_price(&m, VG_RES_480P, 12, true, VG_TIER_DEFAULT) ==
                INT64_MAX);
}

static void test_price_request_uses_the_request_fields(void **state)
{
    (void)state;
    vg_video_request req;
    memset(&req, 0, sizeof(req));
    req.model = local;
    req.resolution = VG_RES_720P;
    req.duration = 6;
    req.generate_audio = true;
    req.tier = VG_TIER_FLEX;
    /* 2 * 6 = 12, * 1.5 = 18, * 0.5 = 9 credits. */
    assert_int_equal(vg_price_request(&req), 9000);
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_price_is_per_second_times_duration),
        T(test_audio_multiplies_by_audio_factor),
        T(test_flex_multiplies_by_flex_factor),
        T(test_audio_and_flex_combine),
        T(test_each_factor_rounds_up),
        T(test_exact_products_are_not_rounded),
        T(test_free_model_costs_nothing),
        T(test_large_prices_do_not_overflow),
        T(test_overflow_saturates_to_unaffordable),
        T(test_price_request_uses_the_request_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
