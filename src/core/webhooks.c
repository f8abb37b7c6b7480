/*
 * webhooks.c - the webhook delivery engine; see webhooks.h.
 *
 * One thread owns a libcurl multi handle and everything attached to it,
 * so nothing here needs a lock: other threads only flip `stopping` and
 * call curl_multi_wakeup, the one multi function libcurl allows from
 * another thread. Each turn of the loop claims as many due deliveries
 * as there is room for, drives the transfers, records the finished ones
 * and sleeps in curl_multi_poll until a transfer needs attention, the
 * next delivery is due, or someone pokes.
 *
 * The store is the only record. A claimed delivery is leased for a bit
 * longer than an attempt can take, so if this process dies mid-attempt
 * the delivery is simply tried again when the lease runs out.
 */
#include "core/webhooks.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/netpolicy.h"
#include "util/outbound.h"

#define USER_AGENT "vidgate-webhooks/1"
#define CLAIM_BATCH 32
/* Longest sleep without looking at the store: bounds how late we notice
 * deliveries stored without a poke (another process, a lease run out). */
#define IDLE_MAX_MS 30000
/* How long to wait before trying the store again after it failed. */
#define STORE_BACKOFF_MS 2000
/* Added to the attempt timeout to make the lease: preparing the message
 * and recording the outcome take store round trips too. */
#define LEASE_MARGIN_MS 15000
#define KEY_MAX 128

struct vg_webhooks {
    vg_store *store;
    vg_webhook_config cfg;
    vg_webhook_render render;
    void *render_ctx;
    CURLM *multi;
    pthread_t thread;
    atomic_bool stopping;
    int in_flight; /* transfers attached to multi; engine thread only */
};

/* One attempt in flight: what the transfer needs alive until it ends. */
typedef struct attempt {
    vg_delivery delivery;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char error[CURL_ERROR_SIZE];
    char refused[VG_REFUSAL_NOTE_MAX]; /* set when the policy said no */
} attempt;

void vg_webhook_config_defaults(vg_webhook_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->allow_private = false;
    cfg->timeout_s = 10;
    cfg->retry_base_ms = 5000;
    cfg->retry_max_gap_ms = 3600000;
    cfg->give_up_after_ms = 24 * 3600000LL;
    cfg->max_in_flight = 64;
}

/* ---- signing ----------------------------------------------------------- */

int vg_webhook_sign(const char *secret, const char *msg_id, int64_t ts,
                    const char *body, size_t len, char *out, size_t n)
{
    if (secret == NULL || msg_id == NULL || (body == NULL && len > 0))
        return -1;
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    unsigned char key[KEY_MAX];
    size_t key_len = 0;
    if (vg_base64_decode(secret, strlen(secret), key, sizeof(key),
                         &key_len) != 0 ||
        key_len == 0)
        return -1;

    char prefix[128];
    int plen = snprintf(prefix, sizeof(prefix), "%s.%" PRId64 ".", msg_id, ts);
    if (plen < 0 || (size_t)plen >= sizeof(prefix))
        return -1;
    /* The signed content is one string, so build it once; bodies are
     * small (a job's public JSON). */
    unsigned char *content = malloc((size_t)plen + len + 1);
    if (content == NULL)
        return -1;
    memcpy(content, prefix, (size_t)plen);
    if (len > 0)
        memcpy(content + plen, body, len);

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    unsigned char *mac = HMAC(EVP_sha256(), key, (int)key_len, content,
                              (size_t)plen + len, digest, &digest_len);
    free(content);
    OPENSSL_cleanse(key, sizeof(key));
    if (mac == NULL)
        return -1;

    char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int elen =
        EVP_EncodeBlock((unsigned char *)encoded, digest, (int)digest_len);
    if (elen < 0 || (size_t)elen + 4 > n)
        return -1;
    snprintf(out, n, "v1,%s", encoded);
    return 0;
}

