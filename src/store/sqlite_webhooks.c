/*
 * sqlite_webhooks.c - webhooks in the SQLite backend of store.h: each
 * account's signing secret, and the outbox of deliveries. A delivery is
 * queued in the transaction that ends its job (sqlite_queue_delivery),
 * claimed under a lease by a sender, and given the outcome of each
 * attempt until it is delivered or has failed for good.
 */
#include "store/sqlite_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "util/crypto.h"

/* Every column of a vg_delivery, in the order read_delivery expects. */
#define DELIVERY_COLUMNS                                                      \
    "id, job_id, account_id, url, state, attempts, last_status, "             \
    "last_error, created_ms, next_attempt_ms, updated_ms"

/* ---- webhook secrets --------------------------------------------------- */

/* Reads an account's webhook secret: OK with it in out, NOT_FOUND for no
 * account, and OK with *missing set when the account has none yet. */
static int read_webhook_secret(sqlite_store *s, const char *account_id,
                               char *out, size_t n, bool *missing,
                               vg_error *err)
{
    sqlite3_stmt *stmt = sqlite_prepare(
        s, "SELECT webhook_secret FROM accounts WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    *missing = false;
    int step = sqlite_bind_text(stmt, 1, account_id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 0) == SQLITE_NULL)
            *missing = true;
        else
            rc = sqlite_copy_setting(stmt, "webhook_secret", out, n, err);
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "account", account_id);
    } else {
        rc = sqlite_fail(s, err, "reading a webhook secret");
    }
    sqlite_release(s, stmt);
    return rc;
}

typedef struct secret_write {
    const char *account_id, *secret;
    char *out;
    size_t n;
} secret_write;

static int store_webhook_secret_in_tx(sqlite_store *s, void *arg,
                                      vg_error *err)
{
    const secret_write *w = arg;
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "UPDATE accounts SET webhook_secret = ?2"
                       " WHERE id = ?1 AND webhook_secret IS NULL",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, w->account_id);
    b |= sqlite_bind_text(stmt, 2, w->secret);
    int rc = sqlite_run(s, stmt, b, "storing a webhook secret", err);
    /* Whether ours or a racing caller's won, this reads the winner. */
    bool missing = false;
    if (rc == VG_STORE_OK)
        rc =
            read_webhook_secret(s, w->account_id, w->out, w->n, &missing, err);
    if (rc == VG_STORE_OK && missing)
        rc = vg_error_set(err, 500, "store_error", NULL,
                          "the webhook secret of %s was not stored",
                          w->account_id);
    return rc;
}

int sqlite_op_get_webhook_secret(vg_store *store, const char *account_id,
                                 const char *candidate, char *out, size_t n,
                                 vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    if (candidate == NULL || candidate[0] == '\0')
        return vg_store_invalid(err, "secret",
                                "a candidate secret is required");
    /* Every delivery signs with the secret, and all but the first find
     * it stored: a read, without a write transaction. */
    bool missing = false;
    pthread_mutex_lock(&s->lock);
    int rc = read_webhook_secret(s, account_id, out, n, &missing, err);
    pthread_mutex_unlock(&s->lock);
    if (rc != VG_STORE_OK || !missing)
        return rc;
    secret_write w = {account_id, candidate, out, n};
    return sqlite_write_tx(s, store_webhook_secret_in_tx, &w, err);
}

