/*
 * fetcher.c - the request's outbound work as events; see fetcher.h.
 *
 * One thread owns a libcurl multi handle, a c-ares channel and the list
 * of what is in flight (`active`), so none of those needs a lock. The
 * lock guards the queue of tasks and each task's counters and results:
 * other threads submit and release tasks under it and wake the thread
 * with curl_multi_wakeup. Each turn of the loop starts what the shares
 * allow, drives the transfers, ends those that finished or were let go,
 * and sleeps in curl_multi_poll, which also watches c-ares's sockets.
 *
 * A request can go away before its task ends (the server stops, closing
 * every connection), so a task owns copies of all it needs, and the lock
 * decides who frees it: the request, once done has run, or the fetcher,
 * when the request let go first. A c-ares query cannot be cancelled on
 * its own, so a lookup whose task is gone (or whose time is up) stays in
 * the list, orphaned, until c-ares calls back.
 */
#include "core/fetcher.h"

#include <ares.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <curl/curl.h>

#include "util/clock.h"
#include "util/crypto.h"
#include "util/netpolicy.h"

#define OWNER_MAX 64
#define FIELD_MAX 32
/* The longest sleep while work is under way: how late `stopping` is
 * noticed. */
#define BUSY_POLL_MS 1000
#define IDLE_POLL_MS 30000

typedef struct fetch_slot {
    char *url;  /* NULL: nothing to do in this slot */
    char *path; /* NULL for a check */
    int rc;     /* 0: done well (the file at path holds the body) */
    bool taken;
    vg_error err;
} fetch_slot;

struct vg_fetch_task {
    vg_fetch_limits limits;
    char *dir;
    char owner[OWNER_MAX];
    fetch_slot slots[VG_FETCH_TASK_MAX];
    /* A check: slot 0 holds the URL, host what to resolve. */
    bool is_check;
    bool allow_private;
    char host[VG_HOST_MAX];
    char field[FIELD_MAX];
    void (*done)(void *ctx);
    void *ctx;
    /* The fetcher's, under its lock. */
    vg_fetch_task *next; /* in the queue */
    bool queued;         /* has slots not started yet */
    int next_slot;       /* the next one to start */
    int running;         /* slots in flight */
    int failed_slot;     /* the first slot that failed so far */
    /* Written under the lock; read without it by the loop (abandoned)
     * and by vg_fetcher_release (finished). */
    atomic_bool abandoned; /* the owner let go: abort, then free */
    atomic_bool finished;  /* done has returned: the fetcher let go */
};

/* One slot in flight: a download, or a lookup. The loop's alone. */
typedef struct active {
    struct active *prev, *next;
    struct active *fresh; /* admitted in this turn, not started yet */
    vg_fetcher *fetcher;
    vg_fetch_task *task; /* NULL: an orphaned lookup */
    int slot;
    bool lookup;
    vg_fetch_transfer *transfer; /* a download's, once started */
    int64_t deadline_ms;         /* a lookup's */
} active;

struct vg_fetcher {
    pthread_mutex_t lock;
    vg_fetch_task *head, *tail;
    atomic_bool stop;
    bool (*stopping)(void *);
    void *ctx;
    vg_fetcher_config cfg;
    CURLM *multi;
    ares_channel channel;
    bool have_channel;
    pthread_t thread;
    bool running;
    /* The loop's alone. */
    active *actives;
    int n_transfers; /* downloads in flight */
    int n_lookups;   /* lookups in flight, orphans included */
};

void vg_fetcher_config_defaults(vg_fetcher_config *cfg)
{
    cfg->max_transfers = 64;
    cfg->max_per_owner = 4;
    cfg->dns_servers = NULL;
}

/* ---- tasks ------------------------------------------------------------- */

static vg_fetch_task *task_alloc(const char *dir)
{
    vg_fetch_task *task = calloc(1, sizeof(*task));
    if (task == NULL)
        return NULL;
    task->dir = strdup(dir != NULL ? dir : "");
    if (task->dir == NULL) {
        free(task);
        return NULL;
    }
    task->failed_slot = VG_FETCH_TASK_MAX;
    atomic_init(&task->abandoned, false);
    atomic_init(&task->finished, false);
    return task;
}

vg_fetch_task *vg_fetch_task_new(const vg_fetch_limits *limits,
                                 const char *dir)
{
    vg_fetch_task *task = task_alloc(dir);
    if (task != NULL)
        task->limits = *limits;
    return task;
}

