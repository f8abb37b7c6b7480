/*
 * test_util.c - the contracts of src/util: the per-request arena
 * (arena.h), the crypto primitives (crypto.h) and the access log line
 * (log.h), one test per rule.
 *
 * The crypto tests check published test vectors rather than round trips,
 * so a wrapper that hashed the wrong bytes could not pass by agreeing with
 * itself. The access log test reads the line back from a file standing in
 * for standard error and parses it as JSON, as an operator's pipeline
 * would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/arena.h"
#include "util/crypto.h"
#include "util/dirs.h"
#include "util/heap.h"
#include "util/table.h"
#include "util/log.h"
#include "util/shared.h"
#include "test_support.h"

/* ---- helpers ----------------------------------------------------------- */

static void assert_aligned(const void *p)
{
    assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
}

static void assert_all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            fail_msg("byte %zu of %zu is 0x%02x, not zero", i, n, p[i]);
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- arena ------------------------------------------------------------- */

/* Thousands of allocations span many blocks; each keeps its own bytes. */
static void test_arena_allocations_never_overlap_across_blocks(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    static unsigned char *ptrs[COUNT];
    static size_t sizes[COUNT];
    vg_arena arena;
    vg_arena_init(&arena);
    for (size_t i = 0; i < COUNT; i++) {
        sizes[i] = 1 + (i * 37) % 200;
        ptrs[i] = vg_arena_alloc(&arena, sizes[i]);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < COUNT; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            if (ptrs[i][j] != (unsigned char)(i & 0xff))
                fail_msg("allocation %zu was overwritten at byte %zu", i, j);
    vg_arena_free(&arena);
}

static void test_arena_memory_is_zeroed(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    /* Reuse memory the allocator has seen dirty: fill an arena, free it,
     * then allocate again. */
    for (int round = 0; round < 2; round++) {
        for (size_t size = 1; size < 3000; size += 97) {
            unsigned char *p = vg_arena_alloc(&arena, size);
            assert_all_zero(p, size);
            memset(p, 0xa5, size);
        }
        vg_arena_free(&arena);
    }
}

static void test_arena_pointers_are_aligned_for_any_type(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    for (int i = 0; i < 3000; i++) {
        size_t size = (size_t)(i % 67);
        void *p = vg_arena_alloc(&arena, size);
        assert_aligned(p);
    }
    assert_aligned(vg_arena_strdup(&arena, "abc"));
    assert_aligned(vg_arena_strndup(&arena, "abcdef", 3));
    assert_aligned(vg_arena_sprintf(&arena, "%d", 7));
    vg_arena_free(&arena);
}

static void test_arena_strdup_copies_the_string(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    char src[] = "a cat on a skateboard";
    char *copy = vg_arena_strdup(&arena, src);
    assert_string_equal(copy, "a cat on a skateboard");
    assert_ptr_not_equal(copy, src);
    src[0] = 'A';
    assert_string_equal(copy, "a cat on a skateboard");
    assert_string_equal(vg_arena_strdup(&arena, ""), "");
    vg_arena_free(&arena);
}

static void test_arena_strndup_stops_at_n_and_terminates(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    assert_string_equal(vg_arena_strndup(&arena, "segment/rest", 7),
                        "segment");
    /* Only n bytes are read: the source need not be terminated. */
    const char unterminated[4] = {'a', 'b', 'c', 'd'};
    assert_string_equal(vg_arena_strndup(&arena, unterminated, 4), "abcd");
    assert_string_equal(vg_arena_strndup(&arena, "abc", 0), "");
    vg_arena_free(&arena);
}

static void test_arena_sprintf_formats_even_beyond_a_block(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    assert_string_equal(vg_arena_sprintf(&arena, "%s-%d-%05.1f", "job", 42,
                                         3.5),
                        "job-42-003.5");
    /* Longer than one block (8 KiB): still complete. */
    size_t n = 20000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    char *s = vg_arena_sprintf(&arena, "<%s>", big);
    assert_int_equal(strlen(s), n + 2);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[n + 1], '>');
    assert_int_equal(s[n], 'x');
    free(big);
    vg_arena_free(&arena);
}

