/*
 * guard.c - follows every client connection and drops the slow ones
 * (see guard.h for the rules).
 *
 * Each connection has an entry, its socket context, on one of two lists
 * or on none: `waiting` (for a request head), `reading` (a body), or
 * none while its request is handled. Entries join a list at its tail,
 * so the head of `waiting` is the connection that has waited longest.
 * One lock guards the lists; the daemon's threads take it on a state
 * change (a few times per request), the guard's thread four times a
 * second to sweep. libmicrohttpd reports a connection closed before it
 * closes the socket, and the entry leaves its list under the lock then,
 * so a socket the sweep shuts down is always still the connection's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "http/guard.h"
#include "util/clock.h"
#include "util/log.h"

#define SWEEP_MS 250

enum { ON_NONE, ON_WAITING, ON_READING };

typedef struct entry entry;
typedef struct entry_list {
    entry *head, *tail;
} entry_list;

struct entry {
    vg_guard *guard;
    entry *prev, *next;
    int on;
    int fd;
    bool fresh;       /* no request read yet on this connection */
    bool dropped;     /* shut down; only its close is still to come */
    int64_t since_ms; /* when it joined its list */
    int64_t deadline_ms;
    atomic_llong body_bytes;
};

struct vg_guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    entry_list waiting, reading;
    int64_t open;
    int64_t max_connections;
    int64_t header_ms, idle_ms, min_body_rate;
    int64_t dropped_head, dropped_body, evicted; /* since the last log */
    char timeout_answer[512];
    size_t timeout_answer_len;
};

static entry_list *list_of(vg_guard *g, int on)
{
    return on == ON_WAITING ? &g->waiting : on == ON_READING ? &g->reading
                                                             : NULL;
}

static void unlink_entry(vg_guard *g, entry *e)
{
    entry_list *l = list_of(g, e->on);
    if (l == NULL)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    e->on = ON_NONE;
}

static void move_to(vg_guard *g, entry *e, int on, int64_t deadline_ms)
{
    unlink_entry(g, e);
    if (e->dropped)
        return;
    e->since_ms = vg_monotonic_ms();
    e->deadline_ms = deadline_ms;
    entry_list *l = list_of(g, on);
    if (l == NULL)
        return;
    e->on = on;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

/* The answer a client gets when its head took too long: written in one
 * go by the guard's thread, which is safe while the daemon only reads. */
#define TIMEOUT_MESSAGE "\"the request head did not arrive within %d s\""
#define TIMEOUT_BODY                                                       \
    "{\"api_details\":{\"api_status\":\"failure\",\"api_message\":"       \
    TIMEOUT_MESSAGE "},\"data\":{},\"error\":{\"code\":\"request_timeout\","  \
    "\"message\":" TIMEOUT_MESSAGE ",\"status\":408}}"

static void format_timeout_answer(vg_guard *g, int seconds)
{
    char body[320];
    int n = snprintf(body, sizeof(body), TIMEOUT_BODY, seconds, seconds);
    g->timeout_answer_len = (size_t)snprintf(
        g->timeout_answer, sizeof(g->timeout_answer),
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: application/json\r\n"
        "Connection: close\r\n"
        "Content-Length: %d\r\n"
        "\r\n%s",
        n, body);
}

/* Ends the connection; the daemon's thread sees it and cleans up. */
static void drop(vg_guard *g, entry *e, bool answer)
{
    if (answer)
        (void)!send(e->fd, g->timeout_answer, g->timeout_answer_len,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(e->fd, SHUT_RDWR);
    unlink_entry(g, e);
    e->dropped = true;
}

static void sweep(vg_guard *g, int64_t now)
{
    entry *next;
    for (entry *e = g->waiting.head; e != NULL; e = next) {
        next = e->next;
        if (now >= e->deadline_ms) {
            drop(g, e, e->fresh);
            g->dropped_head++;
        }
    }
    if (g->min_body_rate <= 0)
        return;
    for (entry *e = g->reading.head; e != NULL; e = next) {
        next = e->next;
        int64_t late = now - e->since_ms - g->header_ms;
        if (late > 0 && atomic_load(&e->body_bytes) <
                            g->min_body_rate * late / 1000) {
            drop(g, e, false);
            g->dropped_body++;
        }
    }
}

static void report(vg_guard *g)
{
    if (g->dropped_head + g->dropped_body + g->evicted == 0)
        return;
    vg_log_warn("http: dropped slow clients: %lld whose request head was "
                "late, %lld whose body was too slow, %lld evicted at "
                "max_connections",
                (long long)g->dropped_head, (long long)g->dropped_body,
                (long long)g->evicted);
    g->dropped_head = g->dropped_body = g->evicted = 0;
}

static void *guard_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-guard");
    vg_guard *g = arg;
    int64_t last_report = vg_monotonic_ms();
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &ts);
        if (g->stopping)
            break;
        int64_t now = vg_monotonic_ms();
        sweep(g, now);
        /* One line every ten seconds at most, however many are dropped. */
        if (now - last_report >= 10000) {
            report(g);
            last_report = now;
        }
    }
    report(g);
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