static void not_done(fetch_slot *s, const char *field, const char *what)
{
    s->rc = -1;
    vg_error_set(&s->err, 500, "internal_error", field, "%s", what);
}

int vg_fetch_task_add(vg_fetch_task *task, int slot, const char *url)
{
    if (task->is_check || slot < 0 || slot >= VG_FETCH_TASK_MAX ||
        task->slots[slot].url != NULL)
        return -1;
    char uuid[37];
    vg_uuid_v4(uuid);
    fetch_slot *s = &task->slots[slot];
    s->url = strdup(url);
    size_t n = strlen(task->dir) + sizeof("/fetch-") + sizeof(uuid);
    s->path = malloc(n);
    if (s->url == NULL || s->path == NULL) {
        free(s->url);
        free(s->path);
        s->url = s->path = NULL;
        return -1;
    }
    snprintf(s->path, n, "%s/fetch-%s", task->dir, uuid);
    not_done(s, "files", "the image was not fetched");
    return 0;
}

void vg_fetch_task_set_owner(vg_fetch_task *task, const char *owner)
{
    snprintf(task->owner, sizeof(task->owner), "%s",
             owner != NULL ? owner : "");
}

int vg_fetch_task_count(const vg_fetch_task *task)
{
    int n = 0;
    for (int k = 0; k < VG_FETCH_TASK_MAX; k++)
        n += task->slots[k].url != NULL;
    return n;
}

int vg_fetch_task_take(vg_fetch_task *task, int slot, const char *url,
                       const char **path, vg_error *err)
{
    if (task == NULL || task->is_check || slot < 0 ||
        slot >= VG_FETCH_TASK_MAX)
        return 1;
    fetch_slot *s = &task->slots[slot];
    if (s->url == NULL || s->taken || url == NULL || strcmp(s->url, url) != 0)
        return 1;
    if (s->rc != 0) {
        *err = s->err;
        return -1;
    }
    s->taken = true;
    *path = s->path;
    return 0;
}

vg_fetch_task *vg_url_check_task_new(const char *url, const char *schemes,
                                     bool allow_private, const char *field,
                                     vg_error *err)
{
    char host[VG_HOST_MAX];
    if (vg_outbound_url_host(url, schemes, field, host, err) != 0)
        return NULL;
    vg_fetch_task *task = task_alloc(NULL);
    if (task != NULL)
        task->slots[0].url = strdup(url);
    if (task == NULL || task->slots[0].url == NULL) {
        vg_fetch_task_free(task);
        vg_error_set(err, 500, "internal_error", field,
                     "out of memory checking %s", field);
        return NULL;
    }
    task->is_check = true;
    task->allow_private = allow_private;
    snprintf(task->host, sizeof(task->host), "%s", host);
    snprintf(task->field, sizeof(task->field), "%s",
             field != NULL ? field : "url");
    not_done(&task->slots[0], task->field, "the URL was not checked");
    return task;
}

int vg_url_check_result(const vg_fetch_task *task, vg_error *err)
{
    if (task->slots[0].rc == 0)
        return 0;
    *err = task->slots[0].err;
    return -1;
}

void vg_fetch_task_free(vg_fetch_task *task)
{
    if (task == NULL)
        return;
    for (int k = 0; k < VG_FETCH_TASK_MAX; k++) {
        fetch_slot *s = &task->slots[k];
        if (s->path != NULL && s->rc == 0 && !s->taken)
            unlink(s->path);
        free(s->url);
        free(s->path);
    }
    free(task->dir);
    free(task);
}

static int stopped_error(const vg_fetch_task *task, vg_error *err)
{
    if (task->is_check)
        return vg_error_set(err, 503, "server_shutdown", task->field,
                            "the server is stopping and did not finish "
                            "checking %s; send the request again",
                            task->field);
    return vg_error_set(err, 503, "server_shutdown", "files",
                        "the server is stopping and did not finish "
                        "fetching the image; send the request again");
}

/* ---- the queue (under the lock) ---------------------------------------- */

/* The task's next slot to start, without taking it; false when none is
 * left. A slot after one that failed is not worth starting: the request
 * stops at its first bad image. */
static bool peek_slot_locked(vg_fetch_task *task, int *slot)
{
    for (int k = task->next_slot; k < VG_FETCH_TASK_MAX; k++)
        if (task->slots[k].url != NULL && k < task->failed_slot) {
            *slot = k;
            return true;
        }
    return false;
}

