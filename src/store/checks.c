/*
 * checks.c - the argument checks and outcome errors every store backend
 * shares (see checks.h), so that SQLite and PostgreSQL refuse the same
 * input with the same words.
 */
#include "store/checks.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"

int vg_store_invalid(vg_error *err, const char *field, const char *why)
{
    vg_error_set(err, 400, "validation_error", field, "%s", why);
    return VG_STORE_ERROR;
}

int vg_store_not_found(vg_error *err, const char *what, const char *id)
{
    vg_error_set(err, 404, "not_found", NULL, "no %s with id %s", what, id);
    return VG_STORE_NOT_FOUND;
}

int vg_store_out_of_memory(vg_error *err, const char *doing)
{
    return vg_error_set(err, 500, "store_error", NULL, "out of memory %s",
                        doing);
}

int vg_store_job_conflict(vg_error *err, const char *verb, const char *id,
                          const char *state)
{
    vg_error_set(err, 409, "conflict", NULL, "cannot %s job %s: it is %s",
                 verb, id, state);
    return VG_STORE_CONFLICT;
}

int vg_store_job_exists(vg_error *err, const char *id)
{
    vg_error_set(err, 409, "conflict", NULL, "job %s already exists", id);
    return VG_STORE_CONFLICT;
}

int vg_store_idempotency_conflict(vg_error *err, const char *job_id)
{
    vg_error_set(err, 409, "idempotency_conflict", NULL,
                 "the idempotency key was already used for another "
                 "request (job %s)",
                 job_id);
    return VG_STORE_CONFLICT;
}

static void format_credits(int64_t millicredits, char *buf, size_t n)
{
    uint64_t abs =
        millicredits < 0 ? 0 - (uint64_t)millicredits : (uint64_t)millicredits;
    snprintf(buf, n, "%s%llu.%03llu", millicredits < 0 ? "-" : "",
             (unsigned long long)(abs / 1000),
             (unsigned long long)(abs % 1000));
}

int vg_store_insufficient(vg_error *err, int64_t price, int64_t balance)
{
    char have[32], cost[32];
    format_credits(balance, have, sizeof(have));
    format_credits(price, cost, sizeof(cost));
    vg_error_set(err, 402, "insufficient_credits", NULL,
                 "the job costs %s credits and the account has %s", cost,
                 have);
    return VG_STORE_INSUFFICIENT;
}

int vg_store_too_many_jobs(vg_error *err, int max)
{
    vg_error_set(err, 429, "too_many_jobs", NULL,
                 "the API key already has %d unfinished jobs, its "
                 "limit; wait for one to finish",
                 max);
    return VG_STORE_LIMIT;
}

int vg_store_key_hash_taken(vg_error *err)
{
    vg_error_set(err, 409, "conflict", NULL,
                 "an API key with this hash already exists");
    return VG_STORE_CONFLICT;
}

int vg_store_delivery_conflict(vg_error *err, const char *id,
                               const char *state)
{
    vg_error_set(err, 409, "conflict", NULL,
                 "webhook delivery %s is already %s", id, state);
    return VG_STORE_CONFLICT;
}

int vg_store_task_too_long(vg_error *err, const char *id)
{
    return vg_error_set(err, 500, "store_error", NULL,
                        "the upstream task handle of job %s is too long to "
                        "record",
                        id);
}

int vg_store_check_name(const char *name, size_t cap, vg_error *err)
{
    if (name == NULL || name[0] == '\0')
        return vg_store_invalid(err, "name", "a name is required");
    if (strlen(name) >= cap) {
        vg_error_set(err, 400, "validation_error", "name",
                     "name is longer than %zu bytes", cap - 1);
        return VG_STORE_ERROR;
    }
    return VG_STORE_OK;
}

int vg_store_check_credits(int64_t credits, vg_error *err)
{
    if (credits < 0)
        return vg_store_invalid(err, "credits",
                                "credits must not be negative");
    return VG_STORE_OK;
}

int vg_store_check_key(const char *account_id, const char *name,
                       const char *key_hash, const char *prefix, vg_error *err)
{
    if (vg_store_check_name(name, sizeof(((vg_api_key *)0)->name), err) !=
        VG_STORE_OK)
        return VG_STORE_ERROR;
    if (key_hash == NULL || key_hash[0] == '\0')
        return vg_store_invalid(err, "key_hash", "a key hash is required");
    if (prefix == NULL || strlen(prefix) >= sizeof(((vg_api_key *)0)->prefix))
        return vg_store_invalid(err, "prefix", "the key prefix is too long");
    if (account_id == NULL ||
        strlen(account_id) >= sizeof(((vg_api_key *)0)->account_id))
        return vg_store_not_found(err, "account",
                                  account_id ? account_id : "");
    return VG_STORE_OK;
}

