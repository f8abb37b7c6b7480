/*
 * test_store_pg.c - the PostgreSQL backend of store.h: the contract suite
 * of every backend (support/store_contract.c), unchanged, then what is
 * its own (migrations under the advisory lock, a database newer than the
 * build, the batch writer's failures, reconnecting).
 *
 * It needs a server: ctest runs it under tests/support/postgres.sh, which
 * starts a throwaway one on loopback and sets VG_TEST_PG_URL. Each test
 * gets a database of its own, made and dropped through an admin
 * connection; rows are counted on a raw connection of their own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store_contract.h"
#include "test_support.h"
#include "util/clock.h"
#include "util/log.h"

static const char *server_url(void)
{
    const char *url = getenv("VG_TEST_PG_URL");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "test_store_pg: VG_TEST_PG_URL is not set; run it "
                        "under tests/support/postgres.sh run\n");
        exit(1);
    }
    return url;
}

/* ---- raw connections --------------------------------------------------- */

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *raw_connect(const char *url)
{
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("connecting to %s: %s", url, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

static int raw_exec_rc(const char *url, const char *sql)
{
    PGconn *conn = raw_connect(url);
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    PQfinish(conn);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
}

static void raw_exec(const char *url, const char *sql)
{
    PGconn *conn = raw_connect(url);
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
}

static int64_t raw_int(const char *url, const char *sql)
{
    PGconn *conn = raw_connect(url);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(conn);
    return v;
}

/* ---- databases, one per test ------------------------------------------ */

static void admin_exec(const char *sql)
{
    char url[512];
    snprintf(url, sizeof(url), "%spostgres", server_url());
    raw_exec(url, sql);
}

/* A fresh, empty database; its URL goes to handle. */
static void fresh_database(const char *name, char *handle, size_t n)
{
    static int counter;
    char db[64], sql[160];
    snprintf(db, sizeof(db), "vgt_%.30s_%d_%d", name, (int)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
    admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    admin_exec(sql);
    snprintf(handle, n, "%s%s", server_url(), db);
}

static vg_store *open_url(const char *url)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_store *store = vg_store_open_postgres(url, 4, &err);
    if (store == NULL)
        fail_msg("opening %s: %s", url, err.message);
    return store;
}

static vg_store *pg_open(const char *name, char *handle, size_t n)
{
    fresh_database(name, handle, n);
    return open_url(handle);
}

static void pg_remove(const char *handle)
{
    const char *db = strrchr(handle, '/') + 1;
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    admin_exec(sql);
}

/* A row that breaks a deferred foreign key makes COMMIT itself fail.
 * Jobs whose model is "poison" write one. */
static const char poison_sql[] =
    "CREATE TABLE poison (job_id TEXT REFERENCES jobs(id)"
    "  DEFERRABLE INITIALLY DEFERRED);"
    "CREATE FUNCTION poison_row() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN INSERT INTO poison VALUES ('no-such-job'); RETURN NEW; END $$;"
    "CREATE TRIGGER poison_jobs AFTER INSERT ON jobs FOR EACH ROW"
    "  WHEN (NEW.model = 'poison') EXECUTE FUNCTION poison_row();";

static const char *pg_poison(const char *handle)
{
    raw_exec(handle, poison_sql);
    return "violates foreign key constraint";
}

static const vg_store_backend_test pg_backend = {
    .name = "store contract on postgres",
    .open = pg_open,
    .reopen = open_url,
    .remove = pg_remove,
    .count = raw_int,
    .exec = raw_exec_rc,
    .poison = pg_poison,
};

/* ---- its own ----------------------------------------------------------- */

/* Instances starting together on a new database: one migrates, the
 * others wait on the advisory lock and find the schema made. */
static void *open_and_close(void *arg)
{
    vg_error err;
    vg_store *store = vg_store_open_postgres(arg, 2, &err);
    if (store == NULL)
        return strdup(err.message);
    vg_store_close(store);
    return NULL;
}

static void test_concurrent_starts_migrate_once(void **state)
{
    (void)state;
    char url[512];
    fresh_database("migrate", url, sizeof(url));
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, open_and_close, url), 0);
    for (int i = 0; i < 4; i++) {
        void *failure = NULL;
        pthread_join(threads[i], &failure);
        if (failure != NULL)
            fail_msg("a concurrent open failed: %s", (char *)failure);
    }
    assert_int_equal(raw_int(url, "SELECT count(*) FROM vg_schema"), 1);
    assert_int_equal(raw_int(url, "SELECT max(version) FROM vg_schema"), 1);
    /* And a later start changes nothing. */
    vg_store *store = open_url(url);
    vg_store_close(store);
    assert_int_equal(raw_int(url, "SELECT count(*) FROM vg_schema"), 1);
    pg_remove(url);
}