vg_guard *vg_guard_start(const vg_config *cfg)
{
    vg_guard *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&g->lock, NULL);
    g->max_connections = cfg->max_connections;
    g->header_ms = (int64_t)cfg->header_timeout_s * 1000;
    g->idle_ms = (int64_t)cfg->connection_timeout_s * 1000;
    if (g->idle_ms < g->header_ms)
        g->idle_ms = g->header_ms;
    g->min_body_rate = cfg->min_body_bytes_per_s;
    format_timeout_answer(g, cfg->header_timeout_s);
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void vg_guard_stop(vg_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

unsigned vg_guard_daemon_limit(const vg_config *cfg)
{
    int64_t reserve = cfg->max_connections / 10;
    if (reserve < 16)
        reserve = 16;
    return (unsigned)(cfg->max_connections + reserve);
}

void vg_guard_notify(void *cls, struct MHD_Connection *conn,
                     void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    vg_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        entry *e = calloc(1, sizeof(*e));
        if (e == NULL || info == NULL) {
            free(e);
            *socket_context = NULL;
            return;
        }
        e->guard = g;
        e->fd = info->connect_fd;
        e->fresh = true;
        atomic_init(&e->body_bytes, 0);
        pthread_mutex_lock(&g->lock);
        g->open++;
        /* Past max_connections, the one that has waited longest for its
         * head makes room for this one. */
        if (g->open > g->max_connections && g->waiting.head != NULL) {
            drop(g, g->waiting.head, false);
            g->evicted++;
        }
        move_to(g, e, ON_WAITING, vg_monotonic_ms() + g->header_ms);
        pthread_mutex_unlock(&g->lock);
        *socket_context = e;
        return;
    }
    entry *e = *socket_context;
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    unlink_entry(g, e);
    g->open--;
    pthread_mutex_unlock(&g->lock);
    free(e);
    *socket_context = NULL;
}

static entry *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

void vg_guard_head_done(struct MHD_Connection *conn, bool body_follows)
{
    entry *e = entry_of(conn);
    if (e == NULL)
        return;
    vg_guard *g = e->guard;
    pthread_mutex_lock(&g->lock);
    e->fresh = false;
    atomic_store(&e->body_bytes, 0);
    move_to(g, e, body_follows ? ON_READING : ON_NONE, 0);
    pthread_mutex_unlock(&g->lock);
}

void vg_guard_body_bytes(struct MHD_Connection *conn, size_t n)
{
    entry *e = entry_of(conn);
    if (e != NULL)
        atomic_fetch_add(&e->body_bytes, (long long)n);
}

void vg_guard_body_done(struct MHD_Connection *conn)
{
    entry *e = entry_of(conn);
    if (e == NULL)
        return;
    vg_guard *g = e->guard;
    pthread_mutex_lock(&g->lock);
    if (e->on == ON_READING)
        move_to(g, e, ON_NONE, 0);
    pthread_mutex_unlock(&g->lock);
}

void vg_guard_request_done(struct MHD_Connection *conn)
{
    entry *e = entry_of(conn);
    if (e == NULL)
        return;
    vg_guard *g = e->guard;
    pthread_mutex_lock(&g->lock);
    move_to(g, e, ON_WAITING, vg_monotonic_ms() + g->idle_ms);
    pthread_mutex_unlock(&g->lock);
}
