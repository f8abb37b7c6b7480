/*
 * test_http.c - the HTTP layer's pure parts, one test per rule: route
 * matching (router.h) against a small table of this file's own, and the
 * Range header parser (vg_http_parse_range in http.h) that decides between
 * 200, 206 and 416 when a video is served.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "http/http.h"
#include "http/router.h"
#include "util/arena.h"

/* ---- router ------------------------------------------------------------ */

static const vg_route routes[] = {
    {"GET", "/healthz", false, VG_BODY_NONE, NULL, NULL},
    {"POST", "/v1/things", true, VG_BODY_JSON_OR_FORM, NULL, NULL},
    {"GET", "/v1/things/*", true, VG_BODY_NONE, NULL, NULL},
    {"DELETE", "/v1/things/*", true, VG_BODY_NONE, NULL, NULL},
    {"GET", "/v1/users/*/items/*", true, VG_BODY_NONE, NULL, NULL},
    {"GET", "/v1/files/**", false, VG_BODY_NONE, NULL, NULL},
    {NULL, NULL, false, VG_BODY_NONE, NULL, NULL},
};

enum {
    ROUTE_HEALTH,
    ROUTE_CREATE_THING,
    ROUTE_GET_THING,
    ROUTE_DELETE_THING,
    ROUTE_USER_ITEM,
    ROUTE_FILES
};

typedef struct match_result {
    const vg_route *route;
    char *params[4];
    int n_params;
    const char *allowed;
} match_result;

static match_result run_match(vg_arena *arena, const char *method,
                              const char *path)
{
    match_result m;
    memset(&m, 0, sizeof(m));
    m.n_params = -1;
    m.allowed = "(not set)";
    m.route = vg_router_match(routes, method, path, m.params, &m.n_params,
                              arena, &m.allowed);
    return m;
}

/* Asserts that method and path find no route, and that none takes the
 * path with another method either. */
static void assert_no_route(const char *method, const char *path)
{
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, method, path);
    if (m.route != NULL)
        fail_msg("%s %s matched %s %s", method, path, m.route->method,
                 m.route->pattern);
    if (m.allowed != NULL)
        fail_msg("%s %s: allowed is \"%s\", expected NULL", method, path,
                 m.allowed);
    vg_arena_free(&arena);
}

static void test_exact_path_matches_its_route(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "GET", "/healthz");
    assert_ptr_equal(m.route, &routes[ROUTE_HEALTH]);
    assert_int_equal(m.n_params, 0);
    assert_null(m.allowed);

    m = run_match(&arena, "POST", "/v1/things");
    assert_ptr_equal(m.route, &routes[ROUTE_CREATE_THING]);
    assert_int_equal(m.n_params, 0);
    vg_arena_free(&arena);
}

static void test_star_segment_is_captured_into_params(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "GET", "/v1/things/job-42");
    assert_ptr_equal(m.route, &routes[ROUTE_GET_THING]);
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "job-42");

    m = run_match(&arena, "DELETE", "/v1/things/x");
    assert_ptr_equal(m.route, &routes[ROUTE_DELETE_THING]);
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "x");
    vg_arena_free(&arena);
}

static void test_several_star_segments_are_captured_in_order(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "GET", "/v1/users/u-1/items/i-2");
    assert_ptr_equal(m.route, &routes[ROUTE_USER_ITEM]);
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[0], "u-1");
    assert_string_equal(m.params[1], "i-2");
    vg_arena_free(&arena);
}

static void test_double_star_captures_the_rest_of_the_path(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "GET", "/v1/files/clip.mp4");
    assert_ptr_equal(m.route, &routes[ROUTE_FILES]);
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "clip.mp4");

    m = run_match(&arena, "GET", "/v1/files/2024/05/01/clip.mp4");
    assert_ptr_equal(m.route, &routes[ROUTE_FILES]);
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "2024/05/01/clip.mp4");
    vg_arena_free(&arena);
}

static void test_double_star_needs_something_to_capture(void **state)
{
    (void)state;
    assert_no_route("GET", "/v1/files/");
    assert_no_route("GET", "/v1/files");
}

static void test_wrong_method_lists_the_allowed_methods(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "PUT", "/v1/things/x");
    assert_null(m.route);
    assert_non_null(m.allowed);
    assert_string_equal(m.allowed, "GET, HEAD, DELETE");

    m = run_match(&arena, "POST", "/healthz");
    assert_null(m.route);
    assert_string_equal(m.allowed, "GET, HEAD");

    m = run_match(&arena, "GET", "/v1/things");
    assert_null(m.route);
    assert_string_equal(m.allowed, "POST");

    /* HEAD is implied by GET only: a POST-only path refuses it. */
    m = run_match(&arena, "HEAD", "/v1/things");
    assert_null(m.route);
    assert_string_equal(m.allowed, "POST");
    vg_arena_free(&arena);
}

