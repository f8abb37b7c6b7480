/*
 * pg_accounts.c - accounts, API keys, credits and the ledger of the
 * PostgreSQL backend of store.h. Each write is one call of a function of
 * pg_schema.c; the checks and messages are those of every backend
 * (checks.h).
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/crypto.h"

/* ---- accounts ---------------------------------------------------------- */

static void read_account(const PGresult *res, int row, int col,
                         vg_account *out)
{
    pg_col_text(res, row, col, out->id, sizeof(out->id));
    pg_col_text(res, row, col + 1, out->name, sizeof(out->name));
    out->balance = pg_col_int64(res, row, col + 2);
    out->created_ms = pg_col_int64(res, row, col + 3);
    out->updated_ms = pg_col_int64(res, row, col + 4);
}

int pg_op_count_accounts(vg_store *store, int64_t *count, vg_error *err)
{
    PGresult *res = pg_run(pg_store_of(store), PG_COUNT_ACCOUNTS, NULL,
                           "counting accounts", err);
    if (res == NULL)
        return VG_STORE_ERROR;
    *count = pg_col_int64(res, 0, 0);
    PQclear(res);
    return VG_STORE_OK;
}

int pg_op_create_account(vg_store *store, const char *name, int64_t credits,
                         vg_account *out, vg_error *err)
{
    vg_account a;
    memset(&a, 0, sizeof(a));
    if (vg_store_check_name(name, sizeof(a.name), err) != VG_STORE_OK ||
        vg_store_check_credits(credits, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    vg_uuid_v4(a.id);
    snprintf(a.name, sizeof(a.name), "%s", name);
    a.balance = credits;
    a.created_ms = a.updated_ms = vg_now_ms();

    pg_params p = {0};
    pg_text(&p, a.id);
    pg_text(&p, a.name);
    pg_int(&p, a.balance);
    pg_int(&p, a.created_ms);
    int rc = pg_call(pg_store_of(store), PG_CREATE_ACCOUNT, &p,
                     "creating an account", NULL, 0, err);
    pg_params_clear(&p);
    if (rc == VG_STORE_OK && out != NULL)
        *out = a;
    return rc;
}

int pg_op_get_account(vg_store *store, const char *id, vg_account *out,
                      vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, id);
    PGresult *res = pg_run(pg_store_of(store), PG_GET_ACCOUNT, &p,
                           "reading an account", err);
    pg_params_clear(&p);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (PQntuples(res) == 0) {
        rc = vg_store_not_found(err, "account", id);
    } else {
        memset(out, 0, sizeof(*out));
        read_account(res, 0, 0, out);
    }
    PQclear(res);
    return rc;
}

int pg_op_grant_credits(vg_store *store, const char *account_id,
                        int64_t amount, const char *note, vg_error *err)
{
    if (amount <= 0)
        return vg_store_invalid(err, "amount", "a grant must be positive");
    pg_params p = {0};
    pg_text(&p, account_id);
    pg_int(&p, amount);
    pg_text(&p, note != NULL ? note : "");
    pg_int(&p, vg_now_ms());
    int rc = pg_call(pg_store_of(store), PG_GRANT, &p, "granting credits",
                     NULL, 0, err);
    pg_params_clear(&p);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_store_not_found(err, "account", account_id);
    if (rc == -2)
        return vg_store_invalid(err, "amount",
                                "the grant would overflow the balance");
    return rc;
}

/* ---- API keys ---------------------------------------------------------- */

static void read_key(const PGresult *res, int row, vg_api_key *out)
{
    pg_col_text(res, row, 0, out->id, sizeof(out->id));
    pg_col_text(res, row, 1, out->account_id, sizeof(out->account_id));
    pg_col_text(res, row, 2, out->name, sizeof(out->name));
    pg_col_text(res, row, 3, out->prefix, sizeof(out->prefix));
    out->created_ms = pg_col_int64(res, row, 4);
    out->revoked = pg_col_bool(res, row, 5);
    out->rpm_limit = (int)pg_col_int64(res, row, 6);
    out->jobs_limit = (int)pg_col_int64(res, row, 7);
}

/* How many columns read_key reads, for queries that select more. */
#define KEY_COLUMN_COUNT 8

int pg_op_create_key(vg_store *store, const char *account_id, const char *name,
                     const char *key_hash, const char *prefix, vg_api_key *out,
                     vg_error *err)
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

    pg_params p = {0};
    pg_text(&p, k.id);
    pg_text(&p, k.account_id);
    pg_text(&p, k.name);
    pg_text(&p, key_hash);
    pg_text(&p, k.prefix);
    pg_int(&p, k.created_ms);
    int rc = pg_call(pg_store_of(store), PG_CREATE_KEY, &p,
                     "creating an API key", NULL, 0, err);
    pg_params_clear(&p);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_store_not_found(err, "account", account_id);
    if (rc == VG_STORE_CONFLICT)
        return vg_store_key_hash_taken(err);
    if (rc == VG_STORE_OK && out != NULL)
        *out = k;
    return rc;
}

