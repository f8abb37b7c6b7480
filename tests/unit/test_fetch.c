/*
 * test_fetch.c - fetching reference images from client URLs
 * (vg_fetch_image), and image URLs in a request's JSON "files" going
 * through the same checks as uploads (vg_request_validate), the fetcher
 * that runs those fetches off the request threads (and validation with
 * what it fetched), and the config's "images" section that governs all.
 *
 * A tiny HTTP/1.1 server on 127.0.0.1 runs in a thread for the whole
 * suite. Each of its routes is data, as in curl's own tests: the status,
 * headers and body it answers, or a stall. Loopback is a non-public
 * address, so tests that expect a fetch to succeed allow private
 * addresses and plain http; the ones that do not check that the policy
 * refuses before a single request reaches the server.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/catalog.h"
#include "core/config.h"
#include "core/fetcher.h"
#include "core/request.h"
#include "test_support.h"

/* A 1x1 PNG. */
static const unsigned char png[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00"
    "\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00"
    "\x00\x00\x0d\x49\x44\x41\x54\x78\xda\x63\x64\x60\xf8\x5f\x0f\x00\x02"
    "\x87\x01\x80\xeb\x47\xba\x92\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42"
    "\x60\x82";
#define PNG_SIZE (sizeof(png) - 1)

static const char text[] = "this is not an image\n";
static char big[5000]; /* filled with 'x' by the setup */

/* ---- the fake server --------------------------------------------------- */

typedef struct route {
    const char *path;
    int status;
    const char *location; /* Location of a 3xx, or NULL */
    const void *body;
    size_t body_len;
    bool announce_length; /* send Content-Length (else: until close) */
    bool stall; /* send part of the body, then wait for the client to go */
} route;

static const route routes[] = {
    {"/cat.png", 200, NULL, png, PNG_SIZE, true, false},
    {"/text", 200, NULL, text, sizeof(text) - 1, true, false},
    {"/big", 200, NULL, big, sizeof(big), true, false},
    {"/big-unannounced", 200, NULL, big, sizeof(big), false, false},
    {"/stall", 200, NULL, big, sizeof(big), true, true},
    {"/missing", 404, NULL, "gone", 4, true, false},
    {"/broken", 500, NULL, "", 0, true, false},
    {"/redirect", 302, "/cat.png", "", 0, true, false},
    {"/loop", 302, "/loop", "", 0, true, false},
    {"/to-ftp", 302, "ftp://127.0.0.1/cat.png", "", 0, true, false},
};

static const route not_found = {"", 404, NULL, "", 0, true, false};

static struct {
    int listen_fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests; /* requests received so far */
    atomic_int handlers; /* connections being served */
} server;

static void send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client went away: fine, it decided to */
        p += w;
        n -= (size_t)w;
    }
}

static const route *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(routes[i].path, path) == 0)
            return &routes[i];
    return &not_found;
}

/* One request per connection, answered with Connection: close. */
static void handle(int fd)
{
    char req[4096];
    size_t n = 0;
    req[0] = '\0';
    while (strstr(req, "\r\n\r\n") == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (n + 1 >= sizeof(req) || poll(&p, 1, 2000) <= 0)
            return;
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
    }
    atomic_fetch_add(&server.requests, 1);
    char path[256];
    if (sscanf(req, "GET %255s HTTP/1.1", path) != 1)
        return;
    const route *r = find_route(path);

    char head[512];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d Test\r\nConnection: close\r\n", r->status);
    if (r->location != NULL)
        len += snprintf(head + len, sizeof(head) - (size_t)len,
                        "Location: %s\r\n", r->location);
    if (r->announce_length)
        len += snprintf(head + len, sizeof(head) - (size_t)len,
                        "Content-Length: %zu\r\n", r->body_len);
    len += snprintf(head + len, sizeof(head) - (size_t)len, "\r\n");
    send_all(fd, head, (size_t)len);
    if (r->stall) {
        send_all(fd, r->body, 10);
        /* Readable once the client gives up and closes. */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 10000);
        return;
    }
    send_all(fd, r->body, r->body_len);
    shutdown(fd, SHUT_WR);
}

static void *handle_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    handle(fd);
    close(fd);
    atomic_fetch_sub(&server.handlers, 1);
    return NULL;
}

