/*
 * test_support.c - helpers the unit tests share; see test_support.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

#include "util/dirs.h"

void vg_test_make_dirs(const char *path)
{
    char failed[PATH_MAX];
    if (vg_make_dirs(path, 0755, false, failed, sizeof(failed)) != 0)
        fail_msg("mkdir %s: %s", failed, strerror(errno));
}

const char *vg_test_tmp_dir(void)
{
    const char *dir = getenv("VG_TEST_TMP");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    vg_test_make_dirs(dir);
    return dir;
}

void vg_test_remove_db(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-keys"};
    char buf[PATH_MAX];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s", path, suffixes[i]);
        unlink(buf);
    }
}

void vg_test_fresh_db(const char *suite, const char *name, char *out, size_t n)
{
    static int counter;
    if (name != NULL)
        snprintf(out, n, "%s/vg-%s-%d-%s.db", vg_test_tmp_dir(), suite,
                 (int)getpid(), name);
    else
        snprintf(out, n, "%s/vg-%s-%d-%d.db", vg_test_tmp_dir(), suite,
                 (int)getpid(), counter++);
    vg_test_remove_db(out);
}

vg_store *vg_test_open_store(const char *path)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_store *store = vg_store_open_sqlite(path, &err);
    if (store == NULL)
        fail_msg("opening %s: %s", path, err.message);
    return store;
}

/* Half of PATH_MAX so that a file name always fits after it. */
static char scratch_dir[PATH_MAX / 2];

int vg_test_scratch_setup(void **state)
{
    (void)state;
    snprintf(scratch_dir, sizeof(scratch_dir), "%s/%s.XXXXXX",
             vg_test_tmp_dir(), program_invocation_short_name);
    if (mkdtemp(scratch_dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", scratch_dir, strerror(errno));
        return -1;
    }
    return strchr(scratch_dir, '\'') != NULL ? -1 : 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int vg_test_scratch_teardown(void **state)
{
    (void)state;
    return nftw(scratch_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *vg_test_scratch_path(const char *name)
{
    static char paths[128][PATH_MAX];
    static int next;
    char *p = paths[next++ % 128];
    snprintf(p, PATH_MAX, "%s/%s", scratch_dir, name);
    return p;
}

void vg_test_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}