void vg_webhook_new_secret(char out[64])
{
    unsigned char key[32];
    char encoded[4 * ((sizeof(key) + 2) / 3) + 1];
    if (vg_random_bytes(key, sizeof(key)) != 0)
        abort(); /* no entropy: nothing safe can be done */
    EVP_EncodeBlock((unsigned char *)encoded, key, (int)sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    snprintf(out, 64, "whsec_%s", encoded);
}

/* ---- recording outcomes ------------------------------------------------ */

/* The gap before the next attempt after `attempts` finished ones:
 * retry_base_ms doubled per earlier attempt, capped. */
static int64_t retry_gap(const vg_webhook_config *cfg, int attempts)
{
    int64_t gap = cfg->retry_base_ms;
    for (int i = 0; i < attempts && gap < cfg->retry_max_gap_ms; i++) {
        if (gap > INT64_MAX / 2)
            break;
        gap *= 2;
    }
    return gap < cfg->retry_max_gap_ms ? gap : cfg->retry_max_gap_ms;
}

static void store_outcome(vg_webhooks *w, const vg_delivery *d,
                          const vg_delivery_outcome *outcome)
{
    vg_error err;
    vg_error_clear(&err);
    if (w->store->ops->finish_delivery(w->store, d->id, outcome, &err) !=
        VG_STORE_OK)
        /* The lease runs out and the delivery is tried again. */
        vg_log_error("webhook %s (job %s): could not record the attempt: "
                     "%s",
                     d->id, d->job_id, err.message);
}

static void record_delivered(vg_webhooks *w, const vg_delivery *d, int status)
{
    vg_delivery_outcome outcome = {
        .delivered = true,
        .status = status,
        .error = "",
        .next_attempt_ms = 0,
        .now_ms = vg_now_ms(),
    };
    vg_log_info("webhook %s (job %s) delivered: status %d, attempt %d", d->id,
                d->job_id, status, d->attempts + 1);
    store_outcome(w, d, &outcome);
}

/* A failed attempt: schedules the next one, or gives up when it would
 * come after the delivery's deadline. give_up forces the latter. */
static void record_failure(vg_webhooks *w, const vg_delivery *d, int status,
                           const char *error, bool give_up)
{
    int64_t now = vg_now_ms();
    int64_t next = now + retry_gap(&w->cfg, d->attempts);
    if (next > d->created_ms + w->cfg.give_up_after_ms)
        give_up = true;
    vg_delivery_outcome outcome = {
        .delivered = false,
        .status = status,
        .error = error,
        .next_attempt_ms = give_up ? 0 : next,
        .now_ms = now,
    };
    if (give_up)
        vg_log_error("webhook %s (job %s) given up after %d attempts: "
                     "status %d, %s",
                     d->id, d->job_id, d->attempts + 1, status, error);
    else
        vg_log_warn("webhook %s (job %s) attempt %d failed: status %d, "
                    "%s; next attempt in %" PRId64 " ms",
                    d->id, d->job_id, d->attempts + 1, status, error,
                    next - now);
    store_outcome(w, d, &outcome);
}

/* ---- building and sending one attempt ---------------------------------- */

static const char *event_type(vg_job_state state)
{
    switch (state) {
    case VG_JOB_SUCCEEDED:
        return "job.succeeded";
    case VG_JOB_FAILED:
        return "job.failed";
    case VG_JOB_CANCELLED:
        return "job.cancelled";
    default:
        return NULL;
    }
}

static void format_iso8601(int64_t ms, char *out, size_t n)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, n - len, ".%03dZ", (int)(ms % 1000));
}

static size_t discard_response(char *data, size_t size, size_t nmemb,
                               void *ctx)
{
    (void)data;
    (void)ctx;
    return size * nmemb;
}

static void free_attempt(attempt *a)
{
    if (a == NULL)
        return;
    if (a->easy != NULL)
        curl_easy_cleanup(a->easy);
    curl_slist_free_all(a->headers);
    free(a->body);
    free(a);
}

