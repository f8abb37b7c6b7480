/*
 * sqlite_accounts.c - accounts, API keys, credits and the ledger journal
 * in the SQLite backend of store.h. Every write here goes through the
 * group commit of store_sqlite.c; jobs share the helpers that move money
 * (sqlite_select_account, sqlite_move_balance, sqlite_append_ledger), so
 * that the balance and the journal are written in one place.
 *
 * Money lives in two records that ledger_rows compares: the balance column
 * of accounts, and the append-only ledger journal together with the
 * reservation state of each job. Every operation that moves money updates
 * both in one transaction.
 *
 * API keys are read on every request and cached by every process that
 * serves them; a revocation or a change of limits bumps the keys epoch, a
 * counter in a small file beside the database that every process maps,
 * so the caches notice without a query.
 */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crypto.h"

/* ---- accounts ---------------------------------------------------------- */

static void read_account(sqlite3_stmt *stmt, int col, vg_account *out)
{
    sqlite_copy_text(stmt, col, out->id, sizeof(out->id));
    sqlite_copy_text(stmt, col + 1, out->name, sizeof(out->name));
    out->balance = sqlite3_column_int64(stmt, col + 2);
    out->created_ms = sqlite3_column_int64(stmt, col + 3);
    out->updated_ms = sqlite3_column_int64(stmt, col + 4);
}

int sqlite_op_count_accounts(vg_store *store, int64_t *count, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt =
        sqlite_prepare(s, "SELECT COUNT(*) FROM accounts", err);
    if (stmt != NULL) {
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            *count = sqlite3_column_int64(stmt, 0);
            rc = VG_STORE_OK;
        } else {
            rc = sqlite_fail(s, err, "counting accounts");
        }
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int insert_account(sqlite_store *s, const vg_account *a, vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "INSERT INTO accounts (id, name, balance, "
                       "created_ms, updated_ms) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, a->id);
    b |= sqlite_bind_text(stmt, 2, a->name);
    b |= sqlite3_bind_int64(stmt, 3, a->balance);
    b |= sqlite3_bind_int64(stmt, 4, a->created_ms);
    b |= sqlite3_bind_int64(stmt, 5, a->updated_ms);
    return sqlite_run(s, stmt, b, "creating an account", err);
}

static int create_account_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const vg_account *a = arg;
    int rc = insert_account(s, a, err);
    /* A zero grant would only add noise to the journal. */
    if (rc == VG_STORE_OK && a->balance > 0)
        rc = sqlite_append_ledger(s, a->id, "grant", a->balance, NULL,
                                  "initial grant", a->created_ms, err);
    return rc;
}

int sqlite_op_create_account(vg_store *store, const char *name,
                             int64_t credits, vg_account *out, vg_error *err)
{
    if (vg_store_check_name(name, sizeof(out->name), err) != VG_STORE_OK ||
        vg_store_check_credits(credits, err) != VG_STORE_OK)
        return VG_STORE_ERROR;

    vg_account a;
    memset(&a, 0, sizeof(a));
    vg_uuid_v4(a.id);
    snprintf(a.name, sizeof(a.name), "%s", name);
    a.balance = credits;
    a.created_ms = a.updated_ms = vg_now_ms();

    int rc =
        sqlite_write_tx(sqlite_store_of(store), create_account_in_tx, &a, err);
    if (rc == VG_STORE_OK && out != NULL)
        *out = a;
    return rc;
}

int sqlite_select_account(sqlite_store *s, const char *id, vg_account *out,
                          vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "SELECT id, name, balance, created_ms, "
                       "updated_ms FROM accounts WHERE id = ?1",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        read_account(stmt, 0, out);
        rc = VG_STORE_OK;
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "account", id);
    } else {
        rc = sqlite_fail(s, err, "reading an account");
    }
    sqlite_release(s, stmt);
    return rc;
}

