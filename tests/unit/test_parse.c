/*
 * test_parse.c - the strict text parsers (src/util/parse.c): what each one
 * accepts, and that every near miss is refused rather than guessed at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/parse.h"

static void test_int64_accepts_decimal_integers(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(vg_parse_int64("5", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(vg_parse_int64("-1", &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(vg_parse_int64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(vg_parse_int64("4294967295", &v), 0);
    assert_int_equal(v, 4294967295LL);
    assert_int_equal(vg_parse_int64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(vg_parse_int64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
}

static void test_int64_refuses_everything_else(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "-",
        "5x",
        " 5",
        "5 ",
        "+5",
        "5.0",
        "0x10",
        "1e3",
        "--1",
        "5-",
        "five",
        "9223372036854775808",
        "-9223372036854775809",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 42;
        if (vg_parse_int64(bad[i], &v) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(v, 42);
    }
    int64_t v;
    assert_int_equal(vg_parse_int64(NULL, &v), -1);
}

static void test_bool_accepts_true_and_false_any_case(void **state)
{
    (void)state;
    bool b = false;
    assert_int_equal(vg_parse_bool("true", &b), 0);
    assert_true(b);
    assert_int_equal(vg_parse_bool("false", &b), 0);
    assert_false(b);
    assert_int_equal(vg_parse_bool("TRUE", &b), 0);
    assert_true(b);
    assert_int_equal(vg_parse_bool("False", &b), 0);
    assert_false(b);
}

static void test_bool_refuses_everything_else(void **state)
{
    (void)state;
    static const char *bad[] = {"yes", "no", "1",     "0",     "",
                                "on",  "t",  " true", "true ", "truex"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool b = false;
        if (vg_parse_bool(bad[i], &b) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    bool b;
    assert_int_equal(vg_parse_bool(NULL, &b), -1);
}

static void test_credits_are_read_into_thousandths(void **state)
{
    (void)state;
    int64_t m = 0;
    assert_int_equal(vg_parse_credits("12", &m), 0);
    assert_int_equal(m, 12000);
    assert_int_equal(vg_parse_credits("0.5", &m), 0);
    assert_int_equal(m, 500);
    assert_int_equal(vg_parse_credits("1.125", &m), 0);
    assert_int_equal(m, 1125);
    assert_int_equal(vg_parse_credits("0.001", &m), 0);
    assert_int_equal(m, 1);
    assert_int_equal(vg_parse_credits("0", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(vg_parse_credits("100.000", &m), 0);
    assert_int_equal(m, 100000);
}

static void test_credits_refuse_more_than_3_decimals(void **state)
{
    (void)state;
    int64_t m;
    assert_int_equal(vg_parse_credits("0.0001", &m), -1);
    assert_int_equal(vg_parse_credits("1.1250", &m), -1);
}

static void test_credits_refuse_malformed_text(void **state)
{
    (void)state;
    static const char *bad[] = {"",   "-1", "1.",  ".5",  "1,5",  " 1",
                                "1 ", "+1", "1e3", "abc", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t m;
        if (vg_parse_credits(bad[i], &m) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    int64_t m;
    assert_int_equal(vg_parse_credits(NULL, &m), -1);
}

static void test_credits_refuse_amounts_that_overflow(void **state)
{
    (void)state;
    int64_t m;
    assert_int_equal(vg_parse_credits("9223372036854775.807", &m), -1);
    assert_int_equal(vg_parse_credits("9223372036854775.999", &m), -1);
    assert_int_equal(vg_parse_credits("99999999999999999999", &m), -1);
    /* The largest amounts accepted still fit, with no overflow. */
    assert_int_equal(vg_parse_credits("9223372036854769.999", &m), 0);
    assert_true(m == INT64_C(9223372036854769999));
}

static void test_credits_to_double(void **state)
{
    (void)state;
    assert_true(vg_credits_to_double(12500) == 12.5);
    assert_true(vg_credits_to_double(0) == 0.0);
    assert_true(vg_credits_to_double(1) == 0.001);
    assert_true(vg_credits_to_double(150750) == 150.75);
}

static void test_utf8_accepts_well_formed_text(void **state)
{
    (void)state;
    static const char *good[] = {
        "",
        "plain ascii",
        "caf\xc3\xa9",      /* 2 bytes */
        "\xe2\x82\xac",     /* euro sign, 3 bytes */
        "\xf0\x9f\x90\xb1", /* cat face, 4 bytes */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
        "\xed\x9f\xbf",     /* U+D7FF, just below surrogates */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!vg_utf8_valid(good[i], strlen(good[i])))
            fail_msg("good[%zu] refused", i);
}

