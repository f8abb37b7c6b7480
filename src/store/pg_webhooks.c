/*
 * pg_webhooks.c - webhook secrets and the delivery outbox of the
 * PostgreSQL backend of store.h. Deliveries are claimed with FOR UPDATE
 * SKIP LOCKED (vg_claim_deliveries), so instances sharing the database
 * each lease different ones and never wait on each other's.
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg_op_get_webhook_secret(vg_store *store, const char *account_id,
                             const char *candidate, char *out, size_t n,
                             vg_error *err)
{
    if (candidate == NULL || candidate[0] == '\0')
        return vg_store_invalid(err, "secret",
                                "a candidate secret is required");
    pg_params p = {0};
    pg_text(&p, account_id);
    pg_text(&p, candidate);
    int rc = pg_call(pg_store_of(store), PG_GET_WEBHOOK_SECRET, &p,
                     "reading a webhook secret", out, n, err);
    pg_params_clear(&p);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_store_not_found(err, "account", account_id);
    return rc;
}

int pg_op_rotate_webhook_secret(vg_store *store, const char *account_id,
                                const char *new_secret, vg_error *err)
{
    if (new_secret == NULL || new_secret[0] == '\0')
        return vg_store_invalid(err, "secret", "a new secret is required");
    pg_params p = {0};
    pg_text(&p, account_id);
    pg_text(&p, new_secret);
    PGresult *res = pg_run(pg_store_of(store), PG_ROTATE_WEBHOOK_SECRET, &p,
                           "rotating a webhook secret", err);
    pg_params_clear(&p);
    if (res == NULL)
        return VG_STORE_ERROR;
    bool changed = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return changed ? VG_STORE_OK
                   : vg_store_not_found(err, "account", account_id);
}

/* Fills *out from row of a DELIVERY_COLUMNS result. */
static int read_delivery(const PGresult *res, int row, vg_delivery *out,
                         vg_error *err)
{
    memset(out, 0, sizeof(*out));
    pg_col_text(res, row, 0, out->id, sizeof(out->id));
    pg_col_text(res, row, 1, out->job_id, sizeof(out->job_id));
    pg_col_text(res, row, 2, out->account_id, sizeof(out->account_id));
    pg_col_text(res, row, 3, out->url, sizeof(out->url));
    const char *state = PQgetvalue(res, row, 4);
    if (strcmp(state, "pending") == 0)
        out->state = VG_DELIVERY_PENDING;
    else if (strcmp(state, "delivered") == 0)
        out->state = VG_DELIVERY_DELIVERED;
    else if (strcmp(state, "failed") == 0)
        out->state = VG_DELIVERY_FAILED;
    else
        return vg_error_set(err, 500, "store_error", NULL,
                            "webhook delivery %s has an unknown state",
                            out->id);
    out->attempts = (int)pg_col_int64(res, row, 5);
    out->last_status = (int)pg_col_int64(res, row, 6);
    pg_col_text(res, row, 7, out->last_error, sizeof(out->last_error));
    out->created_ms = pg_col_int64(res, row, 8);
    out->next_attempt_ms = pg_col_int64(res, row, 9);
    out->updated_ms = pg_col_int64(res, row, 10);
    return VG_STORE_OK;
}

static int hand_out_deliveries(PGresult *res,
                               int (*each)(void *, const vg_delivery *),
                               void *ctx, vg_error *err)
{
    if (res == NULL)
        return VG_STORE_ERROR;
    int rc = VG_STORE_OK;
    for (int i = 0; rc == VG_STORE_OK && i < PQntuples(res); i++) {
        vg_delivery d;
        rc = read_delivery(res, i, &d, err);
        if (rc == VG_STORE_OK)
            rc = each(ctx, &d);
    }
    PQclear(res);
    return rc;
}

int pg_op_claim_deliveries(vg_store *store, int64_t now, int64_t lease_ms,
                           int limit,
                           int (*each)(void *ctx, const vg_delivery *d),
                           void *ctx, vg_error *err)
{
    if (vg_store_check_claim(limit, lease_ms, err) != VG_STORE_OK)
        return VG_STORE_ERROR;
    int64_t at = now > 0 ? now : vg_now_ms();
    pg_params p = {0};
    pg_int(&p, at);
    pg_int(&p, lease_ms < INT64_MAX - at ? at + lease_ms : INT64_MAX);
    pg_int(&p, limit);
    /* The call commits before the rows are handed out: a delivery is
     * attempted only once its lease is durable. */
    PGresult *res = pg_run(pg_store_of(store), PG_CLAIM_DELIVERIES, &p,
                           "claiming webhook deliveries", err);
    pg_params_clear(&p);
    return hand_out_deliveries(res, each, ctx, err);
}

int pg_op_finish_delivery(vg_store *store, const char *id,
                          const vg_delivery_outcome *outcome, vg_error *err)
{
    vg_store_attempt a;
    vg_store_attempt_of(outcome, &a);
    char error[sizeof(((vg_delivery *)0)->last_error)];
    snprintf(error, sizeof(error), "%.*s", (int)a.error_len, a.error);
    pg_params p = {0};
    pg_text(&p, id);
    pg_text(&p, a.state);
    pg_int(&p, outcome->status);
    pg_text(&p, error);
    pg_int(&p, a.next_attempt_ms);
    pg_int(&p, a.at);
    char detail[32];
    int rc =
        pg_call(pg_store_of(store), PG_FINISH_DELIVERY, &p,
                "recording a webhook attempt", detail, sizeof(detail), err);
    pg_params_clear(&p);
    if (rc == VG_STORE_NOT_FOUND)
        return vg_store_not_found(err, "webhook delivery", id);
    if (rc == VG_STORE_CONFLICT)
        return vg_store_delivery_conflict(err, id, detail);
    return rc;
}

int pg_op_next_delivery_ms(vg_store *store, int64_t *when, vg_error *err)
{
    PGresult *res = pg_run(pg_store_of(store), PG_NEXT_DELIVERY, NULL,
                           "reading the next webhook delivery", err);
    if (res == NULL)
        return VG_STORE_ERROR;
    *when = PQntuples(res) > 0 ? pg_col_int64(res, 0, 0) : 0;
    PQclear(res);
    return VG_STORE_OK;
}

int pg_op_list_deliveries(vg_store *store, const char *job_id,
                          int (*each)(void *ctx, const vg_delivery *d),
                          void *ctx, vg_error *err)
{
    pg_params p = {0};
    pg_text(&p, job_id);
    PGresult *res = pg_run(pg_store_of(store), PG_LIST_DELIVERIES, &p,
                           "listing webhook deliveries", err);
    pg_params_clear(&p);
    return hand_out_deliveries(res, each, ctx, err);
}