static int rotate_webhook_secret_in_tx(sqlite_store *s, void *arg,
                                       vg_error *err)
{
    const secret_write *w = arg;
    sqlite3_stmt *stmt = sqlite_prepare(
        s, "UPDATE accounts SET webhook_secret = ?2 WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, w->account_id);
    b |= sqlite_bind_text(stmt, 2, w->secret);
    int rc = sqlite_run(s, stmt, b, "rotating a webhook secret", err);
    if (rc == VG_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = vg_store_not_found(err, "account", w->account_id);
    return rc;
}

int sqlite_op_rotate_webhook_secret(vg_store *store, const char *account_id,
                                    const char *new_secret, vg_error *err)
{
    if (new_secret == NULL || new_secret[0] == '\0')
        return vg_store_invalid(err, "secret", "a new secret is required");
    secret_write w = {account_id, new_secret, NULL, 0};
    return sqlite_write_tx(sqlite_store_of(store), rotate_webhook_secret_in_tx,
                           &w, err);
}

/* ---- webhook deliveries ------------------------------------------------ */

/* Queues the webhook of a job that just ended, due at once, when the job
 * has a webhook URL. Runs in the transaction that ends the job, so the
 * message exists exactly when the end does. */
int sqlite_queue_delivery(sqlite_store *s, const char *job_id, int64_t at,
                          vg_error *err)
{
    unsigned char random[16];
    char id[sizeof(((vg_delivery *)0)->id)];
    if (vg_random_bytes(random, sizeof(random)) != 0)
        return vg_error_set(err, 500, "store_error", NULL,
                            "no randomness for a webhook message id");
    memcpy(id, "msg_", 4);
    vg_hex_encode(random, sizeof(random), id + 4);

    sqlite3_stmt *stmt = sqlite_prepare(
        s,
        "INSERT INTO webhook_deliveries (id, job_id, account_id, url,"
        " state, attempts, last_status, last_error, created_ms,"
        " next_attempt_ms, updated_ms)"
        " SELECT ?1, id, account_id, webhook_url, 'pending', 0, 0, '',"
        " ?3, ?3, ?3 FROM jobs"
        " WHERE id = ?2 AND webhook_url IS NOT NULL AND webhook_url <> ''",
        err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, id);
    b |= sqlite_bind_text(stmt, 2, job_id);
    b |= sqlite3_bind_int64(stmt, 3, at);
    return sqlite_run(s, stmt, b, "queueing a webhook", err);
}

static bool parse_delivery_state(const char *name, vg_delivery_state *out)
{
    static const vg_delivery_state states[] = {
        VG_DELIVERY_PENDING, VG_DELIVERY_DELIVERED, VG_DELIVERY_FAILED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(name, vg_delivery_state_name(states[i])) == 0) {
            *out = states[i];
            return true;
        }
    }
    return false;
}

/* Fills *out from a row of DELIVERY_COLUMNS. */
static int read_delivery(sqlite3_stmt *stmt, vg_delivery *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    sqlite_copy_text(stmt, 0, out->id, sizeof(out->id));
    sqlite_copy_text(stmt, 1, out->job_id, sizeof(out->job_id));
    sqlite_copy_text(stmt, 2, out->account_id, sizeof(out->account_id));
    sqlite_copy_text(stmt, 3, out->url, sizeof(out->url));
    const char *state = (const char *)sqlite3_column_text(stmt, 4);
    if (state == NULL || !parse_delivery_state(state, &out->state))
        return vg_error_set(err, 500, "store_error", NULL,
                            "delivery %s has an unknown state", out->id);
    out->attempts = sqlite3_column_int(stmt, 5);
    out->last_status = sqlite3_column_int(stmt, 6);
    sqlite_copy_text(stmt, 7, out->last_error, sizeof(out->last_error));
    out->created_ms = sqlite3_column_int64(stmt, 8);
    out->next_attempt_ms = sqlite3_column_int64(stmt, 9);
    out->updated_ms = sqlite3_column_int64(stmt, 10);
    return VG_STORE_OK;
}

static int read_delivery_row(sqlite3_stmt *stmt, void *out, vg_error *err)
{
    return read_delivery(stmt, out, err);
}

static int gather_deliveries(sqlite_store *s, sqlite3_stmt *stmt,
                             row_buffer *rows, vg_error *err)
{
    return sqlite_gather_rows(s, stmt, rows, read_delivery_row,
                              "listing webhook deliveries", err);
}

static int hand_out_deliveries(row_buffer *rows, int rc,
                               int (*each)(void *ctx, const vg_delivery *d),
                               void *ctx)
{
    const vg_delivery *all = rows->items;
    for (size_t i = 0; rc == VG_STORE_OK && i < rows->count; i++)
        rc = each(ctx, &all[i]);
    free(rows->items);
    return rc;
}

typedef struct delivery_claim {
    int64_t now, until;
    int limit;
    row_buffer rows;
} delivery_claim;

static int claim_deliveries_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    delivery_claim *c = arg;
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries"
                       " WHERE state = 'pending' AND next_attempt_ms <= ?1"
                       " ORDER BY next_attempt_ms, rowid LIMIT ?2",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int rc;
    int b = sqlite3_bind_int64(stmt, 1, c->now);
    b |= sqlite3_bind_int(stmt, 2, c->limit);
    if (b != SQLITE_OK)
        rc = sqlite_fail(s, err, "claiming webhook deliveries");
    else
        rc = gather_deliveries(s, stmt, &c->rows, err);
    sqlite_release(s, stmt);

    /* The lease is written after the scan, not during it: moving a row's
     * next_attempt_ms while walking the index on it could meet the row
     * again further on. */
    vg_delivery *all = c->rows.items;
    for (size_t i = 0; rc == VG_STORE_OK && i < c->rows.count; i++) {
        stmt =
            sqlite_prepare(s,
                           "UPDATE webhook_deliveries SET next_attempt_ms = ?2"
                           " WHERE id = ?1",
                           err);
        if (stmt == NULL)
            return VG_STORE_ERROR;
        b = sqlite_bind_text(stmt, 1, all[i].id);
        b |= sqlite3_bind_int64(stmt, 2, c->until);
        rc = sqlite_run(s, stmt, b, "leasing a webhook delivery", err);
        all[i].next_attempt_ms = c->until;
    }
    return rc;
}

