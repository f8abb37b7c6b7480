/*
 * store_contract.h - the contract suite of store.h (store_contract.c),
 * run against a backend the caller describes.
 */
#ifndef VG_STORE_CONTRACT_H
#define VG_STORE_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct vg_store_backend_test {
    const char *name; /* the suite's name in cmocka's report */
    /* A new, empty store for one test (name tells tests apart); its
     * handle (for SQLite, the file) goes to handle[0..n). */
    vg_store *(*open)(const char *name, char *handle, size_t n);
    /* Another connection to the same store: a second instance. */
    vg_store *(*reopen)(const char *handle);
    /* Deletes what open made (the store is closed). */
    void (*remove)(const char *handle);
    /* One number from a SQL query, on a connection of its own. */
    int64_t (*count)(const char *handle, const char *sql);
    /* Runs SQL on a connection of its own: 0, or -1 when it is refused. */
    int (*exec)(const char *handle, const char *sql);
    /* From now on, the commit of a batch with a job whose model is
     * "poison" fails as a whole; returns text its error message holds. */
    const char *(*poison)(const char *handle);
} vg_store_backend_test;

/* Helpers the contract's tests are written with, for a backend's own
 * tests too. */
void vg_sc_new_account(vg_store *store, const char *name, int64_t credits,
                       vg_account *out);
/* A job of the account at that price, with a fresh id. */
void vg_sc_fill_job(vg_job *job, const char *account_id, int64_t price);
int64_t vg_sc_balance_of(vg_store *store, const char *account_id);
/* The account's ledger row; fails the test if any account breaks the
 * ledger invariant. */
vg_ledger_row vg_sc_ledger_of(vg_store *store, const char *account_id);
/* succeed_job for id (a fixed result), expecting that answer. */
void vg_sc_succeed(vg_store *store, const char *id, int expect);
vg_job_create vg_sc_keyed(const char *key, const char *hash, int64_t ttl_ms);

/* Runs every test of the contract against the backend; cmocka's result
 * (the number of failed tests). */
int vg_store_contract_run(const vg_store_backend_test *backend);

#endif
