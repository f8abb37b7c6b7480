/*
 * test_blob.c - the contract of blob.h on the folder backend (blob_fs.c),
 * one test per rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "test_support.h"

/* ---- blob_fs ----------------------------------------------------------- */

static void blob_dir(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/vg-blob-%d-%s", vg_test_tmp_dir(), (int)getpid(),
             name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void check_blob(vg_blob *blob, const char *key, const char *text)
{
    vg_error err;
    int fd = -1;
    int64_t size = -1;
    assert_int_equal(blob->ops->open_read(blob, key, &fd, &size, &err), 0);
    assert_int_equal(size, (int64_t)strlen(text));
    char buf[256];
    ssize_t got = read(fd, buf, sizeof(buf));
    assert_int_equal(got, size);
    assert_memory_equal(buf, text, (size_t)size);
    close(fd);
}

static void test_blob_put_file_moves_the_file(void **state)
{
    (void)state;
    char dir[512], src[600], stored[700];
    blob_dir("put", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    snprintf(src, sizeof(src), "%s/../vg-blob-%d-src.mp4", dir, (int)getpid());
    write_file(src, "not really a video");
    assert_int_equal(
        blob->ops->put_file(blob, "videos/abc-123.mp4", src, &err), 0);
    assert_int_equal(access(src, F_OK), -1);
    snprintf(stored, sizeof(stored), "%s/videos/abc-123.mp4", dir);
    assert_int_equal(access(stored, F_OK), 0);
    check_blob(blob, "videos/abc-123.mp4", "not really a video");

    /* Putting the same key again replaces the blob. */
    write_file(src, "v2");
    assert_int_equal(
        blob->ops->put_file(blob, "videos/abc-123.mp4", src, &err), 0);
    check_blob(blob, "videos/abc-123.mp4", "v2");

    /* Across filesystems the file is copied, then the source removed. */
    if (stat("/dev/shm", &st) == 0) {
        struct stat here;
        assert_int_equal(stat(dir, &here), 0);
        if (here.st_dev != st.st_dev) {
            snprintf(src, sizeof(src), "/dev/shm/vg-blob-%d.mp4",
                     (int)getpid());
            write_file(src, "copied across");
            assert_int_equal(
                blob->ops->put_file(blob, "videos/copied.mp4", src, &err), 0);
            assert_int_equal(access(src, F_OK), -1);
            check_blob(blob, "videos/copied.mp4", "copied across");
            assert_int_equal(
                blob->ops->remove(blob, "videos/copied.mp4", &err), 0);
        }
    }

    assert_int_equal(blob->ops->remove(blob, "videos/abc-123.mp4", &err), 0);
    assert_int_equal(access(stored, F_OK), -1);
    /* Removing what is gone is fine. */
    assert_int_equal(blob->ops->remove(blob, "videos/abc-123.mp4", &err), 0);
    blob->ops->close(blob);

    snprintf(stored, sizeof(stored), "%s/videos", dir);
    rmdir(stored);
    rmdir(dir);
}

/* Puts from many threads at once, into two directories, share the
 * directory syncs: every one lands with its own content. */
typedef struct put_worker {
    vg_blob *blob;
    const char *dir;
    int index;
    int failures;
} put_worker;

#define PUT_THREADS 8
#define PUTS_EACH 40

static void *put_many(void *arg)
{
    put_worker *w = arg;
    for (int i = 0; i < PUTS_EACH; i++) {
        char src[700], key[64], text[64];
        snprintf(src, sizeof(src), "%s/src-%d-%d", w->dir, w->index, i);
        snprintf(text, sizeof(text), "video %d of %d", i, w->index);
        /* No cmocka assertion off the test's own thread. */
        FILE *f = fopen(src, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
            w->failures++;
            continue;
        }
        snprintf(key, sizeof(key), "%s/%d-%d.mp4",
                 i % 3 == 0 ? "uploads" : "videos", w->index, i);
        vg_error err;
        memset(&err, 0, sizeof(err));
        if (w->blob->ops->put_file(w->blob, key, src, &err) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_blob_concurrent_puts_all_land(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("many", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    pthread_t threads[PUT_THREADS];
    put_worker workers[PUT_THREADS];
    for (int t = 0; t < PUT_THREADS; t++) {
        workers[t] = (put_worker){blob, dir, t, 0};
        assert_int_equal(
            pthread_create(&threads[t], NULL, put_many, &workers[t]), 0);
    }
    for (int t = 0; t < PUT_THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].failures, 0);
    }
    for (int t = 0; t < PUT_THREADS; t++)
        for (int i = 0; i < PUTS_EACH; i++) {
            char key[64], text[64], src[700];
            snprintf(key, sizeof(key), "%s/%d-%d.mp4",
                     i % 3 == 0 ? "uploads" : "videos", t, i);
            snprintf(text, sizeof(text), "video %d of %d", i, t);
            check_blob(blob, key, text);
            snprintf(src, sizeof(src), "%s/src-%d-%d", dir, t, i);
            assert_int_equal(access(src, F_OK), -1);
            assert_int_equal(blob->ops->remove(blob, key, &err), 0);
        }
    blob->ops->close(blob);
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/videos", dir);
    assert_int_equal(rmdir(sub), 0);
    snprintf(sub, sizeof(sub), "%s/uploads", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* A put into a directory that is not there yet (or was removed since)
 * creates it, however deep. */
static void test_blob_put_creates_missing_directories(void **state)
{
    (void)state;
    char dir[512], src[600], sub[700];
    blob_dir("deep", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    snprintf(src, sizeof(src), "%s/source.mp4", dir);
    write_file(src, "first");
    assert_int_equal(blob->ops->put_file(blob, "a/b/c/v.mp4", src, &err), 0);
    check_blob(blob, "a/b/c/v.mp4", "first");
    assert_int_equal(blob->ops->remove(blob, "a/b/c/v.mp4", &err), 0);
    const char *const gone[] = {"a/b/c", "a/b", "a"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", dir, gone[i]);
        assert_int_equal(rmdir(sub), 0);
    }
    write_file(src, "again");
    assert_int_equal(blob->ops->put_file(blob, "a/b/c/v.mp4", src, &err), 0);
    check_blob(blob, "a/b/c/v.mp4", "again");
    /* A missing source is an error, not a directory made for nothing. */
    memset(&err, 0, sizeof(err));
    assert_int_equal(blob->ops->put_file(blob, "x/y.mp4", src, &err), -1);
    assert_int_equal(err.status, 500);
    snprintf(sub, sizeof(sub), "%s/x", dir);
    assert_int_equal(access(sub, F_OK), -1);
    assert_int_equal(blob->ops->remove(blob, "a/b/c/v.mp4", &err), 0);
    blob->ops->close(blob);
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", dir, gone[i]);
        assert_int_equal(rmdir(sub), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_blob_open_read_missing_returns_1(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("missing", dir, sizeof(dir));
    vg_error err;
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    int fd = -1;
    int64_t size = -1;
    assert_int_equal(
        blob->ops->open_read(blob, "videos/nothing.mp4", &fd, &size, &err),
        VG_STORE_NOT_FOUND);
    assert_int_equal(fd, -1);
    blob->ops->close(blob);
    rmdir(dir);
}

static void test_blob_refuses_bad_keys(void **state)
{
    (void)state;
    char dir[512], src[600];
    blob_dir("bad", dir, sizeof(dir));
    vg_error err;
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    snprintf(src, sizeof(src), "%s/source.mp4", dir);
    write_file(src, "x");

    static const char *const bad[] = {
        "",
        "/etc/passwd",
        "../escape.mp4",
        "videos/../../x",
        "a/..",
        "..",
        "videos/a b.mp4",
        "videos/a;b",
        "videos/",
        "a//b",
        ".",
        "videos/./x",
        "vid\\eos",
        "videos/\xc3\xa9.mp4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = -1;
        int64_t size = 0;
        memset(&err, 0, sizeof(err));
        assert_int_equal(blob->ops->put_file(blob, bad[i], src, &err), -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(blob->ops->open_read(blob, bad[i], &fd, &size, &err),
                         -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(blob->ops->remove(blob, bad[i], &err), -1);
    }
    /* The source is untouched by refused puts. */
    assert_int_equal(access(src, F_OK), 0);
    /* Dots inside names are fine. */
    assert_int_equal(
        blob->ops->put_file(blob, "videos/v1.2_final-cut.mp4", src, &err), 0);
    check_blob(blob, "videos/v1.2_final-cut.mp4", "x");
    assert_int_equal(
        blob->ops->remove(blob, "videos/v1.2_final-cut.mp4", &err), 0);
    blob->ops->close(blob);

    char sub[700];
    snprintf(sub, sizeof(sub), "%s/videos", dir);
    rmdir(sub);
    rmdir(dir);
}

/* ---- streaming: write from a source, read a range into a sink --------- */

typedef struct chunks {
    const char *text;
    size_t at, step;
    bool fail_at_end; /* the stream breaks instead of ending */
} chunks;

/* Gives text a few bytes at a time, as a network body would. */
static ssize_t chunk_source(void *ctx, void *buf, size_t cap)
{
    chunks *c = ctx;
    size_t left = strlen(c->text) - c->at;
    if (left == 0) {
        errno = EIO;
        return c->fail_at_end ? -1 : 0;
    }
    size_t n = left < c->step ? left : c->step;
    n = n < cap ? n : cap;
    memcpy(buf, c->text + c->at, n);
    c->at += n;
    return (ssize_t)n;
}

typedef struct collected {
    char data[256];
    size_t n;
    int calls;
    int stop_after; /* 0: never stop */
} collected;

static int collect(void *ctx, const void *data, size_t n)
{
    collected *c = ctx;
    if (c->n + n > sizeof(c->data))
        return -1;
    memcpy(c->data + c->n, data, n);
    c->n += n;
    return ++c->calls == c->stop_after ? 1 : 0;
}

static void read_range(vg_blob *blob, const char *key, int64_t offset,
                       int64_t length, const char *expected)
{
    vg_error err;
    collected got = {0};
    assert_int_equal(
        blob->ops->read(blob, key, offset, length, collect, &got, &err), 0);
    assert_int_equal(got.n, strlen(expected));
    assert_memory_equal(got.data, expected, got.n);
}

static void test_blob_write_stores_a_stream_whole(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("write", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    chunks c = {"streamed in pieces of three", 0, 3, false};
    assert_int_equal(
        blob->ops->write(blob, "uploads/j-0", chunk_source, &c, &err), 0);
    check_blob(blob, "uploads/j-0", "streamed in pieces of three");
    int64_t size = -1;
    assert_int_equal(blob->ops->stat(blob, "uploads/j-0", &size, &err), 0);
    assert_int_equal(size, 27);

    /* A stream that breaks leaves the blob as it was, and no part file. */
    chunks broken = {"half of a new version", 0, 4, true};
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        blob->ops->write(blob, "uploads/j-0", chunk_source, &broken, &err),
        -1);
    assert_int_equal(err.status, 500);
    check_blob(blob, "uploads/j-0", "streamed in pieces of three");
    chunks fresh = {"never whole", 0, 5, true};
    assert_int_equal(
        blob->ops->write(blob, "uploads/j-1", chunk_source, &fresh, &err), -1);
    assert_int_equal(blob->ops->stat(blob, "uploads/j-1", &size, &err),
                     VG_STORE_NOT_FOUND);
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/uploads", dir);
    assert_int_equal(blob->ops->remove(blob, "uploads/j-0", &err), 0);
    assert_int_equal(rmdir(sub), 0); /* empty: nothing half-written left */
    blob->ops->close(blob);
    assert_int_equal(rmdir(dir), 0);
}

static void test_blob_read_sends_a_range_to_the_sink(void **state)
{
    (void)state;
    char dir[512];
    blob_dir("read", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    chunks c = {"0123456789abcdef", 0, 16, false};
    assert_int_equal(
        blob->ops->write(blob, "videos/r.mp4", chunk_source, &c, &err), 0);
    read_range(blob, "videos/r.mp4", 0, -1, "0123456789abcdef");
    read_range(blob, "videos/r.mp4", 4, 3, "456");
    read_range(blob, "videos/r.mp4", 10, -1, "abcdef");
    read_range(blob, "videos/r.mp4", 12, 100, "cdef"); /* cut at the end */
    read_range(blob, "videos/r.mp4", 16, 10, "");
    read_range(blob, "videos/r.mp4", 40, 10, "");
    /* A sink that stops the read makes it fail. */
    collected stop = {.stop_after = 1};
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        blob->ops->read(blob, "videos/r.mp4", 0, -1, collect, &stop, &err),
        -1);
    assert_int_equal(err.status, 500);
    collected none = {0};
    assert_int_equal(
        blob->ops->read(blob, "videos/none.mp4", 0, -1, collect, &none, &err),
        VG_STORE_NOT_FOUND);
    assert_int_equal(none.calls, 0);
    int64_t size = 0;
    assert_int_equal(blob->ops->stat(blob, "videos/none.mp4", &size, &err),
                     VG_STORE_NOT_FOUND);
    /* Bad keys are refused by the streaming operations too. */
    assert_int_equal(blob->ops->stat(blob, "../x", &size, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(
        blob->ops->read(blob, "../x", 0, -1, collect, &none, &err), -1);
    assert_int_equal(
        blob->ops->write(blob, "a/../../b", chunk_source, &c, &err), -1);
    assert_int_equal(err.status, 400);
    /* The folder has no redirect links. */
    assert_null(blob->ops->link);
    assert_int_equal(blob->ops->remove(blob, "videos/r.mp4", &err), 0);
    blob->ops->close(blob);
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/videos", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* vg_blob_copy_to_file gives the whole blob, whether or not the backend
 * also has file descriptors (it needs only read). */
static void test_blob_copy_to_file_with_and_without_descriptors(void **state)
{
    (void)state;
    char dir[512], out[700];
    blob_dir("copy", dir, sizeof(dir));
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_blob *blob = vg_blob_open_fs(dir, &err);
    assert_non_null(blob);
    /* Bigger than one read buffer, so both paths loop. */
    static char big[200001];
    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = (char)('a' + (i * 7) % 26);
    chunks c = {big, 0, 4096, false};
    assert_int_equal(
        blob->ops->write(blob, "uploads/c-0", chunk_source, &c, &err), 0);
    /* The same backend with open_read taken away is one without file
     * descriptors over the same folder. */
    const vg_blob_ops *own = blob->ops;
    vg_blob_ops no_fd = *own;
    no_fd.open_read = NULL;
    for (int w = 0; w < 2; w++) {
        vg_blob *b = blob;
        b->ops = w == 0 ? own : &no_fd;
        snprintf(out, sizeof(out), "%s/copy-%d", dir, w);
        assert_int_equal(vg_blob_copy_to_file(b, "uploads/c-0", out, &err), 0);
        FILE *f = fopen(out, "rb");
        assert_non_null(f);
        static char back[sizeof(big)];
        size_t n = fread(back, 1, sizeof(back), f);
        fclose(f);
        assert_int_equal(n, sizeof(big) - 1);
        assert_memory_equal(back, big, n);
        struct stat st;
        assert_int_equal(stat(out, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        /* An existing file is not overwritten. */
        assert_int_equal(vg_blob_copy_to_file(b, "uploads/c-0", out, &err),
                         -1);
        assert_int_equal(unlink(out), 0);
        /* A missing blob leaves no file behind. */
        assert_int_equal(vg_blob_copy_to_file(b, "uploads/none", out, &err),
                         VG_STORE_NOT_FOUND);
        assert_int_equal(access(out, F_OK), -1);
    }
    blob->ops = own;
    assert_int_equal(blob->ops->remove(blob, "uploads/c-0", &err), 0);
    blob->ops->close(blob);
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/uploads", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_put_file_moves_the_file),
        cmocka_unit_test(test_blob_concurrent_puts_all_land),
        cmocka_unit_test(test_blob_put_creates_missing_directories),
        cmocka_unit_test(test_blob_open_read_missing_returns_1),
        cmocka_unit_test(test_blob_refuses_bad_keys),
        cmocka_unit_test(test_blob_write_stores_a_stream_whole),
        cmocka_unit_test(test_blob_read_sends_a_range_to_the_sink),
        cmocka_unit_test(test_blob_copy_to_file_with_and_without_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
