/*
 * test_ratelimit.c - requests per minute per key (core/ratelimit.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ratelimit.h"

static void test_a_key_may_burst_its_minute_then_waits(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    for (int i = 0; i < 60; i++)
        assert_int_equal(vg_ratelimit_take(rl, "key-a", 60, 1000), 0);
    /* 60 a minute is one a second: the next token is a second away. */
    assert_int_equal(vg_ratelimit_take(rl, "key-a", 60, 1000), 1);
    assert_int_equal(vg_ratelimit_take(rl, "key-a", 60, 1500), 1);
    assert_int_equal(vg_ratelimit_take(rl, "key-a", 60, 2001), 0);
    assert_int_equal(vg_ratelimit_take(rl, "key-a", 60, 2001), 1);
    vg_ratelimit_free(rl);
}

static void test_keys_have_their_own_buckets(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    assert_int_equal(vg_ratelimit_take(rl, "key-a", 1, 0), 0);
    assert_true(vg_ratelimit_take(rl, "key-a", 1, 0) > 0);
    assert_int_equal(vg_ratelimit_take(rl, "key-b", 1, 0), 0);
    vg_ratelimit_free(rl);
}

static void test_retry_after_says_when_a_token_is_back(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    /* 2 a minute: a token every 30 s. */
    assert_int_equal(vg_ratelimit_take(rl, "k", 2, 0), 0);
    assert_int_equal(vg_ratelimit_take(rl, "k", 2, 0), 0);
    assert_int_equal(vg_ratelimit_take(rl, "k", 2, 0), 30);
    assert_int_equal(vg_ratelimit_take(rl, "k", 2, 20000), 11);
    assert_int_equal(vg_ratelimit_take(rl, "k", 2, 30000), 0);
    vg_ratelimit_free(rl);
}

static void test_slow_rates_keep_their_fractions(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    /* 7 a minute, asked every few milliseconds: rounding each small step
     * down must not lose the refill. */
    for (int i = 0; i < 7; i++)
        assert_int_equal(vg_ratelimit_take(rl, "k", 7, 0), 0);
    int granted = 0;
    for (int64_t t = 1; t <= 60000; t += 3)
        granted += vg_ratelimit_take(rl, "k", 7, t) == 0;
    assert_true(granted >= 6 && granted <= 7);
    vg_ratelimit_free(rl);
}

static void test_a_lower_limit_counts_what_was_spent(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    assert_int_equal(vg_ratelimit_take(rl, "k", 100, 0), 0);
    /* The operator lowers the key's limit to 3 a minute: one of them is
     * spent already. */
    assert_int_equal(vg_ratelimit_take(rl, "k", 3, 0), 0);
    assert_int_equal(vg_ratelimit_take(rl, "k", 3, 0), 0);
    assert_true(vg_ratelimit_take(rl, "k", 3, 0) > 0);
    /* Lowered below what was spent: nothing left, and a token back at
     * the new rate. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(vg_ratelimit_take(rl, "j", 100, 0), 0);
    assert_int_equal(vg_ratelimit_take(rl, "j", 2, 0), 30);
    assert_int_equal(vg_ratelimit_take(rl, "j", 2, 30000), 0);
    vg_ratelimit_free(rl);
}

static void test_a_raised_limit_is_there_at_once(void **state)
{
    (void)state;
    vg_ratelimit *rl = vg_ratelimit_new();
    for (int i = 0; i < 3; i++)
        assert_int_equal(vg_ratelimit_take(rl, "k", 3, 0), 0);
    assert_true(vg_ratelimit_take(rl, "k", 3, 0) > 0);
    /* Raised to 600 a minute a moment later: the three spent count,
     * the other 597 are there. */
    for (int i = 0; i < 597; i++)
        assert_int_equal(vg_ratelimit_take(rl, "k", 600, 10), 0);
    assert_int_equal(vg_ratelimit_take(rl, "k", 600, 10), 1);
    vg_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_key_may_burst_its_minute_then_waits),
        cmocka_unit_test(test_keys_have_their_own_buckets),
        cmocka_unit_test(test_retry_after_says_when_a_token_is_back),
        cmocka_unit_test(test_slow_rates_keep_their_fractions),
        cmocka_unit_test(test_a_lower_limit_counts_what_was_spent),
        cmocka_unit_test(test_a_raised_limit_is_there_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