static void test_utf8_refuses_malformed_text(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xff",                 /* never valid */
        "\x80",                 /* continuation without a lead */
        "\xc3",                 /* truncated 2-byte */
        "\xe2\x82",             /* truncated 3-byte */
        "\xf0\x9f\x90",         /* truncated 4-byte */
        "\xc0\x80",             /* overlong NUL */
        "\xc1\xbf",             /* overlong 2-byte */
        "\xe0\x80\x80",         /* overlong 3-byte */
        "\xf0\x80\x80\x80",     /* overlong 4-byte */
        "\xed\xa0\x80",         /* surrogate U+D800 */
        "\xed\xbf\xbf",         /* surrogate U+DFFF */
        "\xf4\x90\x80\x80",     /* U+110000, beyond Unicode */
        "\xf8\x88\x80\x80\x80", /* 5-byte form */
        "a\xc3(b",              /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (vg_utf8_valid(bad[i], strlen(bad[i])))
            fail_msg("bad[%zu] accepted", i);
}

static void test_utf8_refuses_nul(void **state)
{
    (void)state;
    assert_false(vg_utf8_valid("a\0b", 3));
}

static void test_utf8_checks_only_len_bytes(void **state)
{
    (void)state;
    /* The cut falls inside a character: what is inside len is invalid. */
    assert_false(vg_utf8_valid("caf\xc3\xa9", 4));
    assert_true(vg_utf8_valid("abc\xff", 3));
}

static void test_utf8_length_counts_code_points(void **state)
{
    (void)state;
    assert_int_equal(vg_utf8_length("", 0), 0);
    assert_int_equal(vg_utf8_length("abc", 3), 3);
    assert_int_equal(vg_utf8_length("caf\xc3\xa9", 5), 4);
    assert_int_equal(vg_utf8_length("\xf0\x9f\x90\xb1\xe2\x82\xac", 7), 2);
}

static vg_prefer prefer(const char *value)
{
    vg_prefer p = {false, -1};
    vg_parse_prefer(value, &p);
    return p;
}

static void test_prefer_reads_respond_async_and_wait(void **state)
{
    (void)state;
    vg_prefer p = prefer("respond-async");
    assert_true(p.respond_async);
    assert_int_equal(p.wait_s, -1);
    p = prefer("wait=10");
    assert_false(p.respond_async);
    assert_int_equal(p.wait_s, 10);
    p = prefer("Respond-Async, WAIT = 5");
    assert_true(p.respond_async);
    assert_int_equal(p.wait_s, 5);
    /* Values may be quoted; parameters after ';' are ignored. */
    assert_int_equal(prefer("wait=\"7\"").wait_s, 7);
    assert_true(prefer("respond-async; foo=bar").respond_async);
    /* Several Prefer headers arrive joined with commas. */
    p = prefer("return=minimal, respond-async ,wait=0");
    assert_true(p.respond_async);
    assert_int_equal(p.wait_s, 0);
}

static void test_prefer_ignores_what_it_does_not_know(void **state)
{
    (void)state;
    vg_prefer p = prefer("handling=lenient, wait=soon, wait=-3, "
                         "respond-asyncx, wait");
    assert_false(p.respond_async);
    assert_int_equal(p.wait_s, -1);
    p = prefer("");
    assert_false(p.respond_async);
    assert_int_equal(prefer("wait=999999999").wait_s, 86400);
    vg_prefer untouched = {false, -1};
    vg_parse_prefer(NULL, &untouched);
    assert_int_equal(untouched.wait_s, -1);
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_int64_accepts_decimal_integers),
        T(test_int64_refuses_everything_else),
        T(test_bool_accepts_true_and_false_any_case),
        T(test_bool_refuses_everything_else),
        T(test_credits_are_read_into_thousandths),
        T(test_credits_refuse_more_than_3_decimals),
        T(test_credits_refuse_malformed_text),
        T(test_credits_refuse_amounts_that_overflow),
        T(test_credits_to_double),
        T(test_utf8_accepts_well_formed_text),
        T(test_utf8_refuses_malformed_text),
        T(test_utf8_refuses_nul),
        T(test_utf8_checks_only_len_bytes),
        T(test_utf8_length_counts_code_points),
        T(test_prefer_reads_respond_async_and_wait),
        T(test_prefer_ignores_what_it_does_not_know),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