static void test_newer_database_is_refused(void **state)
{
    (void)state;
    char url[512];
    vg_store *store = pg_open("newer", url, sizeof(url));
    vg_store_close(store);
    raw_exec(url, "INSERT INTO vg_schema (version) VALUES (99)");
    vg_error err;
    memset(&err, 0, sizeof(err));
    assert_null(vg_store_open_postgres(url, 2, &err));
    assert_non_null(strstr(err.message, "newer than this build"));
    pg_remove(url);
}

static void test_unreachable_database_is_503(void **state)
{
    (void)state;
    vg_error err;
    memset(&err, 0, sizeof(err));
    /* Port 1 on loopback: nothing listens there. */
    assert_null(vg_store_open_postgres(
        "postgresql://vg@127.0.0.1:1/none?connect_timeout=2", 2, &err));
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "store_unavailable");
}

/* An asynchronous batch in which one call fails on its own (not an answer
 * of the function: an error) fails that write only; the others commit. */
typedef struct tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int rcs[16];
} tally;

static tally T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};

static void async_done(void *ctx, int rc)
{
    pthread_mutex_lock(&T.lock);
    T.rcs[(intptr_t)ctx] = rc;
    T.done++;
    pthread_cond_signal(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

static void test_failed_call_fails_only_its_write(void **state)
{
    (void)state;
    char url[512];
    vg_store *store = pg_open("failed_call", url, sizeof(url));
    vg_account a;
    vg_sc_new_account(store, "alice", 100000, &a);
    /* A trigger that raises at once (not at COMMIT) for one model. */
    raw_exec(url, "CREATE FUNCTION refuse_row() RETURNS trigger"
                  " LANGUAGE plpgsql AS $$ BEGIN"
                  " RAISE EXCEPTION 'refused by the test'; END $$;"
                  "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs"
                  " FOR EACH ROW WHEN (NEW.model = 'refused')"
                  " EXECUTE FUNCTION refuse_row();");
    enum { N = 12 };
    vg_job jobs[N];
    vg_error errs[N];
    memset(errs, 0, sizeof(errs));
    T.done = 0;
    for (int i = 0; i < N; i++) {
        vg_sc_fill_job(&jobs[i], a.id, 100);
        if (i == 5)
            snprintf(jobs[i].model, sizeof(jobs[i].model), "refused");
        assert_int_equal(
            store->ops->create_job_async(store, &jobs[i], NULL, NULL, &errs[i],
                                         async_done, (void *)(intptr_t)i),
            VG_STORE_OK);
    }
    pthread_mutex_lock(&T.lock);
    while (T.done < N)
        pthread_cond_wait(&T.cond, &T.lock);
    pthread_mutex_unlock(&T.lock);
    for (int i = 0; i < N; i++) {
        if (i == 5) {
            assert_int_equal(T.rcs[i], VG_STORE_ERROR);
            assert_non_null(strstr(errs[i].message, "refused by the test"));
        } else {
            assert_int_equal(T.rcs[i], VG_STORE_OK);
        }
    }
    assert_int_equal(raw_int(url, "SELECT count(*) FROM jobs"), N - 1);
    assert_int_equal(vg_sc_balance_of(store, a.id), 100000 - (N - 1) * 100);
    vg_sc_ledger_of(store, a.id);
    vg_store_close(store);
    pg_remove(url);
}

/* The server ending every connection (a restart, a failover): calls made
 * meanwhile fail with 503, and the store reconnects by itself. */
static void test_reconnects_after_connections_are_killed(void **state)
{
    (void)state;
    char url[512];
    vg_store *store = pg_open("reconnect", url, sizeof(url));
    vg_account a;
    vg_sc_new_account(store, "alice", 5000, &a);
    const char *db = strrchr(url, '/') + 1;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE datname = '%s' AND pid <> pg_backend_pid()",
             db);
    admin_exec(sql);
    /* The pooled connection that was killed answers once with an error,
     * and is replaced. */
    vg_error err;
    vg_account got;
    int rc = VG_STORE_ERROR;
    for (int i = 0; i < 3 && rc != VG_STORE_OK; i++) {
        memset(&err, 0, sizeof(err));
        rc = store->ops->get_account(store, a.id, &got, &err);
        if (rc != VG_STORE_OK)
            assert_int_equal(err.status, 503);
    }
    assert_int_equal(rc, VG_STORE_OK);
    assert_int_equal(got.balance, 5000);
    /* The batch writer's connection too. */
    vg_job job;
    T.done = 0;
    for (int i = 0; i < 3; i++) {
        vg_sc_fill_job(&job, a.id, 100);
        T.done = 0;
        assert_int_equal(store->ops->create_job_async(store, &job, NULL, NULL,
                                                      &err, async_done,
                                                      (void *)0),
                         VG_STORE_OK);
        pthread_mutex_lock(&T.lock);
        while (T.done < 1)
            pthread_cond_wait(&T.cond, &T.lock);
        pthread_mutex_unlock(&T.lock);
        if (T.rcs[0] == VG_STORE_OK)
            break;
        assert_int_equal(err.status, 503);
    }
    assert_int_equal(T.rcs[0], VG_STORE_OK);
    vg_sc_ledger_of(store, a.id);
    vg_store_close(store);
    pg_remove(url);
}

/* A revocation through another instance moves this one's epoch within a
 * second (LISTEN/NOTIFY), without this one asking the database. */
static void test_revocation_elsewhere_moves_the_epoch(void **state)
{
    (void)state;
    char url[512];
    vg_store *here = pg_open("epoch", url, sizeof(url));
    vg_store *there = open_url(url);
    vg_error err;
    vg_account a;
    vg_sc_new_account(here, "alice", 1, &a);
    vg_api_key k;
    assert_int_equal(
        here->ops->create_key(here, a.id, "k", "hash-e", "vg_e", &k, &err),
        VG_STORE_OK);
    uint64_t before = 0, now = 0;
    assert_int_equal(here->ops->keys_epoch(here, &before, &err), VG_STORE_OK);
    assert_int_equal(there->ops->revoke_key(there, k.id, &err), VG_STORE_OK);
    int64_t deadline = vg_monotonic_ms() + 1000;
    do {
        assert_int_equal(here->ops->keys_epoch(here, &now, &err), VG_STORE_OK);
        if (now != before)
            break;
        usleep(5000);
    } while (vg_monotonic_ms() < deadline);
    assert_true(now != before);
    vg_store_close(there);
    vg_store_close(here);
    pg_remove(url);
}

int main(void)
{
    vg_log_set_quiet(1);
    int failed = vg_store_contract_run(&pg_backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_starts_migrate_once),
        cmocka_unit_test(test_newer_database_is_refused),
        cmocka_unit_test(test_unreachable_database_is_503),
        cmocka_unit_test(test_failed_call_fails_only_its_write),
        cmocka_unit_test(test_reconnects_after_connections_are_killed),
        cmocka_unit_test(test_revocation_elsewhere_moves_the_epoch),
    };
    failed += cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
    return failed;
}
