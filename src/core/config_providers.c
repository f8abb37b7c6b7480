/*
 * config_providers.c - the provider instances of the configuration: the
 * built-in ones (one per provider type, from the adapter table, with
 * their default address and key variable) and the config file's
 * "providers" section, which changes them or adds instances. See
 * config_internal.h.
 */
#include "core/config_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

static bool is_upstream_type(const char *type)
{
    const vg_provider_type *t = vg_provider_type_find(type);
    return t != NULL && t->upstream;
}

static void upstream_defaults(vg_provider_config *pc, const char *name)
{
    memset(pc, 0, sizeof(*pc));
    snprintf(pc->name, sizeof(pc->name), "%s", name);
    pc->concurrency = 1000;
    pc->request_timeout_s = 30;
    pc->connect_timeout_s = 10;
    pc->download_timeout_s = 600;
    pc->poll_interval_ms = 0;
    pc->poll_max_interval_ms = 30000;
    pc->job_timeout_s = 3600;
    pc->max_video_bytes = (int64_t)512 * 1024 * 1024;
    pc->breaker_failures = 5;
    pc->breaker_open_s = 30;
}

/* The upstream providers vidgate knows out of the box, at their public
 * addresses. Each is available once its key variable is set. */
void cfg_add_builtin_providers(vg_config *cfg)
{
    for (int i = 0; vg_provider_type_at(i) != NULL; i++) {
        const vg_provider_type *t = vg_provider_type_at(i);
        if (!t->builtin || cfg->n_providers == VG_MAX_PROVIDERS)
            continue;
        vg_provider_config *pc = &cfg->providers[cfg->n_providers++];
        upstream_defaults(pc, t->name);
        snprintf(pc->type, sizeof(pc->type), "%s", t->name);
        snprintf(pc->base_url, sizeof(pc->base_url), "%s",
                 t->default_base_url);
        snprintf(pc->api_key_env, sizeof(pc->api_key_env), "%s",
                 t->default_key_env);
    }
}

