/*
 * config.h - the server's settings: built-in defaults, then the JSON config
 * file, then environment variables, then command-line flags, each
 * overriding the one before.
 *
 * Config file (all keys optional; see docs/config.md):
 *   {"listen": "127.0.0.1:8080", "data": "./vidgate-data",
 *    "public_url": "http://127.0.0.1:8080",
 *    "limits": {"max_body_bytes", "max_header_bytes", "max_upload_bytes",
 *               "max_upload_files", "max_form_fields",
 *               "prompt_max_chars", "connection_timeout_s",
 *               "header_timeout_s", "min_body_bytes_per_s",
 *               "max_connections", "max_connections_per_ip"},
 *    "http_threads", "render_workers", "token_lifetime_s",
 *    "url_lifetime_s", "shutdown_grace_s", "starting_credits",
 *    "jobs": {"max_sync_wait_s", "flex_max_wait_s", "max_attempts",
 *             "idempotency_ttl_s", "queued_in_memory",
 *             "dispatch_backlog"},
 *    "providers": {"local": {"concurrency", "delay_ms"},
 *                  "replay": {"file", "delay_ms", "concurrency"},
 *                  "<upstream>": {"type", "base_url", "api_key_env",
 *                                 "concurrency", "request_timeout_s",
 *                                 "connect_timeout_s",
 *                                 "download_timeout_s", "poll_interval_ms",
 *                                 "poll_max_interval_ms", "job_timeout_s",
 *                                 "max_video_bytes", "breaker_failures",
 *                                 "breaker_open_s", "image_delivery",
 *                                 "allow_private_addresses"}},
 *      (novita, google, byteplus, fal and replicate are built in)
 *    "webhooks": {"allow_private_addresses", "timeout_s",
 *                 "retry_base_ms", "give_up_after_s", "max_in_flight"},
 *    "images": {"allow_urls", "allow_http", "allow_private_addresses",
 *               "fetch_timeout_s", "max_fetch_bytes"},
 *    "models": [...]}
 */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "core/catalog.h"
#include "util/error.h"
#include "core/jobs.h"
#include "core/request.h"

/* HTTP threads never wait for renders or commits (both suspend the
 * connection), so two keep up with two cores. */
#define VG_DEFAULT_HTTP_THREADS 2

typedef struct vg_config {
    char listen_host[128];
    int listen_port;
    char data_dir[PATH_MAX];
    vg_store_config store; /* the "store" section: backend and settings */
    vg_blob_config blob;   /* the "blob" section */
    char public_url[512]; /* base of the video URLs; "" = from listen */
    int64_t max_body_bytes;   /* JSON bodies and form fields */
    int64_t max_header_bytes; /* request line + headers */
    int max_form_fields;      /* form fields and file parts together */
    int connection_timeout_s; /* idle client before it is dropped */
    int header_timeout_s;     /* a request head must arrive within this */
    int64_t min_body_bytes_per_s; /* slower bodies are dropped; 0 = off */
    int max_connections;
    int max_connections_per_ip; /* 0 = unlimited */
    int http_threads;   /* MHD epoll threads; 0 = the default */
    int render_workers; /* 0 = number of cores */
    int token_lifetime_s;
    int url_lifetime_s;  /* signed video URLs */
    int shutdown_grace_s; /* how long running renders may finish at exit */
    int64_t starting_credits; /* thousandths, for the first account */
    /* Jobs. */
    int max_sync_wait_s;   /* longest synchronous wait before a 202 */
    int flex_max_wait_s;   /* flex jobs count as default after this */
    int max_attempts;      /* starts before an interrupted job fails */
    int idempotency_ttl_s; /* how long an Idempotency-Key is remembered */
    int queued_in_memory;  /* queued jobs held in memory per provider;
                              more wait in the store only */
    int dispatch_backlog;  /* submits wait while this many jobs of their
                              provider could start but wait for a
                              worker; 0 = off */
    /* Per API key (a key's own limits override these); 0 = unlimited. */
    int requests_per_minute;
    int unfinished_jobs_per_key;
    vg_provider_config providers[VG_MAX_PROVIDERS];
    int n_providers;
    /* Webhooks. */
    bool webhook_allow_private;
    int webhook_timeout_s;
    int64_t webhook_retry_base_ms;
    int webhook_give_up_after_s;
    int webhook_max_in_flight;
    /* Name servers for the webhook_url check, "ip[:port],..."; "" = the
     * system's (see fetcher.h). */
    char webhook_dns_servers[512];
    /* Reference image URLs ("images"); vg_config_finish copies them into
     * request_limits, where request parsing reads them. */
    bool images_allow_urls;
    vg_fetch_limits image_fetch; /* max_bytes 0 = max_upload_bytes */
    int image_max_fetches;           /* downloads at once */
    int image_max_fetches_per_account;
    vg_limits request_limits;
    vg_catalog *catalog;
    /* VIDGATE_OPERATOR_TOKEN (environment only): the bearer that shows
     * /healthz in full; "" = details for nobody. */
    char operator_token[256];
} vg_config;

/* Fills defaults. */
void vg_config_defaults(vg_config *cfg);
/* Reads a JSON config file over the current values; 0 on success. */
int vg_config_load_file(vg_config *cfg, const char *path, vg_error *err);
/* Applies VIDGATE_LISTEN, VIDGATE_DATA, VIDGATE_CONFIG-independent env. */
int vg_config_apply_env(vg_config *cfg, vg_error *err);
/* "HOST:PORT" into the listen fields; 0 on success. */
int vg_config_set_listen(vg_config *cfg, const char *hostport, vg_error *err);
/* Installs the default catalog when no file provided models. */
void vg_config_finish(vg_config *cfg);
void vg_config_free(vg_config *cfg);

#endif
