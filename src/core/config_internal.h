/*
 * config_internal.h - what config.c (the settings, the file, the
 * environment) and config_providers.c (the "providers" section and the
 * built-in provider instances) share.
 */
#ifndef VG_CONFIG_INTERNAL_H
#define VG_CONFIG_INTERNAL_H

#include "core/config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* A config error naming field (may be NULL). */
int cfg_config_error(vg_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reading one key of a section strictly: absent keys leave *out alone,
 * a value of the wrong kind or out of [lo, hi] is an error naming
 * path. */
int cfg_get_int64(json_t *obj, const char *key, const char *path, int64_t lo,
                  int64_t hi, int64_t *out, vg_error *err);
int cfg_get_int(json_t *obj, const char *key, const char *path, int lo, int hi,
                int *out, vg_error *err);
int cfg_get_string(json_t *obj, const char *key, const char **out,
                   vg_error *err);
int cfg_get_bool(json_t *obj, const char *key, const char *path, bool *out,
                 vg_error *err);
/* Refuses a key of obj that is not in allowed (NULL-terminated). */
int cfg_check_keys(json_t *obj, const char *const *allowed, const char *where,
                   vg_error *err);

/* config_providers.c: the built-in provider instances every config
 * starts with, and the file's "providers" section over them. */
void cfg_add_builtin_providers(vg_config *cfg);
int cfg_load_providers(vg_config *cfg, json_t *providers, vg_error *err);

#endif
