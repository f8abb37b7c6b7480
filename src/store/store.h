/*
 * store.h - the durable state: accounts, API keys, the credit ledger and
 * jobs, behind one interface with one backend each (SQLite in
 * store_sqlite.c and its sqlite_*.c parts, PostgreSQL in pg_store.c and
 * its pg_*.c parts), like SQLite's VFS.
 *
 * Money moves only inside store operations, each one a transaction: a job
 * is created together with its credit reservation, succeeds together with
 * the settlement and fails together with the refund. State transitions are
 * conditional on the current state, so a charge or refund happens once
 * even when two threads race to finish the same job.
 *
 * Ledger invariant, per account (checked by ledger_check):
 *   balance == grants - settled charges - open reservations
 *
 * Amounts are int64 thousandths of a credit. Times are Unix milliseconds.
 * All operations are safe to call from any thread.
 */
#ifndef VG_STORE_H
#define VG_STORE_H

#include <limits.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum {
    VG_STORE_OK = 0,
    VG_STORE_NOT_FOUND = 1,
    VG_STORE_CONFLICT = 2,     /* state changed under us / already exists */
    VG_STORE_INSUFFICIENT = 3, /* balance below the price */
    VG_STORE_EXISTS = 4,       /* idempotent replay: the earlier job */
    VG_STORE_LIMIT = 5,        /* the key has too many unfinished jobs */
    VG_STORE_ERROR = -1        /* err->message says why */
};

typedef struct vg_account {
    char id[37];
    char name[128];
    int64_t balance; /* available: grants - settled - open reservations */
    int64_t created_ms;
    int64_t updated_ms;
} vg_account;

typedef struct vg_api_key {
    char id[37];
    char account_id[37];
    char name[128];
    char prefix[16]; /* first characters of the key, for humans */
    int64_t created_ms;
    bool revoked;
    /* Per-key limits; -1 means "the server's default", 0 "unlimited". */
    int rpm_limit;  /* requests per minute */
    int jobs_limit; /* unfinished (queued + running) jobs at once */
} vg_api_key;

typedef enum vg_job_state {
    VG_JOB_QUEUED,
    VG_JOB_RUNNING,
    VG_JOB_SUCCEEDED,
    VG_JOB_FAILED,
    VG_JOB_CANCELLED
} vg_job_state;

const char *vg_job_state_name(vg_job_state s);

typedef struct vg_job {
    char id[37];
    char account_id[37];
    char key_id[37];
    vg_job_state state;
    char model[128]; /* as requested (may be an alias) */
    char provider[64];
    char *request_json; /* the normalized request, malloc'd; see jobs.c */
    char *webhook_url;  /* malloc'd; NULL when the job has none */
    bool flex;          /* service_tier "flex" */
    int attempts;       /* times start_job moved it to running */
    int64_t price;      /* reserved at create, settled or refunded later */
    int64_t seed;       /* the seed actually used */
    int width, height;
    int progress;        /* 0..100 */
    char video_key[128]; /* blob key of the result, "" until succeeded */
    int64_t prompt_tokens, completion_tokens;
    char error_code[40];
    char error_message[512];
    int64_t created_ms, started_ms, finished_ms;
    /* Upstream providers: the adapter's handle for the submitted task
     * (see providers/adapter.h). "" while never submitted; "-" from the
     * moment a submit may have reached the provider until its answer is
     * recorded, so that a restart never submits the job twice. */
    char upstream_task[1024];
} vg_job;

/* Frees what a vg_job filled by the store owns (request_json,
 * webhook_url). */
void vg_job_clear(vg_job *job);

/* How create_job treats a new job beyond inserting it. */
typedef struct vg_job_create {
    /* Idempotency: with a key, the (account, key) pair names one job for
     * ttl_ms. request_hash (hex SHA-256 of the normalized request) tells
     * a replay (same hash: EXISTS, the earlier job in *existing, nothing
     * written) from a conflict (other hash: CONFLICT). An expired key is
     * forgotten and taken by the new job. */
    const char *idempotency_key; /* NULL: none; at most 255 bytes */
    const char *request_hash;
    int64_t idempotency_ttl_ms;
    /* LIMIT when the key (job->key_id) already has this many queued or
     * running jobs; 0 = no limit. */
    int max_unfinished;
} vg_job_create;

