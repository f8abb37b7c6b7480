/*
 * config.c - the server's settings: defaults, the JSON config file, and the
 * VIDGATE_* environment variables, applied in that order.
 *
 * The file is parsed strictly: an unknown key, a duplicate key, a number of
 * the wrong kind or out of range stops the server at startup with a message
 * naming the key, because a misspelt limit that is silently ignored is a
 * limit the operator believes is in force and is not. A file is applied all
 * or nothing: on any error the caller's settings are left untouched.
 */
#include "core/config_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

#define KIB 1024
#define MIB (1024 * 1024)

void vg_config_defaults(vg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./vidgate-data");
    snprintf(cfg->store.backend, sizeof(cfg->store.backend), "sqlite");
    cfg->store.pool_size = 8;
    snprintf(cfg->blob.backend, sizeof(cfg->blob.backend), "fs");
    cfg->public_url[0] = '\0';
    cfg->max_body_bytes = 1 * MIB;
    cfg->max_header_bytes = 8 * KIB;
    cfg->max_form_fields = 64;
    cfg->connection_timeout_s = 30;
    cfg->header_timeout_s = 10;
    cfg->min_body_bytes_per_s = 1024;
    cfg->max_connections = 20000;
    cfg->max_connections_per_ip = 256;
    cfg->http_threads = VG_DEFAULT_HTTP_THREADS;
    cfg->render_workers = 0;
    cfg->token_lifetime_s = 3600;
    cfg->url_lifetime_s = 86400;
    cfg->shutdown_grace_s = 30;
    cfg->starting_credits = 100 * 1000;
    cfg->max_sync_wait_s = 600;
    cfg->flex_max_wait_s = 600;
    cfg->max_attempts = 3;
    cfg->queued_in_memory = 4096;
    cfg->dispatch_backlog = 500;
    cfg->idempotency_ttl_s = 86400;
    cfg->requests_per_minute = 600;
    cfg->unfinished_jobs_per_key = 64;
    cfg->webhook_allow_private = false;
    cfg->webhook_timeout_s = 10;
    cfg->webhook_retry_base_ms = 5000;
    cfg->webhook_give_up_after_s = 86400;
    cfg->webhook_max_in_flight = 64;
    cfg->images_allow_urls = true;
    cfg->image_fetch.allow_http = false;
    cfg->image_fetch.allow_private = false;
    cfg->image_fetch.timeout_s = 10;
    cfg->image_fetch.max_bytes = 0; /* = max_upload_bytes */
    cfg->image_fetch.min_bytes_per_s = 1024;
    cfg->image_max_fetches = 64;
    cfg->image_max_fetches_per_account = 4;
    cfg->request_limits.prompt_max_chars = 2000;
    cfg->request_limits.max_image_bytes = 10 * MIB;
    cfg->request_limits.max_images = 4;
    cfg->catalog = NULL;
    cfg_add_builtin_providers(cfg);
}