static void unqueue_locked(vg_fetcher *f, vg_fetch_task *task)
{
    vg_fetch_task **p = &f->head;
    vg_fetch_task *prev = NULL;
    while (*p != NULL && *p != task) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p == NULL)
        return;
    *p = task->next;
    if (f->tail == task)
        f->tail = prev;
    task->next = NULL;
    task->queued = false;
}

/* All of the task has ended: tells the owner, or, when it let go,
 * returns true for the caller to free the task once unlocked. */
static bool finish_locked(vg_fetch_task *task)
{
    if (atomic_load(&task->abandoned))
        return true;
    /* Under the lock, so a release waits for done to return: the owner
     * (and ctx) cannot vanish while done runs. */
    task->done(task->ctx);
    atomic_store(&task->finished, true);
    return false;
}

/* Ends the slots of a queued task that have not started. */
static bool end_unstarted_locked(vg_fetcher *f, vg_fetch_task *task)
{
    for (int k = task->next_slot; k < VG_FETCH_TASK_MAX; k++)
        if (task->slots[k].url != NULL)
            stopped_error(task, &task->slots[k].err);
    task->next_slot = VG_FETCH_TASK_MAX;
    unqueue_locked(f, task);
    return task->running == 0 && finish_locked(task);
}

/* ---- what is in flight (the loop's) ------------------------------------ */

static int64_t now_ms(void)
{
    return vg_monotonic_ns() / 1000000;
}

static bool stop_requested(vg_fetcher *f)
{
    return atomic_load(&f->stop) ||
           (f->stopping != NULL && f->stopping(f->ctx));
}

static void link_active(vg_fetcher *f, active *a)
{
    a->prev = NULL;
    a->next = f->actives;
    if (f->actives != NULL)
        f->actives->prev = a;
    f->actives = a;
    if (a->lookup)
        f->n_lookups++;
    else
        f->n_transfers++;
}

static void unlink_active(vg_fetcher *f, active *a)
{
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        f->actives = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    if (a->lookup)
        f->n_lookups--;
    else
        f->n_transfers--;
}

static int owner_transfers(vg_fetcher *f, const char *owner)
{
    int n = 0;
    for (active *a = f->actives; a != NULL; a = a->next)
        if (!a->lookup && strcmp(a->task->owner, owner) == 0)
            n++;
    return n;
}

/* Records how a slot ended (err is read only when rc != 0) and lets the
 * task go once nothing of it is left. */
static void end_slot(vg_fetcher *f, vg_fetch_task *task, int k, int rc,
                     const vg_error *err)
{
    pthread_mutex_lock(&f->lock);
    fetch_slot *s = &task->slots[k];
    s->rc = rc;
    if (rc != 0) {
        s->err = *err;
        if (k < task->failed_slot)
            task->failed_slot = k;
    }
    task->running--;
    bool free_it = false;
    if (task->running == 0) {
        int next;
        /* Its later slots are not worth starting after a failure. */
        if (task->queued && !peek_slot_locked(task, &next))
            unqueue_locked(f, task);
        if (!task->queued)
            free_it = finish_locked(task);
    }
    pthread_mutex_unlock(&f->lock);
    if (free_it)
        vg_fetch_task_free(task);
}

/* A check's lookup has answered: every address must pass. */
static void on_resolved(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res)
{
    (void)timeouts;
    active *a = arg;
    vg_fetcher *f = a->fetcher;
    vg_fetch_task *task = a->task;
    if (task != NULL) {
        vg_error err;
        int rc = 0;
        if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
            rc = stopped_error(task, &err);
        } else if (status != ARES_SUCCESS) {
            rc = vg_error_set(&err, 422, "invalid_url", task->field,
                              "%s: the host %s does not resolve (%s)",
                              task->field, task->host, ares_strerror(status));
        } else if (res == NULL || res->nodes == NULL) {
            rc = vg_error_set(&err, 422, "invalid_url", task->field,
                              "%s: the host %s has no address", task->field,
                              task->host);
        } else {
            for (struct ares_addrinfo_node *n = res->nodes;
                 n != NULL && rc == 0; n = n->ai_next)
                rc = vg_check_outbound_address(n->ai_addr,
                                               task->allow_private,
                                               task->field, &err);
        }
        end_slot(f, task, a->slot, rc, &err);
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
    unlink_active(f, a);
    free(a);
}