/* Reads the one key a statement selects by value; what names it in the
 * message (NULL: nothing, for a hash that may end up in a log line). */
static int select_key(vg_store *store, enum pg_stmt stmt, const char *value,
                      const char *what, vg_api_key *out, vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, value);
    PGresult *res =
        pg_run(pg_store_of(store), stmt, &p, "reading an API key", err);
    pg_params_clear(&p);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    if (PQntuples(res) == 0) {
        vg_error_set(err, 404, "not_found", NULL, "no such API key%s%s",
                     what ? " " : "", what ? what : "");
        rc = VG_STORE_NOT_FOUND;
    } else {
        memset(out, 0, sizeof(*out));
        read_key(res, 0, out);
    }
    PQclear(res);
    return rc;
}

int pg_op_find_key_by_hash(vg_store *store, const char *key_hash,
                           vg_api_key *out, vg_error *err)
{
    return select_key(store, PG_FIND_KEY, key_hash, NULL, out, err);
}

int pg_op_get_key(vg_store *store, const char *id, vg_api_key *out,
                  vg_error *err)
{
    return select_key(store, PG_GET_KEY, id, id, out, err);
}

/* A change to key id that callers' caches must see (a revocation, new
 * limits): the call, then this process's copy of the keys epoch read
 * again, so its own change shows at once. */
static int change_key(vg_store *store, enum pg_stmt stmt, pg_params *p,
                      const char *what, const char *id, vg_error *err)
{
    int rc = pg_call(pg_store_of(store), stmt, p, what, NULL, 0, err);
    pg_params_clear(p);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_store_not_found(err, "API key", id);
    if (rc == VG_STORE_OK)
        pg_epoch_refresh(pg_store_of(store));
    return rc;
}

int pg_op_revoke_key(vg_store *store, const char *id, vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, id);
    pg_int(&p, vg_now_ms());
    return change_key(store, PG_REVOKE_KEY, &p, "revoking an API key", id,
                      err);
}

int pg_op_list_keys(vg_store *store,
                    int (*each)(void *ctx, const vg_api_key *key,
                                const vg_account *account),
                    void *ctx, vg_error *err)
{
    PGresult *res = pg_run(pg_store_of(store), PG_LIST_KEYS, NULL,
                           "listing API keys", err);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    for (int i = 0; rc == VG_STORE_OK && i < PQntuples(res); i++) {
        vg_api_key key;
        vg_account account;
        memset(&key, 0, sizeof(key));
        memset(&account, 0, sizeof(account));
        read_key(res, i, &key);
        read_account(res, i, KEY_COLUMN_COUNT, &account);
        rc = each(ctx, &key, &account);
    }
    PQclear(res);
    return rc;
}

int pg_op_set_key_limits(vg_store *store, const char *id, int rpm_limit,
                         int jobs_limit, vg_error *err)
{
    if (vg_store_check_key_limits(rpm_limit, jobs_limit, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    pg_params p = {0};
    pg_text(&p, id);
    pg_int(&p, rpm_limit);
    pg_int(&p, jobs_limit);
    return change_key(store, PG_SET_KEY_LIMITS, &p,
                      "setting the limits of an API key", id, err);
}

/* ---- ledger ------------------------------------------------------------ */

int pg_op_ledger_rows(vg_store *store,
                      int (*each)(void *ctx, const vg_ledger_row *row),
                      void *ctx, vg_error *err)
{
    PGresult *res = pg_run(pg_store_of(store), PG_LEDGER_ROWS, NULL,
                           "reading the ledger", err);
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    for (int i = 0; rc == VG_STORE_OK && i < PQntuples(res); i++) {
        vg_ledger_row row;
        memset(&row, 0, sizeof(row));
        pg_col_text(res, i, 0, row.account_id, sizeof(row.account_id));
        pg_col_text(res, i, 1, row.name, sizeof(row.name));
        row.balance = pg_col_int64(res, i, 2);
        row.grants = pg_col_int64(res, i, 3);
        row.settled = pg_col_int64(res, i, 4);
        row.open_reservations = pg_col_int64(res, i, 5);
        rc = each(ctx, &row);
    }
    PQclear(res);
    return rc;
}
