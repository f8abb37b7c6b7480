/*
 * fetch.c - downloads a client's reference image URL; see fetch.h.
 *
 * One blocking libcurl easy transfer straight into a file, so an image is
 * never held in memory. Every way the transfer can end maps to one clear
 * error, because the client only sees the message: it must say whether
 * the URL was refused (scheme, address), the server answered badly
 * (status, redirects), or the image was too large or too slow.
 *
 * The fetcher runs those transfers for the HTTP server, which must never
 * wait on the network itself: a few threads take the URLs of queued
 * tasks one at a time (so a request's images download side by side),
 * and the last URL of a task to end wakes its request. A request can go
 * away before its fetch ends (the server stops, closing every
 * connection), so a task owns copies of all it needs, and the lock
 * decides who frees it: the request, once done has run, or the fetcher,
 * when the request let go first. The server's shutdown cannot wait for
 * a slow image, so transfers poll whether it began and stop at once.
 */
#include "core/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "util/crypto.h"
#include "util/netpolicy.h"

#define USER_AGENT "vidgate-fetch/1"
#define FIELD "files"

/* Where the body goes, and what went wrong on the way there. */
typedef struct sink {
    int fd;
    int64_t received;
    int64_t max_bytes;
    bool too_large;
    int write_errno; /* non-zero when the file could not be written */
} sink;

/* Returning less than asked makes libcurl stop with CURLE_WRITE_ERROR;
 * the flags in the sink then say why. */
static size_t write_body(char *data, size_t size, size_t nmemb, void *userp)
{
    sink *s = userp;
    size_t n = size * nmemb;
    if (s->received + (int64_t)n > s->max_bytes) {
        s->too_large = true;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(s->fd, data + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        done += (size_t)w;
    }
    s->received += (int64_t)n;
    return n;
}

/* The URL's own scheme is checked before anything is resolved, so a
 * refused scheme costs no DNS lookup and gets its own message. libcurl
 * checks it again (and every redirect's) through the protocol options. */
static int check_scheme(const char *url, bool allow_http, vg_error *err)
{
    if (url == NULL || *url == '\0')
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL is empty");
    if (strlen(url) > VG_OUTBOUND_URL_MAX)
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL is longer than %d bytes",
                            VG_OUTBOUND_URL_MAX);
    if (strncasecmp(url, "https://", 8) == 0)
        return 0;
    if (allow_http && strncasecmp(url, "http://", 7) == 0)
        return 0;
    return vg_error_set(err, 422, "invalid_url", FIELD,
                        "image URLs must use https://%s",
                        allow_http ? " or http://" : "");
}

int vg_fetch_check_url(const char *url, const vg_fetch_limits *limits,
                       vg_error *err)
{
    return check_scheme(url, limits->allow_http, err);
}

/* Whether the caller wants the transfer to stop, asked at most every
 * STOP_POLL_NS: libcurl calls the progress function for every chunk, and
 * the question may take a lock. */
#define STOP_POLL_NS 100000000LL

typedef struct stop_check {
    bool (*should_stop)(void *);
    void *ctx;
    int64_t next_ns;
    bool stopped;
} stop_check;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Non-zero makes libcurl stop with CURLE_ABORTED_BY_CALLBACK. */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    stop_check *c = userp;
    int64_t now = now_ns();
    if (now < c->next_ns)
        return 0;
    c->next_ns = now + STOP_POLL_NS;
    c->stopped = c->should_stop(c->ctx);
    return c->stopped ? 1 : 0;
}

static int stopped_error(vg_error *err)
{
    return vg_error_set(err, 503, "server_shutdown", FIELD,
                        "the server is stopping and did not finish "
                        "fetching the image; send the request again");
}

static void set_protocols(CURL *easy, bool allow_http)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    const char *protocols = allow_http ? "http,https" : "https";
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
#else
    long protocols = CURLPROTO_HTTPS | (allow_http ? CURLPROTO_HTTP : 0);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS, protocols);
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS, protocols);
#endif
}