/* Gives up on a slot in flight, ending it with err. A lookup stays,
 * orphaned, until c-ares answers. */
static void drop_active(vg_fetcher *f, active *a, const vg_error *err)
{
    vg_fetch_task *task = a->task;
    int slot = a->slot;
    if (a->lookup) {
        a->task = NULL;
    } else {
        curl_multi_remove_handle(f->multi,
                                 vg_fetch_transfer_easy(a->transfer));
        vg_fetch_transfer_abort(a->transfer);
        unlink_active(f, a);
        free(a);
    }
    end_slot(f, task, slot, -1, err);
}

/* An address literal needs no name server (c-ares 1.18 would ask one
 * first, and wait for it): judged here. False when host is a name. */
static bool judge_literal(vg_fetcher *f, active *a)
{
    vg_fetch_task *task = a->task;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, task->host, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, task->host, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        return false;
    vg_error err;
    int rc = vg_check_outbound_address((const struct sockaddr *)&ss,
                                       task->allow_private, task->field, &err);
    int slot = a->slot;
    unlink_active(f, a);
    free(a);
    end_slot(f, task, slot, rc, &err);
    return true;
}

static void start_active(vg_fetcher *f, active *a)
{
    vg_fetch_task *task = a->task;
    if (a->lookup && judge_literal(f, a))
        return;
    if (a->lookup) {
        a->deadline_ms = now_ms() + VG_LOOKUP_TIMEOUT_MS;
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = ARES_AI_NOSORT;
        /* May call back at once (an address literal, /etc/hosts). */
        ares_getaddrinfo(f->channel, task->host, NULL, &hints, on_resolved,
                         a);
        return;
    }
    int slot = a->slot;
    fetch_slot *s = &task->slots[slot];
    vg_error err;
    a->transfer = vg_fetch_transfer_open(s->url, &task->limits, s->path, &err);
    if (a->transfer != NULL) {
        CURL *easy = vg_fetch_transfer_easy(a->transfer);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)a);
        CURLMcode mc = curl_multi_add_handle(f->multi, easy);
        if (mc == CURLM_OK)
            return;
        vg_fetch_transfer_abort(a->transfer);
        vg_error_set(&err, 500, "internal_error", "files",
                     "could not start fetching the image: %s",
                     curl_multi_strerror(mc));
    }
    unlink_active(f, a);
    free(a);
    end_slot(f, task, slot, -1, &err);
}

/* Takes from the queue what the shares allow and starts it; when
 * stopping, ends everything queued instead. */
static void admit(vg_fetcher *f, bool stop)
{
    active *fresh = NULL;       /* through `fresh` */
    vg_fetch_task *gone = NULL; /* through `next`: out of the queue */
    pthread_mutex_lock(&f->lock);
    for (vg_fetch_task *task = f->head, *next; task != NULL; task = next) {
        next = task->next;
        int k;
        while (!stop && peek_slot_locked(task, &k)) {
            if (!task->is_check &&
                (f->n_transfers >= f->cfg.max_transfers ||
                 owner_transfers(f, task->owner) >= f->cfg.max_per_owner))
                break;
            active *a = calloc(1, sizeof(*a));
            if (a == NULL)
                break; /* tried again next turn */
            a->fetcher = f;
            a->task = task;
            a->slot = k;
            a->lookup = task->is_check;
            task->next_slot = k + 1;
            task->running++;
            link_active(f, a); /* counted at once, for the shares */
            a->fresh = fresh;
            fresh = a;
        }
        bool ended = false;
        if (stop) {
            ended = end_unstarted_locked(f, task);
        } else if (!peek_slot_locked(task, &k)) {
            unqueue_locked(f, task);
            ended = task->running == 0 && finish_locked(task);
        }
        if (ended) {
            task->next = gone;
            gone = task;
        }
    }
    pthread_mutex_unlock(&f->lock);
    while (gone != NULL) {
        vg_fetch_task *next = gone->next;
        vg_fetch_task_free(gone);
        gone = next;
    }
    while (fresh != NULL) {
        active *next = fresh->fresh;
        start_active(f, fresh);
        fresh = next;
    }
}

