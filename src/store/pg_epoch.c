/*
 * pg_epoch.c - the keys epoch of the PostgreSQL backend, read from
 * memory. Every authenticated request asks for it (core/auth.c caches key
 * lookups under it), so it must not cost a round trip. A watcher thread
 * keeps a copy: it LISTENs on the channel vg_keys, which every revocation
 * and limit change notifies when it commits (pg_schema.c), and reads the
 * epoch again on each notification and at least every POLL_MS, in case a
 * notification was lost with a connection. A revocation made on any
 * instance therefore reaches every other one within milliseconds, and
 * within POLL_MS at worst.
 *
 * A copy that has not been refreshed for STALE_MS (the database is out of
 * reach) is not handed out: keys_epoch fails, and callers look the key up
 * instead of trusting their cache.
 */
#include "store/pg_internal.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 500
#define STALE_MS 2000

static const char epoch_sql[] =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM keys_epoch";

static bool closing(pg_store *s)
{
    return __atomic_load_n(&s->closing, __ATOMIC_ACQUIRE);
}

/* Reads the epoch on conn into the store's copy. */
static bool refresh(pg_store *s, PGconn *conn)
{
    PGresult *res = PQexec(conn, epoch_sql);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        pg_epoch_set(s, (uint64_t)pg_col_int64(res, 0, 0));
    PQclear(res);
    return ok;
}

void pg_epoch_set(pg_store *s, uint64_t epoch)
{
    pthread_mutex_lock(&s->epoch_lock);
    /* Never backwards: a refresh that read before a revocation this
     * process saw must not undo it. */
    if (epoch > s->epoch)
        s->epoch = epoch;
    s->epoch_at_ms = vg_monotonic_ms();
    pthread_mutex_unlock(&s->epoch_lock);
}

/* Reads the epoch through the pool, for the process's own changes: the
 * caller sees its revocation at once, without waiting for the watcher. */
void pg_epoch_refresh(pg_store *s)
{
    vg_error ignored;
    PGresult *res =
        pg_run(s, PG_KEYS_EPOCH, NULL, "reading the keys epoch", &ignored);
    if (res != NULL && PQntuples(res) == 1)
        pg_epoch_set(s, (uint64_t)pg_col_int64(res, 0, 0));
    PQclear(res);
}

int pg_op_keys_epoch(vg_store *store, uint64_t *epoch, vg_error *err)
{
    pg_store *s = pg_store_of(store);
    pthread_mutex_lock(&s->epoch_lock);
    bool fresh = vg_monotonic_ms() - s->epoch_at_ms <= STALE_MS;
    *epoch = s->epoch;
    pthread_mutex_unlock(&s->epoch_lock);
    if (!fresh)
        return vg_error_set(err, 503, "store_unavailable", NULL,
                            "the keys epoch has not been read for over %d "
                            "ms",
                            STALE_MS);
    return VG_STORE_OK;
}

static PGconn *listen_conn(pg_store *s)
{
    PGconn *conn = PQconnectdb(s->url);
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, "LISTEN vg_keys");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (ok)
            return conn;
    }
    PQfinish(conn);
    return NULL;
}

void *pg_epoch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-keys");
    pg_store *s = arg;
    PGconn *conn = NULL;
    while (!closing(s)) {
        if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = listen_conn(s);
        }
        /* Listening first, then reading: a change committed in between
         * is both read and notified, never neither. */
        if (conn != NULL && !refresh(s, conn)) {
            PQfinish(conn);
            conn = NULL;
        }
        /* The store's wake descriptor ends the wait at close. */
        struct pollfd p[2] = {{s->wake_fd, POLLIN, 0},
                              {conn != NULL ? PQsocket(conn) : -1, POLLIN, 0}};
        poll(p, 2, conn != NULL ? POLL_MS : POLL_MS / 5);
        if (conn != NULL) {
            PQconsumeInput(conn);
            PGnotify *n;
            while ((n = PQnotifies(conn)) != NULL)
                PQfreemem(n);
        }
    }
    PQfinish(conn);
    return NULL;
}