int sqlite_op_claim_deliveries(vg_store *store, int64_t now, int64_t lease_ms,
                               int limit,
                               int (*each)(void *ctx, const vg_delivery *d),
                               void *ctx, vg_error *err)
{
    if (vg_store_check_claim(limit, lease_ms, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    delivery_claim c;
    memset(&c, 0, sizeof(c));
    c.now = now > 0 ? now : vg_now_ms();
    c.until = lease_ms < INT64_MAX - c.now ? c.now + lease_ms : INT64_MAX;
    c.limit = limit;
    c.rows.size = sizeof(vg_delivery);
    /* The callbacks run after the commit: a delivery is attempted only
     * once its lease is durable, so no other claimer can take it too. */
    int rc = sqlite_write_tx(sqlite_store_of(store), claim_deliveries_in_tx,
                             &c, err);
    return hand_out_deliveries(&c.rows, rc, each, ctx);
}

typedef struct delivery_finish {
    const char *id;
    const char *state;
    int status;
    const char *error;
    int error_len;
    int64_t next_attempt_ms, at;
} delivery_finish;

static int finish_delivery_in_tx(sqlite_store *s, void *arg, vg_error *err)
{
    const delivery_finish *f = arg;
    /* Only a pending delivery takes an outcome: a late report of an
     * attempt whose lease ran out must not undo a delivery since. */
    sqlite3_stmt *stmt =
        sqlite_prepare(s,
                       "UPDATE webhook_deliveries SET attempts = attempts + 1,"
                       " state = ?2, last_status = ?3, last_error = ?4,"
                       " next_attempt_ms = ?5, updated_ms = ?6"
                       " WHERE id = ?1 AND state = 'pending'",
                       err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int b = sqlite_bind_text(stmt, 1, f->id);
    b |= sqlite_bind_text(stmt, 2, f->state);
    b |= sqlite3_bind_int(stmt, 3, f->status);
    b |= sqlite3_bind_text(stmt, 4, f->error, f->error_len, SQLITE_STATIC);
    b |= sqlite3_bind_int64(stmt, 5, f->next_attempt_ms);
    b |= sqlite3_bind_int64(stmt, 6, f->at);
    int rc = sqlite_run(s, stmt, b, "recording a webhook attempt", err);
    if (rc != VG_STORE_OK || sqlite3_changes(s->db) > 0)
        return rc;

    stmt = sqlite_prepare(
        s, "SELECT state FROM webhook_deliveries WHERE id = ?1", err);
    if (stmt == NULL)
        return VG_STORE_ERROR;
    int step = sqlite_bind_text(stmt, 1, f->id);
    if (step == SQLITE_OK)
        step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        rc = vg_store_delivery_conflict(
            err, f->id, (const char *)sqlite3_column_text(stmt, 0));
    } else if (step == SQLITE_DONE) {
        rc = vg_store_not_found(err, "webhook delivery", f->id);
    } else {
        rc = sqlite_fail(s, err, "reading a webhook delivery");
    }
    sqlite_release(s, stmt);
    return rc;
}

int sqlite_op_finish_delivery(vg_store *store, const char *id,
                              const vg_delivery_outcome *outcome,
                              vg_error *err)
{
    vg_store_attempt a;
    vg_store_attempt_of(outcome, &a);
    delivery_finish f;
    memset(&f, 0, sizeof(f));
    f.id = id;
    f.status = outcome->status;
    f.at = a.at;
    f.state = a.state;
    f.next_attempt_ms = a.next_attempt_ms;
    f.error = a.error;
    f.error_len = (int)a.error_len;
    return sqlite_write_tx(sqlite_store_of(store), finish_delivery_in_tx, &f,
                           err);
}

int sqlite_op_next_delivery_ms(vg_store *store, int64_t *when, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    pthread_mutex_lock(&s->lock);
    int rc = VG_STORE_ERROR;
    sqlite3_stmt *stmt = sqlite_prepare(s,
                                        "SELECT next_attempt_ms"
                                        " FROM webhook_deliveries"
                                        " WHERE state = 'pending'"
                                        " ORDER BY next_attempt_ms LIMIT 1",
                                        err);
    if (stmt != NULL) {
        int step = sqlite3_step(stmt);
        if (step == SQLITE_ROW || step == SQLITE_DONE) {
            *when = step == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
            rc = VG_STORE_OK;
        } else {
            rc = sqlite_fail(s, err, "reading the next webhook delivery");
        }
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sqlite_op_list_deliveries(vg_store *store, const char *job_id,
                              int (*each)(void *ctx, const vg_delivery *d),
                              void *ctx, vg_error *err)
{
    sqlite_store *s = sqlite_store_of(store);
    row_buffer rows = {NULL, 0, 0, sizeof(vg_delivery)};
    int rc = VG_STORE_ERROR;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *stmt = sqlite_prepare(
        s,
        "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE job_id = ?1"
        " ORDER BY created_ms, rowid",
        err);
    if (stmt != NULL) {
        if (sqlite_bind_text(stmt, 1, job_id) != SQLITE_OK)
            rc = sqlite_fail(s, err, "listing webhook deliveries");
        else
            rc = gather_deliveries(s, stmt, &rows, err);
        sqlite_release(s, stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return hand_out_deliveries(&rows, rc, each, ctx);
}