/* The message body for the job, malloc'd, or NULL with why in `why`. */
static char *build_body(vg_webhooks *w, const vg_delivery *d,
                        const vg_job *job, char *why, size_t n)
{
    const char *type = event_type(job->state);
    if (type == NULL) {
        snprintf(why, n, "the job is %s, not finished",
                 vg_job_state_name(job->state));
        return NULL;
    }
    json_t *data = w->render(w->render_ctx, job);
    if (data == NULL) {
        snprintf(why, n, "could not render the job");
        return NULL;
    }
    char when[40];
    format_iso8601(job->finished_ms > 0 ? job->finished_ms : d->created_ms,
                   when, sizeof(when));
    json_t *message = json_object();
    json_object_set_new(message, "type", json_string(type));
    json_object_set_new(message, "timestamp", json_string(when));
    json_object_set_new(message, "data", data);
    char *body = json_dumps(message, JSON_COMPACT);
    json_decref(message);
    if (body == NULL)
        snprintf(why, n, "could not serialise the message");
    return body;
}

static struct curl_slist *build_headers(const vg_delivery *d, int64_t ts,
                                        const char *signature)
{
    char line[160];
    struct curl_slist *list = NULL, *next = NULL;
    const char *fixed[] = {"content-type: application/json",
                           "Expect:"}; /* no 100-continue round trip */
    for (size_t i = 0; i < 2; i++) {
        next = curl_slist_append(list, fixed[i]);
        if (next == NULL)
            goto fail;
        list = next;
    }
    snprintf(line, sizeof(line), "webhook-id: %.*s", (int)sizeof(d->id) - 1,
             d->id);
    next = curl_slist_append(list, line);
    if (next == NULL)
        goto fail;
    list = next;
    snprintf(line, sizeof(line), "webhook-timestamp: %" PRId64, ts);
    next = curl_slist_append(list, line);
    if (next == NULL)
        goto fail;
    list = next;
    snprintf(line, sizeof(line), "webhook-signature: %s", signature);
    next = curl_slist_append(list, line);
    if (next == NULL)
        goto fail;
    return next;
fail:
    curl_slist_free_all(list);
    return NULL;
}

static void configure_transfer(vg_webhooks *w, attempt *a)
{
    CURL *easy = a->easy;
    long timeout_ms = (long)w->cfg.timeout_s * 1000L;
    /* A 3xx is a failed attempt (Standard Webhooks): the receiver should
     * fix its URL, and following it could lead anywhere. */
    vg_outbound_setup(easy, &(vg_outbound){
                                .url = a->delivery.url,
                                .user_agent = USER_AGENT,
                                .connect_timeout_ms = timeout_ms,
                                .timeout_ms = timeout_ms,
                                .restrict_addresses = true,
                                .allow_private = w->cfg.allow_private,
                                .refusal_note = a->refused,
                                .write = discard_response,
                                .error = a->error,
                                .private_data = a,
                            });
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)strlen(a->body));
}

/* Prepares and attaches one claimed delivery; anything that stops it
 * before the request goes out is recorded as a failed attempt. */
static void start_attempt(vg_webhooks *w, const vg_delivery *d)
{
    vg_store *store = w->store;
    vg_error err;
    vg_error_clear(&err);
    char why[600];
    vg_job job;
    memset(&job, 0, sizeof(job));

    int rc = store->ops->get_job(store, d->job_id, &job, &err);
    if (rc == VG_STORE_NOT_FOUND) {
        record_failure(w, d, 0, "the job no longer exists", true);
        return;
    }
    if (rc != VG_STORE_OK) {
        snprintf(why, sizeof(why), "could not read the job: %s", err.message);
        record_failure(w, d, 0, why, false);
        return;
    }

    attempt *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        vg_job_clear(&job);
        record_failure(w, d, 0, "out of memory", false);
        return;
    }
    a->delivery = *d;

    /* The candidate becomes the account's secret if it has none yet. */
    char candidate[64], secret[256];
    vg_webhook_new_secret(candidate);
    rc = store->ops->get_webhook_secret(store, d->account_id, candidate,
                                        secret, sizeof(secret), &err);
    if (rc != VG_STORE_OK) {
        snprintf(why, sizeof(why), "could not read the signing secret: %s",
                 err.message);
        goto fail;
    }
    a->body = build_body(w, d, &job, why, sizeof(why));
    if (a->body == NULL)
        goto fail;

    /* The attempt's own time, so receivers can refuse replays. */
    int64_t ts = vg_now_ms() / 1000;
    char signature[VG_WEBHOOK_SIGNATURE_MAX];
    if (vg_webhook_sign(secret, d->id, ts, a->body, strlen(a->body), signature,
                        sizeof(signature)) != 0) {
        snprintf(why, sizeof(why), "the account's secret is not base64");
        goto fail;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    a->headers = build_headers(d, ts, signature);
    a->easy = curl_easy_init();
    if (a->headers == NULL || a->easy == NULL) {
        snprintf(why, sizeof(why), "out of memory");
        goto fail;
    }
    configure_transfer(w, a);
    CURLMcode mc = curl_multi_add_handle(w->multi, a->easy);
    if (mc != CURLM_OK) {
        snprintf(why, sizeof(why), "could not start the request: %s",
                 curl_multi_strerror(mc));
        goto fail;
    }
    w->in_flight++;
    vg_job_clear(&job);
    return;
fail:
    OPENSSL_cleanse(secret, sizeof(secret));
    vg_job_clear(&job);
    free_attempt(a);
    record_failure(w, d, 0, why, false);
}