/* A page of an account's jobs, newest first: (created_ms, id) descending.
 * The cursor is the last job of the previous page: only jobs strictly
 * after it in that order are listed. */
typedef struct vg_job_query {
    const char *account_id;
    int state;                /* a vg_job_state, or -1 for any */
    int64_t after_created_ms; /* cursor; ignored when after_id is NULL */
    const char *after_id;
    int limit; /* 1..1000 */
} vg_job_query;

/* A webhook delivery: one message about one finished job, to the URL the
 * job was created with, tried until delivered or given up. */
typedef enum vg_delivery_state {
    VG_DELIVERY_PENDING,
    VG_DELIVERY_DELIVERED,
    VG_DELIVERY_FAILED /* given up */
} vg_delivery_state;

const char *vg_delivery_state_name(vg_delivery_state s);

typedef struct vg_delivery {
    char id[40]; /* "msg_" + 32 hex digits: the webhook-id header */
    char job_id[37];
    char account_id[37];
    char url[2048];
    vg_delivery_state state;
    int attempts;    /* finished attempts so far */
    int last_status; /* HTTP status of the last attempt; 0 = none */
    char last_error[256];
    int64_t created_ms;
    int64_t next_attempt_ms; /* pending: when it is due */
    int64_t updated_ms;
} vg_delivery;

/* What one delivery attempt came to. */
typedef struct vg_delivery_outcome {
    bool delivered;
    int status;              /* HTTP status, 0 when there was none */
    const char *error;       /* why it failed; "" or NULL when delivered */
    int64_t next_attempt_ms; /* not delivered: retry then; 0 = give up */
    int64_t now_ms;
} vg_delivery_outcome;

typedef struct vg_ledger_row {
    char account_id[37];
    char name[128];
    int64_t balance;
    int64_t grants;
    int64_t settled;
    int64_t open_reservations;
} vg_ledger_row;

typedef struct vg_store vg_store;

/* Told when an asynchronous write is committed or refused: rc and *err as
 * the blocking operation would have returned and filled them. It runs on
 * the store's own thread, where it must not call the store, and should
 * return quickly: other writes wait for it. */
typedef void (*vg_store_written)(void *ctx, int rc, const vg_error *err);

