/*
 * log.c - JSON-lines logging to standard error; see log.h.
 */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_quiet;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void vg_log_set_quiet(int quiet)
{
    log_quiet = quiet;
}

static void format_time(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + len, n - len, ".%03ldZ", ts.tv_nsec / 1000000);
}

void vg_log_json(const char *level, json_t *fields)
{
    if (log_quiet && strcmp(level, "info") == 0) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_time(ts, sizeof(ts));
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level));
    json_object_update(line, fields);
    json_decref(fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(line);
    if (text == NULL)
        return;
    pthread_mutex_lock(&log_lock);
    fputs(text, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    free(text);
}

static void log_message(const char *level, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    vg_log_json(level, json_pack("{s:s}", "msg", msg));
}

/* Appends s as a JSON string body (no quotes) to buf, escaping what JSON
 * requires; stops short of the end of buf. */
static size_t put_json_string(char *buf, size_t at, size_t cap,
                              const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (at >= cap)
        return at;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (at + 7 >= cap)
            break;
        if (*p == '"' || *p == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            /* Bytes, not code points: a log line stays valid JSON even
             * when a client sends malformed UTF-8 in its path. */
            memcpy(buf + at, "\\u00", 4);
            buf[at + 4] = hex[*p >> 4];
            buf[at + 5] = hex[*p & 15];
            at += 6;
        } else {
            buf[at++] = (char)*p;
        }
    }
    return at;
}

/* format_time for the access log: the calendar part is formatted once a
 * second per thread, since strftime dominates a line's cost otherwise. */
static void format_time_fast(char *buf, size_t n)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    int ms = (int)(ts.tv_nsec / 1000000);
    snprintf(buf, n, "%s.%c%c%cZ", cached, '0' + ms / 100,
             '0' + ms / 10 % 10, '0' + ms % 10);
}

/* Appends raw text, stopping short of cap. */
static size_t put_text(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

/* Appends a non-negative integer in decimal. */
static size_t put_uint(char *buf, size_t at, size_t cap, unsigned long long v)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0 && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

void vg_log_access(const vg_access_entry *e)
{
    if (log_quiet)
        return;
    /* Built by hand, without printf: this runs for every request and
     * formatting was a tenth of a cheap request's cost. */
    char line[2048], ts[40];
    size_t cap = sizeof(line) - 2, at = 0;
    format_time_fast(ts, sizeof(ts));
    at = put_text(line, at, cap, "{\"ts\":\"");
    at = put_text(line, at, cap, ts);
    at = put_text(line, at, cap, "\",\"level\":\"info\",\"msg\":\"request\","
                                 "\"request_id\":\"");
    at = put_json_string(line, at, cap, e->request_id);
    at = put_text(line, at, cap, "\",\"method\":\"");
    /* Client-controlled fields get bounded shares of the line, so the
     * closing fields always fit and the line stays valid JSON. */
    at = put_json_string(line, at, at + 64, e->method);
    at = put_text(line, at, cap, "\",\"path\":\"");
    at = put_json_string(line, at, cap - 300, e->path);
    at = put_text(line, at, cap, "\",\"status\":");
    at = put_uint(line, at, cap, (unsigned)e->status);
    unsigned long long us =
        e->duration_ms > 0 ? (unsigned long long)(e->duration_ms * 1000 + 0.5)
                           : 0;
    at = put_text(line, at, cap, ",\"duration_ms\":");
    at = put_uint(line, at, cap, us / 1000);
    at = put_text(line, at, cap, ".");
    at = put_text(line, at, cap, us % 1000 < 100 ? (us % 1000 < 10 ? "00"
                                                                     : "0")
                                                  : "");
    at = put_uint(line, at, cap, us % 1000);
    at = put_text(line, at, cap, ",\"bytes\":");
    at = put_uint(line, at, cap,
                  e->bytes > 0 ? (unsigned long long)e->bytes : 0);
    if (e->account != NULL) {
        at = put_text(line, at, cap, ",\"account\":\"");
        at = put_json_string(line, at, cap, e->account);
        at = put_text(line, at, cap, "\"");
    }
    if (e->aborted)
        at = put_text(line, at, cap, ",\"aborted\":true");
    line[at++] = '}';
    line[at++] = '\n';
    /* One write(2) per line: lines from several threads never interleave
     * and no lock is held while the kernel copies. */
    ssize_t ignored = write(STDERR_FILENO, line, at);
    (void)ignored;
}

void vg_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_message("info", fmt, ap);
    va_end(ap);
}

void vg_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_message("warn", fmt, ap);
    va_end(ap);
}

void vg_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_message("error", fmt, ap);
    va_end(ap);
}