/* Records every transfer that has ended. */
static void collect_finished(vg_webhooks *w)
{
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(w->multi, &left);
        if (msg == NULL)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result; /* msg dies with the handle */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        attempt *a = (attempt *)priv;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(w->multi, easy);
        w->in_flight--;

        char why[CURL_ERROR_SIZE + 80];
        if (result == CURLE_OK && status >= 200 && status <= 299) {
            record_delivered(w, &a->delivery, (int)status);
        } else if (result == CURLE_OK) {
            if (status >= 300 && status <= 399)
                snprintf(why, sizeof(why),
                         "the receiver answered %ld (redirects are not "
                         "followed)",
                         status);
            else
                snprintf(why, sizeof(why), "the receiver answered %ld",
                         status);
            record_failure(w, &a->delivery, (int)status, why, false);
        } else if (a->refused[0] != '\0') {
            snprintf(why, sizeof(why),
                     "not connecting: %s (the operator can allow private "
                     "targets)",
                     a->refused);
            record_failure(w, &a->delivery, 0, why, false);
        } else {
            snprintf(why, sizeof(why), "%s",
                     a->error[0] != '\0' ? a->error
                                         : curl_easy_strerror(result));
            record_failure(w, &a->delivery, (int)status, why, false);
        }
        free_attempt(a);
    }
}

/* ---- the loop ---------------------------------------------------------- */

typedef struct claim_batch {
    vg_delivery *items;
    int count, cap;
} claim_batch;

static int collect_claimed(void *ctx, const vg_delivery *d)
{
    claim_batch *batch = ctx;
    /* The store leases at most `limit`; anything beyond would only wait
     * for its lease to run out. */
    if (batch->count < batch->cap)
        batch->items[batch->count++] = *d;
    return 0;
}

/* Claims and starts due deliveries while there is room. Returns how many
 * were claimed, or -1 when the store failed. Store calls happen outside
 * the claim callback, which may run inside the store's transaction. */
static int claim_and_start(vg_webhooks *w)
{
    int room = w->cfg.max_in_flight - w->in_flight;
    if (room <= 0)
        return 0;
    if (room > CLAIM_BATCH)
        room = CLAIM_BATCH;
    vg_delivery items[CLAIM_BATCH];
    claim_batch batch = {.items = items, .count = 0, .cap = room};
    int64_t lease = (int64_t)w->cfg.timeout_s * 1000 + LEASE_MARGIN_MS;
    vg_error err;
    vg_error_clear(&err);
    int rc = w->store->ops->claim_deliveries(w->store, vg_now_ms(), lease, room,
                                             collect_claimed, &batch, &err);
    if (rc != VG_STORE_OK) {
        vg_log_error("webhooks: could not claim deliveries: %s", err.message);
        return -1;
    }
    for (int i = 0; i < batch.count; i++)
        start_attempt(w, &items[i]);
    return batch.count;
}