int vg_store_check_create(const vg_job *job, const vg_job_create *opts,
                          vg_error *err)
{
    if (job->id[0] == '\0' ||
        strnlen(job->id, sizeof(job->id)) == sizeof(job->id))
        return vg_store_invalid(err, "id", "a job needs an id");
    if (job->price < 0)
        return vg_store_invalid(err, "price", "a price must not be negative");
    /* A delivery carries the URL in a fixed field; one that does not fit
     * would be cut into another URL. */
    if (job->webhook_url != NULL &&
        strlen(job->webhook_url) >= sizeof(((vg_delivery *)0)->url))
        return vg_store_invalid(err, "webhook_url",
                                "the webhook URL is too long");
    if (opts == NULL)
        return VG_STORE_OK;
    if (opts->max_unfinished < 0)
        return vg_store_invalid(
            err, "max_unfinished",
            "the unfinished job limit must not be negative");
    if (opts->idempotency_key == NULL)
        return VG_STORE_OK;
    size_t len = strlen(opts->idempotency_key);
    if (len == 0 || len > VG_STORE_IDEMPOTENCY_KEY_MAX)
        return vg_store_invalid(err, "idempotency_key",
                                "an idempotency key has 1 to 255 bytes");
    if (opts->request_hash == NULL || opts->request_hash[0] == '\0')
        return vg_store_invalid(err, "request_hash",
                                "an idempotency key needs the request's hash");
    return VG_STORE_OK;
}

int vg_store_check_key_limits(int rpm_limit, int jobs_limit, vg_error *err)
{
    if (rpm_limit < -1)
        return vg_store_invalid(err, "rpm_limit",
                                "rpm_limit is -1 (the default), 0 (unlimited) "
                                "or a positive number");
    if (jobs_limit < -1)
        return vg_store_invalid(err, "jobs_limit",
                                "jobs_limit is -1 (the default), 0 "
                                "(unlimited) or a positive number");
    return VG_STORE_OK;
}

int vg_store_check_query(const vg_job_query *query, vg_error *err)
{
    if (query->account_id == NULL || query->account_id[0] == '\0')
        return vg_store_invalid(err, "account_id", "an account is required");
    if (query->limit < 1 || query->limit > VG_STORE_LIST_LIMIT_MAX)
        return vg_store_invalid(err, "limit", "limit must be 1 to 1000");
    if (query->state != -1 &&
        (query->state < VG_JOB_QUEUED || query->state > VG_JOB_CANCELLED))
        return vg_store_invalid(err, "state", "no such job state");
    return VG_STORE_OK;
}

int vg_store_check_claim(int limit, int64_t lease_ms, vg_error *err)
{
    if (limit < 1 || limit > VG_STORE_CLAIM_LIMIT_MAX)
        return vg_store_invalid(err, "limit", "limit must be 1 to 1000");
    if (lease_ms < 0)
        return vg_store_invalid(err, "lease_ms",
                                "a lease must not be negative");
    return VG_STORE_OK;
}

int vg_store_check_end(vg_job_state state, vg_error *err)
{
    if (state != VG_JOB_FAILED && state != VG_JOB_CANCELLED)
        return vg_error_set(err, 500, "store_error", NULL,
                            "end_job takes failed or cancelled, not %s",
                            vg_job_state_name(state));
    return VG_STORE_OK;
}

int64_t vg_store_idempotency_expiry(int64_t now_ms, int64_t ttl_ms)
{
    if (ttl_ms > 0 && ttl_ms < INT64_MAX - now_ms)
        return now_ms + ttl_ms;
    return INT64_MAX;
}

void vg_store_attempt_of(const vg_delivery_outcome *outcome,
                         vg_store_attempt *out)
{
    out->at = outcome->now_ms > 0 ? outcome->now_ms : vg_now_ms();
    vg_delivery_state state = VG_DELIVERY_DELIVERED;
    if (!outcome->delivered)
        state = outcome->next_attempt_ms > 0 ? VG_DELIVERY_PENDING
                                             : VG_DELIVERY_FAILED;
    out->state = vg_delivery_state_name(state);
    /* Only a pending delivery is due at all. */
    out->next_attempt_ms =
        state == VG_DELIVERY_PENDING ? outcome->next_attempt_ms : 0;
    /* The error is kept as a vg_delivery can hold it, cut on a character
     * boundary, rather than as long as a remote server made it. */
    out->error = outcome->error != NULL ? outcome->error : "";
    out->error_len =
        vg_store_utf8_prefix(out->error, strlen(out->error),
                             sizeof(((vg_delivery *)0)->last_error) - 1);
}

/* A fixed-size field cut mid-character would no longer be valid UTF-8,
 * and the JSON layer refuses such strings. */
size_t vg_store_utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void vg_store_copy_text(const char *text, size_t len, char *buf, size_t cap)
{
    if (text == NULL)
        len = 0;
    len = vg_store_utf8_prefix(text, len, cap - 1);
    if (len > 0)
        memcpy(buf, text, len);
    buf[len] = '\0';
}

bool vg_store_parse_state(const char *name, vg_job_state *out)
{
    static const vg_job_state states[] = {VG_JOB_QUEUED, VG_JOB_RUNNING,
                                          VG_JOB_SUCCEEDED, VG_JOB_FAILED,
                                          VG_JOB_CANCELLED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(name, vg_job_state_name(states[i])) == 0) {
            *out = states[i];
            return true;
        }
    }
    return false;
}