/* A thread per connection: the fetcher runs downloads side by side. */
static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&server.stop)) {
        struct pollfd p = {.fd = server.listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(server.listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t t;
        atomic_fetch_add(&server.handlers, 1);
        if (pthread_create(&t, NULL, handle_connection,
                           (void *)(intptr_t)fd) != 0) {
            close(fd);
            atomic_fetch_sub(&server.handlers, 1);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static int start_server(void)
{
    server.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (server.listen_fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof(addr);
    if (bind(server.listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(server.listen_fd, 16) != 0 ||
        getsockname(server.listen_fd, (struct sockaddr *)&addr, &addr_len) !=
            0)
        return -1;
    server.port = ntohs(addr.sin_port);
    atomic_store(&server.stop, false);
    return pthread_create(&server.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static void stop_server(void)
{
    atomic_store(&server.stop, true);
    pthread_join(server.thread, NULL);
    close(server.listen_fd);
    /* A stalled answer ends when its client goes, at most 10 s. */
    for (int i = 0; i < 1100 && atomic_load(&server.handlers) > 0; i++)
        usleep(10000);
}

/* ---- fixtures and helpers ---------------------------------------------- */

static int setup_suite(void **state)
{
    memset(big, 'x', sizeof(big));
    /* An http_proxy from the environment would take loopback requests
     * elsewhere. */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY",
                                          "https_proxy", "HTTPS_PROXY",
                                          "all_proxy",   "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
    if (vg_test_scratch_setup(state) != 0)
        return -1;
    return start_server();
}

static int teardown_suite(void **state)
{
    stop_server();
    return vg_test_scratch_teardown(state);
}

static char *url(const char *path)
{
    static char buf[4][128];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "http://127.0.0.1:%d%s", server.port, path);
    return out;
}

/* Limits under which the fake server is reachable. */
static vg_fetch_limits loopback_limits(void)
{
    vg_fetch_limits l = {.max_bytes = 1000,
                         .timeout_s = 5,
                         .allow_http = true,
                         .allow_private = true};
    return l;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh destination path per call. */
static const char *dest(void)
{
    static int n;
    char name[32];
    snprintf(name, sizeof(name), "fetched-%d", n++);
    return vg_test_scratch_path(name);
}

/* Expects the fetch to fail with status and code, a message holding
 * needle, and no file at the destination. */
static void expect_refused(const char *u, const vg_fetch_limits *l, int status,
                           const char *code, const char *needle)
{
    vg_error err = {0};
    const char *d = dest();
    if (vg_fetch_image(u, l, d, &err) == 0)
        fail_msg("fetching %s succeeded; expected %d %s", u, status, code);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
    assert_string_equal(err.field, "files");
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    assert_false(exists(d));
}

static void assert_file_is(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[8192];
    size_t got = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(got, n);
    assert_memory_equal(buf, bytes, n);
}

/* ---- vg_fetch_image ---------------------------------------------------- */

static void test_fetch_writes_the_image(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    vg_error err = {0};
    const char *d = dest();
    if (vg_fetch_image(url("/cat.png"), &l, d, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(d, png, PNG_SIZE);
    unlink(d);
}

static void test_fetch_follows_a_redirect(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    vg_error err = {0};
    const char *d = dest();
    if (vg_fetch_image(url("/redirect"), &l, d, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(d, png, PNG_SIZE);
    unlink(d);
}

static void test_loopback_is_refused_without_allow_private(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    l.allow_private = false;
    int before = atomic_load(&server.requests);
    expect_refused(url("/cat.png"), &l, 422, "invalid_url", "loopback");
    assert_int_equal(atomic_load(&server.requests), before);
}

static void test_plain_http_is_refused_without_allow_http(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    l.allow_http = false;
    int before = atomic_load(&server.requests);
    expect_refused(url("/cat.png"), &l, 422, "invalid_url", "https://");
    assert_int_equal(atomic_load(&server.requests), before);
}

static void test_other_schemes_are_refused(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused("file:///etc/passwd", &l, 422, "invalid_url", "https://");
    expect_refused("ftp://127.0.0.1/cat.png", &l, 422, "invalid_url",
                   "https://");
    expect_refused("", &l, 422, "invalid_url", "empty");
}

static void test_redirect_to_another_scheme_is_refused(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused(url("/to-ftp"), &l, 422, "invalid_url", "redirects");
}

static void test_redirect_loop_is_refused(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused(url("/loop"), &l, 422, "image_fetch_failed", "more than 3");
}

static void test_announced_body_over_max_bytes_is_413(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused(url("/big"), &l, 413, "file_too_large", "1000 bytes");
}

static void test_unannounced_body_over_max_bytes_is_413(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused(url("/big-unannounced"), &l, 413, "file_too_large",
                   "1000 bytes");
}

static void test_body_of_exactly_max_bytes_is_fine(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    vg_error err = {0};
    const char *d = dest();
    if (vg_fetch_image(url("/big-unannounced"), &l, d, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(d, big, sizeof(big));
    unlink(d);
}

static void test_stalled_server_times_out(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    l.timeout_s = 1;
    expect_refused(url("/stall"), &l, 422, "image_fetch_failed", "timed out");
}

static void test_non_2xx_status_is_422(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    expect_refused(url("/missing"), &l, 422, "image_fetch_failed", "404");
    expect_refused(url("/broken"), &l, 422, "image_fetch_failed", "500");
}

static void test_unreachable_host_is_422(void **state)
{
    (void)state;
    /* A port nobody listens on: the listener is closed right away. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/cat.png",
             ntohs(addr.sin_port));
    vg_fetch_limits l = loopback_limits();
    expect_refused(u, &l, 422, "image_fetch_failed", "fetching the image");
}

static void test_existing_destination_is_kept(void **state)
{
    (void)state;
    const char *d = dest();
    vg_test_write_file(d, "keep", 4);
    vg_fetch_limits l = loopback_limits();
    vg_error err = {0};
    assert_int_equal(vg_fetch_image(url("/cat.png"), &l, d, &err), -1);
    assert_int_equal(err.status, 500);
    assert_file_is(d, "keep", 4);
    unlink(d);
}


/* ---- the fetcher ------------------------------------------------------- */

/* Counts done calls; tests wait on it. */
typedef struct done_flag {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
} done_flag;

static void done_flag_init(done_flag *d)
{
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->calls = 0;
}

static void done_flag_destroy(done_flag *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
}

static void on_done(void *ctx)
{
    done_flag *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->calls++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* Waits for the first done call: up to 60 s, a bound for a hang, not a
 * speed target (a shared 2-core machine under ASan can take seconds). */
static void wait_done(done_flag *d)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&d->lock);
    while (d->calls == 0 &&
           pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
        ;
    int calls = d->calls;
    pthread_mutex_unlock(&d->lock);
    assert_int_equal(calls, 1);
}

static int done_calls(done_flag *d)
{
    pthread_mutex_lock(&d->lock);
    int calls = d->calls;
    pthread_mutex_unlock(&d->lock);
    return calls;
}

/* A fresh empty directory for a test's fetched files. */
static const char *fetch_dir(void)
{
    static int n;
    char name[32];
    snprintf(name, sizeof(name), "fetcher-%d", n++);
    const char *dir = vg_test_scratch_path(name);
    assert_int_equal(mkdir(dir, 0700), 0);
    return dir;
}

/* Removes the directory, which must be empty: nothing was left behind. */
static void assert_dir_empty(const char *dir)
{
    if (rmdir(dir) != 0)
        fail_msg("%s is not empty: %s", dir, strerror(errno));
}

static void wait_for_requests(int count)
{
    for (int i = 0; i < 500 && atomic_load(&server.requests) < count; i++)
        usleep(10000);
    assert_true(atomic_load(&server.requests) >= count);
}

static int64_t ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - start->tv_sec) * 1000 +
           (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* A fetcher running at most `transfers` downloads, all of one owner. */
static vg_fetcher *start_fetcher(int transfers, bool (*stopping)(void *),
                                 void *ctx, vg_error *err)
{
    vg_fetcher_config cfg;
    vg_fetcher_config_defaults(&cfg);
    cfg.max_transfers = transfers;
    cfg.max_per_owner = transfers;
    return vg_fetcher_start(&cfg, stopping, ctx, err);
}

static void test_fetcher_fetches_each_slot_then_calls_done(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(2, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *task = vg_fetch_task_new(&l, dir);
    assert_non_null(task);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/cat.png")), 0);
    assert_int_equal(vg_fetch_task_add(task, 2, url("/redirect")), 0);
    assert_int_equal(vg_fetch_task_add(task, 3, url("/text")), 0);
    assert_int_equal(vg_fetch_task_add(task, VG_FETCH_TASK_MAX, "x"), -1);
    assert_int_equal(vg_fetch_task_count(task), 3);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, task, on_done, &d);
    wait_done(&d);

    const char *path = NULL;
    assert_int_equal(vg_fetch_task_take(task, 1, url("/cat.png"), &path,
                                        &err),
                     1); /* no URL in that slot */
    assert_int_equal(vg_fetch_task_take(task, 0, url("/text"), &path, &err),
                     1); /* another URL */
    if (vg_fetch_task_take(task, 0, url("/cat.png"), &path, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(path, png, PNG_SIZE);
    unlink(path); /* taken: the caller's */
    if (vg_fetch_task_take(task, 2, url("/redirect"), &path, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(path, png, PNG_SIZE);
    unlink(path);
    /* Slot 3 is not taken: releasing the task deletes its file. */
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    assert_int_equal(done_calls(&d), 1);
    done_flag_destroy(&d);
    assert_dir_empty(dir);
}

static void test_fetcher_reports_each_failure(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(2, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *large = vg_fetch_task_new(&l, dir);
    vg_fetch_task *missing = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(large, 0, url("/big")), 0);
    assert_int_equal(vg_fetch_task_add(missing, 0, url("/missing")), 0);
    done_flag d1, d2;
    done_flag_init(&d1);
    done_flag_init(&d2);
    vg_fetcher_submit(f, large, on_done, &d1);
    vg_fetcher_submit(f, missing, on_done, &d2);
    wait_done(&d1);
    wait_done(&d2);
    const char *path = NULL;
    assert_int_equal(vg_fetch_task_take(large, 0, url("/big"), &path, &err),
                     -1);
    assert_int_equal(err.status, 413);
    assert_string_equal(err.code, "file_too_large");
    assert_int_equal(vg_fetch_task_take(missing, 0, url("/missing"), &path,
                                        &err),
                     -1);
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(err.message, "404"));
    vg_fetcher_release(f, large);
    vg_fetcher_release(f, missing);
    vg_fetcher_stop(f);
    done_flag_destroy(&d1);
    done_flag_destroy(&d2);
    assert_dir_empty(dir);
}

static void test_fetcher_skips_urls_after_a_failure(void **state)
{
    (void)state;
    vg_error err = {0};
    /* One download at a time: the slots are fetched in order. */
    vg_fetcher *f = start_fetcher(1, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *task = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/missing")), 0);
    assert_int_equal(vg_fetch_task_add(task, 1, url("/cat.png")), 0);
    int before = atomic_load(&server.requests);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, task, on_done, &d);
    wait_done(&d);
    assert_int_equal(atomic_load(&server.requests), before + 1);
    const char *path = NULL;
    assert_int_equal(vg_fetch_task_take(task, 1, url("/cat.png"), &path,
                                        &err),
                     -1);
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    done_flag_destroy(&d);
    assert_dir_empty(dir);
}

static void test_fetcher_release_before_done_cancels(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(1, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    vg_fetch_task *task = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/stall")), 0);
    int before = atomic_load(&server.requests);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, task, on_done, &d);
    wait_for_requests(before + 1);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_fetcher_release(f, task);
    /* The transfer is aborted, not waited out (the timeout is 5 s). */
    vg_fetcher_stop(f);
    assert_true(ms_since(&start) < 2000);
    assert_int_equal(done_calls(&d), 0);
    done_flag_destroy(&d);
    assert_dir_empty(dir);
}

static void test_fetcher_stop_ends_fetching_and_queued_tasks(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(1, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    vg_fetch_task *stalled = vg_fetch_task_new(&l, dir);
    vg_fetch_task *queued = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(stalled, 0, url("/stall")), 0);
    assert_int_equal(vg_fetch_task_add(queued, 0, url("/cat.png")), 0);
    int before = atomic_load(&server.requests);
    done_flag d1, d2;
    done_flag_init(&d1);
    done_flag_init(&d2);
    vg_fetcher_submit(f, stalled, on_done, &d1);
    vg_fetcher_submit(f, queued, on_done, &d2);
    wait_for_requests(before + 1);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_fetcher_stop(f);
    assert_true(ms_since(&start) < 2000);
    assert_int_equal(done_calls(&d1), 1);
    assert_int_equal(done_calls(&d2), 1);
    const char *path = NULL;
    vg_fetch_task *tasks[] = {stalled, queued};
    const char *urls[] = {url("/stall"), url("/cat.png")};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(vg_fetch_task_take(tasks[i], 0, urls[i], &path,
                                            &err),
                         -1);
        assert_int_equal(err.status, 503);
        assert_string_equal(err.code, "server_shutdown");
        vg_fetcher_release(NULL, tasks[i]); /* after stop: only frees */
    }
    done_flag_destroy(&d1);
    done_flag_destroy(&d2);
    assert_dir_empty(dir);
}

static bool always_stopping(void *ctx)
{
    (void)ctx;
    return true;
}

static void test_fetcher_refuses_work_while_stopping(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(1, always_stopping, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *task = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/cat.png")), 0);
    int before = atomic_load(&server.requests);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, task, on_done, &d);
    assert_int_equal(done_calls(&d), 1); /* before submit returned */
    const char *path = NULL;
    assert_int_equal(vg_fetch_task_take(task, 0, url("/cat.png"), &path,
                                        &err),
                     -1);
    assert_int_equal(err.status, 503);
    assert_int_equal(atomic_load(&server.requests), before);
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    done_flag_destroy(&d);
    assert_dir_empty(dir);
}

static void test_unsubmitted_task_frees_cleanly(void **state)
{
    (void)state;
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *task = vg_fetch_task_new(&l, "/nonexistent");
    assert_int_equal(vg_fetch_task_add(task, 0, url("/cat.png")), 0);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/cat.png")), -1);
    vg_fetch_task_free(task);
    vg_fetch_task_free(NULL);
    vg_fetcher_stop(NULL);
}

static void test_fetcher_shares_downloads_between_owners(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher_config cfg;
    vg_fetcher_config_defaults(&cfg);
    cfg.max_transfers = 3;
    cfg.max_per_owner = 2;
    vg_fetcher *f = vg_fetcher_start(&cfg, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    /* One account's four slow images... */
    vg_fetch_task *slow = vg_fetch_task_new(&l, dir);
    vg_fetch_task_set_owner(slow, "account-a");
    for (int k = 0; k < 4; k++)
        assert_int_equal(vg_fetch_task_add(slow, k, url("/stall")), 0);
    /* ...and another's fast one. */
    vg_fetch_task *fast = vg_fetch_task_new(&l, dir);
    vg_fetch_task_set_owner(fast, "account-b");
    assert_int_equal(vg_fetch_task_add(fast, 0, url("/cat.png")), 0);
    int before = atomic_load(&server.requests);
    done_flag d1, d2;
    done_flag_init(&d1);
    done_flag_init(&d2);
    vg_fetcher_submit(f, slow, on_done, &d1);
    wait_for_requests(before + 2);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_fetcher_submit(f, fast, on_done, &d2);
    wait_done(&d2);
    assert_true(ms_since(&start) < 3000);
    const char *path = NULL;
    if (vg_fetch_task_take(fast, 0, url("/cat.png"), &path, &err) != 0)
        fail_msg("%d %s: %s", err.status, err.code, err.message);
    assert_file_is(path, png, PNG_SIZE);
    unlink(path);
    /* The slow account had its share, two; its others still wait. */
    usleep(200000);
    assert_int_equal(atomic_load(&server.requests), before + 3);
    assert_int_equal(done_calls(&d1), 0);
    vg_fetcher_release(f, slow);
    vg_fetcher_release(f, fast);
    vg_fetcher_stop(f);
    done_flag_destroy(&d1);
    done_flag_destroy(&d2);
    assert_dir_empty(dir);
}

static void test_fetcher_drops_a_trickling_download(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_fetcher *f = start_fetcher(2, NULL, NULL, &err);
    assert_non_null(f);
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    l.max_bytes = sizeof(big);
    l.timeout_s = 60;
    l.min_bytes_per_s = 100;
    vg_fetch_task *task = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(task, 0, url("/stall")), 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, task, on_done, &d);
    wait_done(&d);
    int64_t took = ms_since(&start);
    /* Ten bytes, then nothing: under 100 B/s for VG_FETCH_LOW_SPEED_S. */
    assert_true(took >= VG_FETCH_LOW_SPEED_S * 1000 - 500);
    assert_true(took < VG_FETCH_LOW_SPEED_S * 1000 + 3000);
    const char *path = NULL;
    assert_int_equal(vg_fetch_task_take(task, 0, url("/stall"), &path, &err),
                     -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "image_fetch_failed");
    if (strstr(err.message, "too slow") == NULL)
        fail_msg("%s", err.message);
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    done_flag_destroy(&d);
    assert_dir_empty(dir);
}

/* ---- URL checks: a name server on loopback ----------------------------- */

/* Answers every query NXDOMAIN, or, when silent, never. */
static struct {
    int fd;
    int port;
    bool silent;
    pthread_t thread;
    atomic_bool stop;
    atomic_int queries;
} dns;

static void *serve_dns(void *arg)
{
    (void)arg;
    while (!atomic_load(&dns.stop)) {
        struct pollfd p = {.fd = dns.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        unsigned char q[512];
        struct sockaddr_storage from;
        socklen_t from_len = sizeof(from);
        ssize_t n = recvfrom(dns.fd, q, sizeof(q), 0,
                             (struct sockaddr *)&from, &from_len);
        if (n < 12)
            continue;
        atomic_fetch_add(&dns.queries, 1);
        if (dns.silent)
            continue;
        /* The query back, as a response: QR, RD and RA set, NXDOMAIN. */
        q[2] = 0x81;
        q[3] = 0x83;
        sendto(dns.fd, q, (size_t)n, 0, (struct sockaddr *)&from, from_len);
    }
    return NULL;
}

static void start_dns(bool silent)
{
    dns.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(dns.fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(dns.fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(dns.fd, (struct sockaddr *)&addr, &len), 0);
    dns.port = ntohs(addr.sin_port);
    dns.silent = silent;
    atomic_store(&dns.stop, false);
    atomic_store(&dns.queries, 0);
    assert_int_equal(pthread_create(&dns.thread, NULL, serve_dns, NULL), 0);
}

static void stop_dns(void)
{
    atomic_store(&dns.stop, true);
    pthread_join(dns.thread, NULL);
    close(dns.fd);
}

static vg_fetcher *start_fetcher_with_dns(vg_error *err)
{
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", dns.port);
    vg_fetcher_config cfg;
    vg_fetcher_config_defaults(&cfg);
    cfg.dns_servers = servers; /* copied by c-ares at start */
    return vg_fetcher_start(&cfg, NULL, NULL, err);
}

static void test_url_check_waits_for_dns_as_an_event(void **state)
{
    (void)state;
    start_dns(true);
    vg_error err = {0};
    vg_fetcher *f = start_fetcher_with_dns(&err);
    assert_non_null(f);
    vg_fetch_task *check = vg_url_check_task_new(
        "https://hooks.unanswered.test/x", "http,https", false,
        "webhook_url", &err);
    assert_non_null(check);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    done_flag d1;
    done_flag_init(&d1);
    vg_fetcher_submit(f, check, on_done, &d1);
    /* The bounds here tell an event from a wait for the 5 s lookup,
     * with room for a loaded machine under the sanitizers. */
    assert_true(ms_since(&start) < 1000);
    /* While the name server says nothing, downloads go on. */
    const char *dir = fetch_dir();
    vg_fetch_limits l = loopback_limits();
    vg_fetch_task *image = vg_fetch_task_new(&l, dir);
    assert_int_equal(vg_fetch_task_add(image, 0, url("/cat.png")), 0);
    done_flag d2;
    done_flag_init(&d2);
    vg_fetcher_submit(f, image, on_done, &d2);
    wait_done(&d2);
    assert_true(ms_since(&start) < 3000);
    assert_int_equal(done_calls(&d1), 0);
    assert_true(atomic_load(&dns.queries) >= 1);
    /* The lookup's own deadline ends it. */
    wait_done(&d1);
    int64_t took = ms_since(&start);
    assert_true(took >= VG_LOOKUP_TIMEOUT_MS - 200);
    assert_true(took < VG_LOOKUP_TIMEOUT_MS + 2000);
    assert_int_equal(vg_url_check_result(check, &err), -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_url");
    assert_string_equal(err.field, "webhook_url");
    if (strstr(err.message, "did not resolve within 5 s") == NULL)
        fail_msg("%s", err.message);
    vg_fetcher_release(f, check);
    vg_fetcher_release(f, image);
    vg_fetcher_stop(f);
    stop_dns();
    done_flag_destroy(&d1);
    done_flag_destroy(&d2);
    assert_dir_empty(dir);
}

static void test_url_check_judges_literals_without_dns(void **state)
{
    (void)state;
    start_dns(true);
    vg_error err = {0};
    vg_fetcher *f = start_fetcher_with_dns(&err);
    assert_non_null(f);
    static const struct {
        const char *url;
        int rc;
    } cases[] = {
        {"http://10.1.2.3/hook", -1},
        {"https://[::1]:8443/hook", -1},
        {"https://1.1.1.1/hook", 0},
        {"https://[2606:4700:4700::1111]/hook", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vg_fetch_task *check = vg_url_check_task_new(
            cases[i].url, "http,https", false, "webhook_url", &err);
        assert_non_null(check);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        done_flag d;
        done_flag_init(&d);
        vg_fetcher_submit(f, check, on_done, &d);
        wait_done(&d);
        assert_true(ms_since(&start) < 2000);
        if (vg_url_check_result(check, &err) != cases[i].rc)
            fail_msg("%s: %s", cases[i].url,
                     cases[i].rc == 0 ? err.message : "accepted");
        vg_fetcher_release(f, check);
        done_flag_destroy(&d);
    }
    assert_int_equal(atomic_load(&dns.queries), 0);
    vg_fetcher_stop(f);
    stop_dns();
}

static void test_url_check_reports_an_unknown_host(void **state)
{
    (void)state;
    start_dns(false);
    vg_error err = {0};
    vg_fetcher *f = start_fetcher_with_dns(&err);
    assert_non_null(f);
    vg_fetch_task *check = vg_url_check_task_new(
        "https://nowhere.invalid/x", "http,https", false, "webhook_url", &err);
    assert_non_null(check);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, check, on_done, &d);
    wait_done(&d);
    assert_int_equal(vg_url_check_result(check, &err), -1);
    assert_int_equal(err.status, 422);
    if (strstr(err.message, "the host nowhere.invalid does not resolve") ==
        NULL)
        fail_msg("%s", err.message);
    vg_fetcher_release(f, check);
    vg_fetcher_stop(f);
    stop_dns();
    done_flag_destroy(&d);
}

static void test_url_check_stops_with_the_fetcher(void **state)
{
    (void)state;
    start_dns(true);
    vg_error err = {0};
    vg_fetcher *f = start_fetcher_with_dns(&err);
    assert_non_null(f);
    vg_fetch_task *check = vg_url_check_task_new(
        "https://hooks.unanswered.test/x", "http,https", false,
        "webhook_url", &err);
    assert_non_null(check);
    done_flag d;
    done_flag_init(&d);
    vg_fetcher_submit(f, check, on_done, &d);
    for (int i = 0; i < 200 && atomic_load(&dns.queries) == 0; i++)
        usleep(10000);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_fetcher_stop(f);
    assert_true(ms_since(&start) < 2000);
    assert_int_equal(done_calls(&d), 1);
    assert_int_equal(vg_url_check_result(check, &err), -1);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "server_shutdown");
    vg_fetcher_release(NULL, check);
    stop_dns();
    done_flag_destroy(&d);
}

static void test_fetcher_refuses_bad_dns_servers(void **state)
{
    (void)state;
    vg_fetcher_config cfg;
    vg_fetcher_config_defaults(&cfg);
    cfg.dns_servers = "not-an-address";
    vg_error err = {0};
    assert_null(vg_fetcher_start(&cfg, NULL, NULL, &err));
    assert_string_equal(err.code, "config_error");
    assert_non_null(strstr(err.message, "not-an-address"));
}

/* ---- image URLs in a request ------------------------------------------- */

typedef struct request_fixture {
    vg_catalog *catalog;
    vg_limits limits;
    char tmp_dir[PATH_MAX];
    vg_arena arena;
    vg_video_request req;
    vg_error err;
} request_fixture;

static request_fixture rf;

static int setup_request(void **state)
{
    (void)state;
    memset(&rf, 0, sizeof(rf));
    rf.catalog = vg_catalog_default();
    rf.limits.prompt_max_chars = 100;
    rf.limits.max_image_bytes = 1024;
    rf.limits.max_images = 2;
    rf.limits.allow_image_urls = true;
    rf.limits.image_fetch = loopback_limits();
    snprintf(rf.tmp_dir, sizeof(rf.tmp_dir), "%s",
             vg_test_scratch_path("request_tmp"));
    if (mkdir(rf.tmp_dir, 0700) != 0)
        return -1;
    vg_arena_init(&rf.arena);
    return 0;
}

static int teardown_request(void **state)
{
    (void)state;
    vg_request_cleanup(&rf.req);
    /* Nothing fetched may outlive the request. */
    assert_int_equal(rmdir(rf.tmp_dir), 0);
    vg_arena_free(&rf.arena);
    vg_catalog_free(rf.catalog);
    return 0;
}

/* Validates a body that passes every rule, with files = [file_url]. */
static int validate_with_file(const char *file_url)
{
    json_t *body = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:[s]}", "prompt",
        "a cat on a windowsill", "model", "vidgate-local", "resolution",
        "720P", "aspect_ratio", "16:9", "duration", 5, "generate_audio", 0,
        "camera_fixed", 0, "service_tier", "default", "files", file_url);
    assert_non_null(body);
    int rc = vg_request_validate(body, rf.catalog, &rf.limits, rf.tmp_dir,
                                 &rf.arena, &rf.req, &rf.err);
    json_decref(body);
    return rc;
}

static void expect_request_error(const char *file_url, int status,
                                 const char *code, const char *needle)
{
    if (validate_with_file(file_url) == 0)
        fail_msg("%s accepted; expected %d %s", file_url, status, code);
    assert_int_equal(rf.err.status, status);
    assert_string_equal(rf.err.code, code);
    assert_string_equal(rf.err.field, "files");
    if (strstr(rf.err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", rf.err.message, needle);
    assert_int_equal(rf.req.n_images, 0);
}

static void test_request_image_url_becomes_an_image(void **state)
{
    (void)state;
    if (validate_with_file(url("/cat.png")) != 0)
        fail_msg("%d %s: %s", rf.err.status, rf.err.code, rf.err.message);
    assert_int_equal(rf.req.n_images, 1);
    assert_int_equal(rf.req.images[0].type, VG_IMAGE_PNG);
    assert_int_equal(rf.req.images[0].size, PNG_SIZE);
    assert_file_is(rf.req.images[0].path, png, PNG_SIZE);
}

static void test_request_fetched_text_is_415(void **state)
{
    (void)state;
    expect_request_error(url("/text"), 415, "unsupported_file_type",
                         "PNG, JPEG or WebP");
}

static void test_request_fetch_is_capped_at_the_image_limit(void **state)
{
    (void)state;
    rf.limits.image_fetch.max_bytes = 1 << 20;
    expect_request_error(url("/big-unannounced"), 413, "file_too_large",
                         "1024 bytes");
}

static void test_request_fetch_failure_names_the_element(void **state)
{
    (void)state;
    expect_request_error(url("/missing"), 422, "image_fetch_failed",
                         "files[0]: ");
}

static void test_request_image_urls_can_be_disabled(void **state)
{
    (void)state;
    rf.limits.allow_image_urls = false;
    int before = atomic_load(&server.requests);
    expect_request_error(url("/cat.png"), 422, "validation_error",
                         "not enabled");
    assert_int_equal(atomic_load(&server.requests), before);
}

static void test_request_refuses_loopback_by_default(void **state)
{
    (void)state;
    rf.limits.image_fetch.allow_private = false;
    expect_request_error(url("/cat.png"), 422, "invalid_url", "loopback");
}


static json_t *body_with_files(const char *a, const char *b)
{
    json_t *body = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:[]}", "prompt",
        "a cat on a windowsill", "model", "vidgate-local", "resolution",
        "720P", "aspect_ratio", "16:9", "duration", 5, "generate_audio", 0,
        "camera_fixed", 0, "service_tier", "default", "files");
    json_t *files = json_object_get(body, "files");
    json_array_append_new(files, json_string(a));
    if (b != NULL)
        json_array_append_new(files, json_string(b));
    return body;
}

/* Plans body's fetches, runs them on a fetcher and validates with them,
 * as the server does. */
static int validate_prefetched(json_t *body, int *planned)
{
    vg_fetch_task *task = NULL;
    *planned = 0;
    if (vg_request_plan_fetch(body, &rf.limits, rf.tmp_dir, &rf.arena,
                              &rf.req, &task, &rf.err) != 0)
        return -2;
    vg_error err;
    vg_fetcher *f = start_fetcher(2, NULL, NULL, &err);
    assert_non_null(f);
    if (task != NULL) {
        *planned = vg_fetch_task_count(task);
        done_flag d;
        done_flag_init(&d);
        vg_fetcher_submit(f, task, on_done, &d);
        wait_done(&d);
        done_flag_destroy(&d);
    }
    int rc = vg_request_validate_fetched(body, rf.catalog, &rf.limits,
                                         rf.tmp_dir, task, &rf.arena,
                                         &rf.req, &rf.err);
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    return rc;
}

static void test_prefetched_image_url_becomes_an_image(void **state)
{
    (void)state;
    json_t *body = body_with_files(url("/cat.png"), url("/redirect"));
    int planned;
    if (validate_prefetched(body, &planned) != 0)
        fail_msg("%d %s: %s", rf.err.status, rf.err.code, rf.err.message);
    json_decref(body);
    assert_int_equal(planned, 2);
    assert_int_equal(rf.req.n_images, 2);
    assert_file_is(rf.req.images[0].path, png, PNG_SIZE);
    assert_file_is(rf.req.images[1].path, png, PNG_SIZE);
}

static void test_prefetched_errors_keep_their_order(void **state)
{
    (void)state;
    /* The first bad image is reported, whatever came back first. */
    json_t *body = body_with_files(url("/text"), url("/missing"));
    int planned;
    assert_int_equal(validate_prefetched(body, &planned), -1);
    json_decref(body);
    assert_int_equal(rf.err.status, 415);
    assert_int_equal(rf.req.n_images, 0);

    body = body_with_files(url("/cat.png"), url("/missing"));
    assert_int_equal(validate_prefetched(body, &planned), -1);
    json_decref(body);
    assert_int_equal(rf.err.status, 422);
    assert_string_equal(rf.err.code, "image_fetch_failed");
    assert_non_null(strstr(rf.err.message, "files[1]: "));
}

static void test_plan_stops_at_what_fails_without_network(void **state)
{
    (void)state;
    int before = atomic_load(&server.requests);
    /* A refused scheme before the URL: nothing to fetch, same error. */
    json_t *body = body_with_files("ftp://example.com/a.png",
                                   url("/cat.png"));
    int planned;
    assert_int_equal(validate_prefetched(body, &planned), -1);
    json_decref(body);
    assert_int_equal(planned, 0);
    assert_string_equal(rf.err.code, "validation_error");
    assert_non_null(strstr(rf.err.message, "files[0]"));

    rf.limits.image_fetch.allow_http = false;
    body = body_with_files(url("/cat.png"), NULL);
    assert_int_equal(validate_prefetched(body, &planned), -1);
    json_decref(body);
    assert_int_equal(planned, 0);
    assert_string_equal(rf.err.code, "invalid_url");
    assert_non_null(strstr(rf.err.message, "files[0]: "));
    assert_int_equal(atomic_load(&server.requests), before);
}

static void test_plan_reports_earlier_fields_first(void **state)
{
    (void)state;
    int before = atomic_load(&server.requests);
    json_t *body = body_with_files(url("/cat.png"), NULL);
    json_object_set_new(body, "duration", json_string("5"));
    int planned;
    assert_int_equal(validate_prefetched(body, &planned), -2);
    json_decref(body);
    assert_string_equal(rf.err.field, "duration");
    assert_int_equal(atomic_load(&server.requests), before);
}

static void test_validate_fetched_never_fetches(void **state)
{
    (void)state;
    int before = atomic_load(&server.requests);
    json_t *body = body_with_files(url("/cat.png"), NULL);
    assert_int_equal(vg_request_validate_fetched(body, rf.catalog,
                                                 &rf.limits, rf.tmp_dir,
                                                 NULL, &rf.arena, &rf.req,
                                                 &rf.err),
                     -1);
    json_decref(body);
    assert_int_equal(rf.err.status, 500);
    assert_int_equal(atomic_load(&server.requests), before);
}

/* ---- the "images" config section --------------------------------------- */

static int load_config(vg_config *cfg, const char *json, vg_error *err)
{
    const char *path = vg_test_scratch_path("images.json");
    vg_test_write_file(path, json, strlen(json));
    int rc = vg_config_load_file(cfg, path, err);
    unlink(path);
    return rc;
}

static void test_config_defaults_allow_https_only(void **state)
{
    (void)state;
    vg_config cfg;
    vg_config_defaults(&cfg);
    vg_error err = {0};
    assert_int_equal(
        load_config(&cfg, "{\"limits\": {\"max_upload_bytes\": 5000}}", &err),
        0);
    vg_config_finish(&cfg);
    const vg_limits *rl = &cfg.request_limits;
    assert_true(rl->allow_image_urls);
    assert_false(rl->image_fetch.allow_http);
    assert_false(rl->image_fetch.allow_private);
    assert_int_equal(rl->image_fetch.timeout_s, 10);
    /* Unset, the fetch limit follows the upload limit. */
    assert_int_equal(rl->image_fetch.max_bytes, 5000);
    vg_config_free(&cfg);
}

static void test_config_images_section_is_read(void **state)
{
    (void)state;
    vg_config cfg;
    vg_config_defaults(&cfg);
    vg_error err = {0};
    int rc = load_config(&cfg,
                         "{\"images\": {\"allow_urls\": false,"
                         " \"allow_http\": true,"
                         " \"allow_private_addresses\": true,"
                         " \"fetch_timeout_s\": 3,"
                         " \"max_fetch_bytes\": 777,"
                         " \"min_fetch_bytes_per_s\": 0,"
                         " \"max_fetches\": 9,"
                         " \"max_fetches_per_account\": 2},"
                         " \"webhooks\": {\"dns_servers\":"
                         " [\"127.0.0.1:5353\", \"[::1]:53\"]}}",
                         &err);
    if (rc != 0)
        fail_msg("%s", err.message);
    vg_config_finish(&cfg);
    const vg_limits *rl = &cfg.request_limits;
    assert_false(rl->allow_image_urls);
    assert_true(rl->image_fetch.allow_http);
    assert_true(rl->image_fetch.allow_private);
    assert_int_equal(rl->image_fetch.timeout_s, 3);
    assert_int_equal(rl->image_fetch.max_bytes, 777);
    assert_int_equal(rl->image_fetch.min_bytes_per_s, 0);
    assert_int_equal(cfg.image_max_fetches, 9);
    assert_int_equal(cfg.image_max_fetches_per_account, 2);
    assert_string_equal(cfg.webhook_dns_servers, "127.0.0.1:5353,[::1]:53");
    vg_config_free(&cfg);
}

static void test_config_images_section_is_strict(void **state)
{
    (void)state;
    static const struct {
        const char *json, *field, *needle;
    } cases[] = {
        {"{\"images\": {\"allow_url\": true}}", "allow_url",
         "unknown key \"allow_url\" in \"images\""},
        {"{\"images\": {\"allow_http\": 1}}", "images.allow_http",
         "true or false"},
        {"{\"images\": {\"fetch_timeout_s\": 0}}", "images.fetch_timeout_s",
         "from 1 to 120"},
        {"{\"images\": {\"max_fetch_bytes\": 0}}", "images.max_fetch_bytes",
         "from 1"},
        {"{\"images\": true}", "images", "must be an object"},
        {"{\"images\": {\"max_fetches_per_account\": 0}}",
         "images.max_fetches_per_account", "from 1"},
        {"{\"images\": {\"min_fetch_bytes_per_s\": -1}}",
         "images.min_fetch_bytes_per_s", "from 0"},
        {"{\"webhooks\": {\"dns_servers\": \"127.0.0.1\"}}",
         "webhooks.dns_servers", "a list"},
        {"{\"webhooks\": {\"dns_servers\": [\"1.1.1.1,8.8.8.8\"]}}",
         "webhooks.dns_servers", "[0] must be"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vg_config cfg;
        vg_config_defaults(&cfg);
        vg_error err = {0};
        if (load_config(&cfg, cases[i].json, &err) == 0)
            fail_msg("accepted %s", cases[i].json);
        assert_string_equal(err.code, "config_error");
        assert_string_equal(err.field, cases[i].field);
        if (strstr(err.message, cases[i].needle) == NULL)
            fail_msg("message \"%s\" lacks \"%s\"", err.message,
                     cases[i].needle);
        vg_config_free(&cfg);
    }
}

#define R(name)                                                               \
    cmocka_unit_test_setup_teardown(name, setup_request, teardown_request)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_writes_the_image),
        cmocka_unit_test(test_fetch_follows_a_redirect),
        cmocka_unit_test(test_loopback_is_refused_without_allow_private),
        cmocka_unit_test(test_plain_http_is_refused_without_allow_http),
        cmocka_unit_test(test_other_schemes_are_refused),
        cmocka_unit_test(test_redirect_to_another_scheme_is_refused),
        cmocka_unit_test(test_redirect_loop_is_refused),
        cmocka_unit_test(test_announced_body_over_max_bytes_is_413),
        cmocka_unit_test(test_unannounced_body_over_max_bytes_is_413),
        cmocka_unit_test(test_body_of_exactly_max_bytes_is_fine),
        cmocka_unit_test(test_stalled_server_times_out),
        cmocka_unit_test(test_non_2xx_status_is_422),
        cmocka_unit_test(test_unreachable_host_is_422),
        cmocka_unit_test(test_existing_destination_is_kept),
        cmocka_unit_test(test_fetcher_fetches_each_slot_then_calls_done),
        cmocka_unit_test(test_fetcher_reports_each_failure),
        cmocka_unit_test(test_fetcher_skips_urls_after_a_failure),
        cmocka_unit_test(test_fetcher_release_before_done_cancels),
        cmocka_unit_test(test_fetcher_stop_ends_fetching_and_queued_tasks),
        cmocka_unit_test(test_fetcher_refuses_work_while_stopping),
        cmocka_unit_test(test_unsubmitted_task_frees_cleanly),
        cmocka_unit_test(test_fetcher_shares_downloads_between_owners),
        cmocka_unit_test(test_fetcher_drops_a_trickling_download),
        cmocka_unit_test(test_url_check_waits_for_dns_as_an_event),
        cmocka_unit_test(test_url_check_judges_literals_without_dns),
        cmocka_unit_test(test_url_check_reports_an_unknown_host),
        cmocka_unit_test(test_url_check_stops_with_the_fetcher),
        cmocka_unit_test(test_fetcher_refuses_bad_dns_servers),
        R(test_request_image_url_becomes_an_image),
        R(test_request_fetched_text_is_415),
        R(test_request_fetch_is_capped_at_the_image_limit),
        R(test_request_fetch_failure_names_the_element),
        R(test_request_image_urls_can_be_disabled),
        R(test_request_refuses_loopback_by_default),
        R(test_prefetched_image_url_becomes_an_image),
        R(test_prefetched_errors_keep_their_order),
        R(test_plan_stops_at_what_fails_without_network),
        R(test_plan_reports_earlier_fields_first),
        R(test_validate_fetched_never_fetches),
        cmocka_unit_test(test_config_defaults_allow_https_only),
        cmocka_unit_test(test_config_images_section_is_read),
        cmocka_unit_test(test_config_images_section_is_strict),
    };
    return cmocka_run_group_tests(tests, setup_suite, teardown_suite);
}