int sqlite_op_get_account(vg_store *store, const char *id, vg_account *out,
                          vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = sqlite_select_account(s, id, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Adds (or, with a negative delta, takes) credits from an account's
 * balance column; the caller journals the movement. */
int sqlite_move_balance(sqlite_store *s, const char *account_id, int64_t delta,
                        int64_t at_ms, vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "UPDATE accounts SET balance = balance + ?1,"
                       " updated_ms = ?2 WHERE id = ?3",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite3_bind_int64(stmt, 1, delta);
    b |= sqlite3_bind_int64(stmt, 2, at_ms);
    b |= sqlite_bind_text(stmt, 3, account_id);
    return sqlite_run(s, stmt, b, "updating a balance", err);
}

typedef struct grant {
    const char *account_id;
    int64_t amount;
    const char *note;
} grant;

static int grant_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const grant *g = arg;
    vg_account a;
    int rc = sqlite_select_account(s, g->account_id, &a, err);
    if (rc != VG_STORE_OK)
        return rc;
    /* SQLite turns an overflowing integer sum into a float; refuse it
     * here rather than store a balance that is no longer exact. */
    if (g->amount > INT64_MAX - a.balance)
        return vg_store_invalid(err, "amount",
                                "the grant would overflow the balance");
    int64_t at = vg_now_ms();
    rc = sqlite_move_balance(s, g->account_id, g->amount, at, err);
    if (rc == VG_STORE_OK)
        rc = sqlite_append_ledger(s, g->account_id, "grant", g->amount, NULL,
                                  g->note, at, err);
    return rc;
}

int sqlite_op_grant_credits(vg_store *store, const char *account_id,
                            int64_t amount, const char *note, vg_error *err)
{
    if (amount <= 0)
        return vg_store_invalid(err, "amount", "a grant must be positive");
    grant g = {account_id, amount, note};
    return sqlite_write_tx(sqlite_store_of(store), grant_in_tx, &g, err);
}

/* ---- API keys ---------------------------------------------------------- */

#define KEY_COLUMNS                                                           \
    "k.id, k.account_id, k.name, k.prefix, k.created_ms, "                    \
    "k.revoked_ms IS NOT NULL, k.rpm_limit, k.jobs_limit"

/* How many columns read_key reads, for queries that select more. */
#define KEY_COLUMN_COUNT 8

static void read_key(sqlite3_stmt *stmt, vg_api_key *out)
{
    sqlite_copy_text(stmt, 0, out->id, sizeof(out->id));
    sqlite_copy_text(stmt, 1, out->account_id, sizeof(out->account_id));
    sqlite_copy_text(stmt, 2, out->name, sizeof(out->name));
    sqlite_copy_text(stmt, 3, out->prefix, sizeof(out->prefix));
    out->created_ms = sqlite3_column_int64(stmt, 4);
    out->revoked = sqlite3_column_int(stmt, 5) != 0;
    out->rpm_limit = sqlite3_column_int(stmt, 6);
    out->jobs_limit = sqlite3_column_int(stmt, 7);
}

typedef struct key_create {
    const vg_api_key *key;
    const char *key_hash;
} key_create;

static int create_key_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_create *c = arg;
    const vg_api_key *k = c->key;
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "INSERT INTO api_keys (id, account_id, name,"
                       " key_hash, prefix, created_ms) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, k->id);
    step |= sqlite_bind_text(stmt, 2, k->account_id);
    step |= sqlite_bind_text(stmt, 3, k->name);
    step |= sqlite_bind_text(stmt, 4, c->key_hash);
    step |= sqlite_bind_text(stmt, 5, k->prefix);
    step |= sqlite3_bind_int64(stmt, 6, k->created_ms);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    /* The constraints decide atomically what a check-then-insert could
     * only approximate. */
    int ext = sqlite3_extended_errcode(s->db);
    if (step == SQLITE_DONE) {
        rc = VG_STORE_OK;
    } else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = vg_store_not_found(err, "account", k->account_id);
    } else if (ext == SQLITE_CONSTRAINT_UNIQUE) {
        rc = vg_store_key_hash_taken(err);
    } else {
        rc = sqlite_fail(s, err, "creating an API key");
    }
    sqlite_release(s, stmt);
    return rc;
}

int sqlite_op_create_key(vg_store *store, const char *account_id,
                         const char *name, const char *key_hash,
                         const char *prefix, vg_api_key *out, vg_error *err)
{
    if (vg_store_check_key(account_id, name, key_hash, prefix, err) !=
        VG_STORE_OK)
        return err->status == 404 ? VG_STORE_NOT_FOUND : VG_STORE_ERROR;
    vg_api_key k;
    memset(&k, 0, sizeof(k));
    vg_uuid_v4(k.id);
    snprintf(k.account_id, sizeof(k.account_id), "%s", account_id);
    snprintf(k.name, sizeof(k.name), "%s", name);
    snprintf(k.prefix, sizeof(k.prefix), "%s", prefix);
    k.created_ms = vg_now_ms();
    k.rpm_limit = -1;
    k.jobs_limit = -1;

    key_create c = {&k, key_hash};
    int rc =
        sqlite_write_tx(sqlite_store_of(store), create_key_in_tx, &c, err);
    if (rc == VG_STORE_OK && out != NULL)
        *out = k;
    return rc;
}