/* Turns the end of a transfer into 0 or an error. */
static int outcome(CURL *easy, CURLcode rc, const sink *s,
                   const vg_fetch_limits *limits, const char *note,
                   const char *detail, const stop_check *stop, vg_error *err)
{
    long status = 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop->stopped)
        return stopped_error(err);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (s->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return vg_error_set(err, 413, "file_too_large", FIELD,
                            "the image at the URL is larger than the limit "
                            "of %" PRId64 " bytes",
                            limits->max_bytes);
    if (s->write_errno != 0)
        return vg_error_set(err, 500, "internal_error", FIELD,
                            "could not store the fetched image: %s",
                            strerror(s->write_errno));
    switch (rc) {
    case CURLE_OK:
    case CURLE_HTTP_RETURNED_ERROR:
        if (status >= 200 && status <= 299)
            return 0;
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "fetching the image failed: the server "
                            "answered HTTP %ld",
                            status);
    case CURLE_OPERATION_TIMEDOUT:
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "fetching the image timed out (the limit is "
                            "%d s)",
                            limits->timeout_s);
    case CURLE_COULDNT_CONNECT:
        if (note[0] != '\0')
            return vg_error_set(err, 422, "invalid_url", FIELD,
                                "the image URL leads to a non-public "
                                "address (%s); the server's operator can "
                                "allow such addresses in its configuration",
                                note);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* The first URL passed check_scheme, so a redirect did this. */
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL redirects to a URL that is not "
                            "%s",
                            limits->allow_http ? "http(s)" : "https");
    case CURLE_TOO_MANY_REDIRECTS:
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "the image URL redirects more than %d times",
                            VG_FETCH_MAX_REDIRECTS);
    default:
        break;
    }
    return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                        "fetching the image failed: %s",
                        detail[0] != '\0' ? detail : curl_easy_strerror(rc));
}

int vg_fetch_image(const char *url, const vg_fetch_limits *limits,
                   const char *dest_path, vg_error *err)
{
    return vg_fetch_image_until(url, limits, dest_path, NULL, NULL, err);
}

int vg_fetch_image_until(const char *url, const vg_fetch_limits *limits,
                         const char *dest_path, bool (*should_stop)(void *),
                         void *ctx, vg_error *err)
{
    if (check_scheme(url, limits->allow_http, err) != 0)
        return -1;
    if (should_stop != NULL && should_stop(ctx))
        return stopped_error(err);
    if (vg_curl_global_init_once() != 0)
        return vg_error_set(err, 500, "internal_error", FIELD,
                            "libcurl could not initialise");
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return vg_error_set(err, 500, "internal_error", FIELD,
                            "could not create a libcurl handle");
    sink s = {.fd = -1, .max_bytes = limits->max_bytes};
    s.fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        vg_error_set(err, 500, "internal_error", FIELD,
                     "could not store the fetched image: %s", strerror(errno));
        curl_easy_cleanup(easy);
        return -1;
    }

    int timeout_s = limits->timeout_s > 0 ? limits->timeout_s : 1;
    int connect_s = timeout_s < VG_FETCH_CONNECT_TIMEOUT_S
                        ? timeout_s
                        : VG_FETCH_CONNECT_TIMEOUT_S;
    char note[VG_REFUSAL_NOTE_MAX] = "";
    char detail[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(easy, CURLOPT_URL, url);
    set_protocols(easy, limits->allow_http);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)VG_FETCH_MAX_REDIRECTS);
    /* Error pages are not images: stop at the status line. */
    curl_easy_setopt(easy, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_s * 1000L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_s * 1000L);
    /* A Content-Length over the limit is refused before the body. */
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)limits->max_bytes);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, detail);
    vg_curl_restrict_addresses_noting(easy, limits->allow_private, note);
    stop_check stop = {should_stop, ctx, 0, false};
    if (should_stop != NULL) {
        curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &stop);
        curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    }

    CURLcode rc = curl_easy_perform(easy);
    int result = outcome(easy, rc, &s, limits, note, detail, &stop, err);
    curl_easy_cleanup(easy);
    if (close(s.fd) != 0 && result == 0)
        result = vg_error_set(err, 500, "internal_error", FIELD,
                              "could not store the fetched image: %s",
                              strerror(errno));
    if (result != 0)
        unlink(dest_path);
    return result;
}