static void test_arena_allocation_larger_than_a_block_works(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    unsigned char *small = vg_arena_alloc(&arena, 16);
    memset(small, 0x11, 16);
    size_t big_size = 100000;
    unsigned char *big = vg_arena_alloc(&arena, big_size);
    assert_aligned(big);
    assert_all_zero(big, big_size);
    memset(big, 0x22, big_size);
    unsigned char *after = vg_arena_alloc(&arena, 16);
    assert_aligned(after);
    assert_all_zero(after, 16);
    memset(after, 0x33, 16);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(small[i], 0x11);
    for (size_t i = 0; i < big_size; i++)
        if (big[i] != 0x22)
            fail_msg("big allocation overwritten at byte %zu", i);
    vg_arena_free(&arena);
}

static void test_arena_free_leaves_it_reusable(void **state)
{
    (void)state;
    vg_arena arena;
    vg_arena_init(&arena);
    vg_arena_free(&arena); /* an empty arena frees fine */
    vg_arena_strdup(&arena, "first life");
    vg_arena_free(&arena);
    assert_null(arena.head);
    assert_string_equal(vg_arena_strdup(&arena, "second life"),
                        "second life");
    vg_arena_free(&arena);
}

/* ---- crypto ------------------------------------------------------------ */

static void test_sha256_hex_matches_known_digests(void **state)
{
    (void)state;
    char out[65];
    vg_sha256_hex("abc", out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad");
    vg_sha256_hex("", out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
}

/* RFC 4231, test case 2. */
static void test_hmac_sha256_hex_matches_rfc4231(void **state)
{
    (void)state;
    char out[65];
    const char *key = "Jefe";
    const char *data = "what do ya want for nothing?";
    vg_hmac_sha256_hex(key, strlen(key), data, strlen(data), out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c7"
                             "5a003f089d2739839dec58b964ec3843");
}

static void test_hex_encode_is_lowercase_two_digits_per_byte(void **state)
{
    (void)state;
    const unsigned char bytes[] = {0x00, 0x0f, 0xa0, 0xff, 0x5c};
    char out[11];
    vg_hex_encode(bytes, sizeof(bytes), out);
    assert_string_equal(out, "000fa0ff5c");
    vg_hex_encode(bytes, 0, out);
    assert_string_equal(out, "");
}

static void test_uuid_v4_has_the_rfc4122_format(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        char id[37];
        memset(id, '?', sizeof(id));
        vg_uuid_v4(id);
        assert_int_equal(strlen(id), 36);
        for (int j = 0; j < 36; j++) {
            if (j == 8 || j == 13 || j == 18 || j == 23)
                assert_int_equal(id[j], '-');
            else if (!is_lower_hex(id[j]))
                fail_msg("%s: character %d is not lower-case hex", id, j);
        }
        assert_int_equal(id[14], '4'); /* version 4 */
        assert_non_null(strchr("89ab", id[19])); /* RFC 4122 variant */
    }
}

static void test_uuid_v4_is_unique(void **state)
{
    (void)state;
    enum { COUNT = 1000 };
    static char ids[COUNT][37];
    static char *sorted[COUNT];
    for (int i = 0; i < COUNT; i++) {
        vg_uuid_v4(ids[i]);
        sorted[i] = ids[i];
    }
    qsort(sorted, COUNT, sizeof(sorted[0]), compare_strings);
    for (int i = 1; i < COUNT; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            fail_msg("uuid %s generated twice", sorted[i]);
}

static void test_uuid_v7_is_time_ordered_and_unique(void **state)
{
    (void)state;
    enum { COUNT = 1000 };
    static char ids[COUNT][37];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long before = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (int i = 0; i < COUNT; i++) {
        vg_uuid_v7(ids[i]);
        assert_int_equal(strlen(ids[i]), 36);
        assert_int_equal(ids[i][14], '7'); /* version 7 */
        assert_non_null(strchr("89ab", ids[i][19]));
        if (i > 0 && strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("uuid %s generated twice", ids[i]);
        /* Later ids never sort before earlier milliseconds. */
        if (i > 0)
            assert_true(strncmp(ids[i - 1], ids[i], 13) <= 0);
    }
    /* The first 48 bits are the Unix time in milliseconds. */
    char hex[13];
    memcpy(hex, ids[0], 8);
    memcpy(hex + 8, ids[0] + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms < before + 5000);
}

static void test_new_api_key_is_vg_and_43_base64url_chars(void **state)
{
    (void)state;
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz0123456789_-";
    char previous[48] = "";
    for (int i = 0; i < 200; i++) {
        char key[48];
        memset(key, '?', sizeof(key));
        vg_new_api_key(key);
        assert_int_equal(strlen(key), 3 + 43);
        assert_memory_equal(key, "vg_", 3);
        for (int j = 3; j < 46; j++)
            if (strchr(alphabet, key[j]) == NULL)
                fail_msg("%s: character %d is not base64url", key, j);
        assert_string_not_equal(key, previous);
        memcpy(previous, key, sizeof(previous));
    }
}

static void test_secure_equal_is_true_only_for_identical_strings(void **state)
{
    (void)state;
    assert_true(vg_secure_equal("abc123", "abc123"));
    assert_true(vg_secure_equal("", ""));
    assert_false(vg_secure_equal("abc123", "abc124"));
    assert_false(vg_secure_equal("abc123", "Abc123"));
    assert_false(vg_secure_equal("abc", "abc123")); /* a prefix */
    assert_false(vg_secure_equal("abc123", "abc"));
    assert_false(vg_secure_equal("", "a"));
}

static void test_random_bytes_fill_the_buffer(void **state)
{
    (void)state;
    unsigned char a[64], b[64];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(vg_random_bytes(a, sizeof(a)), 0);
    assert_int_equal(vg_random_bytes(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_true(vg_random_u64() != vg_random_u64() ||
                vg_random_u64() != vg_random_u64());
}

/* ---- access log -------------------------------------------------------- */

/* Runs vg_log_access with standard error sent to a file; returns the
 * text written (malloc'd). */
static char *capture_access_line(const vg_access_entry *entry)
{
    static int counter;
    char path[600];
    snprintf(path, sizeof(path), "%s/vg-util-%d-%d.log", vg_test_tmp_dir(),
             (int)getpid(), counter++);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    vg_log_access(entry);
    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);

    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size > 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    unlink(path);
    return text;
}

/* Parses the one line in text; fails unless it is exactly one JSON
 * object ended by a newline. */
static json_t *parse_line(const char *text)
{
    size_t len = strlen(text);
    assert_true(len > 1);
    assert_int_equal(text[len - 1], '\n');
    assert_null(memchr(text, '\n', len - 1));
    json_error_t jerr;
    json_t *line = json_loadb(text, len - 1, 0, &jerr);
    if (line == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    assert_true(json_is_object(line));
    return line;
}

static void assert_timestamp(const char *ts)
{
    /* 2024-05-01T12:34:56.789Z */
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_int_equal(strlen(ts), strlen(shape));
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd') {
            if (ts[i] < '0' || ts[i] > '9')
                fail_msg("timestamp %s: character %zu not a digit", ts, i);
        } else if (ts[i] != shape[i]) {
            fail_msg("timestamp %s does not look like %s", ts, shape);
        }
    }
}

static const char *string_field(json_t *line, const char *name)
{
    json_t *v = json_object_get(line, name);
    if (!json_is_string(v))
        fail_msg("field %s is missing or not a string", name);
    return json_string_value(v);
}

static void test_access_line_is_json_with_every_field(void **state)
{
    (void)state;
    vg_access_entry entry = {
        .request_id = "8d3b0c9e-1f7a-4c39-9d0e-2b6f4a1c5e70",
        .method = "GET",
        .path = "/v1/files/a\"b\\c\x01" "d\te\xff" "f",
        .status = 206,
        .duration_ms = 9.0078125, /* exact in binary: 9007.8125 us */
        .bytes = 123456789012LL,
        .account = "acct-\"1\"",
        .aborted = 0,
    };
    char *text = capture_access_line(&entry);
    json_t *line = parse_line(text);

    assert_timestamp(string_field(line, "ts"));
    assert_string_equal(string_field(line, "level"), "info");
    assert_string_equal(string_field(line, "msg"), "request");
    assert_string_equal(string_field(line, "request_id"), entry.request_id);
    assert_string_equal(string_field(line, "method"), "GET");
    /* Quote, backslash and control characters round-trip; a byte that is
     * not ASCII comes back as the code point of the same value, so the
     * line stays valid JSON whatever bytes a client sent. */
    assert_string_equal(string_field(line, "path"),
                        "/v1/files/a\"b\\c\x01" "d\te\xc3\xbf" "f");
    json_t *status = json_object_get(line, "status");
    assert_true(json_is_integer(status));
    assert_int_equal(json_integer_value(status), 206);
    json_t *bytes = json_object_get(line, "bytes");
    assert_true(json_is_integer(bytes));
    assert_int_equal(json_integer_value(bytes), 123456789012LL);
    assert_string_equal(string_field(line, "account"), "acct-\"1\"");
    assert_null(json_object_get(line, "aborted"));
    assert_int_equal(json_object_size(line), 10);

    json_decref(line);
    free(text);
}

static void test_access_duration_is_milliseconds_with_three_decimals(
    void **state)
{
    (void)state;
    static const struct {
        double ms;
        const char *text;
    } cases[] = {
        {9.0078125, "\"duration_ms\":9.008,"},  /* rounded to whole us */
        {4.03125, "\"duration_ms\":4.031,"},    /* one zero of padding */
        {4.0004, "\"duration_ms\":4.000,"},     /* two zeros */
        {12.5, "\"duration_ms\":12.500,"},
        {2048.0, "\"duration_ms\":2048.000,"},
        {0.0, "\"duration_ms\":0.000,"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vg_access_entry entry = {
            .request_id = "r",
            .method = "GET",
            .path = "/healthz",
            .status = 200,
            .duration_ms = cases[i].ms,
        };
        char *text = capture_access_line(&entry);
        if (strstr(text, cases[i].text) == NULL)
            fail_msg("%g ms: expected %s in %s", cases[i].ms, cases[i].text,
                     text);
        json_t *line = parse_line(text);
        json_t *duration = json_object_get(line, "duration_ms");
        assert_true(json_is_real(duration));
        assert_float_equal(json_real_value(duration),
                           (double)(long long)(cases[i].ms * 1000 + 0.5) /
                               1000,
                           1e-9);
        json_decref(line);
        free(text);
    }
}

static void test_access_account_appears_only_when_given(void **state)
{
    (void)state;
    vg_access_entry entry = {
        .request_id = "r",
        .method = "POST",
        .path = "/v1/ula/oauth-authentication",
        .status = 403,
        .duration_ms = 1.5,
        .bytes = 0,
        .account = NULL,
    };
    char *text = capture_access_line(&entry);
    json_t *line = parse_line(text);
    assert_null(json_object_get(line, "account"));
    assert_int_equal(json_integer_value(json_object_get(line, "bytes")), 0);
    json_decref(line);
    free(text);
}

static void test_access_aborted_appears_only_when_set(void **state)
{
    (void)state;
    vg_access_entry entry = {
        .request_id = "r",
        .method = "GET",
        .path = "/v1/files/x.mp4",
        .status = 200,
        .duration_ms = 1.0,
        .bytes = 4096,
        .account = NULL,
        .aborted = 1,
    };
    char *text = capture_access_line(&entry);
    json_t *line = parse_line(text);
    assert_true(json_is_true(json_object_get(line, "aborted")));
    json_decref(line);
    free(text);

    entry.aborted = 0;
    text = capture_access_line(&entry);
    line = parse_line(text);
    assert_null(json_object_get(line, "aborted"));
    json_decref(line);
    free(text);
}

/* A path far longer than the line buffer is cut short, but the line is
 * still one complete JSON object. */
static void test_access_line_stays_json_for_a_huge_path(void **state)
{
    (void)state;
    size_t n = 10000;
    char *path = malloc(n + 1);
    assert_non_null(path);
    for (size_t i = 0; i < n; i++)
        path[i] = i % 3 == 0 ? '"' : (i % 3 == 1 ? '\x02' : 'a');
    path[n] = '\0';
    vg_access_entry entry = {
        .request_id = "r",
        .method = "GET",
        .path = path,
        .status = 404,
        .duration_ms = 0.5,
        .bytes = 10,
        .account = "acct",
        .aborted = 1,
    };
    char *text = capture_access_line(&entry);
    json_t *line = parse_line(text);
    const char *logged = string_field(line, "path");
    assert_true(strlen(logged) > 0);
    assert_true(strncmp(logged, path, strlen(logged)) == 0);
    assert_int_equal(json_integer_value(json_object_get(line, "status")),
                     404);
    assert_string_equal(string_field(line, "account"), "acct");
    assert_true(json_is_true(json_object_get(line, "aborted")));
    json_decref(line);
    free(text);
    free(path);
}

static void test_access_line_stays_json_for_a_huge_method(void **state)
{
    (void)state;
    char method[1901];
    memset(method, 'M', sizeof(method) - 1);
    method[sizeof(method) - 1] = '\0';
    vg_access_entry entry = {
        .request_id = "r",
        .method = method,
        .path = "/p",
        .status = 400,
        .duration_ms = 1,
        .bytes = 1,
    };
    char *text = capture_access_line(&entry);
    json_t *line = parse_line(text);
    assert_string_equal(string_field(line, "path"), "/p");
    assert_int_equal(json_integer_value(json_object_get(line, "status")),
                     400);
    json_decref(line);
    free(text);
}

/* ---- shared text and its versioned cache ---------------------------- */

static void test_shared_text_is_a_terminated_copy(void **state)
{
    (void)state;
    char src[] = "{\"a\":1}xyz";
    vg_shared_text *t = vg_shared_text_new(src, 7);
    assert_non_null(t);
    src[0] = 'X';
    assert_int_equal(t->len, 7);
    assert_string_equal(t->data, "{\"a\":1}");
    assert_ptr_equal(vg_shared_text_of(t->data), t);
    vg_shared_text_unref(t);
}

static void test_text_cache_hits_only_its_version(void **state)
{
    (void)state;
    vg_text_cache c;
    vg_text_cache_init(&c);
    assert_null(vg_text_cache_get(&c, 0)); /* nothing cached yet */

    vg_shared_text *v1 = vg_shared_text_new("one", 3);
    vg_text_cache_put(&c, 1, v1);
    assert_null(vg_text_cache_get(&c, 0));
    assert_null(vg_text_cache_get(&c, 2));
    vg_shared_text *got = vg_text_cache_get(&c, 1);
    assert_ptr_equal(got, v1);

    /* A newer rendering replaces it; the holder of the old one still
     * reads it (ASan reports a use after free otherwise). */
    vg_shared_text *v2 = vg_shared_text_new("two", 3);
    vg_text_cache_put(&c, 2, v2);
    vg_shared_text_unref(v1); /* the creator's reference */
    assert_null(vg_text_cache_get(&c, 1));
    assert_string_equal(got->data, "one");
    vg_shared_text_unref(got); /* the last reference: freed */

    got = vg_text_cache_get(&c, 2);
    assert_string_equal(got->data, "two");
    vg_shared_text_unref(got);
    vg_shared_text_unref(v2);
    vg_text_cache_destroy(&c); /* frees v2: LeakSanitizer checks */
}

/* ---- the hash table (util/table.h) -------------------------------------- */

typedef struct table_item {
    char key[24];
    vg_table_node node;
} table_item;

static void test_table_finds_every_key_as_it_grows_and_shrinks(void **state)
{
    (void)state;
    enum { N = 5000 };
    static table_item items[N];
    vg_table t;
    assert_int_equal(vg_table_init(&t, 16), 0);
    for (int i = 0; i < N; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "job-%d", i);
        vg_table_insert(&t, &items[i].node, items[i].key);
    }
    assert_int_equal(t.count, N);
    assert_true(t.mask + 1 >= N / 2); /* it grew: chains stay short */
    for (int i = 0; i < N; i++)
        assert_ptr_equal(vg_table_find(&t, items[i].key), &items[i].node);
    assert_null(vg_table_find(&t, "job-5000"));
    assert_null(vg_table_find(&t, ""));
    /* A walk of the buckets sees each node once. */
    size_t seen = 0;
    for (size_t b = 0; b <= t.mask; b++)
        for (vg_table_node *n = t.buckets[b]; n != NULL; n = n->next) {
            table_item *it = VG_CONTAINER_OF(n, table_item, node);
            assert_ptr_equal(vg_table_find(&t, it->key), n);
            seen++;
        }
    assert_int_equal(seen, N);
    for (int i = 0; i < N; i += 2)
        vg_table_remove(&t, &items[i].node);
    vg_table_remove(&t, &items[0].node); /* not in: nothing */
    static table_item stray; /* zeroed, never inserted */
    vg_table_remove(&t, &stray.node);
    assert_int_equal(t.count, N / 2);
    for (int i = 0; i < N; i++) {
        vg_table_node *n = vg_table_find(&t, items[i].key);
        if (i % 2 == 0)
            assert_null(n);
        else
            assert_ptr_equal(n, &items[i].node);
    }
    /* A removed key can come back. */
    vg_table_insert(&t, &items[0].node, items[0].key);
    assert_ptr_equal(vg_table_find(&t, "job-0"), &items[0].node);
    vg_table_destroy(&t);
}

/* ---- the heap (util/heap.h) --------------------------------------------- */

typedef struct heap_item {
    int id;
    vg_heap_node node;
} heap_item;

/* Every parent's key is at most its children's, and each node knows its
 * place. */
static void assert_heap_ordered(const vg_heap *h)
{
    for (int i = 0; i < h->len; i++) {
        assert_int_equal(h->items[i]->index, i);
        if (i > 0)
            assert_true(h->items[(i - 1) / 2]->key <= h->items[i]->key);
    }
}

static void test_heap_pops_in_key_order_through_removes_and_rekeys(void **state)
{
    (void)state;
    enum { N = 2000 };
    static heap_item items[N];
    vg_heap h = {0};
    srand(7);
    for (int i = 0; i < N; i++) {
        items[i].id = i;
        vg_heap_node_init(&items[i].node);
        assert_int_equal(vg_heap_push(&h, &items[i].node, rand() % 500), 0);
    }
    assert_int_equal(h.len, N);
    assert_heap_ordered(&h);
    /* Re-key a third (up and down), remove a fifth, twice over. */
    for (int i = 0; i < N; i += 3)
        assert_int_equal(vg_heap_push(&h, &items[i].node, rand() % 1000), 0);
    for (int i = 1; i < N; i += 5) {
        vg_heap_remove(&h, &items[i].node);
        assert_false(vg_heap_node_queued(&items[i].node));
        vg_heap_remove(&h, &items[i].node); /* not in: nothing */
    }
    assert_heap_ordered(&h);
    int expected = N - (N - 1 + 4) / 5;
    assert_int_equal(h.len, expected);
    int64_t last = -1;
    int popped = 0;
    for (vg_heap_node *n; (n = vg_heap_first(&h)) != NULL; popped++) {
        heap_item *it = VG_CONTAINER_OF(n, heap_item, node);
        assert_ptr_equal(&items[it->id], it);
        assert_true(n->key >= last);
        last = n->key;
        vg_heap_remove(&h, n);
    }
    assert_int_equal(popped, expected);
    assert_null(vg_heap_first(&h));
    /* Destroying marks the nodes still in it as out. */
    assert_int_equal(vg_heap_push(&h, &items[0].node, 5), 0);
    vg_heap_destroy(&h);
    assert_false(vg_heap_node_queued(&items[0].node));
    assert_int_equal(h.len, 0);
}

/* ---- directories (util/dirs.h) ------------------------------------------ */

static void make_dirs_scratch(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/vg-util-dirs-%d-%s", vg_test_tmp_dir(), (int)getpid(),
             name);
}

static void test_make_dirs_creates_every_missing_level(void **state)
{
    (void)state;
    char top[512], deep[600];
    make_dirs_scratch(top, sizeof(top), "deep");
    snprintf(deep, sizeof(deep), "%s/a/b//c/", top);
    assert_int_equal(vg_make_dirs(deep, 0750, true, NULL, 0), 0);
    struct stat st;
    snprintf(deep, sizeof(deep), "%s/a/b/c", top);
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777 & ~0750, 0); /* the mode, less umask */
    /* Existing levels are fine. */
    assert_int_equal(vg_make_dirs(deep, 0750, false, NULL, 0), 0);
    while (strlen(deep) > strlen(top)) {
        assert_int_equal(rmdir(deep), 0);
        *strrchr(deep, '/') = '\0';
    }
    assert_int_equal(rmdir(top), 0);
}

static void test_make_dirs_stops_at_a_file_in_the_way(void **state)
{
    (void)state;
    char top[512], file[600], path[700], failed[700];
    make_dirs_scratch(top, sizeof(top), "file");
    assert_int_equal(vg_make_dirs(top, 0700, false, NULL, 0), 0);
    snprintf(file, sizeof(file), "%s/plain", top);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/below", file);
    errno = 0;
    assert_int_equal(vg_make_dirs(path, 0700, true, failed, sizeof(failed)),
                     -1);
    assert_int_equal(errno, ENOTDIR);
    assert_string_equal(failed, file);
    /* The file itself as the directory to make. */
    assert_int_equal(vg_make_dirs(file, 0700, false, failed, sizeof(failed)),
                     -1);
    assert_int_equal(errno, ENOTDIR);
    assert_string_equal(failed, file);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(rmdir(top), 0);
}

static void test_sync_path_reports_a_missing_path(void **state)
{
    (void)state;
    assert_int_equal(vg_sync_path(vg_test_tmp_dir()), 0);
    assert_int_equal(vg_sync_path("/nonexistent/vidgate/dir"), ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_line_stays_json_for_a_huge_method),
        cmocka_unit_test(test_arena_allocations_never_overlap_across_blocks),
        cmocka_unit_test(test_make_dirs_creates_every_missing_level),
        cmocka_unit_test(test_heap_pops_in_key_order_through_removes_and_rekeys),
        cmocka_unit_test(test_table_finds_every_key_as_it_grows_and_shrinks),
        cmocka_unit_test(test_make_dirs_stops_at_a_file_in_the_way),
        cmocka_unit_test(test_sync_path_reports_a_missing_path),
        cmocka_unit_test(test_arena_memory_is_zeroed),
        cmocka_unit_test(test_shared_text_is_a_terminated_copy),
        cmocka_unit_test(test_text_cache_hits_only_its_version),
        cmocka_unit_test(test_arena_pointers_are_aligned_for_any_type),
        cmocka_unit_test(test_arena_strdup_copies_the_string),
        cmocka_unit_test(test_arena_strndup_stops_at_n_and_terminates),
        cmocka_unit_test(test_arena_sprintf_formats_even_beyond_a_block),
        cmocka_unit_test(test_arena_allocation_larger_than_a_block_works),
        cmocka_unit_test(test_arena_free_leaves_it_reusable),
        cmocka_unit_test(test_sha256_hex_matches_known_digests),
        cmocka_unit_test(test_hmac_sha256_hex_matches_rfc4231),
        cmocka_unit_test(test_hex_encode_is_lowercase_two_digits_per_byte),
        cmocka_unit_test(test_uuid_v4_has_the_rfc4122_format),
        cmocka_unit_test(test_uuid_v4_is_unique),
        cmocka_unit_test(test_uuid_v7_is_time_ordered_and_unique),
        cmocka_unit_test(test_new_api_key_is_vg_and_43_base64url_chars),
        cmocka_unit_test(test_secure_equal_is_true_only_for_identical_strings),
        cmocka_unit_test(test_random_bytes_fill_the_buffer),
        cmocka_unit_test(test_access_line_is_json_with_every_field),
        cmocka_unit_test(
            test_access_duration_is_milliseconds_with_three_decimals),
        cmocka_unit_test(test_access_account_appears_only_when_given),
        cmocka_unit_test(test_access_aborted_appears_only_when_set),
        cmocka_unit_test(test_access_line_stays_json_for_a_huge_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