/* Reads the one key a "WHERE ... = ?1" query selects. */
static int select_key(sqlite_store *s, const char *sql, const char *value,
                      const char *what, vg_api_key *out, vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(s, sql, err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int step = sqlite_bind_text(stmt, 1, value);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        read_key(stmt, out);
        rc = VG_STORE_OK;
    } else if (step == SQLITE_DONE) {
        vg_error_set(err, 404, "not_found", NULL, "no such API key%s%s",
                     what ? " " : "", what ? what : "");
        rc = VG_STORE_NOT_FOUND;
    } else {
        rc = sqlite_fail(s, err, "reading an API key");
    }
    sqlite_release(s, stmt);
    return rc;
}

int sqlite_op_find_key_by_hash(vg_store *store, const char *key_hash,
                               vg_api_key *out, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    /* The message names no hash: it may end up in a log line. */
    int rc = select_key(
        s, "SELECT " KEY_COLUMNS " FROM api_keys k WHERE k.key_hash = ?1",
        key_hash, NULL, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sqlite_op_get_key(vg_store *store, const char *id, vg_api_key *out,
                      vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = select_key(s,
                        "SELECT " KEY_COLUMNS " FROM api_keys k"
                        " WHERE k.id = ?1",
                        id, id, out, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sqlite_map_keys_epoch(sqlite_store *s, vg_error *err)
{
    int fd = open(s->epoch_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    int ok = fd >= 0 && fstat(fd, &st) == 0 &&
             (st.st_size >= (off_t)sizeof(uint64_t) ||
              ftruncate(fd, sizeof(uint64_t)) == 0);
    void *map = ok ? mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE,
                          MAP_SHARED, fd, 0)
                   : MAP_FAILED;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (map == MAP_FAILED)
        return vg_error_set(err, 500, "store_error", NULL, "cannot map %s: %s",
                            s->epoch_path, strerror(saved));
    s->epoch = map;
    return VG_STORE_OK;
}

/* Tells every process's key cache that a key changed. Call it after the
 * change is committed, so that a cache reloading at once sees it. */
static void bump_keys_epoch(sqlite_store *s)
{
    __atomic_add_fetch(s->epoch, 1, __ATOMIC_SEQ_CST);
}

typedef struct key_revoke {
    const char *id;
    int64_t at;
} key_revoke;

static int revoke_key_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_revoke *r = arg;
    /* Revoking twice keeps the first time and is not an error: the key
     * is revoked either way. */
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "UPDATE api_keys SET revoked_ms ="
                       " COALESCE(revoked_ms, ?2) WHERE id = ?1",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, r->id);
    b |= sqlite3_bind_int64(stmt, 2, r->at);
    int rc = sqlite_run(s, stmt, b, "revoking an API key", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = vg_store_not_found(err, "API key", r->id);
    return rc;
}

int sqlite_op_revoke_key(vg_store *store, const char *id, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    key_revoke r = {id, vg_now_ms()};
    int rc = sqlite_write_tx(s, revoke_key_in_tx, &r, err);
    if (rc == VG_STORE_OK)
        bump_keys_epoch(s);
    return rc;
}

int sqlite_op_keys_epoch(vg_store *store, uint64_t *epoch, vg_error *err)
{
    (void)err;
    *epoch = __atomic_load_n(sqlite_store_of(store)->epoch, __ATOMIC_SEQ_CST);
    return VG_STORE_OK;
}

typedef struct key_row {
    vg_api_key key;
    vg_account account;
} key_row;

static int read_key_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    key_row *row = out;
    (void)err;
    read_key(stmt, &row->key);
    read_account(stmt, KEY_COLUMN_COUNT, &row->account);
    return VG_STORE_OK;
}

int sqlite_op_list_keys(vg_store *store,
                        int (*each)(void *ctx, const vg_api_key *key,
                                    const vg_account *account),
                        void *ctx, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(key_row)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "SELECT " KEY_COLUMNS ", a.id, a.name,"
                       " a.balance, a.created_ms, a.updated_ms"
                       " FROM api_keys k"
                       " JOIN accounts a ON a.id = k.account_id"
                       " ORDER BY k.created_ms, k.rowid",
                       err);
    if (stmt != NULL) {
        rc = sqlite_gather_rows(s, stmt, &rows, read_key_row,
                                "listing API keys", err);
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);

    const key_row *all = rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows.count; i++)
        rc = each(ctx, &all[i].key, &all[i].account);
    free(rows.items);
    return rc;
}