/* ---- the fetcher --------------------------------------------------- */

typedef struct fetch_slot {
    char *url; /* NULL: nothing to fetch in this slot */
    char *path;
    int rc; /* 0: the file at path holds the body */
    bool taken;
    vg_error err;
} fetch_slot;

struct vg_fetch_task {
    vg_fetch_limits limits;
    char *dir;
    fetch_slot slots[VG_FETCH_TASK_MAX];
    void (*done)(void *ctx);
    void *ctx;
    /* The fetcher's, under its lock. */
    vg_fetch_task *next; /* in the queue */
    bool queued;         /* has slots not handed to a thread yet */
    int next_slot;       /* the next one to hand out */
    int running;         /* slots being fetched now */
    int failed_slot;     /* the first slot that failed so far */
    /* Written under the lock; read without it by transfers (abandoned)
     * and by vg_fetcher_release (finished). */
    atomic_bool abandoned; /* the owner let go: abort, then free */
    atomic_bool finished;  /* done has returned: the fetcher let go */
};

struct vg_fetcher {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    vg_fetch_task *head, *tail;
    atomic_bool stop;
    bool (*stopping)(void *);
    void *ctx;
    int n_threads;
    pthread_t *threads;
};

vg_fetch_task *vg_fetch_task_new(const vg_fetch_limits *limits,
                                 const char *dir)
{
    vg_fetch_task *task = calloc(1, sizeof(*task));
    if (task == NULL)
        return NULL;
    task->dir = strdup(dir != NULL ? dir : "");
    if (task->dir == NULL) {
        free(task);
        return NULL;
    }
    task->limits = *limits;
    task->failed_slot = VG_FETCH_TASK_MAX;
    atomic_init(&task->abandoned, false);
    atomic_init(&task->finished, false);
    return task;
}