typedef struct vg_store_ops {
    const char *name;
    void (*close)(vg_store *store);

    /* Server-wide secrets and settings. set_setting_once stores value
     * unless the key exists, and returns the stored value in out either
     * way, so two instances starting together agree on one secret. */
    int (*get_setting)(vg_store *store, const char *key, char *out, size_t n,
                       vg_error *err);
    int (*set_setting_once)(vg_store *store, const char *key,
                            const char *value, char *out, size_t n,
                            vg_error *err);

    int (*count_accounts)(vg_store *store, int64_t *count, vg_error *err);
    /* Creates an account and records its starting grant. */
    int (*create_account)(vg_store *store, const char *name, int64_t credits,
                          vg_account *out, vg_error *err);
    int (*get_account)(vg_store *store, const char *id, vg_account *out,
                       vg_error *err);
    int (*grant_credits)(vg_store *store, const char *account_id,
                         int64_t amount, const char *note, vg_error *err);

    /* Keys are stored only as the SHA-256 hex of the key. */
    int (*create_key)(vg_store *store, const char *account_id,
                      const char *name, const char *key_hash,
                      const char *prefix, vg_api_key *out, vg_error *err);
    int (*find_key_by_hash)(vg_store *store, const char *key_hash,
                            vg_api_key *out, vg_error *err);
    int (*get_key)(vg_store *store, const char *id, vg_api_key *out,
                   vg_error *err);
    /* Revokes by key id; NOT_FOUND when no such key. */
    int (*revoke_key)(vg_store *store, const char *id, vg_error *err);
    /* A number that changes whenever any process revokes a key. Lets
     * callers cache key lookups yet see a revocation at once. */
    int (*keys_epoch)(vg_store *store, uint64_t *epoch, vg_error *err);
    int (*list_keys)(vg_store *store,
                     int (*each)(void *ctx, const vg_api_key *key,
                                 const vg_account *account),
                     void *ctx, vg_error *err);

    /* Sets a key's limits (-1 = the server's default, 0 = unlimited). */
    int (*set_key_limits)(vg_store *store, const char *id, int rpm_limit,
                          int jobs_limit, vg_error *err);

    /* Inserts a queued job (with its flex flag and webhook_url) and
     * reserves job->price from its account in one transaction, together
     * with the idempotency record. Returns INSUFFICIENT when the balance
     * is below the price, LIMIT when the key has opts->max_unfinished
     * unfinished jobs, and for an idempotency key already used EXISTS
     * (same request; *existing filled, caller clears it) or CONFLICT
     * (another request); in those cases nothing is written. opts and
     * existing may be NULL when there is no idempotency key. Concurrent
     * creates with one key resolve to one job. */
    int (*create_job)(vg_store *store, const vg_job *job,
                      const vg_job_create *opts, vg_job *existing,
                      vg_error *err);
    /* create_job without waiting for the commit: returns VG_STORE_OK once
     * the create is queued, then done(ctx, rc) runs exactly once, on
     * another thread, with what create_job would have returned (err and
     * *existing filled as it would fill them). job, opts, existing and
     * err must stay valid until then. An error return means the create
     * was refused at once and done will not run. This lets the HTTP
     * threads take new requests while their submits wait for the
     * commit, so many submits share one. */
    int (*create_job_async)(vg_store *store, const vg_job *job,
                            const vg_job_create *opts, vg_job *existing,
                            vg_error *err, void (*done)(void *ctx, int rc),
                            void *ctx);
    int (*get_job)(vg_store *store, const char *id, vg_job *out,
                   vg_error *err);
    /* The account's jobs, one page (see vg_job_query). */
    int (*list_jobs)(vg_store *store, const vg_job_query *query,
                     int (*each)(void *ctx, const vg_job *job), void *ctx,
                     vg_error *err);
    /* queued -> running, attempts + 1; CONFLICT when the job is not
     * queued. */
    int (*start_job)(vg_store *store, const char *id, int64_t now_ms,
                     vg_error *err);
    /* start_job without waiting for the commit; with a provider, the same
     * write also records set_upstream(provider, "-"): the job goes from
     * queued to "a submit to provider may be under way" in one commit.
     * Returns VG_STORE_OK once queued, then done runs exactly once; an
     * error return means it was refused at once and done will not run.
     * The strings are copied. Optional: NULL in a backend without it. */
    int (*start_job_async)(vg_store *store, const char *id, int64_t now_ms,
                           const char *provider, vg_store_written done,
                           void *ctx, vg_error *err);
    /* running -> queued with progress 0 (a restart or shutdown stopped
     * its work before the end); CONFLICT when it is not running. */
    int (*requeue_job)(vg_store *store, const char *id, vg_error *err);
    int (*set_progress)(vg_store *store, const char *id, int progress,
                        vg_error *err);
    /* Records which provider has a running job and the adapter's task
     * handle (or "-": a submit is under way). CONFLICT when the job is not
     * running. */
    int (*set_upstream)(vg_store *store, const char *id, const char *provider,
                        const char *task, vg_error *err);
    /* set_upstream without waiting, like start_job_async. Optional. */
    int (*set_upstream_async)(vg_store *store, const char *id,
                              const char *provider, const char *task,
                              vg_store_written done, void *ctx, vg_error *err);
    /* queued|running -> succeeded with video_key, seed, width, height,
     * tokens and finished_ms from *job; settles the reservation.
     * CONFLICT when the job had already ended. Like end_job, when the job
     * has a webhook_url it also inserts its pending delivery (due now),
     * in the same transaction. */
    int (*succeed_job)(vg_store *store, const vg_job *job, vg_error *err);
    /* succeed_job without waiting, like start_job_async (job is copied,
     * its pointers left out). Optional. */
    int (*succeed_job_async)(vg_store *store, const vg_job *job,
                             vg_store_written done, void *ctx, vg_error *err);
    /* queued|running -> failed or cancelled with a code and message;
     * refunds the reservation. CONFLICT when the job had already ended. */
    int (*end_job)(vg_store *store, const char *id, vg_job_state state,
                   const char *code, const char *message, int64_t now_ms,
                   vg_error *err);
    /* The oldest limit jobs still queued, oldest first: every provider's
     * (provider NULL), or those whose provider is the one named. */
    int (*list_queued_jobs)(vg_store *store, const char *provider, int limit,
                            int (*each)(void *ctx, const vg_job *job),
                            void *ctx, vg_error *err);
    /* Every job still queued or running, oldest first. */
    int (*list_unfinished_jobs)(vg_store *store,
                                int (*each)(void *ctx, const vg_job *job),
                                void *ctx, vg_error *err);

    /* The account's webhook signing secret ("whsec_..."). get stores
     * candidate when the account has none yet and returns the stored one
     * in out either way; rotate replaces it with new_secret. */
    int (*get_webhook_secret)(vg_store *store, const char *account_id,
                              const char *candidate, char *out, size_t n,
                              vg_error *err);
    int (*rotate_webhook_secret)(vg_store *store, const char *account_id,
                                 const char *new_secret, vg_error *err);

    /* Pending deliveries due at now_ms, oldest first, at most limit. Each
     * is leased: its next_attempt_ms moves to now_ms + lease_ms, so no
     * other claimer (thread or instance) takes it meanwhile, and a crash
     * mid-attempt only delays it. */
    int (*claim_deliveries)(vg_store *store, int64_t now_ms, int64_t lease_ms,
                            int limit,
                            int (*each)(void *ctx, const vg_delivery *d),
                            void *ctx, vg_error *err);
    /* Records an attempt: attempts + 1, then delivered, pending again
     * (outcome->next_attempt_ms) or failed (next_attempt_ms 0). */
    int (*finish_delivery)(vg_store *store, const char *id,
                           const vg_delivery_outcome *outcome, vg_error *err);
    /* The earliest next_attempt_ms of a pending delivery; 0 when none. */
    int (*next_delivery_ms)(vg_store *store, int64_t *when, vg_error *err);
    /* The deliveries of one job, oldest first. */
    int (*list_deliveries)(vg_store *store, const char *job_id,
                           int (*each)(void *ctx, const vg_delivery *d),
                           void *ctx, vg_error *err);

    /* One row per account with the ledger's sums. */
    int (*ledger_rows)(vg_store *store,
                       int (*each)(void *ctx, const vg_ledger_row *row),
                       void *ctx, vg_error *err);
} vg_store_ops;