/* Ends every download libcurl has finished. */
static void collect_finished(vg_fetcher *f)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result; /* msg dies with the handle */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        active *a = (active *)priv;
        curl_multi_remove_handle(f->multi, easy);
        vg_error err;
        int rc = vg_fetch_transfer_close(a->transfer, result, &err);
        vg_fetch_task *task = a->task;
        int slot = a->slot;
        unlink_active(f, a);
        free(a);
        end_slot(f, task, slot, rc, &err);
    }
}

/* Ends what was let go, what ran out of time, and, when stopping, all. */
static void sweep(vg_fetcher *f, bool stop)
{
    int64_t now = now_ms();
    vg_error err;
    for (active *a = f->actives, *next; a != NULL; a = next) {
        next = a->next;
        vg_fetch_task *task = a->task;
        if (task == NULL)
            continue;
        if (stop || atomic_load(&task->abandoned)) {
            stopped_error(task, &err);
            drop_active(f, a, &err);
        } else if (a->lookup && now >= a->deadline_ms) {
            vg_error_set(&err, 422, "invalid_url", task->field,
                         "%s: the host %s did not resolve within %d s",
                         task->field, task->host,
                         VG_LOOKUP_TIMEOUT_MS / 1000);
            drop_active(f, a, &err);
        }
    }
    /* Calls back every lookup (ARES_ECANCELLED), orphans included. */
    if (stop && f->n_lookups > 0)
        ares_cancel(f->channel);
}

/* Sleeps until a transfer or a lookup needs attention, something is
 * due, or another thread wakes the loop; then lets c-ares read. */
static void wait_for_events(vg_fetcher *f)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct curl_waitfd fds[ARES_GETSOCK_MAXNUM];
    unsigned n = 0;
    long wait = f->actives != NULL ? BUSY_POLL_MS : IDLE_POLL_MS;
    long curl_wait = -1;
    curl_multi_timeout(f->multi, &curl_wait);
    if (curl_wait >= 0 && curl_wait < wait)
        wait = curl_wait;
    if (f->n_lookups > 0) {
        /* Unsigned: c-ares's own macros shift a signed 1 by up to 31. */
        unsigned bits =
            (unsigned)ares_getsock(f->channel, socks, ARES_GETSOCK_MAXNUM);
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short events = 0;
            if ((bits >> i) & 1u)
                events |= CURL_WAIT_POLLIN;
            if ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u)
                events |= CURL_WAIT_POLLOUT;
            if (events == 0)
                continue;
            fds[n].fd = socks[i];
            fds[n].events = events;
            fds[n].revents = 0;
            n++;
        }
        struct timeval most = {wait / 1000, (wait % 1000) * 1000}, tv;
        struct timeval *t = ares_timeout(f->channel, &most, &tv);
        long ares_wait = (long)t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
        if (ares_wait < wait)
            wait = ares_wait;
        int64_t now = now_ms();
        for (active *a = f->actives; a != NULL; a = a->next)
            if (a->lookup && a->task != NULL) {
                int64_t until = a->deadline_ms - now;
                if (until < wait)
                    wait = until < 0 ? 0 : (long)until;
            }
    }
    curl_multi_poll(f->multi, fds, n, (int)wait, NULL);
    for (unsigned i = 0; i < n; i++) {
        short r = fds[i].revents;
        if (r == 0)
            continue;
        ares_process_fd(f->channel,
                        (r & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI))
                            ? fds[i].fd
                            : ARES_SOCKET_BAD,
                        (r & CURL_WAIT_POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
    }
    /* Retries and timeouts of lookups. */
    if (f->n_lookups > 0)
        ares_process_fd(f->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void *run(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-fetcher");
    vg_fetcher *f = arg;
    for (;;) {
        bool stop = stop_requested(f);
        admit(f, stop);
        int running = 0;
        curl_multi_perform(f->multi, &running);
        collect_finished(f);
        sweep(f, stop);
        if (stop) {
            pthread_mutex_lock(&f->lock);
            bool queue_empty = f->head == NULL;
            pthread_mutex_unlock(&f->lock);
            /* Submits from now on end at once (they ask the same). */
            if (queue_empty && f->actives == NULL)
                break;
        }
        wait_for_events(f);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void init_ares(void)
{
    ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

static int open_channel(vg_fetcher *f, vg_error *err)
{
    pthread_once(&ares_once, init_ares);
    if (ares_init_rc != ARES_SUCCESS)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "c-ares could not initialise: %s",
                            ares_strerror(ares_init_rc));
    struct ares_options opts;
    memset(&opts, 0, sizeof(opts));
    /* Several tries within VG_LOOKUP_TIMEOUT_MS, for lost datagrams. */
    opts.timeout = 1000;
    opts.tries = 3;
    int rc = ares_init_options(&f->channel, &opts,
                               ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "cannot start the name resolver: %s",
                            ares_strerror(rc));
    f->have_channel = true;
    const char *servers = f->cfg.dns_servers;
    if (servers != NULL && servers[0] != '\0') {
        rc = ares_set_servers_ports_csv(f->channel, servers);
        if (rc != ARES_SUCCESS)
            return vg_error_set(err, 0, "config_error", "dns_servers",
                                "dns_servers \"%s\" is not a list of "
                                "ip[:port] (%s)",
                                servers, ares_strerror(rc));
    }
    return 0;
}

vg_fetcher *vg_fetcher_start(const vg_fetcher_config *cfg,
                             bool (*stopping)(void *), void *ctx,
                             vg_error *err)
{
    vg_fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "out of memory starting the fetcher");
        return NULL;
    }
    if (cfg != NULL)
        f->cfg = *cfg;
    else
        vg_fetcher_config_defaults(&f->cfg);
    if (f->cfg.max_transfers < 1)
        f->cfg.max_transfers = 1;
    if (f->cfg.max_per_owner < 1)
        f->cfg.max_per_owner = 1;
    pthread_mutex_init(&f->lock, NULL);
    atomic_init(&f->stop, false);
    f->stopping = stopping;
    f->ctx = ctx;
    if (vg_curl_global_init_once() != 0 ||
        (f->multi = curl_multi_init()) == NULL) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "could not create a libcurl multi handle");
        vg_fetcher_stop(f);
        return NULL;
    }
    if (open_channel(f, err) != 0) {
        vg_fetcher_stop(f);
        return NULL;
    }
    int rc = pthread_create(&f->thread, NULL, run, f);
    if (rc != 0) {
        vg_error_set(err, 500, "internal_error", NULL,
                     "cannot start the fetcher thread: %s", strerror(rc));
        vg_fetcher_stop(f);
        return NULL;
    }
    f->running = true;
    return f;
}