static int load_upstream(vg_provider_config *pc, json_t *obj,
                         const char *where, vg_error *err)
{
    static const char *const keys[] = {"type",
                                       "base_url",
                                       "api_key_env",
                                       "concurrency",
                                       "request_timeout_s",
                                       "connect_timeout_s",
                                       "download_timeout_s",
                                       "poll_interval_ms",
                                       "poll_max_interval_ms",
                                       "job_timeout_s",
                                       "max_video_bytes",
                                       "breaker_failures",
                                       "breaker_open_s",
                                       "allow_private_addresses",
                                       "image_delivery",
                                       "delete_after_store",
                                       "storage_uri",
                                       "storage_url",
                                       "region",
                                       "project",
                                       NULL};
    if (cfg_check_keys(obj, keys, where, err) != 0)
        return -1;
    const char *base = NULL, *key_env = NULL, *images = NULL;
    if (cfg_get_string(obj, "image_delivery", &images, err) != 0)
        return -1;
    static const struct {
        const char *key;
        size_t offset, size;
    } vertex_keys[] = {
        {"storage_uri", offsetof(vg_provider_config, storage_uri),
         sizeof(pc->storage_uri)},
        {"storage_url", offsetof(vg_provider_config, storage_url),
         sizeof(pc->storage_url)},
        {"region", offsetof(vg_provider_config, region), sizeof(pc->region)},
        {"project", offsetof(vg_provider_config, project),
         sizeof(pc->project)},
    };
    for (size_t i = 0; i < sizeof(vertex_keys) / sizeof(vertex_keys[0]); i++) {
        const char *v = NULL;
        if (cfg_get_string(obj, vertex_keys[i].key, &v, err) != 0)
            return -1;
        if (v == NULL)
            continue;
        /* Names that go into URLs: printable, no spaces, no quotes. */
        bool ok = *v != '\0' && strlen(v) < vertex_keys[i].size;
        for (const char *c = v; ok && *c; c++)
            ok = *c > ' ' && *c < 127 && *c != '"' && *c != '\\';
        if (!ok)
            return cfg_config_error(
                err, "providers.*.storage_uri",
                "%s: \"%s\" must be a non-empty name or URL "
                "without spaces",
                where, vertex_keys[i].key);
        snprintf((char *)pc + vertex_keys[i].offset, vertex_keys[i].size, "%s",
                 v);
    }
    if (pc->storage_uri[0] != '\0' &&
        strncmp(pc->storage_uri, "gs://", 5) != 0)
        return cfg_config_error(
            err, "providers.*.storage_uri",
            "%s: \"storage_uri\" must be a gs://bucket/prefix "
            "URI",
            where);
    if (images != NULL) {
        if (strcmp(images, "inline") != 0 && strcmp(images, "url") != 0)
            return cfg_config_error(
                err, "providers.*.image_delivery",
                "%s: \"image_delivery\" must be \"inline\" "
                "or \"url\"",
                where);
        pc->image_urls = strcmp(images, "url") == 0;
    }
    if (cfg_get_string(obj, "base_url", &base, err) != 0 ||
        cfg_get_string(obj, "api_key_env", &key_env, err) != 0 ||
        cfg_get_int(obj, "concurrency", "providers.*.concurrency", 1, 1000000,
                    &pc->concurrency, err) != 0 ||
        cfg_get_int(obj, "request_timeout_s", "providers.*.request_timeout_s",
                    1, 3600, &pc->request_timeout_s, err) != 0 ||
        cfg_get_int(obj, "connect_timeout_s", "providers.*.connect_timeout_s",
                    1, 600, &pc->connect_timeout_s, err) != 0 ||
        cfg_get_int(obj, "download_timeout_s",
                    "providers.*.download_timeout_s", 1, 86400,
                    &pc->download_timeout_s, err) != 0 ||
        cfg_get_int(obj, "poll_interval_ms", "providers.*.poll_interval_ms", 0,
                    3600000, &pc->poll_interval_ms, err) != 0 ||
        cfg_get_int(obj, "poll_max_interval_ms",
                    "providers.*.poll_max_interval_ms", 1, 3600000,
                    &pc->poll_max_interval_ms, err) != 0 ||
        cfg_get_int(obj, "job_timeout_s", "providers.*.job_timeout_s", 1,
                    7 * 86400, &pc->job_timeout_s, err) != 0 ||
        cfg_get_int64(obj, "max_video_bytes", "providers.*.max_video_bytes",
                      1024, (int64_t)64 << 30, &pc->max_video_bytes,
                      err) != 0 ||
        cfg_get_int(obj, "breaker_failures", "providers.*.breaker_failures", 1,
                    1000, &pc->breaker_failures, err) != 0 ||
        cfg_get_int(obj, "breaker_open_s", "providers.*.breaker_open_s", 1,
                    86400, &pc->breaker_open_s, err) != 0 ||
        cfg_get_bool(obj, "allow_private_addresses",
                     "providers.*.allow_private_addresses",
                     &pc->allow_private_addresses, err) != 0 ||
        cfg_get_bool(obj, "delete_after_store",
                     "providers.*.delete_after_store", &pc->delete_after_store,
                     err) != 0)
        return -1;
    if (base != NULL) {
        if ((strncmp(base, "https://", 8) != 0 &&
             strncmp(base, "http://", 7) != 0) ||
            strlen(base) >= sizeof(pc->base_url))
            return cfg_config_error(err, "providers.*.base_url",
                                    "%s: \"base_url\" must be an http(s) URL "
                                    "of at most %zu bytes",
                                    where, sizeof(pc->base_url) - 1);
        snprintf(pc->base_url, sizeof(pc->base_url), "%s", base);
        size_t len = strlen(pc->base_url);
        while (len > 0 && pc->base_url[len - 1] == '/')
            pc->base_url[--len] = '\0';
    }
    if (key_env != NULL) {
        if (*key_env == '\0' || strlen(key_env) >= sizeof(pc->api_key_env))
            return cfg_config_error(err, "providers.*.api_key_env",
                                    "%s: \"api_key_env\" must name an "
                                    "environment variable",
                                    where);
        snprintf(pc->api_key_env, sizeof(pc->api_key_env), "%s", key_env);
    }
    if (pc->base_url[0] == '\0')
        return cfg_config_error(err, "providers.*.base_url",
                                "%s needs a \"base_url\"", where);
    if (pc->api_key_env[0] == '\0')
        return cfg_config_error(err, "providers.*.api_key_env",
                                "%s needs an \"api_key_env\": the environment "
                                "variable that holds its API key",
                                where);
    return 0;
}