struct vg_store {
    const vg_store_ops *ops;
};

/* Opens (creating and migrating as needed) the SQLite database at path. */
vg_store *vg_store_open_sqlite(const char *path, vg_error *err);
/* Connects to the PostgreSQL database at url (a libpq connection string
 * or URI), migrating it under an advisory lock, with a pool of at most
 * pool_size connections (0: 8) and one more for the batch writer. */
vg_store *vg_store_open_postgres(const char *url, int pool_size,
                                 vg_error *err);

/* The backend the configuration's "store" section chooses, and its
 * settings. Each backend is one line in the table of store_open.c. */
typedef struct vg_store_config {
    char backend[32];    /* "sqlite" (the default) or "postgres" */
    char path[PATH_MAX]; /* sqlite: the database; "" = <data>/vidgate.db */
    char url[1024];      /* postgres: the connection string or URI */
    int pool_size;       /* postgres: pooled connections (8) */
} vg_store_config;

/* Opens the configured backend; data_dir is where a backend keeps what
 * its settings leave to the default. NULL with err when there is no
 * such backend (config_error) or it cannot open. */
vg_store *vg_store_open(const vg_store_config *config, const char *data_dir,
                        vg_error *err);
/* Whether this build has the backend; names gets the list of those it
 * has ("sqlite, ..."), for messages. */
bool vg_store_backend_known(const char *name, char *names, size_t n);

static inline void vg_store_close(vg_store *store)
{
    if (store != NULL)
        store->ops->close(store);
}

#endif
