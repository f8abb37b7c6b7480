/*
 * test_support.h - helpers the unit tests share: where scratch files go,
 * fresh SQLite stores, per-suite scratch directories.
 *
 * Everything here works under $VG_TEST_TMP (CTest sets it to a folder
 * in the build tree), falling back to /tmp when it is unset or empty.
 * Helpers that can fail inside a test report it with cmocka's fail_msg,
 * so a broken fixture reads as a failed test, not a crash.
 */
#ifndef VG_TEST_SUPPORT_H
#define VG_TEST_SUPPORT_H

#include <stddef.h>

#include "store/store.h"

/* Creates `path` and every missing parent, like `mkdir -p`. */
void vg_test_make_dirs(const char *path);

/* The directory scratch files go in ($VG_TEST_TMP or /tmp), created if
 * missing. */
const char *vg_test_tmp_dir(void);

/* Removes a SQLite database file and the files the store keeps beside
 * it (-wal, -shm, -keys). Missing files are not an error. */
void vg_test_remove_db(const char *path);

/* Writes into `out` the path of a database file nobody has used yet:
 * vg-<suite>-<pid>-<name>.db in the scratch directory, or, when `name`
 * is NULL, vg-<suite>-<pid>-<n>.db with n counting calls. Any leftover
 * file at that path is removed first. */
void vg_test_fresh_db(const char *suite, const char *name, char *out,
                      size_t n);

/* Opens the SQLite store at `path`, failing the test if it cannot. */
vg_store *vg_test_open_store(const char *path);

/* A scratch directory for a whole suite: the group setup makes a new,
 * empty <scratch>/<program name>.XXXXXX and the group teardown removes
 * it with everything in it. Use both as the cmocka group fixtures:
 *
 *     return cmocka_run_group_tests(tests, vg_test_scratch_setup,
 *                                   vg_test_scratch_teardown);
 *
 * The setup fails if the path holds a single quote, since tests pass
 * paths to ffmpeg and ffprobe inside single quotes. */
int vg_test_scratch_setup(void **state);
int vg_test_scratch_teardown(void **state);

/* <suite scratch directory>/`name`. The result lives in one of 128
 * rotating buffers, so it stays valid until 128 more calls. */
const char *vg_test_scratch_path(const char *name);

/* Writes `n` bytes to `path`, replacing it, asserting every step. */
void vg_test_write_file(const char *path, const void *bytes, size_t n);

#endif
