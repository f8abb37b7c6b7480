/*
 * webhooks.h - signed webhook deliveries (Standard Webhooks).
 *
 * When a job with a webhook_url ends, the store records a pending
 * delivery in the same transaction (see store.h). This engine sends
 * those deliveries: one thread drives a libcurl multi handle, claims due
 * deliveries from the store, POSTs each as a Standard Webhooks message
 * signed with the account's secret, and records every attempt back in
 * the store, retrying with exponential backoff until a 2xx or until the
 * delivery is too old. Nothing lives only in memory: a restart, or
 * another instance on the same database, picks up where this one left.
 *
 * The message (https://www.standardwebhooks.com):
 *
 *   POST <webhook_url>
 *   content-type: application/json
 *   webhook-id: msg_...           (the delivery id; the same every retry)
 *   webhook-timestamp: 1700000000 (this attempt, Unix seconds)
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">
 *
 *   {"type": "job.succeeded" | "job.failed" | "job.cancelled",
 *    "timestamp": "<when the job ended, ISO-8601 UTC>",
 *    "data": <the job as the public API shows it>}
 */
#ifndef VG_WEBHOOKS_H
#define VG_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/error.h"
#include "store/store.h"

typedef struct vg_webhook_config {
    bool allow_private;       /* allow loopback/private targets (tests,
                                 intranets); default false */
    int timeout_s;            /* per attempt, connect included; 10 */
    int64_t retry_base_ms;    /* first retry delay, doubled per attempt;
                                 5000 */
    int64_t retry_max_gap_ms; /* cap of one gap; 3600000 (1 h) */
    int64_t give_up_after_ms; /* since the delivery was created; 24 h */
    int max_in_flight;        /* concurrent attempts; 64 */
} vg_webhook_config;

void vg_webhook_config_defaults(vg_webhook_config *cfg);

/* Renders the "data" of the message: the public JSON of a finished job,
 * as a new reference (NULL on failure, which counts as a failed
 * attempt). Called on the engine's thread. */
typedef json_t *(*vg_webhook_render)(void *ctx, const vg_job *job);

typedef struct vg_webhooks vg_webhooks;

/* Starts the delivery thread. store and render_ctx must outlive the
 * engine. Returns NULL with err filled when the configuration is invalid
 * or a resource could not be had. */
vg_webhooks *vg_webhooks_start(vg_store *store, const vg_webhook_config *cfg,
                               vg_webhook_render render, void *render_ctx,
                               vg_error *err);

/* A delivery was stored: look for due ones now instead of at the next
 * planned wake-up. Cheap, and safe from any thread. */
void vg_webhooks_poke(vg_webhooks *w);

/* Stops claiming, lets the attempts in flight end (each bounded by
 * timeout_s) and records them, joins the thread and frees. NULL is a
 * no-op. */
void vg_webhooks_stop(vg_webhooks *w);

/* Buffer size for a signature from vg_webhook_sign. */
#define VG_WEBHOOK_SIGNATURE_MAX 48

/* The Standard Webhooks signature of one message: "v1," + base64 of
 * HMAC-SHA256 under the secret's key of "<msg_id>.<ts>.<body>". The
 * secret is "whsec_" + base64 of the key (a bare base64 key is accepted
 * too). Writes it NUL-terminated into out (VG_WEBHOOK_SIGNATURE_MAX
 * bytes suffice) and returns 0; returns -1 when the secret does not decode, or n is too
 * small. */
int vg_webhook_sign(const char *secret, const char *msg_id, int64_t ts,
                    const char *body, size_t len, char *out, size_t n);

/* A fresh secret: "whsec_" + base64 of 32 random bytes, NUL-terminated
 * (51 bytes). */
void vg_webhook_new_secret(char out[64]);

#endif