static void test_head_matches_get_routes(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "HEAD", "/healthz");
    assert_ptr_equal(m.route, &routes[ROUTE_HEALTH]);
    assert_null(m.allowed);

    m = run_match(&arena, "HEAD", "/v1/files/a/b.mp4");
    assert_ptr_equal(m.route, &routes[ROUTE_FILES]);
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "a/b.mp4");
    vg_arena_free(&arena);
}

static void test_unknown_path_matches_nothing_and_allows_nothing(
    void **state)
{
    (void)state;
    assert_no_route("GET", "/nope");
    assert_no_route("GET", "/");
    assert_no_route("GET", "");
    assert_no_route("GET", "healthz");
    assert_no_route("GET", "/HEALTHZ");
    assert_no_route("GET", "/healthzz");
    assert_no_route("POST", "/v1/thing");

    /* A 405 answer does not linger into the next lookup. */
    vg_arena arena;
    vg_arena_init(&arena);
    match_result m = run_match(&arena, "PUT", "/healthz");
    assert_non_null(m.allowed);
    m = run_match(&arena, "PUT", "/nope");
    assert_null(m.route);
    assert_null(m.allowed);
    vg_arena_free(&arena);
}

static void test_extra_or_missing_segments_do_not_match(void **state)
{
    (void)state;
    assert_no_route("GET", "/healthz/");
    assert_no_route("GET", "/healthz/extra");
    assert_no_route("GET", "/v1/things/x/y");
    assert_no_route("GET", "/v1/users/u-1/items");
    assert_no_route("GET", "/v1/users/u-1/items/i-2/more");
    assert_no_route("GET", "/v1/users/u-1");
    assert_no_route("GET", "/v1");
    assert_no_route("POST", "/v1/things/");
}

static void test_empty_star_segment_does_not_match(void **state)
{
    (void)state;
    assert_no_route("GET", "/v1/things/");
    assert_no_route("GET", "/v1/users//items/i-2");
    assert_no_route("GET", "/v1/users/u-1/items/");
}

/* ---- Range ------------------------------------------------------------- */

typedef struct range_result {
    int kind;
    int64_t first, last;
} range_result;

static range_result parse_range(const char *header, int64_t size)
{
    range_result r = {0, -7, -7}; /* -7: untouched */
    r.kind = vg_http_parse_range(header, size, &r.first, &r.last);
    return r;
}

static void assert_range(const char *header, int64_t size, int64_t first,
                         int64_t last)
{
    range_result r = parse_range(header, size);
    if (r.kind != 1 || r.first != first || r.last != last)
        fail_msg("\"%s\" on %lld bytes: got kind %d, %lld-%lld; expected "
                 "206 with %lld-%lld",
                 header, (long long)size, r.kind, (long long)r.first,
                 (long long)r.last, (long long)first, (long long)last);
}

static void assert_whole_file(const char *header, int64_t size)
{
    range_result r = parse_range(header, size);
    if (r.kind != 0)
        fail_msg("\"%s\" on %lld bytes: got kind %d, expected 0 (the whole "
                 "file)",
                 header ? header : "(none)", (long long)size, r.kind);
}

static void assert_unsatisfiable(const char *header, int64_t size)
{
    range_result r = parse_range(header, size);
    if (r.kind != -1)
        fail_msg("\"%s\" on %lld bytes: got kind %d, expected -1 (416)",
                 header, (long long)size, r.kind);
}

static void test_range_first_to_last_byte(void **state)
{
    (void)state;
    assert_range("bytes=0-99", 1000, 0, 99);
    assert_range("bytes=500-500", 1000, 500, 500);
    assert_range("bytes=0-999", 1000, 0, 999);
}

static void test_range_open_end_runs_to_the_last_byte(void **state)
{
    (void)state;
    assert_range("bytes=100-", 1000, 100, 999);
    assert_range("bytes=0-", 1000, 0, 999);
    assert_range("bytes=999-", 1000, 999, 999);
}

static void test_range_suffix_is_the_last_n_bytes(void **state)
{
    (void)state;
    assert_range("bytes=-50", 1000, 950, 999);
    assert_range("bytes=-1", 1000, 999, 999);
}