int vg_fetch_task_add(vg_fetch_task *task, int slot, const char *url)
{
    if (slot < 0 || slot >= VG_FETCH_TASK_MAX || task->slots[slot].url != NULL)
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
    s->rc = -1;
    vg_error_set(&s->err, 500, "internal_error", FIELD,
                 "the image was not fetched");
    return 0;
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
    if (task == NULL || slot < 0 || slot >= VG_FETCH_TASK_MAX)
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

void vg_fetch_task_free(vg_fetch_task *task)
{
    if (task == NULL)
        return;
    for (int k = 0; k < VG_FETCH_TASK_MAX; k++) {
        fetch_slot *s = &task->slots[k];
        if (s->url != NULL && s->rc == 0 && !s->taken)
            unlink(s->path);
        free(s->url);
        free(s->path);
    }
    free(task->dir);
    free(task);
}

/* Hands out the task's next slot to fetch; false when none is left. A
 * slot after one that failed is not worth fetching: the request stops at
 * its first bad image. */
static bool next_slot_locked(vg_fetch_task *task, int *slot)
{
    while (task->next_slot < VG_FETCH_TASK_MAX) {
        int k = task->next_slot++;
        if (task->slots[k].url != NULL && k < task->failed_slot) {
            *slot = k;
            return true;
        }
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

/* Every slot has ended: tells the owner, or, when it let go, returns
 * true for the caller to free the task once unlocked. */
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

typedef struct transfer {
    vg_fetcher *fetcher;
    vg_fetch_task *task;
} transfer;

static bool transfer_should_stop(void *arg)
{
    transfer *t = arg;
    vg_fetcher *f = t->fetcher;
    return atomic_load(&f->stop) || atomic_load(&t->task->abandoned) ||
           (f->stopping != NULL && f->stopping(f->ctx));
}

static void *fetch_worker(void *arg)
{
    vg_fetcher *f = arg;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (f->head == NULL && !atomic_load(&f->stop))
            pthread_cond_wait(&f->wake, &f->lock);
        vg_fetch_task *task = f->head;
        if (task == NULL)
            break; /* stopping, and nothing is left */
        int k;
        bool picked = next_slot_locked(task, &k);
        int more;
        if (!picked || !next_slot_locked(task, &more))
            unqueue_locked(f, task);
        else
            task->next_slot = more; /* only peeked */
        if (!picked) {
            if (task->running == 0 && finish_locked(task)) {
                pthread_mutex_unlock(&f->lock);
                vg_fetch_task_free(task);
                pthread_mutex_lock(&f->lock);
            }
            continue;
        }
        task->running++;
        pthread_mutex_unlock(&f->lock);

        /* Only this thread touches the slot until it reports under the
         * lock; the owner reads it after done. */
        fetch_slot *s = &task->slots[k];
        transfer t = {f, task};
        s->rc = vg_fetch_image_until(s->url, &task->limits, s->path,
                                     transfer_should_stop, &t, &s->err);

        pthread_mutex_lock(&f->lock);
        task->running--;
        if (s->rc != 0 && k < task->failed_slot)
            task->failed_slot = k;
        if (!task->queued && task->running == 0 && finish_locked(task)) {
            pthread_mutex_unlock(&f->lock);
            vg_fetch_task_free(task);
            pthread_mutex_lock(&f->lock);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

vg_fetcher *vg_fetcher_start(int threads, bool (*stopping)(void *), void *ctx,
                             vg_error *err)
{
    if (threads < 1)
        threads = 1;
    vg_fetcher *f = calloc(1, sizeof(*f));
    pthread_t *ids = calloc((size_t)threads, sizeof(*ids));
    if (f == NULL || ids == NULL) {
        free(f);
        free(ids);
        vg_error_set(err, 500, "internal_error", NULL,
                     "out of memory starting the image fetcher");
        return NULL;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->wake, NULL);
    atomic_init(&f->stop, false);
    f->stopping = stopping;
    f->ctx = ctx;
    f->threads = ids;
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&ids[i], NULL, fetch_worker, f);
        if (rc != 0) {
            vg_error_set(err, 500, "internal_error", NULL,
                         "cannot start an image fetcher thread: %s",
                         strerror(rc));
            vg_fetcher_stop(f);
            return NULL;
        }
        f->n_threads++;
    }
    return f;
}

void vg_fetcher_submit(vg_fetcher *f, vg_fetch_task *task,
                       void (*done)(void *ctx), void *ctx)
{
    task->done = done;
    task->ctx = ctx;
    pthread_mutex_lock(&f->lock);
    /* Nothing would take it any more: end it here, as the threads would
     * (they refuse everything once stopping). */
    if (atomic_load(&f->stop) ||
        (f->stopping != NULL && f->stopping(f->ctx))) {
        for (int k = 0; k < VG_FETCH_TASK_MAX; k++)
            if (task->slots[k].url != NULL)
                stopped_error(&task->slots[k].err);
        finish_locked(task);
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
    pthread_cond_broadcast(&f->wake);
    pthread_mutex_unlock(&f->lock);
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
    /* Slots in flight see `abandoned` and stop; the last frees it. */
    bool free_now = task->running == 0;
    pthread_mutex_unlock(&f->lock);
    if (free_now)
        vg_fetch_task_free(task);
}

void vg_fetcher_drain(vg_fetcher *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    atomic_store(&f->stop, true);
    pthread_cond_broadcast(&f->wake);
    pthread_mutex_unlock(&f->lock);
    /* The threads end the queued slots at once (the transfer refuses to
     * start) and those in flight within a poll; then they exit. */
    for (int i = 0; i < f->n_threads; i++)
        pthread_join(f->threads[i], NULL);
    f->n_threads = 0;
}

void vg_fetcher_stop(vg_fetcher *f)
{
    if (f == NULL)
        return;
    vg_fetcher_drain(f);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    free(f->threads);
    free(f);
}
