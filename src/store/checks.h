/*
 * checks.h - what every backend of store.h checks and says the same way:
 * the arguments an operation refuses before it touches the database, and
 * the errors its outcomes are reported with. Backends include it; nothing
 * outside store/ does.
 */
#ifndef VG_STORE_CHECKS_H
#define VG_STORE_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Limits of the values the schemas hold for the API. */
#define VG_STORE_IDEMPOTENCY_KEY_MAX 255
#define VG_STORE_LIST_LIMIT_MAX 1000
#define VG_STORE_CLAIM_LIMIT_MAX 1000
/* The longest upstream task handle recorded. */
#define VG_STORE_TASK_MAX 1023

/* Errors: each fills err and returns the status the operation returns. */
int vg_store_invalid(vg_error *err, const char *field, const char *why);
int vg_store_not_found(vg_error *err, const char *what, const char *id);
int vg_store_out_of_memory(vg_error *err, const char *doing);
/* 409: "cannot <verb> job <id>: it is <state>". */
int vg_store_job_conflict(vg_error *err, const char *verb, const char *id,
                          const char *state);
int vg_store_job_exists(vg_error *err, const char *id);
int vg_store_idempotency_conflict(vg_error *err, const char *job_id);
int vg_store_insufficient(vg_error *err, int64_t price, int64_t balance);
int vg_store_too_many_jobs(vg_error *err, int max);
int vg_store_key_hash_taken(vg_error *err);
int vg_store_delivery_conflict(vg_error *err, const char *id,
                               const char *state);
int vg_store_task_too_long(vg_error *err, const char *id);

/* Arguments, as create_account, create_key, create_job, set_key_limits,
 * list_jobs, claim_deliveries and end_job take them. */
int vg_store_check_name(const char *name, size_t cap, vg_error *err);
int vg_store_check_credits(int64_t credits, vg_error *err);
int vg_store_check_key(const char *account_id, const char *name,
                       const char *key_hash, const char *prefix,
                       vg_error *err);
int vg_store_check_create(const vg_job *job, const vg_job_create *opts,
                          vg_error *err);
int vg_store_check_key_limits(int rpm_limit, int jobs_limit, vg_error *err);
int vg_store_check_query(const vg_job_query *query, vg_error *err);
int vg_store_check_claim(int limit, int64_t lease_ms, vg_error *err);
int vg_store_check_end(vg_job_state state, vg_error *err);

/* When an idempotency key made at now_ms with ttl_ms expires: a ttl of
 * zero or less, or a sum past INT64_MAX, keeps it for good. */
int64_t vg_store_idempotency_expiry(int64_t now_ms, int64_t ttl_ms);

/* A delivery attempt's outcome as the row records it. */
typedef struct vg_store_attempt {
    const char *state;       /* "delivered", "pending" or "failed" */
    int64_t next_attempt_ms; /* 0 unless pending */
    const char *error;
    size_t error_len; /* cut to fit vg_delivery.last_error */
    int64_t at;
} vg_store_attempt;
void vg_store_attempt_of(const vg_delivery_outcome *outcome,
                         vg_store_attempt *out);

/* Longest prefix of s, at most max bytes, that does not cut a UTF-8
 * sequence. */
size_t vg_store_utf8_prefix(const char *s, size_t len, size_t max);
/* Copies text (len bytes, NULL for none) into a fixed-size field, cut on
 * a character boundary and always terminated. */
void vg_store_copy_text(const char *text, size_t len, char *buf, size_t cap);
bool vg_store_parse_state(const char *name, vg_job_state *out);

#endif