/* How long curl_multi_poll may sleep, in ms. */
static int plan_wait(vg_webhooks *w, bool stopping, int claimed)
{
    long wait = IDLE_MAX_MS;
    long curl_wait = -1;
    curl_multi_timeout(w->multi, &curl_wait);
    if (curl_wait >= 0 && curl_wait < wait)
        wait = curl_wait;
    if (stopping || w->in_flight >= w->cfg.max_in_flight)
        return (int)wait;
    if (claimed < 0)
        return (int)(wait < STORE_BACKOFF_MS ? wait : STORE_BACKOFF_MS);

    int64_t next = 0;
    vg_error err;
    vg_error_clear(&err);
    if (w->store->ops->next_delivery_ms(w->store, &next, &err) !=
        VG_STORE_OK) {
        vg_log_error("webhooks: could not read the next delivery time: %s",
                     err.message);
        return (int)(wait < STORE_BACKOFF_MS ? wait : STORE_BACKOFF_MS);
    }
    if (next == 0)
        return (int)wait;
    int64_t until = next - vg_now_ms();
    if (until <= 0)
        /* Due now yet not claimed: another claimer got there between
         * our two reads. A short pause keeps a disagreement between
         * clocks from turning into a busy loop. */
        until = claimed == 0 ? 10 : 0;
    return (int)(until < wait ? until : wait);
}

static void *run(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-webhooks");
    vg_webhooks *w = arg;
    for (;;) {
        bool stopping = atomic_load(&w->stopping);
        if (stopping && w->in_flight == 0)
            break;
        int claimed = stopping ? 0 : claim_and_start(w);
        int running = 0;
        CURLMcode mc = curl_multi_perform(w->multi, &running);
        if (mc != CURLM_OK)
            vg_log_error("webhooks: %s", curl_multi_strerror(mc));
        collect_finished(w);
        int wait = plan_wait(w, stopping, claimed);
        curl_multi_poll(w->multi, NULL, 0, wait, NULL);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

static int check_config(const vg_webhook_config *cfg, vg_error *err)
{
    if (cfg->timeout_s < 1 || cfg->timeout_s > 600)
        return vg_error_set(err, 0, "config_error", "webhooks.timeout_s",
                            "webhooks.timeout_s is %d; it must be 1..600",
                            cfg->timeout_s);
    if (cfg->retry_base_ms < 1 || cfg->retry_max_gap_ms < 1)
        return vg_error_set(err, 0, "config_error", "webhooks.retry_base_ms",
                            "webhooks retry delays must be at least 1 ms");
    if (cfg->give_up_after_ms < 0)
        return vg_error_set(err, 0, "config_error",
                            "webhooks.give_up_after_ms",
                            "webhooks.give_up_after_ms must not be "
                            "negative");
    if (cfg->max_in_flight < 1 || cfg->max_in_flight > 10000)
        return vg_error_set(err, 0, "config_error", "webhooks.max_in_flight",
                            "webhooks.max_in_flight is %d; it must be "
                            "1..10000",
                            cfg->max_in_flight);
    return 0;
}

vg_webhooks *vg_webhooks_start(vg_store *store, const vg_webhook_config *cfg,
                               vg_webhook_render render, void *render_ctx,
                               vg_error *err)
{
    vg_webhook_config defaults;
    if (cfg == NULL) {
        vg_webhook_config_defaults(&defaults);
        cfg = &defaults;
    }
    if (store == NULL || render == NULL) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "webhooks need a store and a renderer");
        return NULL;
    }
    if (check_config(cfg, err) != 0)
        return NULL;
    if (vg_curl_global_init_once() != 0) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "libcurl could not initialise");
        return NULL;
    }
    vg_webhooks *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    w->store = store;
    w->cfg = *cfg;
    w->render = render;
    w->render_ctx = render_ctx;
    atomic_init(&w->stopping, false);
    w->multi = curl_multi_init();
    if (w->multi == NULL) {
        free(w);
        vg_error_set(err, 500, "internal_error", NULL,
                     "could not create a libcurl multi handle");
        return NULL;
    }
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        curl_multi_cleanup(w->multi);
        free(w);
        vg_error_set(err, 500, "internal_error", NULL,
                     "could not start the webhook thread: %s", strerror(rc));
        return NULL;
    }
    return w;
}

void vg_webhooks_poke(vg_webhooks *w)
{
    if (w != NULL)
        curl_multi_wakeup(w->multi);
}

void vg_webhooks_stop(vg_webhooks *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stopping, true);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    /* The thread left only when no transfer was attached. */
    curl_multi_cleanup(w->multi);
    free(w);
}