/* One place for the status and code of every configuration error. */
int cfg_config_error(vg_error *err, const char *field, const char *fmt, ...)
{
    char message[sizeof(err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return vg_error_set(err, 0, "config_error", field, "%s", message);
}

/* Puts where the setting came from (file, variable) before the message. */
static void prefix_message(vg_error *err, const char *prefix)
{
    char message[sizeof(err->message)];
    snprintf(message, sizeof(message), "%s", err->message);
    snprintf(err->message, sizeof(err->message), "%.200s: %.300s", prefix,
             message);
}

static int bad_listen(vg_error *err, const char *shown)
{
    return cfg_config_error(err, "listen",
                            "listen address %s must be HOST:PORT, such as "
                            "127.0.0.1:8080 or [::1]:8080, with a port from 0 "
                            "to 65535 (0 picks a free port)",
                            shown);
}

int vg_config_set_listen(vg_config *cfg, const char *hostport, vg_error *err)
{
    char shown[160];
    const char *host, *colon;
    size_t host_len;

    snprintf(shown, sizeof(shown), "\"%.120s\"", hostport ? hostport : "");
    if (hostport == NULL || *hostport == '\0')
        return bad_listen(err, shown);
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (close == NULL || close[1] != ':')
            return bad_listen(err, shown);
        host = hostport + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (colon == NULL)
            return bad_listen(err, shown);
        host = hostport;
        host_len = (size_t)(colon - host);
        /* "::1:8080" could be read two ways; brackets say which. */
        if (memchr(host, ':', host_len) != NULL)
            return cfg_config_error(err, "listen",
                                    "listen address %s: put an IPv6 address "
                                    "in brackets, as in [::1]:8080",
                                    shown);
    }
    if (host_len == 0 || host_len >= sizeof(cfg->listen_host))
        return bad_listen(err, shown);

    int64_t port;
    if (vg_parse_int64(colon + 1, &port) != 0 || port < 0 || port > 65535)
        return bad_listen(err, shown);

    memcpy(cfg->listen_host, host, host_len);
    cfg->listen_host[host_len] = '\0';
    cfg->listen_port = (int)port;
    return 0;
}

static int set_data_dir(vg_config *cfg, const char *dir, const char *field,
                        vg_error *err)
{
    if (dir == NULL || *dir == '\0' || strlen(dir) >= sizeof(cfg->data_dir))
        return cfg_config_error(err, field,
                                "%s must be a directory path (not empty, "
                                "shorter than PATH_MAX)",
                                field);
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", dir);
    return 0;
}

/* The base that video URLs are built on. Trailing slashes are dropped so
 * joining "/v1/..." never makes "//". */
static int set_public_url(vg_config *cfg, const char *url, const char *field,
                          vg_error *err)
{
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    bool ok = len == 0 || strncasecmp(url, "http://", 7) == 0 ||
              strncasecmp(url, "https://", 8) == 0;
    if (!ok || len >= sizeof(cfg->public_url))
        return cfg_config_error(
            err, field,
            "%s must be \"\" or an http:// or https:// URL "
            "(at most 511 characters)",
            field);
    memcpy(cfg->public_url, url, len);
    cfg->public_url[len] = '\0';
    return 0;
}

int cfg_get_int64(json_t *obj, const char *key, const char *path, int64_t lo,
                  int64_t hi, int64_t *out, vg_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi)
        return vg_error_set(err, 0, "config_error", path,
                            "\"%s\" must be a whole number from %lld to "
                            "%lld",
                            path, (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

int cfg_get_int(json_t *obj, const char *key, const char *path, int lo, int hi,
                int *out, vg_error *err)
{
    int64_t v = *out;
    if (cfg_get_int64(obj, key, path, lo, hi, &v, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

int cfg_get_string(json_t *obj, const char *key, const char **out,
                   vg_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return cfg_config_error(err, key, "\"%s\" must be a string", key);
    *out = json_string_value(v);
    return 0;
}

/* Credits as in the catalog's prices: a JSON number with at most three
 * decimals, converted exactly (see json_to_thousandths in catalog.c). */
static int get_credits(json_t *obj, const char *key, int64_t *out,
                       vg_error *err)
{
    json_t *v = json_object_get(obj, key);
    char text[64];
    if (v == NULL)
        return 0;
    bool ok = false;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
        ok = true;
    } else if (json_is_real(v) && json_real_value(v) >= 0.0 &&
               json_real_value(v) < 1e15) {
        snprintf(text, sizeof(text), "%.3f", json_real_value(v));
        ok = strtod(text, NULL) == json_real_value(v);
    }
    if (!ok || vg_parse_credits(text, out) != 0)
        return cfg_config_error(err, key,
                                "\"%s\" must be a non-negative number of "
                                "credits with at most 3 decimals",
                                key);
    return 0;
}

int cfg_check_keys(json_t *obj, const char *const *allowed, const char *where,
                   vg_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known) {
            char message[300];
            snprintf(message, sizeof(message),
                     "unknown key \"%.100s\"%s%s (a typo? see "
                     "docs/config.md)",
                     key, *where ? " in " : "", where);
            return vg_error_set(err, 0, "config_error", key, "%s", message);
        }
    }
    return 0;
}

static int load_limits(vg_config *cfg, json_t *limits, vg_error *err)
{
    static const char *const allowed[] = {
        "max_body_bytes",          "max_header_bytes",
        "max_upload_bytes",        "max_upload_files",
        "max_form_fields",         "prompt_max_chars",
        "connection_timeout_s",    "header_timeout_s",
        "min_body_bytes_per_s",    "max_connections",
        "max_connections_per_ip",  "requests_per_minute",
        "unfinished_jobs_per_key", NULL};
    if (!json_is_object(limits))
        return cfg_config_error(err, "limits", "\"limits\" must be an object");
    if (cfg_check_keys(limits, allowed, "\"limits\"", err) != 0)
        return -1;
    vg_limits *rl = &cfg->request_limits;
    if (cfg_get_int64(limits, "max_body_bytes", "limits.max_body_bytes", 1,
                      INT64_MAX, &cfg->max_body_bytes, err) != 0 ||
        cfg_get_int64(limits, "max_header_bytes", "limits.max_header_bytes", 1,
                      INT32_MAX, &cfg->max_header_bytes, err) != 0 ||
        cfg_get_int64(limits, "max_upload_bytes", "limits.max_upload_bytes", 1,
                      INT64_MAX, &rl->max_image_bytes, err) != 0 ||
        cfg_get_int(limits, "max_upload_files", "limits.max_upload_files", 1,
                    VG_MAX_IMAGES, &rl->max_images, err) != 0 ||
        cfg_get_int(limits, "prompt_max_chars", "limits.prompt_max_chars", 1,
                    INT32_MAX, &rl->prompt_max_chars, err) != 0 ||
        cfg_get_int(limits, "connection_timeout_s",
                    "limits.connection_timeout_s", 1, INT32_MAX,
                    &cfg->connection_timeout_s, err) != 0 ||
        cfg_get_int(limits, "max_form_fields", "limits.max_form_fields", 1,
                    100000, &cfg->max_form_fields, err) != 0 ||
        cfg_get_int(limits, "header_timeout_s", "limits.header_timeout_s", 1,
                    86400, &cfg->header_timeout_s, err) != 0 ||
        cfg_get_int64(limits, "min_body_bytes_per_s",
                      "limits.min_body_bytes_per_s", 0, INT64_MAX,
                      &cfg->min_body_bytes_per_s, err) != 0 ||
        cfg_get_int(limits, "max_connections", "limits.max_connections", 1,
                    1000000, &cfg->max_connections, err) != 0 ||
        cfg_get_int(limits, "max_connections_per_ip",
                    "limits.max_connections_per_ip", 0, 1000000,
                    &cfg->max_connections_per_ip, err) != 0 ||
        cfg_get_int(limits, "requests_per_minute",
                    "limits.requests_per_minute", 0, INT32_MAX,
                    &cfg->requests_per_minute, err) != 0 ||
        cfg_get_int(limits, "unfinished_jobs_per_key",
                    "limits.unfinished_jobs_per_key", 0, INT32_MAX,
                    &cfg->unfinished_jobs_per_key, err) != 0)
        return -1;
    return 0;
}

int cfg_get_bool(json_t *obj, const char *key, const char *path, bool *out,
                 vg_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return cfg_config_error(err, path, "\"%s\" must be true or false",
                                path);
    *out = json_is_true(v);
    return 0;
}

static int load_jobs(vg_config *cfg, json_t *jobs, vg_error *err)
{
    static const char *const allowed[] = {"max_sync_wait_s",
                                          "flex_max_wait_s",
                                          "max_attempts",
                                          "idempotency_ttl_s",
                                          "queued_in_memory",
                                          "dispatch_backlog",
                                          NULL};
    if (!json_is_object(jobs))
        return cfg_config_error(err, "jobs", "\"jobs\" must be an object");
    if (cfg_check_keys(jobs, allowed, "\"jobs\"", err) != 0 ||
        cfg_get_int(jobs, "max_sync_wait_s", "jobs.max_sync_wait_s", 0, 86400,
                    &cfg->max_sync_wait_s, err) != 0 ||
        cfg_get_int(jobs, "flex_max_wait_s", "jobs.flex_max_wait_s", 0,
                    INT32_MAX / 1000, &cfg->flex_max_wait_s, err) != 0 ||
        cfg_get_int(jobs, "max_attempts", "jobs.max_attempts", 1, 100,
                    &cfg->max_attempts, err) != 0 ||
        cfg_get_int(jobs, "idempotency_ttl_s", "jobs.idempotency_ttl_s", 1,
                    INT32_MAX, &cfg->idempotency_ttl_s, err) != 0 ||
        cfg_get_int(jobs, "queued_in_memory", "jobs.queued_in_memory", 1,
                    1000000, &cfg->queued_in_memory, err) != 0 ||
        cfg_get_int(jobs, "dispatch_backlog", "jobs.dispatch_backlog", 0,
                    1000000, &cfg->dispatch_backlog, err) != 0)
        return -1;
    return 0;
}

/* The settings of an upstream provider instance. */
static int get_dns_servers(json_t *obj, char *out, size_t size, vg_error *err)
{
    const char *path = "webhooks.dns_servers";
    json_t *list = json_object_get(obj, "dns_servers");
    out[0] = '\0';
    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return cfg_config_error(
            err, path, "%s must be a list of \"ip[:port]\" strings", path);
    size_t used = 0, i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *text = json_string_value(item);
        if (text == NULL || text[0] == '\0' || strchr(text, ',') != NULL ||
            strchr(text, ' ') != NULL)
            return cfg_config_error(
                err, path, "%s[%zu] must be \"ip\" or \"ip:port\"", path, i);
        int n =
            snprintf(out + used, size - used, "%s%s", used ? "," : "", text);
        if (n < 0 || (size_t)n >= size - used)
            return cfg_config_error(err, path, "%s is too long", path);
        used += (size_t)n;
    }
    return 0;
}

static int load_webhooks(vg_config *cfg, json_t *hooks, vg_error *err)
{
    static const char *const allowed[] = {"allow_private_addresses",
                                          "timeout_s",
                                          "retry_base_ms",
                                          "give_up_after_s",
                                          "max_in_flight",
                                          "dns_servers",
                                          NULL};
    if (!json_is_object(hooks))
        return cfg_config_error(err, "webhooks",
                                "\"webhooks\" must be an object");
    if (cfg_check_keys(hooks, allowed, "\"webhooks\"", err) != 0 ||
        cfg_get_bool(hooks, "allow_private_addresses",
                     "webhooks.allow_private_addresses",
                     &cfg->webhook_allow_private, err) != 0 ||
        cfg_get_int(hooks, "timeout_s", "webhooks.timeout_s", 1, 600,
                    &cfg->webhook_timeout_s, err) != 0 ||
        cfg_get_int64(hooks, "retry_base_ms", "webhooks.retry_base_ms", 1,
                      86400000, &cfg->webhook_retry_base_ms, err) != 0 ||
        cfg_get_int(hooks, "give_up_after_s", "webhooks.give_up_after_s", 1,
                    30 * 86400, &cfg->webhook_give_up_after_s, err) != 0 ||
        cfg_get_int(hooks, "max_in_flight", "webhooks.max_in_flight", 1, 10000,
                    &cfg->webhook_max_in_flight, err) != 0 ||
        get_dns_servers(hooks, cfg->webhook_dns_servers,
                        sizeof(cfg->webhook_dns_servers), err) != 0)
        return -1;
    return 0;
}

/* Reference image URLs (see fetch.h). The timeout is kept short because
 * a fetch holds the request that asked for it until it ends. */
static int load_images(vg_config *cfg, json_t *images, vg_error *err)
{
    static const char *const allowed[] = {"allow_urls",
                                          "allow_http",
                                          "allow_private_addresses",
                                          "fetch_timeout_s",
                                          "max_fetch_bytes",
                                          "min_fetch_bytes_per_s",
                                          "max_fetches",
                                          "max_fetches_per_account",
                                          NULL};
    if (!json_is_object(images))
        return cfg_config_error(err, "images", "\"images\" must be an object");
    if (cfg_check_keys(images, allowed, "\"images\"", err) != 0 ||
        cfg_get_bool(images, "allow_urls", "images.allow_urls",
                     &cfg->images_allow_urls, err) != 0 ||
        cfg_get_bool(images, "allow_http", "images.allow_http",
                     &cfg->image_fetch.allow_http, err) != 0 ||
        cfg_get_bool(images, "allow_private_addresses",
                     "images.allow_private_addresses",
                     &cfg->image_fetch.allow_private, err) != 0 ||
        cfg_get_int(images, "fetch_timeout_s", "images.fetch_timeout_s", 1,
                    120, &cfg->image_fetch.timeout_s, err) != 0 ||
        cfg_get_int64(images, "max_fetch_bytes", "images.max_fetch_bytes", 1,
                      INT64_MAX, &cfg->image_fetch.max_bytes, err) != 0 ||
        cfg_get_int(images, "min_fetch_bytes_per_s",
                    "images.min_fetch_bytes_per_s", 0, 1 << 30,
                    &cfg->image_fetch.min_bytes_per_s, err) != 0 ||
        cfg_get_int(images, "max_fetches", "images.max_fetches", 1, 10000,
                    &cfg->image_max_fetches, err) != 0 ||
        cfg_get_int(images, "max_fetches_per_account",
                    "images.max_fetches_per_account", 1, 10000,
                    &cfg->image_max_fetches_per_account, err) != 0)
        return -1;
    return 0;
}

/* The "store" and "blob" sections: which backend, and its settings
 * (a path; "" keeps the backend's place in the data directory). */
static int load_backend(json_t *section, const char *name,
                        bool (*known)(const char *, char *, size_t),
                        const char *path_key, const char *const *more_keys,
                        char *backend, size_t backend_n, char *path,
                        size_t path_n, vg_error *err)
{
    const char *allowed[8] = {"backend", path_key};
    for (int i = 0; more_keys != NULL && more_keys[i] != NULL && i < 5; i++)
        allowed[2 + i] = more_keys[i];
    char where[40], field[80], names[200];
    snprintf(where, sizeof(where), "\"%s\"", name);
    if (!json_is_object(section))
        return cfg_config_error(err, name, "\"%s\" must be an object", name);
    if (cfg_check_keys(section, allowed, where, err) != 0)
        return -1;
    const char *s;
    snprintf(field, sizeof(field), "%s.backend", name);
    if (cfg_get_string(section, "backend", &s, err) != 0)
        return -1;
    if (s != NULL) {
        if (!known(s, names, sizeof(names)) || strlen(s) >= backend_n)
            return cfg_config_error(err, field,
                                    "\"%s\" is not a %s backend of this build "
                                    "(%s)",
                                    s, name, names);
        snprintf(backend, backend_n, "%s", s);
    }
    snprintf(field, sizeof(field), "%s.%s", name, path_key);
    if (cfg_get_string(section, path_key, &s, err) != 0)
        return -1;
    if (s != NULL && strlen(s) >= path_n)
        return cfg_config_error(err, field, "\"%s\" is too long", field);
    if (s != NULL)
        snprintf(path, path_n, "%s", s);
    return 0;
}

/* The "store" section: the backend, SQLite's path, PostgreSQL's url and
 * pool size. */
static int load_store(vg_config *cfg, json_t *section, vg_error *err)
{
    static const char *const postgres_keys[] = {"url", "pool_size", NULL};
    if (load_backend(section, "store", vg_store_backend_known, "path",
                     postgres_keys, cfg->store.backend,
                     sizeof(cfg->store.backend), cfg->store.path,
                     sizeof(cfg->store.path), err) != 0)
        return -1;
    const char *s;
    if (cfg_get_string(section, "url", &s, err) != 0)
        return -1;
    if (s != NULL && strlen(s) >= sizeof(cfg->store.url))
        return cfg_config_error(err, "store.url", "\"store.url\" is too long");
    if (s != NULL)
        snprintf(cfg->store.url, sizeof(cfg->store.url), "%s", s);
    return cfg_get_int(section, "pool_size", "store.pool_size", 1, 1000,
                       &cfg->store.pool_size, err);
}

static int load_object(vg_config *cfg, json_t *root, vg_catalog **catalog,
                       vg_error *err)
{
    static const char *const allowed[] = {"listen",
                                          "data",
                                          "public_url",
                                          "limits",
                                          "http_threads",
                                          "render_workers",
                                          "token_lifetime_s",
                                          "url_lifetime_s",
                                          "shutdown_grace_s",
                                          "starting_credits",
                                          "models",
                                          "jobs",
                                          "providers",
                                          "webhooks",
                                          "images",
                                          "store",
                                          "blob",
                                          NULL};
    const char *s;
    json_t *v;

    if (!json_is_object(root))
        return cfg_config_error(err, "",
                                "the config file must hold a JSON "
                                "object");
    if (cfg_check_keys(root, allowed, "", err) != 0)
        return -1;

    if (cfg_get_string(root, "listen", &s, err) != 0)
        return -1;
    if (s != NULL && vg_config_set_listen(cfg, s, err) != 0)
        return -1;
    if (cfg_get_string(root, "data", &s, err) != 0)
        return -1;
    if (s != NULL && set_data_dir(cfg, s, "data", err) != 0)
        return -1;
    if (cfg_get_string(root, "public_url", &s, err) != 0)
        return -1;
    if (s != NULL && set_public_url(cfg, s, "public_url", err) != 0)
        return -1;

    v = json_object_get(root, "store");
    if (v != NULL && load_store(cfg, v, err) != 0)
        return -1;
    v = json_object_get(root, "blob");
    if (v != NULL &&
        load_backend(v, "blob", vg_blob_backend_known, "dir", NULL,
                     cfg->blob.backend, sizeof(cfg->blob.backend),
                     cfg->blob.dir, sizeof(cfg->blob.dir), err) != 0)
        return -1;

    v = json_object_get(root, "limits");
    if (v != NULL && load_limits(cfg, v, err) != 0)
        return -1;

    /* 0 has a meaning for these two (see config.h); the rest must be
     * positive. */
    if (cfg_get_int(root, "http_threads", "http_threads", 0, 1024,
                    &cfg->http_threads, err) != 0 ||
        cfg_get_int(root, "render_workers", "render_workers", 0, 1024,
                    &cfg->render_workers, err) != 0 ||
        cfg_get_int(root, "token_lifetime_s", "token_lifetime_s", 1, INT32_MAX,
                    &cfg->token_lifetime_s, err) != 0 ||
        cfg_get_int(root, "url_lifetime_s", "url_lifetime_s", 1, INT32_MAX,
                    &cfg->url_lifetime_s, err) != 0 ||
        cfg_get_int(root, "shutdown_grace_s", "shutdown_grace_s", 0, 86400,
                    &cfg->shutdown_grace_s, err) != 0 ||
        get_credits(root, "starting_credits", &cfg->starting_credits, err) !=
            0)
        return -1;

    v = json_object_get(root, "jobs");
    if (v != NULL && load_jobs(cfg, v, err) != 0)
        return -1;
    v = json_object_get(root, "providers");
    if (v != NULL && cfg_load_providers(cfg, v, err) != 0)
        return -1;
    v = json_object_get(root, "webhooks");
    if (v != NULL && load_webhooks(cfg, v, err) != 0)
        return -1;
    v = json_object_get(root, "images");
    if (v != NULL && load_images(cfg, v, err) != 0)
        return -1;

    v = json_object_get(root, "models");
    if (v != NULL) {
        *catalog = vg_catalog_from_json(v, err);
        if (*catalog == NULL)
            return -1;
    }
    return 0;
}

int vg_config_load_file(vg_config *cfg, const char *path, vg_error *err)
{
    json_error_t jerr;
    /* Duplicate keys are refused like unknown ones: with two "listen"
     * lines, only one of them can be what the operator meant. */
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return vg_error_set(err, 0, "config_error", "", "%s:%d:%d: %s", path,
                            jerr.line, jerr.column, jerr.text);

    vg_config next = *cfg;
    vg_catalog *catalog = NULL;
    int rc = load_object(&next, root, &catalog, err);
    json_decref(root);
    if (rc != 0) {
        prefix_message(err, path);
        return -1;
    }
    if (catalog != NULL) {
        vg_catalog_free(cfg->catalog);
        next.catalog = catalog;
    }
    *cfg = next;
    return 0;
}

/* An empty variable counts as unset, as container tooling often defines
 * every variable it knows of, empty or not. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

int vg_config_apply_env(vg_config *cfg, vg_error *err)
{
    vg_config next = *cfg;
    const char *v = env("VIDGATE_LISTEN");
    if (v != NULL && vg_config_set_listen(&next, v, err) != 0) {
        prefix_message(err, "VIDGATE_LISTEN");
        return -1;
    }
    v = env("VIDGATE_DATA");
    if (v != NULL && set_data_dir(&next, v, "VIDGATE_DATA", err) != 0)
        return -1;
    v = env("VIDGATE_PUBLIC_URL");
    if (v != NULL && set_public_url(&next, v, "VIDGATE_PUBLIC_URL", err) != 0)
        return -1;
    /* A database URL chooses the PostgreSQL store, whatever the file
     * said, as DATABASE_URL does for most servers. */
    v = env("VIDGATE_DATABASE_URL");
    if (v != NULL) {
        if (strlen(v) >= sizeof(next.store.url))
            return cfg_config_error(err, "VIDGATE_DATABASE_URL",
                                    "VIDGATE_DATABASE_URL is too long");
        snprintf(next.store.backend, sizeof(next.store.backend), "postgres");
        snprintf(next.store.url, sizeof(next.store.url), "%s", v);
    }
    v = env("VIDGATE_OPERATOR_TOKEN");
    if (v != NULL &&
        (strlen(v) < 16 || strlen(v) >= sizeof(next.operator_token)))
        return cfg_config_error(err, "VIDGATE_OPERATOR_TOKEN",
                                "VIDGATE_OPERATOR_TOKEN must be 16 to %zu "
                                "characters",
                                sizeof(next.operator_token) - 1);
    if (v != NULL)
        snprintf(next.operator_token, sizeof(next.operator_token), "%s", v);
    *cfg = next;
    return 0;
}

void vg_config_finish(vg_config *cfg)
{
    if (cfg->catalog == NULL)
        cfg->catalog = vg_catalog_default();
    if (cfg->request_limits.max_images > VG_MAX_IMAGES)
        cfg->request_limits.max_images = VG_MAX_IMAGES;
    /* The image URL settings reach request parsing through its limits;
     * an unset fetch size follows max_upload_bytes wherever it was set. */
    vg_limits *rl = &cfg->request_limits;
    rl->allow_image_urls = cfg->images_allow_urls;
    rl->image_fetch = cfg->image_fetch;
    if (rl->image_fetch.max_bytes <= 0)
        rl->image_fetch.max_bytes = rl->max_image_bytes;
}

void vg_config_free(vg_config *cfg)
{
    if (cfg == NULL)
        return;
    vg_catalog_free(cfg->catalog);
    cfg->catalog = NULL;
}