static void test_range_suffix_larger_than_the_file_is_the_whole_file(
    void **state)
{
    (void)state;
    assert_range("bytes=-5000", 1000, 0, 999);
    assert_range("bytes=-1000", 1000, 0, 999);
}

static void test_range_end_past_the_size_is_clamped(void **state)
{
    (void)state;
    assert_range("bytes=0-5000", 1000, 0, 999);
    assert_range("bytes=900-1000", 1000, 900, 999);
    assert_range("bytes=0-99999999999999999999", 1000, 0, 999);
}

static void test_range_starting_at_or_after_the_size_is_unsatisfiable(
    void **state)
{
    (void)state;
    assert_unsatisfiable("bytes=1000-", 1000);
    assert_unsatisfiable("bytes=1000-1999", 1000);
    assert_unsatisfiable("bytes=5000-6000", 1000);
}

static void test_range_empty_suffix_is_unsatisfiable(void **state)
{
    (void)state;
    assert_unsatisfiable("bytes=-0", 1000);
}

static void test_range_several_ranges_answer_the_whole_file(void **state)
{
    (void)state;
    assert_whole_file("bytes=0-1,5-6", 1000);
    assert_whole_file("bytes=0-99, 200-299", 1000);
    assert_whole_file("bytes=-5,0-1", 1000);
}

static void test_range_malformed_spec_answers_the_whole_file(void **state)
{
    (void)state;
    assert_whole_file(NULL, 1000);
    assert_whole_file("", 1000);
    assert_whole_file("bytes=a-b", 1000);
    assert_whole_file("bytes=0-b", 1000);
    assert_whole_file("items=0-1", 1000);
    assert_whole_file("bytes=5-2", 1000);
    assert_whole_file("bytes=", 1000);
    assert_whole_file("bytes=-", 1000);
    assert_whole_file("bytes=10", 1000);
    assert_whole_file("bytes=--5", 1000);
    assert_whole_file("bytes=+1-2", 1000);
    assert_whole_file("bytes= 0-1", 1000);
    assert_whole_file("bytes=0-1x", 1000);
}

static void test_range_leaves_first_and_last_alone_unless_one_range(
    void **state)
{
    (void)state;
    range_result r = parse_range("bytes=5-2", 1000);
    assert_int_equal(r.kind, 0);
    assert_int_equal(r.first, -7);
    assert_int_equal(r.last, -7);
    r = parse_range(NULL, 1000);
    assert_int_equal(r.first, -7);
    assert_int_equal(r.last, -7);
}

static void test_range_on_an_empty_file(void **state)
{
    (void)state;
    /* No byte of an empty file can be addressed. */
    assert_unsatisfiable("bytes=0-", 0);
    assert_unsatisfiable("bytes=0-10", 0);
    assert_unsatisfiable("bytes=-5", 0);
    /* Without a (valid) Range header it is served whole, all 0 bytes. */
    assert_whole_file(NULL, 0);
    assert_whole_file("bytes=a-b", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_path_matches_its_route),
        cmocka_unit_test(test_star_segment_is_captured_into_params),
        cmocka_unit_test(test_several_star_segments_are_captured_in_order),
        cmocka_unit_test(test_double_star_captures_the_rest_of_the_path),
        cmocka_unit_test(test_double_star_needs_something_to_capture),
        cmocka_unit_test(test_wrong_method_lists_the_allowed_methods),
        cmocka_unit_test(test_head_matches_get_routes),
        cmocka_unit_test(
            test_unknown_path_matches_nothing_and_allows_nothing),
        cmocka_unit_test(test_extra_or_missing_segments_do_not_match),
        cmocka_unit_test(test_empty_star_segment_does_not_match),
        cmocka_unit_test(test_range_first_to_last_byte),
        cmocka_unit_test(test_range_open_end_runs_to_the_last_byte),
        cmocka_unit_test(test_range_suffix_is_the_last_n_bytes),
        cmocka_unit_test(
            test_range_suffix_larger_than_the_file_is_the_whole_file),
        cmocka_unit_test(test_range_end_past_the_size_is_clamped),
        cmocka_unit_test(
            test_range_starting_at_or_after_the_size_is_unsatisfiable),
        cmocka_unit_test(test_range_empty_suffix_is_unsatisfiable),
        cmocka_unit_test(test_range_several_ranges_answer_the_whole_file),
        cmocka_unit_test(test_range_malformed_spec_answers_the_whole_file),
        cmocka_unit_test(
            test_range_leaves_first_and_last_alone_unless_one_range),
        cmocka_unit_test(test_range_on_an_empty_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