void vg_fetcher_submit(vg_fetcher *f, vg_fetch_task *task,
                       void (*done)(void *ctx), void *ctx)
{
    task->done = done;
    task->ctx = ctx;
    pthread_mutex_lock(&f->lock);
    /* Nothing would take it any more: end it here, as the loop would. */
    if (stop_requested(f)) {
        end_unstarted_locked(f, task);
        pthread_mutex_unlock(&f->lock);
        return;
    }
    task->queued = true;
    task->next = NULL;
    if (f->tail != NULL)
        f->tail->next = task;
    else
        f->head = task;
    f->tail = task;
    pthread_mutex_unlock(&f->lock);
    curl_multi_wakeup(f->multi);
}

void vg_fetcher_release(vg_fetcher *f, vg_fetch_task *task)
{
    if (task == NULL)
        return;
    /* Once done has returned the fetcher never touches the task again
     * (nor, after vg_fetcher_stop, exists). */
    if (atomic_load(&task->finished)) {
        vg_fetch_task_free(task);
        return;
    }
    pthread_mutex_lock(&f->lock);
    if (atomic_load(&task->finished)) {
        pthread_mutex_unlock(&f->lock);
        vg_fetch_task_free(task);
        return;
    }
    atomic_store(&task->abandoned, true);
    if (task->queued)
        unqueue_locked(f, task);
    /* What is in flight sees `abandoned` and ends; the last frees it. */
    bool free_now = task->running == 0;
    pthread_mutex_unlock(&f->lock);
    if (free_now)
        vg_fetch_task_free(task);
    else
        curl_multi_wakeup(f->multi);
}

void vg_fetcher_drain(vg_fetcher *f)
{
    if (f == NULL)
        return;
    atomic_store(&f->stop, true);
    if (!f->running)
        return;
    curl_multi_wakeup(f->multi);
    /* The loop ends what is queued at once and what is in flight within
     * a turn; then it returns. */
    pthread_join(f->thread, NULL);
    f->running = false;
}

void vg_fetcher_stop(vg_fetcher *f)
{
    if (f == NULL)
        return;
    vg_fetcher_drain(f);
    if (f->have_channel)
        ares_destroy(f->channel);
    if (f->multi != NULL)
        curl_multi_cleanup(f->multi);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