typedef struct key_limits {
    const char *id;
    int rpm_limit, jobs_limit;
} key_limits;

static int set_key_limits_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const key_limits *l = arg;
    sqlite3_stmt *stmt = sqlite_prepare(s,
                                        "UPDATE api_keys SET rpm_limit = ?2,"
                                        " jobs_limit = ?3 WHERE id = ?1",
                                        err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, l->id);
    b |= sqlite3_bind_int(stmt, 2, l->rpm_limit);
    b |= sqlite3_bind_int(stmt, 3, l->jobs_limit);
    int rc = sqlite_run(s, stmt, b, "setting the limits of an API key", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = vg_store_not_found(err, "API key", l->id);
    return rc;
}

int sqlite_op_set_key_limits(vg_store *store, const char *id, int rpm_limit,
                             int jobs_limit, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    if (vg_store_check_key_limits(rpm_limit, jobs_limit, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    key_limits l = {id, rpm_limit, jobs_limit};
    int rc = sqlite_write_tx(s, set_key_limits_in_tx, &l, err);
    /* Callers cache keys, limits included, until the epoch moves. */
    if (rc == VG_STORE_OK)
        bump_keys_epoch(s);
    return rc;
}

/* ---- ledger ------------------------------------------------------------ */

/* Appends one row to the ledger journal. */
int sqlite_append_ledger(sqlite_store *s, const char *account_id,
                         const char *kind, int64_t amount, const char *job_id,
                         const char *note, int64_t at_ms, vg_error *err)
{
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "INSERT INTO ledger (account_id, kind, "
                       "amount, job_id, note, created_ms) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, account_id);
    b |= sqlite_bind_text(stmt, 2, kind);
    b |= sqlite3_bind_int64(stmt, 3, amount);
    if (job_id != NULL)
        b |= sqlite_bind_text(stmt, 4, job_id);
    else
        b |= sqlite3_bind_null(stmt, 4);
    b |= sqlite_bind_text(stmt, 5, note);
    b |= sqlite3_bind_int64(stmt, 6, at_ms);
    return sqlite_run(s, stmt, b, "writing the ledger", err);
}

static int read_ledger_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    vg_ledger_row *row = out;
    (void)err;
    sqlite_copy_text(stmt, 0, row->account_id, sizeof(row->account_id));
    sqlite_copy_text(stmt, 1, row->name, sizeof(row->name));
    row->balance = sqlite3_column_int64(stmt, 2);
    row->grants = sqlite3_column_int64(stmt, 3);
    row->settled = sqlite3_column_int64(stmt, 4);
    row->open_reservations = sqlite3_column_int64(stmt, 5);
    return VG_STORE_OK;
}

int sqlite_op_ledger_rows(vg_store *store,
                          int (*each)(void *ctx, const vg_ledger_row *row),
                          void *ctx, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_ledger_row)};
    int rc = VG_STORE_ERROR;

    pthread_mutex_lock(&s->lock);
    /* One statement reads one snapshot, so the sums and the balance agree
     * unless the records themselves disagree. The sums never read the
     * balance column: grants come from the journal, charges and holds
     * from the jobs' reservation state. */
    sqlite3_stmt *stmt = sqlite_prepare(
        s,
        "SELECT a.id, a.name, a.balance,"
        " (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l"
        "   WHERE l.account_id = a.id AND l.kind = 'grant'),"
        " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
        "   WHERE j.account_id = a.id AND j.reservation = 'settled'),"
        " (SELECT COALESCE(SUM(j.price), 0) FROM jobs j"
        "   WHERE j.account_id = a.id AND j.reservation = 'open')"
        " FROM accounts a ORDER BY a.created_ms, a.rowid",
        err);
    if (stmt != NULL) {
        rc = sqlite_gather_rows(s, stmt, &rows, read_ledger_row,
                                "reading the ledger", err);
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);

    const vg_ledger_row *all = rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows.count; i++)
        rc = each(ctx, &all[i]);
    free(rows.items);
    return rc;
}