static vg_provider_config *provider_entry(vg_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

static int load_provider(vg_config *cfg, const char *name, json_t *obj,
                         vg_error *err)
{
    static const char *const local_keys[] = {"concurrency", "delay_ms", NULL};
    static const char *const replay_keys[] = {"concurrency", "delay_ms",
                                              "file", NULL};
    char where[64];
    snprintf(where, sizeof(where), "\"providers.%.32s\"", name);
    if (!json_is_object(obj))
        return cfg_config_error(err, "providers", "%s must be an object",
                                where);
    if (strlen(name) >= sizeof(cfg->providers[0].name))
        return cfg_config_error(err, "providers",
                                "provider names are at most %zu characters",
                                sizeof(cfg->providers[0].name) - 1);
    /* An upstream instance's protocol is its "type", or its name. */
    const char *type = name;
    if (cfg_get_string(obj, "type", &type, err) != 0)
        return -1;
    if (type == NULL)
        type = name;
    vg_provider_config *pc = provider_entry(cfg, name);
    bool upstream = is_upstream_type(type);
    if (strcmp(name, "local") != 0 && strcmp(name, "replay") != 0 &&
        !upstream) {
        char known[300];
        size_t used = 0;
        known[0] = '\0';
        for (int i = 0; vg_provider_type_at(i) != NULL; i++) {
            const vg_provider_type *t = vg_provider_type_at(i);
            if (t->upstream && used < sizeof(known))
                used +=
                    (size_t)snprintf(known + used, sizeof(known) - used,
                                     "%s%s", used > 0 ? ", " : "", t->name);
        }
        return cfg_config_error(err, "providers",
                                "unknown provider \"%.64s\" in \"providers\" "
                                "(known: local, replay, or an upstream with "
                                "\"type\" %s)",
                                type, known);
    }
    if (pc == NULL) {
        if (cfg->n_providers == VG_MAX_PROVIDERS)
            return cfg_config_error(err, "providers", "at most %d providers",
                                    VG_MAX_PROVIDERS);
        pc = &cfg->providers[cfg->n_providers++];
        if (upstream)
            upstream_defaults(pc, name);
        else
            memset(pc, 0, sizeof(*pc));
        snprintf(pc->name, sizeof(pc->name), "%s", name);
    }
    if (upstream) {
        snprintf(pc->type, sizeof(pc->type), "%s", type);
        return load_upstream(pc, obj, where, err);
    }
    snprintf(pc->type, sizeof(pc->type), "%s", name);
    if (cfg_check_keys(obj,
                       strcmp(name, "local") == 0 ? local_keys : replay_keys,
                       where, err) != 0)
        return -1;
    const char *file = NULL;
    if (cfg_get_int(obj, "concurrency", "providers.*.concurrency", 1, 1000000,
                    &pc->concurrency, err) != 0 ||
        cfg_get_int(obj, "delay_ms", "providers.*.delay_ms", 0, 86400000,
                    &pc->delay_ms, err) != 0 ||
        cfg_get_string(obj, "file", &file, err) != 0)
        return -1;
    if (strcmp(name, "replay") == 0 && (file == NULL || *file == '\0'))
        return cfg_config_error(err, "providers.replay.file",
                                "\"providers.replay\" needs a \"file\": the "
                                "MP4 every job returns");
    if (file != NULL)
        snprintf(pc->file, sizeof(pc->file), "%s", file);
    return 0;
}

/* Sections merge into the defaults: naming a built-in upstream changes
 * only the keys given. */
int cfg_load_providers(vg_config *cfg, json_t *providers, vg_error *err)
{
    if (!json_is_object(providers))
        return cfg_config_error(err, "providers",
                                "\"providers\" must be an object");
    const char *name;
    json_t *obj;
    json_object_foreach(providers, name, obj)
    {
        if (load_provider(cfg, name, obj, err) != 0)
            return -1;
    }
    return 0;
}

/* "dns_servers": ["ip", "ip:port", "[ipv6]:port"], joined for c-ares,
 * which judges the addresses when the fetcher starts. */
