/*
 * log.h - structured logging: one JSON object per line on standard error.
 *
 * Operators feed these lines to their log pipeline, so every line is a
 * self-contained JSON object with a timestamp and a level.
 */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <jansson.h>

void vg_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vg_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vg_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes `fields` (stolen) as one line, adding "ts" and "level". */
void vg_log_json(const char *level, json_t *fields);
/* The access log line of one request, formatted without building a JSON
 * tree: it is written once per request, on the hot path. account may be
 * NULL. */
typedef struct vg_access_entry {
    const char *request_id;
    const char *method;
    const char *path;
    int status;
    double duration_ms;
    long long bytes;
    const char *account;
    int aborted;
} vg_access_entry;
void vg_log_access(const vg_access_entry *entry);
/* Set to 1 to silence info lines (CLI subcommands). */
void vg_log_set_quiet(int quiet);

#endif
